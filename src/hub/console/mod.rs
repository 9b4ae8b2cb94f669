//! The web console (issue 14), under `/console/` on the hub's HTTPS port: account
//! administrators' pages ([`pages`]) and operators' ([`operator`]), server-rendered,
//! logins kept in memory ([`session`]), every action an [`AdminCommand`] run through the
//! same typed admin API, scope and live effects as `mcvpn admin --hub --as`/`--operator`
//! (src/hub/admin.rs), audited with the source address marked "via console".
//!
//! The HTTPS port reads a connection's first request head itself (src/hub/https); a
//! head for `/console` hands the connection here, where hyper serves it (keep-alive
//! allowed) within [`ConsoleLimits`]: a cap on console connections at once, on a
//! request's head and body, and deadlines on reading a head and on the whole connection.

// A handler's early answer is an axum `Response` (128 bytes); boxing it on the way out
// of the login checks would buy nothing on a path that renders a whole page.
#![allow(clippy::result_large_err)]

pub mod operator;
pub mod operator_pages;
pub mod pages;
pub mod second_factor;
pub mod session;
pub mod text;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Form, Query};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::auth::AdminLogin;
use super::context::HubContext;
use crate::admin::api::{
    AccountCmd, AccountName, ContractCmd, DeviceCmd, NewAccount, NewPassword, NoticeCmd, OnOff, SessionCmd, TargetCmd,
};
use crate::admin::{self, AdminCommand, AdminError, AdminResult, ExecCtx, LogFilter, LogResult, Output};
use crate::store::OperatorRole;
use session::{csrf_matches, Login, Pages, Role, SessionLimits, Sessions};
use text::Lang;

pub use session::SessionLimits as ConsoleSessionLimits;

/// The cookie holding the login id.
const COOKIE: &str = "mcvpn_console";
/// The cookie remembering the language switch.
const LANG_COOKIE: &str = "mcvpn_lang";
/// Rows the access-history CSV holds at most.
pub const CSV_ROWS: usize = 100_000;

/// What one console connection may cost, and how long logins last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleLimits {
    /// Console connections open at once (all sources); more are closed at once.
    pub connections: usize,
    /// A request head's buffer (hyper's read buffer): 16 KiB, twice what a browser sends.
    pub max_head: usize,
    /// A request body (the forms are a few hundred bytes).
    pub max_body: usize,
    /// To read a request head once one is due.
    pub head_deadline: Duration,
    /// A connection's whole life (a browser opens a new one after).
    pub connection_lifetime: Duration,
    pub sessions: SessionLimits,
}

impl Default for ConsoleLimits {
    fn default() -> Self {
        ConsoleLimits {
            connections: 256,
            max_head: 16 * 1024,
            max_body: 16 * 1024,
            head_deadline: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(120),
            sessions: SessionLimits::default(),
        }
    }
}

/// The console, shared by its connections.
pub struct Console {
    ctx: Arc<HubContext>,
    limits: ConsoleLimits,
    sessions: Sessions,
    connections: Arc<Semaphore>,
    router: Router,
}

/// The connection's peer, for the login limiter and the audit log.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

type Shared = Arc<Console>;

impl Console {
    pub fn new(ctx: Arc<HubContext>, limits: ConsoleLimits) -> Arc<Console> {
        Arc::new_cyclic(|weak: &std::sync::Weak<Console>| {
            let weak = weak.clone();
            let router = Router::new()
                .route("/console", get(|| async { Redirect::to("/console/") }))
                .route("/console/", get(dashboard))
                .route("/console/style.css", get(style))
                .route("/console/login", get(login_page).post(login))
                .route("/console/logout", post(logout))
                .route("/console/accounts", get(accounts))
                .route("/console/accounts/add", post(account_add))
                .route("/console/accounts/lock", post(account_lock))
                .route("/console/accounts/unlock", post(account_unlock))
                .route("/console/accounts/password", post(account_password))
                .route("/console/accounts/devices", get(devices))
                .route("/console/accounts/devices/remove", post(device_remove))
                .route("/console/accounts/binding", post(account_binding))
                .route("/console/targets", get(targets))
                .route("/console/targets/grant", post(target_grant))
                .route("/console/targets/revoke", post(target_revoke))
                .route("/console/sessions", get(sessions))
                .route("/console/sessions/end", post(session_end))
                .route("/console/history", get(history))
                .route("/console/history.csv", get(history_csv))
                .route("/console/notices", get(notices))
                .merge(operator::routes())
                .merge(second_factor::routes())
                .fallback(not_found)
                .layer(DefaultBodyLimit::max(limits.max_body))
                .layer(axum::middleware::from_fn(security_headers))
                .layer(axum::middleware::from_fn(move |req, next| {
                    let weak = weak.clone();
                    async move {
                        match weak.upgrade() {
                            Some(console) => with_state(console, req, next).await,
                            None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        }
                    }
                }));
            Console {
                ctx,
                limits,
                sessions: Sessions::new(limits.sessions),
                connections: Arc::new(Semaphore::new(limits.connections)),
                router,
            }
        })
    }

