//! The console's HTML, rendered at compile time by `maud` (escaping by default). No
//! script anywhere: every action is a form.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::session::{Login, Role};
use super::text::{action_words, grouped, Lang};
use super::LoginAs;
use crate::admin::api::{
    AccountRow, AuditRow, ContractDetails, CurrentTerm, DeviceRow, GrantRow, NoticeRow, SessionRow, TargetRow,
};
use crate::admin::{LogFilter, LogResult};
use crate::store::{AccountState, ContractState};

/// A time as the operator's (and so the contract's) time zone shows it.
pub(super) fn when(t: DateTime<Utc>) -> String {
    crate::contract::format_local(crate::contract::operator_tz(), t)
}

/// The frame around every page: navigation for a logged-in person, the language switch.
pub fn layout(lang: Lang, title: &str, login: Option<&Login>, body: Markup) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — mcvpn" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    span.brand { "mcvpn " (t("管理コンソール", "console")) }
                    @if let Some(l) = login {
                        nav {
                            // Each login sees its own pages (decided once, by its role).
                            @match &l.role {
                                Role::AccountAdmin { .. } => {
                                    a href="/console/" { (t("ダッシュボード", "Dashboard")) }
                                    a href="/console/accounts" { (t("アカウント", "Accounts")) }
                                    a href="/console/targets" { (t("対象機器", "Targets")) }
                                    a href="/console/sessions" { (t("接続中", "Live sessions")) }
                                    a href="/console/history" { (t("接続履歴", "Access history")) }
                                    a href="/console/notices" { (t("お知らせ", "Notices")) }
                                    a href="/console/totp" { (t("2段階認証", "Two-step login")) }
                                }
                                Role::Operator { .. } => { (super::operator_pages::navigation(lang)) }
                            }
                        }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(l.csrf);
                            span { (l.account) }
                            button type="submit" { (t("ログアウト", "Log out")) }
                        }
                    }
                    span.lang {
                        a href="?lang=ja" lang="ja" { "日本語" }
                        " | "
                        a href="?lang=en" lang="en" { "English" }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(flash) = login.and_then(|l| l.flash.as_deref()) {
                        p.flash role="status" { (flash) }
                    }
                    (body)
                }
            }
        }
    }
}

pub fn login_form(lang: Lang, login_as: LoginAs, error: Option<&str>) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/console/login" {
            fieldset.choice {
                legend { (t("ログインの種類", "Log in as")) }
                input id="as-admin" type="radio" name="login_as" value="admin" checked[login_as == LoginAs::Admin];
                label for="as-admin" { (t("アカウント管理者", "Account administrator")) }
                input id="as-operator" type="radio" name="login_as" value="operator" checked[login_as == LoginAs::Operator];
                label for="as-operator" { (t("運用者", "Operator")) }
            }
            label for="account" { (t("アカウント名", "Account")) }
            input id="account" name="account" autocomplete="username" required;
            label for="password" { (t("パスワード", "Password")) }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            button type="submit" { (t("ログイン", "Log in")) }
        }
    };
    layout(lang, t("ログイン", "Log in"), None, body)
}

/// The second step of a login with a second factor: the code from the app.
pub fn code_form(lang: Lang, error: Option<&str>) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p { (t(
            "パスワードを確認しました。認証アプリに表示されている6桁のコードを入力してください（5分以内、5回まで）。",
            "Your password was accepted. Type the 6-digit code your authenticator app shows (within 5 minutes, at most 5 tries).",
        )) }
        form method="post" action="/console/login/code" {
            label for="code" { (t("ワンタイムコード（6桁）", "One-time code (6 digits)")) }
            input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
            button type="submit" { (t("確認", "Verify")) }
        }
        p { a href="/console/login" { (t("最初からログインし直す", "Start the login again")) } }
    };
    layout(lang, t("ワンタイムコード", "One-time code"), None, body)
}

/// The code field of the TOTP page's forms.
fn code_field(lang: Lang, id: &str) -> Markup {
    html! {
        label for=(id) { (lang.t("認証アプリの6桁のコード", "The 6-digit code from the app")) }
        input id=(id) name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
    }
}

