//! The hub's HTTPS port (issue 12): TLS 1.3 on TCP (default 443), one HTTP/1.1 request
//! per connection, which is either a short page (`GET /`, so a probe sees a web server)
//! or the WebSocket upgrade on [`crate::stream::WS_PATH`] that makes the connection a
//! node's link ([`crate::stream::link`]): its control part served by
//! [`control::handle`] like a TCP control connection, its datagrams bridged to the
//! relay's own UDP socket over loopback.
//!
//! Pre-authentication: every accepted connection takes a slot in the same budget as the
//! TCP control port ([`Preauth`]), and the TLS handshake, the request head and what
//! follows until the link proves itself all run within the slot's deadline (counted
//! from accept). A link proves itself one of two ways ([`prove`]):
//!
//! - its first control bytes: the slot goes with them to [`control::handle`], which
//!   keeps it until the login, exactly as for a TCP connection;
//! - the relay answers a bind that came through it with `Bound` (a node's data-only
//!   link): the slot is freed.
//!
//! Until then the link costs one slot, one loopback socket and the link's buffers, and
//! is closed at the deadline or when evicted for a newer connection.

pub mod http;
pub mod tls;

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use serde::Serialize;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::console::{Console, ConsoleLimits};
use super::context::HubContext;
use super::control;
use super::preauth::{AcceptBackoff, Preauth, PreauthEnd, PreauthGuard};
use crate::stream::link::{self, BridgeBuffers, ControlEnd, LinkStats, LoopbackEnd};

pub use self::tls::TlsFiles;

/// The default HTTPS listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:443";

/// The control pipe between a link and its control connection task: room for a few
/// Noise messages (at most 64 KiB each) in flight.
const CONTROL_PIPE: usize = 64 * 1024;

/// The kernel buffers of each accepted TCP connection. Big enough for a node's bulk
/// transfer across a long path (1 Gbit/s × 30 ms), small enough that thousands of links
/// cannot pin much: the kernel allocates them as data queues, not up front.
const TCP_BUFFER: usize = 4 << 20;

/// The loopback socket's buffers per link: what queues between the relay and a link
/// whose TCP connection is slower. 1 MiB is 8 ms at 1 Gbit/s; more would only add delay
/// before the drops that tell the tunnelled TCP to slow down.
const LOOPBACK_BUFFER: usize = 1 << 20;

/// `--https-listen` and the certificate: `HubSettings::https`, None when off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSettings {
    pub listen: SocketAddr,
    /// The operator's certificate; None: the hub's own, made on first start.
    pub tls: Option<TlsFiles>,
    /// The web console's budget and login lifetimes (`/console/`).
    pub console: ConsoleLimits,
}

/// The HTTPS port's counters, for `mcvpn hub stats` (`"https"`).
#[derive(Debug, Default)]
pub struct HttpsStats {
    links_open: AtomicU64,
    links_total: AtomicU64,
    /// Links closed before they proved themselves (deadline or eviction).
    links_unproven: AtomicU64,
    pages: AtomicU64,
    not_found: AtomicU64,
    upgrades_refused: AtomicU64,
    /// Oversized or malformed request heads.
    bad_requests: AtomicU64,
    tls_failures: AtomicU64,
    /// Summed over all links.
    pub link: LinkStats,
}

/// What `mcvpn hub stats --json` shows under `"https"`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HttpsSnapshot {
    pub listen: SocketAddr,
    pub links_open: u64,
    pub links_total: u64,
    pub links_unproven: u64,
    pub pages: u64,
    pub not_found: u64,
    pub upgrades_refused: u64,
    pub bad_requests: u64,
    pub tls_failures: u64,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub malformed: u64,
    pub udp_send_errors: u64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One open link in `links_open`, for as long as it lives.
struct OpenLink<'a>(&'a HttpsStats);

impl<'a> OpenLink<'a> {
    fn new(stats: &'a HttpsStats) -> Self {
        bump(&stats.links_open);
        bump(&stats.links_total);
        OpenLink(stats)
    }
}

