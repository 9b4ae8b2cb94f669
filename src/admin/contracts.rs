//! Contract commands (operator only). The contract jobs the hub runs on a timer are in
//! `jobs.rs`.

use chrono::NaiveDate;

use super::api::{
    time, AccountsAdded, CancellationAccepted, CancellationInfo, ContractAdded, ContractDetails, ContractSummary,
    CurrentTerm, HistoryRow, TermRow,
};
use super::notice_text::{self, Notice};
use super::{audit, visible_contract, AdminError, AdminResult, ContractSpec, ExecCtx, Output};
use crate::contract::{
    additional_first_end, cancellation_deadline, cancellation_effective, first_term_end, term_at, AdditionalContract,
    BasicContract, Cancellation, ContractKind, ContractUnit, TermStatus,
};
use crate::store::{
    now, CancellationRecord, ContractField, ContractRecord, ContractState, NewContract, Store, TermKind,
};

/// The hub's `--min-accounts` (art. 12), stored so that `mcvpn admin` sees it too.
pub const MIN_ACCOUNTS_SETTING: &str = "min_accounts";

pub fn min_accounts(store: &dyn Store) -> u32 {
    store
        .setting(MIN_ACCOUNTS_SETTING)
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The contract unit (art. 12) as the calendar functions want it.
pub fn unit_of(store: &dyn Store, contract_id: i64) -> Result<ContractUnit, AdminError> {
    let terms = store.terms(contract_id)?;
    let basic = terms
        .iter()
        .find(|t| t.kind == TermKind::Basic)
        .ok_or_else(|| AdminError::Internal(format!("contract {contract_id} has no basic contract")))?;
    let mut unit = ContractUnit::new(BasicContract {
        start: basic.start,
        accounts: basic.accounts,
    });
    unit.additional = terms
        .iter()
        .filter(|t| t.kind == TermKind::Additional)
        .map(|t| AdditionalContract {
            start: t.start,
            accounts: t.accounts,
        })
        .collect();
    Ok(unit)
}

pub(super) fn cancellation_of(store: &dyn Store, contract_id: i64) -> Result<Option<Cancellation>, AdminError> {
    Ok(store.cancellation(contract_id)?.map(|c| Cancellation {
        received: c.received,
        requested_end: c.requested_end,
        effective: c.effective,
    }))
}

/// Queues a notice (art. 23-2, 24-3, 39), worded by the templates in force
/// ([`notice_text`]). Part of the change it tells of: a suspension whose notice cannot be
/// queued does not happen.
pub(super) fn notify(store: &mut dyn Store, c: &ContractRecord, notice: &Notice) -> Result<(), AdminError> {
    notify_once(store, c, notice, None).map(|_| ())
}

/// [`notify`], queued only once per `key` (None: always). Advance notices of a suspension
/// or termination go to the sales agent of a contract sold through one (art. 23-2, 24-3;
/// see `payments::advance_notice_to`) and greet the agent; the others go to the
/// administrator (art. 39).
pub(super) fn notify_once(
    store: &mut dyn Store,
    c: &ContractRecord,
    notice: &Notice,
    key: Option<&str>,
) -> Result<Option<i64>, AdminError> {
    let to = if notice.is_advance_notice() {
        super::payments::advance_notice_to(c)
    } else {
        c.admin_email.clone()
    };
    let agent = (to != c.admin_email).then(|| super::payments::agent_name(c));
    let (subject, body) = notice_text::active().render(c, notice, agent.as_deref());
    Ok(store.notice_add_to(c.id, &to, notice.kind(), key, &subject, &body)?)
}

pub(super) fn add(store: &mut dyn Store, ctx: &ExecCtx, spec: &ContractSpec) -> AdminResult {
    let ContractSpec {
        name,
        kind,
        accounts,
        start,
        admin_name,
        admin_email,
        address,
        phone,
        department,
        sales_agent,
    } = spec;
    crate::names::check("contract", name).map_err(AdminError::Refused)?;
    let kind = ContractKind::parse(kind)?;
    let start = start.unwrap_or(ctx.today);
    let min = min_accounts(store);
    ContractUnit::new(BasicContract {
        start,
        accounts: *accounts,
    })
    .validate(min)?;
    let admin_email = &crate::contract::check_admin_email(admin_email)?;
    let c = store.contract_add(&NewContract {
        name: name.clone(),
        kind,
        address: address.clone(),
        phone: phone.clone(),
        department: department.clone(),
        sales_agent: sales_agent.clone(),
        admin_name: admin_name.clone(),
        admin_email: admin_email.clone(),
        start,
        accounts: *accounts,
    })?;
    let end = first_term_end(start)?;
    audit(
        store,
        ctx,
        "contract.add",
        Some(c.id),
        None,
        &format!(
            "{} ({}), basic contract of {accounts} accounts from {start}",
            c.name,
            kind.as_str()
        ),
    )?;
    Ok(Output::ContractAdded(ContractAdded {
        contract: c.name,
        accounts: *accounts,
        start,
        first_term_end: end,
        cancellation_deadline: cancellation_deadline(end)?,
    }))
}

pub(super) fn list(store: &mut dyn Store, ctx: &ExecCtx) -> AdminResult {
    let mut rows = Vec::new();
    for c in store.contracts()? {
        let unit = unit_of(store, c.id)?;
        let used = store.account_count(c.id)?;
        rows.push(ContractSummary {
            contract: c.name,
            kind: c.kind,
            state: c.state,
            accounts_used: used,
            account_quota: unit.account_quota(ctx.today),
            start: unit.basic.start,
            admin_email: c.admin_email,
        });
    }
    Ok(Output::Contracts(rows))
}

pub(super) fn set(store: &mut dyn Store, ctx: &ExecCtx, name: &str, field: ContractField, value: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    if field == ContractField::Name {
        crate::names::check("contract", value).map_err(AdminError::Refused)?;
    }
    if field == ContractField::AdminEmail {
        crate::contract::check_admin_email(value)?;
    }
    if field == ContractField::DeviceLimit {
        check_device_limit(value)?;
    }
    let old = store.contract_update(c.id, field, value, &ctx.actor)?;
    audit(
        store,
        ctx,
        "contract.change",
        Some(c.id),
        None,
        &format!("{}: {old:?} -> {value:?}", field.column()),
    )?;
    Ok(Output::message(format!(
        "contract {}: {} is now {value:?} (was {old:?})",
        c.name,
        field.column()
    )))
}

/// A device limit `contract set NAME device-limit N` accepts.
fn check_device_limit(value: &str) -> Result<u32, AdminError> {
    use crate::store::MAX_DEVICE_LIMIT;
    match value.parse::<u32>() {
        Ok(n) if n <= MAX_DEVICE_LIMIT => Ok(n),
        _ => Err(AdminError::Refused(format!(
            "the device limit is a number of client devices per account from 0 to {MAX_DEVICE_LIMIT}, not {value:?}"
        ))),
    }
}

pub(super) fn set_admin(store: &mut dyn Store, ctx: &ExecCtx, name: &str, account: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let a = store
        .account_by_name(account)?
        .ok_or_else(|| AdminError::NotFound(format!("no account named {account:?}")))?;
    if a.contract_id != c.id {
        return Err(AdminError::Refused(format!(
            "account {account:?} belongs to contract {:?}, not {:?}",
            a.contract, c.name
        )));
    }
    store.contract_set_admin_account(c.id, Some(a.id))?;
    audit(
        store,
        ctx,
        "contract.admin",
        Some(c.id),
        Some(account),
        &format!("administrator login: {account}"),
    )?;
    Ok(Output::message(format!(
        "{account} administers contract {}: `mcvpn admin --hub URL --as {account} …`",
        c.name
    )))
}

pub(super) fn add_accounts(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    name: &str,
    accounts: u32,
    start: Option<NaiveDate>,
) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let start = start.unwrap_or(ctx.today);
    let last_day = store.cancellation(c.id)?.map(|x| x.effective);
    crate::contract::additional_refusal(&c.name, c.state.has_ended().then(|| c.state.as_str()), last_day, start)?;
    let mut unit = unit_of(store, c.id)?;
    unit.additional.push(AdditionalContract { start, accounts });
    unit.validate(min_accounts(store))?;
    store.term_add(c.id, start, accounts)?;
    let end = additional_first_end(first_term_end(unit.basic.start)?, start)?;
    audit(
        store,
        ctx,
        "contract.additional",
        Some(c.id),
        None,
        &format!("additional contract of {accounts} accounts from {start}, first term ends {end}"),
    )?;
    Ok(Output::AccountsAdded(AccountsAdded {
        contract: c.name,
        accounts,
        start,
        account_quota: unit.account_quota(ctx.today),
        first_term_end: end,
    }))
}

