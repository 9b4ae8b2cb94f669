//! Payment deadlines, invoice states and the dunning rule (art. 23-1(1), 28-3, 31), as
//! pure functions of dates in the operator's zone.
//!
//! The terms leave the due date to the invoice (art. 28-3: "請求書に記載する支払期日"), so
//! the operator chooses it: the last day of the month `due_months` after the issue
//! month (default 1: "翌月末払い", the usual Japanese business term). Art. 23-1(1) lets
//! the operator suspend the service once a debt is unpaid past its due date, and says
//! nothing about reminders: the [`DunningRule`] says when the reminder goes out and when
//! the suspension follows, counted in days past the due date.

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use super::calendar::month_end;
use super::{ContractError, Yen};

/// When invoices fall due and how an unpaid one is pursued. Stored as a hub setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DunningRule {
    /// The due date is the last day of the month this many months after the issue month
    /// (0 = the issue month's end).
    pub due_months: u32,
    /// A reminder is queued once an invoice is this many days overdue (1 = the day after
    /// the due date).
    pub reminder_days: u32,
    /// The contract is suspended (art. 23-1(1)) once an invoice is this many days
    /// overdue; 0 means never automatically.
    pub suspend_days: u32,
}

impl Default for DunningRule {
    /// Due at the end of the next month; a reminder on the first overdue day; suspension
    /// 30 days later. The reminder comes well before the suspension so that it can serve
    /// as its advance notice (art. 23-2).
    fn default() -> Self {
        DunningRule {
            due_months: 1,
            reminder_days: 1,
            suspend_days: 30,
        }
    }
}

impl DunningRule {
    /// Refuses a rule whose suspension would come before (or with) its reminder.
    pub fn check(&self) -> Result<(), ContractError> {
        if self.reminder_days == 0 {
            return Err(ContractError::Dunning(
                "the reminder goes out at 1 day overdue at the earliest (--reminder-days 1)".into(),
            ));
        }
        if self.suspend_days != 0 && self.suspend_days <= self.reminder_days {
            return Err(ContractError::Dunning(format!(
                "the suspension ({} days overdue) must come after the reminder ({} days): \
                 give --suspend-days more than --reminder-days, or 0 for no automatic suspension",
                self.suspend_days, self.reminder_days
            )));
        }
        if self.due_months > 12 {
            return Err(ContractError::Dunning("--due-months is at most 12".into()));
        }
        Ok(())
    }

    /// The due date of an invoice issued on `issued` (art. 28-3).
    pub fn due_date(&self, issued: NaiveDate) -> Result<NaiveDate, ContractError> {
        let month = issued
            .checked_add_months(Months::new(self.due_months))
            .ok_or(ContractError::DateOutOfRange("due date beyond the representable dates"))?;
        Ok(month_end(month))
    }

    /// What the rule asks for on `today` for an invoice due on `due` and still unpaid.
    /// Both steps are due from their day on (not only on it), so a job that missed days
    /// catches up; the caller makes each happen once.
    #[must_use]
    pub fn step(&self, due: NaiveDate, today: NaiveDate) -> DunningStep {
        let overdue = days_overdue(due, today);
        if self.suspend_days > 0 && overdue >= i64::from(self.suspend_days) {
            DunningStep::Suspend
        } else if overdue >= i64::from(self.reminder_days) {
            DunningStep::Remind
        } else {
            DunningStep::Nothing
        }
    }

    /// The day an invoice due on `due` leads to a suspension if still unpaid.
    #[must_use]
    pub fn suspension_day(&self, due: NaiveDate) -> Option<NaiveDate> {
        (self.suspend_days > 0).then(|| due + chrono::TimeDelta::days(i64::from(self.suspend_days)))
    }
}

/// Days past the due date on `today` (0 on the due date itself and before it).
#[must_use]
pub fn days_overdue(due: NaiveDate, today: NaiveDate) -> i64 {
    (today - due).num_days().max(0)
}

/// What an unpaid invoice calls for today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DunningStep {
    Nothing,
    Remind,
    Suspend,
}

/// An invoice's state, derived from its due date and the payments against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceState {
    Open,
    Paid,
    Overdue,
}

impl InvoiceState {
    pub fn as_str(&self) -> &'static str {
        match self {
            InvoiceState::Open => "open",
            InvoiceState::Paid => "paid",
            InvoiceState::Overdue => "overdue",
        }
    }
}

