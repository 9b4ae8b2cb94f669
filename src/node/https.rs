//! A node's way onto the stream transport: TCP to the hub's HTTPS port (directly or
//! through an HTTP `CONNECT` proxy, [`super::proxy`]), TLS 1.3, then the WebSocket
//! upgrade to [`crate::stream::WS_PATH`]. What runs over it is `stream::link`'s.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::proxy::Proxy;
use crate::proto::url::HubUrl;

pub type HubWebSocket = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// The socket buffers asked for on the TCP connection (each way). Only taken when the
/// kernel lets us force them (CAP_NET_ADMIN, which `mcvpn up` has): a plain `SO_RCVBUF`
/// is clamped to `net.core.rmem_max` (often 208 KiB) AND switches off the kernel's
/// receive autotuning, which would be worse than leaving the socket alone.
const TCP_SOCKET_BUFFER: usize = 8 << 20;

/// The most bytes the kernel keeps queued unsent on the connection. The tunnel carries
/// inner TCP flows (and datagrams): a deep send queue in front of a slow uplink turns into
/// seconds of delay that inner congestion control cannot see (it reacts to loss, and
/// nothing is lost, only queued). With a short queue the link pump's writes wait, the
/// loopback UDP socket before it overflows, and the inner flows see loss and slow down,
/// as they would on UDP. 128 KiB refills in time at multi-gigabit rates (the pump is
/// woken as soon as the queue drains below it) and is 100 ms at 10 Mbit/s.
const TCP_NOTSENT_LOWAT: usize = 128 * 1024;

/// Which end a network error is about, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The HTTP proxy.
    Proxy,
    /// The hub's HTTPS port.
    Hub,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Peer::Proxy => "the HTTP proxy",
            Peer::Hub => "the hub's HTTPS port",
        })
    }
}

/// Why dialing failed; Display is the user's message: it names the proxy (host:port) and
/// what it said, or the hub's HTTPS address and what went wrong there.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve {peer} {name}: {source}")]
    Resolve {
        peer: Peer,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{peer} {name} refused the connection (nothing listens there{hint})")]
    Refused {
        peer: Peer,
        name: String,
        hint: &'static str,
    },
    #[error("{peer} {name} does not answer (no TCP connection within the time limit{hint})")]
    ConnectTimeout {
        peer: Peer,
        name: String,
        hint: &'static str,
    },
    #[error("cannot connect to {peer} {name}: {source}")]
    Connect {
        peer: Peer,
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the HTTP proxy {proxy} answered 407 Proxy Authentication Required{}: wrong or missing proxy password \
         ({}give the password with --proxy-password-file)",
        realm.as_ref().map(|r| format!(" (realm {r:?})")).unwrap_or_default(),
        match user { Some(u) => format!("user {u:?}; "), None => "no user in --proxy; write http://USER@host:port and ".into() }
    )]
    ProxyAuth {
        proxy: String,
        realm: Option<String>,
        user: Option<String>,
    },
    #[error("the HTTP proxy {proxy} answered 403 Forbidden: the proxy does not allow CONNECT to {target}")]
    ProxyForbidden { proxy: String, target: String },
    #[error("the HTTP proxy {proxy} answered {status} {reason} to CONNECT {target}")]
    ProxyStatus {
        proxy: String,
        target: String,
        status: u16,
        reason: String,
    },
    #[error("the HTTP proxy {proxy} did not answer CONNECT {target} in time")]
    ProxyTimeout { proxy: String, target: String },
    #[error("the HTTP proxy {proxy} is not speaking HTTP as expected: {detail}")]
    ProxyProtocol { proxy: String, detail: String },
    #[error("the connection to the HTTP proxy {proxy} failed: {source}")]
    ProxyIo {
        proxy: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with the hub's HTTPS port {hub}{} failed: {source}", via(.proxy))]
    Tls {
        hub: String,
        proxy: Option<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with the hub's HTTPS port {hub}{} did not finish in time", via(.proxy))]
    TlsTimeout { hub: String, proxy: Option<String> },
    #[error(
        "the hub's HTTPS port {hub}{} refused the WebSocket upgrade with HTTP {status} (is it an mcvpn hub, \
         and is https= in the server URL right?)", via(.proxy)
    )]
    UpgradeRefused {
        hub: String,
        proxy: Option<String>,
        status: u16,
    },
    #[error("the WebSocket upgrade at the hub's HTTPS port {hub}{} failed: {source}", via(.proxy))]
    Upgrade {
        hub: String,
        proxy: Option<String>,
        #[source]
        source: Box<tungstenite::Error>,
    },
    #[error("the WebSocket upgrade at the hub's HTTPS port {hub}{} did not finish in time", via(.proxy))]
    UpgradeTimeout { hub: String, proxy: Option<String> },
}

