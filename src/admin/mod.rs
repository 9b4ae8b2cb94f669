//! Administration: contracts, accounts, targets, grants, logs, notices, billing.
//!
//! Every administrative action is an [`AdminCommand`], executed by [`execute`] against
//! the store within a [`Scope`]. The operator runs them on the hub host straight on the
//! store (`mcvpn admin --db`, scope [`Scope::Operator`]); an account administrator runs
//! them from anywhere through the hub's Noise control channel (`mcvpn admin --hub --as`),
//! and the hub executes them in [`Scope::Contract`] of the administrator's contract.
//! One code path for both, so the scope check cannot be forgotten on one of them.

mod accounts;
mod billing;
mod contracts;
mod jobs;
pub mod render;

pub use contracts::{min_accounts, MIN_ACCOUNTS_SETTING};
pub use jobs::apply_due;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::store::{AccountRecord, AuditEntry, ContractField, ContractRecord, OverlayNet, Store, StoreError};

/// Who the command runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The service operator on the hub host: everything.
    Operator,
    /// An account administrator: their own contract only.
    Contract { id: i64, name: String },
}

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

/// A new contract with its basic contract, as `contract add` takes it (the same
/// struct is the command line's arguments and the command sent to the hub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct ContractSpec {
    /// The contract's name (a company or public body)
    pub name: String,
    /// corporation or public-body (art. 11: nothing else)
    #[arg(long, default_value = "corporation")]
    pub kind: String,
    /// Accounts in the basic contract (at least the hub's --min-accounts)
    #[arg(long, default_value_t = 10)]
    pub accounts: u32,
    /// Service start date (YYYY-MM-DD); default today
    #[arg(long)]
    pub start: Option<NaiveDate>,
    #[arg(long, default_value = "")]
    pub admin_name: String,
    #[arg(long, default_value = "")]
    pub admin_email: String,
    #[arg(long, default_value = "")]
    pub address: String,
    #[arg(long, default_value = "")]
    pub phone: String,
    #[arg(long, default_value = "")]
    pub department: String,
    #[arg(long)]
    pub sales_agent: Option<String>,
}

/// An administrative action. Serialised as JSON inside the control channel when an
/// account administrator sends it to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum AdminCommand {
    // Operator only: contracts and money.
    ContractAdd(ContractSpec),
    ContractList,
    ContractShow {
        name: String,
    },
    ContractSet {
        name: String,
        field: ContractField,
        value: String,
    },
    ContractAdmin {
        name: String,
        account: String,
    },
    ContractAddAccounts {
        name: String,
        accounts: u32,
        start: Option<NaiveDate>,
    },
    ContractSuspend {
        name: String,
        reason: String,
    },
    ContractResume {
        name: String,
    },
    ContractTerminate {
        name: String,
        reason: String,
        notice_undeliverable: bool,
    },
    ContractCancel {
        name: String,
        received: Option<NaiveDate>,
        end: Option<NaiveDate>,
    },
    Invoice {
        name: String,
        at: NaiveDate,
    },
    Compensation {
        name: String,
    },
    OutageAdd {
        start: NaiveDateTime,
        end: NaiveDateTime,
        note: String,
    },
    OutageList,
    TariffShow,
    TariffSet {
        initial_fee: Option<u64>,
        annual_fee: Option<u64>,
        tax_rate_bp: Option<u32>,
    },
    // Operator, and account administrators within their contract.
    AccountAdd {
        contract: Option<String>,
        user: String,
        password: String,
    },
    AccountList {
        contract: Option<String>,
    },
    AccountLock {
        user: String,
    },
    AccountUnlock {
        user: String,
    },
    AccountPassword {
        user: String,
        password: String,
    },
    AccountBind {
        user: String,
        key: String,
        name: Option<String>,
    },
    AccountBinding {
        user: String,
        on: bool,
    },
    TargetList,
    TargetAdd {
        account: String,
        key: String,
        name: String,
    },
    TargetGrant {
        target: String,
        account: String,
    },
    TargetRevoke {
        target: String,
        account: String,
    },
    GrantList,
    SessionList {
        all: bool,
    },
    Log {
        limit: usize,
    },
    NoticeList {
        all: bool,
    },
}

impl AdminCommand {
    /// Which part of the admin module carries the command out.
    fn area(&self) -> Area {
        use AdminCommand::*;
        match self {
            ContractAdd(_)
            | ContractList
            | ContractShow { .. }
            | ContractSet { .. }
            | ContractAdmin { .. }
            | ContractAddAccounts { .. }
            | ContractSuspend { .. }
            | ContractResume { .. }
            | ContractTerminate { .. }
            | ContractCancel { .. } => Area::Contracts,
            Invoice { .. } | Compensation { .. } | OutageAdd { .. } | OutageList | TariffShow | TariffSet { .. } => {
                Area::Billing
            }
            _ => Area::Accounts,
        }
    }

