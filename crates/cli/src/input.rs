//! Reading what the user hands in: model files and event files.

use crate::error::{CliError, CliResult};
use indicatif::{ProgressBar, ProgressStyle};
use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;
use waterfall_core::{parse_records, LineError, Record, RecordRoutes, RecordsOutcome};
use waterfall_model::Model;

/// Loads a model: a path to a TOML file, or the name of a shipped model
/// (`demand-waterfall`, `history-only`).
pub fn load_model(spec: &str) -> CliResult<Model> {
    let path = Path::new(spec);
    if !path.exists() {
        match spec {
            "demand-waterfall" | "default" => return Ok(Model::demand_waterfall()),
            "history-only" => return Ok(Model::history_only()),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::user(format!("cannot read model {spec}: {e}"))
            .hint("shipped models: demand-waterfall, history-only")
    })?;
    waterfall_model::load(spec, &text).map_err(|d| {
        CliError::user(format!("{spec} is not a valid model:\n{}", d.render()))
            .hint(format!("run `waterfall check {spec}` for every problem"))
    })
}

/// A rejected line of an input file.
pub struct Rejected {
    /// The file's name as given.
    pub file: String,
    /// The line and reason.
    pub error: LineError,
}

/// A piece of an input file: whole lines, as read (not yet checked to be UTF-8). Its lines are
/// numbered from 1 until the chunks before it are counted (see [`parse_files`]): counting them
/// as they are cut would cost a pass over the whole input on one thread.
pub struct TextChunk {
    /// The lines' bytes.
    pub data: ChunkBytes,
}

/// Where a [`TextChunk`]'s bytes are.
pub enum ChunkBytes {
    /// Read into a buffer of their own (handed back for reuse once parsed).
    Read(Vec<u8>),
    /// A range of a piece of a file mapped into memory (see [`map_range`]), unmapped when
    /// dropped.
    Mapped(memmap2::Mmap, Range<usize>),
}

impl ChunkBytes {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            ChunkBytes::Read(buf) => buf,
            ChunkBytes::Mapped(map, range) => &map[range.clone()],
        }
    }
}

impl TextChunk {
    /// The chunk's text, and its lines that are not valid UTF-8 (blanked in the text, each
    /// reported with its line number in the chunk).
    pub fn text(&self) -> (Cow<'_, str>, Vec<LineError>) {
        let data = self.data.bytes();
        // SIMD validation: the whole input passes through here, at several GB/s.
        if let Ok(text) = simdutf8::basic::from_utf8(data) {
            return (Cow::Borrowed(text), Vec::new());
        }
        let mut errors = Vec::new();
        let mut text = String::with_capacity(data.len());
        for (i, l) in data.split(|&b| b == b'\n').enumerate() {
            match std::str::from_utf8(l) {
                Ok(l) => text.push_str(l),
                Err(e) => errors.push(LineError {
                    line: 1 + i,
                    reason: format!("not valid UTF-8: {e}"),
                }),
            }
            text.push('\n');
        }
        // `split` sees an empty piece after the last line break: drop its line break.
        if data.last() == Some(&b'\n') {
            text.pop();
        }
        (Cow::Owned(text), errors)
    }
}

/// Maps `len` bytes of `file` from `offset`, read-only. Parsing a mapped file reads the page
/// cache directly: reading it into buffers first costs a copy of every byte (a third of a
/// CPU-second for a 1.1 GB file).
#[allow(unsafe_code)]
fn map_range(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private, and we only read it. Another process that
    // rewrites the file while it is being ingested changes what is read (as `read` would);
    // one that truncates it makes reading the lost pages fault (SIGBUS), which ends the
    // process before its batch commits: nothing stored is lost or changed.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)
    }?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// Reads an input (a path, or `-` for standard input) in chunks of about `chunk_bytes` that
