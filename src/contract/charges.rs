//! Charges: what is invoiced, when, with how much tax (art. 27, 28, 30 and the BCP
//! special terms), and late interest (art. 31).
//!
//! Reading of the usage fee. The terms price usage as a yearly amount ("年間使用料",
//! art. 28) and make the service start month free (art. 27-2: "サービス提供開始月の使用料
//! は、無償となります"). A free *month* only makes sense if the fee accrues by the month,
//! so the usage fee is one twelfth of the annual fee per account per month, and a term
//! is charged for each of its calendar months except the start month. A basic
//! contract's first term is the start month plus twelve months (art. 13, see
//! [`first_term_end`](super::first_term_end)), so its first invoice carries exactly
//! one annual fee, as art. 28-1 says ("最初の契約期間の年間使用料"); an additional
//! contract ending with the basic contract pays only for the months up to that end; a
//! renewal (always 12 months) pays exactly the annual fee. The monthly amount is never
//! rounded on its own: the whole line is `annual × accounts × months / 12`, rounded
//! down once.
//!
//! The BCP special terms (特約 BCP あんしんサービス) charge an *account-management fee*
//! (アカウント管理料) instead, which accrues from the start month itself, a whole month
//! even when the service starts mid-month (日割りにはなりません, BCP ¶1), invoiced at
//! delivery for the first term (¶2) and in the month after the expiry month for a
//! renewal (¶3). [`Tariff::start_month_free`] `= false` models that fee with the same
//! per-account annual amount as the usage fee; the BCP terms' separate usage fee,
//! invoiced after the term (¶4), is not modelled.
//!
//! Money is integer yen; tax and interest round down.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::calendar::{
    additional_first_end, first_term_end, is_month_end, month_end, months_between, renewed_end, term_at,
};
use super::{Cancellation, ContractError, ContractUnit, TermStatus, Yen};

/// The consumption tax rate when none is configured: 10 % (Japan's standard rate), in
/// basis points.
pub const DEFAULT_TAX_RATE_BP: u32 = 1000;
/// Art. 31: no interest if paid within 10 days counted from the day after the due date.
pub const INTEREST_GRACE_DAYS: i64 = 10;
/// Art. 31: 14.5 % a year, as per mille.
const INTEREST_PER_MILLE: u128 = 145;
/// The year for daily interest and daily proration; see [`late_interest`].
const DAYS_PER_YEAR: u128 = 365;
const MONTHS_PER_YEAR: u128 = 12;
const BP_PER_UNIT: u128 = 10_000;

/// An option fee (オプション工事費, art. 27-1): one-off work ordered with a contract,
/// invoiced at delivery with the initial fee (art. 28-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionFee {
    pub name: String,
    pub amount: Yen,
}

/// The prices that apply to one contract (basic or additional). All amounts exclude
/// consumption tax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    /// Initial fee (初期費用, art. 27-1) per contract, including USB keys if the
    /// accounts come with them. Invoiced once, at delivery (art. 28-1).
    pub initial_fee: Yen,
    /// Annual usage fee (年間使用料) per account.
    pub annual_fee_per_account: Yen,
    /// Option work ordered with the contract, invoiced at delivery (art. 28-1).
    #[serde(default)]
    pub options: Vec<OptionFee>,
    /// Consumption tax (付加価値税相当額, art. 30) in basis points: 1000 = 10 %.
    #[serde(default = "default_tax_rate_bp")]
    pub tax_rate_bp: u32,
    /// Art. 27-2: the usage fee of the service start month is waived. `false` for the
    /// BCP special terms, where it accrues from the start month, unprorated.
    #[serde(default = "default_true")]
    pub start_month_free: bool,
}

fn default_tax_rate_bp() -> u32 {
    DEFAULT_TAX_RATE_BP
}

fn default_true() -> bool {
    true
}

impl Tariff {
    /// A tariff with no options, 10 % tax and a free start month (the main terms).
    #[must_use]
    pub fn new(initial_fee: Yen, annual_fee_per_account: Yen) -> Tariff {
        Tariff {
            initial_fee,
            annual_fee_per_account,
            options: Vec::new(),
            tax_rate_bp: DEFAULT_TAX_RATE_BP,
            start_month_free: true,
        }
    }
}

