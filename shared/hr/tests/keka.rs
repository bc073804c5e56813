//! Keka: the static webhook header, event-trigger deliveries, the `kekaapi` token and the
//! HRIS employee read, against the loopback emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use hrsync_core::{Identifiers, Status, WorkerKey};
use hrsync_hr::api::RetryPolicy;
use hrsync_hr::keka::{self, Keka};
use hrsync_hr::{Action, Connector, Delivery, Fetched, Setup};
use hrsync_hr_emulators::{Emulator, keka as kk};
use http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};

const SECRET: &str = "keka-webhook-token-0123456789";
const SAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/samples/keka-webhook.txt"
));
// Keka's record ids are GUIDs (the webhook's `employeeIndentifier`, the API's `id`).
const EMPLOYEE: &str = "8d04399f-8057-4b0d-ab0f-d9b9a5fb0376";
const MANAGER: &str = "7dd7e7ed-be39-47f3-beab-d498b940fd98";
const ADA: &str = "1b077af5-e9a5-4576-9f1a-d84db018cd58";
const ALAN: &str = "3c5d7e9f-0a1b-4c2d-8e3f-4a5b6c7d8e9f";

fn now() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

fn config(emulator_url: &str) -> SourceConfig {
    SourceConfig {
        base_url: Some(format!("{emulator_url}{}", kk::API)),
        token_url: Some(format!("{emulator_url}/connect/token")),
        client_id: Some(SecretRef::Env("ID".into())),
        client_secret: Some(SecretRef::Env("SECRET".into())),
        api_key: Some(SecretRef::Env("KEY".into())),
        webhook_secret: Some(SecretRef::Env("WEBHOOK".into())),
        ..SourceConfig::of_kind(SourceKind::Keka)
    }
}

