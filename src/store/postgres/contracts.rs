use ::postgres::Row;
use chrono::NaiveDate;

use super::{to_u32, PgStore};
use crate::contract::ContractKind;
use crate::store::*;

const COLUMNS: &str = "id, name, kind, state, state_reason, address, phone, department, sales_agent, \
     admin_name, admin_email, admin_account_id, terminate_at, created_at, ended_on, terminate_on_notice, device_limit";

const TERM_COLUMNS: &str = "id, contract_id, kind, start_date, accounts, created_at";

fn contract_from_row(r: &Row) -> ContractRecord {
    ContractRecord {
        id: r.get(0),
        name: r.get(1),
        kind: ContractKind::parse(r.get(2)).unwrap_or(ContractKind::Corporation),
        state: ContractState::parse(r.get(3)).unwrap_or(ContractState::Suspended),
        state_reason: r.get(4),
        address: r.get(5),
        phone: r.get(6),
        department: r.get(7),
        sales_agent: r.get(8),
        admin_name: r.get(9),
        admin_email: r.get(10),
        admin_account_id: r.get(11),
        terminate_at: r.get(12),
        created_at: r.get(13),
        ended_on: r.get(14),
        terminate_on_notice: r.get(15),
        device_limit: to_u32(r.get(16)),
    }
}

fn term_from_row(r: &Row) -> TermRecord {
    TermRecord {
        id: r.get(0),
        contract_id: r.get(1),
        kind: if r.get::<_, &str>(2) == "basic" {
            TermKind::Basic
        } else {
            TermKind::Additional
        },
        start: r.get(3),
        accounts: to_u32(r.get(4)),
        created_at: r.get(5),
    }
}

