//! Randomized comparison of `flow`, `cohort` and `snapshot` against a deliberately naive
//! reimplementation written straight from the contract's wording (quadratic loops, strings).

use crate::support::{person, STAGES};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use waterfall_core::{Field, Level, Order, Period, Timestamp, Transition, MICROS_PER_DAY};
use waterfall_report::*;

/// A small world: people with attributes and visibility, and their stage transitions.
#[derive(Debug, Clone)]
struct World {
    people: Vec<PersonInfo>,
    transitions: Vec<Transition>,
}

const BASE: i64 = 1_735_000_000_000_000; // 2024-12-24, close to a year and ISO-week boundary
const POOL: &[&str] = &["MAL", "MQL", "SAL", "SQL", "MRL", "Customer", "Imported"];

fn world() -> impl Strategy<Value = World> {
    let person_s = (
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        any::<bool>(),
        any::<bool>(),
    );
    let moves = prop::collection::vec(
        (
            0usize..8, // person index
            0i64..40,  // coarse instant: many ties
            0i64..3,   // sub-day offset in hours
            0usize..POOL.len(),
            0u64..1000, // ingestion sequence
        ),
        0..40,
    );
    (prop::collection::vec(person_s, 0..6), moves).prop_map(|(ps, moves)| {
        let people = ps
            .into_iter()
            .enumerate()
            .map(|(i, (src, visible, numeric))| {
                let attrs = match (src, numeric) {
                    (Some(s), false) => json!({ "source": s }),
                    (Some(_), true) => json!({ "source": 7 }),
                    (None, _) => json!({}),
                };
                let mut p = person(&format!("p{i}"), attrs);
                p.visible = visible;
                p
            })
            .collect();
        let mut used = BTreeSet::new();
        let transitions = moves
            .into_iter()
            .filter(|m| used.insert(m.4)) // sequences are unique
            .map(|(p, day, hour, stage, seq)| Transition {
                level: Level::Person,
                subject: format!("p{p}").into(),
                field: Field::Stage,
                order: Order {
                    at: Timestamp(BASE + day * 5 * MICROS_PER_DAY + hour * 3_600_000_000),
                    seq,
                    sub: 0,
                },
                from: None,
                to: POOL[stage].into(),
                event: None,
                rule: "explicit".into(),
            })
            .collect();
        World {
            people,
            transitions,
        }
    })
}

fn build(w: &World) -> History {
    History::new(
        STAGES.iter().map(|s| s.to_string()).collect(),
        vec![],
        w.people.clone(),
        w.transitions.clone(),
    )
}

/// The naive entries: every stage transition, in order per person, minus "same stage again".
fn entries(w: &World) -> Vec<(String, Order, String)> {
    let mut all: Vec<(String, Order, String)> = w
        .transitions
        .iter()
        .map(|t| (t.subject.to_string(), t.order, t.to.to_string()))
        .collect();
    all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut out: Vec<(String, Order, String)> = Vec::new();
    for e in all {
        let same = out
            .iter()
            .rev()
            .find(|x| x.0 == e.0)
            .is_some_and(|x| x.2 == e.2);
        if !same {
            out.push(e);
        }
    }
    out
}

fn segment(w: &World, by: Option<&str>, who: &str) -> Option<Option<String>> {
    let by = by?;
    let p = w.people.iter().find(|p| p.id == who);
    Some(match p.and_then(|p| p.attrs.get(by)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => Some(v.to_string()),
    })
}

fn naive_median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

type FlowKey = (String, String, Option<Option<String>>);

fn naive_flow(w: &World, o: &FlowOptions) -> BTreeMap<FlowKey, (u64, u64)> {
    let es = entries(w);
    let mut out = BTreeMap::new();
    for e in &es {
        let inside = o.from.is_none_or(|f| e.1.at >= f)
            && o.to.is_none_or(|t| e.1.at < t)
            && o.as_of.is_none_or(|t| e.1.at <= t);
        if !inside {
            continue;
        }
        let key = (
            o.period.label(e.1.at),
            e.2.clone(),
            segment(w, o.by.as_deref(), &e.0),
        );
        if out.contains_key(&key) {
            continue;
        }
        let mut n = 0;
        let mut people = BTreeSet::new();
        for x in &es {
            let inside = o.from.is_none_or(|f| x.1.at >= f)
                && o.to.is_none_or(|t| x.1.at < t)
                && o.as_of.is_none_or(|t| x.1.at <= t);
            if inside
                && o.period.label(x.1.at) == key.0
                && x.2 == key.1
                && segment(w, o.by.as_deref(), &x.0) == key.2
            {
                n += 1;
                people.insert(x.0.clone());
            }
        }
        out.insert(key, (n, people.len() as u64));
    }
    out
}

