//! The `mcvpn monitor` command line: flags and environment into one
//! [`MonitorSettings`], read here and nowhere else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;

use crate::exit::Exit;
use crate::hub::notices::{parse_from, SmtpConfig};
use crate::monitor::probe::ProbeAccount;
use crate::monitor::{AlertSettings, MonitorSettings, Recorder};
use crate::proto::url::HubUrl;

#[derive(Args)]
#[command(after_help = "Set up once, on the hub host (operator):\n  \
    mcvpn admin contract add mcvpn-probe --admin-email noc@operator.example\n  \
    mcvpn admin account add mcvpn-probe probe --password-file /etc/mcvpn/probe-password\n  \
    mcvpn admin operator add watch1 --role monitor --password-file /etc/mcvpn/monitor-password\n\n\
    Then, preferably on another machine:\n  \
    mcvpn monitor --hub 'mcvpn://vpn.example.com:51820/?key=…' --probe-account probe \\\n    \
      --probe-password-file /etc/mcvpn/probe-password --login watch1 --login-password-file /etc/mcvpn/monitor-password \\\n    \
      --smtp smtp://mail.example.com --alert-mail-to noc@operator.example --metrics-listen 127.0.0.1:9191\n\n\
    An outage starts at the first failed probe of a run of --failures-for-outage failures and ends at the\n\
    first passing probe; it is recorded on the hub (`mcvpn admin outage list`) as soon as the hub answers.")]
pub struct MonitorCmd {
    /// A hub to watch (its server URL); repeat for several, or give a URL naming several
    #[arg(long = "hub", required = true, value_name = "URL")]
    pub hubs: Vec<String>,
    /// Seconds between probes
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    /// Seconds a probe may take before it counts as failed [default: the interval, at most 10]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub probe_timeout: Option<u64>,
    /// Failed probes in a row that make an outage (alert mail, recorded)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub failures_for_outage: u32,
    /// The probe account (an ordinary account of an operator-owned probe contract): the
    /// monitor logs in with it as a client and as a target of the same account
    #[arg(long, value_name = "ACCOUNT")]
    pub probe_account: String,
    /// The probe account's password: the first line of this file
    #[arg(long, value_name = "FILE")]
    pub probe_password_file: PathBuf,
    /// The operator login of role monitor that records outages (`mcvpn admin operator add NAME --role monitor`)
    #[arg(long, value_name = "NAME")]
    pub login: String,
    /// That login's password: the first line of this file
    #[arg(long, value_name = "FILE")]
    pub login_password_file: PathBuf,
    /// Where the monitor keeps its state (outage in progress, outages to record) and the
    /// probe's two device keys (STATE.client.key, STATE.target.key)
    #[arg(long, default_value = "/var/lib/mcvpn-monitor/state.json", value_name = "FILE")]
    pub state: PathBuf,
    /// Serve Prometheus metrics here (e.g. 127.0.0.1:9191)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Send alert mails (outage started, ended) to this address (with --smtp); repeat,
    /// or separate with commas, for several
    #[arg(long, env = "MCVPN_ALERT_MAIL_TO", value_name = "ADDRESS", value_delimiter = ',')]
    pub alert_mail_to: Vec<String>,
    /// The mail server, as the hub's --smtp: smtp://HOST[:25], smtp://USER@HOST:587, smtps://…
    #[arg(long, env = "MCVPN_SMTP", value_name = "URL", hide_env_values = true)]
    pub smtp: Option<String>,
    /// The SMTP user's password: the first line of this file
    #[arg(long, env = "MCVPN_SMTP_PASSWORD_FILE", value_name = "FILE", requires = "smtp")]
    pub smtp_password_file: Option<PathBuf>,
    /// The sender of alert mails
    #[arg(long, env = "MCVPN_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,
}

fn read_secret(file: &std::path::Path, what: &str) -> Result<String> {
    crate::password::read(Some(file), "").with_context(|| format!("{what}: cannot read {}", file.display()))
}

fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn settings(cmd: MonitorCmd) -> Result<MonitorSettings> {
    let hubs = cmd
        .hubs
        .iter()
        .map(|h| HubUrl::parse(h).map_err(|e| anyhow!("--hub {h}: {e}")))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        // A URL naming several hubs: each is watched (and alerted on) on its own.
        .flat_map(|url| url.split())
        .collect();
    let alerts = match &cmd.smtp {
        Some(url) if !cmd.alert_mail_to.is_empty() => {
            let mut smtp = SmtpConfig::parse(url).map_err(|e| anyhow!("--smtp: {e}"))?;
            if let Some(file) = &cmd.smtp_password_file {
                smtp = smtp
                    .with_password(read_secret(file, "--smtp-password-file")?.into())
                    .map_err(anyhow::Error::msg)?;
            }
            let from = cmd.smtp_from.clone().unwrap_or_else(crate::hub::notices::default_from);
            let from = parse_from(&from).map_err(|e| anyhow!("--smtp-from: {e}"))?;
            let to = cmd
                .alert_mail_to
                .iter()
                .map(|a| parse_from(a).map_err(|e| anyhow!("--alert-mail-to: {e}")))
                .collect::<Result<Vec<_>>>()?;
            Some(AlertSettings { smtp, from, to })
        }
        _ => None,
    };
    let interval = Duration::from_secs(cmd.interval);
    let probe_timeout = Duration::from_secs(cmd.probe_timeout.unwrap_or(cmd.interval.min(10)));
    Ok(MonitorSettings {
        hubs,
        interval,
        probe_timeout,
        failures_for_outage: cmd.failures_for_outage,
        probe: ProbeAccount {
            account: cmd.probe_account,
            password: read_secret(&cmd.probe_password_file, "--probe-password-file")?,
            client_key: with_suffix(&cmd.state, ".client.key"),
            target_key: with_suffix(&cmd.state, ".target.key"),
        },
        recorder: Recorder {
            name: cmd.login,
            password: read_secret(&cmd.login_password_file, "--login-password-file")?,
        },
        state_file: cmd.state,
        metrics_listen: cmd.metrics_listen,
        alerts,
    })
}

pub fn run(cmd: MonitorCmd) -> Result<Exit> {
    match (&cmd.smtp, cmd.alert_mail_to.is_empty()) {
        (Some(_), true) => tracing::warn!("--smtp without --alert-mail-to: no alert mails will be sent"),
        (None, false) => tracing::warn!("--alert-mail-to without --smtp: no alert mails will be sent"),
        _ => {}
    }
    let settings = settings(cmd)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(crate::monitor::run(settings))?;
    Ok(Exit::ok())
}
