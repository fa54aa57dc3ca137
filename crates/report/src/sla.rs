//! `sla`: firings of SLA rules (e.g. MQLs not accepted in time), per period and owner.

use crate::history::{until, History};
use crate::render::{segment_cell, Report, Tabular};
use crate::util::{Grid, Periods, Segments};
use serde::Serialize;
use waterfall_core::{Period, Timestamp};

/// Options of the SLA report.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaOptions {
    /// The rule names that mark an SLA breach; a name ending in `*` matches by prefix.
    pub rules: Vec<String>,
    /// The calendar period rows are grouped by (of the breach).
    pub period: Period,
    /// Group by this person attribute, typically the owner (`null` for people without it).
    pub by: Option<String>,
    /// Only breaches at or after this instant.
    pub from: Option<Timestamp>,
    /// Only breaches strictly before this instant.
    pub to: Option<Timestamp>,
    /// Ignore everything after this instant.
    pub as_of: Option<Timestamp>,
}

/// The SLA report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaReport {
    /// Always `"sla"`.
    pub report: &'static str,
    /// The period rows are grouped by.
    pub period: Period,
    /// The rule names (or prefixes) asked for.
    pub rules: Vec<String>,
    /// One row per period, rule and segment with at least one breach.
    pub rows: Vec<SlaRow>,
}

/// Breaches of one rule in one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaRow {
    /// The period label.
    pub period: String,
    /// The rule that fired.
    pub rule: String,
    /// The segment (present only with `by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// Firings: the changes one rule made to one person at one point of the order count once.
    pub breaches: u64,
    /// Distinct people breached.
    pub people: u64,
}

#[derive(Default)]
struct Cell {
    breaches: u64,
    people: u64,
    last: u32,
}

/// Counts the person-level stage and status changes made by the given rules.
pub fn sla(history: &History, options: &SlaOptions) -> SlaReport {
    let matches: Vec<bool> = history
        .rules()
        .iter()
        .map(|name| {
            options.rules.iter().any(|r| match r.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == r,
            })
        })
        .collect();
    let segs = Segments::new(history, options.by.as_deref());
    let span = match (history.stage_track().span(), history.status_track().span()) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
    };
    let mut periods = Periods::new(options.period, span);
    let as_of = options.as_of.map(|t| t.0);
    let from = options.from.map_or(i64::MIN, |t| t.0);
    let to = options.to.map_or(i64::MAX, |t| t.0);
    let mut grid: Grid<Cell> = Grid::new([periods.count_hint(), matches.len(), segs.count()]);
    let mut firings: Vec<(i64, u64, u32)> = Vec::new();
    for p in 0..history.people().len() as u32 {
        firings.clear();
        for track in [history.stage_track(), history.status_track()] {
            for e in until(track.of(p), as_of) {
                if matches[e.rule as usize] && e.at >= from && e.at < to {
                    firings.push((e.at, e.seq, e.rule));
                }
            }
        }
        firings.sort_unstable();
        firings.dedup();
        for &(at, _, rule) in &firings {
            let cell = grid.get([periods.index(at), rule, segs.of(p)]);
            cell.breaches += 1;
            if cell.last != p + 1 {
                cell.last = p + 1;
                cell.people += 1;
            }
        }
    }
    let rows = grid
        .into_sorted_by(|k| (periods.key_of(k[0]), history.rule_name(k[1]), k[2]))
        .into_iter()
        .map(|(k, c)| SlaRow {
            period: periods.label(k[0]),
            rule: history.rule_name(k[1]).to_string(),
            segment: segs.label(k[2]),
            breaches: c.breaches,
            people: c.people,
        })
        .collect();
    SlaReport {
        report: "sla",
        period: options.period,
        rules: options.rules.clone(),
        rows,
    }
}

impl Report for SlaReport {
    fn name(&self) -> &'static str {
        "sla"
    }

    fn title(&self) -> String {
        format!(
            "SLA breaches ({}) per {}",
            self.rules.join(", "),
            self.period.as_str()
        )
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn tabular(&self, human: bool) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let mut t = Tabular::new(&[("period", false), ("rule", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("breaches", true);
        t.push_column("people", true);
        for r in &self.rows {
            let mut line = vec![r.period.clone(), r.rule.clone()];
            if by {
                line.push(segment_cell(&r.segment, human));
            }
            line.push(r.breaches.to_string());
            line.push(r.people.to_string());
            t.rows.push(line);
        }
        t
    }
}

impl SlaReport {}
