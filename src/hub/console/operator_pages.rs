//! The operator's pages ([`super::operator`]), in the same frame and style as the
//! account administrator's ([`super::pages`]). Each form's heading names the article of
//! the terms it applies.

use chrono::NaiveDate;
use maud::{html, Markup};

use super::pages::{contract_state, csrf, layout, term_and_quota, when};
use super::session::Login;
use super::text::{self, grouped, Lang};
use crate::admin::api::{
    CompensationReport, ContractDetails, ContractSummary, InvoiceReport, MaintenanceRow, OutageRow,
};
use crate::contract::{ContractKind, Tariff};
use crate::store::{ContractField, TermKind};

/// The operator's navigation (the frame shows it for an operator login).
pub fn navigation(lang: Lang) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    html! {
        a href="/console/contracts" { (t("契約", "Contracts")) }
        a href="/console/invoices" { (t("請求・補償", "Invoices & compensation")) }
        a href="/console/outages" { (t("障害", "Outages")) }
        a href="/console/maintenance" { (t("保守", "Maintenance")) }
        a href="/console/tariff" { (t("料金", "Tariff")) }
    }
}

fn kind(lang: Lang, k: ContractKind) -> &'static str {
    match k {
        ContractKind::Corporation => lang.t("法人", "corporation"),
        ContractKind::PublicBody => lang.t("公共機関", "public body"),
    }
}

fn yen(v: u64) -> String {
    format!("{}円", grouped(i64::try_from(v).unwrap_or(i64::MAX)))
}

fn show_href(name: &str) -> String {
    format!(
        "/console/contracts/show?name={}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    )
}

pub fn contracts(lang: Lang, login: &Login, rows: &[ContractSummary]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        h2 { (t("契約一覧", "Contracts")) " (" (grouped(rows.len() as i64)) ")" }
        div.scroll { table {
            thead { tr {
                th scope="col" { (t("契約", "Contract")) }
                th scope="col" { (t("種別", "Kind")) }
                th scope="col" { (t("状態", "State")) }
                th scope="col" { (t("アカウント数", "Accounts")) }
                th scope="col" { (t("利用開始日", "Start")) }
                th scope="col" { (t("管理者の連絡先", "Administrator")) }
            } }
            tbody { @for c in rows { tr {
                td { a href=(show_href(&c.contract)) { (c.contract) } }
                td { (kind(lang, c.kind)) }
                td { (contract_state(lang, c.state)) }
                td { (grouped(c.accounts_used as i64)) " / " (grouped(c.account_quota as i64)) }
                td { (c.start) }
                td { (c.admin_email) }
            } } }
        } }
        h2 { (t("契約の追加（第11条・第12条）", "Add a contract (art. 11, 12)")) }
        form method="post" action="/console/contracts/add" {
            (csrf(login))
            label for="c-name" { (t("契約者名（英数字の識別名）", "Contract name (identifier)")) }
            input id="c-name" name="name" required autocomplete="off";
            label for="c-kind" { (t("種別", "Kind")) }
            select id="c-kind" name="kind" {
                option value="corporation" { (t("法人", "corporation")) }
                option value="public-body" { (t("公共機関", "public body")) }
            }
            label for="c-accounts" { (t("アカウント数（基本契約）", "Accounts (basic contract)")) }
            input id="c-accounts" name="accounts" type="number" min="1" value="10" required;
            label for="c-start" { (t("利用開始日（空欄なら今日）", "Service start (empty: today)")) }
            input id="c-start" name="start" type="date";
            label for="c-admin-name" { (t("管理者の氏名", "Administrator's name")) }
            input id="c-admin-name" name="admin_name" autocomplete="off";
            label for="c-admin-email" { (t("管理者のメールアドレス", "Administrator's e-mail")) }
            input id="c-admin-email" name="admin_email" type="email" required autocomplete="off";
            label for="c-address" { (t("住所", "Address")) }
            input id="c-address" name="address" autocomplete="off";
            label for="c-phone" { (t("電話番号", "Phone")) }
            input id="c-phone" name="phone" type="tel" autocomplete="off";
            label for="c-department" { (t("担当部署", "Department")) }
            input id="c-department" name="department" autocomplete="off";
            button type="submit" { (t("追加", "Add")) }
        }
    };
    layout(lang, t("契約", "Contracts"), Some(login), body)
}

