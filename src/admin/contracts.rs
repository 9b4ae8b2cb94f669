//! Contract commands (operator only) and the contract jobs the hub runs on a timer:
//! cancellations and scheduled terminations taking effect, renewal reminders.

use chrono::{DateTime, NaiveDate, Utc};

use super::api::{
    time, AccountsAdded, CancellationAccepted, CancellationInfo, ContractAdded, ContractDetails, ContractSummary,
    CurrentTerm, HistoryRow, TermRow,
};
use super::{audit, visible_contract, AdminError, AdminResult, ContractSpec, ExecCtx, Output};
use crate::contract::{
    additional_first_end, cancellation_deadline, cancellation_effective, first_term_end, term_at,
    termination_effective_undelivered, AdditionalContract, BasicContract, Cancellation, ContractKind, ContractUnit,
    TermStatus,
};
use crate::store::{
    now, CancellationRecord, ContractField, ContractRecord, ContractState, NewContract, Store, TermKind, UnixTime,
};

/// The hub's `--min-accounts` (art. 12), stored so that `mcvpn admin` sees it too.
pub const MIN_ACCOUNTS_SETTING: &str = "min_accounts";
/// Renewal reminders go out this many days before the cancellation deadline.
pub const RENEWAL_NOTICE_DAYS: i64 = 30;

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

fn cancellation_of(store: &dyn Store, contract_id: i64) -> Result<Option<Cancellation>, AdminError> {
    Ok(store.cancellation(contract_id)?.map(|c| Cancellation {
        received: c.received,
        requested_end: c.requested_end,
    }))
}

/// Queues a notice to the contract's administrator (art. 23-2, 24-3, 39).
fn notify(store: &mut dyn Store, c: &ContractRecord, kind: &str, subject: &str, body: &str) {
    let greeting = if c.admin_name.is_empty() {
        "To the account administrator".to_string()
    } else {
        format!("Dear {}", c.admin_name)
    };
    let text = format!(
        "{greeting},\n\n{body}\n\nContract: {}\n-- mcvpn service operator\n",
        c.name
    );
    if let Err(e) = store.notice_add(c.id, kind, subject, &text) {
        tracing::error!(error = %e, contract = %c.name, "could not queue a notice");
    }
}

fn day(t: UnixTime) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
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
    let kind = ContractKind::parse(kind)?;
    let start = start.unwrap_or(ctx.today);
    let min = min_accounts(store);
    ContractUnit::new(BasicContract {
        start,
        accounts: *accounts,
    })
    .validate(min)?;
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
    );
    Ok(Output::ContractAdded(ContractAdded {
        contract: c.name,
        accounts: *accounts,
        start,
        first_term_end: end,
        cancellation_deadline: cancellation_deadline(end)?,
    }))
}

pub(super) fn list(store: &mut dyn Store) -> AdminResult {
    let mut rows = Vec::new();
    for c in store.contracts()? {
        let unit = unit_of(store, c.id)?;
        let used = store.account_count(c.id)?;
        rows.push(ContractSummary {
            contract: c.name,
            kind: c.kind,
            state: c.state,
            accounts_used: used,
            account_quota: unit.quota(),
            start: unit.basic.start,
            admin_email: c.admin_email,
        });
    }
    Ok(Output::Contracts(rows))
}

