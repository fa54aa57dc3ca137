//! Deriving transitions from events: the engine's main loop, with the model's automation
//! (scores, rules, status/stage coupling, opportunity outcomes and timers).

use crate::state::{AccountState, BuyingGroupMember, Coverage, OpportunityInfo, PersonState};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use waterfall_core::event::record::attrs_of;
use waterfall_core::{
    Attrs, CompactString, Event, EventBody, Field, Level, OpportunityKind, OpportunityState, Order,
    Record, RecordBody, Timestamp, Transition,
};
use waterfall_model::{
    AccountAggregates, AccountStageId, EvalContext, Model, OppTrigger, Routing, Rule, ScoreRef,
    StageId, StageKind, StatusId, TimerKind, Trigger, TriggerKind,
};

/// An event with its ingestion sequence number (the tie-breaker between events at one instant).
#[derive(Debug, Clone, PartialEq)]
pub struct SequencedEvent {
    /// Position in ingestion order across the whole log (first ingested = smallest).
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// An event in its record form, borrowed from a stored record stream (or from an owned
/// event), with its ingestion sequence number: what derivation reads, so a partition read
/// from storage is derived without building an owned [`Event`] per record.
#[derive(Debug, Clone, PartialEq)]
pub struct SequencedRecord<'a> {
    /// Position in ingestion order across the whole log (first ingested = smallest).
    pub seq: u64,
    /// The event.
    pub record: Record<&'a str>,
    /// The attributes, already parsed, of a record made from an owned event (its own
    /// attributes' text is then not read).
    pub attrs: Option<&'a Attrs>,
}

impl<'a> SequencedRecord<'a> {
    /// A record read from a stream.
    pub fn new(seq: u64, record: Record<&'a str>) -> Self {
        SequencedRecord {
            seq,
            record,
            attrs: None,
        }
    }

    /// The record form of an owned event, as stored: `attrs` is [`Event::attrs_text`] of it.
    pub fn of(event: &'a SequencedEvent, attrs: &'a str) -> Self {
        SequencedRecord::new(event.seq, event.event.record(attrs))
    }

    /// The record form of an owned event for derivation only: its attributes are read as
    /// they are, never written as text.
    pub fn parsed(event: &'a SequencedEvent) -> Self {
        let attrs = match &event.event.body {
            EventBody::Account { attrs, .. }
            | EventBody::Person { attrs, .. }
            | EventBody::Activity { attrs, .. } => Some(attrs),
            _ => None,
        };
        SequencedRecord {
            attrs,
            ..SequencedRecord::new(event.seq, event.event.record(""))
        }
    }
}

/// Sorts events into the order [`derive()`] wants, by (`at`, `seq`). Events are large, so
/// their keys are sorted and each event then moves once, instead of at every step of a sort.
pub fn sort_for_derivation<E: Ordered>(events: &mut Vec<E>) {
    let Some(order) = derivation_order(events) else {
        return;
    };
    let mut slots: Vec<Option<E>> = std::mem::take(events).into_iter().map(Some).collect();
    events.reserve_exact(order.len());
    events.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// The events in the order [`derive()`] wants (see [`sort_for_derivation`]), by reference:
/// nothing moves, which is what a caller that only derives them needs.
pub fn in_derivation_order<E: Ordered>(events: &[E]) -> Vec<&E> {
    match derivation_order(events) {
        None => events.iter().collect(),
        Some(order) => order.into_iter().map(|i| &events[i]).collect(),
    }
}

/// The positions of `events` in derivation order (ties, if any, in slice order), or `None`
/// when they are in it already.
fn derivation_order<E: Ordered>(events: &[E]) -> Option<Vec<usize>> {
    if events.windows(2).all(|w| w[0].key() <= w[1].key()) {
        return None;
    }
    let mut order: Vec<(i64, u64, usize)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.key().0, e.key().1, i))
        .collect();
    order.sort_unstable();
    Some(order.into_iter().map(|(.., i)| i).collect())
}

/// An event with its place in derivation order: (`at` in microseconds, `seq`).
pub trait Ordered {
    /// The event's (`at`, `seq`).
    fn key(&self) -> (i64, u64);
}

impl Ordered for SequencedEvent {
    fn key(&self) -> (i64, u64) {
        (self.event.at.0, self.seq)
    }
}

impl Ordered for SequencedRecord<'_> {
    fn key(&self) -> (i64, u64) {
        (self.record.at, self.seq)
    }
}

/// Options of one derivation.
#[derive(Debug, Clone, Copy)]
pub struct DeriveOptions {
    /// Timers due at or before this instant fire; later ones stay pending. Events after it are
    /// ignored, so a derivation with `horizon = T` is the state as of `T`.
    pub horizon: Timestamp,
    /// The caller wants people's attributes as JSON text (the store writes them so): under a
    /// model that never reads the person ([`Model::reads_person`]), a person whose attributes
    /// come from one event alone then keeps that event's text, unparsed, in
    /// [`PersonState::attrs_text`]. Parsing and writing back every person's attributes was a
    /// tenth of a load's derivation.
    pub attrs_as_text: bool,
}

impl DeriveOptions {
    /// Derives up to `horizon`, with attributes parsed (see [`DeriveOptions::attrs_as_text`]).
    pub const fn until(horizon: Timestamp) -> DeriveOptions {
        DeriveOptions {
            horizon,
            attrs_as_text: false,
        }
    }
}

/// An event the engine kept in the log but could not apply, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rejection {
    /// The event's id.
    pub event: String,
    /// When it happened.
    pub at: Timestamp,
    /// Why it changed nothing, in words.
    pub reason: String,
}

/// Everything one derivation produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived {
    /// Every change of stage or status, in [`Order`].
    pub transitions: Vec<Transition>,
    /// Every person's final state (merged-away people included, marked `merged_into`).
    pub people: Vec<PersonState>,
    /// Every account's final state.
    pub accounts: Vec<AccountState>,
    /// Events that could not be applied.
    pub rejections: Vec<Rejection>,
}

impl Derived {
    /// Keeps, of the accounts a partition's derivation met, only the account the partition is
    /// named after, with its account-level transitions. Another account only passes through
    /// the partition (named by a person or an opportunity that belongs to another account in
    /// the end, since the latest account named decides where they live): its own partition
    /// tells its story, or none does, and a second state of it here would count it twice or
    /// overwrite its own. Every reader of stored partitions applies this one rule.
    pub fn keep_own_account(&mut self, partition: &str) {
        self.accounts.retain(|a| a.id == partition);
        self.transitions
            .retain(|t| t.level != Level::Account || t.subject == partition);
    }
}

/// The sequence number timers order by: after every event at their instant.
pub const TIMER_SEQ: u64 = i64::MAX as u64;

/// How deep one change may cascade through coupling and rules (loop protection).
const MAX_CASCADE: u32 = 8;

/// How many account rules may move one account after one change (loop protection).
const MAX_ACCOUNT_MOVES: u32 = 4;

/// A person counts as engaged for this long after an activity worth points.
const ENGAGED_WINDOW_DAYS: i64 = 90;

/// An intent surge counts for this long.
const SURGE_WINDOW_DAYS: i64 = 30;

/// The account activity kind that counts as an intent surge.
const INTENT_SURGE: &str = "intent_surge";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The fields of [`AccountAggregates`] as conditions name them (`account.engaged_people`).
const AGGREGATE_FIELDS: [&str; 6] = [
    "engaged_people",
    "mql_people",
    "open_opportunities",
    "won_opportunities",
    "intent_surges_30d",
    "roles",
];

/// Whether someone who last engaged at `last_engaged` counts as engaged at `at` (within the
/// last [`ENGAGED_WINDOW_DAYS`]).
fn engaged_at(last_engaged: Option<Timestamp>, at: Timestamp) -> bool {
    last_engaged.is_some_and(|t| at < plus_days(t, ENGAGED_WINDOW_DAYS))
}

/// `t` plus whole days.
fn plus_days(t: Timestamp, days: i64) -> Timestamp {
    Timestamp(t.0.saturating_add(days * MICROS_PER_DAY))
}

