//! The open batch's events, by partition, until the batch derives them.
//!
//! Every appended record goes into one arena, in arrival order, and the arena's pieces (runs of
//! consecutive records of one partition: a file grouped by account makes a piece per
//! partition) are listed in arrival order too, so appending touches only the arena's end,
//! however the partitions interleave. When the arena outgrows the batch's memory limit, its
//! pieces are grouped by partition (a counting sort) and every partition's are written to a
//! temporary file as one contiguous piece (gathered into large writes), and the arena is
//! reused: its memory is faulted in once, and nothing grows a buffer per partition. The
//! writing happens on a thread of its own while appending goes on into a second arena, so the
//! batch never waits for the disk unless one arena fills before the other is written.

use crate::StoreError;
use rustc_hash::FxHashMap;

/// The largest memory limit the arena is sized to up front (a larger one means "never spill").
const MAX_PRESIZED: usize = 1 << 30;

/// A range of the arena holding records of one partition.
#[derive(Clone, Copy)]
struct Piece {
    partition: u32,
    start: usize,
    end: usize,
}

/// The arena's pieces grouped by partition: `order` lists the pieces' indexes partition by
/// partition (each partition's in arrival order), `first[p]..first[p + 1]` being partition
/// `p`'s.
struct Grouped {
    order: Vec<u32>,
    first: Vec<u32>,
}

impl Grouped {
    /// Groups `pieces` by partition with a counting sort (stable, so each partition's pieces
    /// stay in arrival order).
    fn of(pieces: &[Piece]) -> Grouped {
        let partitions = pieces
            .iter()
            .map(|p| p.partition as usize + 1)
            .max()
            .unwrap_or(0);
        let mut first = vec![0u32; partitions + 1];
        for p in pieces {
            first[p.partition as usize + 1] += 1;
        }
        for i in 1..first.len() {
            first[i] += first[i - 1];
        }
        let mut next = first.clone();
        let mut order = vec![0u32; pieces.len()];
        for (i, p) in pieces.iter().enumerate() {
            let at = &mut next[p.partition as usize];
            order[*at as usize] = i as u32;
            *at += 1;
        }
        Grouped { order, first }
    }

    /// The indexes of a partition's pieces, in arrival order.
    fn of_partition(&self, partition: u32) -> &[u32] {
        let p = partition as usize;
        match (self.first.get(p), self.first.get(p + 1)) {
            (Some(&a), Some(&b)) => &self.order[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The partitions with pieces, in index order.
    fn partitions(&self) -> impl Iterator<Item = u32> + '_ {
        self.first
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < w[1])
            .map(|(p, _)| p as u32)
    }
}

/// Appended record streams by partition index, in memory and spilled (see the module docs).
pub(crate) struct Pending {
    arena: Vec<u8>,
    /// The arena's pieces, in arrival order.
    pieces: Vec<Piece>,
    /// The pieces grouped by partition, once they are read (appending ungroups them).
    grouped: Option<Grouped>,
    /// Bytes the arena and its pieces may hold before they are spilled.
    limit: usize,
    spill: Option<Spill>,
    /// Where a spill file goes (next to the database), or the system's temporary directory.
    spill_dir: Option<std::path::PathBuf>,
    /// By partition index: its name, the order a spill writes partitions in (the order the
    /// batch derives them, so a pass reads each spill in one piece).
    names: Vec<Box<str>>,
}

impl Pending {
    /// Nothing pending yet; spills once more than `limit` bytes are held.
    pub(crate) fn new(limit: usize, spill_dir: Option<std::path::PathBuf>) -> Pending {
        Pending {
            arena: Vec::new(),
            pieces: Vec::new(),
            grouped: None,
            limit,
            spill: None,
            spill_dir,
            names: Vec::new(),
        }
    }

    /// Tells the name of a partition (before its first record is pushed, for spills to be
    /// in name order; a partition without one goes first).
    pub(crate) fn name_partition(&mut self, partition: u32, name: &str) {
        let p = partition as usize;
        if p >= self.names.len() {
            self.names.resize(p + 1, Box::from(""));
        }
        self.names[p] = Box::from(name);
    }

    /// Reads ahead, in as few reads as the spill file allows, the spilled records of the
    /// partitions about to be taken (a pass of the derivation, consecutive in name order).
    pub(crate) fn prefetch(&mut self, partitions: &[u32]) -> Result<(), StoreError> {
        match &mut self.spill {
            Some(spill) => {
                spill.flush()?;
                spill.prefetch(partitions)
            }
            None => Ok(()),
        }
    }

