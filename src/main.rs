//! The `mcvpn` command line. Parsing and dispatch only; the work is in the library.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};

use mcvpn::cli_admin::AdminArgs;
use mcvpn::cli_hub::HubCmd;
use mcvpn::exit::{self, Exit};
use mcvpn::node::client::{self, ClientPaths, UpOptions};
use mcvpn::node::settings::TransportOptions;
use mcvpn::node::target::{self, EnrollOptions, RunOptions, TargetPaths};
use mcvpn::node::{DataPathSettings, TransportMode};

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
    /// Watch hubs with end-to-end probes; alert the operator and record outages (art. 35)
    Monitor(mcvpn::cli_monitor::MonitorCmd),
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
    /// Check this PC and the network path to the hub before asking for help (art. 37)
    Diagnose(mcvpn::cli_diagnose::DiagnoseArgs),
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

/// `LC_ALL`, `LC_MESSAGES`, `LANG`: the language of `diagnose` (read here only).
fn locale_env() -> [Option<String>; 3] {
    ["LC_ALL", "LC_MESSAGES", "LANG"].map(|v| std::env::var(v).ok())
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
    // Kept for `mcvpn hub`: its settings file is merged in by parsing again (cli_hub::config).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    let daemon = matches!(
        cli.command,
        Command::Hub(HubCmd { sub: None, .. })
            | Command::ClientDaemon
            | Command::Target(TargetCmd::Run { .. })
            | Command::Monitor(_)
    ) || matches!(&cli.command, Command::Up(u) if u.foreground);
    init_logging(cli.log.as_deref(), if daemon { "info" } else { "warn" }, cli.log_format);
    if prints_for_a_reader(&cli.command) {
        restore_default_sigpipe();
    }
    let result = dispatch(cli.command, &argv);
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

fn dispatch(command: Command, argv: &[std::ffi::OsString]) -> Result<Exit> {
    match command {
        Command::Hub(cmd) => mcvpn::cli_hub::run(cmd, &|extra| {
            Cli::command().try_get_matches_from(argv.iter().chain(extra))
        }),
        Command::Monitor(cmd) => mcvpn::cli_monitor::run(cmd),
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
        Command::Diagnose(mut d) => {
            d.locale_env = locale_env();
            d.proxy_env = proxy_env();
            mcvpn::cli_diagnose::run(d)
        }
        Command::Admin(mut a) => {
            a.proxy_env = proxy_env();
            a.locale_env = locale_env();
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
