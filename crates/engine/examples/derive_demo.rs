//! Derives the demo data set, for profiling and for checking that an optimisation changes
//! nothing.
//!
//! `cargo run --release -p waterfall-engine --example derive_demo -- [default|history]
//! [accounts] [rounds] [digest-file] [seed] [horizon-micros]` derives the demo's partitions `rounds` times on one
//! thread (so callgrind counts are comparable) and prints the time it took, then, with a digest file, writes every
//! result's `Debug` text there: two builds agree when their files are identical.

#[path = "../benches/support/mod.rs"]
mod support;

use std::io::Write;
use waterfall_core::Timestamp;
use waterfall_demo::{generate, DemoOptions};
use waterfall_engine::{derive, DeriveOptions, SequencedEvent};
use waterfall_model::Model;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = match args.get(1).map(String::as_str) {
        Some("history") => Model::history_only(),
        _ => Model::demand_waterfall(),
    };
    let accounts = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let seed = args.get(5).and_then(|a| a.parse().ok());
    let parts = partitions(accounts, seed);
    let horizon = args.get(6).and_then(|a| a.parse().ok());
    let opts = DeriveOptions::until(Timestamp(horizon.unwrap_or(1_798_761_600_000_000)));
    let mut results = Vec::new();
    let mut took = std::time::Duration::ZERO;
    let mut fastest = std::time::Duration::MAX;
    for _ in 0..rounds {
        // Dropping the previous round's results is not part of deriving.
        drop(std::mem::take(&mut results));
        let t = std::time::Instant::now();
        results = parts.iter().map(|p| derive(&model, p, opts)).collect();
        took += t.elapsed();
        fastest = fastest.min(t.elapsed());
    }
    if let Some(path) = args.get(4) {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("digest file"));
        for r in &results {
            writeln!(out, "{r:#?}").expect("write digest");
        }
    }
    let n: usize = parts.iter().map(Vec::len).sum();
    eprintln!("{n} events in {} partitions, {rounds} rounds", parts.len());
    if rounds > 0 {
        eprintln!(
            "derive on one thread: {:.2} ms per round (fastest {:.2} ms)",
            took.as_secs_f64() * 1e3 / rounds as f64,
            fastest.as_secs_f64() * 1e3
        );
    }
}

/// The demo's events grouped by account, as the store partitions them.
fn partitions(accounts: usize, seed: Option<u64>) -> Vec<Vec<SequencedEvent>> {
    let defaults = DemoOptions::default();
    support::by_account(generate(&DemoOptions {
        accounts,
        seed: seed.unwrap_or(defaults.seed),
        ..defaults
    }))
}
