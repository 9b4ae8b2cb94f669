//! `mcvpn-bench control`: a load test of the hub's control plane, against a real
//! `mcvpn hub` process.
//!
//! The driver seeds a fresh store (contracts of `--devices-per-account`-device accounts:
//! one enrolled target and the rest clients holding a valid resume token, written
//! straight into the store so that seeding costs no Argon2), starts `mcvpn hub` on it
//! (loopback, HTTPS off, every other setting as shipped), and then, each phase measured
//! on its own:
//!
//! 1. **password logins**: `--password-logins` real client logins with the account
//!    password (Argon2 on the hub), `2 × cores` at a time, each closed after `LoginOk`:
//!    logins/s and latency; the hub's RSS after it holds the Argon2 working set;
//! 2. **ramp**: opens `--sessions` control sessions (TCP, Noise IK, a device-key login for
//!    targets and a resume login for clients), `--concurrency` logins at a time, each
//!    from one of `--sources` loopback addresses 127.77.x.y (TCP and its UDP socket); every
//!    session then binds its UDP endpoint with a MAC'd `Bind` (answering the `Challenge`);
//! 3. **idle** for `--idle-seconds`: each session pings every 10 s and refreshes its bind
//!    every 10 s, as a node does. Hub CPU (utime + stime of the process), RSS, fds, and
//!    every keepalive `Bind` left without its `Bound` within the next refresh;
//! 4. **churn** for `--churn-seconds`: `--churn-percent` of the sessions per minute close
//!    their connection and log in again (same credential) and rebind: login latency
//!    p50/p99 (connect to `LoginOk`), hub CPU;
//! 5. **suspension**: `mcvpn admin --db DB contract suspend` of the first contract
//!    (`sessions / contracts` live sessions), timed from starting the command to the
//!    last of that contract's sessions seeing its `Kick` (or its connection close); no
//!    other contract's session may be cut.
//!
//! The hub runs with its stdout and stderr in `WORKDIR/hub.log` (its default log level).
//!
//! With `--hubs N` (N > 1, PostgreSQL only) the driver starts N hubs on the one database,
//! named hub0…hubN-1, each on its own port with its own log (`WORKDIR/hubI.log`); device
//! `i` logs in to hub `i mod N`, so every contract (and every account) has sessions on
//! every hub and the suspension must cut them on all. The password logins go to hub0.
//! The idle phase reports each hub's RSS per session and its connections to the store
//! (TCP sockets of the hub process to the database's port: the pool, not per session).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use blake2::{Blake2s256, Digest};
use clap::Args;
use mcvpn::channel::{self, ChannelReader, ChannelWriter};
use mcvpn::keys::KeyPair;
use mcvpn::proto::control::{Credential, Event, Hello, Key32, RefuseReason, Request, Role, PROTOCOL_VERSION};
use mcvpn::proto::relay::{BindMsg, Kind, NodeId, RelayKey, BIND_LEN};
use mcvpn::secret::SecretString;
use mcvpn::store::{NewContract, OverlayNet, StoreLocation};
use rand::{Rng, RngCore};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::relay::{parse_stat_cpu_ticks, parse_status_kib};

/// How often a node pings the hub and refreshes its bind (src/node/session.rs,
/// src/node/relay_state.rs).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// A first bind without an answer is sent again after this long (BIND_RETRY).
const BIND_RETRY: Duration = Duration::from_secs(1);
/// The password of every account the driver creates.
const PASSWORD: &str = "load-test passphrase 1";
/// Accounts (one client device each) the password logins cycle through.
const PASSWORD_ACCOUNTS: usize = 8;

#[derive(Args, Debug, Clone)]
pub struct ControlBenchArgs {
    /// Control sessions held open at once
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Contracts the sessions are spread over evenly; the suspension cuts the first
    #[arg(long, default_value_t = 10)]
    pub contracts: usize,
    /// Devices per account: one target, the rest clients (the hub's default device
    /// limit per account is 10)
    #[arg(long, default_value_t = 10)]
    pub devices_per_account: usize,
    /// Loopback source addresses (127.77.x.y) the sessions are spread over
    #[arg(long, default_value_t = 250)]
    pub sources: usize,
    /// Logins in flight at once during the ramp and churn
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Password logins to time (0: none)
    #[arg(long, default_value_t = 200)]
    pub password_logins: usize,
    /// Seconds of the idle measurement
    #[arg(long, default_value_t = 30)]
    pub idle_seconds: u64,
    /// Seconds of churn
    #[arg(long, default_value_t = 60)]
    pub churn_seconds: u64,
    /// Sessions reconnecting per minute during the churn, % of all
    #[arg(long, default_value_t = 10.0)]
    pub churn_percent: f64,
    /// The `mcvpn` binary [default: `mcvpn` beside this program]
    #[arg(long)]
    pub mcvpn: Option<PathBuf>,
    /// Directory for the store, the hub's key, socket and log [default: a new temporary one, removed afterwards]
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Worker processes the sessions are shared among [default: enough for the open-file limit]
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// The store: an empty PostgreSQL database (postgres://USER@HOST:PORT/DB), to compare
    /// with the default, a new SQLite file in the work directory
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Hubs on the one store (more than 1 needs --db: several hubs share PostgreSQL)
    #[arg(long, default_value_t = 1)]
    pub hubs: usize,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to FILE
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------
// Report

#[derive(Debug, Serialize, Default)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    fn of(mut v: Vec<u32>) -> Latency {
        v.sort_unstable();
        let q = |p: f64| -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
            Some(v[i] as f64 / 1000.0)
        };
        Latency {
            count: v.len(),
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            max_ms: v.last().map(|&x| x as f64 / 1000.0),
        }
    }
}

#[derive(Debug, Serialize, Default)]
pub struct ControlBenchReport {
    pub sessions: usize,
    pub contracts: usize,
    pub devices_per_account: usize,
    pub sources: usize,
    pub concurrency: usize,
    pub nproc: usize,
    pub loadavg_1m_at_start: f64,
    /// The hub's Argon2 parameters (those of the account hashes it verifies).
    pub argon2_params: String,
    pub seed_s: f64,
    /// `sqlite` (a new file) or `postgresql` (`--db`).
    pub store: String,
    pub hubs: usize,
    pub password: PasswordFigures,
    pub ramp: RampFigures,
    pub idle: IdleFigures,
    pub churn: ChurnFigures,
    pub suspension: SuspensionFigures,
    pub hub_rss_peak_mib: f64,
    /// Sessions that ended without the driver asking (not counting the suspension).
    pub sessions_lost: u64,
    pub login_failures: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize, Default)]
