//! Charges and outage compensation (operator only), computed by `crate::contract` from
//! the store's contracts, the tariff and the recorded outages.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::api::{time, CompensationReport, InvoiceInfo, InvoiceLine, InvoiceReport, OutageRow};
use super::contracts::unit_of;
use super::{audit, visible_contract, AdminError, AdminResult, ExecCtx, Output};
use crate::contract::{
    additional_first_end, compensation as compensation_due, first_term_end, invoice_at, usage_fee, BilledContract,
    Cancellation, Invoice, Tariff,
};
use crate::store::Store;

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
    });
    let basic_end = first_term_end(unit.basic.start)?;
    let mut billed = vec![(
        "basic".to_string(),
        BilledContract {
            start: unit.basic.start,
            first_end: basic_end,
            accounts: unit.basic.accounts,
            delivered: None,
            cancellation,
        },
    )];
    for (i, a) in unit.additional.iter().enumerate() {
        billed.push((
            format!("additional {}", i + 1),
            BilledContract {
                start: a.start,
                first_end: additional_first_end(basic_end, a.start)?,
                accounts: a.accounts,
                delivered: None,
                cancellation,
            },
        ));
    }
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

pub(super) fn compensation(store: &mut dyn Store, ctx: &ExecCtx, name: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let unit = unit_of(store, c.id)?;
    let tariff = tariff(store);
    let outages: Vec<_> = store
        .outages()?
        .into_iter()
        .filter_map(|o| {
            Some((
                DateTime::from_timestamp(o.start_at, 0)?.naive_utc(),
                DateTime::from_timestamp(o.end_at, 0)?.naive_utc(),
            ))
        })
        .collect();
    let accounts = u32::try_from(unit.quota()).unwrap_or(u32::MAX);
    let annual = usage_fee(tariff.annual_fee_per_account, accounts, 12)?;
    let days = crate::contract::compensable_days(&outages)?;
    let amount = compensation_due(&outages, annual)?;
    Ok(Output::Compensation(CompensationReport {
        contract: c.name,
        outages: outages.len(),
        compensable_days: days,
        accounts,
        annual_fee: annual,
        compensation: amount,
    }))
}

pub(super) fn outage_add(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    start: NaiveDateTime,
    end: NaiveDateTime,
    note: &str,
) -> AdminResult {
    let id = store.outage_add(start.and_utc().timestamp(), end.and_utc().timestamp(), note)?;
    audit(
        store,
        ctx,
        "outage.add",
        None,
        None,
        &format!("{start} .. {end}: {note}"),
    );
    Ok(Output::message(format!("outage {id} recorded: {start} .. {end} UTC")))
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
    audit(store, ctx, "tariff.set", None, None, &json);
    Ok(Output::message(format!(
        "tariff: initial fee {}, annual fee per account {}, tax {} bp",
        yen(t.initial_fee),
        yen(t.annual_fee_per_account),
        t.tax_rate_bp
    )))
}

#[cfg(test)]
mod tests {
    use super::yen;

    #[test]
    fn yen_groups_thousands() {
        assert_eq!(yen(0), "¥0");
        assert_eq!(yen(999), "¥999");
        assert_eq!(yen(1000), "¥1,000");
        assert_eq!(yen(1234567), "¥1,234,567");
    }
}
