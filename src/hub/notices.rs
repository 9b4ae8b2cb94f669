//! Delivery of the notice outbox by e-mail (art. 23-2, 24-3, 39).
//!
//! `mcvpn admin` queues notices to a contract's administrator (suspension, termination,
//! upcoming renewal, cancellation accepted, account locked) in the store. When the hub is
//! started with `--smtp URL`, [`run`] takes the unsent ones every [`POLL`] (and right
//! after the start), sends each to its `to_email` and marks it sent, or records the error
//! and tries again later with an exponential backoff. A permanent refusal (an SMTP 5xx
//! answer other than an authentication failure) marks the notice undeliverable at once:
//! it leaves the outbox, is never retried, and is audited as `notice.undeliverable`, the
//! fact art. 23-1(4) (the administrator cannot be reached) and art. 24-3 (a termination
//! takes effect five days after its notice was sent) turn on. Without `--smtp` the
//! notices stay in the outbox for `mcvpn admin notice list`.
//!
//! The decisions (which notice to try now, how long to wait after a failure, what a URL
//! means) are pure and tested here; the I/O around them is thin: one store read per
//! pass, one `notice_mark` per attempt, lettre's async SMTP transport for the sending.
//! Delivery is at least once: a hub that dies between the server's "250 OK" and
//! `notice_mark` sends that notice again (with the same Message-ID) after its restart.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::secret::SecretString;
use crate::store::{NoticeRecord, UnixTime};

use super::store_handle::StoreHandle;

/// How often the outbox is looked at.
pub const POLL: Duration = Duration::from_secs(2);
/// The first wait after a failed attempt; it doubles with every further failure...
pub const RETRY_FIRST: i64 = 5;
/// ... up to this many seconds.
pub const RETRY_CAP: i64 = 600;
/// How long one delivery (connect, TLS, the whole SMTP dialogue) may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The error recorded on a notice whose contract has no administrator e-mail.
pub const NO_RECIPIENT: &str = "no administrator e-mail";

// --- the --smtp URL ----------------------------------------------------------

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Clear text (`smtp://` without credentials, or `?tls=none`).
    Plain,
    /// STARTTLS when the server offers it, clear text otherwise (`?tls=opportunistic`).
    StartTlsOpportunistic,
    /// STARTTLS or no delivery (`?tls=required`; the default when a user is given).
    StartTlsRequired,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

impl Security {
    fn describe(&self) -> &'static str {
        match self {
            Security::Plain => "no TLS",
            Security::StartTlsOpportunistic => "STARTTLS if offered",
            Security::StartTlsRequired => "STARTTLS required",
            Security::Tls => "TLS",
        }
    }
}

/// Where and how to send notices, from `--smtp URL`:
///
/// * `smtp://host[:port]` — port 25 by default, clear text unless `?tls=…` says otherwise;
/// * `smtp://user@host[:port]` — STARTTLS required by default, so that the password
///   never travels in clear (`?tls=none` allows it, for a relay on localhost);
/// * `?tls=none|opportunistic|required` after an `smtp://` URL;
/// * `smtps://[user@]host[:port]` — TLS from the start, port 465 by default.
///
/// The user name is percent-decoded (`%40` for `@`). The password is never in the URL
/// (review C13: a command line shows in `ps`): it comes from `--smtp-password-file` or
/// `MCVPN_SMTP_PASSWORD` ([`SmtpConfig::with_password`]); a URL holding one is refused.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    pub password: Option<SecretString>,
}

/// What to say when a password is where it must not be, or missing.
const PASSWORD_HOWTO: &str = "give the password in a file (--smtp-password-file FILE, MCVPN_SMTP_PASSWORD_FILE; \
     with systemd, LoadCredential=) or in the MCVPN_SMTP_PASSWORD environment variable";

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password: options end up in logs.
        write!(f, "SmtpConfig({self})")
    }
}