pub struct PasswordFigures {
    pub logins: usize,
    pub logins_per_s: f64,
    /// Answered `RateLimited` (hash gate full) and tried again.
    pub busy_retries: u64,
    pub latency: Latency,
    pub hub_rss_before_mib: f64,
    pub hub_rss_after_mib: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct RampFigures {
    pub established: usize,
    pub seconds: f64,
    pub logins_per_s: f64,
    pub latency: Latency,
    /// Sessions whose UDP endpoint the hub bound (Bound received).
    pub bound: usize,
    pub hub_cpu_s: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct IdleFigures {
    pub seconds: f64,
    pub live_sessions: usize,
    pub hub_rss_mib: f64,
    /// (RSS at idle − RSS after the password logins) / sessions.
    pub rss_per_session_kib: f64,
    /// Hub CPU over the idle window, % of one core.
    pub hub_cpu_pct: f64,
    pub hub_fds: usize,
    pub hub_threads: usize,
    pub keepalive_binds_sent: u64,
    pub keepalive_binds_unanswered: u64,
    pub pings_sent: u64,
    pub pongs: u64,
    /// Each hub's share (one entry per hub; with one hub it repeats the figures above).
    pub per_hub: Vec<HubIdleFigures>,
}

#[derive(Debug, Serialize, Default)]
pub struct HubIdleFigures {
    pub name: String,
    pub live_sessions: usize,
    pub rss_mib: f64,
    /// (RSS at idle − RSS before the ramp) / this hub's live sessions.
    pub rss_per_session_kib: f64,
    pub cpu_pct: f64,
    pub fds: usize,
    /// The hub's TCP connections to the store's port (0 with SQLite).
    pub store_connections: usize,
}

#[derive(Debug, Serialize, Default)]
pub struct ChurnFigures {
    pub seconds: f64,
    pub reconnects: usize,
    pub reconnects_per_min: f64,
    /// Resume (client) and device-key (target) logins under churn.
    pub latency: Latency,
    pub hub_cpu_pct: f64,
    pub hub_rss_mib: f64,
    pub live_sessions_after: usize,
}

#[derive(Debug, Serialize, Default)]
pub struct SuspensionFigures {
    pub contract: String,
    pub live_sessions: usize,
    pub cut: usize,
    /// From starting `mcvpn admin contract suspend` to the last session cut.
    pub all_cut_s: Option<f64>,
    /// How long the admin command itself took.
    pub admin_command_s: f64,
    /// Sessions of other contracts cut meanwhile (must be 0).
    pub others_cut: usize,
}

// ---------------------------------------------------------------------------------
// Shared state

const PHASE_RAMP: u8 = 0;
const PHASE_IDLE: u8 = 1;
const PHASE_CHURN: u8 = 2;
const PHASE_SUSPEND: u8 = 3;

/// One simulated device, as the coordinator hands it to a worker process.
#[derive(Serialize, serde::Deserialize)]
struct DevSpec {
    contract: usize,
    account: String,
    secret: [u8; 32],
    role: Role,
    credential: Credential,
    source: Ipv4Addr,
}

struct Dev {
    contract: usize,
    account: String,
    key: KeyPair,
    role: Role,
    credential: Credential,
    source: Ipv4Addr,
}

impl Dev {
    fn spec(&self) -> DevSpec {
        DevSpec {
            contract: self.contract,
            account: self.account.clone(),
            secret: *self.key.secret_bytes(),
            role: self.role,
            credential: self.credential.clone(),
            source: self.source,
        }
    }

    fn from_spec(d: DevSpec) -> Dev {
        Dev {
            contract: d.contract,
            account: d.account,
            key: KeyPair::from_secret_bytes(d.secret),
            role: d.role,
            credential: d.credential,
            source: d.source,
        }
    }
}

/// CLOCK_MONOTONIC in µs: one clock for the coordinator and its workers.
fn mono_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[derive(Default)]
struct Counters {
    live: AtomicUsize,
    bound: AtomicUsize,
    login_failures: AtomicU64,
    lost: AtomicU64,
    keepalives_sent: AtomicU64,
    keepalives_unanswered: AtomicU64,
    pings: AtomicU64,
    pongs: AtomicU64,
    reconnects: AtomicU64,
}

struct Shared {
    hub: SocketAddr,
    hub_key: Key32,
    phase: AtomicU8,
    counters: Counters,
    /// Login latencies in µs, per phase.
    latencies: parking_lot::Mutex<[Vec<u32>; 4]>,
    logins: Semaphore,
    /// Per session: when it was cut by the hub, [`mono_us`] (0: not cut).
    cut_at: Vec<AtomicU64>,
    /// Per session: asked to reconnect.
    churn: Vec<Notify>,
    errors: parking_lot::Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn new(hub: SocketAddr, hub_key: Key32, n: usize, concurrency: usize) -> Shared {
        Shared {
            hub,
            hub_key,
            phase: AtomicU8::new(PHASE_RAMP),
            counters: Counters::default(),
            latencies: parking_lot::Mutex::new(Default::default()),
            logins: Semaphore::new(concurrency.max(1)),
            cut_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
            churn: (0..n).map(|_| Notify::new()).collect(),
            errors: parking_lot::Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        }
    }

    fn error(&self, e: String) {
        let mut errs = self.errors.lock();
        if errs.len() < 20 {
            errs.push(e);
        }
    }
}

// ---------------------------------------------------------------------------------
// The hub process

struct Hub {
    child: Child,
    pid: u32,
    name: String,
    listen: SocketAddr,
}

impl Hub {
    fn proc(&self, what: &str) -> Result<String> {
        std::fs::read_to_string(format!("/proc/{}/{what}", self.pid))
            .with_context(|| format!("reading the hub's {what}"))
    }
    fn rss_mib(&self, field: &str) -> f64 {
        self.proc("status")
            .ok()
            .and_then(|s| parse_status_kib(&s, field))
            .map_or(0.0, |k| k as f64 / 1024.0)
    }
    fn cpu_s(&self) -> f64 {
        self.proc("stat")
            .ok()
            .and_then(|s| parse_stat_cpu_ticks(&s))
            .map_or(0.0, |t| t as f64 / crate::relay::clock_ticks_per_second() as f64)
    }
    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }
    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid)).map_or(0, |d| d.count())
    }
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    /// The hub's established TCP connections to `port` on any address: its sockets
    /// (`/proc/PID/fd`) found in the kernel's TCP tables with that remote port.
    fn tcp_connections_to(&self, port: u16) -> usize {
        let inodes: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter_map(|l| {
                let l = l.to_str()?;
                l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect();
        ["tcp", "tcp6"]
            .iter()
            .filter_map(|t| self.proc(&format!("net/{t}")).ok())
            .map(|table| {
                table
                    .lines()
                    .skip(1)
                    .filter(|line| tcp_line_to_port(line, port).is_some_and(|inode| inodes.contains(&inode)))
                    .count()
            })
            .sum()
    }
}

/// The socket inode of a `/proc/net/tcp` line whose remote port is `port` and state
/// ESTABLISHED (01).
fn tcp_line_to_port(line: &str, port: u16) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let remote_port = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
    (remote_port == port && *f.get(3)? == "01").then_some(())?;
    f.get(9)?.parse().ok()
}

