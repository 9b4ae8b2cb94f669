//! The relay wire format: what travels in UDP between a node and the hub.
//!
//! Every datagram starts with the same fixed 8-byte header:
//!
//! ```text
//!  0        1        2        3        4                                  8
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |version |  kind  |    reserved (0)  |            node id (BE u32)       |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! ```
//!
//! * `Data`: node → hub the node id names the *destination*; hub → node it names the
//!   *source*. The payload is one WireGuard message, opaque to the hub. The header is
//!   constant for a whole flow, so a GRO batch for one destination is forwarded as one
//!   GSO send after a single rewrite.
//! * `Bind`: node → hub, binds (or refreshes) the sender's UDP endpoint to its node id.
//!   The node id is the sender's own. Payload: session id, a counter that only grows,
//!   and a 16-byte keyed BLAKE2s MAC with the relay key the hub handed out at login.
//! * `Bound`: hub → node, acknowledges a bind; same layout, MAC'd with the same key.
//!   It echoes the bind's counter: a node takes each acknowledgement once.
//! * `Challenge`: hub → node, sent to the endpoint a `Bind` came from when that endpoint
//!   is not yet the node's: same layout, with a random nonce in place of the counter.
//!   The hub moves a binding only when the node answers it *from that endpoint*, so a
//!   node that spoofs its source cannot take another node's endpoint (as WireGuard
//!   roams only on authenticated packets). The challenge is no larger than the bind
//!   that caused it: the hub is no amplifier.
//! * `Response`: node → hub, the node's answer to a `Challenge`: the same nonce, MAC'd
//!   with the node's relay key.
//!
//! * `Echo`: anyone → hub, unauthenticated (`mcvpn diagnose`, issue 18): at least
//!   [`ECHO_MIN_LEN`] bytes, a nonce after the header, the rest zero padding.
//! * `EchoReply`: hub → the sender of an `Echo`, exactly as long as the request (never
//!   longer: no amplification), the nonce echoed, the hub's clock (Unix ms) after it,
//!   the rest zeros (the request's padding is not reflected). The hub answers within a
//!   small fixed budget (per source and in all, `hub::echo`), so the size of each echo
//!   tests the path MTU both ways and its round trip the loss and latency.
//!
//! * `Mesh`: hub → hub (issue 15), a `Data` datagram on its way from a node on one hub
//!   to a node on another. The header names both ends in the same 8 bytes, so the
//!   forwarding hub rewrites it in place, as it does for local traffic, and a GRO batch
//!   still leaves as one GSO send:
//!
//! ```text
//!  0        1        2                          5                          8
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |version |  8     |   source node (BE u24)   | destination node (BE u24)|
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! ```
//!
//!   Node ids above [`MESH_MAX_NODE`] cannot cross hubs (16.7 million devices).
//!   A hub sends and takes `Mesh` datagrams only over a link it has authenticated:
//! * `MeshHello` / `MeshWelcome`: hub → hub, the two messages of the Noise KK handshake
//!   that makes a link (`hub::mesh_link`), node id 0, both of one fixed length.
//!
//! Kinds 6 and 7 came with the echo (issue 18); a hub of before drops an echo as
//! malformed, which `mcvpn diagnose` reports as "no answer over UDP".
//!
//! Kinds 4 and 5 came with the challenge (issue 11); the header and the version byte
//! did not change. Hub and nodes of this codebase change together: a hub of before
//! drops the new kinds as malformed, and a node of before cannot answer a challenge.
//!
//! Everything here is pure: parsing never panics, whatever the input.

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Mac};
use blake2::Blake2sMac;

/// Wire version carried in the first byte; anything else is dropped as malformed.
pub const VERSION: u8 = 1;
/// Length of the fixed header in front of every relay datagram.
pub const HEADER_LEN: usize = 8;
/// Length of a whole `Bind`, `Bound`, `Challenge` or `Response` datagram: header +
/// session + counter (or nonce) + MAC.
pub const BIND_LEN: usize = HEADER_LEN + 8 + 8 + MAC_LEN;
/// The shortest `Echo`: header + nonce + room for the hub's clock in the reply.
pub const ECHO_MIN_LEN: usize = HEADER_LEN + 8 + 8;
/// The longest `Echo` the hub answers (a 1500-byte IPv4 packet's payload); longer ones
/// are dropped as malformed.
pub const ECHO_MAX_LEN: usize = 1500 - 28;
/// The largest node id a `Mesh` header can carry (24 bits).
pub const MESH_MAX_NODE: NodeId = 0x00FF_FFFF;
/// Length of the MAC on `Bind`/`Bound`.
pub const MAC_LEN: usize = 16;

/// A node's identity on the relay: the hub's device row id.
pub type NodeId = u32;

/// The 32-byte key the hub gives a node at login to authenticate its binds.
pub type RelayKey = [u8; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data = 1,
    Bind = 2,
    Bound = 3,
    Challenge = 4,
    Response = 5,
    Echo = 6,
    EchoReply = 7,
    Mesh = 8,
    MeshHello = 9,
    MeshWelcome = 10,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Data),
            2 => Some(Kind::Bind),
            3 => Some(Kind::Bound),
            4 => Some(Kind::Challenge),
            5 => Some(Kind::Response),
            6 => Some(Kind::Echo),
            7 => Some(Kind::EchoReply),
            8 => Some(Kind::Mesh),
            9 => Some(Kind::MeshHello),
            10 => Some(Kind::MeshWelcome),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub node: NodeId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("datagram shorter than the relay header")]
    Truncated,
    #[error("unsupported relay version {0}")]
    Version(u8),
    #[error("unknown relay message kind {0}")]
    Kind(u8),
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("bind message has the wrong length")]
    BindLength,
    #[error("bind MAC does not verify")]
    BadMac,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let id = self.node.to_be_bytes();
        [VERSION, self.kind as u8, 0, 0, id[0], id[1], id[2], id[3]]
    }

    /// Parses the header at the front of `buf` and returns it with the payload after it.
    pub fn parse(buf: &[u8]) -> Result<(Header, &[u8]), RelayError> {
        if buf.len() < HEADER_LEN {
            return Err(RelayError::Truncated);
        }
        if buf[0] != VERSION {
            return Err(RelayError::Version(buf[0]));
        }
        let kind = Kind::from_byte(buf[1]).ok_or(RelayError::Kind(buf[1]))?;
        if kind == Kind::Mesh {
            // No reserved bytes: the source is in them. The header names the destination
            // like a `Data` header does; [`mesh_source`] reads the source.
            let node = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]);
            return Ok((Header { kind, node }, &buf[HEADER_LEN..]));
        }
        if buf[2] != 0 || buf[3] != 0 {
            return Err(RelayError::Reserved);
        }
        let node = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Ok((Header { kind, node }, &buf[HEADER_LEN..]))
    }
}

/// Overwrites the node id of a datagram whose header was already parsed. This is the
/// hub's only per-packet write: destination in, source out.
pub fn rewrite_node(datagram: &mut [u8], node: NodeId) {
    datagram[4..HEADER_LEN].copy_from_slice(&node.to_be_bytes());
}

/// The `Mesh` header naming `source` and `destination`, or None when either id is too
/// large for it.
pub fn mesh_header(source: NodeId, destination: NodeId) -> Option<[u8; HEADER_LEN]> {
    if source > MESH_MAX_NODE || destination > MESH_MAX_NODE {
        return None;
    }
    let (s, d) = (source.to_be_bytes(), destination.to_be_bytes());
    Some([VERSION, Kind::Mesh as u8, s[1], s[2], s[3], d[1], d[2], d[3]])
}

/// The source node of a datagram whose header parsed as `Mesh`.
pub fn mesh_source(datagram: &[u8]) -> NodeId {
    u32::from_be_bytes([0, datagram[2], datagram[3], datagram[4]])
}

/// Overwrites the whole header of a datagram whose header was already parsed (a
/// `Data` header becoming `Mesh` on the way to another hub, and back).
pub fn rewrite_header(datagram: &mut [u8], header: &[u8; HEADER_LEN]) {
    datagram[..HEADER_LEN].copy_from_slice(header);
}

/// Writes a `Data` header for `node` into the first [`HEADER_LEN`] bytes of `buf`.
pub fn write_data_header(buf: &mut [u8], node: NodeId) {
    buf[..HEADER_LEN].copy_from_slice(&Header { kind: Kind::Data, node }.encode());
}

/// A `Bind` or `Response` (node → hub), or a `Bound` or `Challenge` (hub → node): one
/// layout for the four, told apart by `kind` (which the MAC covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindMsg {
    /// Any kind but `Kind::Data`.
    pub kind: Kind,
    /// The binding node's own id.
    pub node: NodeId,
    /// The control session this bind belongs to; a bind from an older session fails.
    pub session: u64,
    /// `Bind`/`Bound`: strictly increasing per session, so that a captured bind (or
    /// acknowledgement) cannot be replayed. `Challenge`/`Response`: the hub's random
    /// nonce, which only a receiver at the challenged endpoint learns.
    pub counter: u64,
}

impl BindMsg {
    /// Encodes the message and MACs it with `key`.
    pub fn encode(&self, key: &RelayKey) -> [u8; BIND_LEN] {
        let mut out = [0u8; BIND_LEN];
        out[..HEADER_LEN].copy_from_slice(
            &Header {
                kind: self.kind,
                node: self.node,
            }
            .encode(),
        );
        out[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&self.session.to_be_bytes());
        out[HEADER_LEN + 8..HEADER_LEN + 16].copy_from_slice(&self.counter.to_be_bytes());
        let mac = compute_mac(key, &out[..BIND_LEN - MAC_LEN]);
        out[BIND_LEN - MAC_LEN..].copy_from_slice(&mac);
        out
    }

    /// Parses a bind datagram without checking its MAC (the key depends on `node`).
    /// Call [`BindMsg::verify`] with the node's key before trusting anything in it.
    pub fn parse(datagram: &[u8]) -> Result<BindMsg, RelayError> {
        let (header, _) = Header::parse(datagram)?;
        if matches!(header.kind, Kind::Data | Kind::Echo | Kind::EchoReply | Kind::Mesh) {
            return Err(RelayError::Kind(header.kind as u8));
        }
        if datagram.len() != BIND_LEN {
            return Err(RelayError::BindLength);
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&datagram[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let (session, counter) = (word(HEADER_LEN), word(HEADER_LEN + 8));
        Ok(BindMsg {
            kind: header.kind,
            node: header.node,
            session,
            counter,
        })
    }

    /// Checks the MAC of `datagram` (which `parse` accepted) against `key`, in constant time.
    pub fn verify(datagram: &[u8], key: &RelayKey) -> Result<(), RelayError> {
        if datagram.len() != BIND_LEN {
            return Err(RelayError::BindLength);
        }
        let mut mac = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("32-byte key");
        Mac::update(&mut mac, &datagram[..BIND_LEN - MAC_LEN]);
        mac.verify_slice(&datagram[BIND_LEN - MAC_LEN..])
            .map_err(|_| RelayError::BadMac)
    }
}

/// Writes an `Echo` request filling all of `buf` (at least [`ECHO_MIN_LEN`] bytes):
/// the header, `nonce`, zeros. Returns false (and writes nothing) when `buf` is too short.
pub fn write_echo(buf: &mut [u8], nonce: u64) -> bool {
    if buf.len() < ECHO_MIN_LEN {
        return false;
    }
    buf[..HEADER_LEN].copy_from_slice(
        &Header {
            kind: Kind::Echo,
            node: 0,
        }
        .encode(),
    );
    buf[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&nonce.to_be_bytes());
    buf[HEADER_LEN + 8..].fill(0);
    true
}

/// Turns a received `Echo` into its `EchoReply` in place (same length): the nonce
/// stays, the hub's clock `hub_time_ms` follows it, everything else becomes zero.
/// Returns false for anything that is not an echo the hub answers (wrong kind, too
/// short, too long), which the caller drops.
pub fn echo_reply_in_place(datagram: &mut [u8], hub_time_ms: u64) -> bool {
    match Header::parse(datagram) {
        Ok((h, _)) if h.kind == Kind::Echo => {}
        _ => return false,
    }
    if !(ECHO_MIN_LEN..=ECHO_MAX_LEN).contains(&datagram.len()) {
        return false;
    }
    datagram[..HEADER_LEN].copy_from_slice(
        &Header {
            kind: Kind::EchoReply,
            node: 0,
        }
        .encode(),
    );
    datagram[HEADER_LEN + 8..HEADER_LEN + 16].copy_from_slice(&hub_time_ms.to_be_bytes());
    datagram[HEADER_LEN + 16..].fill(0);
    true
}

/// Reads an `EchoReply`: `(nonce, hub clock in Unix ms)`, or None for anything else.
pub fn parse_echo_reply(datagram: &[u8]) -> Option<(u64, u64)> {
    match Header::parse(datagram) {
        Ok((h, _)) if h.kind == Kind::EchoReply && datagram.len() >= ECHO_MIN_LEN => {
            let word = |at: usize| u64::from_be_bytes(datagram[at..at + 8].try_into().expect("8 bytes"));
            Some((word(HEADER_LEN), word(HEADER_LEN + 8)))
        }
        _ => None,
    }
}

fn compute_mac(key: &RelayKey, data: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("32-byte key");
    Mac::update(&mut mac, data);
    mac.finalize_fixed().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            kind: Kind::Data,
            node: 0xdead_beef,
        };
        let bytes = h.encode();
        let (parsed, rest) = Header::parse(&bytes).unwrap();
        assert_eq!(parsed, h);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_mesh_header_names_both_ends_in_eight_bytes() {
        let h = mesh_header(0x00ab_cdef, 0x0012_3456).unwrap();
        let mut datagram = h.to_vec();
        datagram.extend_from_slice(b"wg");
        let (parsed, rest) = Header::parse(&datagram).unwrap();
        assert_eq!((parsed.kind, parsed.node), (Kind::Mesh, 0x0012_3456));
        assert_eq!(mesh_source(&datagram), 0x00ab_cdef);
        assert_eq!(rest, b"wg");
        assert_eq!(mesh_header(MESH_MAX_NODE + 1, 1), None);
        assert_eq!(mesh_header(1, MESH_MAX_NODE + 1), None);
        assert!(mesh_header(MESH_MAX_NODE, MESH_MAX_NODE).is_some());
    }

    #[test]
    fn header_rejects_truncated_and_garbage() {
        assert_eq!(Header::parse(&[]), Err(RelayError::Truncated));
        assert_eq!(Header::parse(&[1, 1, 0, 0, 0, 0, 0]), Err(RelayError::Truncated));
        assert_eq!(Header::parse(&[2, 1, 0, 0, 0, 0, 0, 1]), Err(RelayError::Version(2)));
        assert_eq!(Header::parse(&[1, 11, 0, 0, 0, 0, 0, 1]), Err(RelayError::Kind(11)));
        assert_eq!(Header::parse(&[1, 1, 0, 1, 0, 0, 0, 1]), Err(RelayError::Reserved));
    }

    #[test]
    fn rewrite_changes_only_the_node() {
        let mut d = vec![0u8; 20];
        write_data_header(&mut d, 7);
        d[HEADER_LEN..].fill(0xaa);
        rewrite_node(&mut d, 9);
        let (h, payload) = Header::parse(&d).unwrap();
        assert_eq!(
            h,
            Header {
                kind: Kind::Data,
                node: 9
            }
        );
        assert!(payload.iter().all(|&b| b == 0xaa));
    }

    #[test]
    fn bind_round_trip_and_mac() {
        let key = [7u8; 32];
        let msg = BindMsg {
            kind: Kind::Bind,
            node: 42,
            session: 0x0102_0304_0506_0708,
            counter: 99,
        };
        let wire = msg.encode(&key);
        assert_eq!(BindMsg::parse(&wire).unwrap(), msg);
        assert!(BindMsg::verify(&wire, &key).is_ok());
        assert_eq!(BindMsg::verify(&wire, &[8u8; 32]), Err(RelayError::BadMac));
        let mut tampered = wire;
        tampered[HEADER_LEN + 15] ^= 1; // counter bumped by an attacker
        assert_eq!(BindMsg::verify(&tampered, &key), Err(RelayError::BadMac));
    }

    #[test]
    fn bind_rejects_wrong_length_and_kind() {
        let wire = BindMsg {
            kind: Kind::Bind,
            node: 1,
            session: 1,
            counter: 1,
        }
        .encode(&[0; 32]);
        assert_eq!(BindMsg::parse(&wire[..BIND_LEN - 1]), Err(RelayError::BindLength));
        let mut data = wire;
        data[1] = Kind::Data as u8;
        assert_eq!(BindMsg::parse(&data), Err(RelayError::Kind(1)));
        data[1] = 8;
        assert_eq!(BindMsg::parse(&data), Err(RelayError::Kind(8)));
        for echo in [Kind::Echo, Kind::EchoReply] {
            data[1] = echo as u8;
            assert_eq!(BindMsg::parse(&data), Err(RelayError::Kind(echo as u8)));
        }
    }

    #[test]
    fn the_mac_tells_the_kinds_apart() {
        // A challenge sent back as the response (or a bind as its acknowledgement)
        // must not verify: the kind byte is under the MAC.
        let key = [5u8; 32];
        let challenge = BindMsg {
            kind: Kind::Challenge,
            node: 3,
            session: 4,
            counter: 0x1234,
        }
        .encode(&key);
        let mut reflected = challenge;
        reflected[1] = Kind::Response as u8;
        assert_eq!(BindMsg::parse(&reflected).unwrap().kind, Kind::Response);
        assert_eq!(BindMsg::verify(&reflected, &key), Err(RelayError::BadMac));
    }

    #[test]
    fn an_echo_reply_is_as_long_as_its_request_and_reflects_no_padding() {
        let mut d = vec![0xffu8; 1200];
        assert!(write_echo(&mut d, 0x0102_0304_0506_0708));
        // Whatever a sender puts in the padding, the reply carries zeros there.
        d[40..].fill(0x5a);
        assert!(echo_reply_in_place(&mut d, 1_700_000_000_123));
        assert_eq!(d.len(), 1200);
        assert_eq!(parse_echo_reply(&d), Some((0x0102_0304_0506_0708, 1_700_000_000_123)));
        assert!(d[ECHO_MIN_LEN..].iter().all(|&b| b == 0));
        // A reply is not answered again (no ping-pong between two hubs), nor a short,
        // an oversized or another kind of datagram.
        assert!(!echo_reply_in_place(&mut d, 1));
        let mut short = [0u8; ECHO_MIN_LEN - 1];
        assert!(!write_echo(&mut short, 1));
        short[..HEADER_LEN].copy_from_slice(
            &Header {
                kind: Kind::Echo,
                node: 0,
            }
            .encode(),
        );
        assert!(!echo_reply_in_place(&mut short, 1));
        let mut long = vec![0u8; ECHO_MAX_LEN + 1];
        assert!(write_echo(&mut long, 1));
        assert!(!echo_reply_in_place(&mut long, 1));
        let mut data = vec![0u8; 100];
        write_data_header(&mut data, 1);
        assert!(!echo_reply_in_place(&mut data, 1));
        assert_eq!(parse_echo_reply(&data), None);
    }

    proptest! {
        #[test]
        fn echo_never_panics_nor_grows(mut bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let len = bytes.len();
            let _ = echo_reply_in_place(&mut bytes, 7);
            prop_assert_eq!(bytes.len(), len);
            let _ = parse_echo_reply(&bytes);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Header::parse(&bytes);
            let _ = BindMsg::parse(&bytes);
            let _ = BindMsg::verify(&bytes, &[1; 32]);
        }

        #[test]
        fn data_header_round_trips(node in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = vec![0u8; HEADER_LEN];
            write_data_header(&mut d, node);
            d.extend_from_slice(&payload);
            let (h, rest) = Header::parse(&d).unwrap();
            prop_assert_eq!(h, Header { kind: Kind::Data, node });
            prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn bind_round_trips(kind in 2u8..=5, node in any::<u32>(), session in any::<u64>(), counter in any::<u64>(), key in any::<[u8; 32]>()) {
            let kind = Kind::from_byte(kind).unwrap();
            let msg = BindMsg { kind, node, session, counter };
            let wire = msg.encode(&key);
            prop_assert_eq!(BindMsg::parse(&wire).unwrap(), msg);
            prop_assert!(BindMsg::verify(&wire, &key).is_ok());
        }
    }
}
