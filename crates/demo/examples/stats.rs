//! Prints how long generation takes and what the default data set contains.

use std::collections::BTreeMap;
use std::time::Instant;
use waterfall_core::{EventBody, OpportunityKind, OpportunityState};
use waterfall_demo::{generate, DemoOptions};

fn main() {
    let accounts = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let opts = DemoOptions {
        accounts,
        ..DemoOptions::default()
    };
    let t = Instant::now();
    let events = generate(&opts);
    let took = t.elapsed();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut opps: BTreeMap<String, (Option<OpportunityKind>, OpportunityState)> = BTreeMap::new();
    let mut order = 0usize;
    let mut seen = std::collections::HashSet::new();
    let mut by_time: Vec<&waterfall_core::Event> = events.iter().collect();
    by_time.sort_by_key(|e| e.at);
    for w in events.windows(2) {
        if w[1].at < w[0].at {
            order += 1;
        }
    }
    for e in by_time {
        let key = match &e.body {
            EventBody::Activity { kind, subject, .. } => format!(
                "activity {kind} {}",
                match subject {
                    waterfall_core::Subject::Person(_) => "person",
                    waterfall_core::Subject::Account(_) => "account",
                }
            ),
            EventBody::Status { status, .. } => format!("status {status}"),
            EventBody::Stage { stage, .. } => format!("stage {stage}"),
            EventBody::Person { person, .. } if !seen.insert(person.clone()) => {
                "person update".into()
            }
            EventBody::Person { account, attrs, .. } => {
                let mail = attrs.get("email").and_then(|v| v.as_str()).unwrap_or("");
                let free = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com"]
                    .iter()
                    .any(|d| mail.ends_with(d));
                format!(
                    "person{}{}",
                    if account.is_none() { " no-account" } else { "" },
                    if free { " free-mail" } else { "" }
                )
            }
            EventBody::Account { attrs, .. } => {
                if attrs.len() == 1 {
                    "account update (customer)".into()
                } else {
                    format!("account tier {}", attrs["icp_tier"])
                }
            }
            EventBody::Opportunity {
                opportunity,
                kind,
                state,
                ..
            } => {
                let e = opps.entry(opportunity.clone()).or_insert((*kind, *state));
                if e.1 == OpportunityState::Open {
                    e.1 = *state;
                }
                "opportunity".into()
            }
            other => other.type_name().into(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let mut o: BTreeMap<String, usize> = BTreeMap::new();
    for (k, s) in opps.values() {
        *o.entry(format!("{:?} {:?}", k, s)).or_default() += 1;
    }
    println!(
        "{} events in {:?}; {} out-of-order neighbours",
        events.len(),
        took,
        order
    );
    for (k, v) in counts.iter().chain(o.iter()) {
        println!("{v:>8}  {k}");
    }
}
