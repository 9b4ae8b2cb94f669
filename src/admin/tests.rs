use chrono::NaiveDate;

use super::*;
use crate::proto::control::{Key32, Role};
use crate::store::prelude::*;
use crate::store::{ContractState, SqliteStore};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn op() -> ExecCtx {
    ExecCtx::operator(d(2026, 11, 24))
}

fn run(store: &mut SqliteStore, ctx: &ExecCtx, cmd: AdminCommand) -> AdminResult {
    execute(store, ctx, &cmd)
}

/// A contract with only the name, kind and size given.
fn spec(name: &str, kind: &str, accounts: u32) -> ContractSpec {
    ContractSpec {
        name: name.into(),
        kind: kind.into(),
        accounts,
        start: None,
        admin_name: String::new(),
        admin_email: String::new(),
        address: String::new(),
        phone: String::new(),
        department: String::new(),
        sales_agent: None,
    }
}

fn add_contract(store: &mut SqliteStore, name: &str, accounts: u32) {
    run(
        store,
        &op(),
        AdminCommand::ContractAdd(ContractSpec {
            start: Some(d(2026, 11, 24)),
            admin_name: "Sato".into(),
            admin_email: format!("it@{name}.example"),
            ..spec(name, "corporation", accounts)
        }),
    )
    .unwrap();
}

fn add_account(store: &mut SqliteStore, ctx: &ExecCtx, contract: Option<&str>, user: &str) -> AdminResult {
    run(
        store,
        ctx,
        AdminCommand::AccountAdd {
            contract: contract.map(str::to_string),
            user: user.into(),
            password: format!("{user} has a long password"),
        },
    )
}

fn admin_of(store: &mut SqliteStore, contract: &str, user: &str) -> ExecCtx {
    add_account(store, &op(), Some(contract), user).unwrap();
    run(
        store,
        &op(),
        AdminCommand::ContractAdmin {
            name: contract.into(),
            account: user.into(),
        },
    )
    .unwrap();
    let c = store.contract_by_name(contract).unwrap();
    ExecCtx {
        scope: Scope::Contract { id: c.id, name: c.name },
        actor: format!("admin:{user}"),
        ..op()
    }
}

fn rows(out: Output) -> Vec<Vec<String>> {
    match out {
        Output::Table { rows, .. } => rows,
        o => panic!("expected a table, got {o:?}"),
    }
}

#[test]
fn only_corporations_and_public_bodies() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let r = run(&mut s, &op(), AdminCommand::ContractAdd(spec("joe", "individual", 5)));
    assert!(matches!(r, Err(AdminError::Refused(m)) if m.contains("art. 11")));
}

#[test]
fn basic_contract_minimum_comes_from_the_hub_setting() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.set_setting(MIN_ACCOUNTS_SETTING, "5").unwrap();
    let r = run(&mut s, &op(), AdminCommand::ContractAdd(spec("tiny", "public-body", 3)));
    assert!(matches!(r, Err(AdminError::Refused(m)) if m.contains("at least 5")));
}

#[test]
fn quota_is_basic_plus_additional() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 2);
    add_account(&mut s, &op(), Some("acme"), "alice").unwrap();
    add_account(&mut s, &op(), Some("acme"), "bob").unwrap();
    let r = add_account(&mut s, &op(), Some("acme"), "carol");
    assert!(
        matches!(&r, Err(AdminError::Refused(m)) if m.contains("all 2 of its accounts")),
        "{r:?}"
    );
    run(
        &mut s,
        &op(),
        AdminCommand::ContractAddAccounts {
            name: "acme".into(),
            accounts: 1,
            start: Some(d(2027, 1, 10)),
        },
    )
    .unwrap();
    // Issue 16, item 6: the additional contract's account counts from its own start.
    assert!(add_account(&mut s, &op(), Some("acme"), "carol").is_err());
    add_account(&mut s, &ExecCtx::operator(d(2027, 1, 10)), Some("acme"), "carol").unwrap();
}

#[test]
fn password_policy_applies_to_new_accounts() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    let r = run(
        &mut s,
        &op(),
        AdminCommand::AccountAdd {
            contract: Some("acme".into()),
            user: "alice".into(),
            password: "short".into(),
        },
    );
    assert!(matches!(r, Err(AdminError::Refused(m)) if m.contains("12")));
}

