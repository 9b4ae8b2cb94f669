//! This hub among the hubs that share one store (issue 15).
//!
//! Every hub beats a heartbeat into the store. Exactly one hub at a time holds the
//! `jobs` lease and runs what must not run twice: the contract calendar (suspensions,
//! renewals, terminations that fall due), the notice outbox (an e-mail sent twice is a
//! defect), and closing the sessions of a hub that stopped beating (it died without
//! closing them, and its nodes have moved to other hubs). A hub that loses the store
//! loses the lease with it: another takes it over when the lease expires.
//!
//! A hub alone on its SQLite file is a cluster of one: it takes the lease at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::store_handle::StoreHandle;

/// How often a hub beats its heartbeat and renews (or tries to take) the jobs lease.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long the jobs lease lasts unless renewed: a dead holder's jobs stop for at most
/// this long before another hub takes them over.
pub const JOBS_LEASE_TTL: i64 = 10;
/// A hub silent for longer than this is taken for dead and its open sessions are closed.
/// Five missed heartbeats: a store that answers slowly for a moment closes nothing.
pub const SILENT_AFTER: i64 = 10;

const JOBS_LEASE: &str = "jobs";

/// This hub's name in the shared store and whether it holds the jobs lease now.
#[derive(Debug, Clone)]
pub struct Membership {
    name: Arc<str>,
    holds_jobs: Arc<AtomicBool>,
    /// Since when every beat reached the store (None after a failed one). Only a hub
    /// that has reached the store for longer than [`SILENT_AFTER`] may call another hub
    /// silent: after an outage of the store every hub's heartbeat is old, and the live
    /// ones need a beat's time to say so.
    reachable_since: Arc<parking_lot::Mutex<Option<std::time::Instant>>>,
}

impl Membership {
    pub fn new(name: &str) -> Membership {
        Membership {
            name: name.into(),
            holds_jobs: Arc::new(AtomicBool::new(false)),
            reachable_since: Default::default(),
        }
    }

    /// The name sessions, heartbeats and leases are recorded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True while this hub holds the jobs lease: only then may it run the contract
    /// calendar or send notices.
    pub fn holds_jobs(&self) -> bool {
        self.holds_jobs.load(Ordering::Acquire)
    }

    /// One beat: the heartbeat, the lease, and (as the lease holder) the sessions of
    /// silent hubs closed. Errors are logged: a hub that cannot reach its store keeps
    /// relaying the sessions it has, and gives up the lease (it cannot renew it).
    pub async fn beat(&self, store: &StoreHandle) {
        let name = self.name.clone();
        let may_judge = self
            .reachable_since
            .lock()
            .is_some_and(|t| t.elapsed() > Duration::from_secs(SILENT_AFTER as u64) + HEARTBEAT);
        let outcome = store
            .run(move |s| -> crate::store::StoreResult<(bool, usize)> {
                let now = crate::store::now();
                s.hub_heartbeat(&name, now)?;
                let holds = s.lease_take(JOBS_LEASE, &name, now, JOBS_LEASE_TTL)?;
                let closed = if holds && may_judge {
                    s.sessions_close_of_silent_hubs("its hub stopped answering", now - SILENT_AFTER)?
                } else {
                    0
                };
                Ok((holds, closed))
            })
            .await;
        let reached = matches!(outcome, Ok(Ok(_)));
        {
            let mut since = self.reachable_since.lock();
            match (reached, *since) {
                (true, None) => *since = Some(std::time::Instant::now()),
                (false, _) => *since = None,
                (true, Some(_)) => {}
            }
        }
        let holds = match outcome {
            Ok(Ok((holds, closed))) => {
                if closed > 0 {
                    tracing::warn!(closed, "closed the sessions of a hub that stopped answering");
                }
                holds
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot beat the hub's heartbeat into the store");
                false
            }
            Err(_) => false, // logged by the store handle
        };
        let held = self.holds_jobs.swap(holds, Ordering::AcqRel);
        if held != holds {
            if holds {
                tracing::info!(hub = %self.name, "this hub now runs the contract calendar and the notice outbox");
            } else {
                tracing::info!(hub = %self.name, "this hub no longer runs the contract calendar and the notice outbox");
            }
        }
    }

    /// Beats until the process ends.
    pub async fn run(self, store: StoreHandle) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.beat(&store).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn of_two_hubs_on_one_store_exactly_one_runs_the_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let a_store = StoreHandle::new(SqliteStore::open(&path).unwrap());
        let b_store = StoreHandle::new(SqliteStore::open(&path).unwrap());
        let (a, b) = (Membership::new("hub-a"), Membership::new("hub-b"));
        a.beat(&a_store).await;
        b.beat(&b_store).await;
        assert!(a.holds_jobs());
        assert!(!b.holds_jobs());
        a.beat(&a_store).await;
        b.beat(&b_store).await;
        assert!(a.holds_jobs(), "the holder renews its lease");
        assert!(!b.holds_jobs());
    }
}
