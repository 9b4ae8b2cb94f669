use super::*;
use crate::store::NewContract;
use std::net::Ipv4Addr;

fn store_with_account() -> (SqliteStore, AccountRecord) {
    let mut s = SqliteStore::open_in_memory().unwrap();
    s.contract_add(&NewContract::simple("acme", 10)).unwrap();
    let a = s.account_add("acme", "alice", "hash").unwrap();
    (s, a)
}

#[test]
fn accounts_and_devices() {
    let (mut s, alice) = store_with_account();
    assert_eq!(alice.contract, "acme");
    assert!(matches!(
        s.account_add("acme", "alice", "h"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.account_add("nope", "bob", "h"),
        Err(StoreError::NotFound(_))
    ));
    let net = OverlayNet::default();
    let t = s
        .device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net)
        .unwrap();
    let c = s
        .device_register(alice.id, Role::Client, &Key32([2; 32]), "laptop", net)
        .unwrap();
    assert_eq!(t.overlay_ip, Ipv4Addr::new(100, 64, 0, 1));
    assert_eq!(c.overlay_ip, Ipv4Addr::new(100, 64, 0, 2));
    assert!(matches!(
        s.device_register(alice.id, Role::Target, &Key32([1; 32]), "again", net),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.authorised_peers(&c).unwrap(), vec![t.clone()]);
    assert_eq!(s.authorised_peers(&t).unwrap(), vec![c.clone()]);
    assert_eq!(s.device_by_key(&Key32([1; 32]), Role::Target, None).unwrap(), Some(t));
    assert_eq!(s.device_by_key(&Key32([2; 32]), Role::Target, None).unwrap(), None);
}

#[test]
fn other_accounts_are_not_peers() {
    let (mut s, alice) = store_with_account();
    let bob = s.account_add("acme", "bob", "h").unwrap();
    let net = OverlayNet::default();
    s.device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net)
        .unwrap();
    let bob_laptop = s
        .device_register(bob.id, Role::Client, &Key32([3; 32]), "b", net)
        .unwrap();
    assert!(s.authorised_peers(&bob_laptop).unwrap().is_empty());
}

#[test]
fn overlay_allocation_fills_gaps_when_full() {
    let (mut s, alice) = store_with_account();
    let net = OverlayNet::parse("10.9.0.0/30").unwrap(); // two host addresses
    let a = s
        .device_register(alice.id, Role::Client, &Key32([1; 32]), "a", net)
        .unwrap();
    let _b = s
        .device_register(alice.id, Role::Client, &Key32([2; 32]), "b", net)
        .unwrap();
    assert!(matches!(
        s.device_register(alice.id, Role::Client, &Key32([3; 32]), "c", net),
        Err(StoreError::Refused(m)) if m.contains("no free address")
    ));
    s.device_remove(a.id).unwrap();
    let c = s
        .device_register(alice.id, Role::Client, &Key32([3; 32]), "c", net)
        .unwrap();
    assert_eq!(c.overlay_ip, Ipv4Addr::new(10, 9, 0, 1));
}

#[test]
fn audit_is_append_only() {
    let (mut s, _) = store_with_account();
    s.audit(&AuditEntry {
        actor: "operator",
        action: "test",
        detail: "x",
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.audit_log(None, 10).unwrap().len(), 1);
    assert!(s.connection().execute("UPDATE audit SET detail = 'y'", []).is_err());
    assert!(s.connection().execute("DELETE FROM audit", []).is_err());
}

#[test]
fn sessions_open_and_close() {
    let (mut s, alice) = store_with_account();
    let d = s
        .device_register(alice.id, Role::Client, &Key32([1; 32]), "a", OverlayNet::default())
        .unwrap();
    let id = s.session_start(d.id, "192.0.2.1:5000", "hub-a", 0).unwrap();
    assert_eq!(s.sessions(true, None).unwrap().len(), 1);
    assert_eq!(s.sessions(true, None).unwrap()[0].hub, "hub-a");
    s.session_end(id, "logout", 10, 20).unwrap();
    assert!(s.sessions(true, None).unwrap().is_empty());
    s.session_start(d.id, "x", "hub-a", 0).unwrap();
    s.session_start(d.id, "y", "hub-b", 0).unwrap();
    // A hub restarting closes its own leftovers, never another hub's live sessions.
    assert_eq!(s.sessions_close_stale("hub restarted", "hub-a").unwrap(), 1);
    let open = s.sessions(true, None).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].hub, "hub-b");
}

