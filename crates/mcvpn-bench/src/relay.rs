//! `mcvpn-bench relay`: a load test of the hub's packet relay.
//!
//! N simulated nodes bind to the relay over loopback and exchange `Data` datagrams in
//! authorised pairs (node index `2k` ↔ `2k+1`; node ids start at 1 like device rows).
//! The figures: offered, forwarded and received datagrams per second, the relay
//! thread's CPU per million forwarded datagrams, the hub's memory per bound node and
//! every drop, each with where it happened.
//!
//! # What runs where
//!
//! The hub side is the real relay: `hub::udp::run` (reached as
//! [`mcvpn::relay_harness::run_relay`]) on its own thread named `relay`, with a real
//! UDP socket on 127.0.0.1 (buffers set like `mcvpn hub` sets them) and a
//! [`RelayTable`] into which the N sessions are admitted exactly as the
//! control plane admits them ([`RelayTable::admit`] with a random relay key and
//! session, one write lock per login, the pair peer as the only authorised peer).
//! Every node then binds with a real MAC'd `Bind`, answers the relay's `Challenge` and
//! waits for the `Bound`.
//!
//! We chose the in-process relay over a child `mcvpn hub` with real control-plane
//! logins because 10,000 Noise IK logins with argon2id password checks would take
//! minutes and need 10,000 accounts in a store, while the data path under test (the
//! relay loop and the table) is the same code either way. The price: the generator
//! shares the process, so the hub's CPU is measured per thread
//! (`/proc/self/task/TID/stat` of the `relay` thread and any other thread whose name
//! starts with `relay`), and its memory as the heap growth (glibc `mallinfo2`) and the
//! RSS growth across admitting and binding the N nodes, with the generator's own
//! allocations made before the first reading.
//!
//! # Loopback accounting
//!
//! On loopback the kernel delivers a datagram to the receiving socket in the
//! *sender's* system call: the generator pays for delivering to the hub's socket, and
//! the relay thread's CPU includes delivering its sends to the nodes' sockets.
//!
//! # Generator
//!
//! One socket per node, connected to the hub and wrapped in the product's
//! [`BatchUdp`] (so UDP GRO is on or off as a real node has it). `--senders` threads
//! share the sockets round-robin; each sends `--batch` datagrams in a row from one
//! socket to its pair peer: single datagrams with `udp_batch::sendmmsg`, or with
//! `--gso` UDP GSO super-datagrams of that many segments through [`BatchUdp::send`]
//! (to offer more than one core can send one by one). `--receivers` threads drain the
//! sockets with epoll and [`BatchUdp::try_recv`] (`recvmmsg` through quinn-udp), and
//! check that each datagram names the expected source; they poll (epoll_wait with no
//! timeout, then a 200 µs sleep) rather than block, so that the relay's sends do not
//! pay for waking them, which a hub whose nodes sit on other machines never does. A
//! `--rate` token bucket caps the offered load, to check that nothing is dropped below
//! saturation.
//!
//! # Depends on
//!
//! From the `mcvpn` library, through [`mcvpn::relay_harness`]:
//! `hub::udp::run(UdpSocket, SharedRelayTable, Arc<RelayStats>, UdpTuning)` (called in
//! [`spawn_hub`] only), `RelayTable::{default, admit, bound_nodes}`, the public
//! `RelayStats` counters and `snapshot`, `size_of::<RelayNode>()`; and directly
//! `proto::relay::{BindMsg, write_data_header}`, `udp_batch::{BatchUdp, sendmmsg,
//! UdpTuning}` and `util::set_socket_buffers`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mcvpn::proto::relay::{write_data_header, BindMsg, Kind, NodeId, RelayKey, BIND_LEN, HEADER_LEN};
use mcvpn::relay_harness::{RelayNode, RelayStats, RelayStatsSnapshot, RelayTable, SharedRelayTable};
use mcvpn::udp_batch::{self, BatchUdp, UdpTuning, MAX_GSO_SEGMENTS, RECV_BATCH, RECV_BUF};
use quinn_udp::RecvMeta;
use rand::RngCore;
use serde::Serialize;

/// Largest UDP payload over IPv4.
const MAX_UDP_PAYLOAD: usize = 65507;
/// Datagrams handed to `udp_batch::sendmmsg` at once (it sends at most 64 per call).
const SENDMMSG_CHUNK: usize = 64;
/// Binds in flight at once while the nodes bind.
const BIND_WINDOW: usize = 256;
/// Receive buffer for each node socket (a limit, not an allocation).
const NODE_SOCKET_BUFFER: usize = 1 << 20;

#[derive(Args, Debug, Clone)]
pub struct RelayBenchArgs {
    /// Simulated nodes (an even number: they talk in pairs)
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Seconds of measurement (after the warm-up)
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds of traffic before the measurement starts
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Bytes after the 8-byte relay header (the WireGuard message the hub never reads)
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Offered datagrams per second in total (default: as fast as the generator can)
    #[arg(long)]
    pub rate: Option<f64>,
    /// Messages sent in a row from one node socket before the sender moves to the next
    /// (single datagrams: sendmmsg, 64 per call; with --gso: one sendmsg each)
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Send each message as a UDP GSO super-datagram of this many segments (0: off)
    #[arg(long, default_value_t = 0)]
    pub gso: usize,
    /// Generator threads
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Receiver threads
    #[arg(long, default_value_t = 1)]
    pub receivers: usize,
    /// Do not turn UDP GRO on at the simulated nodes' sockets. Real nodes have it on
    /// (quinn-udp); without it the kernel splits the hub's GSO sends at delivery, and
    /// on loopback that work is charged to the relay thread.
    #[arg(long)]
    pub no_node_gro: bool,
    /// The hub socket's buffer size, as `mcvpn hub --socket-buffer`
    #[arg(long, default_value_t = 8 << 20)]
    pub socket_buffer: usize,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// The relay socket's knobs, as `mcvpn hub` takes them
    #[command(flatten)]
    pub relay_tuning: UdpTuning,
}

