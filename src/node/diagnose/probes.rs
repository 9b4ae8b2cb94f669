//! The I/O of `mcvpn diagnose`: each function looks at one thing and returns a
//! [`Finding`]. Time limits are short and fixed, so a whole run takes seconds even
//! when everything is down.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{since_ms, Finding};
use crate::node::proxy::Proxy;
use crate::proto::relay::{parse_echo_reply, write_echo, ECHO_MAX_LEN, ECHO_MIN_LEN};
use crate::proto::url::HubUrl;

const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Three SYNs (at 0, 1 and 3 s) fit in it: one lost SYN is not a failure.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
const HTTPS_TIMEOUT: Duration = Duration::from_secs(8);
/// How long one echo waits for its answer before it counts as lost.
const ECHO_WAIT: Duration = Duration::from_millis(250);
/// Echoes of one MTU size: rounds of two, so that a lossy path still gets one through.
const MTU_ROUNDS: u32 = 3;
/// IP packet sizes the MTU check tries, largest first: Ethernet, PPPoE, common tunnels and
/// mobile links, IPv6's minimum, and below. The kernel's own path MTU (after an ICMP
/// "fragmentation needed") is tried as soon as it is known.
const MTU_SIZES: [u16; 17] = [
    1500, 1492, 1480, 1460, 1440, 1420, 1400, 1380, 1360, 1340, 1320, 1300, 1280, 1200, 1000, 800, 576,
];
/// Echoes of the loss check go out this far apart.
const LOSS_INTERVAL: Duration = Duration::from_millis(20);

/// Resolves `host` (an address needs no lookup). Returns the finding and the addresses.
pub fn resolve(host: &str, port: u16) -> (Finding, Vec<SocketAddr>) {
    if let Ok(ip) = host.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        return (
            Finding::AddressLiteral {
                address: ip.to_string(),
            },
            vec![addr],
        );
    }
    let started = Instant::now();
    // getaddrinfo cannot be given a time limit: it runs on a thread we stop waiting for.
    let (tx, rx) = std::sync::mpsc::channel();
    let name = (host.to_string(), port);
    std::thread::spawn(move || {
        let _ = tx.send(name.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    });
    match rx.recv_timeout(RESOLVE_TIMEOUT) {
        Ok(Ok(addrs)) if !addrs.is_empty() => (
            Finding::Resolved {
                addresses: addrs.iter().map(|a| a.ip().to_string()).collect(),
                ms: since_ms(started),
            },
            addrs,
        ),
        Ok(Ok(_)) => (
            Finding::ResolveFailed {
                error: "the name has no address".into(),
            },
            vec![],
        ),
        Ok(Err(e)) => (Finding::ResolveFailed { error: e.to_string() }, vec![]),
        Err(_) => (
            Finding::ResolveFailed {
                error: format!("no answer from the resolver within {} s", RESOLVE_TIMEOUT.as_secs()),
            },
            vec![],
        ),
    }
}

/// TCP to the control port: every address in turn until one connects.
pub fn tcp(addrs: &[SocketAddr]) -> Finding {
    let mut last = None;
    for addr in addrs {
        let started = Instant::now();
        match TcpStream::connect_timeout(addr, TCP_TIMEOUT) {
            Ok(_) => {
                return Finding::TcpConnected {
                    address: addr.to_string(),
                    ms: since_ms(started),
                }
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) if e.kind() == io::ErrorKind::ConnectionRefused => Finding::TcpRefused {
            address: addr.to_string(),
        },
        Some((addr, e)) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
            Finding::TcpTimeout {
                address: addr.to_string(),
                secs: TCP_TIMEOUT.as_secs(),
            }
        }
        Some((addr, e)) => Finding::TcpError {
            address: addr.to_string(),
            error: e.to_string(),
        },
        None => Finding::TcpError {
            address: String::new(),
            error: "no address".into(),
        },
    }
}

