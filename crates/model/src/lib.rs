//! The lifecycle model: the file where a team writes down what its stages and statuses mean
//! and how they move. This crate parses it, checks it the way a compiler checks code, and
//! compiles it into a [`Model`] the engine can run.
//!
//! The flow is *parse, then validate into richer types*: the TOML text is read into raw serde
//! structs (which also generate the JSON Schema, see [`json_schema`]), then [`load`] resolves
//! every name, compiles every CEL condition once, type-checks the fields it uses, proves the
//! stage graph and the status/stage coupling consistent, and returns either a [`Model`] or
//! every problem it found as [`Diagnostics`] (file, line, column, snippet, hint).
//!
//! ```
//! let model = waterfall_model::load("demand-waterfall.toml", waterfall_model::DEMAND_WATERFALL_TOML)
//!     .expect("the shipped model is valid");
//! let mal = model.stage_id("MAL").unwrap();
//! let mql = model.stage_id("MQL").unwrap();
//! assert!(model.allows(mal, mql));
//! ```
//!
//! Invariant: this crate does no I/O, reads no environment and no clock; callers hand it text
//! and instants.

#![forbid(unsafe_code)]

mod calendar;
mod compile;
mod diag;
mod diff;
mod expr;
mod fast;
mod graph;
mod raw;

use std::ops::Range;

pub use calendar::{Calendar, Duration, TimeUnit};
pub use diag::{Diagnostic, Diagnostics, RenderOptions, Severity};
pub use diff::{diff_models, ChangeKind, DefinitionChange};
pub use expr::{AccountAggregates, Condition, EvalContext, EvalError, FieldType};
pub use waterfall_core::{OpportunityKind, Timestamp};
pub use waterfall_match::{DedupRules, MatchPolicy, TieBreak};

/// Index of a stage in [`Model::stages`].
pub type StageId = u16;
/// Index of a status in [`Model::statuses`].
pub type StatusId = u16;
/// Index of an account stage in [`Model::account_stages`].
pub type AccountStageId = u16;
/// Index of a journey in [`Model::journeys`].
pub type JourneyId = u16;
/// A byte range in the model file's text.
pub type Span = Range<usize>;

/// The shipped default model: the demand waterfall with scoring and automation.
pub const DEMAND_WATERFALL_TOML: &str = include_str!("../../../models/demand-waterfall.toml");
/// The shipped model without automation, for honest reports over imported history.
pub const HISTORY_ONLY_TOML: &str = include_str!("../../../models/history-only.toml");

/// The error of [`Model::from_toml`] (kept for callers of the first API; it is [`Diagnostics`]).
pub type ModelError = Diagnostics;

/// Parses, checks and compiles a model file.
///
/// `name` is the file's path as the user should see it in messages. Returns every problem
/// found (not just the first) when the model has at least one error; warnings alone do not
/// stop loading (they are kept in [`Model::warnings`]). Never panics, whatever the bytes.
pub fn load(name: &str, text: &str) -> Result<Model, Diagnostics> {
    compile::compile(name, text)
}

/// The JSON Schema of the model file format, generated from the same serde types the loader
/// reads (for editor completion; `waterfall schema`).
pub fn json_schema() -> String {
    raw::json_schema()
}

/// Who owns a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Marketing works people in this stage.
    Marketing,
    /// Sales works people in this stage.
    Sales,
}

impl Owner {
    /// The name used in model files (`marketing`, `sales`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "marketing",
            Self::Sales => "sales",
        }
    }
}

impl StageKind {
    /// The name used in model files (`active`, `recycle`, `terminal`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Recycle => "recycle",
            Self::Terminal => "terminal",
        }
    }
}

/// What kind of stage it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    /// A stage on the main path.
    Active,
    /// A stage where people are recycled to (MRL, SRL).
    Recycle,
    /// A stage with no way out unless a rule reopens it.
    Terminal,
}

/// One lifecycle stage of a person.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Its name (`MQL`).
    pub name: String,
    /// What it means, for humans.
    pub definition: String,
    /// Who works people in it.
    pub owner: Option<Owner>,
    /// Active, recycle or terminal.
    pub kind: StageKind,
    /// Where it is declared in the model file.
    pub span: Span,
}

