//! What a node is told: the control part (who it is, which hub) that every connection
//! to the hub needs, and the data-path part (TUN, UDP, tuning knobs) that only a node
//! moving packets needs. The command line fills both (clap, with `env` for the
//! tuning knobs); nothing below `main` reads the environment.

use serde::{Deserialize, Serialize};

use super::netconf::DEFAULT_MTU;
use super::proxy::Proxy;
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
    /// How to reach the hub: UDP and TCP, the HTTPS WebSocket, or whichever works.
    pub transport: TransportMode,
    /// The HTTP proxy to reach the hub's HTTPS port through (already chosen from the
    /// command line, the config and `HTTPS_PROXY`/`NO_PROXY`), with its password.
    pub proxy: Option<Proxy>,
}

impl ControlSettings {
    /// A control connection that goes straight to the hub, as before issue 12: the
    /// transport chosen automatically and no proxy.
    pub fn direct(role: Role, hub: HubUrl, key: KeyPair, account: Option<String>, hostname: String) -> ControlSettings {
        ControlSettings {
            role,
            hub,
            key,
            account,
            hostname,
            transport: TransportMode::Auto,
            proxy: None,
        }
    }
}

/// `--transport`: how a node reaches the hub.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportMode {
    /// Control over TCP (the WebSocket when TCP fails or a proxy is set), datagrams over
    /// UDP, moving to the WebSocket when UDP does not answer and back when it does
    #[default]
    Auto,
    /// Control over TCP and datagrams over UDP only, as before
    Udp,
    /// Everything over the WebSocket on the hub's HTTPS port
    Https,
}

impl TransportMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportMode::Auto => "auto",
            TransportMode::Udp => "udp",
            TransportMode::Https => "https",
        }
    }
}

/// What the command line says about the transport, before it is resolved against the
/// remembered config and the hub (see [`TransportOptions::resolve`]). Filled in by
/// `main` (the environment is read there only), handed to the node's commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransportOptions {
    /// `--transport` / `MCVPN_TRANSPORT`.
    pub transport: Option<TransportMode>,
    /// `--proxy URL|none`.
    pub proxy: Option<String>,
    /// `--proxy-password-file`.
    pub proxy_password_file: Option<std::path::PathBuf>,
    /// `HTTPS_PROXY` / `https_proxy`.
    pub https_proxy_env: Option<String>,
    /// `NO_PROXY` / `no_proxy`.
    pub no_proxy_env: Option<String>,
}

/// The transport settings a command ends up with, and the proxy as given (explicit or
/// from the environment), which is what a config file records.
#[derive(Debug, Clone)]
pub struct ResolvedTransport {
    pub transport: TransportMode,
    pub proxy: Option<Proxy>,
    /// The proxy URL in force, as written (None: no proxy).
    pub proxy_given: Option<String>,
}

impl TransportOptions {
    /// Resolves the transport and proxy for `hub`: the command line first, then what a
    /// config remembered (`remembered_*`), then `HTTPS_PROXY` unless `NO_PROXY` names
    /// the hub. The proxy's password comes from `--proxy-password-file` (else
    /// `remembered_password_file`), else, when the proxy names a user, from a prompt.
    pub fn resolve(
        &self,
        hub: &HubUrl,
        remembered_transport: Option<TransportMode>,
        remembered_proxy: Option<&str>,
        remembered_password_file: Option<&std::path::Path>,
    ) -> anyhow::Result<ResolvedTransport> {
        let transport = self.transport.or(remembered_transport).unwrap_or_default();
        let explicit = self.proxy.as_deref().or(remembered_proxy);
        let url = super::proxy::choose_proxy(
            explicit,
            self.https_proxy_env.as_deref(),
            self.no_proxy_env.as_deref(),
            hub.host(),
        )
        .map_err(|e| anyhow::anyhow!("--proxy: {e}"))?;
        let Some(url) = url else {
            return Ok(ResolvedTransport {
                transport,
                proxy: None,
                proxy_given: None,
            });
        };
        let given = explicit
            .filter(|p| !p.eq_ignore_ascii_case("none"))
            .or(self.https_proxy_env.as_deref())
            .map(str::to_string);
        let file = self.proxy_password_file.as_deref().or(remembered_password_file);
        let password = match (&url.user, file) {
            (_, Some(file)) => Some(crate::password::read(Some(file), "")?.into()),
            (Some(user), None) => Some(
                crate::password::read(
                    None,
                    &format!("Password for {user} at the proxy {}:{}: ", url.host, url.port),
                )
                .map_err(|e| anyhow::anyhow!("{e:#} (the proxy password: --proxy-password-file FILE)"))?
                .into(),
            ),
            (None, None) => None,
        };
        Ok(ResolvedTransport {
            transport,
            proxy: Some(Proxy { url, password }),
            proxy_given: given,
        })
    }
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
