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
        // tungstenite zero-fills this much of its read buffer before each read: its
        // 128 KiB default made every link, a stranger's too, cost 128 KiB resident at
        // its first byte (and a 128 KiB memset per read). One TLS record's worth.
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .write_buffer_size(WRITE_BUFFER)
        // Frames are queued until the buffer holds WRITE_BUFFER, so the cap must leave
        // room above it for the message that crosses it.
        .max_write_buffer_size(WRITE_BUFFER + 4 * MAX_MESSAGE)
}

/// Bytes of frames the writer gathers before writing them to TLS: a flush writes what
/// is there anyway, so this is only the most one burst puts in one write.
const WRITE_BUFFER: usize = 128 * 1024;

/// What tungstenite reads at most per call: the plaintext of one TLS record.
const READ_BUFFER: usize = 16 * 1024;

/// Control bytes taken per read and sent as one message (a control frame may be up
/// to 64 KiB; the reads split it), below [`MAX_MESSAGE`] with its kind byte.
const CONTROL_BUFFER: usize = 8 * 1024;

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
    /// The hub: 16 × 4 KiB without GRO (64 KiB per link, thousands of links). A relay
    /// datagram is the tunnel MTU plus ~80 bytes, so MTUs up to ~4000 pass; a bigger
    /// datagram fills its buffer and is dropped as truncated (counted as malformed).
    pub const HUB: BridgeBuffers = BridgeBuffers {
        batch: 16,
        size: 4096,
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
    // Buffers are made when first needed: a link that never opens a control channel or
    // receives a datagram (a stranger's, until the hub's deadline) costs none of them.
    let mut control_buf = Vec::new();
    let mut storage: Vec<Vec<u8>> = Vec::new();
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
                if storage.is_empty() {
                    storage = (0..udp.buffers.batch).map(|_| vec![0u8; udp.buffers.size]).collect();
                }
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
                        if !udp.buffers.gro && meta.len >= udp.buffers.size {
                            // Filled the whole buffer: the kernel cut the datagram short.
                            add(&stats.malformed, 1);
                            continue;
                        }
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

async fn read_some(control: &mut Option<ReadHalf<DuplexStream>>, buf: &mut Vec<u8>) -> io::Result<usize> {
    match control {
        Some(rd) => {
            if buf.is_empty() {
                buf.resize(CONTROL_BUFFER, 0);
            }
            rd.read(buf).await
        }
        None => std::future::pending().await,
    }
}

fn is_bound(datagram: &[u8]) -> bool {
    matches!(Header::parse(datagram), Ok((h, _)) if h.kind == Kind::Bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// Two link ends over a real TCP connection, each bridging to a real UDP socket on
    /// loopback (standing in for the relay on one side and a node's data path on the
    /// other), and a control stream from the first end, opened on demand at the second.
    struct Pair {
        near_peer: UdpSocket,
        far_peer: UdpSocket,
        near_control: DuplexStream,
        far_control: oneshot::Receiver<DuplexStream>,
        far_stats: std::sync::Arc<LinkStats>,
        bound: oneshot::Receiver<()>,
        ends: tokio::task::JoinHandle<(LinkEnd, LinkEnd)>,
    }

    async fn pair() -> Pair {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (client, server) = (client.unwrap(), server.unwrap().0);
        let near_ws = WebSocketStream::from_raw_socket(client, Role::Client, Some(ws_config())).await;
        let far_ws = WebSocketStream::from_raw_socket(server, Role::Server, Some(ws_config())).await;

        let near_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let far_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let near = LoopbackEnd::bind(near_peer.local_addr().unwrap(), BridgeBuffers::NODE, 0).unwrap();
        let far = LoopbackEnd::bind(far_peer.local_addr().unwrap(), BridgeBuffers::HUB, 0).unwrap();
        near_peer.connect(near.local_addr().unwrap()).unwrap();
        far_peer.connect(far.local_addr().unwrap()).unwrap();
        for s in [&near_peer, &far_peer] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }

        let (near_control, near_link_side) = tokio::io::duplex(64 * 1024);
        let (opened_tx, far_control) = oneshot::channel();
        let on_demand: Box<dyn FnOnce() -> Option<DuplexStream> + Send> = Box::new(move || {
            let (a, b) = tokio::io::duplex(64 * 1024);
            let _ = opened_tx.send(a);
            Some(b)
        });
        let (bound_tx, bound) = oneshot::channel();
        let far_stats = std::sync::Arc::new(LinkStats::default());
        let stats = far_stats.clone();
        let ends = tokio::spawn(async move {
            let near_stats = LinkStats::default();
            tokio::join!(
                run(
                    near_ws,
                    near,
                    ControlEnd::Ready(near_link_side),
                    Some(bound_tx),
                    &near_stats
                ),
                run(far_ws, far, ControlEnd::OnDemand(on_demand), None, &stats),
            )
        });
        Pair {
            near_peer,
            far_peer,
            near_control,
            far_control,
            far_stats,
            bound,
            ends,
        }
    }

    fn recv(sock: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf).expect("a datagram within 5 s");
        buf.truncate(n);
        buf
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn datagrams_cross_both_ways_in_order_and_control_opens_on_demand() {
        let mut p = pair().await;
        // Far → near: a burst of full-size datagrams arrives whole and in order.
        let sent: Vec<Vec<u8>> = (0..300u32)
            .map(|i| {
                let mut d = vec![(i % 251) as u8; 1400];
                d[..4].copy_from_slice(&i.to_be_bytes());
                d
            })
            .collect();
        let far_peer = p.far_peer.try_clone().unwrap();
        let near_peer = p.near_peer.try_clone().unwrap();
        let burst = sent.clone();
        let got = tokio::task::spawn_blocking(move || {
            let count = burst.len();
            let reader = std::thread::spawn(move || (0..count).map(|_| recv(&near_peer)).collect::<Vec<_>>());
            for d in &burst {
                far_peer.send(d).unwrap();
                // Loopback drops what the bridge has not read yet; keep under its buffer.
                std::thread::sleep(Duration::from_micros(50));
            }
            reader.join().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(got, sent);

        // Near → far, one datagram of each size up to a full one.
        for len in [1usize, 148, 1420, 9000] {
            p.near_peer.send(&vec![7u8; len]).unwrap();
            assert_eq!(recv(&p.far_peer).len(), len);
        }

        // Control bytes written at the near end open the far end's control stream.
        p.near_control.write_all(b"hello over the link").await.unwrap();
        let mut far = tokio::time::timeout(Duration::from_secs(5), &mut p.far_control)
            .await
            .unwrap()
            .unwrap();
        let mut buf = [0u8; 19];
        far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello over the link");
        far.write_all(b"and back").await.unwrap();
        let mut back = [0u8; 8];
        p.near_control.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"and back");
        assert_eq!(p.far_stats.malformed.load(Ordering::Relaxed), 0);

        // Closing the control stream ends the link at both ends.
        drop(p.near_control);
        let (near, far) = tokio::time::timeout(Duration::from_secs(5), p.ends)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(near, LinkEnd::ControlDone), "{near:?}");
        assert!(matches!(far, LinkEnd::Closed | LinkEnd::Error(_)), "{far:?}");
    }

    // Multi-threaded: the test blocks on plain UDP sockets while the links run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relay_bound_passing_through_fires_on_bound_once() {
        let mut p = pair().await;
        assert!(p.bound.try_recv().is_err());
        // A Data datagram does not count; a Bound does (header kind only: the node checks
        // the Bound's authenticity, the hub only needs to know the relay accepted a bind).
        let mut data = vec![0u8; crate::proto::relay::HEADER_LEN + 32];
        crate::proto::relay::write_data_header(&mut data, 5);
        p.near_peer.send(&data).unwrap();
        assert_eq!(recv(&p.far_peer), data);
        assert!(p.bound.try_recv().is_err());
        let bound = crate::proto::relay::BindMsg {
            kind: Kind::Bound,
            node: 5,
            session: 1,
            counter: 1,
        }
        .encode(&[3u8; 32]);
        p.near_peer.send(&bound).unwrap();
        assert_eq!(recv(&p.far_peer), bound);
        tokio::time::timeout(Duration::from_secs(5), p.bound)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_messages_are_counted_and_dropped_not_fatal() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut raw = WebSocketStream::from_raw_socket(client.unwrap(), Role::Client, Some(ws_config())).await;
        let ws = WebSocketStream::from_raw_socket(server.unwrap().0, Role::Server, Some(ws_config())).await;
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let end = LoopbackEnd::bind(peer.local_addr().unwrap(), BridgeBuffers::HUB, 0).unwrap();
        let bridge = end.local_addr().unwrap();
        let stats = std::sync::Arc::new(LinkStats::default());
        let s = stats.clone();
        // No control part allowed: control bytes are malformed here.
        let link = tokio::spawn(async move { run(ws, end, ControlEnd::None, None, &s).await });
        for bad in [
            vec![],
            vec![9, 1, 2],
            vec![frame::KIND_DATAGRAMS, 0, 9, 1],
            vec![frame::KIND_CONTROL, 1],
        ] {
            raw.send(WsMessage::Binary(bad.into())).await.unwrap();
        }
        raw.send(WsMessage::Text("hi".into())).await.unwrap();
        // A good datagram after the bad ones still goes through.
        let mut good = DatagramBatch::default();
        good.push(b"still alive");
        raw.send(WsMessage::Binary(good.take().unwrap())).await.unwrap();
        let mut buf = [0u8; 64];
        let n = peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"still alive");
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 5);
        // A datagram too big for the hub's bridge buffers is dropped, not cut short.
        peer.send_to(&[1u8; 5000], bridge).unwrap();
        peer.send_to(b"small", bridge).unwrap();
        let mut echo = raw.next().await.unwrap().unwrap().into_data();
        assert_eq!(&echo.split_off(1)[..], [&[0u8, 5][..], b"small"].concat());
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 6);
        // An oversized message is refused by tungstenite and ends the link.
        let huge = vec![frame::KIND_DATAGRAMS; MAX_MESSAGE + 1];
        let _ = raw.send(WsMessage::Binary(huge.into())).await;
        let end = tokio::time::timeout(Duration::from_secs(5), link)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, LinkEnd::Error(_)), "{end:?}");
    }
}
