//! Versioned schema migrations. `PRAGMA user_version` records how many have run; each
//! migration runs in its own transaction, so a crash leaves the store at a version
//! boundary. Never edit a migration that has shipped: append a new one.
//!
//! PostgreSQL (`store::postgres::migrations`) has the same schema in its dialect: its
//! migration 1 equals SQLite's 1 to 9; every SQLite migration from 10 on gets exactly one
//! PostgreSQL twin appended there, in order (a test compares the tables and columns).

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
    // 2: the contract model of the service terms (issue 3): contract details and
    // administrator, basic/additional contracts, change history, cancellations,
    // device binding, grants, notices, outages, settings, session byte counts.
    r#"
    ALTER TABLE contracts ADD COLUMN kind TEXT NOT NULL DEFAULT 'corporation'
        CHECK (kind IN ('corporation','public-body'));
    ALTER TABLE contracts ADD COLUMN state_reason TEXT;
    ALTER TABLE contracts ADD COLUMN address TEXT NOT NULL DEFAULT '';
    ALTER TABLE contracts ADD COLUMN phone TEXT NOT NULL DEFAULT '';
    ALTER TABLE contracts ADD COLUMN department TEXT NOT NULL DEFAULT '';
    ALTER TABLE contracts ADD COLUMN sales_agent TEXT;
    ALTER TABLE contracts ADD COLUMN admin_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE contracts ADD COLUMN admin_email TEXT NOT NULL DEFAULT '';
    ALTER TABLE contracts ADD COLUMN admin_account_id INTEGER REFERENCES accounts(id);
    ALTER TABLE contracts ADD COLUMN terminate_at INTEGER;
    CREATE TABLE contract_terms (
        id           INTEGER PRIMARY KEY,
        contract_id  INTEGER NOT NULL REFERENCES contracts(id),
        kind         TEXT NOT NULL CHECK (kind IN ('basic','additional')),
        start_date   TEXT NOT NULL,
        accounts     INTEGER NOT NULL CHECK (accounts > 0),
        created_at   INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX one_basic_term ON contract_terms(contract_id) WHERE kind = 'basic';
    -- Contracts that existed before: a basic contract covering their accounts.
    INSERT INTO contract_terms (contract_id, kind, start_date, accounts, created_at)
        SELECT c.id, 'basic', date(c.created_at, 'unixepoch'),
               MAX(1, (SELECT COUNT(*) FROM accounts a WHERE a.contract_id = c.id)), c.created_at
        FROM contracts c;
    CREATE TABLE contract_history (
        id           INTEGER PRIMARY KEY,
        contract_id  INTEGER NOT NULL REFERENCES contracts(id),
        at           INTEGER NOT NULL,
        actor        TEXT NOT NULL,
        field        TEXT NOT NULL,
        old_value    TEXT NOT NULL,
        new_value    TEXT NOT NULL
    );
    CREATE TABLE cancellations (
        contract_id    INTEGER PRIMARY KEY REFERENCES contracts(id),
        received       TEXT NOT NULL,
        requested_end  TEXT,
        effective      TEXT NOT NULL,
        actor          TEXT NOT NULL,
        created_at     INTEGER NOT NULL
    );
    ALTER TABLE accounts ADD COLUMN device_binding INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE grants (
        target_device_id  INTEGER NOT NULL REFERENCES devices(id),
        account_id        INTEGER NOT NULL REFERENCES accounts(id),
        created_at        INTEGER NOT NULL,
        PRIMARY KEY (target_device_id, account_id)
    );
    CREATE TABLE notices (
        id           INTEGER PRIMARY KEY,
        contract_id  INTEGER NOT NULL REFERENCES contracts(id),
        to_email     TEXT NOT NULL,
        kind         TEXT NOT NULL,
        subject      TEXT NOT NULL,
        body         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        sent_at      INTEGER,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT
    );
    CREATE TABLE outages (
        id        INTEGER PRIMARY KEY,
        start_at  INTEGER NOT NULL,
        end_at    INTEGER NOT NULL CHECK (end_at >= start_at),
        note      TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    ALTER TABLE sessions ADD COLUMN bytes_in INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN bytes_out INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: issue 16. The last day of a terminated contract (nothing is invoiced after it,
    // art. 24); a termination waiting for its notice to be sent (art. 24-3: five days
    // from sending); notices a mail server refused for good (art. 23-1(4)); one
    // reminder per term whatever the contract is renamed to.
    r#"
    ALTER TABLE contracts ADD COLUMN ended_on TEXT;
    ALTER TABLE contracts ADD COLUMN terminate_on_notice INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE notices ADD COLUMN failed_at INTEGER;
    ALTER TABLE notices ADD COLUMN dedup_key TEXT;
    CREATE UNIQUE INDEX notices_once ON notices(contract_id, dedup_key) WHERE dedup_key IS NOT NULL;
    -- Terminated before this version: the day of the last termination in the audit log
    -- (a UTC date: the log has no better).
    UPDATE contracts SET ended_on = (
        SELECT date(MAX(a.at), 'unixepoch') FROM audit a
        WHERE a.contract_id = contracts.id AND a.action IN ('contract.terminate', 'contract.terminated'))
        WHERE state = 'terminated';
    -- Renewal reminders already queued keep counting as sent for their term.
    UPDATE notices SET dedup_key = 'renewal:' || substr(subject, -10)
        WHERE kind = 'renewal' AND id IN (
            SELECT MIN(id) FROM notices WHERE kind = 'renewal' GROUP BY contract_id, substr(subject, -10));
    "#,
    // 4: issue 11. A limit on each account's client devices, per contract (default 10),
    // so that one user cannot flood their targets' peer lists or the overlay pool. Devices
    // can be removed (`admin device remove`): a session row keeps what it needs to be
    // listed after its device is gone (the device's name, role, address and account), and
    // its device_id becomes NULL then. SQLite cannot change a column's constraint in place,
    // so the sessions table is rebuilt.
    r#"
    ALTER TABLE contracts ADD COLUMN device_limit INTEGER NOT NULL DEFAULT 10 CHECK (device_limit >= 0);
    CREATE TABLE sessions_v4 (
        id           INTEGER PRIMARY KEY,
        device_id    INTEGER REFERENCES devices(id) ON DELETE SET NULL,
        account_id   INTEGER NOT NULL REFERENCES accounts(id),
        device_name  TEXT NOT NULL,
        role         TEXT NOT NULL CHECK (role IN ('client','target')),
        overlay_ip   INTEGER NOT NULL,
        source       TEXT NOT NULL,
        started_at   INTEGER NOT NULL,
        ended_at     INTEGER,
        end_reason   TEXT,
        bytes_in     INTEGER NOT NULL DEFAULT 0,
        bytes_out    INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO sessions_v4 (id, device_id, account_id, device_name, role, overlay_ip, source, started_at,
                             ended_at, end_reason, bytes_in, bytes_out)
        SELECT s.id, s.device_id, d.account_id, d.name, d.role, d.overlay_ip, s.source, s.started_at,
               s.ended_at, s.end_reason, s.bytes_in, s.bytes_out
        FROM sessions s JOIN devices d ON d.id = s.device_id;
    DROP TABLE sessions;
    ALTER TABLE sessions_v4 RENAME TO sessions;
    CREATE INDEX sessions_open ON sessions(ended_at);
    CREATE INDEX sessions_by_device ON sessions(device_id);
    "#,
    // 5: issue 13. Every login and every session at each store change reads a device's
    // peers by account (`authorised_peers`), and a registration counts the account's
    // devices: without an index each read the whole devices table, which at 10,000
    // devices made the hub's refresh after a suspension take 2.5 s. Grants are read by
    // account too.
    r#"
    CREATE INDEX devices_by_account ON devices(account_id, role);
    CREATE INDEX grants_by_account ON grants(account_id);
    "#,
    // 6: issue 17. Invoices as raised (art. 28), numbered by their id, and the payments
    // made against them (art. 26-31). An invoice's state (open, paid, overdue) is not
    // stored: it follows from its due date and its payments. `raised_key` makes raising
    // idempotent (one invoice per contract part and issue day, or per late-paid invoice
    // for its interest). Lines are the JSON of `contract::LineItem`s, as the pure
    // functions computed them, so that a reprint shows what was invoiced even after a
    // tariff change.
    r#"
    CREATE TABLE invoices (
        id           INTEGER PRIMARY KEY,
        contract_id  INTEGER NOT NULL REFERENCES contracts(id),
        raised_key   TEXT NOT NULL,
        part         TEXT NOT NULL,
        issued       TEXT NOT NULL,
        due          TEXT NOT NULL,
        term_start   TEXT,
        term_end     TEXT,
        lines        TEXT NOT NULL,
        subtotal     INTEGER NOT NULL CHECK (subtotal >= 0),
        tax_rate_bp  INTEGER NOT NULL CHECK (tax_rate_bp >= 0),
        tax          INTEGER NOT NULL CHECK (tax >= 0),
        total        INTEGER NOT NULL CHECK (total >= 0),
        created_at   INTEGER NOT NULL,
        UNIQUE (contract_id, raised_key)
    );
    CREATE TABLE payments (
        id           INTEGER PRIMARY KEY,
        contract_id  INTEGER NOT NULL REFERENCES contracts(id),
        invoice_id   INTEGER NOT NULL REFERENCES invoices(id),
        amount       INTEGER NOT NULL CHECK (amount > 0),
        paid_on      TEXT NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX payments_by_invoice ON payments(invoice_id);
    "#,
    // 7: issue 18. Planned maintenance (art. 34-2): windows the operator announces, in
    // UTC. Every contract in force is affected. `notice_days` is how far ahead the notice
    // goes (default 7); an emergency window is announced at once. A cancelled window
    // keeps its row (the notices sent about it refer to its number) and no longer
    // excludes anything from compensation (art. 35).
    r#"
    CREATE TABLE maintenance_windows (
        id            INTEGER PRIMARY KEY,
        start_at      INTEGER NOT NULL,
        end_at        INTEGER NOT NULL CHECK (end_at > start_at),
        reason        TEXT NOT NULL,
        emergency     INTEGER NOT NULL DEFAULT 0,
        notice_days   INTEGER NOT NULL CHECK (notice_days >= 0),
        created_at    INTEGER NOT NULL,
        cancelled_at  INTEGER
    );
    "#,
    // 8: issue 18 (art. 35-1). Operator-side logins over the admin channel, apart from
    // contract accounts: `operator` (the operator's rights) and `monitor` (record and list
    // outages only). Outages get the source that recorded them (`monitor:NAME`, or NULL
    // for ones typed in by hand); a source records one outage per start, so that a
    // monitor retrying after a lost answer does not record it twice.
    r#"
    CREATE TABLE operators (
        id             INTEGER PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        role           TEXT NOT NULL CHECK (role IN ('operator','monitor')),
        password_hash  TEXT NOT NULL,
        created_at     INTEGER NOT NULL
    );
    ALTER TABLE outages ADD COLUMN source TEXT;
    CREATE UNIQUE INDEX outages_by_source ON outages(source, start_at) WHERE source IS NOT NULL;
    "#,
    // 9: issue 14. An account administrator's optional TOTP second factor for console
    // logins: the shared secret (base32, NULL = off) and the last time step a code was
    // accepted for, so that no code is accepted twice.
    r#"
    ALTER TABLE accounts ADD COLUMN totp_secret TEXT;
    ALTER TABLE accounts ADD COLUMN totp_last_step INTEGER;
    "#,
    // 10: issue 15, several hubs on one store. A session belongs to the hub that holds it
    // (a hub starting closes only its own stale sessions); hubs beat a heartbeat so that
    // the sessions of a hub that died are closed by another; leases let exactly one hub
    // run the contract calendar, notices and outbox at a time.
    r#"
    ALTER TABLE sessions ADD COLUMN hub TEXT NOT NULL DEFAULT '';
    -- The node's boot id, which its peers on other hubs are told (a new one resets
    -- their WireGuard sessions with it).
    ALTER TABLE sessions ADD COLUMN boot_id INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX sessions_open_by_hub ON sessions(hub) WHERE ended_at IS NULL;
    CREATE TABLE hubs (
        name          TEXT PRIMARY KEY,
        heartbeat_at  INTEGER NOT NULL,
        -- Where the other hubs send this hub's relay datagrams ('' = not in the mesh).
        relay_addr    TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE leases (
        name      TEXT PRIMARY KEY,
        holder    TEXT NOT NULL,
        until_at  INTEGER NOT NULL
    );
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
