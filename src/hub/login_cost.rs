//! What password checks may cost the hub: Argon2 (about 19 MiB and tens of milliseconds
//! of one core per hash, on purpose) runs behind a gate with one permit per core and a
//! short queue, so no number of logins can take more than the machine's cores and
//! `cores × 19 MiB` of memory (issue 11, item 2; review finding C3). A login that finds
//! the queue full is answered `RateLimited` at once, with no hash: it is cheaper to try
//! again than to wait behind a flood.
//!
//! [`LoginGuards`] bundles what every password check answers to: the limiter, this
//! gate, and the refusal log.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use super::limiter::LoginLimiter;
use super::refusals::RefusalLog;

/// What bounds the cost of logins: guesses ([`LoginLimiter`]), Argon2's CPU and memory
/// ([`HashGate`]), and the audit rows and log lines of refusals ([`RefusalLog`]).
#[derive(Default)]
pub struct LoginGuards {
    pub limiter: LoginLimiter,
    pub gate: HashGate,
    pub refusals: RefusalLog,
    /// Node logins by result, for the metrics endpoint.
    pub results: super::metrics::LoginResults,
}

/// Seconds a caller turned away by a full queue is told to wait.
pub const BUSY_RETRY_S: u64 = 1;

/// Why a hash did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateError {
    /// Every permit is taken and the queue is full.
    Busy,
    /// The hashing task panicked or the runtime is stopping.
    Failed,
}

/// Runs Argon2 work on the blocking pool, at most `permits` at a time, with at most
/// `queue` more waiting.
pub struct HashGate {
    permits: Semaphore,
    /// Running plus waiting.
    admitted: AtomicUsize,
    limit: usize,
}

impl Default for HashGate {
    /// One permit per core, and a queue twice as long.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashGate::new(cores, 2 * cores)
    }
}

/// Takes a caller's admission back when it leaves, however it leaves (cancelled too).
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    pub fn new(permits: usize, queue: usize) -> HashGate {
        let permits = permits.max(1);
        HashGate {
            permits: Semaphore::new(permits),
            admitted: AtomicUsize::new(0),
            limit: permits + queue,
        }
    }

    /// Runs `f` (password hashing: no lock may be held) on the blocking pool when a
    /// permit is free; refuses at once when `permits + queue` callers are already in.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, GateError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(GateError::Busy);
        }
        let _admitted = Admitted(&self.admitted);
        let _permit = self.permits.acquire().await.map_err(|_| GateError::Failed)?;
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            tracing::error!(error = %e, "password hashing did not complete");
            GateError::Failed
        })
    }

    /// Callers running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Twice the permits wait, the rest are refused at once; no more than the permits
    /// run together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once() {
        let gate = Arc::new(HashGate::new(2, 4));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                gate.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut ran = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ran += 1,
                Err(GateError::Busy) => busy += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!((2..=6).contains(&ran), "ran {ran}");
        assert_eq!(ran + busy, 50);
        assert!(peak.load(Ordering::SeqCst) <= 2);
        assert_eq!(gate.in_flight(), 0);
    }
}
