//! HR connectors: verify and read HR systems' webhooks, fetch their records as `Worker`
//! snapshots, and write generated identifiers back.
//!
//! - [`connector`]: the [`Connector`] trait every vendor implements, and its types.
//! - [`api`]: the HTTP client the vendors' APIs are called with (auth, retries).
//! - [`sources`]: builds each configured source's connector.
//! - One module per source kind: [`bamboohr`], [`hibob`], [`personio`], [`keka`], [`scim`],
//!   [`signed_json`]; [`csv`] reads exports from files.

pub mod api;
pub mod bamboohr;
pub mod connector;
pub mod csv;
pub mod hibob;
pub mod keka;
pub mod personio;
pub mod scim;
pub mod signed_json;
pub mod sources;

pub use connector::{
    Action, Answer, BadPayload, Changes, Connector, Delivery, Event, Fetched, HrError, Parsed,
    Refused, Unauthorized,
};
pub use sources::{Connectors, Setup, SetupError, WebhookSecret, Webhooks};