    /// Appends one record (its sequence number, then its encoded bytes) to a partition.
    pub(crate) fn push(
        &mut self,
        partition: u32,
        seq: u64,
        record: &[u8],
    ) -> Result<(), StoreError> {
        if self.arena.capacity() == 0 && self.limit <= MAX_PRESIZED {
            // Sized once: growing by doubling would copy it and touch fresh memory each time.
            self.arena.reserve(self.limit + record.len() + 16);
        }
        self.grouped = None;
        let start = self.arena.len();
        crate::body::write_seq(&mut self.arena, seq);
        self.arena.extend_from_slice(record);
        let end = self.arena.len();
        match self.pieces.last_mut() {
            Some(last) if last.partition == partition && last.end == start => last.end = end,
            _ => self.pieces.push(Piece {
                partition,
                start,
                end,
            }),
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

    /// The pieces grouped by partition (grouping them if appending ungrouped them), with the
    /// pieces themselves and the arena they are ranges of.
    fn grouped(&mut self) -> (&Grouped, &mut [Piece], &[u8]) {
        let pieces = &mut self.pieces;
        let grouped = self.grouped.get_or_insert_with(|| Grouped::of(pieces));
        (grouped, pieces, &self.arena)
    }

    /// Hands every partition's records in the arena to the spill file's writer, one piece per
    /// partition, and goes on with an empty arena (the one the writer last returned).
    fn spill(&mut self) -> Result<(), StoreError> {
        if self.spill.is_none() {
            self.spill = Some(Spill::new(self.spill_dir.as_deref())?);
        }
        let grouped = Grouped::of(&self.pieces);
        let spill = self.spill.as_mut().expect("created above");
        // Written partition by partition, each partition's pieces together.
        let mut ranges = Vec::with_capacity(self.pieces.len());
        let mut order: Vec<u32> = grouped.partitions().collect();
        let name = |p: u32| self.names.get(p as usize).map_or("", |n| n);
        order.sort_unstable_by(|&a, &b| name(a).cmp(name(b)));
        for p in order {
            let mut len = 0;
            for &i in grouped.of_partition(p) {
                let piece = self.pieces[i as usize];
                len += piece.end - piece.start;
                ranges.push(piece.start..piece.end);
            }
            spill.record(p, len);
        }
        self.pieces.clear();
        self.grouped = None;
        let empty = spill.write(std::mem::take(&mut self.arena), ranges)?;
        self.arena = empty;
        Ok(())
    }

    /// Bytes pending for a partition (spilled and in memory).
    pub(crate) fn len_of(&mut self, partition: u32) -> usize {
        let spilled = self.spill.as_ref().map_or(0, |s| s.spilled(partition));
        let (grouped, pieces, _) = self.grouped();
        let in_memory: usize = grouped
            .of_partition(partition)
            .iter()
            .map(|&i| pieces[i as usize].end - pieces[i as usize].start)
            .sum();
        spilled + in_memory
    }

    /// Appends a partition's pending records, in order, to `out` (each partition read once).
    pub(crate) fn take(&mut self, partition: u32, out: &mut Vec<u8>) -> Result<(), StoreError> {
        let mut wanted = self.len_of(partition);
        if let Some(ready) = self.spill.as_mut().and_then(|s| s.ready.remove(&partition)) {
            wanted -= ready.len();
            // Read ahead: the buffer becomes the output (no copy) when it is the first part.
            if out.is_empty() {
                *out = ready;
            } else {
                out.extend_from_slice(&ready);
            }
        }
        out.reserve(wanted);
        if let Some(spill) = &mut self.spill {
            spill.flush()?;
            spill.read_into(partition, out)?;
        }
        let (grouped, pieces, arena) = self.grouped();
        for &i in grouped.of_partition(partition) {
            let piece = &mut pieces[i as usize];
            out.extend_from_slice(&arena[piece.start..piece.end]);
            // Taken: an empty range from now on.
            piece.end = piece.start;
        }
        Ok(())
    }
}

/// How much the spill writer gathers before it writes: records of many partitions interleave
/// in time-sorted input, so the ranges are often a few dozen bytes, and the kernel copies one
/// large buffer much faster than a thousand small pieces of one vectored write.
const STAGING_BYTES: usize = 1 << 20;

/// Writes `ranges` of `arena`, in order, at the end of `file`, gathered in `staging`.
fn write_ranges(
    mut file: &std::fs::File,
    arena: &[u8],
    ranges: Vec<std::ops::Range<usize>>,
    staging: &mut Vec<u8>,
) -> Result<(), String> {
    use std::io::Write;
    staging.clear();
    for range in ranges {
        let piece = &arena[range];
        if staging.len() + piece.len() > STAGING_BYTES {
            file.write_all(staging).map_err(|e| e.to_string())?;
            staging.clear();
        }
        if piece.len() >= STAGING_BYTES {
            file.write_all(piece).map_err(|e| e.to_string())?;
        } else {
            staging.extend_from_slice(piece);
        }
    }
    file.write_all(staging).map_err(|e| e.to_string())?;
    staging.clear();
    Ok(())
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(Writer { jobs, done, thread }) = self.writer.take() {
            // Closing the queue ends the thread once it has written what it holds.
            drop(jobs);
            drop(done);
            let _ = thread.join();
        }
    }
}

/// Records spilled out of memory: an anonymous temporary file (gone when the batch ends,
/// committed or not) written front to back by a thread of its own, and where each
/// partition's pieces are in it.
struct Spill {
    file: std::fs::File,
    len: u64,
    pieces: FxHashMap<u32, Vec<(u64, usize)>>,
    /// Partitions' spilled records read ahead (see [`Pending::prefetch`]).
    ready: FxHashMap<u32, Vec<u8>>,
    /// Where [`Spill::prefetch`] reads runs of pieces.
    buffer: Vec<u8>,
    writer: Option<Writer>,
    /// Whether the writer holds an arena not yet written (and returned).
    writing: bool,
}

/// An arena to write (the given ranges of it, in order) or, back from the writer, written.
type Job = (Vec<u8>, Vec<std::ops::Range<usize>>);

/// The spill file's writer thread: takes arenas, writes them, returns them emptied.
struct Writer {
    jobs: std::sync::mpsc::Sender<Job>,
    done: std::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
    thread: std::thread::JoinHandle<()>,
}

impl Spill {
    /// A new spill file in `dir` (the database's directory), or the system's temporary one.
    fn new(dir: Option<&std::path::Path>) -> Result<Spill, StoreError> {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
        .map_err(|e| StoreError::Spill(e.to_string()))?;
        let out = file
            .try_clone()
            .map_err(|e| StoreError::Spill(e.to_string()))?;
        let (jobs, work) = std::sync::mpsc::channel::<Job>();
        let (finished, done) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("spill".into())
            .spawn(move || {
                let mut staging = Vec::with_capacity(STAGING_BYTES);
                for (mut arena, ranges) in work {
                    let written = write_ranges(&out, &arena, ranges, &mut staging).map(|()| {
                        arena.clear();
                        arena
                    });
                    if finished.send(written).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| StoreError::Spill(e.to_string()))?;
        Ok(Spill {
            file,
            len: 0,
            pieces: FxHashMap::default(),
            ready: FxHashMap::default(),
            buffer: Vec::new(),
            writer: Some(Writer { jobs, done, thread }),
            writing: false,
        })
    }

    /// Hands `arena` (`ranges` of it, in the order [`Spill::record`] was told) to the writer
    /// and returns an empty arena: the one it wrote before, once written, or a new one.
    fn write(
        &mut self,
        arena: Vec<u8>,
        ranges: Vec<std::ops::Range<usize>>,
    ) -> Result<Vec<u8>, StoreError> {
        let capacity = arena.capacity();
        let empty = self.finished()?;
        let writer = self
            .writer
            .as_ref()
            .expect("the writer lives as long as the spill");
        writer
            .jobs
            .send((arena, ranges))
            .map_err(|_| StoreError::Spill("the spill writer stopped".into()))?;
        self.writing = true;
        Ok(empty.unwrap_or_else(|| Vec::with_capacity(capacity)))
    }

    /// Waits for the arena being written, if any, and returns it emptied.
    fn finished(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if !std::mem::take(&mut self.writing) {
            return Ok(None);
        }
        let writer = self
            .writer
            .as_ref()
            .expect("the writer lives as long as the spill");
        match writer.done.recv() {
            Ok(Ok(arena)) => Ok(Some(arena)),
            Ok(Err(e)) => Err(StoreError::Spill(e)),
            Err(_) => Err(StoreError::Spill("the spill writer stopped".into())),
        }
    }

    /// Waits until everything handed to the writer is in the file (before reading it).
    fn flush(&mut self) -> Result<(), StoreError> {
        self.finished().map(drop)
    }

    /// Notes that the next `len` bytes written (just now, in order) are `partition`'s.
    fn record(&mut self, partition: u32, len: usize) {
        self.pieces
            .entry(partition)
            .or_default()
            .push((self.len, len));
        self.len += len as u64;
    }

    /// Reads the spilled pieces of `partitions` into [`Spill::ready`]: pieces that follow one
    /// another in the file (spills are in name order, and so are a pass's partitions) are
    /// read in one go.
    fn prefetch(&mut self, partitions: &[u32]) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let mut wanted: Vec<(u64, usize, u32)> = Vec::new();
        for &p in partitions {
            for (at, len) in self.pieces.remove(&p).unwrap_or_default() {
                wanted.push((at, len, p));
            }
        }
        wanted.sort_unstable();
        // Kept from pass to pass: zeroed once, not before every read.
        let buf = &mut self.buffer;
        let mut i = 0;
        while i < wanted.len() {
            // A run of pieces that touch one another in the file.
            let start = wanted[i].0;
            let mut end = start + wanted[i].1 as u64;
            let mut j = i + 1;
            while j < wanted.len() && wanted[j].0 == end {
                end += wanted[j].1 as u64;
                j += 1;
            }
            let len = (end - start) as usize;
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let buf = &mut buf[..len];
            self.file
                .read_exact_at(buf, start)
                .map_err(|e| StoreError::Spill(e.to_string()))?;
            // Each partition's pieces, in file order (which is their order).
            for &(at, len, p) in &wanted[i..j] {
                let from = (at - start) as usize;
                self.ready
                    .entry(p)
                    .or_default()
                    .extend_from_slice(&buf[from..from + len]);
            }
            release(&self.file, start, end - start);
            i = j;
        }
        Ok(())
    }

    /// Appends the records spilled for a partition and not read ahead (see
    /// [`Pending::take`]), in order, to `out` (each read once).
    fn read_into(&mut self, partition: u32, out: &mut Vec<u8>) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        for (at, len) in self.pieces.remove(&partition).unwrap_or_default() {
            let start = out.len();
            out.resize(start + len, 0);
            self.file
                .read_exact_at(&mut out[start..], at)
                .map_err(|e| StoreError::Spill(e.to_string()))?;
            release(&self.file, at, len as u64);
        }
        Ok(())
    }

