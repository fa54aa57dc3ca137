//! Appending events to the log and re-deriving the partitions they touch.

use crate::{Store, StoreError};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::{HashMap, HashSet};
use waterfall_core::{Event, EventBody, Field, Level, Subject, Timestamp};
use waterfall_engine::{derive_all, DeriveOptions, Derived, SequencedEvent};
use waterfall_model::Model;

/// Options of one ingest or replay.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Timers due up to this instant fire (the caller's "now").
    pub horizon: Timestamp,
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Events handed in.
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
}

/// Where events go: the partition map, loaded lazily from the database.
struct Router {
    people: HashMap<String, (String, i64)>,
    opportunities: HashMap<String, String>,
    touched: HashSet<String>,
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
        tx.prepare_cached("UPDATE events SET partition = ?1 WHERE person = ?2 AND partition = ?3")?
            .execute(params![to, person, from])?;
        self.touched.insert(from.to_string());
        self.touched.insert(to.to_string());
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
                let target = self.route_person(tx, into, None, at)?;
                if let Some((cur, _)) = self.person(tx, person)? {
                    self.move_person(tx, person, &cur, &target)?;
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
                    let known: Option<String> = tx
                        .prepare_cached(
                            "SELECT partition FROM opportunity_partition WHERE opportunity = ?1",
                        )?
                        .query_row([opportunity], |r| r.get(0))
                        .optional()?;
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

impl Store {
    /// Appends events to the log (skipping ids already there) and re-derives every partition
    /// they touch, all in one transaction. Events must already be valid for `model`.
    ///
    /// The model is recorded as the database's model on first use; later ingests must use the
    /// same one (re-derive under another with [`Store::replay`]).
    pub fn ingest(
        &mut self,
        model: &Model,
        events: &[Event],
        opts: IngestOptions,
    ) -> Result<IngestSummary, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Store::set_meta(&tx, "model_source", &model.source)?;
        Store::set_meta(&tx, "model_name", &model.name)?;
        let batch_start: i64 =
            tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM events", [], |r| {
                r.get(0)
            })?;
        let mut router = Router {
            people: HashMap::new(),
            opportunities: HashMap::new(),
            touched: HashSet::new(),
        };
        let mut summary = IngestSummary {
            received: events.len(),
            ..Default::default()
        };
        // Events of this batch by seq offset, so derivation does not re-read their bodies.
        let mut in_memory: Vec<Option<&Event>> = Vec::with_capacity(events.len());
        let mut erasures = Vec::new();
        {
            let mut seen = HashSet::with_capacity(events.len());
            for ev in events {
                // A repeated id inside one batch is as much a duplicate as one already stored.
                if !seen.insert(ev.id.as_str()) {
                    summary.duplicates += 1;
                    continue;
                }
                let exists = tx
                    .prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
                    .query_row([&ev.id], |_| Ok(()))
                    .optional()?
                    .is_some();
                if exists {
                    summary.duplicates += 1;
                    continue;
                }
                let partition = router.route(&tx, ev)?;
                let seq = batch_start + in_memory.len() as i64;
                tx.prepare_cached("INSERT INTO events(seq, id, at, partition, person, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
                    .execute(params![seq, ev.id, ev.at.0, partition, ev.body.person(), ev.to_json_line()])?;
                in_memory.push(Some(ev));
                router.touched.insert(partition);
                if model.matching.is_active() {
                    crate::matching::observe(&tx, ev)?;
                }
                if let EventBody::Erase { person } = &ev.body {
                    erasures.push(person.clone());
                }
                summary.stored += 1;
            }
        }
        for person in &erasures {
            summary.erased += 1;
            erase_person(&tx, person)?;
            crate::matching::forget(&tx, person)?;
            for slot in in_memory.iter_mut() {
                if slot.is_some_and(|e| e.body.person() == Some(person.as_str())) {
                    *slot = None;
                }
            }
        }
        // Matching and dedup may move people now that the whole batch is routed.
        router
            .touched
            .extend(crate::matching::reconcile(&tx, &model.matching)?);
        let touched: Vec<String> = router.touched.into_iter().collect();
        let (partitions, transitions) =
            rederive(&tx, model, &touched, batch_start, &in_memory, opts)?;
        summary.partitions = partitions;
        summary.transitions = transitions;
        tx.commit()?;
        Ok(summary)
    }

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
        let (partitions, transitions) = rederive(&tx, model, &touched, i64::MAX, &[], opts)?;
        tx.commit()?;
        Ok(IngestSummary {
            partitions,
            transitions,
            ..Default::default()
        })
    }

    /// Loads every partition's events in derivation order (for impact analysis and tests).
    pub fn all_partitions(&self) -> Result<Vec<Vec<SequencedEvent>>, StoreError> {
        let mut all = load_partitions(&self.conn, None, i64::MAX, &[])?;
        crate::matching::adjust(&self.conn, &mut all)?;
        Ok(all.into_iter().map(|(_, evs)| evs).collect())
    }
}

