//! The operator's time zone: every contract date is a calendar day there.
//!
//! The terms count in days, months and month ends (art. 13, 14, 18, 24-3, 31) of the
//! operator, a Japanese company: a contract's last day ends at 24:00 JST, and a form
//! that arrives at 02:00 JST on the day after its deadline is late, although it is still
//! the deadline day in UTC. So "today" is never `Utc::now().date_naive()`: it is
//! [`today_in`] the operator's zone, `--timezone` on the hub and on `mcvpn admin`
//! (default [`DEFAULT_TZ`], Asia/Tokyo).
//!
//! The functions here are pure: the caller passes the zone and the current instant.
//! The zone chosen on the command line is kept process-wide ([`set_operator_tz`],
//! [`operator_tz`]) for the few places at the edge that read the clock (the hub's
//! daily job, its login checks, the admin command line); it is configuration, set once
//! at start-up, and never the host's own `TZ`.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
pub use chrono_tz::Tz;

/// The zone when none is given: the terms are Japanese and so is their operator.
pub const DEFAULT_TZ: &str = "Asia/Tokyo";

static OPERATOR_TZ: OnceLock<Tz> = OnceLock::new();

/// Parses an IANA zone name (`Asia/Tokyo`, `UTC`, `Europe/Berlin`).
pub fn parse_tz(s: &str) -> Result<Tz, String> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| format!("{s:?} is not a time-zone name: use an IANA name such as Asia/Tokyo (the default) or UTC"))
}

/// Sets the operator's zone for this process; the first call wins (later ones, with a
/// different zone, are refused so that two parts of one process never disagree).
pub fn set_operator_tz(tz: Tz) -> Result<(), String> {
    let set = *OPERATOR_TZ.get_or_init(|| tz);
    if set == tz {
        Ok(())
    } else {
        Err(format!("the time zone is already {set}, cannot change it to {tz}"))
    }
}

/// The operator's zone: the one set at start-up, else [`DEFAULT_TZ`].
pub fn operator_tz() -> Tz {
    *OPERATOR_TZ.get_or_init(|| chrono_tz::Asia::Tokyo)
}

/// The calendar day in `tz` at the instant `now`: the "today" of every contract rule.
#[must_use]
pub fn today_in(tz: Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// The wall-clock time in `tz` at the instant `t`.
#[must_use]
pub fn local_naive(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// The instant a day begins in `tz` (00:00 local, or the first existing time after a
/// gap). A contract's day `d` runs from `start_of_day(d)` to `start_of_day(d + 1)`.
#[must_use]
pub fn start_of_day(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    local_to_utc(tz, d.and_time(chrono::NaiveTime::MIN))
}

/// The instant of a wall-clock time in `tz`. An ambiguous time (the hour repeated when
/// daylight saving ends) is the earlier instant; a time that does not exist (skipped
/// when it starts) is read an hour later, as clocks then show it.
#[must_use]
pub fn local_to_utc(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&t) {
        chrono::LocalResult::Single(x) | chrono::LocalResult::Ambiguous(x, _) => x.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(t + chrono::TimeDelta::hours(1)))
            .earliest()
            .map(|x| x.with_timezone(&Utc))
            .unwrap_or_else(|| t.and_utc()),
    }
}

