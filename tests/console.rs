//! Issue 14, the account administrators' web console, end to end: a real hub
//! (`hub::run`, in this process) with its HTTPS port on loopback, real TLS 1.3 (the
//! certificate the hub made itself), a real HTTP client (reqwest on rustls), a real
//! SQLite store, and a real client session over Noise IK for the Disconnect button.
//!
//! Every handler's authorisation: not logged in → the login page; a form without the
//! login's CSRF token → refused; logged out or expired → refused; another contract's
//! account, session or log → the same 404 as a name that does not exist. Then the
//! performance goal (1,000 accounts, 100,000 audit rows) and the CLI/console parity.
//!
//!     cargo test --release --test console -- --nocapture

mod common;
use common::free_addr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use tokio::net::TcpStream;

use mcvpn::admin::api::TargetCmd;
use mcvpn::admin::{AdminCommand, Output};
use mcvpn::channel::{self, ChannelReader, ChannelWriter};
use mcvpn::hub::console::{ConsoleLimits, ConsoleSessionLimits};
use mcvpn::hub::https::HttpsSettings;
use mcvpn::hub::{HubIdentity, HubSettings};
use mcvpn::keys::KeyPair;
use mcvpn::proto::control::{Credential, Event, Hello, Key32, Request, Role, PROTOCOL_VERSION};
use mcvpn::store::prelude::*;
use mcvpn::store::{NewContract, SqliteStore};

const ADMIN_PW: &str = "administrator's passphrase";
const USER_PW: &str = "a user's long passphrase";

struct Hub {
    https: SocketAddr,
    listen: SocketAddr,
    key: Key32,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

/// Two contracts: acme (administrator alice, users bob, carol) and globex
/// (administrator gina, user gus). `seed` adds more before the hub starts.
async fn start_hub(limits: ConsoleLimits, seed: impl FnOnce(&mut SqliteStore)) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    {
        let mut s = SqliteStore::open(&db).unwrap();
        let admin = mcvpn::password::hash(ADMIN_PW);
        let user = mcvpn::password::hash(USER_PW);
        for (contract, admin_name, users) in [("acme", "alice", &["bob", "carol"][..]), ("globex", "gina", &["gus"])] {
            let c = s.contract_add(&NewContract::simple(contract, 1100)).unwrap();
            let a = s.account_add(contract, admin_name, &admin).unwrap();
            s.contract_set_admin_account(c.id, Some(a.id)).unwrap();
            for u in users {
                s.account_add(contract, u, &user).unwrap();
            }
        }
        seed(&mut s);
    }
    let listen = free_addr();
    let https = free_addr();
    let key_path = dir.path().join("hub.key");
    let key = KeyPair::load_or_create(&key_path).unwrap().public_key32();
    let settings = HubSettings {
        identity: HubIdentity {
            listen,
            key: key_path,
            extra_keys: vec![],
            public_addr: None,
            https_port: Some(https.port()),
        },
        name: "test-hub".into(),
        mesh_addr: None,
        db: db.clone().into(),
        db_pool: 1,
        overlay: Default::default(),
        status_socket: dir.path().join("hub.sock"),
        socket_buffer: 1 << 20,
        min_accounts: 1,
        smtp: None,
        smtp_from: None,
        udp_tuning: Default::default(),
        preauth: Default::default(),
        https: Some(HttpsSettings {
            listen: https,
            tls: None,
            console: limits,
        }),
        metrics: None,
    };
    tokio::spawn(async move {
        if let Err(e) = mcvpn::hub::run(settings).await {
            panic!("the hub stopped: {e:#}");
        }
    });
    let t0 = Instant::now();
    while TcpStream::connect(https).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the hub did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Hub {
        https,
        listen,
        key,
        db,
        _dir: dir,
    }
}

/// A browser without a cookie jar of its own: the test carries the cookie, so it can
/// replay an old one.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(hub: &Hub) -> Browser {
        let http = reqwest::Client::builder()
            // The hub's self-made certificate; nothing in this test rests on it.
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            base: format!("https://{}", hub.https),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header(COOKIE, c);
        }
        r.send().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(c) = &self.cookie {
            r = r.header(COOKIE, c);
        }
        r.send().await.unwrap()
    }

    async fn login(&mut self, account: &str, password: &str) {
        let res = self
            .post("/console/login", &[("account", account), ("password", password)])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {account}");
        let set = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(set.contains(attr), "{set}");
        }
        self.cookie = Some(set.split(';').next().unwrap().to_string());
    }

    /// The CSRF token the page's forms carry.
    async fn csrf(&self) -> String {
        let page = self.get("/console/accounts").await.text().await.unwrap();
        let at = page.find("name=\"csrf\" value=\"").expect("a form with a token") + 19;
        page[at..at + 64].to_string()
    }

    /// A login with the form's choice of kind (`admin` or `operator`): the answer as it is.
    async fn login_as(&self, kind: &str, account: &str, password: &str) -> reqwest::Response {
        self.post(
            "/console/login",
            &[("account", account), ("password", password), ("login_as", kind)],
        )
        .await
    }

    /// An operator's login: to the contracts page, with the cookie kept.
    async fn login_operator(&mut self, name: &str, password: &str) {
        let res = self.login_as("operator", name, password).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "operator login of {name}");
        assert_eq!(res.headers()[LOCATION], "/console/contracts");
        let set = res.headers()[SET_COOKIE].to_str().unwrap().to_string();
        self.cookie = Some(set.split(';').next().unwrap().to_string());
    }

    /// The CSRF token of the page at `path`'s forms.
    async fn csrf_of(&self, path: &str) -> String {
        let page = self.get(path).await.text().await.unwrap();
        let at = page.find("name=\"csrf\" value=\"").expect("a form with a token") + 19;
        page[at..at + 64].to_string()
    }
}

