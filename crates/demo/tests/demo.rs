//! Properties of the generated demo data set: determinism, round trips, ordering, realism.

use std::collections::{HashMap, HashSet};
use waterfall_core::{
    parse_line, Event, EventBody, OpportunityKind, OpportunityState, Subject, Timestamp,
};
use waterfall_demo::{generate, write_jsonl, DemoOptions};

fn opts(accounts: usize, seed: u64) -> DemoOptions {
    DemoOptions {
        accounts,
        seed,
        ..DemoOptions::default()
    }
}

fn jsonl(events: &[Event]) -> Vec<u8> {
    let mut buf = Vec::new();
    write_jsonl(events, &mut buf).unwrap();
    buf
}

#[test]
fn same_options_give_the_same_bytes() {
    let a = jsonl(&generate(&opts(150, 7)));
    let b = jsonl(&generate(&opts(150, 7)));
    assert!(a == b, "two runs with the same seed differ");
    let c = jsonl(&generate(&opts(150, 8)));
    assert!(a != c, "a different seed gave the same data");
}

#[test]
fn every_line_parses_back_to_the_same_event() {
    let events = generate(&opts(200, 1));
    let text = String::from_utf8(jsonl(&events)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), events.len());
    for (line, e) in lines.iter().zip(&events) {
        let back = parse_line(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert_eq!(&back, e, "{line}");
    }
}

#[test]
fn ids_are_unique_and_numbered_in_export_order() {
    let events = generate(&opts(200, 2));
    let mut seen = HashSet::new();
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e.id, format!("d{}", n + 1));
        assert!(seen.insert(e.id.clone()));
    }
}

#[test]
fn export_order_is_loose_but_close_to_time_order() {
    let o = opts(200, 3);
    let events = generate(&o);
    let end = o.end();
    assert!(events.iter().all(|e| e.at >= o.start && e.at < end));
    let inversions = events.windows(2).filter(|w| w[1].at < w[0].at).count();
    assert!(
        inversions > 0,
        "the export order should not be perfectly sorted"
    );
    assert!(
        inversions < events.len() / 3,
        "{inversions} inversions in {}",
        events.len()
    );
}

/// Events in time order (stable, so ties keep the export order).
fn by_time(events: &[Event]) -> Vec<&Event> {
    let mut v: Vec<&Event> = events.iter().collect();
    v.sort_by_key(|e| e.at);
    v
}

#[test]
fn people_exist_before_anything_happens_to_them() {
    let events = generate(&opts(300, 4));
    let created: HashMap<&str, Timestamp> = by_time(&events)
        .into_iter()
        .rev()
        .filter_map(|e| match &e.body {
            EventBody::Person { person, .. } => Some((person.as_str(), e.at)),
            _ => None,
        })
        .collect();
    let accounts: HashMap<&str, Timestamp> = by_time(&events)
        .into_iter()
        .rev()
        .filter_map(|e| match &e.body {
            EventBody::Account { account, .. } => Some((account.as_str(), e.at)),
            _ => None,
        })
        .collect();
    for e in &events {
        let person = match &e.body {
            EventBody::Status { person, .. }
            | EventBody::Stage { person, .. }
            | EventBody::Merge { person, .. } => Some(person),
            EventBody::Activity {
                subject: Subject::Person(p),
                ..
            } => Some(p),
            _ => None,
        };
        if let Some(p) = person {
            let at = created
                .get(p.as_str())
                .unwrap_or_else(|| panic!("{p} never created"));
            assert!(*at <= e.at, "{} about {p} before it was created", e.id);
        }
        if let EventBody::Merge { into, .. } = &e.body {
            assert!(created[into.as_str()] <= e.at);
        }
        if let Some(a) = e.body.account() {
            assert!(
                accounts[a] <= e.at,
                "{} about {a} before it was created",
                e.id
            );
        }
    }
}

#[test]
fn opportunities_name_their_account_and_contacts_first() {
    let events = generate(&opts(300, 5));
    let people: HashSet<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Person { person, .. } => Some(person.as_str()),
            _ => None,
        })
        .collect();
    let mut seen = HashSet::new();
    for e in by_time(&events) {
        if let EventBody::Opportunity {
            opportunity,
            account,
            contacts,
            ..
        } = &e.body
        {
            if seen.insert(opportunity.clone()) {
                assert!(
                    account.is_some(),
                    "{} opens {opportunity} without an account",
                    e.id
                );
                let contacts = contacts.as_deref().unwrap_or_default();
                assert!(contacts.len() <= 4);
                assert!(contacts.iter().filter(|c| c.primary).count() <= 1);
                for c in contacts {
                    assert!(people.contains(c.person.as_str()));
                }
            }
        }
    }
}

