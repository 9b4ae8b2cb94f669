//! The local status socket: a Unix stream socket on which a running hub, client or
//! target answers one JSON request per connection (`status`, `stats`, `down`).
//! `mcvpn status`, `mcvpn down` and `mcvpn hub stats` are its clients.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

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

/// Longest request line the server reads (`{"cmd":"status"}` is 16 bytes); a longer
/// one is refused without reading on (review C7).
pub const MAX_REQUEST: usize = 64 << 10;
/// How long a client may take to send its request line, and to take the answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections answered at once; further ones wait in the listen backlog, so one local
/// caller cannot take the daemon's descriptors.
pub const MAX_CONNECTIONS: usize = 16;
/// First and longest pause after a failed `accept` (EMFILE: out of descriptors), so
/// the loop waits for descriptors to come back instead of spinning.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));

/// How much one connection may cost the server. [`serve`] uses the defaults.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request: usize,
    pub read_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request: MAX_REQUEST,
            read_timeout: READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Binds `path` (replacing a stale socket file) and serves requests until the runtime
/// stops. `handler` answers each request with its typed answer, or refuses with a
/// message for the caller. The socket is the owner's only (mode 0600): the daemons run
/// as root, and root's `mcvpn status`/`down` reach them.
pub fn serve<R, F>(path: &Path, handler: F) -> Result<SocketGuard>
where
    R: Serialize,
    F: Fn(LocalRequest, Caller) -> Result<R, String> + Send + Sync + 'static,
{
    serve_with(path, Limits::default(), handler)
}

/// [`serve`] with other limits (tests use short ones).
pub fn serve_with<R, F>(path: &Path, limits: Limits, handler: F) -> Result<SocketGuard>
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
    let listener = bind_owner_only(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    let guard = SocketGuard(path.to_path_buf());
    let listener = UnixListener::from_std(listener).with_context(|| format!("cannot listen on {}", path.display()))?;
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shown = path.display().to_string();
    tokio::spawn(async move {
        let mut backoff = ACCEPT_BACKOFF.0;
        loop {
            // A free slot first: at the cap, connections wait in the backlog.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF.0;
                    stream
                }
                Err(e) => {
                    tracing::warn!(socket = %shown, error = %e, pause = ?backoff, "status socket: accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                    continue;
                }
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _permit = permit;
                answer(stream, limits, &*handler).await;
            });
        }
    });
    Ok(guard)
}

/// A listening Unix socket at `path` whose file is mode 0600 from the moment it exists.
fn bind_owner_only(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    use nix::sys::stat::{fchmod, Mode};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // Linux gives the socket file the unbound socket's inode mode (less the umask), so
    // a chmod before bind leaves no moment at which others could connect; the chmod of
    // the file after bind is for kernels that do not.
    fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o600))?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listen(&fd, Backlog::new(128)?)?;
    Ok(std::os::unix::net::UnixListener::from(fd))
}

/// Reads one request line (at most `limits.max_request` bytes, within the timeout) and
/// writes the answer line.
async fn answer<R, F>(stream: UnixStream, limits: Limits, handler: &F)
where
    R: Serialize,
    F: Fn(LocalRequest, Caller) -> Result<R, String>,
{
    let caller = Caller {
        uid: stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX),
    };
    let (rd, mut wr) = stream.into_split();
    let mut line = Vec::new();
    // One byte past the limit tells a line that is too long from one that fits.
    let mut rd = TokioBufReader::new(rd.take(limits.max_request as u64 + 1));
    match tokio::time::timeout(limits.read_timeout, rd.read_until(b'\n', &mut line)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!(uid = caller.uid, "status socket: no request within the timeout; closed");
            return;
        }
    }
    // Serialised at once: only bytes cross the await below.
    let mut out = if line.len() > limits.max_request {
        tracing::debug!(uid = caller.uid, "status socket: request line too long; refused");
        serde_json::to_vec(&Answer::<()>::Refused {
            error: format!("request too long (more than {} bytes)", limits.max_request),
        })
    } else {
        match serde_json::from_slice::<LocalRequest>(&line) {
            Ok(req) => match handler(req, caller) {
                Ok(answer) => serde_json::to_vec(&Answer::Done(answer)),
                Err(error) => serde_json::to_vec(&Answer::<()>::Refused { error }),
            },
            Err(e) => serde_json::to_vec(&Answer::<()>::Refused {
                error: format!("bad request: {e}"),
            }),
        }
    }
    .unwrap_or_default();
    out.push(b'\n');
    let _ = tokio::time::timeout(limits.read_timeout, wr.write_all(&out)).await;
}

/// Sends `req` to the process serving `path`. The outer error: nobody answered, or not
/// readably (see [`is_permission_denied`]); the inner one: the server refused, with its
/// message.
pub fn call<T: DeserializeOwned>(path: &Path, req: LocalRequest) -> Result<Result<T, String>> {
    let stream = StdUnixStream::connect(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (the socket is its owner's only, mode 0600: run the command with sudo)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!("cannot connect to {}{hint}", path.display()))
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_vec(&req)?;
    line.push(b'\n');
    send_all(&stream, &line)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let answer: Answer<T> =
        serde_json::from_str(&line).with_context(|| format!("unreadable answer from {}", path.display()))?;
    Ok(match answer {
        Answer::Done(t) => Ok(t),
        Answer::Refused { error } => Err(error),
    })
}

/// Writes all of `buf` with `MSG_NOSIGNAL`: the printing commands restore the default
/// SIGPIPE action (see `main`), and a server that went away must be an error here, not
/// the end of the process.
fn send_all(stream: &StdUnixStream, mut buf: &[u8]) -> std::io::Result<()> {
    use nix::sys::socket::{send, MsgFlags};
    use std::os::fd::AsRawFd;
    while !buf.is_empty() {
        match send(stream.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Whether [`call`] failed because the caller may not use the socket (mode 0600, not
/// its owner and not root), as opposed to nobody serving it.
pub fn is_permission_denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

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

    /// At the connection cap a further caller waits in the listen backlog until a slot
    /// frees (here, when the idle connections time out): the server holds no more
    /// descriptors and tasks than the cap.
    #[test]
    fn connections_beyond_the_cap_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let limits = Limits {
            max_request: 1024,
            read_timeout: Duration::from_millis(800),
            max_connections: 2,
        };
        let _guard = rt
            .block_on(async { serve_with(&path, limits, |_req, _caller| Ok::<_, String>(Count { n: 1 })) })
            .unwrap();
        let idle: Vec<_> = (0..2).map(|_| StdUnixStream::connect(&path).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = std::time::Instant::now();
        assert_eq!(call::<Count>(&path, LocalRequest::Stats).unwrap(), Ok(Count { n: 1 }));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(500),
            "answered after {waited:?} with every slot taken"
        );
        drop(idle);
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
