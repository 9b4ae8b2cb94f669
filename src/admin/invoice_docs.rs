//! Invoice documents (operator only): the stored invoices as CSV, and one invoice as a
//! printable qualified invoice (適格請求書).
//!
//! A qualified invoice must carry (Consumption Tax Act art. 57-4 ¶1): the issuer's name
//! and registration number (登録番号), the date of the transaction, what was supplied
//! (取引内容), the total per tax rate (税率ごとに区分して合計した対価の額) and the rate
//! applied (適用税率), the tax per rate (消費税額等), and the recipient's name. The
//! printable form is plain UTF-8 text with Japanese labels; it is printed from a
//! terminal or pasted into the operator's mail.

use chrono::NaiveDate;

use super::api::Document;
use super::billing::yen;
use super::payments::{entries, issuer, Entry};
use super::{visible_contract, AdminError, AdminResult, ExecCtx, Output};
use crate::contract::{LineItem, LineKind};

/// What Excel needs to read a CSV file as UTF-8 rather than Shift_JIS.
const UTF8_BOM: &str = "\u{feff}";

/// `invoice CONTRACT --csv`: one row per stored invoice, with its state on `today`.
pub(super) fn csv(store: &mut dyn crate::store::Store, ctx: &ExecCtx, name: &str, today: NaiveDate) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let rows = entries(store, c.id, today)?;
    let content = csv_text(&c.name, &rows, today)?;
    Ok(Output::Document(Document {
        media_type: "text/csv; charset=utf-8".into(),
        file_name: format!("invoices-{}-{today}.csv", c.name),
        content,
    }))
}

fn csv_text(contract: &str, rows: &[Entry], today: NaiveDate) -> Result<String, AdminError> {
    let internal = |e: csv::Error| AdminError::Internal(format!("CSV: {e}"));
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record([
        "請求書番号",
        "契約",
        "区分",
        "発行日",
        "支払期日",
        "対象期間",
        "税抜金額",
        "税率",
        "消費税額",
        "請求金額",
        "入金額",
        "入金完了日",
        "状態",
    ])
    .map_err(internal)?;
    for e in rows {
        let term = e.inv.term.map(|(a, b)| format!("{a}〜{b}")).unwrap_or_default();
        w.write_record([
            e.inv.id.to_string(),
            contract.to_string(),
            e.inv.part.clone(),
            e.inv.issued.to_string(),
            e.inv.due.to_string(),
            term,
            e.inv.subtotal.to_string(),
            rate(e.inv.tax_rate_bp),
            e.inv.tax.to_string(),
            e.inv.total.to_string(),
            e.paid.to_string(),
            e.settled_on.map(|d| d.to_string()).unwrap_or_default(),
            state_ja(e, today).to_string(),
        ])
        .map_err(internal)?;
    }
    let bytes = w.into_inner().map_err(|e| AdminError::Internal(format!("CSV: {e}")))?;
    let body = String::from_utf8(bytes).map_err(|e| AdminError::Internal(format!("CSV: {e}")))?;
    Ok(format!("{UTF8_BOM}{body}"))
}

fn state_ja(e: &Entry, today: NaiveDate) -> &'static str {
    match e.state(today) {
        crate::contract::InvoiceState::Open => "未払(期日前)",
        crate::contract::InvoiceState::Paid => "支払済",
        crate::contract::InvoiceState::Overdue => "延滞",
    }
}

/// A rate in basis points as the invoice shows it: `10%`, `8%`, `非課税` for 0.
fn rate(bp: u32) -> String {
    if bp == 0 {
        "非課税".into()
    } else if bp % 100 == 0 {
        format!("{}%", bp / 100)
    } else {
        format!("{}.{:02}%", bp / 100, bp % 100)
    }
}

/// What a line supplied, in Japanese (取引内容).
fn item_ja(line: &LineItem) -> String {
    match &line.kind {
        LineKind::InitialFee => "初期費用".into(),
        LineKind::OptionFee { name } => format!("オプション工事費 {name}"),
        LineKind::StartMonthWaived { accounts, month } => format!(
            "使用料 {accounts}アカウント サービス提供開始月 {} (無償、約款第27条第2項)",
            month.format("%Y年%m月")
        ),
        LineKind::UsageFee {
            accounts,
            months,
            from,
            to,
        } => format!(
            "使用料 {accounts}アカウント × {months}か月 ({}〜{})",
            from.format("%Y年%m月%d日"),
            to.format("%Y年%m月%d日")
        ),
        LineKind::LateInterest {
            invoice,
            days,
            from,
            to,
        } => format!(
            "延滞利息 請求書番号{invoice} {days}日分 ({}〜{}、年14.5%、約款第31条)",
            from.format("%Y年%m月%d日"),
            to.format("%Y年%m月%d日")
        ),
    }
}

/// `invoice CONTRACT --print N`: stored invoice N as a qualified invoice.
pub(super) fn qualified(
    store: &mut dyn crate::store::Store,
    ctx: &ExecCtx,
    name: &str,
    number: i64,
    today: NaiveDate,
) -> AdminResult {
    let c = visible_contract(store, ctx, name)?;
    let issuer = issuer(store);
    if issuer.registration_number.is_empty() || issuer.name.is_empty() {
        return Err(AdminError::Refused(
            "a qualified invoice names its issuer and registration number: set them first with \
             `mcvpn admin issuer set --name NAME --registration-number T1234567890123`"
                .into(),
        ));
    }
    let all = entries(store, c.id, today)?;
    let e = all.iter().find(|e| e.inv.id == number).ok_or_else(|| {
        AdminError::NotFound(format!(
            "contract {} has no invoice {number} (see `mcvpn admin payment list {}`)",
            c.name, c.name
        ))
    })?;
    let recipient = if c.department.is_empty() {
        c.name.clone()
    } else {
        format!("{} {}", c.name, c.department)
    };
    let content = qualified_text(&issuer.name, &issuer.registration_number, &recipient, e);
    Ok(Output::Document(Document {
        media_type: "text/plain; charset=utf-8".into(),
        file_name: format!("invoice-{number}-{}.txt", c.name),
        content,
    }))
}

