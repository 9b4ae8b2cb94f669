//! Login decisions: who is this node, may it start a session, and as which device.
//!
//! Every store call goes through [`StoreHandle::run`]. Password hashing and checking
//! (argon2, deliberately slow) run on the blocking pool after the store call that read
//! the hash has returned: never while the store, or any other lock, is held.

use std::net::SocketAddr;

use blake2::{Blake2s256, Digest};
use rand::RngCore;

use super::reply::Refusal;
use super::store_handle::StoreHandle;
use crate::password;
use crate::proto::control::{Credential, Key32, RefuseReason, Role};
use crate::store::{
    now, AccountRecord, AccountState, AuditEntry, ContractRecord, ContractState, DeviceRecord, OverlayNet, Store,
    StoreError,
};

/// How long a resume token lets a client reconnect without its password. Each use
/// extends it, so a laptop that stays up keeps its session across hub restarts.
pub const RESUME_LIFETIME_S: i64 = 7 * 24 * 3600;

fn wrong_credentials() -> Refusal {
    Refusal::new(RefuseReason::WrongCredentials, "account or password is wrong")
}

fn store_failure(e: StoreError) -> Refusal {
    tracing::error!(error = %e, "store failure during login");
    store_unreadable()
}

fn store_unreadable() -> Refusal {
    Refusal::new(RefuseReason::Internal, "the hub could not read its account store")
}

/// One store call of a login decision; the store not answering is the hub's fault.
async fn store_call<T: Send + 'static>(
    store: &StoreHandle,
    f: impl FnOnce(&mut dyn Store) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    store.run(f).await.map_err(|_| store_unreadable())?
}

/// Argon2 work, on the blocking pool (it takes tens of milliseconds on purpose) and
/// with no lock held.
async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "password hashing did not complete");
        Refusal::new(RefuseReason::Internal, "the hub could not check the password")
    })
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
pub async fn authenticate(
    store: &StoreHandle,
    req: &LoginRequest<'_>,
    overlay: OverlayNet,
) -> Result<Outcome, Refusal> {
    let result = decide(store, req, overlay).await;
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
    let _ = store
        .run(move |s| {
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
        })
        .await;
    result
}

async fn decide(store: &StoreHandle, req: &LoginRequest<'_>, overlay: OverlayNet) -> Result<Outcome, Refusal> {
    let key = *req.remote_key;
    match (req.role, req.credential) {
        (Role::Target, Credential::DeviceKey) => {
            let (device, account) = store_call(store, move |s| {
                let device = s
                    .device_by_key(&key, Role::Target, None)
                    .map_err(store_failure)?
                    .ok_or_else(|| {
                        Refusal::new(RefuseReason::NotEnrolled, "this machine is not enrolled as a target")
                    })?;
                if is_unproven_target(&device) {
                    return Err(unproven_refusal());
                }
                let account = s.account_by_id(device.account_id).map_err(store_failure)?;
                Ok((device, account))
            })
            .await?;
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
            let account = verify_password(store, req.account, password).await?;
            if let Some(r) = state_refusal(&account) {
                return Err(r);
            }
            let (source, hostname) = (req.source.to_string(), req.hostname.to_string());
            match role {
                Role::Target if req.enroll => {
                    store_call(store, move |s| enroll_target(s, &key, &hostname, &account, overlay)).await
                }
                Role::Target => Err(Refusal::new(
                    RefuseReason::BadRequest,
                    "a target logs in with its device key; enrol it first",
                )),
                Role::Client => {
                    let token = new_token();
                    let hash = token_hash(&token);
                    store_call(store, move |s| {
                        let device = client_device(s, &key, &hostname, &source, &account, overlay)?;
                        s.device_set_resume(device.id, Some(&hash), Some(now() + RESUME_LIFETIME_S))
                            .map_err(store_failure)?;
                        Ok(Outcome::Session {
                            device,
                            account,
                            resume_token: Some(token),
                        })
                    })
                    .await
                }
            }
        }
        (Role::Client, Credential::Resume { token }) => {
            let name = req.account.ok_or_else(wrong_credentials)?.to_string();
            let token = token.clone();
            store_call(store, move |s| resume(s, &name, &key, token)).await
        }
        (role, cred) => Err(Refusal::new(
            RefuseReason::BadRequest,
            format!("a {} cannot log in with a {} credential", role.as_str(), cred.kind()),
        )),
    }
}

