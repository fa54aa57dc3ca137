//! The event-sourcing invariants, proven on random event logs: arrival order, batching and
//! replay never change the derived history; re-ingesting changes nothing.

use proptest::prelude::*;
use waterfall_core::{
    Event, EventBody, OpportunityContact, OpportunityState, Subject, Timestamp, Transition,
};
use waterfall_model::Model;
use waterfall_store::{BatchLimits, IngestOptions, Store};

#[path = "matching/scenarios.rs"]
mod matching;

const HORIZON: IngestOptions = IngestOptions {
    horizon: Timestamp(4_000_000_000_000_000),
};
const STAGES: [&str; 6] = ["MQL", "SAL", "SQL", "MRL", "SRL", "Customer"];
const STATUSES: [&str; 4] = ["Open", "Working", "Qualified", "Recycled"];

/// One generated action: (person index, action kind, choice); instants are made distinct
/// per person so that no tie depends on ingestion order.
fn events_strategy() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0usize..8, 0u8..8, 0usize..6, 1i64..500), 1..60).prop_map(|actions| {
        let mut out = Vec::new();
        let mut clock = [0i64; 8];
        // Merges as a CRM makes them: each person merged once at most, into someone listed
        // before them (so no cycles).
        let mut merged = [false; 8];
        for (i, (p, kind, choice, gap)) in actions.into_iter().enumerate() {
            clock[p] += gap * 3600;
            let at = Timestamp((1_735_689_600 + clock[p] * 8 + p as i64) * 1_000_000);
            let person = format!("p{p}");
            let body = match kind {
                7 if p > 0 && !merged[p] => {
                    merged[p] = true;
                    EventBody::Merge {
                        person,
                        into: format!("p{}", choice % p),
                    }
                }
                // Some people never name an account: a merge may give them one.
                0 => EventBody::Person {
                    person,
                    account: (p % 4 != 3).then(|| format!("a{}", p % 3)),
                    attrs: serde_json::json!({"source": (["webinar", "organic"][choice % 2])})
                        .as_object()
                        .cloned()
                        .unwrap(),
                },
                1 | 2 => EventBody::Stage {
                    person,
                    stage: STAGES[choice].into(),
                    by: None,
                    reason: None,
                },
                3 => EventBody::Status {
                    person,
                    status: STATUSES[choice % 4].into(),
                    by: None,
                    reason: None,
                },
                4 | 7 => EventBody::Activity {
                    subject: Subject::Person(person),
                    kind: "web_visit".into(),
                    attrs: Default::default(),
                },
                5 => EventBody::Account {
                    account: format!("a{}", p % 3),
                    attrs: Default::default(),
                },
                _ => EventBody::Opportunity {
                    // Now and then re-parented to the next account: it lives with the account
                    // its latest event names.
                    opportunity: format!("o{}", p % 3),
                    account: Some(format!("a{}", (p % 3 + choice / 4) % 3)),
                    kind: None,
                    state: [
                        OpportunityState::Open,
                        OpportunityState::Won,
                        OpportunityState::Lost,
                    ][choice % 3],
                    stage: None,
                    amount: Some(1000.0),
                    // With and without a role: both must read back from the log. People of
                    // the deal's account, and people with no account: those live with the
                    // first deal that names them (a re-parented one too), and a deal of
                    // another account leaves them to their own partition.
                    contacts: (choice / 4 == 0 || p % 4 == 3).then(|| {
                        vec![OpportunityContact {
                            person,
                            role: (choice % 2 == 0).then(|| "champion".into()),
                            primary: true,
                        }]
                    }),
                },
            };
            out.push(Event {
                id: format!("e{i}"),
                at,
                body,
            });
        }
        out
    })
}

/// A transition without its ingestion sequence: (subject, at, sub, field, from, to, rule).
type Change = (String, i64, u32, String, Option<String>, String, String);

/// The derived history without ingestion sequence numbers (which depend on arrival order).
fn history(store: &Store) -> (Vec<String>, Vec<Change>) {
    let h = store.history().unwrap();
    let mut people: Vec<String> = h
        .people
        .iter()
        .map(|p| {
            let partition = store.person(&p.id).unwrap().map(|p| p.partition);
            format!(
                "{} {:?} {} {:?} {:?} {} in {:?}",
                p.id, p.account, p.stage, p.status, p.merged_into, p.created_at, partition
            )
        })
        .collect();
    // And each account's row: where it lives and its opportunities.
    people.extend((0..3).filter_map(|a| {
        let a = store.account(&format!("a{a}")).unwrap()?;
        Some(format!(
            "{} in {} with {}",
            a.id, a.partition, a.opportunities
        ))
    }));
    people.sort();
    let mut ts: Vec<_> = h
        .transitions
        .iter()
        .map(|t: &Transition| {
            (
                t.subject.to_string(),
                t.order.at.0,
                t.order.sub,
                t.field.as_str().to_string(),
                t.from.as_ref().map(ToString::to_string),
                t.to.to_string(),
                t.rule.to_string(),
            )
        })
        .collect();
    ts.sort();
    (people, ts)
}

