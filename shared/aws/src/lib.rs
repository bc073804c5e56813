//! The AWS runtime's adapters of the pipeline's ports (DESIGN.md §6, §7):
//!
//! - [`store`]: `StateStore` on one DynamoDB table;
//! - [`queue`]: `Queue` on SQS FIFO queues with their dead-letter queues;
//! - [`timers`]: `Timers` on EventBridge Scheduler one-time schedules;
//! - [`settings`]: the resource names, the config and the secrets a container reads once;
//! - [`sts`]: Graph's federated assertions from STS `GetWebIdentityToken` (`federated = "aws"`).
//!
//! Clients come from `aws-config`'s environment (region, credentials, and `AWS_ENDPOINT_URL`,
//! which the tests point at a local moto server): production code has no test branch.

pub mod notify;
pub mod queue;
pub mod settings;
pub mod store;
pub mod sts;
pub mod timers;
