//! `mcvpn monitor`: an outage monitor for art. 35-1 of the terms (compensation counts
//! from when the operator knew the service was down).
//!
//! Every `--interval` it probes each watched hub end to end ([`probe`]): log in, bind,
//! relay datagrams to a probe target and back. The pure state machine ([`outage`]) turns
//! the results into outages: the first failed probe of a run is the start, the first
//! passing probe after it the end. The operator gets a mail when an outage starts (after
//! `failures_for_outage` failed probes) and when it ends ([`alert`]); an ended outage is
//! recorded on the hub it concerned (`outage record`, as a `monitor` operator login) as
//! soon as that hub answers, and retried until the hub acknowledges it. The state is a
//! small JSON file written atomically after every change, so a restart loses neither an
//! outage in progress nor one waiting to be recorded.

pub mod alert;
pub mod metrics;
pub mod outage;
pub mod probe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::admin::api::{OutageCmd, Output};
use crate::admin::AdminCommand;
use crate::hub::notices::{Mailer, SmtpConfig};
use crate::node::remote::{operator_admin_async, Reach};
use crate::node::settings::ResolvedTransport;
use crate::proto::url::HubUrl;
use metrics::{HubLabel, MonitorMetrics, ResultLabel};
use outage::{Action, Tracker};
use probe::ProbeAccount;

/// Everything `mcvpn monitor` is told, read by the CLI layer.
pub struct MonitorSettings {
    pub hubs: Vec<HubUrl>,
    pub interval: Duration,
    /// A probe that has not passed within this failed.
    pub probe_timeout: Duration,
    /// Consecutive failed probes that make an outage (alerted, recorded).
    pub failures_for_outage: u32,
    pub probe: ProbeAccount,
    /// The `monitor` operator login that records outages on the hub.
    pub recorder: Recorder,
    pub state_file: PathBuf,
    pub metrics_listen: Option<SocketAddr>,
    pub alerts: Option<AlertSettings>,
}

/// The operator login (role `monitor`) that runs `outage record`.
#[derive(Clone)]
pub struct Recorder {
    pub name: String,
    pub password: String,
}

/// Where alert mails go.
pub struct AlertSettings {
    pub smtp: SmtpConfig,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

/// The state file: one tracker per watched hub, by its URL.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    hubs: BTreeMap<String, Tracker>,
}

impl StateFile {
    fn load(path: &Path) -> Result<StateFile> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "the state file {} is not readable JSON; move it away to start afresh (pending outages in it \
                     would then not be recorded)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read the state file {}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        crate::util::write_atomic(path, &json, 0o600)
            .with_context(|| format!("cannot write the state file {}", path.display()))
    }
}

struct Shared {
    settings: MonitorSettings,
    state: Mutex<StateFile>,
    metrics: MonitorMetrics,
    mailer: Option<Mailer>,
}

