//! The pre-authentication budget: what a connection may cost the hub before it has said
//! who it is (issue 11 item 1). Anyone can open one: the hub's key is in every user's
//! server URL.
//!
//! The accept loop takes a [`PreauthGuard`] for each connection; the connection task drops
//! it when the first request (the login) has arrived or the connection failed. While the
//! guard lives, the connection counts against two caps:
//!
//! - **per source** ([`PreauthLimits::per_source`]): one address (an IPv6 /64, which one
//!   subscriber gets whole) may hold this many; the next is closed at once, unread.
//! - **global** ([`PreauthLimits::global`]): when that many are pending, a new connection
//!   evicts the *oldest* pending one instead of being refused. Refusing new ones would let a
//!   flood from enough addresses keep every slot and lock real users out; evicting the
//!   oldest gives every newcomer the time it takes the flood to cycle through all slots,
//!   and a real node needs only a round trip or two to send its login.
//!
//! and the whole phase is bounded by [`PreauthLimits::handshake_deadline`].
//!
//! Cost on the legitimate path: one short mutex section per accept and one per close.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

/// The caps and the deadline. Defaults in [`Default`], settable in `HubSettings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreauthLimits {
    /// Unauthenticated connections one source may hold at once. 32: a NAT or carrier-grade
    /// NAT in front of an office puts all its users behind one address, and a node
    /// reconnecting after a network change briefly holds two connections; a whole office
    /// logging in within the same 5 s is far below 32 at once, since a login leaves this
    /// budget after one round trip.
    pub per_source: u32,
    /// Unauthenticated connections pending at once, all sources together. 4096: each costs
    /// a descriptor, a task and a few hundred bytes of buffers (about 4 KiB in all), so
    /// 16 MiB and well under a 65,536-descriptor limit with room for the live sessions; and
    /// a flood must open 4096 connections to push out a real node's one.
    pub global: u32,
    /// From accept to the first request (the login) received. 5 s: a node sends its
    /// handshake at once and its login one round trip later; even across a satellite
    /// link that is under 2 s.
    pub handshake_deadline: Duration,
}

impl Default for PreauthLimits {
    fn default() -> Self {
        PreauthLimits {
            per_source: 32,
            global: 4096,
            handshake_deadline: Duration::from_secs(5),
        }
    }
}

/// The address a per-source cap counts: an IPv4 address, or the /64 of an IPv6 one (an
/// IPv4-mapped IPv6 address counts as its IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4(u32),
    V6Prefix(u64),
}

impl SourceKey {
    fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(a) => SourceKey::V4(a.into()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a) => SourceKey::V4(a.into()),
                None => SourceKey::V6Prefix((u128::from(a) >> 64) as u64),
            },
        }
    }
}

/// Counters for `mcvpn hub stats`.
#[derive(Debug, Default)]
struct Counters {
    admitted: AtomicU64,
    refused_per_source: AtomicU64,
    evicted_global: AtomicU64,
    deadline_expired: AtomicU64,
}

/// What `mcvpn hub stats` shows of the pre-authentication budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreauthSnapshot {
    /// Connections in their unauthenticated phase now.
    pub pending: usize,
    /// Sources (addresses, IPv6 /64s) holding them.
    pub sources: usize,
    pub admitted: u64,
    /// Closed at accept: their source held `per_source` already.
    pub refused_per_source: u64,
    /// Closed to make room under the global cap (the oldest pending ones).
    pub evicted_global: u64,
    /// Closed at the handshake deadline.
    pub deadline_expired: u64,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// Pending connections, oldest first (ids grow), each with the signal that evicts it.
    /// Its length is the global count; it never exceeds `global`.
    by_age: BTreeMap<u64, Arc<Notify>>,
    /// Pending connections per source. A source leaves the map with its last connection,
    /// so the map holds at most `global` entries.
    per_source: HashMap<SourceKey, u32>,
}

/// The hub's pre-authentication budget, shared by the accept loop and connection tasks.
pub struct Preauth {
    limits: PreauthLimits,
    table: Mutex<Table>,
    counters: Counters,
}

impl Preauth {
    pub fn new(limits: PreauthLimits) -> Arc<Preauth> {
        Arc::new(Preauth {
            limits,
            table: Mutex::new(Table::default()),
            counters: Counters::default(),
        })
    }

    pub fn limits(&self) -> PreauthLimits {
        self.limits
    }

