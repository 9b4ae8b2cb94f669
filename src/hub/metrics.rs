//! The hub's Prometheus endpoint: `/metrics` (OpenMetrics text), `/healthz` and
//! `/readyz`, on a listener of its own (`--metrics-listen`, loopback unless the operator
//! opts in with `--metrics-listen-public`: the figures describe the service's load and
//! its customers' activity).
//!
//! Nothing here counts on the relay's per-packet path: [`HubCollector`] reads, at scrape
//! time, the atomics the relay already keeps for `mcvpn hub stats` ([`RelayStats`]), and
//! the registry, limiter, hash gate and pre-auth table as they are. Only logins (a
//! counter each, [`LoginResults`]) and store calls (a histogram, in the store handle) are
//! counted for this endpoint, both far off the hot path.
//!
//! The HTTP side is a few lines over `httparse` (already in the tree for the HTTPS port)
//! rather than hyper: one GET, a capped head, a deadline, a cap on connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::context::HubContext;
use super::preauth::Preauth;
use super::relay::RelayStats;
use crate::plain_http::{read_head, respond, Head, OPENMETRICS};
use crate::proto::control::RefuseReason;

/// The most a request head may take: `GET /metrics` from Prometheus is a few hundred bytes.
const MAX_HEAD: usize = 4096;
/// A connection that has not sent its request within this is closed.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 16;
/// How long `/readyz` waits for the store to answer.
const STORE_PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// Where the endpoint listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
}

impl MetricsSettings {
    /// Checks the address: loopback unless `public` (the operator's explicit opt-in).
    pub fn new(listen: SocketAddr, public: bool) -> Result<MetricsSettings, String> {
        if !listen.ip().is_loopback() && !public {
            return Err(format!(
                "--metrics-listen {listen} is not a loopback address: the metrics describe the service's \
                 load and its customers' activity. Use 127.0.0.1:9190 (and a local Prometheus or an SSH \
                 tunnel), or add --metrics-listen-public if a firewall keeps it private"
            ));
        }
        Ok(MetricsSettings { listen })
    }
}

/// Node logins by result (`ok`, `enrolled`, `refused` with a reason). Counted once per
/// login by `login::serve`; cheap to clone (the counters are shared).
#[derive(Clone, Default)]
pub struct LoginResults {
    family: Family<Vec<(&'static str, String)>, Counter>,
}

impl LoginResults {
    pub fn ok(&self) {
        self.family.get_or_create(&vec![("result", "ok".into())]).inc();
    }
    pub fn enrolled(&self) {
        self.family.get_or_create(&vec![("result", "enrolled".into())]).inc();
    }
    pub fn refused(&self, reason: RefuseReason) {
        let labels = vec![
            ("result", "refused".into()),
            ("reason", snake_case(&format!("{reason:?}"))),
        ];
        self.family.get_or_create(&labels).inc();
    }
}

/// `WrongCredentials` → `wrong_credentials`, for label values.
fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What `/readyz` reports on besides the store.
#[derive(Default)]
pub struct Health {
    /// Set once the relay's UDP socket is bound and its loop started.
    pub relay_running: AtomicBool,
    /// Set when the hub begins to stop: it no longer takes new sessions.
    pub stopping: AtomicBool,
}

/// What the endpoint reads; all of it is shared with the running hub.
#[derive(Clone)]
pub struct Sources {
    pub ctx: Arc<HubContext>,
    pub relay: Arc<RelayStats>,
    pub preauth: Arc<Preauth>,
    pub health: Arc<Health>,
}

/// Reads the hub's existing counters at scrape time.
struct HubCollector {
    sources: Sources,
    /// Unsent notices, read from the store just before this scrape (None: no answer).
    outbox_unsent: Option<u64>,
}

impl std::fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubCollector")
    }
}

/// Writes one metric family: `name` with one sample per label set.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(&[(&str, &str)], M)],
) -> std::fmt::Result {
    let mut fam = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in samples {
        metric.encode(fam.encode_family(labels)?)?;
    }
    Ok(())
}

