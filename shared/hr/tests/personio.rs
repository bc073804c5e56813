//! The Personio connector against its documented webhook envelope and the API emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use hrsync_core::{Identifiers, Status, WorkerKey};
use hrsync_hr::api::RetryPolicy;
use hrsync_hr::personio::Personio;
use hrsync_hr::{Action, Connector, Delivery, Fetched, Setup, Unauthorized};
use hrsync_hr_emulators::Emulator;
use hrsync_hr_emulators::personio::{
    self, CLIENT_ID, CLIENT_SECRET, employment, person, put_employments, put_org_unit,
    set_link_root, set_page_size,
};
use http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};

const TOKEN: &str = "pw-webhook-token-5b1c";
const SAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/samples/personio-webhook.json"
));

fn now() -> Timestamp {
    "2026-06-01T09:00:00Z".parse().unwrap()
}

fn config(base_url: &str) -> SourceConfig {
    SourceConfig {
        base_url: Some(base_url.into()),
        client_id: Some(SecretRef::Env("CID".into())),
        client_secret: Some(SecretRef::Env("CSECRET".into())),
        webhook_secret: Some(SecretRef::Env("W".into())),
        ..SourceConfig::of_kind(SourceKind::Personio)
    }
}

fn build(config: &SourceConfig, client_secret: &'static str) -> Personio {
    let http = reqwest::Client::new();
    let resolve = move |r: &SecretRef| match r {
        SecretRef::Env(n) if n == "CID" => Ok(CLIENT_ID.to_string()),
        SecretRef::Env(n) if n == "CSECRET" => Ok(client_secret.to_string()),
        _ => Ok(TOKEN.to_string()),
    };
    Personio::new(Setup {
        name: "personio",
        config,
        resolve: &resolve,
        http: &http,
    })
    .unwrap()
    .with_retry(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
    })
}

fn connector(base_url: &str) -> Personio {
    build(&config(base_url), CLIENT_SECRET)
}

/// A connector for verify/parse only (no API is called).
fn offline() -> Personio {
    connector("http://127.0.0.1:9")
}

fn headers(authorization: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(value) = authorization {
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn delivery<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        headers,
        body,
        received_at: now(),
    }
}

/// The sample envelope with another event name and payload.
fn envelope(event_name: &str, payload: Value) -> Vec<u8> {
    let mut body: Value = serde_json::from_str(SAMPLE).unwrap();
    body["event_name"] = json!(event_name);
    body["payload"] = payload;
    serde_json::to_vec(&body).unwrap()
}

// --- verification -------------------------------------------------------------------------

#[test]
fn the_token_sent_verbatim_passes() {
    let headers = headers(Some(TOKEN));
    assert_eq!(
        offline().verify(&delivery(&headers, SAMPLE.as_bytes())),
        Ok(())
    );
}

#[test]
fn a_bearer_prefix_personio_does_not_send_is_refused() {
    // Personio sends the token verbatim: `Bearer <token>` is another value.
    let headers = headers(Some(&format!("Bearer {TOKEN}")));
    assert!(
        offline()
            .verify(&delivery(&headers, SAMPLE.as_bytes()))
            .is_err()
    );
}

#[test]
fn a_wrong_token_is_refused_without_quoting_the_expected_one() {
    let headers = headers(Some("pw-webhook-token-5b1d"));
    let Err(Unauthorized(reason)) = offline().verify(&delivery(&headers, SAMPLE.as_bytes())) else {
        panic!("a wrong token passed");
    };
    assert!(reason.contains("does not match"), "{reason}");
    assert!(!reason.contains(TOKEN));
}

#[test]
fn a_missing_authorization_header_is_refused() {
    let headers = headers(None);
    assert_eq!(
        offline().verify(&delivery(&headers, SAMPLE.as_bytes())),
        Err(Unauthorized("missing the Authorization header".into()))
    );
}

