//! `snapshot`: who is where at an instant.

use crate::history::{until, History, View};
use crate::render::{segment_cell, Report, Tabular};
use crate::util::{Grid, Segments};
use serde::Serialize;
use waterfall_core::{Level, Timestamp};

/// Options of the snapshot report.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotOptions {
    /// The instant (the CLI defaults it to now).
    pub as_of: Timestamp,
    /// Group by this person attribute (`null` for people without it).
    pub by: Option<String>,
}

/// The snapshot report, in the contract's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotReport {
    /// Always `"snapshot"`.
    pub report: &'static str,
    /// The instant, RFC 3339 in UTC (`2026-12-31T00:00:00Z`).
    pub as_of: String,
    /// One row per stage and segment with at least one person.
    pub rows: Vec<SnapshotRow>,
}

/// One row of the snapshot report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRow {
    /// The stage.
    pub stage: String,
    /// The segment (present only with `by`; `null` for people without the attribute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// People whose stage at the instant is this stage.
    pub people: u64,
}

/// The stage of every visible person at an instant: their last entry at or before it.
/// People with no entry by then, and people erased or merged away, are not counted.
pub fn snapshot(history: &History, options: &SnapshotOptions) -> SnapshotReport {
    snapshot_of(&history.view(Level::Person), options)
}

/// The snapshot report over account stages (`by` groups on account attributes).
pub fn account_snapshot(history: &History, options: &SnapshotOptions) -> SnapshotReport {
    snapshot_of(&history.view(Level::Account), options)
}

fn snapshot_of(view: &View<'_>, options: &SnapshotOptions) -> SnapshotReport {
    let track = view.track;
    let segs = Segments::of_view(view, options.by.as_deref());
    let mut grid: Grid<u64> = Grid::new([view.stages().len(), segs.count(), 1]);
    for p in 0..track.subjects() as u32 {
        if !view.visible(p) {
            continue;
        }
        if let Some(e) = until(track.of(p), Some(options.as_of.0)).last() {
            *grid.get([e.value, segs.of(p), 0]) += 1;
        }
    }
    let rows = grid
        .into_sorted_by(|k| *k)
        .into_iter()
        .map(|(k, n)| SnapshotRow {
            stage: view.stages()[k[0] as usize].clone(),
            segment: segs.label(k[1]),
            people: n,
        })
        .collect();
    SnapshotReport {
        report: "snapshot",
        as_of: options.as_of.to_rfc3339(),
        rows,
    }
}

impl Report for SnapshotReport {
    fn name(&self) -> &'static str {
        "snapshot"
    }

    fn title(&self) -> String {
        format!("People in each stage as of {}", self.as_of)
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn tabular(&self, human: bool) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let mut t = Tabular::new(&[("stage", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("people", true);
        for r in &self.rows {
            let mut line = vec![r.stage.clone()];
            if by {
                line.push(segment_cell(&r.segment, human));
            }
            line.push(r.people.to_string());
            t.rows.push(line);
        }
        t
    }
}

impl SnapshotReport {}
