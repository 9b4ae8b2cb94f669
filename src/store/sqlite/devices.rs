use std::net::Ipv4Addr;

use rusqlite::{params, OptionalExtension, Row};

use super::{exists, parse_role, SqliteStore};
use crate::store::*;

const DEVICE_COLUMNS: &str = "d.id, d.account_id, a.username, d.role, d.public_key, d.name, d.overlay_ip, \
     d.resume_hash, d.resume_expires, d.created_at, d.last_seen";

fn role_str(role: Role) -> &'static str {
    role.as_str()
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

impl SqliteStore {
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
                if !exists(
                    &self.conn,
                    "SELECT 1 FROM devices WHERE overlay_ip = ?1",
                    [first as i64],
                )? {
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
                gap.map(|g| g as u32).ok_or_else(|| {
                    StoreError::Refused(format!(
                        "the overlay network {overlay} has no free address for a new device: the operator \
                             removes unused ones (`mcvpn admin device list`, `device remove`) or gives the hub a \
                             larger --overlay"
                    ))
                })
            }
        }
    }
}

impl DeviceStore for SqliteStore {
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
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.id = ?1"
                ),
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
            return Err(StoreError::Conflict(
                "this device key is already enrolled as a target".into(),
            ));
        }
        if role == Role::Client {
            // Every client device is announced to each target it may reach and holds an
            // overlay address: the contract bounds how many one account registers.
            let (limit, account): (u32, String) = self
                .conn
                .query_row(
                    "SELECT c.device_limit, a.username FROM accounts a JOIN contracts c ON c.id = a.contract_id \
                     WHERE a.id = ?1",
                    [account_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("no account with id {account_id}")))?;
            if self.device_count(account_id, Role::Client)? >= u64::from(limit) {
                return Err(StoreError::DeviceLimit { account, limit });
            }
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
        self.conn.execute(
            "UPDATE devices SET last_seen = ?1 WHERE id = ?2",
            params![now(), device_id],
        )?;
        Ok(())
    }

    fn device_remove(&mut self, device_id: i64) -> StoreResult<()> {
        let device = self.device_by_id(device_id)?;
        if device.role != Role::Client {
            return Err(StoreError::Refused(format!(
                "{} is a target; only client devices are removed this way",
                device.name
            )));
        }
        // Past sessions keep their copy of the device's name (sessions.device_id is
        // ON DELETE SET NULL).
        self.conn.execute("DELETE FROM devices WHERE id = ?1", [device_id])?;
        Ok(())
    }

    fn device_count(&self, account_id: i64, role: Role) -> StoreResult<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM devices WHERE account_id = ?1 AND role = ?2",
            params![account_id, role_str(role)],
            |r| r.get::<_, i64>(0),
        )? as u64)
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
        let mut stmt = self.conn.prepare_cached(&peers_sql(device.role))?;
        let rows = match device.role {
            Role::Client => stmt.query_map(params![device.account_id], device_from_row)?,
            Role::Target => stmt.query_map(params![device.account_id, device.id], device_from_row)?,
        };
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn grant_add(&mut self, target_device_id: i64, account_id: i64) -> StoreResult<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO grants (target_device_id, account_id, created_at) VALUES (?1, ?2, ?3)",
            params![target_device_id, account_id, now()],
        )?;
        Ok(())
    }

    fn grant_remove(&mut self, target_device_id: i64, account_id: i64) -> StoreResult<bool> {
        Ok(self.conn.execute(
            "DELETE FROM grants WHERE target_device_id = ?1 AND account_id = ?2",
            params![target_device_id, account_id],
        )? > 0)
    }

    fn grants(&self, contract_id: Option<i64>) -> StoreResult<Vec<GrantRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT g.target_device_id, d.name, ta.username, g.account_id, a.username, g.created_at \
             FROM grants g JOIN devices d ON d.id = g.target_device_id \
             JOIN accounts ta ON ta.id = d.account_id JOIN accounts a ON a.id = g.account_id \
             WHERE ?1 IS NULL OR a.contract_id = ?1 ORDER BY d.name, a.username",
        )?;
        let rows = stmt.query_map([contract_id], |r| {
            Ok(GrantRecord {
                target_device_id: r.get(0)?,
                target: r.get(1)?,
                target_account: r.get(2)?,
                account_id: r.get(3)?,
                account: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The query of [`DeviceStore::authorised_peers`] for a device of `role` (?1 its account,
/// ?2 its id). Same account, plus grants: a target granted to an account is reachable by
/// that account's clients, and those clients are the target's peers.
pub(super) fn peers_sql(role: Role) -> String {
    match role {
        Role::Client => format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
             WHERE d.role = 'target' AND (d.account_id = ?1 OR d.id IN \
                 (SELECT target_device_id FROM grants WHERE account_id = ?1)) ORDER BY d.id"
        ),
        Role::Target => format!(
            "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
             WHERE d.role = 'client' AND (d.account_id = ?1 OR d.account_id IN \
                 (SELECT account_id FROM grants WHERE target_device_id = ?2)) ORDER BY d.id"
        ),
    }
}
