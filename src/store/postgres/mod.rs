//! The PostgreSQL store, for several hubs sharing one account database (issue 15). Each
//! area of the [`Store`](super::Store) lives in its own file, as in [`super::sqlite`];
//! behaviour (errors, orderings, results) is the same as SQLite's.
//!
//! One connection per process: the trait is synchronous and the hub calls it from one
//! blocking task at a time (`hub::store_handle`), so the store's connection count is the
//! number of hub and admin processes, never one per session.

mod accounts;
mod billing;
mod contracts;
mod devices;
mod maintenance;
pub mod migrations;
mod operators;
mod records;
mod sessions;
pub mod tls;

use std::cell::RefCell;

use ::postgres::error::SqlState;
use ::postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use self::tls::TlsSetting;

use super::*;

pub struct PgStore {
    config: ::postgres::Config,
    tls: TlsSetting,
    /// Built once from `tls`: `None` for plaintext.
    connector: Option<MakeRustlsConnect>,
    /// `HOST:PORT/DB`, for messages: never the password.
    label: String,
    /// `None` after the connection was lost; the next call connects again.
    conn: RefCell<Option<Client>>,
    /// Inside `begin`..`commit`: a lost connection fails every call until `rollback`,
    /// rather than reconnecting and applying the rest of the change on its own.
    in_tx: bool,
    tx_lost: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("at", &self.label).finish()
    }
}

/// `HOST:PORT/DB` of a connection configuration (a unix socket directory as the host).
pub fn describe(config: &::postgres::Config) -> String {
    let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("{}/{db}", host_port(config))
}

fn host_port(config: &::postgres::Config) -> String {
    tls::host_port(config.get_hosts(), config.get_ports())
}

/// Whether `s` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Parses a `postgres://user[:password]@host:port/db[?sslmode=…&sslrootcert=…]` URL;
/// the error never repeats it (it may hold a password). The connection settings only:
/// [`tls::parse_url`] gives the TLS setting with them.
pub fn parse_url(url: &str) -> StoreResult<::postgres::Config> {
    Ok(tls::parse_url(url)?.0.into())
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn open(url: &str) -> StoreResult<PgStore> {
        let (config, tls) = tls::parse_url(url)?;
        Self::open_with(config.into(), tls)
    }

    /// Plaintext, for the tests' configurations on loopback.
    pub fn open_config(config: ::postgres::Config) -> StoreResult<PgStore> {
        Self::open_with(config, TlsSetting::Disable)
    }

    pub fn open_with(mut config: ::postgres::Config, tls: TlsSetting) -> StoreResult<PgStore> {
        // The driver's own mode follows the setting: never `prefer`, which falls back to
        // plaintext when a server offers no TLS.
        config.ssl_mode(match tls {
            TlsSetting::Disable => ::postgres::config::SslMode::Disable,
            TlsSetting::Verify { .. } => ::postgres::config::SslMode::Require,
        });
        let label = describe(&config);
        let connector = tls::connector(&tls)?;
        let store = PgStore {
            config,
            tls,
            connector,
            label,
            conn: RefCell::new(None),
            in_tx: false,
            tx_lost: false,
        };
        let mut client = store.connect()?;
        migrations::migrate(&mut client, &|e| store.error(e))?;
        *store.conn.borrow_mut() = Some(client);
        Ok(store)
    }

    /// `HOST:PORT/DB`.
    pub fn location(&self) -> &str {
        &self.label
    }

    fn connect(&self) -> StoreResult<Client> {
        let mut config = self.config.clone();
        if config.get_connect_timeout().is_none() {
            // A hub waits for its store at most this long per call while it is down.
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let connected = match &self.connector {
            Some(tls) => config.connect(tls.clone()),
            None => config.connect(NoTls),
        };
        connected.map_err(|e| match tls::explain(&e, &host_port(&self.config), &self.tls) {
            Some(why) => StoreError::Unavailable(why),
            None => self.unavailable(&error_text(&e)),
        })
    }

    fn unavailable(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Unavailable(format!("the store (PostgreSQL at {}) is unavailable: {e}", self.label))
    }

    /// Maps a driver error: a duplicate is a `Conflict` as SQLite's checks give, a lost
    /// connection `Unavailable`, anything else `Pg`.
    fn error(&self, e: ::postgres::Error) -> StoreError {
        if is_connection_error(&e) {
            return self.unavailable(&error_text(&e));
        }
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(
                e.as_db_error()
                    .map(|d| format!("already exists: {}", d.detail().unwrap_or(d.message())))
                    .unwrap_or_else(|| e.to_string()),
            ),
            _ => StoreError::Pg(error_text(&e)),
        }
    }

    /// Runs `f` on the connection, connecting first if it was lost. A connection error
    /// drops the connection so that the next call tries a new one.
    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, ::postgres::Error>) -> StoreResult<T> {
        if self.tx_lost {
            return Err(self.unavailable(&"the connection was lost inside a transaction"));
        }
        let mut slot = self.conn.borrow_mut();
        if slot.as_ref().is_some_and(|c| c.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            if self.in_tx {
                return Err(self.unavailable(&"the connection was lost inside a transaction"));
            }
            *slot = Some(self.connect()?);
            tracing::info!(store = %self.label, "connected to the store again");
        }
        let client = slot.as_mut().expect("set above");
        match f(client) {
            Ok(v) => Ok(v),
            Err(e) => {
                if is_connection_error(&e) || client.is_closed() {
                    *slot = None;
                    let text = error_text(&e);
                    tracing::warn!(store = %self.label, error = %text, "lost the store connection");
                    return Err(self.unavailable(&text));
                }
                Err(self.error(e))
            }
        }
    }

    /// Like [`with`](Self::with), for a store method's own multi-statement change: a
    /// transaction of its own, or a savepoint inside `store::atomically`'s.
    fn atomic<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, ::postgres::Error>) -> StoreResult<T> {
        let (open, done, undo) = if self.in_tx {
            (
                "SAVEPOINT store_method",
                "RELEASE SAVEPOINT store_method",
                "ROLLBACK TO SAVEPOINT store_method",
            )
        } else {
            ("BEGIN", "COMMIT", "ROLLBACK")
        };
        self.with(|c| {
            c.batch_execute(open)?;
            match f(c) {
                Ok(v) => {
                    c.batch_execute(done)?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = c.batch_execute(undo);
                    Err(e)
                }
            }
        })
    }
}

