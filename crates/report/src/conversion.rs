//! `conversion`: the stage-to-stage matrix — where each entry went next, recycle paths included.

use crate::history::{until, History};
use crate::render::{pct, segment_cell, Report, Tabular};
use crate::util::{used_stages, Grid, NamedMap, Segments};
use serde::Serialize;
use waterfall_core::Timestamp;

/// Options of the conversion report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversionOptions {
    /// Only entries (into the from-stage) at or after this instant.
    pub from: Option<Timestamp>,
    /// Only entries (into the from-stage) strictly before this instant.
    pub to: Option<Timestamp>,
    /// Group by this person attribute (`null` for people without it).
    pub by: Option<String>,
    /// Ignore everything after this instant (an entry whose next entry comes later stayed).
    pub as_of: Option<Timestamp>,
}

/// The conversion report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversionReport {
    /// Always `"conversion"`.
    pub report: &'static str,
    /// One row per from-stage and segment.
    pub rows: Vec<ConversionRow>,
    /// Every stage name in model order (for rendering columns; not part of the JSON).
    #[serde(skip)]
    pub stage_order: Vec<String>,
}

/// Where the entries into one stage went next.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversionRow {
    /// The stage entered.
    pub from: String,
    /// The segment (present only with `by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// Entries into `from`.
    pub entries: u64,
    /// For each next stage: how many of those entries were followed next by an entry into it.
    pub next: NamedMap<u64>,
    /// `next` as shares of `entries`.
    pub share: NamedMap<f64>,
    /// Entries with no next entry yet (still in `from`).
    pub stayed: u64,
}

#[derive(Default)]
struct Cell {
    entries: u64,
    stayed: u64,
}

/// Counts, for each entry into a stage, the stage the person entered next.
pub fn conversion(history: &History, options: &ConversionOptions) -> ConversionReport {
    let track = history.stage_track();
    let segs = Segments::new(history, options.by.as_deref());
    let nstages = history.stages().len();
    let mut totals: Grid<Cell> = Grid::new([nstages, segs.count(), 1]);
    let mut next: Grid<u64> = Grid::new([nstages, segs.count(), nstages]);
    let as_of = options.as_of.map(|t| t.0);
    let from = options.from.map_or(i64::MIN, |t| t.0);
    let to = options.to.map_or(i64::MAX, |t| t.0);
    for p in 0..track.subjects() as u32 {
        let es = until(track.of(p), as_of);
        let seg = segs.of(p);
        for (i, e) in es.iter().enumerate() {
            if e.at < from || e.at >= to {
                continue;
            }
            let cell = totals.get([e.value, seg, 0]);
            cell.entries += 1;
            match es.get(i + 1) {
                Some(n) => *next.get([e.value, seg, n.value]) += 1,
                None => cell.stayed += 1,
            }
        }
    }
    let mut next = next.into_sorted_by(|k| *k).into_iter().peekable();
    let mut rows = Vec::new();
    for (k, cell) in totals.into_sorted_by(|k| *k) {
        let mut row = ConversionRow {
            from: history.stages()[k[0] as usize].clone(),
            segment: segs.label(k[1]),
            entries: cell.entries,
            next: NamedMap::default(),
            share: NamedMap::default(),
            stayed: cell.stayed,
        };
        while let Some((nk, n)) = next.next_if(|(nk, _)| nk[0] == k[0] && nk[1] == k[1]) {
            let name = history.stages()[nk[2] as usize].clone();
            row.share
                .0
                .push((name.clone(), n as f64 / cell.entries as f64));
            row.next.0.push((name, n));
        }
        rows.push(row);
    }
    ConversionReport {
        report: "conversion",
        rows,
        stage_order: history.stages().to_vec(),
    }
}

impl Report for ConversionReport {
    fn name(&self) -> &'static str {
        "conversion"
    }

    fn title(&self) -> String {
        "Where entries into each stage went next: count (share)".into()
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn tabular(&self, human: bool) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let stages = used_stages(
            &self.stage_order,
            self.rows
                .iter()
                .flat_map(|r| r.next.0.iter().map(|(s, _)| s.as_str())),
        );
        let mut t = Tabular::new(&[("from", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("entries", true);
        for s in &stages {
            t.push_column(if human { s.clone() } else { format!("to_{s}") }, true);
        }
        t.push_column("stayed", true);
        for r in &self.rows {
            let mut line = vec![r.from.clone()];
            if by {
                line.push(segment_cell(&r.segment, human));
            }
            line.push(r.entries.to_string());
            for s in &stages {
                let n = r.next.get(s).copied().unwrap_or(0);
                line.push(match (human, n) {
                    (true, 0) => String::new(),
                    (true, n) => format!("{n} ({})", pct(n, r.entries)),
                    (false, n) => n.to_string(),
                });
            }
            line.push(r.stayed.to_string());
            t.rows.push(line);
        }
        t
    }
}

impl ConversionReport {}
