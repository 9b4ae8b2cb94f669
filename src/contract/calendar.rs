//! The contract calendar: first term (art. 13), auto-renewal and the cancellation
//! deadline (art. 14), cancellation (art. 18) and the operator's termination notice
//! (art. 24-3).
//!
//! All term ends and cancellation dates are month ends, so the arithmetic works on a
//! month index (`year * 12 + month0`) and turns an index back into the last day of
//! that month; it never adds days to a date and so needs no care for short months or
//! February 29.
//!
//! Dates are calendar days in the hub's contract time zone (Japan for the original
//! terms). A contract whose last day is `D` serves until the end of `D`: on `D + 1` it
//! has ended. There are no refunds for the rest of a term (art. 18-4, 23-1, 24-1/2).

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta};
use serde::{Deserialize, Serialize};

use super::ContractError;

/// The number of months from the start month to the first term's end month. Art. 13
/// counts one year "from the month following the start month" (翌月から１年): the year
/// begins on the first day of the next month and, counted as the Civil Code counts a
/// period from the start of a month (民法 143), ends on the last day of the twelfth
/// month. So the first term is the (free, art. 27-2) start month plus 12 months.
const FIRST_TERM_MONTHS: i64 = 12;
/// Each renewal is "one year as a unit" (１年を単位に, art. 14).
const RENEWAL_MONTHS: i64 = 12;
/// Art. 24-3: an undelivered termination notice takes effect five days after sending.
const UNDELIVERED_NOTICE_DAYS: i64 = 5;

/// Months since year 0: `year * 12 + month0`. Every valid date has one.
pub(crate) fn month_index(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

/// The last day of the month with index `idx`, or an error if that month lies outside
/// the dates chrono can represent.
pub(crate) fn end_of_month_index(idx: i64) -> Result<NaiveDate, ContractError> {
    let out = ContractError::DateOutOfRange("month end beyond the representable dates");
    let year = i32::try_from(idx.div_euclid(12)).map_err(|_| out.clone())?;
    let month = u32::try_from(idx.rem_euclid(12)).map_err(|_| out.clone())? + 1;
    [31, 30, 29, 28]
        .into_iter()
        .find_map(|day| NaiveDate::from_ymd_opt(year, month, day))
        .ok_or(out)
}

/// The last day of the month `months` months after `d`'s month (negative: before).
fn month_end_after(d: NaiveDate, months: i64) -> Result<NaiveDate, ContractError> {
    let idx = month_index(d)
        .checked_add(months)
        .ok_or(ContractError::DateOutOfRange("month offset overflows"))?;
    end_of_month_index(idx)
}

/// Whole months from `a`'s month to `b`'s month (negative if `b` is earlier).
pub(crate) fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    month_index(b) - month_index(a)
}

/// The last day of `d`'s month. Every month of a representable date has its last day
/// representable too, so this cannot fail.
#[must_use]
pub fn month_end(d: NaiveDate) -> NaiveDate {
    [31, 30, 29, 28]
        .into_iter()
        .find_map(|day| d.with_day(day))
        .unwrap_or(d)
}

/// Whether `d` is the last day of its month. Term ends (art. 13, 14), cancellation
/// deadlines (art. 14) and cancellation dates (art. 18) are all month ends.
#[must_use]
pub fn is_month_end(d: NaiveDate) -> bool {
    month_end(d) == d
}

fn require_month_end(d: NaiveDate) -> Result<NaiveDate, ContractError> {
    if is_month_end(d) {
        Ok(d)
    } else {
        Err(ContractError::NotMonthEnd(d))
    }
}

/// The end of a basic contract's first term (最初の契約期間, art. 13).
///
/// Art. 13: "満了日は、原則、提供開始日を含む月の翌月から１年後の月末の日とします". Reading:
/// a period of one year that begins on the first day of the month after the month
/// containing the service start date ends, as the Civil Code counts it (民法 141, 143),
/// on the last day of the twelfth month of that year; that day is a month end. The
/// first term is the start month (free, art. 27-2) plus twelve paid months:
///
/// - start 2026-11-24 → the year runs 2026-12-01 .. 2027-11-30 → ends **2027-11-30**;
/// - start 2027-01-01 → 2027-02-01 .. 2028-01-31; start 2026-12-31 → 2027-12-31;
/// - start 2030-01-31 → 2031-01-31.
///
/// Three other articles rule out the reading "one year after the following month"
/// (thirteen months, 2026-11-24 → 2027-12-31): art. 28-1 bills the first term's
/// *annual* usage fee (年間使用料) at delivery, one year's fee for twelve paid months;
/// art. 13 ¶3 gives an additional contract that starts in the basic contract's end
/// month its own first term "from the following month", which ends on the same day as
/// the basic contract's renewed term only under this reading; and art. 14 renews in
/// units of one year.
///
/// The same rule gives an additional contract's own first term when it starts in the
/// month of the basic contract's current end; see [`additional_first_end`].
pub fn first_term_end(start: NaiveDate) -> Result<NaiveDate, ContractError> {
    month_end_after(start, FIRST_TERM_MONTHS)
}