/// What a line of an invoice is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineKind {
    /// 初期費用 (art. 27-1).
    InitialFee,
    /// オプション工事費 (art. 27-1).
    OptionFee { name: String },
    /// The usage fee of the service start month `month` (its first day), waived by
    /// art. 27-2. Always zero; listed so the invoice shows the waiver.
    StartMonthWaived { accounts: u32, month: NaiveDate },
    /// The usage fee for `accounts` accounts over `months` calendar months from `from`
    /// to `to` (both included).
    UsageFee {
        accounts: u32,
        months: u32,
        from: NaiveDate,
        to: NaiveDate,
    },
    /// 延滞利息 (art. 31) on invoice number `invoice`: `days` days from `from` to `to`
    /// (both included). Not subject to consumption tax.
    LateInterest {
        invoice: i64,
        days: u64,
        from: NaiveDate,
        to: NaiveDate,
    },
}

/// One line of an invoice, before tax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub kind: LineKind,
    pub amount: Yen,
}

impl LineItem {
    /// A human-readable line, e.g. for the CLI.
    #[must_use]
    pub fn description(&self) -> String {
        match &self.kind {
            LineKind::InitialFee => "initial fee (art. 27-1)".to_string(),
            LineKind::OptionFee { name } => format!("option: {name} (art. 27-1)"),
            LineKind::StartMonthWaived { accounts, month } => format!(
                "usage fee, {accounts} accounts, service start month {}: waived (art. 27-2)",
                month.format("%Y-%m")
            ),
            LineKind::UsageFee {
                accounts,
                months,
                from,
                to,
            } => {
                format!("usage fee, {accounts} accounts × {months} months, {from} to {to}")
            }
            LineKind::LateInterest {
                invoice,
                days,
                from,
                to,
            } => {
                format!("late interest on invoice {invoice}, {days} days {from} to {to} at 14.5% a year (art. 31)")
            }
        }
    }
}

/// An invoice: the lines, their sum, the tax on that sum and the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// When it is raised: kit delivery for the first term (art. 28-1), the first day
    /// of the renewal start month for a renewal (art. 28-2).
    pub issued: NaiveDate,
    /// The term it covers.
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
    pub lines: Vec<LineItem>,
    pub subtotal: Yen,
    pub tax_rate_bp: u32,
    pub tax: Yen,
    pub total: Yen,
}

impl Invoice {
    fn new(
        issued: NaiveDate,
        term_start: NaiveDate,
        term_end: NaiveDate,
        lines: Vec<LineItem>,
        tax_rate_bp: u32,
    ) -> Result<Invoice, ContractError> {
        let subtotal = lines.iter().try_fold(0u64, |sum, l| {
            sum.checked_add(l.amount)
                .ok_or(ContractError::AmountOverflow("invoice subtotal"))
        })?;
        let tax = tax(subtotal, tax_rate_bp)?;
        let total = subtotal
            .checked_add(tax)
            .ok_or(ContractError::AmountOverflow("invoice total"))?;
        Ok(Invoice {
            issued,
            term_start,
            term_end,
            lines,
            subtotal,
            tax_rate_bp,
            tax,
            total,
        })
    }
}

fn to_yen(v: u128, what: &'static str) -> Result<Yen, ContractError> {
    Yen::try_from(v).map_err(|_| ContractError::AmountOverflow(what))
}

/// Consumption tax on a subtotal (art. 30: the fees "plus the amount equivalent to
/// value-added tax"). `rate_bp` is in basis points (1000 = 10 %). The tax is computed
/// once on the invoice's subtotal and rounded down to the yen, as Japanese qualified
/// invoices round once per invoice and rate and rounding down is the usual choice.
pub fn tax(subtotal: Yen, rate_bp: u32) -> Result<Yen, ContractError> {
    to_yen(
        u128::from(subtotal) * u128::from(rate_bp) / BP_PER_UNIT,
        "consumption tax",
    )
}

