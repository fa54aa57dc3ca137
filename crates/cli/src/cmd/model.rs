//! `waterfall check`, `waterfall schema` and `waterfall model graph`: the model as code.

use crate::error::{CliError, CliResult};
use std::io::IsTerminal;
use std::time::Instant;
use waterfall_model::{load, RenderOptions};

/// Arguments of `waterfall check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The model file to check.
    file: String,
}

/// `waterfall model …`
#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Print the stage graph (Mermaid by default, or Graphviz DOT) so people can see their waterfall.
    Graph {
        /// The model file (or `demand-waterfall` / `history-only`).
        file: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
}

/// Graph output formats.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// A Mermaid flowchart (renders in GitHub and most wikis).
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Runs `waterfall check`: exit 0 with a summary, or 1 with every problem found.
pub fn check(args: CheckArgs) -> CliResult {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::user(format!("cannot read {}: {e}", args.file)))?;
    let started = Instant::now();
    let color = std::io::stderr().is_terminal();
    match load(&args.file, &text) {
        Ok(m) => {
            for w in &m.warnings {
                eprintln!("warning: {}", w.message);
            }
            println!(
                "{}: ok — model {:?}: {} stages, {} statuses, {} rules, {} account stages, {} journeys ({} warnings) in {:.1} ms",
                args.file,
                m.name,
                m.stages.len(),
                m.statuses.len(),
                m.rules.len(),
                m.account_stages.len(),
                m.journeys.len(),
                m.warnings.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(())
        }
        Err(d) => {
            eprint!("{}", d.render_with(RenderOptions { color }));
            Err(CliError::user(format!(
                "{}: {} problems",
                args.file,
                d.errors().count()
            )))
        }
    }
}

/// Runs `waterfall schema`: the JSON Schema of the model file format.
pub fn schema() -> CliResult {
    println!("{}", waterfall_model::json_schema());
    Ok(())
}

/// Runs `waterfall model …`.
pub fn run(cmd: ModelCommand) -> CliResult {
    match cmd {
        ModelCommand::Graph { file, format } => {
            let m = crate::input::load_model(&file)?;
            match format {
                GraphFormat::Mermaid => print!("{}", m.to_mermaid()),
                GraphFormat::Dot => print!("{}", m.to_dot()),
            }
            Ok(())
        }
    }
}
