//! `mcvpn diagnose` and `mcvpn admin diagnose-report`: their command lines, turned into
//! [`DiagnoseSettings`] here (the environment is read by `main` and handed in).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::exit::{self, Exit};
use crate::node::client::ClientConfig;
use crate::node::diagnose::{self, render, DiagnoseSettings, Lang, Report};
use crate::node::settings::{TransportMode, TransportOptions};
use crate::proto::url::HubUrl;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    mcvpn diagnose                                   # the server remembered by `mcvpn up`\n  \
    sudo mcvpn diagnose --report diagnose.json        # everything, and a file for support\n  \
    mcvpn diagnose --server 'mcvpn://vpn.example.com:51820/?key=…' --lang en\n\n\
    Exit status: 0 every check ok; 5 warnings only (the VPN works, not at its best);\n  \
    6 a check failed (its line says what to do); 1 diagnose itself could not run.")]
pub struct DiagnoseArgs {
    /// The server URL to check [default: the one `mcvpn up` remembered]
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Language of the text [default: from LC_ALL / LC_MESSAGES / LANG: ja… → ja, else en]
    #[arg(long, value_enum)]
    pub lang: Option<Lang>,
    /// Also write the results as JSON to FILE (no password, key or token in it): send
    /// it to your operator's support
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the JSON report instead of the text
    #[arg(long)]
    pub json: bool,
    /// The tunnel MTU you use with `mcvpn up --mtu`, to compare the path with
    #[arg(long, default_value_t = crate::node::netconf::DEFAULT_MTU)]
    pub mtu: u16,
    /// Echoes sent to measure loss and latency
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub probes: u32,
    /// Remembered hub, account, transport and proxy (what `mcvpn up` wrote)
    #[arg(long, default_value = "/etc/mcvpn/mcvpn.toml", env = "MCVPN_CONFIG")]
    pub config: PathBuf,
    /// As for `mcvpn up`: `udp` makes blocked UDP a failure rather than a warning
    #[arg(long, env = "MCVPN_TRANSPORT", value_enum)]
    pub transport: Option<TransportMode>,
    /// The HTTP proxy, as for `mcvpn up`: http://[USER@]HOST:PORT or `none`
    /// [default: remembered, else HTTPS_PROXY / https_proxy unless NO_PROXY names the hub]
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// The proxy user's password: the first line of this file (else a prompt)
    #[arg(long, value_name = "FILE")]
    pub proxy_password_file: Option<PathBuf>,
    /// The locale variables LC_ALL, LC_MESSAGES, LANG (read by `main`).
    #[arg(skip)]
    pub locale_env: [Option<String>; 3],
    /// HTTPS_PROXY and NO_PROXY (read by `main`).
    #[arg(skip)]
    pub proxy_env: (Option<String>, Option<String>),
}

/// The language: `--lang`, else the locale.
pub fn language(flag: Option<Lang>, locale_env: &[Option<String>; 3]) -> Lang {
    flag.unwrap_or_else(|| {
        let [all, messages, lang] = locale_env;
        Lang::from_locale(all.as_deref(), messages.as_deref(), lang.as_deref())
    })
}

pub fn run(args: DiagnoseArgs) -> Result<Exit> {
    let lang = language(args.lang, &args.locale_env);
    let config = match ClientConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) if args.server.is_some() => {
            tracing::debug!(error = %e, "the remembered config is not readable; --server given");
            ClientConfig::default()
        }
        // Unreadable as this user: say so, and check what can be checked.
        Err(e) => {
            eprintln!("mcvpn: {e:#} (run with sudo, or give --server URL)");
            ClientConfig::default()
        }
    };
    let (url_text, hub_source) = match (&args.server, &config.hub) {
        (Some(s), _) => (Some(s.clone()), "--server".to_string()),
        (None, Some(s)) => (Some(s.clone()), args.config.display().to_string()),
        (None, None) => (None, "-".to_string()),
    };
    let hub = match &url_text {
        None => Err(String::new()),
        Some(s) => HubUrl::parse(s).map_err(|e| e.to_string()),
    };
    let transport = TransportOptions {
        transport: args.transport,
        proxy: args.proxy.clone(),
        proxy_password_file: args.proxy_password_file.clone(),
        https_proxy_env: args.proxy_env.0.clone(),
        no_proxy_env: args.proxy_env.1.clone(),
    };
    let (proxy, udp_only) = match &hub {
        Ok(hub) => {
            let resolved = transport.resolve(hub, config.transport, config.proxy.as_deref(), None)?;
            (resolved.proxy, resolved.transport == TransportMode::Udp)
        }
        Err(_) => (None, false),
    };
    let settings = DiagnoseSettings {
        hub,
        hub_source,
        account: config.account.clone(),
        proxy,
        udp_only,
        tunnel_mtu: args.mtu,
        iface: "mcvpn0".into(),
        overlay: (std::net::Ipv4Addr::new(100, 64, 0, 0), 10),
        loss_probes: args.probes,
    };
    if !args.json {
        eprintln!(
            "{}",
            match lang {
                Lang::Ja => "診断中です (10〜30 秒ほどかかります)…",
                Lang::En => "diagnosing (this takes 10 to 30 seconds)…",
            }
        );
    }
    let report = diagnose::run(&settings);
    if let Some(path) = &args.report {
        diagnose::write_report(&report, path)?;
    }
    if args.json {
        println!("{}", diagnose::to_json(&report));
    } else {
        print!("{}", render::render(&report, lang));
        if let Some(path) = &args.report {
            println!(
                "{}",
                match lang {
                    Lang::Ja => format!(
                        "結果を {} に保存しました (パスワードや鍵は含みません)。",
                        path.display()
                    ),
                    Lang::En => format!("Results written to {} (no password or key in it).", path.display()),
                }
            );
        }
    }
    Ok(Exit::code(report.exit_code))
}

/// `mcvpn admin diagnose-report FILE`: shows a user's report; needs no hub or store.
pub fn show_report(file: &Path, lang: Lang, json: bool) -> Result<Exit> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Exit::fail(
                exit::FAILURE,
                &format!("cannot read {}: {e}", file.display()),
            ))
        }
    };
    match Report::parse(&text) {
        Ok(report) => {
            if json {
                println!("{}", diagnose::to_json(&report));
            } else {
                let finished = report.finished_at.with_timezone(&chrono::Local);
                print!("{}", render::render(&report, lang));
                println!(
                    "{}",
                    match lang {
                        Lang::Ja => format!(
                            "(報告の終了 {}、アカウント {}、終了コード {})",
                            finished.format("%Y-%m-%d %H:%M:%S %:z"),
                            report.account.as_deref().unwrap_or("-"),
                            report.exit_code
                        ),
                        Lang::En => format!(
                            "(report finished {}, account {}, exit status {})",
                            finished.format("%Y-%m-%d %H:%M:%S %:z"),
                            report.account.as_deref().unwrap_or("-"),
                            report.exit_code
                        ),
                    }
                );
            }
            Ok(Exit::ok())
        }
        Err(e) => Ok(Exit::fail(exit::FAILURE, &format!("{}: {e}", file.display()))),
    }
}
