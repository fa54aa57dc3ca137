//! One module per subcommand.

pub mod ingest;
pub mod report;
pub mod show;
