//! Appending events to the log and re-deriving the partitions they touch.

use crate::{schema, Store, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};
use rustc_hash::{FxHashMap, FxHashSet};
use waterfall_core::{Event, EventBody, Subject, Timestamp};
use waterfall_engine::{derive_all, DeriveOptions, Derived, SequencedEvent};
use waterfall_model::Model;

/// Options of one ingest or replay.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Timers due up to this instant fire (the caller's "now").
    pub horizon: Timestamp,
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestSummary {
    /// Events handed in (for a replay: events re-derived).
    pub received: usize,
    /// Events new to the log.
    pub stored: usize,
    /// Events whose id was already in the log (changed nothing).
    pub duplicates: usize,
    /// Partitions (accounts, or people without one) re-derived.
    pub partitions: usize,
    /// Transitions now stored for those partitions.
    pub transitions: usize,
    /// People erased by this batch.
    pub erased: usize,
    /// Wall-clock seconds per phase (`append`, `load`, `derive`, `write`, `commit`), for
    /// `--verbose` and benchmarks.
    pub phases: Vec<(&'static str, f64)>,
}

/// Wall-clock time per phase of an ingest.
struct PhaseClock {
    last: std::time::Instant,
    phases: Vec<(&'static str, f64)>,
}

impl PhaseClock {
    fn new() -> Self {
        PhaseClock {
            last: std::time::Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Adds the time since the last lap to `phase` (phases repeat across passes).
    fn lap(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        let secs = (now - self.last).as_secs_f64();
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += secs,
            None => self.phases.push((phase, secs)),
        }
        self.last = now;
    }
}

/// Where events go: the partition map, loaded lazily from the database.
struct Router {
    people: FxHashMap<String, (String, i64)>,
    opportunities: FxHashMap<String, String>,
    touched: FxHashSet<String>,
    /// The log was empty when the batch began: nothing to look up in the database.
    fresh: bool,
    /// Partition moves (person or everyone, from, to) waiting for the log's indexes (fresh
    /// loads).
    deferred_moves: Vec<(Option<String>, String, String)>,
}

/// Moves the stored events of `person` (of everyone, when `None`) from partition `from` to `to`.
fn move_events(
    tx: &Transaction<'_>,
    person: Option<&str>,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    match person {
        Some(p) => tx
            .prepare_cached(
                "UPDATE events SET partition = ?1 WHERE person = ?2 AND partition = ?3",
            )?
            .execute(params![to, p, from])?,
        None => tx
            .prepare_cached("UPDATE events SET partition = ?1 WHERE partition = ?2")?
            .execute(params![to, from])?,
    };
    Ok(())
}

fn person_partition_key(person: &str) -> String {
    format!("~p:{person}")
}

impl Router {
    fn person(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        if let Some(v) = self.people.get(person) {
            return Ok(Some(v.clone()));
        }
        if self.fresh {
            return Ok(None);
        }
        let v: Option<(String, i64)> = tx
            .prepare_cached("SELECT partition, at FROM person_partition WHERE person = ?1")?
            .query_row([person], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some(v) = &v {
            self.people.insert(person.to_string(), v.clone());
        }
        Ok(v)
    }

    fn set_person(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        partition: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        tx.prepare_cached(
            "INSERT INTO person_partition(person, partition, at) VALUES (?1, ?2, ?3)
             ON CONFLICT(person) DO UPDATE SET partition = excluded.partition, at = excluded.at",
        )?
        .execute(params![person, partition, at])?;
        self.people
            .insert(person.to_string(), (partition.to_string(), at));
        Ok(())
    }

    /// Moves every stored event of `person` to `to` (its partition changed).
    fn move_person(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        if from == to {
            return Ok(());
        }
        self.move_events(tx, Some(person), from, to)
    }

    /// Moves the events of `person` (or of everyone, when `None`) from partition `from` to `to`.
    fn move_events(
        &mut self,
        tx: &Transaction<'_>,
        person: Option<&str>,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        if self.fresh {
            // The log's indexes are off during a fresh load: move once they are back (in
            // order, which gives the same result since later events are routed to `to`).
            self.deferred_moves.push((
                person.map(str::to_string),
                from.to_string(),
                to.to_string(),
            ));
        } else {
            move_events(tx, person, from, to)?;
        }
        self.touched.insert(from.to_string());
        self.touched.insert(to.to_string());
        Ok(())
    }

    /// A person-only partition (a person without an account, with the duplicates merged into
    /// them) joins an account's partition: everything in it moves there.
    fn adopt(&mut self, tx: &Transaction<'_>, from: &str, account: &str) -> Result<(), StoreError> {
        self.move_events(tx, None, from, account)?;
        tx.prepare_cached("UPDATE person_partition SET partition = ?1 WHERE partition = ?2")?
            .execute([account, from])?;
        for (partition, _) in self.people.values_mut() {
            if partition == from {
                *partition = account.to_string();
            }
        }
        Ok(())
    }

    /// The partition a person's event belongs to, creating or moving the person as needed.
    /// `account` and `at` come from a `person` event that names an account.
    fn route_person(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        account: Option<&str>,
        at: i64,
    ) -> Result<String, StoreError> {
        let current = self.person(tx, person)?;
        match (current, account) {
            (None, Some(a)) => {
                self.set_person(tx, person, a, at)?;
                Ok(a.to_string())
            }
            (Some((cur, i64::MAX)), Some(a)) if cur.starts_with("~p:") => {
                // A merged duplicate names an account its survivor lacks: the merged person
                // (survivor and duplicates) belongs to that account.
                self.adopt(tx, &cur, a)?;
                Ok(a.to_string())
            }
            (None, None) => {
                let p = person_partition_key(person);
                self.set_person(tx, person, &p, i64::MIN)?;
                Ok(p)
            }
            (Some((cur, cur_at)), Some(a)) if cur != a && at >= cur_at => {
                // The person's latest known account decides where all their events live.
                self.move_person(tx, person, &cur, a)?;
                self.set_person(tx, person, a, at)?;
                Ok(a.to_string())
            }
            (Some((cur, cur_at)), Some(_)) if at >= cur_at => {
                self.set_person(tx, person, &cur, at)?;
                Ok(cur)
            }
            (Some((cur, _)), _) => Ok(cur),
        }
    }

    fn route(&mut self, tx: &Transaction<'_>, ev: &Event) -> Result<String, StoreError> {
        let at = ev.at.0;
        Ok(match &ev.body {
            EventBody::Account { account, .. } => account.clone(),
            EventBody::Activity {
                subject: Subject::Account(a),
                ..
            } => a.clone(),
            EventBody::Person {
                person, account, ..
            } => self.route_person(tx, person, account.as_deref(), at)?,
            EventBody::Activity {
                subject: Subject::Person(p),
                ..
            }
            | EventBody::Status { person: p, .. }
            | EventBody::Stage { person: p, .. }
            | EventBody::Erase { person: p } => self.route_person(tx, p, None, at)?,
            EventBody::Merge { person, into } => {
                let mut target = self.route_person(tx, into, None, at)?;
                let duplicate = self.person(tx, person)?.map(|(p, _)| p);
                if let Some(dup) = duplicate {
                    if target.starts_with("~p:") && !dup.starts_with('~') {
                        // The survivor has no account but the duplicate has: both live there.
                        self.adopt(tx, &target, &dup)?;
                        target = dup.clone();
                    }
                    self.move_person(tx, person, &dup, &target)?;
                }
                self.set_person(tx, person, &target, i64::MAX)?;
                target
            }
            EventBody::Opportunity {
                opportunity,
                account,
                ..
            } => {
                if let Some(p) = self.opportunities.get(opportunity) {
                    p.clone()
                } else {
                    let known: Option<String> = if self.fresh {
                        None
                    } else {
                        tx.prepare_cached(
                            "SELECT partition FROM opportunity_partition WHERE opportunity = ?1",
                        )?
                        .query_row([opportunity], |r| r.get(0))
                        .optional()?
                    };
                    let p = match (known, account) {
                        (Some(p), _) => p,
                        (None, Some(a)) => {
                            tx.prepare_cached("INSERT INTO opportunity_partition(opportunity, partition) VALUES (?1, ?2)")?
                                .execute([opportunity, a])?;
                            a.clone()
                        }
                        (None, None) => format!("~o:{opportunity}"),
                    };
                    self.opportunities.insert(opportunity.clone(), p.clone());
                    p
                }
            }
        })
    }
}

/// How much a batch holds in memory: the trade between speed and peak memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Events kept in memory for derivation at most; past that, a batch re-reads its events
    /// from the log instead, so a file of any size ingests in bounded memory.
    pub keep_in_memory: usize,
    /// How many partitions are loaded, derived and written per pass.
    pub partitions_per_pass: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            keep_in_memory: 1_500_000,
            partitions_per_pass: 8192,
        }
    }
}

/// One all-or-nothing ingest in progress: events are appended chunk by chunk (so a caller can
/// stream a large file and show progress), then [`Batch::finish`] re-derives the touched
/// partitions and commits. Dropping a batch without finishing it stores nothing.
pub struct Batch<'s> {
    tx: Transaction<'s>,
    model: &'s Model,
    router: Router,
    batch_start: i64,
    next_seq: i64,
    /// The log was empty: its indexes are off until `finish`, and in-batch duplicates are
    /// found through `seen` (hash of id → seq of its first event).
    fresh: bool,
    seen: rustc_hash::FxHashMap<u64, i64>,
    /// This batch's events by seq offset, while they fit in [`BatchLimits::keep_in_memory`].
    in_memory: Vec<Option<Event>>,
    keep_in_memory: bool,
    limits: BatchLimits,
    erasures: Vec<String>,
    summary: IngestSummary,
    clock: PhaseClock,
}

