//! `diff`: how two lifecycle models differ over the same events — who moves, and how the flow
//! changes.

use crate::cohort::{cohort, CohortOptions};
use crate::flow::{flow, FlowOptions};
use crate::history::{until, Entry, History};
use crate::render::{table_of, Report, Tabular};
use crate::sla::{sla, SlaOptions};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use waterfall_core::{Period, Timestamp};

/// Options of the diff report.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffOptions {
    /// The instant at which people's stages are compared (and after which history is ignored).
    pub as_of: Timestamp,
    /// The calendar period of the flow, cohort and SLA comparisons.
    pub period: Period,
    /// At most this many example ids per move and per group of transitions.
    pub examples: usize,
    /// The cohort stage whose cohorts are compared (`None`: no cohort comparison).
    pub cohort_stage: Option<String>,
    /// The rules that count as SLA breaches under the old model (its timer rules).
    pub sla_rules_before: Vec<String>,
    /// The rules that count as SLA breaches under the new model.
    pub sla_rules_after: Vec<String>,
}

/// The diff report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffReport {
    /// Always `"diff"`.
    pub report: &'static str,
    /// The instant stages are compared at (RFC 3339, UTC).
    pub as_of: String,
    /// The period of the flow comparison.
    pub period: Period,
    /// People whose stage at `as_of` differs, per (before, after) pair.
    pub moves: Vec<DiffMove>,
    /// Accounts whose account stage at `as_of` differs, per (before, after) pair.
    pub account_moves: Vec<DiffMove>,
    /// Flow rows whose entry count differs.
    pub flow: Vec<DiffFlowRow>,
    /// The cohort stage compared (`null`: none).
    pub cohort_stage: Option<String>,
    /// Cohort cells (size, or attempts that reached a stage) whose count differs.
    pub cohort: Vec<DiffCohortRow>,
    /// Person stage transitions that only one model makes, grouped by rule and stage.
    pub transitions: Vec<DiffTransitions>,
    /// SLA breaches in all, under each model.
    pub sla_breaches: DiffCount,
    /// SLA breach cells (period, rule) whose count differs.
    pub sla: Vec<DiffSlaRow>,
}

/// People who are in one stage under the old model and another under the new one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffMove {
    /// Stage under the old model (`null`: no stage yet).
    pub before: Option<String>,
    /// Stage under the new model (`null`: no stage yet).
    pub after: Option<String>,
    /// How many visible people (or accounts) moved so.
    pub people: u64,
    /// Some of their ids (sorted, at most `examples`).
    pub examples: Vec<String>,
}

/// One flow cell (period, stage) under both models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffFlowRow {
    /// The period label.
    pub period: String,
    /// The stage.
    pub stage: String,
    /// Entries under the old model.
    pub before: u64,
    /// Entries under the new model.
    pub after: u64,
    /// `after - before`.
    pub delta: i64,
    /// `delta / before` (`null` when `before` is 0).
    pub relative: Option<f64>,
}

/// One cohort cell under both models: the cohort's size or how many attempts reached a stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffCohortRow {
    /// The period label of the attempts' start.
    pub period: String,
    /// `size`, or the stage reached.
    pub measure: String,
    /// The count under the old model.
    pub before: u64,
    /// The count under the new model.
    pub after: u64,
    /// `after - before`.
    pub delta: i64,
    /// `delta / before` (`null` when `before` is 0).
    pub relative: Option<f64>,
}

/// Person stage transitions that only one of the two models makes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffTransitions {
    /// `appears` (only the new model makes them) or `vanishes` (only the old one does).
    pub change: &'static str,
    /// The rule that made them (under the model that makes them).
    pub rule: String,
    /// The stage entered.
    pub to: String,
    /// How many transitions.
    pub transitions: u64,
    /// How many distinct people.
    pub people: u64,
    /// One transition each of the first people (by id), at most `examples`.
    pub examples: Vec<DiffExample>,
}

