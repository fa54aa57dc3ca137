//! The engine's hot paths: parsing an event, deriving partitions under each shipped model
//! (with and without automation), and evaluating rule conditions on the direct evaluator and
//! on the CEL interpreter. Run with `cargo bench -p waterfall-engine`; run rarely on a shared
//! machine.
//!
//! On a busy machine compare instruction counts instead, which do not depend on load:
//! `valgrind --tool=callgrind --toggle-collect='waterfall_engine::derive::derive'` over the
//! `derive_demo` example (which also writes every result, to diff two builds' outputs).
//! What the profiles showed (200-account demo, about 22k events):
//!
//! - default model, before: 1,644M instructions, 80% in `Condition::eval` building a
//!   `cel::Context` and CEL values per call (mostly account rules, run on every rollup);
//!   the direct evaluator took it to 364M;
//! - then the rollups: a role set per engaged member, a person lookup by string per
//!   member, the account's engagement recomputed though nothing read it (205M); rollup
//!   timers of people who had engaged again since, and rules rerun on unchanged
//!   aggregates (151M);
//! - history-only, before: 75.7M, most of it allocation: event ids cloned as causes,
//!   rollup bookkeeping for a model without account stages, attributes inserted key by key
//!   (35.2M). What remains is mostly building the output (transitions and final states
//!   own their strings).

mod support;

use divan::Bencher;
use waterfall_core::{parse_line, Event, Timestamp};
use waterfall_demo::{generate, write_jsonl, DemoOptions};
use waterfall_engine::{derive_all, DeriveOptions, SequencedEvent};
use waterfall_model::{AccountAggregates, Condition, EvalContext, Model};

fn main() {
    divan::main();
}

/// The demo's events (200 accounts, about 22k events), grouped by account as the store
/// would partition them (people without an account get their own partition).
fn partitions() -> Vec<Vec<SequencedEvent>> {
    support::by_account(generate(&DemoOptions {
        accounts: 200,
        ..DemoOptions::default()
    }))
}

const HORIZON: DeriveOptions = DeriveOptions::until(Timestamp(1_798_761_600_000_000));

#[divan::bench]
fn derive_demo_default_model(bencher: Bencher) {
    let model = Model::demand_waterfall();
    let parts = partitions();
    let n: usize = parts.iter().map(Vec::len).sum();
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench(|| derive_all(&model, &parts, HORIZON));
}

#[divan::bench]
fn derive_demo_history_only(bencher: Bencher) {
    let model = Model::history_only();
    let parts = partitions();
    let n: usize = parts.iter().map(Vec::len).sum();
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench(|| derive_all(&model, &parts, HORIZON));
}

const PERSON_LINE: &str = r#"{"id":"e2","at":"2025-01-03T10:00:00Z","type":"person","person":"p1","account":"a1","attrs":{"email":"jo@acme.com","title":"VP Marketing","source":"webinar"}}"#;

/// A JSON line into an owned event (the API's path).
#[divan::bench]
fn parse_event_line(bencher: Bencher) {
    bencher.bench(|| -> Event { parse_line(divan::black_box(PERSON_LINE)).unwrap() });
}

/// A JSON line straight into its stored record (the CLI ingest's path).
#[divan::bench]
fn parse_line_into_record(bencher: Bencher) {
    let mut out = Vec::with_capacity(256);
    bencher.bench_local(|| {
        out.clear();
        waterfall_core::parse_record(divan::black_box(PERSON_LINE))
            .unwrap()
            .write(&mut out);
        out.len()
    });
}

/// A chunk of JSON lines (the demo's 200 accounts) into records and their routes, as each
/// parser thread of the CLI's ingest does with its 16 MB chunks.
#[divan::bench]
fn parse_chunk_into_records(bencher: Bencher) {
    let events = generate(&DemoOptions {
        accounts: 200,
        ..DemoOptions::default()
    });
    let mut jsonl = Vec::new();
    write_jsonl(&events, &mut jsonl).expect("writing to memory");
    let text = String::from_utf8(jsonl).expect("JSON is UTF-8");
    bencher
        .counter(divan::counter::ItemsCount::new(events.len()))
        .bench(|| waterfall_core::parse_records(divan::black_box(&text), 1, |_| Ok(())).count);
}

/// The demo's events as one stored record stream (records one after another).
fn record_stream() -> (Vec<u8>, usize) {
    let events = generate(&DemoOptions {
        accounts: 200,
        ..DemoOptions::default()
    });
    let mut stream = Vec::new();
    for e in &events {
        e.record(&e.attrs_text()).write(&mut stream);
    }
    (stream, events.len())
}