#[test]
fn a_body_altered_by_one_byte_still_passes_the_static_token_but_is_another_delivery() {
    // Personio's token does not cover the body (no HMAC is documented): verification
    // cannot see the change. The altered body is a different delivery for dedupe, and the
    // event is only a cue to fetch the record from the API.
    let headers = headers(Some(TOKEN));
    let body = envelope("person.updated", json!({"id": "1001"}));
    let mut altered = body.clone();
    // One byte of occurred_at (2025-03-01 becomes 2025-03-00).
    let at = body.windows(10).position(|w| w == b"2025-03-01").unwrap() + 9;
    altered[at] ^= 0x01;
    assert_ne!(altered, body);
    let connector = offline();
    assert_eq!(connector.verify(&delivery(&headers, &altered)), Ok(()));
    let original = connector.parse(&delivery(&headers, &body)).unwrap();
    let changed = connector.parse(&delivery(&headers, &altered)).unwrap();
    assert_ne!(original.events[0].dedupe, changed.events[0].dedupe);
}

#[test]
fn a_replayed_delivery_passes_again_with_the_same_dedupe_id() {
    let headers = headers(Some(TOKEN));
    let body = envelope(
        "employment.updated",
        json!({"id": "e-1", "person_id": "1001"}),
    );
    let connector = offline();
    let first = delivery(&headers, &body);
    let mut again = delivery(&headers, &body);
    again.received_at = now()
        .checked_add(jiff::SignedDuration::from_hours(70))
        .unwrap();
    assert_eq!(connector.verify(&first), Ok(()));
    assert_eq!(connector.verify(&again), Ok(()));
    let first = connector.parse(&first).unwrap();
    let again = connector.parse(&again).unwrap();
    assert_eq!(first.events[0].dedupe, again.events[0].dedupe);
    assert!(first.events[0].dedupe.ends_with("#1001"));
}

// --- parsing ------------------------------------------------------------------------------

#[test]
fn the_documented_sample_is_an_employment_update_of_its_person() {
    let headers = headers(Some(TOKEN));
    let parsed = offline()
        .parse(&delivery(&headers, SAMPLE.as_bytes()))
        .unwrap();
    assert!(!parsed.handshake);
    assert!(parsed.refused.is_empty());
    assert_eq!(parsed.events.len(), 1);
    let event = &parsed.events[0];
    assert_eq!(event.event_type, "employment.updated");
    // The sample's payload: {"id": "<employment id (UUID)>", "person_id": "<person id>"}.
    assert_eq!(event.employee_id, "<person id>");
    assert_eq!(event.action, Action::Fetch);
    assert_eq!(event.operation, None);
}

#[test]
fn every_person_and_employment_event_names_the_person() {
    let headers = headers(Some(TOKEN));
    let connector = offline();
    let cases = [
        ("person.created", json!({"id": "1001"}), Action::Fetch),
        ("person.updated", json!({"id": 1001}), Action::Fetch),
        ("person.deleted", json!({"id": "1001"}), Action::Deleted),
        (
            "employment.created",
            json!({"id": "e-1", "person_id": "1001"}),
            Action::Fetch,
        ),
        (
            "employment.updated",
            json!({"id": "e-1", "person": {"id": "1001"}}),
            Action::Fetch,
        ),
        (
            "employment.deleted",
            json!({"id": "e-1", "person_id": "1001"}),
            Action::Deleted,
        ),
        (
            "employment.started",
            json!({"id": "e-1", "person_id": 1001}),
            Action::Fetch,
        ),
        (
            "employment.terminated",
            json!({"id": "e-1", "person_id": "1001"}),
            Action::Fetch,
        ),
    ];
    for (name, payload, action) in cases {
        let body = envelope(name, payload);
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert_eq!(parsed.events.len(), 1, "{name}");
        let event = &parsed.events[0];
        assert_eq!(event.employee_id, "1001", "{name}");
        assert_eq!(event.event_type, name);
        assert_eq!(event.action, action, "{name}");
    }
}

#[test]
fn absence_attendance_and_document_events_are_taken_and_ignored() {
    let headers = headers(Some(TOKEN));
    let connector = offline();
    for name in [
        "absence-period.created",
        "attendance-period.updated",
        "document.created",
        "document.signed",
    ] {
        let body = envelope(name, json!({"id": "x-1", "person_id": "1001"}));
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert!(parsed.events.is_empty(), "{name}");
        assert!(parsed.refused.is_empty(), "{name}");
    }
}

