//! The packet relay: which UDP endpoint is which node, who may reach whom, and the
//! forwarding decision for each datagram. No cryptography on the data path: a header
//! parse, two table lookups and a send. Binds are the only datagrams with a MAC check.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;

use crate::proto::relay::{self, BindMsg, Header, Kind, NodeId, RelayKey, BIND_LEN};

/// A node the control plane admitted to the relay.
#[derive(Debug)]
pub struct RelayNode {
    pub session: u64,
    pub key: RelayKey,
    /// The UDP endpoint (after NAT) the node last bound from.
    pub endpoint: Option<SocketAddr>,
    last_counter: u64,
    /// Nodes this one may send to (authorisation is symmetric, kept on both sides).
    pub peers: HashSet<NodeId>,
    /// Bytes relayed from and to this node in this session (for the session record).
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

#[derive(Debug, Default)]
pub struct RelayTable {
    by_endpoint: HashMap<SocketAddr, NodeId>,
    nodes: HashMap<NodeId, RelayNode>,
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
    pub dropped_malformed: AtomicU64,
    pub dropped_unauthorised: AtomicU64,
    pub dropped_no_route: AtomicU64,
    pub send_errors: AtomicU64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RelayStatsSnapshot {
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    pub binds: u64,
    pub dropped_malformed: u64,
    pub dropped_unauthorised: u64,
    pub dropped_no_route: u64,
    pub send_errors: u64,
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
            dropped_malformed: g(&self.dropped_malformed),
            dropped_unauthorised: g(&self.dropped_unauthorised),
            dropped_no_route: g(&self.dropped_no_route),
            send_errors: g(&self.send_errors),
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

    pub fn bound_nodes(&self) -> usize {
        self.by_endpoint.len()
    }

    /// Handles a `Bind` from `src`: checks the MAC and counter, binds the endpoint and
    /// returns the `Bound` answer to send back.
    pub fn handle_bind(&mut self, src: SocketAddr, datagram: &[u8]) -> Result<[u8; BIND_LEN], DropReason> {
        let msg = BindMsg::parse(datagram).map_err(|_| DropReason::Malformed)?;
        if msg.kind != Kind::Bind {
            return Err(DropReason::Malformed);
        }
        let node = self.nodes.get_mut(&msg.node).ok_or(DropReason::Unauthorised)?;
        BindMsg::verify(datagram, &node.key).map_err(|_| DropReason::Unauthorised)?;
        if msg.session != node.session || msg.counter <= node.last_counter {
            return Err(DropReason::Unauthorised);
        }
        node.last_counter = msg.counter;
        if node.endpoint != Some(src) {
            if let Some(old) = node.endpoint.replace(src) {
                self.by_endpoint.remove(&old);
            }
            // Another node bound from this endpoint before (a NAT reused the port):
            // it lost the endpoint; it will bind again from its new one.
            if let Some(prev) = self.by_endpoint.insert(src, msg.node) {
                if prev != msg.node {
                    if let Some(p) = self.nodes.get_mut(&prev) {
                        p.endpoint = None;
                    }
                }
            }
        }
        let reply = BindMsg {
            kind: Kind::Bound,
            node: msg.node,
            session: msg.session,
            counter: msg.counter,
        };
        Ok(reply.encode(&self.nodes[&msg.node].key))
    }

    /// Decides where `Data` from `src` naming `dst_node` goes: returns the destination
    /// endpoint and the sender's node id, and counts `bytes` for both nodes. The caller
    /// rewrites the header(s) to name the sender.
    pub fn route(&self, src: SocketAddr, dst_node: NodeId, bytes: u64) -> Result<(SocketAddr, NodeId), DropReason> {
        let sender = *self.by_endpoint.get(&src).ok_or(DropReason::Unauthorised)?;
        let from = self
            .nodes
            .get(&sender)
            .filter(|n| n.peers.contains(&dst_node))
            .ok_or(DropReason::Unauthorised)?;
        let to = self.nodes.get(&dst_node).ok_or(DropReason::NoRoute)?;
        let dst = to.endpoint.ok_or(DropReason::NoRoute)?;
        from.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        to.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        Ok((dst, sender))
    }

    /// [`route`](Self::route) for one whole `Data` datagram: parses its header and
    /// rewrites it to name the source. Returns the destination endpoint.
    pub fn route_data(&self, src: SocketAddr, datagram: &mut [u8]) -> Result<SocketAddr, DropReason> {
        let (header, _) = Header::parse(datagram).map_err(|_| DropReason::Malformed)?;
        if header.kind != Kind::Data {
            return Err(DropReason::Malformed);
        }
        let (dst, sender) = self.route(src, header.node, datagram.len() as u64)?;
        relay::rewrite_node(datagram, sender);
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

    fn bind(
        table: &mut RelayTable,
        node: NodeId,
        session: u64,
        counter: u64,
        key: RelayKey,
        from: &str,
    ) -> Result<(), DropReason> {
        let msg = BindMsg {
            kind: Kind::Bind,
            node,
            session,
            counter,
        }
        .encode(&key);
        table.handle_bind(addr(from), &msg).map(|_| ())
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
