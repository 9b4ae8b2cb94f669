//! `mcvpn diagnose` (art. 37 of the terms: a user who cannot connect checks their own
//! equipment and the IP path to the server before asking the operator): the checks, each
//! a typed [`Finding`] with a plain [`Verdict`], and the versioned [`Report`] that
//! `--report`/`--json` write and `mcvpn admin diagnose-report` reads back.
//!
//! - [`probes`]: the I/O: resolve, TCP, the hub's unauthenticated UDP echo (MTU, loss,
//!   clock), HTTPS, and the local machine.
//! - [`render`]: the words, Japanese or English, for the user and for the operator.
//! - here: the order of the checks, what depends on what, verdicts and the exit status.
//!
//! Nothing secret can reach a report: the checks never read the device key's content, the
//! account's password or a resume credential, and a finding holds only addresses, times,
//! sizes and error texts that name no password (the proxy's is never in its URL).

pub mod probes;
pub mod render;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::proxy::Proxy;
use crate::exit;
use crate::proto::url::HubUrl;

pub use render::Lang;

/// What `"kind"` says in a report, so that `admin diagnose-report` refuses other JSON.
pub const REPORT_KIND: &str = "mcvpn-diagnose-report";
/// The report's format version (as every `--json` document carries).
pub const REPORT_VERSION: u32 = 1;

/// Everything `mcvpn diagnose` is told (the command line fills it; nothing below reads
/// the environment).
#[derive(Debug)]
pub struct DiagnoseSettings {
    /// The server URL to check, and where it came from (for the report).
    pub hub: Result<HubUrl, String>,
    pub hub_source: String,
    pub account: Option<String>,
    /// The proxy to reach the HTTPS port through, as `mcvpn up` would choose it.
    pub proxy: Option<Proxy>,
    /// `--transport udp` (remembered or given): UDP that does not pass is then a failure.
    pub udp_only: bool,
    /// The tunnel's MTU (`mcvpn up --mtu`), to compare the path with.
    pub tunnel_mtu: u16,
    /// The TUN interface `mcvpn up` makes (its own routes do not conflict).
    pub iface: String,
    /// The overlay network the hub hands addresses from.
    pub overlay: (Ipv4Addr, u8),
    /// Echoes for the loss and latency check.
    pub loss_probes: u32,
}

/// A check's plain verdict. `Skipped`: it could not run because an earlier one failed
/// (the finding says which); it does not count towards the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Skipped,
    Warning,
    Fail,
}

/// The checks, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    Url,
    Dns,
    Tcp,
    Udp,
    Https,
    Mtu,
    Loss,
    Root,
    Tun,
    Routes,
    Clock,
}

/// Loss at or under this share is fine (one echo in 50); over [`LOSS_FAIL_PCT`] the
/// tunnel is unusable (TCP inside it collapses).
pub const LOSS_OK_PCT: f64 = 2.0;
pub const LOSS_FAIL_PCT: f64 = 10.0;
/// An average round trip over this is worth a warning (interactive use suffers).
pub const RTT_WARN_MS: f64 = 300.0;
/// A clock further than this from the hub's is worth a warning: log and audit times stop
/// matching the operator's, and certificates or one-time codes may be refused.
pub const CLOCK_WARN_MS: i64 = 10_000;
/// Bytes a tunnel packet gains on the way: WireGuard data header and tag (32) and the
/// relay header (8), before IP and UDP.
pub const TUNNEL_OVERHEAD: u16 = 32 + crate::proto::relay::HEADER_LEN as u16;

