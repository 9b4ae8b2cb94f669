//! The node's control session with the hub: connect, log in, follow the hub's pushes,
//! and reconnect with backoff when the hub goes away.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::transport::{self, LinkHandle};
use super::{https, ControlSettings, Node, DEFAULT_SOCKET_BUFFER};
use crate::channel::{self, ChannelReader, ChannelWriter};
use crate::proto::control::{Credential, Event, Hello, LoginOk, RefuseReason, Request, PROTOCOL_VERSION};
use crate::stream::link::ControlEnd;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pings keep the hub's view of us fresh; the hub gives up after 35 s of silence.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// If the hub says nothing (not even a pong) for this long, the connection is dead.
const HUB_SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// Reconnect backoff: doubling from the first to the last value.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// The backoff's ceiling when the URL names several hubs: each attempt tries every hub,
/// and a node must be back (on another hub) within 10 s of its hub's death, which an
/// 8 s wait after one unlucky attempt would break.
pub const BACKOFF_MAX_SEVERAL_HUBS: Duration = Duration::from_secs(2);
/// With several hubs, the first attempt after a lost session goes to the next hub, which
/// is most likely alive: it is made at once, at a random moment within this window, so
/// that the thousands of nodes of a hub that died do not all log in to the next one in
/// the same millisecond. (With one hub, the first wait stays `BACKOFF_MIN`: the hub that
/// went away is restarting at best.)
pub const FIRST_RETRY_SPREAD_SEVERAL_HUBS: Duration = Duration::from_millis(300);
/// How long TCP to one hub may take when the URL names several: a hub that does not
/// answer at all must not hold the others back for `CONNECT_TIMEOUT`.
pub const CONNECT_TIMEOUT_SEVERAL_HUBS: Duration = Duration::from_secs(3);
/// With several hubs, a silent hub is given up sooner (and pinged more often), so that
/// a node whose hub vanished without a word moves to another within the 10 s bound.
const PING_INTERVAL_SEVERAL_HUBS: Duration = Duration::from_secs(2);
const HUB_SILENCE_LIMIT_SEVERAL_HUBS: Duration = Duration::from_secs(6);
/// How long a target waits after a refusal (a suspended contract) before asking again:
/// short, so that lifting a suspension brings targets back within seconds. A target's
/// login costs the hub no password hashing, so this is cheap.
pub const REFUSED_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum LoginError {
    /// The hub answered and said no.
    Refused {
        reason: RefuseReason,
        message: String,
        retry_after_s: Option<u64>,
    },
    /// The hub could not be reached or the exchange broke.
    Failed(anyhow::Error),
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Refused { message, reason, .. } => write!(f, "the hub refused: {message} ({})", reason.hint()),
            LoginError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// Why a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    Lost(String),
    Kicked { reason: RefuseReason, message: String },
}

async fn resolve(authority: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("cannot resolve the hub address {authority}"))?
        .collect();
    if addrs.is_empty() {
        return Err(anyhow!("the hub address {authority} resolves to nothing"));
    }
    Ok(addrs)
}

/// An open control channel, and the HTTPS link it runs over when it does (that link
/// also carries the node's datagrams when they go over HTTPS).
pub struct Connected {
    pub rd: ChannelReader,
    pub wr: ChannelWriter,
    pub link: Option<LinkHandle>,
    /// Which hub of the server URL answered (its index in `HubUrl::hubs`).
    pub hub: usize,
}

/// How long TCP to the hub's control port may take in `auto` before the control
/// channel takes the HTTPS link instead.
pub const TCP_FALLBACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to the first hub of the server URL that answers, in the URL's order (see
/// [`connect_in_order`]).
pub async fn connect(settings: &ControlSettings, data_socket: Option<SocketAddr>) -> anyhow::Result<Connected> {
    connect_in_order(settings, data_socket, &settings.hub.try_order(None)).await
}

/// Tries the hubs of the server URL in `order` (indexes into `HubUrl::hubs`) and
/// returns the first connection that works, with the hub it reached. A proxy's refusal
/// stops the search (the user must fix it, and it would refuse the others too).
pub async fn connect_in_order(
    settings: &ControlSettings,
    data_socket: Option<SocketAddr>,
    order: &[usize],
) -> anyhow::Result<Connected> {
    let several = settings.hub.hubs().len() > 1;
    let mut failures = Vec::new();
    for &index in order {
        let hub = settings.hub.only(index);
        match connect_to(settings, &hub, data_socket, several).await {
            Ok(mut c) => {
                c.hub = index;
                return Ok(c);
            }
            Err(e) if is_proxy_refusal(&e) || !several => return Err(e),
            Err(e) => {
                tracing::info!(hub = %hub.first(), error = %format!("{e:#}"), "hub not reachable; trying the next");
                failures.push(format!("{}: {e:#}", hub.first()));
            }
        }
    }
    Err(match failures.len() {
        0 => anyhow!("no hub to try"),
        _ => anyhow!("no hub of the server URL answered ({})", failures.join("; ")),
    })
}

