use chrono::NaiveDate;

use super::api::{AccountName, NewAccount, OperatorCmd, OutageCmd, TargetCmd, TariffCmd};
use super::render::{self, Text};
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
    execute(store, ctx, &prepare(cmd))
}

fn new_account(contract: Option<&str>, user: &str, password: &str) -> AdminCommand {
    AdminCommand::Account(AccountCmd::Add(NewAccount {
        name: AccountName {
            contract: contract.map(str::to_string),
            user: user.into(),
        },
        password_file: None,
        password: NewPassword(password.into()),
    }))
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
        AdminCommand::Contract(ContractCmd::Add(ContractSpec {
            start: Some(d(2026, 11, 24)),
            admin_name: "Sato".into(),
            admin_email: format!("it@{name}.example"),
            ..spec(name, "corporation", accounts)
        })),
    )
    .unwrap();
}

fn add_account(store: &mut SqliteStore, ctx: &ExecCtx, contract: Option<&str>, user: &str) -> AdminResult {
    run(
        store,
        ctx,
        new_account(contract, user, &format!("{user} has a long password")),
    )
}

fn admin_of(store: &mut SqliteStore, contract: &str, user: &str) -> ExecCtx {
    add_account(store, &op(), Some(contract), user).unwrap();
    run(
        store,
        &op(),
        AdminCommand::Contract(ContractCmd::Admin {
            name: contract.into(),
            account: user.into(),
        }),
    )
    .unwrap();
    let c = store.contract_by_name(contract).unwrap();
    ExecCtx {
        scope: Scope::Contract { id: c.id, name: c.name },
        actor: format!("admin:{user}"),
        ..op()
    }
}

/// The rows of the table people see for this answer.
fn rows(out: Output) -> Vec<Vec<String>> {
    match render::text(&out) {
        Text::Table { rows, .. } => rows,
        o => panic!("expected a table, got {o:?}"),
    }
}

#[test]
fn only_corporations_and_public_bodies() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let r = run(
        &mut s,
        &op(),
        AdminCommand::Contract(ContractCmd::Add(spec("joe", "individual", 5))),
    );
    assert!(matches!(r, Err(AdminError::Refused(m)) if m.contains("art. 11")));
}

#[test]
fn basic_contract_minimum_comes_from_the_hub_setting() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.set_setting(MIN_ACCOUNTS_SETTING, "5").unwrap();
    let r = run(
        &mut s,
        &op(),
        AdminCommand::Contract(ContractCmd::Add(spec("tiny", "public-body", 3))),
    );
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
        AdminCommand::Contract(ContractCmd::AddAccounts {
            name: "acme".into(),
            accounts: 1,
            start: Some(d(2027, 1, 10)),
        }),
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
    let r = run(&mut s, &op(), new_account(Some("acme"), "alice", "short"));
    assert!(matches!(r, Err(AdminError::PasswordPolicy(m)) if m.contains("12")));
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
    let listed: Vec<String> = rows(
        run(
            &mut s,
            &alice,
            AdminCommand::Account(AccountCmd::List { contract: None }),
        )
        .unwrap(),
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    assert_eq!(listed, vec!["alice", "bob"]);

    // Another contract: refused, whatever the command.
    let denied = [
        AdminCommand::Account(AccountCmd::List {
            contract: Some("globex".into()),
        }),
        AdminCommand::Account(AccountCmd::Lock { user: "gus".into() }),
        AdminCommand::Account(AccountCmd::Password {
            user: "gus".into(),
            password_file: None,
            password: NewPassword("a long new password".into()),
        }),
        new_account(Some("globex"), "eve", "eve's long password"),
        AdminCommand::Contract(ContractCmd::Show { name: "globex".into() }),
        AdminCommand::Contract(ContractCmd::Suspend {
            name: "acme".into(),
            reason: "x".into(),
        }),
        AdminCommand::Contract(ContractCmd::List),
        AdminCommand::Tariff(TariffCmd::Show),
    ];
    for cmd in denied {
        let r = run(&mut s, &alice, cmd.clone());
        if authorize(&alice.scope, &cmd).is_err() {
            assert!(matches!(r, Err(AdminError::Forbidden(_))), "{cmd:?} gave {r:?}");
        } else {
            // Another contract's name: answered as a name that does not exist (C10).
            assert!(matches!(r, Err(AdminError::NotFound(_))), "{cmd:?} gave {r:?}");
        }
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
    let log = rows(
        run(
            &mut s,
            &alice,
            AdminCommand::Log {
                limit: 100,
                filter: Default::default(),
            },
        )
        .unwrap(),
    );
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
        AdminCommand::Target(TargetCmd::Grant {
            target: "office-pc".into(),
            account: "bob".into(),
        }),
    )
    .unwrap();
    assert_eq!(
        rows(run(&mut s, &alice, AdminCommand::Target(TargetCmd::Grants)).unwrap()).len(),
        1
    );
    let r = run(
        &mut s,
        &alice,
        AdminCommand::Target(TargetCmd::Grant {
            target: "globex-pc".into(),
            account: "bob".into(),
        }),
    );
    assert!(matches!(r, Err(AdminError::NotFound(_))), "{r:?}");
    let r = run(
        &mut s,
        &op(),
        AdminCommand::Target(TargetCmd::Grant {
            target: "office-pc".into(),
            account: "gus".into(),
        }),
    );
    assert!(matches!(r, Err(AdminError::Refused(m)) if m.contains("different contracts")));
    let targets = rows(run(&mut s, &alice, AdminCommand::Target(TargetCmd::List)).unwrap());
    assert_eq!(targets.len(), 1, "globex's target is not listed");
}

