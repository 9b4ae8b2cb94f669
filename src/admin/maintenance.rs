//! Planned maintenance (art. 34-2): the operator's windows, their notices to every
//! account administrator, and what the hub tells nodes during one. What a window takes
//! out of compensation is in `billing::compensation`; when the notices are due is the
//! pure [`crate::contract::notice_schedule`].
//!
//! Notices are queued by the contract job (`jobs::apply_due`, every 30 s on the hub and
//! after every changing `mcvpn admin` command), once per window, contract and kind
//! (the outbox's dedup keys), so neither a hub restart nor a second hub resends them.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::api::{time, MaintenanceRow};
use super::contracts::notify_once;
use super::notice_text::{MaintenanceWindow, Notice};
use super::{audit, AdminError, AdminResult, ExecCtx, Output};
use crate::contract::{notice_schedule, operator_tz, today_in, tz::local_to_utc};
use crate::proto::control::MaintenanceBanner;
use crate::store::{ContractRecord, MaintenanceRecord, NewMaintenance, Store, UnixTime};

/// A reason is shown in one line on users' screens.
const MAX_REASON_CHARS: usize = 200;

/// How far ahead nodes are told of a window at login (`mcvpn status` shows it).
const BANNER_AHEAD_S: i64 = 7 * 24 * 3600;

fn utc(t: UnixTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

fn local(t: UnixTime) -> String {
    crate::store::format_time(t)
}

fn state(w: &MaintenanceRecord, now_t: UnixTime) -> &'static str {
    match (w.cancelled_at, now_t) {
        (Some(_), _) => "cancelled",
        (None, now) if now < w.start_at => "planned",
        (None, now) if now < w.end_at => "in progress",
        (None, _) => "ended",
    }
}

fn as_notice(w: &MaintenanceRecord) -> MaintenanceWindow {
    MaintenanceWindow {
        id: w.id,
        start: local(w.start_at),
        end: local(w.end_at),
        reason: w.reason.clone(),
        emergency: w.emergency,
    }
}

fn key(id: i64, what: &str) -> String {
    format!("maintenance:{id}:{what}")
}

pub(super) fn add(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    start: NaiveDateTime,
    end: NaiveDateTime,
    reason: &str,
    emergency: bool,
    notice_days: u32,
) -> AdminResult {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AdminError::Refused(
            "say what the maintenance is for with --reason: the administrators read it".into(),
        ));
    }
    if reason.contains(['\r', '\n']) || reason.chars().count() > MAX_REASON_CHARS {
        return Err(AdminError::Refused(format!(
            "--reason must be one line of at most {MAX_REASON_CHARS} characters: nodes show it in a banner"
        )));
    }
    // Times as the operator reads a clock: in the operator's zone.
    let tz = operator_tz();
    let (start_at, end_at) = (local_to_utc(tz, start).timestamp(), local_to_utc(tz, end).timestamp());
    if end_at <= start_at {
        return Err(AdminError::Refused(format!(
            "the window ends ({end}) before it starts ({start})"
        )));
    }
    let now_t = crate::store::now();
    if end_at <= now_t {
        return Err(AdminError::Refused(format!(
            "the window has already ended ({}); record an unplanned stop with `outage add` instead",
            local(end_at)
        )));
    }
    let id = store.maintenance_add(&NewMaintenance {
        start_at,
        end_at,
        reason: reason.to_string(),
        emergency,
        notice_days,
    })?;
    audit(
        store,
        ctx,
        "maintenance.add",
        None,
        None,
        &format!(
            "window {id}: {} .. {}{}: {reason}",
            local(start_at),
            local(end_at),
            if emergency { " (emergency)" } else { "" }
        ),
    )?;
    let start_day = today_in(tz, utc(start_at));
    let schedule = notice_schedule(ctx.today, start_day, notice_days, emergency);
    let when = if schedule.notice_on <= ctx.today {
        "now".to_string()
    } else {
        format!("on {}", schedule.notice_on)
    };
    let reminder = schedule
        .reminder_on
        .map_or(String::new(), |d| format!(", a reminder on {d}"));
    Ok(Output::message(format!(
        "maintenance window {id}: {} .. {}; the administrators are notified {when}{reminder}",
        local(start_at),
        local(end_at)
    )))
}

