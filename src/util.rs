//! Small system helpers shared by the roles.

use std::os::fd::AsRawFd;

/// This machine's host name, or `unnamed`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unnamed".to_string())
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Asks for big socket buffers so that bursts are not dropped at the receiver (the
/// 208 KiB default is what caps boringtun and wireguard-go). As root `SO_*BUFFORCE`
/// goes past `net.core.rmem_max`; otherwise the kernel clamps the plain request.
pub fn set_socket_buffers(socket: &impl AsRawFd, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let fd = socket.as_raw_fd();
    let val = bytes.min(i32::MAX as usize) as libc::c_int;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // SAFETY: setsockopt with a valid fd and a pointer to a live c_int of the given size.
        let set = |opt| unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &val as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set(force) != 0 {
            set(plain);
        }
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
pub fn write_atomic(path: &std::path::Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
