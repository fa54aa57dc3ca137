//! Appending events to the log and re-deriving the partitions they touch.
//!
//! The log keeps each partition's events as one record stream (see `body.rs`). A batch routes
//! every event to its partition and appends it to the batch's pending records (`pending.rs`:
//! an arena, spilled to a temporary file past [`BatchLimits::memory_bytes`]);
//! [`Batch::finish`] then reads each touched partition once — stored stream, spilled pieces
//! and records still in memory — drops duplicates and
//! erased people, derives it, and writes the stream and the derived rows back, all in the
//! batch's transaction.

use crate::pending::Pending;
use crate::{Store, StoreError};
use compact_str::CompactString;
use rayon::prelude::*;
use rusqlite::{params, OptionalExtension, Transaction};
use rustc_hash::{FxHashMap, FxHashSet};
use waterfall_core::{
    Event, EventBody, NotedRoute, Record, RecordBody, RecordRoutes, RouteKey, Timestamp,
    TransitionTable,
};
use waterfall_engine::{
    derive_records_with, DeriveOptions, Derived, SequencedEvent, SequencedRecord,
};
use waterfall_model::Model;

/// Options of one ingest or replay.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Timers due up to this instant fire (the caller's "now").
    pub horizon: Timestamp,
}

/// Builds the stage index (see [`Store::read_stage_index`]) from every partition's
/// transitions while a load or a replay writes them, so that it is saved in the same
/// transaction instead of read back after the commit. The store cannot build it alone: the
/// index is the reports' view of the transitions.
pub trait IndexBuilder {
    /// One partition's transitions, as stored.
    fn add(&mut self, table: &TransitionTable<'_>);
    /// The index's names and entries, once every partition is added (`None`: none to keep).
    fn finish(&mut self) -> Option<(Vec<u8>, Vec<u8>)>;
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestSummary {
    /// Events handed in (for a replay: events re-derived).
    pub received: usize,
    /// Events new to the log.
    pub stored: usize,
    /// Events whose id was already in the log (changed nothing).
    pub duplicates: usize,
    /// Partitions (accounts, or people without one) re-derived.
    pub partitions: usize,
    /// Transitions now stored for those partitions.
    pub transitions: usize,
    /// People erased by this batch.
    pub erased: usize,
    /// Whether the stage index was rebuilt in the same transaction (see [`IndexBuilder`]).
    pub stage_index: bool,
    /// Wall-clock seconds per phase (`read+append`, `load`, `derive`, `write`, `commit`), for
    /// `--verbose` and benchmarks.
    pub phases: Vec<(&'static str, f64)>,
}

/// Wall-clock time per phase of an ingest.
struct PhaseClock {
    last: std::time::Instant,
    phases: Vec<(&'static str, f64)>,
}

impl PhaseClock {
    fn new() -> Self {
        PhaseClock {
            last: std::time::Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Adds the time since the last lap to `phase` (phases repeat across passes).
    fn lap(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        let secs = (now - self.last).as_secs_f64();
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += secs,
            None => self.phases.push((phase, secs)),
        }
        self.last = now;
    }
}

/// Events leaving one partition for another: a person's (`Some`), or all of them (`None`,
/// when a person-only partition joins an account). Applied in order when the batch finishes;
/// since every later event of the person is routed to `to`, the result is the same as moving
/// them at once.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    /// Whose events move: a person's, or (`opportunity`) an opportunity's; with neither,
    /// every event of `from`.
    pub(crate) person: Option<String>,
    pub(crate) opportunity: Option<String>,
    pub(crate) from: String,
    pub(crate) to: String,
}

/// Where a person's events live, and the `at` of the `person` event that put them there.
#[derive(Debug, Clone, Copy)]
struct Route {
    partition: u32,
    at: i64,
    /// Changed by this batch: written to `person_partition` when it finishes.
    dirty: bool,
}

/// The partitions one batch knows, by index (routing hands out indexes, not strings).
#[derive(Default)]
struct Partitions {
    names: Vec<String>,
    index: FxHashMap<String, u32>,
}

impl Partitions {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
}

/// Where events go: the partition map, loaded lazily from the database.
struct Router {
    partitions: Partitions,
    /// Where each person lives. The ids are kept inline (most are short): a lookup then
    /// reads one place in memory, not the table and the id's own allocation, which matters
    /// when events of many people interleave.
    people: FxHashMap<CompactString, Route>,
    /// Where each opportunity lives, the instant of the latest event that named that account
    /// (`i64::MIN`: none did), and whether this batch changed it.
    opportunities: FxHashMap<String, (u32, i64, bool)>,
    moves: Vec<Move>,
    /// This batch's merges: the merged person → whom into (written to `person_partition`).
    merged_into: FxHashMap<String, String>,
    /// The same, the other way: a survivor → the people this batch merged into it.
    merged_from: FxHashMap<String, Vec<String>>,
    /// The claim as an opportunity's contact of each group this batch looked at (see
    /// [`Router::claim_contact`]), as (opportunity, instant of the event naming one of them,
    /// whether this batch changed it).
    contacts: FxHashMap<String, (String, i64, bool)>,
    /// The people this batch made contacts of each opportunity (the other way round).
    claimed_by: FxHashMap<String, Vec<String>>,
    /// Every (person, opportunity) pair this batch's deals named (for erasure to find them).
    deal_contacts: FxHashSet<(String, String)>,
    /// The people a deal may place elsewhere after this batch: their claim changed, or the
    /// deal that claims them moved (see [`Router::claimed_in_dedup_groups`]).
    placed_by_deals: FxHashSet<String>,
    /// The log was empty when the batch began: nothing to look up in the database.
    fresh: bool,
}

/// Everyone merged into `person`, and into those, and so on (`direct` gives the people
/// merged straight into someone), each once, whatever cycles the merges make.
pub(crate) fn all_followers(
    person: &str,
    mut direct: impl FnMut(&str) -> Result<Vec<String>, StoreError>,
) -> Result<Vec<String>, StoreError> {
    let mut seen: FxHashSet<String> = FxHashSet::default();
    seen.insert(person.to_string());
    let mut out = Vec::new();
    let mut survivors = vec![person.to_string()];
    while let Some(survivor) = survivors.pop() {
        for f in direct(&survivor)? {
            if seen.insert(f.clone()) {
                out.push(f.clone());
                survivors.push(f);
            }
        }
    }
    Ok(out)
}

/// Whom `person` was merged into in the end (`into` gives whom someone was merged straight
/// into), stopping where a cycle of merges would repeat itself.
pub(crate) fn last_survivor(
    person: &str,
    mut into: impl FnMut(&str) -> Result<Option<String>, StoreError>,
) -> Result<String, StoreError> {
    let mut at = person.to_string();
    let mut seen: FxHashSet<String> = FxHashSet::default();
    while seen.insert(at.clone()) {
        match into(&at)? {
            Some(next) => at = next,
            None => break,
        }
    }
    Ok(at)
}

/// The people merged straight into `survivor`, as stored.
pub(crate) fn stored_followers(
    tx: &Transaction<'_>,
    survivor: &str,
) -> Result<Vec<String>, StoreError> {
    let mut st = tx.prepare_cached("SELECT person FROM person_partition WHERE merged_into = ?1")?;
    let rows = st.query_map([survivor], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The partition of a person who lives alone (no account named, matched or given by a deal).
pub(crate) fn person_partition_key(person: &str) -> String {
    format!("~p:{person}")
}

/// The partition of an opportunity no event has named an account for yet.
fn opportunity_partition_key(opportunity: &str) -> String {
    format!("~o:{opportunity}")
}

/// Whether a partition is an account's: not a person's alone, nor an opportunity's without
/// an account (see [`person_partition_key`], [`opportunity_partition_key`]).
pub(crate) fn is_account_partition(name: &str) -> bool {
    !name.starts_with('~')
}

impl Router {
    fn person(&mut self, tx: &Transaction<'_>, person: &str) -> Result<Option<Route>, StoreError> {
        if let Some(v) = self.people.get(person) {
            return Ok(Some(*v));
        }
        if self.fresh {
            return Ok(None);
        }
        let v: Option<(String, i64)> = tx
            .prepare_cached("SELECT partition, at FROM person_partition WHERE person = ?1")?
            .query_row([person], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(v.map(|(partition, at)| {
            let route = Route {
                partition: self.partitions.intern(&partition),
                at,
                dirty: false,
            };
            self.people.insert(CompactString::from(person), route);
            route
        }))
    }

    fn set_person(&mut self, person: &str, partition: u32, at: i64) {
        let route = Route {
            partition,
            at,
            dirty: true,
        };
        match self.people.get_mut(person) {
            Some(r) => *r = route,
            None => {
                self.people.insert(CompactString::from(person), route);
            }
        }
    }

    /// Records that the events of `person` (of everyone, when `None`) leave `from` for `to`.
    fn move_events(&mut self, person: Option<&str>, from: u32, to: u32) {
        if from != to {
            self.moves.push(Move {
                person: person.map(str::to_string),
                opportunity: None,
                from: self.partitions.name(from).to_string(),
                to: self.partitions.name(to).to_string(),
            });
        }
    }

    /// Records that `person`'s events leave `from` for `to`, and with them those of everyone
    /// merged into the person (and into those, and so on): a merged person's events live
    /// with their survivor's, wherever the survivor goes later.
    fn move_person(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        from: u32,
        to: u32,
    ) -> Result<(), StoreError> {
        if from == to {
            return Ok(());
        }
        self.move_events(Some(person), from, to);
        for follower in all_followers(person, |s| self.followers(tx, s))? {
            if let Some(route) = self.person(tx, &follower)? {
                self.move_events(Some(&follower), route.partition, to);
                self.set_person(&follower, to, i64::MAX);
            }
        }
        Ok(())
    }

    /// The people merged straight into `survivor`: by this batch, or before it (unless this
    /// batch merged them into someone else since).
    fn followers(&self, tx: &Transaction<'_>, survivor: &str) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self.merged_from.get(survivor).cloned().unwrap_or_default();
        if !self.fresh {
            for f in stored_followers(tx, survivor)? {
                if self.merged_into.get(&f).is_none_or(|i| i == survivor) && !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// Notes that this batch merged `person` into `into`.
    fn note_merge(&mut self, person: &str, into: &str) {
        if let Some(old) = self
            .merged_into
            .insert(person.to_string(), into.to_string())
        {
            if let Some(list) = self.merged_from.get_mut(&old) {
                list.retain(|p| p != person);
            }
        }
        self.merged_from
            .entry(into.to_string())
            .or_default()
            .push(person.to_string());
    }

    /// Whom `person` was merged into in the end (following the chain of merges, this batch's
    /// and stored ones), or `person` itself.
    fn survivor(&self, tx: &Transaction<'_>, person: &str) -> Result<String, StoreError> {
        last_survivor(person, |at| match self.merged_into.get(at) {
            Some(into) => Ok(Some(into.clone())),
            None if self.fresh => Ok(None),
            None => Ok(tx
                .prepare_cached("SELECT merged_into FROM person_partition WHERE person = ?1")?
                .query_row([at], |r| r.get::<_, Option<String>>(0))
                .optional()?
                .flatten()),
        })
    }

    /// What decides where the group of `survivor` (the survivor and everyone merged into it)
    /// lives: the latest `person` event of one of them naming an account, as (account, its
    /// instant) — the engine gives the merged person that account. Where matching placed a
    /// person, their route says where their dedup group or match lives, not what their own
    /// events named: the matching facts (`facts`) do, for everyone they know.
    fn group_decision(
        &mut self,
        tx: &Transaction<'_>,
        survivor: &str,
        facts: &crate::matching::Observed,
    ) -> Result<Option<(u32, i64)>, StoreError> {
        let mut best: Option<(i64, String)> = None;
        let members = all_followers(survivor, |s| self.followers(tx, s))?;
        for member in std::iter::once(survivor.to_string()).chain(members) {
            let own = match facts.own_account(tx, &member)? {
                Some(own) => own,
                None => self
                    .person(tx, &member)?
                    // A route without an instant (`i64::MIN`) names no account: the person
                    // lives alone, or where a deal or a match placed them.
                    .filter(|r| {
                        r.at != i64::MAX
                            && r.at != i64::MIN
                            && is_account_partition(self.partitions.name(r.partition))
                    })
                    .map(|r| (self.partitions.name(r.partition).to_string(), r.at)),
            };
            if let Some((account, at)) = own {
                if best.as_ref().is_none_or(|b| (at, &account) > (b.0, &b.1)) {
                    best = Some((at, account));
                }
            }
        }
        Ok(best.map(|(at, account)| (self.partitions.intern(&account), at)))
    }

    /// Moves the group of `survivor` to `account` when (`account`, `at`) is later than what
    /// decided its place so far (see [`Router::group_decision`]). Returns the group's partition.
    fn settle_group(
        &mut self,
        tx: &Transaction<'_>,
        survivor: &str,
        (account, at): (u32, i64),
        facts: &crate::matching::Observed,
    ) -> Result<u32, StoreError> {
        let Some(group) = self.person(tx, survivor)? else {
            return Ok(account);
        };
        let decided = self.group_decision(tx, survivor, facts)?;
        let later = decided.is_none_or(|(current, current_at)| {
            (at, self.partitions.name(account)) >= (current_at, self.partitions.name(current))
        });
        if !later {
            return Ok(group.partition);
        }
        // Moved or not, this is now what decides (the survivor's own later events compare
        // with it).
        self.move_person(tx, survivor, group.partition, account)?;
        self.set_person(survivor, account, at);
        Ok(account)
    }

    /// The partition a person's event belongs to, creating or moving the person as needed.
    /// `account` and `at` come from a `person` event that names an account.
    fn route_person(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        (account, at): (Option<&str>, i64),
        facts: &crate::matching::Observed,
    ) -> Result<u32, StoreError> {
        let current = self.person(tx, person)?;
        let account = account.map(|a| self.partitions.intern(a));
        Ok(match (current, account) {
            (None, Some(a)) => {
                self.set_person(person, a, at);
                a
            }
            (Some(cur), Some(a)) if cur.at == i64::MAX => {
                // A merged person names an account: their group goes there if it is the latest.
                let survivor = self.survivor(tx, person)?;
                if survivor == person {
                    cur.partition
                } else {
                    self.settle_group(tx, &survivor, (a, at), facts)?
                }
            }
            (None, None) => {
                let p = self.partitions.intern(&person_partition_key(person));
                self.set_person(person, p, i64::MIN);
                p
            }
            (Some(cur), Some(a)) if cur.partition != a && at >= cur.at => {
                // The person's latest known account decides where all their events live.
                self.move_person(tx, person, cur.partition, a)?;
                self.set_person(person, a, at);
                a
            }
            (Some(cur), Some(_)) if at >= cur.at => {
                if at != cur.at {
                    self.set_person(person, cur.partition, at);
                }
                cur.partition
            }
            (Some(cur), _) => cur.partition,
        })
    }

    /// The partition an event at `at` about `key` goes to (routing people, merges and
    /// opportunities as it goes); `facts` are the matching facts (this batch's and stored).
    fn route(
        &mut self,
        tx: &Transaction<'_>,
        at: i64,
        key: RouteKey<'_>,
        facts: &crate::matching::Observed,
    ) -> Result<u32, StoreError> {
        Ok(match key {
            RouteKey::Account(account) => self.partitions.intern(account),
            RouteKey::Person { person, account } => {
                self.route_person(tx, person, (account, at), facts)?
            }
            RouteKey::OfPerson(p) | RouteKey::Erase(p) => {
                self.route_person(tx, p, (None, at), facts)?
            }
            RouteKey::Merge { person, into } => {
                let mut target = self.route_person(tx, into, (None, at), facts)?;
                if let Some(dup) = self.person(tx, person)? {
                    // The merged person lives where the later of the two groups' deciding
                    // `person` events puts it (a group without an account has none).
                    let survivor = self.survivor(tx, into)?;
                    if let Some(decided) = self.group_decision(tx, person, facts)? {
                        target = self.settle_group(tx, &survivor, decided, facts)?;
                    }
                    self.move_person(tx, person, dup.partition, target)?;
                }
                self.set_person(person, target, i64::MAX);
                self.note_merge(person, into);
                // The merged person's claim as a contact joins their survivor's group.
                if let Some((opportunity, at)) = self.contact_claim(tx, person)? {
                    let survivor = self.survivor(tx, into)?;
                    if self.hold_claim(tx, &survivor, (&opportunity, at))? {
                        if let Some((deal, _)) = self.opportunity_route(tx, &opportunity)? {
                            self.place_contact(tx, &survivor, deal)?;
                            target = self.person(tx, &survivor)?.map_or(target, |r| r.partition);
                        }
                    }
                }
                target
            }
            RouteKey::Opportunity {
                opportunity,
                account,
                contacts,
            } => {
                let current = self.opportunity_route(tx, opportunity)?;
                let account = account.map(|a| self.partitions.intern(a));
                // Like a person's: the latest event naming an account decides where all the
                // opportunity's events live (an opportunity re-parented in the CRM moves).
                let now = match (current, account) {
                    (None, Some(a)) => (a, at),
                    (None, None) => (
                        self.partitions
                            .intern(&opportunity_partition_key(opportunity)),
                        i64::MIN,
                    ),
                    (Some((from, decided)), Some(a)) if at >= decided => {
                        if from != a {
                            self.moves.push(Move {
                                person: None,
                                opportunity: Some(opportunity.to_string()),
                                from: self.partitions.name(from).to_string(),
                                to: self.partitions.name(a).to_string(),
                            });
                        }
                        (a, at)
                    }
                    (Some(current), _) => current,
                };
                let dirty = current != Some(now)
                    || self.opportunities.get(opportunity).is_some_and(|o| o.2);
                self.opportunities
                    .insert(opportunity.to_string(), (now.0, now.1, dirty));
                if current.is_some_and(|(from, _)| from != now.0) {
                    // The contacts it placed go with it.
                    for person in self.contacts_of(tx, opportunity)? {
                        self.place_contact(tx, &person, now.0)?;
                        self.placed_by_deals.insert(person);
                    }
                }
                for person in contacts.people() {
                    self.claim_contact(tx, person, (opportunity, at), now.0)?;
                    self.deal_contacts
                        .insert((person.to_string(), opportunity.to_string()));
                }
                now.0
            }
        })
    }

    /// The contact claim of `person`'s group, as (opportunity, instant): see
    /// [`Router::claim_contact`].
    fn contact_claim(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        if let Some((o, at, _)) = self.contacts.get(person) {
            return Ok(Some((o.clone(), *at)));
        }
        if self.fresh {
            return Ok(None);
        }
        let stored: Option<(String, i64)> = tx
            .prepare_cached("SELECT opportunity, at FROM contact_claims WHERE person = ?1")?
            .query_row([person], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((o, at)) = &stored {
            self.contacts
                .insert(person.to_string(), (o.clone(), *at, false));
        }
        Ok(stored)
    }

    /// An opportunity living in `deal` named `person` as a contact at `at`. The claim goes
    /// to the person's group (whom they were merged into, if anyone), which keeps its
    /// earliest claim (by instant, then opportunity id): the engine gives an account-less
    /// contact the account of the first deal that names them. See [`Router::place_contact`].
    fn claim_contact(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        claim: (&str, i64),
        deal: u32,
    ) -> Result<(), StoreError> {
        let survivor = self.survivor(tx, person)?;
        if self.hold_claim(tx, &survivor, claim)? {
            self.place_contact(tx, &survivor, deal)?;
        }
        Ok(())
    }

    /// Makes `claim` (opportunity, instant) the contact claim of `person`'s group if it is
    /// earlier than the one it holds; returns whether it did.
    fn hold_claim(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        (opportunity, at): (&str, i64),
    ) -> Result<bool, StoreError> {
        if let Some((o, t)) = self.contact_claim(tx, person)? {
            if (t, o.as_str()) <= (at, opportunity) {
                return Ok(false);
            }
        }
        self.contacts
            .insert(person.to_string(), (opportunity.to_string(), at, true));
        self.placed_by_deals.insert(person.to_string());
        self.claimed_by
            .entry(opportunity.to_string())
            .or_default()
            .push(person.to_string());
        Ok(true)
    }

    /// Where an opportunity lives and the instant of the latest event that named that
    /// account, if it has been seen.
    fn opportunity_route(
        &mut self,
        tx: &Transaction<'_>,
        opportunity: &str,
    ) -> Result<Option<(u32, i64)>, StoreError> {
        if let Some(&(partition, decided, _)) = self.opportunities.get(opportunity) {
            return Ok(Some((partition, decided)));
        }
        if self.fresh {
            return Ok(None);
        }
        let stored: Option<(String, i64)> = tx
            .prepare_cached(
                "SELECT partition, at FROM opportunity_partition WHERE opportunity = ?1",
            )?
            .query_row([opportunity], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(stored.map(|(p, decided)| (self.partitions.intern(&p), decided)))
    }

    /// The people a deal may have placed elsewhere this batch (see `placed_by_deals`) whom
    /// matching's dedup groups (same email) hold, as survivor or duplicate: routing moves a
    /// person and whoever was merged into them, not a dedup group, so matching decides those
    /// groups again.
    fn claimed_in_dedup_groups(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<FxHashSet<String>, StoreError> {
        let mut out = FxHashSet::default();
        if self.fresh {
            // A first load decides every group anyway.
            return Ok(out);
        }
        let mut in_group = tx.prepare_cached(
            "SELECT 1 FROM person_duplicates WHERE person = ?1 OR survivor = ?1 LIMIT 1",
        )?;
        for person in &self.placed_by_deals {
            if in_group.exists([person])? {
                out.insert(person.clone());
            }
        }
        Ok(out)
    }

    /// The people (groups) whose contact claim is `opportunity`.
    fn contacts_of(
        &mut self,
        tx: &Transaction<'_>,
        opportunity: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut people: Vec<String> = self
            .claimed_by
            .get(opportunity)
            .cloned()
            .unwrap_or_default();
        if !self.fresh {
            let stored: Vec<String> = tx
                .prepare_cached("SELECT person FROM contact_claims WHERE opportunity = ?1")?
                .query_map([opportunity], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            people.extend(stored);
        }
        people.sort_unstable();
        people.dedup();
        let mut out = Vec::with_capacity(people.len());
        for p in people {
            if self
                .contact_claim(tx, &p)?
                .is_some_and(|(o, _)| o == opportunity)
            {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// A contact whose claim is a deal living in `deal`: "a contact with no known
    /// account belongs to the deal's account", as the engine has it. So a contact without an
    /// account of their own (none named; matching, when it runs, decides after routing and
    /// puts a match first) lives with the deal, and the deal's outcome moves the person, not
    /// a copy of them. A deal without an account yet places no one.
    fn place_contact(
        &mut self,
        tx: &Transaction<'_>,
        person: &str,
        deal: u32,
    ) -> Result<(), StoreError> {
        if !is_account_partition(self.partitions.name(deal)) {
            return Ok(());
        }
        match self.person(tx, person)? {
            None => self.set_person(person, deal, i64::MIN),
            Some(cur)
                if cur.at == i64::MIN && cur.partition != deal && !self.matched(tx, person)? =>
            {
                self.move_person(tx, person, cur.partition, deal)?;
                self.set_person(person, deal, i64::MIN);
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Whether matching placed `person` (a batch without identity events keeps the matches
    /// without deciding again, so routing must not move them).
    fn matched(&self, tx: &Transaction<'_>, person: &str) -> Result<bool, StoreError> {
        if self.fresh {
            return Ok(false);
        }
        Ok(tx
            .prepare_cached("SELECT 1 FROM person_matches WHERE person = ?1")?
            .query_row([person], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Writes the contact claims this batch changed to `contact_claims`, and the deal
    /// contacts it named to `deal_contacts`.
    fn write_contacts(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let mut pairs: Vec<&(String, String)> = self.deal_contacts.iter().collect();
        pairs.sort_unstable();
        insert_many(
            tx,
            (
                "INSERT OR IGNORE INTO deal_contacts(person, opportunity)",
                2,
                "",
            ),
            &pairs,
            |st, i, (person, opportunity)| {
                st.raw_bind_parameter(i + 1, person)?;
                st.raw_bind_parameter(i + 2, opportunity)
            },
        )?;
        let mut dirty: Vec<(&String, &String, i64)> = self
            .contacts
            .iter()
            .filter(|(_, c)| c.2)
            .map(|(person, (o, at, _))| (person, o, *at))
            .collect();
        dirty.sort_unstable();
        insert_many(
            tx,
            (
                "INSERT OR REPLACE INTO contact_claims(person, opportunity, at)",
                3,
                "",
            ),
            &dirty,
            |st, i, (person, opportunity, at)| {
                st.raw_bind_parameter(i + 1, person)?;
                st.raw_bind_parameter(i + 2, opportunity)?;
                st.raw_bind_parameter(i + 3, at)
            },
        )
    }

    /// Writes the opportunities this batch placed or moved to `opportunity_partition`.
    fn write_opportunities(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let mut dirty: Vec<(&String, u32, i64)> = self
            .opportunities
            .iter()
            .filter(|(_, o)| o.2)
            .map(|(id, &(partition, at, _))| (id, partition, at))
            .collect();
        dirty.sort_unstable();
        insert_many(
            tx,
            (
                "INSERT OR REPLACE INTO opportunity_partition(opportunity, partition, at)",
                3,
                "",
            ),
            &dirty,
            |st, i, &(id, partition, at)| {
                st.raw_bind_parameter(i + 1, id)?;
                st.raw_bind_parameter(i + 2, self.partitions.name(partition))?;
                st.raw_bind_parameter(i + 3, at)
            },
        )
    }

    /// The routes this batch changed, in key order (so `person_partition` grows at its end
    /// instead of at random pages). Sorted on the thread pool: a load's 800k ids take a
    /// sixth of a second on one core, while the pool has nothing else to do yet.
    fn dirty_routes(&self) -> Vec<(&str, &Route)> {
        let mut dirty: Vec<(&str, &Route)> = self
            .people
            .iter()
            .filter(|(_, r)| r.dirty)
            .map(|(p, r)| (p.as_str(), r))
            .collect();
        dirty.par_sort_unstable_by(|a, b| a.0.cmp(b.0));
        dirty
    }

    /// Writes routes (from [`Router::dirty_routes`]) to `person_partition`.
    fn write_routes(
        &self,
        tx: &Transaction<'_>,
        routes: &[(&str, &Route)],
    ) -> Result<(), StoreError> {
        // Into an empty log, every route is new: a plain insert (no conflict to resolve).
        let conflict = if self.fresh {
            ""
        } else {
            " ON CONFLICT(person) DO UPDATE SET partition = excluded.partition, at = excluded.at,
                merged_into = COALESCE(excluded.merged_into, person_partition.merged_into)"
        };
        // `OR FAIL`: a failing statement fails the batch, so nothing needs to undo the rows it
        // wrote before the failure; with the default (`ABORT`) SQLite copies every page a
        // 64-row statement touches into a statement journal first.
        insert_many(
            tx,
            (
                "INSERT OR FAIL INTO person_partition(person, partition, at, merged_into)",
                4,
                conflict,
            ),
            routes,
            |st, i, &(person, route)| {
                st.raw_bind_parameter(i + 1, person)?;
                st.raw_bind_parameter(i + 2, self.partitions.name(route.partition))?;
                st.raw_bind_parameter(i + 3, route.at)?;
                st.raw_bind_parameter(i + 4, self.merged_into.get(person))
            },
        )
    }
}

/// Inserts `rows`, `ROWS_PER_INSERT` a statement: `insert` is the statement up to `VALUES`,
/// `columns` how many parameters a row has, and `tail` what follows the values (`ON CONFLICT
/// …`). `bind(statement, offset, row)` binds the row's parameters `offset + 1` to
/// `offset + columns`. Stepping, resetting and binding a
/// statement per row cost as much as inserting the row (800k routes on a first load).
fn insert_many<T>(
    tx: &Transaction<'_>,
    (insert, columns, tail): (&str, usize, &str),
    rows: &[T],
    mut bind: impl FnMut(&mut rusqlite::CachedStatement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let statement = |n: usize| {
        let row = format!("({})", vec!["?"; columns].join(", "));
        let values = vec![row.as_str(); n].join(", ");
        tx.prepare_cached(&format!("{insert} VALUES {values}{tail}"))
    };
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    let mut many = statement(ROWS_PER_INSERT)?;
    for chunk in chunks.by_ref() {
        for (i, row) in chunk.iter().enumerate() {
            bind(&mut many, i * columns, row)?;
        }
        many.raw_execute()?;
    }
    let mut one = statement(1)?;
    for row in chunks.remainder() {
        bind(&mut one, 0, row)?;
        one.raw_execute()?;
    }
    Ok(())
}

/// Rows one statement of [`insert_many`] writes (the rest one at a time).
const ROWS_PER_INSERT: usize = 64;

/// Events from which a batch into a stored log syncs its WAL in the background as it goes.
const LARGE_BATCH: usize = 100_000;

/// How much a batch holds in memory: the trade between speed and peak memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Bytes of encoded events a batch gathers in memory before it spills them to a temporary
    /// file (and reads them back when it derives), so a file of any size ingests in bounded
    /// memory. Two such arenas exist at most: one filling while the other is written.
    pub memory_bytes: usize,
    /// How many events (stored and new) are decoded and derived per pass at most (a partition
    /// is never split, so one larger than this is a pass of its own).
    pub events_per_pass: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            memory_bytes: 64 << 20,
            events_per_pass: 200_000,
        }
    }
}

/// One all-or-nothing ingest in progress: events are appended chunk by chunk (so a caller can
/// stream a large file and show progress), then [`Batch::finish`] re-derives the touched
/// partitions and commits. Dropping a batch without finishing it stores nothing.
pub struct Batch<'s> {
    tx: Transaction<'s>,
    model: &'s Model,
    router: Router,
    batch_start: u64,
    next_seq: u64,
    /// The appended events by partition index, in memory or spilled.
    pending: Pending,
    /// Events appended per partition index.
    appended: Vec<usize>,
    /// The log has erased events: each new id is checked against them.
    check_erased: bool,
    limits: BatchLimits,
    erasures: Vec<String>,
    /// What matching needs from this batch's events, saved when it finishes.
    observed: crate::matching::Observed,
    summary: IngestSummary,
    clock: PhaseClock,
}

impl Store {
    /// Appends events to the log (skipping ids already there) and re-derives every partition
    /// they touch, all in one transaction. Events must already be valid for `model`.
    ///
    /// The model is recorded as the database's model on first use; later ingests must use the
    /// same one (re-derive under another with [`Store::replay`]).
    pub fn ingest(
        &mut self,
        model: &Model,
        events: Vec<Event>,
        opts: IngestOptions,
    ) -> Result<IngestSummary, StoreError> {
        let mut batch = self.begin(model)?;
        batch.append(events)?;
        batch.finish(opts)
    }

    /// Starts an all-or-nothing ingest (see [`Batch`]).
    pub fn begin<'s>(&'s mut self, model: &'s Model) -> Result<Batch<'s>, StoreError> {
        let limits = self.limits;
        let spill_dir = self.dir.clone();
        self.start_bulk_load()?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Store::set_meta(&tx, "model_source", &model.source)?;
        Store::set_meta(&tx, "model_name", &model.name)?;
        let batch_start = next_seq(&tx)?;
        // On an empty log nothing needs looking up: every person and opportunity is new.
        let fresh = log_is_empty(&tx)?;
        let check_erased: bool =
            tx.query_row("SELECT EXISTS (SELECT 1 FROM erased_events)", [], |r| {
                r.get(0)
            })?;
        Ok(Batch {
            tx,
            model,
            router: Router {
                partitions: Partitions::default(),
                people: FxHashMap::default(),
                opportunities: FxHashMap::default(),
                moves: Vec::new(),
                merged_into: FxHashMap::default(),
                merged_from: FxHashMap::default(),
                contacts: FxHashMap::default(),
                claimed_by: FxHashMap::default(),
                deal_contacts: FxHashSet::default(),
                placed_by_deals: FxHashSet::default(),
                fresh,
            },
            batch_start,
            next_seq: batch_start,
            pending: Pending::new(limits.memory_bytes, spill_dir),
            appended: Vec::new(),
            check_erased,
            limits,
            erasures: Vec::new(),
            observed: Default::default(),
            summary: IngestSummary::default(),
            clock: PhaseClock::new(),
        })
    }
}

/// Moves the store to its next generation (see [`Store::generation`]): whatever was built
/// from the rows of the previous one is stale from this commit on.
fn next_generation(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('generation', '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    tx.execute("DELETE FROM stage_index", [])?;
    Ok(())
}

/// Whether nothing was ever stored: no events, and no person or opportunity routed.
pub(crate) fn log_is_empty(conn: &rusqlite::Connection) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM partition_events)
            AND NOT EXISTS (SELECT 1 FROM person_partition)
            AND NOT EXISTS (SELECT 1 FROM opportunity_partition)",
        [],
        |r| r.get(0),
    )?)
}

/// The sequence number the next ingested event gets.
fn next_seq(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let v: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    v.map_or(Ok(1), |v| {
        v.parse()
            .map_err(|_| StoreError::Corrupt(format!("next event sequence {v:?}")))
    })
}

impl Batch<'_> {
    /// Appends a chunk of events (in arrival order) to the batch.
    pub fn append(&mut self, events: impl IntoIterator<Item = Event>) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        for ev in events {
            bytes.clear();
            let attrs = ev.attrs_text();
            let record = ev.record(&attrs);
            record.write(&mut bytes);
            self.append_one(
                Some(&record),
                (record.at, record.route_key()),
                &bytes,
                Some(&ev),
            )?;
        }
        Ok(())
    }

    /// Appends events already in record form (in arrival order): `records` holds them one
    /// after another, as [`waterfall_core::parse_records`] makes them, and `routes`, when
    /// given, what routes each (noted as they were written: then they are not read back here).
    /// Events must already be valid for the batch's model. A stream that does not decode is an
    /// error, here (what routes a record is read at once) or when the batch finishes (every
    /// record is read whole), and nothing of the batch is stored.
    pub fn append_records(
        &mut self,
        mut records: &[u8],
        routes: Option<&RecordRoutes>,
    ) -> Result<(), StoreError> {
        let unnoted = RecordRoutes::default();
        let mut noted = routes.unwrap_or(&unnoted).iter();
        while !records.is_empty() {
            let (at, key, bytes) = match noted.next() {
                Some(NotedRoute {
                    at,
                    len,
                    key: Some(key),
                }) => {
                    let bytes = records.get(..len).ok_or_else(|| {
                        StoreError::Corrupt("a noted route longer than its records".into())
                    })?;
                    (at, key, bytes)
                }
                // Not noted (an opportunity's, or no notes given): read from the record.
                Some(NotedRoute { key: None, .. }) | None => {
                    let (at, key, rest) =
                        Record::read_route(records).map_err(StoreError::Corrupt)?;
                    (at, key, &records[..records.len() - rest.len()])
                }
            };
            self.append_routed(at, key, bytes)?;
            records = &records[bytes.len()..];
        }
        if noted.next().is_some() {
            return Err(StoreError::Corrupt("more noted routes than records".into()));
        }
        Ok(())
    }

    /// Appends one encoded record, routed by `(at, key)`.
    fn append_routed(
        &mut self,
        at: i64,
        key: RouteKey<'_>,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        // Most events need only their route: the whole record is read when its id must be
        // checked against erased ones, or matching observes it.
        let whole = self.check_erased
            || (self.model.matching.is_active()
                && matches!(
                    key,
                    RouteKey::Person { .. } | RouteKey::Account(_) | RouteKey::Merge { .. }
                ));
        if whole {
            let (record, _) = Record::read(bytes).map_err(StoreError::Corrupt)?;
            self.append_one(Some(&record), (at, key), bytes, None)
        } else {
            self.append_one(None, (at, key), bytes, None)
        }
    }

    /// Appends one event routed by `(at, key)`: `bytes` is its record encoded, `record` the
    /// record read whole and `event` the owned event, when at hand (the erased ids and
    /// matching need one of them).
    fn append_one(
        &mut self,
        record: Option<&Record<&str>>,
        (at, key): (i64, RouteKey<'_>),
        bytes: &[u8],
        event: Option<&Event>,
    ) -> Result<(), StoreError> {
        self.summary.received += 1;
        if self.check_erased {
            let id = record.map(|r| r.id).ok_or_else(|| {
                StoreError::Corrupt("an event to check against erased ones, unread".into())
            })?;
            if self.was_erased(id)? {
                self.summary.duplicates += 1;
                return Ok(());
            }
        }
        let partition = self.router.route(&self.tx, at, key, &self.observed)? as usize;
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(record) = record.filter(|r| {
            self.model.matching.is_active()
                && matches!(
                    r.body,
                    RecordBody::Person { .. }
                        | RecordBody::Account { .. }
                        | RecordBody::Merge { .. }
                )
        }) {
            match event {
                Some(ev) => self.observed.observe(ev),
                None => self.observed.observe(
                    &record
                        .clone()
                        .into_event()
                        .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", record.id)))?,
                ),
            }
        }
        if let RouteKey::Erase(person) = key {
            self.erasures.push(person.to_string());
        }
        if partition >= self.appended.len() {
            self.appended.resize(partition + 1, 0);
        }
        if self.appended[partition] == 0 {
            let name = self.router.partitions.name(partition as u32);
            self.pending.name_partition(partition as u32, name);
        }
        self.appended[partition] += 1;
        self.pending.push(partition as u32, seq, bytes)
    }

    /// Whether an event id belongs to an erased event (its re-ingestion stays a no-op).
    fn was_erased(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT 1 FROM erased_events WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Applies erasures, matching and moves, re-derives every touched partition and commits.
    /// Returns what the whole batch did.
    pub fn finish(self, opts: IngestOptions) -> Result<IngestSummary, StoreError> {
        self.finish_with(opts, None)
    }

    /// [`Batch::finish`], building the stage index with `index` in the same transaction when
    /// the batch derives every partition (a load into an empty database); see
    /// [`IngestSummary::stage_index`].
    pub fn finish_indexed(
        self,
        opts: IngestOptions,
        index: &mut dyn IndexBuilder,
    ) -> Result<IngestSummary, StoreError> {
        self.finish_with(opts, Some(index))
    }

    fn finish_with(
        mut self,
        opts: IngestOptions,
        index: Option<&mut dyn IndexBuilder>,
    ) -> Result<IngestSummary, StoreError> {
        // Another batch's partitions would be missing from an index built from this one's.
        let mut index = index.filter(|_| self.router.fresh);
        // A large batch into a stored log writes through the WAL (a first load has its own
        // writeback): to disk while the cores derive. Small batches (the API's) start no thread.
        let writeback = if !self.router.fresh && self.summary.received >= LARGE_BATCH {
            crate::wal_writeback(&self.tx)
        } else {
            None
        };
        let tx = &self.tx;
        let mut touched: FxHashSet<String> = FxHashSet::default();
        for (i, &n) in self.appended.iter().enumerate() {
            if n > 0 {
                touched.insert(self.router.partitions.name(i as u32).to_string());
            }
        }
        self.clock.lap("read+append");
        // Where matching looks for moves: only near what this batch changed, when the
        // decisions held before it (see `matching::decide`).
        let mut changed = None;
        if self.model.matching.is_active() {
            let observed = std::mem::take(&mut self.observed);
            if self.erasures.is_empty()
                && crate::matching::decisions_hold(tx, &self.model.matching)?
            {
                changed = Some(observed.people());
            }
            // A load into an empty log has no stored facts to merge with.
            observed.save(tx, self.router.fresh)?;
            self.clock.lap("matching facts");
        }
        crate::matching::facts_after_batch(tx, self.model.matching.is_active(), self.router.fresh)?;
        // This batch's opportunities and the contacts they name, before erasures look for
        // them.
        self.router.write_opportunities(tx)?;
        self.router.write_contacts(tx)?;
        let mut erased = FxHashSet::default();
        for person in std::mem::take(&mut self.erasures) {
            if !erased.insert(person.clone()) {
                continue;
            }
            self.summary.erased += 1;
            if let Some(route) = self.router.person(tx, &person)? {
                touched.insert(self.router.partitions.name(route.partition).to_string());
            }
            // The deals that name them as a contact, wherever they live, drop them too.
            let deals: Vec<String> = tx
                .prepare_cached(
                    "SELECT DISTINCT o.partition FROM deal_contacts c
                     JOIN opportunity_partition o ON o.opportunity = c.opportunity
                     WHERE c.person = ?1",
                )?
                .query_map([&person], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            touched.extend(deals);
            self.router.people.remove(person.as_str());
            self.router.contacts.remove(person.as_str());
            tx.execute("DELETE FROM person_partition WHERE person = ?1", [&person])?;
            crate::matching::forget(tx, &person)?;
        }
        if !erased.is_empty() {
            self.clock.lap("erasures");
        }
        // Nothing before the derivation reads the routes unless matching runs: then they are
        // written a share with each pass, while the workers derive, instead of while they wait.
        let defer_routes = crate::matching::is_inert(tx, &self.model.matching)?;
        if !defer_routes {
            self.router.write_routes(tx, &self.router.dirty_routes())?;
            self.clock.lap("routes");
        }
        // Matching and dedup may move people now that the whole batch is routed.
        // Routing moved people too (a group following the latest account its members named,
        // see `Router::settle_group`): they count as changed. A move of a whole partition
        // would move people no one observed: then everyone is checked.
        let changed = match changed {
            Some(mut people)
                if self
                    .router
                    .moves
                    .iter()
                    .all(|m| m.person.is_some() || m.opportunity.is_some()) =>
            {
                people.extend(self.router.moves.iter().filter_map(|m| m.person.clone()));
                Some(people)
            }
            _ => None,
        };
        // Routing placed contacts by the deals that named them; a dedup group it cannot move
        // whole is decided again (only its group, when the decisions held).
        let regroup = self.router.claimed_in_dedup_groups(tx)?;
        let reconciled =
            crate::matching::decide(tx, &self.model.matching, changed.as_ref(), &regroup)?;
        if !defer_routes {
            self.clock.lap("matching decisions");
        }
        let mut moves = std::mem::take(&mut self.router.moves);
        moves.extend(reconciled.moves);
        touched.extend(reconciled.touched);
        for m in &moves {
            touched.insert(m.from.clone());
            touched.insert(m.to.clone());
        }
        self.clock.lap("read+append");
        let batch_start = self.batch_start;
        let pending_of: FxHashMap<String, u32> = self
            .appended
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, _)| (self.router.partitions.name(i as u32).to_string(), i as u32))
            .collect();
        let appended: FxHashMap<&str, usize> = self
            .appended
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (self.router.partitions.name(i as u32), n))
            .collect();
        let mut sources = Sources {
            tx,
            pending: std::mem::replace(&mut self.pending, Pending::new(0, None)),
            pending_of,
            relocated: FxHashMap::default(),
            erased,
            batch_start,
            clear_derived: !self.router.fresh,
            log_empty: self.router.fresh,
        };
        sources.relocate(&moves)?;
        let mut touched: Vec<String> = touched.into_iter().collect();
        touched.sort_unstable();
        let sizes = touched
            .iter()
            .map(|p| {
                let stored = if self.router.fresh {
                    0
                } else {
                    stored_count(tx, p)?
                };
                Ok(stored + appended.get(p.as_str()).copied().unwrap_or(0))
            })
            .collect::<Result<Vec<usize>, StoreError>>()?;
        self.clock.lap("plan");
        let done = rederive(
            &mut sources,
            self.model,
            (&touched, &sizes),
            Derivation {
                opts,
                events_per_pass: self.limits.events_per_pass,
                routes: defer_routes.then_some(&self.router),
                index: index.as_deref_mut(),
            },
            &mut self.clock,
        )?;
        // The pending records' memory (the arena, the spill file) and the partition map (its
        // routes are written) are not needed any more: free them before the index is
        // finished, when memory peaks, and the pages it writes can reuse theirs.
        drop(sources);
        self.router.people = FxHashMap::default();
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('next_seq', ?1)",
            [self.next_seq.to_string()],
        )?;
        next_generation(tx)?;
        if let Some(index) = index {
            self.summary.stage_index = save_index(tx, index)?;
            self.clock.lap("stage index");
        }
        self.summary.duplicates += done.duplicates;
        self.summary.stored = self.summary.received - self.summary.duplicates;
        self.summary.partitions = done.partitions;
        self.summary.transitions = done.transitions;
        self.tx.commit()?;
        if let Some(writeback) = writeback {
            writeback.finish();
        }
        self.clock.lap("commit");
        self.summary.phases = self.clock.phases;
        Ok(self.summary)
    }
}

/// How many events a partition has stored.
fn stored_count(tx: &Transaction<'_>, partition: &str) -> Result<usize, StoreError> {
    let n: Option<i64> = tx
        .prepare_cached("SELECT count FROM partition_events WHERE partition = ?1")?
        .query_row([partition], |r| r.get(0))
        .optional()?;
    Ok(n.unwrap_or(0) as usize)
}

/// Where a derivation reads a partition's events: the stored stream, the open batch's
/// spilled chunks and in-memory buffers, or the partitions a move already assembled.
struct Sources<'t> {
    tx: &'t Transaction<'t>,
    pending: Pending,
    /// The partitions with events in `pending`, and their index there.
    pending_of: FxHashMap<String, u32>,
    /// Partitions assembled (decoded, deduplicated and moved between) before the passes.
    relocated: FxHashMap<String, Vec<SequencedEvent>>,
    /// People erased by this batch: their events are dropped (their ids kept).
    erased: FxHashSet<String>,
    /// The first sequence number of this batch (events from it on are new).
    batch_start: u64,
    /// Derived rows may exist for the partitions (false on a fresh load: nothing to delete).
    clear_derived: bool,
    /// The log was empty when the batch began: no partition has a stored stream to read.
    log_empty: bool,
}

/// A partition as read, before decoding.
struct RawPartition {
    name: String,
    /// The stored stream, packed (see `body::pack`).
    stored: Option<Vec<u8>>,
    /// This batch's events, as a record stream: spilled ones first, then those in memory.
    fresh: Vec<u8>,
    /// Events already decoded (a partition a move assembled), instead of the streams.
    decoded: Option<Vec<SequencedEvent>>,
    /// Whether the stored stream must be rewritten even if nothing is dropped.
    changed: bool,
    /// About how many events it holds (stored and appended), to size what is read into.
    events: usize,
}

impl RawPartition {
    /// The partition's whole record stream: stored, then this batch's.
    fn stream(self) -> Result<Vec<u8>, StoreError> {
        Ok(match self.stored {
            Some(packed) => {
                let mut out = crate::body::unpack(&packed)?;
                out.extend_from_slice(&self.fresh);
                out
            }
            None => self.fresh,
        })
    }

    /// The partition's events, in stored order.
    fn events(self) -> Result<Vec<SequencedEvent>, StoreError> {
        match self.decoded {
            Some(events) => Ok(events),
            None => crate::body::decode_records(&self.stream()?),
        }
    }
}

impl Sources<'_> {
    /// Reads a partition's streams (`events`: about how many it holds, 0 if unknown).
    fn raw(&mut self, name: &str, events: usize) -> Result<RawPartition, StoreError> {
        if let Some(decoded) = self.relocated.remove(name) {
            return Ok(RawPartition {
                name: name.to_string(),
                stored: None,
                fresh: Vec::new(),
                events: decoded.len(),
                decoded: Some(decoded),
                changed: true,
            });
        }
        let stored: Option<Vec<u8>> = if self.log_empty {
            None
        } else {
            self.tx
                .prepare_cached("SELECT data FROM partition_events WHERE partition = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?
        };
        let mut fresh = Vec::new();
        let changed = match self.pending_of.remove(name) {
            Some(i) => {
                self.pending.take(i, &mut fresh)?;
                true
            }
            None => false,
        };
        Ok(RawPartition {
            name: name.to_string(),
            stored,
            fresh,
            decoded: None,
            changed,
            events,
        })
    }

    /// Assembles the partitions that moves touch and applies the moves, in order.
    fn relocate(&mut self, moves: &[Move]) -> Result<(), StoreError> {
        for m in moves {
            for name in [&m.from, &m.to] {
                if !self.relocated.contains_key(name) {
                    // Decoded only: duplicates and erasures are cleaned when it is derived.
                    let events = self.raw(name, 0)?.events()?;
                    self.relocated.insert(name.clone(), events);
                }
            }
            let from = self.relocated.get_mut(&m.from).expect("loaded above");
            let (moving, staying): (Vec<_>, Vec<_>) =
                std::mem::take(from)
                    .into_iter()
                    .partition(|e| match (&m.person, &m.opportunity) {
                        (Some(p), _) => e.event.body.person() == Some(p.as_str()),
                        (None, Some(o)) => matches!(
                            &e.event.body,
                            EventBody::Opportunity { opportunity, .. } if opportunity == o
                        ),
                        (None, None) => true,
                    });
            *from = staying;
            self.relocated
                .get_mut(&m.to)
                .expect("loaded above")
                .extend(moving);
        }
        for events in self.relocated.values_mut() {
            events.sort_unstable_by_key(|e| e.seq);
        }
        Ok(())
    }
}

/// Drops repeated ids (keeping the first by sequence) and erased people's events, and takes
/// erased people off deals' contacts.
fn clean(
    events: &mut Vec<SequencedRecord<'_>>,
    erased: &FxHashSet<String>,
    batch_start: u64,
) -> Cleaned {
    events.sort_unstable_by_key(|e| e.seq);
    let mut keep = vec![true; events.len()];
    let mut duplicates = 0;
    let mut erased_ids = Vec::new();
    {
        let mut seen: FxHashSet<&str> =
            FxHashSet::with_capacity_and_hasher(events.len(), Default::default());
        for (i, e) in events.iter().enumerate() {
            if !seen.insert(e.record.id) {
                keep[i] = false;
                if e.seq >= batch_start {
                    duplicates += 1;
                }
            } else if !erased.is_empty() && e.record.person().is_some_and(|p| erased.contains(*p)) {
                keep[i] = false;
                erased_ids.push(e.record.id.to_string());
            }
        }
    }
    if keep.iter().any(|k| !k) {
        let mut flags = keep.into_iter();
        events.retain(|_| flags.next().unwrap_or(true));
    }
    // An erased person leaves no trace: not even as a deal's contact.
    let mut scrubbed = false;
    if !erased.is_empty() {
        for e in events.iter_mut() {
            if let RecordBody::Opportunity {
                contacts: Some(contacts),
                ..
            } = &mut e.record.body
            {
                let before = contacts.len();
                contacts.retain(|c| !erased.contains(&c.person));
                scrubbed |= contacts.len() != before;
            }
        }
    }
    Cleaned {
        duplicates,
        erased_ids,
        scrubbed,
    }
}

/// What [`clean`] took out of a partition's events.
struct Cleaned {
    /// Repeats of an event id (this batch's count in the summary).
    duplicates: usize,
    /// The ids of the erased people's events, dropped.
    erased_ids: Vec<String>,
    /// Whether erased people were taken off deals' contacts (the events stay).
    scrubbed: bool,
}

impl Store {
    /// Re-derives every partition from the event log under `model` (after a model change),
    /// and records `model` as the database's model. One transaction: all or nothing.
    pub fn replay(
        &mut self,
        model: &Model,
        opts: IngestOptions,
    ) -> Result<IngestSummary, StoreError> {
        self.replay_with(model, opts, None)
    }

    /// [`Store::replay`], building the stage index with `index` in the same transaction.
    pub fn replay_indexed(
        &mut self,
        model: &Model,
        opts: IngestOptions,
        index: &mut dyn IndexBuilder,
    ) -> Result<IngestSummary, StoreError> {
        self.replay_with(model, opts, Some(index))
    }

    fn replay_with(
        &mut self,
        model: &Model,
        opts: IngestOptions,
        mut index: Option<&mut dyn IndexBuilder>,
    ) -> Result<IngestSummary, StoreError> {
        let limits = self.limits;
        self.end_bulk_load()?;
        // The WAL grows by hundreds of megabytes: to disk while the cores derive, not after.
        let writeback = crate::wal_writeback(&self.conn);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Store::set_meta(&tx, "model_source", &model.source)?;
        Store::set_meta(&tx, "model_name", &model.name)?;
        let mut clock = PhaseClock::new();
        let reconciled =
            crate::matching::before_replay(&tx, &model.matching, &mut |p| clock.lap(p))?;
        let mut partitions: FxHashMap<String, usize> = {
            let mut st = tx.prepare("SELECT partition, count FROM partition_events")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?;
            rows.collect::<Result<_, _>>()?
        };
        for p in reconciled.touched {
            partitions.entry(p).or_insert(0);
        }
        // Every partition is derived again: the derived tables are emptied at once rather
        // than partition by partition.
        tx.execute_batch(
            "DELETE FROM transitions; DELETE FROM partition_people;
             DELETE FROM accounts; DELETE FROM rejections;",
        )?;
        let mut sources = Sources {
            tx: &tx,
            pending: Pending::new(0, None),
            pending_of: FxHashMap::default(),
            relocated: FxHashMap::default(),
            erased: FxHashSet::default(),
            batch_start: u64::MAX,
            clear_derived: false,
            log_empty: false,
        };
        sources.relocate(&reconciled.moves)?;
        let mut partitions: Vec<(String, usize)> = partitions.into_iter().collect();
        partitions.sort_unstable();
        let (names, sizes): (Vec<String>, Vec<usize>) = partitions.into_iter().unzip();
        let how = Derivation {
            opts,
            events_per_pass: limits.events_per_pass,
            routes: None,
            index: index.as_deref_mut(),
        };
        let done = rederive(&mut sources, model, (&names, &sizes), how, &mut clock)?;
        drop(sources);
        next_generation(&tx)?;
        let stage_index = match index {
            Some(index) => save_index(&tx, index)?,
            None => false,
        };
        clock.lap("stage index");
        tx.commit()?;
        if let Some(writeback) = writeback {
            writeback.finish();
        }
        clock.lap("commit");
        Ok(IngestSummary {
            received: done.events,
            partitions: done.partitions,
            transitions: done.transitions,
            stage_index,
            phases: clock.phases,
            ..Default::default()
        })
    }

    /// For each stored partition, the contacts its deals name who live in another partition:
    /// a derivation of it leaves them to their own (see
    /// [`waterfall_engine::derive_records_with`]), as stored derivations do. `partition`:
    /// that one only.
    pub fn contacts_elsewhere(
        &self,
        partition: Option<&str>,
    ) -> Result<FxHashMap<String, FxHashSet<String>>, StoreError> {
        let only: Option<FxHashSet<&str>> = partition.map(|p| [p].into_iter().collect());
        contacts_elsewhere(&self.conn, only.as_ref(), None)
    }

    /// Loads every partition, by name, with its events in derivation order (for impact
    /// analysis and tests). A derivation of one keeps only its own account (see
    /// [`waterfall_engine::Derived::keep_own_account`]), as stored derivations do.
    pub fn all_partitions(&self) -> Result<Vec<(String, Vec<SequencedEvent>)>, StoreError> {
        let mut all = load_all(&self.conn)?;
        crate::matching::adjust(&self.conn, &mut all)?;
        Ok(all)
    }
}

/// Observes every stored event for matching (see [`crate::matching::Observed`]), a slice of
/// partitions at a time on all cores.
pub(crate) fn observe_log(
    conn: &rusqlite::Connection,
) -> Result<crate::matching::Observed, StoreError> {
    let mut all = crate::matching::Observed::default();
    let mut st = conn.prepare("SELECT data FROM partition_events")?;
    let mut rows = st.query([])?;
    let mut slice: Vec<Vec<u8>> = Vec::new();
    let mut done = false;
    while !done {
        match rows.next()? {
            Some(r) => slice.push(r.get(0)?),
            None => done = true,
        }
        if slice.len() == 4096 || (done && !slice.is_empty()) {
            let observed = std::mem::take(&mut slice)
                .into_par_iter()
                .try_fold(crate::matching::Observed::default, |mut o, packed| {
                    let stream = crate::body::unpack(&packed)?;
                    for e in crate::body::decode_identity_events(&stream)? {
                        o.observe(&e);
                    }
                    Ok::<_, StoreError>(o)
                })
                .try_reduce(crate::matching::Observed::default, |mut a, b| {
                    a.merge(b);
                    Ok(a)
                })?;
            all.merge(observed);
        }
    }
    Ok(all)
}

/// Every stored partition with its events sorted by (`at`, `seq`), by partition name.
pub(crate) fn load_all(
    conn: &rusqlite::Connection,
) -> Result<Vec<(String, Vec<SequencedEvent>)>, StoreError> {
    let raw: Vec<(String, Vec<u8>)> = {
        let mut st =
            conn.prepare("SELECT partition, data FROM partition_events ORDER BY partition")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    raw.into_par_iter()
        .map(|(name, packed)| {
            let mut events = crate::body::decode_records(&crate::body::unpack(&packed)?)?;
            waterfall_engine::sort_for_derivation(&mut events);
            Ok((name, events))
        })
        .collect()
}

/// How a re-derivation runs: up to which instant, and how many events per pass.
struct Derivation<'r, 'i> {
    opts: IngestOptions,
    events_per_pass: usize,
    /// Routes still to write, a share while each pass derives.
    routes: Option<&'r Router>,
    /// Fed every partition's transitions as they are written.
    index: Option<&'r mut (dyn IndexBuilder + 'i)>,
}

/// What a re-derivation did.
#[derive(Debug, Default)]
struct Rederived {
    partitions: usize,
    events: usize,
    transitions: usize,
    duplicates: usize,
}

/// A partition's derived rows as stored, encoded on the worker threads (which also free
/// what derivation built, so the writing thread only writes).
struct DerivedRows {
    /// The transitions, encoded as a table (empty when there are none), and how many.
    table: (Vec<u8>, usize),
    /// How many people and accounts the partition has.
    subjects: usize,
    /// The people, packed (see `people.rs`), and how many are not merged away.
    people: (Vec<u8>, usize),
    /// Each account's id, attributes, type and opportunities.
    accounts: Vec<(String, String, Option<String>, String)>,
    rejections: Vec<waterfall_engine::Rejection>,
}

impl DerivedRows {
    fn of(d: Derived) -> Result<DerivedRows, StoreError> {
        let text =
            |r: serde_json::Result<String>| r.map_err(|e| StoreError::Corrupt(e.to_string()));
        let table = if d.transitions.is_empty() {
            Vec::new()
        } else {
            TransitionTable::encode(&d.transitions)
        };
        let people = if d.people.is_empty() {
            Vec::new()
        } else {
            // Text the engine kept unparsed is written as it is.
            let attrs: Vec<std::borrow::Cow<'_, str>> = d
                .people
                .iter()
                .map(|p| match &p.attrs_text {
                    Some(t) => Ok(std::borrow::Cow::Borrowed(t.as_str())),
                    None => text(serde_json::to_string(&p.attrs)).map(std::borrow::Cow::Owned),
                })
                .collect::<Result<_, _>>()?;
            let stored: Vec<crate::people::StoredPerson<'_>> = d
                .people
                .iter()
                .zip(&attrs)
                .map(|(p, a)| crate::people::StoredPerson::of(p, a))
                .collect();
            crate::people::encode(&stored)
        };
        let subjects = d.people.len() + d.accounts.len();
        let accounts = d
            .accounts
            .into_iter()
            .map(|a| {
                let attrs = text(serde_json::to_string(&a.attrs))?;
                let opportunities = text(serde_json::to_string(&a.opportunities))?;
                Ok((a.id, attrs, a.account_type, opportunities))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(DerivedRows {
            table: (table, d.transitions.len()),
            subjects,
            people: (
                people,
                d.people.iter().filter(|p| p.merged_into.is_none()).count(),
            ),
            accounts,
            rejections: d.rejections,
        })
    }
}

/// One partition, derived and ready to write.
struct Processed {
    /// The packed stream to store, when it changed, and how many events it holds.
    stream: (Option<Vec<u8>>, usize),
    duplicates: usize,
    erased_ids: Vec<String>,
    /// Events derived (matching's automatic merges included).
    events: usize,
    rows: DerivedRows,
}

/// Decodes, cleans, adjusts and derives one partition: everything but storage, on any thread.
///
/// The records borrow the partition's stream (or, for a partition a move assembled, its owned
/// events and their attributes' text): no owned event is built per record. The first event of
/// each id (by sequence) is kept, erased people's events are dropped, and the stream is
/// rewritten when that changed it.
fn process(
    raw: RawPartition,
    context: &PassContext<'_>,
) -> Result<(String, Processed), StoreError> {
    let (name, changed, raw_events) = (raw.name.clone(), raw.changed, raw.events);
    // The stored and appended stream, or (a partition a move assembled) owned events.
    let (bytes, owned) = match raw.decoded {
        Some(events) => (None, events),
        None => (Some(raw.stream()?), Vec::new()),
    };
    let texts: Vec<String> = owned.iter().map(|e| e.event.attrs_text()).collect();
    let mut events: Vec<SequencedRecord<'_>> = match &bytes {
        Some(bytes) => crate::body::read_records(bytes, raw_events)?,
        None => owned
            .iter()
            .zip(&texts)
            .map(|(e, t)| SequencedRecord::of(e, t))
            .collect(),
    };
    let Cleaned {
        duplicates,
        erased_ids,
        scrubbed,
    } = clean(&mut events, context.erased, context.batch_start);
    let rewritten = duplicates > 0 || !erased_ids.is_empty() || scrubbed;
    let stream = match &bytes {
        Some(bytes) if changed && !rewritten => Some(crate::body::pack(bytes)),
        _ if changed || bytes.is_none() || rewritten => {
            let mut out = Vec::new();
            for e in &events {
                crate::body::append_sequenced(&mut out, e);
            }
            Some(if out.is_empty() {
                out
            } else {
                crate::body::pack(&out)
            })
        }
        _ => None,
    };
    let stream = (stream, events.len());
    // Matched accounts and automatic merges are applied as the partitions are read.
    let merges = context.adjustments.apply(&name, &mut events);
    let ordered = merges
        .iter()
        .chain(waterfall_engine::in_derivation_order(&events));
    let none = FxHashSet::default();
    let elsewhere = context.elsewhere.get(&name).unwrap_or(&none);
    let mut derived = derive_records_with(context.model, ordered, context.opts, elsewhere);
    derived.keep_own_account(&name);
    let events = events.len();
    Ok((
        name,
        Processed {
            stream,
            duplicates,
            erased_ids,
            events,
            rows: DerivedRows::of(derived)?,
        },
    ))
}

/// For each partition (of `only`, if given), the contacts its deals name who live in another
/// partition: another account's people, whom the engine leaves to their own partition (see
/// `waterfall_engine::derive_records_with`). Where people live is the partition map's, or,
/// while a batch still holds routes it has not written, the batch's (`routes`).
fn contacts_elsewhere(
    conn: &rusqlite::Connection,
    only: Option<&FxHashSet<&str>>,
    routes: Option<&Router>,
) -> Result<FxHashMap<String, FxHashSet<String>>, StoreError> {
    let mut out: FxHashMap<String, FxHashSet<String>> = FxHashMap::default();
    // Each row: the deal's partition, a contact it names, where the contact lives (stored).
    let mut note = |row: &rusqlite::Row<'_>| -> Result<(), StoreError> {
        let deal = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        let person = row.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        let routed = routes.and_then(|router| {
            let route = router.people.get(person)?;
            Some(router.partitions.name(route.partition))
        });
        let stored = row
            .get_ref(2)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?;
        if routed.or(stored).is_some_and(|lives| lives != deal) {
            out.entry(deal.to_string())
                .or_default()
                .insert(person.to_string());
        }
        Ok(())
    };
    const SELECT: &str = "SELECT o.partition, c.person, p.partition FROM opportunity_partition o
         JOIN deal_contacts c ON c.opportunity = o.opportunity
         LEFT JOIN person_partition p ON p.person = c.person";
    match only {
        // A few partitions (a small batch, one `show`): their deals only, by index.
        Some(only) if only.len() <= 256 => {
            let mut st = conn.prepare_cached(&format!("{SELECT} WHERE o.partition = ?1"))?;
            for partition in only {
                let mut rows = st.query([partition])?;
                while let Some(row) = rows.next()? {
                    note(row)?;
                }
            }
        }
        _ => {
            let mut st = conn.prepare_cached(SELECT)?;
            let mut rows = st.query([])?;
            while let Some(row) = rows.next()? {
                let deal = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                if only.is_none_or(|only| only.contains(deal)) {
                    note(row)?;
                }
            }
        }
    }
    Ok(out)
}

/// What every partition of a re-derivation shares.
struct PassContext<'a> {
    model: &'a Model,
    opts: DeriveOptions,
    erased: &'a FxHashSet<String>,
    batch_start: u64,
    adjustments: &'a crate::matching::Adjustments,
    /// By partition: the contacts its deals name who live elsewhere (see
    /// [`contacts_elsewhere`]).
    elsewhere: &'a FxHashMap<String, FxHashSet<String>>,
}

/// Re-derives the given partitions (with their approximate event counts) in passes, and
/// replaces their streams (when changed) and derived rows.
///
/// Passes overlap: while the worker threads derive one pass, this thread writes the previous
/// one and reads the next, so storage and derivation run side by side.
fn rederive(
    sources: &mut Sources<'_>,
    model: &Model,
    (names, sizes): (&[String], &[usize]),
    how: Derivation<'_, '_>,
    clock: &mut PhaseClock,
) -> Result<Rederived, StoreError> {
    let tx = sources.tx;
    let adjustments = crate::matching::Adjustments::load(tx)?;
    let wanted: FxHashSet<&str> = names.iter().map(String::as_str).collect();
    let elsewhere = contacts_elsewhere(tx, Some(&wanted), how.routes)?;
    let erased = std::mem::take(&mut sources.erased);
    let context = PassContext {
        model,
        // The people rows hold attributes as text: the engine need not parse them for us.
        opts: DeriveOptions {
            horizon: how.opts.horizon,
            attrs_as_text: true,
        },
        erased: &erased,
        batch_start: sources.batch_start,
        adjustments: &adjustments,
        elsewhere: &elsewhere,
    };
    // A pass at a time, so memory stays bounded however many events a batch touches.
    let mut passes = Vec::new();
    let mut start = 0;
    while start < names.len() {
        let mut end = start;
        let mut events = 0;
        while end < names.len() && (end == start || events + sizes[end] <= how.events_per_pass) {
            events += sizes[end];
            end += 1;
        }
        passes.push(start..end);
        start = end;
    }
    let mut done = Rederived::default();
    let read = |sources: &mut Sources<'_>, i: usize| -> Result<Vec<RawPartition>, StoreError> {
        passes.get(i).map_or(Ok(Vec::new()), |r| {
            // The pass's spilled records in a few large reads, not one per partition and spill.
            let pending: Vec<u32> = r
                .clone()
                .filter_map(|i| sources.pending_of.get(names[i].as_str()).copied())
                .collect();
            sources.pending.prefetch(&pending)?;
            r.clone()
                .map(|i| sources.raw(&names[i], sizes[i]))
                .collect()
        })
    };
    let mut index = how.index;
    let routes = how.routes.map(Router::dirty_routes).unwrap_or_default();
    let mut written: Vec<(String, Processed)> = Vec::new();
    let context = &context;
    std::thread::scope(|s| -> Result<(), StoreError> {
        // The workers take pass after pass from `raw` and hand back each derived pass, so
        // they never wait for this thread, which meanwhile writes the pass before and reads
        // the one after next. On an error here, the channels close and the worker stops.
        let (raw, to_derive) = std::sync::mpsc::sync_channel::<Vec<RawPartition>>(1);
        let (derived, from_workers) = std::sync::mpsc::sync_channel(1);
        s.spawn(move || {
            for pass in to_derive {
                let processed = pass
                    .into_par_iter()
                    .map(|r| process(r, context))
                    .collect::<Result<Vec<_>, StoreError>>();
                if derived.send(processed).is_err() {
                    break;
                }
            }
        });
        let mut read_ahead = 0..passes.len();
        let mut feed = |sources: &mut Sources<'_>| -> Result<(), StoreError> {
            if let Some(i) = read_ahead.next() {
                // Only a stopped worker closes the channel: its error is then waiting below.
                let _ = raw.send(read(sources, i)?);
            }
            Ok(())
        };
        feed(sources)?;
        feed(sources)?;
        for i in 0..passes.len() {
            if let Some(router) = how.routes {
                // A share of the routes with every pass, so no pass waits for all of them.
                let share = |i: usize| routes.len() * i / passes.len();
                router.write_routes(tx, &routes[share(i)..share(i + 1)])?;
            }
            write_pass(
                tx,
                std::mem::take(&mut written),
                (sources.clear_derived, &mut index),
                &mut done,
            )?;
            written = from_workers
                .recv()
                .expect("derivation threads do not panic")?;
            clock.lap("derive");
            feed(sources)?;
        }
        Ok(())
    })?;
    if let (Some(router), true) = (how.routes, passes.is_empty()) {
        router.write_routes(tx, &routes)?;
    }
    write_pass(tx, written, (sources.clear_derived, &mut index), &mut done)?;
    clock.lap("write");
    Ok(done)
}

/// Writes a derived pass: streams, erased ids and derived rows (and hands the transitions to
/// the index builder, if any).
fn write_pass<'i>(
    tx: &Transaction<'_>,
    pass: Vec<(String, Processed)>,
    (clear_derived, index): (bool, &mut Option<&mut (dyn IndexBuilder + 'i)>),
    done: &mut Rederived,
) -> Result<(), StoreError> {
    for (partition, p) in pass {
        done.duplicates += p.duplicates;
        done.events += p.events;
        done.partitions += 1;
        if !p.erased_ids.is_empty() {
            let mut ins =
                tx.prepare_cached("INSERT OR IGNORE INTO erased_events(id) VALUES (?1)")?;
            for id in &p.erased_ids {
                ins.execute([id])?;
            }
        }
        write_stream(tx, &partition, p.stream.0, p.stream.1)?;
        if clear_derived {
            for table in ["transitions", "partition_people", "accounts", "rejections"] {
                tx.prepare_cached(&format!("DELETE FROM {table} WHERE partition = ?1"))?
                    .execute([&partition])?;
            }
        }
        done.transitions += write_derived(tx, &partition, &p.rows)?;
        if let Some(index) = index {
            if !p.rows.table.0.is_empty() {
                let table = TransitionTable::decode(&p.rows.table.0)
                    .map_err(|e| StoreError::Corrupt(format!("{partition}: {e}")))?;
                index.add(&table);
            }
        }
    }
    Ok(())
}

/// Saves the stage index `index` built, for the generation this transaction moves to.
fn save_index(tx: &Transaction<'_>, index: &mut dyn IndexBuilder) -> Result<bool, StoreError> {
    let Some((names, entries)) = index.finish() else {
        return Ok(false);
    };
    let generation = crate::query::generation_of(tx)?;
    crate::query::write_stage_index(tx, generation, (&names, &entries))?;
    Ok(true)
}

/// Replaces a partition's stored stream (`None`: unchanged).
fn write_stream(
    tx: &Transaction<'_>,
    partition: &str,
    stream: Option<Vec<u8>>,
    count: usize,
) -> Result<(), StoreError> {
    match stream {
        None => {}
        Some(data) if data.is_empty() => {
            tx.prepare_cached("DELETE FROM partition_events WHERE partition = ?1")?
                .execute([partition])?;
        }
        Some(data) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO partition_events(partition, count, data) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![partition, count as i64, data])?;
        }
    }
    Ok(())
}

/// Writes a partition's derived rows (its old ones are already gone).
fn write_derived(
    tx: &Transaction<'_>,
    partition: &str,
    rows: &DerivedRows,
) -> Result<usize, StoreError> {
    let (table, transitions) = (&rows.table.0, rows.table.1);
    if transitions > 0 {
        tx.prepare_cached(
            "INSERT INTO transitions(partition, count, subjects, data) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            partition,
            transitions as i64,
            rows.subjects as i64,
            table
        ])?;
    }
    let (people, live) = (&rows.people.0, rows.people.1);
    if !people.is_empty() {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO partition_people(partition, count, data) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![partition, live as i64, people])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT OR REPLACE INTO accounts(id, partition, attrs, account_type, opportunities) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (id, attrs, account_type, opportunities) in &rows.accounts {
        ins.execute(params![id, partition, attrs, account_type, opportunities])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO rejections(partition, event_id, at, reason) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for r in &rows.rejections {
        ins.execute(params![partition, r.event, r.at.0, r.reason])?;
    }
    Ok(transitions)
}