    /// Serves one connection whose first request head (`read`, all of it so far) was for
    /// the console. Over the connection cap it is closed at once.
    pub async fn serve<S>(self: &Arc<Self>, stream: S, read: Vec<u8>, source: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Ok(_permit) = self.connections.clone().try_acquire_owned() else {
            tracing::debug!(%source, "console connection refused: too many open");
            return;
        };
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(Peer(source));
            router.clone().oneshot(req.map(Body::new))
        });
        let io = hyper_util::rt::TokioIo::new(Replay {
            read,
            at: 0,
            inner: stream,
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.limits.head_deadline)
            .max_buf_size(self.limits.max_head.max(8192))
            .keep_alive(true);
        let conn = builder.serve_connection(io, service);
        // Err(Elapsed): the connection's lifetime is over; the browser opens another.
        if let Ok(Err(e)) = tokio::time::timeout(self.limits.connection_lifetime, conn).await {
            tracing::debug!(%source, error = %e, "console connection ended");
        }
    }
}

/// The state goes in as an extension (the router is built inside the console it needs).
async fn with_state(console: Shared, mut req: Request<Body>, next: axum::middleware::Next) -> Response {
    req.extensions_mut().insert(console);
    next.run(req).await
}

/// Headers every console answer carries: no caching of pages with data, nothing loaded
/// from elsewhere, no framing.
async fn security_headers(req: Request<Body>, next: axum::middleware::Next) -> Response {
    let is_style = req.uri().path() == "/console/style.css";
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !is_style {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Bytes already read from the stream (the first request head), then the stream.
struct Replay<S> {
    read: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.at < self.read.len() {
            let n = buf.remaining().min(self.read.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.read[at..at + n]);
            self.at += n;
            if self.at == self.read.len() {
                self.read = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------
// Request context: language, login, CSRF
// ---------------------------------------------------------------------------------------

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[derive(Deserialize, Default)]
struct LangQuery {
    lang: Option<String>,
}

/// The page language, and the cookie that keeps a switch (`?lang=en`).
fn language(headers: &HeaderMap, query: &LangQuery) -> (Lang, Option<String>) {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    match query.lang.as_deref() {
        Some(l @ ("ja" | "en")) => (
            Lang::choose(Some(l), accept),
            Some(format!(
                "{LANG_COOKIE}={l}; Path=/console/; Secure; SameSite=Strict; Max-Age=31536000"
            )),
        ),
        _ => (Lang::choose(cookie(headers, LANG_COOKIE), accept), None),
    }
}

/// A logged-in request: who, in which language.
struct Authed {
    id: String,
    login: Login,
    lang: Lang,
}

/// The login behind the request's cookie, or the answer to give instead (to the login
/// page for a page; refused for a form).
fn authed(console: &Console, headers: &HeaderMap, lang: Lang) -> Result<Authed, Response> {
    let id = cookie(headers, COOKIE).unwrap_or_default().to_string();
    match console.sessions.touch(&id) {
        Some(login) => Ok(Authed { id, login, lang }),
        None => Err(Redirect::to("/console/login").into_response()),
    }
}

/// As [`authed`], for a form: its CSRF token must be the login's.
fn authed_form(console: &Console, headers: &HeaderMap, csrf: Option<&str>) -> Result<Authed, Response> {
    let lang = language(headers, &LangQuery::default()).0;
    let a = authed(console, headers, lang).map_err(|_| {
        let page = pages::problem(
            lang,
            None,
            lang.t("ログインしてください", "Please log in"),
            lang.t(
                "ログインの有効期限が切れたか、ログアウトしました。もう一度ログインしてください。",
                "Your login has expired or you logged out. Log in again.",
            ),
        );
        (StatusCode::UNAUTHORIZED, html(page)).into_response()
    })?;
    if !csrf_matches(&a.login, csrf) {
        let page = pages::problem(
            lang,
            Some(&a.login),
            lang.t("拒否しました", "Refused"),
            lang.t(
                "フォームの確認用トークンが一致しません。ページを開き直してからもう一度操作してください。",
                "The form's token does not match. Reload the page and try again.",
            ),
        );
        return Err((StatusCode::FORBIDDEN, html(page)).into_response());
    }
    Ok(a)
}

fn html(m: maud::Markup) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], m.into_string()).into_response()
}

fn with_cookie(mut res: Response, set: Option<String>) -> Response {
    if let Some(c) = set.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

// ---------------------------------------------------------------------------------------
// Running admin commands
// ---------------------------------------------------------------------------------------

/// Runs one command for the logged-in person exactly as the control channel does
/// (src/hub/admin.rs): their role's scope, the hash gate for a new password, the store's
/// blocking pool, then the live effects. The audit log's source says "via console".
async fn run(console: &Console, a: &Authed, source: SocketAddr, cmd: AdminCommand) -> AdminResult {
    let ctx = &console.ctx;
    let exec = ExecCtx {
        scope: a.login.role.scope(),
        actor: a.login.role.actor(&a.login.account),
        source: Some(format!("{source} via console")),
        today: crate::store::today(),
        overlay: ctx.overlay,
    };
    let (changes, ended) = (cmd.changes_state(), cmd.ended_session());
    let prepared = ctx
        .login
        .gate
        .run(move || admin::prepare(cmd))
        .await
        .map_err(|_| AdminError::Refused("the hub is busy checking logins; try again in a moment".into()))?;
    let result = ctx
        .store
        .run(move |store| admin::execute(store, &exec, &prepared))
        .await
        .map_err(|e| AdminError::Internal(e.to_string()))?;
    if result.is_ok() && changes {
        super::admin::apply_live(ctx, ended).await;
    }
    result
}

/// The answer for a refused command: 404 for a missing (or another contract's) name,
/// 400 for a rule the request broke.
fn refused(a: &Authed, e: &AdminError) -> Response {
    let lang = a.lang;
    let (status, title) = match e {
        AdminError::NotFound(_) => (StatusCode::NOT_FOUND, lang.t("見つかりません", "Not found")),
        AdminError::Forbidden(_) => (StatusCode::FORBIDDEN, lang.t("権限がありません", "Not allowed")),
        AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, lang.t("エラー", "Error")),
        AdminError::Refused(_) | AdminError::PasswordPolicy(_) => {
            (StatusCode::BAD_REQUEST, lang.t("できませんでした", "Refused"))
        }
    };
    (
        status,
        html(pages::problem(lang, Some(&a.login), title, &e.to_string())),
    )
        .into_response()
}

/// A form's command: done → back to `page` with what it did; refused → the reason.
async fn act(console: &Console, a: Authed, source: SocketAddr, cmd: AdminCommand, page: &str) -> Response {
    let done = text::done_words(a.lang, &cmd);
    match run(console, &a, source, cmd).await {
        Ok(out) => {
            // In the page's language where the console has words for it.
            let said = done
                .or_else(|| text::result_words(a.lang, &out))
                .unwrap_or_else(|| match out {
                    Output::Message(m) => m,
                    Output::AccountAdded(x) => format!("account {} added", x.account),
                    other => admin::render::format_text(&admin::render::text(&other)),
                });
            console.sessions.set_flash(&a.id, said);
            Redirect::to(page).into_response()
        }
        Err(e) => refused(&a, &e),
    }
}

/// A page's data: the command's output, or the refusal page.
async fn fetch(console: &Console, a: &Authed, source: SocketAddr, cmd: AdminCommand) -> Result<Output, Response> {
    run(console, a, source, cmd).await.map_err(|e| refused(a, &e))
}

/// What every handler needs of its request: the console, the peer's address and the
/// headers (cookies, language).
struct Caller {
    console: Shared,
    source: SocketAddr,
    headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Response> {
        let console = parts.extensions.get::<Shared>().cloned();
        let peer = parts.extensions.get::<Peer>().copied();
        match (console, peer) {
            (Some(console), Some(Peer(source))) => Ok(Caller {
                console,
                source,
                headers: parts.headers.clone(),
            }),
            // Both are inserted before any handler runs (`Console::serve`, `with_state`).
            _ => Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        }
    }
}

/// A form that carries the login's CSRF token.
trait CsrfForm {
    fn csrf(&self) -> Option<&str>;
}

/// Forms whose `csrf` field carries the token.
macro_rules! csrf_form {
    ($($form:ident),*) => {$(
        impl CsrfForm for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        }
    )*};
}
pub(crate) use csrf_form;

csrf_form!(UserForm, DeviceForm, BindingForm, GrantForm, SessionForm);

impl Caller {
    /// A form's action: the login and the form's token checked, then `command(form)` run
    /// and the person sent back to `page` with what it did (or shown the refusal).
    async fn act_on<F: CsrfForm>(self, form: F, page: &str, command: impl FnOnce(F) -> AdminCommand) -> Response {
        let a = match authed_form(&self.console, &self.headers, form.csrf()) {
            Ok(a) => a,
            Err(r) => return r,
        };
        act(&self.console, a, self.source, command(form), page).await
    }
}

fn contract_name(a: &Authed) -> String {
    match &a.login.role {
        Role::AccountAdmin { contract, .. } => contract.clone(),
        // Never reached: `page_login!` sends an operator from a contract's pages to its
        // own. An operator has no contract of its own, and the empty name names none.
        Role::Operator { .. } => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        pages::STYLE,
    )
        .into_response()
}

async fn not_found(headers: HeaderMap) -> Response {
    let lang = language(&headers, &LangQuery::default()).0;
    let page = pages::problem(lang, None, lang.t("見つかりません", "Not found"), "404");
    (StatusCode::NOT_FOUND, html(page)).into_response()
}

async fn login_page(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let (lang, set) = language(&headers, &q);
    with_cookie(html(pages::login_form(lang, LoginAs::Admin, None)), set)
}

/// Which kind of login the form asks for: an account administrator unless the person
/// chooses operator.
#[derive(Deserialize, Default, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoginAs {
    #[default]
    Admin,
    Operator,
}