/// Runs the monitor until the process is stopped.
pub async fn run(settings: MonitorSettings) -> Result<()> {
    let state = StateFile::load(&settings.state_file)?;
    let mailer = match &settings.alerts {
        Some(a) => Some(Mailer::new(&a.smtp, a.from.clone()).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let metrics = MonitorMetrics::default();
    if let Some(listen) = settings.metrics_listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} for --metrics-listen"))?;
        tokio::spawn(metrics::serve(listener, Arc::new(metrics.registry())));
        tracing::info!(%listen, "metrics endpoint");
    }
    let shared = Arc::new(Shared {
        settings,
        state: Mutex::new(state),
        metrics,
        mailer,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for hub in shared.settings.hubs.clone() {
        tasks.spawn(watch(shared.clone(), hub));
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// The hub's name in logs, metrics, mails and the state file: its address and key.
fn hub_name(hub: &HubUrl) -> String {
    hub.authority()
}

async fn watch(shared: Arc<Shared>, hub: HubUrl) -> Result<()> {
    let name = hub_name(&hub);
    let label = HubLabel { hub: name.clone() };
    let s = &shared.settings;
    tracing::info!(hub = %name, interval = ?s.interval, "watching");
    let mut ticker = tokio::time::interval(s.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    {
        // Show an outage carried over from before a restart.
        let state = shared.state.lock().await;
        publish(&shared.metrics, &label, state.hubs.get(&name));
    }
    loop {
        ticker.tick().await;
        let at = Utc::now();
        let result = probe::probe(&hub, &s.probe, s.probe_timeout).await;
        let result_label = |result| ResultLabel {
            hub: name.clone(),
            result,
        };
        let action = {
            let mut state = shared.state.lock().await;
            let tracker = state.hubs.entry(name.clone()).or_default();
            let action = match &result {
                Ok(ok) => {
                    shared.metrics.probes.get_or_create(&result_label("ok")).inc();
                    shared.metrics.rtt.get_or_create(&label).set(ok.rtt.as_secs_f64());
                    tracing::debug!(hub = %name, rtt = ?ok.rtt, "probe passed");
                    tracker.on_success(at)
                }
                Err(e) => {
                    shared.metrics.probes.get_or_create(&result_label("failed")).inc();
                    tracing::warn!(hub = %name, error = %format!("{e:#}"), "probe failed");
                    tracker.on_failure(at, s.failures_for_outage)
                }
            };
            publish(&shared.metrics, &label, Some(tracker));
            if action.is_some() {
                state.save(&s.state_file)?;
            }
            action
        };
        match action {
            Some(Action::AlertStart { start, failures }) => {
                let why = result.as_ref().err().map(|e| format!("{e:#}")).unwrap_or_default();
                tracing::error!(hub = %name, %start, failures, "outage started");
                send_alert(&shared, alert::started(&name, start, failures, &why)).await;
            }
            Some(Action::AlertEnd(o)) => {
                tracing::warn!(hub = %name, start = %o.start, end = %o.end, "outage ended");
                send_alert(&shared, alert::ended(&name, &o)).await;
            }
            None => {}
        }
        if result.is_ok() {
            record_pending(&shared, &hub, &label).await?;
        }
    }
}

fn publish(metrics: &MonitorMetrics, label: &HubLabel, tracker: Option<&Tracker>) {
    let start = tracker.and_then(|t| t.current_outage_start());
    metrics.outage_open.get_or_create(label).set(start.is_some() as i64);
    metrics
        .outage_start
        .get_or_create(label)
        .set(start.map(|t| t.timestamp()).unwrap_or(0));
    metrics
        .pending
        .get_or_create(label)
        .set(tracker.map(|t| t.pending.len() as i64).unwrap_or(0));
}

/// Sends the ended outages still pending for `hub` through its admin channel; each one
/// the hub acknowledges leaves the state file. A failure leaves it for the next probe.
async fn record_pending(shared: &Shared, hub: &HubUrl, label: &HubLabel) -> Result<()> {
    let pending = {
        let state = shared.state.lock().await;
        state
            .hubs
            .get(&label.hub)
            .map(|t| t.pending.clone())
            .unwrap_or_default()
    };
    let reach = Reach {
        hub: hub.clone(),
        transport: ResolvedTransport {
            transport: crate::node::TransportMode::Auto,
            proxy: None,
            proxy_given: None,
        },
    };
    let recorder = &shared.settings.recorder;
    for o in pending {
        let cmd = AdminCommand::Outage(OutageCmd::Record {
            start: o.start,
            end: o.end,
            source: None,
        });
        match operator_admin_async(&reach, &recorder.name, &recorder.password, &cmd).await {
            Ok(Ok(Output::OutageRecorded(r))) => {
                tracing::info!(hub = %label.hub, id = r.id, outcome = %r.outcome, start = %o.start, end = %o.end, "outage recorded on the hub");
                shared.metrics.outages_recorded.get_or_create(label).inc();
                let mut state = shared.state.lock().await;
                if let Some(t) = state.hubs.get_mut(&label.hub) {
                    t.on_recorded(&o);
                    publish(&shared.metrics, label, Some(t));
                }
                state.save(&shared.settings.state_file)?;
            }
            Ok(other) => {
                tracing::error!(hub = %label.hub, answer = ?other, "the hub did not record the outage; check the monitor login (`mcvpn admin operator list`); will retry");
                break;
            }
            Err(e) => {
                tracing::warn!(hub = %label.hub, error = %format!("{e:#}"), "could not record the outage yet; will retry");
                break;
            }
        }
    }
    Ok(())
}

async fn send_alert(shared: &Shared, mail: alert::Alert) {
    let (Some(mailer), Some(alerts)) = (&shared.mailer, &shared.settings.alerts) else {
        return;
    };
    for to in &alerts.to {
        match mailer.send_text(to.clone(), &mail.subject, &mail.body).await {
            Ok(()) => tracing::info!(to = %to, subject = %mail.subject, "alert mail sent"),
            Err(e) => tracing::error!(to = %to, error = %e.text(), "alert mail not sent"),
        }
    }
}
