//! The queue contract (hrsync_pipeline::ports::contract) against `SqsQueue` on moto, and what
//! only SQS shows. Contract cases that move the caller's `now` past a visibility timeout, a
//! backoff or the deduplication window cannot hold on SQS, whose clock is its own: each has an
//! SQS variant below that waits real (short) time instead, and says what differs.

mod moto;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use hrsync_aws::queue::{
    QueueUrls, REASON_ATTRIBUTE, REDRIVE_POLICY_REASON, SqsQueue, create_queues,
    create_queues_with, deduplication_id,
};
use hrsync_core::WorkerKey;
use hrsync_pipeline::ports::{Nudge, Queue, QueueDepth, QueueError, QueueName, RetryOutcome};
use jiff::Timestamp;
use moto::Moto;

const WE: QueueName = QueueName::WorkerEvents;
const VISIBILITY: Duration = Duration::from_secs(60);

/// A fresh moto, the eight queues, and the adapter over them.
struct Fixture {
    _moto: Moto,
    client: aws_sdk_sqs::Client,
    urls: BTreeMap<QueueName, QueueUrls>,
    queue: Arc<SqsQueue>,
}

async fn fixture_with(max_receive_count: u32) -> Fixture {
    let moto = Moto::start();
    let client = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let urls = create_queues_with(&client, "hrsync-", max_receive_count)
        .await
        .expect("queues created");
    let queue = Arc::new(SqsQueue::new(client.clone(), urls.clone()).expect("all four queues"));
    Fixture {
        _moto: moto,
        client,
        urls,
        queue,
    }
}

async fn fixture() -> Fixture {
    let moto = Moto::start();
    let client = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let urls = create_queues(&client, "hrsync-")
        .await
        .expect("queues created");
    let queue = Arc::new(SqsQueue::new(client.clone(), urls.clone()).expect("all four queues"));
    Fixture {
        _moto: moto,
        client,
        urls,
        queue,
    }
}

/// One `#[tokio::test]` per contract function, each on its own moto.
macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        mod contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fixture = super::fixture().await;
                    hrsync_pipeline::ports::contract::$case(fixture.queue.clone()).await;
                }
            )*
        }
    };
}

// Not here, each with an SQS variant below: queue_dedup_window, queue_visibility_timeout,
// queue_retry_dead_letter_redrive, queue_abandoned_messages_are_dead_lettered (they move the
// caller's `now` past a timeout; SQS keeps its own clock).
//
// queue_concurrent_receivers holds on the serialized moto (`tests/moto`): moto's own
// ReceiveMessage takes no lock, which AWS's does.
contract_tests!(
    queue_send_receive_ack,
    queue_fifo_per_group,
    queue_concurrent_receivers,
    queue_dead_letter_keeps_its_id_across_redrive
);

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 literal")
}

fn nudge(id: &str, reason: &str) -> Nudge {
    Nudge::new(WorkerKey::new("hr", id), reason, format!("trace-{reason}"))
}

fn reasons(deliveries: &[hrsync_pipeline::ports::Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.nudge.reason.clone()).collect()
}

fn depth(visible: u64, in_flight: u64, dead: u64) -> QueueDepth {
    QueueDepth {
        visible,
        in_flight,
        dead,
    }
}

/// Past SQS's whole-second visibility (moto compares milliseconds).
async fn wait_seconds(seconds: u64) {
    tokio::time::sleep(Duration::from_millis(seconds * 1000 + 200)).await;
}

