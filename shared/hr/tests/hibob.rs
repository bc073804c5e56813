//! HiBob: signatures, webhook v2 events, the people read and the email write, against the
//! loopback emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use hrsync_core::{Identifiers, Status, WorkerKey};
use hrsync_hr::api::RetryPolicy;
use hrsync_hr::hibob::{self, HiBob};
use hrsync_hr::{Action, Connector, Delivery, Fetched, Setup};
use hrsync_hr_emulators::{Emulator, hibob as bob};
use http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};

const SECRET: &str = "bob-webhook-secret-0123456789";
const SAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/samples/hibob-webhook.json"
));

fn now() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

fn config(base_url: &str) -> SourceConfig {
    SourceConfig {
        base_url: Some(base_url.into()),
        service_user_id: Some(SecretRef::Env("USER".into())),
        token: Some(SecretRef::Env("TOKEN".into())),
        webhook_secret: Some(SecretRef::Env("WEBHOOK".into())),
        ..SourceConfig::of_kind(SourceKind::HiBob)
    }
}

fn build(config: &SourceConfig, token: &str) -> HiBob {
    let http = reqwest::Client::new();
    let token = token.to_owned();
    let resolve = move |r: &SecretRef| match r {
        SecretRef::Env(n) if n == "USER" => Ok(bob::SERVICE_USER_ID.to_owned()),
        SecretRef::Env(n) if n == "TOKEN" => Ok(token.clone()),
        _ => Ok(SECRET.to_owned()),
    };
    HiBob::new(Setup {
        name: "bob",
        config,
        resolve: &resolve,
        http: &http,
        webhooks: hrsync_hr::Webhooks::Taken,
    })
    .unwrap()
    .with_retry(RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
    })
}

fn connector(base_url: &str) -> HiBob {
    build(&config(base_url), bob::TOKEN)
}

/// A connector for parsing and verifying only (no API calls).
fn offline() -> HiBob {
    connector("http://127.0.0.1:9")
}

fn headers(signature: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(signature) = signature {
        headers.insert(
            hibob::SIGNATURE_HEADER,
            HeaderValue::from_str(signature).unwrap(),
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

fn event(event_type: &str, data: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "companyId": 636192,
        "type": event_type,
        "triggeredBy": "3332883804594373380",
        "triggeredAt": "2025-01-08T13:06:26.915906",
        "version": "v2",
        "data": data,
    }))
    .unwrap()
}

// ---------------------------------------------------------------- verification

#[test]
fn the_signature_is_base64_hmac_sha512_of_the_body() {
    // printf '{"type":"employee.created"}' | openssl dgst -sha512 -hmac key -binary | base64
    assert_eq!(
        hibob::sign(b"key", br#"{"type":"employee.created"}"#),
        "r/Grje84Vk5QVo31zc/jl4SHd9tCCHTQfPWQPTKk4+IDjZZXZb3XqhYonpp2GBJ3CPD+fzq0SkSKNQeC69PK3A=="
    );
}

#[test]
fn a_signed_delivery_verifies() {
    let body = event(
        "employee.created",
        json!({"employeeId": "3332883854254932743"}),
    );
    let headers = headers(Some(&hibob::sign(SECRET.as_bytes(), &body)));
    assert_eq!(offline().verify(&delivery(&headers, &body)), Ok(()));
}

#[test]
fn a_body_altered_by_one_byte_is_refused() {
    let body = event(
        "employee.created",
        json!({"employeeId": "3332883854254932743"}),
    );
    let headers = headers(Some(&hibob::sign(SECRET.as_bytes(), &body)));
    let mut altered = body.clone();
    let at = altered.len() - 3;
    altered[at] ^= 0x01;
    let refused = offline().verify(&delivery(&headers, &altered)).unwrap_err();
    assert!(refused.0.contains("does not match"), "{refused}");
}

#[test]
fn a_signature_made_with_another_secret_is_refused() {
    let body = event(
        "employee.updated",
        json!({"employeeId": "3332883854254932743"}),
    );
    let headers = headers(Some(&hibob::sign(b"another-secret", &body)));
    let refused = offline().verify(&delivery(&headers, &body)).unwrap_err();
    assert!(refused.0.contains("does not match"), "{refused}");
    assert!(!refused.0.contains(SECRET));
}

#[test]
fn a_missing_or_unreadable_signature_is_refused() {
    let body = event(
        "employee.updated",
        json!({"employeeId": "3332883854254932743"}),
    );
    let none = headers(None);
    let refused = offline().verify(&delivery(&none, &body)).unwrap_err();
    assert_eq!(refused.0, "missing header Bob-Signature");
    let garbage = headers(Some("not base64 !!"));
    let refused = offline().verify(&delivery(&garbage, &body)).unwrap_err();
    assert!(refused.0.contains("not base64"), "{refused}");
}

#[test]
fn a_replayed_delivery_verifies_again_and_keeps_its_dedupe_id() {
    let connector = offline();
    let body = event(
        "employee.updated",
        json!({"employeeId": "3332883854254932743"}),
    );
    let headers = headers(Some(&hibob::sign(SECRET.as_bytes(), &body)));
    let first = delivery(&headers, &body);
    let replay = delivery(&headers, &body);
    assert_eq!(connector.verify(&first), Ok(()));
    assert_eq!(connector.verify(&replay), Ok(()));
    let first = connector.parse(&first).unwrap();
    let replay = connector.parse(&replay).unwrap();
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].dedupe, replay.events[0].dedupe);
    assert!(first.events[0].dedupe.ends_with("#3332883854254932743"));
    // Another delivery about the same employee is a different event.
    let other = event(
        "employee.updated",
        json!({"employeeId": "3332883854254932743", "x": 1}),
    );
    let other = connector.parse(&delivery(&headers, &other)).unwrap();
    assert_ne!(other.events[0].dedupe, first.events[0].dedupe);
}

