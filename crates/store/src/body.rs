//! How an event is stored in the log: a compact postcard record (attributes kept as JSON
//! text, since they are free-form). Reading it back costs a fraction of parsing JSON, which
//! matters because replays, diffs and large ingests read every event again.
//!
//! Bodies written before this format are JSON text; SQLite keeps each value's type, so
//! [`decode`] reads either.

use crate::StoreError;
use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};
use waterfall_core::{
    Attrs, Event, EventBody, OpportunityContact, OpportunityKind, OpportunityState, Subject,
    Timestamp,
};
use waterfall_engine::SequencedEvent;

/// The stored record. Strings are borrowed when writing (`S = &str`) and owned when reading
/// (`S = String`); postcard encodes both alike.
#[derive(Serialize, Deserialize)]
struct Stored<S> {
    id: S,
    at: i64,
    body: Body<S>,
}

#[derive(Serialize, Deserialize)]
enum Body<S> {
    Account {
        account: S,
        attrs: S,
    },
    Person {
        person: S,
        account: Option<S>,
        attrs: S,
    },
    PersonActivity {
        person: S,
        kind: S,
        attrs: S,
    },
    AccountActivity {
        account: S,
        kind: S,
        attrs: S,
    },
    Opportunity {
        opportunity: S,
        account: Option<S>,
        kind: Option<OpportunityKind>,
        state: OpportunityState,
        stage: Option<S>,
        amount: Option<f64>,
        contacts: Option<Vec<OpportunityContact>>,
    },
    Status {
        person: S,
        status: S,
        by: Option<S>,
        reason: Option<S>,
    },
    Stage {
        person: S,
        stage: S,
        by: Option<S>,
        reason: Option<S>,
    },
    Merge {
        person: S,
        into: S,
    },
    Erase {
        person: S,
    },
}

fn attrs_text(attrs: &Attrs) -> String {
    if attrs.is_empty() {
        String::new()
    } else {
        serde_json::to_string(attrs).unwrap_or_default()
    }
}

fn attrs_of(text: &str) -> Result<Attrs, String> {
    if text.is_empty() {
        return Ok(Attrs::new());
    }
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err("attributes are not a JSON object".into()),
    }
}

fn d(o: &Option<String>) -> Option<&str> {
    o.as_deref()
}

/// Encodes an event for the log (one record, without its sequence number).
#[cfg(test)]
pub fn encode(ev: &Event) -> Vec<u8> {
    let text = attrs_of_event(ev);
    postcard::to_stdvec(&stored(ev, &text)).unwrap_or_default()
}

/// Appends one event with its sequence number to a partition's record stream: records are
/// simply concatenated, so two streams of one partition join by concatenation.
pub fn append_record(out: &mut Vec<u8>, seq: u64, ev: &Event) {
    let text = attrs_of_event(ev);
    let record = (seq, stored(ev, &text));
    let buf = std::mem::take(out);
    *out = postcard::to_extend(&record, buf).expect("writing to a Vec cannot fail");
}

/// Compresses a record stream for storage (LZ4, its length written in front): the streams
/// are most of a database's bytes and repeat themselves (ids, kinds, attribute names).
pub fn pack(stream: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(stream)
}

/// The record stream a stored, packed one holds.
pub fn unpack(packed: &[u8]) -> Result<Vec<u8>, StoreError> {
    // LZ4 expands at most 255 times: a larger length is corruption, not a reason to allocate.
    let claimed = packed
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if claimed > packed.len().saturating_mul(255) {
        return Err(StoreError::Corrupt(format!(
            "packed event stream: bad length {claimed} for {} bytes",
            packed.len()
        )));
    }
    lz4_flex::decompress_size_prepended(packed)
        .map_err(|e| StoreError::Corrupt(format!("packed event stream: {e}")))
}

/// Decodes a partition's record stream (see [`append_record`]), in stored order.
pub fn decode_records(mut bytes: &[u8]) -> Result<Vec<SequencedEvent>, StoreError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let ((seq, s), rest): ((u64, Stored<String>), &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| StoreError::Corrupt(format!("event record: {e}")))?;
        let event =
            from_stored(s).map_err(|e| StoreError::Corrupt(format!("event #{seq}: {e}")))?;
        out.push(SequencedEvent { seq, event });
        bytes = rest;
    }
    Ok(out)
}

