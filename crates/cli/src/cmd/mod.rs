//! One module per subcommand.

pub mod demo;
pub mod ingest;
pub mod report;
pub mod show;
