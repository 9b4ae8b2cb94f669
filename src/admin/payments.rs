//! Receivables (operator only): invoices stored as they are raised, payments against
//! them, and the dunning of unpaid ones (art. 23-1(1), 26-31). The pure rules are in
//! `crate::contract::{charges, dunning}`; this module stores and applies them.
//!
//! - The daily job ([`daily`], from `jobs::apply_due`) raises the day's invoices
//!   (art. 28), queues an invoice notice, a reminder once an invoice is
//!   `reminder_days` overdue, suspends the contract once one is `suspend_days` overdue
//!   (art. 23-1(1)), and resumes a contract it suspended once nothing is overdue.
//! - `admin payment add` records a payment against an invoice (or the oldest open
//!   ones), raises the late interest of an invoice it settles late (art. 31), and
//!   resumes a contract suspended for non-payment when nothing is overdue any more.
//!
//! A suspension for non-payment is told apart by its recorded reason
//! ([`NONPAYMENT_REASON`]): a payment never lifts a suspension the operator made for
//! another reason.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::api::{IssuerInfo, LedgerReport, LedgerRow, PaymentRow};
use super::billing::{tariff, yen};
use super::contracts::{notify_once, unit_of};
use super::notice_text::Notice;
use super::{audit, visible_contract, AdminError, AdminResult, ExecCtx, Output};
use crate::contract::{
    billed_unit, invoice_at, invoice_state, late_interest, renewed_end, Cancellation, DunningRule, DunningStep,
    InvoiceState, LineItem,
};
use crate::store::{ContractRecord, ContractState, InvoiceRecord, NewInvoice, Store};

const DUNNING_SETTING: &str = "dunning";
const ISSUER_SETTING: &str = "invoice_issuer";
/// The first day invoices are stored: set by the first daily job that raises any. An
/// upgraded hub does not raise (and then dun) invoices of the years before it kept them.
const BILLING_SINCE_SETTING: &str = "billing_since";

/// The reason recorded on a suspension the dunning rule made; a payment that leaves
/// nothing overdue lifts only a suspension with this reason.
pub const NONPAYMENT_REASON: &str = "unpaid invoice past its due date (art. 23-1(1))";
/// The part name of a late-interest invoice.
const LATE_INTEREST_PART: &str = "late interest";

/// The invoice issuer as a qualified invoice (適格請求書) must name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuer {
    pub name: String,
    /// 登録番号: `T` and 13 digits.
    pub registration_number: String,
}

