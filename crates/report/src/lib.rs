//! Waterfall reports: pure functions from a [`History`] (the engine's derived transitions,
//! interned and sorted once) to report values with a fixed meaning and a fixed JSON shape.
//!
//! The contract reports are [`flow`], [`cohort`] and [`snapshot`] (`docs/reports.md` of the
//! shared contract); the project's own reports are documented in the repository's
//! `docs/reports.md`. Every report implements [`Report`], which renders it as JSON, as a
//! human table or as CSV.
//!
//! ```
//! use waterfall_core::{Field, Level, Order, Period, Timestamp, Transition};
//! use waterfall_report::{flow, FlowOptions, History, Report};
//!
//! let t = Transition {
//!     level: Level::Person,
//!     subject: "p1".into(),
//!     field: Field::Stage,
//!     order: Order { at: Timestamp::parse("2025-01-05T10:00:00Z").unwrap(), seq: 1, sub: 0 },
//!     from: None,
//!     to: "MQL".into(),
//!     event: Some("e1".into()),
//!     rule: "created".into(),
//! };
//! let history = History::new(vec!["MQL".into()], vec![], vec![], [t]);
//! let report = flow(&history, &FlowOptions { period: Period::Month, ..Default::default() });
//! assert_eq!(
//!     report.to_json(),
//!     r#"{"report":"flow","period":"month","rows":[{"period":"2025-01","stage":"MQL","entries":1,"people":1}]}"#
//! );
//! ```
//!
//! Invariant: no I/O, no clock, no environment: time comes from the options and the history.

#![forbid(unsafe_code)]

mod cohort;
mod conversion;
mod diff;
mod flow;
mod history;
mod recycling;
pub mod render;
mod sla;
mod snapshot;
mod status;
mod util;
mod velocity;

pub use cohort::{account_cohort, cohort, CohortOptions, CohortReport, CohortRow};
pub use conversion::{conversion, ConversionOptions, ConversionReport, ConversionRow};
pub use diff::{
    diff, DiffCohortRow, DiffCount, DiffExample, DiffFlowRow, DiffMove, DiffOptions, DiffReport,
    DiffSlaRow, DiffTransitions,
};
pub use flow::{account_flow, flow, FlowOptions, FlowReport, FlowRow};
pub use history::{
    AccountInfo, Entry, History, HistoryBuilder, People, PersonInfo, PersonRef, Track,
};
pub use recycling::{recycling, RecyclingOptions, RecyclingReport, RecyclingRow};
pub use render::{table_of, Report, Tabular};
pub use sla::{sla, SlaOptions, SlaReport, SlaRow};
pub use snapshot::{account_snapshot, snapshot, SnapshotOptions, SnapshotReport, SnapshotRow};
pub use status::{status, StatusByStageRow, StatusOptions, StatusReport, StatusRow};
pub use util::{quantile_cont, NamedMap};
pub use velocity::{velocity, OpenStayRow, VelocityOptions, VelocityReport, VelocityRow};
