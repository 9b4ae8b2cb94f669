//! Console logins: who is logged in, until when, and the token their forms carry.
//!
//! Kept in the hub's memory (a restart logs everyone out, which for an administrators'
//! console is acceptable): a random 256-bit id in the cookie, a random 256-bit CSRF token
//! per login, 30 minutes idle and 12 hours absolute expiry ([`SessionLimits`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::admin::api::TotpSecret;
use crate::admin::Scope;
use crate::store::{AccountRecord, ContractRecord};

/// How long a console login lasts, and how many may exist at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ended after this long without a request.
    pub idle: Duration,
    /// Ended this long after the login, however busy.
    pub absolute: Duration,
    /// Logins kept at once; the oldest goes when a new one would exceed it. Logins
    /// waiting for a one-time code are capped the same way, apart.
    pub max_sessions: usize,
    /// How long a password-accepted login waits for its one-time code.
    pub code_wait: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max_sessions: 10_000,
            code_wait: Duration::from_secs(5 * 60),
        }
    }
}

/// What a logged-in person may do: decided once, at login ([`Role::scope`]), so pages
/// never reason about permissions themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A contract's account administrator (アカウント管理者): their contract only.
    AccountAdmin { contract_id: i64, contract: String },
    /// An operator-side login with the operator's rights (運用者, `mcvpn admin operator
    /// add NAME`): every contract. Only an operator login makes it, never an account's.
    Operator { name: String },
}

impl Role {
    pub fn scope(&self) -> Scope {
        match self {
            Role::AccountAdmin { contract_id, contract } => Scope::Contract {
                id: *contract_id,
                name: contract.clone(),
            },
            Role::Operator { .. } => Scope::Operator,
        }
    }

    /// Who the audit log names, as the control channel names the same login
    /// (src/hub/admin.rs): `admin:ACCOUNT` or `operator:NAME`.
    pub fn actor(&self, account: &str) -> String {
        match self {
            Role::AccountAdmin { .. } => format!("admin:{account}"),
            Role::Operator { name } => format!("operator:{name}"),
        }
    }

    /// Which console pages the login works in (its navigation and start page). What it
    /// may do stays with [`Role::scope`] and the admin API: this only keeps a login on
    /// pages made for it.
    pub fn pages(&self) -> Pages {
        match self {
            Role::AccountAdmin { .. } => Pages::Contract,
            Role::Operator { .. } => Pages::Operator,
        }
    }
}

/// The console's two sets of pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// The account administrator's: dashboard, accounts, sessions, history, notices.
    Contract,
    /// The operator's: contracts, invoices and compensation, outages, tariff.
    Operator,
}

impl Pages {
    /// The page a login starts on, and where the other set's pages send it.
    pub fn home(self) -> &'static str {
        match self {
            Pages::Contract => "/console/",
            Pages::Operator => "/console/contracts",
        }
    }
}

/// One-time codes a login waiting for one may try before it is dropped (the password
/// must be given again); the password limiter counts them as well.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

/// One login.
#[derive(Debug, Clone)]
pub struct Login {
    pub account: String,
    pub role: Role,
    pub csrf: String,
    /// A sentence for the next page (what the last action did).
    pub flash: Option<String>,
    /// A second-factor secret the TOTP page made and showed, until a code confirms it
    /// (then the store has it) or the login ends. Kept here, not stored, so that an
    /// abandoned setup leaves nothing behind.
    pub totp_setup: Option<TotpSecret>,
    started: Instant,
    last_seen: Instant,
}

/// A login whose password was right, waiting for the one-time code of the account's
/// second factor. Not a login: it opens no page.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub account: AccountRecord,
    pub contract: ContractRecord,
    started: Instant,
    attempts: u32,
}