#[test]
fn suspension_notifies_the_administrator() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    run(
        &mut s,
        &op(),
        AdminCommand::Contract(ContractCmd::Suspend {
            name: "acme".into(),
            reason: "unpaid invoice".into(),
        }),
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
        AdminCommand::Contract(ContractCmd::Suspend {
            name: "acme".into(),
            reason: "x".into()
        })
    )
    .is_err());
    run(
        &mut s,
        &op(),
        AdminCommand::Contract(ContractCmd::Resume { name: "acme".into() }),
    )
    .unwrap();
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
            AdminCommand::Contract(ContractCmd::Cancel {
                name: "acme".into(),
                received: Some(d(2027, 3, 15)),
                end: Some(end),
            }),
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
        matches!(render::text(&out), Text::Message(text) if text.contains("2027-04-30")),
        "{out:?}"
    );
    let Output::CancellationAccepted(accepted) = &out else {
        panic!("{out:?}")
    };
    // The requested month end was in time: nothing moved (issue 16, item 2).
    assert!(!accepted.late);
    assert_eq!(accepted.effective, d(2027, 4, 30));
    let v = render::json(&out);
    assert_eq!(
        (v["version"].as_u64(), v["late"].as_bool()),
        (Some(1), Some(false)),
        "{v}"
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
        AdminCommand::Contract(ContractCmd::Terminate {
            name: "acme".into(),
            reason: "breach".into(),
            notice_undeliverable: true,
        }),
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
        AdminCommand::Contract(ContractCmd::Set {
            name: "acme".into(),
            field: crate::store::ContractField::AdminEmail,
            value: "new@acme.example".into(),
        }),
    )
    .unwrap();
    let shown = run(
        &mut s,
        &op(),
        AdminCommand::Contract(ContractCmd::Show { name: "acme".into() }),
    )
    .unwrap();
    let Text::Sections(parts) = render::text(&shown) else {
        panic!("sections expected")
    };
    let history = parts.iter().find(|(t, _)| t.starts_with("changes")).unwrap();
    assert!(
        matches!(&history.1, Text::Table { rows, .. } if rows[0][4] == "new@acme.example" && rows[0][1] == "operator")
    );
}

#[test]
fn invoice_lists_the_first_term_at_delivery() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 2);
    run(
        &mut s,
        &op(),
        AdminCommand::Tariff(TariffCmd::Set {
            initial_fee: Some(50_000),
            annual_fee: Some(12_000),
            tax_rate_bp: None,
        }),
    )
    .unwrap();
    let out = run(
        &mut s,
        &op(),
        AdminCommand::Invoice {
            contract: "acme".into(),
            at: Some(d(2026, 11, 24)),
            csv: false,
            print: None,
        },
    )
    .unwrap();
    let Text::Sections(parts) = render::text(&out) else {
        panic!()
    };
    // Initial 50,000 + 2 accounts x 12,000 (one annual fee, art. 28-1; the start month is
    // free, art. 27-2) = 74,000; tax 7,400. Issue 16, item 1: not x 13/12.
    assert!(
        matches!(&parts[1].1, Text::Message(text) if text == "¥81,400"),
        "{:?}",
        parts[1]
    );
}

/// Parses `mcvpn admin ARGS` with the command line's own definitions.
/// What the tests read of a parsed `mcvpn admin` command line.
struct ParsedCli {
    json: bool,
    what: AdminCommand,
}

fn parse_cli(args: &[&str]) -> Result<ParsedCli, clap::Error> {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        admin: crate::cli_admin::AdminArgs,
    }
    use clap::Parser as _;
    let admin = Cli::try_parse_from(std::iter::once("admin").chain(args.iter().copied()))?.admin;
    let crate::cli_admin::AdminSubcommand::Api(what) = admin.what else {
        panic!("{args:?} is a store command, not an admin API command")
    };
    Ok(ParsedCli { json: admin.json, what })
}

/// Every object key in a JSON document is snake_case.
fn assert_snake_case_keys(v: &serde_json::Value, path: &str) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                assert!(
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "key {k:?} at {path} is not snake_case"
                );
                assert_snake_case_keys(v, &format!("{path}.{k}"));
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| assert_snake_case_keys(v, &format!("{path}[]"))),
        _ => {}
    }
}

fn date(v: &serde_json::Value) -> NaiveDate {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s:?} is not an ISO date: {e}"))
}

