//! Which path a node's datagrams take to the hub, and moving them between paths.
//!
//! Two paths: UDP straight to the hub's relay port, or the node's HTTPS link (one
//! WebSocket, see `stream::link`) whose loopback end the data path's socket is then
//! connected to. Moving is cheap because nothing above the socket changes: the
//! WireGuard sessions, keys and overlay addresses stay; the data path's destination is
//! re-pointed and the node binds again at once, so the relay challenges the new
//! endpoint, the node answers through it, and the relay moves the binding there.
//!
//! The decisions are a small sans-I/O state machine ([`Switcher`]) fed with the bind's
//! state and the clock, tested on its own; [`run`] is the task that feeds it, dials the
//! links and probes UDP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::https;
use super::proxy::Proxy;
use super::relay_state::BindView;
use super::settings::TransportMode;
use super::Node;
use crate::proto::relay::{Header, Kind};
use crate::stream::link::{self, BridgeBuffers, ControlEnd, LinkStats, LoopbackEnd};

/// Auto: no `Bound` over UDP within this long after binding starts → HTTPS.
pub const FIRST_BIND_WAIT: Duration = Duration::from_secs(3);
/// Auto: binds unanswered over UDP for this long mid-session → HTTPS.
pub const UDP_SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// On HTTPS: binds unanswered over the link for this long → dial a new link.
pub const LINK_SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// On HTTPS: the first UDP probe, then the backoff up to the last.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(60);
pub const PROBE_INTERVAL_MAX: Duration = Duration::from_secs(300);
/// The first probe when the node started on HTTPS (its control channel could not use
/// TCP): UDP may still pass, and the sooner it is found the better.
pub const PROBE_FIRST: Duration = Duration::from_secs(5);
/// How long a probe waits for the hub's `Challenge`.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);
/// UDP that has held this long after a move back resets the probe backoff.
pub const UDP_STABLE: Duration = Duration::from_secs(300);
/// Dialing the hub's HTTPS port (TLS and the proxy included).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the datagrams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPathWay {
    Udp,
    Link,
}

