//! JSON Lines parsing into [`Event`]s, with each bad line reported by number and reason.

use super::record::{Record, RecordBody};
use super::{Event, OpportunityContact, OpportunityKind, OpportunityState};
use crate::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A rejected input line: where it is and why it was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number in its input.
    pub line: usize,
    /// Why the line was rejected, in words.
    pub reason: String,
}

/// The good events and the rejected lines of one input.
#[derive(Debug, Default)]
pub struct ParseOutcome {
    /// Parsed events, in input order, each with its 1-based line number.
    pub events: Vec<(usize, Event)>,
    /// Rejected lines, in input order.
    pub errors: Vec<LineError>,
}

/// A JSON string borrowed from the line unless it has escapes. Serde borrows a `Cow` only
/// when it is a field's whole type, so an optional one goes through this wrapper (a bare
/// `Option<Cow<str>>` would copy every string).
#[derive(Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The keys of the flat wire shape (any other key is ignored).
#[derive(Deserialize, Clone, Copy)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Id,
    At,
    Type,
    Account,
    Person,
    Opportunity,
    Kind,
    State,
    Stage,
    Status,
    By,
    Reason,
    Into,
    Amount,
    Contacts,
    Attrs,
    #[serde(other)]
    Other,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Id => "id",
            Key::At => "at",
            Key::Type => "type",
            Key::Account => "account",
            Key::Person => "person",
            Key::Opportunity => "opportunity",
            Key::Kind => "kind",
            Key::State => "state",
            Key::Stage => "stage",
            Key::Status => "status",
            Key::By => "by",
            Key::Reason => "reason",
            Key::Into => "into",
            Key::Amount => "amount",
            Key::Contacts => "contacts",
            Key::Attrs => "attrs",
            Key::Other => "",
        }
    }
}

/// The flat wire shape: every field optional so that a missing one gets a precise message.
///
/// Filled in place by its own visitor (a [`serde::de::DeserializeSeed`]) rather than built
/// by a derived one: a derived visitor returns the whole struct by value through every layer
/// of the deserializer, and those copies cost a quarter of the parse.
#[derive(Default)]
struct RawEvent<'a> {
    id: Option<Cow<'a, str>>,
    at: Option<Cow<'a, str>>,
    kind_of_event: Option<Cow<'a, str>>,
    account: Option<Cow<'a, str>>,
    person: Option<Cow<'a, str>>,
    opportunity: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    state: Option<Cow<'a, str>>,
    stage: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
    by: Option<Cow<'a, str>>,
    reason: Option<Cow<'a, str>>,
    into: Option<Cow<'a, str>>,
    amount: Option<f64>,
    contacts: Option<Vec<OpportunityContact>>,
    /// Kept as text: a record stores it so, and the owned event parses it once.
    attrs: Option<&'a RawValue>,
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut RawEvent<'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut RawEvent<'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = 0u32;
        while let Some(key) = map.next_key::<Key>()? {
            if key as u32 != Key::Other as u32 {
                let bit = 1 << key as u32;
                if seen & bit != 0 {
                    return Err(serde::de::Error::duplicate_field(key.name()));
                }
                seen |= bit;
            }
            let slot = match key {
                Key::Id => &mut self.id,
                Key::At => &mut self.at,
                Key::Type => &mut self.kind_of_event,
                Key::Account => &mut self.account,
                Key::Person => &mut self.person,
                Key::Opportunity => &mut self.opportunity,
                Key::Kind => &mut self.kind,
                Key::State => &mut self.state,
                Key::Stage => &mut self.stage,
                Key::Status => &mut self.status,
                Key::By => &mut self.by,
                Key::Reason => &mut self.reason,
                Key::Into => &mut self.into,
                Key::Amount => {
                    self.amount = map.next_value()?;
                    continue;
                }
                Key::Contacts => {
                    self.contacts = map.next_value()?;
                    continue;
                }
                Key::Attrs => {
                    self.attrs = map.next_value()?;
                    continue;
                }
                Key::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
        }
        Ok(())
    }
}

/// Reads one JSON line into `raw` (which starts empty).
fn read_raw<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(raw, &mut de)?;
    de.end()
}

fn required<'a>(c: Option<Cow<'a, str>>, field: &str, ty: &str) -> Result<Cow<'a, str>, String> {
    match c {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(format!("field `{field}` of a `{ty}` event is empty")),
        None => Err(format!(
            "missing field `{field}` (required for a `{ty}` event)"
        )),
    }
}

