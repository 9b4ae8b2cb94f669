//! Versioned schema migrations in the PostgreSQL dialect, recorded in `schema_version`.
//!
//! THE RULE: migration 1 here is the whole SQLite schema as of SQLite migration 9
//! (`store::migrations`), written once; every SQLite migration after 9 gets exactly one
//! PostgreSQL migration appended here, in the same order, with the same meaning
//! (PostgreSQL version `v` = SQLite version `v + 8`). Never edit a migration that has
//! shipped: append a new one. `SQLITE_VERSION_OF_FIRST` and a test keep the two lists
//! in step.
//!
//! Each migration runs in its own transaction; the whole run holds a session advisory
//! lock, so several hubs starting at once migrate one after the other rather than race.

use ::postgres::Client;

use crate::store::{StoreError, StoreResult};

/// The SQLite schema version PostgreSQL migration 1 is equal to.
pub const SQLITE_VERSION_OF_FIRST: usize = 9;

/// The advisory lock key of a migration run (any constant shared by every mcvpn).
const MIGRATION_LOCK: i64 = 0x6d63_7670_6e00_0001;

/// Migration `i` brings the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: SQLite migrations 1 to 9 (see store::migrations for the why of each column).
    // Integers are BIGINT (SQLite's INTEGER), flags BOOLEAN, dates DATE. Names are sorted
    // with the "C" collation: SQLite compares text bytewise, and listings must come out
    // in the same order on both stores.
    r#"
    CREATE TABLE contracts (
        id                   BIGSERIAL PRIMARY KEY,
        name                 TEXT COLLATE "C" NOT NULL UNIQUE,
        state                TEXT NOT NULL DEFAULT 'active'
                             CHECK (state IN ('active','suspended','terminated','cancelled')),
        created_at           BIGINT NOT NULL,
        kind                 TEXT NOT NULL DEFAULT 'corporation' CHECK (kind IN ('corporation','public-body')),
        state_reason         TEXT,
        address              TEXT NOT NULL DEFAULT '',
        phone                TEXT NOT NULL DEFAULT '',
        department           TEXT NOT NULL DEFAULT '',
        sales_agent          TEXT,
        admin_name           TEXT NOT NULL DEFAULT '',
        admin_email          TEXT NOT NULL DEFAULT '',
        admin_account_id     BIGINT,
        terminate_at         BIGINT,
        ended_on             DATE,
        terminate_on_notice  BOOLEAN NOT NULL DEFAULT FALSE,
        device_limit         BIGINT NOT NULL DEFAULT 10 CHECK (device_limit >= 0)
    );
    CREATE TABLE accounts (
        id              BIGSERIAL PRIMARY KEY,
        contract_id     BIGINT NOT NULL REFERENCES contracts(id),
        username        TEXT COLLATE "C" NOT NULL UNIQUE,
        password_hash   TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active','locked')),
        created_at      BIGINT NOT NULL,
        device_binding  BOOLEAN NOT NULL DEFAULT FALSE,
        totp_secret     TEXT,
        totp_last_step  BIGINT
    );
    ALTER TABLE contracts ADD FOREIGN KEY (admin_account_id) REFERENCES accounts(id);
    CREATE TABLE devices (
        id              BIGSERIAL PRIMARY KEY,
        account_id      BIGINT NOT NULL REFERENCES accounts(id),
        role            TEXT NOT NULL CHECK (role IN ('client','target')),
        public_key      BYTEA NOT NULL,
        name            TEXT COLLATE "C" NOT NULL,
        overlay_ip      BIGINT NOT NULL UNIQUE,
        resume_hash     BYTEA,
        resume_expires  BIGINT,
        created_at      BIGINT NOT NULL,
        last_seen       BIGINT,
        UNIQUE (account_id, role, public_key)
    );
    CREATE INDEX devices_by_key ON devices(public_key);
    CREATE INDEX devices_by_account ON devices(account_id, role);
    CREATE TABLE sessions (
        id           BIGSERIAL PRIMARY KEY,
        device_id    BIGINT REFERENCES devices(id) ON DELETE SET NULL,
        account_id   BIGINT NOT NULL REFERENCES accounts(id),
        device_name  TEXT NOT NULL,
        role         TEXT NOT NULL CHECK (role IN ('client','target')),
        overlay_ip   BIGINT NOT NULL,
        source       TEXT NOT NULL,
        started_at   BIGINT NOT NULL,
        ended_at     BIGINT,
        end_reason   TEXT,
        bytes_in     BIGINT NOT NULL DEFAULT 0,
        bytes_out    BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_open ON sessions(ended_at);
    CREATE INDEX sessions_by_device ON sessions(device_id);
    CREATE TABLE audit (
        id           BIGSERIAL PRIMARY KEY,
        at           BIGINT NOT NULL,
        actor        TEXT NOT NULL,
        action       TEXT NOT NULL,
        contract_id  BIGINT,
        account      TEXT,
        source       TEXT,
        detail       TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_by_contract ON audit(contract_id, id);
    -- The audit log is append-only: the store refuses to rewrite history.
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    CREATE TABLE contract_terms (
        id           BIGSERIAL PRIMARY KEY,
        contract_id  BIGINT NOT NULL REFERENCES contracts(id),
        kind         TEXT NOT NULL CHECK (kind IN ('basic','additional')),
        start_date   DATE NOT NULL,
        accounts     BIGINT NOT NULL CHECK (accounts > 0),
        created_at   BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX one_basic_term ON contract_terms(contract_id) WHERE kind = 'basic';
    CREATE TABLE contract_history (
        id           BIGSERIAL PRIMARY KEY,
        contract_id  BIGINT NOT NULL REFERENCES contracts(id),
        at           BIGINT NOT NULL,
        actor        TEXT NOT NULL,
        field        TEXT NOT NULL,
        old_value    TEXT NOT NULL,
        new_value    TEXT NOT NULL
    );
    CREATE TABLE cancellations (
        contract_id    BIGINT PRIMARY KEY REFERENCES contracts(id),
        received       DATE NOT NULL,
        requested_end  DATE,
        effective      DATE NOT NULL,
        actor          TEXT NOT NULL,
        created_at     BIGINT NOT NULL
    );
    CREATE TABLE grants (
        target_device_id  BIGINT NOT NULL REFERENCES devices(id),
        account_id        BIGINT NOT NULL REFERENCES accounts(id),
        created_at        BIGINT NOT NULL,
        PRIMARY KEY (target_device_id, account_id)
    );
    CREATE INDEX grants_by_account ON grants(account_id);
    CREATE TABLE notices (
        id           BIGSERIAL PRIMARY KEY,
        contract_id  BIGINT NOT NULL REFERENCES contracts(id),
        to_email     TEXT NOT NULL,
        kind         TEXT NOT NULL,
        subject      TEXT NOT NULL,
        body         TEXT NOT NULL,
        created_at   BIGINT NOT NULL,
        sent_at      BIGINT,
        attempts     BIGINT NOT NULL DEFAULT 0,
        last_error   TEXT,
        failed_at    BIGINT,
        dedup_key    TEXT
    );
    CREATE UNIQUE INDEX notices_once ON notices(contract_id, dedup_key) WHERE dedup_key IS NOT NULL;
    CREATE TABLE outages (
        id        BIGSERIAL PRIMARY KEY,
        start_at  BIGINT NOT NULL,
        end_at    BIGINT NOT NULL CHECK (end_at >= start_at),
        note      TEXT NOT NULL DEFAULT '',
        source    TEXT
    );
    CREATE UNIQUE INDEX outages_by_source ON outages(source, start_at) WHERE source IS NOT NULL;
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    CREATE TABLE invoices (
        id           BIGSERIAL PRIMARY KEY,
        contract_id  BIGINT NOT NULL REFERENCES contracts(id),
        raised_key   TEXT NOT NULL,
        part         TEXT NOT NULL,
        issued       DATE NOT NULL,
        due          DATE NOT NULL,
        term_start   DATE,
        term_end     DATE,
        lines        TEXT NOT NULL,
        subtotal     BIGINT NOT NULL CHECK (subtotal >= 0),
        tax_rate_bp  BIGINT NOT NULL CHECK (tax_rate_bp >= 0),
        tax          BIGINT NOT NULL CHECK (tax >= 0),
        total        BIGINT NOT NULL CHECK (total >= 0),
        created_at   BIGINT NOT NULL,
        UNIQUE (contract_id, raised_key)
    );
    CREATE TABLE payments (
        id           BIGSERIAL PRIMARY KEY,
        contract_id  BIGINT NOT NULL REFERENCES contracts(id),
        invoice_id   BIGINT NOT NULL REFERENCES invoices(id),
        amount       BIGINT NOT NULL CHECK (amount > 0),
        paid_on      DATE NOT NULL,
        created_at   BIGINT NOT NULL
    );
    CREATE INDEX payments_by_invoice ON payments(invoice_id);
    CREATE TABLE maintenance_windows (
        id            BIGSERIAL PRIMARY KEY,
        start_at      BIGINT NOT NULL,
        end_at        BIGINT NOT NULL CHECK (end_at > start_at),
        reason        TEXT NOT NULL,
        emergency     BOOLEAN NOT NULL DEFAULT FALSE,
        notice_days   BIGINT NOT NULL CHECK (notice_days >= 0),
        created_at    BIGINT NOT NULL,
        cancelled_at  BIGINT
    );
    CREATE TABLE operators (
        id             BIGSERIAL PRIMARY KEY,
        name           TEXT COLLATE "C" NOT NULL UNIQUE,
        role           TEXT NOT NULL CHECK (role IN ('operator','monitor')),
        password_hash  TEXT NOT NULL,
        created_at     BIGINT NOT NULL
    );

    -- The change feed (PostgreSQL only): every statement that may change whether a live
    -- session may go on, or with whom it may talk, moves `mcvpn_change_seq` and notifies
    -- channel `mcvpn_change`, so every hub refreshes its sessions at once (LISTEN), or at
    -- its next poll of the sequence (`external_change_marker`). What `hub::registry`'s
    -- refresh reads: account and contract state, password hash, the basic contract's
    -- start, devices and grants (peers). Not sessions, the audit log, nor devices'
    -- last_seen/resume columns: those change at every login on every hub.
    CREATE SEQUENCE mcvpn_change_seq;
    CREATE FUNCTION mcvpn_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM nextval('mcvpn_change_seq');
            PERFORM pg_notify('mcvpn_change', '');
            RETURN NULL;
        END $$;
    CREATE TRIGGER contracts_changed AFTER INSERT OR DELETE OR UPDATE OF state ON contracts
        FOR EACH STATEMENT EXECUTE FUNCTION mcvpn_changed();
    CREATE TRIGGER accounts_changed AFTER DELETE OR UPDATE OF state, password_hash, contract_id ON accounts
        FOR EACH STATEMENT EXECUTE FUNCTION mcvpn_changed();
    CREATE TRIGGER devices_changed
        AFTER INSERT OR DELETE OR UPDATE OF account_id, role, public_key, name, overlay_ip ON devices
        FOR EACH STATEMENT EXECUTE FUNCTION mcvpn_changed();
    CREATE TRIGGER grants_changed AFTER INSERT OR DELETE OR UPDATE ON grants
        FOR EACH STATEMENT EXECUTE FUNCTION mcvpn_changed();
    CREATE TRIGGER contract_terms_changed AFTER INSERT OR DELETE OR UPDATE OF start_date, kind ON contract_terms
        FOR EACH STATEMENT EXECUTE FUNCTION mcvpn_changed();
    "#,
    // 2 = SQLite 10: issue 15, several hubs on one store (sessions carry their hub,
    // heartbeats, leases). None of these feeds the change feed: sessions and heartbeats
    // change on every login and every few seconds on every hub. A session starting or
    // ending notifies `mcvpn_presence` instead: the mesh's hubs re-read which hub holds
    // which node (a cheaper read than the change feed's, see `hub::registry`).
    r#"
    ALTER TABLE sessions ADD COLUMN hub TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN boot_id BIGINT NOT NULL DEFAULT 0;
    CREATE FUNCTION mcvpn_presence() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('mcvpn_presence', '');
            RETURN NULL;
        END $$;
    CREATE TRIGGER sessions_presence AFTER INSERT OR UPDATE OF ended_at ON sessions
        FOR EACH STATEMENT EXECUTE FUNCTION mcvpn_presence();
    CREATE INDEX sessions_open_by_hub ON sessions(hub) WHERE ended_at IS NULL;
    CREATE TABLE hubs (
        name          TEXT PRIMARY KEY,
        heartbeat_at  BIGINT NOT NULL,
        relay_addr    TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE leases (
        name      TEXT PRIMARY KEY,
        holder    TEXT NOT NULL,
        until_at  BIGINT NOT NULL
    );
    "#,
];

/// Runs every migration the database has not seen yet, under the migration lock;
/// `map` words the driver's errors.
pub fn migrate(client: &mut Client, map: &dyn Fn(::postgres::Error) -> StoreError) -> StoreResult<u32> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(map)?;
    let r = migrate_locked(client, map);
    // Released whatever happened: a session lock lasts as long as the connection.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let v = r?;
    unlocked.map_err(map)?;
    Ok(v)
}

fn migrate_locked(client: &mut Client, map: &dyn Fn(::postgres::Error) -> StoreError) -> StoreResult<u32> {
    // Not CREATE TABLE IF NOT EXISTS: its NOTICE would be logged at every start.
    let fresh: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NULL", &[])
        .map_err(map)?
        .get(0);
    if fresh {
        client
            .batch_execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
            .map_err(map)?;
    }
    let current: Option<i64> = client
        .query_opt("SELECT version FROM schema_version", &[])
        .map_err(map)?
        .map(|r| r.get(0));
    let current = current.unwrap_or(0).max(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Refused(format!(
            "the store is at PostgreSQL schema version {current}, newer than this mcvpn ({}); upgrade mcvpn",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let step = |client: &mut Client| -> Result<(), ::postgres::Error> {
            let mut tx = client.transaction()?;
            tx.batch_execute(sql)?;
            tx.execute("DELETE FROM schema_version", &[])?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&((i + 1) as i64)])?;
            tx.commit()
        };
        step(client).map_err(map)?;
        tracing::info!(version = i + 1, "store migrated (PostgreSQL)");
    }
    Ok(MIGRATIONS.len() as u32)
}