/// What a check found: typed (not text), so that either language can be rendered from a
/// report. Error texts are the system's or mcvpn's own messages (in English).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    UrlOk {
        host: String,
        port: u16,
        https_port: u16,
        keys: usize,
    },
    /// No `--server` and nothing remembered by `mcvpn up`.
    NoUrl,
    UrlInvalid {
        error: String,
    },
    AddressLiteral {
        address: String,
    },
    Resolved {
        addresses: Vec<String>,
        ms: u64,
    },
    ResolveFailed {
        error: String,
    },
    TcpConnected {
        address: String,
        ms: u64,
    },
    TcpRefused {
        address: String,
    },
    TcpTimeout {
        address: String,
        secs: u64,
    },
    TcpError {
        address: String,
        error: String,
    },
    UdpAnswered {
        address: String,
        rtt_ms: f64,
    },
    /// No echo came back. `https_works`: the VPN can still run over HTTPS (slower);
    /// `udp_only`: the user asked for UDP only.
    UdpNoAnswer {
        address: String,
        sent: u32,
        https_works: bool,
        udp_only: bool,
    },
    HttpsOk {
        address: String,
        proxy: Option<String>,
        ms: u64,
    },
    HttpsStatus {
        address: String,
        proxy: Option<String>,
        status: u16,
    },
    HttpsFailed {
        address: String,
        proxy: Option<String>,
        error: String,
    },
    /// `largest`: the biggest IP packet that went to the hub and back; `needed`: what a
    /// full tunnel packet takes.
    Mtu {
        largest: u16,
        needed: u16,
        tunnel_mtu: u16,
        /// The largest tunnel MTU the path carries (`mcvpn up --mtu`).
        suggested_mtu: u16,
    },
    /// Not even the smallest size came back (the path lost everything meanwhile).
    MtuUnknown {
        needed: u16,
    },
    Loss {
        sent: u32,
        received: u32,
        loss_pct: f64,
        min_ms: f64,
        avg_ms: f64,
        max_ms: f64,
    },
    Root,
    NotRoot,
    TunOk {
        opened: bool,
    },
    TunMissing,
    TunNotDevice,
    TunOpenFailed {
        error: String,
    },
    RoutesClear {
        overlay: String,
    },
    RouteConflict {
        overlay: String,
        routes: Vec<String>,
    },
    RoutesUnreadable {
        error: String,
    },
    /// `skew_ms`: the hub's clock minus this machine's. `source`: `udp` (ms precision) or
    /// `https` (the Date header, to the second).
    Clock {
        skew_ms: i64,
        source: String,
    },
    Skipped {
        because: CheckId,
    },
}

impl Finding {
    /// The verdict a finding deserves: the thresholds live here, and only here.
    pub fn verdict(&self) -> Verdict {
        use Finding::*;
        match self {
            UrlOk { .. } | AddressLiteral { .. } | Resolved { .. } | TcpConnected { .. } | HttpsOk { .. } => {
                Verdict::Ok
            }
            UdpAnswered { .. } | Root | TunOk { .. } | RoutesClear { .. } => Verdict::Ok,
            NoUrl | UrlInvalid { .. } | ResolveFailed { .. } | TcpRefused { .. } | TcpTimeout { .. } => Verdict::Fail,
            TcpError { .. } | HttpsFailed { .. } | TunMissing | TunNotDevice | TunOpenFailed { .. } => Verdict::Fail,
            MtuUnknown { .. } => Verdict::Fail,
            HttpsStatus { .. } | NotRoot | RouteConflict { .. } | RoutesUnreadable { .. } => Verdict::Warning,
            UdpNoAnswer {
                https_works, udp_only, ..
            } => {
                if *https_works && !*udp_only {
                    Verdict::Warning
                } else {
                    Verdict::Fail
                }
            }
            Mtu { largest, needed, .. } => {
                if largest >= needed {
                    Verdict::Ok
                } else {
                    Verdict::Fail
                }
            }
            Loss { loss_pct, avg_ms, .. } => {
                if *loss_pct >= LOSS_FAIL_PCT {
                    Verdict::Fail
                } else if *loss_pct > LOSS_OK_PCT || *avg_ms > RTT_WARN_MS {
                    Verdict::Warning
                } else {
                    Verdict::Ok
                }
            }
            Clock { skew_ms, .. } => {
                if skew_ms.abs() > CLOCK_WARN_MS {
                    Verdict::Warning
                } else {
                    Verdict::Ok
                }
            }
            Skipped { .. } => Verdict::Skipped,
        }
    }
}

/// One check's result in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: CheckId,
    pub verdict: Verdict,
    #[serde(flatten)]
    pub finding: Finding,
}

impl CheckResult {
    pub fn new(id: CheckId, finding: Finding) -> CheckResult {
        CheckResult {
            id,
            verdict: finding.verdict(),
            finding,
        }
    }
}

/// The hub a report is about: where, and where the URL came from (never the URL's keys:
/// not secret, but of no use to the reader).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubSummary {
    pub host: String,
    pub port: u16,
    pub https_port: u16,
}

/// What `--report`/`--json` write and `admin diagnose-report` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub kind: String,
    pub mcvpn_version: String,
    /// The kernel and machine (`uname -srm`).
    pub system: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub hub: Option<HubSummary>,
    /// `--server`, or the config file `mcvpn up` wrote.
    pub hub_source: String,
    pub account: Option<String>,
    pub overall: Verdict,
    pub exit_code: u8,
    pub checks: Vec<CheckResult>,
}

