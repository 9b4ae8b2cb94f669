//! TEMPORARY STUB of branch `https-dial`'s module (the agreed signatures only), so that
//! branch `transport` builds before that branch lands. Replaced by the real file at
//! the merge; nothing here is the real proxy support.

use crate::secret::SecretString;

/// An HTTP proxy's address (`http://[user@]host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
}

impl std::fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for ProxyUrl {
    type Err = String;
    fn from_str(_s: &str) -> Result<ProxyUrl, String> {
        Err("proxy support is not merged into this build yet (stub)".into())
    }
}

/// The proxy with its password.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub url: ProxyUrl,
    pub password: Option<SecretString>,
}

/// Chooses the proxy: the explicit one (`none` for none), else `HTTPS_PROXY` unless
/// `NO_PROXY` names the hub.
pub fn choose_proxy(
    explicit: Option<&str>,
    https_proxy_env: Option<&str>,
    no_proxy_env: Option<&str>,
    hub_host: &str,
) -> Result<Option<ProxyUrl>, String> {
    let _ = (https_proxy_env, no_proxy_env, hub_host);
    match explicit {
        Some("none") | None => Ok(None),
        Some(other) => other.parse().map(Some),
    }
}
