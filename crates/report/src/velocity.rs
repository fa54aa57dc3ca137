//! `velocity`: time in stage — how long stays lasted, and how old the open ones are.

use crate::history::{until, History};
use crate::render::{days_cell, num, segment_cell, Report, Tabular};
use crate::util::{days, quantile_cont, Grid, Periods, Segments};
use serde::Serialize;
use waterfall_core::{Period, Timestamp};

/// Options of the velocity report.
#[derive(Debug, Clone, PartialEq)]
pub struct VelocityOptions {
    /// The calendar period closed stays are grouped by (of their end).
    pub period: Period,
    /// Only stays that ended at or after this instant.
    pub from: Option<Timestamp>,
    /// Only stays that ended strictly before this instant.
    pub to: Option<Timestamp>,
    /// Group by this person attribute (`null` for people without it).
    pub by: Option<String>,
    /// Ignore everything after this instant; open stays are measured up to it (default: the
    /// latest instant in the history).
    pub as_of: Option<Timestamp>,
}

impl Default for VelocityOptions {
    fn default() -> Self {
        VelocityOptions {
            period: Period::Month,
            from: None,
            to: None,
            by: None,
            as_of: None,
        }
    }
}

/// The velocity report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VelocityReport {
    /// Always `"velocity"`.
    pub report: &'static str,
    /// The period closed stays are grouped by.
    pub period: Period,
    /// The instant open stays are measured to (RFC 3339, UTC; `null` for an empty history).
    pub as_of: Option<String>,
    /// Closed stays per period of their end, stage and segment.
    pub rows: Vec<VelocityRow>,
    /// Stays still open at `as_of`, per stage and segment (visible people only).
    pub open: Vec<OpenStayRow>,
}

/// Closed stays in one stage that ended in one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VelocityRow {
    /// The period label of the stays' end.
    pub period: String,
    /// The stage stayed in.
    pub stage: String,
    /// The segment (present only with `by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// How many stays ended.
    pub stays: u64,
    /// Median days in the stage (interpolated).
    pub median_days: f64,
    /// 90th percentile of days in the stage (interpolated).
    pub p90_days: f64,
}

/// Stays in one stage still open at `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenStayRow {
    /// The stage.
    pub stage: String,
    /// The segment (present only with `by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// People in the stage at `as_of`.
    pub people: u64,
    /// Median days since they entered it.
    pub median_days: f64,
    /// 90th percentile of days since they entered it.
    pub p90_days: f64,
}

/// Measures stays: a stay runs from an entry into a stage to the person's next stage entry.
pub fn velocity(history: &History, options: &VelocityOptions) -> VelocityReport {
    let track = history.stage_track();
    let segs = Segments::new(history, options.by.as_deref());
    let mut periods = Periods::new(options.period, track.span());
    let nstages = history.stages().len();
    let mut closed: Grid<Vec<f64>> = Grid::new([periods.count_hint(), nstages, segs.count()]);
    let mut open: Grid<Vec<f64>> = Grid::new([nstages, segs.count(), 1]);
    let as_of = options.as_of.map(|t| t.0);
    let until_at = as_of.or(track.span().map(|s| s.1));
    let from = options.from.map_or(i64::MIN, |t| t.0);
    let to = options.to.map_or(i64::MAX, |t| t.0);
    let people = history.people();
    for p in 0..track.subjects() as u32 {
        let es = until(track.of(p), as_of);
        let seg = segs.of(p);
        for w in es.windows(2) {
            let end = w[1].at;
            if end >= from && end < to {
                closed
                    .get([periods.index(end), w[0].value, seg])
                    .push(days(w[0].at, end));
            }
        }
        if let (Some(last), Some(t)) = (es.last(), until_at) {
            if people.visible(p as usize) {
                open.get([last.value, seg, 0]).push(days(last.at, t));
            }
        }
    }
    let rows = closed
        .into_sorted_by(|k| (periods.key_of(k[0]), k[1], k[2]))
        .into_iter()
        .map(|(k, mut d)| VelocityRow {
            period: periods.label(k[0]),
            stage: history.stages()[k[1] as usize].clone(),
            segment: segs.label(k[2]),
            stays: d.len() as u64,
            median_days: quantile_cont(&mut d, 0.5).unwrap_or(f64::NAN),
            p90_days: quantile_cont(&mut d, 0.9).unwrap_or(f64::NAN),
        })
        .collect();
    let open = open
        .into_sorted_by(|k| *k)
        .into_iter()
        .map(|(k, mut d)| OpenStayRow {
            stage: history.stages()[k[0] as usize].clone(),
            segment: segs.label(k[1]),
            people: d.len() as u64,
            median_days: quantile_cont(&mut d, 0.5).unwrap_or(f64::NAN),
            p90_days: quantile_cont(&mut d, 0.9).unwrap_or(f64::NAN),
        })
        .collect();
    VelocityReport {
        report: "velocity",
        period: options.period,
        as_of: until_at.map(|t| Timestamp(t).to_rfc3339()),
        rows,
        open,
    }
}

impl Report for VelocityReport {
    fn name(&self) -> &'static str {
        "velocity"
    }

    fn title(&self) -> String {
        format!(
            "Days in stage: stays ended per {} (median, p90); open stays as of {}",
            self.period.as_str(),
            self.as_of.as_deref().unwrap_or("-")
        )
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Closed stays and open stays in one table: open stays have the period `open`.
    fn tabular(&self, human: bool) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some())
            || self.open.iter().any(|r| r.segment.is_some());
        let mut t = Tabular::new(&[("period", false), ("stage", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("stays", true);
        t.push_column("median_days", true);
        t.push_column("p90_days", true);
        let cell = |d: f64| {
            if human {
                days_cell(Some(d))
            } else {
                num(Some(d))
            }
        };
        let rows = self
            .rows
            .iter()
            .map(|r| {
                (
                    r.period.as_str(),
                    &r.stage,
                    &r.segment,
                    r.stays,
                    r.median_days,
                    r.p90_days,
                )
            })
            .chain(self.open.iter().map(|r| {
                (
                    "open",
                    &r.stage,
                    &r.segment,
                    r.people,
                    r.median_days,
                    r.p90_days,
                )
            }));
        for (period, stage, segment, n, median, p90) in rows {
            let mut line = vec![period.to_string(), stage.clone()];
            if by {
                line.push(segment_cell(segment, human));
            }
            line.push(n.to_string());
            line.push(cell(median));
            line.push(cell(p90));
            t.rows.push(line);
        }
        t
    }
}

impl VelocityReport {}
