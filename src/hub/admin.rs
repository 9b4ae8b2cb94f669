//! Administrative requests over the control channel: an account administrator's
//! commands (scoped to their contract) and users' own password changes.
//!
//! Store access goes through the hub's `StoreHandle` (the blocking pool), and Argon2
//! (verifying the administrator's password, hashing a new one) never runs while the store
//! is locked.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;

use super::auth;
use super::context::HubContext;
use super::reply::{refuse, Refusal};
use crate::admin::{self, AdminCommand, AdminError, AdminResult, ExecCtx, Output, Scope};
use crate::channel::ChannelWriter;
use crate::proto::control::{Event, RefuseReason};

async fn answer(wr: &mut ChannelWriter, result: AdminResult) -> Result<()> {
    wr.send(&Event::AdminResult(result)).await?;
    wr.shutdown().await;
    Ok(())
}

fn note_failure(ctx: &HubContext, source: SocketAddr, account: &str, r: &Refusal) {
    if r.reason == RefuseReason::WrongCredentials {
        ctx.limiter.record_failure(source.ip(), Some(account));
    }
}

/// Authenticates the administrator, runs one command in their contract's scope, and
/// applies its effect on live sessions at once.
pub async fn serve(
    wr: &mut ChannelWriter,
    ctx: &Arc<HubContext>,
    source: SocketAddr,
    account: &str,
    password: &str,
    command: AdminCommand,
) -> Result<()> {
    let authed = auth::authenticate_admin(&ctx.store, account, password, &source.to_string()).await;
    let (admin_account, contract) = match authed {
        Ok(x) => x,
        Err(r) => {
            note_failure(ctx, source, account, &r);
            return refuse(wr, &r).await;
        }
    };
    ctx.limiter.record_success(source.ip(), Some(account));
    let exec = ExecCtx {
        scope: Scope::Contract {
            id: contract.id,
            name: contract.name.clone(),
        },
        actor: format!("admin:{}", admin_account.username),
        source: Some(source.to_string()),
        today: crate::store::today(),
        overlay: ctx.overlay,
    };
    tracing::debug!(admin = %admin_account.username, command = command.name(), "admin command");
    let changes = command.changes_state();
    // Only for an authenticated administrator: hash a new password, without the store lock.
    let prepared = tokio::task::spawn_blocking(move || admin::prepare(command)).await?;
    let result = ctx
        .store
        .run(move |store| admin::execute(store, &exec, &prepared))
        .await?;
    // Our own writes do not move the store's change marker: apply them here.
    if result.is_ok() && changes {
        ctx.registry.refresh().await;
    }
    answer(wr, result).await
}

/// `mcvpn passwd`: the hub checks the policy, then the user proves the old password.
pub async fn serve_passwd(
    wr: &mut ChannelWriter,
    ctx: &Arc<HubContext>,
    source: SocketAddr,
    account: &str,
    old: &str,
    new: &str,
) -> Result<()> {
    // The policy is public and costs nothing to check: an answer the user can act on.
    if let Err(why) = crate::password::check_policy(account, new) {
        return answer(wr, Err(AdminError::PasswordPolicy(why))).await;
    }
    match auth::change_password(&ctx.store, account, old, new, &source.to_string()).await {
        Ok(_) => {
            ctx.limiter.record_success(source.ip(), Some(account));
            // The account's live client sessions were started with the old password: end
            // them now (C8). This request came on a connection of its own with a
            // throwaway key, so no live session is the one that changed it.
            ctx.registry.refresh().await;
            answer(wr, Ok(Output::message(format!("password of {account} changed")))).await
        }
        Err(r) => {
            note_failure(ctx, source, account, &r);
            refuse(wr, &r).await
        }
    }
}
