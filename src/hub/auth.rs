//! Login decisions: who is this node, may it start a session, and as which device.
//!
//! Runs on a blocking thread (argon2 is deliberately slow) and takes the store lock
//! only around store calls, never around password verification.

use std::net::SocketAddr;
use std::sync::Mutex;

use blake2::{Blake2s256, Digest};
use rand::RngCore;

use crate::password;
use crate::proto::control::{Credential, Key32, RefuseReason, Role};
use crate::store::{
    now, AccountRecord, AccountState, AuditEntry, ContractRecord, ContractState, DeviceRecord, OverlayNet, Store,
    StoreError,
};

/// How long a resume token lets a client reconnect without its password. Each use
/// extends it, so a laptop that stays up keeps its session across hub restarts.
pub const RESUME_LIFETIME_S: i64 = 7 * 24 * 3600;

pub type SharedStore = Mutex<Box<dyn Store>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefuseReason,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl Refusal {
    pub fn new(reason: RefuseReason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
            retry_after_s: None,
        }
    }

    fn wrong_credentials() -> Refusal {
        Refusal::new(RefuseReason::WrongCredentials, "account or password is wrong")
    }

    fn internal(e: StoreError) -> Refusal {
        tracing::error!(error = %e, "store failure during login");
        Refusal::new(RefuseReason::Internal, "the hub could not read its account store")
    }
}

/// What a login asked for, as the hub received it.
pub struct LoginRequest<'a> {
    pub remote_key: &'a Key32,
    pub source: SocketAddr,
    pub role: Role,
    pub account: Option<&'a str>,
    pub credential: &'a Credential,
    pub hostname: &'a str,
    pub enroll: bool,
}

#[derive(Debug)]
pub enum Outcome {
    /// Start a session as `device`. `resume_token` is handed to the client.
    Session {
        device: DeviceRecord,
        account: AccountRecord,
        resume_token: Option<String>,
    },
    /// A target was enrolled (or was already, under the same account).
    Enrolled { device: DeviceRecord },
}

/// Refusal for an account or contract that may not be used right now, if any.
/// Only called after the credential was proven, so the reason leaks nothing.
pub fn state_refusal(account: &AccountRecord) -> Option<Refusal> {
    let contract = &account.contract;
    let not_started = account
        .contract_start
        .and_then(|start| crate::contract::not_started(contract, start, crate::store::today()));
    let (reason, msg) = match account.contract_state {
        ContractState::Active if not_started.is_some() => {
            (RefuseReason::ContractSuspended, not_started.unwrap_or_default())
        }
        ContractState::Active => match account.state {
            AccountState::Active => return None,
            AccountState::Locked => (
                RefuseReason::AccountLocked,
                format!("account {} is locked", account.username),
            ),
        },
        ContractState::Suspended => (
            RefuseReason::ContractSuspended,
            format!("the contract {contract} is suspended"),
        ),
        ContractState::Terminated => (
            RefuseReason::ContractTerminated,
            format!("the contract {contract} was terminated"),
        ),
        ContractState::Cancelled => (
            RefuseReason::ContractCancelled,
            format!("the contract {contract} was cancelled"),
        ),
    };
    Some(Refusal::new(reason, msg))
}

