//! The budget of the relay's unauthenticated echo (`Kind::Echo`, issue 18): what
//! `mcvpn diagnose` measures the UDP path with, before any login.
//!
//! Anyone can send an echo, from any (spoofed) source, so an answer must cost little and
//! give an attacker nothing: it is never longer than the request (no amplification;
//! `proto::relay::echo_reply_in_place`), it reflects none of the request's padding, and
//! the hub sends at most a fixed number of answers:
//!
//! - **per source** (an IPv4 address or an IPv6 /64): a bucket of [`EchoLimits::per_source_burst`]
//!   answers refilled at [`EchoLimits::per_source_per_sec`]. One diagnose run sends about
//!   80 echoes within ten seconds (5 for the UDP check, up to 25 for the MTU, 50 for loss);
//!   the burst holds one run, the refill a run every few seconds.
//! - **in all**: one bucket of [`EchoLimits::global_burst`] refilled at
//!   [`EchoLimits::global_per_sec`]: at most ~0.7 MB/s of answers whatever the number of
//!   sources, a small fraction of what the relay moves.
//!
//! The per-source table is bounded ([`EchoLimits::sources`], least recently seen out):
//! a flood from many addresses only refreshes buckets, and the global cap still holds.
//! Over budget, an echo is dropped and counted (`RelayStats::echoes_over_budget`); no log
//! line per datagram.

use std::net::IpAddr;
use std::time::Instant;

use hashlink::LruCache;

/// The caps. Defaults in [`Default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoLimits {
    pub per_source_burst: f64,
    pub per_source_per_sec: f64,
    pub global_burst: f64,
    pub global_per_sec: f64,
    /// Sources remembered at once (about 64 bytes each).
    pub sources: usize,
}

impl Default for EchoLimits {
    fn default() -> Self {
        EchoLimits {
            per_source_burst: 120.0,
            per_source_per_sec: 20.0,
            global_burst: 1000.0,
            global_per_sec: 500.0,
            sources: 4096,
        }
    }
}

/// A token bucket: `tokens` refilled at `rate`/s up to `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket { tokens: burst, at: now }
    }

    fn take(&mut self, burst: f64, rate: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The key a per-source bucket counts: an IPv4 address, or the /64 of an IPv6 one.
fn source_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => u32::from(a) as u128,
            // The low half is free: a bit above 32 keeps it apart from any IPv4 key.
            None => (u128::from(a) >> 64) << 64 | 1 << 40,
        },
    }
}

/// The relay thread's echo budget (the relay loop owns it: no lock).
pub struct EchoBudget {
    limits: EchoLimits,
    global: Bucket,
    per_source: LruCache<u128, Bucket>,
}

impl EchoBudget {
    pub fn new(limits: EchoLimits, now: Instant) -> EchoBudget {
        EchoBudget {
            limits,
            global: Bucket::full(limits.global_burst, now),
            per_source: LruCache::new(limits.sources.max(1)),
        }
    }

    /// Whether the hub may answer one echo from `ip` now (and takes the token if so).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let l = self.limits;
        let key = source_key(ip);
        let bucket = match self.per_source.get_mut(&key) {
            Some(b) => b,
            None => {
                self.per_source.insert(key, Bucket::full(l.per_source_burst, now));
                self.per_source.get_mut(&key).expect("just inserted")
            }
        };
        // The source's token first: a source over its own budget does not drain the global one.
        if !bucket.take(l.per_source_burst, l.per_source_per_sec, now) {
            return false;
        }
        self.global.take(l.global_burst, l.global_per_sec, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = EchoBudget::new(EchoLimits::default(), t0);
        let answered = (0..500).filter(|_| b.allow(ip("192.0.2.7"), t0)).count();
        assert_eq!(answered, 120, "the burst, not more");
        // One second later: 20 more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..500).filter(|_| b.allow(ip("192.0.2.7"), t1)).count(), 20);
        // Another source is not affected.
        assert!(b.allow(ip("192.0.2.8"), t1));
    }

    #[test]
    fn many_sources_share_the_global_cap() {
        let t0 = Instant::now();
        let mut b = EchoBudget::new(EchoLimits::default(), t0);
        let answered = (0..20_000u32)
            .filter(|i| b.allow(IpAddr::V4((0x0a00_0000 + i).into()), t0))
            .count();
        assert_eq!(answered, 1000, "the global burst bounds a flood from many addresses");
        let t1 = t0 + Duration::from_secs(2);
        let answered = (0..20_000u32)
            .filter(|i| b.allow(IpAddr::V4((0x0b00_0000 + i).into()), t1))
            .count();
        assert_eq!(answered, 1000, "refilled at 500/s, up to the burst");
        assert!(b.per_source.len() <= 4096, "the table stays bounded");
    }

    #[test]
    fn an_ipv6_64_counts_as_one_source() {
        let t0 = Instant::now();
        let mut b = EchoBudget::new(EchoLimits::default(), t0);
        let answered = (0..500u32)
            .filter(|i| b.allow(ip(&format!("2001:db8::{:x}", i + 1)), t0))
            .count();
        assert_eq!(answered, 120);
        assert_ne!(source_key(ip("0.0.0.1")), source_key(ip("::1")));
        assert_eq!(source_key(ip("::ffff:192.0.2.1")), source_key(ip("192.0.2.1")));
    }
}
