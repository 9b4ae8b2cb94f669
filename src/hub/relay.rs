//! The packet relay: which UDP endpoint is which node, who may reach whom, and the
//! forwarding decision for each datagram. No cryptography on the data path: a header
//! parse, two table lookups and a send. Binds are the only datagrams with a MAC check.
//!
//! A node's endpoint moves (or is bound the first time) only after the node has
//! answered a challenge *from the new endpoint*: a valid `Bind` from an address that
//! is not yet the node's gets a `Challenge` there with a random nonce, and only the
//! node's MAC'd `Response` carrying that nonce, from that address, moves the binding.
//! A node that spoofs its source (to take another node's endpoint, review finding S1)
//! never sees the nonce, so its `Bind` changes nothing. This costs one round trip on
//! the first bind of a session and on a NAT rebinding; refreshes from the bound
//! endpoint are one datagram each way, as before.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use serde::Serialize;

use super::mesh_link::{LinkRefusal, MeshLinks};
use crate::proto::relay::{self, BindMsg, Header, Kind, NodeId, RelayKey, BIND_LEN, HEADER_LEN};

/// A node the control plane admitted to the relay.
#[derive(Debug)]
pub struct RelayNode {
    pub session: u64,
    pub key: RelayKey,
    /// The UDP endpoint (after NAT) the node last bound from.
    pub endpoint: Option<SocketAddr>,
    last_counter: u64,
    /// The endpoint this node asked to move to and the challenge sent there.
    pending: Option<PendingMove>,
    /// Nodes this one may send to (authorisation is symmetric, kept on both sides).
    pub peers: HashSet<NodeId>,
    /// Bytes relayed from and to this node in this session (for the session record).
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// A binding move waiting for the node's answer from the new endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingMove {
    endpoint: SocketAddr,
    nonce: u64,
    /// The counter of the `Bind` that asked, echoed in the `Bound` that ends the move.
    counter: u64,
}

/// What the hub sends back to a valid `Bind` or `Response`, to the address it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAnswer {
    /// The node is bound at that address: a refresh, or (`moved`) a move just proven.
    Bound { reply: [u8; BIND_LEN], moved: bool },
    /// The address is not yet the node's: challenge it there, and move nothing yet.
    Challenge([u8; BIND_LEN]),
}

impl BindAnswer {
    /// The datagram to send back.
    pub fn datagram(&self) -> &[u8; BIND_LEN] {
        match self {
            BindAnswer::Bound { reply, .. } | BindAnswer::Challenge(reply) => reply,
        }
    }
}

#[derive(Debug, Default)]
pub struct RelayTable {
    by_endpoint: HashMap<SocketAddr, NodeId>,
    nodes: HashMap<NodeId, RelayNode>,
    /// Nodes other hubs of the mesh hold, at that hub's relay address (issue 15): `Data`
    /// for them leaves as `Mesh` to that hub, which checks the pair again.
    remote: HashMap<NodeId, SocketAddr>,
    /// The authenticated links to other hubs (None: this table takes no `Mesh` datagrams
    /// and sends none, as in the relay benches).
    mesh: Option<MeshLinks>,
}

/// The relay table as the control plane (writes: logins, binds) and the relay loop
/// (one read lock per received batch) share it.
pub type SharedRelayTable = Arc<RwLock<RelayTable>>;

/// Why a datagram was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Not a relay datagram we understand.
    Malformed,
    /// Unbound sender, bad bind MAC or replayed counter, or a pair not allowed to talk.
    Unauthorised,
    /// Allowed destination, but it has no bound endpoint right now.
    NoRoute,
}

/// Counters the hub reports in `mcvpn hub stats`.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub forwarded: AtomicU64,
    pub forwarded_bytes: AtomicU64,
    pub binds: AtomicU64,
    /// Challenges sent to a new endpoint (first binds, NAT rebindings, spoofed binds).
    pub challenges: AtomicU64,
    /// Bindings made or moved after a challenge was answered from the new endpoint.
    pub endpoint_changes: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub dropped_unauthorised: AtomicU64,
    pub dropped_no_route: AtomicU64,
    pub send_errors: AtomicU64,
    /// Unauthenticated echoes answered (`mcvpn diagnose`), and those over the budget.
    pub echoes: AtomicU64,
    pub echoes_over_budget: AtomicU64,
    /// Mesh handshakes completed with other hubs (either side), and refused.
    pub mesh_handshakes: AtomicU64,
    pub mesh_refused: AtomicU64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RelayStatsSnapshot {
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    pub binds: u64,
    pub challenges: u64,
    pub endpoint_changes: u64,
    pub dropped_malformed: u64,
    pub dropped_unauthorised: u64,
    pub dropped_no_route: u64,
    pub send_errors: u64,
    pub echoes: u64,
    pub echoes_over_budget: u64,
    pub mesh_handshakes: u64,
    pub mesh_refused: u64,
}