/// The worst verdict (skipped checks do not count).
pub fn overall(checks: &[CheckResult]) -> Verdict {
    checks
        .iter()
        .map(|c| c.verdict)
        .filter(|v| *v != Verdict::Skipped)
        .max()
        .unwrap_or(Verdict::Ok)
}

/// The exit status: 0 when every check is ok, [`exit::DIAGNOSE_WARNING`] when the worst
/// is a warning (the VPN should work, not at its best), [`exit::DIAGNOSE_FAILED`] when
/// something failed (the VPN will not work until it is fixed).
pub fn exit_code(overall: Verdict) -> u8 {
    match overall {
        Verdict::Ok | Verdict::Skipped => exit::OK,
        Verdict::Warning => exit::DIAGNOSE_WARNING,
        Verdict::Fail => exit::DIAGNOSE_FAILED,
    }
}

/// Why a report file cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("not JSON ({0}): this is not a report written by `mcvpn diagnose --report FILE`")]
    NotJson(String),
    #[error("JSON, but not an mcvpn diagnose report (its \"kind\" is {0:?}, not \"{REPORT_KIND}\"); ask the user for the file `mcvpn diagnose --report FILE` wrote")]
    NotAReport(String),
    #[error("a diagnose report of format version {0}, which this mcvpn (reads version {REPORT_VERSION}) does not know: use a newer mcvpn")]
    Version(u64),
    #[error("a damaged diagnose report: {0}")]
    Damaged(String),
}

impl Report {
    /// Reads a report back, refusing anything else with a message saying what it is.
    pub fn parse(text: &str) -> Result<Report, ReportError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ReportError::NotJson(e.to_string()))?;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != REPORT_KIND {
            return Err(ReportError::NotAReport(kind.to_string()));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == REPORT_VERSION as u64 => {}
            Some(v) => return Err(ReportError::Version(v)),
            None => return Err(ReportError::Damaged("no \"version\"".into())),
        }
        serde_json::from_value(value).map_err(|e| ReportError::Damaged(e.to_string()))
    }
}

/// Runs every check, in order, each as far as the ones before it allow.
pub fn run(settings: &DiagnoseSettings) -> Report {
    let started_at = Utc::now();
    let mut checks = Vec::new();
    let mut hub_summary = None;

    // 1. The URL and its key.
    let hub = match &settings.hub {
        Ok(hub) => {
            hub_summary = Some(HubSummary {
                host: hub.host().to_string(),
                port: hub.port(),
                https_port: hub.https_port,
            });
            checks.push(CheckResult::new(
                CheckId::Url,
                Finding::UrlOk {
                    host: hub.host().to_string(),
                    port: hub.port(),
                    https_port: hub.https_port,
                    keys: hub.keys.len(),
                },
            ));
            Some(hub)
        }
        Err(e) if e.is_empty() => {
            checks.push(CheckResult::new(CheckId::Url, Finding::NoUrl));
            None
        }
        Err(e) => {
            checks.push(CheckResult::new(CheckId::Url, Finding::UrlInvalid { error: e.clone() }));
            None
        }
    };

    let network = hub.map(|hub| network_checks(settings, hub));
    let clock = network.as_ref().and_then(|(_, clock)| clock.clone());
    match network {
        Some((results, _)) => checks.extend(results),
        None => {
            for id in [
                CheckId::Dns,
                CheckId::Tcp,
                CheckId::Udp,
                CheckId::Https,
                CheckId::Mtu,
                CheckId::Loss,
            ] {
                checks.push(CheckResult::new(id, Finding::Skipped { because: CheckId::Url }));
            }
        }
    }

    // 8. This machine.
    checks.push(CheckResult::new(CheckId::Root, probes::root()));
    checks.push(CheckResult::new(CheckId::Tun, probes::tun(probes::is_root())));
    checks.push(CheckResult::new(
        CheckId::Routes,
        probes::routes(settings.overlay, &settings.iface),
    ));
    checks.push(CheckResult::new(
        CheckId::Clock,
        clock.unwrap_or(Finding::Skipped {
            because: if hub.is_some() { CheckId::Udp } else { CheckId::Url },
        }),
    ));

    let overall = overall(&checks);
    Report {
        version: REPORT_VERSION,
        kind: REPORT_KIND.into(),
        mcvpn_version: env!("CARGO_PKG_VERSION").into(),
        system: probes::system(),
        started_at,
        finished_at: Utc::now(),
        hub: hub_summary,
        hub_source: settings.hub_source.clone(),
        account: settings.account.clone(),
        overall,
        exit_code: exit_code(overall),
        checks,
    }
}