/// The base32 secret in groups of four, as apps ask for it to be typed.
fn grouped_secret(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The administrator's own second factor: its state, and setting it up or turning it
/// off. `setup` is the secret being set up (kept in the login, not yet stored).
pub fn totp(lang: Lang, login: &Login, on: bool, setup: Option<&str>) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        p { (t(
            "2段階認証をオンにすると、管理コンソールへのログインでパスワードの後に認証アプリ（Google Authenticator など）のワンタイムコードが必要になります。",
            "With two-step login on, console logins ask for a one-time code from an authenticator app (Google Authenticator and the like) after the password.",
        )) }
        dl.summary {
            dt { (t("状態", "State")) }
            dd { @if on { (t("オン", "on")) } @else { (t("オフ", "off")) } }
        }
        @if on {
            h2 { (t("2段階認証を解除する", "Turn two-step login off")) }
            p { (t(
                "スマートフォンを紛失した場合は、運用者にリセットを依頼してください。",
                "After a lost phone, ask the service operator to reset it.",
            )) }
            form method="post" action="/console/totp/off" {
                (csrf(login))
                (code_field(lang, "off-code"))
                button type="submit" { (t("解除", "Turn off")) }
            }
        } @else if let Some(secret) = setup {
            h2 { (t("設定", "Set up")) }
            ol {
                li { (t("認証アプリで次の QR コードを読み取ってください。", "Scan this QR code with your authenticator app.")) }
                li { (t("読み取れない場合は、次のキーを手で入力してください（時間ベース）。", "If it cannot scan it, type this key by hand (time-based).")) }
                li { (t("アプリに表示された6桁のコードを入力して確定してください。", "Type the 6-digit code the app shows to confirm.")) }
            }
            img.qr src="/console/totp/qr.png" alt=(t("2段階認証の設定用 QR コード", "QR code for setting up two-step login")) width="240" height="240";
            p { (t("キー: ", "Key: ")) code.secret { (grouped_secret(secret)) } }
            form method="post" action="/console/totp/confirm" {
                (csrf(login))
                (code_field(lang, "confirm-code"))
                button type="submit" { (t("確定", "Confirm")) }
            }
        } @else {
            form method="post" action="/console/totp/setup" {
                (csrf(login))
                button type="submit" { (t("2段階認証を設定する", "Set up two-step login")) }
            }
        }
    };
    layout(lang, t("2段階認証", "Two-step login"), Some(login), body)
}

pub(super) fn contract_state(lang: Lang, s: ContractState) -> &'static str {
    match s {
        ContractState::Active => lang.t("有効", "active"),
        ContractState::Suspended => lang.t("利用停止中", "suspended"),
        ContractState::Terminated => lang.t("解除", "terminated"),
        ContractState::Cancelled => lang.t("解約", "cancelled"),
    }
}

/// The current term, its cancellation deadline and the accounts used of the quota, as
/// rows of a `dl.summary` (the dashboard's and the operator's contract page's).
pub(super) fn term_and_quota(lang: Lang, c: &ContractDetails) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    html! {
        @match &c.current_term {
            CurrentTerm::Active { start, end, cancellation_deadline, renews, last_day, .. } => {
                dt { (t("現在の契約期間", "Current term")) } dd { (start) " – " (end) }
                dt { (t("解約申込期限", "Cancellation deadline")) } dd { (cancellation_deadline) }
                dt { (t("自動更新", "Renews")) } dd { @if *renews { (t("する", "yes")) } @else { (t("しない", "no")) } }
                @if let Some(d) = last_day { dt { (t("最終利用日", "Last day")) } dd { (d) } }
            }
            CurrentTerm::NotStarted { starts } => {
                dt { (t("利用開始日", "Starts")) } dd { (starts) }
            }
            CurrentTerm::Ended { last_day } => {
                dt { (t("最終利用日", "Last day")) } dd { (last_day) }
            }
            CurrentTerm::Unknown { error } => {
                dt { (t("契約期間", "Term")) } dd { (error) }
            }
        }
        dt { (t("アカウント数", "Accounts")) }
        dd { (grouped(c.accounts_used as i64)) " / " (grouped(c.account_quota as i64)) }
    }
}