/// The events in a deterministic shuffled order (xorshift from `seed`).
fn shuffled(events: &[Event], seed: u64) -> Vec<Event> {
    let mut out = events.to_vec();
    let mut x = seed | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

fn ingest_all(model: &Model, batches: &[&[Event]]) -> Store {
    let mut s = Store::open_in_memory().unwrap();
    for b in batches {
        s.ingest(model, b.to_vec(), HORIZON).unwrap();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn shuffled_arrival_equals_sorted_arrival(events in events_strategy(), seed in any::<u64>()) {
        let model = Model::history_only();
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.at);
        let shuffled = shuffled(&events, seed);
        let a = ingest_all(&model, &[&sorted]);
        let b = ingest_all(&model, &[&shuffled]);
        prop_assert_eq!(history(&a), history(&b));
    }

    #[test]
    fn chunks_equal_one_batch_and_replay_equals_incremental(events in events_strategy(), cuts in prop::collection::vec(0usize..60, 0..5)) {
        let model = Model::history_only();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
        cuts.sort();
        let mut batches: Vec<&[Event]> = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([events.len()]) {
            batches.push(&events[start..c]);
            start = c;
        }
        let once = ingest_all(&model, &[&events]);
        let mut chunked = ingest_all(&model, &batches);
        prop_assert_eq!(history(&once), history(&chunked));
        chunked.replay(&model, HORIZON).unwrap();
        prop_assert_eq!(history(&once), history(&chunked));
    }

    #[test]
    fn tight_memory_limits_change_nothing(events in events_strategy(), cuts in prop::collection::vec(0usize..60, 0..3)) {
        // Few events kept in memory (the rest read back from the log) and many small passes:
        // the path a 10M-event file takes, on small data.
        let model = Model::history_only();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
        cuts.sort();
        let mut tight = Store::open_in_memory().unwrap();
        tight.set_limits(BatchLimits { memory_bytes: 200, events_per_pass: 3 });
        let mut start = 0;
        for c in cuts.into_iter().chain([events.len()]) {
            tight.ingest(&model, events[start..c].to_vec(), HORIZON).unwrap();
            start = c;
        }
        let roomy = ingest_all(&model, &[&events]);
        prop_assert_eq!(history(&roomy), history(&tight));
        tight.replay(&model, HORIZON).unwrap();
        prop_assert_eq!(history(&roomy), history(&tight));
    }

    #[test]
    fn lines_transcoded_to_records_store_what_their_events_store(events in events_strategy()) {
        // The CLI's path (JSON lines straight to records, tight memory so some spill) against
        // owned events, under a model without and one with matching.
        for model in [Model::history_only(), Model::demand_waterfall()] {
            let text: String = events.iter().map(|e| e.to_json_line() + "\n").collect();
            let parsed = waterfall_core::parse_records(&text, 1, |_| Ok(()));
            prop_assert!(parsed.errors.is_empty());
            let mut transcoded = Store::open_in_memory().unwrap();
            transcoded.set_limits(BatchLimits { memory_bytes: 200, events_per_pass: 3 });
            let mut batch = transcoded.begin(&model).unwrap();
            batch.append_records(&parsed.records, Some(&parsed.routes)).unwrap();
            let summary = batch.finish(HORIZON).unwrap();
            prop_assert_eq!(summary.received, events.len());
            let owned = ingest_all(&model, &[&events]);
            prop_assert_eq!(history(&owned), history(&transcoded));
            prop_assert_eq!(owned.all_partitions().unwrap(), transcoded.all_partitions().unwrap());
        }
    }

    #[test]
    fn reingesting_changes_nothing(events in events_strategy()) {
        let model = Model::history_only();
        let mut s = ingest_all(&model, &[&events]);
        let before = history(&s);
        let again = s.ingest(&model, events.clone(), HORIZON).unwrap();
        prop_assert_eq!(again.stored, 0);
        prop_assert_eq!(again.duplicates, events.len());
        prop_assert_eq!(before, history(&s));
    }
}

fn ev(id: &str, at: &str, line: &str) -> Event {
    let json = format!(r#"{{"id":"{id}","at":"{at}",{line}}}"#);
    waterfall_core::parse_line(&json).unwrap()
}

#[test]
fn a_merge_chain_ends_with_the_last_survivor_whatever_the_batches() {
    // x is merged into y, then y into z (each at its own account): in time order, x's events
    // went to y's account first, and must follow y to z's. One person is left, z, with x's
    // history; whichever way the events are cut into batches or ordered.
    let model = Model::history_only();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"person","person":"x","account":"a1""#,
        ),
        ev(
            "2",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"y","account":"a2""#,
        ),
        ev(
            "3",
            "2025-01-03T00:00:00Z",
            r#""type":"person","person":"z","account":"a3""#,
        ),
        ev(
            "4",
            "2025-01-04T00:00:00Z",
            r#""type":"stage","person":"x","stage":"MQL""#,
        ),
        ev(
            "5",
            "2025-02-01T00:00:00Z",
            r#""type":"merge","person":"x","into":"y""#,
        ),
        ev(
            "6",
            "2025-03-01T00:00:00Z",
            r#""type":"merge","person":"y","into":"z""#,
        ),
        ev(
            "7",
            "2025-03-02T00:00:00Z",
            r#""type":"stage","person":"x","stage":"SAL""#,
        ),
    ];
    let mut reversed = events.clone();
    reversed.reverse();
    let cases: Vec<Vec<&[Event]>> = vec![
        vec![&events],
        events.chunks(1).collect(),
        vec![&events[..5], &events[5..]],
        vec![&reversed],
    ];
    for batches in cases {
        let s = ingest_all(&model, &batches);
        let h = s.history().unwrap();
        let live: Vec<&str> = h
            .people
            .iter()
            .filter(|p| p.merged_into.is_none())
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(live, ["z"], "{:?}", history(&s).0);
        let z = s.person("z").unwrap().unwrap();
        assert_eq!((z.partition.as_str(), z.stage.as_str()), ("a3", "SAL"));
        for merged in ["x", "y"] {
            assert_eq!(
                s.person(merged).unwrap().unwrap().partition,
                "a3",
                "{merged}"
            );
        }
    }
}

