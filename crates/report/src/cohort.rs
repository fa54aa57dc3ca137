//! `cohort`: where did each cohort of attempts go.

use crate::history::{until, History, View};
use crate::render::{days_cell, num, pct, segment_cell, Report, Tabular};
use crate::util::{days, quantile_cont, used_stages, Grid, NamedMap, Periods, Segments};
use serde::Serialize;
use waterfall_core::{Level, Period, Timestamp};

/// Options of the cohort report.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortOptions {
    /// The cohort stage (e.g. `MQL`): each entry into it starts an attempt.
    pub stage: String,
    /// The calendar period attempts are grouped by (of their start).
    pub period: Period,
    /// Group by this person attribute (`null` for people without it).
    pub by: Option<String>,
    /// Ignore everything after this instant.
    pub as_of: Option<Timestamp>,
}

/// The cohort report, in the contract's JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortReport {
    /// Always `"cohort"`.
    pub report: &'static str,
    /// The cohort stage.
    pub stage: String,
    /// The period attempts are grouped by.
    pub period: Period,
    /// One row per period and segment with at least one attempt.
    pub rows: Vec<CohortRow>,
    /// Every stage name in model order (for rendering columns; not part of the JSON).
    #[serde(skip)]
    pub stage_order: Vec<String>,
}

/// One row of the cohort report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortRow {
    /// The period label of the attempts' start.
    pub period: String,
    /// The segment (present only with `by`; `null` for people without the attribute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// Attempts that started in the period.
    pub size: u64,
    /// For each stage some attempt reached: how many attempts reached it (model order).
    pub reached: NamedMap<u64>,
    /// For each reached stage: the median days to reach it (interpolated).
    pub median_days: NamedMap<f64>,
}

#[derive(Default)]
struct Reach {
    count: u64,
    days: Vec<f64>,
}

/// Follows every attempt at the cohort stage to the stages it reached before the next attempt.
///
/// An attempt is one entry into the cohort stage and lasts until the person's next entry
/// into it. It reaches stage S if the person enters S after the start in order (later, or at
/// the same instant but applied after) and before the attempt's end; the time to S is taken
/// to the first such entry.
pub fn cohort(history: &History, options: &CohortOptions) -> CohortReport {
    cohort_of(&history.view(Level::Person), options)
}

/// The cohort report over account stages (`by` groups on account attributes).
pub fn account_cohort(history: &History, options: &CohortOptions) -> CohortReport {
    cohort_of(&history.view(Level::Account), options)
}

fn cohort_of(view: &View<'_>, options: &CohortOptions) -> CohortReport {
    let mut report = CohortReport {
        report: "cohort",
        stage: options.stage.clone(),
        period: options.period,
        rows: Vec::new(),
        stage_order: view.stages().to_vec(),
    };
    let Some(cohort_stage) = view.stage_id(&options.stage) else {
        return report;
    };
    let track = view.track;
    let segs = Segments::of_view(view, options.by.as_deref());
    let mut periods = Periods::new(options.period, track.span());
    let nstages = view.stages().len();
    let mut sizes: Grid<u64> = Grid::new([periods.count_hint(), segs.count(), 1]);
    let mut reach: Grid<Reach> = Grid::new([periods.count_hint(), segs.count(), nstages]);
    let as_of = options.as_of.map(|t| t.0);
    // `seen[s] == attempt` marks stages already reached by the current attempt.
    let mut seen = vec![u64::MAX; nstages];
    let mut attempt = 0u64;
    for p in 0..track.subjects() as u32 {
        let es = until(track.of(p), as_of);
        let seg = segs.of(p);
        let mut start = es.iter().position(|e| e.value == cohort_stage);
        while let Some(s) = start {
            let next = es[s + 1..]
                .iter()
                .position(|e| e.value == cohort_stage)
                .map(|i| s + 1 + i);
            let end = next.unwrap_or(es.len());
            let at = es[s].at;
            let pi = periods.index(at);
            *sizes.get([pi, seg, 0]) += 1;
            attempt += 1;
            for e in &es[s + 1..end] {
                let v = e.value as usize;
                if seen[v] != attempt {
                    seen[v] = attempt;
                    let r = reach.get([pi, seg, e.value]);
                    r.count += 1;
                    r.days.push(days(at, e.at));
                }
            }
            start = next;
        }
    }
    let mut reached = reach
        .into_sorted_by(|k| (periods.key_of(k[0]), k[1], k[2]))
        .into_iter()
        .peekable();
    for (k, size) in sizes.into_sorted_by(|k| (periods.key_of(k[0]), k[1])) {
        let mut row = CohortRow {
            period: periods.label(k[0]),
            segment: segs.label(k[1]),
            size,
            reached: NamedMap::default(),
            median_days: NamedMap::default(),
        };
        // Reach cells exist only for (period, segment) pairs that have attempts; gather them.
        let mut cells = Vec::new();
        while let Some((rk, _)) = reached.peek() {
            if rk[0] != k[0] || rk[1] != k[1] {
                break;
            }
            cells.push(reached.next().expect("peeked"));
        }
        for (rk, mut r) in cells {
            let name = view.stages()[rk[2] as usize].clone();
            let median = quantile_cont(&mut r.days, 0.5).unwrap_or(f64::NAN);
            row.reached.0.push((name.clone(), r.count));
            row.median_days.0.push((name, median));
        }
        report.rows.push(row);
    }
    report
}

impl Report for CohortReport {
    fn name(&self) -> &'static str {
        "cohort"
    }

    fn title(&self) -> String {
        format!(
            "{} attempts per {} and the stages they reached: count (share of size) median days",
            self.stage,
            self.period.as_str()
        )
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

impl CohortReport {
    /// One line per period (and segment), readable columns.
    fn human_table(&self) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let stages = self.reached_stages();
        let mut t = Tabular::new(&[("period", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("size", true);
        for s in &stages {
            t.push_column(s.clone(), true);
        }
        for r in &self.rows {
            let mut line = vec![r.period.clone()];
            if by {
                line.push(segment_cell(&r.segment, true));
            }
            line.push(r.size.to_string());
            for s in &stages {
                line.push(match r.reached.get(s) {
                    Some(&n) => format!(
                        "{n} ({}) {}",
                        pct(n, r.size),
                        days_cell(r.median_days.get(s).copied())
                    ),
                    None => String::new(),
                });
            }
            t.rows.push(line);
        }
        t
    }

    /// One value per column, for CSV.
    fn flat_table(&self) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let stages = self.reached_stages();
        let mut t = Tabular::new(&[("period", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("size", true);
        for s in &stages {
            t.push_column(format!("reached_{s}"), true);
            t.push_column(format!("median_days_{s}"), true);
        }
        for r in &self.rows {
            let mut line = vec![r.period.clone()];
            if by {
                line.push(segment_cell(&r.segment, false));
            }
            line.push(r.size.to_string());
            for s in &stages {
                line.push(r.reached.get(s).copied().unwrap_or(0).to_string());
                line.push(num(r.median_days.get(s).copied()));
            }
            t.rows.push(line);
        }
        t
    }
}

impl CohortReport {
    fn reached_stages(&self) -> Vec<String> {
        used_stages(
            &self.stage_order,
            self.rows
                .iter()
                .flat_map(|r| r.reached.0.iter().map(|(s, _)| s.as_str())),
        )
    }
}
