//! Lead-to-account matching and person dedup, where events are routed to partitions.
//!
//! Matching decides partitions, so it lives in the store, next to routing, and follows the
//! same rule as everything else: its decisions are a function of the event log and the
//! model, never of arrival order. It works in three steps:
//!
//! 1. **Observe** (per new event, while routing): keep the *facts* matching needs, each
//!    "latest by (instant, event id)" or a set, so they do not depend on arrival order:
//!    people's email, company, explicit account and creation instant (`match_people`), and
//!    every name and domain each account has had (`match_accounts`, `match_account_keys`).
//! 2. **Reconcile** (once per batch, after routing): recompute from all facts who is a
//!    duplicate of whom and which account each person without an explicit one matches;
//!    move people whose partition changed and record the decisions (`person_matches`,
//!    `person_duplicates`). An account named by the person's own events always wins.
//! 3. **Adjust** (at derivation): a matched person's `person` events get the matched
//!    account, and each duplicate gets a synthetic `merge` into its survivor (id
//!    `auto-merge:<dup>:<survivor>`). Nothing synthetic is written to the log, so a decision
//!    that changes later (an email corrected, an account renamed) is simply recomputed.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use waterfall_core::{Event, EventBody, Record, RecordBody, Timestamp};
use waterfall_engine::{SequencedEvent, SequencedRecord};
use waterfall_match::{
    match_person, AccountIndex, AccountRecord, MatchPolicy, PersonFacts, PersonIndex,
};

use crate::ingest::Move;
use crate::{Store, StoreError};

/// One value that keeps the latest offer by (instant, event id).
#[derive(Debug, Clone, Default)]
struct Latest {
    value: Option<String>,
    at: i64,
    ev: String,
}

impl Latest {
    fn offer(&mut self, value: &str, at: i64, ev: &str) {
        if self.value.is_none() || (at, ev) > (self.at, self.ev.as_str()) {
            self.value = Some(value.to_string());
            self.at = at;
            self.ev = ev.to_string();
        }
    }

    fn read(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Latest> {
        Ok(Latest {
            value: r.get(i)?,
            at: r.get::<_, Option<i64>>(i + 1)?.unwrap_or(0),
            ev: r.get::<_, Option<String>>(i + 2)?.unwrap_or_default(),
        })
    }

    fn merge(&mut self, other: &Latest) {
        if let Some(v) = &other.value {
            self.offer(v, other.at, &other.ev);
        }
    }
}

/// What matching knows about one person.
#[derive(Debug, Clone)]
struct PersonFact {
    person: String,
    created_at: i64,
    email: Latest,
    company: Latest,
    account: Latest,
    /// Merged away by an explicit `merge` event: routing follows the event, not matching.
    merged: bool,
}

impl PersonFact {
    /// Nothing known yet about `person`.
    fn new(person: &str) -> Self {
        PersonFact {
            person: person.to_string(),
            created_at: i64::MAX,
            email: Latest::default(),
            company: Latest::default(),
            account: Latest::default(),
            merged: false,
        }
    }
}

/// The columns of `match_people`, in the order rows are read and written.
macro_rules! person_fact_columns {
    () => {
        "person, created_at, email, email_at, email_ev, company, company_at, company_ev, account, account_at, account_ev, merged"
    };
}
const PERSON_FACT_COLUMNS: &str = person_fact_columns!();
/// Writes a row of `match_people`.
const SAVE_PERSON_FACT: &str = concat!(
    "INSERT OR REPLACE INTO match_people(",
    person_fact_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
);
/// Reads a person's row of `match_people`.
const LOAD_PERSON_FACT: &str = concat!(
    "SELECT ",
    person_fact_columns!(),
    " FROM match_people WHERE person = ?1"
);

fn person_fact(r: &rusqlite::Row<'_>) -> rusqlite::Result<PersonFact> {
    Ok(PersonFact {
        person: r.get(0)?,
        created_at: r.get(1)?,
        email: Latest::read(r, 2)?,
        company: Latest::read(r, 5)?,
        account: Latest::read(r, 8)?,
        merged: r.get(11)?,
    })
}

fn load_person_fact(tx: &Transaction<'_>, person: &str) -> Result<PersonFact, StoreError> {
    Ok(tx
        .prepare_cached(LOAD_PERSON_FACT)?
        .query_row([person], person_fact)
        .optional()?
        .unwrap_or_else(|| PersonFact::new(person)))
}

/// Writes a person's facts with `insert` (a statement of [`SAVE_PERSON_FACT`]).
fn save_person_fact(
    insert: &mut rusqlite::Statement<'_>,
    f: &PersonFact,
) -> Result<(), StoreError> {
    insert.execute(params![
        f.person,
        f.created_at,
        f.email.value,
        f.email.at,
        f.email.ev,
        f.company.value,
        f.company.at,
        f.company.ev,
        f.account.value,
        f.account.at,
        f.account.ev,
        f.merged
    ])?;
    Ok(())
}

fn attr_str<'a>(attrs: &'a waterfall_core::Attrs, key: &str) -> Option<&'a str> {
    attrs
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An account's facts: when it was first seen, and its latest name and size.
#[derive(Debug, Clone)]
struct AccountFact {
    first_at: i64,
    name: Latest,
    employees: Latest,
}

