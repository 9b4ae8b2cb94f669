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

use crate::admin::Scope;

/// How long a console login lasts, and how many may exist at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Ended after this long without a request.
    pub idle: Duration,
    /// Ended this long after the login, however busy.
    pub absolute: Duration,
    /// Logins kept at once; the oldest goes when a new one would exceed it.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max_sessions: 10_000,
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

/// One login.
#[derive(Debug, Clone)]
pub struct Login {
    pub account: String,
    pub role: Role,
    pub csrf: String,
    /// A sentence for the next page (what the last action did).
    pub flash: Option<String>,
    started: Instant,
    last_seen: Instant,
}

/// The console's logins, by cookie id.
pub struct Sessions {
    limits: SessionLimits,
    table: Mutex<HashMap<String, Login>>,
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
}
