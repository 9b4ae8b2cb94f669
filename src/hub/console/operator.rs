//! The operator's console pages (issue 14): contracts (create, show, change, add
//! accounts, suspend, resume, terminate, record a cancellation), invoices and outage
//! compensation, outages, the tariff. Every page and form runs the same `AdminCommand`
//! the `mcvpn admin` command line does, in the login's scope: an account administrator
//! who opens one gets the admin API's refusal, never its effect.

use std::str::FromStr;

use axum::extract::{Form, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Deserializer};

use super::session::Pages;
use super::{
    authed, csrf_form, fetch, html, language, operator_pages, pages, with_cookie, Authed, Caller, CsrfForm, LangQuery,
};
use crate::admin::api::{AccountCmd, ContractSpec, MaintenanceCmd, OutageCmd, TariffCmd};
use crate::admin::{AdminCommand, ContractCmd, Output};
use crate::store::ContractField;

pub fn routes() -> Router {
    Router::new()
        .route("/console/contracts", get(contracts))
        .route("/console/contracts/add", post(contract_add))
        .route("/console/contracts/show", get(contract_show))
        .route("/console/contracts/set", post(contract_set))
        .route("/console/contracts/add-accounts", post(contract_add_accounts))
        .route("/console/contracts/suspend", post(contract_suspend))
        .route("/console/contracts/resume", post(contract_resume))
        .route("/console/contracts/terminate", post(contract_terminate))
        .route("/console/contracts/cancel", post(contract_cancel))
        .route("/console/contracts/totp-reset", post(totp_reset))
        .route("/console/invoices", get(invoices))
        .route("/console/invoices/send-statement", post(send_statement))
        .route("/console/outages", get(outages))
        .route("/console/outages/add", post(outage_add))
        .route("/console/tariff", get(tariff))
        .route("/console/maintenance", get(maintenance))
        .route("/console/maintenance/add", post(maintenance_add))
        .route("/console/maintenance/cancel", post(maintenance_cancel))
}

/// A page's login and language: the login page when there is none, refused for a login
/// that works on a contract's pages. (Its forms need no such check: the admin API
/// refuses an account administrator every operator command.)
fn page_login(c: &Caller, q: &LangQuery) -> Result<(Authed, Option<String>), Response> {
    let (lang, set) = language(&c.headers, q);
    let a = authed(&c.console, &c.headers, lang)?;
    match a.login.role.pages() {
        Pages::Operator => Ok((a, set)),
        Pages::Contract => {
            let page = pages::problem(
                lang,
                Some(&a.login),
                lang.t("権限がありません", "Not allowed"),
                lang.t(
                    "このページは運用者専用です。アカウント管理者のログインでは開けません。",
                    "This page is the service operator's; an account administrator's login cannot open it.",
                ),
            );
            Err((StatusCode::FORBIDDEN, html(page)).into_response())
        }
    }
}

/// The contract page a form about `name` returns to.
fn show_url(name: &str) -> String {
    format!(
        "/console/contracts/show?name={}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// An optional form field: empty is absent, anything else must parse (a date
/// `YYYY-MM-DD`, a number).
fn optional<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error>
where
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(d)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A checkbox: present (whatever its value) is on.
fn checkbox<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<String>::deserialize(d)?.is_some())
}

/// A browser's `datetime-local` value (`2027-03-01T09:30`, seconds optional), in the
/// operator's time zone as `outage add` takes it.
fn local_time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a date and time like 2027-03-01T09:30")))
}

csrf_form!(
    NewContractForm,
    SetForm,
    AddAccountsForm,
    ReasonForm,
    NameForm,
    TerminateForm,
    CancelForm,
    StatementForm,
    OutageForm,
    TotpResetForm,
    MaintenanceForm,
    MaintenanceCancelForm
);

// ---------------------------------------------------------------------------------------
// Contracts
// ---------------------------------------------------------------------------------------