/// Who may set a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setter {
    /// Rules and opportunity outcomes of the model.
    Automation,
    /// A salesperson, through a `status` event.
    Sales,
}

/// One lead status.
#[derive(Debug, Clone)]
pub struct Status {
    /// Its name (`Working`).
    pub name: String,
    /// What it means, for humans.
    pub definition: String,
    /// Who may set it (empty in the file means both).
    pub set_by: Vec<Setter>,
    /// The stages a person may be in when sales sets it (empty: not restricted).
    pub set_in: Vec<StageId>,
    /// Where it is declared in the model file.
    pub span: Span,
}

/// Which kind of event a [`Rule`] reacts to; the index key of [`Model::rules_for`].
///
/// Intended semantics for one trigger (what the checker's conflict check assumes): the rules
/// that match are considered highest priority first (then file order); the first one that
/// sets a stage decides the stage and the first one that sets a status decides the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    /// A person is seen for the first time.
    PersonCreated,
    /// A person (or their account) did something.
    Activity,
    /// A status was set (by an event or by a rule).
    StatusSet,
    /// A stage was entered (by an event or by a rule).
    StageEntered,
    /// An opportunity with the person in its buying group was created, won or lost.
    Opportunity,
    /// A score crossed a threshold.
    ScoreCrossed,
    /// A timer ran out.
    Timer,
}

impl TriggerKind {
    /// All trigger kinds, in index order.
    pub const ALL: [TriggerKind; 7] = [
        Self::PersonCreated,
        Self::Activity,
        Self::StatusSet,
        Self::StageEntered,
        Self::Opportunity,
        Self::ScoreCrossed,
        Self::Timer,
    ];

    /// The name used in model files (`on = "activity"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PersonCreated => "person_created",
            Self::Activity => "activity",
            Self::StatusSet => "status",
            Self::StageEntered => "stage",
            Self::Opportunity => "opportunity",
            Self::ScoreCrossed => "score",
            Self::Timer => "timer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which moment of an opportunity's life a rule or an outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OppTrigger {
    /// The opportunity was created (first seen open).
    Created,
    /// It was closed won.
    Won,
    /// It was closed lost.
    Lost,
}

impl OppTrigger {
    /// All three, in file order.
    pub const ALL: [OppTrigger; 3] = [Self::Created, Self::Won, Self::Lost];

    /// The name used in model files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }
}

/// A score of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreRef {
    /// Fit (ICP) score.
    Fit,
    /// Engagement score (decays).
    Engagement,
}

/// What a timer measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Time since the person entered the stage (or got the status) named by the trigger.
    InStage,
    /// Time since the person's last activity, while in the stage/status named by the trigger.
    NoActivity,
}

/// What a rule reacts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A person is seen for the first time.
    PersonCreated,
    /// An activity of one of these kinds (empty: any kind).
    Activity {
        /// Activity kinds (`demo_request`), as in events.
        kinds: Vec<String>,
    },
    /// One of these statuses was set (empty: any status).
    StatusSet(Vec<StatusId>),
    /// One of these stages was entered (empty: any stage).
    StageEntered(Vec<StageId>),
    /// An opportunity of one of these kinds (empty: any kind) reached `state`.
    Opportunity {
        /// Opportunity kinds.
        kinds: Vec<OpportunityKind>,
        /// Created, won or lost.
        state: OppTrigger,
    },
    /// A score crossed a threshold.
    ScoreCrossed {
        /// Which score.
        score: ScoreRef,
        /// The threshold.
        threshold: f64,
        /// `true`: from below to at-or-above; `false`: from at-or-above to below.
        upward: bool,
    },
    /// A timer ran out. The engine schedules it when the person enters `in_stage` (or gets
    /// `in_status`), and for [`TimerKind::NoActivity`] re-arms it on every activity; it is
    /// cancelled when the person leaves that stage/status. Business units use
    /// [`Model::add_business_time`].
    Timer {
        /// The stage the person must still be in (any, if `None`).
        in_stage: Option<StageId>,
        /// The status the person must still have (any, if `None`).
        in_status: Option<StatusId>,
        /// How long.
        after: Duration,
        /// What is measured.
        kind: TimerKind,
    },
}

