//! Authenticated links between hubs (issue 15): the Noise handshake two hubs make over
//! their relay sockets before either forwards `Mesh` datagrams to the other or accepts
//! them from it. Pure state, no I/O: the relay loop feeds it the handshake datagrams it
//! receives, and the hub's mesh task ([`run`]) sends the hellos it asks for.
//!
//! **Who may be a hub.** Every hub of one service holds the same hub key: the server URL
//! names one key for all its hubs, and nodes fail over between them on it. So a hub
//! proves it belongs by proving it holds that key: the handshake is Noise KK
//! ([`NOISE_PATTERN`]) with the hub key as both static keys. A host that does not hold
//! the key cannot complete it, whatever address it sends from, and the store alone (which
//! names the hubs' relay addresses) cannot make one a hub.
//!
//! **What a link is.** Like a node's relay binding (challenge and answer from the
//! endpoint), a link authenticates an *endpoint*: once a handshake with the hub at
//! address A completes, `Mesh` datagrams from A are taken as that hub's for
//! [`LINK_LIFETIME`], and datagrams for A's nodes may go there. The datagrams themselves
//! carry no per-link tag: the payload is a WireGuard message, sealed end to end between
//! the two nodes, which drop anything forged or replayed. A tag over each datagram would
//! cost about what forwarding it costs (a MAC over 1,400 bytes), for no protection of the
//! payload that WireGuard does not already give. What a link adds is that the header
//! (which nodes talk) comes from a hub, not from anyone who can send to the relay port.
//!
//! **Freshness.** The initiator puts its clock (Unix ms) and name in the first message;
//! the responder takes a hello only within [`CLOCK_SKEW_MS`] of its own clock and newer
//! than the last it took from that hub name, so a recorded hello cannot be replayed to
//! move a link. Each side renews the links it needs every [`LINK_REFRESH`].
//!
//! **Cost to strangers.** A hello costs the responder two Diffie-Hellman operations
//! before it knows the sender holds the key, so hellos are answered within a fixed budget
//! (per source and in all), like the echo. Both messages have the same fixed length: the
//! answer is no larger than the question.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::echo::{EchoBudget, EchoLimits};
use crate::keys::KeyPair;
use crate::proto::relay::{Header, Kind, HEADER_LEN};

/// Both hubs know the other's static key in advance (it is their own): KK.
pub const NOISE_PATTERN: &str = "Noise_KK_25519_ChaChaPoly_BLAKE2s";
const NOISE_PROLOGUE: &[u8] = b"mcvpn mesh v1";
/// Ephemeral key and AEAD tag of one KK message.
const DH_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The longest hub name a link carries (longer names are cut: the name is for freshness
/// and logs, the key is what authenticates).
pub const MAX_NAME: usize = 63;
/// Payload of both messages: clock (u64), name length (u8), name padded to [`MAX_NAME`].
const PAYLOAD_LEN: usize = 8 + 1 + MAX_NAME;
/// Length of a whole `MeshHello` or `MeshWelcome` datagram.
pub const HANDSHAKE_LEN: usize = HEADER_LEN + DH_LEN + PAYLOAD_LEN + TAG_LEN;

/// How often a hub renews a link it uses.
pub const LINK_REFRESH: Duration = Duration::from_secs(30);
/// How long a link holds without a renewal: three refreshes, so one or two lost hellos
/// do not cut traffic between hubs.
pub const LINK_LIFETIME: Duration = Duration::from_secs(90);
/// A hello unanswered for this long is sent again.
pub const HELLO_RETRY: Duration = Duration::from_secs(1);
/// How far the initiator's clock may be from the responder's.
pub const CLOCK_SKEW_MS: u64 = 60_000;

/// The budget for hellos from anyone: a hub pair handshakes once per [`LINK_REFRESH`],
/// so a few per second per source and a few dozen in all leave room for a large mesh
/// and cap what strangers cost at a few milliseconds of CPU per second.
fn hello_budget_limits() -> EchoLimits {
    EchoLimits {
        per_source_burst: 5.0,
        per_source_per_sec: 1.0,
        global_burst: 50.0,
        global_per_sec: 20.0,
        sources: 1024,
    }
}

/// Why a handshake datagram was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("not a mesh handshake of the right length")]
    Malformed,
    #[error("over the budget for unauthenticated hellos")]
    OverBudget,
    #[error("the sender does not hold this hub's key")]
    WrongKey,
    #[error("the hello is stale or replayed")]
    Stale,
    #[error("a welcome nobody asked for")]
    Unexpected,
}

