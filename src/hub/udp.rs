//! The relay's UDP loop: thin I/O around [`super::relay::RelayTable`].
//!
//! Per `recvmmsg` it takes up to 32 buffers, each a UDP GRO batch of up to 64
//! datagrams from one sender. A batch whose datagrams all carry the same relay header
//! (one flow: the normal case) is routed once, its headers rewritten in place, and
//! forwarded as one GSO send. Anything else is handled datagram by datagram; singles
//! that follow each other to one destination with one size (a node's burst that came
//! without GRO) are copied together and leave as one GSO send too, and the rest go out
//! with one `sendmmsg`. The table's read lock is taken once per `recvmmsg`; binds,
//! which change the table, are applied after it is released.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use quinn_udp::RecvMeta;

use super::echo::{EchoBudget, EchoLimits};
use super::relay::{BindAnswer, DropReason, RelayStats, RelayTable, SharedRelayTable};
use crate::proto::relay::{self, Header, Kind, HEADER_LEN};
use crate::udp_batch::{gso_runs, BatchUdp, UdpTuning, MAX_GSO_BYTES, MAX_GSO_SEGMENTS, RECV_BATCH, RECV_BUF};

/// A datagram to handle after the read lock is released: from `src`, in
/// `storage[buf][start..end]`.
#[derive(Debug, Clone, Copy)]
struct PendingBind {
    src: SocketAddr,
    buf: usize,
    start: usize,
    end: usize,
    what: Later,
}

/// What a [`PendingBind`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Later {
    /// A `Bind` or `Response`: changes the table.
    Bind,
    /// An `Echo` to answer within its budget.
    Echo,
    /// A `MeshHello` or `MeshWelcome` from another hub: changes the table's links.
    MeshHandshake,
}

