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
    for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
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
