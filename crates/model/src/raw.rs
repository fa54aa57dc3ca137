//! The model file as written: raw serde structs with spans. The JSON Schema is generated
//! from these same types, so the schema and the loader cannot drift apart.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// A Waterfall lifecycle model file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Waterfall lifecycle model")]
pub(crate) struct RawModel {
    /// The model's name and starting points.
    #[schemars(with = "RawHeader")]
    pub model: Spanned<RawHeader>,
    /// Declared attribute names and types, so conditions can be checked.
    #[serde(default)]
    pub fields: RawFields,
    /// Person lifecycle stages, in display order.
    #[serde(default)]
    #[schemars(with = "Vec<RawStage>")]
    pub stage: Vec<Spanned<RawStage>>,
    /// Lead statuses.
    #[serde(default)]
    #[schemars(with = "Vec<RawStatus>")]
    pub status: Vec<Spanned<RawStatus>>,
    /// Automation rules: on a trigger, if a condition holds, set a stage and/or a status.
    #[serde(default)]
    #[schemars(with = "Vec<RawRule>")]
    pub rule: Vec<Spanned<RawRule>>,
    /// Fit and engagement scoring.
    #[serde(default)]
    pub score: RawScore,
    /// What each opportunity kind does on created, won and lost.
    #[serde(default)]
    #[schemars(with = "Option<RawOutcomes>")]
    pub outcome: Option<Spanned<RawOutcomes>>,
    /// The business calendar used by business-time timers.
    #[serde(default)]
    #[schemars(with = "Option<RawCalendar>")]
    pub calendar: Option<Spanned<RawCalendar>>,
    /// Account (buying group) stages.
    #[serde(default)]
    #[schemars(with = "Vec<RawAccountStage>")]
    pub account_stage: Vec<Spanned<RawAccountStage>>,
    /// Account rollup rules.
    #[serde(default)]
    #[schemars(with = "Vec<RawAccountRule>")]
    pub account_rule: Vec<Spanned<RawAccountRule>>,
    /// Journeys (per selling motion or product line), chosen by a condition.
    #[serde(default)]
    #[schemars(with = "Vec<RawJourney>")]
    pub journey: Vec<Spanned<RawJourney>>,
    /// Buying-group roles, assigned from opportunity contacts and by condition.
    #[serde(default)]
    #[schemars(with = "Vec<RawRole>")]
    pub role: Vec<Spanned<RawRole>>,
    /// Who gets a new MQL: the account's owner, territories, round-robin pools.
    #[serde(default)]
    #[schemars(with = "Option<RawRouting>")]
    pub routing: Option<Spanned<RawRouting>>,
    /// Lead-to-account matching and person dedup (absent: nothing is matched or merged).
    #[serde(default)]
    #[schemars(with = "Option<RawMatching>")]
    pub matching: Option<Spanned<RawMatching>>,
}

/// `[model]`: name and starting points.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeader {
    /// The model's name.
    pub name: String,
    /// What this model is for, for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// The stage a new person enters.
    #[schemars(with = "String")]
    pub initial_stage: Spanned<String>,
    /// The status a new person gets.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub initial_status: Option<Spanned<String>>,
    /// The stage a new account enters (required when account stages are declared).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub initial_account_stage: Option<Spanned<String>>,
    /// Any stage may follow any other (for imported history); `next` lists are then ignored.
    #[serde(default)]
    pub any_to_any: bool,
}

/// The type of a declared attribute.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawFieldType {
    /// Text.
    String,
    /// A number (integer or decimal).
    Number,
    /// true or false.
    Bool,
    /// A list of strings.
    List,
}

/// `[fields]`: attribute name → type, for `person.*`, `account.*` and `activity.*`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFields {
    /// Person attributes.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawFieldType>")]
    pub person: BTreeMap<String, Spanned<RawFieldType>>,
    /// Account attributes.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawFieldType>")]
    pub account: BTreeMap<String, Spanned<RawFieldType>>,
    /// Activity attributes.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawFieldType>")]
    pub activity: BTreeMap<String, Spanned<RawFieldType>>,
}

/// Who owns a stage.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawOwner {
    /// Marketing.
    Marketing,
    /// Sales.
    Sales,
}

