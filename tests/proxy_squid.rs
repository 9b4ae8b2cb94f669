//! `node::proxy::connect` and `node::https::dial` through a real HTTP proxy: Debian's
//! squid, started per test on loopback with its own configuration (CONNECT allowed to
//! the ports the test names only, Basic authentication from an htpasswd file).
//!
//! Skipped, with a notice, where `/usr/sbin/squid` is not installed
//! (`scripts/install-deps.sh` installs it for CI).

mod common;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mcvpn::node::https::{dial, DialError};
use mcvpn::node::proxy::{connect, Proxy, ProxyUrl};
use mcvpn::proto::url::HubUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const SQUID: &str = "/usr/sbin/squid";
const NCSA_AUTH: &str = "/usr/lib/squid/basic_ncsa_auth";
const USER: &str = "alice";
const PASSWORD: &str = "right horse battery";
const REALM: &str = "mcvpn test proxy";

fn squid_missing() -> bool {
    if Path::new(SQUID).exists() && Path::new(NCSA_AUTH).exists() {
        return false;
    }
    eprintln!("SKIPPED: {SQUID} or {NCSA_AUTH} is not installed (apt-get install squid; scripts/install-deps.sh)");
    true
}

/// A squid of our own: `-N` (no daemon), logs and pid file in a tempdir, gone on drop.
struct Squid {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Squid {
    /// Starts squid on 127.0.0.1 allowing CONNECT to `allowed_ports` only, for
    /// [`USER`] with [`PASSWORD`], and waits until it accepts connections.
    async fn start(allowed_ports: &[u16]) -> Squid {
        let dir = tempfile::tempdir().unwrap();
        // squid drops root for its `cache_effective_user` (Debian: proxy), which must
        // write the logs and read the password file.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let hash = Command::new("openssl")
            .args(["passwd", "-apr1", PASSWORD])
            .output()
            .expect("openssl");
        assert!(hash.status.success(), "openssl passwd: {hash:?}");
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{USER}:{}", String::from_utf8(hash.stdout).unwrap())).unwrap();
        std::fs::set_permissions(&htpasswd, std::fs::Permissions::from_mode(0o644)).unwrap();

        let port = common::free_port();
        let d = dir.path().display();
        let ports: Vec<String> = allowed_ports.iter().map(u16::to_string).collect();
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             pid_filename {d}/squid.pid\n\
             access_log stdio:{d}/access.log\n\
             cache_log {d}/cache.log\n\
             cache_store_log none\n\
             coredump_dir {d}\n\
             cache deny all\n\
             icp_port 0\n\
             htcp_port 0\n\
             shutdown_lifetime 0 seconds\n\
             auth_param basic program {NCSA_AUTH} {htpasswd}\n\
             auth_param basic realm {REALM}\n\
             auth_param basic children 2 startup=1\n\
             acl SSL_ports port {ports}\n\
             acl CONNECT method CONNECT\n\
             acl authed proxy_auth REQUIRED\n\
             http_access deny CONNECT !SSL_ports\n\
             http_access allow authed\n\
             http_access deny all\n",
            htpasswd = htpasswd.display(),
            ports = ports.join(" "),
        );
        let conf_path = dir.path().join("squid.conf");
        std::fs::write(&conf_path, conf).unwrap();
        std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = std::fs::File::create(dir.path().join("squid.out")).unwrap();
        let child = Command::new(SQUID)
            .arg("-N")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start squid");
        let mut squid = Squid { child, port, dir };
        for _ in 0..200 {
            if let Some(status) = squid.child.try_wait().unwrap() {
                panic!("squid exited ({status}) before listening:\n{}", squid.logs());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return squid;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("squid does not listen on {port} after 10 s:\n{}", squid.logs());
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}{}", read("squid.out"), read("cache.log"), read("access.log"))
    }

