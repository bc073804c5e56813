//! The pipeline's [`Queue`] on SQS FIFO queues: one queue per [`QueueName`], each with its own
//! FIFO dead-letter queue (DESIGN.md §3, §7; `infra/template.yaml`).
//!
//! # How the port maps to SQS
//!
//! | port | SQS |
//! |---|---|
//! | [`Queue::send`] | `SendMessage`: `MessageGroupId` = the nudge's worker, `MessageDeduplicationId` = `dedup` ([`deduplication_id`]), body = the nudge's JSON |
//! | [`Queue::receive`] | `ReceiveMessage` with `MaxNumberOfMessages = 1`, repeated up to `max` times (see below); `attempt` = `ApproximateReceiveCount` |
//! | [`Queue::ack`] | `ChangeMessageVisibility` (receipt check) then `DeleteMessage` |
//! | [`Queue::retry`] | `ChangeMessageVisibility(backoff)`; at `max_attempts`: `SendMessage` to the DLQ with the reason as a message attribute, then `DeleteMessage` |
//! | [`Queue::dead_letter_abandoned`] | nothing: the queue's redrive policy (`maxReceiveCount`) does it inside SQS; returns 0 |
//! | [`Queue::dead_letters`] / [`Queue::redrive`] | a peek of the DLQ (`ReceiveMessage`, then `ChangeMessageVisibilityBatch` to 0) / `SendMessage` to the source queue + `DeleteMessage` from the DLQ |
//! | [`Queue::depth`] | `GetQueueAttributes` of the queue and of its DLQ |
//!
//! # What differs from the SQLite queue, and why
//!
//! - **SQS keeps its own clock.** The `now` the port passes is not SQS's: deduplication windows,
//!   visibility timeouts and retry backoffs run on SQS's wall clock, in whole seconds (a
//!   duration is rounded up). A caller that passes a `now` in the future does not make SQS
//!   time pass. `now` is only recorded (as the dead-lettering instant).
//! - **One head per group.** FIFO SQS may return several messages of one group in one
//!   `ReceiveMessage` (in order). The port wants at most one per group per call, so the
//!   adapter asks for one message at a time: each answer is the head of a group with nothing
//!   in flight, and that group stays locked (in flight) for the next call, so the next answer
//!   comes from another group. The alternative, receiving ten and handing back the extra ones
//!   with `ChangeMessageVisibility 0`, keeps the order (the released messages stay behind their
//!   in-flight head: FIFO never delivers a group's next message while an earlier one is in
//!   flight) but counts a receive for every released message: their `attempt` would be too
//!   high and the redrive policy would dead-letter messages that were never handled. It costs
//!   one request per delivery instead of one per ten; the Lambda functions do not use
//!   `receive` at all (their event source mapping receives batches, see
//!   `hrsync-lambda`'s batch handler).
//! - **A retried message counts as in flight** in [`Queue::depth`]: SQS cannot tell a message
//!   waiting out a retry backoff (`ChangeMessageVisibility`) from one being handled.
//! - **Deduplication** is SQS's: 5 minutes from the first send, per message group in the
//!   template's high-throughput mode (`DeduplicationScope: messageGroup`), which equals "per
//!   queue" because every id hrsync sends starts with the worker (the group) or its timer.
//! - **Abandoned messages** (receiver died, no ack nor retry) are moved to the DLQ by SQS itself
//!   once received `maxReceiveCount` times (5 in the template), without a reason attribute;
//!   [`Queue::dead_letters`] then says so. SQS counts every receive, retried or not, so a
//!   runner's `max_attempts` must not exceed the queue's `maxReceiveCount` (with equal values,
//!   `retry` dead-letters first, with the stage's reason).
//! - **At least once, not atomic:** dead-lettering is a send to the DLQ then a delete; if the
//!   delete fails the message comes back and may be dead-lettered again (the DLQ send is
//!   deduplicated on the message id for 5 minutes). A redrive is likewise a send then a delete.
//! - **Listing dead letters** receives them (invisible for [`PEEK_SECONDS`]) and hands them
//!   back: two concurrent listings each see part of the DLQ, and FIFO shows at most the first
//!   ten dead letters of one worker at a time (the rest of that group stays locked behind them).
//!
//! # IAM
//!
//! `sqs:SendMessage` (send; retry's dead-lettering and redrive also on the DLQ / the source
//! queue), `sqs:ReceiveMessage`, `sqs:ChangeMessageVisibility`, `sqs:DeleteMessage` (receive,
//! ack, retry; on the DLQ for listing and redrive), `sqs:GetQueueAttributes` (depth, both
//! queues). [`create_queues`] also needs `sqs:CreateQueue`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName,
};
use hrsync_core::WorkerKey;
use hrsync_pipeline::ports::{
    DeadLetter, Delivery, Nudge, Queue, QueueDepth, QueueError, QueueName, RetryOutcome,
};
use jiff::Timestamp;

