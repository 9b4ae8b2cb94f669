//! The embedded SQLite store (WAL mode, one connection per process).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;

pub struct SqliteStore {
    conn: Connection,
}

const ACCOUNT_COLUMNS: &str = "a.id, a.username, a.contract_id, c.name, a.state, c.state, a.password_hash, a.created_at";
const DEVICE_COLUMNS: &str = "d.id, d.account_id, a.username, d.role, d.public_key, d.name, d.overlay_ip, \
     d.resume_hash, d.resume_expires, d.created_at, d.last_seen";

fn role_str(role: Role) -> &'static str {
    role.as_str()
}

fn parse_role(s: &str) -> Role {
    if s == "target" {
        Role::Target
    } else {
        Role::Client
    }
}

fn account_from_row(r: &Row) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        id: r.get(0)?,
        username: r.get(1)?,
        contract_id: r.get(2)?,
        contract: r.get(3)?,
        state: AccountState::parse(&r.get::<_, String>(4)?).unwrap_or(AccountState::Locked),
        contract_state: ContractState::parse(&r.get::<_, String>(5)?).unwrap_or(ContractState::Suspended),
        password_hash: r.get(6)?,
        created_at: r.get(7)?,
    })
}

fn device_from_row(r: &Row) -> rusqlite::Result<DeviceRecord> {
    let key: Vec<u8> = r.get(4)?;
    let key: [u8; 32] = key.try_into().unwrap_or([0; 32]);
    Ok(DeviceRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        account: r.get(2)?,
        role: parse_role(&r.get::<_, String>(3)?),
        public_key: Key32(key),
        name: r.get(5)?,
        overlay_ip: Ipv4Addr::from(r.get::<_, i64>(6)? as u32),
        resume_hash: r.get(7)?,
        resume_expires: r.get(8)?,
        created_at: r.get(9)?,
        last_seen: r.get(10)?,
    })
}

