//! One WebSocket link, pumped both ways: its control part to and from a byte stream the
//! control channel runs over, its datagrams to and from a UDP socket on loopback.
//!
//! Two tasks: the *reader* takes messages off the WebSocket (control bytes into the
//! control stream, datagrams out of the loopback socket, equal-sized runs as one GSO
//! send); the *writer* batches what the loopback socket and the control stream give
//! into messages and sends them. Whichever ends first ends the link.
//!
//! Backpressure is UDP's: when the TCP connection cannot take more, the writer stops
//! reading the loopback socket, whose queue fills and drops, and the tunnelled TCP
//! sees loss and slows down, as it would on a congested UDP path. Nothing queues
//! without bound.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use quinn_udp::RecvMeta;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::frame::{self, DatagramBatch, Message, MAX_MESSAGE};
use crate::proto::relay::{Header, Kind};
use crate::udp_batch::{gso_runs, BatchUdp, UdpTuning, MAX_GSO_BYTES, MAX_GSO_SEGMENTS};

/// The WebSocket settings both ends use: messages and frames no bigger than
/// [`MAX_MESSAGE`], refused before they are buffered, and a write buffer that is
/// flushed once per batch.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .write_buffer_size(128 * 1024)
        .max_write_buffer_size(MAX_MESSAGE * 4)
}

/// How the loopback socket receives: a node's one link can afford GRO and big buffers;
/// the hub's many links must each stay small.
#[derive(Debug, Clone, Copy)]
pub struct BridgeBuffers {
    /// Buffers per `recvmmsg` (at most quinn-udp's batch size).
    pub batch: usize,
    /// Size of each; with GRO a whole 64 KiB batch must fit.
    pub size: usize,
    pub gro: bool,
}

impl BridgeBuffers {
    /// A node: 32 × 64 KiB with GRO (2 MiB, one link per process).
    pub const NODE: BridgeBuffers = BridgeBuffers {
        batch: crate::udp_batch::RECV_BATCH,
        size: crate::udp_batch::RECV_BUF,
        gro: true,
    };
    /// The hub: 16 × 2 KiB without GRO (32 KiB per link, thousands of links).
    pub const HUB: BridgeBuffers = BridgeBuffers {
        batch: 16,
        size: 2048,
        gro: false,
    };
}

struct Loopback(BatchUdp);

impl AsRawFd for Loopback {
    fn as_raw_fd(&self) -> RawFd {
        self.0.socket.as_raw_fd()
    }
}

/// The link's UDP socket on loopback, connected to the one peer it bridges to (the
/// hub's relay socket, or a node's data path socket): the kernel drops anything else.
pub struct LoopbackEnd {
    sock: AsyncFd<Loopback>,
    peer: SocketAddr,
    buffers: BridgeBuffers,
}

