//! Charges and outage compensation (operator only), computed by `crate::contract` from
//! the store's contracts, the tariff and the recorded outages.

use chrono::DateTime;

use super::contracts::unit_of;
use super::{audit, visible_contract, AdminCommand, AdminError, AdminResult, ExecCtx, Output};
use crate::contract::{invoice_at, Cancellation, Invoice, Tariff};
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

fn yen(v: u64) -> String {
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

fn invoice_rows(label: &str, inv: &Invoice, rows: &mut Vec<Vec<String>>) {
    for line in &inv.lines {
        rows.push(vec![
            inv.issued.to_string(),
            label.to_string(),
            format!("{} .. {}", inv.term_start, inv.term_end),
            line.description(),
            yen(line.amount),
        ]);
    }
    rows.push(vec![
        inv.issued.to_string(),
        label.to_string(),
        String::new(),
        format!(
            "consumption tax {}.{}%",
            inv.tax_rate_bp / 100,
            inv.tax_rate_bp % 100 / 10
        ),
        yen(inv.tax),
    ]);
    rows.push(vec![
        inv.issued.to_string(),
        label.to_string(),
        String::new(),
        "total".into(),
        yen(inv.total),
    ]);
}

pub(super) fn execute(store: &mut dyn Store, ctx: &ExecCtx, cmd: &AdminCommand) -> AdminResult {
    match cmd {
        AdminCommand::Invoice { name, at } => {
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
            let mut rows = Vec::new();
            let mut total = 0u64;
            let mut day = unit.basic.start;
            while day <= *at {
                for (label, b) in &billed {
                    for inv in invoice_at(&tariff, b, day)? {
                        total += inv.total;
                        invoice_rows(label, &inv, &mut rows);
                    }
                }
                day = day
                    .succ_opt()
                    .ok_or_else(|| AdminError::Refused("date out of range".into()))?;
            }
            Ok(Output::Sections {
                parts: vec![
                    (
                        format!("invoices of {} raised up to {at}", c.name),
                        Output::table(&["issued", "contract", "term", "item", "amount"], rows),
                    ),
                    ("total invoiced".into(), Output::message(yen(total))),
                ],
            })
        }
        AdminCommand::Compensation { name } => {
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
            // Art. 35 within the contract's service period, at the fee of the accounts in force.
            let last_day = store.cancellation(c.id)?.map(|x| x.effective).or(c.ended_on);
            let tz = crate::contract::operator_tz();
            let comp =
                crate::contract::unit_compensation(&outages, tz, &unit, tariff.annual_fee_per_account, last_day)?;
            Ok(Output::message(format!(
                "{}: {} recorded outage(s), {} within the service period of 120 h or more, {} compensable day(s) \
                 (whole 24 h days), annual usage fee {} of the accounts in force -> compensation {}",
                c.name,
                outages.len(),
                comp.outages,
                comp.days,
                yen(comp.annual_fee),
                yen(comp.amount)
            )))
        }
        AdminCommand::OutageAdd { start, end, note } => {
            // Times as the operator reads a clock: in the operator's zone.
            let tz = crate::contract::operator_tz();
            let (start_t, end_t) = (
                crate::contract::tz::local_to_utc(tz, *start).timestamp(),
                crate::contract::tz::local_to_utc(tz, *end).timestamp(),
            );
            let id = store.outage_add(start_t, end_t, note)?;
            audit(
                store,
                ctx,
                "outage.add",
                None,
                None,
                &format!("{start} .. {end}: {note}"),
            );
            Ok(Output::message(format!(
                "outage {id} recorded: {} .. {}",
                crate::store::format_time(start_t),
                crate::store::format_time(end_t)
            )))
        }
        AdminCommand::OutageList => {
            let rows = store
                .outages()?
                .into_iter()
                .map(|o| {
                    let hours = (o.end_at - o.start_at) as f64 / 3600.0;
                    vec![
                        o.id.to_string(),
                        crate::store::format_time(o.start_at),
                        crate::store::format_time(o.end_at),
                        format!("{hours:.1}"),
                        o.note,
                    ]
                })
                .collect();
            Ok(Output::table(&["id", "start", "end", "hours", "note"], rows))
        }
        AdminCommand::TariffShow => {
            let t = tariff(store);
            Ok(Output::table(
                &["item", "value"],
                vec![
                    vec!["initial fee per contract".into(), yen(t.initial_fee)],
                    vec!["annual usage fee per account".into(), yen(t.annual_fee_per_account)],
                    vec![
                        "consumption tax".into(),
                        format!("{}.{:02}%", t.tax_rate_bp / 100, t.tax_rate_bp % 100),
                    ],
                    vec!["start month free".into(), t.start_month_free.to_string()],
                ],
            ))
        }
        AdminCommand::TariffSet {
            initial_fee,
            annual_fee,
            tax_rate_bp,
        } => {
            let mut t = tariff(store);
            if let Some(v) = initial_fee {
                t.initial_fee = *v;
            }
            if let Some(v) = annual_fee {
                t.annual_fee_per_account = *v;
            }
            if let Some(v) = tax_rate_bp {
                t.tax_rate_bp = *v;
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
        _ => unreachable!("not a billing command"),
    }
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