pub fn run_cli(args: RelayBenchArgs) -> Result<()> {
    let json = args.json;
    let report = run(&args)?;
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Report

#[derive(Debug, Clone, Serialize)]
pub struct RelayBenchReport {
    pub nodes: usize,
    pub pairs: usize,
    pub payload_bytes: usize,
    pub datagram_bytes: usize,
    /// Length of the measurement window.
    pub seconds: f64,
    pub rate_limit_per_s: Option<f64>,
    pub batch: usize,
    pub gso_segments: usize,
    pub senders: usize,
    pub receivers: usize,
    /// Time for all nodes to bind (Bind sent, Bound verified).
    pub bind_seconds: f64,
    /// In the measurement window: datagrams the generator handed to the kernel.
    pub offered_per_s: f64,
    /// In the measurement window: datagrams the relay sent on (its `forwarded` counter).
    pub forwarded_per_s: f64,
    /// In the measurement window: datagrams the nodes received.
    pub received_per_s: f64,
    /// CPU time of the relay thread(s) over wall time: 1.0 is one core busy.
    pub hub_cpu_utilisation: f64,
    /// CPU seconds of the relay thread(s) per million forwarded datagrams.
    pub hub_cpu_s_per_million: Option<f64>,
    /// Forwarded datagrams per second per core of relay CPU (10^6 / the line above).
    pub forwarded_per_hub_core_s: Option<f64>,
    pub sender_cpu_utilisation: f64,
    pub receiver_cpu_utilisation: f64,
    /// Cores' worth of CPU that other processes used during the window: above ~0.2
    /// the relay and the generator were competing with them.
    pub other_processes_cpu: f64,
    pub memory: MemoryReport,
    /// Whole run (warm-up, window and drain).
    pub totals: Totals,
    /// `totals.lost / totals.offered`.
    pub loss_ratio: f64,
    /// Of `totals.hub_socket_drops`, those in the measurement window (the rest were
    /// in the warm-up or the drain).
    pub hub_socket_drops_in_window: u64,
    pub goals: Goals,
    pub kernel: String,
    pub nproc: usize,
    pub loadavg_1m_at_start: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub rss_before_kib: u64,
    pub rss_admitted_kib: u64,
    pub rss_bound_kib: u64,
    /// RSS growth from before admitting to all nodes bound, per node.
    pub rss_per_node_bytes: f64,
    /// Heap in use (glibc `mallinfo2`: uordblks + hblkhd) growth over the same span,
    /// per node; `None` without glibc.
    pub heap_per_node_bytes: Option<f64>,
    /// Of which admitting (the node entry and its peer set).
    pub heap_admit_per_node_bytes: Option<f64>,
    /// Of which binding (the endpoint index).
    pub heap_bind_per_node_bytes: Option<f64>,
    /// What the table's layout should cost: hashbrown tables at their grown size plus
    /// one peer set per node, with malloc's chunk rounding.
    pub table_estimate_per_node_bytes: f64,
    /// `size_of::<RelayNode>()`, stored inline in the node map.
    pub relay_node_struct_bytes: usize,
    pub bound_nodes: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub offered: u64,
    pub received: u64,
    pub forwarded: u64,
    /// offered − received.
    pub lost: u64,
    /// The hub socket's receive queue overflowed (`/proc/net/udp` drops), in
    /// datagrams: the kernel counts a dropped GSO super-datagram once, so with `--gso K`
    /// and UDP GRO on at the hub socket (it then takes them whole) each drop is K.
    pub hub_socket_drops: u64,
    pub hub_dropped_malformed: u64,
    pub hub_dropped_unauthorised: u64,
    pub hub_dropped_no_route: u64,
    pub hub_send_errors: u64,
    /// The nodes' receive queues overflowed (`/proc/net/udp` drops).
    pub node_socket_drops: u64,
    /// Loopback backlog drops over the whole machine (`/proc/net/softnet_stat`).
    pub backlog_drops_system: u64,
    /// lost minus every drop counted above (0 when the accounting is complete).
    pub unaccounted: i64,
    /// Datagrams received with the wrong length or the wrong source node.
    pub misrouted: u64,
    /// Sends that met a full buffer (EAGAIN/ENOBUFS): the rest of that round was not
    /// offered. With `--gso` udp_batch waits for room first, so this stays 0 unless a
    /// buffer stays full for a second.
    pub send_would_block: u64,
    /// Sends that failed otherwise, and the last error.
    pub send_failures: u64,
    pub last_send_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Goals {
    /// ≥ 1 million forwarded datagrams per second per core of relay CPU.
    pub million_per_core: bool,
    /// ≤ 2 KiB of hub memory per bound node (by the heap, else the RSS, growth).
    pub memory_2kib_per_node: bool,
    /// Nothing lost (meaningful when `--rate` is below saturation).
    pub no_loss: bool,
}

impl fmt::Display for RelayBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = match self.rate_limit_per_s {
            Some(r) => format!("rate {} /s", group(r as u64)),
            None => "rate unlimited".into(),
        };
        let gso = if self.gso_segments > 0 {
            format!(", GSO {} segments", self.gso_segments)
        } else {
            String::new()
        };
        writeln!(
            f,
            "mcvpn relay load test: {} nodes ({} pairs), {}-byte payload ({}-byte datagrams), {:.1} s, {rate}, batch {}{gso}, {} sender(s), {} receiver(s)",
            group(self.nodes as u64),
            group(self.pairs as u64),
            self.payload_bytes,
            self.datagram_bytes,
            self.seconds,
            self.batch,
            self.senders,
            self.receivers
        )?;
        writeln!(
            f,
            "  kernel {}, {} CPUs, load average {}",
            self.kernel,
            self.nproc,
            self.loadavg_1m_at_start.map_or("-".into(), |l| format!("{l:.2}"))
        )?;
        writeln!(f)?;
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<30} {v}");
        row(f, "offered", format!("{:>12} /s", group(self.offered_per_s as u64)))?;
        row(
            f,
            "forwarded (hub counter)",
            format!("{:>12} /s", group(self.forwarded_per_s as u64)),
        )?;
        row(
            f,
            "received (nodes)",
            format!("{:>12} /s", group(self.received_per_s as u64)),
        )?;
        row(
            f,
            "hub relay CPU",
            format!("{:>12.1} % of one core", self.hub_cpu_utilisation * 100.0),
        )?;
        row(
            f,
            "hub CPU per million forwarded",
            match (self.hub_cpu_s_per_million, self.forwarded_per_hub_core_s) {
                (Some(c), Some(p)) => format!(
                    "{c:>12.3} s  = {} /s per core  (goal ≥ 1,000,000: {})",
                    group(p as u64),
                    yes_no(self.goals.million_per_core)
                ),
                _ => format!("{:>12}", "-"),
            },
        )?;
        row(
            f,
            "generator CPU",
            format!(
                "{:>12}   senders {:.0} %, receivers {:.0} % of one core",
                "",
                self.sender_cpu_utilisation * 100.0,
                self.receiver_cpu_utilisation * 100.0
            ),
        )?;
        row(
            f,
            "other processes",
            format!(
                "{:>12.2} cores{}",
                self.other_processes_cpu,
                if self.other_processes_cpu > 0.2 {
                    "  (busy machine: the figures are noisy)"
                } else {
                    ""
                }
            ),
        )?;
        let m = &self.memory;
        row(
            f,
            "hub heap per bound node",
            match (
                m.heap_per_node_bytes,
                m.heap_admit_per_node_bytes,
                m.heap_bind_per_node_bytes,
            ) {
                (Some(h), Some(a), Some(b)) => format!(
                    "{h:>12.0} B  (admit {a:.0}, bind {b:.0}; goal ≤ 2048: {})",
                    yes_no(self.goals.memory_2kib_per_node)
                ),
                _ => format!("{:>12}", "-"),
            },
        )?;
        row(
            f,
            "hub RSS per bound node",
            format!(
                "{:>12.0} B  (RSS {} → {} → {} KiB: before, admitted, bound)",
                m.rss_per_node_bytes, m.rss_before_kib, m.rss_admitted_kib, m.rss_bound_kib
            ),
        )?;
        row(
            f,
            "table layout estimate",
            format!(
                "{:>12.0} B  per node (RelayNode is {} B inline)",
                m.table_estimate_per_node_bytes, m.relay_node_struct_bytes
            ),
        )?;
        row(
            f,
            "binds",
            format!(
                "{:>12}   bound in {:.2} s",
                group(m.bound_nodes as u64),
                self.bind_seconds
            ),
        )?;
        let t = &self.totals;
        writeln!(f)?;
        writeln!(
            f,
            "  whole run: offered {}, forwarded {}, received {}",
            group(t.offered),
            group(t.forwarded),
            group(t.received)
        )?;
        row(
            f,
            "lost",
            format!(
                "{:>12}   ({:.4} %; no loss: {})",
                group(t.lost),
                self.loss_ratio * 100.0,
                yes_no(self.goals.no_loss)
            ),
        )?;
        row(
            f,
            "  hub socket overflow",
            format!(
                "{:>12}   ({} in the measurement window)",
                group(t.hub_socket_drops),
                group(self.hub_socket_drops_in_window)
            ),
        )?;
        row(
            f,
            "  hub relay refusals",
            format!(
                "{:>12}   (unauthorised {}, no route {}, malformed {})",
                group(t.hub_dropped_unauthorised + t.hub_dropped_no_route + t.hub_dropped_malformed),
                t.hub_dropped_unauthorised,
                t.hub_dropped_no_route,
                t.hub_dropped_malformed
            ),
        )?;
        row(f, "  hub send errors", format!("{:>12}", group(t.hub_send_errors)))?;
        row(
            f,
            "  node socket overflow",
            format!("{:>12}", group(t.node_socket_drops)),
        )?;
        row(
            f,
            "  loopback backlog (system)",
            format!("{:>12}", group(t.backlog_drops_system)),
        )?;
        row(f, "  unaccounted", format!("{:>12}", t.unaccounted))?;
        row(f, "misrouted or corrupt", format!("{:>12}", group(t.misrouted)))?;
        if t.send_would_block > 0 || t.send_failures > 0 {
            row(
                f,
                "sends would block / failed",
                format!(
                    "{:>12} / {}{}",
                    group(t.send_would_block),
                    t.send_failures,
                    t.last_send_error.as_ref().map_or(String::new(), |e| format!(" ({e})"))
                ),
            )?;
        }
        Ok(())
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "met"
    } else {
        "NOT met"
    }
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------
// The run

