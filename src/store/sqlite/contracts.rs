use chrono::NaiveDate;
use rusqlite::{params, OptionalExtension, Row};

use super::{exists, parse_date, SqliteStore};
use crate::contract::ContractKind;
use crate::store::*;

const COLUMNS: &str = "id, name, kind, state, state_reason, address, phone, department, sales_agent, \
     admin_name, admin_email, admin_account_id, terminate_at, created_at, ended_on, terminate_on_notice, device_limit";

fn contract_from_row(r: &Row) -> rusqlite::Result<ContractRecord> {
    Ok(ContractRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: ContractKind::parse(&r.get::<_, String>(2)?).unwrap_or(ContractKind::Corporation),
        state: ContractState::parse(&r.get::<_, String>(3)?).unwrap_or(ContractState::Suspended),
        state_reason: r.get(4)?,
        address: r.get(5)?,
        phone: r.get(6)?,
        department: r.get(7)?,
        sales_agent: r.get(8)?,
        admin_name: r.get(9)?,
        admin_email: r.get(10)?,
        admin_account_id: r.get(11)?,
        terminate_at: r.get(12)?,
        created_at: r.get(13)?,
        ended_on: r.get::<_, Option<String>>(14)?.map(|s| parse_date(&s)).transpose()?,
        terminate_on_notice: r.get(15)?,
        device_limit: r.get(16)?,
    })
}

