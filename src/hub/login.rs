//! A node's login: authentication, then either the answer to an enrolment or the start
//! of a session (recorded in the store, put online in the registry), which then runs
//! in a task of its own until the connection closes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;

use super::auth::{self, LoginRequest, Outcome};
use super::context::HubContext;
use super::registry::{Push, Ticket};
use super::reply::{refuse, Refusal};
use super::session;
use crate::channel::{ChannelReader, ChannelWriter};
use crate::proto::control::{Credential, Event, Key32, LoginOk, RefuseReason, Role};
use crate::store::{AccountRecord, DeviceRecord};

/// A `Request::Login`, as the node sent it.
pub(super) struct NodeLogin {
    pub account: Option<String>,
    pub credential: Credential,
    pub role: Role,
    pub hostname: String,
    pub boot_id: u64,
    pub enroll: bool,
}

/// A node logged in and told so: what its session needs, and nothing of the login.
pub(super) struct LoggedIn {
    ticket: Ticket,
    events: mpsc::UnboundedReceiver<Push>,
}

/// Serves a node's login: answers the refusal or the enrolment (`None`), or starts the
/// session and answers `LoginOk` (`Some`: the caller runs it with [`run_session`]).
pub(super) async fn serve(
    ctx: &Arc<HubContext>,
    source: SocketAddr,
    remote_key: Key32,
    login: NodeLogin,
    wr: &mut ChannelWriter,
) -> Result<Option<LoggedIn>> {
    let (device, account, resume_token) = match authenticate(ctx, source, &remote_key, &login).await {
        Err(r) => {
            // Counted, and logged once a minute, by the refusal log: a line each would
            // let a flood fill the journal.
            tracing::debug!(%source, reason = ?r.reason, "login refused");
            ctx.login.results.refused(r.reason);
            return refuse(wr, &r).await.map(|()| None);
        }
        Ok(Outcome::Enrolled { device }) => {
            ctx.login.results.enrolled();
            return enrolled(wr, source, &device).await.map(|()| None);
        }
        Ok(Outcome::Session {
            device,
            account,
            resume_token,
        }) => (device, account, resume_token),
    };
    let (tx, events) = mpsc::unbounded_channel();
    let name = device.name.clone();
    let (login_ok, ticket) = match start_session(ctx, source, device, &account, login.boot_id, resume_token, tx).await {
        Ok(x) => x,
        Err(r) => {
            ctx.login.results.refused(r.reason);
            return refuse(wr, &r).await.map(|()| None);
        }
    };
    ctx.login.results.ok();
    tracing::info!(%source, node = ticket.node, %name, role = login.role.as_str(), ip = %login_ok.overlay_ip,
        peers = login_ok.peers.len(), "session started");
    if let Err(e) = wr.send(&Event::LoginOk(login_ok)).await {
        // The session started (in the store, in the registry): end it, or it would stay
        // open, shown online, until the device next logs in.
        ctx.registry.leave(ticket, "connection lost before LoginOk").await;
        return Err(e);
    }
    Ok(Some(LoggedIn { ticket, events }))
}

/// Runs a logged-in node's session until either side ends it, then takes it offline.
///
/// It is a task of its own, spawned by the connection's task, which then ends: an idle
/// session holds only this future (under 1 KiB), not the connection task's, which is as
/// large as its largest step (the login, an administrator's command: 6.9 KiB before;
/// issue 15, 10,000 idle sessions a hub).
pub(super) async fn run_session(ctx: Arc<HubContext>, live: LoggedIn, rd: ChannelReader, mut wr: ChannelWriter) {
    let LoggedIn { ticket, mut events } = live;
    let reason = session::run(rd, &mut wr, &mut events).await;
    ctx.registry.leave(ticket, &reason).await;
    wr.shutdown().await;
}

async fn authenticate(
    ctx: &HubContext,
    source: SocketAddr,
    remote_key: &Key32,
    login: &NodeLogin,
) -> Result<Outcome, Refusal> {
    let hostname: String = login.hostname.chars().filter(|c| !c.is_control()).take(64).collect();
    let req = LoginRequest {
        remote_key,
        source,
        role: login.role,
        account: login.account.as_deref(),
        credential: &login.credential,
        hostname: if hostname.is_empty() { "unnamed" } else { &hostname },
        enroll: login.enroll,
    };
    auth::authenticate(&ctx.store, &ctx.login, &req, ctx.overlay).await
}

/// Tells a target it is enrolled; it logs in again with its device key.
async fn enrolled(wr: &mut ChannelWriter, source: SocketAddr, device: &DeviceRecord) -> Result<()> {
    tracing::info!(%source, name = %device.name, ip = %device.overlay_ip, "target enrolled");
    wr.send(&Event::Enrolled {
        node_id: device.node_id(),
        overlay_ip: device.overlay_ip,
        name: device.name.clone(),
    })
    .await?;
    wr.shutdown().await;
    Ok(())
}

/// Records the session in the store and puts the device online.
async fn start_session(
    ctx: &HubContext,
    source: SocketAddr,
    device: DeviceRecord,
    account: &AccountRecord,
    boot_id: u64,
    resume_token: Option<String>,
    tx: mpsc::UnboundedSender<super::registry::Push>,
) -> Result<(LoginOk, Ticket), Refusal> {
    let (device_id, from, hub) = (device.id, source.to_string(), ctx.cluster.name().to_string());
    let store_error = |e: &dyn std::fmt::Display| Refusal::new(RefuseReason::Internal, format!("store: {e}"));
    let db_session = ctx
        .store
        .run(move |s| {
            let _ = s.device_touch(device_id);
            s.session_start(device_id, &from, &hub, boot_id)
        })
        .await
        .map_err(|e| store_error(&e))?
        .map_err(|e| store_error(&e))?;
    match ctx
        .registry
        .join(device, account, boot_id, db_session, resume_token, tx)
        .await
    {
        Ok(x) => Ok(x),
        Err(r) => {
            let _ = ctx
                .store
                .run(move |s| s.session_end(db_session, "join failed", 0, 0))
                .await;
            Err(r)
        }
    }
}
