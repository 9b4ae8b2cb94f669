//! Live changes from a shared PostgreSQL store (issue 15): the hub LISTENs on the
//! `mcvpn_change` channel, which the store's triggers NOTIFY on every committed change
//! that can end a session (a suspension, a lock, a password change, a revoked grant or
//! a removed device; see `store::postgres::migrations`). Another hub or `mcvpn admin`
//! made it: this hub re-reads its sessions at once.
//!
//! The listening connection is one more connection per hub, outside the store's pool
//! (a LISTEN belongs to one session). While it is down the hub polls the store's change
//! marker as before, every [`POLL_WHILE_DEAF`]; while it listens it polls only every
//! [`POLL_WHILE_LISTENING`], in case a notification was lost with a connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// The channel the store's triggers notify.
pub const CHANNEL: &str = "mcvpn_change";
/// The channel notified when a session starts or ends on any hub: which hub holds which
/// node changed (the mesh, see `hub::registry`).
pub const PRESENCE_CHANNEL: &str = "mcvpn_presence";
/// The change-marker poll while the listening connection is down.
pub const POLL_WHILE_DEAF: Duration = Duration::from_millis(200);
/// The change-marker poll while notifications arrive: a fallback only.
pub const POLL_WHILE_LISTENING: Duration = Duration::from_secs(5);
/// How long to wait before connecting again after the listening connection failed.
const RECONNECT: Duration = Duration::from_secs(1);

/// What the store watcher waits on: a wake-up per notification, and whether the
/// listening connection is up (which sets how often the watcher polls).
#[derive(Clone)]
pub struct ChangeFeed {
    wake: Arc<Notify>,
    presence: Arc<Notify>,
    listening: Arc<AtomicBool>,
}

impl ChangeFeed {
    /// Starts listening on the PostgreSQL store at `url` (reconnecting until the process
    /// ends). `shown` is the URL without its password, for logs.
    pub fn spawn(url: String, shown: String) -> ChangeFeed {
        let feed = ChangeFeed {
            wake: Arc::new(Notify::new()),
            presence: Arc::new(Notify::new()),
            listening: Arc::new(AtomicBool::new(false)),
        };
        tokio::spawn(listen(url, shown, feed.clone()));
        feed
    }

    /// Waits for the next notification (or a reconnection, after which changes made
    /// while deaf must be read).
    pub async fn changed(&self) {
        self.wake.notified().await
    }

    /// Waits for the next session start or end on any hub.
    pub async fn presence_changed(&self) {
        self.presence.notified().await
    }

    /// How long the watcher may wait before polling the change marker.
    pub fn poll_interval(&self) -> Duration {
        if self.listening.load(Ordering::Acquire) {
            POLL_WHILE_LISTENING
        } else {
            POLL_WHILE_DEAF
        }
    }
}

