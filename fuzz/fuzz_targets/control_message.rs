//! The control channel after the Noise handshake: frame splitting on the TCP stream, then
//! the versioned JSON messages in both directions. No panic, and what decodes re-encodes
//! to something that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcvpn::proto::control::{decode, encode, frame, Event, Request};

fuzz_target!(|data: &[u8]| {
    if let Some((body, used)) = frame::split(data) {
        assert_eq!(used, body.len() + 2);
        assert!(used <= data.len());
    }
    if let Ok(req) = decode::<Request>(data) {
        let again = encode(&req).expect("a decoded request encodes");
        assert_eq!(decode::<Request>(&again).expect("re-decodes"), req);
    }
    if let Ok(event) = decode::<Event>(data) {
        if let Ok(again) = encode(&event) {
            assert_eq!(decode::<Event>(&again).expect("re-decodes"), event);
        }
    }
});
