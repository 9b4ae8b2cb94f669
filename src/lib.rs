//! mcvpn: a remote-access VPN. A hub relays WireGuard between clients and office
//! targets; see DESIGN.md (in `shared/`) and README.md.
//!
//! Every `unsafe` block says in a `// SAFETY:` comment why it is sound (clippy checks
//! that the comment is there); keep them few: system calls and C structs that no safe
//! wrapper we depend on covers.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod admin;
pub mod channel;
pub mod cli_admin;
pub mod cli_diagnose;
pub mod cli_hub;
pub mod cli_monitor;
pub mod contract;
pub mod docs;
pub mod exit;
pub mod hub;
pub mod keys;
pub mod local_api;
pub mod monitor;
pub mod names;
pub mod node;
pub mod password;
pub mod plain_http;
pub mod proto;
pub mod secret;
pub mod store;
pub mod stream;
pub mod totp;
pub mod udp_batch;
pub mod util;

/// What the relay load test (`crates/mcvpn-bench`) and the relay-table fuzz target
/// (`fuzz/`) drive, named in one place: the hub's relay loop, its table, drop reasons and
/// counters. They reach the hub only through here, so the hub's modules can stay
/// crate-private. Not an API for anything else; it changes with the hub.
#[doc(hidden)]
pub mod relay_harness {
    pub use crate::hub::relay::{
        BindAnswer, DropReason, RelayNode, RelayStats, RelayStatsSnapshot, RelayTable, SharedRelayTable,
    };
    pub use crate::hub::udp::run as run_relay;
}
