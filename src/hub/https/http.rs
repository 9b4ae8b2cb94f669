//! The one HTTP/1.1 request a connection to the HTTPS port may send before it is a
//! WebSocket: read with a hard cap, parsed by `httparse`, answered here.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The most a request head may take. A WebSocket upgrade is a few hundred bytes, a
/// browser's `GET /` one or two KiB; anything longer is refused once this much is read,
/// without reading the rest.
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers a request may have (more is refused like an oversized head).
const MAX_HEADERS: usize = 48;

/// The page `GET /` answers: a web server, and nothing about this one beyond its kind.
const PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mcvpn hub</title></head>\
<body><h1>mcvpn hub</h1><p>This server relays mcvpn connections. There is nothing to see here with a browser.</p></body></html>\n";

/// What the request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /` (or `HEAD /` when `head_only`) without an upgrade: the page.
    Page { head_only: bool },
    /// A valid WebSocket upgrade on [`crate::stream::WS_PATH`]; `accept` is the
    /// `Sec-WebSocket-Accept` value to answer with.
    Upgrade { accept: String },
    /// An upgrade on the WebSocket path that is not a valid one.
    BadUpgrade(&'static str),
    /// A request under `/console` (the web console, [`crate::hub::console`]): the
    /// connection is served by it from this request on.
    Console,
    /// Anything else that parsed.
    NotFound,
    /// Not HTTP/1.x at all.
    Malformed,
    /// No complete head within [`MAX_HEAD`] bytes (or [`MAX_HEADERS`] headers).
    TooLarge,
}

/// Reads one request head (at most [`MAX_HEAD`] bytes) and routes it. Returns the
/// request and the bytes read past its head (a client may send its first WebSocket
/// frame without waiting for the 101); for [`Request::Console`], every byte read (the
/// head included), for the console's HTTP server to read again. `Ok(None)`: the peer
/// closed before a whole head.
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<(Request, Vec<u8>)>> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(len)) => {
                let request = route(&req);
                buf.truncate(filled);
                if request == Request::Console {
                    return Ok(Some((request, buf)));
                }
                return Ok(Some((request, buf.split_off(len))));
            }
            Ok(httparse::Status::Partial) if filled < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Ok(Some((Request::TooLarge, Vec::new())))
            }
            Err(_) => return Ok(Some((Request::Malformed, Vec::new()))),
        }
    }
}

fn header<'a>(req: &'a httparse::Request<'_, '_>, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether the comma-separated header `name` lists `token` (case-insensitively), as
/// `Connection: keep-alive, Upgrade` does.
fn has_token(req: &httparse::Request<'_, '_>, name: &str, token: &str) -> bool {
    req.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn route(req: &httparse::Request<'_, '_>) -> Request {
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Request::Malformed;
    };
    let path = target.split('?').next().unwrap_or(target);
    let upgrade = header(req, "upgrade").is_some() || has_token(req, "connection", "upgrade");
    if path == crate::stream::WS_PATH {
        return match websocket_accept(req, method) {
            Ok(accept) => Request::Upgrade { accept },
            Err(why) => Request::BadUpgrade(why),
        };
    }
    if path == "/console" || path.starts_with("/console/") {
        return Request::Console;
    }
    match (method, path, upgrade) {
        ("GET", "/", false) => Request::Page { head_only: false },
        ("HEAD", "/", false) => Request::Page { head_only: true },
        _ => Request::NotFound,
    }
}

/// Checks a WebSocket opening handshake (RFC 6455 section 4.2.1) and returns the
/// `Sec-WebSocket-Accept` answer.
fn websocket_accept(req: &httparse::Request<'_, '_>, method: &str) -> Result<String, &'static str> {
    if method != "GET" {
        return Err("the WebSocket upgrade must be a GET");
    }
    if req.version != Some(1) {
        return Err("the WebSocket upgrade needs HTTP/1.1");
    }
    if !has_token(req, "upgrade", "websocket") || !has_token(req, "connection", "upgrade") {
        return Err("not a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)");
    }
    if header(req, "sec-websocket-version") != Some(b"13") {
        return Err("unsupported WebSocket version (13 is)");
    }
    let key = header(req, "sec-websocket-key").ok_or("no Sec-WebSocket-Key")?;
    match base64::engine::general_purpose::STANDARD.decode(key.trim_ascii()) {
        Ok(nonce) if nonce.len() == 16 => Ok(derive_accept_key(key.trim_ascii())),
        _ => Err("Sec-WebSocket-Key is not 16 bytes in base64"),
    }
}

