//! Account, device, target, grant and log commands: the operator's, and an account
//! administrator's within their own contract.

use super::api::{
    time, AccountAdded, AccountName, AccountRow, AuditRow, GrantRow, LogFilter, LogResult, NewAccount, NoticeRow,
    OnOff, SessionRow, TargetRow,
};
use super::contracts::unit_of;
use super::notice_text::Notice;
use super::{
    audit, out_of_scope, scope_filter, visible_account, visible_contract, AdminError, AdminResult, ExecCtx,
    NewPassword, Output, Scope,
};
use crate::proto::control::{Key32, Role};
use crate::store::{format_time, AccountRecord, AccountState, AuditQuery, DeviceRecord, Store};

pub(super) fn add(store: &mut dyn Store, ctx: &ExecCtx, new: &NewAccount, hash: Option<&str>) -> AdminResult {
    let AccountName { contract, user } = &new.name;
    crate::names::check("account", user).map_err(AdminError::Refused)?;
    let password = &new.password.0;
    let contract = match (contract, &ctx.scope) {
        (Some(name), _) => visible_contract(store, ctx, name)?,
        (None, Scope::Contract { id, .. }) => store.contract_by_id(*id)?,
        (None, Scope::Operator | Scope::Monitor { .. }) => {
            return Err(AdminError::Refused("name the contract to add the account to".into()))
        }
    };
    // Names are unique per hub, so a name taken in another contract cannot be given
    // here either; the answer is the same whichever contract holds it (review C10).
    if store.account_by_name(user)?.is_some() {
        return Err(AdminError::Refused(format!(
            "the account name {user:?} is taken (names are unique per hub); choose another"
        )));
    }
    let quota = unit_of(store, contract.id)?.account_quota(ctx.today);
    let used = store.account_count(contract.id)?;
    if used >= quota {
        return Err(AdminError::Refused(format!(
            "contract {} has all {quota} of its accounts in use (art. 12); ask the operator for an additional \
             contract (`mcvpn admin contract add-accounts`)",
            contract.name
        )));
    }
    crate::password::check_policy(user, password).map_err(AdminError::PasswordPolicy)?;
    let a = store.account_add(&contract.name, user, prepared_hash(hash)?)?;
    audit(
        store,
        ctx,
        "account.add",
        Some(a.contract_id),
        Some(&a.username),
        &format!("in contract {}", a.contract),
    )?;
    Ok(Output::AccountAdded(AccountAdded {
        account: a.username,
        contract: a.contract,
        accounts_used: used + 1,
        account_quota: quota,
    }))
}

/// The hash `admin::prepare` made before the store was locked.
fn prepared_hash(hash: Option<&str>) -> Result<&str, AdminError> {
    hash.ok_or_else(|| AdminError::Internal("the new password was not hashed before the command ran".into()))
}

pub(super) fn list(store: &mut dyn Store, ctx: &ExecCtx, contract: Option<&str>) -> AdminResult {
    let filter = match contract {
        Some(name) => Some(visible_contract(store, ctx, name)?.id),
        None => scope_filter(ctx),
    };
    let rows = store
        .accounts(filter)?
        .into_iter()
        .map(|a| AccountRow {
            account: a.username,
            contract: a.contract,
            state: a.state,
            device_binding: a.device_binding,
            totp: a.totp,
            created_at: time(a.created_at),
        })
        .collect();
    Ok(Output::Accounts(rows))
}

pub(super) fn lock(store: &mut dyn Store, ctx: &ExecCtx, user: &str) -> AdminResult {
    set_state(store, ctx, user, AccountState::Locked, "account.lock")
}

pub(super) fn unlock(store: &mut dyn Store, ctx: &ExecCtx, user: &str) -> AdminResult {
    set_state(store, ctx, user, AccountState::Active, "account.unlock")
}

fn set_state(store: &mut dyn Store, ctx: &ExecCtx, user: &str, state: AccountState, action: &str) -> AdminResult {
    let a = visible_account(store, ctx, user)?;
    store.account_set_state(a.id, state)?;
    audit(
        store,
        ctx,
        action,
        Some(a.contract_id),
        Some(user),
        &format!("by {}", ctx.actor),
    )?;
    if state == AccountState::Locked {
        let c = store.contract_by_id(a.contract_id)?;
        super::contracts::notify(
            store,
            &c,
            &Notice::AccountLocked {
                user: user.to_string(),
                by: ctx.actor.clone(),
            },
        )?;
    }
    Ok(Output::message(format!("account {user} is now {}", state.as_str())))
}

pub(super) fn set_password(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    user: &str,
    password: &NewPassword,
    hash: Option<&str>,
) -> AdminResult {
    let a = visible_account(store, ctx, user)?;
    crate::password::check_policy(user, &password.0).map_err(AdminError::PasswordPolicy)?;
    store.account_set_password(a.id, prepared_hash(hash)?)?;
    audit(
        store,
        ctx,
        "account.password-reset",
        Some(a.contract_id),
        Some(user),
        "password reset",
    )?;
    Ok(Output::message(format!(
        "password of {user} reset; its remembered logins are forgotten"
    )))
}