/// The end of the renewal term (延長契約期間) that follows a term ending on `term_end`.
///
/// Art. 14: after the first term, basic and additional contracts renew automatically
/// "one year as a unit" (１年を単位に). A term ends on a month end, so the renewal runs
/// from the first day of the next month to the last day of the same month one year
/// later (2027-11-30 → 2028-11-30; 2028-02-29 → 2029-02-28).
pub fn renewed_end(term_end: NaiveDate) -> Result<NaiveDate, ContractError> {
    month_end_after(require_month_end(term_end)?, RENEWAL_MONTHS)
}

/// The cancellation deadline (解約申込期限) for a term ending on `term_end`.
///
/// Art. 14: the contract renews unless the cancellation form reaches the operator by
/// "the last day of the month before the end date" (当該満了日の前月の月末日). Art. 18-4
/// applies the same deadline — the last day of the previous month — to a cancellation
/// at any earlier month end. So for any month end `M`, the deadline is the last day of
/// the month before `M` (2027-11-30 → 2027-10-31; 2028-03-31 → 2028-02-29).
pub fn cancellation_deadline(term_end: NaiveDate) -> Result<NaiveDate, ContractError> {
    month_end_after(require_month_end(term_end)?, -1)
}

/// The end of an additional contract's first term (art. 13, paragraphs 2–4).
///
/// - An additional contract's first term counts from its own start date and, "in
///   principle", ends with the basic contract's first term (基本契約の「最初の契約期間」
///   の満了日までとなります).
/// - "However", if it starts in the same month as that end, it gets its own first term
///   by the basic contract's rule, [`first_term_end`]: one year from the following
///   month. That is exactly the basic contract's renewed term, so the two end on the
///   same day again (basic from 2026-11-24 ends 2027-11-30 and renews to 2028-11-30;
///   an additional contract from 2027-11-10 ends 2028-11-30 too).
/// - If it starts after the basic contract has renewed, "the basic contract's first
///   end" reads "the end after renewal" (自動延長後の契約満了日): the end of the basic
///   contract's term in force on the additional contract's start date.
///
/// `basic_first_end` is the basic contract's first-term end ([`first_term_end`] of its
/// start) and must be a month end. That the additional contract does not start before
/// the basic one is checked by [`ContractUnit::validate`](super::ContractUnit::validate);
/// here an earlier start simply ends with the basic first term.
pub fn additional_first_end(
    basic_first_end: NaiveDate,
    additional_start: NaiveDate,
) -> Result<NaiveDate, ContractError> {
    require_month_end(basic_first_end)?;
    let behind = months_between(basic_first_end, additional_start);
    // Renewals of the basic contract completed before the additional contract starts:
    // the smallest k with basic_first_end + 12k months not before the start month.
    let renewals = if behind <= 0 {
        0
    } else {
        (behind + RENEWAL_MONTHS - 1) / RENEWAL_MONTHS
    };
    let basic_end = month_end_after(basic_first_end, renewals * RENEWAL_MONTHS)?;
    if months_between(basic_end, additional_start) == 0 {
        first_term_end(additional_start)
    } else {
        Ok(basic_end)
    }
}

/// A cancellation form (解約申込書, art. 18-1) as received and accepted by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The day the form reached the operator (到達, art. 14 and 18-2 count arrival,
    /// not sending), in the operator's time zone.
    pub received: NaiveDate,
    /// The month end the contractor asked for (解約希望月末, art. 18-2, 18-4), if any.
    pub requested_end: Option<NaiveDate>,
    /// The contract's last day, as [`cancellation_effective`] decided when the form
    /// was accepted (it depends on the term in force then).
    pub effective: NaiveDate,
}

impl Cancellation {
    /// The contract's last day under this cancellation.
    #[must_use]
    pub fn effective(&self) -> NaiveDate {
        self.effective
    }
}

/// What a cancellation form can still take, for the refusals of
/// [`cancellation_effective`]: the earliest month end whose deadline it met (and not
/// before the start month), and the term end or, if that deadline passed too, the end
/// of the renewed term.
fn cancellation_choices(start: NaiveDate, term_end: NaiveDate, received: NaiveDate) -> Result<String, ContractError> {
    let earliest = month_end_after(received, 1)?.max(month_end(start));
    let (end, flag) = if cancellation_deadline(term_end)? >= received {
        (term_end, "without `--end`".to_string())
    } else {
        let renewed = renewed_end(term_end)?;
        (renewed, format!("`--end {renewed}`"))
    };
    Ok(if earliest >= end {
        format!("it can end the contract at the term end {end} ({flag})")
    } else {
        format!(
            "it can end the contract on {earliest} at the earliest (record that with `--end {earliest}`), or at \
             the term end {end} ({flag}); record what the customer confirms"
        )
    })
}