/// The queues look like the template's: FIFO, high-throughput, a FIFO DLQ after 5 receives,
/// content-based deduplication where Scheduler sends.
#[tokio::test]
async fn create_queues_makes_the_templates_queues() {
    let f = fixture().await;
    assert_eq!(f.urls.len(), 4);
    for (queue, urls) in &f.urls {
        assert!(
            urls.url.ends_with(&format!("hrsync-{queue}.fifo")),
            "{urls:?}"
        );
        assert!(
            urls.dead_letter_url
                .ends_with(&format!("hrsync-{queue}-dlq.fifo"))
        );
        let attributes = f
            .client
            .get_queue_attributes()
            .queue_url(&urls.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let get = |name: QueueAttributeName| attributes.get(&name).cloned().unwrap_or_default();
        assert_eq!(get(QueueAttributeName::FifoQueue), "true");
        assert_eq!(
            get(QueueAttributeName::ContentBasedDeduplication) == "true",
            *queue == WE,
            "{queue}"
        );
        let policy: serde_json::Value =
            serde_json::from_str(&get(QueueAttributeName::RedrivePolicy)).unwrap();
        assert_eq!(policy["maxReceiveCount"], 5);
        assert!(
            policy["deadLetterTargetArn"]
                .as_str()
                .unwrap()
                .ends_with(&format!("hrsync-{queue}-dlq.fifo"))
        );
    }
    let visibility = f
        .client
        .get_queue_attributes()
        .queue_url(&f.urls[&QueueName::Directory].url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .unwrap();
    assert_eq!(
        visibility.attributes.unwrap()[&QueueAttributeName::VisibilityTimeout],
        "720"
    );
    // Creating them again is fine (the same attributes).
    assert_eq!(create_queues(&f.client, "hrsync-").await.unwrap(), f.urls);
}

/// What `send` puts on the wire: the group is the worker, the deduplication id the nudge's
/// (hashed when SQS would refuse it), the body the documented JSON.
#[tokio::test]
async fn send_sets_group_dedup_id_and_body() {
    let f = fixture().await;
    let t0 = at("2026-03-01T09:00:00Z");
    let odd = format!("webhook évènement {}", "x".repeat(200));
    f.queue
        .send(QueueName::Directory, &nudge("42", "webhook"), &odd, t0)
        .await
        .unwrap();
    let got = f
        .client
        .receive_message()
        .queue_url(&f.urls[&QueueName::Directory].url)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    let attributes = got[0].attributes().unwrap();
    assert_eq!(
        attributes[&MessageSystemAttributeName::MessageGroupId],
        "hr:42"
    );
    assert_eq!(
        attributes[&MessageSystemAttributeName::MessageDeduplicationId],
        deduplication_id(&odd)
    );
    assert!(deduplication_id(&odd).len() <= 128);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(got[0].body().unwrap()).unwrap(),
        serde_json::json!({"v": 1, "worker": "hr:42", "reason": "webhook", "trace": "trace-webhook"})
    );
}

/// SQS may hand out several messages of one group in one ReceiveMessage; the adapter asks one
/// at a time, so it never has to hand any back, and the messages behind a head keep attempt 1.
#[tokio::test]
async fn receive_takes_one_head_per_group_and_counts_no_extra_receive() {
    let f = fixture().await;
    let t0 = at("2026-03-01T09:00:00Z");
    for n in 0..12 {
        f.queue
            .send(WE, &nudge("1", &format!("a{n}")), &format!("a{n}"), t0)
            .await
            .unwrap();
    }
    f.queue.send(WE, &nudge("2", "b0"), "b0", t0).await.unwrap();
    for n in 0..12 {
        let got = f.queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
        let expected: Vec<String> = match n {
            0 => vec!["a0".into(), "b0".into()],
            _ => vec![format!("a{n}")],
        };
        assert_eq!(reasons(&got), expected);
        assert!(got.iter().all(|d| d.attempt == 1), "{got:?}");
        for delivery in &got {
            f.queue.ack(delivery).await.unwrap();
        }
    }
    assert_eq!(f.queue.depth(WE).await.unwrap(), depth(0, 0, 0));
}

/// queue_dedup_window on SQS: a repeated id is dropped, per queue, also a minute later (on
/// SQS's clock: the test cannot move it 5 minutes on). Not checked here, because moto 5.2.5
/// differs from SQS: an id is remembered after its message was deleted (moto forgets it), and
/// the 5-minute end of the window.
#[tokio::test]
async fn dedup_on_sqs() {
    let f = fixture().await;
    let t0 = at("2026-03-01T09:00:00Z");
    let later = at("2026-03-01T09:04:59Z");
    f.queue
        .send(WE, &nudge("1", "first"), "evt-1", t0)
        .await
        .unwrap();
    f.queue
        .send(WE, &nudge("1", "dup"), "evt-1", later)
        .await
        .unwrap();
    f.queue
        .send(
            QueueName::Directory,
            &nudge("1", "other-queue"),
            "evt-1",
            t0,
        )
        .await
        .unwrap();
    // On worker-events (content-based deduplication) the explicit id still decides.
    f.queue
        .send(WE, &nudge("1", "second"), "evt-2", t0)
        .await
        .unwrap();
    assert_eq!(f.queue.depth(WE).await.unwrap(), depth(2, 0, 0));
    assert_eq!(
        f.queue.depth(QueueName::Directory).await.unwrap(),
        depth(1, 0, 0)
    );
    let got = f.queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&got), ["first"]);
}

