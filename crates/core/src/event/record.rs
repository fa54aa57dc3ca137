//! The compact record an event is stored as: postcard, with the attributes kept as JSON text
//! (they are free-form). A [`Record`] is also the borrowed form of an event: the JSON Lines
//! parser produces one without allocating for its strings, so a large file can be transcoded
//! straight into stored records, and a stored record can be routed without decoding it into
//! an owned [`Event`].
//!
//! The encoding is part of the store's format: field and variant order must not change.

use super::{
    Attrs, Event, EventBody, OpportunityContact, OpportunityKind, OpportunityState, Subject,
};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// An event as stored. `S` is the string type: `&str` when borrowing an event or a stored
/// record, `Cow<str>` when fresh from JSON, `String` when owned; postcard encodes all alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<S> {
    /// The event's id.
    pub id: S,
    /// Its instant, in microseconds since the Unix epoch.
    pub at: i64,
    /// What it says.
    pub body: RecordBody<S>,
}

/// What a [`Record`] says, by type (activities split by subject). `attrs` is the attributes'
/// JSON object text, empty when there are none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // The fields are those of `EventBody`.
pub enum RecordBody<S> {
    /// See [`EventBody::Account`].
    Account { account: S, attrs: S },
    /// See [`EventBody::Person`].
    Person {
        person: S,
        account: Option<S>,
        attrs: S,
    },
    /// See [`EventBody::Activity`], by a person.
    PersonActivity { person: S, kind: S, attrs: S },
    /// See [`EventBody::Activity`], by an account.
    AccountActivity { account: S, kind: S, attrs: S },
    /// See [`EventBody::Opportunity`].
    Opportunity {
        opportunity: S,
        account: Option<S>,
        kind: Option<OpportunityKind>,
        state: OpportunityState,
        stage: Option<S>,
        amount: Option<f64>,
        #[serde(with = "stored_contacts")]
        contacts: Option<Vec<OpportunityContact>>,
    },
    /// See [`EventBody::Status`].
    Status {
        person: S,
        status: S,
        by: Option<S>,
        reason: Option<S>,
    },
    /// See [`EventBody::Stage`].
    Stage {
        person: S,
        stage: S,
        by: Option<S>,
        reason: Option<S>,
    },
    /// See [`EventBody::Merge`].
    Merge { person: S, into: S },
    /// See [`EventBody::Erase`].
    Erase { person: S },
}

/// Opportunity contacts as a record stores them: every field, always. (The contact's own
/// serde shape leaves out a missing role, which suits JSON but not postcard, where fields are
/// read by position: a contact without a role would not read back.)
mod stored_contacts {
    use super::OpportunityContact;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Out<'a> {
        person: &'a str,
        role: Option<&'a str>,
        primary: bool,
    }

    #[derive(Deserialize)]
    struct In {
        person: String,
        role: Option<String>,
        primary: bool,
    }

    pub(super) fn serialize<S: Serializer>(
        contacts: &Option<Vec<OpportunityContact>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        contacts
            .as_ref()
            .map(|cs| {
                cs.iter()
                    .map(|c| Out {
                        person: &c.person,
                        role: c.role.as_deref(),
                        primary: c.primary,
                    })
                    .collect::<Vec<_>>()
            })
            .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<OpportunityContact>>, D::Error> {
        Ok(Option::<Vec<In>>::deserialize(deserializer)?.map(|cs| {
            cs.into_iter()
                .map(|c| OpportunityContact {
                    person: c.person,
                    role: c.role,
                    primary: c.primary,
                })
                .collect()
        }))
    }
}

/// The JSON text a record keeps for attributes (empty for none).
pub fn attrs_text(attrs: &Attrs) -> String {
    if attrs.is_empty() {
        String::new()
    } else {
        serde_json::to_string(attrs).unwrap_or_default()
    }
}

/// The attributes a record's JSON text holds.
pub fn attrs_of(text: &str) -> Result<Attrs, String> {
    if text.is_empty() {
        return Ok(Attrs::new());
    }
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err("attributes are not a JSON object".into()),
    }
}

impl Event {
    /// The attributes' JSON text, as [`Event::record`] wants it.
    pub fn attrs_text(&self) -> String {
        match &self.body {
            EventBody::Account { attrs, .. }
            | EventBody::Person { attrs, .. }
            | EventBody::Activity { attrs, .. } => attrs_text(attrs),
            _ => String::new(),
        }
    }

    /// The event as a record, borrowing its strings; `attrs` is [`Event::attrs_text`].
    pub fn record<'e>(&'e self, attrs: &'e str) -> Record<&'e str> {
        let d = |o: &'e Option<String>| o.as_deref();
        let body: RecordBody<&'e str> = match &self.body {
            EventBody::Account { account, .. } => RecordBody::Account { account, attrs },
            EventBody::Person {
                person, account, ..
            } => RecordBody::Person {
                person,
                account: d(account),
                attrs,
            },
            EventBody::Activity {
                subject: Subject::Person(person),
                kind,
                ..
            } => RecordBody::PersonActivity {
                person,
                kind,
                attrs,
            },
            EventBody::Activity {
                subject: Subject::Account(account),
                kind,
                ..
            } => RecordBody::AccountActivity {
                account,
                kind,
                attrs,
            },
            EventBody::Opportunity {
                opportunity,
                account,
                kind,
                state,
                stage,
                amount,
                contacts,
            } => RecordBody::Opportunity {
                opportunity,
                account: d(account),
                kind: *kind,
                state: *state,
                stage: d(stage),
                amount: *amount,
                contacts: contacts.clone(),
            },
            EventBody::Status {
                person,
                status,
                by,
                reason,
            } => RecordBody::Status {
                person,
                status,
                by: d(by),
                reason: d(reason),
            },
            EventBody::Stage {
                person,
                stage,
                by,
                reason,
            } => RecordBody::Stage {
                person,
                stage,
                by: d(by),
                reason: d(reason),
            },
            EventBody::Merge { person, into } => RecordBody::Merge { person, into },
            EventBody::Erase { person } => RecordBody::Erase { person },
        };
        Record {
            id: &self.id,
            at: self.at.0,
            body,
        }
    }
}