/// Removes everything identifying a person from the log: their events keep only their id.
fn erase_person(tx: &Transaction<'_>, person: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE events SET body = NULL, person = NULL WHERE person = ?1",
        [person],
    )?;
    tx.execute("DELETE FROM person_partition WHERE person = ?1", [person])?;
    Ok(())
}

/// Loads the events of some partitions (all when `only` is `None`), grouped by partition and
/// sorted by (at, seq). Bodies of events at or after `batch_start` come from `in_memory`.
fn load_partitions(
    conn: &rusqlite::Connection,
    only: Option<&str>,
    batch_start: i64,
    in_memory: &[Option<&Event>],
) -> Result<Vec<(String, Vec<SequencedEvent>)>, StoreError> {
    let sql = match only {
        Some(_) => "SELECT e.seq, e.partition, CASE WHEN e.seq < ?1 THEN e.body END
                    FROM events e JOIN temp.touched t ON t.partition = e.partition
                    WHERE e.body IS NOT NULL",
        None => "SELECT seq, partition, CASE WHEN seq < ?1 THEN body END FROM events WHERE body IS NOT NULL",
    };
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([batch_start])?;
    let mut groups: HashMap<String, Vec<SequencedEvent>> = HashMap::new();
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let partition: String = r.get(1)?;
        let event = if seq < batch_start {
            let body: String = r.get(2)?;
            waterfall_core::parse_line(&body)
                .map_err(|e| StoreError::Corrupt(format!("event #{seq}: {e}")))?
        } else {
            match in_memory
                .get((seq - batch_start) as usize)
                .copied()
                .flatten()
            {
                Some(e) => e.clone(),
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

/// Re-derives the given partitions and replaces their derived rows. Returns (partitions,
/// transitions written).
fn rederive(
    tx: &Transaction<'_>,
    model: &Model,
    touched: &[String],
    batch_start: i64,
    in_memory: &[Option<&Event>],
    opts: IngestOptions,
) -> Result<(usize, usize), StoreError> {
    tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS touched(partition TEXT PRIMARY KEY); DELETE FROM temp.touched;")?;
    {
        let mut ins =
            tx.prepare_cached("INSERT OR IGNORE INTO temp.touched(partition) VALUES (?1)")?;
        for p in touched {
            ins.execute([p])?;
        }
    }
    for table in ["transitions", "people", "accounts", "rejections"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE partition IN (SELECT partition FROM temp.touched)"),
            [],
        )?;
    }
    let mut loaded = load_partitions(tx, Some("touched"), batch_start, in_memory)?;
    crate::matching::adjust(tx, &mut loaded)?;
    let (names, partitions): (Vec<String>, Vec<Vec<SequencedEvent>>) = loaded.into_iter().unzip();
    let derived = derive_all(
        model,
        &partitions,
        DeriveOptions {
            horizon: opts.horizon,
        },
    );
    let mut written = 0;
    for (partition, d) in names.iter().zip(&derived) {
        written += write_derived(tx, partition, d)?;
    }
    Ok((partitions.len(), written))
}

fn write_derived(tx: &Transaction<'_>, partition: &str, d: &Derived) -> Result<usize, StoreError> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO transitions(partition, level, subject, field, at, seq, sub, from_value, to_value, event_id, rule)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for t in &d.transitions {
        ins.execute(params![
            partition,
            matches!(t.level, Level::Account) as i64,
            t.subject,
            matches!(t.field, Field::Status) as i64,
            t.order.at.0,
            t.order.seq as i64,
            t.order.sub as i64,
            t.from,
            t.to,
            t.event,
            t.rule
        ])?;
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
