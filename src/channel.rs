//! The control channel: Noise IK (`snow`) over one TCP connection, framed by
//! [`crate::proto::control::frame`].
//!
//! The handshake state is turned into a *stateless* transport so that the read half and
//! the write half can live in different tasks: each half keeps its own nonce, and TCP
//! keeps the order, so the nonces stay in step with the peer's. Any decrypt error
//! closes the connection (a TCP stream cannot lose or reorder a message, so an error
//! means tampering or a bug).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use snow::StatelessTransportState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::keys::KeyPair;
use crate::proto::control::{self, frame, Hello, Key32, MAX_FRAME, NOISE_PATTERN, NOISE_PROLOGUE};

fn builder() -> snow::Builder<'static> {
    snow::Builder::new(NOISE_PATTERN.parse().expect("valid Noise pattern")).prologue(NOISE_PROLOGUE)
}

async fn read_frame(rd: &mut OwnedReadHalf) -> Result<Vec<u8>> {
    let mut len = [0u8; 2];
    rd.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    let mut body = vec![0u8; len];
    rd.read_exact(&mut body).await?;
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
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        let plain = control::encode(msg)?;
        let mut ciphertext = vec![0u8; plain.len() + control::NOISE_TAG];
        let n = self
            .transport
            .write_message(self.nonce, &plain, &mut ciphertext)
            .map_err(|e| anyhow!("control channel encrypt failed: {e}"))?;
        self.nonce += 1;
        write_frame(&mut self.wr, &ciphertext[..n]).await
    }

    pub async fn shutdown(&mut self) {
        let _ = self.wr.shutdown().await;
    }
}

fn split(stream: TcpStream, transport: StatelessTransportState) -> (ChannelReader, ChannelWriter) {
    let transport = Arc::new(transport);
    let (rd, wr) = stream.into_split();
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
        },
    )
}

/// Node side: runs the IK handshake with the pinned `hub_key`. `hello` rides in
/// message 1 and must hold nothing secret (that payload is replayable).
pub async fn initiate(
    stream: TcpStream,
    local: &KeyPair,
    hub_key: &Key32,
    hello: &Hello,
) -> Result<(ChannelReader, ChannelWriter)> {
    stream.set_nodelay(true)?;
    let secret = local.secret_bytes();
    let mut hs = builder()
        .local_private_key(&secret[..])
        .remote_public_key(&hub_key.0)
        .build_initiator()?;
    let payload = serde_json::to_vec(hello)?;
    let mut msg = vec![0u8; MAX_FRAME];
    let n = hs.write_message(&payload, &mut msg)?;
    let (mut rd, mut wr) = stream.into_split();
    write_frame(&mut wr, &msg[..n]).await?;
    let reply = read_frame(&mut rd).await.context(
        "the hub closed the connection during the handshake (wrong hub key in the URL, or this device is blocked)",
    )?;
    let mut buf = vec![0u8; MAX_FRAME];
    hs.read_message(&reply, &mut buf)
        .map_err(|e| anyhow!("hub handshake reply does not verify ({e}): is the hub key in the URL right?"))?;
    let transport = hs.into_stateless_transport_mode()?;
    let stream = rd.reunite(wr).expect("halves of one stream");
    Ok(split(stream, transport))
}

/// Hub side, after message 1 was read: the initiator's static key and hello are known
/// but nothing was answered yet, so the caller can check the key first.
pub struct PendingAccept {
    pub remote_key: Key32,
    pub hello: Hello,
    hs: snow::HandshakeState,
    stream: TcpStream,
}

/// Hub side: reads IK message 1, trying each of the hub's keys (two during a key
/// rotation). Fails without answering if none decrypts it.
pub async fn accept(mut stream: TcpStream, hub_keys: &[KeyPair]) -> Result<PendingAccept> {
    stream.set_nodelay(true)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut msg1 = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg1).await?;
    let mut payload = vec![0u8; MAX_FRAME];
    for key in hub_keys {
        let secret = key.secret_bytes();
        let mut hs = builder().local_private_key(&secret[..]).build_responder()?;
        if let Ok(n) = hs.read_message(&msg1, &mut payload) {
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
        let mut msg = vec![0u8; MAX_FRAME];
        let n = self.hs.write_message(&[], &mut msg)?;
        self.stream.write_all(&frame::encode(&msg[..n])).await?;
        let transport = self.hs.into_stateless_transport_mode()?;
        Ok(split(self.stream, transport))
    }

    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.peer_addr().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::{Request, Role};
    use tokio::net::TcpListener;

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
            let pending = accept(s, &[KeyPair::generate(), hub]).await.unwrap();
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
        let (mut rd, mut wr) = initiate(s, &node, &hub_pub, &hello).await.unwrap();
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
            assert!(accept(s, &[hub]).await.is_err());
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let wrong = KeyPair::generate().public_key32();
        let hello = Hello {
            version: 1,
            role: Role::Client,
        };
        assert!(initiate(s, &KeyPair::generate(), &wrong, &hello).await.is_err());
        server.await.unwrap();
    }
}
