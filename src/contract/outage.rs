//! Compensation for a total outage (art. 35, 責任の制限).
//!
//! Art. 35-1: outside the suspensions of art. 34 (maintenance, disasters, priority
//! traffic), when the operator fails to provide the service for reasons attributable
//! to it, it compensates the contractor only if the state in which "the service cannot
//! be used at all" (全く利用できない状態) lasted **120 hours or more in a row**, counted
//! from the time the operator learned of it (当社が知った時刻から起算).
//!
//! Art. 35-2: the compensation is, for the continuous time from that moment, "only the
//! part that is a multiple of 24 hours" (24 時間の倍数である部分に限ります), counted as one
//! day per 24 hours, the fee for the service prorated by the day (日割り計算) for that
//! many days. Art. 35-3: nothing beyond that amount.
//!
//! Reading of the daily proration: art. 35 does not name a divisor. The service's fee
//! is an annual usage fee (年間使用料, art. 28), so the daily fee is the annual fee over
//! a 365-day year — the same fixed year as the late interest of art. 31 (see
//! [`late_interest`](super::late_interest)), rather than a month's fee over that
//! month's days, which would make the same outage worth more in February.
//!
//! What is recorded is the caller's business: an outage's `start` must be when the
//! operator learned of it, and only outages the operator is responsible for (not art. 34
//! suspensions) belong in the list.

use chrono::{NaiveDate, NaiveDateTime};

use super::tz::{start_of_day, today_in, Tz};
use super::{ContractError, ContractUnit, Yen};

/// Art. 35-1: the shortest continuous total outage that is compensated.
pub const MIN_OUTAGE_HOURS: i64 = 120;
const SECONDS_PER_HOUR: i64 = 3600;
const SECONDS_PER_DAY: i64 = 24 * SECONDS_PER_HOUR;
const DAYS_PER_YEAR: u128 = 365;

/// Merges recorded outages that overlap or touch into continuous ones: art. 35 counts
/// how long the service was continuously unusable (連続した), so two records of one
/// outage (say, a restart of the monitor in the middle) must not be cut in two, nor
/// counted twice. Errors if any record ends before it starts.
fn merged(outages: &[(NaiveDateTime, NaiveDateTime)]) -> Result<Vec<(NaiveDateTime, NaiveDateTime)>, ContractError> {
    if let Some(&(start, end)) = outages.iter().find(|(s, e)| e < s) {
        return Err(ContractError::OutageEndsBeforeStart { start, end });
    }
    let mut sorted = outages.to_vec();
    sorted.sort();
    let mut out: Vec<(NaiveDateTime, NaiveDateTime)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    Ok(out)
}

/// The days of one continuous outage: none below 120 hours, otherwise one per whole
/// 24 hours (art. 35-1, 35-2). 143 h 59 min gives 5 days, 144 h gives 6.
fn outage_days(start: NaiveDateTime, end: NaiveDateTime) -> u64 {
    let seconds = (end - start).num_seconds();
    if seconds < MIN_OUTAGE_HOURS * SECONDS_PER_HOUR {
        return 0;
    }
    u64::try_from(seconds / SECONDS_PER_DAY).unwrap_or(0)
}

/// The compensable days over a list of recorded total outages `(start, end)`: each
/// continuous outage (records merged where they overlap or touch) of at least
/// [`MIN_OUTAGE_HOURS`] gives its whole 24-hour days; shorter ones give nothing.
pub fn compensable_days(outages: &[(NaiveDateTime, NaiveDateTime)]) -> Result<u64, ContractError> {
    merged(outages)?.into_iter().try_fold(0u64, |sum, (s, e)| {
        sum.checked_add(outage_days(s, e))
            .ok_or(ContractError::AmountOverflow("compensable days"))
    })
}

/// The compensation (art. 35) for the recorded total outages, given the `annual_fee`
/// the contractor pays for the affected service (usually
/// [`usage_fee`](super::usage_fee)`(annual_fee_per_account, accounts, 12)`, before
/// tax): `annual_fee × days / 365`, rounded down once over all days so that
/// rounding does not cost the contractor a yen per outage. Zero if no outage reached
/// 120 hours.
pub fn compensation(outages: &[(NaiveDateTime, NaiveDateTime)], annual_fee: Yen) -> Result<Yen, ContractError> {
    let days = u128::from(compensable_days(outages)?);
    let v = u128::from(annual_fee) * days / DAYS_PER_YEAR;
    Yen::try_from(v).map_err(|_| ContractError::AmountOverflow("outage compensation"))
}

