//! The pure decision core of hrsync: given what HR says about a worker now, what the
//! directory should hold and when it must change. No I/O, no async, no clock.

pub mod config;
pub mod template;
pub mod worker;

pub use config::{Config, ConfigError};
pub use worker::{InvalidWorker, Status, Worker, WorkerKey};
pub mod access;
pub mod identity;
pub mod lifecycle;
pub mod limits;
pub mod plan;
pub mod unique;

pub use identity::{AppliedIdentity, DesiredIdentity, Identifiers, PendingLicense, Presence};
pub use lifecycle::{
    DecideError, Decision, Lifecycle, Timer, TimerKind, Transition, WorkerState, decide,
};
pub use limits::DataProblem;
pub use plan::{Op, apply, plan};
pub use unique::{NameRegistry, NothingTaken};
