//! The in-memory history every report reads: interned stage, status and person names, and
//! each subject's entries sorted by the total order of changes.

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use waterfall_core::{
    Field, IndexedEntry, Level, Order, StageIndex, StageIndexNames, Timestamp, Transition,
    TransitionRef, TransitionTable,
};

/// What reports need to know about a person besides their transitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonInfo {
    /// The person's id, as in events and transitions.
    pub id: String,
    /// The account the person belongs to, if any.
    pub account: Option<String>,
    /// The person's attributes (what `--by ATTR` groups on).
    pub attrs: Map<String, Value>,
    /// False for people erased or merged away: point-in-time reports do not count them.
    pub visible: bool,
}

/// A person of a [`History`], borrowed (see [`PersonInfo`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonRef<'a> {
    /// The person's id, as in events and transitions.
    pub id: &'a str,
    /// The account the person belongs to, if any.
    pub account: Option<&'a str>,
    /// The person's attributes (what `--by ATTR` groups on).
    pub attrs: &'a Map<String, Value>,
    /// False for people erased or merged away: point-in-time reports do not count them.
    pub visible: bool,
}

/// The people of a [`History`], stored by column: the ids in one string, accounts and
/// attributes only once someone has any. Millions of people (a report read from the stage
/// index knows only their ids) cost a few bytes each and a handful of allocations.
#[derive(Debug, Clone, Default)]
pub struct People {
    ids: String,
    /// Where each person's id ends in `ids`.
    ends: Vec<usize>,
    visible: Vec<bool>,
    /// One per person once someone has an account; empty before.
    accounts: Vec<Option<String>>,
    /// One per person once someone has attributes; empty before.
    attrs: Vec<Map<String, Value>>,
}

/// The attributes of a person who has none.
static NO_ATTRS: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl People {
    /// How many people there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is nobody.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of the person with dense index `i`.
    pub fn id(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.ids[start..self.ends[i]]
    }

    /// Whether point-in-time reports count the person with dense index `i`.
    pub fn visible(&self, i: usize) -> bool {
        self.visible[i]
    }

    /// The person with dense index `i`.
    pub fn get(&self, i: usize) -> PersonRef<'_> {
        PersonRef {
            id: self.id(i),
            account: self.accounts.get(i).and_then(|a| a.as_deref()),
            attrs: self.attrs.get(i).unwrap_or(&NO_ATTRS),
            visible: self.visible[i],
        }
    }

    /// Every person, in dense index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = PersonRef<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    fn reserve(&mut self, people: usize) {
        self.ends.reserve(people);
        self.visible.reserve(people);
    }

    /// Adds a visible person known only by id.
    fn push_id(&mut self, id: &str) {
        self.ids.push_str(id);
        self.ends.push(self.ids.len());
        self.visible.push(true);
        if !self.accounts.is_empty() {
            self.accounts.push(None);
        }
        if !self.attrs.is_empty() {
            self.attrs.push(Map::new());
        }
    }

    fn push(&mut self, p: PersonInfo) {
        let n = self.len();
        self.push_id(&p.id);
        self.visible[n] = p.visible;
        if p.account.is_some() {
            self.accounts.resize(n + 1, None);
            self.accounts[n] = p.account;
        }
        if !p.attrs.is_empty() {
            self.attrs.resize(n + 1, Map::new());
            self.attrs[n] = p.attrs;
        }
    }

    /// Adds a stage index's subjects, as visible people known only by id: one copy of the
    /// ids' text, whatever their number.
    fn extend_from_index(&mut self, names: &StageIndexNames<'_>) {
        let offset = self.ids.len();
        self.ids.push_str(&names.subject_ids);
        let n = names.subject_count();
        self.reserve(n);
        self.ends
            .extend((0..n).map(|i| offset + names.subject_end(i)));
        self.visible.resize(self.ends.len(), true);
        if !self.accounts.is_empty() {
            self.accounts.resize(self.ends.len(), None);
        }
        if !self.attrs.is_empty() {
            self.attrs.resize(self.ends.len(), Map::new());
        }
    }
}

/// What reports need to know about an account besides its transitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountInfo {
    /// The account's id, as in events and transitions.
    pub id: String,
    /// The account's attributes (what `by` groups account reports on).
    pub attrs: Map<String, Value>,
    /// False for accounts erased or merged away: point-in-time reports do not count them.
    pub visible: bool,
}

