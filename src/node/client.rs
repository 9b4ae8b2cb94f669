//! `mcvpn up`, `down`, `status`: the user's side.
//!
//! `up` asks for the password in the foreground, then starts a daemon (itself, re-run
//! with a hidden subcommand) that logs in, brings up the TUN and stays. The daemon
//! reports success or the hub's refusal over a pipe before `up` returns, so the user
//! sees the real outcome and the exit status says it. With nothing left running on
//! failure: the TUN belongs to the daemon's process and vanishes with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::session::{self, LoginError, SessionEnd};
use super::settings::{TransportMode, TransportOptions};
use super::{ControlSettings, DataPathSettings, Node, NodeSettings, NodeStatus};
use crate::exit::{self, Exit};
use crate::keys::KeyPair;
use crate::local_api::{self, Ack, LocalRequest};
use crate::proto::control::{Credential, Event, Role};
use crate::proto::url::HubUrl;

/// What `/etc/mcvpn/mcvpn.toml` remembers after the first successful `up`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientConfig {
    pub hub: Option<String>,
    pub account: Option<String>,
    /// `--transport`, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportMode>,
    /// `--proxy` (`none` included), when one was given; never its password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

impl ClientConfig {
    pub fn load(path: &Path) -> Result<ClientConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("{} is not a valid mcvpn config", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::util::write_atomic(path, toml::to_string(self)?.as_bytes(), 0o644)
    }
}

/// Paths and knobs common to `up`, `down` and `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientPaths {
    pub config: PathBuf,
    pub run_dir: PathBuf,
    pub key: PathBuf,
    /// Where the background daemon's log goes (`client.log`): kept across reboots, unlike
    /// the run directory. Under systemd the client runs in the foreground and logs to the
    /// journal instead.
    pub log_dir: PathBuf,
    /// The resume credential `up --persist` keeps (mode 0600) so that the boot-time
    /// service logs in without the password, which is never written anywhere.
    pub resume: PathBuf,
}

impl ClientPaths {
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("client.sock")
    }
    pub fn log(&self) -> PathBuf {
        self.log_dir.join("client.log")
    }
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub paths: ClientPaths,
    pub hub: Option<String>,
    pub account: Option<String>,
    pub password_file: Option<PathBuf>,
    pub foreground: bool,
    /// Log in with the resume credential saved by an earlier `up --persist` instead of a
    /// password (what the boot-time service does).
    pub resume: bool,
    /// `--persist`: keep the resume credential and install the boot-time service.
    pub persist: Option<super::service::ServiceSettings>,
    /// The TUN, the UDP socket and the data-path knobs (read from the environment by
    /// `up`'s command line, not inherited by the daemon).
    pub data: DataPathSettings,
    pub transport: TransportOptions,
}

/// Handed from `up` to the daemon on its stdin (never on the command line, where
/// other users could read the password).
#[derive(Serialize, Deserialize)]
struct DaemonRequest {
    paths: ClientPaths,
    hub: String,
    account: String,
    credential: LoginSecret,
    /// Write the resume credential the hub hands out to `paths.resume` (`--persist`,
    /// and the service itself, whose credential each login extends).
    keep_resume: bool,
    data: DataPathSettings,
    transport: TransportMode,
    /// The proxy URL in force (without a password), and the proxy's password apart.
    proxy: Option<String>,
    proxy_password: Option<String>,
}

/// What the daemon logs in with.
#[derive(Serialize, Deserialize)]
enum LoginSecret {
    Password(String),
    Resume(String),
}

/// The daemon's one-line report to `up`.
#[derive(Serialize, Deserialize)]
struct Readiness {
    ok: bool,
    exit: u8,
    message: String,
    status: Option<Box<NodeStatus>>,
}

/// What the client daemon answers on its local socket.
#[derive(Serialize)]
#[serde(untagged)]
enum DaemonAnswer {
    Status(Box<NodeStatus>),
    Down(Ack),
}

