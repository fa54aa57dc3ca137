//! Transitions: the changes of stage and status the engine derives, each with its cause.

use crate::Timestamp;
pub use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Whose indicator changed: a person's or an account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A person (lead or contact).
    Person,
    /// An account (company).
    Account,
}

/// Which indicator changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// The lifecycle stage (where in the buyer journey).
    Stage,
    /// The lead status (the salesperson's working state).
    Status,
    /// The person's owner, assigned by the model's routing.
    Owner,
}

impl Field {
    /// The name used in storage and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Stage => "stage",
            Field::Status => "status",
            Field::Owner => "owner",
        }
    }
}

/// The total order of everything that happens: by instant, then by the ingestion sequence of
/// the causing event, then by position among the changes that one event caused.
///
/// Timers that fire at an instant order after every event at that instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Order {
    /// When.
    pub at: Timestamp,
    /// Ingestion sequence of the causing event (`u64::MAX` for timers).
    pub seq: u64,
    /// Position among the changes caused by one event or timer.
    pub sub: u32,
}

/// One derived change of a stage, status or owner, with its cause.
///
/// Its strings (ids, stage and status names, rules) are short: a [`CompactString`] holds up to
/// 24 bytes inline, so a derivation makes millions of transitions without allocating for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// A person or an account.
    pub level: Level,
    /// The person's or account's id.
    pub subject: CompactString,
    /// Stage or status.
    pub field: Field,
    /// When and in which order it happened.
    pub order: Order,
    /// The value before (`None` when the subject was just created).
    pub from: Option<CompactString>,
    /// The value after.
    pub to: CompactString,
    /// The id of the event that caused it (`None` for a timer).
    pub event: Option<CompactString>,
    /// The model rule that fired, or a built-in cause (`created`, `explicit`, `coupling:…`).
    pub rule: CompactString,
}

/// A borrowed view of a [`Transition`], with the same serialised form: readers that only look
/// (reports over millions of stored transitions) decode into it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransitionRef<'a> {
    /// A person or an account.
    pub level: Level,
    /// The person's or account's id.
    pub subject: &'a str,
    /// Stage or status.
    pub field: Field,
    /// When and in which order it happened.
    pub order: Order,
    /// The value before.
    pub from: Option<&'a str>,
    /// The value after.
    pub to: &'a str,
    /// The id of the causing event.
    pub event: Option<&'a str>,
    /// The rule that fired.
    pub rule: &'a str,
}

impl Transition {
    /// A borrowed view of this transition.
    pub fn as_ref(&self) -> TransitionRef<'_> {
        TransitionRef {
            level: self.level,
            subject: &self.subject,
            field: self.field,
            order: self.order,
            from: self.from.as_deref(),
            to: &self.to,
            event: self.event.as_deref(),
            rule: &self.rule,
        }
    }
}

impl TransitionRef<'_> {
    /// An owned copy of this transition.
    pub fn to_transition(&self) -> Transition {
        Transition {
            level: self.level,
            subject: self.subject.into(),
            field: self.field,
            order: self.order,
            from: self.from.map(CompactString::from),
            to: self.to.into(),
            event: self.event.map(CompactString::from),
            rule: self.rule.into(),
        }
    }
}
