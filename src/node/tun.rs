//! The seam in front of the TUN device: what the data path needs of it, implemented by
//! the real `tun-rs` device and by [`ChannelTun`], an in-memory device for tests that
//! run the data path without root (as wireguard-go's `tuntest.NewChannelTUN`).
//!
//! The batch calls keep `tun-rs`'s semantics, offload (virtio-net header) included,
//! so that the real device is a plain delegation and the packet loops, generic over
//! the device, compile to what they were. [`ChannelTun`] is a device without offload:
//! one packet per read, one write per packet, as `tun-rs` does when offload is off.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use tun_rs::{GROTable, SyncDevice};

/// What the packet loops need of a TUN device. The file descriptor is polled for
/// readability together with the UDP socket.
pub trait TunDevice: AsRawFd + Send + Sync + 'static {
    /// Reads one packet, or with offload one super-packet split into `bufs` (through
    /// `original`), each at `offset`, their lengths in `sizes`. Returns how many.
    /// `WouldBlock` when non-blocking and nothing is there.
    fn recv_multiple(
        &self,
        original: &mut [u8],
        bufs: &mut [Vec<u8>],
        sizes: &mut [usize],
        offset: usize,
    ) -> io::Result<usize>;

    /// Writes the packets `bufs[i][offset..]`; with offload `offset` includes room for
    /// the virtio-net header and `gro` coalesces flows first. Returns the bytes written.
    fn send_multiple(&self, gro: &mut GROTable, bufs: &mut [Vec<u8>], offset: usize) -> io::Result<usize>;

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()>;
}

impl TunDevice for SyncDevice {
    #[inline]
    fn recv_multiple(
        &self,
        original: &mut [u8],
        bufs: &mut [Vec<u8>],
        sizes: &mut [usize],
        offset: usize,
    ) -> io::Result<usize> {
        // The device's own (offload-aware) batch read; `DeviceImpl` is what it derefs to.
        (**self).recv_multiple(original, bufs, sizes, offset)
    }

    #[inline]
    fn send_multiple(&self, gro: &mut GROTable, bufs: &mut [Vec<u8>], offset: usize) -> io::Result<usize> {
        (**self).send_multiple(gro, bufs, offset)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        SyncDevice::set_nonblocking(self, nonblocking)
    }
}

/// An in-memory TUN without offload. Packets the "kernel" routes into the tunnel go
/// in through [`ChannelTunPeer::inject`] (a Unix datagram socket pair, so that the
/// data path can poll it like a TUN); packets the data path delivers come out of
/// [`ChannelTunPeer::delivered`] (an unbounded channel: a write never blocks and never
/// drops, so a slow test cannot lose packets).
pub struct ChannelTun {
    inbound: UnixDatagram,
    outbound: Sender<Vec<u8>>,
}

/// The test's end of a [`ChannelTun`]: the kernel's side of the interface.
pub struct ChannelTunPeer {
    inbound: UnixDatagram,
    outbound: Receiver<Vec<u8>>,
}

impl ChannelTun {
    /// A device and the handle that plays the kernel behind it.
    pub fn pair() -> io::Result<(ChannelTun, ChannelTunPeer)> {
        let (device, kernel) = UnixDatagram::pair()?;
        let (tx, rx) = mpsc::channel();
        Ok((
            ChannelTun {
                inbound: device,
                outbound: tx,
            },
            ChannelTunPeer {
                inbound: kernel,
                outbound: rx,
            },
        ))
    }
}

impl AsRawFd for ChannelTun {
    fn as_raw_fd(&self) -> RawFd {
        self.inbound.as_raw_fd()
    }
}

impl TunDevice for ChannelTun {
    fn recv_multiple(
        &self,
        _original: &mut [u8],
        bufs: &mut [Vec<u8>],
        sizes: &mut [usize],
        offset: usize,
    ) -> io::Result<usize> {
        let (Some(buf), Some(size)) = (bufs.first_mut(), sizes.first_mut()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no buffer to read into"));
        };
        let Some(room) = buf.get_mut(offset..) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "invalid offset"));
        };
        *size = self.inbound.recv(room)?;
        Ok(1)
    }

    fn send_multiple(&self, _gro: &mut GROTable, bufs: &mut [Vec<u8>], offset: usize) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs.iter() {
            let packet = buf
                .get(offset..)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid offset"))?;
            self.outbound
                .send(packet.to_vec())
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the test side of the TUN is gone"))?;
            total += packet.len();
        }
        Ok(total)
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inbound.set_nonblocking(nonblocking)
    }
}

impl ChannelTunPeer {
    /// Hands `packet` to the data path as if the kernel routed it into the tunnel.
    /// Blocks while the device's queue is full.
    pub fn inject(&self, packet: &[u8]) -> io::Result<()> {
        self.inbound.send(packet).map(|_| ())
    }

    /// The next packet the data path wrote to the device, waiting up to `timeout`.
    pub fn delivered(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.outbound.recv_timeout(timeout).ok()
    }

    /// A packet already delivered, without waiting.
    pub fn try_delivered(&self) -> Option<Vec<u8>> {
        self.outbound.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_tun_moves_packets_both_ways_without_offload() {
        let (dev, peer) = ChannelTun::pair().unwrap();
        dev.set_nonblocking(true).unwrap();
        let mut original = vec![0u8; 16];
        let mut bufs = vec![vec![0u8; 64]; 2];
        let mut sizes = vec![0usize; 2];
        let err = dev.recv_multiple(&mut original, &mut bufs, &mut sizes, 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "nothing injected yet");

        peer.inject(b"one").unwrap();
        peer.inject(b"two!").unwrap();
        assert_eq!(dev.recv_multiple(&mut original, &mut bufs, &mut sizes, 4).unwrap(), 1);
        assert_eq!(&bufs[0][4..4 + sizes[0]], b"one");
        assert_eq!(dev.recv_multiple(&mut original, &mut bufs, &mut sizes, 0).unwrap(), 1);
        assert_eq!(&bufs[0][..sizes[0]], b"two!");

        let mut out = vec![b"..abc".to_vec(), b"..de".to_vec()];
        let mut gro = GROTable::default();
        assert_eq!(dev.send_multiple(&mut gro, &mut out, 2).unwrap(), 5);
        assert_eq!(peer.delivered(Duration::from_secs(1)).unwrap(), b"abc");
        assert_eq!(peer.try_delivered().unwrap(), b"de");
        assert!(peer.try_delivered().is_none());
        assert!(dev.send_multiple(&mut gro, &mut [vec![0u8; 1]], 2).is_err());
    }
}
