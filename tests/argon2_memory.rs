//! Argon2's working memory goes back to the system after each hash (issue 13). The hub
//! hashes on tokio's blocking pool: threads that live on, each with a malloc arena of its
//! own. Before the fix every arena kept a 19 MiB block after its first hash, and a
//! hub's RSS grew by 190 MiB after 20 password logins. Its own test binary, so that no
//! other test's allocations move the RSS it reads.

use std::sync::{Arc, Barrier, Mutex};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn hashing_threads_do_not_keep_argon2_memory() {
    const THREADS: usize = 8;
    let before = rss_kib();
    // All threads alive at once (so that each has its own arena, as the blocking pool's
    // threads do), hashing one at a time (as the hash gate lets them).
    let start = Arc::new(Barrier::new(THREADS));
    let one_at_a_time = Arc::new(Mutex::new(()));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (start, lock) = (start.clone(), one_at_a_time.clone());
            std::thread::spawn(move || {
                start.wait();
                let _turn = lock.lock().unwrap();
                let h = mcvpn::password::hash("correct horse battery staple");
                assert!(mcvpn::password::verify("correct horse battery staple", &h));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    // One hash's 19 MiB block, at most, may still be resident; 8 threads kept 8 before.
    assert!(
        grown_mib < 40,
        "RSS grew by {grown_mib} MiB after {THREADS} threads hashed one at a time"
    );
}