fn id_hash(id: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(id.as_bytes());
    h.finish()
}

impl Store {
    /// Appends events to the log (skipping ids already there) and re-derives every partition
    /// they touch, all in one transaction. Events must already be valid for `model`.
    ///
    /// The model is recorded as the database's model on first use; later ingests must use the
    /// same one (re-derive under another with [`Store::replay`]).
    pub fn ingest(
        &mut self,
        model: &Model,
        events: Vec<Event>,
        opts: IngestOptions,
    ) -> Result<IngestSummary, StoreError> {
        let mut batch = self.begin(model)?;
        batch.append(events)?;
        batch.finish(opts)
    }

    /// Starts an all-or-nothing ingest (see [`Batch`]).
    pub fn begin<'s>(&'s mut self, model: &'s Model) -> Result<Batch<'s>, StoreError> {
        let self_limits = self.limits;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Store::set_meta(&tx, "model_source", &model.source)?;
        Store::set_meta(&tx, "model_name", &model.name)?;
        let batch_start: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM events", [], |r| {
                r.get(0)
            })?;
        // On an empty log no id can be a duplicate of a stored one, and the log's indexes
        // are cheaper built once at the end than maintained row by row.
        let fresh = batch_start == 1;
        if fresh {
            tx.execute_batch(schema::DROP_EVENT_INDEXES)?;
        }
        Ok(Batch {
            tx,
            model,
            router: Router {
                people: FxHashMap::default(),
                opportunities: FxHashMap::default(),
                touched: FxHashSet::default(),
                fresh,
                deferred_moves: Vec::new(),
            },
            batch_start,
            next_seq: batch_start,
            fresh,
            seen: Default::default(),
            in_memory: Vec::new(),
            keep_in_memory: true,
            limits: self_limits,
            erasures: Vec::new(),
            summary: IngestSummary::default(),
            clock: PhaseClock::new(),
        })
    }
}