/// Connects to the one hub `hub` names and runs the Noise handshake, trying each pinned
/// hub key in turn (during a key rotation the URL carries two). The control channel
/// runs over TCP to the hub's port, or over the HTTPS link (see
/// [`ControlSettings::transport`]): `auto` takes the link when a proxy is set or TCP
/// fails within 3 s. `data_socket` is where that link's datagrams go (the node's data
/// path socket; None for a one-shot command, which has none). `several`: the URL names
/// other hubs too, so a silent one is given up sooner.
async fn connect_to(
    settings: &ControlSettings,
    hub: &crate::proto::url::HubUrl,
    data_socket: Option<SocketAddr>,
    several: bool,
) -> anyhow::Result<Connected> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: settings.role,
    };
    let mode = settings.transport;
    let mut over_link = transport::control_over_link_first(mode, settings.proxy.as_ref());
    let mut last_err = anyhow!("no hub key to try");
    for hub_key in &hub.keys {
        if !over_link {
            let tcp_timeout = if transport::control_may_use_link(mode) {
                TCP_FALLBACK_TIMEOUT
            } else if several {
                CONNECT_TIMEOUT_SEVERAL_HUBS
            } else {
                CONNECT_TIMEOUT
            };
            match connect_tcp(hub, tcp_timeout).await {
                Ok(stream) => match channel::initiate(Box::new(stream), &settings.key, hub_key, &hello).await {
                    Ok((rd, wr)) => {
                        return Ok(Connected {
                            rd,
                            wr,
                            link: None,
                            hub: 0,
                        })
                    }
                    Err(e) => {
                        last_err = e;
                        continue;
                    }
                },
                Err(e) if transport::control_may_use_link(mode) => {
                    tracing::info!(error = %format!("{e:#}"), "no TCP to the hub's control port; trying its HTTPS port");
                    over_link = true;
                }
                Err(e) => return Err(e),
            }
        }
        let ws = https::dial(hub, settings.proxy.as_ref(), transport::DIAL_TIMEOUT)
            .await
            .map_err(|e| {
                let message = format!("cannot reach the hub's HTTPS port {}: {e}", hub.https_authority());
                if e.is_proxy_refusal() {
                    anyhow::Error::new(ProxyRefused(message))
                } else {
                    anyhow!(message)
                }
            })?;
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let link = transport::start_link(ws, data_socket, ControlEnd::Ready(theirs), DEFAULT_SOCKET_BUFFER)?;
        match channel::initiate(Box::new(ours), &settings.key, hub_key, &hello).await {
            Ok((rd, wr)) => {
                tracing::info!(via = %transport::label(true, settings.proxy.as_ref()), "control channel over the HTTPS link");
                return Ok(Connected {
                    rd,
                    wr,
                    link: Some(link),
                    hub: 0,
                });
            }
            Err(e) => {
                link.close();
                last_err = e;
            }
        }
    }
    Err(last_err)
}

/// A proxy's refusal (407, 403, connection refused), with the message that names the
/// proxy and what it said: waiting does not fix it, the user must.
#[derive(Debug)]
pub struct ProxyRefused(pub String);

impl std::fmt::Display for ProxyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyRefused {}

/// Whether `e` is (or was caused by) a proxy's refusal.
pub fn is_proxy_refusal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ProxyRefused>().is_some()
}