#[test]
fn an_administrator_sees_and_changes_only_their_contract() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    add_contract(&mut s, "globex", 5);
    let alice = admin_of(&mut s, "acme", "alice");
    add_account(&mut s, &op(), Some("globex"), "gus").unwrap();

    // Own contract: allowed, with or without naming it.
    add_account(&mut s, &alice, None, "bob").unwrap();
    let listed: Vec<String> = rows(run(&mut s, &alice, AdminCommand::AccountList { contract: None }).unwrap())
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(listed, vec!["alice", "bob"]);

    // Another contract: refused, whatever the command.
    let denied = [
        AdminCommand::AccountList {
            contract: Some("globex".into()),
        },
        AdminCommand::AccountLock { user: "gus".into() },
        AdminCommand::AccountPassword {
            user: "gus".into(),
            password: "a long new password".into(),
        },
        AdminCommand::AccountAdd {
            contract: Some("globex".into()),
            user: "eve".into(),
            password: "eve's long password".into(),
        },
        AdminCommand::ContractShow { name: "globex".into() },
        AdminCommand::ContractSuspend {
            name: "acme".into(),
            reason: "x".into(),
        },
        AdminCommand::ContractList,
        AdminCommand::TariffShow,
    ];
    for cmd in denied {
        let r = run(&mut s, &alice, cmd.clone());
        assert!(matches!(r, Err(AdminError::Forbidden(_))), "{cmd:?} gave {r:?}");
    }
    assert_eq!(
        s.account_by_name("gus").unwrap().unwrap().state,
        crate::store::AccountState::Active
    );
    assert!(s.account_by_name("eve").unwrap().is_none());
    // Every refusal is in the audit log, under the administrator's contract.
    let acme = s.contract_by_name("acme").unwrap();
    let denials = s
        .audit_log(Some(acme.id), 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "admin.denied")
        .count();
    assert_eq!(denials, 8);
    // The administrator's log shows nothing that happened in globex (only their own
    // refused attempts, which name what they tried).
    let log = rows(run(&mut s, &alice, AdminCommand::Log { limit: 100 }).unwrap());
    assert!(log.iter().all(|r| r[2] == "admin.denied" || r[3] != "gus"), "{log:?}");
    assert!(log.iter().any(|r| r[2] == "account.add" && r[3] == "bob"));
}

#[test]
fn grants_stay_within_a_contract() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    add_contract(&mut s, "globex", 5);
    let alice = admin_of(&mut s, "acme", "alice");
    add_account(&mut s, &alice, None, "bob").unwrap();
    add_account(&mut s, &op(), Some("globex"), "gus").unwrap();
    let a = s.account_by_name("alice").unwrap().unwrap();
    let g = s.account_by_name("gus").unwrap().unwrap();
    s.device_register(a.id, Role::Target, &Key32([1; 32]), "office-pc", Default::default())
        .unwrap();
    s.device_register(g.id, Role::Target, &Key32([2; 32]), "globex-pc", Default::default())
        .unwrap();
    run(
        &mut s,
        &alice,
        AdminCommand::TargetGrant {
            target: "office-pc".into(),
            account: "bob".into(),
        },
    )
    .unwrap();
    assert_eq!(rows(run(&mut s, &alice, AdminCommand::GrantList).unwrap()).len(), 1);
    let r = run(
        &mut s,
        &alice,
        AdminCommand::TargetGrant {
            target: "globex-pc".into(),
            account: "bob".into(),
        },
    );
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
    let r = run(
        &mut s,
        &op(),
        AdminCommand::TargetGrant {
            target: "office-pc".into(),
            account: "gus".into(),
        },
    );
    assert!(matches!(r, Err(AdminError::Refused(m)) if m.contains("different contracts")));
    let targets = rows(run(&mut s, &alice, AdminCommand::TargetList).unwrap());
    assert_eq!(targets.len(), 1, "globex's target is not listed");
}

#[test]
fn suspension_notifies_the_administrator() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    run(
        &mut s,
        &op(),
        AdminCommand::ContractSuspend {
            name: "acme".into(),
            reason: "unpaid invoice".into(),
        },
    )
    .unwrap();
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(c.state, ContractState::Suspended);
    let n = s.notices(Some(c.id), true).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].to_email, "it@acme.example");
    assert!(n[0].body.contains("unpaid invoice"));
    assert!(run(
        &mut s,
        &op(),
        AdminCommand::ContractSuspend {
            name: "acme".into(),
            reason: "x".into()
        }
    )
    .is_err());
    run(&mut s, &op(), AdminCommand::ContractResume { name: "acme".into() }).unwrap();
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Active);
}