/// Message attribute of a dead letter: the reason the last attempt gave.
pub const REASON_ATTRIBUTE: &str = "hrsync-reason";
/// Message attribute of a dead letter: how many deliveries it had.
pub const ATTEMPTS_ATTRIBUTE: &str = "hrsync-attempts";
/// Message attribute of a dead letter: when it was dead-lettered (RFC 3339, the caller's `now`).
pub const DEAD_AT_ATTRIBUTE: &str = "hrsync-dead-lettered-at";
/// Message attribute of a dead letter: when the original message was sent (epoch ms).
pub const SENT_AT_ATTRIBUTE: &str = "hrsync-sent-at";
/// Message attribute of a redriven message and of its dead letter: the id the operator knew it
/// by when it was first dead-lettered, kept across redrives (SQS gives every send a new id).
pub const DEAD_LETTER_ID_ATTRIBUTE: &str = "hrsync-dead-letter-id";

/// How long [`Queue::dead_letters`] and [`Queue::redrive`] hold the dead letters they look at
/// (they hand them back at once when done; this only matters if the caller dies meanwhile).
pub const PEEK_SECONDS: i32 = 30;

/// How long [`Queue::ack`] extends a message while checking its receipt, just before deleting.
const ACK_HOLD_SECONDS: i32 = 30;

/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECONDS: u64 = 43_200;

/// A reason longer than this is cut (message attributes count towards the 256 KB message).
const MAX_REASON_CHARS: usize = 4_096;

/// Most dead letters one listing looks at (100 receives of 10).
const MAX_PEEK_BATCHES: usize = 100;

/// The dead-letter reason of a message the queue's redrive policy moved (SQS records none).
pub const REDRIVE_POLICY_REASON: &str =
    "received maxReceiveCount times without being deleted (moved by the queue's redrive policy)";

/// A queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub url: String,
    pub dead_letter_url: String,
}

/// [`Queue`] on the four SQS FIFO queues and their DLQs. Cheap to clone (the SDK client is).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    urls: BTreeMap<QueueName, QueueUrls>,
}

impl SqsQueue {
    /// The adapter over `urls`, which must name every queue of [`QueueName::ALL`].
    pub fn new(client: Client, urls: BTreeMap<QueueName, QueueUrls>) -> Result<Self, QueueError> {
        if let Some(missing) = QueueName::ALL.iter().find(|q| !urls.contains_key(q)) {
            return Err(QueueError::Backend(format!(
                "no SQS queue URL configured for {missing}"
            )));
        }
        Ok(Self { client, urls })
    }

    fn urls(&self, queue: QueueName) -> Result<&QueueUrls, QueueError> {
        self.urls
            .get(&queue)
            .ok_or_else(|| QueueError::Backend(format!("no SQS queue URL configured for {queue}")))
    }

    /// Checks that `receipt` still holds its message in flight, by setting the message's
    /// visibility (SQS refuses for a deleted message, an expired receipt, or one superseded by
    /// a newer receive). DeleteMessage alone would not tell: it succeeds for a message that is
    /// already gone.
    async fn hold(
        &self,
        queue: QueueName,
        url: &str,
        receipt: &str,
        seconds: i32,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| receipt_error(queue, receipt, "ChangeMessageVisibility", &e))
    }

    async fn delete(&self, queue: QueueName, url: &str, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| receipt_error(queue, receipt, "DeleteMessage", &e))
    }

    /// Receives every dead letter it can (held for [`PEEK_SECONDS`]); hand them back with
    /// [`SqsQueue::release`].
    async fn peek(&self, queue: QueueName) -> Result<Vec<Message>, QueueError> {
        let url = &self.urls(queue)?.dead_letter_url;
        let mut all = Vec::new();
        for _ in 0..MAX_PEEK_BATCHES {
            let answer = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(PEEK_SECONDS)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    self.release(queue, &all).await;
                    return Err(aws_error(&format!("SQS ReceiveMessage ({queue} DLQ)"), &e));
                }
            };
            let batch = answer.messages.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            all.extend(batch);
        }
        Ok(all)
    }

    /// Makes peeked dead letters visible again at once (best effort: otherwise they come back
    /// after [`PEEK_SECONDS`] anyway).
    async fn release(&self, queue: QueueName, messages: &[Message]) {
        let Ok(urls) = self.urls(queue) else { return };
        let receipts: Vec<&str> = messages.iter().filter_map(|m| m.receipt_handle()).collect();
        if let Err(error) = self.make_visible(&urls.dead_letter_url, &receipts).await {
            tracing::warn!(%queue, %error, "dead letters stay hidden until their peek ends");
        }
    }

    /// Hands back messages a Lambda function received but did not handle because an earlier
    /// message of their group failed: visible again at once, so they follow that message as
    /// soon as its backoff ends (FIFO keeps them behind it) instead of after the queue's
    /// visibility timeout.
    pub async fn release_blocked(
        &self,
        queue: QueueName,
        receipts: &[&str],
    ) -> Result<(), QueueError> {
        self.make_visible(&self.urls(queue)?.url, receipts).await
    }

    async fn make_visible(&self, url: &str, receipts: &[&str]) -> Result<(), QueueError> {
        for chunk in receipts.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(n, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(*receipt)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            self.client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("SQS ChangeMessageVisibilityBatch", &e))?;
        }
        Ok(())
    }

    /// The attempts a dead letter moved by the redrive policy had: the source queue's
    /// `maxReceiveCount`.
    async fn max_receive_count(&self, queue: QueueName) -> Result<Option<u32>, QueueError> {
        let url = &self.urls(queue)?.url;
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| aws_error(&format!("SQS GetQueueAttributes ({queue})"), &e))?;
        let policy = answer
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
        Ok(policy
            .as_ref()
            .and_then(|p| p.get("maxReceiveCount"))
            .and_then(|n| {
                n.as_u64()
                    .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            })
            .and_then(|n| u32::try_from(n).ok()))
    }

    async fn counts(&self, url: &str, what: &str) -> Result<(u64, u64, u64), QueueError> {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| aws_error(&format!("SQS GetQueueAttributes ({what})"), &e))?;
        let count = |name: QueueAttributeName| -> u64 {
            answer
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ))
    }
}

