//! The node's packet loops: TUN → WireGuard → hub, hub → WireGuard → TUN, and the
//! timers (WireGuard's and the relay bind's). By default one thread moves packets both
//! ways, waiting on the TUN and the socket at once; `MCVPN_PACKET_THREADS=2` gives each
//! direction its own thread. The threads share only the peer table and the relay state.
//!
//! The loops are generic over the TUN ([`TunDevice`]): the real device in the product,
//! an in-memory one in tests that need no root (`tests/relay_pair.rs`).
//!
//! Why one thread by default: on the 2-core machine of `scripts/bench.sh` a second
//! thread per node cost more in wake-ups than it gained in parallel work. The receiving
//! side's kernel answers (TCP acknowledgements, echo replies) woke the other thread
//! about 10,000 times a second; one thread reads them on its next turn instead. TCP
//! went from 4.1–4.8 to 4.9–5.2 Gbit/s, the target's CPU per GB fell ~15 %, and
//! bidirectional TCP and ping RTT did not get worse.
//!
//! Both directions work in batches, as wireguard-go does: with TUN offload the kernel
//! hands over a 64 KiB TCP segment that tun-rs splits into MTU-sized packets; they are
//! encrypted one by one into one buffer and leave as a single UDP GSO send to the hub.
//! The other way, one `recvmmsg` brings up to 32 GRO batches from the hub; each
//! datagram is decrypted into its own buffer, and tun-rs coalesces the packets again
//! (TCP/UDP GRO) before writing them to the TUN with one write per flow.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::TunnResult;
use quinn_udp::RecvMeta;
use serde::{Deserialize, Serialize};
use tun_rs::{GROTable, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::peers::{Peer, PeerCache, PeerTable};
use super::relay_state::{QuietWatch, RelayState};
use super::settings::DataPathTuning;
use super::tun::TunDevice;
use crate::proto::relay::{write_data_header, Header, Kind, HEADER_LEN};
use crate::udp_batch::{gso_runs, BatchUdp, MAX_GSO_BYTES, MAX_GSO_SEGMENTS, RECV_BATCH, RECV_BUF};

/// boringtun's clock only moves when its timers are updated.
const TIMER_TICK: Duration = Duration::from_millis(250);

/// Packets that went nowhere, by reason. Malformed input is counted, never fatal.
#[derive(Debug, Default)]
pub struct Counters {
    pub tun_read_errors: AtomicU64,
    pub tun_not_ipv4: AtomicU64,
    pub tun_no_peer: AtomicU64,
    pub hub_malformed: AtomicU64,
    pub hub_unknown_peer: AtomicU64,
    pub wg_rejected: AtomicU64,
    pub source_filtered: AtomicU64,
    pub send_errors: AtomicU64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountersSnapshot {
    pub tun_read_errors: u64,
    pub tun_not_ipv4: u64,
    pub tun_no_peer: u64,
    pub hub_malformed: u64,
    pub hub_unknown_peer: u64,
    pub wg_rejected: u64,
    pub source_filtered: u64,
    pub send_errors: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            tun_read_errors: g(&self.tun_read_errors),
            tun_not_ipv4: g(&self.tun_not_ipv4),
            tun_no_peer: g(&self.tun_no_peer),
            hub_malformed: g(&self.hub_malformed),
            hub_unknown_peer: g(&self.hub_unknown_peer),
            wg_rejected: g(&self.wg_rejected),
            source_filtered: g(&self.source_filtered),
            send_errors: g(&self.send_errors),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Destination of an IPv4 packet, or `None` for anything else.
pub fn ipv4_destination(packet: &[u8]) -> Option<Ipv4Addr> {
    etherparse::Ipv4HeaderSlice::from_slice(packet)
        .ok()
        .map(|h| h.destination_addr())
}

/// One node's packet path. `T` is the TUN device: the real one unless a test says
/// otherwise (generic rather than boxed, so the loops call the device directly).
pub struct DataPath<T = SyncDevice> {
    pub tun: Arc<T>,
    /// Connected to where the datagrams go (the hub's UDP address, or this node's
    /// HTTPS link on loopback): the kernel drops datagrams from anyone else.
    pub udp: Arc<BatchUdp>,
    /// Where the datagrams go now; the transport manager moves it.
    pub hub: Arc<Destination>,
    pub mtu: u16,
    pub peers: Arc<PeerTable>,
    pub relay: Arc<RelayState>,
    pub counters: Arc<Counters>,
    /// The knobs the loops read: packet threads and spinning.
    pub tuning: DataPathTuning,
    /// With two packet threads: held while reading the TUN and sending what was read,
    /// by whichever thread does it, so that a flow's packets leave in the order the
    /// kernel gave them.
    pub tx_turn: parking_lot::Mutex<()>,
}

/// Where a node's datagrams go: the hub's UDP address, or the loopback end of its
/// HTTPS link. Read once per batch (an uncontended read lock: a few nanoseconds next to
/// a `sendmsg`), written only when the transport changes.
#[derive(Debug)]
pub struct Destination(parking_lot::RwLock<SocketAddr>);

impl Destination {
    pub fn new(addr: SocketAddr) -> Destination {
        Destination(parking_lot::RwLock::new(addr))
    }

    pub fn get(&self) -> SocketAddr {
        *self.0.read()
    }

    /// Sends from now on to `addr`, and has the kernel take datagrams only from it.
    pub fn switch(&self, udp: &BatchUdp, addr: SocketAddr) -> std::io::Result<()> {
        let mut cur = self.0.write();
        udp.socket.connect(addr)?;
        *cur = addr;
        Ok(())
    }
}

/// Room in front of each packet handed to the TUN: tun-rs writes the virtio-net header
/// there when offload is on.
const TUN_OFFSET: usize = VIRTIO_NET_HDR_LEN;
/// Decrypted packets written to the TUN together (after GRO). 32 full-size packets
/// make one 45 KB coalesced write: big enough for the kernel, small enough to keep the
/// buffers' resident memory at 2 MiB at most.
const TUN_BATCH: usize = 32;

/// Packets read from the TUN and their encrypted datagrams, reused from batch to batch.
struct TxBatch {
    original: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    n: usize,
    out: Vec<u8>,
    lens: Vec<usize>,
    cache: PeerCache<Ipv4Addr>,
}

impl TxBatch {
    fn new(room: usize) -> TxBatch {
        // Twice a batch: a read is only started with a whole batch of room left, since
        // one TSO segment can split into many packets.
        let slots = 2 * IDEAL_BATCH_SIZE;
        // Each encrypted datagram: relay header + WireGuard overhead + padding to 16.
        let slot = HEADER_LEN + room + 32 + 16;
        TxBatch {
            original: vec![0u8; VIRTIO_NET_HDR_LEN + 65535],
            bufs: vec![vec![0u8; room]; slots],
            sizes: vec![0usize; slots],
            n: 0,
            out: vec![0u8; slots * slot + 148],
            lens: Vec::with_capacity(slots),
            cache: PeerCache::default(),
        }
    }

    /// Reads what the TUN has, up to a batch, without waiting (0: nothing there).
    /// Errors only when the TUN is gone.
    fn read<T: TunDevice>(&mut self, dp: &DataPath<T>) -> std::io::Result<usize> {
        self.n = 0;
        while self.bufs.len() - self.n >= IDEAL_BATCH_SIZE {
            let n = self.n;
            match dp
                .tun
                .recv_multiple(&mut self.original, &mut self.bufs[n..], &mut self.sizes[n..], 0)
            {
                Ok(k) => self.n += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Err(e),
                Err(e) => {
                    // A malformed super-packet (say, a kernel GSO bug): drop it, go on.
                    bump(&dp.counters.tun_read_errors);
                    tracing::debug!(error = %e, "TUN read failed");
                    break;
                }
            }
        }
        Ok(self.n)
    }

    /// Reads what the TUN has and sends it to the hub. Returns how many packets were
    /// read (0: nothing there); errors only when the TUN is gone.
    fn forward<T: TunDevice>(&mut self, dp: &DataPath<T>) -> std::io::Result<usize> {
        let n = self.read(dp)?;
        if n > 0 {
            self.send(dp);
        }
        Ok(n)
    }

    /// Encrypts what was read and sends it to the hub: one GSO send per run of
    /// equal-sized datagrams.
    fn send<T: TunDevice>(&mut self, dp: &DataPath<T>) {
        self.lens.clear();
        let mut pos = 0;
        for (buf, &size) in self.bufs.iter().zip(&self.sizes).take(self.n) {
            let packet = &buf[..size];
            let Some(dst) = ipv4_destination(packet) else {
                bump(&dp.counters.tun_not_ipv4);
                continue;
            };
            let Some(peer) = self.cache.get(&dp.peers, dst, |ip| dp.peers.by_ip(ip)) else {
                bump(&dp.counters.tun_no_peer);
                continue;
            };
            let result = peer.tunn.lock().encapsulate(packet, &mut self.out[pos + HEADER_LEN..]);
            match result {
                TunnResult::WriteToNetwork(b) => {
                    let len = HEADER_LEN + b.len();
                    write_data_header(&mut self.out[pos..], peer.node_id);
                    self.lens.push(len);
                    pos += len;
                }
                TunnResult::Err(e) => tracing::debug!(peer = peer.node_id, error = ?e, "encapsulate failed"),
                _ => {}
            }
        }
        let mut start = 0;
        let hub = dp.hub.get();
        for (a, b, segment) in gso_runs(&self.lens, MAX_GSO_SEGMENTS, MAX_GSO_BYTES) {
            let bytes: usize = self.lens[a..b].iter().sum();
            if dp
                .udp
                .send(hub, &self.out[start..start + bytes], Some(segment))
                .is_err()
            {
                dp.counters.send_errors.fetch_add((b - a) as u64, Ordering::Relaxed);
            }
            start += bytes;
        }
    }
}

/// Whether a receive waits for the hub's datagrams or returns at once without them.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    Yes,
    No,
}

/// Datagrams from the hub and the packets they decrypt to, reused from batch to batch.
struct RxBatch {
    storage: Vec<Vec<u8>>,
    metas: [RecvMeta; RECV_BATCH],
    /// Plaintext packets for the TUN. tun-rs coalesces a flow (GRO) into the first
    /// packet's buffer only if its capacity holds the result, so each gets 64 KiB;
    /// flushing every TUN_BATCH packets bounds what GRO ever touches (and so the
    /// resident memory) to TUN_BATCH x 64 KiB.
    packets: Vec<Vec<u8>>,
    gro: GROTable,
    /// Handshake answers that go straight back to the hub.
    net: Vec<u8>,
    cache: PeerCache<crate::proto::relay::NodeId>,
}

impl RxBatch {
    fn new(room: usize) -> RxBatch {
        RxBatch {
            storage: (0..RECV_BATCH).map(|_| vec![0u8; RECV_BUF]).collect(),
            metas: [RecvMeta::default(); RECV_BATCH],
            packets: (0..TUN_BATCH).map(|_| Vec::with_capacity(TUN_OFFSET + 65535)).collect(),
            gro: GROTable::default(),
            net: vec![0u8; HEADER_LEN + room + 64 + 148],
            cache: PeerCache::default(),
        }
    }

    /// Receives one batch from the hub, decrypts it and writes the packets to the TUN.
    /// Returns how many packets went to the TUN (0 also when nothing was there and
    /// `wait` is [`Wait::No`]). Bad datagrams are counted and dropped.
    fn receive<T: TunDevice>(&mut self, dp: &DataPath<T>, wait: Wait) -> std::io::Result<usize> {
        let n = {
            let mut it = self.storage.iter_mut();
            let mut iovs: [std::io::IoSliceMut; RECV_BATCH] =
                std::array::from_fn(|_| std::io::IoSliceMut::new(it.next().expect("RECV_BATCH buffers")));
            match wait {
                Wait::Yes => dp.udp.recv(&mut iovs, &mut self.metas)?,
                Wait::No => dp.udp.try_recv(&mut iovs, &mut self.metas)?,
            }
        };
        let mut count = 0;
        let mut written = 0;
        for (meta, buf) in self.metas[..n].iter().zip(&self.storage) {
            let data = &buf[..meta.len];
            if data.is_empty() {
                bump(&dp.counters.hub_malformed);
                continue;
            }
            let stride = if meta.stride == 0 { meta.len } else { meta.stride };
            for datagram in data.chunks(stride) {
                match Header::parse(datagram) {
                    Ok((h, payload)) if h.kind == Kind::Data => {
                        let Some(peer) = self.cache.get(&dp.peers, h.node, |id| dp.peers.by_id(id)) else {
                            bump(&dp.counters.hub_unknown_peer);
                            continue;
                        };
                        if dp.decapsulate(&peer, payload, &mut self.packets[count], &mut self.net) {
                            count += 1;
                            if count == self.packets.len() {
                                dp.write_tun(&mut self.gro, &mut self.packets[..count]);
                                written += count;
                                count = 0;
                            }
                        }
                    }
                    Ok((h, _)) if h.kind == Kind::Bound => {
                        if !dp.relay.on_bound(datagram, Instant::now()) {
                            bump(&dp.counters.hub_malformed);
                        }
                    }
                    Ok((h, _)) if h.kind == Kind::Challenge => match dp.relay.on_challenge(datagram) {
                        // From the socket the bind left: the hub checks the address.
                        Some(answer) => {
                            if dp.udp.send(dp.hub.get(), &answer, None).is_err() {
                                bump(&dp.counters.send_errors);
                            }
                        }
                        None => bump(&dp.counters.hub_malformed),
                    },
                    _ => bump(&dp.counters.hub_malformed),
                }
            }
        }
        if count > 0 {
            dp.write_tun(&mut self.gro, &mut self.packets[..count]);
            written += count;
        }
        Ok(written)
    }
}

impl<T: TunDevice> DataPath<T> {
    /// Starts the packet loop(s) and the timers on their own threads. They run until
    /// the process exits. Threads that move packets, from `MCVPN_PACKET_THREADS`: 1
    /// (both directions on one thread, the default) or 2 (one per direction:
    /// encryption and decryption can then run on two cores at once, which pays only
    /// where cores are to spare).
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<()> {
        let spawn = |name: &str, f: fn(&DataPath<T>)| {
            let dp = self.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || f(&dp))
                .map(|_| ())
        };
        if self.tuning.packet_threads != 2 {
            spawn("packets", Self::both_ways)?;
        } else {
            spawn("tun-to-hub", Self::tun_to_hub)?;
            spawn("hub-to-tun", Self::hub_to_tun)?;
        }
        spawn("timers", Self::timers)?;
        Ok(())
    }

    /// Sends one datagram (`out[..HEADER_LEN + len]`, WireGuard message after the
    /// header) to `peer` through the hub.
    fn send_one(&self, peer: &Peer, out: &mut [u8], len: usize) {
        write_data_header(out, peer.node_id);
        if self.udp.send(self.hub.get(), &out[..HEADER_LEN + len], None).is_err() {
            bump(&self.counters.send_errors);
        }
    }

    /// Largest packet the TUN gives us (offload splits bigger ones into this size).
    fn packet_room(&self) -> usize {
        (self.mtu as usize).max(1500) + 128
    }

    fn tun_to_hub(&self) {
        // Non-blocking, so that small packets can be gathered into one batch: read until
        // the TUN is empty (or the batch full), then encrypt and send them together.
        if let Err(e) = self.tun.set_nonblocking(true) {
            tracing::warn!(error = %e, "cannot make the TUN non-blocking");
        }
        let mut tx = TxBatch::new(self.packet_room());
        let spin = self.tuning.udp.spin();
        loop {
            if let Err(e) = crate::udp_batch::wait_readable(self.tun.as_raw_fd(), spin) {
                tracing::error!(error = %e, "TUN poll failed; stopping the sender");
                return;
            }
            let _turn = self.tx_turn.lock();
            if let Err(e) = tx.forward(self) {
                tracing::error!(error = %e, "the TUN is gone; stopping the sender");
                return;
            }
        }
    }

    /// Both directions on one thread, which waits on the TUN and the socket at once.
    /// What the kernel answers to the packets just written is read on the next turn,
    /// with no other thread to wake.
    fn both_ways(&self) {
        if let Err(e) = self.tun.set_nonblocking(true) {
            tracing::warn!(error = %e, "cannot make the TUN non-blocking");
        }
        let mut rx = RxBatch::new(self.packet_room());
        let mut tx = TxBatch::new(self.packet_room());
        let (tun_fd, udp_fd) = (self.tun.as_raw_fd(), self.udp.socket.as_raw_fd());
        loop {
            let (tun_ready, udp_ready) = match crate::udp_batch::wait_either(tun_fd, udp_fd) {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::error!(error = %e, "poll failed; stopping the packet loop");
                    return;
                }
            };
            if udp_ready {
                if let Err(e) = rx.receive(self, Wait::No) {
                    tracing::debug!(error = %e, "receive from the hub failed");
                }
            }
            if tun_ready {
                if let Err(e) = tx.forward(self) {
                    tracing::error!(error = %e, "the TUN is gone; stopping the packet loop");
                    return;
                }
            }
        }
    }

    /// The receiving thread: hub → TUN, and whatever the kernel answers straight back.
    fn hub_to_tun(&self) {
        let mut rx = RxBatch::new(self.packet_room());
        // What the packets just written provoke (an echo reply, TCP acknowledgements)
        // is often in the TUN by the time the write returns: sending it from here saves
        // the sender thread a wake-up, which is most of a request/response's latency.
        let mut answers = TxBatch::new(self.packet_room());
        loop {
            match rx.receive(self, Wait::Yes) {
                Ok(0) => {}
                Ok(_) => {
                    // Only when the sender thread is not at it: two readers would reorder a flow.
                    if let Some(_turn) = self.tx_turn.try_lock() {
                        // A TUN that is gone is the sender thread's to report.
                        let _ = answers.forward(self);
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "receive from the hub failed");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn write_tun(&self, gro: &mut GROTable, packets: &mut [Vec<u8>]) {
        if let Err(e) = self.tun.send_multiple(gro, packets, TUN_OFFSET) {
            tracing::debug!(error = %e, "TUN write failed");
        }
    }

    /// Decrypts one datagram from `peer`. A packet for the TUN lands in `packet` (after
    /// [`TUN_OFFSET`]) and the call returns true; handshake answers and packets queued
    /// during a handshake go straight back to the hub through `net`.
    fn decapsulate(&self, peer: &Peer, payload: &[u8], packet: &mut Vec<u8>, net: &mut [u8]) -> bool {
        let room = TUN_OFFSET + payload.len().max(148);
        if packet.len() < room {
            packet.resize(room, 0);
        }
        let mut tunn = peer.tunn.lock();
        // The rate limiter keys cookies on the source address; every datagram comes
        // from the hub, so give it the peer's overlay address instead.
        let source = Some(IpAddr::V4(peer.overlay_ip));
        match tunn.decapsulate(source, payload, &mut packet[TUN_OFFSET..]) {
            TunnResult::WriteToTunnelV4(p, src) => {
                let len = p.len();
                // Cryptokey routing: a peer may only speak for its own address.
                if src == peer.overlay_ip {
                    packet.truncate(TUN_OFFSET + len);
                    return true;
                }
                bump(&self.counters.source_filtered);
                false
            }
            TunnResult::WriteToNetwork(b) => {
                let len = b.len();
                net[HEADER_LEN..HEADER_LEN + len].copy_from_slice(&packet[TUN_OFFSET..TUN_OFFSET + len]);
                self.send_one(peer, net, len);
                // Flush packets queued during the handshake: only this call does it.
                while let TunnResult::WriteToNetwork(b) = tunn.decapsulate(None, &[], &mut net[HEADER_LEN..]) {
                    let len = b.len();
                    self.send_one(peer, net, len);
                }
                false
            }
            TunnResult::WriteToTunnelV6(..) => {
                bump(&self.counters.source_filtered);
                false
            }
            TunnResult::Done => false,
            TunnResult::Err(e) => {
                bump(&self.counters.wg_rejected);
                tracing::debug!(peer = peer.node_id, error = ?e, "WireGuard rejected a datagram");
                false
            }
        }
    }

    fn timers(&self) {
        let mut out = vec![0u8; HEADER_LEN + 65535 + 64 + 148];
        let mut quiet = QuietWatch::default();
        loop {
            std::thread::sleep(TIMER_TICK);
            if let Some(bind) = self.relay.bind_due(Instant::now()) {
                let _ = self.udp.send(self.hub.get(), &bind, None);
            }
            let (mut tx, mut rx) = (0u64, 0u64);
            for peer in self.peers.all() {
                let result = {
                    let mut tunn = peer.tunn.lock();
                    let (_, ptx, prx, _, _) = tunn.stats();
                    tx = tx.wrapping_add(ptx as u64);
                    rx = rx.wrapping_add(prx as u64);
                    tunn.update_timers(&mut out[HEADER_LEN..])
                };
                match result {
                    TunnResult::WriteToNetwork(b) => {
                        let len = b.len();
                        self.send_one(&peer, &mut out, len);
                    }
                    TunnResult::Err(WireGuardError::ConnectionExpired) => {}
                    TunnResult::Err(e) => tracing::debug!(peer = peer.node_id, error = ?e, "timer error"),
                    _ => {}
                }
            }
            // Sent, but nothing back: maybe a new public address the hub does not know.
            if quiet.observe(tx, rx, Instant::now()) {
                tracing::debug!("sending into silence: binding again now");
                self.relay.refresh_now();
                if let Some(bind) = self.relay.bind_due(Instant::now()) {
                    let _ = self.udp.send(self.hub.get(), &bind, None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_destination_parses_and_rejects() {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[3] = 20;
        p[9] = 1;
        p[12..16].copy_from_slice(&[100, 64, 0, 1]);
        p[16..20].copy_from_slice(&[100, 64, 0, 2]);
        assert_eq!(ipv4_destination(&p), Some(Ipv4Addr::new(100, 64, 0, 2)));
        assert_eq!(ipv4_destination(&p[..10]), None);
        assert_eq!(ipv4_destination(&[0x60; 40]), None);
        assert_eq!(ipv4_destination(&[]), None);
    }
}
