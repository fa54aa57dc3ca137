//! JSON Lines parsing into [`Event`]s, with each bad line reported by number and reason.

use super::{
    Attrs, Event, EventBody, OpportunityContact, OpportunityKind, OpportunityState, Subject,
};
use crate::Timestamp;
use serde::Deserialize;
use std::borrow::Cow;

/// A rejected input line: where it is and why it was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number in its input.
    pub line: usize,
    /// Why the line was rejected, in words.
    pub reason: String,
}

/// The good events and the rejected lines of one input.
#[derive(Debug, Default)]
pub struct ParseOutcome {
    /// Parsed events, in input order, each with its 1-based line number.
    pub events: Vec<(usize, Event)>,
    /// Rejected lines, in input order.
    pub errors: Vec<LineError>,
}

/// The flat wire shape: every field optional so that a missing one gets a precise message.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    at: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind_of_event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    account: Option<Cow<'a, str>>,
    #[serde(borrow)]
    person: Option<Cow<'a, str>>,
    #[serde(borrow)]
    opportunity: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stage: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    into: Option<Cow<'a, str>>,
    amount: Option<f64>,
    contacts: Option<Vec<OpportunityContact>>,
    attrs: Option<Attrs>,
}

fn own(c: Option<Cow<'_, str>>) -> Option<String> {
    c.map(Cow::into_owned)
}

fn required(c: Option<Cow<'_, str>>, field: &str, ty: &str) -> Result<String, String> {
    match c {
        Some(v) if !v.is_empty() => Ok(v.into_owned()),
        Some(_) => Err(format!("field `{field}` of a `{ty}` event is empty")),
        None => Err(format!(
            "missing field `{field}` (required for a `{ty}` event)"
        )),
    }
}

/// Parses one JSON line into an event, or says why it cannot.
pub fn parse_line(text: &str) -> Result<Event, String> {
    let raw: RawEvent<'_> = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let id = match raw.id {
        Some(v) if !v.is_empty() => v.into_owned(),
        Some(_) => return Err("field `id` is empty".into()),
        None => return Err("missing field `id`".into()),
    };
    let at = match raw.at {
        Some(v) => Timestamp::parse(&v)?,
        None => return Err("missing field `at`".into()),
    };
    let ty = raw.kind_of_event.ok_or("missing field `type`")?;
    let body = match ty.as_ref() {
        "account" => EventBody::Account {
            account: required(raw.account, "account", "account")?,
            attrs: raw.attrs.unwrap_or_default(),
        },
        "person" => EventBody::Person {
            person: required(raw.person, "person", "person")?,
            account: own(raw.account).filter(|a| !a.is_empty()),
            attrs: raw.attrs.unwrap_or_default(),
        },
        "activity" => {
            let subject = match (raw.person, raw.account) {
                (Some(p), _) if !p.is_empty() => Subject::Person(p.into_owned()),
                (_, Some(a)) if !a.is_empty() => Subject::Account(a.into_owned()),
                _ => return Err("an `activity` event needs a `person` or an `account`".into()),
            };
            EventBody::Activity {
                subject,
                kind: required(raw.kind, "kind", "activity")?,
                attrs: raw.attrs.unwrap_or_default(),
            }
        }
        "opportunity" => {
            let kind = match raw.kind {
                None => None,
                Some(k) => Some(OpportunityKind::parse(&k).ok_or_else(|| {
                    format!("unknown opportunity kind {k:?} (expected new_business, expansion or renewal)")
                })?),
            };
            let state = required(raw.state, "state", "opportunity")?;
            let state = OpportunityState::parse(&state).ok_or_else(|| {
                format!("unknown opportunity state {state:?} (expected open, won or lost)")
            })?;
            if let Some(a) = raw.amount {
                if !a.is_finite() {
                    return Err("field `amount` is not a finite number".into());
                }
            }
            if let Some(cs) = &raw.contacts {
                if cs.iter().any(|c| c.person.is_empty()) {
                    return Err("a contact of the opportunity has an empty `person`".into());
                }
            }
            EventBody::Opportunity {
                opportunity: required(raw.opportunity, "opportunity", "opportunity")?,
                account: own(raw.account).filter(|a| !a.is_empty()),
                kind,
                state,
                stage: own(raw.stage),
                amount: raw.amount,
                contacts: raw.contacts,
            }
        }
        "status" => EventBody::Status {
            person: required(raw.person, "person", "status")?,
            status: required(raw.status, "status", "status")?,
            by: own(raw.by),
            reason: own(raw.reason),
        },
        "stage" => EventBody::Stage {
            person: required(raw.person, "person", "stage")?,
            stage: required(raw.stage, "stage", "stage")?,
            by: own(raw.by),
            reason: own(raw.reason),
        },
        "merge" => {
            let person = required(raw.person, "person", "merge")?;
            let into = required(raw.into, "into", "merge")?;
            if person == into {
                return Err("a person cannot be merged into itself".into());
            }
            EventBody::Merge { person, into }
        }
        "erase" => EventBody::Erase { person: required(raw.person, "person", "erase")? },
        other => {
            return Err(format!(
                "unknown event type {other:?} (expected account, person, activity, opportunity, status, stage, merge or erase)"
            ))
        }
    };
    Ok(Event { id, at, body })
}