    /// Bytes spilled for a partition.
    fn spilled(&self, partition: u32) -> usize {
        let ready = self.ready.get(&partition).map_or(0, Vec::len);
        ready
            + self
                .pieces
                .get(&partition)
                .map_or(0, |p| p.iter().map(|&(_, len)| len).sum())
    }
}

/// Gives the page cache behind `len` bytes at `at` of the spill file back to the system once
/// they are read (each piece is read once). The database's pages written next then reuse
/// memory touched a moment ago instead of fresh memory, which on a virtual machine costs
/// about four times as much on first touch (see docs/benchmarks.md). Best effort: a file
/// system that cannot punch holes keeps the pages until the file goes.
#[cfg(target_os = "linux")]
fn release(file: &std::fs::File, at: u64, len: u64) {
    use rustix::fs::{fallocate, FallocateFlags};
    let _ = fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        at,
        len,
    );
}

/// [`release`] where holes are not punched: the pages go with the file.
#[cfg(not(target_os = "linux"))]
fn release(_file: &std::fs::File, _at: u64, _len: u64) {}

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
    fn spills_in_name_order_read_ahead_a_pass_at_a_time() {
        // Names in the reverse of the indexes, so name order is not arrival or index order.
        let names = ["p3", "p2", "p1", "p0"];
        let pushes: Vec<(u32, u64)> = (0..400u64).map(|i| ((i * 7 % 4) as u32, i)).collect();
        let mut expected = vec![Vec::new(); 4];
        for &(p, seq) in &pushes {
            crate::body::write_seq(&mut expected[p as usize], seq);
            expected[p as usize].extend_from_slice(b"record");
        }
        for limit in [usize::MAX, 300, 40] {
            let mut pending = Pending::new(limit, None);
            for (p, name) in names.iter().enumerate() {
                pending.name_partition(p as u32, name);
            }
            for &(p, seq) in &pushes {
                pending.push(p, seq, b"record").unwrap();
            }
            // Passes in name order: p0 and p1 (indexes 3 and 2), then p2 and p3.
            for pass in [[3u32, 2], [1, 0]] {
                pending.prefetch(&pass).unwrap();
                for p in pass {
                    let mut out = Vec::new();
                    pending.take(p, &mut out).unwrap();
                    assert_eq!(out, expected[p as usize], "limit {limit}, partition {p}");
                }
            }
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
