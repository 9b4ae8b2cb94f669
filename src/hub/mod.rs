//! `mcvpn hub`: the control server (TCP), the packet relay (UDP) on the same port,
//! and the account store.

pub mod admin;
pub mod auth;
pub mod control;
pub mod limiter;
pub mod notices;
pub mod registry;
pub mod relay;
pub mod udp;

use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::keys::KeyPair;
use crate::local_api;
use crate::proto::url::HubUrl;
use crate::store::{OverlayNet, RecordStore, SessionStore, SqliteStore};

use self::auth::SharedStore;
use self::limiter::LoginLimiter;
use self::registry::Registry;
use self::relay::{RelayStats, RelayTable};

/// How often the hub looks for changes other processes made to the store.
const STORE_POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct HubOptions {
    pub listen: SocketAddr,
    pub db: PathBuf,
    /// The hub's key; with `extra_keys`, the keys nodes may have pinned.
    pub key: PathBuf,
    pub extra_keys: Vec<PathBuf>,
    pub overlay: OverlayNet,
    pub public_addr: Option<String>,
    pub status_socket: PathBuf,
    pub socket_buffer: usize,
    /// The fewest accounts a basic contract may have (art. 12).
    pub min_accounts: u32,
    /// The mail server notices are delivered through; None keeps them in the outbox.
    pub smtp: Option<notices::SmtpConfig>,
    /// The notices' sender (default: `mcvpn@<hostname>`).
    pub smtp_from: Option<String>,
}

/// Shared by every connection task.
pub struct HubContext {
    pub keys: Vec<KeyPair>,
    pub store: Arc<SharedStore>,
    pub registry: Registry,
    pub limiter: LoginLimiter,
    pub overlay: OverlayNet,
}

/// The URL users need: host from `public_addr`, else the listen address, else the hostname.
pub fn server_url(opts: &HubOptions, keys: &[KeyPair]) -> HubUrl {
    let (host, port) = match &opts.public_addr {
        Some(a) => match a.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() && !h.ends_with(':') => {
                (h.trim_matches(['[', ']']).to_string(), p.parse().unwrap())
            }
            _ => (a.trim_matches(['[', ']']).to_string(), opts.listen.port()),
        },
        None if opts.listen.ip().is_unspecified() => (crate::util::hostname(), opts.listen.port()),
        None => (opts.listen.ip().to_string(), opts.listen.port()),
    };
    HubUrl {
        host,
        port,
        keys: keys.iter().map(|k| k.public_key32()).collect(),
    }
}

pub fn load_keys(opts: &HubOptions) -> Result<Vec<KeyPair>> {
    let mut keys = vec![KeyPair::load_or_create(&opts.key)?];
    for p in &opts.extra_keys {
        keys.push(KeyPair::load(p)?);
    }
    Ok(keys)
}

pub async fn run(opts: HubOptions) -> Result<()> {
    let keys = load_keys(&opts)?;
    let url = server_url(&opts, &keys);
    let mailer = match &opts.smtp {
        Some(smtp) => {
            let from = opts.smtp_from.clone().unwrap_or_else(notices::default_from);
            let from = notices::parse_from(&from).map_err(|e| anyhow::anyhow!("--smtp-from: {e}"))?;
            Some(notices::Mailer::new(smtp, from).map_err(|e| anyhow::anyhow!("--smtp: {e}"))?)
        }
        None => None,
    };
    let mut store =
        SqliteStore::open(&opts.db).with_context(|| format!("cannot open the store {}", opts.db.display()))?;
    store.set_setting(crate::admin::MIN_ACCOUNTS_SETTING, &opts.min_accounts.to_string())?;
    let stale = store.sessions_close_stale("hub restarted")?;
    if stale > 0 {
        tracing::info!(stale, "closed sessions left open by the previous hub process");
    }
    let store: Arc<SharedStore> = Arc::new(Mutex::new(Box::new(store)));

    let udp = UdpSocket::bind(opts.listen)
        .with_context(|| format!("cannot bind UDP {} (is another hub running?)", opts.listen))?;
    crate::util::set_socket_buffers(&udp, opts.socket_buffer);
    let tcp = StdTcpListener::bind(opts.listen)
        .with_context(|| format!("cannot listen on TCP {} (is another hub running?)", opts.listen))?;
    tcp.set_nonblocking(true)?;
    let tcp = TcpListener::from_std(tcp)?;

    let table = Arc::new(RwLock::new(RelayTable::default()));
    let stats = Arc::new(RelayStats::default());
    {
        let (table, stats) = (table.clone(), stats.clone());
        std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || udp::run(udp, table, stats, crate::udp_batch::Offloads::from_env()))?;
    }

    let ctx = Arc::new(HubContext {
        keys,
        store: store.clone(),
        registry: Registry::new(store.clone(), table.clone(), opts.overlay),
        limiter: LoginLimiter::default(),
        overlay: opts.overlay,
    });

    let _status = {
        let (ctx, stats, table) = (ctx.clone(), stats.clone(), table.clone());
        let url = url.to_string();
        local_api::serve(
            &opts.status_socket,
            Arc::new(move |req, _caller| match req.cmd.as_str() {
                "stats" | "status" => serde_json::json!({
                    "url": url,
                    "relay": stats.snapshot(),
                    "bound_endpoints": table.read().unwrap().bound_nodes(),
                    "sessions": ctx.registry.summaries(),
                }),
                other => serde_json::json!({"error": format!("unknown command {other:?}")}),
            }),
        )?
    };

    tokio::spawn(watch_store(ctx.clone()));
    tokio::spawn(contract_jobs(ctx.clone()));
    tokio::spawn(notices::run(store.clone(), mailer));

    tracing::info!(listen = %opts.listen, db = %opts.db.display(), overlay = %opts.overlay, "hub running");
    println!("mcvpn hub listening on {} (TCP control, UDP relay)", opts.listen);
    println!("server URL for users: {url}");

    let accept = async {
        loop {
            match tcp.accept().await {
                Ok((stream, source)) => {
                    tokio::spawn(control::handle(stream, source, ctx.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = crate::util::shutdown_signal() => {
            tracing::info!("hub stopping");
        }
    }
    ctx.registry.close_all("hub stopped");
    Ok(())
}

/// How often the hub applies the contract calendar (cancellations and scheduled
/// terminations taking effect, renewal reminders).
const CONTRACT_JOBS: Duration = Duration::from_secs(30);

async fn contract_jobs(ctx: Arc<HubContext>) {
    let mut tick = tokio::time::interval(CONTRACT_JOBS);
    loop {
        tick.tick().await;
        let ctx = ctx.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let done = {
                let mut store = ctx.store.lock().unwrap();
                crate::admin::apply_due(&mut **store, crate::store::now(), crate::store::today())
            };
            match done {
                Ok(done) if !done.is_empty() => {
                    for d in &done {
                        tracing::info!("{d}");
                    }
                    ctx.registry.refresh();
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "contract jobs failed"),
            }
        })
        .await;
    }
}

/// Notices store changes made by other processes (`mcvpn admin` suspending a contract,
/// locking an account) and applies them to live sessions within [`STORE_POLL`].
async fn watch_store(ctx: Arc<HubContext>) {
    let mut last = ctx.store.lock().unwrap().external_change_marker().ok();
    let mut tick = tokio::time::interval(STORE_POLL);
    loop {
        tick.tick().await;
        let now = ctx.store.lock().unwrap().external_change_marker().ok();
        if now != last {
            last = now;
            let ctx = ctx.clone();
            let _ = tokio::task::spawn_blocking(move || ctx.registry.refresh()).await;
        }
    }
}
