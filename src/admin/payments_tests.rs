//! Payments, dunning and invoice documents through the admin commands and the daily
//! job, on a real SQLite store file.

use chrono::{NaiveDate, TimeDelta};

use super::api::{DunningCmd, IssuerCmd, PaymentCmd, TariffCmd};
use super::render::{self, Text};
use super::*;
use crate::contract::InvoiceState;
use crate::store::prelude::*;
use crate::store::{ContractState, SqliteStore};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn run(store: &mut SqliteStore, today: NaiveDate, cmd: AdminCommand) -> AdminResult {
    execute(store, &ExecCtx::operator(today), &prepare(cmd))
}

fn pay(contract: &str, amount: u64, date: NaiveDate, invoice: Option<i64>) -> AdminCommand {
    AdminCommand::Payment(PaymentCmd::Add {
        contract: contract.into(),
        amount,
        date: Some(date),
        invoice,
    })
}

/// A store file with a tariff (¥30,000 + ¥12,000 a year per account, 10 %), the rule
/// "reminder at 7 days, suspension at 30", and contract `acme` of 10 accounts from
/// 2026-11-24 whose first invoice (¥165,000, due 2026-12-31) the job has raised.
fn setup(agent: Option<&str>) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    let day = d(2026, 11, 24);
    run(
        &mut s,
        day,
        AdminCommand::Tariff(TariffCmd::Set {
            initial_fee: Some(30_000),
            annual_fee: Some(12_000),
            tax_rate_bp: None,
        }),
    )
    .unwrap();
    run(
        &mut s,
        day,
        AdminCommand::Dunning(DunningCmd::Set {
            due_months: None,
            reminder_days: Some(7),
            suspend_days: Some(30),
        }),
    )
    .unwrap();
    run(
        &mut s,
        day,
        AdminCommand::Contract(ContractCmd::Add(ContractSpec {
            name: "acme".into(),
            kind: "corporation".into(),
            accounts: 10,
            start: Some(day),
            admin_name: "Sato".into(),
            admin_email: "it@acme.example".into(),
            address: String::new(),
            phone: String::new(),
            department: String::new(),
            sales_agent: agent.map(str::to_string),
        })),
    )
    .unwrap();
    apply_due(&mut s, 0, day).unwrap();
    (dir, s)
}

fn jobs(s: &mut SqliteStore, from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut done = Vec::new();
    let mut day = from;
    while day <= to {
        done.extend(apply_due(s, 0, day).unwrap().into_iter().map(|l| format!("{day} {l}")));
        day += TimeDelta::days(1);
    }
    done
}

fn state(s: &SqliteStore) -> ContractState {
    s.contract_by_name("acme").unwrap().state
}

fn notices_of(s: &SqliteStore, kind: &str) -> Vec<crate::store::NoticeRecord> {
    s.notices(None, false)
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == kind)
        .collect()
}

#[test]
fn the_job_raises_each_invoice_once_with_its_due_date() {
    let (_dir, mut s) = setup(None);
    apply_due(&mut s, 0, d(2026, 11, 24)).unwrap();
    let inv = s.invoices(None).unwrap();
    assert_eq!(inv.len(), 1, "re-running the day raises nothing more");
    assert_eq!((inv[0].id, inv[0].total, inv[0].due), (1, 165_000, d(2026, 12, 31)));
    assert_eq!(notices_of(&s, "invoice").len(), 1);
    // The renewal is raised on its first day, 2027-12-01.
    s.payment_add(1, 1, 165_000, d(2026, 12, 1)).unwrap();
    jobs(&mut s, d(2027, 11, 29), d(2027, 12, 2));
    let inv = s.invoices(None).unwrap();
    assert_eq!(inv.len(), 2);
    assert_eq!(
        (inv[1].issued, inv[1].total, inv[1].due),
        (d(2027, 12, 1), 132_000, d(2028, 1, 31))
    );
}

#[test]
fn a_hub_without_fees_raises_no_invoices() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    let mut c = crate::store::NewContract::simple("acme", 10);
    c.start = d(2026, 11, 24);
    s.contract_add(&c).unwrap();
    apply_due(&mut s, 0, d(2026, 11, 24)).unwrap();
    assert!(s.invoices(None).unwrap().is_empty());
}