pub(super) fn set(store: &mut dyn Store, ctx: &ExecCtx, name: &str, field: ContractField, value: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let old = store.contract_update(c.id, field, value, &ctx.actor)?;
    audit(
        store,
        ctx,
        "contract.change",
        Some(c.id),
        None,
        &format!("{}: {old:?} -> {value:?}", field.column()),
    );
    Ok(Output::message(format!(
        "contract {}: {} is now {value:?} (was {old:?})",
        c.name,
        field.column()
    )))
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
    );
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
    );
    Ok(Output::AccountsAdded(AccountsAdded {
        contract: c.name,
        accounts,
        start,
        account_quota: unit.quota(),
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
    audit(store, ctx, "contract.suspend", Some(c.id), None, reason);
    notify(
        store,
        &c,
        "suspension",
        &format!("mcvpn: use of contract {} is suspended", c.name),
        &format!(
            "Use of the service under your contract is suspended as of {} (art. 23).\nReason: {reason}\n\
             All sessions were ended and logins are refused until the suspension is lifted.",
            day(now())
        ),
    );
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
    audit(store, ctx, "contract.resume", Some(c.id), None, "suspension lifted");
    notify(
        store,
        &c,
        "resumption",
        &format!("mcvpn: contract {} may be used again", c.name),
        "The suspension of your contract was lifted; your users can log in again.",
    );
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
    let subject = format!("mcvpn: contract {} is terminated", c.name);
    if notice_undeliverable {
        // Art. 24-3: a notice that cannot be delivered takes effect five days after it was sent.
        let sent = Utc::now().naive_utc();
        let effective = termination_effective_undelivered(sent)?.and_utc().timestamp();
        store.contract_schedule_termination(c.id, Some(effective))?;
        audit(
            store,
            ctx,
            "contract.terminate",
            Some(c.id),
            None,
            &format!("{reason} (effective {})", day(effective)),
        );
        notify(
            store,
            &c,
            "termination",
            &subject,
            &format!(
                "Your contract is terminated (art. 24). Reason: {reason}\nEffective: {}",
                day(effective)
            ),
        );
        return Ok(Output::message(format!(
            "termination of {} scheduled for {} (five days after the undeliverable notice, art. 24-3)",
            c.name,
            day(effective)
        )));
    }
    store.contract_set_state(c.id, ContractState::Terminated, Some(reason))?;
    audit(store, ctx, "contract.terminate", Some(c.id), None, reason);
    notify(
        store,
        &c,
        "termination",
        &subject,
        &format!(
            "Your contract is terminated as of {} (art. 24).\nReason: {reason}",
            day(now())
        ),
    );
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
    let effective = cancellation_effective(received, end)?;
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
    audit(store, ctx, "contract.cancel", Some(c.id), None, &detail);
    notify(
        store,
        &c,
        "cancellation",
        &format!("mcvpn: cancellation of contract {} accepted", c.name),
        &format!(
            "Your cancellation received on {received} is accepted (art. 18). The service ends at the end of \
             {effective}; accounts stop then. Fees are not refunded.{}",
            if late {
                "\nThe requested date's deadline had passed: the next possible month end applies."
            } else {
                ""
            }
        ),
    );
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
    let status = term_at(unit.basic.start, basic_end, cancellation.as_ref(), ctx.today)?;
    let admin_login = match c.admin_account_id {
        Some(id) => store.account_by_id(id).ok().map(|a| a.username),
        None => None,
    };
    let current_term = match status {
        TermStatus::NotStarted { starts } => CurrentTerm::NotStarted { starts },
        TermStatus::Active { term, renews, last_day } => CurrentTerm::Active {
            start: term.start,
            end: term.end,
            renewal: term.renewals,
            cancellation_deadline: cancellation_deadline(term.end)?,
            renews,
            last_day,
        },
        TermStatus::Ended { last_day } => CurrentTerm::Ended { last_day },
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
        account_quota: unit.quota(),
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
        contracts,
        history,
        cancellation,
    })))
}

/// Applies what the calendar says has come due: cancellations whose last day has passed
/// and scheduled terminations. Also queues renewal reminders. Returns what it did.
pub fn apply_due(store: &mut dyn Store, now_t: UnixTime, today: NaiveDate) -> Result<Vec<String>, AdminError> {
    let mut done = Vec::new();
    let ctx = ExecCtx {
        actor: "hub".into(),
        ..ExecCtx::operator(today)
    };
    for c in store.contracts()? {
        if c.state == ContractState::Active || c.state == ContractState::Suspended {
            if let Some(cancel) = store.cancellation(c.id)? {
                if today > cancel.effective {
                    store.contract_set_state(c.id, ContractState::Cancelled, Some("cancelled by the contractor"))?;
                    audit(
                        store,
                        &ctx,
                        "contract.cancelled",
                        Some(c.id),
                        None,
                        &format!("last day {}", cancel.effective),
                    );
                    done.push(format!("contract {} cancelled (last day {})", c.name, cancel.effective));
                    continue;
                }
            }
            if let Some(at) = c.terminate_at.filter(|&t| t <= now_t) {
                store.contract_set_state(c.id, ContractState::Terminated, Some("termination notice took effect"))?;
                store.contract_schedule_termination(c.id, None)?;
                audit(
                    store,
                    &ctx,
                    "contract.terminated",
                    Some(c.id),
                    None,
                    &format!("effective {}", day(at)),
                );
                done.push(format!("contract {} terminated", c.name));
                continue;
            }
        }
        if c.state == ContractState::Active {
            if let Some(msg) = renewal_reminder(store, &c, today)? {
                done.push(msg);
            }
        }
    }
    Ok(done)
}

/// Queues the reminder that a term will renew unless cancelled by its deadline, once
/// per term, starting [`RENEWAL_NOTICE_DAYS`] before the deadline.
fn renewal_reminder(store: &mut dyn Store, c: &ContractRecord, today: NaiveDate) -> Result<Option<String>, AdminError> {
    let unit = unit_of(store, c.id)?;
    let cancellation = cancellation_of(store, c.id)?;
    let status = term_at(
        unit.basic.start,
        first_term_end(unit.basic.start)?,
        cancellation.as_ref(),
        today,
    )?;
    let TermStatus::Active { term, renews: true, .. } = status else {
        return Ok(None);
    };
    let deadline = cancellation_deadline(term.end)?;
    let days_left = (deadline - today).num_days();
    if !(0..=RENEWAL_NOTICE_DAYS).contains(&days_left) {
        return Ok(None);
    }
    let subject = format!("mcvpn: contract {} renews after {}", c.name, term.end);
    if store
        .notices(Some(c.id), false)?
        .iter()
        .any(|n| n.kind == "renewal" && n.subject == subject)
    {
        return Ok(None);
    }
    notify(
        store,
        c,
        "renewal",
        &subject,
        &format!(
            "Your contract's term ends on {}. It renews for one year unless a cancellation reaches us by {deadline} \
             (art. 14).",
            term.end
        ),
    );
    Ok(Some(format!("renewal reminder queued for {}", c.name)))
}
