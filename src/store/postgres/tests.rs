//! What only PostgreSQL makes interesting: several connections (hubs) on one database,
//! the change feed, a lost connection. The behaviour both stores share is tested in
//! `store::tests` on both.

use std::sync::{Arc, Barrier};

use super::PgStore;
use crate::store::pg_test::TestPg;
use crate::store::*;

impl PgStore {
    fn backend_pid(&self) -> i32 {
        self.with(|k| k.query_one("SELECT pg_backend_pid()", &[]))
            .unwrap()
            .get(0)
    }
}

/// The schema is SQLite's after all its migrations: the same tables with the same
/// columns (the rule at the top of both migration files), plus the bookkeeping.
#[test]
fn the_schema_has_the_tables_and_columns_of_sqlites() {
    let Some(mut db) = TestPg::from_env() else { return };
    let _store = db.open();
    let sqlite = SqliteStore::open_in_memory().unwrap();
    let mut expected: Vec<(String, String)> = sqlite
        .connection()
        .prepare(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    expected.sort();
    let mut got: Vec<(String, String)> = db
        .admin()
        .query(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name != 'schema_version'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(
        super::migrations::SQLITE_VERSION_OF_FIRST + super::migrations::MIGRATIONS.len() - 1,
        crate::store::migrations::MIGRATIONS.len(),
        "every SQLite migration after the first PostgreSQL one has its PostgreSQL twin"
    );
}

#[test]
fn the_audit_log_is_append_only() {
    let Some(mut db) = TestPg::from_env() else { return };
    let mut s = db.open();
    s.audit(&AuditEntry {
        actor: "operator",
        action: "test",
        detail: "x",
        ..Default::default()
    })
    .unwrap();
    for sql in ["UPDATE audit SET detail = 'y'", "DELETE FROM audit", "TRUNCATE audit"] {
        let e = db.admin().batch_execute(sql).unwrap_err();
        assert!(format!("{e:?}").contains("append-only"), "{sql}: {e:?}");
    }
    assert_eq!(s.audit_log(None, 10).unwrap()[0].detail, "x");
}

/// Two hubs opening the same empty database at once: the advisory lock makes one
/// migrate and the other find it done.
#[test]
fn hubs_starting_together_migrate_once() {
    let Some(db) = TestPg::from_env() else { return };
    let config = db.config();
    let start = Arc::new(Barrier::new(3));
    let opened: Vec<_> = (0..3)
        .map(|_| {
            let (config, start) = (config.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                PgStore::open_config(config).map(|_| ())
            })
        })
        .collect();
    for o in opened {
        o.join().unwrap().unwrap();
    }
    let mut s = db.open();
    s.contract_add(&NewContract::simple("acme", 1)).unwrap();
}

/// A renewal reminder queued by two hubs at the same moment is queued once.
#[test]
fn a_notice_once_from_two_connections_is_one_row() {
    let Some(db) = TestPg::from_env() else { return };
    let mut first = db.open();
    let c = first.contract_add(&NewContract::simple("acme", 1)).unwrap();
    for round in 0..20 {
        let key = format!("renewal:{round}");
        let start = Arc::new(Barrier::new(2));
        let hubs: Vec<_> = (0..2)
            .map(|_| {
                let (config, start, key) = (db.config(), start.clone(), key.clone());
                std::thread::spawn(move || {
                    let mut s = PgStore::open_config(config).unwrap();
                    start.wait();
                    s.notice_add_once(c.id, "renewal", &key, "subject", "body").unwrap()
                })
            })
            .collect();
        let queued: Vec<Option<i64>> = hubs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(queued.iter().flatten().count(), 1, "round {round}: {queued:?}");
    }
    assert_eq!(first.notices(Some(c.id), false).unwrap().len(), 20);
}

/// A suspension by one process (an admin command) moves the marker every other hub
/// polls; a login's own writes (session, last seen) do not.
#[test]
fn a_change_by_one_connection_moves_the_marker_the_other_sees() {
    let Some(db) = TestPg::from_env() else { return };
    let mut admin = db.open();
    let hub = db.open();
    let c = admin.contract_add(&NewContract::simple("acme", 1)).unwrap();
    let a = admin.account_add("acme", "alice", "h").unwrap();
    let d = admin
        .device_register(a.id, Role::Client, &Key32([1; 32]), "laptop", OverlayNet::default())
        .unwrap();
    let before = hub.external_change_marker().unwrap();
    let session = admin.session_start(d.id, "192.0.2.1:1", "hub-a", 0).unwrap();
    admin.device_touch(d.id).unwrap();
    admin.device_set_resume(d.id, Some(&[1, 2, 3]), Some(5)).unwrap();
    admin.session_end(session, "logout", 1, 2).unwrap();
    admin
        .audit(&AuditEntry {
            actor: "hub",
            action: "login.accepted",
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        hub.external_change_marker().unwrap(),
        before,
        "a login's writes are no change"
    );
    admin
        .contract_set_state(c.id, ContractState::Suspended, Some("unpaid"))
        .unwrap();
    let after = hub.external_change_marker().unwrap();
    assert!(after > before, "{before} -> {after}");
    admin.account_set_password(a.id, "new").unwrap();
    assert!(hub.external_change_marker().unwrap() > after);
}

/// PostgreSQL went away under a connection (restart, failover, an operator's
/// pg_terminate_backend): the store says it is unavailable, naming the server and not
/// the password, and works again at the next call once the server answers.
#[test]
fn a_lost_connection_is_unavailable_then_reconnects() {
    let Some(mut db) = TestPg::from_env() else { return };
    let mut s = db.open();
    s.contract_add(&NewContract::simple("acme", 1)).unwrap();
    let terminate = |db: &mut TestPg, pid: i32| {
        db.admin().execute("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    };

    // Inside a transaction: the rest of the change must not run on a new connection.
    s.begin().unwrap();
    s.set_setting("half", "1").unwrap();
    terminate(&mut db, s.backend_pid());
    let e = s.set_setting("other half", "1").unwrap_err();
    assert!(matches!(&e, StoreError::Unavailable(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.starts_with("the store (PostgreSQL at 127.0.0.1:"), "{text}");
    assert!(text.contains("is unavailable"), "{text}");
    assert!(
        matches!(s.setting("x"), Err(StoreError::Unavailable(_))),
        "still inside the lost transaction"
    );
    s.rollback().unwrap();
    assert_eq!(s.setting("half").unwrap(), None, "the lost transaction left nothing");
    assert_eq!(s.contract_by_name("acme").unwrap().name, "acme");

    // Outside one: at most the call that finds the connection dead fails.
    terminate(&mut db, s.backend_pid());
    match s.contracts() {
        Ok(c) => assert_eq!(c.len(), 1),
        Err(e) => assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}"),
    }
    assert_eq!(s.contracts().unwrap().len(), 1);
}

/// A server that does not answer: `Unavailable`, naming it without the URL's password.
#[test]
fn an_unreachable_server_is_named_without_the_password() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens there now
    let e = PgStore::open(&format!("postgres://hub:s3cret@127.0.0.1:{port}/mcvpn")).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(
        text.starts_with(&format!(
            "the store (PostgreSQL at 127.0.0.1:{port}/mcvpn) is unavailable: "
        )),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("refused"), "the cause is given: {text}");
    let bad = PgStore::open("postgres://hub:s3cret@127.0.0.1:notaport/mcvpn").unwrap_err();
    assert!(!bad.to_string().contains("s3cret"), "{bad}");
}

/// Three hubs asking for the jobs lease at the same moment: exactly one gets it, every
/// round (the calendar and the outbox run on one hub only).
#[test]
fn hubs_racing_for_a_lease_get_one_holder() {
    let Some(db) = TestPg::from_env() else { return };
    drop(db.open()); // migrated before the race
    for round in 0..20i64 {
        let name = format!("jobs-{round}");
        let start = Arc::new(Barrier::new(3));
        let hubs: Vec<_> = (0..3)
            .map(|i| {
                let (config, start, name) = (db.config(), start.clone(), name.clone());
                std::thread::spawn(move || {
                    let mut s = PgStore::open_config(config).unwrap();
                    start.wait();
                    s.lease_take(&name, &format!("hub-{i}"), 1_000, 30).unwrap()
                })
            })
            .collect();
        let won: Vec<bool> = hubs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "round {round}: {won:?}");
    }
}

/// TLS with the operator's CA (`sslrootcert`): the store opens, migrates and answers on
/// a server that takes TLS connections only.
#[test]
fn the_store_opens_over_tls_with_the_given_ca() {
    let Some((base, ca)) = crate::store::pg_test::tls_server_from_env() else {
        return;
    };
    let mut s = PgStore::open(&format!("{base}?sslmode=verify-full&sslrootcert={ca}")).expect("open over TLS");
    let name = format!("tls-{:08x}", rand::random::<u32>());
    s.contract_add(&NewContract::simple(&name, 1)).unwrap();
    assert!(s.contracts().unwrap().iter().any(|c| c.name == name));
}

/// Without `sslrootcert` the web PKI roots are used, and the test CA is not among them:
/// `Unavailable`, saying the certificate does not verify and what to give.
#[test]
fn a_certificate_the_roots_do_not_sign_is_refused_with_the_cause() {
    let Some((base, _ca)) = crate::store::pg_test::tls_server_from_env() else {
        return;
    };
    let e = PgStore::open(&format!("{base}?sslmode=verify-full")).unwrap_err();
    let text = e.to_string();
    eprintln!("{text}");
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    let host_port = base.rsplit_once('@').unwrap().1.split('/').next().unwrap();
    assert!(
        text.contains(&format!("the certificate of PostgreSQL at {host_port} does not verify")),
        "{text}"
    );
    assert!(text.contains("sslrootcert=FILE"), "{text}");
}

/// `sslmode=disable` against a server whose pg_hba.conf takes only `hostssl`: refused,
/// and the error says that the server wants TLS.
#[test]
fn plaintext_to_a_tls_only_server_is_refused_clearly() {
    let Some((base, _ca)) = crate::store::pg_test::tls_server_from_env() else {
        return;
    };
    let e = PgStore::open(&format!("{base}?sslmode=disable")).unwrap_err();
    let text = e.to_string();
    eprintln!("{text}");
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(
        text.contains("no encryption") && text.contains("takes only TLS connections"),
        "{text}"
    );
}

/// TLS asked of a server that has none (the plain test server): refused, never plaintext
/// instead, and the error names the way out.
#[test]
fn tls_to_a_server_without_tls_is_refused_with_the_opt_out() {
    let Ok(url) = std::env::var("MCVPN_TEST_PG") else {
        println!("skipped: MCVPN_TEST_PG not set");
        return;
    };
    let base = url.split_once('?').map_or(url.as_str(), |(b, _)| b);
    let e = PgStore::open(&format!("{base}?sslmode=require")).unwrap_err();
    let text = e.to_string();
    eprintln!("{text}");
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    assert!(
        text.contains("does not offer TLS") && text.contains("?sslmode=disable"),
        "{text}"
    );
}
