//! Two real data paths talk through the real hub relay over loopback UDP, with real
//! boringtun, without root: the TUNs are in-memory devices (`ChannelTun`) and this test
//! plays the kernel behind them. It checks what the namespace tests check end to end,
//! in `cargo test`: packets arrive intact, and in the order they were sent (the hub
//! once reordered a flow's datagrams within a receive batch, commit 44545a5).
//!
//! The hub side is what `hub::run` starts: `hub::udp::run` on its own thread over a
//! `RelayTable` into which each node is admitted as `Registry::join` does (a random
//! relay key and session, each node allowed to reach the other); the nodes bind with
//! MAC'd `Bind`s under that key, as after a login.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use rand::RngCore;

use mcvpn::hub::relay::{RelayStats, RelayTable, SharedRelayTable};
use mcvpn::keys::KeyPair;
use mcvpn::node::datapath::{Counters, DataPath};
use mcvpn::node::peers::PeerTable;
use mcvpn::node::relay_state::RelayState;
use mcvpn::node::tun::{ChannelTun, ChannelTunPeer};
use mcvpn::node::DataPathTuning;
use mcvpn::proto::control::{PeerInfo, Role};
use mcvpn::udp_batch::{BatchUdp, UdpTuning};

const MTU: u16 = 1420;
/// How long a packet may take to come out the other side before the test gives up:
/// generous, for a loaded machine; a passing run takes milliseconds per packet.
const PATIENCE: Duration = Duration::from_secs(5);

/// One node: its data path and the "kernel" end of its TUN.
struct Side {
    ip: Ipv4Addr,
    tun: ChannelTunPeer,
    counters: Arc<Counters>,
}

struct Pair {
    a: Side,
    b: Side,
    stats: Arc<RelayStats>,
}

/// Starts the hub's relay loop on loopback, as `hub::run` does.
fn start_hub() -> (SocketAddr, SharedRelayTable, Arc<RelayStats>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let table = RelayTable::shared();
    let stats = Arc::new(RelayStats::default());
    mcvpn::hub::udp::spawn(socket, table.clone(), stats.clone(), UdpTuning::default()).unwrap();
    (addr, table, stats)
}

struct NodeSpec {
    id: u32,
    ip: Ipv4Addr,
    role: Role,
    key: KeyPair,
}

/// Admits `me` to the relay (allowed to reach `other`), starts its data path on an
/// in-memory TUN, and binds its UDP endpoint at the hub.
fn start_node(
    hub: SocketAddr,
    table: &SharedRelayTable,
    me: &NodeSpec,
    other: &NodeSpec,
    tuning: DataPathTuning,
) -> (Side, Arc<RelayState>) {
    // As `Registry::join` hands them out with the login.
    let mut relay_key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut relay_key);
    let session = rand::rngs::OsRng.next_u64();
    table
        .write()
        .admit(me.id, session, relay_key, HashSet::from([other.id]));

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(hub).unwrap();
    mcvpn::util::set_socket_buffers(&socket, mcvpn::node::DEFAULT_SOCKET_BUFFER);
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
    let (device, kernel) = ChannelTun::pair().unwrap();
    let dp = Arc::new(DataPath {
        tun: Arc::new(device),
        udp: udp.clone(),
        hub: Arc::new(mcvpn::node::datapath::Destination::new(hub)),
        mtu: MTU,
        peers,
        relay: relay.clone(),
        counters: counters.clone(),
        tuning,
        tx_turn: parking_lot::Mutex::new(()),
    });
    dp.spawn().unwrap();
    // Bind at once, as `Node::apply_login` does; the timers thread retries.
    if let Some(bind) = relay.bind_due(Instant::now()) {
        udp.send(hub, &bind, None).unwrap();
    }
    (
        Side {
            ip: me.ip,
            tun: kernel,
            counters,
        },
        relay,
    )
}

fn pair(tuning: DataPathTuning) -> Pair {
    let (hub, table, stats) = start_hub();
    let a = NodeSpec {
        id: 7,
        ip: Ipv4Addr::new(100, 64, 0, 2),
        role: Role::Client,
        key: KeyPair::generate(),
    };
    let b = NodeSpec {
        id: 9,
        ip: Ipv4Addr::new(100, 64, 0, 1),
        role: Role::Target,
        key: KeyPair::generate(),
    };
    let (side_a, relay_a) = start_node(hub, &table, &a, &b, tuning);
    let (side_b, relay_b) = start_node(hub, &table, &b, &a, tuning);
    let deadline = Instant::now() + PATIENCE;
    while !(relay_a.is_bound(Instant::now()) && relay_b.is_bound(Instant::now())) {
        assert!(Instant::now() < deadline, "the hub did not acknowledge both binds");
        std::thread::sleep(Duration::from_millis(5));
    }
    Pair {
        a: side_a,
        b: side_b,
        stats,
    }
}

fn echo(src: Ipv4Addr, dst: Ipv4Addr, seq: u16, reply: bool) -> Vec<u8> {
    let ip = PacketBuilder::ipv4(src.octets(), dst.octets(), 64);
    let builder = if reply {
        ip.icmpv4_echo_reply(0x4d43, seq)
    } else {
        ip.icmpv4_echo_request(0x4d43, seq)
    };
    let payload = [0xa5u8; 56]; // ping's default: an 84-byte IP packet
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, &payload).unwrap();
    out
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4(src.octets(), dst.octets(), 64).udp(40000, 5001);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).unwrap();
    out
}