/// One entry into a stage or status value, in compact form: the stage index's record (see
/// [`IndexedEntry`]).
///
/// `subject` is a dense person (or account) index, `value` a dense stage or status index,
/// `rule` a dense index of the rule name that caused it (see [`History::rule_name`]).
pub type Entry = IndexedEntry;

/// Entries of one kind (e.g. person stages), sorted by subject then order, with an index of
/// where each subject's entries start.
#[derive(Debug, Clone, Default)]
pub struct Track {
    entries: Vec<Entry>,
    starts: Vec<u32>,
    min_at: i64,
    max_at: i64,
}

impl Track {
    fn build(entries: Vec<Entry>, subjects: usize) -> Track {
        // Entries that arrive canonical (a stage index, or tables grouped by subject) are
        // indexed in the same pass that checks them; others are sorted first.
        match Self::index(&entries, subjects) {
            Some((starts, min_at, max_at)) => Track {
                entries,
                starts,
                min_at,
                max_at,
            },
            None => {
                let entries = Self::canonicalize(entries, subjects);
                let (starts, min_at, max_at) =
                    Self::index(&entries, subjects).expect("canonical entries index");
                Track {
                    entries,
                    starts,
                    min_at,
                    max_at,
                }
            }
        }
    }

    /// Where each subject's entries start and the span of instants, in one pass — or `None`
    /// when the entries are not canonical (see [`Track::canonical`]).
    fn index(entries: &[Entry], subjects: usize) -> Option<(Vec<u32>, i64, i64)> {
        if !Self::canonical(entries) {
            return None;
        }
        let mut starts = vec![0u32; subjects + 1];
        let (mut min_at, mut max_at) = (i64::MAX, i64::MIN);
        for e in entries {
            starts[e.subject as usize + 1] += 1;
            min_at = min_at.min(e.at);
            max_at = max_at.max(e.at);
        }
        for s in 1..starts.len() {
            starts[s] += starts[s - 1];
        }
        if entries.is_empty() {
            (min_at, max_at) = (0, 0);
        }
        Some((starts, min_at, max_at))
    }

    /// Whether entries are grouped by subject, each subject's in order, and no entry repeats
    /// the value before it.
    fn canonical(entries: &[Entry]) -> bool {
        entries.windows(2).all(|w| {
            let (a, b) = (&w[0], &w[1]);
            a.subject < b.subject
                || (a.subject == b.subject
                    && (a.at, a.seq, a.sub) <= (b.at, b.seq, b.sub)
                    && a.value != b.value)
        })
    }

    /// Groups entries by subject with a counting sort (stable, linear), orders each subject's
    /// (they usually arrive in order already, which the check sees at once), and drops an
    /// entry into the value its subject already has (imported history may say so).
    fn canonicalize(entries: Vec<Entry>, subjects: usize) -> Vec<Entry> {
        let mut starts = vec![0u32; subjects + 1];
        for e in &entries {
            starts[e.subject as usize + 1] += 1;
        }
        for s in 1..starts.len() {
            starts[s] += starts[s - 1];
        }
        let mut entries = if entries.is_sorted_by_key(|e| e.subject) {
            entries
        } else {
            let mut next = starts.clone();
            let mut sorted = vec![Entry::default(); entries.len()];
            for e in entries {
                let slot = &mut next[e.subject as usize];
                sorted[*slot as usize] = e;
                *slot += 1;
            }
            sorted
        };
        for s in 0..subjects {
            let of = &mut entries[starts[s] as usize..starts[s + 1] as usize];
            if !of.is_sorted_by_key(|e| (e.at, e.seq, e.sub)) {
                of.sort_unstable_by_key(|e| (e.at, e.seq, e.sub));
            }
        }
        entries.dedup_by(|later, earlier| {
            later.subject == earlier.subject && later.value == earlier.value
        });
        entries
    }