pub(super) fn bind(store: &mut dyn Store, ctx: &ExecCtx, user: &str, key: &str, name: Option<&str>) -> AdminResult {
    let a = visible_account(store, ctx, user)?;
    let key = Key32::from_base64(key)
        .ok_or_else(|| AdminError::Refused(format!("{key:?} is not a base64 32-byte public key")))?;
    let device = match store.device_by_key(&key, Role::Client, Some(a.id))? {
        Some(d) => d,
        None => store.device_register(a.id, Role::Client, &key, name.unwrap_or("bound-device"), ctx.overlay)?,
    };
    audit(
        store,
        ctx,
        "account.bind",
        Some(a.contract_id),
        Some(user),
        &format!("device {} key {}", device.name, key.to_base64()),
    )?;
    Ok(Output::message(format!(
        "device {} ({}) registered for {user}{}",
        device.name,
        device.overlay_ip,
        if a.device_binding {
            ""
        } else {
            "; turn binding on with `account binding USER on` to allow only registered devices"
        }
    )))
}

pub(super) fn binding(store: &mut dyn Store, ctx: &ExecCtx, user: &str, state: OnOff) -> AdminResult {
    let on = state == OnOff::On;
    let a = visible_account(store, ctx, user)?;
    store.account_set_binding(a.id, on)?;
    audit(
        store,
        ctx,
        "account.binding",
        Some(a.contract_id),
        Some(user),
        if on { "on" } else { "off" },
    )?;
    Ok(Output::message(if on {
        format!("{user} may now log in only from registered devices")
    } else {
        format!("{user} may log in from any device")
    }))
}

pub(super) fn target_list(store: &mut dyn Store, ctx: &ExecCtx) -> AdminResult {
    let rows = store
        .devices(Some(Role::Target), scope_filter(ctx))?
        .into_iter()
        .map(|d| TargetRow {
            node: d.node_id(),
            name: d.name,
            account: d.account,
            overlay_ip: d.overlay_ip,
            public_key: d.public_key,
            last_seen: d.last_seen.map(time),
        })
        .collect();
    Ok(Output::Targets(rows))
}

pub(super) fn target_add(store: &mut dyn Store, ctx: &ExecCtx, account: &str, key: &str, name: &str) -> AdminResult {
    crate::names::check("target", name).map_err(AdminError::Refused)?;
    let a = visible_account(store, ctx, account)?;
    let key = Key32::from_base64(key)
        .ok_or_else(|| AdminError::Refused(format!("{key:?} is not a base64 32-byte public key")))?;
    // No proof of possession here (review finding S6): the registration waits for the
    // machine's own enrolment with an account of this contract.
    let d = crate::hub::auth::register_unproven_target(store, a.id, &key, name, ctx.overlay)?;
    audit(
        store,
        ctx,
        "target.add",
        Some(a.contract_id),
        Some(account),
        &format!("target {} at {}", d.name, d.overlay_ip),
    )?;
    Ok(Output::message(format!(
        "target {} registered under {account} at {} (node {}); before it can run with its key, enrol it \
         once on the machine: `mcvpn target enroll --account {account}` (or any account of this contract)",
        d.name,
        d.overlay_ip,
        d.node_id()
    )))
}

/// The target and account of a grant or revocation, both the caller's, in one contract.
fn grant_parties(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    target: &str,
    account: &str,
) -> Result<(DeviceRecord, AccountRecord), AdminError> {
    let t = visible_target(store, ctx, target)?;
    let a = visible_account(store, ctx, account)?;
    let t_contract = store.account_by_id(t.account_id)?.contract_id;
    if t_contract != a.contract_id {
        return Err(AdminError::Refused(format!(
            "target {} and account {account} belong to different contracts; grants stay within a contract",
            t.name
        )));
    }
    Ok((t, a))
}

pub(super) fn target_grant(store: &mut dyn Store, ctx: &ExecCtx, target: &str, account: &str) -> AdminResult {
    let (t, a) = grant_parties(store, ctx, target, account)?;
    store.grant_add(t.id, a.id)?;
    audit(
        store,
        ctx,
        "target.grant",
        Some(a.contract_id),
        Some(account),
        &format!("target {}", t.name),
    )?;
    Ok(Output::message(format!(
        "{account} may now reach target {} ({})",
        t.name, t.overlay_ip
    )))
}

pub(super) fn target_revoke(store: &mut dyn Store, ctx: &ExecCtx, target: &str, account: &str) -> AdminResult {
    let (t, a) = grant_parties(store, ctx, target, account)?;
    let removed = store.grant_remove(t.id, a.id)?;
    audit(
        store,
        ctx,
        "target.revoke",
        Some(a.contract_id),
        Some(account),
        &format!("target {}", t.name),
    )?;
    Ok(Output::message(if removed {
        format!("{account} may no longer reach target {}", t.name)
    } else {
        format!("{account} had no grant on target {}", t.name)
    }))
}

