//! What changed between two models: stages, statuses, coupling, rules, thresholds, scores,
//! outcomes, the calendar and the account journey, each with its line in both files.
//!
//! The comparison is by meaning, not by text: every definition is described with names
//! resolved (a rule's `only_from` lists stage names, not ids), so reordering stages or
//! editing comments is no change, and a changed threshold shows as the number it became.

use crate::{Model, OppTrigger, ScoreRef, Setter, Span, TimerKind, Trigger};
use serde::Serialize;
use std::collections::BTreeMap;
use waterfall_core::OpportunityKind;

/// Whether a definition was added, removed or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only the new model has it.
    Added,
    /// Only the old model has it.
    Removed,
    /// Both have it, with different meanings.
    Changed,
}

impl ChangeKind {
    /// `added`, `removed` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

/// One definition that differs between two models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefinitionChange {
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// What sort of definition: `model`, `stage`, `status`, `coupling`, `rule`, `threshold`,
    /// `score`, `fit`, `account_fit`, `outcome`, `calendar`, `account_stage`, `account_rule`,
    /// `journey`.
    pub section: &'static str,
    /// Its name (a threshold's key, a rule's name, `new_business.lost` for an outcome).
    pub name: String,
    /// The properties that differ, as `property: old → new` (for added and removed
    /// definitions: the properties they have).
    pub details: Vec<String>,
    /// Its line in the old model file (1-based), when it has one there.
    pub old_line: Option<usize>,
    /// Its line in the new model file (1-based), when it has one there.
    pub new_line: Option<usize>,
}

