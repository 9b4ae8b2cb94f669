//! A node moves its datagrams from UDP to a stream link and back while its WireGuard
//! session runs, through the real hub relay, without root (issue 12, "Automatic
//! choice"): what `node::transport` does when it switches, minus the dialing.
//!
//! The link is the real `stream::link::run` on both ends, over an in-memory WebSocket
//! (no TLS: that is `node::https`'s and `hub::https`'s part, tested there and in the
//! namespace tests 120-125): the hub's end bridges to the relay's UDP socket as
//! `hub::https` does, the node's end to the node's data path socket. Moving is what
//! `Node::point_data_at` does: re-point the data path's destination (and the socket's
//! connect) and bind again at once; the relay challenges the new endpoint, the data
//! path answers through it, and the binding moves.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use rand::RngCore;

use mcvpn::hub::relay::{RelayStats, RelayTable, SharedRelayTable};
use mcvpn::keys::KeyPair;
use mcvpn::node::datapath::{Counters, DataPath, Destination};
use mcvpn::node::peers::PeerTable;
use mcvpn::node::relay_state::RelayState;
use mcvpn::node::tun::{ChannelTun, ChannelTunPeer};
use mcvpn::node::DataPathTuning;
use mcvpn::proto::control::{PeerInfo, Role};
use mcvpn::stream::link::{self, BridgeBuffers, ControlEnd, LinkStats, LoopbackEnd};
use mcvpn::udp_batch::{BatchUdp, UdpTuning};
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

const MTU: u16 = 1420;
const PATIENCE: Duration = Duration::from_secs(5);

struct Node {
    id: u32,
    ip: Ipv4Addr,
    tun: ChannelTunPeer,
    udp: Arc<BatchUdp>,
    dest: Arc<Destination>,
    relay: Arc<RelayState>,
    counters: Arc<Counters>,
    peers: Arc<PeerTable>,
}

fn start_hub() -> (SocketAddr, SharedRelayTable, Arc<RelayStats>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let table = RelayTable::shared();
    let stats = Arc::new(RelayStats::default());
    mcvpn::hub::udp::spawn(socket, table.clone(), stats.clone(), UdpTuning::default()).unwrap();
    (addr, table, stats)
}

struct Spec {
    id: u32,
    ip: Ipv4Addr,
    role: Role,
    key: KeyPair,
}

fn start_node(hub: SocketAddr, table: &SharedRelayTable, me: &Spec, other: &Spec) -> Node {
    let mut relay_key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut relay_key);
    let session = rand::rngs::OsRng.next_u64();
    table
        .write()
        .admit(me.id, session, relay_key, HashSet::from([other.id]));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(hub).unwrap();
    let tuning = DataPathTuning::default();
    let udp = Arc::new(BatchUdp::new(socket, &tuning.udp).unwrap());
    let peers = Arc::new(PeerTable::new(me.key.secret.clone()));
    peers.upsert(PeerInfo {
        node_id: other.id,
        name: format!("node-{}", other.id),
        role: other.role,
        overlay_ip: other.ip,
        public_key: other.key.public_key32(),
        online: true,
        boot_id: 1,
    });
    let relay = Arc::new(RelayState::default());
    relay.start(me.id, session, relay_key);
    let counters = Arc::new(Counters::default());
    let dest = Arc::new(Destination::new(hub));
    let (device, kernel) = ChannelTun::pair().unwrap();
    let dp = Arc::new(DataPath {
        tun: Arc::new(device),
        udp: udp.clone(),
        hub: dest.clone(),
        mtu: MTU,
        peers: peers.clone(),
        relay: relay.clone(),
        counters: counters.clone(),
        tuning,
        tx_turn: parking_lot::Mutex::new(()),
    });
    dp.spawn().unwrap();
    Node {
        id: me.id,
        ip: me.ip,
        tun: kernel,
        udp,
        dest,
        relay,
        counters,
        peers,
    }
}

/// Waits for a fresh `Bound` and returns where the relay has the node bound.
fn wait_bound(node: &Node, table: &SharedRelayTable) -> SocketAddr {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if node.relay.view(Instant::now()).ever_bound {
            return table.read().node(node.id).and_then(|n| n.endpoint).expect("bound");
        }
        assert!(Instant::now() < deadline, "node {} got no Bound", node.id);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Moves the node's datagrams to `to`, as `Node::point_data_at` does.
fn point_at(node: &Node, to: SocketAddr) {
    node.dest.switch(&node.udp, to).unwrap();
    node.relay.rebind_now();
}

fn echo(src: Ipv4Addr, dst: Ipv4Addr, seq: u16, reply: bool) -> Vec<u8> {
    let ip = PacketBuilder::ipv4(src.octets(), dst.octets(), 64);
    let builder = if reply {
        ip.icmpv4_echo_reply(0x4d43, seq)
    } else {
        ip.icmpv4_echo_request(0x4d43, seq)
    };
    let payload = [0x5au8; 56];
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, &payload).unwrap();
    out
}

