use rusqlite::{params, OptionalExtension, Row};

use super::SqliteStore;
use crate::store::*;

const COLUMNS: &str = "id, name, role, password_hash, created_at";

fn operator_from_row(r: &Row) -> rusqlite::Result<OperatorRecord> {
    Ok(OperatorRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        // The schema admits only the two roles; anything else reads as the lesser one.
        role: OperatorRole::parse(&r.get::<_, String>(2)?).unwrap_or(OperatorRole::Monitor),
        password_hash: r.get(3)?,
        created_at: r.get(4)?,
    })
}

impl OperatorStore for SqliteStore {
    fn operator_add(&mut self, name: &str, role: OperatorRole, password_hash: &str) -> StoreResult<OperatorRecord> {
        if self.operator_by_name(name)?.is_some() {
            return Err(StoreError::Conflict(format!("operator login {name:?} already exists")));
        }
        self.conn.execute(
            "INSERT INTO operators (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), password_hash, now()],
        )?;
        Ok(self.operator_by_name(name)?.expect("just inserted"))
    }

    fn operator_by_name(&self, name: &str) -> StoreResult<Option<OperatorRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM operators WHERE name = ?1"),
                [name],
                operator_from_row,
            )
            .optional()?)
    }

    fn operators(&self) -> StoreResult<Vec<OperatorRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM operators ORDER BY name"))?;
        let rows = stmt.query_map([], operator_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn operator_remove(&mut self, name: &str) -> StoreResult<bool> {
        Ok(self.conn.execute("DELETE FROM operators WHERE name = ?1", [name])? > 0)
    }
}