type CohortKey = (String, Option<Option<String>>);
type CohortVal = (u64, BTreeMap<String, (u64, f64)>);

fn naive_cohort(w: &World, o: &CohortOptions) -> BTreeMap<CohortKey, CohortVal> {
    let es: Vec<_> = entries(w)
        .into_iter()
        .filter(|e| o.as_of.is_none_or(|t| e.1.at <= t))
        .collect();
    let mut sizes: BTreeMap<CohortKey, u64> = BTreeMap::new();
    let mut times: BTreeMap<(CohortKey, String), Vec<f64>> = BTreeMap::new();
    for x in es.iter().filter(|e| e.2 == o.stage) {
        let key = (o.period.label(x.1.at), segment(w, o.by.as_deref(), &x.0));
        *sizes.entry(key.clone()).or_default() += 1;
        let end = es
            .iter()
            .filter(|y| y.0 == x.0 && y.2 == o.stage && y.1 > x.1)
            .map(|y| y.1)
            .min();
        let mut first: BTreeMap<String, Timestamp> = BTreeMap::new();
        for y in &es {
            if y.0 == x.0 && y.2 != o.stage && y.1 > x.1 && end.is_none_or(|end| y.1 < end) {
                let f = first.entry(y.2.clone()).or_insert(y.1.at);
                *f = (*f).min(y.1.at);
            }
        }
        for (s, at) in first {
            times
                .entry((key.clone(), s))
                .or_default()
                .push(x.1.at.days_until(at));
        }
    }
    let mut out: BTreeMap<CohortKey, CohortVal> = sizes
        .into_iter()
        .map(|(k, n)| (k, (n, BTreeMap::new())))
        .collect();
    for ((k, s), v) in times {
        let n = v.len() as u64;
        out.get_mut(&k).unwrap().1.insert(s, (n, naive_median(v)));
    }
    out
}

fn naive_snapshot(
    w: &World,
    o: &SnapshotOptions,
) -> BTreeMap<(String, Option<Option<String>>), u64> {
    let es = entries(w);
    let mut out = BTreeMap::new();
    let mut who: BTreeSet<&str> = es.iter().map(|e| e.0.as_str()).collect();
    who.retain(|p| {
        w.people
            .iter()
            .find(|x| x.id == *p)
            .is_none_or(|x| x.visible)
    });
    for p in who {
        let last = es
            .iter()
            .filter(|e| e.0 == p && e.1.at <= o.as_of)
            .max_by_key(|e| e.1);
        if let Some(e) = last {
            *out.entry((e.2.clone(), segment(w, o.by.as_deref(), p)))
                .or_default() += 1;
        }
    }
    out
}

fn period_of(i: u8) -> Period {
    [Period::Week, Period::Month, Period::Quarter, Period::Year][i as usize % 4]
}