/// One transition that only one model makes, for a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffExample {
    /// The person.
    pub person: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The stage before it (`null`: none, the person was created).
    pub from: Option<String>,
    /// The ingestion sequence of the causing event (a timer's when no event caused it); the
    /// caller, which holds the events, turns it into `event` and `why`.
    #[serde(skip)]
    pub seq: u64,
    /// The id of the event that caused it (`null`: a timer, or not looked up).
    pub event: Option<String>,
    /// Why, in one line: the rule and the event (filled in by the caller, which has events).
    pub why: Option<String>,
}

/// A count under both models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DiffCount {
    /// Under the old model.
    pub before: u64,
    /// Under the new model.
    pub after: u64,
    /// `after - before`.
    pub delta: i64,
}

/// SLA breaches of one rule in one period under both models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffSlaRow {
    /// The period label.
    pub period: String,
    /// The timer rule.
    pub rule: String,
    /// Breaches under the old model.
    pub before: u64,
    /// Breaches under the new model.
    pub after: u64,
    /// `after - before`.
    pub delta: i64,
}

fn relative(before: u64, after: u64) -> Option<f64> {
    (before > 0).then(|| (after as f64 - before as f64) / before as f64)
}

/// Subjects of one level of a history: id, visible, stage at T.
type Subjects = Vec<(String, bool, Option<String>)>;

fn people_at(h: &History, t: i64) -> Subjects {
    h.people()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let stage = until(h.stage_track().of(i as u32), Some(t))
                .last()
                .map(|e| h.stages()[e.value as usize].clone());
            (p.id.to_string(), p.visible, stage)
        })
        .collect()
}

fn accounts_at(h: &History, t: i64) -> Subjects {
    h.account_info()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let stage = until(h.account_stage_track().of(i as u32), Some(t))
                .last()
                .map(|e| h.account_stages()[e.value as usize].clone());
            (a.id.clone(), a.visible, stage)
        })
        .collect()
}

/// Subjects visible in both (or known to one only) whose stage differs, per (before, after).
fn moves(before: Subjects, after: Subjects, examples: usize) -> Vec<DiffMove> {
    let mut after: HashMap<String, (bool, Option<String>)> =
        after.into_iter().map(|(id, v, s)| (id, (v, s))).collect();
    let mut pairs: BTreeMap<(Option<String>, Option<String>), Vec<String>> = BTreeMap::new();
    for (id, visible, b) in before {
        let (visible, a) = match after.remove(&id) {
            Some((v, a)) => (visible && v, a),
            None => (visible, None),
        };
        if visible && b != a {
            pairs.entry((b, a)).or_default().push(id);
        }
    }
    for (id, (visible, a)) in after {
        if visible && a.is_some() {
            pairs.entry((None, a)).or_default().push(id);
        }
    }
    pairs
        .into_iter()
        .map(|((b, a), mut ids)| {
            ids.sort();
            let people = ids.len() as u64;
            ids.truncate(examples);
            DiffMove {
                before: b,
                after: a,
                people,
                examples: ids,
            }
        })
        .collect()
}

/// A transition as both models can name it: instant, causing event, stage and rule.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
struct Key<'a> {
    at: i64,
    seq: u64,
    to: &'a str,
    rule: &'a str,
}