impl Trigger {
    /// The index key of this trigger.
    pub fn kind(&self) -> TriggerKind {
        match self {
            Self::PersonCreated => TriggerKind::PersonCreated,
            Self::Activity { .. } => TriggerKind::Activity,
            Self::StatusSet(_) => TriggerKind::StatusSet,
            Self::StageEntered(_) => TriggerKind::StageEntered,
            Self::Opportunity { .. } => TriggerKind::Opportunity,
            Self::ScoreCrossed { .. } => TriggerKind::ScoreCrossed,
            Self::Timer { .. } => TriggerKind::Timer,
        }
    }
}

/// What a rule does when it fires.
///
/// Semantics the engine implements: if `only_from` is not empty and the person's current
/// stage is not in it, the rule does nothing. `set_status` is applied after `set_stage`, so
/// an explicit status wins over the status the entered stage couples to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Action {
    /// Move the person to this stage.
    pub set_stage: Option<StageId>,
    /// Set this status.
    pub set_status: Option<StatusId>,
    /// Guard: fire only when the person's current stage is one of these (empty: any).
    pub only_from: Vec<StageId>,
}

/// One automation rule: on `trigger`, if `condition` holds, do `action`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name, unique in the model (shown as the cause of a transition).
    pub name: String,
    /// What it is for, for humans.
    pub description: String,
    /// Higher fires first; among rules of equal priority on overlapping triggers, the checker
    /// proves the outcomes agree.
    pub priority: i32,
    /// What it reacts to.
    pub trigger: Trigger,
    /// An optional CEL condition, compiled and checked.
    pub condition: Option<Condition>,
    /// What it does.
    pub action: Action,
    /// The journeys it belongs to (empty: all).
    pub journeys: Vec<JourneyId>,
    /// Where it is declared.
    pub span: Span,
}

/// The status/stage coupling, in both directions; the checker proves the two maps agree.
///
/// Loop protection is the engine's: apply each direction at most once per change.
#[derive(Debug, Clone, Default)]
pub struct Coupling {
    /// Indexed by [`StatusId`]: setting this status moves the person to this stage.
    pub status_to_stage: Vec<Option<StageId>>,
    /// Indexed by [`StageId`]: entering this stage sets this status (unless the same action
    /// sets a status explicitly).
    pub stage_to_status: Vec<Option<StatusId>>,
}

/// One fit-score rule: when the condition holds, add the points.
#[derive(Debug, Clone)]
pub struct FitRule {
    /// A name for explanations.
    pub name: String,
    /// Over person and account attributes.
    pub condition: Condition,
    /// Points added (may be negative).
    pub points: f64,
}

/// How scores are computed.
#[derive(Debug, Clone, Default)]
pub struct Scoring {
    /// Person fit rules (summed).
    pub fit: Vec<FitRule>,
    /// Account fit rules (summed), over account attributes.
    pub account_fit: Vec<FitRule>,
    /// Engagement points per activity kind.
    pub engagement_points: Vec<(String, f64)>,
    /// Points for an activity kind not listed.
    pub default_points: f64,
    /// Engagement decays by half every this many days (`None`: no decay).
    pub half_life_days: Option<f64>,
    /// Named thresholds (`mql_fit`), available in CEL as `thresholds.<name>`.
    pub thresholds: Vec<(String, f64)>,
}

impl Scoring {
    /// The engagement points one activity of this kind is worth when it happens.
    pub fn points_for(&self, kind: &str) -> f64 {
        self.engagement_points
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(self.default_points, |(_, p)| *p)
    }

    /// An engagement score `value` measured `days` ago, decayed to now.
    pub fn decay(&self, value: f64, days: f64) -> f64 {
        match self.half_life_days {
            Some(h) if h > 0.0 && days > 0.0 => value * 0.5f64.powf(days / h),
            _ => value,
        }
    }