pub fn dunning_rule(store: &dyn Store) -> DunningRule {
    store
        .setting(DUNNING_SETTING)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn issuer(store: &dyn Store) -> Issuer {
    store
        .setting(ISSUER_SETTING)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Checks a qualified-invoice issuer registration number (適格請求書発行事業者登録番号):
/// `T` followed by 13 digits.
pub fn check_registration_number(s: &str) -> Result<(), AdminError> {
    let digits = s.strip_prefix('T').unwrap_or("");
    if digits.len() == 13 && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AdminError::Refused(format!(
            "{s:?} is not a registration number (登録番号): it is T followed by 13 digits, e.g. T1234567890123"
        )))
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, AdminError> {
    serde_json::to_string(v).map_err(|e| AdminError::Internal(e.to_string()))
}

pub(super) fn dunning_show(store: &mut dyn Store) -> AdminResult {
    Ok(Output::Dunning(dunning_rule(store)))
}

pub(super) fn dunning_set(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    due_months: Option<u32>,
    reminder_days: Option<u32>,
    suspend_days: Option<u32>,
) -> AdminResult {
    let mut r = dunning_rule(store);
    r.due_months = due_months.unwrap_or(r.due_months);
    r.reminder_days = reminder_days.unwrap_or(r.reminder_days);
    r.suspend_days = suspend_days.unwrap_or(r.suspend_days);
    r.check()?;
    let json = to_json(&r)?;
    store.set_setting(DUNNING_SETTING, &json)?;
    audit(store, ctx, "dunning.set", None, None, &json)?;
    Ok(Output::Dunning(r))
}

pub(super) fn issuer_show(store: &mut dyn Store) -> AdminResult {
    let i = issuer(store);
    Ok(Output::Issuer(IssuerInfo {
        name: i.name,
        registration_number: i.registration_number,
    }))
}

pub(super) fn issuer_set(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    name: Option<&str>,
    registration_number: Option<&str>,
) -> AdminResult {
    let mut i = issuer(store);
    if let Some(n) = name {
        i.name = n.trim().to_string();
    }
    if let Some(r) = registration_number {
        check_registration_number(r.trim())?;
        i.registration_number = r.trim().to_string();
    }
    let json = to_json(&i)?;
    store.set_setting(ISSUER_SETTING, &json)?;
    audit(store, ctx, "issuer.set", None, None, &json)?;
    Ok(Output::Issuer(IssuerInfo {
        name: i.name,
        registration_number: i.registration_number,
    }))
}

/// One stored invoice with what has been paid against it.
pub(super) struct Entry {
    pub inv: InvoiceRecord,
    pub paid: u64,
    /// The day of the payment that settled it in full.
    pub settled_on: Option<NaiveDate>,
}

impl Entry {
    pub fn state(&self, today: NaiveDate) -> InvoiceState {
        invoice_state(self.inv.total, self.paid, self.inv.due, today)
    }

    pub fn balance(&self) -> u64 {
        self.inv.total.saturating_sub(self.paid)
    }

    pub fn lines(&self) -> Vec<LineItem> {
        serde_json::from_str(&self.inv.lines_json).unwrap_or_default()
    }
}

/// A contract's invoices, oldest first, with their payments (payments dated after
/// `today` are not counted yet).
pub(super) fn entries(store: &dyn Store, contract_id: i64, today: NaiveDate) -> Result<Vec<Entry>, AdminError> {
    let payments = store.payments(Some(contract_id))?;
    Ok(store
        .invoices(Some(contract_id))?
        .into_iter()
        .map(|inv| {
            let mut paid = 0u64;
            let mut settled_on = None;
            let mut mine: Vec<_> = payments
                .iter()
                .filter(|p| p.invoice_id == inv.id && p.paid_on <= today)
                .collect();
            mine.sort_by_key(|p| (p.paid_on, p.id));
            for p in mine {
                paid = paid.saturating_add(p.amount);
                if settled_on.is_none() && paid >= inv.total {
                    settled_on = Some(p.paid_on);
                }
            }
            Entry { inv, paid, settled_on }
        })
        .collect())
}

/// Who is told in advance of a suspension or termination: the sales agent of a
/// contract sold through one (art. 23-2, 24-3: "販売代理店を経由した契約の場合は販売代理店
/// に通知"), else the contractor's administrator. The agent is reached at the e-mail
/// address in the contract's `sales_agent` field ("Agent Co <sales@agent.example>" or a
/// bare address); an agent recorded without one cannot be mailed, so the administrator
/// is told instead (and the operator warned in the log).
pub fn advance_notice_to(c: &ContractRecord) -> String {
    match c.sales_agent.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        Some(agent) => match agent_email(agent) {
            Some(email) => email,
            None => {
                tracing::warn!(contract = %c.name, agent, "the sales agent has no e-mail address; its advance notice goes to the administrator");
                c.admin_email.clone()
            }
        },
        None => c.admin_email.clone(),
    }
}

/// The sales agent's name for the greeting: the field without its e-mail address.
pub fn agent_name(c: &ContractRecord) -> String {
    let agent = c.sales_agent.as_deref().unwrap_or_default().trim();
    let name = match agent.find('<') {
        Some(a) => agent[..a].trim(),
        None => agent,
    };
    if name.is_empty() || name.contains('@') {
        "販売代理店".to_string()
    } else {
        name.to_string()
    }
}

/// The e-mail address in a sales agent field: inside `<...>`, or the one word with an `@`.
fn agent_email(agent: &str) -> Option<String> {
    let candidate = match (agent.find('<'), agent.rfind('>')) {
        (Some(a), Some(b)) if a < b => &agent[a + 1..b],
        _ => agent.split_whitespace().find(|w| w.contains('@'))?,
    };
    crate::contract::check_admin_email(candidate.trim()).ok()
}

/// The contract's daily billing: raise, dun, resume. Runs inside the contract's job
/// transaction; idempotent (every notice is queued once per key).
pub(super) fn daily(
    store: &mut dyn Store,
    c: &ContractRecord,
    today: NaiveDate,
    done: &mut Vec<String>,
) -> Result<(), AdminError> {
    raise_invoices(store, c, today, done)?;
    dun(store, c, today, done)
}

/// Days on which `invoice_at` may raise something for a contract part: its delivery
/// and each renewal start, up to `today`.
fn raise_days(start: NaiveDate, first_end: NaiveDate, today: NaiveDate) -> Result<Vec<NaiveDate>, AdminError> {
    let mut days = vec![start];
    let mut end = first_end;
    while end < today {
        if let Some(next) = end.succ_opt() {
            days.push(next);
        }
        end = renewed_end(end)?;
    }
    Ok(days)
}

fn raise_invoices(
    store: &mut dyn Store,
    c: &ContractRecord,
    today: NaiveDate,
    done: &mut Vec<String>,
) -> Result<(), AdminError> {
    let since = match store
        .setting(BILLING_SINCE_SETTING)?
        .and_then(|s| s.parse::<NaiveDate>().ok())
    {
        Some(d) => d,
        None => {
            store.set_setting(BILLING_SINCE_SETTING, &today.to_string())?;
            today
        }
    };
    let unit = unit_of(store, c.id)?;
    let cancellation = store.cancellation(c.id)?.map(|x| Cancellation {
        received: x.received,
        requested_end: x.requested_end,
        effective: x.effective,
    });
    let tariff = tariff(store);
    let rule = dunning_rule(store);
    for (part, billed) in billed_unit(&unit, cancellation, c.ended_on)? {
        let first_day = billed.delivered.unwrap_or(billed.start);
        for day in raise_days(first_day, billed.first_end, today)? {
            if day < since || day > today {
                continue;
            }
            // A hub with no fees configured (the default tariff) raises nothing: no
            // invoices of ¥0, no notices about them.
            for inv in invoice_at(&tariff, &billed, day)?.into_iter().filter(|i| i.total > 0) {
                let new = NewInvoice {
                    contract_id: c.id,
                    raised_key: format!("{part}:{}", inv.issued),
                    part: part.clone(),
                    issued: inv.issued,
                    due: rule.due_date(inv.issued)?,
                    term: Some((inv.term_start, inv.term_end)),
                    lines_json: to_json(&inv.lines)?,
                    subtotal: inv.subtotal,
                    tax_rate_bp: inv.tax_rate_bp,
                    tax: inv.tax,
                    total: inv.total,
                };
                if let Some(number) = store.invoice_add(&new)? {
                    invoice_raised(store, c, number, &new, done)?;
                }
            }
        }
    }
    Ok(())
}

fn invoice_raised(
    store: &mut dyn Store,
    c: &ContractRecord,
    number: i64,
    inv: &NewInvoice,
    done: &mut Vec<String>,
) -> Result<(), AdminError> {
    let ctx = hub_ctx(inv.issued);
    let what = format!(
        "invoice {number} ({}, issued {}): {} incl. tax, due {}",
        inv.part,
        inv.issued,
        yen(inv.total),
        inv.due
    );
    audit(store, &ctx, "invoice.raise", Some(c.id), None, &what)?;
    notify_once(
        store,
        c,
        &Notice::Invoice {
            number,
            part: inv.part.clone(),
            issued: inv.issued,
            total: yen(inv.total),
            tax: yen(inv.tax),
            due: inv.due,
            // Late interest bears no interest itself (art. 31: "延滞利息を除きます").
            late_interest: inv.part == LATE_INTEREST_PART,
        },
        Some(&format!("invoice:{number}")),
    )?;
    done.push(format!("{} raised for {}", what, c.name));
    Ok(())
}

fn hub_ctx(today: NaiveDate) -> ExecCtx {
    ExecCtx {
        actor: "hub".into(),
        ..ExecCtx::operator(today)
    }
}

/// Reminders, the suspension for non-payment and the automatic resumption.
fn dun(store: &mut dyn Store, c: &ContractRecord, today: NaiveDate, done: &mut Vec<String>) -> Result<(), AdminError> {
    let rule = dunning_rule(store);
    let mut suspend_for = None;
    for e in entries(store, c.id, today)? {
        if e.state(today) != InvoiceState::Overdue {
            continue;
        }
        let step = rule.step(e.inv.due, today);
        if step == DunningStep::Nothing {
            continue;
        }
        // The reminder is also the advance notice of the suspension (art. 23-2), so it
        // goes where that notice goes, and always before the suspension.
        let reminder = Notice::PaymentReminder {
            number: e.inv.id,
            part: e.inv.part.clone(),
            issued: e.inv.issued,
            total: yen(e.inv.total),
            due: e.inv.due,
            balance: yen(e.balance()),
            suspension_day: rule.suspension_day(e.inv.due),
        };
        if notify_once(store, c, &reminder, Some(&format!("payment-reminder:{}", e.inv.id)))?.is_some() {
            audit(
                store,
                &hub_ctx(today),
                "invoice.reminder",
                Some(c.id),
                None,
                &format!("invoice {} due {}", e.inv.id, e.inv.due),
            )?;
            done.push(format!(
                "payment reminder for invoice {} queued for {}",
                e.inv.id, c.name
            ));
        }
        if step == DunningStep::Suspend && suspend_for.is_none() {
            suspend_for = Some(e);
        }
    }
    if let Some(e) = suspend_for {
        if c.state == ContractState::Active {
            store.contract_set_state(c.id, ContractState::Suspended, Some(NONPAYMENT_REASON))?;
            audit(
                store,
                &hub_ctx(today),
                "contract.suspend",
                Some(c.id),
                None,
                &format!("{NONPAYMENT_REASON}: invoice {} due {}", e.inv.id, e.inv.due),
            )?;
            notify_once(
                store,
                c,
                &Notice::NonpaymentSuspension {
                    since: today,
                    number: e.inv.id,
                    total: yen(e.inv.total),
                    due: e.inv.due,
                },
                Some(&format!("nonpayment-suspension:{}:{today}", e.inv.id)),
            )?;
            done.push(format!("contract {} suspended: invoice {} unpaid", c.name, e.inv.id));
        }
    } else {
        resume_if_settled(store, c, &hub_ctx(today), today, done)?;
    }
    Ok(())
}

/// Lifts a suspension for non-payment once nothing is overdue. A suspension with any
/// other reason stays.
fn resume_if_settled(
    store: &mut dyn Store,
    c: &ContractRecord,
    ctx: &ExecCtx,
    today: NaiveDate,
    done: &mut Vec<String>,
) -> Result<(), AdminError> {
    if c.state != ContractState::Suspended || c.state_reason.as_deref() != Some(NONPAYMENT_REASON) {
        return Ok(());
    }
    if entries(store, c.id, today)?
        .iter()
        .any(|e| e.state(today) == InvoiceState::Overdue)
    {
        return Ok(());
    }
    store.contract_set_state(c.id, ContractState::Active, None)?;
    audit(
        store,
        ctx,
        "contract.resume",
        Some(c.id),
        None,
        "overdue invoices paid: suspension for non-payment lifted",
    )?;
    notify_once(
        store,
        c,
        &Notice::NonpaymentResumption { since: today },
        Some(&format!("nonpayment-resumption:{today}")),
    )?;
    done.push(format!("contract {} resumed: nothing overdue", c.name));
    Ok(())
}

/// `payment add`: records `amount` paid on `paid_on` against invoice `number`, or
/// against the contract's unpaid invoices oldest first. An invoice settled after its
/// due date raises its late interest (art. 31) as a new invoice.
pub(super) fn payment_add(
    store: &mut dyn Store,
    ctx: &ExecCtx,
    name: &str,
    amount: u64,
    paid_on: NaiveDate,
    number: Option<i64>,
) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    if amount == 0 {
        return Err(AdminError::Refused("a payment's --amount is at least ¥1".into()));
    }
    if paid_on > ctx.today {
        return Err(AdminError::Refused(format!(
            "--date {paid_on} is in the future (today is {}); record a payment once it is received",
            ctx.today
        )));
    }
    // Every payment recorded so far counts, whatever its date.
    let far = NaiveDate::MAX;
    let unpaid: Vec<Entry> = entries(store, c.id, far)?
        .into_iter()
        .filter(|e| e.balance() > 0 && number.map_or(true, |n| n == e.inv.id))
        .collect();
    if let Some(n) = number {
        if unpaid.is_empty() {
            let known = store.invoices(Some(c.id))?.iter().any(|i| i.id == n);
            return Err(if known {
                AdminError::Refused(format!("invoice {n} of {} is paid in full already", c.name))
            } else {
                AdminError::NotFound(format!(
                    "contract {} has no invoice {n} (see `mcvpn admin payment list {}`)",
                    c.name, c.name
                ))
            });
        }
    }
    let owed: u64 = unpaid.iter().map(Entry::balance).sum();
    if amount > owed {
        return Err(AdminError::Refused(format!(
            "{} is more than the {} owed on {}: record at most what is owed (overpayments are refunded or \
             set off outside mcvpn)",
            yen(amount),
            yen(owed),
            number.map_or_else(
                || format!("the open invoices of {}", c.name),
                |n| format!("invoice {n}")
            )
        )));
    }
    let mut left = amount;
    let mut lines = Vec::new();
    let mut settled = Vec::new();
    for e in &unpaid {
        if left == 0 {
            break;
        }
        let part = left.min(e.balance());
        store.payment_add(c.id, e.inv.id, part, paid_on)?;
        left -= part;
        lines.push(format!("{} to invoice {}", yen(part), e.inv.id));
        if part == e.balance() {
            settled.push(e.inv.clone());
        }
    }
    audit(
        store,
        ctx,
        "payment.add",
        Some(c.id),
        None,
        &format!("{} paid {paid_on}: {}", yen(amount), lines.join(", ")),
    )?;
    let mut said = format!("payment of {} on {paid_on} recorded: {}", yen(amount), lines.join(", "));
    for inv in settled {
        if let Some(msg) = raise_late_interest(store, &c, &inv, paid_on, ctx.today)? {
            said.push_str("; ");
            said.push_str(&msg);
        }
    }
    let mut done = Vec::new();
    resume_if_settled(store, &c, ctx, ctx.today, &mut done)?;
    for d in done {
        said.push_str("; ");
        said.push_str(&d);
    }
    Ok(Output::message(said))
}

