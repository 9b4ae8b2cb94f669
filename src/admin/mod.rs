//! Administration: contracts, accounts, targets, grants, logs, notices, billing.
//!
//! Every administrative action is an [`AdminCommand`] (the typed API in [`api`]),
//! prepared by [`prepare`] and executed by [`execute`] against the store within a
//! [`Scope`]. The operator runs them on the hub host straight on the store
//! (`mcvpn admin --db`, scope [`Scope::Operator`]); an account administrator runs them
//! from anywhere through the hub's Noise control channel (`mcvpn admin --hub --as`), and
//! the hub executes them in [`Scope::Contract`] of the administrator's contract. One code
//! path for both, so the scope check cannot be forgotten on one of them.

mod accounts;
pub mod api;
mod billing;
mod contracts;
mod devices;
mod invoice_docs;
mod jobs;
mod maintenance;
#[cfg(test)]
mod maintenance_tests;
pub mod notice_text;
mod operators;
mod payments;
#[cfg(test)]
mod payments_tests;
pub mod render;
mod second_factor;

pub use api::{
    authorize, AccountCmd, AdminCommand, AdminError, AdminResult, ContractCmd, ContractSpec, LogFilter, LogResult,
    NewPassword, Output, Scope,
};
pub use contracts::{min_accounts, MIN_ACCOUNTS_SETTING};
pub use jobs::apply_due;
pub use maintenance::banner as maintenance_banner;
pub use payments::{advance_notice_to, NONPAYMENT_REASON};

use chrono::NaiveDate;

use crate::store::{AccountRecord, AuditEntry, ContractRecord, OverlayNet, Store, StoreError};

/// The circumstances of one execution.
#[derive(Debug, Clone)]
pub struct ExecCtx {
    pub scope: Scope,
    /// For the audit log: `operator` or `admin:NAME`.
    pub actor: String,
    pub source: Option<String>,
    pub today: NaiveDate,
    pub overlay: OverlayNet,
}

impl ExecCtx {
    pub fn operator(today: NaiveDate) -> ExecCtx {
        ExecCtx {
            scope: Scope::Operator,
            actor: "operator".into(),
            source: None,
            today,
            overlay: OverlayNet::default(),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AdminError::NotFound(m),
            StoreError::Conflict(m) | StoreError::Refused(m) => AdminError::Refused(m),
            e @ StoreError::DeviceLimit { .. } => AdminError::Refused(e.to_string()),
            StoreError::Db(e) => AdminError::Internal(e.to_string()),
            e @ StoreError::Pg(_) => AdminError::Internal(e.to_string()),
            StoreError::Unavailable(m) => AdminError::Internal(m),
        }
    }
}

impl From<crate::contract::ContractError> for AdminError {
    fn from(e: crate::contract::ContractError) -> Self {
        AdminError::Refused(e.to_string())
    }
}

/// A command ready to run: the new password it carries, if any, is already hashed.
/// Argon2 is slow on purpose (about a second of CPU); doing it here, before the caller
/// locks the store, keeps every other login and admin request from waiting on it.
#[derive(Debug, Clone)]
pub struct Prepared {
    cmd: AdminCommand,
    password_hash: Option<String>,
}

impl Prepared {
    pub fn command(&self) -> &AdminCommand {
        &self.cmd
    }
}

/// Hashes the command's new password, if the policy accepts it (if not, [`execute`]
/// refuses the command at the point it always has, and no hashing is wasted). Touches no
/// store: call it before taking the store's lock.
pub fn prepare(cmd: AdminCommand) -> Prepared {
    let password_hash = cmd
        .new_password()
        .filter(|(user, pw)| crate::password::check_policy(user, &pw.0).is_ok())
        .map(|(_, pw)| crate::password::hash(&pw.0));
    Prepared { cmd, password_hash }
}

