//! The `mcvpn` command line. Parsing and dispatch only; the work is in the library.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use mcvpn::cli_admin::AdminArgs;
use mcvpn::exit::{self, Exit};
use mcvpn::hub::preauth::PreauthLimits;
use mcvpn::local_api::LocalRequest;
use mcvpn::node::client::{self, ClientPaths, UpOptions};
use mcvpn::node::settings::TransportOptions;
use mcvpn::node::target::{self, EnrollOptions, RunOptions, TargetPaths};
use mcvpn::node::{DataPathSettings, TransportMode};
use mcvpn::store::OverlayNet;
use mcvpn::udp_batch::UdpTuning;
use mcvpn::{hub, local_api};

#[derive(Parser)]
#[command(
    name = "mcvpn",
    version,
    about = "Remote-access VPN: reach your office PC from anywhere through an mcvpn hub",
    long_about = "Remote-access VPN: reach your office PC from anywhere through an mcvpn hub.\n\n\
        The operator runs `mcvpn hub`. The office PC (the target) runs `mcvpn target run` as a \
        service after a one-time `mcvpn target enroll`. Users run `sudo mcvpn up` on their own \
        PC and reach their targets over the mcvpn0 interface. Traffic is WireGuard, end to end \
        between user and target; the hub only relays it.",
    after_help = exit::HELP
)]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing filter); RUST_LOG also works.
    #[arg(long, global = true, env = "MCVPN_LOG")]
    log: Option<String>,
    /// Log lines as text, or as one JSON object per line (for log collectors)
    #[arg(long, global = true, env = "MCVPN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (control server + packet relay + account store)
    #[command(
        after_help = "Example:\n  mcvpn hub --listen 0.0.0.0:51820 --public-addr vpn.example.com\n\n\
        The first start creates the key and the store and prints the server URL to give users."
    )]
    Hub(HubCmd),
    /// Log in and bring up the VPN on this PC (needs sudo)
    #[command(
        after_help = "Examples:\n  sudo mcvpn up --hub 'mcvpn://vpn.example.com:51820/?key=…' --account alice\n  \
        sudo mcvpn up            # later: the hub and account are remembered in /etc/mcvpn/mcvpn.toml"
    )]
    Up(UpCmd),
    /// Take the VPN down: no interface, route or daemon is left behind
    Down(DownCmd),
    /// Show the hub, the account, the overlay address and each peer
    #[command(after_help = "Exit status (LSB): 0 running, 3 not running, 4 unknown (run with sudo)")]
    Status {
        #[command(flatten)]
        paths: ClientPathArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// Also show the data path: its tuning knobs, offloads and drop counters
        #[arg(long, short)]
        verbose: bool,
    },
    /// The office machine: enroll it once, then run it as a service
    #[command(subcommand)]
    Target(TargetCmd),
    /// Manage contracts, accounts, targets; read sessions, the audit log and notices
    Admin(AdminArgs),
    /// Change your own account password (asks for the old one)
    #[command(after_help = "Example:\n  mcvpn passwd            # uses the hub and account remembered by `mcvpn up`")]
    Passwd {
        /// The server URL (default: the one remembered by `mcvpn up`)
        #[arg(long)]
        hub: Option<String>,
        #[arg(long)]
        account: Option<String>,
        /// Read the current password (first line) and the new one (second line) from a file
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[arg(long, default_value = "/etc/mcvpn/mcvpn.toml", env = "MCVPN_CONFIG")]
        config: PathBuf,
        /// Print the hub's answer as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        transport: TransportArgs,
    },
    /// Print a shell completion script (the package installs them already)
    #[command(after_help = "Example:\n  mcvpn completions bash > ~/.local/share/bash-completion/completions/mcvpn")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The background half of `mcvpn up` (started by it; not for direct use)
    #[command(hide = true)]
    ClientDaemon,
    /// Tools for tests and troubleshooting
    #[command(subcommand, hide = true)]
    Debug(DebugCmd),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct HubCmd {
    #[command(flatten)]
    run: HubArgs,
    #[command(subcommand)]
    sub: Option<HubSub>,
}

