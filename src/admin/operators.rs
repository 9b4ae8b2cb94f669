//! Operator-side logins (`mcvpn admin operator`): people and monitors of the operator who
//! use the admin channel from elsewhere. They are not contract accounts: no contract,
//! no quota, no sessions; a `monitor` may only record and list outages (see
//! `api::authorize`).

use super::api::{time, OperatorRow};
use super::{audit, AdminCommand, AdminError, AdminResult, ExecCtx, Output};
use crate::store::{OperatorRole, Store};

pub(super) fn add(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    name: &str,
    role: OperatorRole,
    cmd: &AdminCommand,
    hash: Option<&str>,
) -> AdminResult {
    crate::names::check("operator login", name).map_err(AdminError::Refused)?;
    let Some((_, password)) = cmd.new_password() else {
        return Err(AdminError::Internal("operator add carries no password".into()));
    };
    crate::password::check_policy(name, &password.0).map_err(AdminError::PasswordPolicy)?;
    let hash =
        hash.ok_or_else(|| AdminError::Internal("the new password was not hashed before the command ran".into()))?;
    let o = store.operator_add(name, role, hash)?;
    audit(
        store,
        ctx,
        "operator.add",
        None,
        None,
        &format!("{} ({})", o.name, role.as_str()),
    )?;
    Ok(Output::message(format!(
        "operator login {} added with role {}; use it with `mcvpn admin --hub URL --as {} --operator …`",
        o.name,
        role.as_str(),
        o.name
    )))
}

pub(super) fn list(store: &mut dyn Store) -> AdminResult {
    let rows = store
        .operators()?
        .into_iter()
        .map(|o| OperatorRow {
            name: o.name,
            role: o.role,
            created: time(o.created_at),
        })
        .collect();
    Ok(Output::Operators(rows))
}

pub(super) fn remove(store: &mut dyn Store, ctx: &ExecCtx, name: &str) -> AdminResult {
    if !store.operator_remove(name)? {
        return Err(AdminError::NotFound(format!(
            "no operator login named {name:?} (see `mcvpn admin operator list`)"
        )));
    }
    audit(store, ctx, "operator.remove", None, None, name)?;
    Ok(Output::message(format!("operator login {name} removed")))
}
