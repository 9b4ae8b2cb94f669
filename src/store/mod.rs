//! The hub's store: contracts, accounts, devices, sessions and the audit log.
//!
//! Everything the hub and `mcvpn admin` need goes through the [`Store`] trait, so a
//! PostgreSQL backend can stand beside [`sqlite::SqliteStore`] when several hubs share
//! one account database.

pub mod migrations;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
pub(crate) mod pg_test;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::contract::ContractKind;
use crate::proto::control::{Key32, Role};

pub use self::postgres::PgStore;
pub use sqlite::SqliteStore;

/// Where the store is: a SQLite file (the embedded default), or a PostgreSQL database
/// several hubs share. Parsed once at the edge (`--db`, `MCVPN_HUB_DB`); shown without
/// the URL's password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(std::path::PathBuf),
    /// A `postgres://` or `postgresql://` URL, checked when parsed. Private: it may hold
    /// a password, so it is never printed.
    Postgres(PgUrl),
}

/// A PostgreSQL connection URL; `Debug` and `Display` show `HOST:PORT/DB` only.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    url: String,
    label: String,
}

impl PgUrl {
    pub fn as_url(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.label)
    }
}

impl StoreLocation {
    /// A `postgres://` / `postgresql://` URL, or else a SQLite file path.
    pub fn parse(s: &str) -> Result<StoreLocation, String> {
        if self::postgres::is_url(s) {
            let (config, tls) = self::postgres::tls::parse_url(s).map_err(|e| e.to_string())?;
            let config = ::postgres::Config::from(config);
            // A CA file that cannot be read is said now, at the edge, not at the first connect.
            self::postgres::tls::connector(&tls).map_err(|e| e.to_string())?;
            Ok(StoreLocation::Postgres(PgUrl {
                url: s.to_string(),
                label: self::postgres::describe(&config),
            }))
        } else if s.is_empty() {
            Err("the store is a SQLite file path or a postgres://USER@HOST:PORT/DB URL".into())
        } else {
            Ok(StoreLocation::Sqlite(s.into()))
        }
    }

    /// The SQLite file, if the store is one.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match self {
            StoreLocation::Sqlite(p) => Some(p),
            StoreLocation::Postgres(_) => None,
        }
    }
}

impl From<std::path::PathBuf> for StoreLocation {
    fn from(p: std::path::PathBuf) -> Self {
        StoreLocation::Sqlite(p)
    }
}

impl std::str::FromStr for StoreLocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StoreLocation::parse(s)
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "{}", p.display()),
            StoreLocation::Postgres(u) => write!(f, "PostgreSQL at {}", u.label),
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

/// Opens the store at `at` (creating a SQLite file, or migrating a PostgreSQL database,
/// as needed): every production open goes through here.
pub fn open(at: &StoreLocation) -> StoreResult<Box<dyn Store>> {
    Ok(match at {
        StoreLocation::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        StoreLocation::Postgres(url) => Box::new(PgStore::open(url.as_url())?),
    })
}

/// Connections a hub keeps to a PostgreSQL store unless told otherwise: store calls run
/// on as many at once. A few cover a 2-core hub's logins (each call is a round trip or
/// two); PostgreSQL's default 100 connections then hold some twenty hubs.
pub const DEFAULT_PG_POOL: u16 = 4;

/// Opens the store for a hub that runs up to `size` calls at once: `size` connections to
/// PostgreSQL (the first migrates the schema), one SQLite connection whatever `size` is
/// (SQLite has one writer at a time; more connections would only wait on its lock).
pub fn open_pool(at: &StoreLocation, size: usize) -> StoreResult<Vec<Box<dyn Store>>> {
    let mut stores = vec![open(at)?];
    if let StoreLocation::Postgres(url) = at {
        for _ in 1..size {
            stores.push(Box::new(PgStore::open(url.as_url())?));
        }
    }
    Ok(stores)
}

/// Seconds since the Unix epoch, the store's only time unit.
pub type UnixTime = i64;

pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats a store time for people: local time in the operator's zone with its offset
/// (`2027-03-01 09:30:00 +09:00`), see [`crate::contract::tz`].
pub fn format_time(t: UnixTime) -> String {
    crate::contract::format_unix(crate::contract::operator_tz(), t)
}

/// Today in the operator's time zone: the date every contract rule counts in.
pub fn today() -> NaiveDate {
    crate::contract::today_in(crate::contract::operator_tz(), chrono::Utc::now())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractState {
    Active,
    Suspended,
    Terminated,
    Cancelled,
}

impl ContractState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContractState::Active => "active",
            ContractState::Suspended => "suspended",
            ContractState::Terminated => "terminated",
            ContractState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<ContractState> {
        Some(match s {
            "active" => ContractState::Active,
            "suspended" => ContractState::Suspended,
            "terminated" => ContractState::Terminated,
            "cancelled" => ContractState::Cancelled,
            _ => return None,
        })
    }

    /// Terminated or cancelled: nothing more happens to such a contract.
    pub fn has_ended(&self) -> bool {
        matches!(self, ContractState::Terminated | ContractState::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Active,
    Locked,
}

impl AccountState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::Locked => "locked",
        }
    }
    pub fn parse(s: &str) -> Option<AccountState> {
        Some(match s {
            "active" => AccountState::Active,
            "locked" => AccountState::Locked,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRecord {
    pub id: i64,
    pub name: String,
    pub kind: ContractKind,
    pub state: ContractState,
    /// Why the operator suspended or terminated it.
    pub state_reason: Option<String>,
    pub address: String,
    pub phone: String,
    pub department: String,
    pub sales_agent: Option<String>,
    /// The account administrator (art. 3, 8, 9): who is told of suspensions and
    /// renewals (art. 39).
    pub admin_name: String,
    pub admin_email: String,
    /// The account the administrator logs in with for `mcvpn admin --hub --as`.
    pub admin_account_id: Option<i64>,
    /// A termination scheduled for later (a notice that could not be delivered takes
    /// effect five days after it was sent, art. 24-3).
    pub terminate_at: Option<UnixTime>,
    pub created_at: UnixTime,
    /// The last day of service of a terminated contract (art. 24), in the operator's zone.
    pub ended_on: Option<NaiveDate>,
    /// A termination waits for its notice to be sent (or refused): it takes effect five
    /// days after that (art. 24-3), and `terminate_at` is set then.
    pub terminate_on_notice: bool,
    /// How many client devices each account of the contract may register.
    pub device_limit: u32,
}

/// Client devices per account unless the operator sets another limit for a contract.
pub const DEFAULT_DEVICE_LIMIT: u32 = 10;
/// The most `contract set NAME device-limit N` accepts: every device is announced to the
/// targets it may reach, and the overlay has a few million addresses for everyone.
pub const MAX_DEVICE_LIMIT: u32 = 1000;

/// What `contract add` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContract {
    pub name: String,
    pub kind: ContractKind,
    pub address: String,
    pub phone: String,
    pub department: String,
    pub sales_agent: Option<String>,
    pub admin_name: String,
    pub admin_email: String,
    /// The basic contract (art. 12): its service start and number of accounts.
    pub start: NaiveDate,
    pub accounts: u32,
}

impl NewContract {
    /// A corporation with a basic contract of `accounts` starting today; for tests.
    pub fn simple(name: &str, accounts: u32) -> NewContract {
        NewContract {
            name: name.into(),
            kind: ContractKind::Corporation,
            address: String::new(),
            phone: String::new(),
            department: String::new(),
            sales_agent: None,
            admin_name: String::new(),
            admin_email: format!("it@{name}.example"),
            start: today(),
            accounts,
        }
    }
}

/// The contract fields whose changes art. 16 and 17 require to be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ContractField {
    Name,
    Address,
    Phone,
    Department,
    SalesAgent,
    AdminName,
    AdminEmail,
    /// Client devices per account (default 10).
    DeviceLimit,
}

impl ContractField {
    pub fn column(&self) -> &'static str {
        match self {
            ContractField::Name => "name",
            ContractField::Address => "address",
            ContractField::Phone => "phone",
            ContractField::Department => "department",
            ContractField::SalesAgent => "sales_agent",
            ContractField::AdminName => "admin_name",
            ContractField::AdminEmail => "admin_email",
            ContractField::DeviceLimit => "device_limit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermKind {
    Basic,
    Additional,
}

impl TermKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TermKind::Basic => "basic",
            TermKind::Additional => "additional",
        }
    }
}

