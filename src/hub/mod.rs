//! `mcvpn hub`: the control server (TCP), the packet relay (UDP) on the same port,
//! and the account store.
//!
//! The modules, each using only those listed after it (no cycles):
//!
//! - this one: [`HubSettings`], start-up, the background jobs, the accept loop;
//! - [`control`]: one connection's handshake and first request, dispatched to
//!   [`login`] (a node), or [`admin`] (an administrator's command, a password change);
//! - [`login`]: authentication, then enrolment or a session, run by [`session`];
//! - [`admin`]: administrative requests over the control channel;
//! - [`context`]: [`HubContext`], what every connection shares;
//! - [`registry`]: live sessions, mirrored into the relay table;
//! - [`auth`]: login decisions on the store;
//! - [`notices`]: delivery of the notice outbox by e-mail;
//! - [`udp`]: the relay's UDP loop, around [`relay`]'s table;
//! - leaves, using nothing else of the hub: [`reply`] (refusals), [`store_handle`]
//!   (the one way into the store), [`limiter`], [`session`], [`relay`].

pub mod admin;
pub mod auth;
pub mod change_feed;
pub mod cluster;
pub mod console;
pub mod context;
pub mod control;
pub mod echo;
pub mod https;
pub mod limiter;
mod login;
pub mod login_cost;
pub mod mesh_link;
pub mod metrics;
pub mod notices;
pub mod preauth;
pub mod refusals;
pub mod registry;
pub mod relay;
pub mod reply;
mod session;
pub mod store_handle;
pub mod udp;

use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::keys::KeyPair;
use crate::local_api;
use crate::proto::url::HubUrl;
use crate::store::OverlayNet;

use self::context::HubContext;
use self::login_cost::LoginGuards;
use self::preauth::{AcceptBackoff, Preauth};
use self::registry::Registry;
use self::relay::{RelayStats, RelayTable, SharedRelayTable};
use self::store_handle::StoreHandle;

/// How often the hub looks for changes other processes made to the store.
const STORE_POLL: Duration = Duration::from_millis(200);

/// How often the hub applies the contract calendar (cancellations and scheduled
/// terminations taking effect, renewal reminders).
const CONTRACT_JOBS: Duration = Duration::from_secs(30);

/// Where users reach the hub and the keys that prove it is the hub: all that
/// `mcvpn hub url` needs.
#[derive(Debug, Clone)]
pub struct HubIdentity {
    pub listen: SocketAddr,
    /// The hub's key; with `extra_keys`, the keys nodes may have pinned.
    pub key: PathBuf,
    pub extra_keys: Vec<PathBuf>,
    pub public_addr: Option<String>,
    /// The HTTPS port users reach the hub at, for the server URL (None: 443).
    pub https_port: Option<u16>,
}

/// Everything `mcvpn hub` runs with. Built from the command line (flags and their
/// environment variables) in `main.rs`; nothing under `hub` reads either.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub identity: HubIdentity,
    /// This hub's name among the hubs sharing one store: its sessions, heartbeat and
    /// leases are recorded under it (see [`cluster`]).
    pub name: String,
    /// Where the other hubs on the shared store send this hub's relay datagrams (its
    /// relay address as they reach it); None keeps this hub out of the mesh.
    pub mesh_addr: Option<SocketAddr>,
    pub db: crate::store::StoreLocation,
    /// Connections to a PostgreSQL store (SQLite: always one).
    pub db_pool: usize,
    pub overlay: OverlayNet,
    pub status_socket: PathBuf,
    pub socket_buffer: usize,
    /// The fewest accounts a basic contract may have (art. 12).
    pub min_accounts: u32,
    /// The mail server notices are delivered through; None keeps them in the outbox.
    pub smtp: Option<notices::SmtpConfig>,
    /// The notices' sender (default: `mcvpn@<hostname>`).
    pub smtp_from: Option<String>,
    /// The relay socket's offload switches and spinning.
    pub udp_tuning: crate::udp_batch::UdpTuning,
    /// Caps and deadline for connections that have not logged in yet.
    pub preauth: preauth::PreauthLimits,
    /// The HTTPS port (the WebSocket transport and the page on `GET /`); None: off.
    pub https: Option<https::HttpsSettings>,
    /// The Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`); None: off.
    pub metrics: Option<metrics::MetricsSettings>,
}