/// A contact role as opportunities write it, in the model's spelling (`Decision Maker` →
/// `decision_maker`).
fn normalise_role(role: &str) -> String {
    role.trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

/// Sets each of `new`'s attributes in `attrs`. The first event of a person or account
/// brings all its attributes: the map then simply becomes theirs.
fn merge_attrs(attrs: &mut Attrs, new: Attrs) {
    if attrs.is_empty() {
        *attrs = new;
        return;
    }
    attrs.extend(new);
}

/// Checks attributes' text as [`attrs_of`] would, without building them: a JSON object, or
/// nothing.
fn check_attrs(text: &str) -> Result<(), String> {
    let object = text.is_empty()
        || (text.trim_start().starts_with('{')
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
    if object {
        Ok(())
    } else {
        Err("attributes are not a JSON object".into())
    }
}

/// Derives one partition: `events` must be sorted by (`at`, `seq`).
pub fn derive(model: &Model, events: &[SequencedEvent], opts: DeriveOptions) -> Derived {
    let records: Vec<SequencedRecord<'_>> = events.iter().map(SequencedRecord::parsed).collect();
    derive_records(model, &records, opts)
}

/// [`derive()`] on events in record form (what the store reads), in derivation order (by
/// (`at`, `seq`): a sorted slice, or [`in_derivation_order`]'s references).
pub fn derive_records<'e, I>(model: &Model, events: I, opts: DeriveOptions) -> Derived
where
    I: IntoIterator<Item = &'e SequencedRecord<'e>>,
    I::IntoIter: Clone,
{
    derive_records_with(model, events, opts, &FxHashSet::default())
}

/// [`derive_records`] for a stored partition whose deals name contacts who live in another
/// partition (`elsewhere`: another account's people, by the id the deal names them by). Such
/// a contact is left to their own partition: the deal keeps them among its contacts, but no
/// state of them is made here (which would count them twice, in two accounts).
pub fn derive_records_with<'e, I>(
    model: &Model,
    events: I,
    opts: DeriveOptions,
    elsewhere: &FxHashSet<String>,
) -> Derived
where
    I: IntoIterator<Item = &'e SequencedRecord<'e>>,
    I::IntoIter: Clone,
{
    let events = events.into_iter();
    let mut d = Deriver::new(model, events.clone(), opts, elsewhere);
    for se in events {
        let at = Timestamp(se.record.at);
        if at > opts.horizon {
            break;
        }
        // Timers due strictly before this instant fire first; those due at it fire after it.
        d.fire_timers_before(at);
        d.apply(se);
    }
    d.fire_timers_until(opts.horizon);
    d.settle_idle_roll_ups();
    d.finish()
}

/// Derives many independent partitions on all cores, concatenating their results in the
/// order given (so the output does not depend on thread timing).
///
/// Threads take the next partition from a shared counter, so one large partition (a big
/// account) does not leave the other cores idle behind a fixed split.
pub fn derive_all(
    model: &Model,
    partitions: &[Vec<SequencedEvent>],
    opts: DeriveOptions,
) -> Vec<Derived> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(partitions.len().max(1));
    if threads <= 1 || partitions.len() < 64 {
        return partitions.iter().map(|p| derive(model, p, opts)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, AtomicOrdering::Relaxed);
            let Some(p) = partitions.get(i) else {
                return done;
            };
            done.push((i, derive(model, p, opts)));
        }
    };
    let mut slots: Vec<Option<Derived>> = Vec::new();
    slots.resize_with(partitions.len(), || None);
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = work();
        for (i, d) in helpers
            .into_iter()
            .flat_map(|h| h.join().expect("derivation threads do not panic"))
            .chain(mine)
        {
            slots[i] = Some(d);
        }
    });
    slots
        .into_iter()
        .map(|d| d.expect("every partition was derived"))
        .collect()
}

/// Checks an event against the model before it is stored: names of stages and statuses must
/// exist. Returns the reason for rejecting it.
pub fn validate(model: &Model, event: &Event) -> Result<(), String> {
    match &event.body {
        EventBody::Stage { stage, .. } => known_stage(model, stage),
        EventBody::Status { status, .. } => known_status(model, status),
        _ => Ok(()),
    }
}

/// [`validate`] for an event still in its record form.
pub fn validate_record<S: AsRef<str>>(model: &Model, record: &Record<S>) -> Result<(), String> {
    match &record.body {
        RecordBody::Stage { stage, .. } => known_stage(model, stage.as_ref()),
        RecordBody::Status { status, .. } => known_status(model, status.as_ref()),
        _ => Ok(()),
    }
}

fn known_stage(model: &Model, stage: &str) -> Result<(), String> {
    match model.stage_id(stage) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown stage {stage:?} (model {:?} has {})",
            model.name,
            model
                .stages
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn known_status(model: &Model, status: &str) -> Result<(), String> {
    match model.status_id(status) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown status {status:?} (model {:?} has {})",
            model.name,
            model
                .statuses
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A person while the derivation runs.
struct Person {
    id: String,
    account: Option<String>,
    attrs: Attrs,
    /// The JSON text of the only event that set attributes so far, unparsed (`attrs` is then
    /// empty; see [`DeriveOptions::attrs_as_text`]).
    attrs_text: Option<String>,
    stage: StageId,
    status: Option<StatusId>,
    created_at: Timestamp,
    last_activity: Option<Timestamp>,
    /// Fit score from the model's fit rules.
    fit: f64,
    /// Engagement as of `engagement_at` (decays from there).
    engagement: f64,
    engagement_at: Timestamp,
    /// Bumped on every stage or status change, so stale timers know they are stale.
    epoch: u64,
    /// The last activity worth engagement points (what "engaged" counts from).
    last_engaged: Option<Timestamp>,
    /// The owner routing assigned.
    owner: Option<String>,
    /// Roles from the model's role conditions (recomputed when attributes change).
    roles: Vec<String>,
    /// The same roles as bits, by their rank in [`RoleNames`] (when the model has at most
    /// 64 role names), for rollups.
    role_bits: u64,
}

/// The model's role names, sorted and without repeats, and each role's rank among them:
/// lets a rollup gather its people's roles as bits, and list them already sorted.
struct RoleNames<'m> {
    sorted: Vec<&'m str>,
    /// By role index: the rank of its name in `sorted`.
    rank: Vec<u32>,
}

impl<'m> RoleNames<'m> {
    /// `None` when there are too many names for 64 bits.
    fn of(model: &'m Model) -> Option<RoleNames<'m>> {
        let mut sorted: Vec<&str> = model.roles.iter().map(|r| r.name.as_str()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() > 64 {
            return None;
        }
        let rank = model
            .roles
            .iter()
            .map(|r| sorted.binary_search(&r.name.as_str()).unwrap_or(0) as u32)
            .collect();
        Some(RoleNames { sorted, rank })
    }

    /// The names whose bits are set, in sorted order.
    fn names(&self, bits: u64) -> impl Iterator<Item = &'m str> + Clone + '_ {
        self.sorted
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, &n)| n)
    }
}

/// The partition's people, by id and by slot: a person's slot never changes (nobody is
/// removed while a derivation runs), so accounts list their members by slot and a rollup
/// over them hashes no id.
#[derive(Default)]
struct People {
    slots: FxHashMap<String, u32>,
    list: Vec<Person>,
}

impl People {
    fn contains_key(&self, id: &str) -> bool {
        self.slots.contains_key(id)
    }

    fn slot(&self, id: &str) -> Option<u32> {
        self.slots.get(id).copied()
    }

    fn get(&self, id: &str) -> Option<&Person> {
        self.slot(id).map(|s| &self.list[s as usize])
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Person> {
        self.slot(id).map(|s| &mut self.list[s as usize])
    }

    fn at(&self, slot: u32) -> &Person {
        &self.list[slot as usize]
    }

    /// Adds a person not seen before.
    fn insert(&mut self, person: Person) {
        self.slots.insert(person.id.clone(), self.list.len() as u32);
        self.list.push(person);
    }
}

impl std::ops::Index<&str> for People {
    type Output = Person;

    fn index(&self, id: &str) -> &Person {
        self.get(id).expect("person exists")
    }
}

/// An account's people (survivors only), in id order, with their slots in [`People`].
#[derive(Default)]
struct Members(Vec<(String, u32)>);

impl Members {
    /// Adds a person (no-op if a member already).
    fn insert(&mut self, id: &str, slot: u32) {
        if let Err(i) = self.0.binary_search_by(|(m, _)| m.as_str().cmp(id)) {
            self.0.insert(i, (id.to_string(), slot));
        }
    }

    fn remove(&mut self, id: &str) {
        if let Ok(i) = self.0.binary_search_by(|(m, _)| m.as_str().cmp(id)) {
            self.0.remove(i);
        }
    }

    fn ids(&self) -> impl Iterator<Item = &String> + '_ {
        self.0.iter().map(|(id, _)| id)
    }

    fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|&(_, slot)| slot)
    }
}

/// An account while the derivation runs: its public state and what the rollup needs.
struct Account {
    state: AccountState,
    stage: Option<AccountStageId>,
    /// Engagement from the account's own activity, as of `own_engagement_at`.
    own_engagement: f64,
    own_engagement_at: Timestamp,
    /// Instants of intent surges (kept while they count).
    surges: Vec<Timestamp>,
    /// The account's people (survivors only).
    members: Members,
    /// Person → roles named on the account's opportunities.
    contact_roles: BTreeMap<String, BTreeSet<String>>,
    /// Set by a rollup that moved nothing (or settled where no rule moves it): until this
    /// instant, the aggregates stay what it computed (no engaged window or intent surge
    /// ends before it) and a rollup with no change in between would change nothing. Every
    /// change to what rollups read marks the account dirty, and the rollup that follows
    /// resets this, so a timer may skip its rollup while it holds.
    settled_until: Option<Timestamp>,
    /// The last rollup settled (see `settled_until`) and the account's attributes, fit and
    /// type have not changed since: a rollup whose aggregates come out the same moves
    /// nothing, and need not evaluate the account rules.
    rules_settled: bool,
}

