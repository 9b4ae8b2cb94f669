//! The node's packet loops: TUN → WireGuard → hub, hub → WireGuard → TUN, and the
//! timers (WireGuard's and the relay bind's). Each loop has its own thread and blocks
//! in its system call; they share only the peer table and the relay state.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::TunnResult;
use serde::Serialize;
use tun_rs::SyncDevice;

use super::peers::{Peer, PeerTable};
use super::relay_state::RelayState;
use crate::proto::relay::{write_data_header, Header, Kind, HEADER_LEN};

/// Largest IP packet read from the TUN, and so the largest we encrypt.
const MAX_PACKET: usize = 65535;
/// `Tunn::encapsulate` needs `src.len() + 32` (and at least 148) bytes of room.
const WG_OVERHEAD: usize = 32;
const BUF_LEN: usize = HEADER_LEN + MAX_PACKET + WG_OVERHEAD + 148;
/// boringtun's clock only moves when its timers are updated.
const TIMER_TICK: Duration = Duration::from_millis(250);

/// Packets that went nowhere, by reason. Malformed input is counted, never fatal.
#[derive(Debug, Default)]
pub struct Counters {
    pub tun_not_ipv4: AtomicU64,
    pub tun_no_peer: AtomicU64,
    pub hub_malformed: AtomicU64,
    pub hub_unknown_peer: AtomicU64,
    pub wg_rejected: AtomicU64,
    pub source_filtered: AtomicU64,
    pub send_errors: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct CountersSnapshot {
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

pub struct DataPath {
    pub tun: Arc<SyncDevice>,
    /// Connected to the hub: the kernel drops datagrams from anyone else.
    pub udp: Arc<UdpSocket>,
    pub peers: Arc<PeerTable>,
    pub relay: Arc<RelayState>,
    pub counters: Arc<Counters>,
}

impl DataPath {
    /// Starts the three loops on their own threads. They run until the process exits.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<()> {
        let spawn = |name: &str, f: fn(&DataPath)| {
            let dp = self.clone();
            std::thread::Builder::new().name(name.into()).spawn(move || f(&dp)).map(|_| ())
        };
        spawn("tun-to-hub", DataPath::tun_to_hub)?;
        spawn("hub-to-tun", DataPath::hub_to_tun)?;
        spawn("timers", DataPath::timers)?;
        Ok(())
    }

    /// Sends `out[HEADER_LEN..HEADER_LEN + len]` to `peer` through the hub.
    fn send_to(&self, peer: &Peer, out: &mut [u8], len: usize) {
        write_data_header(out, peer.node_id);
        if self.udp.send(&out[..HEADER_LEN + len]).is_err() {
            bump(&self.counters.send_errors);
        }
    }

    fn tun_to_hub(&self) {
        let mut packet = vec![0u8; MAX_PACKET];
        let mut out = vec![0u8; BUF_LEN];
        loop {
            let n = match self.tun.recv(&mut packet) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "TUN read failed; stopping the sender");
                    return;
                }
            };
            let packet = &packet[..n];
            let Some(dst) = ipv4_destination(packet) else {
                bump(&self.counters.tun_not_ipv4);
                continue;
            };
            let Some(peer) = self.peers.by_ip(dst) else {
                bump(&self.counters.tun_no_peer);
                continue;
            };
            let result = peer.tunn.lock().unwrap().encapsulate(packet, &mut out[HEADER_LEN..]);
            match result {
                TunnResult::WriteToNetwork(b) => {
                    let len = b.len();
                    self.send_to(&peer, &mut out, len);
                }
                TunnResult::Err(e) => tracing::debug!(peer = peer.node_id, error = ?e, "encapsulate failed"),
                _ => {}
            }
        }
    }

    fn hub_to_tun(&self) {
        let mut datagram = vec![0u8; BUF_LEN];
        let mut out = vec![0u8; BUF_LEN];
        loop {
            let n = match self.udp.recv(&mut datagram) {
                Ok(n) => n,
                // ECONNREFUSED and friends: the hub is away; keep listening.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let datagram = &datagram[..n];
            match Header::parse(datagram) {
                Ok((h, payload)) if h.kind == Kind::Data => match self.peers.by_id(h.node) {
                    Some(peer) => self.decapsulate(&peer, payload, &mut out),
                    None => bump(&self.counters.hub_unknown_peer),
                },
                Ok((h, _)) if h.kind == Kind::Bound => {
                    if !self.relay.on_bound(datagram, Instant::now()) {
                        bump(&self.counters.hub_malformed);
                    }
                }
                _ => bump(&self.counters.hub_malformed),
            }
        }
    }

    fn decapsulate(&self, peer: &Peer, payload: &[u8], out: &mut [u8]) {
        let mut tunn = peer.tunn.lock().unwrap();
        // The rate limiter keys cookies on the source address; every datagram comes
        // from the hub, so give it the peer's overlay address instead.
        let source = Some(IpAddr::V4(peer.overlay_ip));
        let mut result = tunn.decapsulate(source, payload, &mut out[HEADER_LEN..]);
        loop {
            match result {
                TunnResult::WriteToNetwork(b) => {
                    let len = b.len();
                    self.send_to(peer, out, len);
                    // Flush packets queued during the handshake: only this call does it.
                    result = tunn.decapsulate(None, &[], &mut out[HEADER_LEN..]);
                }
                TunnResult::WriteToTunnelV4(packet, src) => {
                    // Cryptokey routing: a peer may only speak for its own address.
                    if src == peer.overlay_ip {
                        let _ = self.tun.send(packet);
                    } else {
                        bump(&self.counters.source_filtered);
                    }
                    return;
                }
                TunnResult::WriteToTunnelV6(..) => {
                    bump(&self.counters.source_filtered);
                    return;
                }
                TunnResult::Done => return,
                TunnResult::Err(e) => {
                    bump(&self.counters.wg_rejected);
                    tracing::debug!(peer = peer.node_id, error = ?e, "WireGuard rejected a datagram");
                    return;
                }
            }
        }
    }

    fn timers(&self) {
        let mut out = vec![0u8; BUF_LEN];
        loop {
            std::thread::sleep(TIMER_TICK);
            if let Some(bind) = self.relay.bind_due(Instant::now()) {
                let _ = self.udp.send(&bind);
            }
            for peer in self.peers.all() {
                let result = peer.tunn.lock().unwrap().update_timers(&mut out[HEADER_LEN..]);
                match result {
                    TunnResult::WriteToNetwork(b) => {
                        let len = b.len();
                        self.send_to(&peer, &mut out, len);
                    }
                    TunnResult::Err(WireGuardError::ConnectionExpired) => {}
                    TunnResult::Err(e) => tracing::debug!(peer = peer.node_id, error = ?e, "timer error"),
                    _ => {}
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
