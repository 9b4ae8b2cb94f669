//! Online backup and restore of the store with SQLite's backup API: a consistent copy
//! while the hub goes on writing (WAL readers do not block writers), checked before it
//! replaces anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::SqliteStore;
use crate::store::migrations::MIGRATIONS;
use crate::store::{StoreError, StoreResult};

/// How long a copy waits for a lock another connection holds, in total.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Copies all of `from` into `to` in one step, so that the copy is one snapshot.
fn copy_all(from: &Connection, to: &mut Connection) -> StoreResult<i32> {
    let backup = Backup::new(from, to)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // -1: every page in one step, under one read transaction on `from`.
        match backup.step(-1)? {
            StepResult::Done => return Ok(backup.progress().pagecount),
            StepResult::More => continue,
            StepResult::Busy | StepResult::Locked if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            StepResult::Busy | StepResult::Locked => {
                return Err(StoreError::Refused(
                    "the store stayed locked for 10 s; try again".into(),
                ))
            }
            // `StepResult` is non-exhaustive.
            _ => {
                return Err(StoreError::Refused(
                    "unexpected answer from the SQLite backup step".into(),
                ))
            }
        }
    }
}

/// `PRAGMA integrity_check` says "ok", and the file is an mcvpn store this version reads.
fn check_store_file(conn: &Connection, what: &Path) -> StoreResult<()> {
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(StoreError::Refused(format!(
            "{} fails SQLite's integrity check: {verdict}",
            what.display()
        )));
    }
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let has_contracts = super::exists(
        conn,
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contracts'",
        [],
    )?;
    if version == 0 || !has_contracts {
        return Err(StoreError::Refused(format!("{} is not an mcvpn store", what.display())));
    }
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::Refused(format!(
            "{} is from a newer mcvpn (schema {version}, this one knows {})",
            what.display(),
            MIGRATIONS.len()
        )));
    }
    Ok(())
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

impl SqliteStore {
    /// Writes a consistent copy of the store to `dest` (mode 0600, replaced atomically:
    /// a crash leaves the old file or the whole new one), checks the copy, and returns
    /// its size in pages.
    pub fn backup_to(&self, dest: &Path) -> StoreResult<i32> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |what: &str, e: std::io::Error| StoreError::Refused(format!("{what} {}: {e}", dest.display()));
        let partial = sibling(dest, ".partial");
        let _ = std::fs::remove_file(&partial);
        // Created 0600 before SQLite opens it: the copy holds password hashes too.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| io("cannot create", e))?;
        let result = (|| {
            let mut copy = Connection::open(&partial)?;
            let pages = copy_all(&self.conn, &mut copy)?;
            // A backup is one self-contained file, not a WAL database.
            copy.pragma_update(None, "journal_mode", "DELETE")?;
            check_store_file(&copy, dest)?;
            drop(copy);
            std::fs::File::open(&partial)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("cannot sync", e))?;
            std::fs::rename(&partial, dest).map_err(|e| io("cannot write", e))?;
            sync_dir(dest).map_err(|e| io("cannot sync the directory of", e))?;
            Ok(pages)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Makes the store at `store` hold what the backup `from` holds, after checking the
    /// backup (integrity, an mcvpn schema this version reads). The copy into the store
    /// is one transaction: a crash during it leaves the store as it was. The hub must be
    /// stopped: a running hub would keep serving from what it had read before.
    pub fn restore_from(store: &Path, from: &Path) -> StoreResult<()> {
        if !from.is_file() {
            return Err(StoreError::Refused(format!("no backup file at {}", from.display())));
        }
        let backup = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        check_store_file(&backup, from)?;
        // Opened as the hub opens it: 0600, WAL, and created if missing.
        let mut target = SqliteStore::open(store)?;
        copy_all(&backup, &mut target.conn)?;
        drop(target);
        // Brings a backup from an older version up to this one's schema.
        SqliteStore::open(store)?;
        Ok(())
    }
}