#[test]
fn the_sessions_of_a_silent_hub_are_closed_and_a_live_hubs_are_not() {
    let (mut s, alice) = store_with_account();
    let d = s
        .device_register(alice.id, Role::Client, &Key32([1; 32]), "a", OverlayNet::default())
        .unwrap();
    s.hub_heartbeat("hub-a", 1_000, "").unwrap();
    s.hub_heartbeat("hub-b", 1_000, "").unwrap();
    s.session_start(d.id, "x", "hub-a", 0).unwrap();
    s.session_start(d.id, "y", "hub-b", 0).unwrap();
    s.hub_heartbeat("hub-b", 1_020, "").unwrap(); // hub-a died at 1_000
    assert_eq!(
        s.sessions_close_of_silent_hubs("hub stopped answering", 1_010).unwrap(),
        1
    );
    let open = s.sessions(true, None).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].hub, "hub-b");
    assert_eq!(
        s.sessions_close_of_silent_hubs("hub stopped answering", 1_010).unwrap(),
        0
    );
}

#[test]
fn remote_sessions_are_the_open_sessions_of_the_other_live_hubs_in_the_mesh() {
    let (mut s, alice) = store_with_account();
    let dev = |s: &mut SqliteStore, k: u8| {
        s.device_register(
            alice.id,
            Role::Client,
            &Key32([k; 32]),
            &format!("d{k}"),
            OverlayNet::default(),
        )
        .unwrap()
    };
    let (d1, d2, d3, d4) = (dev(&mut s, 1), dev(&mut s, 2), dev(&mut s, 3), dev(&mut s, 4));
    s.hub_heartbeat("hub-a", 1_000, "192.0.2.1:51820").unwrap();
    s.hub_heartbeat("hub-b", 1_000, "192.0.2.11:51820").unwrap();
    s.hub_heartbeat("hub-c", 900, "192.0.2.12:51820").unwrap(); // silent
    s.hub_heartbeat("hub-d", 1_000, "").unwrap(); // not in the mesh
    s.session_start(d1.id, "x", "hub-a", 11).unwrap();
    s.session_start(d2.id, "x", "hub-b", 22).unwrap();
    s.session_start(d3.id, "x", "hub-c", 33).unwrap();
    s.session_start(d4.id, "x", "hub-d", 44).unwrap();
    let ended = s.session_start(d2.id, "x", "hub-b", 23).unwrap();
    s.session_end(ended, "gone", 0, 0).unwrap();
    let remote = s.remote_sessions("hub-a", 950).unwrap();
    assert_eq!(
        remote,
        vec![RemoteSession {
            device_id: d2.id,
            boot_id: 22,
            relay_addr: "192.0.2.11:51820".into()
        }]
    );
}

#[test]
fn a_lease_has_one_holder_until_it_expires() {
    let (mut s, _) = store_with_account();
    assert!(s.lease_take("jobs", "hub-a", 1_000, 30).unwrap());
    assert!(
        !s.lease_take("jobs", "hub-b", 1_010, 30).unwrap(),
        "hub-a holds it until 1030"
    );
    assert!(s.lease_take("jobs", "hub-a", 1_020, 30).unwrap(), "the holder renews");
    assert!(!s.lease_take("jobs", "hub-b", 1_049, 30).unwrap(), "renewed until 1050");
    assert!(
        s.lease_take("jobs", "hub-b", 1_051, 30).unwrap(),
        "expired: another takes it"
    );
    assert!(!s.lease_take("jobs", "hub-a", 1_052, 30).unwrap());
    assert!(s.lease_take("other", "hub-a", 1_052, 30).unwrap(), "leases are by name");
}

#[test]
fn overlay_net_parse() {
    let n = OverlayNet::parse("100.64.1.7/10").unwrap();
    assert_eq!(n, OverlayNet::default());
    assert!(n.contains(Ipv4Addr::new(100, 127, 255, 254)));
    assert!(!n.contains(Ipv4Addr::new(100, 128, 0, 1)));
    assert!(OverlayNet::parse("garbage").is_none());
    assert!(OverlayNet::parse("10.0.0.0/31").is_none());
}

