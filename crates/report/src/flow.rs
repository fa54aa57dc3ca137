//! `flow`: how many entered each stage, per period.

use crate::history::{until, History, View};
use crate::render::{segment_cell, segment_order, Report, Tabular};
use crate::util::{used_stages, Grid, Periods, Segments};
use serde::Serialize;
use waterfall_core::{Level, Period, Timestamp};

/// Options of the flow report.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowOptions {
    /// The calendar period rows are grouped by.
    pub period: Period,
    /// Only entries at or after this instant.
    pub from: Option<Timestamp>,
    /// Only entries strictly before this instant.
    pub to: Option<Timestamp>,
    /// Group by this person attribute (`null` for people without it).
    pub by: Option<String>,
    /// Ignore everything after this instant.
    pub as_of: Option<Timestamp>,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            period: Period::Month,
            from: None,
            to: None,
            by: None,
            as_of: None,
        }
    }
}

/// The flow report, in the contract's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowReport {
    /// Always `"flow"`.
    pub report: &'static str,
    /// The period rows are grouped by.
    pub period: Period,
    /// One row per period, stage and segment with at least one entry.
    pub rows: Vec<FlowRow>,
    /// Every stage name in model order (for rendering columns; not part of the JSON).
    #[serde(skip)]
    pub stage_order: Vec<String>,
}

/// One row of the flow report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRow {
    /// The period label (`2025-01`).
    pub period: String,
    /// The stage entered.
    pub stage: String,
    /// The segment (present only with `by`; `null` for people without the attribute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// Entries into the stage in the period.
    pub entries: u64,
    /// Distinct people with at least one such entry.
    pub people: u64,
}

#[derive(Default)]
struct Cell {
    entries: u64,
    people: u64,
    last: u32,
}

/// Counts entries into each stage per period (and segment): entries with `from <= at < to`.
pub fn flow(history: &History, options: &FlowOptions) -> FlowReport {
    flow_of(&history.view(Level::Person), options)
}

/// The flow report over account stages (`by` groups on account attributes).
pub fn account_flow(history: &History, options: &FlowOptions) -> FlowReport {
    flow_of(&history.view(Level::Account), options)
}

fn flow_of(view: &View<'_>, options: &FlowOptions) -> FlowReport {
    let track = view.track;
    let segs = Segments::of_view(view, options.by.as_deref());
    let mut periods = Periods::new(options.period, track.span());
    let mut grid: Grid<Cell> = Grid::new([periods.count_hint(), view.stages().len(), segs.count()]);
    let from = options.from.map_or(i64::MIN, |t| t.0);
    let to = options.to.map_or(i64::MAX, |t| t.0);
    let as_of = options.as_of.map(|t| t.0);
    for p in 0..track.subjects() as u32 {
        let seg = segs.of(p);
        for e in until(track.of(p), as_of) {
            if e.at < from || e.at >= to {
                continue;
            }
            let cell = grid.get([periods.index(e.at), e.value, seg]);
            cell.entries += 1;
            // A person's entries are contiguous, so "last person seen" counts distinct people.
            if cell.last != p + 1 {
                cell.last = p + 1;
                cell.people += 1;
            }
        }
    }
    let rows = grid
        .into_sorted_by(|k| (periods.key_of(k[0]), k[1], k[2]))
        .into_iter()
        .map(|(k, c)| FlowRow {
            period: periods.label(k[0]),
            stage: view.stages()[k[1] as usize].clone(),
            segment: segs.label(k[2]),
            entries: c.entries,
            people: c.people,
        })
        .collect();
    FlowReport {
        report: "flow",
        period: options.period,
        rows,
        stage_order: view.stages().to_vec(),
    }
}

impl Report for FlowReport {
    fn name(&self) -> &'static str {
        "flow"
    }

    fn title(&self) -> String {
        format!("Entries into each stage per {}", self.period.as_str())
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn tabular(&self, human: bool) -> Tabular {
        if human {
            self.human_table()
        } else {
            self.flat_table()
        }
    }
}

impl FlowReport {
    /// One line per period (and segment), readable columns.
    fn human_table(&self) -> Tabular {
        // One line per period (and segment), one column per stage that has entries.
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let stages = used_stages(
            &self.stage_order,
            self.rows.iter().map(|r| r.stage.as_str()),
        );
        let mut t = Tabular::new(&[("period", false)]);
        if by {
            t.push_column("segment", false);
        }
        for s in &stages {
            t.push_column(s.clone(), true);
        }
        let mut lines: Vec<(String, Option<Option<String>>, Vec<String>)> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for r in &self.rows {
            let i = *index.entry((&r.period, &r.segment)).or_insert_with(|| {
                lines.push((
                    r.period.clone(),
                    r.segment.clone(),
                    vec![String::new(); stages.len()],
                ));
                lines.len() - 1
            });
            if let Some(j) = stages.iter().position(|s| *s == r.stage) {
                lines[i].2[j] = r.entries.to_string();
            }
        }
        lines.sort_by(|a, b| (&a.0, segment_order(&a.1)).cmp(&(&b.0, segment_order(&b.1))));
        for (period, segment, cells) in lines {
            let mut line = vec![period];
            if by {
                line.push(segment_cell(&segment, true));
            }
            line.extend(cells);
            t.rows.push(line);
        }
        t
    }

    /// One value per column, for CSV.
    fn flat_table(&self) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let mut t = Tabular::new(&[("period", false), ("stage", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("entries", true);
        t.push_column("people", true);
        for r in &self.rows {
            let mut line = vec![r.period.clone(), r.stage.clone()];
            if by {
                line.push(segment_cell(&r.segment, false));
            }
            line.push(r.entries.to_string());
            line.push(r.people.to_string());
            t.rows.push(line);
        }
        t
    }
}
