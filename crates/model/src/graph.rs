//! The stage graph as text, so people can see their waterfall (`waterfall model graph`).

use std::fmt::Write;

use crate::{Model, StageKind};

fn node_id(i: usize) -> String {
    format!("s{i}")
}

/// Mermaid flowchart: one node per stage (recycle stages rounded, terminal stages doubled),
/// one edge per allowed transition, rule-driven edges labelled with the rule's name.
pub(crate) fn mermaid(m: &Model) -> String {
    let mut out = String::from("flowchart TD\n");
    for (i, s) in m.stages.iter().enumerate() {
        let label = s.name.replace('"', "'");
        let shape = match s.kind {
            StageKind::Active => format!("[\"{label}\"]"),
            StageKind::Recycle => format!("([\"{label}\"])"),
            StageKind::Terminal => format!("[[\"{label}\"]]"),
        };
        let _ = writeln!(out, "    {}{}", node_id(i), shape);
    }
    let _ = writeln!(
        out,
        "    start((start)) --> {}",
        node_id(m.initial_stage.into())
    );
    if m.any_to_any {
        let _ = writeln!(out, "    %% any stage may follow any other");
    }
    for (f, t, label) in edges(m) {
        match label {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "    {} -->|\"{}\"| {}",
                    node_id(f),
                    l.replace('"', "'"),
                    node_id(t)
                );
            }
            None => {
                let _ = writeln!(out, "    {} --> {}", node_id(f), node_id(t));
            }
        }
    }
    out
}

/// Graphviz DOT digraph of the same graph.
pub(crate) fn dot(m: &Model) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!("digraph \"{}\" {{\n    rankdir=TB;\n", esc(&m.name));
    let _ = writeln!(out, "    start [shape=point];");
    for (i, s) in m.stages.iter().enumerate() {
        let shape = match s.kind {
            StageKind::Active => "box",
            StageKind::Recycle => "ellipse",
            StageKind::Terminal => "doubleoctagon",
        };
        let _ = writeln!(
            out,
            "    {} [label=\"{}\", shape={shape}];",
            node_id(i),
            esc(&s.name)
        );
    }
    let _ = writeln!(out, "    start -> {};", node_id(m.initial_stage.into()));
    for (f, t, label) in edges(m) {
        match label {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "    {} -> {} [label=\"{}\"];",
                    node_id(f),
                    node_id(t),
                    esc(&l)
                );
            }
            None => {
                let _ = writeln!(out, "    {} -> {};", node_id(f), node_id(t));
            }
        }
    }
    out.push_str("}\n");
    out
}

/// Allowed transitions (without self-loops), labelled with the rules that make them when
/// the rule's starting stages are known. With `any_to_any`, only rule edges are drawn.
fn edges(m: &Model) -> Vec<(usize, usize, Option<String>)> {
    let n = m.stages.len();
    let mut labels: Vec<Vec<String>> = vec![Vec::new(); n * n];
    for r in &m.rules {
        let Some(to) = r.action.set_stage.or_else(|| {
            r.action.set_status.and_then(|x| {
                m.coupling
                    .status_to_stage
                    .get(usize::from(x))
                    .copied()
                    .flatten()
            })
        }) else {
            continue;
        };
        let from: Vec<u16> = if !r.action.only_from.is_empty() {
            r.action.only_from.clone()
        } else if let crate::Trigger::Timer {
            in_stage: Some(s), ..
        } = r.trigger
        {
            vec![s]
        } else {
            continue;
        };
        for f in from {
            if f != to {
                labels[usize::from(f) * n + usize::from(to)].push(r.name.clone());
            }
        }
    }
    // Statuses sales sets in known stages drive edges too (`Working` makes a SAL).
    for (x, st) in m.statuses.iter().enumerate() {
        let Some(to) = m.coupling.status_to_stage.get(x).copied().flatten() else {
            continue;
        };
        for &f in &st.set_in {
            if f != to {
                labels[usize::from(f) * n + usize::from(to)].push(format!("status {}", st.name));
            }
        }
    }
    // Opportunity outcomes move buying-group members from wherever they are.
    for kind in waterfall_core::OpportunityKind::ALL {
        for state in crate::OppTrigger::ALL {
            let Some(to) = m.outcome(kind, state).and_then(|o| o.stage) else {
                continue;
            };
            let label = format!("{} {}", kind.as_str().replace('_', " "), state.as_str());
            for f in 0..n {
                if f != usize::from(to) && m.allows(f as u16, to) && !m.any_to_any {
                    labels[f * n + usize::from(to)].push(label.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    for f in 0..n {
        for t in 0..n {
            if f == t {
                continue;
            }
            let l = &labels[f * n + t];
            let drawn = if m.any_to_any {
                !l.is_empty()
            } else {
                m.allows(f as u16, t as u16)
            };
            if drawn {
                out.push((f, t, (!l.is_empty()).then(|| l.join(", "))));
            }
        }
    }
    out
}