pub(super) fn suspend(store: &mut dyn Store, ctx: &ExecCtx, name: &str, reason: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    if c.state != ContractState::Active {
        return Err(AdminError::Refused(format!(
            "contract {} is {}, not active",
            c.name,
            c.state.as_str()
        )));
    }
    store.contract_set_state(c.id, ContractState::Suspended, Some(reason))?;
    audit(store, ctx, "contract.suspend", Some(c.id), None, reason)?;
    notify(
        store,
        &c,
        &Notice::Suspension {
            since: ctx.today,
            reason: reason.to_string(),
        },
    )?;
    Ok(Output::message(format!(
        "contract {} suspended: its sessions are cut and its logins refused; the administrator is notified",
        c.name
    )))
}

pub(super) fn resume(store: &mut dyn Store, ctx: &ExecCtx, name: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    if c.state != ContractState::Suspended {
        return Err(AdminError::Refused(format!(
            "contract {} is {}, not suspended",
            c.name,
            c.state.as_str()
        )));
    }
    store.contract_set_state(c.id, ContractState::Active, None)?;
    audit(store, ctx, "contract.resume", Some(c.id), None, "suspension lifted")?;
    notify(store, &c, &Notice::Resumption { since: ctx.today })?;
    Ok(Output::message(format!("contract {} is active again", c.name)))
}