/// The hub's address and keys: `mcvpn hub` and `mcvpn hub url` take the same flags.
#[derive(Args, Clone)]
struct HubIdentityArgs {
    /// Address for both the TCP control server and the UDP relay
    #[arg(long, default_value = "0.0.0.0:51820")]
    listen: SocketAddr,
    /// The hub's private key (created on first start, mode 0600)
    #[arg(long, default_value = "/var/lib/mcvpn/hub.key")]
    key: PathBuf,
    /// An additional key nodes may have pinned (during a key rotation); repeatable
    #[arg(long = "extra-key")]
    extra_keys: Vec<PathBuf>,
    /// Host[:port] users reach the hub at, for the printed server URL
    #[arg(long)]
    public_addr: Option<String>,
    /// The HTTPS port users reach the hub at, for the server URL (`&https=N` when not 443)
    /// [default: the port of --https-listen]
    #[arg(long, value_name = "PORT")]
    https_port: Option<u16>,
}

impl HubIdentityArgs {
    fn identity(self) -> hub::HubIdentity {
        hub::HubIdentity {
            listen: self.listen,
            key: self.key,
            extra_keys: self.extra_keys,
            public_addr: self.public_addr,
            https_port: self.https_port,
        }
    }
}

#[derive(Args, Clone)]
struct HubArgs {
    #[command(flatten)]
    identity: HubIdentityArgs,
    /// The SQLite store of contracts, accounts and the audit log
    #[arg(long, default_value = "/var/lib/mcvpn/hub.db", env = "MCVPN_HUB_DB")]
    db: PathBuf,
    /// The overlay network node addresses come from
    #[arg(long, default_value = "100.64.0.0/10", value_parser = parse_overlay)]
    overlay: OverlayNet,
    /// Local socket answering `mcvpn hub stats`
    #[arg(long, default_value = "/run/mcvpn/hub.sock")]
    status_socket: PathBuf,
    /// UDP socket buffer size to ask for, in bytes (0 keeps the system default)
    #[arg(long, default_value_t = 8 << 20)]
    socket_buffer: usize,
    /// The fewest accounts a basic contract may have (art. 12)
    #[arg(long, default_value_t = 1)]
    min_accounts: u32,
    /// Deliver notices to account administrators through this mail server:
    /// smtp://HOST[:25], smtp://USER@HOST:587 (STARTTLS), smtps://[USER@]HOST[:465];
    /// `?tls=none|opportunistic|required` after smtp://. No password here (it would show
    /// in `ps`): see --smtp-password-file. Without it notices stay in the outbox (`mcvpn
    /// admin notice list`)
    // Parsed in hub_settings, not by a clap value parser: clap's error would repeat the
    // whole value, password included, into the journal.
    #[arg(long, env = "MCVPN_SMTP", value_name = "URL", hide_env_values = true)]
    smtp: Option<String>,
    /// The SMTP password of the user in --smtp: the first line of this file (mode 0600;
    /// under systemd, LoadCredential=smtp-password:/etc/mcvpn/smtp-password and
    /// `--smtp-password-file ${CREDENTIALS_DIRECTORY}/smtp-password`). The environment
    /// variable MCVPN_SMTP_PASSWORD is read when no file is given
    #[arg(long, env = "MCVPN_SMTP_PASSWORD_FILE", value_name = "FILE", requires = "smtp")]
    smtp_password_file: Option<PathBuf>,
    /// The notices' sender address [default: mcvpn@<hostname>]
    #[arg(long, env = "MCVPN_SMTP_FROM", value_name = "ADDRESS", value_parser = parse_smtp_from, requires = "smtp")]
    smtp_from: Option<String>,
    #[command(flatten)]
    udp_tuning: UdpTuning,
    #[command(flatten)]
    preauth: PreauthArgs,
    #[command(flatten)]
    https: HttpsArgs,
    /// The operator's notice templates: a file here replaces the built-in one of the same
    /// name (see templates/notices/README.txt) [default: /etc/mcvpn/notices if it exists].
    /// A broken template stops the start, naming its file and line
    #[arg(long, env = "MCVPN_NOTICE_TEMPLATES", value_name = "DIR")]
    notice_templates: Option<PathBuf>,
    /// The operator's time zone (IANA name): contract dates, deadlines, the daily
    /// contract job and the times in notices are in it
    #[arg(long, env = "MCVPN_TIMEZONE", default_value = mcvpn::contract::DEFAULT_TZ, value_parser = mcvpn::contract::parse_tz)]
    timezone: mcvpn::contract::Tz,
}