    fn proxy(&self, user: Option<&str>, password: Option<&str>) -> Proxy {
        Proxy {
            url: ProxyUrl {
                host: "127.0.0.1".into(),
                port: self.port,
                user: user.map(Into::into),
            },
            password: password.map(Into::into),
        }
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP echo listener on loopback (many connections).
async fn echo_listener() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn connect_with_the_right_password_reaches_the_target() {
    if squid_missing() {
        return;
    }
    let echo = echo_listener().await;
    let squid = Squid::start(&[echo.port()]).await;
    let proxy = squid.proxy(Some(USER), Some(PASSWORD));
    let mut tunnel = connect(&proxy, &echo.to_string(), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", squid.logs()));
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = tunnel.split();
    let (_, back) = tokio::join!(async { w.write_all(&payload).await.unwrap() }, async {
        let mut back = vec![0u8; payload.len()];
        r.read_exact(&mut back).await.unwrap();
        back
    });
    assert!(back == payload, "the tunnel changed the bytes");
}

#[tokio::test]
async fn wrong_or_missing_password_is_a_407_naming_the_proxy() {
    if squid_missing() {
        return;
    }
    let echo = echo_listener().await;
    let squid = Squid::start(&[echo.port()]).await;
    for (user, password) in [(Some(USER), Some("wrong")), (Some(USER), None), (None, None)] {
        let err = connect(&squid.proxy(user, password), &echo.to_string(), TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DialError::ProxyAuth { .. }),
            "{user:?}/{password:?}: {err:?}"
        );
        assert!(err.is_proxy_refusal());
        let msg = err.to_string();
        eprintln!("{msg}");
        assert!(msg.contains(&format!("HTTP proxy 127.0.0.1:{}", squid.port)), "{msg}");
        assert!(
            msg.contains("407") && msg.contains("wrong or missing proxy password"),
            "{msg}"
        );
        assert!(msg.contains(REALM), "no realm: {msg}");
    }
}

#[tokio::test]
async fn connect_to_a_port_not_allowed_is_a_403() {
    if squid_missing() {
        return;
    }
    let echo = echo_listener().await;
    let other = echo_listener().await;
    let squid = Squid::start(&[echo.port()]).await;
    let err = connect(&squid.proxy(Some(USER), Some(PASSWORD)), &other.to_string(), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, DialError::ProxyForbidden { .. }), "{err:?}");
    assert!(err.is_proxy_refusal());
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{}", squid.port)) && msg.contains(&format!("CONNECT to {other}")),
        "{msg}"
    );
}

#[tokio::test]
async fn a_proxy_port_with_nothing_listening_is_refused_naming_the_proxy() {
    // No squid needed: nothing listens on the port. The port stays bound (without
    // listen) for the whole test, so a squid started by a test beside this one cannot
    // take it between choosing and connecting; a connect to it is refused.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let proxy = Proxy {
        url: ProxyUrl {
            host: "127.0.0.1".into(),
            port,
            user: None,
        },
        password: None,
    };
    let err = connect(&proxy, "127.0.0.1:443", TIMEOUT).await.unwrap_err();
    assert!(matches!(err, DialError::Refused { .. }), "{err:?}");
    assert!(!err.is_proxy_refusal(), "a proxy that is down may come back");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains(&format!("the HTTP proxy 127.0.0.1:{port} refused the connection")),
        "{msg}"
    );
}

/// A hub's HTTPS port in miniature: TLS 1.3 with a self-signed certificate, the
/// WebSocket upgrade, every binary message echoed.
async fn echo_hub() -> SocketAddr {
    let cert = rcgen::generate_simple_self_signed(vec!["hub.test".into()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key.into())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_binary() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn hub_url(https_port: u16) -> HubUrl {
    HubUrl::single(
        "127.0.0.1",
        51820,
        vec![mcvpn::proto::control::Key32([7; 32])],
        https_port,
    )
}

#[tokio::test]
async fn dial_through_squid_carries_websocket_messages() {
    if squid_missing() {
        return;
    }
    let hub = echo_hub().await;
    let squid = Squid::start(&[hub.port()]).await;
    let proxy = squid.proxy(Some(USER), Some(PASSWORD));
    let mut ws = dial(&hub_url(hub.port()), Some(&proxy), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", squid.logs()));
    for len in [1usize, 1400, mcvpn::stream::frame::MAX_MESSAGE] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
        ws.send(Message::binary(payload.clone())).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_data().as_ref(), &payload[..], "{len} bytes");
    }

    // The same hub through the same proxy with a wrong password: the proxy's refusal,
    // named, not a TLS or hub error.
    let err = dial(
        &hub_url(hub.port()),
        Some(&squid.proxy(Some(USER), Some("nope"))),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(err.is_proxy_refusal(), "{err:?}");
}