    /// A named threshold.
    pub fn threshold(&self, name: &str) -> Option<f64> {
        self.thresholds
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

/// What an opportunity event does to the people of its buying group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Move them to this stage.
    pub stage: Option<StageId>,
    /// Set this status.
    pub status: Option<StatusId>,
    /// Set the account's type (`customer`), kept apart from any stage.
    pub account_type: Option<String>,
}

/// The outcomes of one opportunity kind; `None` means "not stated" (only allowed for
/// `created` and `won`; the checker requires `lost`).
///
/// Outcomes act as rules of priority 0 on the opportunity event: rules with a higher
/// priority are considered before them.
#[derive(Debug, Clone, Default)]
pub struct KindOutcomes {
    /// When created.
    pub created: Option<Outcome>,
    /// When won.
    pub won: Option<Outcome>,
    /// When lost (always stated in a checked model; may be empty = no change).
    pub lost: Option<Outcome>,
}

/// One stage of an account's journey.
#[derive(Debug, Clone)]
pub struct AccountStage {
    /// Its name (`MQA`).
    pub name: String,
    /// What it means, for humans.
    pub definition: String,
    /// Active, recycle or terminal.
    pub kind: StageKind,
    /// Stages that may follow it.
    pub next: Vec<AccountStageId>,
    /// Where it is declared.
    pub span: Span,
}

/// A rollup rule: when the condition over account attributes and aggregates holds, the
/// account moves to `set_stage`.
#[derive(Debug, Clone)]
pub struct AccountRule {
    /// Its name.
    pub name: String,
    /// Higher is tried first; the first that holds wins.
    pub priority: i32,
    /// Over `account.*` (attributes and aggregates).
    pub condition: Condition,
    /// The stage to move to.
    pub set_stage: AccountStageId,
    /// Guard: only from these stages (empty: any).
    pub only_from: Vec<AccountStageId>,
    /// Where it is declared.
    pub span: Span,
}

/// A journey: a separate waterfall run per selling motion or product line, chosen by a rule.
#[derive(Debug, Clone)]
pub struct Journey {
    /// Its name (`new_business`).
    pub name: String,
    /// What it is, for humans.
    pub definition: String,
    /// When it applies (`None`: the default journey). Journeys are tried in file order.
    pub condition: Option<Condition>,
}

/// A buying-group role: from opportunity contact roles with this name, and for people its
/// condition holds for.
#[derive(Debug, Clone)]
pub struct Role {
    /// Its name (`decision_maker`).
    pub name: String,
    /// What it means, for humans.
    pub definition: String,
    /// Over `person.*` and `account.*` (`None`: only opportunity contact roles give it).
    pub condition: Option<Condition>,
    /// Whether a buying group needs someone in it (coverage).
    pub required: bool,
}

/// A territory of [`Routing`]: people its condition holds for go to its pool.
#[derive(Debug, Clone)]
pub struct Territory {
    /// Its name (`EMEA`).
    pub name: String,
    /// Over `person.*` and `account.*`.
    pub condition: Condition,
    /// The owners who share it, round-robin (never empty in a checked model).
    pub pool: Vec<String>,
}

/// Account-based routing: who owns a person when they enter [`Routing::on_stage`].
///
/// Order: the account's owner (if `account_owner_first` and the account names one), then the
/// first territory whose condition holds, then the default pool. Round-robin within a pool
/// picks by a stable hash of the person's id ([`Routing::pick`]), so an assignment never
/// depends on the order events arrived in or on other partitions.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The stage whose entry assigns an owner.
    pub on_stage: StageId,
    /// Try the account's owner first.
    pub account_owner_first: bool,
    /// The account attribute naming its owner.
    pub owner_attr: String,
    /// Territories, in file order.
    pub territories: Vec<Territory>,
    /// The pool for people no territory takes (may be empty: no owner then).
    pub default_pool: Vec<String>,
}

impl Routing {
    /// The member of `pool` a person gets: FNV-1a of the person's id, modulo the pool size.
    pub fn pick<'p>(pool: &'p [String], person: &str) -> Option<&'p str> {
        if pool.is_empty() {
            return None;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in person.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Some(pool[(h % pool.len() as u64) as usize].as_str())
    }
}