/// `GET /` on the HTTPS port (through the proxy if any). Also returns the hub's clock
/// minus ours from its `Date` header, in ms (to the second).
pub fn https(hub: &HubUrl, proxy: Option<&Proxy>) -> (Finding, Option<i64>) {
    let address = hub.https_authority();
    let proxy_name = proxy.map(|p| p.url.authority());
    let started = Instant::now();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return (
                Finding::HttpsFailed {
                    address,
                    proxy: proxy_name,
                    error: e.to_string(),
                },
                None,
            )
        }
    };
    let answer = runtime.block_on(crate::node::https::fetch_front_page(hub, proxy, HTTPS_TIMEOUT));
    let received = SystemTime::now();
    match answer {
        Ok(page) if page.status == 200 => {
            let skew = page
                .date
                .as_deref()
                .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                .map(|hub_time| hub_time.timestamp_millis() - unix_ms(received) as i64);
            (
                Finding::HttpsOk {
                    address,
                    proxy: proxy_name,
                    ms: since_ms(started),
                },
                skew,
            )
        }
        Ok(page) => (
            Finding::HttpsStatus {
                address,
                proxy: proxy_name,
                status: page.status,
            },
            None,
        ),
        Err(e) => (
            Finding::HttpsFailed {
                address,
                proxy: proxy_name,
                error: e.to_string(),
            },
            None,
        ),
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One answered echo.
#[derive(Debug, Clone, Copy)]
pub struct EchoAnswer {
    pub rtt: Duration,
    /// The hub's clock minus ours at the middle of the round trip.
    pub skew_ms: i64,
}

/// A UDP socket connected to the hub's relay port, for its unauthenticated echo, with
/// the Don't Fragment bit set (IP_PMTUDISC_DO): an echo larger than the path is lost
/// (or refused at once when the kernel already knows the path's MTU), never fragmented.
pub struct Echo {
    sock: UdpSocket,
    hub: SocketAddr,
    next_nonce: u64,
}

/// Why an echo did not go out.
enum SendError {
    /// Larger than the path MTU the kernel knows (EMSGSIZE).
    TooBig,
    Other,
}

impl Echo {
    pub fn open(hub: SocketAddr) -> io::Result<Echo> {
        let bind: SocketAddr = match hub {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(bind)?;
        sock.connect(hub)?;
        set_dont_fragment(&sock, hub.is_ipv4())?;
        Ok(Echo {
            sock,
            hub,
            next_nonce: rand::random(),
        })
    }

    fn send(&mut self, ip_size: u16) -> Result<u64, SendError> {
        let payload = usize::from(ip_size).saturating_sub(usize::from(super::ip_udp_overhead(self.hub.ip())));
        let mut buf = vec![0u8; payload.clamp(ECHO_MIN_LEN, ECHO_MAX_LEN)];
        self.next_nonce = self.next_nonce.wrapping_add(1);
        let nonce = self.next_nonce;
        write_echo(&mut buf, nonce);
        // An ICMP error for an earlier echo ("fragmentation needed" for the one that was
        // too big, "port unreachable") waits on the socket and would fail this send:
        // reading SO_ERROR clears it.
        let _ = nix::sys::socket::getsockopt(&self.sock, nix::sys::socket::sockopt::SocketError);
        match self.sock.send(&buf) {
            Ok(_) => Ok(nonce),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Err(SendError::TooBig),
            Err(_) => Err(SendError::Other),
        }
    }

    /// Waits until `deadline` for an answer to one of `nonces`; returns its nonce, the
    /// hub's clock and when it came.
    fn receive(&self, nonces: &[u64], deadline: Instant) -> Option<(u64, u64, Instant)> {
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).ok()?;
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some((nonce, hub_ms)) = parse_echo_reply(&buf[..n]) {
                        if nonces.contains(&nonce) {
                            return Some((nonce, hub_ms, Instant::now()));
                        }
                    }
                }
                // ICMP errors (port unreachable: the hub is down) come back as errors on a
                // connected socket: keep waiting until the deadline, the answer will not come.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => return None,
                Err(_) => std::thread::sleep(Duration::from_millis(10).min(left)),
            }
        }
    }

    /// The smallest echo, up to `tries` times: the first answer.
    pub fn first_answer(&mut self, tries: u32) -> Option<EchoAnswer> {
        for _ in 0..tries {
            let sent_wall = unix_ms(SystemTime::now());
            let sent = Instant::now();
            let Ok(nonce) = self.send(0) else {
                std::thread::sleep(ECHO_WAIT);
                continue;
            };
            if let Some((_, hub_ms, at)) = self.receive(&[nonce], sent + ECHO_WAIT) {
                let rtt = at - sent;
                let middle = sent_wall + (rtt.as_millis() as u64) / 2;
                return Some(EchoAnswer {
                    rtt,
                    skew_ms: hub_ms as i64 - middle as i64,
                });
            }
        }
        None
    }

    /// The largest IP packet size (from [`MTU_SIZES`] and the kernel's path MTU) whose
    /// echo came back, or None if none did.
    pub fn path_mtu(&mut self) -> Option<u16> {
        let mut size = MTU_SIZES[0];
        loop {
            match self.try_size(size) {
                Ok(true) => return Some(size),
                Ok(false) | Err(SendError::TooBig) | Err(SendError::Other) => {}
            }
            // The kernel may have learnt the path's MTU from an ICMP "fragmentation
            // needed" meanwhile: try exactly that next, else the next size down.
            let next_listed = MTU_SIZES.iter().copied().find(|s| *s < size)?;
            size = match self.kernel_path_mtu() {
                Some(known) if known < size => known,
                _ => next_listed,
            };
        }
    }

    fn try_size(&mut self, size: u16) -> Result<bool, SendError> {
        for _ in 0..MTU_ROUNDS {
            let nonces = [self.send(size)?, self.send(size)?];
            if self.receive(&nonces, Instant::now() + ECHO_WAIT + ECHO_WAIT).is_some() {
                return Ok(true);
            }
            if self.kernel_path_mtu().is_some_and(|known| known < size) {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// IP_MTU / IPV6_MTU of the connected socket: the path MTU the kernel knows.
    fn kernel_path_mtu(&self) -> Option<u16> {
        let (level, name) = if self.hub.is_ipv4() {
            (libc::IPPROTO_IP, libc::IP_MTU)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU)
        };
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the fd is the live socket `self.sock` owns; `value` and `len` are valid
        // for writes of the size given, as getsockopt requires.
        let rc = unsafe {
            libc::getsockopt(
                self.sock.as_raw_fd(),
                level,
                name,
                std::ptr::addr_of_mut!(value).cast(),
                &mut len,
            )
        };
        (rc == 0).then(|| u16::try_from(value).ok()).flatten()
    }

    /// `count` small echoes, [`LOSS_INTERVAL`] apart; answers counted until a second
    /// after the last one.
    pub fn loss(&mut self, count: u32) -> Finding {
        let mut sent_at: std::collections::HashMap<u64, Instant> = std::collections::HashMap::new();
        let mut rtts: Vec<Duration> = Vec::new();
        let mut buf = [0u8; 2048];
        let mut collect = |sock: &UdpSocket, sent_at: &std::collections::HashMap<u64, Instant>, until: Instant| loop {
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return;
            };
            if sock.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some((nonce, _)) = parse_echo_reply(&buf[..n]) {
                        if let Some(t) = sent_at.get(&nonce) {
                            rtts.push(t.elapsed());
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => return,
                Err(_) => std::thread::sleep(Duration::from_millis(5).min(left)),
            }
        };
        for _ in 0..count {
            let at = Instant::now();
            if let Ok(nonce) = self.send(0) {
                sent_at.insert(nonce, at);
            }
            collect(&self.sock, &sent_at, at + LOSS_INTERVAL);
        }
        collect(&self.sock, &sent_at, Instant::now() + Duration::from_secs(1));
        let received = rtts.len().min(count as usize) as u32;
        let ms = |d: &Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
        let (min, max) = (
            rtts.iter().min().map(ms).unwrap_or(0.0),
            rtts.iter().max().map(ms).unwrap_or(0.0),
        );
        let avg = if rtts.is_empty() {
            0.0
        } else {
            (rtts.iter().map(|d| d.as_secs_f64()).sum::<f64>() / rtts.len() as f64 * 10_000.0).round() / 10.0
        };
        Finding::Loss {
            sent: count,
            received,
            loss_pct: if count == 0 {
                0.0
            } else {
                ((count - received) as f64 * 1000.0 / count as f64).round() / 10.0
            },
            min_ms: min,
            avg_ms: avg,
            max_ms: max,
        }
    }
}

/// IP_PMTUDISC_DO (IPV6_PMTUDISC_DO): the Don't Fragment bit on every datagram, and
/// EMSGSIZE for one larger than the path MTU the kernel knows.
fn set_dont_fragment(sock: &UdpSocket, ipv4: bool) -> io::Result<()> {
    let (level, name, value) = if ipv4 {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_DO)
    };
    // SAFETY: the fd is the live socket `sock` owns; the option value is a c_int on the
    // stack, passed with its exact size; setsockopt only reads it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn root() -> Finding {
    if is_root() {
        Finding::Root
    } else {
        Finding::NotRoot
    }
}

