//! `waterfall report …`: waterfall reports with fixed meanings, as a table, JSON or CSV.

use crate::error::{CliError, CliResult};
use crate::DbArgs;
// Reports leave their History undropped: the process exits right after printing, and freeing
// millions of small allocations would only add to the wait.
use std::mem::ManuallyDrop;
use waterfall_core::{EntryReader, StageIndex, StageIndexNames};
use waterfall_core::{Field, Level, Period, Timestamp, Transition, TransitionRef};
use waterfall_engine::Derived;
use waterfall_model::Model;
use waterfall_report::{AccountInfo, History, PersonInfo, Report};
use waterfall_store::{HistoryQuery, Store};

/// `waterfall report …`
#[derive(clap::Subcommand)]
pub enum ReportCommand {
    /// How many people (or accounts) entered each stage, per period (entries and distinct
    /// subjects).
    Flow {
        #[command(flatten)]
        common: Common,
        /// Person stages or account (buying group) stages.
        #[arg(long, value_enum, default_value_t = ReportLevel::Person)]
        level: ReportLevel,
        #[command(flatten)]
        window: Window,
    },
    /// Where each cohort went: attempts that entered --stage in a period, and how many reached
    /// each later stage, with median days (every recycled attempt counts).
    Cohort {
        #[command(flatten)]
        common: Common,
        /// Person stages or account (buying group) stages.
        #[arg(long, value_enum, default_value_t = ReportLevel::Person)]
        level: ReportLevel,
        /// The cohort stage (default: MQL for people, MQA for accounts).
        #[arg(long)]
        stage: Option<String>,
        /// Calendar period (UTC).
        #[arg(long, default_value = "month")]
        period: Period,
        /// Ignore everything after this instant.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Time in stage: median and p90 days of stays that ended in each period, and open stays.
    Velocity {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        window: Window,
    },
    /// Stage-to-stage conversion: where each stage's entries went next, recycle paths included.
    Conversion {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        window: Window,
    },
    /// Recycling: recycle entries, people recycled once/twice/3+, and the re-entry rate of --stage.
    Recycling {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        window: Window,
        /// The stage whose repeat entries are counted (re-MQL rate).
        #[arg(long, default_value = "MQL")]
        stage: String,
        /// The recycle stages.
        #[arg(long, value_delimiter = ',', default_value = "MRL,SRL")]
        recycle: Vec<String>,
    },
    /// Status distribution at an instant, and status by stage.
    Status {
        #[command(flatten)]
        common: Common,
        /// The instant (default: now).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// SLA breaches: changes made by the model's timer rules (e.g. MQLs not accepted in time).
    Sla {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        window: Window,
        /// The rule names that count as breaches (`name*` matches a prefix). Default: every
        /// timer rule of the database's model.
        #[arg(long, value_delimiter = ',')]
        rules: Vec<String>,
    },
    /// Who is in which stage at an instant (default: now).
    Snapshot {
        #[command(flatten)]
        common: Common,
        /// Person stages or account (buying group) stages.
        #[arg(long, value_enum, default_value_t = ReportLevel::Person)]
        level: ReportLevel,
        /// The instant (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<String>,
    },
}

/// Options of the reports over a window of time.
#[derive(clap::Args)]
pub struct Window {
    /// Calendar period (UTC).
    #[arg(long, default_value = "month")]
    period: Period,
    /// Only what happened at or after this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Only what happened before this instant.
    #[arg(long)]
    to: Option<String>,
    /// Ignore everything after this instant.
    #[arg(long)]
    as_of: Option<String>,
}

/// Options every report takes.
#[derive(clap::Args)]
pub struct Common {
    #[command(flatten)]
    db: DbArgs,
    /// Split rows by this person attribute (e.g. `source`); people without it fall under null.
    #[arg(long)]
    by: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

/// Whose stages a report counts.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum ReportLevel {
    /// People (leads and contacts).
    Person,
    /// Accounts: the buying group's stage, rolled up by the model's account rules
    /// (`--by` groups on account attributes).
    Account,
}

/// How a report is printed.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// An aligned table for people.
    Table,
    /// The contract JSON shape, for tools.
    Json,
    /// CSV, for spreadsheets.
    Csv,
}

/// Parses an optional instant flag (RFC 3339 or YYYY-MM-DD).
pub fn instant(flag: &str, v: Option<&str>) -> CliResult<Option<Timestamp>> {
    v.map(|s| Timestamp::parse_flexible(s).map_err(|e| CliError::user(format!("{flag}: {e}"))))
        .transpose()
}

/// What a report reads: person-level stage transitions, plus statuses and rule names
/// (`everything`), plus the `--by` attribute of each person.
pub fn history_query(everything: bool, by: Option<&str>) -> HistoryQuery {
    HistoryQuery {
        field: (!everything).then_some(Field::Stage),
        level: Some(Level::Person),
        attributes: by.map(|b| Some(b.to_string())),
    }
}

/// Loads what reports read from a database: the model's names, people and transitions.
pub fn load_history(db: &DbArgs, query: &HistoryQuery) -> CliResult<History> {
    if !db.db.exists() {
        return Err(
            CliError::user(format!("no database at {}", db.db.display()))
                .hint("create one with `waterfall ingest` or `waterfall demo`"),
        );
    }
    let mut store = Store::open(&db.db)?;
    history_of_store(&mut store, query, true)
}

/// Builds the stage index of a database now, so that the next flow, cohort and snapshot
/// reports start from it (an ingest into a database that had events calls this after it
/// commits; a first load and a replay build it in their transaction). Reads without mapping
/// the file, which would count every page read in the caller's memory.
pub fn warm_stage_index(db: &DbArgs) -> CliResult {
    let mut store = Store::open(&db.db)?;
    history_of_store(&mut store, &history_query(false, None), false).map(drop)
}

/// Builds the stage index from the transitions an ingest or a replay writes, inside its
/// transaction: the index a person-stage report would build from the stored tables.
pub struct IndexFromTables(Option<waterfall_report::HistoryBuilder>);

impl IndexFromTables {
    /// A builder for a database under `model`.
    pub fn new(model: &Model) -> Self {
        let (stages, statuses, _) = model_names(Some(model));
        IndexFromTables(Some(History::builder(stages, statuses, Vec::new())))
    }
}

impl waterfall_store::IndexBuilder for IndexFromTables {
    fn add(&mut self, table: &waterfall_core::TransitionTable<'_>) {
        if let Some(builder) = &mut self.0 {
            builder.add_table(table, |field, level| {
                field == Field::Stage && level == Level::Person
            });
        }
    }