fn via(proxy: &Option<String>) -> String {
    proxy
        .as_ref()
        .map(|p| format!(" (via the HTTP proxy {p})"))
        .unwrap_or_default()
}

impl DialError {
    /// True for a proxy's refusal (407/403): retrying will not help.
    pub fn is_proxy_refusal(&self) -> bool {
        matches!(self, DialError::ProxyAuth { .. } | DialError::ProxyForbidden { .. })
    }
}

/// Dials the hub's HTTPS port (`hub.https_authority()`), directly or through `proxy`,
/// TLS 1.3 with SNI = hub.host (when it is a name), then the WebSocket upgrade to
/// `crate::stream::WS_PATH` with `crate::stream::link::ws_config()`. TCP_NODELAY, big
/// socket buffers. `timeout` bounds the whole dial.
pub async fn dial(hub: &HubUrl, proxy: Option<&Proxy>, timeout: Duration) -> Result<HubWebSocket, DialError> {
    let deadline = Instant::now() + timeout;
    let authority = hub.https_authority();
    let proxy_name = proxy.map(|p| p.url.authority());
    let tls = tls_to_hub(hub, proxy, timeout, deadline).await?;

    let upgrade_error = |source: tungstenite::Error| match source {
        tungstenite::Error::Http(response) => DialError::UpgradeRefused {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
            status: response.status().as_u16(),
        },
        source => DialError::Upgrade {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
            source: Box::new(source),
        },
    };
    let request = format!("wss://{authority}{}", crate::stream::WS_PATH)
        .into_client_request()
        .map_err(upgrade_error)?;
    let (ws, _response) = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::client_async_with_config(request, tls, Some(crate::stream::link::ws_config())),
    )
    .await
    .map_err(|_| DialError::UpgradeTimeout {
        hub: authority.clone(),
        proxy: proxy_name.clone(),
    })?
    .map_err(upgrade_error)?;
    tracing::debug!(hub = %authority, proxy = ?proxy_name, "WebSocket to the hub open");
    Ok(ws)
}

/// TCP to the hub's HTTPS port (directly or through `proxy`), then TLS 1.3 with SNI =
/// hub.host when it is a name; by `deadline`.
async fn tls_to_hub(
    hub: &HubUrl,
    proxy: Option<&Proxy>,
    timeout: Duration,
    deadline: Instant,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DialError> {
    let authority = hub.https_authority();
    let proxy_name = proxy.map(|p| p.url.authority());
    let tcp = match proxy {
        Some(proxy) => super::proxy::connect(proxy, &authority, timeout).await?,
        None => connect_tcp(Peer::Hub, hub.host(), hub.https_port, deadline).await?,
    };
    let server_name = match hub.host().parse::<std::net::IpAddr>() {
        // An address: no SNI (RFC 6066 allows names only).
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(hub.host().to_string()).map_err(|e| DialError::Tls {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?,
    };
    tokio::time::timeout_at(deadline, TlsConnector::from(tls_config()).connect(server_name, tcp))
        .await
        .map_err(|_| DialError::TlsTimeout {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
        })?
        .map_err(|source| DialError::Tls {
            hub: authority,
            proxy: proxy_name,
            source,
        })
}

/// What the hub's HTTPS port answered to `GET /` (`mcvpn diagnose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontPage {
    pub status: u16,
    /// The `Date` header, as sent.
    pub date: Option<String>,
}

/// `GET /` on the hub's HTTPS port, as [`dial`] reaches it (the proxy, TLS), reading at
/// most 16 KiB: enough to tell that the port answers HTTPS, and the hub's clock.
pub async fn fetch_front_page(hub: &HubUrl, proxy: Option<&Proxy>, timeout: Duration) -> Result<FrontPage, DialError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + timeout;
    let authority = hub.https_authority();
    let proxy_name = proxy.map(|p| p.url.authority());
    let mut tls = tls_to_hub(hub, proxy, timeout, deadline).await?;
    let io_error = |source: std::io::Error| DialError::Tls {
        hub: authority.clone(),
        proxy: proxy_name.clone(),
        source,
    };
    let request =
        format!("GET / HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: mcvpn-diagnose\r\nConnection: close\r\n\r\n");
    let mut head = Vec::with_capacity(2048);
    let read = async {
        tls.write_all(request.as_bytes()).await?;
        let mut buf = [0u8; 2048];
        while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .map_err(|_| DialError::TlsTimeout {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
        })?
        .map_err(io_error)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&head) {
        Ok(_) if response.code.is_some() => Ok(FrontPage {
            status: response.code.unwrap_or(0),
            date: response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("date"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned()),
        }),
        _ => Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the answer to GET / is not HTTP",
        ))),
    }
}

