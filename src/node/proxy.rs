//! HTTP proxies for the stream transport: the `--proxy` URL, the choice between it and
//! the environment (`HTTPS_PROXY`, `NO_PROXY`), and the `CONNECT` tunnel itself.
//!
//! Only plain `http://` proxies with Basic authentication: that is what corporate
//! networks in front of a browser offer almost everywhere. (NTLM/Kerberos would plug in
//! where the 407 is answered in [`connect`]: read the `Proxy-Authenticate` schemes, run
//! the challenge/response on the same connection, then send the `CONNECT` again.)
//!
//! The proxy's password never sits in the URL (so never in a config file, a process
//! list or a log line): it comes from `--proxy-password-file` or a prompt, as a
//! [`SecretString`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::https::{connect_tcp, DialError, Peer};
use crate::secret::SecretString;

/// The most a proxy's answer head (status line and headers) may take.
const MAX_ANSWER_HEAD: usize = 8 * 1024;
/// The most headers we parse in it.
const MAX_ANSWER_HEADERS: usize = 64;

/// An HTTP proxy for CONNECT: `http://[user@]host:port` (no password in the URL; a
/// password in the URL is refused with a clear error saying to use --proxy-password-file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyUrl {
    /// Host name (lower case) or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
}

/// Why a proxy URL was refused; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error("proxy URL is empty; give http://[user@]host:port, or none")]
    Empty,
    #[error("proxy URL {0:?} must start with http:// (only HTTP proxies with CONNECT are supported)")]
    Scheme(String),
    #[error(
        "proxy URL {0:?} contains a password: leave it out of the URL (http://user@host:port) and give it \
         with --proxy-password-file PATH (or at the prompt)"
    )]
    Password(String),
    #[error("proxy URL {0:?} has no host")]
    NoHost(String),
    #[error("proxy URL {0:?} has no port: write http://host:PORT (e.g. :8080 or :3128)")]
    NoPort(String),
    #[error("proxy URL {0:?} has a bad port: it must be a number between 1 and 65535")]
    Port(String),
    #[error("proxy URL {0:?} must be just http://[user@]host:port (no path, query or fragment)")]
    Path(String),
    #[error("proxy URL {url:?} is not a URL: {reason}")]
    Syntax { url: String, reason: String },
    #[error("HTTPS_PROXY from the environment: {0} (fix it, or give --proxy none)")]
    Environment(Box<ProxyUrlError>),
}

/// The characters a user name must have percent-encoded in a URL's userinfo.
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

impl ProxyUrl {
    /// Parses `http://[user@]host:port` (a trailing `/` is allowed; without a scheme,
    /// `host:port` is taken as http, as curl and most tools read `HTTPS_PROXY`).
    pub fn parse(s: &str) -> Result<ProxyUrl, ProxyUrlError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ProxyUrlError::Empty);
        }
        let with_scheme = if s.contains("://") {
            s.to_string()
        } else {
            format!("http://{s}")
        };
        let (scheme, rest) = with_scheme.split_once("://").unwrap_or(("", &with_scheme));
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(ProxyUrlError::Scheme(s.to_string()));
        }
        // The url crate parses and normalises the rest, but it hides an explicit `:80`
        // (the scheme's default) behind `port() == None`: look at the raw authority for
        // that one case, so that a URL without a port can be refused.
        let raw_authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let raw_hostport = raw_authority.rsplit_once('@').map_or(raw_authority, |(_, h)| h);
        let url = url::Url::parse(&with_scheme).map_err(|e| match e {
            url::ParseError::InvalidPort => ProxyUrlError::Port(s.to_string()),
            url::ParseError::EmptyHost => ProxyUrlError::NoHost(s.to_string()),
            e => ProxyUrlError::Syntax {
                url: s.to_string(),
                reason: e.to_string(),
            },
        })?;
        if url.password().is_some() {
            return Err(ProxyUrlError::Password(redact_password(s)));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(ProxyUrlError::Path(s.to_string()));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(ProxyUrlError::NoHost(s.to_string())),
        };
        let port = match url.port() {
            Some(0) => return Err(ProxyUrlError::Port(s.to_string())),
            Some(p) => p,
            None if raw_hostport.ends_with(":80") => 80,
            None if raw_hostport.ends_with(':') => return Err(ProxyUrlError::Port(s.to_string())),
            None => return Err(ProxyUrlError::NoPort(s.to_string())),
        };
        let user = match url.username() {
            "" => None,
            u => Some(
                percent_decode_str(u)
                    .decode_utf8()
                    .map_err(|_| ProxyUrlError::Syntax {
                        url: s.to_string(),
                        reason: "the user name is not UTF-8".into(),
                    })?
                    .into_owned(),
            ),
        };
        Ok(ProxyUrl { host, port, user })
    }

    /// `host:port` (IPv6 in brackets): what to connect to, and how messages name the proxy.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `http://user:SECRET@h:p` → `http://user:***@h:p`, for the error message.