#[test]
fn grants_extend_peers_both_ways() {
    let (mut s, alice) = store_with_account();
    let bob = s.account_add("acme", "bob", "h").unwrap();
    let net = OverlayNet::default();
    let pc = s
        .device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net)
        .unwrap();
    let bob_laptop = s
        .device_register(bob.id, Role::Client, &Key32([3; 32]), "b", net)
        .unwrap();
    assert!(s.authorised_peers(&bob_laptop).unwrap().is_empty());
    s.grant_add(pc.id, bob.id).unwrap();
    assert_eq!(s.authorised_peers(&bob_laptop).unwrap(), vec![pc.clone()]);
    assert_eq!(s.authorised_peers(&pc).unwrap(), vec![bob_laptop.clone()]);
    assert_eq!(s.grants(Some(alice.contract_id)).unwrap().len(), 1);
    assert!(s.grant_remove(pc.id, bob.id).unwrap());
    assert!(s.authorised_peers(&bob_laptop).unwrap().is_empty());
}

#[test]
fn contract_changes_are_recorded_with_who_and_when() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let c = s.contract_add(&NewContract::simple("acme", 5)).unwrap();
    assert_eq!(s.terms(c.id).unwrap().len(), 1);
    let old = s
        .contract_update(c.id, ContractField::Address, "1-1 Chiyoda", "operator")
        .unwrap();
    assert_eq!(old, "");
    s.contract_update(c.id, ContractField::AdminEmail, "it@acme.example", "operator")
        .unwrap();
    let h = s.contract_history(c.id).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].field.as_str(), h[0].new_value.as_str(), h[0].actor.as_str()),
        ("address", "1-1 Chiyoda", "operator")
    );
    assert_eq!(s.contract_by_id(c.id).unwrap().admin_email, "it@acme.example");
    s.contract_add(&NewContract::simple("globex", 5)).unwrap();
    assert!(matches!(
        s.contract_update(c.id, ContractField::Name, "globex", "operator"),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn additional_terms_cancellation_notices_settings() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let c = s.contract_add(&NewContract::simple("acme", 5)).unwrap();
    let d = chrono::NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
    s.term_add(c.id, d, 3).unwrap();
    let terms = s.terms(c.id).unwrap();
    assert_eq!(
        (terms[0].kind, terms[1].kind, terms[1].accounts),
        (TermKind::Basic, TermKind::Additional, 3)
    );
    let cancel = CancellationRecord {
        received: d,
        requested_end: None,
        effective: chrono::NaiveDate::from_ymd_opt(2027, 4, 30).unwrap(),
        actor: "operator".into(),
        created_at: 0,
    };
    s.cancellation_set(c.id, &cancel).unwrap();
    assert_eq!(s.cancellation(c.id).unwrap(), Some(cancel));
    let id = s.notice_add(c.id, "suspension", "subject", "body").unwrap();
    assert_eq!(s.notices(None, true).unwrap().len(), 1);
    s.notice_mark(id, false, Some("connection refused")).unwrap();
    assert_eq!(s.notices(None, true).unwrap()[0].attempts, 1);
    s.notice_mark(id, true, None).unwrap();
    assert!(s.notices(None, true).unwrap().is_empty());
    assert_eq!(s.setting("min_accounts").unwrap(), None);
    s.set_setting("min_accounts", "3").unwrap();
    s.set_setting("min_accounts", "4").unwrap();
    assert_eq!(s.setting("min_accounts").unwrap().as_deref(), Some("4"));
}

#[test]
fn migration_from_version_1_keeps_contracts_and_gives_them_a_basic_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(migrations::MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.execute("INSERT INTO contracts (name, created_at) VALUES ('old', 0)", [])
            .unwrap();
        tx.execute(
            "INSERT INTO accounts (contract_id, username, password_hash, created_at) VALUES (1, 'u1', 'h', 0)",
            [],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO accounts (contract_id, username, password_hash, created_at) VALUES (1, 'u2', 'h', 0)",
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let c = s.contract_by_name("old").unwrap();
    let terms = s.terms(c.id).unwrap();
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].accounts, 2);
    assert_eq!(terms[0].start, chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
}

#[test]
fn a_new_store_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/hub.db");
    SqliteStore::open(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "hub.db holds password hashes and personal data");
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    for side in ["hub.db-wal", "hub.db-shm"] {
        let p = path.with_file_name(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
}

/// C6: an account registers at most its contract's device limit of client devices
/// (default 10); targets do not count.
#[test]
fn client_devices_are_limited_per_account() {
    let (mut s, alice) = store_with_account();
    let net = OverlayNet::default();
    s.device_register(alice.id, Role::Target, &Key32([200; 32]), "pc", net)
        .unwrap();
    for i in 0..10u8 {
        s.device_register(alice.id, Role::Client, &Key32([i; 32]), "laptop", net)
            .unwrap();
    }
    let r = s.device_register(alice.id, Role::Client, &Key32([10; 32]), "one-too-many", net);
    assert!(r.is_err(), "the 11th client device is refused");
    assert!(matches!(&r, Err(StoreError::DeviceLimit { limit: 10, .. })), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("mcvpn admin device remove"));
}

/// Migration 4: sessions recorded before it keep their device's name and account, and
/// existing contracts get the default device limit.
#[test]
fn migration_to_version_4_keeps_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        let tx = conn.transaction().unwrap();
        for m in &migrations::MIGRATIONS[..3] {
            tx.execute_batch(m).unwrap();
        }
        tx.pragma_update(None, "user_version", 3).unwrap();
        tx.execute_batch(
            "INSERT INTO contracts (name, created_at) VALUES ('old', 0);
             INSERT INTO accounts (contract_id, username, password_hash, created_at) VALUES (1, 'u1', 'h', 0);
             INSERT INTO devices (account_id, role, public_key, name, overlay_ip, created_at)
                 VALUES (1, 'client', x'0101010101010101010101010101010101010101010101010101010101010101', 'lap', 1684013313, 0);
             INSERT INTO sessions (device_id, source, started_at, ended_at, end_reason, bytes_in, bytes_out)
                 VALUES (1, '192.0.2.1:1', 10, 20, 'logout', 5, 6);",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.contract_by_name("old").unwrap().device_limit, 10);
    let old = s.sessions(false, None).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(
        (
            old[0].device.as_str(),
            old[0].account.as_str(),
            old[0].device_id,
            old[0].bytes_out
        ),
        ("lap", "u1", Some(1), 6)
    );
    assert_eq!(old[0].overlay_ip, Ipv4Addr::new(100, 96, 1, 1));
    s.device_remove(1).unwrap();
    assert_eq!(s.sessions(false, None).unwrap()[0].device_id, None);
}

/// `atomically` commits on `Ok` and leaves nothing on `Err` or a panic, and the store
/// works on afterwards; savepoints inside it (contract add) nest.
#[test]
fn atomically_commits_or_leaves_nothing() {
    use crate::store::atomically;
    let mut s = SqliteStore::open_in_memory().unwrap();
    let r: Result<(), StoreError> = atomically(&mut s, |s| {
        s.set_setting("a", "1")?;
        Err(StoreError::Refused("no".into()))
    });
    assert!(r.is_err());
    assert_eq!(s.setting("a").unwrap(), None);

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: Result<(), StoreError> = atomically(&mut s, |s| {
            s.set_setting("b", "1").unwrap();
            panic!("a bug half way through a change")
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(s.setting("b").unwrap(), None);

    atomically(&mut s, |s| {
        s.set_setting("c", "1")?;
        s.contract_add(&NewContract::simple("acme", 5)).map(|_| ())
    })
    .unwrap();
    assert_eq!(s.setting("c").unwrap().as_deref(), Some("1"));
    assert_eq!(s.terms(s.contract_by_name("acme").unwrap().id).unwrap().len(), 1);
}

/// A backup taken while another connection writes is a checked, self-contained copy
/// (0600); a restore brings it back; a damaged or foreign file is refused and leaves
/// the store as it was.
#[test]
fn backup_and_restore_round_trip() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let mut s = SqliteStore::open(&db).unwrap();
    s.set_setting("k", "before").unwrap();
    let mut writer = SqliteStore::open(&db).unwrap();
    writer.begin().unwrap();
    writer.set_setting("uncommitted", "x").unwrap();
    let copy = dir.path().join("copy.db");
    s.backup_to(&copy).unwrap();
    writer.rollback().unwrap();
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!dir.path().join("copy.db-wal").exists(), "the copy must be one file");

    s.set_setting("k", "after").unwrap();
    drop((s, writer));
    SqliteStore::restore_from(&db, &copy).unwrap();
    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(s.setting("k").unwrap().as_deref(), Some("before"));
    assert_eq!(s.setting("uncommitted").unwrap(), None);
    drop(s);

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just some bytes of text").unwrap();
    assert!(SqliteStore::restore_from(&db, &junk).is_err());
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let e = SqliteStore::restore_from(&db, &foreign).unwrap_err();
    assert!(e.to_string().contains("not an mcvpn store"), "{e}");
    assert!(SqliteStore::restore_from(&db, &dir.path().join("missing.db")).is_err());
    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(s.setting("k").unwrap().as_deref(), Some("before"));
}

/// Issue 13: every login reads the device's peers, and every store change re-reads them
/// for every live session. Before the `devices_by_account` index each read scanned the
/// whole devices table (`SCAN d`): at 10,000 devices the refresh after a suspension took
/// 2.5 s.
#[test]
fn peers_are_read_through_an_index() {
    let (s, _) = store_with_account();
    for role in [Role::Client, Role::Target] {
        let sql = format!("EXPLAIN QUERY PLAN {}", super::devices::peers_sql(role));
        let mut stmt = s.conn.prepare(&sql).unwrap();
        let params: &[&dyn rusqlite::ToSql] = match role {
            Role::Client => &[&1],
            Role::Target => &[&1, &1],
        };
        let plan: Vec<String> = stmt
            .query_map(params, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !plan.iter().any(|l| l.starts_with("SCAN")),
            "{role:?} peers scan a table: {plan:?}"
        );
    }
}

#[test]
fn operator_logins_are_apart_from_accounts() {
    let (mut s, _) = store_with_account();
    let m = s.operator_add("watch1", OperatorRole::Monitor, "h1").unwrap();
    assert_eq!((m.name.as_str(), m.role), ("watch1", OperatorRole::Monitor));
    assert!(matches!(
        s.operator_add("watch1", OperatorRole::Operator, "h2"),
        Err(StoreError::Conflict(_))
    ));
    // An operator login of the same name as a contract account is another login.
    s.operator_add("alice", OperatorRole::Operator, "h3").unwrap();
    assert_eq!(s.account_by_name("alice").unwrap().unwrap().password_hash, "hash");
    let names: Vec<_> = s.operators().unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["alice", "watch1"]);
    assert!(s.operator_remove("watch1").unwrap());
    assert!(!s.operator_remove("watch1").unwrap());
    assert_eq!(s.operator_by_name("watch1").unwrap(), None);
}

#[test]
fn an_outage_is_recorded_once_per_source_and_start() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    let first = s.outage_record("monitor:m1", 1000, 1100).unwrap();
    let OutageRecorded::Added(id) = first else {
        panic!("{first:?}")
    };
    // A retry after a lost answer: nothing new.
    assert_eq!(
        s.outage_record("monitor:m1", 1000, 1100).unwrap(),
        OutageRecorded::Unchanged(id)
    );
    // An earlier end does not shorten it; a later one extends it.
    assert_eq!(
        s.outage_record("monitor:m1", 1000, 1050).unwrap(),
        OutageRecorded::Unchanged(id)
    );
    assert_eq!(
        s.outage_record("monitor:m1", 1000, 1200).unwrap(),
        OutageRecorded::Extended(id)
    );
    // Another monitor seeing the same outage records its own row.
    assert!(matches!(
        s.outage_record("monitor:m2", 1000, 1100).unwrap(),
        OutageRecorded::Added(other) if other != id
    ));
    assert!(matches!(
        s.outage_record("monitor:m1", 1000, 900),
        Err(StoreError::Refused(_))
    ));
    // Typed-in outages (no source) are never merged.
    s.outage_add(1000, 1100, "by hand").unwrap();
    s.outage_add(1000, 1100, "by hand").unwrap();
    let rows = s.outages().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].end_at, 1200);
    assert_eq!(rows[0].source.as_deref(), Some("monitor:m1"));
}