#[derive(Deserialize)]
struct LoginForm {
    account: String,
    password: String,
    #[serde(default)]
    login_as: LoginAs,
}

async fn login(
    Extension(console): Extension<Shared>,
    Extension(Peer(source)): Extension<Peer>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = language(&headers, &LangQuery::default()).0;
    let ctx = &console.ctx;
    // The same checks, limiter, hash gate and same-answer refusals as `mcvpn admin --as`
    // and `--operator`. The role is decided here, once, from which table the name and
    // password matched: an account's password never makes an operator.
    let login_refused = |r: super::reply::Refusal| {
        let page = pages::login_form(lang, f.login_as, Some(&format!("{} ({})", r.message, r.reason.hint())));
        (StatusCode::UNAUTHORIZED, html(page)).into_response()
    };
    let (name, role) = match f.login_as {
        LoginAs::Admin => {
            match super::auth::authenticate_admin_password(&ctx.store, &ctx.login, &f.account, &f.password, source)
                .await
            {
                Ok(AdminLogin::Done(account, contract)) => (account.username, admin_role(contract)),
                // No session yet: the one-time code first.
                Ok(AdminLogin::NeedsCode(account, contract)) => {
                    return second_factor::wait_for_code(&console, account, contract)
                }
                Err(r) => return login_refused(r),
            }
        }
        LoginAs::Operator => {
            match super::auth::authenticate_operator(&ctx.store, &ctx.login, &f.account, &f.password, source).await {
                Ok(o) => match o.role {
                    OperatorRole::Operator => (o.name.clone(), Role::Operator { name: o.name }),
                    // A monitor login is a program's (`mcvpn monitor`), not a person's.
                    OperatorRole::Monitor => {
                        let page = pages::login_form(
                            lang,
                            f.login_as,
                            Some(lang.t(
                                "監視用ログイン（monitor）では管理コンソールを使えません。障害の記録は mcvpn monitor が行います。運用者のログインを使ってください。",
                                "A monitor login cannot use the console: it is for `mcvpn monitor`, which records outages. Use an operator login.",
                            )),
                        );
                        return (StatusCode::FORBIDDEN, html(page)).into_response();
                    }
                },
                Err(r) => return login_refused(r),
            }
        }
    };
    start_session(&console, name, role)
}