pub(super) fn grant_list(store: &mut dyn Store, ctx: &ExecCtx) -> AdminResult {
    let rows = store
        .grants(scope_filter(ctx))?
        .into_iter()
        .map(|g| GrantRow {
            target: g.target,
            target_account: g.target_account,
            granted_to: g.account,
            since: time(g.created_at),
        })
        .collect();
    Ok(Output::Grants(rows))
}

pub(super) fn session_list(store: &mut dyn Store, ctx: &ExecCtx, all: bool) -> AdminResult {
    let rows = store
        .sessions(!all, scope_filter(ctx))?
        .into_iter()
        .map(|s| SessionRow {
            session: s.id,
            account: s.account,
            device: s.device,
            role: s.role,
            overlay_ip: s.overlay_ip,
            source: s.source,
            started_at: time(s.started_at),
            ended_at: s.ended_at.map(time),
            end_reason: s.end_reason,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
        })
        .collect();
    Ok(Output::Sessions(rows))
}

pub(super) fn log(store: &mut dyn Store, ctx: &ExecCtx, limit: usize, filter: &LogFilter) -> AdminResult {
    let tz = crate::contract::operator_tz();
    let query = AuditQuery {
        contract_id: scope_filter(ctx),
        account: filter.account.clone(),
        refused: filter.result.map(|r| r == LogResult::Refused),
        since: filter.since.map(|d| crate::contract::start_of_day(tz, d).timestamp()),
        until: filter
            .until
            .and_then(|d| d.succ_opt())
            .map(|d| crate::contract::start_of_day(tz, d).timestamp()),
        limit,
    };
    let rows = store
        .audit_search(&query)?
        .into_iter()
        .map(|e| AuditRow {
            at: time(e.at),
            actor: e.actor,
            action: e.action,
            account: e.account,
            source: e.source,
            detail: e.detail,
        })
        .collect();
    Ok(Output::Log(rows))
}

/// Ends a live session: checks it is one of the caller's contract's live sessions (any
/// other number gets the not-found answer) and records the request; the hub, which holds
/// the live sessions, cuts it after this returns.
pub(super) fn session_end(store: &mut dyn Store, ctx: &ExecCtx, session: i64) -> AdminResult {
    let found = store
        .sessions(true, scope_filter(ctx))?
        .into_iter()
        .find(|s| s.id == session)
        .ok_or_else(|| AdminError::NotFound(format!("no live session {session}")))?;
    let contract_id = store.account_by_name(&found.account)?.map(|a| a.contract_id);
    audit(
        store,
        ctx,
        "session.end",
        contract_id,
        Some(&found.account),
        &format!("session {session} of device {} ended by {}", found.device, ctx.actor),
    )?;
    Ok(Output::message(format!(
        "session {session} of {} ({}) ended",
        found.account, found.device
    )))
}

pub(super) fn notice_list(store: &mut dyn Store, ctx: &ExecCtx, all: bool) -> AdminResult {
    let rows = store
        .notices(scope_filter(ctx), !all)?
        .into_iter()
        .map(|n| NoticeRow {
            sent: n.sent_at.map(format_time).unwrap_or_else(|| match &n.last_error {
                Some(e) => format!("unsent: {e}"),
                None => "in the outbox".into(),
            }),
            id: n.id,
            created_at: time(n.created_at),
            contract: n.contract,
            to: Some(n.to_email).filter(|e| !e.is_empty()),
            kind: n.kind,
            subject: n.subject,
            sent_at: n.sent_at.map(time),
            attempts: n.attempts,
            last_error: n.last_error,
        })
        .collect();
    Ok(Output::Notices(rows))
}

/// A target by node id or name, if the caller may see it.
fn visible_target(store: &dyn Store, ctx: &ExecCtx, target: &str) -> Result<DeviceRecord, AdminError> {
    let candidates: Vec<DeviceRecord> = store
        .devices(Some(Role::Target), scope_filter(ctx))?
        .into_iter()
        .filter(|d| d.name == target || d.node_id().to_string() == target)
        .collect();
    match candidates.len() {
        1 => Ok(candidates.into_iter().next().expect("one")),
        0 => {
            let missing = format!("no target named {target:?} (see `target list`)");
            // A target of another contract: answered as missing (review C10), audited as
            // a denial (see `super::out_of_scope`).
            if ctx.scope != Scope::Operator
                && store
                    .devices(Some(Role::Target), None)?
                    .iter()
                    .any(|d| d.name == target)
            {
                return Err(out_of_scope(missing));
            }
            Err(AdminError::NotFound(missing))
        }
        n => Err(AdminError::Refused(format!(
            "{n} targets are named {target:?}; give the node number from `target list`"
        ))),
    }
}
