//! The optional second factor of account administrators' console logins (TOTP, issue
//! 14): the login's second step (the code after the password) and the administrator's
//! TOTP page (set up with a QR code, turn off). Turning it on and off are
//! `AdminCommand`s like every other action, audited "via console"; the secret being set
//! up lives in the login until a code confirms it.

use axum::extract::{Form, Query};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::session::{Pages, Role};
use super::{
    act, admin_role, authed, authed_form, cookie, fetch, html, language, pages, start_session, with_cookie, Authed,
    Caller, Console, CsrfForm, CsrfOnly, LangQuery,
};
use crate::admin::api::{AccountCmd, TotpSecret};
use crate::admin::{AdminCommand, Output};
use crate::proto::control::RefuseReason;
use crate::store::{AccountRecord, ContractRecord};
use crate::totp;

/// The cookie of a login waiting for its one-time code (apart from the login's: it opens
/// no page).
const CODE_COOKIE: &str = "mcvpn_console_code";
/// Pixels per QR module: about 250 px for a setup link, which a phone reads from a screen.
const QR_SCALE: usize = 6;

pub fn routes() -> Router {
    Router::new()
        .route("/console/login/code", get(code_page).post(code_submit))
        .route("/console/totp", get(totp_page))
        .route("/console/totp/setup", post(setup))
        .route("/console/totp/qr.png", get(qr_png))
        .route("/console/totp/confirm", post(confirm))
        .route("/console/totp/off", post(turn_off))
}

/// After a right password for an account with a second factor: no session, a waiting
/// login with its own cookie (5 minutes), and the code page.
pub(super) fn wait_for_code(console: &Console, account: AccountRecord, contract: ContractRecord) -> Response {
    let id = console.sessions.start_pending(account, contract);
    let max_age = console.limits.sessions.code_wait.as_secs();
    let set = format!("{CODE_COOKIE}={id}; Path=/console/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age}");
    with_cookie(Redirect::to("/console/login/code").into_response(), Some(set))
}

fn clear_code_cookie(res: Response) -> Response {
    with_cookie(
        res,
        Some(format!(
            "{CODE_COOKIE}=; Path=/console/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
        )),
    )
}