pub(super) fn list(store: &mut dyn Store) -> AdminResult {
    let now_t = crate::store::now();
    let rows = store
        .maintenance_windows()?
        .into_iter()
        .map(|w| MaintenanceRow {
            id: w.id,
            start: time(w.start_at),
            end: time(w.end_at),
            state: state(&w, now_t).into(),
            reason: w.reason,
            emergency: w.emergency,
            notice_days: w.notice_days,
        })
        .collect();
    Ok(Output::Maintenance(rows))
}

/// Cancels a window; the administrators who were told of it are told it is off.
pub(super) fn cancel(store: &mut dyn Store, ctx: &ExecCtx, id: i64) -> AdminResult {
    let w = store.maintenance_cancel(id, crate::store::now())?;
    audit(store, ctx, "maintenance.cancel", None, None, &format!("window {id}"))?;
    let mut told = 0;
    for c in store.contracts()? {
        if c.state.has_ended() || !store.notice_queued(c.id, &key(id, "notice"))? {
            continue;
        }
        if notify_once(
            store,
            &c,
            &Notice::MaintenanceCancelled(as_notice(&w)),
            Some(&key(id, "cancelled")),
        )?
        .is_some()
        {
            told += 1;
        }
    }
    Ok(Output::message(format!(
        "maintenance window {id} cancelled; {told} administrator(s) who had been told get a cancellation notice"
    )))
}

/// The contract job's part: queues the notice and the reminder of each window that are
/// due for contract `c` (in force, not ended). Nothing is sent about a window that has
/// ended (a hub that was down throughout it), nor a reminder once it has begun.
pub(super) fn notices_due(
    store: &mut dyn Store,
    c: &ContractRecord,
    windows: &[MaintenanceRecord],
    now_t: UnixTime,
    today: chrono::NaiveDate,
    done: &mut Vec<String>,
) -> Result<(), AdminError> {
    let tz = operator_tz();
    for w in windows.iter().filter(|w| w.cancelled_at.is_none() && now_t < w.end_at) {
        let added_on = today_in(tz, utc(w.created_at));
        let schedule = notice_schedule(added_on, today_in(tz, utc(w.start_at)), w.notice_days, w.emergency);
        if today >= schedule.notice_on
            && notify_once(store, c, &Notice::Maintenance(as_notice(w)), Some(&key(w.id, "notice")))?.is_some()
        {
            done.push(format!("maintenance {} announced to {}", w.id, c.name));
        }
        let reminder_due = schedule.reminder_on.is_some_and(|d| today >= d) && now_t < w.start_at;
        if reminder_due
            && notify_once(
                store,
                c,
                &Notice::MaintenanceReminder(as_notice(w)),
                Some(&key(w.id, "reminder")),
            )?
            .is_some()
        {
            done.push(format!("maintenance {} reminder to {}", w.id, c.name));
        }
    }
    Ok(())
}

/// The windows compensation leaves out (art. 35-1): every one not cancelled, in UTC.
pub(super) fn excluded_windows(store: &dyn Store) -> Result<Vec<(NaiveDateTime, NaiveDateTime)>, AdminError> {
    Ok(store
        .maintenance_windows()?
        .into_iter()
        .filter(|w| w.cancelled_at.is_none())
        .map(|w| (utc(w.start_at).naive_utc(), utc(w.end_at).naive_utc()))
        .collect())
}

/// What a node is told at login: the window in progress, else the next one within a
/// week (the soonest), if any.
pub fn banner(store: &dyn Store, now_t: UnixTime) -> Result<Option<MaintenanceBanner>, AdminError> {
    Ok(store
        .maintenance_windows()?
        .into_iter()
        .filter(|w| w.cancelled_at.is_none() && now_t < w.end_at && w.start_at <= now_t + BANNER_AHEAD_S)
        .min_by_key(|w| w.start_at)
        .map(|w| MaintenanceBanner {
            start: w.start_at,
            end: w.end_at,
            reason: w.reason,
            emergency: w.emergency,
            tz: operator_tz().to_string(),
        }))
}
