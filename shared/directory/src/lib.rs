//! The directory side of hrsync: a Microsoft Graph client, an Entra-compatible sandbox
//! directory that speaks the same wire format, and OData helpers shared by both.

pub mod connect;
pub mod converge;
pub mod graph;
pub mod odata;
pub mod provision;
pub mod sandbox;
