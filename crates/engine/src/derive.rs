//! Deriving transitions from events: the engine's main loop.

use crate::state::{AccountState, OpportunityInfo, PersonState};
use std::collections::{BTreeMap, HashMap};
use waterfall_core::{
    Event, EventBody, Field, Level, OpportunityKind, OpportunityState, Order, Subject, Timestamp,
    Transition,
};
use waterfall_model::{Model, StageId, StatusId};

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

/// Derives one partition: `events` must be sorted by (`at`, `seq`).
pub fn derive(model: &Model, events: &[SequencedEvent], opts: DeriveOptions) -> Derived {
    let mut d = Deriver::new(model, events);
    for se in events {
        if se.event.at > opts.horizon {
            break;
        }
        d.apply(se);
    }
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

/// A person while the derivation runs.
struct Person {
    id: String,
    account: Option<String>,
    attrs: waterfall_core::Attrs,
    stage: StageId,
    status: Option<StatusId>,
    created_at: Timestamp,
    last_activity: Option<Timestamp>,
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
    /// Order of the change being made: the causing event's (at, seq) and a running `sub`.
    cursor: Order,
    cause: Option<String>,
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
        Deriver {
            model,
            merged,
            people: BTreeMap::new(),
            accounts: BTreeMap::new(),
            opportunities: HashMap::new(),
            transitions: Vec::new(),
            rejections: Vec::new(),
            cursor: Order {
                at: Timestamp(0),
                seq: 0,
                sub: 0,
            },
            cause: None,
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
            }
            EventBody::Person {
                person,
                account,
                attrs,
            } => {
                let id = self.survivor(person).to_string();
                self.ensure_person(&id);
                if let Some(a) = account {
                    self.account_mut(a);
                }
                let p = self.people.get_mut(&id).expect("just ensured");
                if account.is_some() {
                    p.account.clone_from(account);
                }
                for (k, v) in attrs {
                    p.attrs.insert(k.clone(), v.clone());
                }
            }
            EventBody::Activity { subject, .. } => match subject {
                Subject::Person(person) => {
                    let id = self.survivor(person).to_string();
                    self.ensure_person(&id);
                    let p = self.people.get_mut(&id).expect("just ensured");
                    p.last_activity = Some(ev.at);
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
                        self.set_stage(&id, to, "explicit");
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
                        self.set_status(&id, to, "explicit");
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
        let (acc_id, idx) = match self.opportunities.get(opportunity) {
            Some((a, i)) => (a.clone(), *i),
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
                (a.to_string(), idx)
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
        if opp.state == OpportunityState::Open && state != OpportunityState::Open {
            opp.closed_at = Some(ev.at);
        }
        opp.state = state;
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
    }

    /// Moves a person to a stage; setting the stage they are in is not an entry.
    fn set_stage(&mut self, id: &str, to: StageId, rule: &str) -> bool {
        let p = self.people.get_mut(id).expect("person exists");
        if p.stage == to {
            return false;
        }
        let from = std::mem::replace(&mut p.stage, to);
        let names = &self.model.stages;
        self.record(
            Level::Person,
            id,
            Field::Stage,
            Some(names[from as usize].name.clone()),
            names[to as usize].name.clone(),
            rule,
        );
        true
    }

    /// Sets a person's status; setting the status they have changes nothing.
    fn set_status(&mut self, id: &str, to: StatusId, rule: &str) -> bool {
        let p = self.people.get_mut(id).expect("person exists");
        if p.status == Some(to) {
            return false;
        }
        let from = p.status.replace(to);
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
            });
        }
        Derived {
            transitions: self.transitions,
            people,
            accounts: self.accounts.into_values().collect(),
            rejections: self.rejections,
        }
    }
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