impl Batch<'_> {
    /// Appends a chunk of events (in arrival order) to the batch.
    pub fn append(&mut self, events: Vec<Event>) -> Result<(), StoreError> {
        self.summary.received += events.len();
        for ev in events {
            if self.is_duplicate(&ev.id)? {
                self.summary.duplicates += 1;
                continue;
            }
            let partition = self.router.route(&self.tx, &ev)?;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.tx
                .prepare_cached(
                    "INSERT INTO events(seq, id, at, partition, person, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![seq, ev.id, ev.at.0, partition, ev.body.person(), crate::body::encode(&ev)])?;
            if self.fresh {
                self.seen.entry(id_hash(&ev.id)).or_insert(seq);
            }
            if self.model.matching.is_active() {
                crate::matching::observe(&self.tx, &ev)?;
            }
            if let EventBody::Erase { person } = &ev.body {
                self.erasures.push(person.clone());
            }
            if self.keep_in_memory {
                if self.in_memory.len() < self.limits.keep_in_memory {
                    self.in_memory.push(Some(ev));
                } else {
                    // The rest of the batch is read back from the log when derived.
                    self.keep_in_memory = false;
                }
            }
            self.router.touched.insert(partition);
            self.summary.stored += 1;
        }
        Ok(())
    }

    /// Whether an event id is already in the log or earlier in this batch.
    fn is_duplicate(&self, id: &str) -> Result<bool, StoreError> {
        if !self.fresh {
            // The unique index sees this transaction's own rows too.
            return Ok(self
                .tx
                .prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
                .query_row([id], |_| Ok(()))
                .optional()?
                .is_some());
        }
        match self.seen.get(&id_hash(id)) {
            None => Ok(false),
            Some(&seq) => {
                let first: String = self
                    .tx
                    .prepare_cached("SELECT id FROM events WHERE seq = ?1")?
                    .query_row([seq], |r| r.get(0))?;
                Ok(first == id)
            }
        }
    }

    /// Rebuilds what a fresh load postponed, applies erasures, re-derives every touched
    /// partition and commits. Returns what the whole batch did.
    pub fn finish(mut self, opts: IngestOptions) -> Result<IngestSummary, StoreError> {
        let tx = &self.tx;
        if self.fresh {
            tx.execute_batch(schema::EVENT_INDEXES)?;
        }
        for (person, from, to) in std::mem::take(&mut self.router.deferred_moves) {
            move_events(tx, person.as_deref(), &from, &to)?;
        }
        for person in &self.erasures {
            self.summary.erased += 1;
            erase_person(tx, person)?;
            crate::matching::forget(tx, person)?;
            for slot in self.in_memory.iter_mut() {
                if slot
                    .as_ref()
                    .is_some_and(|e| e.body.person() == Some(person.as_str()))
                {
                    *slot = None;
                }
            }
        }
        // Matching and dedup may move people now that the whole batch is routed.
        let moved = crate::matching::reconcile(tx, &self.model.matching)?;
        self.router.touched.extend(moved);
        self.clock.lap("read+append");
        let touched: Vec<String> = std::mem::take(&mut self.router.touched)
            .into_iter()
            .collect();
        let done = rederive(
            tx,
            self.model,
            &touched,
            (self.batch_start, &mut self.in_memory),
            Derivation {
                opts,
                partitions_per_pass: self.limits.partitions_per_pass,
            },
            &mut self.clock,
        )?;
        self.summary.partitions = done.partitions;
        self.summary.transitions = done.transitions;
        self.tx.commit()?;
        self.clock.lap("commit");
        self.summary.phases = self.clock.phases;
        Ok(self.summary)
    }
}