/// queue_visibility_timeout on SQS, with a 1 s visibility and real waiting: the unacked head
/// comes back (not the next one) with the next attempt and a new receipt; the old receipt no
/// longer acks once the message was acked by the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_timeout_on_sqs() {
    let f = fixture().await;
    let t0 = at("2026-03-01T09:00:00Z");
    let one = Duration::from_secs(1);
    f.queue.send(WE, &nudge("1", "a1"), "a1", t0).await.unwrap();
    f.queue.send(WE, &nudge("1", "a2"), "a2", t0).await.unwrap();
    let first = f.queue.receive(WE, 10, t0, one).await.unwrap();
    assert_eq!(
        (reasons(&first), first[0].attempt),
        (vec!["a1".to_owned()], 1)
    );
    assert_eq!(f.queue.receive(WE, 10, t0, one).await.unwrap(), vec![]);

    wait_seconds(1).await;
    let second = f.queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&second), ["a1"], "the head again, not a2");
    assert_eq!(second[0].attempt, 2);
    assert_ne!(second[0].id, first[0].id);
    assert_eq!(f.queue.depth(WE).await.unwrap(), depth(1, 1, 0));
    // (SQS refuses the first receipt now; moto 5.2.5 still honours superseded receipts, so
    // the stale ack is checked after the message is gone.)
    f.queue.ack(&second[0]).await.unwrap();
    let stale = f.queue.ack(&first[0]).await.unwrap_err();
    assert!(
        matches!(stale, QueueError::StaleReceipt { queue: WE, .. }),
        "{stale:?}"
    );
    let stale = f
        .queue
        .retry(&first[0], "late", t0, one, 5)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, QueueError::StaleReceipt { .. }),
        "{stale:?}"
    );

    let third = f.queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(
        (reasons(&third), third[0].attempt),
        (vec!["a2".to_owned()], 1)
    );
}

/// queue_retry_dead_letter_redrive on SQS, with a 1 s backoff and real waiting. Differences:
/// during a backoff SQS counts the message in flight (the port: visible); the instant of a
/// dead letter is the caller's `now`, as in the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_dead_letter_redrive_on_sqs() {
    let f = fixture().await;
    let queue = &f.queue;
    let t0 = at("2026-03-01T09:00:00Z");
    let backoff = Duration::from_secs(1);
    let max = 3;
    queue.send(WE, &nudge("1", "a1"), "a1", t0).await.unwrap();
    queue.send(WE, &nudge("1", "a2"), "a2", t0).await.unwrap();
    queue.send(WE, &nudge("2", "b1"), "b1", t0).await.unwrap();

    for attempt in 1..max {
        let got = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
        let a = got.iter().find(|d| d.group == "hr:1").expect("a1 is due");
        assert_eq!((a.nudge.reason.as_str(), a.attempt), ("a1", attempt));
        if let Some(b) = got.iter().find(|d| d.group == "hr:2") {
            queue.ack(b).await.unwrap();
        }
        let outcome = queue
            .retry(a, &format!("graph 503 #{attempt}"), t0, backoff, max)
            .await
            .unwrap();
        assert_eq!(outcome, RetryOutcome::Retried);
        // SQS: a message waiting out its backoff is "not visible", i.e. in flight.
        assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 1, 0));
        // During the backoff the whole group waits: a2 is not delivered.
        assert_eq!(queue.receive(WE, 10, t0, VISIBILITY).await.unwrap(), vec![]);
        wait_seconds(1).await;
    }
    let now = at("2026-03-01T09:00:20Z");
    let last = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
    assert_eq!(
        (reasons(&last), last[0].attempt),
        (vec!["a1".to_owned()], max)
    );
    let outcome = queue
        .retry(
            &last[0],
            "graph 400: invalid usageLocation",
            now,
            backoff,
            max,
        )
        .await
        .unwrap();
    assert_eq!(outcome, RetryOutcome::DeadLettered);
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 0, 1));

    let dead = queue.dead_letters(WE).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].nudge, nudge("1", "a1"));
    assert_eq!(dead[0].reason, "graph 400: invalid usageLocation");
    assert_eq!((dead[0].attempts, dead[0].at), (max, now));
    assert_eq!(
        queue.dead_letters(QueueName::Directory).await.unwrap(),
        vec![]
    );
    // Listing hands the dead letters back: listing again shows the same.
    assert_eq!(queue.dead_letters(WE).await.unwrap(), dead);
    // The reason travels as a message attribute on the DLQ message.
    let raw = f
        .client
        .receive_message()
        .queue_url(&f.urls[&WE].dead_letter_url)
        .message_attribute_names("All")
        .visibility_timeout(0)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(
        raw[0].message_attributes().unwrap()[REASON_ATTRIBUTE].string_value(),
        Some("graph 400: invalid usageLocation")
    );

    // The group moves on to a2 at once.
    let next = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
    assert_eq!(reasons(&next), ["a2"]);

    assert!(!queue.redrive(WE, "no-such-id", now).await.unwrap());
    assert!(
        !queue
            .redrive(QueueName::Directory, &dead[0].id, now)
            .await
            .unwrap()
    );
    assert!(queue.redrive(WE, &dead[0].id, now).await.unwrap());
    assert!(
        !queue.redrive(WE, &dead[0].id, now).await.unwrap(),
        "only once"
    );
    assert_eq!(queue.dead_letters(WE).await.unwrap(), vec![]);
    assert_eq!(queue.depth(WE).await.unwrap(), depth(1, 1, 0));
    // Behind a2 (in flight), then delivered with its attempts starting again.
    assert_eq!(
        queue.receive(WE, 10, now, VISIBILITY).await.unwrap(),
        vec![]
    );
    queue.ack(&next[0]).await.unwrap();
    let redriven = queue.receive(WE, 10, now, VISIBILITY).await.unwrap();
    assert_eq!(
        (reasons(&redriven), redriven[0].attempt),
        (vec!["a1".to_owned()], 1)
    );
    queue.ack(&redriven[0]).await.unwrap();
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 0, 0));
}