#[test]
fn an_employment_event_does_not_take_the_employment_id_for_the_person() {
    let headers = headers(Some(TOKEN));
    let body = envelope("employment.updated", json!({"id": "e-1"}));
    let error = offline().parse(&delivery(&headers, &body)).unwrap_err();
    assert!(error.0.contains("no person id"), "{}", error.0);
}

#[test]
fn malformed_bodies_are_bad_payloads_that_quote_no_values() {
    let headers = headers(Some(TOKEN));
    let connector = offline();
    let not_json = connector
        .parse(&delivery(&headers, b"{\"event_name\": "))
        .unwrap_err();
    assert!(not_json.0.contains("not valid JSON"));
    let no_name = connector
        .parse(&delivery(
            &headers,
            br#"{"payload": {"id": "Ada Lovelace"}}"#,
        ))
        .unwrap_err();
    assert_eq!(no_name.0, "event_name is missing");
    let no_payload = connector
        .parse(&delivery(&headers, br#"{"event_name": "person.created"}"#))
        .unwrap_err();
    assert_eq!(no_payload.0, "payload is missing");
    let no_id = connector
        .parse(&delivery(
            &headers,
            br#"{"event_name": "person.created", "payload": {"email": "ada@example.com"}}"#,
        ))
        .unwrap_err();
    assert!(no_id.0.contains("no person id"));
    assert!(!no_id.0.contains("ada@example.com"));
}

// --- fetch --------------------------------------------------------------------------------

/// Person 1001 with three employments, most recent first: a cancelled future contract, the
/// current one, and an old one.
async fn emulator_with_ada() -> Emulator {
    let emu = Emulator::start(personio::router).await;
    let mut ada = person("1001", "Augusta Ada", "King", "ada@old.example");
    ada["preferred_name"] = json!("Ada");
    emu.put_employee("1001", ada);
    emu.put_employee(
        "1000",
        person("1000", "Charles", "Babbage", "cb@old.example"),
    );
    let mut current = employment("e-2", "1001", "ACTIVE", "2024-03-01");
    current["position"] = json!({"title": "Analyst"});
    current["supervisor"] = json!({"id": "1000"});
    current["office"] = json!({"id": "o-1", "name": "London"});
    current["org_units"] =
        json!([{"id": "d-7", "type": "DEPARTMENT"}, {"id": "t-3", "type": "TEAM"}]);
    current["legal_entity"] = json!({"id": "le-1", "name": "Analytical Engines Ltd"});
    current["cost_centers"] = json!([{"id": "cc-1", "name": "R&D", "weight": 100}]);
    current["termination"]["termination_date"] = json!("2026-12-31");
    current["termination"]["type"] = json!("RESIGNATION");
    put_employments(
        &emu,
        "1001",
        vec![
            employment("e-3", "1001", "INACTIVE", "2026-09-01"),
            current,
            employment("e-1", "1001", "INACTIVE", "2019-01-01"),
        ],
    );
    put_org_unit(&emu, "d-7", "DEPARTMENT", "Mathematics");
    emu
}

#[tokio::test]
async fn a_full_record_is_normalized_field_by_field() {
    let emu = emulator_with_ada().await;
    set_page_size(&emu, 1);
    let connector = connector(emu.base_url());
    let Fetched::Worker(worker) = connector.fetch("1001", now()).await.unwrap() else {
        panic!("person 1001 not found");
    };
    assert_eq!(worker.key, WorkerKey::new("personio", "1001"));
    assert_eq!(worker.employee_id, "1001");
    assert_eq!(worker.given_name, "Augusta Ada");
    assert_eq!(worker.family_name, "King");
    assert_eq!(worker.middle_name, None);
    assert_eq!(worker.preferred_name.as_deref(), Some("Ada"));
    assert_eq!(worker.work_email.as_deref(), Some("ada@old.example"));
    assert_eq!(worker.personal_email, None);
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.hire_date, Some(date(2024, 3, 1)));
    assert_eq!(worker.termination_date, Some(date(2026, 12, 31)));
    assert_eq!(worker.termination_type.as_deref(), Some("RESIGNATION"));
    assert_eq!(worker.worker_type.as_deref(), Some("INTERNAL"));
    assert_eq!(worker.job_title.as_deref(), Some("Analyst"));
    assert_eq!(worker.department.as_deref(), Some("Mathematics"));
    assert_eq!(worker.location.as_deref(), Some("London"));
    assert_eq!(worker.company.as_deref(), Some("Analytical Engines Ltd"));
    assert_eq!(worker.cost_center.as_deref(), Some("R&D"));
    assert_eq!(worker.manager_id.as_deref(), Some("1000"));
    assert_eq!(
        worker.manager_key(),
        Some(WorkerKey::new("personio", "1000"))
    );
    assert_eq!(worker.time_zone, None);
    assert_eq!(worker.as_of, now());

    // The token was fetched once with the documented form, then bearer calls; the second
    // page was followed (page size 1), the third was not needed.
    let requests = emu.requests();
    let token = &requests[0];
    assert_eq!(token.method, "POST");
    assert_eq!(token.path, "/v2/auth/token");
    let form = token.body.as_ref().unwrap().as_str().unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains(&format!("client_id={CLIENT_ID}")), "{form}");
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v2/auth/token",
            "/v2/persons/1001",
            "/v2/persons/1001/employments?limit=50",
            "/v2/persons/1001/employments?limit=1&cursor=after-1",
            "/v2/org-units/d-7",
        ]
    );
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer personio-access-token"))
    );
}

