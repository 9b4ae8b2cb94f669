//! The local status socket: a Unix stream socket on which a running hub, client or
//! target answers one JSON request per connection (`status`, `stats`, `down`).
//! `mcvpn status`, `mcvpn down` and `mcvpn hub stats` are its clients.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::UnixListener;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalRequest {
    pub cmd: String,
}

/// Who asked: `down` is for root only, `status` for anyone.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
}

pub type Handler = Arc<dyn Fn(LocalRequest, Caller) -> serde_json::Value + Send + Sync>;

/// Removes the socket file when the server goes away.
pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds `path` (replacing a stale socket file) and serves requests until the runtime stops.
pub fn serve(path: &Path, handler: Handler) -> Result<SocketGuard> {
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
                let reply = match serde_json::from_str::<LocalRequest>(&line) {
                    Ok(req) => handler(req, caller),
                    Err(e) => serde_json::json!({"error": format!("bad request: {e}")}),
                };
                let mut out = serde_json::to_vec(&reply).unwrap_or_default();
                out.push(b'\n');
                let _ = wr.write_all(&out).await;
            });
        }
    });
    Ok(SocketGuard(path.to_path_buf()))
}

/// Sends `cmd` to the process serving `path` and returns its JSON answer.
pub fn call(path: &Path, cmd: &str) -> Result<serde_json::Value> {
    let mut stream = StdUnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = serde_json::to_vec(&LocalRequest { cmd: cmd.into() })?;
    req.push(b'\n');
    stream.write_all(&req)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).with_context(|| format!("unreadable answer from {}", path.display()))
}