/// `mcvpn admin --json contract show acme` as the command line runs it: parsed by clap
/// into the API's command, executed on a real store, printed as JSON. The document is
/// versioned, and its numbers, booleans and dates are typed.
#[test]
fn contract_show_json_is_typed_and_versioned() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    admin_of(&mut s, "acme", "alice");
    add_account(&mut s, &op(), Some("acme"), "bob").unwrap();
    for cmd in [
        AdminCommand::Contract(ContractCmd::AddAccounts {
            name: "acme".into(),
            accounts: 2,
            // In force today, so that it counts in the quota (issue 16, item 6).
            start: Some(d(2026, 11, 24)),
        }),
        AdminCommand::Contract(ContractCmd::Set {
            name: "acme".into(),
            field: crate::store::ContractField::Phone,
            value: "03-1234-5678".into(),
        }),
        AdminCommand::Contract(ContractCmd::Cancel {
            name: "acme".into(),
            received: Some(d(2027, 10, 15)),
            // The first term's end (twelve months after the start month, issue 16, item 1).
            end: Some(d(2027, 11, 30)),
        }),
    ] {
        run(&mut s, &op(), cmd).unwrap();
    }

    let args = parse_cli(&["--json", "contract", "show", "acme"]).unwrap();
    assert!(args.json);
    let out = crate::cli_admin::run_local(&mut s, args.what, d(2026, 11, 24)).unwrap();
    let text = render::to_json_string(&out);
    assert!(
        text.starts_with("{\n  \"version\": 1,\n  \"name\": \"acme\","),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_snake_case_keys(&v, "$");

    assert_eq!(v["version"].as_u64(), Some(1), "{text}");
    assert_eq!(v["name"], "acme");
    assert_eq!(v["kind"], "corporation");
    assert_eq!(v["state"], "active");
    assert_eq!(v["admin_login"], "alice");
    assert_eq!(v["accounts_used"].as_u64(), Some(2), "{text}");
    assert_eq!(v["account_quota"].as_u64(), Some(7), "{text}");
    assert!(v["termination_scheduled_at"].is_null());

    let term = &v["current_term"];
    assert_eq!(term["status"], "active");
    assert_eq!(date(&term["start"]), d(2026, 11, 24));
    assert_eq!(date(&term["end"]), d(2027, 11, 30));
    assert_eq!(term["renewal"].as_u64(), Some(0));
    assert_eq!(date(&term["cancellation_deadline"]), d(2027, 10, 31));
    assert_eq!(term["renews"].as_bool(), Some(false), "cancelled: {text}");
    assert_eq!(date(&term["last_day"]), d(2027, 11, 30));

    let contracts = v["contracts"].as_array().unwrap();
    assert_eq!(contracts.len(), 2);
    assert_eq!(contracts[0]["kind"], "basic");
    assert_eq!(contracts[0]["accounts"].as_u64(), Some(5));
    assert_eq!(date(&contracts[0]["start"]), d(2026, 11, 24));
    assert_eq!(contracts[1]["kind"], "additional");
    assert_eq!(contracts[1]["accounts"].as_u64(), Some(2));
    date(&contracts[1]["first_term_end"]);

    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["field"], "phone");
    assert_eq!(history[0]["now"], "03-1234-5678");
    assert_eq!(history[0]["by"], "operator");
    let at = history[0]["at"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at:?} is not RFC 3339: {e}"));

    let cancel = &v["cancellation"];
    assert_eq!(date(&cancel["received"]), d(2027, 10, 15));
    assert_eq!(date(&cancel["requested_end"]), d(2027, 11, 30));
    assert_eq!(date(&cancel["effective"]), d(2027, 11, 30));
    assert_eq!(cancel["recorded_by"], "operator");

    // The same answer for people still reads as before.
    let Text::Sections(parts) = render::text(&out) else {
        panic!()
    };
    let titles: Vec<&str> = parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        titles,
        [
            "contract",
            "basic and additional contracts (art. 12, 13)",
            "changes (art. 16, 17)",
            "cancellation (art. 18)"
        ]
    );
    let Text::Table { rows, .. } = &parts[0].1 else {
        panic!()
    };
    assert!(
        rows.contains(&vec!["accounts".to_string(), "2 of 7".to_string()]),
        "{rows:?}"
    );
}

/// Listings stay JSON arrays of objects (scripts index them), with typed fields.
#[test]
fn list_json_is_an_array_of_typed_rows() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    add_account(&mut s, &op(), Some("acme"), "alice").unwrap();
    run(
        &mut s,
        &op(),
        AdminCommand::Account(AccountCmd::Lock { user: "alice".into() }),
    )
    .unwrap();
    let args = parse_cli(&["account", "list", "--json"]).unwrap();
    let out = crate::cli_admin::run_local(&mut s, args.what, d(2026, 11, 24)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&render::to_json_string(&out)).unwrap();
    assert_snake_case_keys(&v, "$");
    let rows = v.as_array().expect("an array");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["account"], "alice");
    assert_eq!(rows[0]["state"], "locked");
    assert_eq!(rows[0]["device_binding"].as_bool(), Some(false));
    chrono::DateTime::parse_from_rfc3339(rows[0]["created_at"].as_str().unwrap()).unwrap();

    let targets = run(&mut s, &op(), AdminCommand::Target(TargetCmd::List)).unwrap();
    assert_eq!(render::to_json_string(&targets), "[]");

    let notices = run(&mut s, &op(), AdminCommand::Notice(api::NoticeCmd::List { all: true })).unwrap();
    let v = render::json(&notices);
    assert_eq!(v[0]["kind"], "account-locked");
    assert_eq!(v[0]["to"], "it@acme.example");
    assert_eq!(v[0]["attempts"].as_i64(), Some(0));
    assert!(v[0]["sent_at"].is_null());
    assert_eq!(v[0]["sent"], "in the outbox");
}