#[test]
fn the_ping_test_is_a_handshake_signed_or_not() {
    let connector = offline();
    for body in [
        &b"Ping test"[..],
        &b"\"Ping test\""[..],
        &br#"{"text":"Ping test"}"#[..],
    ] {
        let unsigned = headers(None);
        assert_eq!(connector.verify(&delivery(&unsigned, body)), Ok(()));
        let signed = headers(Some(&hibob::sign(SECRET.as_bytes(), body)));
        assert_eq!(connector.verify(&delivery(&signed, body)), Ok(()));
        let parsed = connector.parse(&delivery(&signed, body)).unwrap();
        assert!(parsed.handshake);
        assert!(parsed.events.is_empty());
    }
    // Anything more than the ping needs its signature.
    let body = br#"{"text":"Ping test","type":"employee.created","data":{"employeeId":"3332883854254932743"}}"#;
    let unsigned = headers(None);
    assert!(connector.verify(&delivery(&unsigned, body)).is_err());
}

// ---------------------------------------------------------------- parsing

#[test]
fn the_documented_samples_parse() {
    let connector = offline();
    let sample: Value = serde_json::from_str(SAMPLE).unwrap();
    let examples = sample["examples"].as_array().unwrap();
    let mut seen = Vec::new();
    for example in examples {
        let body = serde_json::to_vec(example).unwrap();
        let headers = headers(Some(&hibob::sign(SECRET.as_bytes(), &body)));
        let delivery = delivery(&headers, &body);
        assert_eq!(connector.verify(&delivery), Ok(()));
        let parsed = connector.parse(&delivery).unwrap();
        assert!(!parsed.handshake);
        assert_eq!(parsed.events.len(), 1, "{example}");
        let event = &parsed.events[0];
        assert_eq!(event.employee_id, "3332883854254932743");
        assert_eq!(event.action, Action::Fetch);
        assert_eq!(
            event.dedupe,
            format!("{}#3332883854254932743", delivery.digest())
        );
        seen.push(event.event_type.clone());
    }
    assert_eq!(
        seen,
        ["table.entry.created", "employee.updated", "employee.left"]
    );
}