#[test]
fn merge_reattributes_history_to_the_survivor() {
    let model = Model::history_only();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"person","person":"a","account":"x""#,
        ),
        ev(
            "2",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"b","attrs":{"email":"B@x.com"}"#,
        ),
        ev(
            "3",
            "2025-01-03T00:00:00Z",
            r#""type":"stage","person":"b","stage":"MQL""#,
        ),
        ev(
            "4",
            "2025-02-01T00:00:00Z",
            r#""type":"merge","person":"b","into":"a""#,
        ),
    ];
    let s = ingest_all(&model, &[&events]);
    let a = s.person("a").unwrap().unwrap();
    assert_eq!(a.stage, "MQL");
    assert_eq!(a.attrs["email"], "B@x.com");
    let b = s.person("b").unwrap().unwrap();
    assert_eq!(b.merged_into.as_deref(), Some("a"));
    assert!(s.transitions_of("b").unwrap().is_empty());
    // Only one entry into MAL: the survivor's creation.
    let mal = s
        .transitions_of("a")
        .unwrap()
        .iter()
        .filter(|t| t.to == "MAL")
        .count();
    assert_eq!(mal, 1);
}

#[test]
fn erase_leaves_nothing_identifying() {
    let model = Model::history_only();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"person","person":"jo","account":"x","attrs":{"email":"jo@x.com"}"#,
        ),
        ev(
            "2",
            "2025-01-03T00:00:00Z",
            r#""type":"stage","person":"jo","stage":"MQL""#,
        ),
        ev(
            "3",
            "2025-01-04T00:00:00Z",
            r#""type":"person","person":"al","account":"x""#,
        ),
    ];
    let mut s = ingest_all(&model, &[&events]);
    s.ingest(
        &model,
        vec![ev(
            "4",
            "2025-03-01T00:00:00Z",
            r#""type":"erase","person":"jo""#,
        )],
        HORIZON,
    )
    .unwrap();
    assert!(s.person("jo").unwrap().is_none());
    assert!(s.transitions_of("jo").unwrap().is_empty());
    for id in ["1", "2", "4"] {
        assert!(
            s.event("x", id).unwrap().is_none(),
            "event {id} is still in the log"
        );
        assert!(
            s.is_erased(id).unwrap(),
            "event {id} is not remembered as erased"
        );
    }
    assert!(s.event("x", "3").unwrap().is_some());
    assert!(s.person("al").unwrap().is_some());
    let h = s.history().unwrap();
    let dump = format!("{:?}", h);
    assert!(
        !dump.contains("jo@x.com") && !dump.contains("\"jo\""),
        "{dump}"
    );
    // Re-ingesting the erased events is a no-op: the ids are remembered.
    let again = s.ingest(&model, events.clone(), HORIZON).unwrap();
    assert_eq!(again.stored, 0);
    assert!(s.person("jo").unwrap().is_none());
    // So it is as records (the CLI's path, which otherwise reads only a record's route).
    let text: String = events.iter().map(|e| e.to_json_line() + "\n").collect();
    let parsed = waterfall_core::parse_records(&text, 1, |_| Ok(()));
    let mut batch = s.begin(&model).unwrap();
    batch
        .append_records(&parsed.records, Some(&parsed.routes))
        .unwrap();
    let again = batch.finish(HORIZON).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 3));
    assert!(s.person("jo").unwrap().is_none());
}