/// What the [`Switcher`] asks the manager to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Move the datagrams to the HTTPS link (dial one if the control channel has none).
    ToLink(&'static str),
    /// Move the datagrams back to UDP.
    ToUdp(&'static str),
    /// Send a UDP probe now.
    Probe,
    /// The link carries nothing: dial a new one.
    Redial(&'static str),
}

/// The switching decisions, without I/O: fed with the bind's state, the probes'
/// outcomes and the time, it says when to move, probe or redial.
#[derive(Debug)]
pub struct Switcher {
    mode: TransportMode,
    way: DataPathWay,
    /// When the datagrams last moved (or the switcher started).
    since: Instant,
    probe_interval: Duration,
    next_probe: Option<Instant>,
    probe_out: bool,
}

impl Switcher {
    /// `on_link`: the datagrams start on the link (forced HTTPS, or Auto whose control
    /// channel had to take the link).
    pub fn new(mode: TransportMode, on_link: bool, now: Instant) -> Switcher {
        let way = match mode {
            TransportMode::Udp => DataPathWay::Udp,
            TransportMode::Https => DataPathWay::Link,
            TransportMode::Auto if on_link => DataPathWay::Link,
            TransportMode::Auto => DataPathWay::Udp,
        };
        Switcher {
            mode,
            way,
            since: now,
            probe_interval: PROBE_INTERVAL,
            next_probe: (mode == TransportMode::Auto && way == DataPathWay::Link).then(|| now + PROBE_FIRST),
            probe_out: false,
        }
    }

    pub fn way(&self) -> DataPathWay {
        self.way
    }

    /// The current probe interval (grows while UDP stays blocked).
    pub fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// Called often (every few hundred ms) with the bind's state.
    pub fn on_tick(&mut self, now: Instant, bind: BindView) -> Option<Decision> {
        match (self.mode, self.way) {
            (TransportMode::Udp, _) => None,
            (_, DataPathWay::Link) => {
                if bind.active && bind.unanswered_for.is_some_and(|d| d >= LINK_SILENCE_LIMIT) {
                    return Some(Decision::Redial("no Bound over the HTTPS link for 10 s"));
                }
                if self.mode == TransportMode::Auto && !self.probe_out && self.next_probe.is_some_and(|t| now >= t) {
                    self.probe_out = true;
                    self.probe_interval = (self.probe_interval * 2).min(PROBE_INTERVAL_MAX);
                    self.next_probe = Some(now + self.probe_interval);
                    return Some(Decision::Probe);
                }
                None
            }
            (TransportMode::Auto, DataPathWay::Udp) => {
                if !bind.active {
                    return None;
                }
                let waited = bind.unanswered_for.unwrap_or_default();
                if !bind.ever_bound && waited >= FIRST_BIND_WAIT {
                    return Some(self.move_to(DataPathWay::Link, now, "no Bound over UDP within 3 s"));
                }
                if bind.ever_bound && waited >= UDP_SILENCE_LIMIT {
                    return Some(self.move_to(DataPathWay::Link, now, "UDP stopped answering for 10 s"));
                }
                if bind.ever_bound && waited.is_zero() && now.duration_since(self.since) >= UDP_STABLE {
                    self.probe_interval = PROBE_INTERVAL;
                }
                None
            }
            // The constructor never puts forced HTTPS on UDP.
            (TransportMode::Https, DataPathWay::Udp) => None,
        }
    }

    /// A probe ended: `answered` if the hub's `Challenge` came back over UDP.
    pub fn on_probe(&mut self, now: Instant, answered: bool) -> Option<Decision> {
        if !self.probe_out {
            return None;
        }
        self.probe_out = false;
        if answered && self.mode == TransportMode::Auto && self.way == DataPathWay::Link {
            return Some(self.move_to(DataPathWay::Udp, now, "UDP answers again"));
        }
        None
    }

    /// A new control session started (a reconnect): a probe in flight is for the old one.
    pub fn on_new_session(&mut self) {
        self.probe_out = false;
    }

    fn move_to(&mut self, way: DataPathWay, now: Instant, reason: &'static str) -> Decision {
        self.way = way;
        self.since = now;
        match way {
            DataPathWay::Link => {
                self.next_probe = Some(now + self.probe_interval);
                Decision::ToLink(reason)
            }
            DataPathWay::Udp => {
                self.next_probe = None;
                Decision::ToUdp(reason)
            }
        }
    }
}

/// Whether the control channel goes over the HTTPS link at once (without trying TCP).
pub fn control_over_link_first(mode: TransportMode, proxy: Option<&Proxy>) -> bool {
    mode == TransportMode::Https || (mode == TransportMode::Auto && proxy.is_some())
}

/// Whether the control channel may fall back to the link when TCP fails.
pub fn control_may_use_link(mode: TransportMode) -> bool {
    mode != TransportMode::Udp
}

/// One running HTTPS link of this node, as the rest of the node sees it.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    /// The link's loopback socket: the data path's destination while on HTTPS.
    pub loopback: SocketAddr,
    pub stats: Arc<LinkStats>,
    alive: Arc<AtomicBool>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl LinkHandle {
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Ends the link (a data-only link nobody needs any more).
    pub fn close(&self) {
        self.task.abort();
        self.alive.store(false, Ordering::Relaxed);
    }
}

/// Starts pumping `ws`: its datagrams to and from `data_socket` (this node's data path
/// socket; None for a one-shot command, whose link gets a socket that takes them and
/// drops them), its control part to `control`.
pub fn start_link(
    ws: https::HubWebSocket,
    data_socket: Option<SocketAddr>,
    control: ControlEnd,
    socket_buffer: usize,
) -> std::io::Result<LinkHandle> {
    // A one-shot command's link: the hub sends it no datagrams, and a socket that
    // takes and drops any keeps the bridge's peer a real one. Small buffers: no data.
    let (sink, loopback_end) = match data_socket {
        Some(addr) => (None, LoopbackEnd::bind(addr, BridgeBuffers::NODE, socket_buffer)?),
        None => {
            let sink = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
            let end = LoopbackEnd::bind(sink.local_addr()?, BridgeBuffers::HUB, 0)?;
            (Some(sink), end)
        }
    };
    let loopback = loopback_end.local_addr()?;
    let stats = Arc::new(LinkStats::default());
    let alive = Arc::new(AtomicBool::new(true));
    let task = {
        let (stats, alive) = (stats.clone(), alive.clone());
        tokio::spawn(async move {
            let _sink = sink;
            let end = link::run(ws, loopback_end, control, None, &stats).await;
            alive.store(false, Ordering::Relaxed);
            tracing::info!(?end, "the HTTPS link to the hub ended");
        })
    };
    Ok(LinkHandle {
        loopback,
        stats,
        alive,
        task: Arc::new(task),
    })
}

/// What the node shows of its transport, and the links it has.
#[derive(Default)]
pub struct TransportState {
    inner: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The link the current control session runs over, if it does.
    control_link: Option<LinkHandle>,
    /// Bumped at each new control link, so the manager sees a reconnect.
    control_generation: u64,
    /// The link the datagrams go over now (None: UDP).
    data_link: Option<LinkHandle>,
}

impl TransportState {
    /// A control session started; `link` is the link it runs over (None: TCP).
    pub fn set_control_link(&self, link: Option<LinkHandle>) {
        let mut s = self.inner.lock();
        if let Some(old) = s.control_link.take() {
            if !matches!(&link, Some(l) if l.loopback == old.loopback) {
                old.close();
            }
        }
        s.control_link = link;
        s.control_generation += 1;
    }

    pub fn control_link(&self) -> Option<LinkHandle> {
        self.inner.lock().control_link.clone()
    }

    /// The link stats while the datagrams go over a link.
    pub fn data_link_stats(&self) -> Option<Arc<LinkStats>> {
        self.inner.lock().data_link.as_ref().map(|l| l.stats.clone())
    }

    pub fn on_link(&self) -> bool {
        self.inner.lock().data_link.is_some()
    }
}

/// The `transport` of `mcvpn status`: "udp", "https", or "https via proxy HOST:PORT".
pub fn label(on_link: bool, proxy: Option<&Proxy>) -> String {
    match (on_link, proxy) {
        (false, _) => "udp".into(),
        (true, None) => "https".into(),
        (true, Some(p)) => format!("https via proxy {}:{}", p.url.host, p.url.port),
    }
}

/// The manager: runs for the node's life (started after the first login), moves the
/// datagrams between UDP and the link as the [`Switcher`] decides, keeps the link up.
pub async fn run(node: Arc<Node>) {
    let control = &node.settings.control;
    let mode = control.transport;
    let now = Instant::now();
    let start_on_link = control.transport == TransportMode::Https || node.transport.control_link().is_some();
    let mut switcher = Switcher::new(mode, start_on_link && mode != TransportMode::Udp, now);
    let mut generation = u64::MAX;
    let (probe_tx, mut probe_rx) = tokio::sync::mpsc::channel::<bool>(1);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut redial_backoff = Duration::from_secs(1);
    let mut next_dial = Instant::now();
    if switcher.way() == DataPathWay::Link {
        tracing::info!(mode = mode.as_str(), "datagrams start on the HTTPS link");
    }
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(answered) = probe_rx.recv() => {
                tracing::debug!(answered, "UDP probe ended");
                if let Some(d) = switcher.on_probe(Instant::now(), answered) {
                    apply(&node, d, &probe_tx).await;
                }
                continue;
            }
        }
        let now = Instant::now();
        let current_generation = node.transport.inner.lock().control_generation;
        if current_generation != generation {
            generation = current_generation;
            switcher.on_new_session();
        }
        // On the link: keep the datagrams on a live one (the control link if the
        // control channel runs over one, else our own data-only link).
        if switcher.way() == DataPathWay::Link && now >= next_dial {
            match ensure_data_link(&node).await {
                Ok(()) => redial_backoff = Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_s = redial_backoff.as_secs(), "cannot open the HTTPS link");
                    next_dial = Instant::now() + redial_backoff;
                    redial_backoff = (redial_backoff * 2).min(Duration::from_secs(8));
                }
            }
        }
        if let Some(d) = switcher.on_tick(now, node.relay.view(now)) {
            apply(&node, d, &probe_tx).await;
        }
    }
}

