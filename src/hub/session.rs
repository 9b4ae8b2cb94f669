//! A live session's connection after login: answers the node's pings and relays the
//! registry's pushes until either side ends it.

use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::channel::{ChannelReader, ChannelWriter};
use crate::proto::control::{Event, Request};

/// A node that says nothing for this long is considered gone (nodes ping every 10 s).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(35);

/// Relays pushes to the node and answers its pings until either side ends the session.
/// Returns why it ended.
pub(super) async fn run(
    mut rd: ChannelReader,
    wr: &mut ChannelWriter,
    events: &mut mpsc::UnboundedReceiver<Event>,
) -> String {
    // Reading is not cancel-safe (a frame may be half read), so it gets its own task.
    let (req_tx, mut requests) = mpsc::channel::<Result<Request>>(16);
    let reader = tokio::spawn(async move {
        loop {
            let r = rd.recv::<Request>().await;
            let end = r.is_err();
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
                Some(Ok(Request::Ping { seq })) => {
                    silence.as_mut().reset(Instant::now() + SILENCE_LIMIT);
                    if wr.send(&Event::Pong { seq }).await.is_err() {
                        break "connection lost".to_string();
                    }
                }
                Some(Ok(other)) => {
                    silence.as_mut().reset(Instant::now() + SILENCE_LIMIT);
                    tracing::debug!(?other, "ignoring unexpected request in session");
                }
                Some(Err(e)) => break format!("closed by node ({e})").replace("early eof", "disconnected"),
                None => break "closed by node".to_string(),
            },
            ev = events.recv() => match ev {
                Some(ev) => {
                    let kicked = matches!(ev, Event::Kick { .. });
                    if wr.send(&ev).await.is_err() {
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
