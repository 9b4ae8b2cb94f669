//! Issue 16: the contract rules read right, through the same admin commands and store
//! the operator uses (`mcvpn admin --db`), on an in-memory SQLite store. Each test
//! names the item of the issue it covers. Dates are fixed (the operator's "today" is
//! passed in), so the answers do not depend on the host's clock or `TZ`.

use chrono::{NaiveDate, TimeZone, Utc};

use mcvpn::admin::api::{AccountName, NewAccount, OutageCmd, TariffCmd};
use mcvpn::admin::render::{self, Text};
use mcvpn::admin::{
    apply_due, execute, prepare, AccountCmd, AdminCommand, AdminError, AdminResult, ContractCmd, ContractSpec, ExecCtx,
    NewPassword, Output,
};
use mcvpn::contract::{additional_first_end, first_term_end, renewed_end};
use mcvpn::store::prelude::*;
use mcvpn::store::{CancellationRecord, ContractField, ContractState, SqliteStore};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn op(today: NaiveDate) -> ExecCtx {
    ExecCtx::operator(today)
}

/// As `mcvpn admin` runs a command on the store: prepared (passwords hashed), then executed.
fn run(s: &mut SqliteStore, ctx: &ExecCtx, cmd: AdminCommand) -> AdminResult {
    execute(s, ctx, &prepare(cmd))
}

fn spec(name: &str, accounts: u32, start: NaiveDate) -> ContractSpec {
    ContractSpec {
        name: name.into(),
        kind: "corporation".into(),
        accounts,
        start: Some(start),
        admin_name: "Sato".into(),
        admin_email: format!("it@{name}.example"),
        address: String::new(),
        phone: String::new(),
        department: String::new(),
        sales_agent: None,
    }
}

fn add(s: &mut SqliteStore, name: &str, accounts: u32, start: NaiveDate) -> String {
    text(
        run(
            s,
            &op(start),
            AdminCommand::Contract(ContractCmd::Add(spec(name, accounts, start))),
        )
        .unwrap(),
    )
}

/// The sentence `mcvpn admin` prints for an answer.
fn text(o: Output) -> String {
    match render::text(&o) {
        Text::Message(text) => text,
        other => format!("{other:?}"),
    }
}