/// One definition of a model, described by name-resolved properties.
struct Item {
    section: &'static str,
    name: String,
    props: Vec<(&'static str, String)>,
    line: Option<usize>,
}

/// Compares two checked models definition by definition.
///
/// Changes come in the order of the sections above, then by name; within a definition the
/// properties that differ are listed in a fixed order.
pub fn diff_models(old: &Model, new: &Model) -> Vec<DefinitionChange> {
    let index = |m: &Model| -> BTreeMap<(usize, String), Item> {
        items(m)
            .into_iter()
            .map(|i| ((section_rank(i.section), i.name.clone()), i))
            .collect()
    };
    let (before, mut after) = (index(old), index(new));
    let mut out = Vec::new();
    for (key, b) in before {
        match after.remove(&key) {
            None => out.push(DefinitionChange {
                kind: ChangeKind::Removed,
                section: b.section,
                name: b.name,
                details: b.props.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
                old_line: b.line,
                new_line: None,
            }),
            Some(a) => {
                let details = changed_props(&b.props, &a.props);
                if !details.is_empty() {
                    out.push(DefinitionChange {
                        kind: ChangeKind::Changed,
                        section: b.section,
                        name: b.name,
                        details,
                        old_line: b.line,
                        new_line: a.line,
                    });
                }
            }
        }
    }
    for (_, a) in after {
        out.push(DefinitionChange {
            kind: ChangeKind::Added,
            section: a.section,
            name: a.name,
            details: a.props.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
            old_line: None,
            new_line: a.line,
        });
    }
    out.sort_by_key(|c| (section_rank(c.section), c.name.clone(), c.kind));
    out
}

const SECTIONS: [&str; 14] = [
    "model",
    "stage",
    "status",
    "coupling",
    "rule",
    "threshold",
    "score",
    "fit",
    "account_fit",
    "outcome",
    "calendar",
    "account_stage",
    "account_rule",
    "journey",
];

fn section_rank(section: &str) -> usize {
    SECTIONS
        .iter()
        .position(|s| *s == section)
        .unwrap_or(SECTIONS.len())
}

fn changed_props(old: &[(&'static str, String)], new: &[(&'static str, String)]) -> Vec<String> {
    let get = |props: &[(&'static str, String)], k: &str| {
        props
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.clone())
    };
    let mut keys: Vec<&'static str> = old.iter().map(|(k, _)| *k).collect();
    for (k, _) in new {
        if !keys.contains(k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .filter_map(|k| {
            let (b, a) = (get(old, k), get(new, k));
            (b != a).then(|| {
                let show = |v: Option<String>| v.unwrap_or_else(|| "(none)".into());
                format!("{k}: {} → {}", show(b), show(a))
            })
        })
        .collect()
}

/// The 1-based line of a byte offset in the model's text.
fn line_at(m: &Model, offset: usize) -> usize {
    let end = offset.min(m.source.len());
    m.source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn span_line(m: &Model, span: &Span) -> Option<usize> {
    (span.end > span.start || span.start > 0).then(|| line_at(m, span.start))
}

/// The line of a key inside a TOML table header (`[score.thresholds]` then `mql_fit = …`),
/// for definitions the compiled model keeps no span of.
fn key_line(m: &Model, table: &str, key: &str) -> Option<usize> {
    let header = format!("[{table}]");
    let mut inside = false;
    for (i, line) in m.source.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == header;
            continue;
        }
        if inside {
            let k = t.split('=').next().unwrap_or("").trim().trim_matches('"');
            if k == key && t.contains('=') {
                return Some(i + 1);
            }
        }
    }
    None
}

fn table_line(m: &Model, table: &str) -> Option<usize> {
    let header = format!("[{table}]");
    m.source
        .lines()
        .position(|l| l.trim() == header)
        .map(|i| i + 1)
}

fn stage_names(m: &Model, ids: &[u16]) -> String {
    let mut names: Vec<&str> = ids
        .iter()
        .filter_map(|&i| m.stages.get(i as usize).map(|s| s.name.as_str()))
        .collect();
    names.sort_unstable();
    format!("[{}]", names.join(", "))
}

fn status_names(m: &Model, ids: &[u16]) -> String {
    let mut names: Vec<&str> = ids
        .iter()
        .filter_map(|&i| m.statuses.get(i as usize).map(|s| s.name.as_str()))
        .collect();
    names.sort_unstable();
    format!("[{}]", names.join(", "))
}

fn account_stage_names(m: &Model, ids: &[u16]) -> String {
    let mut names: Vec<&str> = ids
        .iter()
        .filter_map(|&i| m.account_stages.get(i as usize).map(|s| s.name.as_str()))
        .collect();
    names.sort_unstable();
    format!("[{}]", names.join(", "))
}

fn stage_name(m: &Model, id: Option<u16>) -> String {
    id.and_then(|i| m.stages.get(i as usize))
        .map_or_else(|| "(none)".into(), |s| s.name.clone())
}

fn status_name(m: &Model, id: Option<u16>) -> String {
    id.and_then(|i| m.statuses.get(i as usize))
        .map_or_else(|| "(none)".into(), |s| s.name.clone())
}

fn number(v: f64) -> String {
    // `60` rather than `60.0`: the way model files write it.
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

fn trigger_text(m: &Model, t: &Trigger) -> String {
    match t {
        Trigger::PersonCreated => "person_created".into(),
        Trigger::Activity { kinds } => {
            let mut k = kinds.clone();
            k.sort();
            format!("activity [{}]", k.join(", "))
        }
        Trigger::StatusSet(ids) => format!("status {}", status_names(m, ids)),
        Trigger::StageEntered(ids) => format!("stage {}", stage_names(m, ids)),
        Trigger::Opportunity { kinds, state } => {
            let mut k: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            k.sort_unstable();
            format!("opportunity {} [{}]", state.as_str(), k.join(", "))
        }
        Trigger::ScoreCrossed {
            score,
            threshold,
            upward,
        } => format!(
            "score {} crosses {} {}",
            match score {
                ScoreRef::Fit => "fit",
                ScoreRef::Engagement => "engagement",
            },
            number(*threshold),
            if *upward { "upward" } else { "downward" }
        ),
        Trigger::Timer {
            in_stage,
            in_status,
            after,
            kind,
        } => format!(
            "timer {} after {after}{}{}",
            match kind {
                TimerKind::InStage => "in_stage",
                TimerKind::NoActivity => "no_activity",
            },
            in_stage
                .map(|s| format!(" in stage {}", stage_name(m, Some(s))))
                .unwrap_or_default(),
            in_status
                .map(|s| format!(" in status {}", status_name(m, Some(s))))
                .unwrap_or_default(),
        ),
    }
}

/// Every definition of a model as name-resolved properties.
fn items(m: &Model) -> Vec<Item> {
    let mut out = Vec::new();
    out.push(Item {
        section: "model",
        name: "model".into(),
        props: vec![
            ("initial_stage", stage_name(m, Some(m.initial_stage))),
            ("initial_status", status_name(m, m.initial_status)),
            (
                "initial_account_stage",
                m.initial_account_stage
                    .and_then(|i| m.account_stages.get(i as usize))
                    .map_or_else(|| "(none)".into(), |s| s.name.clone()),
            ),
            ("any_to_any", m.any_to_any.to_string()),
        ],
        line: table_line(m, "model"),
    });
    for (i, s) in m.stages.iter().enumerate() {
        let next: Vec<u16> = m.successors(i as u16).collect();
        out.push(Item {
            section: "stage",
            name: s.name.clone(),
            props: vec![
                ("kind", s.kind.as_str().into()),
                ("owner", s.owner.map_or("(none)", |o| o.as_str()).into()),
                ("next", stage_names(m, &next)),
                ("definition", s.definition.clone()),
            ],
            line: span_line(m, &s.span),
        });
        if let Some(Some(status)) = m.coupling.stage_to_status.get(i) {
            out.push(Item {
                section: "coupling",
                name: format!("stage {} sets status", s.name),
                props: vec![("status", status_name(m, Some(*status)))],
                line: span_line(m, &s.span),
            });
        }
    }
    for (i, s) in m.statuses.iter().enumerate() {
        let mut set_by: Vec<&str> = s
            .set_by
            .iter()
            .map(|x| match x {
                Setter::Automation => "automation",
                Setter::Sales => "sales",
            })
            .collect();
        set_by.sort_unstable();
        out.push(Item {
            section: "status",
            name: s.name.clone(),
            props: vec![
                ("set_by", format!("[{}]", set_by.join(", "))),
                ("set_in", stage_names(m, &s.set_in)),
                ("definition", s.definition.clone()),
            ],
            line: span_line(m, &s.span),
        });
        if let Some(Some(stage)) = m.coupling.status_to_stage.get(i) {
            out.push(Item {
                section: "coupling",
                name: format!("status {} moves to stage", s.name),
                props: vec![("stage", stage_name(m, Some(*stage)))],
                line: span_line(m, &s.span),
            });
        }
    }
    for r in &m.rules {
        let mut props = vec![
            ("on", trigger_text(m, &r.trigger)),
            (
                "when",
                r.condition
                    .as_ref()
                    .map_or_else(|| "(always)".into(), |c| c.source().to_string()),
            ),
            ("priority", r.priority.to_string()),
            ("set_stage", stage_name(m, r.action.set_stage)),
            ("set_status", status_name(m, r.action.set_status)),
            ("only_from", stage_names(m, &r.action.only_from)),
        ];
        if !r.journeys.is_empty() {
            let mut j: Vec<&str> = r
                .journeys
                .iter()
                .filter_map(|&i| m.journeys.get(i as usize).map(|j| j.name.as_str()))
                .collect();
            j.sort_unstable();
            props.push(("journeys", format!("[{}]", j.join(", "))));
        }
        props.push(("description", r.description.clone()));
        out.push(Item {
            section: "rule",
            name: r.name.clone(),
            props,
            line: span_line(m, &r.span),
        });
    }
    for (k, v) in &m.scoring.thresholds {
        out.push(Item {
            section: "threshold",
            name: k.clone(),
            props: vec![("value", number(*v))],
            line: key_line(m, "score.thresholds", k),
        });
    }
    for (k, v) in &m.scoring.engagement_points {
        out.push(Item {
            section: "score",
            name: format!("engagement points {k}"),
            props: vec![("points", number(*v))],
            line: key_line(m, "score.engagement", "points"),
        });
    }
    let engagement_line = table_line(m, "score.engagement");
    out.push(Item {
        section: "score",
        name: "engagement".into(),
        props: vec![
            ("default_points", number(m.scoring.default_points)),
            (
                "half_life_days",
                m.scoring
                    .half_life_days
                    .map_or_else(|| "(none)".into(), number),
            ),
        ],
        line: engagement_line,
    });
    for (section, rules) in [
        ("fit", &m.scoring.fit),
        ("account_fit", &m.scoring.account_fit),
    ] {
        for f in rules.iter() {
            out.push(Item {
                section,
                name: f.name.clone(),
                props: vec![
                    ("when", f.condition.source().to_string()),
                    ("points", number(f.points)),
                ],
                line: span_line(m, &f.condition.span()),
            });
        }
    }
    for kind in OpportunityKind::ALL {
        for state in OppTrigger::ALL {
            let Some(o) = m.outcome(kind, state) else {
                continue;
            };
            out.push(Item {
                section: "outcome",
                name: format!("{}.{}", kind.as_str(), state.as_str()),
                props: vec![
                    ("stage", stage_name(m, o.stage)),
                    ("status", status_name(m, o.status)),
                    (
                        "account_type",
                        o.account_type.clone().unwrap_or_else(|| "(none)".into()),
                    ),
                ],
                line: key_line(m, &format!("outcome.{}", kind.as_str()), state.as_str())
                    .or_else(|| table_line(m, &format!("outcome.{}", kind.as_str()))),
            });
        }
    }
    out.push(Item {
        section: "calendar",
        name: "calendar".into(),
        props: vec![("calendar", format!("{:?}", m.calendar))],
        line: table_line(m, "calendar"),
    });
    for s in &m.account_stages {
        out.push(Item {
            section: "account_stage",
            name: s.name.clone(),
            props: vec![
                ("kind", s.kind.as_str().into()),
                ("next", account_stage_names(m, &s.next)),
                ("definition", s.definition.clone()),
            ],
            line: span_line(m, &s.span),
        });
    }
    for r in &m.account_rules {
        out.push(Item {
            section: "account_rule",
            name: r.name.clone(),
            props: vec![
                ("when", r.condition.source().to_string()),
                ("priority", r.priority.to_string()),
                (
                    "set_stage",
                    account_stage_names(m, &[r.set_stage])
                        .trim_matches(['[', ']'])
                        .to_string(),
                ),
                ("only_from", account_stage_names(m, &r.only_from)),
            ],
            line: span_line(m, &r.span),
        });
    }
    for j in &m.journeys {
        out.push(Item {
            section: "journey",
            name: j.name.clone(),
            props: vec![
                (
                    "when",
                    j.condition
                        .as_ref()
                        .map_or_else(|| "(default)".into(), |c| c.source().to_string()),
                ),
                ("definition", j.definition.clone()),
            ],
            line: j.condition.as_ref().and_then(|c| span_line(m, &c.span())),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load, DEMAND_WATERFALL_TOML};

    fn check(old: &str, new: &str) -> Vec<String> {
        let old = load("old.toml", old).expect("old model loads");
        let new = load("new.toml", new).expect("new model loads");
        diff_models(&old, &new)
            .into_iter()
            .map(|c| {
                format!(
                    "{} {} {} (old line {:?}, new line {:?}): {}",
                    c.kind.as_str(),
                    c.section,
                    c.name,
                    c.old_line,
                    c.new_line,
                    c.details.join("; ")
                )
            })
            .collect()
    }

    #[test]
    fn an_unchanged_model_has_no_changes() {
        assert_eq!(
            check(DEMAND_WATERFALL_TOML, DEMAND_WATERFALL_TOML),
            Vec::<String>::new()
        );
        // Comments and blank lines are not definitions.
        let commented = format!("# a note\n\n{DEMAND_WATERFALL_TOML}");
        assert_eq!(
            check(DEMAND_WATERFALL_TOML, &commented),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_raised_threshold_shows_with_its_lines_and_the_rules_it_moves() {
        let new = DEMAND_WATERFALL_TOML.replace("mql_engagement = 40", "mql_engagement = 80");
        let line = DEMAND_WATERFALL_TOML
            .lines()
            .position(|l| l.starts_with("mql_engagement = 40"))
            .map(|i| i + 1);
        let changes = check(DEMAND_WATERFALL_TOML, &new);
        assert_eq!(
            changes[0],
            format!(
                "changed rule mql-by-engagement (old line {l:?}, new line {l:?}): on: score engagement crosses 40 upward → score engagement crosses 80 upward",
                l = rule_line("mql-by-engagement")
            )
        );
        assert_eq!(
            changes.last().map(String::as_str),
            Some(
                format!(
                    "changed threshold mql_engagement (old line {line:?}, new line {line:?}): value: 40 → 80"
                )
                .as_str()
            )
        );
        assert_eq!(changes.len(), 3, "{changes:#?}");
        assert!(
            changes[1].starts_with("changed rule re-mql"),
            "{changes:#?}"
        );
    }

    fn rule_line(name: &str) -> Option<usize> {
        let needle = format!("name = \"{name}\"");
        let at = DEMAND_WATERFALL_TOML.lines().position(|l| l == needle)?;
        // The span of a `[[rule]]` table starts at its header, the line above the name.
        Some(at)
    }

    #[test]
    fn added_removed_and_changed_definitions() {
        let old = DEMAND_WATERFALL_TOML;
        let new = old
            .replace(
                "[[rule]]\nname = \"competitor\"",
                "[[rule]]\nname = \"competitor-on-sight\"",
            )
            .replace(
                "definition = \"Handed back to marketing before sales engaged (→ MRL).\"",
                "definition = \"Handed back to marketing.\"",
            );
        let changes = check(old, &new);
        let summary: Vec<String> = changes
            .iter()
            .map(|c| c.split(" (").next().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            summary,
            [
                "changed status Recycled",
                "removed rule competitor",
                "added rule competitor-on-sight",
            ]
        );
    }
}
