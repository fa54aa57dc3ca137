//! Reading what is stored: people, accounts, timelines, and the rows reports are built from.

use crate::people::Attributes;
use crate::{Store, StoreError};
use rayon::prelude::*;
use rusqlite::OptionalExtension;
use serde::Serialize;
use waterfall_core::{
    Attrs, Event, Field, Level, Timestamp, Transition, TransitionRef, TransitionTable,
};
use waterfall_engine::SequencedEvent;

/// A person as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonRow {
    /// The person's id.
    pub id: String,
    /// The partition holding their events.
    pub partition: String,
    /// The account they belong to.
    pub account: Option<String>,
    /// Attributes.
    pub attrs: Attrs,
    /// Current stage (empty for a merged-away person).
    pub stage: String,
    /// Current status.
    pub status: Option<String>,
    /// When they were created.
    pub created_at: Timestamp,
    /// When they last did something.
    pub last_activity: Option<Timestamp>,
    /// The survivor they were merged into.
    pub merged_into: Option<String>,
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountRow {
    /// The account's id.
    pub id: String,
    /// Attributes.
    pub attrs: Attrs,
    /// Prospect, customer or partner.
    pub account_type: Option<String>,
    /// Its opportunities with their buying groups, as JSON.
    pub opportunities: serde_json::Value,
    /// The partition holding its events.
    pub partition: String,
}

/// A stored event with its ingestion sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Ingestion sequence.
    pub seq: u64,
    /// The partition it lives in.
    pub partition: String,
    /// The event (`None` if erased).
    pub event: Option<Event>,
}

/// What reports read: people and their transitions.
#[derive(Debug, Clone, Default)]
pub struct HistoryRows {
    /// Every person, merged-away ones included.
    pub people: Vec<PersonRow>,
    /// Every transition, sorted by subject then order.
    pub transitions: Vec<Transition>,
}

/// Attributes from their stored JSON text (empty text: none).
pub(crate) fn attrs_of(text: &str) -> Result<Attrs, StoreError> {
    if text.is_empty() {
        return Ok(Attrs::new());
    }
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Corrupt(format!(
            "attributes are not a JSON object: {text:.60}"
        ))),
    }
}

/// Decodes one partition's stored transitions (as written by the ingest), checked.
fn decode_table(data: &[u8]) -> Result<TransitionTable<'_>, StoreError> {
    let table = TransitionTable::decode(data).map_err(StoreError::Corrupt)?;
    table.validate().map_err(StoreError::Corrupt)?;
    Ok(table)
}

/// People and the stored transitions, as read for a report.
pub struct ReportRows {
    /// Every person, merged-away ones included.
    pub people: Vec<PersonRow>,
    blobs: Vec<Vec<u8>>,
    /// How many transitions the blobs hold (of every field and level).
    pub transitions: usize,
    /// About how many people and accounts they are about (a hint for reserving room).
    pub subjects: usize,
    field: Option<Field>,
    level: Option<Level>,
}

impl ReportRows {
    /// Every partition's stored transitions, decoded on all cores without copying strings
    /// (unfiltered: see [`ReportRows::keeps`]).
    pub fn tables(&self) -> Result<Vec<TransitionTable<'_>>, StoreError> {
        self.blobs.par_iter().map(|b| decode_table(b)).collect()
    }

    /// Hands every partition's stored transitions to `f`, in order, decoding them on all
    /// cores a slice at a time (so they are never all decoded at once).
    pub fn for_each_table(
        &self,
        mut f: impl FnMut(&TransitionTable<'_>),
    ) -> Result<(), StoreError> {
        for slice in self.blobs.chunks(2048) {
            let tables: Vec<TransitionTable<'_>> = slice
                .par_iter()
                .map(|b| decode_table(b))
                .collect::<Result<_, _>>()?;
            tables.iter().for_each(&mut f);
        }
        Ok(())
    }

    /// Whether a transition of this field and level is one the query asked for.
    pub fn keeps(&self, field: Field, level: Level) -> bool {
        self.field.is_none_or(|f| f == field) && self.level.is_none_or(|l| l == level)
    }

    /// Every transition the query asked for, without copying strings.
    pub fn decode_all(&self) -> Result<Vec<TransitionRef<'_>>, StoreError> {
        let tables = self.tables()?;
        let mut out = Vec::new();
        for t in &tables {
            out.extend(
                t.rows
                    .iter()
                    .filter(|r| self.keeps(r.field, r.level))
                    .map(|r| t.get(r)),
            );
        }
        Ok(out)
    }
}

