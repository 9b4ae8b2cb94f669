//! Issue 16 and 17, "Done means": the two-year life of one contract on a simulated
//! clock, in one test, through the operator's admin commands and the hub's daily
//! contract job on a real SQLite store file. It prints its dates, invoices, payments
//! and every notice queued (subject and body):
//!
//!     cargo test --release --test contract_life -- --nocapture
//!
//! The clock: every day from 2026-11-24 to 2028-12-31, the job runs at 00:05 in the
//! operator's zone (Asia/Tokyo), five minutes after the day turns there and still the
//! day before in UTC; the commands are given on their day. The life: a basic contract
//! of 10 accounts sold through a sales agent from 2026-11-24 (first term to 2027-11-30,
//! art. 13), invoiced at once (art. 28-1) and paid in time; an additional contract of 5
//! accounts from 2027-11-10, in the basic contract's expiry month (its own term to
//! 2028-11-30, art. 13 ¶3), paid in time; the renewal on 2027-12-01 (art. 14, invoiced
//! then, art. 28-2, due 2028-01-31) left unpaid: a reminder 7 days overdue and the
//! suspension 30 days overdue (art. 23-1(1)), both to the sales agent (art. 23-2); the
//! payment 39 days late on 2028-03-10, which resumes the contract and raises the late
//! interest (art. 31), paid in turn; a cancellation received 2028-03-15 for the
//! earlier month end 2028-06-30 (art. 18-4); cancelled from 00:00 JST on 2028-07-01,
//! and nothing more after it.

use chrono::{NaiveDate, TimeDelta};

use mcvpn::admin::api::{DunningCmd, IssuerCmd, PaymentCmd, TariffCmd};
use mcvpn::admin::render::{self, Text};
use mcvpn::admin::{apply_due, execute, prepare, AdminCommand, ContractCmd, ContractSpec, ExecCtx};
use mcvpn::contract::{start_of_day, today_in, Tz};
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
        Text::Document(doc) => doc.lines().map(|l| format!("    {l}\n")).collect(),
    }
}