/// `smtp://user@host:587 (STARTTLS required)`: the URL without its password.
impl fmt::Display for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.security == Security::Tls {
            "smtps"
        } else {
            "smtp"
        };
        let user = match &self.user {
            Some(u) => format!("{u}@"),
            None => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{scheme}://{user}{host}:{} ({})",
            self.port,
            self.security.describe()
        )
    }
}

impl SmtpConfig {
    pub fn parse(s: &str) -> Result<SmtpConfig, String> {
        // Errors repeat the URL without what may be a password (they reach logs).
        let shown = redact_userinfo(s);
        if s.trim().is_empty() {
            return Err("empty SMTP URL: give smtp://HOST[:PORT], or leave --smtp (MCVPN_SMTP) unset".into());
        }
        if !s.contains("://") {
            return Err(format!(
                "{shown:?} is not an SMTP URL: write smtp://{shown} (or smtps:// for TLS from the start)"
            ));
        }
        let url = url::Url::parse(s.trim())
            .map_err(|e| format!("{shown:?} is not a URL ({e}); example: smtp://mail.example.com:25"))?;
        let tls_default_port = match url.scheme() {
            "smtp" => None,
            "smtps" => Some(465),
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}: use smtp://HOST[:PORT] or smtps://HOST[:PORT]"
                ))
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => {
                return Err(format!(
                    "{shown:?} names no mail server host; example: smtp://mail.example.com:25"
                ))
            }
        };
        if url.port() == Some(0) {
            return Err("port 0 is not a mail server port".into());
        }
        if !matches!(url.path(), "" | "/") {
            return Err(format!("unexpected path {:?} in the SMTP URL", url.path()));
        }
        if url.fragment().is_some() {
            return Err("unexpected #fragment in the SMTP URL".into());
        }
        let decode = |part: &str, what: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("the SMTP {what} is not valid UTF-8 once percent-decoded"))
        };
        let user = match (url.username(), url.password()) {
            (_, Some(_)) => {
                return Err(format!(
                    "the SMTP URL holds a password, which would show in `ps` and in unit files: \
                     write smtp://USER@HOST and {PASSWORD_HOWTO}"
                ))
            }
            ("", None) => None,
            (u, None) => Some(decode(u, "user name")?),
        };
        let mut tls = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "tls" if tls.is_none() => tls = Some(v.into_owned()),
                "tls" => return Err("tls= is given twice in the SMTP URL".into()),
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} in the SMTP URL (only tls=none|opportunistic|required)"
                    ))
                }
            }
        }
        let security = match (tls_default_port, tls.as_deref()) {
            (Some(_), None) => Security::Tls,
            (Some(_), Some(_)) => {
                return Err("smtps:// is always TLS: tls= applies to smtp:// URLs only".into());
            }
            (None, None) if user.is_some() => Security::StartTlsRequired,
            (None, None) | (None, Some("none")) => Security::Plain,
            (None, Some("opportunistic")) => Security::StartTlsOpportunistic,
            (None, Some("required")) => Security::StartTlsRequired,
            (None, Some(other)) => {
                return Err(format!(
                    "tls={other:?} in the SMTP URL: use none, opportunistic or required"
                ));
            }
        };
        Ok(SmtpConfig {
            host,
            port: url.port().or(tls_default_port).unwrap_or(25),
            security,
            user,
            password: None,
        })
    }

    /// Adds the password read from a file or the environment; the URL must name the user.
    pub fn with_password(mut self, password: SecretString) -> Result<SmtpConfig, String> {
        if self.user.is_none() {
            return Err(format!(
                "an SMTP password was given but the --smtp URL names no user: write smtp://USER@{}",
                self.host
            ));
        }
        self.password = Some(password);
        Ok(self)
    }

    /// User and password for the mail server, if it wants them.
    fn credentials(&self) -> Result<Option<Credentials>, String> {
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => Ok(Some(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            ))),
            (Some(user), None) => Err(format!(
                "the --smtp URL names the user {user:?} but no password was given: {PASSWORD_HOWTO}"
            )),
            (None, Some(_)) => {
                Err("an SMTP password was given but the --smtp URL names no user: write smtp://USER@HOST".into())
            }
            (None, None) => Ok(None),
        }
    }
}

