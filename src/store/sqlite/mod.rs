//! The embedded SQLite store (WAL mode, one connection per process). Each area of the
//! [`Store`](super::Store) lives in its own file.

mod accounts;
mod backup;
mod billing;
mod contracts;
mod devices;
mod maintenance;
mod operators;
mod records;
mod sessions;

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension};

use super::*;

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        // The store holds password hashes and customers' personal data: its directory is
        // 0700 and the file 0600 whatever the umask of whoever creates it (SQLite gives
        // the -wal and -shm files the database file's mode).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    StoreError::Refused(format!("cannot create the store directory {}: {e}", dir.display()))
                })?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Refused(format!("cannot open the store {}: {e}", path.display())))?;
        let conn = Connection::open(path)?;
        Self::from_connection(conn)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(mut conn: Connection) -> StoreResult<SqliteStore> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrations::migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl TransactionStore for SqliteStore {
    fn begin(&mut self) -> StoreResult<()> {
        Ok(self.conn.execute_batch("BEGIN IMMEDIATE")?)
    }

    fn commit(&mut self) -> StoreResult<()> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) -> StoreResult<()> {
        if self.conn.is_autocommit() {
            return Ok(()); // nothing open (SQLite may have rolled back on its own)
        }
        Ok(self.conn.execute_batch("ROLLBACK")?)
    }
}

fn parse_role(s: &str) -> Role {
    if s == "target" {
        Role::Target
    } else {
        Role::Client
    }
}

fn parse_date(s: &str) -> rusqlite::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn exists(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<bool> {
    Ok(conn.query_row(sql, params, |_| Ok(())).optional()?.is_some())
}

#[cfg(test)]
mod tests;