    /// Takes a slot for a connection from `ip`, or None if `ip`'s source holds its cap
    /// (the caller closes the connection at once). At the global cap, the oldest pending
    /// connection is told to close and this one takes its place.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PreauthGuard> {
        let source = SourceKey::of(ip);
        let mut t = self.table.lock();
        let held = t.per_source.get(&source).copied().unwrap_or(0);
        if held >= self.limits.per_source {
            drop(t);
            self.counters.refused_per_source.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%ip, held, "pre-auth: source at its cap, connection closed");
            return None;
        }
        if t.by_age.len() >= self.limits.global as usize {
            if let Some((_, oldest)) = t.by_age.pop_first() {
                // notify_one keeps a permit: the task sees it even if not waiting yet.
                oldest.notify_one();
                self.counters.evicted_global.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let evict = Arc::new(Notify::new());
        t.by_age.insert(id, evict.clone());
        *t.per_source.entry(source).or_insert(0) += 1;
        drop(t);
        self.counters.admitted.fetch_add(1, Ordering::Relaxed);
        Some(PreauthGuard {
            owner: self.clone(),
            id,
            source,
            evict,
            expires: tokio::time::Instant::now() + self.limits.handshake_deadline,
        })
    }

    pub fn snapshot(&self) -> PreauthSnapshot {
        let (pending, sources) = {
            let t = self.table.lock();
            (t.by_age.len(), t.per_source.len())
        };
        let c = &self.counters;
        PreauthSnapshot {
            pending,
            sources,
            admitted: c.admitted.load(Ordering::Relaxed),
            refused_per_source: c.refused_per_source.load(Ordering::Relaxed),
            evicted_global: c.evicted_global.load(Ordering::Relaxed),
            deadline_expired: c.deadline_expired.load(Ordering::Relaxed),
        }
    }

    fn release(&self, id: u64, source: SourceKey) {
        let mut t = self.table.lock();
        t.by_age.remove(&id); // already gone if it was evicted
        if let Some(n) = t.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                t.per_source.remove(&source);
            }
        }
    }
}

/// Why a connection's unauthenticated phase was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreauthEnd {
    #[error("no login within the handshake deadline of {0:?}")]
    Deadline(Duration),
    #[error("closed to make room: the hub is at its cap of unauthenticated connections")]
    Evicted,
}

/// One connection's slot in the budget; dropping it frees the slot.
pub struct PreauthGuard {
    owner: Arc<Preauth>,
    id: u64,
    source: SourceKey,
    evict: Arc<Notify>,
    /// The deadline counts from admission (accept), not from each phase: a connection
    /// whose unauthenticated phase has several steps (HTTPS: TLS, the HTTP upgrade, then
    /// the control handshake and login) gets the same time in all as a TCP one.
    expires: tokio::time::Instant,
}

impl PreauthGuard {
    /// Runs `phase` (the handshake and the first request) within the deadline, and ends it
    /// early if the slot is evicted. The guard is consumed: the slot is free when this
    /// returns, whatever the outcome.
    pub async fn bound<F: Future>(mut self, phase: F) -> Result<F::Output, PreauthEnd> {
        self.within(phase).await
    }

    /// Runs one step of the unauthenticated phase (a TLS handshake, an HTTP request)
    /// within what is left of the deadline, ending it early if the slot is evicted. The
    /// guard is kept for the next step; the caller drops it (or hands it on) when done.
    pub async fn within<F: Future>(&mut self, phase: F) -> Result<F::Output, PreauthEnd> {
        let deadline = self.owner.limits.handshake_deadline;
        tokio::select! {
            out = phase => Ok(out),
            _ = tokio::time::sleep_until(self.expires) => {
                self.owner.counters.deadline_expired.fetch_add(1, Ordering::Relaxed);
                Err(PreauthEnd::Deadline(deadline))
            }
            _ = self.evict.notified() => Err(PreauthEnd::Evicted),
        }
    }
}

impl Drop for PreauthGuard {
    fn drop(&mut self) {
        self.owner.release(self.id, self.source);
    }
}

/// Backoff for the accept loop. When the process or the system is out of descriptors or
/// memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) accept fails at once for as long as it
/// lasts, and retrying at once spins a core and floods the log. The wait grows from
/// [`AcceptBackoff::FIRST`] to [`AcceptBackoff::MAX`]; one warning per burst.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Duration,
    errors: u64,
}

impl AcceptBackoff {
    pub const FIRST: Duration = Duration::from_millis(5);
    pub const MAX: Duration = Duration::from_secs(1);

    /// An accept failed: how long to wait before the next one. Errors about one connection
    /// only (it was reset before accept, `ECONNABORTED`) wait nothing.
    pub fn failed(&mut self, e: &io::Error) -> Duration {
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !exhausted && e.kind() == io::ErrorKind::ConnectionAborted {
            tracing::debug!(error = %e, "accept: connection aborted before it was accepted");
            return Duration::ZERO;
        }
        if self.errors == 0 {
            tracing::warn!(error = %e, "accept failing; backing off until it recovers");
        }
        self.errors += 1;
        self.delay = (self.delay * 2).clamp(Self::FIRST, Self::MAX);
        self.delay
    }