/// What a connection may cost before it has logged in (defaults: see `hub::preauth`).
#[derive(Args, Clone)]
#[command(next_help_heading = "Pre-authentication limits")]
struct PreauthArgs {
    /// Connections one address (IPv6: one /64) may hold before logging in; more are closed at once
    #[arg(long, env = "MCVPN_PREAUTH_PER_SOURCE", default_value_t = PreauthLimits::default().per_source,
        value_parser = clap::value_parser!(u32).range(1..))]
    preauth_per_source: u32,
    /// Connections not logged in yet, all addresses together; at the cap the oldest is closed
    #[arg(long, env = "MCVPN_PREAUTH_GLOBAL", default_value_t = PreauthLimits::default().global,
        value_parser = clap::value_parser!(u32).range(1..))]
    preauth_global: u32,
    /// Seconds from connecting to the login request, handshake included
    #[arg(long, env = "MCVPN_HANDSHAKE_DEADLINE", value_name = "SECONDS",
        default_value_t = PreauthLimits::default().handshake_deadline.as_secs_f64(), value_parser = parse_deadline)]
    handshake_deadline: f64,
}

/// The HTTPS port: the WebSocket transport for nodes that cannot use UDP or TCP 51820.
#[derive(Args, Clone)]
#[command(next_help_heading = "HTTPS transport")]
struct HttpsArgs {
    /// Address of the HTTPS port (TLS 1.3, WebSocket), or `off`. Ports below 1024 need
    /// root or CAP_NET_BIND_SERVICE
    #[arg(long, env = "MCVPN_HTTPS_LISTEN", value_name = "ADDR|off", default_value = hub::https::DEFAULT_LISTEN,
        value_parser = parse_https_listen)]
    https_listen: HttpsListen,
    /// The TLS certificate chain (PEM) [default: one made on first start, kept beside the
    /// hub key as <key>.tls-cert.pem]. The hub's key, not this certificate, is what nodes check
    #[arg(long, env = "MCVPN_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, env = "MCVPN_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Clone, Copy)]
enum HttpsListen {
    Off,
    On(SocketAddr),
}

fn parse_https_listen(s: &str) -> Result<HttpsListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(HttpsListen::Off);
    }
    s.parse()
        .map(HttpsListen::On)
        .map_err(|_| format!("{s:?}: give an address like 0.0.0.0:443 or [::]:443, or `off`"))
}

fn parse_deadline(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.1..=60.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: give seconds from 0.1 to 60 (default 5)")),
    }
}

