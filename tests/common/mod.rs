//! What several integration tests share.
//!
//! Ports: a test that asks the kernel for a free port (bind to port 0, read it, close)
//! and hands it to a hub races every other test running beside it: the kernel hands the
//! same ephemeral ports to outgoing connections, and a port free for UDP may be taken for
//! TCP (the hub binds both on one port). Under CI load that lost a run ("cannot listen on
//! TCP …: Address already in use"). So ports come from below the kernel's ephemeral range
//! (which starts at 32768 by default), each handed out once per test process, from a
//! window that depends on the process id, and only when both TCP and UDP bind on it now.
#![allow(dead_code)] // each test binary uses a part

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};

/// The ports handed out: `BASE..BASE + SPAN`, below the ephemeral range.
const BASE: u16 = 20_000;
const SPAN: u16 = 12_000;

static NEXT: AtomicU16 = AtomicU16::new(0);

/// A loopback port free for both TCP and UDP now, handed out once in this process.
pub fn free_port() -> u16 {
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = BASE + offset;
        let both_free = TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if both_free {
            return port;
        }
    }
    panic!("no free loopback port in {BASE}..{}", BASE + SPAN);
}

/// [`free_port`] as a loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