impl LoopbackEnd {
    /// Binds a socket on the loopback address of `peer`'s family (or on `peer`'s own
    /// address when that is a local, non-loopback one, as a hub listening on one
    /// address is) and connects it to `peer`.
    pub fn bind(peer: SocketAddr, buffers: BridgeBuffers, socket_buffer: usize) -> io::Result<LoopbackEnd> {
        let local: SocketAddr = match peer {
            SocketAddr::V4(p) if !p.ip().is_unspecified() => (*p.ip(), 0).into(),
            SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
            SocketAddr::V6(p) if !p.ip().is_unspecified() => (*p.ip(), 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
        };
        let peer = local_peer(peer);
        let socket = UdpSocket::bind(local)?;
        socket.connect(peer)?;
        socket.set_nonblocking(true)?;
        if socket_buffer > 0 {
            crate::util::set_socket_buffers(&socket, socket_buffer);
        }
        let tuning = UdpTuning {
            udp_gro: buffers.gro,
            ..UdpTuning::default()
        };
        let udp = BatchUdp::new(socket, &tuning)?;
        Ok(LoopbackEnd {
            // SAFETY: the descriptor belongs to the socket inside `Loopback`, which the
            // AsyncFd owns: it stays open, and the same, until the AsyncFd is dropped.
            sock: unsafe { AsyncFd::register_with_interest(Loopback(udp), tokio::io::Interest::READABLE) }?,
            peer,
            buffers: BridgeBuffers {
                batch: buffers.batch.clamp(1, crate::udp_batch::RECV_BATCH),
                ..buffers
            },
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.get_ref().0.socket.local_addr()
    }
}

/// `addr` as reachable from this host: an unspecified address (a socket bound to all
/// addresses) becomes loopback of its family.
pub fn local_peer(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => (Ipv4Addr::LOCALHOST, a.port()).into(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => (Ipv6Addr::LOCALHOST, a.port()).into(),
        other => other,
    }
}

/// What a link counts (the hub sums them over links in `hub stats`, a node shows its own).
#[derive(Debug, Default)]
pub struct LinkStats {
    pub datagrams_out: AtomicU64,
    pub datagrams_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Messages or datagrams dropped as malformed (a broken or hostile peer).
    pub malformed: AtomicU64,
    /// Datagrams the loopback socket would not take.
    pub udp_send_errors: AtomicU64,
}

impl LinkStats {
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "datagrams_out": g(&self.datagrams_out),
            "datagrams_in": g(&self.datagrams_in),
            "bytes_out": g(&self.bytes_out),
            "bytes_in": g(&self.bytes_in),
            "malformed": g(&self.malformed),
            "udp_send_errors": g(&self.udp_send_errors),
        })
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Where the link's control bytes go.
pub enum ControlEnd {
    /// A link without a control channel (a node's data-only link).
    None,
    /// The node's side: the stream its control channel runs over (the other end of a
    /// `tokio::io::duplex`), there from the start.
    Ready(DuplexStream),
    /// The hub's side: called when the first control bytes arrive; returns the stream
    /// to deliver them to (it starts serving the control connection on the other end).
    /// None refuses a control part on this link.
    OnDemand(Box<dyn FnOnce() -> Option<DuplexStream> + Send>),
}

/// Why a link ended.
#[derive(Debug)]
pub enum LinkEnd {
    /// The peer closed the WebSocket, or the TCP connection ended.
    Closed,
    /// The control channel on this link ended (its session or command is over).
    ControlDone,
    /// A WebSocket or I/O error.
    Error(String),
}

/// Pumps `ws` until either side ends. `on_bound` fires the first time a relay `Bound`
/// goes out over the link: the relay took a bind that came through it, which is what
/// proves a data-only link is a node's and not a stranger's.
pub async fn run<S>(
    ws: WebSocketStream<S>,
    udp: LoopbackEnd,
    control: ControlEnd,
    on_bound: Option<oneshot::Sender<()>>,
    stats: &LinkStats,
) -> LinkEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (ws_tx, ws_rx) = ws.split();
    let (control_rd, control_wr, on_demand) = match control {
        ControlEnd::None => (None, None, None),
        ControlEnd::Ready(stream) => {
            let (rd, wr) = tokio::io::split(stream);
            (Some(rd), Some(wr), None)
        }
        ControlEnd::OnDemand(f) => (None, None, Some(f)),
    };
    let (opened_tx, opened_rx) = oneshot::channel();
    let reader = read_loop(ws_rx, &udp, control_wr, on_demand, opened_tx, stats);
    let writer = write_loop(ws_tx, &udp, control_rd, opened_rx, on_bound, stats);
    tokio::select! {
        end = reader => end,
        end = writer => end,
    }
}

type WsSink<S> = futures_util::stream::SplitSink<WebSocketStream<S>, WsMessage>;
type WsSource<S> = futures_util::stream::SplitStream<WebSocketStream<S>>;

async fn read_loop<S>(
    mut ws: WsSource<S>,
    udp: &LoopbackEnd,
    mut control: Option<tokio::io::WriteHalf<DuplexStream>>,
    mut on_demand: Option<Box<dyn FnOnce() -> Option<DuplexStream> + Send>>,
    opened: oneshot::Sender<ReadHalf<DuplexStream>>,
    stats: &LinkStats,
) -> LinkEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut opened = Some(opened);
    let mut out = Sender::default();
    while let Some(msg) = ws.next().await {
        let bytes = match msg {
            Ok(WsMessage::Binary(b)) => b,
            Ok(WsMessage::Close(_)) => return LinkEnd::Closed,
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => continue,
            Ok(WsMessage::Text(_)) => {
                add(&stats.malformed, 1);
                continue;
            }
            Err(e) => return LinkEnd::Error(e.to_string()),
        };
        match frame::parse(&bytes) {
            Ok(Message::Control(body)) => {
                if control.is_none() {
                    let Some(stream) = on_demand.take().and_then(|f| f()) else {
                        add(&stats.malformed, 1);
                        continue;
                    };
                    let (rd, wr) = tokio::io::split(stream);
                    if let Some(tx) = opened.take() {
                        let _ = tx.send(rd);
                    }
                    control = Some(wr);
                }
                let wr = control.as_mut().expect("set above");
                if wr.write_all(body).await.is_err() {
                    return LinkEnd::ControlDone;
                }
            }
            Ok(Message::Datagrams(datagrams)) => out.forward(udp, datagrams, stats),
            Err(e) => {
                tracing::debug!(error = %e, "dropping a malformed link message");
                add(&stats.malformed, 1);
            }
        }
    }
    LinkEnd::Closed
}

/// The reader's reused buffers: datagrams are copied back to back so that equal-sized
/// runs leave in one GSO send.
#[derive(Default)]
struct Sender {
    buf: Vec<u8>,
    lens: Vec<usize>,
}

