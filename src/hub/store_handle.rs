//! The hub's one way into its store. SQLite calls block (disk, and the store's mutex
//! while another call runs), so every call goes to tokio's blocking pool: no caller can
//! hold the store on a runtime worker, because there is no other way in.
//!
//! Imports nothing else of the hub.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::store::Store;

/// A cheap-to-clone handle on the hub's store, shared by every task.
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<Mutex<Box<dyn Store>>>,
}

/// A store call that did not complete: it panicked, or the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the store call did not complete ({0}); see the hub's log")]
pub struct StoreUnavailable(String);

impl StoreHandle {
    pub fn new(store: impl Store + 'static) -> StoreHandle {
        StoreHandle {
            store: Arc::new(Mutex::new(Box::new(store))),
        }
    }

    /// Runs `f` with the store on the blocking pool and returns its result. The store
    /// is locked for exactly the length of `f`: keep slow work that needs no store
    /// (password hashing) outside it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
    ) -> Result<T, StoreUnavailable> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock();
            f(&mut **guard)
        })
        .await
        .map_err(|e| {
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