#[derive(Subcommand)]
enum HubSub {
    /// Print the server URL (creating the key if it does not exist yet)
    Url {
        #[command(flatten)]
        identity: HubIdentityArgs,
        /// Print JSON: {"version": 1, "url": …}
        #[arg(long)]
        json: bool,
    },
    /// Relay counters and live sessions of the running hub
    Stats {
        #[arg(long, default_value = "/run/mcvpn/hub.sock")]
        status_socket: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

fn parse_smtp_from(s: &str) -> Result<String, String> {
    hub::notices::parse_from(s).map(|_| s.trim().to_string())
}

fn parse_overlay(s: &str) -> Result<OverlayNet, String> {
    OverlayNet::parse(s).ok_or_else(|| format!("{s:?} is not an IPv4 network like 100.64.0.0/10 (prefix 8..30)"))
}

/// How a node reaches the hub: `mcvpn up`, `target enroll|run`, `passwd`.
#[derive(Args, Clone)]
#[command(next_help_heading = "Transport")]
struct TransportArgs {
    /// auto: UDP, moving to the hub's HTTPS port when UDP does not pass (and back when it
    /// does); udp or https force one [default: auto, or what `up` remembered]
    #[arg(long, env = "MCVPN_TRANSPORT", value_enum)]
    transport: Option<TransportMode>,
    /// Reach the hub's HTTPS port through this HTTP proxy: http://[USER@]HOST:PORT, or
    /// `none` [default: HTTPS_PROXY / https_proxy, unless NO_PROXY names the hub]. No
    /// password here: see --proxy-password-file
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// The proxy user's password: the first line of this file (without it, a prompt)
    #[arg(long, value_name = "FILE")]
    proxy_password_file: Option<PathBuf>,
}

impl TransportArgs {
    fn options(self) -> TransportOptions {
        let (https_proxy_env, no_proxy_env) = proxy_env();
        TransportOptions {
            transport: self.transport,
            proxy: self.proxy,
            proxy_password_file: self.proxy_password_file,
            https_proxy_env,
            no_proxy_env,
        }
    }
}

/// `HTTPS_PROXY`/`https_proxy` and `NO_PROXY`/`no_proxy`, as curl reads them (the
/// upper-case name first). Read here only; `node::proxy::choose_proxy` decides.
fn proxy_env() -> (Option<String>, Option<String>) {
    let var = |upper: &str, lower: &str| {
        std::env::var(upper)
            .ok()
            .or_else(|| std::env::var(lower).ok())
            .filter(|v| !v.trim().is_empty())
    };
    (var("HTTPS_PROXY", "https_proxy"), var("NO_PROXY", "no_proxy"))
}

#[derive(Args, Clone)]
struct ClientPathArgs {
    /// Remembered hub and account
    #[arg(long, default_value = "/etc/mcvpn/mcvpn.toml", env = "MCVPN_CONFIG")]
    config: PathBuf,
    /// Where the running daemon keeps its socket
    #[arg(long, default_value = "/run/mcvpn", env = "MCVPN_RUN_DIR")]
    run_dir: PathBuf,
    /// This PC's device key (created on first use; on a removable drive for USB-key mode)
    #[arg(long = "key", default_value = "/var/lib/mcvpn/device.key", env = "MCVPN_KEY")]
    key: PathBuf,
    /// Where the background client writes client.log (under systemd: the journal)
    #[arg(long, default_value = "/var/log/mcvpn", env = "MCVPN_LOG_DIR")]
    log_dir: PathBuf,
    /// The saved login of `--persist` (a resume credential, never the password)
    #[arg(long, default_value = "/var/lib/mcvpn/client.resume", env = "MCVPN_RESUME_FILE")]
    resume_file: PathBuf,
}

impl ClientPathArgs {
    fn paths(&self) -> ClientPaths {
        ClientPaths {
            config: self.config.clone(),
            run_dir: self.run_dir.clone(),
            key: self.key.clone(),
            log_dir: self.log_dir.clone(),
            resume: self.resume_file.clone(),
        }
    }
}

/// Where `--persist` puts mcvpn-client.service.
#[derive(Args, Clone)]
struct ServiceArgs {
    /// The directory of the unit file (tests point it elsewhere)
    #[arg(long, default_value = "/etc/systemd/system", env = "MCVPN_UNIT_DIR", hide = true)]
    unit_dir: PathBuf,
}

impl ServiceArgs {
    fn settings(self) -> Result<mcvpn::node::service::ServiceSettings> {
        Ok(mcvpn::node::service::ServiceSettings {
            unit_dir: self.unit_dir,
            exe: std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find the mcvpn executable: {e}"))?,
            systemd_running: std::path::Path::new("/run/systemd/system").is_dir(),
        })
    }
}

#[derive(Args)]
struct DownCmd {
    /// Also remove the boot-time service and the saved login of `up --persist`
    #[arg(long)]
    persist: bool,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    paths: ClientPathArgs,
}

#[derive(Args)]
struct UpCmd {
    /// The server URL from your operator (mcvpn://HOST:PORT/?key=…); remembered
    #[arg(long)]
    hub: Option<String>,
    /// Your account name; remembered
    #[arg(long)]
    account: Option<String>,
    /// Read the password from the first line of this file instead of the terminal
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Stay attached to the terminal instead of running in the background
    #[arg(long)]
    foreground: bool,
    /// Also come back after a reboot: keep a resume credential (root's only; never the
    /// password) and install mcvpn-client.service; `mcvpn down --persist` undoes it
    #[arg(long, conflicts_with = "resume")]
    persist: bool,
    /// Log in with the credential saved by `--persist` instead of a password (what
    /// mcvpn-client.service runs)
    #[arg(long, conflicts_with = "password_file")]
    resume: bool,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    data: DataPathSettings,
    #[command(flatten)]
    transport: TransportArgs,
    #[command(flatten)]
    paths: ClientPathArgs,
}

#[derive(Args, Clone)]
struct TargetPathArgs {
    /// Written by `enroll`, read by `run`
    #[arg(long, default_value = "/etc/mcvpn/target.toml", env = "MCVPN_TARGET_CONFIG")]
    config: PathBuf,
    /// This machine's device key: its only credential after enrolment
    #[arg(long = "key", default_value = "/var/lib/mcvpn/target.key", env = "MCVPN_TARGET_KEY")]
    key: PathBuf,
    #[arg(long, default_value = "/run/mcvpn", env = "MCVPN_RUN_DIR")]
    run_dir: PathBuf,
}

impl TargetPathArgs {
    fn paths(&self) -> TargetPaths {
        TargetPaths {
            config: self.config.clone(),
            key: self.key.clone(),
            run_dir: self.run_dir.clone(),
        }
    }
}

#[derive(Subcommand)]
enum TargetCmd {
    /// Register this machine under an account, once (asks for the account password)
    #[command(
        after_help = "Example:\n  sudo mcvpn target enroll --hub 'mcvpn://vpn.example.com:51820/?key=…' --account alice"
    )]
    Enroll {
        #[arg(long)]
        hub: String,
        #[arg(long)]
        account: String,
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Name shown to users (default: the host name)
        #[arg(long)]
        name: Option<String>,
        /// Recorded in the config for `run`
        #[command(flatten)]
        transport: TransportArgs,
        #[command(flatten)]
        paths: TargetPathArgs,
    },
    /// Run the target: TUN up, accept tunnels from the account's clients, reconnect forever
    Run {
        #[command(flatten)]
        data: DataPathSettings,
        /// Override what `enroll` recorded
        #[command(flatten)]
        transport: TransportArgs,
        #[command(flatten)]
        paths: TargetPathArgs,
    },
    /// Show the running target's connection and peers
    Status {
        #[command(flatten)]
        paths: TargetPathArgs,
        #[arg(long)]
        json: bool,
        /// Also show the data path: its tuning knobs, offloads and drop counters
        #[arg(long, short)]
        verbose: bool,
    },
}

