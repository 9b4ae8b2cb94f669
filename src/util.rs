//! Small system helpers shared by the roles.

use std::os::fd::AsFd;

/// This machine's host name, or `unnamed`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unnamed".to_string())
}

/// The wall clock in Unix milliseconds (0 before 1970, which no machine here is at).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Asks for big socket buffers so that bursts are not dropped at the receiver (the
/// 208 KiB default is what caps boringtun and wireguard-go). With CAP_NET_ADMIN
/// `SO_*BUFFORCE` goes past `net.core.rmem_max`/`wmem_max`; otherwise the kernel clamps the
/// plain request to those limits (the unprivileged hub's unit relies on
/// `systemd/60-mcvpn-hub.conf` raising them), and a clamp is logged once per socket.
pub fn set_socket_buffers(socket: &impl AsFd, bytes: usize) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    if bytes == 0 {
        return;
    }
    let bytes = bytes.min(i32::MAX as usize);
    if setsockopt(socket, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = setsockopt(socket, sockopt::RcvBuf, &bytes);
    }
    if setsockopt(socket, sockopt::SndBufForce, &bytes).is_err() {
        let _ = setsockopt(socket, sockopt::SndBuf, &bytes);
    }
    // The kernel reports twice what it granted (its bookkeeping overhead).
    let granted = |got: nix::Result<usize>| got.map(|b| b / 2).unwrap_or(0);
    let (rcv, snd) = (
        granted(getsockopt(socket, sockopt::RcvBuf)),
        granted(getsockopt(socket, sockopt::SndBuf)),
    );
    if rcv < bytes || snd < bytes {
        tracing::warn!(
            asked = bytes,
            receive = rcv,
            send = snd,
            "UDP socket buffers are smaller than asked: raise net.core.rmem_max and wmem_max \
             (systemd/60-mcvpn-hub.conf) or run with CAP_NET_ADMIN"
        );
    }
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over the target. Readers see the old file or the new one, never half.
///
/// The temporary file has a random name and is created with `O_EXCL|O_NOFOLLOW`
/// (review S5): a file or symlink planted at any name in the directory is never opened,
/// so root writing a key into a directory another user can write does not follow a
/// link to overwrite some other file. `mode` is the new file's mode (less the umask).
pub fn write_atomic(path: &std::path::Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let (tmp, mut f) = create_temp_beside(path, mode)?;
    let written = f
        .write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Creates a new file with a random name next to `path` (`.NAME.RANDOM.tmp`), never
/// opening an existing file or following a symlink.
fn create_temp_beside(path: &std::path::Path, mode: u32) -> anyhow::Result<(std::path::PathBuf, std::fs::File)> {
    use rand::Rng;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    // A name already taken (a leftover, or someone's planted file) is skipped, not opened.
    for _ in 0..8 {
        let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::thread_rng().gen::<u64>()));
        match open_new(&tmp, mode) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot create {}", tmp.display()))),
        }
    }
    Err(anyhow::anyhow!(
        "cannot create a temporary file beside {}: {}",
        path.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Opens a file that must not exist yet (`O_CREAT|O_EXCL`), not through a symlink
/// (`O_NOFOLLOW`; `O_EXCL` already refuses one, this says so twice).
fn open_new(path: &std::path::Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(mode)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt};

    /// Review S5: a symlink planted where the old code put its temporary file (the
    /// target's name with `.tmp<pid>`), in a directory its owner may write, must not
    /// make the writer (root) overwrite the file the link points to.
    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("shadow");
        std::fs::write(&victim, "root:secret\n").unwrap();
        let key = dir.path().join("device.key");
        let planted = key.with_extension(format!("tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomic(&key, b"new key\n", 0o600).unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "root:secret\n",
            "the victim was overwritten"
        );
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "new key\n");
        assert!(!std::fs::symlink_metadata(&key).unwrap().file_type().is_symlink());
        // Nothing is left behind but the planted link, the victim and the key.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    /// The temporary file's own open refuses an existing name and a symlink, dangling
    /// or not: the random name is not the only defence.
    #[test]
    fn temp_files_are_opened_exclusively_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("new-file"), &dangling).unwrap();
        for p in [&victim, &link, &dangling] {
            assert!(open_new(p, 0o600).is_err(), "{} was opened", p.display());
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
        assert!(!dir.path().join("new-file").exists());
        let f = open_new(&dir.path().join("fresh"), 0o600).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }

    /// With CAP_NET_ADMIN the buffers get the size asked for, past `rmem_max` and
    /// `wmem_max`; without, at most those limits. The kernel reports twice the size
    /// it was given (the other half is its bookkeeping).
    #[test]
    fn socket_buffers_are_raised() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let want = 3 << 20;
        set_socket_buffers(&s, want);
        let limit = |name: &str| -> usize {
            let path = format!("/proc/sys/net/core/{name}");
            std::fs::read_to_string(&path).unwrap().trim().parse().unwrap()
        };
        let rcv = getsockopt(&s, sockopt::RcvBuf).unwrap();
        let snd = getsockopt(&s, sockopt::SndBuf).unwrap();
        assert!(
            rcv == 2 * want || rcv == 2 * want.min(limit("rmem_max")),
            "SO_RCVBUF {rcv}"
        );
        assert!(
            snd == 2 * want || snd == 2 * want.min(limit("wmem_max")),
            "SO_SNDBUF {snd}"
        );
    }
}