async fn apply(node: &Arc<Node>, decision: Decision, probe_tx: &tokio::sync::mpsc::Sender<bool>) {
    match decision {
        Decision::ToLink(reason) => {
            tracing::info!(reason, "moving the datagrams to the HTTPS link");
            if let Err(e) = ensure_data_link(node).await {
                // The manager's next tick dials again.
                tracing::warn!(error = %e, "cannot open the HTTPS link yet");
            }
        }
        Decision::ToUdp(reason) => {
            tracing::info!(reason, hub = %node.hub_addr(), "moving the datagrams back to UDP");
            let old = node.transport.inner.lock().data_link.take();
            if let Err(e) = node.point_data_at(node.hub_addr()) {
                tracing::error!(error = %e, "cannot point the data path at the hub's UDP address");
            }
            // A data-only link has no other use; a control link stays for the control.
            if let Some(old) = old {
                let is_control = node
                    .transport
                    .control_link()
                    .is_some_and(|c| c.loopback == old.loopback);
                if !is_control {
                    old.close();
                }
            }
        }
        Decision::Probe => {
            let (relay, hub, tx) = (node.relay.clone(), node.hub_addr(), probe_tx.clone());
            tokio::spawn(async move {
                let answered = probe_udp(&relay, hub).await;
                let _ = tx.send(answered).await;
            });
        }
        Decision::Redial(reason) => {
            tracing::info!(reason, "dialing a new HTTPS link");
            let old = node.transport.inner.lock().data_link.take();
            if let Some(old) = old {
                // The control link is the control session's to replace (it notices the
                // silence too); a data-only link is ours.
                if !node
                    .transport
                    .control_link()
                    .is_some_and(|c| c.loopback == old.loopback)
                {
                    old.close();
                }
            }
            // Judge the new (or same) link afresh: no redial at every tick meanwhile.
            node.relay.rebind_now();
            if let Err(e) = ensure_data_link(node).await {
                tracing::warn!(error = %e, "cannot open the HTTPS link yet");
            }
        }
    }
}