async fn connect_tcp(hub: &crate::proto::url::HubUrl, limit: Duration) -> anyhow::Result<TcpStream> {
    let addrs = resolve(&hub.authority()).await?;
    let stream = timeout(limit, TcpStream::connect(&addrs[..]))
        .await
        .map_err(|_| anyhow!("no answer from the hub at {} within {limit:?}", hub.authority()))?
        .with_context(|| format!("cannot connect to the hub at {}", hub.authority()))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends the first request of a connection and returns the hub's answer with the
/// still-open channel.
pub async fn request(
    settings: &ControlSettings,
    req: &Request,
    data_socket: Option<SocketAddr>,
) -> anyhow::Result<(Event, Connected)> {
    request_in_order(settings, req, data_socket, &settings.hub.try_order(None)).await
}

/// [`request`] to the first hub that answers, trying them in `order`.
async fn request_in_order(
    settings: &ControlSettings,
    req: &Request,
    data_socket: Option<SocketAddr>,
    order: &[usize],
) -> anyhow::Result<(Event, Connected)> {
    let Connected {
        mut rd,
        mut wr,
        link,
        hub,
    } = connect_in_order(settings, data_socket, order).await?;
    wr.send(req).await?;
    let answer: Event = timeout(ANSWER_TIMEOUT, rd.recv())
        .await
        .map_err(|_| anyhow!("the hub did not answer within {ANSWER_TIMEOUT:?}"))?
        .map_err(|e| e.context("the hub closed the connection before answering"))?;
    Ok((answer, Connected { rd, wr, link, hub }))
}

/// Connects to the hub and logs in. Returns the hub's first answer (`LoginOk` or
/// `Enrolled`) and the open channel.
pub async fn login(
    settings: &ControlSettings,
    boot_id: u64,
    credential: Credential,
    enroll: bool,
    data_socket: Option<SocketAddr>,
) -> Result<(Event, Connected), LoginError> {
    login_in_order(
        settings,
        boot_id,
        credential,
        enroll,
        data_socket,
        &settings.hub.try_order(None),
    )
    .await
}

/// [`login`] at the first hub that answers, trying them in `order`.
async fn login_in_order(
    settings: &ControlSettings,
    boot_id: u64,
    credential: Credential,
    enroll: bool,
    data_socket: Option<SocketAddr>,
    order: &[usize],
) -> Result<(Event, Connected), LoginError> {
    let req = Request::Login {
        account: settings.account.clone(),
        credential,
        role: settings.role,
        hostname: settings.hostname.clone(),
        boot_id,
        enroll,
    };
    match request_in_order(settings, &req, data_socket, order)
        .await
        .map_err(LoginError::Failed)?
    {
        (
            Event::Refused {
                reason,
                message,
                retry_after_s,
            },
            _,
        ) => Err(LoginError::Refused {
            reason,
            message,
            retry_after_s,
        }),
        (ok @ (Event::LoginOk(_) | Event::Enrolled { .. }), connected) => Ok((ok, connected)),
        (other, _) => Err(LoginError::Failed(anyhow!("unexpected answer to login: {other:?}"))),
    }
}

/// A node's login: its control channel may take the HTTPS link, whose datagrams then
/// reach the node's data path socket; the node keeps that link (see `transport`).
/// The hubs are tried in the node's order (see [`Node::hub_order`]); a login on another
/// hub than before moves the node there (its datagrams included) before it returns, so
/// that the caller's `apply_login` binds at the new hub.
pub async fn login_node(
    node: &Node,
    credential: Credential,
) -> Result<(Event, ChannelReader, ChannelWriter), LoginError> {
    let data_socket = node
        .data_socket_addr()
        .map_err(|e| LoginError::Failed(anyhow!("cannot read the data path socket's address: {e}")))?;
    let (event, c) = login_in_order(
        &node.settings.control,
        node.boot_id,
        credential,
        false,
        Some(data_socket),
        &node.hub_order(),
    )
    .await?;
    if matches!(event, Event::LoginOk(_)) {
        let addr = if c.hub == node.current_hub() {
            node.hub_addr()
        } else {
            // Of the UDP socket's address family when the name has one (see `Node::new`).
            let hub = node.settings.control.hub.only(c.hub);
            let addrs = resolve(&hub.authority()).await.map_err(LoginError::Failed)?;
            let v4 = node.hub_addr().is_ipv4();
            addrs.iter().find(|a| a.is_ipv4() == v4).copied().unwrap_or(addrs[0])
        };
        node.logged_in_at(c.hub, addr);
        node.transport.set_control_link(c.link);
    }
    Ok((event, c.rd, c.wr))
}

impl LoginError {
    /// Whether this is a proxy's refusal (the user must fix the proxy or its password).
    pub fn is_proxy_refusal(&self) -> bool {
        matches!(self, LoginError::Failed(e) if is_proxy_refusal(e))
    }
}

/// Follows one established session until it ends: applies pushes, pings the hub.
pub async fn run_session(node: &Node, mut rd: ChannelReader, mut wr: ChannelWriter) -> SessionEnd {
    // Reading is not cancel-safe (a frame may be half read), so it gets its own task.
    let (tx, mut events) = mpsc::channel::<anyhow::Result<Event>>(64);
    let reader = tokio::spawn(async move {
        loop {
            let r = rd.recv::<Event>().await;
            let end = r.is_err();
            if tx.send(r).await.is_err() || end {
                break;
            }
        }
    });
    let (ping_interval, silence_limit) = if node.settings.control.hub.hubs().len() > 1 {
        (PING_INTERVAL_SEVERAL_HUBS, HUB_SILENCE_LIMIT_SEVERAL_HUBS)
    } else {
        (PING_INTERVAL, HUB_SILENCE_LIMIT)
    };
    let mut ping = tokio::time::interval(ping_interval);
    let mut seq = 0u64;
    let mut last_heard = Instant::now();
    let end = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Ok(Event::Kick { reason, message })) => break SessionEnd::Kicked { reason, message },
                Some(Ok(ev)) => {
                    last_heard = Instant::now();
                    node.apply_event(ev);
                }
                Some(Err(e)) => break SessionEnd::Lost(format!("{e:#}")),
                None => break SessionEnd::Lost("connection closed".into()),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > silence_limit {
                    break SessionEnd::Lost(format!("no word from the hub for {} s", silence_limit.as_secs()));
                }
                seq += 1;
                if let Err(e) = wr.send(&Request::Ping { seq }).await {
                    break SessionEnd::Lost(format!("{e:#}"));
                }
            }
        }
    };
    reader.abort();
    wr.shutdown().await;
    end
}

