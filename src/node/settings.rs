//! What a node is told: the control part (who it is, which hub) that every connection
//! to the hub needs, and the data-path part (TUN, UDP, tuning knobs) that only a node
//! moving packets needs. The command line fills both (clap, with `env` for the
//! tuning knobs); nothing below `main` reads the environment.

use serde::{Deserialize, Serialize};

use super::netconf::DEFAULT_MTU;
use crate::keys::KeyPair;
use crate::proto::control::Role;
use crate::proto::url::HubUrl;
use crate::udp_batch::{parse_switch, Offloads, UdpTuning};

/// Default UDP socket buffer asked for (see `util::set_socket_buffers`).
pub const DEFAULT_SOCKET_BUFFER: usize = 8 << 20;

/// Who the node is and which hub it talks to: all a control connection needs (a
/// login, an enrolment, a password change, an administrator's command).
pub struct ControlSettings {
    pub role: Role,
    pub hub: HubUrl,
    pub key: KeyPair,
    pub account: Option<String>,
    pub hostname: String,
}

/// The packet side of a node: its TUN interface, its UDP socket and their knobs.
/// `mcvpn up` hands it to its daemon on stdin, so it is serialisable.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPathSettings {
    /// Name of the TUN interface
    #[arg(long, default_value = "mcvpn0")]
    pub iface: String,
    /// MTU of the TUN interface (1420 fits a 1500-byte IPv4 path; use 1400 behind an IPv6 hub)
    #[arg(long, default_value_t = DEFAULT_MTU)]
    pub mtu: u16,
    /// UDP socket buffer size to ask for, in bytes (0 keeps the system default)
    #[arg(skip = DEFAULT_SOCKET_BUFFER)]
    pub socket_buffer: usize,
    #[command(flatten)]
    pub tuning: DataPathTuning,
}

/// Everything a node that moves packets is told.
pub struct NodeSettings {
    pub control: ControlSettings,
    pub data: DataPathSettings,
}

/// The six data-path knobs, with their environment names: the UDP socket's (shared
/// with the hub's relay, see [`UdpTuning`]), the TUN offload, and the packet threads.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPathTuning {
    #[command(flatten)]
    #[serde(flatten)]
    pub udp: UdpTuning,
    /// TUN offload: the kernel hands over 64 KiB TCP segments and takes coalesced
    /// writes (`off` exchanges plain packets)
    #[arg(long = "tun-offload", env = "MCVPN_TUN_OFFLOAD", value_name = "on|off", default_value = "on",
        value_parser = parse_switch, action = clap::ArgAction::Set, help_heading = "Data path tuning")]
    pub tun_offload: bool,
    /// Threads that move packets: 1 (both directions on one thread) or 2 (one per
    /// direction, which pays only where cores are to spare); anything else counts as 1
    #[arg(long = "packet-threads", env = "MCVPN_PACKET_THREADS", value_name = "1|2", default_value = "1",
        value_parser = parse_packet_threads, help_heading = "Data path tuning")]
    pub packet_threads: usize,
}

impl Default for DataPathTuning {
    /// The command line's defaults: every offload on, no spinning, one packet thread.
    fn default() -> DataPathTuning {
        DataPathTuning {
            udp: UdpTuning::default(),
            tun_offload: true,
            packet_threads: 1,
        }
    }
}

impl DataPathTuning {
    /// The offloads these knobs allow (the kernel may still refuse one).
    pub fn offloads(&self) -> Offloads {
        Offloads {
            tun: self.udp.offload && self.tun_offload,
            udp_gso: self.udp.udp_gso(),
            udp_gro: self.udp.udp_gro(),
        }
    }
}

/// `MCVPN_PACKET_THREADS`: 1 or 2, and 1 for anything else.
pub fn packet_threads(setting: Option<&str>) -> usize {
    match setting.map(str::trim) {
        Some("2") => 2,
        _ => 1,
    }
}

/// The command-line parser of [`packet_threads`]: never fails, as the environment
/// switch never did, but says so on stderr (logging is not set up yet at parse time).
fn parse_packet_threads(value: &str) -> Result<usize, String> {
    if !matches!(value.trim(), "1" | "2" | "") {
        eprintln!("mcvpn: warning: MCVPN_PACKET_THREADS / --packet-threads must be 1 or 2; using 1");
    }
    Ok(packet_threads(Some(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    /// Parses the tuning from `(environment name, value)` pairs, each given as the
    /// command-line flag clap binds to that environment name: the same parsers, and a
    /// check that each name is bound at all.
    fn tuning(pairs: &[(&str, &str)]) -> DataPathTuning {
        let cmd = DataPathTuning::augment_args(Command::new("t"));
        let mut argv = vec!["t".to_string()];
        for (name, value) in pairs {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == *name))
                .unwrap_or_else(|| panic!("no flag reads {name}"));
            argv.push(format!("--{}={value}", arg.get_long().unwrap()));
        }
        let m = cmd.try_get_matches_from(argv).unwrap();
        <DataPathTuning as clap::FromArgMatches>::from_arg_matches(&m).unwrap()
    }

    #[test]
    fn the_six_environment_names_are_bound() {
        let cmd = DataPathTuning::augment_args(Command::new("t"));
        let mut names: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "MCVPN_OFFLOAD",
                "MCVPN_PACKET_THREADS",
                "MCVPN_SPIN_US",
                "MCVPN_TUN_OFFLOAD",
                "MCVPN_UDP_GRO",
                "MCVPN_UDP_GSO"
            ]
        );
    }

    #[test]
    fn defaults_are_the_command_lines() {
        assert_eq!(tuning(&[]), DataPathTuning::default());
        assert_eq!(tuning(&[]).udp.spin(), std::time::Duration::ZERO);
        assert_eq!(tuning(&[("MCVPN_SPIN_US", "50")]).udp.spin_us, 50);
        assert_eq!(tuning(&[("MCVPN_SPIN_US", "fast")]).udp.spin_us, 0);
        assert_eq!(tuning(&[("MCVPN_PACKET_THREADS", "2")]).packet_threads, 2);
        assert_eq!(tuning(&[("MCVPN_PACKET_THREADS", "3")]).packet_threads, 1);
    }

    #[test]
    fn offload_switches() {
        let env = |pairs: &'static [(&'static str, &'static str)]| tuning(pairs).offloads();
        assert_eq!(
            env(&[]),
            Offloads {
                tun: true,
                udp_gso: true,
                udp_gro: true
            }
        );
        assert_eq!(
            env(&[("MCVPN_OFFLOAD", "off")]),
            Offloads {
                tun: false,
                udp_gso: false,
                udp_gro: false
            }
        );
        assert_eq!(
            env(&[("MCVPN_UDP_GSO", "0")]),
            Offloads {
                tun: true,
                udp_gso: false,
                udp_gro: true
            }
        );
        assert_eq!(
            env(&[("MCVPN_TUN_OFFLOAD", "no"), ("MCVPN_UDP_GRO", "1")]),
            Offloads {
                tun: false,
                udp_gso: true,
                udp_gro: true
            }
        );
    }

    #[test]
    fn packet_threads_default_to_one_and_take_only_one_or_two() {
        assert_eq!(packet_threads(None), 1);
        assert_eq!(packet_threads(Some("")), 1);
        assert_eq!(packet_threads(Some("1")), 1);
        assert_eq!(packet_threads(Some(" 2 ")), 2);
        assert_eq!(packet_threads(Some("3")), 1);
        assert_eq!(packet_threads(Some("two")), 1);
    }
}
