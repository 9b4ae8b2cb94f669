//! Password guessing limits.
//!
//! Failures are counted per (account, source) and per source, never per account alone:
//! a stranger's wrong passwords for `alice` from one place must not keep alice out when
//! she logs in from another (issue 11, item 3). Only password checks are limited: a
//! target that proves its device key, or a client with a valid resume token, never asks
//! the limiter, so nobody's guessing (behind a shared NAT or not) blocks them.
//!
//! After [`FREE_FAILURES`] wrong passwords for one account from one source, further
//! attempts for that pair must wait 1 s, 2 s, 4 s… up to [`MAX_WAIT`]; after
//! [`FREE_SOURCE_FAILURES`] for any accounts from one source, the source waits the same
//! way. Sources are IPv4 addresses and IPv6 /64 prefixes (one host holds a whole /64).
//!
//! **Slowed, not blocked.** An attacker with many addresses gets [`FREE_FAILURES`]
//! guesses per address. When an account collects [`ACCOUNT_ALERT`] failures from all
//! sources within [`FORGET_AFTER`], every (account, source) pair gets a single free
//! failure instead, which slows such an attack five-fold; but the first attempt from a
//! source that has not failed is always checked, so the real user with the right
//! password still gets in, at once, from a clean address. There is deliberately no
//! per-account ceiling that refuses: any limit an attacker can fill from elsewhere is a
//! lockout. (Argon2's CPU is bounded separately, by the hash gate in `login_cost`.)
//!
//! **Reserved before hashing.** [`LoginLimiter::begin`] counts the failure before the
//! hash runs, so parallel wrong logins cannot all pass the check before any failure is
//! recorded (issue 11, item 2); [`Attempt::succeeded`] takes it back, and
//! [`Attempt::not_checked`] when no password was checked after all.
//!
//! **Bounded.** At most [`MAX_ENTRIES`] counters, least recently failed evicted first;
//! accounts are kept as keyed 64-bit hashes, not as the strings nodes sent; expired
//! counters are dropped a few at a time from the old end, never by a scan of the table.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hashlink::LruCache;
use parking_lot::Mutex;

/// Wrong passwords for one account from one source before any waiting.
pub const FREE_FAILURES: u32 = 5;
/// Wrong passwords from one source, for any accounts, before any waiting (a shared
/// NAT: many users, some mistyping).
pub const FREE_SOURCE_FAILURES: u32 = 20;
/// Failures for one account, from all sources, after which each source gets only one
/// free failure for it.
pub const ACCOUNT_ALERT: u32 = 20;
/// Longest wait imposed.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// A counter with no failure for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Most counters kept (about 100 bytes each): beyond it the least recently failed one
/// is forgotten.
pub const MAX_ENTRIES: usize = 100_000;
/// Expired counters dropped per failure recorded, from the least recent end.
const PRUNE_PER_CALL: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// One account from one source.
    Pair(u64, IpAddr),
    /// One source, any account.
    Source(IpAddr),
    /// One account, any source: only raises the alert, never blocks by itself.
    Account(u64),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
}

impl Entry {
    fn blocked_until(&self, free: u32) -> Option<Instant> {
        if self.failures < free {
            return None;
        }
        let exp = (self.failures - free).min(16);
        let wait = Duration::from_secs(1u64 << exp).min(MAX_WAIT);
        Some(self.last_failure + wait)
    }

    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_failure) < FORGET_AFTER
    }
}

/// The source a limit applies to: the address, or its /64 for IPv6.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

pub struct LoginLimiter {
    entries: Mutex<LruCache<Key, Entry>>,
    /// Keys the account hashes, so that nobody can aim names at one counter.
    hasher: std::collections::hash_map::RandomState,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::with_capacity(MAX_ENTRIES)
    }
}

/// A password check in progress, its failure already counted.
#[must_use = "settle the attempt: succeeded() or not_checked(); dropping it leaves the failure counted"]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [Key; 3],
}

