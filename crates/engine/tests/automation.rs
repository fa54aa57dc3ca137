//! Scenario tests of the default model's automation: small event stories in, the expected
//! timeline out. Each test reads like the behaviour it proves.

use waterfall_core::{parse_line, Field, Level, Timestamp};
use waterfall_engine::{derive, derive_all, DeriveOptions, Derived, SequencedEvent};
use waterfall_model::Model;

/// Derives a story (one JSON object per line, without `id`: ids are the line numbers).
fn run(story: &str, horizon: &str) -> Derived {
    let mut events: Vec<SequencedEvent> = story
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            let json = format!(r#"{{"id":"e{i}",{}"#, &l[1..]);
            SequencedEvent {
                seq: i as u64,
                event: parse_line(&json).unwrap_or_else(|e| panic!("{l}: {e}")),
            }
        })
        .collect();
    events.sort_by_key(|e| (e.event.at, e.seq));
    derive(
        &Model::demand_waterfall(),
        &events,
        DeriveOptions::until(Timestamp::parse(horizon).unwrap()),
    )
}

/// The person's stage path, as `MAL>MQL>SAL`.
fn stages(d: &Derived, person: &str) -> String {
    d.transitions
        .iter()
        .filter(|t| t.level == Level::Person && t.subject == person && t.field == Field::Stage)
        .map(|t| t.to.as_str())
        .collect::<Vec<_>>()
        .join(">")
}

fn status(d: &Derived, person: &str) -> String {
    d.people
        .iter()
        .find(|p| p.id == person)
        .and_then(|p| p.status.clone())
        .unwrap_or_default()
}

const ACCOUNT: &str = r#"{"at":"2025-01-01T00:00:00Z","type":"account","account":"a1","attrs":{"name":"Acme","industry":"Software","employees":800,"region":"NA","icp_tier":1}}
{"at":"2025-01-02T00:00:00Z","type":"person","person":"p1","account":"a1","attrs":{"title":"VP Marketing","seniority":"vp","department":"marketing","email":"jo@acme.com"}}"#;

