//! The timers contract (hrsync_pipeline::ports::contract) against `SchedulerTimers` on moto,
//! and a leaver's timer end to end: the schedule Scheduler would fire, and the nudge its
//! delivery puts on worker-events (moto does not fire schedules: the test delivers the
//! schedule's input as Scheduler would).

mod moto;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
use hrsync_aws::queue::{SqsQueue, create_queues, message_group_id, queue_arn};
use hrsync_aws::timers::{
    RETRY_ATTEMPTS, RETRY_MAX_AGE_SECONDS, SchedulerTimers, TimerTarget, create_schedule_group,
    schedule_name, wake_up,
};
use hrsync_core::{TimerKind, WorkerKey};
use hrsync_pipeline::ports::{Queue, QueueName, TimerSpec, Timers};
use jiff::Timestamp;
use moto::Moto;

const GROUP: &str = "hrsync-timers";
const ROLE: &str = "arn:aws:iam::123456789012:role/hrsync-TimerSchedulerRole";

struct Fixture {
    _moto: Moto,
    scheduler: aws_sdk_scheduler::Client,
    sqs: aws_sdk_sqs::Client,
    queue: SqsQueue,
    target: TimerTarget,
    timers: Arc<SchedulerTimers>,
}

/// A fresh moto with the template's queues, the schedules' standard DLQ and the timers' group.
async fn fixture() -> Fixture {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let scheduler = aws_sdk_scheduler::Client::new(&config);
    let urls = create_queues(&sqs, "hrsync-").await.expect("queues");
    let dlq = sqs
        .create_queue()
        .queue_name("hrsync-schedule-dlq")
        .send()
        .await
        .expect("schedule DLQ")
        .queue_url
        .expect("a URL");
    let target = TimerTarget {
        queue_arn: queue_arn(&sqs, &urls[&QueueName::WorkerEvents].url)
            .await
            .expect("worker-events ARN"),
        role_arn: ROLE.into(),
        dead_letter_arn: queue_arn(&sqs, &dlq).await.expect("DLQ ARN"),
    };
    create_schedule_group(&scheduler, GROUP)
        .await
        .expect("group");
    // Again: an existing group is fine.
    create_schedule_group(&scheduler, GROUP)
        .await
        .expect("group");
    let timers = Arc::new(SchedulerTimers::new(
        scheduler.clone(),
        GROUP,
        target.clone(),
    ));
    Fixture {
        _moto: moto,
        queue: SqsQueue::new(sqs.clone(), urls).expect("all four queues"),
        scheduler,
        sqs,
        target,
        timers,
    }
}

macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        mod contract {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fixture = super::fixture().await;
                    hrsync_pipeline::ports::contract::$case(fixture.timers.clone()).await;
                }
            )*
        }
    };
}

contract_tests!(timers_put_replace_delete, timers_take_due);

fn at(text: &str) -> Timestamp {
    text.parse().expect("RFC 3339 literal")
}

