//! The engine shared by client and target: one UDP socket to the hub, one TUN, one
//! WireGuard tunnel per peer the hub announced, and the control session that keeps
//! the peer list current.

pub mod client;
pub mod datapath;
pub mod diagnose;
pub mod https;
pub mod netconf;
pub mod peers;
pub mod probe;
pub mod proxy;
pub mod relay_state;
pub mod remote;
pub mod service;
pub mod session;
pub mod settings;
pub mod target;
pub mod transport;
pub mod tun;

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::proto::control::{Event, LoginOk, Role};
use crate::proto::relay::NodeId;
use crate::proto::url;
use crate::udp_batch::{BatchUdp, Offloads};

use self::datapath::{Counters, CountersSnapshot, DataPath, Destination};
use self::peers::{Change, PeerScope, PeerTable};
use self::relay_state::RelayState;
pub use self::settings::{
    ControlSettings, DataPathSettings, DataPathTuning, NodeSettings, TransportMode, DEFAULT_SOCKET_BUFFER,
};
use self::transport::TransportState;

/// Which hub of the server URL the node is on, and where its UDP relay is.
#[derive(Debug, Clone, Copy)]
struct CurrentHub {
    index: usize,
    addr: SocketAddr,
    /// The session with it was lost: the next login starts at the hub after it.
    lost: bool,
}

/// The TUN under a node's data path.
enum TunSource {
    /// The kernel's, created (with its address and routes) at the first login.
    Kernel,
    /// An in-process channel, handed over at the first login: for tests without root
    /// (no address, no routes; the test plays the kernel).
    Channel(Mutex<Option<tun::ChannelTun>>),
}

/// The running data path, over whichever TUN the node has.
enum RunningDataPath {
    Kernel(Arc<DataPath>),
    Channel(#[allow(dead_code)] Arc<DataPath<tun::ChannelTun>>),
}

#[derive(Debug, Default)]
struct Connection {
    connected: bool,
    since: Option<Instant>,
    last_error: Option<String>,
    login: Option<LoginOk>,
}

pub struct Node {
    pub settings: NodeSettings,
    /// Random per process: tells peers whether we restarted (see `PeerInfo::boot_id`).
    pub boot_id: u64,
    pub peers: Arc<PeerTable>,
    pub relay: Arc<RelayState>,
    pub counters: Arc<Counters>,
    udp: Arc<BatchUdp>,
    offloads: Offloads,
    /// The hub the node is on (moved by a login at another hub of the URL).
    hub: Mutex<CurrentHub>,
    /// Where the datagrams go now: the current hub's UDP address, or the HTTPS link's
    /// loopback end.
    dest: Arc<Destination>,
    /// The links and what `status` shows of the transport (see `transport`).
    pub transport: TransportState,
    tun: TunSource,
    datapath: OnceLock<RunningDataPath>,
    conn: Mutex<Connection>,
    /// Which announced peers this session accepts (set by each login).
    scope: Mutex<Option<PeerScope>>,
}

impl Node {
    pub fn new(settings: NodeSettings) -> Result<Node> {
        Node::with_tun(settings, TunSource::Kernel)
    }

    /// A node whose TUN is `tun`, an in-process channel (tests without root): the
    /// kernel's interface, its address and its routes are left alone.
    pub fn with_channel_tun(settings: NodeSettings, tun: tun::ChannelTun) -> Result<Node> {
        Node::with_tun(settings, TunSource::Channel(Mutex::new(Some(tun))))
    }

