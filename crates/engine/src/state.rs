//! The state the engine keeps per person, account and opportunity.

use serde::Serialize;
use waterfall_core::{Attrs, OpportunityContact, OpportunityKind, OpportunityState, Timestamp};
use waterfall_model::AccountAggregates;

/// A person's derived state at the end of a derivation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonState {
    /// The person's id.
    pub id: String,
    /// The account the person belongs to, if known.
    pub account: Option<String>,
    /// Attributes, merged from every `person` event in time order (empty when
    /// `attrs_text` holds them).
    pub attrs: Attrs,
    /// The attributes as the JSON text of the only event that set them, unparsed, when the
    /// caller asked for text and the model never reads them (see
    /// `DeriveOptions::attrs_as_text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attrs_text: Option<String>,
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
    /// The owner the model's routing assigned (`None`: never routed).
    pub owner: Option<String>,
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
    /// The account stage (`None` when the model declares no account stages).
    pub stage: Option<String>,
    /// Account fit score from the model's account fit rules.
    pub fit: f64,
    /// Account engagement as of `engagement_at`: the account's own activity (intent surges,
    /// de-anonymised visits) plus its people's engagement, each decayed.
    pub engagement: f64,
    /// The instant `engagement` and `aggregates` were measured at.
    pub engagement_at: Timestamp,
    /// The aggregates account rules read, as of `engagement_at`.
    pub aggregates: AccountAggregates,
    /// The buying group: the account's people with their journey and roles.
    pub buying_group: Vec<BuyingGroupMember>,
    /// Which required roles are engaged: account-wide first, then per journey.
    pub coverage: Vec<Coverage>,
}

/// One person of an account's buying group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuyingGroupMember {
    /// The person's id.
    pub person: String,
    /// The journey the person is on (`None` when the model declares none).
    pub journey: Option<String>,
    /// Their roles: from opportunity contact roles and the model's role conditions.
    pub roles: Vec<String>,
    /// Their stage.
    pub stage: String,
    /// Whether they engaged (an activity worth points) in the last 90 days.
    pub engaged: bool,
}

/// Coverage of the model's required roles by a buying group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// The journey (`None`: the whole account).
    pub journey: Option<String>,
    /// Required roles someone engaged holds.
    pub covered: Vec<String>,
    /// Required roles nobody engaged holds.
    pub missing: Vec<String>,
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
