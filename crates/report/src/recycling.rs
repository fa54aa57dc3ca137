//! `recycling`: recycle entries, how often people were recycled, and repeat entries into the
//! cohort stage (the re-MQL rate).

use crate::history::{until, History};
use crate::render::{pct, segment_cell, Report, Tabular};
use crate::util::{Grid, Periods, Segments};
use serde::Serialize;
use waterfall_core::{Period, Timestamp};

/// Options of the recycling report.
#[derive(Debug, Clone, PartialEq)]
pub struct RecyclingOptions {
    /// The stage whose repeat entries are counted (e.g. `MQL`).
    pub stage: String,
    /// The recycle stages (e.g. `MRL`, `SRL`): each entry into one is a recycle.
    pub recycle_stages: Vec<String>,
    /// The calendar period rows are grouped by.
    pub period: Period,
    /// Group by this person attribute (`null` for people without it).
    pub by: Option<String>,
    /// Ignore everything after this instant.
    pub as_of: Option<Timestamp>,
}

/// The recycling report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecyclingReport {
    /// Always `"recycling"`.
    pub report: &'static str,
    /// The stage whose repeat entries are counted.
    pub stage: String,
    /// The recycle stages.
    pub recycle_stages: Vec<String>,
    /// The period rows are grouped by.
    pub period: Period,
    /// One row per period and segment with a recycle entry or an entry into `stage`.
    pub rows: Vec<RecyclingRow>,
}

/// Recycling in one period.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RecyclingRow {
    /// The period label.
    pub period: String,
    /// The segment (present only with `by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// Entries into any recycle stage in the period.
    pub recycle_entries: u64,
    /// Distinct people with a recycle entry in the period.
    pub recycled_people: u64,
    /// Of those, people whose recycle count (all recycles up to their last one in the
    /// period) is 1.
    pub recycled_once: u64,
    /// Of those, people whose recycle count is 2.
    pub recycled_twice: u64,
    /// Of those, people whose recycle count is 3 or more.
    pub recycled_3_plus: u64,
    /// Entries into `stage` in the period.
    pub stage_entries: u64,
    /// Of those, entries that are not the person's first entry into `stage`.
    pub repeat_entries: u64,
    /// `repeat_entries / stage_entries` (`null` when there were none).
    pub repeat_rate: Option<f64>,
}

/// Counts recycles and repeat entries per period.
pub fn recycling(history: &History, options: &RecyclingOptions) -> RecyclingReport {
    let track = history.stage_track();
    let segs = Segments::new(history, options.by.as_deref());
    let mut periods = Periods::new(options.period, track.span());
    let mut is_recycle = vec![false; history.stages().len()];
    for s in &options.recycle_stages {
        if let Some(i) = history.stage_id(s) {
            is_recycle[i as usize] = true;
        }
    }
    let cohort_stage = history.stage_id(&options.stage);
    let mut grid: Grid<RecyclingRow> = Grid::new([periods.count_hint(), segs.count(), 1]);
    let as_of = options.as_of.map(|t| t.0);
    for p in 0..track.subjects() as u32 {
        let seg = segs.of(p);
        let mut recycles = 0u64;
        let mut entered = false;
        // The period of the person's latest recycle entry, and their count by then.
        let mut pending: Option<(u32, u64)> = None;
        for e in until(track.of(p), as_of) {
            let pi = periods.index(e.at);
            if is_recycle[e.value as usize] {
                recycles += 1;
                if let Some((pp, n)) = pending.filter(|(pp, _)| *pp != pi) {
                    settle(grid.get([pp, seg, 0]), n);
                }
                pending = Some((pi, recycles));
                grid.get([pi, seg, 0]).recycle_entries += 1;
            }
            if Some(e.value) == cohort_stage {
                let row = grid.get([pi, seg, 0]);
                row.stage_entries += 1;
                if entered {
                    row.repeat_entries += 1;
                }
                entered = true;
            }
        }
        if let Some((pp, n)) = pending {
            settle(grid.get([pp, seg, 0]), n);
        }
    }
    let rows = grid
        .into_sorted_by(|k| (periods.key_of(k[0]), k[1]))
        .into_iter()
        .map(|(k, mut row)| {
            row.period = periods.label(k[0]);
            row.segment = segs.label(k[1]);
            row.repeat_rate = (row.stage_entries > 0)
                .then(|| row.repeat_entries as f64 / row.stage_entries as f64);
            row
        })
        .collect();
    RecyclingReport {
        report: "recycling",
        stage: options.stage.clone(),
        recycle_stages: options.recycle_stages.clone(),
        period: options.period,
        rows,
    }
}

/// Counts one recycled person in a period, bucketed by their recycle count.
fn settle(row: &mut RecyclingRow, recycles: u64) {
    row.recycled_people += 1;
    match recycles {
        0 | 1 => row.recycled_once += 1,
        2 => row.recycled_twice += 1,
        _ => row.recycled_3_plus += 1,
    }
}

impl Report for RecyclingReport {
    fn name(&self) -> &'static str {
        "recycling"
    }

    fn title(&self) -> String {
        format!(
            "Recycles (into {}) and repeat {} entries per {}",
            self.recycle_stages.join(", "),
            self.stage,
            self.period.as_str()
        )
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn tabular(&self, human: bool) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let mut t = Tabular::new(&[("period", false)]);
        if by {
            t.push_column("segment", false);
        }
        let stage = &self.stage;
        let columns: Vec<String> = if human {
            vec![
                "recycles".into(),
                "people".into(),
                "once".into(),
                "twice".into(),
                "3+".into(),
                format!("{stage} entries"),
                format!("repeat {stage}"),
            ]
        } else {
            [
                "recycle_entries",
                "recycled_people",
                "recycled_once",
                "recycled_twice",
                "recycled_3_plus",
                "stage_entries",
                "repeat_entries",
                "repeat_rate",
            ]
            .map(String::from)
            .to_vec()
        };
        for c in columns {
            t.push_column(c, true);
        }
        for r in &self.rows {
            let mut line = vec![r.period.clone()];
            if by {
                line.push(segment_cell(&r.segment, human));
            }
            for n in [
                r.recycle_entries,
                r.recycled_people,
                r.recycled_once,
                r.recycled_twice,
                r.recycled_3_plus,
                r.stage_entries,
            ] {
                line.push(n.to_string());
            }
            if human {
                line.push(format!(
                    "{} ({})",
                    r.repeat_entries,
                    pct(r.repeat_entries, r.stage_entries)
                ));
            } else {
                line.push(r.repeat_entries.to_string());
                line.push(r.repeat_rate.map(|x| x.to_string()).unwrap_or_default());
            }
            t.rows.push(line);
        }
        t
    }
}

impl RecyclingReport {}