/// The attributes' text as a record keeps it: an object, empty when it has no keys.
fn attrs<'a>(raw: Option<&'a RawValue>) -> Result<Cow<'a, str>, String> {
    let Some(raw) = raw else {
        return Ok(Cow::Borrowed(""));
    };
    let text = raw.get().trim();
    match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        Some(inner) if inner.trim().is_empty() => Ok(Cow::Borrowed("")),
        Some(_) => Ok(Cow::Borrowed(text)),
        None => Err("field `attrs` is not a JSON object".into()),
    }
}

/// Parses one JSON line into an event, or says why it cannot.
pub fn parse_line(text: &str) -> Result<Event, String> {
    parse_record(text)?.into_event()
}

/// Parses one JSON line into the record it is stored as, borrowing from the line wherever
/// it can, or says why it cannot: the same checks and messages as [`parse_line`].
pub fn parse_record(text: &str) -> Result<Record<Cow<'_, str>>, String> {
    let mut raw = RawEvent::default();
    read_raw(text, &mut raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let id = match raw.id {
        Some(v) if !v.is_empty() => v,
        Some(_) => return Err("field `id` is empty".into()),
        None => return Err("missing field `id`".into()),
    };
    let at = match raw.at {
        Some(v) => Timestamp::parse(&v)?,
        None => return Err("missing field `at`".into()),
    };
    let ty = raw.kind_of_event.ok_or("missing field `type`")?;
    let body = match ty.as_ref() {
        "account" => RecordBody::Account {
            account: required(raw.account, "account", "account")?,
            attrs: attrs(raw.attrs)?,
        },
        "person" => RecordBody::Person {
            person: required(raw.person, "person", "person")?,
            account: raw.account.filter(|a| !a.is_empty()),
            attrs: attrs(raw.attrs)?,
        },
        "activity" => {
            let kind = required(raw.kind, "kind", "activity")?;
            let attrs = attrs(raw.attrs)?;
            match (raw.person, raw.account) {
                (Some(person), _) if !person.is_empty() => RecordBody::PersonActivity {
                    person,
                    kind,
                    attrs,
                },
                (_, Some(account)) if !account.is_empty() => RecordBody::AccountActivity {
                    account,
                    kind,
                    attrs,
                },
                _ => return Err("an `activity` event needs a `person` or an `account`".into()),
            }
        }
        "opportunity" => {
            let kind = match raw.kind {
                None => None,
                Some(k) => Some(OpportunityKind::parse(&k).ok_or_else(|| {
                    format!("unknown opportunity kind {k:?} (expected new_business, expansion or renewal)")
                })?),
            };
            let state = required(raw.state, "state", "opportunity")?;
            let state = OpportunityState::parse(&state).ok_or_else(|| {
                format!("unknown opportunity state {state:?} (expected open, won or lost)")
            })?;
            if let Some(a) = raw.amount {
                if !a.is_finite() {
                    return Err("field `amount` is not a finite number".into());
                }
            }
            if let Some(cs) = &raw.contacts {
                if cs.iter().any(|c| c.person.is_empty()) {
                    return Err("a contact of the opportunity has an empty `person`".into());
                }
            }
            RecordBody::Opportunity {
                opportunity: required(raw.opportunity, "opportunity", "opportunity")?,
                account: raw.account.filter(|a| !a.is_empty()),
                kind,
                state,
                stage: raw.stage,
                amount: raw.amount,
                contacts: raw.contacts,
            }
        }
        "status" => RecordBody::Status {
            person: required(raw.person, "person", "status")?,
            status: required(raw.status, "status", "status")?,
            by: raw.by,
            reason: raw.reason,
        },
        "stage" => RecordBody::Stage {
            person: required(raw.person, "person", "stage")?,
            stage: required(raw.stage, "stage", "stage")?,
            by: raw.by,
            reason: raw.reason,
        },
        "merge" => {
            let person = required(raw.person, "person", "merge")?;
            let into = required(raw.into, "into", "merge")?;
            if person == into {
                return Err("a person cannot be merged into itself".into());
            }
            RecordBody::Merge { person, into }
        }
        "erase" => RecordBody::Erase { person: required(raw.person, "person", "erase")? },
        other => {
            return Err(format!(
                "unknown event type {other:?} (expected account, person, activity, opportunity, status, stage, merge or erase)"
            ))
        }
    };
    Ok(Record { id, at: at.0, body })
}