/// The command line parses into the API's types; what only the command line needs
/// (where to read a password from) never reaches the wire.
#[test]
fn the_command_line_parses_into_the_api_types() {
    let a = parse_cli(&["account", "add", "acme", "alice", "--password-file", "/tmp/pw"]).unwrap();
    let AdminCommand::Account(AccountCmd::Add(new)) = &a.what else {
        panic!("{:?}", a.what)
    };
    assert_eq!(new.name.contract.as_deref(), Some("acme"));
    assert_eq!(new.name.user, "alice");
    assert_eq!(new.password_file.as_deref(), Some(std::path::Path::new("/tmp/pw")));

    let mut b = parse_cli(&["--hub", "mcvpn://h:1/?key=k", "--as", "alice", "account", "add", "bob"])
        .unwrap()
        .what;
    let slot = b.new_password_mut().expect("account add carries a password");
    assert_eq!(slot.user, "bob");
    assert!(slot.file.is_none());
    *slot.password = NewPassword("bob's long password".into());
    assert_eq!(b, new_account(None, "bob", "bob's long password"));

    assert!(parse_cli(&["account", "add", "a", "b", "c"]).is_err());
    assert!(parse_cli(&["account", "binding", "bob", "maybe"]).is_err());
    let on = parse_cli(&["account", "binding", "bob", "on"]).unwrap().what;
    assert_eq!(
        on,
        AdminCommand::Account(AccountCmd::Binding {
            user: "bob".into(),
            state: api::OnOff::On
        })
    );
    let inv = parse_cli(&["invoice", "acme", "--at", "2027-12-01"]).unwrap().what;
    assert_eq!(
        inv,
        AdminCommand::Invoice {
            contract: "acme".into(),
            at: Some(d(2027, 12, 1)),
            csv: false,
            print: None,
        }
    );

    // On the wire: the password goes (inside Noise), the file name does not.
    let wire = serde_json::to_value(&a.what).unwrap();
    assert_eq!(
        wire,
        serde_json::json!({"account": {"add": {"contract": "acme", "user": "alice", "password": ""}}})
    );
    let back: AdminCommand = serde_json::from_value(wire).unwrap();
    assert!(matches!(back, AdminCommand::Account(AccountCmd::Add(n)) if n.password_file.is_none()));
    assert!(!format!("{b:?}").contains("long password"), "Debug shows the password");
}

/// An account administrator may run exactly the commands of their own contract's
/// accounts, targets, sessions, log and notices, and look at their contract.
#[test]
fn authorize_separates_operator_and_administrator() {
    let admin = Scope::Contract {
        id: 1,
        name: "acme".into(),
    };
    let allowed = [
        "account list",
        "account lock bob",
        "account add bob",
        "account password bob",
        "account bind bob --key k",
        "account binding bob on",
        "target list",
        "target add bob --key k --name pc",
        "target grant pc bob",
        "target revoke pc bob",
        "target grants",
        "session list",
        "device list",
        "device list --account bob",
        "device remove bob laptop",
        "log",
        "notice list",
        "contract show acme",
    ];
    let operator_only = [
        "contract add acme",
        "contract list",
        "contract set acme phone 1",
        "contract set acme device-limit 20",
        "contract admin acme alice",
        "contract add-accounts acme 5",
        "contract suspend acme --reason x",
        "contract resume acme",
        "contract terminate acme --reason x",
        "contract cancel acme",
        "invoice acme",
        "compensation acme",
        "outage add --start 2027-03-01T00:00:00 --end 2027-03-06T12:00:00",
        "outage list",
        "tariff show",
        "tariff set --annual-fee 1",
    ];
    for line in allowed.iter().chain(&operator_only) {
        let cmd = parse_cli(&line.split(' ').collect::<Vec<_>>()).unwrap().what;
        assert_eq!(authorize(&Scope::Operator, &cmd), Ok(()), "{line}");
        let r = authorize(&admin, &cmd);
        if allowed.contains(line) {
            assert_eq!(r, Ok(()), "{line}");
        } else {
            assert!(
                matches!(&r, Err(AdminError::Forbidden(m)) if m.contains(cmd.name())),
                "{line}: {r:?}"
            );
        }
    }
}

fn device(key: u8, name: &str) -> (Key32, String) {
    (Key32([key; 32]), name.to_string())
}

