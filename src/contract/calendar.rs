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
/// counts "from the month following the start month" (翌月から) "one year later"
/// (１年後): 1 + 12.
const FIRST_TERM_MONTHS: i64 = 13;
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
/// Art. 13: "満了日は、原則、提供開始日を含む月の翌月から１年後の月末の日とします" — the
/// term ends on the last day of the month that is one year after the month following
/// the month containing the service start date. Read literally: take the start month,
/// go to the following month, add one year, take that month's last day. So the first
/// term is the (free, art. 27-2) start month plus 13 further months:
///
/// - start 2026-11-24 → following month 2026-12 → one year later 2027-12 → 2027-12-31;
/// - start 2027-01-01 → 2027-02 → 2028-02 → 2028-02-29.
///
/// (Note: with this reading an additional contract starting in the basic contract's
/// end month, which gets its own first term by the same rule, ends one month after the
/// basic contract's renewed end (basic 2027-12-31 → 2028-12-31, additional started
/// 2027-12-10 → 2029-01-31); the reading "12 months counted from the following month"
/// would have kept the two aligned. The literal reading is the one adopted.)
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
/// later (2027-12-31 → 2028-12-31; 2028-02-29 → 2029-02-28).
pub fn renewed_end(term_end: NaiveDate) -> Result<NaiveDate, ContractError> {
    month_end_after(require_month_end(term_end)?, RENEWAL_MONTHS)
}

/// The cancellation deadline (解約申込期限) for a term ending on `term_end`.
///
/// Art. 14: the contract renews unless the cancellation form reaches the operator by
/// "the last day of the month before the end date" (当該満了日の前月の月末日). Art. 18-4
/// applies the same deadline — the last day of the previous month — to a cancellation
/// at any earlier month end. So for any month end `M`, the deadline is the last day of
/// the month before `M` (2027-12-31 → 2027-11-30; 2028-03-31 → 2028-02-29).
pub fn cancellation_deadline(term_end: NaiveDate) -> Result<NaiveDate, ContractError> {
    month_end_after(require_month_end(term_end)?, -1)
}

/// The end of an additional contract's first term (art. 13, paragraphs 2–4).
///
/// - An additional contract's first term counts from its own start date and, "in
///   principle", ends with the basic contract's first term (基本契約の「最初の契約期間」
///   の満了日までとなります).
/// - "However", if it starts in the same month as that end, it ends on the last day of
///   the month one year after the month following its start month — the basic
///   contract's rule, [`first_term_end`] — so that it never gets a term of less than a
///   month.
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

/// A cancellation form (解約申込書, art. 18-1) as received by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The day the form reached the operator (到達, art. 14 and 18-2 count arrival,
    /// not sending).
    pub received: NaiveDate,
    /// The month end the contractor asked for (解約希望月末, art. 18-2), if any.
    pub requested_end: Option<NaiveDate>,
}

impl Cancellation {
    /// The contract's last day under this cancellation; see [`cancellation_effective`].
    pub fn effective(&self) -> Result<NaiveDate, ContractError> {
        cancellation_effective(self.received, self.requested_end)
    }
}

