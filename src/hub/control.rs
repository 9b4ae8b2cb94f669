//! One control connection: the Noise handshake, the first request, and the dispatch to
//! the path that serves it (a node's login, an administrator's command, a user's
//! password change).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::admin;
use super::context::HubContext;
use super::login::{self, NodeLogin};
use super::reply::{refuse, Refusal};
use crate::channel::{self, ChannelReader, ChannelWriter};
use crate::keys::KeyPair;
use crate::proto::control::{Key32, RefuseReason, Request, PROTOCOL_VERSION};

/// Time allowed from TCP accept to a complete login request.
const LOGIN_DEADLINE: Duration = Duration::from_secs(20);

pub async fn handle(stream: TcpStream, source: SocketAddr, ctx: Arc<HubContext>) {
    if let Err(e) = serve(stream, source, ctx).await {
        tracing::debug!(%source, error = %e, "control connection ended");
    }
}

async fn serve(stream: TcpStream, source: SocketAddr, ctx: Arc<HubContext>) -> Result<()> {
    let Opened {
        first,
        remote_key,
        rd,
        mut wr,
    } = timeout(LOGIN_DEADLINE, open(stream, &ctx.keys))
        .await
        .map_err(|_| anyhow!("no login within {LOGIN_DEADLINE:?}"))??;
    dispatch(&ctx, source, remote_key, first, rd, &mut wr).await
}

/// A connection past the handshake, with its first request.
struct Opened {
    first: Request,
    /// The initiator's static key, proven by the handshake.
    remote_key: Key32,
    rd: ChannelReader,
    wr: ChannelWriter,
}

/// Completes the handshake, refusing nodes that speak another protocol version, and
/// reads the first request.
async fn open(stream: TcpStream, keys: &[KeyPair]) -> Result<Opened> {
    let pending = channel::accept(stream, keys).await?;
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
    let first: Request = rd.recv().await?;
    Ok(Opened {
        first,
        remote_key,
        rd,
        wr,
    })
}

async fn dispatch(
    ctx: &Arc<HubContext>,
    source: SocketAddr,
    remote_key: Key32,
    first: Request,
    rd: ChannelReader,
    wr: &mut ChannelWriter,
) -> Result<()> {
    match first {
        Request::Login {
            account,
            credential,
            role,
            hostname,
            boot_id,
            enroll,
        } => {
            let login = NodeLogin {
                account,
                credential,
                role,
                hostname,
                boot_id,
                enroll,
            };
            login::serve(ctx, source, remote_key, login, rd, wr).await
        }
        Request::Admin {
            account,
            password,
            command,
        } => admin::serve(wr, ctx, source, &account, &password, command).await,
        Request::ChangePassword {
            account,
            old_password,
            new_password,
        } => admin::serve_passwd(wr, ctx, source, &account, &old_password, &new_password).await,
        Request::Ping { .. } => {
            refuse(
                wr,
                &Refusal::new(RefuseReason::BadRequest, "the first message must be a login"),
            )
            .await
        }
    }
}
