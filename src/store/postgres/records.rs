use super::PgStore;
use crate::store::*;

impl PgStore {
    fn admin_email(&self, contract_id: i64) -> StoreResult<String> {
        self.with(|k| k.query_opt("SELECT admin_email FROM contracts WHERE id = $1", &[&contract_id]))?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("no contract with id {contract_id}")))
    }
}

impl RecordStore for PgStore {
    fn audit(&mut self, e: &AuditEntry) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "INSERT INTO audit (at, actor, action, contract_id, account, source, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &now(),
                    &e.actor,
                    &e.action,
                    &e.contract_id,
                    &e.account,
                    &e.source,
                    &e.detail,
                ],
            )
        })?;
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
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        let rows = self.with(|k| {
            k.query(
                "SELECT id, at, actor, action, contract_id, account, source, detail FROM audit \
                 WHERE ($1::BIGINT IS NULL OR contract_id = $1) AND ($2::TEXT IS NULL OR account = $2) \
                 AND ($3::BOOLEAN IS NULL OR ((action LIKE '%refused%' OR action LIKE '%denied%') = $3)) \
                 AND ($4::BIGINT IS NULL OR at >= $4) AND ($5::BIGINT IS NULL OR at < $5) \
                 ORDER BY id DESC LIMIT $6",
                &[&q.contract_id, &q.account, &q.refused, &q.since, &q.until, &limit],
            )
        })?;
        let mut out: Vec<AuditRecord> = rows
            .iter()
            .map(|r| AuditRecord {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                contract_id: r.get(4),
                account: r.get(5),
                source: r.get(6),
                detail: r.get(7),
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    fn notice_add(&mut self, contract_id: i64, kind: &str, subject: &str, body: &str) -> StoreResult<i64> {
        let to = self.admin_email(contract_id)?;
        Ok(self
            .with(|k| {
                k.query_one(
                    "INSERT INTO notices (contract_id, to_email, kind, subject, body, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&contract_id, &to, &kind, &subject, &body, &now()],
                )
            })?
            .get(0))
    }

    fn notice_add_once(
        &mut self,
        contract_id: i64,
        kind: &str,
        key: &str,
        subject: &str,
        body: &str,
    ) -> StoreResult<Option<i64>> {
        let to = self.admin_email(contract_id)?;
        // The unique index decides between hubs: the second insert does nothing.
        Ok(self
            .with(|k| {
                k.query_opt(
                    "INSERT INTO notices (contract_id, to_email, kind, subject, body, created_at, dedup_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
                    &[&contract_id, &to, &kind, &subject, &body, &now(), &key],
                )
            })?
            .map(|r| r.get(0)))
    }

    fn notice_fail(&mut self, id: i64, error: &str) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "UPDATE notices SET attempts = attempts + 1, last_error = $1, failed_at = $2 WHERE id = $3",
                &[&error, &now(), &id],
            )
        })?;
        Ok(())
    }

    fn notices(&self, contract_id: Option<i64>, unsent_only: bool) -> StoreResult<Vec<NoticeRecord>> {
        let rows = self.with(|k| {
            k.query(
                "SELECT n.id, n.contract_id, c.name, n.to_email, n.kind, n.subject, n.body, n.created_at, n.sent_at, \
                        n.attempts, n.last_error, n.failed_at \
                 FROM notices n JOIN contracts c ON c.id = n.contract_id \
                 WHERE ($1::BIGINT IS NULL OR n.contract_id = $1) \
                 AND (NOT $2 OR (n.sent_at IS NULL AND n.failed_at IS NULL)) \
                 ORDER BY n.id",
                &[&contract_id, &unsent_only],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| NoticeRecord {
                id: r.get(0),
                contract_id: r.get(1),
                contract: r.get(2),
                to_email: r.get(3),
                kind: r.get(4),
                subject: r.get(5),
                body: r.get(6),
                created_at: r.get(7),
                sent_at: r.get(8),
                attempts: r.get(9),
                last_error: r.get(10),
                failed_at: r.get(11),
            })
            .collect())
    }

    fn notice_mark(&mut self, id: i64, sent: bool, error: Option<&str>) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "UPDATE notices SET attempts = attempts + 1, last_error = $1, \
                 sent_at = CASE WHEN $2 THEN $3 ELSE sent_at END WHERE id = $4",
                &[&error, &sent, &now(), &id],
            )
        })?;
        Ok(())
    }

    fn outage_add(&mut self, start_at: UnixTime, end_at: UnixTime, note: &str) -> StoreResult<i64> {
        if end_at < start_at {
            return Err(StoreError::Refused("an outage cannot end before it starts".into()));
        }
        Ok(self
            .with(|k| {
                k.query_one(
                    "INSERT INTO outages (start_at, end_at, note) VALUES ($1, $2, $3) RETURNING id",
                    &[&start_at, &end_at, &note],
                )
            })?
            .get(0))
    }

    fn outages(&self) -> StoreResult<Vec<OutageRecord>> {
        let rows = self.with(|k| {
            k.query(
                "SELECT id, start_at, end_at, note, source FROM outages ORDER BY start_at, id",
                &[],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| OutageRecord {
                id: r.get(0),
                start_at: r.get(1),
                end_at: r.get(2),
                note: r.get(3),
                source: r.get(4),
            })
            .collect())
    }

    fn outage_record(&mut self, source: &str, start_at: UnixTime, end_at: UnixTime) -> StoreResult<OutageRecorded> {
        if end_at < start_at {
            return Err(StoreError::Refused("an outage cannot end before it starts".into()));
        }
        // One statement per case, so that two monitors reporting at once cannot both add:
        // the unique index (source, start_at) makes the second insert do nothing.
        let added: Option<i64> = self
            .with(|k| {
                k.query_opt(
                    "INSERT INTO outages (start_at, end_at, note, source) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (source, start_at) WHERE source IS NOT NULL DO NOTHING RETURNING id",
                    &[&start_at, &end_at, &format!("recorded by {source}"), &source],
                )
            })?
            .map(|r| r.get(0));
        if let Some(id) = added {
            return Ok(OutageRecorded::Added(id));
        }
        let extended: Option<i64> = self
            .with(|k| {
                k.query_opt(
                    "UPDATE outages SET end_at = $3 WHERE source = $1 AND start_at = $2 AND end_at < $3 RETURNING id",
                    &[&source, &start_at, &end_at],
                )
            })?
            .map(|r| r.get(0));
        if let Some(id) = extended {
            return Ok(OutageRecorded::Extended(id));
        }
        self.with(|k| {
            k.query_opt(
                "SELECT id FROM outages WHERE source = $1 AND start_at = $2",
                &[&source, &start_at],
            )
        })?
        .map(|r| OutageRecorded::Unchanged(r.get(0)))
        .ok_or_else(|| StoreError::NotFound(format!("the outage {source} recorded at {start_at} was removed")))
    }

    fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(self
            .with(|k| k.query_opt("SELECT value FROM settings WHERE key = $1", &[&key]))?
            .map(|r| r.get(0)))
    }

    fn set_setting(&mut self, key: &str, value: &str) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
        })?;
        Ok(())
    }

    fn external_change_marker(&self) -> StoreResult<i64> {
        // The change feed's sequence (migration 1): it moves with every statement that
        // may change a live session, whichever hub or admin ran it. 0 until the first.
        let r = self.with(|k| k.query_one("SELECT last_value, is_called FROM mcvpn_change_seq", &[]))?;
        let (last, called): (i64, bool) = (r.get(0), r.get(1));
        Ok(if called { last } else { 0 })
    }
}