fn token_hash(token: &str) -> Vec<u8> {
    Blake2s256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Decides a login. Audits every refusal and acceptance.
pub fn authenticate(store: &SharedStore, req: &LoginRequest, overlay: OverlayNet) -> Result<Outcome, Refusal> {
    let result = decide(store, req, overlay);
    let source = req.source.to_string();
    let (action, detail, contract_id, account) = match &result {
        Ok(Outcome::Session { account, device, .. }) => (
            "login.accepted",
            format!("{} {} via {}", req.role.as_str(), device.name, req.credential.kind()),
            Some(account.contract_id),
            Some(account.username.clone()),
        ),
        Ok(Outcome::Enrolled { device }) => (
            "target.enrolled",
            format!("target {} at {}", device.name, device.overlay_ip),
            None,
            Some(device.account.clone()),
        ),
        Err(r) => (
            "login.refused",
            format!(
                "{}: {} ({:?}, via {})",
                req.role.as_str(),
                r.message,
                r.reason,
                req.credential.kind()
            ),
            None,
            req.account.map(str::to_string),
        ),
    };
    let mut s = store.lock().unwrap();
    let contract_id = contract_id.or_else(|| {
        account
            .as_deref()
            .and_then(|a| s.account_by_name(a).ok().flatten())
            .map(|a| a.contract_id)
    });
    let _ = s.audit(&AuditEntry {
        actor: account.as_deref().unwrap_or("unknown"),
        action,
        contract_id,
        account: account.as_deref(),
        source: Some(&source),
        detail: &detail,
    });
    result
}

fn decide(store: &SharedStore, req: &LoginRequest, overlay: OverlayNet) -> Result<Outcome, Refusal> {
    match (req.role, req.credential) {
        (Role::Target, Credential::DeviceKey) => {
            let device = store
                .lock()
                .unwrap()
                .device_by_key(req.remote_key, Role::Target, None)
                .map_err(Refusal::internal)?
                .ok_or_else(|| Refusal::new(RefuseReason::NotEnrolled, "this machine is not enrolled as a target"))?;
            let account = store
                .lock()
                .unwrap()
                .account_by_id(device.account_id)
                .map_err(Refusal::internal)?;
            if let Some(r) = state_refusal(&account) {
                return Err(r);
            }
            Ok(Outcome::Session {
                device,
                account,
                resume_token: None,
            })
        }
        (role, Credential::Password { password }) => {
            let account = verify_password(store, req.account, password)?;
            if let Some(r) = state_refusal(&account) {
                return Err(r);
            }
            match role {
                Role::Target if req.enroll => enroll_target(store, req, &account, overlay),
                Role::Target => Err(Refusal::new(
                    RefuseReason::BadRequest,
                    "a target logs in with its device key; enrol it first",
                )),
                Role::Client => {
                    let device = client_device(store, req, &account, overlay)?;
                    let token = new_token();
                    store
                        .lock()
                        .unwrap()
                        .device_set_resume(device.id, Some(&token_hash(&token)), Some(now() + RESUME_LIFETIME_S))
                        .map_err(Refusal::internal)?;
                    Ok(Outcome::Session {
                        device,
                        account,
                        resume_token: Some(token),
                    })
                }
            }
        }
        (Role::Client, Credential::Resume { token }) => {
            let name = req.account.ok_or_else(Refusal::wrong_credentials)?;
            let mut s = store.lock().unwrap();
            let account = s
                .account_by_name(name)
                .map_err(Refusal::internal)?
                .ok_or_else(Refusal::wrong_credentials)?;
            let device = s
                .device_by_key(req.remote_key, Role::Client, Some(account.id))
                .map_err(Refusal::internal)?
                .ok_or_else(|| Refusal::new(RefuseReason::ResumeExpired, "this device has no session to resume"))?;
            let valid = device.resume_hash.as_deref() == Some(&token_hash(token)[..])
                && device.resume_expires.is_some_and(|e| e > now());
            if !valid {
                return Err(Refusal::new(
                    RefuseReason::ResumeExpired,
                    "the remembered login has expired",
                ));
            }
            if let Some(r) = state_refusal(&account) {
                return Err(r);
            }
            s.device_set_resume(
                device.id,
                device.resume_hash.as_deref(),
                Some(now() + RESUME_LIFETIME_S),
            )
            .map_err(Refusal::internal)?;
            Ok(Outcome::Session {
                device,
                account,
                resume_token: Some(token.clone()),
            })
        }
        (role, cred) => Err(Refusal::new(
            RefuseReason::BadRequest,
            format!("a {} cannot log in with a {} credential", role.as_str(), cred.kind()),
        )),
    }
}

/// Authenticates a contract's account administrator (`mcvpn admin --hub --as`).
pub fn authenticate_admin(
    store: &SharedStore,
    account: &str,
    password: &str,
    source: &str,
) -> Result<(AccountRecord, ContractRecord), Refusal> {
    let result = verify_password(store, Some(account), password).and_then(|a| {
        if let Some(r) = state_refusal(&a) {
            return Err(r);
        }
        let c = store
            .lock()
            .unwrap()
            .contract_by_id(a.contract_id)
            .map_err(Refusal::internal)?;
        if c.admin_account_id != Some(a.id) {
            return Err(Refusal::new(
                RefuseReason::NotAdministrator,
                format!("account {account} is not the administrator of contract {}", c.name),
            ));
        }
        Ok((a, c))
    });
    let (action, detail) = match &result {
        Ok((_, c)) => ("admin.login", format!("administrator of {}", c.name)),
        Err(r) => ("admin.login-refused", r.message.clone()),
    };
    let mut s = store.lock().unwrap();
    let contract_id = s.account_by_name(account).ok().flatten().map(|a| a.contract_id);
    let _ = s.audit(&AuditEntry {
        actor: account,
        action,
        contract_id,
        account: Some(account),
        source: Some(source),
        detail: &detail,
    });
    result
}

/// A user's own password change (art. 10): the old password, then the policy.
pub fn change_password(
    store: &SharedStore,
    account: &str,
    old: &str,
    new: &str,
    source: &str,
) -> Result<AccountRecord, Refusal> {
    let a = verify_password(store, Some(account), old)?;
    password::check_policy(account, new).map_err(|m| Refusal::new(RefuseReason::BadRequest, m))?;
    let mut s = store.lock().unwrap();
    s.account_set_password(a.id, &password::hash(new))
        .map_err(Refusal::internal)?;
    let _ = s.audit(&AuditEntry {
        actor: account,
        action: "account.password-change",
        contract_id: Some(a.contract_id),
        account: Some(account),
        source: Some(source),
        detail: "changed by the user",
    });
    Ok(a)
}

/// Verifies an account password. Unknown accounts cost the same argon2 work and get
/// the same answer as wrong passwords.
fn verify_password(store: &SharedStore, account: Option<&str>, password: &str) -> Result<AccountRecord, Refusal> {
    let record = match account {
        Some(name) => store.lock().unwrap().account_by_name(name).map_err(Refusal::internal)?,
        None => None,
    };
    let hash = record
        .as_ref()
        .map(|a| a.password_hash.as_str())
        .unwrap_or(password::dummy_hash());
    let ok = password::verify(password, hash);
    match record {
        Some(a) if ok => Ok(a),
        _ => Err(Refusal::wrong_credentials()),
    }
}

/// The client device of this login: the registered one, or a new registration unless
/// the account only allows registered devices.
fn client_device(
    store: &SharedStore,
    req: &LoginRequest,
    account: &AccountRecord,
    overlay: OverlayNet,
) -> Result<DeviceRecord, Refusal> {
    let mut s = store.lock().unwrap();
    if let Some(d) = s
        .device_by_key(req.remote_key, Role::Client, Some(account.id))
        .map_err(Refusal::internal)?
    {
        return Ok(d);
    }
    if account.device_binding {
        // Bound accounts log in only from devices an administrator registered.
        return Err(Refusal::new(
            RefuseReason::DeviceNotAllowed,
            format!("this device is not registered for account {}", account.username),
        ));
    }
    let device = s
        .device_register(account.id, Role::Client, req.remote_key, req.hostname, overlay)
        .map_err(|e| match e {
            StoreError::Refused(m) => Refusal::new(RefuseReason::Internal, m),
            e => Refusal::internal(e),
        })?;
    let _ = s.audit(&AuditEntry {
        actor: &account.username,
        action: "device.registered",
        contract_id: Some(account.contract_id),
        account: Some(&account.username),
        source: Some(&req.source.to_string()),
        detail: &format!("client {} at {}", device.name, device.overlay_ip),
    });
    Ok(device)
}

fn enroll_target(
    store: &SharedStore,
    req: &LoginRequest,
    account: &AccountRecord,
    overlay: OverlayNet,
) -> Result<Outcome, Refusal> {
    let mut s = store.lock().unwrap();
    if let Some(existing) = s
        .device_by_key(req.remote_key, Role::Target, None)
        .map_err(Refusal::internal)?
    {
        if existing.account_id == account.id {
            return Ok(Outcome::Enrolled { device: existing });
        }
        return Err(Refusal::new(
            RefuseReason::AlreadyEnrolled,
            "this machine is already enrolled under another account",
        ));
    }
    let device = s
        .device_register(account.id, Role::Target, req.remote_key, req.hostname, overlay)
        .map_err(|e| match e {
            StoreError::Refused(m) | StoreError::Conflict(m) => Refusal::new(RefuseReason::AlreadyEnrolled, m),
            e => Refusal::internal(e),
        })?;
    Ok(Outcome::Enrolled { device })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;
    use crate::store::SqliteStore;

    fn store() -> SharedStore {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.contract_add(&crate::store::NewContract::simple("acme", 10)).unwrap();
        s.account_add("acme", "alice", &password::hash("alice-password"))
            .unwrap();
        Mutex::new(Box::new(s))
    }

    fn req<'a>(
        key: &'a Key32,
        role: Role,
        account: Option<&'a str>,
        cred: &'a Credential,
        enroll: bool,
    ) -> LoginRequest<'a> {
        LoginRequest {
            remote_key: key,
            source: "192.0.2.1:4000".parse().unwrap(),
            role,
            account,
            credential: cred,
            hostname: "host",
            enroll,
        }
    }

    fn pw(p: &str) -> Credential {
        Credential::Password { password: p.into() }
    }

    #[test]
    fn unknown_account_and_wrong_password_look_the_same() {
        let s = store();
        let k = Key32([1; 32]);
        let a = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("nope"), false),
            OverlayNet::default(),
        )
        .unwrap_err();
        let b = authenticate(
            &s,
            &req(&k, Role::Client, Some("mallory"), &pw("nope"), false),
            OverlayNet::default(),
        )
        .unwrap_err();
        assert_eq!(a, b);
        assert_eq!(a.reason, RefuseReason::WrongCredentials);
        let log = s.lock().unwrap().audit_log(None, 10).unwrap();
        assert_eq!(log.iter().filter(|e| e.action == "login.refused").count(), 2);
    }

    #[test]
    fn client_login_then_resume_keeps_the_device() {
        let s = store();
        let k = Key32([1; 32]);
        let Outcome::Session {
            device, resume_token, ..
        } = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .unwrap()
        else {
            panic!("expected a session")
        };
        let token = resume_token.unwrap();
        let cred = Credential::Resume { token };
        let Outcome::Session { device: again, .. } = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &cred, false),
            OverlayNet::default(),
        )
        .unwrap() else {
            panic!("expected a session")
        };
        assert_eq!(device.id, again.id);
        let bad = Credential::Resume { token: "00".into() };
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &bad, false),
            OverlayNet::default(),
        )
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::ResumeExpired);
        // Another device key cannot use alice's token.
        let other = Key32([2; 32]);
        assert!(authenticate(
            &s,
            &req(&other, Role::Client, Some("alice"), &cred, false),
            OverlayNet::default()
        )
        .is_err());
    }

    #[test]
    fn target_enrols_once_then_logs_in_by_key_only() {
        let s = store();
        let k = Key32([5; 32]);
        let r = authenticate(
            &s,
            &req(&k, Role::Target, None, &Credential::DeviceKey, false),
            OverlayNet::default(),
        )
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::NotEnrolled);
        let Outcome::Enrolled { device } = authenticate(
            &s,
            &req(&k, Role::Target, Some("alice"), &pw("alice-password"), true),
            OverlayNet::default(),
        )
        .unwrap() else {
            panic!("expected enrolment")
        };
        assert!(matches!(
            authenticate(&s, &req(&k, Role::Target, None, &Credential::DeviceKey, false), OverlayNet::default()).unwrap(),
            Outcome::Session { device: d, .. } if d.id == device.id
        ));
    }

    #[test]
    fn bound_accounts_refuse_unregistered_devices() {
        let s = store();
        let alice = s.lock().unwrap().account_by_name("alice").unwrap().unwrap();
        s.lock().unwrap().account_set_binding(alice.id, true).unwrap();
        let k = Key32([9; 32]);
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::DeviceNotAllowed);
        assert!(
            s.lock()
                .unwrap()
                .device_by_key(&k, Role::Client, None)
                .unwrap()
                .is_none(),
            "nothing registered"
        );
        s.lock()
            .unwrap()
            .device_register(alice.id, Role::Client, &k, "usb", OverlayNet::default())
            .unwrap();
        assert!(authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default()
        )
        .is_ok());
    }

    #[test]
    fn only_the_named_administrator_gets_in() {
        let s = store();
        let r = authenticate_admin(&s, "alice", "alice-password", "x").unwrap_err();
        assert_eq!(r.reason, RefuseReason::NotAdministrator);
        let alice = s.lock().unwrap().account_by_name("alice").unwrap().unwrap();
        s.lock()
            .unwrap()
            .contract_set_admin_account(alice.contract_id, Some(alice.id))
            .unwrap();
        assert!(authenticate_admin(&s, "alice", "alice-password", "x").is_ok());
        assert_eq!(
            authenticate_admin(&s, "alice", "wrong", "x").unwrap_err().reason,
            RefuseReason::WrongCredentials
        );
    }

    #[test]
    fn password_change_needs_the_old_one_and_the_policy() {
        let s = store();
        assert_eq!(
            change_password(&s, "alice", "nope", "a fine new passphrase", "x")
                .unwrap_err()
                .reason,
            RefuseReason::WrongCredentials
        );
        assert!(change_password(&s, "alice", "alice-password", "short", "x")
            .unwrap_err()
            .message
            .contains("12"));
        change_password(&s, "alice", "alice-password", "a fine new passphrase", "x").unwrap();
        let k = Key32([1; 32]);
        assert!(authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("a fine new passphrase"), false),
            OverlayNet::default()
        )
        .is_ok());
    }

    #[test]
    fn locked_and_suspended_are_told_after_the_password() {
        let s = store();
        let k = Key32([1; 32]);
        let alice = s.lock().unwrap().account_by_name("alice").unwrap().unwrap();
        s.lock()
            .unwrap()
            .account_set_state(alice.id, AccountState::Locked)
            .unwrap();
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("wrong"), false),
            OverlayNet::default(),
        )
        .unwrap_err();
        assert_eq!(
            r.reason,
            RefuseReason::WrongCredentials,
            "no state leak before the password"
        );
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::AccountLocked);
        s.lock()
            .unwrap()
            .account_set_state(alice.id, AccountState::Active)
            .unwrap();
        s.lock()
            .unwrap()
            .contract_set_state(alice.contract_id, ContractState::Suspended, Some("unpaid"))
            .unwrap();
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::ContractSuspended);
    }
}