/// Art. 31: an invoice paid after the grace days bears interest from the day after its
/// due date to the day before payment, invoiced on the day the payment is recorded.
/// Interest bears no interest ("延滞利息を除きます") and no consumption tax (interest is
/// exempt, 非課税, under the Consumption Tax Act art. 6 and appended table 2).
fn raise_late_interest(
    store: &mut dyn Store,
    c: &ContractRecord,
    inv: &InvoiceRecord,
    paid_on: NaiveDate,
    today: NaiveDate,
) -> Result<Option<String>, AdminError> {
    if inv.part == LATE_INTEREST_PART {
        return Ok(None);
    }
    let interest = late_interest(inv.total, inv.due, paid_on)?;
    if interest == 0 {
        return Ok(None);
    }
    let days = crate::contract::interest_days(inv.due, paid_on);
    let lines = vec![LineItem {
        kind: crate::contract::LineKind::LateInterest {
            invoice: inv.id,
            days,
            from: inv.due.succ_opt().unwrap_or(inv.due),
            to: paid_on.pred_opt().unwrap_or(paid_on),
        },
        amount: interest,
    }];
    let rule = dunning_rule(store);
    let new = NewInvoice {
        contract_id: c.id,
        raised_key: format!("{LATE_INTEREST_PART}:{}", inv.id),
        part: LATE_INTEREST_PART.into(),
        issued: today,
        due: rule.due_date(today)?,
        term: None,
        lines_json: to_json(&lines)?,
        subtotal: interest,
        tax_rate_bp: 0,
        tax: 0,
        total: interest,
    };
    let Some(number) = store.invoice_add(&new)? else {
        return Ok(None);
    };
    let mut done = Vec::new();
    invoice_raised(store, c, number, &new, &mut done)?;
    Ok(Some(format!(
        "invoice {} was paid {} days late: late interest {} invoiced as invoice {number} (art. 31)",
        inv.id,
        (paid_on - inv.due).num_days(),
        yen(interest)
    )))
}