/// TCP to `host:port` (every address it resolves to, in turn, until `deadline`), with
/// TCP_NODELAY (control messages and datagram batches must not wait for Nagle) and big
/// buffers set before the connect, so that the window scale offered covers them.
pub(crate) async fn connect_tcp(peer: Peer, host: &str, port: u16, deadline: Instant) -> Result<TcpStream, DialError> {
    let name = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let hint = match peer {
        Peer::Proxy => "; is --proxy or HTTPS_PROXY right?",
        Peer::Hub => "; is https= in the server URL right, and does the hub listen with --https-listen?",
    };
    let addrs: Vec<SocketAddr> = tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| DialError::ConnectTimeout {
            peer,
            name: name.clone(),
            hint,
        })?
        .map_err(|source| DialError::Resolve {
            peer,
            name: name.clone(),
            source,
        })?
        .collect();
    let mut last = None;
    for addr in &addrs {
        let attempt = async {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            force_socket_buffers(&socket);
            let stream = socket.connect(*addr).await?;
            stream.set_nodelay(true)?;
            limit_unsent(&stream);
            Ok::<_, std::io::Error>(stream)
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Err(_) => return Err(DialError::ConnectTimeout { peer, name, hint }),
            Ok(Ok(stream)) => {
                tracing::debug!(%peer, %addr, "TCP connected");
                return Ok(stream);
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, %addr, error = %e, "TCP connect failed");
                last = Some(e);
            }
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => DialError::Refused { peer, name, hint },
        Some(source) => DialError::Connect { peer, name, source },
        None => DialError::Resolve {
            peer,
            name,
            source: std::io::Error::other("no address"),
        },
    })
}

/// See [`TCP_SOCKET_BUFFER`]: forced or not at all.
fn force_socket_buffers(socket: &TcpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    let rcv = setsockopt(socket, sockopt::RcvBufForce, &TCP_SOCKET_BUFFER);
    let snd = setsockopt(socket, sockopt::SndBufForce, &TCP_SOCKET_BUFFER);
    if rcv.is_err() || snd.is_err() {
        tracing::debug!("cannot force TCP socket buffers (no CAP_NET_ADMIN): kernel autotuning decides");
    }
}

/// Keeps at most [`TCP_NOTSENT_LOWAT`] bytes queued unsent in the kernel (the
/// in-flight window is still the big buffer's). See the constant for why.
fn limit_unsent(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let value = TCP_NOTSENT_LOWAT as libc::c_int;
    // SAFETY: the fd is the live socket `stream` owns; the option value is a c_int on the
    // stack, passed with its exact size; setsockopt only reads it.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot set TCP_NOTSENT_LOWAT");
    }
}

