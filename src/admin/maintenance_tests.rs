//! Planned maintenance (art. 34-2) and what it takes out of compensation (art. 35), on a
//! real SQLite store with the contract job run day by day.

use chrono::{NaiveDate, NaiveDateTime};

use super::api::{MaintenanceCmd, OutageCmd, TariffCmd};
use super::render::{self, Text};
use super::*;
use crate::store::prelude::*;
use crate::store::SqliteStore;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

/// Noon in Tokyo on `day`, as the store's clock.
fn noon(day: NaiveDate) -> i64 {
    crate::contract::tz::local_to_utc(crate::contract::operator_tz(), day.and_hms_opt(12, 0, 0).unwrap()).timestamp()
}

fn op() -> ExecCtx {
    ExecCtx::operator(crate::store::today())
}

fn run(s: &mut SqliteStore, cmd: AdminCommand) -> AdminResult {
    execute(s, &op(), &prepare(cmd))
}

fn contract(s: &mut SqliteStore, name: &str) {
    run(
        s,
        AdminCommand::Contract(ContractCmd::Add(ContractSpec {
            name: name.into(),
            kind: "corporation".into(),
            accounts: 10,
            start: Some(d(2026, 11, 24)),
            admin_name: "Sato".into(),
            admin_email: format!("it@{name}.example"),
            address: String::new(),
            phone: String::new(),
            department: String::new(),
            sales_agent: None,
        })),
    )
    .unwrap();
}

fn window(s: &mut SqliteStore, start: &str, end: &str, emergency: bool) -> AdminResult {
    run(
        s,
        AdminCommand::Maintenance(MaintenanceCmd::Add {
            start: at(start),
            end: at(end),
            reason: "ハブの更新 / hub upgrade".into(),
            emergency,
            notice_days: 7,
        }),
    )
}

/// (contract, kind, to) of every notice about maintenance, in order.
fn maintenance_notices(s: &SqliteStore) -> Vec<(String, String, String)> {
    s.notices(None, false)
        .unwrap()
        .into_iter()
        .filter(|n| n.kind.starts_with("maintenance"))
        .map(|n| (n.contract, n.kind, n.to_email))
        .collect()
}

fn two_contracts() -> SqliteStore {
    let mut s = SqliteStore::open_in_memory().unwrap();
    contract(&mut s, "acme");
    contract(&mut s, "beta");
    s
}

#[test]
fn each_administrator_gets_one_notice_seven_days_ahead_and_one_reminder() {
    let mut s = two_contracts();
    let added = window(&mut s, "2027-03-20T02:00:00", "2027-03-20T05:00:00", false).unwrap();
    let Text::Message(m) = render::text(&added) else {
        panic!()
    };
    assert!(m.contains("notified on 2027-03-13, a reminder on 2027-03-19"), "{m}");
    for day in [d(2027, 3, 11), d(2027, 3, 12)] {
        apply_due(&mut s, noon(day), day).unwrap();
    }
    assert!(
        maintenance_notices(&s).is_empty(),
        "nothing before the seventh day ahead"
    );
    for day in [d(2027, 3, 13), d(2027, 3, 13), d(2027, 3, 14), d(2027, 3, 18)] {
        apply_due(&mut s, noon(day), day).unwrap();
    }
    let after_notice = maintenance_notices(&s);
    assert_eq!(
        after_notice,
        vec![
            ("acme".into(), "maintenance".into(), "it@acme.example".into()),
            ("beta".into(), "maintenance".into(), "it@beta.example".into()),
        ]
    );
    for day in [d(2027, 3, 19), d(2027, 3, 19), d(2027, 3, 20), d(2027, 3, 21)] {
        apply_due(&mut s, noon(day), day).unwrap();
    }
    let kinds: Vec<_> = maintenance_notices(&s)
        .into_iter()
        .map(|(c, k, _)| format!("{c} {k}"))
        .collect();
    assert_eq!(
        kinds,
        [
            "acme maintenance",
            "beta maintenance",
            "acme maintenance-reminder",
            "beta maintenance-reminder"
        ]
    );
    let notice = &s.notices(None, false).unwrap()[0];
    assert!(
        notice.subject.contains("メンテナンス") && notice.body.contains("第34条"),
        "{}",
        notice.body
    );
    assert!(notice.body.contains("2027-03-20 02:00:00 +09:00"), "{}", notice.body);
    assert!(!notice.body.contains("緊急"), "not an emergency: {}", notice.body);
}

