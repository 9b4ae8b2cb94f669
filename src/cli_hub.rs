//! The `mcvpn hub` command line: its flags, `mcvpn hub url|stats`, and turning the
//! flags into [`hub::HubSettings`], the only form in which settings reach the hub.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::exit::Exit;
use crate::hub::{self, preauth::PreauthLimits};
use crate::local_api::{self, LocalRequest};
use crate::store::{OverlayNet, StoreLocation};
use crate::udp_batch::UdpTuning;

pub mod config;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HubCmd {
    #[command(flatten)]
    pub run: HubArgs,
    #[command(subcommand)]
    pub sub: Option<HubSub>,
}

/// The hub's address and keys: `mcvpn hub` and `mcvpn hub url` take the same flags.
#[derive(Args, Clone)]
pub struct HubIdentityArgs {
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
pub struct HubArgs {
    #[command(flatten)]
    identity: HubIdentityArgs,
    /// This hub's name among the hubs that share one store: its sessions, heartbeat and
    /// leases are recorded under it, so each hub needs its own [default: the host name]
    #[arg(long, env = "MCVPN_HUB_NAME", value_name = "NAME")]
    name: Option<String>,
    /// Where the other hubs sharing the store send this hub relay datagrams for its nodes
    /// (its UDP relay address as they reach it) [default: --listen, unless that is 0.0.0.0]
    #[arg(long, env = "MCVPN_MESH_ADDR", value_name = "ADDR:PORT")]
    mesh_addr: Option<std::net::SocketAddr>,
    /// The store of contracts, accounts and the audit log: a SQLite file path (one hub),
    /// or postgres://USER@HOST:PORT/DB (also postgresql://) for several hubs sharing one
    /// PostgreSQL database; a password in the URL is never logged (give it in MCVPN_HUB_DB, not on a command line `ps` shows).
    /// TLS to a host that is not loopback, its certificate (chain and host name) always
    /// verified against ?sslrootcert=CA.pem or else the web PKI roots (sslmode=require,
    /// verify-ca and verify-full all verify: there is no unverified TLS); ?sslmode=disable
    /// for plaintext, the default on loopback and unix sockets
    #[arg(long, default_value = "/var/lib/mcvpn/hub.db", env = "MCVPN_HUB_DB", value_parser = DbParser)]
    db: StoreLocation,
    /// Connections a PostgreSQL store keeps open (store calls run on as many at once);
    /// a SQLite store always has one
    #[arg(long, default_value_t = crate::store::DEFAULT_PG_POOL, env = "MCVPN_HUB_DB_POOL", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    db_pool: u16,
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
    #[arg(long, env = "MCVPN_TIMEZONE", default_value = crate::contract::DEFAULT_TZ, value_parser = crate::contract::parse_tz)]
    timezone: crate::contract::Tz,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// The hub's settings file (TOML). Its keys are the long flag names above (`listen =
    /// "0.0.0.0:51820"`, `https-listen = "off"`, `extra-key = ["a.key", "b.key"]`).
    /// Flags beat environment variables, which beat the file, which beats the defaults.
    /// A missing file is fine at the default path, an error anywhere else
    #[arg(long, env = "MCVPN_HUB_CONFIG", value_name = "FILE", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

/// The Prometheus endpoint.
#[derive(Args, Clone)]
#[command(next_help_heading = "Metrics and health")]
pub struct MetricsArgs {
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address, or `off`
    /// (e.g. 127.0.0.1:9190). Loopback only, unless --metrics-listen-public
    #[arg(long, env = "MCVPN_METRICS_LISTEN", value_name = "ADDR|off", default_value = "off",
        value_parser = parse_metrics_listen)]
    metrics_listen: MetricsListen,
    /// Allow --metrics-listen on a non-loopback address (the figures reveal the service's
    /// load and activity: keep that port behind a firewall)
    #[arg(long, env = "MCVPN_METRICS_LISTEN_PUBLIC")]
    metrics_listen_public: bool,
}

/// `--metrics-listen`: an address, or None for `off`. A type of its own because clap
/// reads a field of type `Option<T>` as an optional `T`, not as the parser's `Option`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

fn parse_metrics_listen(s: &str) -> Result<MetricsListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen(None));
    }
    s.parse()
        .map(|a| MetricsListen(Some(a)))
        .map_err(|_| format!("{s:?}: give an address like 127.0.0.1:9190, or `off`"))
}