/// The lines of JSON Lines text with their numbers (`first_line` is the number of the first
/// line of `text` in its input), blank ones too (callers skip them): one more than the text
/// has line breaks, the last empty when the text ends with one.
fn numbered_lines(text: &str, first_line: usize) -> impl Iterator<Item = (usize, &str)> {
    // Line breaks found with SIMD (`str::lines` looks for them a word at a time).
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    ends.enumerate().map_while(move |(i, end)| {
        let line = text.get(start..end)?;
        start = end + 1;
        Some((first_line + i, line.trim_end_matches('\r')))
    })
}

/// Whether a line holds nothing to parse.
fn blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Parses JSON Lines text; blank lines are skipped. `first_line` is the number of the first
/// line of `text` in its input (1 for a whole file), so that chunks parsed in parallel report
/// true line numbers.
pub fn parse_lines(text: &str, first_line: usize) -> ParseOutcome {
    // Sized up front: growing a vector of events copies it and touches fresh pages each time.
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut out = ParseOutcome {
        events: Vec::with_capacity(lines),
        errors: Vec::new(),
    };
    for (n, line) in numbered_lines(text, first_line).filter(|(_, l)| !blank(l)) {
        match parse_line(line) {
            Ok(e) => out.events.push((n, e)),
            Err(reason) => out.errors.push(LineError { line: n, reason }),
        }
    }
    out
}

/// The records of one input, encoded one after another (see [`Record::write`]), and its
/// rejected lines.
#[derive(Debug, Default)]
pub struct RecordsOutcome {
    /// The good lines' records, in input order.
    pub records: Vec<u8>,
    /// How many records `records` holds.
    pub count: usize,
    /// Rejected lines, in input order.
    pub errors: Vec<LineError>,
    /// How many line breaks the text holds: the next piece of the same input starts that many
    /// lines after this one (counted while parsing, so that pieces can be numbered later).
    pub line_breaks: usize,
}