#[test]
fn a_hand_raiser_becomes_an_mql_and_sales_accepts_by_working_it() {
    let d = run(
        &format!(
            "{ACCOUNT}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"demo_request\"}}
{{\"at\":\"2025-01-06T15:00:00Z\",\"type\":\"status\",\"person\":\"p1\",\"status\":\"Working\"}}"
        ),
        "2025-01-07T00:00:00Z",
    );
    assert_eq!(stages(&d, "p1"), "MAL>MQL>SAL");
    assert_eq!(status(&d, "p1"), "Working");
    let mql = d.transitions.iter().find(|t| t.to == "MQL").unwrap();
    assert_eq!(mql.rule, "hand-raiser");
    assert_eq!(mql.event.as_deref(), Some("e2"));
}

#[test]
fn an_mql_nobody_accepts_in_three_business_days_is_recycled_even_over_a_weekend() {
    // MQL on Thursday 2025-01-09: three business days end on Tuesday, not Sunday.
    let story = format!(
        "{ACCOUNT}
{{\"at\":\"2025-01-09T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"demo_request\"}}"
    );
    let before = run(&story, "2025-01-13T09:00:00Z");
    assert_eq!(
        stages(&before, "p1"),
        "MAL>MQL",
        "not recycled before the SLA ends"
    );
    let after = run(&story, "2025-01-20T00:00:00Z");
    assert_eq!(stages(&after, "p1"), "MAL>MQL>MRL");
    assert_eq!(status(&after, "p1"), "Recycled");
    let mrl = after.transitions.iter().find(|t| t.to == "MRL").unwrap();
    assert_eq!(mrl.rule, "mql-not-accepted");
    assert_eq!(mrl.event, None, "a timer has no causing event");
    let weekday = mrl.order.at.to_datetime().format("%a").to_string();
    assert!(
        !["Sat", "Sun"].contains(&weekday.as_str()),
        "fired on {weekday}"
    );
}

#[test]
fn won_new_business_makes_the_buying_group_customers_and_a_lost_upsell_keeps_them_customers() {
    let d = run(
        &format!(
            "{ACCOUNT}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"demo_request\"}}
{{\"at\":\"2025-01-06T15:00:00Z\",\"type\":\"status\",\"person\":\"p1\",\"status\":\"Working\"}}
{{\"at\":\"2025-01-08T15:00:00Z\",\"type\":\"status\",\"person\":\"p1\",\"status\":\"Qualified\"}}
{{\"at\":\"2025-01-10T15:00:00Z\",\"type\":\"opportunity\",\"opportunity\":\"o1\",\"account\":\"a1\",\"state\":\"open\",\"contacts\":[{{\"person\":\"p1\",\"role\":\"champion\",\"primary\":true}}]}}
{{\"at\":\"2025-03-01T15:00:00Z\",\"type\":\"opportunity\",\"opportunity\":\"o1\",\"state\":\"won\"}}
{{\"at\":\"2025-06-01T15:00:00Z\",\"type\":\"opportunity\",\"opportunity\":\"o2\",\"account\":\"a1\",\"kind\":\"expansion\",\"state\":\"open\",\"contacts\":[{{\"person\":\"p1\"}}]}}
{{\"at\":\"2025-08-01T15:00:00Z\",\"type\":\"opportunity\",\"opportunity\":\"o2\",\"state\":\"lost\"}}"
        ),
        "2025-09-01T00:00:00Z",
    );
    assert!(
        stages(&d, "p1").starts_with("MAL>MQL>SAL>SQL>SQO>Customer"),
        "{}",
        stages(&d, "p1")
    );
    let p = d.people.iter().find(|p| p.id == "p1").unwrap();
    assert_eq!(
        p.stage, "Customer",
        "a lost upsell never makes a customer look like a lost prospect"
    );
    assert_eq!(status(&d, "p1"), "Customer");
    assert_eq!(d.accounts[0].account_type.as_deref(), Some("customer"));
}

#[test]
fn lost_new_business_recycles_to_srl_with_status_opportunity_lost() {
    let d = run(
        &format!(
            "{ACCOUNT}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"demo_request\"}}
{{\"at\":\"2025-01-06T15:00:00Z\",\"type\":\"status\",\"person\":\"p1\",\"status\":\"Working\"}}
{{\"at\":\"2025-01-08T15:00:00Z\",\"type\":\"status\",\"person\":\"p1\",\"status\":\"Qualified\"}}
{{\"at\":\"2025-01-10T15:00:00Z\",\"type\":\"opportunity\",\"opportunity\":\"o1\",\"account\":\"a1\",\"state\":\"open\",\"contacts\":[{{\"person\":\"p1\"}}]}}
{{\"at\":\"2025-03-01T15:00:00Z\",\"type\":\"opportunity\",\"opportunity\":\"o1\",\"state\":\"lost\"}}"
        ),
        "2025-03-02T00:00:00Z",
    );
    assert!(
        stages(&d, "p1").ends_with("SQO>SRL"),
        "{}",
        stages(&d, "p1")
    );
    assert_eq!(status(&d, "p1"), "Opportunity Lost");
}

#[test]
fn out_of_order_arrival_gives_the_same_timeline() {
    let story = format!(
        "{ACCOUNT}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"demo_request\"}}
{{\"at\":\"2025-01-06T15:00:00Z\",\"type\":\"status\",\"person\":\"p1\",\"status\":\"Working\"}}"
    );
    let reversed: String = story.lines().rev().collect::<Vec<_>>().join("\n");
    let strip = |d: &Derived| {
        d.transitions
            .iter()
            .map(|t| (t.order.at, t.to.clone(), t.rule.clone()))
            .collect::<Vec<_>>()
    };
    // `run` sorts by instant, so arrival order only changes the tie-breaking sequence.
    assert_eq!(
        strip(&run(&story, "2025-02-01T00:00:00Z")),
        strip(&run(&reversed, "2025-02-01T00:00:00Z"))
    );
}

/// Derives a story under a model given as TOML text.
fn run_with(model: &Model, story: &str, horizon: Timestamp) -> Derived {
    let mut events: Vec<SequencedEvent> = story
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| SequencedEvent {
            seq: i as u64,
            event: parse_line(&format!(r#"{{"id":"e{i}",{}"#, &l[1..])).unwrap(),
        })
        .collect();
    events.sort_by_key(|e| (e.event.at, e.seq));
    derive(model, &events, DeriveOptions::until(horizon))
}

#[test]
fn engagement_decaying_below_a_threshold_fires_at_the_instant_it_crosses() {
    // The default model plus a rule on engagement crossing the MQL bar (40) downward.
    let text = format!(
        "{}\n{}",
        waterfall_model::DEMAND_WATERFALL_TOML,
        r#"
[[rule]]
name = "gone-cold"
description = "A SAL whose engagement fades below the MQL bar goes back to nurture."
on = "score"
score = "engagement"
crosses = "mql_engagement"
direction = "down"
only_from = ["SAL"]
set_status = "Nurture"
"#
    );
    let model = Model::from_toml(&text).unwrap();
    let story = format!(
        "{ACCOUNT}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"demo_request\"}}
{{\"at\":\"2025-01-06T11:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"contact_sales\"}}
{{\"at\":\"2025-01-06T12:00:00Z\",\"type\":\"status\",\"person\":\"p1\",\"status\":\"Working\"}}"
    );
    // Engagement after the second activity, and when 30-day half-life decay brings it to 40.
    let at1 = Timestamp::parse("2025-01-06T11:00:00Z").unwrap();
    let e = 40.0 * 0.5f64.powf(1.0 / 24.0 / 30.0) + 40.0;
    let micros = (30.0 * (e / 40.0f64).log2() * 86_400e6).ceil() as i64;
    let due = Timestamp(at1.0 + micros);
    let before = run_with(&model, &story, Timestamp(due.0 - 1));
    assert!(!before.transitions.iter().any(|t| t.rule == "gone-cold"));
    let after = run_with(&model, &story, due);
    let cold: Vec<_> = after
        .transitions
        .iter()
        .filter(|t| t.rule.contains("gone-cold") || t.rule.contains("Nurture"))
        .collect();
    assert_eq!(cold.len(), 2, "{cold:?}");
    assert!(cold.iter().all(|t| t.order.at == due && t.event.is_none()));
    assert_eq!(stages(&after, "p1"), "MAL>MQL>SAL>SRL");
    // A new activity before the crossing cancels it (the clock restarts from the new value).
    let busier = format!(
        "{story}
{{\"at\":\"2025-01-07T12:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"web_visit\"}}"
    );
    let d = run_with(&model, &busier, due);
    assert!(!d.transitions.iter().any(|t| t.rule == "gone-cold"));
}

#[test]
fn the_account_keeps_scores_a_buying_group_with_roles_and_coverage() {
    let d = run(
        &format!(
            "{ACCOUNT}
{{\"at\":\"2025-01-03T00:00:00Z\",\"type\":\"person\",\"person\":\"p2\",\"account\":\"a1\",\"attrs\":{{\"title\":\"Analyst\",\"seniority\":\"ic\",\"department\":\"marketing\"}}}}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"web_visit\"}}
{{\"at\":\"2025-01-06T11:00:00Z\",\"type\":\"activity\",\"person\":\"p2\",\"kind\":\"webinar_attended\"}}
{{\"at\":\"2025-01-07T09:00:00Z\",\"type\":\"activity\",\"account\":\"a1\",\"kind\":\"intent_surge\"}}
{{\"at\":\"2025-01-08T10:00:00Z\",\"type\":\"opportunity\",\"opportunity\":\"o1\",\"account\":\"a1\",\"state\":\"open\",\"contacts\":[{{\"person\":\"p2\",\"role\":\"Champion\"}}]}}"
        ),
        "2025-01-09T00:00:00Z",
    );
    let a = &d.accounts[0];
    assert_eq!(a.stage.as_deref(), Some("Opportunity"));
    assert_eq!(a.fit, 20.0, "800 employees is in the sweet spot; no tier");
    assert!(
        a.engagement > 17.0,
        "people's and the account's own engagement"
    );
    assert_eq!(a.aggregates.engaged_people, 2);
    assert_eq!(a.aggregates.intent_surges_30d, 1);
    assert_eq!(a.aggregates.open_opportunities, 1);
    let p1 = a.buying_group.iter().find(|m| m.person == "p1").unwrap();
    assert_eq!(p1.roles, ["decision_maker"]);
    let p2 = a.buying_group.iter().find(|m| m.person == "p2").unwrap();
    assert_eq!(p2.roles, ["champion", "user"]);
    assert_eq!(p2.journey.as_deref(), Some("new_business"));
    assert_eq!(a.coverage[0].journey, None);
    assert_eq!(a.coverage[0].covered, ["decision_maker", "champion"]);
    assert_eq!(a.coverage[0].missing, ["economic_buyer"]);
    // MQA on the way: two engaged people including a decision maker.
    let path: Vec<&str> = d
        .transitions
        .iter()
        .filter(|t| t.level == Level::Account)
        .map(|t| t.to.as_str())
        .collect();
    assert_eq!(path, ["Target", "Engaged", "MQA", "Opportunity"]);
}

#[test]
fn a_model_without_account_stages_or_routing_derives_no_account_or_owner_changes() {
    let model = Model::history_only();
    let d = run_with(
        &model,
        &format!(
            "{ACCOUNT}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"stage\",\"person\":\"p1\",\"stage\":\"MQL\"}}"
        ),
        Timestamp::parse("2025-02-01T00:00:00Z").unwrap(),
    );
    assert!(d
        .transitions
        .iter()
        .all(|t| t.level == Level::Person && t.field != Field::Owner));
}

#[test]
fn without_account_rollups_the_final_state_is_measured_after_the_last_timer() {
    // No account stages and no condition reading the account: rollups change nothing, and
    // the engine keeps no rollup timers. The final account state is still measured where
    // the last one would have fired: when p1 stops counting as engaged, 90 days after the
    // visit.
    let text = format!(
        "{}\n[score.engagement]\nhalf_life_days = 30\ndefault_points = 1\n",
        waterfall_model::HISTORY_ONLY_TOML
    );
    let model = waterfall_model::load("m.toml", &text).unwrap_or_else(|d| panic!("{}", d.render()));
    let d = run_with(
        &model,
        &format!(
            "{ACCOUNT}
{{\"at\":\"2025-01-06T10:00:00Z\",\"type\":\"activity\",\"person\":\"p1\",\"kind\":\"web_visit\"}}"
        ),
        Timestamp::parse("2025-06-01T00:00:00Z").unwrap(),
    );
    let account = &d.accounts[0];
    assert_eq!(
        account.engagement_at,
        Timestamp::parse("2025-04-06T10:00:00Z").unwrap()
    );
    assert_eq!(account.aggregates.engaged_people, 0);
}

#[test]
fn derive_all_gives_each_partition_what_derive_gives_it_in_order() {
    let events = waterfall_demo::generate(&waterfall_demo::DemoOptions {
        accounts: 80,
        ..waterfall_demo::DemoOptions::default()
    });
    let mut by_account: std::collections::BTreeMap<String, Vec<SequencedEvent>> =
        Default::default();
    for (seq, event) in events.into_iter().enumerate() {
        let key = event.body.account().unwrap_or("").to_string();
        by_account.entry(key).or_default().push(SequencedEvent {
            seq: seq as u64,
            event,
        });
    }
    let partitions: Vec<Vec<SequencedEvent>> = by_account
        .into_values()
        .map(|mut p| {
            p.sort_by_key(|e| (e.event.at, e.seq));
            p
        })
        .collect();
    assert!(partitions.len() >= 64, "enough partitions to use threads");
    let model = Model::demand_waterfall();
    let opts = DeriveOptions::until(Timestamp::parse("2027-01-01T00:00:00Z").unwrap());
    let one_by_one: Vec<Derived> = partitions.iter().map(|p| derive(&model, p, opts)).collect();
    assert_eq!(derive_all(&model, &partitions, opts), one_by_one);
}

/// Under a model that never reads the person, a store's derivation keeps a person's only
/// attributes as their text: they mean what the parsed ones mean, a second event's are merged
/// as always, and text that is not an object is rejected alike.
#[test]
fn attributes_kept_as_text_mean_the_parsed_ones() {
    use waterfall_core::event::record::attrs_of;
    use waterfall_core::{Record, RecordBody};
    use waterfall_engine::{derive_records, SequencedRecord};
    let model = Model::history_only();
    assert!(!model.reads_person());
    let people: [(&str, &str); 6] = [
        ("p1", r#"{"title":"VP","source":"web"}"#),
        ("p2", r#"{"title":"CTO"}"#),
        ("p2", r#"{ "source": "event", "title": "CEO" }"#),
        ("p3", ""),
        ("p4", "[1,2]"),
        ("p5", r#"{"a": }"#),
    ];
    let records: Vec<SequencedRecord<'_>> = people
        .iter()
        .enumerate()
        .map(|(i, &(person, attrs))| {
            let record = Record {
                id: ["e1", "e2", "e3", "e4", "e5", "e6"][i],
                at: 1_700_000_000_000_000 + i as i64,
                body: RecordBody::Person {
                    person,
                    account: Some("a1"),
                    attrs,
                },
            };
            SequencedRecord::new(i as u64, record)
        })
        .collect();
    let horizon = Timestamp::parse("2027-01-01T00:00:00Z").unwrap();
    let parsed = derive_records(&model, &records, DeriveOptions::until(horizon));
    let as_text = DeriveOptions {
        horizon,
        attrs_as_text: true,
    };
    let text = derive_records(&model, &records, as_text);
    assert_eq!(text.transitions, parsed.transitions);
    assert_eq!(text.rejections, parsed.rejections);
    assert_eq!(parsed.rejections.len(), 2, "{:?}", parsed.rejections);
    assert_eq!(text.people.len(), parsed.people.len());
    for (t, p) in text.people.iter().zip(&parsed.people) {
        assert!(p.attrs_text.is_none());
        let attrs = match &t.attrs_text {
            Some(json) => attrs_of(json).unwrap(),
            None => t.attrs.clone(),
        };
        assert_eq!(attrs, p.attrs, "{}", p.id);
    }
    let kept: Vec<&str> = text
        .people
        .iter()
        .filter(|p| p.attrs_text.is_some())
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(
        kept,
        ["p1"],
        "one event's text is kept; two events are merged"
    );
    // An owned event's parsed attributes after a kept text: both count.
    let later = SequencedEvent {
        seq: 9,
        event: parse_line(
            r#"{"id":"e9","at":"2024-01-01T00:00:00Z","type":"person","person":"p1","attrs":{"region":"EU"}}"#,
        )
        .unwrap(),
    };
    let mut mixed = records.clone();
    mixed.push(SequencedRecord::parsed(&later));
    let d = derive_records(&model, &mixed, as_text);
    let p1 = d.people.iter().find(|p| p.id == "p1").unwrap();
    assert_eq!(p1.attrs_text, None);
    let keys: Vec<&str> = p1.attrs.keys().map(String::as_str).collect();
    assert_eq!(keys, ["region", "source", "title"]);
    // A model whose conditions read the person always parses.
    let reads = Model::demand_waterfall();
    assert!(reads.reads_person());
    let d = derive_records(&reads, &records, as_text);
    assert!(d.people.iter().all(|p| p.attrs_text.is_none()));
}

mod automation_never_breaks_the_model {
    use super::*;
    use proptest::prelude::*;

    const KINDS: &[&str] = &[
        "demo_request",
        "contact_sales",
        "webinar_attended",
        "pricing_page_visit",
        "web_visit",
        "email_open",
    ];
    const STATUSES: &[&str] = &[
        "Working",
        "Nurture",
        "Qualified",
        "Recycled",
        "Disqualified",
    ];
    const STAGES: &[&str] = &["MAL", "MQL", "SAL", "SQL", "MRL", "SRL", "Disqualified"];
    const SENIORITY: &[&str] = &["ic", "manager", "director", "vp", "c_level"];

    /// One random event line for people p0..p3 at account a0 and opportunities o0..o2.
    fn event() -> impl Strategy<Value = String> {
        let person = (0..4u8).prop_map(|i| format!("p{i}"));
        prop_oneof![
            1 => (person.clone(), 0..SENIORITY.len()).prop_map(|(p, s)| format!(
                r#""type":"person","person":"{p}","account":"a0","attrs":{{"seniority":"{}","department":"marketing"}}}}"#,
                SENIORITY[s]
            )),
            4 => (person.clone(), 0..KINDS.len()).prop_map(|(p, k)| format!(
                r#""type":"activity","person":"{p}","kind":"{}"}}"#,
                KINDS[k]
            )),
            1 => Just(r#""type":"activity","account":"a0","kind":"intent_surge"}"#.to_string()),
            2 => (person.clone(), 0..STATUSES.len()).prop_map(|(p, s)| format!(
                r#""type":"status","person":"{p}","status":"{}"}}"#,
                STATUSES[s]
            )),
            1 => (person.clone(), 0..STAGES.len()).prop_map(|(p, s)| format!(
                r#""type":"stage","person":"{p}","stage":"{}"}}"#,
                STAGES[s]
            )),
            2 => (0..3u8, 0..3u8, 0..3u8, person).prop_map(|(o, k, s, p)| format!(
                r#""type":"opportunity","opportunity":"o{o}","account":"a0","kind":"{}","state":"{}","contacts":[{{"person":"{p}","role":"champion"}}]}}"#,
                ["new_business", "expansion", "renewal"][k as usize],
                ["open", "won", "lost"][s as usize]
            )),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_automated_stage_change_is_allowed(
            lines in proptest::collection::vec((0..400i64, event()), 1..40)
        ) {
            let model = Model::demand_waterfall();
            let start = Timestamp::parse("2025-01-01T00:00:00Z").unwrap().0;
            let story: String = std::iter::once(
                r#"{"at":"2024-12-31T00:00:00Z","type":"account","account":"a0","attrs":{"industry":"software","employees":800,"owner":"rep_x"}}"#.to_string(),
            )
            .chain(lines.iter().map(|(h, body)| {
                let at = Timestamp(start + h * 3_600_000_000 * 7);
                format!(r#"{{"at":"{}",{body}"#, at.to_datetime().to_rfc3339())
            }))
            .collect::<Vec<_>>()
            .join("\n");
            let d = run_with(&model, &story, Timestamp::parse("2026-06-01T00:00:00Z").unwrap());
            for t in &d.transitions {
                let Some(from) = &t.from else { continue };
                if t.rule == "explicit" {
                    continue;
                }
                match (t.level, t.field) {
                    (Level::Person, Field::Stage) => {
                        let (f, to) = (model.stage_id(from).unwrap(), model.stage_id(&t.to).unwrap());
                        prop_assert!(model.allows(f, to), "{} {from} > {} by {}", t.subject, t.to, t.rule);
                    }
                    (Level::Account, Field::Stage) => {
                        let f = model.account_stage_id(from).unwrap();
                        let to = model.account_stage_id(&t.to).unwrap();
                        prop_assert!(model.account_stages[f as usize].next.contains(&to), "{from} > {} by {}", t.to, t.rule);
                    }
                    _ => {}
                }
            }
        }
    }
}
