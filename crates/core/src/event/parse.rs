//! JSON Lines parsing into [`Event`]s, with each bad line reported by number and reason.

use super::record::{Record, RecordBody};
use super::routes::RecordRoutes;
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
    /// Notes the key in `seen`: false if it was seen before (an unknown key may repeat).
    fn first_time(self, seen: &mut u32) -> bool {
        if self as u32 == Key::Other as u32 {
            return true;
        }
        let bit = 1 << self as u32;
        let first = *seen & bit == 0;
        *seen |= bit;
        first
    }

    /// The key named so, matched as serde's derive does.
    fn of(name: &str) -> Key {
        match name {
            "id" => Key::Id,
            "at" => Key::At,
            "type" => Key::Type,
            "account" => Key::Account,
            "person" => Key::Person,
            "opportunity" => Key::Opportunity,
            "kind" => Key::Kind,
            "state" => Key::State,
            "stage" => Key::Stage,
            "status" => Key::Status,
            "by" => Key::By,
            "reason" => Key::Reason,
            "into" => Key::Into,
            "amount" => Key::Amount,
            "contacts" => Key::Contacts,
            "attrs" => Key::Attrs,
            _ => Key::Other,
        }
    }

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
            if !key.first_time(&mut seen) {
                return Err(serde::de::Error::duplicate_field(key.name()));
            }
            match self.text_field(key) {
                Some(field) => *field = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0),
                None => match key {
                    Key::Amount => self.amount = map.next_value()?,
                    Key::Contacts => self.contacts = map.next_value()?,
                    Key::Attrs => self.attrs = map.next_value()?,
                    _ => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                },
            }
        }
        Ok(())
    }
}

impl<'a> RawEvent<'a> {
    /// The field a key with a text value fills (`None` for the other keys).
    fn text_field(&mut self, key: Key) -> Option<&mut Option<Cow<'a, str>>> {
        Some(match key {
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
            Key::Amount | Key::Contacts | Key::Attrs | Key::Other => return None,
        })
    }
}

/// The event types, most frequent first (the values of `type`).
const EVENT_TYPES: [&str; 8] = [
    "activity",
    "stage",
    "status",
    "person",
    "opportunity",
    "account",
    "merge",
    "erase",
];

/// Reads one JSON line into `raw` (which starts empty): by [`FlatLine`] when the line has
/// the common shape, else (and for every error, so that messages are serde_json's) by serde.
fn read_raw<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> serde_json::Result<()> {
    if FlatLine::read(text, raw).is_some() {
        return Ok(());
    }
    *raw = RawEvent::default();
    read_raw_with_serde(text, raw)
}

/// Reads one JSON line into `raw` (which starts empty) with serde_json alone.
fn read_raw_with_serde<'a>(text: &'a str, raw: &mut RawEvent<'a>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde::de::DeserializeSeed::deserialize(raw, &mut de)?;
    de.end()
}