/// Puts the datagrams on a live link: the control channel's if it has one, else a
/// data-only link (dialed now if there is none). Does nothing if they already are.
async fn ensure_data_link(node: &Arc<Node>) -> anyhow::Result<()> {
    let (current, control) = {
        let s = node.transport.inner.lock();
        (s.data_link.clone(), s.control_link.clone())
    };
    let wanted = match control {
        Some(c) if c.is_alive() => c,
        // The control session's link died: its reconnect brings a new one (or goes
        // over TCP, and then a data-only link is dialed); dialing now would race it.
        Some(_) => return Ok(()),
        None => match current.as_ref().filter(|l| l.is_alive()) {
            Some(l) => l.clone(),
            None => {
                let control = &node.settings.control;
                let ws = https::dial(&node.current_hub_url(), control.proxy.as_ref(), DIAL_TIMEOUT)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let link = start_link(
                    ws,
                    Some(node.data_socket_addr()?),
                    ControlEnd::None,
                    node.settings.data.socket_buffer,
                )?;
                tracing::info!(loopback = %link.loopback, "opened a data-only HTTPS link");
                link
            }
        },
    };
    if current.as_ref().is_some_and(|c| c.loopback == wanted.loopback) {
        return Ok(());
    }
    if let Some(old) = current {
        let is_control = node
            .transport
            .control_link()
            .is_some_and(|c| c.loopback == old.loopback);
        if !is_control {
            old.close();
        }
    }
    node.point_data_at(wanted.loopback)?;
    tracing::info!(loopback = %wanted.loopback, "the datagrams now go over the HTTPS link");
    node.transport.inner.lock().data_link = Some(wanted);
    Ok(())
}