    /// Commands an account administrator may not run at all: contracts and money,
    /// except looking at their own contract.
    pub fn operator_only(&self) -> bool {
        self.area() != Area::Accounts && !matches!(self, AdminCommand::ContractShow { .. })
    }

    /// Whether it changes the store (the hub re-reads live sessions after those).
    pub fn changes_state(&self) -> bool {
        use AdminCommand::*;
        !matches!(
            self,
            ContractList
                | ContractShow { .. }
                | Invoice { .. }
                | Compensation { .. }
                | OutageList
                | TariffShow
                | AccountList { .. }
                | TargetList
                | GrantList
                | SessionList { .. }
                | Log { .. }
                | NoticeList { .. }
        )
    }

    /// A short name for logs and refusals.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("cmd").and_then(|c| c.as_str()).map(str::to_string))
            .unwrap_or_else(|| "?".into())
    }
}

/// What a command prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Output {
    Message {
        text: String,
    },
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Sections {
        parts: Vec<(String, Output)>,
    },
}

impl Output {
    pub fn message(text: impl Into<String>) -> Output {
        Output::Message { text: text.into() }
    }

    pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Output {
        Output::Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AdminError {
    /// Outside the caller's contract, or operator-only.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Against the rules (quota, password policy, bad dates...).
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AdminError::NotFound(m),
            StoreError::Conflict(m) | StoreError::Refused(m) => AdminError::Refused(m),
            StoreError::Db(e) => AdminError::Internal(e.to_string()),
        }
    }
}

impl From<crate::contract::ContractError> for AdminError {
    fn from(e: crate::contract::ContractError) -> Self {
        AdminError::Refused(e.to_string())
    }
}

pub type AdminResult = Result<Output, AdminError>;

/// Runs `cmd` in `ctx`'s scope. Refusals outside the scope are audited as
/// `admin.denied`; every change is audited by the command itself.
pub fn execute(store: &mut dyn Store, ctx: &ExecCtx, cmd: &AdminCommand) -> AdminResult {
    if cmd.operator_only() && ctx.scope != Scope::Operator {
        return deny(
            store,
            ctx,
            cmd,
            format!("`{}` is for the service operator only", cmd.name()),
        );
    }
    let result = dispatch(store, ctx, cmd);
    if let Err(AdminError::Forbidden(why)) = &result {
        let why = why.clone();
        return deny(store, ctx, cmd, why);
    }
    result
}

fn deny(store: &mut dyn Store, ctx: &ExecCtx, cmd: &AdminCommand, why: String) -> AdminResult {
    let contract_id = match &ctx.scope {
        Scope::Contract { id, .. } => Some(*id),
        Scope::Operator => None,
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

/// The parts of the admin module, one file each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Contracts,
    Billing,
    Accounts,
}

fn dispatch(store: &mut dyn Store, ctx: &ExecCtx, cmd: &AdminCommand) -> AdminResult {
    match cmd.area() {
        Area::Contracts => contracts::execute(store, ctx, cmd),
        Area::Billing => billing::execute(store, ctx, cmd),
        Area::Accounts => accounts::execute(store, ctx, cmd),
    }
}

/// Records an administrative change.
fn audit(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    action: &str,
    contract_id: Option<i64>,
    account: Option<&str>,
    detail: &str,
) {
    if let Err(e) = store.audit(&AuditEntry {
        actor: &ctx.actor,
        action,
        contract_id,
        account,
        source: ctx.source.as_deref(),
        detail,
    }) {
        tracing::error!(error = %e, action, "could not write the audit log");
    }
}

/// The contract a name refers to, if the caller may see it. Outside the caller's scope
/// the answer is the same as for a contract that does not exist.
fn visible_contract(store: &dyn Store, ctx: &ExecCtx, name: &str) -> Result<ContractRecord, AdminError> {
    let c = store.contract_by_name(name)?;
    match &ctx.scope {
        Scope::Operator => Ok(c),
        Scope::Contract { id, .. } if *id == c.id => Ok(c),
        Scope::Contract { name: own, .. } => Err(AdminError::Forbidden(format!(
            "contract {name:?} is not yours: you administer {own:?} only"
        ))),
    }
}

/// An account, if the caller may act on it.
fn visible_account(store: &dyn Store, ctx: &ExecCtx, user: &str) -> Result<AccountRecord, AdminError> {
    let a = store
        .account_by_name(user)?
        .ok_or_else(|| AdminError::NotFound(format!("no account named {user:?}")))?;
    match &ctx.scope {
        Scope::Operator => Ok(a),
        Scope::Contract { id, .. } if *id == a.contract_id => Ok(a),
        Scope::Contract { name, .. } => Err(AdminError::Forbidden(format!(
            "account {user:?} is not in your contract {name:?}"
        ))),
    }
}

/// The contract id the caller's listings are limited to.
fn scope_filter(ctx: &ExecCtx) -> Option<i64> {
    match &ctx.scope {
        Scope::Operator => None,
        Scope::Contract { id, .. } => Some(*id),
    }
}

#[cfg(test)]
mod tests;