/// One simulated node: the generator's copy of what the control plane handed out.
struct SimNode {
    id: NodeId,
    peer: NodeId,
    session: u64,
    key: RelayKey,
}

/// Node id of node index `i` (ids start at 1, like device rows).
fn node_id(i: usize) -> NodeId {
    i as NodeId + 1
}

/// Index of `i`'s pair peer: 2k ↔ 2k+1.
fn pair_index(i: usize) -> usize {
    i ^ 1
}

#[derive(Default)]
struct SenderCounters {
    offered: AtomicU64,
    would_block: AtomicU64,
    failures: AtomicU64,
    /// Written only when a send fails.
    last_error: Mutex<Option<String>>,
}

#[derive(Default)]
struct ReceiverCounters {
    received: AtomicU64,
    misrouted: AtomicU64,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    offered: u64,
    received: u64,
    forwarded: u64,
    hub_ticks: u64,
    sender_ticks: u64,
    receiver_ticks: u64,
    /// Datagrams the hub's socket dropped for want of room, so far.
    hub_socket_drops: u64,
    /// This whole process.
    process_ticks: u64,
    /// Every CPU of the machine, busy (not idle or iowait).
    machine_busy_ticks: u64,
}

/// Runs the load test; see the module documentation.
pub fn run(args: &RelayBenchArgs) -> Result<RelayBenchReport> {
    let datagram_len = validate(args)?;
    let n = args.nodes;
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    raise_nofile(n as u64 + 256)?;
    let hub = Hub::start(args.socket_buffer, args.gso, args.relay_tuning)?;
    let nodes = Nodes::new(n, hub.addr, !args.no_node_gro)?;
    if args.gso > 0 && !nodes.sockets[0].gso() {
        bail!("--gso: this kernel or socket has no UDP GSO (or MCVPN_OFFLOAD/MCVPN_UDP_GSO turned it off)");
    }

    // Memory: everything the generator needs is allocated by now, so what grows from
    // here to "all bound" is the hub's.
    let mut bind_state = vec![(0u64, 0u32); n];
    std::thread::sleep(Duration::from_millis(50));
    let rss0 = read_rss_kib()?;
    let heap0 = heap_in_use();
    // Admission, as `Registry::join` does it: one write lock per login.
    for s in nodes.sims.iter() {
        hub.table
            .write()
            .admit(s.id, s.session, s.key, [s.peer].into_iter().collect());
    }
    let rss1 = read_rss_kib()?;
    let heap1 = heap_in_use();
    let bind_started = Instant::now();
    bind_all(&nodes.sims, &nodes.sockets, &mut bind_state)?;
    let bind_seconds = bind_started.elapsed().as_secs_f64();
    let bound_nodes = hub.table.read().bound_nodes();
    if bound_nodes != n {
        bail!("only {bound_nodes} of {n} nodes are bound after the bind phase");
    }
    std::thread::sleep(Duration::from_millis(50));
    let rss2 = read_rss_kib()?;
    let heap2 = heap_in_use();
    drop(bind_state);
    let per_node = |from: u64, to: u64| to.saturating_sub(from) as f64 * 1024.0 / n as f64;
    let heap_per = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?) as f64 / n as f64);
    let memory = MemoryReport {
        rss_before_kib: rss0,
        rss_admitted_kib: rss1,
        rss_bound_kib: rss2,
        rss_per_node_bytes: per_node(rss0, rss2),
        heap_per_node_bytes: heap_per(heap0, heap2),
        heap_admit_per_node_bytes: heap_per(heap0, heap1),
        heap_bind_per_node_bytes: heap_per(heap1, heap2),
        table_estimate_per_node_bytes: table_estimate_bytes(n) as f64 / n as f64,
        relay_node_struct_bytes: std::mem::size_of::<RelayNode>(),
        bound_nodes,
    };

    // Traffic: warm up, measure the window, stop the senders, let the queues drain.
    for s in nodes.sockets.iter() {
        s.socket.set_nonblocking(true)?;
    }
    let before = Drops::read(&hub)?;
    let traffic = Traffic::start(args, datagram_len, &nodes)?;
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let a = traffic.sample(&hub);
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let b = traffic.sample(&hub);
    let (send, recv) = traffic.finish(&hub)?;
    let totals = account(&send, &recv, &before, &Drops::read(&hub)?, &hub, &nodes);
    if totals.offered == 0 {
        bail!(
            "the generator could not send anything{}",
            totals
                .last_send_error
                .as_ref()
                .map_or(String::new(), |e| format!(": {e}"))
        );
    }

    let wall = (b.at - a.at).as_secs_f64();
    let tick = clock_ticks_per_second() as f64;
    let per_s = |x: u64, y: u64| y.saturating_sub(x) as f64 / wall;
    let cores = |x: u64, y: u64| y.saturating_sub(x) as f64 / tick / wall;
    let hub_cpu_s = b.hub_ticks.saturating_sub(a.hub_ticks) as f64 / tick;
    let forwarded_window = b.forwarded.saturating_sub(a.forwarded);
    let hub_cpu_s_per_million = (forwarded_window > 0).then(|| hub_cpu_s / (forwarded_window as f64 / 1e6));
    let forwarded_per_hub_core_s = hub_cpu_s_per_million.filter(|&c| c > 0.0).map(|c| 1e6 / c);
    let goals = Goals {
        million_per_core: forwarded_per_hub_core_s.is_some_and(|p| p >= 1e6),
        memory_2kib_per_node: memory.heap_per_node_bytes.unwrap_or(memory.rss_per_node_bytes) <= 2048.0,
        no_loss: totals.lost == 0 && totals.misrouted == 0,
    };
    Ok(RelayBenchReport {
        nodes: n,
        pairs: n / 2,
        payload_bytes: args.payload,
        datagram_bytes: datagram_len,
        seconds: wall,
        rate_limit_per_s: args.rate,
        batch: args.batch,
        gso_segments: args.gso,
        senders: args.senders,
        receivers: args.receivers,
        bind_seconds,
        offered_per_s: per_s(a.offered, b.offered),
        forwarded_per_s: per_s(a.forwarded, b.forwarded),
        received_per_s: per_s(a.received, b.received),
        hub_cpu_utilisation: hub_cpu_s / wall,
        hub_cpu_s_per_million,
        forwarded_per_hub_core_s,
        sender_cpu_utilisation: cores(a.sender_ticks, b.sender_ticks),
        receiver_cpu_utilisation: cores(a.receiver_ticks, b.receiver_ticks),
        other_processes_cpu: (cores(a.machine_busy_ticks, b.machine_busy_ticks)
            - cores(a.process_ticks, b.process_ticks))
        .max(0.0),
        memory,
        loss_ratio: totals.lost as f64 / totals.offered as f64,
        hub_socket_drops_in_window: b.hub_socket_drops.saturating_sub(a.hub_socket_drops),
        totals,
        goals,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        nproc: std::thread::available_parallelism().map_or(1, |p| p.get()),
        loadavg_1m_at_start: loadavg,
    })
}

