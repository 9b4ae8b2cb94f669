//! The hub's store: contracts, accounts, devices, sessions and the audit log.
//!
//! Everything the hub and `mcvpn admin` need goes through the [`Store`] trait, so a
//! PostgreSQL backend can stand beside [`sqlite::SqliteStore`] when several hubs share
//! one account database.

pub mod migrations;
pub mod sqlite;

use std::net::Ipv4Addr;

use crate::proto::control::{Key32, Role};

pub use sqlite::SqliteStore;

/// Seconds since the Unix epoch, the store's only time unit.
pub type UnixTime = i64;

pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats a store time for people (UTC).
pub fn format_time(t: UnixTime) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| t.to_string())
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
    pub state: ContractState,
    pub created_at: UnixTime,
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
    pub created_at: UnixTime,
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
    pub device_id: i64,
    pub device: String,
    pub account: String,
    pub role: Role,
    pub overlay_ip: Ipv4Addr,
    pub source: String,
    pub started_at: UnixTime,
    pub ended_at: Option<UnixTime>,
    pub end_reason: Option<String>,
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
    #[error("store error: {0}")]
    Db(#[from] rusqlite::Error),
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

/// Everything the hub and the admin commands ask of the store.
pub trait Store: Send {
    // Contracts and accounts.
    fn contract_add(&mut self, name: &str) -> StoreResult<ContractRecord>;
    fn contract_by_name(&self, name: &str) -> StoreResult<ContractRecord>;
    fn contracts(&self) -> StoreResult<Vec<ContractRecord>>;
    fn contract_set_state(&mut self, contract_id: i64, state: ContractState) -> StoreResult<()>;
    fn account_add(&mut self, contract: &str, username: &str, password_hash: &str) -> StoreResult<AccountRecord>;
    fn account_by_name(&self, username: &str) -> StoreResult<Option<AccountRecord>>;
    fn account_by_id(&self, id: i64) -> StoreResult<AccountRecord>;
    fn accounts(&self, contract_id: Option<i64>) -> StoreResult<Vec<AccountRecord>>;
    fn account_set_state(&mut self, account_id: i64, state: AccountState) -> StoreResult<()>;
    fn account_set_password(&mut self, account_id: i64, password_hash: &str) -> StoreResult<()>;

    // Devices (clients and targets).
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
    fn devices(&self, role: Option<Role>, contract_id: Option<i64>) -> StoreResult<Vec<DeviceRecord>>;
    /// The devices `device` may exchange packets with: for a client, the targets of
    /// its account; for a target, the clients of its account.
    fn authorised_peers(&self, device: &DeviceRecord) -> StoreResult<Vec<DeviceRecord>>;

    // Sessions.
    fn session_start(&mut self, device_id: i64, source: &str) -> StoreResult<i64>;
    fn session_end(&mut self, session_id: i64, reason: &str) -> StoreResult<()>;
    /// Closes sessions a previous hub process left open (it crashed or was killed).
    fn sessions_close_stale(&mut self, reason: &str) -> StoreResult<usize>;
    fn sessions(&self, open_only: bool, contract_id: Option<i64>) -> StoreResult<Vec<SessionRecord>>;

    // Audit.
    fn audit(&mut self, entry: &AuditEntry) -> StoreResult<()>;
    fn audit_log(&self, contract_id: Option<i64>, limit: usize) -> StoreResult<Vec<AuditRecord>>;

    /// A number that changes whenever another process committed to the store; the
    /// hub polls it to notice `mcvpn admin` changes (suspension, locks) at once.
    fn external_change_marker(&self) -> StoreResult<i64>;
}