#[derive(Subcommand)]
enum DebugCmd {
    /// Write the man pages (DIR/man1) and shell completions (DIR/completions) for packaging
    GenDocs {
        #[arg(long)]
        out: PathBuf,
    },
    /// Log in, bind, and send relay datagrams to any node id (tests the hub's authorisation)
    RelayProbe {
        #[arg(long)]
        hub: String,
        #[arg(long)]
        account: String,
        #[arg(long)]
        password_file: PathBuf,
        #[arg(long)]
        to_node: u32,
        #[arg(long, default_value_t = 20)]
        count: u32,
    },
}

fn init_logging(cli_level: Option<&str>, default: &str, format: LogFormat) {
    let filter = cli_level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // One object per line, the event's fields at the top level next to level and time.
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let daemon = matches!(
        cli.command,
        Command::Hub(HubCmd { sub: None, .. }) | Command::ClientDaemon | Command::Target(TargetCmd::Run { .. })
    ) || matches!(&cli.command, Command::Up(u) if u.foreground);
    init_logging(cli.log.as_deref(), if daemon { "info" } else { "warn" }, cli.log_format);
    if prints_for_a_reader(&cli.command) {
        restore_default_sigpipe();
    }
    let result = dispatch(cli.command);
    let exit = result.unwrap_or_else(|e| Exit::fail(exit::FAILURE, &format!("{e:#}")));
    if let Some(m) = &exit.message {
        eprintln!("mcvpn: {m}");
    }
    ExitCode::from(exit.code)
}

/// The commands whose work is printing (tables, status, JSON): when their reader goes
/// away (`mcvpn admin log | head -1`, `| grep -q`) they should end as `cat` does, not
/// panic in `println!`. Daemons and the commands that prompt or talk to a hub keep
/// Rust's ignored SIGPIPE, so a closed socket is an error they report.
fn prints_for_a_reader(command: &Command) -> bool {
    matches!(
        command,
        Command::Admin(_)
            | Command::Status { .. }
            | Command::Down(_)
            | Command::Completions { .. }
            | Command::Target(TargetCmd::Status { .. })
            | Command::Hub(HubCmd { sub: Some(_), .. })
    )
}

