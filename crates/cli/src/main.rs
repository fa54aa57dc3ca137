//! `waterfall`: the command line of the Waterfall lead-lifecycle engine.
//!
//! Parses arguments, reads files, shows progress and prints results; every decision about
//! stages, statuses and numbers belongs to the library crates.

mod cmd;
mod error;
mod input;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Waterfall: your lead lifecycle as code.
///
/// Define stages, statuses, scores and SLAs in a model file; feed it the raw events your CRM
/// and marketing automation export; get every stage and status change with its cause, and
/// waterfall reports whose numbers mean one thing.
#[derive(Parser)]
#[command(
    name = "waterfall",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a realistic B2B dataset, run it through the default model, print the headlines.
    Demo(cmd::demo::DemoArgs),
    /// Check a model file like a compiler: every problem with file, line, column and a hint.
    Check(cmd::model::CheckArgs),
    /// Print the JSON Schema of the model file format (for editor completion).
    Schema,
    /// Work with model files.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// Load events (JSON Lines files, or - for standard input) into a database.
    Ingest(cmd::ingest::IngestArgs),
    /// Rebuild every stage and status from the event log (after changing the model).
    Replay(cmd::ingest::ReplayArgs),
    /// Waterfall reports with fixed meanings: flow, cohort, snapshot, velocity, conversion, recycling, status, SLA.
    #[command(subcommand)]
    Report(cmd::report::ReportCommand),
    /// Show a person's or an account's stage, status and timeline.
    #[command(subcommand)]
    Show(cmd::show::ShowCommand),
    /// Explain in plain words why a person is where they are.
    #[command(subcommand)]
    Why(cmd::show::WhyCommand),
    /// What a model change would do: definition changes, then the whole event log replayed
    /// under both models (in memory) — who moves, flow, cohorts, transitions, SLA breaches.
    Diff(cmd::diff::DiffArgs),
}

/// Options shared by commands that open a database.
#[derive(clap::Args, Clone, Debug)]
pub struct DbArgs {
    /// The database file (created if missing).
    #[arg(long, default_value = "waterfall.db", env = "WATERFALL_DB")]
    pub db: PathBuf,
}

/// A reader that stops early (`waterfall report … | head`) closes the pipe: that is not an
/// error, so end quietly with success instead of the panic `println!` raises.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// The allocator: ingest and derivation allocate many small strings on several threads,
/// which mimalloc serves markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Check(a) => cmd::model::check(a),
        Command::Schema => cmd::model::schema(),
        Command::Model(c) => cmd::model::run(c),
        Command::Ingest(a) => cmd::ingest::run(a),
        Command::Replay(a) => cmd::ingest::replay(a),
        Command::Report(c) => cmd::report::run(c),
        Command::Show(c) => cmd::show::show(c),
        Command::Why(c) => cmd::show::why(c),
        Command::Diff(a) => cmd::diff::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