/// Takes a mesh handshake datagram and sends the welcome a hello earns.
fn handle_mesh(sock: &BatchUdp, stats: &RelayStats, table: &SharedRelayTable, src: SocketAddr, datagram: &[u8]) {
    let answer = table
        .write()
        .handle_mesh(src, datagram, std::time::Instant::now(), crate::util::unix_ms());
    match answer {
        Ok(welcome) => {
            stats.mesh_handshakes.fetch_add(1, Ordering::Relaxed);
            if let Some(welcome) = welcome {
                if sock.send(src, &welcome, None).is_err() {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Err(refusal) => {
            stats.mesh_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, %refusal, "mesh handshake refused");
        }
    }
}

/// Answers an unauthenticated `Echo` in place, within the budget (see `hub::echo`).
fn answer_echo(sock: &BatchUdp, stats: &RelayStats, budget: &mut EchoBudget, src: SocketAddr, datagram: &mut [u8]) {
    if !budget.allow(src.ip(), std::time::Instant::now()) {
        stats.echoes_over_budget.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if !relay::echo_reply_in_place(datagram, crate::util::unix_ms()) {
        stats.count_drop(DropReason::Malformed);
        return;
    }
    stats.echoes.fetch_add(1, Ordering::Relaxed);
    if sock.send(src, datagram, None).is_err() {
        stats.send_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// What to send once the received batch has been decided.
enum Forward {
    /// `buf[start..end]` to `dst`, as GSO datagrams of `segment` bytes.
    Batch {
        dst: SocketAddr,
        buf: usize,
        start: usize,
        end: usize,
        segment: usize,
    },
    /// One datagram `buf[start..end]` to `dst`.
    One {
        dst: SocketAddr,
        buf: usize,
        start: usize,
        end: usize,
    },
}

impl Forward {
    /// Where it goes and where it lies: `(dst, buf, start, end)`.
    fn parts(&self) -> (SocketAddr, usize, usize, usize) {
        match *self {
            Forward::Batch {
                dst, buf, start, end, ..
            }
            | Forward::One { dst, buf, start, end } => (dst, buf, start, end),
        }
    }
}

/// Starts [`run`] on a thread named `relay`, as `mcvpn hub` does.
pub fn spawn(
    socket: UdpSocket,
    table: SharedRelayTable,
    stats: Arc<RelayStats>,
    tuning: UdpTuning,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || run(socket, table, stats, tuning))
}

/// Receives, decides, forwards; forever. Runs on its own thread.
pub fn run(socket: UdpSocket, table: SharedRelayTable, stats: Arc<RelayStats>, tuning: UdpTuning) {
    let sock = match BatchUdp::new(socket, &tuning) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the relay socket");
            return;
        }
    };
    tracing::info!(gso = sock.gso(), gro = tuning.udp_gro(), "relay running");
    let mut storage: Vec<Vec<u8>> = (0..RECV_BATCH).map(|_| vec![0u8; RECV_BUF]).collect();
    let mut metas = [RecvMeta::default(); RECV_BATCH];
    let mut sends: Vec<Forward> = Vec::with_capacity(RECV_BATCH * 4);
    let mut binds: Vec<PendingBind> = Vec::new();
    let mut echo_budget = EchoBudget::new(EchoLimits::default(), std::time::Instant::now());
    let mut staging: Vec<u8> = Vec::with_capacity(MAX_GSO_BYTES);
    loop {
        let n = {
            let mut it = storage.iter_mut();
            let mut iovs: [IoSliceMut; RECV_BATCH] =
                std::array::from_fn(|_| IoSliceMut::new(it.next().expect("RECV_BATCH buffers")));
            match sock.recv(&mut iovs, &mut metas) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "relay receive failed");
                    continue;
                }
            }
        };
        sends.clear();
        binds.clear();
        {
            let table = table.read();
            for (i, meta) in metas[..n].iter().enumerate() {
                let buf = &mut storage[i][..meta.len];
                decide(&table, &stats, meta.addr, i, buf, meta.stride, &mut sends, &mut binds);
            }
        }
        for &PendingBind {
            src,
            buf,
            start,
            end,
            what,
        } in &binds
        {
            let datagram = &mut storage[buf][start..end];
            match what {
                Later::Bind => answer_bind(&sock, &stats, &table, src, datagram),
                Later::Echo => answer_echo(&sock, &stats, &mut echo_budget, src, datagram),
                Later::MeshHandshake => handle_mesh(&sock, &stats, &table, src, datagram),
            }
        }
        let mut singles: Vec<(SocketAddr, &[u8])> = Vec::new();
        for step in plan_sends(&sends) {
            // Lone datagrams wait to go out together in one sendmmsg, but never past a
            // GSO send to their destination: a flow's datagrams leave in the order they
            // came in (flows to other destinations may overtake each other).
            let (dst, segment, data, count) = match step {
                Step::Single(i) => {
                    let (dst, buf, start, end) = sends[i].parts();
                    singles.push((dst, &storage[buf][start..end]));
                    continue;
                }
                Step::Batch { index, segment } => {
                    let (dst, buf, start, end) = sends[index].parts();
                    (dst, segment, &storage[buf][start..end], (end - start).div_ceil(segment))
                }
                Step::Coalesced { first, end, segment } => {
                    staging.clear();
                    for s in &sends[first..end] {
                        let (_, buf, a, e) = s.parts();
                        staging.extend_from_slice(&storage[buf][a..e]);
                    }
                    (sends[first].parts().0, segment, &staging[..], end - first)
                }
            };
            if singles.iter().any(|&(d, _)| d == dst) {
                send_singles(&sock, &stats, &mut singles);
            }
            send_gso(&sock, &stats, dst, data, segment, count as u64);
        }
        send_singles(&sock, &stats, &mut singles);
    }
}