const FIELDS: [(ContractField, &str); 8] = [
    (ContractField::Name, "name"),
    (ContractField::Address, "address"),
    (ContractField::Phone, "phone"),
    (ContractField::Department, "department"),
    (ContractField::SalesAgent, "sales-agent"),
    (ContractField::AdminName, "admin-name"),
    (ContractField::AdminEmail, "admin-email"),
    (ContractField::DeviceLimit, "device-limit"),
];

/// One contract: everything `contract show` says, then a form per action.
pub fn contract(lang: Lang, login: &Login, c: &ContractDetails) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let name = c.name.as_str();
    let body = html! {
        dl.summary {
            dt { (t("契約者名", "Name")) } dd { (c.name) }
            dt { (t("種別", "Kind")) } dd { (kind(lang, c.kind)) }
            dt { (t("状態", "State")) } dd { (contract_state(lang, c.state)) @if let Some(r) = &c.state_reason { " (" (r) ")" } }
            (term_and_quota(lang, c))
            dt { (text::field_words(lang, ContractField::DeviceLimit)) } dd { (c.device_limit) }
            dt { (t("住所", "Address")) } dd { (c.address) }
            dt { (t("電話番号", "Phone")) } dd { (c.phone) }
            dt { (t("担当部署", "Department")) } dd { (c.department) }
            dt { (t("販売代理店", "Sales agent")) } dd { (c.sales_agent.clone().unwrap_or_default()) }
            dt { (t("管理者", "Administrator")) } dd { (c.admin_name) " <" (c.admin_email) ">" }
            dt { (t("管理者のログイン", "Administrator's login")) } dd { (c.admin_login.clone().unwrap_or_else(|| "—".into())) }
            @if let Some(at) = c.termination_scheduled_at {
                dt { (t("解除の予定", "Termination takes effect")) } dd { (when(at)) }
            }
            @if c.termination_on_notice {
                dt { (t("解除", "Termination")) } dd { (t("通知の送信から5日後（第24条第3項）", "five days after its notice is sent (art. 24-3)")) }
            }
            @if let Some(d) = c.ended_on {
                dt { (t("解除日", "Ended on")) } dd { (d) }
            }
            @if let Some(x) = &c.cancellation {
                dt { (t("解約（第18条）", "Cancellation (art. 18)")) }
                dd { (t("受付", "received")) " " (x.received) ", " (t("最終利用日", "last day")) " " (x.effective) " (" (x.recorded_by) ")" }
            }
        }
        h2 { (t("基本契約と追加契約（第12条・第13条）", "Basic and additional contracts (art. 12, 13)")) }
        div.scroll { table {
            thead { tr {
                th scope="col" { (t("種類", "Kind")) }
                th scope="col" { (t("開始日", "Start")) }
                th scope="col" { (t("アカウント数", "Accounts")) }
                th scope="col" { (t("初回期間の終了日", "First term ends")) }
            } }
            tbody { @for r in &c.contracts { tr {
                td { @match r.kind { TermKind::Basic => (t("基本契約", "basic")), TermKind::Additional => (t("追加契約", "additional")) } }
                td { (r.start) }
                td { (r.accounts) }
                td { (r.first_term_end) }
            } } }
        } }
        @if !c.history.is_empty() {
            h2 { (t("変更履歴（第16条・第17条）", "Changes (art. 16, 17)")) }
            div.scroll { table {
                thead { tr {
                    th scope="col" { (t("日時", "Time")) }
                    th scope="col" { (t("操作者", "By")) }
                    th scope="col" { (t("項目", "Field")) }
                    th scope="col" { (t("変更前", "Was")) }
                    th scope="col" { (t("変更後", "Now")) }
                } }
                tbody { @for h in &c.history { tr {
                    td { (when(h.at)) } td { (h.by) } td { (h.field) } td { (h.was) } td { (h.now) }
                } } }
            } }
        }

        h2 { (t("契約内容の変更（第16条・第17条）", "Change a field (art. 16, 17)")) }
        form method="post" action="/console/contracts/set" {
            (csrf(login))
            input type="hidden" name="name" value=(name);
            label for="set-field" { (t("項目", "Field")) }
            select id="set-field" name="field" {
                @for (f, value) in FIELDS { option value=(value) { (text::field_words(lang, f)) } }
            }
            label for="set-value" { (t("新しい値", "New value")) }
            input id="set-value" name="value" autocomplete="off";
            button type="submit" { (t("変更", "Change")) }
        }

        h2 { (t("追加契約（第13条）", "Additional contract (art. 13)")) }
        form method="post" action="/console/contracts/add-accounts" {
            (csrf(login))
            input type="hidden" name="name" value=(name);
            label for="more-accounts" { (t("追加するアカウント数", "Accounts to add")) }
            input id="more-accounts" name="accounts" type="number" min="1" required;
            label for="more-start" { (t("開始日（空欄なら今日）", "Start (empty: today)")) }
            input id="more-start" name="start" type="date";
            button type="submit" { (t("追加", "Add")) }
        }

        @if let Some(admin) = &c.admin_login {
            h2 { (t("管理者の2段階認証のリセット", "Reset the administrator's two-step login")) }
            p { (t(
                "管理者がスマートフォンを紛失した場合に、本人確認のうえで行います。管理者はパスワードだけでログインし、設定し直せます。",
                "For a lost phone, once you have confirmed who is asking: the administrator then logs in with the password alone and may set it up again.",
            )) }
            form method="post" action="/console/contracts/totp-reset" {
                (csrf(login))
                input type="hidden" name="name" value=(name);
                input type="hidden" name="user" value=(admin);
                button type="submit" { (t("リセット", "Reset")) " (" (admin) ")" }
            }
        }

        h2 { (t("利用停止（第23条）", "Suspend (art. 23)")) }
        p { (t("接続中のセッションはすぐに切断され、ログインできなくなります。管理者に通知します。",
               "Live sessions are cut at once and logins refused; the administrator is notified.")) }
        form method="post" action="/console/contracts/suspend" {
            (csrf(login))
            input type="hidden" name="name" value=(name);
            label for="suspend-reason" { (t("理由", "Reason")) }
            input id="suspend-reason" name="reason" required autocomplete="off";
            button type="submit" { (t("利用停止", "Suspend")) }
        }

        h2 { (t("利用停止の解除（第23条）", "Resume (art. 23)")) }
        form method="post" action="/console/contracts/resume" {
            (csrf(login))
            input type="hidden" name="name" value=(name);
            button type="submit" { (t("利用を再開", "Resume")) }
        }

        h2 { (t("契約の解除（第24条）", "Terminate (art. 24)")) }
        form method="post" action="/console/contracts/terminate" {
            (csrf(login))
            input type="hidden" name="name" value=(name);
            label for="terminate-reason" { (t("理由", "Reason")) }
            input id="terminate-reason" name="reason" required autocomplete="off";
            input id="terminate-undeliverable" name="notice_undeliverable" type="checkbox" value="on";
            label.check for="terminate-undeliverable" {
                (t("通知が届かない（送信から5日後に解除、第24条第3項）", "The notice will not arrive (terminate five days after it is sent, art. 24-3)"))
            }
            button type="submit" { (t("解除", "Terminate")) }
        }

        h2 { (t("解約の記録（第18条）", "Record a cancellation (art. 18)")) }
        form method="post" action="/console/contracts/cancel" {
            (csrf(login))
            input type="hidden" name="name" value=(name);
            label for="cancel-received" { (t("解約申込書の受付日（空欄なら今日）", "Form received on (empty: today)")) }
            input id="cancel-received" name="received" type="date";
            label for="cancel-end" { (t("希望する終了月末（任意、第18条第4項）", "Requested month end (optional, art. 18-4)")) }
            input id="cancel-end" name="end" type="date";
            button type="submit" { (t("記録", "Record")) }
        }
    };
    layout(lang, &c.name, Some(login), body)
}