/// The last day of service under a cancellation form received on `received`, for a
/// contract that starts on `start` with its first term ending on `first_end`.
///
/// - **No month end chosen: the term end** (art. 18-1: 契約期間満了日をもって解約), the end
///   of the term in force on `received` (the first term if the service has not
///   started), provided the form arrived by that end's deadline, the last day of the
///   month before it (art. 14). Received 2027-03-10 for a term ending 2027-11-30 →
///   2027-11-30.
/// - **A chosen month end** (art. 18-4, それ以前の月末日をもって): that month end, if the
///   form arrived by its deadline, the last day of the month before it. A later month
///   end than the term end is taken too: the term renews (art. 14) and the contract
///   ends then.
/// - **A deadline that has passed is refused**, not moved: art. 18-2 sends a late form
///   to art. 14 (the contract renews) and the terms do not choose another date on the
///   customer's behalf. The error names the earliest month end the form can still take
///   and the term end, so the operator records what the customer confirms. Asked on
///   2027-03-15 to end on 2027-03-31 (deadline 2027-02-28): refused, naming
///   `--end 2027-04-30` and the term end 2027-11-30.
/// - **A month end before the service starts is refused**: art. 18 cancels a contract
///   at the end of a term or at an earlier month end *of* it; the terms know no
///   withdrawal before the start (arts. 6, 7), so that is a matter for the operator and
///   the customer, not a date to record here.
///
/// `requested_end` must be a month end ([`ContractError::NotMonthEnd`] otherwise):
/// silently moving a date the contractor wrote would hide a data-entry error. Service
/// stops at the end of the returned day (24:00 in the operator's time zone); fees
/// already paid are not refunded (art. 18-4).
pub fn cancellation_effective(
    start: NaiveDate,
    first_end: NaiveDate,
    received: NaiveDate,
    requested_end: Option<NaiveDate>,
) -> Result<NaiveDate, ContractError> {
    require_month_end(first_end)?;
    let term_end = if received < start {
        first_end
    } else {
        term_containing(start, first_end, received)?.end
    };
    match requested_end {
        None => {
            let deadline = cancellation_deadline(term_end)?;
            if received <= deadline {
                Ok(term_end)
            } else {
                Err(ContractError::CancellationLate {
                    asked: term_end,
                    deadline,
                    choices: cancellation_choices(start, term_end, received)?,
                })
            }
        }
        Some(asked) => {
            require_month_end(asked)?;
            if asked < start {
                return Err(ContractError::CancellationBeforeStart {
                    start,
                    asked,
                    choices: cancellation_choices(start, term_end, received)?,
                });
            }
            let deadline = cancellation_deadline(asked)?;
            if received <= deadline {
                Ok(asked)
            } else {
                Err(ContractError::CancellationLate {
                    asked,
                    deadline,
                    choices: cancellation_choices(start, term_end, received)?,
                })
            }
        }
    }
}

/// One term of a contract: the first term (`renewals == 0`) or the `renewals`-th
/// renewal (延長契約期間). Both ends are included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub renewals: u32,
}

/// Where a contract stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TermStatus {
    /// The service start date is still ahead.
    NotStarted { starts: NaiveDate },
    /// In force during `term`. `renews` says whether the term will renew at its end
    /// (art. 14); `last_day` is the cancellation date if the contract ends within this
    /// term (a month end not after `term.end`), and `None` otherwise.
    Active {
        term: Term,
        renews: bool,
        last_day: Option<NaiveDate>,
    },
    /// Cancelled; `last_day` was the last day of service (accounts stop at its end).
    Ended { last_day: NaiveDate },
}

/// The term a contract is in on `at`, or whether it has not started or has ended.
///
/// `start` is the contract's service start date and `first_end` its first-term end
/// ([`first_term_end`] for a basic contract, [`additional_first_end`] for an
/// additional one). Renewed terms follow one year at a time (art. 14,
/// [`renewed_end`]): term `k` runs from the day after term `k - 1`'s end to the last
/// day of the same month a year later. A cancellation ends the contract on its
/// [`Cancellation::effective`] day; the contract is `Ended` from the next day. A
/// cancellation that met the term end's deadline (art. 14) makes the term not renew.
///
/// Errors: `first_end` before `start` or not a month end, a cancellation taking effect
/// before the contract starts, or dates beyond chrono's range.
pub fn term_at(
    start: NaiveDate,
    first_end: NaiveDate,
    cancellation: Option<&Cancellation>,
    at: NaiveDate,
) -> Result<TermStatus, ContractError> {
    require_month_end(first_end)?;
    if first_end < start {
        return Err(ContractError::EndBeforeStart { start, end: first_end });
    }
    let last_day = cancellation.map(Cancellation::effective);
    if let Some(effective) = last_day {
        if effective < start {
            return Err(ContractError::CancelledBeforeStart { start, effective });
        }
    }
    if at < start {
        return Ok(TermStatus::NotStarted { starts: start });
    }
    if let Some(last_day) = last_day.filter(|&l| at > l) {
        return Ok(TermStatus::Ended { last_day });
    }
    let term = term_containing(start, first_end, at)?;
    let last_day = last_day.filter(|&l| l <= term.end);
    Ok(TermStatus::Active {
        term,
        renews: last_day.is_none(),
        last_day,
    })
}

/// The term (first or renewed) containing `at`, ignoring cancellation; `at >= start`.
fn term_containing(start: NaiveDate, first_end: NaiveDate, at: NaiveDate) -> Result<Term, ContractError> {
    if at <= first_end {
        return Ok(Term {
            start,
            end: first_end,
            renewals: 0,
        });
    }
    let behind = months_between(first_end, at);
    let renewals = (behind + RENEWAL_MONTHS - 1) / RENEWAL_MONTHS;
    let end = month_end_after(first_end, renewals * RENEWAL_MONTHS)?;
    let previous_end = month_end_after(first_end, (renewals - 1) * RENEWAL_MONTHS)?;
    let term_start = previous_end.succ_opt().ok_or(ContractError::DateOutOfRange(
        "term start beyond the representable dates",
    ))?;
    let renewals = u32::try_from(renewals).map_err(|_| ContractError::DateOutOfRange("too many renewals"))?;
    Ok(Term {
        start: term_start,
        end,
        renewals,
    })
}

