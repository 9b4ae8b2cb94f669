//! Versioned schema migrations. `PRAGMA user_version` records how many have run; each
//! migration runs in its own transaction, so a crash leaves the store at a version
//! boundary. Never edit a migration that has shipped: append a new one.

use rusqlite::Connection;

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: contracts, accounts, devices, sessions, audit.
    r#"
    CREATE TABLE contracts (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active','suspended','terminated','cancelled')),
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE accounts (
        id             INTEGER PRIMARY KEY,
        contract_id    INTEGER NOT NULL REFERENCES contracts(id),
        username       TEXT NOT NULL UNIQUE,
        password_hash  TEXT NOT NULL,
        state          TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active','locked')),
        created_at     INTEGER NOT NULL
    );
    CREATE TABLE devices (
        id              INTEGER PRIMARY KEY,
        account_id      INTEGER NOT NULL REFERENCES accounts(id),
        role            TEXT NOT NULL CHECK (role IN ('client','target')),
        public_key      BLOB NOT NULL,
        name            TEXT NOT NULL,
        overlay_ip      INTEGER NOT NULL UNIQUE,
        resume_hash     BLOB,
        resume_expires  INTEGER,
        created_at      INTEGER NOT NULL,
        last_seen       INTEGER,
        UNIQUE (account_id, role, public_key)
    );
    CREATE INDEX devices_by_key ON devices(public_key);
    CREATE TABLE sessions (
        id          INTEGER PRIMARY KEY,
        device_id   INTEGER NOT NULL REFERENCES devices(id),
        source      TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        ended_at    INTEGER,
        end_reason  TEXT
    );
    CREATE INDEX sessions_open ON sessions(ended_at);
    CREATE TABLE audit (
        id           INTEGER PRIMARY KEY,
        at           INTEGER NOT NULL,
        actor        TEXT NOT NULL,
        action       TEXT NOT NULL,
        contract_id  INTEGER,
        account      TEXT,
        source       TEXT,
        detail       TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_by_contract ON audit(contract_id, id);
    -- The audit log is append-only: the store refuses to rewrite history.
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
];

/// Runs every migration the store has not seen yet.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current as usize > MIGRATIONS.len() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the store is at schema version {current}, newer than this mcvpn ({}); upgrade mcvpn",
                MIGRATIONS.len()
            )),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store migrated");
    }
    Ok(MIGRATIONS.len() as u32)
}
