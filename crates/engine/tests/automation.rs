//! Scenario tests of the default model's automation: small event stories in, the expected
//! timeline out. Each test reads like the behaviour it proves.

use waterfall_core::{parse_line, Field, Level, Timestamp};
use waterfall_engine::{derive, DeriveOptions, Derived, SequencedEvent};
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
        DeriveOptions {
            horizon: Timestamp::parse(horizon).unwrap(),
        },
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
