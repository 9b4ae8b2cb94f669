//! Issue 17, item 3: the hub's Prometheus endpoint, end to end. A real hub (`hub::run`,
//! in this process) on loopback with a real SQLite store in a temporary directory; real
//! Noise IK logins (one refused, one accepted and kept open as a session); real UDP
//! datagrams to the relay. `/metrics` is read over real TCP and parsed with a real
//! Prometheus text parser (`prometheus-parse`); the counters must move with the traffic,
//! and `/readyz` must turn 503 once the hub is told to stop (SIGTERM, as systemd does).
//!
//!     cargo test --release --test metrics_endpoint -- --nocapture

mod common;
use common::free_addr;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use mcvpn::channel::{self, ChannelReader, ChannelWriter};
use mcvpn::hub::metrics::MetricsSettings;
use mcvpn::hub::{HubIdentity, HubSettings};
use mcvpn::keys::KeyPair;
use mcvpn::proto::control::{Credential, Event, Hello, Key32, Request, Role, PROTOCOL_VERSION};
use mcvpn::store::prelude::*;
use mcvpn::store::{NewContract, SqliteStore};

const PASSWORD: &str = "alice's long passphrase";

async fn start_hub(dir: &Path) -> (SocketAddr, Key32, SocketAddr) {
    let db = dir.join("hub.db");
    let mut s = SqliteStore::open(&db).unwrap();
    s.contract_add(&NewContract::simple("acme", 10)).unwrap();
    s.account_add("acme", "alice", &mcvpn::password::hash(PASSWORD))
        .unwrap();
    drop(s);
    let listen = free_addr();
    let metrics = free_addr();
    let key = dir.join("hub.key");
    let hub_key = KeyPair::load_or_create(&key).unwrap().public_key32();
    let settings = HubSettings {
        identity: HubIdentity {
            listen,
            key,
            extra_keys: vec![],
            public_addr: None,
            https_port: None,
        },
        name: "test-hub".into(),
        mesh_addr: None,
        db: db.into(),
        db_pool: 1,
        overlay: Default::default(),
        status_socket: dir.join("hub.sock"),
        socket_buffer: 1 << 20,
        min_accounts: 1,
        smtp: None,
        smtp_from: None,
        udp_tuning: Default::default(),
        preauth: Default::default(),
        https: None,
        metrics: Some(MetricsSettings::new(metrics, false).unwrap()),
    };
    tokio::spawn(async move {
        if let Err(e) = mcvpn::hub::run(settings).await {
            panic!("the hub stopped: {e:#}");
        }
    });
    let t0 = Instant::now();
    while TcpStream::connect(listen).await.is_err() || TcpStream::connect(metrics).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the hub did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (listen, hub_key, metrics)
}

/// A node login as `mcvpn up` sends it; the channel stays open (a session lasts as long).
async fn login(hub: SocketAddr, hub_key: Key32, password: &str) -> (Event, ChannelReader, ChannelWriter) {
    let me = KeyPair::generate();
    let stream = TcpStream::connect(hub).await.unwrap();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
    };
    let (mut rd, mut wr) = channel::initiate(Box::new(stream), &me, &hub_key, &hello)
        .await
        .unwrap();
    wr.send(&Request::Login {
        account: Some("alice".into()),
        credential: Credential::Password {
            password: password.into(),
        },
        role: Role::Client,
        hostname: "metrics-test".into(),
        boot_id: 1,
        enroll: false,
    })
    .await
    .unwrap();
    let answer: Event = tokio::time::timeout(Duration::from_secs(30), rd.recv())
        .await
        .unwrap()
        .unwrap();
    (answer, rd, wr)
}

/// One GET; the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// The metrics, parsed by a Prometheus text parser.
async fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .map_or(0.0, |x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a plain value"),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_traffic_and_readyz_turns_503_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, hub_key, metrics) = start_hub(dir.path()).await;

    assert_eq!(get(metrics, "/healthz").await.0, 200);
    assert_eq!(get(metrics, "/readyz").await, (200, "ready\n".to_string()));
    assert_eq!(get(metrics, "/nothing").await.0, 404);

    let before = scrape(metrics).await;
    assert_eq!(value(&before, "mcvpn_sessions", &[("role", "client")]), 0.0);
    assert_eq!(
        value(&before, "mcvpn_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );

    // One refused login, one accepted (kept open), ten datagrams the relay must drop.
    let (refused, ..) = login(hub, hub_key, "wrong password").await;
    assert!(matches!(refused, Event::Refused { .. }), "{refused:?}");
    let (ok, _rd, _wr) = login(hub, hub_key, PASSWORD).await;
    assert!(matches!(ok, Event::LoginOk(_)), "{ok:?}");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..10 {
        udp.send_to(b"not a relay datagram", hub).unwrap();
    }

    let t0 = Instant::now();
    let after = loop {
        let s = scrape(metrics).await;
        let dropped: f64 = ["malformed", "unauthorised", "no_route"]
            .iter()
            .map(|r| value(&s, "mcvpn_relay_datagrams_total", &[("result", r)]))
            .sum();
        if dropped >= 10.0 || t0.elapsed() > Duration::from_secs(5) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let dropped_before: f64 = ["malformed", "unauthorised", "no_route"]
        .iter()
        .map(|r| value(&before, "mcvpn_relay_datagrams_total", &[("result", r)]))
        .sum();
    let dropped_after: f64 = ["malformed", "unauthorised", "no_route"]
        .iter()
        .map(|r| value(&after, "mcvpn_relay_datagrams_total", &[("result", r)]))
        .sum();
    println!("relay datagrams dropped: {dropped_before} -> {dropped_after}");
    assert_eq!(dropped_after - dropped_before, 10.0);
    assert_eq!(value(&after, "mcvpn_logins_total", &[("result", "ok")]), 1.0);
    assert_eq!(
        value(
            &after,
            "mcvpn_logins_total",
            &[("result", "refused"), ("reason", "wrong_credentials")]
        ),
        1.0
    );
    assert_eq!(value(&after, "mcvpn_sessions", &[("role", "client")]), 1.0);
    assert_eq!(value(&after, "mcvpn_sessions", &[("role", "target")]), 0.0);
    assert!(
        value(&after, "mcvpn_preauth_connections_total", &[("result", "admitted")])
            >= value(&before, "mcvpn_preauth_connections_total", &[("result", "admitted")]) + 2.0
    );
    assert!(
        after
            .samples
            .iter()
            .any(|x| x.metric == "mcvpn_store_call_seconds_count" || x.metric == "mcvpn_store_call_seconds"),
        "no store latency histogram"
    );
    assert_eq!(value(&after, "mcvpn_notice_outbox_unsent", &[]), 0.0);
    assert!(
        after.samples.iter().any(|x| x.metric == "mcvpn_notice_outbox_unsent"),
        "no outbox gauge"
    );

    // Told to stop (as systemd does), the hub is no longer ready.
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
    let t0 = Instant::now();
    loop {
        let (code, body) = get(metrics, "/readyz").await;
        if code == 503 {
            assert_eq!(body, "not ready: stopping\n");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "/readyz still {code} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