/// `smtp://…@host` for `smtp://user:password@host`: what an error may repeat of a URL.
fn redact_userinfo(s: &str) -> String {
    let start = s.find("://").map(|i| i + 3).unwrap_or(0);
    match s.rfind('@') {
        Some(at) if at >= start => format!("{}…{}", &s[..start], &s[at..]),
        _ => s.to_string(),
    }
}

/// Checks a sender address (`mcvpn@example.com` or `mcvpn <mcvpn@example.com>`).
pub fn parse_from(s: &str) -> Result<Mailbox, String> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{s:?} is not an e-mail address ({e}); example: mcvpn@vpn.example.com"))
}

/// The sender when `--smtp-from` is not given.
pub fn default_from() -> String {
    format!("mcvpn@{}", crate::util::hostname())
}

// --- when to try -------------------------------------------------------------

/// Seconds to wait after the `failures`-th failure in a row: 5, 10, 20, … capped at
/// [`RETRY_CAP`].
pub fn retry_delay(failures: i64) -> i64 {
    let doublings = failures.saturating_sub(1).clamp(0, 30) as u32;
    RETRY_FIRST.saturating_mul(1i64 << doublings).min(RETRY_CAP)
}

/// What to do with one unsent notice now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Send(Mailbox),
    /// It can never be delivered as it is: record why, once, and leave it in the outbox.
    GiveUp(String),
    /// Not now: it was given up already, or its backoff has not run out.
    Wait,
}

/// Whether a failure concerns the mail server as a whole (unreachable, TLS, refused
/// login, "421 closing"), only the one message for now (a full mailbox, "451 try
/// later"), or the one message for good (a 5xx refusal: no such user, rejected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Server(String),
    Message(String),
    /// RFC 5321: a 5xx reply is a permanent negative completion; sending the same
    /// message again gets the same answer. Undeliverable (art. 23-1(4), 24-3).
    Permanent(String),
}

impl Failure {
    pub fn text(&self) -> &str {
        match self {
            Failure::Server(s) | Failure::Message(s) | Failure::Permanent(s) => s,
        }
    }

    /// Classifies an error by its SMTP reply code (None: no reply, e.g. a connection
    /// or TLS error).
    pub fn from_reply(code: Option<u16>, text: String) -> Failure {
        match code {
            // 421 service closing; 530/534/535/538 authentication: our side or the
            // server's, not the recipient's, so never a reason to give a notice up.
            None | Some(421 | 454 | 530 | 534 | 535 | 538) => Failure::Server(text),
            Some(500..=599) => Failure::Permanent(text),
            Some(_) => Failure::Message(text),
        }
    }
}

/// The delivery job's memory between passes: when each notice may be tried again, and
/// when the mail server may be contacted again after failures that were its own.
/// Pure: the caller passes the time.
#[derive(Debug, Default)]
pub struct Scheduler {
    server_failures: i64,
    server_not_before: UnixTime,
    notice_not_before: HashMap<i64, UnixTime>,
}

impl Scheduler {
    /// False while the server is being left alone after a failure.
    pub fn server_ready(&self, now: UnixTime) -> bool {
        now >= self.server_not_before
    }

    pub fn plan(&self, n: &NoticeRecord, now: UnixTime) -> Plan {
        let to = n.to_email.trim();
        // An address that cannot work is reported once; a notice's attempts only grow
        // through this job, so "attempts > 0" means it was reported already.
        let bad = if to.is_empty() {
            Some(NO_RECIPIENT.to_string())
        } else {
            match to.parse::<Mailbox>() {
                Ok(m) => return self.plan_send(n.id, m, now),
                Err(e) => Some(format!("the administrator e-mail {to:?} is not an address: {e}")),
            }
        };
        match bad {
            Some(reason) if n.attempts == 0 => Plan::GiveUp(reason),
            _ => Plan::Wait,
        }
    }

    fn plan_send(&self, id: i64, to: Mailbox, now: UnixTime) -> Plan {
        match self.notice_not_before.get(&id) {
            Some(&t) if now < t => Plan::Wait,
            _ => Plan::Send(to),
        }
    }

