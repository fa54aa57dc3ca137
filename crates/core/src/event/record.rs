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

impl<S: AsRef<str>> Record<S> {
    /// Appends the record's encoding to `out`: postcard's encoding of [`Record`] (its serde
    /// derive is the format's definition), written field by field without serde, since every
    /// event of a load passes through here (`tests/record_encoding.rs` checks the two agree).
    pub fn write(&self, out: &mut Vec<u8>) {
        fn put(out: &mut Vec<u8>, s: &impl AsRef<str>) {
            let s = s.as_ref();
            write_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        fn put_opt(out: &mut Vec<u8>, s: &Option<impl AsRef<str>>) {
            match s {
                None => out.push(0),
                Some(s) => {
                    out.push(1);
                    put(out, s);
                }
            }
        }
        put(out, &self.id);
        write_varint(out, ((self.at << 1) ^ (self.at >> 63)) as u64);
        // Variant numbers are below 128: one byte each, as LEB128 has them.
        match &self.body {
            RecordBody::Account { account, attrs } => {
                out.push(0);
                put(out, account);
                put(out, attrs);
            }
            RecordBody::Person {
                person,
                account,
                attrs,
            } => {
                out.push(1);
                put(out, person);
                put_opt(out, account);
                put(out, attrs);
            }
            RecordBody::PersonActivity {
                person,
                kind,
                attrs,
            } => {
                out.push(2);
                put(out, person);
                put(out, kind);
                put(out, attrs);
            }
            RecordBody::AccountActivity {
                account,
                kind,
                attrs,
            } => {
                out.push(3);
                put(out, account);
                put(out, kind);
                put(out, attrs);
            }
            RecordBody::Opportunity {
                opportunity,
                account,
                kind,
                state,
                stage,
                amount,
                contacts,
            } => {
                out.push(4);
                put(out, opportunity);
                put_opt(out, account);
                match kind {
                    None => out.push(0),
                    Some(kind) => out.extend_from_slice(&[1, kind_number(*kind)]),
                }
                out.push(state_number(*state));
                put_opt(out, stage);
                match amount {
                    None => out.push(0),
                    Some(amount) => {
                        out.push(1);
                        out.extend_from_slice(&amount.to_le_bytes());
                    }
                }
                match contacts {
                    None => out.push(0),
                    Some(contacts) => {
                        out.push(1);
                        write_varint(out, contacts.len() as u64);
                        for c in contacts {
                            put(out, &c.person);
                            put_opt(out, &c.role);
                            out.push(u8::from(c.primary));
                        }
                    }
                }
            }
            RecordBody::Status {
                person,
                status,
                by,
                reason,
            } => {
                out.push(5);
                put(out, person);
                put(out, status);
                put_opt(out, by);
                put_opt(out, reason);
            }
            RecordBody::Stage {
                person,
                stage,
                by,
                reason,
            } => {
                out.push(6);
                put(out, person);
                put(out, stage);
                put_opt(out, by);
                put_opt(out, reason);
            }
            RecordBody::Merge { person, into } => {
                out.push(7);
                put(out, person);
                put(out, into);
            }
            RecordBody::Erase { person } => {
                out.push(8);
                put(out, person);
            }
        }
    }
}

/// An opportunity kind's variant number in the encoding.
fn kind_number(kind: OpportunityKind) -> u8 {
    match kind {
        OpportunityKind::NewBusiness => 0,
        OpportunityKind::Expansion => 1,
        OpportunityKind::Renewal => 2,
    }
}

/// An opportunity state's variant number in the encoding.
fn state_number(state: OpportunityState) -> u8 {
    match state {
        OpportunityState::Open => 0,
        OpportunityState::Won => 1,
        OpportunityState::Lost => 2,
    }
}

impl<'a> Record<&'a str> {
    /// Reads the record at the start of `bytes`, borrowing its strings; returns it with the
    /// bytes that follow it. Checks everything postcard would (see [`Record::write`]).
    pub fn read(bytes: &'a [u8]) -> Result<(Record<&'a str>, &'a [u8]), String> {
        let mut r = Skimmer(bytes);
        match r.record() {
            Ok(record) => Ok((record, r.0)),
            Err(e) => Err(format!("event record: {e}")),
        }
    }
}

/// Appends `value` as postcard encodes an unsigned integer (LEB128: seven bits a byte, low
/// bits first): what precedes each record in a stored stream, written without serde.
#[inline]
pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an unsigned integer as [`write_varint`] writes it at the start of `bytes`; returns it
/// with the bytes that follow it. Like postcard, refuses more than 64 bits.
#[inline]
pub fn read_varint(bytes: &[u8]) -> Result<(u64, &[u8]), &'static str> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        if i == 9 && b > 1 {
            break;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err(
        if bytes.len() < 10 && bytes.last().is_none_or(|b| b & 0x80 != 0) {
            "unexpected end of the record"
        } else {
            "an integer longer than 64 bits"
        },
    )
}

