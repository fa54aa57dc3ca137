//! The stage index: every person's stage entries in one compact, fixed-width form, grouped
//! by person, so the reports that read only person stages (flow, cohort, snapshot) load it
//! in one read instead of decoding every partition's transitions and interning every person.
//!
//! It is derived data twice over (from the stored transitions), kept by the store next to
//! them and valid only for the store generation it was built from.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// One entry into a stage (or status) value: when, in which order, whose, which value and by
/// which rule, all as dense indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexedEntry {
    /// Instant, microseconds since the Unix epoch.
    pub at: i64,
    /// Ingestion sequence of the causing event.
    pub seq: u64,
    /// Position among the changes of one event.
    pub sub: u32,
    /// Index of the person (in a stage index: see [`StageIndexNames::subject`]).
    pub subject: u32,
    /// Index of the value entered (in a stage index: into [`StageIndexNames::stages`]).
    pub value: u32,
    /// Index of the rule that caused it (in a stage index: into [`StageIndexNames::rules`]).
    pub rule: u32,
}

/// Bytes of one [`IndexedEntry`] as stored (little-endian, fields in declaration order).
const ENTRY_BYTES: usize = 32;

/// The names an index refers to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageIndexNames<'a> {
    /// Stage names, by value index.
    #[serde(borrow)]
    pub stages: Vec<&'a str>,
    /// Rule names, by rule index.
    #[serde(borrow)]
    pub rules: Vec<&'a str>,
    /// Person ids, concatenated in subject order (each once; see
    /// [`StageIndexNames::subject`]): one string, so that millions of ids load as one copy.
    #[serde(borrow)]
    pub subject_ids: Cow<'a, str>,
    /// Where each person id ends in `subject_ids`, as little-endian `u32`s.
    #[serde(borrow)]
    pub subject_ends: Cow<'a, [u8]>,
}

/// A stage index read from storage: its names and its entries, borrowed.
#[derive(Debug, Clone)]
pub struct StageIndex<'a> {
    /// The names entries refer to.
    pub names: StageIndexNames<'a>,
    entries: &'a [u8],
}

impl<'a> StageIndex<'a> {
    /// Encodes an index: its names, and entries grouped by subject (each subject's in order).
    /// Returns the names' bytes and the entries' bytes, stored side by side.
    pub fn encode(
        names: &StageIndexNames<'_>,
        entries: impl ExactSizeIterator<Item = IndexedEntry>,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_BYTES);
        for e in entries {
            bytes.extend_from_slice(&e.at.to_le_bytes());
            bytes.extend_from_slice(&e.seq.to_le_bytes());
            bytes.extend_from_slice(&e.sub.to_le_bytes());
            bytes.extend_from_slice(&e.subject.to_le_bytes());
            bytes.extend_from_slice(&e.value.to_le_bytes());
            bytes.extend_from_slice(&e.rule.to_le_bytes());
        }
        let names = postcard::to_stdvec(names).expect("encoding to memory cannot fail");
        (names, bytes)
    }

    /// Reads an index from its stored bytes, checking that every entry points into its names.
    pub fn decode(names: &'a [u8], entries: &'a [u8]) -> Result<StageIndex<'a>, String> {
        let names = StageIndexNames::decode(names)?;
        if !entries.len().is_multiple_of(ENTRY_BYTES) {
            return Err("stage index: truncated entries".into());
        }
        let index = StageIndex { names, entries };
        if !index.entries().all(|e| index.names.contain(&e)) {
            return Err("stage index: an entry points outside its names".into());
        }
        Ok(index)
    }

    /// How many entries `bytes` of stored entries hold.
    pub fn entries_in(bytes: usize) -> usize {
        bytes / ENTRY_BYTES
    }

    /// How many entries the index holds.
    pub fn len(&self) -> usize {
        self.entries.len() / ENTRY_BYTES
    }

    /// Whether the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, grouped by subject.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = IndexedEntry> + '_ {
        self.entries.chunks_exact(ENTRY_BYTES).map(decode_entry)
    }
}

