//! `diff`: how two lifecycle models differ over the same events — who moves, and how the flow
//! changes.

use crate::flow::{flow, FlowOptions};
use crate::history::{until, History};
use crate::render::{Report, Tabular};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use waterfall_core::{Period, Timestamp};

/// Options of the diff report.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffOptions {
    /// The instant at which people's stages are compared (and after which history is ignored).
    pub as_of: Timestamp,
    /// The calendar period of the flow comparison.
    pub period: Period,
    /// At most this many example person ids per move.
    pub examples: usize,
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
    /// Flow rows whose entry count differs.
    pub flow: Vec<DiffFlowRow>,
}

/// People who are in one stage under the old model and another under the new one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffMove {
    /// Stage under the old model (`null`: no stage yet).
    pub before: Option<String>,
    /// Stage under the new model (`null`: no stage yet).
    pub after: Option<String>,
    /// How many visible people moved so.
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
}

/// Compares two histories of the same people (replayed under two models).
pub fn diff(before: &History, after: &History, options: &DiffOptions) -> DiffReport {
    let t = Some(options.as_of.0);
    let stage_at = |h: &History, p: u32| -> Option<String> {
        until(h.stage_track().of(p), t)
            .last()
            .map(|e| h.stages()[e.value as usize].clone())
    };
    let after_index: HashMap<&str, u32> = after
        .people()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i as u32))
        .collect();
    let mut moves: BTreeMap<(Option<String>, Option<String>), Vec<String>> = BTreeMap::new();
    let mut note = |id: &str, b: Option<String>, a: Option<String>| {
        if b != a {
            moves.entry((b, a)).or_default().push(id.to_string());
        }
    };
    for (i, p) in before.people().iter().enumerate() {
        let j = after_index.get(p.id.as_str()).copied();
        let visible = p.visible && j.is_none_or(|j| after.people()[j as usize].visible);
        if visible {
            note(
                &p.id,
                stage_at(before, i as u32),
                j.and_then(|j| stage_at(after, j)),
            );
        }
    }
    let before_ids: std::collections::HashSet<&str> =
        before.people().iter().map(|p| p.id.as_str()).collect();
    for (j, p) in after.people().iter().enumerate() {
        if p.visible && !before_ids.contains(p.id.as_str()) {
            note(&p.id, None, stage_at(after, j as u32));
        }
    }
    let moves = moves
        .into_iter()
        .map(|((b, a), mut ids)| {
            ids.sort();
            let people = ids.len() as u64;
            ids.truncate(options.examples);
            DiffMove {
                before: b,
                after: a,
                people,
                examples: ids,
            }
        })
        .collect();
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
    let position = |stage: &str| {
        after
            .stages()
            .iter()
            .chain(before.stages())
            .position(|s| s == stage)
    };
    let mut flow: Vec<DiffFlowRow> = cells
        .into_iter()
        .filter(|(_, (b, a))| b != a)
        .map(|((period, stage), (b, a))| DiffFlowRow {
            period,
            stage,
            before: b,
            after: a,
            delta: a as i64 - b as i64,
        })
        .collect();
    flow.sort_by_cached_key(|r| (r.period.clone(), position(&r.stage)));
    DiffReport {
        report: "diff",
        as_of: options.as_of.to_rfc3339(),
        period: options.period,
        moves,
        flow,
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

    fn human(&self) -> Tabular {
        self.tabular(true)
    }

    fn flat(&self) -> Tabular {
        self.tabular(false)
    }
}

impl DiffReport {
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