#[test]
fn every_documented_event_type_has_its_action() {
    let connector = offline();
    let cases = [
        (
            "employee.created",
            json!({"employeeId": "3332883854254932701"}),
            Action::Fetch,
        ),
        (
            "employee.updated",
            json!({"employeeId": "3332883854254932701", "fieldUpdates": [{"id": "root.surname"}]}),
            Action::Fetch,
        ),
        (
            "employee.deleted",
            json!({"employeeId": "3332883854254932701"}),
            Action::Deleted,
        ),
        (
            "table.entry.created",
            json!({"employeeId": "3332883854254932701", "tableId": "work", "effectiveDate": "2025-01-08"}),
            Action::Fetch,
        ),
        (
            "table.entry.updated",
            json!({"employeeId": "3332883854254932701", "tableId": "employment", "id": 991}),
            Action::Fetch,
        ),
        (
            "employee.joined",
            json!({"employeeId": "3332883854254932701"}),
            Action::Fetch,
        ),
        (
            "employee.left",
            json!({"employeeId": "3332883854254932701"}),
            Action::Fetch,
        ),
        (
            "employee.inactivated",
            json!({"employeeId": "3332883854254932701"}),
            Action::Fetch,
        ),
        (
            "employee.activated",
            json!({"employeeId": "3332883854254932701"}),
            Action::Fetch,
        ),
        (
            "employee.temporaryLeave",
            json!({"employeeId": 3332883854254932701u64}),
            Action::Fetch,
        ),
    ];
    for (event_type, data, action) in cases {
        let body = event(event_type, data);
        let headers = headers(None);
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert_eq!(parsed.events.len(), 1, "{event_type}");
        assert_eq!(parsed.events[0].event_type, event_type);
        assert_eq!(parsed.events[0].employee_id, "3332883854254932701");
        assert_eq!(parsed.events[0].action, action, "{event_type}");
    }
}

#[test]
fn time_off_task_and_document_events_are_taken_and_ignored() {
    let connector = offline();
    for event_type in [
        "timeoff.request.created",
        "todo.assign",
        "todo.changedStatus",
        "docs.document.uploaded",
    ] {
        let body = event(
            event_type,
            json!({"employeeId": "3332883854254932701", "requestId": 5}),
        );
        let headers = headers(None);
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert!(parsed.events.is_empty(), "{event_type}");
        assert!(!parsed.handshake);
    }
}

#[test]
fn unreadable_bodies_are_bad_payloads_that_quote_no_values() {
    let connector = offline();
    let headers = headers(None);
    let not_json = b"{\"type\": \"employee.created\", \"data\": {\"employeeId\": \"Ada Lovelace";
    let bad = connector.parse(&delivery(&headers, not_json)).unwrap_err();
    assert!(bad.0.contains("not valid JSON"), "{bad}");
    assert!(!bad.0.contains("Lovelace"));

    let no_id = event("employee.updated", json!({"email": "ada@example.com"}));
    let bad = connector.parse(&delivery(&headers, &no_id)).unwrap_err();
    assert!(bad.0.contains("data.employeeId"), "{bad}");
    assert!(!bad.0.contains("ada@example.com"));

    let no_type =
        serde_json::to_vec(&json!({"data": {"employeeId": "3332883854254932701"}})).unwrap();
    let bad = connector.parse(&delivery(&headers, &no_type)).unwrap_err();
    assert!(bad.0.contains("type"), "{bad}");

    let not_object = b"[1, 2]";
    assert!(connector.parse(&delivery(&headers, not_object)).is_err());

    // The event type is the body's too.
    for data in [json!({}), json!("SECRET-VALUE-123")] {
        let body = event("employee.SECRET-VALUE-123", data);
        let bad = connector.parse(&delivery(&headers, &body)).unwrap_err();
        assert!(bad.0.contains("data"), "{bad}");
        assert!(!bad.0.contains("SECRET-VALUE-123"), "{bad}");
    }
}

#[test]
fn a_key_given_twice_is_refused() {
    let headers = headers(None);
    let body = br#"{"type": "employee.updated", "type": "employee.deleted", "data": {"employeeId": "3332883884017713238"}}"#;
    let refused = offline().parse(&delivery(&headers, body)).unwrap_err();
    assert!(refused.0.contains("the key type twice"), "{refused}");
    // Nor is a ping with a second text a ping.
    assert!(!hrsync_hr::hibob::is_ping(
        br#"{"text": "x", "text": "Ping test"}"#
    ));
}

// ---------------------------------------------------------------- fetch