    fn with_tun(settings: NodeSettings, tun: TunSource) -> Result<Node> {
        // The first hub that resolves: the UDP socket's address family follows it (a
        // URL that mixes IPv4 and IPv6 hubs reaches only those of that family).
        let mut resolved = Err(anyhow!("the server URL names no hub"));
        for (index, hub) in settings.control.hub.hubs().iter().enumerate() {
            let addr = hub
                .authority()
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve the hub address {hub}"))
                .and_then(|mut a| {
                    a.next()
                        .ok_or_else(|| anyhow!("the hub address {hub} resolves to nothing"))
                });
            match addr {
                Ok(addr) => {
                    resolved = Ok((index, addr));
                    break;
                }
                Err(e) if resolved.is_err() => resolved = Err(e),
                Err(_) => {}
            }
        }
        let (hub_index, hub_addr) = resolved?;
        let bind: SocketAddr = if hub_addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
        let udp = UdpSocket::bind(bind).context("cannot open a UDP socket")?;
        udp.connect(hub_addr).context("cannot address the hub over UDP")?;
        crate::util::set_socket_buffers(&udp, settings.data.socket_buffer);
        let offloads = settings.data.tuning.offloads();
        let udp = BatchUdp::new(udp, &settings.data.tuning.udp).context("cannot set up the UDP socket")?;
        Ok(Node {
            peers: Arc::new(PeerTable::new(settings.control.key.secret.clone())),
            settings,
            boot_id: rand::random::<u64>() | 1,
            relay: Arc::new(RelayState::default()),
            counters: Arc::new(Counters::default()),
            udp: Arc::new(udp),
            offloads,
            hub: Mutex::new(CurrentHub {
                index: hub_index,
                addr: hub_addr,
                lost: false,
            }),
            dest: Arc::new(Destination::new(hub_addr)),
            transport: TransportState::default(),
            tun,
            datapath: OnceLock::new(),
            conn: Mutex::new(Connection::default()),
            scope: Mutex::new(None),
        })
    }

    fn prefix_for(&self, login: &LoginOk) -> u8 {
        match self.settings.control.role {
            // A client routes only the targets it may reach (/32 each): split tunnel.
            Role::Client => 32,
            // A target answers whichever client reaches it: route the whole overlay.
            Role::Target => login.overlay_prefix,
        }
    }

    /// Applies a successful login: relay bind, TUN (created on the first login), peers.
    pub fn apply_login(&self, login: &LoginOk) -> Result<()> {
        // Before anything is configured from it: a hub that gives a nonsense overlay
        // would have a target route it (up to the whole internet) into the TUN.
        let scope = PeerScope::from_login(self.settings.control.role, login)
            .map_err(|e| anyhow!("refusing the hub's login answer: {e}"))?;
        *self.scope.lock() = Some(scope);
        self.relay
            .start(login.node_id, login.session_id, *login.relay_key.expose_secret());
        // Bind at once rather than at the next timer tick: the first packets wait on it.
        if let Some(bind) = self.relay.bind_due(Instant::now()) {
            let _ = self.udp.send(self.dest.get(), &bind, None);
        }
        let prefix = self.prefix_for(login);
        match self.datapath.get() {
            None => {
                let data = &self.settings.data;
                let running = match &self.tun {
                    TunSource::Kernel => {
                        let tun =
                            netconf::create_tun(&data.iface, login.overlay_ip, prefix, data.mtu, self.offloads.tun)?;
                        let dp = Arc::new(self.data_path(tun));
                        dp.spawn().context("cannot start the packet threads")?;
                        RunningDataPath::Kernel(dp)
                    }
                    TunSource::Channel(tun) => {
                        let tun = tun.lock().take().ok_or_else(|| anyhow!("the channel TUN was taken"))?;
                        let dp = Arc::new(self.data_path(tun));
                        dp.spawn().context("cannot start the packet threads")?;
                        RunningDataPath::Channel(dp)
                    }
                };
                let _ = self.datapath.set(running);
            }
            Some(RunningDataPath::Channel(_)) => {}
            Some(RunningDataPath::Kernel(dp)) => {
                let previous = self.conn.lock().login.as_ref().map(|l| l.overlay_ip);
                if previous != Some(login.overlay_ip) {
                    tracing::warn!(ip = %login.overlay_ip, "the hub gave a new overlay address");
                    netconf::set_address(&dp.tun, login.overlay_ip, prefix)?;
                }
            }
        }
        let peers = login.peers.iter().filter(|p| self.accepts(p)).cloned().collect();
        for change in self.peers.replace_all(peers) {
            self.on_change(change);
        }
        let mut c = self.conn.lock();
        c.login = Some(login.clone());
        c.connected = true;
        c.since = Some(Instant::now());
        c.last_error = None;
        Ok(())
    }

    fn data_path<T: tun::TunDevice>(&self, tun: T) -> DataPath<T> {
        let data = &self.settings.data;
        DataPath {
            tun: Arc::new(tun),
            udp: self.udp.clone(),
            hub: self.dest.clone(),
            mtu: data.mtu,
            peers: self.peers.clone(),
            relay: self.relay.clone(),
            counters: self.counters.clone(),
            tuning: data.tuning,
            tx_turn: parking_lot::Mutex::new(()),
        }
    }