fn qualified_text(issuer: &str, registration: &str, recipient: &str, e: &Entry) -> String {
    let inv = &e.inv;
    let date = |d: NaiveDate| d.format("%Y年%m月%d日").to_string();
    let mut out = String::new();
    out.push_str("適格請求書\n\n");
    out.push_str(&format!("{recipient} 御中\n\n"));
    out.push_str(&format!("請求書番号: {}\n", inv.id));
    out.push_str(&format!("発行日: {}\n", date(inv.issued)));
    out.push_str(&format!("取引年月日: {}\n", date(inv.issued)));
    if let Some((from, to)) = inv.term {
        out.push_str(&format!("対象期間: {}〜{}\n", date(from), date(to)));
    }
    out.push_str(&format!("支払期日: {}\n", date(inv.due)));
    out.push_str(&format!("発行者: {issuer}\n"));
    out.push_str(&format!("登録番号: {registration}\n\n"));
    out.push_str("取引内容 (税抜):\n");
    for line in e.lines() {
        out.push_str(&format!("  {}  {}\n", item_ja(&line), yen(line.amount)));
    }
    out.push('\n');
    out.push_str("税率ごとの合計額:\n");
    if inv.tax_rate_bp == 0 {
        out.push_str(&format!("  非課税対象: {}\n", yen(inv.subtotal)));
        out.push_str("適用税率: 非課税\n");
        out.push_str(&format!("消費税額: {}\n", yen(0)));
    } else {
        out.push_str(&format!(
            "  {}対象: {} (税抜)\n",
            rate(inv.tax_rate_bp),
            yen(inv.subtotal)
        ));
        out.push_str(&format!("適用税率: {}\n", rate(inv.tax_rate_bp)));
        out.push_str(&format!("消費税額: {} ({}対象)\n", yen(inv.tax), rate(inv.tax_rate_bp)));
    }
    out.push_str(&format!("ご請求金額 (税込): {}\n", yen(inv.total)));
    if e.paid > 0 {
        out.push_str(&format!("入金済額: {}\n", yen(e.paid)));
    }
    out.push_str("\n振込手数料はご負担ください (約款第28条第3項)。\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InvoiceRecord;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn entry(paid: u64) -> Entry {
        let lines = vec![
            LineItem {
                kind: LineKind::InitialFee,
                amount: 30_000,
            },
            LineItem {
                kind: LineKind::OptionFee {
                    name: "現地設定, \"A\"".into(),
                },
                amount: 5_000,
            },
        ];
        Entry {
            inv: InvoiceRecord {
                id: 7,
                contract_id: 1,
                raised_key: "basic:2026-11-24".into(),
                part: "basic".into(),
                issued: d(2026, 11, 24),
                due: d(2026, 12, 31),
                term: Some((d(2026, 11, 24), d(2027, 11, 30))),
                lines_json: serde_json::to_string(&lines).unwrap(),
                subtotal: 35_000,
                tax_rate_bp: 1000,
                tax: 3_500,
                total: 38_500,
            },
            paid,
            settled_on: None,
        }
    }

    #[test]
    fn csv_has_a_bom_crlf_and_quotes_what_needs_it() {
        let text = csv_text("acme", &[entry(0)], d(2027, 1, 1)).unwrap();
        assert!(text.starts_with('\u{feff}'));
        let mut lines = text.trim_start_matches('\u{feff}').split("\r\n");
        assert!(lines
            .next()
            .unwrap()
            .starts_with("請求書番号,契約,区分,発行日,支払期日"));
        let row = lines.next().unwrap();
        assert_eq!(
            row,
            "7,acme,basic,2026-11-24,2026-12-31,2026-11-24〜2027-11-30,35000,10%,3500,38500,0,,延滞"
        );
        // Read back with the same library: the fields survive.
        let mut r = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(&rec[12], "延滞");
    }

    #[test]
    fn the_qualified_invoice_carries_what_the_law_asks() {
        let text = qualified_text("Example KK", "T1234567890123", "acme 情報システム部", &entry(0));
        for needed in [
            "適格請求書",
            "acme 情報システム部 御中",
            "登録番号: T1234567890123",
            "発行者: Example KK",
            "発行日: 2026年11月24日",
            "初期費用  ¥30,000",
            "オプション工事費 現地設定, \"A\"  ¥5,000",
            "10%対象: ¥35,000 (税抜)",
            "適用税率: 10%",
            "消費税額: ¥3,500",
            "ご請求金額 (税込): ¥38,500",
            "支払期日: 2026年12月31日",
        ] {
            assert!(text.contains(needed), "missing {needed:?} in:\n{text}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate(1000), "10%");
        assert_eq!(rate(800), "8%");
        assert_eq!(rate(0), "非課税");
        assert_eq!(rate(1050), "10.50%");
    }
}
