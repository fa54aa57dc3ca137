//! `status`: the lead status distribution at an instant, and status by stage.

use crate::history::{until, History};
use crate::render::{segment_cell, Report, Tabular};
use crate::util::{Grid, Segments};
use serde::Serialize;
use waterfall_core::Timestamp;

/// Options of the status report.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusOptions {
    /// The instant (the CLI defaults it to now).
    pub as_of: Timestamp,
    /// Group by this person attribute (`null` for people without it).
    pub by: Option<String>,
}

/// The status report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    /// Always `"status"`.
    pub report: &'static str,
    /// The instant, RFC 3339 in UTC.
    pub as_of: String,
    /// People per status at the instant (`null`: a stage but no status yet).
    pub rows: Vec<StatusRow>,
    /// People per stage and status at the instant (either may be `null`).
    pub by_stage: Vec<StatusByStageRow>,
}

/// People with one status at the instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    /// The status.
    pub status: Option<String>,
    /// The segment (present only with `by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// How many visible people have it.
    pub people: u64,
}

/// People with one stage and one status at the instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusByStageRow {
    /// The stage.
    pub stage: Option<String>,
    /// The status.
    pub status: Option<String>,
    /// The segment (present only with `by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Option<String>>,
    /// How many visible people have both.
    pub people: u64,
}

/// Counts visible people by their status (and stage) at an instant: the last entry of each
/// at or before it. People with neither a stage nor a status by then are not counted.
pub fn status(history: &History, options: &StatusOptions) -> StatusReport {
    let stages = history.stage_track();
    let statuses = history.status_track();
    let segs = Segments::new(history, options.by.as_deref());
    let (nstage, nstatus) = (history.stages().len(), history.statuses().len());
    let mut rows: Grid<u64> = Grid::new([nstatus + 1, segs.count(), 1]);
    let mut cross: Grid<u64> = Grid::new([nstage + 1, nstatus + 1, segs.count()]);
    let t = Some(options.as_of.0);
    for (p, info) in history.people().iter().enumerate() {
        let p = p as u32;
        if !info.visible {
            continue;
        }
        let stage = until(stages.of(p), t).last().map(|e| e.value);
        let status = until(statuses.of(p), t).last().map(|e| e.value);
        if stage.is_none() && status.is_none() {
            continue;
        }
        let (st, ss) = (
            stage.unwrap_or(nstage as u32),
            status.unwrap_or(nstatus as u32),
        );
        *rows.get([ss, segs.of(p), 0]) += 1;
        *cross.get([st, ss, segs.of(p)]) += 1;
    }
    let status_name = |i: u32| history.statuses().get(i as usize).cloned();
    let stage_name = |i: u32| history.stages().get(i as usize).cloned();
    StatusReport {
        report: "status",
        as_of: options.as_of.to_rfc3339(),
        rows: rows
            .into_sorted_by(|k| *k)
            .into_iter()
            .map(|(k, n)| StatusRow {
                status: status_name(k[0]),
                segment: segs.label(k[1]),
                people: n,
            })
            .collect(),
        by_stage: cross
            .into_sorted_by(|k| *k)
            .into_iter()
            .map(|(k, n)| StatusByStageRow {
                stage: stage_name(k[0]),
                status: status_name(k[1]),
                segment: segs.label(k[2]),
                people: n,
            })
            .collect(),
    }
}

impl Report for StatusReport {
    fn name(&self) -> &'static str {
        "status"
    }

    fn title(&self) -> String {
        format!("People by stage and status as of {}", self.as_of)
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The cross tab, long form: one line per stage and status (`(all)` lines first in the
    /// human table give the status distribution).
    fn tabular(&self, human: bool) -> Tabular {
        let by = self.rows.iter().any(|r| r.segment.is_some());
        let mut t = Tabular::new(&[("stage", false), ("status", false)]);
        if by {
            t.push_column("segment", false);
        }
        t.push_column("people", true);
        let name = |s: &Option<String>, all: bool| match s {
            Some(s) => s.clone(),
            None if all && human => "(all)".into(),
            None if human => "(none)".into(),
            None => String::new(),
        };
        for r in &self.rows {
            let mut line = vec![name(&None, true), name(&r.status, false)];
            if by {
                line.push(segment_cell(&r.segment, human));
            }
            line.push(r.people.to_string());
            if human {
                t.rows.push(line);
            }
        }
        for r in &self.by_stage {
            let mut line = vec![name(&r.stage, false), name(&r.status, false)];
            if by {
                line.push(segment_cell(&r.segment, human));
            }
            line.push(r.people.to_string());
            t.rows.push(line);
        }
        t
    }
}

impl StatusReport {}