fn text_of(t: &Text) -> String {
    match t {
        Text::Message(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

fn refusal(r: Result<Output, AdminError>) -> String {
    match r {
        Err(AdminError::Refused(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn tariff(s: &mut SqliteStore, initial: u64, annual: u64) {
    run(
        s,
        &op(d(2026, 1, 1)),
        AdminCommand::Tariff(TariffCmd::Set {
            initial_fee: Some(initial),
            annual_fee: Some(annual),
            tax_rate_bp: None,
        }),
    )
    .unwrap();
}

/// The "total invoiced" of `admin invoice NAME --at AT`, and the issue dates listed.
fn invoiced(s: &mut SqliteStore, name: &str, at: NaiveDate) -> (String, Vec<String>) {
    let out = run(
        s,
        &op(at),
        AdminCommand::Invoice {
            contract: name.into(),
            at: Some(at),
            csv: false,
            print: None,
        },
    )
    .unwrap();
    let Text::Sections(parts) = render::text(&out) else {
        panic!("sections expected")
    };
    let issued = match &parts[0].1 {
        Text::Table { rows, .. } => {
            let mut v: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
            v.dedup();
            v
        }
        o => panic!("{o:?}"),
    };
    (text_of(&parts[1].1), issued)
}

fn cancel(s: &mut SqliteStore, name: &str, received: NaiveDate, end: Option<NaiveDate>) -> Result<Output, AdminError> {
    run(
        s,
        &op(received),
        AdminCommand::Contract(ContractCmd::Cancel {
            name: name.into(),
            received: Some(received),
            end,
        }),
    )
}

// --- 1. art. 13: twelve months after the start month ---------------------------------

#[test]
fn item1_first_term_is_twelve_months_after_the_start_month() {
    assert_eq!(first_term_end(d(2026, 11, 24)).unwrap(), d(2027, 11, 30));
    assert_eq!(first_term_end(d(2027, 1, 1)).unwrap(), d(2028, 1, 31));
    assert_eq!(first_term_end(d(2026, 12, 31)).unwrap(), d(2027, 12, 31));
    assert_eq!(first_term_end(d(2030, 1, 31)).unwrap(), d(2031, 1, 31));
    let basic_end = first_term_end(d(2026, 11, 24)).unwrap();
    assert_eq!(
        additional_first_end(basic_end, d(2027, 5, 10)).unwrap(),
        d(2027, 11, 30)
    );
    // In the expiry month: its own term, ending with the basic contract's first renewal.
    assert_eq!(
        additional_first_end(basic_end, d(2027, 11, 10)).unwrap(),
        d(2028, 11, 30)
    );
    assert_eq!(renewed_end(basic_end).unwrap(), d(2028, 11, 30));

    let mut s = SqliteStore::open_in_memory().unwrap();
    let out = add(&mut s, "acme", 10, d(2026, 11, 24));
    assert!(
        out.contains("first term ends 2027-11-30") && out.contains("cancellation deadline 2027-10-31"),
        "{out}"
    );
}

#[test]
fn item1_first_invoice_is_one_annual_fee() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    tariff(&mut s, 0, 12_000);
    add(&mut s, "acme", 10, d(2026, 11, 24));
    // 10 accounts x 12,000 = 120,000 + 10 % tax, not x 13/12.
    let (total, issued) = invoiced(&mut s, "acme", d(2026, 11, 24));
    assert_eq!(total, "¥132,000");
    assert_eq!(issued, ["2026-11-24"]);
    // The renewal is invoiced in the renewal's first month, 2027-12.
    let (_, issued) = invoiced(&mut s, "acme", d(2027, 12, 1));
    assert_eq!(issued, ["2026-11-24", "2027-12-01"]);
}

// --- 2. art. 18: the term end unless a month end is chosen -----------------------------

#[test]
fn item2_a_cancellation_without_a_month_end_ends_at_the_term_end() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add(&mut s, "acme", 10, d(2026, 11, 24));
    let out = text(cancel(&mut s, "acme", d(2027, 3, 10), None).unwrap());
    assert!(out.contains("2027-11-30"), "{out}");
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(s.cancellation(c.id).unwrap().unwrap().effective, d(2027, 11, 30));
}

#[test]
fn item2_a_month_end_whose_deadline_passed_is_refused_naming_the_choices() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add(&mut s, "acme", 10, d(2026, 11, 24));
    let m = refusal(cancel(&mut s, "acme", d(2027, 3, 15), Some(d(2027, 3, 31))));
    assert!(m.contains("--end 2027-04-30"), "{m}");
    assert!(m.contains("the term end 2027-11-30 (without `--end`)"), "{m}");
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(s.cancellation(c.id).unwrap(), None, "nothing recorded");
    // The earlier month end whose deadline was met is taken as asked.
    let out = text(cancel(&mut s, "acme", d(2027, 3, 31), Some(d(2027, 4, 30))).unwrap());
    assert!(out.contains("2027-04-30"), "{out}");
}

// --- 3. a cancellation before the start; one bad contract does not stop the job -------

#[test]
fn item3_a_cancellation_ending_before_the_start_is_refused() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add(&mut s, "acme", 10, d(2027, 3, 15));
    let m = refusal(cancel(&mut s, "acme", d(2026, 12, 2), Some(d(2027, 1, 31))));
    assert!(m.contains("2027-03-15"), "{m}");
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(s.cancellation(c.id).unwrap(), None);
    // Show still works.
    run(
        &mut s,
        &op(d(2026, 12, 2)),
        AdminCommand::Contract(ContractCmd::Show { name: "acme".into() }),
    )
    .unwrap();
}

#[test]
fn item3_the_daily_job_carries_on_past_a_contract_with_bad_data() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add(&mut s, "a-bad", 10, d(2027, 3, 15));
    add(&mut s, "b-due", 10, d(2026, 11, 24));
    // A cancellation that an earlier version accepted: effective before the start.
    let bad = s.contract_by_name("a-bad").unwrap();
    s.cancellation_set(
        bad.id,
        &CancellationRecord {
            received: d(2026, 12, 2),
            requested_end: Some(d(2027, 1, 31)),
            effective: d(2027, 1, 31),
            actor: "operator".into(),
            created_at: 0,
        },
    )
    .unwrap();
    cancel(&mut s, "b-due", d(2026, 11, 25), Some(d(2026, 12, 31))).unwrap();
    // Before a-bad's recorded last day: the old job failed at a-bad's renewal check.
    let done = apply_due(
        &mut s,
        Utc.with_ymd_and_hms(2027, 1, 15, 3, 0, 0).unwrap().timestamp(),
        d(2027, 1, 15),
    );
    let done = done.expect("the job reports per contract, it does not fail as a whole");
    assert!(
        done.iter().any(|l| l.contains("a-bad")),
        "the failure is reported: {done:?}"
    );
    assert_eq!(s.contract_by_name("b-due").unwrap().state, ContractState::Cancelled);
    // `contract show` of the bad one still answers.
    run(
        &mut s,
        &op(d(2027, 1, 15)),
        AdminCommand::Contract(ContractCmd::Show { name: "a-bad".into() }),
    )
    .unwrap();
}

// --- 4. nothing invoiced after termination --------------------------------------------

#[test]
fn item4_a_terminated_contract_is_not_invoiced_for_later_years() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    tariff(&mut s, 0, 12_000);
    add(&mut s, "acme", 10, d(2026, 11, 24));
    run(
        &mut s,
        &op(d(2027, 2, 1)),
        AdminCommand::Contract(ContractCmd::Terminate {
            name: "acme".into(),
            reason: "breach of art. 22".into(),
            notice_undeliverable: false,
        }),
    )
    .unwrap();
    let (_, issued) = invoiced(&mut s, "acme", d(2029, 12, 31));
    assert_eq!(issued, ["2026-11-24"], "only the first term's invoice");
    // A cancelled one neither (its end met the term end's deadline).
    add(&mut s, "beta", 10, d(2026, 11, 24));
    cancel(&mut s, "beta", d(2027, 3, 1), None).unwrap();
    let (_, issued) = invoiced(&mut s, "beta", d(2029, 12, 31));
    assert_eq!(issued, ["2026-11-24"]);
}

// --- 5. compensation within the contract's dates --------------------------------------

fn outage(s: &mut SqliteStore, start: (i32, u32, u32), hours: i64) {
    let st = d(start.0, start.1, start.2).and_hms_opt(0, 0, 0).unwrap();
    run(
        s,
        &op(d(2029, 1, 1)),
        AdminCommand::Outage(OutageCmd::Add {
            start: st,
            end: st + chrono::TimeDelta::hours(hours),
            note: "total outage".into(),
        }),
    )
    .unwrap();
}

fn compensation(s: &mut SqliteStore, name: &str) -> String {
    text(
        run(
            s,
            &op(d(2029, 1, 1)),
            AdminCommand::Compensation {
                contract: name.into(),
                statement: false,
                send: false,
            },
        )
        .unwrap(),
    )
}

#[test]
fn item5_compensation_counts_only_outages_in_the_service_period() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    tariff(&mut s, 0, 36_500);
    add(&mut s, "late", 1, d(2028, 1, 1));
    outage(&mut s, (2027, 3, 1), 200);
    let out = compensation(&mut s, "late");
    assert!(
        out.contains("compensation ¥0"),
        "a 2028 contract gets nothing for 2027: {out}"
    );
}