#[test]
fn late_event_moves_a_person_into_their_account() {
    let model = Model::history_only();
    let early = vec![ev(
        "1",
        "2025-01-05T00:00:00Z",
        r#""type":"stage","person":"p","stage":"MQL""#,
    )];
    let late = vec![ev(
        "0",
        "2025-01-01T00:00:00Z",
        r#""type":"person","person":"p","account":"acme""#,
    )];
    let s = ingest_all(&model, &[&early, &late]);
    let p = s.person("p").unwrap().unwrap();
    assert_eq!(p.account.as_deref(), Some("acme"));
    assert_eq!(p.partition, "acme");
    assert_eq!(
        p.created_at,
        Timestamp::parse("2025-01-01T00:00:00Z").unwrap()
    );
    assert_eq!(s.transitions_of("p").unwrap().len(), 3);
}

#[test]
fn a_person_moving_into_an_account_within_one_fresh_batch_keeps_all_events() {
    let model = Model::history_only();
    let batch = vec![
        ev(
            "1",
            "2025-01-05T00:00:00Z",
            r#""type":"stage","person":"p","stage":"MQL""#,
        ),
        ev(
            "2",
            "2025-01-06T00:00:00Z",
            r#""type":"person","person":"p","account":"acme""#,
        ),
        ev(
            "3",
            "2025-01-07T00:00:00Z",
            r#""type":"stage","person":"p","stage":"SAL""#,
        ),
    ];
    let s = ingest_all(&model, &[&batch]);
    let p = s.person("p").unwrap().unwrap();
    assert_eq!(p.partition, "acme");
    assert_eq!(p.stage, "SAL");
    assert!(s.event("acme", "1").unwrap().is_some());
    // Re-ingesting into the now non-empty log finds every id.
    let mut s = s;
    assert_eq!(s.ingest(&model, batch, HORIZON).unwrap().stored, 0);
}

#[test]
fn a_duplicate_that_names_an_account_brings_its_survivor_there_in_any_arrival_order() {
    let model = Model::history_only();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"acme""#,
        ),
        ev(
            "2",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"lead""#,
        ),
        ev(
            "3",
            "2025-01-03T00:00:00Z",
            r#""type":"person","person":"contact","account":"acme""#,
        ),
        ev(
            "4",
            "2025-01-04T00:00:00Z",
            r#""type":"merge","person":"contact","into":"lead""#,
        ),
        ev(
            "5",
            "2025-01-05T00:00:00Z",
            r#""type":"stage","person":"lead","stage":"MQL""#,
        ),
    ];
    let mut reversed = events.clone();
    reversed.reverse();
    for (name, batches) in [
        ("in order", vec![&events[..]]),
        ("reversed", vec![&reversed[..]]),
        ("one by one", events.chunks(1).collect()),
    ] {
        let s = ingest_all(&model, &batches);
        let lead = s.person("lead").unwrap().unwrap();
        assert_eq!(lead.partition, "acme", "{name}");
        assert_eq!(lead.account.as_deref(), Some("acme"), "{name}");
        assert_eq!(lead.stage, "MQL", "{name}");
        let people = s.history().unwrap().people.len();
        assert_eq!(
            people, 2,
            "{name}: the survivor and the merged-away duplicate"
        );
        // One account state, in its own partition.
        assert_eq!(
            s.account("acme").unwrap().unwrap().partition,
            "acme",
            "{name}"
        );
    }
}

#[test]
fn a_stage_index_is_kept_only_for_the_generation_it_was_built_from() {
    let model = Model::history_only();
    let first = vec![ev(
        "1",
        "2025-01-01T00:00:00Z",
        r#""type":"person","person":"jo","account":"x""#,
    )];
    let mut s = ingest_all(&model, &[&first]);
    let built_at = s.generation().unwrap();
    assert!(s
        .save_stage_index(built_at, (b"names", b"entries"))
        .unwrap());
    assert_eq!(
        s.stage_index(built_at).unwrap(),
        Some((b"names".to_vec(), b"entries".to_vec()))
    );
    let later = vec![ev(
        "2",
        "2025-01-02T00:00:00Z",
        r#""type":"stage","person":"jo","stage":"MQL""#,
    )];
    s.ingest(&model, later, HORIZON).unwrap();
    // The ingest moved the store on: the old index is gone, and cannot be written back.
    assert!(s.generation().unwrap() > built_at);
    assert_eq!(s.stage_index(built_at).unwrap(), None);
    assert!(!s
        .save_stage_index(built_at, (b"names", b"entries"))
        .unwrap());
    assert_eq!(s.stage_index(s.generation().unwrap()).unwrap(), None);
}