pub fn dashboard(lang: Lang, login: &Login, c: &ContractDetails, live: usize) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        dl.summary {
            dt { (t("契約", "Contract")) } dd { (c.name) }
            dt { (t("状態", "State")) } dd { (contract_state(lang, c.state)) @if let Some(r) = &c.state_reason { " (" (r) ")" } }
            (term_and_quota(lang, c))
            dt { (t("接続中のセッション", "Live sessions")) } dd { a href="/console/sessions" { (grouped(live as i64)) } }
        }
    };
    layout(lang, t("ダッシュボード", "Dashboard"), Some(login), body)
}

pub(super) fn csrf(login: &Login) -> Markup {
    html! { input type="hidden" name="csrf" value=(login.csrf); }
}

pub fn accounts(lang: Lang, login: &Login, rows: &[AccountRow]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        h2 { (t("アカウントの追加", "Add an account")) }
        form method="post" action="/console/accounts/add" {
            (csrf(login))
            label for="new-user" { (t("アカウント名", "Account name")) }
            input id="new-user" name="user" required autocomplete="off";
            label for="new-password" { (t("初期パスワード（12文字以上）", "First password (12 characters or more)")) }
            input id="new-password" name="password" type="password" required autocomplete="new-password";
            button type="submit" { (t("追加", "Add")) }
        }
        h2 { (t("アカウント一覧", "Accounts")) " (" (grouped(rows.len() as i64)) ")" }
        div.scroll {
            table {
                thead { tr {
                    th scope="col" { (t("アカウント", "Account")) }
                    th scope="col" { (t("状態", "State")) }
                    th scope="col" { (t("端末認証", "Device binding")) }
                    th scope="col" { (t("作成日時", "Created")) }
                    th scope="col" { (t("操作", "Actions")) }
                } }
                tbody {
                    @for a in rows {
                        tr {
                            td { (a.account) }
                            td { @match a.state { AccountState::Active => (t("有効", "active")), AccountState::Locked => (t("ロック中", "locked")) } }
                            td { @if a.device_binding { (t("オン", "on")) } @else { (t("オフ", "off")) } }
                            td { (when(a.created_at)) }
                            td {
                                a.action href=(super::devices_page(&a.account)) { (t("手元端末", "Devices")) }
                                form.inline method="post" action=(if a.state == AccountState::Locked { "/console/accounts/unlock" } else { "/console/accounts/lock" }) {
                                    (csrf(login))
                                    input type="hidden" name="user" value=(a.account);
                                    button type="submit" {
                                        @if a.state == AccountState::Locked { (t("ロック解除", "Unlock")) } @else { (t("ロック", "Lock")) }
                                    }
                                }
                                form.inline method="post" action="/console/accounts/password" {
                                    (csrf(login))
                                    input type="hidden" name="user" value=(a.account);
                                    label for={"pw-" (a.account)} { (t("新しいパスワード", "New password")) }
                                    input id={"pw-" (a.account)} name="password" type="password" autocomplete="new-password" required placeholder=(t("新しいパスワード", "New password"));
                                    button type="submit" { (t("再設定", "Reset")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(lang, t("アカウント", "Accounts"), Some(login), body)
}

/// Device binding on or off, as the devices page words it.
fn binding_state(lang: Lang, on: bool) -> &'static str {
    if on {
        lang.t(
            "オン（登録済みの手元端末からのみログインできます）",
            "on (only registered devices may log in)",
        )
    } else {
        lang.t(
            "オフ（どの端末からでもログインできます）",
            "off (any device may log in)",
        )
    }
}

pub fn devices(lang: Lang, login: &Login, user: &str, binding: Option<bool>, rows: &[DeviceRow]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    // As for targets: the name when it is the account's only device so named, else the
    // node number.
    let device_ref = |d: &DeviceRow| -> String {
        if rows.iter().filter(|x| x.name == d.name).count() == 1 {
            d.name.clone()
        } else {
            d.node.to_string()
        }
    };
    let body = html! {
        p { a href="/console/accounts" { (t("アカウント一覧へ戻る", "Back to the accounts")) } }
        h2 { (t("端末認証", "Device binding")) }
        @if let Some(on) = binding { p { (binding_state(lang, on)) } }
        @for (state, on, label) in [("on", true, t("オンにする", "Turn on")), ("off", false, t("オフにする", "Turn off"))] {
            @if binding != Some(on) {
                form.inline method="post" action="/console/accounts/binding" {
                    (csrf(login))
                    input type="hidden" name="user" value=(user);
                    input type="hidden" name="state" value=(state);
                    button type="submit" { (label) }
                }
            }
        }
        h2 { (t("手元端末", "Client devices")) " (" (grouped(rows.len() as i64)) ")" }
        @if rows.is_empty() { p { (t("登録された手元端末はありません。", "No registered devices.")) } }
        @else {
            p { (t(
                "削除すると、その端末の接続は切れ、その鍵ではログインできなくなります。別の端末を登録できるようになります。",
                "Removing a device ends its live session and its key no longer logs in; the account may register another.",
            )) }
            div.scroll { table {
                thead { tr {
                    th scope="col" { (t("端末名", "Name")) }
                    th scope="col" { (t("ノード", "Node")) }
                    th scope="col" { (t("アドレス", "Address")) }
                    th scope="col" { (t("登録日時", "Registered")) }
                    th scope="col" { (t("最終接続", "Last seen")) }
                    th scope="col" { (t("接続中", "Online")) }
                    th scope="col" { (t("操作", "Action")) }
                } }
                tbody { @for d in rows { tr {
                    td { (d.name) }
                    td { (d.node) }
                    td { (d.overlay_ip) }
                    td { (when(d.registered)) }
                    td { @if let Some(seen) = d.last_seen { (when(seen)) } @else { "—" } }
                    td { @if d.online { (t("はい", "yes")) } @else { (t("いいえ", "no")) } }
                    td { form.inline method="post" action="/console/accounts/devices/remove" {
                        (csrf(login))
                        input type="hidden" name="user" value=(user);
                        input type="hidden" name="device" value=(device_ref(d));
                        button type="submit" { (t("削除", "Remove")) }
                    } }
                } } }
            } }
        }
    };
    let title = format!("{}{user}{}", t("", "Devices of "), t(" の手元端末", ""));
    layout(lang, &title, Some(login), body)
}

/// The targets of the contract and who else may reach them.
pub fn targets(lang: Lang, login: &Login, targets: &[TargetRow], grants: &[GrantRow]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    // How a form names a target: by its name (which the flash line then shows), or by
    // its node number when two of the contract's targets share the name.
    let target_ref = |name: &str, account: &str| -> String {
        let named = targets.iter().filter(|x| x.name == name).count();
        let mut same = targets.iter().filter(|x| x.name == name && x.account == account);
        match (named, same.next(), same.next()) {
            (1, _, _) => name.to_string(),
            (_, Some(x), None) => x.node.to_string(),
            _ => name.to_string(),
        }
    };
    let body = html! {
        h2 { (t("対象機器", "Targets")) " (" (grouped(targets.len() as i64)) ")" }
        @if targets.is_empty() {
            p { (t(
                "登録された対象機器はありません（`mcvpn admin target add` で登録します）。",
                "No targets registered (register one with `mcvpn admin target add`).",
            )) }
        } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { (t("名前", "Name")) }
                    th scope="col" { (t("ノード", "Node")) }
                    th scope="col" { (t("アカウント", "Account")) }
                    th scope="col" { (t("アドレス", "Address")) }
                    th scope="col" { (t("最終接続", "Last seen")) }
                } }
                tbody { @for x in targets { tr {
                    td { (x.name) }
                    td { (x.node) }
                    td { (x.account) }
                    td { (x.overlay_ip) }
                    td { @if let Some(seen) = x.last_seen { (when(seen)) } @else { "—" } }
                } } }
            } }
            h2 { (t("接続許可の追加", "Grant a target")) }
            p { (t(
                "対象機器を、その持ち主以外の同じ契約のアカウントからも使えるようにします。",
                "Lets another account of the contract reach a target.",
            )) }
            form method="post" action="/console/targets/grant" {
                (csrf(login))
                label for="grant-target" { (t("対象機器", "Target")) }
                select id="grant-target" name="target" required {
                    @for x in targets { option value=(target_ref(&x.name, &x.account)) { (x.name) " (" (x.account) ", " (x.node) ")" } }
                }
                label for="grant-account" { (t("許可するアカウント", "Account to allow")) }
                input id="grant-account" name="account" required autocomplete="off";
                button type="submit" { (t("許可", "Grant")) }
            }
        }
        h2 { (t("接続許可", "Grants")) " (" (grouped(grants.len() as i64)) ")" }
        @if grants.is_empty() { p { (t("接続許可はありません。", "No grants.")) } }
        @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { (t("対象機器", "Target")) }
                    th scope="col" { (t("持ち主", "Owner")) }
                    th scope="col" { (t("許可されたアカウント", "Granted to")) }
                    th scope="col" { (t("許可日時", "Since")) }
                    th scope="col" { (t("操作", "Action")) }
                } }
                tbody { @for g in grants { tr {
                    td { (g.target) }
                    td { (g.target_account) }
                    td { (g.granted_to) }
                    td { (when(g.since)) }
                    td { form.inline method="post" action="/console/targets/revoke" {
                        (csrf(login))
                        input type="hidden" name="target" value=(target_ref(&g.target, &g.target_account));
                        input type="hidden" name="account" value=(g.granted_to);
                        button type="submit" { (t("取り消し", "Revoke")) }
                    } }
                } } }
            } }
        }
    };
    layout(lang, t("対象機器と接続許可", "Targets and grants"), Some(login), body)
}

