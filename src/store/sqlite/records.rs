use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::store::*;

impl RecordStore for SqliteStore {
    fn audit(&mut self, e: &AuditEntry) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO audit (at, actor, action, contract_id, account, source, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![now(), e.actor, e.action, e.contract_id, e.account, e.source, e.detail],
        )?;
        Ok(())
    }

    fn audit_log(&self, contract_id: Option<i64>, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        self.audit_search(&AuditQuery {
            contract_id,
            limit,
            ..AuditQuery::default()
        })
    }

    fn audit_search(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        // One statement for every combination: a NULL parameter switches its filter off.
        // The contract's rows come newest first from `audit_by_contract`, so a page of a
        // large log stops after `limit` matches.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, actor, action, contract_id, account, source, detail FROM audit \
             WHERE (?1 IS NULL OR contract_id = ?1) AND (?2 IS NULL OR account = ?2) \
             AND (?3 IS NULL OR ((action LIKE '%refused%' OR action LIKE '%denied%') = ?3)) \
             AND (?4 IS NULL OR at >= ?4) AND (?5 IS NULL OR at < ?5) \
             ORDER BY id DESC LIMIT ?6",
        )?;
        let rows = stmt.query_map(
            params![q.contract_id, q.account, q.refused, q.since, q.until, q.limit as i64],
            |r| {
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
            },
        )?;
        let mut out: Vec<AuditRecord> = rows.collect::<Result<_, _>>()?;
        out.reverse();
        Ok(out)
    }

    fn notice_add(&mut self, contract_id: i64, kind: &str, subject: &str, body: &str) -> StoreResult<i64> {
        let to: String = self
            .conn
            .query_row("SELECT admin_email FROM contracts WHERE id = ?1", [contract_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no contract with id {contract_id}")))?;
        self.conn.execute(
            "INSERT INTO notices (contract_id, to_email, kind, subject, body, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![contract_id, to, kind, subject, body, now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn notice_add_once(
        &mut self,
        contract_id: i64,
        kind: &str,
        key: &str,
        subject: &str,
        body: &str,
    ) -> StoreResult<Option<i64>> {
        let to: String = self
            .conn
            .query_row("SELECT admin_email FROM contracts WHERE id = ?1", [contract_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no contract with id {contract_id}")))?;
        let n = self.conn.execute(
            "INSERT INTO notices (contract_id, to_email, kind, subject, body, created_at, dedup_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            params![contract_id, to, kind, subject, body, now(), key],
        )?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    fn notice_fail(&mut self, id: i64, error: &str) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE notices SET attempts = attempts + 1, last_error = ?1, failed_at = ?2 WHERE id = ?3",
            params![error, now(), id],
        )?;
        Ok(())
    }

    fn notices(&self, contract_id: Option<i64>, unsent_only: bool) -> StoreResult<Vec<NoticeRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT n.id, n.contract_id, c.name, n.to_email, n.kind, n.subject, n.body, n.created_at, n.sent_at, \
                    n.attempts, n.last_error, n.failed_at \
             FROM notices n JOIN contracts c ON c.id = n.contract_id \
             WHERE (?1 IS NULL OR n.contract_id = ?1) AND (?2 = 0 OR (n.sent_at IS NULL AND n.failed_at IS NULL)) \
             ORDER BY n.id",
        )?;
        let rows = stmt.query_map(params![contract_id, unsent_only as i64], |r| {
            Ok(NoticeRecord {
                id: r.get(0)?,
                contract_id: r.get(1)?,
                contract: r.get(2)?,
                to_email: r.get(3)?,
                kind: r.get(4)?,
                subject: r.get(5)?,
                body: r.get(6)?,
                created_at: r.get(7)?,
                sent_at: r.get(8)?,
                attempts: r.get(9)?,
                last_error: r.get(10)?,
                failed_at: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn notice_mark(&mut self, id: i64, sent: bool, error: Option<&str>) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE notices SET attempts = attempts + 1, last_error = ?1, \
             sent_at = CASE WHEN ?2 THEN ?3 ELSE sent_at END WHERE id = ?4",
            params![error, sent, now(), id],
        )?;
        Ok(())
    }

    fn outage_add(&mut self, start_at: UnixTime, end_at: UnixTime, note: &str) -> StoreResult<i64> {
        if end_at < start_at {
            return Err(StoreError::Refused("an outage cannot end before it starts".into()));
        }
        self.conn.execute(
            "INSERT INTO outages (start_at, end_at, note) VALUES (?1, ?2, ?3)",
            params![start_at, end_at, note],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn outages(&self) -> StoreResult<Vec<OutageRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, start_at, end_at, note, source FROM outages ORDER BY start_at, id")?;
        let rows = stmt.query_map([], |r| {
            Ok(OutageRecord {
                id: r.get(0)?,
                start_at: r.get(1)?,
                end_at: r.get(2)?,
                note: r.get(3)?,
                source: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn outage_record(&mut self, source: &str, start_at: UnixTime, end_at: UnixTime) -> StoreResult<OutageRecorded> {
        if end_at < start_at {
            return Err(StoreError::Refused("an outage cannot end before it starts".into()));
        }
        let known: Option<(i64, UnixTime)> = self
            .conn
            .query_row(
                "SELECT id, end_at FROM outages WHERE source = ?1 AND start_at = ?2",
                params![source, start_at],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match known {
            None => {
                self.conn.execute(
                    "INSERT INTO outages (start_at, end_at, note, source) VALUES (?1, ?2, ?3, ?4)",
                    params![start_at, end_at, format!("recorded by {source}"), source],
                )?;
                OutageRecorded::Added(self.conn.last_insert_rowid())
            }
            Some((id, known_end)) if end_at > known_end => {
                self.conn
                    .execute("UPDATE outages SET end_at = ?1 WHERE id = ?2", params![end_at, id])?;
                OutageRecorded::Extended(id)
            }
            Some((id, _)) => OutageRecorded::Unchanged(id),
        })
    }

    fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_setting(&mut self, key: &str, value: &str) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    fn external_change_marker(&self) -> StoreResult<i64> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}