#[test]
fn two_years_of_one_contract() {
    let tz: Tz = mcvpn::contract::parse_tz("Asia/Tokyo").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
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

    run(
        &mut s,
        d(2026, 11, 1),
        AdminCommand::Dunning(DunningCmd::Set {
            due_months: Some(1),
            reminder_days: Some(7),
            suspend_days: Some(30),
        }),
    );
    run(
        &mut s,
        d(2026, 11, 1),
        AdminCommand::Issuer(IssuerCmd::Set {
            name: Some("Example Networks KK".into()),
            registration_number: Some("T1234567890123".into()),
        }),
    );
    let pay = |amount: u64, invoice: i64| {
        Some(AdminCommand::Payment(PaymentCmd::Add {
            contract: "acme".into(),
            amount,
            date: None,
            invoice: Some(invoice),
        }))
    };

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
                sales_agent: Some("Agent KK <sales@agent.example>".into()),
            }))),
            x if x == d(2026, 12, 20) => pay(165_000, 1),
            x if x == d(2027, 11, 10) => Some(AdminCommand::Contract(ContractCmd::AddAccounts {
                name: "acme".into(),
                accounts: 5,
                start: Some(day),
            })),
            x if x == d(2027, 12, 25) => pay(99_000, 2),
            // Invoice 3 (the renewal) is due 2028-01-31; paid 39 days late.
            x if x == d(2028, 3, 10) => pay(132_000, 3),
            x if x == d(2028, 4, 20) => pay(1_992, 4),
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
        // The daily job, 5 minutes into the day in Japan: "today" is the Japanese date.
        let instant = start_of_day(tz, day) + TimeDelta::minutes(5);
        let today = today_in(tz, instant);
        assert_eq!(today, day);
        assert_eq!(instant.date_naive(), day.pred_opt().unwrap(), "still yesterday in UTC");
        for line in apply_due(&mut s, instant.timestamp(), today).unwrap() {
            say(format!("{day}  daily job at {instant} (00:05 JST): {line}"));
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
        if [d(2028, 2, 29), d(2028, 3, 1), d(2028, 3, 10)].contains(&day) {
            let state = s.contract_by_name("acme").unwrap().state;
            say(format!("{day}  contract state: {}", state.as_str()));
        }
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
            csv: false,
            print: None,
        },
    );
    say(format!("{end}  admin invoice acme --at {end}:\n{invoices}"));

    let ledger = run(
        &mut s,
        end,
        AdminCommand::Payment(PaymentCmd::List {
            contract: "acme".into(),
        }),
    );
    say(format!("{end}  admin payment list acme:\n{ledger}"));
    let csv = run(
        &mut s,
        end,
        AdminCommand::Invoice {
            contract: "acme".into(),
            at: Some(end),
            csv: true,
            print: None,
        },
    );
    say(format!("{end}  admin invoice acme --csv:\n{csv}"));
    for n in [3, 4] {
        let doc = run(
            &mut s,
            end,
            AdminCommand::Invoice {
                contract: "acme".into(),
                at: Some(end),
                csv: false,
                print: Some(n),
            },
        );
        say(format!("{end}  admin invoice acme --print {n}:\n{doc}"));
    }

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
        all.contains(
            "2028-07-01  daily job at 2028-06-30 15:05:00 UTC (00:05 JST): contract acme cancelled (last day 2028-06-30)"
        ),
        "{all}"
    );
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(c.state, ContractState::Cancelled);
    // Art. 28: each invoice raised on its day and told to the administrator.
    for (day, n, due) in [
        ("2026-11-24", 1, "2026-12-31"),
        ("2027-11-10", 2, "2027-12-31"),
        ("2027-12-01", 3, "2028-01-31"),
        ("2028-03-10", 4, "2028-04-30"),
    ] {
        let line = format!(
            "{day}  notice queued to it@acme.example: [invoice] 【mcvpn】請求書 第{n}号（acme、お支払期日 {due}） / Invoice {n} for contract acme, due {due}"
        );
        assert!(all.contains(&line), "{line}\n{all}");
    }
    assert_eq!(all.matches("[invoice]").count(), 4, "{all}");
    // Art. 23-1(1), 23-2: one reminder at 7 days overdue and the suspension at 30, to the
    // sales agent; the contract is suspended from 2028-03-01 until the payment.
    assert!(
        all.contains("2028-02-07  notice queued to sales@agent.example: [payment-reminder] 【mcvpn】お支払いのお願い 請求書 第3号"),
        "{all}"
    );
    assert_eq!(all.matches("[payment-reminder]").count(), 1, "{all}");
    assert!(
        all.contains("2028-03-01  notice queued to sales@agent.example: [nonpayment-suspension]"),
        "{all}"
    );
    assert!(all.contains("2028-02-29  contract state: active"), "{all}");
    assert!(all.contains("2028-03-01  contract state: suspended"), "{all}");
    // Art. 31: paid 39 days after the due date, interest for the 38 days 02-01 .. 03-09:
    // 132,000 x 14.5 % x 38 / 365 = 1,992.6 -> ¥1,992; then resumed at once.
    assert!(
        all.contains("invoice 3 was paid 39 days late: late interest ¥1,992 invoiced as invoice 4 (art. 31)"),
        "{all}"
    );
    assert!(
        all.contains("2028-03-10  notice queued to it@acme.example: [nonpayment-resumption]"),
        "{all}"
    );
    assert!(all.contains("2028-03-10  contract state: active"), "{all}");
    // The qualified invoices carry the issuer's number, the rate and the tax.
    assert!(all.contains("登録番号: T1234567890123"), "{all}");
    assert!(all.contains("消費税額: ¥12,000 (10%対象)"), "{all}");
    assert!(all.contains("延滞利息 請求書番号3 38日分"), "{all}");
    assert!(
        all.contains("outstanding:\n¥0") || all.contains("[outstanding]\n¥0"),
        "{all}"
    );
    // Art. 28: three invoices, none after the cancellation.
    let out = execute(
        &mut s,
        &op(end),
        &prepare(AdminCommand::Invoice {
            contract: "acme".into(),
            at: Some(end),
            csv: false,
            print: None,
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
