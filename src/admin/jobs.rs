//! The contract jobs the hub runs on a timer (and `mcvpn admin` after each change):
//! cancellations and terminations taking effect, renewal reminders. Each contract is
//! processed on its own: one contract's bad data is logged and reported, and never
//! stops the job for the others (issue 16, item 3).

use chrono::NaiveDate;

use super::contracts::{cancellation_of, notify_once, unit_of};
use super::notice_text::Notice;
use super::{audit, AdminError, ExecCtx};
use crate::contract::{first_term_end, renewal_reminder_due, term_at, termination_effective_undelivered};
use crate::store::{ContractRecord, ContractState, MaintenanceRecord, Store, UnixTime};

/// Renewal reminders go out this many days before the cancellation deadline.
pub const RENEWAL_NOTICE_DAYS: i64 = 30;

/// The notice whose sending starts the five days of art. 24-3.
pub const TERMINATION_NOTICE: &str = "termination";

/// Applies what the calendar says has come due on `today` (a date in the operator's
/// zone) at the instant `now_t`. Returns one line per thing done, and one per contract
/// whose data could not be processed (also logged as an error).
pub fn apply_due(store: &mut dyn Store, now_t: UnixTime, today: NaiveDate) -> Result<Vec<String>, AdminError> {
    let mut done = Vec::new();
    let windows = store.maintenance_windows()?;
    for c in store.contracts()? {
        // One transaction per contract: a job's state change, audit entry and notice
        // are stored together or not at all (and then tried again on the next pass).
        let mut done_here = Vec::new();
        let applied = crate::store::atomically(store, |store| {
            apply_due_one(store, &c, &windows, now_t, today, &mut done_here)
        });
        if applied.is_ok() {
            done.append(&mut done_here);
        }
        if let Err(e) = applied {
            tracing::error!(contract = %c.name, error = %e, "contract job failed for this contract; the others go on");
            done.push(format!("contract {}: job failed: {e}", c.name));
        }
    }
    Ok(done)
}

fn apply_due_one(
    store: &mut dyn Store,
    c: &ContractRecord,
    windows: &[MaintenanceRecord],
    now_t: UnixTime,
    today: NaiveDate,
    done: &mut Vec<String>,
) -> Result<(), AdminError> {
    let ctx = ExecCtx {
        actor: "hub".into(),
        ..ExecCtx::operator(today)
    };
    if c.state.has_ended() {
        return Ok(());
    }
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
            )?;
            done.push(format!("contract {} cancelled (last day {})", c.name, cancel.effective));
            return Ok(());
        }
    }
    let mut terminate_at = c.terminate_at;
    if c.terminate_on_notice {
        // Art. 24-3: five days from the moment the notice was sent, or refused.
        let notices = store.notices(Some(c.id), false)?;
        let notice = notices.iter().rev().find(|n| n.kind == TERMINATION_NOTICE);
        if let Some(sent) = notice.and_then(|n| n.sent_at.or(n.failed_at)) {
            let sent = chrono::DateTime::from_timestamp(sent, 0)
                .ok_or_else(|| AdminError::Internal(format!("notice time {sent} out of range")))?;
            let at = termination_effective_undelivered(sent.naive_utc())?
                .and_utc()
                .timestamp();
            store.contract_schedule_termination(c.id, Some(at))?;
            store.contract_terminate_on_notice(c.id, false)?;
            audit(
                store,
                &ctx,
                "contract.terminate-scheduled",
                Some(c.id),
                None,
                &format!(
                    "notice sent {}, termination effective {} (art. 24-3)",
                    crate::store::format_time(sent.timestamp()),
                    crate::store::format_time(at)
                ),
            )?;
            done.push(format!(
                "termination of {} takes effect {} (five days after its notice, art. 24-3)",
                c.name,
                crate::store::format_time(at)
            ));
            terminate_at = Some(at);
        }
    }
    if let Some(at) = terminate_at.filter(|&t| t <= now_t) {
        store.contract_set_state(c.id, ContractState::Terminated, Some("termination notice took effect"))?;
        store.contract_schedule_termination(c.id, None)?;
        // The last day of service is the day the termination took effect.
        let last_day = crate::contract::today_in(
            crate::contract::operator_tz(),
            chrono::DateTime::from_timestamp(at, 0).unwrap_or_default(),
        );
        store.contract_set_ended(c.id, Some(last_day))?;
        audit(
            store,
            &ctx,
            "contract.terminated",
            Some(c.id),
            None,
            &format!("effective {}", crate::store::format_time(at)),
        )?;
        done.push(format!("contract {} terminated", c.name));
        return Ok(());
    }
    // Invoices, reminders, suspension for non-payment and its lifting (art. 23, 28, 31).
    super::payments::daily(store, c, today, done)?;
    // Planned maintenance (art. 34-2): suspended contracts are told too.
    super::maintenance::notices_due(store, c, windows, now_t, today, done)?;
    if c.state == ContractState::Active {
        if let Some(msg) = renewal_reminder(store, c, today)? {
            done.push(msg);
        }
    }
    Ok(())
}

/// Queues the reminder that a term will renew unless cancelled by its deadline, once
/// per term (whatever the contract is called by then), starting
/// [`RENEWAL_NOTICE_DAYS`] before the deadline.
fn renewal_reminder(store: &mut dyn Store, c: &ContractRecord, today: NaiveDate) -> Result<Option<String>, AdminError> {
    let unit = unit_of(store, c.id)?;
    let cancellation = cancellation_of(store, c.id)?;
    let status = term_at(
        unit.basic.start,
        first_term_end(unit.basic.start)?,
        cancellation.as_ref(),
        today,
    )?;
    let Some(r) = renewal_reminder_due(&status, today, RENEWAL_NOTICE_DAYS)? else {
        return Ok(None);
    };
    let renewal = Notice::Renewal {
        term_end: r.term_end,
        deadline: r.deadline,
    };
    Ok(notify_once(store, c, &renewal, Some(&r.key))?.map(|_| format!("renewal reminder queued for {}", c.name)))
}
