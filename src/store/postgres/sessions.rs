use std::net::Ipv4Addr;

use super::{parse_role, PgStore};
use crate::store::*;

impl SessionStore for PgStore {
    fn session_start(&mut self, device_id: i64, source: &str, hub: &str, boot_id: u64) -> StoreResult<i64> {
        self.with(|k| {
            k.query_opt(
                "INSERT INTO sessions (device_id, account_id, device_name, role, overlay_ip, source, started_at, hub, boot_id) \
                 SELECT id, account_id, name, role, overlay_ip, $2, $3, $4, $5 FROM devices WHERE id = $1 RETURNING id",
                &[&device_id, &source, &now(), &hub, &(boot_id as i64)],
            )
        })?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound(format!("no device with id {device_id}")))
    }

    fn session_end(&mut self, session_id: i64, reason: &str, bytes_in: u64, bytes_out: u64) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "UPDATE sessions SET ended_at = $1, end_reason = $2, bytes_in = $3, bytes_out = $4 \
                 WHERE id = $5 AND ended_at IS NULL",
                &[&now(), &reason, &(bytes_in as i64), &(bytes_out as i64), &session_id],
            )
        })?;
        Ok(())
    }

    fn sessions_close_stale(&mut self, reason: &str, hub: &str) -> StoreResult<usize> {
        let n = self.with(|k| {
            k.execute(
                "UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE ended_at IS NULL AND hub = $3",
                &[&now(), &reason, &hub],
            )
        })?;
        Ok(n as usize)
    }

    fn hub_heartbeat(&mut self, hub: &str, now: UnixTime, relay_addr: &str) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "INSERT INTO hubs (name, heartbeat_at, relay_addr) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, relay_addr = excluded.relay_addr",
                &[&hub, &now, &relay_addr],
            )
        })?;
        Ok(())
    }

    fn remote_sessions(&self, hub: &str, alive_since: UnixTime) -> StoreResult<Vec<RemoteSession>> {
        let rows = self.with(|k| {
            k.query(
                "SELECT s.device_id, s.boot_id, h.relay_addr FROM sessions s JOIN hubs h ON h.name = s.hub \
                 WHERE s.ended_at IS NULL AND s.hub <> $1 AND h.heartbeat_at >= $2 AND h.relay_addr <> '' \
                   AND s.device_id IS NOT NULL ORDER BY s.id",
                &[&hub, &alive_since],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| RemoteSession {
                device_id: r.get(0),
                boot_id: r.get::<_, i64>(1) as u64,
                relay_addr: r.get(2),
            })
            .collect())
    }

    fn sessions_close_of_silent_hubs(&mut self, reason: &str, silent_since: UnixTime) -> StoreResult<usize> {
        let n = self.with(|k| {
            k.execute(
                "UPDATE sessions SET ended_at = $1, end_reason = $2 \
                 WHERE ended_at IS NULL AND hub IN (SELECT name FROM hubs WHERE heartbeat_at < $3)",
                &[&now(), &reason, &silent_since],
            )
        })?;
        Ok(n as usize)
    }

    fn lease_take(&mut self, name: &str, holder: &str, now: UnixTime, ttl_secs: i64) -> StoreResult<bool> {
        // One statement, as on SQLite: the upsert takes a free or expired lease or renews
        // one's own, and its WHERE leaves another holder's live lease alone. Two hubs
        // racing for a free lease: the second insert waits on the first's row, then
        // sees it live and changes nothing.
        let n = self.with(|k| {
            k.execute(
                "INSERT INTO leases (name, holder, until_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_at = excluded.until_at \
                 WHERE leases.holder = excluded.holder OR leases.until_at < $4",
                &[&name, &holder, &(now + ttl_secs), &now],
            )
        })?;
        Ok(n == 1)
    }

    fn lease_release(&mut self, name: &str, holder: &str) -> StoreResult<bool> {
        let n = self.with(|k| k.execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[&name, &holder]))?;
        Ok(n == 1)
    }

    fn lease_holder(&self, name: &str) -> StoreResult<Option<String>> {
        let row = self.with(|k| k.query_opt("SELECT holder FROM leases WHERE name = $1", &[&name]))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn sessions(&self, open_only: bool, contract_id: Option<i64>) -> StoreResult<Vec<SessionRecord>> {
        let rows = self.with(|k| {
            k.query(
                "SELECT s.id, s.device_id, s.device_name, a.username, s.role, s.overlay_ip, s.source, s.started_at, \
                        s.ended_at, s.end_reason, s.bytes_in, s.bytes_out, s.hub \
                 FROM sessions s JOIN accounts a ON a.id = s.account_id \
                 WHERE (NOT $1 OR s.ended_at IS NULL) AND ($2::BIGINT IS NULL OR a.contract_id = $2) \
                 ORDER BY s.id DESC LIMIT 1000",
                &[&open_only, &contract_id],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| SessionRecord {
                id: r.get(0),
                device_id: r.get(1),
                device: r.get(2),
                account: r.get(3),
                role: parse_role(r.get(4)),
                overlay_ip: Ipv4Addr::from(r.get::<_, i64>(5) as u32),
                source: r.get(6),
                started_at: r.get(7),
                ended_at: r.get(8),
                end_reason: r.get(9),
                bytes_in: r.get(10),
                bytes_out: r.get(11),
                hub: r.get(12),
            })
            .collect())
    }
}