    pub fn sent(&mut self, id: i64) {
        self.notice_not_before.remove(&id);
        self.server_failures = 0;
        self.server_not_before = 0;
    }

    /// Records a failed attempt; `attempts` counts it. Returns true when the pass must
    /// stop (the server itself failed: the other notices would fail the same way).
    /// A permanent failure is not retried: the caller marks the notice undeliverable.
    pub fn failed(&mut self, id: i64, attempts: i64, failure: &Failure, now: UnixTime) -> bool {
        if let Failure::Permanent(_) = failure {
            self.notice_not_before.remove(&id);
            self.server_failures = 0;
            return false;
        }
        self.notice_not_before.insert(id, now + retry_delay(attempts));
        match failure {
            Failure::Permanent(_) => false,
            Failure::Server(_) => {
                self.server_failures += 1;
                self.server_not_before = now + retry_delay(self.server_failures);
                true
            }
            Failure::Message(_) => {
                // The server answered: it is up.
                self.server_failures = 0;
                false
            }
        }
    }

    /// Forgets notices that left the outbox (sent by now, or deleted).
    pub fn retain(&mut self, unsent: &[NoticeRecord]) {
        self.notice_not_before
            .retain(|id, _| unsent.iter().any(|n| n.id == *id));
    }
}

// --- sending -----------------------------------------------------------------

/// The SMTP transport and the sender address.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    config: SmtpConfig,
}

impl Mailer {
    pub fn new(config: &SmtpConfig, from: Mailbox) -> Result<Mailer, String> {
        let tls = || TlsParameters::new(config.host.clone()).map_err(|e| format!("TLS setup for {}: {e}", config.host));
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
            .port(config.port)
            .timeout(Some(SEND_TIMEOUT))
            .hello_name(ClientId::Domain(crate::util::hostname()));
        b = match config.security {
            Security::Plain => b.tls(Tls::None),
            Security::StartTlsOpportunistic => b.tls(Tls::Opportunistic(tls()?)),
            Security::StartTlsRequired => b.tls(Tls::Required(tls()?)),
            Security::Tls => b.tls(Tls::Wrapper(tls()?)),
        };
        if let Some(credentials) = config.credentials()? {
            b = b.credentials(credentials);
        }
        Ok(Mailer {
            transport: b.build(),
            from,
            config: config.clone(),
        })
    }

    /// Sends one notice. Async all the way (lettre's tokio transport), bounded by
    /// [`SEND_TIMEOUT`]: no runtime thread waits on the mail server.
    pub async fn send(&self, n: &NoticeRecord, to: Mailbox) -> Result<(), Failure> {
        let email = message(n, &self.from, to).map_err(Failure::Message)?;
        self.send_message(email).await
    }

    /// Sends a plain UTF-8 text mail that is not a stored notice (`mcvpn monitor`'s alerts).
    pub async fn send_text(&self, to: Mailbox, subject: &str, body: &str) -> Result<(), Failure> {
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| Failure::Message(format!("cannot build the e-mail: {e}")))?;
        self.send_message(email).await
    }

    async fn send_message(&self, email: Message) -> Result<(), Failure> {
        match tokio::time::timeout(SEND_TIMEOUT + Duration::from_secs(5), self.transport.send(email)).await {
            Err(_) => Err(Failure::Server(format!(
                "{}: no answer within {SEND_TIMEOUT:?}",
                self.config
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let code = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
                Err(Failure::from_reply(
                    code,
                    format!("{}: {}", self.config.host, error_chain(&e)),
                ))
            }
        }
    }
}

/// "connection error: Connection refused (os error 111)": the error and its causes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = c.source();
    }
    s
}

/// The e-mail for one notice: plain UTF-8 text, and a Message-ID that stays the same if
/// the notice is ever sent twice.
pub fn message(n: &NoticeRecord, from: &Mailbox, to: Mailbox) -> Result<Message, String> {
    let domain = from.email.domain().to_string();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(n.subject.clone())
        .message_id(Some(format!("<mcvpn-notice-{}-{}@{domain}>", n.id, n.created_at)))
        .header(ContentType::TEXT_PLAIN)
        .body(n.body.clone())
        .map_err(|e| format!("cannot build the e-mail: {e}"))
}

