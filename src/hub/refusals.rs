//! Refused logins, counted in memory and written to the audit log once a minute: one
//! row per (action, source, reason) with the count, instead of a row and a log line per
//! refusal (issue 11, item 5; review finding C2: a loop of refused logins filled the
//! disk). Memory is bounded: at most [`MAX_BUCKETS`] buckets a minute, further sources
//! share one overflow bucket; each bucket remembers at most [`SAMPLE_ACCOUNTS`] of the
//! account names it saw (names are checked, at most 64 printable bytes, before they get
//! here).
//!
//! The audit table is append-only (a trigger refuses updates), so aggregation happens
//! here rather than by an UPSERT.
//!
//! A leaf: imports nothing else of the hub but the store handle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;

use super::store_handle::StoreHandle;
use crate::proto::control::RefuseReason;
use crate::store::AuditEntry;

/// How often the counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);
/// Most (action, source, reason) buckets held between two flushes.
pub const MAX_BUCKETS: usize = 4096;
/// Account names remembered per bucket, for the row's detail.
pub const SAMPLE_ACCOUNTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BucketKey {
    action: &'static str,
    /// None: the overflow bucket.
    source: Option<IpAddr>,
    reason: RefuseReason,
}

#[derive(Debug, Default)]
struct Bucket {
    count: u64,
    accounts: Vec<String>,
    /// Refusals that named an account not in `accounts`, or none.
    others: u64,
    /// What the first refusal said (role, credential, the hub's message).
    first_detail: String,
}

/// The refusals since the last flush.
#[derive(Default)]
pub struct RefusalLog {
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

/// One bucket as written.
struct Row {
    action: &'static str,
    source: String,
    reason: RefuseReason,
    count: u64,
    accounts: Vec<String>,
    others: u64,
    first_detail: String,
}

impl RefusalLog {
    /// Counts one refusal. `detail` is kept only for the first of its bucket.
    pub fn record(
        &self,
        action: &'static str,
        source: IpAddr,
        reason: RefuseReason,
        account: Option<&str>,
        detail: impl FnOnce() -> String,
    ) {
        let mut buckets = self.buckets.lock();
        let mut key = BucketKey {
            action,
            source: Some(source),
            reason,
        };
        // One place stays free for the overflow bucket.
        if !buckets.contains_key(&key) && buckets.len() >= MAX_BUCKETS - 1 {
            key.source = None;
        }
        let b = buckets.entry(key).or_default();
        if b.count == 0 {
            b.first_detail = detail();
        }
        b.count += 1;
        match account {
            Some(a) if b.accounts.iter().any(|x| x == a) => {}
            Some(a) if b.accounts.len() < SAMPLE_ACCOUNTS => b.accounts.push(a.to_string()),
            _ => b.others += 1,
        }
    }

    /// Refusals counted and not yet written.
    pub fn pending(&self) -> u64 {
        self.buckets.lock().values().map(|b| b.count).sum()
    }

    fn take(&self) -> Vec<Row> {
        let buckets = std::mem::take(&mut *self.buckets.lock());
        let mut rows: Vec<Row> = buckets
            .into_iter()
            .map(|(k, b)| Row {
                action: k.action,
                source: k
                    .source
                    .map_or_else(|| "(other sources)".to_string(), |s| s.to_string()),
                reason: k.reason,
                count: b.count,
                accounts: b.accounts,
                others: b.others,
                first_detail: b.first_detail,
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.count));
        rows
    }

    /// Writes one audit row per bucket and empties them. A row names the contract when
    /// every refusal in it named accounts of that one contract.
    pub async fn flush(&self, store: &StoreHandle) {
        let rows = self.take();
        if rows.is_empty() {
            return;
        }
        for r in &rows {
            tracing::info!(action = r.action, source = %r.source, reason = ?r.reason, count = r.count,
                accounts = ?r.accounts, "logins refused in the last minute");
        }
        let _ = store
            .run(move |s| {
                for r in rows {
                    let contract_id = if r.others == 0 && !r.accounts.is_empty() {
                        let ids: Vec<Option<i64>> = r
                            .accounts
                            .iter()
                            .map(|a| s.account_by_name(a).ok().flatten().map(|a| a.contract_id))
                            .collect();
                        ids.iter().all(|id| *id == ids[0]).then_some(ids[0]).flatten()
                    } else {
                        None
                    };
                    let mut accounts = r.accounts.join(", ");
                    if r.others > 0 {
                        accounts.push_str(&format!(
                            "{}{} more",
                            if accounts.is_empty() { "" } else { " + " },
                            r.others
                        ));
                    }
                    let single = (r.accounts.len() == 1 && r.others == 0).then(|| r.accounts[0].clone());
                    let detail = format!(
                        "{} × {:?} (accounts: {accounts}); first: {}",
                        r.count, r.reason, r.first_detail
                    );
                    if let Err(e) = s.audit(&AuditEntry {
                        actor: single.as_deref().unwrap_or("unknown"),
                        action: r.action,
                        contract_id,
                        account: single.as_deref(),
                        source: Some(&r.source),
                        detail: &detail,
                    }) {
                        tracing::error!(error = %e, "could not write refused logins to the audit log");
                    }
                }
            })
            .await;
    }

    /// Flushes every [`FLUSH_EVERY`], forever.
    pub async fn run(&self, store: StoreHandle) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.flush(&store).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;
    use crate::store::SqliteStore;

    /// C2: 2,000 refusals from one source become one row with the count; 10,000
    /// sources fill at most the bucket cap.
    #[tokio::test]
    async fn refusals_are_counted_not_each_written() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.contract_add(&crate::store::NewContract::simple("acme", 10)).unwrap();
        s.account_add("acme", "alice", "x").unwrap();
        let store = StoreHandle::new(s);
        let log = RefusalLog::default();
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..2000 {
            let name = if i % 2 == 0 {
                "alice".to_string()
            } else {
                format!("user{i}")
            };
            log.record(
                "login.refused",
                src,
                RefuseReason::WrongCredentials,
                Some(&name),
                || "client: account or password is wrong".into(),
            );
        }
        log.record(
            "login.refused",
            src,
            RefuseReason::RateLimited,
            Some("alice"),
            String::new,
        );
        log.flush(&store).await;
        let rows = store.run(|s| s.audit_log(None, 100)).await.unwrap().unwrap();
        assert_eq!(rows.len(), 2, "{rows:#?}");
        let wrong = rows.iter().find(|r| r.detail.contains("WrongCredentials")).unwrap();
        assert!(wrong.detail.starts_with("2000 × "), "{}", wrong.detail);
        assert_eq!(wrong.contract_id, None, "several accounts: the operator's row");
        let limited = rows.iter().find(|r| r.detail.contains("RateLimited")).unwrap();
        assert!(limited.contract_id.is_some(), "alice's contract sees her refusals");
        assert_eq!(limited.account.as_deref(), Some("alice"));

        for i in 0..10_000u32 {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            log.record("login.refused", src, RefuseReason::BadRequest, None, String::new);
        }
        assert!(log.buckets.lock().len() <= MAX_BUCKETS);
        assert_eq!(log.pending(), 10_000);
        log.flush(&store).await;
        let rows = store.run(|s| s.audit_log(None, 100_000)).await.unwrap().unwrap();
        assert!(rows.len() <= 2 + MAX_BUCKETS);
        assert!(rows.iter().any(|r| r.source.as_deref() == Some("(other sources)")));
        assert_eq!(log.pending(), 0);
    }
}
