//! Administrative requests over the control channel: an account administrator's
//! commands (scoped to their contract) and users' own password changes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;

use super::auth::{self, Refusal};
use super::control::refuse;
use super::HubContext;
use crate::admin::{self, AdminCommand, AdminError, ExecCtx, Scope};
use crate::channel::ChannelWriter;
use crate::proto::control::{Event, RefuseReason};

async fn answer(wr: &mut ChannelWriter, result: Result<admin::Output, AdminError>) -> Result<()> {
    let event = match result {
        Ok(output) => Event::AdminResult {
            ok: true,
            output: Some(serde_json::to_value(output)?),
            error: None,
            forbidden: false,
        },
        Err(e) => Event::AdminResult {
            ok: false,
            output: None,
            forbidden: matches!(e, AdminError::Forbidden(_)),
            error: Some(e.to_string()),
        },
    };
    wr.send(&event).await?;
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
    command: serde_json::Value,
) -> Result<()> {
    let command: AdminCommand = match serde_json::from_value(command) {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                wr,
                &Refusal::new(RefuseReason::BadRequest, format!("unknown admin command: {e}")),
            )
            .await;
        }
    };
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
        today: crate::store::today(),
        overlay: ctx.overlay,
    };
    let ctx2 = ctx.clone();
    let changes = command.changes_state();
    let result = tokio::task::spawn_blocking(move || {
        let result = {
            let mut store = ctx2.store.lock().unwrap();
            admin::execute(&mut **store, &exec, &command)
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

/// `mcvpn passwd`: the user proves the old password; the hub checks the policy.
pub async fn serve_passwd(
    wr: &mut ChannelWriter,
    ctx: &Arc<HubContext>,
    source: SocketAddr,
    account: &str,
    old: &str,
    new: &str,
) -> Result<()> {
    let (ctx2, a, o, n) = (ctx.clone(), account.to_string(), old.to_string(), new.to_string());
    let result =
        tokio::task::spawn_blocking(move || auth::change_password(&ctx2.store, &a, &o, &n, &source.to_string()))
            .await?;
    match result {
        Ok(_) => {
            ctx.limiter.record_success(source.ip(), Some(account));
            answer(wr, Ok(admin::Output::message(format!("password of {account} changed")))).await
        }
        Err(r) => {
            note_failure(ctx, source, account, &r);
            if r.reason == RefuseReason::BadRequest {
                // The policy said no: an answer the user can act on, not a protocol error.
                return answer(wr, Err(AdminError::Refused(r.message))).await;
            }
            refuse(wr, &r).await
        }
    }
}