impl HubIdentity {
    /// The URL users need: host from `public_addr`, else the listen address, else the hostname.
    pub fn server_url(&self, keys: &[KeyPair]) -> HubUrl {
        let (host, port) = match &self.public_addr {
            Some(a) => match a.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() && !h.ends_with(':') => {
                    (h.trim_matches(['[', ']']).to_string(), p.parse().unwrap())
                }
                _ => (a.trim_matches(['[', ']']).to_string(), self.listen.port()),
            },
            None if self.listen.ip().is_unspecified() => (crate::util::hostname(), self.listen.port()),
            None => (self.listen.ip().to_string(), self.listen.port()),
        };
        HubUrl::single(
            host,
            port,
            keys.iter().map(|k| k.public_key32()).collect(),
            // Left at 443 when HTTPS is off: nodes then find nothing there, and say so.
            self.https_port.unwrap_or(crate::proto::url::DEFAULT_HTTPS_PORT),
        )
    }

    /// The hub's key (created on first start), then the extra keys.
    pub fn load_keys(&self) -> Result<Vec<KeyPair>> {
        let mut keys = vec![KeyPair::load_or_create(&self.key)?];
        for p in &self.extra_keys {
            keys.push(KeyPair::load(p)?);
        }
        Ok(keys)
    }
}