impl Queue for SqsQueue {
    /// `now` is not used: SQS deduplicates on its own clock, 5 minutes from the first send.
    async fn send(
        &self,
        queue: QueueName,
        nudge: &Nudge,
        dedup: &str,
        _now: Timestamp,
    ) -> Result<(), QueueError> {
        let url = &self.urls(queue)?.url;
        let body = serde_json::to_string(nudge)
            .map_err(|e| QueueError::Backend(format!("a nudge does not serialize: {e}")))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_group_id(message_group_id(&nudge.worker))
            .message_deduplication_id(deduplication_id(dedup))
            .send()
            .await
            .map_err(|e| aws_error(&format!("SQS SendMessage ({queue})"), &e))?;
        Ok(())
    }

    /// One `ReceiveMessage` of one message per delivery (see the module's doc), then sorted
    /// oldest first. `now` is not used: visibility runs on SQS's clock from the receive.
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        _now: Timestamp,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let url = &self.urls(queue)?.url;
        let seconds = visibility_seconds(visibility)?;
        let mut received: Vec<(u64, Delivery)> = Vec::new();
        let mut asked = 0;
        while asked < max {
            asked += 1;
            let answer = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(1)
                .visibility_timeout(seconds)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names(DEAD_LETTER_ID_ATTRIBUTE)
                .send()
                .await
                .map_err(|e| aws_error(&format!("SQS ReceiveMessage ({queue})"), &e))?;
            let messages = answer.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                match delivery(queue, &message) {
                    Ok(delivery) => received.push((
                        system_number(&message, MessageSystemAttributeName::SentTimestamp),
                        delivery,
                    )),
                    // Left in flight: it comes back after the visibility timeout, and the
                    // queue's redrive policy moves it to the DLQ after maxReceiveCount receives.
                    Err(error) => tracing::warn!(
                        %queue,
                        message_id = message.message_id().unwrap_or_default(),
                        %error,
                        "a message that is not a nudge was skipped"
                    ),
                }
            }
        }
        // Oldest first by sent time; within one millisecond, in the order SQS handed them out
        // (a stable sort).
        received.sort_by_key(|(sent, _)| *sent);
        Ok(received.into_iter().map(|(_, d)| d).collect())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let receipt = Receipt::parse(delivery)?;
        let url = &self.urls(delivery.queue)?.url;
        self.hold(delivery.queue, url, receipt.handle, ACK_HOLD_SECONDS)
            .await?;
        self.delete(delivery.queue, url, receipt.handle).await
    }

    async fn retry(
        &self,
        delivery: &Delivery,
        reason: &str,
        now: Timestamp,
        backoff: Duration,
        max_attempts: u32,
    ) -> Result<RetryOutcome, QueueError> {
        let queue = delivery.queue;
        let receipt = Receipt::parse(delivery)?;
        let urls = self.urls(queue)?;
        if delivery.attempt < max_attempts {
            self.hold(
                queue,
                &urls.url,
                receipt.handle,
                visibility_seconds(backoff)?,
            )
            .await?;
            return Ok(RetryOutcome::Retried);
        }
        // Out of attempts: only the receipt's holder may dead-letter it.
        self.hold(queue, &urls.url, receipt.handle, ACK_HOLD_SECONDS)
            .await?;
        let body = serde_json::to_string(&delivery.nudge)
            .map_err(|e| QueueError::Backend(format!("a nudge does not serialize: {e}")))?;
        self.send_dead_letter(
            queue,
            DeadLetterSend {
                body: &body,
                group: &message_group_id(&delivery.nudge.worker),
                message_id: receipt.message_id,
                dead_letter_id: receipt.dead_letter_id.unwrap_or(receipt.message_id),
                reason,
                attempts: u64::from(delivery.attempt),
                sent_at: receipt.sent_at,
                now,
            },
        )
        .await?;
        self.delete(queue, &urls.url, receipt.handle).await?;
        Ok(RetryOutcome::DeadLettered)
    }

    /// Hidden for `delay`; SQS counts the receive all the same (`maxReceiveCount`).
    async fn postpone(
        &self,
        delivery: &Delivery,
        _now: Timestamp,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let receipt = Receipt::parse(delivery)?;
        let urls = self.urls(delivery.queue)?;
        self.hold(
            delivery.queue,
            &urls.url,
            receipt.handle,
            visibility_seconds(delay)?,
        )
        .await
    }

    /// Nothing to do: SQS's redrive policy moves a message received `maxReceiveCount` times to
    /// the DLQ by itself, when the next receive would deliver it (see the module's doc).
    async fn dead_letter_abandoned(
        &self,
        _queue: QueueName,
        _now: Timestamp,
        _max_receives: u32,
        _reason: &str,
    ) -> Result<usize, QueueError> {
        Ok(0)
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
        let peeked = self.peek(queue).await?;
        let needs_policy = peeked
            .iter()
            .any(|m| message_attribute(m, ATTEMPTS_ATTRIBUTE).is_none());
        let policy_receives = match needs_policy {
            true => self.max_receive_count(queue).await,
            false => Ok(None),
        };
        self.release(queue, &peeked).await;
        let policy_receives = policy_receives?;
        let mut dead: Vec<(u64, DeadLetter)> = Vec::new();
        for message in &peeked {
            match dead_letter(message, policy_receives) {
                Ok(letter) => dead.push((
                    message_attribute(message, SENT_AT_ATTRIBUTE)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| {
                            system_number(message, MessageSystemAttributeName::SentTimestamp)
                        }),
                    letter,
                )),
                Err(error) => tracing::warn!(
                    %queue,
                    message_id = message.message_id().unwrap_or_default(),
                    %error,
                    "a dead letter that is not a nudge was left out"
                ),
            }
        }
        // Oldest message first (a stable sort: ties stay in the order SQS handed them out).
        dead.sort_by_key(|(sent, _)| *sent);
        Ok(dead.into_iter().map(|(_, d)| d).collect())
    }

    /// A new message at the tail of its group (deduplicated only against a repeat of this very
    /// redrive), then the dead letter is deleted.
    async fn redrive(
        &self,
        queue: QueueName,
        id: &str,
        _now: Timestamp,
    ) -> Result<bool, QueueError> {
        let urls = self.urls(queue)?;
        let peeked = self.peek(queue).await?;
        let Some(found) = peeked.iter().find(|m| dead_letter_id(m) == Some(id)) else {
            self.release(queue, &peeked).await;
            return Ok(false);
        };
        let others: Vec<Message> = peeked
            .iter()
            .filter(|m| dead_letter_id(m) != Some(id))
            .cloned()
            .collect();
        let result: Result<bool, QueueError> = async {
            let body = found.body().unwrap_or_default();
            let nudge: Nudge = serde_json::from_str(body).map_err(|e| {
                QueueError::Decode(format!("dead letter {id} of {queue} is not a nudge: {e}"))
            })?;
            self.client
                .send_message()
                .queue_url(&urls.url)
                .message_body(body)
                .message_group_id(message_group_id(&nudge.worker))
                // This dead letter's own message id: the same letter redriven again after it
                // died again is a new send.
                .message_deduplication_id(deduplication_id(&format!(
                    "redrive:{}",
                    found.message_id().unwrap_or(id)
                )))
                .message_attributes(DEAD_LETTER_ID_ATTRIBUTE, string_attribute(id)?)
                .send()
                .await
                .map_err(|e| aws_error(&format!("SQS SendMessage ({queue})"), &e))?;
            let receipt = found.receipt_handle().unwrap_or_default();
            self.client
                .delete_message()
                .queue_url(&urls.dead_letter_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| aws_error(&format!("SQS DeleteMessage ({queue} DLQ)"), &e))?;
            Ok(true)
        }
        .await;
        self.release(queue, &others).await;
        if result.is_err() {
            self.release(queue, std::slice::from_ref(found)).await;
        }
        result
    }

    /// Approximate, as SQS's counts are; `visible` includes delayed messages, `in_flight`
    /// includes messages waiting out a retry backoff (see the module's doc).
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        let urls = self.urls(queue)?;
        let (visible, in_flight, delayed) = self.counts(&urls.url, queue.as_str()).await?;
        let (dead_visible, dead_hidden, dead_delayed) = self
            .counts(&urls.dead_letter_url, &format!("{queue} DLQ"))
            .await?;
        Ok(QueueDepth {
            visible: visible + delayed,
            in_flight,
            dead: dead_visible + dead_hidden + dead_delayed,
        })
    }
}

