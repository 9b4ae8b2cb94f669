//! One-shot requests to the hub that are not sessions: an account administrator's
//! command (`mcvpn admin --hub --as`) and a password change (`mcvpn passwd`). Both use
//! a fresh throwaway device key: the password is the credential.

use anyhow::{anyhow, Result};

use super::session;
use super::settings::ResolvedTransport;
use super::ControlSettings;
use crate::admin::{AdminCommand, AdminError, AdminResult};
use crate::keys::KeyPair;
use crate::proto::control::{Event, Request, Role};
use crate::proto::url::HubUrl;

/// The hub and how to reach it (`--transport`, `--proxy`), resolved by the caller.
pub struct Reach {
    pub hub: HubUrl,
    pub transport: ResolvedTransport,
}

fn settings(reach: &Reach, account: &str) -> ControlSettings {
    ControlSettings {
        role: Role::Client,
        hub: reach.hub.clone(),
        key: KeyPair::generate(),
        account: Some(account.to_string()),
        hostname: crate::util::hostname(),
        transport: reach.transport.transport,
        proxy: reach.transport.proxy.clone(),
    }
}

fn exchange(reach: &Reach, account: &str, req: Request) -> Result<AdminResult> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(exchange_async(reach, account, req))
}

async fn exchange_async(reach: &Reach, account: &str, req: Request) -> Result<AdminResult> {
    let settings = settings(reach, account);
    // The answer is read before the connection (and its link, if any) is dropped.
    let (answer, _connected) = session::request(&settings, &req, None).await?;
    match answer {
        Event::AdminResult(result) => Ok(result),
        Event::Refused {
            message,
            reason,
            retry_after_s,
        } => Ok(Err(AdminError::Refused(format!(
            "{message} ({}){}",
            reason.hint(),
            retry_after_s.map(|s| format!("; retry in {s} s")).unwrap_or_default()
        )))),
        other => Err(anyhow!("unexpected answer from the hub: {other:?}")),
    }
}

/// Runs `command` on the hub as `account`, the administrator of its contract.
pub fn admin(reach: &Reach, account: &str, password: &str, command: &AdminCommand) -> Result<AdminResult> {
    let req = Request::Admin {
        account: account.to_string(),
        password: password.into(),
        command: command.clone(),
    };
    exchange(reach, account, req)
}

/// Runs `command` on the hub as the operator-side login `operator` (its role, operator
/// or monitor, decides what it may do).
pub fn operator_admin(reach: &Reach, operator: &str, password: &str, command: &AdminCommand) -> Result<AdminResult> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(operator_admin_async(reach, operator, password, command))
}

/// [`operator_admin`] inside a runtime (`mcvpn monitor`).
pub async fn operator_admin_async(
    reach: &Reach,
    operator: &str,
    password: &str,
    command: &AdminCommand,
) -> Result<AdminResult> {
    let req = Request::OperatorAdmin {
        operator: operator.to_string(),
        password: password.into(),
        command: command.clone(),
    };
    exchange_async(reach, operator, req).await
}

/// Changes `account`'s own password.
pub fn change_password(reach: &Reach, account: &str, old: &str, new: &str) -> Result<AdminResult> {
    let req = Request::ChangePassword {
        account: account.to_string(),
        old_password: old.into(),
        new_password: new.into(),
    };
    exchange(reach, account, req)
}