fn instant(day: Option<i64>) -> Option<Timestamp> {
    day.map(|d| Timestamp(BASE + d * 5 * MICROS_PER_DAY))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn flow_matches_the_naive_definition(
        w in world(), p in 0u8..4, by in any::<bool>(),
        from in prop::option::of(0i64..40), to in prop::option::of(0i64..40),
        as_of in prop::option::of(0i64..40),
    ) {
        let o = FlowOptions {
            period: period_of(p),
            from: instant(from),
            to: instant(to),
            by: by.then(|| "source".to_string()),
            as_of: instant(as_of),
        };
        let r = flow(&build(&w), &o);
        let got: BTreeMap<FlowKey, (u64, u64)> = r
            .rows
            .iter()
            .map(|r| ((r.period.clone(), r.stage.clone(), r.segment.clone()), (r.entries, r.people)))
            .collect();
        prop_assert_eq!(got.len(), r.rows.len());
        prop_assert_eq!(got, naive_flow(&w, &o));
    }

    #[test]
    fn cohort_matches_the_naive_definition(
        w in world(), p in 0u8..4, by in any::<bool>(),
        stage in prop::sample::select(vec!["MQL", "SAL", "Imported"]),
        as_of in prop::option::of(0i64..40),
    ) {
        let o = CohortOptions {
            stage: stage.into(),
            period: period_of(p),
            by: by.then(|| "source".to_string()),
            as_of: instant(as_of),
        };
        let r = cohort(&build(&w), &o);
        let expected = naive_cohort(&w, &o);
        prop_assert_eq!(r.rows.len(), expected.len());
        for row in &r.rows {
            let (size, reached) = &expected[&(row.period.clone(), row.segment.clone())];
            prop_assert_eq!(row.size, *size);
            prop_assert_eq!(row.reached.0.len(), reached.len());
            prop_assert_eq!(row.median_days.0.len(), reached.len());
            for (s, (n, median)) in reached {
                prop_assert_eq!(row.reached.get(s), Some(n));
                let got = *row.median_days.get(s).unwrap();
                prop_assert!((got - median).abs() < 1e-9, "{} vs {}", got, median);
            }
        }
    }

    #[test]
    fn snapshot_matches_the_naive_definition(
        w in world(), by in any::<bool>(), as_of in 0i64..40,
    ) {
        let o = SnapshotOptions {
            as_of: instant(Some(as_of)).unwrap(),
            by: by.then(|| "source".to_string()),
        };
        let r = snapshot(&build(&w), &o);
        let got: BTreeMap<_, _> = r
            .rows
            .iter()
            .map(|r| ((r.stage.clone(), r.segment.clone()), r.people))
            .collect();
        prop_assert_eq!(got.len(), r.rows.len());
        prop_assert_eq!(got, naive_snapshot(&w, &o));
    }
}

proptest! {
    #[test]
    fn quantiles_match_sorting_and_interpolating(
        mut v in prop::collection::vec(0u32..1000, 1..50), q in 0.0f64..=1.0,
    ) {
        let mut values: Vec<f64> = v.iter().map(|&x| x as f64 / 7.0).collect();
        v.sort();
        let sorted: Vec<f64> = v.iter().map(|&x| x as f64 / 7.0).collect();
        let pos = (sorted.len() - 1) as f64 * q;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let expected = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64);
        let got = quantile_cont(&mut values, q).unwrap();
        prop_assert!((got - expected).abs() < 1e-9, "{} vs {}", got, expected);
    }
}