/// What [`Delivery::id`] carries: the message id (to deduplicate its dead letter), when it was
/// sent (to order dead letters) and the receipt handle.
struct Receipt<'a> {
    message_id: &'a str,
    sent_at: &'a str,
    /// The dead-letter id a redriven message keeps ([`DEAD_LETTER_ID_ATTRIBUTE`]).
    dead_letter_id: Option<&'a str>,
    handle: &'a str,
}

/// Stands for "no dead-letter id" in an encoded receipt (message ids have no dash alone).
const NO_DEAD_LETTER_ID: &str = "-";

impl<'a> Receipt<'a> {
    fn encode(
        message_id: &str,
        sent_at: u64,
        dead_letter_id: Option<&str>,
        handle: &str,
    ) -> String {
        let dead_letter_id = dead_letter_id
            .filter(|id| !id.is_empty() && !id.contains(' '))
            .unwrap_or(NO_DEAD_LETTER_ID);
        format!("{message_id} {sent_at} {dead_letter_id} {handle}")
    }

    /// A receipt this adapter did not write cannot hold a message.
    fn parse(delivery: &'a Delivery) -> Result<Self, QueueError> {
        let mut parts = delivery.id.splitn(4, ' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(message_id), Some(sent_at), Some(dead_letter_id), Some(handle))
                if !handle.is_empty() && sent_at.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Self {
                    message_id,
                    sent_at,
                    dead_letter_id: Some(dead_letter_id).filter(|id| *id != NO_DEAD_LETTER_ID),
                    handle,
                })
            }
            _ => Err(QueueError::StaleReceipt {
                queue: delivery.queue,
                receipt: short(&delivery.id),
            }),
        }
    }
}