pub fn up(opts: UpOptions) -> Result<Exit> {
    if !crate::util::is_root() {
        return Ok(Exit::fail(
            exit::NOT_ROOT,
            "mcvpn up needs root to create the TUN interface: run `sudo mcvpn up`",
        ));
    }
    let mut config = ClientConfig::load(&opts.paths.config)?;
    let hub =
        opts.hub.clone().or(config.hub.clone()).ok_or_else(|| {
            anyhow!("no hub to connect to: pass --hub URL (the mcvpn://… URL your operator gave you)")
        })?;
    let hub_url = HubUrl::parse(&hub)?;
    let account = opts
        .account
        .clone()
        .or(config.account.clone())
        .ok_or_else(|| anyhow!("no account: pass --account NAME"))?;
    if local_api::call::<NodeStatus>(&opts.paths.socket(), LocalRequest::Status).is_ok() {
        return Ok(Exit::fail(
            exit::FAILURE,
            "mcvpn is already up; run `sudo mcvpn down` first",
        ));
    }
    let credential = if opts.resume {
        LoginSecret::Resume(read_resume(&opts.paths.resume)?)
    } else {
        LoginSecret::Password(crate::password::read(
            opts.password_file.as_deref(),
            &format!("Password for {account}: "),
        )?)
    };
    let transport = opts
        .transport
        .resolve(&hub_url, config.transport, config.proxy.as_deref(), None)?;
    let req = DaemonRequest {
        paths: opts.paths.clone(),
        hub: hub.clone(),
        account: account.clone(),
        credential,
        keep_resume: opts.persist.is_some() || opts.resume,
        data: opts.data.clone(),
        transport: transport.transport,
        proxy: transport.proxy_given.clone(),
        proxy_password: transport
            .proxy
            .as_ref()
            .and_then(|p| p.password.as_ref().map(|s| s.expose_secret().to_string())),
    };
    let (new_transport, new_proxy) = (opts.transport.transport, opts.transport.proxy.clone());
    let config_path = opts.paths.config.clone();
    let log_path = opts.paths.log();
    // The first successful `up` remembers the hub and account for the next bare `up`.
    let remember = move || {
        let transport = new_transport.or(config.transport);
        let proxy = new_proxy.or(config.proxy.clone());
        if config.hub.as_deref() != Some(&hub)
            || config.account.as_deref() != Some(&account)
            || config.transport != transport
            || config.proxy != proxy
        {
            config.hub = Some(hub);
            config.account = Some(account);
            config.transport = transport;
            config.proxy = proxy;
            if let Err(e) = config.save(&config_path) {
                eprintln!("warning: could not remember the hub and account: {e:#}");
            }
        }
    };
    let persist = opts.persist.clone();
    let service_paths = opts.paths.clone();
    if opts.foreground {
        return run_daemon(
            req,
            Some(Box::new(move |r: &Readiness| {
                if r.ok {
                    remember();
                    if let Some(status) = &r.status {
                        print_status(status, false);
                    }
                    // Only after a successful login: the credential it keeps exists now.
                    if let Some(service) = &persist {
                        if let Err(e) = install_service(service, &service_paths) {
                            eprintln!("mcvpn: --persist: {e:#}");
                        }
                    }
                }
            })),
        );
    }
    let readiness = spawn_daemon(&req)?;
    if !readiness.ok {
        return Ok(Exit::fail(readiness.exit, &readiness.message));
    }
    remember();
    if let Some(status) = &readiness.status {
        print_status(status, false);
    }
    println!("log: {}", log_path.display());
    if let Some(service) = &persist {
        install_service(service, &service_paths)?;
    }
    Ok(Exit::ok())
}