impl RelayStats {
    pub fn count_drop(&self, d: DropReason) {
        let c = match d {
            DropReason::Malformed => &self.dropped_malformed,
            DropReason::Unauthorised => &self.dropped_unauthorised,
            DropReason::NoRoute => &self.dropped_no_route,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RelayStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayStatsSnapshot {
            forwarded: g(&self.forwarded),
            forwarded_bytes: g(&self.forwarded_bytes),
            binds: g(&self.binds),
            challenges: g(&self.challenges),
            endpoint_changes: g(&self.endpoint_changes),
            dropped_malformed: g(&self.dropped_malformed),
            dropped_unauthorised: g(&self.dropped_unauthorised),
            dropped_no_route: g(&self.dropped_no_route),
            send_errors: g(&self.send_errors),
            echoes: g(&self.echoes),
            echoes_over_budget: g(&self.echoes_over_budget),
            mesh_handshakes: g(&self.mesh_handshakes),
            mesh_refused: g(&self.mesh_refused),
        }
    }
}

impl RelayTable {
    /// An empty table, ready to share between the control plane and the relay loop.
    pub fn shared() -> SharedRelayTable {
        Arc::new(RwLock::new(RelayTable::default()))
    }

    /// Admits `node` for a new control session, replacing any older one.
    pub fn admit(&mut self, node: NodeId, session: u64, key: RelayKey, peers: HashSet<NodeId>) {
        if let Some(old) = self.nodes.remove(&node) {
            if let Some(ep) = old.endpoint {
                self.by_endpoint.remove(&ep);
            }
        }
        self.nodes.insert(
            node,
            RelayNode {
                session,
                key,
                endpoint: None,
                last_counter: 0,
                pending: None,
                peers,
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
            },
        );
    }

    /// Removes `node` if `session` is still its current one; returns the bytes relayed
    /// from and to it.
    pub fn remove(&mut self, node: NodeId, session: u64) -> Option<(u64, u64)> {
        if !self.nodes.get(&node).is_some_and(|n| n.session == session) {
            return None;
        }
        let n = self.nodes.remove(&node)?;
        if let Some(ep) = n.endpoint {
            self.by_endpoint.remove(&ep);
        }
        Some((n.bytes_in.into_inner(), n.bytes_out.into_inner()))
    }

    pub fn set_peers(&mut self, node: NodeId, peers: HashSet<NodeId>) {
        if let Some(n) = self.nodes.get_mut(&node) {
            n.peers = peers;
        }
    }

    pub fn add_peer(&mut self, node: NodeId, peer: NodeId) {
        if let Some(n) = self.nodes.get_mut(&node) {
            n.peers.insert(peer);
        }
    }

    pub fn node(&self, node: NodeId) -> Option<&RelayNode> {
        self.nodes.get(&node)
    }

    /// Replaces what this hub knows of the nodes other hubs hold (see [`route`](Self::route)).
    pub fn set_remote(&mut self, remote: HashMap<NodeId, SocketAddr>) {
        self.remote = remote;
    }

    /// `node` is not another hub's any more (it logged in here).
    pub fn forget_remote(&mut self, node: NodeId) {
        self.remote.remove(&node);
    }

    /// Lets this table route between hubs, over the links `links` makes.
    pub fn enable_mesh(&mut self, links: MeshLinks) {
        self.mesh = Some(links);
    }

    fn mesh_linked(&self, hub: &SocketAddr) -> bool {
        self.mesh.as_ref().is_some_and(|m| m.is_linked(hub))
    }