/// A pending timer, ordered by its due instant (then by what it is, for determinism).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    due: Timestamp,
    what: TimerWhat,
}

/// What a timer does when it fires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerWhat {
    /// Timer rule `rule` for `person`, valid while the person's epoch (for in-stage timers)
    /// or last activity (for inactivity timers) is unchanged.
    Rule {
        person: CompactString,
        rule: u32,
        epoch: u64,
        last_activity: Option<Timestamp>,
    },
    /// The person's decaying engagement crosses below the threshold of score rule `rule`,
    /// valid while no activity changed the engagement since `engagement_at`.
    ScoreDown {
        person: CompactString,
        rule: u32,
        engagement_at: Timestamp,
    },
    /// Something time-dependent of the account (an engaged person or an intent surge ages
    /// out): roll it up again.
    Account { account: CompactString },
}

/// What the event being applied is about, for rule conditions.
#[derive(Clone, Copy, Default)]
struct Trig<'e> {
    activity_kind: Option<&'e str>,
    activity: Option<&'e Attrs>,
    opportunity: Option<(OpportunityKind, Option<f64>)>,
}

struct Deriver<'m, 'e> {
    model: &'m Model,
    /// Contacts who live in another partition (see [`derive_records_with`]).
    elsewhere: &'e FxHashSet<String>,
    /// Duplicate person id → survivor id, from every merge event of the partition.
    merged: FxHashMap<&'e str, &'e str>,
    /// People by id (hashed: looked up on every event; `finish` sorts them).
    people: People,
    accounts: BTreeMap<String, Account>,
    /// Accounts changed by the current event or timer, rolled up once it is applied.
    dirty: BTreeSet<CompactString>,
    /// Opportunity id → (account id, index in that account's list).
    opportunities: FxHashMap<String, (String, usize)>,
    /// Person id → the opportunity that gave them their account (a contact with no account
    /// of their own takes the account of the first deal that names them), until a `person`
    /// event names one: they follow that deal if it is re-parented.
    account_from_deal: FxHashMap<String, String>,
    transitions: Vec<Transition>,
    rejections: Vec<Rejection>,
    timers: BTreeSet<Timer>,
    /// Order of the change being made: the causing event's (at, seq) and a running `sub`.
    cursor: Order,
    cause: Option<&'e str>,
    /// Rule ids by name, to find a rule's index for timers.
    rule_index: FxHashMap<*const Rule, u32>,
    /// Whether any condition reads `account.engagement`: if none does, rollups need not
    /// compute it (`finish` does, for the final state).
    reads_account_engagement: bool,
    /// Whether rollups need the account aggregates: the model has account stages (its
    /// account rules read them) or some condition reads one. If not, `finish` alone
    /// computes them, for the final state.
    rollup_aggregates: bool,
    /// Whether a rollup can change anything: the model has account stages, or rollups
    /// refresh what conditions read. If not, accounts are never marked dirty and rollup
    /// timers are not kept (only the last one's instant, see `idle_roll_up`).
    rolls_up: bool,
    /// The latest instant, up to the horizon, at which a rollup timer would have fired
    /// when `rolls_up` is false.
    idle_roll_up: Option<Timestamp>,
    /// Timers due after this instant never fire.
    horizon: Timestamp,
    /// The model's role names as bits (`None`: more than 64; rollups then list names).
    role_names: Option<RoleNames<'m>>,
    /// People's attributes are kept as text until a second event sets some (see
    /// [`DeriveOptions::attrs_as_text`]): no condition reads them.
    attrs_as_text: bool,
}

