//! Charges and outage compensation (operator only), computed by `crate::contract` from
//! the store's contracts, the tariff and the recorded outages.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::api::OnOff;
use super::api::{
    time, CompensationReport, CountedOutageRow, Document, InvoiceInfo, InvoiceLine, InvoiceReport, OutageRecordedRow,
    OutageRow,
};
use super::contracts::unit_of;
use super::notice_text::{Notice, Statement, StatementOutage};
use super::{audit, visible_contract, AdminError, AdminResult, ExecCtx, Output, Scope};
use crate::contract::{invoice_at, Cancellation, Invoice, OptionFee, Tariff};
use crate::store::{OutageRecorded, Store};

const TARIFF_SETTING: &str = "tariff";

/// The hub's tariff (default: no fees configured, 10 % tax).
pub fn tariff(store: &dyn Store) -> Tariff {
    store
        .setting(TARIFF_SETTING)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| Tariff::new(0, 0))
}

pub(super) fn yen(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    format!("¥{out}")
}

pub(super) fn invoice(store: &mut dyn Store, ctx: &ExecCtx, name: &str, at: NaiveDate) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let unit = unit_of(store, c.id)?;
    let tariff = tariff(store);
    let cancellation = store.cancellation(c.id)?.map(|x| Cancellation {
        received: x.received,
        requested_end: x.requested_end,
        effective: x.effective,
    });
    let billed = crate::contract::billed_unit(&unit, cancellation, c.ended_on)?;
    // Every invoice raised from the start up to `at` (each is a pure function of
    // the day, so walking the days is exact).
    let mut invoices = Vec::new();
    let mut total = 0u64;
    let mut day = unit.basic.start;
    while day <= at {
        for (label, b) in &billed {
            for inv in invoice_at(&tariff, b, day)? {
                total += inv.total;
                invoices.push(invoice_info(label, &inv));
            }
        }
        day = day
            .succ_opt()
            .ok_or_else(|| AdminError::Refused("date out of range".into()))?;
    }
    Ok(Output::Invoices(InvoiceReport {
        contract: c.name,
        up_to: at,
        invoices,
        total,
    }))
}

fn invoice_info(label: &str, inv: &Invoice) -> InvoiceInfo {
    InvoiceInfo {
        contract_part: label.to_string(),
        issued: inv.issued,
        term_start: inv.term_start,
        term_end: inv.term_end,
        lines: inv
            .lines
            .iter()
            .map(|line| InvoiceLine {
                item: line.description(),
                amount: line.amount,
            })
            .collect(),
        subtotal: inv.subtotal,
        tax_rate_bp: inv.tax_rate_bp,
        tax: inv.tax,
        total: inv.total,
    }
}

/// What recorded outages earn contract `name` (art. 35), less the planned maintenance
/// windows (art. 34, 35-1); with `statement` the statement for its administrator as a
/// document, with `send` the statement queued to the administrator as a notice.
pub(super) fn compensation(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    name: &str,
    statement: bool,
    send: bool,
) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let unit = unit_of(store, c.id)?;
    let tariff = tariff(store);
    let recorded: Vec<_> = store
        .outages()?
        .into_iter()
        .filter_map(|o| {
            Some((
                DateTime::from_timestamp(o.start_at, 0)?.naive_utc(),
                DateTime::from_timestamp(o.end_at, 0)?.naive_utc(),
            ))
        })
        .collect();
    let windows = super::maintenance::excluded_windows(store)?;
    let outages = crate::contract::outside_windows(&recorded, &windows);
    let seconds =
        |list: &[(NaiveDateTime, NaiveDateTime)]| list.iter().map(|(s, e)| (*e - *s).num_seconds()).sum::<i64>();
    let maintenance_excluded_s = seconds(&recorded) - seconds(&outages);
    // Art. 35 within the contract's service period, at the fee of the accounts in force.
    let last_day = store.cancellation(c.id)?.map(|x| x.effective).or(c.ended_on);
    let tz = crate::contract::operator_tz();
    let comp = crate::contract::unit_compensation(&outages, tz, &unit, tariff.annual_fee_per_account, last_day)?;
    let report = CompensationReport {
        contract: c.name.clone(),
        outages: recorded.len(),
        outages_in_period: comp.outages,
        compensable_days: comp.days,
        annual_fee: comp.annual_fee,
        compensation: comp.amount,
        maintenance_excluded_s,
        counted: comp
            .counted
            .iter()
            .map(|o| CountedOutageRow {
                start: o.start.and_utc(),
                end: o.end.and_utc(),
                days: o.days,
                annual_fee: o.annual_fee,
            })
            .collect(),
    };
    if !(statement || send) {
        return Ok(Output::Compensation(report));
    }
    let notice = Notice::CompensationStatement(compensation_statement(&report, ctx.today));
    if send {
        let id = super::contracts::notify_once(store, &c, &notice, None)?;
        audit(
            store,
            ctx,
            "compensation.statement",
            Some(c.id),
            None,
            &format!("{} for {} day(s)", yen(report.compensation), report.compensable_days),
        )?;
        return Ok(Output::message(format!(
            "compensation statement for {} ({}) queued as notice {} to {}",
            c.name,
            yen(report.compensation),
            id.unwrap_or_default(),
            c.admin_email
        )));
    }
    let (subject, body) = super::notice_text::active().render(&c, &notice, None);
    Ok(Output::Document(Document {
        media_type: "text/plain; charset=utf-8".into(),
        file_name: format!("compensation-{}-{}.txt", c.name, ctx.today),
        content: format!("Subject: {subject}\n\n{body}"),
    }))
}