/// A checked, compiled lifecycle model.
///
/// Every name is resolved to an id, every condition is compiled, and the checks of
/// `docs/model.md` hold. Rules are indexed by [`TriggerKind`] so the engine only looks at
/// the rules an event can fire ([`Model::rules_for`]).
#[derive(Debug, Clone)]
pub struct Model {
    /// The model's name.
    pub name: String,
    /// What the model is for, for humans.
    pub description: String,
    /// The stages, indexed by [`StageId`].
    pub stages: Vec<Stage>,
    /// The stage a new person enters.
    pub initial_stage: StageId,
    /// The statuses, indexed by [`StatusId`].
    pub statuses: Vec<Status>,
    /// The status a new person gets, if any.
    pub initial_status: Option<StatusId>,
    /// The model file's text, as loaded (kept so a database remembers its model).
    pub source: String,
    /// Whether any stage may follow any other (imported history is what happened).
    pub any_to_any: bool,
    /// The automation rules, in file order.
    pub rules: Vec<Rule>,
    /// Status/stage coupling.
    pub coupling: Coupling,
    /// Fit and engagement scoring.
    pub scoring: Scoring,
    /// Per [`OpportunityKind`] (index = position in [`OpportunityKind::ALL`]).
    pub outcomes: [KindOutcomes; 3],
    /// The business calendar for SLA timers.
    pub calendar: Calendar,
    /// Declared attribute types: person, account, activity.
    pub fields: Fields,
    /// Account stages (empty: no account journey).
    pub account_stages: Vec<AccountStage>,
    /// The stage a new account enters.
    pub initial_account_stage: Option<AccountStageId>,
    /// Account rollup rules, highest priority first.
    pub account_rules: Vec<AccountRule>,
    /// Journeys (empty: one implicit journey).
    pub journeys: Vec<Journey>,
    /// Buying-group roles (empty: roles come only from opportunity contacts).
    pub roles: Vec<Role>,
    /// Owner assignment (`None`: the engine assigns no owners).
    pub routing: Option<Routing>,
    /// Lead-to-account matching and person dedup (`[matching]`; off when absent).
    pub matching: MatchPolicy,
    /// Warnings found while checking (the model is usable).
    pub warnings: Vec<Diagnostic>,
    /// `allowed[from * n + to]`.
    allowed: Vec<bool>,
    /// Rule ids per [`TriggerKind`], highest priority first, then file order.
    by_trigger: [Vec<u32>; 7],
}

/// Declared attribute names and types, so conditions can be checked.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    /// `person.<name>`.
    pub person: Vec<(String, FieldType)>,
    /// `account.<name>`.
    pub account: Vec<(String, FieldType)>,
    /// `activity.<name>`.
    pub activity: Vec<(String, FieldType)>,
}

impl KindOutcomes {
    /// The outcome for one moment of the opportunity's life.
    pub fn get(&self, state: OppTrigger) -> Option<&Outcome> {
        match state {
            OppTrigger::Created => self.created.as_ref(),
            OppTrigger::Won => self.won.as_ref(),
            OppTrigger::Lost => self.lost.as_ref(),
        }
    }
}

impl Model {
    /// Parses and checks a model from its TOML text (the file name in messages is `model.toml`).
    pub fn from_toml(text: &str) -> Result<Model, Diagnostics> {
        load("model.toml", text)
    }

    /// The shipped default model (`models/demand-waterfall.toml`).
    pub fn demand_waterfall() -> Model {
        load("models/demand-waterfall.toml", DEMAND_WATERFALL_TOML)
            .expect("the shipped default model is valid")
    }

    /// The shipped history-only model (`models/history-only.toml`).
    pub fn history_only() -> Model {
        load("models/history-only.toml", HISTORY_ONLY_TOML)
            .expect("the shipped history-only model is valid")
    }