fn ping_both_ways(a: &Node, b: &Node, seqs: std::ops::RangeInclusive<u16>) {
    for seq in seqs {
        let request = echo(a.ip, b.ip, seq, false);
        a.tun.inject(&request).unwrap();
        assert_eq!(
            b.tun.delivered(PATIENCE).expect("the request"),
            request,
            "request {seq}"
        );
        let reply = echo(b.ip, a.ip, seq, true);
        b.tun.inject(&reply).unwrap();
        assert_eq!(a.tun.delivered(PATIENCE).expect("the reply"), reply, "reply {seq}");
    }
}

/// The WireGuard handshakes each node has done with its peer so far (the time of the
/// last one: it must not change across a move).
fn handshake_age(node: &Node) -> Option<Duration> {
    node.peers.all()[0].tunn.lock().stats().0
}

/// A link over an in-memory WebSocket: the hub's end bridges to the relay socket, the
/// node's end to the node's data socket. Returns the node end's loopback address and
/// the hub end's (the endpoint the relay sees), and the node end's stats.
fn start_link(
    rt: &tokio::runtime::Runtime,
    hub: SocketAddr,
    node_socket: SocketAddr,
) -> (SocketAddr, SocketAddr, Arc<LinkStats>) {
    let _guard = rt.enter();
    let (a, b) = tokio::io::duplex(256 * 1024);
    let hub_end = LoopbackEnd::bind(hub, BridgeBuffers::HUB, 0).unwrap();
    let node_end = LoopbackEnd::bind(node_socket, BridgeBuffers::NODE, 1 << 20).unwrap();
    let (hub_addr, node_addr) = (hub_end.local_addr().unwrap(), node_end.local_addr().unwrap());
    let node_stats = Arc::new(LinkStats::default());
    let stats = node_stats.clone();
    rt.spawn(async move {
        let ws = WebSocketStream::from_raw_socket(a, WsRole::Client, Some(link::ws_config())).await;
        link::run(ws, node_end, ControlEnd::None, None, &stats).await
    });
    rt.spawn(async move {
        let ws = WebSocketStream::from_raw_socket(b, WsRole::Server, Some(link::ws_config())).await;
        link::run(ws, hub_end, ControlEnd::None, None, &LinkStats::default()).await
    });
    (node_addr, hub_addr, node_stats)
}

#[test]
fn datagrams_move_to_a_link_and_back_without_a_new_handshake() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (hub, table, stats) = start_hub();
    let sa = Spec {
        id: 7,
        ip: Ipv4Addr::new(100, 64, 0, 2),
        role: Role::Client,
        key: KeyPair::generate(),
    };
    let sb = Spec {
        id: 9,
        ip: Ipv4Addr::new(100, 64, 0, 1),
        role: Role::Target,
        key: KeyPair::generate(),
    };
    let a = start_node(hub, &table, &sa, &sb);
    let b = start_node(hub, &table, &sb, &sa);
    let a_socket = a.udp.socket.local_addr().unwrap();
    assert_eq!(wait_bound(&a, &table), a_socket);
    wait_bound(&b, &table);
    ping_both_ways(&a, &b, 1..=3);
    let handshake = handshake_age(&a);
    assert!(handshake.is_some(), "the first pings made a WireGuard session");

    // UDP → link: the relay now sees node a at the link's hub end.
    let (node_end, hub_end, link_stats) = start_link(&rt, hub, a_socket);
    point_at(&a, node_end);
    assert_eq!(wait_bound(&a, &table), hub_end, "the binding moved to the link");
    ping_both_ways(&a, &b, 4..=8);
    let over_link = link_stats.datagrams_in.load(std::sync::atomic::Ordering::Relaxed);
    assert!(over_link >= 5, "the replies came over the link ({over_link} datagrams)");

    // Link → UDP.
    point_at(&a, hub);
    assert_eq!(wait_bound(&a, &table), a_socket, "the binding moved back");
    let before = link_stats.datagrams_in.load(std::sync::atomic::Ordering::Relaxed);
    ping_both_ways(&a, &b, 9..=12);
    assert_eq!(
        link_stats.datagrams_in.load(std::sync::atomic::Ordering::Relaxed),
        before,
        "nothing more over the link"
    );

    // The same WireGuard session all along: no new handshake (its age only grew).
    let after = handshake_age(&a).unwrap();
    assert!(
        after >= handshake.unwrap(),
        "a new handshake: {handshake:?} then {after:?}"
    );
    assert!(a.tun.try_delivered().is_none() && b.tun.try_delivered().is_none());
    for n in [&a, &b] {
        let d = n.counters.snapshot();
        assert_eq!((d.wg_rejected, d.hub_unknown_peer, d.hub_malformed), (0, 0, 0), "{d:?}");
    }
    let hub_stats = stats.snapshot();
    assert_eq!(hub_stats.dropped_unauthorised, 0, "{hub_stats:?}");
}