/// A basic or additional contract of a contract unit (art. 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermRecord {
    pub id: i64,
    pub contract_id: i64,
    pub kind: TermKind,
    pub start: NaiveDate,
    pub accounts: u32,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    pub at: UnixTime,
    pub actor: String,
    pub field: String,
    pub old_value: String,
    pub new_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationRecord {
    pub received: NaiveDate,
    pub requested_end: Option<NaiveDate>,
    /// The last day of service.
    pub effective: NaiveDate,
    pub actor: String,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub target_device_id: i64,
    pub target: String,
    pub target_account: String,
    pub account_id: i64,
    pub account: String,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub id: i64,
    pub contract_id: i64,
    pub contract: String,
    pub to_email: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub created_at: UnixTime,
    pub sent_at: Option<UnixTime>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When a mail server refused it for good (5xx): undeliverable (art. 23-1(4), 24-3).
    pub failed_at: Option<UnixTime>,
}

/// A planned stop of the service (art. 34-2), as `admin maintenance add` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceRecord {
    pub id: i64,
    pub start_at: UnixTime,
    pub end_at: UnixTime,
    pub reason: String,
    /// Announced at once rather than `notice_days` ahead (art. 34-2: "except in emergencies").
    pub emergency: bool,
    pub notice_days: u32,
    pub created_at: UnixTime,
    pub cancelled_at: Option<UnixTime>,
}

/// A maintenance window to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMaintenance {
    pub start_at: UnixTime,
    pub end_at: UnixTime,
    pub reason: String,
    pub emergency: bool,
    pub notice_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageRecord {
    pub id: i64,
    pub start_at: UnixTime,
    pub end_at: UnixTime,
    pub note: String,
    /// Who recorded it: `monitor:NAME`, or `None` when typed in by hand (`outage add`).
    pub source: Option<String>,
}

/// What [`RecordStore::outage_record`] did with an outage a source reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageRecorded {
    /// A new outage row.
    Added(i64),
    /// The source had recorded this start already; its end moved later.
    Extended(i64),
    /// The source had recorded this start with this end (or a later one): nothing to do.
    Unchanged(i64),
}

/// What an operator-side login may do over the admin channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OperatorRole {
    /// The operator's rights.
    Operator,
    /// Record and list outages only (`mcvpn monitor`).
    Monitor,
}

impl OperatorRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            OperatorRole::Operator => "operator",
            OperatorRole::Monitor => "monitor",
        }
    }

    pub fn parse(s: &str) -> Option<OperatorRole> {
        match s {
            "operator" => Some(OperatorRole::Operator),
            "monitor" => Some(OperatorRole::Monitor),
            _ => None,
        }
    }
}

/// An operator-side login (not a contract account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: i64,
    pub name: String,
    pub role: OperatorRole,
    pub password_hash: String,
    pub created_at: UnixTime,
}

/// Operator-side logins (`mcvpn admin operator`).
pub trait OperatorStore {
    fn operator_add(&mut self, name: &str, role: OperatorRole, password_hash: &str) -> StoreResult<OperatorRecord>;
    fn operator_by_name(&self, name: &str) -> StoreResult<Option<OperatorRecord>>;
    fn operators(&self) -> StoreResult<Vec<OperatorRecord>>;
    /// Whether there was one of that name.
    fn operator_remove(&mut self, name: &str) -> StoreResult<bool>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: i64,
    pub username: String,
    pub contract_id: i64,
    pub contract: String,
    pub state: AccountState,
    pub contract_state: ContractState,
    pub password_hash: String,
    /// Only device keys registered for the account may log in (USB-key mode: the USB
    /// key of art. 3 and 27 is the device that authenticates).
    pub device_binding: bool,
    pub created_at: UnixTime,
    /// The service start of the contract's basic contract (art. 6, 7): no login before.
    pub contract_start: Option<NaiveDate>,
    /// Console logins need a one-time code after the password ([`AccountTotp`]).
    pub totp: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: i64,
    pub account_id: i64,
    pub account: String,
    pub role: Role,
    pub public_key: Key32,
    pub name: String,
    pub overlay_ip: Ipv4Addr,
    pub resume_hash: Option<Vec<u8>>,
    pub resume_expires: Option<UnixTime>,
    pub created_at: UnixTime,
    pub last_seen: Option<UnixTime>,
}

