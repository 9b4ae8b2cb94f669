//! `mcvpn debug relay-probe`: a deliberately misbehaving client for tests. It logs in
//! for real, binds its UDP endpoint for real (answering the hub's challenge), then sends relay datagrams naming any node
//! id it is told to, whether the hub announced that node or not. A correct hub drops
//! what is not authorised and counts it; the probe reports what came back.

use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::relay_state::RelayState;
use super::session;
use super::ControlSettings;
use crate::keys::KeyPair;
use crate::proto::control::{Credential, Event, Role};
use crate::proto::relay::{write_data_header, HEADER_LEN};
use crate::proto::url::HubUrl;

pub struct ProbeOptions {
    pub hub: String,
    pub account: String,
    pub password: String,
    pub to_node: u32,
    pub count: u32,
}

pub fn run(opts: ProbeOptions) -> Result<serde_json::Value> {
    let settings = ControlSettings::direct(
        Role::Client,
        HubUrl::parse(&opts.hub)?,
        KeyPair::generate(),
        Some(opts.account.clone()),
        "relay-probe".into(),
    );
    let rt = tokio::runtime::Runtime::new()?;
    let (login, _rd, _wr) = match rt.block_on(session::login(
        &settings,
        rand::random(),
        Credential::Password {
            password: opts.password.into(),
        },
        false,
        None,
    )) {
        Ok((Event::LoginOk(ok), c)) => (ok, c.rd, c.wr),
        Ok(_) => bail!("unexpected answer to login"),
        Err(e) => bail!("{e}"),
    };
    let hub_addr = settings
        .hub
        .authority()
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("hub address resolves to nothing"))?;
    let udp = UdpSocket::bind("0.0.0.0:0")?;
    udp.connect(hub_addr)?;
    udp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let relay = RelayState::default();
    relay.start(login.node_id, login.session_id, *login.relay_key.expose_secret());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while !relay.is_bound(Instant::now()) {
        if Instant::now() > deadline {
            bail!("the hub never acknowledged the bind");
        }
        if let Some(bind) = relay.bind_due(Instant::now()) {
            udp.send(&bind)?;
        }
        if let Ok(n) = udp.recv(&mut buf) {
            // A first bind is challenged: answer from this socket, as the data path does.
            if let Some(answer) = relay.on_challenge(&buf[..n]) {
                udp.send(&answer)?;
            } else {
                relay.on_bound(&buf[..n], Instant::now());
            }
        }
    }
    // A plausible WireGuard handshake initiation size, content irrelevant to the hub.
    let mut datagram = vec![0u8; HEADER_LEN + 148];
    write_data_header(&mut datagram, opts.to_node);
    datagram[HEADER_LEN] = 1;
    for _ in 0..opts.count {
        udp.send(&datagram).context("send failed")?;
    }
    let mut answers = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if udp.recv(&mut buf).is_ok() {
            answers += 1;
        }
    }
    Ok(serde_json::json!({
        "node_id": login.node_id,
        "announced_peers": login.peers.iter().map(|p| p.node_id).collect::<Vec<_>>(),
        "sent": opts.count,
        "to_node": opts.to_node,
        "answers": answers,
    }))
}