#[tokio::test]
async fn without_a_current_employment_the_most_recent_one_decides() {
    let emu = Emulator::start(personio::router).await;
    emu.put_employee("7", person("7", "Grace", "Hopper", "gh@old.example"));
    let mut ended = employment("e-9", "7", "INACTIVE", "2020-05-01");
    ended["termination"]["termination_date"] = json!("2026-04-30");
    ended["org_units"] = json!([{"id": "d-1", "type": "DEPARTMENT", "name": "Navy"}]);
    put_employments(
        &emu,
        "7",
        vec![ended, employment("e-8", "7", "INACTIVE", "2010-01-01")],
    );
    set_page_size(&emu, 1);
    let Fetched::Worker(worker) = connector(emu.base_url()).fetch("7", now()).await.unwrap() else {
        panic!("person 7 not found");
    };
    assert_eq!(worker.status, Status::Terminated);
    assert_eq!(worker.hire_date, Some(date(2020, 5, 1)));
    assert_eq!(worker.termination_date, Some(date(2026, 4, 30)));
    // An embedded name needs no lookup.
    assert_eq!(worker.department.as_deref(), Some("Navy"));
    assert!(
        !emu.requests()
            .iter()
            .any(|r| r.path.starts_with("/v2/org-units"))
    );
}

#[tokio::test]
async fn onboarding_is_active_and_leave_is_leave() {
    let emu = Emulator::start(personio::router).await;
    emu.put_employee("8", person("8", "Mary", "Somerville", "ms@old.example"));
    put_employments(
        &emu,
        "8",
        vec![employment("e-1", "8", "ONBOARDING", "2026-07-01")],
    );
    emu.put_employee("9", person("9", "Emmy", "Noether", "en@old.example"));
    put_employments(
        &emu,
        "9",
        vec![employment("e-2", "9", "LEAVE", "2021-01-01")],
    );
    let connector = connector(emu.base_url());
    let Fetched::Worker(mary) = connector.fetch("8", now()).await.unwrap() else {
        panic!()
    };
    assert_eq!(mary.status, Status::Active);
    assert_eq!(mary.hire_date, Some(date(2026, 7, 1)));
    let Fetched::Worker(emmy) = connector.fetch("9", now()).await.unwrap() else {
        panic!()
    };
    assert_eq!(emmy.status, Status::Leave);
}

#[tokio::test]
async fn an_unknown_person_is_gone() {
    let emu = emulator_with_ada().await;
    assert_eq!(
        connector(emu.base_url()).fetch("4040", now()).await,
        Ok(Fetched::Gone)
    );
}