// --- the job -----------------------------------------------------------------

/// The hub's delivery job. With no mailer it says once that delivery is off and returns.
pub async fn run(store: StoreHandle, mailer: Option<Mailer>, cluster: super::cluster::Membership) {
    let Some(mailer) = mailer else {
        tracing::info!("notice delivery off (no --smtp): notices stay in the outbox, see `mcvpn admin notice list`");
        return;
    };
    tracing::info!(server = %mailer.config, from = %mailer.from, "notices are delivered by e-mail");
    let mut sched = Scheduler::default();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await; // the first tick is immediate: a pass right after the start
                           // One hub of those sharing the store sends (see `cluster`): never a notice twice.
        if !cluster.holds_jobs() {
            continue;
        }
        if !sched.server_ready(crate::store::now()) {
            continue;
        }
        let unsent = match blocking(&store, |s| s.notices(None, true)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the notice outbox");
                continue;
            }
        };
        sched.retain(&unsent);
        for n in &unsent {
            let now = crate::store::now();
            match sched.plan(n, now) {
                Plan::Wait => {}
                Plan::GiveUp(reason) => {
                    tracing::warn!(notice = n.id, contract = %n.contract, kind = %n.kind, "notice not delivered: {reason}");
                    undeliverable(&store, n, reason).await;
                }
                Plan::Send(to) => match mailer.send(n, to).await {
                    Ok(()) => {
                        tracing::info!(notice = n.id, contract = %n.contract, kind = %n.kind, to = %n.to_email, "notice sent");
                        sched.sent(n.id);
                        if !mark(&store, n.id, true, None).await {
                            // Still unsent in the store: do not mail it again at once.
                            let f = Failure::Message("sent, but not recorded as sent".into());
                            sched.failed(n.id, n.attempts + 1, &f, crate::store::now());
                        }
                    }
                    Err(Failure::Permanent(text)) => {
                        sched.failed(
                            n.id,
                            n.attempts + 1,
                            &Failure::Permanent(text.clone()),
                            crate::store::now(),
                        );
                        tracing::warn!(
                            notice = n.id,
                            contract = %n.contract,
                            kind = %n.kind,
                            to = %n.to_email,
                            "notice refused for good, not retried (art. 23-1(4); a termination counts five days from \
                             now, art. 24-3); if every notice is refused, check --smtp-from: {text}"
                        );
                        undeliverable(&store, n, format!("undeliverable: {text}")).await;
                    }
                    Err(f) => {
                        let stop = sched.failed(n.id, n.attempts + 1, &f, crate::store::now());
                        tracing::warn!(
                            notice = n.id,
                            contract = %n.contract,
                            to = %n.to_email,
                            retry_in_s = retry_delay(n.attempts + 1),
                            "notice not sent: {}",
                            f.text()
                        );
                        mark(&store, n.id, false, Some(f.text().to_string())).await;
                        if stop {
                            break;
                        }
                    }
                },
            }
        }
    }
}

/// Marks a notice undeliverable and audits it under its contract: the operator sees in
/// `mcvpn admin log` that the administrator cannot be reached (art. 23-1(4)); the
/// contract job counts a pending termination's five days from now (art. 24-3).
async fn undeliverable(store: &StoreHandle, n: &NoticeRecord, reason: String) {
    let (id, contract_id, kind, to) = (n.id, n.contract_id, n.kind.clone(), n.to_email.clone());
    let r = blocking(store, move |s| {
        s.notice_fail(id, &reason)?;
        s.audit(&crate::store::AuditEntry {
            actor: "hub",
            action: "notice.undeliverable",
            contract_id: Some(contract_id),
            detail: &format!(
                "{kind} notice {id} to {to:?}: {reason} (art. 23-1(4): the administrator cannot be reached)"
            ),
            ..Default::default()
        })
    })
    .await;
    if let Err(e) = r {
        tracing::error!(notice = id, error = %e, "cannot record the notice as undeliverable");
    }
}