/// The client TLS configuration, built once: TLS 1.3 only, ring, ALPN http/1.1 (what a
/// browser's WebSocket offers), and [`AnyCertificate`].
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("ring supports TLS 1.3")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// Accepts whatever certificate the server shows, but still checks that the server
/// holds its key (the handshake signature), so the TLS session itself is sound.
///
/// Why not verify it against the web PKI: security does not rest on this TLS layer.
/// Inside the WebSocket the control channel runs the Noise IK handshake, which pins the
/// hub's static key from the server URL (`?key=…`); a man in the middle of the TLS can
/// read only ciphertext and cannot complete that handshake, and relay datagrams are
/// WireGuard, end to end between the peers. TLS is here so that the connection looks
/// like ordinary HTTPS to every middlebox. Verifying it would only refuse hubs with the
/// self-made certificate they start with, and the TLS-inspecting proxies of corporate
/// networks, which re-sign every site with their own CA: both must work.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Not reached (the configuration offers TLS 1.3 only), but checked all the same.
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;

    fn hub_url(host: &str, https_port: u16) -> HubUrl {
        HubUrl::single(host, 51820, vec![crate::proto::control::Key32([7; 32])], https_port)
    }

    fn server_tls() -> tokio_rustls::TlsAcceptor {
        let cert = rcgen::generate_simple_self_signed(vec!["hub.test".into()]).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key.into())
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// What the test hub saw of one client.
    #[derive(Debug)]
    struct Seen {
        sni: Option<String>,
        path: String,
        version: Option<rustls::ProtocolVersion>,
    }

    /// A hub's HTTPS port in miniature: TLS with a self-signed certificate, the
    /// WebSocket upgrade, then every binary message echoed back. One connection.
    #[allow(clippy::result_large_err)] // tungstenite's callback type, not ours
    async fn echo_hub() -> (SocketAddr, tokio::task::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = server_tls();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            let (_, conn) = tls.get_ref();
            let sni = conn.server_name().map(str::to_string);
            let version = conn.protocol_version();
            let mut path = String::new();
            let mut ws =
                tokio_tungstenite::accept_hdr_async(tls, |req: &tungstenite::handshake::server::Request, resp| {
                    path = req.uri().path().to_string();
                    Ok(resp)
                })
                .await
                .unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_binary() {
                    ws.send(msg).await.unwrap();
                }
            }
            Seen { sni, path, version }
        });
        (addr, task)
    }

    async fn round_trip(ws: &mut HubWebSocket) {
        for len in [1usize, 1500, crate::stream::frame::MAX_MESSAGE] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            ws.send(Message::binary(payload.clone())).await.unwrap();
            let back = ws.next().await.unwrap().unwrap();
            assert_eq!(back.into_data().as_ref(), &payload[..], "{len} bytes");
        }
    }

    #[tokio::test]
    async fn dial_by_name_sends_sni_and_carries_binary_messages() {
        let (addr, hub) = echo_hub().await;
        // "localhost" resolves to the loopback listener and is sent as SNI.
        let mut ws = dial(&hub_url("localhost", addr.port()), None, Duration::from_secs(5))
            .await
            .unwrap();
        round_trip(&mut ws).await;
        ws.close(None).await.unwrap();
        drop(ws);
        let seen = hub.await.unwrap();
        assert_eq!(seen.sni.as_deref(), Some("localhost"));
        assert_eq!(seen.path, crate::stream::WS_PATH);
        assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_3));
    }

    #[tokio::test]
    async fn dial_by_address_sends_no_sni() {
        let (addr, hub) = echo_hub().await;
        let mut ws = dial(&hub_url("127.0.0.1", addr.port()), None, Duration::from_secs(5))
            .await
            .unwrap();
        round_trip(&mut ws).await;

        // The socket options dial promises.
        let tcp = ws.get_ref().get_ref().0;
        assert!(tcp.nodelay().unwrap());
        let mut lowat: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        use std::os::fd::AsRawFd;
        // SAFETY: a live socket, an int-sized out value and its length, both on the stack.
        let rc = unsafe {
            libc::getsockopt(
                tcp.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                std::ptr::addr_of_mut!(lowat).cast(),
                &mut len,
            )
        };
        assert_eq!((rc, lowat as usize), (0, TCP_NOTSENT_LOWAT));
        if nix::unistd::geteuid().is_root() {
            use nix::sys::socket::{getsockopt, sockopt};
            // The kernel reports twice what it was given.
            assert_eq!(getsockopt(tcp, sockopt::RcvBuf).unwrap(), 2 * TCP_SOCKET_BUFFER);
            assert_eq!(getsockopt(tcp, sockopt::SndBuf).unwrap(), 2 * TCP_SOCKET_BUFFER);
        }
        drop(ws);
        assert_eq!(hub.await.unwrap().sni, None);
    }

    #[tokio::test]
    async fn nothing_listening_names_the_hub_port() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = dial(&hub_url("127.0.0.1", port), None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, DialError::Refused { peer: Peer::Hub, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("the hub's HTTPS port 127.0.0.1:{port} refused")),
            "{msg}"
        );
        assert!(!err.is_proxy_refusal());
    }

    #[tokio::test]
    async fn upgrade_refused_shows_the_http_status() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = server_tls();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = tls.shutdown().await;
        });
        let err = dial(&hub_url("127.0.0.1", port), None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, DialError::UpgradeRefused { status: 404, .. }), "{err:?}");
        assert!(err.to_string().contains("HTTP 404"), "{err}");
    }

    #[tokio::test]
    async fn not_tls_is_a_tls_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
        });
        let err = dial(&hub_url("127.0.0.1", port), None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, DialError::Tls { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("TLS with the hub's HTTPS port 127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out_within_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(tcp);
        });
        let start = std::time::Instant::now();
        let err = dial(&hub_url("127.0.0.1", port), None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, DialError::TlsTimeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        hold.abort();
    }
}