/// What a connection may cost before it has logged in (defaults: see `hub::preauth`).
#[derive(Args, Clone)]
#[command(next_help_heading = "Pre-authentication limits")]
pub struct PreauthArgs {
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
pub struct HttpsArgs {
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
pub enum HttpsListen {
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
pub enum HubSub {
    /// Check the settings (flags, environment, --config file) and print each with where
    /// it came from; exits 0 when `mcvpn hub` would accept them
    #[command(after_help = "Example:\n  mcvpn hub check-config --config /etc/mcvpn/hub.toml")]
    CheckConfig(Box<HubArgs>),
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

/// Runs `mcvpn hub` or one of its subcommands.
///
/// `reparse` parses the whole command line again with more arguments after it (the
/// settings file's, as flags): see [`config`].
pub fn run(cmd: HubCmd, reparse: config::Reparse) -> Result<Exit> {
    match cmd {
        HubCmd {
            sub: Some(HubSub::CheckConfig(_)),
            ..
        } => {
            let resolved = config::resolve(reparse)?;
            hub_settings(resolved.args.clone())?;
            crate::cli_admin::load_notice_templates(resolved.args.notice_templates.as_deref())?;
            for o in &resolved.origins {
                println!("{:<22} {:<40} ({})", o.key, o.value, o.source);
            }
            Ok(Exit::ok())
        }
        HubCmd { sub: None, .. } => {
            let run = config::resolve(reparse)?.args;
            crate::contract::set_operator_tz(run.timezone).map_err(anyhow::Error::msg)?;
            tracing::info!(timezone = %run.timezone, "contract dates are days in this time zone");
            crate::admin::notice_text::install(crate::cli_admin::load_notice_templates(
                run.notice_templates.as_deref(),
            )?);
            let settings = hub_settings(run)?;
            tokio::runtime::Runtime::new()?.block_on(hub::run(settings))?;
            Ok(Exit::ok())
        }
        HubCmd {
            sub: Some(HubSub::Url { identity, json }),
            ..
        } => {
            let identity = identity.identity();
            let keys = identity.load_keys()?;
            let url = identity.server_url(&keys);
            if json {
                let doc = serde_json::json!({ "version": crate::node::client::JSON_VERSION, "url": url.to_string() });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("{url}");
            }
            Ok(Exit::ok())
        }
        HubCmd {
            sub: Some(HubSub::Stats { status_socket, json }),
            ..
        } => {
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
                let mut doc = serde_json::json!({ "version": crate::node::client::JSON_VERSION });
                if let (Some(doc), serde_json::Value::Object(fields)) = (doc.as_object_mut(), stats) {
                    doc.extend(fields);
                }
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_hub_stats(&stats);
            }
            Ok(Exit::ok())
        }
    }
}

/// The SMTP password: from --smtp-password-file, else from MCVPN_SMTP_PASSWORD (read
/// here, not through a clap flag, so that it has no command-line form at all).
fn smtp_password(file: Option<&std::path::Path>) -> Result<Option<crate::secret::SecretString>> {
    if let Some(file) = file {
        let password =
            crate::password::read(Some(file), "").map_err(|e| anyhow::anyhow!("--smtp-password-file: {e:#}"))?;
        return Ok(Some(password.into()));
    }
    Ok(std::env::var("MCVPN_SMTP_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(crate::secret::SecretString::from))
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
            console: Default::default(),
        }),
    };
    let mut identity = run.identity.identity();
    if let (None, Some(h)) = (identity.https_port, &https) {
        identity.https_port = Some(h.listen.port());
    }
    // A hub listening on one address is reached there; on all of them, it must say.
    let mesh_addr = run
        .mesh_addr
        .or_else(|| (!identity.listen.ip().is_unspecified()).then_some(identity.listen));
    Ok(hub::HubSettings {
        identity,
        name: run.name.unwrap_or_else(crate::util::hostname),
        mesh_addr,
        db: run.db,
        db_pool: run.db_pool.into(),
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
        metrics: run
            .metrics
            .metrics_listen
            .0
            .map(|listen| hub::metrics::MetricsSettings::new(listen, run.metrics.metrics_listen_public))
            .transpose()
            .map_err(anyhow::Error::msg)?,
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

/// `--db`'s parser (hub and admin): [`StoreLocation::parse`], with an error that does not
/// repeat the value. clap's own "invalid value '…'" would print a URL's password.
#[derive(Clone)]
pub(crate) struct DbParser;

impl clap::builder::TypedValueParser for DbParser {
    type Value = StoreLocation;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<StoreLocation, clap::Error> {
        let name = arg.map_or_else(|| "--db".to_string(), |a| a.to_string());
        let invalid = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{name}' (not repeated: it may hold a password): {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| invalid("not valid UTF-8".into()))?;
        StoreLocation::parse(text).map_err(invalid)
    }
}