/// Keeps the node connected: runs the session, and when it is lost, logs in again with
/// `credential_for(login)` and exponential backoff. Returns only when the hub refused
/// or kicked us for a reason that waiting will not fix.
pub async fn supervise(
    node: &Node,
    mut login: LoginOk,
    mut rd: ChannelReader,
    mut wr: ChannelWriter,
    credential_for: impl Fn(&LoginOk) -> Credential,
    keep_trying_refusals: bool,
) -> SessionEnd {
    loop {
        node.set_connected(true, None);
        let end = run_session(node, rd, wr).await;
        node.relay.stop();
        match &end {
            SessionEnd::Kicked { reason, message } => {
                tracing::warn!(?reason, %message, "the hub ended the session");
                node.set_connected(false, Some(format!("kicked: {message}")));
                if !keep_trying_refusals && !reason.is_transient() {
                    return end;
                }
            }
            SessionEnd::Lost(why) => {
                tracing::warn!(reason = %why, "lost the hub; reconnecting");
                node.set_connected(false, Some(why.clone()));
            }
        }
        node.hub_lost();
        let several_hubs = node.settings.control.hub.hubs().len() > 1;
        let backoff_max = if several_hubs {
            BACKOFF_MAX_SEVERAL_HUBS
        } else {
            BACKOFF_MAX
        };
        let mut backoff = first_retry_wait(several_hubs);
        loop {
            tokio::time::sleep(backoff).await;
            match login_node(node, credential_for(&login)).await {
                Ok((Event::LoginOk(ok), r, w)) => {
                    if let Err(e) = node.apply_login(&ok) {
                        tracing::error!(error = %e, "cannot apply the new session");
                    }
                    tracing::info!(ip = %ok.overlay_ip, peers = ok.peers.len(), hub = %node.current_hub_addr(),
                        "reconnected to the hub");
                    login = ok;
                    (rd, wr) = (r, w);
                    break;
                }
                Ok(_) => tracing::warn!("unexpected answer to login"),
                Err(LoginError::Refused {
                    reason,
                    message,
                    retry_after_s,
                }) => {
                    tracing::warn!(?reason, %message, "the hub refused the reconnect");
                    node.set_connected(false, Some(format!("refused: {message}")));
                    if !keep_trying_refusals && !reason.is_transient() {
                        return SessionEnd::Kicked { reason, message };
                    }
                    // A refusal (say, a suspended contract) will not change in seconds.
                    let wait = retry_after_s.map_or(REFUSED_RETRY, Duration::from_secs);
                    backoff = wait.max(BACKOFF_MIN);
                    continue;
                }
                Err(e) => tracing::info!(error = %e, "hub not reachable yet"),
            }
            // After a short first wait, the backoff proper: from BACKOFF_MIN, doubling.
            backoff = (backoff * 2).clamp(BACKOFF_MIN, backoff_max);
        }
    }
}

/// The wait before the first reconnect after a lost session.
fn first_retry_wait(several_hubs: bool) -> Duration {
    if several_hubs {
        FIRST_RETRY_SPREAD_SEVERAL_HUBS.mul_f64(rand::random::<f64>())
    } else {
        BACKOFF_MIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_several_hubs_the_first_retry_is_at_once_then_the_backoff_proper() {
        for _ in 0..100 {
            assert!(first_retry_wait(true) < FIRST_RETRY_SPREAD_SEVERAL_HUBS);
        }
        assert_eq!(first_retry_wait(false), BACKOFF_MIN);
        // The wait after a failed first attempt is the backoff's first step, not twice a
        // few milliseconds.
        let second = (first_retry_wait(true) * 2).clamp(BACKOFF_MIN, BACKOFF_MAX_SEVERAL_HUBS);
        assert_eq!(second, BACKOFF_MIN);
    }
}