    pub fn set_connected(&self, connected: bool, error: Option<String>) {
        let mut c = self.conn.lock();
        if c.connected != connected {
            c.since = Some(Instant::now());
        }
        c.connected = connected;
        if error.is_some() || connected {
            c.last_error = error;
        }
    }

    /// Applies one push from the hub.
    pub fn apply_event(&self, ev: Event) {
        match ev {
            Event::Peer(info) => {
                if !self.accepts(&info) {
                    // Whatever we had under that node id is no longer trusted either.
                    if let Some(change) = self.peers.remove(info.node_id) {
                        self.on_change(change);
                    }
                    return;
                }
                let change = self.peers.upsert(info);
                self.on_change(change);
            }
            Event::PeerGone { node_id } => {
                if let Some(change) = self.peers.remove(node_id) {
                    self.on_change(change);
                }
            }
            Event::Pong { .. } => {}
            other => tracing::debug!(?other, "ignoring unexpected push"),
        }
    }

    /// Whether an announced peer is inside this session's scope; refusals are logged
    /// (the peer gets no WireGuard state and no route).
    fn accepts(&self, peer: &crate::proto::control::PeerInfo) -> bool {
        let Some(scope) = *self.scope.lock() else {
            tracing::warn!(peer = %peer.name, node = peer.node_id, "ignoring a peer announced before the login");
            return false;
        };
        match scope.check(peer) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "refusing a peer the hub announced: nothing is routed to it");
                false
            }
        }
    }

    fn on_change(&self, change: Change) {
        match &change {
            Change::Added(p) | Change::Reset(p) | Change::Updated(p) => {
                tracing::info!(peer = %p.name, node = p.node_id, ip = %p.overlay_ip, online = p.online,
                    change = change_name(&change), "peer");
                if self.settings.control.role == Role::Client && p.role == Role::Target && self.kernel_tun() {
                    if let Err(e) = netconf::add_host_route(&self.settings.data.iface, p.overlay_ip) {
                        tracing::error!(error = %e, "cannot add the route to a target");
                    }
                }
            }
            Change::Removed(p) => {
                tracing::info!(peer = %p.name, node = p.node_id, "peer removed");
                if self.settings.control.role == Role::Client && p.role == Role::Target && self.kernel_tun() {
                    let _ = netconf::remove_host_route(&self.settings.data.iface, p.overlay_ip);
                }
            }
        }
    }

    fn kernel_tun(&self) -> bool {
        matches!(self.tun, TunSource::Kernel)
    }

    /// The current hub's UDP address (what the datagrams go to when not on a link).
    pub fn hub_addr(&self) -> SocketAddr {
        self.hub.lock().addr
    }

    /// The current hub's index in the server URL's list.
    pub fn current_hub(&self) -> usize {
        self.hub.lock().index
    }

    /// The current hub as `host:port`, as the server URL names it.
    pub fn current_hub_addr(&self) -> url::HubAddr {
        let index = self.current_hub();
        self.settings.control.hub.only(index).first().clone()
    }

    /// The server URL narrowed to the current hub: what a new link dials.
    pub fn current_hub_url(&self) -> url::HubUrl {
        self.settings.control.hub.only(self.current_hub())
    }

    /// The order in which the next login tries the hubs: the URL's order, or round
    /// robin after the current hub once its session was lost.
    pub fn hub_order(&self) -> Vec<usize> {
        let h = *self.hub.lock();
        self.settings.control.hub.try_order(h.lost.then_some(h.index))
    }

    /// The session with the current hub was lost: the next login starts at the next hub.
    pub fn hub_lost(&self) {
        self.hub.lock().lost = true;
    }

    /// A login at hub `index` succeeded: the node is on it now. When that is another hub
    /// than before (`addr` its UDP address), datagrams on UDP follow at once (a link is
    /// the transport manager's to move, see `transport`); the WireGuard sessions with
    /// the peers are untouched, only the relay under them moved.
    pub fn logged_in_at(&self, index: usize, addr: SocketAddr) {
        let mut h = self.hub.lock();
        h.lost = false;
        if h.index == index && h.addr == addr {
            return;
        }
        let old = *h;
        *h = CurrentHub {
            index,
            addr,
            lost: false,
        };
        drop(h);
        if self.dest.get() == old.addr {
            if let Err(e) = self.dest.switch(&self.udp, addr) {
                tracing::error!(error = %e, %addr, "cannot point the data path at the new hub's UDP address");
            }
        }
        tracing::info!(hub = %self.current_hub_addr(), %addr, from = %self.settings.control.hub.only(old.index).first(),
            "moved to another hub of the server URL");
    }

    /// The data path's socket as a link's loopback end reaches it.
    pub fn data_socket_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(crate::stream::link::local_peer(self.udp.socket.local_addr()?))
    }

    /// Sends the datagrams to `addr` from now on (the hub's UDP address, or a link's
    /// loopback end) and binds from there at once: the relay challenges the new
    /// endpoint, the data path answers, and the binding moves. The WireGuard sessions
    /// are untouched.
    pub fn point_data_at(&self, addr: SocketAddr) -> std::io::Result<()> {
        self.dest.switch(&self.udp, addr)?;
        self.relay.rebind_now();
        if let Some(bind) = self.relay.bind_due(Instant::now()) {
            let _ = self.udp.send(addr, &bind, None);
        }
        Ok(())
    }

    /// Waits until the hub acknowledged our bind, so that the first packets are not
    /// dropped as coming from an unknown endpoint. False on timeout.
    pub async fn wait_bound(&self, timeout: std::time::Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.relay.is_bound(Instant::now()) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }

    /// What `mcvpn status` shows.
    pub fn status(&self) -> NodeStatus {
        let c = self.conn.lock();
        let peers = self
            .peers
            .all()
            .iter()
            .map(|p| {
                let info = p.info.lock().clone();
                let (handshake, tx, rx, _, _) = p.tunn.lock().stats();
                PeerStatus {
                    name: info.name,
                    node_id: info.node_id,
                    role: info.role,
                    overlay_ip: info.overlay_ip,
                    online: info.online,
                    last_handshake_s: handshake.map(|d| d.as_secs()),
                    tx_bytes: tx as u64,
                    rx_bytes: rx as u64,
                }
            })
            .collect();
        let login = c.login.as_ref();
        let control = &self.settings.control;
        NodeStatus {
            role: control.role,
            pid: std::process::id(),
            hub: control.hub.to_string(),
            current_hub: self.current_hub_addr().to_string(),
            hub_addr: self.hub_addr().to_string(),
            account: login.map(|l| l.account.clone()).or_else(|| control.account.clone()),
            contract: login.map(|l| l.contract.clone()),
            interface: self.settings.data.iface.clone(),
            overlay_ip: login.map(|l| l.overlay_ip),
            node_id: login.map(|l| l.node_id),
            connected: c.connected,
            connected_for_s: c.since.map(|s| s.elapsed().as_secs()),
            last_error: c.last_error.clone(),
            relay_bound: self.relay.is_bound(Instant::now()),
            transport: transport::label(self.transport.on_link(), control.proxy.as_ref()),
            link: self.transport.data_link_stats().map(|s| s.snapshot()),
            offloads: self.offloads,
            udp_gso: self.udp.gso(),
            tuning: self.settings.data.tuning,
            public_key: control.key.public_key32().to_base64(),
            peers,
            dropped: self.counters.snapshot(),
            maintenance: login.and_then(|l| l.maintenance.clone()),
        }
    }
}

