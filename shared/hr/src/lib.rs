//! HR connectors: read HR systems into `Worker` snapshots.

pub mod csv;
pub mod signed_json;
