//! The SQLite schema and its migrations (the version lives in `PRAGMA user_version`).

use crate::StoreError;
use rusqlite::Connection;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

const V1: &str = r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- The immutable event log. `body` is the canonical JSON of the event; an erased event keeps
-- only its id (so re-ingesting it stays a no-op) and loses everything identifying.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    id        TEXT NOT NULL,
    at        INTEGER NOT NULL,
    partition TEXT NOT NULL,
    person    TEXT,
    body      TEXT
);

-- Where each person's and opportunity's events live.
CREATE TABLE person_partition (person TEXT PRIMARY KEY, partition TEXT NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE opportunity_partition (opportunity TEXT PRIMARY KEY, partition TEXT NOT NULL) WITHOUT ROWID;

-- Derived: replaced per partition whenever a partition is re-derived.
-- Every transition of a partition, in order, as one compact record (postcard-encoded
-- `Vec<Transition>`): a partition is always derived and replaced whole, and reports read
-- them all, so one row per partition keeps writes and reads sequential.
CREATE TABLE transitions (
    partition TEXT PRIMARY KEY,
    count     INTEGER NOT NULL,
    data      BLOB NOT NULL
);

CREATE TABLE people (
    id            TEXT PRIMARY KEY,
    partition     TEXT NOT NULL,
    account       TEXT,
    attrs         TEXT NOT NULL,
    stage         TEXT NOT NULL,
    status        TEXT,
    created_at    INTEGER NOT NULL,
    last_activity INTEGER,
    merged_into   TEXT
) WITHOUT ROWID;
CREATE INDEX people_partition ON people(partition);

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    partition     TEXT NOT NULL,
    attrs         TEXT NOT NULL,
    account_type  TEXT,
    opportunities TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX accounts_partition ON accounts(partition);

CREATE TABLE rejections (
    partition TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    at        INTEGER NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX rejections_partition ON rejections(partition);
"#;

/// The indexes of the event log: dropped while a batch loads into an empty log and built
/// once at its end (one sort instead of a million random inserts), inside the same
/// transaction.
pub const EVENT_INDEXES: &str = "
CREATE UNIQUE INDEX events_id ON events(id);
CREATE INDEX events_partition ON events(partition);
";

/// Drops the event log's indexes (see [`EVENT_INDEXES`]).
pub const DROP_EVENT_INDEXES: &str = "DROP INDEX events_id; DROP INDEX events_partition;";

/// Version 2: lead-to-account matching and person dedup (see `matching.rs`).
const V2: &str = r#"
-- Facts matching needs, kept while routing; each value is the latest by (at, event id).
CREATE TABLE match_people (
    person     TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    email      TEXT, email_at INTEGER, email_ev TEXT,
    company    TEXT, company_at INTEGER, company_ev TEXT,
    account    TEXT, account_at INTEGER, account_ev TEXT,  -- named by the person's own events
    merged     INTEGER NOT NULL DEFAULT 0                  -- merged away by a `merge` event
) WITHOUT ROWID;
CREATE TABLE match_accounts (
    account    TEXT PRIMARY KEY,
    first_at   INTEGER NOT NULL,
    name       TEXT, name_at INTEGER, name_ev TEXT,
    employees  TEXT, employees_at INTEGER, employees_ev TEXT
) WITHOUT ROWID;
-- Every name and domain an account has ever had (a renamed company still matches).
CREATE TABLE match_account_keys (
    account TEXT NOT NULL,
    kind    TEXT NOT NULL,  -- 'name' | 'domain'
    value   TEXT NOT NULL,
    PRIMARY KEY (account, kind, value)
) WITHOUT ROWID;

-- Decisions, recomputed from the facts after every batch.
CREATE TABLE person_matches (
    person      TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    confidence  REAL NOT NULL,
    method      TEXT NOT NULL,  -- 'domain' | 'company_exact' | 'company_fuzzy'
    explanation TEXT NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE person_duplicates (
    person    TEXT PRIMARY KEY,
    survivor  TEXT NOT NULL,
    email     TEXT NOT NULL,
    partition TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX person_duplicates_survivor ON person_duplicates(survivor);
"#;

/// Brings a database to [`SCHEMA_VERSION`], one migration per version, each in a transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let migrations: [&str; 2] = [V1, V2];
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if i == 0 {
            tx.execute_batch(EVENT_INDEXES)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