fn redact_password(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return "(redacted)".into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{hostport}{tail}")
        }
        None => "(redacted)".into(),
    }
}

impl fmt::Display for ProxyUrl {
    /// `http://user@host:port`; there is never a password to show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => write!(f, "http://{}@{}", utf8_percent_encode(user, USERINFO), self.authority()),
            None => write!(f, "http://{}", self.authority()),
        }
    }
}

/// A proxy and its password (never logged: [`SecretString`]'s Debug redacts).
#[derive(Clone, Debug)]
pub struct Proxy {
    pub url: ProxyUrl,
    pub password: Option<SecretString>,
}

/// `--proxy` / the environment, decided at the edge (main.rs passes the env values in):
/// explicit `none` -> None; explicit URL -> it; else HTTPS_PROXY/https_proxy unless the hub
/// host matches NO_PROXY/no_proxy (comma list: exact host, `.suffix` / `suffix` domain
/// match, `*`, IP literals; ports ignored). Returns a clear error for a bad URL.
pub fn choose_proxy(
    explicit: Option<&str>,
    https_proxy_env: Option<&str>,
    no_proxy_env: Option<&str>,
    hub_host: &str,
) -> Result<Option<ProxyUrl>, ProxyUrlError> {
    if let Some(explicit) = given(explicit) {
        if explicit.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        return ProxyUrl::parse(explicit).map(Some);
    }
    let Some(env) = given(https_proxy_env) else {
        return Ok(None);
    };
    if no_proxy_matches(no_proxy_env.unwrap_or(""), hub_host) {
        tracing::debug!(hub = hub_host, "NO_PROXY names the hub: no proxy");
        return Ok(None);
    }
    ProxyUrl::parse(env)
        .map(Some)
        .map_err(|e| ProxyUrlError::Environment(Box::new(e)))
}

/// An empty value (e.g. `MCVPN_PROXY=` or `HTTPS_PROXY=`) is taken as not given.
fn given(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|v| !v.is_empty())
}

/// Whether `host` is exempt from the proxy by a `NO_PROXY` list, read as curl reads it.
fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = normalise_host(host);
    let host_ip = host.parse::<IpAddr>().ok();
    no_proxy.split(',').any(|entry| {
        let entry = entry.trim();
        if entry == "*" {
            return true;
        }
        let entry = normalise_host(strip_port(entry));
        if entry.is_empty() {
            return false;
        }
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return host_ip == Some(ip);
        }
        // `*.example.com`, `.example.com` and `example.com` all cover example.com's
        // subdomains; the dotted forms also cover example.com itself, as curl does.
        let domain = entry.trim_start_matches('*').trim_start_matches('.');
        !domain.is_empty()
            && host_ip.is_none()
            && (host == domain || host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.')))
    })
}

/// Lower case, no IPv6 brackets, no trailing dot.
fn normalise_host(host: &str) -> String {
    let host = host.trim();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `host:port` → `host`, `[v6]:port` → `[v6]`; a bare IPv6 literal is left alone.
fn strip_port(entry: &str) -> &str {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &entry[..end + 2],
            None => entry,
        };
    }
    match entry.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => entry,
    }
}

