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
fn overlay_net_parse() {
    let n = OverlayNet::parse("100.64.1.7/10").unwrap();
    assert_eq!(n, OverlayNet::default());
    assert!(n.contains(Ipv4Addr::new(100, 127, 255, 254)));
    assert!(!n.contains(Ipv4Addr::new(100, 128, 0, 1)));
    assert!(OverlayNet::parse("garbage").is_none());
    assert!(OverlayNet::parse("10.0.0.0/31").is_none());
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
