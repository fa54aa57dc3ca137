//! The `waterfall` command.

use clap::Parser;

/// Waterfall: the lead lifecycle as code.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    let m = waterfall_model::Model::demand_waterfall();
    println!("{} stages", m.stages.len());
}
