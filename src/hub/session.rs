//! A live session's connection after login: answers the node's pings and relays the
//! registry's pushes until either side ends it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::registry::Push;
use crate::channel::{ChannelReader, ChannelWriter};
use crate::proto::control::{Event, Request};

/// A node that says nothing for this long is considered gone (nodes ping every 10 s).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(35);

/// What the reader task passes on of a node's requests.
enum FromNode {
    Ping(u64),
    /// Anything else: it only shows the node is alive.
    Other,
    Closed(String),
}

/// Relays pushes to the node and answers its pings until either side ends the session.
/// Returns why it ended.
pub(super) async fn run(
    mut rd: ChannelReader,
    wr: &mut ChannelWriter,
    events: &mut mpsc::UnboundedReceiver<Push>,
) -> String {
    // Reading is not cancel-safe (a frame may be half read), so it gets its own task. It
    // passes on only what the session needs: a small item, as the channel allocates 32
    // slots at once (a `Request` is a few hundred bytes; issue 13).
    let (req_tx, mut requests) = mpsc::channel::<FromNode>(16);
    let reader = tokio::spawn(async move {
        loop {
            let r = match rd.recv::<Request>().await {
                Ok(Request::Ping { seq }) => FromNode::Ping(seq),
                Ok(other) => {
                    tracing::debug!(?other, "ignoring unexpected request in session");
                    FromNode::Other
                }
                Err(e) => FromNode::Closed(format!("closed by node ({e})").replace("early eof", "disconnected")),
            };
            let end = matches!(r, FromNode::Closed(_));
            if req_tx.send(r).await.is_err() || end {
                break;
            }
        }
    });
    // One timer, moved on by each message, that fires only when the node has been silent
    // for the whole limit: not a tick every few seconds for each of 10,000 idle
    // sessions (issue 13).
    let silence = tokio::time::sleep(SILENCE_LIMIT);
    tokio::pin!(silence);
    let reason = loop {
        tokio::select! {
            req = requests.recv() => match req {
                Some(FromNode::Ping(seq)) => {
                    silence.as_mut().reset(Instant::now() + SILENCE_LIMIT);
                    if wr.send(&Event::Pong { seq }).await.is_err() {
                        break "connection lost".to_string();
                    }
                }
                Some(FromNode::Other) => silence.as_mut().reset(Instant::now() + SILENCE_LIMIT),
                Some(FromNode::Closed(why)) => break why,
                None => break "closed by node".to_string(),
            },
            ev = events.recv() => match ev {
                Some(ev) => {
                    let kicked = matches!(*ev, Event::Kick { .. });
                    if wr.send(&*ev).await.is_err() {
                        break "connection lost".to_string();
                    }
                    if kicked {
                        break "kicked".to_string();
                    }
                }
                None => break "hub shutting down".to_string(),
            },
            _ = &mut silence => break format!("silent for {} s", SILENCE_LIMIT.as_secs()),
        }
    };
    reader.abort();
    let _ = reader.await;
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: the two channels of every live session allocate 32 items each at once.
    /// With `Event` and `anyhow::Result<Request>` as items (before), that was several KiB
    /// per idle session; the items are now a pointer and a short enum.
    #[test]
    fn channel_items_are_small() {
        assert!(std::mem::size_of::<Event>() > 64, "the reason for boxing");
        assert_eq!(std::mem::size_of::<Push>(), std::mem::size_of::<usize>());
        assert!(std::mem::size_of::<FromNode>() <= 32);
    }
}
