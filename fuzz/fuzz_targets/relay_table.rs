//! The relay table driven by arbitrary sequences of what the control plane and the network
//! do to it (admit, remove, change peers, binds with good or forged MACs and any counter,
//! answers to the hub's challenges from any endpoint, true or guessed, data from any
//! endpoint to any node), checked step by step against a plain model of the rules. The
//! invariant that matters: a datagram is forwarded only from the endpoint a node proved
//! with a fresh, MAC'd bind of its current session *and* its answer to the challenge sent
//! there, to a peer it is allowed to reach, at that peer's own endpoint. And never a panic.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mcvpn::proto::relay::{write_data_header, BindMsg, Kind, NodeId, RelayKey, BIND_LEN, HEADER_LEN};
use mcvpn::relay_harness::{BindAnswer, DropReason, RelayTable};

const NODES: u8 = 6;
const ENDPOINTS: u8 = 6;

#[derive(Arbitrary, Debug)]
enum Op {
    Admit { node: u8, session: u8, peers: u8 },
    Remove { node: u8, session: u8 },
    SetPeers { node: u8, peers: u8 },
    AddPeer { node: u8, peer: u8 },
    Bind { node: u8, session: u8, counter: u8, from: u8, forged: bool },
    /// Answers the last challenge the hub sent for `node` (or a guessed nonce) from `from`.
    Answer { node: u8, from: u8, forged: bool, guess: Option<u8> },
    Data { from: u8, to: u8, len: u8 },
}

fn node_id(n: u8) -> NodeId {
    NodeId::from(n % NODES) + 1
}

fn endpoint(e: u8) -> SocketAddr {
    SocketAddr::from(([198, 18, 0, e % ENDPOINTS], 4000 + u16::from(e % ENDPOINTS)))
}

fn key(node: NodeId, session: u64) -> RelayKey {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&node.to_be_bytes());
    k[4..12].copy_from_slice(&session.to_be_bytes());
    k
}

fn peer_set(mask: u8) -> HashSet<NodeId> {
    (0..NODES).filter(|i| mask & (1 << i) != 0).map(node_id).collect()
}

#[derive(Default)]
struct ModelNode {
    session: u64,
    peers: HashSet<NodeId>,
    endpoint: Option<SocketAddr>,
    last_counter: u64,
    /// The challenged endpoint, its nonce and the counter of the bind that asked.
    pending: Option<(SocketAddr, u64, u64)>,
}

