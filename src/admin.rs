//! `mcvpn admin --db PATH …`: the operator's commands on the hub host, straight on the
//! store. The running hub notices the changes within a fraction of a second.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use crate::exit::{self, Exit};
use crate::store::{format_time, AccountState, AuditEntry, SqliteStore, Store, StoreError};

pub const OPERATOR: &str = "operator";

pub fn open(db: &Path) -> Result<SqliteStore> {
    if !db.exists() {
        eprintln!("note: creating a new, empty store at {}", db.display());
    }
    SqliteStore::open(db).with_context(|| format!("cannot open the store {}", db.display()))
}

/// Turns a store refusal into a clean exit with its message; other errors propagate.
pub fn store_exit(e: StoreError) -> Result<Exit> {
    match e {
        StoreError::NotFound(m) | StoreError::Conflict(m) | StoreError::Refused(m) => Ok(Exit::fail(exit::FAILURE, &m)),
        e => Err(e.into()),
    }
}

/// Prints rows as aligned columns, or as JSON objects when `json` is set.
pub fn print_table(headers: &[&str], rows: &[Vec<String>], json: bool) {
    if json {
        let objs: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let m: serde_json::Map<String, serde_json::Value> = headers
                    .iter()
                    .zip(r)
                    .map(|(h, v)| (h.to_string(), json!(v)))
                    .collect();
                serde_json::Value::Object(m)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&objs).unwrap_or_default());
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

pub fn contract_add(store: &mut dyn Store, name: &str) -> Result<Exit> {
    let c = match store.contract_add(name) {
        Ok(c) => c,
        Err(e) => return store_exit(e),
    };
    store.audit(&AuditEntry {
        actor: OPERATOR,
        action: "contract.add",
        contract_id: Some(c.id),
        detail: &format!("contract {}", c.name),
        ..Default::default()
    })?;
    println!("contract {} added", c.name);
    Ok(Exit::ok())
}

pub fn contract_list(store: &dyn Store, json: bool) -> Result<Exit> {
    let rows: Vec<Vec<String>> = store
        .contracts()?
        .into_iter()
        .map(|c| vec![c.name, c.state.as_str().into(), format_time(c.created_at)])
        .collect();
    print_table(&["name", "state", "created"], &rows, json);
    Ok(Exit::ok())
}

pub fn account_add(store: &mut dyn Store, contract: &str, user: &str, password_file: Option<&PathBuf>) -> Result<Exit> {
    if let Err(e) = store.contract_by_name(contract) {
        return store_exit(e);
    }
    if store.account_by_name(user)?.is_some() {
        return Ok(Exit::fail(exit::FAILURE, &format!("account {user:?} already exists")));
    }
    let password = crate::password::read(password_file.map(PathBuf::as_path), &format!("New password for {user}: "))?;
    let hash = crate::password::hash(&password);
    let a = match store.account_add(contract, user, &hash) {
        Ok(a) => a,
        Err(e) => return store_exit(e),
    };
    store.audit(&AuditEntry {
        actor: OPERATOR,
        action: "account.add",
        contract_id: Some(a.contract_id),
        account: Some(&a.username),
        detail: &format!("account {} in contract {}", a.username, a.contract),
        ..Default::default()
    })?;
    println!("account {} added to contract {}", a.username, a.contract);
    Ok(Exit::ok())
}

pub fn account_list(store: &dyn Store, contract: Option<&str>, json: bool) -> Result<Exit> {
    let contract_id = match contract {
        Some(c) => match store.contract_by_name(c) {
            Ok(c) => Some(c.id),
            Err(e) => return store_exit(e),
        },
        None => None,
    };
    let rows: Vec<Vec<String>> = store
        .accounts(contract_id)?
        .into_iter()
        .map(|a| vec![a.username, a.contract, a.state.as_str().into(), format_time(a.created_at)])
        .collect();
    print_table(&["account", "contract", "state", "created"], &rows, json);
    Ok(Exit::ok())
}

pub fn account_set_state(store: &mut dyn Store, user: &str, state: AccountState) -> Result<Exit> {
    let Some(a) = store.account_by_name(user)? else {
        return Ok(Exit::fail(exit::FAILURE, &format!("no account named {user:?}")));
    };
    store.account_set_state(a.id, state)?;
    let action = match state {
        AccountState::Locked => "account.lock",
        AccountState::Active => "account.unlock",
    };
    store.audit(&AuditEntry {
        actor: OPERATOR,
        action,
        contract_id: Some(a.contract_id),
        account: Some(&a.username),
        detail: &format!("account {} is now {}", a.username, state.as_str()),
        ..Default::default()
    })?;
    println!("account {} is now {}", a.username, state.as_str());
    Ok(Exit::ok())
}

pub fn device_list(store: &dyn Store, role: crate::proto::control::Role, json: bool) -> Result<Exit> {
    let rows: Vec<Vec<String>> = store
        .devices(Some(role), None)?
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
    print_table(&["node", "name", "account", "overlay_ip", "public_key", "last_seen"], &rows, json);
    Ok(Exit::ok())
}

pub fn session_list(store: &dyn Store, all: bool, json: bool) -> Result<Exit> {
    let rows: Vec<Vec<String>> = store
        .sessions(!all, None)?
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
            ]
        })
        .collect();
    print_table(
        &["session", "account", "device", "role", "overlay_ip", "source", "started", "ended", "reason"],
        &rows,
        json,
    );
    Ok(Exit::ok())
}

pub fn audit_log(store: &dyn Store, limit: usize, json: bool) -> Result<Exit> {
    let rows: Vec<Vec<String>> = store
        .audit_log(None, limit)?
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
    print_table(&["time", "actor", "action", "account", "source", "detail"], &rows, json);
    Ok(Exit::ok())
}