impl Default for AccountFact {
    fn default() -> Self {
        AccountFact {
            first_at: i64::MAX,
            name: Latest::default(),
            employees: Latest::default(),
        }
    }
}

/// Step 1: what matching needs from events, gathered in memory and merged into the stored
/// facts once ([`Observed::save`]). Every fact is order-independent (earliest instant, latest
/// value by (instant, event id), union of keys), so events may be observed in any order, on
/// any thread, and two `Observed` merge into one.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Boxed: a fact is large, and the map grows to every person in the log.
    people: FxHashMap<String, Box<PersonFact>>,
    accounts: FxHashMap<String, AccountFact>,
    keys: FxHashSet<(String, &'static str, String)>,
    /// The survivors of observed merges (their facts do not change, but their group may).
    merge_targets: FxHashSet<String>,
}

impl Observed {
    /// What the facts say of the account `person` last named in their own `person` events:
    /// `None` when they know nothing of the person (no `person` event of theirs was stored
    /// under a matching model), else the account and when (the later of this batch's and
    /// the stored fact), or `Some(None)` when the person never named one.
    pub(crate) fn own_account(
        &self,
        tx: &Transaction<'_>,
        person: &str,
    ) -> Result<Option<Option<(String, i64)>>, StoreError> {
        let stored = tx
            .prepare_cached(
                "SELECT account, account_at, account_ev FROM match_people WHERE person = ?1",
            )?
            .query_row([person], |r| Latest::read(r, 0))
            .optional()?;
        let observed = self.people.get(person);
        if stored.is_none() && observed.is_none() {
            return Ok(None);
        }
        let mut latest = stored.unwrap_or_default();
        if let Some(f) = observed {
            latest.merge(&f.account);
        }
        Ok(Some(latest.value.map(|a| (a, latest.at))))
    }

    /// Records what matching needs from one event.
    pub(crate) fn observe(&mut self, ev: &Event) {
        let at = ev.at.0;
        match &ev.body {
            EventBody::Person {
                person,
                account,
                attrs,
            } => {
                let f = self.person(person);
                f.created_at = f.created_at.min(at);
                if let Some(e) = attr_str(attrs, "email") {
                    f.email.offer(e, at, &ev.id);
                }
                if let Some(c) = attr_str(attrs, "company") {
                    f.company.offer(c, at, &ev.id);
                }
                if let Some(a) = account {
                    f.account.offer(a, at, &ev.id);
                }
            }
            EventBody::Merge { person, into } => {
                self.person(person).merged = true;
                self.merge_targets.insert(into.clone());
            }
            EventBody::Account { account, attrs } => {
                let f = self.accounts.entry(account.clone()).or_default();
                f.first_at = f.first_at.min(at);
                if let Some(n) = attr_str(attrs, "name") {
                    f.name.offer(n, at, &ev.id);
                    self.keys.insert((account.clone(), "name", n.to_string()));
                }
                if let Some(e) = attrs.get("employees").and_then(|v| v.as_f64()) {
                    f.employees.offer(&e.to_string(), at, &ev.id);
                }
                for key in ["domain", "website"] {
                    if let Some(d) = attr_str(attrs, key) {
                        self.keys.insert((account.clone(), "domain", d.to_string()));
                    }
                }
                if let Some(list) = attrs.get("domains").and_then(|v| v.as_array()) {
                    for d in list.iter().filter_map(|v| v.as_str()) {
                        self.keys
                            .insert((account.clone(), "domain", d.trim().to_string()));
                    }
                }
            }
            _ => {}
        }
    }

    fn person(&mut self, person: &str) -> &mut PersonFact {
        self.people
            .entry(person.to_string())
            .or_insert_with(|| Box::new(PersonFact::new(person)))
    }

    /// Adds everything another observation saw.
    pub(crate) fn merge(&mut self, other: Observed) {
        for (id, o) in other.people {
            match self.people.get_mut(&id) {
                None => {
                    self.people.insert(id, o);
                }
                Some(f) => merge_person(f, &o),
            }
        }
        for (id, o) in other.accounts {
            let f = self.accounts.entry(id).or_default();
            f.first_at = f.first_at.min(o.first_at);
            f.name.merge(&o.name);
            f.employees.merge(&o.employees);
        }
        self.keys.extend(other.keys);
        self.merge_targets.extend(other.merge_targets);
    }

    /// The people whose matching facts this observation changes (or whose group a merge
    /// changes): where [`decide`] looks for moves when the decisions held before.
    pub(crate) fn people(&self) -> FxHashSet<String> {
        self.people
            .keys()
            .chain(&self.merge_targets)
            .cloned()
            .collect()
    }

