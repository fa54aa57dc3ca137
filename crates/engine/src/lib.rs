//! The Waterfall engine: a pure function from (lifecycle model, events) to the history of
//! every person's and account's stage and status, each change with its cause.
//!
//! No I/O, no clock, no SQL: the caller hands in events sorted by [`Order`](waterfall_core::Order)
//! (instant, then ingestion sequence) and a horizon up to which timers fire. The same input
//! always gives the same output, which is what makes replay, late events and model diffs
//! exact.
//!
//! Besides people, the engine derives each account's journey: account fit and engagement,
//! the aggregates account rules read, buying-group roles and their coverage, and the account
//! stage rolled up by the model's account rules; and, when the model routes, each new MQL's
//! owner (a transition of field `owner`).
//!
//! The unit of derivation is a *partition*: the events of one account and its people (or of
//! one person without an account). Partitions are independent, so the caller may derive them
//! in parallel and re-derive only the ones a batch of late events touched.

#![forbid(unsafe_code)]

mod derive;
mod state;

pub use derive::{
    derive, derive_all, derive_records, derive_records_with, in_derivation_order,
    sort_for_derivation, validate, validate_record, DeriveOptions, Derived, Ordered, Rejection,
    SequencedEvent, SequencedRecord, TIMER_SEQ,
};
pub use state::{AccountState, BuyingGroupMember, Coverage, OpportunityInfo, PersonState};
