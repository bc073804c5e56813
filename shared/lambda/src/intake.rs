//! The intake function takes three kinds of event, told apart by their shape:
//!
//! - an SQS batch from hr-events (`Records[].eventSource = "aws:sqs"`): the fetch stage,
//!   [`crate::handle_batch`];
//! - `{"poll": true}` from the poll schedule: one poll of the change feed of every source with
//!   `poll_every` (the schedule's rate replaces the interval here);
//! - anything else is an HTTP request from the Function URL or an HTTP API (payload 2.0),
//!   served by [`hrsync_pipeline::webhooks`] through `lambda_http`, which hands over the raw
//!   body (base64-decoded where Lambda encoded it) for the signature check.

use std::collections::BTreeMap;

use aws_lambda_events::sqs::SqsEvent;
use hrsync_pipeline::ports::QueueName;
use hrsync_pipeline::stages::intake::poll;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent};
use lambda_runtime::Error;
use serde_json::{Value, json};

use crate::batch::handle_batch;
use crate::container::Container;

pub async fn handle_intake(
    container: &Container,
    payload: &str,
    context: Context,
) -> Result<Value, Error> {
    let event: Value =
        serde_json::from_str(payload).map_err(|e| format!("the event is not JSON: {e}"))?;
    if is_sqs(&event) {
        let event: SqsEvent =
            serde_json::from_value(event).map_err(|e| format!("not an SQS event: {e}"))?;
        let answer = handle_batch(
            &container.pipeline,
            &container.settings,
            QueueName::HrEvents,
            event,
        )
        .await;
        return Ok(serde_json::to_value(answer)?);
    }
    if event.get("poll").and_then(Value::as_bool) == Some(true) {
        return poll_sources(container).await;
    }
    let request: LambdaRequest = serde_json::from_str(payload).map_err(|e| {
        format!("intake takes a Function URL or HTTP API request, an hr-events SQS batch or {{\"poll\": true}}: {e}")
    })?;
    let response = Adapter::from(container.webhooks.clone())
        .oneshot(LambdaEvent::new(request, context))
        .await?;
    Ok(serde_json::to_value(response)?)
}

fn is_sqs(event: &Value) -> bool {
    event
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// Polls every source with `poll_every`. A failed source does not stop the others; the
/// invocation then fails, so Lambda's retries and the function's failure destination see it.
async fn poll_sources(container: &Container) -> Result<Value, Error> {
    let pipeline = &container.pipeline;
    let mut queued = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for (name, source) in &pipeline.config.sources {
        let (Some(_), Some(connector)) = (source.poll_interval(), pipeline.hr.get(name)) else {
            continue;
        };
        let now = pipeline.clock.now();
        match poll(&*pipeline.store, &*pipeline.queue, &**connector, now).await {
            Ok(count) => {
                tracing::info!(source = %name, queued = count, "poll: changed workers queued for a fetch");
                queued.insert(name.clone(), count);
            }
            Err(error) => {
                tracing::warn!(source = %name, %error, "poll failed");
                failed.insert(name.clone(), error.to_string());
            }
        }
    }
    if !failed.is_empty() {
        return Err(format!("poll failed: {}", json!(failed)).into());
    }
    Ok(json!({ "queued": queued }))
}
