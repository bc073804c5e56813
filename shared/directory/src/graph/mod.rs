//! Microsoft Graph client: app-only tokens, requests with throttling and replication-lag retries,
//! `$batch`, and the user operations hrsync needs.
//!
//! - [`auth`]: client-credentials tokens (client secret, a certificate-signed PS256 assertion
//!   with `x5t#S256`, or a federated assertion from an [`AssertionSource`]), cached until shortly before expiry and refreshed once for many callers.
//! - [`http`]: [`GraphClient`], [`GraphSettings`], [`RetryPolicy`]; [`GraphClient::send`] honours
//!   `Retry-After`, backs off with full jitter, and re-authenticates once on 401.
//! - [`batch`]: [`GraphClient::batch`] in chunks of 20, `dependsOn` groups kept together, inner
//!   429/503/504 retried alone, results in input order, each with its own status.
//! - [`requests`]: [`GraphRequest`] / [`GraphResponse`] and the builders for every write
//!   ([`requests::set_manager`], [`requests::add_member`], ...), each with its success rule
//!   ([`AlsoOk`]).
//! - [`users`]: [`DirectoryUser`], [`NewUser`], lookups by employee id and name, create, and the
//!   paged read of the whole directory.
//! - [`licenses`]: the tenant's free licence units ([`GraphClient::reserve_licenses`]).
//! - `pace`: writes paced to `directory.write_limit` (Graph's quota: 3,000 per 150 s).
//! - [`error`]: [`GraphError`] and [`GraphError::is_retryable`].
//!
//! Values placed in a `$filter` are always OData literals from [`crate::odata`]. Nothing above
//! `debug` logs a token, a secret, a URL or a body.

pub mod auth;
pub mod batch;
pub mod error;
pub mod http;
pub mod licenses;
mod pace;
pub mod requests;
pub mod users;

pub use auth::{AssertionSource, Credential};
pub use error::GraphError;
pub use http::{GraphClient, GraphSettings, RetryPolicy};
pub use requests::{AlsoOk, GraphRequest, GraphResponse, Method};
pub use users::{DirectoryUser, NewUser, Preflight, USER_SELECT};
