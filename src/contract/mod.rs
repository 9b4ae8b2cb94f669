//! The contract calendar and charges of the MagicConnect service terms, as pure
//! functions: no I/O, no clock. The hub's store and CLI feed them dates and amounts.
//!
//! The rules are those of the Japanese original ("MagicConnect" ASP サービス契約約款,
//! revision of 2025-02-01). Its text and the design brief (DESIGN.md, "Contract rules
//! the hub enforces") are kept outside this repository, in the project's shared folder
//! (`seeds/magicconnect-terms-ja.txt`); README.md states the readings an operator needs.
//! Each function cites the article it implements and says how the article was read
//! where the text leaves room.
//!
//! - [`unit`](mod@unit): who may contract (art. 11) and the contract unit of a basic contract and
//!   its additional contracts (art. 12).
//! - [`calendar`]: the first term (art. 13), auto-renewal and the cancellation
//!   deadline (art. 14), cancellation at a month end (art. 18) and a termination
//!   notice that cannot be delivered (art. 24-3).
//! - [`charges`]: initial fee, option fees and the usage fee, the free start month,
//!   consumption tax and when each invoice is raised (art. 27, 28, 30, BCP special
//!   terms), late interest (art. 31).
//! - [`dunning`]: due dates (art. 28-3), invoice states, reminders and the suspension
//!   of an unpaid contract (art. 23-1(1)).
//! - [`outage`]: compensation for a total outage of 120 hours or more (art. 35), within
//!   a contract's service period.
//! - [`rules`]: the administrator's e-mail (art. 3, 5, 39), no service before the start
//!   date (art. 6, 7), additional contracts only while in force (art. 12), renewal
//!   reminders (art. 14).
//! - [`tz`]: the operator's time zone (default Asia/Tokyo): every contract date is a day
//!   there, and "today" is [`today_in`] that zone.
//!
//! Money is whole yen ([`Yen`], an unsigned integer); every division rounds down and
//! no floating point is used. No function panics: out-of-range dates and overflowing
//! amounts come back as a [`ContractError`].

pub mod calendar;
pub mod charges;
pub mod dunning;
pub mod error;
pub mod maintenance;
pub mod outage;
pub mod rules;
pub mod tz;
pub mod unit;

pub use calendar::{
    additional_first_end, cancellation_deadline, cancellation_effective, first_term_end, is_month_end, month_end,
    renewed_end, term_at, termination_effective_undelivered, Cancellation, Term, TermStatus,
};
pub use charges::{
    billed_unit, first_term_invoice, interest_days, invoice_at, is_overdue, late_interest, renewal_invoice, tax,
    usage_fee, BilledContract, Invoice, LineItem, LineKind, OptionFee, Tariff, DEFAULT_TAX_RATE_BP,
    INTEREST_GRACE_DAYS,
};
pub use dunning::{days_overdue, invoice_state, DunningRule, DunningStep, InvoiceState};
pub use error::ContractError;
pub use maintenance::{notice_schedule, outside_windows, NoticeSchedule};
pub use outage::{
    compensable_days, compensation, unit_compensation, CountedOutage, UnitCompensation, MIN_OUTAGE_HOURS,
};
pub use rules::{additional_refusal, check_admin_email, not_started, renewal_reminder_due, RenewalReminder};
pub use tz::{
    format_local, format_unix, operator_tz, parse_tz, set_operator_tz, start_of_day, today_in, Tz, DEFAULT_TZ,
};
pub use unit::{AdditionalContract, BasicContract, ContractKind, ContractUnit};

/// An amount of money in whole yen. Unsigned: the terms know no negative charges
/// (refunds are excluded by art. 18-4, 23-1 and 24).
pub type Yen = u64;