/// The common shape of an event line read without serde's machinery: an object whose values
/// are strings without escapes or `null`, with any nested value (attributes, contacts, an
/// amount, an unknown key's value) handed to serde_json one value at a time. Anything else
/// (an escape, a duplicate key, a value of the wrong type, bad JSON) makes it give up, and
/// the line is read again by serde alone: whatever this accepts, serde reads alike (tested
/// line by line against it), and serde says what is wrong with a bad line.
///
/// Reading a line this way takes a little over half of serde's time (the ingest parses
/// millions).
struct FlatLine<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> FlatLine<'a> {
    /// Fills `raw` from `text`, or gives up (`None`, `raw` then half filled).
    fn read(text: &'a str, raw: &mut RawEvent<'a>) -> Option<()> {
        let mut line = FlatLine { text, pos: 0 };
        line.expect(b'{')?;
        let mut seen = 0u32;
        let mut more = line.peek()? != b'}';
        while more {
            line.expect(b'"')?;
            let key = line.key()?;
            line.expect(b':')?;
            if !key.first_time(&mut seen) {
                return None;
            }
            match raw.text_field(key) {
                Some(field) if matches!(key, Key::Type) => {
                    *field = line.known_text_or_null(&EVENT_TYPES)?;
                }
                Some(field) => *field = line.text_or_null()?,
                None => match key {
                    Key::Amount => raw.amount = line.value()?,
                    Key::Contacts => raw.contacts = line.value()?,
                    Key::Attrs => raw.attrs = line.value()?,
                    _ => {
                        line.value::<serde::de::IgnoredAny>()?;
                    }
                },
            }
            more = line.peek()? == b',';
            line.pos += usize::from(more);
        }
        line.expect(b'}')?;
        // Nothing but whitespace may follow the object.
        line.skip_whitespace();
        (line.pos == text.len()).then_some(())
    }

    /// The rest of a key whose opening quote is consumed. The keys of the wire shape are
    /// matched as they are, without looking for the string's end first (a line has a dozen
    /// strings, half of them keys).
    fn key(&mut self) -> Option<Key> {
        // Roughly by how often lines have them (an activity: id, at, type, person, kind).
        const KNOWN: [(&[u8], Key); 16] = [
            (b"id\"", Key::Id),
            (b"at\"", Key::At),
            (b"type\"", Key::Type),
            (b"person\"", Key::Person),
            (b"kind\"", Key::Kind),
            (b"stage\"", Key::Stage),
            (b"status\"", Key::Status),
            (b"account\"", Key::Account),
            (b"attrs\"", Key::Attrs),
            (b"opportunity\"", Key::Opportunity),
            (b"state\"", Key::State),
            (b"amount\"", Key::Amount),
            (b"contacts\"", Key::Contacts),
            (b"by\"", Key::By),
            (b"reason\"", Key::Reason),
            (b"into\"", Key::Into),
        ];
        let rest = self.rest();
        for (quoted, key) in KNOWN {
            if rest.starts_with(quoted) {
                self.pos += quoted.len();
                return Some(key);
            }
        }
        self.plain_string().map(Key::of)
    }

    /// [`FlatLine::text_or_null`] for a value that is most often one of `known`: each is
    /// matched as it is, with its closing quote, before looking for the string's end.
    fn known_text_or_null(&mut self, known: &[&'static str]) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'"' {
            let rest = &self.rest()[1..];
            for text in known {
                if rest.starts_with(text.as_bytes()) && rest.get(text.len()) == Some(&b'"') {
                    self.pos += text.len() + 2;
                    return Some(Some(Cow::Borrowed(text)));
                }
            }
        }
        self.text_or_null()
    }

    /// A string without escapes, or `null`.
    fn text_or_null(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                Some(Some(Cow::Borrowed(self.plain_string()?)))
            }
            b'n' if self.rest().starts_with(b"null") => {
                self.pos += 4;
                Some(None)
            }
            _ => None,
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.text.as_bytes()[self.pos..]
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.as_bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        match self.text.as_bytes().get(self.pos) {
            // Lines rarely have whitespace between tokens: no loop for them.
            Some(&b) if b > b' ' => Some(b),
            _ => {
                self.skip_whitespace();
                self.text.as_bytes().get(self.pos).copied()
            }
        }
    }

    /// Consumes `byte`, the next one that is not whitespace.
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// The rest of a string whose opening quote is consumed, if it has no escape and no
    /// control character (serde_json decodes the one and rejects the other).
    fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let len = string_end(self.rest());
        if self.text.as_bytes().get(start + len) != Some(&b'"') {
            return None;
        }
        self.pos = start + len + 1;
        // Quotes are ASCII: both ends are character boundaries.
        self.text.get(start..start + len)
    }

    /// One value, nested or not, read by serde_json.
    fn value<T: Deserialize<'a>>(&mut self) -> Option<T> {
        self.skip_whitespace();
        let mut values =
            serde_json::Deserializer::from_str(self.text.get(self.pos..)?).into_iter::<T>();
        let value = values.next()?.ok()?;
        self.pos += values.byte_offset();
        Some(value)
    }
}

/// Where the text of a JSON string may end: the index of the first quote, backslash or
/// control character in `bytes` (its length if none), found eight bytes at a time.
fn string_end(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // The high bit of each byte of `w` below `n` (exact up to the first one).
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if found != 0 {
            return i * 8 + (found.trailing_zeros() / 8) as usize;
        }
    }
    let tail = chunks.remainder();
    let done = bytes.len() - tail.len();
    done + tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(tail.len())
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
    parse_record_by(text, read_raw)
}