fn build(config: &SourceConfig, client_secret: &str) -> Keka {
    let http = reqwest::Client::new();
    let client_secret = client_secret.to_owned();
    let resolve = move |r: &SecretRef| match r {
        SecretRef::Env(n) if n == "ID" => Ok(kk::CLIENT_ID.to_owned()),
        SecretRef::Env(n) if n == "SECRET" => Ok(client_secret.clone()),
        SecretRef::Env(n) if n == "KEY" => Ok(kk::API_KEY.to_owned()),
        _ => Ok(SECRET.to_owned()),
    };
    Keka::new(Setup {
        name: "keka",
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

fn connector(emulator_url: &str) -> Keka {
    build(&config(emulator_url), kk::CLIENT_SECRET)
}

fn offline() -> Keka {
    connector("http://127.0.0.1:9")
}

fn form_headers(token: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Some(token) = token {
        headers.insert(
            keka::DEFAULT_WEBHOOK_HEADER,
            HeaderValue::from_str(token).unwrap(),
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

fn form(id: &str, event_type: &str) -> Vec<u8> {
    serde_urlencoded::to_string([
        ("employeeIndentifier", id),
        ("eventType", event_type),
        ("subDomain", "acme"),
    ])
    .unwrap()
    .into_bytes()
}

#[test]
fn a_refusal_never_repeats_the_event_type() {
    let headers = form_headers(None);
    let body = form("", "Employee SECRET-VALUE-123 added");
    let bad = offline().parse(&delivery(&headers, &body)).unwrap_err();
    assert!(bad.0.contains("employeeIndentifier"), "{bad}");
    assert!(!bad.0.contains("SECRET-VALUE-123"), "{bad}");
}

#[test]
fn a_key_given_twice_is_refused_in_a_form_and_in_json() {
    let headers = form_headers(None);
    let form = b"employeeIndentifier=a&eventType=Employee%20added&employeeIndentifier=b";
    let refused = offline().parse(&delivery(&headers, form)).unwrap_err();
    assert!(refused.0.contains("employeeIndentifier twice"), "{refused}");
    let mut json_headers = form_headers(None);
    json_headers.insert("content-type", HeaderValue::from_static("application/json"));
    let json = br#"{"employeeIndentifier": "a", "eventType": "Employee added", "eventType": "Leave requested"}"#;
    let refused = offline().parse(&delivery(&json_headers, json)).unwrap_err();
    assert!(refused.0.contains("the key eventType twice"), "{refused}");
}

// ---------------------------------------------------------------- verification

#[test]
fn the_static_header_is_checked() {
    let connector = offline();
    assert_eq!(connector.webhook_header(), "x-keka-token");
    let body = form(EMPLOYEE, "Employee added");
    let good = form_headers(Some(SECRET));
    assert_eq!(connector.verify(&delivery(&good, &body)), Ok(()));

    let wrong = form_headers(Some("keka-webhook-token-012345678"));
    let refused = connector.verify(&delivery(&wrong, &body)).unwrap_err();
    assert!(refused.0.contains("does not match"), "{refused}");
    assert!(!refused.0.contains(SECRET));

    let missing = form_headers(None);
    let refused = connector.verify(&delivery(&missing, &body)).unwrap_err();
    assert_eq!(refused.0, "missing header x-keka-token");
}

#[test]
fn a_configured_header_name_replaces_the_default() {
    let config = SourceConfig {
        webhook_header: Some("X-Acme-Hook".into()),
        ..config("http://127.0.0.1:9")
    };
    let connector = build(&config, kk::CLIENT_SECRET);
    let body = form(EMPLOYEE, "Employee added");
    let mut headers = form_headers(None);
    headers.insert("x-acme-hook", HeaderValue::from_static(SECRET));
    assert_eq!(connector.verify(&delivery(&headers, &body)), Ok(()));
    // The default header no longer counts.
    let default = form_headers(Some(SECRET));
    assert!(connector.verify(&delivery(&default, &body)).is_err());

    let bad = SourceConfig {
        webhook_header: Some("not a header".into()),
        ..config
    };
    let http = reqwest::Client::new();
    let resolve = |_: &SecretRef| Ok("x".to_string());
    let error = Keka::new(Setup {
        name: "keka",
        config: &bad,
        resolve: &resolve,
        http: &http,
        webhooks: hrsync_hr::Webhooks::Taken,
    })
    .unwrap_err();
    assert_eq!(error.key.as_deref(), Some("webhook_header"));
}

#[test]
fn a_body_altered_by_one_byte_still_verifies_but_is_another_delivery() {
    // Keka signs nothing: the header proves the sender, not the body. An altered body is a
    // different delivery (another dedupe id), never a replay of the first.
    let connector = offline();
    let headers = form_headers(Some(SECRET));
    let body = form(EMPLOYEE, "Employee added");
    let mut altered = body.clone();
    let last = altered.len() - 1;
    altered[last] = b'f';
    assert_eq!(connector.verify(&delivery(&headers, &altered)), Ok(()));
    let first = connector.parse(&delivery(&headers, &body)).unwrap();
    let other = connector.parse(&delivery(&headers, &altered)).unwrap();
    assert_ne!(first.events[0].dedupe, other.events[0].dedupe);
}

#[test]
fn a_replayed_delivery_verifies_again_and_keeps_its_dedupe_id() {
    let connector = offline();
    let headers = form_headers(Some(SECRET));
    let body = form(EMPLOYEE, "Employee exit approved");
    assert_eq!(connector.verify(&delivery(&headers, &body)), Ok(()));
    assert_eq!(connector.verify(&delivery(&headers, &body)), Ok(()));
    let first = connector.parse(&delivery(&headers, &body)).unwrap();
    let replay = connector.parse(&delivery(&headers, &body)).unwrap();
    assert_eq!(first.events[0].dedupe, replay.events[0].dedupe);
    assert_eq!(
        first.events[0].dedupe,
        format!("{}#{EMPLOYEE}", delivery(&headers, &body).digest())
    );
}

// ---------------------------------------------------------------- parsing

#[test]
fn the_documented_sample_parses() {
    let body = SAMPLE
        .lines()
        .find(|line| !line.starts_with('#') && !line.trim().is_empty())
        .unwrap();
    let headers = form_headers(Some(SECRET));
    let parsed = offline()
        .parse(&delivery(&headers, body.as_bytes()))
        .unwrap();
    assert_eq!(parsed.events.len(), 1);
    let event = &parsed.events[0];
    assert_eq!(event.employee_id, "<employee guid>");
    assert_eq!(
        event.event_type,
        "<e.g. Employee added | Employee exit approved>"
    );
    assert_eq!(event.action, Action::Fetch);
}

#[test]
fn employee_and_exit_events_are_fetched_others_ignored() {
    let connector = offline();
    let headers = form_headers(Some(SECRET));
    for event_type in [
        "Employee added",
        "Employee profile updated",
        "Employee exit initiated",
        "Employee exit approved",
        "Employee exit cancelled",
        "EmployeeExitApproved",
    ] {
        let body = form(EMPLOYEE, event_type);
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert_eq!(parsed.events.len(), 1, "{event_type}");
        assert_eq!(parsed.events[0].event_type, event_type);
        assert_eq!(parsed.events[0].employee_id, EMPLOYEE);
        assert_eq!(parsed.events[0].action, Action::Fetch);
    }
    for event_type in [
        "Leave requested",
        "Expense approved",
        "EmployeeSalaryUpdated",
        "Attendance regularization requested",
        "Helpdesk ticket raised",
    ] {
        let body = form(EMPLOYEE, event_type);
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert!(parsed.events.is_empty(), "{event_type}");
        assert!(!parsed.handshake);
    }
}

#[test]
fn a_json_body_with_the_same_keys_is_read() {
    let mut headers = form_headers(Some(SECRET));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let body = serde_json::to_vec(&json!({
        "employeeIndentifier": EMPLOYEE,
        "eventType": "Employee added",
        "subDomain": "acme",
    }))
    .unwrap();
    let parsed = offline().parse(&delivery(&headers, &body)).unwrap();
    assert_eq!(parsed.events[0].employee_id, EMPLOYEE);
    assert_eq!(parsed.events[0].action, Action::Fetch);
}

#[test]
fn unreadable_deliveries_are_bad_payloads() {
    let connector = offline();
    let headers = form_headers(Some(SECRET));
    let no_id = b"eventType=Employee+added&subDomain=acme";
    let bad = connector.parse(&delivery(&headers, no_id)).unwrap_err();
    assert!(bad.0.contains("employeeIndentifier"), "{bad}");
    let no_type = b"employeeIndentifier=abc&subDomain=acme";
    let bad = connector.parse(&delivery(&headers, no_type)).unwrap_err();
    assert!(bad.0.contains("eventType"), "{bad}");
    let mut json_headers = form_headers(Some(SECRET));
    json_headers.insert("content-type", HeaderValue::from_static("application/json"));
    let broken = br#"{"employeeIndentifier": "Ada Lovelace"#;
    let bad = connector
        .parse(&delivery(&json_headers, broken))
        .unwrap_err();
    assert!(bad.0.contains("not valid JSON"), "{bad}");
    assert!(!bad.0.contains("Lovelace"));
}

// ---------------------------------------------------------------- fetch

fn full_record() -> Value {
    json!({
        "id": EMPLOYEE,
        "employeeNumber": "KEKA-0042",
        "firstName": "Robert",
        "middleName": "James",
        "lastName": "Smith",
        "displayName": "Bob Smith",
        "email": "robert.smith@acme.example",
        "personalEmail": "bob@home.example",
        "joiningDate": "2025-02-03T00:00:00",
        "exitDate": "2026-06-30T00:00:00",
        "exitType": 1,
        "exitReason": "Better opportunity",
        "employmentStatus": 0,
        "accountStatus": 1,
        "workerType": 1,
        "timeType": 1,
        "jobTitle": {"identifier": "f3f9425a", "title": "Platform Engineer"},
        "reportsTo": {"id": MANAGER, "email": "jane@acme.example", "firstName": "Jane", "lastName": "Doe"},
        "groups": [
            {"id": "db76d978", "title": "R&D", "groupType": 1},
            {"id": "f5b7e125", "title": "Engineering", "groupType": 2},
            {"id": "9fe494f8", "title": "Bengaluru", "groupType": 3},
            {"id": "c0c0c0c0", "title": "CC-100", "groupType": 4}
        ],
        "currentAddress": {"city": "Bengaluru", "countryCode": "IN"},
    })
}

#[tokio::test]
async fn a_full_record_is_normalized_field_by_field() {
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(EMPLOYEE, full_record());
    let Fetched::Worker(worker) = connector(hr.base_url())
        .fetch(EMPLOYEE, now())
        .await
        .unwrap()
    else {
        panic!("expected a worker");
    };
    assert_eq!(worker.key, WorkerKey::new("keka", EMPLOYEE));
    // The GUID (36 characters) cannot be the directory's employeeId: the employee number is.
    assert_eq!(worker.employee_id, "KEKA-0042");
    assert_eq!(worker.given_name, "Robert");
    assert_eq!(worker.family_name, "Smith");
    assert_eq!(worker.middle_name.as_deref(), Some("James"));
    assert_eq!(worker.preferred_name.as_deref(), Some("Bob"));
    assert_eq!(
        worker.work_email.as_deref(),
        Some("robert.smith@acme.example")
    );
    assert_eq!(worker.personal_email.as_deref(), Some("bob@home.example"));
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.hire_date, Some(date(2025, 2, 3)));
    assert_eq!(worker.termination_date, Some(date(2026, 6, 30)));
    assert_eq!(worker.termination_type.as_deref(), Some("resignation"));
    assert_eq!(worker.worker_type.as_deref(), Some("permanent"));
    assert_eq!(worker.job_title.as_deref(), Some("Platform Engineer"));
    assert_eq!(worker.division.as_deref(), Some("R&D"));
    assert_eq!(worker.department.as_deref(), Some("Engineering"));
    assert_eq!(worker.location.as_deref(), Some("Bengaluru"));
    assert_eq!(worker.cost_center.as_deref(), Some("CC-100"));
    assert_eq!(worker.country.as_deref(), Some("IN"));
    assert_eq!(worker.manager_id.as_deref(), Some(MANAGER));
    assert_eq!(worker.manager_key(), Some(WorkerKey::new("keka", MANAGER)));
    assert_eq!(
        worker.time_zone, None,
        "Keka's employee has no time-zone field"
    );
    assert_eq!(
        worker.custom.get("employee_number").map(String::as_str),
        Some("KEKA-0042")
    );
    assert_eq!(worker.as_of, now());

    // The token grant, then the documented read with the bearer token.
    let requests = hr.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/connect/token");
    let form = requests[0]
        .body
        .as_ref()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    for pair in [
        "grant_type=kekaapi",
        "scope=kekaapi",
        &format!("client_id={}", kk::CLIENT_ID),
        // The key's `+`, `/` and `=` are percent-encoded.
        "api_key=q8Vt0Lw%2B3Nf%2FXr2Ye5Hk1A%3D%3D",
    ] {
        assert!(
            form.split('&').any(|p| p == pair),
            "{pair} not in the token form"
        );
    }
    assert_eq!(requests[1].method, "GET");
    assert_eq!(
        requests[1].path,
        format!("/api/v1/hris/employees/{EMPLOYEE}")
    );
    assert_eq!(
        requests[1].authorization.as_deref(),
        Some(format!("Bearer {}", kk::ACCESS_TOKEN).as_str())
    );
}

#[tokio::test]
async fn a_relieved_employee_is_terminated_and_the_token_is_reused() {
    let hr = Emulator::start(kk::router).await;
    let mut record = kk::employee(ADA, "EMP001", "Ada", "Lovelace");
    record["employmentStatus"] = json!(1);
    record["exitDate"] = json!("2026-02-27T00:00:00");
    record["exitType"] = json!(2);
    hr.put_employee(ADA, record);
    let mut unset = kk::employee(ALAN, "EMP002", "Alan", "Turing");
    unset["employmentStatus"] = Value::Null;
    unset["exitDate"] = json!("2026-01-31T00:00:00");
    hr.put_employee(ALAN, unset);
    let connector = connector(hr.base_url());
    let Fetched::Worker(relieved) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    assert_eq!(relieved.status, Status::Terminated);
    assert_eq!(relieved.termination_date, Some(date(2026, 2, 27)));
    assert_eq!(relieved.termination_type.as_deref(), Some("company action"));
    let Fetched::Worker(past_exit) = connector.fetch(ALAN, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    assert_eq!(past_exit.status, Status::Terminated);
    let tokens = hr
        .requests()
        .iter()
        .filter(|r| r.path == "/connect/token")
        .count();
    assert_eq!(tokens, 1);
}

#[tokio::test]
async fn an_unknown_employee_is_gone() {
    let hr = Emulator::start(kk::router).await;
    let fetched = connector(hr.base_url())
        .fetch("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", now())
        .await
        .unwrap();
    assert_eq!(fetched, Fetched::Gone);
}

#[tokio::test]
async fn throttling_is_waited_out() {
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(ADA, kk::employee(ADA, "EMP001", "Ada", "Lovelace"));
    let connector = connector(hr.base_url());
    // Throttle the token request, then the read.
    hr.fail_next(1, 429, Some(1));
    let started = Instant::now();
    assert!(matches!(
        connector.fetch(ADA, now()).await.unwrap(),
        Fetched::Worker(_)
    ));
    assert!(started.elapsed() >= Duration::from_millis(900));
    hr.fail_next(1, 429, Some(1));
    let started = Instant::now();
    assert!(matches!(
        connector.fetch(ADA, now()).await.unwrap(),
        Fetched::Worker(_)
    ));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(hr.requests().len(), 5);
}

#[tokio::test]
async fn an_outage_is_a_retryable_error() {
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(ADA, kk::employee(ADA, "EMP001", "Ada", "Lovelace"));
    hr.fail_next(10, 503, None);
    let error = connector(hr.base_url())
        .fetch(ADA, now())
        .await
        .unwrap_err();
    assert!(error.retryable, "{error}");
}

#[tokio::test]
async fn a_wrong_credential_is_a_permanent_error() {
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(ADA, kk::employee(ADA, "EMP001", "Ada", "Lovelace"));
    let connector = build(&config(hr.base_url()), "wrong-secret");
    let error = connector.fetch(ADA, now()).await.unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("token endpoint"), "{error}");
    assert!(!error.message.contains("wrong-secret"));
}

#[tokio::test]
async fn a_record_that_cannot_be_acted_on_is_a_permanent_error_naming_the_field() {
    let hr = Emulator::start(kk::router).await;
    let mut record = kk::employee(ADA, "EMP001", "Ada", "Lovelace");
    record["joiningDate"] = Value::Null;
    hr.put_employee(ADA, record);
    let error = connector(hr.base_url())
        .fetch(ADA, now())
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("hire_date"), "{error}");
}

#[tokio::test]
async fn a_record_without_an_employee_number_is_a_permanent_error_saying_what_to_fix() {
    let hr = Emulator::start(kk::router).await;
    for number in [Value::Null, json!(""), json!("  ")] {
        let mut record = kk::employee(ADA, "EMP001", "Ada", "Lovelace");
        record["employeeNumber"] = number;
        hr.put_employee(ADA, record);
        let error = connector(hr.base_url())
            .fetch(ADA, now())
            .await
            .unwrap_err();
        assert!(!error.retryable, "{error}");
        for part in ["source keka", ADA, "employeeNumber", "employee_id_field"] {
            assert!(error.message.contains(part), "{part}: {error}");
        }
        assert!(!error.message.contains("Lovelace"), "{error}");
    }
}

#[tokio::test]
async fn an_employee_number_longer_than_the_directory_holds_is_a_permanent_error() {
    // Keka's own webhook sample carries a 19-digit employee number
    // (developers.keka.com/docs/getting-started-with-webhooks, EmployeeSalaryUpdated).
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(
        ADA,
        kk::employee(ADA, "1234567890098765432", "Ada", "Lovelace"),
    );
    let error = connector(hr.base_url())
        .fetch(ADA, now())
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error}");
    for part in ["source keka", ADA, "employeeNumber", "19 characters", "16"] {
        assert!(error.message.contains(part), "{part}: {error}");
    }
    // Sixteen characters fit.
    hr.put_employee(
        ADA,
        kk::employee(ADA, "1234567890098765", "Ada", "Lovelace"),
    );
    let Fetched::Worker(worker) = connector(hr.base_url()).fetch(ADA, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    assert_eq!(worker.employee_id, "1234567890098765");
    assert_eq!(worker.key, WorkerKey::new("keka", ADA));
}

#[tokio::test]
async fn an_employee_is_read_by_guid_only() {
    // Keka reads an employee by the GUID its webhooks name; an employee number is not an id
    // there. The emulator refuses it, and the refusal is an error, never "gone" (which would
    // end someone's account).
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(ADA, kk::employee(ADA, "EMP001", "Ada", "Lovelace"));
    let error = connector(hr.base_url())
        .fetch("EMP001", now())
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error}");
    assert!(error.message.contains("400"), "{error}");
}

#[tokio::test]
async fn past_keka_rate_limit_the_fetch_is_a_retryable_error() {
    // developers.keka.com/reference/rate-limit: 50 requests a minute, then 429.
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(ADA, kk::employee(ADA, "EMP001", "Ada", "Lovelace"));
    let connector = connector(hr.base_url());
    for _ in 0..kk::RATE_LIMIT_PER_MINUTE {
        assert!(matches!(
            connector.fetch(ADA, now()).await.unwrap(),
            Fetched::Worker(_)
        ));
    }
    let error = connector.fetch(ADA, now()).await.unwrap_err();
    assert!(error.retryable, "{error}");
    let throttled = hr.requests().len() - 1 - usize::try_from(kk::RATE_LIMIT_PER_MINUTE).unwrap();
    assert_eq!(throttled, 3, "max_attempts, each answered 429");
}

// ---------------------------------------------------------------- write-back

#[tokio::test]
async fn keka_does_not_write_back() {
    let hr = Emulator::start(kk::router).await;
    hr.put_employee(ADA, kk::employee(ADA, "EMP001", "Ada", "Lovelace"));
    let on = SourceConfig {
        writeback: Some(true),
        ..config(hr.base_url())
    };
    let connector = build(&on, kk::CLIENT_SECRET);
    assert!(!connector.writes_back());
    let Fetched::Worker(worker) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!("expected a worker");
    };
    let before = hr.requests().len();
    let identifiers = Identifiers {
        upn: "ada@corp.example".into(),
        mail: "ada@corp.example".into(),
    };
    let error = connector
        .write_back(&worker, &identifiers)
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(error.message.contains("no documented way"), "{error}");
    assert_eq!(hr.requests().len(), before);
    assert!(hr.written().is_empty());
}

#[tokio::test]
async fn an_id_a_url_would_resolve_away_is_refused_before_any_request() {
    let emu = Emulator::start(kk::router).await;
    let connector = connector(emu.base_url());
    common::unsafe_ids_are_refused_before_any_request(&connector, &emu, now()).await;
}

#[test]
fn an_employee_id_that_is_a_dot_segment_is_refused() {
    let headers = form_headers(None);
    for id in [".", "..", "1\u{1b}2"] {
        let body = form(id, "Employee added");
        let refused = offline().parse(&delivery(&headers, &body)).unwrap_err();
        assert!(
            refused.0.starts_with("employeeIndentifier "),
            "{id:?}: {refused}"
        );
    }
}

#[test]
fn an_employee_id_that_could_be_an_internal_key_is_refused() {
    let headers = form_headers(None);
    for id in ["#webhook", "a:b"] {
        let body = form(id, "Employee exit approved");
        let refused = offline().parse(&delivery(&headers, &body)).unwrap_err();
        assert!(
            refused.0.starts_with("employeeIndentifier "),
            "{id:?}: {refused}"
        );
    }
}
