use rusqlite::{params, OptionalExtension};

use super::{parse_date, SqliteStore};
use crate::store::*;

const INVOICE_COLUMNS: &str = "id, contract_id, raised_key, part, issued, due, term_start, term_end, lines, \
                               subtotal, tax_rate_bp, tax, total";

fn invoice_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InvoiceRecord> {
    let term_start: Option<String> = r.get(6)?;
    let term_end: Option<String> = r.get(7)?;
    let term = match (term_start, term_end) {
        (Some(s), Some(e)) => Some((parse_date(&s)?, parse_date(&e)?)),
        _ => None,
    };
    Ok(InvoiceRecord {
        id: r.get(0)?,
        contract_id: r.get(1)?,
        raised_key: r.get(2)?,
        part: r.get(3)?,
        issued: parse_date(&r.get::<_, String>(4)?)?,
        due: parse_date(&r.get::<_, String>(5)?)?,
        term,
        lines_json: r.get(8)?,
        subtotal: r.get(9)?,
        tax_rate_bp: r.get(10)?,
        tax: r.get(11)?,
        total: r.get(12)?,
    })
}

impl BillingStore for SqliteStore {
    fn invoice_add(&mut self, inv: &NewInvoice) -> StoreResult<Option<i64>> {
        let n = self.conn.execute(
            "INSERT INTO invoices (contract_id, raised_key, part, issued, due, term_start, term_end, lines, \
                                   subtotal, tax_rate_bp, tax, total, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
            params![
                inv.contract_id,
                inv.raised_key,
                inv.part,
                inv.issued.to_string(),
                inv.due.to_string(),
                inv.term.map(|t| t.0.to_string()),
                inv.term.map(|t| t.1.to_string()),
                inv.lines_json,
                inv.subtotal,
                inv.tax_rate_bp,
                inv.tax,
                inv.total,
                now()
            ],
        )?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    fn invoices(&self, contract_id: Option<i64>) -> StoreResult<Vec<InvoiceRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE ?1 IS NULL OR contract_id = ?1 ORDER BY issued, id"
        ))?;
        let rows = stmt.query_map([contract_id], invoice_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn payment_add(&mut self, contract_id: i64, invoice_id: i64, amount: u64, paid_on: NaiveDate) -> StoreResult<i64> {
        self.conn.execute(
            "INSERT INTO payments (contract_id, invoice_id, amount, paid_on, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![contract_id, invoice_id, amount, paid_on.to_string(), now()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn payments(&self, contract_id: Option<i64>) -> StoreResult<Vec<PaymentRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, contract_id, invoice_id, amount, paid_on FROM payments \
             WHERE ?1 IS NULL OR contract_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([contract_id], |r| {
            Ok(PaymentRecord {
                id: r.get(0)?,
                contract_id: r.get(1)?,
                invoice_id: r.get(2)?,
                amount: r.get(3)?,
                paid_on: parse_date(&r.get::<_, String>(4)?)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn notice_add_to(
        &mut self,
        contract_id: i64,
        to_email: &str,
        kind: &str,
        key: Option<&str>,
        subject: &str,
        body: &str,
    ) -> StoreResult<Option<i64>> {
        let known = self
            .conn
            .query_row("SELECT 1 FROM contracts WHERE id = ?1", [contract_id], |_| Ok(()))
            .optional()?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("no contract with id {contract_id}")));
        }
        let n = self.conn.execute(
            "INSERT INTO notices (contract_id, to_email, kind, subject, body, created_at, dedup_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            params![contract_id, to_email, kind, subject, body, now(), key],
        )?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }
}