/// The `person`, `account` and `merge` events of a record stream (what matching reads), in
/// stored order. The other records are read without allocating anything.
pub fn decode_identity_events(mut bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let ((seq, s), rest): ((u64, Stored<&str>), &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| StoreError::Corrupt(format!("event record: {e}")))?;
        bytes = rest;
        let owned = |s: &str| s.to_string();
        let body = match s.body {
            Body::Person {
                person,
                account,
                attrs,
            } => Body::Person {
                person: owned(person),
                account: account.map(owned),
                attrs: owned(attrs),
            },
            Body::Account { account, attrs } => Body::Account {
                account: owned(account),
                attrs: owned(attrs),
            },
            Body::Merge { person, into } => Body::Merge {
                person: owned(person),
                into: owned(into),
            },
            _ => continue,
        };
        let stored = Stored {
            id: owned(s.id),
            at: s.at,
            body,
        };
        out.push(
            from_stored(stored).map_err(|e| StoreError::Corrupt(format!("event #{seq}: {e}")))?,
        );
    }
    Ok(out)
}

/// Attributes are the one free-form part: written as JSON text inside the record.
fn attrs_of_event(ev: &Event) -> String {
    match &ev.body {
        EventBody::Account { attrs, .. }
        | EventBody::Person { attrs, .. }
        | EventBody::Activity { attrs, .. } => attrs_text(attrs),
        _ => String::new(),
    }
}

/// The record of an event, borrowing its strings (`attrs` is its attributes' JSON text).
fn stored<'e>(ev: &'e Event, attrs: &'e str) -> Stored<&'e str> {
    let body: Body<&str> = match &ev.body {
        EventBody::Account { account, .. } => Body::Account { account, attrs },
        EventBody::Person {
            person, account, ..
        } => Body::Person {
            person,
            account: d(account),
            attrs,
        },
        EventBody::Activity {
            subject: Subject::Person(person),
            kind,
            ..
        } => Body::PersonActivity {
            person,
            kind,
            attrs,
        },
        EventBody::Activity {
            subject: Subject::Account(account),
            kind,
            ..
        } => Body::AccountActivity {
            account,
            kind,
            attrs,
        },
        EventBody::Opportunity {
            opportunity,
            account,
            kind,
            state,
            stage,
            amount,
            contacts,
        } => Body::Opportunity {
            opportunity,
            account: d(account),
            kind: *kind,
            state: *state,
            stage: d(stage),
            amount: *amount,
            contacts: contacts.clone(),
        },
        EventBody::Status {
            person,
            status,
            by,
            reason,
        } => Body::Status {
            person,
            status,
            by: d(by),
            reason: d(reason),
        },
        EventBody::Stage {
            person,
            stage,
            by,
            reason,
        } => Body::Stage {
            person,
            stage,
            by: d(by),
            reason: d(reason),
        },
        EventBody::Merge { person, into } => Body::Merge { person, into },
        EventBody::Erase { person } => Body::Erase { person },
    };
    Stored {
        id: ev.id.as_str(),
        at: ev.at.0,
        body,
    }
}

fn decode_record(bytes: &[u8]) -> Result<Event, String> {
    from_stored(postcard::from_bytes(bytes).map_err(|e| e.to_string())?)
}