    fn finish(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.0.take()?.finish().stage_index()
    }
}

/// [`load_history`] on an open store; `map` reads the stage index or the stored transitions
/// through a memory map (faster: SQLite need not copy each page of a large blob, but every
/// page read counts in this process's memory).
fn history_of_store(store: &mut Store, query: &HistoryQuery, map: bool) -> CliResult<History> {
    let model = store.stored_model()?;
    let (stages, statuses, _) = model_names(model.as_ref());
    // Person stages alone (flow, cohort, snapshot): the stage index, when it is current.
    let indexable = query.field == Some(Field::Stage)
        && query.level == Some(Level::Person)
        && query.attributes.is_none();
    let generation = store.generation()?;
    store.map_reads(map)?;
    if indexable {
        let from_index = store.read_stage_index(generation, |names, entries, bytes| {
            // A damaged index is only a slower report: the stored transitions still answer.
            let names = StageIndexNames::decode(names).ok()?;
            let mut builder = History::builder(stages.clone(), statuses.clone(), Vec::new());
            let mut reader = EntryReader::new(entries);
            let added =
                builder.add_stage_entries(&names, StageIndex::entries_in(bytes), reader.by_ref());
            (added.is_ok() && reader.error().is_none()).then(|| builder.finish())
        })?;
        if let Some(Some(history)) = from_index {
            return Ok(history);
        }
    }
    let mut rows = store.history_for(query)?;
    let people = std::mem::take(&mut rows.people)
        .into_iter()
        .map(|p| PersonInfo {
            visible: p.merged_into.is_none(),
            id: p.id,
            account: p.account,
            attrs: p.attrs,
        })
        .collect();
    let mut builder = History::builder(stages, statuses, people);
    builder.reserve(rows.transitions, rows.subjects);
    rows.for_each_table(|table| builder.add_table(table, |field, level| rows.keeps(field, level)))?;
    let history = builder.finish();
    drop(rows);
    if indexable {
        // Kept for the next report; best effort (a read-only or busy database still reports).
        if let Some((names, entries)) = history.stage_index() {
            let _ = store.save_stage_index(generation, (&names, &entries));
        }
    }
    Ok(history)
}

/// Loads the account-level history: account stage transitions, every account with a stage
/// (its attributes for `--by`) and the model's account stages in model order.
pub fn load_account_history(db: &DbArgs) -> CliResult<History> {
    if !db.db.exists() {
        return Err(
            CliError::user(format!("no database at {}", db.db.display()))
                .hint("create one with `waterfall ingest` or `waterfall demo`"),
        );
    }
    let store = Store::open(&db.db)?;
    store.map_reads(true)?;
    let model = store.stored_model()?;
    let rows = store.history_for(&HistoryQuery {
        field: Some(Field::Stage),
        level: Some(Level::Account),
        attributes: None,
    })?;
    let transitions = rows.decode_all()?;
    let mut ids: Vec<&str> = transitions.iter().map(|t| t.subject).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut accounts = Vec::new();
    for id in ids {
        let attrs = store.account(id)?.map(|a| a.attrs).unwrap_or_default();
        accounts.push(AccountInfo {
            id: id.to_string(),
            attrs,
            visible: true,
        });
    }
    Ok(history_of(
        model.as_ref(),
        Vec::new(),
        accounts,
        transitions,
    ))
}

/// Loads the history a report at `level` reads (`by` groups people or accounts).
fn load_level(db: &DbArgs, level: ReportLevel, by: Option<&str>) -> CliResult<History> {
    match level {
        ReportLevel::Person => load_history(db, &history_query(false, by)),
        ReportLevel::Account => load_account_history(db),
    }
}

/// Builds what reports read from a model's names (in model order), people, accounts and
/// transitions: the one way for stored rows and for in-memory replays alike.
pub fn history_of<'a>(
    model: Option<&Model>,
    people: Vec<PersonInfo>,
    accounts: Vec<AccountInfo>,
    transitions: impl IntoIterator<Item = TransitionRef<'a>>,
) -> History {
    let (stages, statuses, account_stages) = model_names(model);
    History::from_refs(stages, statuses, people, transitions)
        .with_accounts(accounts, account_stages)
}

