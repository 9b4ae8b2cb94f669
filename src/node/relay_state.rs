//! The node's side of the relay bind: which session it binds for, when the next bind
//! is due, the answer to the hub's challenge when the endpoint is new to the hub, and
//! whether the hub acknowledged it. An acknowledgement counts once, and only for a
//! bind this node sent: a replayed `Bound` keeps no node "bound" (review finding S1).

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use crate::proto::relay::{BindMsg, Kind, NodeId, RelayKey, BIND_LEN};

/// Bind retry interval while the hub has not acknowledged.
pub const BIND_RETRY: Duration = Duration::from_secs(1);
/// Bind refresh once bound; also keeps the NAT mapping to the hub open.
pub const BIND_REFRESH: Duration = Duration::from_secs(10);
/// Without an acknowledgement for this long the node counts itself unbound again.
pub const BIND_LOST: Duration = Duration::from_secs(25);
/// Still bound, but the last refresh went unanswered: ask again this often, so that a
/// path that stopped carrying (UDP blocked mid-session) shows within seconds, and one
/// lost datagram does not look like a dead path (see `transport`).
pub const BIND_UNANSWERED_RETRY: Duration = Duration::from_secs(3);
/// The node sent to its peers but nothing came back for this long: bind again now rather
/// than at the next refresh. Its NAT may have given it a new public address (a new lease,
/// a flushed mapping), and the hub drops datagrams from an endpoint it does not know until
/// a bind from there is challenged and answered: without this, up to BIND_REFRESH.
pub const QUIET_REBIND: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Session {
    node: NodeId,
    session: u64,
    key: RelayKey,
    counter: u64,
    /// The counter of the last `Bound` taken: a `Bound` must name a later bind.
    acked: u64,
    last_sent: Option<Instant>,
    last_ack: Option<Instant>,
    /// When the oldest bind not yet acknowledged left (None: every bind was answered).
    unanswered_since: Option<Instant>,
    /// Whether any bind of this session was acknowledged.
    ever_bound: bool,
}

impl Session {
    /// The session's next `Bind`, under a fresh counter (the hub takes each one once).
    fn next_bind(&mut self) -> [u8; BIND_LEN] {
        self.counter += 1;
        BindMsg {
            kind: Kind::Bind,
            node: self.node,
            session: self.session,
            counter: self.counter,
        }
        .encode(&self.key)
    }
}

/// What the transport manager reads of the bind (see `transport::Switcher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BindView {
    /// A session is running (the node binds).
    pub active: bool,
    /// Some bind of this session was acknowledged.
    pub ever_bound: bool,
    /// How long the oldest unacknowledged bind has waited (None: none waits).
    pub unanswered_for: Option<Duration>,
}

#[derive(Default)]
pub struct RelayState {
    current: Mutex<Option<Session>>,
}

impl RelayState {
    /// A new control session started: bind for it from now on, at once.
    pub fn start(&self, node: NodeId, session: u64, key: RelayKey) {
        *self.current.lock() = Some(Session {
            node,
            session,
            key,
            counter: 0,
            acked: 0,
            last_sent: None,
            last_ack: None,
            unanswered_since: None,
            ever_bound: false,
        });
    }

    /// The datagrams now leave by another path (UDP ↔ the HTTPS link): bind from it at
    /// once, and judge the new path from its own first bind.
    pub fn rebind_now(&self) {
        if let Some(s) = self.current.lock().as_mut() {
            s.last_sent = None;
            s.unanswered_since = None;
            s.ever_bound = false;
        }
    }

    /// Makes the next bind due at once (a refresh: what counts as bound is unchanged).
    pub fn refresh_now(&self) {
        if let Some(s) = self.current.lock().as_mut() {
            s.last_sent = None;
        }
    }

    /// A `Bind` for the current session for the UDP probe's own socket: the hub answers
    /// it with a `Challenge` to that socket, which proves UDP passes again. It uses the
    /// session's counter (the hub takes each counter once) but is not one of the binds
    /// whose answer keeps the node bound.
    pub fn probe_bind(&self) -> Option<[u8; BIND_LEN]> {
        let mut cur = self.current.lock();
        Some(cur.as_mut()?.next_bind())
    }

    /// Whether `datagram` is a genuine `Challenge` for the current session (what the
    /// UDP probe waits for; it must not answer it, or the binding would move there).
    pub fn is_our_challenge(&self, datagram: &[u8]) -> bool {
        self.on_challenge(datagram).is_some()
    }