    /// All entries, sorted by subject then order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries of one subject, in order.
    pub fn of(&self, subject: u32) -> &[Entry] {
        let s = subject as usize;
        match (self.starts.get(s), self.starts.get(s + 1)) {
            (Some(&a), Some(&b)) => &self.entries[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The number of subjects this track is indexed over.
    pub fn subjects(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// The earliest and latest instant of any entry (`None` when empty).
    pub fn span(&self) -> Option<(i64, i64)> {
        (!self.entries.is_empty()).then_some((self.min_at, self.max_at))
    }
}

/// The entries of one subject with instant at or before `t` (all of them when `t` is `None`).
pub(crate) fn until(entries: &[Entry], t: Option<i64>) -> &[Entry] {
    match t {
        None => entries,
        Some(t) => &entries[..entries.partition_point(|e| e.at <= t)],
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    names: Vec<String>,
    index: FxHashMap<String, u32>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        // Stage, status and rule names are few: a scan beats hashing.
        if self.names.len() <= 16 {
            if let Some(i) = self.names.iter().position(|n| n == name) {
                return i as u32;
            }
        } else if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }
}

fn entry(subject: u32, value: u32, rule: u32, order: Order) -> Entry {
    Entry {
        at: order.at.0,
        seq: order.seq,
        sub: order.sub,
        subject,
        value,
        rule,
    }
}

/// People by id, keyed by a 64-bit hash of the id (no key to allocate). Each hit is checked
/// against the person's id, so two ids sharing a hash are still told apart.
#[derive(Default)]
struct PersonIndex {
    by_hash: FxHashMap<u64, u32>,
    /// Ids whose hash an earlier id already had.
    collided: FxHashMap<String, u32>,
}

impl PersonIndex {
    fn hash(id: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(id)
    }

    fn get(&self, people: &People, id: &str) -> Option<u32> {
        match self.by_hash.get(&Self::hash(id)) {
            Some(&i) if people.id(i as usize) == id => Some(i),
            Some(_) => self.collided.get(id).copied(),
            None => None,
        }
    }

    fn insert(&mut self, id: &str, i: u32) {
        match self.by_hash.entry(Self::hash(id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(id.to_string(), i);
            }
        }
    }
}

/// Builds a [`History`] from transitions, added as borrowed transitions or as whole stored
/// tables: the one place a transition becomes an entry.
pub struct HistoryBuilder {
    h: History,
    person_index: PersonIndex,
    /// Entries of person stages, person statuses, account stages, account statuses.
    tracks: [Vec<Entry>; 4],
    /// People were added from a stage index without indexing their ids.
    unindexed: bool,
}

impl HistoryBuilder {
    fn new(stages: Vec<String>, statuses: Vec<String>, people: Vec<PersonInfo>) -> Self {
        let mut h = History::default();
        for s in &stages {
            h.stages.intern(s);
        }
        h.model_stages = h.stages.names.len();
        for s in &statuses {
            h.statuses.intern(s);
        }
        let mut person_index = PersonIndex::default();
        person_index.by_hash.reserve(people.len());
        for p in people {
            if person_index.get(&h.people, &p.id).is_some() {
                continue;
            }
            person_index.insert(&p.id, h.people.len() as u32);
            h.people.push(p);
        }
        HistoryBuilder {
            h,
            person_index,
            tracks: Default::default(),
            unindexed: false,
        }
    }

    /// Makes room for about this many more transitions of the first track added (person
    /// stages) and people, so loading millions does not grow and copy again and again.
    pub fn reserve(&mut self, transitions: usize, people: usize) {
        self.tracks[0].reserve(transitions);
        self.h.people.reserve(people);
        self.person_index.by_hash.reserve(people);
    }

    /// Adds a stored table's transitions that `keep` accepts (by field and level). The
    /// table's subjects and names are interned once per table, not once per transition,
    /// which is what makes loading millions of stored transitions fast.
    pub fn add_table(&mut self, table: &TransitionTable<'_>, keep: impl Fn(Field, Level) -> bool) {
        const UNSEEN: u32 = u32::MAX;
        let mut subjects = vec![[UNSEEN; 2]; table.subjects.len()];
        let mut values = vec![[UNSEEN; 4]; table.names.len()];
        let mut rules = vec![UNSEEN; table.names.len()];
        for r in &table.rows {
            // Owner assignments are not lifecycle indicators: no report counts them.
            if r.field == Field::Owner || !keep(r.field, r.level) {
                continue;
            }
            let level = r.level as usize;
            let subject = match subjects[r.subject as usize][level] {
                UNSEEN => {
                    let i = self.subject(r.level, table.subjects[r.subject as usize]);
                    subjects[r.subject as usize][level] = i;
                    i
                }
                i => i,
            };
            let kind = level * 2 + (r.field == Field::Status) as usize;
            let value = match values[r.to as usize][kind] {
                UNSEEN => {
                    let v = self.value(r.level, r.field, table.names[r.to as usize]);
                    values[r.to as usize][kind] = v;
                    v
                }
                v => v,
            };
            let rule = match rules[r.rule as usize] {
                UNSEEN => {
                    let v = self.h.rules.intern(table.names[r.rule as usize]);
                    rules[r.rule as usize] = v;
                    v
                }
                v => v,
            };
            let order = Order {
                at: Timestamp(r.at),
                seq: r.seq,
                sub: r.sub,
            };
            self.push(r.level, r.field, entry(subject, value, rule, order));
        }
    }

    /// Adds a stage index's person stage entries (see [`StageIndex`]). On a builder without
    /// people its subjects become the people as they are (an index lists each person once),
    /// without hashing a single id.
    pub fn add_stage_index(&mut self, index: &StageIndex<'_>) {
        // A decoded index has been checked: every entry points into its names.
        let added = self.add_stage_entries(&index.names, index.len(), index.entries());
        debug_assert!(added.is_ok());
    }

    /// [`HistoryBuilder::add_stage_index`] over an index's names and its entries as they are
    /// read (`len` of them, for reserving room). An entry that points outside the names is
    /// an error; what was added until then stays, so a caller starts over on an error.
    pub fn add_stage_entries(
        &mut self,
        names: &StageIndexNames<'_>,
        len: usize,
        entries: impl Iterator<Item = IndexedEntry>,
    ) -> Result<(), String> {
        let subjects: Vec<u32> = if self.h.people.is_empty() {
            self.h.people.extend_from_index(names);
            // Indexed by id only if another person is ever looked up (see `subject`).
            self.unindexed = true;
            (0..names.subject_count() as u32).collect()
        } else {
            (0..names.subject_count())
                .map(|i| self.subject(Level::Person, names.subject(i)))
                .collect()
        };
        let values: Vec<u32> = names
            .stages
            .iter()
            .map(|s| self.h.stages.intern(s))
            .collect();
        let rules: Vec<u32> = names.rules.iter().map(|r| self.h.rules.intern(r)).collect();
        self.tracks[0].reserve(len);
        for e in entries {
            if !names.contain(&e) {
                return Err("stage index: an entry points outside its names".into());
            }
            self.tracks[0].push(Entry {
                subject: subjects[e.subject as usize],
                value: values[e.value as usize],
                rule: rules[e.rule as usize],
                ..e
            });
        }
        Ok(())
    }

    /// The dense index of a person or account; a person not listed is added as visible,
    /// without attributes.
    fn subject(&mut self, level: Level, id: &str) -> u32 {
        match level {
            Level::Account => self.h.accounts.intern(id),
            Level::Person => {
                if std::mem::take(&mut self.unindexed) {
                    for i in 0..self.h.people.len() {
                        self.person_index.insert(self.h.people.id(i), i as u32);
                    }
                }
                // One probe: most subjects are new, and a hit is checked against the id.
                let next = self.h.people.len() as u32;
                let i = match self.person_index.by_hash.entry(PersonIndex::hash(id)) {
                    std::collections::hash_map::Entry::Vacant(v) => *v.insert(next),
                    std::collections::hash_map::Entry::Occupied(o) => {
                        let i = *o.get();
                        if self.h.people.id(i as usize) == id {
                            return i;
                        }
                        *self
                            .person_index
                            .collided
                            .entry(id.to_string())
                            .or_insert(next)
                    }
                };
                if i == next {
                    self.h.people.push_id(id);
                }
                i
            }
        }
    }

    /// The dense index of a stage or status value (owners are never asked for).
    fn value(&mut self, level: Level, field: Field, to: &str) -> u32 {
        match (level, field) {
            (Level::Person, Field::Stage) => self.h.stages.intern(to),
            (Level::Account, Field::Stage) => self.h.account_stages.intern(to),
            (_, _) => self.h.statuses.intern(to),
        }
    }

    fn push(&mut self, level: Level, field: Field, e: Entry) {
        let track = match (level, field) {
            (Level::Person, Field::Stage) => 0,
            (Level::Person, Field::Status) => 1,
            (Level::Account, Field::Stage) => 2,
            (Level::Account, Field::Status) => 3,
            (_, Field::Owner) => return,
        };
        self.tracks[track].push(e);
    }

    /// The history, indexed and sorted.
    pub fn finish(self) -> History {
        let HistoryBuilder { mut h, tracks, .. } = self;
        let [stage, status, acc_stage, acc_status] = tracks;
        let n = h.people.len();
        let a = h.accounts.names.len();
        h.account_info = h
            .accounts
            .names
            .iter()
            .map(|id| AccountInfo {
                id: id.clone(),
                attrs: Map::new(),
                visible: true,
            })
            .collect();
        h.stage = Track::build(stage, n);
        h.status = Track::build(status, n);
        h.account_stage = Track::build(acc_stage, a);
        h.account_status = Track::build(acc_status, a);
        h
    }
}

/// Everything the reports read: the lifecycle's stage and status names, the people, and the
/// derived transitions of people and accounts, interned and sorted once.
///
/// Reports are pure functions of a `History`: no I/O, and they never re-derive transitions.
#[derive(Debug, Clone, Default)]
pub struct History {
    stages: Interner,
    model_stages: usize,
    statuses: Interner,
    rules: Interner,
    people: People,
    accounts: Interner,
    account_info: Vec<AccountInfo>,
    account_stages: Interner,
    stage: Track,
    status: Track,
    account_stage: Track,
    account_status: Track,
}

impl History {
    /// Builds a history from the model's stage and status names (in model order), the people,
    /// and the engine's transitions (in any order).
    ///
    /// Stages or statuses that transitions name but the model does not are appended after the
    /// model's; transitions of people not listed are kept, as visible people without
    /// attributes. A transition into the value the subject already has is dropped.
    pub fn new(
        stages: Vec<String>,
        statuses: Vec<String>,
        people: Vec<PersonInfo>,
        transitions: impl IntoIterator<Item = Transition>,
    ) -> History {
        let transitions: Vec<Transition> = transitions.into_iter().collect();
        History::from_refs(
            stages,
            statuses,
            people,
            transitions.iter().map(Transition::as_ref),
        )
    }

    /// [`History::new`] over borrowed transitions (decoded without allocating, e.g. straight
    /// from storage).
    pub fn from_refs<'a>(
        stages: Vec<String>,
        statuses: Vec<String>,
        people: Vec<PersonInfo>,
        transitions: impl IntoIterator<Item = TransitionRef<'a>>,
    ) -> History {
        let mut b = HistoryBuilder::new(stages, statuses, people);
        // The engine emits each subject's transitions together: remember the last one.
        let mut last: Option<(Level, &str, u32)> = None;
        for t in transitions {
            // Owner assignments are not lifecycle indicators: no report counts them.
            if t.field == Field::Owner {
                continue;
            }
            let subject = match last {
                Some((level, id, i)) if level == t.level && id == t.subject => i,
                _ => b.subject(t.level, t.subject),
            };
            last = Some((t.level, t.subject, subject));
            let (value, rule) = (b.value(t.level, t.field, t.to), b.h.rules.intern(t.rule));
            b.push(t.level, t.field, entry(subject, value, rule, t.order));
        }
        b.finish()
    }

    /// Starts a history from the model's stage and status names (in model order) and the
    /// people, to which transitions are then added in any order (see [`HistoryBuilder`]).
    pub fn builder(
        stages: Vec<String>,
        statuses: Vec<String>,
        people: Vec<PersonInfo>,
    ) -> HistoryBuilder {
        HistoryBuilder::new(stages, statuses, people)
    }

    /// Adds what is known about accounts (attributes, visibility) and the account stages of
    /// the model in model order, for the account-level reports.
    ///
    /// Account stages that only transitions name come after the given ones; accounts without
    /// transitions are kept (they appear in no report row).
    pub fn with_accounts(mut self, accounts: Vec<AccountInfo>, stages: Vec<String>) -> History {
        let mut names = Interner::default();
        for s in stages.iter().chain(&self.account_stages.names) {
            names.intern(s);
        }
        let remap: Vec<u32> = self
            .account_stages
            .names
            .iter()
            .map(|s| names.intern(s))
            .collect();
        for e in &mut self.account_stage.entries {
            e.value = remap[e.value as usize];
        }
        self.account_stages = names;
        for a in accounts {
            let i = self.accounts.intern(&a.id) as usize;
            if i == self.account_info.len() {
                self.account_info.push(a);
            } else {
                self.account_info[i] = a;
            }
        }
        self
    }

    /// This history's person stage entries as a stage index (names' bytes, entries' bytes),
    /// for the store to keep (see [`StageIndex`]); `None` when the people's ids are too long
    /// for one (over 4 GiB together).
    pub fn stage_index(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        u32::try_from(self.people.ids.len()).ok()?;
        let names = StageIndexNames {
            stages: self.stages.names.iter().map(String::as_str).collect(),
            rules: self.rules.names.iter().map(String::as_str).collect(),
            subject_ids: std::borrow::Cow::Borrowed(&self.people.ids),
            subject_ends: self
                .people
                .ends
                .iter()
                .flat_map(|&e| (e as u32).to_le_bytes())
                .collect(),
        };
        Some(StageIndex::encode(
            &names,
            self.stage.entries.iter().copied(),
        ))
    }

    /// The stage names, visibility, attributes and stage entries of one level.
    pub(crate) fn view(&self, level: Level) -> View<'_> {
        match level {
            Level::Person => View {
                stages: &self.stages,
                track: &self.stage,
                subjects: self.people.len(),
                level,
                history: self,
            },
            Level::Account => View {
                stages: &self.account_stages,
                track: &self.account_stage,
                subjects: self.account_info.len(),
                level,
                history: self,
            },
        }
    }

    /// Account stage names: the model's (see [`History::with_accounts`]), then the others.
    pub fn account_stages(&self) -> &[String] {
        &self.account_stages.names
    }

    /// What is known about each account, indexed like account entries' `subject`.
    pub fn account_info(&self) -> &[AccountInfo] {
        &self.account_info
    }

    /// Stage names: the model's in model order, then those only transitions named.
    pub fn stages(&self) -> &[String] {
        &self.stages.names
    }

    /// How many of [`History::stages`] come from the model.
    pub fn model_stage_count(&self) -> usize {
        self.model_stages
    }

    /// The dense index of a stage name.
    pub fn stage_id(&self, name: &str) -> Option<u32> {
        self.stages.get(name)
    }

    /// Status names: the model's in model order, then those only transitions named.
    pub fn statuses(&self) -> &[String] {
        &self.statuses.names
    }

    /// The dense index of a status name.
    pub fn status_id(&self, name: &str) -> Option<u32> {
        self.statuses.get(name)
    }

    /// The people, indexed by their dense index (as in [`Entry::subject`]).
    pub fn people(&self) -> &People {
        &self.people
    }

    /// Account ids, indexed by their dense index (as in account entries' `subject`).
    pub fn accounts(&self) -> &[String] {
        &self.accounts.names
    }

    /// Rule names, indexed by [`Entry::rule`].
    pub fn rules(&self) -> &[String] {
        &self.rules.names
    }

    /// The name of the rule with a dense index.
    pub fn rule_name(&self, rule: u32) -> &str {
        &self.rules.names[rule as usize]
    }

    /// Person stage entries (every one an entry in the sense of the reports contract).
    pub fn stage_track(&self) -> &Track {
        &self.stage
    }

    /// Person status entries.
    pub fn status_track(&self) -> &Track {
        &self.status
    }

    /// Account stage entries (for account-level waterfalls).
    pub fn account_stage_track(&self) -> &Track {
        &self.account_stage
    }

    /// Account status entries.
    pub fn account_status_track(&self) -> &Track {
        &self.account_status
    }
}

/// One level (people or accounts) of a history, as the stage reports read it.
pub(crate) struct View<'a> {
    stages: &'a Interner,
    /// The level's stage entries.
    pub(crate) track: &'a Track,
    /// How many subjects (people or accounts) there are.
    pub(crate) subjects: usize,
    level: Level,
    history: &'a History,
}

impl View<'_> {
    /// Stage names of the level.
    pub(crate) fn stages(&self) -> &[String] {
        &self.stages.names
    }