    /// Merges what was observed into the stored facts (`fresh`: there are none yet, so
    /// nothing needs reading first).
    pub(crate) fn save(self, tx: &Transaction<'_>, fresh: bool) -> Result<(), StoreError> {
        if !self.people.is_empty() || !self.accounts.is_empty() || !self.keys.is_empty() {
            set_decided_under(tx, None)?;
        }
        // In key order: the tables are B-trees on these keys, and appending in order is what
        // they are fastest at.
        let mut people: Vec<&PersonFact> = self.people.values().map(|b| &**b).collect();
        people.sort_unstable_by(|a, b| a.person.cmp(&b.person));
        let mut accounts: Vec<(&String, &AccountFact)> = self.accounts.iter().collect();
        accounts.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut keys: Vec<&(String, &'static str, String)> = self.keys.iter().collect();
        keys.sort_unstable();
        let mut insert = tx.prepare_cached(SAVE_PERSON_FACT)?;
        for o in people {
            if fresh {
                save_person_fact(&mut insert, o)?;
                continue;
            }
            let mut f = load_person_fact(tx, &o.person)?;
            merge_person(&mut f, o);
            save_person_fact(&mut insert, &f)?;
        }
        drop(insert);
        for (account, o) in accounts {
            let row: Option<(i64, Latest, Latest)> = if fresh {
                None
            } else {
                tx.prepare_cached(
                    "SELECT first_at, name, name_at, name_ev, employees, employees_at, employees_ev
                     FROM match_accounts WHERE account = ?1",
                )?
                .query_row([account], |r| {
                    Ok((r.get(0)?, Latest::read(r, 1)?, Latest::read(r, 4)?))
                })
                .optional()?
            };
            let mut f = match row {
                Some((first_at, name, employees)) => AccountFact {
                    first_at,
                    name,
                    employees,
                },
                None => AccountFact::default(),
            };
            f.first_at = f.first_at.min(o.first_at);
            f.name.merge(&o.name);
            f.employees.merge(&o.employees);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO match_accounts(account, first_at, name, name_at, name_ev, employees, employees_at, employees_ev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                account,
                f.first_at,
                f.name.value,
                f.name.at,
                f.name.ev,
                f.employees.value,
                f.employees.at,
                f.employees.ev
            ])?;
        }
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO match_account_keys(account, kind, value) VALUES (?1, ?2, ?3)",
        )?;
        for (account, kind, value) in keys {
            ins.execute(params![account, kind, value])?;
        }
        Ok(())
    }
}

/// Adds an observed person's facts to a stored one's.
fn merge_person(f: &mut PersonFact, o: &PersonFact) {
    f.created_at = f.created_at.min(o.created_at);
    f.email.merge(&o.email);
    f.company.merge(&o.company);
    f.account.merge(&o.account);
    f.merged |= o.merged;
}

/// Step 2 when it is needed: the same facts under the same policy decide the same, so when
/// nothing changed the facts since the stored decisions were made under this policy (a batch
/// of activities, stage and status changes, or a replay), they stand and everyone is already
/// where they put them; otherwise [`reconcile`].
///
/// `changed` narrows where people may have moved: when the stored decisions held under this
/// policy before the batch, only the people the batch observed (their facts changed) and the
/// groups whose decisions now differ are checked against the partition map, instead of
/// everyone. `None` checks everyone. `regroup`: people whose dedup group routing could
/// not place (see `Router::claimed_in_dedup_groups`), checked even when the decisions hold.
pub(crate) fn decide(
    tx: &Transaction<'_>,
    policy: &MatchPolicy,
    changed: Option<&FxHashSet<String>>,
    regroup: &FxHashSet<String>,
) -> Result<Reconciled, StoreError> {
    if decisions_hold(tx, policy)? {
        if regroup.is_empty() {
            return Ok(Reconciled::default());
        }
        // The facts did not change, but where some groups live may have (see
        // `Router::claimed_in_dedup_groups`): those groups are checked.
        let mut people = changed.cloned().unwrap_or_default();
        people.extend(regroup.iter().cloned());
        return reconcile(tx, policy, changed.map(|_| &people));
    }
    reconcile(tx, policy, changed)
}

/// Whether the stored decisions were made under `policy` from the current facts.
pub(crate) fn decisions_hold(
    tx: &Transaction<'_>,
    policy: &MatchPolicy,
) -> Result<bool, StoreError> {
    Ok(decided_under(tx)?.as_deref() == Some(policy_key(policy).as_str()))
}