fn contract_from_row(r: &Row) -> rusqlite::Result<ContractRecord> {
    Ok(ContractRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        state: ContractState::parse(&r.get::<_, String>(2)?).unwrap_or(ContractState::Suspended),
        created_at: r.get(3)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Refused(format!("cannot create the store directory {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path)?;
        Self::from_connection(conn)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(mut conn: Connection) -> StoreResult<SqliteStore> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrations::migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn allocate_overlay_ip(&self, overlay: OverlayNet) -> StoreResult<u32> {
        let (first, last) = overlay.host_range();
        let max: Option<i64> = self.conn.query_row(
            "SELECT MAX(overlay_ip) FROM devices WHERE overlay_ip BETWEEN ?1 AND ?2",
            params![first as i64, last as i64],
            |r| r.get(0),
        )?;
        match max {
            None => Ok(first),
            Some(m) if (m as u32) < last => Ok(m as u32 + 1),
            Some(_) => {
                // The top is taken: look for the lowest free address left by a removed device.
                let first_used: bool = self
                    .conn
                    .query_row("SELECT 1 FROM devices WHERE overlay_ip = ?1", [first as i64], |_| Ok(true))
                    .optional()?
                    .unwrap_or(false);
                if !first_used {
                    return Ok(first);
                }
                let gap: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT d.overlay_ip + 1 FROM devices d WHERE d.overlay_ip BETWEEN ?1 AND ?2 \
                         AND NOT EXISTS (SELECT 1 FROM devices e WHERE e.overlay_ip = d.overlay_ip + 1) \
                         ORDER BY d.overlay_ip LIMIT 1",
                        params![first as i64, last as i64 - 1],
                        |r| r.get(0),
                    )
                    .optional()?;
                gap.map(|g| g as u32)
                    .ok_or_else(|| StoreError::Refused(format!("the overlay network {overlay} is full")))
            }
        }
    }
}

impl Store for SqliteStore {
    fn contract_add(&mut self, name: &str) -> StoreResult<ContractRecord> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Refused("a contract needs a name".into()));
        }
        let exists: bool = self
            .conn
            .query_row("SELECT 1 FROM contracts WHERE name = ?1", [name], |_| Ok(true))
            .optional()?
            .unwrap_or(false);
        if exists {
            return Err(StoreError::Conflict(format!("contract {name:?} already exists")));
        }
        self.conn.execute(
            "INSERT INTO contracts (name, created_at) VALUES (?1, ?2)",
            params![name, now()],
        )?;
        self.contract_by_name(name)
    }

    fn contract_by_name(&self, name: &str) -> StoreResult<ContractRecord> {
        self.conn
            .query_row(
                "SELECT id, name, state, created_at FROM contracts WHERE name = ?1",
                [name],
                contract_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no contract named {name:?} (see `mcvpn admin contract list`)")))
    }

    fn contracts(&self) -> StoreResult<Vec<ContractRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, state, created_at FROM contracts ORDER BY name")?;
        let rows = stmt.query_map([], contract_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn contract_set_state(&mut self, contract_id: i64, state: ContractState) -> StoreResult<()> {
        let n = self.conn.execute(
            "UPDATE contracts SET state = ?1 WHERE id = ?2",
            params![state.as_str(), contract_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no contract with id {contract_id}")));
        }
        Ok(())
    }

    fn account_add(&mut self, contract: &str, username: &str, password_hash: &str) -> StoreResult<AccountRecord> {
        let contract = self.contract_by_name(contract)?;
        if self.account_by_name(username)?.is_some() {
            return Err(StoreError::Conflict(format!("account {username:?} already exists")));
        }
        self.conn.execute(
            "INSERT INTO accounts (contract_id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![contract.id, username, password_hash, now()],
        )?;
        Ok(self.account_by_name(username)?.expect("just inserted"))
    }

    fn account_by_name(&self, username: &str) -> StoreResult<Option<AccountRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN contracts c ON c.id = a.contract_id \
                     WHERE a.username = ?1"
                ),
                [username],
                account_from_row,
            )
            .optional()?)
    }

    fn account_by_id(&self, id: i64) -> StoreResult<AccountRecord> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN contracts c ON c.id = a.contract_id WHERE a.id = ?1"
                ),
                [id],
                account_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no account with id {id}")))
    }

    fn accounts(&self, contract_id: Option<i64>) -> StoreResult<Vec<AccountRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN contracts c ON c.id = a.contract_id \
             WHERE ?1 IS NULL OR a.contract_id = ?1 ORDER BY c.name, a.username"
        ))?;
        let rows = stmt.query_map([contract_id], account_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn account_set_state(&mut self, account_id: i64, state: AccountState) -> StoreResult<()> {
        let n = self.conn.execute(
            "UPDATE accounts SET state = ?1 WHERE id = ?2",
            params![state.as_str(), account_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no account with id {account_id}")));
        }
        Ok(())
    }

    fn account_set_password(&mut self, account_id: i64, password_hash: &str) -> StoreResult<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE accounts SET password_hash = ?1 WHERE id = ?2",
            params![password_hash, account_id],
        )?;
        // A new password ends every remembered login of the account's devices.
        tx.execute(
            "UPDATE devices SET resume_hash = NULL, resume_expires = NULL WHERE account_id = ?1",
            [account_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn device_by_key(&self, key: &Key32, role: Role, account_id: Option<i64>) -> StoreResult<Option<DeviceRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
                     WHERE d.public_key = ?1 AND d.role = ?2 AND (?3 IS NULL OR d.account_id = ?3) \
                     ORDER BY d.id LIMIT 1"
                ),
                params![&key.0[..], role_str(role), account_id],
                device_from_row,
            )
            .optional()?)
    }

    fn device_by_id(&self, id: i64) -> StoreResult<DeviceRecord> {
        self.conn
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.id = ?1"),
                [id],
                device_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no device with id {id}")))
    }

    fn device_register(
        &mut self,
        account_id: i64,
        role: Role,
        key: &Key32,
        name: &str,
        overlay: OverlayNet,
    ) -> StoreResult<DeviceRecord> {
        if role == Role::Target && self.device_by_key(key, Role::Target, None)?.is_some() {
            return Err(StoreError::Conflict("this device key is already enrolled as a target".into()));
        }
        let ip = self.allocate_overlay_ip(overlay)?;
        self.conn.execute(
            "INSERT INTO devices (account_id, role, public_key, name, overlay_ip, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![account_id, role_str(role), &key.0[..], name, ip as i64, now()],
        )?;
        let id = self.conn.last_insert_rowid();
        self.device_by_id(id)
    }

    fn device_set_resume(&mut self, device_id: i64, hash: Option<&[u8]>, expires: Option<UnixTime>) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE devices SET resume_hash = ?1, resume_expires = ?2 WHERE id = ?3",
            params![hash, expires, device_id],
        )?;
        Ok(())
    }

    fn device_touch(&mut self, device_id: i64) -> StoreResult<()> {
        self.conn
            .execute("UPDATE devices SET last_seen = ?1 WHERE id = ?2", params![now(), device_id])?;
        Ok(())
    }

    fn devices(&self, role: Option<Role>, contract_id: Option<i64>) -> StoreResult<Vec<DeviceRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
             WHERE (?1 IS NULL OR d.role = ?1) AND (?2 IS NULL OR a.contract_id = ?2) ORDER BY d.id"
        ))?;
        let rows = stmt.query_map(params![role.map(role_str), contract_id], device_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn authorised_peers(&self, device: &DeviceRecord) -> StoreResult<Vec<DeviceRecord>> {
        let other = match device.role {
            Role::Client => Role::Target,
            Role::Target => Role::Client,
        };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
             WHERE d.account_id = ?1 AND d.role = ?2 ORDER BY d.id"
        ))?;
        let rows = stmt.query_map(params![device.account_id, role_str(other)], device_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn session_start(&mut self, device_id: i64, source: &str) -> StoreResult<i64> {
        self.conn.execute(
            "INSERT INTO sessions (device_id, source, started_at) VALUES (?1, ?2, ?3)",
            params![device_id, source, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn session_end(&mut self, session_id: i64, reason: &str) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE sessions SET ended_at = ?1, end_reason = ?2 WHERE id = ?3 AND ended_at IS NULL",
            params![now(), reason, session_id],
        )?;
        Ok(())
    }

    fn sessions_close_stale(&mut self, reason: &str) -> StoreResult<usize> {
        Ok(self.conn.execute(
            "UPDATE sessions SET ended_at = ?1, end_reason = ?2 WHERE ended_at IS NULL",
            params![now(), reason],
        )?)
    }

    fn sessions(&self, open_only: bool, contract_id: Option<i64>) -> StoreResult<Vec<SessionRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.id, s.device_id, d.name, a.username, d.role, d.overlay_ip, s.source, s.started_at, \
                    s.ended_at, s.end_reason \
             FROM sessions s JOIN devices d ON d.id = s.device_id JOIN accounts a ON a.id = d.account_id \
             WHERE (?1 = 0 OR s.ended_at IS NULL) AND (?2 IS NULL OR a.contract_id = ?2) \
             ORDER BY s.id DESC LIMIT 1000",
        )?;
        let rows = stmt.query_map(params![open_only as i64, contract_id], |r| {
            Ok(SessionRecord {
                id: r.get(0)?,
                device_id: r.get(1)?,
                device: r.get(2)?,
                account: r.get(3)?,
                role: parse_role(&r.get::<_, String>(4)?),
                overlay_ip: Ipv4Addr::from(r.get::<_, i64>(5)? as u32),
                source: r.get(6)?,
                started_at: r.get(7)?,
                ended_at: r.get(8)?,
                end_reason: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit(&mut self, e: &AuditEntry) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO audit (at, actor, action, contract_id, account, source, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![now(), e.actor, e.action, e.contract_id, e.account, e.source, e.detail],
        )?;
        Ok(())
    }

    fn audit_log(&self, contract_id: Option<i64>, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, at, actor, action, contract_id, account, source, detail FROM audit \
             WHERE ?1 IS NULL OR contract_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![contract_id, limit as i64], |r| {
            Ok(AuditRecord {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                contract_id: r.get(4)?,
                account: r.get(5)?,
                source: r.get(6)?,
                detail: r.get(7)?,
            })
        })?;
        let mut out: Vec<AuditRecord> = rows.collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    fn external_change_marker(&self) -> StoreResult<i64> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_account() -> (SqliteStore, AccountRecord) {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.contract_add("acme").unwrap();
        let a = s.account_add("acme", "alice", "hash").unwrap();
        (s, a)
    }

    #[test]
    fn accounts_and_devices() {
        let (mut s, alice) = store_with_account();
        assert_eq!(alice.contract, "acme");
        assert!(matches!(s.account_add("acme", "alice", "h"), Err(StoreError::Conflict(_))));
        assert!(matches!(s.account_add("nope", "bob", "h"), Err(StoreError::NotFound(_))));
        let net = OverlayNet::default();
        let t = s.device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net).unwrap();
        let c = s.device_register(alice.id, Role::Client, &Key32([2; 32]), "laptop", net).unwrap();
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
        s.device_register(alice.id, Role::Target, &Key32([1; 32]), "pc", net).unwrap();
        let bob_laptop = s.device_register(bob.id, Role::Client, &Key32([3; 32]), "b", net).unwrap();
        assert!(s.authorised_peers(&bob_laptop).unwrap().is_empty());
    }

    #[test]
    fn overlay_allocation_fills_gaps_when_full() {
        let (mut s, alice) = store_with_account();
        let net = OverlayNet::parse("10.9.0.0/30").unwrap(); // two host addresses
        let a = s.device_register(alice.id, Role::Client, &Key32([1; 32]), "a", net).unwrap();
        let _b = s.device_register(alice.id, Role::Client, &Key32([2; 32]), "b", net).unwrap();
        assert!(matches!(
            s.device_register(alice.id, Role::Client, &Key32([3; 32]), "c", net),
            Err(StoreError::Refused(_))
        ));
        s.connection().execute("DELETE FROM devices WHERE id = ?1", [a.id]).unwrap();
        let c = s.device_register(alice.id, Role::Client, &Key32([3; 32]), "c", net).unwrap();
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
        let id = s.session_start(d.id, "192.0.2.1:5000").unwrap();
        assert_eq!(s.sessions(true, None).unwrap().len(), 1);
        s.session_end(id, "logout").unwrap();
        assert!(s.sessions(true, None).unwrap().is_empty());
        s.session_start(d.id, "x").unwrap();
        assert_eq!(s.sessions_close_stale("hub restarted").unwrap(), 1);
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
}