impl DeviceRecord {
    pub fn node_id(&self) -> u32 {
        self.id as u32
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: i64,
    /// `None` once the device was removed.
    pub device_id: Option<i64>,
    pub device: String,
    pub account: String,
    pub role: Role,
    pub overlay_ip: Ipv4Addr,
    pub source: String,
    pub started_at: UnixTime,
    pub ended_at: Option<UnixTime>,
    pub end_reason: Option<String>,
    /// Bytes the hub relayed from / to the device during the session.
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// The hub that holds (or held) the session; empty for sessions of before issue 15.
    pub hub: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: UnixTime,
    pub actor: String,
    pub action: String,
    pub contract_id: Option<i64>,
    pub account: Option<String>,
    pub source: Option<String>,
    pub detail: String,
}

/// Which audit rows [`Store::audit_search`] returns; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub contract_id: Option<i64>,
    pub account: Option<String>,
    /// Some(true): refusals and denials only (`*refused*`, `*denied*` actions); Some(false): the rest.
    pub refused: Option<bool>,
    /// From this time (inclusive), before that one (exclusive).
    pub since: Option<UnixTime>,
    pub until: Option<UnixTime>,
    pub limit: usize,
}

/// One audit entry to append.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    /// Who did it: `hub`, `operator`, `admin:NAME`, or the account name.
    pub actor: &'a str,
    /// What happened, a short dotted verb: `login.accepted`, `account.add`, ...
    pub action: &'a str,
    pub contract_id: Option<i64>,
    pub account: Option<&'a str>,
    pub source: Option<&'a str>,
    pub detail: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Refused(String),
    /// The account has as many client devices as its contract allows.
    #[error(
        "account {account} already has {limit} client devices, the most its contract allows: remove one it no \
         longer uses (its administrator sees them with `mcvpn admin device list --account {account}` and removes \
         one with `mcvpn admin device remove {account} DEVICE`), then log in again"
    )]
    DeviceLimit { account: String, limit: u32 },
    #[error("store error: {0}")]
    Db(#[from] rusqlite::Error),
    /// The store's server cannot be reached (PostgreSQL down or restarting); the text
    /// names it (`the store (PostgreSQL at HOST:PORT/DB) is unavailable: ...`).
    #[error("{0}")]
    Unavailable(String),
    /// A PostgreSQL error other than a duplicate or a lost connection.
    #[error("store error: {0}")]
    Pg(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The overlay network nodes get their addresses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayNet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Default for OverlayNet {
    fn default() -> Self {
        OverlayNet {
            base: Ipv4Addr::new(100, 64, 0, 0),
            prefix: 10,
        }
    }
}

impl OverlayNet {
    pub fn parse(s: &str) -> Option<OverlayNet> {
        let (ip, prefix) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        if !(8..=30).contains(&prefix) {
            return None;
        }
        let mask = u32::MAX << (32 - prefix);
        Some(OverlayNet {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.base)
    }

    /// First and last assignable host addresses (network and broadcast excluded).
    pub fn host_range(&self) -> (u32, u32) {
        let base = u32::from(self.base);
        let size = 1u32 << (32 - self.prefix);
        (base + 1, base + size - 2)
    }
}

impl std::fmt::Display for OverlayNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Contracts (契約者), their basic and additional contracts, history and cancellation.
pub trait ContractStore {
    /// Adds a contract with its basic contract, atomically.
    fn contract_add(&mut self, c: &NewContract) -> StoreResult<ContractRecord>;
    fn contract_by_name(&self, name: &str) -> StoreResult<ContractRecord>;
    fn contract_by_id(&self, id: i64) -> StoreResult<ContractRecord>;
    fn contracts(&self) -> StoreResult<Vec<ContractRecord>>;
    /// Changes one field and records who changed what, when (art. 16, 17), atomically.
    fn contract_update(&mut self, id: i64, field: ContractField, value: &str, actor: &str) -> StoreResult<String>;
    fn contract_history(&self, id: i64) -> StoreResult<Vec<HistoryRecord>>;
    fn contract_set_state(&mut self, id: i64, state: ContractState, reason: Option<&str>) -> StoreResult<()>;
    fn contract_schedule_termination(&mut self, id: i64, at: Option<UnixTime>) -> StoreResult<()>;
    /// Makes a termination wait for its notice (art. 24-3), or stops waiting.
    fn contract_terminate_on_notice(&mut self, id: i64, on: bool) -> StoreResult<()>;
    /// Records the last day of service of a terminated contract (art. 24).
    fn contract_set_ended(&mut self, id: i64, last_day: Option<NaiveDate>) -> StoreResult<()>;
    fn contract_set_admin_account(&mut self, id: i64, account_id: Option<i64>) -> StoreResult<()>;
    /// The basic contract first, then the additional ones in order.
    fn terms(&self, contract_id: i64) -> StoreResult<Vec<TermRecord>>;
    fn term_add(&mut self, contract_id: i64, start: NaiveDate, accounts: u32) -> StoreResult<TermRecord>;
    fn cancellation_set(&mut self, contract_id: i64, c: &CancellationRecord) -> StoreResult<()>;
    fn cancellation(&self, contract_id: i64) -> StoreResult<Option<CancellationRecord>>;
}

/// Accounts: user name, password hash, state, device binding.
pub trait AccountStore {
    fn account_add(&mut self, contract: &str, username: &str, password_hash: &str) -> StoreResult<AccountRecord>;
    fn account_by_name(&self, username: &str) -> StoreResult<Option<AccountRecord>>;
    fn account_by_id(&self, id: i64) -> StoreResult<AccountRecord>;
    fn accounts(&self, contract_id: Option<i64>) -> StoreResult<Vec<AccountRecord>>;
    fn account_count(&self, contract_id: i64) -> StoreResult<u64>;
    fn account_set_state(&mut self, account_id: i64, state: AccountState) -> StoreResult<()>;
    /// Sets a new password and forgets every remembered login of the account.
    fn account_set_password(&mut self, account_id: i64, password_hash: &str) -> StoreResult<()>;
    fn account_set_binding(&mut self, account_id: i64, on: bool) -> StoreResult<()>;
    /// The account's TOTP second factor, if it has one.
    fn account_totp(&self, account_id: i64) -> StoreResult<Option<AccountTotp>>;
    /// Turns the second factor on with `secret`, its code for `step` already used, or off
    /// (`None`).
    fn account_set_totp(&mut self, account_id: i64, secret: Option<(&str, i64)>) -> StoreResult<()>;
    /// Records that a code for `step` was accepted, in one statement: true only if the
    /// account has a second factor and no code of this or a later step was accepted
    /// before, so that two requests presenting the same code cannot both succeed.
    fn account_totp_use_step(&mut self, account_id: i64, step: i64) -> StoreResult<bool>;
}

/// An account's TOTP second factor (issue 14).
#[derive(Clone, PartialEq, Eq)]
pub struct AccountTotp {
    /// The shared secret, base32 (RFC 4648, no padding), as the authenticator app has it.
    pub secret: String,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for AccountTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountTotp")
            .field("secret", &"…")
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// Devices (clients and targets), and grants of targets to other accounts.
pub trait DeviceStore {
    fn device_by_key(&self, key: &Key32, role: Role, account_id: Option<i64>) -> StoreResult<Option<DeviceRecord>>;
    fn device_by_id(&self, id: i64) -> StoreResult<DeviceRecord>;
    fn device_register(
        &mut self,
        account_id: i64,
        role: Role,
        key: &Key32,
        name: &str,
        overlay: OverlayNet,
    ) -> StoreResult<DeviceRecord>;
    fn device_set_resume(&mut self, device_id: i64, hash: Option<&[u8]>, expires: Option<UnixTime>) -> StoreResult<()>;
    fn device_touch(&mut self, device_id: i64) -> StoreResult<()>;
    /// Removes a client device: its key no longer logs in and its address is free again.
    /// Its past sessions stay listed. Targets are refused (their grants go with them:
    /// not done here).
    fn device_remove(&mut self, device_id: i64) -> StoreResult<()>;
    /// Client devices of one account.
    fn device_count(&self, account_id: i64, role: Role) -> StoreResult<u64>;
    fn devices(&self, role: Option<Role>, contract_id: Option<i64>) -> StoreResult<Vec<DeviceRecord>>;
    /// The devices `device` may exchange packets with: for a client, the targets of its
    /// account and those granted to its account; for a target, the clients of its
    /// account and of the accounts it was granted to.
    fn authorised_peers(&self, device: &DeviceRecord) -> StoreResult<Vec<DeviceRecord>>;
    fn grant_add(&mut self, target_device_id: i64, account_id: i64) -> StoreResult<()>;
    fn grant_remove(&mut self, target_device_id: i64, account_id: i64) -> StoreResult<bool>;
    fn grants(&self, contract_id: Option<i64>) -> StoreResult<Vec<GrantRecord>>;
}

pub trait SessionStore {
    /// Opens a session of the device on the hub named `hub`; `boot_id` is the node's.
    fn session_start(&mut self, device_id: i64, source: &str, hub: &str, boot_id: u64) -> StoreResult<i64>;
    fn session_end(&mut self, session_id: i64, reason: &str, bytes_in: u64, bytes_out: u64) -> StoreResult<()>;
    /// Closes the sessions a previous process of the hub `hub` left open (it crashed or
    /// was killed). Other hubs' sessions on a shared store are theirs: untouched.
    fn sessions_close_stale(&mut self, reason: &str, hub: &str) -> StoreResult<usize>;
    /// Records that the hub `hub` is alive at `now` (every few seconds, see `hub::cluster`).
    /// `relay_addr`: where the other hubs send this hub's relay datagrams ('' if none).
    fn hub_heartbeat(&mut self, hub: &str, now: UnixTime, relay_addr: &str) -> StoreResult<()>;
    /// The open sessions of the other hubs in the mesh (a relay address, a heartbeat at
    /// `alive_since` or later), oldest first: which hub holds which node.
    fn remote_sessions(&self, hub: &str, alive_since: UnixTime) -> StoreResult<Vec<RemoteSession>>;
    /// Closes the open sessions of every hub whose last heartbeat is older than
    /// `silent_since`: that hub died without closing them, and its nodes have moved on.
    fn sessions_close_of_silent_hubs(&mut self, reason: &str, silent_since: UnixTime) -> StoreResult<usize>;
    /// Takes the lease `name` for `holder` until `now + ttl_secs`, or renews it if
    /// `holder` has it already. False while another holder's lease is unexpired: the one
    /// holder runs the job (contract calendar, notices), the others wait.
    fn lease_take(&mut self, name: &str, holder: &str, now: UnixTime, ttl_secs: i64) -> StoreResult<bool>;
    /// Gives the lease `name` up if `holder` has it (true), so another may take it at once.
    fn lease_release(&mut self, name: &str, holder: &str) -> StoreResult<bool>;
    /// Who holds the lease `name` (expired or not), if anyone.
    fn lease_holder(&self, name: &str) -> StoreResult<Option<String>>;
    fn sessions(&self, open_only: bool, contract_id: Option<i64>) -> StoreResult<Vec<SessionRecord>>;
}

/// A node another hub holds, as [`SessionStore::remote_sessions`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSession {
    pub device_id: i64,
    pub boot_id: u64,
    /// The holding hub's relay address, as it announced it (`HOST:PORT`).
    pub relay_addr: String,
}

/// The audit log, the notice outbox, recorded outages and hub settings.
pub trait RecordStore {
    fn audit(&mut self, entry: &AuditEntry) -> StoreResult<()>;
    fn audit_log(&self, contract_id: Option<i64>, limit: usize) -> StoreResult<Vec<AuditRecord>>;
    /// The newest `query.limit` rows that match, oldest first.
    fn audit_search(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
    /// Queues a notice to the contract's administrator.
    fn notice_add(&mut self, contract_id: i64, kind: &str, subject: &str, body: &str) -> StoreResult<i64>;
    /// Queues a notice unless one with the same `key` was queued for the contract
    /// before (a renewal reminder per term); `None` if it was.
    fn notice_add_once(
        &mut self,
        contract_id: i64,
        kind: &str,
        key: &str,
        subject: &str,
        body: &str,
    ) -> StoreResult<Option<i64>>;
    /// `unsent_only`: the outbox, notices neither sent nor refused for good.
    fn notices(&self, contract_id: Option<i64>, unsent_only: bool) -> StoreResult<Vec<NoticeRecord>>;
    fn notice_mark(&mut self, id: i64, sent: bool, error: Option<&str>) -> StoreResult<()>;
    /// Marks a notice undeliverable (a permanent refusal): it leaves the outbox.
    fn notice_fail(&mut self, id: i64, error: &str) -> StoreResult<()>;
    fn outage_add(&mut self, start_at: UnixTime, end_at: UnixTime, note: &str) -> StoreResult<i64>;
    fn outages(&self) -> StoreResult<Vec<OutageRecord>>;
    /// Records an outage `source` observed, once per (source, start): a second report of
    /// the same start only moves the end later (a monitor retrying after a lost answer,
    /// or reporting an outage that went on).
    fn outage_record(&mut self, source: &str, start_at: UnixTime, end_at: UnixTime) -> StoreResult<OutageRecorded>;
    fn setting(&self, key: &str) -> StoreResult<Option<String>>;
    fn set_setting(&mut self, key: &str, value: &str) -> StoreResult<()>;
    /// A number that changes whenever another process committed to the store; the
    /// hub polls it to notice `mcvpn admin` changes (suspension, locks) at once.
    fn external_change_marker(&self) -> StoreResult<i64>;
}

/// An invoice to store, as `contract::invoice_at` (or the late-interest rule) raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    pub contract_id: i64,
    /// Makes raising idempotent: one invoice per key and contract.
    pub raised_key: String,
    /// `basic`, `additional N` or `late interest`.
    pub part: String,
    pub issued: NaiveDate,
    pub due: NaiveDate,
    pub term: Option<(NaiveDate, NaiveDate)>,
    /// JSON of the invoice's `contract::LineItem`s.
    pub lines_json: String,
    pub subtotal: u64,
    pub tax_rate_bp: u32,
    pub tax: u64,
    pub total: u64,
}

/// A stored invoice; its number is `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    pub id: i64,
    pub contract_id: i64,
    pub raised_key: String,
    pub part: String,
    pub issued: NaiveDate,
    pub due: NaiveDate,
    pub term: Option<(NaiveDate, NaiveDate)>,
    pub lines_json: String,
    pub subtotal: u64,
    pub tax_rate_bp: u32,
    pub tax: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub id: i64,
    pub contract_id: i64,
    pub invoice_id: i64,
    pub amount: u64,
    pub paid_on: NaiveDate,
}

/// Invoices raised and payments received (art. 26-31).
pub trait BillingStore {
    /// Stores an invoice unless one with the same key exists for the contract; its
    /// number if stored.
    fn invoice_add(&mut self, inv: &NewInvoice) -> StoreResult<Option<i64>>;
    /// A contract's invoices (all with `None`), oldest first.
    fn invoices(&self, contract_id: Option<i64>) -> StoreResult<Vec<InvoiceRecord>>;
    fn payment_add(&mut self, contract_id: i64, invoice_id: i64, amount: u64, paid_on: NaiveDate) -> StoreResult<i64>;
    /// A contract's payments (all with `None`), in the order recorded.
    fn payments(&self, contract_id: Option<i64>) -> StoreResult<Vec<PaymentRecord>>;
    /// Queues a notice to `to_email` rather than the administrator (a sales agent,
    /// art. 23-2, 24-3); with a `key`, once per key and contract (`None` if one was
    /// queued before).
    fn notice_add_to(
        &mut self,
        contract_id: i64,
        to_email: &str,
        kind: &str,
        key: Option<&str>,
        subject: &str,
        body: &str,
    ) -> StoreResult<Option<i64>>;
}

/// Grouping several calls into one change that a crash or an error leaves either fully
/// applied or fully absent. Use [`atomically`], not these directly.
pub trait TransactionStore {
    /// Starts a write transaction (taking the store's write lock at once, so that it
    /// cannot fail half way for a lock another process holds).
    fn begin(&mut self) -> StoreResult<()>;
    /// Makes everything since [`begin`](Self::begin) durable (the commit is on disk
    /// when this returns).
    fn commit(&mut self) -> StoreResult<()>;
    /// Undoes everything since [`begin`](Self::begin).
    fn rollback(&mut self) -> StoreResult<()>;
}

/// Runs `change` as one transaction: committed if it returns `Ok`, rolled back if it
/// returns `Err` or panics. A process killed inside it leaves nothing of it behind
/// (SQLite rolls an uncommitted transaction back when the store is next opened).
///
/// Every multi-row change goes through here: an admin command with its audit row and
/// its notice, a calendar job with its audit row.
pub fn atomically<T, E: From<StoreError>>(
    store: &mut dyn Store,
    change: impl FnOnce(&mut dyn Store) -> Result<T, E>,
) -> Result<T, E> {
    store.begin()?;
    // Rolls back on every way out but a commit, a panic included (the store stays
    // usable after a panicking call, see `hub::store_handle`).
    struct Open<'a>(Option<&'a mut dyn Store>);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            if let Some(store) = self.0.take() {
                if let Err(e) = store.rollback() {
                    tracing::error!(error = %e, "could not roll a store transaction back");
                }
            }
        }
    }
    let mut open = Open(Some(store));
    let result = change(&mut **open.0.as_mut().expect("set above"));
    if result.is_ok() {
        let store = open.0.take().expect("set above");
        if let Err(e) = store.commit() {
            // A failed COMMIT may leave the transaction open: undo it.
            let _ = store.rollback();
            return Err(e.into());
        }
    }
    result
}

