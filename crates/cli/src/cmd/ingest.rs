//! `waterfall ingest` and `waterfall replay`.

use crate::error::{CliError, CliResult};
use crate::input::{load_model, parse_parallel, read_chunks, spinner, Rejected};
use crate::DbArgs;
use std::sync::mpsc::Receiver;
use std::time::Instant;
use waterfall_core::{LineError, Timestamp};
use waterfall_store::{IngestOptions, Store};

/// One parsed chunk of an input file, on its way from the reader thread to the writer.
struct ParsedChunk {
    /// Index of the file in the arguments.
    file: usize,
    /// Parsed and checked events as record streams (see `waterfall_core::parse_records`),
    /// in input order, in slices.
    records: Vec<Vec<u8>>,
    /// How many events `records` holds.
    count: usize,
    /// Rejected lines.
    errors: Vec<LineError>,
    /// Bytes of input the chunk covered.
    bytes: usize,
}

/// How much of an input file is parsed and appended at a time (bounds memory).
const CHUNK_BYTES: usize = 8 << 20;

/// How many chunks may be read ahead of the one being stored.
const IN_FLIGHT: usize = 3;

/// Arguments of `waterfall ingest`.
#[derive(clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The lifecycle model (a TOML file, or `demand-waterfall` / `history-only`). Default: the
    /// model the database was built with, or `demand-waterfall` for a new database.
    #[arg(long)]
    model: Option<String>,
    /// All or nothing: if any line is rejected, store nothing.
    #[arg(long)]
    strict: bool,
    /// Print how long each phase took (parse, append, load, derive, write, commit).
    #[arg(long, short)]
    verbose: bool,
    /// Event files in JSON Lines (`-` reads standard input).
    #[arg(required = true)]
    files: Vec<String>,
}

/// Arguments of `waterfall replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Re-derive under this model instead of the stored one (it becomes the database's model).
    #[arg(long)]
    model: Option<String>,
    /// Print how long each phase took (load, derive, write, commit).
    #[arg(long, short)]
    verbose: bool,
}

/// Opens the database and picks the model: the one asked for must match the stored one.
pub fn open_with_model(
    db: &DbArgs,
    model: Option<&str>,
) -> CliResult<(Store, waterfall_model::Model)> {
    let store = Store::open(&db.db)?;
    let stored = store.stored_model()?;
    let model = match (model, stored) {
        (Some(spec), Some(stored)) => {
            let m = load_model(spec)?;
            if m.source != stored.source {
                return Err(CliError::user(format!(
                    "{} was built with model {:?}, not {spec}",
                    db.db.display(),
                    stored.name
                ))
                .hint(format!(
                    "to switch models, run `waterfall replay --db {} --model {spec}`",
                    db.db.display()
                ))
                .hint("to preview the change first, run `waterfall diff`"));
            }
            m
        }
        (Some(spec), None) => load_model(spec)?,
        (None, Some(stored)) => stored,
        (None, None) => waterfall_model::Model::demand_waterfall(),
    };
    Ok((store, model))
}

/// Builds the stage index the person-stage reports start from, timed as a phase.
fn warm(db: &DbArgs, summary: &mut waterfall_store::IngestSummary) -> CliResult {
    let started = Instant::now();
    crate::cmd::report::warm_stage_index(db)?;
    summary
        .phases
        .push(("stage index", started.elapsed().as_secs_f64()));
    Ok(())
}

