//! Small rules the admin commands and the hub apply around the calendar: who is told
//! (art. 3, 5, 39), when the service may be used (art. 6, 7), what can still be added
//! to a contract (art. 12) and when a renewal reminder is due (art. 14). Pure: the
//! caller passes today's date in the operator's zone ([`today_in`](super::today_in)).

use chrono::NaiveDate;

use super::calendar::{cancellation_deadline, TermStatus};
use super::ContractError;

/// Checks the account administrator's e-mail of a contract and returns it trimmed.
///
/// Art. 3 and 5: the contractor names one account administrator when applying; art. 39
/// sends every notice to the administrator's registered address, and art. 23-1(4) and
/// 24-3 turn on whether that address can be reached. A contract without one would
/// queue notices that can never be sent, so it is refused (also when the address is
/// changed to nothing, art. 17, 39-2). The check is deliberately loose (one `@`, a
/// dotted domain, no spaces): the mail server has the last word, and a refusal
/// (5xx) marks the notice undeliverable.
pub fn check_admin_email(email: &str) -> Result<String, ContractError> {
    let e = email.trim();
    let ok = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
        }
        None => false,
    };
    if ok {
        Ok(e.to_string())
    } else {
        Err(ContractError::AdminEmail(email.to_string()))
    }
}

/// Why a contract's service cannot be used yet on `today`, or `None` once it has
/// started. Art. 6 and 7: the operator accepts the application and tells the contractor
/// the service start date (サービス提供開始日); the service is provided from that day
/// (the first term counts from it, art. 13), not before.
#[must_use]
pub fn not_started(contract: &str, start: NaiveDate, today: NaiveDate) -> Option<String> {
    (today < start).then(|| {
        format!("the service of contract {contract} starts on {start} (art. 6, 7); logins are refused until then")
    })
}

/// Why no additional contract can be added, if so: a contract that has ended (state
/// `terminated` or `cancelled`), or one whose recorded cancellation ends it before the
/// additional contract would start. Art. 12 adds accounts to a contract unit in force.
pub fn additional_refusal(
    contract: &str,
    ended_state: Option<&str>,
    last_day: Option<NaiveDate>,
    start: NaiveDate,
) -> Result<(), ContractError> {
    if let Some(state) = ended_state {
        return Err(ContractError::NotInForce(format!(
            "contract {contract} is {state}: an additional contract adds accounts to a contract in force (art. 12)"
        )));
    }
    if let Some(last) = last_day.filter(|&l| start > l) {
        return Err(ContractError::NotInForce(format!(
            "contract {contract} ends on {last} (cancellation, art. 18): an additional contract from {start} would \
             start after it"
        )));
    }
    Ok(())
}

/// A renewal reminder that is due: the term that renews and its cancellation deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalReminder {
    pub term_end: NaiveDate,
    pub deadline: NaiveDate,
    /// Identifies the reminder of this term for this contract, whatever the contract is
    /// called by then: one reminder per term, even after a rename (art. 17).
    pub key: String,
}

/// The renewal reminder due on `today`, if any: for a term in force that will renew
/// (art. 14), from `window_days` days before its cancellation deadline up to the
/// deadline itself. The caller sends it once per [`RenewalReminder::key`].
pub fn renewal_reminder_due(
    status: &TermStatus,
    today: NaiveDate,
    window_days: i64,
) -> Result<Option<RenewalReminder>, ContractError> {
    let TermStatus::Active { term, renews: true, .. } = status else {
        return Ok(None);
    };
    let deadline = cancellation_deadline(term.end)?;
    let days_left = (deadline - today).num_days();
    if !(0..=window_days).contains(&days_left) {
        return Ok(None);
    }
    Ok(Some(RenewalReminder {
        term_end: term.end,
        deadline,
        key: format!("renewal:{}", term.end),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{first_term_end, term_at};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn admin_email_is_required() {
        assert_eq!(check_admin_email(" it@acme.example ").unwrap(), "it@acme.example");
        assert_eq!(check_admin_email("総務@会社.jp").unwrap(), "総務@会社.jp");
        for bad in [
            "",
            "  ",
            "it",
            "it@",
            "@acme.example",
            "it@acme",
            "it@@acme.example",
            "i t@acme.example",
            "a@b.",
            "Sato <it@acme.example>",
        ] {
            let e = check_admin_email(bad).unwrap_err();
            assert!(e.to_string().contains("--admin-email"), "{bad:?}: {e}");
            assert!(e.to_string().contains("art. 39"), "{e}");
        }
    }

    #[test]
    fn not_started_until_the_start_day() {
        let start = d(2027, 3, 15);
        assert!(not_started("acme", start, d(2027, 3, 14))
            .unwrap()
            .contains("starts on 2027-03-15"));
        assert_eq!(not_started("acme", start, start), None);
        assert_eq!(not_started("acme", start, d(2028, 1, 1)), None);
    }

    #[test]
    fn additional_contracts_only_while_in_force() {
        assert!(additional_refusal("acme", None, None, d(2027, 1, 1)).is_ok());
        let e = additional_refusal("acme", Some("terminated"), None, d(2027, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("acme is terminated"), "{e}");
        assert!(additional_refusal("acme", Some("cancelled"), None, d(2027, 1, 1)).is_err());
        assert!(additional_refusal("acme", None, Some(d(2027, 4, 30)), d(2027, 4, 30)).is_ok());
        let e = additional_refusal("acme", None, Some(d(2027, 4, 30)), d(2027, 5, 1)).unwrap_err();
        assert!(e.to_string().contains("ends on 2027-04-30"), "{e}");
    }

    #[test]
    fn renewal_reminder_window() {
        let start = d(2026, 11, 24);
        let end = first_term_end(start).unwrap(); // 2027-11-30, deadline 2027-10-31
        let at = |day| renewal_reminder_due(&term_at(start, end, None, day).unwrap(), day, 30).unwrap();
        assert_eq!(at(d(2027, 9, 30)), None);
        let r = at(d(2027, 10, 1)).unwrap();
        assert_eq!((r.term_end, r.deadline), (d(2027, 11, 30), d(2027, 10, 31)));
        assert_eq!(r.key, "renewal:2027-11-30");
        assert_eq!(at(d(2027, 10, 31)).unwrap().key, r.key);
        assert_eq!(at(d(2027, 11, 1)), None);
        // The next term's reminder has its own key.
        assert_eq!(at(d(2028, 10, 15)).unwrap().key, "renewal:2028-11-30");
        // Not started, or not renewing: none.
        assert_eq!(
            renewal_reminder_due(&TermStatus::NotStarted { starts: start }, d(2026, 11, 1), 30).unwrap(),
            None
        );
    }
}