/// What `mcvpn status` shows of a running client or target, and `--json` prints (the
/// keys are what scripts read: keep them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub role: Role,
    pub pid: u32,
    /// The server URL.
    pub hub: String,
    /// The hub of the URL the node is on now (`host:port`).
    #[serde(default)]
    pub current_hub: String,
    /// What it resolved to.
    pub hub_addr: String,
    pub account: Option<String>,
    pub contract: Option<String>,
    pub interface: String,
    pub overlay_ip: Option<Ipv4Addr>,
    pub node_id: Option<NodeId>,
    pub connected: bool,
    pub connected_for_s: Option<u64>,
    pub last_error: Option<String>,
    pub relay_bound: bool,
    /// The datagrams' path: "udp", "https" or "https via proxy HOST:PORT".
    #[serde(default)]
    pub transport: String,
    /// The HTTPS link's counters while the datagrams go over it.
    #[serde(default)]
    pub link: Option<serde_json::Value>,
    /// The offloads the knobs allow.
    pub offloads: Offloads,
    /// Whether UDP GSO is in use (the kernel may have refused it).
    pub udp_gso: bool,
    /// The data-path knobs this process runs with.
    pub tuning: DataPathTuning,
    pub public_key: String,
    pub peers: Vec<PeerStatus>,
    /// Packets that went nowhere, by reason.
    pub dropped: CountersSnapshot,
    /// Planned maintenance the hub told of at login (in progress or within a week).
    #[serde(default)]
    pub maintenance: Option<crate::proto::control::MaintenanceBanner>,
}

