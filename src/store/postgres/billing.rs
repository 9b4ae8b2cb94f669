use ::postgres::Row;

use super::{to_u32, PgStore};
use crate::store::*;

const INVOICE_COLUMNS: &str = "id, contract_id, raised_key, part, issued, due, term_start, term_end, lines, \
                               subtotal, tax_rate_bp, tax, total";

fn invoice_row(r: &Row) -> InvoiceRecord {
    let term_start: Option<NaiveDate> = r.get(6);
    let term_end: Option<NaiveDate> = r.get(7);
    InvoiceRecord {
        id: r.get(0),
        contract_id: r.get(1),
        raised_key: r.get(2),
        part: r.get(3),
        issued: r.get(4),
        due: r.get(5),
        term: term_start.zip(term_end),
        lines_json: r.get(8),
        subtotal: r.get::<_, i64>(9) as u64,
        tax_rate_bp: to_u32(r.get(10)),
        tax: r.get::<_, i64>(11) as u64,
        total: r.get::<_, i64>(12) as u64,
    }
}

/// Amounts are yen; one beyond BIGINT is an error rather than a wrapped number.
fn amount(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Refused(format!("the amount {v} is too large to store")))
}

impl BillingStore for PgStore {
    fn invoice_add(&mut self, inv: &NewInvoice) -> StoreResult<Option<i64>> {
        let (subtotal, tax, total) = (amount(inv.subtotal)?, amount(inv.tax)?, amount(inv.total)?);
        Ok(self
            .with(|k| {
                k.query_opt(
                    "INSERT INTO invoices (contract_id, raised_key, part, issued, due, term_start, term_end, lines, \
                                           subtotal, tax_rate_bp, tax, total, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING \
                     RETURNING id",
                    &[
                        &inv.contract_id,
                        &inv.raised_key,
                        &inv.part,
                        &inv.issued,
                        &inv.due,
                        &inv.term.map(|t| t.0),
                        &inv.term.map(|t| t.1),
                        &inv.lines_json,
                        &subtotal,
                        &i64::from(inv.tax_rate_bp),
                        &tax,
                        &total,
                        &now(),
                    ],
                )
            })?
            .map(|r| r.get(0)))
    }

    fn invoices(&self, contract_id: Option<i64>) -> StoreResult<Vec<InvoiceRecord>> {
        let rows = self.with(|k| {
            k.query(
                &format!(
                    "SELECT {INVOICE_COLUMNS} FROM invoices WHERE $1::BIGINT IS NULL OR contract_id = $1 \
                     ORDER BY issued, id"
                ),
                &[&contract_id],
            )
        })?;
        Ok(rows.iter().map(invoice_row).collect())
    }

    fn payment_add(
        &mut self,
        contract_id: i64,
        invoice_id: i64,
        amount_paid: u64,
        paid_on: NaiveDate,
    ) -> StoreResult<i64> {
        let amount_paid = amount(amount_paid)?;
        Ok(self
            .with(|k| {
                k.query_one(
                    "INSERT INTO payments (contract_id, invoice_id, amount, paid_on, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[&contract_id, &invoice_id, &amount_paid, &paid_on, &now()],
                )
            })?
            .get(0))
    }

    fn payments(&self, contract_id: Option<i64>) -> StoreResult<Vec<PaymentRecord>> {
        let rows = self.with(|k| {
            k.query(
                "SELECT id, contract_id, invoice_id, amount, paid_on FROM payments \
                 WHERE $1::BIGINT IS NULL OR contract_id = $1 ORDER BY id",
                &[&contract_id],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| PaymentRecord {
                id: r.get(0),
                contract_id: r.get(1),
                invoice_id: r.get(2),
                amount: r.get::<_, i64>(3) as u64,
                paid_on: r.get(4),
            })
            .collect())
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
        if self
            .with(|k| k.query_opt("SELECT 1 FROM contracts WHERE id = $1", &[&contract_id]))?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("no contract with id {contract_id}")));
        }
        Ok(self
            .with(|k| {
                k.query_opt(
                    "INSERT INTO notices (contract_id, to_email, kind, subject, body, created_at, dedup_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
                    &[&contract_id, &to_email, &kind, &subject, &body, &now(), &key],
                )
            })?
            .map(|r| r.get(0)))
    }
}