impl Drop for Hub {
    fn drop(&mut self) {
        // SAFETY: kill only signals the child we started.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both TCP and UDP on 127.0.0.1.
fn free_port() -> Result<u16> {
    for _ in 0..50 {
        let t = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = t.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port on 127.0.0.1")
}

fn mcvpn_binary(args: &ControlBenchArgs) -> Result<PathBuf> {
    if let Some(p) = &args.mcvpn {
        return Ok(p.clone());
    }
    let me = std::env::current_exe()?;
    let p = me.with_file_name("mcvpn");
    if !p.exists() {
        bail!("no mcvpn binary at {} (build it, or pass --mcvpn)", p.display());
    }
    Ok(p)
}

/// Starts hub `name` (empty: one hub, the hub's default name, files `hub.*`).
fn start_hub(bin: &Path, work: &Path, db: &str, listen: SocketAddr, name: &str) -> Result<Hub> {
    let file = |ext: &str| {
        work.join(if name.is_empty() {
            format!("hub.{ext}")
        } else {
            format!("{name}.{ext}")
        })
    };
    let log_path = file("log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(bin);
    cmd.arg("hub");
    if !name.is_empty() {
        cmd.args(["--name", name]);
    }
    let child = cmd
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--key")
        .arg(work.join("hub.key"))
        .arg("--db")
        .arg(db)
        .arg("--status-socket")
        .arg(file("sock"))
        .args(["--https-listen", "off"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id();
    let mut hub = Hub {
        child,
        pid,
        name: if name.is_empty() { "hub".into() } else { name.into() },
        listen,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if !hub.alive() {
            bail!("the hub exited at start; see {}", log_path.display());
        }
        if std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
            return Ok(hub);
        }
        if Instant::now() > deadline {
            bail!("the hub did not listen on {listen} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------
// Seeding

fn contract_name(c: usize) -> String {
    format!("load-c{c}")
}

fn token_hash(token: &str) -> Vec<u8> {
    Blake2s256::digest(token.as_bytes()).to_vec()
}

/// Writes the contracts, accounts and devices; returns the devices and the Argon2
/// parameters of the account hash.
/// The password logins' accounts, each with the device key it logs in with.
type PasswordAccounts = Vec<(String, KeyPair)>;

fn seed(db: &str, args: &ControlBenchArgs) -> Result<(Vec<Dev>, PasswordAccounts, String)> {
    let at = StoreLocation::parse(db).map_err(|e| anyhow!("--db: {e}"))?;
    let mut store = mcvpn::store::open(&at).map_err(|e| anyhow!("cannot open the store: {e}"))?;
    let s = &mut *store;
    let hash = mcvpn::password::hash(PASSWORD);
    let params = hash.split('$').nth(3).unwrap_or("?").to_string();
    let per_account = args.devices_per_account.max(1);
    let accounts = args.sessions.div_ceil(per_account);
    let contracts = args.contracts.clamp(1, accounts.max(1));
    let overlay = OverlayNet::default();
    let expires = mcvpn::store::now() + 30 * 86_400;
    let mut devs = Vec::with_capacity(args.sessions);
    let mut rng = rand::thread_rng();
    // Accounts are dealt to contracts in turn, so that every contract holds as many.
    let mut account_ids: Vec<(usize, i64, String)> = Vec::new();
    for c in 0..contracts {
        let n = accounts / contracts + usize::from(c < accounts % contracts);
        s.contract_add(&NewContract::simple(&contract_name(c), n.max(1) as u32))
            .map_err(|e| anyhow!("contract: {e}"))?;
        for a in 0..n {
            let name = format!("l{c}a{a}");
            let acc = s
                .account_add(&contract_name(c), &name, &hash)
                .map_err(|e| anyhow!("account {name}: {e}"))?;
            account_ids.push((c, acc.id, name));
        }
    }
    'outer: for (c, id, name) in &account_ids {
        for d in 0..per_account {
            if devs.len() == args.sessions {
                break 'outer;
            }
            let key = KeyPair::generate();
            let role = if d == 0 { Role::Target } else { Role::Client };
            let dev = s
                .device_register(*id, role, &key.public_key32(), &format!("{name}-d{d}"), overlay)
                .map_err(|e| anyhow!("device of {name}: {e}"))?;
            let credential = if role == Role::Client {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
                s.device_set_resume(dev.id, Some(&token_hash(&token)), Some(expires))
                    .map_err(|e| anyhow!("resume token: {e}"))?;
                Credential::Resume {
                    token: SecretString::new(token),
                }
            } else {
                Credential::DeviceKey
            };
            let i = devs.len();
            let src = i % args.sources.max(1);
            devs.push(Dev {
                contract: *c,
                account: name.clone(),
                key,
                role,
                credential,
                source: Ipv4Addr::new(127, 77, (src / 250) as u8, (src % 250 + 1) as u8),
            });
        }
    }
    // The password logins' accounts, in a contract of their own.
    s.contract_add(&NewContract::simple("load-pw", PASSWORD_ACCOUNTS as u32))
        .map_err(|e| anyhow!("contract: {e}"))?;
    let mut pw = Vec::new();
    for a in 0..PASSWORD_ACCOUNTS {
        let name = format!("pw{a}");
        s.account_add("load-pw", &name, &hash)
            .map_err(|e| anyhow!("account {name}: {e}"))?;
        pw.push((name, KeyPair::generate()));
    }
    Ok((devs, pw, params))
}

// ---------------------------------------------------------------------------------
// One node

/// Connects from `source`, runs Noise IK and logs in.
async fn login(
    shared: &Shared,
    source: Ipv4Addr,
    key: &KeyPair,
    account: &str,
    role: Role,
    credential: Credential,
) -> Result<(Event, ChannelReader, ChannelWriter)> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), sock.connect(shared.hub))
        .await
        .map_err(|_| anyhow!("connect timed out"))??;
    stream.set_nodelay(true)?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role,
    };
    let (mut rd, mut wr) = channel::initiate(Box::new(stream), key, &shared.hub_key, &hello).await?;
    wr.send(&Request::Login {
        account: Some(account.to_string()),
        credential,
        role,
        hostname: "load".into(),
        boot_id: rand::random(),
        enroll: false,
    })
    .await?;
    let ev: Event = tokio::time::timeout(Duration::from_secs(30), rd.recv())
        .await
        .map_err(|_| anyhow!("no answer to the login within 30 s"))??;
    Ok((ev, rd, wr))
}

/// Logs in (retrying transient failures a few times), recording the latency of the
/// successful attempt in the current phase.
async fn login_timed(shared: &Shared, dev: &Dev) -> Result<(ChannelReader, ChannelWriter, NodeId, u64, RelayKey)> {
    let mut last = anyhow!("not tried");
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        }
        let permit = shared.logins.acquire().await?;
        let t0 = Instant::now();
        let r = login(
            shared,
            dev.source,
            &dev.key,
            &dev.account,
            dev.role,
            dev.credential.clone(),
        )
        .await;
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        drop(permit);
        match r {
            Ok((Event::LoginOk(ok), rd, wr)) => {
                let phase = shared.phase.load(Ordering::Relaxed) as usize;
                shared.latencies.lock()[phase.min(3)].push(us);
                return Ok((rd, wr, ok.node_id, ok.session_id, *ok.relay_key.expose_secret()));
            }
            Ok((Event::Refused { reason, message, .. }, _, _)) => {
                if reason == RefuseReason::ContractSuspended {
                    bail!("refused: {message}");
                }
                last = anyhow!("refused ({reason:?}): {message}");
            }
            Ok((other, _, _)) => last = anyhow!("unexpected answer {other:?}"),
            Err(e) => last = e,
        }
        shared.counters.login_failures.fetch_add(1, Ordering::Relaxed);
    }
    Err(last)
}

/// The bind state of one session.
struct BindState {
    node: NodeId,
    session: u64,
    key: RelayKey,
    counter: u64,
    /// The counter of the last Bind not answered yet, and when it went.
    outstanding: Option<(u64, Instant)>,
    bound: bool,
}

impl BindState {
    fn msg(&self, kind: Kind, counter: u64) -> [u8; BIND_LEN] {
        BindMsg {
            kind,
            node: self.node,
            session: self.session,
            counter,
        }
        .encode(&self.key)
    }
}

enum Ended {
    Churn,
    Kicked,
    Lost(String),
    Stopped,
}

/// One simulated node: logs in, binds, keeps alive, reconnects when told to churn.
async fn node(shared: Arc<Shared>, devs: Arc<Vec<Dev>>, i: usize, ready: mpsc::UnboundedSender<bool>) {
    let dev = &devs[i];
    let udp = match UdpSocket::bind(SocketAddr::V4(SocketAddrV4::new(dev.source, 0))).await {
        Ok(u) => u,
        Err(e) => {
            shared.error(format!("UDP socket: {e}"));
            let _ = ready.send(false);
            return;
        }
    };
    if let Err(e) = udp.connect(shared.hub).await {
        shared.error(format!("UDP connect: {e}"));
        let _ = ready.send(false);
        return;
    }
    let mut first = true;
    loop {
        let (rd, mut wr, node, session, key) = match login_timed(&shared, dev).await {
            Ok(x) => x,
            Err(e) => {
                if shared.phase.load(Ordering::Relaxed) != PHASE_SUSPEND {
                    shared.error(format!("login of {} {}: {e:#}", dev.role.as_str(), dev.account));
                }
                if first {
                    let _ = ready.send(false);
                }
                return;
            }
        };
        shared.counters.live.fetch_add(1, Ordering::Relaxed);
        let (ev_tx, mut events) = mpsc::channel::<Result<Event>>(16);
        let reader = tokio::spawn(read_events(rd, ev_tx));
        let mut bind = BindState {
            node,
            session,
            key,
            counter: 1,
            outstanding: None,
            bound: false,
        };
        let _ = udp.send(&bind.msg(Kind::Bind, 1)).await;
        bind.outstanding = Some((1, Instant::now()));
        // Keepalives start at a random point of their period, as nodes' do.
        let offset = Duration::from_millis(rand::thread_rng().gen_range(0..KEEPALIVE.as_millis() as u64));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + offset, KEEPALIVE);
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + BIND_RETRY, BIND_RETRY);
        let mut seq = 0u64;
        let mut buf = [0u8; 256];
        let mut told_ready = !first;
        let mut since_refresh = Duration::ZERO;
        let end = loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Ok(Event::Kick { .. })) => break Ended::Kicked,
                    Some(Ok(Event::Pong { .. })) => { shared.counters.pongs.fetch_add(1, Ordering::Relaxed); }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Ended::Lost(format!("{e:#}")),
                    None => break Ended::Lost("reader ended".into()),
                },
                r = udp.recv(&mut buf) => {
                    let Ok(n) = r else { continue };
                    let d = &buf[..n];
                    let Ok(m) = BindMsg::parse(d) else { continue };
                    if m.node != bind.node || m.session != bind.session || BindMsg::verify(d, &bind.key).is_err() {
                        continue;
                    }
                    match m.kind {
                        Kind::Challenge => { let _ = udp.send(&bind.msg(Kind::Response, m.counter)).await; }
                        Kind::Bound => {
                            if bind.outstanding.is_some_and(|(c, _)| c == m.counter) {
                                bind.outstanding = None;
                            }
                            if !bind.bound {
                                bind.bound = true;
                                shared.counters.bound.fetch_add(1, Ordering::Relaxed);
                            }
                            if !told_ready {
                                told_ready = true;
                                let _ = ready.send(true);
                            }
                        }
                        _ => {}
                    }
                }
                _ = ping.tick() => {
                    seq += 1;
                    if let Err(e) = wr.send(&Request::Ping { seq }).await {
                        break Ended::Lost(format!("ping: {e:#}"));
                    }
                    shared.counters.pings.fetch_add(1, Ordering::Relaxed);
                }
                _ = refresh.tick() => {
                    // Bound: refresh every 10 s; not yet: retry every second.
                    since_refresh += BIND_RETRY;
                    if bind.bound && since_refresh < KEEPALIVE {
                        continue;
                    }
                    since_refresh = Duration::ZERO;
                    if bind.bound {
                        if bind.outstanding.is_some() {
                            shared.counters.keepalives_unanswered.fetch_add(1, Ordering::Relaxed);
                        }
                        shared.counters.keepalives_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    bind.counter += 1;
                    let _ = udp.send(&bind.msg(Kind::Bind, bind.counter)).await;
                    bind.outstanding = Some((bind.counter, Instant::now()));
                }
                _ = shared.churn[i].notified() => break Ended::Churn,
            }
            if shared.stop.load(Ordering::Relaxed) {
                break Ended::Stopped;
            }
        };
        first = false;
        reader.abort();
        shared.counters.live.fetch_sub(1, Ordering::Relaxed);
        if bind.bound {
            shared.counters.bound.fetch_sub(1, Ordering::Relaxed);
        }
        if !told_ready {
            let _ = ready.send(false);
        }
        match end {
            Ended::Churn => {
                shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                wr.shutdown().await;
                drop(wr);
                continue;
            }
            Ended::Stopped => return,
            Ended::Kicked | Ended::Lost(_) => {
                shared.cut_at[i].store(mono_us(), Ordering::Relaxed);
                if let Ended::Lost(why) = end {
                    if shared.phase.load(Ordering::Relaxed) != PHASE_SUSPEND {
                        shared.counters.lost.fetch_add(1, Ordering::Relaxed);
                        shared.error(format!("session of {} lost: {why}", dev.account));
                    }
                }
                return;
            }
        }
    }
}