impl Drop for OpenLink<'_> {
    fn drop(&mut self) {
        self.0.links_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The HTTPS port, bound (at start-up, so that a refused port stops the hub with a
/// clear error) and ready to serve.
pub struct HttpsPort {
    listener: TcpListener,
    tls: TlsAcceptor,
    console: ConsoleLimits,
    pub stats: Arc<HttpsStats>,
}

/// What every connection of the port shares.
struct Shared {
    tls: TlsAcceptor,
    ctx: Arc<HubContext>,
    preauth: Arc<Preauth>,
    /// The relay's UDP socket, where links bridge their datagrams.
    relay: SocketAddr,
    stats: Arc<HttpsStats>,
    console: Arc<Console>,
}

impl HttpsPort {
    /// Binds `settings.listen` and prepares TLS (the certificate for `subject`, the host
    /// users reach the hub at, is made beside `hub_key` when the operator gave none).
    pub fn bind(settings: &HttpsSettings, hub_key: &std::path::Path, subject: &str) -> Result<HttpsPort> {
        let config = tls::server_config(settings.tls.as_ref(), hub_key, subject)?;
        let listener = listen(settings.listen)?;
        Ok(HttpsPort {
            listener,
            tls: TlsAcceptor::from(config),
            console: settings.console,
            stats: Arc::new(HttpsStats::default()),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the process stops, each served by its own task within
    /// the pre-authentication budget; over its source's cap a connection is closed at
    /// once, unread (as on the TCP control port).
    pub async fn serve(self, ctx: Arc<HubContext>, preauth: Arc<Preauth>, relay: SocketAddr) {
        let shared = Arc::new(Shared {
            tls: self.tls,
            console: Console::new(ctx.clone(), self.console),
            ctx,
            preauth,
            relay: link::local_peer(relay),
            stats: self.stats,
        });
        let mut backoff = AcceptBackoff::default();
        loop {
            match self.listener.accept().await {
                Ok((stream, source)) => {
                    backoff.succeeded();
                    if let Some(guard) = shared.preauth.admit(source.ip()) {
                        tokio::spawn(connection(shared.clone(), stream, source, guard));
                    }
                }
                Err(e) => {
                    let wait = backoff.failed(&e);
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }
}

pub fn snapshot(stats: &HttpsStats, listen: SocketAddr) -> HttpsSnapshot {
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let l = &stats.link;
    HttpsSnapshot {
        listen,
        links_open: g(&stats.links_open),
        links_total: g(&stats.links_total),
        links_unproven: g(&stats.links_unproven),
        pages: g(&stats.pages),
        not_found: g(&stats.not_found),
        upgrades_refused: g(&stats.upgrades_refused),
        bad_requests: g(&stats.bad_requests),
        tls_failures: g(&stats.tls_failures),
        datagrams_in: g(&l.datagrams_in),
        datagrams_out: g(&l.datagrams_out),
        bytes_in: g(&l.bytes_in),
        bytes_out: g(&l.bytes_out),
        malformed: g(&l.malformed),
        udp_send_errors: g(&l.udp_send_errors),
    }
}

/// Binds the TCP listener; a refused privileged port says how to allow it.
fn listen(addr: SocketAddr) -> Result<TcpListener> {
    let tcp = match StdTcpListener::bind(addr) {
        Ok(tcp) => tcp,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(anyhow!(
                "cannot listen on TCP {addr} for HTTPS: {e}. Ports below 1024 need root or the \
                 CAP_NET_BIND_SERVICE capability (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE, as in \
                 systemd/mcvpn-hub.service); or give --https-listen another address (e.g. 0.0.0.0:8443, then \
                 nodes need &https=8443 in the server URL) or `off`"
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            return Err(anyhow!(
                "cannot listen on TCP {addr} for HTTPS: {e} (is a web server or another hub using it? \
                 Give --https-listen another address, or `off`)"
            ))
        }
        Err(e) => return Err(anyhow!("cannot listen on TCP {addr} for HTTPS: {e}")),
    };
    tcp.set_nonblocking(true)?;
    Ok(TcpListener::from_std(tcp)?)
}

/// Low latency for control and datagram batches, and room for a bulk transfer.
fn tune(stream: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = stream.set_nodelay(true);
    // Plain SO_*BUF (clamped to net.core.[rw]mem_max): the hub has no CAP_NET_ADMIN for
    // the FORCE variants, and a warning per connection would flood the log.
    if setsockopt(stream, sockopt::SndBuf, &TCP_BUFFER).is_err()
        || setsockopt(stream, sockopt::RcvBuf, &TCP_BUFFER).is_err()
    {
        tracing::debug!("cannot set the HTTPS connection's socket buffers");
    }
}

/// One accepted connection, from TLS to the end of its link.
async fn connection(shared: Arc<Shared>, tcp: TcpStream, source: SocketAddr, mut guard: PreauthGuard) {
    tune(&tcp);
    let ws = match guard.within(open(&shared, tcp)).await {
        Ok(Ok(Opened::Link(ws))) => *ws,
        Ok(Ok(Opened::Console(tls, read))) => {
            // The console has its own budget from here on (ConsoleLimits).
            drop(guard);
            shared.console.serve(tls, read, source).await;
            return;
        }
        Ok(Ok(Opened::Answered)) => return,
        Ok(Err(e)) => {
            tracing::debug!(%source, error = %e, "HTTPS connection ended");
            return;
        }
        Err(end) => {
            tracing::debug!(%source, %end, "HTTPS connection closed before its request");
            return;
        }
    };
    run_link(&shared, ws, source, guard).await;
}

type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// What a connection's first request made of it.
enum Opened {
    /// A page or a refusal, answered.
    Answered,
    /// A node's link.
    Link(Box<Ws>),
    /// The web console's, with every byte read so far.
    Console(Box<TlsStream<TcpStream>>, Vec<u8>),
}

/// TLS, then the request: a page or a refusal answered, the WebSocket, or the console.
async fn open(shared: &Shared, tcp: TcpStream) -> io::Result<Opened> {
    let mut tls = shared
        .tls
        .accept(tcp)
        .await
        .inspect_err(|_| bump(&shared.stats.tls_failures))?;
    let Some((request, early)) = http::read_request(&mut tls).await? else {
        return Ok(Opened::Answered);
    };
    let counter = match &request {
        http::Request::Upgrade { accept } => {
            http::switching_protocols(&mut tls, accept).await?;
            let config = Some(link::ws_config());
            let ws = if early.is_empty() {
                WebSocketStream::from_raw_socket(tls, Role::Server, config).await
            } else {
                WebSocketStream::from_partially_read(tls, early, Role::Server, config).await
            };
            return Ok(Opened::Link(Box::new(ws)));
        }
        http::Request::Console => return Ok(Opened::Console(Box::new(tls), early)),
        http::Request::Page { .. } => &shared.stats.pages,
        http::Request::NotFound => &shared.stats.not_found,
        http::Request::BadUpgrade(why) => {
            tracing::debug!(why, "WebSocket upgrade refused");
            &shared.stats.upgrades_refused
        }
        http::Request::Malformed | http::Request::TooLarge => &shared.stats.bad_requests,
    };
    bump(counter);
    http::answer(&mut tls, &request).await?;
    Ok(Opened::Answered)
}

/// Pumps the link until it ends, or until the deadline if it has not proved itself.
async fn run_link(shared: &Arc<Shared>, ws: Ws, source: SocketAddr, guard: PreauthGuard) {
    let loopback = match LoopbackEnd::bind(shared.relay, BridgeBuffers::HUB, LOOPBACK_BUFFER) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open a loopback socket for an HTTPS link");
            return;
        }
    };
    let _open = OpenLink::new(&shared.stats);
    let (control_tx, control_rx) = oneshot::channel();
    let control = ControlEnd::OnDemand(Box::new(move || {
        let (ours, theirs) = tokio::io::duplex(CONTROL_PIPE);
        control_tx.send(theirs).ok()?;
        Some(ours)
    }));
    let (bound_tx, bound_rx) = oneshot::channel();
    tokio::select! {
        end = link::run(ws, loopback, control, Some(bound_tx), &shared.stats.link) => {
            tracing::debug!(%source, ?end, "HTTPS link ended");
        }
        end = prove(shared, source, guard, control_rx, bound_rx) => {
            bump(&shared.stats.links_unproven);
            tracing::debug!(%source, %end, "HTTPS link closed before it proved itself");
        }
    }
}

/// How a link proved it is a node's.
enum Proof {
    /// It opened a control channel (served with the link's slot).
    Control(DuplexStream),
    /// The relay took a bind through it.
    Bound,
}

/// Holds the link's pre-authentication slot until the link proves itself, then hands it
/// to the control connection or frees it, and never returns; returns (ending the link)
/// when the deadline passes or the slot is evicted first.
async fn prove(
    shared: &Arc<Shared>,
    source: SocketAddr,
    mut guard: PreauthGuard,
    mut control_rx: oneshot::Receiver<DuplexStream>,
    mut bound_rx: oneshot::Receiver<()>,
) -> PreauthEnd {
    let proof = guard
        .within(async {
            tokio::select! {
                Ok(stream) = &mut control_rx => Proof::Control(stream),
                Ok(()) = &mut bound_rx => Proof::Bound,
                // Both senders gone: the link has ended, and run_link with it.
                else => std::future::pending().await,
            }
        })
        .await;
    match proof {
        Err(end) => return end,
        Ok(Proof::Control(stream)) => {
            tokio::spawn(control::handle(Box::new(stream), source, shared.ctx.clone(), guard));
        }
        Ok(Proof::Bound) => {
            drop(guard);
            // A control channel opened later on a proven data link is a new
            // unauthenticated connection: it takes a slot of its own, or is refused
            // (closing the link) when its source holds its cap.
            if let Ok(stream) = control_rx.await {
                match shared.preauth.admit(source.ip()) {
                    Some(guard) => {
                        tokio::spawn(control::handle(Box::new(stream), source, shared.ctx.clone(), guard));
                    }
                    None => drop(stream),
                }
            }
        }
    }
    std::future::pending().await
}