#[test]
fn dunning_reminds_once_then_suspends_and_a_payment_resumes() {
    let (_dir, mut s) = setup(None);
    // Due 2026-12-31: 7 days overdue on 2027-01-07, 30 days on 2027-01-30.
    assert!(jobs(&mut s, d(2026, 11, 25), d(2027, 1, 6)).is_empty());
    let done = jobs(&mut s, d(2027, 1, 7), d(2027, 1, 29));
    assert_eq!(done, ["2027-01-07 payment reminder for invoice 1 queued for acme"]);
    assert_eq!(state(&s), ContractState::Active);
    let done = jobs(&mut s, d(2027, 1, 30), d(2027, 2, 5));
    assert_eq!(done, ["2027-01-30 contract acme suspended: invoice 1 unpaid"]);
    assert_eq!(state(&s), ContractState::Suspended);
    assert_eq!(notices_of(&s, "payment-reminder").len(), 1);
    assert_eq!(notices_of(&s, "nonpayment-suspension").len(), 1);
    // A part payment leaves it overdue: still suspended.
    let out = run(&mut s, d(2027, 2, 5), pay("acme", 100_000, d(2027, 2, 5), None)).unwrap();
    assert_eq!(
        out,
        Output::message("payment of ¥100,000 on 2027-02-05 recorded: ¥100,000 to invoice 1")
    );
    assert_eq!(state(&s), ContractState::Suspended);
    // The rest, 36 days after the due date: interest on ¥165,000 for 35 days, resumed.
    let Output::Message(said) = run(&mut s, d(2027, 2, 5), pay("acme", 65_000, d(2027, 2, 5), Some(1))).unwrap() else {
        panic!()
    };
    assert!(
        said.contains("invoice 1 was paid 36 days late: late interest ¥2,294 invoiced as invoice 2 (art. 31)"),
        "{said}"
    );
    assert!(said.contains("contract acme resumed: nothing overdue"), "{said}");
    assert_eq!(state(&s), ContractState::Active);
    assert_eq!(notices_of(&s, "nonpayment-resumption").len(), 1);
    let interest = &s.invoices(None).unwrap()[1];
    assert_eq!((interest.total, interest.tax, interest.tax_rate_bp), (2_294, 0, 0));
    // The job does not suspend again for the paid invoice, and reminds of nothing more.
    assert!(jobs(&mut s, d(2027, 2, 6), d(2027, 2, 10)).is_empty());
}

#[test]
fn a_suspension_for_another_reason_is_not_lifted_by_a_payment() {
    let (_dir, mut s) = setup(None);
    run(
        &mut s,
        d(2027, 1, 10),
        AdminCommand::Contract(ContractCmd::Suspend {
            name: "acme".into(),
            reason: "misuse reported (art. 23-1(2))".into(),
        }),
    )
    .unwrap();
    jobs(&mut s, d(2027, 1, 10), d(2027, 2, 1));
    run(&mut s, d(2027, 2, 1), pay("acme", 165_000, d(2027, 2, 1), None)).unwrap();
    jobs(&mut s, d(2027, 2, 1), d(2027, 2, 3));
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(c.state, ContractState::Suspended);
    assert_eq!(c.state_reason.as_deref(), Some("misuse reported (art. 23-1(2))"));
    assert!(notices_of(&s, "nonpayment-suspension").is_empty());
}

#[test]
fn advance_notices_go_to_the_sales_agent() {
    let (_dir, mut s) = setup(Some("Agent KK <sales@agent.example>"));
    jobs(&mut s, d(2026, 11, 25), d(2027, 1, 30));
    let reminder = &notices_of(&s, "payment-reminder")[0];
    assert_eq!(reminder.to_email, "sales@agent.example");
    assert!(
        reminder
            .body
            .contains("If it is still unpaid on 2027-01-30, use of the service will be suspended"),
        "{}",
        reminder.body
    );
    assert_eq!(
        notices_of(&s, "nonpayment-suspension")[0].to_email,
        "sales@agent.example"
    );
    // The invoice itself goes to the administrator.
    assert_eq!(notices_of(&s, "invoice")[0].to_email, "it@acme.example");
}