/// One continuous outage that earns compensation (the statement lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedOutage {
    /// UTC, clipped to the service period.
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// Whole 24-hour days (art. 35-2).
    pub days: u64,
    /// The annual usage fee of the accounts in force when it began.
    pub annual_fee: Yen,
}

/// What [`unit_compensation`] found for one contract unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitCompensation {
    /// Continuous outages of 120 hours or more within the service period.
    pub outages: usize,
    /// Those outages, oldest first.
    pub counted: Vec<CountedOutage>,
    /// Their whole 24-hour days.
    pub days: u64,
    /// Annual usage fee of the accounts in force when the last counted outage began.
    pub annual_fee: Yen,
    pub amount: Yen,
}

/// The compensation (art. 35) due to one contract unit: only the part of each outage
/// inside the contract's service period counts (from 00:00 of the basic contract's
/// start day to 24:00 of `last_day`, a cancellation's or termination's last day, in the
/// operator's zone `tz`), and each outage is paid at the fee of the accounts in force
/// when it began ([`ContractUnit::quota_at`]: additional contracts count from their
/// own start). A contract that starts in 2028 gets nothing for an outage in 2027.
///
/// Outages are `(start, end)` in UTC, as recorded. The amount is
/// `Σ annual_fee_per_account × accounts × days / 365`, rounded down once.
pub fn unit_compensation(
    outages: &[(NaiveDateTime, NaiveDateTime)],
    tz: Tz,
    unit: &ContractUnit,
    annual_fee_per_account: Yen,
    last_day: Option<NaiveDate>,
) -> Result<UnitCompensation, ContractError> {
    let from = start_of_day(tz, unit.basic.start).naive_utc();
    let until = match last_day {
        Some(d) => Some(
            start_of_day(
                tz,
                d.succ_opt()
                    .ok_or(ContractError::DateOutOfRange("last day at the end of the calendar"))?,
            )
            .naive_utc(),
        ),
        None => None,
    };
    let mut out = UnitCompensation::default();
    let mut sum: u128 = 0;
    for (s, e) in merged(outages)? {
        let s = s.max(from);
        let e = until.map_or(e, |u| e.min(u));
        if e <= s {
            continue;
        }
        let days = outage_days(s, e);
        if days == 0 {
            continue;
        }
        let accounts = unit.quota_at(today_in(tz, s.and_utc()));
        let annual = u128::from(annual_fee_per_account) * u128::from(accounts);
        sum += annual * u128::from(days);
        out.outages += 1;
        out.days = out
            .days
            .checked_add(days)
            .ok_or(ContractError::AmountOverflow("compensable days"))?;
        out.annual_fee = Yen::try_from(annual).map_err(|_| ContractError::AmountOverflow("annual fee"))?;
        out.counted.push(CountedOutage {
            start: s,
            end: e,
            days,
            annual_fee: out.annual_fee,
        });
    }
    out.amount =
        Yen::try_from(sum / DAYS_PER_YEAR).map_err(|_| ContractError::AmountOverflow("outage compensation"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeDelta};
    use proptest::prelude::*;

    fn t(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn hours(start: NaiveDateTime, h: i64) -> (NaiveDateTime, NaiveDateTime) {
        (start, start + TimeDelta::hours(h))
    }

    #[test]
    fn below_120_hours_gives_nothing() {
        let s = t(2027, 3, 1, 9, 0);
        assert_eq!(compensable_days(&[hours(s, 119)]).unwrap(), 0);
        let almost = (s, s + TimeDelta::hours(120) - TimeDelta::seconds(1));
        assert_eq!(compensable_days(&[almost]).unwrap(), 0);
        assert_eq!(compensation(&[almost], 365_000).unwrap(), 0);
        assert_eq!(compensation(&[], 365_000).unwrap(), 0);
    }

    #[test]
    fn whole_24_hour_days_from_120_hours() {
        let s = t(2027, 3, 1, 9, 0);
        assert_eq!(compensable_days(&[hours(s, 120)]).unwrap(), 5);
        assert_eq!(compensable_days(&[hours(s, 143)]).unwrap(), 5);
        let just_under_6 = (s, s + TimeDelta::hours(144) - TimeDelta::minutes(1));
        assert_eq!(compensable_days(&[just_under_6]).unwrap(), 5);
        assert_eq!(compensable_days(&[hours(s, 144)]).unwrap(), 6);
        // 365,000 yen a year is 1,000 yen a day.
        assert_eq!(compensation(&[hours(s, 144)], 365_000).unwrap(), 6_000);
    }

    #[test]
    fn each_qualifying_outage_counts_separately() {
        let a = hours(t(2027, 3, 1, 0, 0), 130); // 5 days
        let b = hours(t(2027, 4, 1, 0, 0), 100); // too short
        let c = hours(t(2027, 5, 1, 0, 0), 250); // 10 days
        assert_eq!(compensable_days(&[c, a, b]).unwrap(), 15);
    }

    #[test]
    fn overlapping_or_touching_records_are_one_outage() {
        let s = t(2027, 3, 1, 0, 0);
        // Two 60-hour records back to back: one 120-hour outage.
        let first = hours(s, 60);
        let second = hours(first.1, 60);
        assert_eq!(compensable_days(&[first, second]).unwrap(), 5);
        // Overlapping records are not counted twice.
        assert_eq!(
            compensable_days(&[hours(s, 150), hours(s + TimeDelta::hours(10), 50)]).unwrap(),
            6
        );
        // A gap of a minute breaks continuity.
        let third = (first.1 + TimeDelta::minutes(1), first.1 + TimeDelta::hours(70));
        assert_eq!(compensable_days(&[first, third]).unwrap(), 0);
    }

    #[test]
    fn compensation_rounds_down_once() {
        let s = t(2028, 2, 25, 0, 0);
        // 120,000 yen a year for 5 days: 1643.8… → 1643 (Feb 29 makes no difference).
        assert_eq!(compensation(&[hours(s, 120)], 120_000).unwrap(), 1_643);
        // Two separate 5-day outages: 10 days → 3287, not 2 × 1643.
        let other = hours(t(2028, 6, 1, 0, 0), 120);
        assert_eq!(compensation(&[hours(s, 120), other], 120_000).unwrap(), 3_287);
    }

    #[test]
    fn an_outage_ending_before_it_starts_is_an_error() {
        let s = t(2027, 3, 1, 0, 0);
        let e = compensation(&[(s, s - TimeDelta::hours(1))], 1).unwrap_err();
        assert!(matches!(e, ContractError::OutageEndsBeforeStart { .. }));
        assert_eq!(compensation(&[(s, s)], 1).unwrap(), 0);
    }

    #[test]
    fn extreme_outages_do_not_panic() {
        let all = (NaiveDateTime::MIN, NaiveDateTime::MAX);
        let days = compensable_days(&[all]).unwrap();
        assert!(days > 190_000_000);
        assert!(compensation(&[all], u64::MAX).is_err());
        assert!(compensation(&[all], 365).unwrap() == days);
    }

    fn unit(start: NaiveDate, accounts: u32) -> ContractUnit {
        ContractUnit::new(crate::contract::BasicContract { start, accounts })
    }

    #[test]
    fn unit_compensation_counts_only_the_service_period() {
        let tokyo = chrono_tz::Asia::Tokyo;
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        // 365 yen a year per account: 1 yen a day per account.
        let o2027 = hours(t(2027, 3, 1, 0, 0), 200);
        let u = unit(d(2028, 1, 1), 1);
        assert_eq!(unit_compensation(&[o2027], tokyo, &u, 365, None).unwrap().amount, 0);
        // Starts in the middle of an outage: only the hours from 00:00 JST of the start
        // day count (2027-03-04 00:00 JST = 2027-03-03 15:00 UTC; 200 h from 03-01 00:00
        // UTC end 03-09 08:00 UTC: 137 h inside → 5 days).
        let u = unit(d(2027, 3, 4), 1);
        let c = unit_compensation(&[o2027], tokyo, &u, 365, None).unwrap();
        assert_eq!((c.outages, c.days, c.amount), (1, 5, 5));
        // Ended (cancelled or terminated) before it: nothing; ended in the middle of it:
        // only the part up to 24:00 JST of the last day (03-05 15:00 UTC: 111 h → 0).
        let u = unit(d(2026, 1, 1), 1);
        assert_eq!(
            unit_compensation(&[o2027], tokyo, &u, 365, Some(d(2027, 2, 28)))
                .unwrap()
                .amount,
            0
        );
        assert_eq!(
            unit_compensation(&[o2027], tokyo, &u, 365, Some(d(2027, 3, 5)))
                .unwrap()
                .days,
            0
        );
        assert_eq!(
            unit_compensation(&[o2027], tokyo, &u, 365, Some(d(2027, 3, 6)))
                .unwrap()
                .days,
            5
        );
        assert_eq!(
            unit_compensation(&[o2027], tokyo, &u, 365, Some(d(2027, 3, 7)))
                .unwrap()
                .days,
            6
        );
    }

    #[test]
    fn unit_compensation_pays_the_accounts_in_force() {
        let tokyo = chrono_tz::Asia::Tokyo;
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let mut u = unit(d(2027, 1, 1), 2);
        u.additional.push(crate::contract::AdditionalContract {
            start: d(2028, 6, 1),
            accounts: 10,
        });
        let before = hours(t(2027, 3, 1, 0, 0), 144);
        let after = hours(t(2028, 7, 1, 0, 0), 144);
        // 6 days x 2 accounts x 36,500 / 365 = 1,200; after the additional start: 12 accounts.
        assert_eq!(
            unit_compensation(&[before], tokyo, &u, 36_500, None).unwrap().amount,
            1_200
        );
        assert_eq!(
            unit_compensation(&[after], tokyo, &u, 36_500, None).unwrap().amount,
            7_200
        );
        assert_eq!(
            unit_compensation(&[before, after], tokyo, &u, 36_500, None)
                .unwrap()
                .amount,
            8_400
        );
        let e = unit_compensation(&[(t(2027, 3, 2, 0, 0), t(2027, 3, 1, 0, 0))], tokyo, &u, 1, None);
        assert!(e.is_err());
    }

    fn any_time() -> impl Strategy<Value = NaiveDateTime> {
        let lo = NaiveDate::from_ymd_opt(2000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        (0i64..60 * 365 * 86_400).prop_map(move |s| lo + TimeDelta::seconds(s))
    }

    fn outage() -> impl Strategy<Value = (NaiveDateTime, NaiveDateTime)> {
        (any_time(), 0i64..40 * 86_400).prop_map(|(s, len)| (s, s + TimeDelta::seconds(len)))
    }

    proptest! {
        #[test]
        fn one_outage_gives_floor_days_from_120_hours(o in outage(), fee in 0u64..100_000_000) {
            let secs = (o.1 - o.0).num_seconds();
            let days = compensable_days(&[o]).unwrap();
            if secs < 120 * 3600 {
                prop_assert_eq!(days, 0);
                prop_assert_eq!(compensation(&[o], fee).unwrap(), 0);
            } else {
                prop_assert!(days >= 5);
                prop_assert_eq!(days, (secs / 86_400) as u64);
            }
            prop_assert_eq!(compensation(&[o], fee).unwrap(), fee * days / 365);
        }

        #[test]
        fn compensation_ignores_order_and_is_bounded(
            mut os in proptest::collection::vec(outage(), 0..8),
            fee in 0u64..100_000_000,
        ) {
            let c = compensation(&os, fee).unwrap();
            os.reverse();
            prop_assert_eq!(compensation(&os, fee).unwrap(), c);
            // Never more than the fee for the calendar time actually covered.
            let covered: i64 = merged(&os).unwrap().iter().map(|(s, e)| (*e - *s).num_seconds()).sum();
            prop_assert!(compensable_days(&os).unwrap() as i64 * 86_400 <= covered);
            // Each outage alone is no more than all of them together (merging can only help).
            for o in &os {
                prop_assert!(compensation(&[*o], fee).unwrap() <= c);
            }
        }

        #[test]
        fn longer_outages_never_pay_less(o in outage(), extra in 0i64..10 * 86_400, fee in 0u64..100_000_000) {
            let longer = (o.0, o.1 + TimeDelta::seconds(extra));
            prop_assert!(compensation(&[longer], fee).unwrap() >= compensation(&[o], fee).unwrap());
        }
    }
}