/// `device list` and `device remove`: an administrator manages the client devices of
/// their own contract's accounts only; removing one makes room under the device limit.
#[test]
fn devices_are_listed_and_removed_within_a_contract() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    add_contract(&mut s, "globex", 5);
    let alice = admin_of(&mut s, "acme", "alice");
    add_account(&mut s, &alice, None, "bob").unwrap();
    add_account(&mut s, &op(), Some("globex"), "gus").unwrap();
    let bob = s.account_by_name("bob").unwrap().unwrap();
    let gus = s.account_by_name("gus").unwrap().unwrap();
    let net = crate::store::OverlayNet::default();
    for (key, name) in [device(1, "laptop"), device(2, "phone"), device(3, "phone")] {
        s.device_register(bob.id, Role::Client, &key, &name, net).unwrap();
    }
    let gus_pc = s
        .device_register(gus.id, Role::Client, &Key32([4; 32]), "pc", net)
        .unwrap();
    s.device_register(bob.id, Role::Target, &Key32([5; 32]), "office", net)
        .unwrap();
    // A live session of bob's laptop, as the hub records it.
    let laptop = s.device_by_key(&Key32([1; 32]), Role::Client, None).unwrap().unwrap();
    s.session_start(laptop.id, "192.0.2.1:1", "hub-a").unwrap();

    let list = |s: &mut SqliteStore, ctx: &ExecCtx, account: Option<&str>| {
        run(
            s,
            ctx,
            AdminCommand::Device(api::DeviceCmd::List {
                account: account.map(str::to_string),
            }),
        )
    };
    let mine = rows(list(&mut s, &alice, None).unwrap());
    let names: Vec<(&str, &str, &str)> = mine
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str(), r[7].as_str()))
        .collect();
    assert_eq!(
        names,
        vec![("bob", "laptop", "yes"), ("bob", "phone", "no"), ("bob", "phone", "no")],
        "clients of the own contract only, targets not listed"
    );
    assert_eq!(rows(list(&mut s, &op(), None).unwrap()).len(), 4);
    assert_eq!(rows(list(&mut s, &op(), Some("gus")).unwrap()).len(), 1);
    let json = render::json(&list(&mut s, &alice, Some("bob")).unwrap());
    assert_eq!(json[0]["name"], "laptop");
    assert_eq!(json[0]["online"], true);
    assert_snake_case_keys(&json, "");

    let remove = |s: &mut SqliteStore, ctx: &ExecCtx, user: &str, dev: &str| {
        run(
            s,
            ctx,
            AdminCommand::Device(api::DeviceCmd::Remove {
                user: user.into(),
                device: dev.into(),
            }),
        )
    };
    // Not theirs: answered as a name that does not exist (review C10), nothing removed.
    let r = remove(&mut s, &alice, "gus", "pc");
    assert!(matches!(r, Err(AdminError::NotFound(_))), "{r:?}");
    assert!(s.device_by_id(gus_pc.id).is_ok());
    assert!(matches!(
        remove(&mut s, &alice, "bob", "tablet"),
        Err(AdminError::NotFound(_))
    ));
    assert!(
        matches!(remove(&mut s, &alice, "bob", "office"), Err(AdminError::NotFound(_))),
        "targets stay"
    );
    // Two devices named phone: the node number says which.
    let r = remove(&mut s, &alice, "bob", "phone");
    assert!(
        matches!(&r, Err(AdminError::Refused(m)) if m.contains("node number")),
        "{r:?}"
    );
    let phone = s.device_by_key(&Key32([3; 32]), Role::Client, None).unwrap().unwrap();
    remove(&mut s, &alice, "bob", &phone.node_id().to_string()).unwrap();
    // The laptop goes while online; its session stays in the records under its name.
    remove(&mut s, &alice, "bob", "laptop").unwrap();
    assert!(s.device_by_id(laptop.id).is_err());
    let sessions = s.sessions(false, None).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!((sessions[0].device.as_str(), sessions[0].device_id), ("laptop", None));
    assert_eq!(rows(list(&mut s, &alice, None).unwrap()).len(), 1);
    // The key may register again (room under the limit, and the address was freed).
    s.device_register(bob.id, Role::Client, &Key32([1; 32]), "laptop", net)
        .unwrap();
    let acme = s.contract_by_name("acme").unwrap();
    let log = s.audit_log(Some(acme.id), 100).unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "device.remove").count(), 2);
    assert!(parse_cli(&["device", "remove", "bob"]).is_err());
}

/// The device limit is set per contract by the operator, shown, recorded, and applies to
/// registrations at once; it is not the administrator's to raise.
#[test]
fn device_limit_is_per_contract() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    let alice = admin_of(&mut s, "acme", "alice");
    let set = |v: &str| {
        AdminCommand::Contract(ContractCmd::Set {
            name: "acme".into(),
            field: crate::store::ContractField::DeviceLimit,
            value: v.into(),
        })
    };
    assert_eq!(s.contract_by_name("acme").unwrap().device_limit, 10);
    assert!(matches!(run(&mut s, &alice, set("50")), Err(AdminError::Forbidden(_))));
    for bad in ["-1", "ten", "1001", ""] {
        assert!(
            matches!(run(&mut s, &op(), set(bad)), Err(AdminError::Refused(_))),
            "{bad}"
        );
    }
    run(&mut s, &op(), set("2")).unwrap();
    assert_eq!(s.contract_by_name("acme").unwrap().device_limit, 2);
    let a = s.account_by_name("alice").unwrap().unwrap();
    let net = crate::store::OverlayNet::default();
    s.device_register(a.id, Role::Client, &Key32([1; 32]), "a", net)
        .unwrap();
    s.device_register(a.id, Role::Client, &Key32([2; 32]), "b", net)
        .unwrap();
    let r = run(
        &mut s,
        &alice,
        AdminCommand::Account(AccountCmd::Bind {
            user: "alice".into(),
            key: Key32([3; 32]).to_base64(),
            name: None,
        }),
    );
    assert!(
        matches!(&r, Err(AdminError::Refused(m)) if m.contains("device remove")),
        "{r:?}"
    );
    let shown = render::json(
        &run(
            &mut s,
            &op(),
            AdminCommand::Contract(ContractCmd::Show { name: "acme".into() }),
        )
        .unwrap(),
    );
    assert_eq!(shown["device_limit"], 2);
    let history = shown["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|h| h["field"] == "device_limit" && h["was"] == "10" && h["now"] == "2"),
        "{history:?}"
    );
    let cli = parse_cli(&["contract", "set", "acme", "device-limit", "20"])
        .unwrap()
        .what;
    assert_eq!(cli, set("20"));
}

