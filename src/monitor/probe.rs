//! One synthetic end-to-end probe through a hub: the monitor runs both ends itself. A
//! probe target logs in (by its device key, enrolling once with the probe password), a
//! probe client logs in with the password, both bind their UDP endpoints with the relay
//! key as real nodes do, and the client sends relay datagrams to the target, which sends
//! them back. The probe passes when an answer returns; its RTT is that round trip.
//!
//! Both ends belong to one probe account of an operator-owned probe contract (a client
//! may reach the targets of its own account), so no grant is needed. Their device keys
//! are kept in files so that each probe logs in as the same two devices rather than
//! registering new ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::UdpSocket;

use crate::keys::KeyPair;
use crate::node::relay_state::RelayState;
use crate::node::session::{self, LoginError};
use crate::node::ControlSettings;
use crate::proto::control::{Credential, Event, LoginOk, RefuseReason, Role};
use crate::proto::relay::{write_data_header, Header, HEADER_LEN};
use crate::proto::url::HubUrl;

/// Who the probe logs in as. Read by the CLI layer.
#[derive(Clone)]
pub struct ProbeAccount {
    pub account: String,
    pub password: String,
    /// The probe client's device key (created on first use, 0600).
    pub client_key: PathBuf,
    /// The probe target's device key (created on first use, 0600; enrolled once).
    pub target_key: PathBuf,
}

/// What a passing probe measured.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOk {
    pub rtt: Duration,
}

/// Datagrams sent per probe: one lost datagram is not an outage.
const DATAGRAMS: u32 = 3;
/// Marks our payloads (not a WireGuard message type, which the hub does not look at).
const MAGIC: &[u8; 8] = b"mcvpnMON";

/// Runs one probe, bounded by `deadline` as a whole.
pub async fn probe(hub: &HubUrl, who: &ProbeAccount, deadline: Duration) -> Result<ProbeOk> {
    tokio::time::timeout(deadline, probe_inner(hub, who))
        .await
        .map_err(|_| anyhow!("the probe did not complete within {deadline:?}"))?
}

fn settings(hub: &HubUrl, role: Role, key: KeyPair, account: &str) -> ControlSettings {
    ControlSettings::direct(
        role,
        hub.clone(),
        key,
        Some(account.to_string()),
        format!("mcvpn-monitor-{}", role_name(role)),
    )
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Target => "target",
    }
}

fn login_error(who: &str, e: LoginError) -> anyhow::Error {
    match e {
        LoginError::Refused { reason, message, .. } => {
            anyhow!("the hub refused the probe {who}: {message} ({reason:?})")
        }
        LoginError::Failed(e) => e.context(format!("probe {who} login")),
    }
}

/// Logs the probe target in by its device key, enrolling it first if the hub does not
/// know it yet.
async fn target_login(hub: &HubUrl, who: &ProbeAccount) -> Result<(LoginOk, session::Connected)> {
    let key = KeyPair::load_or_create(&who.target_key)?;
    let s = settings(hub, Role::Target, key, &who.account);
    match session::login(&s, rand::random(), Credential::DeviceKey, false, None).await {
        Ok((Event::LoginOk(ok), c)) => return Ok((ok, c)),
        Ok((other, _)) => bail!("unexpected answer to the probe target's login: {other:?}"),
        Err(LoginError::Refused {
            reason: RefuseReason::NotEnrolled,
            ..
        }) => {}
        Err(e) => return Err(login_error("target", e)),
    }
    let password = Credential::Password {
        password: who.password.clone().into(),
    };
    match session::login(&s, rand::random(), password, true, None).await {
        Ok((Event::Enrolled { node_id, .. }, _)) => {
            tracing::info!(hub = %hub.authority(), node_id, "probe target enrolled");
        }
        Ok((other, _)) => bail!("unexpected answer to the probe target's enrolment: {other:?}"),
        Err(e) => return Err(login_error("target enrolment", e)),
    }
    match session::login(&s, rand::random(), Credential::DeviceKey, false, None).await {
        Ok((Event::LoginOk(ok), c)) => Ok((ok, c)),
        Ok((other, _)) => bail!("unexpected answer to the probe target's login: {other:?}"),
        Err(e) => Err(login_error("target", e)),
    }
}