#[test]
fn item5_compensation_uses_the_accounts_in_force_during_the_outage() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    tariff(&mut s, 0, 36_500);
    add(&mut s, "acme", 2, d(2027, 1, 1));
    run(
        &mut s,
        &op(d(2027, 1, 1)),
        AdminCommand::Contract(ContractCmd::AddAccounts {
            name: "acme".into(),
            accounts: 10,
            start: Some(d(2028, 6, 1)),
        }),
    )
    .unwrap();
    // 144 h in March 2027: 6 days of 2 accounts x 36,500 a year = 1,200 (not 12 accounts).
    outage(&mut s, (2027, 3, 1), 144);
    let out = compensation(&mut s, "acme");
    assert!(out.contains("compensation ¥1,200"), "{out}");
}

// --- 6. not before the start date ------------------------------------------------------

#[test]
fn item6_additional_contracts_not_started_do_not_count_towards_the_quota() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let today = d(2026, 12, 2);
    run(
        &mut s,
        &op(today),
        AdminCommand::Contract(ContractCmd::Add(spec("acme", 3, d(2027, 6, 1)))),
    )
    .unwrap();
    run(
        &mut s,
        &op(today),
        AdminCommand::Contract(ContractCmd::AddAccounts {
            name: "acme".into(),
            accounts: 5,
            start: Some(d(2028, 1, 10)),
        }),
    )
    .unwrap();
    for (i, user) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
        let r = run(
            &mut s,
            &op(today),
            AdminCommand::Account(AccountCmd::Add(NewAccount {
                name: AccountName {
                    contract: Some("acme".into()),
                    user: (*user).into(),
                },
                password_file: None,
                password: NewPassword(format!("{user} has a long password")),
            })),
        );
        assert_eq!(r.is_ok(), i < 3, "{user}: {r:?}");
    }
}

