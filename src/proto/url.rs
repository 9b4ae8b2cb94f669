//! The server URL users are given: `mcvpn://HOST:PORT/?key=BASE64[&key=BASE64]`.
//!
//! `key` pins the hub's static Noise key. It may be given twice during a hub key
//! rotation; nodes try the keys in order.

use std::fmt;

use base64::Engine as _;

use super::control::Key32;

/// Default port of the hub (TCP control and UDP relay share it).
pub const DEFAULT_PORT: u16 = 51820;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUrl {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Pinned hub keys, at least one.
    pub keys: Vec<Key32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("hub URL must start with mcvpn:// (got {0:?})")]
    Scheme(String),
    #[error("hub URL has no host")]
    NoHost,
    #[error("hub URL port {0:?} is not a number between 1 and 65535")]
    Port(String),
    #[error("hub URL has no ?key=… pinning the hub's public key; ask the operator for the full URL")]
    NoKey,
    #[error("hub URL key {0:?} is not a base64 32-byte key")]
    BadKey(String),
    #[error("hub URL has an unclosed [ in the IPv6 host")]
    Bracket,
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
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut keys = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name == "key" {
                let value = percent_decode(value);
                keys.push(Key32::from_base64(&value).ok_or(UrlError::BadKey(value))?);
            }
        }
        if keys.is_empty() {
            return Err(UrlError::NoKey);
        }
        Ok(HubUrl {
            host: host.to_string(),
            port,
            keys,
        })
    }

    /// `host:port` suitable for `ToSocketAddrs`.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
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

/// Decodes the `%XX` escapes a user's mail client may have added to a key.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
        };
        assert_eq!(HubUrl::parse(&u.to_string()).unwrap(), u);
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

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = HubUrl::parse(&s);
            let _ = HubUrl::parse(&format!("mcvpn://{s}"));
        }
    }
}