#[tokio::test]
async fn an_active_person_without_an_employment_is_a_permanent_error_naming_hire_date() {
    let emu = Emulator::start(personio::router).await;
    emu.put_employee("5", person("5", "Alan", "Turing", "at@old.example"));
    let error = connector(emu.base_url())
        .fetch("5", now())
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("hire_date"), "{}", error.message);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let emu = emulator_with_ada().await;
    let connector = connector(emu.base_url());
    // A first fetch caches the token, so the fault hits the person call.
    connector.fetch("1001", now()).await.unwrap();
    emu.fail_next(1, 429, Some(1));
    let started = Instant::now();
    let fetched = connector.fetch("1001", now()).await.unwrap();
    assert!(matches!(fetched, Fetched::Worker(_)));
    assert!(started.elapsed() >= Duration::from_millis(900));
    let persons = emu
        .requests()
        .iter()
        .filter(|r| r.path == "/v2/persons/1001")
        .count();
    assert_eq!(persons, 3, "the throttled call was sent again");
}

#[tokio::test]
async fn an_api_that_stays_unavailable_is_a_retryable_error() {
    let emu = emulator_with_ada().await;
    emu.fail_next(10, 503, None);
    let error = connector(emu.base_url())
        .fetch("1001", now())
        .await
        .unwrap_err();
    assert!(error.retryable, "{}", error.message);
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_permanent_error() {
    let emu = emulator_with_ada().await;
    let connector = build(&config(emu.base_url()), "not-the-secret");
    let error = connector.fetch("1001", now()).await.unwrap_err();
    assert!(!error.retryable);
    assert!(
        error.message.contains("client_id and client_secret"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    // Spoofed paging must not carry the bearer token elsewhere.
    let emu = Emulator::start(personio::router).await;
    emu.put_employee("3", person("3", "Ida", "Rhodes", "ir@old.example"));
    put_employments(
        &emu,
        "3",
        vec![
            employment("e-2", "3", "INACTIVE", "2022-01-01"),
            employment("e-1", "3", "ACTIVE", "2020-01-01"),
        ],
    );
    set_page_size(&emu, 1);
    set_link_root(&emu, "https://elsewhere.example");
    let error = connector(emu.base_url())
        .fetch("3", now())
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(
        error.message.contains("not under base_url"),
        "{}",
        error.message
    );
}

// --- write-back ---------------------------------------------------------------------------

#[tokio::test]
async fn the_work_email_is_patched_onto_the_person() {
    let emu = emulator_with_ada().await;
    let connector = connector(emu.base_url());
    assert!(connector.writes_back());
    let Fetched::Worker(worker) = connector.fetch("1001", now()).await.unwrap() else {
        panic!()
    };
    let identifiers = Identifiers {
        upn: "ada.king@corp.example".into(),
        mail: "ada.king@corp.example".into(),
    };
    connector.write_back(&worker, &identifiers).await.unwrap();
    let patch = emu
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.path, "/v2/persons/1001");
    assert_eq!(patch.body, Some(json!({"email": "ada.king@corp.example"})));
    assert_eq!(
        emu.written(),
        vec![(
            "1001".to_string(),
            json!({"email": "ada.king@corp.example"})
        )]
    );
    assert_eq!(
        emu.state().employees["1001"]["email"],
        json!("ada.king@corp.example")
    );
    let Fetched::Worker(again) = connector.fetch("1001", now()).await.unwrap() else {
        panic!()
    };
    assert_eq!(again.work_email.as_deref(), Some("ada.king@corp.example"));
}

#[tokio::test]
async fn write_back_to_a_deleted_person_is_a_permanent_error() {
    let emu = emulator_with_ada().await;
    let connector = connector(emu.base_url());
    let Fetched::Worker(worker) = connector.fetch("1001", now()).await.unwrap() else {
        panic!()
    };
    emu.remove_employee("1001");
    let identifiers = Identifiers {
        upn: "a@corp.example".into(),
        mail: "a@corp.example".into(),
    };
    let error = connector
        .write_back(&worker, &identifiers)
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(emu.written().is_empty());
}

#[test]
fn writeback_false_turns_it_off() {
    let config = SourceConfig {
        writeback: Some(false),
        ..config("http://127.0.0.1:9")
    };
    assert!(!build(&config, CLIENT_SECRET).writes_back());
}