pub async fn run(settings: HubSettings) -> Result<()> {
    let keys = settings.identity.load_keys()?;
    let url = settings.identity.server_url(&keys);
    let mailer = mailer(&settings)?;
    let cluster = cluster::Membership::new(&settings.name, settings.mesh_addr);
    let store = open_store(&settings, &cluster).await?;
    let listen = settings.identity.listen;
    let (udp, tcp) = bind(listen, settings.socket_buffer)?;
    let relay_addr = udp.local_addr()?;
    let https_port = match &settings.https {
        Some(h) => Some(https::HttpsPort::bind(h, &settings.identity.key, url.host())?),
        None => None,
    };
    let https_listen = https_port.as_ref().map(|p| p.local_addr()).transpose()?;
    let metrics_listener = settings.metrics.as_ref().map(metrics::bind).transpose()?;
    let health = Arc::new(metrics::Health::default());

    let table = RelayTable::shared();
    table.write().enable_mesh(mesh_link::MeshLinks::new(
        &settings.name,
        &keys[0],
        std::time::Instant::now(),
    ));
    // Hellos to other hubs leave from the relay socket: the address they know us by.
    let mesh_socket = udp.try_clone()?;
    let stats = Arc::new(RelayStats::default());
    udp::spawn(udp, table.clone(), stats.clone(), settings.udp_tuning)?;
    tokio::spawn(mesh_link::run(table.clone(), mesh_socket));
    health.relay_running.store(true, std::sync::atomic::Ordering::Release);

    let ctx = Arc::new(HubContext {
        keys,
        store: store.clone(),
        registry: Registry::new(store.clone(), table.clone(), settings.overlay),
        login: LoginGuards::default(),
        overlay: settings.overlay,
        cluster,
    });
    let preauth = Preauth::new(settings.preauth);
    let https_stats = https_port.as_ref().map(|p| p.stats.clone()).zip(https_listen);
    let _status = serve_status(
        &settings.status_socket,
        url.to_string(),
        &ctx,
        &stats,
        &table,
        &preauth,
        https_stats,
    )?;
    if let Some(listener) = metrics_listener {
        println!("metrics on http://{}/metrics", listener.local_addr()?);
        let sources = metrics::Sources {
            ctx: ctx.clone(),
            relay: stats.clone(),
            preauth: preauth.clone(),
            health: health.clone(),
        };
        tokio::spawn(metrics::serve(listener, sources));
    }
    // A PostgreSQL store tells every hub of changes at once (LISTEN); SQLite is polled.
    let feed = match &settings.db {
        crate::store::StoreLocation::Postgres(url) => Some(change_feed::ChangeFeed::spawn(
            url.as_url().to_string(),
            settings.db.to_string(),
        )),
        crate::store::StoreLocation::Sqlite(_) => None,
    };
    tokio::spawn(watch_store(ctx.clone(), feed));
    // The first beat before the jobs: a hub alone on its store holds the lease at once.
    ctx.cluster.beat(&ctx.store).await;
    tokio::spawn(ctx.cluster.clone().run(ctx.store.clone()));
    tokio::spawn(contract_jobs(ctx.clone()));
    tokio::spawn(notices::run(store, mailer, ctx.cluster.clone()));
    let refusals = ctx.clone();
    tokio::spawn(async move { refusals.login.refusals.run(refusals.store.clone()).await });

    tracing::info!(%listen, db = %settings.db, overlay = %settings.overlay, "hub running");
    println!("mcvpn hub listening on {listen} (TCP control, UDP relay)");
    match https_listen {
        Some(addr) => println!("HTTPS (WebSocket transport) on {addr}"),
        None => println!("HTTPS off"),
    }
    println!("server URL for users: {url}");
    let serve_https = async {
        match https_port {
            Some(port) => port.serve(ctx.clone(), preauth.clone(), relay_addr).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = accept(tcp, &ctx, &preauth) => {}
        _ = serve_https => {}
        _ = crate::util::shutdown_signal() => {
            tracing::info!("hub stopping");
        }
    }
    // `/readyz` answers 503 from here on, while sessions are closed.
    health.stopping.store(true, std::sync::atomic::Ordering::Release);
    ctx.registry.close_all("hub stopped").await;
    ctx.login.refusals.flush(&ctx.store).await;
    ctx.cluster.release(&ctx.store).await;
    Ok(())
}

fn mailer(settings: &HubSettings) -> Result<Option<notices::Mailer>> {
    let Some(smtp) = &settings.smtp else { return Ok(None) };
    let from = settings.smtp_from.clone().unwrap_or_else(notices::default_from);
    let from = notices::parse_from(&from).map_err(|e| anyhow::anyhow!("--smtp-from: {e}"))?;
    Ok(Some(
        notices::Mailer::new(smtp, from).map_err(|e| anyhow::anyhow!("--smtp: {e}"))?,
    ))
}

/// Opens the store, claims the hub's name in it (see [`cluster::claim_name`]), records
/// the hub's settings and closes the sessions a previous process of this hub left open.
async fn open_store(settings: &HubSettings, cluster: &cluster::Membership) -> Result<StoreHandle> {
    let db = &settings.db;
    // Blocking: PostgreSQL's synchronous client runs its own runtime, which cannot
    // start on one of tokio's workers.
    let (at, pool) = (db.clone(), settings.db_pool);
    let stores = tokio::task::spawn_blocking(move || crate::store::open_pool(&at, pool))
        .await
        .context("the store opening task failed")?
        .with_context(|| format!("cannot open the store {db}"))?;
    let store = StoreHandle::from_pool(stores);
    cluster.claim(&store).await?;
    let min_accounts = settings.min_accounts.to_string();
    let name = settings.name.clone();
    let stale = store
        .run(move |s| {
            s.set_setting(crate::admin::MIN_ACCOUNTS_SETTING, &min_accounts)?;
            s.sessions_close_stale("hub restarted", &name)
        })
        .await??;
    if stale > 0 {
        tracing::info!(stale, "closed sessions left open by the previous hub process");
    }
    Ok(store)
}

/// The relay's UDP socket and the control server's TCP listener, on one address.
fn bind(listen: SocketAddr, socket_buffer: usize) -> Result<(UdpSocket, TcpListener)> {
    let udp = UdpSocket::bind(listen).with_context(|| format!("cannot bind UDP {listen} (is another hub running?)"))?;
    crate::util::set_socket_buffers(&udp, socket_buffer);
    let tcp = StdTcpListener::bind(listen)
        .with_context(|| format!("cannot listen on TCP {listen} (is another hub running?)"))?;
    tcp.set_nonblocking(true)?;
    Ok((udp, TcpListener::from_std(tcp)?))
}

/// The local socket `mcvpn hub stats` reads.
fn serve_status(
    path: &Path,
    url: String,
    ctx: &Arc<HubContext>,
    stats: &Arc<RelayStats>,
    table: &SharedRelayTable,
    preauth: &Arc<Preauth>,
    https: Option<(Arc<https::HttpsStats>, SocketAddr)>,
) -> Result<local_api::SocketGuard> {
    let (ctx, stats, table, preauth) = (ctx.clone(), stats.clone(), table.clone(), preauth.clone());
    local_api::serve(path, move |req, _caller| match req {
        local_api::LocalRequest::Stats | local_api::LocalRequest::Status => Ok(serde_json::json!({
            "url": url,
            "relay": stats.snapshot(),
            "bound_endpoints": table.read().bound_nodes(),
            "sessions": ctx.registry.summaries(),
            "preauth": preauth.snapshot(),
            "https": https.as_ref().map(|(s, listen)| https::snapshot(s, *listen)),
        })),
        other => Err(format!("unknown command {:?}", other.name())),
    })
}

/// Accepts control connections, each served by its own task, until the process stops.
/// A connection gets a task only within the pre-authentication budget ([`preauth`]);
/// over its source's cap it is closed at once, unread.
async fn accept(tcp: TcpListener, ctx: &Arc<HubContext>, preauth: &Arc<Preauth>) {
    let mut backoff = AcceptBackoff::default();
    loop {
        match tcp.accept().await {
            Ok((stream, source)) => {
                backoff.succeeded();
                if let Some(guard) = preauth.admit(source.ip()) {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(control::handle(Box::new(stream), source, ctx.clone(), guard));
                }
            }
            Err(e) => {
                let wait = backoff.failed(&e);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

async fn contract_jobs(ctx: Arc<HubContext>) {
    let mut tick = tokio::time::interval(CONTRACT_JOBS);
    loop {
        tick.tick().await;
        // One hub of those sharing the store runs the calendar (see `cluster`).
        if !ctx.cluster.holds_jobs() {
            continue;
        }
        let done = ctx
            .store
            .run(|s| crate::admin::apply_due(s, crate::store::now(), crate::store::today()))
            .await;
        match done {
            Ok(Ok(done)) if !done.is_empty() => {
                for d in &done {
                    tracing::info!("{d}");
                }
                ctx.registry.refresh().await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "contract jobs failed"),
            Err(_) => {} // logged by the store handle
        }
    }
}

/// Notices store changes made by other processes (`mcvpn admin` suspending a contract,
/// locking an account, another hub on a shared store) and applies them to live
/// sessions: at once when the store notifies them (PostgreSQL, [`change_feed`]), else
/// within [`STORE_POLL`] by polling the store's change marker.
///
/// It also keeps the mesh's view of which hub holds which node current: at once when a
/// session starts or ends anywhere (PostgreSQL), at most every [`PRESENCE_SYNC_GAP`],
/// else every [`cluster::HEARTBEAT`].
/// What woke [`watch_store`].
enum Wake {
    /// The store notified a change that can end sessions (and may have moved nodes).
    Changed,
    /// The store notified that a session started or ended on some hub.
    Presence,
    /// Nothing was notified: poll the store's change marker, and once a heartbeat where
    /// the other hubs' nodes are.
    Timer,
}

/// The shortest time between two re-reads of the other hubs' sessions. Each re-read
/// reads them all; with one per notification, every session starting anywhere cost every
/// hub a full read, and a login wave on three hubs of 10,000 sessions ran at a third of
/// one hub's rate (issue 15, `mcvpn-bench control --hubs 3`). A node that logs in
/// elsewhere is known here at most this much later.
const PRESENCE_SYNC_GAP: Duration = Duration::from_millis(100);

async fn watch_store(ctx: Arc<HubContext>, feed: Option<change_feed::ChangeFeed>) {
    let marker = || ctx.store.run(|s| s.external_change_marker().ok());
    let mut last = marker().await.ok().flatten();
    let mut last_sync = std::time::Instant::now() - cluster::HEARTBEAT;
    loop {
        let wake = match &feed {
            Some(feed) => tokio::select! {
                _ = feed.changed() => Wake::Changed,
                _ = feed.presence_changed() => Wake::Presence,
                _ = tokio::time::sleep(feed.poll_interval().min(cluster::HEARTBEAT)) => Wake::Timer,
            },
            None => {
                tokio::time::sleep(STORE_POLL).await;
                Wake::Timer
            }
        };
        match wake {
            Wake::Changed => ctx.registry.refresh().await,
            Wake::Presence => {}
            Wake::Timer => {
                let now = marker().await.ok().flatten();
                // No marker: the store did not answer; nothing is known to have changed.
                if now.is_some() && now != last {
                    last = now;
                    ctx.registry.refresh().await;
                }
            }
        }
        if !matches!(wake, Wake::Timer) || last_sync.elapsed() >= cluster::HEARTBEAT {
            // The notifications that arrive meanwhile are kept as one (`Notify` holds a
            // single permit), so one re-read answers them all.
            let since = last_sync.elapsed();
            if since < PRESENCE_SYNC_GAP {
                tokio::time::sleep(PRESENCE_SYNC_GAP - since).await;
            }
            last_sync = std::time::Instant::now();
            let alive_since = crate::store::now() - cluster::SILENT_AFTER;
            ctx.registry.sync_remote(ctx.cluster.name(), alive_since).await;
        }
    }
}