/// Reads the credential `up --persist` saved; a missing one says how to make it.
fn read_resume(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        Ok(_) => bail!(
            "{} is empty: run `sudo mcvpn up --persist` once with your password",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no saved login at {}: run `sudo mcvpn up --persist` once with your password",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes and enables `mcvpn-client.service`, and says what it did.
fn install_service(service: &super::service::ServiceSettings, paths: &ClientPaths) -> Result<()> {
    let installed = super::service::install(service, paths)?;
    println!("{}", installed.describe());
    Ok(())
}

/// `mcvpn down --persist`: besides taking the VPN down, removes the boot-time service
/// and the saved resume credential.
pub fn remove_persistence(service: &super::service::ServiceSettings, paths: &ClientPaths) -> Result<()> {
    let removed = super::service::remove(service)?;
    println!("{}", removed.describe());
    match std::fs::remove_file(&paths.resume) {
        Ok(()) => println!("removed the saved login {}", paths.resume.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", paths.resume.display())),
    }
    Ok(())
}

/// Starts the daemon and waits for its readiness line.
fn spawn_daemon(req: &DaemonRequest) -> Result<Readiness> {
    for dir in [&req.paths.run_dir, &req.paths.log_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(req.paths.log())
        .with_context(|| format!("cannot open the log {}", req.paths.log().display()))?;
    let exe = std::env::current_exe().context("cannot find the mcvpn executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("client-daemon")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our terminal
    // and session so that closing the terminal does not kill it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the mcvpn daemon")?;
    {
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(&serde_json::to_vec(req)?)?;
    }
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    if line.trim().is_empty() {
        let status = child.wait()?;
        bail!(
            "the mcvpn daemon stopped before it was ready ({status}); see {}",
            req.paths.log().display()
        );
    }
    let readiness: Readiness = serde_json::from_str(&line).context("unreadable report from the daemon")?;
    if !readiness.ok {
        let _ = child.wait();
    }
    Ok(readiness)
}

/// Entry of the hidden `client-daemon` subcommand: reads its request from stdin.
pub fn daemon_main() -> Result<Exit> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let req: DaemonRequest = serde_json::from_str(&input).context("bad daemon request")?;
    let mut out = std::io::stdout();
    run_daemon(
        req,
        Some(Box::new(move |r: &Readiness| {
            let mut line = serde_json::to_vec(r).unwrap_or_default();
            line.push(b'\n');
            let _ = out.write_all(&line);
            let _ = out.flush();
        })),
    )
}

type Report = Box<dyn FnOnce(&Readiness) + Send>;

fn run_daemon(req: DaemonRequest, report: Option<Report>) -> Result<Exit> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(client_main(req, report))
}

async fn client_main(req: DaemonRequest, report: Option<Report>) -> Result<Exit> {
    let mut report = report;
    let mut finish = |r: Readiness| -> Exit {
        let exit = if r.ok {
            Exit::ok()
        } else {
            Exit::fail(r.exit, &r.message)
        };
        if let Some(f) = report.take() {
            f(&r);
        }
        exit
    };
    let fail = |code: u8, message: String| Readiness {
        ok: false,
        exit: code,
        message,
        status: None,
    };

    let settings = match client_settings(&req) {
        Ok(s) => s,
        Err(e) => return Ok(finish(fail(exit::FAILURE, format!("{e:#}")))),
    };
    let node = match Node::new(settings) {
        Ok(n) => Arc::new(n),
        Err(e) => return Ok(finish(fail(exit::FAILURE, format!("{e:#}")))),
    };
    let credential = match req.credential {
        LoginSecret::Password(password) => Credential::Password {
            password: password.into(),
        },
        LoginSecret::Resume(token) => Credential::Resume { token: token.into() },
    };
    let (login, rd, wr) = match session::login_node(&node, credential).await {
        Ok((Event::LoginOk(ok), rd, wr)) => (ok, rd, wr),
        Ok(_) => return Ok(finish(fail(exit::FAILURE, "unexpected answer from the hub".into()))),
        Err(e @ LoginError::Refused { .. }) => return Ok(finish(fail(exit::REFUSED, e.to_string()))),
        // A proxy's refusal names the proxy and what it said (see `node::https`).
        Err(e) => return Ok(finish(fail(exit::FAILURE, e.to_string()))),
    };
    if let Err(e) = node.apply_login(&login) {
        return Ok(finish(fail(exit::FAILURE, format!("{e:#}"))));
    }
    if req.keep_resume {
        if let Err(e) = save_resume(&req.paths.resume, login.resume_token.as_ref()) {
            return Ok(finish(fail(exit::FAILURE, format!("{e:#}"))));
        }
    }
    // Before waiting for the bind: in `auto` the manager is what moves an unanswered
    // UDP bind to the HTTPS link.
    let manager = tokio::spawn(super::transport::run(node.clone()));
    if !node.wait_bound(Duration::from_secs(8)).await {
        tracing::warn!("the hub has not acknowledged our endpoint yet; packets may be lost until it does");
    }
    let (down_tx, mut down_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let _socket = {
        let node = node.clone();
        local_api::serve(&req.paths.socket(), move |req, caller| match req {
            LocalRequest::Status => Ok(DaemonAnswer::Status(Box::new(node.status()))),
            LocalRequest::Down if caller.uid == 0 => {
                let _ = down_tx.send(());
                Ok(DaemonAnswer::Down(Ack { ok: true }))
            }
            LocalRequest::Down => Err("only root may take mcvpn down: run `sudo mcvpn down`".into()),
            other => Err(format!("unknown command {:?}", other.name())),
        })?
    };
    tracing::info!(ip = %login.overlay_ip, account = %login.account, peers = login.peers.len(), "mcvpn is up");
    let exit = finish(Readiness {
        ok: true,
        exit: 0,
        message: "up".into(),
        status: Some(Box::new(node.status())),
    });

    let resume_account = login.account.clone();
    let supervise = session::supervise(
        &node,
        login,
        rd,
        wr,
        |l| Credential::Resume {
            token: l.resume_token.clone().unwrap_or_default(),
        },
        false,
    );
    tokio::select! {
        end = supervise => {
            if let SessionEnd::Kicked { message, reason } = end {
                tracing::error!(account = %resume_account, %message, hint = reason.hint(), "mcvpn is going down");
                return Ok(Exit::fail(exit::REFUSED, &format!("{message}: {}", reason.hint())));
            }
        }
        _ = down_rx.recv() => tracing::info!("mcvpn down requested"),
        _ = crate::util::shutdown_signal() => tracing::info!("stopping on signal"),
    }
    manager.abort();
    Ok(exit)
}

/// Keeps the hub's resume credential for the boot-time service: root's only (0600).
fn save_resume(path: &Path, token: Option<&crate::secret::SecretString>) -> Result<()> {
    let token = token.ok_or_else(|| anyhow!("the hub gave no resume credential, so --persist cannot work"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::util::write_atomic(path, token.expose_secret().as_bytes(), 0o600)
        .with_context(|| format!("cannot save the resume credential to {}", path.display()))
}

fn client_settings(req: &DaemonRequest) -> Result<NodeSettings> {
    let hub = HubUrl::parse(&req.hub)?;
    // `up` chose the proxy (command line, config, environment); the daemon only parses it.
    let proxy = match &req.proxy {
        None => None,
        Some(given) => super::proxy::choose_proxy(Some(given), None, None, hub.host())
            .map_err(|e| anyhow!("--proxy: {e}"))?
            .map(|url| super::proxy::Proxy {
                url,
                password: req.proxy_password.clone().map(Into::into),
            }),
    };
    Ok(NodeSettings {
        control: ControlSettings {
            role: Role::Client,
            hub,
            key: KeyPair::load_or_create(&req.paths.key)?,
            account: Some(req.account.clone()),
            hostname: crate::util::hostname(),
            transport: req.transport,
            proxy,
        },
        data: req.data.clone(),
    })
}

/// `mcvpn down`: asks the daemon to stop and waits until it is gone.
pub fn down(paths: &ClientPaths) -> Result<Exit> {
    let socket = paths.socket();
    let pid = match local_api::call::<NodeStatus>(&socket, LocalRequest::Status) {
        Ok(Ok(s)) => i32::try_from(s.pid).unwrap_or(0),
        // Something answers there, but not with a status: wait on the socket alone.
        Ok(Err(_)) => 0,
        // The socket is root's only (mode 0600): say so, not "not running".
        Err(e) if local_api::is_permission_denied(&e) => return Ok(Exit::fail(exit::NOT_ROOT, &format!("{e:#}"))),
        Err(_) => {
            println!("mcvpn is not running");
            return Ok(Exit::ok());
        }
    };
    if let Err(err) = local_api::call::<Ack>(&socket, LocalRequest::Down)? {
        return Ok(Exit::fail(exit::NOT_ROOT, &err));
    }
    for _ in 0..100 {
        let alive = pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive && !socket.exists() {
            println!("mcvpn is down");
            return Ok(Exit::ok());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Exit::fail(
        exit::FAILURE,
        &format!("the mcvpn daemon (pid {pid}) did not stop within 5 s"),
    ))
}

/// The document `mcvpn status --json` prints: versioned, so scripts can check what they
/// read; `running: false` carries no status.
#[derive(Serialize)]
pub struct StatusJson<'a> {
    pub version: u32,
    pub running: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a NodeStatus>,
}

/// The version of every `--json` document outside `mcvpn admin` (which has its own).
pub const JSON_VERSION: u32 = 1;

/// `mcvpn status`; `verbose` adds the data-path knobs, offloads and drop counters. Exit
/// statuses are the LSB's: 0 running, 3 not running, 4 unknown.
pub fn status(socket: &Path, as_json: bool, verbose: bool) -> Result<Exit> {
    let print_json = |status: Option<&NodeStatus>| -> Result<()> {
        let doc = StatusJson {
            version: JSON_VERSION,
            running: status.is_some(),
            status,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
        Ok(())
    };
    match local_api::call::<NodeStatus>(socket, LocalRequest::Status) {
        Ok(Ok(s)) => {
            if as_json {
                print_json(Some(&s))?;
            } else {
                print_status(&s, verbose);
            }
            Ok(Exit::ok())
        }
        Ok(Err(e)) => Ok(Exit::fail(
            exit::STATUS_UNKNOWN,
            &format!("the mcvpn daemon refused: {e}"),
        )),
        Err(e) if local_api::is_permission_denied(&e) => Ok(Exit::fail(exit::STATUS_UNKNOWN, &format!("{e:#}"))),
        Err(_) => {
            if as_json {
                print_json(None)?;
            } else {
                println!("mcvpn is not running");
            }
            Ok(Exit::code(exit::NOT_RUNNING))
        }
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// Prints a node status (client or target) for people; `verbose` adds the data path.
pub fn print_status(s: &NodeStatus, verbose: bool) {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!(
        "mcvpn {}: {}",
        s.role.as_str(),
        if s.connected {
            "connected"
        } else {
            "reconnecting to the hub"
        }
    );
    if let Some(line) = s.maintenance.as_ref().and_then(|m| m.line(crate::store::now())) {
        println!("  {line}");
    }
    println!("  hub:        {}", s.hub);
    if !s.current_hub.is_empty() {
        println!("  on hub:     {}", s.current_hub);
    }
    if !s.transport.is_empty() {
        println!("  transport:  {}", s.transport);
    }
    println!(
        "  account:    {} (contract {})",
        or_dash(&s.account),
        or_dash(&s.contract)
    );
    println!(
        "  interface:  {}  {}",
        s.interface,
        s.overlay_ip.map_or("-".to_string(), |ip| ip.to_string())
    );
    if let Some(e) = &s.last_error {
        println!("  last error: {e}");
    }
    if verbose {
        let t = &s.tuning;
        println!("  data path:");
        println!("    hub address      {} (relay bound: {})", s.hub_addr, s.relay_bound);
        println!(
            "    offload          {:<4} MCVPN_OFFLOAD          (off turns every offload off)",
            on_off(t.udp.offload)
        );
        println!(
            "    TUN offload      {:<4} MCVPN_TUN_OFFLOAD      allowed: {}",
            on_off(t.tun_offload),
            on_off(s.offloads.tun)
        );
        println!(
            "    UDP GSO          {:<4} MCVPN_UDP_GSO          allowed: {}, in use: {}",
            on_off(t.udp.udp_gso),
            on_off(s.offloads.udp_gso),
            on_off(s.udp_gso)
        );
        println!(
            "    UDP GRO          {:<4} MCVPN_UDP_GRO          allowed: {}",
            on_off(t.udp.udp_gro),
            on_off(s.offloads.udp_gro)
        );
        println!("    spin             {:<4} MCVPN_SPIN_US          (µs)", t.udp.spin_us);
        println!("    packet threads   {:<4} MCVPN_PACKET_THREADS", t.packet_threads);
        let d = &s.dropped;
        println!(
            "  dropped:    TUN read errors {}, not IPv4 {}, no peer {}, malformed from hub {}, unknown peer {}, \
             rejected by WireGuard {}, wrong source {}, send errors {}",
            d.tun_read_errors,
            d.tun_not_ipv4,
            d.tun_no_peer,
            d.hub_malformed,
            d.hub_unknown_peer,
            d.wg_rejected,
            d.source_filtered,
            d.send_errors
        );
    }
    if s.peers.is_empty() {
        println!("  peers:      none (nothing reachable for this account yet)");
    } else {
        println!("  peers:");
    }
    for p in &s.peers {
        let handshake = p.last_handshake_s.map_or("never".to_string(), |s| format!("{s} s ago"));
        println!(
            "    {:<20} {:<15} {:<8} handshake {:<10} sent {:<10} received {}",
            p.name,
            p.overlay_ip.to_string(),
            if p.online { "online" } else { "offline" },
            handshake,
            human_bytes(p.tx_bytes),
            human_bytes(p.rx_bytes),
        );
    }
}

/// `mcvpn passwd`: change one's own password through the hub (art. 10).
pub fn passwd(
    hub: Option<String>,
    account: Option<String>,
    password_file: Option<PathBuf>,
    config: &Path,
    transport: &TransportOptions,
    json: bool,
) -> Result<Exit> {
    let remembered = ClientConfig::load(config).unwrap_or_default();
    let (remembered_transport, remembered_proxy) = (remembered.transport, remembered.proxy.clone());
    let hub = hub
        .or(remembered.hub)
        .ok_or_else(|| anyhow!("no hub: pass --hub URL (or run `sudo mcvpn up` once, which remembers it)"))?;
    let account = account
        .or(remembered.account)
        .ok_or_else(|| anyhow!("no account: pass --account NAME"))?;
    let (old, new) = match &password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut lines = text.lines();
            match (lines.next(), lines.next()) {
                (Some(o), Some(n)) if !o.is_empty() && !n.is_empty() => (o.to_string(), n.to_string()),
                _ => bail!(
                    "{} must hold the current password on line 1 and the new one on line 2",
                    path.display()
                ),
            }
        }
        None => {
            let old = crate::password::read(None, &format!("Current password for {account}: "))?;
            let new = crate::password::read(None, "New password (12 characters or more): ")?;
            if crate::password::read(None, "New password again: ")? != new {
                bail!("the two new passwords differ");
            }
            (old, new)
        }
    };
    let hub = HubUrl::parse(&hub)?;
    let reach = super::remote::Reach {
        transport: transport.resolve(&hub, remembered_transport, remembered_proxy.as_deref(), None)?,
        hub,
    };
    match super::remote::change_password(&reach, &account, &old, &new)? {
        Ok(out) => {
            crate::admin::render::print(&out, json);
            Ok(Exit::ok())
        }
        Err(e) => Ok(Exit::fail(exit::REFUSED, &e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/mcvpn.toml");
        assert_eq!(ClientConfig::load(&path).unwrap(), ClientConfig::default());
        let c = ClientConfig {
            hub: Some("mcvpn://h:1/?key=x".into()),
            account: Some("alice".into()),
            transport: None,
            proxy: None,
        };
        c.save(&path).unwrap();
        assert_eq!(ClientConfig::load(&path).unwrap(), c);
        // An old config (no transport or proxy) still loads; new ones round-trip.
        let c = ClientConfig {
            transport: Some(TransportMode::Https),
            proxy: Some("http://carol@proxy.example:3128".into()),
            ..c
        };
        c.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("transport = \"https\""), "{text}");
        assert_eq!(ClientConfig::load(&path).unwrap(), c);
        std::fs::write(&path, "hub = [broken").unwrap();
        assert!(ClientConfig::load(&path).is_err());
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
    }
}
