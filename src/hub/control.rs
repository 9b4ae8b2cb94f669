//! One control connection: Noise handshake, login, then pushes until it closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::auth::{self, LoginRequest, Outcome, Refusal};
use super::{admin, HubContext};
use crate::channel::{self, ChannelReader, ChannelWriter};
use crate::proto::control::{Event, RefuseReason, Request, PROTOCOL_VERSION};

/// A node that says nothing for this long is considered gone (nodes ping every 10 s).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(35);
/// Time allowed from TCP accept to a complete login request.
const LOGIN_DEADLINE: Duration = Duration::from_secs(20);

pub async fn handle(stream: TcpStream, source: SocketAddr, ctx: Arc<HubContext>) {
    if let Err(e) = serve(stream, source, ctx).await {
        tracing::debug!(%source, error = %e, "control connection ended");
    }
}

pub(super) async fn refuse(wr: &mut ChannelWriter, r: &Refusal) -> Result<()> {
    wr.send(&Event::Refused {
        reason: r.reason,
        message: r.message.clone(),
        retry_after_s: r.retry_after_s,
    })
    .await?;
    wr.shutdown().await;
    Ok(())
}

async fn serve(stream: TcpStream, source: SocketAddr, ctx: Arc<HubContext>) -> Result<()> {
    let (login, remote_key, rd, mut wr) = timeout(LOGIN_DEADLINE, async {
        let pending = channel::accept(stream, &ctx.keys).await?;
        // The initiator's static key and hello are known here, before we answer.
        let remote_key = pending.remote_key;
        let version_ok = pending.hello.version == PROTOCOL_VERSION;
        let (mut rd, mut wr) = pending.complete().await?;
        if !version_ok {
            let r = Refusal::new(
                RefuseReason::UnsupportedVersion,
                format!("this hub speaks control protocol version {PROTOCOL_VERSION}"),
            );
            refuse(&mut wr, &r).await?;
            bail!("unsupported protocol version");
        }
        let login: Request = rd.recv().await?;
        Ok::<_, anyhow::Error>((login, remote_key, rd, wr))
    })
    .await
    .map_err(|_| anyhow!("no login within {LOGIN_DEADLINE:?}"))??;

    let account_named = match &login {
        Request::Login { account, .. } => account.clone(),
        Request::Admin { account, .. } | Request::ChangePassword { account, .. } => Some(account.clone()),
        Request::Ping { .. } => None,
    };
    if let Some(wait) = ctx.limiter.check(source.ip(), account_named.as_deref()) {
        let r = Refusal {
            reason: RefuseReason::RateLimited,
            message: format!("too many failed logins; try again in {wait} s"),
            retry_after_s: Some(wait),
        };
        refuse(&mut wr, &r).await?;
        return Ok(());
    }
    let (account, credential, role, hostname, boot_id, enroll) = match login {
        Request::Login {
            account,
            credential,
            role,
            hostname,
            boot_id,
            enroll,
        } => (account, credential, role, hostname, boot_id, enroll),
        Request::Admin {
            account,
            password,
            command,
        } => return admin::serve(&mut wr, &ctx, source, &account, &password, command).await,
        Request::ChangePassword {
            account,
            old_password,
            new_password,
        } => return admin::serve_passwd(&mut wr, &ctx, source, &account, &old_password, &new_password).await,
        Request::Ping { .. } => {
            refuse(
                &mut wr,
                &Refusal::new(RefuseReason::BadRequest, "the first message must be a login"),
            )
            .await?;
            return Ok(());
        }
    };

    let hostname: String = hostname.chars().filter(|c| !c.is_control()).take(64).collect();
    let outcome = {
        let ctx = ctx.clone();
        let account = account.clone();
        tokio::task::spawn_blocking(move || {
            let req = LoginRequest {
                remote_key: &remote_key,
                source,
                role,
                account: account.as_deref(),
                credential: &credential,
                hostname: if hostname.is_empty() { "unnamed" } else { &hostname },
                enroll,
            };
            auth::authenticate(&ctx.store, &req, ctx.overlay)
        })
        .await?
    };

    let (device, account_rec, resume_token) = match outcome {
        Err(r) => {
            if r.reason == RefuseReason::WrongCredentials {
                ctx.limiter.record_failure(source.ip(), account.as_deref());
            }
            tracing::info!(%source, account = ?account, reason = ?r.reason, "login refused");
            refuse(&mut wr, &r).await?;
            return Ok(());
        }
        Ok(Outcome::Enrolled { device }) => {
            tracing::info!(%source, name = %device.name, ip = %device.overlay_ip, "target enrolled");
            wr.send(&Event::Enrolled {
                node_id: device.node_id(),
                overlay_ip: device.overlay_ip,
                name: device.name.clone(),
            })
            .await?;
            wr.shutdown().await;
            return Ok(());
        }
        Ok(Outcome::Session {
            device,
            account,
            resume_token,
        }) => (device, account, resume_token),
    };
    ctx.limiter.record_success(source.ip(), Some(&account_rec.username));

    let db_session = {
        let mut s = ctx.store.lock().unwrap();
        let _ = s.device_touch(device.id);
        s.session_start(device.id, &source.to_string())
    };
    let db_session = match db_session {
        Ok(id) => id,
        Err(e) => {
            refuse(&mut wr, &Refusal::new(RefuseReason::Internal, format!("store: {e}"))).await?;
            return Ok(());
        }
    };
    let (tx, mut events) = mpsc::unbounded_channel();
    let name = device.name.clone();
    let (login_ok, ticket) = match ctx
        .registry
        .join(device, &account_rec, boot_id, db_session, resume_token, tx)
    {
        Ok(x) => x,
        Err(r) => {
            let _ = ctx.store.lock().unwrap().session_end(db_session, "join failed", 0, 0);
            refuse(&mut wr, &r).await?;
            return Ok(());
        }
    };
    tracing::info!(%source, node = ticket.node, %name, role = role.as_str(), ip = %login_ok.overlay_ip,
        peers = login_ok.peers.len(), "session started");
    wr.send(&Event::LoginOk(login_ok)).await?;

    let reason = session_loop(rd, &mut wr, &mut events).await;
    ctx.registry.leave(ticket, &reason);
    wr.shutdown().await;
    Ok(())
}

