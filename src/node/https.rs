//! TEMPORARY STUB of branch `https-dial`'s module (the agreed signatures only), so that
//! branch `transport` builds before that branch lands. Replaced by the real file at
//! the merge; this one never connects.

use std::time::Duration;

use tokio_tungstenite::WebSocketStream;

use super::proxy::Proxy;
use crate::proto::url::HubUrl;

/// The WebSocket to the hub's HTTPS port.
pub type HubWebSocket = WebSocketStream<tokio::io::DuplexStream>;

#[derive(Debug)]
pub struct DialError(String);

impl DialError {
    pub fn is_proxy_refusal(&self) -> bool {
        false
    }
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DialError {}

pub async fn dial(hub: &HubUrl, proxy: Option<&Proxy>, timeout: Duration) -> Result<HubWebSocket, DialError> {
    let _ = (hub, proxy, timeout);
    Err(DialError(
        "the HTTPS transport is not merged into this build yet (stub)".into(),
    ))
}
