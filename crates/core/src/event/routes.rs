//! What routes each record of a stream, noted beside the stream by whoever wrote it.
//!
//! The JSON Lines parser writes records on worker threads; the store routes them on one
//! thread, in input order. Reading each record back for its route ([`Record::read_route`])
//! was a fifth of that thread's work, so the parser notes every route as it writes the
//! record, and the store reads the notes instead.

use super::record::{Record, RouteKey};

/// The routes of a record stream's records, in order: each record's instant, length and
/// [`RouteKey`], the keys' strings kept one after another in a single text (no allocation per
/// record). An `opportunity` record's route (its contacts are a list) is not noted: it is read
/// from the record.
#[derive(Debug, Default, Clone)]
pub struct RecordRoutes {
    text: String,
    notes: Vec<Note>,
}

/// One record's route: its key's shape and the lengths of the key's strings in the text.
#[derive(Debug, Clone, Copy)]
struct Note {
    at: i64,
    /// The record's length in its stream.
    len: u32,
    shape: Shape,
    /// The lengths of the key's first and second strings (see [`Shape`]).
    lens: [u16; 2],
}

/// Which [`RouteKey`] a note holds, and what its strings are.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// The account.
    Account,
    /// The person.
    Person,
    /// The person, then the account.
    PersonOfAccount,
    /// The person.
    OfPerson,
    /// The person.
    Erase,
    /// The person, then whom into.
    Merge,
    /// Nothing noted: read the record.
    Unnoted,
}

/// A record's route as noted (see [`RecordRoutes::iter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotedRoute<'a> {
    /// The record's instant, in microseconds.
    pub at: i64,
    /// The record's length in its stream, in bytes.
    pub len: usize,
    /// Its route key; `None` when it was not noted (read it from the record).
    pub key: Option<RouteKey<'a>>,
}

impl RecordRoutes {
    /// Room for about `records` routes (grown past it, never copied before).
    pub fn with_capacity(records: usize) -> Self {
        RecordRoutes {
            // Ids are short: a dozen bytes a key is generous.
            text: String::with_capacity(records * 12),
            notes: Vec::with_capacity(records),
        }
    }

    /// Notes the route of `record`, just written to the stream in `len` bytes.
    pub fn push<S: AsRef<str>>(&mut self, record: &Record<S>, len: usize) {
        let (shape, strings): (Shape, [Option<&str>; 2]) = match record.route_key() {
            RouteKey::Account(a) => (Shape::Account, [Some(a), None]),
            RouteKey::Person {
                person,
                account: None,
            } => (Shape::Person, [Some(person), None]),
            RouteKey::Person {
                person,
                account: Some(account),
            } => (Shape::PersonOfAccount, [Some(person), Some(account)]),
            RouteKey::OfPerson(p) => (Shape::OfPerson, [Some(p), None]),
            RouteKey::Erase(p) => (Shape::Erase, [Some(p), None]),
            RouteKey::Merge { person, into } => (Shape::Merge, [Some(person), Some(into)]),
            RouteKey::Opportunity { .. } => (Shape::Unnoted, [None, None]),
        };
        // What does not fit a note (a string over 64 KB, a record over 4 GB) is read instead.
        let fits = |s: &Option<&str>| s.is_none_or(|s| s.len() <= usize::from(u16::MAX));
        let (shape, strings) = if strings.iter().all(fits) && u32::try_from(len).is_ok() {
            (shape, strings)
        } else {
            (Shape::Unnoted, [None, None])
        };
        let mut lens = [0u16; 2];
        for (len, s) in lens.iter_mut().zip(strings.iter().flatten()) {
            self.text.push_str(s);
            *len = s.len() as u16;
        }
        self.notes.push(Note {
            at: record.at,
            len: u32::try_from(len).unwrap_or(0),
            shape,
            lens,
        });
    }

    /// How many records are noted.
    pub fn len(&self) -> usize {
        self.notes.len()
    }

    /// Whether no record is noted.
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// The routes, in stream order.
    pub fn iter(&self) -> impl Iterator<Item = NotedRoute<'_>> + '_ {
        let mut at = 0;
        self.notes.iter().map(move |note| {
            // An absent string has length 0: it takes nothing from the text.
            let strings = note.lens.map(|len| {
                let start = at;
                at += usize::from(len);
                self.text.get(start..at)
            });
            let key = match (note.shape, strings) {
                (_, [None, _] | [_, None]) | (Shape::Unnoted, _) => None,
                (Shape::Account, [Some(a), _]) => Some(RouteKey::Account(a)),
                (Shape::Person, [Some(person), _]) => Some(RouteKey::Person {
                    person,
                    account: None,
                }),
                (Shape::PersonOfAccount, [Some(person), Some(account)]) => Some(RouteKey::Person {
                    person,
                    account: Some(account),
                }),
                (Shape::OfPerson, [Some(p), _]) => Some(RouteKey::OfPerson(p)),
                (Shape::Erase, [Some(p), _]) => Some(RouteKey::Erase(p)),
                (Shape::Merge, [Some(person), Some(into)]) => {
                    Some(RouteKey::Merge { person, into })
                }
            };
            NotedRoute {
                at: note.at,
                len: note.len as usize,
                key,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordBody;

    #[test]
    fn a_key_too_long_for_a_note_is_left_to_the_record() {
        let long = "p".repeat(70_000);
        let mut routes = RecordRoutes::default();
        for person in ["p1", long.as_str(), "p2"] {
            let record = Record {
                id: "e1",
                at: 7,
                body: RecordBody::Stage {
                    person,
                    stage: "MQL",
                    by: None,
                    reason: None,
                },
            };
            routes.push(&record, 10);
        }
        let keys: Vec<Option<RouteKey<'_>>> = routes.iter().map(|n| n.key).collect();
        assert_eq!(
            keys,
            vec![
                Some(RouteKey::OfPerson("p1")),
                None,
                Some(RouteKey::OfPerson("p2"))
            ]
        );
    }
}
