//! Batched UDP for the fast path: `recvmmsg` with UDP GRO and `sendmsg` with UDP GSO
//! (both through `quinn-udp`), `sendmmsg` for many small datagrams to different
//! destinations (written here: quinn-udp has no `sendmmsg`), and the runtime switches
//! that turn each offload off.
//!
//! The socket is non-blocking (quinn-udp needs that); the calls here wait in `poll`
//! when the kernel has nothing to give or no room to take, so callers can treat them
//! as blocking.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};

/// Receive buffers per `recvmmsg` (quinn-udp's batch size on Linux).
pub const RECV_BATCH: usize = quinn_udp::BATCH_SIZE;
/// Size of one receive buffer: a whole GRO batch (64 KiB of datagrams).
pub const RECV_BUF: usize = 65536;
/// Largest datagram count in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 on
/// older kernels).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Largest total payload of one GSO send.
pub const MAX_GSO_BYTES: usize = 65000;

/// Which offloads are on (derived from the tuning knobs, see [`UdpTuning`] and
/// `node::settings::DataPathTuning`): what `mcvpn status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Offloads {
    pub tun: bool,
    pub udp_gso: bool,
    pub udp_gro: bool,
}

/// The knobs of a batched UDP socket, shared by the hub's relay and the nodes. Each
/// offload has an off switch because kernels have shipped UDP-GSO corruption and
/// TUN-GSO `EINVAL` bugs. Read from the environment only by the command line (clap's
/// `env`), then passed down.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UdpTuning {
    /// Every offload (UDP GSO and GRO, and a node's TUN offload): `off` (or 0, no,
    /// false) turns them all off, whatever the switches below say
    #[arg(long = "offload", env = "MCVPN_OFFLOAD", value_name = "on|off", default_value = "on",
        value_parser = parse_switch, action = clap::ArgAction::Set, help_heading = "Data path tuning")]
    pub offload: bool,
    /// UDP GSO: many datagrams per send (`off` sends them one by one)
    #[arg(long = "udp-gso", env = "MCVPN_UDP_GSO", value_name = "on|off", default_value = "on",
        value_parser = parse_switch, action = clap::ArgAction::Set, help_heading = "Data path tuning")]
    pub udp_gso: bool,
    /// UDP GRO: many datagrams per receive buffer (`off` receives them one by one)
    #[arg(long = "udp-gro", env = "MCVPN_UDP_GRO", value_name = "on|off", default_value = "on",
        value_parser = parse_switch, action = clap::ArgAction::Set, help_heading = "Data path tuning")]
    pub udp_gro: bool,
    /// How long a packet loop keeps polling without sleeping before it blocks, in µs. A
    /// little spinning saves the wake-up latency of a sleeping vCPU on each hop of a
    /// request/response exchange, at the cost of CPU while traffic flows (a value that
    /// is not a number counts as 0)
    #[arg(long = "spin-us", env = "MCVPN_SPIN_US", value_name = "MICROSECONDS", default_value = "0",
        value_parser = parse_spin_us, help_heading = "Data path tuning")]
    pub spin_us: u64,
}

impl Default for UdpTuning {
    /// The command line's defaults: every offload on, no spinning.
    fn default() -> UdpTuning {
        UdpTuning {
            offload: true,
            udp_gso: true,
            udp_gro: true,
            spin_us: 0,
        }
    }
}

impl UdpTuning {
    /// Whether UDP GSO may be used (the kernel may still refuse it).
    pub fn udp_gso(&self) -> bool {
        self.offload && self.udp_gso
    }

    pub fn udp_gro(&self) -> bool {
        self.offload && self.udp_gro
    }

    /// How long a wait polls before it sleeps (`wait_readable`).
    pub fn spin(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.spin_us)
    }
}

/// An offload switch: `0`, `off`, `no` and `false` (around spaces) turn it off,
/// anything else leaves it on, as the environment switches always did.
pub fn parse_switch(value: &str) -> Result<bool, String> {
    Ok(!matches!(value.trim(), "0" | "off" | "no" | "false"))
}

/// `MCVPN_SPIN_US`: microseconds; anything that is not a number counts as 0, as it
/// always did (with a warning now, since logging is not set up yet when it is parsed).
fn parse_spin_us(value: &str) -> Result<u64, String> {
    Ok(value.parse().unwrap_or_else(|_| {
        eprintln!("mcvpn: warning: MCVPN_SPIN_US / --spin-us {value:?} is not a number of microseconds; using 0");
        0
    }))
}