/// A client's login with the token of its last password login (no argon2: the token is
/// random, a hash comparison suffices).
fn resume(s: &mut dyn Store, name: &str, key: &Key32, token: String) -> Result<Outcome, Refusal> {
    let account = s
        .account_by_name(name)
        .map_err(store_failure)?
        .ok_or_else(wrong_credentials)?;
    let device = s
        .device_by_key(key, Role::Client, Some(account.id))
        .map_err(store_failure)?
        .ok_or_else(|| Refusal::new(RefuseReason::ResumeExpired, "this device has no session to resume"))?;
    let valid = device.resume_hash.as_deref() == Some(&token_hash(&token)[..])
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
    .map_err(store_failure)?;
    Ok(Outcome::Session {
        device,
        account,
        resume_token: Some(token),
    })
}

/// Authenticates a contract's account administrator (`mcvpn admin --hub --as`).
pub async fn authenticate_admin(
    store: &StoreHandle,
    account: &str,
    password: &str,
    source: &str,
) -> Result<(AccountRecord, ContractRecord), Refusal> {
    let result = match verify_password(store, Some(account), password).await {
        Ok(a) => match state_refusal(&a) {
            Some(r) => Err(r),
            None => {
                let name = account.to_string();
                store_call(store, move |s| {
                    let c = s.contract_by_id(a.contract_id).map_err(store_failure)?;
                    if c.admin_account_id != Some(a.id) {
                        return Err(Refusal::new(
                            RefuseReason::NotAdministrator,
                            format!("account {name} is not the administrator of contract {}", c.name),
                        ));
                    }
                    Ok((a, c))
                })
                .await
            }
        },
        Err(r) => Err(r),
    };
    let (action, detail) = match &result {
        Ok((_, c)) => ("admin.login", format!("administrator of {}", c.name)),
        Err(r) => ("admin.login-refused", r.message.clone()),
    };
    let (account, source) = (account.to_string(), source.to_string());
    let _ = store
        .run(move |s| {
            let contract_id = s.account_by_name(&account).ok().flatten().map(|a| a.contract_id);
            let _ = s.audit(&AuditEntry {
                actor: &account,
                action,
                contract_id,
                account: Some(&account),
                source: Some(&source),
                detail: &detail,
            });
        })
        .await;
    result
}

/// A user's own password change (art. 10): the old password, then the policy.
pub async fn change_password(
    store: &StoreHandle,
    account: &str,
    old: &str,
    new: &str,
    source: &str,
) -> Result<AccountRecord, Refusal> {
    let a = verify_password(store, Some(account), old).await?;
    password::check_policy(account, new).map_err(|m| Refusal::new(RefuseReason::BadRequest, m))?;
    let new = new.to_string();
    let hash = hashing(move || password::hash(&new)).await?;
    let (account, source) = (account.to_string(), source.to_string());
    store_call(store, move |s| {
        s.account_set_password(a.id, &hash).map_err(store_failure)?;
        let _ = s.audit(&AuditEntry {
            actor: &account,
            action: "account.password-change",
            contract_id: Some(a.contract_id),
            account: Some(&account),
            source: Some(&source),
            detail: "changed by the user",
        });
        Ok(a)
    })
    .await
}

/// Verifies an account password. Unknown accounts cost the same argon2 work and get
/// the same answer as wrong passwords. The hash is read in one store call and checked
/// after it returned, so argon2 never runs under the store's lock.
async fn verify_password(store: &StoreHandle, account: Option<&str>, password: &str) -> Result<AccountRecord, Refusal> {
    let record = match account {
        Some(name) => {
            let name = name.to_string();
            store_call(store, move |s| s.account_by_name(&name).map_err(store_failure)).await?
        }
        None => None,
    };
    let hash = record
        .as_ref()
        .map_or_else(|| password::dummy_hash().to_string(), |a| a.password_hash.clone());
    let password = password.to_string();
    let ok = hashing(move || password::verify(&password, &hash)).await?;
    match record {
        Some(a) if ok => Ok(a),
        _ => Err(wrong_credentials()),
    }
}

