//! How an event is stored in the log: a compact postcard record (attributes kept as JSON
//! text, since they are free-form). Reading it back costs a fraction of parsing JSON, which
//! matters because replays, diffs and large ingests read every event again.
//!
//! Bodies written before this format are JSON text; SQLite keeps each value's type, so
//! [`decode`] reads either.

use crate::StoreError;
use rusqlite::types::ValueRef;
use waterfall_core::{Event, Record};
use waterfall_engine::{SequencedEvent, SequencedRecord};

/// Encodes an event for the log (one record, without its sequence number).
#[cfg(test)]
pub fn encode(ev: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    ev.record(&ev.attrs_text()).write(&mut out);
    out
}

/// Appends one event with its sequence number to a partition's record stream: records are
/// simply concatenated, so two streams of one partition join by concatenation.
pub fn append_record(out: &mut Vec<u8>, seq: u64, ev: &Event) {
    write_seq(out, seq);
    ev.record(&ev.attrs_text()).write(out);
}

/// Appends the sequence number that precedes a record in a stream.
pub fn write_seq(out: &mut Vec<u8>, seq: u64) {
    waterfall_core::event::record::write_varint(out, seq);
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
    let stream = lz4_flex::decompress_size_prepended(packed)
        .map_err(|e| StoreError::Corrupt(format!("packed event stream: {e}")))?;
    // A damaged block can decode to fewer bytes than its length says.
    if stream.len() != claimed {
        return Err(StoreError::Corrupt(format!(
            "packed event stream: {} bytes where {claimed} were packed",
            stream.len()
        )));
    }
    Ok(stream)
}

/// Decodes a partition's record stream (see [`append_record`]), in stored order.
pub fn decode_records(bytes: &[u8]) -> Result<Vec<SequencedEvent>, StoreError> {
    let mut out = Vec::new();
    for_each_record(bytes, |seq, record| {
        let event = record
            .into_event()
            .map_err(|e| StoreError::Corrupt(format!("event #{seq}: {e}")))?;
        out.push(SequencedEvent { seq, event });
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with each record of a stream and its sequence number, in stored order,
/// borrowing the record's strings.
pub fn for_each_record<'a>(
    mut bytes: &'a [u8],
    mut f: impl FnMut(u64, Record<&'a str>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    while !bytes.is_empty() {
        let (seq, rest) = waterfall_core::event::record::read_varint(bytes)
            .map_err(|e| StoreError::Corrupt(format!("event record: {e}")))?;
        let (record, rest) = Record::read(rest).map_err(StoreError::Corrupt)?;
        f(seq, record)?;
        bytes = rest;
    }
    Ok(())
}

/// A partition's record stream as records borrowing its bytes, in stored order: what a
/// derivation reads, with no owned event built.
pub fn read_records(bytes: &[u8], expected: usize) -> Result<Vec<SequencedRecord<'_>>, StoreError> {
    // Sized from the partition's event count: grown by doubling, the vector of large
    // records was copied over and over (3% of a replay).
    let mut out = Vec::with_capacity(expected);
    for_each_record(bytes, |seq, record| {
        out.push(SequencedRecord::new(seq, record));
        Ok(())
    })?;
    Ok(out)
}

/// Appends a record with its sequence number to a stream (see [`append_record`]).
pub fn append_sequenced(out: &mut Vec<u8>, se: &SequencedRecord<'_>) {
    write_seq(out, se.seq);
    se.record.write(out);
}

/// The `person`, `account` and `merge` events of a record stream (what matching reads), in
/// stored order. The other records are read without allocating anything.
pub fn decode_identity_events(bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    use waterfall_core::RecordBody;
    let mut out = Vec::new();
    for_each_record(bytes, |seq, record| {
        if matches!(
            record.body,
            RecordBody::Person { .. } | RecordBody::Account { .. } | RecordBody::Merge { .. }
        ) {
            out.push(
                record
                    .into_event()
                    .map_err(|e| StoreError::Corrupt(format!("event #{seq}: {e}")))?,
            );
        }
        Ok(())
    })?;
    Ok(out)
}

fn decode_record(bytes: &[u8]) -> Result<Event, String> {
    Record::read(bytes)?.0.into_event()
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
        // A damaged stream (a corrupt database file) decodes to an error or to other bytes,
        // never outside its buffers (the decoder's bounds checks are on).
        for at in 4..packed.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut damaged = packed.clone();
                damaged[at] ^= flip;
                if let Ok(bytes) = unpack(&damaged) {
                    assert_eq!(bytes.len(), stream.len());
                }
            }
        }
    }
}
