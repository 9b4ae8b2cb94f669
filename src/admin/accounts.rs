//! Account, device, target, grant and log commands: the operator's, and an account
//! administrator's within their own contract.

use super::contracts::unit_of;
use super::{
    audit, scope_filter, visible_account, visible_contract, AdminCommand, AdminError, AdminResult, ExecCtx, Output,
    Scope,
};
use crate::proto::control::{Key32, Role};
use crate::store::{format_time, AccountState, DeviceRecord, Store};

pub(super) fn execute(store: &mut dyn Store, ctx: &ExecCtx, cmd: &AdminCommand) -> AdminResult {
    match cmd {
        AdminCommand::AccountAdd {
            contract,
            user,
            password,
        } => {
            let contract = match (contract, &ctx.scope) {
                (Some(name), _) => visible_contract(store, ctx, name)?,
                (None, Scope::Contract { id, .. }) => store.contract_by_id(*id)?,
                (None, Scope::Operator) => {
                    return Err(AdminError::Refused("name the contract to add the account to".into()))
                }
            };
            if store.account_by_name(user)?.is_some() {
                return Err(AdminError::Refused(format!(
                    "account {user:?} already exists (names are unique per hub)"
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
            crate::password::check_policy(user, password).map_err(AdminError::Refused)?;
            let a = store.account_add(&contract.name, user, &crate::password::hash(password))?;
            audit(
                store,
                ctx,
                "account.add",
                Some(a.contract_id),
                Some(&a.username),
                &format!("in contract {}", a.contract),
            );
            Ok(Output::message(format!(
                "account {} added to contract {} ({} of {quota} accounts used)",
                a.username,
                a.contract,
                used + 1
            )))
        }
        AdminCommand::AccountList { contract } => {
            let filter = match contract {
                Some(name) => Some(visible_contract(store, ctx, name)?.id),
                None => scope_filter(ctx),
            };
            let rows = store
                .accounts(filter)?
                .into_iter()
                .map(|a| {
                    vec![
                        a.username,
                        a.contract,
                        a.state.as_str().into(),
                        if a.device_binding { "bound" } else { "any" }.into(),
                        format_time(a.created_at),
                    ]
                })
                .collect();
            Ok(Output::table(
                &["account", "contract", "state", "devices", "created"],
                rows,
            ))
        }
        AdminCommand::AccountLock { user } | AdminCommand::AccountUnlock { user } => {
            let a = visible_account(store, ctx, user)?;
            let (state, action) = match cmd {
                AdminCommand::AccountLock { .. } => (AccountState::Locked, "account.lock"),
                _ => (AccountState::Active, "account.unlock"),
            };
            store.account_set_state(a.id, state)?;
            audit(
                store,
                ctx,
                action,
                Some(a.contract_id),
                Some(user),
                &format!("by {}", ctx.actor),
            );
            if state == AccountState::Locked {
                let c = store.contract_by_id(a.contract_id)?;
                let body = format!(
                    "Dear {},\n\nThe account {user} was locked by {}: its sessions were ended and it cannot \
                     log in until it is unlocked.\n\nContract: {}\n-- mcvpn service operator\n",
                    if c.admin_name.is_empty() {
                        "account administrator"
                    } else {
                        &c.admin_name
                    },
                    ctx.actor,
                    c.name
                );
                store.notice_add(c.id, "account-locked", &format!("mcvpn: account {user} locked"), &body)?;
            }
            Ok(Output::message(format!("account {user} is now {}", state.as_str())))
        }
        AdminCommand::AccountPassword { user, password } => {
            let a = visible_account(store, ctx, user)?;
            crate::password::check_policy(user, password).map_err(AdminError::Refused)?;
            store.account_set_password(a.id, &crate::password::hash(password))?;
            audit(
                store,
                ctx,
                "account.password-reset",
                Some(a.contract_id),
                Some(user),
                "password reset",
            );
            Ok(Output::message(format!(
                "password of {user} reset; its remembered logins are forgotten"
            )))
        }
        AdminCommand::AccountBind { user, key, name } => {
            let a = visible_account(store, ctx, user)?;
            let key = Key32::from_base64(key)
                .ok_or_else(|| AdminError::Refused(format!("{key:?} is not a base64 32-byte public key")))?;
            let device = match store.device_by_key(&key, Role::Client, Some(a.id))? {
                Some(d) => d,
                None => store.device_register(
                    a.id,
                    Role::Client,
                    &key,
                    name.as_deref().unwrap_or("bound-device"),
                    ctx.overlay,
                )?,
            };
            audit(
                store,
                ctx,
                "account.bind",
                Some(a.contract_id),
                Some(user),
                &format!("device {} key {}", device.name, key.to_base64()),
            );
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
        AdminCommand::AccountBinding { user, on } => {
            let a = visible_account(store, ctx, user)?;
            store.account_set_binding(a.id, *on)?;
            audit(
                store,
                ctx,
                "account.binding",
                Some(a.contract_id),
                Some(user),
                if *on { "on" } else { "off" },
            );
            Ok(Output::message(if *on {
                format!("{user} may now log in only from registered devices")
            } else {
                format!("{user} may log in from any device")
            }))
        }
        AdminCommand::TargetList => {
            let rows = store
                .devices(Some(Role::Target), scope_filter(ctx))?
                .into_iter()
                .map(|d| {
                    vec![
                        d.node_id().to_string(),
                        d.name,
                        d.account,
                        d.overlay_ip.to_string(),
                        d.public_key.to_base64(),
                        d.last_seen.map(format_time).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            Ok(Output::table(
                &["node", "name", "account", "overlay_ip", "public_key", "last_seen"],
                rows,
            ))
        }
        AdminCommand::TargetAdd { account, key, name } => {
            let a = visible_account(store, ctx, account)?;
            let key = Key32::from_base64(key)
                .ok_or_else(|| AdminError::Refused(format!("{key:?} is not a base64 32-byte public key")))?;
            let d = store.device_register(a.id, Role::Target, &key, name, ctx.overlay)?;
            audit(
                store,
                ctx,
                "target.add",
                Some(a.contract_id),
                Some(account),
                &format!("target {} at {}", d.name, d.overlay_ip),
            );
            Ok(Output::message(format!(
                "target {} registered under {account} at {} (node {}); it can run with its key, no enrolment needed",
                d.name,
                d.overlay_ip,
                d.node_id()
            )))
        }
        AdminCommand::TargetGrant { target, account } | AdminCommand::TargetRevoke { target, account } => {
            let t = visible_target(store, ctx, target)?;
            let a = visible_account(store, ctx, account)?;
            let t_contract = store.account_by_id(t.account_id)?.contract_id;
            if t_contract != a.contract_id {
                return Err(AdminError::Refused(format!(
                    "target {} and account {account} belong to different contracts; grants stay within a contract",
                    t.name
                )));
            }
            if let AdminCommand::TargetGrant { .. } = cmd {
                store.grant_add(t.id, a.id)?;
                audit(
                    store,
                    ctx,
                    "target.grant",
                    Some(a.contract_id),
                    Some(account),
                    &format!("target {}", t.name),
                );
                Ok(Output::message(format!(
                    "{account} may now reach target {} ({})",
                    t.name, t.overlay_ip
                )))
            } else {
                let removed = store.grant_remove(t.id, a.id)?;
                audit(
                    store,
                    ctx,
                    "target.revoke",
                    Some(a.contract_id),
                    Some(account),
                    &format!("target {}", t.name),
                );
                Ok(Output::message(if removed {
                    format!("{account} may no longer reach target {}", t.name)
                } else {
                    format!("{account} had no grant on target {}", t.name)
                }))
            }
        }
        AdminCommand::GrantList => {
            let rows = store
                .grants(scope_filter(ctx))?
                .into_iter()
                .map(|g| vec![g.target, g.target_account, g.account, format_time(g.created_at)])
                .collect();
            Ok(Output::table(
                &["target", "target's account", "granted to", "since"],
                rows,
            ))
        }
        AdminCommand::SessionList { all } => {
            let rows = store
                .sessions(!all, scope_filter(ctx))?
                .into_iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.account,
                        s.device,
                        s.role.as_str().into(),
                        s.overlay_ip.to_string(),
                        s.source,
                        format_time(s.started_at),
                        s.ended_at.map(format_time).unwrap_or_else(|| "-".into()),
                        s.end_reason.unwrap_or_default(),
                        s.bytes_in.to_string(),
                        s.bytes_out.to_string(),
                    ]
                })
                .collect();
            Ok(Output::table(
                &[
                    "session",
                    "account",
                    "device",
                    "role",
                    "overlay_ip",
                    "source",
                    "started",
                    "ended",
                    "reason",
                    "bytes_in",
                    "bytes_out",
                ],
                rows,
            ))
        }
        AdminCommand::Log { limit } => {
            let rows = store
                .audit_log(scope_filter(ctx), *limit)?
                .into_iter()
                .map(|e| {
                    vec![
                        format_time(e.at),
                        e.actor,
                        e.action,
                        e.account.unwrap_or_default(),
                        e.source.unwrap_or_default(),
                        e.detail,
                    ]
                })
                .collect();
            Ok(Output::table(
                &["time", "actor", "action", "account", "source", "detail"],
                rows,
            ))
        }
        AdminCommand::NoticeList { all } => {
            let rows = store
                .notices(scope_filter(ctx), !all)?
                .into_iter()
                .map(|n| {
                    vec![
                        n.id.to_string(),
                        format_time(n.created_at),
                        n.contract,
                        if n.to_email.is_empty() {
                            "(no administrator e-mail)".into()
                        } else {
                            n.to_email
                        },
                        n.kind,
                        n.subject,
                        n.sent_at.map(format_time).unwrap_or_else(|| match n.last_error {
                            Some(e) => format!("unsent: {e}"),
                            None => "in the outbox".into(),
                        }),
                    ]
                })
                .collect();
            Ok(Output::table(
                &["id", "created", "contract", "to", "kind", "subject", "sent"],
                rows,
            ))
        }
        _ => unreachable!("not an account command"),
    }
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
            // A target of another contract: refuse it as such, so that the attempt is
            // audited as a denial rather than passing for a typo.
            if ctx.scope != Scope::Operator
                && store
                    .devices(Some(Role::Target), None)?
                    .iter()
                    .any(|d| d.name == target)
            {
                return Err(AdminError::Forbidden(format!(
                    "target {target:?} is not in your contract"
                )));
            }
            Err(AdminError::NotFound(format!(
                "no target named {target:?} (see `target list`)"
            )))
        }
        n => Err(AdminError::Refused(format!(
            "{n} targets are named {target:?}; give the node number from `target list`"
        ))),
    }
}
