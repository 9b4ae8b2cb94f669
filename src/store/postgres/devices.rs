use std::net::Ipv4Addr;

use ::postgres::Row;

use super::{parse_role, PgStore};
use crate::store::*;

const DEVICE_COLUMNS: &str = "d.id, d.account_id, a.username, d.role, d.public_key, d.name, d.overlay_ip, \
     d.resume_hash, d.resume_expires, d.created_at, d.last_seen";

/// How many times a registration picks another address when a hub took the one it
/// chose between its read and its insert.
const ALLOCATION_TRIES: usize = 8;

fn device_from_row(r: &Row) -> DeviceRecord {
    let key: Vec<u8> = r.get(4);
    let key: [u8; 32] = key.try_into().unwrap_or([0; 32]);
    DeviceRecord {
        id: r.get(0),
        account_id: r.get(1),
        account: r.get(2),
        role: parse_role(r.get(3)),
        public_key: Key32(key),
        name: r.get(5),
        overlay_ip: Ipv4Addr::from(r.get::<_, i64>(6) as u32),
        resume_hash: r.get(7),
        resume_expires: r.get(8),
        created_at: r.get(9),
        last_seen: r.get(10),
    }
}

impl PgStore {
    fn allocate_overlay_ip(&self, overlay: OverlayNet) -> StoreResult<u32> {
        let (first, last) = overlay.host_range();
        let (first_i, last_i) = (i64::from(first), i64::from(last));
        let max: Option<i64> = self
            .with(|k| {
                k.query_one(
                    "SELECT MAX(overlay_ip) FROM devices WHERE overlay_ip BETWEEN $1 AND $2",
                    &[&first_i, &last_i],
                )
            })?
            .get(0);
        match max {
            None => Ok(first),
            Some(m) if (m as u32) < last => Ok(m as u32 + 1),
            Some(_) => {
                // The top is taken: look for the lowest free address left by a removed device.
                if self
                    .with(|k| k.query_opt("SELECT 1 FROM devices WHERE overlay_ip = $1", &[&first_i]))?
                    .is_none()
                {
                    return Ok(first);
                }
                let gap: Option<i64> = self
                    .with(|k| {
                        k.query_opt(
                            "SELECT d.overlay_ip + 1 FROM devices d WHERE d.overlay_ip BETWEEN $1 AND $2 \
                             AND NOT EXISTS (SELECT 1 FROM devices e WHERE e.overlay_ip = d.overlay_ip + 1) \
                             ORDER BY d.overlay_ip LIMIT 1",
                            &[&first_i, &(last_i - 1)],
                        )
                    })?
                    .map(|r| r.get(0));
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

impl DeviceStore for PgStore {
    fn device_by_key(&self, key: &Key32, role: Role, account_id: Option<i64>) -> StoreResult<Option<DeviceRecord>> {
        Ok(self
            .with(|k| {
                k.query_opt(
                    &format!(
                        "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
                         WHERE d.public_key = $1 AND d.role = $2 AND ($3::BIGINT IS NULL OR d.account_id = $3) \
                         ORDER BY d.id LIMIT 1"
                    ),
                    &[&&key.0[..], &role.as_str(), &account_id],
                )
            })?
            .map(|r| device_from_row(&r)))
    }

    fn device_by_id(&self, id: i64) -> StoreResult<DeviceRecord> {
        self.with(|k| {
            k.query_opt(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.id = $1"
                ),
                &[&id],
            )
        })?
        .map(|r| device_from_row(&r))
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
            let (limit, account): (i64, String) = self
                .with(|k| {
                    k.query_opt(
                        "SELECT c.device_limit, a.username FROM accounts a JOIN contracts c ON c.id = a.contract_id \
                         WHERE a.id = $1",
                        &[&account_id],
                    )
                })?
                .map(|r| (r.get(0), r.get(1)))
                .ok_or_else(|| StoreError::NotFound(format!("no account with id {account_id}")))?;
            let limit = super::to_u32(limit);
            if self.device_count(account_id, Role::Client)? >= u64::from(limit) {
                return Err(StoreError::DeviceLimit { account, limit });
            }
        }
        for _ in 0..ALLOCATION_TRIES {
            let ip = i64::from(self.allocate_overlay_ip(overlay)?);
            // Another hub may have taken the address since it was read: pick again then.
            let id: Option<i64> = self
                .with(|k| {
                    k.query_opt(
                        "INSERT INTO devices (account_id, role, public_key, name, overlay_ip, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (overlay_ip) DO NOTHING RETURNING id",
                        &[&account_id, &role.as_str(), &&key.0[..], &name, &ip, &now()],
                    )
                })?
                .map(|r| r.get(0));
            if let Some(id) = id {
                return self.device_by_id(id);
            }
        }
        Err(StoreError::Conflict(
            "other hubs took every overlay address this registration chose; log in again".into(),
        ))
    }

    fn device_set_resume(&mut self, device_id: i64, hash: Option<&[u8]>, expires: Option<UnixTime>) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "UPDATE devices SET resume_hash = $1, resume_expires = $2 WHERE id = $3",
                &[&hash, &expires, &device_id],
            )
        })?;
        Ok(())
    }

    fn device_touch(&mut self, device_id: i64) -> StoreResult<()> {
        self.with(|k| k.execute("UPDATE devices SET last_seen = $1 WHERE id = $2", &[&now(), &device_id]))?;
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
        self.with(|k| k.execute("DELETE FROM devices WHERE id = $1", &[&device_id]))?;
        Ok(())
    }

    fn device_count(&self, account_id: i64, role: Role) -> StoreResult<u64> {
        let n: i64 = self
            .with(|k| {
                k.query_one(
                    "SELECT COUNT(*) FROM devices WHERE account_id = $1 AND role = $2",
                    &[&account_id, &role.as_str()],
                )
            })?
            .get(0);
        Ok(n as u64)
    }

    fn devices(&self, role: Option<Role>, contract_id: Option<i64>) -> StoreResult<Vec<DeviceRecord>> {
        let role = role.map(|r| r.as_str());
        let rows = self.with(|k| {
            k.query(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
                     WHERE ($1::TEXT IS NULL OR d.role = $1) AND ($2::BIGINT IS NULL OR a.contract_id = $2) \
                     ORDER BY d.id"
                ),
                &[&role, &contract_id],
            )
        })?;
        Ok(rows.iter().map(device_from_row).collect())
    }

    fn authorised_peers(&self, device: &DeviceRecord) -> StoreResult<Vec<DeviceRecord>> {
        let rows = self.with(|k| match device.role {
            Role::Client => k.query(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
                     WHERE d.role = 'target' AND (d.account_id = $1 OR d.id IN \
                         (SELECT target_device_id FROM grants WHERE account_id = $1)) ORDER BY d.id"
                ),
                &[&device.account_id],
            ),
            Role::Target => k.query(
                &format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices d JOIN accounts a ON a.id = d.account_id \
                     WHERE d.role = 'client' AND (d.account_id = $1 OR d.account_id IN \
                         (SELECT account_id FROM grants WHERE target_device_id = $2)) ORDER BY d.id"
                ),
                &[&device.account_id, &device.id],
            ),
        })?;
        Ok(rows.iter().map(device_from_row).collect())
    }

    fn grant_add(&mut self, target_device_id: i64, account_id: i64) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "INSERT INTO grants (target_device_id, account_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&target_device_id, &account_id, &now()],
            )
        })?;
        Ok(())
    }

    fn grant_remove(&mut self, target_device_id: i64, account_id: i64) -> StoreResult<bool> {
        Ok(self.with(|k| {
            k.execute(
                "DELETE FROM grants WHERE target_device_id = $1 AND account_id = $2",
                &[&target_device_id, &account_id],
            )
        })? > 0)
    }

    fn grants(&self, contract_id: Option<i64>) -> StoreResult<Vec<GrantRecord>> {
        let rows = self.with(|k| {
            k.query(
                "SELECT g.target_device_id, d.name, ta.username, g.account_id, a.username, g.created_at \
                 FROM grants g JOIN devices d ON d.id = g.target_device_id \
                 JOIN accounts ta ON ta.id = d.account_id JOIN accounts a ON a.id = g.account_id \
                 WHERE $1::BIGINT IS NULL OR a.contract_id = $1 ORDER BY d.name, a.username",
                &[&contract_id],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| GrantRecord {
                target_device_id: r.get(0),
                target: r.get(1),
                target_account: r.get(2),
                account_id: r.get(3),
                account: r.get(4),
                created_at: r.get(5),
            })
            .collect())
    }
}