/// The driver's error in words: the server's message for a server error (its `Display`
/// is only "db error"), else the error and its cause ("error connecting to server:
/// Connection refused").
fn error_text(e: &::postgres::Error) -> String {
    use std::error::Error as _;
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn is_connection_error(e: &::postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(c) => {
            c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        }
        // No server error: the socket failed (refused, reset, timed out).
        None => e.as_db_error().is_none(),
    }
}

impl TransactionStore for PgStore {
    fn begin(&mut self) -> StoreResult<()> {
        self.with(|c| c.batch_execute("BEGIN"))?;
        self.in_tx = true;
        self.tx_lost = false;
        Ok(())
    }

    fn commit(&mut self) -> StoreResult<()> {
        let r = self.with(|c| c.batch_execute("COMMIT"));
        if r.is_ok() {
            self.in_tx = false;
        }
        r
    }

    fn rollback(&mut self) -> StoreResult<()> {
        if !self.in_tx {
            return Ok(());
        }
        self.in_tx = false;
        self.tx_lost = false;
        let alive = self.conn.borrow().as_ref().is_some_and(|c| !c.is_closed());
        if !alive {
            return Ok(()); // the server rolled it back when the connection went
        }
        self.with(|c| c.batch_execute("ROLLBACK"))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the synchronous client blocks on its own runtime, which panics on a
        // tokio worker (the hub's store handle may be dropped on one): close it on a
        // thread of its own there.
        if let Some(client) = self.conn.get_mut().take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("store-close".into())
                    .spawn(move || drop(client));
            }
        }
    }
}

fn parse_role(s: &str) -> Role {
    if s == "target" {
        Role::Target
    } else {
        Role::Client
    }
}

/// The schema's integers are BIGINT; counts and limits are `u32` in the records.
fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