/// Opens a tunnel through the proxy to `target` (host:port) with CONNECT, Basic auth when
/// the proxy has a user. Reads the proxy's answer head with a hard cap (8 KiB, httparse).
/// Returns the TcpStream positioned after the answer (a proxy may not send bytes after
/// its 200 until we speak; anything extra is an error).
pub async fn connect(proxy: &Proxy, target: &str, timeout: Duration) -> Result<TcpStream, DialError> {
    let deadline = Instant::now() + timeout;
    let name = proxy.url.authority();
    let mut stream = connect_tcp(Peer::Proxy, &proxy.url.host, proxy.url.port, deadline).await?;

    let mut request = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: mcvpn/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(user) = &proxy.url.user {
        let password = proxy.password.as_ref().map_or("", |p| p.expose_secret());
        let credentials = zeroize::Zeroizing::new(format!("{user}:{password}"));
        let token = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes()));
        request.push_str("Proxy-Authorization: Basic ");
        request.push_str(&token);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let request = zeroize::Zeroizing::new(request);
    let io_error = |source| DialError::ProxyIo {
        proxy: name.clone(),
        source,
    };
    tokio::time::timeout_at(deadline, stream.write_all(request.as_bytes()))
        .await
        .map_err(|_| DialError::ProxyTimeout {
            proxy: name.clone(),
            target: target.to_string(),
        })?
        .map_err(io_error)?;

    let mut buf = Vec::with_capacity(1024);
    let (status, reason, realm) = loop {
        let mut chunk = [0u8; 1024];
        let room = (MAX_ANSWER_HEAD - buf.len()).min(chunk.len());
        if room == 0 {
            return Err(DialError::ProxyProtocol {
                proxy: name,
                detail: format!("its answer head is longer than {MAX_ANSWER_HEAD} bytes"),
            });
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room]))
            .await
            .map_err(|_| DialError::ProxyTimeout {
                proxy: name.clone(),
                target: target.to_string(),
            })?
            .map_err(io_error)?;
        if n == 0 {
            return Err(DialError::ProxyProtocol {
                proxy: name,
                detail: "it closed the connection before answering CONNECT".into(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
        let mut answer = httparse::Response::new(&mut headers);
        match answer.parse(&buf) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(head_len)) => {
                let status = answer.code.unwrap_or(0);
                let reason = answer.reason.unwrap_or("").to_string();
                let realm = answer
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case("proxy-authenticate"))
                    .find_map(|h| basic_realm(h.value));
                if (200..300).contains(&status) && buf.len() > head_len {
                    return Err(DialError::ProxyProtocol {
                        proxy: name,
                        detail: format!(
                            "it sent {} bytes after its {status} answer, before the tunnel was used",
                            buf.len() - head_len
                        ),
                    });
                }
                break (status, reason, realm);
            }
            Err(e) => {
                return Err(DialError::ProxyProtocol {
                    proxy: name,
                    detail: format!("its answer to CONNECT is not HTTP ({e})"),
                })
            }
        }
    };
    match status {
        200..=299 => {
            tracing::debug!(proxy = %name, target, status, "proxy tunnel open");
            Ok(stream)
        }
        407 => Err(DialError::ProxyAuth {
            proxy: name,
            realm,
            user: proxy.url.user.clone(),
        }),
        403 => Err(DialError::ProxyForbidden {
            proxy: name,
            target: target.to_string(),
        }),
        _ => Err(DialError::ProxyStatus {
            proxy: name,
            target: target.to_string(),
            status,
            reason,
        }),
    }
}