/// queue_abandoned_messages_are_dead_lettered on SQS: the queue's redrive policy (here
/// maxReceiveCount 2) moves a message whose receivers keep dying to the DLQ by itself, on the
/// receive after its second delivery; `dead_letter_abandoned` has nothing left to do (0).
/// Differences: the queue's maxReceiveCount decides, not the call's `max_receives`; SQS counts
/// retried deliveries too; the dead letter's reason is the fixed redrive-policy text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_messages_are_dead_lettered_by_the_redrive_policy() {
    let f = fixture_with(2).await;
    let queue = &f.queue;
    let t0 = at("2026-03-01T09:00:00Z");
    let one = Duration::from_secs(1);
    queue
        .send(WE, &nudge("1", "crash"), "crash", t0)
        .await
        .unwrap();
    queue
        .send(WE, &nudge("2", "fine"), "fine", t0)
        .await
        .unwrap();
    let first = queue.receive(WE, 10, t0, one).await.unwrap();
    assert_eq!(reasons(&first), ["crash", "fine"]);
    queue.ack(&first[1]).await.unwrap();
    assert_eq!(
        queue
            .dead_letter_abandoned(WE, t0, 2, "gone")
            .await
            .unwrap(),
        0
    );
    wait_seconds(1).await;
    let second = queue.receive(WE, 10, t0, one).await.unwrap();
    assert_eq!(
        (reasons(&second), second[0].attempt),
        (vec!["crash".to_owned()], 2)
    );
    wait_seconds(1).await;
    assert_eq!(
        queue
            .dead_letter_abandoned(WE, t0, 2, "gone")
            .await
            .unwrap(),
        0,
        "SQS does it"
    );
    assert_eq!(queue.receive(WE, 10, t0, VISIBILITY).await.unwrap(), vec![]);
    let dead = queue.dead_letters(WE).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].nudge.reason.as_str(),
            dead[0].reason.as_str(),
            dead[0].attempts
        ),
        ("crash", REDRIVE_POLICY_REASON, 2)
    );
    assert_eq!(queue.depth(WE).await.unwrap(), depth(0, 0, 1));
    // Redriven, it starts again from attempt 1.
    assert!(queue.redrive(WE, &dead[0].id, t0).await.unwrap());
    let again = queue.receive(WE, 10, t0, VISIBILITY).await.unwrap();
    assert_eq!(
        (reasons(&again), again[0].attempt),
        (vec!["crash".to_owned()], 1)
    );
}

/// Configuration errors are reported as backend errors that say they are permanent, without
/// the message body.
#[tokio::test]
async fn a_missing_queue_is_a_permanent_backend_error() {
    let f = fixture().await;
    let mut urls = f.urls.clone();
    urls.get_mut(&WE).unwrap().url = format!("{}-missing", f.urls[&WE].url);
    let queue = SqsQueue::new(f.client.clone(), urls).unwrap();
    let error = queue
        .send(
            WE,
            &nudge("1", "secret reason"),
            "d",
            at("2026-03-01T09:00:00Z"),
        )
        .await
        .unwrap_err();
    let QueueError::Backend(text) = &error else {
        panic!("{error:?}")
    };
    assert!(text.contains("permanent"), "{text}");
    assert!(!text.contains("secret reason"), "{text}");

    let incomplete: BTreeMap<_, _> = f.urls.clone().into_iter().take(3).collect();
    assert!(SqsQueue::new(f.client.clone(), incomplete).is_err());
}