/// The last day of service under a cancellation received on `received`.
///
/// Art. 18-1 lets the contractor cancel at the term end, and art. 18-4 (the 2024-04-01
/// revision, "解約期限を変更") also at any earlier month end (契約期間満了日のほか、それ
/// 以前の月末日をもって本契約を解約することも可能です), with the deadline for a month end
/// being the last day of the month before it. A form that misses the term end's deadline
/// lets the contract renew (art. 18-2 → art. 14), and within the renewed term the same
/// choice of month ends applies again. Taken together, the contract can end at **any
/// month end whose deadline (the last day of the previous month) the form met**.
///
/// - No requested end: the earliest such month end — the end of the month after the
///   month of receipt (received 2027-11-30 → 2027-12-31; received 2027-12-01 →
///   2028-01-31).
/// - A requested end that is possible: that month end.
/// - A requested end that is too early (its deadline has passed): the earliest month
///   end that is still possible, as a late form takes the next month end it can.
/// - A requested end beyond the current term end is honoured too: the term renews
///   (art. 14, and the renewal is invoiced, art. 28-2) and the contract ends then.
///
/// `requested_end` must be a month end ([`ContractError::NotMonthEnd`] otherwise): the
/// terms only know month ends, and silently moving a date the contractor wrote would
/// hide a data-entry error. Service stops at the end of the returned day; fees already
/// paid, including those for months after it, are not refunded (art. 18-4).
pub fn cancellation_effective(
    received: NaiveDate,
    requested_end: Option<NaiveDate>,
) -> Result<NaiveDate, ContractError> {
    let earliest = month_end_after(received, 1)?;
    match requested_end {
        None => Ok(earliest),
        Some(r) => Ok(require_month_end(r)?.max(earliest)),
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
/// day of the same month a year later. A cancellation ends the contract at
/// [`cancellation_effective`]; the contract is `Ended` from the next day. A
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
    let last_day = cancellation.map(Cancellation::effective).transpose()?;
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
        assert_eq!(first_term_end(d(2026, 11, 24)).unwrap(), d(2027, 12, 31));
        assert_eq!(first_term_end(d(2027, 1, 1)).unwrap(), d(2028, 2, 29));
    }

    #[test]
    fn first_term_month_ends_and_leap_years() {
        // Start on a month end: the start month still counts as the start month.
        assert_eq!(first_term_end(d(2026, 11, 30)).unwrap(), d(2027, 12, 31));
        assert_eq!(first_term_end(d(2026, 12, 31)).unwrap(), d(2028, 1, 31));
        // Start on Feb 29 of a leap year.
        assert_eq!(first_term_end(d(2028, 2, 29)).unwrap(), d(2029, 3, 31));
        // Ending in a non-leap February.
        assert_eq!(first_term_end(d(2026, 1, 31)).unwrap(), d(2027, 2, 28));
        // Ending in a leap February from a January start on the 31st.
        assert_eq!(first_term_end(d(2027, 1, 31)).unwrap(), d(2028, 2, 29));
        // Century rule: 2100 is not a leap year.
        assert_eq!(first_term_end(d(2099, 1, 15)).unwrap(), d(2100, 2, 28));
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
        let basic_end = first_term_end(d(2026, 11, 24)).unwrap(); // 2027-12-31
        assert_eq!(additional_first_end(basic_end, d(2026, 11, 24)).unwrap(), basic_end);
        assert_eq!(additional_first_end(basic_end, d(2027, 5, 10)).unwrap(), basic_end);
        assert_eq!(additional_first_end(basic_end, d(2027, 11, 30)).unwrap(), basic_end);
    }

    #[test]
    fn additional_contract_in_the_end_month_gets_its_own_first_term() {
        let basic_end = d(2027, 12, 31);
        assert_eq!(additional_first_end(basic_end, d(2027, 12, 1)).unwrap(), d(2029, 1, 31));
        // Even on the very last day of the basic term.
        assert_eq!(
            additional_first_end(basic_end, d(2027, 12, 31)).unwrap(),
            d(2029, 1, 31)
        );
        // Leap-year end month: basic ends 2028-02-29, additional starts that month.
        assert_eq!(
            additional_first_end(d(2028, 2, 29), d(2028, 2, 29)).unwrap(),
            d(2029, 3, 31)
        );
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
        // In the renewed end month: own first term.
        assert_eq!(additional_first_end(basic_end, d(2028, 12, 5)).unwrap(), d(2030, 1, 31));
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
        let (t, renews, last) = active(term_at(start, first_end, None, d(2027, 12, 31)).unwrap());
        assert_eq!(
            t,
            Term {
                start,
                end: d(2027, 12, 31),
                renewals: 0
            }
        );
        assert!(renews);
        assert_eq!(last, None);

        let (t, _, _) = active(term_at(start, first_end, None, d(2028, 1, 1)).unwrap());
        assert_eq!(
            t,
            Term {
                start: d(2028, 1, 1),
                end: d(2028, 12, 31),
                renewals: 1
            }
        );
        let (t, _, _) = active(term_at(start, first_end, None, d(2028, 12, 31)).unwrap());
        assert_eq!(t.renewals, 1);

        let (t, _, _) = active(term_at(start, first_end, None, d(2029, 1, 1)).unwrap());
        assert_eq!(
            t,
            Term {
                start: d(2029, 1, 1),
                end: d(2029, 12, 31),
                renewals: 2
            }
        );
        let (t, _, _) = active(term_at(start, first_end, None, d(2029, 6, 15)).unwrap());
        assert_eq!(t.renewals, 2);
    }

    #[test]
    fn renewal_across_a_leap_february() {
        let start = d(2027, 1, 1);
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

    #[test]
    fn cancellation_on_the_deadline_stops_renewal() {
        let start = d(2026, 11, 24);
        let first_end = d(2027, 12, 31);
        let c = Cancellation {
            received: d(2027, 11, 30),
            requested_end: None,
        };
        assert_eq!(c.effective().unwrap(), d(2027, 12, 31));
        let (t, renews, last) = active(term_at(start, first_end, Some(&c), d(2027, 12, 31)).unwrap());
        assert_eq!(t.renewals, 0);
        assert!(!renews);
        assert_eq!(last, Some(d(2027, 12, 31)));
        assert_eq!(
            term_at(start, first_end, Some(&c), d(2028, 1, 1)).unwrap(),
            TermStatus::Ended {
                last_day: d(2027, 12, 31)
            }
        );
    }

    #[test]
    fn cancellation_a_day_after_the_deadline_renews_and_ends_a_month_later() {
        let start = d(2026, 11, 24);
        let first_end = d(2027, 12, 31);
        let c = Cancellation {
            received: d(2027, 12, 1),
            requested_end: Some(d(2027, 12, 31)),
        };
        assert_eq!(c.effective().unwrap(), d(2028, 1, 31));
        let (t, renews, _) = active(term_at(start, first_end, Some(&c), d(2027, 12, 31)).unwrap());
        assert_eq!(t.renewals, 0);
        assert!(renews, "the deadline was missed, so the term renews (art. 14, 18-2)");
        let (t, renews, last) = active(term_at(start, first_end, Some(&c), d(2028, 1, 31)).unwrap());
        assert_eq!(t.renewals, 1);
        assert!(!renews);
        assert_eq!(last, Some(d(2028, 1, 31)));
        assert_eq!(
            term_at(start, first_end, Some(&c), d(2028, 2, 1)).unwrap(),
            TermStatus::Ended {
                last_day: d(2028, 1, 31)
            }
        );
    }

    #[test]
    fn cancellation_at_an_earlier_month_end() {
        // Art. 18-4: a month end before the term end, deadline the previous month end.
        assert_eq!(
            cancellation_effective(d(2027, 3, 31), Some(d(2027, 4, 30))).unwrap(),
            d(2027, 4, 30)
        );
        assert_eq!(
            cancellation_effective(d(2027, 4, 1), Some(d(2027, 4, 30))).unwrap(),
            d(2027, 5, 31)
        );
        assert_eq!(cancellation_effective(d(2027, 3, 10), None).unwrap(), d(2027, 4, 30));
        // A later requested month end is honoured.
        assert_eq!(
            cancellation_effective(d(2027, 3, 10), Some(d(2027, 12, 31))).unwrap(),
            d(2027, 12, 31)
        );
        // Leap February.
        assert_eq!(cancellation_effective(d(2028, 1, 31), None).unwrap(), d(2028, 2, 29));
        // A requested date that is not a month end is refused.
        assert_eq!(
            cancellation_effective(d(2027, 3, 10), Some(d(2027, 4, 29))),
            Err(ContractError::NotMonthEnd(d(2027, 4, 29)))
        );
        let start = d(2026, 11, 24);
        let c = Cancellation {
            received: d(2027, 3, 10),
            requested_end: None,
        };
        let (t, renews, last) = active(term_at(start, d(2027, 12, 31), Some(&c), d(2027, 4, 30)).unwrap());
        assert_eq!((t.renewals, renews, last), (0, false, Some(d(2027, 4, 30))));
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
        let c = Cancellation {
            received: d(2026, 1, 5),
            requested_end: None,
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
        assert!(cancellation_effective(NaiveDate::MAX, None).is_err());
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
        fn first_term_end_is_a_month_end_13_months_on(start in real_date()) {
            let end = first_term_end(start).unwrap();
            prop_assert!(is_month_end(end));
            prop_assert_eq!(months_between(start, end), 13);
            // 13 whole months after the start month plus what is left of it: at least
            // 12 months + a shortest month (365 + 28), at most 14 months less a day.
            let days = (end - start).num_days();
            prop_assert!((393..=427).contains(&days), "{} days", days);
            // Always at least a full year of service after the free start month.
            prop_assert!(end >= start.checked_add_months(chrono::Months::new(13)).unwrap());
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
        fn cancellation_is_the_earliest_month_end_that_is_met_and_requested(
            received in real_date(),
            req in proptest::option::of(real_date()),
        ) {
            let requested = req.map(month_end);
            let eff = cancellation_effective(received, requested).unwrap();
            prop_assert!(is_month_end(eff));
            // Its deadline was met...
            prop_assert!(cancellation_deadline(eff).unwrap() >= received);
            // ...it is not before the requested end...
            if let Some(r) = requested { prop_assert!(eff >= r); }
            // ...and it is the earliest such: one month earlier either misses its
            // deadline or is before the requested end.
            let earlier = month_end_after(eff, -1).unwrap();
            let earlier_ok = cancellation_deadline(earlier).unwrap() >= received
                && requested.map_or(true, |r| earlier >= r);
            prop_assert!(!earlier_ok);
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
            let c = Cancellation { received: start + TimeDelta::days(received_offset), requested_end: None };
            let eff = c.effective().unwrap();
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
            let _ = cancellation_effective(a, Some(month_end(b)));
            let cancel = Cancellation { received: c, requested_end: None };
            let _ = term_at(a, month_end(b), Some(&cancel), e);
            let _ = term_at(a, month_end(b), None, e);
            let _ = termination_effective_undelivered(a.and_hms_opt(23, 59, 59).unwrap());
        }
    }
}
