//! One control connection: the Noise handshake, the first request, and the dispatch to
//! the path that serves it (a node's login, an administrator's command, a user's
//! password change).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Result};

use super::admin;
use super::context::HubContext;
use super::login::{self, NodeLogin};
use super::preauth::PreauthGuard;
use super::reply::{refuse, Refusal};
use crate::channel::{self, BoxStream, ChannelReader, ChannelWriter};
use crate::keys::KeyPair;
use crate::proto::control::{Key32, RefuseReason, Request, PROTOCOL_VERSION};

/// Serves one connection. `preauth` is its slot in the pre-authentication budget: it
/// bounds the handshake and the first request in time, and is freed once they are done.
pub async fn handle(stream: BoxStream, source: SocketAddr, ctx: Arc<HubContext>, preauth: PreauthGuard) {
    if let Err(e) = serve(stream, source, ctx, preauth).await {
        tracing::debug!(%source, error = %e, "control connection ended");
    }
}

async fn serve(stream: BoxStream, source: SocketAddr, ctx: Arc<HubContext>, preauth: PreauthGuard) -> Result<()> {
    let Opened {
        first,
        remote_key,
        rd,
        mut wr,
    } = preauth.bound(open(stream, &ctx.keys)).await??;
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
async fn open(stream: BoxStream, keys: &[KeyPair]) -> Result<Opened> {
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
        } => admin::serve(wr, ctx, source, &account, password.expose_secret(), command).await,
        Request::OperatorAdmin {
            operator,
            password,
            command,
        } => admin::serve_operator(wr, ctx, source, &operator, password.expose_secret(), command).await,
        Request::ChangePassword {
            account,
            old_password,
            new_password,
        } => {
            admin::serve_passwd(
                wr,
                ctx,
                source,
                &account,
                old_password.expose_secret(),
                new_password.expose_secret(),
            )
            .await
        }
        Request::Ping { .. } => {
            refuse(
                wr,
                &Refusal::new(RefuseReason::BadRequest, "the first message must be a login"),
            )
            .await
        }
    }
}