/// A full Bob record: list fields with their names, the manager, every mapped field.
fn full_record() -> Value {
    let mut record = bob::employee("3332883854254932743", 10, "Robert", "Smith");
    bob::set(&mut record, "root.displayName", json!("Bob Smith"));
    bob::set(&mut record, "root.secondName", json!("James"));
    bob::set(&mut record, "root.email", json!("robert.smith@example.com"));
    bob::set(&mut record, "home.privateEmail", json!("bob@home.example"));
    bob::set(&mut record, "work.startDate", json!("2025-02-03"));
    bob::set(&mut record, "work.title", json!("255490048"));
    bob::set_human(&mut record, "work.title", "Platform Engineer");
    bob::set(&mut record, "work.department", json!("209192163"));
    bob::set_human(&mut record, "work.department", "Engineering");
    bob::set(&mut record, "work.division", json!("311"));
    bob::set_human(&mut record, "work.division", "R&D");
    bob::set(&mut record, "work.site", json!("London"));
    bob::set(&mut record, "work.siteId", json!(2154020));
    bob::set(
        &mut record,
        "work.reportsTo",
        json!({"id": "3332883804594373380", "firstName": "Jane", "surname": "Doe",
               "displayName": "Jane Doe", "email": "jane@example.com"}),
    );
    bob::set(&mut record, "work.manager", json!("3332883804594373380"));
    bob::set(&mut record, "work.employeeIdInCompany", json!(10));
    bob::set(&mut record, "internal.status", json!("Active"));
    bob::set(&mut record, "internal.lifecycleStatus", json!("employed"));
    bob::set(&mut record, "internal.terminationDate", json!("2026-06-30"));
    bob::set(&mut record, "internal.terminationReason", json!("77"));
    bob::set_human(&mut record, "internal.terminationReason", "Resignation");
    bob::set(&mut record, "payroll.employment.type", json!("Permanent"));
    bob::set(&mut record, "address.country", json!("United Kingdom"));
    record
}

#[tokio::test]
async fn a_full_record_is_normalized_field_by_field() {
    let hr = Emulator::start(bob::router).await;
    hr.put_employee("3332883854254932743", full_record());
    let Fetched::Worker(worker) = connector(hr.base_url())
        .fetch("3332883854254932743", now())
        .await
        .unwrap()
    else {
        panic!("expected a worker");
    };
    assert_eq!(worker.key, WorkerKey::new("bob", "3332883854254932743"));
    // The key is the backend id; the directory's employee id is Bob's Employee ID.
    assert_eq!(worker.employee_id, "10");
    assert_eq!(worker.given_name, "Robert");
    assert_eq!(worker.family_name, "Smith");
    assert_eq!(worker.middle_name.as_deref(), Some("James"));
    assert_eq!(worker.preferred_name.as_deref(), Some("Bob"));
    assert_eq!(
        worker.work_email.as_deref(),
        Some("robert.smith@example.com")
    );
    assert_eq!(worker.personal_email.as_deref(), Some("bob@home.example"));
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.hire_date, Some(date(2025, 2, 3)));
    assert_eq!(worker.termination_date, Some(date(2026, 6, 30)));
    assert_eq!(worker.termination_type.as_deref(), Some("Resignation"));
    assert_eq!(worker.worker_type.as_deref(), Some("Permanent"));
    assert_eq!(worker.job_title.as_deref(), Some("Platform Engineer"));
    assert_eq!(worker.department.as_deref(), Some("Engineering"));
    assert_eq!(worker.division.as_deref(), Some("R&D"));
    assert_eq!(worker.location.as_deref(), Some("London"));
    assert_eq!(worker.country.as_deref(), Some("United Kingdom"));
    assert_eq!(worker.manager_id.as_deref(), Some("3332883804594373380"));
    assert_eq!(
        worker.manager_key(),
        Some(WorkerKey::new("bob", "3332883804594373380"))
    );
    assert_eq!(worker.time_zone, None);
    assert_eq!(
        worker.custom.get("employee_number").map(String::as_str),
        Some("10")
    );
    assert_eq!(worker.as_of, now());

    // The documented call: POST /people/{id}, Basic auth, fields + humanReadable.
    let requests = hr.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/people/3332883854254932743");
    assert!(
        request
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Basic ")
    );
    let body = request.body.as_ref().unwrap();
    assert_eq!(body["humanReadable"], "APPEND");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for wanted in [
        "root.id",
        "root.firstName",
        "root.surname",
        "root.email",
        "work.startDate",
        "work.reportsTo",
        "internal.status",
        "internal.lifecycleStatus",
        "internal.terminationDate",
    ] {
        assert!(fields.contains(&wanted), "{wanted} not requested");
    }
}

