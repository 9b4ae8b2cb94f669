//! Exit statuses scripts can rely on (also listed in `mcvpn --help`).

/// Success.
pub const OK: u8 = 0;
/// Something failed: network, files, the hub unreachable. The message says what.
pub const FAILURE: u8 = 1;
/// Bad command line (clap's own status).
pub const USAGE: u8 = 2;
/// The hub refused: wrong password, locked account, suspended contract, not enrolled...
pub const REFUSED: u8 = 3;
/// Needs root (or CAP_NET_ADMIN): run it with sudo.
pub const NOT_ROOT: u8 = 4;
/// `status`: mcvpn is not running (LSB init-script convention, as `systemctl status`:
/// a monitoring script can test `mcvpn status` exactly like a service's status).
pub const NOT_RUNNING: u8 = 3;
/// `status`: cannot tell (LSB "status unknown"): the socket is not ours to read, or the
/// daemon answered something else than a status.
pub const STATUS_UNKNOWN: u8 = 4;

/// `diagnose`: the worst check is a warning (the VPN should work, not at its best).
pub const DIAGNOSE_WARNING: u8 = 5;
/// `diagnose`: a check failed (the VPN will not work until it is fixed).
pub const DIAGNOSE_FAILED: u8 = 6;

/// How a command ended: a status and, on failure, what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: u8,
    pub message: Option<String>,
}

impl Exit {
    pub fn ok() -> Exit {
        Exit {
            code: OK,
            message: None,
        }
    }
    pub fn code(code: u8) -> Exit {
        Exit { code, message: None }
    }
    pub fn fail(code: u8, message: &str) -> Exit {
        Exit {
            code,
            message: Some(message.to_string()),
        }
    }
}

pub const HELP: &str = "\
Exit status:
  0  success
  1  failure (network, files, hub unreachable); the message says what
  2  bad command line
  3  refused by the hub (wrong password, locked, suspended, not enrolled...)
  4  needs root: run with sudo
`mcvpn diagnose`: 0 every check ok, 5 warnings only (works, not at its best),
  6 a check failed (see what to do in its line)
`mcvpn status` and `mcvpn target status` follow the LSB instead:
  0  running
  3  not running
  4  unknown (not allowed to ask: run with sudo)";