#[test]
fn cancellation_takes_effect_after_its_last_day() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    let cancel = |s: &mut SqliteStore, end| {
        run(
            s,
            &op(),
            AdminCommand::ContractCancel {
                name: "acme".into(),
                received: Some(d(2027, 3, 15)),
                end: Some(end),
            },
        )
    };
    // Received mid-March: the March deadline (end of February) has passed. Issue 16,
    // item 2: refused, naming April's end, instead of recording April's end silently.
    let r = cancel(&mut s, d(2027, 3, 31));
    assert!(
        matches!(&r, Err(AdminError::Refused(m)) if m.contains("--end 2027-04-30")),
        "{r:?}"
    );
    let out = cancel(&mut s, d(2027, 4, 30)).unwrap();
    assert!(
        matches!(&out, Output::Message { text } if text.contains("2027-04-30")),
        "{out:?}"
    );
    assert!(apply_due(&mut s, 0, d(2027, 4, 30)).unwrap().is_empty());
    assert_eq!(apply_due(&mut s, 0, d(2027, 5, 1)).unwrap().len(), 1);
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Cancelled);
}

#[test]
fn undeliverable_termination_waits_five_days() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    run(
        &mut s,
        &op(),
        AdminCommand::ContractTerminate {
            name: "acme".into(),
            reason: "breach".into(),
            notice_undeliverable: true,
        },
    )
    .unwrap();
    // Issue 16, item 7: the five days count from when the notice is actually sent, not
    // from the command. Until then nothing is scheduled.
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(c.terminate_at, None);
    assert!(c.terminate_on_notice);
    let later = crate::store::now() + 30 * 86400;
    assert!(apply_due(&mut s, later, d(2026, 12, 30)).unwrap().is_empty());
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Active);
    let notice = s
        .notices(Some(c.id), true)
        .unwrap()
        .into_iter()
        .find(|n| n.kind == "termination")
        .unwrap();
    s.notice_mark(notice.id, true, None).unwrap();
    let sent = s
        .notices(Some(c.id), false)
        .unwrap()
        .into_iter()
        .find(|n| n.id == notice.id)
        .unwrap()
        .sent_at
        .unwrap();
    apply_due(&mut s, sent, d(2026, 11, 30)).unwrap();
    let at = s.contract_by_name("acme").unwrap().terminate_at.unwrap();
    assert_eq!(at, sent + 5 * 86400);
    assert!(apply_due(&mut s, at - 1, d(2026, 11, 30)).unwrap().is_empty());
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Active);
    apply_due(&mut s, at, d(2026, 11, 30)).unwrap();
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Terminated);
}

#[test]
fn renewal_reminder_once_per_term() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    // First term ends 2027-11-30 (issue 16, item 1); deadline 2027-10-31; reminders
    // from 2027-10-01.
    assert!(apply_due(&mut s, 0, d(2027, 9, 30)).unwrap().is_empty());
    assert_eq!(apply_due(&mut s, 0, d(2027, 10, 1)).unwrap().len(), 1);
    assert!(apply_due(&mut s, 0, d(2027, 10, 2)).unwrap().is_empty());
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(s.notices(Some(c.id), true).unwrap()[0].kind, "renewal");
}

#[test]
fn contract_changes_are_shown_with_history() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    run(
        &mut s,
        &op(),
        AdminCommand::ContractSet {
            name: "acme".into(),
            field: crate::store::ContractField::AdminEmail,
            value: "new@acme.example".into(),
        },
    )
    .unwrap();
    let Output::Sections { parts } = run(&mut s, &op(), AdminCommand::ContractShow { name: "acme".into() }).unwrap()
    else {
        panic!("sections expected")
    };
    let history = parts.iter().find(|(t, _)| t.starts_with("changes")).unwrap();
    assert!(
        matches!(&history.1, Output::Table { rows, .. } if rows[0][4] == "new@acme.example" && rows[0][1] == "operator")
    );
}

#[test]
fn invoice_lists_the_first_term_at_delivery() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 2);
    run(
        &mut s,
        &op(),
        AdminCommand::TariffSet {
            initial_fee: Some(50_000),
            annual_fee: Some(12_000),
            tax_rate_bp: None,
        },
    )
    .unwrap();
    let out = run(
        &mut s,
        &op(),
        AdminCommand::Invoice {
            name: "acme".into(),
            at: d(2026, 11, 24),
        },
    )
    .unwrap();
    let Output::Sections { parts } = out else { panic!() };
    // Initial 50,000 + 2 accounts x 12,000 (one annual fee, art. 28-1; the start month is
    // free, art. 27-2) = 74,000; tax 7,400. Issue 16, item 1: not x 13/12.
    assert!(
        matches!(&parts[1].1, Output::Message { text } if text == "¥81,400"),
        "{:?}",
        parts[1]
    );
}
