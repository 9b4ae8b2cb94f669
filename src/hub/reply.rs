//! What the hub answers when it turns a connection away: the [`Refusal`] every part of
//! the hub decides, and [`refuse`], which sends it and closes the channel.
//!
//! A leaf: imports nothing else of the hub, so that the control, login and admin
//! paths can all use it without depending on each other.

use anyhow::Result;

use crate::channel::ChannelWriter;
use crate::proto::control::{Event, RefuseReason};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefuseReason,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl Refusal {
    pub fn new(reason: RefuseReason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// Too many failed logins from this address or for this account.
    pub fn rate_limited(wait_s: u64) -> Refusal {
        Refusal {
            reason: RefuseReason::RateLimited,
            message: format!("too many failed logins; try again in {wait_s} s"),
            retry_after_s: Some(wait_s),
        }
    }
}

/// Sends `r` and closes the channel.
pub async fn refuse(wr: &mut ChannelWriter, r: &Refusal) -> Result<()> {
    wr.send(&Event::Refused {
        reason: r.reason,
        message: r.message.clone(),
        retry_after_s: r.retry_after_s,
    })
    .await?;
    wr.shutdown().await;
    Ok(())
}