    pub fn view(&self, now: Instant) -> BindView {
        match self.current.lock().as_ref() {
            None => BindView::default(),
            Some(s) => BindView {
                active: true,
                ever_bound: s.ever_bound,
                unanswered_for: s.unanswered_since.map(|t| now.saturating_duration_since(t)),
            },
        }
    }

    /// The control session ended: stop binding until the next one.
    pub fn stop(&self) {
        *self.current.lock() = None;
    }

    /// The bind datagram to send now, if one is due.
    pub fn bind_due(&self, now: Instant) -> Option<[u8; BIND_LEN]> {
        let mut cur = self.current.lock();
        let s = cur.as_mut()?;
        let bound = s.last_ack.is_some_and(|a| now.duration_since(a) < BIND_LOST);
        let interval = match (bound, s.unanswered_since.is_some()) {
            (false, _) => BIND_RETRY,
            (true, true) => BIND_UNANSWERED_RETRY,
            (true, false) => BIND_REFRESH,
        };
        if s.last_sent.is_some_and(|t| now.duration_since(t) < interval) {
            return None;
        }
        s.last_sent = Some(now);
        s.unanswered_since.get_or_insert(now);
        Some(s.next_bind())
    }

    /// Handles a `Bound` datagram; true if it acknowledged, for the first time, a bind
    /// of our current session (its counter is later than the last one acknowledged and
    /// not later than the last one sent).
    pub fn on_bound(&self, datagram: &[u8], now: Instant) -> bool {
        let Ok(msg) = BindMsg::parse(datagram) else {
            return false;
        };
        let mut cur = self.current.lock();
        let Some(s) = cur.as_mut() else { return false };
        let ours = msg.kind == Kind::Bound
            && msg.node == s.node
            && msg.session == s.session
            && BindMsg::verify(datagram, &s.key).is_ok();
        if !ours {
            return false;
        }
        if msg.counter <= s.acked || msg.counter > s.counter {
            tracing::debug!(
                counter = msg.counter,
                acked = s.acked,
                sent = s.counter,
                "ignoring a stale or replayed Bound"
            );
            return false;
        }
        s.acked = msg.counter;
        s.last_ack = Some(now);
        s.unanswered_since = None;
        s.ever_bound = true;
        true
    }

    /// Handles a `Challenge`: the hub asks us to prove we receive at the endpoint our
    /// bind came from. Returns the `Response` to send back (from the same socket), or
    /// `None` if the challenge is not for our current session (another node's, sent
    /// here because it spoofed our address: we cannot answer it, and must not).
    pub fn on_challenge(&self, datagram: &[u8]) -> Option<[u8; BIND_LEN]> {
        let msg = BindMsg::parse(datagram).ok()?;
        let cur = self.current.lock();
        let s = cur.as_ref()?;
        let ours = msg.kind == Kind::Challenge
            && msg.node == s.node
            && msg.session == s.session
            && BindMsg::verify(datagram, &s.key).is_ok();
        if !ours {
            return None;
        }
        Some(
            BindMsg {
                kind: Kind::Response,
                ..msg
            }
            .encode(&s.key),
        )
    }

    pub fn is_bound(&self, now: Instant) -> bool {
        self.current
            .lock()
            .as_ref()
            .and_then(|s| s.last_ack)
            .is_some_and(|a| now.duration_since(a) < BIND_LOST)
    }
}

/// Watches the sum of the peers' WireGuard byte counters, sampled by the timer thread:
/// [`QuietWatch::observe`] says when the node has sent for [`QUIET_REBIND`] without
/// receiving anything, once per such silence (a dead peer costs one extra bind, not one
/// per tick).
#[derive(Debug, Default)]
pub struct QuietWatch {
    tx: u64,
    rx: u64,
    rx_at: Option<Instant>,
    fired: bool,
}