fn one<M: EncodeMetric>(enc: &mut DescriptorEncoder, name: &str, help: &str, metric: M) -> std::fmt::Result {
    let kind = metric.metric_type();
    metric.encode(enc.encode_descriptor(name, help, None, kind)?)
}

impl prometheus_client::collector::Collector for HubCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.sources;
        let r = s.relay.snapshot();
        let c = ConstCounter::new;
        family(
            &mut enc,
            "mcvpn_relay_datagrams",
            "Relay datagrams by result: forwarded, or dropped and why",
            MetricType::Counter,
            &[
                (&[("result", "forwarded")], c(r.forwarded)),
                (&[("result", "malformed")], c(r.dropped_malformed)),
                (&[("result", "unauthorised")], c(r.dropped_unauthorised)),
                (&[("result", "no_route")], c(r.dropped_no_route)),
                (&[("result", "send_error")], c(r.send_errors)),
            ],
        )?;
        family(
            &mut enc,
            "mcvpn_relay_bytes",
            "Relay payload bytes by result (only forwarded bytes are counted)",
            MetricType::Counter,
            &[(&[("result", "forwarded")], c(r.forwarded_bytes))],
        )?;
        family(
            &mut enc,
            "mcvpn_relay_binds",
            "Relay endpoint events: binds, challenges sent, endpoint changes (NAT rebinding)",
            MetricType::Counter,
            &[
                (&[("event", "bind")], c(r.binds)),
                (&[("event", "challenge")], c(r.challenges)),
                (&[("event", "endpoint_change")], c(r.endpoint_changes)),
            ],
        )?;
        family(
            &mut enc,
            "mcvpn_relay_echoes",
            "Unauthenticated UDP echoes (mcvpn diagnose): answered, or dropped over the fixed budget",
            MetricType::Counter,
            &[
                (&[("result", "answered")], c(r.echoes)),
                (&[("result", "over_budget")], c(r.echoes_over_budget)),
            ],
        )?;

        let sessions = s.ctx.registry.summaries();
        let count = |role: &str| sessions.iter().filter(|x| x.role == role).count() as i64;
        family(
            &mut enc,
            "mcvpn_sessions",
            "Live node sessions by role",
            MetricType::Gauge,
            &[
                (&[("role", "client")], ConstGauge::new(count("client"))),
                (&[("role", "target")], ConstGauge::new(count("target"))),
            ],
        )?;

        let login = &s.ctx.login;
        one(
            &mut enc,
            "mcvpn_login_limiter_entries",
            "Sources, accounts and pairs the login limiter holds failures for",
            ConstGauge::new(login.limiter.len() as i64),
        )?;
        one(
            &mut enc,
            "mcvpn_login_refusals_pending",
            "Refused logins counted and not yet written to the audit log (written once a minute)",
            ConstGauge::new(login.refusals.pending() as i64),
        )?;
        one(
            &mut enc,
            "mcvpn_argon2_in_flight",
            "Password hashes running or queued behind the Argon2 gate",
            ConstGauge::new(login.gate.in_flight() as i64),
        )?;

        let p = s.preauth.snapshot();
        one(
            &mut enc,
            "mcvpn_preauth_pending",
            "Connections not logged in yet",
            ConstGauge::new(p.pending as i64),
        )?;
        family(
            &mut enc,
            "mcvpn_preauth_connections",
            "Connections before login by outcome at the pre-authentication limits",
            MetricType::Counter,
            &[
                (&[("result", "admitted")], c(p.admitted)),
                (&[("result", "refused_per_source")], c(p.refused_per_source)),
                (&[("result", "evicted_global")], c(p.evicted_global)),
                (&[("result", "deadline_expired")], c(p.deadline_expired)),
            ],
        )?;

        if let Some(n) = self.outbox_unsent {
            one(
                &mut enc,
                "mcvpn_notice_outbox_unsent",
                "Notices in the outbox not delivered yet",
                ConstGauge::new(n as i64),
            )?;
        }
        family(
            &mut enc,
            "mcvpn_build_info",
            "The running mcvpn's version and git commit (MCVPN_GIT_COMMIT at build time)",
            MetricType::Gauge,
            &[(
                &[
                    ("version", env!("CARGO_PKG_VERSION")),
                    ("commit", option_env!("MCVPN_GIT_COMMIT").unwrap_or("unknown")),
                ],
                ConstGauge::new(1i64),
            )],
        )
    }
}

