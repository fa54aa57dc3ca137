//! The Waterfall vocabulary shared by every room of the workspace: what comes in (the
//! canonical [`Event`]), what the engine derives ([`Transition`]), and the instant and
//! calendar types ([`Timestamp`], [`Period`]) everything is measured in.
//!
//! No I/O, no lifecycle logic: just the types, their wire forms, and the JSON Lines parser
//! (which reports each bad line with its number and reason and never panics).

#![forbid(unsafe_code)]

pub mod event;
mod stage_index;
mod table;
mod time;
mod transition;

pub use event::{
    parse_line, parse_lines, parse_record, parse_records, Attrs, ContactIds, Event, EventBody,
    LineError, NotedRoute, OpportunityContact, OpportunityKind, OpportunityState, ParseOutcome,
    Record, RecordBody, RecordRoutes, RecordsOutcome, RouteKey, Subject,
};
pub use stage_index::{EntryReader, IndexedEntry, StageIndex, StageIndexNames};
pub use table::{TableRow, TransitionTable};
pub use time::{Period, Timestamp, MICROS_PER_DAY};
pub use transition::{CompactString, Field, Level, Order, Transition, TransitionRef};
