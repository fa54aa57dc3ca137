//! `waterfall diff`: what a model change would do, before it is made. Compares the two
//! models' definitions, then replays the whole event log under both (in memory, in parallel;
//! the database is only read) and compares the results.

use crate::cmd::report::{history_from_derived, instant, timer_rules_of, OutputFormat};
use crate::cmd::show::cause_text;
use crate::error::{CliError, CliResult};
use crate::input::{load_model, spinner};
use crate::DbArgs;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashMap;
use waterfall_core::{Event, Period, Timestamp};
use waterfall_engine::{
    derive_records_with, DeriveOptions, Derived, SequencedEvent, SequencedRecord,
};
use waterfall_model::{diff_models, DefinitionChange, Model};
use waterfall_report::{diff, table_of, DiffOptions, DiffReport, Report, Tabular};
use waterfall_store::Store;

/// Arguments of `waterfall diff`.
#[derive(clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The old model (a TOML file, or `demand-waterfall` / `history-only`).
    #[arg(required_unless_present = "git", requires = "new")]
    old: Option<String>,
    /// The new model.
    #[arg(required_unless_present = "git")]
    new: Option<String>,
    /// Compare two git revisions of a model file instead (`--git main:models/m.toml
    /// HEAD:models/m.toml`), read with `git show REV:PATH` in the current directory.
    #[arg(long, num_args = 2, value_names = ["REV1:PATH", "REV2:PATH"], conflicts_with_all = ["old", "new"])]
    git: Vec<String>,
    /// Calendar period of the flow, cohort and SLA comparisons (UTC).
    #[arg(long, default_value = "month")]
    period: Period,
    /// The cohort stage compared.
    #[arg(long, default_value = "MQL")]
    stage: String,
    /// Replay up to and compare at this instant (default: the latest event in the log).
    #[arg(long)]
    as_of: Option<String>,
    /// Output format (`table` for people, `json` for tools).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// How many example people (or accounts) to show per row.
    #[arg(long, default_value_t = 3)]
    examples: usize,
}