#[test]
fn records_that_do_not_decode_are_an_error_and_store_nothing() {
    let model = Model::history_only();
    let good = waterfall_core::parse_records(
        r#"{"id":"e1","at":"2025-01-01T00:00:00Z","type":"stage","person":"p1","stage":"MQL"}"#,
        1,
        |_| Ok(()),
    );
    let mut s = Store::open_in_memory().unwrap();
    for bad in [
        &[0xff, 0xff, 0xff][..],
        &good.records[..good.records.len() - 1],
        &[2, b'e', 0xc3, 0, 0][..],
        // Routable (an `erase` of p), but its id is not UTF-8: appending reads only the
        // route, so finishing (which reads every record whole) is what refuses it.
        &[2, b'e', 0xc3, 0, 8, 1, b'p'][..],
    ] {
        let refused = {
            let mut batch = s.begin(&model).unwrap();
            batch
                .append_records(&good.records, Some(&good.routes))
                .unwrap();
            match batch.append_records(bad, None) {
                Err(_) => true,
                Ok(()) => batch.finish(HORIZON).is_err(),
            }
        };
        assert!(refused, "{bad:?}");
        assert_eq!(s.counts().unwrap().0, 0);
    }
}

#[test]
fn a_survivor_without_an_account_joins_the_same_account_whatever_the_order_of_its_merges() {
    // Two duplicates in different accounts are merged into a lead that has none: the merged
    // person lives in one account, the same one however the merges arrive.
    let model = Model::history_only();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"person","person":"lead""#,
        ),
        ev(
            "2",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c1","account":"acme""#,
        ),
        ev(
            "3",
            "2025-01-03T00:00:00Z",
            r#""type":"person","person":"c2","account":"globex""#,
        ),
        ev(
            "4",
            "2025-01-04T00:00:00Z",
            r#""type":"merge","person":"c1","into":"lead""#,
        ),
        ev(
            "5",
            "2025-01-05T00:00:00Z",
            r#""type":"merge","person":"c2","into":"lead""#,
        ),
        ev(
            "6",
            "2025-01-06T00:00:00Z",
            r#""type":"stage","person":"lead","stage":"MQL""#,
        ),
    ];
    let swapped: Vec<Event> = [0, 1, 2, 4, 3, 5]
        .iter()
        .map(|&i| events[i].clone())
        .collect();
    let mut reversed = events.clone();
    reversed.reverse();
    let mut seen = Vec::new();
    for (name, batches) in [
        ("in order", vec![&events[..]]),
        ("merges swapped", vec![&swapped[..]]),
        ("reversed", vec![&reversed[..]]),
        ("one by one, merges swapped", swapped.chunks(1).collect()),
    ] {
        let s = ingest_all(&model, &batches);
        let lead = s.person("lead").unwrap().unwrap();
        assert_eq!(
            Some(lead.partition.as_str()),
            lead.account.as_deref(),
            "{name}"
        );
        for merged in ["c1", "c2"] {
            assert_eq!(
                s.person(merged).unwrap().unwrap().partition,
                lead.partition,
                "{name}"
            );
        }
        seen.push((name, lead.partition, lead.account, lead.stage));
    }
    assert!(
        seen.windows(2)
            .all(|w| (&w[0].1, &w[0].2, &w[0].3) == (&w[1].1, &w[1].2, &w[1].3)),
        "{seen:?}"
    );
}

#[test]
fn an_opportunity_lives_with_the_account_its_latest_event_names_whatever_the_order() {
    // Opened under one account, won under another (re-parented in the CRM): the won
    // opportunity is the second account's, however and in whatever batches the events come.
    let model = Model::history_only();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"acme""#,
        ),
        ev(
            "2",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"globex""#,
        ),
        ev(
            "3",
            "2025-01-02T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","state":"open""#,
        ),
        ev(
            "4",
            "2025-01-03T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"acme","state":"open""#,
        ),
        ev(
            "5",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"globex","state":"won","amount":5000"#,
        ),
    ];
    let mut reversed = events.clone();
    reversed.reverse();
    for (name, batches) in [
        ("in order", vec![&events[..]]),
        ("reversed", vec![&reversed[..]]),
        ("one by one", events.chunks(1).collect()),
        ("one by one, reversed", reversed.chunks(1).collect()),
    ] {
        let s = ingest_all(&model, &batches);
        let has_o1 = |account: &str| {
            s.account(account)
                .unwrap()
                .unwrap()
                .opportunities
                .to_string()
                .contains("o1")
        };
        assert!(has_o1("globex"), "{name}");
        assert!(!has_o1("acme"), "{name}");
        assert_eq!(
            s.all_partitions()
                .unwrap()
                .iter()
                .filter(|(_, p)| p.iter().any(|e| e.event.id == "3"))
                .count(),
            1,
            "{name}"
        );
    }
}