/// `payment list`: a contract's invoices with their state and payments.
pub(super) fn ledger(store: &mut dyn Store, ctx: &ExecCtx, name: &str) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let invoices: Vec<LedgerRow> = entries(store, c.id, ctx.today)?
        .into_iter()
        .map(|e| LedgerRow {
            invoice: e.inv.id,
            part: e.inv.part.clone(),
            issued: e.inv.issued,
            due: e.inv.due,
            total: e.inv.total,
            paid: e.paid,
            settled_on: e.settled_on,
            state: e.state(ctx.today),
        })
        .collect();
    let payments = store
        .payments(Some(c.id))?
        .into_iter()
        .map(|p| PaymentRow {
            id: p.id,
            invoice: p.invoice_id,
            amount: p.amount,
            paid_on: p.paid_on,
        })
        .collect();
    let outstanding = invoices.iter().map(|r| r.total.saturating_sub(r.paid)).sum();
    Ok(Output::Ledger(LedgerReport {
        contract: c.name,
        today: ctx.today,
        invoices,
        payments,
        outstanding,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_numbers_are_t_and_13_digits() {
        assert!(check_registration_number("T1234567890123").is_ok());
        for bad in [
            "1234567890123",
            "T123456789012",
            "T12345678901234",
            "t1234567890123",
            "T12345678901a3",
            "",
        ] {
            assert!(check_registration_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agent_addresses() {
        assert_eq!(
            agent_email("Agent Co <sales@agent.example>").as_deref(),
            Some("sales@agent.example")
        );
        assert_eq!(
            agent_email("sales@agent.example").as_deref(),
            Some("sales@agent.example")
        );
        assert_eq!(agent_email("Agent Co, Osaka"), None);
    }

    #[test]
    fn raise_days_are_delivery_and_renewal_starts() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(
            raise_days(d(2026, 11, 24), d(2027, 11, 30), d(2028, 12, 1)).unwrap(),
            vec![d(2026, 11, 24), d(2027, 12, 1), d(2028, 12, 1)]
        );
        assert_eq!(
            raise_days(d(2026, 11, 24), d(2027, 11, 30), d(2027, 11, 30)).unwrap(),
            vec![d(2026, 11, 24)]
        );
    }
}