/// Planned maintenance windows (art. 34-2).
pub trait MaintenanceStore {
    fn maintenance_add(&mut self, window: &NewMaintenance) -> StoreResult<i64>;
    /// Every window, cancelled ones included, by start.
    fn maintenance_windows(&self) -> StoreResult<Vec<MaintenanceRecord>>;
    /// Cancels a window; `Refused` if it was cancelled before or has ended.
    fn maintenance_cancel(&mut self, id: i64, at: UnixTime) -> StoreResult<MaintenanceRecord>;
    /// Whether a notice with `key` was queued for the contract (see `notice_add_to`).
    fn notice_queued(&self, contract_id: i64, key: &str) -> StoreResult<bool>;
}

/// Everything the hub and the admin commands ask of the store.
pub trait Store:
    ContractStore
    + AccountStore
    + DeviceStore
    + SessionStore
    + RecordStore
    + BillingStore
    + MaintenanceStore
    + OperatorStore
    + TransactionStore
    + Send
{
}

impl<
        T: ContractStore
            + AccountStore
            + DeviceStore
            + SessionStore
            + RecordStore
            + BillingStore
            + MaintenanceStore
            + OperatorStore
            + TransactionStore
            + Send,
    > Store for T
{
}

/// The store traits, for `use crate::store::prelude::*`.
pub mod prelude {
    pub use super::{
        AccountStore, BillingStore, ContractStore, DeviceStore, MaintenanceStore, OperatorStore, RecordStore,
        SessionStore, Store, TransactionStore,
    };
}