/// `/dev/net/tun`: there, a character device, and (as root) openable.
pub fn tun(as_root: bool) -> Finding {
    use std::os::unix::fs::FileTypeExt;
    let path = std::path::Path::new("/dev/net/tun");
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Finding::TunMissing,
        Err(e) => Finding::TunOpenFailed { error: e.to_string() },
        Ok(m) if !m.file_type().is_char_device() => Finding::TunNotDevice,
        Ok(_) if !as_root => Finding::TunOk { opened: false },
        Ok(_) => match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => Finding::TunOk { opened: true },
            Err(e) => Finding::TunOpenFailed { error: e.to_string() },
        },
    }
}

/// Routes that overlap the overlay network on another interface than the tunnel's.
pub fn routes(overlay: (Ipv4Addr, u8), iface: &str) -> Finding {
    let shown = format!("{}/{}", overlay.0, overlay.1);
    match std::fs::read_to_string("/proc/net/route") {
        Ok(table) => {
            let conflicts = conflicting_routes(&table, overlay, iface);
            if conflicts.is_empty() {
                Finding::RoutesClear { overlay: shown }
            } else {
                Finding::RouteConflict {
                    overlay: shown,
                    routes: conflicts,
                }
            }
        }
        Err(e) => Finding::RoutesUnreadable { error: e.to_string() },
    }
}