impl QuietWatch {
    /// True when a bind should go now. Counters may go down (a peer's tunnel replaced):
    /// any change counts.
    pub fn observe(&mut self, tx: u64, rx: u64, now: Instant) -> bool {
        let rx_at = *self.rx_at.get_or_insert(now);
        let sent = tx != self.tx;
        self.tx = tx;
        if rx != self.rx {
            self.rx = rx;
            self.rx_at = Some(now);
            self.fired = false;
            return false;
        }
        if sent && !self.fired && now.saturating_duration_since(rx_at) >= QUIET_REBIND {
            self.fired = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13's soak: after the clients' NAT changed its public address, traffic came
    /// back only at the next bind refresh (up to 10 s). Sending into silence for 1 s now
    /// triggers one bind; receiving again re-arms it.
    #[test]
    fn sending_into_silence_rebinds_once_per_silence() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut q = QuietWatch::default();
        assert!(!q.observe(10, 10, ms(0)));
        // Traffic both ways: nothing to do.
        assert!(!q.observe(20, 20, ms(250)));
        // Sending, nothing back, not yet for QUIET_REBIND.
        assert!(!q.observe(30, 20, ms(500)));
        assert!(!q.observe(40, 20, ms(1000)));
        // A second of silence while sending: bind now, once.
        assert!(q.observe(50, 20, ms(1250)));
        assert!(!q.observe(60, 20, ms(1500)));
        assert!(!q.observe(70, 20, ms(9000)));
        // Something came back: a later silence fires again.
        assert!(!q.observe(80, 30, ms(9250)));
        assert!(!q.observe(90, 30, ms(9750)));
        assert!(q.observe(100, 30, ms(10250)));
        // Silence without sending (an idle tunnel) is no reason to bind.
        let mut idle = QuietWatch::default();
        assert!(!idle.observe(5, 5, ms(0)));
        assert!(!idle.observe(5, 5, ms(60_000)));
    }

    #[test]
    fn refresh_now_makes_a_bind_due_at_once() {
        let r = RelayState::default();
        r.start(1, 7, [3; 32]);
        let t0 = Instant::now();
        let first = r.bind_due(t0).unwrap();
        let ack = BindMsg {
            kind: Kind::Bound,
            ..BindMsg::parse(&first).unwrap()
        }
        .encode(&[3; 32]);
        assert!(r.on_bound(&ack, t0));
        assert!(
            r.bind_due(t0 + Duration::from_secs(2)).is_none(),
            "bound: next at the refresh"
        );
        r.refresh_now();
        assert!(r.bind_due(t0 + Duration::from_secs(2)).is_some());
        assert!(
            r.is_bound(t0 + Duration::from_secs(2)),
            "a refresh keeps the node bound"
        );
    }

    #[test]
    fn retries_fast_until_acknowledged_then_refreshes_slowly() {
        let r = RelayState::default();
        let t0 = Instant::now();
        assert!(r.bind_due(t0).is_none(), "no session, no bind");
        r.start(7, 99, [3; 32]);
        let first = r.bind_due(t0).unwrap();
        assert!(r.bind_due(t0 + Duration::from_millis(500)).is_none());
        let second = r.bind_due(t0 + BIND_RETRY).unwrap();
        assert_ne!(first, second, "the counter moved");
        let ack = BindMsg {
            kind: Kind::Bound,
            node: 7,
            session: 99,
            counter: 2,
        }
        .encode(&[3; 32]);
        assert!(r.on_bound(&ack, t0 + BIND_RETRY));
        assert!(r.is_bound(t0 + BIND_RETRY));
        assert!(r.bind_due(t0 + BIND_RETRY * 2).is_none());
        assert!(r.bind_due(t0 + BIND_RETRY + BIND_REFRESH).is_some());
        assert!(!r.is_bound(t0 + BIND_RETRY + BIND_LOST));
    }

    /// Review finding S1: a `Bound` is accepted once, and only for a bind we sent.
    #[test]
    fn a_replayed_or_unasked_bound_is_ignored() {
        let r = RelayState::default();
        let t0 = Instant::now();
        r.start(7, 99, [3; 32]);
        r.bind_due(t0).unwrap();
        let ack = |counter| {
            BindMsg {
                kind: Kind::Bound,
                node: 7,
                session: 99,
                counter,
            }
            .encode(&[3; 32])
        };
        assert!(!r.on_bound(&ack(2), t0), "an ack for a bind never sent");
        assert!(r.on_bound(&ack(1), t0));
        assert!(!r.on_bound(&ack(1), t0 + BIND_LOST), "a replayed ack");
        assert!(!r.is_bound(t0 + BIND_LOST), "the replay kept the node bound");
    }

    #[test]
    fn foreign_or_forged_acks_are_ignored() {
        let r = RelayState::default();
        let t0 = Instant::now();
        r.start(7, 99, [3; 32]);
        let wrong_key = BindMsg {
            kind: Kind::Bound,
            node: 7,
            session: 99,
            counter: 1,
        }
        .encode(&[4; 32]);
        let old_session = BindMsg {
            kind: Kind::Bound,
            node: 7,
            session: 98,
            counter: 1,
        }
        .encode(&[3; 32]);
        assert!(!r.on_bound(&wrong_key, t0));
        assert!(!r.on_bound(&old_session, t0));
        assert!(!r.on_bound(b"junk", t0));
        assert!(!r.is_bound(t0));
    }

    #[test]
    fn answers_only_its_own_sessions_challenges() {
        let r = RelayState::default();
        let challenge = |node, session, key: &[u8; 32]| {
            BindMsg {
                kind: Kind::Challenge,
                node,
                session,
                counter: 0xfeed,
            }
            .encode(key)
        };
        assert!(r.on_challenge(&challenge(7, 99, &[3; 32])).is_none(), "no session");
        r.start(7, 99, [3; 32]);
        let answer = r.on_challenge(&challenge(7, 99, &[3; 32])).unwrap();
        let msg = BindMsg::parse(&answer).unwrap();
        assert_eq!(
            (msg.kind, msg.node, msg.session, msg.counter),
            (Kind::Response, 7, 99, 0xfeed)
        );
        assert!(BindMsg::verify(&answer, &[3; 32]).is_ok());
        // Another node's challenge (it spoofed our endpoint), another session's, a
        // forged one, or a Bound: no answer.
        assert!(r.on_challenge(&challenge(8, 99, &[9; 32])).is_none());
        assert!(r.on_challenge(&challenge(7, 98, &[3; 32])).is_none());
        assert!(r.on_challenge(&challenge(7, 99, &[4; 32])).is_none());
        let bound = BindMsg {
            kind: Kind::Bound,
            node: 7,
            session: 99,
            counter: 0,
        }
        .encode(&[3; 32]);
        assert!(r.on_challenge(&bound).is_none());
    }

    /// What the transport manager reads: binds unanswered since the first one out, a
    /// refresh every 3 s while one waits, and a fresh start after a move.
    #[test]
    fn the_view_tracks_unanswered_binds_and_rebind_now_starts_over() {
        let r = RelayState::default();
        let t0 = Instant::now();
        assert_eq!(r.view(t0), BindView::default());
        r.start(7, 99, [3; 32]);
        let ack = |counter| {
            BindMsg {
                kind: Kind::Bound,
                node: 7,
                session: 99,
                counter,
            }
            .encode(&[3; 32])
        };
        assert_eq!(r.view(t0).unanswered_for, None);
        r.bind_due(t0).unwrap();
        r.bind_due(t0 + BIND_RETRY).unwrap();
        let v = r.view(t0 + Duration::from_secs(2));
        assert!(v.active && !v.ever_bound);
        assert_eq!(
            v.unanswered_for,
            Some(Duration::from_secs(2)),
            "counted from the first bind"
        );
        let t1 = t0 + Duration::from_secs(2);
        assert!(r.on_bound(&ack(2), t1));
        assert_eq!(
            r.view(t1),
            BindView {
                active: true,
                ever_bound: true,
                unanswered_for: None
            }
        );
        // The refresh goes unanswered: asked again after 3 s, not 10.
        let t2 = t1 + BIND_REFRESH;
        r.bind_due(t2).unwrap();
        assert!(r
            .bind_due(t2 + BIND_UNANSWERED_RETRY - Duration::from_millis(1))
            .is_none());
        assert!(r.bind_due(t2 + BIND_UNANSWERED_RETRY).is_some());
        assert_eq!(
            r.view(t2 + Duration::from_secs(4)).unanswered_for,
            Some(Duration::from_secs(4))
        );
        // A move: bind at once, judged afresh.
        r.rebind_now();
        let v = r.view(t2 + Duration::from_secs(4));
        assert!(!v.ever_bound && v.unanswered_for.is_none());
        assert!(r.bind_due(t2 + Duration::from_secs(4)).is_some());
    }

    /// The probe's bind takes a fresh counter of the session; the hub's challenge to it
    /// is recognised (and not taken as a `Bound`).
    #[test]
    fn probe_binds_use_the_session_and_its_counter() {
        let r = RelayState::default();
        assert!(r.probe_bind().is_none(), "no session, no probe");
        r.start(7, 99, [3; 32]);
        let first = BindMsg::parse(&r.bind_due(Instant::now()).unwrap()).unwrap();
        let probe = r.probe_bind().unwrap();
        let msg = BindMsg::parse(&probe).unwrap();
        assert_eq!((msg.kind, msg.node, msg.session), (Kind::Bind, 7, 99));
        assert!(msg.counter > first.counter);
        assert!(BindMsg::verify(&probe, &[3; 32]).is_ok());
        let challenge = BindMsg {
            kind: Kind::Challenge,
            node: 7,
            session: 99,
            counter: 0xabc,
        }
        .encode(&[3; 32]);
        assert!(r.is_our_challenge(&challenge));
        assert!(!r.on_bound(&challenge, Instant::now()));
        let forged = BindMsg {
            kind: Kind::Challenge,
            node: 7,
            session: 99,
            counter: 0xabc,
        }
        .encode(&[4; 32]);
        assert!(!r.is_our_challenge(&forged));
    }
}
