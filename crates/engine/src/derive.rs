//! Deriving transitions from events: the engine's main loop, with the model's automation
//! (scores, rules, status/stage coupling, opportunity outcomes and timers).

use crate::state::{AccountState, OpportunityInfo, PersonState};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use waterfall_core::{
    Attrs, Event, EventBody, Field, Level, OpportunityKind, OpportunityState, Order, Subject,
    Timestamp, Transition,
};
use waterfall_model::{
    EvalContext, Model, OppTrigger, Rule, ScoreRef, StageId, StatusId, TimerKind, Trigger,
    TriggerKind,
};

/// An event with its ingestion sequence number (the tie-breaker between events at one instant).
#[derive(Debug, Clone, PartialEq)]
pub struct SequencedEvent {
    /// Position in ingestion order across the whole log (first ingested = smallest).
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// Options of one derivation.
#[derive(Debug, Clone, Copy)]
pub struct DeriveOptions {
    /// Timers due at or before this instant fire; later ones stay pending. Events after it are
    /// ignored, so a derivation with `horizon = T` is the state as of `T`.
    pub horizon: Timestamp,
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

/// The sequence number timers order by: after every event at their instant.
pub const TIMER_SEQ: u64 = i64::MAX as u64;

/// How deep one change may cascade through coupling and rules (loop protection).
const MAX_CASCADE: u32 = 8;

/// Derives one partition: `events` must be sorted by (`at`, `seq`).
pub fn derive(model: &Model, events: &[SequencedEvent], opts: DeriveOptions) -> Derived {
    let mut d = Deriver::new(model, events);
    for se in events {
        if se.event.at > opts.horizon {
            break;
        }
        // Timers due strictly before this instant fire first; those due at it fire after it.
        d.fire_timers_before(se.event.at);
        d.apply(se);
    }
    d.fire_timers_until(opts.horizon);
    d.finish()
}

/// Derives many independent partitions on all cores, concatenating their results in the
/// order given (so the output does not depend on thread timing).
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
    let chunk = partitions.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = partitions
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| derive(model, p, opts))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("derivation threads do not panic"))
            .collect()
    })
}