/// The statement's words: local times, hours to one decimal, formatted yen.
fn compensation_statement(r: &CompensationReport, on: NaiveDate) -> Statement {
    let hours = |s: i64| format!("{:.1}", s as f64 / 3600.0);
    Statement {
        on,
        outages: r
            .counted
            .iter()
            .map(|o| StatementOutage {
                start: crate::store::format_time(o.start.timestamp()),
                end: crate::store::format_time(o.end.timestamp()),
                hours: hours((o.end - o.start).num_seconds()),
                days: o.days,
                annual_fee: yen(o.annual_fee),
            })
            .collect(),
        days: r.compensable_days,
        amount: yen(r.compensation),
        excluded_hours: hours(r.maintenance_excluded_s),
    }
}

pub(super) fn outage_add(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    start: NaiveDateTime,
    end: NaiveDateTime,
    note: &str,
) -> AdminResult {
    // Times as the operator reads a clock: in the operator's zone.
    let tz = crate::contract::operator_tz();
    let (start_t, end_t) = (
        crate::contract::tz::local_to_utc(tz, start).timestamp(),
        crate::contract::tz::local_to_utc(tz, end).timestamp(),
    );
    let id = store.outage_add(start_t, end_t, note)?;
    audit(
        store,
        ctx,
        "outage.add",
        None,
        None,
        &format!("{start} .. {end}: {note}"),
    )?;
    Ok(Output::message(format!(
        "outage {id} recorded: {} .. {}",
        crate::store::format_time(start_t),
        crate::store::format_time(end_t)
    )))
}

/// `outage record`: an outage a monitor observed (art. 35-1: from when the operator
/// knew). A monitor login records under its own name; the operator names the source.
pub(super) fn outage_record(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    source: Option<&str>,
) -> AdminResult {
    let source = match (&ctx.scope, source) {
        (Scope::Monitor { name }, None) => format!("monitor:{name}"),
        (Scope::Monitor { name }, Some(given)) if given == format!("monitor:{name}") => given.to_string(),
        (Scope::Monitor { name }, Some(given)) => {
            return Err(AdminError::Refused(format!(
                "a monitor login records as monitor:{name}, not {given:?}; leave --source out"
            )))
        }
        (_, Some(given)) => {
            crate::names::check("outage source", given).map_err(AdminError::Refused)?;
            given.to_string()
        }
        (_, None) => return Err(AdminError::Refused("name who observed the outage with --source".into())),
    };
    let outcome = store.outage_record(&source, start.timestamp(), end.timestamp())?;
    let (id, word) = match outcome {
        OutageRecorded::Added(id) => (id, "added"),
        OutageRecorded::Extended(id) => (id, "extended"),
        OutageRecorded::Unchanged(id) => (id, "unchanged"),
    };
    if word != "unchanged" {
        audit(
            store,
            ctx,
            "outage.record",
            None,
            None,
            &format!("{source}: {start} .. {end} ({word})"),
        )?;
    }
    let stored = store
        .outages()?
        .into_iter()
        .find(|o| o.id == id)
        .ok_or_else(|| AdminError::Internal(format!("outage {id} vanished")))?;
    Ok(Output::OutageRecorded(OutageRecordedRow {
        id,
        source,
        start: time(stored.start_at),
        end: time(stored.end_at),
        outcome: word.into(),
    }))
}

