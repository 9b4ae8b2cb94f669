//! `mcvpn-bench`: load tests that drive the real hub code in this process, for
//! developers and operators sizing a hub. Its own binary, so that none of it ships in
//! `mcvpn`; see bench/README.md.
#![deny(clippy::undocumented_unsafe_blocks)]

mod control;
mod relay;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mcvpn-bench",
    version,
    about = "Load tests of mcvpn's hub code, in one process over loopback (see bench/README.md)"
)]
struct Cli {
    /// Log filter for the hub code under test (default `warn`, or RUST_LOG)
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    cmd: BenchCmd,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Relay load test: N simulated nodes bind to the real relay loop over loopback and
    /// exchange datagrams in authorised pairs
    #[command(after_help = "Examples:\n  mcvpn-bench relay --nodes 1000 --seconds 10\n  \
        mcvpn-bench relay --nodes 10000 --seconds 10 --rate 150000 --json\n\n\
        Run it on an otherwise idle machine; see bench/README.md for what each figure means.")]
    Relay(relay::RelayBenchArgs),
    /// Control-plane load test: N real sessions (Noise IK, device-key and resume logins,
    /// UDP binds and keepalives) to a real `mcvpn hub` process, held idle, churned, and
    /// one contract suspended
    #[command(after_help = "Examples:\n  mcvpn-bench control --sessions 10000\n  \
        mcvpn-bench control --sessions 500 --contracts 5 --idle-seconds 5 --churn-seconds 10 --json\n\n\
        Usually run through scripts/load.sh; see bench/README.md for what each figure means.")]
    Control(control::ControlBenchArgs),
    /// A share of `control`'s sessions in a process of its own (internal)
    #[command(hide = true)]
    ControlWorker(control::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The hub code logs through `tracing` (e.g. a UDP GSO fallback): show its warnings.
    let filter = cli
        .log
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let result = match cli.cmd {
        BenchCmd::Relay(a) => relay::run_cli(a),
        BenchCmd::Control(a) => control::run_cli(a),
        BenchCmd::ControlWorker(a) => control::run_worker_cli(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcvpn-bench: {e:#}");
            ExitCode::from(mcvpn::exit::FAILURE)
        }
    }
}
