//! An SQS FIFO batch, as an event source mapping hands it to mapping, entra, writeback or
//! intake (hr-events), with `ReportBatchItemFailures`.
//!
//! Records are handled in order. A record whose stage fails with a retryable error is given
//! its backoff (`ChangeMessageVisibility`) and reported failed, **with every later record of
//! its message group** (its worker): those are not handled but made visible again at once,
//! so SQS redelivers the worker's messages in order when the backoff ends (FIFO holds them
//! behind the failed one), while the other workers' records are handled and deleted. A permanent
//! error, the last attempt, or a body that is not a nudge (a poison message) goes to the
//! queue's DLQ with the reason (audited, where there is a worker) and counts as handled: one
//! bad message never re-runs the batch.

use std::collections::HashSet;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use hrsync_aws::queue::{MappedMessage, SqsQueue, mapped_delivery};
use hrsync_pipeline::ports::{QueueName, RetryOutcome, StateStore, Timers};
use hrsync_pipeline::{Pipeline, RunnerSettings, settle_failure};
use tracing::Instrument;

/// Handles the batch on the stage (generic over the store and timers so a test can watch
/// them) that consumes `queue`; the answer lists the records to
/// deliver again.
pub async fn handle_batch<S: StateStore, T: Timers>(
    pipeline: &Pipeline<S, SqsQueue, T>,
    settings: &RunnerSettings,
    queue: QueueName,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut batch = FifoBatch::default();
    for record in &event.records {
        let message = mapped(record);
        if batch.blocked(message.group()) {
            batch.fail(&message);
            batch.held_back.push(message.receipt_handle);
            continue;
        }
        let delivery = match mapped_delivery(queue, &message) {
            Ok(delivery) => delivery,
            Err(problem) => {
                let reason = format!("unreadable message: {problem}");
                tracing::error!(%queue, message_id = message.message_id, %reason, "poison message");
                let now = pipeline.clock.now();
                if let Err(error) = pipeline
                    .queue
                    .dead_letter_unreadable(queue, &message, &reason, now)
                    .await
                {
                    tracing::error!(%queue, %error, "cannot dead-letter a poison message; it comes back");
                    batch.fail(&message);
                }
                continue;
            }
        };
        // Every log line of the stage carries the nudge's trace (the HR event it came from).
        let span = tracing::info_span!(
            "record",
            %queue,
            worker = %delivery.nudge.worker,
            trace = %delivery.nudge.trace,
            attempt = delivery.attempt,
        );
        let settled = async {
            let error = match pipeline.consume(queue, &delivery.nudge).await {
                Ok(outcome) => {
                    tracing::info!(?outcome, "handled");
                    return true;
                }
                Err(error) => error,
            };
            match settle_failure(pipeline, settings, &delivery, &error).await {
                Ok(RetryOutcome::DeadLettered) => true,
                Ok(RetryOutcome::Retried) => false,
                Err(queue_error) => {
                    tracing::error!(%queue_error, "cannot settle a failed message; it comes back");
                    false
                }
            }
        }
        .instrument(span)
        .await;
        if !settled {
            batch.fail(&message);
        }
    }
    // A worker's later messages wait behind its failed one, not for the visibility timeout.
    if let Err(error) = pipeline
        .queue
        .release_blocked(queue, &batch.held_back)
        .await
    {
        tracing::warn!(%queue, %error, "held-back messages come back after the visibility timeout");
    }
    batch.response()
}

fn mapped(record: &SqsMessage) -> MappedMessage<'_> {
    MappedMessage {
        message_id: record.message_id.as_deref().unwrap_or_default(),
        receipt_handle: record.receipt_handle.as_deref().unwrap_or_default(),
        body: record.body.as_deref().unwrap_or_default(),
        attributes: &record.attributes,
        dead_letter_id: record
            .message_attributes
            .get(hrsync_aws::queue::DEAD_LETTER_ID_ATTRIBUTE)
            .and_then(|attribute| attribute.string_value.as_deref()),
    }
}

/// The failures of a FIFO batch: a failed record blocks the rest of its group.
#[derive(Debug, Default)]
struct FifoBatch<'a> {
    failed_groups: HashSet<String>,
    failed: Vec<String>,
    /// Receipts of records not handled because their group had failed.
    held_back: Vec<&'a str>,
}

impl FifoBatch<'_> {
    fn blocked(&self, group: &str) -> bool {
        self.failed_groups.contains(group)
    }

    fn fail(&mut self, message: &MappedMessage<'_>) {
        self.failed_groups.insert(message.group().to_owned());
        self.failed.push(message.message_id.to_owned());
    }

    fn response(self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in self.failed {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn message<'a>(id: &'a str, attributes: &'a HashMap<String, String>) -> MappedMessage<'a> {
        MappedMessage {
            message_id: id,
            receipt_handle: "r",
            body: "",
            attributes,
            dead_letter_id: None,
        }
    }

    fn group(name: &str) -> HashMap<String, String> {
        HashMap::from([("MessageGroupId".to_owned(), name.to_owned())])
    }

    #[test]
    fn a_failed_record_blocks_the_rest_of_its_group_only() {
        let one = group("hr:1");
        let mut batch = FifoBatch::default();
        assert!(!batch.blocked("hr:1"));
        batch.fail(&message("m1", &one));
        assert!(batch.blocked("hr:1"));
        assert!(
            !batch.blocked("hr:2"),
            "another worker's records are still handled"
        );
        batch.fail(&message("m3", &one));
        let ids: Vec<String> = batch
            .response()
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        assert_eq!(ids, ["m1", "m3"]);
    }
}
