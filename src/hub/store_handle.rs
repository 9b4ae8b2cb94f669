//! The hub's one way into its store. SQLite calls block (disk, and the store's mutex
//! while another call runs), so every call goes to tokio's blocking pool: no caller can
//! hold the store on a runtime worker, because there is no other way in.
//!
//! Imports nothing else of the hub.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::store::Store;

/// A cheap-to-clone handle on the hub's store, shared by every task.
#[derive(Clone)]
pub struct StoreHandle {
    pool: Arc<Pool>,
    /// How long calls take as their callers see it, for the metrics endpoint: once per
    /// store call, never per packet.
    latency: Histogram,
}

/// The store's connections: each call takes one for its whole length and gives it back,
/// so what one call does (a transaction, several statements) runs on one connection,
/// and calls run at once on as many connections as there are (one for SQLite).
///
/// Written here rather than with a pool crate (r2d2, deadpool): the members are whole
/// stores (each reconnects by itself and refuses calls inside a broken transaction), so
/// the pool's one job is a free list with a wait, which a mutex and a condition variable
/// do; a pool crate would add its own threads, timeouts and health checks that the store
/// already has.
struct Pool {
    free: Mutex<Vec<Box<dyn Store>>>,
    returned: Condvar,
    size: usize,
}

impl Pool {
    /// Waits for a free connection (on the blocking pool: waiting blocks a thread).
    fn take(self: &Arc<Self>) -> Lease {
        let mut free = self.free.lock();
        loop {
            if let Some(store) = free.pop() {
                return Lease {
                    pool: self.clone(),
                    store: Some(store),
                };
            }
            self.returned.wait(&mut free);
        }
    }
}

/// A connection taken from the pool, given back when dropped (also when the call
/// panicked: a store call that panics leaves the store usable, as before).
struct Lease {
    pool: Arc<Pool>,
    store: Option<Box<dyn Store>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.pool.free.lock().push(store);
            self.pool.returned.notify_one();
        }
    }
}

/// A store call that did not complete: it panicked, or the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the store call did not complete ({0}); see the hub's log")]
pub struct StoreUnavailable(String);

impl StoreHandle {
    pub fn new(store: impl Store + 'static) -> StoreHandle {
        Self::from_box(Box::new(store))
    }

    /// A handle on a store opened with `store::open` (either backend).
    pub fn from_box(store: Box<dyn Store>) -> StoreHandle {
        Self::from_pool(vec![store])
    }

    /// A handle on the connections `store::open_pool` opened (at least one).
    pub fn from_pool(stores: Vec<Box<dyn Store>>) -> StoreHandle {
        assert!(!stores.is_empty(), "a store pool needs a connection");
        StoreHandle {
            pool: Arc::new(Pool {
                size: stores.len(),
                free: Mutex::new(stores),
                returned: Condvar::new(),
            }),
            // 100 µs to about 3 s.
            latency: Histogram::new(exponential_buckets(0.0001, 4.0, 8)),
        }
    }

    /// How many store calls can run at once (the connections held).
    pub fn connections(&self) -> usize {
        self.pool.size
    }

    /// The store calls' durations (queue and lock wait included), in seconds.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Runs `f` with one of the store's connections on the blocking pool and returns its
    /// result. The connection is held for exactly the length of `f`: keep slow work that
    /// needs no store (password hashing) outside it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
    ) -> Result<T, StoreUnavailable> {
        let pool = self.pool.clone();
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || {
            let mut lease = pool.take();
            f(&mut **lease.store.as_mut().expect("a lease holds its store until dropped"))
        })
        .await;
        self.latency.observe(started.elapsed().as_secs_f64());
        done.map_err(|e| {
            tracing::error!(error = %e, "a store call failed to complete");
            StoreUnavailable(e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn a_panicking_store_call_is_an_error_and_leaves_the_store_usable() {
        let store = StoreHandle::new(SqliteStore::open_in_memory().unwrap());
        store.run(|s| s.set_setting("k", "1")).await.unwrap().unwrap();
        let panicked = store.run(|_| -> () { panic!("a bug in a store call") }).await;
        assert!(panicked.is_err());
        let v = store.run(|s| s.setting("k")).await.unwrap().unwrap();
        assert_eq!(v.as_deref(), Some("1"));
    }

    /// Two calls that each wait for the other to start finish only if they run at once
    /// (on a pool of one they would wait forever, which the timeout turns into a failure);
    /// a third waits for a free connection and runs after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_run_at_once_on_as_many_connections_as_the_pool_holds() {
        let pool: Vec<Box<dyn Store>> = (0..2)
            .map(|_| Box::new(SqliteStore::open_in_memory().unwrap()) as Box<dyn Store>)
            .collect();
        let store = StoreHandle::from_pool(pool);
        assert_eq!(store.connections(), 2);
        let both_started = Arc::new(std::sync::Barrier::new(2));
        let call = |store: StoreHandle, barrier: Option<Arc<std::sync::Barrier>>| async move {
            store
                .run(move |s| {
                    if let Some(b) = barrier {
                        b.wait();
                    }
                    s.set_setting("k", "1")
                })
                .await
        };
        let calls = futures_util::future::join3(
            call(store.clone(), Some(both_started.clone())),
            call(store.clone(), Some(both_started)),
            call(store.clone(), None),
        );
        let (a, b, c) = tokio::time::timeout(std::time::Duration::from_secs(10), calls)
            .await
            .expect("two calls ran at once on a pool of two");
        for r in [a, b, c] {
            r.unwrap().unwrap();
        }
    }
}
