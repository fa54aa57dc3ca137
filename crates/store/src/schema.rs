//! The SQLite schema and its migrations (the version lives in `PRAGMA user_version`).

use crate::StoreError;
use rusqlite::Connection;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 6;

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

/// The indexes of version 1's row-per-event log (replaced in version 3).
const V1_EVENT_INDEXES: &str = "
CREATE UNIQUE INDEX events_id ON events(id);
CREATE INDEX events_partition ON events(partition);
";

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

/// Version 3: the event log clustered by partition. A derivation always reads and replaces
/// whole partitions, so a partition's events are one record stream (see `body.rs`) in one
/// row: an ingest appends to the streams it touches and a derivation pass reads exactly its
/// partitions, instead of every pass scanning a row-per-event table.
const V3: &str = r#"
CREATE TABLE partition_events (
    partition TEXT PRIMARY KEY,
    count     INTEGER NOT NULL,
    data      BLOB NOT NULL
);
-- The ids of erased events: re-ingesting one stays a no-op, and nothing else is kept.
CREATE TABLE erased_events (id TEXT PRIMARY KEY) WITHOUT ROWID;
-- How many people and accounts a partition's transitions are about (readers reserve room).
ALTER TABLE transitions ADD COLUMN subjects INTEGER NOT NULL DEFAULT 0;
-- Every person's stage entries in one compact index (see waterfall_core::StageIndex), valid
-- while the store's generation (meta 'generation', bumped by every ingest and replay) is the
-- one it was built from.
-- Each partition's derived people, packed (see people.rs); `count` is those not merged away.
CREATE TABLE partition_people (
    partition TEXT PRIMARY KEY,
    count     INTEGER NOT NULL,
    data      BLOB NOT NULL
);
CREATE TABLE stage_index (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    names      BLOB NOT NULL,
    entries    BLOB NOT NULL
);
"#;

const V4: &str = r#"
-- Whom a merged person was merged into (NULL for everyone else): when a survivor's events
-- move (a later merge, a new account, a match), the people merged into it move with them.
ALTER TABLE person_partition ADD COLUMN merged_into TEXT;
CREATE INDEX person_partition_merged_into ON person_partition(merged_into)
    WHERE merged_into IS NOT NULL;
"#;

const V5: &str = r#"
-- The instant of the latest event that named the account an opportunity lives in: a later one
-- naming another account moves it there (an opportunity re-parented in the CRM).
ALTER TABLE opportunity_partition ADD COLUMN at INTEGER NOT NULL DEFAULT -9223372036854775808;
"#;