/// What kind of stage.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawKind {
    /// On the main path.
    Active,
    /// A recycle stage (MRL, SRL).
    Recycle,
    /// No way out unless a rule reopens it.
    Terminal,
}

/// `[[stage]]`: one person stage.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    /// Its name (`MQL`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What it means, for humans.
    #[serde(default)]
    pub definition: Option<String>,
    /// Who works people in it.
    #[serde(default)]
    pub owner: Option<RawOwner>,
    /// Active, recycle or terminal.
    pub kind: RawKind,
    /// The stages that may follow this one (`"*"`: any).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub next: Vec<Spanned<String>>,
    /// Coupling: entering this stage sets this status.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub status: Option<Spanned<String>>,
}

/// Who may set a status.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawSetter {
    /// Rules and opportunity outcomes.
    Automation,
    /// A salesperson.
    Sales,
}

/// `[[status]]`: one lead status.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatus {
    /// Its name (`Working`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What it means, for humans.
    #[serde(default)]
    pub definition: Option<String>,
    /// Who may set it (default: both).
    #[serde(default)]
    pub set_by: Vec<RawSetter>,
    /// Coupling: setting this status moves the person to this stage.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stage: Option<Spanned<String>>,
    /// The stages a person may be in when this status is set (checked against `stage`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub set_in: Vec<Spanned<String>>,
}

/// What a rule reacts to.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawOn {
    /// A person is seen for the first time.
    PersonCreated,
    /// An activity (`activity = [kinds]`).
    Activity,
    /// A status was set (`status = [names]`).
    Status,
    /// A stage was entered (`stage = [names]`).
    Stage,
    /// An opportunity event (`opportunity = "created"|"won"|"lost"`, `opportunity_kinds`).
    Opportunity,
    /// A score crossed a threshold (`score`, `crosses`, `direction`).
    Score,
    /// A timer (`timer`, `in_stage`/`in_status`, `after`).
    Timer,
}

/// Created, won or lost.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawOppState {
    /// Created.
    Created,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

/// An opportunity kind.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawOppKind {
    /// First sale.
    NewBusiness,
    /// Upsell / cross-sell.
    Expansion,
    /// Renewal.
    Renewal,
}

/// Which score.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawScoreRef {
    /// Fit.
    Fit,
    /// Engagement.
    Engagement,
}

/// Crossing direction.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawDirection {
    /// From below to at-or-above.
    Up,
    /// From at-or-above to below.
    Down,
}

/// What a timer measures.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawTimer {
    /// Time in the stage/status.
    InStage,
    /// Time since the last activity.
    NoActivity,
}

/// `[[rule]]`: on a trigger, if a condition holds, set a stage and/or a status.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    /// Unique name, shown as the cause of the transitions it makes.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What this rule is for, for humans.
    #[serde(default)]
    pub description: Option<String>,
    /// The trigger.
    #[schemars(with = "RawOn")]
    pub on: Spanned<RawOn>,
    /// Higher fires first (default 0).
    #[serde(default)]
    pub priority: i32,
    /// CEL condition.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
    /// `on = "activity"`: activity kinds (empty: any).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub activity: Option<Spanned<Vec<String>>>,
    /// `on = "status"`: statuses (empty: any).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub status: Option<Spanned<Vec<Spanned<String>>>>,
    /// `on = "stage"`: stages entered (empty: any).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub stage: Option<Spanned<Vec<Spanned<String>>>>,
    /// `on = "opportunity"`: created, won or lost.
    #[serde(default)]
    #[schemars(with = "Option<RawOppState>")]
    pub opportunity: Option<Spanned<RawOppState>>,
    /// `on = "opportunity"`: kinds (empty: any).
    #[serde(default)]
    #[schemars(with = "Option<Vec<RawOppKind>>")]
    pub opportunity_kinds: Option<Spanned<Vec<RawOppKind>>>,
    /// `on = "score"`: which score.
    #[serde(default)]
    #[schemars(with = "Option<RawScoreRef>")]
    pub score: Option<Spanned<RawScoreRef>>,
    /// `on = "score"`: the threshold, a number or a name from `[score.thresholds]`.
    #[serde(default)]
    #[schemars(with = "Option<NumberOrName>")]
    pub crosses: Option<Spanned<NumberOrName>>,
    /// `on = "score"`: up (default) or down.
    #[serde(default)]
    pub direction: Option<RawDirection>,
    /// `on = "timer"`: what is measured.
    #[serde(default)]
    #[schemars(with = "Option<RawTimer>")]
    pub timer: Option<Spanned<RawTimer>>,
    /// `on = "timer"`: the stage the person must be in.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub in_stage: Option<Spanned<String>>,
    /// `on = "timer"`: the status the person must have.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub in_status: Option<Spanned<String>>,
    /// `on = "timer"`: how long, `"<n> hours|days|business_hours|business_days"`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub after: Option<Spanned<String>>,
    /// Action: move to this stage.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub set_stage: Option<Spanned<String>>,
    /// Action: set this status.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub set_status: Option<Spanned<String>>,
    /// Guard: only when the person is in one of these stages.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub only_from: Vec<Spanned<String>>,
    /// The journeys this rule belongs to (empty: all).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub journey: Vec<Spanned<String>>,
}