    /// The other hubs this hub needs links to: those holding a peer of one of its nodes.
    /// (A read of every node's peers: the mesh task calls it under the read lock, which
    /// the relay loop shares.)
    pub fn mesh_peers(&self) -> HashSet<SocketAddr> {
        if self.remote.is_empty() {
            return HashSet::new();
        }
        self.nodes
            .values()
            .flat_map(|n| n.peers.iter())
            .filter_map(|p| self.remote.get(p).copied())
            .collect()
    }

    /// The hellos to send now to the hubs at `peers` (see [`MeshLinks::due`]).
    pub fn mesh_hellos_due(
        &mut self,
        peers: &HashSet<SocketAddr>,
        now: Instant,
        clock_ms: u64,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        match &mut self.mesh {
            Some(m) => m.due(peers, now, clock_ms),
            None => Vec::new(),
        }
    }

    /// Takes a `MeshHello` or `MeshWelcome` from `src` (see [`MeshLinks::handle`]).
    pub fn handle_mesh(
        &mut self,
        src: SocketAddr,
        datagram: &[u8],
        now: Instant,
        clock_ms: u64,
    ) -> Result<Option<Vec<u8>>, LinkRefusal> {
        match &mut self.mesh {
            Some(m) => m.handle(src, datagram, now, clock_ms),
            None => Err(LinkRefusal::Malformed),
        }
    }

    /// The hub holding `node` when another hub does.
    pub fn remote_hub(&self, node: NodeId) -> Option<SocketAddr> {
        self.remote.get(&node).copied()
    }

    pub fn bound_nodes(&self) -> usize {
        self.by_endpoint.len()
    }

    /// Handles a `Bind` or a `Response` from `src`. A `Bind` (right key and session,
    /// fresh counter) from the node's bound endpoint is a refresh: `Bound`. From any
    /// other address it moves nothing: the answer is a `Challenge` to that address.
    /// A `Response` that carries the challenge's nonce, from the challenged address,
    /// moves the node's binding there (taking the address from any node bound to it
    /// before, as a NAT that reused a port does) and is answered with `Bound`.
    pub fn handle_bind(&mut self, src: SocketAddr, datagram: &[u8]) -> Result<BindAnswer, DropReason> {
        let msg = BindMsg::parse(datagram).map_err(|_| DropReason::Malformed)?;
        if !matches!(msg.kind, Kind::Bind | Kind::Response) {
            return Err(DropReason::Malformed);
        }
        let node = self.nodes.get_mut(&msg.node).ok_or(DropReason::Unauthorised)?;
        BindMsg::verify(datagram, &node.key).map_err(|_| DropReason::Unauthorised)?;
        if msg.session != node.session {
            return Err(DropReason::Unauthorised);
        }
        let bound = |counter| BindMsg {
            kind: Kind::Bound,
            node: msg.node,
            session: msg.session,
            counter,
        };
        if msg.kind == Kind::Bind {
            if msg.counter <= node.last_counter {
                return Err(DropReason::Unauthorised);
            }
            node.last_counter = msg.counter;
            if node.endpoint == Some(src) {
                return Ok(BindAnswer::Bound {
                    reply: bound(msg.counter).encode(&node.key),
                    moved: false,
                });
            }
            // A new challenge replaces any earlier one: one pending move per node, so
            // however many binds arrive the table does not grow.
            let nonce = rand::random::<u64>();
            node.pending = Some(PendingMove {
                endpoint: src,
                nonce,
                counter: msg.counter,
            });
            let challenge = BindMsg {
                kind: Kind::Challenge,
                node: msg.node,
                session: msg.session,
                counter: nonce,
            };
            return Ok(BindAnswer::Challenge(challenge.encode(&node.key)));
        }
        let pending = node
            .pending
            .filter(|p| p.endpoint == src && p.nonce == msg.counter)
            .ok_or(DropReason::Unauthorised)?;
        node.pending = None;
        let reply = bound(pending.counter).encode(&node.key);
        self.set_endpoint(msg.node, src);
        Ok(BindAnswer::Bound { reply, moved: true })
    }

