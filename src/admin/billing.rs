//! Charges and outage compensation (operator only), computed by `crate::contract` from
//! the store's contracts, the tariff and the recorded outages.

use chrono::DateTime;

use super::contracts::unit_of;
use super::{audit, visible_contract, AdminCommand, AdminError, AdminResult, ExecCtx, Output};
use crate::contract::{
    additional_first_end, compensation, first_term_end, invoice_at, usage_fee, BilledContract, Cancellation, Invoice,
    Tariff,
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
            let accounts = u32::try_from(unit.quota()).unwrap_or(u32::MAX);
            let annual = usage_fee(tariff.annual_fee_per_account, accounts, 12)?;
            let days = crate::contract::compensable_days(&outages)?;
            let amount = compensation(&outages, annual)?;
            Ok(Output::message(format!(
                "{}: {} recorded outage(s), {days} compensable day(s) (outages of 120 h or more, whole 24 h days), \
                 annual usage fee {} for {accounts} accounts -> compensation {}",
                c.name,
                outages.len(),
                yen(annual),
                yen(amount)
            )))
        }
        AdminCommand::OutageAdd { start, end, note } => {
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
            Ok(Output::table(
                &["id", "start (UTC)", "end (UTC)", "hours", "note"],
                rows,
            ))
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