/// The OpenMetrics text of one scrape.
pub async fn scrape(sources: &Sources) -> String {
    let outbox_unsent = tokio::time::timeout(
        STORE_PROBE_DEADLINE,
        sources.ctx.store.run(|s| s.notices(None, true).map(|n| n.len() as u64)),
    )
    .await
    .ok()
    .and_then(|r| r.ok())
    .and_then(|r| r.ok());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HubCollector {
        sources: sources.clone(),
        outbox_unsent,
    }));
    registry.register_with_unit(
        "mcvpn_store_call",
        "Store calls as callers wait for them (blocking-pool queue and store lock included)",
        Unit::Seconds,
        sources.ctx.store.latency().clone(),
    );
    registry.register(
        "mcvpn_logins",
        "Node logins by result (refused: with the reason)",
        sources.ctx.login.results.family.clone(),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Why the hub is not ready, or None when it is.
pub async fn not_ready(sources: &Sources) -> Option<&'static str> {
    if sources.health.stopping.load(Ordering::Acquire) {
        return Some("stopping");
    }
    if !sources.health.relay_running.load(Ordering::Acquire) {
        return Some("the UDP relay is not running");
    }
    let probe = sources.ctx.store.run(|s| s.setting(crate::admin::MIN_ACCOUNTS_SETTING));
    match tokio::time::timeout(STORE_PROBE_DEADLINE, probe).await {
        Ok(Ok(Ok(_))) => None,
        _ => Some("the store does not answer"),
    }
}

/// Binds the endpoint (so that a taken port fails the hub's start, not later).
pub fn bind(settings: &MetricsSettings) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {} for --metrics-listen", settings.listen))?;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

/// Serves the endpoint until the process stops.
pub async fn serve(listener: TcpListener, sources: Sources) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: dropped, closed unanswered
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(REQUEST_DEADLINE, answer(stream, &sources)).await;
        });
    }
}

/// Reads one request head and answers it; the connection is then closed.
async fn answer(mut stream: TcpStream, sources: &Sources) -> std::io::Result<()> {
    let (method, path) = match read_head(&mut stream, MAX_HEAD).await? {
        Head::Closed => return Ok(()),
        Head::Bad => return respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n", false).await,
        Head::Request { method, path } => (method, path),
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", "use GET\n", false).await;
    }
    // Prometheus may add query parameters; they select nothing here.
    let path = path.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let body = scrape(sources).await;
            respond(&mut stream, "200 OK", OPENMETRICS, &body, head_only).await
        }
        "/healthz" => respond(&mut stream, "200 OK", "text/plain", "ok\n", head_only).await,
        "/readyz" => match not_ready(sources).await {
            None => respond(&mut stream, "200 OK", "text/plain", "ready\n", head_only).await,
            Some(why) => {
                let body = format!("not ready: {why}\n");
                respond(&mut stream, "503 Service Unavailable", "text/plain", &body, head_only).await
            }
        },
        _ => {
            let body = "not found: try /metrics, /healthz or /readyz\n";
            respond(&mut stream, "404 Not Found", "text/plain", body, head_only).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_the_opt_in() {
        assert!(MetricsSettings::new("127.0.0.1:9190".parse().unwrap(), false).is_ok());
        assert!(MetricsSettings::new("[::1]:9190".parse().unwrap(), false).is_ok());
        let e = MetricsSettings::new("0.0.0.0:9190".parse().unwrap(), false).unwrap_err();
        assert!(e.contains("--metrics-listen-public"), "{e}");
        assert!(MetricsSettings::new("0.0.0.0:9190".parse().unwrap(), true).is_ok());
    }

    #[test]
    fn refusal_reasons_become_snake_case_labels() {
        assert_eq!(snake_case("WrongCredentials"), "wrong_credentials");
        assert_eq!(snake_case("Internal"), "internal");
    }
}