impl<'m, 'e> Deriver<'m, 'e> {
    fn new<'a: 'e>(
        model: &'m Model,
        events: impl Iterator<Item = &'a SequencedRecord<'a>>,
        opts: DeriveOptions,
        elsewhere: &'e FxHashSet<String>,
    ) -> Self {
        // History is re-attributed to the survivor: a merge applies to the whole log of the
        // partition, whatever its instant, so the survivor's timeline includes the duplicate's.
        let mut merged = FxHashMap::default();
        for se in events {
            if let RecordBody::Merge { person, into } = se.record.body {
                merged.insert(person, into);
            }
        }
        let rule_index = model
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r as *const Rule, i as u32))
            .collect();
        let reads_account_engagement = model.conditions().any(|c| c.reads("account", "engagement"));
        let rollup_aggregates = model.initial_account_stage.is_some()
            || model
                .conditions()
                .any(|c| AGGREGATE_FIELDS.iter().any(|f| c.reads("account", f)));
        Deriver {
            model,
            elsewhere,
            merged,
            people: People::default(),
            accounts: BTreeMap::new(),
            dirty: BTreeSet::new(),
            opportunities: FxHashMap::default(),
            account_from_deal: FxHashMap::default(),
            transitions: Vec::new(),
            rejections: Vec::new(),
            timers: BTreeSet::new(),
            cursor: Order {
                at: Timestamp(0),
                seq: 0,
                sub: 0,
            },
            cause: None,
            rule_index,
            reads_account_engagement,
            rollup_aggregates,
            rolls_up: model.initial_account_stage.is_some()
                || reads_account_engagement
                || rollup_aggregates,
            idle_roll_up: None,
            horizon: opts.horizon,
            role_names: RoleNames::of(model),
            attrs_as_text: opts.attrs_as_text && !model.reads_person(),
        }
    }

    /// The surviving id of a person (following chains of merges, never looping).
    fn survivor<'a>(&self, mut id: &'a str) -> &'a str
    where
        'e: 'a,
    {
        if self.merged.is_empty() {
            return id;
        }
        for _ in 0..64 {
            match self.merged.get(id) {
                Some(next) if *next != id => id = next,
                _ => break,
            }
        }
        id
    }

    fn apply(&mut self, se: &'e SequencedRecord<'e>) {
        let ev = &se.record;
        let at = Timestamp(ev.at);
        self.cursor = Order {
            at,
            seq: se.seq,
            sub: 0,
        };
        self.cause = Some(ev.id);
        match ev.body {
            RecordBody::Account { account, attrs } => {
                let attrs = match self.attrs(se, attrs) {
                    Some(a) => a,
                    None => return,
                };
                let account_type = attrs
                    .get("type")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                let acc = &mut self.account_mut(account).state;
                merge_attrs(&mut acc.attrs, attrs);
                if account_type.is_some() {
                    acc.account_type = account_type;
                }
                let fit = self.compute_account_fit(account);
                let acc = self.account_mut(account);
                acc.state.fit = fit;
                acc.rules_settled = false;
                self.mark_dirty(account);
                // Account attributes feed people's fit and roles.
                let members: Vec<String> = self.accounts[account].members.ids().cloned().collect();
                for id in members {
                    self.rescore_fit(&id);
                    self.recompute_roles(&id);
                }
            }
            RecordBody::Person {
                person,
                account,
                attrs,
            } => {
                // Kept as text (see `DeriveOptions::attrs_as_text`): checked, not parsed.
                let text = attrs;
                let parsed = if self.attrs_as_text && se.attrs.is_none() {
                    if let Err(reason) = check_attrs(text) {
                        self.reject(ev.id, at, reason);
                        return;
                    }
                    None
                } else {
                    match self.attrs(se, text) {
                        Some(a) => Some(a),
                        None => return,
                    }
                };
                let id = self.survivor(person);
                if let Some(a) = account {
                    self.account_mut(a);
                }
                let created = !self.people.contains_key(id);
                self.ensure_person(id);
                let p = self.people.get_mut(id).expect("just ensured");
                if let Some(a) = account {
                    self.account_from_deal.remove(id);
                    if p.account.as_deref() != Some(a) {
                        let old = p.account.replace(a.to_string());
                        if let Some(old) = old {
                            if let Some(o) = self.accounts.get_mut(&old) {
                                o.members.remove(id);
                            }
                            self.mark_dirty(&old);
                        }
                        let slot = self.people.slot(id).expect("just ensured");
                        self.account_mut(a).members.insert(id, slot);
                        self.mark_dirty(a);
                        self.watch_engaged(id);
                    }
                }
                let p = self.people.get_mut(id).expect("just ensured");
                let keep_text = parsed.is_none()
                    && p.attrs.is_empty()
                    && (p.attrs_text.is_none() || text.is_empty());
                if keep_text {
                    if !text.is_empty() {
                        p.attrs_text = Some(text.to_string());
                    }
                } else {
                    // A second event's attributes, or parsed ones: the text kept so far is
                    // parsed first, and everything merged as usual (both texts were checked).
                    if let Some(first) = p.attrs_text.take() {
                        merge_attrs(&mut p.attrs, attrs_of(&first).unwrap_or_default());
                    }
                    let new = parsed.unwrap_or_else(|| attrs_of(text).unwrap_or_default());
                    merge_attrs(&mut p.attrs, new);
                }
                if created {
                    let p = self.people.get_mut(id).expect("exists");
                    p.fit = 0.0;
                    let fit = self.compute_fit(id);
                    self.people.get_mut(id).expect("exists").fit = fit;
                    self.fire(TriggerKind::PersonCreated, id, Trig::default(), 0);
                } else {
                    self.rescore_fit(id);
                }
                self.recompute_roles(id);
            }
            RecordBody::PersonActivity {
                person,
                kind,
                attrs,
            } => {
                let attrs = match self.attrs(se, attrs) {
                    Some(a) => a,
                    None => return,
                };
                let id = self.survivor(person);
                self.ensure_person(id);
                self.activity(id, kind, &attrs);
            }
            RecordBody::AccountActivity { account, kind, .. } => {
                self.account_activity(account, kind)
            }
            RecordBody::Opportunity {
                opportunity,
                account,
                kind,
                state,
                stage,
                amount,
                ref contacts,
            } => {
                self.apply_opportunity(
                    (ev.id, at),
                    opportunity,
                    account,
                    kind,
                    state,
                    stage,
                    amount,
                    contacts,
                );
            }
            RecordBody::Stage { person, stage, .. } => {
                let id = self.survivor(person);
                match self.model.stage_id(stage) {
                    Some(to) => {
                        self.ensure_person(id);
                        self.change_stage(id, to, "explicit", None, 0);
                    }
                    None => self.reject(
                        ev.id,
                        at,
                        format!("unknown stage {stage:?} in model {:?}", self.model.name),
                    ),
                }
            }
            RecordBody::Status { person, status, .. } => {
                let id = self.survivor(person);
                match self.model.status_id(status) {
                    Some(to) => {
                        self.ensure_person(id);
                        self.change_status(id, to, "explicit", 0);
                    }
                    None => self.reject(
                        ev.id,
                        at,
                        format!("unknown status {status:?} in model {:?}", self.model.name),
                    ),
                }
            }
            // Merges were resolved up front; erasure removes events before derivation.
            RecordBody::Merge { .. } | RecordBody::Erase { .. } => {}
        }
        self.roll_up_dirty();
    }

    /// An event's attributes, parsed from its record's text (an event whose text is not an
    /// object, which only a damaged record has, is rejected and applies nothing).
    fn attrs(&mut self, se: &SequencedRecord<'_>, text: &str) -> Option<Attrs> {
        if let Some(attrs) = se.attrs {
            return Some(attrs.clone());
        }
        match attrs_of(text) {
            Ok(attrs) => Some(attrs),
            Err(reason) => {
                self.reject(se.record.id, Timestamp(se.record.at), reason);
                None
            }
        }
    }

    /// An account's own activity (an intent surge, a de-anonymised visit): account
    /// engagement points with decay, and surges counted for 30 days.
    fn account_activity(&mut self, id: &str, kind: &str) {
        let at = self.cursor.at;
        let scoring = &self.model.scoring;
        let points = scoring.points_for(kind);
        let acc = self.account_mut(id);
        let decayed = scoring.decay(acc.own_engagement, acc.own_engagement_at.days_until(at));
        acc.own_engagement = decayed + points;
        acc.own_engagement_at = at;
        if kind == INTENT_SURGE {
            acc.surges.push(at);
            self.schedule_roll_up(id, plus_days(at, SURGE_WINDOW_DAYS));
        }
        self.mark_dirty(id);
    }

    /// A person who joins an account while engaged stops counting as engaged when their window
    /// ends: roll the account up again then.
    fn watch_engaged(&mut self, id: &str) {
        let p = &self.people[id];
        if let (Some(t), Some(a)) = (p.last_engaged, p.account.clone()) {
            let due = plus_days(t, ENGAGED_WINDOW_DAYS);
            if due > self.cursor.at {
                self.schedule_roll_up(&a, due);
            }
        }
    }

    /// Recomputes the roles the model's role conditions give a person.
    fn recompute_roles(&mut self, id: &str) {
        let model = self.model;
        if model.roles.is_empty() {
            return;
        }
        let ctx = self.context(id, Trig::default());
        let mut bits = 0u64;
        let roles: Vec<String> = model
            .roles
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.condition
                    .as_ref()
                    .is_some_and(|c| c.eval(&ctx).unwrap_or(false))
            })
            .map(|(i, r)| {
                if let Some(names) = &self.role_names {
                    bits |= 1 << names.rank[i];
                }
                r.name.clone()
            })
            .collect();
        let p = self.people.get_mut(id).expect("person exists");
        if p.roles != roles {
            p.roles = roles;
            p.role_bits = bits;
            if let Some(a) = p.account.as_deref() {
                if self.rolls_up && !self.dirty.contains(a) {
                    self.dirty.insert(a.into());
                }
            }
        }
    }

    fn compute_account_fit(&self, id: &str) -> f64 {
        let rules = &self.model.scoring.account_fit;
        if rules.is_empty() {
            return rules.iter().map(|r| r.points).sum();
        }
        let ctx = self.account_context(id);
        rules
            .iter()
            .filter(|r| r.condition.eval(&ctx).unwrap_or(false))
            .map(|r| r.points)
            .sum()
    }

    /// The account's engagement now: its own activity plus its people's, each decayed.
    fn account_engagement(&self, acc: &Account) -> f64 {
        let at = self.cursor.at;
        let scoring = &self.model.scoring;
        let own = scoring.decay(acc.own_engagement, acc.own_engagement_at.days_until(at));
        own + acc
            .members
            .slots()
            .map(|s| self.people.at(s))
            .map(|p| scoring.decay(p.engagement, p.engagement_at.days_until(at)))
            .sum::<f64>()
    }

    /// Whether a person engaged (an activity worth points) in the last 90 days.
    fn engaged(&self, p: &Person) -> bool {
        engaged_at(p.last_engaged, self.cursor.at)
    }

    /// A person's roles: named on the account's opportunities, or given by the model.
    fn roles_of(&self, acc: &Account, p: &Person) -> Vec<String> {
        let mut roles: BTreeSet<String> = p.roles.iter().cloned().collect();
        if let Some(r) = acc.contact_roles.get(&p.id) {
            roles.extend(r.iter().cloned());
        }
        roles.into_iter().collect()
    }

    /// The aggregates account rules read, computed from the account's members,
    /// opportunities and surges as of the cursor. `roles` is the previous list of roles,
    /// kept (not reallocated) when it has not changed.
    ///
    /// Also returns the first instant after the cursor at which the time-dependent counts
    /// (engaged people, recent intent surges) may change with no new event, and whether the
    /// roles differ from `roles`.
    fn aggregates(
        &self,
        acc: &Account,
        mut roles: Vec<String>,
    ) -> (AccountAggregates, Timestamp, bool) {
        let model = self.model;
        let at = self.cursor.at;
        let mut until = Timestamp(i64::MAX);
        let mut a = AccountAggregates::default();
        // The roles of engaged people: the same sorted list a set of `roles_of` would give,
        // without a set per person. The model's roles are gathered as bits (already sorted);
        // the names in `held` (contact roles, or every role past 64 names) are sorted below.
        let mut bits = 0u64;
        let mut held: Vec<&str> = Vec::new();
        for p in acc.members.slots().map(|s| self.people.at(s)) {
            if self.engaged(p) {
                a.engaged_people += 1;
                if let Some(t) = p.last_engaged {
                    until = until.min(plus_days(t, ENGAGED_WINDOW_DAYS));
                }
                if self.role_names.is_some() {
                    bits |= p.role_bits;
                } else {
                    held.extend(p.roles.iter().map(String::as_str));
                }
                if !acc.contact_roles.is_empty() {
                    if let Some(r) = acc.contact_roles.get(&p.id) {
                        held.extend(r.iter().map(String::as_str));
                    }
                }
            }
            let stage = &model.stages[p.stage as usize];
            if stage.kind == StageKind::Active && p.stage != model.initial_stage {
                a.mql_people += 1;
            }
        }
        for o in &acc.state.opportunities {
            match o.state {
                OpportunityState::Open => a.open_opportunities += 1,
                OpportunityState::Won => a.won_opportunities += 1,
                OpportunityState::Lost => {}
            }
        }
        for &t in &acc.surges {
            if t <= at && at < plus_days(t, SURGE_WINDOW_DAYS) {
                a.intent_surges_30d += 1;
                until = until.min(plus_days(t, SURGE_WINDOW_DAYS));
            } else if t > at {
                until = until.min(t);
            }
        }
        let from_bits = self.role_names.as_ref().map(|n| n.names(bits));
        let roles_changed = match from_bits {
            Some(names) if held.is_empty() => {
                let changed = !roles.iter().map(String::as_str).eq(names.clone());
                if changed {
                    roles.clear();
                    roles.extend(names.map(str::to_string));
                }
                changed
            }
            names => {
                held.extend(names.into_iter().flatten());
                held.sort_unstable();
                held.dedup();
                let changed = !roles.iter().map(String::as_str).eq(held.iter().copied());
                if changed {
                    roles.clear();
                    roles.extend(held.into_iter().map(str::to_string));
                }
                changed
            }
        };
        a.roles = roles;
        (a, until, roles_changed)
    }

    /// The evaluation context of an account for account rules and account fit.
    fn account_context(&self, id: &str) -> EvalContext<'_> {
        let acc = &self.accounts[id];
        EvalContext {
            account: Some(&acc.state.attrs),
            account_fit: acc.state.fit,
            account_engagement: acc.state.engagement,
            account_type: acc.state.account_type.as_deref(),
            aggregates: Some(&acc.state.aggregates),
            thresholds: Some(&self.model.scoring.thresholds),
            ..EvalContext::default()
        }
    }

    /// Marks an account for rollup once the current event or timer is applied (its id is
    /// copied inline, without allocating, up to 24 bytes: timers hold ids the same way).
    fn mark_dirty(&mut self, id: &str) {
        if self.rolls_up && !self.dirty.contains(id) {
            self.dirty.insert(id.into());
        }
    }

    /// Rolls `account` up again at `due` (an engaged person or an intent surge ages out).
    fn schedule_roll_up(&mut self, account: &str, due: Timestamp) {
        if self.rolls_up {
            self.timers.insert(Timer {
                due,
                what: TimerWhat::Account {
                    account: account.into(),
                },
            });
        } else if due <= self.horizon {
            // The rollup would change nothing; firing, it would only have moved the instant
            // `finish` measures the final state at.
            self.idle_roll_up = self.idle_roll_up.max(Some(due));
        }
    }

    /// Moves the cursor to the last rollup timer that [`schedule_roll_up`] did not keep,
    /// if it is later: where it would be had that timer fired.
    ///
    /// [`schedule_roll_up`]: Self::schedule_roll_up
    fn settle_idle_roll_ups(&mut self) {
        if let Some(due) = self.idle_roll_up {
            if due > self.cursor.at {
                self.cursor = Order {
                    at: due,
                    seq: TIMER_SEQ,
                    sub: 0,
                };
                self.cause = None;
            }
        }
    }

    /// Rolls up every account the current event or timer changed.
    fn roll_up_dirty(&mut self) {
        while let Some(id) = self.dirty.pop_first() {
            self.roll_up(&id);
        }
    }

    /// Refreshes an account's aggregates and engagement, then moves it by the first account
    /// rule (highest priority first) whose guard and condition hold, until none moves it.
    fn roll_up(&mut self, id: &str) {
        let Some(acc) = self.accounts.get_mut(id) else {
            return;
        };
        acc.settled_until = None;
        let rules_settled = std::mem::replace(&mut acc.rules_settled, false);
        let before = &acc.state.aggregates;
        let counts_before = (
            before.engaged_people,
            before.mql_people,
            before.open_opportunities,
            before.won_opportunities,
            before.intent_surges_30d,
        );
        let roles = std::mem::take(&mut acc.state.aggregates.roles);
        let acc = &self.accounts[id];
        let aggregates = self.rollup_aggregates.then(|| self.aggregates(acc, roles));
        let unchanged = aggregates.as_ref().is_some_and(|(a, _, roles_changed)| {
            !roles_changed
                && counts_before
                    == (
                        a.engaged_people,
                        a.mql_people,
                        a.open_opportunities,
                        a.won_opportunities,
                        a.intent_surges_30d,
                    )
        });
        let engagement = self
            .reads_account_engagement
            .then(|| self.account_engagement(acc));
        let at = self.cursor.at;
        let acc = self.accounts.get_mut(id).expect("account exists");
        // The instant until which a rollup with no new change would give the same answer
        // (only known when the aggregates are computed and no condition reads the
        // ever-decaying engagement).
        let mut holds_until = None;
        if let Some((aggregates, until, _)) = aggregates {
            acc.state.aggregates = aggregates;
            holds_until = (!self.reads_account_engagement).then_some(until);
        }
        if let Some(engagement) = engagement {
            acc.state.engagement = engagement;
            acc.state.engagement_at = at;
        }
        if rules_settled && unchanged && holds_until.is_some() {
            // The same inputs as a rollup that moved nothing: the rules would move nothing.
            self.settle(id, holds_until);
            return;
        }
        let model = self.model;
        // Stages entered by this rollup: never re-entered within it (no ping-pong between
        // rules whose conditions both hold).
        let mut visited = Vec::new();
        for _ in 0..MAX_ACCOUNT_MOVES {
            let Some(from) = self.accounts[id].stage else {
                self.settle(id, holds_until);
                return;
            };
            visited.push(from);
            let ctx = self.account_context(id);
            let hit = model.account_rules.iter().find(|r| {
                (r.only_from.is_empty() || r.only_from.contains(&from))
                    && (r.set_stage == from
                        || model.account_stages[from as usize]
                            .next
                            .contains(&r.set_stage))
                    && r.condition.eval(&ctx).unwrap_or(false)
            });
            let Some(rule) = hit else {
                self.settle(id, holds_until);
                return;
            };
            if visited.contains(&rule.set_stage) {
                // Run again with nothing changed, a rollup that moved nothing moves nothing.
                if visited.len() == 1 {
                    self.settle(id, holds_until);
                }
                return;
            }
            let to = rule.set_stage;
            self.accounts.get_mut(id).expect("account exists").stage = Some(to);
            self.record(
                Level::Account,
                id,
                Field::Stage,
                Some(&model.account_stages[from as usize].name),
                &model.account_stages[to as usize].name,
                &rule.name,
            );
        }
    }

    /// Whether a rollup of the account now, with aggregates that come out the same as the
    /// last one's, would change nothing (see [`Account::rules_settled`]).
    fn settled(&self, id: &str) -> bool {
        self.accounts
            .get(id)
            .is_some_and(|acc| acc.rules_settled && self.holds_now(acc))
    }

    /// Whether the account's last rollup still holds at the cursor (see
    /// [`Account::settled_until`]).
    fn holds_now(&self, acc: &Account) -> bool {
        acc.settled_until
            .is_some_and(|until| self.cursor.at < until)
    }

    /// Records that a rollup of the account, run again before `until` with no change in
    /// between, would change nothing (see [`Account::settled_until`]).
    fn settle(&mut self, id: &str, until: Option<Timestamp>) {
        if let Some(acc) = self.accounts.get_mut(id) {
            acc.settled_until = until;
            acc.rules_settled = until.is_some();
        }
    }

    /// An activity: engagement points (with decay), inactivity timers re-armed, rules fired.
    fn activity(&mut self, id: &str, kind: &str, attrs: &Attrs) {
        let at = self.cursor.at;
        let scoring = &self.model.scoring;
        let p = self.people.get_mut(id).expect("person exists");
        let before = scoring.decay(p.engagement, p.engagement_at.days_until(at));
        let points = scoring.points_for(kind);
        let after = before + points;
        p.engagement = after;
        p.engagement_at = at;
        p.last_activity = Some(at);
        if points > 0.0 {
            let was_engaged = engaged_at(p.last_engaged, at);
            p.last_engaged = Some(at);
            if let Some(a) = p.account.as_deref().map(CompactString::from) {
                // The person stops counting as engaged when the window ends.
                self.schedule_roll_up(&a, plus_days(at, ENGAGED_WINDOW_DAYS));
                // Engaged already, they count the same: a settled account's aggregates and
                // rules would come out as they were, and its window only ends later (the
                // rollup at its old end, not skipped then, finds the new one).
                if !(was_engaged && self.settled(&a)) {
                    self.mark_dirty(&a);
                }
            }
        }
        let trig = Trig {
            activity_kind: Some(kind),
            activity: Some(attrs),
            opportunity: None,
        };
        self.fire(TriggerKind::Activity, id, trig, 0);
        self.score_crossings(id, ScoreRef::Engagement, before, after, trig);
        self.schedule_timers(id, true);
        self.schedule_decay_crossings(id);
    }

    /// Schedules, for every rule on engagement crossing a threshold downward, a timer at the
    /// exact instant the decaying engagement falls below it (the first microsecond at which
    /// `value * 0.5^(days / half_life) <= threshold`, and never the same instant).
    fn schedule_decay_crossings(&mut self, id: &str) {
        let model = self.model;
        let Some(half_life) = model.scoring.half_life_days else {
            return;
        };
        let p = &self.people[id];
        let mut new = Vec::new();
        for rule in model.rules_for(TriggerKind::ScoreCrossed) {
            let Trigger::ScoreCrossed {
                score: ScoreRef::Engagement,
                threshold,
                upward: false,
            } = &rule.trigger
            else {
                continue;
            };
            if *threshold <= 0.0 || p.engagement < *threshold {
                continue;
            }
            let days = half_life * (p.engagement / threshold).log2();
            let micros = (days * MICROS_PER_DAY as f64).ceil().max(1.0);
            if !micros.is_finite() || micros > i64::MAX as f64 / 2.0 {
                continue;
            }
            new.push(Timer {
                due: Timestamp(p.engagement_at.0.saturating_add(micros as i64)),
                what: TimerWhat::ScoreDown {
                    person: id.into(),
                    rule: self.rule_index[&(rule as *const Rule)],
                    engagement_at: p.engagement_at,
                },
            });
        }
        self.timers.extend(new);
    }

    /// Recomputes a person's fit and fires crossings.
    fn rescore_fit(&mut self, id: &str) {
        if self.model.scoring.fit.is_empty() {
            // No crossing to fire; the score is the sum of nothing (which is -0.0, and the
            // final state shows it).
            let fit = self.compute_fit(id);
            self.people.get_mut(id).expect("person exists").fit = fit;
            return;
        }
        let before = self.people[id].fit;
        let after = self.compute_fit(id);
        self.people.get_mut(id).expect("person exists").fit = after;
        self.score_crossings(id, ScoreRef::Fit, before, after, Trig::default());
    }

    fn compute_fit(&self, id: &str) -> f64 {
        let rules = &self.model.scoring.fit;
        if rules.is_empty() {
            // Without rules there is no context to build (the sum of nothing, as below).
            return rules.iter().map(|r| r.points).sum();
        }
        let ctx = self.context(id, Trig::default());
        rules
            .iter()
            .filter(|r| r.condition.eval(&ctx).unwrap_or(false))
            .map(|r| r.points)
            .sum()
    }

    fn score_crossings(
        &mut self,
        id: &str,
        score: ScoreRef,
        before: f64,
        after: f64,
        trig: Trig<'_>,
    ) {
        if before == after {
            return;
        }
        let model = self.model;
        for rule in model.rules_for(TriggerKind::ScoreCrossed) {
            if let Trigger::ScoreCrossed {
                score: s,
                threshold,
                upward,
            } = &rule.trigger
            {
                let crossed = if *upward {
                    before < *threshold && after >= *threshold
                } else {
                    before >= *threshold && after < *threshold
                };
                if *s == score && crossed {
                    self.try_rule(rule, id, trig, 0);
                }
            }
        }
    }

    /// The evaluation context of a person for rule conditions.
    fn context<'a>(&'a self, id: &str, trig: Trig<'a>) -> EvalContext<'a> {
        let p = &self.people[id];
        let acc = p.account.as_deref().and_then(|a| self.accounts.get(a));
        EvalContext {
            person: Some(&p.attrs),
            fit: p.fit,
            engagement: self
                .model
                .scoring
                .decay(p.engagement, p.engagement_at.days_until(self.cursor.at)),
            stage: Some(self.model.stages[p.stage as usize].name.as_str()),
            status: p
                .status
                .map(|s| self.model.statuses[s as usize].name.as_str()),
            account: acc.map(|a| &a.state.attrs),
            account_fit: acc.map_or(0.0, |a| a.state.fit),
            account_engagement: acc.map_or(0.0, |a| a.state.engagement),
            account_type: acc.and_then(|a| a.state.account_type.as_deref()),
            aggregates: acc.map(|a| &a.state.aggregates),
            activity_kind: trig.activity_kind,
            activity: trig.activity,
            opportunity_kind: trig.opportunity.map(|o| o.0),
            opportunity_amount: trig.opportunity.and_then(|o| o.1),
            thresholds: Some(&self.model.scoring.thresholds),
        }
    }

    /// Fires the rules of one trigger kind for a person, highest priority first.
    fn fire(&mut self, kind: TriggerKind, id: &str, trig: Trig<'_>, depth: u32) {
        let model = self.model;
        for rule in model.rules_for(kind) {
            let matches = match &rule.trigger {
                Trigger::PersonCreated => true,
                Trigger::Activity { kinds } => {
                    kinds.is_empty()
                        || trig
                            .activity_kind
                            .is_some_and(|k| kinds.iter().any(|x| x == k))
                }
                _ => false,
            };
            if matches {
                self.try_rule(rule, id, trig, depth);
            }
        }
    }

    /// Applies a rule to a person if its guard and condition hold. Returns whether it did.
    fn try_rule(&mut self, rule: &'m Rule, id: &str, trig: Trig<'_>, depth: u32) -> bool {
        let p = &self.people[id];
        let a = &rule.action;
        if !a.only_from.is_empty() && !a.only_from.contains(&p.stage) {
            return false;
        }
        if let Some(c) = &rule.condition {
            if !c.eval(&self.context(id, trig)).unwrap_or(false) {
                return false;
            }
        }
        let mut changed = false;
        if let Some(to) = a.set_stage {
            changed |= self.change_stage(id, to, &rule.name, a.set_status, depth + 1);
        }
        if let Some(to) = a.set_status {
            changed |= self.change_status(id, to, &rule.name, depth + 1);
        }
        changed
    }

    /// Moves a person to a stage, then the coupled status (unless the caller sets one), then
    /// the rules that react to the stage. Setting the stage they are in is not an entry.
    fn change_stage(
        &mut self,
        id: &str,
        to: StageId,
        rule: &str,
        explicit_status: Option<StatusId>,
        depth: u32,
    ) -> bool {
        let model = self.model;
        let from = self.people[id].stage;
        if from == to || depth > MAX_CASCADE {
            return false;
        }
        // Explicit events record what happened; automation may only take allowed paths.
        if rule != "explicit" && !model.allows(from, to) {
            return false;
        }
        let p = self.people.get_mut(id).expect("person exists");
        p.stage = to;
        p.epoch += 1;
        self.record(
            Level::Person,
            id,
            Field::Stage,
            Some(&model.stages[from as usize].name),
            &model.stages[to as usize].name,
            rule,
        );
        if explicit_status.is_none() {
            if let Some(s) = model
                .coupling
                .stage_to_status
                .get(to as usize)
                .copied()
                .flatten()
            {
                // Coupling never bounces back: the status it sets does not move the stage again.
                self.set_status_only(
                    id,
                    s,
                    &format!(
                        "coupling: stage {} sets status",
                        model.stages[to as usize].name
                    ),
                );
            }
        }
        if let Some(routing) = &model.routing {
            if routing.on_stage == to {
                self.route(id, routing);
            }
        }
        for r in model.rules_for(TriggerKind::StageEntered) {
            if let Trigger::StageEntered(stages) = &r.trigger {
                if stages.is_empty() || stages.contains(&to) {
                    self.try_rule(r, id, Trig::default(), depth + 1);
                }
            }
        }
        self.schedule_timers(id, false);
        true
    }

    /// Assigns the person an owner by the model's routing: the account's owner first, then the
    /// first matching territory's pool, then the default pool (round-robin by a stable hash
    /// of the person's id). Records an owner transition when the owner changes.
    fn route(&mut self, id: &str, routing: &Routing) {
        let p = &self.people[id];
        let acc = p.account.as_deref().and_then(|a| self.accounts.get(a));
        let account_owner = acc
            .and_then(|a| a.state.attrs.get(&routing.owner_attr))
            .and_then(|v| v.as_str())
            .filter(|o| !o.is_empty());
        let (owner, reason) = match account_owner {
            Some(o) if routing.account_owner_first => {
                (Some(o.to_string()), "routing: account owner".to_string())
            }
            _ => {
                let ctx = self.context(id, Trig::default());
                match routing
                    .territories
                    .iter()
                    .find(|t| t.condition.eval(&ctx).unwrap_or(false))
                {
                    Some(t) => (
                        Routing::pick(&t.pool, id).map(str::to_string),
                        format!("routing: territory {}", t.name),
                    ),
                    None => (
                        Routing::pick(&routing.default_pool, id).map(str::to_string),
                        "routing: round-robin".to_string(),
                    ),
                }
            }
        };
        let Some(owner) = owner else { return };
        let p = self.people.get_mut(id).expect("person exists");
        if p.owner.as_deref() == Some(owner.as_str()) {
            return;
        }
        let from = p.owner.replace(owner.clone());
        self.record(
            Level::Person,
            id,
            Field::Owner,
            from.as_deref(),
            &owner,
            &reason,
        );
    }

    /// Sets a person's status, then the coupled stage, then the rules that react to it.
    fn change_status(&mut self, id: &str, to: StatusId, rule: &str, depth: u32) -> bool {
        let model = self.model;
        if depth > MAX_CASCADE || !self.set_status_only(id, to, rule) {
            return false;
        }
        if let Some(stage) = model
            .coupling
            .status_to_stage
            .get(to as usize)
            .copied()
            .flatten()
        {
            let cause = format!(
                "coupling: status {} moves stage",
                model.statuses[to as usize].name
            );
            self.change_stage(id, stage, &cause, Some(to), depth + 1);
        }
        for r in model.rules_for(TriggerKind::StatusSet) {
            if let Trigger::StatusSet(statuses) = &r.trigger {
                if statuses.is_empty() || statuses.contains(&to) {
                    self.try_rule(r, id, Trig::default(), depth + 1);
                }
            }
        }
        self.schedule_timers(id, false);
        true
    }

    fn set_status_only(&mut self, id: &str, to: StatusId, rule: &str) -> bool {
        let p = self.people.get_mut(id).expect("person exists");
        if p.status == Some(to) {
            return false;
        }
        let from = p.status.replace(to);
        p.epoch += 1;
        let names = &self.model.statuses;
        self.record(
            Level::Person,
            id,
            Field::Status,
            from.map(|f| names[f as usize].name.as_str()),
            &names[to as usize].name,
            rule,
        );
        true
    }

    /// (Re-)schedules the timer rules that apply to the person's current stage and status.
    /// With `activity_only`, only inactivity timers are re-armed.
    fn schedule_timers(&mut self, id: &str, activity_only: bool) {
        let model = self.model;
        if model.rules_for(TriggerKind::Timer).next().is_none() {
            return;
        }
        let p = &self.people[id];
        let mut new = Vec::new();
        for rule in model.rules_for(TriggerKind::Timer) {
            let Trigger::Timer {
                in_stage,
                in_status,
                after,
                kind,
            } = &rule.trigger
            else {
                continue;
            };
            if activity_only && *kind != TimerKind::NoActivity {
                continue;
            }
            if in_stage.is_some_and(|s| s != p.stage)
                || in_status.is_some_and(|s| Some(s) != p.status)
            {
                continue;
            }
            let start = match kind {
                TimerKind::InStage => self.cursor.at,
                TimerKind::NoActivity => p
                    .last_activity
                    .unwrap_or(self.cursor.at)
                    .max(self.cursor.at),
            };
            let due = model.add_business_time(start, after.amount, after.unit);
            new.push(Timer {
                due,
                what: TimerWhat::Rule {
                    person: id.into(),
                    rule: self.rule_index[&(rule as *const Rule)],
                    epoch: p.epoch,
                    last_activity: p.last_activity,
                },
            });
        }
        self.timers.extend(new);
    }

    fn fire_timers_before(&mut self, t: Timestamp) {
        while let Some(first) = self.timers.first() {
            if first.due >= t {
                break;
            }
            let timer = self.timers.pop_first().expect("non-empty");
            self.fire_timer(timer);
        }
    }

    fn fire_timers_until(&mut self, horizon: Timestamp) {
        while let Some(first) = self.timers.first() {
            if first.due > horizon {
                break;
            }
            let timer = self.timers.pop_first().expect("non-empty");
            self.fire_timer(timer);
        }
    }

    fn fire_timer(&mut self, timer: Timer) {
        let model = self.model;
        let still_valid = match &timer.what {
            TimerWhat::Rule {
                person,
                rule,
                epoch,
                last_activity,
            } => {
                let Trigger::Timer { kind, .. } = &model.rules[*rule as usize].trigger else {
                    return;
                };
                self.people.get(person).is_some_and(|p| match kind {
                    TimerKind::InStage => p.epoch == *epoch,
                    TimerKind::NoActivity => p.last_activity == *last_activity && p.epoch == *epoch,
                })
            }
            TimerWhat::ScoreDown {
                person,
                engagement_at,
                ..
            } => self
                .people
                .get(person)
                .is_some_and(|p| p.engagement_at == *engagement_at),
            TimerWhat::Account { account } => self.accounts.contains_key(account.as_str()),
        };
        if !still_valid {
            return;
        }
        if self.cursor.at != timer.due || self.cursor.seq != TIMER_SEQ {
            self.cursor = Order {
                at: timer.due,
                seq: TIMER_SEQ,
                sub: 0,
            };
        }
        self.cause = None;
        match &timer.what {
            TimerWhat::Rule { person, rule, .. } | TimerWhat::ScoreDown { person, rule, .. } => {
                let rule = &model.rules[*rule as usize];
                self.try_rule(rule, person, Trig::default(), 0);
            }
            TimerWhat::Account { account } => {
                // Most of these timers are for a person who engaged again since: skip the
                // rollup when it provably changes nothing.
                if !self.holds_now(&self.accounts[account.as_str()]) {
                    self.mark_dirty(account);
                }
            }
        }
        self.roll_up_dirty();
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_opportunity(
        &mut self,
        (event, at): (&str, Timestamp),
        opportunity: &str,
        account: Option<&str>,
        kind: Option<OpportunityKind>,
        state: OpportunityState,
        stage: Option<&str>,
        amount: Option<f64>,
        contacts: &Option<Vec<waterfall_core::OpportunityContact>>,
    ) {
        let (acc_id, idx, created) = match self.opportunities.get(opportunity).cloned() {
            Some((a, i)) if account.is_none_or(|new| new == a) => (a, i, false),
            Some((old, i)) => {
                // Re-parented (the CRM moved the opportunity): it belongs to the account its
                // latest event names, with its history.
                let new = account.expect("a different account is named");
                let info = self
                    .accounts
                    .get_mut(&old)
                    .expect("opportunity's account exists")
                    .state
                    .opportunities
                    .remove(i);
                for (acc, j) in self.opportunities.values_mut() {
                    if *acc == old && *j > i {
                        *j -= 1;
                    }
                }
                self.mark_dirty(&old);
                let acc = &mut self.account_mut(new).state;
                acc.opportunities.push(info);
                let idx = acc.opportunities.len() - 1;
                self.opportunities
                    .insert(opportunity.to_string(), (new.to_string(), idx));
                self.mark_dirty(new);
                self.move_deal_contacts(opportunity, &old, new);
                (new.to_string(), idx, false)
            }
            None => {
                let Some(a) = account else {
                    self.reject(
                        event,
                        at,
                        format!("opportunity {opportunity:?} is new but names no account"),
                    );
                    return;
                };
                let acc = &mut self.account_mut(a).state;
                acc.opportunities.push(OpportunityInfo {
                    id: opportunity.to_string(),
                    kind: kind.unwrap_or(OpportunityKind::NewBusiness),
                    state: OpportunityState::Open,
                    stage: None,
                    amount: None,
                    contacts: Vec::new(),
                    created_at: at,
                    closed_at: None,
                });
                let idx = acc.opportunities.len() - 1;
                self.opportunities
                    .insert(opportunity.to_string(), (a.to_string(), idx));
                (a.to_string(), idx, true)
            }
        };
        let merged = &self.merged;
        let acc = self
            .accounts
            .get_mut(&acc_id)
            .expect("opportunity's account exists");
        let opp = &mut acc.state.opportunities[idx];
        if let Some(k) = kind {
            opp.kind = k;
        }
        if let Some(stage) = stage {
            opp.stage = Some(stage.to_string());
        }
        if amount.is_some() {
            opp.amount = amount;
        }
        if let Some(cs) = contacts {
            opp.contacts = cs
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    if let Some(s) = merged.get(c.person.as_str()) {
                        c.person = s.to_string();
                    }
                    c
                })
                .collect();
        }
        let previous = opp.state;
        if previous == OpportunityState::Open && state != OpportunityState::Open {
            opp.closed_at = Some(at);
        }
        opp.state = state;
        let (opp_kind, opp_amount) = (opp.kind, opp.amount);
        let contacts: Vec<String> = opp.contacts.iter().map(|c| c.person.clone()).collect();
        // Contact roles: every role any of the account's opportunities names a person in.
        let mut contact_roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for o in &acc.state.opportunities {
            for c in &o.contacts {
                if let Some(r) = c.role.as_deref().map(normalise_role) {
                    if !r.is_empty() {
                        contact_roles.entry(c.person.clone()).or_default().insert(r);
                    }
                }
            }
        }
        acc.contact_roles = contact_roles;
        self.mark_dirty(&acc_id);
        // What moment of the deal this is: created, won or lost (a repeat of the same state
        // changes nothing).
        let moment = match state {
            OpportunityState::Open if created => Some(OppTrigger::Created),
            OpportunityState::Won if previous != OpportunityState::Won => Some(OppTrigger::Won),
            OpportunityState::Lost if previous != OpportunityState::Lost => Some(OppTrigger::Lost),
            _ => None,
        };
        let Some(moment) = moment else { return };
        let model = self.model;
        let outcome = model.outcome(opp_kind, moment).cloned();
        if let Some(t) = outcome.as_ref().and_then(|o| o.account_type.clone()) {
            let acc = self.account_mut(&acc_id);
            acc.state.account_type = Some(t);
            acc.rules_settled = false;
        }
        let trig = Trig {
            opportunity: Some((opp_kind, opp_amount)),
            ..Trig::default()
        };
        let rule_name = format!("opportunity: {} {}", opp_kind.as_str(), moment.as_str());
        for person in contacts {
            if self.elsewhere.contains(&person) {
                continue;
            }
            let id = self.survivor(&person).to_string();
            self.ensure_person(&id);
            // A contact with no known account belongs to the deal's account.
            if self.people[id.as_str()].account.is_none() {
                self.people.get_mut(&id).expect("exists").account = Some(acc_id.clone());
                let slot = self.people.slot(&id).expect("exists");
                self.account_mut(&acc_id).members.insert(&id, slot);
                self.account_from_deal
                    .insert(id.clone(), opportunity.to_string());
                self.watch_engaged(&id);
            }
            if let Some(o) = &outcome {
                if let Some(s) = o.stage {
                    self.change_stage(&id, s, &rule_name, o.status, 0);
                }
                if let Some(s) = o.status {
                    self.change_status(&id, s, &rule_name, 0);
                }
            }
            for rule in model.rules_for(TriggerKind::Opportunity) {
                if let Trigger::Opportunity { kinds, state } = &rule.trigger {
                    if *state == moment && (kinds.is_empty() || kinds.contains(&opp_kind)) {
                        self.try_rule(rule, &id, trig, 0);
                    }
                }
            }
        }
    }

    /// A re-parented deal takes along the contacts whose account it gave (see
    /// `account_from_deal`): they were the old account's only through it.
    fn move_deal_contacts(&mut self, opportunity: &str, old: &str, new: &str) {
        let mut moving: Vec<String> = self
            .account_from_deal
            .iter()
            .filter(|(id, o)| {
                o.as_str() == opportunity
                    && self
                        .people
                        .get(id.as_str())
                        .is_some_and(|p| p.account.as_deref() == Some(old))
            })
            .map(|(id, _)| id.clone())
            .collect();
        moving.sort_unstable();
        for id in moving {
            if let Some(o) = self.accounts.get_mut(old) {
                o.members.remove(&id);
            }
            self.people.get_mut(&id).expect("checked above").account = Some(new.to_string());
            let slot = self.people.slot(&id).expect("checked above");
            self.account_mut(new).members.insert(&id, slot);
            self.mark_dirty(new);
            self.watch_engaged(&id);
        }
    }

    fn reject(&mut self, event: &str, at: Timestamp, reason: String) {
        self.rejections.push(Rejection {
            event: event.to_string(),
            at,
            reason,
        });
    }

    /// The account, created (in the model's initial account stage) if unseen.
    fn account_mut(&mut self, id: &str) -> &mut Account {
        if !self.accounts.contains_key(id) {
            let m = self.model;
            let at = self.cursor.at;
            self.accounts.insert(
                id.to_string(),
                Account {
                    state: AccountState {
                        id: id.to_string(),
                        attrs: Default::default(),
                        account_type: None,
                        opportunities: Vec::new(),
                        stage: None,
                        fit: 0.0,
                        engagement: 0.0,
                        engagement_at: at,
                        aggregates: AccountAggregates::default(),
                        buying_group: Vec::new(),
                        coverage: Vec::new(),
                    },
                    stage: m.initial_account_stage,
                    own_engagement: 0.0,
                    own_engagement_at: at,
                    surges: Vec::new(),
                    members: Members::default(),
                    contact_roles: BTreeMap::new(),
                    settled_until: None,
                    rules_settled: false,
                },
            );
            if let Some(s) = m.initial_account_stage {
                self.record(
                    Level::Account,
                    id,
                    Field::Stage,
                    None,
                    &m.account_stages[s as usize].name,
                    "created",
                );
            }
            self.mark_dirty(id);
        }
        self.accounts.get_mut(id).expect("just ensured")
    }

    /// Creates the person if unseen: an entry into the initial stage (and status).
    fn ensure_person(&mut self, id: &str) {
        if self.people.contains_key(id) {
            return;
        }
        let m = self.model;
        self.people.insert(Person {
            id: id.to_string(),
            account: None,
            attrs: Default::default(),
            attrs_text: None,
            stage: m.initial_stage,
            status: m.initial_status,
            created_at: self.cursor.at,
            last_activity: None,
            fit: 0.0,
            engagement: 0.0,
            engagement_at: self.cursor.at,
            epoch: 0,
            last_engaged: None,
            owner: None,
            roles: Vec::new(),
            role_bits: 0,
        });
        self.record(
            Level::Person,
            id,
            Field::Stage,
            None,
            &m.stages[m.initial_stage as usize].name,
            "created",
        );
        if let Some(s) = m.initial_status {
            self.record(
                Level::Person,
                id,
                Field::Status,
                None,
                &m.statuses[s as usize].name,
                "created",
            );
        }
        self.schedule_timers(id, false);
    }

    fn record(
        &mut self,
        level: Level,
        subject: &str,
        field: Field,
        from: Option<&str>,
        to: &str,
        rule: &str,
    ) {
        let order = self.cursor;
        self.cursor.sub += 1;
        if level == Level::Person && self.rolls_up {
            // A person's change may move their account.
            if let Some(a) = self.people.get(subject).and_then(|p| p.account.as_deref()) {
                if !self.dirty.contains(a) {
                    self.dirty.insert(a.into());
                }
            }
        }
        self.transitions.push(Transition {
            level,
            subject: subject.into(),
            field,
            order,
            from: from.map(CompactString::from),
            to: to.into(),
            event: self.cause.map(CompactString::from),
            rule: rule.into(),
        });
    }

    /// The buying group and role coverage of an account, as of the cursor.
    fn buying_group(&self, acc: &Account) -> (Vec<BuyingGroupMember>, Vec<Coverage>) {
        let model = self.model;
        let required: Vec<&str> = model
            .roles
            .iter()
            .filter(|r| r.required)
            .map(|r| r.name.as_str())
            .collect();
        let members: Vec<BuyingGroupMember> = acc
            .members
            .slots()
            .map(|s| self.people.at(s))
            .map(|p| BuyingGroupMember {
                person: p.id.clone(),
                journey: model
                    .journey_for(&self.context(&p.id, Trig::default()))
                    .map(|j| model.journeys[j as usize].name.clone()),
                roles: self.roles_of(acc, p),
                stage: model.stages[p.stage as usize].name.clone(),
                engaged: self.engaged(p),
            })
            .collect();
        let coverage_of = |journey: Option<&str>| {
            let held: BTreeSet<&str> = members
                .iter()
                .filter(|m| m.engaged && (journey.is_none() || m.journey.as_deref() == journey))
                .flat_map(|m| m.roles.iter().map(String::as_str))
                .collect();
            let (covered, missing): (Vec<&str>, Vec<&str>) =
                required.iter().partition(|r| held.contains(*r));
            Coverage {
                journey: journey.map(str::to_string),
                covered: covered.into_iter().map(str::to_string).collect(),
                missing: missing.into_iter().map(str::to_string).collect(),
            }
        };
        let mut coverage = vec![coverage_of(None)];
        for j in &model.journeys {
            if members
                .iter()
                .any(|m| m.journey.as_deref() == Some(&j.name))
            {
                coverage.push(coverage_of(Some(&j.name)));
            }
        }
        (members, coverage)
    }

    fn finish(mut self) -> Derived {
        let model = self.model;
        let ids: Vec<String> = self.accounts.keys().cloned().collect();
        for id in ids {
            let acc = &self.accounts[&id];
            let (group, coverage) = self.buying_group(acc);
            let (aggregates, _, _) = self.aggregates(acc, Vec::new());
            let engagement = self.account_engagement(acc);
            let at = self.cursor.at;
            let acc = self.accounts.get_mut(&id).expect("exists");
            acc.state.buying_group = group;
            acc.state.coverage = coverage;
            acc.state.aggregates = aggregates;
            acc.state.engagement = engagement;
            acc.state.engagement_at = at;
            acc.state.stage = acc
                .stage
                .map(|s| model.account_stages[s as usize].name.clone());
        }
        let mut people: Vec<Person> = self.people.list;
        people.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut people: Vec<PersonState> = people
            .into_iter()
            .map(|p| PersonState {
                id: p.id,
                account: p.account,
                attrs: p.attrs,
                attrs_text: p.attrs_text,
                stage: model.stages[p.stage as usize].name.clone(),
                status: p.status.map(|s| model.statuses[s as usize].name.clone()),
                created_at: p.created_at,
                last_activity: p.last_activity,
                merged_into: None,
                fit: p.fit,
                engagement: p.engagement,
                engagement_at: p.engagement_at,
                owner: p.owner,
            })
            .collect();
        let mut merged: Vec<(&str, &str)> = self.merged.iter().map(|(d, s)| (*d, *s)).collect();
        merged.sort();
        for (dup, into) in merged {
            people.push(PersonState {
                id: dup.to_string(),
                account: None,
                attrs: Default::default(),
                attrs_text: None,
                stage: String::new(),
                status: None,
                created_at: Timestamp(0),
                last_activity: None,
                merged_into: Some(into.to_string()),
                fit: 0.0,
                engagement: 0.0,
                engagement_at: Timestamp(0),
                owner: None,
            });
        }
        let mut transitions = self.transitions;
        // Timers interleave with events: keep the one total order.
        transitions.sort_by_key(|t| t.order);
        Derived {
            transitions,
            people,
            accounts: self.accounts.into_values().map(|a| a.state).collect(),
            rejections: self.rejections,
        }
    }
}