/// A link that completed: the peer's name, and until when it holds.
#[derive(Debug, Clone)]
struct Link {
    hub: String,
    until: Instant,
    /// When we last sent or answered for it (the initiator renews from this).
    made: Instant,
}

/// A hello of ours awaiting its welcome.
struct Pending {
    handshake: snow::HandshakeState,
    sent: Instant,
}

/// This hub's links to the other hubs.
pub struct MeshLinks {
    name: String,
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    links: HashMap<SocketAddr, Link>,
    /// The addresses of `links` that hold now: what the relay checks per datagram.
    linked: HashSet<SocketAddr>,
    pending: HashMap<SocketAddr, Pending>,
    /// The newest hello clock taken from each hub name.
    newest_hello: HashMap<String, u64>,
    budget: EchoBudget,
    /// Handshakes completed (either side), for `mcvpn hub stats`.
    pub completed: u64,
}

impl std::fmt::Debug for MeshLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshLinks")
            .field("name", &self.name)
            .field("linked", &self.linked)
            .finish_non_exhaustive()
    }
}

fn builder() -> snow::Builder<'static> {
    snow::Builder::new(NOISE_PATTERN.parse().expect("valid Noise pattern")).prologue(NOISE_PROLOGUE)
}

fn payload(name: &str, clock_ms: u64) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[..8].copy_from_slice(&clock_ms.to_be_bytes());
    // Cut at a character boundary, so the name stays text.
    let mut n = name.len().min(MAX_NAME);
    while !name.is_char_boundary(n) {
        n -= 1;
    }
    p[8] = n as u8;
    p[9..9 + n].copy_from_slice(&name.as_bytes()[..n]);
    p
}

fn parse_payload(p: &[u8]) -> Option<(u64, String)> {
    if p.len() != PAYLOAD_LEN {
        return None;
    }
    let clock = u64::from_be_bytes(p[..8].try_into().ok()?);
    let n = p[8] as usize;
    if n > MAX_NAME {
        return None;
    }
    let name = std::str::from_utf8(&p[9..9 + n]).ok()?.to_string();
    Some((clock, name))
}

fn header(kind: Kind) -> [u8; HEADER_LEN] {
    Header { kind, node: 0 }.encode()
}

impl MeshLinks {
    /// Links for the hub `name` holding `key` (its primary hub key).
    pub fn new(name: &str, key: &KeyPair, now: Instant) -> MeshLinks {
        MeshLinks {
            name: name.to_string(),
            secret: key.secret_bytes(),
            public: key.public_key32().0,
            links: HashMap::new(),
            linked: HashSet::new(),
            pending: HashMap::new(),
            newest_hello: HashMap::new(),
            budget: EchoBudget::new(hello_budget_limits(), now),
            completed: 0,
        }
    }

    /// Whether `Mesh` datagrams may go to, and come from, the hub at `addr` now.
    pub fn is_linked(&self, addr: &SocketAddr) -> bool {
        self.linked.contains(addr)
    }

    /// The name of the hub linked at `addr`, if any.
    pub fn hub_at(&self, addr: &SocketAddr) -> Option<&str> {
        self.links.get(addr).map(|l| l.hub.as_str())
    }