#[test]
fn a_person_who_changes_accounts_leaves_the_old_account_as_it_was() {
    // The person's events live with their latest account; the one they left keeps its own
    // row (attributes, partition), whichever partition is derived last.
    let model = Model::demand_waterfall();
    let events = [
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"a-acme","attrs":{"name":"Acme"}"#,
        ),
        ev(
            "2",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"b-globex","attrs":{"name":"Globex"}"#,
        ),
        ev(
            "3",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"p","account":"a-acme""#,
        ),
        ev(
            "4",
            "2025-02-01T00:00:00Z",
            r#""type":"person","person":"p","account":"b-globex""#,
        ),
    ];
    for batches in [vec![&events[..]], events.chunks(1).collect()] {
        let s = ingest_all(&model, &batches);
        let acme = s.account("a-acme").unwrap().unwrap();
        assert_eq!(acme.partition, "a-acme");
        assert_eq!(
            acme.attrs.get("name").and_then(|v| v.as_str()),
            Some("Acme")
        );
        // Its account-level history is told once, by its own partition.
        let h = s.history().unwrap();
        let mut created: Vec<String> = h
            .transitions
            .iter()
            .filter(|t| t.subject == "a-acme" && t.from.is_none())
            .map(|t| t.field.as_str().to_string())
            .collect();
        let all = created.len();
        created.sort();
        created.dedup();
        assert_eq!(
            all,
            created.len(),
            "a-acme created more than once: {created:?}"
        );
        assert_eq!(s.person("p").unwrap().unwrap().partition, "b-globex");
    }
}

#[test]
fn a_replay_of_the_stored_partitions_counts_each_account_and_person_once_as_the_store_does() {
    // A merged group lives where the latest account any member named is: here the survivor's
    // b-globex. The follower named a-acme before, so b-globex's partition passes through
    // a-acme. Impact analysis (`waterfall diff`) re-derives the stored partitions and must
    // keep, of each, the account the store keeps: one rule, by the partition's name.
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"a-acme","attrs":{"name":"Acme"}"#,
        ),
        ev(
            "2",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"b-globex","attrs":{"name":"Globex"}"#,
        ),
        ev(
            "3",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"f","account":"a-acme""#,
        ),
        ev(
            "4",
            "2025-01-03T00:00:00Z",
            r#""type":"activity","person":"f","kind":"demo_request""#,
        ),
        ev(
            "5",
            "2025-02-01T00:00:00Z",
            r#""type":"person","person":"s","account":"b-globex""#,
        ),
        ev(
            "6",
            "2025-03-01T00:00:00Z",
            r#""type":"merge","person":"f","into":"s""#,
        ),
        // A deal of a-acme naming b-globex's survivor: a contact who lives elsewhere.
        ev(
            "7",
            "2025-04-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"a-acme","state":"won","contacts":[{"person":"s"}]"#,
        ),
    ];
    let mut s = Store::open_in_memory().unwrap();
    s.ingest(&model, events, HORIZON).unwrap();
    let opts = waterfall_engine::DeriveOptions::until(HORIZON.horizon);
    let elsewhere = s.contacts_elsewhere(None).unwrap();
    assert!(elsewhere["a-acme"].contains("s"));
    let none = Default::default();
    let (mut accounts, mut replayed) = (Vec::new(), Vec::new());
    let mut people = Vec::new();
    for (name, events) in s.all_partitions().unwrap() {
        let records: Vec<_> = events
            .iter()
            .map(waterfall_engine::SequencedRecord::parsed)
            .collect();
        let mut d = waterfall_engine::derive_records_with(
            &model,
            &records,
            opts,
            elsewhere.get(&name).unwrap_or(&none),
        );
        d.keep_own_account(&name);
        people.extend(d.people.iter().map(|p| p.id.clone()));
        accounts.extend(d.accounts.into_iter().map(|a| a.id));
        replayed.extend(
            d.transitions
                .into_iter()
                .filter(|t| t.level == waterfall_core::Level::Account),
        );
    }
    accounts.sort();
    assert_eq!(accounts, ["a-acme", "b-globex"]);
    // Everyone once: the contact only in their own partition.
    people.sort();
    assert_eq!(people, ["f", "s"]);
    let key = |t: &waterfall_core::Transition| (t.subject.clone(), t.order, t.to.clone());
    let mut stored: Vec<_> = s
        .history()
        .unwrap()
        .transitions
        .iter()
        .filter(|t| t.level == waterfall_core::Level::Account)
        .map(key)
        .collect();
    let mut replayed: Vec<_> = replayed.iter().map(key).collect();
    stored.sort();
    replayed.sort();
    assert!(!stored.is_empty());
    assert_eq!(replayed, stored);
}