/// Waits until `fd` is readable: first by polling without sleeping for up to `spin`,
/// then by sleeping in `poll` (at most a second, so callers see time pass).
pub fn wait_readable(fd: i32, spin: std::time::Duration) -> io::Result<()> {
    if !spin.is_zero() {
        let start = std::time::Instant::now();
        while start.elapsed() < spin {
            if wait(fd, libc::POLLIN, 0)? {
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }
    wait(fd, libc::POLLIN, 1000).map(|_| ())
}

/// Waits until `a` or `b` is readable, or a second passes: which of them are.
pub fn wait_either(a: i32, b: i32) -> io::Result<(bool, bool)> {
    let pollin = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut pfds = [pollin(a), pollin(b)];
    poll(&mut pfds, 1000)?;
    // An error or hang-up counts as readable: the read that follows reports it.
    Ok((pfds[0].revents != 0, pfds[1].revents != 0))
}

/// Waits until `fd` is readable (`POLLIN`) or writable (`POLLOUT`), or `timeout_ms` pass.
fn wait(fd: i32, events: i16, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = [libc::pollfd { fd, events, revents: 0 }];
    Ok(poll(&mut pfd, timeout_ms)? > 0)
}

/// `poll(2)` on `pfds`: how many are ready, 0 on timeout or when a signal came first.
fn poll(pfds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `pfds` is a valid slice of pollfds and its length is passed with it.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if r >= 0 {
        return Ok(r as usize);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::Interrupted {
        Ok(0)
    } else {
        Err(e)
    }
}

pub struct BatchUdp {
    pub socket: UdpSocket,
    state: UdpSocketState,
    gso: bool,
    spin: std::time::Duration,
}

impl BatchUdp {
    pub fn new(socket: UdpSocket, tuning: &UdpTuning) -> io::Result<BatchUdp> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        if !tuning.udp_gro() {
            set_udp_gro(&socket, false);
        }
        let gso = tuning.udp_gso() && state.max_gso_segments() > 1;
        Ok(BatchUdp {
            socket,
            state,
            gso,
            spin: tuning.spin(),
        })
    }

    pub fn gso(&self) -> bool {
        self.gso && self.state.max_gso_segments() > 1
    }

    /// Receives up to `bufs.len()` buffers (each possibly a GRO batch: datagrams at
    /// `meta.stride`), waiting for the first. Returns how many were filled.
    pub fn recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        loop {
            match self.try_recv(bufs, meta)? {
                0 => wait_readable(self.socket.as_raw_fd(), self.spin)?,
                n => return Ok(n),
            }
        }
    }

    /// Like [`BatchUdp::recv`], but returns 0 at once when nothing is there.
    pub fn try_recv(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> io::Result<usize> {
        match self.state.recv(UdpSockRef::from(&self.socket), bufs, meta) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        }
    }

    /// Sends `contents` to `dst`: one datagram, or with `segment` a GSO batch of
    /// datagrams of that size (the last may be shorter). Without GSO the batch goes
    /// out datagram by datagram.
    pub fn send(&self, dst: SocketAddr, contents: &[u8], segment: Option<usize>) -> io::Result<()> {
        match segment {
            Some(seg) if contents.len() > seg && !self.gso() => {
                for chunk in contents.chunks(seg) {
                    self.send_transmit(dst, chunk, None)?;
                }
                Ok(())
            }
            Some(seg) if contents.len() > seg => self.send_transmit(dst, contents, Some(seg)),
            _ => self.send_transmit(dst, contents, None),
        }
    }

    fn send_transmit(&self, dst: SocketAddr, contents: &[u8], segment: Option<usize>) -> io::Result<()> {
        let t = Transmit {
            destination: dst,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        for _ in 0..100 {
            match self.state.try_send(UdpSockRef::from(&self.socket), &t) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(self.socket.as_raw_fd(), libc::POLLOUT, 10)?;
                }
                // quinn-udp turned GSO off after an EIO/EINVAL: send the batch singly.
                Err(e) if segment.is_some() && self.state.max_gso_segments() <= 1 => {
                    tracing::warn!(error = %e, "UDP GSO failed; sending without it from now on");
                    for chunk in contents.chunks(segment.unwrap_or(contents.len())) {
                        self.send_transmit(dst, chunk, None)?;
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "socket send buffer stayed full",
        ))
    }

    /// Sends many single datagrams, each to its own destination, with `sendmmsg`.
    /// Returns how many went out (the rest met a full buffer or an error).
    pub fn send_many(&self, datagrams: &[(SocketAddr, &[u8])]) -> usize {
        let mut sent = 0;
        while sent < datagrams.len() {
            match sendmmsg(self.socket.as_raw_fd(), &datagrams[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !matches!(wait(self.socket.as_raw_fd(), libc::POLLOUT, 10), Ok(true)) {
                        break;
                    }
                }
                // One bad destination must not stall the rest: skip it.
                Err(_) => sent += 1,
            }
        }
        sent
    }
}

/// Turns UDP GRO on or off on a socket (quinn-udp turns it on).
fn set_udp_gro(socket: &UdpSocket, on: bool) {
    let v: libc::c_int = on as libc::c_int;
    // SAFETY: setsockopt with a valid fd and a live c_int.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// `sendmmsg(2)` over `(destination, datagram)` pairs, at most 64 per call: how many
/// went out (the kernel stops at the first it cannot send), or the error when not even
/// the first could. Public for the relay load test (crates/mcvpn-bench), which counts
/// the errors that [`BatchUdp::send_many`] absorbs.
pub fn sendmmsg(fd: i32, datagrams: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    const MAX: usize = 64;
    let n = datagrams.len().min(MAX);
    // SAFETY: sockaddr_storage is plain old data (integers and byte arrays): all zeroes
    // is a valid value of it (family AF_UNSPEC), and only the entries filled in below
    // are handed to the kernel.
    let mut addrs: [libc::sockaddr_storage; MAX] = unsafe { std::mem::zeroed() };
    // SAFETY: iovec is a pointer and a length; the all-zero value (null, 0) is valid
    // for the type, and every entry passed to the kernel is overwritten below.
    let mut iovs: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
    // SAFETY: mmsghdr is integers and raw pointers, for which all zeroes (null
    // pointers, zero lengths and flags) is valid; it is the documented way to start a
    // msghdr, and the kernel reads only the first `n`, whose fields are set below.
    let mut hdrs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        let (dst, data) = datagrams[i];
        let len = socket_addr_to_raw(dst, &mut addrs[i]);
        iovs[i] = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        hdrs[i].msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut libc::c_void;
        hdrs[i].msg_hdr.msg_namelen = len;
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdrs[..n]` point at `addrs`, `iovs` and the callers' slices, all alive
    // for the duration of the call.
    let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as u32, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn socket_addr_to_raw(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(out as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(out as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Splits a run of datagram lengths (in send order) into GSO batches: each batch is
/// datagrams of one size, except that its last may be shorter, with at most
/// `max_segments` datagrams and `max_bytes` in all. Returns `(first, end, segment)`
/// index ranges.
pub fn gso_runs(lens: &[usize], max_segments: usize, max_bytes: usize) -> Vec<(usize, usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < lens.len() {
        let seg = lens[i];
        let mut end = i + 1;
        let mut bytes = seg;
        while end < lens.len() && end - i < max_segments && bytes + lens[end] <= max_bytes {
            let l = lens[end];
            if l > seg {
                break;
            }
            end += 1;
            bytes += l;
            if l < seg {
                break; // a shorter datagram ends the batch
            }
        }
        runs.push((i, end, seg));
        i = end;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runs_break_on_bigger_after_shorter_and_limits() {
        assert_eq!(gso_runs(&[], 64, 65000), vec![]);
        assert_eq!(gso_runs(&[100, 100, 100, 40], 64, 65000), vec![(0, 4, 100)]);
        assert_eq!(gso_runs(&[100, 40, 100], 64, 65000), vec![(0, 2, 100), (2, 3, 100)]);
        assert_eq!(gso_runs(&[100, 150, 150], 64, 65000), vec![(0, 1, 100), (1, 3, 150)]);
        assert_eq!(gso_runs(&[10; 5], 2, 65000), vec![(0, 2, 10), (2, 4, 10), (4, 5, 10)]);
        assert_eq!(gso_runs(&[10; 5], 64, 25), vec![(0, 2, 10), (2, 4, 10), (4, 5, 10)]);
    }

    /// `wait_either` says which of two real loopback sockets has a datagram, and
    /// `try_recv` returns 0 at once on an empty socket instead of waiting.
    #[test]
    fn wait_either_and_try_recv_on_loopback() {
        let bind = || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let (a, b) = (bind(), bind());
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = b.local_addr().unwrap();
        let b = BatchUdp::new(b, &UdpTuning::default()).unwrap();
        let mut buf = vec![0u8; RECV_BUF];
        let mut meta = [RecvMeta::default(); 1];

        let mut iov = [IoSliceMut::new(&mut buf)];
        assert_eq!(b.try_recv(&mut iov, &mut meta).unwrap(), 0, "nothing sent yet");

        sender.send_to(b"hello", b_addr).unwrap();
        let ready = wait_either(a.as_raw_fd(), b.socket.as_raw_fd()).unwrap();
        assert_eq!(ready, (false, true));
        let mut iov = [IoSliceMut::new(&mut buf)];
        assert_eq!(b.try_recv(&mut iov, &mut meta).unwrap(), 1);
        assert_eq!(&buf[..meta[0].len], b"hello");
    }

    proptest! {
        #[test]
        fn runs_cover_everything_in_order_and_obey_gso_rules(
            lens in proptest::collection::vec(1usize..1500, 0..300),
            max_seg in 1usize..80,
        ) {
            let runs = gso_runs(&lens, max_seg, 65000);
            let mut next = 0;
            for (a, b, seg) in runs {
                prop_assert_eq!(a, next);
                prop_assert!(b > a && b - a <= max_seg);
                prop_assert_eq!(seg, lens[a]);
                let run = &lens[a..b];
                prop_assert!(run[..run.len() - 1].iter().all(|&l| l == seg));
                prop_assert!(run[run.len() - 1] <= seg);
                prop_assert!(b - a == 1 || run.iter().sum::<usize>() <= 65000);
                next = b;
            }
            prop_assert_eq!(next, lens.len());
        }
    }
}