#[test]
fn a_second_factor_step_is_accepted_once_and_never_an_older_one() {
    let (mut s, a) = store_with_account();
    assert!(!a.totp);
    assert_eq!(s.account_totp(a.id).unwrap(), None);
    assert!(
        !s.account_totp_use_step(a.id, 5).unwrap(),
        "no second factor, nothing to use"
    );

    s.account_set_totp(a.id, Some(("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 10)))
        .unwrap();
    assert!(s.account_by_id(a.id).unwrap().totp);
    let t = s.account_totp(a.id).unwrap().unwrap();
    assert_eq!(t.secret, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    assert_eq!(t.last_step, Some(10));
    assert!(!format!("{t:?}").contains("JBSW"), "Debug hides the secret");

    assert!(!s.account_totp_use_step(a.id, 10).unwrap(), "the step used at setup");
    assert!(!s.account_totp_use_step(a.id, 9).unwrap(), "older");
    assert!(s.account_totp_use_step(a.id, 11).unwrap());
    assert!(!s.account_totp_use_step(a.id, 11).unwrap(), "replayed");
    assert_eq!(s.account_totp(a.id).unwrap().unwrap().last_step, Some(11));

    s.account_set_totp(a.id, None).unwrap();
    assert!(!s.account_by_id(a.id).unwrap().totp);
    assert_eq!(s.account_totp(a.id).unwrap(), None);
    assert!(s.account_totp(999).is_err());
}