/// A model's stage, status and account stage names, in model order (none without a model).
fn model_names(model: Option<&Model>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let names = |f: &dyn Fn(&Model) -> Vec<String>| model.map(f).unwrap_or_default();
    (
        names(&|m: &Model| m.stages.iter().map(|s| s.name.clone()).collect()),
        names(&|m: &Model| m.statuses.iter().map(|s| s.name.clone()).collect()),
        names(&|m: &Model| m.account_stages.iter().map(|s| s.name.clone()).collect()),
    )
}

/// Builds what reports read from a replay in memory: the engine's people, accounts and
/// transitions of every partition, under `model`.
pub fn history_from_derived(model: &Model, derived: Vec<Derived>) -> History {
    let (mut people, mut accounts, mut transitions) = (Vec::new(), Vec::new(), Vec::new());
    for d in derived {
        people.extend(d.people.into_iter().map(|p| PersonInfo {
            visible: p.merged_into.is_none(),
            id: p.id,
            account: p.account,
            attrs: p.attrs,
        }));
        accounts.extend(d.accounts.into_iter().map(|a| AccountInfo {
            id: a.id,
            attrs: a.attrs,
            visible: true,
        }));
        transitions.extend(d.transitions);
    }
    history_of(
        Some(model),
        people,
        accounts,
        transitions.iter().map(Transition::as_ref),
    )
}

/// The names of the timer rules of the database's model: what counts as an SLA breach.
fn timer_rules(db: &DbArgs) -> CliResult<Vec<String>> {
    let store = Store::open(&db.db)?;
    Ok(store
        .stored_model()?
        .map(|m| timer_rules_of(&m))
        .unwrap_or_default())
}

/// The names of a model's timer rules: what counts as an SLA breach under it.
pub fn timer_rules_of(model: &Model) -> Vec<String> {
    model
        .rules_for(waterfall_model::TriggerKind::Timer)
        .map(|r| r.name.clone())
        .collect()
}

/// Prints a report in the chosen format.
pub fn print(report: &dyn Report, format: OutputFormat) {
    match format {
        OutputFormat::Table => print!("{}", report.to_table()),
        OutputFormat::Json => println!("{}", report.to_json()),
        OutputFormat::Csv => print!("{}", report.to_csv()),
    }
}

