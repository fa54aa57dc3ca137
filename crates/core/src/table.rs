//! A compact, dictionary-encoded form of many transitions: how the store keeps one partition's
//! transitions, and what reports read straight from storage.
//!
//! Every string (subject, stage or status name, rule, event id) is written once per table and
//! rows refer to it by index, so a reader interns each subject once per table instead of once
//! per transition, and decoding borrows every string from the stored bytes.

use crate::{Field, Level, Order, Timestamp, Transition, TransitionRef};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// One transition as indexes into its table's dictionaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRow {
    /// A person or an account.
    pub level: Level,
    /// Stage, status or owner.
    pub field: Field,
    /// Index into [`TransitionTable::subjects`].
    pub subject: u32,
    /// Index into [`TransitionTable::names`] plus one; 0 when there was no value before.
    pub from: u32,
    /// Index into [`TransitionTable::names`].
    pub to: u32,
    /// Index into [`TransitionTable::events`] plus one; 0 for a timer.
    pub event: u32,
    /// Index into [`TransitionTable::names`] of the rule that fired.
    pub rule: u32,
    /// Instant, microseconds since the Unix epoch.
    pub at: i64,
    /// Ingestion sequence of the causing event.
    pub seq: u64,
    /// Position among the changes of one event.
    pub sub: u32,
}

/// Transitions with their strings written once (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransitionTable<'a> {
    /// The distinct subjects, in order of first appearance.
    #[serde(borrow)]
    pub subjects: Vec<&'a str>,
    /// The distinct stage, status, owner and rule names.
    #[serde(borrow)]
    pub names: Vec<&'a str>,
    /// The causing event ids, each once per run of rows it causes: an event's changes follow
    /// one another, so an id is rarely written twice, and ids are not hashed to find out.
    #[serde(borrow)]
    pub events: Vec<&'a str>,
    /// The transitions grouped by subject (in order of first appearance), each subject's in
    /// the order given to [`TransitionTable::encode`].
    pub rows: Vec<TableRow>,
}

/// Interns strings into a dictionary, by index.
struct Dictionary<'a> {
    index: FxHashMap<&'a str, u32>,
    values: Vec<&'a str>,
    /// The last string interned and its index: transitions come in runs of one subject and
    /// one causing event, so most lookups are the previous one again.
    last: Option<(&'a str, u32)>,
}

impl<'a> Dictionary<'a> {
    fn new() -> Self {
        Dictionary {
            index: FxHashMap::default(),
            values: Vec::new(),
            last: None,
        }
    }

    fn intern(&mut self, s: &'a str) -> u32 {
        if let Some((last, i)) = self.last {
            if last == s {
                return i;
            }
        }
        let next = self.values.len() as u32;
        let i = *self.index.entry(s).or_insert(next);
        if i == next {
            self.values.push(s);
        }
        self.last = Some((s, i));
        i
    }

    /// Appends `s` unless it is the string appended or interned last: for strings almost
    /// all distinct (event ids), where hashing each to find the few repeats costs more than
    /// writing a repeat again.
    fn append(&mut self, s: &'a str) -> u32 {
        if let Some((last, i)) = self.last {
            if last == s {
                return i;
            }
        }
        let i = self.values.len() as u32;
        self.values.push(s);
        self.last = Some((s, i));
        i
    }
}