/// Runs `waterfall ingest`.
pub fn run(args: IngestArgs) -> CliResult {
    let (mut store, model) = open_with_model(&args.db, args.model.as_deref())?;
    let started = Instant::now();
    let mut rejected: Vec<Rejected> = Vec::new();
    let total: u64 = args
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {binary_bytes}/{binary_total_bytes} {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template"),
    );
    let mut batch = store.begin(&model)?;
    let mut appended = 0usize;
    // Reading, parsing and storing overlap: the reader thread reads chunks and hands each to
    // the thread pool to parse; this thread stores the parsed chunks in input order (the order
    // gives events their ingestion sequence). At most `IN_FLIGHT` chunks are read ahead, and
    // their buffers are reused, so memory stays bounded and no fresh memory is touched per chunk.
    std::thread::scope(|scope| -> CliResult {
        let (send, chunks) = std::sync::mpsc::sync_channel::<Receiver<ParsedChunk>>(IN_FLIGHT);
        let (spare, buffers) = std::sync::mpsc::channel::<Vec<u8>>();
        let files = &args.files;
        let model = &model;
        let reader = scope.spawn(move || -> CliResult {
            rayon::in_place_scope(move |pool| -> CliResult {
                for (file, name) in files.iter().enumerate() {
                    let buffer = || buffers.try_recv().unwrap_or_default();
                    read_chunks(name, CHUNK_BYTES, buffer, |chunk| {
                        let (parsed, receiver) = std::sync::mpsc::sync_channel(1);
                        // A closed channel means the writer stopped on an error: stop reading.
                        send.send(receiver)
                            .map_err(|_| CliError::internal("ingest stopped"))?;
                        let spare = spare.clone();
                        pool.spawn(move |_| {
                            let bytes = chunk.data.len();
                            let (text, mut errors) = chunk.text();
                            let (records, count, parse_errors) =
                                parse_parallel(&text, chunk.first_line, |record| {
                                    waterfall_engine::validate_record(model, record)
                                });
                            drop(text);
                            errors.extend(parse_errors);
                            // The writer may have stopped: then the buffers are not needed.
                            let _ = spare.send(chunk.data);
                            let _ = parsed.send(ParsedChunk {
                                file,
                                records,
                                count,
                                errors,
                                bytes,
                            });
                        });
                        Ok(())
                    })?;
                }
                Ok(())
            })
        });
        let (mut waited, mut storing) = (0.0f64, 0.0f64);
        let mut clock = Instant::now();
        for receiver in chunks {
            let Ok(chunk) = receiver.recv() else { break };
            waited += clock.elapsed().as_secs_f64();
            clock = Instant::now();
            let file = &args.files[chunk.file];
            rejected.extend(chunk.errors.into_iter().map(|error| Rejected {
                file: file.clone(),
                error,
            }));
            appended += chunk.count;
            for part in chunk.records {
                batch.append_records(&part)?;
            }
            storing += clock.elapsed().as_secs_f64();
            clock = Instant::now();
            pb.inc(chunk.bytes as u64);
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!(
                "{appended} events, {:.0}/s",
                appended as f64 / secs
            ));
        }
        if args.verbose {
            eprintln!("waited for parsing {waited:.2}s, appended {storing:.2}s");
        }
        reader
            .join()
            .map_err(|_| CliError::internal("the reader thread panicked"))?
    })?;
    rejected.sort_by(|a, b| (&a.file, a.error.line).cmp(&(&b.file, b.error.line)));
    pb.finish_and_clear();
    for r in rejected.iter().take(50) {
        eprintln!("{}:{}: {}", r.file, r.error.line, r.error.reason);
    }
    if rejected.len() > 50 {
        eprintln!("… and {} more rejected lines", rejected.len() - 50);
    }
    if args.strict && !rejected.is_empty() {
        return Err(CliError::user(format!(
            "{} lines rejected; nothing stored (--strict)",
            rejected.len()
        )));
    }
    let pb = spinner(&format!(
        "deriving stages and statuses from {appended} events"
    ));
    // A load into an empty database builds the stage index as it writes the transitions.
    let mut index = crate::cmd::report::IndexFromTables::new(&model);
    let mut summary = batch.finish_indexed(
        IngestOptions {
            horizon: Timestamp::now(),
        },
        &mut index,
    )?;
    drop(store);
    if !summary.stage_index && summary.stored > 0 {
        // Rebuilding the index reads every stored transition: worth it after a load that is
        // a good share of the database, not after a few late events (the next report builds
        // it).
        let (events, ..) = Store::open(&args.db.db)?.counts()?;
        if summary.stored as u64 * 10 >= events {
            warm(&args.db, &mut summary)?;
        }
    }
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingested {} events into {} ({} new, {} already stored, {} rejected) in {:.1}s ({:.0} events/s); \
         re-derived {} partitions, {} transitions; model {:?}",
        summary.received,
        args.db.db.display(),
        summary.stored,
        summary.duplicates,
        rejected.len(),
        secs,
        summary.received as f64 / secs.max(1e-9),
        summary.partitions,
        summary.transitions,
        model.name
    );
    if args.verbose {
        let phases: Vec<String> = summary
            .phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.2}s"))
            .collect();
        eprintln!("phases: {}", phases.join(", "));
    }
    if !rejected.is_empty() {
        return Err(CliError::user(format!(
            "{} lines rejected (the good lines were stored)",
            rejected.len()
        )));
    }
    Ok(())
}

/// Runs `waterfall replay`.
pub fn replay(args: ReplayArgs) -> CliResult {
    let mut store = Store::open(&args.db.db)?;
    let model = match args.model.as_deref() {
        Some(spec) => load_model(spec)?,
        None => store.stored_model()?.ok_or_else(|| {
            CliError::user(format!("{} has no events yet", args.db.db.display()))
                .hint("load some with `waterfall ingest`")
        })?,
    };
    let started = Instant::now();
    let pb = spinner("replaying the event log");
    let mut index = crate::cmd::report::IndexFromTables::new(&model);
    let mut summary = store.replay_indexed(
        &model,
        IngestOptions {
            horizon: Timestamp::now(),
        },
        &mut index,
    )?;
    drop(store);
    if !summary.stage_index {
        warm(&args.db, &mut summary)?;
    }
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {} events in {} partitions under model {:?} in {secs:.1}s ({:.0} events/s): {} transitions",
        summary.received,
        summary.partitions,
        model.name,
        summary.received as f64 / secs.max(1e-9),
        summary.transitions
    );
    if args.verbose {
        let phases: Vec<String> = summary
            .phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.2}s"))
            .collect();
        eprintln!("phases: {}", phases.join(", "));
    }
    Ok(())
}
