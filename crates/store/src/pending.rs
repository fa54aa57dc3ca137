//! The open batch's events, by partition, until the batch derives them.
//!
//! Every appended record goes into one arena, in arrival order; each partition keeps a list of
//! the arena ranges that are its records (consecutive records of one partition share a range,
//! so a file grouped by account makes a range per partition). When the arena outgrows the
//! batch's memory limit, every partition's ranges are written to a temporary file as one
//! contiguous piece (in a few vectored writes) and the arena is reused: its memory is faulted
//! in once, and nothing grows a buffer per partition.

use crate::StoreError;
use rustc_hash::FxHashMap;
use std::io::IoSlice;

/// No piece: the end of a partition's list.
const NONE: u32 = u32::MAX;

/// A range of the arena holding records of one partition, and the next such range.
#[derive(Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    next: u32,
}

/// A partition's pieces in the arena (a linked list through [`Pending::pieces`]).
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NONE,
    tail: NONE,
};

/// Appended record streams by partition index, in memory and spilled (see the module docs).
pub(crate) struct Pending {
    arena: Vec<u8>,
    pieces: Vec<Piece>,
    /// By partition index: its pieces in the arena.
    lists: Vec<List>,
    /// Partitions with pieces in the arena, in the order they first got one.
    in_arena: Vec<u32>,
    /// Bytes the arena and its pieces may hold before they are spilled.
    limit: usize,
    spill: Option<Spill>,
    /// Where a spill file goes (next to the database), or the system's temporary directory.
    spill_dir: Option<std::path::PathBuf>,
}

impl Pending {
    /// Nothing pending yet; spills once more than `limit` bytes are held.
    pub(crate) fn new(limit: usize, spill_dir: Option<std::path::PathBuf>) -> Pending {
        Pending {
            arena: Vec::new(),
            pieces: Vec::new(),
            lists: Vec::new(),
            in_arena: Vec::new(),
            limit,
            spill: None,
            spill_dir,
        }
    }

    /// Appends one record (its sequence number, then its encoded bytes) to a partition.
    pub(crate) fn push(
        &mut self,
        partition: u32,
        seq: u64,
        record: &[u8],
    ) -> Result<(), StoreError> {
        let p = partition as usize;
        if p >= self.lists.len() {
            self.lists.resize(p + 1, EMPTY);
        }
        let start = self.arena.len();
        crate::body::write_seq(&mut self.arena, seq);
        self.arena.extend_from_slice(record);
        let end = self.arena.len();
        let list = &mut self.lists[p];
        if list.tail != NONE && self.pieces[list.tail as usize].end == start {
            self.pieces[list.tail as usize].end = end;
        } else {
            let i = self.pieces.len() as u32;
            self.pieces.push(Piece {
                start,
                end,
                next: NONE,
            });
            if list.tail == NONE {
                list.head = i;
                self.in_arena.push(partition);
            } else {
                self.pieces[list.tail as usize].next = i;
            }
            list.tail = i;
        }
        if self.held() > self.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Bytes held in memory: the arena and its pieces' bookkeeping.
    fn held(&self) -> usize {
        self.arena.len() + self.pieces.len() * std::mem::size_of::<Piece>()
    }

    /// The arena ranges of a partition, in order.
    fn ranges(&self, partition: u32) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = self.lists.get(partition as usize).map_or(NONE, |l| l.head);
        std::iter::from_fn(move || {
            (at != NONE).then(|| {
                let piece = self.pieces[at as usize];
                at = piece.next;
                &self.arena[piece.start..piece.end]
            })
        })
    }

    /// Writes every partition's records in the arena to the spill file, one piece per
    /// partition, and empties the arena (keeping its memory).
    fn spill(&mut self) -> Result<(), StoreError> {
        if self.spill.is_none() {
            self.spill = Some(Spill::new(self.spill_dir.as_deref())?);
        }
        let partitions = std::mem::take(&mut self.in_arena);
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(SLICES_PER_WRITE);
        let mut written: Vec<(u32, usize)> = Vec::with_capacity(partitions.len());
        // Spilled as a sequence of (partition, length) in file order; the slices gather them.
        let spill = self.spill.as_mut().expect("created above");
        for &p in &partitions {
            let mut len = 0;
            let mut at = self.lists[p as usize].head;
            while at != NONE {
                let piece = self.pieces[at as usize];
                len += piece.end - piece.start;
                slices.push(IoSlice::new(&self.arena[piece.start..piece.end]));
                if slices.len() == SLICES_PER_WRITE {
                    spill.write_all(&mut slices)?;
                }
                at = piece.next;
            }
            written.push((p, len));
        }
        spill.write_all(&mut slices)?;
        drop(slices);
        for (p, len) in written {
            spill.record(p, len);
            self.lists[p as usize] = EMPTY;
        }
        self.arena.clear();
        self.pieces.clear();
        Ok(())
    }

    /// Bytes pending for a partition (spilled and in memory).
    pub(crate) fn len_of(&self, partition: u32) -> usize {
        let spilled = self.spill.as_ref().map_or(0, |s| s.spilled(partition));
        spilled + self.ranges(partition).map(<[u8]>::len).sum::<usize>()
    }