async fn read_events(mut rd: ChannelReader, tx: mpsc::Sender<Result<Event>>) {
    loop {
        let r = rd.recv::<Event>().await;
        let end = r.is_err();
        if tx.send(r).await.is_err() || end {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------
// Phases

async fn password_logins(shared: &Arc<Shared>, pw: Arc<PasswordAccounts>, n: usize) -> (usize, f64, u64, Vec<u32>) {
    let workers = (2 * std::thread::available_parallelism().map_or(1, |n| n.get())).min(pw.len());
    let next = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (shared, pw, next, busy) = (shared.clone(), pw.clone(), next.clone(), busy.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (name, key) = &pw[w];
            let source = Ipv4Addr::new(127, 78, 0, w as u8 + 1);
            while next.fetch_add(1, Ordering::Relaxed) < n {
                loop {
                    let t = Instant::now();
                    let cred = Credential::Password {
                        password: SecretString::new(PASSWORD.into()),
                    };
                    match login(&shared, source, key, name, Role::Client, cred).await {
                        Ok((Event::LoginOk(_), _rd, mut wr)) => {
                            lat.push(t.elapsed().as_micros() as u32);
                            wr.shutdown().await;
                            break;
                        }
                        Ok((
                            Event::Refused {
                                reason: RefuseReason::RateLimited,
                                ..
                            },
                            _,
                            _,
                        )) => {
                            busy.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok((other, _, _)) => {
                            shared.error(format!("password login: {other:?}"));
                            return lat;
                        }
                        Err(e) => {
                            shared.error(format!("password login: {e:#}"));
                            return lat;
                        }
                    }
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let secs = t0.elapsed().as_secs_f64();
    (lat.len(), secs, busy.load(Ordering::Relaxed), lat)
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn run_cli(args: ControlBenchArgs) -> Result<()> {
    crate::relay::raise_nofile(nofile_hard().min(65_536))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(run(&args))?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(out) = &args.out {
        std::fs::write(out, &json).with_context(|| format!("writing {}", out.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print_report(&report);
    }
    if report.ramp.established < report.sessions {
        bail!(
            "only {} of {} sessions were established",
            report.ramp.established,
            report.sessions
        );
    }
    if report.suspension.cut < report.suspension.live_sessions || report.suspension.all_cut_s.is_none() {
        bail!(
            "the suspension cut {} of {} sessions",
            report.suspension.cut,
            report.suspension.live_sessions
        );
    }
    Ok(())
}

fn mib(x: f64) -> String {
    format!("{x:.1} MiB")
}

fn ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.1} ms"))
}

fn print_report(r: &ControlBenchReport) {
    println!(
        "control load test: {} sessions in {} contracts, {} devices per account, {} source addresses, {} hub(s) on {}, {} CPUs, load {:.2} at start",
        r.sessions,
        r.contracts,
        r.devices_per_account,
        r.sources,
        r.hubs,
        r.store,
        r.nproc,
        r.loadavg_1m_at_start
    );
    let p = &r.password;
    println!(
        "password logins : {} in {:.1} s = {:.1}/s (Argon2 {}), p50 {} p99 {}, {} busy retries; hub RSS {} -> {}",
        p.logins,
        if p.logins_per_s > 0.0 {
            p.logins as f64 / p.logins_per_s
        } else {
            0.0
        },
        p.logins_per_s,
        r.argon2_params,
        ms(p.latency.p50_ms),
        ms(p.latency.p99_ms),
        p.busy_retries,
        mib(p.hub_rss_before_mib),
        mib(p.hub_rss_after_mib)
    );
    let m = &r.ramp;
    println!(
        "ramp            : {} sessions in {:.1} s = {:.0} logins/s, p50 {} p99 {}, {} bound, hub CPU {:.1} s",
        m.established,
        m.seconds,
        m.logins_per_s,
        ms(m.latency.p50_ms),
        ms(m.latency.p99_ms),
        m.bound,
        m.hub_cpu_s
    );
    let i = &r.idle;
    println!(
        "idle            : {} live for {:.0} s: hub RSS {} ({:.1} KiB/session), CPU {:.2} % of a core, {} fds, {} threads; \
         keepalive binds {} sent, {} unanswered; pings {} / pongs {}",
        i.live_sessions,
        i.seconds,
        mib(i.hub_rss_mib),
        i.rss_per_session_kib,
        i.hub_cpu_pct,
        i.hub_fds,
        i.hub_threads,
        i.keepalive_binds_sent,
        i.keepalive_binds_unanswered,
        i.pings_sent,
        i.pongs
    );
    for h in &i.per_hub {
        println!(
            "  {:<14}: {} live: RSS {} ({:.1} KiB/session), CPU {:.2} %, {} fds, {} connection(s) to the store",
            h.name,
            h.live_sessions,
            mib(h.rss_mib),
            h.rss_per_session_kib,
            h.cpu_pct,
            h.fds,
            h.store_connections
        );
    }
    let c = &r.churn;
    println!(
        "churn           : {} reconnects in {:.0} s ({:.0}/min): login p50 {} p99 {} max {}; hub CPU {:.1} %, RSS {}, {} live after",
        c.reconnects,
        c.seconds,
        c.reconnects_per_min,
        ms(c.latency.p50_ms),
        ms(c.latency.p99_ms),
        ms(c.latency.max_ms),
        c.hub_cpu_pct,
        mib(c.hub_rss_mib),
        c.live_sessions_after
    );
    let s = &r.suspension;
    println!(
        "suspension      : {} of {} live sessions of {} cut in {} (admin command {:.2} s), {} of other contracts cut",
        s.cut,
        s.live_sessions,
        s.contract,
        s.all_cut_s.map_or("-".into(), |x| format!("{x:.3} s")),
        s.admin_command_s,
        s.others_cut
    );
    println!(
        "hub peak RSS {} (the largest hub); {} sessions lost, {} login failures",
        mib(r.hub_rss_peak_mib),
        r.sessions_lost,
        r.login_failures
    );
    for e in &r.errors {
        println!("  error: {e}");
    }
}

async fn run(args: &ControlBenchArgs) -> Result<ControlBenchReport> {
    if args.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    if args.hubs == 0 {
        bail!("--hubs must be at least 1");
    }
    if args.hubs > 1 && args.db.is_none() {
        bail!(
            "--hubs {} needs --db postgres://…: several hubs share one PostgreSQL, not a SQLite file",
            args.hubs
        );
    }
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = ControlBenchReport {
        sessions: args.sessions,
        contracts: args.contracts,
        devices_per_account: args.devices_per_account,
        sources: args.sources,
        concurrency: args.concurrency,
        nproc,
        loadavg_1m_at_start: loadavg(),
        ..Default::default()
    };
    let bin = mcvpn_binary(args)?;
    let (work, _tmp) = match &args.workdir {
        Some(w) => {
            std::fs::create_dir_all(w)?;
            (w.clone(), None)
        }
        None => {
            let d = std::env::temp_dir().join(format!("mcvpn-load-{}", std::process::id()));
            std::fs::create_dir_all(&d)?;
            (d.clone(), Some(TempDir(d)))
        }
    };
    let db = match &args.db {
        Some(url) => url.clone(),
        None => {
            let file = work.join("hub.db");
            if file.exists() {
                bail!("{} exists already: give an empty --workdir", file.display());
            }
            file.display().to_string()
        }
    };

    eprintln!("control: seeding the store ({} devices)", args.sessions);
    let t = Instant::now();
    let (devs, pw, params) = {
        let (db, a) = (db.clone(), args.clone());
        tokio::task::spawn_blocking(move || seed(&db, &a)).await??
    };
    report.seed_s = t.elapsed().as_secs_f64();
    report.store = if args.db.is_some() { "postgresql" } else { "sqlite" }.into();
    report.hubs = args.hubs;
    report.argon2_params = format!("argon2id {params}");
    report.contracts = devs.iter().map(|d| d.contract).max().map_or(0, |c| c + 1);
    let hub_key = KeyPair::generate();
    hub_key.save(&work.join("hub.key"))?;

    // Each session holds a TCP and a UDP socket in the driver: the sessions are shared
    // out among worker processes, each within the open-file limit.
    let n = devs.len();
    // Each worker talks to one hub (worker w to hub w mod N): a whole number of workers
    // per hub, so that device i (in worker i mod workers) is on hub i mod N.
    let per_worker = ((nofile_hard().saturating_sub(256)) / 3).clamp(1, 8000) as usize;
    let workers = if args.workers > 0 {
        args.workers
    } else {
        n.div_ceil(per_worker)
    }
    .div_ceil(args.hubs)
        * args.hubs;
    let hub_key_hex: String = hub_key.public_key32().0.iter().map(|x| format!("{x:02x}")).collect();
    let victims_total = devs.iter().filter(|d| d.contract == 0).count();

    let mut hubs = Vec::with_capacity(args.hubs);
    for h in 0..args.hubs {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let name = if args.hubs == 1 {
            String::new()
        } else {
            format!("hub{h}")
        };
        eprintln!(
            "control: starting {} on {listen}",
            if name.is_empty() { "the hub" } else { &name }
        );
        hubs.push(start_hub(&bin, &work, &db, listen, &name)?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let store_port = args
        .db
        .as_deref()
        .map(|url| mcvpn::store::postgres::parse_url(url).map_err(|e| anyhow!("--db: {e}")))
        .transpose()?
        .and_then(|c| c.get_ports().first().copied())
        .or(args.db.as_ref().map(|_| 5432));
    let cpu_s = |hubs: &[Hub]| hubs.iter().map(Hub::cpu_s).sum::<f64>();
    let hub = &hubs[0];

    let shared = Arc::new(Shared::new(hub.listen, hub_key.public_key32(), 0, args.concurrency));

    // 1. Password logins.
    report.password.hub_rss_before_mib = hub.rss_mib("VmRSS");
    if args.password_logins > 0 {
        eprintln!("control: {} password logins", args.password_logins);
        let (count, secs, busy, lat) = password_logins(&shared, Arc::new(pw), args.password_logins).await;
        report.password.logins = count;
        report.password.logins_per_s = count as f64 / secs.max(1e-9);
        report.password.busy_retries = busy;
        report.password.latency = Latency::of(lat);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.password.hub_rss_after_mib = hub.rss_mib("VmRSS");
    let rss_before_ramp: Vec<f64> = hubs.iter().map(|h| h.rss_mib("VmRSS")).collect();

    // 2. Ramp.
    eprintln!("control: opening {n} sessions from {workers} worker process(es)");
    let me = std::env::current_exe()?;
    let mut shards: Vec<Vec<DevSpec>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, d) in devs.iter().enumerate() {
        shards[i % workers].push(d.spec());
    }
    drop(devs);
    let mut procs = Vec::new();
    for (w, shard) in shards.into_iter().enumerate() {
        let file = work.join(format!("devices-{w}.json"));
        std::fs::write(&file, serde_json::to_vec(&shard)?)?;
        procs.push(WorkerProc::spawn(
            &me,
            hubs[w % hubs.len()].listen,
            &hub_key_hex,
            &file,
            args.concurrency.div_ceil(workers),
        )?);
    }
    let cpu0 = cpu_s(&hubs);
    let t = Instant::now();
    let established: usize = all::<usize>(&mut procs, "ramp").await?.into_iter().sum();
    let ramp_s = t.elapsed().as_secs_f64();
    let counters = |v: Vec<WorkerCounters>| v.into_iter().fold(WorkerCounters::default(), |a, b| a.add(&b));
    let c = counters(all(&mut procs, "counters").await?);
    report.ramp = RampFigures {
        established,
        seconds: ramp_s,
        logins_per_s: established as f64 / ramp_s.max(1e-9),
        latency: Latency::of(all::<Vec<u32>>(&mut procs, "latencies 0").await?.concat()),
        bound: c.bound,
        hub_cpu_s: cpu_s(&hubs) - cpu0,
    };
    eprintln!(
        "control: {established} sessions up in {ramp_s:.1} s; settling, then {} s idle",
        args.idle_seconds
    );

    // 3. Idle: let the ramp's stragglers and its first keepalives pass first.
    all::<()>(&mut procs, &format!("phase {PHASE_IDLE}")).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c0 = counters(all(&mut procs, "counters").await?);
    let (cpu0, t) = (hubs.iter().map(Hub::cpu_s).collect::<Vec<_>>(), Instant::now());
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_s = t.elapsed().as_secs_f64();
    let per_worker_counters: Vec<WorkerCounters> = all(&mut procs, "counters").await?;
    let per_hub: Vec<HubIdleFigures> = hubs
        .iter()
        .enumerate()
        .map(|(h, hub)| {
            let live = per_worker_counters
                .iter()
                .enumerate()
                .filter(|(w, _)| w % hubs.len() == h)
                .map(|(_, c)| c.live)
                .sum::<usize>();
            let rss = hub.rss_mib("VmRSS");
            HubIdleFigures {
                name: hub.name.clone(),
                live_sessions: live,
                rss_mib: rss,
                rss_per_session_kib: (rss - rss_before_ramp[h]) * 1024.0 / live.max(1) as f64,
                cpu_pct: (hub.cpu_s() - cpu0[h]) / idle_s * 100.0,
                fds: hub.fds(),
                store_connections: store_port.map_or(0, |p| hub.tcp_connections_to(p)),
            }
        })
        .collect();
    let c1 = counters(per_worker_counters);
    report.idle = IdleFigures {
        seconds: idle_s,
        live_sessions: c1.live,
        hub_rss_mib: per_hub.iter().map(|h| h.rss_mib).sum(),
        // The goal is per session per hub: the worst hub's figure.
        rss_per_session_kib: per_hub.iter().map(|h| h.rss_per_session_kib).fold(0.0, f64::max),
        hub_cpu_pct: per_hub.iter().map(|h| h.cpu_pct).sum(),
        hub_fds: per_hub.iter().map(|h| h.fds).sum(),
        hub_threads: hubs.iter().map(Hub::threads).sum(),
        keepalive_binds_sent: c1.keepalives_sent - c0.keepalives_sent,
        keepalive_binds_unanswered: c1.keepalives_unanswered - c0.keepalives_unanswered,
        pings_sent: c1.pings - c0.pings,
        pongs: c1.pongs - c0.pongs,
        per_hub,
    };

    // 4. Churn: each worker churns its share.
    all::<()>(&mut procs, &format!("phase {PHASE_CHURN}")).await?;
    let per_s = n as f64 * args.churn_percent / 100.0 / 60.0;
    eprintln!(
        "control: churn at {:.1} reconnects/s for {} s",
        per_s, args.churn_seconds
    );
    let (cpu0, t) = (cpu_s(&hubs), Instant::now());
    all::<()>(
        &mut procs,
        &format!("churn {} {}", per_s / workers as f64, args.churn_seconds),
    )
    .await?;
    // The last reconnects finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let churn_s = t.elapsed().as_secs_f64();
    let churn_cpu = cpu_s(&hubs) - cpu0;
    let c2 = counters(all(&mut procs, "counters").await?);
    let reconnects = (c2.reconnects - c1.reconnects) as usize;
    report.churn = ChurnFigures {
        seconds: churn_s,
        reconnects,
        reconnects_per_min: reconnects as f64 / churn_s * 60.0,
        latency: Latency::of(
            all::<Vec<u32>>(&mut procs, &format!("latencies {PHASE_CHURN}"))
                .await?
                .concat(),
        ),
        hub_cpu_pct: churn_cpu / churn_s * 100.0,
        hub_rss_mib: hubs.iter().map(|h| h.rss_mib("VmRSS")).sum(),
        live_sessions_after: c2.live,
    };

    // 5. Suspension of the first contract.
    all::<()>(&mut procs, &format!("phase {PHASE_SUSPEND}")).await?;
    let before: Vec<Cuts> = all(&mut procs, "cuts").await?;
    let live_victims = before
        .iter()
        .map(|c| c.victims.iter().filter(|&&x| x == 0).count())
        .sum::<usize>();
    let name = contract_name(0);
    eprintln!("control: suspending {name} ({live_victims} of {victims_total} sessions live)");
    let started = mono_us();
    let t = Instant::now();
    let out = tokio::process::Command::new(&bin)
        .args(["admin", "--db"])
        .arg(&db)
        .args(["contract", "suspend", &name, "--reason", "load test"])
        .output()
        .await?;
    let admin_s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        report.errors.push(format!(
            "mcvpn admin contract suspend: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after: Vec<Cuts>;
    let newly = |after: &[Cuts], victims: bool| -> Vec<u64> {
        before
            .iter()
            .zip(after)
            .flat_map(|(b, a)| {
                let (b, a) = if victims {
                    (&b.victims, &a.victims)
                } else {
                    (&b.others, &a.others)
                };
                b.iter()
                    .zip(a)
                    .filter(|(&x, &y)| x == 0 && y != 0)
                    .map(|(_, &y)| y)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = all(&mut procs, "cuts").await?;
        if newly(&after, true).len() >= live_victims || Instant::now() > deadline {
            break;
        }
    }
    let cut_times = newly(&after, true);
    // Give a wrongly cut session of another contract a moment to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<Cuts> = all(&mut procs, "cuts").await?;
    let cut = cut_times.len();
    report.suspension = SuspensionFigures {
        contract: name,
        live_sessions: live_victims,
        cut,
        all_cut_s: (cut == live_victims && live_victims > 0)
            .then(|| cut_times.iter().max().copied().unwrap_or(0).saturating_sub(started) as f64 / 1e6),
        admin_command_s: admin_s,
        others_cut: newly(&after, false).len(),
    };

    report.hub_rss_peak_mib = hubs.iter().map(|h| h.rss_mib("VmHWM")).fold(0.0, f64::max);
    let c3 = counters(all(&mut procs, "counters").await?);
    report.sessions_lost = c3.lost;
    report.login_failures = c3.login_failures;
    for errs in all::<Vec<String>>(&mut procs, "errors").await? {
        report.errors.extend(errs);
    }
    report.errors.extend(std::mem::take(&mut *shared.errors.lock()));
    let _ = all::<()>(&mut procs, "stop").await;
    for p in &mut procs {
        let _ = p.child.wait().await;
    }
    for hub in &mut hubs {
        if !hub.alive() {
            report.errors.push(format!("{} exited during the test", hub.name));
        }
    }
    drop(hubs);
    eprintln!("control: done");
    Ok(report)
}

/// The hard open-file limit (what a worker may raise its own to).
fn nofile_hard() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_max
}

/// Cut times ([`mono_us`], 0: live) of a worker's sessions, the first contract's and the others'.
#[derive(Serialize, serde::Deserialize, Default)]
struct Cuts {
    victims: Vec<u64>,
    others: Vec<u64>,
}

#[derive(Serialize, serde::Deserialize, Default, Debug, Clone, Copy)]
struct WorkerCounters {
    live: usize,
    bound: usize,
    keepalives_sent: u64,
    keepalives_unanswered: u64,
    pings: u64,
    pongs: u64,
    reconnects: u64,
    lost: u64,
    login_failures: u64,
}

impl WorkerCounters {
    fn add(self, o: &WorkerCounters) -> WorkerCounters {
        WorkerCounters {
            live: self.live + o.live,
            bound: self.bound + o.bound,
            keepalives_sent: self.keepalives_sent + o.keepalives_sent,
            keepalives_unanswered: self.keepalives_unanswered + o.keepalives_unanswered,
            pings: self.pings + o.pings,
            pongs: self.pongs + o.pongs,
            reconnects: self.reconnects + o.reconnects,
            lost: self.lost + o.lost,
            login_failures: self.login_failures + o.login_failures,
        }
    }

    fn of(c: &Counters) -> WorkerCounters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerCounters {
            live: c.live.load(Ordering::Relaxed),
            bound: c.bound.load(Ordering::Relaxed),
            keepalives_sent: l(&c.keepalives_sent),
            keepalives_unanswered: l(&c.keepalives_unanswered),
            pings: l(&c.pings),
            pongs: l(&c.pongs),
            reconnects: l(&c.reconnects),
            lost: l(&c.lost),
            login_failures: l(&c.login_failures),
        }
    }
}

/// A worker process: commands on its stdin, one JSON answer a line on its stdout.
struct WorkerProc {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl WorkerProc {
    fn spawn(me: &Path, hub: SocketAddr, hub_key: &str, devices: &Path, concurrency: usize) -> Result<WorkerProc> {
        let mut child = tokio::process::Command::new(me)
            .arg("control-worker")
            .arg("--hub")
            .arg(hub.to_string())
            .arg("--hub-key")
            .arg(hub_key)
            .arg("--devices")
            .arg(devices)
            .arg("--concurrency")
            .arg(concurrency.max(1).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a worker process")?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        Ok(WorkerProc {
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
        })
    }
}

/// Sends `cmd` to every worker, then reads every answer.
async fn all<T: serde::de::DeserializeOwned>(procs: &mut [WorkerProc], cmd: &str) -> Result<Vec<T>> {
    for p in procs.iter_mut() {
        p.stdin.write_all(format!("{cmd}\n").as_bytes()).await?;
        p.stdin.flush().await?;
    }
    let mut out = Vec::with_capacity(procs.len());
    for p in procs.iter_mut() {
        let line = p
            .lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("a worker process ended (command {cmd:?})"))?;
        out.push(serde_json::from_str(&line).with_context(|| format!("a worker's answer to {cmd:?}: {line}"))?);
    }
    Ok(out)
}

/// `mcvpn-bench control-worker`: runs a share of the sessions for `control` (internal).
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    #[arg(long)]
    hub: SocketAddr,
    /// The hub's public key, hex
    #[arg(long)]
    hub_key: String,
    /// The devices of this worker (JSON)
    #[arg(long)]
    devices: PathBuf,
    #[arg(long)]
    concurrency: usize,
}

pub fn run_worker_cli(a: WorkerArgs) -> Result<()> {
    crate::relay::raise_nofile(nofile_hard())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(worker(a))
}

fn parse_key(hex: &str) -> Result<Key32> {
    let mut k = [0u8; 32];
    if hex.len() != 64 {
        bail!("--hub-key: 64 hex digits");
    }
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?;
    }
    Ok(Key32(k))
}

async fn worker(a: WorkerArgs) -> Result<()> {
    let specs: Vec<DevSpec> = serde_json::from_slice(&std::fs::read(&a.devices)?)?;
    let devs: Arc<Vec<Dev>> = Arc::new(specs.into_iter().map(Dev::from_spec).collect());
    let n = devs.len();
    let shared = Arc::new(Shared::new(a.hub, parse_key(&a.hub_key)?, n, a.concurrency));
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut tasks = Vec::new();
    let reply = |v: serde_json::Value| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    };
    while let Some(line) = stdin.next_line().await? {
        let mut words = line.split_whitespace();
        match words.next().unwrap_or("") {
            "ramp" => {
                let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
                for i in 0..n {
                    tasks.push(tokio::spawn(node(shared.clone(), devs.clone(), i, ready_tx.clone())));
                }
                drop(ready_tx);
                let (mut answered, mut established) = (0, 0);
                while answered < n {
                    match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
                        Ok(Some(ok)) => {
                            answered += 1;
                            established += usize::from(ok);
                        }
                        Ok(None) => break,
                        Err(_) => {
                            shared.error(format!("ramp: no progress for 60 s at {answered} of {n}"));
                            break;
                        }
                    }
                }
                reply(serde_json::json!(established));
            }
            "phase" => {
                let p: u8 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                shared.phase.store(p, Ordering::Relaxed);
                reply(serde_json::Value::Null);
            }
            "counters" => reply(serde_json::to_value(WorkerCounters::of(&shared.counters))?),
            "latencies" => {
                let p: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let v = std::mem::take(&mut shared.latencies.lock()[p.min(3)]);
                reply(serde_json::to_value(v)?);
            }
            "churn" => {
                let per_s: f64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
                let secs: f64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
                let end = Instant::now() + Duration::from_secs_f64(secs);
                let mut owed = 0.0;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while Instant::now() < end && per_s > 0.0 && n > 0 {
                    tick.tick().await;
                    owed += per_s * 0.1;
                    while owed >= 1.0 {
                        owed -= 1.0;
                        let i = rand::thread_rng().gen_range(0..n);
                        shared.churn[i].notify_one();
                    }
                }
                reply(serde_json::Value::Null);
            }
            "cuts" => {
                let mut c = Cuts::default();
                for (i, d) in devs.iter().enumerate() {
                    let at = shared.cut_at[i].load(Ordering::Relaxed);
                    if d.contract == 0 {
                        c.victims.push(at);
                    } else {
                        c.others.push(at);
                    }
                }
                reply(serde_json::to_value(c)?);
            }
            "errors" => reply(serde_json::to_value(std::mem::take(&mut *shared.errors.lock()))?),
            "stop" => {
                shared.stop.store(true, Ordering::Relaxed);
                for t in &tasks {
                    t.abort();
                }
                reply(serde_json::Value::Null);
                break;
            }
            other => bail!("unknown worker command {other:?}"),
        }
    }
    Ok(())
}

/// Removes the temporary directory when the run ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles() {
        let l = Latency::of((1..=100).map(|x| x * 1000).collect());
        assert_eq!(l.count, 100);
        assert_eq!(l.p50_ms, Some(50.0));
        assert_eq!(l.p99_ms, Some(99.0));
        assert_eq!(l.max_ms, Some(100.0));
        assert_eq!(Latency::of(vec![]).p50_ms, None);
    }

    #[test]
    fn a_proc_net_tcp_line_gives_its_inode_when_established_to_the_port() {
        // Two lines of /proc/net/tcp: an established connection to 127.0.0.1:5432 (0x1538)
        // and a listening socket on that port.
        let to_pg = "   3: 0100007F:9C40 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1";
        let listening = "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   117        0 654321 1 0000000000000000 100 0 0 10 0";
        assert_eq!(tcp_line_to_port(to_pg, 5432), Some(123456));
        assert_eq!(tcp_line_to_port(to_pg, 5433), None);
        assert_eq!(tcp_line_to_port(listening, 5432), None);
        assert_eq!(tcp_line_to_port("garbage", 5432), None);
    }

    #[test]
    fn token_hash_is_the_hubs() {
        // src/hub/auth.rs keeps Blake2s-256 of the token's text.
        assert_eq!(token_hash("x").len(), 32);
    }
}
