//! `waterfall demo`: the whole product in one command, on generated data.

use crate::cmd::report::{history_query, load_history, OutputFormat};
use crate::error::{CliError, CliResult};
use crate::input::spinner;
use crate::DbArgs;
use std::path::PathBuf;
use std::time::Instant;
use waterfall_core::{Period, Timestamp};
use waterfall_demo::{generate, write_jsonl, DemoOptions};
use waterfall_model::Model;
use waterfall_report::{cohort, flow, CohortOptions, FlowOptions, Report};
use waterfall_store::{IngestOptions, Store};

/// Arguments of `waterfall demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// How many accounts (companies) to simulate; about 110 events each.
    #[arg(long, default_value_t = 2000)]
    accounts: usize,
    /// Seed of the simulation: same seed, same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The database to create (replaced if it exists).
    #[arg(long, default_value = "waterfall-demo.db")]
    db: PathBuf,
    /// Where to write the generated events (JSON Lines), to try `waterfall ingest` on.
    #[arg(long, default_value = "waterfall-demo.jsonl")]
    events: PathBuf,
    /// The lifecycle model to run (default: the shipped demand waterfall).
    #[arg(long, default_value = "demand-waterfall")]
    model: String,
}

/// Runs `waterfall demo`.
pub fn run(args: DemoArgs) -> CliResult {
    let started = Instant::now();
    let model: Model = crate::input::load_model(&args.model)?;
    let opts = DemoOptions {
        accounts: args.accounts,
        seed: args.seed,
        ..DemoOptions::default()
    };

    let pb = spinner(&format!(
        "simulating {} accounts over {} days",
        opts.accounts, opts.days
    ));
    let events = generate(&opts);
    pb.set_message(format!(
        "writing {} events to {}",
        events.len(),
        args.events.display()
    ));
    let file = std::fs::File::create(&args.events)
        .map_err(|e| CliError::user(format!("cannot write {}: {e}", args.events.display())))?;
    write_jsonl(&events, std::io::BufWriter::new(file))?;
    pb.finish_and_clear();
    println!(
        "generated {} events for {} accounts (seed {}) → {}",
        events.len(),
        opts.accounts,
        opts.seed,
        args.events.display()
    );

    for suffix in ["", "-wal", "-shm"] {
        let mut p = args.db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let pb = spinner(&format!(
        "deriving every stage and status under model {:?}",
        model.name
    ));
    let mut store = Store::open(&args.db)?;
    let t = Instant::now();
    let generated = events.len();
    let summary = store.ingest(
        &model,
        events,
        IngestOptions {
            horizon: opts.end(),
        },
    )?;
    pb.finish_and_clear();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ingested into {} in {secs:.1}s ({:.0} events/s): {} transitions for {} partitions",
        args.db.display(),
        generated as f64 / secs.max(1e-9),
        summary.transitions,
        summary.partitions
    );
    drop(store);

    let history = load_history(
        &DbArgs {
            db: args.db.clone(),
        },
        &history_query(false, None),
    )?;
    let window = |t: Timestamp| Some(t);
    let f = flow(
        &history,
        &FlowOptions {
            period: Period::Quarter,
            from: window(opts.start),
            to: window(opts.end()),
            ..FlowOptions::default()
        },
    );
    println!("\nEntries per stage by quarter (a person entering a stage twice counts twice):");
    crate::cmd::report::print(&f as &dyn Report, OutputFormat::Table);
    let c = cohort(
        &history,
        &CohortOptions {
            stage: "MQL".into(),
            period: Period::Quarter,
            by: None,
            as_of: None,
        },
    );
    println!("\nWhere each quarter's MQLs went (every MQL attempt counts, recycled ones too):");
    crate::cmd::report::print(&c as &dyn Report, OutputFormat::Table);

    let db = args.db.display();
    println!(
        "\nDone in {:.1}s. Try next:",
        started.elapsed().as_secs_f64()
    );
    println!("  waterfall report flow --db {db} --period month --by source");
    println!("  waterfall report cohort --db {db} --stage MQL --period quarter");
    println!("  waterfall report snapshot --db {db} --as-of 2026-01-01");
    println!("  waterfall show person p1 --db {db}");
    println!("  waterfall why person p1 --db {db}");
    println!(
        "  waterfall ingest --db another.db {}",
        args.events.display()
    );
    Ok(())
}