#[test]
fn a_contact_without_an_account_joins_the_deal_and_is_counted_once() {
    // A HubSpot contact with no company, on a deal of a-acme: "a contact with no known
    // account belongs to the deal's account". The deal's outcome moves the person, not a
    // copy of them, and the person is counted once.
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"a-acme","attrs":{"name":"Acme"}"#,
        ),
        ev(
            "2",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c","attrs":{"email":"c@gmail.example"}"#,
        ),
        ev(
            "3",
            "2025-01-03T00:00:00Z",
            r#""type":"stage","person":"c","stage":"MQL""#,
        ),
        ev(
            "4",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"a-acme","state":"open","contacts":[{"person":"c","role":"champion","primary":true}]"#,
        ),
        ev(
            "5",
            "2025-03-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","state":"won""#,
        ),
    ];
    in_every_order(&model, &events, |s, name| {
        let c = s.person("c").unwrap().unwrap();
        assert_eq!(
            (c.partition.as_str(), c.account.as_deref(), c.stage.as_str()),
            ("a-acme", Some("a-acme"), "Customer"),
            "{name}"
        );
        let h = s.history().unwrap();
        let created = h
            .transitions
            .iter()
            .filter(|t| {
                t.subject == "c" && t.from.is_none() && t.field == waterfall_core::Field::Stage
            })
            .count();
        assert_eq!(created, 1, "{name}: c was created more than once");
    });
}

/// Ingests `events` into a new store in one batch, one by one, and one by one in reverse,
/// and calls `check` with each store.
fn in_every_order(model: &Model, events: &[Event], check: impl Fn(&Store, &str)) {
    let reversed: Vec<Event> = events.iter().rev().cloned().collect();
    for (name, batches) in [
        ("one batch", vec![events]),
        ("one by one", events.chunks(1).collect()),
        ("one by one, reversed", reversed.chunks(1).collect()),
    ] {
        check(&ingest_all(model, &batches), name);
    }
}

#[test]
fn a_contact_without_an_account_follows_the_deal_that_gave_them_one() {
    // The deal is re-parented from a-acme to b-globex: its contact without an account of
    // their own was a-acme's only through it, and goes along, history and all.
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c""#,
        ),
        ev(
            "2",
            "2025-01-03T00:00:00Z",
            r#""type":"stage","person":"c","stage":"MQL""#,
        ),
        ev(
            "3",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"a-acme","state":"open","contacts":[{"person":"c"}]"#,
        ),
        ev(
            "4",
            "2025-03-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"b-globex","state":"won""#,
        ),
    ];
    in_every_order(&model, &events, |s, name| {
        let c = s.person("c").unwrap().unwrap();
        assert_eq!(
            (c.partition.as_str(), c.account.as_deref(), c.stage.as_str()),
            ("b-globex", Some("b-globex"), "Customer"),
            "{name}"
        );
        assert_eq!(s.people_of_account("b-globex").unwrap().len(), 1, "{name}");
        assert!(s.people_of_account("a-acme").unwrap().is_empty(), "{name}");
    });
}

#[test]
fn a_contact_with_an_account_of_their_own_stays_there() {
    // Named by b-globex, c lives there, whatever a deal of a-acme says; an account named
    // later also takes a deal's contact away from the deal.
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c","account":"b-globex""#,
        ),
        ev(
            "2",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"a-acme","state":"open","contacts":[{"person":"c"},{"person":"d"}]"#,
        ),
        ev(
            "3",
            "2025-01-05T00:00:00Z",
            r#""type":"person","person":"d""#,
        ),
        ev(
            "4",
            "2025-04-01T00:00:00Z",
            r#""type":"person","person":"d","account":"c-initech""#,
        ),
    ];
    in_every_order(&model, &events, |s, name| {
        let c = s.person("c").unwrap().unwrap();
        assert_eq!(c.partition, "b-globex", "{name}");
        let d = s.person("d").unwrap().unwrap();
        assert_eq!(
            (d.partition.as_str(), d.account.as_deref()),
            ("c-initech", Some("c-initech")),
            "{name}"
        );
    });
}

