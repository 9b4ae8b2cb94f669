//! The TUN interface and the routes through it.
//!
//! The interface is created without `persist`, so it disappears (with its routes)
//! when the process that holds it exits, however it exits. Routes are managed with
//! iproute2's `ip` (tun-rs manages addresses but not routes).

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{bail, Context, Result};
use tun_rs::{DeviceBuilder, SyncDevice};

/// Default MTU: 1500 minus IPv4 (20), UDP (8), relay header (8) and WireGuard (32),
/// rounded down as WireGuard does. A hub reached over IPv6 needs 20 bytes less.
pub const DEFAULT_MTU: u16 = 1420;

/// Packets the kernel may queue on the interface for our reader (the TUN ring). The
/// kernel's default for TUN is 500; an application that sends in bursts (UDP, or any
/// sender while our reader waits for a CPU) overflows it and the packets are dropped
/// before we see them. Measured with 64-byte UDP at full rate through the netns test
/// topology on 2 cores (2–3 runs each), packets/s received: 500 → 150–158 k,
/// 1000 → 162–170 k, 2000 → 179–188 k, 4000 → 168–182 k.
/// TCP is unaffected: its window bounds what it queues.
pub const TUN_TX_QUEUE_LEN: u32 = 2000;

/// Creates and brings up the TUN `name` with `addr/prefix`. With `offload`, the kernel
/// exchanges TSO/GRO super-packets with a virtio-net header (falls back to plain
/// packets if the kernel refuses).
pub fn create_tun(name: &str, addr: Ipv4Addr, prefix: u8, mtu: u16, offload: bool) -> Result<SyncDevice> {
    let build = |offload: bool| {
        DeviceBuilder::new()
            .name(name)
            .ipv4(addr, prefix, None)
            .mtu(mtu)
            .offload(offload)
            .with(|linux| {
                linux.tx_queue_len(TUN_TX_QUEUE_LEN);
            })
            .build_sync()
    };
    let dev = build(offload)
        .or_else(|e| {
            if offload {
                tracing::warn!(error = %e, "TUN offload refused; using plain packets");
                build(false)
            } else {
                Err(e)
            }
        })
        .with_context(|| {
            format!("cannot create the TUN interface {name} (need root or CAP_NET_ADMIN, and /dev/net/tun)")
        })?;
    Ok(dev)
}

/// Replaces the interface's address (the hub gave a different one after a reconnect).
pub fn set_address(dev: &SyncDevice, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    dev.set_network_address(addr, prefix, None)
        .context("cannot change the TUN address")?;
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Routes `dst/32` into the tunnel (one route per reachable target: split tunnel).
pub fn add_host_route(iface: &str, dst: Ipv4Addr) -> Result<()> {
    ip(&["route", "replace", &format!("{dst}/32"), "dev", iface])
}

pub fn remove_host_route(iface: &str, dst: Ipv4Addr) -> Result<()> {
    ip(&["route", "del", &format!("{dst}/32"), "dev", iface])
}