async fn contracts(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let (a, set) = match page_login(&c, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match fetch(&c.console, &a, c.source, AdminCommand::Contract(ContractCmd::List)).await {
        Ok(Output::Contracts(rows)) => with_cookie(html(operator_pages::contracts(a.lang, &a.login, &rows)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct NewContractForm {
    csrf: Option<String>,
    name: String,
    kind: String,
    accounts: u32,
    #[serde(default, deserialize_with = "optional")]
    start: Option<NaiveDate>,
    #[serde(default)]
    admin_name: String,
    #[serde(default)]
    admin_email: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    department: String,
}

async fn contract_add(c: Caller, Form(f): Form<NewContractForm>) -> Response {
    let page = show_url(&f.name);
    c.act_on(f, &page, |f| {
        AdminCommand::Contract(ContractCmd::Add(ContractSpec {
            name: f.name,
            kind: f.kind,
            accounts: f.accounts,
            start: f.start,
            admin_name: f.admin_name,
            admin_email: f.admin_email,
            address: f.address,
            phone: f.phone,
            department: f.department,
            sales_agent: None,
        }))
    })
    .await
}

#[derive(Deserialize)]
struct ShowQuery {
    lang: Option<String>,
    #[serde(default)]
    name: String,
}

async fn contract_show(c: Caller, Query(q): Query<ShowQuery>) -> Response {
    let (a, set) = match page_login(&c, &LangQuery { lang: q.lang }) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cmd = AdminCommand::Contract(ContractCmd::Show { name: q.name });
    match fetch(&c.console, &a, c.source, cmd).await {
        Ok(Output::Contract(details)) => with_cookie(html(operator_pages::contract(a.lang, &a.login, &details)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct SetForm {
    csrf: Option<String>,
    name: String,
    field: ContractField,
    #[serde(default)]
    value: String,
}

async fn contract_set(c: Caller, Form(f): Form<SetForm>) -> Response {
    // A new name moves the contract's page with it.
    let page = show_url(if f.field == ContractField::Name {
        &f.value
    } else {
        &f.name
    });
    c.act_on(f, &page, |f| {
        AdminCommand::Contract(ContractCmd::Set {
            name: f.name,
            field: f.field,
            value: f.value,
        })
    })
    .await
}

#[derive(Deserialize)]
struct TotpResetForm {
    csrf: Option<String>,
    name: String,
    user: String,
}

/// The administrator's second factor off, after a lost phone.
async fn totp_reset(c: Caller, Form(f): Form<TotpResetForm>) -> Response {
    let page = show_url(&f.name);
    c.act_on(f, &page, |f| {
        AdminCommand::Account(AccountCmd::TotpReset { user: f.user })
    })
    .await
}

#[derive(Deserialize)]
struct AddAccountsForm {
    csrf: Option<String>,
    name: String,
    accounts: u32,
    #[serde(default, deserialize_with = "optional")]
    start: Option<NaiveDate>,
}

async fn contract_add_accounts(c: Caller, Form(f): Form<AddAccountsForm>) -> Response {
    let page = show_url(&f.name);
    c.act_on(f, &page, |f| {
        AdminCommand::Contract(ContractCmd::AddAccounts {
            name: f.name,
            accounts: f.accounts,
            start: f.start,
        })
    })
    .await
}

#[derive(Deserialize)]
struct ReasonForm {
    csrf: Option<String>,
    name: String,
    reason: String,
}

async fn contract_suspend(c: Caller, Form(f): Form<ReasonForm>) -> Response {
    let page = show_url(&f.name);
    c.act_on(f, &page, |f| {
        AdminCommand::Contract(ContractCmd::Suspend {
            name: f.name,
            reason: f.reason,
        })
    })
    .await
}

#[derive(Deserialize)]
struct NameForm {
    csrf: Option<String>,
    name: String,
}

async fn contract_resume(c: Caller, Form(f): Form<NameForm>) -> Response {
    let page = show_url(&f.name);
    c.act_on(f, &page, |f| {
        AdminCommand::Contract(ContractCmd::Resume { name: f.name })
    })
    .await
}

#[derive(Deserialize)]
struct TerminateForm {
    csrf: Option<String>,
    name: String,
    reason: String,
    #[serde(default, deserialize_with = "checkbox")]
    notice_undeliverable: bool,
}

async fn contract_terminate(c: Caller, Form(f): Form<TerminateForm>) -> Response {
    let page = show_url(&f.name);
    c.act_on(f, &page, |f| {
        AdminCommand::Contract(ContractCmd::Terminate {
            name: f.name,
            reason: f.reason,
            notice_undeliverable: f.notice_undeliverable,
        })
    })
    .await
}

#[derive(Deserialize)]
struct CancelForm {
    csrf: Option<String>,
    name: String,
    #[serde(default, deserialize_with = "optional")]
    received: Option<NaiveDate>,
    #[serde(default, deserialize_with = "optional")]
    end: Option<NaiveDate>,
}

async fn contract_cancel(c: Caller, Form(f): Form<CancelForm>) -> Response {
    let page = show_url(&f.name);
    c.act_on(f, &page, |f| {
        AdminCommand::Contract(ContractCmd::Cancel {
            name: f.name,
            received: f.received,
            end: f.end,
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Invoices and compensation
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct InvoiceQuery {
    lang: Option<String>,
    #[serde(default)]
    contract: String,
    #[serde(default, deserialize_with = "optional")]
    at: Option<NaiveDate>,
}

/// A contract's invoices up to a day and its outage compensation, with the statement
/// its administrator would get; without a contract, only the choice of one.
async fn invoices(c: Caller, Query(q): Query<InvoiceQuery>) -> Response {
    let (a, set) = match page_login(&c, &LangQuery { lang: q.lang.clone() }) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let run = |cmd| fetch(&c.console, &a, c.source, cmd);
    let contracts = match run(AdminCommand::Contract(ContractCmd::List)).await {
        Ok(Output::Contracts(rows)) => rows,
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    let chosen = q.contract.trim().to_string();
    let report = if chosen.is_empty() {
        None
    } else {
        let invoice = AdminCommand::Invoice {
            contract: chosen.clone(),
            at: q.at,
            csv: false,
            print: None,
        };
        let compensation_cmd = |statement| AdminCommand::Compensation {
            contract: chosen.clone(),
            statement,
            send: false,
        };
        let (invoices, compensation, statement) = match (
            run(invoice).await,
            run(compensation_cmd(false)).await,
            run(compensation_cmd(true)).await,
        ) {
            (Ok(Output::Invoices(i)), Ok(Output::Compensation(comp)), Ok(Output::Document(d))) => (i, comp, d),
            (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
            _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
        Some(operator_pages::Billing {
            invoices,
            compensation,
            statement: statement.content,
        })
    };
    let page = operator_pages::invoices(a.lang, &a.login, &contracts, &chosen, q.at, report.as_ref());
    with_cookie(html(page), set)
}

#[derive(Deserialize)]
struct StatementForm {
    csrf: Option<String>,
    contract: String,
}

/// Queues the compensation statement to the contract's administrator (art. 35).
async fn send_statement(c: Caller, Form(f): Form<StatementForm>) -> Response {
    let page = format!(
        "/console/invoices?contract={}",
        percent_encoding::utf8_percent_encode(&f.contract, percent_encoding::NON_ALPHANUMERIC)
    );
    c.act_on(f, &page, |f| AdminCommand::Compensation {
        contract: f.contract,
        statement: false,
        send: true,
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Outages and the tariff
// ---------------------------------------------------------------------------------------

async fn outages(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let (a, set) = match page_login(&c, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match fetch(&c.console, &a, c.source, AdminCommand::Outage(OutageCmd::List)).await {
        Ok(Output::Outages(rows)) => with_cookie(html(operator_pages::outages(a.lang, &a.login, &rows)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct OutageForm {
    csrf: Option<String>,
    #[serde(deserialize_with = "local_time")]
    start: NaiveDateTime,
    #[serde(deserialize_with = "local_time")]
    end: NaiveDateTime,
    #[serde(default)]
    note: String,
}

/// An outage the operator types in (`outage add`: local times, a note).
async fn outage_add(c: Caller, Form(f): Form<OutageForm>) -> Response {
    c.act_on(f, "/console/outages", |f| {
        AdminCommand::Outage(OutageCmd::Add {
            start: f.start,
            end: f.end,
            note: f.note,
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Planned maintenance (art. 34-2)
// ---------------------------------------------------------------------------------------

async fn maintenance(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let (a, set) = match page_login(&c, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match fetch(
        &c.console,
        &a,
        c.source,
        AdminCommand::Maintenance(MaintenanceCmd::List),
    )
    .await
    {
        Ok(Output::Maintenance(rows)) => with_cookie(html(operator_pages::maintenance(a.lang, &a.login, &rows)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct MaintenanceForm {
    csrf: Option<String>,
    #[serde(deserialize_with = "local_time")]
    start: NaiveDateTime,
    #[serde(deserialize_with = "local_time")]
    end: NaiveDateTime,
    reason: String,
    #[serde(default, deserialize_with = "checkbox")]
    emergency: bool,
    notice_days: u32,
}

/// A window announced to every contract's administrator (`maintenance add`).
async fn maintenance_add(c: Caller, Form(f): Form<MaintenanceForm>) -> Response {
    c.act_on(f, "/console/maintenance", |f| {
        AdminCommand::Maintenance(MaintenanceCmd::Add {
            start: f.start,
            end: f.end,
            reason: f.reason,
            emergency: f.emergency,
            notice_days: f.notice_days,
        })
    })
    .await
}

#[derive(Deserialize)]
struct MaintenanceCancelForm {
    csrf: Option<String>,
    id: i64,
}

async fn maintenance_cancel(c: Caller, Form(f): Form<MaintenanceCancelForm>) -> Response {
    c.act_on(f, "/console/maintenance", |f| {
        AdminCommand::Maintenance(MaintenanceCmd::Cancel { id: f.id })
    })
    .await
}

async fn tariff(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let (a, set) = match page_login(&c, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match fetch(&c.console, &a, c.source, AdminCommand::Tariff(TariffCmd::Show)).await {
        Ok(Output::Tariff(t)) => with_cookie(html(operator_pages::tariff(a.lang, &a.login, &t)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequest;
    use serde::de::DeserializeOwned;

    use super::*;

    /// A form body as axum reads it for a handler; a refusal as its text.
    async fn parse<T: DeserializeOwned + Send>(body: &'static str) -> Result<T, String> {
        let req = axum::http::Request::post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .map_err(|e| e.to_string())?;
        Form::<T>::from_request(req, &())
            .await
            .map(|Form(f)| f)
            .map_err(|e| e.body_text())
    }

    #[tokio::test]
    async fn form_fields_as_browsers_send_them() {
        // `datetime-local` leaves out the seconds unless the page asks for them.
        let f: OutageForm = parse("csrf=x&start=2027-03-01T09%3A30&end=2027-03-06T12%3A00%3A15")
            .await
            .unwrap();
        assert_eq!(f.start.to_string(), "2027-03-01 09:30:00");
        assert_eq!(f.end.to_string(), "2027-03-06 12:00:15");
        assert_eq!(f.note, "");
        let bad = parse::<OutageForm>("start=tomorrow&end=2027-03-06T12%3A00").await;
        assert!(matches!(bad, Err(e) if e.contains("like 2027-03-01T09:30")));
        // An empty date is none; a wrong one is refused, never taken as none.
        let f: CancelForm = parse("name=acme&received=&end=2027-12-31").await.unwrap();
        assert_eq!(f.received, None);
        assert_eq!(f.end, NaiveDate::from_ymd_opt(2027, 12, 31));
        assert!(parse::<CancelForm>("name=acme&received=yesterday").await.is_err());
        // A checkbox is on when sent at all.
        let on: TerminateForm = parse("name=a&reason=r&notice_undeliverable=on").await.unwrap();
        let off: TerminateForm = parse("name=a&reason=r").await.unwrap();
        assert!(on.notice_undeliverable && !off.notice_undeliverable);
        assert_eq!(show_url("a b&c"), "/console/contracts/show?name=a%20b%26c");
    }
}