fn term_from_row(r: &Row) -> rusqlite::Result<TermRecord> {
    Ok(TermRecord {
        id: r.get(0)?,
        contract_id: r.get(1)?,
        kind: if r.get::<_, String>(2)? == "basic" {
            TermKind::Basic
        } else {
            TermKind::Additional
        },
        start: parse_date(&r.get::<_, String>(3)?)?,
        accounts: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn date_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl ContractStore for SqliteStore {
    fn contract_add(&mut self, c: &NewContract) -> StoreResult<ContractRecord> {
        let name = c.name.trim();
        if name.is_empty() {
            return Err(StoreError::Refused("a contract needs a name".into()));
        }
        if c.accounts == 0 {
            return Err(StoreError::Refused(
                "a basic contract needs at least one account".into(),
            ));
        }
        if exists(&self.conn, "SELECT 1 FROM contracts WHERE name = ?1", [name])? {
            return Err(StoreError::Conflict(format!("contract {name:?} already exists")));
        }
        let tx = self.conn.savepoint()?; // nests inside `store::atomically`
        let now = now();
        tx.execute(
            "INSERT INTO contracts (name, kind, address, phone, department, sales_agent, admin_name, admin_email, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                name,
                c.kind.as_str(),
                c.address,
                c.phone,
                c.department,
                c.sales_agent,
                c.admin_name,
                c.admin_email,
                now
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO contract_terms (contract_id, kind, start_date, accounts, created_at) \
             VALUES (?1, 'basic', ?2, ?3, ?4)",
            params![id, date_str(c.start), c.accounts, now],
        )?;
        tx.commit()?;
        self.contract_by_id(id)
    }

    fn contract_by_name(&self, name: &str) -> StoreResult<ContractRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM contracts WHERE name = ?1"),
                [name],
                contract_from_row,
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::NotFound(format!("no contract named {name:?} (see `mcvpn admin contract list`)"))
            })
    }

    fn contract_by_id(&self, id: i64) -> StoreResult<ContractRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM contracts WHERE id = ?1"),
                [id],
                contract_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no contract with id {id}")))
    }

    fn contracts(&self) -> StoreResult<Vec<ContractRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM contracts ORDER BY name"))?;
        let rows = stmt.query_map([], contract_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn contract_update(&mut self, id: i64, field: ContractField, value: &str, actor: &str) -> StoreResult<String> {
        let col = field.column();
        let old: Option<String> = self
            .conn
            // As text whatever the column's type (the history records text).
            .query_row(
                &format!("SELECT CAST({col} AS TEXT) FROM contracts WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no contract with id {id}")))?;
        if field == ContractField::Name
            && exists(
                &self.conn,
                "SELECT 1 FROM contracts WHERE name = ?1 AND id != ?2",
                params![value, id],
            )?
        {
            return Err(StoreError::Conflict(format!("contract {value:?} already exists")));
        }
        if field == ContractField::DeviceLimit && value.parse::<u32>().is_err() {
            return Err(StoreError::Refused(format!(
                "the device limit is a number of devices, not {value:?}"
            )));
        }
        let old = old.unwrap_or_default();
        let tx = self.conn.savepoint()?; // nests inside `store::atomically`
        let new: Option<&str> = if field == ContractField::SalesAgent && value.is_empty() {
            None
        } else {
            Some(value)
        };
        tx.execute(
            &format!("UPDATE contracts SET {col} = ?1 WHERE id = ?2"),
            params![new, id],
        )?;
        if field == ContractField::AdminEmail {
            // Art. 17, 39-2: notices still in the outbox go to the new address.
            tx.execute(
                "UPDATE notices SET to_email = ?1 WHERE contract_id = ?2 AND sent_at IS NULL AND failed_at IS NULL",
                params![value, id],
            )?;
        }
        tx.execute(
            "INSERT INTO contract_history (contract_id, at, actor, field, old_value, new_value) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, now(), actor, col, old, value],
        )?;
        tx.commit()?;
        Ok(old)
    }

    fn contract_history(&self, id: i64) -> StoreResult<Vec<HistoryRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT at, actor, field, old_value, new_value FROM contract_history WHERE contract_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(HistoryRecord {
                at: r.get(0)?,
                actor: r.get(1)?,
                field: r.get(2)?,
                old_value: r.get(3)?,
                new_value: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn contract_set_state(&mut self, id: i64, state: ContractState, reason: Option<&str>) -> StoreResult<()> {
        let n = self.conn.execute(
            "UPDATE contracts SET state = ?1, state_reason = ?2 WHERE id = ?3",
            params![state.as_str(), reason, id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no contract with id {id}")));
        }
        Ok(())
    }

    fn contract_schedule_termination(&mut self, id: i64, at: Option<UnixTime>) -> StoreResult<()> {
        self.conn
            .execute("UPDATE contracts SET terminate_at = ?1 WHERE id = ?2", params![at, id])?;
        Ok(())
    }

    fn contract_terminate_on_notice(&mut self, id: i64, on: bool) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE contracts SET terminate_on_notice = ?1 WHERE id = ?2",
            params![on, id],
        )?;
        Ok(())
    }

    fn contract_set_ended(&mut self, id: i64, last_day: Option<NaiveDate>) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE contracts SET ended_on = ?1 WHERE id = ?2",
            params![last_day.map(date_str), id],
        )?;
        Ok(())
    }

    fn contract_set_admin_account(&mut self, id: i64, account_id: Option<i64>) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE contracts SET admin_account_id = ?1 WHERE id = ?2",
            params![account_id, id],
        )?;
        Ok(())
    }

    fn terms(&self, contract_id: i64) -> StoreResult<Vec<TermRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, contract_id, kind, start_date, accounts, created_at FROM contract_terms \
             WHERE contract_id = ?1 ORDER BY kind = 'additional', start_date, id",
        )?;
        let rows = stmt.query_map([contract_id], term_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn term_add(&mut self, contract_id: i64, start: NaiveDate, accounts: u32) -> StoreResult<TermRecord> {
        self.conn.execute(
            "INSERT INTO contract_terms (contract_id, kind, start_date, accounts, created_at) \
             VALUES (?1, 'additional', ?2, ?3, ?4)",
            params![contract_id, date_str(start), accounts, now()],
        )?;
        let id = self.conn.last_insert_rowid();
        Ok(self.conn.query_row(
            "SELECT id, contract_id, kind, start_date, accounts, created_at FROM contract_terms WHERE id = ?1",
            [id],
            term_from_row,
        )?)
    }

    fn cancellation_set(&mut self, contract_id: i64, c: &CancellationRecord) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO cancellations (contract_id, received, requested_end, effective, actor, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT(contract_id) DO UPDATE SET received = excluded.received, \
             requested_end = excluded.requested_end, effective = excluded.effective, \
             actor = excluded.actor, created_at = excluded.created_at",
            params![
                contract_id,
                date_str(c.received),
                c.requested_end.map(date_str),
                date_str(c.effective),
                c.actor,
                c.created_at
            ],
        )?;
        Ok(())
    }

    fn cancellation(&self, contract_id: i64) -> StoreResult<Option<CancellationRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT received, requested_end, effective, actor, created_at FROM cancellations WHERE contract_id = ?1",
                [contract_id],
                |r| {
                    Ok(CancellationRecord {
                        received: parse_date(&r.get::<_, String>(0)?)?,
                        requested_end: r.get::<_, Option<String>>(1)?.map(|s| parse_date(&s)).transpose()?,
                        effective: parse_date(&r.get::<_, String>(2)?)?,
                        actor: r.get(3)?,
                        created_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }
}
