//! The state the engine keeps per person, account and opportunity.

use serde::Serialize;
use waterfall_core::{Attrs, OpportunityContact, OpportunityKind, OpportunityState, Timestamp};

/// A person's derived state at the end of a derivation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonState {
    /// The person's id.
    pub id: String,
    /// The account the person belongs to, if known.
    pub account: Option<String>,
    /// Attributes, merged from every `person` event in time order.
    pub attrs: Attrs,
    /// Current stage name.
    pub stage: String,
    /// Current status name, if the model has statuses.
    pub status: Option<String>,
    /// When the person was created.
    pub created_at: Timestamp,
    /// When the person last did something (an activity).
    pub last_activity: Option<Timestamp>,
    /// The survivor this person was merged into, if any (its history went there).
    pub merged_into: Option<String>,
    /// Fit (ICP) score from the model's fit rules.
    pub fit: f64,
    /// Engagement score as of `engagement_at` (it decays from there).
    pub engagement: f64,
    /// When the engagement score was last updated.
    pub engagement_at: Timestamp,
}

/// An account's derived state at the end of a derivation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountState {
    /// The account's id.
    pub id: String,
    /// Attributes, merged from every `account` event in time order.
    pub attrs: Attrs,
    /// Account type (`prospect`, `customer`, `partner`), kept apart from any stage.
    pub account_type: Option<String>,
    /// The account's opportunities, in order of creation.
    pub opportunities: Vec<OpportunityInfo>,
}

/// What is known of one opportunity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpportunityInfo {
    /// The opportunity's id.
    pub id: String,
    /// New business, expansion or renewal.
    pub kind: OpportunityKind,
    /// Open, won or lost.
    pub state: OpportunityState,
    /// The CRM's own stage label.
    pub stage: Option<String>,
    /// The amount.
    pub amount: Option<f64>,
    /// The buying group on the deal.
    pub contacts: Vec<OpportunityContact>,
    /// When it was first seen.
    pub created_at: Timestamp,
    /// When it was won or lost.
    pub closed_at: Option<Timestamp>,
}