/// Review C10: an account administrator cannot tell another contract's names from names
/// that do not exist: same error, same text, same row in their log. Before, another
/// contract's account gave `Forbidden` ("is not in your contract") and a missing one
/// `NotFound`.
#[test]
fn other_contracts_names_look_like_missing_ones() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    add_contract(&mut s, "globex", 5);
    let alice = admin_of(&mut s, "acme", "alice");
    add_account(&mut s, &op(), Some("globex"), "gus").unwrap();
    let gus = s.account_by_name("gus").unwrap().unwrap();
    s.device_register(gus.id, Role::Target, &Key32([2; 32]), "globex-pc", Default::default())
        .unwrap();
    let acme = s.contract_by_name("acme").unwrap();
    // Each pair: (the name of another contract's thing, a name nobody has).
    let pairs: Vec<(AdminCommand, AdminCommand)> = vec![
        (
            AdminCommand::Account(AccountCmd::Lock { user: "gus".into() }),
            AdminCommand::Account(AccountCmd::Lock { user: "zed".into() }),
        ),
        (
            AdminCommand::Contract(ContractCmd::Show { name: "globex".into() }),
            AdminCommand::Contract(ContractCmd::Show { name: "initech".into() }),
        ),
        (
            AdminCommand::Account(AccountCmd::List {
                contract: Some("globex".into()),
            }),
            AdminCommand::Account(AccountCmd::List {
                contract: Some("initech".into()),
            }),
        ),
        (
            AdminCommand::Target(TargetCmd::Grant {
                target: "globex-pc".into(),
                account: "alice".into(),
            }),
            AdminCommand::Target(TargetCmd::Grant {
                target: "nowhere-pc".into(),
                account: "alice".into(),
            }),
        ),
    ];
    for (theirs, missing) in pairs {
        let before = s.audit_log(Some(acme.id), 1000).unwrap().len();
        let a = run(&mut s, &alice, theirs.clone()).unwrap_err();
        let a_rows = s.audit_log(Some(acme.id), 1000).unwrap();
        let b = run(&mut s, &alice, missing.clone()).unwrap_err();
        let b_rows = s.audit_log(Some(acme.id), 1000).unwrap();
        let canon = |e: &AdminError| format!("{e:?}").replace("gus", "X").replace("zed", "X");
        let canon = |e: &AdminError| {
            canon(e)
                .replace("globex-pc", "X")
                .replace("nowhere-pc", "X")
                .replace("globex", "X")
                .replace("initech", "X")
        };
        assert!(matches!(a, AdminError::NotFound(_)), "{theirs:?}: {a:?}");
        assert_eq!(canon(&a), canon(&b), "{theirs:?} vs {missing:?}");
        assert_eq!(
            a_rows.len() - before,
            b_rows.len() - a_rows.len(),
            "same rows in the admin's log"
        );
    }
    // The operator still sees which ones were another contract's.
    let all = s.audit_log(None, 1000).unwrap();
    assert!(all
        .iter()
        .any(|e| e.contract_id.is_none() && e.detail.contains("outside the caller's contract")));
}

/// Issue 11, item 5: names are checked where they are created.
#[test]
fn names_are_checked_on_add() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    for bad in ["\x1b[2Jevil".to_string(), "x".repeat(65), "a\r\nb".to_string()] {
        let r = add_account(&mut s, &op(), Some("acme"), &bad);
        assert!(
            matches!(&r, Err(AdminError::Refused(m)) if m.contains("account name")),
            "{r:?}"
        );
        let r = run(
            &mut s,
            &op(),
            AdminCommand::Contract(ContractCmd::Add(spec(&bad, "corporation", 10))),
        );
        assert!(
            matches!(&r, Err(AdminError::Refused(m)) if m.contains("contract name")),
            "{r:?}"
        );
    }
    add_account(&mut s, &op(), Some("acme"), "alice").unwrap();
    let r = run(
        &mut s,
        &op(),
        AdminCommand::Target(TargetCmd::Add {
            account: "alice".into(),
            key: Key32([7; 32]).to_base64(),
            name: "pc\u{1b}]0;owned\u{7}".into(),
        }),
    );
    assert!(
        matches!(&r, Err(AdminError::Refused(m)) if m.contains("target name")),
        "{r:?}"
    );
}

/// Makes every insert into `table` fail, as a full disk or an I/O error would, from the
/// next statement on.
fn fail_inserts_into(store: &SqliteStore, table: &str) {
    store
        .connection()
        .execute_batch(&format!(
            "CREATE TEMP TRIGGER fail_{table} BEFORE INSERT ON main.{table} \
             BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;"
        ))
        .unwrap();
}

/// Issue 13: a suspension is its state, its audit entry and its notice, or nothing. A
/// notice that cannot be queued used to be logged and skipped: the contract was
/// suspended and its administrator never told (art. 23-2).
#[test]
fn a_suspension_whose_notice_cannot_be_queued_does_not_happen() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 10);
    fail_inserts_into(&s, "notices");
    let suspend = AdminCommand::Contract(ContractCmd::Suspend {
        name: "acme".into(),
        reason: "unpaid".into(),
    });
    let err = run(&mut s, &op(), suspend.clone()).expect_err("the change must fail as a whole");
    assert!(err.to_string().contains("injected"), "{err}");
    let c = s.contract_by_name("acme").unwrap();
    assert_eq!(c.state, ContractState::Active, "half a suspension was stored");
    let audit = s.audit_log(Some(c.id), 100).unwrap();
    assert!(
        !audit.iter().any(|a| a.action == "contract.suspend"),
        "the audit log tells of a suspension that did not happen: {audit:?}"
    );

    // Once the store accepts writes again, the same command goes through whole.
    s.connection().execute_batch("DROP TRIGGER temp.fail_notices").unwrap();
    run(&mut s, &op(), suspend).unwrap();
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Suspended);
    assert_eq!(s.notices(Some(c.id), false).unwrap().len(), 1);
}

