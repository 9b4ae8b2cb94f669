use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::store::*;

const COLUMNS: &str =
    "a.id, a.username, a.contract_id, c.name, a.state, c.state, a.password_hash, a.device_binding, a.created_at, \
     (SELECT t.start_date FROM contract_terms t WHERE t.contract_id = a.contract_id AND t.kind = 'basic'), \
     a.totp_secret IS NOT NULL";
const FROM: &str = "FROM accounts a JOIN contracts c ON c.id = a.contract_id";

fn account_from_row(r: &Row) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        id: r.get(0)?,
        username: r.get(1)?,
        contract_id: r.get(2)?,
        contract: r.get(3)?,
        state: AccountState::parse(&r.get::<_, String>(4)?).unwrap_or(AccountState::Locked),
        contract_state: ContractState::parse(&r.get::<_, String>(5)?).unwrap_or(ContractState::Suspended),
        password_hash: r.get(6)?,
        device_binding: r.get(7)?,
        created_at: r.get(8)?,
        contract_start: r
            .get::<_, Option<String>>(9)?
            .map(|s| super::parse_date(&s))
            .transpose()?,
        totp: r.get(10)?,
    })
}

impl AccountStore for SqliteStore {
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
                &format!("SELECT {COLUMNS} {FROM} WHERE a.username = ?1"),
                [username],
                account_from_row,
            )
            .optional()?)
    }

    fn account_by_id(&self, id: i64) -> StoreResult<AccountRecord> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} {FROM} WHERE a.id = ?1"),
                [id],
                account_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no account with id {id}")))
    }

    fn accounts(&self, contract_id: Option<i64>) -> StoreResult<Vec<AccountRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} {FROM} WHERE ?1 IS NULL OR a.contract_id = ?1 ORDER BY c.name, a.username"
        ))?;
        let rows = stmt.query_map([contract_id], account_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn account_count(&self, contract_id: i64) -> StoreResult<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM accounts WHERE contract_id = ?1",
            [contract_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
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
        let tx = self.conn.savepoint()?; // nests inside `store::atomically`
        tx.execute(
            "UPDATE accounts SET password_hash = ?1 WHERE id = ?2",
            params![password_hash, account_id],
        )?;
        tx.execute(
            "UPDATE devices SET resume_hash = NULL, resume_expires = NULL WHERE account_id = ?1",
            [account_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn account_set_binding(&mut self, account_id: i64, on: bool) -> StoreResult<()> {
        self.conn.execute(
            "UPDATE accounts SET device_binding = ?1 WHERE id = ?2",
            params![on, account_id],
        )?;
        Ok(())
    }

    fn account_totp(&self, account_id: i64) -> StoreResult<Option<AccountTotp>> {
        let row: Option<(Option<String>, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT totp_secret, totp_last_step FROM accounts WHERE id = ?1",
                [account_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Err(StoreError::NotFound(format!("no account with id {account_id}"))),
            Some((secret, last_step)) => Ok(secret.map(|secret| AccountTotp { secret, last_step })),
        }
    }

    fn account_set_totp(&mut self, account_id: i64, secret: Option<(&str, i64)>) -> StoreResult<()> {
        let (secret, step) = match secret {
            Some((s, step)) => (Some(s), Some(step)),
            None => (None, None),
        };
        let n = self.conn.execute(
            "UPDATE accounts SET totp_secret = ?1, totp_last_step = ?2 WHERE id = ?3",
            params![secret, step, account_id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no account with id {account_id}")));
        }
        Ok(())
    }

    fn account_totp_use_step(&mut self, account_id: i64, step: i64) -> StoreResult<bool> {
        let n = self.conn.execute(
            "UPDATE accounts SET totp_last_step = ?2 WHERE id = ?1 AND totp_secret IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < ?2)",
            params![account_id, step],
        )?;
        Ok(n == 1)
    }
}
