//! Issue 16, "Done means": the two-year life of one contract on a simulated clock, in
//! one test, through the operator's admin commands and the hub's daily contract job on
//! a real (in-memory) SQLite store. It prints its dates, invoices and notices:
//!
//!     cargo test --release --test contract_life -- --nocapture
//!
//! The clock: every day from 2026-11-24 to 2028-12-31, the job runs at 10:00 in the
//! operator's zone (Asia/Tokyo); the commands are given on their day. The life:
//! a basic contract of 10 accounts from 2026-11-24 (first term to 2027-11-30, art. 13);
//! an additional contract of 5 accounts from 2027-11-10, in the basic contract's expiry
//! month (its own term to 2028-11-30, the basic contract's renewed end, art. 13 ¶3);
//! the renewal on 2027-12-01 (art. 14, invoiced then, art. 28-2); a cancellation
//! received 2028-03-15 for the earlier month end 2028-06-30 (art. 18-4); cancelled from
//! 2028-07-01, and nothing more after it.

use chrono::{NaiveDate, TimeDelta};

use mcvpn::admin::api::TariffCmd;
use mcvpn::admin::render::{self, Text};
use mcvpn::admin::{apply_due, execute, prepare, AdminCommand, ContractCmd, ContractSpec, ExecCtx};
use mcvpn::contract::{start_of_day, Tz};
use mcvpn::store::prelude::*;
use mcvpn::store::{ContractState, SqliteStore};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// An answer as `mcvpn admin` lays it out, indented for the log.
fn text(o: &Text) -> String {
    match o {
        Text::Message(text) => text.clone(),
        Text::Table { headers, rows } => {
            let mut s = format!("    {}\n", headers.join(" | "));
            for r in rows {
                s.push_str(&format!("    {}\n", r.join(" | ")));
            }
            s
        }
        Text::Sections(parts) => parts
            .iter()
            .map(|(title, o)| format!("  [{title}]\n{}", text(o)))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn two_years_of_one_contract() {
    let tz: Tz = mcvpn::contract::parse_tz("Asia/Tokyo").unwrap();
    let mut s = SqliteStore::open_in_memory().unwrap();
    let op = ExecCtx::operator;
    let run = |s: &mut SqliteStore, today: NaiveDate, cmd: AdminCommand| -> String {
        let out = execute(s, &op(today), &prepare(cmd.clone())).unwrap_or_else(|e| panic!("{today}: {cmd:?}: {e}"));
        text(&render::text(&out))
    };
    run(
        &mut s,
        d(2026, 11, 1),
        AdminCommand::Tariff(TariffCmd::Set {
            initial_fee: Some(30_000),
            annual_fee: Some(12_000),
            tax_rate_bp: None,
        }),
    );

    let mut seen_notices = 0;
    let mut day = d(2026, 11, 24);
    let mut log: Vec<String> = Vec::new();
    let mut say = |line: String| {
        println!("{line}");
        log.push(line);
    };
    while day <= d(2028, 12, 31) {
        let command = match day {
            x if x == d(2026, 11, 24) => Some(AdminCommand::Contract(ContractCmd::Add(ContractSpec {
                name: "acme".into(),
                kind: "corporation".into(),
                accounts: 10,
                start: Some(day),
                admin_name: "Sato".into(),
                admin_email: "it@acme.example".into(),
                address: String::new(),
                phone: String::new(),
                department: String::new(),
                sales_agent: None,
            }))),
            x if x == d(2027, 11, 10) => Some(AdminCommand::Contract(ContractCmd::AddAccounts {
                name: "acme".into(),
                accounts: 5,
                start: Some(day),
            })),
            x if x == d(2028, 3, 15) => Some(AdminCommand::Contract(ContractCmd::Cancel {
                name: "acme".into(),
                received: Some(day),
                end: Some(d(2028, 6, 30)),
            })),
            _ => None,
        };
        if let Some(cmd) = command {
            let out = run(&mut s, day, cmd);
            say(format!("{day}  command: {out}"));
        }
        let now = (start_of_day(tz, day) + TimeDelta::hours(10)).timestamp();
        for line in apply_due(&mut s, now, day).unwrap() {
            say(format!("{day}  daily job: {line}"));
        }
        let notices = s.notices(None, false).unwrap();
        for n in &notices[seen_notices..] {
            say(format!(
                "{day}  notice queued to {}: [{}] {}",
                n.to_email, n.kind, n.subject
            ));
            for line in n.body.lines().filter(|l| !l.is_empty()) {
                say(format!("{day}      | {line}"));
            }
        }
        seen_notices = notices.len();
        if [d(2027, 11, 10), d(2027, 12, 1), d(2028, 3, 15), d(2028, 7, 1)].contains(&day) {
            let show = run(
                &mut s,
                day,
                AdminCommand::Contract(ContractCmd::Show { name: "acme".into() }),
            );
            say(format!("{day}  contract show acme:\n{show}"));
        }
        day = day.succ_opt().unwrap();
    }
    let end = d(2028, 12, 31);
    let invoices = run(
        &mut s,
        end,
        AdminCommand::Invoice {
            contract: "acme".into(),
            at: Some(end),
        },
    );
    say(format!("{end}  admin invoice acme --at {end}:\n{invoices}"));

    let all = log.join("\n");
    // Art. 13: the first term and the additional contract in the expiry month.
    assert!(
        all.contains("first term ends 2027-11-30, cancellation deadline 2027-10-31"),
        "{all}"
    );
    assert!(
        all.contains("this additional contract's first term ends 2028-11-30"),
        "{all}"
    );
    // Art. 14: one reminder, 30 days before the deadline.
    assert!(
        all.contains("2027-10-01  notice queued to it@acme.example: [renewal]"),
        "{all}"
    );
    assert_eq!(all.matches("[renewal]").count(), 1, "{all}");
    // Art. 18-4: the earlier month end, in time; cancelled the day after.
    assert!(all.contains("2028-03-15  command: cancellation of acme accepted: service ends at the end of 2028-06-30"));
    assert!(
        all.contains("2028-07-01  daily job: contract acme cancelled (last day 2028-06-30)"),
        "{all}"
    );
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(c.state, ContractState::Cancelled);
    // Art. 28: three invoices, none after the cancellation.
    let out = execute(
        &mut s,
        &op(end),
        &prepare(AdminCommand::Invoice {
            contract: "acme".into(),
            at: Some(end),
        }),
    )
    .unwrap();
    let Text::Sections(parts) = render::text(&out) else {
        panic!()
    };
    let Text::Table { rows, .. } = &parts[0].1 else {
        panic!()
    };
    let mut issued: Vec<(&str, &str)> = rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    issued.dedup();
    assert_eq!(
        issued,
        [
            ("2026-11-24", "basic"),
            ("2027-11-10", "additional 1"),
            ("2027-12-01", "basic")
        ]
    );
    // 165,000 (basic: 30,000 + 10 x 12,000, tax) + 99,000 (additional: 30,000 + 5 x
    // 12 months, tax) + 132,000 (basic renewal).
    assert_eq!(parts[1].1, Text::Message("¥396,000".into()));
}
