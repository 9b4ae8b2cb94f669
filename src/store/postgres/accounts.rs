use ::postgres::Row;

use super::PgStore;
use crate::store::*;

const COLUMNS: &str =
    "a.id, a.username, a.contract_id, c.name, a.state, c.state, a.password_hash, a.device_binding, a.created_at, \
     (SELECT t.start_date FROM contract_terms t WHERE t.contract_id = a.contract_id AND t.kind = 'basic'), \
     a.totp_secret IS NOT NULL";
const FROM: &str = "FROM accounts a JOIN contracts c ON c.id = a.contract_id";

fn account_from_row(r: &Row) -> AccountRecord {
    AccountRecord {
        id: r.get(0),
        username: r.get(1),
        contract_id: r.get(2),
        contract: r.get(3),
        state: AccountState::parse(r.get(4)).unwrap_or(AccountState::Locked),
        contract_state: ContractState::parse(r.get(5)).unwrap_or(ContractState::Suspended),
        password_hash: r.get(6),
        device_binding: r.get(7),
        created_at: r.get(8),
        contract_start: r.get(9),
        totp: r.get(10),
    }
}

impl AccountStore for PgStore {
    fn account_add(&mut self, contract: &str, username: &str, password_hash: &str) -> StoreResult<AccountRecord> {
        let contract = self.contract_by_name(contract)?;
        if self.account_by_name(username)?.is_some() {
            return Err(StoreError::Conflict(format!("account {username:?} already exists")));
        }
        self.with(|k| {
            k.execute(
                "INSERT INTO accounts (contract_id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
                &[&contract.id, &username, &password_hash, &now()],
            )
        })
        .map_err(|e| match e {
            // Another process added it since the check above.
            StoreError::Conflict(_) => StoreError::Conflict(format!("account {username:?} already exists")),
            e => e,
        })?;
        self.account_by_name(username)?
            .ok_or_else(|| StoreError::NotFound(format!("account {username:?} was removed as it was added")))
    }

    fn account_by_name(&self, username: &str) -> StoreResult<Option<AccountRecord>> {
        Ok(self
            .with(|k| k.query_opt(&format!("SELECT {COLUMNS} {FROM} WHERE a.username = $1"), &[&username]))?
            .map(|r| account_from_row(&r)))
    }

    fn account_by_id(&self, id: i64) -> StoreResult<AccountRecord> {
        self.with(|k| k.query_opt(&format!("SELECT {COLUMNS} {FROM} WHERE a.id = $1"), &[&id]))?
            .map(|r| account_from_row(&r))
            .ok_or_else(|| StoreError::NotFound(format!("no account with id {id}")))
    }

    fn accounts(&self, contract_id: Option<i64>) -> StoreResult<Vec<AccountRecord>> {
        let rows = self.with(|k| {
            k.query(
                &format!(
                    "SELECT {COLUMNS} {FROM} WHERE $1::BIGINT IS NULL OR a.contract_id = $1 ORDER BY c.name, a.username"
                ),
                &[&contract_id],
            )
        })?;
        Ok(rows.iter().map(account_from_row).collect())
    }

    fn account_count(&self, contract_id: i64) -> StoreResult<u64> {
        let n: i64 = self
            .with(|k| k.query_one("SELECT COUNT(*) FROM accounts WHERE contract_id = $1", &[&contract_id]))?
            .get(0);
        Ok(n as u64)
    }

    fn account_set_state(&mut self, account_id: i64, state: AccountState) -> StoreResult<()> {
        let n = self.with(|k| {
            k.execute(
                "UPDATE accounts SET state = $1 WHERE id = $2",
                &[&state.as_str(), &account_id],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no account with id {account_id}")));
        }
        Ok(())
    }

    fn account_set_password(&mut self, account_id: i64, password_hash: &str) -> StoreResult<()> {
        self.atomic(|k| {
            k.execute(
                "UPDATE accounts SET password_hash = $1 WHERE id = $2",
                &[&password_hash, &account_id],
            )?;
            k.execute(
                "UPDATE devices SET resume_hash = NULL, resume_expires = NULL WHERE account_id = $1",
                &[&account_id],
            )?;
            Ok(())
        })
    }

    fn account_set_binding(&mut self, account_id: i64, on: bool) -> StoreResult<()> {
        self.with(|k| {
            k.execute(
                "UPDATE accounts SET device_binding = $1 WHERE id = $2",
                &[&on, &account_id],
            )
        })?;
        Ok(())
    }

    fn account_totp(&self, account_id: i64) -> StoreResult<Option<AccountTotp>> {
        let row = self.with(|k| {
            k.query_opt(
                "SELECT totp_secret, totp_last_step FROM accounts WHERE id = $1",
                &[&account_id],
            )
        })?;
        match row {
            None => Err(StoreError::NotFound(format!("no account with id {account_id}"))),
            Some(r) => Ok(r.get::<_, Option<String>>(0).map(|secret| AccountTotp {
                secret,
                last_step: r.get(1),
            })),
        }
    }

    fn account_set_totp(&mut self, account_id: i64, secret: Option<(&str, i64)>) -> StoreResult<()> {
        let (secret, step) = match secret {
            Some((s, step)) => (Some(s), Some(step)),
            None => (None, None),
        };
        let n = self.with(|k| {
            k.execute(
                "UPDATE accounts SET totp_secret = $1, totp_last_step = $2 WHERE id = $3",
                &[&secret, &step, &account_id],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no account with id {account_id}")));
        }
        Ok(())
    }

    fn account_totp_use_step(&mut self, account_id: i64, step: i64) -> StoreResult<bool> {
        // One statement: the row lock makes a second request with the same code wait,
        // then see the step already taken.
        let n = self.with(|k| {
            k.execute(
                "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_secret IS NOT NULL \
                 AND (totp_last_step IS NULL OR totp_last_step < $2)",
                &[&account_id, &step],
            )
        })?;
        Ok(n == 1)
    }
}