    /// The hellos to send now, to reach the hubs at `peers` (the hubs that hold nodes
    /// this hub's nodes talk to): to each one not linked, or whose link is due for
    /// renewal, unless a hello to it is already on its way. Also lets expired links go.
    pub fn due(&mut self, peers: &HashSet<SocketAddr>, now: Instant, clock_ms: u64) -> Vec<(SocketAddr, Vec<u8>)> {
        self.expire(now);
        let mut hellos = Vec::new();
        for &peer in peers {
            let renew = match self.links.get(&peer) {
                Some(l) => now.saturating_duration_since(l.made) >= LINK_REFRESH,
                None => true,
            };
            let waiting = self
                .pending
                .get(&peer)
                .is_some_and(|p| now.saturating_duration_since(p.sent) < HELLO_RETRY);
            if renew && !waiting {
                match self.hello(clock_ms) {
                    Ok((handshake, datagram)) => {
                        self.pending.insert(peer, Pending { handshake, sent: now });
                        hellos.push((peer, datagram));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot start a mesh handshake"),
                }
            }
        }
        // Hellos to hubs no longer needed are not retried.
        self.pending.retain(|addr, _| peers.contains(addr));
        hellos
    }

    fn hello(&self, clock_ms: u64) -> Result<(snow::HandshakeState, Vec<u8>), snow::Error> {
        let mut hs = builder()
            .local_private_key(&self.secret[..])
            .remote_public_key(&self.public)
            .build_initiator()?;
        let mut datagram = vec![0u8; HANDSHAKE_LEN];
        datagram[..HEADER_LEN].copy_from_slice(&header(Kind::MeshHello));
        let n = hs.write_message(&payload(&self.name, clock_ms), &mut datagram[HEADER_LEN..])?;
        debug_assert_eq!(HEADER_LEN + n, HANDSHAKE_LEN);
        Ok((hs, datagram))
    }

    fn expire(&mut self, now: Instant) {
        let before = self.links.len();
        self.links.retain(|addr, l| {
            let keep = l.until > now;
            if !keep {
                tracing::info!(hub = %l.hub, %addr, "mesh link expired (no renewal)");
            }
            keep
        });
        if self.links.len() != before {
            self.relink();
        }
    }

    fn relink(&mut self) {
        self.linked = self.links.keys().copied().collect();
    }

    fn link(&mut self, addr: SocketAddr, hub: String, now: Instant) {
        if !self.links.contains_key(&addr) {
            tracing::info!(%hub, %addr, "mesh link up");
        }
        self.links.insert(
            addr,
            Link {
                hub,
                until: now + LINK_LIFETIME,
                made: now,
            },
        );
        self.completed += 1;
        self.relink();
    }

    /// Takes a `MeshHello` or `MeshWelcome` datagram from `src`: returns the welcome to
    /// send back for a hello, nothing for a welcome.
    pub fn handle(
        &mut self,
        src: SocketAddr,
        datagram: &[u8],
        now: Instant,
        clock_ms: u64,
    ) -> Result<Option<Vec<u8>>, LinkRefusal> {
        if datagram.len() != HANDSHAKE_LEN {
            return Err(LinkRefusal::Malformed);
        }
        let (h, message) = Header::parse(datagram).map_err(|_| LinkRefusal::Malformed)?;
        match h.kind {
            Kind::MeshHello => self.on_hello(src, message, now, clock_ms).map(Some),
            Kind::MeshWelcome => self.on_welcome(src, message, now).map(|()| None),
            _ => Err(LinkRefusal::Malformed),
        }
    }

    fn on_hello(
        &mut self,
        src: SocketAddr,
        message: &[u8],
        now: Instant,
        clock_ms: u64,
    ) -> Result<Vec<u8>, LinkRefusal> {
        if !self.budget.allow(src.ip(), now) {
            return Err(LinkRefusal::OverBudget);
        }
        let mut hs = builder()
            .local_private_key(&self.secret[..])
            .remote_public_key(&self.public)
            .build_responder()
            .map_err(|_| LinkRefusal::WrongKey)?;
        let mut plain = [0u8; PAYLOAD_LEN + TAG_LEN];
        let n = hs
            .read_message(message, &mut plain)
            .map_err(|_| LinkRefusal::WrongKey)?;
        let (clock, hub) = parse_payload(&plain[..n]).ok_or(LinkRefusal::Malformed)?;
        if clock.abs_diff(clock_ms) > CLOCK_SKEW_MS || self.newest_hello.get(&hub).is_some_and(|&t| clock <= t) {
            return Err(LinkRefusal::Stale);
        }
        self.newest_hello.insert(hub.clone(), clock);
        let mut welcome = vec![0u8; HANDSHAKE_LEN];
        welcome[..HEADER_LEN].copy_from_slice(&header(Kind::MeshWelcome));
        let n = hs
            .write_message(&payload(&self.name, clock_ms), &mut welcome[HEADER_LEN..])
            .map_err(|_| LinkRefusal::Malformed)?;
        debug_assert_eq!(HEADER_LEN + n, HANDSHAKE_LEN);
        self.link(src, hub, now);
        Ok(welcome)
    }

    fn on_welcome(&mut self, src: SocketAddr, message: &[u8], now: Instant) -> Result<(), LinkRefusal> {
        // Only a welcome from where our hello went, and only once.
        let mut pending = self.pending.remove(&src).ok_or(LinkRefusal::Unexpected)?;
        let mut plain = [0u8; PAYLOAD_LEN + TAG_LEN];
        let n = pending
            .handshake
            .read_message(message, &mut plain)
            .map_err(|_| LinkRefusal::WrongKey)?;
        let (_, hub) = parse_payload(&plain[..n]).ok_or(LinkRefusal::Malformed)?;
        self.link(src, hub, now);
        Ok(())
    }
}

/// The hub's mesh task: every quarter second, sends the hellos [`MeshLinks::due`] asks
/// for, to the hubs that hold nodes this hub's nodes talk to, from the relay socket (the
/// address the other hubs know this hub by). Welcomes come back to the relay loop.
pub async fn run(table: super::relay::SharedRelayTable, socket: std::net::UdpSocket) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let peers = table.read().mesh_peers();
        let hellos = table
            .write()
            .mesh_hellos_due(&peers, Instant::now(), crate::util::unix_ms());
        for (addr, datagram) in hellos {
            if let Err(e) = socket.send_to(&datagram, addr) {
                tracing::debug!(%addr, error = %e, "cannot send a mesh hello");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const A: &str = "192.0.2.1:7000";
    const B: &str = "192.0.2.2:7000";
    const CLOCK: u64 = 1_800_000_000_000;

    /// A hello from `a` to the hub at B.
    fn hello(a: &mut MeshLinks, now: Instant, clock: u64) -> Vec<u8> {
        let mut hellos = a.due(&HashSet::from([addr(B)]), now, clock);
        assert_eq!(hellos.len(), 1);
        hellos.pop().unwrap().1
    }

    #[test]
    fn two_hubs_with_the_key_link_both_ways() {
        let key = KeyPair::generate();
        let now = Instant::now();
        let (mut a, mut b) = (MeshLinks::new("hub-a", &key, now), MeshLinks::new("hub-b", &key, now));
        let h = hello(&mut a, now, CLOCK);
        assert_eq!(h.len(), HANDSHAKE_LEN);
        let w = b.handle(addr(A), &h, now, CLOCK + 5).unwrap().unwrap();
        assert_eq!(w.len(), h.len(), "the answer is no larger than the question");
        assert!(b.is_linked(&addr(A)));
        assert_eq!(b.hub_at(&addr(A)), Some("hub-a"));
        assert!(!a.is_linked(&addr(B)), "not before the welcome");
        assert_eq!(a.handle(addr(B), &w, now, CLOCK).unwrap(), None);
        assert!(a.is_linked(&addr(B)));
        assert_eq!(a.hub_at(&addr(B)), Some("hub-b"));
        // The same welcome again is nobody's.
        assert_eq!(a.handle(addr(B), &w, now, CLOCK), Err(LinkRefusal::Unexpected));
    }

    #[test]
    fn a_host_without_the_key_links_nowhere() {
        let now = Instant::now();
        let mut b = MeshLinks::new("hub-b", &KeyPair::generate(), now);
        let mut stranger = MeshLinks::new("hub-a", &KeyPair::generate(), now);
        let h = hello(&mut stranger, now, CLOCK);
        assert_eq!(b.handle(addr(A), &h, now, CLOCK), Err(LinkRefusal::WrongKey));
        assert!(!b.is_linked(&addr(A)));

        // Nor can a stranger answer a real hello: the welcome must come from the key.
        let key = KeyPair::generate();
        let mut a = MeshLinks::new("hub-a", &key, now);
        let h = hello(&mut a, now, CLOCK);
        let mut impostor = MeshLinks::new("hub-b", &KeyPair::generate(), now);
        assert!(impostor.handle(addr(A), &h, now, CLOCK).is_err());
        let mut forged = h.clone();
        forged[1] = Kind::MeshWelcome as u8;
        assert_eq!(a.handle(addr(B), &forged, now, CLOCK), Err(LinkRefusal::WrongKey));
        assert!(!a.is_linked(&addr(B)));
    }

    #[test]
    fn a_recorded_hello_cannot_be_replayed_and_an_old_one_is_stale() {
        let key = KeyPair::generate();
        let now = Instant::now();
        let (mut a, mut b) = (MeshLinks::new("hub-a", &key, now), MeshLinks::new("hub-b", &key, now));
        let h = hello(&mut a, now, CLOCK);
        b.handle(addr(A), &h, now, CLOCK).unwrap();
        // Replayed from elsewhere: it would move hub-a's link to the replayer.
        assert_eq!(
            b.handle(addr("198.51.100.9:7000"), &h, now, CLOCK),
            Err(LinkRefusal::Stale)
        );
        let old = hello(&mut MeshLinks::new("hub-c", &key, now), now, CLOCK - CLOCK_SKEW_MS - 1);
        assert_eq!(b.handle(addr(A), &old, now, CLOCK), Err(LinkRefusal::Stale));
    }

    #[test]
    fn links_are_renewed_before_they_expire_and_expire_unrenewed() {
        let key = KeyPair::generate();
        let t0 = Instant::now();
        let (mut a, mut b) = (MeshLinks::new("hub-a", &key, t0), MeshLinks::new("hub-b", &key, t0));
        let peers = HashSet::from([addr(B)]);
        let w = b
            .handle(addr(A), &hello(&mut a, t0, CLOCK), t0, CLOCK)
            .unwrap()
            .unwrap();
        a.handle(addr(B), &w, t0, CLOCK).unwrap();
        assert!(
            a.due(&peers, t0 + Duration::from_secs(1), CLOCK).is_empty(),
            "fresh: no hello"
        );
        let renewal = a.due(&peers, t0 + LINK_REFRESH, CLOCK + 30_000);
        assert_eq!(renewal.len(), 1, "due for renewal");
        assert!(a.is_linked(&addr(B)), "still linked while the renewal is on its way");
        // Unanswered, retried after HELLO_RETRY, and gone at the end of its lifetime.
        assert!(a
            .due(&peers, t0 + LINK_REFRESH + Duration::from_millis(500), CLOCK)
            .is_empty());
        assert_eq!(a.due(&peers, t0 + LINK_REFRESH + HELLO_RETRY, CLOCK).len(), 1);
        let _ = a.due(&HashSet::new(), t0 + LINK_LIFETIME, CLOCK);
        assert!(!a.is_linked(&addr(B)));
        // b, which only answered, lets it go too.
        let _ = b.due(&HashSet::new(), t0 + LINK_LIFETIME, CLOCK);
        assert!(!b.is_linked(&addr(A)));
    }

    #[test]
    fn hellos_from_strangers_cost_a_fixed_budget() {
        let now = Instant::now();
        let mut b = MeshLinks::new("hub-b", &KeyPair::generate(), now);
        let mut stranger = MeshLinks::new("x", &KeyPair::generate(), now);
        let refusals: Vec<LinkRefusal> = (0..20)
            .map(|i| {
                let h = hello(&mut stranger, now + HELLO_RETRY * (i + 1), CLOCK);
                b.handle(addr(A), &h, now, CLOCK).unwrap_err()
            })
            .collect();
        let checked = refusals.iter().filter(|r| **r == LinkRefusal::WrongKey).count();
        assert_eq!(checked, hello_budget_limits().per_source_burst as usize);
        assert!(refusals[checked..].iter().all(|r| *r == LinkRefusal::OverBudget));
    }

    #[test]
    fn garbage_is_refused_without_a_panic() {
        let key = KeyPair::generate();
        let now = Instant::now();
        let mut b = MeshLinks::new("hub-b", &key, now);
        for len in [0, 1, HEADER_LEN, HANDSHAKE_LEN - 1, HANDSHAKE_LEN, HANDSHAKE_LEN + 1] {
            for kind in [Kind::MeshHello, Kind::MeshWelcome, Kind::Data] {
                let mut d = vec![0xA5u8; len];
                if len >= HEADER_LEN {
                    d[..HEADER_LEN].copy_from_slice(&header(kind));
                }
                assert!(b.handle(addr(A), &d, now, CLOCK).is_err(), "len {len} kind {kind:?}");
            }
        }
        assert!(!b.is_linked(&addr(A)));
    }

    #[test]
    fn names_are_cut_at_a_character_and_read_back() {
        let long = "ハブ".repeat(40);
        let (clock, name) = parse_payload(&payload(&long, 7)).unwrap();
        assert_eq!(clock, 7);
        assert!(name.len() <= MAX_NAME && long.starts_with(&name) && !name.is_empty());
    }
}