pub(super) fn terminate(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    name: &str,
    reason: &str,
    notice_undeliverable: bool,
) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    if matches!(c.state, ContractState::Terminated | ContractState::Cancelled) {
        return Err(AdminError::Refused(format!(
            "contract {} is already {}",
            c.name,
            c.state.as_str()
        )));
    }
    if notice_undeliverable {
        // Art. 24-3: a notice that does not arrive takes effect five days after it
        // was sent: the hub's job schedules it once the notice has actually gone out
        // (or was refused), not from this command.
        store.contract_terminate_on_notice(c.id, true)?;
        audit(
            store,
            ctx,
            "contract.terminate",
            Some(c.id),
            None,
            &format!("{reason} (effective five days after the notice is sent, art. 24-3)"),
        )?;
        notify(
            store,
            &c,
            &Notice::TerminationUndelivered {
                reason: reason.to_string(),
            },
        )?;
        return Ok(Output::message(format!(
            "termination of {} takes effect five days after its notice is sent (art. 24-3); see `contract show`",
            c.name
        )));
    }
    store.contract_set_state(c.id, ContractState::Terminated, Some(reason))?;
    store.contract_set_ended(c.id, Some(ctx.today))?;
    audit(store, ctx, "contract.terminate", Some(c.id), None, reason)?;
    notify(
        store,
        &c,
        &Notice::Termination {
            since: ctx.today,
            reason: reason.to_string(),
        },
    )?;
    Ok(Output::message(format!(
        "contract {} terminated; its sessions are cut",
        c.name
    )))
}

