//! `mcvpn bench …`: load tests that drive the real hub code in this process, for
//! developers and operators sizing a hub. Not part of any role; see bench/README.md.

pub mod relay;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::exit::Exit;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub cmd: BenchCmd,
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Relay load test: N simulated nodes bind to the real relay loop over loopback and
    /// exchange datagrams in authorised pairs
    #[command(after_help = "Examples:\n  mcvpn bench relay --nodes 1000 --seconds 10\n  \
        mcvpn bench relay --nodes 10000 --seconds 10 --rate 150000 --json\n\n\
        Run it on an otherwise idle machine; see bench/README.md for what each figure means.")]
    Relay(relay::RelayBenchArgs),
}

pub fn run(args: BenchArgs) -> Result<Exit> {
    match args.cmd {
        BenchCmd::Relay(a) => relay::run_cli(a),
    }
}