fn delivery(queue: QueueName, message: &Message) -> Result<Delivery, QueueError> {
    let nudge: Nudge = serde_json::from_str(message.body().unwrap_or_default())
        .map_err(|e| QueueError::Decode(format!("a message of {queue} is not a nudge: {e}")))?;
    let handle = message
        .receipt_handle()
        .ok_or_else(|| QueueError::Decode(format!("a message of {queue} has no receipt")))?;
    let attempt = system_attribute(message, MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let id = Receipt::encode(
        message.message_id().unwrap_or_default(),
        system_number(message, MessageSystemAttributeName::SentTimestamp),
        message_attribute(message, DEAD_LETTER_ID_ATTRIBUTE),
        handle,
    );
    Ok(Delivery {
        id,
        queue,
        group: nudge.worker.to_string(),
        nudge,
        attempt,
    })
}

/// A message as Lambda's event source mapping hands it to a function (the fields of an SQS
/// event record the queue needs).
#[derive(Debug, Clone, Copy)]
pub struct MappedMessage<'a> {
    pub message_id: &'a str,
    pub receipt_handle: &'a str,
    pub body: &'a str,
    /// The record's `attributes`: `ApproximateReceiveCount`, `SentTimestamp`,
    /// `MessageGroupId`...
    pub attributes: &'a HashMap<String, String>,
    /// The record's [`DEAD_LETTER_ID_ATTRIBUTE`] message attribute (a redriven message).
    pub dead_letter_id: Option<&'a str>,
}

impl MappedMessage<'_> {
    /// The message group (the worker, for every message hrsync sends).
    pub fn group(&self) -> &str {
        self.attribute("MessageGroupId").unwrap_or_default()
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.attribute(name).and_then(|n| n.parse().ok())
    }
}

/// The port's [`Delivery`] of a message Lambda received for the function: acked by Lambda
/// itself (a record not reported failed is deleted), but retried and dead-lettered through
/// [`Queue::retry`] like one this adapter received. `Err`: the body is not a nudge (a poison
/// message: [`SqsQueue::dead_letter_unreadable`]).
pub fn mapped_delivery(
    queue: QueueName,
    message: &MappedMessage<'_>,
) -> Result<Delivery, QueueError> {
    let nudge: Nudge = serde_json::from_str(message.body)
        .map_err(|e| QueueError::Decode(format!("a message of {queue} is not a nudge: {e}")))?;
    if message.receipt_handle.is_empty() {
        return Err(QueueError::Decode(format!(
            "a message of {queue} has no receipt"
        )));
    }
    let attempt = message
        .number("ApproximateReceiveCount")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1);
    Ok(Delivery {
        id: Receipt::encode(
            message.message_id,
            message.number("SentTimestamp").unwrap_or(0),
            message.dead_letter_id,
            message.receipt_handle,
        ),
        queue,
        group: nudge.worker.to_string(),
        nudge,
        attempt,
    })
}

impl SqsQueue {
    /// Moves a message whose body is unreadable (not a nudge) to its queue's DLQ at once, body
    /// unchanged, with the reason: no attempt can succeed. The DLQ keeps it for an operator;
    /// `hrsync dlq` cannot redrive it.
    pub async fn dead_letter_unreadable(
        &self,
        queue: QueueName,
        message: &MappedMessage<'_>,
        reason: &str,
        now: Timestamp,
    ) -> Result<(), QueueError> {
        let urls = self.urls(queue)?;
        let group = match message.group() {
            "" => "unreadable",
            group => group,
        };
        self.send_dead_letter(
            queue,
            DeadLetterSend {
                body: message.body,
                group: &sqs_id(group),
                message_id: message.message_id,
                dead_letter_id: message.dead_letter_id.unwrap_or(message.message_id),
                reason,
                attempts: message.number("ApproximateReceiveCount").unwrap_or(1),
                sent_at: &message.number("SentTimestamp").unwrap_or(0).to_string(),
                now,
            },
        )
        .await?;
        self.delete(queue, &urls.url, message.receipt_handle).await
    }
}