/// Parses JSON Lines text; blank lines are skipped. `first_line` is the number of the first
/// line of `text` in its input (1 for a whole file), so that chunks parsed in parallel report
/// true line numbers.
pub fn parse_lines(text: &str, first_line: usize) -> ParseOutcome {
    // Sized up front: growing a vector of events copies it and touches fresh pages each time.
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut out = ParseOutcome {
        events: Vec::with_capacity(lines),
        errors: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let n = first_line + i;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(e) => out.events.push((n, e)),
            Err(reason) => out.errors.push(LineError { line: n, reason }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn rejects(line: &str, expected: &str) {
        let err = parse_line(line).unwrap_err();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }

    #[test]
    fn contract_example_parses_and_round_trips() {
        let text = r#"{"id":"e1","at":"2025-01-03T10:00:00Z","type":"account","account":"a1","attrs":{"name":"Acme","domain":"acme.com","industry":"Software","employees":1200}}
{"id":"e2","at":"2025-01-03T10:00:00Z","type":"person","person":"p1","account":"a1","attrs":{"email":"jo@acme.com","title":"VP Marketing","source":"webinar"}}
{"id":"e3","at":"2025-01-04T09:12:00Z","type":"activity","person":"p1","kind":"demo_request"}
{"id":"e4","at":"2025-01-05T11:00:00Z","type":"status","person":"p1","status":"Working","by":"rep7"}
{"id":"e5","at":"2025-01-09T15:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","state":"open","amount":25000,"contacts":[{"person":"p1","role":"champion","primary":true}]}

{"id":"e6","at":"2025-03-01T08:00:00Z","type":"opportunity","opportunity":"o1","state":"won"}"#;
        let out = parse_lines(text, 1);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.events.len(), 6);
        assert_eq!(out.events[5].0, 7);
        for (_, e) in &out.events {
            assert_eq!(&parse_line(&e.to_json_line()).unwrap(), e);
        }
    }

    #[test]
    fn bad_lines_say_why() {
        rejects("{", "invalid JSON");
        rejects(
            r#"{"at":"2025-01-01T00:00:00Z","type":"person","person":"p"}"#,
            "missing field `id`",
        );
        rejects(
            r#"{"id":"x","type":"person","person":"p"}"#,
            "missing field `at`",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01","type":"person","person":"p"}"#,
            "bad timestamp",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"lead","person":"p"}"#,
            "unknown event type",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"stage","person":"p"}"#,
            "missing field `stage`",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"opportunity","opportunity":"o","state":"maybe"}"#,
            "unknown opportunity state",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"person","person":7}"#,
            "invalid type",
        );
        rejects(
            r#"{"id":"x","at":"2025-01-01T00:00:00Z","type":"merge","person":"a","into":"a"}"#,
            "itself",
        );
        let out = parse_lines("{}\n\n{\"id\":1}\n", 1);
        assert_eq!(
            out.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![1, 3]
        );
    }
}
