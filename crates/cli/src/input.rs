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

/// Reads an input (a path, or `-` for standard input) in chunks of about `chunk_bytes` that
/// end at a line break, calling `f(first_line_number, text, bytes_read)` for each. Lines that
/// are not UTF-8 are blanked in the text and reported in `errors` with their line number.
pub fn read_chunks(
    spec: &str,
    chunk_bytes: usize,
    errors: &mut Vec<LineError>,
    mut f: impl FnMut(usize, &str, usize) -> CliResult,
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
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + (1 << 16));
    loop {
        buf.clear();
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
        let bytes = buf.len();
        let lines = memchr::memchr_iter(b'\n', &buf).count();
        // SIMD validation: the whole input passes through here, at several GB/s.
        match simdutf8::basic::from_utf8(&buf) {
            Ok(text) => f(line, text, bytes)?,
            Err(_) => {
                let mut text = String::with_capacity(buf.len());
                for (i, l) in buf.split(|&b| b == b'\n').enumerate() {
                    match std::str::from_utf8(l) {
                        Ok(l) => text.push_str(l),
                        Err(e) => errors.push(LineError {
                            line: line + i,
                            reason: format!("not valid UTF-8: {e}"),
                        }),
                    }
                    text.push('\n');
                }
                f(line, &text, bytes)?;
            }
        }
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
