//! Scenario files: `tests/scenarios/*.txt`, each a small story of events under the default
//! model and the timeline it must produce.
//!
//! Format: `#` lines are comments; `horizon <instant>` sets how far timers run; lines
//! starting with `{` are events in ingestion order (an event without `id` gets `e<line>`);
//! everything after the `---` line is the expected timeline, one change per line:
//! `<instant> <weekday> <level> <subject> <field> <from> > <to> [<rule>] <event or timer>`.
//! Run with `UPDATE_SCENARIOS=1` to rewrite the expected timelines (then read the diff).
//!
//! Every scenario is also derived with its events ingested in reverse order: when no two
//! events share an instant, arrival order must not change anything.

use std::path::Path;
use waterfall_core::{parse_line, Level, Timestamp};
use waterfall_engine::{derive, DeriveOptions, Derived, SequencedEvent};
use waterfall_model::Model;

struct Scenario {
    header: Vec<String>,
    events: Vec<SequencedEvent>,
    horizon: Timestamp,
    expected: Vec<String>,
}

fn parse(text: &str) -> Scenario {
    let mut s = Scenario {
        header: Vec::new(),
        events: Vec::new(),
        horizon: Timestamp(i64::MAX / 2),
        expected: Vec::new(),
    };
    let mut in_expected = false;
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if in_expected {
            if !l.is_empty() {
                s.expected.push(l.to_string());
            }
            continue;
        }
        if l == "---" {
            in_expected = true;
            continue;
        }
        s.header.push(line.to_string());
        if let Some(h) = l.strip_prefix("horizon ") {
            s.horizon = Timestamp::parse(h.trim()).expect("horizon");
        } else if let Some(rest) = l.strip_prefix('{') {
            let json = if l.contains("\"id\"") {
                l.to_string()
            } else {
                format!(r#"{{"id":"e{}",{rest}"#, s.events.len() + 1)
            };
            let event = parse_line(&json).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
            s.events.push(SequencedEvent {
                seq: s.events.len() as u64,
                event,
            });
        }
    }
    s
}

fn run(model: &Model, events: &[SequencedEvent], horizon: Timestamp) -> Derived {
    let mut events = events.to_vec();
    events.sort_by_key(|e| (e.event.at, e.seq));
    derive(model, &events, DeriveOptions::until(horizon))
}

/// The timeline as scenario files write it.
fn render(d: &Derived) -> Vec<String> {
    d.transitions
        .iter()
        .map(|t| {
            format!(
                "{} {} {} {} {} > {} [{}] {}",
                t.order.at.to_datetime().format("%Y-%m-%dT%H:%M:%S%.6fZ %a"),
                match t.level {
                    Level::Person => "person",
                    Level::Account => "account",
                },
                t.subject,
                t.field.as_str(),
                t.from.as_deref().unwrap_or("-"),
                t.to,
                t.rule,
                t.event.as_deref().unwrap_or("timer")
            )
        })
        .collect()
}

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let model = Model::demand_waterfall();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenario dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let update = std::env::var_os("UPDATE_SCENARIOS").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read");
        let s = parse(&text);
        let got = render(&run(&model, &s.events, s.horizon));
        let mut reversed = s.events.clone();
        let n = reversed.len() as u64;
        for e in &mut reversed {
            e.seq = n - e.seq;
        }
        let mut instants: Vec<_> = s.events.iter().map(|e| e.event.at).collect();
        instants.sort();
        instants.dedup();
        if instants.len() == s.events.len() {
            assert_eq!(
                got,
                render(&run(&model, &reversed, s.horizon)),
                "{}: arrival order changed the timeline",
                path.display()
            );
        }
        if update {
            let mut out = s.header.join("\n");
            out.push_str("\n---\n");
            out.push_str(&got.join("\n"));
            out.push('\n');
            std::fs::write(path, out).expect("write");
        } else if got != s.expected {
            failures.push(format!(
                "{}:\nexpected:\n  {}\ngot:\n  {}",
                path.display(),
                s.expected.join("\n  "),
                got.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