    /// An accept succeeded: the burst, if any, is over.
    pub fn succeeded(&mut self) {
        if self.errors > 0 {
            tracing::warn!(errors = self.errors, "accept recovered");
            self.errors = 0;
            self.delay = Duration::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
    }

    fn limits(per_source: u32, global: u32) -> PreauthLimits {
        PreauthLimits {
            per_source,
            global,
            handshake_deadline: Duration::from_millis(200),
        }
    }

    #[test]
    fn defaults_keep_the_deadline_at_or_under_five_seconds() {
        let d = PreauthLimits::default();
        assert!(d.handshake_deadline <= Duration::from_secs(5));
        assert!(d.per_source >= 32 && d.global >= 1024);
    }

    #[test]
    fn per_source_cap_refuses_the_next_and_frees_on_drop() {
        let p = Preauth::new(limits(32, 4096));
        let held: Vec<_> = (0..32).map(|_| p.admit(v4(1)).expect("under the cap")).collect();
        assert!(p.admit(v4(1)).is_none(), "the 33rd from one source is refused");
        assert!(p.admit(v4(2)).is_some(), "another source is not affected");
        let s = p.snapshot();
        assert_eq!(s.refused_per_source, 1);
        assert_eq!(s.pending, 32, "the other source's guard was dropped at once");
        drop(held);
        assert!(p.admit(v4(1)).is_some(), "freed when the guards drop");
        let s = p.snapshot();
        assert_eq!((s.pending, s.sources), (0, 0), "the table empties: {s:?}");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let p = Preauth::new(limits(2, 4096));
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        let _g = (p.admit(a.into()).unwrap(), p.admit(b.into()).unwrap());
        assert!(p.admit(IpAddr::V6(a)).is_none(), "same /64");
        assert!(p.admit(other.into()).is_some(), "another /64");
        let _h = (p.admit(v4(7)).unwrap(), p.admit(v4(7)).unwrap());
        let mapped = Ipv4Addr::new(198, 18, 0, 7).to_ipv6_mapped();
        assert!(
            p.admit(mapped.into()).is_none(),
            "mapped IPv4 counts as the IPv4 address"
        );
    }

    #[tokio::test]
    async fn global_cap_evicts_the_oldest_pending_connection() {
        let p = Preauth::new(PreauthLimits {
            handshake_deadline: Duration::from_secs(30),
            ..limits(32, 3)
        });
        let oldest = p.admit(v4(1)).unwrap();
        let _others = (p.admit(v4(2)).unwrap(), p.admit(v4(3)).unwrap());
        let newcomer = p.admit(v4(4)).expect("a newcomer is never refused for the global cap");
        let s = p.snapshot();
        assert_eq!((s.pending, s.evicted_global), (3, 1));
        // The oldest one's phase ends at once, though it would have run for 30 s.
        let t = Instant::now();
        let r = oldest.bound(std::future::pending::<()>()).await;
        assert_eq!(r, Err(PreauthEnd::Evicted));
        assert!(t.elapsed() < Duration::from_secs(1));
        // The newcomer is not evicted: its phase runs.
        assert_eq!(newcomer.bound(async { 7 }).await, Ok(7));
        assert_eq!(p.snapshot().sources, 2, "the evicted and finished ones left the table");
    }

    #[tokio::test]
    async fn deadline_ends_a_stalled_handshake_over_real_tcp() {
        // A real peer that sends the start of a valid message 1 and stalls.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peer = std::net::TcpStream::connect(addr).unwrap();
        std::io::Write::write_all(&mut peer, &[0, 125, 1, 2, 3]).unwrap();
        let (stream, source) = listener.accept().await.unwrap();
        let p = Preauth::new(limits(32, 4096));
        let guard = p.admit(source.ip()).unwrap();
        let keys = [crate::keys::KeyPair::generate()];
        let t = Instant::now();
        let r = guard.bound(crate::channel::accept(Box::new(stream), &keys)).await;
        assert!(
            matches!(r, Err(PreauthEnd::Deadline(_))),
            "stalled handshake ended by the deadline"
        );
        assert!(t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_secs(2));
        let s = p.snapshot();
        assert_eq!((s.deadline_expired, s.pending), (1, 0));
    }

    #[tokio::test]
    async fn the_deadline_counts_from_admission_across_steps() {
        // HTTPS: TLS, the HTTP request, then the control login, all within one deadline.
        let p = Preauth::new(limits(32, 4096));
        let mut guard = p.admit(v4(1)).unwrap();
        let step = guard.within(tokio::time::sleep(Duration::from_millis(120))).await;
        assert_eq!(step, Ok(()));
        let t = Instant::now();
        let r = guard.within(std::future::pending::<()>()).await;
        assert_eq!(r, Err(PreauthEnd::Deadline(Duration::from_millis(200))));
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "only what was left: {:?}",
            t.elapsed()
        );
        assert_eq!(p.snapshot().pending, 1, "the slot is held until the guard goes");
        drop(guard);
        let s = p.snapshot();
        assert_eq!((s.pending, s.deadline_expired), (0, 1));
    }

    #[test]
    fn accept_backoff_grows_is_capped_and_resets() {
        let mut b = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let waits: Vec<_> = (0..12).map(|_| b.failed(&emfile)).collect();
        assert_eq!(waits[0], AcceptBackoff::FIRST);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "never shrinks within a burst");
        assert_eq!(*waits.last().unwrap(), AcceptBackoff::MAX);
        b.succeeded();
        assert_eq!(b.failed(&emfile), AcceptBackoff::FIRST, "a new burst starts short");
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(
            b.failed(&aborted),
            Duration::ZERO,
            "one aborted connection is no reason to wait"
        );
    }
}