fn expect_packet(side: &Side, what: &str) -> Vec<u8> {
    side.tun
        .delivered(PATIENCE)
        .unwrap_or_else(|| panic!("{what} did not arrive within {PATIENCE:?}"))
}

/// Nothing was dropped anywhere on the way.
fn assert_clean(p: &Pair) {
    let hub = p.stats.snapshot();
    assert_eq!(
        (
            hub.dropped_malformed,
            hub.dropped_unauthorised,
            hub.dropped_no_route,
            hub.send_errors
        ),
        (0, 0, 0, 0),
        "the hub dropped: {hub:?}"
    );
    for side in [&p.a, &p.b] {
        let d = side.counters.snapshot();
        assert_eq!(
            (
                d.wg_rejected,
                d.source_filtered,
                d.hub_unknown_peer,
                d.hub_malformed,
                d.send_errors
            ),
            (0, 0, 0, 0, 0),
            "{} dropped: {d:?}",
            side.ip
        );
    }
}

#[test]
fn pings_cross_the_relay_both_ways_intact() {
    let p = pair(DataPathTuning::default());
    for seq in 1..=5 {
        let request = echo(p.a.ip, p.b.ip, seq, false);
        p.a.tun.inject(&request).unwrap();
        assert_eq!(expect_packet(&p.b, "the echo request"), request, "request {seq}");
        // The target's kernel answers.
        let reply = echo(p.b.ip, p.a.ip, seq, true);
        p.b.tun.inject(&reply).unwrap();
        assert_eq!(expect_packet(&p.a, "the echo reply"), reply, "reply {seq}");
    }
    assert!(p.a.tun.try_delivered().is_none() && p.b.tun.try_delivered().is_none());
    assert_clean(&p);
}

/// Data for the transfer: deterministic, and different at every offset.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Payload bytes of the transfer's packets, in a repeating pattern: six full-size
/// packets, a medium one, a small one. A node sends the first seven as one UDP GSO
/// batch (the shorter last one ends it) and the small one alone (a bigger one follows
/// it), so the hub receives lone datagrams and GRO batches of one flow mixed: what it
/// once put out of order.
fn chunk_len(i: usize) -> usize {
    const FULL: usize = MTU as usize - 20 - 8 - 4; // IPv4, UDP, sequence number
    match i % 8 {
        6 => 700,
        7 => 100,
        _ => FULL,
    }
}

/// Sends `data` from `from` to `to` as UDP packets each carrying a sequence number,
/// `window` packets at a time (each window delivered before the next goes, so that no
/// socket buffer can overflow on a slow machine), and checks each packet as it
/// arrives: the next sequence number, the right bytes.
fn transfer(from: &Side, to: &Side, data: &[u8], window: usize) -> usize {
    let mut packets = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let len = chunk_len(packets.len()).min(data.len() - offset);
        let mut payload = (packets.len() as u32).to_be_bytes().to_vec();
        payload.extend_from_slice(&data[offset..offset + len]);
        packets.push(udp(from.ip, to.ip, &payload));
        offset += len;
    }
    let mut received = Vec::with_capacity(data.len());
    for (w, batch) in packets.chunks(window).enumerate() {
        for p in batch {
            from.tun.inject(p).unwrap();
        }
        for (k, sent) in batch.iter().enumerate() {
            let want = w * window + k;
            let got = expect_packet(to, &format!("packet {want}"));
            let parsed = SlicedPacket::from_ip(&got).unwrap_or_else(|e| panic!("packet {want} is not IP: {e}"));
            let Some(TransportSlice::Udp(u)) = parsed.transport else {
                panic!("packet {want} is not UDP")
            };
            let seq = u32::from_be_bytes(u.payload()[..4].try_into().unwrap()) as usize;
            assert_eq!(seq, want, "out of order: packet {seq} arrived where {want} was due");
            assert_eq!(&got, sent, "packet {want} arrived changed");
            received.extend_from_slice(&u.payload()[4..]);
        }
    }
    assert!(to.tun.try_delivered().is_none(), "more packets arrived than were sent");
    assert_eq!(received, data, "the reassembled data differs");
    packets.len()
}

fn a_mebibyte_arrives_intact_and_in_order(tuning: DataPathTuning) {
    let p = pair(tuning);
    // A first packet brings up the WireGuard session (boringtun queues it meanwhile).
    let hello = echo(p.a.ip, p.b.ip, 1, false);
    p.a.tun.inject(&hello).unwrap();
    assert_eq!(expect_packet(&p.b, "the first packet"), hello);

    let data = pattern(1 << 20);
    let sent = transfer(&p.a, &p.b, &data, 32);
    assert!(sent > 700, "{sent} packets");
    // And back, a smaller one, in bigger windows.
    transfer(&p.b, &p.a, &data[..64 << 10], 48);
    assert_clean(&p);
}

#[test]
fn a_mebibyte_arrives_intact_and_in_order_on_one_packet_thread() {
    a_mebibyte_arrives_intact_and_in_order(DataPathTuning::default());
}

#[test]
fn a_mebibyte_arrives_intact_and_in_order_on_two_packet_threads() {
    a_mebibyte_arrives_intact_and_in_order(DataPathTuning {
        packet_threads: 2,
        ..DataPathTuning::default()
    });
}
