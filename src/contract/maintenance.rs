//! Planned maintenance (art. 34, 提供の中止): when its notices go out, and what it takes
//! out of an outage.
//!
//! Art. 34-1(1) lets the operator stop the service for maintenance or works on its
//! equipment; art. 34-2 requires it to tell the contractors in advance, "except in an
//! emergency" (緊急やむを得ない場合を除き). Art. 35-1 compensates only outages "other than
//! the suspensions of art. 34", so a window is never part of a compensated outage.
//!
//! The terms name no lead time for the notice. mcvpn sends it `notice_days` ahead (7 by
//! default) and a reminder the day before, both in the operator's zone; an emergency
//! window, or one added later than that, is announced on the day it is added.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

/// The days a window's two notices are due, in the operator's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeSchedule {
    /// The advance notice (art. 34-2).
    pub notice_on: NaiveDate,
    /// The reminder, the day before the window; none when the notice itself goes out
    /// that day or later (one mail saying the same thing twice helps nobody).
    pub reminder_on: Option<NaiveDate>,
}

/// When the notices of a window starting on `start_day`, added on `added_on`, are due.
pub fn notice_schedule(added_on: NaiveDate, start_day: NaiveDate, notice_days: u32, emergency: bool) -> NoticeSchedule {
    let ahead = start_day
        .checked_sub_signed(TimeDelta::days(i64::from(notice_days)))
        .unwrap_or(NaiveDate::MIN);
    let notice_on = if emergency { added_on } else { added_on.max(ahead) };
    let day_before = start_day.pred_opt().unwrap_or(NaiveDate::MIN);
    NoticeSchedule {
        notice_on,
        reminder_on: (notice_on < day_before).then_some(day_before),
    }
}

/// The parts of `outages` outside every window: what art. 35 may count.
///
/// A window inside an outage cuts it in two: the service stopped by the operator's own
/// announced maintenance is not the unplanned total outage art. 35 compensates, so the
/// two pieces on either side are not one continuous (連続した) outage either. This is the
/// strict reading; it favours the operator only where the operator told the customers
/// in advance, which is what art. 34-2 asks of it.
pub fn outside_windows(
    outages: &[(NaiveDateTime, NaiveDateTime)],
    windows: &[(NaiveDateTime, NaiveDateTime)],
) -> Vec<(NaiveDateTime, NaiveDateTime)> {
    let mut windows = windows.to_vec();
    windows.sort();
    let mut out = Vec::new();
    for &(start, end) in outages {
        let mut from = start;
        for &(w_start, w_end) in &windows {
            if w_end <= from || w_start >= end {
                continue;
            }
            if w_start > from {
                out.push((from, w_start));
            }
            from = from.max(w_end);
            if from >= end {
                break;
            }
        }
        if from < end {
            out.push((from, end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::compensable_days;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn t(day: u32, h: u32) -> NaiveDateTime {
        d(2027, 3, day).and_hms_opt(h, 0, 0).unwrap()
    }

    #[test]
    fn notice_seven_days_ahead_and_a_reminder_the_day_before() {
        let s = notice_schedule(d(2027, 3, 1), d(2027, 3, 20), 7, false);
        assert_eq!(s.notice_on, d(2027, 3, 13));
        assert_eq!(s.reminder_on, Some(d(2027, 3, 19)));
    }

    #[test]
    fn added_late_goes_out_at_once() {
        let s = notice_schedule(d(2027, 3, 17), d(2027, 3, 20), 7, false);
        assert_eq!(s.notice_on, d(2027, 3, 17));
        assert_eq!(s.reminder_on, Some(d(2027, 3, 19)));
        // Added the day before: one notice, no reminder the same day.
        let s = notice_schedule(d(2027, 3, 19), d(2027, 3, 20), 7, false);
        assert_eq!((s.notice_on, s.reminder_on), (d(2027, 3, 19), None));
    }

    #[test]
    fn an_emergency_is_announced_on_the_day_it_is_added() {
        let s = notice_schedule(d(2027, 3, 1), d(2027, 3, 20), 7, true);
        assert_eq!(s.notice_on, d(2027, 3, 1));
        assert_eq!(s.reminder_on, Some(d(2027, 3, 19)));
        let s = notice_schedule(d(2027, 3, 20), d(2027, 3, 20), 7, true);
        assert_eq!((s.notice_on, s.reminder_on), (d(2027, 3, 20), None));
    }

    #[test]
    fn zero_notice_days_means_on_the_day() {
        let s = notice_schedule(d(2027, 3, 1), d(2027, 3, 20), 0, false);
        assert_eq!(s.notice_on, d(2027, 3, 20));
        assert_eq!(s.reminder_on, None);
    }

    #[test]
    fn a_window_inside_an_outage_cuts_it() {
        let outage = [(t(1, 0), t(8, 0))]; // 168 h
        let window = [(t(3, 0), t(3, 6))];
        assert_eq!(
            outside_windows(&outage, &window),
            vec![(t(1, 0), t(3, 0)), (t(3, 6), t(8, 0))]
        );
        // 48 h and 114 h: neither reaches 120 h, so nothing is compensated.
        assert_eq!(compensable_days(&outside_windows(&outage, &window)).unwrap(), 0);
        assert_eq!(compensable_days(&outage).unwrap(), 7);
    }

    #[test]
    fn windows_at_the_edges_shorten_and_covering_windows_remove() {
        let outage = [(t(1, 0), t(8, 0))];
        assert_eq!(
            outside_windows(&outage, &[(t(1, 0) - TimeDelta::hours(1), t(1, 10))]),
            vec![(t(1, 10), t(8, 0))]
        );
        assert_eq!(
            outside_windows(&outage, &[(t(7, 0), t(9, 0))]),
            vec![(t(1, 0), t(7, 0))]
        );
        assert!(outside_windows(&outage, &[(t(1, 0), t(8, 0))]).is_empty());
        // Two windows, unsorted, and one that does not touch the outage.
        assert_eq!(
            outside_windows(&outage, &[(t(5, 0), t(5, 1)), (t(20, 0), t(21, 0)), (t(2, 0), t(2, 1))]),
            vec![(t(1, 0), t(2, 0)), (t(2, 1), t(5, 0)), (t(5, 1), t(8, 0))]
        );
        assert_eq!(outside_windows(&outage, &[]), outage.to_vec());
    }
}