/// Runs a prepared command in `ctx`'s scope. Refusals outside the scope are audited as
/// `admin.denied`; every change is audited by the command itself.
///
/// An account administrator who names another contract's account, contract or target
/// gets the very answer a name that does not exist gets (`NotFound`, same text), and the
/// same `admin.denied` row in their contract's log (review C10): nothing tells other
/// contracts' names apart from typos. The operator's log (no contract) also records
/// which of those were another contract's.
pub fn execute(store: &mut dyn Store, ctx: &ExecCtx, prepared: &Prepared) -> AdminResult {
    let cmd = &prepared.cmd;
    if let Err(AdminError::Forbidden(why)) = authorize(&ctx.scope, cmd) {
        return deny(store, ctx, cmd, why);
    }
    // A change is one transaction: its rows, its audit entry and its notice are all
    // stored or, after an error or a crash half way, none of them.
    let result = if cmd.changes_state() {
        crate::store::atomically(store, |store| dispatch(store, ctx, prepared))
    } else {
        dispatch(store, ctx, prepared)
    };
    let Scope::Contract { name: own, .. } = &ctx.scope else {
        return result;
    };
    match result {
        // From dispatch, Forbidden only ever means `out_of_scope`: its text is the
        // not-found answer.
        Err(AdminError::Forbidden(missing)) => {
            let _ = store.audit(&AuditEntry {
                actor: &ctx.actor,
                action: "admin.denied",
                contract_id: None,
                source: ctx.source.as_deref(),
                detail: &format!("{}: outside the caller's contract {own:?}: {missing}", cmd.name()),
                ..Default::default()
            });
            let _ = deny(store, ctx, cmd, missing.clone());
            Err(AdminError::NotFound(missing))
        }
        Err(AdminError::NotFound(missing)) => {
            let _ = deny(store, ctx, cmd, missing.clone());
            Err(AdminError::NotFound(missing))
        }
        other => other,
    }
}

/// What a lookup answers for a name in another contract: `missing`, the text a name that
/// does not exist gets. [`execute`] audits it as a denial and answers `NotFound(missing)`.
fn out_of_scope(missing: String) -> AdminError {
    AdminError::Forbidden(missing)
}

fn deny(store: &mut dyn Store, ctx: &ExecCtx, cmd: &AdminCommand, why: String) -> AdminResult {
    let contract_id = match &ctx.scope {
        Scope::Contract { id, .. } => Some(*id),
        Scope::Operator | Scope::Monitor { .. } => None,
    };
    let _ = store.audit(&AuditEntry {
        actor: &ctx.actor,
        action: "admin.denied",
        contract_id,
        source: ctx.source.as_deref(),
        detail: &format!("{}: {why}", cmd.name()),
        ..Default::default()
    });
    Err(AdminError::Forbidden(why))
}