impl Store {
    /// Re-derives every partition from the event log under `model` (after a model change),
    /// and records `model` as the database's model. One transaction: all or nothing.
    pub fn replay(
        &mut self,
        model: &Model,
        opts: IngestOptions,
    ) -> Result<IngestSummary, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Store::set_meta(&tx, "model_source", &model.source)?;
        Store::set_meta(&tx, "model_name", &model.name)?;
        let moved = crate::matching::before_replay(&tx, &model.matching)?;
        let touched: Vec<String> = {
            let mut st = tx.prepare("SELECT DISTINCT partition FROM events")?;
            let rows = st.query_map([], |r| r.get(0))?;
            let mut all: Vec<String> = rows.collect::<Result<_, _>>()?;
            all.extend(moved);
            all
        };
        let mut clock = PhaseClock::new();
        let how = Derivation {
            opts,
            partitions_per_pass: self.limits.partitions_per_pass,
        };
        let done = rederive(&tx, model, &touched, (i64::MAX, &mut []), how, &mut clock)?;
        tx.commit()?;
        clock.lap("commit");
        Ok(IngestSummary {
            received: done.events,
            partitions: done.partitions,
            transitions: done.transitions,
            phases: clock.phases,
            ..Default::default()
        })
    }

    /// Loads every partition's events in derivation order (for impact analysis and tests).
    pub fn all_partitions(&self) -> Result<Vec<Vec<SequencedEvent>>, StoreError> {
        let mut all = load_partitions(&self.conn, None, i64::MAX, &mut [])?;
        crate::matching::adjust(&self.conn, &mut all)?;
        Ok(all.into_iter().map(|(_, evs)| evs).collect())
    }
}