async fn code_page(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let (lang, set) = language(&c.headers, &q);
    let id = cookie(&c.headers, CODE_COOKIE).unwrap_or_default();
    if c.console.sessions.pending(id).is_none() {
        return Redirect::to("/console/login").into_response();
    }
    with_cookie(html(pages::code_form(lang, None)), set)
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn code_submit(c: Caller, Form(f): Form<CodeForm>) -> Response {
    let lang = language(&c.headers, &LangQuery::default()).0;
    let id = cookie(&c.headers, CODE_COOKIE).unwrap_or_default().to_string();
    let start_again = |message: &str| {
        let page = pages::login_form(lang, super::LoginAs::Admin, Some(message));
        clear_code_cookie((StatusCode::UNAUTHORIZED, html(page)).into_response())
    };
    let Some(p) = c.console.sessions.code_attempt(&id) else {
        return start_again(lang.t(
            "ワンタイムコードの入力期限（5分）が切れたか、入力が5回を超えました。もう一度パスワードからログインしてください。",
            "The time for the one-time code (5 minutes) is over, or it was tried 5 times. Log in again with your password.",
        ));
    };
    let ctx = &c.console.ctx;
    match super::super::auth::verify_admin_code(&ctx.store, &ctx.login, &p.account, &p.contract, &f.code, c.source)
        .await
    {
        Ok(()) => {
            c.console.sessions.end_pending(&id);
            clear_code_cookie(start_session(&c.console, p.account.username, admin_role(p.contract)))
        }
        Err(r) => {
            let said = match r.reason {
                RefuseReason::WrongCredentials => lang
                    .t(
                        "ワンタイムコードが違うか、すでに使われたコードです。アプリに表示されている現在のコードを入力してください。",
                        "The one-time code is wrong or was already used. Type the code the app shows now.",
                    )
                    .to_string(),
                _ => format!("{} ({})", r.message, r.reason.hint()),
            };
            if c.console.sessions.pending(&id).is_none() {
                // That was the last try.
                return start_again(&said);
            }
            (StatusCode::UNAUTHORIZED, html(pages::code_form(lang, Some(&said)))).into_response()
        }
    }
}

/// An account administrator's login for the TOTP page (an operator's goes to its own
/// pages: operator logins have no second factor).
fn admin_login(c: &Caller, q: &LangQuery) -> Result<(Authed, Option<String>), Response> {
    let (lang, set) = language(&c.headers, q);
    let a = authed(&c.console, &c.headers, lang)?;
    if a.login.role.pages() != Pages::Contract {
        return Err(Redirect::to(a.login.role.pages().home()).into_response());
    }
    Ok((a, set))
}

/// `NAME@CONTRACT`, as the authenticator app lists the entry.
fn app_label(a: &Authed) -> String {
    match &a.login.role {
        Role::AccountAdmin { contract, .. } => format!("{}@{contract}", a.login.account),
        Role::Operator { .. } => a.login.account.clone(),
    }
}

async fn totp_page(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let (a, set) = match admin_login(&c, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let on = match fetch(
        &c.console,
        &a,
        c.source,
        AdminCommand::Account(AccountCmd::List { contract: None }),
    )
    .await
    {
        Ok(Output::Accounts(rows)) => rows.iter().any(|r| r.account == a.login.account && r.totp),
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    let setup = a.login.totp_setup.as_ref().map(|s| s.0.as_str());
    with_cookie(html(pages::totp(a.lang, &a.login, on, setup)), set)
}

#[derive(Deserialize)]
struct TotpCodeForm {
    csrf: Option<String>,
    code: String,
}

impl CsrfForm for TotpCodeForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// A new secret for the login to show (each press makes another: a setup shown to
/// someone else can be replaced before it is confirmed).
async fn setup(c: Caller, Form(f): Form<CsrfOnly>) -> Response {
    let a = match authed_form(&c.console, &c.headers, f.csrf.as_deref()) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if a.login.role.pages() != Pages::Contract {
        return Redirect::to(a.login.role.pages().home()).into_response();
    }
    c.console
        .sessions
        .set_totp_setup(&a.id, Some(TotpSecret(totp::new_secret())));
    Redirect::to("/console/totp").into_response()
}

/// The setup's QR code, for the login that is setting up (404 when none is).
async fn qr_png(c: Caller) -> Response {
    let lang = language(&c.headers, &LangQuery::default()).0;
    let a = match authed(&c.console, &c.headers, lang) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(secret) = &a.login.totp_setup else {
        return super::not_found(c.headers).await;
    };
    let png = totp::otpauth_url(&secret.0, &app_label(&a)).and_then(|url| totp::qr_png(&url, QR_SCALE));
    match png {
        Ok(png) => {
            let mut res = png.into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "console: the TOTP setup QR code could not be drawn");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The code that proves the app has the secret: stores it (`account totp-on`).
async fn confirm(c: Caller, Form(f): Form<TotpCodeForm>) -> Response {
    let a = match authed_form(&c.console, &c.headers, f.csrf()) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(secret) = a.login.totp_setup.clone() else {
        // Logged in again, or confirmed already: nothing to confirm.
        return Redirect::to("/console/totp").into_response();
    };
    let id = a.id.clone();
    let cmd = AdminCommand::Account(AccountCmd::TotpOn { secret, code: f.code });
    let res = act(&c.console, a, c.source, cmd, "/console/totp").await;
    if res.status().is_redirection() {
        c.console.sessions.set_totp_setup(&id, None);
    }
    res
}

async fn turn_off(c: Caller, Form(f): Form<TotpCodeForm>) -> Response {
    c.act_on(f, "/console/totp", |f| {
        AdminCommand::Account(AccountCmd::TotpOff { code: f.code })
    })
    .await
}
