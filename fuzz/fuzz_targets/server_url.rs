//! Server URLs come from users, config files and support mails: parsing must never panic,
//! and a parsed URL prints to a string that parses to the same URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcvpn::proto::url::HubUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(url) = HubUrl::parse(s) {
        let printed = url.to_string();
        assert_eq!(HubUrl::parse(&printed).as_ref(), Ok(&url), "{printed}");
    }
});