#[test]
fn an_emergency_window_is_announced_at_once_and_says_so() {
    let mut s = two_contracts();
    window(&mut s, "2027-03-20T02:00:00", "2027-03-20T05:00:00", true).unwrap();
    apply_due(&mut s, crate::store::now(), crate::store::today()).unwrap();
    let n = s.notices(None, false).unwrap();
    let m: Vec<_> = n.iter().filter(|n| n.kind == "maintenance").collect();
    assert_eq!(m.len(), 2);
    assert!(
        m[0].subject.contains("緊急") && m[0].subject.contains("Emergency"),
        "{}",
        m[0].subject
    );
    assert!(m[0].body.contains("ただし書"), "{}", m[0].body);
}

#[test]
fn a_cancelled_window_tells_those_told_and_no_longer_excludes() {
    let mut s = two_contracts();
    window(&mut s, "2027-03-20T02:00:00", "2027-03-20T05:00:00", false).unwrap();
    apply_due(&mut s, noon(d(2027, 3, 13)), d(2027, 3, 13)).unwrap();
    let out = run(&mut s, AdminCommand::Maintenance(MaintenanceCmd::Cancel { id: 1 })).unwrap();
    let Text::Message(m) = render::text(&out) else { panic!() };
    assert!(m.contains("2 administrator(s)"), "{m}");
    let again = run(&mut s, AdminCommand::Maintenance(MaintenanceCmd::Cancel { id: 1 }));
    assert!(matches!(again, Err(AdminError::Refused(_))), "{again:?}");
    apply_due(&mut s, noon(d(2027, 3, 19)), d(2027, 3, 19)).unwrap();
    let kinds: Vec<_> = maintenance_notices(&s).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "maintenance",
            "maintenance",
            "maintenance-cancelled",
            "maintenance-cancelled"
        ],
        "no reminder for a cancelled window"
    );
    let Output::Maintenance(rows) = run(&mut s, AdminCommand::Maintenance(MaintenanceCmd::List)).unwrap() else {
        panic!()
    };
    assert_eq!(rows[0].state, "cancelled");
}

#[test]
fn a_window_that_ended_or_ends_before_it_starts_is_refused() {
    let mut s = two_contracts();
    assert!(matches!(
        window(&mut s, "2020-03-20T02:00:00", "2020-03-20T05:00:00", false),
        Err(AdminError::Refused(_))
    ));
    assert!(matches!(
        window(&mut s, "2027-03-20T05:00:00", "2027-03-20T02:00:00", false),
        Err(AdminError::Refused(_))
    ));
    let long = "x".repeat(201);
    let r = run(
        &mut s,
        AdminCommand::Maintenance(MaintenanceCmd::Add {
            start: at("2027-03-20T02:00:00"),
            end: at("2027-03-20T05:00:00"),
            reason: long,
            emergency: false,
            notice_days: 7,
        }),
    );
    assert!(matches!(r, Err(AdminError::Refused(_))));
}

fn outage(s: &mut SqliteStore, start: &str, end: &str) {
    run(
        s,
        AdminCommand::Outage(OutageCmd::Add {
            start: at(start),
            end: at(end),
            note: String::new(),
        }),
    )
    .unwrap();
}

fn compensation(s: &mut SqliteStore) -> api::CompensationReport {
    let cmd = AdminCommand::Compensation {
        contract: "acme".into(),
        statement: false,
        send: false,
    };
    let Output::Compensation(r) = run(s, cmd).unwrap() else {
        panic!()
    };
    r
}

fn tariff(s: &mut SqliteStore) {
    run(
        s,
        AdminCommand::Tariff(TariffCmd::Set {
            initial_fee: None,
            annual_fee: Some(12_000),
            tax_rate_bp: None,
        }),
    )
    .unwrap();
}

