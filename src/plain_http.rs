//! The few lines of HTTP/1.1 the loopback `/metrics` endpoints need (the hub's and the
//! monitor's): read one request head with `httparse` within a fixed buffer, answer it,
//! close. One request per connection, no body, nothing kept: a scrape is all they serve.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The content type of a Prometheus scrape.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What arrived on a connection.
pub enum Head {
    /// Closed before a whole head arrived.
    Closed,
    /// Not HTTP, or longer than the buffer.
    Bad,
    Request {
        method: String,
        path: String,
    },
}

/// Reads one request head of at most `max` bytes.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, max: usize) -> std::io::Result<Head> {
    let mut buf = vec![0u8; max];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(Head::Request {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("").to_string(),
                })
            }
            Ok(httparse::Status::Partial) if filled < max => continue,
            _ => return Ok(Head::Bad),
        }
    }
}

/// Answers and closes (`head_only` for a HEAD request: the head without the body).
pub async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    kind: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
