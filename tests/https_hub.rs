//! Issue 12, the hub's HTTPS port, end to end: a real hub (`hub::run`, in this process)
//! with its HTTPS port on loopback, real TLS 1.3 (a certificate the hub made itself),
//! real TCP, a real WebSocket client (tokio-tungstenite over tokio-rustls), the real
//! link pump on the client side, real Noise IK and a real SQLite store.
//!
//! The pre-authentication deadline is 1 s here (5 s by default) so that the tests that
//! wait for it are short.

mod common;
use common::free_addr;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;

use mcvpn::channel;
use mcvpn::hub::https::HttpsSettings;
use mcvpn::hub::{HubIdentity, HubSettings};
use mcvpn::keys::KeyPair;
use mcvpn::node::relay_state::RelayState;
use mcvpn::proto::control::{Credential, Event, Hello, Key32, Request, Role, PROTOCOL_VERSION};
use mcvpn::store::prelude::*;
use mcvpn::store::{NewContract, SqliteStore};
use mcvpn::stream::link::{self, BridgeBuffers, ControlEnd, LinkEnd, LinkStats, LoopbackEnd};

const PASSWORD: &str = "alice's long passphrase";
const DEADLINE: Duration = Duration::from_secs(1);

struct Hub {
    https: SocketAddr,
    key: Key32,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_hub() -> Hub {
    start_hub_with(mcvpn::hub::preauth::PreauthLimits::default().per_source).await
}

async fn start_hub_with(per_source: u32) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    {
        let mut s = SqliteStore::open(&db).unwrap();
        s.contract_add(&NewContract::simple("acme", 10)).unwrap();
        s.account_add("acme", "alice", &mcvpn::password::hash(PASSWORD))
            .unwrap();
    }
    let listen = free_addr();
    let https = free_addr();
    let key = dir.path().join("hub.key");
    let hub_key = KeyPair::load_or_create(&key).unwrap().public_key32();
    let socket = dir.path().join("hub.sock");
    let settings = HubSettings {
        identity: HubIdentity {
            listen,
            key,
            extra_keys: vec![],
            public_addr: None,
            https_port: Some(https.port()),
        },
        name: "test-hub".into(),
        mesh_addr: None,
        db: db.into(),
        db_pool: 1,
        overlay: Default::default(),
        status_socket: socket.clone(),
        socket_buffer: 1 << 20,
        min_accounts: 1,
        smtp: None,
        smtp_from: None,
        udp_tuning: Default::default(),
        preauth: mcvpn::hub::preauth::PreauthLimits {
            handshake_deadline: DEADLINE,
            per_source,
            ..Default::default()
        },
        https: Some(HttpsSettings {
            listen: https,
            tls: None,
            console: Default::default(),
        }),
        metrics: None,
    };
    tokio::spawn(async move {
        if let Err(e) = mcvpn::hub::run(settings).await {
            panic!("the hub stopped: {e:#}");
        }
    });
    let t0 = Instant::now();
    while TcpStream::connect(https).await.is_err() || !socket.exists() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the hub did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The probe above took a pre-auth slot: let it go before a test counts them.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Hub {
        https,
        key: hub_key,
        socket,
        _dir: dir,
    }
}