/// Sends a `Bind` for the current session from a fresh UDP socket to the hub's UDP
/// address and waits for the `Challenge` it provokes: that proves UDP passes both ways.
/// The challenge is not answered (that would move the relay's binding to this socket).
async fn probe_udp(relay: &super::relay_state::RelayState, hub: SocketAddr) -> bool {
    let bind: SocketAddr = if hub.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("a literal address");
    let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
        return false;
    };
    if sock.connect(hub).await.is_err() {
        return false;
    }
    let Some(msg) = relay.probe_bind() else { return false };
    if sock.send(&msg).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + PROBE_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let d = &buf[..n];
                if matches!(Header::parse(d), Ok((h, _)) if h.kind == Kind::Challenge) && relay.is_our_challenge(d) {
                    return true;
                }
            }
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ever_bound: bool, unanswered: Option<u64>) -> BindView {
        BindView {
            active: true,
            ever_bound,
            unanswered_for: unanswered.map(Duration::from_millis),
        }
    }

    const IDLE: BindView = BindView {
        active: false,
        ever_bound: false,
        unanswered_for: None,
    };

    #[test]
    fn forced_modes_never_move() {
        let t0 = Instant::now();
        for (mode, way) in [
            (TransportMode::Udp, DataPathWay::Udp),
            (TransportMode::Https, DataPathWay::Link),
        ] {
            for on_link in [false, true] {
                let mut s = Switcher::new(mode, on_link, t0);
                assert_eq!(s.way(), way);
                for secs in [0, 3, 10, 60, 600, 3600] {
                    let now = t0 + Duration::from_secs(secs);
                    for v in [view(false, Some(secs * 1000)), view(true, Some(secs * 1000)), IDLE] {
                        let d = s.on_tick(now, v);
                        assert!(
                            !matches!(d, Some(Decision::ToLink(_) | Decision::ToUdp(_) | Decision::Probe)),
                            "{mode:?} moved: {d:?}"
                        );
                    }
                    assert_eq!(s.on_probe(now, true), None);
                }
                assert_eq!(s.way(), way);
            }
        }
    }

    #[test]
    fn auto_moves_to_the_link_without_a_first_bound_within_3_s() {
        let t0 = Instant::now();
        let mut s = Switcher::new(TransportMode::Auto, false, t0);
        assert_eq!(s.way(), DataPathWay::Udp);
        for ms in (0..3000).step_by(250) {
            assert_eq!(
                s.on_tick(t0 + Duration::from_millis(ms), view(false, Some(ms))),
                None,
                "{ms}"
            );
        }
        assert_eq!(
            s.on_tick(t0 + Duration::from_secs(3), view(false, Some(3000))),
            Some(Decision::ToLink("no Bound over UDP within 3 s"))
        );
        assert_eq!(s.way(), DataPathWay::Link);
    }

    #[test]
    fn auto_stays_on_udp_while_binds_are_answered_and_while_no_session_runs() {
        let t0 = Instant::now();
        let mut s = Switcher::new(TransportMode::Auto, false, t0);
        for secs in 0..1000 {
            let now = t0 + Duration::from_secs(secs);
            // A refresh out for a few seconds now and then, answered.
            let unanswered = (secs % 10 < 3).then_some((secs % 10) * 1000);
            assert_eq!(s.on_tick(now, view(true, unanswered)), None);
            // Between sessions (reconnecting) nothing is judged, however long.
            assert_eq!(s.on_tick(now, IDLE), None);
        }
        assert_eq!(s.way(), DataPathWay::Udp);
    }

    #[test]
    fn auto_moves_to_the_link_when_udp_stops_answering_for_10_s() {
        let t0 = Instant::now();
        let mut s = Switcher::new(TransportMode::Auto, false, t0);
        assert_eq!(s.on_tick(t0, view(true, None)), None);
        assert_eq!(s.on_tick(t0 + Duration::from_secs(9), view(true, Some(9999))), None);
        assert_eq!(
            s.on_tick(t0 + Duration::from_secs(10), view(true, Some(10_000))),
            Some(Decision::ToLink("UDP stopped answering for 10 s"))
        );
    }

    #[test]
    fn on_the_link_probes_with_backoff_and_moves_back_when_udp_answers() {
        let t0 = Instant::now();
        let mut s = Switcher::new(TransportMode::Auto, false, t0);
        s.on_tick(t0 + Duration::from_secs(3), view(false, Some(3000))).unwrap();
        let moved = t0 + Duration::from_secs(3);
        // Probes at +60, then +120 after that, +240, then every 300 s.
        let mut expected = moved;
        let mut probes = Vec::new();
        let mut now = moved;
        while now < moved + Duration::from_secs(2000) {
            now += Duration::from_secs(1);
            if let Some(d) = s.on_tick(now, view(true, None)) {
                assert_eq!(d, Decision::Probe);
                probes.push(now.duration_since(expected).as_secs());
                expected = now;
                // Unanswered: stays on the link.
                assert_eq!(s.on_probe(now + PROBE_WAIT, false), None);
            }
        }
        assert_eq!(&probes[..5], &[60, 120, 240, 300, 300]);
        // While a probe is out, no second one.
        let mut s2 = Switcher::new(TransportMode::Auto, true, t0);
        assert_eq!(s2.on_tick(t0 + PROBE_FIRST, view(true, None)), Some(Decision::Probe));
        assert_eq!(s2.on_tick(t0 + Duration::from_secs(1000), view(true, None)), None);
        // Answered: back to UDP.
        assert_eq!(
            s2.on_probe(t0 + Duration::from_secs(1000), true),
            Some(Decision::ToUdp("UDP answers again"))
        );
        assert_eq!(s2.way(), DataPathWay::Udp);
        // A late answer of a probe already judged moves nothing.
        assert_eq!(s2.on_probe(t0 + Duration::from_secs(1001), true), None);
    }

    #[test]
    fn a_probe_from_an_old_session_is_not_taken() {
        let t0 = Instant::now();
        let mut s = Switcher::new(TransportMode::Auto, true, t0);
        assert_eq!(s.on_tick(t0 + PROBE_FIRST, view(true, None)), Some(Decision::Probe));
        s.on_new_session();
        assert_eq!(s.on_probe(t0 + PROBE_FIRST, true), None);
        assert_eq!(s.way(), DataPathWay::Link);
    }

    #[test]
    fn flapping_udp_keeps_its_backoff_until_it_held_5_minutes() {
        let t0 = Instant::now();
        let mut s = Switcher::new(TransportMode::Auto, true, t0);
        let mut now = t0 + PROBE_FIRST;
        assert_eq!(s.on_tick(now, view(true, None)), Some(Decision::Probe));
        assert_eq!(s.on_probe(now, true), Some(Decision::ToUdp("UDP answers again")));
        assert_eq!(s.probe_interval(), PROBE_INTERVAL * 2);
        // UDP fails again at once (no first Bound): back to the link, longer wait.
        now += Duration::from_secs(3);
        assert!(matches!(
            s.on_tick(now, view(false, Some(3000))),
            Some(Decision::ToLink(_))
        ));
        assert_eq!(s.on_tick(now + PROBE_INTERVAL, view(true, None)), None);
        now += PROBE_INTERVAL * 2;
        assert_eq!(s.on_tick(now, view(true, None)), Some(Decision::Probe));
        assert_eq!(s.on_probe(now, true), Some(Decision::ToUdp("UDP answers again")));
        // Holding 5 minutes resets the backoff.
        assert_eq!(s.on_tick(now + UDP_STABLE, view(true, None)), None);
        assert_eq!(s.probe_interval(), PROBE_INTERVAL);
    }

    #[test]
    fn a_silent_link_is_redialed() {
        let t0 = Instant::now();
        for mode in [TransportMode::Auto, TransportMode::Https] {
            let mut s = Switcher::new(mode, true, t0);
            assert_eq!(s.on_tick(t0 + Duration::from_secs(1), view(true, Some(9_999))), None);
            assert_eq!(
                s.on_tick(t0 + Duration::from_secs(2), view(true, Some(10_000))),
                Some(Decision::Redial("no Bound over the HTTPS link for 10 s"))
            );
            assert_eq!(s.way(), DataPathWay::Link);
        }
    }

    #[test]
    fn control_channel_choice() {
        let proxy = Proxy {
            url: crate::node::proxy::ProxyUrl {
                host: "proxy".into(),
                port: 3128,
                user: None,
            },
            password: None,
        };
        assert!(!control_over_link_first(TransportMode::Auto, None));
        assert!(control_over_link_first(TransportMode::Auto, Some(&proxy)));
        assert!(control_over_link_first(TransportMode::Https, None));
        assert!(!control_over_link_first(TransportMode::Udp, None));
        assert!(!control_over_link_first(TransportMode::Udp, Some(&proxy)));
        assert!(control_may_use_link(TransportMode::Auto));
        assert!(!control_may_use_link(TransportMode::Udp));
        assert_eq!(label(false, Some(&proxy)), "udp");
        assert_eq!(label(true, None), "https");
        assert_eq!(label(true, Some(&proxy)), "https via proxy proxy:3128");
    }
}