/// Gives SIGPIPE its default action (end the process), which Rust's runtime sets to
/// "ignore" before `main`: the usual fix for CLI tools (ripgrep, coreutils behave so),
/// and it covers every `println!` at once. The shell sees the reader's pipeline end as
/// usual (status 141 under `pipefail`, like `yes | head -1`).
fn restore_default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called at the start of `main` before any other thread exists; SIG_DFL
    // installs no handler code, so nothing can run in signal context.
    let restored = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    if let Err(e) = restored {
        tracing::debug!(error = %e, "cannot restore the default SIGPIPE action");
    }
}

fn dispatch(command: Command) -> Result<Exit> {
    match command {
        Command::Hub(HubCmd { run, sub: None }) => {
            mcvpn::contract::set_operator_tz(run.timezone).map_err(anyhow::Error::msg)?;
            tracing::info!(timezone = %run.timezone, "contract dates are days in this time zone");
            mcvpn::admin::notice_text::install(mcvpn::cli_admin::load_notice_templates(
                run.notice_templates.as_deref(),
            )?);
            let settings = hub_settings(run)?;
            tokio::runtime::Runtime::new()?.block_on(hub::run(settings))?;
            Ok(Exit::ok())
        }
        Command::Hub(HubCmd {
            sub: Some(HubSub::Url { identity, json }),
            ..
        }) => {
            let identity = identity.identity();
            let keys = identity.load_keys()?;
            let url = identity.server_url(&keys);
            if json {
                let doc = serde_json::json!({ "version": client::JSON_VERSION, "url": url.to_string() });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("{url}");
            }
            Ok(Exit::ok())
        }
        Command::Hub(HubCmd {
            sub: Some(HubSub::Stats { status_socket, json }),
            ..
        }) => {
            let stats = local_api::call::<serde_json::Value>(&status_socket, LocalRequest::Stats)
                .map_err(|e| {
                    if local_api::is_permission_denied(&e) {
                        return anyhow::anyhow!("{e:#}");
                    }
                    anyhow::anyhow!(
                        "no hub answering at {} ({e}); is `mcvpn hub` running?",
                        status_socket.display()
                    )
                })?
                .map_err(|e| anyhow::anyhow!("the hub refused: {e}"))?;
            if json {
                // The hub's own document, versioned like every other --json answer.
                let mut doc = serde_json::json!({ "version": client::JSON_VERSION });
                if let (Some(doc), serde_json::Value::Object(fields)) = (doc.as_object_mut(), stats) {
                    doc.extend(fields);
                }
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_hub_stats(&stats);
            }
            Ok(Exit::ok())
        }
        Command::Up(u) => client::up(UpOptions {
            paths: u.paths.paths(),
            hub: u.hub,
            account: u.account,
            password_file: u.password_file,
            foreground: u.foreground,
            resume: u.resume,
            persist: if u.persist { Some(u.service.settings()?) } else { None },
            data: u.data,
            transport: u.transport.options(),
        }),
        Command::Down(d) => {
            let paths = d.paths.paths();
            let exit = client::down(&paths)?;
            if d.persist && exit.code == exit::OK {
                client::remove_persistence(&d.service.settings()?, &paths)?;
            }
            Ok(exit)
        }
        Command::Completions { shell } => {
            mcvpn::docs::write_completions(<Cli as clap::CommandFactory>::command(), shell, &mut std::io::stdout());
            Ok(Exit::ok())
        }
        Command::Debug(DebugCmd::GenDocs { out }) => {
            let pages = mcvpn::docs::generate_all(<Cli as clap::CommandFactory>::command(), &out)?;
            println!(
                "{pages} man pages and {} completion scripts in {}",
                mcvpn::docs::PACKAGED_SHELLS.len(),
                out.display()
            );
            Ok(Exit::ok())
        }
        Command::Status { paths, json, verbose } => client::status(&paths.paths().socket(), json, verbose),
        Command::ClientDaemon => client::daemon_main(),
        Command::Target(TargetCmd::Enroll {
            hub,
            account,
            password_file,
            name,
            transport,
            paths,
        }) => target::enroll(EnrollOptions {
            paths: paths.paths(),
            hub,
            account,
            password_file,
            name,
            transport: transport.options(),
        }),
        Command::Target(TargetCmd::Run { data, transport, paths }) => target::run(RunOptions {
            paths: paths.paths(),
            data,
            transport: transport.options(),
        }),
        Command::Target(TargetCmd::Status { paths, json, verbose }) => {
            client::status(&paths.paths().socket(), json, verbose)
        }
        Command::Admin(mut a) => {
            a.proxy_env = proxy_env();
            mcvpn::cli_admin::run(a)
        }
        Command::Passwd {
            hub,
            account,
            password_file,
            config,
            json,
            transport,
        } => client::passwd(hub, account, password_file, &config, &transport.options(), json),
        Command::Debug(DebugCmd::RelayProbe {
            hub,
            account,
            password_file,
            to_node,
            count,
        }) => {
            let password = mcvpn::password::read(Some(&password_file), "")?;
            let report = mcvpn::node::probe::run(mcvpn::node::probe::ProbeOptions {
                hub,
                account,
                password,
                to_node,
                count,
            })?;
            println!("{report}");
            Ok(Exit::ok())
        }
    }
}