pub(super) fn outage_list(store: &mut dyn Store) -> AdminResult {
    let rows = store
        .outages()?
        .into_iter()
        .map(|o| OutageRow {
            id: o.id,
            start: time(o.start_at),
            end: time(o.end_at),
            duration_s: o.end_at - o.start_at,
            note: o.note,
            source: o.source,
        })
        .collect();
    Ok(Output::Outages(rows))
}

pub(super) fn tariff_show(store: &mut dyn Store) -> AdminResult {
    Ok(Output::Tariff(tariff(store)))
}

pub(super) fn tariff_set(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    initial_fee: Option<u64>,
    annual_fee: Option<u64>,
    tax_rate_bp: Option<u32>,
) -> AdminResult {
    let mut t = tariff(store);
    if let Some(v) = initial_fee {
        t.initial_fee = v;
    }
    if let Some(v) = annual_fee {
        t.annual_fee_per_account = v;
    }
    if let Some(v) = tax_rate_bp {
        t.tax_rate_bp = v;
    }
    let json = serde_json::to_string(&t).map_err(|e| AdminError::Internal(e.to_string()))?;
    store.set_setting(TARIFF_SETTING, &json)?;
    audit(store, ctx, "tariff.set", None, None, &json)?;
    Ok(Output::message(format!(
        "tariff: initial fee {}, annual fee per account {}, tax {} bp",
        yen(t.initial_fee),
        yen(t.annual_fee_per_account),
        t.tax_rate_bp
    )))
}

/// Parses `NAME=YEN` of `tariff options --option`.
fn option_fee(s: &str) -> Result<OptionFee, AdminError> {
    let refuse = || {
        AdminError::Refused(format!(
            "--option {s:?}: give NAME=YEN, e.g. --option 'setup visit=50000' (whole yen, tax excluded)"
        ))
    };
    let (name, amount) = s.rsplit_once('=').ok_or_else(refuse)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(refuse());
    }
    let amount = amount.trim().parse::<u64>().map_err(|_| refuse())?;
    Ok(OptionFee {
        name: name.to_string(),
        amount,
    })
}

pub(super) fn tariff_options(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    options: &[String],
    clear: bool,
    bcp: Option<OnOff>,
) -> AdminResult {
    let mut t = tariff(store);
    if clear {
        t.options.clear();
    } else if !options.is_empty() {
        t.options = options.iter().map(|o| option_fee(o)).collect::<Result<_, _>>()?;
    }
    if let Some(b) = bcp {
        // The BCP special terms charge the start month (BCP ¶1); the main terms waive it (art. 27-2).
        t.start_month_free = b == OnOff::Off;
    }
    let json = serde_json::to_string(&t).map_err(|e| AdminError::Internal(e.to_string()))?;
    store.set_setting(TARIFF_SETTING, &json)?;
    audit(store, ctx, "tariff.options", None, None, &json)?;
    Ok(Output::Tariff(t))
}

#[cfg(test)]
mod tests {
    use super::{option_fee, yen};

    #[test]
    fn option_fees_are_name_equals_yen() {
        let o = option_fee("setup visit=50000").unwrap();
        assert_eq!((o.name.as_str(), o.amount), ("setup visit", 50_000));
        assert_eq!(option_fee("a=b=7").unwrap().name, "a=b");
        for bad in ["50000", "=5", "x=", "x=-1", "x=1.5"] {
            assert!(option_fee(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yen_groups_thousands() {
        assert_eq!(yen(0), "¥0");
        assert_eq!(yen(999), "¥999");
        assert_eq!(yen(1000), "¥1,000");
        assert_eq!(yen(1234567), "¥1,234,567");
    }
}