/// One peer in [`NodeStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    pub node_id: NodeId,
    pub role: Role,
    pub overlay_ip: Ipv4Addr,
    pub online: bool,
    /// Seconds since the last WireGuard handshake; None before the first.
    pub last_handshake_s: Option<u64>,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

fn change_name(c: &Change) -> &'static str {
    match c {
        Change::Added(_) => "added",
        Change::Reset(_) => "reset",
        Change::Updated(_) => "updated",
        Change::Removed(_) => "removed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `status --json` keeps the keys and value types that netns-tests/lib.sh,
    /// bench/lib/mcvpn.sh and people's scripts read (the JSON before the typed status),
    /// plus `tuning`.
    #[test]
    fn status_json_keeps_its_keys_and_types() {
        let status = NodeStatus {
            role: Role::Target,
            pid: 42,
            hub: "mcvpn://h:1/?key=k".into(),
            current_hub: "h:1".into(),
            hub_addr: "192.0.2.1:1".into(),
            account: Some("alice".into()),
            contract: None,
            interface: "mcvpn0".into(),
            overlay_ip: Some(Ipv4Addr::new(100, 64, 0, 1)),
            node_id: Some(3),
            connected: true,
            connected_for_s: Some(5),
            last_error: None,
            relay_bound: true,
            transport: "https via proxy proxy.example:3128".into(),
            link: None,
            offloads: DataPathTuning::default().offloads(),
            udp_gso: false,
            tuning: DataPathTuning::default(),
            public_key: "pk".into(),
            peers: vec![PeerStatus {
                name: "laptop".into(),
                node_id: 4,
                role: Role::Client,
                overlay_ip: Ipv4Addr::new(100, 64, 0, 2),
                online: true,
                last_handshake_s: None,
                tx_bytes: 1,
                rx_bytes: 2,
            }],
            dropped: Counters::default().snapshot(),
            maintenance: None,
        };
        let v = serde_json::to_value(&status).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "account",
                "connected",
                "connected_for_s",
                "contract",
                "current_hub",
                "dropped",
                "hub",
                "hub_addr",
                "interface",
                "last_error",
                "link",
                "maintenance",
                "node_id",
                "offloads",
                "overlay_ip",
                "peers",
                "pid",
                "public_key",
                "relay_bound",
                "role",
                "transport",
                "tuning",
                "udp_gso"
            ]
        );
        assert_eq!(v["role"], "target");
        assert_eq!(v["overlay_ip"], "100.64.0.1");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["connected"], true);
        assert_eq!(v["contract"], serde_json::Value::Null);
        assert_eq!(
            v["offloads"],
            serde_json::json!({"tun": true, "udp_gso": true, "udp_gro": true})
        );
        assert_eq!(
            v["tuning"],
            serde_json::json!({"offload": true, "udp_gso": true, "udp_gro": true, "spin_us": 0,
                "tun_offload": true, "packet_threads": 1})
        );
        assert_eq!(
            v["peers"][0],
            serde_json::json!({"name": "laptop", "node_id": 4, "role": "client", "overlay_ip": "100.64.0.2",
                "online": true, "last_handshake_s": null, "tx_bytes": 1, "rx_bytes": 2})
        );
        assert_eq!(v["dropped"]["wg_rejected"], 0);
        assert_eq!(v["transport"], "https via proxy proxy.example:3128");
        let back: NodeStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back.peers[0].overlay_ip, Ipv4Addr::new(100, 64, 0, 2));
    }
}
