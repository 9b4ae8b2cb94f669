//! The control channel: Noise IK (`snow`) over one TCP connection, framed by
//! [`crate::proto::control::frame`].
//!
//! The handshake state is turned into a *stateless* transport so that the read half and
//! the write half can live in different tasks: each half keeps its own nonce, and TCP
//! keeps the order, so the nonces stay in step with the peer's. Any decrypt error
//! closes the connection (a TCP stream cannot lose or reorder a message, so an error
//! means tampering or a bug).
//!
//! Before the handshake anyone can connect, so the hub's side spends only a fixed
//! buffer on a connection until a Noise IK message 1 of valid length has arrived (see
//! [`MSG1_LEN`]), and every frame's buffer grows with the bytes that arrived, not with the
//! length the peer announced.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::keys::KeyPair;
use crate::proto::control::{self, frame, Hello, Key32, MAX_FRAME, NOISE_PATTERN, NOISE_PROLOGUE, NOISE_TAG};

/// Length of an X25519 key in Noise messages (the `25519` of [`NOISE_PATTERN`]).
const DH_LEN: usize = 32;

/// The shortest and longest JSON a [`Hello`] encodes to: `{"version":V,"role":"R"}` with V
/// of 1 to 5 digits (a u16) and R `client` or `target` (6 letters). A test checks every
/// version and role against serde_json.
const HELLO_LEN: RangeInclusive<usize> = 29..=33;

/// Length of IK message 1 (`-> e, es, s, ss`) carrying a payload of `payload` bytes: the
/// ephemeral key in clear, the static key encrypted (with its tag), the payload encrypted.
const fn ik_msg1_len(payload: usize) -> usize {
    DH_LEN + (DH_LEN + NOISE_TAG) + payload + NOISE_TAG
}

/// The only lengths the first frame of a connection may announce: IK message 1 carrying a
/// [`Hello`] (125..=129 bytes). Any other length is refused before its body is read, so a
/// connection that has not sent a valid message 1 costs the hub this many bytes at most.
pub const MSG1_LEN: RangeInclusive<usize> = ik_msg1_len(*HELLO_LEN.start())..=ik_msg1_len(*HELLO_LEN.end());
const MSG1_MAX: usize = *MSG1_LEN.end();

/// Length of IK message 2 (`<- e, ee, se`) with an empty payload.
const MSG2_LEN: usize = DH_LEN + NOISE_TAG;

/// How long one control message may take to leave before the hub gives up on the peer.
/// A message is at most 64 KiB and the socket's send buffer holds more than that, so a
/// send waits only when the peer has stopped reading (its receive window is closed); a
/// node that never reads would otherwise hold the sending task, its session and its
/// descriptor forever. 15 s is longer than any congested but live link needs to take a
/// few KiB, and shorter than the 35 s silence limit of a session.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// The first allocation for a frame's body; it grows only as bytes arrive.
const READ_CHUNK: usize = 4096;

/// A byte stream a control channel runs over: a TCP connection to the hub's control
/// port, or the control part of a WebSocket link on its HTTPS port ([`crate::stream`]).
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// Any [`ByteStream`], boxed: the channel's halves do not depend on what carries it.
pub type BoxStream = Box<dyn ByteStream>;
type OwnedReadHalf = ReadHalf<BoxStream>;
type OwnedWriteHalf = WriteHalf<BoxStream>;

fn builder() -> snow::Builder<'static> {
    snow::Builder::new(NOISE_PATTERN.parse().expect("valid Noise pattern")).prologue(NOISE_PROLOGUE)
}

/// Reads one frame. The buffer grows with the bytes received, not with the announced
/// length: a peer that announces 65,535 bytes and stalls costs [`READ_CHUNK`].
async fn read_frame(rd: &mut OwnedReadHalf) -> Result<Vec<u8>> {
    let mut len = [0u8; 2];
    rd.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    let mut body = Vec::with_capacity(len.min(READ_CHUNK));
    rd.take(len as u64).read_to_end(&mut body).await?;
    if body.len() < len {
        // The words read_exact uses: the session's log turns "early eof" into "disconnected".
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "early eof").into());
    }
    Ok(body)
}