/// Records an attempt in the store; false if that failed (logged).
async fn mark(store: &StoreHandle, id: i64, sent: bool, error: Option<String>) -> bool {
    match blocking(store, move |s| s.notice_mark(id, sent, error.as_deref())).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(notice = id, error = %e, "cannot record the notice's delivery");
            false
        }
    }
}

/// Runs a store call on the blocking pool (SQLite and the store mutex may wait).
async fn blocking<T: Send + 'static>(
    store: &StoreHandle,
    f: impl FnOnce(&mut dyn crate::store::Store) -> crate::store::StoreResult<T> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(store.run(f).await??)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(id: i64, to: &str, attempts: i64) -> NoticeRecord {
        NoticeRecord {
            id,
            contract_id: 1,
            contract: "acme".into(),
            to_email: to.into(),
            kind: "suspension".into(),
            subject: "mcvpn: contract acme suspended".into(),
            body: "Dear Ms Admin,\n\nThe contract was suspended: unpaid invoice.\n".into(),
            created_at: 1_800_000_000,
            sent_at: None,
            attempts,
            last_error: None,
            failed_at: None,
        }
    }

    #[test]
    fn urls() {
        let c = SmtpConfig::parse("smtp://mail.example.com").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.security, c.user.as_deref()),
            ("mail.example.com", 25, Security::Plain, None)
        );
        let c = SmtpConfig::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.security),
            ("127.0.0.1", 2525, Security::Plain)
        );
        let c = SmtpConfig::parse("smtp://[::1]:2525/").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 2525));
        assert_eq!(c.to_string(), "smtp://[::1]:2525 (no TLS)");

        // A user means STARTTLS unless told otherwise; the user name is decoded; the
        // password comes from elsewhere.
        let c = SmtpConfig::parse("smtp://noc%40acme.example@mail.example.com:587").unwrap();
        assert_eq!(c.security, Security::StartTlsRequired);
        assert_eq!(c.port, 587);
        assert_eq!(c.user.as_deref(), Some("noc@acme.example"));
        assert!(c.credentials().unwrap_err().contains("--smtp-password-file"));
        let c = c.with_password("p:ss".into()).unwrap();
        assert!(c.credentials().unwrap().is_some());
        assert_eq!(
            c.to_string(),
            "smtp://noc@acme.example@mail.example.com:587 (STARTTLS required)"
        );
        assert!(!format!("{c:?}").contains("p:ss"), "Debug must not show the password");
        let c = SmtpConfig::parse("smtp://u@localhost:25?tls=none").unwrap();
        assert_eq!(c.security, Security::Plain);
        let c = SmtpConfig::parse("smtp://mail.example.com:587?tls=opportunistic").unwrap();
        assert_eq!(c.security, Security::StartTlsOpportunistic);
        let c = SmtpConfig::parse("smtp://mail.example.com:587?tls=required").unwrap();
        assert_eq!(c.security, Security::StartTlsRequired);

        let c = SmtpConfig::parse("smtps://u@mail.example.com").unwrap();
        assert_eq!((c.port, c.security), (465, Security::Tls));
        let c = SmtpConfig::parse("smtps://mail.example.com:10465").unwrap();
        assert_eq!((c.port, c.security, c.user), (10465, Security::Tls, None));
        let err = SmtpConfig::parse("smtps://mail.example.com")
            .unwrap()
            .with_password("pw".into());
        assert!(err.unwrap_err().contains("names no user"));
    }

    #[test]
    fn bad_urls_say_why() {
        let err = |s: &str| SmtpConfig::parse(s).unwrap_err();
        assert!(err("mail.example.com:25").contains("write smtp://mail.example.com:25"));
        assert!(err("").contains("empty SMTP URL"));
        assert!(err("http://mail.example.com").contains("unsupported scheme \"http\""));
        assert!(err("smtp://").contains("no mail server host"));
        assert!(err("smtp://:25").contains("empty host"));
        assert!(err("smtp://mail.example.com:99999").contains("not a URL"));
        assert!(err("smtp://mail.example.com:0").contains("port 0"));
        // Review C13: a password in the URL shows in `ps`; refused, saying what to use.
        for url in [
            "smtp://user:pw@mail.example.com",
            "smtp://:pw@mail.example.com",
            "smtps://u:p@mail.example.com",
        ] {
            let e = err(url);
            assert!(
                e.contains("--smtp-password-file") && e.contains("MCVPN_SMTP_PASSWORD"),
                "{e}"
            );
            assert!(
                !e.contains(":pw@") && !e.contains(":p@"),
                "the error repeats the password: {e}"
            );
        }
        assert!(err("smtp://mail.example.com?tls=maybe").contains("tls=\"maybe\""));
        assert!(err("smtp://mail.example.com?tls=none&tls=required").contains("twice"));
        assert!(err("smtp://mail.example.com?starttls=1").contains("unknown parameter \"starttls\""));
        assert!(err("smtps://mail.example.com?tls=none").contains("always TLS"));
        assert!(err("smtp://mail.example.com/relay").contains("unexpected path"));
        assert!(err("smtp://mail.example.com#x").contains("fragment"));
        // No error repeats a password, even for a URL that does not parse.
        for url in [
            "smtp://u:s3cret@mail.example.com:99999",
            "u:s3cret@mail.example.com",
            "smtp://u:s3cret@",
        ] {
            let e = err(url);
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn sender_addresses() {
        assert_eq!(
            parse_from("mcvpn@vpn.example.com").unwrap().email.to_string(),
            "mcvpn@vpn.example.com"
        );
        assert_eq!(
            parse_from("mcvpn hub <noc@example.com>").unwrap().name.as_deref(),
            Some("mcvpn hub")
        );
        assert!(parse_from("not an address")
            .unwrap_err()
            .contains("not an e-mail address"));
        assert!(parse_from(&default_from()).is_ok() || crate::util::hostname().contains('_'));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let d: Vec<i64> = (0..=10).map(retry_delay).collect();
        assert_eq!(d, [5, 5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(retry_delay(i64::MAX), RETRY_CAP);
    }

    #[test]
    fn notice_backoff() {
        let mut s = Scheduler::default();
        let t = 1_000;
        let n = notice(1, "it@acme.example", 0);
        assert!(matches!(s.plan(&n, t), Plan::Send(m) if m.email.to_string() == "it@acme.example"));
        // A refused recipient: this notice waits, the server stays available for others.
        assert!(!s.failed(1, 1, &Failure::Message("550 no such user".into()), t));
        assert!(s.server_ready(t));
        assert_eq!(s.plan(&notice(1, "it@acme.example", 1), t + 4), Plan::Wait);
        assert!(matches!(s.plan(&notice(2, "it@acme.example", 0), t), Plan::Send(_)));
        assert!(matches!(s.plan(&notice(1, "it@acme.example", 1), t + 5), Plan::Send(_)));
        // Its third failure in a row: 20 s.
        s.failed(1, 3, &Failure::Message("452 mailbox full".into()), t + 5);
        assert_eq!(s.plan(&notice(1, "it@acme.example", 3), t + 24), Plan::Wait);
        assert!(matches!(
            s.plan(&notice(1, "it@acme.example", 3), t + 25),
            Plan::Send(_)
        ));
        s.sent(1);
        assert!(matches!(
            s.plan(&notice(1, "it@acme.example", 4), t + 25),
            Plan::Send(_)
        ));
    }

    #[test]
    fn a_dead_server_is_left_alone() {
        let mut s = Scheduler::default();
        let t = 1_000;
        let refused = Failure::Server("connection refused".into());
        assert!(s.failed(1, 1, &refused, t), "a server failure ends the pass");
        assert!(!s.server_ready(t + 4));
        assert!(s.server_ready(t + 5));
        s.failed(2, 1, &refused, t + 5);
        assert!(!s.server_ready(t + 14));
        assert!(s.server_ready(t + 15));
        for i in 0..20 {
            s.failed(3, 1, &refused, t + i);
        }
        assert!(!s.server_ready(t + 19 + RETRY_CAP - 1));
        assert!(s.server_ready(t + 19 + RETRY_CAP));
        // A message-level answer shows the server is up again; a success resets it all.
        s.failed(4, 1, &Failure::Message("550 no".into()), t + 700);
        assert_eq!(s.server_failures, 0);
        s.sent(3);
        assert!(s.server_ready(0));
    }

    #[test]
    fn undeliverable_addresses_are_reported_once() {
        let s = Scheduler::default();
        assert_eq!(s.plan(&notice(1, "", 0), 0), Plan::GiveUp(NO_RECIPIENT.into()));
        assert_eq!(s.plan(&notice(1, "  ", 0), 0), Plan::GiveUp(NO_RECIPIENT.into()));
        assert_eq!(s.plan(&notice(1, "", 1), 0), Plan::Wait);
        assert_eq!(s.plan(&notice(1, "", 1), i64::MAX), Plan::Wait);
        assert!(matches!(s.plan(&notice(2, "it at acme", 0), 0), Plan::GiveUp(r) if r.contains("not an address")));
        assert_eq!(s.plan(&notice(2, "it at acme", 1), 0), Plan::Wait);
        // After a hub restart (empty memory) a notice that failed before is tried at once.
        assert!(matches!(s.plan(&notice(3, "it@acme.example", 7), 0), Plan::Send(_)));
    }

    #[test]
    fn reply_codes() {
        let server = |c| matches!(Failure::from_reply(c, String::new()), Failure::Server(_));
        let permanent = |c| matches!(Failure::from_reply(c, String::new()), Failure::Permanent(_));
        assert!(server(None));
        assert!(server(Some(421)));
        assert!(server(Some(535)));
        assert!(!server(Some(550)));
        assert!(!server(Some(452)));
        // 5xx: refused for good (no such user, relaying denied, rejected).
        for c in [550, 551, 552, 553, 554, 500, 501] {
            assert!(permanent(Some(c)), "{c}");
        }
        // Temporary, or our own login: not permanent.
        for c in [
            None,
            Some(421),
            Some(450),
            Some(451),
            Some(452),
            Some(454),
            Some(530),
            Some(535),
        ] {
            assert!(!permanent(c), "{c:?}");
        }
    }

    #[test]
    fn a_permanent_refusal_is_not_retried() {
        let mut s = Scheduler::default();
        let t = 1_000;
        assert!(matches!(s.plan(&notice(1, "gone@acme.example", 0), t), Plan::Send(_)));
        let refused = Failure::from_reply(Some(550), "550 5.1.1 no such user".into());
        assert!(!s.failed(1, 1, &refused, t), "the server answered: the pass goes on");
        assert!(s.server_ready(t));
        assert!(!s.notice_not_before.contains_key(&1), "no retry is scheduled");
    }

    #[test]
    fn retain_forgets_sent_notices() {
        let mut s = Scheduler::default();
        s.failed(1, 1, &Failure::Message("x".into()), 0);
        s.failed(2, 1, &Failure::Message("x".into()), 0);
        s.retain(&[notice(2, "a@b.example", 1)]);
        assert_eq!(s.notice_not_before.keys().copied().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn the_email() {
        let from = parse_from("mcvpn@vpn.example.com").unwrap();
        let m = message(
            &notice(7, "it@acme.example", 0),
            &from,
            "it@acme.example".parse().unwrap(),
        )
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("To: it@acme.example"), "{text}");
        assert!(text.contains("From: mcvpn@vpn.example.com"), "{text}");
        assert!(text.contains("Subject: mcvpn: contract acme suspended"), "{text}");
        assert!(
            text.contains("Message-ID: <mcvpn-notice-7-1800000000@vpn.example.com>"),
            "{text}"
        );
        assert!(text.contains("unpaid invoice"), "{text}");
        let env = m.envelope();
        assert_eq!(env.to()[0].to_string(), "it@acme.example");
    }
}
