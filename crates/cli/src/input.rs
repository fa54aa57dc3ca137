//! Reading what the user hands in: model files and event files.

use crate::error::{CliError, CliResult};
use indicatif::{ProgressBar, ProgressStyle};
use std::borrow::Cow;
use std::path::Path;
use waterfall_core::{parse_records, LineError, Record, RecordsOutcome};
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

/// A piece of an input file: whole lines, as read (not yet checked to be UTF-8).
pub struct TextChunk {
    /// The number of the chunk's first line in its file.
    pub first_line: usize,
    /// The lines' bytes.
    pub data: Vec<u8>,
}

impl TextChunk {
    /// The chunk's text, and its lines that are not valid UTF-8 (blanked in the text, each
    /// reported with its line number).
    pub fn text(&self) -> (Cow<'_, str>, Vec<LineError>) {
        // SIMD validation: the whole input passes through here, at several GB/s.
        if let Ok(text) = simdutf8::basic::from_utf8(&self.data) {
            return (Cow::Borrowed(text), Vec::new());
        }
        let mut errors = Vec::new();
        let mut text = String::with_capacity(self.data.len());
        for (i, l) in self.data.split(|&b| b == b'\n').enumerate() {
            match std::str::from_utf8(l) {
                Ok(l) => text.push_str(l),
                Err(e) => errors.push(LineError {
                    line: self.first_line + i,
                    reason: format!("not valid UTF-8: {e}"),
                }),
            }
            text.push('\n');
        }
        // `split` sees an empty piece after the last line break: drop its line break.
        if self.data.last() == Some(&b'\n') {
            text.pop();
        }
        (Cow::Owned(text), errors)
    }
}

/// Reads an input (a path, or `-` for standard input) in chunks of about `chunk_bytes` that
/// end at a line break, calling `f` with each. Each chunk is read into a buffer from `buffer`,
/// so the caller can hand buffers back for reuse instead of allocating fresh memory for every
/// chunk.
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
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(spec).map_err(cannot)?,
        ))
    };
    let mut line = 1;
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
        let lines = memchr::memchr_iter(b'\n', &buf).count();
        f(TextChunk {
            first_line: line,
            data: buf,
        })?;
        line += lines;
    }
}

/// Parses JSON Lines text on all cores straight into stored records (see
/// [`waterfall_core::parse_records`]), checking each with `check` and keeping true line
/// numbers in errors. The records come in input order, one stream per slice of the text
/// (never copied into one).
pub fn parse_parallel(
    text: &str,
    first_line: usize,
    check: impl Fn(&Record<Cow<'_, str>>) -> Result<(), String> + Sync,
) -> (Vec<Vec<u8>>, usize, Vec<LineError>) {
    use rayon::prelude::*;
    // Cut at newlines into a few slices per thread, counting lines to keep numbers exact.
    let slices = (rayon::current_num_threads() * 2).max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut line = first_line;
    let target = text.len() / slices + 1;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        while end < text.len() && text.as_bytes()[end - 1] != b'\n' {
            end += 1;
        }
        let chunk = &text[start..end];
        chunks.push((line, chunk));
        line += memchr::memchr_iter(b'\n', chunk.as_bytes()).count();
        start = end;
    }
    let results: Vec<RecordsOutcome> = chunks
        .into_par_iter()
        .map(|(l, c)| parse_records(c, l, &check))
        .collect();
    let mut parts = Vec::with_capacity(results.len());
    let (mut count, mut errors) = (0, Vec::new());
    for out in results {
        parts.push(out.records);
        count += out.count;
        errors.extend(out.errors);
    }
    (parts, count, errors)
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