/// The usage fee for `accounts` accounts over `months` calendar months: the annual fee
/// per account prorated by the month (one twelfth a month; see the module docs),
/// rounded down once for the whole line.
pub fn usage_fee(annual_fee_per_account: Yen, accounts: u32, months: u32) -> Result<Yen, ContractError> {
    let v = u128::from(annual_fee_per_account) * u128::from(accounts) * u128::from(months) / MONTHS_PER_YEAR;
    to_yen(v, "usage fee")
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn months_u32(from: NaiveDate, to: NaiveDate) -> Result<u32, ContractError> {
    u32::try_from(months_between(from, to) + 1).map_err(|_| ContractError::EndBeforeStart { start: from, end: to })
}

/// The invoice for a contract's first term, raised at delivery of the kit.
///
/// Art. 28-1: the initial fee, the option work fees and the first term's usage fee of a
/// basic or additional contract are invoiced when the service kit is delivered
/// (利用キット納品時). The usage fee covers the term's calendar months from the start
/// month to `first_end`'s month, except that the start month is free (art. 27-2) unless
/// the tariff follows the BCP special terms. Tax per [`tax`] (art. 30).
///
/// `first_end` is the term end from [`first_term_end`](super::first_term_end) or
/// [`additional_first_end`](super::additional_first_end); it must be a month end not
/// before `start`.
pub fn first_term_invoice(
    tariff: &Tariff,
    start: NaiveDate,
    first_end: NaiveDate,
    accounts: u32,
    delivered: NaiveDate,
) -> Result<Invoice, ContractError> {
    if !is_month_end(first_end) {
        return Err(ContractError::NotMonthEnd(first_end));
    }
    if first_end < start {
        return Err(ContractError::EndBeforeStart { start, end: first_end });
    }
    let mut lines = vec![LineItem {
        kind: LineKind::InitialFee,
        amount: tariff.initial_fee,
    }];
    lines.extend(tariff.options.iter().map(|o| LineItem {
        kind: LineKind::OptionFee { name: o.name.clone() },
        amount: o.amount,
    }));
    let usage_from = if tariff.start_month_free {
        lines.push(LineItem {
            kind: LineKind::StartMonthWaived {
                accounts,
                month: first_of_month(start),
            },
            amount: 0,
        });
        month_end(start).succ_opt()
    } else {
        Some(start)
    };
    if let Some(from) = usage_from.filter(|&f| f <= first_end) {
        let months = months_u32(from, first_end)?;
        lines.push(LineItem {
            kind: LineKind::UsageFee {
                accounts,
                months,
                from,
                to: first_end,
            },
            amount: usage_fee(tariff.annual_fee_per_account, accounts, months)?,
        });
    }
    Invoice::new(delivered, start, first_end, lines, tariff.tax_rate_bp)
}

/// The invoice for the renewal that follows a term ending on `previous_end`.
///
/// Art. 28-2: the annual usage fee after the first term is invoiced in the start month
/// of the renewal term (延長契約期間の開始月); the BCP special terms bill their
/// account-management fee "in the month after the expiry month" (¶3), the same month. The renewal runs from the day after
/// `previous_end` for one year ([`renewed_end`]), so the fee is exactly twelve months:
/// the annual fee per account times the accounts. It is dated the renewal's first day.
/// Initial and option fees are one-off and do not recur.
pub fn renewal_invoice(tariff: &Tariff, previous_end: NaiveDate, accounts: u32) -> Result<Invoice, ContractError> {
    let end = renewed_end(previous_end)?;
    let start = previous_end.succ_opt().ok_or(ContractError::DateOutOfRange(
        "renewal start beyond the representable dates",
    ))?;
    let months = months_u32(start, end)?;
    let lines = vec![LineItem {
        kind: LineKind::UsageFee {
            accounts,
            months,
            from: start,
            to: end,
        },
        amount: usage_fee(tariff.annual_fee_per_account, accounts, months)?,
    }];
    Invoice::new(start, start, end, lines, tariff.tax_rate_bp)
}

/// A contract as the billing needs it: one basic or additional contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledContract {
    pub start: NaiveDate,
    /// [`first_term_end`](super::first_term_end) for a basic contract,
    /// [`additional_first_end`](super::additional_first_end) for an additional one.
    pub first_end: NaiveDate,
    pub accounts: u32,
    /// The kit delivery date; `None` means the start date, since the kit is sent with
    /// the service start notice (art. 7-2).
    #[serde(default)]
    pub delivered: Option<NaiveDate>,
    #[serde(default)]
    pub cancellation: Option<Cancellation>,
    /// The last day of service of a contract the operator terminated (art. 24): nothing
    /// is invoiced after it. (A cancellation's last day is in `cancellation`.)
    #[serde(default)]
    pub ended: Option<NaiveDate>,
}

/// The contracts of a unit as the billing sees them, labelled `basic` and `additional
/// N`: each with its own first term (art. 13), the unit's cancellation (art. 18 cancels
/// the unit) and the day a termination ended it (art. 24).
pub fn billed_unit(
    unit: &ContractUnit,
    cancellation: Option<Cancellation>,
    ended: Option<NaiveDate>,
) -> Result<Vec<(String, BilledContract)>, ContractError> {
    let basic_end = first_term_end(unit.basic.start)?;
    let mut out = vec![(
        "basic".to_string(),
        BilledContract {
            start: unit.basic.start,
            first_end: basic_end,
            accounts: unit.basic.accounts,
            delivered: None,
            cancellation,
            ended,
        },
    )];
    for (i, a) in unit.additional.iter().enumerate() {
        out.push((
            format!("additional {}", i + 1),
            BilledContract {
                start: a.start,
                first_end: additional_first_end(basic_end, a.start)?,
                accounts: a.accounts,
                delivered: None,
                cancellation,
                ended,
            },
        ));
    }
    Ok(out)
}