pub fn sessions(lang: Lang, login: &Login, rows: &[SessionRow]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        @if rows.is_empty() { p { (t("接続中のセッションはありません。", "No live sessions.")) } }
        @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "#" }
                    th scope="col" { (t("アカウント", "Account")) }
                    th scope="col" { (t("端末", "Device")) }
                    th scope="col" { (t("種別", "Role")) }
                    th scope="col" { (t("接続元", "From")) }
                    th scope="col" { (t("開始", "Since")) }
                    th scope="col" { (t("操作", "Action")) }
                } }
                tbody { @for s in rows { tr {
                    td { (s.session) }
                    td { (s.account) }
                    td { (s.device) }
                    td { (s.role.as_str()) }
                    td { (s.source) }
                    td { (when(s.started_at)) }
                    td { form.inline method="post" action="/console/sessions/end" {
                        (csrf(login))
                        input type="hidden" name="session" value=(s.session);
                        button type="submit" { (t("切断", "Disconnect")) }
                    } }
                } } }
            } }
        }
    };
    layout(lang, t("接続中のセッション", "Live sessions"), Some(login), body)
}

/// How many rows the history page shows (the CSV has up to [`super::CSV_ROWS`]).
pub const HISTORY_ROWS: usize = 200;

pub fn history(lang: Lang, login: &Login, filter: &LogFilter, rows: &[AuditRow], csv_query: &str) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let date = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/console/history" {
            div {
                label for="f-account" { (t("アカウント", "Account")) }
                input id="f-account" name="account" value=(filter.account.clone().unwrap_or_default());
            }
            div {
                label for="f-result" { (t("結果", "Result")) }
                select id="f-result" name="result" {
                    option value="" selected[filter.result.is_none()] { (t("すべて", "all")) }
                    option value="ok" selected[filter.result == Some(LogResult::Ok)] { (t("成功", "ok")) }
                    option value="refused" selected[filter.result == Some(LogResult::Refused)] { (t("拒否", "refused")) }
                }
            }
            div {
                label for="f-since" { (t("開始日", "From")) }
                input id="f-since" name="since" type="date" value=(date(filter.since));
            }
            div {
                label for="f-until" { (t("終了日", "Until")) }
                input id="f-until" name="until" type="date" value=(date(filter.until));
            }
            button type="submit" { (t("絞り込み", "Filter")) }
        }
        p { a href={"/console/history.csv?" (csv_query)} download { (t("CSVダウンロード（Excel用）", "Download CSV (for Excel)")) } }
        p { (t("新しい順に最大200件", "Newest first, up to 200 rows")) }
        div.scroll { table {
            thead { tr {
                th scope="col" { (t("日時", "Time")) }
                th scope="col" { (t("操作者", "Actor")) }
                th scope="col" { (t("種別", "Action")) }
                th scope="col" { (t("アカウント", "Account")) }
                th scope="col" { (t("接続元", "Source")) }
                th scope="col" { (t("詳細", "Detail")) }
            } }
            tbody { @for r in rows.iter().rev() { tr {
                td { (when(r.at)) }
                td { (r.actor) }
                td {
                    @match action_words(lang, &r.action) {
                        Some(words) => { (words) br; small.code { (r.action) } }
                        None => (r.action),
                    }
                }
                td { (r.account.clone().unwrap_or_default()) }
                td { (r.source.clone().unwrap_or_default()) }
                td { (r.detail) }
            } } }
        } }
    };
    layout(lang, t("接続履歴", "Access history"), Some(login), body)
}