#[tokio::test]
async fn lifecycle_statuses_map_to_statuses() {
    let hr = Emulator::start(bob::router).await;
    let cases = [
        ("employed", "Active", Status::Active),
        ("hired", "Inactive", Status::Active),
        ("garden leave", "Active", Status::Leave),
        ("parental leave", "Active", Status::Leave),
        ("terminated", "Inactive", Status::Terminated),
        ("something new", "Inactive", Status::Inactive),
    ];
    for (index, (lifecycle, status, expected)) in cases.into_iter().enumerate() {
        let id = bob::backend_id(100 + index as u64);
        let mut record = bob::employee(&id, 100 + index as u64, "Ada", "Lovelace");
        bob::set(&mut record, "internal.lifecycleStatus", json!(lifecycle));
        bob::set(&mut record, "internal.status", json!(status));
        hr.put_employee(&id, record);
        let Fetched::Worker(worker) = connector(hr.base_url()).fetch(&id, now()).await.unwrap()
        else {
            panic!("expected a worker");
        };
        assert_eq!(worker.status, expected, "{lifecycle}");
    }
}

#[tokio::test]
async fn an_unknown_employee_is_gone() {
    let hr = Emulator::start(bob::router).await;
    let unknown = bob::backend_id(404);
    let fetched = connector(hr.base_url())
        .fetch(&unknown, now())
        .await
        .unwrap();
    assert_eq!(fetched, Fetched::Gone);
    // The single read, then the search that includes inactive employees.
    let requests = hr.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/people/search");
    let body = requests[1].body.as_ref().unwrap();
    assert_eq!(body["showInactive"], true);
    assert_eq!(
        body["filters"],
        json!([{"fieldPath": "root.id", "operator": "equals", "values": [unknown]}])
    );
}

#[tokio::test]
async fn an_inactive_employee_hidden_from_the_single_read_is_found_by_the_search() {
    let hr = Emulator::start(bob::router).await;
    bob::hide_inactive_from_single_reads(&hr);
    let id = bob::backend_id(55);
    let mut record = bob::employee(&id, 55, "Ada", "Lovelace");
    bob::set(&mut record, "internal.status", json!("Inactive"));
    bob::set(&mut record, "internal.lifecycleStatus", json!("terminated"));
    bob::set(&mut record, "internal.terminationDate", json!("2026-02-28"));
    hr.put_employee(&id, record);
    let Fetched::Worker(worker) = connector(hr.base_url()).fetch(&id, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    assert_eq!(worker.status, Status::Terminated);
    assert_eq!(worker.termination_date, Some(date(2026, 2, 28)));
    assert_eq!(hr.requests().len(), 2);
}

#[tokio::test]
async fn throttling_is_waited_out() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(1);
    hr.put_employee(&id, bob::employee(&id, 1, "Ada", "Lovelace"));
    hr.fail_next(1, 429, Some(1));
    let started = Instant::now();
    let fetched = connector(hr.base_url()).fetch(&id, now()).await.unwrap();
    assert!(matches!(fetched, Fetched::Worker(_)));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(hr.requests().len(), 2);
}

#[tokio::test]
async fn an_outage_is_a_retryable_error() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(1);
    hr.put_employee(&id, bob::employee(&id, 1, "Ada", "Lovelace"));
    hr.fail_next(10, 503, None);
    let error = connector(hr.base_url())
        .fetch(&id, now())
        .await
        .unwrap_err();
    assert!(error.retryable, "{error}");
    assert_eq!(hr.requests().len(), 3);
}

#[tokio::test]
async fn a_wrong_credential_is_a_permanent_error() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(1);
    hr.put_employee(&id, bob::employee(&id, 1, "Ada", "Lovelace"));
    let connector = build(&config(hr.base_url()), "wrong-token");
    let error = connector.fetch(&id, now()).await.unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("401"), "{error}");
    assert!(!error.message.contains("wrong-token"));
}

/// Bob holds `record` under `id`; the fetch's error, which must be permanent.
async fn permanent_fetch_error(
    hr: &Emulator,
    connector: &HiBob,
    id: &str,
    record: Value,
) -> hrsync_hr::HrError {
    hr.put_employee(id, record);
    let error = connector.fetch(id, now()).await.unwrap_err();
    assert!(!error.retryable, "{error}");
    error
}