/// Writes the answer to a request that does not become a WebSocket, then closes
/// (TLS close_notify and TCP FIN).
pub async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, request: &Request) -> std::io::Result<()> {
    let (status, body, extra) = match request {
        Request::Page { .. } => ("200 OK", PAGE, "Content-Type: text/html; charset=utf-8\r\n"),
        Request::NotFound => ("404 Not Found", "not found\n", "Content-Type: text/plain\r\n"),
        Request::BadUpgrade(why) => (
            "400 Bad Request",
            *why,
            "Content-Type: text/plain\r\nSec-WebSocket-Version: 13\r\n",
        ),
        Request::Malformed => ("400 Bad Request", "bad request\n", "Content-Type: text/plain\r\n"),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            "request head too large\n",
            "Content-Type: text/plain\r\n",
        ),
        Request::Upgrade { .. } | Request::Console => {
            unreachable!("an upgrade is answered by switching_protocols, the console by its server")
        }
    };
    // Date (RFC 9110, always GMT): `mcvpn diagnose` reads the hub's clock from it when UDP
    // does not get through.
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{extra}Date: {date}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !matches!(request, Request::Page { head_only: true }) {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// Writes the `101 Switching Protocols` that makes the connection a WebSocket.
pub async fn switching_protocols<S: AsyncWrite + Unpin>(stream: &mut S, accept: &str) -> std::io::Result<()> {
    let out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &[u8]) -> Option<(Request, Vec<u8>)> {
        let mut r = raw;
        read_request(&mut r).await.unwrap()
    }

    const UPGRADE: &str =
        "GET /mcvpn/v1 HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[tokio::test]
    async fn routes_page_upgrade_and_the_rest() {
        let page = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap().0;
        assert_eq!(page, Request::Page { head_only: false });
        let head = parse(b"HEAD /?q=1 HTTP/1.1\r\n\r\n").await.unwrap().0;
        assert_eq!(head, Request::Page { head_only: true });
        assert_eq!(
            parse(b"GET /admin HTTP/1.1\r\n\r\n").await.unwrap().0,
            Request::NotFound
        );
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n").await.unwrap().0, Request::NotFound);
        let console = b"GET /console/accounts HTTP/1.1\r\nHost: x\r\n\r\nPOST";
        let (req, read) = parse(console).await.unwrap();
        assert_eq!(req, Request::Console);
        assert_eq!(read, console, "the console's server reads the whole request again");
        assert_eq!(
            parse(b"GET /consoleX HTTP/1.1\r\n\r\n").await.unwrap().0,
            Request::NotFound
        );
        assert_eq!(
            parse(b"\x16\x03\x01garbage\r\n\r\n").await.unwrap().0,
            Request::Malformed
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost").await, None, "closed mid-head");
        // RFC 6455's own example key and answer.
        let mut raw = UPGRADE.as_bytes().to_vec();
        raw.extend_from_slice(b"early");
        let (req, rest) = parse(&raw).await.unwrap();
        assert_eq!(
            req,
            Request::Upgrade {
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
            }
        );
        assert_eq!(rest, b"early", "bytes after the head are kept for the WebSocket");
    }

    #[tokio::test]
    async fn bad_upgrades_are_refused() {
        for (from, to) in [
            ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
            ("Upgrade: websocket", "Upgrade: h2c"),
            ("GET /mcvpn/v1 HTTP/1.1", "GET /mcvpn/v1 HTTP/1.0"),
            ("GET /mcvpn/v1", "PUT /mcvpn/v1"),
        ] {
            let raw = UPGRADE.replace(from, to);
            let req = parse(raw.as_bytes()).await.unwrap().0;
            assert!(matches!(req, Request::BadUpgrade(_)), "{to}: {req:?}");
        }
        let no_upgrade = parse(b"GET /mcvpn/v1 HTTP/1.1\r\n\r\n").await.unwrap().0;
        assert!(matches!(no_upgrade, Request::BadUpgrade(_)));
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused_at_the_cap() {
        // One huge header, then many small ones.
        let mut long = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
        long.resize(3 * MAX_HEAD, b'a');
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        while many.len() < 3 * MAX_HEAD {
            many.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        for raw in [long, many] {
            let mut r = &raw[..];
            let (req, _) = read_request(&mut r).await.unwrap().unwrap();
            assert_eq!(req, Request::TooLarge);
            assert!(r.len() >= raw.len() - MAX_HEAD, "no more than the cap was read");
        }
    }
}
