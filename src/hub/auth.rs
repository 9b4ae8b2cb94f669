//! Login decisions: who is this node, may it start a session, and as which device.
//!
//! Every store call goes through [`StoreHandle::run`]. Password hashing and checking
//! (argon2, deliberately slow) run behind the hash gate ([`super::login_cost`]) after
//! the store call that read the hash has returned: never while the store, or any other
//! lock, is held. Every password check first reserves a failure in the limiter
//! ([`super::limiter`]); device-key and resume logins never touch it.
//!
//! Every refusal before the credential is proven says the same for an account that
//! exists and one that does not: `WrongCredentials` for passwords, `ResumeExpired` for
//! resume tokens, `RateLimited` (counted the same way for any name) for both. Refusals
//! are counted in the refusal log (one audit row per source and reason a minute), not
//! written one by one.

use std::net::{IpAddr, SocketAddr};

use blake2::{Blake2s256, Digest};
use rand::RngCore;

use super::login_cost::{GateError, LoginGuards, BUSY_RETRY_S};
use super::reply::Refusal;
use super::store_handle::StoreHandle;
use crate::password;
use crate::proto::control::{Credential, Key32, RefuseReason, Role};
use crate::store::{
    now, AccountRecord, AccountState, AuditEntry, ContractRecord, ContractState, DeviceRecord, OperatorRecord,
    OverlayNet, Store, StoreError,
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
    Refusal::new(
        RefuseReason::Internal,
        "the hub's account store is unavailable (the hub logs why)",
    )
}

/// One store call of a login decision; the store not answering is the hub's fault.
async fn store_call<T: Send + 'static>(
    store: &StoreHandle,
    f: impl FnOnce(&mut dyn Store) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    store.run(f).await.map_err(|_| store_unreadable())?
}

/// Argon2 work, behind the hash gate (on the blocking pool, at most one per core) and
/// with no lock held. A full gate is `RateLimited`: try again in a second.
async fn hashing<T: Send + 'static>(
    guards: &LoginGuards,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refusal> {
    guards.gate.run(f).await.map_err(|e| match e {
        GateError::Busy => Refusal {
            reason: RefuseReason::RateLimited,
            message: format!("the hub is busy checking other logins; try again in {BUSY_RETRY_S} s"),
            retry_after_s: Some(BUSY_RETRY_S),
        },
        GateError::Failed => Refusal::new(RefuseReason::Internal, "the hub could not check the password"),
    })
}

/// The one refusal of every resume that does not prove a valid token, whether the
/// account exists or not (review finding C5).
fn resume_refused() -> Refusal {
    Refusal::new(
        RefuseReason::ResumeExpired,
        "the remembered login has expired or is not valid",
    )
}