#[test]
fn payments_go_to_the_oldest_open_invoice_and_are_checked() {
    let (_dir, mut s) = setup(None);
    let today = d(2026, 12, 10);
    let refused = |r: AdminResult| match r {
        Err(AdminError::Refused(m)) | Err(AdminError::NotFound(m)) => m,
        other => panic!("{other:?}"),
    };
    let m = refused(run(&mut s, today, pay("acme", 165_001, today, None)));
    assert!(m.contains("more than the ¥165,000 owed"), "{m}");
    let m = refused(run(&mut s, today, pay("acme", 1, d(2026, 12, 11), None)));
    assert!(m.contains("in the future"), "{m}");
    let m = refused(run(&mut s, today, pay("acme", 1, today, Some(9))));
    assert!(m.contains("no invoice 9"), "{m}");
    let m = refused(run(&mut s, today, pay("acme", 0, today, None)));
    assert!(m.contains("at least ¥1"), "{m}");
    run(&mut s, today, pay("acme", 165_000, today, None)).unwrap();
    let m = refused(run(&mut s, today, pay("acme", 1, today, Some(1))));
    assert!(m.contains("paid in full already"), "{m}");
    let Output::Ledger(l) = run(
        &mut s,
        today,
        AdminCommand::Payment(PaymentCmd::List {
            contract: "acme".into(),
        }),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(l.outstanding, 0);
    assert_eq!(l.invoices[0].state, InvoiceState::Paid);
    assert_eq!(l.invoices[0].settled_on, Some(today));
    let audit = s.audit_log(None, 100).unwrap();
    assert!(audit.iter().any(|a| a.action == "payment.add"));
}

#[test]
fn money_commands_are_for_the_operator_only() {
    let (_dir, mut s) = setup(None);
    let id = s.contract_by_name("acme").unwrap().id;
    let admin = ExecCtx {
        scope: Scope::Contract {
            id,
            name: "acme".into(),
        },
        actor: "admin:sato".into(),
        ..ExecCtx::operator(d(2026, 12, 1))
    };
    for cmd in [
        pay("acme", 1, d(2026, 12, 1), None),
        AdminCommand::Payment(PaymentCmd::List {
            contract: "acme".into(),
        }),
        AdminCommand::Dunning(DunningCmd::Show),
        AdminCommand::Issuer(IssuerCmd::Show),
    ] {
        assert!(
            matches!(
                execute(&mut s, &admin, &prepare(cmd.clone())),
                Err(AdminError::Forbidden(_))
            ),
            "{cmd:?}"
        );
    }
}

#[test]
fn settings_are_validated() {
    let (_dir, mut s) = setup(None);
    let today = d(2026, 12, 1);
    let bad = run(
        &mut s,
        today,
        AdminCommand::Issuer(IssuerCmd::Set {
            name: Some("Example KK".into()),
            registration_number: Some("1234567890123".into()),
        }),
    );
    assert!(matches!(bad, Err(AdminError::Refused(m)) if m.contains("T followed by 13 digits")));
    let bad = run(
        &mut s,
        today,
        AdminCommand::Dunning(DunningCmd::Set {
            due_months: None,
            reminder_days: Some(30),
            suspend_days: Some(20),
        }),
    );
    assert!(matches!(bad, Err(AdminError::Refused(m)) if m.contains("--suspend-days")));
    // Printing a qualified invoice needs the issuer's registration number first.
    let print = AdminCommand::Invoice {
        contract: "acme".into(),
        at: None,
        csv: false,
        print: Some(1),
    };
    assert!(matches!(run(&mut s, today, print.clone()), Err(AdminError::Refused(m)) if m.contains("issuer set")));
    run(
        &mut s,
        today,
        AdminCommand::Issuer(IssuerCmd::Set {
            name: Some("Example KK".into()),
            registration_number: Some("T1234567890123".into()),
        }),
    )
    .unwrap();
    let Text::Document(doc) = render::text(&run(&mut s, today, print).unwrap()) else {
        panic!()
    };
    assert!(
        doc.contains("登録番号: T1234567890123") && doc.contains("消費税額: ¥15,000"),
        "{doc}"
    );
}

#[test]
fn option_fees_and_the_bcp_terms_appear_on_the_invoice() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("hub.db")).unwrap();
    let day = d(2026, 11, 24);
    run(
        &mut s,
        day,
        AdminCommand::Tariff(TariffCmd::Set {
            initial_fee: Some(30_000),
            annual_fee: Some(12_000),
            tax_rate_bp: None,
        }),
    )
    .unwrap();
    run(
        &mut s,
        day,
        AdminCommand::Tariff(TariffCmd::Options {
            options: vec!["setup visit=50000".into()],
            clear: false,
            bcp: Some(api::OnOff::On),
        }),
    )
    .unwrap();
    let mut c = crate::store::NewContract::simple("acme", 10);
    c.start = day;
    s.contract_add(&c).unwrap();
    apply_due(&mut s, 0, day).unwrap();
    let inv = &s.invoices(None).unwrap()[0];
    assert!(inv.lines_json.contains("setup visit"), "{}", inv.lines_json);
    // 30,000 + 50,000 + 13 months of 10 x 12,000 / 12 (BCP: the start month is charged).
    assert_eq!(inv.subtotal, 30_000 + 50_000 + 130_000);
}

#[test]
fn the_operators_suspension_notice_goes_to_the_sales_agent_too() {
    let (_dir, mut s) = setup(Some("sales@agent.example"));
    run(
        &mut s,
        d(2026, 12, 1),
        AdminCommand::Contract(ContractCmd::Suspend {
            name: "acme".into(),
            reason: "misuse".into(),
        }),
    )
    .unwrap();
    assert_eq!(notices_of(&s, "suspension")[0].to_email, "sales@agent.example");
    run(
        &mut s,
        d(2026, 12, 2),
        AdminCommand::Contract(ContractCmd::Resume { name: "acme".into() }),
    )
    .unwrap();
    assert_eq!(notices_of(&s, "resumption")[0].to_email, "it@acme.example");
}