fuzz_target!(|ops: Vec<Op>| {
    let mut table = RelayTable::default();
    let mut model: HashMap<NodeId, ModelNode> = HashMap::new();
    // The last challenge the hub sent for each node, as an attacker at that endpoint sees it.
    let mut challenges: HashMap<NodeId, [u8; BIND_LEN]> = HashMap::new();
    for op in ops.into_iter().take(256) {
        match op {
            Op::Admit { node, session, peers } => {
                let (node, session) = (node_id(node), u64::from(session));
                table.admit(node, session, key(node, session), peer_set(peers));
                model.insert(node, ModelNode { session, peers: peer_set(peers), ..Default::default() });
            }
            Op::Remove { node, session } => {
                let (node, session) = (node_id(node), u64::from(session));
                let removed = table.remove(node, session).is_some();
                let expected = model.get(&node).is_some_and(|n| n.session == session);
                assert_eq!(removed, expected, "remove of {node} session {session}");
                if expected {
                    model.remove(&node);
                }
            }
            Op::SetPeers { node, peers } => {
                let node = node_id(node);
                table.set_peers(node, peer_set(peers));
                if let Some(n) = model.get_mut(&node) {
                    n.peers = peer_set(peers);
                }
            }
            Op::AddPeer { node, peer } => {
                let (node, peer) = (node_id(node), node_id(peer));
                table.add_peer(node, peer);
                if let Some(n) = model.get_mut(&node) {
                    n.peers.insert(peer);
                }
            }
            Op::Bind { node, session, counter, from, forged } => {
                let (node, session, counter, src) = (node_id(node), u64::from(session), u64::from(counter), endpoint(from));
                let msg = BindMsg { kind: Kind::Bind, node, session, counter };
                let signing_key = if forged { [0xAA; 32] } else { key(node, session) };
                let result = table.handle_bind(src, &msg.encode(&signing_key));
                let expected_ok = !forged
                    && model.get(&node).is_some_and(|n| n.session == session && counter > n.last_counter);
                assert_eq!(result.is_ok(), expected_ok, "bind {msg:?} from {src} (forged: {forged}): {result:?}");
                if let Ok(answer) = result {
                    let n = model.get_mut(&node).unwrap();
                    n.last_counter = counter;
                    let sent = BindMsg::parse(answer.datagram()).expect("the hub's answer parses");
                    assert_eq!((sent.node, sent.session), (node, session));
                    if n.endpoint == Some(src) {
                        // A refresh from the bound endpoint.
                        assert!(matches!(answer, BindAnswer::Bound { moved: false, .. }), "{answer:?}");
                        assert_eq!((sent.kind, sent.counter), (Kind::Bound, counter));
                    } else {
                        // Anywhere else: a challenge there, and nothing moves yet.
                        assert!(matches!(answer, BindAnswer::Challenge(_)), "{answer:?}");
                        assert_eq!(sent.kind, Kind::Challenge);
                        assert!(answer.datagram().len() <= BIND_LEN, "no amplification");
                        n.pending = Some((src, sent.counter, counter));
                        challenges.insert(node, *answer.datagram());
                    }
                }
            }
            Op::Answer { node, from, forged, guess } => {
                let (node, src) = (node_id(node), endpoint(from));
                let (session, nonce) = match (guess, challenges.get(&node)) {
                    (Some(g), _) => (model.get(&node).map_or(0, |n| n.session), u64::from(g)),
                    (None, Some(c)) => {
                        let c = BindMsg::parse(c).unwrap();
                        (c.session, c.counter)
                    }
                    (None, None) => continue,
                };
                let msg = BindMsg { kind: Kind::Response, node, session, counter: nonce };
                let signing_key = if forged { [0xAA; 32] } else { key(node, session) };
                let result = table.handle_bind(src, &msg.encode(&signing_key));
                let proven = model.get(&node).and_then(|n| {
                    n.pending.filter(|&(at, expected, _)| {
                        !forged && n.session == session && at == src && expected == nonce
                    })
                });
                assert_eq!(result.is_ok(), proven.is_some(), "answer {msg:?} from {src} (forged: {forged}): {result:?}");
                if let (Ok(answer), Some((_, _, counter))) = (result, proven) {
                    assert!(matches!(answer, BindAnswer::Bound { moved: true, .. }), "{answer:?}");
                    let sent = BindMsg::parse(answer.datagram()).unwrap();
                    assert_eq!((sent.kind, sent.node, sent.counter), (Kind::Bound, node, counter));
                    for other in model.values_mut() {
                        if other.endpoint == Some(src) {
                            other.endpoint = None;
                        }
                    }
                    let n = model.get_mut(&node).unwrap();
                    n.endpoint = Some(src);
                    n.pending = None;
                }
            }
            Op::Data { from, to, len } => {
                let (src, dst_node) = (endpoint(from), node_id(to));
                let mut datagram = vec![0u8; HEADER_LEN + usize::from(len)];
                write_data_header(&mut datagram, dst_node);
                let result = table.route_data(src, &mut datagram);
                let sender = model.iter().find(|(_, n)| n.endpoint == Some(src)).map(|(id, _)| *id);
                let expected = match sender {
                    None => Err(DropReason::Unauthorised),
                    Some(s) if !model[&s].peers.contains(&dst_node) => Err(DropReason::Unauthorised),
                    Some(_) => match model.get(&dst_node) {
                        None => Err(DropReason::NoRoute),
                        Some(d) => d.endpoint.ok_or(DropReason::NoRoute),
                    },
                };
                assert_eq!(result, expected, "data from {src} to {dst_node}");
                if result.is_ok() {
                    // The header now names the sender, so the receiver knows who it came from.
                    let (header, _) = mcvpn::proto::relay::Header::parse(&datagram).unwrap();
                    assert_eq!(Some(header.node), sender);
                }
            }
        }
    }
});