/// The policy the stored decisions were made under (meta `match_decisions`), while the facts
/// have not changed since: set by [`reconcile`], cleared whenever facts change.
fn decided_under(tx: &Transaction<'_>) -> Result<Option<String>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'match_decisions'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

fn set_decided_under(tx: &Transaction<'_>, policy: Option<&MatchPolicy>) -> Result<(), StoreError> {
    match policy {
        Some(p) => tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('match_decisions', ?1)",
            [policy_key(p)],
        )?,
        None => tx.execute("DELETE FROM meta WHERE key = 'match_decisions'", [])?,
    };
    Ok(())
}

/// A policy's identity for [`decided_under`]: every setting, in words.
fn policy_key(policy: &MatchPolicy) -> String {
    format!("{policy:?}")
}

/// Forgets everything matching knew about an erased person.
pub(crate) fn forget(tx: &Transaction<'_>, person: &str) -> Result<(), StoreError> {
    set_decided_under(tx, None)?;
    for table in [
        "match_people",
        "person_matches",
        "person_duplicates",
        "contact_claims",
        "deal_contacts",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE person = ?1"), [person])?;
    }
    Ok(())
}

/// Rebuilds the facts from the whole log (a replay under a model that matches, when some
/// events were stored without being observed).
fn rebuild_facts(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "DELETE FROM match_people; DELETE FROM match_accounts; DELETE FROM match_account_keys;",
    )?;
    set_decided_under(tx, None)?;
    crate::ingest::observe_log(tx)?.save(tx, true)?;
    set_facts_complete(tx, true)
}

/// Whether every stored event has been observed (meta `match_facts`): batches under a model
/// that matches observe their events, the others do not.
fn facts_complete(tx: &Transaction<'_>) -> Result<bool, StoreError> {
    let v: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'match_facts'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.as_deref() == Some("complete"))
}

fn set_facts_complete(tx: &Transaction<'_>, complete: bool) -> Result<(), StoreError> {
    if complete {
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('match_facts', 'complete')",
            [],
        )?;
    } else {
        tx.execute("DELETE FROM meta WHERE key = 'match_facts'", [])?;
    }
    Ok(())
}

/// Keeps track of whether the facts cover the log after a batch: one that observed its events
/// keeps them complete (and makes them so on an empty log); one that did not makes them stale.
pub(crate) fn facts_after_batch(
    tx: &Transaction<'_>,
    observed: bool,
    log_was_empty: bool,
) -> Result<(), StoreError> {
    match (observed, log_was_empty) {
        (true, true) => set_facts_complete(tx, true),
        (true, false) => Ok(()),
        (false, _) => set_facts_complete(tx, false),
    }
}

/// A person's stored match decision.
#[derive(Debug, Clone, PartialEq)]
struct MatchRow {
    account: String,
    confidence: f64,
    method: String,
    explanation: String,
    at: i64,
}

/// A person's stored dedup decision: (survivor, normalised email, partition).
type DupRow = (String, String, String);

/// Whether [`reconcile`] has nothing to do (and reads nothing): matching is off and nothing
/// was ever matched or merged by it.
pub(crate) fn is_inert(tx: &Transaction<'_>, policy: &MatchPolicy) -> Result<bool, StoreError> {
    if policy.is_active() {
        return Ok(false);
    }
    Ok(tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM person_matches)
            AND NOT EXISTS (SELECT 1 FROM person_duplicates)",
        [],
        |r| r.get(0),
    )?)
}