/// A number, or the name of a threshold in `[score.thresholds]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum NumberOrName {
    /// A number.
    Number(f64),
    /// A threshold name.
    Name(String),
}

/// `[score]`: fit and engagement scoring.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScore {
    /// Named thresholds, available in CEL as `thresholds.<name>`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    /// Person fit rules.
    #[serde(default)]
    pub fit: Vec<RawFitRule>,
    /// Account fit rules.
    #[serde(default)]
    pub account_fit: Vec<RawFitRule>,
    /// Engagement points and decay.
    #[serde(default)]
    pub engagement: Option<RawEngagement>,
}

/// `[[score.fit]]`: when the condition holds, add points.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFitRule {
    /// A name for explanations.
    #[serde(default)]
    pub name: Option<String>,
    /// CEL condition over person/account attributes.
    #[schemars(with = "String")]
    pub when: Spanned<String>,
    /// Points added (may be negative).
    pub points: f64,
}

/// `[score.engagement]`: points per activity kind, with decay.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEngagement {
    /// Engagement halves every this many days.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub half_life_days: Option<Spanned<f64>>,
    /// Points for activity kinds not listed (default 0).
    #[serde(default)]
    pub default_points: f64,
    /// Points per activity kind.
    #[serde(default)]
    pub points: BTreeMap<String, f64>,
}

/// `[outcome.<kind>]`: what an opportunity of that kind does to its buying group.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutcomes {
    /// New business.
    #[serde(default)]
    #[schemars(with = "Option<RawKindOutcomes>")]
    pub new_business: Option<Spanned<RawKindOutcomes>>,
    /// Expansion (upsell / cross-sell).
    #[serde(default)]
    #[schemars(with = "Option<RawKindOutcomes>")]
    pub expansion: Option<Spanned<RawKindOutcomes>>,
    /// Renewal.
    #[serde(default)]
    #[schemars(with = "Option<RawKindOutcomes>")]
    pub renewal: Option<Spanned<RawKindOutcomes>>,
}

/// Created, won and lost outcomes of one kind. `lost` is required (may be `{}`: no change).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKindOutcomes {
    /// When created.
    #[serde(default)]
    pub created: Option<RawOutcome>,
    /// When won.
    #[serde(default)]
    pub won: Option<RawOutcome>,
    /// When lost.
    #[serde(default)]
    pub lost: Option<RawOutcome>,
}

/// One outcome.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutcome {
    /// Move the buying group to this stage.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stage: Option<Spanned<String>>,
    /// Set this status.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub status: Option<Spanned<String>>,
    /// Set the account's type (`prospect`, `customer`, `partner`).
    #[serde(default)]
    pub account_type: Option<String>,
}

/// `[calendar]`: the business calendar.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCalendar {
    /// `UTC` or a fixed offset (`+02:00`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// Working weekdays (`["mon", "tue", "wed", "thu", "fri"]`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub workdays: Option<Spanned<Vec<Spanned<String>>>>,
    /// Working hours, `"09:00-17:00"`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub hours: Option<Spanned<String>>,
    /// Holidays, `"2026-12-25"`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub holidays: Vec<Spanned<String>>,
}

