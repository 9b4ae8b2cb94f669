//! mcvpn: a remote-access VPN. A hub relays WireGuard between clients and office
//! targets; see DESIGN.md (in `shared/`) and README.md.

pub mod admin;
pub mod bench;
pub mod channel;
pub mod cli_admin;
pub mod contract;
pub mod exit;
pub mod hub;
pub mod keys;
pub mod local_api;
pub mod node;
pub mod password;
pub mod proto;
pub mod store;
pub mod udp_batch;
pub mod util;
