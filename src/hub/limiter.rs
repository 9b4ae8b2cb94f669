//! Slows down password guessing. Wrong passwords never lock an account (that would let
//! anyone lock anyone out); instead, after a few failures per account and per source
//! address, further attempts must wait, and the refusal says how long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures allowed before any waiting.
pub const FREE_FAILURES: u32 = 5;
/// Longest wait imposed.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// A key with no failure for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Source(IpAddr),
    Account(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
}

impl Entry {
    fn blocked_until(&self) -> Option<Instant> {
        if self.failures < FREE_FAILURES {
            return None;
        }
        let exp = (self.failures - FREE_FAILURES).min(16);
        let wait = Duration::from_secs(1u64 << exp).min(MAX_WAIT);
        Some(self.last_failure + wait)
    }
}

#[derive(Default)]
pub struct LoginLimiter {
    entries: Mutex<HashMap<Key, Entry>>,
}

fn keys(ip: IpAddr, account: Option<&str>) -> Vec<Key> {
    let mut k = vec![Key::Source(ip)];
    if let Some(a) = account {
        k.push(Key::Account(a.to_string()));
    }
    k
}

impl LoginLimiter {
    /// Seconds the caller must still wait, if any.
    pub fn check(&self, ip: IpAddr, account: Option<&str>) -> Option<u64> {
        self.check_at(ip, account, Instant::now())
    }

    pub fn record_failure(&self, ip: IpAddr, account: Option<&str>) {
        self.record_failure_at(ip, account, Instant::now())
    }

    /// A correct password clears the account's count (not the address's: one good
    /// account must not launder guesses at others from the same address).
    pub fn record_success(&self, _ip: IpAddr, account: Option<&str>) {
        if let Some(a) = account {
            self.entries.lock().remove(&Key::Account(a.to_string()));
        }
    }

    fn check_at(&self, ip: IpAddr, account: Option<&str>, now: Instant) -> Option<u64> {
        let entries = self.entries.lock();
        keys(ip, account)
            .iter()
            .filter_map(|k| entries.get(k)?.blocked_until())
            .filter(|&until| until > now)
            .map(|until| (until - now).as_secs_f64().ceil() as u64)
            .max()
    }

    fn record_failure_at(&self, ip: IpAddr, account: Option<&str>, now: Instant) {
        let mut entries = self.entries.lock();
        entries.retain(|_, e| now.duration_since(e.last_failure) < FORGET_AFTER);
        for k in keys(ip, account) {
            let e = entries.entry(k).or_insert(Entry {
                failures: 0,
                last_failure: now,
            });
            e.failures += 1;
            e.last_failure = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_attempts_then_growing_wait() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            l.record_failure_at(ip, Some("alice"), t0);
            assert_eq!(l.check_at(ip, Some("alice"), t0), None);
        }
        l.record_failure_at(ip, Some("alice"), t0);
        assert_eq!(l.check_at(ip, Some("alice"), t0), Some(1));
        l.record_failure_at(ip, Some("alice"), t0);
        assert_eq!(l.check_at(ip, Some("alice"), t0), Some(2));
        assert_eq!(l.check_at(ip, Some("alice"), t0 + Duration::from_secs(3)), None);
        // The account is limited from any address, the address for any account.
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(l.check_at(other, Some("alice"), t0), Some(2));
        assert_eq!(l.check_at(ip, Some("bob"), t0), Some(2));
        assert_eq!(l.check_at(other, Some("bob"), t0), None);
    }

    #[test]
    fn wait_is_capped_and_success_clears_the_account() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..40 {
            l.record_failure_at(ip, Some("alice"), t0);
        }
        assert_eq!(l.check_at(ip, Some("alice"), t0), Some(MAX_WAIT.as_secs()));
        l.record_success(ip, Some("alice"));
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(l.check_at(other, Some("alice"), t0), None);
        assert!(l.check_at(ip, None, t0).is_some(), "the address stays limited");
    }
}