/// The SMTP password: from --smtp-password-file, else from MCVPN_SMTP_PASSWORD (read
/// here, not through a clap flag, so that it has no command-line form at all).
fn smtp_password(file: Option<&std::path::Path>) -> Result<Option<mcvpn::secret::SecretString>> {
    if let Some(file) = file {
        let password =
            mcvpn::password::read(Some(file), "").map_err(|e| anyhow::anyhow!("--smtp-password-file: {e:#}"))?;
        return Ok(Some(password.into()));
    }
    Ok(std::env::var("MCVPN_SMTP_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(mcvpn::secret::SecretString::from))
}

fn hub_settings(run: HubArgs) -> Result<hub::HubSettings> {
    let smtp = run
        .smtp
        .as_deref()
        .map(hub::notices::SmtpConfig::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--smtp: {e}"))?;
    let smtp = match (smtp, smtp_password(run.smtp_password_file.as_deref())?) {
        (Some(smtp), Some(password)) => Some(smtp.with_password(password).map_err(anyhow::Error::msg)?),
        (smtp, _) => smtp,
    };
    let https = match run.https.https_listen {
        HttpsListen::Off => None,
        HttpsListen::On(listen) => Some(hub::https::HttpsSettings {
            listen,
            tls: run
                .https
                .tls_cert
                .zip(run.https.tls_key)
                .map(|(cert, key)| hub::https::TlsFiles { cert, key }),
        }),
    };
    let mut identity = run.identity.identity();
    if let (None, Some(h)) = (identity.https_port, &https) {
        identity.https_port = Some(h.listen.port());
    }
    Ok(hub::HubSettings {
        identity,
        db: run.db,
        overlay: run.overlay,
        status_socket: run.status_socket,
        socket_buffer: run.socket_buffer,
        min_accounts: run.min_accounts,
        smtp,
        smtp_from: run.smtp_from,
        udp_tuning: run.udp_tuning,
        preauth: PreauthLimits {
            per_source: run.preauth.preauth_per_source,
            global: run.preauth.preauth_global,
            handshake_deadline: std::time::Duration::from_secs_f64(run.preauth.handshake_deadline),
        },
        https,
    })
}

fn print_hub_stats(s: &serde_json::Value) {
    println!("server URL: {}", s["url"].as_str().unwrap_or("-"));
    println!("bound endpoints: {}", s["bound_endpoints"]);
    if let Some(relay) = s["relay"].as_object() {
        println!("relay:");
        for (k, v) in relay {
            println!("  {k:<22} {v}");
        }
    }
    match s["https"].as_object() {
        Some(https) => {
            println!("https:");
            for (k, v) in https {
                println!("  {k:<22} {v}");
            }
        }
        None => println!("https: off"),
    }
    let sessions = s["sessions"].as_array().cloned().unwrap_or_default();
    println!("live sessions: {}", sessions.len());
    for x in sessions {
        println!(
            "  node {:<5} {:<20} {:<12} {:<7} {:<15} peers online {}",
            x["node_id"],
            x["name"].as_str().unwrap_or("-"),
            x["account"].as_str().unwrap_or("-"),
            x["role"].as_str().unwrap_or("-"),
            x["overlay_ip"].as_str().unwrap_or("-"),
            x["peers_online"]
        );
    }
}