/// The invoices raised for `contract` on the day `at`: the first-term invoice on the
/// delivery day (art. 28-1), a renewal invoice on the first day of each renewal term
/// the contract reaches (art. 28-2). A contract cancelled with effect at a term end
/// (its form met the deadline, art. 14) gets no renewal invoice; one whose form came
/// late renews and is invoiced for the renewal even if it ends a month into it, since
/// fees paid are not refunded (art. 18-4). A contract terminated by the operator
/// (`ended`) raises nothing after its last day.
///
/// The payment due date is whatever the invoice states (art. 28-3), so it is not
/// computed here. Run this for every day since the last run; it is a pure function of
/// its inputs, so re-running a day gives the same invoices.
pub fn invoice_at(tariff: &Tariff, contract: &BilledContract, at: NaiveDate) -> Result<Vec<Invoice>, ContractError> {
    let mut due = Vec::new();
    if contract.ended.is_some_and(|last| at > last) {
        // Terminated (art. 24): no renewal, nothing after the last day.
        return Ok(due);
    }
    let delivered = contract.delivered.unwrap_or(contract.start);
    if at == delivered {
        due.push(first_term_invoice(
            tariff,
            contract.start,
            contract.first_end,
            contract.accounts,
            delivered,
        )?);
    }
    let status = term_at(contract.start, contract.first_end, contract.cancellation.as_ref(), at)?;
    if let TermStatus::Active { term, .. } = status {
        if term.renewals > 0 && term.start == at {
            let previous_end = at.pred_opt().ok_or(ContractError::DateOutOfRange(
                "renewal start at the first representable date",
            ))?;
            due.push(renewal_invoice(tariff, previous_end, contract.accounts)?);
        }
    }
    Ok(due)
}

/// Whether an amount due on `due` is overdue on `at`: unpaid and past the due date.
/// Art. 23-1(1) lets the operator suspend the service then; art. 31 charges interest.
#[must_use]
pub fn is_overdue(due: NaiveDate, paid: Option<NaiveDate>, at: NaiveDate) -> bool {
    at > due && paid.map_or(true, |p| p > at)
}

/// The days that bear late interest when an amount due on `due` is paid on `paid`.
///
/// Art. 31: interest runs "for the days from the day after the due date to the day
/// before the day of payment" (支払期日の翌日から支払いの日の前日までの日数), "but not if
/// payment is made within 10 days counted from the day after the due date"
/// (支払期日の翌日から起算して１０日以内). Day 1 is `due + 1`, so payment on `due + 10`
/// bears nothing and payment on `due + 11` bears the 10 days `due + 1 ..= due + 10`.
#[must_use]
pub fn interest_days(due: NaiveDate, paid: NaiveDate) -> u64 {
    let late = (paid - due).num_days();
    if late <= INTEREST_GRACE_DAYS {
        0
    } else {
        u64::try_from(late - 1).unwrap_or(0)
    }
}