/// The client device of this login: the registered one, or a new registration unless
/// the account only allows registered devices.
fn client_device(
    s: &mut dyn Store,
    key: &Key32,
    hostname: &str,
    source: &str,
    account: &AccountRecord,
    overlay: OverlayNet,
) -> Result<DeviceRecord, Refusal> {
    if let Some(d) = s
        .device_by_key(key, Role::Client, Some(account.id))
        .map_err(store_failure)?
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
        .device_register(account.id, Role::Client, key, hostname, overlay)
        .map_err(|e| match e {
            StoreError::Refused(m) => Refusal::new(RefuseReason::Internal, m),
            e => store_failure(e),
        })?;
    let _ = s.audit(&AuditEntry {
        actor: &account.username,
        action: "device.registered",
        contract_id: Some(account.contract_id),
        account: Some(&account.username),
        source: Some(source),
        detail: &format!("client {} at {}", device.name, device.overlay_ip),
    });
    Ok(device)
}

/// Marks a target an administrator registered by its public key alone (`mcvpn admin
/// target add`): nobody has yet shown they hold that key *and* belong to the contract.
/// Kept in the device's resume-hash column, which targets do not otherwise use (no
/// schema change); no token hashes to it (token hashes are 32 bytes).
const UNPROVEN_TARGET: &[u8] = b"unproven: awaiting the machine's own enrolment";

fn is_unproven_target(d: &DeviceRecord) -> bool {
    d.role == Role::Target && d.resume_hash.as_deref() == Some(UNPROVEN_TARGET)
}

fn unproven_refusal() -> Refusal {
    Refusal::new(
        RefuseReason::NotEnrolled,
        "this machine's key was registered by an administrator, but the machine has not enrolled yet: \
         run `mcvpn target enroll` on it once, with an account of the contract that registered it",
    )
}

/// Registers a target by its public key for `account` (review finding S6: no proof of
/// possession). The registration reserves the name and address, but the machine
/// cannot log in with its key until it has enrolled once itself (`mcvpn target
/// enroll`) with an account of the same contract: that login proves it holds the key
/// and that its owner belongs to the contract. So a key registered by one contract
/// never captures a machine whose owner enrols it with another contract's account.
pub fn register_unproven_target(
    s: &mut dyn Store,
    account_id: i64,
    key: &Key32,
    name: &str,
    overlay: OverlayNet,
) -> Result<DeviceRecord, StoreError> {
    let d = s.device_register(account_id, Role::Target, key, name, overlay)?;
    s.device_set_resume(d.id, Some(UNPROVEN_TARGET), None)?;
    s.device_by_id(d.id)
}