/// `[[account_stage]]`: one account stage.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccountStage {
    /// Its name (`MQA`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What it means, for humans.
    #[serde(default)]
    pub definition: Option<String>,
    /// Active, recycle or terminal.
    pub kind: RawKind,
    /// The account stages that may follow (`"*"`: any).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub next: Vec<Spanned<String>>,
}

/// `[[account_rule]]`: a rollup rule.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccountRule {
    /// Its name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Higher is tried first.
    #[serde(default)]
    pub priority: i32,
    /// CEL over `account.*`.
    #[schemars(with = "String")]
    pub when: Spanned<String>,
    /// The account stage to move to.
    #[schemars(with = "String")]
    pub set_stage: Spanned<String>,
    /// Guard: only from these account stages.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub only_from: Vec<Spanned<String>>,
}

/// `[[journey]]`: one journey.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJourney {
    /// Its name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What it is, for humans.
    #[serde(default)]
    pub definition: Option<String>,
    /// CEL condition choosing it (none: the default journey).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
}

/// `[[role]]`: one buying-group role.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    /// Its name (`decision_maker`), as opportunity contact roles name it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// What it means, for humans.
    #[serde(default)]
    pub definition: Option<String>,
    /// CEL over `person.*` and `account.*`: people for whom it holds have the role (none:
    /// only opportunity contact roles give it).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
    /// Whether a buying group needs someone in this role (coverage).
    #[serde(default)]
    pub required: bool,
}

/// `[routing]`: who owns a person when they enter the routed stage.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouting {
    /// The stage whose entry assigns an owner (`MQL`).
    #[schemars(with = "String")]
    pub on_stage: Spanned<String>,
    /// Give the person to the owner of their account first, when it has one.
    #[serde(default)]
    pub account_owner_first: bool,
    /// The account attribute naming the account's owner (default `owner`).
    #[serde(default)]
    pub owner_attr: Option<String>,
    /// Territories, tried in file order.
    #[serde(default)]
    #[schemars(with = "Vec<RawTerritory>")]
    pub territory: Vec<Spanned<RawTerritory>>,
    /// The round-robin pool for people no territory takes.
    #[serde(default)]
    pub default_pool: Vec<String>,
}

/// `[[routing.territory]]`: a territory and its round-robin pool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTerritory {
    /// Its name (`EMEA`), shown in the assignment's reason.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// CEL over `person.*` and `account.*`.
    #[schemars(with = "String")]
    pub when: Spanned<String>,
    /// The owners who share it, round-robin.
    #[schemars(with = "Vec<String>")]
    pub pool: Spanned<Vec<String>>,
}

pub(crate) fn json_schema() -> String {
    let schema = schemars::schema_for!(RawModel);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// `[matching]`: lead-to-account matching and person dedup.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatching {
    /// Match people who arrive without an account to a known account (default `true`).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// What to match on, in order: `"domain"` (the email's domain) and/or `"company"` (the
    /// company name, exact after normalising, then fuzzy). Default both.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub match_on: Option<Spanned<Vec<Spanned<String>>>>,
    /// Matches below this confidence (0 to 1) are not made (default `0.85`).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub min_confidence: Option<Spanned<f64>>,
    /// How to choose between accounts that match equally well, e.g. subsidiaries sharing a
    /// domain: `"most_people"` (default), `"oldest"` or `"largest_employees"`; the account id
    /// breaks any remaining tie.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tie_break: Option<Spanned<String>>,
    /// More domains to treat as free-mail, besides the built-in list.
    #[serde(default)]
    pub free_mail: Vec<String>,
    /// Merge people with the same normalised email into the one created first (default
    /// `true`). History is kept: the duplicate's events are re-attributed to the survivor.
    #[serde(default)]
    pub merge_duplicates: Option<bool>,
    /// Ignore `+tag` plus-addressing when comparing emails (default `true`).
    #[serde(default)]
    pub ignore_plus_addressing: Option<bool>,
    /// Ignore dots in Gmail local parts when comparing emails, as Gmail does (default `true`).
    #[serde(default)]
    pub ignore_gmail_dots: Option<bool>,
}