/// A time for people: local in `tz`, with the offset (`2027-03-01 09:30:00 +09:00`),
/// so that an operator in Tokyo reads Tokyo time and nobody has to guess the zone.
#[must_use]
pub fn format_local(tz: Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// [`format_local`] of a Unix time, or the number itself if it is out of range.
#[must_use]
pub fn format_unix(tz: Tz, t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| format_local(tz, d))
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{Asia::Tokyo, Europe::Berlin, UTC};

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn today_flips_at_midnight_jst_not_utc() {
        // 2027-02-28 14:59 UTC is 23:59 JST: still the deadline day.
        assert_eq!(today_in(Tokyo, utc(2027, 2, 28, 14, 59)), d(2027, 2, 28));
        // 15:00 UTC is 00:00 JST on March 1st, although UTC still says February 28.
        assert_eq!(today_in(Tokyo, utc(2027, 2, 28, 15, 0)), d(2027, 3, 1));
        assert_eq!(today_in(UTC, utc(2027, 2, 28, 15, 0)), d(2027, 2, 28));
        // 02:00 JST on the day after a month end.
        assert_eq!(today_in(Tokyo, utc(2027, 3, 31, 17, 0)), d(2027, 4, 1));
        // Leap day and year end.
        assert_eq!(today_in(Tokyo, utc(2028, 2, 28, 15, 0)), d(2028, 2, 29));
        assert_eq!(today_in(Tokyo, utc(2027, 12, 31, 15, 0)), d(2028, 1, 1));
    }

    #[test]
    fn days_begin_at_local_midnight() {
        assert_eq!(start_of_day(Tokyo, d(2027, 4, 1)), utc(2027, 3, 31, 15, 0));
        assert_eq!(start_of_day(UTC, d(2027, 4, 1)), utc(2027, 4, 1, 0, 0));
        // Berlin on the day summer time starts: midnight exists, 02:30 does not.
        assert_eq!(start_of_day(Berlin, d(2027, 3, 28)), utc(2027, 3, 27, 23, 0));
        let gap = d(2027, 3, 28).and_hms_opt(2, 30, 0).unwrap();
        assert_eq!(local_to_utc(Berlin, gap), utc(2027, 3, 28, 1, 30));
        // The repeated hour in October: the earlier instant.
        let twice = d(2027, 10, 31).and_hms_opt(2, 30, 0).unwrap();
        assert_eq!(local_to_utc(Berlin, twice), utc(2027, 10, 31, 0, 30));
    }

    #[test]
    fn local_times_carry_their_offset() {
        assert_eq!(
            format_local(Tokyo, utc(2027, 2, 28, 15, 30)),
            "2027-03-01 00:30:00 +09:00"
        );
        assert_eq!(
            format_local(UTC, utc(2027, 2, 28, 15, 30)),
            "2027-02-28 15:30:00 +00:00"
        );
        assert_eq!(format_unix(Tokyo, 0), "1970-01-01 09:00:00 +09:00");
        assert_eq!(format_unix(Tokyo, i64::MAX), i64::MAX.to_string());
        assert_eq!(
            local_naive(Tokyo, utc(2027, 1, 1, 0, 0)).to_string(),
            "2027-01-01 09:00:00"
        );
    }

    #[test]
    fn a_form_at_two_in_the_morning_jst_after_the_deadline_is_late() {
        use crate::contract::{cancellation_effective, first_term_end, term_at, TermStatus};
        let start = d(2026, 11, 24);
        let first_end = first_term_end(start).unwrap();
        let asked = Some(d(2027, 3, 31)); // deadline 2027-02-28, 24:00 JST
                                          // 02:00 JST on March 1st is still February 28th in UTC: late all the same.
        let received = today_in(Tokyo, utc(2027, 2, 28, 17, 0));
        assert!(cancellation_effective(start, first_end, received, asked).is_err());
        // 23:59 JST on the deadline day is in time.
        let received = today_in(Tokyo, utc(2027, 2, 28, 14, 59));
        assert_eq!(
            cancellation_effective(start, first_end, received, asked).unwrap(),
            d(2027, 3, 31)
        );
        // The first term's last day, 2027-11-30, ends at 24:00 JST: at 08:59 JST on
        // 2027-12-01 (23:59 UTC on 11-30) the first renewal is already in force.
        let (last_minute, next_morning) = (utc(2027, 11, 30, 14, 59), utc(2027, 11, 30, 23, 59));
        let renewals = |t| match term_at(start, first_end, None, today_in(Tokyo, t)).unwrap() {
            TermStatus::Active { term, .. } => term.renewals,
            other => panic!("{other:?}"),
        };
        assert_eq!(renewals(last_minute), 0);
        assert_eq!(renewals(next_morning), 1);
    }

    proptest::proptest! {
        #[test]
        fn today_in_tokyo_is_utc_plus_nine_hours_whatever_the_host_tz(secs in 0i64..8_000_000_000) {
            // Japan has no daylight saving time: today is the UTC date of t + 9 h. The host's
            // own TZ never enters (the unit tests run with TZ=UTC and TZ=Asia/Tokyo).
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            proptest::prop_assert_eq!(today_in(Tokyo, t), (t + chrono::TimeDelta::hours(9)).date_naive());
            proptest::prop_assert_eq!(start_of_day(Tokyo, today_in(Tokyo, t)) <= t, true);
            proptest::prop_assert!(t < start_of_day(Tokyo, today_in(Tokyo, t).succ_opt().unwrap()));
        }
    }

    #[test]
    fn zone_names() {
        assert_eq!(parse_tz("Asia/Tokyo").unwrap(), Tokyo);
        assert_eq!(parse_tz(" UTC ").unwrap(), UTC);
        assert!(parse_tz("JST+9").unwrap_err().contains("Asia/Tokyo"));
        assert!(parse_tz("").is_err());
        assert_eq!(DEFAULT_TZ.parse::<Tz>().unwrap(), Tokyo);
        // The process-wide zone defaults to Tokyo and does not change once read.
        assert_eq!(operator_tz(), Tokyo);
        assert!(set_operator_tz(Tokyo).is_ok());
        assert!(set_operator_tz(UTC).is_err());
    }
}