#[tokio::test]
async fn a_record_that_cannot_be_acted_on_is_a_permanent_error_naming_the_field() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(1);
    let mut record = bob::employee(&id, 1, "", "Lovelace");
    bob::set(&mut record, "root.firstName", Value::Null);
    let error = permanent_fetch_error(&hr, &connector(hr.base_url()), &id, record).await;
    assert!(error.message.contains("given_name"), "{error}");

    let id = bob::backend_id(2);
    let mut record = bob::employee(&id, 2, "Ada", "Lovelace");
    bob::set(&mut record, "work.startDate", json!("03/02/2025"));
    let error = permanent_fetch_error(&hr, &connector(hr.base_url()), &id, record).await;
    assert!(error.message.contains("work.startDate"), "{error}");
    assert!(!error.message.contains("03/02/2025"));
}

// ---------------------------------------------------------------- write-back

#[tokio::test]
async fn the_work_email_is_written_back_and_the_record_changes() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(42);
    hr.put_employee(&id, bob::employee(&id, 42, "Ada", "Lovelace"));
    let connector = connector(hr.base_url());
    assert!(connector.writes_back());
    let Fetched::Worker(worker) = connector.fetch(&id, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    assert_eq!(worker.work_email, None);
    let identifiers = Identifiers {
        upn: "ada.lovelace@corp.example".into(),
        mail: "ada.lovelace@corp.example".into(),
    };
    connector.write_back(&worker, &identifiers).await.unwrap();

    let requests = hr.requests();
    let write = requests.last().unwrap();
    assert_eq!(write.method, "PUT");
    assert_eq!(write.path, format!("/people/{id}/email"));
    assert_eq!(
        write.body,
        Some(json!({"email": "ada.lovelace@corp.example"}))
    );
    assert_eq!(
        hr.written(),
        vec![(id.clone(), json!({"email": "ada.lovelace@corp.example"}))]
    );
    let Fetched::Worker(after) = connector.fetch(&id, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    assert_eq!(
        after.work_email.as_deref(),
        Some("ada.lovelace@corp.example")
    );

    // Writing the same email again changes nothing (304) and is not an error.
    connector.write_back(&after, &identifiers).await.unwrap();
    assert_eq!(hr.written().len(), 1);
}

#[tokio::test]
async fn writing_back_to_a_missing_employee_is_a_permanent_error() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(42);
    hr.put_employee(&id, bob::employee(&id, 42, "Ada", "Lovelace"));
    let connector = connector(hr.base_url());
    let Fetched::Worker(worker) = connector.fetch(&id, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    hr.remove_employee(&id);
    let identifiers = Identifiers {
        upn: "ada@corp.example".into(),
        mail: "ada@corp.example".into(),
    };
    let error = connector
        .write_back(&worker, &identifiers)
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("404"), "{error}");
    assert!(hr.written().is_empty());
}

#[tokio::test]
async fn write_back_follows_the_config() {
    let hr = Emulator::start(bob::router).await;
    let off = SourceConfig {
        writeback: Some(false),
        ..config(hr.base_url())
    };
    assert!(!build(&off, bob::TOKEN).writes_back());
    assert!(connector(hr.base_url()).writes_back());
}

// ---------------------------------------------------------------- identity

#[tokio::test]
async fn the_employee_id_is_the_configured_field_and_the_key_stays_the_backend_id() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(7);
    let mut record = bob::employee(&id, 1007, "Ada", "Lovelace");
    bob::set(&mut record, "work.custom.payrollNumber", json!("P-7"));
    hr.put_employee(&id, record);
    let payroll = SourceConfig {
        employee_id_field: Some("work.custom.payrollNumber".into()),
        ..config(hr.base_url())
    };
    let Fetched::Worker(worker) = build(&payroll, bob::TOKEN).fetch(&id, now()).await.unwrap()
    else {
        panic!("expected a worker");
    };
    assert_eq!(worker.key, WorkerKey::new("bob", id.as_str()));
    assert_eq!(worker.employee_id, "P-7");
    let asked = &hr.requests()[0].body.clone().unwrap()["fields"];
    assert!(
        asked
            .as_array()
            .unwrap()
            .contains(&json!("work.custom.payrollNumber")),
        "the configured field is asked for: {asked}"
    );
}

