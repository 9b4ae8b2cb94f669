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
/// How long a hub's claim on its name lasts unless renewed (every beat).
pub const NAME_LEASE_TTL: i64 = 10;

/// The lease that holds a hub's name: one process at a time may run as `name`, since a
/// hub starting closes the sessions left open under its name.
fn name_lease(name: &str) -> String {
    format!("name:{name}")
}

/// This process, as the holder of its name's lease: host, process id and a random part
/// (a restarted container may get the same process id).
fn instance_id() -> String {
    format!(
        "{}:{}:{:016x}",
        crate::util::hostname(),
        std::process::id(),
        rand::random::<u64>()
    )
}

/// Whether the holder `holder` is a process of this host that no longer runs, or an
/// earlier life of this very process id (a container restarted): its name may be taken
/// at once, without waiting for its lease to run out.
fn holder_is_gone(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (_random, pid, host) = (parts.next(), parts.next(), parts.next());
    let (Some(pid), Some(host)) = (pid.and_then(|p| p.parse::<i32>().ok()), host) else {
        return false;
    };
    if host != crate::util::hostname() {
        return false;
    }
    if pid as u32 == std::process::id() {
        return true;
    }
    // Signal 0 checks that the process exists; ESRCH: it does not.
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Claims this hub's name in the store before it closes any session left under it: an
/// error when another live hub process runs under the same name (two hubs sharing a name
/// would close each other's sessions and mix their heartbeats). A holder that died on
/// this host is replaced at once; one elsewhere after its lease runs out
/// ([`NAME_LEASE_TTL`], waited for with a log line).
/// `wait`: how long to wait for a live holder's lease to run out before giving up.
pub async fn claim_name(store: &StoreHandle, name: &str, wait: Duration) -> anyhow::Result<String> {
    let instance = instance_id();
    let lease = name_lease(name);
    let deadline = std::time::Instant::now() + wait;
    let mut said = false;
    loop {
        let (lease_c, instance_c) = (lease.clone(), instance.clone());
        let (taken, holder) = store
            .run(move |s| -> crate::store::StoreResult<(bool, Option<String>)> {
                if s.lease_take(&lease_c, &instance_c, crate::store::now(), NAME_LEASE_TTL)? {
                    return Ok((true, None));
                }
                let holder = s.lease_holder(&lease_c)?;
                if let Some(h) = holder.as_deref().filter(|h| holder_is_gone(h)) {
                    s.lease_release(&lease_c, h)?;
                    return Ok((
                        s.lease_take(&lease_c, &instance_c, crate::store::now(), NAME_LEASE_TTL)?,
                        None,
                    ));
                }
                Ok((false, holder))
            })
            .await??;
        if taken {
            return Ok(instance);
        }
        let holder = holder.unwrap_or_default();
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "another hub named {name:?} is running on this store ({holder} renewed the name within \
                 the last {NAME_LEASE_TTL} s); give each hub its own name with --name (MCVPN_HUB_NAME)"
            );
        }
        if !said {
            tracing::warn!(hub = name, %holder, "another process holds this hub's name; waiting for its lease to run out");
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// This hub's name in the shared store and whether it holds the jobs lease now.
#[derive(Debug, Clone)]
pub struct Membership {
    name: Arc<str>,
    /// Where the other hubs send this hub's relay datagrams ('' = not in the mesh).
    relay_addr: Arc<str>,
    holds_jobs: Arc<AtomicBool>,
    /// This process's hold on the name (see [`claim_name`]), renewed every beat.
    instance: Arc<parking_lot::Mutex<Option<String>>>,
    /// Since when every beat reached the store (None after a failed one). Only a hub
    /// that has reached the store for longer than [`SILENT_AFTER`] may call another hub
    /// silent: after an outage of the store every hub's heartbeat is old, and the live
    /// ones need a beat's time to say so.
    reachable_since: Arc<parking_lot::Mutex<Option<std::time::Instant>>>,
}

impl Membership {
    pub fn new(name: &str, relay_addr: Option<std::net::SocketAddr>) -> Membership {
        Membership {
            name: name.into(),
            relay_addr: relay_addr.map(|a| a.to_string()).unwrap_or_default().into(),
            holds_jobs: Arc::new(AtomicBool::new(false)),
            instance: Default::default(),
            reachable_since: Default::default(),
        }
    }

    /// Claims the name (see [`claim_name`]); the beats renew the claim from then on.
    pub async fn claim(&self, store: &StoreHandle) -> anyhow::Result<()> {
        // The lease, and a beat's slack for a holder whose last renewal is on its way.
        let wait = Duration::from_secs(NAME_LEASE_TTL as u64) + HEARTBEAT;
        let instance = claim_name(store, &self.name, wait).await?;
        *self.instance.lock() = Some(instance);
        Ok(())
    }

    /// Gives the name up as the hub stops, so its next start need not wait.
    pub async fn release(&self, store: &StoreHandle) {
        let Some(instance) = self.instance.lock().take() else {
            return;
        };
        let lease = name_lease(&self.name);
        let _ = store.run(move |s| s.lease_release(&lease, &instance)).await;
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
        let (name, relay_addr) = (self.name.clone(), self.relay_addr.clone());
        let instance = self.instance.lock().clone();
        let may_judge = self
            .reachable_since
            .lock()
            .is_some_and(|t| t.elapsed() > Duration::from_secs(SILENT_AFTER as u64) + HEARTBEAT);
        let outcome = store
            .run(move |s| -> crate::store::StoreResult<(bool, usize)> {
                let now = crate::store::now();
                s.hub_heartbeat(&name, now, &relay_addr)?;
                if let Some(instance) = &instance {
                    if !s.lease_take(&name_lease(&name), instance, now, NAME_LEASE_TTL)? {
                        tracing::error!(hub = %name, "another hub process took this hub's name (this one lost the store for too long); give each hub its own name");
                    }
                }
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
        let (a, b) = (Membership::new("hub-a", None), Membership::new("hub-b", None));
        a.beat(&a_store).await;
        b.beat(&b_store).await;
        assert!(a.holds_jobs());
        assert!(!b.holds_jobs());
        a.beat(&a_store).await;
        b.beat(&b_store).await;
        assert!(a.holds_jobs(), "the holder renews its lease");
        assert!(!b.holds_jobs());
    }

    /// A process id that runs on no machine (above Linux's largest, 2^22).
    const NO_SUCH_PID: u32 = 5_000_000;

    #[tokio::test]
    async fn a_hub_refuses_a_name_a_live_hub_holds_and_takes_one_a_dead_hub_held() {
        let store = StoreHandle::new(SqliteStore::open_in_memory().unwrap());
        let host = crate::util::hostname();
        let hold = |holder: String| {
            let store = store.clone();
            async move {
                store
                    .run(move |s| s.lease_take(&name_lease("hub-a"), &holder, crate::store::now(), NAME_LEASE_TTL))
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        // Held by a live process (init) on this host, and by one on another host.
        for live in [format!("{host}:1:00"), "elsewhere:4242:00".to_string()] {
            let fresh = StoreHandle::new(SqliteStore::open_in_memory().unwrap());
            fresh
                .run({
                    let live = live.clone();
                    move |s| s.lease_take(&name_lease("hub-a"), &live, crate::store::now(), NAME_LEASE_TTL)
                })
                .await
                .unwrap()
                .unwrap();
            let err = claim_name(&fresh, "hub-a", Duration::from_millis(200))
                .await
                .unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("another hub named \"hub-a\"") && msg.contains("--name"),
                "{msg}"
            );
        }
        // Held by a process of this host that has gone: taken at once.
        assert!(hold(format!("{host}:{NO_SUCH_PID}:00")).await);
        let t0 = std::time::Instant::now();
        let mine = claim_name(&store, "hub-a", Duration::from_secs(30)).await.unwrap();
        assert!(t0.elapsed() < Duration::from_secs(1));
        // Released as the hub stops: the next one takes it at once, whoever it is.
        let m = Membership::new("hub-a", None);
        *m.instance.lock() = Some(mine);
        m.release(&store).await;
        assert!(hold("elsewhere:4242:00".to_string()).await);
    }

    #[test]
    fn holders_read_back() {
        let host = crate::util::hostname();
        assert!(holder_is_gone(&format!("{host}:{NO_SUCH_PID}:ab")));
        assert!(
            holder_is_gone(&format!("{host}:{}:ab", std::process::id())),
            "an earlier life of this pid"
        );
        assert!(!holder_is_gone(&format!("{host}:1:ab")), "init runs");
        assert!(
            !holder_is_gone(&format!("other-{host}:{NO_SUCH_PID}:ab")),
            "another host's: cannot tell"
        );
        assert!(!holder_is_gone("garbage"));
        assert!(instance_id().starts_with(&format!("{host}:{}:", std::process::id())));
    }
}
