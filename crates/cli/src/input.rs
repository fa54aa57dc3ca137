//! Reading what the user hands in: model files and event files.

use crate::error::{CliError, CliResult};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::path::Path;
use waterfall_core::{parse_lines, Event, LineError};
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
    Model::from_toml(&text).map_err(|e| {
        CliError::user(format!("{spec}: {e}"))
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

/// Reads one input (a path, or `-` for standard input) as text.
pub fn read_input(spec: &str) -> CliResult<String> {
    if spec == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(spec).map_err(|e| CliError::user(format!("cannot read {spec}: {e}")))
}

/// Parses JSON Lines text on all cores, keeping line numbers true.
pub fn parse_parallel(text: &str) -> (Vec<(usize, Event)>, Vec<LineError>) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads == 1 || text.len() < 1 << 20 {
        let out = parse_lines(text, 1);
        return (out.events, out.errors);
    }
    // Cut at newlines into one chunk per thread, counting lines to keep numbers exact.
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut line = 1;
    let target = text.len() / threads + 1;
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        while end < text.len() && text.as_bytes()[end - 1] != b'\n' {
            end += 1;
        }
        let chunk = &text[start..end];
        chunks.push((line, chunk));
        line += chunk.bytes().filter(|&b| b == b'\n').count();
        start = end;
    }
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&(l, c)| s.spawn(move || parse_lines(c, l)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("parser threads do not panic"))
            .collect()
    });
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        events.extend(r.events);
        errors.extend(r.errors);
    }
    (events, errors)
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
