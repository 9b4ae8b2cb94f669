//! The server URL users are given:
//! `mcvpn://HOST[:PORT][,HOST[:PORT]…]/?key=BASE64[&key=BASE64][&https=PORT]`.
//!
//! Several hosts name several hubs of one operator: they share one static Noise key and
//! one store, so a node may log in to any of them and keeps its overlay address. A node
//! tries them in order at first and moves round robin to the next when its hub goes away
//! (see `node::session`). `key` pins the hubs' static Noise key. It may be given twice
//! during a key rotation; nodes try the keys in order. `https` is the hubs' HTTPS port
//! (the stream transport, `crate::stream`), left out when it is the usual 443.

use std::fmt;

use base64::Engine as _;

use super::control::Key32;

/// Default port of the hub (TCP control and UDP relay share it).
pub const DEFAULT_PORT: u16 = 51820;
/// Default HTTPS port of the hub (the stream transport).
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// One hub of a server URL: where its control port and UDP relay are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAddr {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl HubAddr {
    /// `host:port` suitable for `ToSocketAddrs` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        authority_with(&self.host, self.port)
    }
}

impl fmt::Display for HubAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUrl {
    /// The hubs, in the URL's order; never empty.
    hubs: Vec<HubAddr>,
    /// Pinned hub keys, at least one.
    pub keys: Vec<Key32>,
    /// The hubs' HTTPS port, on each hub's host ([`DEFAULT_HTTPS_PORT`] unless the URL says).
    pub https_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("hub URL must start with mcvpn:// (got {0:?})")]
    Scheme(String),
    #[error("hub URL has no host")]
    NoHost,
    #[error(
        "hub URL lists an empty hub (number {0}): separate hubs with single commas, as in \
         mcvpn://hub1.example,hub2.example:4433/?key=…"
    )]
    EmptyHub(usize),
    #[error("hub URL port {0:?} is not a number between 1 and 65535")]
    Port(String),
    #[error("hub URL https={0:?} is not a port number between 1 and 65535")]
    HttpsPort(String),
    #[error("hub URL has no ?key=… pinning the hub's public key; ask the operator for the full URL")]
    NoKey,
    #[error("hub URL key {0:?} is not a base64 32-byte key")]
    BadKey(String),
    #[error("hub URL has an unclosed [ in the IPv6 host")]
    Bracket,
    #[error("hub URL host {0:?} is not a host name, an IPv4 address or an IPv6 address in [brackets]")]
    Host(String),
}

impl HubUrl {
    /// A URL naming one hub.
    pub fn single(host: impl Into<String>, port: u16, keys: Vec<Key32>, https_port: u16) -> HubUrl {
        HubUrl {
            hubs: vec![HubAddr {
                host: host.into(),
                port,
            }],
            keys,
            https_port,
        }
    }

