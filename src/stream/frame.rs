//! The binary messages of a link (no I/O): one kind byte, then
//!
//! - [`KIND_CONTROL`]: bytes of the control channel's stream (Noise frames, as on TCP);
//! - [`KIND_DATAGRAMS`]: one or more relay datagrams, each a big-endian `u16` length and
//!   the datagram. Datagrams are batched so that a burst of full-size packets costs one
//!   WebSocket frame (one header, one TLS record run) rather than one each.

use bytes::{BufMut, Bytes, BytesMut};

pub const KIND_CONTROL: u8 = 1;
pub const KIND_DATAGRAMS: u8 = 2;

/// The largest message either side sends or accepts (tungstenite is told so, and
/// refuses bigger ones before buffering them). A batch is cut below it. It is also what
/// a link that has not proved itself can make the hub buffer beyond its fixed cost
/// (tungstenite reserves a frame's announced length and fills it as bytes arrive), times
/// the thousands of such links the pre-auth cap allows: 16 KiB, one TLS record, ~10
/// full-size datagrams, which still amortises the frame (measured in scripts/bench.sh).
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Why a message was refused. The link counts these and drops the message; a peer
/// that sends them is broken or hostile, never a reason to panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty message")]
    Empty,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("a datagram's length runs past the end of the message")]
    Truncated,
    #[error("a zero-length datagram")]
    EmptyDatagram,
}

/// One parsed message.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Control(&'a [u8]),
    Datagrams(Datagrams<'a>),
}

pub fn parse(msg: &[u8]) -> Result<Message<'_>, FrameError> {
    let (&kind, body) = msg.split_first().ok_or(FrameError::Empty)?;
    match kind {
        KIND_CONTROL => Ok(Message::Control(body)),
        KIND_DATAGRAMS => Ok(Message::Datagrams(Datagrams { rest: body })),
        other => Err(FrameError::UnknownKind(other)),
    }
}

/// The datagrams of a [`KIND_DATAGRAMS`] message, in order. A malformed entry ends the
/// iteration with an error; the datagrams before it are good.
#[derive(Debug, PartialEq, Eq)]
pub struct Datagrams<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let Some((len, body)) = rest.split_first_chunk::<2>() else {
            return Some(Err(FrameError::Truncated));
        };
        let len = u16::from_be_bytes(*len) as usize;
        if len == 0 {
            return Some(Err(FrameError::EmptyDatagram));
        }
        if body.len() < len {
            return Some(Err(FrameError::Truncated));
        }
        let (datagram, rest) = body.split_at(len);
        self.rest = rest;
        Some(Ok(datagram))
    }
}

/// A control message carrying `bytes`.
pub fn control(bytes: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + bytes.len());
    b.put_u8(KIND_CONTROL);
    b.put_slice(bytes);
    b.freeze()
}

/// Builds [`KIND_DATAGRAMS`] messages in one reused buffer: [`DatagramBatch::push`]
/// until it says the message is full, then [`DatagramBatch::take`].
pub struct DatagramBatch {
    buf: BytesMut,
    count: usize,
}

impl Default for DatagramBatch {
    /// Allocates nothing until the first push: a link that never carries a datagram
    /// (a stranger's, until the deadline closes it) costs no message buffer.
    fn default() -> Self {
        DatagramBatch {
            buf: BytesMut::new(),
            count: 0,
        }
    }
}

impl DatagramBatch {
    /// Room needed for `len` more bytes of datagram.
    fn fits(&self, len: usize) -> bool {
        self.buf.len().max(1) + 2 + len <= MAX_MESSAGE
    }

    /// Appends a datagram; false (and nothing appended) when the message has no room
    /// for it: take the message and push again. Empty datagrams and datagrams longer
    /// than a u16 are skipped (true): no relay datagram is either.
    pub fn push(&mut self, datagram: &[u8]) -> bool {
        if datagram.is_empty() || datagram.len() > u16::MAX as usize {
            return true;
        }
        if !self.fits(datagram.len()) {
            return false;
        }
        if self.buf.is_empty() {
            // Room for a whole message. By now the last message taken has been written
            // and dropped, so this takes its allocation back instead of making another.
            self.buf.reserve(MAX_MESSAGE);
            self.buf.put_u8(KIND_DATAGRAMS);
        }
        self.buf.put_u16(datagram.len() as u16);
        self.buf.put_slice(datagram);
        self.count += 1;
        true
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The message built so far (None if it holds no datagram); the buffer starts over.
    pub fn take(&mut self) -> Option<Bytes> {
        if self.count == 0 {
            return None;
        }
        self.count = 0;
        Some(self.buf.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_round_trip_and_kinds() {
        assert_eq!(parse(&control(b"abc")).unwrap(), Message::Control(b"abc"));
        assert_eq!(parse(&[]), Err(FrameError::Empty));
        assert_eq!(parse(&[9, 1, 2]), Err(FrameError::UnknownKind(9)));
    }

    #[test]
    fn malformed_datagram_lists_stop_with_an_error() {
        fn list(m: &[u8]) -> Vec<Result<&[u8], FrameError>> {
            match parse(m).unwrap() {
                Message::Datagrams(d) => d.collect(),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            list(&[KIND_DATAGRAMS, 0, 2, 7, 7, 0]),
            vec![Ok(&[7u8, 7][..]), Err(FrameError::Truncated)]
        );
        assert_eq!(list(&[KIND_DATAGRAMS, 0, 3, 7]), vec![Err(FrameError::Truncated)]);
        assert_eq!(list(&[KIND_DATAGRAMS, 0, 0]), vec![Err(FrameError::EmptyDatagram)]);
        assert!(list(&[KIND_DATAGRAMS]).is_empty());
    }

    #[test]
    fn a_full_batch_refuses_the_next_datagram_and_starts_over() {
        let mut b = DatagramBatch::default();
        let d = vec![1u8; 1500];
        let mut n = 0;
        while b.push(&d) {
            n += 1;
        }
        let msg = b.take().unwrap();
        assert!(msg.len() <= MAX_MESSAGE);
        assert_eq!(n, (MAX_MESSAGE - 1) / 1502);
        assert!(b.is_empty() && b.take().is_none());
        assert!(b.push(&d));
        assert_eq!(b.take().unwrap().len(), 1 + 2 + 1500);
    }

    proptest! {
        /// Whatever goes into a batch comes out of parse, in order, and parse never
        /// panics on any bytes.
        #[test]
        fn batches_round_trip(datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..3000), 0..200)) {
            let mut b = DatagramBatch::default();
            let mut out = Vec::new();
            for d in &datagrams {
                if !b.push(d) {
                    out.push(b.take().unwrap());
                    prop_assert!(b.push(d));
                }
            }
            out.extend(b.take());
            let mut back = Vec::new();
            for m in &out {
                prop_assert!(m.len() <= MAX_MESSAGE);
                match parse(m).unwrap() {
                    Message::Datagrams(ds) => for d in ds { back.push(d.unwrap().to_vec()); },
                    other => prop_assert!(false, "{other:?}"),
                }
            }
            prop_assert_eq!(back, datagrams);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(Message::Datagrams(ds)) = parse(&bytes) {
                for d in ds { let _ = d; }
            }
        }
    }
}