#[test]
fn a_130_hour_outage_is_five_days_and_the_statement_says_so() {
    let mut s = two_contracts();
    tariff(&mut s);
    // 130 h from 09:00 on 1 March: five whole 24 h days (art. 35-2).
    outage(&mut s, "2027-03-01T09:00:00", "2027-03-06T19:00:00");
    let r = compensation(&mut s);
    // 10 accounts × ¥12,000 a year = ¥120,000; × 5 / 365 = ¥1,643.8 → ¥1,643.
    assert_eq!((r.compensable_days, r.annual_fee, r.compensation), (5, 120_000, 1_643));
    assert_eq!(r.counted.len(), 1);
    let cmd = AdminCommand::Compensation {
        contract: "acme".into(),
        statement: true,
        send: false,
    };
    let Output::Document(doc) = run(&mut s, cmd).unwrap() else {
        panic!()
    };
    for text in [
        "第35条",
        "2027-03-01 09:00:00 +09:00",
        "130.0時間 → 5日",
        "賠償額: ¥1,643",
        "art. 35",
        "Compensation: ¥1,643",
    ] {
        assert!(doc.content.contains(text), "{text:?} missing from\n{}", doc.content);
    }
    let cmd = AdminCommand::Compensation {
        contract: "acme".into(),
        statement: false,
        send: true,
    };
    run(&mut s, cmd).unwrap();
    let sent = s.notices(None, false).unwrap();
    let statement = sent
        .iter()
        .find(|n| n.kind == "compensation")
        .expect("statement queued");
    assert_eq!(statement.to_email, "it@acme.example");
    assert!(statement.body.contains("¥1,643"));
}

#[test]
fn an_outage_inside_a_maintenance_window_earns_nothing() {
    let mut s = two_contracts();
    tariff(&mut s);
    // The whole outage within an announced window.
    window(&mut s, "2027-03-20T00:00:00", "2027-03-27T00:00:00", false).unwrap();
    outage(&mut s, "2027-03-20T01:00:00", "2027-03-26T01:00:00"); // 144 h
    let r = compensation(&mut s);
    assert_eq!((r.compensable_days, r.compensation), (0, 0));
    assert_eq!(r.maintenance_excluded_s, 144 * 3600);
    // A window in the middle of a 168 h outage leaves 48 h and 117 h: nothing either.
    outage(&mut s, "2027-04-01T00:00:00", "2027-04-08T00:00:00");
    window(&mut s, "2027-04-03T00:00:00", "2027-04-03T03:00:00", false).unwrap();
    assert_eq!(compensation(&mut s).compensation, 0);
    // Cancel that window: the 168 h outage is 7 days again.
    run(&mut s, AdminCommand::Maintenance(MaintenanceCmd::Cancel { id: 2 })).unwrap();
    let r = compensation(&mut s);
    assert_eq!(r.compensable_days, 7);
    assert_eq!(r.compensation, 120_000 * 7 / 365);
}

#[test]
fn the_login_banner_shows_the_window_in_progress_or_the_next_within_a_week() {
    let mut s = two_contracts();
    window(&mut s, "2027-03-20T02:00:00", "2027-03-20T05:00:00", false).unwrap();
    let start = noon(d(2027, 3, 20)) - 10 * 3600; // 02:00 JST
    assert!(maintenance_banner(&s, start - 8 * 24 * 3600).unwrap().is_none());
    let before = maintenance_banner(&s, start - 3600).unwrap().expect("within a week");
    let line = before.line(start - 3600).unwrap();
    assert!(
        line.contains("予定") && line.contains("2027-03-20 05:00:00 +09:00"),
        "{line}"
    );
    let during = before.line(start + 60).unwrap();
    assert!(
        during.contains("実施中") && during.contains("until 2027-03-20 05:00:00 +09:00"),
        "{during}"
    );
    assert!(before.line(start + 3 * 3600).is_none(), "no banner once it ended");
    assert!(maintenance_banner(&s, start + 3 * 3600).unwrap().is_none());
}