/// What the invoices page shows for one contract.
pub struct Billing {
    pub invoices: InvoiceReport,
    pub compensation: CompensationReport,
    /// The compensation statement as its administrator would read it.
    pub statement: String,
}

pub fn invoices(
    lang: Lang,
    login: &Login,
    contracts: &[ContractSummary],
    chosen: &str,
    at: Option<NaiveDate>,
    billing: Option<&Billing>,
) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        form.filters method="get" action="/console/invoices" {
            div {
                label for="i-contract" { (t("契約", "Contract")) }
                select id="i-contract" name="contract" required {
                    @for c in contracts { option value=(c.contract) selected[c.contract == chosen] { (c.contract) } }
                }
            }
            div {
                label for="i-at" { (t("基準日（空欄なら今日）", "Up to (empty: today)")) }
                input id="i-at" name="at" type="date" value=(at.map(|d| d.to_string()).unwrap_or_default());
            }
            button type="submit" { (t("表示", "Show")) }
        }
        @if let Some(b) = billing {
            @let r = &b.invoices;
            h2 { (t("請求（第28条）", "Invoices (art. 28)")) " — " (r.contract) ", " (t("基準日", "up to")) " " (r.up_to) }
            div.scroll { table {
                thead { tr {
                    th scope="col" { (t("契約", "Part")) }
                    th scope="col" { (t("発行日", "Issued")) }
                    th scope="col" { (t("期間", "Term")) }
                    th scope="col" { (t("明細", "Lines")) }
                    th scope="col" { (t("小計", "Subtotal")) }
                    th scope="col" { (t("消費税", "Tax")) }
                    th scope="col" { (t("合計", "Total")) }
                } }
                tbody { @for i in &r.invoices { tr {
                    td { (i.contract_part) }
                    td { (i.issued) }
                    td { (i.term_start) " – " (i.term_end) }
                    td { @for l in &i.lines { (l.item) ": " (yen(l.amount)) br; } }
                    td { (yen(i.subtotal)) }
                    td { (yen(i.tax)) " (" (i.tax_rate_bp / 100) "%)" }
                    td { (yen(i.total)) }
                } } }
            } }
            p { (t("請求額の合計: ", "Total invoiced: ")) strong { (yen(r.total)) } }

            @let c = &b.compensation;
            h2 { (t("障害の補償（第35条）", "Outage compensation (art. 35)")) }
            dl.summary {
                dt { (t("記録された障害", "Recorded outages")) } dd { (c.outages) }
                dt { (t("対象の障害（120時間以上）", "Counted (120 h or more)")) } dd { (c.outages_in_period) }
                dt { (t("補償日数", "Days")) } dd { (c.compensable_days) }
                dt { (t("計画メンテナンスで除いた時間", "Excluded as planned maintenance")) }
                dd { (format!("{:.1}", c.maintenance_excluded_s as f64 / 3600.0)) " h" }
                dt { (t("補償額", "Compensation")) } dd { strong { (yen(c.compensation)) } }
            }
            @if !c.counted.is_empty() {
                div.scroll { table {
                    thead { tr {
                        th scope="col" { (t("開始", "Start")) }
                        th scope="col" { (t("終了", "End")) }
                        th scope="col" { (t("日数", "Days")) }
                        th scope="col" { (t("年間使用料", "Annual fee")) }
                    } }
                    tbody { @for o in &c.counted { tr {
                        td { (when(o.start)) } td { (when(o.end)) } td { (o.days) } td { (yen(o.annual_fee)) }
                    } } }
                } }
            }
            h3 { (t("補償の明細書（管理者あて）", "The statement for the administrator")) }
            pre { (b.statement) }
            form method="post" action="/console/invoices/send-statement" {
                (csrf(login))
                input type="hidden" name="contract" value=(c.contract);
                button type="submit" { (t("明細書を管理者に送る", "Send the statement to the administrator")) }
            }
        }
    };
    layout(lang, t("請求・補償", "Invoices & compensation"), Some(login), body)
}