/// Checks 2 to 7, and the clock finding (from the echo, else from HTTPS).
fn network_checks(settings: &DiagnoseSettings, hub: &HubUrl) -> (Vec<CheckResult>, Option<Finding>) {
    let mut out = Vec::new();
    let skip_rest = |out: &mut Vec<CheckResult>, from: &[CheckId], because: CheckId| {
        for id in from {
            out.push(CheckResult::new(*id, Finding::Skipped { because }));
        }
    };

    // 2. Name resolution.
    let (dns, addrs) = probes::resolve(hub.host(), hub.port());
    out.push(CheckResult::new(CheckId::Dns, dns));
    let Some(addr) = addrs.first().copied() else {
        // Through a proxy, the proxy resolves the name: HTTPS may still be worth a try,
        // but the direct paths are not.
        skip_rest(&mut out, &[CheckId::Tcp, CheckId::Udp], CheckId::Dns);
        let https = if settings.proxy.is_some() {
            probes::https(hub, settings.proxy.as_ref()).0
        } else {
            Finding::Skipped { because: CheckId::Dns }
        };
        out.push(CheckResult::new(CheckId::Https, https));
        skip_rest(&mut out, &[CheckId::Mtu, CheckId::Loss], CheckId::Dns);
        return (out, None);
    };

    // 3. TCP to the control port.
    out.push(CheckResult::new(CheckId::Tcp, probes::tcp(&addrs)));

    // 4. UDP: the hub's echo. Its verdict waits for HTTPS (is there a way around?).
    let mut echo = probes::Echo::open(addr);
    let first = echo.as_mut().ok().and_then(|e| e.first_answer(8));
    // 5. HTTPS, through the proxy if one is set.
    let (https, https_date) = probes::https(hub, settings.proxy.as_ref());
    let https_works = https.verdict() == Verdict::Ok;
    let udp = match &first {
        Some(a) => Finding::UdpAnswered {
            address: addr.to_string(),
            rtt_ms: ms(a.rtt),
        },
        None => Finding::UdpNoAnswer {
            address: addr.to_string(),
            sent: 8,
            https_works,
            udp_only: settings.udp_only,
        },
    };
    out.push(CheckResult::new(CheckId::Udp, udp));
    out.push(CheckResult::new(CheckId::Https, https));

    let clock = match &first {
        Some(a) => Some(Finding::Clock {
            skew_ms: a.skew_ms,
            source: "udp".into(),
        }),
        None => https_date.map(|skew_ms| Finding::Clock {
            skew_ms,
            source: "https".into(),
        }),
    };

    // 6 and 7: only where the echo answers.
    match (echo, first) {
        (Ok(mut echo), Some(_)) => {
            let needed = settings.tunnel_mtu + TUNNEL_OVERHEAD + ip_udp_overhead(addr.ip());
            let mtu = match echo.path_mtu() {
                Some(largest) => Finding::Mtu {
                    largest,
                    needed,
                    tunnel_mtu: settings.tunnel_mtu,
                    suggested_mtu: largest.saturating_sub(TUNNEL_OVERHEAD + ip_udp_overhead(addr.ip())),
                },
                None => Finding::MtuUnknown { needed },
            };
            out.push(CheckResult::new(CheckId::Mtu, mtu));
            out.push(CheckResult::new(CheckId::Loss, echo.loss(settings.loss_probes)));
        }
        _ => skip_rest(&mut out, &[CheckId::Mtu, CheckId::Loss], CheckId::Udp),
    }
    (out, clock)
}

/// IP and UDP header bytes in front of a datagram to `ip`.
pub fn ip_udp_overhead(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => 20 + 8,
        IpAddr::V6(_) => 40 + 8,
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// For timing a check.
pub(crate) fn since_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// Where a report goes: `--report FILE`.
pub fn write_report(report: &Report, path: &std::path::Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)? + "\n";
    crate::util::write_atomic(path, text.as_bytes(), 0o644)
}

/// The report's JSON, as `--json` prints it.
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report serialises")
}

#[cfg(test)]
mod tests;