#[test]
fn item6_logins_before_the_start_date_are_refused() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    // Far enough ahead of any clock this test runs on.
    run(
        &mut s,
        &op(d(2026, 12, 2)),
        AdminCommand::Contract(ContractCmd::Add(spec("acme", 3, d(2099, 6, 1)))),
    )
    .unwrap();
    s.account_add("acme", "alice", "x").unwrap();
    let a = s.account_by_name("alice").unwrap().unwrap();
    let r = mcvpn::hub::auth::state_refusal(&a).expect("refused before the start");
    assert!(r.message.contains("2099-06-01"), "{}", r.message);
}

// --- 9, 10, 11 ----------------------------------------------------------------------------

#[test]
fn item9_a_contract_needs_its_administrators_email() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let r = run(
        &mut s,
        &op(d(2026, 12, 2)),
        AdminCommand::Contract(ContractCmd::Add(ContractSpec {
            admin_email: String::new(),
            ..spec("acme", 3, d(2026, 12, 2))
        })),
    );
    let m = refusal(r);
    assert!(m.contains("--admin-email"), "{m}");
    assert!(s.contracts().unwrap().is_empty());
}

#[test]
fn item10_queued_notices_follow_the_new_address_and_a_rename_does_not_remind_twice() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add(&mut s, "acme", 3, d(2026, 11, 24));
    let reminder_day = d(2027, 10, 1);
    let t = Utc.with_ymd_and_hms(2027, 10, 1, 0, 0, 0).unwrap().timestamp();
    apply_due(&mut s, t, reminder_day).unwrap();
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(s.notices(Some(c.id), true).unwrap().len(), 1);
    let set = |s: &mut SqliteStore, field, value: &str| {
        let name = s.contract_by_id(c.id).unwrap().name;
        run(
            s,
            &op(reminder_day),
            AdminCommand::Contract(ContractCmd::Set {
                name,
                field,
                value: value.into(),
            }),
        )
        .unwrap()
    };
    set(&mut s, ContractField::AdminEmail, "new@acme.example");
    assert_eq!(s.notices(Some(c.id), true).unwrap()[0].to_email, "new@acme.example");
    set(&mut s, ContractField::Name, "acme-holdings");
    apply_due(&mut s, t + 86_400, d(2027, 10, 2)).unwrap();
    let renewal = s
        .notices(Some(c.id), false)
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == "renewal")
        .count();
    assert_eq!(renewal, 1);
}

#[test]
fn item11_no_additional_contract_on_a_terminated_contract() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add(&mut s, "acme", 3, d(2026, 11, 24));
    run(
        &mut s,
        &op(d(2027, 2, 1)),
        AdminCommand::Contract(ContractCmd::Terminate {
            name: "acme".into(),
            reason: "breach of art. 22".into(),
            notice_undeliverable: false,
        }),
    )
    .unwrap();
    let m = refusal(run(
        &mut s,
        &op(d(2027, 2, 2)),
        AdminCommand::Contract(ContractCmd::AddAccounts {
            name: "acme".into(),
            accounts: 2,
            start: None,
        }),
    ));
    assert!(m.contains("terminated"), "{m}");
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(s.terms(c.id).unwrap().len(), 1);
}