const V6: &str = r#"
-- The first opportunity event that named each person (or someone merged into them) as a
-- contact, and its instant: a contact with no account of their own lives with that deal (the
-- engine makes them the account of the first deal that names them).
CREATE TABLE contact_claims (
    person      TEXT PRIMARY KEY,
    opportunity TEXT NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX contact_claims_opportunity ON contact_claims(opportunity);
-- Every deal that named each person as a contact: erasing the person scrubs them all, and a
-- deal's partition leaves the ones who live elsewhere to their own.
CREATE TABLE deal_contacts (
    person      TEXT NOT NULL,
    opportunity TEXT NOT NULL,
    PRIMARY KEY (person, opportunity)
) WITHOUT ROWID;
CREATE INDEX deal_contacts_opportunity ON deal_contacts(opportunity);
CREATE INDEX opportunity_partition_partition ON opportunity_partition(partition);
"#;

/// Version 6: each contact's claim (the first deal that named them) and every deal that named
/// them, from the log, for each person named (people stay where they are, and merged people's claims stay their own;
/// later events decide from there).
fn record_contact_claims(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut first: std::collections::BTreeMap<String, (i64, String)> = Default::default();
    let mut every: std::collections::BTreeSet<(String, String)> = Default::default();
    for_each_logged_record(tx, |_, record| {
        if let waterfall_core::RecordBody::Opportunity {
            opportunity,
            contacts: Some(contacts),
            ..
        } = &record.body
        {
            for c in contacts {
                every.insert((c.person.clone(), opportunity.to_string()));
                let claim = (record.at, opportunity.to_string());
                match first.get_mut(&c.person) {
                    Some(held) if *held <= claim => {}
                    Some(held) => *held = claim,
                    None => {
                        first.insert(c.person.clone(), claim);
                    }
                }
            }
        }
    })?;
    let mut set =
        tx.prepare("INSERT INTO contact_claims(person, opportunity, at) VALUES (?1, ?2, ?3)")?;
    let mut pair =
        tx.prepare("INSERT OR IGNORE INTO deal_contacts(person, opportunity) VALUES (?1, ?2)")?;
    for (person, (at, opportunity)) in first {
        set.execute(rusqlite::params![person, opportunity, at])?;
    }
    for (person, opportunity) in every {
        pair.execute([person, opportunity])?;
    }
    Ok(())
}

/// Version 5: each opportunity's `at`, from the log: the latest of its events naming the
/// account it lives in (opportunities stay where they are; later events decide from there).
fn record_opportunity_instants(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut latest: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for_each_logged_record(tx, |_, record| {
        if let waterfall_core::RecordBody::Opportunity {
            opportunity,
            account: Some(account),
            ..
        } = record.body
        {
            let at = latest
                .entry((opportunity.to_string(), account.to_string()))
                .or_insert(i64::MIN);
            *at = (*at).max(record.at);
        }
    })?;
    let mut set = tx.prepare(
        "UPDATE opportunity_partition SET at = ?3 WHERE opportunity = ?1 AND partition = ?2",
    )?;
    for ((opportunity, account), at) in latest {
        set.execute(rusqlite::params![opportunity, account, at])?;
    }
    Ok(())
}

/// Calls `f` with every record of the log (with its sequence number), partition by partition.
fn for_each_logged_record(
    tx: &rusqlite::Transaction<'_>,
    mut f: impl FnMut(u64, waterfall_core::Record<&str>),
) -> Result<(), StoreError> {
    let mut st = tx.prepare("SELECT data FROM partition_events")?;
    let mut rows = st.query([])?;
    while let Some(row) = rows.next()? {
        let packed: Vec<u8> = row.get(0)?;
        let stream = crate::body::unpack(&packed)?;
        crate::body::for_each_record(&stream, |seq, record| {
            f(seq, record);
            Ok(())
        })?;
    }
    Ok(())
}

/// Moves version 2's row-per-event log into [`V3`]'s partition streams, re-encodes stored
/// transitions as tables, and packs people by partition.
fn log_by_partition(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut streams: std::collections::BTreeMap<String, (i64, Vec<u8>)> = Default::default();
    let mut next_seq = 1i64;
    {
        let mut st = tx.prepare("SELECT seq, id, partition, body FROM events ORDER BY seq")?;
        let mut rows = st.query([])?;
        let mut erased = tx.prepare("INSERT OR IGNORE INTO erased_events(id) VALUES (?1)")?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            next_seq = seq + 1;
            match r.get_ref(3)? {
                rusqlite::types::ValueRef::Null => {
                    erased.execute([r.get::<_, String>(1)?])?;
                }
                body => {
                    let event = crate::body::decode(body, seq)?;
                    let (count, data) = streams.entry(r.get(2)?).or_default();
                    *count += 1;
                    crate::body::append_record(data, seq as u64, &event);
                }
            }
        }
    }
    let mut ins =
        tx.prepare("INSERT INTO partition_events(partition, count, data) VALUES (?1, ?2, ?3)")?;
    for (partition, (count, data)) in streams {
        ins.execute(rusqlite::params![
            partition,
            count,
            crate::body::pack(&data)
        ])?;
    }
    tx.execute_batch("DROP TABLE events;")?;
    // Transitions move from a list of records to a dictionary-encoded table.
    let old: Vec<(String, Vec<u8>)> = {
        let mut st = tx.prepare("SELECT partition, data FROM transitions")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut update = tx.prepare("UPDATE transitions SET data = ?1 WHERE partition = ?2")?;
    for (partition, data) in old {
        let list: Vec<waterfall_core::Transition> = postcard::from_bytes(&data)
            .map_err(|e| StoreError::Corrupt(format!("stored transitions of {partition}: {e}")))?;
        update.execute(rusqlite::params![
            waterfall_core::TransitionTable::encode(&list),
            partition
        ])?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('next_seq', ?1)",
        [next_seq.to_string()],
    )?;
    people_by_partition(tx)
}

/// Moves version 2's row-per-person `people` into [`V3`]'s packed partitions.
fn people_by_partition(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    type Row = (
        String,
        Option<String>,
        String,
        String,
        Option<String>,
        i64,
        Option<i64>,
        Option<String>,
    );
    let mut by_partition: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
    {
        let mut st = tx.prepare(
            "SELECT partition, id, account, attrs, stage, status, created_at, last_activity, merged_into FROM people",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            by_partition.entry(r.get(0)?).or_default().push((
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ));
        }
    }
    let mut ins =
        tx.prepare("INSERT INTO partition_people(partition, count, data) VALUES (?1, ?2, ?3)")?;
    for (partition, rows) in by_partition {
        let people: Vec<crate::people::StoredPerson<'_>> = rows
            .iter()
            .map(|r| crate::people::StoredPerson {
                id: &r.0,
                account: r.1.as_deref(),
                attrs: &r.2,
                stage: &r.3,
                status: r.4.as_deref(),
                created_at: r.5,
                last_activity: r.6,
                merged_into: r.7.as_deref(),
            })
            .collect();
        let live = people.iter().filter(|p| p.merged_into.is_none()).count() as i64;
        ins.execute(rusqlite::params![
            partition,
            live,
            crate::people::encode(&people)
        ])?;
    }
    drop(ins);
    tx.execute_batch("DROP TABLE people;")?;
    Ok(())
}

/// Version 4: notes whom each merged person was merged into, from the `merge` events in the
/// log (in stored order, so the last merge of a person wins, as routing applied them).
fn record_merges(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut merges: Vec<(u64, String, String)> = Vec::new();
    for_each_logged_record(tx, |seq, record| {
        if let waterfall_core::RecordBody::Merge { person, into } = record.body {
            merges.push((seq, person.to_string(), into.to_string()));
        }
    })?;
    merges.sort_unstable();
    let mut set =
        tx.prepare("UPDATE person_partition SET merged_into = ?2 WHERE person = ?1 AND at = ?3")?;
    for (_, person, into) in merges {
        set.execute(rusqlite::params![person, into, i64::MAX])?;
    }
    Ok(())
}

/// Brings a database to [`SCHEMA_VERSION`], one migration per version, each in a transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let migrations: [&str; 6] = [V1, V2, V3, V4, V5, V6];
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        match i {
            0 => tx.execute_batch(V1_EVENT_INDEXES)?,
            2 => log_by_partition(&tx)?,
            3 => record_merges(&tx)?,
            4 => record_opportunity_instants(&tx)?,
            5 => record_contact_claims(&tx)?,
            _ => {}
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_databases_get_large_pages_and_existing_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |store: &crate::Store| -> i64 {
            store
                .conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap()
        };
        let new = dir.path().join("new.db");
        assert_eq!(page_size(&crate::Store::open(&new).unwrap()), 65536);
        assert_eq!(page_size(&crate::Store::open(&new).unwrap()), 65536);
        let old = dir.path().join("old.db");
        {
            let conn = Connection::open(&old).unwrap();
            conn.execute_batch("CREATE TABLE t(x); PRAGMA journal_mode = WAL;")
                .unwrap();
        }
        assert_eq!(page_size(&crate::Store::open(&old).unwrap()), 4096);
    }

    /// Undoes version 6, for a test database brought back to an older version.
    const UNDO_V6: &str = "DROP TABLE contact_claims; DROP TABLE deal_contacts;
                           DROP INDEX opportunity_partition_partition;";

    /// A database in `dir` holding `lines` (ingested under the history-only model), brought
    /// back to an older version by `downgrade` and opened again: migrated.
    fn migrated(dir: &std::path::Path, lines: &[&str], downgrade: &str) -> crate::Store {
        let path = dir.join("old.db");
        {
            let mut store = crate::Store::open(&path).unwrap();
            let events = lines
                .iter()
                .map(|l| waterfall_core::parse_line(l).unwrap())
                .collect();
            let horizon = waterfall_core::Timestamp(i64::MAX);
            store
                .ingest(
                    &waterfall_model::Model::history_only(),
                    events,
                    crate::IngestOptions { horizon },
                )
                .unwrap();
            store.conn.execute_batch(downgrade).unwrap();
        }
        crate::Store::open(&path).unwrap()
    }

    /// The rows of a two-column query.
    fn pairs<T: rusqlite::types::FromSql>(store: &crate::Store, sql: &str) -> Vec<(String, T)> {
        store
            .conn
            .prepare(sql)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_version_3_database_learns_whom_its_merged_people_were_merged_into() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated(
            dir.path(),
            &[
                r#"{"id":"e1","at":"2025-01-01T00:00:00Z","type":"person","person":"x","account":"a1"}"#,
                r#"{"id":"e2","at":"2025-01-02T00:00:00Z","type":"person","person":"y","account":"a2"}"#,
                r#"{"id":"e3","at":"2025-02-01T00:00:00Z","type":"merge","person":"x","into":"y"}"#,
            ],
            // Back to version 3: no column for it (nor version 5's, nor version 6's tables).
            &format!(
                "DROP INDEX person_partition_merged_into;
                 ALTER TABLE person_partition DROP COLUMN merged_into;
                 ALTER TABLE opportunity_partition DROP COLUMN at;
                 {UNDO_V6} PRAGMA user_version = 3;"
            ),
        );
        let into: Vec<(String, Option<String>)> = pairs(
            &store,
            "SELECT person, merged_into FROM person_partition ORDER BY person",
        );
        assert_eq!(
            into,
            [
                ("x".to_string(), Some("y".to_string())),
                ("y".to_string(), None)
            ]
        );
    }

    #[test]
    fn a_version_4_database_learns_when_its_opportunities_last_named_their_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated(
            dir.path(),
            &[
                r#"{"id":"e1","at":"2025-01-01T00:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","state":"open"}"#,
                r#"{"id":"e2","at":"2025-03-01T00:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","state":"won"}"#,
            ],
            // Back to version 4: no column for it (nor version 6's tables).
            &format!(
                "ALTER TABLE opportunity_partition DROP COLUMN at;
                 {UNDO_V6} PRAGMA user_version = 4;"
            ),
        );
        let at: Vec<(String, i64)> = pairs(
            &store,
            "SELECT opportunity, at FROM opportunity_partition WHERE opportunity = 'o1'",
        );
        assert_eq!(
            at,
            [(
                "o1".to_string(),
                waterfall_core::Timestamp::parse("2025-03-01T00:00:00Z")
                    .unwrap()
                    .0
            )]
        );
    }

    #[test]
    fn a_version_5_database_learns_each_contacts_first_deal() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated(
            dir.path(),
            &[
                r#"{"id":"e1","at":"2025-01-01T00:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","state":"open","contacts":[{"person":"c"},{"person":"d"}]}"#,
                r#"{"id":"e2","at":"2025-03-01T00:00:00Z","type":"opportunity","opportunity":"o2","account":"a2","state":"open","contacts":[{"person":"c","role":"champion"}]}"#,
            ],
            &format!("{UNDO_V6} PRAGMA user_version = 5;"),
        );
        let pair = |p: &str, o: &str| (p.to_string(), o.to_string());
        let claims: Vec<(String, String)> = pairs(
            &store,
            "SELECT person, opportunity FROM contact_claims ORDER BY person",
        );
        assert_eq!(claims, [pair("c", "o1"), pair("d", "o1")]);
        let named: Vec<(String, String)> = pairs(
            &store,
            "SELECT person, opportunity FROM deal_contacts ORDER BY person, opportunity",
        );
        assert_eq!(named, [pair("c", "o1"), pair("c", "o2"), pair("d", "o1")]);
    }

    #[test]
    fn a_version_2_log_moves_into_partition_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.execute_batch(V1_EVENT_INDEXES).unwrap();
            conn.execute_batch(V2).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            let json = r#"{"id":"e1","at":"2025-01-01T00:00:00Z","type":"person","person":"jo","account":"acme"}"#;
            let record = crate::body::encode(
                &waterfall_core::parse_line(
                    r#"{"id":"e2","at":"2025-01-02T00:00:00Z","type":"stage","person":"jo","stage":"MQL"}"#,
                )
                .unwrap(),
            );
            conn.execute(
                "INSERT INTO events(seq, id, at, partition, person, body) VALUES (1, 'e1', 0, 'acme', 'jo', ?1)",
                [json],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO events(seq, id, at, partition, person, body) VALUES (2, 'e2', 0, 'acme', 'jo', ?1)",
                [record],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO events(seq, id, at, partition, person, body) VALUES (3, 'e3', 0, '~p:al', NULL, NULL)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO people(id, partition, account, attrs, stage, status, created_at, last_activity, merged_into)
                 VALUES ('jo', 'acme', 'acme', '{\"title\":\"CMO\"}', 'MQL', 'Open', 7, NULL, NULL)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO person_partition(person, partition, at) VALUES ('jo', 'acme', 0)",
                [],
            )
            .unwrap();
        }
        let store = crate::Store::open(&path).unwrap();
        let events = store.stored_events("acme").unwrap();
        let ids: Vec<(u64, &str)> = events
            .iter()
            .map(|e| (e.seq, e.event.id.as_str()))
            .collect();
        assert_eq!(ids, [(1, "e1"), (2, "e2")]);
        assert!(store.is_erased("e3").unwrap());
        assert!(store.stored_events("~p:al").unwrap().is_empty());
        let next: String = store
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(next, "4");
        let jo = store.person("jo").unwrap().unwrap();
        assert_eq!(
            (jo.stage.as_str(), jo.attrs["title"].as_str()),
            ("MQL", Some("CMO"))
        );
        assert_eq!(store.people_of_account("acme").unwrap().len(), 1);
    }
}
