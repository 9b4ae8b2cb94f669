//! One control connection: the Noise handshake, the first request, and the dispatch to
//! the path that serves it (a node's login, an administrator's command, a user's
//! password change).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Result};

use super::admin;
use super::context::HubContext;
use super::login::{self, LoggedIn, NodeLogin};
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
    if let Some(live) = dispatch(&ctx, source, remote_key, first, &mut wr).await? {
        tokio::spawn(login::run_session(ctx, live, rd, wr));
    }
    Ok(())
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
    wr: &mut ChannelWriter,
) -> Result<Option<LoggedIn>> {
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
            login::serve(ctx, source, remote_key, login, wr).await
        }
        Request::Admin {
            account,
            password,
            command,
        } => admin::serve(wr, ctx, source, &account, password.expose_secret(), command)
            .await
            .map(|()| None),
        Request::OperatorAdmin {
            operator,
            password,
            command,
        } => admin::serve_operator(wr, ctx, source, &operator, password.expose_secret(), command)
            .await
            .map(|()| None),
        Request::ChangePassword {
            account,
            old_password,
            new_password,
        } => admin::serve_passwd(
            wr,
            ctx,
            source,
            &account,
            old_password.expose_secret(),
            new_password.expose_secret(),
        )
        .await
        .map(|()| None),
        Request::Ping { .. } => refuse(
            wr,
            &Refusal::new(RefuseReason::BadRequest, "the first message must be a login"),
        )
        .await
        .map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    /// The size of the future `f` returns, from its type alone.
    fn future_size<A, B, C, D, Fut: Future>(_: impl FnOnce(A, B, C, D) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Issue 15: 10,000 idle sessions a hub at 16 KiB each. An idle session's task holds
    /// only its session's future; the connection task, as large as its largest step (the
    /// login, an administrator's command), ends once the session is handed over. Before,
    /// the connection task ran the session itself: 6,880 bytes held for its lifetime.
    #[test]
    fn an_idle_session_holds_a_small_future_not_the_connection_tasks() {
        let session = future_size(
            |ctx: Arc<HubContext>, live: LoggedIn, rd: ChannelReader, wr: ChannelWriter| {
                login::run_session(ctx, live, rd, wr)
            },
        );
        let connection = future_size(handle);
        assert!(session <= 1024, "a session's task is {session} bytes");
        assert!(
            connection > 2 * session,
            "the hand-over is worth it while the connection task ({connection} bytes) is larger than the session's ({session})"
        );
    }
}
