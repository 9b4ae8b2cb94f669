use ::postgres::Row;

use super::PgStore;
use crate::store::*;

const COLUMNS: &str = "id, name, role, password_hash, created_at";

fn operator_from_row(r: &Row) -> OperatorRecord {
    OperatorRecord {
        id: r.get(0),
        name: r.get(1),
        // The schema admits only the two roles; anything else reads as the lesser one.
        role: OperatorRole::parse(r.get(2)).unwrap_or(OperatorRole::Monitor),
        password_hash: r.get(3),
        created_at: r.get(4),
    }
}

impl OperatorStore for PgStore {
    fn operator_add(&mut self, name: &str, role: OperatorRole, password_hash: &str) -> StoreResult<OperatorRecord> {
        let conflict = || StoreError::Conflict(format!("operator login {name:?} already exists"));
        if self.operator_by_name(name)?.is_some() {
            return Err(conflict());
        }
        let row = self
            .with(|k| {
                k.query_one(
                    &format!(
                        "INSERT INTO operators (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                         RETURNING {COLUMNS}"
                    ),
                    &[&name, &role.as_str(), &password_hash, &now()],
                )
            })
            .map_err(|e| match e {
                StoreError::Conflict(_) => conflict(),
                e => e,
            })?;
        Ok(operator_from_row(&row))
    }

    fn operator_by_name(&self, name: &str) -> StoreResult<Option<OperatorRecord>> {
        Ok(self
            .with(|k| k.query_opt(&format!("SELECT {COLUMNS} FROM operators WHERE name = $1"), &[&name]))?
            .map(|r| operator_from_row(&r)))
    }

    fn operators(&self) -> StoreResult<Vec<OperatorRecord>> {
        let rows = self.with(|k| k.query(&format!("SELECT {COLUMNS} FROM operators ORDER BY name"), &[]))?;
        Ok(rows.iter().map(operator_from_row).collect())
    }

    fn operator_remove(&mut self, name: &str) -> StoreResult<bool> {
        Ok(self.with(|k| k.execute("DELETE FROM operators WHERE name = $1", &[&name]))? > 0)
    }
}
