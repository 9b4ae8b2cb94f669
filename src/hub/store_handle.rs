//! The hub's one way into its store. SQLite calls block (disk, and the store's mutex
//! while another call runs), so every call goes to tokio's blocking pool: no caller can
//! hold the store on a runtime worker, because there is no other way in.
//!
//! Imports nothing else of the hub.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::store::Store;

/// A cheap-to-clone handle on the hub's store, shared by every task.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<Mutex<Box<dyn Store>>>,
    /// How long calls take as their callers see it, for the metrics endpoint: once per
    /// store call, never per packet.
    latency: Histogram,
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
        StoreHandle {
            store: Arc::new(Mutex::new(store)),
            // 100 µs to about 3 s.
            latency: Histogram::new(exponential_buckets(0.0001, 4.0, 8)),
        }
    }

    /// The store calls' durations (queue and lock wait included), in seconds.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// Runs `f` with the store on the blocking pool and returns its result. The store
    /// is locked for exactly the length of `f`: keep slow work that needs no store
    /// (password hashing) outside it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
    ) -> Result<T, StoreUnavailable> {
        let store = self.store.clone();
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || {
            let mut guard = store.lock();
            f(&mut **guard)
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
}