/// Answers a `Bind`: a challenge to a new endpoint, `Bound` to one that answered it.
fn answer_bind(sock: &BatchUdp, stats: &RelayStats, table: &SharedRelayTable, src: SocketAddr, datagram: &[u8]) {
    match table.write().handle_bind(src, datagram) {
        Ok(answer) => {
            match answer {
                BindAnswer::Bound { moved, .. } => {
                    stats.binds.fetch_add(1, Ordering::Relaxed);
                    if moved {
                        stats.endpoint_changes.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(endpoint = %src, "relay endpoint bound after its challenge was answered");
                    }
                }
                BindAnswer::Challenge(_) => {
                    stats.challenges.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = sock.send(src, answer.datagram(), None);
        }
        Err(d) => stats.count_drop(d),
    }
}

/// How the forwards of one received batch go out, in their order.
#[derive(Debug, PartialEq)]
enum Step {
    /// `sends[index]`, a GRO batch: one GSO send of `segment`-byte datagrams from its buffer.
    Batch { index: usize, segment: usize },
    /// `sends[first..end]`, single datagrams to one destination: copied together and
    /// sent as one GSO send of `segment`-byte datagrams.
    Coalesced { first: usize, end: usize, segment: usize },
    /// `sends[i]`, a single datagram sent on its own.
    Single(usize),
}

/// Plans the sends for `sends` without reordering them: boringtun drops a datagram
/// that arrives more than 1,024 behind its flow (and TCP takes any reordering as
/// loss). Consecutive single datagrams to one destination are coalesced.
fn plan_sends(sends: &[Forward]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut i = 0;
    while i < sends.len() {
        if let Forward::Batch { segment, .. } = sends[i] {
            steps.push(Step::Batch { index: i, segment });
            i += 1;
            continue;
        }
        let run_end = i + sends[i..]
            .iter()
            .take_while(|s| matches!(s, Forward::One { .. }))
            .count();
        let keyed: Vec<(SocketAddr, usize)> = sends[i..run_end]
            .iter()
            .map(|s| {
                let (dst, _, start, end) = s.parts();
                (dst, end - start)
            })
            .collect();
        for (first, end, segment) in coalesce(&keyed) {
            steps.push(if end - first == 1 {
                Step::Single(i + first)
            } else {
                Step::Coalesced {
                    first: i + first,
                    end: i + end,
                    segment,
                }
            });
        }
        i = run_end;
    }
    steps
}

/// Sends the gathered lone datagrams with sendmmsg and empties the list.
fn send_singles(sock: &BatchUdp, stats: &RelayStats, singles: &mut Vec<(SocketAddr, &[u8])>) {
    if singles.is_empty() {
        return;
    }
    let sent = sock.send_many(singles);
    let bytes: usize = singles[..sent].iter().map(|(_, d)| d.len()).sum();
    stats.forwarded.fetch_add(sent as u64, Ordering::Relaxed);
    stats.forwarded_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    stats
        .send_errors
        .fetch_add((singles.len() - sent) as u64, Ordering::Relaxed);
    singles.clear();
}

/// Groups consecutive single datagrams `(destination, length)` into GSO batches: the
/// same destination, and [`gso_runs`]' rules on sizes. Returns `(first, end, segment)`.
fn coalesce(datagrams: &[(SocketAddr, usize)]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < datagrams.len() {
        let dst = datagrams[i].0;
        let span_end = i + datagrams[i..].iter().take_while(|(d, _)| *d == dst).count();
        let lens: Vec<usize> = datagrams[i..span_end].iter().map(|&(_, l)| l).collect();
        out.extend(
            gso_runs(&lens, MAX_GSO_SEGMENTS, MAX_GSO_BYTES)
                .into_iter()
                .map(|(a, b, seg)| (i + a, i + b, seg)),
        );
        i = span_end;
    }
    out
}

fn send_gso(sock: &BatchUdp, stats: &RelayStats, dst: SocketAddr, data: &[u8], segment: usize, count: u64) {
    match sock.send(dst, data, Some(segment)) {
        Ok(()) => {
            stats.forwarded.fetch_add(count, Ordering::Relaxed);
            stats.forwarded_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            stats.send_errors.fetch_add(count, Ordering::Relaxed);
            tracing::debug!(error = %e, %dst, "relay send failed");
        }
    }
}

/// Decides one received buffer (one datagram, or a GRO batch at `stride`).
#[allow(clippy::too_many_arguments)]
fn decide(
    table: &RelayTable,
    stats: &RelayStats,
    src: SocketAddr,
    index: usize,
    buf: &mut [u8],
    stride: usize,
    sends: &mut Vec<Forward>,
    binds: &mut Vec<PendingBind>,
) {
    let len = buf.len();
    if len == 0 {
        stats.count_drop(DropReason::Malformed); // an empty datagram: nothing to parse
        return;
    }
    let stride = if stride == 0 || stride > len { len } else { stride };
    let segments = len.div_ceil(stride.max(1));
    if segments > 1 && uniform_headers(buf, stride) {
        if let Ok((h, _)) = Header::parse(buf) {
            if matches!(h.kind, Kind::Data | Kind::Mesh) {
                match table.route(src, buf, h, len as u64) {
                    Ok((dst, header)) => {
                        for start in (0..len).step_by(stride) {
                            relay::rewrite_header(&mut buf[start..], &header);
                        }
                        sends.push(Forward::Batch {
                            dst,
                            buf: index,
                            start: 0,
                            end: len,
                            segment: stride,
                        });
                    }
                    Err(d) => {
                        for _ in 0..segments {
                            stats.count_drop(d);
                        }
                    }
                }
                return;
            }
        }
    }
    for start in (0..len).step_by(stride.max(1)) {
        let end = (start + stride).min(len);
        let datagram = &mut buf[start..end];
        match Header::parse(datagram).map(|(h, _)| h.kind) {
            Ok(Kind::Data | Kind::Mesh) => match table.route_data(src, datagram) {
                Ok(dst) => sends.push(Forward::One {
                    dst,
                    buf: index,
                    start,
                    end,
                }),
                Err(d) => stats.count_drop(d),
            },
            Ok(kind @ (Kind::Bind | Kind::Response | Kind::Echo | Kind::MeshHello | Kind::MeshWelcome)) => {
                binds.push(PendingBind {
                    src,
                    buf: index,
                    start,
                    end,
                    what: match kind {
                        Kind::Echo => Later::Echo,
                        Kind::MeshHello | Kind::MeshWelcome => Later::MeshHandshake,
                        _ => Later::Bind,
                    },
                })
            }
            Ok(Kind::Bound | Kind::Challenge | Kind::EchoReply) | Err(_) => stats.count_drop(DropReason::Malformed),
        }
    }
}

/// Whether every datagram of a GRO batch starts with the same relay header.
fn uniform_headers(buf: &[u8], stride: usize) -> bool {
    if buf.len() < HEADER_LEN || stride < HEADER_LEN {
        return false;
    }
    let first = &buf[..HEADER_LEN];
    (stride..buf.len())
        .step_by(stride)
        .all(|s| buf.get(s..s + HEADER_LEN) == Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::relay::{write_data_header, BindMsg};
    use std::collections::HashSet;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn table() -> RelayTable {
        let mut t = RelayTable::default();
        t.admit(1, 10, [1; 32], HashSet::from([2]));
        t.admit(2, 20, [2; 32], HashSet::from([1]));
        for (node, session, key, from) in [
            (1, 10, [1u8; 32], "192.0.2.1:1000"),
            (2, 20, [2u8; 32], "192.0.2.2:2000"),
        ] {
            let b = BindMsg {
                kind: Kind::Bind,
                node,
                session,
                counter: 1,
            }
            .encode(&key);
            // A first bind is challenged; the node answers from the same address.
            let Ok(BindAnswer::Challenge(c)) = t.handle_bind(addr(from), &b) else {
                panic!("a first bind is challenged")
            };
            let answer = BindMsg {
                kind: Kind::Response,
                ..BindMsg::parse(&c).unwrap()
            }
            .encode(&key);
            t.handle_bind(addr(from), &answer).unwrap();
        }
        t
    }

    fn batch(dsts: &[u32], seg: usize, last: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for (i, &d) in dsts.iter().enumerate() {
            let len = if i + 1 == dsts.len() { last } else { seg };
            let mut dg = vec![0xab; len];
            write_data_header(&mut dg, d);
            buf.extend_from_slice(&dg);
        }
        buf
    }

    /// Decides one received buffer from `src` and returns the plan.
    fn run_decide(
        t: &RelayTable,
        stats: &RelayStats,
        src: &str,
        buf: &mut [u8],
        stride: usize,
    ) -> (Vec<Forward>, Vec<PendingBind>) {
        let (mut sends, mut binds) = (Vec::new(), Vec::new());
        decide(t, stats, addr(src), 0, buf, stride, &mut sends, &mut binds);
        (sends, binds)
    }

    #[test]
    fn a_uniform_gro_batch_is_one_gso_send_with_every_header_rewritten() {
        let t = table();
        let stats = RelayStats::default();
        let mut buf = batch(&[2, 2, 2], 100, 60);
        let (sends, _) = run_decide(&t, &stats, "192.0.2.1:1000", &mut buf, 100);
        assert!(matches!(
            sends[..],
            [Forward::Batch {
                segment: 100,
                start: 0,
                end: 260,
                ..
            }]
        ));
        for s in [0, 100, 200] {
            assert_eq!(
                Header::parse(&buf[s..]).unwrap().0.node,
                1,
                "header at {s} names the source"
            );
        }
    }

    #[test]
    fn a_mixed_batch_is_decided_datagram_by_datagram() {
        let t = table();
        let stats = RelayStats::default();
        let mut buf = batch(&[2, 3, 2], 100, 100);
        let (sends, _) = run_decide(&t, &stats, "192.0.2.1:1000", &mut buf, 100);
        assert_eq!(sends.len(), 2);
        assert_eq!(stats.snapshot().dropped_unauthorised, 1);
    }

    #[test]
    fn an_unbound_sender_loses_the_whole_batch_counted() {
        let t = table();
        let stats = RelayStats::default();
        let mut buf = batch(&[2, 2, 2, 2], 100, 100);
        let (sends, _) = run_decide(&t, &stats, "192.0.2.9:9", &mut buf, 100);
        assert!(sends.is_empty());
        assert_eq!(stats.snapshot().dropped_unauthorised, 4);
    }

    #[test]
    fn singles_to_one_destination_coalesce_into_gso_batches() {
        let (a, b) = (addr("192.0.2.1:1"), addr("192.0.2.2:2"));
        let d = [(a, 72), (a, 72), (a, 50), (a, 72), (b, 72), (b, 72), (a, 72)];
        assert_eq!(coalesce(&d), vec![(0, 3, 72), (3, 4, 72), (4, 6, 72), (6, 7, 72)]);
        assert!(coalesce(&[]).is_empty());
    }

    fn one(dst: SocketAddr, len: usize) -> Forward {
        Forward::One {
            dst,
            buf: 0,
            start: 0,
            end: len,
        }
    }

    fn gro(dst: SocketAddr) -> Forward {
        Forward::Batch {
            dst,
            buf: 0,
            start: 0,
            end: 720,
            segment: 72,
        }
    }

    /// The `sends` indexes in the order the plan sends them.
    fn order(steps: &[Step]) -> Vec<usize> {
        steps
            .iter()
            .flat_map(|s| match *s {
                Step::Batch { index: i, .. } | Step::Single(i) => i..i + 1,
                Step::Coalesced { first, end, .. } => first..end,
            })
            .collect()
    }

    #[test]
    fn sends_keep_the_order_datagrams_came_in() {
        // A lone datagram before a GRO batch of the same flow used to go out after it
        // (all batches first, singles last): up to ~2,000 places behind, past boringtun's
        // replay window, so the target dropped it as InvalidCounter.
        let (a, b) = (addr("192.0.2.1:1"), addr("192.0.2.2:2"));
        let sends = [
            one(a, 100),
            gro(a),
            one(a, 72),
            one(a, 72),
            one(b, 72),
            gro(b),
            one(a, 90),
        ];
        let steps = plan_sends(&sends);
        assert_eq!(order(&steps), (0..sends.len()).collect::<Vec<_>>());
        assert_eq!(
            steps,
            vec![
                Step::Single(0),
                Step::Batch { index: 1, segment: 72 },
                Step::Coalesced {
                    first: 2,
                    end: 4,
                    segment: 72
                },
                Step::Single(4),
                Step::Batch { index: 5, segment: 72 },
                Step::Single(6),
            ]
        );
        assert!(plan_sends(&[]).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn no_plan_reorders(kinds in proptest::collection::vec((0u8..3, 0u8..2, 60usize..80), 0..60)) {
            let dsts = [addr("192.0.2.1:1"), addr("192.0.2.2:2")];
            let sends: Vec<Forward> = kinds
                .iter()
                .map(|&(k, d, len)| if k == 0 { gro(dsts[d as usize]) } else { one(dsts[d as usize], len) })
                .collect();
            proptest::prop_assert_eq!(order(&plan_sends(&sends)), (0..sends.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn binds_and_garbage_in_a_batch() {
        let t = table();
        let stats = RelayStats::default();
        let mut buf = vec![0u8; 3];
        let (sends, _) = run_decide(&t, &stats, "192.0.2.1:1000", &mut buf, 0);
        assert!(sends.is_empty());
        assert_eq!(stats.snapshot().dropped_malformed, 1);
        let (sends, _) = run_decide(&t, &stats, "192.0.2.1:1000", &mut [], 0);
        assert!(sends.is_empty());
        assert_eq!(stats.snapshot().dropped_malformed, 2, "an empty datagram counts too");
        let mut b = BindMsg {
            kind: Kind::Bind,
            node: 1,
            session: 10,
            counter: 2,
        }
        .encode(&[1; 32])
        .to_vec();
        let (_, binds) = run_decide(&t, &stats, "192.0.2.1:1000", &mut b, 0);
        assert_eq!(binds.len(), 1);
        // Answers to challenges go the same way; a challenge or Bound sent to the hub
        // is malformed.
        b[1] = Kind::Response as u8;
        let (_, binds) = run_decide(&t, &stats, "192.0.2.1:1000", &mut b, 0);
        assert_eq!(binds.len(), 1);
        b[1] = Kind::Challenge as u8;
        let (_, binds) = run_decide(&t, &stats, "192.0.2.1:1000", &mut b, 0);
        assert!(binds.is_empty());
        assert_eq!(stats.snapshot().dropped_malformed, 3);
    }
}