#[tokio::test]
async fn an_employee_id_missing_or_too_long_for_the_directory_is_a_permanent_error_naming_the_field()
 {
    let hr = Emulator::start(bob::router).await;
    // Bob leaves out a field the service user may not see, or that was never filled in.
    let id = bob::backend_id(8);
    let mut record = bob::employee(&id, 8, "Ada", "Lovelace");
    bob::set(&mut record, "work.employeeIdInCompany", Value::Null);
    let error = permanent_fetch_error(&hr, &connector(hr.base_url()), &id, record).await;
    assert!(
        error.message.contains(&id)
            && error.message.contains(
                "work.employeeIdInCompany (the employee id, source employee_id_field) is empty"
            ),
        "{error}"
    );

    let id = bob::backend_id(9);
    let mut record = bob::employee(&id, 9, "Ada", "Lovelace");
    bob::set(
        &mut record,
        "work.custom.badgeNumber",
        json!("BADGE-000000000099"),
    );
    hr.put_employee(&id, record);
    let badge = SourceConfig {
        employee_id_field: Some("work.custom.badgeNumber".into()),
        ..config(hr.base_url())
    };
    let error = build(&badge, bob::TOKEN)
        .fetch(&id, now())
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(
        error.message.contains(
            "work.custom.badgeNumber \"BADGE-000000000099\" (the employee id, source employee_id_field) has 18 characters; the directory's employeeId holds at most 16"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn the_emulator_refuses_what_bob_refuses() {
    let hr = Emulator::start(bob::router).await;
    let id = bob::backend_id(3);
    hr.put_employee(&id, bob::employee(&id, 3, "Ada", "Lovelace"));
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{}{path}", hr.base_url()))
            .basic_auth(bob::SERVICE_USER_ID, Some(bob::TOKEN))
            .json(&body)
            .send()
    };
    let status =
        |path: String, body: Value| async { post(path, body).await.unwrap().status().as_u16() };
    assert_eq!(
        status(format!("/people/{id}"), json!({"fields": ["root.id"]})).await,
        200
    );
    assert_eq!(
        status("/people/3".into(), json!({})).await,
        400,
        "not a backend id"
    );
    assert_eq!(
        status(format!("/people/{id}"), json!({"humanReadable": "YES"})).await,
        400
    );
    let too_many: Vec<String> = (0..401).map(|n| format!("work.custom.f{n}")).collect();
    assert_eq!(
        status(format!("/people/{id}"), json!({"fields": too_many})).await,
        400
    );
    let filter = json!({"fieldPath": "root.id", "operator": "equals", "values": [id]});
    assert_eq!(
        status(
            "/people/search".into(),
            json!({"filters": [filter.clone(), filter]})
        )
        .await,
        400,
        "at most one filter"
    );
    assert_eq!(
        status(
            "/people/search".into(),
            json!({"filters": [{"fieldPath": "work.title", "operator": "equals", "values": ["x"]}]})
        )
        .await,
        400
    );
    // A field id Bob does not know is left out, silently.
    let answer: Value = post(
        format!("/people/{id}"),
        json!({"fields": ["root.firstName", "no.such"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["/root/firstName"]["value"], "Ada");
    assert!(answer.get("/no/such").is_none(), "{answer}");
}

#[tokio::test]
async fn an_id_a_url_would_resolve_away_is_refused_before_any_request() {
    let emu = Emulator::start(bob::router).await;
    let connector = connector(emu.base_url());
    common::unsafe_ids_are_refused_before_any_request(&connector, &emu, now()).await;
}

#[test]
fn an_employee_id_that_is_a_dot_segment_is_refused() {
    let headers = headers(None);
    for id in [".", "..", "1\n2"] {
        let body = event("employee.updated", json!({"employeeId": id}));
        let refused = offline().parse(&delivery(&headers, &body)).unwrap_err();
        assert!(
            refused.0.starts_with("data.employeeId "),
            "{id:?}: {refused}"
        );
    }
}

#[test]
fn an_employee_id_that_could_be_an_internal_key_is_refused() {
    let headers = headers(None);
    for id in ["#webhook", "a:b"] {
        let body = event("employee.deleted", json!({"employeeId": id}));
        let refused = offline().parse(&delivery(&headers, &body)).unwrap_err();
        assert!(
            refused.0.starts_with("data.employeeId "),
            "{id:?}: {refused}"
        );
    }
}