/// `mcvpn hub stats --json`, read from the hub's status socket.
async fn stats(socket: &Path) -> serde_json::Value {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        mcvpn::local_api::call::<serde_json::Value>(&socket, mcvpn::local_api::LocalRequest::Stats)
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Nodes accept any certificate: the Noise handshake inside pins the hub's key.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn tls(addr: SocketAddr) -> TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

async fn websocket(addr: SocketAddr) -> WebSocketStream<TlsStream<TcpStream>> {
    let url = format!("wss://localhost:{}{}", addr.port(), mcvpn::stream::WS_PATH);
    let (ws, response) = tokio_tungstenite::client_async_with_config(url, tls(addr).await, Some(link::ws_config()))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Sends one request head over TLS and reads the answer to the end.
async fn http(addr: SocketAddr, head: &str) -> String {
    let mut s = tls(addr).await;
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn https_stat(s: &serde_json::Value, field: &str) -> u64 {
    s["https"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no https.{field} in {s}"))
}

fn preauth_stat(s: &serde_json::Value, field: &str) -> u64 {
    s["preauth"][field].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_root_answers_a_page_and_the_rest_is_refused() {
    let hub = start_hub().await;
    let page = http(hub.https, "GET / HTTP/1.1\r\nHost: hub\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("<title>mcvpn hub</title>"), "{page}");
    let head = http(hub.https, "HEAD / HTTP/1.1\r\nHost: hub\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    let missing = http(hub.https, "GET /admin HTTP/1.1\r\nHost: hub\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let bad = http(
        hub.https,
        "GET /mcvpn/v1 HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(bad.starts_with("HTTP/1.1 400 "), "no key: {bad}");
    let s = stats(&hub.socket).await;
    assert_eq!(
        (
            https_stat(&s, "pages"),
            https_stat(&s, "not_found"),
            https_stat(&s, "upgrades_refused")
        ),
        (2, 1, 1),
        "{s}"
    );
    assert_eq!(
        preauth_stat(&s, "pending"),
        0,
        "answered connections leave the budget: {s}"
    );
    assert_eq!(https_stat(&s, "links_total"), 0);
    // The URL carries the HTTPS port (not 443 here).
    let url = s["url"].as_str().unwrap();
    assert!(url.contains(&format!("https={}", hub.https.port())), "{url}");
}

/// The client side of a link with a control part: the link pump on a WebSocket, the
/// control channel on the other end of a duplex pipe.
async fn login_over_link(hub: &Hub, me: &KeyPair) -> (channel::ChannelReader, channel::ChannelWriter, LoginInfo) {
    let ws = websocket(hub.https).await;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    // A node's link always has a loopback end; this one bridges to a socket nobody reads.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let loopback = LoopbackEnd::bind(sink.local_addr().unwrap(), BridgeBuffers::NODE, 0).unwrap();
    tokio::spawn(async move {
        let stats = LinkStats::default();
        let _sink = sink;
        link::run(ws, loopback, ControlEnd::Ready(theirs), None, &stats).await
    });
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
    };
    let (mut rd, mut wr) = channel::initiate(Box::new(ours), me, &hub.key, &hello).await.unwrap();
    wr.send(&Request::Login {
        account: Some("alice".into()),
        credential: Credential::Password {
            password: PASSWORD.into(),
        },
        role: Role::Client,
        hostname: "https-test".into(),
        boot_id: 1,
        enroll: false,
    })
    .await
    .unwrap();
    let answer: Event = tokio::time::timeout(Duration::from_secs(30), rd.recv())
        .await
        .unwrap()
        .unwrap();
    let Event::LoginOk(ok) = answer else {
        panic!("login over the HTTPS link: {answer:?}")
    };
    let info = LoginInfo {
        node_id: ok.node_id,
        session_id: ok.session_id,
        relay_key: *ok.relay_key.expose_secret(),
    };
    (rd, wr, info)
}

struct LoginInfo {
    node_id: mcvpn::proto::relay::NodeId,
    session_id: u64,
    relay_key: [u8; 32],
}

async fn ping(rd: &mut channel::ChannelReader, wr: &mut channel::ChannelWriter, seq: u64) {
    wr.send(&Request::Ping { seq }).await.unwrap();
    loop {
        let e: Event = tokio::time::timeout(Duration::from_secs(5), rd.recv())
            .await
            .unwrap()
            .unwrap();
        match e {
            Event::Pong { seq: s } if s == seq => return,
            Event::Pong { .. } => panic!("pong for another ping"),
            _ => continue, // peer announcements and the like
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_over_the_websocket_and_a_bound_data_link_outlive_the_deadline() {
    let hub = start_hub().await;
    let me = KeyPair::generate();
    let (mut rd, mut wr, login) = login_over_link(&hub, &me).await;
    ping(&mut rd, &mut wr, 1).await;

    // A data-only link: datagrams from a "data path" socket go through the link to the
    // relay, which challenges the first bind and answers Bound through the link.
    let data_path = UdpSocket::bind("127.0.0.1:0").unwrap();
    data_path.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let loopback = LoopbackEnd::bind(data_path.local_addr().unwrap(), BridgeBuffers::NODE, 0).unwrap();
    data_path.connect(loopback.local_addr().unwrap()).unwrap();
    let ws = websocket(hub.https).await;
    let data_link = tokio::spawn(async move {
        let stats = LinkStats::default();
        link::run(ws, loopback, ControlEnd::None, None, &stats).await
    });
    let bound = tokio::task::spawn_blocking(move || {
        let relay = RelayState::default();
        relay.start(login.node_id, login.session_id, login.relay_key);
        let until = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 2048];
        while !relay.is_bound(Instant::now()) && Instant::now() < until {
            if let Some(bind) = relay.bind_due(Instant::now()) {
                data_path.send(&bind).unwrap();
            }
            if let Ok(n) = data_path.recv(&mut buf) {
                if let Some(answer) = relay.on_challenge(&buf[..n]) {
                    data_path.send(&answer).unwrap();
                } else {
                    relay.on_bound(&buf[..n], Instant::now());
                }
            }
        }
        relay.is_bound(Instant::now())
    })
    .await
    .unwrap();
    assert!(bound, "the relay took a bind through the HTTPS link");

    // Both links outlive the pre-auth deadline: one logged in, the other proved itself.
    tokio::time::sleep(DEADLINE * 2).await;
    assert!(!data_link.is_finished(), "the bound data link was closed");
    ping(&mut rd, &mut wr, 2).await;
    let s = stats(&hub.socket).await;
    assert_eq!(https_stat(&s, "links_open"), 2, "{s}");
    assert_eq!(https_stat(&s, "links_unproven"), 0, "{s}");
    assert_eq!(preauth_stat(&s, "pending"), 0, "{s}");
    assert_eq!(preauth_stat(&s, "deadline_expired"), 0, "{s}");
    assert!(
        https_stat(&s, "datagrams_in") >= 2 && https_stat(&s, "datagrams_out") >= 2,
        "{s}"
    );
    assert_eq!(s["bound_endpoints"].as_u64(), Some(1), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_deadline_and_its_slot_freed() {
    let hub = start_hub().await;
    let mut silent = TcpStream::connect(hub.https).await.unwrap();
    // And one that completes TLS and then says nothing.
    let mut quiet_tls = tls(hub.https).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(preauth_stat(&stats(&hub.socket).await, "pending"), 2);
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed, not answered: {n:?}");
    let n = tokio::time::timeout(Duration::from_secs(5), quiet_tls.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed, not answered: {n:?}");
    assert!(t.elapsed() < DEADLINE + Duration::from_millis(500), "{:?}", t.elapsed());
    // The slot is given back by the connection's task just after it closes the socket:
    // on a loaded machine the client may see the close first.
    let mut s = stats(&hub.socket).await;
    for _ in 0..20 {
        if preauth_stat(&s, "pending") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = stats(&hub.socket).await;
    }
    assert_eq!(preauth_stat(&s, "pending"), 0, "{s}");
    assert_eq!(preauth_stat(&s, "deadline_expired"), 2, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_is_refused_without_reading_it_all() {
    let hub = start_hub().await;
    let mut s = tls(hub.https).await;
    // 16 KiB of one header line that never ends: the hub answers after its 8 KiB cap.
    let mut head = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    head.resize(16 * 1024, b'a');
    s.write_all(&head).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
    let st = stats(&hub.socket).await;
    assert_eq!(https_stat(&st, "bad_requests"), 1, "{st}");
    assert_eq!(preauth_stat(&st, "pending"), 0, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_only_link_that_never_binds_is_closed_at_the_deadline() {
    let hub = start_hub().await;
    let data_path = UdpSocket::bind("127.0.0.1:0").unwrap();
    let loopback = LoopbackEnd::bind(data_path.local_addr().unwrap(), BridgeBuffers::NODE, 0).unwrap();
    data_path.connect(loopback.local_addr().unwrap()).unwrap();
    let ws = websocket(hub.https).await;
    let t = Instant::now();
    let link = tokio::spawn(async move {
        let stats = LinkStats::default();
        link::run(ws, loopback, ControlEnd::None, None, &stats).await
    });
    // Datagrams that are not a valid bind: the relay drops them, nothing is bound.
    for _ in 0..10 {
        data_path.send(&[0u8; 100]).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = stats(&hub.socket).await;
    assert_eq!(
        (https_stat(&s, "links_open"), preauth_stat(&s, "pending")),
        (1, 1),
        "{s}"
    );
    assert!(
        https_stat(&s, "datagrams_in") >= 10,
        "the datagrams reached the hub: {s}"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), link)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, LinkEnd::Closed | LinkEnd::Error(_)), "{end:?}");
    assert!(
        t.elapsed() >= DEADLINE - Duration::from_millis(300) && t.elapsed() < DEADLINE + Duration::from_millis(700),
        "closed at the deadline: {:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = stats(&hub.socket).await;
    assert_eq!(https_stat(&s, "links_open"), 0, "{s}");
    assert_eq!(https_stat(&s, "links_unproven"), 1, "{s}");
    assert_eq!(preauth_stat(&s, "pending"), 0, "{s}");
    assert_eq!(preauth_stat(&s, "deadline_expired"), 1, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_source_cap_holds_for_https_connections() {
    let hub = start_hub_with(2).await;
    let _held = (tls(hub.https).await, tls(hub.https).await);
    // The third from the same address is closed at once, before TLS.
    let mut third = TcpStream::connect(hub.https).await.unwrap();
    let mut buf = [0u8; 16];
    let t = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(
        t.elapsed() < DEADLINE / 2,
        "closed at once, not at the deadline: {:?}",
        t.elapsed()
    );
    let s = stats(&hub.socket).await;
    assert_eq!(
        (preauth_stat(&s, "pending"), preauth_stat(&s, "refused_per_source")),
        (2, 1),
        "{s}"
    );
}