impl Attempt<'_> {
    /// The password was right: take the reserved failure back and forget this pair's
    /// failures (not the source's: one good account must not launder guesses at others
    /// from the same address).
    pub fn succeeded(self) {
        let mut entries = self.limiter.entries.lock();
        LoginLimiter::undo(&mut entries, &self.keys);
        entries.remove(&self.keys[0]);
    }

    /// The password was wrong: the reserved failure stays counted.
    pub fn failed(self) {}

    /// No password was checked after all (the hub was busy, or failed): take the
    /// reserved failure back.
    pub fn not_checked(self) {
        LoginLimiter::undo(&mut self.limiter.entries.lock(), &self.keys);
    }
}

impl LoginLimiter {
    pub fn with_capacity(capacity: usize) -> LoginLimiter {
        LoginLimiter {
            entries: Mutex::new(LruCache::new(capacity.max(3))),
            hasher: Default::default(),
        }
    }

    fn account_key(&self, account: Option<&str>) -> u64 {
        self.hasher.hash_one(account.unwrap_or(""))
    }

    fn keys(&self, ip: IpAddr, account: Option<&str>) -> [Key; 3] {
        let (src, acct) = (source_of(ip), self.account_key(account));
        [Key::Pair(acct, src), Key::Source(src), Key::Account(acct)]
    }

