//! Durable storage for Waterfall: the immutable event log, and the transitions and state the
//! engine derived from it. SQLite (WAL, one transaction per batch) is the embedded default.
//!
//! The store never decides a stage or status itself: it keeps events grouped by *partition*
//! (an account and its people, or a person without an account), hands each touched partition
//! to the pure engine, and replaces that partition's derived rows with the result, all inside
//! the batch's transaction. A crash therefore never leaves a half-applied batch, and an
//! acknowledged batch survives `kill -9`.

#![forbid(unsafe_code)]

mod body;
mod ingest;
mod matching;
mod pending;
mod people;
mod query;
mod schema;

pub use ingest::{Batch, BatchLimits, IndexBuilder, IngestOptions, IngestSummary};
pub use matching::{PersonDuplicate, PersonMatch};
pub use query::{
    AccountRow, EventRow, HistoryQuery, HistoryRows, PersonRow, ReportRows, StoredStageIndex,
};

use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use waterfall_model::Model;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or written.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was made by a newer Waterfall.
    #[error("database schema version {found} is newer than this Waterfall understands ({supported}); upgrade Waterfall")]
    TooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored row could not be decoded (the file was changed outside Waterfall).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// Events that did not fit in memory could not be set aside in a temporary file.
    #[error("cannot write the ingest's temporary file: {0}")]
    Spill(String),
    /// The stored model could not be loaded.
    #[error("the database's stored model does not load: {0}")]
    Model(String),
}

/// How long a statement waits for another process's write lock before giving up.
pub(crate) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// SQLite's page cache (negative: KiB), for lookups and reads.
const CACHE_KIB: i64 = -65_536;

/// The page cache during a first load into an empty database (see [`Store::start_bulk_load`]).
const BULK_LOAD_CACHE_KIB: i64 = -16_384;

/// A Waterfall database.
pub struct Store {
    conn: Connection,
    limits: BatchLimits,
    /// The database's directory (where large ingests set events aside); `None` in memory.
    dir: Option<std::path::PathBuf>,
    /// A first load switched the database to a rollback journal (see
    /// [`Store::start_bulk_load`]); it returns to WAL before anything else is written, or when
    /// the store closes.
    bulk_load: bool,
    /// Syncs the file in the background during a first load (see [`Writeback`]).
    writeback: Option<Writeback>,
    /// The database file, opened once by the first load's [`Writeback`] and closed only after
    /// the connection (declared after it): closing any descriptor of the file would release
    /// the locks SQLite holds on it.
    file: Option<std::sync::Arc<std::fs::File>>,
}

/// Writes a database's dirty pages to disk every quarter of a second while a first load
/// writes hundreds of megabytes into it, so that the commit's sync finds little left to
/// write: the disk works while the cores derive, instead of after them.
pub(crate) struct Writeback {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Writeback {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(250);

    /// Syncs `file` until finished.
    fn start(file: std::sync::Arc<std::fs::File>) -> Option<Writeback> {
        Self::every_tick(move || {
            // Best effort: the commit syncs whatever this did not.
            let _ = file.sync_data();
        })
    }

    /// Syncs the files at `paths` (each once it exists) until finished: a replay's WAL, then
    /// the database its checkpoint writes into.
    fn start_paths(paths: Vec<std::path::PathBuf>) -> Option<Writeback> {
        let mut files: Vec<Option<std::fs::File>> = paths.iter().map(|_| None).collect();
        Self::every_tick(move || {
            for (file, path) in files.iter_mut().zip(&paths) {
                if file.is_none() {
                    *file = std::fs::File::open(path).ok();
                }
                if let Some(file) = file {
                    let _ = file.sync_data();
                }
            }
        })
    }