impl Sender {
    fn forward(&mut self, udp: &LoopbackEnd, datagrams: frame::Datagrams<'_>, stats: &LinkStats) {
        self.buf.clear();
        self.lens.clear();
        for d in datagrams {
            match d {
                Ok(d) => {
                    self.buf.extend_from_slice(d);
                    self.lens.push(d.len());
                }
                Err(_) => {
                    add(&stats.malformed, 1);
                    break;
                }
            }
        }
        add(&stats.datagrams_in, self.lens.len() as u64);
        add(&stats.bytes_in, self.buf.len() as u64);
        let sock = &udp.sock.get_ref().0;
        let mut start = 0;
        for (a, b, segment) in gso_runs(&self.lens, MAX_GSO_SEGMENTS, MAX_GSO_BYTES) {
            let bytes: usize = self.lens[a..b].iter().sum();
            // Loopback UDP never waits for room: a full receiver drops, as the path would.
            if sock
                .send(udp.peer, &self.buf[start..start + bytes], Some(segment))
                .is_err()
            {
                add(&stats.udp_send_errors, (b - a) as u64);
            }
            start += bytes;
        }
    }
}

async fn write_loop<S>(
    mut ws: WsSink<S>,
    udp: &LoopbackEnd,
    mut control: Option<ReadHalf<DuplexStream>>,
    mut opened: oneshot::Receiver<ReadHalf<DuplexStream>>,
    mut on_bound: Option<oneshot::Sender<()>>,
    stats: &LinkStats,
) -> LinkEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut control_buf = vec![0u8; 16 * 1024];
    let mut storage: Vec<Vec<u8>> = (0..udp.buffers.batch).map(|_| vec![0u8; udp.buffers.size]).collect();
    let mut metas = vec![RecvMeta::default(); udp.buffers.batch];
    let mut batch = DatagramBatch::default();
    let mut waiting_for_control = control.is_none();
    loop {
        tokio::select! {
            rd = &mut opened, if waiting_for_control => {
                waiting_for_control = false;
                if let Ok(rd) = rd {
                    control = Some(rd);
                }
            }
            n = read_some(&mut control, &mut control_buf), if control.is_some() => match n {
                Ok(0) | Err(_) => {
                    let _ = ws.send(WsMessage::Close(None)).await;
                    return LinkEnd::ControlDone;
                }
                Ok(n) => {
                    if let Err(e) = ws.send(WsMessage::Binary(frame::control(&control_buf[..n]))).await {
                        return LinkEnd::Error(e.to_string());
                    }
                }
            },
            ready = udp.sock.readable() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => return LinkEnd::Error(e.to_string()),
                };
                // Drain what is queued (a few rounds at most, so control bytes are not
                // starved), batching it into as few messages as fit.
                let mut rounds = 0;
                loop {
                    let n = {
                        let mut it = storage.iter_mut();
                        let mut iovs: Vec<io::IoSliceMut> =
                            (0..udp.buffers.batch).map(|_| io::IoSliceMut::new(it.next().expect("batch buffers"))).collect();
                        match guard.get_inner().0.try_recv(&mut iovs, &mut metas) {
                            Ok(0) => {
                                guard.clear_ready();
                                break;
                            }
                            Ok(n) => n,
                            Err(e) => {
                                tracing::debug!(error = %e, "loopback receive failed");
                                guard.clear_ready();
                                break;
                            }
                        }
                    };
                    for (meta, buf) in metas[..n].iter().zip(&storage) {
                        let data = &buf[..meta.len];
                        let stride = if meta.stride == 0 { meta.len.max(1) } else { meta.stride };
                        for d in data.chunks(stride) {
                            if let Some(tx) = on_bound.take_if(|_| is_bound(d)) {
                                let _ = tx.send(());
                            }
                            add(&stats.datagrams_out, 1);
                            add(&stats.bytes_out, d.len() as u64);
                            if !batch.push(d) {
                                let msg = batch.take().expect("a full batch holds datagrams");
                                if let Err(e) = ws.feed(WsMessage::Binary(msg)).await {
                                    return LinkEnd::Error(e.to_string());
                                }
                                batch.push(d);
                            }
                        }
                    }
                    rounds += 1;
                    if rounds == 4 {
                        break;
                    }
                }
                if let Some(msg) = batch.take() {
                    if let Err(e) = ws.feed(WsMessage::Binary(msg)).await {
                        return LinkEnd::Error(e.to_string());
                    }
                }
                if let Err(e) = ws.flush().await {
                    return LinkEnd::Error(e.to_string());
                }
            }
        }
    }
}

async fn read_some(control: &mut Option<ReadHalf<DuplexStream>>, buf: &mut [u8]) -> io::Result<usize> {
    match control {
        Some(rd) => rd.read(buf).await,
        None => std::future::pending().await,
    }
}

fn is_bound(datagram: &[u8]) -> bool {
    matches!(Header::parse(datagram), Ok((h, _)) if h.kind == Kind::Bound)
}