/// Issue 13: a contract added without its audit entry (the entry failed) used to stay,
/// with nothing in the log to say who added it.
#[test]
fn a_change_whose_audit_entry_fails_leaves_nothing() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    fail_inserts_into(&s, "audit");
    let add = AdminCommand::Contract(ContractCmd::Add(ContractSpec {
        start: Some(d(2026, 11, 24)),
        admin_email: "it@acme.example".into(),
        ..spec("acme", "corporation", 10)
    }));
    let err = run(&mut s, &op(), add).expect_err("the change must fail as a whole");
    assert!(err.to_string().contains("injected"), "{err}");
    assert!(
        s.contracts().unwrap().is_empty(),
        "a contract without its audit entry was stored"
    );
    let terms: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM contract_terms", [], |r| r.get(0))
        .unwrap();
    assert_eq!(terms, 0);
}

/// A calendar job's state change and its audit entry go together too; a failed one is
/// tried again on the next pass and reported, not half-applied.
#[test]
fn a_calendar_job_that_fails_half_way_is_not_applied() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 10);
    run(
        &mut s,
        &op(),
        AdminCommand::Contract(ContractCmd::Cancel {
            name: "acme".into(),
            received: Some(d(2027, 3, 10)),
            end: Some(d(2027, 4, 30)),
        }),
    )
    .unwrap();
    fail_inserts_into(&s, "audit");
    let done = apply_due(&mut s, 0, d(2027, 5, 1)).unwrap();
    assert!(done.iter().all(|l| l.contains("job failed")), "{done:?}");
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Active);
    s.connection().execute_batch("DROP TRIGGER temp.fail_audit").unwrap();
    assert_eq!(apply_due(&mut s, 0, d(2027, 5, 1)).unwrap().len(), 1);
    assert_eq!(s.contract_by_name("acme").unwrap().state, ContractState::Cancelled);
}

/// `notice preview` is shown as a document: its lines are lines on the terminal, not
/// `\n` escapes as in a one-line message.
#[test]
fn notice_preview_prints_lines_and_is_the_operators() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let out = run(&mut s, &op(), AdminCommand::Notice(api::NoticeCmd::Preview)).unwrap();
    let text = render::format_text(&render::text(&out));
    assert!(!text.contains("\\n"), "{text}");
    assert!(
        text.lines().any(|l| l == "===== suspension (built-in:suspension.txt)"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "----- English -----"), "{text}");
    let administrator = Scope::Contract {
        id: 1,
        name: "acme".into(),
    };
    assert!(authorize(&administrator, &AdminCommand::Notice(api::NoticeCmd::Preview)).is_err());
}

/// A monitor login (`mcvpn monitor`) may record and list outages, and nothing else.
#[test]
fn a_monitor_login_records_and_lists_outages_and_nothing_else() {
    let monitor = Scope::Monitor { name: "watch1".into() };
    let allowed = [
        "outage record --start 2027-03-01T00:00:00Z --end 2027-03-01T00:05:00Z",
        "outage list",
    ];
    let refused = [
        "outage add --start 2027-03-01T00:00:00 --end 2027-03-06T12:00:00",
        "contract list",
        "contract show acme",
        "account list",
        "target list",
        "session list",
        "log",
        "notice list",
        "compensation acme",
        "tariff show",
        "operator list",
        "operator add watch2 --role operator",
        "operator remove watch1",
    ];
    for line in allowed.iter().chain(&refused) {
        let cmd = parse_cli(&line.split(' ').collect::<Vec<_>>()).unwrap().what;
        assert_eq!(authorize(&Scope::Operator, &cmd), Ok(()), "{line}");
        let r = authorize(&monitor, &cmd);
        if allowed.contains(line) {
            assert_eq!(r, Ok(()), "{line}");
        } else {
            assert!(
                matches!(&r, Err(AdminError::Forbidden(m)) if m.contains(cmd.name())),
                "{line}: {r:?}"
            );
        }
    }
    // Account administrators may not record outages either.
    let admin = Scope::Contract {
        id: 1,
        name: "acme".into(),
    };
    let record = parse_cli(&[
        "outage",
        "record",
        "--start",
        "2027-03-01T00:00:00Z",
        "--end",
        "2027-03-01T00:05:00Z",
    ])
    .unwrap()
    .what;
    assert!(matches!(authorize(&admin, &record), Err(AdminError::Forbidden(_))));
}

#[test]
fn outage_record_through_a_monitor_login_is_idempotent_and_audited() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 10);
    let ctx = ExecCtx {
        scope: Scope::Monitor { name: "watch1".into() },
        actor: "operator:watch1".into(),
        ..op()
    };
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let record = |end: &str, source: Option<&str>| {
        AdminCommand::Outage(OutageCmd::Record {
            start: t("2027-03-01T00:00:00Z"),
            end: t(end),
            source: source.map(str::to_string),
        })
    };
    let outcome = |r: AdminResult| match r {
        Ok(Output::OutageRecorded(r)) => (r.source, r.outcome, r.end),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        outcome(run(&mut s, &ctx, record("2027-03-01T00:05:00Z", None))),
        ("monitor:watch1".into(), "added".into(), t("2027-03-01T00:05:00Z"))
    );
    assert_eq!(
        outcome(run(&mut s, &ctx, record("2027-03-01T00:05:00Z", None))).1,
        "unchanged"
    );
    assert_eq!(
        outcome(run(&mut s, &ctx, record("2027-03-01T00:07:00Z", None))).1,
        "extended"
    );
    // A monitor cannot record under another name.
    assert!(matches!(
        run(&mut s, &ctx, record("2027-03-01T00:07:00Z", Some("monitor:other"))),
        Err(AdminError::Refused(_))
    ));
    // Anything else is refused and audited as a denial.
    assert!(matches!(
        run(&mut s, &ctx, AdminCommand::Contract(ContractCmd::List)),
        Err(AdminError::Forbidden(_))
    ));
    let Ok(Output::Outages(rows)) = run(&mut s, &ctx, AdminCommand::Outage(OutageCmd::List)) else {
        panic!("outage list refused")
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].duration_s, 420);
    let log = s.audit_log(None, 20).unwrap();
    let actions: Vec<_> = log
        .iter()
        .filter(|e| e.actor == "operator:watch1")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "outage.record").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"admin.denied"), "{actions:?}");
}