pub fn outages(lang: Lang, login: &Login, rows: &[OutageRow]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        h2 { (t("障害の記録（第35条）", "Record an outage (art. 35)")) }
        p { (t("時刻は運用者のタイムゾーンで入力します。", "Times in the operator's time zone.")) }
        form method="post" action="/console/outages/add" {
            (csrf(login))
            label for="o-start" { (t("開始", "Start")) }
            input id="o-start" name="start" type="datetime-local" required;
            label for="o-end" { (t("終了", "End")) }
            input id="o-end" name="end" type="datetime-local" required;
            label for="o-note" { (t("メモ", "Note")) }
            input id="o-note" name="note" autocomplete="off";
            button type="submit" { (t("記録", "Record")) }
        }
        h2 { (t("記録された障害", "Recorded outages")) " (" (grouped(rows.len() as i64)) ")" }
        div.scroll { table {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (t("開始", "Start")) }
                th scope="col" { (t("終了", "End")) }
                th scope="col" { (t("時間", "Hours")) }
                th scope="col" { (t("記録元", "Source")) }
                th scope="col" { (t("メモ", "Note")) }
            } }
            tbody { @for o in rows { tr {
                td { (o.id) }
                td { (when(o.start)) }
                td { (when(o.end)) }
                td { (format!("{:.1}", o.duration_s as f64 / 3600.0)) }
                td { (o.source.clone().unwrap_or_else(|| t("手入力", "by hand").into())) }
                td { (o.note) }
            } } }
        } }
    };
    layout(lang, t("障害", "Outages"), Some(login), body)
}