/// [`parse_record`] with the JSON read by `read`.
fn parse_record_by<'a>(
    text: &'a str,
    read: fn(&'a str, &mut RawEvent<'a>) -> serde_json::Result<()>,
) -> Result<Record<Cow<'a, str>>, String> {
    let mut raw = RawEvent::default();
    read(text, &mut raw).map_err(|e| format!("invalid JSON: {e}"))?;
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
    /// What routes each of them (so that the store need not read them back).
    pub routes: RecordRoutes,
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
        // An event line is rarely shorter than 64 bytes.
        routes: RecordRoutes::with_capacity(text.len() / 64),
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
                let start = out.records.len();
                r.write(&mut out.records);
                out.routes.push(&r, out.records.len() - start);
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

    /// Pieces of event lines: every key, text values plain and escaped, nested values, bad
    /// JSON, whitespace.
    fn line_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop_oneof![
            prop::sample::select(vec![
                "id",
                "at",
                "type",
                "account",
                "person",
                "opportunity",
                "kind",
                "state",
                "stage",
                "status",
                "by",
                "reason",
                "into",
                "amount",
                "contacts",
                "attrs",
                "Id",
                "extra",
                "i\\u0064",
            ])
            .prop_map(str::to_string),
            "[a-z\\\\\"é]{0,6}",
        ];
        let value = prop_oneof![
            prop::sample::select(vec![
                "\"2025-01-03T10:00:00Z\"",
                "\"person\"",
                "\"stage\"",
                "\"status\"",
                "\"activity\"",
                "\"account\"",
                "\"opportunity\"",
                "\"merge\"",
                "\"erase\"",
                "\"open\"",
                "\"won\"",
                "\"expansion\"",
                "\"MQL\"",
                "\"p1\"",
                "\"a1\"",
                "\"\"",
                "null",
                "nul",
                "true",
                "12",
                "-1.5e3",
                "1e999",
                "{}",
                "{ }",
                "[]",
                "{\"name\":\"Acme \\\"Co\\\"\",\"n\":[1,{\"b\":null}]}",
                "{\"a\":}",
                "[{\"person\":\"p1\",\"role\":\"champion\",\"primary\":true}]",
                "[{\"person\":\"\"}]",
                "\"a\\u00e9\"",
                "\"tab\\there\"",
                "\"bad\\x\"",
                "\"ctl\u{1}\"",
                "\"unterminated",
            ])
            .prop_map(str::to_string),
            "\"[ -~é\u{1F600}]{0,8}\"",
        ];
        let space = prop::sample::select(vec!["", "", "", " ", "\t", " \r\n "]);
        let pair = (key, space.clone(), value, space.clone());
        (
            prop::collection::vec(pair, 0..9),
            space,
            prop::sample::select(vec!["", "", "", "x", ",", "}", " {}"]),
        )
            .prop_map(|(pairs, lead, tail)| {
                let body: Vec<String> = pairs
                    .into_iter()
                    .map(|(k, s1, v, s2)| format!("{s1}\"{k}\"{s2}:{s1}{v}{s2}"))
                    .collect();
                format!("{lead}{{{}}}{tail}", body.join(","))
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 4000, .. proptest::prelude::ProptestConfig::default()
        })]

        /// Whatever line it is given, the flat reader (with its fallback) answers exactly as
        /// serde_json alone does: the same record, or the same message.
        #[test]
        fn the_flat_reader_reads_lines_as_serde_does(line in line_strategy()) {
            proptest::prop_assert_eq!(
                parse_record_by(&line, read_raw),
                parse_record_by(&line, read_raw_with_serde)
            );
        }

        /// Eight bytes at a time, the end of a string is where a byte at a time finds it.
        #[test]
        fn string_ends_are_found_a_word_at_a_time(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![0x20u8..0x7f, proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\\'), 0u8..0x20, 0x80u8..=0xff],
                0..40,
            )
        ) {
            let expected = bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len());
            proptest::prop_assert_eq!(string_end(&bytes), expected);
        }
    }

    #[test]
    fn the_flat_reader_takes_common_lines_and_leaves_the_rest_to_serde() {
        let takes = [
            r#"{"id":"e1","at":"2025-01-03T10:00:00Z","type":"stage","person":"p1","stage":"MQL"}"#,
            r#" { "id" : "e1" , "at":"2025-01-03T10:00:00Z","type":"account","account":"a1","attrs":{"n":[1,{"b":null}]},"x":{"y":1}}  "#,
            r#"{"id":"e5","at":"2025-01-09T15:00:00Z","type":"opportunity","opportunity":"o1","state":"open","amount":25000,"contacts":[{"person":"p1"}],"by":null}"#,
            "{}",
        ];
        for line in takes {
            assert!(
                FlatLine::read(line, &mut RawEvent::default()).is_some(),
                "{line}"
            );
        }
        let leaves = [
            r#"{"id":"e\u0031"}"#,
            r#"{"id":"e1","id":"e2"}"#,
            r#"{"id":7}"#,
            r#"{"id":"e1"} x"#,
            r#"{"id":"e1",}"#,
            r#"{"attrs":{"a":}}"#,
            "{\"id\":\"a\u{1}b\"}",
            r#"["id"]"#,
        ];
        for line in leaves {
            assert!(
                FlatLine::read(line, &mut RawEvent::default()).is_none(),
                "{line}"
            );
        }
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