#[test]
fn operator_logins_are_added_listed_and_removed_by_the_operator() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let add = |name: &str, password: &str| {
        AdminCommand::Operator(OperatorCmd::Add {
            name: name.into(),
            role: crate::store::OperatorRole::Monitor,
            password_file: None,
            password: NewPassword(password.into()),
        })
    };
    assert!(matches!(
        run(&mut s, &op(), add("watch1", "short")),
        Err(AdminError::PasswordPolicy(_))
    ));
    run(&mut s, &op(), add("watch1", "watch1 has a long password")).unwrap();
    let o = s.operator_by_name("watch1").unwrap().unwrap();
    assert!(crate::password::verify("watch1 has a long password", &o.password_hash));
    assert!(run(&mut s, &op(), add("watch1", "watch1 has a long password")).is_err());
    assert_eq!(
        rows(run(&mut s, &op(), AdminCommand::Operator(OperatorCmd::List)).unwrap())[0][..2],
        ["watch1".to_string(), "monitor".to_string()]
    );
    let remove = || AdminCommand::Operator(OperatorCmd::Remove { name: "watch1".into() });
    run(&mut s, &op(), remove()).unwrap();
    assert!(matches!(run(&mut s, &op(), remove()), Err(AdminError::NotFound(_))));
}

#[test]
fn an_administrator_turns_their_own_second_factor_on_and_off_and_the_operator_resets_it() {
    use crate::totp;
    let mut s = SqliteStore::open_in_memory().unwrap();
    add_contract(&mut s, "acme", 5);
    add_contract(&mut s, "globex", 5);
    let alice = admin_of(&mut s, "acme", "alice");
    let gina = admin_of(&mut s, "globex", "gina");
    let secret = totp::new_secret();
    let now_step = totp::step_of(crate::store::now() as u64);
    let code = |step| totp::code_at(&secret, step).unwrap();
    let on = |code: String| {
        AdminCommand::Account(AccountCmd::TotpOn {
            secret: api::TotpSecret(secret.clone()),
            code,
        })
    };
    let alice_totp = |s: &SqliteStore| s.account_by_name("alice").unwrap().unwrap().totp;

    // A wrong code stores nothing; the operator has no second factor of its own here.
    let wrong = format!("{:06}", (code(now_step).parse::<u32>().unwrap() + 1) % 1_000_000);
    assert!(matches!(run(&mut s, &alice, on(wrong)), Err(AdminError::Refused(_))));
    assert!(matches!(run(&mut s, &op(), on(code(now_step))), Err(AdminError::Refused(m)) if m.contains("totp-reset")));
    assert!(!alice_totp(&s));
    run(&mut s, &alice, on(code(now_step))).unwrap();
    assert!(alice_totp(&s));
    assert!(
        !s.account_by_name("gina").unwrap().unwrap().totp,
        "only the caller's own"
    );
    let log = s.audit_log(None, 100).unwrap();
    assert!(log
        .iter()
        .any(|r| r.action == "account.totp-on" && r.account.as_deref() == Some("alice")));
    assert!(
        !log.iter().any(|r| r.detail.contains(&secret)),
        "the secret is never logged"
    );

    // Off needs a code not used yet: the setup's is spent.
    let off = |code: String| AdminCommand::Account(AccountCmd::TotpOff { code });
    assert!(matches!(
        run(&mut s, &alice, off(code(now_step))),
        Err(AdminError::Refused(_))
    ));
    run(&mut s, &alice, off(code(now_step + 1))).unwrap();
    assert!(!alice_totp(&s));

    // Reset: the operator's only (a contract's administrator may not, not even their
    // own: a reset is for someone who cannot prove a code).
    run(&mut s, &alice, on(code(now_step + 1))).unwrap();
    let reset = |user: &str| AdminCommand::Account(AccountCmd::TotpReset { user: user.into() });
    assert!(matches!(
        run(&mut s, &gina, reset("alice")),
        Err(AdminError::Forbidden(_))
    ));
    assert!(matches!(
        run(&mut s, &alice, reset("alice")),
        Err(AdminError::Forbidden(_))
    ));
    assert!(alice_totp(&s));
    run(&mut s, &op(), reset("alice")).unwrap();
    assert!(!alice_totp(&s));
    assert!(
        matches!(run(&mut s, &op(), reset("alice")), Err(AdminError::Refused(_))),
        "nothing left to reset"
    );
    let log = s.audit_log(None, 100).unwrap();
    assert!(log
        .iter()
        .any(|r| r.action == "account.totp-off" && r.account.as_deref() == Some("alice")));
    assert!(log
        .iter()
        .any(|r| r.action == "account.totp-reset" && r.account.as_deref() == Some("alice")));
}