impl<'a> TransitionTable<'a> {
    /// Encodes transitions as a table's stored bytes, grouped by subject (readers that index
    /// by subject then find them in order), each subject's kept in the order given.
    pub fn encode(transitions: &[Transition]) -> Vec<u8> {
        let (mut subjects, mut names, mut events) =
            (Dictionary::new(), Dictionary::new(), Dictionary::new());
        let mut rows: Vec<TableRow> = transitions
            .iter()
            .map(|t| TableRow {
                level: t.level,
                field: t.field,
                subject: subjects.intern(&t.subject),
                from: t.from.as_deref().map_or(0, |f| names.intern(f) + 1),
                to: names.intern(&t.to),
                event: t.event.as_deref().map_or(0, |e| events.append(e) + 1),
                rule: names.intern(&t.rule),
                at: t.order.at.0,
                seq: t.order.seq,
                sub: t.order.sub,
            })
            .collect();
        rows.sort_by_key(|r| r.subject);
        let table = TransitionTable {
            subjects: subjects.values,
            names: names.values,
            events: events.values,
            rows,
        };
        // Sized up front (a row takes 20-30 bytes, a string its length and a short
        // prefix): grown from empty, the buffer was copied at every doubling.
        let strings = |d: &[&str]| d.iter().map(|s| s.len() + 2).sum::<usize>();
        let capacity = table.rows.len() * 28
            + strings(&table.subjects)
            + strings(&table.names)
            + strings(&table.events)
            + 16;
        postcard::to_extend(&table, Vec::with_capacity(capacity))
            .expect("encoding to memory cannot fail")
    }

    /// Reads a table from its stored bytes, borrowing every string from them.
    pub fn decode(bytes: &'a [u8]) -> Result<TransitionTable<'a>, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("stored transitions: {e}"))
    }

    /// Checks that every index points into its dictionary, so [`TransitionTable::get`] cannot
    /// fail on a table read from outside.
    pub fn validate(&self) -> Result<(), String> {
        let (s, n, e) = (
            self.subjects.len() as u32,
            self.names.len() as u32,
            self.events.len() as u32,
        );
        match self
            .rows
            .iter()
            .position(|r| r.subject >= s || r.from > n || r.to >= n || r.rule >= n || r.event > e)
        {
            None => Ok(()),
            Some(i) => Err(format!(
                "stored transitions: row {i} points outside its table"
            )),
        }
    }

    /// The transition a row stands for (the row must come from this validated table).
    pub fn get(&self, r: &TableRow) -> TransitionRef<'a> {
        TransitionRef {
            level: r.level,
            subject: self.subjects[r.subject as usize],
            field: r.field,
            order: Order {
                at: Timestamp(r.at),
                seq: r.seq,
                sub: r.sub,
            },
            from: r.from.checked_sub(1).map(|i| self.names[i as usize]),
            to: self.names[r.to as usize],
            event: r.event.checked_sub(1).map(|i| self.events[i as usize]),
            rule: self.names[r.rule as usize],
        }
    }

    /// Every transition, in stored order.
    pub fn iter(&self) -> impl Iterator<Item = TransitionRef<'a>> + '_ {
        self.rows.iter().map(|r| self.get(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(subject: &str, from: Option<&str>, to: &str, event: Option<&str>) -> Transition {
        Transition {
            level: Level::Person,
            subject: subject.into(),
            field: Field::Stage,
            order: Order {
                at: Timestamp(1_700_000_000_000_000),
                seq: 7,
                sub: 1,
            },
            from: from.map(Into::into),
            to: to.into(),
            event: event.map(Into::into),
            rule: "created".into(),
        }
    }

    #[test]
    fn transitions_round_trip_and_strings_are_written_once() {
        let all = vec![
            t("p1", None, "MAL", Some("e1")),
            t("p1", Some("MAL"), "MQL", Some("e2")),
            t("p2", None, "MAL", None),
        ];
        let bytes = TransitionTable::encode(&all);
        let table = TransitionTable::decode(&bytes).unwrap();
        table.validate().unwrap();
        let back: Vec<Transition> = table.iter().map(|r| r.to_transition()).collect();
        assert_eq!(back, all);
        assert_eq!(table.subjects, ["p1", "p2"]);
        assert_eq!(table.names, ["MAL", "created", "MQL"]);
    }

    #[test]
    fn a_row_pointing_outside_its_table_is_an_error() {
        let bytes = TransitionTable::encode(&[t("p1", None, "MAL", Some("e1"))]);
        let mut table = TransitionTable::decode(&bytes).unwrap();
        table.rows[0].to = 9;
        assert!(table.validate().is_err());
        assert!(TransitionTable::decode(&bytes[..bytes.len() - 3]).is_err());
    }
}