fn keys<'a>(h: &'a History, es: &[Entry]) -> Vec<(Key<'a>, Option<&'a str>)> {
    let mut out: Vec<(Key<'a>, Option<&'a str>)> = es
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let from = i
                .checked_sub(1)
                .map(|j| h.stages()[es[j].value as usize].as_str());
            (
                Key {
                    at: e.at,
                    seq: e.seq,
                    to: &h.stages()[e.value as usize],
                    rule: h.rule_name(e.rule),
                },
                from,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[derive(Default)]
struct Group {
    transitions: u64,
    /// The first transition of each person (by id).
    people: BTreeMap<String, DiffExample>,
}

/// Person stage transitions (at or before `t`) that only one history has.
fn transitions(before: &History, after: &History, t: i64, examples: usize) -> Vec<DiffTransitions> {
    let after_index: HashMap<&str, u32> = after
        .people()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id, i as u32))
        .collect();
    let before_ids: BTreeSet<&str> = before.people().iter().map(|p| p.id).collect();
    let mut groups: BTreeMap<(&'static str, String, String), Group> = BTreeMap::new();
    let mut note = |change: &'static str, person: &str, k: Key<'_>, from: Option<&str>| {
        let g = groups
            .entry((change, k.rule.to_string(), k.to.to_string()))
            .or_default();
        g.transitions += 1;
        g.people
            .entry(person.to_string())
            .or_insert_with(|| DiffExample {
                person: person.to_string(),
                at: Timestamp(k.at).to_rfc3339(),
                from: from.map(str::to_string),
                seq: k.seq,
                event: None,
                why: None,
            });
    };
    let empty: &[Entry] = &[];
    for (i, p) in before.people().iter().enumerate() {
        let b = keys(before, until(before.stage_track().of(i as u32), Some(t)));
        let a = match after_index.get(p.id) {
            Some(&j) => keys(after, until(after.stage_track().of(j), Some(t))),
            None => keys(after, empty),
        };
        // Both sorted: a merge finds the transitions only one side has.
        let (mut x, mut y) = (0, 0);
        while x < b.len() || y < a.len() {
            match (b.get(x), a.get(y)) {
                (Some(l), Some(r)) if l.0 == r.0 => {
                    x += 1;
                    y += 1;
                }
                (Some(l), Some(r)) if l.0 < r.0 => {
                    note("vanishes", p.id, l.0, l.1);
                    x += 1;
                }
                (Some(l), None) => {
                    note("vanishes", p.id, l.0, l.1);
                    x += 1;
                }
                (_, Some(r)) => {
                    note("appears", p.id, r.0, r.1);
                    y += 1;
                }
                (None, None) => break,
            }
        }
    }
    for (j, p) in after.people().iter().enumerate() {
        if !before_ids.contains(p.id) {
            for (k, from) in keys(after, until(after.stage_track().of(j as u32), Some(t))) {
                note("appears", p.id, k, from);
            }
        }
    }
    let position = |stage: &str| {
        after
            .stages()
            .iter()
            .chain(before.stages())
            .position(|s| s == stage)
    };
    let mut out: Vec<DiffTransitions> = groups
        .into_iter()
        .map(|((change, rule, to), g)| DiffTransitions {
            change,
            people: g.people.len() as u64,
            transitions: g.transitions,
            examples: g.people.into_values().take(examples).collect(),
            rule,
            to,
        })
        .collect();
    out.sort_by_cached_key(|g| (position(&g.to), g.rule.clone(), g.change));
    out
}

/// Compares two histories of the same people (replayed under two models).
pub fn diff(before: &History, after: &History, options: &DiffOptions) -> DiffReport {
    let t = options.as_of.0;
    let moves_of_people = moves(people_at(before, t), people_at(after, t), options.examples);
    let account_moves = moves(
        accounts_at(before, t),
        accounts_at(after, t),
        options.examples,
    );
    let position = |stage: &str| {
        after
            .stages()
            .iter()
            .chain(before.stages())
            .position(|s| s == stage)
    };
    let fo = FlowOptions {
        period: options.period,
        as_of: Some(options.as_of),
        ..FlowOptions::default()
    };
    let mut cells: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for r in flow(before, &fo).rows {
        cells.entry((r.period, r.stage)).or_default().0 += r.entries;
    }
    for r in flow(after, &fo).rows {
        cells.entry((r.period, r.stage)).or_default().1 += r.entries;
    }
    let mut flow: Vec<DiffFlowRow> = cells
        .into_iter()
        .filter(|(_, (b, a))| b != a)
        .map(|((period, stage), (b, a))| DiffFlowRow {
            period,
            stage,
            before: b,
            after: a,
            delta: a as i64 - b as i64,
            relative: relative(b, a),
        })
        .collect();
    flow.sort_by_cached_key(|r| (r.period.clone(), position(&r.stage)));
    let mut cohort_rows = Vec::new();
    if let Some(stage) = &options.cohort_stage {
        let co = CohortOptions {
            stage: stage.clone(),
            period: options.period,
            by: None,
            as_of: Some(options.as_of),
        };
        // Key: (period, 0 for size / 1 + stage position for reached), measure.
        let mut cells: BTreeMap<(String, usize, String), (u64, u64)> = BTreeMap::new();
        for (side, h) in [(0, before), (1, after)] {
            for r in cohort(h, &co).rows {
                let cell = cells
                    .entry((r.period.clone(), 0, "size".into()))
                    .or_default();
                if side == 0 {
                    cell.0 += r.size;
                } else {
                    cell.1 += r.size;
                }
                for (s, n) in r.reached.0 {
                    let rank = position(&s).map_or(usize::MAX, |p| p + 1);
                    let cell = cells.entry((r.period.clone(), rank, s)).or_default();
                    if side == 0 {
                        cell.0 += n;
                    } else {
                        cell.1 += n;
                    }
                }
            }
        }
        cohort_rows = cells
            .into_iter()
            .filter(|(_, (b, a))| b != a)
            .map(|((period, _, measure), (b, a))| DiffCohortRow {
                period,
                measure,
                before: b,
                after: a,
                delta: a as i64 - b as i64,
                relative: relative(b, a),
            })
            .collect();
    }
    let so = |rules: &[String]| SlaOptions {
        rules: rules.to_vec(),
        period: options.period,
        by: None,
        from: None,
        to: None,
        as_of: Some(options.as_of),
    };
    let mut sla_cells: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut total = DiffCount::default();
    for r in sla(before, &so(&options.sla_rules_before)).rows {
        total.before += r.breaches;
        sla_cells.entry((r.period, r.rule)).or_default().0 += r.breaches;
    }
    for r in sla(after, &so(&options.sla_rules_after)).rows {
        total.after += r.breaches;
        sla_cells.entry((r.period, r.rule)).or_default().1 += r.breaches;
    }
    total.delta = total.after as i64 - total.before as i64;
    let sla_rows = sla_cells
        .into_iter()
        .filter(|(_, (b, a))| b != a)
        .map(|((period, rule), (b, a))| DiffSlaRow {
            period,
            rule,
            before: b,
            after: a,
            delta: a as i64 - b as i64,
        })
        .collect();
    DiffReport {
        report: "diff",
        as_of: options.as_of.to_rfc3339(),
        period: options.period,
        moves: moves_of_people,
        account_moves,
        flow,
        cohort_stage: options.cohort_stage.clone(),
        cohort: cohort_rows,
        transitions: transitions(before, after, t, options.examples),
        sla_breaches: total,
        sla: sla_rows,
    }
}

impl DiffReport {
    /// Whether the two models agree on everything this report compares.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
            && self.account_moves.is_empty()
            && self.flow.is_empty()
            && self.cohort.is_empty()
            && self.transitions.is_empty()
            && self.sla.is_empty()
    }

    /// The human form in sections: people and accounts that move, flow, cohort, transitions
    /// that appear or vanish (with examples and why), SLA breaches.
    pub fn sections(&self) -> Vec<(String, Tabular)> {
        let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".into());
        let rel = |r: Option<f64>| r.map_or_else(|| "-".into(), |r| format!("{:+.1}%", r * 100.0));
        let mut out = Vec::new();
        for (what, moves) in [("people", &self.moves), ("accounts", &self.account_moves)] {
            let mut t = Tabular::new(&[
                ("old stage", false),
                ("new stage", false),
                (what, true),
                ("examples", false),
            ]);
            for m in moves {
                t.rows.push(vec![
                    name(&m.before),
                    name(&m.after),
                    m.people.to_string(),
                    m.examples.join(", "),
                ]);
            }
            let n: u64 = moves.iter().map(|m| m.people).sum();
            out.push((
                format!("{n} {what} in a different stage as of {}", self.as_of),
                t,
            ));
        }
        let mut t = Tabular::new(&[
            ("period", false),
            ("stage", false),
            ("old entries", true),
            ("new entries", true),
            ("change", true),
            ("relative", true),
        ]);
        for r in &self.flow {
            t.rows.push(vec![
                r.period.clone(),
                r.stage.clone(),
                r.before.to_string(),
                r.after.to_string(),
                format!("{:+}", r.delta),
                rel(r.relative),
            ]);
        }
        out.push((
            format!("Flow per {}: cells that change", self.period.as_str()),
            t,
        ));
        if let Some(stage) = &self.cohort_stage {
            let mut t = Tabular::new(&[
                ("period", false),
                ("measure", false),
                ("old", true),
                ("new", true),
                ("change", true),
                ("relative", true),
            ]);
            for r in &self.cohort {
                t.rows.push(vec![
                    r.period.clone(),
                    if r.measure == "size" {
                        "cohort size".into()
                    } else {
                        format!("reached {}", r.measure)
                    },
                    r.before.to_string(),
                    r.after.to_string(),
                    format!("{:+}", r.delta),
                    rel(r.relative),
                ]);
            }
            out.push((
                format!(
                    "{stage} cohorts per {}: cells that change",
                    self.period.as_str()
                ),
                t,
            ));
        }
        let mut t = Tabular::new(&[
            ("change", false),
            ("rule", false),
            ("to", false),
            ("transitions", true),
            ("people", true),
            ("examples (why)", false),
        ]);
        for g in &self.transitions {
            let examples: Vec<String> = g
                .examples
                .iter()
                .map(|e| match &e.why {
                    Some(why) => format!("{} at {}: {why}", e.person, e.at),
                    None => format!("{} at {}", e.person, e.at),
                })
                .collect();
            t.rows.push(vec![
                g.change.into(),
                g.rule.clone(),
                g.to.clone(),
                g.transitions.to_string(),
                g.people.to_string(),
                examples.join("\n"),
            ]);
        }
        out.push(("Stage transitions that appear or vanish".into(), t));
        let mut t = Tabular::new(&[
            ("period", false),
            ("rule", false),
            ("old breaches", true),
            ("new breaches", true),
            ("change", true),
        ]);
        for r in &self.sla {
            t.rows.push(vec![
                r.period.clone(),
                r.rule.clone(),
                r.before.to_string(),
                r.after.to_string(),
                format!("{:+}", r.delta),
            ]);
        }
        out.push((
            format!(
                "SLA breaches: {} before, {} after ({:+}); cells that change",
                self.sla_breaches.before, self.sla_breaches.after, self.sla_breaches.delta
            ),
            t,
        ));
        out
    }
}