fn enroll_target(
    s: &mut dyn Store,
    key: &Key32,
    hostname: &str,
    account: &AccountRecord,
    overlay: OverlayNet,
) -> Result<Outcome, Refusal> {
    if let Some(existing) = s.device_by_key(key, Role::Target, None).map_err(store_failure)? {
        let same_contract = || -> Result<bool, Refusal> {
            let owner = s.account_by_id(existing.account_id).map_err(store_failure)?;
            Ok(owner.contract_id == account.contract_id)
        };
        if is_unproven_target(&existing) {
            // The machine proves it holds the key (Noise IK) with an account of the
            // contract that registered it: the registration becomes live.
            if existing.account_id == account.id || same_contract()? {
                s.device_set_resume(existing.id, None, None).map_err(store_failure)?;
                let device = s.device_by_id(existing.id).map_err(store_failure)?;
                return Ok(Outcome::Enrolled { device });
            }
            tracing::warn!(target = %existing.name, account = %account.username,
                "a machine whose key another contract registered enrolled with an account of this contract: refused");
            return Err(Refusal::new(
                RefuseReason::AlreadyEnrolled,
                "another contract registered this machine's key and it stays unused; \
                 ask the hub operator to remove that registration, then enrol again",
            ));
        }
        if existing.account_id == account.id {
            return Ok(Outcome::Enrolled { device: existing });
        }
        return Err(Refusal::new(
            RefuseReason::AlreadyEnrolled,
            "this machine is already enrolled under another account",
        ));
    }
    let device = s
        .device_register(account.id, Role::Target, key, hostname, overlay)
        .map_err(|e| match e {
            StoreError::Refused(m) | StoreError::Conflict(m) => Refusal::new(RefuseReason::AlreadyEnrolled, m),
            e => store_failure(e),
        })?;
    Ok(Outcome::Enrolled { device })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;
    use crate::store::SqliteStore;

    fn store() -> StoreHandle {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.contract_add(&crate::store::NewContract::simple("acme", 10)).unwrap();
        s.account_add("acme", "alice", &password::hash("alice-password"))
            .unwrap();
        StoreHandle::new(s)
    }

    /// One call on the store, as the test's own direct access.
    async fn db<T: Send + 'static>(s: &StoreHandle, f: impl FnOnce(&mut dyn Store) -> T + Send + 'static) -> T {
        s.run(f).await.unwrap()
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

    /// Review finding S6: contract B registers the key K of a machine that contract A's
    /// user enrols. The machine never lands in B: its key alone does not log in, and
    /// enrolling with A's account does not put it in B.
    #[tokio::test]
    async fn a_key_registered_by_another_contract_does_not_capture_the_machine() {
        use crate::admin::api::{AdminCommand, TargetCmd};
        let mut st = SqliteStore::open_in_memory().unwrap();
        st.contract_add(&crate::store::NewContract::simple("acme", 10)).unwrap();
        st.account_add("acme", "alice", &password::hash("alice-password"))
            .unwrap();
        st.contract_add(&crate::store::NewContract::simple("evil", 10)).unwrap();
        st.account_add("evil", "mallory", &password::hash("mallory-password"))
            .unwrap();
        st.account_add("evil", "eve", &password::hash("eve-password")).unwrap();
        let k = Key32([42; 32]);
        let ctx = crate::admin::ExecCtx::operator(chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap());
        let add = AdminCommand::Target(TargetCmd::Add {
            account: "mallory".into(),
            key: k.to_base64(),
            name: "pc".into(),
        });
        let out = crate::admin::execute(&mut st, &ctx, &crate::admin::prepare(add)).unwrap();
        assert!(format!("{out:?}").contains("mcvpn target enroll"), "{out:?}");
        let s = StoreHandle::new(st);

        let key_only = authenticate(
            &s,
            &req(&k, Role::Target, None, &Credential::DeviceKey, false),
            OverlayNet::default(),
        )
        .await;
        assert_eq!(
            key_only.as_ref().err().map(|r| r.reason),
            Some(RefuseReason::NotEnrolled),
            "the key alone landed the machine in evil: {:?}",
            key_only.map(|o| format!("{o:?}"))
        );
        let as_alice = authenticate(
            &s,
            &req(&k, Role::Target, Some("alice"), &pw("alice-password"), true),
            OverlayNet::default(),
        )
        .await;
        assert_eq!(as_alice.err().map(|r| r.reason), Some(RefuseReason::AlreadyEnrolled));
        let again = authenticate(
            &s,
            &req(&k, Role::Target, None, &Credential::DeviceKey, false),
            OverlayNet::default(),
        )
        .await;
        assert!(again.is_err(), "alice's attempt made the registration live");

        // The machine's owner enrols it with an account of the registering contract:
        // then, and only then, its key logs in.
        let enrolled = authenticate(
            &s,
            &req(&k, Role::Target, Some("eve"), &pw("eve-password"), true),
            OverlayNet::default(),
        )
        .await
        .unwrap();
        assert!(matches!(enrolled, Outcome::Enrolled { ref device } if device.account == "mallory"));
        let live = authenticate(
            &s,
            &req(&k, Role::Target, None, &Credential::DeviceKey, false),
            OverlayNet::default(),
        )
        .await
        .unwrap();
        assert!(matches!(live, Outcome::Session { ref account, .. } if account.username == "mallory"));
    }

    #[tokio::test]
    async fn unknown_account_and_wrong_password_look_the_same() {
        let s = store();
        let k = Key32([1; 32]);
        let a = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("nope"), false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        let b = authenticate(
            &s,
            &req(&k, Role::Client, Some("mallory"), &pw("nope"), false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(a, b);
        assert_eq!(a.reason, RefuseReason::WrongCredentials);
        let log = db(&s, move |st| st.audit_log(None, 10)).await.unwrap();
        assert_eq!(log.iter().filter(|e| e.action == "login.refused").count(), 2);
    }

    #[tokio::test]
    async fn client_login_then_resume_keeps_the_device() {
        let s = store();
        let k = Key32([1; 32]);
        let Outcome::Session {
            device, resume_token, ..
        } = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .await
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
        .await
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
        .await
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::ResumeExpired);
        // Another device key cannot use alice's token.
        let other = Key32([2; 32]);
        assert!(authenticate(
            &s,
            &req(&other, Role::Client, Some("alice"), &cred, false),
            OverlayNet::default()
        )
        .await
        .is_err());
    }

    #[tokio::test]
    async fn target_enrols_once_then_logs_in_by_key_only() {
        let s = store();
        let k = Key32([5; 32]);
        let r = authenticate(
            &s,
            &req(&k, Role::Target, None, &Credential::DeviceKey, false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::NotEnrolled);
        let Outcome::Enrolled { device } = authenticate(
            &s,
            &req(&k, Role::Target, Some("alice"), &pw("alice-password"), true),
            OverlayNet::default(),
        )
        .await
        .unwrap() else {
            panic!("expected enrolment")
        };
        assert!(matches!(
            authenticate(&s, &req(&k, Role::Target, None, &Credential::DeviceKey, false), OverlayNet::default()).await.unwrap(),
            Outcome::Session { device: d, .. } if d.id == device.id
        ));
    }

    #[tokio::test]
    async fn bound_accounts_refuse_unregistered_devices() {
        let s = store();
        let alice = db(&s, move |st| st.account_by_name("alice")).await.unwrap().unwrap();
        db(&s, move |st| st.account_set_binding(alice.id, true)).await.unwrap();
        let k = Key32([9; 32]);
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::DeviceNotAllowed);
        assert!(
            db(&s, move |st| st.device_by_key(&k, Role::Client, None))
                .await
                .unwrap()
                .is_none(),
            "nothing registered"
        );
        db(&s, move |st| {
            st.device_register(alice.id, Role::Client, &k, "usb", OverlayNet::default())
        })
        .await
        .unwrap();
        assert!(authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default()
        )
        .await
        .is_ok());
    }

    #[tokio::test]
    async fn only_the_named_administrator_gets_in() {
        let s = store();
        let r = authenticate_admin(&s, "alice", "alice-password", "x")
            .await
            .unwrap_err();
        assert_eq!(r.reason, RefuseReason::NotAdministrator);
        let alice = db(&s, move |st| st.account_by_name("alice")).await.unwrap().unwrap();
        db(&s, move |st| {
            st.contract_set_admin_account(alice.contract_id, Some(alice.id))
        })
        .await
        .unwrap();
        assert!(authenticate_admin(&s, "alice", "alice-password", "x").await.is_ok());
        assert_eq!(
            authenticate_admin(&s, "alice", "wrong", "x").await.unwrap_err().reason,
            RefuseReason::WrongCredentials
        );
    }

    #[tokio::test]
    async fn password_change_needs_the_old_one_and_the_policy() {
        let s = store();
        assert_eq!(
            change_password(&s, "alice", "nope", "a fine new passphrase", "x")
                .await
                .unwrap_err()
                .reason,
            RefuseReason::WrongCredentials
        );
        assert!(change_password(&s, "alice", "alice-password", "short", "x")
            .await
            .unwrap_err()
            .message
            .contains("12"));
        change_password(&s, "alice", "alice-password", "a fine new passphrase", "x")
            .await
            .unwrap();
        let k = Key32([1; 32]);
        assert!(authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("a fine new passphrase"), false),
            OverlayNet::default()
        )
        .await
        .is_ok());
    }

    #[tokio::test]
    async fn locked_and_suspended_are_told_after_the_password() {
        let s = store();
        let k = Key32([1; 32]);
        let alice = db(&s, move |st| st.account_by_name("alice")).await.unwrap().unwrap();
        db(&s, move |st| st.account_set_state(alice.id, AccountState::Locked))
            .await
            .unwrap();
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("wrong"), false),
            OverlayNet::default(),
        )
        .await
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
        .await
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::AccountLocked);
        db(&s, move |st| st.account_set_state(alice.id, AccountState::Active))
            .await
            .unwrap();
        db(&s, move |st| {
            st.contract_set_state(alice.contract_id, ContractState::Suspended, Some("unpaid"))
        })
        .await
        .unwrap();
        let r = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(r.reason, RefuseReason::ContractSuspended);
    }
}