/// What a dead letter carries besides its body: where it came from and why it stopped.
struct DeadLetterSend<'a> {
    body: &'a str,
    group: &'a str,
    /// The original message's id: the same message dead-lettered twice (a delete after the
    /// send that failed) is one dead letter.
    message_id: &'a str,
    /// The id the operator knows it by: the first dead letter's, for a redriven message.
    dead_letter_id: &'a str,
    reason: &'a str,
    attempts: u64,
    /// Epoch ms, as SQS's `SentTimestamp`.
    sent_at: &'a str,
    now: Timestamp,
}

impl SqsQueue {
    /// Sends a dead letter to `queue`'s DLQ with its reason, attempts and instants as message
    /// attributes (the caller then deletes the original).
    async fn send_dead_letter(
        &self,
        queue: QueueName,
        letter: DeadLetterSend<'_>,
    ) -> Result<(), QueueError> {
        let reason: String = letter.reason.chars().take(MAX_REASON_CHARS).collect();
        let reason = if reason.is_empty() {
            "(no reason given)".to_owned()
        } else {
            reason
        };
        self.client
            .send_message()
            .queue_url(&self.urls(queue)?.dead_letter_url)
            .message_body(letter.body)
            .message_group_id(letter.group)
            .message_deduplication_id(deduplication_id(&format!("dead:{}", letter.message_id)))
            .message_attributes(REASON_ATTRIBUTE, string_attribute(&reason)?)
            .message_attributes(
                ATTEMPTS_ATTRIBUTE,
                number_attribute(&letter.attempts.to_string())?,
            )
            .message_attributes(
                DEAD_AT_ATTRIBUTE,
                string_attribute(&letter.now.to_string())?,
            )
            .message_attributes(SENT_AT_ATTRIBUTE, number_attribute(letter.sent_at)?)
            .message_attributes(
                DEAD_LETTER_ID_ATTRIBUTE,
                string_attribute(letter.dead_letter_id)?,
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(&format!("SQS SendMessage ({queue} DLQ)"), &e))
    }
}

/// The id a dead letter is listed and redriven by: the first dead letter's, kept by a redriven
/// message ([`DEAD_LETTER_ID_ATTRIBUTE`]; also on what the redrive policy moved), else its own.
fn dead_letter_id(message: &Message) -> Option<&str> {
    message_attribute(message, DEAD_LETTER_ID_ATTRIBUTE).or(message.message_id())
}

fn dead_letter(message: &Message, policy_receives: Option<u32>) -> Result<DeadLetter, QueueError> {
    let id = dead_letter_id(message)
        .ok_or_else(|| QueueError::Decode("a dead letter has no message id".into()))?;
    let nudge: Nudge = serde_json::from_str(message.body().unwrap_or_default())
        .map_err(|e| QueueError::Decode(format!("dead letter {id} is not a nudge: {e}")))?;
    let reason = message_attribute(message, REASON_ATTRIBUTE)
        .map_or_else(|| REDRIVE_POLICY_REASON.to_owned(), str::to_owned);
    let attempts = message_attribute(message, ATTEMPTS_ATTRIBUTE)
        .and_then(|n| n.parse().ok())
        .or(policy_receives)
        .unwrap_or(0);
    // A message moved by the redrive policy carries no instant of its own: its sent time is
    // the closest SQS keeps.
    let at = match message_attribute(message, DEAD_AT_ATTRIBUTE) {
        Some(text) => text
            .parse()
            .map_err(|e| QueueError::Decode(format!("dead letter {id}: bad instant: {e}")))?,
        None => Timestamp::from_millisecond(
            i64::try_from(system_number(
                message,
                MessageSystemAttributeName::SentTimestamp,
            ))
            .unwrap_or(0),
        )
        .unwrap_or(Timestamp::UNIX_EPOCH),
    };
    Ok(DeadLetter {
        id: id.to_owned(),
        nudge,
        reason,
        attempts,
        at,
    })
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

fn system_number(message: &Message, name: MessageSystemAttributeName) -> u64 {
    system_attribute(message, name)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn message_attribute<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Backend(format!("a message attribute: {e}")))
}

fn number_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Backend(format!("a message attribute: {e}")))
}

/// A port duration as SQS's whole seconds (rounded up, so a message never comes back early).
fn visibility_seconds(duration: Duration) -> Result<i32, QueueError> {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    if seconds > MAX_VISIBILITY_SECONDS {
        return Err(QueueError::Backend(format!(
            "a visibility timeout or backoff of {seconds} s is over SQS's 12 hours"
        )));
    }
    i32::try_from(seconds).map_err(|e| QueueError::Backend(e.to_string()))
}

/// The characters SQS allows in a `MessageDeduplicationId` and a `MessageGroupId`:
/// alphanumerics and ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``, i.e. printable ASCII but space.
fn sqs_id_char(c: char) -> bool {
    c.is_ascii_graphic()
}

/// Most characters of a `MessageDeduplicationId` / `MessageGroupId`.
pub const MAX_SQS_ID_CHARS: usize = 128;