/// Step 2: recomputes every matching and dedup decision from the facts and moves the people
/// whose partition changed. Returns the partitions to re-derive and the moves to make.
fn reconcile(
    tx: &Transaction<'_>,
    policy: &MatchPolicy,
    changed: Option<&FxHashSet<String>>,
) -> Result<Reconciled, StoreError> {
    if is_inert(tx, policy)? {
        return Ok(Reconciled::default());
    }
    let old_matches: FxHashMap<String, MatchRow> = {
        let mut st = tx.prepare(
            "SELECT person, account, confidence, method, explanation, at FROM person_matches",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                MatchRow {
                    account: r.get(1)?,
                    confidence: r.get(2)?,
                    method: r.get(3)?,
                    explanation: r.get(4)?,
                    at: r.get(5)?,
                },
            ))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let old_dups: FxHashMap<String, DupRow> = {
        let mut st =
            tx.prepare("SELECT person, survivor, email, partition FROM person_duplicates")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?;
        rows.collect::<Result<_, _>>()?
    };
    if !policy.is_active() && old_matches.is_empty() && old_dups.is_empty() {
        return Ok(Reconciled::default());
    }
    let facts: Vec<PersonFact> = {
        let mut st = tx.prepare(&format!(
            "SELECT {PERSON_FACT_COLUMNS} FROM match_people ORDER BY person"
        ))?;
        let rows = st.query_map([], person_fact)?;
        rows.collect::<Result<_, _>>()?
    };

    // Accounts, with every name and domain they have had.
    let index = if policy.enabled {
        let mut people: FxHashMap<&str, u64> = FxHashMap::default();
        for f in facts.iter().filter(|f| !f.merged) {
            if let Some(a) = &f.account.value {
                *people.entry(a.as_str()).or_default() += 1;
            }
        }
        let mut records: BTreeMap<String, AccountRecord> = BTreeMap::new();
        {
            let mut st =
                tx.prepare("SELECT account, first_at, name, employees FROM match_accounts")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                let name: Option<String> = r.get(2)?;
                let employees: Option<String> = r.get(3)?;
                records.insert(
                    id.clone(),
                    AccountRecord {
                        people: people.get(id.as_str()).copied().unwrap_or(0),
                        id,
                        names: name.into_iter().collect(),
                        domains: Vec::new(),
                        first_seen: r.get(1)?,
                        employees: employees.and_then(|e| e.parse().ok()),
                    },
                );
            }
        }
        {
            let mut st = tx.prepare(
                "SELECT account, kind, value FROM match_account_keys ORDER BY account, kind, value",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let (id, kind, value): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                if let Some(rec) = records.get_mut(&id) {
                    match kind.as_str() {
                        "name" if !rec.names.contains(&value) => rec.names.push(value),
                        "domain" => rec.domains.push(value),
                        _ => {}
                    }
                }
            }
        }
        AccountIndex::new(records.into_values().collect())
    } else {
        AccountIndex::default()
    };

    // Dedup groups: the same normalised email, survivor created first, then smallest id.
    let mut dedup = PersonIndex::new(policy.dedup.clone());
    let mut survivor_of: FxHashMap<String, (String, String)> = FxHashMap::default();
    if policy.dedup.merge_duplicates {
        for f in facts.iter().filter(|f| !f.merged) {
            if let Some(e) = &f.email.value {
                dedup.insert(&f.person, e, f.created_at);
            }
        }
        for g in dedup.groups() {
            for d in g.duplicates {
                survivor_of.insert(d, (g.survivor.clone(), g.email.clone()));
            }
        }
    }
    // Explicit merges: a merged person's own account counts for the group they were merged
    // into (the engine gives the merged person the latest account any of them named), so
    // their survivor's group is decided with it; a survivor without facts of its own (no
    // `person` event) is decided from its followers'.
    let merged_into: FxHashMap<String, String> = {
        let mut st = tx.prepare(
            "SELECT person, merged_into FROM person_partition WHERE merged_into IS NOT NULL",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    // Each merged person's survivor at the end of their chain of merges.
    let explicit_root: FxHashMap<&str, String> = facts
        .iter()
        .filter(|f| f.merged)
        .map(|f| {
            let root =
                crate::ingest::last_survivor(&f.person, |at| Ok(merged_into.get(at).cloned()))?;
            Ok((f.person.as_str(), root))
        })
        .collect::<Result<_, StoreError>>()?;
    let known: FxHashSet<&str> = facts.iter().map(|f| f.person.as_str()).collect();
    let bare_roots: Vec<PersonFact> = {
        let mut roots: Vec<String> = explicit_root
            .values()
            .filter(|r| !known.contains(r.as_str()) && !merged_into.contains_key(*r))
            .cloned()
            .collect();
        roots.sort_unstable();
        roots.dedup();
        roots.iter().map(|r| PersonFact::new(r)).collect()
    };
    let by_id: FxHashMap<&str, &PersonFact> = facts
        .iter()
        .chain(&bare_roots)
        .map(|f| (f.person.as_str(), f))
        .collect();
    let dedup_root = |person: &str| -> String {
        survivor_of
            .get(person)
            .map(|(s, _)| s.as_str())
            .filter(|s| by_id.contains_key(s))
            .unwrap_or(person)
            .to_string()
    };
    let mut members: BTreeMap<&str, Vec<&PersonFact>> = BTreeMap::new();
    for f in facts.iter().chain(&bare_roots).filter(|f| !f.merged) {
        let root = survivor_of
            .get(&f.person)
            .map(|(s, _)| s.as_str())
            .filter(|s| by_id.contains_key(s))
            .unwrap_or(&f.person);
        members.entry(root).or_default().push(f);
    }
    // The accounts merged people named, by the group their survivor belongs to.
    let mut followers_account: FxHashMap<String, Latest> = FxHashMap::default();
    for f in facts
        .iter()
        .filter(|f| f.merged && f.account.value.is_some())
    {
        let root = dedup_root(&explicit_root[f.person.as_str()]);
        if members.contains_key(root.as_str()) {
            followers_account.entry(root).or_default().merge(&f.account);
        }
    }

    // Each group's claim as a contact (see `Router::claim_contact`): the first deal that
    // named one of its members, with where that deal lives, for groups with no account of
    // their own and no match. A deal without an account yet places no one.
    let claims: FxHashMap<String, (i64, String, String)> = {
        let mut st = tx.prepare(
            "SELECT c.person, c.at, c.opportunity, o.partition FROM contact_claims c
             JOIN opportunity_partition o ON o.opportunity = c.opportunity",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?;
        rows.collect::<Result<_, _>>()?
    };
    // Decide each group's partition: explicit account, else a match, else the deal that
    // named the survivor as a contact, else its own.
    let mut decided: Vec<(&str, String, i64)> = Vec::with_capacity(members.len());
    let mut new_matches: FxHashMap<String, MatchRow> = FxHashMap::default();
    let mut new_dups: FxHashMap<String, DupRow> = FxHashMap::default();
    for (root, group) in &members {
        let (mut email, mut company, mut account) =
            (Latest::default(), Latest::default(), Latest::default());
        let mut created = i64::MAX;
        for f in group {
            email.merge(&f.email);
            company.merge(&f.company);
            account.merge(&f.account);
            created = created.min(f.created_at);
        }
        if let Some(followers) = followers_account.get(*root) {
            account.merge(followers);
        }
        let (partition, at) = if let Some(a) = &account.value {
            (a.clone(), account.at)
        } else if let Some(m) = match_person(
            &index,
            &PersonFacts {
                email: email.value.as_deref(),
                company: company.value.as_deref(),
            },
            policy,
        ) {
            let p = m.account.clone();
            new_matches.insert(
                root.to_string(),
                MatchRow {
                    account: m.account,
                    confidence: m.confidence,
                    method: m.method.as_str().to_string(),
                    explanation: m.explanation,
                    at: created,
                },
            );
            (p, i64::MIN)
        } else if let Some((.., deal)) = group
            .iter()
            .filter_map(|f| claims.get(f.person.as_str()))
            .chain(claims.get(*root))
            .min()
            .filter(|(.., deal)| crate::ingest::is_account_partition(deal))
        {
            (deal.clone(), i64::MIN)
        } else {
            (crate::ingest::person_partition_key(root), i64::MIN)
        };
        for f in group.iter().filter(|f| f.person != *root) {
            let email = survivor_of[&f.person].1.clone();
            new_dups.insert(
                f.person.clone(),
                (root.to_string(), email, partition.clone()),
            );
        }
        decided.push((root, partition, at));
    }

    // Who may have moved. Everyone, unless the decisions held before this batch: then every
    // group that did not change is where the last reconciliation put it, and only the groups
    // with a member whose facts or dedup decision changed, whose match changed, or that a
    // changed duplicate left, are checked.
    let check: Option<FxHashSet<&str>> = changed.map(|changed| {
        let mut roots: FxHashSet<&str> = FxHashSet::default();
        for f in &facts {
            let new_dup = new_dups.get(&f.person);
            if changed.contains(&f.person) || old_dups.get(&f.person) != new_dup {
                if !f.merged {
                    roots.insert(new_dup.map_or(f.person.as_str(), |d| d.0.as_str()));
                }
                // The group it left (merged away, or its email changed) may go elsewhere.
                if let Some(old) = old_dups.get(&f.person) {
                    roots.insert(old.0.as_str());
                }
            }
        }
        for (root, ..) in &decided {
            if old_matches.get(*root) != new_matches.get(*root) {
                roots.insert(root);
            }
            // A group whose survivor, or someone merged into it, changed (a merge, a new
            // account named).
            if changed.contains(*root) {
                roots.insert(root);
            }
        }
        for f in facts.iter().filter(|f| f.merged) {
            let explicit = &explicit_root[f.person.as_str()];
            if changed.contains(&f.person) || changed.contains(explicit) {
                let root = dedup_root(explicit);
                if let Some((key, _)) = members.get_key_value(root.as_str()) {
                    roots.insert(key);
                }
            }
        }
        roots
    });
    let mut want: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
    for (root, partition, at) in &decided {
        if check.as_ref().is_some_and(|c| !c.contains(root)) {
            continue;
        }
        for f in &members[root] {
            // A duplicate follows its survivor wherever it goes; routing never moves it.
            let at = if f.person == *root { *at } else { i64::MAX };
            want.insert(&f.person, (partition, at));
        }
    }

    // Apply: move people, then record the decisions that changed.
    let mut touched: FxHashSet<String> = FxHashSet::default();
    let mut moves = Vec::new();
    // Where everyone is now: read whole when many are asked about, else one by one.
    // Where everyone is now (and whether a `merge` event merged them: such a person follows
    // their survivor, see `Router::move_person`, and is never placed here). Read whole when
    // many are asked about, else one by one.
    type Current = (String, i64, bool);
    let everyone: Option<FxHashMap<String, Current>> = if want.len() > 4096 {
        let mut st = tx.prepare(
            "SELECT person, partition, at, merged_into IS NOT NULL FROM person_partition",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?;
        Some(rows.collect::<Result<_, _>>()?)
    } else {
        None
    };
    for (&person, &(partition, at)) in &want {
        let current: Option<Current> = match &everyone {
            Some(all) => all.get(person).cloned(),
            None => tx
                .prepare_cached(
                    "SELECT partition, at, merged_into IS NOT NULL FROM person_partition WHERE person = ?1",
                )?
                .query_row([person], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?,
        };
        let Some((cur, cur_at, false)) = current else {
            continue;
        };
        let moved = cur != partition;
        if moved {
            moves.push(Move {
                person: Some(person.to_string()),
                opportunity: None,
                from: cur.clone(),
                to: partition.to_string(),
            });
            touched.insert(cur);
            touched.insert(partition.to_string());
        }
        if moved || cur_at != at {
            tx.prepare_cached(
                "UPDATE person_partition SET partition = ?1, at = ?2 WHERE person = ?3",
            )?
            .execute(params![partition, at, person])?;
        }
        if moved {
            // The people merged into them go with them (see `Router::move_person`).
            for f in
                crate::ingest::all_followers(person, |s| crate::ingest::stored_followers(tx, s))?
            {
                let from: Option<String> = tx
                    .prepare_cached("SELECT partition FROM person_partition WHERE person = ?1")?
                    .query_row([&f], |r| r.get(0))
                    .optional()?;
                match from {
                    Some(from) if from != partition => {
                        tx.prepare_cached(
                            "UPDATE person_partition SET partition = ?1 WHERE person = ?2",
                        )?
                        .execute(params![partition, f])?;
                        touched.insert(from.clone());
                        moves.push(Move {
                            person: Some(f),
                            opportunity: None,
                            from,
                            to: partition.to_string(),
                        });
                    }
                    _ => {}
                }
            }
        }
    }
    for (person, old) in &old_matches {
        if new_matches
            .get(person)
            .is_none_or(|n| n.account != old.account)
        {
            touched.insert(old.account.clone());
        }
        if !new_matches.contains_key(person) {
            tx.execute("DELETE FROM person_matches WHERE person = ?1", [person])?;
        }
    }
    for (person, new) in &new_matches {
        if old_matches.get(person) != Some(new) {
            touched.insert(new.account.clone());
            tx.prepare_cached(
                "INSERT OR REPLACE INTO person_matches(person, account, confidence, method, explanation, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![person, new.account, new.confidence, new.method, new.explanation, new.at])?;
        }
    }
    for (person, old) in &old_dups {
        if new_dups.get(person) != Some(old) {
            touched.insert(old.2.clone());
        }
        if !new_dups.contains_key(person) {
            tx.execute("DELETE FROM person_duplicates WHERE person = ?1", [person])?;
        }
    }
    for (person, new) in &new_dups {
        if old_dups.get(person) != Some(new) {
            touched.insert(new.2.clone());
            tx.prepare_cached(
                "INSERT OR REPLACE INTO person_duplicates(person, survivor, email, partition) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![person, new.0, new.1, new.2])?;
        }
    }
    let mut touched: Vec<String> = touched.into_iter().collect();
    touched.sort();
    set_decided_under(tx, Some(policy))?;
    Ok(Reconciled { touched, moves })
}

/// What reconciling decided: the partitions to re-derive, and the people whose events move
/// (applied by the caller, in order, as it loads the partitions).
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    pub(crate) touched: Vec<String>,
    pub(crate) moves: Vec<Move>,
}

/// Before a replay: rebuilds the facts if the new model matches, then reconciles under it.
/// Returns the partitions whose people moved (some may now be empty) and the moves.
pub(crate) fn before_replay(
    tx: &Transaction<'_>,
    policy: &MatchPolicy,
    lap: &mut dyn FnMut(&'static str),
) -> Result<Reconciled, StoreError> {
    if policy.is_active() && !facts_complete(tx)? {
        rebuild_facts(tx)?;
        lap("matching facts");
    }
    let reconciled = decide(tx, policy, None, &FxHashSet::default())?;
    lap("matching decisions");
    Ok(reconciled)
}

/// Step 3: applies the decisions to partitions about to be derived: matched people's
/// `person` events name the matched account, and each duplicate gets a `merge` into its
/// survivor.
pub(crate) fn adjust(
    conn: &Connection,
    partitions: &mut [(String, Vec<SequencedEvent>)],
) -> Result<(), StoreError> {
    let adjustments = Adjustments::load(conn)?;
    for (partition, events) in partitions.iter_mut() {
        adjustments.apply_owned(partition, events);
    }
    Ok(())
}

/// The stored matching and dedup decisions, read once and applied to partitions as they are
/// derived (on any thread).
#[derive(Debug, Default)]
pub(crate) struct Adjustments {
    /// Matched person → account.
    matched: FxHashMap<String, String>,
    /// Partition → (duplicate, survivor, id of the synthetic merge) to merge.
    dups: FxHashMap<String, Vec<(String, String, String)>>,
}

impl Adjustments {
    /// Reads the decisions.
    pub(crate) fn load(conn: &Connection) -> Result<Adjustments, StoreError> {
        let mut matched: FxHashMap<String, String> = FxHashMap::default();
        {
            let mut st = conn.prepare_cached("SELECT person, account FROM person_matches")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                matched.insert(r.get(0)?, r.get(1)?);
            }
        }
        let mut dups: FxHashMap<String, Vec<(String, String, String)>> = FxHashMap::default();
        {
            let mut st = conn.prepare_cached(
                "SELECT partition, person, survivor FROM person_duplicates ORDER BY person",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let (dup, survivor): (String, String) = (r.get(1)?, r.get(2)?);
                let id = format!("auto-merge:{dup}:{survivor}");
                dups.entry(r.get(0)?).or_default().push((dup, survivor, id));
            }
        }
        Ok(Adjustments { matched, dups })
    }

    /// Whether `person`, without an account of their own, is matched to `partition`.
    fn matched_to(&self, person: &str, partition: &str) -> bool {
        self.matched.get(person).map(String::as_str) == Some(partition)
    }

    /// The duplicates merged into their survivors in `partition`: (duplicate, survivor, id
    /// of the synthetic merge).
    fn merges(&self, partition: &str) -> &[(String, String, String)] {
        self.dups.get(partition).map_or(&[], Vec::as_slice)
    }

    /// Applies the decisions to one partition's records: a matched person's `person` events
    /// name the account. Returns the duplicates' merges, which derive before the records (at
    /// the earliest record's instant).
    pub(crate) fn apply<'a>(
        &'a self,
        partition: &'a str,
        events: &mut [SequencedRecord<'a>],
    ) -> Vec<SequencedRecord<'a>> {
        if !self.matched.is_empty() {
            for se in events.iter_mut() {
                if let RecordBody::Person {
                    person,
                    account: account @ None,
                    ..
                } = &mut se.record.body
                {
                    if self.matched_to(person, partition) {
                        *account = Some(partition);
                    }
                }
            }
        }
        let merges = self.merges(partition);
        let Some(at) = events.iter().map(|se| se.record.at).min() else {
            return Vec::new();
        };
        merges
            .iter()
            .map(|(dup, survivor, id)| {
                let body = RecordBody::Merge {
                    person: dup.as_str(),
                    into: survivor.as_str(),
                };
                SequencedRecord::new(0, Record { id, at, body })
            })
            .collect()
    }

    /// [`Adjustments::apply`] on owned events (impact analysis reads partitions so).
    pub(crate) fn apply_owned(&self, partition: &str, events: &mut Vec<SequencedEvent>) {
        if !self.matched.is_empty() {
            for se in events.iter_mut() {
                if let EventBody::Person {
                    person,
                    account: account @ None,
                    ..
                } = &mut se.event.body
                {
                    if self.matched_to(person, partition) {
                        *account = Some(partition.to_string());
                    }
                }
            }
        }
        let merges = self.merges(partition);
        if let (false, Some(first)) = (merges.is_empty(), events.first()) {
            let at = first.event.at;
            let merges = merges.iter().map(|(dup, survivor, id)| SequencedEvent {
                seq: 0,
                event: Event {
                    id: id.clone(),
                    at,
                    body: EventBody::Merge {
                        person: dup.clone(),
                        into: survivor.clone(),
                    },
                },
            });
            events.splice(0..0, merges);
        }
    }
}

/// How a person was matched to their account, for `waterfall why` and `show`.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonMatch {
    /// The matched account.
    pub account: String,
    /// How sure the match is, 0..=1.
    pub confidence: f64,
    /// `domain`, `company_exact` or `company_fuzzy`.
    pub method: String,
    /// Why, in plain words.
    pub explanation: String,
    /// The person's creation instant (the match applies from then).
    pub at: Timestamp,
}

/// A person merged automatically because they share an email with an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonDuplicate {
    /// The duplicate.
    pub person: String,
    /// The person it was merged into.
    pub survivor: String,
    /// The normalised email they share.
    pub email: String,
}

impl Store {
    /// How a person (or the survivor they were merged into) was matched to an account, if the
    /// account came from matching rather than from the events.
    pub fn person_match(&self, person: &str) -> Result<Option<PersonMatch>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT account, confidence, method, explanation, at FROM person_matches WHERE person = ?1",
                [person],
                |r| {
                    Ok(PersonMatch {
                        account: r.get(0)?,
                        confidence: r.get(1)?,
                        method: r.get(2)?,
                        explanation: r.get(3)?,
                        at: Timestamp(r.get(4)?),
                    })
                },
            )
            .optional()?)
    }

    /// Automatic merges that involve a person, as duplicate or as survivor, by duplicate id.
    pub fn person_duplicates(&self, person: &str) -> Result<Vec<PersonDuplicate>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT person, survivor, email FROM person_duplicates
             WHERE person = ?1 OR survivor = ?1 ORDER BY person",
        )?;
        let rows = st.query_map([person], |r| {
            Ok(PersonDuplicate {
                person: r.get(0)?,
                survivor: r.get(1)?,
                email: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
