//! Report timings over about a million synthetic stage entries (run rarely: shared CPU).

use waterfall_core::{Field, Level, Order, Period, Timestamp, Transition, MICROS_PER_DAY};
use waterfall_report::*;

const STAGES: &[&str] = &["MAL", "MQL", "SAL", "SQL", "SQO", "Customer", "MRL", "SRL"];

fn main() {
    divan::main();
}

/// About 250,000 people walking the waterfall with recycling: ~1M entries.
fn synthetic() -> History {
    let (people, transitions) = synthetic_parts();
    build(people, transitions)
}

fn build(people: Vec<PersonInfo>, transitions: Vec<Transition>) -> History {
    History::new(
        STAGES.iter().map(|s| s.to_string()).collect(),
        vec![],
        people,
        transitions,
    )
}

/// The people and transitions of [`synthetic`].
fn synthetic_parts() -> (Vec<PersonInfo>, Vec<Transition>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let start = Timestamp::parse("2024-01-01T00:00:00Z").unwrap().0;
    let mut transitions = Vec::new();
    let mut people = Vec::new();
    let mut seq = 0u64;
    for p in 0..250_000u32 {
        let id = format!("p{p}");
        let mut attrs = serde_json::Map::new();
        attrs.insert("source".into(), format!("s{}", p % 8).into());
        people.push(PersonInfo {
            id: id.clone(),
            account: None,
            attrs,
            visible: true,
        });
        let mut at = start + (next() % (700 * MICROS_PER_DAY as u64)) as i64;
        let mut stage = 0usize;
        for _ in 0..4 {
            seq += 1;
            transitions.push(Transition {
                level: Level::Person,
                subject: id.as_str().into(),
                field: Field::Stage,
                order: Order {
                    at: Timestamp(at),
                    seq,
                    sub: 0,
                },
                from: None,
                to: STAGES[stage].into(),
                event: None,
                rule: "explicit".into(),
            });
            at += (next() % (30 * MICROS_PER_DAY as u64)) as i64 + 60_000_000;
            stage = match stage {
                0 | 6 | 7 => 1,
                1 if next() % 3 == 0 => 6,
                5 => 7,
                s => s + 1,
            };
        }
    }
    (people, transitions)
}

#[divan::bench(sample_count = 3)]
fn build_history(bencher: divan::Bencher) {
    bencher
        .with_inputs(synthetic_parts)
        .bench_values(|(people, transitions)| build(people, transitions));
}

#[divan::bench]
fn flow_by_month(bencher: divan::Bencher) {
    let h = synthetic();
    bencher.bench(|| flow(&h, &FlowOptions::default()));
}

#[divan::bench]
fn cohort_mql_by_month(bencher: divan::Bencher) {
    let h = synthetic();
    let options = CohortOptions {
        stage: "MQL".into(),
        period: Period::Month,
        by: Some("source".into()),
        as_of: None,
    };
    bencher.bench(|| cohort(&h, &options));
}

#[divan::bench]
fn snapshot_now(bencher: divan::Bencher) {
    let h = synthetic();
    let options = SnapshotOptions {
        as_of: Timestamp::parse("2025-06-01T00:00:00Z").unwrap(),
        by: None,
    };
    bencher.bench(|| snapshot(&h, &options));
}