/// end at a line break, calling `f` with each. A regular file is mapped a chunk at a time (see
/// [`mapped_chunks`]); anything else is read, each chunk into a buffer from
/// `buffer`, so the caller can hand buffers back for reuse instead of allocating fresh memory
/// for every chunk.
pub fn read_chunks(
    spec: &str,
    chunk_bytes: usize,
    mut buffer: impl FnMut() -> Vec<u8>,
    mut f: impl FnMut(TextChunk) -> CliResult,
) -> CliResult {
    use std::io::{BufRead, Read};
    let cannot = |e: std::io::Error| CliError::user(format!("cannot read {spec}: {e}"));
    let mut reader: Box<dyn BufRead> = if spec == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let file = std::fs::File::open(spec).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        // A file that cannot be mapped (some file systems) is read like a pipe.
        if meta.is_file() && map_range(&file, 0, 1).is_ok() {
            return mapped_chunks(&file, meta.len(), chunk_bytes, f).map_err(|e| match e {
                Unmapped::Io(e) => cannot(e),
                Unmapped::Stopped(e) => e,
            });
        }
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    loop {
        let mut buf = buffer();
        buf.clear();
        buf.reserve(chunk_bytes + (1 << 16));
        // Fill up to the chunk size in large reads, then finish the current line.
        while buf.len() < chunk_bytes {
            let want = (chunk_bytes - buf.len()) as u64;
            if reader
                .by_ref()
                .take(want)
                .read_to_end(&mut buf)
                .map_err(cannot)?
                == 0
            {
                break;
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        if buf.last() != Some(&b'\n') {
            reader.read_until(b'\n', &mut buf).map_err(cannot)?;
        }
        f(TextChunk {
            data: ChunkBytes::Read(buf),
        })?;
    }
}

/// Why [`mapped_chunks`] stopped.
enum Unmapped {
    /// The file could not be mapped.
    Io(std::io::Error),
    /// The caller stopped it.
    Stopped(CliError),
}

/// [`read_chunks`] over a regular file of `size` bytes: each chunk is mapped on its own, up
/// to the line break that ends it, and unmapped once parsed, so the process holds only the
/// chunks in flight (mapped pages count in its resident memory).
fn mapped_chunks(
    file: &std::fs::File,
    size: u64,
    chunk_bytes: usize,
    mut f: impl FnMut(TextChunk) -> CliResult,
) -> Result<(), Unmapped> {
    let mut start = 0u64;
    while start < size {
        let cut = (start + chunk_bytes as u64).min(size);
        // Room to find the line break after the cut; doubled for a longer line.
        let mut slack = 1u64 << 16;
        loop {
            let to = (cut + slack).min(size);
            let map = map_range(file, start, (to - start) as usize).map_err(Unmapped::Io)?;
            let cut = (cut - start) as usize;
            let end = if cut == map.len() || map[cut - 1] == b'\n' {
                Some(cut)
            } else {
                memchr::memchr(b'\n', &map[cut..]).map(|i| cut + i + 1)
            };
            match end.or((to == size).then_some(map.len())) {
                Some(end) => {
                    start += end as u64;
                    f(TextChunk {
                        data: ChunkBytes::Mapped(map, 0..end),
                    })
                    .map_err(Unmapped::Stopped)?;
                    break;
                }
                None => slack *= 2,
            }
        }
    }
    Ok(())
}

/// Text parsed on all cores (see [`parse_parallel`]).
pub struct ParsedText {
    /// Record streams, one per slice of the text, in input order (never copied into one),
    /// each with its records' routes.
    pub records: Vec<(Vec<u8>, RecordRoutes)>,
    /// How many records they hold.
    pub count: usize,
    /// Rejected lines, numbered from the text's first line, `first_line`.
    pub errors: Vec<LineError>,
    /// How many line breaks the text holds.
    pub line_breaks: usize,
}

/// Parses JSON Lines text on all cores straight into stored records (see
/// [`waterfall_core::parse_records`]), checking each with `check` and keeping true line
/// numbers in errors (`first_line` is the number of the text's first line).
pub fn parse_parallel(
    text: &str,
    first_line: usize,
    check: impl Fn(&Record<Cow<'_, str>>) -> Result<(), String> + Sync,
) -> ParsedText {
    use rayon::prelude::*;
    // Cut at line breaks into a few slices per thread; each counts its own lines as it
    // parses, and the slices' numbers are made true once all are parsed.
    let slices = (rayon::current_num_threads() * 2).max(1);
    let mut pieces = Vec::new();
    let mut start = 0;
    let target = text.len() / slices + 1;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        if end < text.len() && text.as_bytes()[end - 1] != b'\n' {
            end =
                memchr::memchr(b'\n', &text.as_bytes()[end..]).map_or(text.len(), |i| end + i + 1);
        }
        pieces.push(&text[start..end]);
        start = end;
    }
    let results: Vec<RecordsOutcome> = pieces
        .into_par_iter()
        .map(|piece| parse_records(piece, 0, &check))
        .collect();
    let mut parsed = ParsedText {
        records: Vec::with_capacity(results.len()),
        count: 0,
        errors: Vec::new(),
        line_breaks: 0,
    };
    for out in results {
        let before = first_line + parsed.line_breaks;
        parsed.records.push((out.records, out.routes));
        parsed.count += out.count;
        parsed
            .errors
            .extend(out.errors.into_iter().map(|e| LineError {
                line: before + e.line,
                ..e
            }));
        parsed.line_breaks += out.line_breaks;
    }
    parsed
}

/// One parsed chunk of an input file, on its way from the thread pool to the writer.
pub struct ParsedChunk {
    /// Index of the file in the list given to [`parse_files`].
    pub file: usize,
    /// Parsed and checked events as record streams (see `waterfall_core::parse_records`),
    /// in input order, in slices, each with its records' routes.
    pub records: Vec<(Vec<u8>, RecordRoutes)>,
    /// How many events `records` holds.
    pub count: usize,
    /// Rejected lines, with their numbers in the file.
    pub errors: Vec<LineError>,
    /// How many line breaks the chunk holds.
    pub line_breaks: usize,
    /// Bytes of input the chunk covered.
    pub bytes: usize,
}

/// How many chunks may be read ahead of the one being stored. More do not make parsing
/// faster, but each holds its mapped text and its records: with eight, parsing (slower than
/// storing since routes are noted) held 100–150 MB more at the ingest's peak.
const IN_FLIGHT: usize = 4;

/// Reads `files` (see [`read_chunks`]) on a thread of its own, parses and checks each chunk
/// on the thread pool (see [`parse_parallel`]) and hands the parsed chunks to `store` on this
/// thread, in input order, so reading, parsing and storing overlap. At most a few chunks are
/// read ahead and their buffers are reused, so memory stays bounded. An error from `store`
/// stops the reading and is returned.
pub fn parse_files(
    files: &[String],
    chunk_bytes: usize,
    check: impl Fn(&Record<Cow<'_, str>>) -> Result<(), String> + Sync,
    mut store: impl FnMut(ParsedChunk) -> CliResult,
) -> CliResult {
    use std::sync::mpsc::{channel, sync_channel, Receiver};
    let check = &check;
    std::thread::scope(|scope| -> CliResult {
        // The order of the receivers is the input's; each gets its chunk when it is parsed.
        let (send, chunks) = sync_channel::<Receiver<ParsedChunk>>(IN_FLIGHT);
        let (spare, buffers) = channel::<Vec<u8>>();
        let reader = scope.spawn(move || -> CliResult {
            // In place: `rayon::scope` would run this loop on a pool thread, which would then
            // wait on the channel instead of parsing.
            rayon::in_place_scope(move |pool| -> CliResult {
                for (file, name) in files.iter().enumerate() {
                    let buffer = || buffers.try_recv().unwrap_or_default();
                    read_chunks(name, chunk_bytes, buffer, |chunk| {
                        let (sent, receiver) = sync_channel(1);
                        // A closed channel means the writer stopped on an error: stop reading.
                        send.send(receiver)
                            .map_err(|_| CliError::internal("ingest stopped"))?;
                        let spare = spare.clone();
                        pool.spawn(move |_| {
                            let bytes = chunk.data.bytes().len();
                            let (text, mut errors) = chunk.text();
                            let parsed = parse_parallel(&text, 1, check);
                            drop(text);
                            // Lines not UTF-8 are blank in the text: no line is in both.
                            errors.extend(parsed.errors);
                            errors.sort_by_key(|e| e.line);
                            // The writer may have stopped: then nothing more is needed.
                            if let ChunkBytes::Read(buf) = chunk.data {
                                let _ = spare.send(buf);
                            }
                            let _ = sent.send(ParsedChunk {
                                file,
                                records: parsed.records,
                                count: parsed.count,
                                errors,
                                line_breaks: parsed.line_breaks,
                                bytes,
                            });
                        });
                        Ok(())
                    })?;
                }
                Ok(())
            })
        });
        // Chunks arrive in input order: each one's lines are numbered after those before it
        // in the same file.
        let (mut file, mut lines_before) = (0, 0);
        for receiver in chunks {
            // No chunk: its parsing panicked, which the reader's result reports.
            let Ok(mut chunk) = receiver.recv() else {
                break;
            };
            if chunk.file != file {
                (file, lines_before) = (chunk.file, 0);
            }
            for e in &mut chunk.errors {
                e.line += lines_before;
            }
            lines_before += chunk.line_breaks;
            store(chunk)?;
        }
        reader
            .join()
            .map_err(|_| CliError::internal("the reader thread panicked"))?
    })
}

/// A spinner with a message, drawn only on a terminal.
pub fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `lines` lines: stage events `e1`, `e2`… with bad JSON on every 37th line and
    /// a blank one every 50th. Returns its path and the ids and bad line numbers expected.
    fn events_file(dir: &Path, name: &str, lines: usize) -> (String, Vec<String>, Vec<usize>) {
        let (mut text, mut ids, mut bad) = (String::new(), Vec::new(), Vec::new());
        for n in 1..=lines {
            if n % 50 == 0 {
                text.push('\n');
            } else if n % 37 == 0 {
                text.push_str("{\"id\": oops\n");
                bad.push(n);
            } else {
                let id = format!("{name}-e{n}");
                text.push_str(&format!(
                    r#"{{"id":"{id}","at":"2025-01-01T00:00:00Z","type":"stage","person":"p{n}","stage":"MQL"}}"#
                ));
                text.push('\n');
                ids.push(id);
            }
        }
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        (path.to_string_lossy().into_owned(), ids, bad)
    }

    #[test]
    fn chunks_parsed_on_the_pool_arrive_in_input_order_with_true_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (a, a_ids, a_bad) = events_file(dir.path(), "a", 1000);
        let (b, b_ids, b_bad) = events_file(dir.path(), "b", 120);
        let (mut ids, mut bad, mut chunks) = (Vec::new(), Vec::new(), 0);
        // Chunks of a few lines: many are in flight at once.
        parse_files(
            &[a, b],
            300,
            |_| Ok(()),
            |chunk| {
                chunks += 1;
                let mut read = 0;
                for (part, _) in &chunk.records {
                    let mut rest = part.as_slice();
                    while !rest.is_empty() {
                        let (record, next) = Record::read(rest).unwrap();
                        ids.push((chunk.file, record.id.to_string()));
                        read += 1;
                        rest = next;
                    }
                }
                assert_eq!(read, chunk.count);
                bad.extend(chunk.errors.iter().map(|e| (chunk.file, e.line)));
                Ok(())
            },
        )
        .unwrap();
        assert!(chunks > 100, "{chunks} chunks");
        let expected: Vec<(usize, String)> = (a_ids.into_iter().map(|id| (0, id)))
            .chain(b_ids.into_iter().map(|id| (1, id)))
            .collect();
        assert_eq!(ids, expected);
        bad.sort_unstable();
        let expected_bad: Vec<(usize, usize)> = (a_bad.into_iter().map(|l| (0, l)))
            .chain(b_bad.into_iter().map(|l| (1, l)))
            .collect();
        assert_eq!(bad, expected_bad);
    }

    #[test]
    fn line_numbers_are_true_whatever_the_chunk_size() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _, expected) = events_file(dir.path(), "a", 5000);
        for chunk_bytes in [100, 4096, 50_000, 1 << 20] {
            let mut bad = Vec::new();
            parse_files(
                std::slice::from_ref(&a),
                chunk_bytes,
                |_| Ok(()),
                |chunk| {
                    bad.extend(chunk.errors.iter().map(|e| e.line));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(bad, expected, "chunks of {chunk_bytes} bytes");
        }
    }

    /// The chunks `read_chunks` cuts `path` into.
    fn chunks_of(path: &str, chunk_bytes: usize) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        read_chunks(path, chunk_bytes, Vec::new, |c| {
            chunks.push(c.data.bytes().to_vec());
            Ok(())
        })
        .unwrap();
        chunks
    }

    #[test]
    fn a_mapped_file_and_a_pipe_are_cut_into_the_same_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (short, ..) = events_file(dir.path(), "a", 700);
        // A line far longer than the room a mapped chunk first looks ahead in, and a last
        // line without a line break.
        let long = dir.path().join("long");
        let text = format!("a\n{}\nb\nc", "x".repeat(300_000));
        std::fs::write(&long, text).unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let cases = [short, long.to_string_lossy().into_owned()];
        for (file, chunk_bytes) in cases
            .iter()
            .flat_map(|f| [1, 300, 4096, 1 << 20].map(|c| (f, c)))
        {
            let mapped = chunks_of(file, chunk_bytes);
            let writer = {
                let (file, fifo) = (file.clone(), fifo.clone());
                std::thread::spawn(move || std::fs::write(fifo, std::fs::read(file).unwrap()))
            };
            let piped = chunks_of(&fifo.to_string_lossy(), chunk_bytes);
            writer.join().unwrap().unwrap();
            assert_eq!(mapped, piped, "{file} in chunks of {chunk_bytes} bytes");
            assert_eq!(mapped.concat(), std::fs::read(file).unwrap());
            let ended = mapped[..mapped.len() - 1]
                .iter()
                .all(|b| b.ends_with(b"\n"));
            assert!(ended, "every chunk but the last ends a line");
        }
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        assert!(chunks_of(&empty.to_string_lossy(), 300).is_empty());
    }

    #[test]
    fn an_error_while_storing_stops_the_reading_and_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (a, ..) = events_file(dir.path(), "a", 2000);
        let mut stored = 0;
        let result = parse_files(
            &[a],
            200,
            |_| Ok(()),
            |_| {
                stored += 1;
                if stored == 3 {
                    return Err(CliError::user("disk full"));
                }
                Ok(())
            },
        );
        assert!(format!("{:?}", result.unwrap_err()).contains("disk full"));
        assert_eq!(stored, 3);
    }

    #[test]
    fn lines_that_are_not_utf8_are_rejected_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed");
        let good =
            r#"{"id":"e1","at":"2025-01-01T00:00:00Z","type":"stage","person":"p1","stage":"MQL"}"#;
        let mut bytes = format!("{good}\n").into_bytes();
        bytes.extend_from_slice(b"{\"id\":\"\xff\"}\n");
        bytes.extend_from_slice(good.replace("e1", "e3").as_bytes());
        std::fs::write(&path, bytes).unwrap();
        let (mut count, mut errors) = (0, Vec::new());
        parse_files(
            &[path.to_string_lossy().into_owned()],
            1 << 20,
            |_| Ok(()),
            |chunk| {
                count += chunk.count;
                errors.extend(chunk.errors);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(count, 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].reason.contains("UTF-8"), "{}", errors[0].reason);
    }
}