/// Reads `REV:PATH` from git and loads it as a model.
fn load_git_model(spec: &str) -> CliResult<Model> {
    if !spec.contains(':') {
        return Err(CliError::user(format!(
            "--git {spec}: expected REV:PATH (e.g. main:models/demand-waterfall.toml)"
        )));
    }
    let out = std::process::Command::new("git")
        .args(["show", spec])
        .output()
        .map_err(|e| CliError::user(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(CliError::user(format!(
            "git show {spec}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| CliError::user(format!("{spec} is not UTF-8 text")))?;
    waterfall_model::load(spec, &text).map_err(|e| CliError::user(format!("{spec}: {e}")))
}

/// Runs `waterfall diff`.
pub fn run(args: DiffArgs) -> CliResult {
    let (old_name, new_name, old, new) = match args.git.as_slice() {
        [a, b] => (a.clone(), b.clone(), load_git_model(a)?, load_git_model(b)?),
        _ => {
            let (a, b) = (
                args.old.clone().unwrap_or_default(),
                args.new.clone().unwrap_or_default(),
            );
            let (ma, mb) = (load_model(&a)?, load_model(&b)?);
            (a, b, ma, mb)
        }
    };
    let definitions = diff_models(&old, &new);
    if old.stage_id(&args.stage).is_none() && new.stage_id(&args.stage).is_none() {
        return Err(
            CliError::user(format!("unknown stage {:?}", args.stage)).hint(format!(
                "stages: {}",
                new.stages
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }
    if !args.db.db.exists() {
        return Err(
            CliError::user(format!("no database at {}", args.db.db.display()))
                .hint("create one with `waterfall ingest` or `waterfall demo`"),
        );
    }
    let pb = spinner("reading the event log");
    let store = Store::open(&args.db.db)?;
    let (names, partitions): (Vec<String>, Vec<Vec<SequencedEvent>>) =
        store.all_partitions()?.into_iter().unzip();
    let elsewhere = store.contacts_elsewhere(None)?;
    drop(store);
    // The latest event, not the clock: the same log always gives the same diff.
    let latest = partitions
        .iter()
        .filter_map(|p| p.last().map(|e| e.event.at))
        .max();
    let horizon = match instant("--as-of", args.as_of.as_deref())? {
        Some(t) => t,
        None => latest.ok_or_else(|| {
            CliError::user(format!("{} has no events", args.db.db.display()))
                .hint("load some with `waterfall ingest`")
        })?,
    };
    pb.set_message("replaying under both models");
    let opts = DeriveOptions::until(horizon);
    let replay = |model: &Model| replay(model, &names, &partitions, &elsewhere, opts);
    let (before, after) = std::thread::scope(|s| {
        let b = s.spawn(|| history_from_derived(&old, replay(&old)));
        let a = history_from_derived(&new, replay(&new));
        (b.join().expect("replay threads do not panic"), a)
    });
    pb.finish_and_clear();
    let mut report = diff(
        &before,
        &after,
        &DiffOptions {
            as_of: horizon,
            period: args.period,
            examples: args.examples,
            cohort_stage: Some(args.stage.clone()),
            sla_rules_before: timer_rules_of(&old),
            sla_rules_after: timer_rules_of(&new),
        },
    );
    explain(&mut report, &partitions);
    match args.format {
        OutputFormat::Json => {
            let mut json =
                serde_json::to_value(&report).map_err(|e| CliError::internal(e.to_string()))?;
            if let Some(o) = json.as_object_mut() {
                o.insert("old".into(), old_name.into());
                o.insert("new".into(), new_name.into());
                o.insert(
                    "definitions".into(),
                    serde_json::to_value(&definitions)
                        .map_err(|e| CliError::internal(e.to_string()))?,
                );
            }
            println!("{json}");
        }
        OutputFormat::Table | OutputFormat::Csv => {
            print!(
                "{}",
                table_of(
                    &format!(
                        "{} definition changes from {old_name} to {new_name}",
                        definitions.len()
                    ),
                    &definitions_table(&definitions)
                )
            );
            println!();
            print!("{}", report.to_table());
            if definitions.is_empty() && report.is_empty() {
                println!("\nThe two models give the same lifecycle over this event log.");
            }
        }
    }
    Ok(())
}

/// Fills in each example transition's causing event and a one-line why.
/// Derives every stored partition under `model` as the store does: each leaves the contacts
/// who live elsewhere to their own partition and keeps only its own account.
fn replay(
    model: &Model,
    names: &[String],
    partitions: &[Vec<SequencedEvent>],
    elsewhere: &FxHashMap<String, FxHashSet<String>>,
    opts: DeriveOptions,
) -> Vec<Derived> {
    use rayon::prelude::*;
    let none = FxHashSet::default();
    names
        .par_iter()
        .zip(partitions)
        .map(|(name, events)| {
            let records: Vec<SequencedRecord<'_>> =
                events.iter().map(SequencedRecord::parsed).collect();
            let elsewhere = elsewhere.get(name).unwrap_or(&none);
            let mut d = derive_records_with(model, &records, opts, elsewhere);
            d.keep_own_account(name);
            d
        })
        .collect()
}

fn explain(report: &mut DiffReport, partitions: &[Vec<SequencedEvent>]) {
    let wanted: std::collections::HashSet<u64> = report
        .transitions
        .iter()
        .flat_map(|g| g.examples.iter().map(|e| e.seq))
        .collect();
    let events: HashMap<u64, &Event> = partitions
        .iter()
        .flatten()
        .filter(|e| wanted.contains(&e.seq))
        .map(|e| (e.seq, &e.event))
        .collect();
    for g in &mut report.transitions {
        for ex in &mut g.examples {
            let at = Timestamp::parse(&ex.at).unwrap_or(Timestamp(0));
            let event = events.get(&ex.seq).copied();
            ex.event = event.map(|e| e.id.clone());
            // No event at that sequence number: a timer fired (they order after every event).
            ex.why = Some(cause_text(
                &g.rule,
                event.map(|e| (e.id.as_str(), Some(e))),
                at,
            ));
        }
    }
}

fn definitions_table(changes: &[DefinitionChange]) -> Tabular {
    let line = |l: Option<usize>| l.map_or_else(|| "-".into(), |l| l.to_string());
    let mut t = Tabular::new(&[
        ("change", false),
        ("what", false),
        ("name", false),
        ("old line", true),
        ("new line", true),
        ("details", false),
    ]);
    for c in changes {
        t.rows.push(vec![
            c.kind.as_str().into(),
            c.section.into(),
            c.name.clone(),
            line(c.old_line),
            line(c.new_line),
            c.details.join("\n"),
        ]);
    }
    t
}
