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
    let tcp = match proxy {
        Some(proxy) => super::proxy::connect(proxy, &authority, timeout).await?,
        None => connect_tcp(Peer::Hub, &hub.host, hub.https_port, deadline).await?,
    };

    let server_name = match hub.host.parse::<std::net::IpAddr>() {
        // An address: no SNI (RFC 6066 allows names only).
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(hub.host.clone()).map_err(|e| DialError::Tls {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?,
    };
    let tls = tokio::time::timeout_at(deadline, TlsConnector::from(tls_config()).connect(server_name, tcp))
        .await
        .map_err(|_| DialError::TlsTimeout {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
        })?
        .map_err(|source| DialError::Tls {
            hub: authority.clone(),
            proxy: proxy_name.clone(),
            source,
        })?;

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