    /// The dense index of a stage name of the level.
    pub(crate) fn stage_id(&self, name: &str) -> Option<u32> {
        self.stages.get(name)
    }

    /// Whether point-in-time reports count the subject.
    pub(crate) fn visible(&self, subject: u32) -> bool {
        match self.level {
            Level::Person => self.history.people.visible(subject as usize),
            Level::Account => self.history.account_info[subject as usize].visible,
        }
    }

    /// The subject's attributes.
    pub(crate) fn attrs(&self, subject: u32) -> &Map<String, Value> {
        match self.level {
            Level::Person => self.history.people.get(subject as usize).attrs,
            Level::Account => &self.history.account_info[subject as usize].attrs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(level: Level, subject: &str, field: Field, to: &str, at: i64) -> Transition {
        Transition {
            level,
            subject: subject.into(),
            field,
            order: Order {
                at: Timestamp(at),
                seq: at as u64,
                sub: 0,
            },
            from: None,
            to: to.into(),
            event: Some(format!("e{at}").into()),
            rule: if at % 2 == 0 { "created" } else { "mql" }.into(),
        }
    }

    #[test]
    fn tables_build_the_same_history_as_transitions() {
        use Field::*;
        use Level::*;
        let partitions = [
            vec![
                t(Person, "p1", Stage, "MAL", 1),
                t(Person, "p1", Status, "Open", 1),
                t(Person, "p1", Owner, "rep1", 1),
                t(Person, "p1", Stage, "MQL", 3),
                t(Account, "a1", Stage, "Target", 2),
                t(Person, "p2", Stage, "Invented", 4),
            ],
            vec![
                t(Person, "p3", Stage, "MQL", 5),
                t(Person, "p3", Stage, "MQL", 6),
                t(Account, "a2", Status, "Open", 7),
            ],
        ];
        let people = vec![PersonInfo {
            id: "p3".into(),
            visible: false,
            ..PersonInfo::default()
        }];
        let names = || {
            (
                vec!["MAL".to_string(), "MQL".to_string()],
                vec!["Open".to_string()],
            )
        };
        let bytes: Vec<Vec<u8>> = partitions
            .iter()
            .map(|p| TransitionTable::encode(p))
            .collect();
        let tables: Vec<TransitionTable<'_>> = bytes
            .iter()
            .map(|b| TransitionTable::decode(b).unwrap())
            .collect();
        for keep in [(|_, _| true) as fn(Field, Level) -> bool, |f, l| {
            f == Field::Stage && l == Level::Person
        }] {
            let (stages, statuses) = names();
            let refs = partitions.iter().flatten().map(Transition::as_ref);
            let expected = History::from_refs(
                stages,
                statuses,
                people.clone(),
                refs.filter(|r| keep(r.field, r.level)),
            );
            let (stages, statuses) = names();
            let mut b = History::builder(stages, statuses, people.clone());
            for table in &tables {
                b.add_table(table, keep);
            }
            let got = b.finish();
            assert_eq!(format!("{got:?}"), format!("{expected:?}"));
        }
    }

    #[test]
    fn a_stage_index_rebuilds_the_same_person_stages() {
        use Field::*;
        use Level::*;
        let all = vec![
            t(Person, "p2", Stage, "MQL", 3),
            t(Person, "p1", Stage, "MAL", 1),
            t(Person, "p1", Stage, "Invented", 5),
            t(Person, "p2", Stage, "MAL", 2),
            t(Person, "p1", Stage, "MAL", 6),
        ];
        let names = || (vec!["MAL".to_string(), "MQL".to_string()], vec![]);
        let (stages, statuses) = names();
        let full = History::new(stages, statuses, vec![], all);
        let (n, e) = full.stage_index().unwrap();
        let index = StageIndex::decode(&n, &e).unwrap();
        let (stages, statuses) = names();
        let mut b = History::builder(stages, statuses, vec![]);
        b.add_stage_index(&index);
        let again = b.finish();
        assert_eq!(format!("{again:?}"), format!("{full:?}"));
    }
}
