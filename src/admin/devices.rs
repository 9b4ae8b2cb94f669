//! Client devices of accounts: `device list` and `device remove`. Each account may
//! register its contract's device limit of client devices (`contract set NAME
//! device-limit N`, default 10); removing one it no longer uses makes room for another.
//! Targets have their own commands (`target list`, `target add`).

use std::collections::HashSet;

use super::api::{time, DeviceRow};
use super::{audit, scope_filter, visible_account, AdminError, AdminResult, ExecCtx, Output};
use crate::proto::control::Role;
use crate::store::{DeviceRecord, Store};

pub(super) fn list(store: &mut dyn Store, ctx: &ExecCtx, account: Option<&str>) -> AdminResult {
    let only = account
        .map(|a| visible_account(store, ctx, a))
        .transpose()?
        .map(|a| a.id);
    let online: HashSet<i64> = store
        .sessions(true, scope_filter(ctx))?
        .into_iter()
        .filter_map(|s| s.device_id)
        .collect();
    let rows = store
        .devices(Some(Role::Client), scope_filter(ctx))?
        .into_iter()
        .filter(|d| only.is_none() || only == Some(d.account_id))
        .map(|d| DeviceRow {
            node: d.node_id(),
            online: online.contains(&d.id),
            account: d.account,
            name: d.name,
            overlay_ip: d.overlay_ip,
            public_key: d.public_key,
            registered: time(d.created_at),
            last_seen: d.last_seen.map(time),
        })
        .collect();
    Ok(Output::Devices(rows))
}

/// The client device of `user` that `device` names: its node number, or its name when
/// only one of the account's devices has it.
fn find(store: &dyn Store, ctx: &ExecCtx, user: &str, device: &str) -> Result<DeviceRecord, AdminError> {
    let a = visible_account(store, ctx, user)?;
    let mine: Vec<DeviceRecord> = store
        .devices(Some(Role::Client), Some(a.contract_id))?
        .into_iter()
        .filter(|d| d.account_id == a.id)
        .collect();
    if let Ok(node) = device.parse::<u32>() {
        if let Some(d) = mine.iter().find(|d| d.node_id() == node) {
            return Ok(d.clone());
        }
    }
    let mut named: Vec<DeviceRecord> = mine.into_iter().filter(|d| d.name == device).collect();
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => Err(AdminError::NotFound(format!(
            "{user} has no client device named {device:?}; see `mcvpn admin device list --account {user}`"
        ))),
        n => Err(AdminError::Refused(format!(
            "{n} client devices of {user} are named {device:?}: name the one to remove by its node number \
             (nodes {}), see `mcvpn admin device list --account {user}`",
            named
                .iter()
                .map(|d| d.node_id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(super) fn remove(store: &mut dyn Store, ctx: &ExecCtx, user: &str, device: &str) -> AdminResult {
    let d = find(store, ctx, user, device)?;
    let contract_id = store.account_by_id(d.account_id)?.contract_id;
    store.device_remove(d.id)?;
    audit(
        store,
        ctx,
        "device.remove",
        Some(contract_id),
        Some(user),
        &format!("client {} (node {}) at {}", d.name, d.node_id(), d.overlay_ip),
    )?;
    // The hub ends the device's live session when it re-reads the store (at once when
    // the command ran through it, within its store poll otherwise).
    Ok(Output::message(format!(
        "client device {} (node {}) of {user} removed; a live session of it ends now",
        d.name,
        d.node_id()
    )))
}