pub(super) fn cancel(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    name: &str,
    received: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let received = received.unwrap_or(ctx.today);
    let basic_start = unit_of(store, c.id)?.basic.start;
    let effective = cancellation_effective(basic_start, first_term_end(basic_start)?, received, end)?;
    store.cancellation_set(
        c.id,
        &CancellationRecord {
            received,
            requested_end: end,
            effective,
            actor: ctx.actor.clone(),
            created_at: now(),
        },
    )?;
    let late = end.is_some_and(|e| e < effective);
    let detail = format!(
        "received {received}{}, effective at the end of {effective}",
        end.map(|e| format!(", asked for {e}")).unwrap_or_default()
    );
    audit(store, ctx, "contract.cancel", Some(c.id), None, &detail)?;
    notify(
        store,
        &c,
        &Notice::Cancellation {
            received,
            effective,
            requested_end: end,
            late,
        },
    )?;
    Ok(Output::CancellationAccepted(CancellationAccepted {
        contract: c.name,
        received,
        requested_end: end,
        effective,
        late,
    }))
}

pub(super) fn show(store: &mut dyn Store, ctx: &ExecCtx, name: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let unit = unit_of(store, c.id)?;
    let basic_end = first_term_end(unit.basic.start)?;
    let cancellation = cancellation_of(store, c.id)?;
    // Bad data (a cancellation an earlier version accepted before the start) is shown,
    // not a reason to refuse showing the contract.
    let status = term_at(unit.basic.start, basic_end, cancellation.as_ref(), ctx.today);
    let admin_login = match c.admin_account_id {
        Some(id) => store.account_by_id(id).ok().map(|a| a.username),
        None => None,
    };
    let current_term = match status {
        Err(e) => CurrentTerm::Unknown { error: e.to_string() },
        Ok(TermStatus::NotStarted { starts }) => CurrentTerm::NotStarted { starts },
        Ok(TermStatus::Active { term, renews, last_day }) => CurrentTerm::Active {
            start: term.start,
            end: term.end,
            renewal: term.renewals,
            cancellation_deadline: cancellation_deadline(term.end)?,
            renews,
            last_day,
        },
        Ok(TermStatus::Ended { last_day }) => CurrentTerm::Ended { last_day },
    };
    let mut contracts = vec![TermRow {
        kind: TermKind::Basic,
        start: unit.basic.start,
        accounts: unit.basic.accounts,
        first_term_end: basic_end,
    }];
    for a in &unit.additional {
        contracts.push(TermRow {
            kind: TermKind::Additional,
            start: a.start,
            accounts: a.accounts,
            first_term_end: additional_first_end(basic_end, a.start)?,
        });
    }
    let history = store
        .contract_history(c.id)?
        .into_iter()
        .map(|h| HistoryRow {
            at: time(h.at),
            by: h.actor,
            field: h.field,
            was: h.old_value,
            now: h.new_value,
        })
        .collect();
    let cancellation = store.cancellation(c.id)?.map(|cancel| CancellationInfo {
        received: cancel.received,
        requested_end: cancel.requested_end,
        effective: cancel.effective,
        recorded_by: cancel.actor,
    });
    Ok(Output::Contract(Box::new(ContractDetails {
        accounts_used: store.account_count(c.id)?,
        account_quota: unit.account_quota(ctx.today),
        device_limit: c.device_limit,
        name: c.name,
        kind: c.kind,
        state: c.state,
        state_reason: c.state_reason,
        address: c.address,
        phone: c.phone,
        department: c.department,
        sales_agent: c.sales_agent,
        admin_name: c.admin_name,
        admin_email: c.admin_email,
        admin_login,
        current_term,
        termination_scheduled_at: c.terminate_at.map(time),
        termination_on_notice: c.terminate_on_notice,
        ended_on: c.ended_on,
        contracts,
        history,
        cancellation,
    })))
}