/// Whom or what a record is about: all that routing it to its partition needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are those of `RecordBody`.
pub enum RouteKey<'a> {
    /// An `account` event or an account's activity.
    Account(&'a str),
    /// A `person` event, with the account it names.
    Person {
        person: &'a str,
        account: Option<&'a str>,
    },
    /// A person's activity, status or stage.
    OfPerson(&'a str),
    /// An `erase` event.
    Erase(&'a str),
    /// A `merge` event.
    Merge { person: &'a str, into: &'a str },
    /// An `opportunity` event, with the account and the contacts it names.
    Opportunity {
        opportunity: &'a str,
        account: Option<&'a str>,
        contacts: ContactIds<'a>,
    },
}

/// The people an `opportunity` event names as its contacts, as routing reads them: from a
/// stored record (still encoded) or from an event. Two are equal when they name the same
/// people in the same order, however they are held.
#[derive(Debug, Clone, Copy)]
pub enum ContactIds<'a> {
    /// A record's encoded contact list: how many, then each contact (see [`Record::write`]),
    /// already checked by [`Record::read_route`].
    Encoded(&'a [u8]),
    /// An event's contacts.
    Listed(&'a [OpportunityContact]),
}

impl PartialEq for ContactIds<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.people().eq(other.people())
    }
}

impl Eq for ContactIds<'_> {}

impl<'a> ContactIds<'a> {
    /// The contacts' person ids, in the event's order.
    pub fn people(self) -> impl Iterator<Item = &'a str> {
        let (encoded, listed) = match self {
            ContactIds::Encoded(bytes) => (Some(bytes), &[][..]),
            ContactIds::Listed(list) => (None, list),
        };
        let mut skim = encoded.map(Skimmer);
        let mut left = skim
            .as_mut()
            .map_or(0, |s| s.varint().unwrap_or(0) as usize);
        let decoded = std::iter::from_fn(move || {
            let s = skim.as_mut()?;
            if left == 0 {
                return None;
            }
            left -= 1;
            // Checked when the route was read: a stream that no longer reads just ends.
            let person = s.str().ok()?;
            s.skip_opt_str().ok()?;
            s.take(1).ok()?;
            Some(person)
        });
        decoded.chain(listed.iter().map(|c| c.person.as_str()))
    }
}

impl<S: AsRef<str>> Record<S> {
    /// Whom or what the record is about.
    pub fn route_key(&self) -> RouteKey<'_> {
        fn s<S: AsRef<str>>(v: &S) -> &str {
            v.as_ref()
        }
        match &self.body {
            RecordBody::Account { account, .. } | RecordBody::AccountActivity { account, .. } => {
                RouteKey::Account(s(account))
            }
            RecordBody::Person {
                person, account, ..
            } => RouteKey::Person {
                person: s(person),
                account: account.as_ref().map(s),
            },
            RecordBody::PersonActivity { person, .. }
            | RecordBody::Status { person, .. }
            | RecordBody::Stage { person, .. } => RouteKey::OfPerson(s(person)),
            RecordBody::Erase { person } => RouteKey::Erase(s(person)),
            RecordBody::Merge { person, into } => RouteKey::Merge {
                person: s(person),
                into: s(into),
            },
            RecordBody::Opportunity {
                opportunity,
                account,
                contacts,
                ..
            } => RouteKey::Opportunity {
                opportunity: s(opportunity),
                account: account.as_ref().map(s),
                contacts: ContactIds::Listed(contacts.as_deref().unwrap_or_default()),
            },
        }
    }
}

impl<'a> Record<&'a str> {
    /// Reads only what routes the record at the start of `bytes` (its instant and
    /// [`RouteKey`]), stepping over every other field without checking it; returns them with
    /// the bytes that follow the record. For records this process just wrote (the parser's):
    /// a full [`Record::read`] of every event later checks everything.
    pub fn read_route(bytes: &'a [u8]) -> Result<(i64, RouteKey<'a>, &'a [u8]), String> {
        let mut r = Skimmer(bytes);
        let at = r.key().and_then(|()| r.at());
        let key = at.and_then(|_| r.route_key());
        match (at, key) {
            (Ok(at), Ok(key)) => Ok((at, key, r.0)),
            (Err(e), _) | (_, Err(e)) => Err(format!("event record: {e}")),
        }
    }
}

/// A string [`Skimmer::texts`] read where it is not optional (always there).
fn given(text: Option<&str>) -> Result<&str, &'static str> {
    text.ok_or("a string that is not there")
}

