//! The canonical event (`shared/docs/events.md`): every CRM export, webhook and API call is
//! translated into this one shape before the engine sees it.

mod parse;
pub mod record;
mod routes;

pub use crate::time::Timestamp;
pub use parse::{
    parse_line, parse_lines, parse_record, parse_records, LineError, ParseOutcome, RecordsOutcome,
};
pub use record::{ContactIds, Record, RecordBody, RouteKey};
pub use routes::{NotedRoute, RecordRoutes};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Free-form attributes of a person, account, activity or opportunity.
pub type Attrs = Map<String, Value>;

/// One fact from outside, in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The idempotency key: ingesting the same id twice changes nothing the second time.
    pub id: String,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub body: EventBody,
}

/// The subject of an activity: a person or an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A person did it (a web visit, a form fill, a demo request…).
    Person(String),
    /// An account did it (de-anonymised web traffic, an intent surge…).
    Account(String),
}

/// The kind of deal an opportunity is: which cycle of the journey it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityKind {
    /// A first sale to a prospect.
    NewBusiness,
    /// An upsell or cross-sell to a customer.
    Expansion,
    /// A renewal of an existing contract.
    Renewal,
}

impl OpportunityKind {
    /// All kinds, in declaration order.
    pub const ALL: [OpportunityKind; 3] = [Self::NewBusiness, Self::Expansion, Self::Renewal];

    /// The name used in events and model files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewBusiness => "new_business",
            Self::Expansion => "expansion",
            Self::Renewal => "renewal",
        }
    }

    /// Parses the name used in events and model files.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where an opportunity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityState {
    /// Being worked.
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

impl OpportunityState {
    /// The name used in events and model files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }

    /// Parses the name used in events and model files.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::Won, Self::Lost]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A person on an opportunity's buying group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpportunityContact {
    /// The person's id.
    pub person: String,
    /// Their role on the deal (champion, economic buyer, decision maker…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whether they are the primary contact.
    #[serde(default)]
    pub primary: bool,
}

/// What an event says, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// Create or update an account.
    Account {
        /// The account's id.
        account: String,
        /// Attributes merged into the account's attributes.
        attrs: Attrs,
    },
    /// Create or update a person.
    Person {
        /// The person's id.
        person: String,
        /// The account the person belongs to, if known.
        account: Option<String>,
        /// Attributes merged into the person's attributes.
        attrs: Attrs,
    },
    /// Something a person or an account did.
    Activity {
        /// Who did it.
        subject: Subject,
        /// What kind of activity (`web_visit`, `demo_request`…).
        kind: String,
        /// Details.
        attrs: Attrs,
    },
    /// Create or update an opportunity.
    Opportunity {
        /// The opportunity's id.
        opportunity: String,
        /// The account it is for (required on first sight).
        account: Option<String>,
        /// New business, expansion or renewal; `None` keeps what was known (default new business).
        kind: Option<OpportunityKind>,
        /// Open, won or lost.
        state: OpportunityState,
        /// The CRM's own opportunity stage label.
        stage: Option<String>,
        /// The deal amount.
        amount: Option<f64>,
        /// The buying group on this deal; `None` keeps what was known.
        contacts: Option<Vec<OpportunityContact>>,
    },
    /// A salesperson sets a person's lead status.
    Status {
        /// The person.
        person: String,
        /// A status name of the model.
        status: String,
        /// Who set it.
        by: Option<String>,
        /// Why.
        reason: Option<String>,
    },
    /// An explicit stage change.
    Stage {
        /// The person.
        person: String,
        /// A stage name of the model.
        stage: String,
        /// Who set it.
        by: Option<String>,
        /// Why.
        reason: Option<String>,
    },
    /// Two person records are the same human.
    Merge {
        /// The duplicate.
        person: String,
        /// The survivor.
        into: String,
    },
    /// Remove a person and everything about them.
    Erase {
        /// The person to erase.
        person: String,
    },
}