impl<'a> StageIndexNames<'a> {
    /// Names with these person ids as subjects, in order.
    pub fn new<'s>(
        stages: Vec<&'a str>,
        rules: Vec<&'a str>,
        subjects: impl Iterator<Item = &'s str>,
    ) -> StageIndexNames<'a> {
        let (mut ids, mut ends) = (String::new(), Vec::new());
        for id in subjects {
            ids.push_str(id);
            ends.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        }
        StageIndexNames {
            stages,
            rules,
            subject_ids: Cow::Owned(ids),
            subject_ends: Cow::Owned(ends),
        }
    }

    /// Reads an index's names from their stored bytes, checking that every subject's id is
    /// where its end says.
    pub fn decode(bytes: &'a [u8]) -> Result<StageIndexNames<'a>, String> {
        let names: StageIndexNames<'a> =
            postcard::from_bytes(bytes).map_err(|e| format!("stage index: {e}"))?;
        if !names.subject_ends.len().is_multiple_of(4) {
            return Err("stage index: truncated subject ends".into());
        }
        let mut start = 0;
        for i in 0..names.subject_count() {
            let end = names.subject_end(i);
            if end < start || !names.subject_ids.is_char_boundary(end) {
                return Err("stage index: a subject id out of place".into());
            }
            start = end;
        }
        Ok(names)
    }

    /// How many subjects (people) the names list.
    pub fn subject_count(&self) -> usize {
        self.subject_ends.len() / 4
    }

    /// Where subject `i`'s id ends in `subject_ids`.
    pub fn subject_end(&self, i: usize) -> usize {
        let b = &self.subject_ends[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// The id of subject `i` (`i` below [`StageIndexNames::subject_count`]).
    pub fn subject(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.subject_end(i - 1) };
        &self.subject_ids[start..self.subject_end(i)]
    }

    /// Whether an entry points into these names.
    pub fn contain(&self, e: &IndexedEntry) -> bool {
        (e.subject as usize) < self.subject_count()
            && (e.value as usize) < self.stages.len()
            && (e.rule as usize) < self.rules.len()
    }
}

/// Reads a stored index's entries from a stream (a blob read piece by piece), so they are
/// never all in memory as bytes: an iterator of entries, ending at the first read error,
/// which [`EntryReader::error`] then holds.
pub struct EntryReader<R> {
    reader: R,
    buffer: Vec<u8>,
    at: usize,
    end: usize,
    error: Option<String>,
}

impl<R: std::io::Read> EntryReader<R> {
    /// Reads entries from `reader`.
    pub fn new(reader: R) -> Self {
        EntryReader {
            reader,
            buffer: vec![0; ENTRY_BYTES * 8192],
            at: 0,
            end: 0,
            error: None,
        }
    }

    /// What stopped the entries early, if anything did.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn refill(&mut self) -> bool {
        let rest = self.end - self.at;
        self.buffer.copy_within(self.at..self.end, 0);
        self.at = 0;
        self.end = rest;
        while self.end < ENTRY_BYTES {
            match self.reader.read(&mut self.buffer[self.end..]) {
                Ok(0) => {
                    if self.end != 0 {
                        self.error = Some("stage index: truncated entries".into());
                    }
                    return false;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(format!("stage index: {e}"));
                    return false;
                }
            }
        }
        true
    }
}

impl<R: std::io::Read> Iterator for EntryReader<R> {
    type Item = IndexedEntry;

    fn next(&mut self) -> Option<IndexedEntry> {
        if self.end - self.at < ENTRY_BYTES && !self.refill() {
            return None;
        }
        let e = decode_entry(&self.buffer[self.at..self.at + ENTRY_BYTES]);
        self.at += ENTRY_BYTES;
        Some(e)
    }
}

/// One stored entry (little-endian, fields in declaration order); `b` is one entry's bytes.
fn decode_entry(b: &[u8]) -> IndexedEntry {
    let b: &[u8; ENTRY_BYTES] = b.try_into().expect("an entry's bytes");
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    IndexedEntry {
        at: u64_at(0) as i64,
        seq: u64_at(8),
        sub: u32_at(16),
        subject: u32_at(20),
        value: u32_at(24),
        rule: u32_at(28),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_round_trips_and_bad_bytes_are_errors() {
        let names = StageIndexNames::new(
            vec!["MAL", "MQL"],
            vec!["created"],
            ["p1", "pé2"].into_iter(),
        );
        assert_eq!(
            (names.subject_count(), names.subject(0), names.subject(1)),
            (2, "p1", "pé2")
        );
        let entries = vec![
            IndexedEntry {
                at: -5,
                seq: u64::MAX,
                sub: 1,
                subject: 0,
                value: 1,
                rule: 0,
            },
            IndexedEntry {
                at: 1_700_000_000_000_000,
                seq: 3,
                sub: 0,
                subject: 1,
                value: 0,
                rule: 0,
            },
        ];
        let (n, e) = StageIndex::encode(&names, entries.iter().copied());
        let index = StageIndex::decode(&n, &e).unwrap();
        assert_eq!(index.names, names);
        assert_eq!(index.entries().collect::<Vec<_>>(), entries);
        assert_eq!(index.len(), 2);
        assert!(StageIndex::decode(&n, &e[..e.len() - 1]).is_err());
        let mut bad = e.clone();
        bad[24] = 9; // the first entry's value
        assert!(StageIndex::decode(&n, &bad).is_err());
        assert!(StageIndex::decode(&n[..2], &e).is_err());
        // A subject end inside a character, or before the previous one, is an error.
        for ends in [[3u32, 4], [3, 2]] {
            let bad = StageIndexNames {
                subject_ends: Cow::Owned(ends.iter().flat_map(|e| e.to_le_bytes()).collect()),
                ..names.clone()
            };
            let (n, _) = StageIndex::encode(&bad, std::iter::empty());
            assert!(StageIndex::decode(&n, &[]).is_err(), "{ends:?}");
        }
        // Streamed, in pieces of any size, the same entries; a cut one is an error.
        let mut reader = EntryReader::new(std::io::Cursor::new(e.clone()));
        assert_eq!(reader.by_ref().collect::<Vec<_>>(), entries);
        assert_eq!(reader.error(), None);
        let mut cut = EntryReader::new(std::io::Cursor::new(e[..40].to_vec()));
        assert_eq!(cut.by_ref().count(), 1);
        assert!(cut.error().is_some());
    }
}