/// Reads `/proc/net/route` (the kernel's IPv4 main table: interface, destination and
/// mask as hex numbers) and returns, as `dest/len dev IFACE`, every route other than
/// the default and `iface`'s own that overlaps `overlay`. Parsed by hand: the format is
/// fixed and eleven columns; a netlink crate would be a large dependency for one read.
pub fn conflicting_routes(table: &str, overlay: (Ipv4Addr, u8), iface: &str) -> Vec<String> {
    let mask_of = |len: u8| {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len.min(32)))
        }
    };
    let (net, len) = (u32::from(overlay.0), overlay.1);
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 8 {
            continue;
        }
        // The kernel prints the network-order address as a host-order number: its bytes
        // in host order are the address's bytes.
        let hex = |s: &str| {
            u32::from_str_radix(s, 16)
                .ok()
                .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
        };
        let (Some(dest), Some(mask)) = (hex(cols[1]), hex(cols[7])) else {
            continue;
        };
        let route_len = mask.count_ones() as u8;
        if route_len == 0 || cols[0] == iface {
            continue;
        }
        let shorter = mask_of(len.min(route_len));
        if dest & shorter == net & shorter {
            out.push(format!("{}/{} dev {}", Ipv4Addr::from(dest), route_len, cols[0]));
        }
    }
    out
}

/// `uname -srm`.
pub fn system() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} {}",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(_) => "unknown".into(),
    }
}