impl EventBody {
    /// The event's `type` as written in the contract.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Account { .. } => "account",
            Self::Person { .. } => "person",
            Self::Activity { .. } => "activity",
            Self::Opportunity { .. } => "opportunity",
            Self::Status { .. } => "status",
            Self::Stage { .. } => "stage",
            Self::Merge { .. } => "merge",
            Self::Erase { .. } => "erase",
        }
    }

    /// The person this event is about, if any (the duplicate for a merge).
    pub fn person(&self) -> Option<&str> {
        match self {
            Self::Person { person, .. }
            | Self::Status { person, .. }
            | Self::Stage { person, .. }
            | Self::Merge { person, .. }
            | Self::Erase { person } => Some(person),
            Self::Activity {
                subject: Subject::Person(p),
                ..
            } => Some(p),
            _ => None,
        }
    }

    /// The account this event names explicitly, if any.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Account { account, .. } => Some(account),
            Self::Person { account, .. } | Self::Opportunity { account, .. } => account.as_deref(),
            Self::Activity {
                subject: Subject::Account(a),
                ..
            } => Some(a),
            _ => None,
        }
    }
}

impl Event {
    /// Serialises the event back to its canonical JSON object (the stored and exported form).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Serialises the event to one JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The canonical wire form: exactly the fields of `shared/docs/events.md`, absent ones omitted.
/// Written field by field (no intermediate `Value`), since every stored event goes through it.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("at", &self.at.to_rfc3339())?;
        m.serialize_entry("type", self.body.type_name())?;
        fn opt<M: SerializeMap, T: Serialize + ?Sized>(
            m: &mut M,
            k: &str,
            v: Option<&T>,
        ) -> Result<(), M::Error> {
            match v {
                Some(v) => m.serialize_entry(k, v),
                None => Ok(()),
            }
        }
        match &self.body {
            EventBody::Account { account, attrs } => {
                m.serialize_entry("account", account)?;
                m.serialize_entry("attrs", attrs)?;
            }
            EventBody::Person {
                person,
                account,
                attrs,
            } => {
                m.serialize_entry("person", person)?;
                opt(&mut m, "account", account.as_ref())?;
                m.serialize_entry("attrs", attrs)?;
            }
            EventBody::Activity {
                subject,
                kind,
                attrs,
            } => {
                match subject {
                    Subject::Person(p) => m.serialize_entry("person", p)?,
                    Subject::Account(a) => m.serialize_entry("account", a)?,
                }
                m.serialize_entry("kind", kind)?;
                if !attrs.is_empty() {
                    m.serialize_entry("attrs", attrs)?;
                }
            }
            EventBody::Opportunity {
                opportunity,
                account,
                kind,
                state,
                stage,
                amount,
                contacts,
            } => {
                m.serialize_entry("opportunity", opportunity)?;
                opt(&mut m, "account", account.as_ref())?;
                opt(&mut m, "kind", kind.map(|k| k.as_str()))?;
                m.serialize_entry("state", state.as_str())?;
                opt(&mut m, "stage", stage.as_ref())?;
                opt(&mut m, "amount", amount.as_ref())?;
                opt(&mut m, "contacts", contacts.as_ref())?;
            }
            EventBody::Status {
                person,
                status,
                by,
                reason,
            } => {
                m.serialize_entry("person", person)?;
                m.serialize_entry("status", status)?;
                opt(&mut m, "by", by.as_ref())?;
                opt(&mut m, "reason", reason.as_ref())?;
            }
            EventBody::Stage {
                person,
                stage,
                by,
                reason,
            } => {
                m.serialize_entry("person", person)?;
                m.serialize_entry("stage", stage)?;
                opt(&mut m, "by", by.as_ref())?;
                opt(&mut m, "reason", reason.as_ref())?;
            }
            EventBody::Merge { person, into } => {
                m.serialize_entry("person", person)?;
                m.serialize_entry("into", into)?;
            }
            EventBody::Erase { person } => m.serialize_entry("person", person)?,
        }
        m.end()
    }
}