    pub fn parse(s: &str) -> Result<HubUrl, UrlError> {
        let s = s.trim();
        let rest = s
            .strip_prefix("mcvpn://")
            .ok_or_else(|| UrlError::Scheme(s.chars().take(40).collect()))?;
        let (authority, query) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].trim_start_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(UrlError::NoHost);
        }
        let entries: Vec<&str> = authority.split(',').collect();
        let mut hubs = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if entry.is_empty() {
                return Err(UrlError::EmptyHub(i + 1));
            }
            let (host, port) = split_host_port(entry)?;
            if host.is_empty() {
                return Err(if entries.len() == 1 {
                    UrlError::NoHost
                } else {
                    UrlError::EmptyHub(i + 1)
                });
            }
            // Found by fuzzing: without this, `[{20::1]]` was a "host" that printed as a
            // different URL than the one parsed.
            if !valid_host(host) {
                return Err(UrlError::Host(host.chars().take(80).collect()));
            }
            hubs.push(HubAddr {
                host: host.to_string(),
                port,
            });
        }
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut keys = Vec::new();
        let mut https_port = DEFAULT_HTTPS_PORT;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name == "key" {
                // A user's mail client may have escaped characters of the key.
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned();
                keys.push(Key32::from_base64(&value).ok_or(UrlError::BadKey(value))?);
            } else if name == "https" {
                https_port = match value.parse::<u16>() {
                    Ok(p) if p > 0 => p,
                    _ => return Err(UrlError::HttpsPort(value.chars().take(20).collect())),
                };
            }
        }
        if keys.is_empty() {
            return Err(UrlError::NoKey);
        }
        Ok(HubUrl { hubs, keys, https_port })
    }

    /// The hubs, in the URL's order (at least one).
    pub fn hubs(&self) -> &[HubAddr] {
        &self.hubs
    }

    /// The first hub: the one a single-hub URL names, and where one-shot tools look.
    pub fn first(&self) -> &HubAddr {
        // `hubs` is never empty: `parse` and `single` are the only ways to make a HubUrl.
        &self.hubs[0]
    }

    /// The first hub's host.
    pub fn host(&self) -> &str {
        &self.first().host
    }

    /// The first hub's port.
    pub fn port(&self) -> u16 {
        self.first().port
    }

    /// The same URL naming hub `index` alone (the keys and HTTPS port kept): what one
    /// connection dials. An index past the end wraps around.
    pub fn only(&self, index: usize) -> HubUrl {
        HubUrl {
            hubs: vec![self.hubs[index % self.hubs.len()].clone()],
            keys: self.keys.clone(),
            https_port: self.https_port,
        }
    }

    /// One single-hub URL per hub (a monitor watches each hub on its own).
    pub fn split(&self) -> Vec<HubUrl> {
        (0..self.hubs.len()).map(|i| self.only(i)).collect()
    }

    /// The order in which to try the hubs: from the first when `failed` is None (the
    /// first connect), else round robin starting after the hub that failed, which comes
    /// last (it may be back by then).
    pub fn try_order(&self, failed: Option<usize>) -> Vec<usize> {
        let n = self.hubs.len();
        let start = failed.map_or(0, |f| (f % n + 1) % n);
        (0..n).map(|k| (start + k) % n).collect()
    }

    /// The first hub's `host:port`, suitable for `ToSocketAddrs`.
    pub fn authority(&self) -> String {
        self.first().authority()
    }

    /// The first hub's `host:https_port`: where the stream transport connects.
    pub fn https_authority(&self) -> String {
        authority_with(self.host(), self.https_port)
    }
}

fn authority_with(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mcvpn://")?;
        for (i, hub) in self.hubs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{hub}")?;
        }
        f.write_str("/")?;
        for (i, k) in self.keys.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.0);
            write!(f, "{sep}key={b64}")?;
        }
        if self.https_port != DEFAULT_HTTPS_PORT {
            write!(f, "&https={}", self.https_port)?;
        }
        Ok(())
    }
}

fn split_host_port(authority: &str) -> Result<(&str, u16), UrlError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or(UrlError::Bracket)?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(UrlError::Port(p.to_string())),
        },
    };
    Ok((host, port))
}