impl<S: Serialize> Record<S> {
    /// Appends the record's encoding to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let buf = std::mem::take(out);
        *out = postcard::to_extend(self, buf).expect("writing to a Vec cannot fail");
    }
}

impl<'a> Record<&'a str> {
    /// Reads the record at the start of `bytes`, borrowing its strings; returns it with the
    /// bytes that follow it.
    pub fn read(bytes: &'a [u8]) -> Result<(Record<&'a str>, &'a [u8]), String> {
        postcard::take_from_bytes(bytes).map_err(|e| format!("event record: {e}"))
    }
}

impl<S> Record<S> {
    /// The person the record is about, if one.
    pub fn person(&self) -> Option<&S> {
        match &self.body {
            RecordBody::Person { person, .. }
            | RecordBody::PersonActivity { person, .. }
            | RecordBody::Status { person, .. }
            | RecordBody::Stage { person, .. }
            | RecordBody::Merge { person, .. }
            | RecordBody::Erase { person } => Some(person),
            _ => None,
        }
    }
}

impl<S: Into<String> + AsRef<str>> Record<S> {
    /// The owned event the record holds (fails only on attributes that are not an object).
    pub fn into_event(self) -> Result<Event, String> {
        fn o<S: Into<String>>(s: Option<S>) -> Option<String> {
            s.map(Into::into)
        }
        let attrs = |s: S| attrs_of(s.as_ref());
        let body = match self.body {
            RecordBody::Account { account, attrs: a } => EventBody::Account {
                account: account.into(),
                attrs: attrs(a)?,
            },
            RecordBody::Person {
                person,
                account,
                attrs: a,
            } => EventBody::Person {
                person: person.into(),
                account: o(account),
                attrs: attrs(a)?,
            },
            RecordBody::PersonActivity {
                person,
                kind,
                attrs: a,
            } => EventBody::Activity {
                subject: Subject::Person(person.into()),
                kind: kind.into(),
                attrs: attrs(a)?,
            },
            RecordBody::AccountActivity {
                account,
                kind,
                attrs: a,
            } => EventBody::Activity {
                subject: Subject::Account(account.into()),
                kind: kind.into(),
                attrs: attrs(a)?,
            },
            RecordBody::Opportunity {
                opportunity,
                account,
                kind,
                state,
                stage,
                amount,
                contacts,
            } => EventBody::Opportunity {
                opportunity: opportunity.into(),
                account: o(account),
                kind,
                state,
                stage: o(stage),
                amount,
                contacts,
            },
            RecordBody::Status {
                person,
                status,
                by,
                reason,
            } => EventBody::Status {
                person: person.into(),
                status: status.into(),
                by: o(by),
                reason: o(reason),
            },
            RecordBody::Stage {
                person,
                stage,
                by,
                reason,
            } => EventBody::Stage {
                person: person.into(),
                stage: stage.into(),
                by: o(by),
                reason: o(reason),
            },
            RecordBody::Merge { person, into } => EventBody::Merge {
                person: person.into(),
                into: into.into(),
            },
            RecordBody::Erase { person } => EventBody::Erase {
                person: person.into(),
            },
        };
        Ok(Event {
            id: self.id.into(),
            at: Timestamp(self.at),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(line: &str) -> (Event, Vec<u8>) {
        let event = crate::parse_line(line).unwrap();
        let attrs = event.attrs_text();
        let mut bytes = Vec::new();
        event.record(&attrs).write(&mut bytes);
        (event, bytes)
    }

    #[test]
    fn contacts_read_back_with_or_without_a_role() {
        let (event, bytes) = encoded(
            r#"{"id":"e5","at":"2025-01-09T15:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","state":"open","contacts":[{"person":"p1","primary":true},{"person":"p2","role":"champion"}]}"#,
        );
        let (record, rest) = Record::read(&bytes).unwrap();
        assert!(rest.is_empty());
        assert_eq!(record.into_event().unwrap(), event);
    }

    #[test]
    fn contacts_with_a_role_keep_the_encoding_stored_records_have() {
        let (event, bytes) = encoded(
            r#"{"id":"e5","at":"2025-01-09T15:00:00Z","type":"opportunity","opportunity":"o1","state":"won","contacts":[{"person":"p2","role":"champion","primary":true}]}"#,
        );
        let EventBody::Opportunity { contacts, .. } = &event.body else {
            panic!("an opportunity");
        };
        // Contacts are the record's last field; a role-bearing contact encodes as it always has.
        let before = postcard::to_allocvec(contacts).unwrap();
        assert!(bytes.ends_with(&before));
    }
}
