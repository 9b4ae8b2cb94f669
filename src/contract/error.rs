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

    /// A dunning rule (art. 23-1(1), 28-3) that makes no sense; the text says why.
    #[error("{0}")]
    Dunning(String),

    #[error("{end} is before {start}")]
    EndBeforeStart { start: NaiveDate, end: NaiveDate },

    #[error("outage ends at {end}, before it starts at {start}")]
    OutageEndsBeforeStart { start: NaiveDateTime, end: NaiveDateTime },

    #[error("{0} is not the last day of a month (term ends and cancellations fall on month ends, art. 13, 14, 18)")]
    NotMonthEnd(NaiveDate),

    #[error("cancellation would take effect on {effective}, before the contract starts on {start}")]
    CancelledBeforeStart { start: NaiveDate, effective: NaiveDate },

    #[error(
        "the cancellation form arrived after the deadline for ending the contract on {asked} (the form had to \
         arrive by {deadline}, art. 14, 18-2, 18-4); the terms do not move the date by themselves: {choices}"
    )]
    CancellationLate {
        asked: NaiveDate,
        deadline: NaiveDate,
        choices: String,
    },

    #[error(
        "a cancellation cannot end the contract on {asked}, before its service starts on {start}: art. 18 ends \
         a contract at the end of a term or an earlier month end of it, and the terms know no withdrawal before \
         the start; {choices}"
    )]
    CancellationBeforeStart {
        start: NaiveDate,
        asked: NaiveDate,
        choices: String,
    },

    #[error(
        "{0:?} is not an e-mail address for the account administrator: a contract names one (art. 3, 5), and \
         every notice goes to that address (art. 39); give it with --admin-email ADDRESS"
    )]
    AdminEmail(String),

    #[error("{0}")]
    NotInForce(String),

    #[error("date arithmetic out of range: {0}")]
    DateOutOfRange(&'static str),

    #[error("amount out of range: {0}")]
    AmountOverflow(&'static str),
}