    /// The id of the stage with this name.
    pub fn stage_id(&self, name: &str) -> Option<StageId> {
        self.stages
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as StageId)
    }

    /// The id of the status with this name.
    pub fn status_id(&self, name: &str) -> Option<StatusId> {
        self.statuses
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as StatusId)
    }

    /// The id of the account stage with this name.
    pub fn account_stage_id(&self, name: &str) -> Option<AccountStageId> {
        self.account_stages
            .iter()
            .position(|s| s.name == name)
            .map(|i| i as AccountStageId)
    }

    /// Whether a person may move from stage `from` to stage `to` (always true with
    /// [`Model::any_to_any`]; out-of-range ids are never allowed).
    pub fn allows(&self, from: StageId, to: StageId) -> bool {
        let n = self.stages.len();
        let (f, t) = (from as usize, to as usize);
        if f >= n || t >= n {
            return false;
        }
        self.any_to_any || self.allowed[f * n + t]
    }

    /// The stages that may follow `from`.
    pub fn successors(&self, from: StageId) -> impl Iterator<Item = StageId> + '_ {
        (0..self.stages.len() as StageId).filter(move |&to| self.allows(from, to))
    }

    /// The rules reacting to this kind of trigger, highest priority first, then file order.
    pub fn rules_for(&self, kind: TriggerKind) -> impl Iterator<Item = &Rule> + '_ {
        self.by_trigger[kind.index()]
            .iter()
            .map(move |&i| &self.rules[i as usize])
    }

    /// What an opportunity of `kind` reaching `state` does to its buying group.
    pub fn outcome(&self, kind: OpportunityKind, state: OppTrigger) -> Option<&Outcome> {
        self.outcomes[kind as usize].get(state)
    }

    /// `start` plus an amount of (business) time, by the model's calendar.
    pub fn add_business_time(&self, start: Timestamp, amount: u32, unit: TimeUnit) -> Timestamp {
        self.calendar.add(start, amount, unit)
    }

    /// The journey a person or opportunity belongs to: the first whose condition holds, else
    /// the first without a condition; `None` when the model declares no journeys.
    pub fn journey_for(&self, ctx: &EvalContext<'_>) -> Option<JourneyId> {
        let hit = self.journeys.iter().position(|j| {
            j.condition
                .as_ref()
                .is_some_and(|c| c.eval(ctx).unwrap_or(false))
        });
        hit.or_else(|| self.journeys.iter().position(|j| j.condition.is_none()))
            .map(|i| i as JourneyId)
    }

    /// Every condition of the model: fit and account fit rules, rules, account rules,
    /// journeys, roles and routing territories.
    pub fn conditions(&self) -> impl Iterator<Item = &Condition> {
        self.scoring
            .fit
            .iter()
            .chain(&self.scoring.account_fit)
            .map(|f| &f.condition)
            .chain(self.rules.iter().filter_map(|r| r.condition.as_ref()))
            .chain(self.account_rules.iter().map(|r| &r.condition))
            .chain(self.journeys.iter().filter_map(|j| j.condition.as_ref()))
            .chain(self.roles.iter().filter_map(|r| r.condition.as_ref()))
            .chain(
                self.routing
                    .iter()
                    .flat_map(|r| r.territories.iter().map(|t| &t.condition)),
            )
    }

    /// Whether any condition of the model reads the person (`person.…`): if none does, a
    /// derivation never needs a person's attributes, only to hand them on.
    pub fn reads_person(&self) -> bool {
        self.conditions().any(|c| c.reads_root("person"))
    }

    /// A one-line summary for `waterfall check`
    /// (`demand-waterfall: 9 stages, 10 statuses, 8 rules, 6 account stages, 2 journeys`).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} stages, {} statuses, {} rules",
            self.name,
            self.stages.len(),
            self.statuses.len(),
            self.rules.len()
        );
        if !self.account_stages.is_empty() {
            s.push_str(&format!(", {} account stages", self.account_stages.len()));
        }
        if !self.journeys.is_empty() {
            s.push_str(&format!(", {} journeys", self.journeys.len()));
        }
        if self.any_to_any {
            s.push_str(", any stage may follow any other");
        }
        if !self.warnings.is_empty() {
            s.push_str(&format!(", {} warnings", self.warnings.len()));
        }
        s
    }

    /// The warnings found while loading, as [`Diagnostics`] the CLI can render like errors.
    pub fn warning_diagnostics(&self, file: &str) -> Diagnostics {
        Diagnostics::from_items(file, &self.source, self.warnings.clone())
    }

    /// The stage graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        graph::mermaid(self)
    }

    /// The stage graph as Graphviz DOT.
    pub fn to_dot(&self) -> String {
        graph::dot(self)
    }
}