/// A future-dated leaver: the schedule fires at the leave instant in UTC into worker-events,
/// in the worker's group, with the runner's nudge; a changed date moves it, a rescind deletes
/// it, and its delivery is a nudge the pipeline reads.
#[tokio::test]
async fn a_leave_timer_is_a_one_time_schedule_into_worker_events() {
    let f = fixture().await;
    let ada = WorkerKey::new("bamboohr", "123");
    // 17:00 in London on 31 March 2026 (BST, UTC+1) is 16:00 UTC.
    let leave_at: Timestamp = "2026-03-31T17:00:00+01:00[Europe/London]"
        .parse::<jiff::ZonedDateTime>()
        .unwrap()
        .timestamp();
    let leave = TimerSpec::new(ada.clone(), TimerKind::Leave, leave_at);
    f.timers.put(&leave).await.unwrap();

    let name = schedule_name("bamboohr:123#leave");
    let get = || {
        f.scheduler
            .get_schedule()
            .group_name(GROUP)
            .name(&name)
            .send()
    };
    let schedule = get().await.unwrap();
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-03-31T16:00:00)")
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(schedule.group_name(), Some(GROUP));
    assert_eq!(
        schedule.flexible_time_window().unwrap().mode(),
        &FlexibleTimeWindowMode::Off
    );
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    let target = schedule.target().unwrap();
    assert_eq!(target.arn(), f.target.queue_arn);
    assert_eq!(target.role_arn(), ROLE);
    assert_eq!(
        target.sqs_parameters().unwrap().message_group_id(),
        Some(message_group_id(&ada).as_str())
    );
    assert_eq!(
        target.dead_letter_config().unwrap().arn(),
        Some(f.target.dead_letter_arn.as_str())
    );
    let retry = target.retry_policy().unwrap();
    assert_eq!(
        (
            retry.maximum_retry_attempts(),
            retry.maximum_event_age_in_seconds()
        ),
        (Some(RETRY_ATTEMPTS), Some(RETRY_MAX_AGE_SECONDS))
    );
    let input: serde_json::Value = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({
            "v": 1,
            "worker": "bamboohr:123",
            "reason": "timer leave at 2026-03-31T16:00:00Z",
            "trace": "timer:bamboohr:123#leave@2026-03-31T16:00:00Z",
        })
    );
    assert_eq!(
        f.timers.worker_timers(&ada).await.unwrap(),
        vec![leave.clone()]
    );

    // HR moves the last day: the same schedule moves.
    let moved = TimerSpec::new(ada.clone(), TimerKind::Leave, at("2026-04-30T16:00:00Z"));
    f.timers.put(&moved).await.unwrap();
    let schedule = get().await.unwrap();
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-04-30T16:00:00)")
    );
    assert_eq!(
        schedule.target().unwrap().input(),
        Some(serde_json::to_string(&wake_up(&moved)).unwrap().as_str())
    );
    let listed = f
        .scheduler
        .list_schedules()
        .group_name(GROUP)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.schedules().len(), 1, "moved, not added");
    assert_eq!(f.timers.next(10).await.unwrap(), vec![moved.clone()]);

    // Scheduler fires it: SendMessage of the input to the target queue, with the group and no
    // deduplication id (the queue deduplicates on content). At least once: twice here.
    let input = schedule.target().unwrap().input().unwrap().to_owned();
    let url = f
        .sqs
        .get_queue_url()
        .queue_name("hrsync-worker-events.fifo")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for _ in 0..2 {
        f.sqs
            .send_message()
            .queue_url(&url)
            .message_body(&input)
            .message_group_id(message_group_id(&ada))
            .send()
            .await
            .unwrap();
    }
    let now = at("2026-04-30T16:00:30Z");
    let got = f
        .queue
        .receive(QueueName::WorkerEvents, 10, now, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "the double delivery is one message");
    assert_eq!(got[0].nudge, wake_up(&moved));
    assert_eq!(got[0].group, "bamboohr:123");
    f.queue.ack(&got[0]).await.unwrap();
    assert_eq!(
        f.queue
            .receive(QueueName::WorkerEvents, 10, now, Duration::from_secs(60))
            .await
            .unwrap(),
        vec![]
    );

    // The leave is rescinded: the schedule goes.
    f.timers.delete(&moved.name).await.unwrap();
    let gone = get().await.unwrap_err();
    assert_eq!(
        aws_sdk_scheduler::error::ProvideErrorMetadata::code(&gone),
        Some("ResourceNotFoundException")
    );
    assert_eq!(f.timers.worker_timers(&ada).await.unwrap(), vec![]);
    f.timers.delete(&moved.name).await.unwrap();
}

/// Timer names Scheduler would refuse (too long, other characters) get a sanitized name with
/// a hash, and come back whole from the schedule.
#[tokio::test]
async fn odd_timer_names_round_trip() {
    let f = fixture().await;
    let worker = WorkerKey::new("personio", format!("émile-{}", "9".repeat(70)));
    let timer = TimerSpec::new(
        worker.clone(),
        TimerKind::RemoveAccess,
        at("2026-05-01T00:00:00.25Z"),
    );
    f.timers.put(&timer).await.unwrap();
    let name = schedule_name(&timer.name);
    assert!(name.len() <= 64, "{name}");
    let schedule = f
        .scheduler
        .get_schedule()
        .group_name(GROUP)
        .name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2026-05-01T00:00:01)")
    );
    assert_eq!(
        f.timers.worker_timers(&worker).await.unwrap(),
        vec![timer.clone()]
    );
    assert_eq!(
        f.timers
            .take_due(at("2026-05-01T00:00:00.25Z"))
            .await
            .unwrap(),
        vec![timer]
    );
    assert_eq!(f.timers.next(10).await.unwrap(), vec![]);
}

/// An instant a schedule cannot hold is refused before Scheduler is asked (moto would accept
/// any expression).
#[tokio::test]
async fn instants_out_of_range_are_refused() {
    let f = fixture().await;
    let timer = TimerSpec::new(WorkerKey::new("hr", "1"), TimerKind::Delete, Timestamp::MAX);
    assert!(f.timers.put(&timer).await.is_err());
    assert_eq!(f.timers.next(10).await.unwrap(), vec![]);
}