/// Checks the options; returns the datagram length.
fn validate(args: &RelayBenchArgs) -> Result<usize> {
    let n = args.nodes;
    if n < 2 || n % 2 != 0 || n >= u32::MAX as usize {
        bail!("--nodes must be an even number ≥ 2 (nodes talk in pairs), not {n}");
    }
    if args.seconds.is_nan() || args.seconds <= 0.0 || args.warmup.is_nan() || args.warmup < 0.0 {
        bail!("--seconds must be > 0 and --warmup ≥ 0");
    }
    if args.batch == 0 || args.batch > 1024 {
        bail!("--batch must be in 1..=1024");
    }
    if args.senders == 0 || args.receivers == 0 {
        bail!("--senders and --receivers must be ≥ 1");
    }
    if args.gso > MAX_GSO_SEGMENTS {
        bail!("--gso takes at most {MAX_GSO_SEGMENTS} segments");
    }
    let datagram_len = HEADER_LEN + args.payload;
    if datagram_len * args.gso.max(1) > MAX_UDP_PAYLOAD {
        bail!("payload × GSO segments exceeds the largest UDP datagram ({MAX_UDP_PAYLOAD} bytes)");
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be > 0");
    }
    Ok(datagram_len)
}

/// The hub under test: the real relay loop on its thread, its table and counters.
struct Hub {
    addr: SocketAddr,
    /// The hub socket's inode, to find its drops in `/proc/net/udp`.
    inode: u64,
    table: SharedRelayTable,
    stats: Arc<RelayStats>,
    relay_tid: libc::pid_t,
    /// Datagrams per drop the kernel counts at the hub socket (see
    /// `Totals::hub_socket_drops`).
    datagrams_per_drop: u64,
}

impl Hub {
    /// `gso`: the generator's segments per send (0: none).
    fn start(socket_buffer: usize, gso: usize, tuning: UdpTuning) -> Result<Hub> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("cannot bind the hub's UDP socket")?;
        mcvpn::util::set_socket_buffers(&socket, socket_buffer);
        let addr = socket.local_addr()?;
        let inode = socket_inode(socket.as_raw_fd())?;
        let table = RelayTable::shared();
        let stats = Arc::new(RelayStats::default());
        let relay_tid = spawn_hub(socket, table.clone(), stats.clone(), tuning)?;
        Ok(Hub {
            addr,
            inode,
            table,
            stats,
            relay_tid,
            datagrams_per_drop: if gso > 0 && tuning.udp_gro() { gso as u64 } else { 1 },
        })
    }
}

/// The simulated nodes: what the control plane told each, and its socket (index i of
/// both is node `node_id(i)`).
struct Nodes {
    sims: Arc<Vec<SimNode>>,
    sockets: Arc<Vec<BatchUdp>>,
    inodes: HashSet<u64>,
    hub: SocketAddr,
}

impl Nodes {
    /// `gro`: UDP GRO on the node sockets, as real nodes have it.
    fn new(n: usize, hub: SocketAddr, gro: bool) -> Result<Nodes> {
        let mut rng = rand::rngs::OsRng;
        let sims: Vec<SimNode> = (0..n)
            .map(|i| {
                let mut key = [0u8; 32];
                rng.fill_bytes(&mut key);
                SimNode {
                    id: node_id(i),
                    peer: node_id(pair_index(i)),
                    session: rng.next_u64(),
                    key,
                }
            })
            .collect();
        // The offloads a node's socket has: GSO always, GRO unless `--no-node-gro`.
        let tuning = UdpTuning {
            udp_gro: gro,
            ..UdpTuning::default()
        };
        let mut sockets = Vec::with_capacity(n);
        let mut inodes = HashSet::with_capacity(n);
        for _ in 0..n {
            let s = UdpSocket::bind("127.0.0.1:0").context("cannot bind a node socket")?;
            mcvpn::util::set_socket_buffers(&s, NODE_SOCKET_BUFFER);
            s.connect(hub)?;
            inodes.insert(socket_inode(s.as_raw_fd())?);
            sockets.push(BatchUdp::new(s, &tuning).context("cannot set up a node socket")?);
        }
        Ok(Nodes {
            sims: Arc::new(sims),
            sockets: Arc::new(sockets),
            inodes,
            hub,
        })
    }
}

/// The kernel's and the relay's drop counters at one moment.
struct Drops {
    udp: HashMap<u64, u64>,
    backlog: u64,
    relay: RelayStatsSnapshot,
}

impl Drops {
    fn read(hub: &Hub) -> Result<Drops> {
        Ok(Drops {
            udp: read_udp_drops()?,
            backlog: read_softnet_drops().unwrap_or(0),
            relay: hub.stats.snapshot(),
        })
    }
}