/// One function per command.
fn dispatch(store: &mut dyn Store, ctx: &ExecCtx, prepared: &Prepared) -> AdminResult {
    use api::{
        DeviceCmd, DunningCmd, IssuerCmd, MaintenanceCmd, NoticeCmd, OperatorCmd, OutageCmd, PaymentCmd, SessionCmd,
        TargetCmd, TariffCmd,
    };
    use AdminCommand as C;
    let hash = prepared.password_hash.as_deref();
    match &prepared.cmd {
        C::Contract(c) => match c {
            ContractCmd::Add(spec) => contracts::add(store, ctx, spec),
            ContractCmd::List => contracts::list(store, ctx),
            ContractCmd::Show { name } => contracts::show(store, ctx, name),
            ContractCmd::Set { name, field, value } => contracts::set(store, ctx, name, *field, value),
            ContractCmd::Admin { name, account } => contracts::set_admin(store, ctx, name, account),
            ContractCmd::AddAccounts { name, accounts, start } => {
                contracts::add_accounts(store, ctx, name, *accounts, *start)
            }
            ContractCmd::Suspend { name, reason } => contracts::suspend(store, ctx, name, reason),
            ContractCmd::Resume { name } => contracts::resume(store, ctx, name),
            ContractCmd::Terminate {
                name,
                reason,
                notice_undeliverable,
            } => contracts::terminate(store, ctx, name, reason, *notice_undeliverable),
            ContractCmd::Cancel { name, received, end } => contracts::cancel(store, ctx, name, *received, *end),
        },
        C::Account(a) => match a {
            AccountCmd::Add(new) => accounts::add(store, ctx, new, hash),
            AccountCmd::List { contract } => accounts::list(store, ctx, contract.as_deref()),
            AccountCmd::Lock { user } => accounts::lock(store, ctx, user),
            AccountCmd::Unlock { user } => accounts::unlock(store, ctx, user),
            AccountCmd::Password { user, password, .. } => accounts::set_password(store, ctx, user, password, hash),
            AccountCmd::Bind { user, key, name } => accounts::bind(store, ctx, user, key, name.as_deref()),
            AccountCmd::Binding { user, state } => accounts::binding(store, ctx, user, *state),
            AccountCmd::TotpOn { secret, code } => second_factor::on(store, ctx, &secret.0, code),
            AccountCmd::TotpOff { code } => second_factor::off(store, ctx, code),
            AccountCmd::TotpReset { user } => second_factor::reset(store, ctx, user),
        },
        C::Target(t) => match t {
            TargetCmd::List => accounts::target_list(store, ctx),
            TargetCmd::Add { account, key, name } => accounts::target_add(store, ctx, account, key, name),
            TargetCmd::Grant { target, account } => accounts::target_grant(store, ctx, target, account),
            TargetCmd::Revoke { target, account } => accounts::target_revoke(store, ctx, target, account),
            TargetCmd::Grants => accounts::grant_list(store, ctx),
        },
        C::Session(SessionCmd::List { all }) => accounts::session_list(store, ctx, *all),
        C::Device(d) => match d {
            DeviceCmd::List { account } => devices::list(store, ctx, account.as_deref()),
            DeviceCmd::Remove { user, device } => devices::remove(store, ctx, user, device),
        },
        C::Log { limit, filter } => accounts::log(store, ctx, *limit, filter),
        C::Session(SessionCmd::End { session }) => accounts::session_end(store, ctx, *session),
        C::Notice(NoticeCmd::List { all }) => accounts::notice_list(store, ctx, *all),
        // A document: its lines are shown as lines, not escaped as a message's would be.
        C::Notice(NoticeCmd::Preview) => Ok(Output::Document(api::Document {
            media_type: "text/plain; charset=utf-8".into(),
            file_name: "notice-preview.txt".into(),
            content: notice_text::active().preview(),
        })),
        C::Invoice {
            contract,
            at,
            csv,
            print,
        } => {
            let at = at.unwrap_or(ctx.today);
            match (csv, print) {
                (_, Some(n)) => invoice_docs::qualified(store, ctx, contract, *n, at),
                (true, None) => invoice_docs::csv(store, ctx, contract, at),
                (false, None) => billing::invoice(store, ctx, contract, at),
            }
        }
        C::Payment(p) => match p {
            PaymentCmd::Add {
                contract,
                amount,
                date,
                invoice,
            } => payments::payment_add(store, ctx, contract, *amount, date.unwrap_or(ctx.today), *invoice),
            PaymentCmd::List { contract } => payments::ledger(store, ctx, contract),
        },
        C::Dunning(d) => match d {
            DunningCmd::Show => payments::dunning_show(store),
            DunningCmd::Set {
                due_months,
                reminder_days,
                suspend_days,
            } => payments::dunning_set(store, ctx, *due_months, *reminder_days, *suspend_days),
        },
        C::Issuer(i) => match i {
            IssuerCmd::Show => payments::issuer_show(store),
            IssuerCmd::Set {
                name,
                registration_number,
            } => payments::issuer_set(store, ctx, name.as_deref(), registration_number.as_deref()),
        },
        C::Compensation {
            contract,
            statement,
            send,
        } => billing::compensation(store, ctx, contract, *statement, *send),
        C::Outage(o) => match o {
            OutageCmd::Add { start, end, note } => billing::outage_add(store, ctx, *start, *end, note),
            OutageCmd::List => billing::outage_list(store),
            OutageCmd::Record { start, end, source } => {
                billing::outage_record(store, ctx, *start, *end, source.as_deref())
            }
        },
        C::Operator(o) => match o {
            OperatorCmd::Add { name, role, .. } => operators::add(store, ctx, name, *role, &prepared.cmd, hash),
            OperatorCmd::List => operators::list(store),
            OperatorCmd::Remove { name } => operators::remove(store, ctx, name),
        },
        C::Maintenance(m) => match m {
            MaintenanceCmd::Add {
                start,
                end,
                reason,
                emergency,
                notice_days,
            } => maintenance::add(store, ctx, *start, *end, reason, *emergency, *notice_days),
            MaintenanceCmd::List => maintenance::list(store),
            MaintenanceCmd::Cancel { id } => maintenance::cancel(store, ctx, *id),
        },
        C::Tariff(t) => match t {
            TariffCmd::Show => billing::tariff_show(store),
            TariffCmd::Set {
                initial_fee,
                annual_fee,
                tax_rate_bp,
            } => billing::tariff_set(store, ctx, *initial_fee, *annual_fee, *tax_rate_bp),
            TariffCmd::Options { options, clear, bcp } => billing::tariff_options(store, ctx, options, *clear, *bcp),
        },
    }
}