/// When the operator's termination (契約の解除) takes effect if its notice could not be
/// delivered.
///
/// Art. 24-3: the operator notifies the contractor before terminating; "if the notice
/// does not arrive for some reason, the contract is terminated when five days have
/// passed from the time the notice was sent" (通知を送付した時点から５日経過した時点).
/// That is a point in time, so this takes and returns a date-time: `sent` plus
/// 5 × 24 hours. (Art. 6-4 deems ordinary notices delivered when sent; art. 24-3 is
/// the specific rule for a termination notice that is known not to have arrived.)
pub fn termination_effective_undelivered(sent: NaiveDateTime) -> Result<NaiveDateTime, ContractError> {
    TimeDelta::try_days(UNDELIVERED_NOTICE_DAYS)
        .and_then(|five_days| sent.checked_add_signed(five_days))
        .ok_or(ContractError::DateOutOfRange(
            "termination date beyond the representable dates",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn active(status: TermStatus) -> (Term, bool, Option<NaiveDate>) {
        match status {
            TermStatus::Active { term, renews, last_day } => (term, renews, last_day),
            other => panic!("expected an active term, got {other:?}"),
        }
    }

    #[test]
    fn month_end_and_is_month_end() {
        assert_eq!(month_end(d(2027, 2, 3)), d(2027, 2, 28));
        assert_eq!(month_end(d(2028, 2, 3)), d(2028, 2, 29));
        assert_eq!(month_end(d(2027, 4, 30)), d(2027, 4, 30));
        assert_eq!(month_end(NaiveDate::MAX), NaiveDate::MAX);
        assert!(is_month_end(d(2028, 2, 29)));
        assert!(!is_month_end(d(2028, 2, 28)));
        assert!(is_month_end(d(2027, 2, 28)));
        assert!(is_month_end(d(2027, 12, 31)));
    }

    #[test]
    fn first_term_examples_from_the_issue() {
        // Issue 16, item 1: twelve months after the start month (民法 143).
        assert_eq!(first_term_end(d(2026, 11, 24)).unwrap(), d(2027, 11, 30));
        assert_eq!(cancellation_deadline(d(2027, 11, 30)).unwrap(), d(2027, 10, 31));
        assert_eq!(first_term_end(d(2027, 1, 1)).unwrap(), d(2028, 1, 31));
        assert_eq!(first_term_end(d(2026, 12, 31)).unwrap(), d(2027, 12, 31));
        assert_eq!(first_term_end(d(2030, 1, 31)).unwrap(), d(2031, 1, 31));
    }

    #[test]
    fn first_term_month_ends_and_leap_years() {
        // Start on a month end: the start month still counts as the start month.
        assert_eq!(first_term_end(d(2026, 11, 30)).unwrap(), d(2027, 11, 30));
        assert_eq!(first_term_end(d(2026, 12, 1)).unwrap(), d(2027, 12, 31));
        // Start on Feb 29 of a leap year: the year runs March .. February.
        assert_eq!(first_term_end(d(2028, 2, 29)).unwrap(), d(2029, 2, 28));
        // Ending in a non-leap February.
        assert_eq!(first_term_end(d(2026, 2, 28)).unwrap(), d(2027, 2, 28));
        // Ending in a leap February.
        assert_eq!(first_term_end(d(2027, 2, 1)).unwrap(), d(2028, 2, 29));
        assert_eq!(first_term_end(d(2027, 2, 28)).unwrap(), d(2028, 2, 29));
        // Century rule: 2100 is not a leap year, 2000 was.
        assert_eq!(first_term_end(d(2099, 2, 15)).unwrap(), d(2100, 2, 28));
        assert_eq!(first_term_end(d(1999, 2, 15)).unwrap(), d(2000, 2, 29));
    }

    #[test]
    fn renewal_keeps_the_month_and_takes_its_last_day() {
        assert_eq!(renewed_end(d(2027, 12, 31)).unwrap(), d(2028, 12, 31));
        assert_eq!(renewed_end(d(2028, 2, 29)).unwrap(), d(2029, 2, 28));
        assert_eq!(renewed_end(d(2031, 2, 28)).unwrap(), d(2032, 2, 29));
        assert_eq!(
            renewed_end(d(2027, 12, 30)),
            Err(ContractError::NotMonthEnd(d(2027, 12, 30)))
        );
    }

    #[test]
    fn deadline_is_the_last_day_of_the_previous_month() {
        assert_eq!(cancellation_deadline(d(2027, 12, 31)).unwrap(), d(2027, 11, 30));
        assert_eq!(cancellation_deadline(d(2028, 3, 31)).unwrap(), d(2028, 2, 29));
        assert_eq!(cancellation_deadline(d(2027, 3, 31)).unwrap(), d(2027, 2, 28));
        assert_eq!(cancellation_deadline(d(2028, 1, 31)).unwrap(), d(2027, 12, 31));
        assert!(matches!(
            cancellation_deadline(d(2028, 1, 30)),
            Err(ContractError::NotMonthEnd(_))
        ));
    }

    #[test]
    fn additional_contract_ends_with_the_basic_first_term() {
        let basic_end = first_term_end(d(2026, 11, 24)).unwrap(); // 2027-11-30
        assert_eq!(additional_first_end(basic_end, d(2026, 11, 24)).unwrap(), basic_end);
        assert_eq!(
            additional_first_end(basic_end, d(2027, 5, 10)).unwrap(),
            d(2027, 11, 30)
        );
        assert_eq!(additional_first_end(basic_end, d(2027, 10, 31)).unwrap(), basic_end);
    }

    #[test]
    fn additional_contract_in_the_end_month_gets_its_own_first_term() {
        // Issue 16, item 1: from 2027-11-10, in the basic contract's expiry month, it
        // ends 2028-11-30, the same day as the basic contract's first renewal.
        let basic_end = first_term_end(d(2026, 11, 24)).unwrap();
        assert_eq!(
            additional_first_end(basic_end, d(2027, 11, 10)).unwrap(),
            d(2028, 11, 30)
        );
        assert_eq!(renewed_end(basic_end).unwrap(), d(2028, 11, 30));
        // Even on the very last day of the basic term.
        assert_eq!(
            additional_first_end(basic_end, d(2027, 11, 30)).unwrap(),
            d(2028, 11, 30)
        );
        let basic_end = d(2027, 12, 31);
        assert_eq!(
            additional_first_end(basic_end, d(2027, 12, 1)).unwrap(),
            d(2028, 12, 31)
        );
        // Leap-year end month: basic ends 2028-02-29, additional starts that month.
        assert_eq!(
            additional_first_end(d(2028, 2, 29), d(2028, 2, 29)).unwrap(),
            d(2029, 2, 28)
        );
        assert_eq!(renewed_end(d(2028, 2, 29)).unwrap(), d(2029, 2, 28));
    }

    #[test]
    fn additional_contract_after_a_renewal_reads_the_renewed_end() {
        let basic_end = d(2027, 12, 31);
        // First day of the first renewal: ends with the renewed end.
        assert_eq!(additional_first_end(basic_end, d(2028, 1, 1)).unwrap(), d(2028, 12, 31));
        assert_eq!(
            additional_first_end(basic_end, d(2028, 11, 30)).unwrap(),
            d(2028, 12, 31)
        );
        // In the renewed end month: own first term, ending with the next renewal.
        assert_eq!(
            additional_first_end(basic_end, d(2028, 12, 5)).unwrap(),
            d(2029, 12, 31)
        );
        // Second renewal.
        assert_eq!(additional_first_end(basic_end, d(2029, 3, 1)).unwrap(), d(2029, 12, 31));
        assert!(matches!(
            additional_first_end(d(2027, 12, 30), d(2027, 1, 1)),
            Err(ContractError::NotMonthEnd(_))
        ));
    }

    #[test]
    fn terms_renew_after_one_and_two_years() {
        let start = d(2026, 11, 24);
        let first_end = first_term_end(start).unwrap();
        let (t, renews, last) = active(term_at(start, first_end, None, d(2027, 11, 30)).unwrap());
        assert_eq!(
            t,
            Term {
                start,
                end: d(2027, 11, 30),
                renewals: 0
            }
        );
        assert!(renews);
        assert_eq!(last, None);

        let (t, _, _) = active(term_at(start, first_end, None, d(2027, 12, 1)).unwrap());
        assert_eq!(
            t,
            Term {
                start: d(2027, 12, 1),
                end: d(2028, 11, 30),
                renewals: 1
            }
        );
        let (t, _, _) = active(term_at(start, first_end, None, d(2028, 11, 30)).unwrap());
        assert_eq!(t.renewals, 1);

        let (t, _, _) = active(term_at(start, first_end, None, d(2028, 12, 1)).unwrap());
        assert_eq!(
            t,
            Term {
                start: d(2028, 12, 1),
                end: d(2029, 11, 30),
                renewals: 2
            }
        );
        let (t, _, _) = active(term_at(start, first_end, None, d(2029, 6, 15)).unwrap());
        assert_eq!(t.renewals, 2);
    }

    #[test]
    fn renewal_across_a_leap_february() {
        let start = d(2027, 2, 1);
        let first_end = first_term_end(start).unwrap(); // 2028-02-29
        let (t, _, _) = active(term_at(start, first_end, None, d(2028, 3, 1)).unwrap());
        assert_eq!(
            t,
            Term {
                start: d(2028, 3, 1),
                end: d(2029, 2, 28),
                renewals: 1
            }
        );
        let (t, _, _) = active(term_at(start, first_end, None, d(2031, 3, 1)).unwrap());
        assert_eq!(
            t,
            Term {
                start: d(2031, 3, 1),
                end: d(2032, 2, 29),
                renewals: 4
            }
        );
    }

    #[test]
    fn before_start_is_not_started() {
        let start = d(2026, 11, 24);
        assert_eq!(
            term_at(start, d(2027, 12, 31), None, d(2026, 11, 23)).unwrap(),
            TermStatus::NotStarted { starts: start }
        );
    }

    /// A cancellation as the operator records it: accepted by [`cancellation_effective`].
    fn accepted(start: NaiveDate, received: NaiveDate, requested_end: Option<NaiveDate>) -> Cancellation {
        let effective = cancellation_effective(start, first_term_end(start).unwrap(), received, requested_end).unwrap();
        Cancellation {
            received,
            requested_end,
            effective,
        }
    }

    #[test]
    fn cancellation_on_the_deadline_stops_renewal() {
        let start = d(2026, 11, 24);
        let first_end = d(2027, 11, 30);
        let c = accepted(start, d(2027, 10, 31), None);
        assert_eq!(c.effective(), d(2027, 11, 30));
        let (t, renews, last) = active(term_at(start, first_end, Some(&c), d(2027, 11, 30)).unwrap());
        assert_eq!(t.renewals, 0);
        assert!(!renews);
        assert_eq!(last, Some(d(2027, 11, 30)));
        assert_eq!(
            term_at(start, first_end, Some(&c), d(2027, 12, 1)).unwrap(),
            TermStatus::Ended {
                last_day: d(2027, 11, 30)
            }
        );
    }

    #[test]
    fn without_a_month_end_the_term_end() {
        // Issue 16, item 2: art. 18-1, not the earliest month end.
        let start = d(2026, 11, 24);
        let first_end = first_term_end(start).unwrap();
        assert_eq!(
            cancellation_effective(start, first_end, d(2027, 3, 10), None).unwrap(),
            d(2027, 11, 30)
        );
        // In a renewed term: that term's end.
        assert_eq!(
            cancellation_effective(start, first_end, d(2028, 2, 1), None).unwrap(),
            d(2028, 11, 30)
        );
        // Before the start: the first term's end.
        assert_eq!(
            cancellation_effective(start, first_end, d(2026, 10, 1), None).unwrap(),
            d(2027, 11, 30)
        );
    }

    #[test]
    fn a_form_after_the_term_ends_deadline_is_refused_naming_the_choices() {
        let start = d(2026, 11, 24);
        let first_end = first_term_end(start).unwrap();
        // A day late for the term end (deadline 2027-10-31): the contract renews.
        let e = cancellation_effective(start, first_end, d(2027, 11, 1), None).unwrap_err();
        assert!(matches!(e, ContractError::CancellationLate { asked, deadline, .. }
            if asked == d(2027, 11, 30) && deadline == d(2027, 10, 31)));
        let m = e.to_string();
        assert!(m.contains("--end 2027-12-31") && m.contains("--end 2028-11-30"), "{m}");
    }

    #[test]
    fn an_earlier_month_end_whose_deadline_passed_is_refused() {
        // Issue 16, item 2: asked on 2027-03-15 to end on 2027-03-31.
        let start = d(2026, 11, 24);
        let first_end = first_term_end(start).unwrap();
        let e = cancellation_effective(start, first_end, d(2027, 3, 15), Some(d(2027, 3, 31))).unwrap_err();
        assert!(matches!(e, ContractError::CancellationLate { asked, deadline, .. }
            if asked == d(2027, 3, 31) && deadline == d(2027, 2, 28)));
        let m = e.to_string();
        assert!(m.contains("--end 2027-04-30"), "{m}");
        assert!(m.contains("the term end 2027-11-30 (without `--end`)"), "{m}");
        // On the deadline day itself it is in time; a day later it is not.
        assert_eq!(
            cancellation_effective(start, first_end, d(2027, 3, 31), Some(d(2027, 4, 30))).unwrap(),
            d(2027, 4, 30)
        );
        assert!(cancellation_effective(start, first_end, d(2027, 4, 1), Some(d(2027, 4, 30))).is_err());
        // Leap February: deadline 2028-01-31 for 2028-02-29.
        let start = d(2027, 6, 1);
        let first_end = first_term_end(start).unwrap(); // 2028-06-30
        assert_eq!(
            cancellation_effective(start, first_end, d(2028, 1, 31), Some(d(2028, 2, 29))).unwrap(),
            d(2028, 2, 29)
        );
        assert!(cancellation_effective(start, first_end, d(2028, 2, 1), Some(d(2028, 2, 29))).is_err());
        // Not a month end: refused as such.
        assert_eq!(
            cancellation_effective(start, first_end, d(2027, 3, 10), Some(d(2027, 4, 29))),
            Err(ContractError::NotMonthEnd(d(2027, 4, 29)))
        );
        // A later month end than the term end is the customer's choice: the term renews.
        let start = d(2026, 11, 24);
        assert_eq!(
            cancellation_effective(
                start,
                first_term_end(start).unwrap(),
                d(2027, 3, 10),
                Some(d(2028, 3, 31))
            )
            .unwrap(),
            d(2028, 3, 31)
        );
    }

    #[test]
    fn a_cancellation_before_the_start_is_refused() {
        // Issue 16, item 3: start 2027-03-15, received 2026-12-02, asked 2027-01-31.
        let start = d(2027, 3, 15);
        let first_end = first_term_end(start).unwrap();
        let e = cancellation_effective(start, first_end, d(2026, 12, 2), Some(d(2027, 1, 31))).unwrap_err();
        assert!(matches!(e, ContractError::CancellationBeforeStart { .. }));
        let m = e.to_string();
        assert!(m.contains("before its service starts on 2027-03-15"), "{m}");
        assert!(m.contains("--end 2027-03-31"), "{m}");
        // The start month's end is possible (service on 15..31 March).
        assert_eq!(
            cancellation_effective(start, first_end, d(2026, 12, 2), Some(d(2027, 3, 31))).unwrap(),
            d(2027, 3, 31)
        );
    }

    #[test]
    fn cancellation_at_an_earlier_month_end_ends_the_term_early() {
        let start = d(2026, 11, 24);
        let c = accepted(start, d(2027, 3, 10), Some(d(2027, 4, 30)));
        let (t, renews, last) = active(term_at(start, d(2027, 11, 30), Some(&c), d(2027, 4, 30)).unwrap());
        assert_eq!((t.renewals, renews, last), (0, false, Some(d(2027, 4, 30))));
        assert_eq!(
            term_at(start, d(2027, 11, 30), Some(&c), d(2027, 5, 1)).unwrap(),
            TermStatus::Ended {
                last_day: d(2027, 4, 30)
            }
        );
    }

    #[test]
    fn term_at_rejects_bad_input() {
        let start = d(2026, 11, 24);
        assert!(matches!(
            term_at(start, d(2026, 10, 31), None, start),
            Err(ContractError::EndBeforeStart { .. })
        ));
        assert!(matches!(
            term_at(start, d(2027, 12, 30), None, start),
            Err(ContractError::NotMonthEnd(_))
        ));
        // Data an earlier version recorded: a last day before the start.
        let c = Cancellation {
            received: d(2026, 1, 5),
            requested_end: None,
            effective: d(2026, 2, 28),
        };
        assert_eq!(
            term_at(start, d(2027, 12, 31), Some(&c), start),
            Err(ContractError::CancelledBeforeStart {
                start,
                effective: d(2026, 2, 28)
            })
        );
    }

    #[test]
    fn undelivered_termination_takes_five_days() {
        let sent = d(2027, 2, 25).and_hms_opt(14, 30, 0).unwrap();
        assert_eq!(
            termination_effective_undelivered(sent).unwrap(),
            d(2027, 3, 2).and_hms_opt(14, 30, 0).unwrap()
        );
        let sent = d(2028, 2, 25).and_hms_opt(0, 0, 0).unwrap();
        assert_eq!(
            termination_effective_undelivered(sent).unwrap(),
            d(2028, 3, 1).and_hms_opt(0, 0, 0).unwrap()
        );
        assert!(termination_effective_undelivered(NaiveDateTime::MAX).is_err());
    }

    #[test]
    fn extremes_give_errors_not_panics() {
        assert!(first_term_end(NaiveDate::MAX).is_err());
        assert!(renewed_end(NaiveDate::MAX).is_err());
        assert!(cancellation_deadline(month_end(NaiveDate::MIN)).is_err());
        assert!(cancellation_effective(d(2026, 1, 1), d(2027, 1, 31), NaiveDate::MAX, None).is_err());
        let near_max = month_end(NaiveDate::MAX.checked_sub_months(chrono::Months::new(5)).unwrap());
        assert!(term_at(d(2026, 1, 1), near_max, None, near_max).is_ok());
        // The term after it would end beyond the last representable date.
        assert!(term_at(d(2026, 1, 1), near_max, None, NaiveDate::MAX).is_err());
        let _ = term_at(NaiveDate::MIN, month_end(NaiveDate::MIN), None, NaiveDate::MAX);
    }

    /// Any representable date.
    fn any_date() -> impl Strategy<Value = NaiveDate> {
        (NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce())
            .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
    }

    /// A date in a range where contracts actually happen (and nothing overflows).
    fn real_date() -> impl Strategy<Value = NaiveDate> {
        let lo = d(1900, 1, 1).num_days_from_ce();
        let hi = d(2400, 12, 31).num_days_from_ce();
        (lo..=hi).prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
    }

    proptest! {
        #[test]
        fn first_term_end_is_a_month_end_12_months_on(start in real_date()) {
            let end = first_term_end(start).unwrap();
            prop_assert!(is_month_end(end));
            prop_assert_eq!(months_between(start, end), 12);
            // What is left of the start month plus one year: at least a year (365 days,
            // starting on a month end), at most 30 days + a leap year.
            let days = (end - start).num_days();
            prop_assert!((365..=396).contains(&days), "{} days", days);
            // The year after the free start month is exactly twelve calendar months.
            let year_start = month_end(start).succ_opt().unwrap();
            prop_assert_eq!(year_start.day(), 1);
            prop_assert_eq!(end, year_start.checked_add_months(chrono::Months::new(12)).unwrap().pred_opt().unwrap());
            // Art. 13 ¶3: an additional contract starting in the end month ends with the
            // basic contract's renewal.
            prop_assert_eq!(first_term_end(end).unwrap(), renewed_end(end).unwrap());
        }

        #[test]
        fn renewal_end_is_a_month_end_exactly_12_months_later(start in real_date(), k in 0i64..40) {
            let mut end = first_term_end(start).unwrap();
            for _ in 0..k {
                let next = renewed_end(end).unwrap();
                prop_assert!(is_month_end(next));
                prop_assert_eq!(months_between(end, next), 12);
                prop_assert_eq!(next.month(), end.month());
                prop_assert_eq!(next.year(), end.year() + 1);
                end = next;
            }
        }

        #[test]
        fn deadline_is_the_previous_month_end(any in real_date()) {
            let end = month_end(any);
            let deadline = cancellation_deadline(end).unwrap();
            prop_assert!(is_month_end(deadline));
            prop_assert_eq!(months_between(deadline, end), 1);
            prop_assert_eq!(deadline.succ_opt().unwrap().day(), 1);
            prop_assert_eq!(deadline.succ_opt().unwrap().month(), end.month());
        }

        #[test]
        fn cancellation_is_the_asked_month_end_or_the_term_end_and_never_late(
            start in real_date(),
            received_offset in -400i64..3000,
            req in proptest::option::of(real_date()),
        ) {
            let first_end = first_term_end(start).unwrap();
            let received = start + TimeDelta::days(received_offset);
            let requested = req.map(month_end);
            match cancellation_effective(start, first_end, received, requested) {
                Ok(eff) => {
                    prop_assert!(is_month_end(eff));
                    // Its deadline was met and it is not before the service starts...
                    prop_assert!(cancellation_deadline(eff).unwrap() >= received);
                    prop_assert!(eff >= start);
                    // ...and it is exactly what was asked, or the term end.
                    match requested {
                        Some(r) => prop_assert_eq!(eff, r),
                        None => {
                            let in_force = if received < start { first_end } else {
                                term_containing(start, first_end, received).unwrap().end
                            };
                            prop_assert_eq!(eff, in_force);
                        }
                    }
                }
                Err(ContractError::CancellationLate { asked, deadline, choices }) => {
                    prop_assert!(deadline < received);
                    prop_assert_eq!(cancellation_deadline(asked).unwrap(), deadline);
                    // The earliest month end offered is in time and not before the start.
                    let earliest = month_end_after(received, 1).unwrap().max(month_end(start));
                    prop_assert!(choices.contains(&earliest.to_string()), "{}", choices);
                    prop_assert!(cancellation_deadline(earliest).unwrap() >= received);
                }
                Err(ContractError::CancellationBeforeStart { asked, .. }) => prop_assert!(asked < start),
                Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            }
        }

        #[test]
        fn additional_first_end_aligns_or_gets_its_own_term(basic_start in real_date(), offset in 0i64..4000) {
            let basic_end = first_term_end(basic_start).unwrap();
            let start = basic_start + TimeDelta::days(offset);
            let end = additional_first_end(basic_end, start).unwrap();
            prop_assert!(is_month_end(end));
            prop_assert!(end > start);
            // Never ends in its own start month.
            prop_assert!(months_between(start, end) >= 1);
            // The basic contract's term in force on `start`.
            let basic_now = term_containing(basic_start, basic_end, start).unwrap();
            if months_between(basic_now.end, start) == 0 {
                prop_assert_eq!(end, first_term_end(start).unwrap());
            } else {
                prop_assert_eq!(end, basic_now.end);
            }
        }

        #[test]
        fn term_at_contains_at_and_chains_terms(start in real_date(), offset in 0i64..6000) {
            let first_end = first_term_end(start).unwrap();
            let at = start + TimeDelta::days(offset);
            let (t, renews, last) = match term_at(start, first_end, None, at).unwrap() {
                TermStatus::Active { term, renews, last_day } => (term, renews, last_day),
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert!(renews);
            prop_assert_eq!(last, None);
            prop_assert!(t.start <= at && at <= t.end);
            prop_assert!(is_month_end(t.end));
            if t.renewals == 0 {
                prop_assert_eq!((t.start, t.end), (start, first_end));
            } else {
                prop_assert_eq!(t.start.day(), 1);
                prop_assert_eq!(months_between(t.start, t.end), 11);
                let prev = t.start.pred_opt().unwrap();
                prop_assert_eq!(renewed_end(prev).unwrap(), t.end);
                let prev_term = term_containing(start, first_end, prev).unwrap();
                prop_assert_eq!(prev_term.renewals + 1, t.renewals);
                prop_assert_eq!(prev_term.end, prev);
            }
        }

        #[test]
        fn a_cancelled_contract_ends_exactly_after_its_last_day(
            start in real_date(),
            received_offset in 0i64..3000,
            at_offset in 0i64..4000,
        ) {
            let first_end = first_term_end(start).unwrap();
            let received = start + TimeDelta::days(received_offset);
            // A form after the term end's deadline is refused (and tested above).
            let Ok(eff) = cancellation_effective(start, first_end, received, None) else { return Ok(()) };
            let c = Cancellation { received, requested_end: None, effective: eff };
            let at = start + TimeDelta::days(at_offset);
            let status = term_at(start, first_end, Some(&c), at).unwrap();
            if at > eff {
                prop_assert_eq!(status, TermStatus::Ended { last_day: eff });
            } else {
                let (t, renews, last) = match status {
                    TermStatus::Active { term, renews, last_day } => (term, renews, last_day),
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
                prop_assert_eq!(renews, eff > t.end);
                prop_assert_eq!(last, if eff <= t.end { Some(eff) } else { None });
            }
        }

        #[test]
        fn calendar_never_panics(a in any_date(), b in any_date(), c in any_date(), e in any_date()) {
            let _ = first_term_end(a);
            let _ = renewed_end(month_end(a));
            let _ = cancellation_deadline(month_end(a));
            let _ = additional_first_end(month_end(a), b);
            let _ = cancellation_effective(a, month_end(b), c, Some(month_end(e)));
            let _ = cancellation_effective(a, month_end(b), c, None);
            let cancel = Cancellation { received: c, requested_end: None, effective: month_end(c) };
            let _ = term_at(a, month_end(b), Some(&cancel), e);
            let _ = term_at(a, month_end(b), None, e);
            let _ = termination_effective_undelivered(a.and_hms_opt(23, 59, 59).unwrap());
        }
    }
}