/// Planned maintenance (art. 34-2): announce a window to every contract's administrator,
/// see the windows and their state, cancel one not yet ended.
pub fn maintenance(lang: Lang, login: &Login, rows: &[MaintenanceRow]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        h2 { (t("保守の予定を告知する（第34条第2項）", "Announce maintenance (art. 34-2)")) }
        p { (t("すべての契約のアカウント管理者に、指定した日数前に通知し、前日にもう一度お知らせします。緊急の場合はすぐに通知します。時刻は運用者のタイムゾーンで入力します。",
               "Every contract's administrator is told the given number of days ahead and reminded the day before; an emergency is announced at once. Times in the operator's time zone.")) }
        form method="post" action="/console/maintenance/add" {
            (csrf(login))
            label for="m-start" { (t("開始", "Start")) }
            input id="m-start" name="start" type="datetime-local" required;
            label for="m-end" { (t("終了", "End")) }
            input id="m-end" name="end" type="datetime-local" required;
            label for="m-reason" { (t("作業内容（管理者が読みます）", "What is done (administrators read it)")) }
            input id="m-reason" name="reason" required autocomplete="off";
            label for="m-days" { (t("何日前に通知するか", "Days of notice")) }
            input id="m-days" name="notice_days" type="number" min="0" max="90" value="7" required;
            label for="m-emergency" {
                input id="m-emergency" name="emergency" type="checkbox" value="on";
                " " (t("緊急（すぐに通知）", "Emergency (announce at once)"))
            }
            button type="submit" { (t("告知", "Announce")) }
        }
        h2 { (t("保守の予定", "Maintenance windows")) " (" (grouped(rows.len() as i64)) ")" }
        div.scroll { table {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (t("開始", "Start")) }
                th scope="col" { (t("終了", "End")) }
                th scope="col" { (t("作業内容", "What")) }
                th scope="col" { (t("状態", "State")) }
                th scope="col" { (t("操作", "Action")) }
            } }
            tbody { @for m in rows { tr {
                td { (m.id) }
                td { (when(m.start)) }
                td { (when(m.end)) }
                td { (m.reason) @if m.emergency { " " strong { (t("（緊急）", "(emergency)")) } } }
                td { (maintenance_state(lang, &m.state)) }
                td { @if m.state == "planned" || m.state == "in progress" {
                    form method="post" action="/console/maintenance/cancel" {
                        (csrf(login))
                        input type="hidden" name="id" value=(m.id);
                        button type="submit" aria-label=(format!("{} #{}", t("取消", "Cancel"), m.id)) { (t("取消", "Cancel")) }
                    }
                } }
            } } }
        } }
    };
    layout(lang, t("保守", "Maintenance"), Some(login), body)
}

/// A window's state as the admin API names it (`planned`, `in progress`, `ended`,
/// `cancelled`), in words; an unknown one shows as it is.
fn maintenance_state(lang: Lang, state: &str) -> &str {
    match state {
        "planned" => lang.t("予定", "planned"),
        "in progress" => lang.t("作業中", "in progress"),
        "ended" => lang.t("終了", "ended"),
        "cancelled" => lang.t("取消済み", "cancelled"),
        other => other,
    }
}

pub fn tariff(lang: Lang, login: &Login, tariff: &Tariff) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        dl.summary {
            dt { (t("初期費用（第27条第1項）", "Initial fee (art. 27-1)")) } dd { (yen(tariff.initial_fee)) }
            dt { (t("年間使用料（1アカウント）", "Annual fee per account")) } dd { (yen(tariff.annual_fee_per_account)) }
            dt { (t("消費税率（第30条）", "Tax (art. 30)")) }
            dd { (tariff.tax_rate_bp / 100) "." (format!("{:02}", tariff.tax_rate_bp % 100)) "%" }
            dt { (t("利用開始月の使用料（第27条第2項）", "Start month's usage fee (art. 27-2)")) }
            dd { @if tariff.start_month_free { (t("無料", "free")) } @else { (t("有料（BCP特約）", "charged (BCP special terms)")) } }
        }
        @if !tariff.options.is_empty() {
            h2 { (t("オプション作業費（第27条第1項）", "Option work fees (art. 27-1)")) }
            div.scroll { table {
                thead { tr { th scope="col" { (t("項目", "Item")) } th scope="col" { (t("金額", "Amount")) } } }
                tbody { @for o in &tariff.options { tr { td { (o.name) } td { (yen(o.amount)) } } } }
            } }
        }
        p { (t("料金の変更は mcvpn admin tariff set で行います。", "Change the fees with mcvpn admin tariff set.")) }
    };
    layout(lang, t("料金", "Tariff"), Some(login), body)
}