/// Writing records (every event of a load is written once by the parser).
#[divan::bench]
fn write_records(bencher: Bencher) {
    let events = generate(&DemoOptions {
        accounts: 200,
        ..DemoOptions::default()
    });
    let attrs: Vec<String> = events.iter().map(Event::attrs_text).collect();
    let records: Vec<_> = events
        .iter()
        .zip(&attrs)
        .map(|(e, a)| e.record(a))
        .collect();
    let mut out = Vec::with_capacity(8 << 20);
    bencher
        .counter(divan::counter::ItemsCount::new(records.len()))
        .bench_local(|| {
            out.clear();
            for r in &records {
                r.write(&mut out);
            }
            out.len()
        });
}

/// Steps through a record stream with `read` (which returns a record's instant and the bytes
/// after it), folding the instants so that the work cannot be skipped.
fn fold_stream(stream: &[u8], read: impl Fn(&[u8]) -> (i64, &[u8])) -> i64 {
    let (mut rest, mut folded) = (stream, 0);
    while !rest.is_empty() {
        let (at, next) = read(rest);
        folded ^= at;
        rest = next;
    }
    folded
}

/// Encoding each partition's transitions as a stored table (every derived partition is
/// encoded once; the demo under the default model, about 8k transitions).
#[divan::bench]
fn encode_transition_tables(bencher: Bencher) {
    let model = Model::demand_waterfall();
    let derived = derive_all(&model, &partitions(), HORIZON);
    let n: usize = derived.iter().map(|d| d.transitions.len()).sum();
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench_local(|| {
            derived
                .iter()
                .map(|d| waterfall_core::TransitionTable::encode(&d.transitions).len())
                .sum::<usize>()
        });
}

/// Reading a record stream back whole (what deriving a stored partition starts with).
#[divan::bench]
fn read_records(bencher: Bencher) {
    let (stream, n) = record_stream();
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench_local(|| {
            fold_stream(&stream, |b| {
                let (r, next) = waterfall_core::Record::read(b).unwrap();
                (r.at, next)
            })
        });
}

/// Reading only what routes each record of a stream (the batch's path for every event).
#[divan::bench]
fn read_record_routes(bencher: Bencher) {
    let (stream, n) = record_stream();
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench_local(|| {
            fold_stream(&stream, |b| {
                let (at, _, next) = waterfall_core::Record::read_route(b).unwrap();
                (at, next)
            })
        });
}

/// Whether a condition holds, on the direct evaluator (`compiled`, what the engine runs) or
/// on the CEL interpreter alone.
fn holds(condition: &Condition, ctx: &EvalContext<'_>, compiled: bool) -> bool {
    if compiled {
        condition.eval(ctx)
    } else {
        condition.eval_interpreted(ctx)
    }
    .unwrap_or(false)
}

/// The default model's fit rules against one person and account, on the direct evaluator
/// (`compiled = true`, what the engine runs) or on the CEL interpreter alone.
#[divan::bench(args = [true, false])]
fn evaluate_fit_rules(bencher: Bencher, compiled: bool) {
    let model = Model::demand_waterfall();
    let person = serde_json::json!({"seniority": "vp", "department": "marketing", "email_domain": "acme.com"});
    let account = serde_json::json!({"industry": "Software", "employees": 800, "icp_tier": 1});
    let (person, account) = (person.as_object().unwrap(), account.as_object().unwrap());
    bencher.bench(|| {
        let ctx = EvalContext {
            person: Some(person),
            account: Some(account),
            ..EvalContext::default()
        };
        model
            .scoring
            .fit
            .iter()
            .filter(|r| holds(&r.condition, &ctx, compiled))
            .map(|r| r.points)
            .sum::<f64>()
    });
}

/// The default model's account rules against one account's aggregates, as every rollup
/// evaluates them, on the direct evaluator or on the interpreter alone.
#[divan::bench(args = [true, false])]
fn evaluate_account_rules(bencher: Bencher, compiled: bool) {
    let model = Model::demand_waterfall();
    let account =
        serde_json::json!({"industry": "Software", "employees": 800, "tier": "enterprise"});
    let account = account.as_object().unwrap();
    let aggregates = AccountAggregates {
        engaged_people: 2,
        mql_people: 1,
        roles: vec!["decision_maker".into(), "user".into()],
        ..AccountAggregates::default()
    };
    bencher.bench(|| {
        let ctx = EvalContext {
            account: Some(account),
            aggregates: Some(&aggregates),
            thresholds: Some(&model.scoring.thresholds),
            ..EvalContext::default()
        };
        model
            .account_rules
            .iter()
            .filter(|r| holds(&r.condition, &ctx, compiled))
            .count()
    });
}