/// The state on `today` of an invoice of `total` due on `due`, given what has been paid
/// against it by then. Paid means paid in full; a part payment leaves it open (or
/// overdue), since art. 23 and 31 speak of the debt not paid.
#[must_use]
pub fn invoice_state(total: Yen, paid: Yen, due: NaiveDate, today: NaiveDate) -> InvoiceState {
    if paid >= total {
        InvoiceState::Paid
    } else if today > due {
        InvoiceState::Overdue
    } else {
        InvoiceState::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{parse_tz, start_of_day, today_in};
    use chrono::TimeDelta;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn due_at_the_end_of_the_next_month() {
        let r = DunningRule::default();
        assert_eq!(r.due_date(d(2026, 11, 24)).unwrap(), d(2026, 12, 31));
        assert_eq!(r.due_date(d(2027, 1, 31)).unwrap(), d(2027, 2, 28));
        assert_eq!(r.due_date(d(2027, 12, 1)).unwrap(), d(2028, 1, 31));
        let same_month = DunningRule { due_months: 0, ..r };
        assert_eq!(same_month.due_date(d(2028, 2, 3)).unwrap(), d(2028, 2, 29));
    }

    #[test]
    fn steps_start_on_their_day() {
        let r = DunningRule {
            due_months: 1,
            reminder_days: 7,
            suspend_days: 20,
        };
        let due = d(2027, 1, 31);
        assert_eq!(r.step(due, due), DunningStep::Nothing);
        assert_eq!(r.step(due, d(2027, 2, 6)), DunningStep::Nothing);
        assert_eq!(r.step(due, d(2027, 2, 7)), DunningStep::Remind, "7 days overdue");
        assert_eq!(r.step(due, d(2027, 2, 19)), DunningStep::Remind);
        assert_eq!(r.step(due, d(2027, 2, 20)), DunningStep::Suspend, "20 days overdue");
        assert_eq!(r.suspension_day(due), Some(d(2027, 2, 20)));
        let never = DunningRule { suspend_days: 0, ..r };
        assert_eq!(never.step(due, d(2030, 1, 1)), DunningStep::Remind);
        assert_eq!(never.suspension_day(due), None);
    }

    /// "Today" is a day in Tokyo: at 23:59 JST on the due date nothing is overdue, one
    /// minute later (still the due date in UTC) the reminder is due.
    #[test]
    fn the_day_turns_at_midnight_in_tokyo() {
        let tz = parse_tz("Asia/Tokyo").unwrap();
        let r = DunningRule::default();
        let due = d(2027, 1, 31);
        let midnight = start_of_day(tz, d(2027, 2, 1));
        let before = today_in(tz, midnight - TimeDelta::minutes(1));
        let after = today_in(tz, midnight);
        assert_eq!(midnight.date_naive(), d(2027, 1, 31), "15:00 UTC the day before");
        assert_eq!(r.step(due, before), DunningStep::Nothing);
        assert_eq!(r.step(due, after), DunningStep::Remind);
        assert_eq!(invoice_state(100, 0, due, before), InvoiceState::Open);
        assert_eq!(invoice_state(100, 0, due, after), InvoiceState::Overdue);
    }

    #[test]
    fn state_follows_payments_and_due_date() {
        let due = d(2027, 1, 31);
        assert_eq!(invoice_state(100, 100, due, d(2027, 3, 1)), InvoiceState::Paid);
        assert_eq!(invoice_state(100, 99, due, due), InvoiceState::Open);
        assert_eq!(invoice_state(100, 99, due, d(2027, 2, 1)), InvoiceState::Overdue);
        assert_eq!(invoice_state(0, 0, due, d(2027, 2, 1)), InvoiceState::Paid);
    }

    #[test]
    fn rules_that_make_no_sense_are_refused() {
        assert!(DunningRule::default().check().is_ok());
        let bad = DunningRule {
            due_months: 1,
            reminder_days: 10,
            suspend_days: 10,
        };
        assert!(bad.check().unwrap_err().to_string().contains("--suspend-days"));
        let no_auto = DunningRule { suspend_days: 0, ..bad };
        assert!(no_auto.check().is_ok());
        assert!(DunningRule {
            reminder_days: 0,
            ..DunningRule::default()
        }
        .check()
        .is_err());
    }
}
