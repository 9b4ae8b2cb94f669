//! One-shot requests to the hub that are not sessions: an account administrator's
//! command (`mcvpn admin --hub --as`) and a password change (`mcvpn passwd`). Both use
//! a fresh throwaway device key: the password is the credential.

use anyhow::{anyhow, Result};

use super::session;
use super::ControlSettings;
use crate::admin::{AdminCommand, AdminError, AdminResult};
use crate::keys::KeyPair;
use crate::proto::control::{Event, Request, Role};
use crate::proto::url::HubUrl;

fn settings(hub: &str, account: &str) -> Result<ControlSettings> {
    Ok(ControlSettings {
        role: Role::Client,
        hub: HubUrl::parse(hub)?,
        key: KeyPair::generate(),
        account: Some(account.to_string()),
        hostname: crate::util::hostname(),
    })
}

fn exchange(hub: &str, account: &str, req: Request) -> Result<AdminResult> {
    let settings = settings(hub, account)?;
    let rt = tokio::runtime::Runtime::new()?;
    let (answer, _rd, _wr) = rt.block_on(session::request(&settings, &req))?;
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
pub fn admin(hub: &str, account: &str, password: &str, command: &AdminCommand) -> Result<AdminResult> {
    let req = Request::Admin {
        account: account.to_string(),
        password: password.into(),
        command: command.clone(),
    };
    exchange(hub, account, req)
}

/// Changes `account`'s own password.
pub fn change_password(hub: &str, account: &str, old: &str, new: &str) -> Result<AdminResult> {
    let req = Request::ChangePassword {
        account: account.to_string(),
        old_password: old.into(),
        new_password: new.into(),
    };
    exchange(hub, account, req)
}