async fn write_frame(wr: &mut OwnedWriteHalf, body: &[u8]) -> Result<()> {
    wr.write_all(&frame::encode(body)).await?;
    Ok(())
}

/// Receiving half of an established channel.
pub struct ChannelReader {
    rd: OwnedReadHalf,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
}

/// Sending half of an established channel.
pub struct ChannelWriter {
    wr: OwnedWriteHalf,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    /// See [`WRITE_TIMEOUT`].
    write_timeout: Duration,
    /// A write failed or timed out part-way: the peer's next frame boundary is lost, so
    /// nothing more may be sent.
    broken: bool,
}

impl ChannelReader {
    /// Reads and decodes the next control message. Errors end the channel.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let ciphertext = read_frame(&mut self.rd).await?;
        let mut plain = vec![0u8; ciphertext.len()];
        let n = self
            .transport
            .read_message(self.nonce, &ciphertext, &mut plain)
            .map_err(|e| anyhow!("control channel decrypt failed ({e}); closing"))?;
        self.nonce += 1;
        Ok(control::decode(&plain[..n])?)
    }
}

impl ChannelWriter {
    /// Encrypts and sends `msg`. Fails if the peer has not taken it within the write
    /// timeout ([`WRITE_TIMEOUT`] unless set otherwise); the channel is then unusable and
    /// the caller ends the session.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        if self.broken {
            bail!("control channel closed after a failed write");
        }
        let plain = control::encode(msg)?;
        let mut ciphertext = vec![0u8; plain.len() + control::NOISE_TAG];
        let n = self
            .transport
            .write_message(self.nonce, &plain, &mut ciphertext)
            .map_err(|e| anyhow!("control channel encrypt failed: {e}"))?;
        self.nonce += 1;
        let frame = frame::encode(&ciphertext[..n]);
        match tokio::time::timeout(self.write_timeout, self.wr.write_all(&frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.broken = true;
                Err(e.into())
            }
            Err(_) => {
                self.broken = true;
                bail!(
                    "the peer did not read its control channel for {:?}; closing",
                    self.write_timeout
                )
            }
        }
    }

    /// Replaces [`WRITE_TIMEOUT`] for this channel.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.write_timeout = timeout;
    }

    pub async fn shutdown(&mut self) {
        let _ = self.wr.shutdown().await;
    }
}

fn split(stream: BoxStream, transport: StatelessTransportState) -> (ChannelReader, ChannelWriter) {
    let transport = Arc::new(transport);
    let (rd, wr) = tokio::io::split(stream);
    (
        ChannelReader {
            rd,
            transport: transport.clone(),
            nonce: 0,
        },
        ChannelWriter {
            wr,
            transport,
            nonce: 0,
            write_timeout: WRITE_TIMEOUT,
            broken: false,
        },
    )
}

/// Node side: runs the IK handshake with the pinned `hub_key`. `hello` rides in
/// message 1 and must hold nothing secret (that payload is replayable).
pub async fn initiate(
    stream: BoxStream,
    local: &KeyPair,
    hub_key: &Key32,
    hello: &Hello,
) -> Result<(ChannelReader, ChannelWriter)> {
    let secret = local.secret_bytes();
    let mut hs = builder()
        .local_private_key(&secret[..])
        .remote_public_key(&hub_key.0)
        .build_initiator()?;
    let payload = serde_json::to_vec(hello)?;
    let mut msg = vec![0u8; MAX_FRAME];
    let n = hs.write_message(&payload, &mut msg)?;
    if !MSG1_LEN.contains(&n) {
        // The hub refuses any other length unread: a Hello that changed shape needs MSG1_LEN changed.
        bail!("bug: handshake message 1 is {n} bytes, outside {MSG1_LEN:?}");
    }
    let (mut rd, mut wr) = tokio::io::split(stream);
    write_frame(&mut wr, &msg[..n]).await?;
    let reply = read_frame(&mut rd).await.context(
        "the hub closed the connection during the handshake (wrong hub key in the URL, or this device is blocked)",
    )?;
    let mut buf = vec![0u8; MAX_FRAME];
    hs.read_message(&reply, &mut buf)
        .map_err(|e| anyhow!("hub handshake reply does not verify ({e}): is the hub key in the URL right?"))?;
    let transport = hs.into_stateless_transport_mode()?;
    let stream = rd.unsplit(wr);
    Ok(split(stream, transport))
}