fn limits() -> ConsoleLimits {
    ConsoleLimits::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_logged_in_goes_to_login_and_answers_carry_the_headers() {
    let hub = start_hub(limits(), |_| {}).await;
    let b = Browser::new(&hub);
    for page in [
        "/console/",
        "/console/accounts",
        "/console/sessions",
        "/console/history",
        "/console/history.csv",
        "/console/notices",
        "/console/targets",
        "/console/accounts/devices?user=bob",
    ] {
        let res = b.get(page).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(res.headers()[LOCATION], "/console/login", "{page}");
    }
    for (form, fields) in [
        ("/console/accounts/lock", &[("user", "bob")][..]),
        ("/console/sessions/end", &[("session", "1")]),
        (
            "/console/targets/grant",
            &[("target", "office-pc"), ("account", "carol")],
        ),
        (
            "/console/targets/revoke",
            &[("target", "office-pc"), ("account", "carol")],
        ),
        (
            "/console/accounts/devices/remove",
            &[("user", "bob"), ("device", "laptop")],
        ),
        ("/console/accounts/binding", &[("user", "bob"), ("state", "on")]),
        ("/console/logout", &[]),
    ] {
        assert_eq!(b.post(form, fields).await.status(), StatusCode::UNAUTHORIZED, "{form}");
    }
    let login = b.get("/console/login").await;
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    assert_eq!(login.headers()[CACHE_CONTROL], "no-store");
    let html = login.text().await.unwrap();
    assert!(
        html.contains("<html lang=\"ja\">") && html.contains("パスワード"),
        "Japanese by default"
    );
    let en = b
        .http
        .get(format!("{}/console/login", b.base))
        .header("Accept-Language", "en-GB,en;q=0.8")
        .send()
        .await
        .unwrap();
    assert!(en.text().await.unwrap().contains("<html lang=\"en\">"));
    // The node link and the plain page are still where they were.
    // (On a new connection: one that has asked for /console/ stays the console's.)
    let root = Browser::new(&hub).get("/").await;
    assert_eq!(root.status(), StatusCode::OK, "{:?}", root.text().await);
    // A wrong password gets the control channel's same answer as an unknown account.
    let wrong = b
        .post("/console/login", &[("account", "alice"), ("password", "not it at all")])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong = wrong.text().await.unwrap();
    let unknown = b
        .post(
            "/console/login",
            &[("account", "nobody"), ("password", "not it at all")],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.replace("alice", "X"),
        unknown.text().await.unwrap().replace("nobody", "X")
    );
    // A user who is not the administrator cannot log in.
    let bob = b
        .post("/console/login", &[("account", "bob"), ("password", USER_PW)])
        .await;
    assert_eq!(bob.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_contracts_names_get_the_same_404_as_missing_ones() {
    let hub = start_hub(limits(), |_| {}).await;
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;
    let csrf = b.csrf().await;
    for form in [
        "/console/accounts/lock",
        "/console/accounts/unlock",
        "/console/accounts/password",
    ] {
        let theirs = b
            .post(
                form,
                &[("csrf", &csrf), ("user", "gus"), ("password", "a fine new passphrase")],
            )
            .await;
        let missing = b
            .post(
                form,
                &[("csrf", &csrf), ("user", "zed"), ("password", "a fine new passphrase")],
            )
            .await;
        assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "{form}");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{form}");
        assert_eq!(
            theirs.text().await.unwrap().replace("gus", "X"),
            missing.text().await.unwrap().replace("zed", "X"),
            "{form}"
        );
    }
    // gus logs in: his session is live, but not alice's to see or end.
    let (_ok, mut gus_rd, _gus_wr) = client_login(&hub, "gus").await;
    let gus_session = live_session_ids(&hub.db, "gus")[0];
    let sessions = b.get("/console/sessions").await.text().await.unwrap();
    assert!(!sessions.contains("gus"), "another contract's session is not listed");
    let theirs = b
        .post(
            "/console/sessions/end",
            &[("csrf", &csrf), ("session", &gus_session.to_string())],
        )
        .await;
    let missing = b
        .post("/console/sessions/end", &[("csrf", &csrf), ("session", "999999")])
        .await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        theirs
            .text()
            .await
            .unwrap()
            .replace(&format!("session {gus_session}<"), "session N<"),
        missing.text().await.unwrap().replace("session 999999<", "session N<")
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), gus_rd.recv::<Event>())
            .await
            .is_err(),
        "gus's session goes on"
    );
    // Another contract's log rows (gus's login, his session) are not there, filtered or
    // not; alice's own refused attempts above are.
    for q in ["", "?account=gus", "?result=refused"] {
        let csv = b.get(&format!("/console/history.csv{q}")).await.text().await.unwrap();
        let actors: Vec<&str> = csv.lines().skip(1).filter_map(|l| l.split(',').nth(1)).collect();
        assert!(!actors.contains(&"gus"), "{q}: {csv}");
        if q != "?account=gus" {
            assert!(actors.contains(&"admin:alice"), "{q}: {csv}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_need_the_token_and_a_live_login() {
    let short = ConsoleLimits {
        sessions: ConsoleSessionLimits {
            idle: Duration::from_secs(2),
            ..Default::default()
        },
        ..limits()
    };
    let hub = start_hub(short, |_| {}).await;
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;
    let csrf = b.csrf().await;
    let missing = b.post("/console/accounts/lock", &[("user", "bob")]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = "0".repeat(64);
    let wrong = b
        .post("/console/accounts/lock", &[("csrf", &wrong), ("user", "bob")])
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let accounts = b.get("/console/accounts").await.text().await.unwrap();
    assert!(!accounts.contains("ロック中"), "nothing was locked");
    // With the token: done, and back to the accounts page with what it did.
    let ok = b
        .post("/console/accounts/lock", &[("csrf", &csrf), ("user", "bob")])
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let accounts = b.get("/console/accounts").await.text().await.unwrap();
    assert!(accounts.contains("ロック中"), "bob is locked");
    // Idle past the limit: the login is gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(b.get("/console/").await.headers()[LOCATION], "/console/login");
    let late = b
        .post("/console/accounts/unlock", &[("csrf", &csrf), ("user", "bob")])
        .await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    // Log out: the old cookie no longer works.
    b.login("alice", ADMIN_PW).await;
    let csrf = b.csrf().await;
    assert_eq!(
        b.post("/console/logout", &[("csrf", &csrf)]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/console/accounts").await.status(), StatusCode::SEE_OTHER);
    let after = b
        .post("/console/accounts/unlock", &[("csrf", &csrf), ("user", "bob")])
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

/// A client logs in over Noise with its own password; its session stays open.
async fn client_login(hub: &Hub, account: &str) -> (Event, ChannelReader, ChannelWriter) {
    let me = KeyPair::generate();
    let stream = TcpStream::connect(hub.listen).await.unwrap();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
    };
    let (mut rd, mut wr) = channel::initiate(Box::new(stream), &me, &hub.key, &hello)
        .await
        .unwrap();
    wr.send(&Request::Login {
        account: Some(account.into()),
        credential: Credential::Password {
            password: USER_PW.into(),
        },
        role: Role::Client,
        hostname: format!("{account}-pc"),
        boot_id: 1,
        enroll: false,
    })
    .await
    .unwrap();
    let answer: Event = tokio::time::timeout(Duration::from_secs(30), rd.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(answer, Event::LoginOk(_)), "{answer:?}");
    (answer, rd, wr)
}

fn live_session_ids(db: &std::path::Path, account: &str) -> Vec<i64> {
    let s = SqliteStore::open(db).unwrap();
    s.sessions(true, None)
        .unwrap()
        .into_iter()
        .filter(|r| r.account == account)
        .map(|r| r.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_ends_the_session_at_once_and_history_exports_for_excel() {
    let hub = start_hub(limits(), |_| {}).await;
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;
    let csrf = b.csrf().await;
    let (_ok, mut rd, _wr) = client_login(&hub, "bob").await;
    let id = live_session_ids(&hub.db, "bob")[0];
    let page = b.get("/console/sessions").await.text().await.unwrap();
    assert!(page.contains("<td>bob</td>") && page.contains("切断"), "{page}");
    let pressed = Instant::now();
    let res = b
        .post(
            "/console/sessions/end",
            &[("csrf", &csrf), ("session", &id.to_string())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let kick: Event = tokio::time::timeout(Duration::from_secs(1), rd.recv())
        .await
        .expect("kicked within 1 s")
        .unwrap();
    assert!(matches!(kick, Event::Kick { .. }), "{kick:?}");
    println!("Disconnect → the client told: {:?}", pressed.elapsed());
    assert!(
        live_session_ids(&hub.db, "bob").is_empty(),
        "the session is over in the store"
    );
    // The access history: filters and the CSV for Japanese Excel.
    let csv = b.get("/console/history.csv?account=bob").await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = csv.bytes().await.unwrap();
    assert!(
        bytes.starts_with("\u{feff}日時,".as_bytes()),
        "BOM and a Japanese header"
    );
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(
        text.contains("\r\n") && !text.replace("\r\n", "").contains('\n'),
        "CRLF line ends"
    );
    let rows: Vec<&str> = text.trim_end().split("\r\n").skip(1).collect();
    assert!(rows.iter().all(|r| r.contains(",bob,")), "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.contains("session.end") && r.contains("via console")),
        "{rows:?}"
    );
    let refused = b.get("/console/history.csv?result=refused").await.text().await.unwrap();
    assert!(!refused.contains("session.end"));
}

/// Goal: the same action through the CLI's path (the control channel's admin request,
/// as `mcvpn admin --hub --as alice` sends it) and through the console gives the same
/// result and the same audit row, apart from the source marked "via console".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_console_write_the_same_audit_row() {
    let hub = start_hub(limits(), |_| {}).await;
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;
    let csrf = b.csrf().await;
    // The CLI's way: one admin request on a control connection.
    let cli = cli_admin(
        &hub,
        mcvpn::admin::AdminCommand::Account(mcvpn::admin::AccountCmd::Lock { user: "bob".into() }),
    )
    .await;
    assert!(cli.is_ok(), "{cli:?}");
    let res = b
        .post("/console/accounts/lock", &[("csrf", &csrf), ("user", "carol")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let s = SqliteStore::open(&hub.db).unwrap();
    let rows: Vec<_> = s
        .audit_log(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "account.lock")
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (by_cli, by_console) = (&rows[0], &rows[1]);
    println!(
        "CLI:     {} {} {:?} {:?} {}",
        by_cli.actor, by_cli.action, by_cli.account, by_cli.source, by_cli.detail
    );
    println!(
        "console: {} {} {:?} {:?} {}",
        by_console.actor, by_console.action, by_console.account, by_console.source, by_console.detail
    );
    assert_eq!(by_cli.actor, by_console.actor);
    assert_eq!(by_cli.contract_id, by_console.contract_id);
    assert_eq!(by_cli.detail, by_console.detail);
    let cli_source = by_cli.source.clone().unwrap();
    let console_source = by_console.source.clone().unwrap();
    assert!(!cli_source.contains("console"));
    assert!(console_source.ends_with(" via console"), "{console_source}");
    // Same effect: both locked.
    for u in ["bob", "carol"] {
        assert_eq!(
            s.account_by_name(u).unwrap().unwrap().state,
            mcvpn::store::AccountState::Locked,
            "{u}"
        );
    }
}

async fn cli_admin(hub: &Hub, command: mcvpn::admin::AdminCommand) -> mcvpn::admin::AdminResult {
    let me = KeyPair::generate();
    let stream = TcpStream::connect(hub.listen).await.unwrap();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
    };
    let (mut rd, mut wr) = channel::initiate(Box::new(stream), &me, &hub.key, &hello)
        .await
        .unwrap();
    wr.send(&Request::Admin {
        account: "alice".into(),
        password: ADMIN_PW.into(),
        command,
    })
    .await
    .unwrap();
    match tokio::time::timeout(Duration::from_secs(30), rd.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Event::AdminResult(r) => r,
        other => panic!("{other:?}"),
    }
}

/// Goal: every page in ≤ 50 ms server time with 1,000 accounts and 100,000 audit rows.
/// Measured from the client on loopback, so an upper bound of the server's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_fast_with_a_thousand_accounts_and_a_hundred_thousand_log_rows() {
    let hub = start_hub(limits(), |s| {
        let hash = mcvpn::password::hash(USER_PW);
        for i in 0..1000 {
            s.account_add("acme", &format!("user{i:04}"), &hash).unwrap();
        }
    })
    .await;
    {
        // Straight into SQLite in one transaction: 100,000 rows for acme, half of them refusals.
        let mut conn = rusqlite::Connection::open(&hub.db).unwrap();
        let acme: i64 = conn
            .query_row("SELECT id FROM contracts WHERE name = 'acme'", [], |r| r.get(0))
            .unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO audit (at, actor, action, contract_id, account, source, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .unwrap();
            let start = chrono::Utc::now().timestamp() - 100_000 * 30;
            for i in 0..100_000i64 {
                let user = format!("user{:04}", i % 1000);
                let action = if i % 2 == 0 { "login" } else { "login.refused" };
                ins.execute(rusqlite::params![
                    start + i * 30,
                    user,
                    action,
                    acme,
                    user,
                    "203.0.113.9:40000",
                    "client"
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;
    let today = chrono::Utc::now().date_naive();
    let week_ago = today - chrono::Days::new(7);
    let pages = [
        "/console/".to_string(),
        "/console/accounts".into(),
        "/console/sessions".into(),
        "/console/history".into(),
        "/console/history?account=user0420".into(),
        "/console/history?result=refused".into(),
        format!("/console/history?since={week_ago}&until={today}"),
        "/console/notices".into(),
        "/console/targets".into(),
        "/console/accounts/devices?user=user0420".into(),
    ];
    let mut slowest = (Duration::ZERO, String::new());
    for page in &pages {
        let _warm = b.get(page).await.text().await.unwrap();
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let res = b.get(page).await;
            assert_eq!(res.status(), StatusCode::OK, "{page}");
            let body = res.text().await.unwrap();
            best = best.min(t.elapsed());
            assert!(body.len() > 500, "{page}");
        }
        println!("{page}: {best:?}");
        if best > slowest.0 {
            slowest = (best, page.clone());
        }
    }
    println!(
        "slowest page: {} in {:?} (1,000 accounts, 100,000 audit rows)",
        slowest.1, slowest.0
    );
    assert!(slowest.0 <= Duration::from_millis(50), "{slowest:?}");
    let accounts = b.get("/console/accounts").await.text().await.unwrap();
    assert!(accounts.contains("1,003"), "the count with thousands separators");
}

/// acme: bob's target office-pc and his client devices laptop and phone; globex: gus's
/// target globex-pc and his client device gus-pc.
fn seed_devices(s: &mut SqliteStore) {
    let net = Default::default();
    let bob = s.account_by_name("bob").unwrap().unwrap();
    let gus = s.account_by_name("gus").unwrap().unwrap();
    s.device_register(bob.id, Role::Target, &Key32([1; 32]), "office-pc", net)
        .unwrap();
    s.device_register(bob.id, Role::Client, &Key32([2; 32]), "laptop", net)
        .unwrap();
    s.device_register(bob.id, Role::Client, &Key32([3; 32]), "phone", net)
        .unwrap();
    s.device_register(gus.id, Role::Target, &Key32([4; 32]), "globex-pc", net)
        .unwrap();
    s.device_register(gus.id, Role::Client, &Key32([5; 32]), "gus-pc", net)
        .unwrap();
}

/// (target, account) of every grant, as the store has them.
fn grants_in_store(db: &std::path::Path) -> Vec<(String, String)> {
    let s = SqliteStore::open(db).unwrap();
    s.grants(None)
        .unwrap()
        .into_iter()
        .map(|g| (g.target, g.account))
        .collect()
}

fn client_devices_of(db: &std::path::Path, account: &str) -> Vec<String> {
    let s = SqliteStore::open(db).unwrap();
    s.devices(Some(Role::Client), None)
        .unwrap()
        .into_iter()
        .filter(|d| d.account == account)
        .map(|d| d.name)
        .collect()
}

fn binding_of(db: &std::path::Path, account: &str) -> bool {
    let s = SqliteStore::open(db).unwrap();
    s.account_by_name(account).unwrap().unwrap().device_binding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_grants_devices_and_binding_through_the_console() {
    let hub = start_hub(limits(), seed_devices).await;
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;
    let csrf = b.csrf().await;
    let office = "office-pc".to_string();

    // Targets and grants: acme's target only, no grant yet.
    let page = b.get("/console/targets").await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("href=\"/console/targets\""), "in the navigation");
    assert!(
        page.contains("<td>office-pc</td>") && !page.contains("globex-pc"),
        "{page}"
    );
    assert!(page.contains("接続許可はありません"), "{page}");
    assert!(page.contains("<label for=\"grant-account\">"), "{page}");
    assert!(page.contains("<option value=\"office-pc\">"), "{page}");

    // Grant office-pc to carol: the store has it, the CLI's listing shows it, the page too.
    let res = b
        .post(
            "/console/targets/grant",
            &[("csrf", &csrf), ("target", &office), ("account", "carol")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console/targets");
    assert_eq!(
        grants_in_store(&hub.db),
        [("office-pc".to_string(), "carol".to_string())]
    );
    let cli = cli_admin(&hub, AdminCommand::Target(TargetCmd::Grants)).await;
    match cli {
        Ok(Output::Grants(rows)) => {
            assert_eq!(rows.len(), 1, "{rows:?}");
            assert_eq!(
                (rows[0].target.as_str(), rows[0].granted_to.as_str()),
                ("office-pc", "carol")
            );
        }
        other => panic!("{other:?}"),
    }
    let page = b.get("/console/targets").await.text().await.unwrap();
    assert!(
        page.contains("carol に対象機器 office-pc への接続を許可しました。"),
        "the flash: {page}"
    );
    assert!(page.contains("<td>carol</td>") && page.contains("取り消し"), "{page}");
    // The Revoke button carries what the handler needs.
    assert!(
        page.contains(&format!("name=\"target\" value=\"{office}\""))
            && page.contains("name=\"account\" value=\"carol\""),
        "{page}"
    );
    let res = b
        .post(
            "/console/targets/revoke",
            &[("csrf", &csrf), ("target", &office), ("account", "carol")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(grants_in_store(&hub.db).is_empty(), "revoked");
    match cli_admin(&hub, AdminCommand::Target(TargetCmd::Grants)).await {
        Ok(Output::Grants(rows)) => assert!(rows.is_empty(), "{rows:?}"),
        other => panic!("{other:?}"),
    }

    // Devices of bob, reached from the accounts page.
    let accounts = b.get("/console/accounts").await.text().await.unwrap();
    assert!(
        accounts.contains("href=\"/console/accounts/devices?user=bob\""),
        "{accounts}"
    );
    let page = b.get("/console/accounts/devices?user=bob").await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<td>laptop</td>") && page.contains("<td>phone</td>"),
        "{page}"
    );
    assert!(
        !page.contains("gus-pc") && !page.contains("office-pc"),
        "clients of bob only: {page}"
    );
    assert!(page.contains("オフ（"), "binding is off: {page}");
    assert!(page.contains("name=\"device\" value=\"laptop\""), "{page}");
    let laptop = "laptop".to_string();
    let res = b
        .post(
            "/console/accounts/devices/remove",
            &[("csrf", &csrf), ("user", "bob"), ("device", &laptop)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console/accounts/devices?user=bob");
    assert_eq!(client_devices_of(&hub.db, "bob"), ["phone"]);
    let page = b.get("/console/accounts/devices?user=bob").await.text().await.unwrap();
    assert!(
        !page.contains("<td>laptop</td>") && page.contains("<td>phone</td>"),
        "{page}"
    );
    assert!(
        page.contains("bob の手元端末 laptop を削除しました。"),
        "the flash: {page}"
    );

    // Device binding on, then off.
    for (state, on, shown) in [("on", true, "オン（"), ("off", false, "オフ（")] {
        let res = b
            .post(
                "/console/accounts/binding",
                &[("csrf", &csrf), ("user", "bob"), ("state", state)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{state}");
        assert_eq!(binding_of(&hub.db, "bob"), on, "{state}");
        let page = b.get("/console/accounts/devices?user=bob").await.text().await.unwrap();
        assert!(page.contains(shown), "{state}: {page}");
    }

    // Every form of these pages without the token: refused, nothing changed.
    for (form, fields) in [
        (
            "/console/targets/grant",
            &[("target", office.as_str()), ("account", "carol")][..],
        ),
        (
            "/console/accounts/devices/remove",
            &[("user", "bob"), ("device", "phone")],
        ),
        ("/console/accounts/binding", &[("user", "bob"), ("state", "on")]),
    ] {
        assert_eq!(b.post(form, fields).await.status(), StatusCode::FORBIDDEN, "{form}");
    }
    let regrant = b
        .post(
            "/console/targets/grant",
            &[("csrf", &csrf), ("target", &office), ("account", "carol")],
        )
        .await;
    assert_eq!(regrant.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        b.post("/console/targets/revoke", &[("target", &office), ("account", "carol")])
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(grants_in_store(&hub.db).len(), 1, "the grant stays");
    assert_eq!(client_devices_of(&hub.db, "bob"), ["phone"]);
    assert!(!binding_of(&hub.db, "bob"));
    // The audit log says each was done through the console.
    let s = SqliteStore::open(&hub.db).unwrap();
    let log = s.audit_log(None, 1000).unwrap();
    for action in ["target.grant", "target.revoke", "device.remove", "account.binding"] {
        assert!(
            log.iter().any(|r| r.action == action
                && r.actor == "admin:alice"
                && r.source.as_deref().is_some_and(|s| s.ends_with(" via console"))),
            "{action}"
        );
    }
}

/// `theirs` (another contract's name) and `missing` (a name nobody has) must be the same
/// 404 once each name is written the same way.
async fn assert_same_404(theirs: reqwest::Response, missing: reqwest::Response, names: (&str, &str), what: &str) {
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "{what}");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{what}");
    let theirs = theirs.text().await.unwrap().replace(names.0, "NAME");
    let missing = missing.text().await.unwrap().replace(names.1, "NAME");
    assert_eq!(theirs, missing, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_contracts_devices_and_targets_get_the_same_404_as_missing_ones() {
    let hub = start_hub(limits(), seed_devices).await;
    let mut b = Browser::new(&hub);
    b.login("gina", ADMIN_PW).await;
    let csrf = b.csrf().await;

    let page = b.get("/console/targets").await.text().await.unwrap();
    assert!(page.contains("globex-pc") && !page.contains("office-pc"), "{page}");
    assert_same_404(
        b.get("/console/accounts/devices?user=bob").await,
        b.get("/console/accounts/devices?user=zed").await,
        ("bob", "zed"),
        "devices page",
    )
    .await;
    for form in ["/console/targets/grant", "/console/targets/revoke"] {
        // acme's target to gina's own account, and a target nobody has.
        assert_same_404(
            b.post(form, &[("csrf", &csrf), ("target", "office-pc"), ("account", "gus")])
                .await,
            b.post(form, &[("csrf", &csrf), ("target", "no-such-pc"), ("account", "gus")])
                .await,
            ("office-pc", "no-such-pc"),
            form,
        )
        .await;
    }
    assert_same_404(
        b.post(
            "/console/accounts/devices/remove",
            &[("csrf", &csrf), ("user", "bob"), ("device", "phone")],
        )
        .await,
        b.post(
            "/console/accounts/devices/remove",
            &[("csrf", &csrf), ("user", "zed"), ("device", "phone")],
        )
        .await,
        ("bob", "zed"),
        "device remove",
    )
    .await;
    assert_same_404(
        b.post(
            "/console/accounts/binding",
            &[("csrf", &csrf), ("user", "bob"), ("state", "on")],
        )
        .await,
        b.post(
            "/console/accounts/binding",
            &[("csrf", &csrf), ("user", "zed"), ("state", "on")],
        )
        .await,
        ("bob", "zed"),
        "binding",
    )
    .await;
    // Nothing of acme's changed.
    assert!(grants_in_store(&hub.db).is_empty());
    assert_eq!(client_devices_of(&hub.db, "bob"), ["laptop", "phone"]);
    assert!(!binding_of(&hub.db, "bob"));
}

// ---------------------------------------------------------------------------------------
// Operator logins and the operator's pages
// ---------------------------------------------------------------------------------------

const OPERATOR_PW: &str = "the operator's own passphrase";

/// Operator logins: olga (operator), watch1 (monitor), and oscar, an operator whose name
/// is also an account: the administrator of a third contract, initech, with
/// [`ADMIN_PW`] (the operator login has its own password).
fn seed_operators(s: &mut SqliteStore) {
    let op = mcvpn::password::hash(OPERATOR_PW);
    s.operator_add("olga", mcvpn::store::OperatorRole::Operator, &op)
        .unwrap();
    s.operator_add("watch1", mcvpn::store::OperatorRole::Monitor, &op)
        .unwrap();
    s.operator_add("oscar", mcvpn::store::OperatorRole::Operator, &op)
        .unwrap();
    let c = s.contract_add(&NewContract::simple("initech", 1100)).unwrap();
    let a = s
        .account_add("initech", "oscar", &mcvpn::password::hash(ADMIN_PW))
        .unwrap();
    s.contract_set_admin_account(c.id, Some(a.id)).unwrap();
}

fn contract_state(db: &std::path::Path, name: &str) -> mcvpn::store::ContractState {
    SqliteStore::open(db).unwrap().contract_by_name(name).unwrap().state
}

/// The newest audit row with this action.
fn last_audit(db: &std::path::Path, action: &str) -> Option<mcvpn::store::AuditRecord> {
    let s = SqliteStore::open(db).unwrap();
    s.audit_log(None, 100_000)
        .unwrap()
        .into_iter()
        .rev()
        .find(|r| r.action == action)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_contracts_from_the_console() {
    use mcvpn::store::ContractState;
    let hub = start_hub(limits(), seed_operators).await;
    let mut b = Browser::new(&hub);
    b.login_operator("olga", OPERATOR_PW).await;
    let list = b.get("/console/contracts").await;
    assert_eq!(list.status(), StatusCode::OK);
    let list = list.text().await.unwrap();
    for name in ["acme", "globex", "initech", "契約の追加"] {
        assert!(list.contains(name), "{name}: {list}");
    }
    assert!(
        list.contains("href=\"/console/outages\"") && !list.contains("href=\"/console/accounts\""),
        "the operator's navigation, not the administrator's"
    );
    // The administrator's pages are not an operator's: back to the contracts.
    for page in ["/console/", "/console/accounts", "/console/history", "/console/notices"] {
        let res = b.get(page).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(res.headers()[LOCATION], "/console/contracts", "{page}");
    }
    let csrf = b.csrf_of("/console/contracts").await;

    // Create a contract.
    let res = b
        .post(
            "/console/contracts/add",
            &[
                ("csrf", &csrf),
                ("name", "hooli"),
                ("kind", "public-body"),
                ("accounts", "12"),
                ("start", ""),
                ("admin_email", "it@hooli.example"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{:?}", res.text().await);
    assert_eq!(res.headers()[LOCATION], "/console/contracts/show?name=hooli");
    let hooli = SqliteStore::open(&hub.db).unwrap().contract_by_name("hooli").unwrap();
    assert_eq!(hooli.kind, mcvpn::contract::ContractKind::PublicBody);
    assert_eq!(hooli.admin_email, "it@hooli.example");
    let show = b.get("/console/contracts/show?name=hooli").await.text().await.unwrap();
    assert!(
        show.contains("契約 hooli を追加しました") && show.contains("最初の契約期間は 2027-12-31 まで"),
        "the flash says what it did, in the page's language: {show}"
    );
    for article in ["第13条", "第16条", "第18条", "第23条", "第24条"] {
        assert!(show.contains(article), "{article}");
    }

    // Suspend acme while bob is connected: his session is cut at once.
    let (_ok, mut bob, _bob_wr) = client_login(&hub, "bob").await;
    let no_token = b
        .post("/console/contracts/suspend", &[("name", "acme"), ("reason", "x")])
        .await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    assert_eq!(contract_state(&hub.db, "acme"), ContractState::Active);
    let res = b
        .post(
            "/console/contracts/suspend",
            &[("csrf", &csrf), ("name", "acme"), ("reason", "unpaid invoice")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(contract_state(&hub.db, "acme"), ContractState::Suspended);
    let kick: Event = tokio::time::timeout(Duration::from_secs(2), bob.recv())
        .await
        .expect("bob's session is cut")
        .unwrap();
    assert!(matches!(kick, Event::Kick { .. }), "{kick:?}");
    let row = last_audit(&hub.db, "contract.suspend").expect("audited");
    assert_eq!(row.actor, "operator:olga");
    assert_eq!(row.detail, "unpaid invoice");
    assert!(row.source.unwrap().ends_with(" via console"));
    let show = b.get("/console/contracts/show?name=acme").await.text().await.unwrap();
    assert!(show.contains("利用停止中") && show.contains("unpaid invoice"), "{show}");

    let res = b
        .post("/console/contracts/resume", &[("csrf", &csrf), ("name", "acme")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(contract_state(&hub.db, "acme"), ContractState::Active);
    let row = last_audit(&hub.db, "contract.resume").expect("audited");
    assert_eq!(row.actor, "operator:olga");
    assert!(row.source.unwrap().ends_with(" via console"));

    // Change a field, add accounts, record a cancellation, terminate.
    let res = b
        .post(
            "/console/contracts/set",
            &[
                ("csrf", &csrf),
                ("name", "acme"),
                ("field", "phone"),
                ("value", "03-1234-5678"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        SqliteStore::open(&hub.db)
            .unwrap()
            .contract_by_name("acme")
            .unwrap()
            .phone,
        "03-1234-5678"
    );
    let res = b
        .post(
            "/console/contracts/add-accounts",
            &[("csrf", &csrf), ("name", "acme"), ("accounts", "5"), ("start", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let show = b.get("/console/contracts/show?name=acme").await.text().await.unwrap();
    assert!(
        show.contains("acme に 5 アカウントを追加しました") && show.contains("追加契約"),
        "{show}"
    );
    let res = b
        .post(
            "/console/contracts/cancel",
            &[("csrf", &csrf), ("name", "globex"), ("received", ""), ("end", "")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let s = SqliteStore::open(&hub.db).unwrap();
    let globex = s.contract_by_name("globex").unwrap();
    assert!(s.cancellation(globex.id).unwrap().is_some(), "cancellation recorded");
    let res = b
        .post(
            "/console/contracts/terminate",
            &[("csrf", &csrf), ("name", "hooli"), ("reason", "breach of art. 22")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(contract_state(&hub.db, "hooli"), ContractState::Terminated);
    // A rule the command enforces comes back as the admin API's refusal.
    let again = b
        .post("/console/contracts/resume", &[("csrf", &csrf), ("name", "hooli")])
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let missing = b.get("/console/contracts/show?name=nosuch").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bad_date = b
        .post(
            "/console/contracts/cancel",
            &[("csrf", &csrf), ("name", "acme"), ("received", "yesterday")],
        )
        .await;
    assert!(bad_date.status().is_client_error(), "{:?}", bad_date.status());
    assert!(s
        .cancellation(s.contract_by_name("acme").unwrap().id)
        .unwrap()
        .is_none());

    // Outages, invoices and compensation, the tariff.
    let res = b
        .post(
            "/console/outages/add",
            &[
                ("csrf", &csrf),
                ("start", "2026-03-01T00:00"),
                ("end", "2026-03-06T12:00"),
                ("note", "fibre cut"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{:?}", res.text().await);
    assert_eq!(s.outages().unwrap().len(), 1);
    let outages = b.get("/console/outages").await.text().await.unwrap();
    assert!(outages.contains("fibre cut") && outages.contains("132.0"), "{outages}");
    // Planned maintenance (art. 34-2): announced, listed, cancelled; one already over is
    // refused with the admin API's reason.
    let day = chrono::Local::now().date_naive() + chrono::Days::new(3);
    let res = b
        .post(
            "/console/maintenance/add",
            &[
                ("csrf", &csrf),
                ("start", &format!("{day}T02:00")),
                ("end", &format!("{day}T05:00")),
                ("reason", "ハブの更新"),
                ("notice_days", "7"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{:?}", res.text().await);
    let page = b.get("/console/maintenance").await.text().await.unwrap();
    assert!(
        page.contains("ハブの更新") && page.contains("予定") && page.contains("保守の予定（"),
        "listed with the answer: {page}"
    );
    let id = s.maintenance_windows().unwrap()[0].id.to_string();
    let res = b
        .post("/console/maintenance/cancel", &[("csrf", &csrf), ("id", &id)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = b.get("/console/maintenance").await.text().await.unwrap();
    assert!(page.contains("取消済み") && page.contains("を取り消しました"), "{page}");
    let past = b
        .post(
            "/console/maintenance/add",
            &[
                ("csrf", &csrf),
                ("start", "2020-01-01T02:00"),
                ("end", "2020-01-01T05:00"),
                ("reason", "too late"),
                ("notice_days", "7"),
            ],
        )
        .await;
    assert_eq!(past.status(), StatusCode::BAD_REQUEST);
    assert!(past.text().await.unwrap().contains("already ended"));

    let invoices = b.get("/console/invoices?contract=acme").await;
    assert_eq!(invoices.status(), StatusCode::OK);
    let invoices = invoices.text().await.unwrap();
    for part in ["第28条", "第35条", "basic", "円", "<pre>"] {
        assert!(invoices.contains(part), "{part}: {invoices}");
    }
    let tariff = b.get("/console/tariff").await.text().await.unwrap();
    assert!(tariff.contains("年間使用料") && tariff.contains("円"), "{tariff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_administrator_never_gets_operator_rights() {
    use mcvpn::store::ContractState;
    let hub = start_hub(limits(), seed_operators).await;
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;
    let csrf = b.csrf().await;
    // The operator's pages refuse her; their forms are refused by the admin API, with
    // no effect.
    for page in [
        "/console/contracts",
        "/console/contracts/show?name=acme",
        "/console/invoices?contract=acme",
        "/console/outages",
        "/console/tariff",
    ] {
        assert_eq!(b.get(page).await.status(), StatusCode::FORBIDDEN, "{page}");
    }
    for (form, fields) in [
        ("/console/contracts/suspend", &[("name", "acme"), ("reason", "x")][..]),
        ("/console/contracts/suspend", &[("name", "globex"), ("reason", "x")]),
        ("/console/contracts/terminate", &[("name", "globex"), ("reason", "x")]),
        (
            "/console/contracts/add",
            &[
                ("name", "evil"),
                ("kind", "corporation"),
                ("accounts", "10"),
                ("admin_email", "a@b.example"),
            ],
        ),
        (
            "/console/contracts/set",
            &[("name", "acme"), ("field", "device-limit"), ("value", "99")],
        ),
        (
            "/console/outages/add",
            &[("start", "2026-03-01T00:00"), ("end", "2026-03-09T00:00")],
        ),
    ] {
        let mut with_token = vec![("csrf", csrf.as_str())];
        with_token.extend_from_slice(fields);
        let res = b.post(form, &with_token).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{form} {fields:?}");
    }
    let s = SqliteStore::open(&hub.db).unwrap();
    assert_eq!(contract_state(&hub.db, "acme"), ContractState::Active);
    assert_eq!(contract_state(&hub.db, "globex"), ContractState::Active);
    assert!(s.contract_by_name("evil").is_err());
    assert!(s.outages().unwrap().is_empty());
    assert_ne!(s.contract_by_name("acme").unwrap().device_limit, 99);
    let denied = last_audit(&hub.db, "admin.denied").expect("the refusal is audited");
    assert_eq!(denied.actor, "admin:alice");

    // An account's password never makes an operator: alice, or oscar (an account and an
    // operator), with the account's password and the operator choice, get the answer a
    // wrong password gets.
    let b = Browser::new(&hub);
    for name in ["alice", "oscar"] {
        let with_account_pw = b.login_as("operator", name, ADMIN_PW).await;
        assert_eq!(with_account_pw.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert!(with_account_pw.headers().get(SET_COOKIE).is_none());
        let wrong = b.login_as("operator", name, "not the password at all").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            with_account_pw.text().await.unwrap(),
            wrong.text().await.unwrap(),
            "{name}"
        );
    }
    // Each of oscar's passwords opens its own kind of login only.
    let mut admin = Browser::new(&hub);
    admin.login("oscar", ADMIN_PW).await;
    assert_eq!(admin.get("/console/contracts").await.status(), StatusCode::FORBIDDEN);
    let as_admin = b.login_as("admin", "oscar", OPERATOR_PW).await;
    assert_eq!(as_admin.status(), StatusCode::UNAUTHORIZED);
    let mut operator = Browser::new(&hub);
    operator.login_operator("oscar", OPERATOR_PW).await;
    assert_eq!(operator.get("/console/contracts").await.status(), StatusCode::OK);

    // A monitor login is a program's: refused at the console with what to do instead.
    let monitor = b.login_as("operator", "watch1", OPERATOR_PW).await;
    assert_eq!(monitor.status(), StatusCode::FORBIDDEN);
    assert!(monitor.headers().get(SET_COOKIE).is_none());
    assert!(monitor.text().await.unwrap().contains("mcvpn monitor"));
    // The login page offers the choice, labelled, the administrator's by default.
    let page = b.get("/console/login").await.text().await.unwrap();
    assert!(
        page.contains("label for=\"as-operator\"") && page.contains("運用者"),
        "{page}"
    );
    assert!(page.contains("value=\"admin\" checked"), "{page}");
}

// ---------------------------------------------------------------------------------------
// The optional second factor (TOTP) of account administrators
// ---------------------------------------------------------------------------------------

/// The authenticator app: codes computed with totp-rs from the secret the page showed,
/// not with the hub's own code.
struct App {
    totp: totp_rs::TOTP,
    /// The last step a code was taken for: each code is of a later step, as a person
    /// waiting for the next code would type it.
    last: Option<u64>,
}

impl App {
    fn new(secret: &str) -> App {
        let bytes = totp_rs::Secret::Encoded(secret.to_string()).to_bytes().unwrap();
        App {
            totp: totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()),
            last: None,
        }
    }

    fn now_step() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 30
    }

    /// A code the hub has not seen: the earliest step it accepts (one back) or the next
    /// one after the last used, waiting for the clock if that is more than a step ahead.
    async fn next_code(&mut self) -> String {
        let step = match self.last {
            Some(last) => last + 1,
            None => Self::now_step() - 1,
        }
        .max(Self::now_step() - 1);
        while step > Self::now_step() + 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.last = Some(step);
        self.totp.generate(step * 30)
    }

    /// A code that is none of the three the hub accepts now.
    fn wrong_code(&self) -> String {
        let now = Self::now_step();
        let right: Vec<String> = (now - 1..=now + 1).map(|s| self.totp.generate(s * 30)).collect();
        (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| !right.contains(c))
            .unwrap()
    }
}

/// The base32 secret the TOTP page shows for manual entry (in groups of four).
fn shown_secret(page: &str) -> String {
    let at = page.find("<code class=\"secret\">").expect("the secret is shown") + 21;
    let end = at + page[at..].find("</code>").unwrap();
    page[at..end].replace(' ', "")
}

fn totp_on(db: &std::path::Path, account: &str) -> bool {
    SqliteStore::open(db)
        .unwrap()
        .account_by_name(account)
        .unwrap()
        .unwrap()
        .totp
}

/// A cookie a response sets, as `NAME=VALUE`.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// A password login that must stop at the code page: the code cookie, no login cookie.
async fn password_step(b: &mut Browser, account: &str) {
    b.cookie = None;
    let res = b
        .post("/console/login", &[("account", account), ("password", ADMIN_PW)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console/login/code");
    assert_eq!(
        set_cookie(&res, "mcvpn_console"),
        None,
        "no session on the password alone"
    );
    let code_cookie = set_cookie(&res, "mcvpn_console_code").expect("the waiting login's cookie");
    let raw = res.headers()[SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age="] {
        assert!(raw.contains(attr), "{raw}");
    }
    b.cookie = Some(code_cookie);
}

/// The code step: the answer as it is; on success the login cookie replaces the code's.
async fn code_step(b: &mut Browser, code: &str) -> reqwest::Response {
    let res = b.post("/console/login/code", &[("code", code)]).await;
    if let Some(session) = set_cookie(&res, "mcvpn_console") {
        b.cookie = Some(session);
    }
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_sets_up_totp_and_logs_in_with_a_code() {
    let hub = start_hub(limits(), seed_operators).await;
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await;

    // The header links the page; off, and nothing to draw yet.
    let home = b.get("/console/").await.text().await.unwrap();
    assert!(home.contains("href=\"/console/totp\""));
    let page = b.get("/console/totp").await.text().await.unwrap();
    assert!(page.contains("action=\"/console/totp/setup\""), "{page}");
    assert_eq!(b.get("/console/totp/qr.png").await.status(), StatusCode::NOT_FOUND);

    // Set up: a secret for this login, its QR code, a form for the code.
    let csrf = b.csrf_of("/console/totp").await;
    let res = b.post("/console/totp/setup", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = b.get("/console/totp").await.text().await.unwrap();
    assert!(
        page.contains("<img class=\"qr\" src=\"/console/totp/qr.png\""),
        "{page}"
    );
    for label in ["for=\"confirm-code\"", "id=\"confirm-code\""] {
        assert!(page.contains(label), "{label}");
    }
    let secret = shown_secret(&page);
    assert_eq!(secret.len(), 32, "{secret}");
    let qr = b.get("/console/totp/qr.png").await;
    assert_eq!(qr.status(), StatusCode::OK);
    assert_eq!(qr.headers()["content-type"], "image/png");
    assert_eq!(qr.headers()[CACHE_CONTROL], "no-store");
    assert!(qr.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(!totp_on(&hub.db, "alice"), "nothing stored before a code proves it");

    // A wrong code is refused and stores nothing; the right one stores it.
    let mut app = App::new(&secret);
    let res = b
        .post("/console/totp/confirm", &[("csrf", &csrf), ("code", &app.wrong_code())])
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(!totp_on(&hub.db, "alice"));
    let code = app.next_code().await;
    let res = b
        .post("/console/totp/confirm", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(totp_on(&hub.db, "alice"));
    let row = last_audit(&hub.db, "account.totp-on").expect("audited");
    assert_eq!(row.actor, "admin:alice");
    assert!(row.source.unwrap().ends_with("via console"));
    assert!(!row.detail.contains(&secret));
    let page = b.get("/console/totp").await.text().await.unwrap();
    assert!(page.contains("action=\"/console/totp/off\""), "now on: {page}");
    assert_eq!(
        b.get("/console/totp/qr.png").await.status(),
        StatusCode::NOT_FOUND,
        "setup is over"
    );

    // The next login: the password alone opens nothing.
    let mut b = Browser::new(&hub);
    password_step(&mut b, "alice").await;
    assert_eq!(b.get("/console/").await.headers()[LOCATION], "/console/login");
    let page = b.get("/console/login/code").await.text().await.unwrap();
    assert!(page.contains("for=\"code\"") && page.contains("id=\"code\""));
    // A wrong code is refused like a wrong password; the right one starts the session.
    let res = code_step(&mut b, &app.wrong_code()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = res.text().await.unwrap();
    assert!(page.contains("action=\"/console/login/code\""), "try again");
    assert!(page.contains("ワンタイムコードが違う"), "{page}");
    let code = app.next_code().await;
    let res = code_step(&mut b, &code).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console/");
    assert!(
        set_cookie(&res, "mcvpn_console_code").unwrap().ends_with('='),
        "the code cookie is cleared"
    );
    assert_eq!(b.get("/console/").await.status(), StatusCode::OK);
    let row = last_audit(&hub.db, "admin.login").expect("audited");
    assert!(row.detail.contains("one-time code"), "{}", row.detail);

    // Locked between the password and the code: the right code no longer logs in.
    let set_alice = |state: mcvpn::store::AccountState| {
        let mut s = SqliteStore::open(&hub.db).unwrap();
        let id = s.account_by_name("alice").unwrap().unwrap().id;
        s.account_set_state(id, state).unwrap();
    };
    let mut locked = Browser::new(&hub);
    password_step(&mut locked, "alice").await;
    set_alice(mcvpn::store::AccountState::Locked);
    let before = app.last;
    let res = code_step(&mut locked, &app.next_code().await).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookie(&res, "mcvpn_console"), None, "locked meanwhile");
    set_alice(mcvpn::store::AccountState::Active);
    app.last = before; // the hub did not take that code: it is still good (saves a wait)

    // The same code again, on a new login: a replay, refused.
    let mut replay = Browser::new(&hub);
    password_step(&mut replay, "alice").await;
    let res = code_step(&mut replay, &code).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookie(&res, "mcvpn_console"), None);

    // Off: needs a current code (not one already used).
    let csrf = b.csrf_of("/console/totp").await;
    let res = b.post("/console/totp/off", &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a used code does not turn it off"
    );
    assert!(totp_on(&hub.db, "alice"));
    let res = b
        .post(
            "/console/totp/off",
            &[("csrf", &csrf), ("code", &app.next_code().await)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!totp_on(&hub.db, "alice"));
    assert!(last_audit(&hub.db, "account.totp-off").is_some());
    let mut b = Browser::new(&hub);
    b.login("alice", ADMIN_PW).await; // the password alone again

    // The operator resets an administrator's (oscar of initech) after a lost phone.
    let mut oscar = Browser::new(&hub);
    oscar.login("oscar", ADMIN_PW).await;
    let csrf = oscar.csrf_of("/console/totp").await;
    oscar.post("/console/totp/setup", &[("csrf", &csrf)]).await;
    let page = oscar.get("/console/totp").await.text().await.unwrap();
    let mut oscar_app = App::new(&shown_secret(&page));
    let res = oscar
        .post(
            "/console/totp/confirm",
            &[("csrf", &csrf), ("code", &oscar_app.next_code().await)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(totp_on(&hub.db, "oscar"));
    // An administrator cannot reset anyone's, their own included.
    let csrf = b.csrf().await;
    let res = b
        .post(
            "/console/contracts/totp-reset",
            &[("csrf", &csrf), ("name", "initech"), ("user", "oscar")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let mut olga = Browser::new(&hub);
    olga.login_operator("olga", OPERATOR_PW).await;
    let page = olga
        .get("/console/contracts/show?name=initech")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("action=\"/console/contracts/totp-reset\""));
    let csrf = olga.csrf_of("/console/contracts/show?name=initech").await;
    let res = olga
        .post(
            "/console/contracts/totp-reset",
            &[("csrf", &csrf), ("name", "initech"), ("user", "oscar")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!totp_on(&hub.db, "oscar"));
    let row = last_audit(&hub.db, "account.totp-reset").expect("audited");
    assert_eq!(row.actor, "operator:olga");
    assert_eq!(row.account.as_deref(), Some("oscar"));
    oscar.login("oscar", ADMIN_PW).await;
}

/// Alice of acme with a second factor whose secret the test knows.
const ALICE_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn seed_alice_totp(s: &mut SqliteStore) {
    let alice = s.account_by_name("alice").unwrap().unwrap();
    s.account_set_totp(alice.id, Some((ALICE_SECRET, 0))).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_login_expires_and_has_five_tries_and_the_cli_says_to_use_the_console() {
    let short = ConsoleLimits {
        sessions: ConsoleSessionLimits {
            code_wait: Duration::from_secs(1),
            ..Default::default()
        },
        ..limits()
    };
    let hub = start_hub(short, seed_alice_totp).await;
    let mut app = App::new(ALICE_SECRET);

    // Too late: even the right code no longer logs in.
    let mut b = Browser::new(&hub);
    password_step(&mut b, "alice").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b.get("/console/login/code").await.headers()[LOCATION], "/console/login");
    let res = code_step(&mut b, &app.next_code().await).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookie(&res, "mcvpn_console"), None);
    assert!(
        res.text().await.unwrap().contains("action=\"/console/login\""),
        "back to the password"
    );

    // A gentler clock for the tries (they take a while through the limiter's checks).
    let hub = start_hub(limits(), seed_alice_totp).await;
    let mut b = Browser::new(&hub);
    password_step(&mut b, "alice").await;
    for n in 1..=4 {
        let res = code_step(&mut b, &app.wrong_code()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "try {n}");
        assert!(
            res.text().await.unwrap().contains("action=\"/console/login/code\""),
            "try {n}"
        );
    }
    // The fifth wrong one ends the waiting login: even the right code is too late then.
    let res = code_step(&mut b, &app.wrong_code()).await;
    assert!(res.text().await.unwrap().contains("action=\"/console/login\""));
    let res = code_step(&mut b, &app.next_code().await).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookie(&res, "mcvpn_console"), None);
    // A new password step, and the right code works. The five wrong codes count in the
    // password limiter as five wrong passwords would: this account from this address
    // waits a second before its next try.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    password_step(&mut b, "alice").await;
    let res = code_step(&mut b, &app.next_code().await).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(b.get("/console/").await.status(), StatusCode::OK);

    // The control channel cannot carry a code: refused with what to do, not let in.
    let me = KeyPair::generate();
    let stream = TcpStream::connect(hub.listen).await.unwrap();
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Client,
    };
    let (mut rd, mut wr) = channel::initiate(Box::new(stream), &me, &hub.key, &hello)
        .await
        .unwrap();
    wr.send(&Request::Admin {
        account: "alice".into(),
        password: ADMIN_PW.into(),
        command: AdminCommand::Target(TargetCmd::List),
    })
    .await
    .unwrap();
    match tokio::time::timeout(Duration::from_secs(30), rd.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Event::Refused { reason, message, .. } => {
            assert_eq!(reason, mcvpn::proto::control::RefuseReason::SecondFactor);
            assert!(message.contains("web console"), "{message}");
        }
        other => panic!("the CLI must not get in on the password alone: {other:?}"),
    }
}