fn from_stored(s: Stored<String>) -> Result<Event, String> {
    let body = match s.body {
        Body::Account { account, attrs } => EventBody::Account {
            account,
            attrs: attrs_of(&attrs)?,
        },
        Body::Person {
            person,
            account,
            attrs,
        } => EventBody::Person {
            person,
            account,
            attrs: attrs_of(&attrs)?,
        },
        Body::PersonActivity {
            person,
            kind,
            attrs,
        } => EventBody::Activity {
            subject: Subject::Person(person),
            kind,
            attrs: attrs_of(&attrs)?,
        },
        Body::AccountActivity {
            account,
            kind,
            attrs,
        } => EventBody::Activity {
            subject: Subject::Account(account),
            kind,
            attrs: attrs_of(&attrs)?,
        },
        Body::Opportunity {
            opportunity,
            account,
            kind,
            state,
            stage,
            amount,
            contacts,
        } => EventBody::Opportunity {
            opportunity,
            account,
            kind,
            state,
            stage,
            amount,
            contacts,
        },
        Body::Status {
            person,
            status,
            by,
            reason,
        } => EventBody::Status {
            person,
            status,
            by,
            reason,
        },
        Body::Stage {
            person,
            stage,
            by,
            reason,
        } => EventBody::Stage {
            person,
            stage,
            by,
            reason,
        },
        Body::Merge { person, into } => EventBody::Merge { person, into },
        Body::Erase { person } => EventBody::Erase { person },
    };
    Ok(Event {
        id: s.id,
        at: Timestamp(s.at),
        body,
    })
}

/// Decodes a body from the row-per-event log of schema version 2: a postcard record, or JSON
/// text from before the record format (used when migrating).
pub fn decode(value: ValueRef<'_>, seq: i64) -> Result<Event, StoreError> {
    let decoded = match value {
        ValueRef::Blob(bytes) => decode_record(bytes),
        ValueRef::Text(text) => std::str::from_utf8(text)
            .map_err(|e| e.to_string())
            .and_then(waterfall_core::parse_line),
        _ => Err("no body".to_string()),
    };
    decoded.map_err(|e| StoreError::Corrupt(format!("event #{seq}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_round_trips_and_old_json_bodies_still_read() {
        let text = r#"{"id":"e1","at":"2025-01-03T10:00:00Z","type":"account","account":"a1","attrs":{"name":"Acme","employees":1200}}
{"id":"e2","at":"2025-01-03T10:00:00.5Z","type":"person","person":"p1","account":"a1","attrs":{"email":"jo@acme.com"}}
{"id":"e3","at":"2025-01-04T09:12:00Z","type":"activity","person":"p1","kind":"demo_request"}
{"id":"e3b","at":"2025-01-04T09:12:00Z","type":"activity","account":"a1","kind":"intent_surge","attrs":{"topic":"crm"}}
{"id":"e4","at":"2025-01-05T11:00:00Z","type":"status","person":"p1","status":"Working","by":"rep7","reason":"called"}
{"id":"e5","at":"2025-01-09T15:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","kind":"expansion","state":"open","stage":"Discovery","amount":25000,"contacts":[{"person":"p1","role":"champion","primary":true}]}
{"id":"e6","at":"2025-03-01T08:00:00Z","type":"opportunity","opportunity":"o1","state":"won"}
{"id":"e7","at":"2025-03-02T08:00:00Z","type":"stage","person":"p1","stage":"SRL"}
{"id":"e8","at":"2025-03-03T08:00:00Z","type":"merge","person":"p2","into":"p1"}
{"id":"e9","at":"2025-03-04T08:00:00Z","type":"erase","person":"p3"}"#;
        for line in text.lines() {
            let ev = waterfall_core::parse_line(line).unwrap();
            let bytes = encode(&ev);
            assert_eq!(decode(ValueRef::Blob(&bytes), 1).unwrap(), ev, "{line}");
            assert_eq!(decode(ValueRef::Text(line.as_bytes()), 1).unwrap(), ev);
            assert!(bytes.len() < line.len(), "{line}: {} bytes", bytes.len());
        }
        assert!(decode(ValueRef::Blob(b"\xff\xff"), 9).is_err());
        let mut stream = Vec::new();
        for (seq, line) in text.lines().enumerate() {
            append_record(
                &mut stream,
                seq as u64,
                &waterfall_core::parse_line(line).unwrap(),
            );
        }
        let packed = pack(&stream);
        assert!(packed.len() < stream.len());
        assert_eq!(unpack(&packed).unwrap(), stream);
        assert_eq!(decode_records(&stream).unwrap().len(), text.lines().count());
        assert!(unpack(&[0xff, 0xff, 0xff, 0x7f, 1, 2]).is_err());
        assert!(unpack(&packed[..packed.len() / 2]).is_err());
    }
}
