//! An account administrator's own second factor for console logins (TOTP, issue 14):
//! turned on and off by the administrator (each proven with a code from the app), reset
//! by the operator after a lost phone.

use super::{audit, visible_account, AdminError, AdminResult, ExecCtx, Output, Scope};
use crate::store::{now, AccountRecord, Store};
use crate::totp;

/// The caller's own account: a contract's scope is its administrator's login.
fn own_account(store: &dyn Store, ctx: &ExecCtx) -> Result<AccountRecord, AdminError> {
    match &ctx.scope {
        Scope::Contract { id, .. } => match store.contract_by_id(*id)?.admin_account_id {
            Some(account) => Ok(store.account_by_id(account)?),
            None => Err(AdminError::Refused(
                "the contract has no administrator account; ask the operator to name one".into(),
            )),
        },
        Scope::Operator | Scope::Monitor { .. } => Err(AdminError::Refused(
            "a second factor belongs to an account administrator's own login: they set it up on the web \
             console's TOTP page; the operator can only reset one (`mcvpn admin account totp-reset USER`)"
                .into(),
        )),
    }
}

fn unix_now() -> u64 {
    now().max(0) as u64
}

pub(super) fn on(store: &mut dyn Store, ctx: &ExecCtx, secret: &str, code: &str) -> AdminResult {
    let a = own_account(store, ctx)?;
    if a.totp {
        return Err(AdminError::Refused(
            "the second factor is already on; turn it off first to set up another phone".into(),
        ));
    }
    if !totp::valid_secret(secret) {
        return Err(AdminError::Refused(
            "the setup secret is not valid; start the setup again on the TOTP page".into(),
        ));
    }
    let step = totp::accepted_step(secret, code, unix_now(), None).ok_or_else(|| {
        AdminError::Refused(
            "the code does not match: type the 6 digits the app shows now (check that the phone's clock is right)"
                .into(),
        )
    })?;
    store.account_set_totp(a.id, Some((secret, step)))?;
    audit(
        store,
        ctx,
        "account.totp-on",
        Some(a.contract_id),
        Some(&a.username),
        "second factor (TOTP) on for console logins",
    )?;
    Ok(Output::message(format!(
        "{}'s console logins now ask for a one-time code after the password",
        a.username
    )))
}

pub(super) fn off(store: &mut dyn Store, ctx: &ExecCtx, code: &str) -> AdminResult {
    let a = own_account(store, ctx)?;
    let Some(current) = store.account_totp(a.id)? else {
        return Err(AdminError::Refused("the second factor is not on".into()));
    };
    if totp::accepted_step(&current.secret, code, unix_now(), current.last_step).is_none() {
        return Err(AdminError::Refused(
            "the code is wrong or was already used: type the 6 digits the app shows now".into(),
        ));
    }
    store.account_set_totp(a.id, None)?;
    audit(
        store,
        ctx,
        "account.totp-off",
        Some(a.contract_id),
        Some(&a.username),
        "second factor (TOTP) off",
    )?;
    Ok(Output::message(format!(
        "{}'s console logins need only the password again",
        a.username
    )))
}

pub(super) fn reset(store: &mut dyn Store, ctx: &ExecCtx, user: &str) -> AdminResult {
    let a = visible_account(store, ctx, user)?;
    if !a.totp {
        return Err(AdminError::Refused(format!("{user} has no second factor to reset")));
    }
    store.account_set_totp(a.id, None)?;
    audit(
        store,
        ctx,
        "account.totp-reset",
        Some(a.contract_id),
        Some(user),
        &format!("second factor (TOTP) reset by {}", ctx.actor),
    )?;
    Ok(Output::message(format!(
        "{user}'s second factor is off; they log in with the password and may set it up again on the console's \
         TOTP page"
    )))
}