/// Late interest (延滞利息, art. 31) on `amount` due on `due` and paid on `paid`: 14.5 %
/// a year for [`interest_days`], i.e. `amount × 145 × days / (1000 × 365)` rounded down
/// to the yen, in integers.
///
/// The year is 365 days, leap years included: art. 31 says only "年14.5％の割合" and,
/// unlike many Japanese telecom terms, has no leap-year clause; a fixed 365-day year is
/// the common reading of such a rate and keeps the amount independent of which year
/// the delay falls in. `amount` is the overdue debt excluding interest itself (interest
/// does not compound: "延滞利息を除きます"), normally the invoice total with tax. For an
/// amount still unpaid, pass today as `paid` to get what would be owed if paid today.
pub fn late_interest(amount: Yen, due: NaiveDate, paid: NaiveDate) -> Result<Yen, ContractError> {
    let days = u128::from(interest_days(due, paid));
    let v = u128::from(amount) * INTEREST_PER_MILLE * days / (1000 * DAYS_PER_YEAR);
    to_yen(v, "late interest")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::calendar::{additional_first_end, first_term_end, renewed_end};
    use chrono::TimeDelta;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn tariff() -> Tariff {
        Tariff {
            initial_fee: 30_000,
            annual_fee_per_account: 12_000,
            options: vec![OptionFee {
                name: "on-site setup".into(),
                amount: 50_000,
            }],
            tax_rate_bp: DEFAULT_TAX_RATE_BP,
            start_month_free: true,
        }
    }

    #[test]
    fn tax_rounds_down() {
        assert_eq!(tax(1000, 1000).unwrap(), 100);
        assert_eq!(tax(1009, 1000).unwrap(), 100);
        assert_eq!(tax(999, 800).unwrap(), 79); // 79.92
        assert_eq!(tax(0, 1000).unwrap(), 0);
        assert_eq!(tax(u64::MAX, 10_000).unwrap(), u64::MAX);
        assert!(tax(u64::MAX, 10_001).is_err());
    }

    #[test]
    fn usage_fee_is_monthly_prorated_and_rounds_down_once() {
        assert_eq!(usage_fee(12_000, 10, 12).unwrap(), 120_000);
        assert_eq!(usage_fee(12_000, 10, 13).unwrap(), 130_000);
        assert_eq!(usage_fee(10_000, 1, 1).unwrap(), 833); // 833.33
        assert_eq!(usage_fee(10_000, 3, 1).unwrap(), 2_500); // not 3 × 833
        assert_eq!(usage_fee(10_000, 1, 0).unwrap(), 0);
        assert!(usage_fee(u64::MAX, u32::MAX, u32::MAX).is_err());
    }

    #[test]
    fn first_term_invoice_of_a_basic_contract() {
        let start = d(2026, 11, 24);
        let end = first_term_end(start).unwrap();
        let inv = first_term_invoice(&tariff(), start, end, 10, start).unwrap();
        assert_eq!(inv.issued, start);
        assert_eq!((inv.term_start, inv.term_end), (start, d(2027, 11, 30)));
        assert_eq!(
            inv.lines,
            vec![
                LineItem {
                    kind: LineKind::InitialFee,
                    amount: 30_000
                },
                LineItem {
                    kind: LineKind::OptionFee {
                        name: "on-site setup".into()
                    },
                    amount: 50_000
                },
                LineItem {
                    kind: LineKind::StartMonthWaived {
                        accounts: 10,
                        month: d(2026, 11, 1)
                    },
                    amount: 0
                },
                LineItem {
                    kind: LineKind::UsageFee {
                        accounts: 10,
                        months: 12,
                        from: d(2026, 12, 1),
                        to: end
                    },
                    // One annual fee (art. 28-1): 10 x 12,000.
                    amount: 120_000
                },
            ]
        );
        assert_eq!(inv.subtotal, 200_000);
        assert_eq!(inv.tax, 20_000);
        assert_eq!(inv.total, 220_000);
        assert!(inv.lines[2].description().contains("waived (art. 27-2)"));
        assert!(inv.lines[3].description().contains("10 accounts × 12 months"));
    }

    #[test]
    fn first_term_invoice_under_the_bcp_terms_charges_the_start_month() {
        let t = Tariff {
            start_month_free: false,
            options: vec![],
            ..tariff()
        };
        let start = d(2027, 2, 28);
        let end = first_term_end(start).unwrap(); // 2028-02-29
        let inv = first_term_invoice(&t, start, end, 2, d(2027, 2, 20)).unwrap();
        assert_eq!(inv.issued, d(2027, 2, 20));
        assert_eq!(
            inv.lines[1],
            LineItem {
                kind: LineKind::UsageFee {
                    accounts: 2,
                    months: 13,
                    from: start,
                    to: end
                },
                amount: 26_000
            }
        );
        assert_eq!(inv.total, 30_000 + 26_000 + 5_600);
    }

    #[test]
    fn first_term_invoice_of_additional_contracts() {
        let basic_end = d(2027, 12, 31);
        // Starts in May: May is free, June..December are charged.
        let start = d(2027, 5, 10);
        let end = additional_first_end(basic_end, start).unwrap();
        let inv = first_term_invoice(&Tariff::new(0, 12_000), start, end, 3, start).unwrap();
        assert_eq!(
            inv.lines.last().unwrap().kind,
            LineKind::UsageFee {
                accounts: 3,
                months: 7,
                from: d(2027, 6, 1),
                to: basic_end
            }
        );
        assert_eq!(inv.subtotal, 21_000);
        // Same month as the basic end: its own first term, twelve paid months, ending
        // with the basic contract's renewal (art. 13 ¶3).
        let start = d(2027, 12, 1);
        let end = additional_first_end(basic_end, start).unwrap();
        let inv = first_term_invoice(&Tariff::new(0, 12_000), start, end, 3, start).unwrap();
        assert_eq!(end, d(2028, 12, 31));
        assert_eq!(end, renewed_end(basic_end).unwrap());
        assert_eq!(inv.subtotal, 36_000);
        // One month before the end: only the end month is charged.
        let start = d(2027, 11, 30);
        let inv = first_term_invoice(&Tariff::new(0, 12_000), start, basic_end, 1, start).unwrap();
        assert_eq!(inv.subtotal, 1_000);
    }

    #[test]
    fn first_term_invoice_rejects_bad_terms() {
        let t = tariff();
        assert!(matches!(
            first_term_invoice(&t, d(2027, 1, 1), d(2026, 12, 31), 1, d(2027, 1, 1)),
            Err(ContractError::EndBeforeStart { .. })
        ));
        assert!(matches!(
            first_term_invoice(&t, d(2027, 1, 1), d(2028, 2, 28), 1, d(2027, 1, 1)),
            Err(ContractError::NotMonthEnd(_))
        ));
        // A term ending in the start month: nothing beyond the free month to charge.
        let inv = first_term_invoice(&t, d(2027, 1, 5), d(2027, 1, 31), 1, d(2027, 1, 5)).unwrap();
        assert!(!inv.lines.iter().any(|l| matches!(l.kind, LineKind::UsageFee { .. })));
    }

    #[test]
    fn renewal_invoice_is_one_annual_fee_in_the_renewal_start_month() {
        let inv = renewal_invoice(&tariff(), d(2027, 12, 31), 10).unwrap();
        assert_eq!(inv.issued, d(2028, 1, 1));
        assert_eq!((inv.term_start, inv.term_end), (d(2028, 1, 1), d(2028, 12, 31)));
        assert_eq!(inv.subtotal, 120_000);
        assert_eq!(inv.tax, 12_000);
        assert_eq!(inv.total, 132_000);
        let inv = renewal_invoice(&tariff(), d(2028, 2, 29), 1).unwrap();
        assert_eq!((inv.term_start, inv.term_end), (d(2028, 3, 1), d(2029, 2, 28)));
        assert!(matches!(
            renewal_invoice(&tariff(), d(2028, 2, 28), 1),
            Err(ContractError::NotMonthEnd(_))
        ));
    }

    fn contract(cancellation: Option<Cancellation>) -> BilledContract {
        BilledContract {
            start: d(2026, 11, 24),
            first_end: d(2027, 11, 30),
            accounts: 10,
            delivered: None,
            cancellation,
            ended: None,
        }
    }

    #[test]
    fn invoice_at_delivery_and_each_renewal() {
        let t = tariff();
        let c = contract(None);
        let at = |y, m, day| invoice_at(&t, &c, d(y, m, day)).unwrap();
        assert_eq!(at(2026, 11, 23), vec![]);
        let first = at(2026, 11, 24);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].total, 220_000);
        assert_eq!(at(2026, 11, 25), vec![]);
        assert_eq!(at(2027, 11, 30), vec![]);
        let r1 = at(2027, 12, 1);
        assert_eq!(r1, vec![renewal_invoice(&t, d(2027, 11, 30), 10).unwrap()]);
        assert_eq!(at(2027, 12, 2), vec![]);
        let r2 = at(2028, 12, 1);
        assert_eq!(r2[0].term_end, d(2029, 11, 30));
        // Delivery on another day than the start.
        let c = BilledContract {
            delivered: Some(d(2026, 11, 20)),
            ..contract(None)
        };
        assert_eq!(invoice_at(&t, &c, d(2026, 11, 20)).unwrap().len(), 1);
        assert_eq!(invoice_at(&t, &c, d(2026, 11, 24)).unwrap(), vec![]);
    }

    #[test]
    fn invoice_at_respects_the_cancellation_deadline() {
        let t = tariff();
        // Met the deadline: no renewal invoice.
        let c = contract(Some(Cancellation {
            received: d(2027, 10, 31),
            requested_end: None,
            effective: d(2027, 11, 30),
        }));
        assert_eq!(invoice_at(&t, &c, d(2027, 12, 1)).unwrap(), vec![]);
        // Missed it by a day, and the customer chose the earliest month end still
        // possible, a month into the renewal: the renewal is invoiced (art. 28-2, no
        // refunds, art. 18-4), the one after it is not.
        let c = contract(Some(Cancellation {
            received: d(2027, 11, 1),
            requested_end: Some(d(2027, 12, 31)),
            effective: d(2027, 12, 31),
        }));
        assert_eq!(invoice_at(&t, &c, d(2027, 12, 1)).unwrap().len(), 1);
        assert_eq!(invoice_at(&t, &c, d(2028, 12, 1)).unwrap(), vec![]);
    }

    #[test]
    fn a_terminated_contract_raises_nothing_after_its_last_day() {
        // Issue 16, item 4.
        let t = tariff();
        let c = BilledContract {
            ended: Some(d(2027, 2, 1)),
            ..contract(None)
        };
        assert_eq!(invoice_at(&t, &c, d(2026, 11, 24)).unwrap().len(), 1);
        for day in [d(2027, 12, 1), d(2028, 12, 1), d(2029, 12, 1)] {
            assert_eq!(invoice_at(&t, &c, day).unwrap(), vec![], "{day}");
        }
    }

    #[test]
    fn billed_unit_gives_each_contract_its_first_term() {
        let mut unit = ContractUnit::new(crate::contract::BasicContract {
            start: d(2026, 11, 24),
            accounts: 10,
        });
        unit.additional.push(crate::contract::AdditionalContract {
            start: d(2027, 11, 10),
            accounts: 5,
        });
        let b = billed_unit(&unit, None, Some(d(2028, 3, 1))).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].0.as_str(), b[0].1.first_end), ("basic", d(2027, 11, 30)));
        assert_eq!((b[1].0.as_str(), b[1].1.first_end), ("additional 1", d(2028, 11, 30)));
        assert!(b.iter().all(|(_, c)| c.ended == Some(d(2028, 3, 1))));
    }

    #[test]
    fn interest_none_when_paid_on_day_10() {
        let due = d(2027, 1, 31);
        assert_eq!(interest_days(due, d(2027, 2, 10)), 0);
        assert_eq!(late_interest(1_000_000, due, d(2027, 2, 10)).unwrap(), 0);
        assert_eq!(late_interest(1_000_000, due, due).unwrap(), 0);
        assert_eq!(late_interest(1_000_000, due, d(2027, 1, 1)).unwrap(), 0);
    }

    #[test]
    fn interest_on_day_11_counts_from_the_day_after_due_to_the_day_before_payment() {
        let due = d(2027, 1, 31);
        // Paid 2027-02-11: days 2027-02-01 ..= 2027-02-10 = 10.
        assert_eq!(interest_days(due, d(2027, 2, 11)), 10);
        // 1,000,000 × 0.145 × 10 / 365 = 3972.60… → 3972.
        assert_eq!(late_interest(1_000_000, due, d(2027, 2, 11)).unwrap(), 3_972);
        // A full year late (paid the day after the first anniversary): 365 days.
        assert_eq!(interest_days(due, d(2028, 2, 1)), 365);
        assert_eq!(late_interest(1_000_000, due, d(2028, 2, 1)).unwrap(), 145_000);
    }

    #[test]
    fn interest_rounds_down_and_uses_a_365_day_year_in_leap_years() {
        let due = d(2028, 2, 20);
        // Paid 2028-03-02: 2028-02-21 ..= 2028-03-01 includes Feb 29: 10 days.
        assert_eq!(interest_days(due, d(2028, 3, 2)), 10);
        // 10,000 × 0.145 × 10 / 365 = 39.726… → 39.
        assert_eq!(late_interest(10_000, due, d(2028, 3, 2)).unwrap(), 39);
        // Tiny amounts round down to nothing.
        assert_eq!(late_interest(100, due, d(2028, 3, 2)).unwrap(), 0);
        assert!(late_interest(u64::MAX, NaiveDate::MIN, NaiveDate::MAX).is_err());
    }

    #[test]
    fn overdue_means_unpaid_after_the_due_date() {
        let due = d(2027, 1, 31);
        assert!(!is_overdue(due, None, due));
        assert!(is_overdue(due, None, d(2027, 2, 1)));
        assert!(!is_overdue(due, Some(d(2027, 1, 30)), d(2027, 2, 1)));
        assert!(is_overdue(due, Some(d(2027, 2, 5)), d(2027, 2, 1)));
    }

    fn real_date() -> impl Strategy<Value = NaiveDate> {
        let lo = d(1900, 1, 1).num_days_from_ce();
        let hi = d(2400, 12, 31).num_days_from_ce();
        (lo..=hi).prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
    }

    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce())
            .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
    }

    fn any_tariff() -> impl Strategy<Value = Tariff> {
        (
            0u64..10_000_000,
            0u64..1_000_000,
            proptest::collection::vec(0u64..1_000_000, 0..3),
            0u32..3000,
            any::<bool>(),
        )
            .prop_map(|(initial_fee, annual, opts, tax_rate_bp, start_month_free)| Tariff {
                initial_fee,
                annual_fee_per_account: annual,
                options: opts
                    .into_iter()
                    .enumerate()
                    .map(|(i, amount)| OptionFee {
                        name: format!("option {i}"),
                        amount,
                    })
                    .collect(),
                tax_rate_bp,
                start_month_free,
            })
    }

    proptest! {
        #[test]
        fn invoices_add_up(t in any_tariff(), start in real_date(), accounts in 0u32..10_000) {
            let end = first_term_end(start).unwrap();
            for inv in [
                first_term_invoice(&t, start, end, accounts, start).unwrap(),
                renewal_invoice(&t, end, accounts).unwrap(),
            ] {
                prop_assert_eq!(inv.subtotal, inv.lines.iter().map(|l| l.amount).sum::<u64>());
                prop_assert_eq!(inv.tax, inv.subtotal * u64::from(t.tax_rate_bp) / 10_000);
                prop_assert_eq!(inv.total, inv.subtotal + inv.tax);
                // Tax is rounded down: less than one yen below the exact amount.
                prop_assert!(u128::from(inv.tax) * 10_000 <= u128::from(inv.subtotal) * u128::from(t.tax_rate_bp));
                prop_assert!((u128::from(inv.tax) + 1) * 10_000 > u128::from(inv.subtotal) * u128::from(t.tax_rate_bp));
            }
        }

        #[test]
        fn first_term_usage_is_one_annual_fee_or_13_months_under_bcp(t in any_tariff(), start in real_date(), accounts in 0u32..10_000) {
            let end = first_term_end(start).unwrap();
            let inv = first_term_invoice(&t, start, end, accounts, start).unwrap();
            // Art. 28-1: the first term's annual usage fee; the BCP terms add the start month.
            let months = if t.start_month_free { 12 } else { 13 };
            let usage: u64 = inv.lines.iter().filter(|l| matches!(l.kind, LineKind::UsageFee { .. })).map(|l| l.amount).sum();
            prop_assert_eq!(usage, t.annual_fee_per_account * u64::from(accounts) * months / 12);
            let one_offs = t.initial_fee + t.options.iter().map(|o| o.amount).sum::<u64>();
            prop_assert_eq!(inv.subtotal, one_offs + usage);
        }

        #[test]
        fn renewal_is_exactly_the_annual_fee(t in any_tariff(), any in real_date(), accounts in 0u32..10_000) {
            let inv = renewal_invoice(&t, month_end(any), accounts).unwrap();
            prop_assert_eq!(inv.subtotal, t.annual_fee_per_account * u64::from(accounts));
            prop_assert_eq!(inv.issued, inv.term_start);
            prop_assert_eq!(inv.issued.day(), 1);
        }

        #[test]
        fn invoice_at_raises_one_invoice_per_term(start in real_date(), years in 1i64..6) {
            let t = Tariff::new(1_000, 12_000);
            let c = BilledContract { start, first_end: first_term_end(start).unwrap(), accounts: 1, delivered: None, cancellation: None, ended: None };
            let mut count = 0;
            let mut day = start - TimeDelta::days(3);
            let stop = c.first_end.checked_add_months(chrono::Months::new(12 * years as u32)).unwrap();
            while day <= stop {
                count += invoice_at(&t, &c, day).unwrap().len();
                day = day.succ_opt().unwrap();
            }
            prop_assert_eq!(count, 1 + years as usize);
        }

        #[test]
        fn interest_follows_art_31(amount in 0u64..1_000_000_000_000, due in real_date(), late in -30i64..2000) {
            let paid = due + TimeDelta::days(late);
            let i = late_interest(amount, due, paid).unwrap();
            let days = interest_days(due, paid);
            if late <= 10 {
                prop_assert_eq!(days, 0);
                prop_assert_eq!(i, 0);
            } else {
                prop_assert_eq!(days, (late - 1) as u64);
                let exact = u128::from(amount) * 145 * u128::from(days);
                prop_assert!(u128::from(i) * 365_000 <= exact);
                prop_assert!((u128::from(i) + 1) * 365_000 > exact);
            }
            // Paying a day later never costs less.
            prop_assert!(late_interest(amount, due, paid + TimeDelta::days(1)).unwrap() >= i);
        }

        #[test]
        fn charges_never_panic(
            annual in any::<u64>(), accounts in any::<u32>(), months in any::<u32>(), rate in any::<u32>(),
            a in any_date(), b in any_date(), c in any_date(), amount in any::<u64>(),
        ) {
            let _ = usage_fee(annual, accounts, months);
            let _ = tax(annual, rate);
            let t = Tariff { initial_fee: amount, annual_fee_per_account: annual, options: vec![], tax_rate_bp: rate, start_month_free: months % 2 == 0 };
            let _ = first_term_invoice(&t, a, month_end(b), accounts, c);
            let _ = renewal_invoice(&t, month_end(a), accounts);
            let bc = BilledContract { start: a, first_end: month_end(b), accounts, delivered: None, cancellation: None, ended: Some(c) };
            let _ = invoice_at(&t, &bc, c);
            let _ = invoice_at(&t, &bc, a);
            let _ = late_interest(amount, a, b);
            let _ = is_overdue(a, Some(b), c);
        }
    }
}