/// A stored stage index: its names' bytes and its entries' bytes (read them with
/// `waterfall_core::StageIndex::decode`).
pub type StoredStageIndex = (Vec<u8>, Vec<u8>);

/// What a report needs from the store (loading less is faster).
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only transitions of this field (stage or status); all when `None`.
    pub field: Option<Field>,
    /// Only transitions of this level (person or account); all when `None`.
    pub level: Option<Level>,
    /// Which people to load: `None` none (reports then know people by their transitions
    /// alone, which is exact: merged-away and erased people have none), `Some(None)` all with
    /// all attributes, `Some(Some(k))` all with only attribute `k`.
    pub attributes: Option<Option<String>>,
}

impl Store {
    /// One person, by id.
    pub fn person(&self, id: &str) -> Result<Option<PersonRow>, StoreError> {
        let Some(partition) = crate::people::partition_of(&self.conn, id)? else {
            return Ok(None);
        };
        Ok(
            crate::people::of_partition(&self.conn, &partition, Attributes::All, |x| x == id)?
                .into_iter()
                .next(),
        )
    }

    /// The deal that first named `person` (or someone merged into them) as a contact, and
    /// when: a person with no account of their own lives with that deal and takes its
    /// account.
    pub fn contact_claim(&self, person: &str) -> Result<Option<(String, Timestamp)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT opportunity, at FROM contact_claims WHERE person = ?1",
                [person],
                |r| Ok((r.get(0)?, Timestamp(r.get(1)?))),
            )
            .optional()?)
    }

    /// The people of an account.
    pub fn people_of_account(&self, account: &str) -> Result<Vec<PersonRow>, StoreError> {
        // An account's people live in the account's partition, which bears its name.
        let partition: String = self
            .conn
            .query_row(
                "SELECT partition FROM accounts WHERE id = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_else(|| account.to_string());
        let mut people =
            crate::people::of_partition(&self.conn, &partition, Attributes::All, |_| true)?;
        people.retain(|p| p.account.as_deref() == Some(account));
        people.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(people)
    }

    /// One account, by id.
    pub fn account(&self, id: &str) -> Result<Option<AccountRow>, StoreError> {
        let row: Option<(String, Option<String>, String, String)> = self
            .conn
            .query_row(
                "SELECT attrs, account_type, opportunities, partition FROM accounts WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        row.map(|(a, t, o, p)| {
            let opps = serde_json::from_str(&o).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(AccountRow {
                id: id.to_string(),
                attrs: attrs_of(&a)?,
                account_type: t,
                opportunities: opps,
                partition: p,
            })
        })
        .transpose()
    }

    /// The transitions of one person or account, in order.
    pub fn transitions_of(&self, subject: &str) -> Result<Vec<Transition>, StoreError> {
        let account: Option<String> = self
            .conn
            .query_row(
                "SELECT partition FROM accounts WHERE id = ?1",
                [subject],
                |r| r.get(0),
            )
            .optional()?;
        let partition = match account {
            Some(p) => Some(p),
            None => crate::people::partition_of(&self.conn, subject)?,
        };
        let Some(partition) = partition else {
            return Ok(Vec::new());
        };
        let data: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT data FROM transitions WHERE partition = ?1",
                [&partition],
                |r| r.get(0),
            )
            .optional()?;
        let Some(data) = data else {
            return Ok(Vec::new());
        };
        let table = decode_table(&data)?;
        Ok(table
            .iter()
            .filter(|t| t.subject == subject)
            .map(|t| t.to_transition())
            .collect())
    }

    /// One stored event of a partition, by id (`None` if it is not there or was erased).
    pub fn event(&self, partition: &str, id: &str) -> Result<Option<EventRow>, StoreError> {
        Ok(self
            .stored_events(partition)?
            .into_iter()
            .find(|e| e.event.id == id)
            .map(|e| EventRow {
                seq: e.seq,
                partition: partition.to_string(),
                event: Some(e.event),
            }))
    }

    /// Whether an event id belongs to an erased event (only its id is kept).
    pub fn is_erased(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM erased_events WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// A partition's stored events, as stored (no matching decisions applied), in stored order.
    pub fn stored_events(&self, partition: &str) -> Result<Vec<SequencedEvent>, StoreError> {
        let data: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT data FROM partition_events WHERE partition = ?1")?
            .query_row([partition], |r| r.get(0))
            .optional()?;
        data.map_or(Ok(Vec::new()), |d| {
            crate::body::decode_records(&crate::body::unpack(&d)?)
        })
    }

    /// The events of one partition in derivation order, up to and including `until`.
    pub fn partition_events(
        &self,
        partition: &str,
        until: Timestamp,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        let mut events = self.stored_events(partition)?;
        events.retain(|e| e.event.at <= until);
        waterfall_engine::sort_for_derivation(&mut events);
        // Matching and dedup decisions apply to any derivation of the partition.
        let mut one = [(partition.to_string(), events)];
        crate::matching::adjust(&self.conn, &mut one)?;
        let [(_, events)] = one;
        Ok(events)
    }

    /// Rejections recorded for a partition: (event id, at, reason).
    pub fn rejections(
        &self,
        partition: &str,
    ) -> Result<Vec<(String, Timestamp, String)>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT event_id, at, reason FROM rejections WHERE partition = ?1 ORDER BY at",
        )?;
        let rows = st.query_map([partition], |r| {
            Ok((r.get(0)?, Timestamp(r.get(1)?), r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Everything stored: all people (with attributes) and all transitions, owned.
    pub fn history(&self) -> Result<HistoryRows, StoreError> {
        let rows = self.history_for(&HistoryQuery {
            attributes: Some(None),
            ..HistoryQuery::default()
        })?;
        let transitions = rows
            .decode_all()?
            .into_iter()
            .map(|t| t.to_transition())
            .collect();
        Ok(HistoryRows {
            people: rows.people,
            transitions,
        })
    }

    /// What a report reads, and no more: people (with the asked attributes) and the stored
    /// transitions, decoded lazily and filtered by [`ReportRows::transitions`].
    pub fn history_for(&self, q: &HistoryQuery) -> Result<ReportRows, StoreError> {
        let people = self.people_for(q)?;
        let mut st = self
            .conn
            .prepare("SELECT count, subjects, data FROM transitions")?;
        let mut rows = st.query([])?;
        let (mut blobs, mut transitions, mut subjects) = (Vec::new(), 0, 0);
        while let Some(r) = rows.next()? {
            transitions += r.get::<_, i64>(0)? as usize;
            subjects += r.get::<_, i64>(1)? as usize;
            blobs.push(r.get::<_, Vec<u8>>(2)?);
        }
        Ok(ReportRows {
            people,
            blobs,
            transitions,
            subjects,
            field: q.field,
            level: q.level,
        })
    }

    fn people_for(&self, q: &HistoryQuery) -> Result<Vec<PersonRow>, StoreError> {
        let attributes = match &q.attributes {
            None => return Ok(Vec::new()),
            Some(None) => Attributes::All,
            Some(Some(k)) => Attributes::Only(k),
        };
        crate::people::all(&self.conn, attributes, |_| true)
    }

    /// The store's generation: it changes with every ingest and replay that commits, so
    /// anything built from the stored rows at one generation is stale at another.
    pub fn generation(&self) -> Result<i64, StoreError> {
        generation_of(&self.conn)
    }

    /// The stored stage index, if it was built at `generation`.
    pub fn stage_index(&self, generation: i64) -> Result<Option<StoredStageIndex>, StoreError> {
        let read = self.read_stage_index(generation, |names, entries, len| {
            let mut bytes = Vec::with_capacity(len);
            entries
                .read_to_end(&mut bytes)
                .map(|_| (names.to_vec(), bytes))
        })?;
        read.transpose()
            .map_err(|e| StoreError::Corrupt(format!("stage index: {e}")))
    }

    /// Hands the stored stage index to `f` — its names' bytes, and a reader of its entries
    /// with their length in bytes — if it was built at `generation`. The entries are read
    /// from the database piece by piece, never all copied into memory.
    pub fn read_stage_index<R>(
        &self,
        generation: i64,
        f: impl FnOnce(&[u8], &mut dyn std::io::Read, usize) -> R,
    ) -> Result<Option<R>, StoreError> {
        let names: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT names FROM stage_index WHERE id = 1 AND generation = ?1")?
            .query_row([generation], |r| r.get(0))
            .optional()?;
        let Some(names) = names else {
            return Ok(None);
        };
        let mut entries =
            self.conn
                .blob_open(rusqlite::MAIN_DB, "stage_index", "entries", 1, true)?;
        let len = entries.len();
        Ok(Some(f(&names, &mut entries, len)))
    }

    /// Keeps a stage index built from the rows of `generation`, unless the store has moved on
    /// since (then it is stale, and nothing is written). Returns whether it was kept.
    pub fn save_stage_index(
        &mut self,
        generation: i64,
        (names, entries): (&[u8], &[u8]),
    ) -> Result<bool, StoreError> {
        // Never wait for a writer: the index is a convenience, and a report must not stall.
        self.conn.busy_timeout(std::time::Duration::ZERO)?;
        let saved = self.try_save_stage_index(generation, (names, entries));
        self.conn.busy_timeout(crate::BUSY_TIMEOUT)?;
        saved
    }

    fn try_save_stage_index(
        &mut self,
        generation: i64,
        (names, entries): (&[u8], &[u8]),
    ) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if generation_of(&tx)? != generation {
            return Ok(false);
        }
        write_stage_index(&tx, generation, (names, entries))?;
        tx.commit()?;
        Ok(true)
    }

    /// Counts of what is stored: (events, people, accounts, transitions).
    pub fn counts(&self) -> Result<(u64, u64, u64, u64), StoreError> {
        let c = |sql: &str| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok((
            c("SELECT COALESCE(SUM(count), 0) FROM partition_events")?,
            c("SELECT COALESCE(SUM(count), 0) FROM partition_people")?,
            c("SELECT COUNT(*) FROM accounts")?,
            c("SELECT COALESCE(SUM(count), 0) FROM transitions")?,
        ))
    }
}

/// The store's generation as `conn` sees it (see [`Store::generation`]).
pub(crate) fn generation_of(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|g| g.parse().ok())
        .unwrap_or(0))
}

/// Writes the stage index built from the rows of `generation`.
pub(crate) fn write_stage_index(
    conn: &rusqlite::Connection,
    generation: i64,
    (names, entries): (&[u8], &[u8]),
) -> Result<(), StoreError> {
    // The entries (tens of megabytes) written into their pages in place: bound as a value,
    // SQLite would copy them twice more on the way.
    conn.execute(
        "INSERT OR REPLACE INTO stage_index(id, generation, names, entries)
         VALUES (1, ?1, ?2, zeroblob(?3))",
        rusqlite::params![generation, names, entries.len()],
    )?;
    conn.blob_open(rusqlite::MAIN_DB, "stage_index", "entries", 1, false)?
        .write_all_at(entries, 0)?;
    Ok(())
}