impl Report for DiffReport {
    fn name(&self) -> &'static str {
        "diff"
    }

    fn title(&self) -> String {
        format!(
            "Old model vs new model: who moves as of {}, and flow cells that change",
            self.as_of
        )
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn to_table(&self) -> String {
        let mut out = self.title();
        out.push('\n');
        for (title, t) in self.sections() {
            out.push('\n');
            out.push_str(&table_of(&title, &t));
        }
        out
    }

    /// Moves and flow changes in one table: a move is a line `moved`, old stage, new stage and
    /// how many people; a flow change is a line per period and stage with both counts.
    fn tabular(&self, human: bool) -> Tabular {
        let mut t = Tabular::new(&[
            ("period", false),
            ("before", false),
            ("after", false),
            ("entries_before", true),
            ("entries_after", true),
            ("change", true),
        ]);
        if human {
            t.headers = [
                "period",
                "old stage",
                "new stage",
                "old entries",
                "new entries",
                "change",
            ]
            .map(String::from)
            .to_vec();
        }
        let name = |s: &Option<String>| match s {
            Some(s) => s.clone(),
            None if human => "(none)".into(),
            None => String::new(),
        };
        for m in &self.moves {
            t.rows.push(vec![
                "moved".into(),
                name(&m.before),
                name(&m.after),
                String::new(),
                String::new(),
                m.people.to_string(),
            ]);
        }
        for r in &self.flow {
            t.rows.push(vec![
                r.period.clone(),
                r.stage.clone(),
                r.stage.clone(),
                r.before.to_string(),
                r.after.to_string(),
                format!("{:+}", r.delta),
            ]);
        }
        t
    }
}

impl DiffReport {}
