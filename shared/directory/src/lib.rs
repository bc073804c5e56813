//! The directory side of hrsync: a Microsoft Graph client, convergence of a worker's account,
//! and OData helpers. (The Entra-compatible sandbox it is tested against is its own crate,
//! `hrsync-sandbox`, never linked into the Lambda functions.)

pub mod connect;
pub mod converge;
pub mod graph;
pub mod group_adds;
pub mod odata;
pub mod provision;
pub mod snapshot;