pub fn notices(lang: Lang, login: &Login, rows: &[NoticeRow]) -> Markup {
    let t = |ja, en| lang.t(ja, en);
    let body = html! {
        @if rows.is_empty() { p { (t("お知らせはありません。", "No notices.")) } }
        div.scroll { table {
            thead { tr {
                th scope="col" { (t("日時", "Time")) }
                th scope="col" { (t("件名", "Subject")) }
                th scope="col" { (t("送信", "Sent")) }
            } }
            tbody { @for n in rows.iter().rev() { tr {
                td { (when(n.created_at)) }
                td { (n.subject) }
                td { (n.sent) }
            } } }
        } }
    };
    layout(lang, t("お知らせ", "Notices"), Some(login), body)
}

/// A refusal or a missing thing, as a page.
pub fn problem(lang: Lang, login: Option<&Login>, title: &str, message: &str) -> Markup {
    let body = html! {
        p.error role="alert" { (message) }
        p { a href="/console/" { (lang.t("ダッシュボードへ戻る", "Back to the dashboard")) } }
    };
    layout(lang, title, login, body)
}

/// The one stylesheet: readable on a phone (no fixed widths; wide tables scroll inside
/// their own box, never the page).
pub const STYLE: &str = "\
*{box-sizing:border-box}body{margin:0;font-family:system-ui,'Hiragino Sans','Noto Sans JP',sans-serif;color:#1a1a1a;background:#fafafa}\
header{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:center;padding:.6em 1em;background:#1d3557;color:#fff}\
header a{color:#fff}.brand{font-weight:bold}nav{display:flex;flex-wrap:wrap;gap:.3em 1em}\
main{padding:1em;max-width:70em}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}\
label{display:block;margin-top:.5em}input,select,button{font:inherit;padding:.35em;max-width:100%}\
button{margin-top:.5em;cursor:pointer}a.action{margin-right:.6em}form.inline{display:inline-block;margin:0 .3em .3em 0}\
form.inline label{position:absolute;left:-9999px}\
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;width:100%}\
th,td{border-bottom:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;overflow-wrap:break-word}\
small.code{color:#666}header form.inline span{margin-right:.5em}\
form.filters{display:flex;flex-wrap:wrap;gap:.3em 1em;align-items:end}form.filters label{margin-top:0}\
form.filters div{display:flex;flex-direction:column}\
.error{color:#a4161a;font-weight:bold}.flash{background:#e9f5db;padding:.5em}\
fieldset.choice{border:0;padding:0;margin:.5em 0}fieldset.choice label{display:inline;margin:0 1em 0 .3em}\
pre{white-space:pre-wrap;overflow-wrap:break-word;background:#fff;border:1px solid #ccc;padding:.5em}\
dl.summary{display:grid;grid-template-columns:minmax(0,max-content) minmax(0,1fr);gap:.3em 1em}dd{margin:0}\
dt,dd{overflow-wrap:anywhere}\
img.qr{display:block;max-width:100%;height:auto;image-rendering:pixelated;margin:.5em 0}code.secret{overflow-wrap:anywhere}\
@media (max-width:40em){dl.summary{grid-template-columns:minmax(0,1fr)}dd{margin-bottom:.4em}}\
";