    /// Binds `node` (admitted) to `src`, which it has just proven to answer from.
    fn set_endpoint(&mut self, node: NodeId, src: SocketAddr) {
        let Some(n) = self.nodes.get_mut(&node) else { return };
        if n.endpoint == Some(src) {
            return;
        }
        if let Some(old) = n.endpoint.replace(src) {
            self.by_endpoint.remove(&old);
        }
        // Another node was bound at this address before (a NAT reused the port, and
        // the node now there proved it): that node lost it; it binds again from its
        // new one.
        if let Some(prev) = self.by_endpoint.insert(src, node) {
            if prev != node {
                if let Some(p) = self.nodes.get_mut(&prev) {
                    p.endpoint = None;
                }
            }
        }
    }

    /// Decides where a `Data` datagram (from a node) or a `Mesh` datagram (from another
    /// hub) goes, given its parsed `header` and `bytes` in all: returns the endpoint to
    /// send it to and the header to put in front of it, and counts the bytes for the
    /// nodes of this hub. The caller rewrites the header(s).
    ///
    /// `Data` from a bound node to a peer it may reach: to the peer's endpoint, naming
    /// the sender; or, when another hub holds the peer, to that hub as `Mesh` naming both.
    /// `Mesh` from the hub that holds its source, to a node of this hub whose peers
    /// include that source: to the node, naming the source. Both hubs check the pair.
    pub fn route(
        &self,
        src: SocketAddr,
        datagram: &[u8],
        header: Header,
        bytes: u64,
    ) -> Result<(SocketAddr, [u8; HEADER_LEN]), DropReason> {
        match header.kind {
            Kind::Data => {
                let sender = *self.by_endpoint.get(&src).ok_or(DropReason::Unauthorised)?;
                let from = self
                    .nodes
                    .get(&sender)
                    .filter(|n| n.peers.contains(&header.node))
                    .ok_or(DropReason::Unauthorised)?;
                let (dst, rewritten) = match self.nodes.get(&header.node) {
                    Some(to) => {
                        let dst = to.endpoint.ok_or(DropReason::NoRoute)?;
                        to.bytes_out.fetch_add(bytes, Ordering::Relaxed);
                        (
                            dst,
                            Header {
                                kind: Kind::Data,
                                node: sender,
                            }
                            .encode(),
                        )
                    }
                    None => {
                        let hub = self.remote.get(&header.node).ok_or(DropReason::NoRoute)?;
                        // Not before the link to that hub is up (a quarter second after
                        // the node appears there, see `mesh_link::run`).
                        if !self.mesh_linked(hub) {
                            return Err(DropReason::NoRoute);
                        }
                        let mesh = relay::mesh_header(sender, header.node).ok_or(DropReason::NoRoute)?;
                        (*hub, mesh)
                    }
                };
                from.bytes_in.fetch_add(bytes, Ordering::Relaxed);
                Ok((dst, rewritten))
            }
            Kind::Mesh => {
                let source = relay::mesh_source(datagram);
                // Only the hub that holds the source speaks for it, over its link.
                if self.remote.get(&source) != Some(&src) || !self.mesh_linked(&src) {
                    return Err(DropReason::Unauthorised);
                }
                let to = self
                    .nodes
                    .get(&header.node)
                    .filter(|n| n.peers.contains(&source))
                    .ok_or(DropReason::Unauthorised)?;
                let dst = to.endpoint.ok_or(DropReason::NoRoute)?;
                to.bytes_out.fetch_add(bytes, Ordering::Relaxed);
                Ok((
                    dst,
                    Header {
                        kind: Kind::Data,
                        node: source,
                    }
                    .encode(),
                ))
            }
            _ => Err(DropReason::Malformed),
        }
    }