#[test]
fn only_sales_statuses_and_rare_stages() {
    let events = generate(&opts(400, 6));
    let mut statuses = 0;
    let mut stages = 0;
    for e in &events {
        match &e.body {
            EventBody::Status { status, .. } => {
                statuses += 1;
                assert!(
                    ["Working", "Nurture", "Qualified", "Disqualified"].contains(&status.as_str()),
                    "{status}"
                );
            }
            EventBody::Stage { stage, .. } => {
                stages += 1;
                assert!(["SRL", "Disqualified"].contains(&stage.as_str()), "{stage}");
            }
            _ => {}
        }
    }
    assert!(
        stages > 0 && stages * 20 < statuses,
        "{stages} stages, {statuses} statuses"
    );
}

#[test]
fn the_data_set_has_the_cases_reports_need() {
    let events = generate(&opts(1000, 42));
    let n = events.len();
    assert!(
        (80_000..220_000).contains(&n),
        "{n} events for 1000 accounts"
    );
    let mut final_state: HashMap<&str, (OpportunityKind, OpportunityState)> = HashMap::new();
    let (mut people, mut no_account, mut free_mail, mut merges, mut customers) = (0, 0, 0, 0, 0);
    let mut kinds: HashSet<&str> = HashSet::new();
    let mut account_activity = 0;
    let mut seen_people = HashSet::new();
    let mut status_count: HashMap<&str, usize> = HashMap::new();
    for e in by_time(&events) {
        match &e.body {
            EventBody::Person {
                person,
                account,
                attrs,
            } if seen_people.insert(person.as_str()) => {
                people += 1;
                if account.is_none() {
                    no_account += 1;
                    assert!(attrs.contains_key("company"));
                }
                let email = attrs["email"].as_str().unwrap();
                if email.ends_with("@gmail.com") || email.ends_with("@yahoo.com") {
                    free_mail += 1;
                }
                for k in [
                    "title",
                    "seniority",
                    "department",
                    "source",
                    "country",
                    "owner",
                ] {
                    assert!(attrs.contains_key(k), "person without {k}");
                }
            }
            EventBody::Merge { .. } => merges += 1,
            EventBody::Account { attrs, .. }
                if attrs.get("type").and_then(|t| t.as_str()) == Some("customer") =>
            {
                customers += 1;
            }
            EventBody::Activity { subject, kind, .. } => {
                kinds.insert(kind);
                if matches!(subject, Subject::Account(_)) {
                    account_activity += 1;
                }
            }
            EventBody::Status { status, .. } => *status_count.entry(status).or_default() += 1,
            EventBody::Opportunity {
                opportunity,
                kind,
                state,
                ..
            } => {
                let kind = kind.unwrap_or(OpportunityKind::NewBusiness);
                final_state.insert(opportunity, (kind, *state));
            }
            _ => {}
        }
    }
    let count = |k, s| final_state.values().filter(|v| **v == (k, s)).count();
    use OpportunityKind::*;
    use OpportunityState::*;
    assert!(count(NewBusiness, Won) > 20);
    assert!(count(NewBusiness, Lost) > count(NewBusiness, Won));
    assert!(count(Expansion, Won) > 0);
    assert!(count(Expansion, Lost) > 0, "no lost upsell");
    assert!(count(Renewal, Won) > 0);
    assert_eq!(customers, count(NewBusiness, Won));
    assert!(people > 6000);
    assert!(no_account * 100 > people * 3 && no_account * 100 < people * 8);
    assert!(free_mail > 0 && merges > 0);
    assert!(account_activity > 1000);
    for k in [
        "web_visit",
        "email_open",
        "email_click",
        "content_download",
        "webinar_attended",
        "form_fill",
        "demo_request",
        "meeting",
        "sales_call",
        "intent_surge",
    ] {
        assert!(kinds.contains(k), "no {k}");
    }
    let q = status_count["Qualified"] as f64 / status_count["Working"] as f64;
    assert!((0.35..0.65).contains(&q), "{q} of worked people qualified");
}

#[test]
fn some_statuses_are_set_late_or_on_weekends() {
    let events = generate(&opts(500, 9));
    let weekend = events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Status { status, .. } if status == "Working"))
        .filter(|e| weekday(e.at) >= 5)
        .count();
    assert!(weekend > 0);
}

/// Monday = 0 … Sunday = 6, without a calendar crate.
fn weekday(t: Timestamp) -> i64 {
    (t.0.div_euclid(86_400_000_000) + 3).rem_euclid(7)
}

#[test]
fn the_default_size_is_a_few_hundred_thousand_events() {
    let n = generate(&DemoOptions::default()).len();
    assert!((200_000..400_000).contains(&n), "{n} events");
}

#[test]
fn tiny_and_empty_worlds_do_not_panic() {
    for (accounts, days) in [(0, 730), (1, 0), (5, 1), (20, 30), (30, 3000)] {
        let o = DemoOptions {
            accounts,
            days,
            ..DemoOptions::default()
        };
        let events = generate(&o);
        assert!(events.iter().all(|e| e.at >= o.start && e.at < o.end()));
        if accounts == 0 || days == 0 {
            assert!(events.is_empty());
        }
    }
}