    /// Appends a partition's pending records, in order, to `out` (each partition read once).
    pub(crate) fn take(&mut self, partition: u32, out: &mut Vec<u8>) -> Result<(), StoreError> {
        out.reserve(self.len_of(partition));
        if let Some(spill) = &mut self.spill {
            spill.read_into(partition, out)?;
        }
        for range in self.ranges(partition) {
            out.extend_from_slice(range);
        }
        if let Some(list) = self.lists.get_mut(partition as usize) {
            *list = EMPTY;
        }
        Ok(())
    }
}

/// How many ranges one vectored write passes (the system's limit is 1024).
const SLICES_PER_WRITE: usize = 1024;

/// Records spilled out of memory: an anonymous temporary file (gone when the batch ends,
/// committed or not) written front to back, and where each partition's pieces are in it.
struct Spill {
    file: std::fs::File,
    len: u64,
    pieces: FxHashMap<u32, Vec<(u64, usize)>>,
}

impl Spill {
    /// A new spill file in `dir` (the database's directory), or the system's temporary one.
    fn new(dir: Option<&std::path::Path>) -> Result<Spill, StoreError> {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
        .map_err(|e| StoreError::Spill(e.to_string()))?;
        Ok(Spill {
            file,
            len: 0,
            pieces: FxHashMap::default(),
        })
    }

    /// Writes `slices` at the end of the file and empties the list.
    fn write_all(&mut self, slices: &mut Vec<IoSlice<'_>>) -> Result<(), StoreError> {
        use std::io::Write;
        let mut rest: &mut [IoSlice<'_>] = slices;
        while !rest.is_empty() {
            let n = (&self.file)
                .write_vectored(rest)
                .map_err(|e| StoreError::Spill(e.to_string()))?;
            if n == 0 {
                return Err(StoreError::Spill(
                    "the spill file takes no more bytes".into(),
                ));
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        slices.clear();
        Ok(())
    }

    /// Notes that the next `len` bytes written (just now, in order) are `partition`'s.
    fn record(&mut self, partition: u32, len: usize) {
        self.pieces
            .entry(partition)
            .or_default()
            .push((self.len, len));
        self.len += len as u64;
    }

    /// Appends the records spilled for a partition, in order, to `out` (each read once).
    fn read_into(&mut self, partition: u32, out: &mut Vec<u8>) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        for (at, len) in self.pieces.remove(&partition).unwrap_or_default() {
            let start = out.len();
            out.resize(start + len, 0);
            self.file
                .read_exact_at(&mut out[start..], at)
                .map_err(|e| StoreError::Spill(e.to_string()))?;
        }
        Ok(())
    }

    /// Bytes spilled for a partition.
    fn spilled(&self, partition: u32) -> usize {
        self.pieces
            .get(&partition)
            .map_or(0, |p| p.iter().map(|&(_, len)| len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `(partition, seq, bytes)` in order and takes every partition back.
    fn round_trip(limit: usize, pushes: &[(u32, u64, &[u8])]) -> Vec<Vec<u8>> {
        let mut pending = Pending::new(limit, None);
        for &(p, seq, bytes) in pushes {
            pending.push(p, seq, bytes).unwrap();
        }
        let partitions = pushes.iter().map(|&(p, ..)| p).max().map_or(0, |p| p + 1);
        (0..partitions)
            .map(|p| {
                let expected_len = pending.len_of(p);
                let mut out = vec![0xAA];
                pending.take(p, &mut out).unwrap();
                assert_eq!(out.len() - 1, expected_len);
                out.split_off(1)
            })
            .collect()
    }

    #[test]
    fn partitions_get_their_records_in_order_whether_spilled_or_not() {
        let pushes: Vec<(u32, u64, &[u8])> = (0..200u64)
            .map(|i| {
                let p = [0, 0, 1, 2, 0, 1, 1, 3][(i % 8) as usize];
                let bytes: &[u8] = if i % 3 == 0 { b"abc" } else { b"de" };
                (p, i, bytes)
            })
            .collect();
        let mut expected = vec![Vec::new(); 4];
        for &(p, seq, bytes) in &pushes {
            crate::body::write_seq(&mut expected[p as usize], seq);
            expected[p as usize].extend_from_slice(bytes);
        }
        for limit in [usize::MAX, 4096, 100, 0] {
            assert_eq!(round_trip(limit, &pushes), expected, "limit {limit}");
        }
    }

    #[test]
    fn a_partition_is_taken_once() {
        let mut pending = Pending::new(10, None);
        pending.push(0, 1, b"first").unwrap();
        pending.push(0, 2, b"second").unwrap();
        let mut out = Vec::new();
        pending.take(0, &mut out).unwrap();
        assert!(!out.is_empty());
        let mut again = Vec::new();
        pending.take(0, &mut again).unwrap();
        assert!(again.is_empty());
        assert_eq!(pending.len_of(0), 0);
        assert_eq!(pending.len_of(7), 0);
    }
}