/// Removes everything identifying a person from the log: their events keep only their id.
fn erase_person(tx: &Transaction<'_>, person: &str) -> Result<(), StoreError> {
    // A person's events all live in their partition: no index on `person` is needed.
    tx.execute(
        "UPDATE events SET body = NULL, person = NULL
         WHERE partition = (SELECT partition FROM person_partition WHERE person = ?1) AND person = ?1",
        [person],
    )?;
    tx.execute("DELETE FROM person_partition WHERE person = ?1", [person])?;
    Ok(())
}

/// Loads the events of some partitions, grouped by partition and sorted by (at, seq): all
/// partitions when `only` is `None`, else those in `temp.touched`, reached through the
/// partition index (`Some("index")`) or by one sequential scan (`Some("scan")`). Events with
/// seq in `[batch_start, batch_start + in_memory.len())` are taken from `in_memory`.
fn load_partitions(
    conn: &rusqlite::Connection,
    only: Option<&str>,
    batch_start: i64,
    in_memory: &mut [Option<Event>],
) -> Result<Vec<(String, Vec<SequencedEvent>)>, StoreError> {
    let sql = match only {
        Some(_) => {
            "SELECT e.seq, e.partition, CASE WHEN e.seq < ?1 OR e.seq >= ?2 THEN e.body END
                    FROM events e JOIN temp.touched t ON t.partition = e.partition
                    WHERE e.body IS NOT NULL"
        }
        None => {
            "SELECT seq, partition, CASE WHEN seq < ?1 OR seq >= ?2 THEN body END
                 FROM events WHERE body IS NOT NULL"
        }
    };
    // Events with seq in [batch_start, memory_end) are in `in_memory`; the rest are parsed.
    let memory_end = batch_start.saturating_add(in_memory.len() as i64);
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([batch_start, memory_end])?;
    let mut groups: FxHashMap<String, Vec<SequencedEvent>> = FxHashMap::default();
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let partition: String = r.get(1)?;
        let event = if seq < batch_start || seq >= memory_end {
            crate::body::decode(r.get_ref(2)?, seq)?
        } else {
            // Each batch event belongs to exactly one partition: move it, never clone it.
            match in_memory
                .get_mut((seq - batch_start) as usize)
                .and_then(Option::take)
            {
                Some(e) => e,
                None => continue,
            }
        };
        groups.entry(partition).or_default().push(SequencedEvent {
            seq: seq as u64,
            event,
        });
    }
    let mut out: Vec<(String, Vec<SequencedEvent>)> = groups.into_iter().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, evs) in &mut out {
        evs.sort_by_key(|e| (e.event.at, e.seq));
    }
    Ok(out)
}