async fn listen(url: String, shown: String, feed: ChangeFeed) {
    let mut logged_down = false;
    loop {
        match listen_once(&url, &feed).await {
            Ok(()) => {
                tracing::warn!(store = %shown, "the store's change notifications stopped; polling until they are back");
                logged_down = false;
            }
            Err(e) if !logged_down => {
                tracing::warn!(store = %shown, error = %e, "cannot listen for the store's changes; polling until it can");
                logged_down = true;
            }
            Err(_) => {}
        }
        feed.listening.store(false, Ordering::Release);
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Connects (over TLS as the URL says: the same settings as the store's pool), LISTENs,
/// and wakes the watcher on every notification until the connection ends.
async fn listen_once(url: &str, feed: &ChangeFeed) -> Result<(), String> {
    use crate::store::postgres::tls;
    let (config, setting) = tls::parse_url(url).map_err(|e| e.to_string())?;
    let explain = |e: tokio_postgres::Error| {
        let at = tls::host_port(config.get_hosts(), config.get_ports());
        tls::explain(&e, &at, &setting).unwrap_or_else(|| e.to_string())
    };
    // The connection object carries the notifications; it must be polled for the
    // client's LISTEN to complete at all, so it runs in its own task.
    let (wake, presence) = (feed.wake.clone(), feed.presence.clone());
    let (client, mut driver) = match tls::connector(&setting).map_err(|e| e.to_string())? {
        Some(connector) => {
            let (client, connection) = config.connect(connector).await.map_err(explain)?;
            (client, tokio::spawn(drive(connection, wake, presence)))
        }
        None => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(explain)?;
            (client, tokio::spawn(drive(connection, wake, presence)))
        }
    };
    let listen = format!("LISTEN {CHANNEL}; LISTEN {PRESENCE_CHANNEL}");
    let listened = tokio::select! {
        r = client.batch_execute(&listen) => r,
        ended = &mut driver => return ended.unwrap_or(Ok(())).map_err(|e| e.to_string()),
    };
    if let Err(e) = listened {
        driver.abort();
        return Err(e.to_string());
    }
    feed.listening.store(true, Ordering::Release);
    tracing::info!("listening for the store's changes");
    // Changes made while this hub was not listening were never notified to it.
    feed.wake.notify_one();
    feed.presence.notify_one();
    let ended = driver.await.unwrap_or(Ok(()));
    drop(client);
    ended.map_err(|e| e.to_string())
}

/// Polls the LISTEN connection (plaintext or TLS) and wakes the watcher on each
/// notification, until the connection ends.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    wake: Arc<Notify>,
    presence: Arc<Notify>,
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) if n.channel() == PRESENCE_CHANNEL => {
                presence.notify_one()
            }
            Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => wake.notify_one(),
            Some(Ok(_)) => {} // notices (warnings) from the server
            Some(Err(e)) => return Err(e),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs a PostgreSQL server: `MCVPN_TEST_PG` (scripts/netns-test.sh starts one).
    #[tokio::test]
    async fn a_notification_from_another_connection_wakes_the_watcher_at_once() {
        let Ok(url) = std::env::var("MCVPN_TEST_PG") else {
            eprintln!("skipped: MCVPN_TEST_PG not set");
            return;
        };
        let feed = ChangeFeed::spawn(url.clone(), "test".into());
        // The first wake-up comes with the LISTEN (changes missed while deaf).
        tokio::time::timeout(Duration::from_secs(10), feed.changed())
            .await
            .expect("the feed connects and listens");
        assert_eq!(feed.poll_interval(), POLL_WHILE_LISTENING);
        let (other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let started = std::time::Instant::now();
        other.batch_execute(&format!("NOTIFY {CHANNEL}")).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), feed.changed())
            .await
            .expect("a NOTIFY wakes the watcher within 1 s");
        eprintln!("notification reached the watcher in {:?}", started.elapsed());
    }

    /// The LISTEN connection over TLS (`MCVPN_TEST_PG_TLS`, a server that refuses
    /// plaintext): a NOTIFY sent over another TLS connection wakes the watcher.
    #[tokio::test]
    async fn the_feed_listens_over_tls() {
        use crate::store::postgres::tls;
        let Some((base, ca)) = crate::store::pg_test::tls_server_from_env() else {
            return;
        };
        let url = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
        let feed = ChangeFeed::spawn(url.clone(), "test".into());
        tokio::time::timeout(Duration::from_secs(10), feed.changed())
            .await
            .expect("the feed connects over TLS and listens");
        assert_eq!(feed.poll_interval(), POLL_WHILE_LISTENING);
        let (config, setting) = tls::parse_url(&url).unwrap();
        let connector = tls::connector(&setting).unwrap().expect("TLS");
        let (other, conn) = config.connect(connector).await.unwrap();
        tokio::spawn(conn);
        other.batch_execute(&format!("NOTIFY {CHANNEL}")).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), feed.changed())
            .await
            .expect("a NOTIFY wakes the watcher within 1 s");
    }
}
