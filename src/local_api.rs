//! The local status socket: a Unix stream socket on which a running hub, client or
//! target answers one JSON request per connection (`status`, `stats`, `down`).
//! `mcvpn status`, `mcvpn down` and `mcvpn hub stats` are its clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::UnixListener;

/// What a client asks, as one JSON line: `{"cmd":"status"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum LocalRequest {
    /// A client's or target's status (`mcvpn status`); the hub answers it as `stats`.
    Status,
    /// The hub's relay counters and live sessions (`mcvpn hub stats`).
    Stats,
    /// Take the client down (`mcvpn down`; root only).
    Down,
}

impl LocalRequest {
    /// The name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            LocalRequest::Status => "status",
            LocalRequest::Stats => "stats",
            LocalRequest::Down => "down",
        }
    }
}

/// One answer line: the server's typed answer, or `{"error": "..."}` when it refused
/// or did not understand. (Untagged: an answer type must not have an `error` key.)
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Answer<T> {
    Refused { error: String },
    Done(T),
}

/// The answer to a request that only has to be done: `{"ok": true}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ack {
    pub ok: bool,
}

/// Who asked: `down` is for root only, `status` for anyone.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
}

/// Removes the socket file when the server goes away.
pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds `path` (replacing a stale socket file) and serves requests until the runtime
/// stops. `handler` answers each request with its typed answer, or refuses with a
/// message for the caller.
pub fn serve<R, F>(path: &Path, handler: F) -> Result<SocketGuard>
where
    R: Serialize,
    F: Fn(LocalRequest, Caller) -> Result<R, String> + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if path.exists() {
        if StdUnixStream::connect(path).is_ok() {
            anyhow::bail!("another mcvpn process is already serving {}", path.display());
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let caller = Caller {
                    uid: stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX),
                };
                let (rd, mut wr) = stream.into_split();
                let mut line = String::new();
                let mut rd = TokioBufReader::new(rd);
                if rd.read_line(&mut line).await.is_err() {
                    return;
                }
                // Serialised at once: only bytes cross the await below.
                let mut out = match serde_json::from_str::<LocalRequest>(&line) {
                    Ok(req) => match handler(req, caller) {
                        Ok(answer) => serde_json::to_vec(&Answer::Done(answer)),
                        Err(error) => serde_json::to_vec(&Answer::<()>::Refused { error }),
                    },
                    Err(e) => serde_json::to_vec(&Answer::<()>::Refused {
                        error: format!("bad request: {e}"),
                    }),
                }
                .unwrap_or_default();
                out.push(b'\n');
                let _ = wr.write_all(&out).await;
            });
        }
    });
    Ok(SocketGuard(path.to_path_buf()))
}

/// Sends `req` to the process serving `path`. The outer error: nobody answered, or not
/// readably; the inner one: the server refused, with its message.
pub fn call<T: DeserializeOwned>(path: &Path, req: LocalRequest) -> Result<Result<T, String>> {
    let mut stream = StdUnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_vec(&req)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let answer: Answer<T> =
        serde_json::from_str(&line).with_context(|| format!("unreadable answer from {}", path.display()))?;
    Ok(match answer {
        Answer::Done(t) => Ok(t),
        Answer::Refused { error } => Err(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire format scripts and older clients speak: one `{"cmd": …}` line.
    #[test]
    fn requests_keep_their_wire_names() {
        for (req, line) in [
            (LocalRequest::Status, r#"{"cmd":"status"}"#),
            (LocalRequest::Stats, r#"{"cmd":"stats"}"#),
            (LocalRequest::Down, r#"{"cmd":"down"}"#),
        ] {
            assert_eq!(serde_json::to_string(&req).unwrap(), line);
            assert_eq!(serde_json::from_str::<LocalRequest>(line).unwrap(), req);
            assert_eq!(line, format!(r#"{{"cmd":"{}"}}"#, req.name()));
        }
        assert!(serde_json::from_str::<LocalRequest>(r#"{"cmd":"reboot"}"#).is_err());
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Count {
        n: u32,
    }

    /// A typed answer, a refusal and a request the server does not know, over a real
    /// Unix socket.
    #[test]
    fn answers_and_refusals_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt
            .block_on(async {
                serve(&path, |req, _caller| match req {
                    LocalRequest::Stats => Ok(Count { n: 7 }),
                    other => Err(format!("unknown command {:?}", other.name())),
                })
            })
            .unwrap();
        assert_eq!(call::<Count>(&path, LocalRequest::Stats).unwrap(), Ok(Count { n: 7 }));
        assert_eq!(
            call::<Count>(&path, LocalRequest::Status).unwrap(),
            Err("unknown command \"status\"".to_string())
        );
        let mut stream = StdUnixStream::connect(&path).unwrap();
        stream.write_all(b"{\"cmd\":\"reboot\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["error"].as_str().unwrap().starts_with("bad request"), "{line}");
        assert!(call::<Count>(&dir.path().join("nobody.sock"), LocalRequest::Stats).is_err());
    }

    /// Serves `Stats` with a count on a socket in a new directory, on its own runtime.
    fn count_server() -> (tempfile::TempDir, PathBuf, tokio::runtime::Runtime, SocketGuard) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let guard = rt
            .block_on(async { serve(&path, |_req, _caller| Ok::<_, String>(Count { n: 7 })) })
            .unwrap();
        (dir, path, rt, guard)
    }

    /// Review C7: only the owner (root, for the daemons) may connect.
    #[test]
    fn socket_is_owner_only() {
        let (_dir, path, _rt, _guard) = count_server();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "socket mode {mode:o}");
    }

    /// Review C7: a request line that never ends (`yes | nc -U …`) is cut off after
    /// [`MAX_REQUEST`] bytes with an answer saying so, instead of growing the daemon's memory.
    #[test]
    fn an_endless_line_is_cut_off() {
        let (_dir, path, _rt, _guard) = count_server();
        let stream = StdUnixStream::connect(&path).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let flood = std::thread::spawn(move || {
            let chunk = vec![b'y'; 64 << 10];
            let mut sent = 0usize;
            // 64 MiB at most: the old server took all of it.
            while sent < 64 << 20 {
                match writer.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        });
        let mut line = String::new();
        let got = BufReader::new(&stream).read_line(&mut line);
        assert!(got.is_ok(), "no answer to an endless line within 10 s: {got:?}");
        assert!(line.contains("too long"), "{line:?}");
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let sent = flood.join().unwrap();
        assert!(sent < 64 << 20, "the server read all {sent} bytes");
        println!("the server stopped reading after the client had sent {sent} bytes");
    }

    /// Review C7: a connection that sends nothing is closed after the read timeout
    /// instead of holding a descriptor and a task for ever.
    #[test]
    fn an_idle_connection_is_closed() {
        let (_dir, path, _rt, _guard) = count_server();
        let stream = StdUnixStream::connect(&path).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let t0 = std::time::Instant::now();
        let mut rest = Vec::new();
        let got = (&stream).read_to_end(&mut rest);
        assert!(got.is_ok(), "still open after 15 s: {got:?}");
        println!("idle connection closed after {:?}", t0.elapsed());
    }
}
