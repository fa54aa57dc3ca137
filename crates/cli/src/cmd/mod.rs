//! One module per subcommand.

pub mod demo;
pub mod diff;
pub mod ingest;
pub mod model;
pub mod report;
pub mod show;