    /// Starts a password check for `account` from `ip`: refused with the seconds to wait
    /// while limited, else the attempt, with its failure already counted.
    pub fn begin(&self, ip: IpAddr, account: Option<&str>) -> Result<Attempt<'_>, u64> {
        self.begin_at(ip, account, Instant::now())
    }

    fn begin_at(&self, ip: IpAddr, account: Option<&str>, now: Instant) -> Result<Attempt<'_>, u64> {
        let keys = self.keys(ip, account);
        let mut entries = self.entries.lock();
        if let Some(wait) = Self::wait(&entries, &keys, now) {
            return Err(wait);
        }
        Self::prune(&mut entries, now);
        for k in keys {
            match entries.get_mut(&k) {
                Some(e) if e.live(now) => {
                    e.failures = e.failures.saturating_add(1);
                    e.last_failure = now;
                }
                _ => {
                    entries.insert(
                        k,
                        Entry {
                            failures: 1,
                            last_failure: now,
                        },
                    );
                }
            }
        }
        Ok(Attempt { limiter: self, keys })
    }

    /// Seconds `keys` must still wait at `now`, if any.
    fn wait(entries: &LruCache<Key, Entry>, keys: &[Key; 3], now: Instant) -> Option<u64> {
        let live = |k: &Key| entries.peek(k).filter(|e| e.live(now)).copied();
        let alert = live(&keys[2]).is_some_and(|e| e.failures >= ACCOUNT_ALERT);
        let pair_free = if alert { 1 } else { FREE_FAILURES };
        [
            live(&keys[0]).and_then(|e| e.blocked_until(pair_free)),
            live(&keys[1]).and_then(|e| e.blocked_until(FREE_SOURCE_FAILURES)),
        ]
        .into_iter()
        .flatten()
        .filter(|&until| until > now)
        .map(|until| (until - now).as_secs_f64().ceil() as u64)
        .max()
    }

    fn undo(entries: &mut LruCache<Key, Entry>, keys: &[Key; 3]) {
        for k in keys {
            if let Some(e) = entries.peek_mut(k) {
                e.failures = e.failures.saturating_sub(1);
            }
        }
    }

    /// Drops a few expired counters from the least recently failed end: constant work per
    /// call, and the table never holds more than its capacity anyway.
    fn prune(entries: &mut LruCache<Key, Entry>, now: Instant) {
        for _ in 0..PRUNE_PER_CALL {
            match entries.iter().next() {
                Some((_, e)) if !e.live(now) => {
                    entries.remove_lru();
                }
                _ => break,
            }
        }
    }

    /// Counters held (for tests and the status socket).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `n` wrong passwords at `t`, as the hub records them.
    fn fail(l: &LoginLimiter, from: &str, account: &str, n: u32, t: Instant) {
        for _ in 0..n {
            let _counted = l.begin_at(ip(from), Some(account), t).expect("not limited yet");
        }
    }

    #[test]
    fn free_attempts_then_growing_wait_for_the_pair() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        fail(&l, "192.0.2.1", "alice", FREE_FAILURES, t0);
        assert_eq!(l.begin_at(ip("192.0.2.1"), Some("alice"), t0).err(), Some(1));
        assert!(l
            .begin_at(ip("192.0.2.1"), Some("alice"), t0 + Duration::from_secs(1))
            .is_ok());
        assert_eq!(
            l.begin_at(ip("192.0.2.1"), Some("alice"), t0 + Duration::from_secs(1))
                .err(),
            Some(2)
        );
    }

    /// Issue 11, item 2: parallel attempts see each other's reserved failures, so no
    /// more than the free ones get to hash. Fails on the old check-then-record limiter.
    #[test]
    fn parallel_attempts_are_reserved_before_the_hash() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        let in_flight: Vec<_> = (0..500)
            .filter_map(|_| l.begin_at(ip("192.0.2.1"), Some("alice"), t0).ok())
            .collect();
        assert_eq!(in_flight.len(), FREE_FAILURES as usize);
    }

    /// Issue 11, item 3: a stranger's failures do not keep alice out from elsewhere, nor
    /// her successes clear the stranger's wait.
    #[test]
    fn a_stranger_does_not_lock_alice_out() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        fail(&l, "203.0.113.9", "alice", FREE_FAILURES, t0);
        // Far over the account alert, from many places.
        for i in 0..50 {
            fail(&l, &format!("198.18.0.{i}"), "alice", 1, t0);
        }
        assert!(l.begin_at(ip("203.0.113.9"), Some("alice"), t0).is_err());
        let alice = l
            .begin_at(ip("192.0.2.1"), Some("alice"), t0)
            .expect("alice from home is checked");
        alice.succeeded();
        assert!(l.begin_at(ip("203.0.113.9"), Some("alice"), t0).is_err());
        // The alert: a new source gets one free failure for alice, not five.
        fail(&l, "198.18.1.1", "alice", 1, t0);
        assert!(l.begin_at(ip("198.18.1.1"), Some("alice"), t0).is_err());
    }

    #[test]
    fn a_source_is_limited_across_accounts_and_ipv6_by_its_64() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..FREE_SOURCE_FAILURES {
            fail(&l, &format!("2001:db8::{i:x}"), &format!("user{i}"), 1, t0);
        }
        assert!(l.begin_at(ip("2001:db8::ffff"), Some("someone"), t0).is_err());
        assert!(l.begin_at(ip("2001:db8:0:1::1"), Some("someone"), t0).is_ok());
    }

    #[test]
    fn success_and_unchecked_attempts_give_the_reservation_back() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..3 * FREE_FAILURES {
            l.begin_at(ip("192.0.2.1"), Some("alice"), t0).unwrap().not_checked();
        }
        fail(&l, "192.0.2.1", "alice", FREE_FAILURES - 1, t0);
        l.begin_at(ip("192.0.2.1"), Some("alice"), t0).unwrap().succeeded();
        fail(&l, "192.0.2.1", "alice", FREE_FAILURES, t0);
    }

    #[test]
    fn wait_is_capped_and_counters_expire() {
        let l = LoginLimiter::default();
        let mut t = Instant::now();
        let mut counted = 0;
        while counted < 20 {
            match l.begin_at(ip("192.0.2.1"), Some("alice"), t) {
                Ok(a) => {
                    a.failed();
                    counted += 1;
                }
                Err(w) => t += Duration::from_secs(w),
            }
        }
        assert_eq!(
            l.begin_at(ip("192.0.2.1"), Some("alice"), t).err(),
            Some(MAX_WAIT.as_secs())
        );
        assert!(l.begin_at(ip("192.0.2.1"), Some("alice"), t + FORGET_AFTER).is_ok());
    }

    /// S3: the table is bounded (oldest forgotten) and holds no attacker strings.
    #[test]
    fn the_table_is_bounded() {
        let l = LoginLimiter::with_capacity(1000);
        let t0 = Instant::now();
        let long = "x".repeat(60_000);
        for i in 0..20_000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let _ = l.begin_at(IpAddr::V4(a), Some(&format!("{long}{i}")), t0);
        }
        assert!(l.len() <= 1000, "{}", l.len());
    }
}