/// Checks an event against the model before it is stored: names of stages and statuses must
/// exist. Returns the reason for rejecting it.
pub fn validate(model: &Model, event: &Event) -> Result<(), String> {
    match &event.body {
        EventBody::Stage { stage, .. } if model.stage_id(stage).is_none() => Err(format!(
            "unknown stage {stage:?} (model {:?} has {})",
            model.name,
            model
                .stages
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        EventBody::Status { status, .. } if model.status_id(status).is_none() => Err(format!(
            "unknown status {status:?} (model {:?} has {})",
            model.name,
            model
                .statuses
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(()),
    }
}

/// A person while the derivation runs.
struct Person {
    id: String,
    account: Option<String>,
    attrs: Attrs,
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
}

/// A pending timer: rule `rule` for `person`, valid while the person's epoch (for in-stage
/// timers) or last activity (for inactivity timers) is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    due: Timestamp,
    person: String,
    rule: u32,
    epoch: u64,
    last_activity: Option<Timestamp>,
}

/// What the event being applied is about, for rule conditions.
#[derive(Clone, Copy, Default)]
struct Trig<'e> {
    activity_kind: Option<&'e str>,
    activity: Option<&'e Attrs>,
    opportunity: Option<(OpportunityKind, Option<f64>)>,
}

struct Deriver<'m> {
    model: &'m Model,
    /// Duplicate person id → survivor id, from every merge event of the partition.
    merged: HashMap<String, String>,
    people: BTreeMap<String, Person>,
    accounts: BTreeMap<String, AccountState>,
    /// Opportunity id → (account id, index in that account's list).
    opportunities: HashMap<String, (String, usize)>,
    transitions: Vec<Transition>,
    rejections: Vec<Rejection>,
    timers: BTreeSet<Timer>,
    /// Order of the change being made: the causing event's (at, seq) and a running `sub`.
    cursor: Order,
    cause: Option<String>,
    /// Rule ids by name, to find a rule's index for timers.
    rule_index: HashMap<*const Rule, u32>,
}

impl<'m> Deriver<'m> {
    fn new(model: &'m Model, events: &[SequencedEvent]) -> Self {
        // History is re-attributed to the survivor: a merge applies to the whole log of the
        // partition, whatever its instant, so the survivor's timeline includes the duplicate's.
        let mut merged = HashMap::new();
        for se in events {
            if let EventBody::Merge { person, into } = &se.event.body {
                merged.insert(person.clone(), into.clone());
            }
        }
        let rule_index = model
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r as *const Rule, i as u32))
            .collect();
        Deriver {
            model,
            merged,
            people: BTreeMap::new(),
            accounts: BTreeMap::new(),
            opportunities: HashMap::new(),
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
        }
    }

    /// The surviving id of a person (following chains of merges, never looping).
    fn survivor<'a>(&'a self, mut id: &'a str) -> &'a str {
        for _ in 0..64 {
            match self.merged.get(id) {
                Some(next) if next != id => id = next,
                _ => break,
            }
        }
        id
    }

    fn apply(&mut self, se: &SequencedEvent) {
        let ev = &se.event;
        self.cursor = Order {
            at: ev.at,
            seq: se.seq,
            sub: 0,
        };
        self.cause = Some(ev.id.clone());
        match &ev.body {
            EventBody::Account { account, attrs } => {
                let acc = self.account_mut(account);
                for (k, v) in attrs {
                    acc.attrs.insert(k.clone(), v.clone());
                }
                if let Some(t) = attrs.get("type").and_then(|v| v.as_str()) {
                    acc.account_type = Some(t.to_string());
                }
                // Account attributes feed people's fit.
                let members: Vec<String> = self
                    .people
                    .values()
                    .filter(|p| p.account.as_deref() == Some(account))
                    .map(|p| p.id.clone())
                    .collect();
                for id in members {
                    self.rescore_fit(&id);
                }
            }
            EventBody::Person {
                person,
                account,
                attrs,
            } => {
                let id = self.survivor(person).to_string();
                if let Some(a) = account {
                    self.account_mut(a);
                }
                let created = !self.people.contains_key(&id);
                self.ensure_person(&id);
                let p = self.people.get_mut(&id).expect("just ensured");
                if account.is_some() {
                    p.account.clone_from(account);
                }
                for (k, v) in attrs {
                    p.attrs.insert(k.clone(), v.clone());
                }
                if created {
                    let p = self.people.get_mut(&id).expect("exists");
                    p.fit = 0.0;
                    let fit = self.compute_fit(&id);
                    self.people.get_mut(&id).expect("exists").fit = fit;
                    self.fire(TriggerKind::PersonCreated, &id, Trig::default(), 0);
                } else {
                    self.rescore_fit(&id);
                }
            }
            EventBody::Activity {
                subject,
                kind,
                attrs,
            } => match subject {
                Subject::Person(person) => {
                    let id = self.survivor(person).to_string();
                    self.ensure_person(&id);
                    self.activity(&id, kind, attrs);
                }
                Subject::Account(a) => {
                    self.account_mut(a);
                }
            },
            EventBody::Opportunity {
                opportunity,
                account,
                kind,
                state,
                stage,
                amount,
                contacts,
            } => {
                self.apply_opportunity(
                    ev,
                    opportunity,
                    account.as_deref(),
                    *kind,
                    *state,
                    stage,
                    *amount,
                    contacts,
                );
            }
            EventBody::Stage { person, stage, .. } => {
                let id = self.survivor(person).to_string();
                match self.model.stage_id(stage) {
                    Some(to) => {
                        self.ensure_person(&id);
                        self.change_stage(&id, to, "explicit", None, 0);
                    }
                    None => self.reject(
                        ev,
                        format!("unknown stage {stage:?} in model {:?}", self.model.name),
                    ),
                }
            }
            EventBody::Status { person, status, .. } => {
                let id = self.survivor(person).to_string();
                match self.model.status_id(status) {
                    Some(to) => {
                        self.ensure_person(&id);
                        self.change_status(&id, to, "explicit", 0);
                    }
                    None => self.reject(
                        ev,
                        format!("unknown status {status:?} in model {:?}", self.model.name),
                    ),
                }
            }
            // Merges were resolved up front; erasure removes events before derivation.
            EventBody::Merge { .. } | EventBody::Erase { .. } => {}
        }
    }

    /// An activity: engagement points (with decay), inactivity timers re-armed, rules fired.
    fn activity(&mut self, id: &str, kind: &str, attrs: &Attrs) {
        let at = self.cursor.at;
        let scoring = &self.model.scoring;
        let p = self.people.get_mut(id).expect("person exists");
        let before = scoring.decay(p.engagement, p.engagement_at.days_until(at));
        let after = before + scoring.points_for(kind);
        p.engagement = after;
        p.engagement_at = at;
        p.last_activity = Some(at);
        let trig = Trig {
            activity_kind: Some(kind),
            activity: Some(attrs),
            opportunity: None,
        };
        self.fire(TriggerKind::Activity, id, trig, 0);
        self.score_crossings(id, ScoreRef::Engagement, before, after, trig);
        self.schedule_timers(id, true);
    }

    /// Recomputes a person's fit and fires crossings.
    fn rescore_fit(&mut self, id: &str) {
        let before = self.people[id].fit;
        let after = self.compute_fit(id);
        self.people.get_mut(id).expect("person exists").fit = after;
        self.score_crossings(id, ScoreRef::Fit, before, after, Trig::default());
    }

    fn compute_fit(&self, id: &str) -> f64 {
        let ctx = self.context(id, Trig::default());
        self.model
            .scoring
            .fit
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
            account: acc.map(|a| &a.attrs),
            account_fit: 0.0,
            account_engagement: 0.0,
            account_type: acc.and_then(|a| a.account_type.as_deref()),
            aggregates: None,
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
            Some(model.stages[from as usize].name.clone()),
            model.stages[to as usize].name.clone(),
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
            from.map(|f| names[f as usize].name.clone()),
            names[to as usize].name.clone(),
            rule,
        );
        true
    }

    /// (Re-)schedules the timer rules that apply to the person's current stage and status.
    /// With `activity_only`, only inactivity timers are re-armed.
    fn schedule_timers(&mut self, id: &str, activity_only: bool) {
        let model = self.model;
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
                person: id.to_string(),
                rule: self.rule_index[&(rule as *const Rule)],
                epoch: p.epoch,
                last_activity: p.last_activity,
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
        let rule = &model.rules[timer.rule as usize];
        let Trigger::Timer { kind, .. } = &rule.trigger else {
            return;
        };
        let Some(p) = self.people.get(&timer.person) else {
            return;
        };
        let still_valid = match kind {
            TimerKind::InStage => p.epoch == timer.epoch,
            TimerKind::NoActivity => {
                p.last_activity == timer.last_activity && p.epoch == timer.epoch
            }
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
        self.try_rule(rule, &timer.person, Trig::default(), 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_opportunity(
        &mut self,
        ev: &Event,
        opportunity: &str,
        account: Option<&str>,
        kind: Option<OpportunityKind>,
        state: OpportunityState,
        stage: &Option<String>,
        amount: Option<f64>,
        contacts: &Option<Vec<waterfall_core::OpportunityContact>>,
    ) {
        let (acc_id, idx, created) = match self.opportunities.get(opportunity) {
            Some((a, i)) => (a.clone(), *i, false),
            None => {
                let Some(a) = account else {
                    self.reject(
                        ev,
                        format!("opportunity {opportunity:?} is new but names no account"),
                    );
                    return;
                };
                let acc = self.account_mut(a);
                acc.opportunities.push(OpportunityInfo {
                    id: opportunity.to_string(),
                    kind: kind.unwrap_or(OpportunityKind::NewBusiness),
                    state: OpportunityState::Open,
                    stage: None,
                    amount: None,
                    contacts: Vec::new(),
                    created_at: ev.at,
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
        let opp = &mut acc.opportunities[idx];
        if let Some(k) = kind {
            opp.kind = k;
        }
        if stage.is_some() {
            opp.stage.clone_from(stage);
        }
        if amount.is_some() {
            opp.amount = amount;
        }
        if let Some(cs) = contacts {
            opp.contacts = cs
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    if let Some(s) = merged.get(&c.person) {
                        c.person = s.clone();
                    }
                    c
                })
                .collect();
        }
        let previous = opp.state;
        if previous == OpportunityState::Open && state != OpportunityState::Open {
            opp.closed_at = Some(ev.at);
        }
        opp.state = state;
        let (opp_kind, opp_amount) = (opp.kind, opp.amount);
        let contacts: Vec<String> = opp.contacts.iter().map(|c| c.person.clone()).collect();
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
            self.account_mut(&acc_id).account_type = Some(t);
        }
        let trig = Trig {
            opportunity: Some((opp_kind, opp_amount)),
            ..Trig::default()
        };
        let rule_name = format!("opportunity: {} {}", opp_kind.as_str(), moment.as_str());
        for person in contacts {
            let id = self.survivor(&person).to_string();
            self.ensure_person(&id);
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

    fn reject(&mut self, ev: &Event, reason: String) {
        self.rejections.push(Rejection {
            event: ev.id.clone(),
            at: ev.at,
            reason,
        });
    }

    fn account_mut(&mut self, id: &str) -> &mut AccountState {
        self.accounts
            .entry(id.to_string())
            .or_insert_with(|| AccountState {
                id: id.to_string(),
                attrs: Default::default(),
                account_type: None,
                opportunities: Vec::new(),
            })
    }

    /// Creates the person if unseen: an entry into the initial stage (and status).
    fn ensure_person(&mut self, id: &str) {
        if self.people.contains_key(id) {
            return;
        }
        let m = self.model;
        self.people.insert(
            id.to_string(),
            Person {
                id: id.to_string(),
                account: None,
                attrs: Default::default(),
                stage: m.initial_stage,
                status: m.initial_status,
                created_at: self.cursor.at,
                last_activity: None,
                fit: 0.0,
                engagement: 0.0,
                engagement_at: self.cursor.at,
                epoch: 0,
            },
        );
        self.record(
            Level::Person,
            id,
            Field::Stage,
            None,
            m.stages[m.initial_stage as usize].name.clone(),
            "created",
        );
        if let Some(s) = m.initial_status {
            self.record(
                Level::Person,
                id,
                Field::Status,
                None,
                m.statuses[s as usize].name.clone(),
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
        from: Option<String>,
        to: String,
        rule: &str,
    ) {
        let order = self.cursor;
        self.cursor.sub += 1;
        self.transitions.push(Transition {
            level,
            subject: subject.to_string(),
            field,
            order,
            from,
            to,
            event: self.cause.clone(),
            rule: rule.to_string(),
        });
    }

    fn finish(self) -> Derived {
        let model = self.model;
        let mut people: Vec<PersonState> = self
            .people
            .into_values()
            .map(|p| PersonState {
                id: p.id,
                account: p.account,
                attrs: p.attrs,
                stage: model.stages[p.stage as usize].name.clone(),
                status: p.status.map(|s| model.statuses[s as usize].name.clone()),
                created_at: p.created_at,
                last_activity: p.last_activity,
                merged_into: None,
                fit: p.fit,
                engagement: p.engagement,
                engagement_at: p.engagement_at,
            })
            .collect();
        let mut merged: Vec<(&String, &String)> = self.merged.iter().collect();
        merged.sort();
        for (dup, into) in merged {
            people.push(PersonState {
                id: dup.clone(),
                account: None,
                attrs: Default::default(),
                stage: String::new(),
                status: None,
                created_at: Timestamp(0),
                last_activity: None,
                merged_into: Some(into.clone()),
                fit: 0.0,
                engagement: 0.0,
                engagement_at: Timestamp(0),
            });
        }
        let mut transitions = self.transitions;
        // Timers interleave with events: keep the one total order.
        transitions.sort_by_key(|t| t.order);
        Derived {
            transitions,
            people,
            accounts: self.accounts.into_values().collect(),
            rejections: self.rejections,
        }
    }
}