impl ContractStore for PgStore {
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
        if self
            .with(|k| k.query_opt("SELECT 1 FROM contracts WHERE name = $1", &[&name]))?
            .is_some()
        {
            return Err(StoreError::Conflict(format!("contract {name:?} already exists")));
        }
        let now = now();
        let id: i64 = self
            .atomic(|k| {
                let id: i64 = k
                    .query_one(
                        "INSERT INTO contracts (name, kind, address, phone, department, sales_agent, admin_name, \
                         admin_email, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                        &[
                            &name,
                            &c.kind.as_str(),
                            &c.address,
                            &c.phone,
                            &c.department,
                            &c.sales_agent,
                            &c.admin_name,
                            &c.admin_email,
                            &now,
                        ],
                    )?
                    .get(0);
                k.execute(
                    "INSERT INTO contract_terms (contract_id, kind, start_date, accounts, created_at) \
                     VALUES ($1, 'basic', $2, $3, $4)",
                    &[&id, &c.start, &i64::from(c.accounts), &now],
                )?;
                Ok(id)
            })
            .map_err(|e| match e {
                StoreError::Conflict(_) => StoreError::Conflict(format!("contract {name:?} already exists")),
                e => e,
            })?;
        self.contract_by_id(id)
    }

    fn contract_by_name(&self, name: &str) -> StoreResult<ContractRecord> {
        self.with(|k| k.query_opt(&format!("SELECT {COLUMNS} FROM contracts WHERE name = $1"), &[&name]))?
            .map(|r| contract_from_row(&r))
            .ok_or_else(|| {
                StoreError::NotFound(format!("no contract named {name:?} (see `mcvpn admin contract list`)"))
            })
    }

    fn contract_by_id(&self, id: i64) -> StoreResult<ContractRecord> {
        self.with(|k| k.query_opt(&format!("SELECT {COLUMNS} FROM contracts WHERE id = $1"), &[&id]))?
            .map(|r| contract_from_row(&r))
            .ok_or_else(|| StoreError::NotFound(format!("no contract with id {id}")))
    }

    fn contracts(&self) -> StoreResult<Vec<ContractRecord>> {
        let rows = self.with(|k| k.query(&format!("SELECT {COLUMNS} FROM contracts ORDER BY name"), &[]))?;
        Ok(rows.iter().map(contract_from_row).collect())
    }

    fn contract_update(&mut self, id: i64, field: ContractField, value: &str, actor: &str) -> StoreResult<String> {
        let col = field.column();
        let old: Option<String> = self
            // As text whatever the column's type (the history records text).
            .with(|k| {
                k.query_opt(
                    &format!("SELECT CAST({col} AS TEXT) FROM contracts WHERE id = $1"),
                    &[&id],
                )
            })?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("no contract with id {id}")))?;
        if field == ContractField::Name
            && self
                .with(|k| k.query_opt("SELECT 1 FROM contracts WHERE name = $1 AND id != $2", &[&value, &id]))?
                .is_some()
        {
            return Err(StoreError::Conflict(format!("contract {value:?} already exists")));
        }
        let limit =
            if field == ContractField::DeviceLimit {
                Some(value.parse::<u32>().map_err(|_| {
                    StoreError::Refused(format!("the device limit is a number of devices, not {value:?}"))
                })?)
            } else {
                None
            };
        let old = old.unwrap_or_default();
        let new: Option<&str> = if field == ContractField::SalesAgent && value.is_empty() {
            None
        } else {
            Some(value)
        };
        self.atomic(|k| {
            match limit {
                Some(n) => k.execute(
                    "UPDATE contracts SET device_limit = $1 WHERE id = $2",
                    &[&i64::from(n), &id],
                )?,
                None => k.execute(&format!("UPDATE contracts SET {col} = $1 WHERE id = $2"), &[&new, &id])?,
            };
            if field == ContractField::AdminEmail {
                // Art. 17, 39-2: notices still in the outbox go to the new address.
                k.execute(
                    "UPDATE notices SET to_email = $1 WHERE contract_id = $2 AND sent_at IS NULL AND failed_at IS NULL",
                    &[&value, &id],
                )?;
            }
            k.execute(
                "INSERT INTO contract_history (contract_id, at, actor, field, old_value, new_value) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &now(), &actor, &col, &old, &value],
            )?;
            Ok(())
        })?;
        Ok(old)
    }

    fn contract_history(&self, id: i64) -> StoreResult<Vec<HistoryRecord>> {
        let rows = self.with(|k| {
            k.query(
                "SELECT at, actor, field, old_value, new_value FROM contract_history WHERE contract_id = $1 ORDER BY id",
                &[&id],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| HistoryRecord {
                at: r.get(0),
                actor: r.get(1),
                field: r.get(2),
                old_value: r.get(3),
                new_value: r.get(4),
            })
            .collect())
    }

    fn contract_set_state(&mut self, id: i64, state: ContractState, reason: Option<&str>) -> StoreResult<()> {
        let n = self.with(|k| {
            k.execute(
                "UPDATE contracts SET state = $1, state_reason = $2 WHERE id = $3",
                &[&state.as_str(), &reason, &id],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no contract with id {id}")));
        }
        Ok(())
    }

    fn contract_schedule_termination(&mut self, id: i64, at: Option<UnixTime>) -> StoreResult<()> {
        self.with(|k| k.execute("UPDATE contracts SET terminate_at = $1 WHERE id = $2", &[&at, &id]))?;
        Ok(())
    }

    fn contract_terminate_on_notice(&mut self, id: i64, on: bool) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "UPDATE contracts SET terminate_on_notice = $1 WHERE id = $2",
                &[&on, &id],
            )
        })?;
        Ok(())
    }

    fn contract_set_ended(&mut self, id: i64, last_day: Option<NaiveDate>) -> StoreResult<()> {
        self.with(|k| k.execute("UPDATE contracts SET ended_on = $1 WHERE id = $2", &[&last_day, &id]))?;
        Ok(())
    }

    fn contract_set_admin_account(&mut self, id: i64, account_id: Option<i64>) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "UPDATE contracts SET admin_account_id = $1 WHERE id = $2",
                &[&account_id, &id],
            )
        })?;
        Ok(())
    }

    fn terms(&self, contract_id: i64) -> StoreResult<Vec<TermRecord>> {
        let rows = self.with(|k| {
            k.query(
                &format!(
                    "SELECT {TERM_COLUMNS} FROM contract_terms WHERE contract_id = $1 \
                     ORDER BY kind = 'additional', start_date, id"
                ),
                &[&contract_id],
            )
        })?;
        Ok(rows.iter().map(term_from_row).collect())
    }

    fn term_add(&mut self, contract_id: i64, start: NaiveDate, accounts: u32) -> StoreResult<TermRecord> {
        let row = self.with(|k| {
            k.query_one(
                &format!(
                    "INSERT INTO contract_terms (contract_id, kind, start_date, accounts, created_at) \
                     VALUES ($1, 'additional', $2, $3, $4) RETURNING {TERM_COLUMNS}"
                ),
                &[&contract_id, &start, &i64::from(accounts), &now()],
            )
        })?;
        Ok(term_from_row(&row))
    }

    fn cancellation_set(&mut self, contract_id: i64, c: &CancellationRecord) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "INSERT INTO cancellations (contract_id, received, requested_end, effective, actor, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (contract_id) DO UPDATE SET received = excluded.received, \
                 requested_end = excluded.requested_end, effective = excluded.effective, \
                 actor = excluded.actor, created_at = excluded.created_at",
                &[
                    &contract_id,
                    &c.received,
                    &c.requested_end,
                    &c.effective,
                    &c.actor,
                    &c.created_at,
                ],
            )
        })?;
        Ok(())
    }

    fn cancellation(&self, contract_id: i64) -> StoreResult<Option<CancellationRecord>> {
        Ok(self
            .with(|k| {
                k.query_opt(
                    "SELECT received, requested_end, effective, actor, created_at FROM cancellations \
                     WHERE contract_id = $1",
                    &[&contract_id],
                )
            })?
            .map(|r| CancellationRecord {
                received: r.get(0),
                requested_end: r.get(1),
                effective: r.get(2),
                actor: r.get(3),
                created_at: r.get(4),
            }))
    }
}