/// The realm of a `Proxy-Authenticate: Basic realm="…"` challenge, if it is one.
fn basic_realm(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let lower = params.to_ascii_lowercase();
    let start = lower.find("realm=")? + "realm=".len();
    let rest = &params[start..];
    let realm = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or(""),
        None => rest.split([',', ' ']).next().unwrap_or(""),
    };
    // Shown to the user: keep it short and printable.
    Some(realm.chars().filter(|c| !c.is_control()).take(100).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, user: Option<&str>) -> ProxyUrl {
        ProxyUrl {
            host: host.into(),
            port,
            user: user.map(Into::into),
        }
    }

    #[test]
    fn parse_and_display_round_trip() {
        let cases: &[(&str, ProxyUrl, &str)] = &[
            (
                "http://proxy.corp:8080",
                url("proxy.corp", 8080, None),
                "http://proxy.corp:8080",
            ),
            (
                "http://proxy.corp:8080/",
                url("proxy.corp", 8080, None),
                "http://proxy.corp:8080",
            ),
            (
                "HTTP://Proxy.Corp:3128",
                url("proxy.corp", 3128, None),
                "http://proxy.corp:3128",
            ),
            (
                "proxy.corp:3128",
                url("proxy.corp", 3128, None),
                "http://proxy.corp:3128",
            ),
            (
                "http://alice@10.0.0.1:3128",
                url("10.0.0.1", 3128, Some("alice")),
                "http://alice@10.0.0.1:3128",
            ),
            ("http://[::1]:80", url("::1", 80, None), "http://[::1]:80"),
            ("http://proxy:80", url("proxy", 80, None), "http://proxy:80"),
            (
                "http://CORP%5Calice@proxy:8080",
                url("proxy", 8080, Some("CORP\\alice")),
                "http://CORP%5Calice@proxy:8080",
            ),
            (
                "http://a%40b@proxy:1",
                url("proxy", 1, Some("a@b")),
                "http://a%40b@proxy:1",
            ),
        ];
        for (input, want, shown) in cases {
            let got = ProxyUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&got, want, "{input}");
            assert_eq!(got.to_string(), *shown, "{input}");
            assert_eq!(ProxyUrl::parse(&got.to_string()).unwrap(), got, "{input} round trip");
        }
        assert_eq!(url("::1", 3128, None).authority(), "[::1]:3128");
        assert_eq!(url("proxy", 3128, None).authority(), "proxy:3128");
    }

    #[test]
    fn bad_urls_are_refused_with_what_to_do() {
        let password = ProxyUrl::parse("http://alice:s3cret@proxy:8080").unwrap_err();
        assert!(matches!(password, ProxyUrlError::Password(_)), "{password:?}");
        let msg = password.to_string();
        assert!(msg.contains("--proxy-password-file"), "{msg}");
        assert!(!msg.contains("s3cret"), "the password is in the message: {msg}");
        assert!(matches!(
            ProxyUrl::parse("http://:pw@proxy:8080"),
            Err(ProxyUrlError::Password(_))
        ));

        type Check = fn(&ProxyUrlError) -> bool;
        let bad: &[(&str, Check)] = &[
            ("", |e| matches!(e, ProxyUrlError::Empty)),
            ("https://proxy:443", |e| matches!(e, ProxyUrlError::Scheme(_))),
            ("socks5://proxy:1080", |e| matches!(e, ProxyUrlError::Scheme(_))),
            ("http://proxy", |e| matches!(e, ProxyUrlError::NoPort(_))),
            ("http://proxy:", |e| matches!(e, ProxyUrlError::Port(_))),
            ("http://proxy:0", |e| matches!(e, ProxyUrlError::Port(_))),
            ("http://proxy:65536", |e| matches!(e, ProxyUrlError::Port(_))),
            ("http://proxy:80x", |e| matches!(e, ProxyUrlError::Port(_))),
            ("http://proxy:-1", |e| matches!(e, ProxyUrlError::Port(_))),
            ("http://:8080", |e| matches!(e, ProxyUrlError::NoHost(_))),
            ("http://proxy:8080/path", |e| matches!(e, ProxyUrlError::Path(_))),
            ("http://proxy:8080/?q", |e| matches!(e, ProxyUrlError::Path(_))),
            ("http://[::1:8080", |e| matches!(e, ProxyUrlError::Syntax { .. })),
        ];
        for (input, is_expected) in bad {
            match ProxyUrl::parse(input) {
                Ok(u) => panic!("{input:?} was accepted as {u:?}"),
                Err(e) => assert!(is_expected(&e), "{input:?}: unexpected {e:?}"),
            }
        }
    }

    #[test]
    fn choose_proxy_table() {
        let corp = Some(url("proxy.corp", 8080, None));
        let env = Some("http://proxy.corp:8080");
        // (explicit, HTTPS_PROXY, NO_PROXY, hub host, expected)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Option<ProxyUrl>,
        );
        let cases: &[Case] = &[
            (None, None, None, "hub.example.com", None),
            (None, Some(""), None, "hub.example.com", None),
            (None, env, None, "hub.example.com", corp.clone()),
            (None, env, Some(""), "hub.example.com", corp.clone()),
            (Some("none"), env, None, "hub.example.com", None),
            (Some("NONE"), env, None, "hub.example.com", None),
            (
                Some("http://other:3128"),
                env,
                None,
                "hub.example.com",
                Some(url("other", 3128, None)),
            ),
            // The explicit proxy wins over NO_PROXY.
            (
                Some("http://other:3128"),
                env,
                Some("*"),
                "hub.example.com",
                Some(url("other", 3128, None)),
            ),
            (Some(""), env, None, "hub.example.com", corp.clone()),
            (None, env, Some("*"), "hub.example.com", None),
            (None, env, Some("hub.example.com"), "hub.example.com", None),
            (None, env, Some("HUB.Example.COM"), "hub.example.com", None),
            (None, env, Some("hub.example.com"), "hub.example.com.", None),
            (None, env, Some("example.com"), "hub.example.com", None),
            (None, env, Some(".example.com"), "hub.example.com", None),
            (None, env, Some("*.example.com"), "hub.example.com", None),
            (None, env, Some(".example.com"), "example.com", None),
            (None, env, Some("localhost, .example.com"), "hub.example.com", None),
            (None, env, Some("hub.example.com:443"), "hub.example.com", None),
            (None, env, Some("ample.com"), "hub.example.com", corp.clone()),
            (None, env, Some("hub.example.co"), "hub.example.com", corp.clone()),
            (None, env, Some("other.example.com"), "hub.example.com", corp.clone()),
            (None, env, Some("localhost,127.0.0.1"), "hub.example.com", corp.clone()),
            (None, env, Some(",,"), "hub.example.com", corp.clone()),
            (None, env, Some("."), "hub.example.com", corp.clone()),
            (None, env, Some("192.0.2.7"), "192.0.2.7", None),
            (None, env, Some("192.0.2.7:443"), "192.0.2.7", None),
            (None, env, Some("192.0.2.8"), "192.0.2.7", corp.clone()),
            // A domain suffix never matches an address literal.
            (None, env, Some("0.2.7"), "192.0.2.7", corp.clone()),
            (None, env, Some("2001:db8::1"), "2001:db8::1", None),
            (None, env, Some("[2001:db8::1]:443"), "2001:db8::1", None),
            (None, env, Some("2001:db8:0::1"), "[2001:db8::1]", None),
            (None, env, Some("2001:db8::2"), "2001:db8::1", corp.clone()),
        ];
        for (i, (explicit, https_proxy, no_proxy, hub, want)) in cases.iter().enumerate() {
            let got = choose_proxy(*explicit, *https_proxy, *no_proxy, hub);
            assert_eq!(
                got.as_ref(),
                Ok(want),
                "case {i}: {explicit:?} {https_proxy:?} {no_proxy:?} {hub}"
            );
        }
    }

    #[test]
    fn choose_proxy_errors_say_where_the_url_came_from() {
        let e = choose_proxy(Some("http://a:b@p:1"), None, None, "hub").unwrap_err();
        assert!(matches!(e, ProxyUrlError::Password(_)), "{e:?}");
        let e = choose_proxy(None, Some("http://a:b@p:1"), None, "hub").unwrap_err();
        assert!(e.to_string().starts_with("HTTPS_PROXY"), "{e}");
        assert!(e.to_string().contains("--proxy-password-file"), "{e}");
        // A bad HTTPS_PROXY does not matter when NO_PROXY exempts the hub.
        assert_eq!(choose_proxy(None, Some("nonsense://"), Some("hub"), "hub"), Ok(None));
    }

    #[test]
    fn realm_is_read_from_basic_challenges_only() {
        assert_eq!(
            basic_realm(br#"Basic realm="Corp proxy""#).as_deref(),
            Some("Corp proxy")
        );
        assert_eq!(
            basic_realm(b"basic REALM=squid, charset=\"UTF-8\"").as_deref(),
            Some("squid")
        );
        assert_eq!(basic_realm(b"Negotiate"), None);
        assert_eq!(basic_realm(br#"NTLM realm="x""#), None);
        assert_eq!(basic_realm(b"Basic"), None);
    }
}