/// `text` as an SQS deduplication or group id: itself when SQS accepts it (1 to 128 of
/// SQS's characters), otherwise a readable prefix (other characters as `_`) and a hash of
/// the whole text, so distinct ids stay distinct and the same id always maps the same way.
pub fn sqs_id(text: &str) -> String {
    if !text.is_empty() && text.len() <= MAX_SQS_ID_CHARS && text.chars().all(sqs_id_char) {
        return text.to_owned();
    }
    let hash = stable_hash(text);
    let keep = MAX_SQS_ID_CHARS - hash.len() - 1;
    let prefix: String = text
        .chars()
        .map(|c| if sqs_id_char(c) { c } else { '_' })
        .take(keep)
        .collect();
    format!("{prefix}~{hash}")
}

/// The `MessageDeduplicationId` of a nudge sent with `dedup` ([`sqs_id`]).
pub fn deduplication_id(dedup: &str) -> String {
    sqs_id(dedup)
}

/// The `MessageGroupId` of a worker's messages ([`sqs_id`] of the worker key).
pub fn message_group_id(worker: &WorkerKey) -> String {
    sqs_id(&worker.to_string())
}

/// A deterministic 128-bit hash as 32 hex digits (the first half of the SHA-256), for ids that
/// must be derived from a longer or odd text.
pub(crate) fn stable_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

fn short(text: &str) -> String {
    let cut: String = text.chars().take(24).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Is this SDK error worth another attempt? Throttling, 5xx, timeouts and I/O are; validation,
/// access, missing resources (configuration) are not.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = error.code().unwrap_or_default();
            status >= 500
                || status == 429
                || code.contains("Throttl")
                || matches!(
                    code,
                    "RequestThrottled"
                        | "ServiceUnavailable"
                        | "InternalFailure"
                        | "InternalError"
                        | "InternalServerException"
                        | "RequestTimeout"
                        | "KmsThrottled"
                )
        }
        _ => false,
    }
}

/// An SDK error as the port's backend error: the operation, the AWS error code and message,
/// and whether another attempt may help. No message body or attribute is included.
pub(crate) fn aws_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match is_transient(error) {
        true => "transient",
        false => "permanent: check the configuration and permissions",
    };
    let detail = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    };
    QueueError::Backend(format!("{operation} failed ({kind}): {detail}"))
}

/// A receipt SQS no longer honours is stale; anything else is a backend error.
fn receipt_error<E>(
    queue: QueueName,
    receipt: &str,
    operation: &str,
    error: &SdkError<E, HttpResponse>,
) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = error.code().unwrap_or_default();
    let message = error.message().unwrap_or_default();
    let stale = matches!(
        code,
        "ReceiptHandleIsInvalid"
            | "AWS.SimpleQueueService.ReceiptHandleIsInvalid"
            | "MessageNotInflight"
            | "AWS.SimpleQueueService.MessageNotInflight"
    ) || (code.contains("InvalidParameterValue") && message.contains("ReceiptHandle"));
    match stale {
        true => QueueError::StaleReceipt {
            queue,
            receipt: short(receipt),
        },
        false => aws_error(&format!("SQS {operation} ({queue})"), error),
    }
}

/// The FIFO queues `create_queues` makes, like `infra/template.yaml`: name, visibility timeout
/// (6 x the consumer's function timeout), and whether deduplication is content-based (the
/// queue EventBridge Scheduler targets).
const TEMPLATE_QUEUES: [(QueueName, u32, bool); 4] = [
    (QueueName::HrEvents, 60, false),
    (QueueName::WorkerEvents, 180, true),
    (QueueName::Directory, 720, false),
    (QueueName::Writeback, 360, false),
];

/// The template's `maxReceiveCount`.
pub const TEMPLATE_MAX_RECEIVE_COUNT: u32 = 5;

/// Creates the four FIFO queues and their FIFO DLQs as `infra/template.yaml` does
/// (`<prefix><queue>.fifo` and `<prefix><queue>-dlq.fifo`; high-throughput FIFO, SSE-SQS,
/// 4 / 14 days' retention, redrive after [`TEMPLATE_MAX_RECEIVE_COUNT`] receives,
/// content-based deduplication on worker-events) and returns their URLs. For tests and local
/// demos against an emulator or a sandbox account; production queues come from the template.
/// Idempotent for identical attributes (SQS's CreateQueue is).
pub async fn create_queues(
    client: &Client,
    prefix: &str,
) -> Result<BTreeMap<QueueName, QueueUrls>, QueueError> {
    create_queues_with(client, prefix, TEMPLATE_MAX_RECEIVE_COUNT).await
}