    /// [`route`](Self::route) for one whole `Data` or `Mesh` datagram: parses its header
    /// and rewrites it. Returns the destination endpoint.
    pub fn route_data(&self, src: SocketAddr, datagram: &mut [u8]) -> Result<SocketAddr, DropReason> {
        let (header, _) = Header::parse(datagram).map_err(|_| DropReason::Malformed)?;
        let (dst, rewritten) = self.route(src, datagram, header, datagram.len() as u64)?;
        relay::rewrite_header(datagram, &rewritten);
        Ok(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::relay::{write_data_header, HEADER_LEN};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn bind_msg(node: NodeId, session: u64, counter: u64, key: RelayKey) -> [u8; BIND_LEN] {
        BindMsg {
            kind: Kind::Bind,
            node,
            session,
            counter,
        }
        .encode(&key)
    }

    /// The node's answer to `challenge`, as `RelayState` makes it.
    fn response(challenge: &[u8], key: RelayKey) -> [u8; BIND_LEN] {
        let c = BindMsg::parse(challenge).unwrap();
        assert_eq!(c.kind, Kind::Challenge);
        BindMsg {
            kind: Kind::Response,
            ..c
        }
        .encode(&key)
    }

    /// A node that really is at `from` binds: its bind, and its answer to the challenge
    /// if the hub sends one.
    fn bind(
        table: &mut RelayTable,
        node: NodeId,
        session: u64,
        counter: u64,
        key: RelayKey,
        from: &str,
    ) -> Result<(), DropReason> {
        match table.handle_bind(addr(from), &bind_msg(node, session, counter, key))? {
            BindAnswer::Bound { .. } => Ok(()),
            BindAnswer::Challenge(c) => match table.handle_bind(addr(from), &response(&c, key))? {
                BindAnswer::Bound { reply, moved: true } => {
                    let b = BindMsg::parse(&reply).unwrap();
                    assert_eq!((b.kind, b.node, b.counter), (Kind::Bound, node, counter));
                    Ok(())
                }
                other => panic!("the answer to a challenge was {other:?}"),
            },
        }
    }

    fn data(dst: NodeId) -> Vec<u8> {
        let mut d = vec![0u8; HEADER_LEN + 4];
        write_data_header(&mut d, dst);
        d[HEADER_LEN..].copy_from_slice(b"wg!!");
        d
    }

    fn two_peers() -> RelayTable {
        let mut t = RelayTable::default();
        t.admit(1, 10, [1; 32], HashSet::from([2]));
        t.admit(2, 20, [2; 32], HashSet::from([1]));
        bind(&mut t, 1, 10, 1, [1; 32], "192.0.2.1:1000").unwrap();
        bind(&mut t, 2, 20, 1, [2; 32], "192.0.2.2:2000").unwrap();
        t
    }

    #[test]
    fn forwards_between_allowed_pair_and_names_the_source() {
        let t = two_peers();
        let mut d = data(2);
        assert_eq!(t.route_data(addr("192.0.2.1:1000"), &mut d), Ok(addr("192.0.2.2:2000")));
        let (h, payload) = Header::parse(&d).unwrap();
        assert_eq!(h.node, 1);
        assert_eq!(payload, b"wg!!");
    }

    const HUB_A: &str = "192.0.2.100:51820";
    const HUB_B: &str = "192.0.2.200:51820";

    /// Node 1 on hub A (192.0.2.100), node 2 on hub B (192.0.2.200), each table knowing
    /// the other's node; node 3 on A may reach nobody. The hubs' keys: `a_key`, `b_key`.
    /// No mesh link yet.
    fn two_unlinked_hubs(a_key: &crate::keys::KeyPair, b_key: &crate::keys::KeyPair) -> (RelayTable, RelayTable) {
        let now = Instant::now();
        let mut a = RelayTable::default();
        a.enable_mesh(MeshLinks::new("hub-a", a_key, now));
        a.admit(1, 10, [1; 32], HashSet::from([2]));
        bind(&mut a, 1, 10, 1, [1; 32], "192.0.2.1:1000").unwrap();
        a.admit(3, 30, [3; 32], HashSet::new());
        bind(&mut a, 3, 30, 1, [3; 32], "192.0.2.3:3000").unwrap();
        a.set_remote(HashMap::from([(2, addr("192.0.2.200:51820"))]));
        let mut b = RelayTable::default();
        b.enable_mesh(MeshLinks::new("hub-b", b_key, now));
        b.admit(2, 20, [2; 32], HashSet::from([1]));
        bind(&mut b, 2, 20, 1, [2; 32], "192.0.2.2:2000").unwrap();
        b.set_remote(HashMap::from([
            (1, addr("192.0.2.100:51820")),
            (3, addr("192.0.2.100:51820")),
        ]));
        (a, b)
    }

    /// Hub A's hello to B, B's welcome back: what `mesh_link::run` and the relay loop do.
    fn handshake(a: &mut RelayTable, b: &mut RelayTable) {
        let clock = crate::util::unix_ms();
        let peers = a.mesh_peers();
        let hellos = a.mesh_hellos_due(&peers, Instant::now(), clock);
        assert_eq!(hellos.len(), 1, "one hello, to the hub holding node 2");
        assert_eq!(hellos[0].0, addr(HUB_B));
        if let Ok(Some(welcome)) = b.handle_mesh(addr(HUB_A), &hellos[0].1, Instant::now(), clock) {
            let _ = a.handle_mesh(addr(HUB_B), &welcome, Instant::now(), clock);
        }
    }

    /// [`two_unlinked_hubs`] holding one hub key, after their handshake.
    fn two_hubs() -> (RelayTable, RelayTable) {
        let key = crate::keys::KeyPair::generate();
        let (mut a, mut b) = two_unlinked_hubs(&key, &key);
        handshake(&mut a, &mut b);
        (a, b)
    }

    #[test]
    fn nothing_crosses_the_mesh_before_the_link_nor_with_a_hub_of_another_key() {
        let key = crate::keys::KeyPair::generate();
        let (a, b) = two_unlinked_hubs(&key, &key);
        assert_eq!(
            a.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Err(DropReason::NoRoute)
        );
        let mut mesh = relay::mesh_header(1, 2).unwrap().to_vec();
        mesh.extend_from_slice(b"wg!!");
        assert_eq!(
            b.route_data(addr(HUB_A), &mut mesh.clone()),
            Err(DropReason::Unauthorised),
            "from the right address, but unlinked"
        );

        let (mut a, mut b) = two_unlinked_hubs(&key, &crate::keys::KeyPair::generate());
        handshake(&mut a, &mut b);
        assert_eq!(
            a.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Err(DropReason::NoRoute)
        );
        assert_eq!(b.route_data(addr(HUB_A), &mut mesh), Err(DropReason::Unauthorised));
    }

    #[test]
    fn data_for_a_node_on_another_hub_crosses_the_mesh_and_arrives_naming_its_source() {
        let (a, b) = two_hubs();
        let mut d = data(2);
        assert_eq!(
            a.route_data(addr("192.0.2.1:1000"), &mut d),
            Ok(addr("192.0.2.200:51820"))
        );
        let (h, _) = Header::parse(&d).unwrap();
        assert_eq!((h.kind, h.node, relay::mesh_source(&d)), (Kind::Mesh, 2, 1));
        assert_eq!(
            b.route_data(addr("192.0.2.100:51820"), &mut d),
            Ok(addr("192.0.2.2:2000"))
        );
        let (h, payload) = Header::parse(&d).unwrap();
        assert_eq!((h.kind, h.node), (Kind::Data, 1));
        assert_eq!(payload, b"wg!!");
        assert_eq!(a.node(1).unwrap().bytes_in.load(Ordering::Relaxed), d.len() as u64);
        assert_eq!(b.node(2).unwrap().bytes_out.load(Ordering::Relaxed), d.len() as u64);
    }

    #[test]
    fn the_mesh_checks_the_pair_and_the_hub_on_both_sides() {
        let (a, b) = two_hubs();
        // Node 3 may not reach node 2: refused on its own hub.
        assert_eq!(
            a.route_data(addr("192.0.2.3:3000"), &mut data(2)),
            Err(DropReason::Unauthorised)
        );
        // A hub claiming node 3 (not a peer of 2) is refused on the receiving hub.
        let mut forged = relay::mesh_header(3, 2).unwrap().to_vec();
        forged.extend_from_slice(b"wg!!");
        assert_eq!(
            b.route_data(addr("192.0.2.100:51820"), &mut forged.clone()),
            Err(DropReason::Unauthorised)
        );
        // The right pair from an address that is not the hub holding the source.
        let mut from_elsewhere = relay::mesh_header(1, 2).unwrap().to_vec();
        from_elsewhere.extend_from_slice(b"wg!!");
        assert_eq!(
            b.route_data(addr("192.0.2.66:51820"), &mut from_elsewhere),
            Err(DropReason::Unauthorised)
        );
        // A node cannot send `Mesh` itself: it is no hub.
        let mut from_node = relay::mesh_header(1, 2).unwrap().to_vec();
        from_node.extend_from_slice(b"wg!!");
        assert_eq!(
            b.route_data(addr("192.0.2.2:2000"), &mut from_node),
            Err(DropReason::Unauthorised)
        );
        // A peer no hub holds: no route.
        let mut a = a;
        a.set_remote(HashMap::new());
        assert_eq!(
            a.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Err(DropReason::NoRoute)
        );
    }

    #[test]
    fn refuses_unbound_sender_and_unallowed_pair() {
        let mut t = two_peers();
        assert_eq!(
            t.route_data(addr("192.0.2.9:1"), &mut data(2)),
            Err(DropReason::Unauthorised)
        );
        t.admit(3, 30, [3; 32], HashSet::new());
        bind(&mut t, 3, 30, 1, [3; 32], "192.0.2.3:3000").unwrap();
        assert_eq!(
            t.route_data(addr("192.0.2.3:3000"), &mut data(1)),
            Err(DropReason::Unauthorised)
        );
        assert_eq!(
            t.route_data(addr("192.0.2.1:1000"), &mut data(3)),
            Err(DropReason::Unauthorised)
        );
    }

    #[test]
    fn binds_need_the_right_key_session_and_a_fresh_counter() {
        let mut t = two_peers();
        assert_eq!(
            bind(&mut t, 1, 10, 5, [9; 32], "192.0.2.7:1"),
            Err(DropReason::Unauthorised)
        );
        assert_eq!(
            bind(&mut t, 1, 11, 5, [1; 32], "192.0.2.7:1"),
            Err(DropReason::Unauthorised)
        );
        assert_eq!(
            bind(&mut t, 1, 10, 1, [1; 32], "192.0.2.7:1"),
            Err(DropReason::Unauthorised),
            "replay"
        );
        assert_eq!(
            bind(&mut t, 9, 10, 5, [1; 32], "192.0.2.7:1"),
            Err(DropReason::Unauthorised),
            "unknown node"
        );
        // A fresh bind moves the endpoint (NAT rebinding); the old one stops working.
        bind(&mut t, 1, 10, 2, [1; 32], "192.0.2.7:1").unwrap();
        assert_eq!(
            t.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Err(DropReason::Unauthorised)
        );
        assert_eq!(
            t.route_data(addr("192.0.2.7:1"), &mut data(2)),
            Ok(addr("192.0.2.2:2000"))
        );
        assert_eq!(t.bound_nodes(), 2);
    }

    /// Review finding S1: node 2 sends its own valid Bind with node 1's endpoint as the
    /// (spoofed) source. Node 1 keeps its endpoint and its traffic keeps flowing.
    #[test]
    fn a_bind_spoofed_from_another_nodes_endpoint_changes_nothing() {
        let mut t = two_peers();
        // The challenge goes to 192.0.2.1:1000, where node 1 is; node 2 never sees it.
        let answer = t.handle_bind(addr("192.0.2.1:1000"), &bind_msg(2, 20, 2, [2; 32]));
        assert!(matches!(answer, Ok(BindAnswer::Challenge(_))), "{answer:?}");
        assert_eq!(
            t.node(1).unwrap().endpoint,
            Some(addr("192.0.2.1:1000")),
            "node 1 lost its endpoint"
        );
        assert_eq!(
            t.node(2).unwrap().endpoint,
            Some(addr("192.0.2.2:2000")),
            "node 2 moved"
        );
        assert_eq!(
            t.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Ok(addr("192.0.2.2:2000"))
        );
        assert_eq!(
            t.route_data(addr("192.0.2.2:2000"), &mut data(1)),
            Ok(addr("192.0.2.1:1000"))
        );
    }

    #[test]
    fn a_move_waits_for_the_answer_from_the_new_endpoint() {
        let mut t = two_peers();
        let Ok(BindAnswer::Challenge(c)) = t.handle_bind(addr("192.0.2.7:1"), &bind_msg(1, 10, 2, [1; 32])) else {
            panic!("a bind from a new endpoint is challenged")
        };
        // Until the answer, the old endpoint still carries node 1's traffic.
        assert_eq!(
            t.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Ok(addr("192.0.2.2:2000"))
        );
        let good = response(&c, [1; 32]);
        // The answer from anywhere but the challenged address, or with a guessed
        // nonce, or MAC'd with another key, moves nothing.
        assert_eq!(t.handle_bind(addr("192.0.2.8:1"), &good), Err(DropReason::Unauthorised));
        let mut guessed = BindMsg::parse(&c).unwrap();
        guessed.kind = Kind::Response;
        guessed.counter ^= 1;
        assert_eq!(
            t.handle_bind(addr("192.0.2.7:1"), &guessed.encode(&[1; 32])),
            Err(DropReason::Unauthorised)
        );
        assert_eq!(
            t.handle_bind(addr("192.0.2.7:1"), &response(&c, [2; 32])),
            Err(DropReason::Unauthorised)
        );
        assert_eq!(t.node(1).unwrap().endpoint, Some(addr("192.0.2.1:1000")));
        // The real answer moves it, once.
        assert!(matches!(
            t.handle_bind(addr("192.0.2.7:1"), &good),
            Ok(BindAnswer::Bound { moved: true, .. })
        ));
        assert_eq!(t.node(1).unwrap().endpoint, Some(addr("192.0.2.7:1")));
        assert_eq!(
            t.handle_bind(addr("192.0.2.7:1"), &good),
            Err(DropReason::Unauthorised),
            "a replayed answer"
        );
        // A refresh from the bound endpoint needs no challenge.
        assert!(matches!(
            t.handle_bind(addr("192.0.2.7:1"), &bind_msg(1, 10, 3, [1; 32])),
            Ok(BindAnswer::Bound { moved: false, .. })
        ));
    }

    #[test]
    fn a_newer_challenge_replaces_the_older_one() {
        let mut t = two_peers();
        let Ok(BindAnswer::Challenge(first)) = t.handle_bind(addr("192.0.2.7:1"), &bind_msg(1, 10, 2, [1; 32])) else {
            panic!("challenged")
        };
        let Ok(BindAnswer::Challenge(second)) = t.handle_bind(addr("192.0.2.7:1"), &bind_msg(1, 10, 3, [1; 32])) else {
            panic!("challenged")
        };
        assert_eq!(
            t.handle_bind(addr("192.0.2.7:1"), &response(&first, [1; 32])),
            Err(DropReason::Unauthorised)
        );
        let Ok(BindAnswer::Bound { reply, moved: true }) =
            t.handle_bind(addr("192.0.2.7:1"), &response(&second, [1; 32]))
        else {
            panic!("the latest challenge's answer moves the binding")
        };
        assert_eq!(BindMsg::parse(&reply).unwrap().counter, 3);
    }

    #[test]
    fn the_hub_takes_no_bound_or_challenge_and_answers_no_bigger_than_asked() {
        let mut t = two_peers();
        for kind in [Kind::Bound, Kind::Challenge] {
            let m = BindMsg {
                kind,
                node: 1,
                session: 10,
                counter: 9,
            }
            .encode(&[1; 32]);
            assert_eq!(t.handle_bind(addr("192.0.2.1:1000"), &m), Err(DropReason::Malformed));
        }
        let bind = bind_msg(1, 10, 9, [1; 32]);
        let answer = t.handle_bind(addr("192.0.2.9:9"), &bind).unwrap();
        assert!(answer.datagram().len() <= bind.len(), "no amplification");
    }

    #[test]
    fn bytes_are_counted_per_node() {
        let mut t = two_peers();
        let mut d = data(2);
        t.route_data(addr("192.0.2.1:1000"), &mut d).unwrap();
        assert_eq!(t.remove(2, 20), Some((0, d.len() as u64)));
        assert_eq!(t.remove(1, 10), Some((d.len() as u64, 0)));
    }

    #[test]
    fn removed_or_unbound_destination_has_no_route() {
        let mut t = two_peers();
        t.remove(2, 20);
        assert_eq!(
            t.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Err(DropReason::NoRoute)
        );
        t.admit(2, 21, [2; 32], HashSet::from([1]));
        assert_eq!(
            t.route_data(addr("192.0.2.1:1000"), &mut data(2)),
            Err(DropReason::NoRoute)
        );
        // A stale session's removal does not remove the new one.
        t.remove(2, 20);
        assert!(t.node(2).is_some());
    }

    #[test]
    fn malformed_datagrams_are_dropped_not_panicked_on() {
        let t = two_peers();
        for bad in [&[][..], &[1, 1, 0], &[9; 8], &[1, 2, 0, 0, 0, 0, 0, 1]] {
            let mut b = bad.to_vec();
            assert_eq!(t.route_data(addr("192.0.2.1:1000"), &mut b), Err(DropReason::Malformed));
        }
    }
}