async fn client_login(hub: &HubUrl, who: &ProbeAccount) -> Result<(LoginOk, session::Connected)> {
    let key = KeyPair::load_or_create(&who.client_key)?;
    let s = settings(hub, Role::Client, key, &who.account);
    let password = Credential::Password {
        password: who.password.clone().into(),
    };
    match session::login(&s, rand::random(), password, false, None).await {
        Ok((Event::LoginOk(ok), c)) => Ok((ok, c)),
        Ok((other, _)) => bail!("unexpected answer to the probe client's login: {other:?}"),
        Err(e) => Err(login_error("client", e)),
    }
}

/// A bound UDP endpoint of one probe end.
struct Bound {
    udp: UdpSocket,
}

/// Binds a UDP socket to the hub with the relay key of `login`, answering the hub's
/// challenge as the data path does.
async fn bind(hub_addr: SocketAddr, login: &LoginOk) -> Result<Bound> {
    let any: SocketAddr = if hub_addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let udp = UdpSocket::bind(any).await?;
    udp.connect(hub_addr).await?;
    let relay = RelayState::default();
    relay.start(login.node_id, login.session_id, *login.relay_key.expose_secret());
    let mut buf = [0u8; 2048];
    while !relay.is_bound(Instant::now()) {
        if let Some(bind) = relay.bind_due(Instant::now()) {
            udp.send(&bind).await?;
        }
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), udp.recv(&mut buf)).await {
            match relay.on_challenge(&buf[..n]) {
                Some(answer) => {
                    udp.send(&answer).await?;
                }
                None => {
                    relay.on_bound(&buf[..n], Instant::now());
                }
            }
        }
    }
    Ok(Bound { udp })
}

async fn probe_inner(hub: &HubUrl, who: &ProbeAccount) -> Result<ProbeOk> {
    let hub_addr = tokio::net::lookup_host(hub.authority())
        .await
        .with_context(|| format!("cannot resolve {}", hub.authority()))?
        .next()
        .ok_or_else(|| anyhow!("{} resolves to no address", hub.authority()))?;
    // The target first, so that the client's login announces it.
    let (target, _target_conn) = target_login(hub, who).await?;
    let target_end = bind(hub_addr, &target).await.context("probe target bind")?;
    let (client, _client_conn) = client_login(hub, who).await?;
    if !client.peers.iter().any(|p| p.node_id == target.node_id) {
        bail!(
            "the hub did not announce the probe target (node {}) to the probe client: is the probe target \
             registered under the probe account {}?",
            target.node_id,
            who.account
        );
    }
    let client_end = bind(hub_addr, &client).await.context("probe client bind")?;

    let echo = async {
        let mut buf = [0u8; 2048];
        loop {
            let n = target_end.udp.recv(&mut buf).await?;
            let Ok((header, payload)) = Header::parse(&buf[..n]) else {
                continue;
            };
            if header.node != client.node_id || !payload.starts_with(MAGIC) {
                continue;
            }
            // Back to where it came from: the hub rewrote the header to name the source.
            target_end.udp.send(&buf[..n]).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    let ask = async {
        let started = Instant::now();
        let mut buf = [0u8; 2048];
        let mut datagram = vec![0u8; HEADER_LEN + MAGIC.len() + 8];
        write_data_header(&mut datagram, target.node_id);
        datagram[HEADER_LEN..HEADER_LEN + MAGIC.len()].copy_from_slice(MAGIC);
        for seq in 0..DATAGRAMS {
            let sent = Instant::now();
            datagram[HEADER_LEN + MAGIC.len()..].copy_from_slice(&u64::from(seq).to_be_bytes());
            client_end.udp.send(&datagram).await?;
            let wait = tokio::time::sleep(Duration::from_millis(700));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    got = client_end.udp.recv(&mut buf) => {
                        let n = got?;
                        let Ok((header, payload)) = Header::parse(&buf[..n]) else { continue };
                        if header.node == target.node_id && payload == &datagram[HEADER_LEN..] {
                            return Ok(ProbeOk { rtt: sent.elapsed() });
                        }
                    }
                }
            }
        }
        bail!(
            "no relay datagram came back from the probe target in {:?} ({DATAGRAMS} sent)",
            started.elapsed()
        )
    };
    tokio::select! {
        r = ask => r,
        r = echo => Err(r.err().unwrap_or_else(|| anyhow!("the probe target's echo stopped"))),
    }
}
