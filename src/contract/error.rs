//! Errors of the contract rules. Every message says what was wrong and, where the
//! terms decide it, which article.

use chrono::{NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "contract kind {0:?} refused: the service is for corporations and public bodies only \
         (art. 11); use \"corporation\" or \"public-body\""
    )]
    UnknownKind(String),

    #[error("a basic contract needs at least {min} accounts (art. 12), this one has {accounts}")]
    TooFewAccounts { min: u32, accounts: u32 },

    #[error("additional contract {index} adds no accounts (art. 12: it adds accounts to the basic contract)")]
    EmptyAdditional { index: usize },

    #[error(
        "additional contract starting {additional} is before its basic contract's start {basic} \
         (art. 12: it is made after the basic contract)"
    )]
    AdditionalBeforeBasic { basic: NaiveDate, additional: NaiveDate },

    #[error("{end} is before {start}")]
    EndBeforeStart { start: NaiveDate, end: NaiveDate },

    #[error("outage ends at {end}, before it starts at {start}")]
    OutageEndsBeforeStart { start: NaiveDateTime, end: NaiveDateTime },

    #[error("{0} is not the last day of a month (term ends and cancellations fall on month ends, art. 13, 14, 18)")]
    NotMonthEnd(NaiveDate),

    #[error("cancellation would take effect on {effective}, before the contract starts on {start}")]
    CancelledBeforeStart { start: NaiveDate, effective: NaiveDate },

    #[error("date arithmetic out of range: {0}")]
    DateOutOfRange(&'static str),

    #[error("amount out of range: {0}")]
    AmountOverflow(&'static str),
}
