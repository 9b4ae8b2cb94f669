use ::postgres::Row;

use super::{to_u32, PgStore};
use crate::store::*;

const COLUMNS: &str = "id, start_at, end_at, reason, emergency, notice_days, created_at, cancelled_at";

fn window(r: &Row) -> MaintenanceRecord {
    MaintenanceRecord {
        id: r.get(0),
        start_at: r.get(1),
        end_at: r.get(2),
        reason: r.get(3),
        emergency: r.get(4),
        notice_days: to_u32(r.get(5)),
        created_at: r.get(6),
        cancelled_at: r.get(7),
    }
}

impl MaintenanceStore for PgStore {
    fn maintenance_add(&mut self, w: &NewMaintenance) -> StoreResult<i64> {
        if w.end_at <= w.start_at {
            return Err(StoreError::Refused(
                "a maintenance window must end after it starts".into(),
            ));
        }
        Ok(self
            .with(|k| {
                k.query_one(
                    "INSERT INTO maintenance_windows (start_at, end_at, reason, emergency, notice_days, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[
                        &w.start_at,
                        &w.end_at,
                        &w.reason,
                        &w.emergency,
                        &i64::from(w.notice_days),
                        &now(),
                    ],
                )
            })?
            .get(0))
    }

    fn maintenance_windows(&self) -> StoreResult<Vec<MaintenanceRecord>> {
        let rows = self.with(|k| {
            k.query(
                &format!("SELECT {COLUMNS} FROM maintenance_windows ORDER BY start_at, id"),
                &[],
            )
        })?;
        Ok(rows.iter().map(window).collect())
    }

    fn maintenance_cancel(&mut self, id: i64, at: UnixTime) -> StoreResult<MaintenanceRecord> {
        let w = self
            .with(|k| {
                k.query_opt(
                    &format!("SELECT {COLUMNS} FROM maintenance_windows WHERE id = $1"),
                    &[&id],
                )
            })?
            .map(|r| window(&r))
            .ok_or_else(|| StoreError::NotFound(format!("no maintenance window {id}")))?;
        if w.cancelled_at.is_some() {
            return Err(StoreError::Refused(format!(
                "maintenance window {id} was cancelled before"
            )));
        }
        if w.end_at <= at {
            return Err(StoreError::Refused(format!(
                "maintenance window {id} has ended; an ended window cannot be cancelled"
            )));
        }
        self.with(|k| {
            k.execute(
                "UPDATE maintenance_windows SET cancelled_at = $1 WHERE id = $2",
                &[&at, &id],
            )
        })?;
        Ok(MaintenanceRecord {
            cancelled_at: Some(at),
            ..w
        })
    }

    fn notice_queued(&self, contract_id: i64, key: &str) -> StoreResult<bool> {
        Ok(self
            .with(|k| {
                k.query_opt(
                    "SELECT 1 FROM notices WHERE contract_id = $1 AND dedup_key = $2",
                    &[&contract_id, &key],
                )
            })?
            .is_some())
    }
}
