//! A compact, dictionary-encoded form of many transitions: how the store keeps one partition's
//! transitions, and what reports read straight from storage.
//!
//! Every string (subject, stage or status name, rule, event id) is written once per table and
//! rows refer to it by index, so a reader interns each subject once per table instead of once
//! per transition, and decoding borrows every string from the stored bytes.

use crate::event::record::write_varint;
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

/// `rows` grouped by subject (subjects in index order, each one's rows in the order given):
/// a counting sort, since subjects are indexes below `subjects`.
fn group_by_subject(rows: Vec<TableRow>, subjects: usize) -> Vec<TableRow> {
    if rows.windows(2).all(|w| w[0].subject <= w[1].subject) {
        return rows;
    }
    // Where each subject's rows start in the output.
    let mut next = vec![0usize; subjects + 1];
    for r in &rows {
        next[r.subject as usize + 1] += 1;
    }
    for i in 1..next.len() {
        next[i] += next[i - 1];
    }
    let mut slots: Vec<Option<TableRow>> = vec![None; rows.len()];
    for r in rows {
        let at = &mut next[r.subject as usize];
        slots[*at] = Some(r);
        *at += 1;
    }
    slots.into_iter().flatten().collect()
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
    /// A dictionary with room for `n` strings (grown from empty, its map was rehashed
    /// again and again).
    fn with_capacity(n: usize) -> Self {
        Dictionary {
            index: FxHashMap::with_capacity_and_hasher(n, Default::default()),
            values: Vec::with_capacity(n),
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
        // Subjects and events are at most one a transition; names (stages, statuses, rules)
        // are few.
        let (mut subjects, mut names, mut events) = (
            Dictionary::with_capacity(transitions.len()),
            Dictionary::with_capacity(32),
            Dictionary::with_capacity(0),
        );
        let rows: Vec<TableRow> = transitions
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
        let rows = group_by_subject(rows, subjects.values.len());
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
        let mut out = Vec::with_capacity(capacity);
        table.write(&mut out);
        out
    }

    /// Writes the table in postcard's format, the one [`TransitionTable::decode`] reads
    /// (fields in declaration order, integers as LEB128, `at` zigzagged, enums as their
    /// variant number), without serde: through serde, every integer went out as a copy of its
    /// own, a sixth of encoding a table. A test checks the bytes are postcard's.
    fn write(&self, out: &mut Vec<u8>) {
        for strings in [&self.subjects, &self.names, &self.events] {
            write_varint(out, strings.len() as u64);
            for s in strings {
                write_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        }
        write_varint(out, self.rows.len() as u64);
        for r in &self.rows {
            // Variant numbers below 128: one byte each, as LEB128 has them.
            out.push(r.level as u8);
            out.push(r.field as u8);
            for index in [r.subject, r.from, r.to, r.event, r.rule] {
                write_varint(out, u64::from(index));
            }
            write_varint(out, ((r.at << 1) ^ (r.at >> 63)) as u64);
            write_varint(out, r.seq);
            write_varint(out, u64::from(r.sub));
        }
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
    fn rows_are_grouped_by_subject_in_order_of_first_appearance() {
        let all = vec![
            t("p2", None, "MAL", Some("e1")),
            t("p1", None, "MAL", Some("e2")),
            t("p2", Some("MAL"), "MQL", Some("e3")),
            t("p3", None, "MAL", Some("e4")),
            t("p1", Some("MAL"), "SAL", Some("e5")),
            t("p2", Some("MQL"), "SQL", Some("e6")),
        ];
        let bytes = TransitionTable::encode(&all);
        let table = TransitionTable::decode(&bytes).unwrap();
        let events: Vec<&str> = table.iter().filter_map(|r| r.event).collect();
        assert_eq!(events, ["e1", "e3", "e6", "e2", "e5", "e4"]);
        assert_eq!(table.subjects, ["p2", "p1", "p3"]);
    }

    #[test]
    fn a_table_is_written_as_postcard_writes_it() {
        let mut all = Vec::new();
        for (i, level) in [Level::Person, Level::Account].into_iter().enumerate() {
            for (j, field) in [Field::Stage, Field::Status, Field::Owner]
                .into_iter()
                .enumerate()
            {
                let mut tr = t(&format!("s{i}"), Some("MAL"), "MQL", Some("e1"));
                tr.level = level;
                tr.field = field;
                tr.order = Order {
                    at: Timestamp([i64::MIN, -1, 0, 1, 1 << 40, i64::MAX][i * 3 + j]),
                    seq: [0, 1, 127, 128, 1 << 35, u64::MAX][i * 3 + j],
                    sub: [0, 200, u32::MAX][j],
                };
                all.push(tr);
            }
        }
        all.push(t("é long subject name past one hundred and twenty seven bytes, to need a second length byte in LEB128: ok", None, "MAL", None));
        let bytes = TransitionTable::encode(&all);
        let table = TransitionTable::decode(&bytes).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&table).unwrap());
        let back: Vec<Transition> = table.iter().map(|r| r.to_transition()).collect();
        assert_eq!(back.len(), all.len());
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