/// [`create_queues`] with another `maxReceiveCount` (tests of the redrive policy).
pub async fn create_queues_with(
    client: &Client,
    prefix: &str,
    max_receive_count: u32,
) -> Result<BTreeMap<QueueName, QueueUrls>, QueueError> {
    let mut urls = BTreeMap::new();
    for (queue, visibility, content_dedup) in TEMPLATE_QUEUES {
        let dead_name = format!("{prefix}{queue}-dlq.fifo");
        let dead_letter_url = create_queue(
            client,
            &dead_name,
            &[
                (QueueAttributeName::FifoQueue, "true".into()),
                (QueueAttributeName::SqsManagedSseEnabled, "true".into()),
                (QueueAttributeName::MessageRetentionPeriod, "1209600".into()),
            ],
        )
        .await?;
        let dead_arn = queue_arn(client, &dead_letter_url).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dead_arn,
            "maxReceiveCount": max_receive_count,
        })
        .to_string();
        let mut attributes = vec![
            (QueueAttributeName::FifoQueue, "true".to_owned()),
            (
                QueueAttributeName::DeduplicationScope,
                "messageGroup".into(),
            ),
            (
                QueueAttributeName::FifoThroughputLimit,
                "perMessageGroupId".into(),
            ),
            (QueueAttributeName::SqsManagedSseEnabled, "true".into()),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility.to_string(),
            ),
            (QueueAttributeName::MessageRetentionPeriod, "345600".into()),
            (QueueAttributeName::RedrivePolicy, redrive),
        ];
        if content_dedup {
            attributes.push((QueueAttributeName::ContentBasedDeduplication, "true".into()));
        }
        let url = create_queue(client, &format!("{prefix}{queue}.fifo"), &attributes).await?;
        urls.insert(
            queue,
            QueueUrls {
                url,
                dead_letter_url,
            },
        );
    }
    Ok(urls)
}

async fn create_queue(
    client: &Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, QueueError> {
    let mut request = client.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value);
    }
    let answer = request
        .send()
        .await
        .map_err(|e| aws_error(&format!("SQS CreateQueue ({name})"), &e))?;
    answer
        .queue_url
        .ok_or_else(|| QueueError::Backend(format!("SQS CreateQueue ({name}) returned no URL")))
}

/// A queue's ARN (`GetQueueAttributes QueueArn`).
pub async fn queue_arn(client: &Client, url: &str) -> Result<String, QueueError> {
    let answer = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_error("SQS GetQueueAttributes (QueueArn)", &e))?;
    answer
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Backend("SQS GetQueueAttributes returned no QueueArn".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_kept_and_others_hashed_deterministically() {
        let valid = r#"hr:123#leave@2026-03-31T06:00:00Z!"$%&'()*+,-./;<=>?[\]^_`{|}~"#;
        assert_eq!(sqs_id(valid), valid);
        assert_eq!(sqs_id(&"x".repeat(128)), "x".repeat(128));

        for odd in ["", "has space", "émile", &"x".repeat(129), "tab\there"] {
            let id = sqs_id(odd);
            assert_eq!(id, sqs_id(odd), "deterministic");
            assert!(id.len() <= MAX_SQS_ID_CHARS, "{id}");
            assert!(id.chars().all(sqs_id_char), "{id}");
            assert!(!id.is_empty());
        }
        assert_eq!(sqs_id("has space").split('~').next(), Some("has_space"));
        // Texts that sanitize alike stay apart; a long common prefix does not merge ids.
        assert_ne!(sqs_id("a b"), sqs_id("a\tb"));
        let long = "y".repeat(200);
        assert_ne!(sqs_id(&format!("{long}1")), sqs_id(&format!("{long}2")));
    }

    #[test]
    fn the_hash_is_the_first_half_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(stable_hash("abc"), "ba7816bf8f01cfea414140de5dae2223");
        assert_eq!(stable_hash("abc").len(), 32);
    }

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(visibility_seconds(Duration::ZERO).unwrap(), 0);
        assert_eq!(visibility_seconds(Duration::from_millis(1)).unwrap(), 1);
        assert_eq!(
            visibility_seconds(Duration::from_millis(29_999)).unwrap(),
            30
        );
        assert_eq!(
            visibility_seconds(Duration::from_secs(43_200)).unwrap(),
            43_200
        );
        assert!(visibility_seconds(Duration::from_secs(43_201)).is_err());
    }

    #[test]
    fn receipts_round_trip_and_foreign_ones_are_stale() {
        let delivery = |id: String| Delivery {
            id,
            queue: QueueName::Directory,
            nudge: Nudge::new(WorkerKey::new("hr", "1"), "r", "t"),
            attempt: 1,
            group: "hr:1".into(),
        };
        let ok = delivery(Receipt::encode("mid", 17, None, "AQEB+/x y=="));
        let receipt = Receipt::parse(&ok).unwrap();
        assert_eq!(
            (receipt.message_id, receipt.sent_at, receipt.handle),
            ("mid", "17", "AQEB+/x y==")
        );
        assert_eq!(receipt.dead_letter_id, None);
        let redriven = delivery(Receipt::encode("mid2", 18, Some("mid"), "AQEB z"));
        let receipt = Receipt::parse(&redriven).unwrap();
        assert_eq!(
            (receipt.message_id, receipt.dead_letter_id, receipt.handle),
            ("mid2", Some("mid"), "AQEB z")
        );
        for foreign in [
            "",
            "just-a-handle",
            "mid notanumber - handle",
            "mid 1 - ",
            "mid 1 handle",
        ] {
            assert!(matches!(
                Receipt::parse(&delivery(foreign.into())),
                Err(QueueError::StaleReceipt {
                    queue: QueueName::Directory,
                    ..
                })
            ));
        }
    }
}
