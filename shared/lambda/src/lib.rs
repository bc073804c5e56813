//! The four Lambda functions of the AWS runtime (DESIGN.md §3, `infra/template.yaml`), as
//! plain async handlers over the same stages as `hrsync serve`; only the adapters differ
//! (`hrsync-aws`).
//!
//! | function | events | runs |
//! |---|---|---|
//! | `intake` | Function URL / HTTP API requests; hr-events SQS batches; `{"poll": true}` from the poll schedule | [`hrsync_pipeline::webhooks`]; the fetch stage; the change-feed poll |
//! | `mapping` | worker-events SQS batches (HR records, timer wake-ups from Scheduler) | the mapping stage |
//! | `entra` | directory SQS batches | the entra stage |
//! | `writeback` | writeback SQS batches | the writeback stage |
//!
//! Each function's `main.rs` is one line: [`run`]. The container ([`Container`]) is built once,
//! before the first event: the AWS clients, the config, every secret, the HR connectors and
//! the directory client. Handlers borrow it, so the tests call them in-process with the very
//! JSON Lambda would send.

pub mod batch;
pub mod container;
pub mod intake;

use std::sync::Arc;

use hrsync_core::config::SecretUse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tracing::Instrument;

pub use batch::handle_batch;
pub use container::{AwsPipeline, Container};
pub use intake::handle_intake;

/// Which function a binary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Intake,
    Mapping,
    Entra,
    Writeback,
}

impl Function {
    /// The secrets of the function's own stage, the only ones it reads (and the only ones
    /// its role in `infra/template.yaml` may read): intake checks webhooks and calls the HR
    /// APIs, mapping and entra call the directory, writeback calls the HR APIs.
    pub fn secret_uses(self) -> &'static [SecretUse] {
        match self {
            Self::Intake => &[SecretUse::Webhook, SecretUse::HrApi],
            Self::Mapping | Self::Entra => &[SecretUse::Directory],
            Self::Writeback => &[SecretUse::HrApi],
        }
    }

    /// The queue whose event source mapping invokes the function.
    pub fn queue(self) -> hrsync_pipeline::ports::QueueName {
        use hrsync_pipeline::ports::QueueName;
        match self {
            Self::Intake => QueueName::HrEvents,
            Self::Mapping => QueueName::WorkerEvents,
            Self::Entra => QueueName::Directory,
            Self::Writeback => QueueName::Writeback,
        }
    }
}

/// A function's whole life: JSON logs (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`), the
/// container built once from the environment, then events until Lambda stops it.
pub async fn run(function: Function) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let container = Arc::new(Container::from_env(function).await.map_err(|error| {
        tracing::error!(%error, "cannot start");
        error
    })?);
    tracing::info!(?function, "container ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let container = Arc::clone(&container);
        async move { handle(function, &container, event).await }
    }))
    .await
}

/// One invocation of `function`: its event as Lambda sent it, the answer as Lambda wants it.
pub async fn handle(
    function: Function,
    container: &Container,
    event: LambdaEvent<Box<RawValue>>,
) -> Result<serde_json::Value, Error> {
    let LambdaEvent { payload, context } = event;
    let span = tracing::info_span!(
        "invocation",
        request_id = %context.request_id,
        xray_trace_id = context.xray_trace_id.as_deref().unwrap_or_default(),
    );
    async move {
        match function {
            Function::Intake => handle_intake(container, payload.get(), context).await,
            stage => {
                let event = serde_json::from_str(payload.get())
                    .map_err(|e| format!("not an SQS event: {e}"))?;
                let answer = handle_batch(
                    &container.pipeline,
                    &container.settings,
                    stage.queue(),
                    event,
                )
                .await;
                Ok(serde_json::to_value(answer)?)
            }
        }
    }
    .instrument(span)
    .await
}