/// Adds up the whole run: what was offered, what arrived, and where the rest went.
fn account(
    send: &SenderCounters,
    recv: &ReceiverCounters,
    before: &Drops,
    after: &Drops,
    hub: &Hub,
    nodes: &Nodes,
) -> Totals {
    let socket_drops = |inode: &u64| {
        let get = |d: &Drops| d.udp.get(inode).copied().unwrap_or(0);
        get(after).saturating_sub(get(before))
    };
    let relay = |f: fn(&RelayStatsSnapshot) -> u64| f(&after.relay).saturating_sub(f(&before.relay));
    let offered = send.offered.load(Ordering::Relaxed);
    let received = recv.received.load(Ordering::Relaxed);
    let mut t = Totals {
        offered,
        received,
        forwarded: relay(|s| s.forwarded),
        lost: offered.saturating_sub(received),
        hub_socket_drops: socket_drops(&hub.inode) * hub.datagrams_per_drop,
        hub_dropped_malformed: relay(|s| s.dropped_malformed),
        hub_dropped_unauthorised: relay(|s| s.dropped_unauthorised),
        hub_dropped_no_route: relay(|s| s.dropped_no_route),
        hub_send_errors: relay(|s| s.send_errors),
        node_socket_drops: nodes.inodes.iter().map(socket_drops).sum(),
        backlog_drops_system: after.backlog.saturating_sub(before.backlog),
        unaccounted: 0,
        misrouted: recv.misrouted.load(Ordering::Relaxed),
        send_would_block: send.would_block.load(Ordering::Relaxed),
        send_failures: send.failures.load(Ordering::Relaxed),
        last_send_error: send.last_error.lock().map_or(None, |e| e.clone()),
    };
    let explained = t.hub_socket_drops
        + t.hub_dropped_malformed
        + t.hub_dropped_unauthorised
        + t.hub_dropped_no_route
        + t.hub_send_errors
        + t.node_socket_drops
        + t.backlog_drops_system;
    t.unaccounted = t.lost as i64 - explained as i64;
    t
}

/// The generator's threads while they run.
struct Traffic {
    stop_send: Arc<AtomicBool>,
    stop_recv: Arc<AtomicBool>,
    send_counters: Arc<SenderCounters>,
    recv_counters: Arc<ReceiverCounters>,
    senders: Vec<JoinHandle<()>>,
    receivers: Vec<JoinHandle<Result<()>>>,
    sender_tids: Vec<libc::pid_t>,
    receiver_tids: Vec<libc::pid_t>,
}

impl Traffic {
    /// Starts the receivers, then the senders; each thread takes every k-th node.
    fn start(args: &RelayBenchArgs, datagram_len: usize, nodes: &Nodes) -> Result<Traffic> {
        let n = args.nodes;
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop_recv = Arc::new(AtomicBool::new(false));
        let send_counters = Arc::new(SenderCounters::default());
        let recv_counters = Arc::new(ReceiverCounters::default());
        let (tid_tx, tid_rx) = mpsc::channel();
        let mut receivers = Vec::new();
        for r in 0..args.receivers {
            let job = ReceiverJob {
                sockets: nodes.sockets.clone(),
                sims: nodes.sims.clone(),
                mine: (r..n).step_by(args.receivers).collect(),
                datagram_len,
                gro: !args.no_node_gro,
                stop: stop_recv.clone(),
                counters: recv_counters.clone(),
            };
            let tx = tid_tx.clone();
            receivers.push(spawn_named(format!("bench-recv-{r}"), move || {
                let _ = tx.send(gettid());
                job.run()
            })?);
        }
        let receiver_tids = (0..args.receivers).map(|_| tid_rx.recv()).collect::<Result<_, _>>()?;
        let mut senders = Vec::new();
        for s in 0..args.senders {
            let job = SenderJob {
                sockets: nodes.sockets.clone(),
                hub: nodes.hub,
                sims: nodes.sims.clone(),
                mine: (s..n).step_by(args.senders).collect(),
                datagram_len,
                batch: args.batch,
                gso: args.gso,
                rate: args.rate.map(|r| r / args.senders as f64),
                stop: stop_send.clone(),
                counters: send_counters.clone(),
            };
            let tx = tid_tx.clone();
            senders.push(spawn_named(format!("bench-send-{s}"), move || {
                let _ = tx.send(gettid());
                job.run()
            })?);
        }
        let sender_tids = (0..args.senders).map(|_| tid_rx.recv()).collect::<Result<_, _>>()?;
        Ok(Traffic {
            stop_send,
            stop_recv,
            send_counters,
            recv_counters,
            senders,
            receivers,
            sender_tids,
            receiver_tids,
        })
    }

    fn sample(&self, hub: &Hub) -> Sample {
        Sample {
            at: Instant::now(),
            offered: self.send_counters.offered.load(Ordering::Relaxed),
            received: self.recv_counters.received.load(Ordering::Relaxed),
            forwarded: hub.stats.forwarded.load(Ordering::Relaxed),
            hub_ticks: threads_cpu_ticks(&hub_tids(hub.relay_tid)),
            hub_socket_drops: read_udp_drops().map_or(0, |d| d.get(&hub.inode).copied().unwrap_or(0))
                * hub.datagrams_per_drop,
            sender_ticks: threads_cpu_ticks(&self.sender_tids),
            receiver_ticks: threads_cpu_ticks(&self.receiver_tids),
            process_ticks: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| parse_stat_cpu_ticks(&s))
                .unwrap_or(0),
            machine_busy_ticks: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| parse_proc_stat_busy(&s))
                .unwrap_or(0),
        }
    }

    /// Stops the senders, waits until nothing moves any more (the queues are empty;
    /// at most 3 s), stops the receivers; returns the final counters.
    fn finish(self, hub: &Hub) -> Result<(Arc<SenderCounters>, Arc<ReceiverCounters>)> {
        self.stop_send.store(true, Ordering::Relaxed);
        for h in self.senders {
            h.join().map_err(|_| anyhow!("a sender thread panicked"))?;
        }
        let until = Instant::now() + Duration::from_secs(3);
        let mut last = (u64::MAX, u64::MAX);
        let mut still = 0;
        while Instant::now() < until && still < 3 {
            std::thread::sleep(Duration::from_millis(50));
            let now = (
                self.recv_counters.received.load(Ordering::Relaxed),
                hub.stats.forwarded.load(Ordering::Relaxed),
            );
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
        self.stop_recv.store(true, Ordering::Relaxed);
        for h in self.receivers {
            h.join().map_err(|_| anyhow!("a receiver thread panicked"))??;
        }
        Ok((self.send_counters, self.recv_counters))
    }
}

/// Starts the hub's relay loop on a thread named `relay`, as `hub::run` does, and
/// returns that thread's kernel task id. The one place that knows `udp::run`'s
/// signature.
fn spawn_hub(
    socket: UdpSocket,
    table: SharedRelayTable,
    stats: Arc<RelayStats>,
    tuning: UdpTuning,
) -> Result<libc::pid_t> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new().name("relay".into()).spawn(move || {
        let _ = tx.send(gettid());
        mcvpn::relay_harness::run_relay(socket, table, stats, tuning)
    })?;
    Ok(rx.recv()?)
}

fn spawn_named<T: Send + 'static>(name: String, f: impl FnOnce() -> T + Send + 'static) -> Result<JoinHandle<T>> {
    Ok(std::thread::Builder::new().name(name).spawn(f)?)
}

fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// The relay thread we started and any other thread whose name starts with `relay`
/// (a future relay loop may run several workers).
fn hub_tids(relay_tid: libc::pid_t) -> Vec<libc::pid_t> {
    let mut tids = vec![relay_tid];
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if tid != relay_tid && comm.starts_with("relay") {
                tids.push(tid);
            }
        }
    }
    tids
}