/// Parses JSON Lines text straight into stored records (see [`parse_lines`] for the line
/// numbers), rejecting too the lines `check` refuses: no owned event is ever built.
pub fn parse_records(
    text: &str,
    first_line: usize,
    check: impl Fn(&Record<Cow<'_, str>>) -> Result<(), String>,
) -> RecordsOutcome {
    // A record is smaller than its line: the text's length bounds the output.
    let mut out = RecordsOutcome {
        records: Vec::with_capacity(text.len()),
        ..Default::default()
    };
    let mut lines = 0;
    for (n, line) in numbered_lines(text, first_line) {
        lines += 1;
        if blank(line) {
            continue;
        }
        match parse_record(line).and_then(|r| check(&r).map(|()| r)) {
            Ok(r) => {
                r.write(&mut out.records);
                out.count += 1;
            }
            Err(reason) => out.errors.push(LineError { line: n, reason }),
        }
    }
    out.line_breaks = lines - 1;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_rejects_repeated_keys_and_ignores_unknown_ones() {
        let base = r#""at":"2025-01-01T00:00:00Z","type":"stage","person":"p1","stage":"MQL""#;
        rejects(
            &format!(r#"{{"id":"e1","id":"e2",{base}}}"#),
            "duplicate field `id`",
        );
        rejects(&format!(r#"{{"id":null,{base}}}"#), "missing field `id`");
        rejects(r#"["id","e1"]"#, "invalid JSON");
        rejects(&format!(r#"{{"id":"e1",{base}}} trailing"#), "invalid JSON");
        let ev = parse_line(&format!(
            r#"{{"id":"e1","extra":{{"a":[1,{{"b":null}}]}},"by":"rep7",{base}}}"#
        ))
        .unwrap();
        assert_eq!(ev.id, "e1");
        assert!(
            matches!(ev.body, super::super::EventBody::Stage { ref by, .. } if by.as_deref() == Some("rep7"))
        );
    }

    #[test]
    fn records_borrow_strings_without_escapes() {
        let line = r#"{"id":"e1","at":"2024-01-01T00:00:00Z","type":"stage","person":"p\u0031","stage":"MQL","by":"rule"}"#;
        let record = parse_record(line).unwrap();
        assert!(matches!(record.id, Cow::Borrowed("e1")));
        let RecordBody::Stage {
            person, stage, by, ..
        } = record.body
        else {
            panic!("a stage record");
        };
        assert!(
            matches!(person, Cow::Owned(ref p) if p == "p1"),
            "{person:?}"
        );
        assert!(matches!(stage, Cow::Borrowed("MQL")));
        assert!(matches!(by, Some(Cow::Borrowed("rule"))));
    }

    #[track_caller]
    fn rejects(line: &str, expected: &str) {
        let err = parse_line(line).unwrap_err();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }

    #[test]
    fn contract_example_parses_and_round_trips() {
        let text = r#"{"id":"e1","at":"2025-01-03T10:00:00Z","type":"account","account":"a1","attrs":{"name":"Acme","domain":"acme.com","industry":"Software","employees":1200}}
{"id":"e2","at":"2025-01-03T10:00:00Z","type":"person","person":"p1","account":"a1","attrs":{"email":"jo@acme.com","title":"VP Marketing","source":"webinar"}}
{"id":"e3","at":"2025-01-04T09:12:00Z","type":"activity","person":"p1","kind":"demo_request"}
{"id":"e4","at":"2025-01-05T11:00:00Z","type":"status","person":"p1","status":"Working","by":"rep7"}
{"id":"e5","at":"2025-01-09T15:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","state":"open","amount":25000,"contacts":[{"person":"p1","role":"champion","primary":true}]}

{"id":"e6","at":"2025-03-01T08:00:00Z","type":"opportunity","opportunity":"o1","state":"won"}"#;
        let out = parse_lines(text, 1);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.events.len(), 6);
        assert_eq!(out.events[5].0, 7);
        for (_, e) in &out.events {
            assert_eq!(&parse_line(&e.to_json_line()).unwrap(), e);
        }
    }

    #[test]
    fn bad_lines_say_why() {
        rejects("{", "invalid JSON");
        rejects(
            r#"{"at":"2025-01-01T00:00:00Z","type":"person","person":"p"}"#,
            "missing field `id`",
        );
        rejects(
            r#"{"id":"x","type":"person","person":"p"}"#,
            "missing field `at`",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01","type":"person","person":"p"}"#,
            "bad timestamp",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"lead","person":"p"}"#,
            "unknown event type",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"stage","person":"p"}"#,
            "missing field `stage`",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"opportunity","opportunity":"o","state":"maybe"}"#,
            "unknown opportunity state",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"person","person":7}"#,
            "invalid type",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"merge","person":"a","into":"a"}"#,
            "itself",
        );
        let out = parse_lines("{}\n\n{\"id\":1}\n", 1);
        assert_eq!(
            out.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![1, 3]
        );
    }

    #[test]
    fn records_hold_the_same_events_as_parsing_does() {
        let text = concat!(
            r#"{"id":"e1","at":"2025-01-03T10:00:00Z","type":"account","account":"a\u00e9","attrs":{ "name" : "Acme \"Co\"", "employees":1200 }}"#,
            "\n\n",
            r#"{"id":"e2","at":"2025-01-03T10:00:00Z","type":"person","person":"p1","account":"","attrs":{}}"#,
            "\r\n",
            r#"{"id":"e3","at":"2025-01-04T09:12:00Z","type":"activity","account":"a1","kind":"intent_surge","attrs":null}"#,
            "\n",
            r#"{"id":"e4","at":"2025-01-04T09:12:00Z","type":"stage","person":"p1","stage":"MQL","by":"rep7"}"#,
            "\n",
            r#"{"id":"e5","at":"2025-01-04T09:12:00Z","type":"person","person":"p2","attrs":[1]}"#,
            "\n",
            r#"{"id":"e6","at":"2025-01-04T09:12:00Z","type":"stage","person":"p1","stage":"SQL"}"#,
        );
        let out = parse_records(text, 10, |r| match &r.body {
            RecordBody::Stage { stage, .. } if stage == "SQL" => Err("no SQL here".into()),
            _ => Ok(()),
        });
        let lines: Vec<(usize, &str)> = out
            .errors
            .iter()
            .map(|e| (e.line, e.reason.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (15, "field `attrs` is not a JSON object"),
                (16, "no SQL here")
            ]
        );
        assert_eq!(out.count, 4);
        let mut bytes = out.records.as_slice();
        let mut events = Vec::new();
        while !bytes.is_empty() {
            let (record, rest) = Record::read(bytes).unwrap();
            events.push(record.into_event().unwrap());
            bytes = rest;
        }
        let expected: Vec<Event> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(4)
            .map(|l| parse_line(l).unwrap())
            .collect();
        assert_eq!(events, expected);
        // An owned event's record (attributes re-serialized) holds the same event.
        let mut again = Vec::new();
        for e in &expected {
            e.record(&e.attrs_text()).write(&mut again);
        }
        let decoded = |mut b: &[u8]| {
            let mut v = Vec::new();
            while !b.is_empty() {
                let (r, rest) = Record::read(b).unwrap();
                v.push(r.into_event().unwrap());
                b = rest;
            }
            v
        };
        assert_eq!(decoded(&again), events);
    }
}