/// Runs `waterfall report`.
pub fn run(cmd: ReportCommand) -> CliResult {
    match cmd {
        ReportCommand::Flow {
            common,
            level,
            window,
        } => {
            let h = ManuallyDrop::new(load_level(&common.db, level, common.by.as_deref())?);
            let opts = waterfall_report::FlowOptions {
                period: window.period,
                from: instant("--from", window.from.as_deref())?,
                to: instant("--to", window.to.as_deref())?,
                by: common.by,
                as_of: instant("--as-of", window.as_of.as_deref())?,
            };
            let report = match level {
                ReportLevel::Person => waterfall_report::flow(&h, &opts),
                ReportLevel::Account => waterfall_report::account_flow(&h, &opts),
            };
            print(&report, common.format);
        }
        ReportCommand::Cohort {
            common,
            level,
            stage,
            period,
            as_of,
        } => {
            let h = ManuallyDrop::new(load_level(&common.db, level, common.by.as_deref())?);
            let (stage, known) = match level {
                ReportLevel::Person => (stage.unwrap_or_else(|| "MQL".into()), h.stages()),
                ReportLevel::Account => (stage.unwrap_or_else(|| "MQA".into()), h.account_stages()),
            };
            if !known.contains(&stage) {
                return Err(CliError::user(format!("unknown stage {stage:?}"))
                    .hint(format!("stages: {}", known.join(", "))));
            }
            let opts = waterfall_report::CohortOptions {
                stage,
                period,
                by: common.by,
                as_of: instant("--as-of", as_of.as_deref())?,
            };
            let report = match level {
                ReportLevel::Person => waterfall_report::cohort(&h, &opts),
                ReportLevel::Account => waterfall_report::account_cohort(&h, &opts),
            };
            print(&report, common.format);
        }
        ReportCommand::Velocity { common, window } => {
            let h = ManuallyDrop::new(load_history(
                &common.db,
                &history_query(false, common.by.as_deref()),
            )?);
            let opts = waterfall_report::VelocityOptions {
                period: window.period,
                from: instant("--from", window.from.as_deref())?,
                to: instant("--to", window.to.as_deref())?,
                by: common.by,
                as_of: instant("--as-of", window.as_of.as_deref())?,
            };
            print(&waterfall_report::velocity(&h, &opts), common.format);
        }
        ReportCommand::Conversion { common, window } => {
            let h = ManuallyDrop::new(load_history(
                &common.db,
                &history_query(false, common.by.as_deref()),
            )?);
            let opts = waterfall_report::ConversionOptions {
                from: instant("--from", window.from.as_deref())?,
                to: instant("--to", window.to.as_deref())?,
                by: common.by,
                as_of: instant("--as-of", window.as_of.as_deref())?,
            };
            print(&waterfall_report::conversion(&h, &opts), common.format);
        }
        ReportCommand::Recycling {
            common,
            window,
            stage,
            recycle,
        } => {
            let h = ManuallyDrop::new(load_history(
                &common.db,
                &history_query(false, common.by.as_deref()),
            )?);
            let opts = waterfall_report::RecyclingOptions {
                stage,
                recycle_stages: recycle,
                period: window.period,
                by: common.by,
                as_of: instant("--as-of", window.as_of.as_deref())?,
            };
            print(&waterfall_report::recycling(&h, &opts), common.format);
        }
        ReportCommand::Status { common, as_of } => {
            let h = ManuallyDrop::new(load_history(
                &common.db,
                &history_query(true, common.by.as_deref()),
            )?);
            let opts = waterfall_report::StatusOptions {
                as_of: instant("--as-of", as_of.as_deref())?.unwrap_or_else(Timestamp::now),
                by: common.by,
            };
            print(&waterfall_report::status(&h, &opts), common.format);
        }
        ReportCommand::Sla {
            common,
            window,
            rules,
        } => {
            let rules = if rules.is_empty() {
                timer_rules(&common.db)?
            } else {
                rules
            };
            let h = ManuallyDrop::new(load_history(
                &common.db,
                &history_query(true, common.by.as_deref()),
            )?);
            let opts = waterfall_report::SlaOptions {
                rules,
                period: window.period,
                by: common.by,
                from: instant("--from", window.from.as_deref())?,
                to: instant("--to", window.to.as_deref())?,
                as_of: instant("--as-of", window.as_of.as_deref())?,
            };
            print(&waterfall_report::sla(&h, &opts), common.format);
        }
        ReportCommand::Snapshot {
            common,
            level,
            as_of,
        } => {
            let h = ManuallyDrop::new(load_level(&common.db, level, common.by.as_deref())?);
            let opts = waterfall_report::SnapshotOptions {
                as_of: instant("--as-of", as_of.as_deref())?.unwrap_or_else(Timestamp::now),
                by: common.by,
            };
            let report = match level {
                ReportLevel::Person => waterfall_report::snapshot(&h, &opts),
                ReportLevel::Account => waterfall_report::account_snapshot(&h, &opts),
            };
            print(&report, common.format);
        }
    }
    Ok(())
}
