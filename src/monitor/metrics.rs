//! `mcvpn monitor`'s Prometheus endpoint (`--metrics-listen`): probe results, RTT, the
//! outage in progress and the outages recorded, per watched hub. OpenMetrics text from
//! prometheus-client; the HTTP side answers one `GET /metrics` per connection, with the
//! same caps as the hub's endpoint (a small head, a deadline).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

use crate::plain_http::{read_head, respond, Head, OPENMETRICS};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HubLabel {
    pub hub: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub hub: String,
    pub result: &'static str,
}

/// The figures; cheap to clone (shared counters).
#[derive(Clone, Default)]
pub struct MonitorMetrics {
    pub probes: Family<ResultLabel, Counter>,
    pub rtt: Family<HubLabel, Gauge<f64, AtomicU64>>,
    pub outage_open: Family<HubLabel, Gauge>,
    pub outage_start: Family<HubLabel, Gauge>,
    pub outages_recorded: Family<HubLabel, Counter>,
    pub pending: Family<HubLabel, Gauge>,
}

impl MonitorMetrics {
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("mcvpn_monitor");
        r.register(
            "probes",
            "End-to-end probes through the hub, by result",
            self.probes.clone(),
        );
        r.register_with_unit(
            "probe_rtt",
            "Round trip of the last passing probe's relay datagram",
            Unit::Seconds,
            self.rtt.clone(),
        );
        r.register(
            "outage_open",
            "1 while the hub is in an outage (alerted)",
            self.outage_open.clone(),
        );
        r.register_with_unit(
            "outage_start",
            "Start of the outage in progress (Unix time), 0 if none",
            Unit::Seconds,
            self.outage_start.clone(),
        );
        r.register(
            "outages_recorded",
            "Outages the hub acknowledged through `outage record`",
            self.outages_recorded.clone(),
        );
        r.register(
            "outages_pending",
            "Ended outages waiting to be recorded on the hub",
            self.pending.clone(),
        );
        r
    }
}

const MAX_HEAD: usize = 4096;
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Serves `/metrics` until the process stops.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(8));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(REQUEST_DEADLINE, async {
                match read_head(&mut stream, MAX_HEAD).await? {
                    Head::Request { path, .. } if path.split('?').next() == Some("/metrics") => {
                        let mut body = String::new();
                        let _ = prometheus_client::encoding::text::encode(&mut body, &registry);
                        respond(&mut stream, "200 OK", OPENMETRICS, &body, false).await
                    }
                    Head::Closed => Ok(()),
                    _ => {
                        respond(
                            &mut stream,
                            "404 Not Found",
                            "text/plain",
                            "not found: try /metrics\n",
                            false,
                        )
                        .await
                    }
                }
            })
            .await;
        });
    }
}
