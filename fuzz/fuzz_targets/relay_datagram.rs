//! Every datagram that reaches the hub's UDP port or a node's socket goes through these
//! parsers first: they must never panic, and what they accept must encode back to itself.
#![no_main]

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mcvpn::hub::mesh_link::MeshLinks;
use mcvpn::keys::KeyPair;
use mcvpn::proto::relay::{mesh_header, mesh_source, BindMsg, Header, Kind, BIND_LEN, HEADER_LEN};

const KEY: [u8; 32] = [7; 32];

/// A hub's mesh links, fed every input as a handshake datagram from a stranger.
fn links() -> &'static Mutex<MeshLinks> {
    static LINKS: OnceLock<Mutex<MeshLinks>> = OnceLock::new();
    LINKS.get_or_init(|| Mutex::new(MeshLinks::new("fuzz", &KeyPair::from_secret_bytes([9; 32]), Instant::now())))
}

fuzz_target!(|data: &[u8]| {
    if let Ok((header, rest)) = Header::parse(data) {
        // A `Mesh` header names both ends; `Header` keeps the destination, the source is
        // read apart (24 bits each, so both always fit back).
        let again = match header.kind {
            Kind::Mesh => mesh_header(mesh_source(data), header.node).expect("24-bit node ids"),
            _ => header.encode(),
        };
        assert_eq!(&again[..], &data[..HEADER_LEN], "a parsed header re-encodes to its bytes");
        assert_eq!(rest.len(), data.len() - HEADER_LEN);
    }
    if let Ok(msg) = BindMsg::parse(data) {
        assert_eq!(data.len(), BIND_LEN);
        let verified = BindMsg::verify(data, &KEY).is_ok();
        let encoded = msg.encode(&KEY);
        // Only the genuine MAC verifies, and a verified bind is exactly what encode makes.
        assert_eq!(verified, encoded[..] == data[..], "MAC check disagrees with encode");
        assert!(BindMsg::verify(&encoded, &KEY).is_ok());
    }
    // Nobody without the hub key makes a link (a fuzzer will not find the key's DH).
    let src = "192.0.2.1:7000".parse().unwrap();
    let mut links = links().lock().unwrap();
    if links.handle(src, data, Instant::now(), 1_800_000_000_000).is_ok() {
        panic!("a fuzzed datagram made a mesh link");
    }
    assert!(!links.is_linked(&src));
});