/// Records an administrative change. Part of the change: a change whose audit entry
/// cannot be written is not made (the caller runs in [`crate::store::atomically`]).
fn audit(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    action: &str,
    contract_id: Option<i64>,
    account: Option<&str>,
    detail: &str,
) -> Result<(), AdminError> {
    store.audit(&AuditEntry {
        actor: &ctx.actor,
        action,
        contract_id,
        account,
        source: ctx.source.as_deref(),
        detail,
    })?;
    Ok(())
}

/// The contract a name refers to, if the caller may see it. Outside the caller's scope
/// the answer is the same as for a contract that does not exist.
fn visible_contract(store: &dyn Store, ctx: &ExecCtx, name: &str) -> Result<ContractRecord, AdminError> {
    let c = match store.contract_by_name(name) {
        Ok(c) => c,
        Err(StoreError::NotFound(_)) => return Err(AdminError::NotFound(no_contract(name))),
        Err(e) => return Err(e.into()),
    };
    match &ctx.scope {
        Scope::Operator => Ok(c),
        Scope::Contract { id, .. } if *id == c.id => Ok(c),
        Scope::Contract { .. } | Scope::Monitor { .. } => Err(out_of_scope(no_contract(name))),
    }
}

fn no_contract(name: &str) -> String {
    format!("no contract named {name:?} (see `mcvpn admin contract list`)")
}

fn no_account(user: &str) -> String {
    format!("no account named {user:?}")
}

/// An account, if the caller may act on it.
fn visible_account(store: &dyn Store, ctx: &ExecCtx, user: &str) -> Result<AccountRecord, AdminError> {
    let a = store
        .account_by_name(user)?
        .ok_or_else(|| AdminError::NotFound(no_account(user)))?;
    match &ctx.scope {
        Scope::Operator => Ok(a),
        Scope::Contract { id, .. } if *id == a.contract_id => Ok(a),
        Scope::Contract { .. } | Scope::Monitor { .. } => Err(out_of_scope(no_account(user))),
    }
}

/// The contract id the caller's listings are limited to.
fn scope_filter(ctx: &ExecCtx) -> Option<i64> {
    match &ctx.scope {
        Scope::Operator => None,
        Scope::Contract { id, .. } => Some(*id),
        // `authorize` lets a monitor run no contract listing; were one to slip through,
        // it would see no contract (ids start at 1).
        Scope::Monitor { .. } => Some(0),
    }
}

#[cfg(test)]
mod tests;
