use std::net::Ipv4Addr;

use rusqlite::params;

use super::{parse_role, SqliteStore};
use crate::store::*;

impl SessionStore for SqliteStore {
    fn session_start(&mut self, device_id: i64, source: &str) -> StoreResult<i64> {
        let n = self.conn.execute(
            "INSERT INTO sessions (device_id, account_id, device_name, role, overlay_ip, source, started_at) \
             SELECT id, account_id, name, role, overlay_ip, ?2, ?3 FROM devices WHERE id = ?1",
            params![device_id, source, now()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no device with id {device_id}")));
        }
        Ok(self.conn.last_insert_rowid())
    }

    fn session_end(&mut self, session_id: i64, reason: &str, bytes_in: u64, bytes_out: u64) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE sessions SET ended_at = ?1, end_reason = ?2, bytes_in = ?3, bytes_out = ?4 \
             WHERE id = ?5 AND ended_at IS NULL",
            params![now(), reason, bytes_in as i64, bytes_out as i64, session_id],
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
            "SELECT s.id, s.device_id, s.device_name, a.username, s.role, s.overlay_ip, s.source, s.started_at, \
                    s.ended_at, s.end_reason, s.bytes_in, s.bytes_out \
             FROM sessions s JOIN accounts a ON a.id = s.account_id \
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
                bytes_in: r.get(10)?,
                bytes_out: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