/// Hub side, after message 1 was read: the initiator's static key and hello are known
/// but nothing was answered yet, so the caller can check the key first.
pub struct PendingAccept {
    pub remote_key: Key32,
    pub hello: Hello,
    hs: snow::HandshakeState,
    stream: BoxStream,
}

/// Hub side: reads IK message 1, trying each of the hub's keys (two during a key
/// rotation). Fails without answering if none decrypts it, and at once, unread, if the
/// frame's length is not one of [`MSG1_LEN`]. Until then the connection costs the two
/// fixed buffers below; the caller bounds the time.
pub async fn accept(mut stream: BoxStream, hub_keys: &[KeyPair]) -> Result<PendingAccept> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    if !MSG1_LEN.contains(&len) {
        bail!("first frame announces {len} bytes: not a handshake message 1 of this protocol ({MSG1_LEN:?})");
    }
    let mut buf = [0u8; MSG1_MAX];
    let msg1 = &mut buf[..len];
    stream.read_exact(msg1).await?;
    let mut payload = [0u8; MSG1_MAX];
    for key in hub_keys {
        let secret = key.secret_bytes();
        let mut hs = builder().local_private_key(&secret[..]).build_responder()?;
        if let Ok(n) = hs.read_message(msg1, &mut payload) {
            let remote: [u8; 32] = hs
                .get_remote_static()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| anyhow!("IK message 1 carried no static key"))?;
            let hello: Hello = serde_json::from_slice(&payload[..n]).context("malformed hello in handshake")?;
            return Ok(PendingAccept {
                remote_key: Key32(remote),
                hello,
                hs,
                stream,
            });
        }
    }
    bail!("handshake message 1 does not decrypt with any hub key (client has a stale or wrong hub key)")
}