#[test]
fn an_erased_contact_leaves_no_trace_on_the_deal() {
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c""#,
        ),
        ev(
            "2",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"a-acme","state":"open","contacts":[{"person":"c"}]"#,
        ),
    ];
    let mut s = Store::open_in_memory().unwrap();
    s.ingest(&model, events, HORIZON).unwrap();
    assert_eq!(s.person("c").unwrap().unwrap().partition, "a-acme");
    s.ingest(
        &model,
        vec![ev(
            "3",
            "2025-03-01T00:00:00Z",
            r#""type":"erase","person":"c""#,
        )],
        HORIZON,
    )
    .unwrap();
    // Gone: their events, their claim, and their name on the deal.
    assert!(s.person("c").unwrap().is_none());
    assert_eq!(s.contact_claim("c").unwrap(), None);
    let deal = s.stored_events("a-acme").unwrap();
    assert!(deal
        .iter()
        .all(|e| !format!("{:?}", e.event.body).contains("\"c\"")));
}

#[test]
fn a_matched_contact_lives_with_the_match_not_the_deal() {
    // Matching finds c's account by their email's domain: a known account comes before a
    // deal's, whatever the order the events come in.
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"acme","attrs":{"name":"ACME Incorporated","domain":"acme.com"}"#,
        ),
        ev(
            "2",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c","attrs":{"email":"c@acme.com"}"#,
        ),
        ev(
            "3",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"globex","state":"open","contacts":[{"person":"c"}]"#,
        ),
    ];
    in_every_order(&model, &events, |s, name| {
        let c = s.person("c").unwrap().unwrap();
        assert_eq!(
            (c.partition.as_str(), c.account.as_deref()),
            ("acme", Some("acme")),
            "{name}"
        );
    });
}

#[test]
fn an_erased_contact_of_another_accounts_deal_leaves_no_trace_there_either() {
    // c lives in b-globex; a deal of a-acme names them. Erasing c rewrites a-acme's stored
    // deal without them, and no partition keeps a state of c.
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c","account":"b-globex","attrs":{"email":"c@globex.example"}"#,
        ),
        ev(
            "2",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"a-acme","state":"open","contacts":[{"person":"c"},{"person":"d"}]"#,
        ),
    ];
    let mut s = Store::open_in_memory().unwrap();
    s.ingest(&model, events, HORIZON).unwrap();
    s.ingest(
        &model,
        vec![ev(
            "3",
            "2025-03-01T00:00:00Z",
            r#""type":"erase","person":"c""#,
        )],
        HORIZON,
    )
    .unwrap();
    assert!(s.person("c").unwrap().is_none());
    assert!(s.history().unwrap().people.iter().all(|p| p.id != "c"));
    let deal = s.stored_events("a-acme").unwrap();
    let text = format!("{deal:?}");
    assert!(!text.contains("\"c\""), "{text}");
    assert!(text.contains("\"d\""), "the other contact stays: {text}");
}

#[test]
fn a_contact_of_another_account_is_counted_once_in_their_own() {
    // c belongs to b-globex; a deal of a-acme names them. The deal keeps c among its contacts,
    // but c has one state, one history, in b-globex: not a second one in a-acme.
    let model = Model::demand_waterfall();
    let events = vec![
        ev(
            "1",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"c","account":"b-globex""#,
        ),
        ev(
            "2",
            "2025-01-03T00:00:00Z",
            r#""type":"stage","person":"c","stage":"MQL""#,
        ),
        ev(
            "3",
            "2025-02-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","account":"a-acme","state":"open","contacts":[{"person":"c","role":"champion"}]"#,
        ),
        ev(
            "4",
            "2025-03-01T00:00:00Z",
            r#""type":"opportunity","opportunity":"o1","state":"won""#,
        ),
    ];
    in_every_order(&model, &events, |s, name| {
        let c = s.person("c").unwrap().unwrap();
        assert_eq!(
            (c.partition.as_str(), c.account.as_deref()),
            ("b-globex", Some("b-globex")),
            "{name}"
        );
        let h = s.history().unwrap();
        assert_eq!(h.people.iter().filter(|p| p.id == "c").count(), 1, "{name}");
        let created = h
            .transitions
            .iter()
            .filter(|t| {
                t.subject == "c" && t.from.is_none() && t.field == waterfall_core::Field::Stage
            })
            .count();
        assert_eq!(created, 1, "{name}: c created more than once");
        assert!(s.people_of_account("a-acme").unwrap().is_empty(), "{name}");
        let acme = s.account("a-acme").unwrap().unwrap();
        assert!(
            acme.opportunities.to_string().contains(r#""person":"c""#),
            "{name}"
        );
    });
}