/// Steps through a record in postcard's format (see [`Record::write`]): field order is the
/// declaration order of [`Record`] and [`RecordBody`], strings are a LEB128 length and bytes,
/// options a 0/1 tag, enums a LEB128 variant number.
struct Skimmer<'a>(&'a [u8]);

impl<'a> Skimmer<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.0.len() {
            return Err("unexpected end of the record");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, &'static str> {
        let (value, rest) = read_varint(self.0)?;
        self.0 = rest;
        Ok(value)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let len = usize::try_from(self.varint()?).map_err(|_| "a string too long")?;
        self.take(len)
    }

    /// A string routing reads: checked.
    #[inline]
    fn str(&mut self) -> Result<&'a str, &'static str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "a string that is not UTF-8")
    }

    /// The next `N` strings of a body (`optional[i]`: the `i`th is an option), checked as
    /// UTF-8 in one pass over the bytes they span rather than one call each: the lengths and
    /// option tags between them are ASCII below 128, so the span is UTF-8 when its strings
    /// are. A string past a longer length (whose bytes are not) is checked on its own.
    #[inline]
    fn texts<const N: usize>(
        &mut self,
        optional: [bool; N],
    ) -> Result<[Option<&'a str>; N], &'static str> {
        let start = self.0;
        let mut found = [None; N];
        for (slot, optional) in found.iter_mut().zip(optional) {
            if optional && !self.some()? {
                continue;
            }
            let bytes = self.bytes()?;
            *slot = Some((
                bytes.as_ptr() as usize - start.as_ptr() as usize,
                bytes.len(),
            ));
        }
        let span = &start[..start.len() - self.0.len()];
        let checked = match std::str::from_utf8(span) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&span[..e.valid_up_to()]).unwrap_or_default(),
        };
        let mut texts = [None; N];
        for (text, found) in texts.iter_mut().zip(found) {
            if let Some((at, len)) = found {
                // In the checked prefix and on character boundaries, or checked alone.
                *text = Some(match checked.get(at..at + len) {
                    Some(t) => t,
                    None => std::str::from_utf8(&span[at..at + len])
                        .map_err(|_| "a string that is not UTF-8")?,
                });
            }
        }
        Ok(texts)
    }

    /// Whether an option holds a value.
    #[inline]
    fn some(&mut self) -> Result<bool, &'static str> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("an option tag that is neither 0 nor 1"),
        }
    }

    #[inline]
    fn opt_str(&mut self) -> Result<Option<&'a str>, &'static str> {
        if self.some()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    #[inline]
    fn skip_opt_str(&mut self) -> Result<(), &'static str> {
        if self.some()? {
            self.bytes()?;
        }
        Ok(())
    }

    /// The id: stepped over.
    fn key(&mut self) -> Result<(), &'static str> {
        self.bytes().map(drop)
    }

    #[inline]
    fn at(&mut self) -> Result<i64, &'static str> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    #[inline]
    fn bool(&mut self) -> Result<bool, &'static str> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a boolean that is neither 0 nor 1"),
        }
    }

    /// A whole record, every field checked.
    fn record(&mut self) -> Result<Record<&'a str>, &'static str> {
        let id = self.str()?;
        let at = self.at()?;
        let body = match self.varint()? {
            0 => {
                let [account, attrs] = self.texts([false; 2])?;
                RecordBody::Account {
                    account: given(account)?,
                    attrs: given(attrs)?,
                }
            }
            1 => {
                let [person, account, attrs] = self.texts([false, true, false])?;
                RecordBody::Person {
                    person: given(person)?,
                    account,
                    attrs: given(attrs)?,
                }
            }
            2 => {
                let [person, kind, attrs] = self.texts([false; 3])?;
                RecordBody::PersonActivity {
                    person: given(person)?,
                    kind: given(kind)?,
                    attrs: given(attrs)?,
                }
            }
            3 => {
                let [account, kind, attrs] = self.texts([false; 3])?;
                RecordBody::AccountActivity {
                    account: given(account)?,
                    kind: given(kind)?,
                    attrs: given(attrs)?,
                }
            }
            4 => RecordBody::Opportunity {
                opportunity: self.str()?,
                account: self.opt_str()?,
                kind: if self.some()? {
                    Some(match self.varint()? {
                        0 => OpportunityKind::NewBusiness,
                        1 => OpportunityKind::Expansion,
                        2 => OpportunityKind::Renewal,
                        _ => return Err("an unknown opportunity kind"),
                    })
                } else {
                    None
                },
                state: match self.varint()? {
                    0 => OpportunityState::Open,
                    1 => OpportunityState::Won,
                    2 => OpportunityState::Lost,
                    _ => return Err("an unknown opportunity state"),
                },
                stage: self.opt_str()?,
                amount: if self.some()? {
                    let bytes = self.take(8)?.try_into().expect("eight bytes taken");
                    Some(f64::from_le_bytes(bytes))
                } else {
                    None
                },
                contacts: if self.some()? {
                    // No room reserved from the count: a damaged one must not allocate.
                    let mut contacts = Vec::new();
                    for _ in 0..self.varint()? {
                        contacts.push(OpportunityContact {
                            person: self.str()?.to_owned(),
                            role: self.opt_str()?.map(str::to_owned),
                            primary: self.bool()?,
                        });
                    }
                    Some(contacts)
                } else {
                    None
                },
            },
            5 => {
                let [person, status, by, reason] = self.texts([false, false, true, true])?;
                RecordBody::Status {
                    person: given(person)?,
                    status: given(status)?,
                    by,
                    reason,
                }
            }
            6 => {
                let [person, stage, by, reason] = self.texts([false, false, true, true])?;
                RecordBody::Stage {
                    person: given(person)?,
                    stage: given(stage)?,
                    by,
                    reason,
                }
            }
            7 => {
                let [person, into] = self.texts([false; 2])?;
                RecordBody::Merge {
                    person: given(person)?,
                    into: given(into)?,
                }
            }
            8 => {
                let [person] = self.texts([false])?;
                RecordBody::Erase {
                    person: given(person)?,
                }
            }
            _ => return Err("an unknown event type"),
        };
        Ok(Record { id, at, body })
    }

    fn route_key(&mut self) -> Result<RouteKey<'a>, &'static str> {
        Ok(match self.varint()? {
            0 => {
                let account = self.str()?;
                self.bytes()?;
                RouteKey::Account(account)
            }
            1 => {
                let (person, account) = (self.str()?, self.opt_str()?);
                self.bytes()?;
                RouteKey::Person { person, account }
            }
            2 => {
                let person = self.str()?;
                self.bytes()?;
                self.bytes()?;
                RouteKey::OfPerson(person)
            }
            3 => {
                let account = self.str()?;
                self.bytes()?;
                self.bytes()?;
                RouteKey::Account(account)
            }
            4 => {
                let (opportunity, account) = (self.str()?, self.opt_str()?);
                if self.some()? {
                    self.varint()?; // kind
                }
                self.varint()?; // state
                self.skip_opt_str()?; // stage
                if self.some()? {
                    self.take(8)?; // amount
                }
                let mut contacts: &'a [u8] = &[0];
                if self.some()? {
                    let list = self.0;
                    for _ in 0..self.varint()? {
                        self.str()?; // person
                        self.skip_opt_str()?; // role
                        self.take(1)?; // primary
                    }
                    contacts = &list[..list.len() - self.0.len()];
                }
                RouteKey::Opportunity {
                    opportunity,
                    account,
                    contacts: ContactIds::Encoded(contacts),
                }
            }
            5 | 6 => {
                let person = self.str()?;
                self.bytes()?;
                self.skip_opt_str()?;
                self.skip_opt_str()?;
                RouteKey::OfPerson(person)
            }
            7 => RouteKey::Merge {
                person: self.str()?,
                into: self.str()?,
            },
            8 => RouteKey::Erase(self.str()?),
            _ => return Err("an unknown event type"),
        })
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

    proptest::proptest! {
        #[test]
        fn varints_are_postcards_encoding(value: u64, tail: Vec<u8>) {
            let mut bytes = Vec::new();
            write_varint(&mut bytes, value);
            proptest::prop_assert_eq!(&bytes, &postcard::to_allocvec(&value).unwrap());
            bytes.extend_from_slice(&tail);
            proptest::prop_assert_eq!(read_varint(&bytes), Ok((value, &tail[..])));
        }

        #[test]
        fn varints_postcard_refuses_are_refused(bytes: Vec<u8>) {
            let ours = read_varint(&bytes).map(|(v, rest)| (v, rest.len()));
            let theirs = postcard::take_from_bytes::<u64>(&bytes).map(|(v, rest)| (v, rest.len()));
            proptest::prop_assert_eq!(ours.is_ok(), theirs.is_ok());
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                proptest::prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn a_cut_or_overlong_varint_is_refused() {
        assert_eq!(
            read_varint(&[0x80, 0x80]),
            Err("unexpected end of the record")
        );
        assert_eq!(read_varint(&[]), Err("unexpected end of the record"));
        assert_eq!(
            read_varint(&[0xff; 10]),
            Err("an integer longer than 64 bits")
        );
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(read_varint(&max), Ok((u64::MAX, &[][..])));
        max[9] = 0x02;
        assert_eq!(read_varint(&max), Err("an integer longer than 64 bits"));
    }
}