impl PendingAccept {
    /// Answers with IK message 2; the channel is then established.
    pub async fn complete(mut self) -> Result<(ChannelReader, ChannelWriter)> {
        let mut msg = [0u8; MSG2_LEN];
        let n = self.hs.write_message(&[], &mut msg)?;
        self.stream.write_all(&frame::encode(&msg[..n])).await?;
        let transport = self.hs.into_stateless_transport_mode()?;
        Ok(split(self.stream, transport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::{Request, Role};
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn handshake_and_messages_both_ways_over_real_tcp() {
        let hub = KeyPair::generate();
        let node = KeyPair::generate();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub_pub = hub.public_key32();
        let node_pub = node.public_key32();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let pending = accept(Box::new(s), &[KeyPair::generate(), hub]).await.unwrap();
            assert_eq!(pending.remote_key, node_pub);
            assert_eq!(pending.hello.role, Role::Target);
            let (mut rd, mut wr) = pending.complete().await.unwrap();
            let req: Request = rd.recv().await.unwrap();
            wr.send(&req).await.unwrap();
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let hello = Hello {
            version: 1,
            role: Role::Target,
        };
        let (mut rd, mut wr) = initiate(Box::new(s), &node, &hub_pub, &hello).await.unwrap();
        wr.send(&Request::Ping { seq: 41 }).await.unwrap();
        let echo: Request = rd.recv().await.unwrap();
        assert_eq!(echo, Request::Ping { seq: 41 });
        server.await.unwrap();
    }

    #[tokio::test]
    async fn wrong_pinned_key_fails_without_answer() {
        let hub = KeyPair::generate();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            assert!(accept(Box::new(s), &[hub]).await.is_err());
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let wrong = KeyPair::generate().public_key32();
        let hello = Hello {
            version: 1,
            role: Role::Client,
        };
        assert!(initiate(Box::new(s), &KeyPair::generate(), &wrong, &hello)
            .await
            .is_err());
        server.await.unwrap();
    }

    /// Noise IK message 1 lengths: the formula matches what snow writes, and every Hello
    /// our initiator can send falls in [`MSG1_LEN`].
    #[test]
    fn msg1_length_range_matches_snow_and_every_hello() {
        // A new role must be added below (and HELLO_LEN checked): this stops compiling.
        const _: fn(Role) = |r| match r {
            Role::Client | Role::Target => (),
        };
        let (mut min, mut max) = (usize::MAX, 0);
        for role in [Role::Client, Role::Target] {
            for version in 0..=u16::MAX {
                let n = serde_json::to_vec(&Hello { version, role }).unwrap().len();
                (min, max) = (min.min(n), max.max(n));
            }
        }
        assert_eq!(min..=max, HELLO_LEN);
        let hub = KeyPair::generate().public_key32();
        for payload in [0, *HELLO_LEN.start(), *HELLO_LEN.end(), 1000] {
            let mut hs = builder()
                .local_private_key(&KeyPair::generate().secret_bytes()[..])
                .remote_public_key(&hub.0)
                .build_initiator()
                .unwrap();
            let mut msg = vec![0u8; MAX_FRAME];
            let n = hs.write_message(&vec![7u8; payload], &mut msg).unwrap();
            assert_eq!(n, ik_msg1_len(payload), "payload {payload}");
        }
        assert_eq!(MSG1_LEN, 125..=129);
    }

    /// A first frame whose length cannot be message 1 is refused at once, before its body:
    /// the old code allocated `len` bytes and waited for them (a 0xffff length and a stall
    /// held 64 KiB and a task until the deadline).
    #[tokio::test]
    async fn first_frame_of_invalid_length_is_refused_unread() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let keys = [KeyPair::generate()];
        for len in [0xffffu16, 0, 124, 130, 1000] {
            let mut peer = TcpStream::connect(addr).await.unwrap();
            peer.write_all(&len.to_be_bytes()).await.unwrap(); // then stall, holding the socket
            let (s, _) = listener.accept().await.unwrap();
            let r = tokio::time::timeout(Duration::from_secs(2), accept(Box::new(s), &keys)).await;
            let err = match r {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(_)) => panic!("length {len}: accepted"),
                Err(_) => panic!("length {len}: still waiting for the body after 2 s"),
            };
            assert!(err.contains("not a handshake message 1"), "length {len}: {err}");
            drop(peer);
        }
    }

    /// A node that completes the handshake and never reads: the hub's sends fill the
    /// socket buffers, then fail at the write timeout instead of blocking forever.
    #[tokio::test]
    async fn send_to_a_peer_that_never_reads_times_out() {
        let hub = KeyPair::generate();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hub_pub = hub.public_key32();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (_rd, mut wr) = accept(Box::new(s), &[hub]).await.unwrap().complete().await.unwrap();
            wr.set_write_timeout(Duration::from_millis(300));
            let big = Request::ChangePassword {
                account: "a".repeat(60_000),
                old_password: String::new().into(),
                new_password: String::new().into(),
            };
            let start = std::time::Instant::now();
            for sent in 0.. {
                if let Err(e) = wr.send(&big).await {
                    let again = wr.send(&Request::Ping { seq: 1 }).await;
                    return (sent, start.elapsed(), e.to_string(), again.is_err());
                }
            }
            unreachable!()
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let hello = Hello {
            version: 1,
            role: Role::Client,
        };
        let (_rd, _wr) = initiate(Box::new(s), &KeyPair::generate(), &hub_pub, &hello)
            .await
            .unwrap();
        // Never read _rd; keep it open until the server has given up.
        let (sent, elapsed, err, again_fails) = tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("send blocked for 30 s: no write timeout")
            .unwrap();
        assert!(sent > 0, "the first messages fit in the socket buffers");
        assert!(err.contains("did not read"), "{err}");
        assert!(again_fails, "a channel with a half-written frame sends nothing more");
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    }
}