    fn every_tick(mut sync: impl FnMut() + Send + 'static) -> Option<Writeback> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Self::EVERY)
                {
                    sync();
                }
            })
            .ok()?;
        Some(Writeback { stop, thread })
    }

    pub(crate) fn finish(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Syncs the WAL of `conn`'s database and the database file in the background while a
/// transaction writes hundreds of megabytes through the WAL (a replay, a large batch): see
/// [`Writeback`]. `None` for an in-memory database.
pub(crate) fn wal_writeback(conn: &Connection) -> Option<Writeback> {
    let db = std::path::PathBuf::from(conn.path().filter(|p| !p.is_empty())?);
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    Writeback::start_paths(vec![wal.into(), db])
}

impl Drop for Store {
    fn drop(&mut self) {
        // Best effort: the next open returns the database to WAL in any case.
        let _ = self.end_bulk_load();
    }
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let conn = Connection::open(&path)?;
        let mut store = Self::init(conn)?;
        store.dir = path
            .as_ref()
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
        Ok(store)
    }

    /// Opens a private in-memory database (tests and impact analysis).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Large pages (a new database only): partitions are stored as blobs of a few KB, which
        // at 4 KB pages spill into overflow chains; at 64 KB a 10M-event load writes 13% less
        // and a replay's commit takes half the time.
        conn.pragma_update(None, "page_size", 65536)?;
        // WAL keeps readers off the writer's back; FULL makes an acknowledged commit durable.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        let mut store = Store {
            conn,
            limits: BatchLimits::default(),
            dir: None,
            bulk_load: false,
            writeback: None,
            file: None,
        };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// Before a batch: a first load into an empty database file writes it once through a
    /// rollback journal (an empty file has nothing to journal) instead of twice, through the
    /// WAL and then its checkpoint. The journal keeps the batch atomic and durable all the
    /// same; only concurrent readers wait, and an empty database has none worth the name.
    pub(crate) fn start_bulk_load(&mut self) -> Result<(), StoreError> {
        self.end_bulk_load()?;
        if self.dir.is_none() {
            return Ok(());
        }
        if ingest::log_is_empty(&self.conn)? {
            let mode: String =
                self.conn
                    .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
            self.bulk_load = mode.eq_ignore_ascii_case("delete");
            if self.bulk_load {
                // A first load reads almost nothing back: a small page cache keeps its
                // peak memory down (pages go to the file as the cache fills).
                self.conn
                    .pragma_update(None, "cache_size", BULK_LOAD_CACHE_KIB)?;
                if self.file.is_none() {
                    let path = self.conn.path().filter(|p| !p.is_empty());
                    self.file = path
                        .and_then(|p| std::fs::File::open(p).ok())
                        .map(std::sync::Arc::new);
                }
                self.writeback = self.file.clone().and_then(Writeback::start);
            }
        }
        Ok(())
    }

    /// Returns the database to WAL after a first load (see [`Store::start_bulk_load`]).
    pub(crate) fn end_bulk_load(&mut self) -> Result<(), StoreError> {
        if let Some(writeback) = self.writeback.take() {
            writeback.finish();
        }
        if std::mem::take(&mut self.bulk_load) {
            self.conn.pragma_update(None, "journal_mode", "WAL")?;
            self.conn.pragma_update(None, "cache_size", CACHE_KIB)?;
        }
        Ok(())
    }

    /// Reads by mapping the file instead of copying it page by page: faster for reading much
    /// of it (reports), but every page read then counts in this process's resident memory.
    pub fn map_reads(&self, on: bool) -> Result<(), StoreError> {
        let bytes: i64 = if on { 1 << 32 } else { 0 };
        self.conn.pragma_update(None, "mmap_size", bytes)?;
        Ok(())
    }

    /// Sets how much later batches and replays hold in memory (see [`BatchLimits`]).
    pub fn set_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    /// The text of the model the database was built with, if any events were ingested.
    pub fn model_source(&self) -> Result<Option<String>, StoreError> {
        self.meta("model_source")
    }

    /// The model the database was built with, loaded; `None` for a new database.
    pub fn stored_model(&self) -> Result<Option<Model>, StoreError> {
        match self.model_source()? {
            None => Ok(None),
            Some(src) => Model::from_toml(&src)
                .map(Some)
                .map_err(|e| StoreError::Model(e.to_string())),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn set_meta(tx: &rusqlite::Transaction<'_>, key: &str, value: &str) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}