/// How a re-derivation runs: up to which instant, and how many partitions per pass.
#[derive(Clone, Copy)]
struct Derivation {
    opts: IngestOptions,
    partitions_per_pass: usize,
}

/// Re-derives the given partitions and replaces their derived rows. Events with seq from
/// `batch_start` on are taken from `in_memory` while it has them.
fn rederive(
    tx: &Transaction<'_>,
    model: &Model,
    touched: &[String],
    (batch_start, in_memory): (i64, &mut [Option<Event>]),
    how: Derivation,
    clock: &mut PhaseClock,
) -> Result<Rederived, StoreError> {
    let Derivation {
        opts,
        partitions_per_pass: passes_of,
    } = how;
    tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS touched(partition TEXT PRIMARY KEY)")?;
    let mut touched = touched.to_vec();
    touched.sort();
    let mut done = Rederived::default();
    // A pass at a time, so memory stays bounded however many partitions a batch touches.
    for pass in touched.chunks(passes_of.max(1)) {
        tx.execute_batch("DELETE FROM temp.touched")?;
        {
            let mut ins =
                tx.prepare_cached("INSERT OR IGNORE INTO temp.touched(partition) VALUES (?1)")?;
            for p in pass {
                ins.execute([p])?;
            }
        }
        for table in ["transitions", "people", "accounts", "rejections"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE partition IN (SELECT partition FROM temp.touched)"
                ),
                [],
            )?;
        }
        let how = if touched.len() > 4096 {
            "scan"
        } else {
            "index"
        };
        let mut loaded = load_partitions(tx, Some(how), batch_start, in_memory)?;
        // Matched accounts and automatic merges are applied as the partitions are read.
        crate::matching::adjust(tx, &mut loaded)?;
        let (names, events): (Vec<String>, Vec<Vec<SequencedEvent>>) = loaded.into_iter().unzip();
        done.events += events.iter().map(Vec::len).sum::<usize>();
        clock.lap("load");
        let derived = derive_all(
            model,
            &events,
            DeriveOptions {
                horizon: opts.horizon,
            },
        );
        drop(events);
        clock.lap("derive");
        for (partition, d) in names.iter().zip(&derived) {
            done.transitions += write_derived(tx, partition, d)?;
        }
        done.partitions += names.len();
        clock.lap("write");
    }
    Ok(done)
}

/// What a re-derivation did.
#[derive(Debug, Default)]
struct Rederived {
    partitions: usize,
    events: usize,
    transitions: usize,
}

fn write_derived(tx: &Transaction<'_>, partition: &str, d: &Derived) -> Result<usize, StoreError> {
    if !d.transitions.is_empty() {
        let data = postcard::to_stdvec(&d.transitions)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode transitions: {e}")))?;
        tx.prepare_cached("INSERT INTO transitions(partition, count, data) VALUES (?1, ?2, ?3)")?
            .execute(params![partition, d.transitions.len() as i64, data])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT OR REPLACE INTO people(id, partition, account, attrs, stage, status, created_at, last_activity, merged_into)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for p in &d.people {
        ins.execute(params![
            p.id,
            partition,
            p.account,
            serde_json::Value::Object(p.attrs.clone()).to_string(),
            p.stage,
            p.status,
            p.created_at.0,
            p.last_activity.map(|t| t.0),
            p.merged_into
        ])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT OR REPLACE INTO accounts(id, partition, attrs, account_type, opportunities) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for a in &d.accounts {
        ins.execute(params![
            a.id,
            partition,
            serde_json::Value::Object(a.attrs.clone()).to_string(),
            a.account_type,
            serde_json::to_string(&a.opportunities)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
        ])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO rejections(partition, event_id, at, reason) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for r in &d.rejections {
        ins.execute(params![partition, r.event, r.at.0, r.reason])?;
    }
    Ok(d.transitions.len())
}