/// Sends every node's Bind, `BIND_WINDOW` at a time, and waits for each verified
/// Bound; a node that gets no answer within a second tries again with a new counter.
fn bind_all(sims: &[SimNode], sockets: &[BatchUdp], state: &mut [(u64, u32)]) -> Result<()> {
    // Blocking with a timeout while binding (BatchUdp made them non-blocking).
    for s in sockets {
        s.socket.set_nonblocking(false)?;
        s.socket.set_read_timeout(Some(Duration::from_millis(1000)))?;
    }
    let send_bind = |sim: &SimNode, sock: &BatchUdp, counter: u64| -> Result<()> {
        let msg = BindMsg {
            kind: Kind::Bind,
            node: sim.id,
            session: sim.session,
            counter,
        }
        .encode(&sim.key);
        sock.socket.send(&msg)?;
        Ok(())
    };
    for start in (0..sims.len()).step_by(BIND_WINDOW) {
        let end = (start + BIND_WINDOW).min(sims.len());
        let window = || sims[start..end].iter().zip(&sockets[start..end]);
        for (sim, sock) in window() {
            send_bind(sim, sock, 1)?;
        }
        for ((sim, sock), (counter, tries)) in window().zip(&mut state[start..end]) {
            *counter = 1;
            let mut buf = [0u8; BIND_LEN + 1];
            loop {
                match sock.socket.recv(&mut buf) {
                    Ok(len) if len == BIND_LEN => {
                        let reply = &buf[..BIND_LEN];
                        let Ok(m) = BindMsg::parse(reply) else { continue };
                        if BindMsg::verify(reply, &sim.key).is_err() || m.node != sim.id || m.session != sim.session {
                            continue;
                        }
                        match m.kind {
                            Kind::Bound if m.counter == *counter => break,
                            // A first bind is a move from nowhere: the relay checks that
                            // this address answers before it binds the node here (issue 11
                            // item 7). Echo the nonce, as a real node does; the Bound follows.
                            Kind::Challenge => {
                                sock.socket.send(
                                    &BindMsg {
                                        kind: Kind::Response,
                                        ..m
                                    }
                                    .encode(&sim.key),
                                )?;
                            }
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        *tries += 1;
                        if *tries >= 5 {
                            bail!("node {} got no Bound from the relay after 5 tries", sim.id);
                        }
                        *counter += 1;
                        send_bind(sim, sock, *counter)?;
                    }
                    Err(e) => return Err(e).context("receiving a Bound"),
                }
            }
        }
    }
    for s in sockets {
        s.socket.set_read_timeout(None)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Generator threads

struct SenderJob {
    sockets: Arc<Vec<BatchUdp>>,
    /// Where every datagram goes (the sockets are connected there too).
    hub: SocketAddr,
    sims: Arc<Vec<SimNode>>,
    /// Indices of the nodes this thread sends from.
    mine: Vec<usize>,
    datagram_len: usize,
    batch: usize,
    /// Segments per GSO send; 0 for plain datagrams.
    gso: usize,
    /// This thread's share of `--rate`.
    rate: Option<f64>,
    stop: Arc<AtomicBool>,
    counters: Arc<SenderCounters>,
}

impl SenderJob {
    fn run(self) {
        let segments = self.gso.max(1);
        // One message body for every message of a round: the kernel copies it.
        let mut body = vec![0x5au8; self.datagram_len * segments];
        let per_call = (self.batch * segments) as u64;
        let burst = (per_call as f64 * 4.0).max(self.rate.unwrap_or(0.0) * 0.002);
        let mut bucket = self.rate.map(|r| TokenBucket::new(r, burst, Instant::now()));
        let mut next = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            if let Some(b) = bucket.as_mut() {
                let now = Instant::now();
                if !b.try_take(now, per_call as f64) {
                    let wait = b.wait_for(per_call as f64);
                    if wait > Duration::from_micros(200) {
                        std::thread::sleep(wait - Duration::from_micros(100));
                    } else {
                        std::hint::spin_loop();
                    }
                    continue;
                }
            }
            let i = self.mine[next];
            next = if next + 1 == self.mine.len() { 0 } else { next + 1 };
            // Every segment names the pair peer; the header is constant for the flow.
            for seg in 0..segments {
                write_data_header(&mut body[seg * self.datagram_len..], self.sims[i].peer);
            }
            let sock = &self.sockets[i];
            let (sent_datagrams, error) = if self.gso > 0 {
                self.send_gso(sock, &body)
            } else {
                self.send_singles(sock, &body)
            };
            self.counters.offered.fetch_add(sent_datagrams, Ordering::Relaxed);
            if let Some(b) = bucket.as_mut() {
                b.put_back((per_call - sent_datagrams) as f64);
            }
            let Some(err) = error else { continue };
            if err.kind() == io::ErrorKind::WouldBlock || err.raw_os_error() == Some(libc::ENOBUFS) {
                self.counters.would_block.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.counters.last_error.lock() {
                *last = Some(err.to_string());
            }
            if self.gso > 0 && !sock.gso() {
                break; // GSO refused by this kernel: nothing more to learn
            }
        }
    }

    /// Sends `batch` copies of `datagram` from `sock` with `udp_batch::sendmmsg`; stops
    /// at the first error. Returns the datagrams sent and that error.
    fn send_singles(&self, sock: &BatchUdp, datagram: &[u8]) -> (u64, Option<io::Error>) {
        let all = [(self.hub, datagram); SENDMMSG_CHUNK];
        let fd = sock.socket.as_raw_fd();
        let mut sent = 0;
        while sent < self.batch {
            let n = (self.batch - sent).min(SENDMMSG_CHUNK);
            match udp_batch::sendmmsg(fd, &all[..n]) {
                Ok(0) => break,
                Ok(k) => sent += k,
                Err(e) => return (sent as u64, Some(e)),
            }
        }
        (sent as u64, None)
    }

    /// Sends `batch` GSO super-datagrams (`body`, cut at `datagram_len`) from `sock`
    /// with [`BatchUdp::send`]; stops at the first error, or when udp_batch has turned
    /// GSO off after a failed send (it then sends datagram by datagram, which is not
    /// what was asked for). Returns the datagrams sent and the error.
    fn send_gso(&self, sock: &BatchUdp, body: &[u8]) -> (u64, Option<io::Error>) {
        let segments = (body.len() / self.datagram_len) as u64;
        let mut sent = 0;
        for _ in 0..self.batch {
            if !sock.gso() {
                let e = io::Error::new(io::ErrorKind::Unsupported, "UDP GSO was turned off after a failed send");
                return (sent, Some(e));
            }
            if let Err(e) = sock.send(self.hub, body, Some(self.datagram_len)) {
                return (sent, Some(e));
            }
            sent += segments;
        }
        (sent, None)
    }
}

struct ReceiverJob {
    sockets: Arc<Vec<BatchUdp>>,
    sims: Arc<Vec<SimNode>>,
    mine: Vec<usize>,
    datagram_len: usize,
    /// UDP GRO on the node sockets: a received buffer may hold several datagrams.
    gro: bool,
    stop: Arc<AtomicBool>,
    counters: Arc<ReceiverCounters>,
}

const MAX_EVENTS: usize = 256;
/// How long a receiver sleeps when no socket is ready. Receivers poll instead of
/// blocking in epoll_wait: a sleeping waiter would be woken by the relay's every send,
/// and that wake-up (paid in the relay thread's send call) is a cost a real hub, whose
/// nodes are on other machines, does not have. Polling also lets the relay's bursts
/// to one node collect in its socket, so that one recvmmsg takes many.
const RECV_IDLE_SLEEP: Duration = Duration::from_micros(200);

impl ReceiverJob {
    fn run(self) -> Result<()> {
        // epoll rather than udp_batch's poll(2) waits: one receiver watches thousands
        // of sockets.
        // SAFETY: epoll_create1 has no memory preconditions; the fd is closed below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error()).context("epoll_create1");
        }
        let ep = EpollFd(ep);
        for &i in &self.mine {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            let fd = self.sockets[i].socket.as_raw_fd();
            // SAFETY: registers a live socket fd with a live epoll fd; `ev` is read only.
            let r = unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
            if r < 0 {
                return Err(io::Error::last_os_error()).context("epoll_ctl");
            }
        }
        // One slot a byte longer than the expected datagram, so a longer one shows;
        // with GRO, room for a whole coalesced batch.
        let stride = if self.gro { RECV_BUF } else { self.datagram_len + 1 };
        let mut bufs = vec![0u8; stride * RECV_BATCH];
        let mut iovs: Vec<IoSliceMut<'_>> = bufs.chunks_mut(stride).map(IoSliceMut::new).collect();
        let mut meta = [RecvMeta::default(); RECV_BATCH];
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        while !self.stop.load(Ordering::Relaxed) {
            // SAFETY: `events` has room for MAX_EVENTS entries.
            let ready = unsafe { libc::epoll_wait(ep.0, events.as_mut_ptr(), MAX_EVENTS as libc::c_int, 0) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err).context("epoll_wait");
            }
            if ready == 0 {
                std::thread::sleep(RECV_IDLE_SLEEP);
                continue;
            }
            for ev in &events[..ready as usize] {
                let i = ev.u64 as usize;
                let sock = &self.sockets[i];
                let expected = self.sims[i].peer.to_be_bytes();
                loop {
                    // An error (none is expected on loopback) ends this socket's turn
                    // like an empty queue: epoll reports it again if data is there.
                    let got = match sock.try_recv(&mut iovs, &mut meta) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let mut bad = 0;
                    let mut datagrams = 0u64;
                    for (iov, m) in iovs.iter().zip(&meta[..got]) {
                        // With GRO, `stride` is the datagram size the kernel reported;
                        // without, the datagram's length.
                        for d in iov[..m.len.min(stride)].chunks(m.stride.max(1)) {
                            datagrams += 1;
                            if d.len() != self.datagram_len || d[4..HEADER_LEN] != expected {
                                bad += 1;
                            }
                        }
                    }
                    self.counters.received.fetch_add(datagrams, Ordering::Relaxed);
                    if bad > 0 {
                        self.counters.misrouted.fetch_add(bad, Ordering::Relaxed);
                    }
                    if got < RECV_BATCH {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

struct EpollFd(RawFd);

impl Drop for EpollFd {
    fn drop(&mut self) {
        // SAFETY: closes the epoll fd this struct owns, once.
        unsafe { libc::close(self.0) };
    }
}

// ---------------------------------------------------------------------------------
// Pure helpers

/// A token bucket on an explicit clock: `rate` tokens per second, at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Starts empty, so that a run does not open with a burst.
    pub fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: 0.0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes `n` tokens if they are all there.
    pub fn try_take(&mut self, now: Instant, n: f64) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Returns tokens taken but not used.
    pub fn put_back(&mut self, n: f64) {
        self.tokens = (self.tokens + n).min(self.burst);
    }

    /// How long until `n` tokens are there (as of the last refill).
    pub fn wait_for(&self, n: f64) -> Duration {
        Duration::from_secs_f64(((n - self.tokens) / self.rate).max(0.0))
    }
}

/// utime + stime, in clock ticks, from a `/proc/…/stat` line. The command name may
/// hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy clock ticks (everything but idle and iowait) of all CPUs, from the `cpu` line
/// of `/proc/stat`.
pub fn parse_proc_stat_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let busy = v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4).unwrap_or(&0);
    Some(busy)
}

/// A `kB` figure from `/proc/…/status`, e.g. `VmRSS`.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Socket inode → drops, from `/proc/net/udp` (or `udp6`).
pub fn parse_proc_net_udp(text: &str) -> HashMap<u64, u64> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 13 {
                return None;
            }
            Some((f[9].parse().ok()?, f[f.len() - 1].parse().ok()?))
        })
        .collect()
}

/// Packets dropped because a CPU's input backlog was full, summed over CPUs, from
/// `/proc/net/softnet_stat` (second column, hexadecimal).
pub fn parse_softnet_drops(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

/// The inode in a `/proc/self/fd/N` link target `socket:[12345]`.
pub fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Buckets a hashbrown table has after `items` inserts (7/8 load, powers of two).
pub fn hashbrown_buckets(items: usize) -> usize {
    match items {
        0 => 0,
        1..=3 => 4,
        4..=7 => 8,
        _ => (items * 8 / 7).next_power_of_two(),
    }
}

/// Bytes malloc hands out for a hashbrown table of `items` elements of `size` bytes:
/// elements, one control byte per bucket plus a 16-byte group, rounded to a chunk.
pub fn hashbrown_alloc_bytes(items: usize, size: usize) -> usize {
    let b = hashbrown_buckets(items);
    if b == 0 {
        return 0;
    }
    malloc_chunk((b * size).next_multiple_of(16) + b + 16)
}

/// glibc's chunk for a request: 8 bytes of header, 16-byte granules, 32 at least.
pub fn malloc_chunk(request: usize) -> usize {
    (request + 8).next_multiple_of(16).max(32)
}

/// What the relay table should take for `n` bound nodes with one peer each: the node
/// map, the endpoint map, and one peer set per node.
pub fn table_estimate_bytes(n: usize) -> usize {
    use std::mem::size_of;
    hashbrown_alloc_bytes(n, size_of::<(NodeId, RelayNode)>())
        + hashbrown_alloc_bytes(n, size_of::<(SocketAddr, NodeId)>())
        + n * hashbrown_alloc_bytes(1, size_of::<NodeId>())
}

// ---------------------------------------------------------------------------------
// /proc and system readings

fn read_rss_kib() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    parse_status_kib(&s, "VmRSS").ok_or_else(|| anyhow!("no VmRSS in /proc/self/status"))
}

/// Bytes in use on the heap, all arenas, mmapped blocks included (glibc only).
fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// The kernel's clock ticks per second (`/proc` CPU times count in them).
pub(crate) fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn threads_cpu_ticks(tids: &[libc::pid_t]) -> u64 {
    tids.iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/self/task/{t}/stat")).ok())
        .filter_map(|s| parse_stat_cpu_ticks(&s))
        .sum()
}

fn socket_inode(fd: RawFd) -> Result<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    parse_socket_link(&link.to_string_lossy()).ok_or_else(|| anyhow!("fd {fd} is not a socket"))
}

