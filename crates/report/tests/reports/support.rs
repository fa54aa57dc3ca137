//! Builders shared by the report tests.

use serde_json::{Map, Value};
use waterfall_core::{Field, Level, Order, Timestamp, Transition};
use waterfall_report::{History, PersonInfo, Report};

/// The default waterfall's stages, in model order.
pub const STAGES: &[&str] = &[
    "MAL",
    "MQL",
    "SAL",
    "SQL",
    "SQO",
    "Customer",
    "MRL",
    "SRL",
    "Disqualified",
];

/// An instant from RFC 3339 text.
pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// A person stage transition at `at` with ingestion sequence `seq`.
pub fn stage(person: &str, at: &str, seq: u64, to: &str) -> Transition {
    transition(Level::Person, Field::Stage, person, at, seq, to, "explicit")
}

/// A person status transition.
pub fn status_to(person: &str, at: &str, seq: u64, to: &str) -> Transition {
    transition(
        Level::Person,
        Field::Status,
        person,
        at,
        seq,
        to,
        "explicit",
    )
}

/// Any transition.
pub fn transition(
    level: Level,
    field: Field,
    subject: &str,
    at: &str,
    seq: u64,
    to: &str,
    rule: &str,
) -> Transition {
    Transition {
        level,
        subject: subject.into(),
        field,
        order: Order {
            at: ts(at),
            seq,
            sub: 0,
        },
        from: None,
        to: to.into(),
        event: Some(format!("e{seq}").into()),
        rule: rule.into(),
    }
}

/// A visible person with attributes given as a JSON object.
pub fn person(id: &str, attrs: Value) -> PersonInfo {
    let attrs: Map<String, Value> = match attrs {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    PersonInfo {
        id: id.into(),
        account: None,
        attrs,
        visible: true,
    }
}

/// A history over the default stages.
pub fn history(people: Vec<PersonInfo>, transitions: Vec<Transition>) -> History {
    History::new(
        STAGES.iter().map(|s| s.to_string()).collect(),
        vec!["Prospect".into(), "Open".into(), "Working".into()],
        people,
        transitions,
    )
}

/// Asserts that a report's JSON equals the expected JSON (compared as values).
#[track_caller]
pub fn check(report: &dyn Report, expected: Value) {
    let actual: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        actual, expected,
        "\nactual:   {}\nexpected: {}",
        actual, expected
    );
}