/// An IPv6 literal (given in brackets, kept without them), an IPv4 address, or a DNS
/// name: dot-separated labels of letters, digits, `-` and `_`, at most 63 bytes each and
/// 253 in all (RFC 1123; `_` because internal names carry it).
fn valid_host(host: &str) -> bool {
    if host.contains(':') {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let u = HubUrl::single(
            "hub.example.net",
            443,
            vec![Key32([1; 32]), Key32([0xff; 32])],
            DEFAULT_HTTPS_PORT,
        );
        assert_eq!(HubUrl::parse(&u.to_string()).unwrap(), u);
        assert!(!u.to_string().contains("https="), "the usual port is left out");
        let u = HubUrl { https_port: 8443, ..u };
        assert!(u.to_string().ends_with("&https=8443"));
        assert_eq!(HubUrl::parse(&u.to_string()).unwrap(), u);
        assert_eq!(u.https_authority(), "hub.example.net:8443");
        let k = Key32([2; 32]).to_base64();
        for bad in ["0", "65536", "x", ""] {
            assert!(matches!(
                HubUrl::parse(&format!("mcvpn://h/?key={k}&https={bad}")),
                Err(UrlError::HttpsPort(_))
            ));
        }
    }

    #[test]
    fn ipv6_and_default_port() {
        let k = Key32([2; 32]);
        let u = HubUrl::parse(&format!("mcvpn://[fd00::1]/?key={}", k.to_base64())).unwrap();
        assert_eq!(u.host(), "fd00::1");
        assert_eq!(u.port(), DEFAULT_PORT);
        assert_eq!(u.authority(), "[fd00::1]:51820");
        let u = HubUrl::parse(&format!("mcvpn://10.0.0.1:9000?key={}", k.to_base64())).unwrap();
        assert_eq!((u.host(), u.port()), ("10.0.0.1", 9000));
    }

    #[test]
    fn standard_base64_with_percent_escapes() {
        let k = Key32([0xfb; 32]); // encodes with '+' and '/' in the standard alphabet
        let escaped = k
            .to_base64()
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let u = HubUrl::parse(&format!("mcvpn://h:1/?key={escaped}")).unwrap();
        assert_eq!(u.keys, vec![k]);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(matches!(HubUrl::parse("http://x"), Err(UrlError::Scheme(_))));
        assert_eq!(HubUrl::parse("mcvpn://host:1/"), Err(UrlError::NoKey));
        assert_eq!(HubUrl::parse("mcvpn://:1/?key=x"), Err(UrlError::NoHost));
        assert!(matches!(HubUrl::parse("mcvpn://h:0/?key=x"), Err(UrlError::Port(_))));
        assert!(matches!(
            HubUrl::parse("mcvpn://h:1/?key=abc"),
            Err(UrlError::BadKey(_))
        ));
        assert_eq!(HubUrl::parse("mcvpn://[::1/?key=x"), Err(UrlError::Bracket));
    }

    /// Inputs `scripts/fuzz.sh` (target server_url) found: hosts that are no host, which
    /// printed as a URL that parsed to something else.
    #[test]
    fn a_host_must_be_a_name_or_an_address() {
        let key = "?key=hVyxdfeN8d5Ic1bpL1levf-5g4LpEIoBM7lXlMt7T3I";
        for bad in [
            "[{20:1lXlMt7T3I0db8::1]]:443/",
            "0[2:10db8::1]:44/",
            "a b:1/",
            "ex ample.com/",
        ] {
            assert!(
                matches!(HubUrl::parse(&format!("mcvpn://{bad}{key}")), Err(UrlError::Host(_))),
                "{bad} was accepted"
            );
        }
        for good in [
            "vpn.example.com:1/",
            "192.0.2.1/",
            "[2001:db8::1]:443/",
            "hub_1.internal./",
        ] {
            let url = HubUrl::parse(&format!("mcvpn://{good}{key}")).unwrap();
            assert_eq!(HubUrl::parse(&url.to_string()), Ok(url), "{good}");
        }
    }

    #[test]
    fn several_hubs_with_ports_and_ipv6() {
        let k = Key32([3; 32]).to_base64();
        let u = HubUrl::parse(&format!(
            "mcvpn://hub1.example:4433,[2001:db8::2],192.0.2.3:9000/?key={k}&https=8443"
        ))
        .unwrap();
        let hubs: Vec<(&str, u16)> = u.hubs().iter().map(|h| (h.host.as_str(), h.port)).collect();
        assert_eq!(
            hubs,
            [
                ("hub1.example", 4433),
                ("2001:db8::2", DEFAULT_PORT),
                ("192.0.2.3", 9000)
            ]
        );
        assert_eq!((u.https_port, u.keys.len()), (8443, 1));
        // Every hub with its port, in the URL's order (the key prints in URL-safe base64).
        let printed = u.to_string();
        assert!(
            printed.starts_with("mcvpn://hub1.example:4433,[2001:db8::2]:51820,192.0.2.3:9000/?key=")
                && printed.ends_with("&https=8443"),
            "{printed}"
        );
        assert_eq!(HubUrl::parse(&u.to_string()), Ok(u.clone()));
        // One hub of it, with the keys and the HTTPS port: what one connection dials.
        let second = u.only(1);
        assert_eq!(second.hubs().len(), 1);
        assert_eq!(second.authority(), "[2001:db8::2]:51820");
        assert_eq!(second.https_authority(), "[2001:db8::2]:8443");
        assert_eq!((second.keys.clone(), second.https_port), (u.keys.clone(), 8443));
        assert_eq!(u.only(4), u.only(1), "an index past the end wraps around");
        assert_eq!(u.split(), vec![u.only(0), u.only(1), u.only(2)]);
        // The first hub is what a one-hub tool sees.
        assert_eq!(
            (u.host(), u.port(), u.authority()),
            ("hub1.example", 4433, "hub1.example:4433".into())
        );
    }

    #[test]
    fn empty_and_bad_entries_in_a_hub_list() {
        let k = Key32([4; 32]).to_base64();
        for (list, number) in [("a,,b", 2), (",a", 1), ("a,", 2), ("a,:4433", 2)] {
            let err = HubUrl::parse(&format!("mcvpn://{list}/?key={k}")).unwrap_err();
            assert_eq!(err, UrlError::EmptyHub(number), "{list}");
            assert!(err.to_string().contains("single commas"), "{err}");
        }
        assert!(matches!(
            HubUrl::parse(&format!("mcvpn://a,b:0/?key={k}")),
            Err(UrlError::Port(_))
        ));
        assert!(matches!(
            HubUrl::parse(&format!("mcvpn://a,b c/?key={k}")),
            Err(UrlError::Host(_))
        ));
        assert_eq!(
            HubUrl::parse(&format!("mcvpn://a,[::1/?key={k}")),
            Err(UrlError::Bracket)
        );
        assert_eq!(HubUrl::parse(&format!("mcvpn:///?key={k}")), Err(UrlError::NoHost));
    }

    #[test]
    fn next_hub_is_round_robin_after_the_one_that_failed() {
        let k = Key32([5; 32]).to_base64();
        let three = HubUrl::parse(&format!("mcvpn://a,b,c/?key={k}")).unwrap();
        assert_eq!(three.try_order(None), [0, 1, 2], "the first connect goes in order");
        assert_eq!(three.try_order(Some(0)), [1, 2, 0]);
        assert_eq!(three.try_order(Some(1)), [2, 0, 1]);
        assert_eq!(three.try_order(Some(2)), [0, 1, 2], "after the last comes the first");
        assert_eq!(three.try_order(Some(7)), [2, 0, 1], "an index past the end wraps");
        let one = HubUrl::parse(&format!("mcvpn://a/?key={k}")).unwrap();
        assert_eq!(one.try_order(None), [0]);
        assert_eq!(one.try_order(Some(0)), [0], "one hub: the same one again");
    }

    proptest! {
        /// Any list of valid hosts and ports prints and parses back to itself.
        #[test]
        fn hub_lists_round_trip(hubs in proptest::collection::vec(
            (prop_oneof!["[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5})?", "(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}"],
             1u16..), 1..5)) {
            let authority: Vec<String> = hubs.iter().map(|(h, p)| format!("{h}:{p}")).collect();
            let text = format!("mcvpn://{}/?key={}", authority.join(","), Key32([6; 32]).to_base64());
            let url = HubUrl::parse(&text).unwrap();
            prop_assert_eq!(url.hubs().len(), hubs.len());
            prop_assert_eq!(HubUrl::parse(&url.to_string()), Ok(url));
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = HubUrl::parse(&s);
            let _ = HubUrl::parse(&format!("mcvpn://{s}"));
        }
    }
}