/// A name a node or administrator sent, checked before any store work: too long or
/// unprintable is a bad request (no account can have such a name, so this says nothing
/// about which exist).
fn check_name(what: &str, name: &str) -> Result<(), Refusal> {
    crate::names::check(what, name).map_err(|m| Refusal::new(RefuseReason::BadRequest, m))
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

/// Decides a login. Audits every acceptance; counts every refusal in the refusal log.
pub async fn authenticate(
    store: &StoreHandle,
    guards: &LoginGuards,
    req: &LoginRequest<'_>,
    overlay: OverlayNet,
) -> Result<Outcome, Refusal> {
    let result = match req.account.map(|a| check_name("account", a)) {
        Some(Err(r)) => Err(r),
        _ => decide(store, guards, req, overlay).await,
    };
    if let Err(r) = &result {
        // Only a checked name is remembered: a refused one may be huge or hostile.
        let account = req.account.filter(|a| crate::names::check("account", a).is_ok());
        guards
            .refusals
            .record("login.refused", req.source.ip(), r.reason, account, || {
                format!("{}: {} (via {})", req.role.as_str(), r.message, req.credential.kind())
            });
        return result;
    }
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
        Err(_) => return result,
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

async fn decide(
    store: &StoreHandle,
    guards: &LoginGuards,
    req: &LoginRequest<'_>,
    overlay: OverlayNet,
) -> Result<Outcome, Refusal> {
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
            let account =
                verify_password(store, guards, req.source.ip(), req.account, password.expose_secret()).await?;
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
            let name = req.account.ok_or_else(resume_refused)?.to_string();
            let token = token.expose_secret().to_string();
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
        .ok_or_else(resume_refused)?;
    let device = s
        .device_by_key(key, Role::Client, Some(account.id))
        .map_err(store_failure)?
        .ok_or_else(resume_refused)?;
    // Constant-time: the stored value is a hash of a random token, but compare it as a
    // secret anyway.
    let presented = token_hash(&token);
    let matches = device.resume_hash.as_deref().is_some_and(|h| {
        h.len() == presented.len() && h.iter().zip(&presented).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    });
    if !(matches && device.resume_expires.is_some_and(|e| e > now())) {
        return Err(resume_refused());
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

/// How an account administrator's password was taken.
#[derive(Debug)]
pub enum AdminLogin {
    /// Logged in; audited as `admin.login`.
    Done(AccountRecord, ContractRecord),
    /// The password was right, and the account has a second factor (TOTP): not logged in
    /// until [`verify_admin_code`] accepts a code. Nothing audited yet.
    NeedsCode(AccountRecord, ContractRecord),
}

/// Authenticates a contract's account administrator over the control channel (`mcvpn
/// admin --hub --as`). That channel carries no one-time code, so an administrator with a
/// second factor is refused here (`SecondFactor`, saying to use the web console) rather
/// than let in on the password alone.
pub async fn authenticate_admin(
    store: &StoreHandle,
    guards: &LoginGuards,
    account: &str,
    password: &str,
    source: SocketAddr,
) -> Result<(AccountRecord, ContractRecord), Refusal> {
    match authenticate_admin_password(store, guards, account, password, source).await? {
        AdminLogin::Done(a, c) => Ok((a, c)),
        AdminLogin::NeedsCode(..) => {
            let r = Refusal::new(
                RefuseReason::SecondFactor,
                format!(
                    "administrator {account} uses a second factor (one-time code), which `mcvpn admin --as` \
                     cannot send: use the web console"
                ),
            );
            guards
                .refusals
                .record("admin.login-refused", source.ip(), r.reason, Some(account), || {
                    r.message.clone()
                });
            Err(r)
        }
    }
}

/// An account administrator's password: refused (and counted in the refusal log),
/// logged in (audited), or waiting for the second factor's code.
pub async fn authenticate_admin_password(
    store: &StoreHandle,
    guards: &LoginGuards,
    account: &str,
    password: &str,
    source: SocketAddr,
) -> Result<AdminLogin, Refusal> {
    check_name("account", account)?;
    let result = match verify_password(store, guards, source.ip(), Some(account), password).await {
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
    match result {
        Ok((a, c)) if a.totp => Ok(AdminLogin::NeedsCode(a, c)),
        Ok((a, c)) => {
            audit_admin_login(store, &a, &c, source, "").await;
            Ok(AdminLogin::Done(a, c))
        }
        Err(r) => {
            guards
                .refusals
                .record("admin.login-refused", source.ip(), r.reason, Some(account), || {
                    r.message.clone()
                });
            Err(r)
        }
    }
}

async fn audit_admin_login(store: &StoreHandle, a: &AccountRecord, c: &ContractRecord, source: SocketAddr, how: &str) {
    let detail = format!("administrator of {}{how}", c.name);
    let (account, contract_id, source) = (a.username.clone(), a.contract_id, source.to_string());
    let _ = store
        .run(move |s| {
            let _ = s.audit(&AuditEntry {
                actor: &account,
                action: "admin.login",
                contract_id: Some(contract_id),
                account: Some(&account),
                source: Some(&source),
                detail: &detail,
            });
        })
        .await;
}

/// The refusal of a wrong, malformed or already used one-time code: like a wrong
/// password, it says nothing more.
fn wrong_code() -> Refusal {
    Refusal::new(
        RefuseReason::WrongCredentials,
        "the one-time code is wrong or was already used",
    )
}

/// The second step of an administrator's login with a second factor: the code from their
/// authenticator app, at most one step early or late, of a later step than any code
/// accepted before (the store records the step in the same statement that checks it, so
/// two requests with one code cannot both pass). Counted in the password limiter, for
/// the same (account, source): guessing codes costs what guessing passwords does.
/// Refusals go to the refusal log as `admin.login-refused`; the login is audited as
/// `admin.login` "with a one-time code".
pub async fn verify_admin_code(
    store: &StoreHandle,
    guards: &LoginGuards,
    account: &AccountRecord,
    contract: &ContractRecord,
    code: &str,
    source: SocketAddr,
) -> Result<(), Refusal> {
    let result = check_code(store, guards, account, code, source).await;
    match &result {
        Ok(()) => audit_admin_login(store, account, contract, source, ", with a one-time code").await,
        Err(r) => guards.refusals.record(
            "admin.login-refused",
            source.ip(),
            r.reason,
            Some(&account.username),
            || format!("{} (second factor)", r.message),
        ),
    }
    result
}

async fn check_code(
    store: &StoreHandle,
    guards: &LoginGuards,
    account: &AccountRecord,
    code: &str,
    source: SocketAddr,
) -> Result<(), Refusal> {
    let attempt = guards
        .limiter
        .begin(source.ip(), Some(&account.username))
        .map_err(Refusal::rate_limited)?;
    let (id, code) = (account.id, code.to_string());
    let checked = store_call(store, move |s| {
        // Locked or suspended since the password was taken (up to 5 minutes ago): refused
        // as a password login would be now.
        if let Some(r) = state_refusal(&s.account_by_id(id).map_err(store_failure)?) {
            return Err(r);
        }
        // Read and record in one call on the store's thread: no other request for this
        // account runs in between.
        let Some(totp) = s.account_totp(id).map_err(store_failure)? else {
            return Ok(false);
        };
        let unix = now().max(0) as u64;
        match crate::totp::accepted_step(&totp.secret, &code, unix, totp.last_step) {
            Some(step) => s.account_totp_use_step(id, step).map_err(store_failure),
            None => Ok(false),
        }
    })
    .await;
    match checked {
        Ok(true) => {
            attempt.succeeded();
            Ok(())
        }
        Ok(false) => {
            attempt.failed();
            Err(wrong_code())
        }
        Err(r) => {
            attempt.not_checked();
            Err(r)
        }
    }
}

/// A user's own password change (art. 10): the old password, then the policy.
pub async fn change_password(
    store: &StoreHandle,
    guards: &LoginGuards,
    account: &str,
    old: &str,
    new: &str,
    source: SocketAddr,
) -> Result<AccountRecord, Refusal> {
    check_name("account", account)?;
    let a = verify_password(store, guards, source.ip(), Some(account), old).await?;
    password::check_policy(account, new).map_err(|m| Refusal::new(RefuseReason::BadRequest, m))?;
    let new = new.to_string();
    let hash = hashing(guards, move || password::hash(&new)).await?;
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
/// the same answer as wrong passwords. The failure is reserved in the limiter before
/// anything else (parallel guesses see each other), and given back only when the
/// password is right or was not checked at all. The hash is read in one store call and
/// checked after it returned, behind the hash gate, so argon2 never runs under the
/// store's lock nor more than once per core.
async fn verify_password(
    store: &StoreHandle,
    guards: &LoginGuards,
    source: IpAddr,
    account: Option<&str>,
    password: &str,
) -> Result<AccountRecord, Refusal> {
    verify_secret(store, guards, source, account, password, |s, name| {
        Ok(s.account_by_name(name)?.map(|a| {
            let hash = a.password_hash.clone();
            (a, hash)
        }))
    })
    .await
}

/// Reads the login of a name with its password hash (PHC string), if there is one.
type LoginLookup<T> = fn(&mut dyn Store, &str) -> Result<Option<(T, String)>, StoreError>;

/// [`verify_password`] for any kind of login: `lookup` reads the login of a name with
/// its password hash. Accounts and operator logins share the limiter, the hash gate and
/// the one refusal.
async fn verify_secret<T: Send + 'static>(
    store: &StoreHandle,
    guards: &LoginGuards,
    source: IpAddr,
    name: Option<&str>,
    password: &str,
    lookup: LoginLookup<T>,
) -> Result<T, Refusal> {
    let attempt = guards.limiter.begin(source, name).map_err(Refusal::rate_limited)?;
    let record = match name {
        Some(name) => {
            let name = name.to_string();
            match store_call(store, move |s| lookup(s, &name).map_err(store_failure)).await {
                Ok(r) => r,
                Err(r) => {
                    attempt.not_checked();
                    return Err(r);
                }
            }
        }
        None => None,
    };
    let hash = record.as_ref().map(|(_, h)| h.clone());
    let password = password.to_string();
    let checked = hashing(guards, move || {
        let phc = match &hash {
            Some(h) => h.as_str(),
            None => password::dummy_hash(),
        };
        password::verify(&password, phc)
    })
    .await;
    match (checked, record) {
        (Ok(true), Some((a, _))) => {
            attempt.succeeded();
            Ok(a)
        }
        (Ok(_), _) => {
            attempt.failed();
            Err(wrong_credentials())
        }
        (Err(r), _) => {
            attempt.not_checked();
            Err(r)
        }
    }
}

/// Authenticates an operator-side login (`mcvpn admin --operator`, `mcvpn monitor`):
/// the same Argon2 check, limiter and refusals as account administrators; an unknown
/// name and a wrong password get the same answer.
pub async fn authenticate_operator(
    store: &StoreHandle,
    guards: &LoginGuards,
    name: &str,
    password: &str,
    source: SocketAddr,
) -> Result<OperatorRecord, Refusal> {
    check_name("operator login", name)?;
    let result = verify_secret(store, guards, source.ip(), Some(name), password, |s, name| {
        Ok(s.operator_by_name(name)?.map(|o| {
            let hash = o.password_hash.clone();
            (o, hash)
        }))
    })
    .await;
    let o = match result {
        Ok(o) => o,
        Err(r) => {
            guards
                .refusals
                .record("operator.login-refused", source.ip(), r.reason, Some(name), || {
                    r.message.clone()
                });
            return Err(r);
        }
    };
    let (actor, detail, source) = (format!("operator:{}", o.name), o.role.as_str(), source.to_string());
    let _ = store
        .run(move |s| {
            let _ = s.audit(&AuditEntry {
                actor: &actor,
                action: "operator.login",
                source: Some(&source),
                detail,
                ..Default::default()
            });
        })
        .await;
    Ok(o)
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
            e @ StoreError::DeviceLimit { .. } => Refusal::new(RefuseReason::TooManyDevices, e.to_string()),
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

    /// The tests that are not about limits: fresh guards for every call.
    fn fresh() -> &'static LoginGuards {
        Box::leak(Box::default())
    }

    async fn authenticate(s: &StoreHandle, req: &LoginRequest<'_>, o: OverlayNet) -> Result<Outcome, Refusal> {
        let guards = LoginGuards::default();
        let r = super::authenticate(s, &guards, req, o).await;
        guards.refusals.flush(s).await;
        r
    }

    async fn authenticate_admin(
        s: &StoreHandle,
        account: &str,
        password: &str,
        _source: &str,
    ) -> Result<(AccountRecord, ContractRecord), Refusal> {
        super::authenticate_admin(s, fresh(), account, password, "192.0.2.1:1".parse().unwrap()).await
    }

    async fn change_password(
        s: &StoreHandle,
        account: &str,
        old: &str,
        new: &str,
        _source: &str,
    ) -> Result<AccountRecord, Refusal> {
        super::change_password(s, fresh(), account, old, new, "192.0.2.1:1".parse().unwrap()).await
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
    async fn operator_logins_refuse_unknown_and_wrong_alike() {
        let s = store();
        db(&s, |st| {
            st.operator_add(
                "watch1",
                crate::store::OperatorRole::Monitor,
                &password::hash("watch1-password"),
            )
        })
        .await
        .unwrap();
        let source = "192.0.2.1:1".parse().unwrap();
        let ok = super::authenticate_operator(&s, fresh(), "watch1", "watch1-password", source).await;
        assert_eq!(ok.unwrap().role, crate::store::OperatorRole::Monitor);
        let wrong = super::authenticate_operator(&s, fresh(), "watch1", "nope", source)
            .await
            .unwrap_err();
        let unknown = super::authenticate_operator(&s, fresh(), "nobody", "nope", source)
            .await
            .unwrap_err();
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.reason, RefuseReason::WrongCredentials);
        // A contract account's password is not an operator login, nor the other way round.
        let account = super::authenticate_operator(&s, fresh(), "alice", "alice-password", source)
            .await
            .unwrap_err();
        assert_eq!(account, wrong);
        let log = db(&s, move |st| st.audit_log(None, 10)).await.unwrap();
        assert!(log
            .iter()
            .any(|e| e.action == "operator.login" && e.actor == "operator:watch1"));
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
        let cred = Credential::Resume { token: token.into() };
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

    fn from<'a>(src: &str, key: &'a Key32, account: &'a str, cred: &'a Credential) -> LoginRequest<'a> {
        LoginRequest {
            source: src.parse().unwrap(),
            ..req(key, Role::Client, Some(account), cred, false)
        }
    }

    /// Review C5: a bad resume token gets one answer whether the account exists or not.
    /// Before: `ResumeExpired` for alice, `WrongCredentials` for nobody.
    #[tokio::test]
    async fn resume_refusals_do_not_tell_accounts_apart() {
        let s = store();
        let k = Key32([1; 32]);
        let bad = Credential::Resume { token: "x".into() };
        let alice = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &bad, false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        let nobody = authenticate(
            &s,
            &req(&k, Role::Client, Some("nobody"), &bad, false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(alice, nobody);
        // alice's device, with a session, and a wrong token: the same again.
        authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &pw("alice-password"), false),
            OverlayNet::default(),
        )
        .await
        .unwrap();
        let wrong = authenticate(
            &s,
            &req(&k, Role::Client, Some("alice"), &bad, false),
            OverlayNet::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(wrong, nobody);
    }

    /// Issue 11, item 3 (review C4): a stranger's wrong passwords for alice, and a shared
    /// NAT's, do not keep alice out from elsewhere, nor her resume, nor a target's key.
    /// Before, six wrong passwords for alice from anywhere refused all three.
    #[tokio::test]
    async fn strangers_do_not_lock_anyone_out() {
        let s = store();
        let g = LoginGuards::default();
        let (stranger, nat) = (Key32([66; 32]), "198.51.100.7:1000");
        let wrong = pw("guess");
        for _ in 0..30 {
            let _ = super::authenticate(&s, &g, &from(nat, &stranger, "alice", &wrong), OverlayNet::default()).await;
        }
        let r = super::authenticate(&s, &g, &from(nat, &stranger, "alice", &wrong), OverlayNet::default())
            .await
            .unwrap_err();
        assert_eq!(r.reason, RefuseReason::RateLimited, "the stranger is slowed");
        // alice from home, right password: in, at once.
        let k = Key32([1; 32]);
        let right = pw("alice-password");
        let Outcome::Session { resume_token, .. } = super::authenticate(
            &s,
            &g,
            &from("192.0.2.1:4000", &k, "alice", &right),
            OverlayNet::default(),
        )
        .await
        .unwrap() else {
            panic!("expected a session")
        };
        // Her saved session, from behind the stranger's NAT: the token is proof enough.
        let resume = Credential::Resume {
            token: resume_token.unwrap().into(),
        };
        assert!(
            super::authenticate(&s, &g, &from(nat, &k, "alice", &resume), OverlayNet::default())
                .await
                .is_ok()
        );
        // A target behind the same NAT logs in with its key.
        let t = Key32([5; 32]);
        super::authenticate(
            &s,
            &g,
            &req(&t, Role::Target, Some("alice"), &pw("alice-password"), true),
            OverlayNet::default(),
        )
        .await
        .unwrap();
        let target = LoginRequest {
            source: nat.parse().unwrap(),
            ..req(&t, Role::Target, None, &Credential::DeviceKey, false)
        };
        assert!(super::authenticate(&s, &g, &target, OverlayNet::default())
            .await
            .is_ok());
    }

    /// Issue 11, item 2 (review C3): parallel wrong logins from one address are
    /// reserved in the limiter before hashing; only the free ones are hashed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_wrong_logins_hash_only_the_free_ones() {
        let s = store();
        let g = std::sync::Arc::new(LoginGuards::default());
        let mut tasks = Vec::new();
        for i in 0..100u8 {
            let (s, g) = (s.clone(), g.clone());
            tasks.push(tokio::spawn(async move {
                let k = Key32([i; 32]);
                let wrong = pw("guess");
                super::authenticate(
                    &s,
                    &g,
                    &from("203.0.113.1:1", &k, "alice", &wrong),
                    OverlayNet::default(),
                )
                .await
                .unwrap_err()
                .reason
            }));
        }
        let mut wrong = 0;
        for t in tasks {
            match t.await.unwrap() {
                RefuseReason::WrongCredentials => wrong += 1,
                RefuseReason::RateLimited => {}
                r => panic!("{r:?}"),
            }
        }
        assert_eq!(wrong, crate::hub::limiter::FREE_FAILURES);
    }

    /// Issue 11, item 5 (review C2): an oversized account name is refused before any
    /// store work, and 2,000 refusals make one audit row, not 2,000.
    #[tokio::test]
    async fn bad_names_and_floods_of_refusals_are_bounded() {
        let s = store();
        let g = LoginGuards::default();
        let long = "a".repeat(60_000);
        let k = Key32([9; 32]);
        let wrong = pw("x");
        for _ in 0..2000 {
            let r = super::authenticate(&s, &g, &from("203.0.113.5:1", &k, &long, &wrong), OverlayNet::default())
                .await
                .unwrap_err();
            assert_eq!(r.reason, RefuseReason::BadRequest);
            assert!(r.message.len() < 200);
        }
        g.refusals.flush(&s).await;
        let log = db(&s, |st| st.audit_log(None, 10_000)).await.unwrap();
        assert_eq!(log.len(), 1, "{log:#?}");
        assert!(log[0].detail.starts_with("2000 × BadRequest"), "{}", log[0].detail);
        assert!(log[0].detail.len() < 400);
    }
}
