//! The relay's UDP loop: thin I/O around [`super::relay::RelayTable`].

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use super::relay::{Drop, RelayStats, RelayTable};
use crate::proto::relay::{Header, Kind};

/// Largest datagram we accept (a WireGuard message for a 64 KiB packet plus headers).
const MAX_DATAGRAM: usize = 65535;

/// Receives, decides, forwards; forever. Runs on its own thread.
pub fn run(socket: UdpSocket, table: Arc<RwLock<RelayTable>>, stats: Arc<RelayStats>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "relay receive failed");
                continue;
            }
        };
        let datagram = &mut buf[..n];
        let kind = Header::parse(datagram).map(|(h, _)| h.kind);
        let result = match kind {
            Ok(Kind::Data) => table.read().unwrap().route_data(src, datagram).map(|dst| (dst, n)),
            Ok(Kind::Bind) => match table.write().unwrap().handle_bind(src, datagram) {
                Ok(reply) => {
                    stats.binds.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(&reply, src);
                    continue;
                }
                Err(d) => Err(d),
            },
            Ok(Kind::Bound) | Err(_) => Err(Drop::Malformed),
        };
        match result {
            Ok((dst, len)) => match socket.send_to(&buf[..len], dst) {
                Ok(_) => {
                    stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    stats.forwarded_bytes.fetch_add(len as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, %dst, "relay send failed");
                }
            },
            Err(d) => {
                stats.count_drop(d);
                tracing::trace!(%src, reason = ?d, "datagram dropped");
            }
        }
    }
}
