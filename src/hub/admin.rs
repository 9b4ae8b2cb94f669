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
use crate::store::OperatorRole;

async fn answer(wr: &mut ChannelWriter, result: AdminResult) -> Result<()> {
    wr.send(&Event::AdminResult(result)).await?;
    wr.shutdown().await;
    Ok(())
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
    let authed = auth::authenticate_admin(&ctx.store, &ctx.login, account, password, source).await;
    let (admin_account, contract) = match authed {
        Ok(x) => x,
        Err(r) => return refuse(wr, &r).await,
    };
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
    run(wr, ctx, exec, command).await
}

/// Authenticates an operator-side login and runs one command in its role's scope
/// (`operator`: everything; `monitor`: outages only, decided by `admin::authorize`).
pub async fn serve_operator(
    wr: &mut ChannelWriter,
    ctx: &Arc<HubContext>,
    source: SocketAddr,
    name: &str,
    password: &str,
    command: AdminCommand,
) -> Result<()> {
    let login = match auth::authenticate_operator(&ctx.store, &ctx.login, name, password, source).await {
        Ok(o) => o,
        Err(r) => return refuse(wr, &r).await,
    };
    let scope = match login.role {
        OperatorRole::Operator => Scope::Operator,
        OperatorRole::Monitor => Scope::Monitor {
            name: login.name.clone(),
        },
    };
    let exec = ExecCtx {
        scope,
        actor: format!("operator:{}", login.name),
        source: Some(source.to_string()),
        today: crate::store::today(),
        overlay: ctx.overlay,
    };
    run(wr, ctx, exec, command).await
}

/// Runs an authenticated caller's command: a new password hashed behind the hash gate,
/// then the command on the store, then its effect on live sessions.
async fn run(wr: &mut ChannelWriter, ctx: &Arc<HubContext>, exec: ExecCtx, command: AdminCommand) -> Result<()> {
    tracing::debug!(actor = %exec.actor, command = command.name(), "admin command");
    let changes = command.changes_state();
    let ends_session = command.ended_session();
    // Only for an authenticated caller: hash a new password, without the store lock and
    // behind the hash gate like every other Argon2 run.
    let prepared = match ctx.login.gate.run(move || admin::prepare(command)).await {
        Ok(p) => p,
        Err(_) => {
            let busy = Refusal {
                reason: RefuseReason::RateLimited,
                message: "the hub is busy checking logins; try again in a moment".into(),
                retry_after_s: Some(crate::hub::login_cost::BUSY_RETRY_S),
            };
            return refuse(wr, &busy).await;
        }
    };
    let result = ctx
        .store
        .run(move |store| admin::execute(store, &exec, &prepared))
        .await?;
    // Our own writes do not move the store's change marker: apply them here.
    if result.is_ok() && changes {
        apply_live(ctx, ends_session).await;
    }
    answer(wr, result).await
}

/// Applies a successful change to live sessions at once: ends the session an
/// administrator ended, re-reads every session (a lock or suspension cuts them). Shared
/// with the web console, so that both apply the same effects.
pub async fn apply_live(ctx: &HubContext, ended_session: Option<i64>) {
    if let Some(id) = ended_session {
        ctx.registry
            .end_session(id, "disconnected by the account administrator")
            .await;
    }
    ctx.registry.refresh().await;
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
    match auth::change_password(&ctx.store, &ctx.login, account, old, new, source).await {
        Ok(_) => {
            // The account's live client sessions were started with the old password: end
            // them now (C8). This request came on a connection of its own with a
            // throwaway key, so no live session is the one that changed it.
            ctx.registry.refresh().await;
            answer(wr, Ok(Output::message(format!("password of {account} changed")))).await
        }
        Err(r) => refuse(wr, &r).await,
    }
}