/// The same world with every transition moved to the account level.
fn as_accounts(w: &World) -> History {
    let transitions = w.transitions.iter().cloned().map(|mut t| {
        t.level = Level::Account;
        t
    });
    let accounts = w
        .people
        .iter()
        .map(|p| AccountInfo {
            id: p.id.clone(),
            attrs: p.attrs.clone(),
            visible: p.visible,
        })
        .collect();
    History::new(vec![], vec![], vec![], transitions)
        .with_accounts(accounts, STAGES.iter().map(|s| s.to_string()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn account_reports_equal_person_reports_over_the_same_history(
        w in world(), p in 0u8..4, by in any::<bool>(), as_of in 0i64..40,
    ) {
        let (people, accounts) = (build(&w), as_accounts(&w));
        let by = by.then(|| "source".to_string());
        let f = FlowOptions { period: period_of(p), by: by.clone(), ..FlowOptions::default() };
        prop_assert_eq!(account_flow(&accounts, &f).to_json(), flow(&people, &f).to_json());
        let c = CohortOptions {
            stage: "MQL".into(),
            period: period_of(p),
            by: by.clone(),
            as_of: instant(Some(as_of)),
        };
        prop_assert_eq!(account_cohort(&accounts, &c).to_json(), cohort(&people, &c).to_json());
        let s = SnapshotOptions { as_of: instant(Some(as_of)).unwrap(), by };
        prop_assert_eq!(
            account_snapshot(&accounts, &s).to_json(),
            snapshot(&people, &s).to_json()
        );
    }
}

/// Entries, stayed, and counts per next stage.
type Conversion = (u64, u64, BTreeMap<String, u64>);

fn naive_quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = (v.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The next entry of the same person after `x` (with `at <= as_of`), straight from the words.
fn next_of<'a>(
    es: &'a [(String, Order, String)],
    x: &(String, Order, String),
    as_of: Option<Timestamp>,
) -> Option<&'a (String, Order, String)> {
    es.iter()
        .filter(|y| y.0 == x.0 && y.1 > x.1 && as_of.is_none_or(|t| y.1.at <= t))
        .min_by_key(|y| y.1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn velocity_matches_the_naive_definition(
        w in world(), p in 0u8..4, by in any::<bool>(),
        from in prop::option::of(0i64..40), as_of in prop::option::of(0i64..40),
    ) {
        let o = VelocityOptions {
            period: period_of(p),
            from: instant(from),
            to: None,
            by: by.then(|| "source".to_string()),
            as_of: instant(as_of),
        };
        let r = velocity(&build(&w), &o);
        let es: Vec<_> = entries(&w)
            .into_iter()
            .filter(|e| o.as_of.is_none_or(|t| e.1.at <= t))
            .collect();
        let mut closed: BTreeMap<FlowKey, Vec<f64>> = BTreeMap::new();
        for x in &es {
            if let Some(y) = next_of(&es, x, o.as_of) {
                if o.from.is_none_or(|f| y.1.at >= f) {
                    closed
                        .entry((o.period.label(y.1.at), x.2.clone(), segment(&w, o.by.as_deref(), &x.0)))
                        .or_default()
                        .push(x.1.at.days_until(y.1.at));
                }
            }
        }
        prop_assert_eq!(r.rows.len(), closed.len());
        for row in &r.rows {
            let d = &closed[&(row.period.clone(), row.stage.clone(), row.segment.clone())];
            prop_assert_eq!(row.stays, d.len() as u64);
            prop_assert!((row.median_days - naive_quantile(d.clone(), 0.5)).abs() < 1e-9);
            prop_assert!((row.p90_days - naive_quantile(d.clone(), 0.9)).abs() < 1e-9);
        }
        let until = o.as_of.or(entries(&w).iter().map(|e| e.1.at).max());
        let mut open: BTreeMap<(String, Option<Option<String>>), Vec<f64>> = BTreeMap::new();
        for x in &es {
            let visible = w.people.iter().find(|p| p.id == x.0).is_none_or(|p| p.visible);
            if visible && next_of(&es, x, o.as_of).is_none() {
                open.entry((x.2.clone(), segment(&w, o.by.as_deref(), &x.0)))
                    .or_default()
                    .push(x.1.at.days_until(until.unwrap()));
            }
        }
        prop_assert_eq!(r.open.len(), open.len());
        for row in &r.open {
            let d = &open[&(row.stage.clone(), row.segment.clone())];
            prop_assert_eq!(row.people, d.len() as u64);
            prop_assert!((row.median_days - naive_quantile(d.clone(), 0.5)).abs() < 1e-9);
            prop_assert!((row.p90_days - naive_quantile(d.clone(), 0.9)).abs() < 1e-9);
        }
    }

    #[test]
    fn conversion_matches_the_naive_definition(
        w in world(), by in any::<bool>(),
        from in prop::option::of(0i64..40), as_of in prop::option::of(0i64..40),
    ) {
        let o = ConversionOptions {
            from: instant(from),
            to: None,
            by: by.then(|| "source".to_string()),
            as_of: instant(as_of),
        };
        let r = conversion(&build(&w), &o);
        let es: Vec<_> = entries(&w)
            .into_iter()
            .filter(|e| o.as_of.is_none_or(|t| e.1.at <= t))
            .collect();
        let mut expected: BTreeMap<CohortKey, Conversion> = BTreeMap::new();
        for x in es.iter().filter(|x| o.from.is_none_or(|f| x.1.at >= f)) {
            let cell = expected
                .entry((x.2.clone(), segment(&w, o.by.as_deref(), &x.0)))
                .or_default();
            cell.0 += 1;
            match next_of(&es, x, o.as_of) {
                Some(y) => *cell.2.entry(y.2.clone()).or_default() += 1,
                None => cell.1 += 1,
            }
        }
        let got: BTreeMap<_, _> = r
            .rows
            .iter()
            .map(|row| {
                let next: BTreeMap<String, u64> = row.next.0.iter().cloned().collect();
                ((row.from.clone(), row.segment.clone()), (row.entries, row.stayed, next))
            })
            .collect();
        prop_assert_eq!(got, expected);
    }
}