fn read_udp_drops() -> Result<HashMap<u64, u64>> {
    Ok(parse_proc_net_udp(&std::fs::read_to_string("/proc/net/udp")?))
}

fn read_softnet_drops() -> Option<u64> {
    Some(parse_softnet_drops(
        &std::fs::read_to_string("/proc/net/softnet_stat").ok()?,
    ))
}

/// Raises the open-file limit to at least `need` (one socket per node).
pub(crate) fn raise_nofile(need: u64) -> Result<()> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit");
    }
    if r.rlim_cur >= need {
        return Ok(());
    }
    let want = libc::rlimit {
        rlim_cur: need,
        rlim_max: r.rlim_max.max(need),
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
        bail!(
            "this test needs {need} open files and the limit is {} (hard {}): raise `ulimit -n` or run as root",
            r.rlim_cur,
            r.rlim_max
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks_counts_from_the_last_parenthesis() {
        let stat = "1234 (relay (x) y) S 1 1234 1234 0 -1 4194624 130 0 0 0 \
                    250 37 0 0 20 0 5 0 100 0 0 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(287));
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn stat_cpu_ticks_reads_this_thread() {
        let s = std::fs::read_to_string(format!("/proc/self/task/{}/stat", gettid())).unwrap();
        assert!(parse_stat_cpu_ticks(&s).is_some());
    }

    #[test]
    fn proc_stat_busy_ticks() {
        let stat = "cpu  100 5 30 1000 7 1 9 2 50 0\ncpu0 50 0 15 500 3 0 4 1 0 0\nintr 1 2\n";
        assert_eq!(parse_proc_stat_busy(stat), Some(100 + 5 + 30 + 1 + 9 + 2));
        assert_eq!(parse_proc_stat_busy("cpu0 1 2 3\n"), None);
        assert!(parse_proc_stat_busy(&std::fs::read_to_string("/proc/stat").unwrap()).is_some());
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tmcvpn\nVmHWM:\t  9000 kB\nVmRSS:\t  8123 kB\nThreads:\t3\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(8123));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(9000));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib("VmRSSX:\t1 kB\n", "VmRSS"), None);
    }

    #[test]
    fn proc_net_udp_inodes_and_drops() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            \x20 123: 0100007F:D2F0 0100007F:B3B2 01 00000000:00000000 00:00000000 00000000     0        0 81234 2 0000000000000000 0\n\
            \x20 456: 0100007F:B3B2 00000000:0000 07 00000000:00000300 00:00000000 00000000     0        0 81235 2 0000000000000000 17\n\
            short line\n";
        let m = parse_proc_net_udp(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&81234], 0);
        assert_eq!(m[&81235], 17);
    }

    #[test]
    fn softnet_drops_sum_the_second_hex_column() {
        let text = "0000a000 00000010 00000000 00000000\n0000b000 0000000f 00000001\n";
        assert_eq!(parse_softnet_drops(text), 31);
        assert_eq!(parse_softnet_drops(""), 0);
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[4026532]"), Some(4026532));
        assert_eq!(parse_socket_link("/dev/null"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let inode = socket_inode(s.as_raw_fd()).unwrap();
        assert!(read_udp_drops().unwrap().contains_key(&inode));
    }

    #[test]
    fn token_bucket_paces_and_caps_bursts() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 100.0, t0);
        assert!(!b.try_take(t0, 1.0), "starts empty");
        assert!(b.try_take(t0 + Duration::from_millis(50), 50.0));
        assert!(!b.try_take(t0 + Duration::from_millis(50), 1.0));
        assert_eq!(b.wait_for(10.0), Duration::from_millis(10));
        // A long pause fills it only up to the burst.
        assert!(!b.try_take(t0 + Duration::from_secs(10), 101.0));
        assert!(b.try_take(t0 + Duration::from_secs(10), 100.0));
        b.put_back(30.0);
        assert!(b.try_take(t0 + Duration::from_secs(10), 30.0));
        // Time going backwards (another thread's Instant) adds nothing.
        assert!(!b.try_take(t0, 1.0));
    }

    #[test]
    fn token_bucket_long_run_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10_000.0, 64.0, t0);
        let mut taken = 0;
        for ms in 1..=1000u64 {
            while b.try_take(t0 + Duration::from_millis(ms), 8.0) {
                taken += 8;
            }
        }
        assert!((9_990..=10_000).contains(&taken), "{taken}");
    }

    #[test]
    fn hashbrown_sizes() {
        assert_eq!(hashbrown_buckets(0), 0);
        assert_eq!(hashbrown_buckets(1), 4);
        assert_eq!(hashbrown_buckets(7), 8);
        assert_eq!(hashbrown_buckets(14), 16);
        assert_eq!(hashbrown_buckets(15), 32);
        assert_eq!(hashbrown_buckets(10_000), 16_384);
        // A one-element HashSet<u32>: 4 × 4 bytes + 4 + 16 control bytes → a 48-byte chunk.
        assert_eq!(hashbrown_alloc_bytes(1, 4), 48);
        assert_eq!(malloc_chunk(1), 32);
        assert!(table_estimate_bytes(10_000) / 10_000 < 2048);
    }

    #[test]
    fn grouping() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
    }

    #[test]
    fn pairs() {
        assert_eq!((pair_index(0), pair_index(1), pair_index(6)), (1, 0, 7));
        assert_eq!((node_id(0), node_id(1)), (1, 2));
    }

    /// The whole path at a small scale: every datagram is forwarded, none is lost.
    #[test]
    fn small_run_forwards_everything_below_saturation() {
        let report = run(&RelayBenchArgs {
            nodes: 20,
            seconds: 0.3,
            warmup: 0.1,
            payload: 64,
            // Slow enough that the hub's queue holds the whole run even if the relay
            // thread gets no CPU for a while on a loaded machine.
            rate: Some(4_000.0),
            batch: 8,
            gso: 0,
            senders: 1,
            receivers: 1,
            no_node_gro: false,
            socket_buffer: 8 << 20,
            json: false,
            out: None,
            relay_tuning: Default::default(),
        })
        .unwrap();
        assert_eq!(report.memory.bound_nodes, 20);
        assert!(report.totals.offered > 500, "{report:?}");
        assert_eq!(report.totals.misrouted, 0);
        assert_eq!(report.totals.hub_dropped_unauthorised, 0);
        assert_eq!(report.totals.lost, 0, "{report}");
        assert_eq!(report.totals.forwarded, report.totals.offered);
        let text = report.to_string();
        assert!(text.contains("20 nodes (10 pairs)"), "{text}");
    }

    /// The other generator paths: GSO super-datagrams through `BatchUdp::send`, and node
    /// sockets without GRO (the relay's batches arrive split, one datagram per slot).
    #[test]
    fn small_gso_run_without_node_gro_forwards_everything() {
        let report = run(&RelayBenchArgs {
            nodes: 20,
            seconds: 0.3,
            warmup: 0.1,
            payload: 64,
            rate: Some(4_000.0),
            batch: 2,
            gso: 4,
            senders: 1,
            receivers: 1,
            no_node_gro: true,
            socket_buffer: 8 << 20,
            json: false,
            out: None,
            relay_tuning: Default::default(),
        })
        .unwrap();
        assert!(report.totals.offered > 500, "{report:?}");
        assert_eq!(report.totals.offered % 4, 0, "whole super-datagrams only");
        assert_eq!(
            (report.totals.send_failures, report.totals.misrouted),
            (0, 0),
            "{report}"
        );
        assert_eq!(report.totals.lost, 0, "{report}");
        assert_eq!(report.totals.forwarded, report.totals.offered);
    }
}