fn admin_role(contract: crate::store::ContractRecord) -> Role {
    Role::AccountAdmin {
        contract_id: contract.id,
        contract: contract.name,
    }
}

/// A login starts: its cookie, and off to its start page.
fn start_session(console: &Console, name: String, role: Role) -> Response {
    let home = role.pages().home();
    let id = console.sessions.start(name, role);
    let mut res = Redirect::to(home).into_response();
    let cookie = format!("{COOKIE}={id}; Path=/console/; HttpOnly; Secure; SameSite=Strict");
    res.headers_mut()
        .append(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("hex id"));
    res
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

async fn logout(Extension(console): Extension<Shared>, headers: HeaderMap, Form(f): Form<CsrfOnly>) -> Response {
    let a = match authed_form(&console, &headers, f.csrf.as_deref()) {
        Ok(a) => a,
        Err(r) => return r,
    };
    console.sessions.end(&a.id);
    let mut res = Redirect::to("/console/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("mcvpn_console=; Path=/console/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    );
    res
}

macro_rules! page_login {
    ($console:expr, $headers:expr, $q:expr) => {{
        let (lang, set) = language(&$headers, &$q);
        match authed(&$console, &$headers, lang) {
            // These are a contract's pages: an operator works on its own.
            Ok(a) if a.login.role.pages() != Pages::Contract => {
                return Redirect::to(a.login.role.pages().home()).into_response()
            }
            Ok(a) => (a, set),
            Err(r) => return r,
        }
    }};
}

async fn dashboard(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let (a, set) = page_login!(console, headers, q);
    let name = contract_name(&a);
    let details = match fetch(&console, &a, source, AdminCommand::Contract(ContractCmd::Show { name })).await {
        Ok(Output::Contract(c)) => c,
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    let live = match fetch(
        &console,
        &a,
        source,
        AdminCommand::Session(SessionCmd::List { all: false }),
    )
    .await
    {
        Ok(Output::Sessions(s)) => s.len(),
        Ok(_) => 0,
        Err(r) => return r,
    };
    with_cookie(html(pages::dashboard(a.lang, &a.login, &details, live)), set)
}

async fn accounts(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let (a, set) = page_login!(console, headers, q);
    match fetch(
        &console,
        &a,
        source,
        AdminCommand::Account(AccountCmd::List { contract: None }),
    )
    .await
    {
        Ok(Output::Accounts(rows)) => with_cookie(html(pages::accounts(a.lang, &a.login, &rows)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct UserForm {
    csrf: Option<String>,
    user: String,
    password: Option<String>,
}

async fn account_add(c: Caller, Form(f): Form<UserForm>) -> Response {
    c.act_on(f, "/console/accounts", |f| {
        AdminCommand::Account(AccountCmd::Add(NewAccount {
            name: AccountName {
                contract: None,
                user: f.user,
            },
            password_file: None,
            password: NewPassword(f.password.unwrap_or_default()),
        }))
    })
    .await
}

async fn account_lock(c: Caller, Form(f): Form<UserForm>) -> Response {
    c.act_on(f, "/console/accounts", |f| {
        AdminCommand::Account(AccountCmd::Lock { user: f.user })
    })
    .await
}

async fn account_unlock(c: Caller, Form(f): Form<UserForm>) -> Response {
    c.act_on(f, "/console/accounts", |f| {
        AdminCommand::Account(AccountCmd::Unlock { user: f.user })
    })
    .await
}

async fn account_password(c: Caller, Form(f): Form<UserForm>) -> Response {
    c.act_on(f, "/console/accounts", |f| {
        AdminCommand::Account(AccountCmd::Password {
            user: f.user,
            password_file: None,
            password: NewPassword(f.password.unwrap_or_default()),
        })
    })
    .await
}

/// The devices page of one account (its name as a query value).
fn devices_page(user: &str) -> String {
    let user = percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC);
    format!("/console/accounts/devices?user={user}")
}

#[derive(Deserialize)]
struct DevicesQuery {
    lang: Option<String>,
    user: Option<String>,
}

/// One account's client devices and its device binding. Another contract's account is
/// answered as a missing one by the device listing itself.
async fn devices(c: Caller, Query(q): Query<DevicesQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let lq = LangQuery { lang: q.lang.clone() };
    let (a, set) = page_login!(console, headers, lq);
    let Some(user) = q.user.filter(|u| !u.is_empty()) else {
        return Redirect::to("/console/accounts").into_response();
    };
    let list = DeviceCmd::List {
        account: Some(user.clone()),
    };
    let rows = match fetch(&console, &a, source, AdminCommand::Device(list)).await {
        Ok(Output::Devices(rows)) => rows,
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    let accounts = AdminCommand::Account(AccountCmd::List { contract: None });
    let binding = match fetch(&console, &a, source, accounts).await {
        Ok(Output::Accounts(all)) => all.iter().find(|r| r.account == user).map(|r| r.device_binding),
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    with_cookie(html(pages::devices(a.lang, &a.login, &user, binding, &rows)), set)
}

#[derive(Deserialize)]
struct DeviceForm {
    csrf: Option<String>,
    user: String,
    /// The device's node number (or its name, when only one device has it).
    device: String,
}

async fn device_remove(c: Caller, Form(f): Form<DeviceForm>) -> Response {
    let page = devices_page(&f.user);
    c.act_on(f, &page, |f| {
        AdminCommand::Device(DeviceCmd::Remove {
            user: f.user,
            device: f.device,
        })
    })
    .await
}

#[derive(Deserialize)]
struct BindingForm {
    csrf: Option<String>,
    user: String,
    state: OnOff,
}

async fn account_binding(c: Caller, Form(f): Form<BindingForm>) -> Response {
    let page = devices_page(&f.user);
    c.act_on(f, &page, |f| {
        AdminCommand::Account(AccountCmd::Binding {
            user: f.user,
            state: f.state,
        })
    })
    .await
}

async fn targets(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let (a, set) = page_login!(console, headers, q);
    let targets = match fetch(&console, &a, source, AdminCommand::Target(TargetCmd::List)).await {
        Ok(Output::Targets(rows)) => rows,
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    let grants = match fetch(&console, &a, source, AdminCommand::Target(TargetCmd::Grants)).await {
        Ok(Output::Grants(rows)) => rows,
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    with_cookie(html(pages::targets(a.lang, &a.login, &targets, &grants)), set)
}

#[derive(Deserialize)]
struct GrantForm {
    csrf: Option<String>,
    /// The target's node number (or its name, when only one target has it).
    target: String,
    account: String,
}

async fn target_grant(c: Caller, Form(f): Form<GrantForm>) -> Response {
    c.act_on(f, "/console/targets", |f| {
        AdminCommand::Target(TargetCmd::Grant {
            target: f.target.trim().to_string(),
            account: f.account.trim().to_string(),
        })
    })
    .await
}

async fn target_revoke(c: Caller, Form(f): Form<GrantForm>) -> Response {
    c.act_on(f, "/console/targets", |f| {
        AdminCommand::Target(TargetCmd::Revoke {
            target: f.target,
            account: f.account,
        })
    })
    .await
}

async fn sessions(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let (a, set) = page_login!(console, headers, q);
    match fetch(
        &console,
        &a,
        source,
        AdminCommand::Session(SessionCmd::List { all: false }),
    )
    .await
    {
        Ok(Output::Sessions(rows)) => with_cookie(html(pages::sessions(a.lang, &a.login, &rows)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct SessionForm {
    csrf: Option<String>,
    session: i64,
}

async fn session_end(c: Caller, Form(f): Form<SessionForm>) -> Response {
    c.act_on(f, "/console/sessions", |f| {
        AdminCommand::Session(SessionCmd::End { session: f.session })
    })
    .await
}

/// The history filters as the form sends them (empty fields are no filter).
#[derive(Deserialize, Default)]
struct HistoryQuery {
    lang: Option<String>,
    account: Option<String>,
    result: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl HistoryQuery {
    fn filter(&self) -> LogFilter {
        let some = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let date = |s: &Option<String>| some(s).and_then(|d| d.parse().ok());
        LogFilter {
            account: some(&self.account),
            result: match self.result.as_deref() {
                Some("ok") => Some(LogResult::Ok),
                Some("refused") => Some(LogResult::Refused),
                _ => None,
            },
            since: date(&self.since),
            until: date(&self.until),
        }
    }

    /// The same filters as a query string, for the CSV link.
    fn query_string(&self) -> String {
        let f = self.filter();
        let mut parts = Vec::new();
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        if let Some(a) = &f.account {
            parts.push(format!("account={}", enc(a)));
        }
        if let Some(r) = f.result {
            parts.push(format!("result={}", if r == LogResult::Ok { "ok" } else { "refused" }));
        }
        if let Some(d) = f.since {
            parts.push(format!("since={d}"));
        }
        if let Some(d) = f.until {
            parts.push(format!("until={d}"));
        }
        parts.join("&")
    }
}

async fn history(c: Caller, Query(q): Query<HistoryQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let lq = LangQuery { lang: q.lang.clone() };
    let (a, set) = page_login!(console, headers, lq);
    let filter = q.filter();
    let cmd = AdminCommand::Log {
        limit: pages::HISTORY_ROWS,
        filter: filter.clone(),
    };
    match fetch(&console, &a, source, cmd).await {
        Ok(Output::Log(rows)) => with_cookie(
            html(pages::history(a.lang, &a.login, &filter, &rows, &q.query_string())),
            set,
        ),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}

/// The access history as CSV for Japanese Excel: UTF-8 with a byte-order mark (without
/// it Excel reads Shift_JIS), CRLF line ends, a header row in the page's language.
async fn history_csv(c: Caller, Query(q): Query<HistoryQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let lq = LangQuery { lang: q.lang.clone() };
    let (a, _) = page_login!(console, headers, lq);
    let cmd = AdminCommand::Log {
        limit: CSV_ROWS,
        filter: q.filter(),
    };
    let rows = match fetch(&console, &a, source, cmd).await {
        Ok(Output::Log(rows)) => rows,
        Ok(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => return r,
    };
    match history_csv_bytes(a.lang, &rows) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"access-history.csv\"",
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub fn history_csv_bytes(lang: Lang, rows: &[crate::admin::api::AuditRow]) -> Result<Vec<u8>, csv::Error> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        w.write_record([
            lang.t("日時", "time"),
            lang.t("操作者", "actor"),
            lang.t("種別", "action"),
            lang.t("アカウント", "account"),
            lang.t("接続元", "source"),
            lang.t("詳細", "detail"),
        ])?;
        let tz = crate::contract::operator_tz();
        for r in rows {
            w.write_record([
                crate::contract::format_local(tz, r.at).as_str(),
                &r.actor,
                &r.action,
                r.account.as_deref().unwrap_or(""),
                r.source.as_deref().unwrap_or(""),
                &r.detail,
            ])?;
        }
        w.flush()?;
    }
    Ok(out)
}

async fn notices(c: Caller, Query(q): Query<LangQuery>) -> Response {
    let Caller {
        console,
        source,
        headers,
    } = c;
    let (a, set) = page_login!(console, headers, q);
    match fetch(
        &console,
        &a,
        source,
        AdminCommand::Notice(NoticeCmd::List { all: true }),
    )
    .await
    {
        Ok(Output::Notices(rows)) => with_cookie(html(pages::notices(a.lang, &a.login, &rows)), set),
        Ok(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Err(r) => r,
    }
}