/// Relays pushes to the node and answers its pings until either side ends the session.
/// Returns why it ended.
async fn session_loop(
    mut rd: ChannelReader,
    wr: &mut ChannelWriter,
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> String {
    // Reading is not cancel-safe (a frame may be half read), so it gets its own task.
    let (req_tx, mut requests) = mpsc::channel::<Result<Request>>(16);
    let reader = tokio::spawn(async move {
        loop {
            let r = rd.recv::<Request>().await;
            let end = r.is_err();
            if req_tx.send(r).await.is_err() || end {
                break;
            }
        }
    });
    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let reason = loop {
        tokio::select! {
            req = requests.recv() => match req {
                Some(Ok(Request::Ping { seq })) => {
                    last_heard = Instant::now();
                    if wr.send(&Event::Pong { seq }).await.is_err() {
                        break "connection lost".to_string();
                    }
                }
                Some(Ok(other)) => {
                    last_heard = Instant::now();
                    tracing::debug!(?other, "ignoring unexpected request in session");
                }
                Some(Err(e)) => break format!("closed by node ({e})").replace("early eof", "disconnected"),
                None => break "closed by node".to_string(),
            },
            ev = events.recv() => match ev {
                Some(ev) => {
                    let kicked = matches!(ev, Event::Kick { .. });
                    if wr.send(&ev).await.is_err() {
                        break "connection lost".to_string();
                    }
                    if kicked {
                        break "kicked".to_string();
                    }
                }
                None => break "hub shutting down".to_string(),
            },
            _ = tick.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    break format!("silent for {} s", SILENCE_LIMIT.as_secs());
                }
            }
        }
    };
    reader.abort();
    let _ = reader.await;
    reason
}
