//! Administrative requests over the control channel: an account administrator's
//! commands (scoped to their contract) and users' own password changes.
//!
//! Store access happens only inside `spawn_blocking` closures, and Argon2 (verifying
//! the administrator's password, hashing a new one) never runs while the store is locked.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;

use super::auth::{self, Refusal};
use super::control::refuse;
use super::HubContext;
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
    let (ctx2, account2, password2) = (ctx.clone(), account.to_string(), password.to_string());
    let authed = tokio::task::spawn_blocking(move || {
        auth::authenticate_admin(&ctx2.store, &account2, &password2, &source.to_string())
    })
    .await?;
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
        today: chrono::Utc::now().date_naive(),
        overlay: ctx.overlay,
    };
    tracing::debug!(admin = %admin_account.username, command = command.name(), "admin command");
    let changes = command.changes_state();
    // Only for an authenticated administrator: hash a new password, without the store lock.
    let prepared = tokio::task::spawn_blocking(move || admin::prepare(command)).await?;
    let ctx2 = ctx.clone();
    let result = tokio::task::spawn_blocking(move || {
        let result = {
            let mut store = ctx2.store.lock().unwrap();
            admin::execute(&mut **store, &exec, &prepared)
        };
        // Our own writes do not move the store's change marker: apply them here.
        if result.is_ok() && changes {
            ctx2.registry.refresh();
        }
        result
    })
    .await?;
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
    let (ctx2, a, o, n) = (ctx.clone(), account.to_string(), old.to_string(), new.to_string());
    let result =
        tokio::task::spawn_blocking(move || auth::change_password(&ctx2.store, &a, &o, &n, &source.to_string()))
            .await?;
    match result {
        Ok(_) => {
            ctx.limiter.record_success(source.ip(), Some(account));
            answer(wr, Ok(Output::message(format!("password of {account} changed")))).await
        }
        Err(r) => {
            note_failure(ctx, source, account, &r);
            refuse(wr, &r).await
        }
    }
}
