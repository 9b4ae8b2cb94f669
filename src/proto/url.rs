//! The server URL users are given: `mcvpn://HOST:PORT/?key=BASE64[&key=BASE64][&https=PORT]`.
//!
//! `key` pins the hub's static Noise key. It may be given twice during a hub key
//! rotation; nodes try the keys in order. `https` is the hub's HTTPS port (the stream
//! transport, `crate::stream`), left out when it is the usual 443.

use std::fmt;

use base64::Engine as _;

use super::control::Key32;

/// Default port of the hub (TCP control and UDP relay share it).
pub const DEFAULT_PORT: u16 = 51820;
/// Default HTTPS port of the hub (the stream transport).
pub const DEFAULT_HTTPS_PORT: u16 = 443;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUrl {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Pinned hub keys, at least one.
    pub keys: Vec<Key32>,
    /// The hub's HTTPS port, same host ([`DEFAULT_HTTPS_PORT`] unless the URL says).
    pub https_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("hub URL must start with mcvpn:// (got {0:?})")]
    Scheme(String),
    #[error("hub URL has no host")]
    NoHost,
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
    pub fn parse(s: &str) -> Result<HubUrl, UrlError> {
        let s = s.trim();
        let rest = s
            .strip_prefix("mcvpn://")
            .ok_or_else(|| UrlError::Scheme(s.chars().take(40).collect()))?;
        let (authority, query) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], rest[i..].trim_start_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority)?;
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        // Found by fuzzing: without this, `[{20::1]]` was a "host" that printed as a
        // different URL than the one parsed.
        if !valid_host(host) {
            return Err(UrlError::Host(host.chars().take(80).collect()));
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
        Ok(HubUrl {
            host: host.to_string(),
            port,
            keys,
            https_port,
        })
    }

    /// `host:port` suitable for `ToSocketAddrs`.
    pub fn authority(&self) -> String {
        self.authority_with(self.port)
    }

    /// `host:https_port`: where the stream transport connects.
    pub fn https_authority(&self) -> String {
        self.authority_with(self.https_port)
    }

    fn authority_with(&self, port: u16) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, port)
        } else {
            format!("{}:{}", self.host, port)
        }
    }
}

impl fmt::Display for HubUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mcvpn://{}/", self.authority())?;
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
        let u = HubUrl {
            host: "hub.example.net".into(),
            port: 443,
            keys: vec![Key32([1; 32]), Key32([0xff; 32])],
            https_port: DEFAULT_HTTPS_PORT,
        };
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
        assert_eq!(u.host, "fd00::1");
        assert_eq!(u.port, DEFAULT_PORT);
        assert_eq!(u.authority(), "[fd00::1]:51820");
        let u = HubUrl::parse(&format!("mcvpn://10.0.0.1:9000?key={}", k.to_base64())).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("10.0.0.1", 9000));
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

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = HubUrl::parse(&s);
            let _ = HubUrl::parse(&format!("mcvpn://{s}"));
        }
    }
}