/// The console's logins, by cookie id.
pub struct Sessions {
    limits: SessionLimits,
    table: Mutex<HashMap<String, Login>>,
    /// Logins waiting for a one-time code, by their own cookie id.
    pending: Mutex<HashMap<String, PendingLogin>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Sessions {
        Sessions {
            limits,
            table: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a login; returns the cookie id.
    pub fn start(&self, account: String, role: Role) -> String {
        let now = Instant::now();
        let id = random_token();
        let mut table = self.table.lock();
        table.retain(|_, l| self.alive(l, now));
        if table.len() >= self.limits.max_sessions {
            if let Some(oldest) = table.iter().min_by_key(|(_, l)| l.started).map(|(k, _)| k.clone()) {
                table.remove(&oldest);
            }
        }
        table.insert(
            id.clone(),
            Login {
                account,
                role,
                csrf: random_token(),
                flash: None,
                totp_setup: None,
                started: now,
                last_seen: now,
            },
        );
        id
    }

    fn alive(&self, l: &Login, now: Instant) -> bool {
        now.duration_since(l.last_seen) < self.limits.idle && now.duration_since(l.started) < self.limits.absolute
    }

    /// The login behind a cookie id, if it has not expired; counts as activity. Takes the
    /// flash message (shown once).
    pub fn touch(&self, id: &str) -> Option<Login> {
        let now = Instant::now();
        let mut table = self.table.lock();
        let alive = table.get(id).map(|l| self.alive(l, now))?;
        if !alive {
            table.remove(id);
            return None;
        }
        let l = table.get_mut(id)?;
        l.last_seen = now;
        let seen = l.clone();
        l.flash = None;
        Some(seen)
    }

    pub fn set_flash(&self, id: &str, text: String) {
        if let Some(l) = self.table.lock().get_mut(id) {
            l.flash = Some(text);
        }
    }

    pub fn end(&self, id: &str) {
        self.table.lock().remove(id);
    }

    /// Keeps (or with `None` forgets) the second-factor secret being set up.
    pub fn set_totp_setup(&self, id: &str, secret: Option<TotpSecret>) {
        if let Some(l) = self.table.lock().get_mut(id) {
            l.totp_setup = secret;
        }
    }

    /// Starts waiting for the one-time code of a login whose password was right; returns
    /// its cookie id.
    pub fn start_pending(&self, account: AccountRecord, contract: ContractRecord) -> String {
        let now = Instant::now();
        let id = random_token();
        let mut pending = self.pending.lock();
        pending.retain(|_, p| now.duration_since(p.started) < self.limits.code_wait);
        if pending.len() >= self.limits.max_sessions {
            if let Some(oldest) = pending.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| k.clone()) {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            id.clone(),
            PendingLogin {
                account,
                contract,
                started: now,
                attempts: 0,
            },
        );
        id
    }

    /// The waiting login behind a cookie id, if it has not expired.
    pub fn pending(&self, id: &str) -> Option<PendingLogin> {
        let now = Instant::now();
        let mut pending = self.pending.lock();
        match pending.get(id) {
            Some(p) if now.duration_since(p.started) < self.limits.code_wait => Some(p.clone()),
            Some(_) => {
                pending.remove(id);
                None
            }
            None => None,
        }
    }

    /// Counts one code attempt of a waiting login and returns it, or `None` if it has
    /// expired or used up its [`MAX_CODE_ATTEMPTS`] (then it is gone: the password must
    /// be given again).
    pub fn code_attempt(&self, id: &str) -> Option<PendingLogin> {
        let now = Instant::now();
        let mut pending = self.pending.lock();
        let p = pending.get_mut(id)?;
        if now.duration_since(p.started) >= self.limits.code_wait || p.attempts >= MAX_CODE_ATTEMPTS {
            pending.remove(id);
            return None;
        }
        p.attempts += 1;
        let seen = p.clone();
        if p.attempts >= MAX_CODE_ATTEMPTS {
            // The last attempt: whatever it gives, no further one.
            pending.remove(id);
        }
        Some(seen)
    }

    /// Ends a waiting login (its code was accepted).
    pub fn end_pending(&self, id: &str) {
        self.pending.lock().remove(id);
    }
}

/// Whether a form's token is the login's (constant time: the token is a secret).
pub fn csrf_matches(login: &Login, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| p.len() == login.csrf.len() && bool::from(p.as_bytes().ct_eq(login.csrf.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Role {
        Role::AccountAdmin {
            contract_id: 1,
            contract: "acme".into(),
        }
    }

    #[test]
    fn idle_and_absolute_expiry_end_a_login() {
        let s = Sessions::new(SessionLimits {
            idle: Duration::from_millis(50),
            absolute: Duration::from_millis(200),
            max_sessions: 10,
            ..Default::default()
        });
        let id = s.start("alice".into(), admin());
        assert!(s.touch(&id).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.touch(&id).is_none(), "idle too long");
        let id = s.start("alice".into(), admin());
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(40));
            let _ = s.touch(&id);
        }
        assert!(s.touch(&id).is_none(), "past the absolute limit although busy");
        assert!(s.touch("nonsense").is_none());
    }

    #[test]
    fn the_oldest_login_goes_at_the_cap_and_tokens_differ() {
        let s = Sessions::new(SessionLimits {
            max_sessions: 2,
            ..Default::default()
        });
        let a = s.start("a".into(), admin());
        let b = s.start("b".into(), admin());
        let c = s.start("c".into(), admin());
        assert!(s.touch(&a).is_none());
        let (lb, lc) = (s.touch(&b).unwrap(), s.touch(&c).unwrap());
        assert_ne!(lb.csrf, lc.csrf);
        assert_eq!(a.len(), 64);
        assert!(csrf_matches(&lb, Some(&lb.csrf)));
        assert!(!csrf_matches(&lb, Some(&lc.csrf)));
        assert!(!csrf_matches(&lb, None));
    }

    fn record() -> (AccountRecord, ContractRecord) {
        let contract = ContractRecord {
            id: 1,
            name: "acme".into(),
            kind: crate::contract::ContractKind::Corporation,
            state: crate::store::ContractState::Active,
            state_reason: None,
            address: String::new(),
            phone: String::new(),
            department: String::new(),
            sales_agent: None,
            admin_name: String::new(),
            admin_email: String::new(),
            admin_account_id: Some(7),
            terminate_at: None,
            created_at: 0,
            ended_on: None,
            terminate_on_notice: false,
            device_limit: 10,
        };
        let account = AccountRecord {
            id: 7,
            username: "alice".into(),
            contract_id: 1,
            contract: "acme".into(),
            state: crate::store::AccountState::Active,
            contract_state: crate::store::ContractState::Active,
            password_hash: String::new(),
            device_binding: false,
            created_at: 0,
            contract_start: None,
            totp: true,
        };
        (account, contract)
    }

    #[test]
    fn a_login_waiting_for_its_code_gets_five_tries_and_five_minutes() {
        let s = Sessions::new(SessionLimits::default());
        let (a, c) = record();
        let id = s.start_pending(a.clone(), c.clone());
        assert!(s.touch(&id).is_none(), "waiting for a code is no login");
        for n in 1..=MAX_CODE_ATTEMPTS {
            assert!(s.code_attempt(&id).is_some(), "try {n}");
        }
        assert!(s.pending(&id).is_none(), "gone after the last try");
        assert!(s.code_attempt(&id).is_none());
        assert!(s.code_attempt("nonsense").is_none());

        let s = Sessions::new(SessionLimits {
            code_wait: Duration::from_millis(50),
            ..Default::default()
        });
        let id = s.start_pending(a, c);
        assert_eq!(s.pending(&id).unwrap().account.username, "alice");
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.code_attempt(&id).is_none(), "expired");
        assert!(s.pending(&id).is_none());
    }
}
