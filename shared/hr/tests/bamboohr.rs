//! The BambooHR connector: webhook signatures, both webhook formats, and the API (read,
//! change feed, write-back) against the loopback emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use hrsync_core::{Identifiers, Status, Worker, WorkerKey};
use hrsync_hr::api::RetryPolicy;
use hrsync_hr::bamboohr::{BambooHr, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use hrsync_hr::{Action, Connector, Delivery, Fetched, Parsed, Setup};
use hrsync_hr_emulators::{Emulator, bamboohr};
use http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};

const SECRET: &str = "secret";
const TIMESTAMP: &str = "2026-01-31T18:42:00+0000";

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn now() -> Timestamp {
    "2026-02-01T09:00:00Z".parse().unwrap()
}

/// The source's config: `base_url`, the API key and the webhook secret.
fn config(base_url: &str) -> SourceConfig {
    SourceConfig {
        base_url: Some(base_url.into()),
        api_key: Some(SecretRef::Env("K".into())),
        webhook_secret: Some(SecretRef::Env("W".into())),
        ..SourceConfig::of_kind(SourceKind::BambooHr)
    }
}

/// A connector built from `config` whose API key resolves to `key` (webhook secret:
/// [`SECRET`]).
fn build(config: &SourceConfig, key: &str) -> BambooHr {
    let http = reqwest::Client::new();
    let key = key.to_owned();
    let resolve = move |r: &SecretRef| match r {
        SecretRef::Env(n) if n == "K" => Ok(key.clone()),
        _ => Ok(SECRET.to_string()),
    };
    BambooHr::new(Setup {
        name: "bamboo",
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

/// A connector to `base_url` whose API key resolves to `key`.
fn connector_with(base_url: &str, key: &str, writeback: Option<bool>) -> BambooHr {
    let config = SourceConfig {
        writeback,
        ..config(base_url)
    };
    build(&config, key)
}

/// A connector whose directory employee id is the record's `field`.
fn connector_by(base_url: &str, field: &str) -> BambooHr {
    let config = SourceConfig {
        employee_id_field: Some(field.into()),
        ..config(base_url)
    };
    build(&config, bamboohr::API_KEY)
}

fn connector(base_url: &str) -> BambooHr {
    connector_with(base_url, bamboohr::API_KEY, None)
}

/// A connector for the pure parts (no API is called).
fn offline() -> BambooHr {
    connector("https://acme.bamboohr.com/api/v1")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

/// The headers BambooHR sends with `body` signed with `secret`.
fn signed(secret: &str, body: &[u8]) -> HeaderMap {
    let signature = sign(secret.as_bytes(), body, TIMESTAMP);
    headers(&[
        (TIMESTAMP_HEADER, TIMESTAMP),
        (SIGNATURE_HEADER, &signature),
        ("content-type", "application/json"),
    ])
}

/// A delivery arriving a minute after [`TIMESTAMP`].
fn delivery<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        headers,
        body,
        received_at: "2026-01-31T18:43:00Z".parse().unwrap(),
    }
}

fn parse(body: &[u8], content_type: &str) -> Parsed {
    let headers = headers(&[("content-type", content_type)]);
    offline().parse(&delivery(&headers, body)).unwrap()
}

fn parse_error(body: &[u8]) -> String {
    let headers = headers(&[("content-type", "application/json")]);
    offline().parse(&delivery(&headers, body)).unwrap_err().0
}

// ---------------------------------------------------------------- verification

#[test]
fn a_signed_delivery_passes() {
    let body = sample("bamboohr-webhook.json");
    // Computed independently:
    // (cat bamboohr-webhook.json; printf '%s' "$TIMESTAMP") | openssl dgst -sha256 -hmac secret
    let signature = "27e44efacd2c7534387a8f992fa4f1564b43d61c7fe94b1ed705de615cc040db";
    assert_eq!(sign(SECRET.as_bytes(), &body, TIMESTAMP), signature);
    let headers = headers(&[(TIMESTAMP_HEADER, TIMESTAMP), (SIGNATURE_HEADER, signature)]);
    assert_eq!(offline().verify(&delivery(&headers, &body)), Ok(()));
}

#[test]
fn a_body_altered_by_one_byte_is_refused() {
    let body = sample("bamboohr-webhook.json");
    let headers = signed(SECRET, &body);
    let mut altered = body.clone();
    let at = altered.iter().position(|b| *b == b'6').unwrap();
    altered[at] = b'7';
    let refused = offline().verify(&delivery(&headers, &altered)).unwrap_err();
    assert!(refused.0.contains("does not match"), "{refused}");
}

#[test]
fn the_timestamp_is_signed_too() {
    let body = sample("bamboohr-webhook.json");
    let mut headers = signed(SECRET, &body);
    headers.insert(
        TIMESTAMP_HEADER,
        HeaderValue::from_static("2026-01-31T18:43:00+0000"),
    );
    assert!(offline().verify(&delivery(&headers, &body)).is_err());
}

#[test]
fn a_wrong_secret_is_refused_without_telling_the_expected_signature() {
    let body = sample("bamboohr-webhook.json");
    let headers = signed("another-secret", &body);
    let refused = offline().verify(&delivery(&headers, &body)).unwrap_err();
    let expected = sign(SECRET.as_bytes(), &body, TIMESTAMP);
    assert!(!refused.0.contains(&expected), "{refused}");
    assert!(refused.0.contains(SIGNATURE_HEADER), "{refused}");
}

#[test]
fn missing_headers_are_refused_by_name() {
    let body = sample("bamboohr-webhook.json");
    let full = signed(SECRET, &body);
    for missing in [SIGNATURE_HEADER, TIMESTAMP_HEADER] {
        let mut headers = full.clone();
        headers.remove(missing);
        let refused = offline().verify(&delivery(&headers, &body)).unwrap_err();
        assert_eq!(refused.0, format!("missing the {missing} header"));
    }
}

#[test]
fn a_malformed_signature_is_refused() {
    let body = sample("bamboohr-webhook.json");
    for bad in ["", "sha256=abc", "zz", &"g".repeat(64)] {
        let headers = headers(&[(TIMESTAMP_HEADER, TIMESTAMP), (SIGNATURE_HEADER, bad)]);
        let refused = offline().verify(&delivery(&headers, &body)).unwrap_err();
        assert!(refused.0.contains("64 hex digits"), "{bad}: {refused}");
    }
}

/// A delivery of `body` signed with `timestamp`, arriving at `received_at`.
fn verify_at(
    body: &[u8],
    timestamp: &str,
    received_at: &str,
) -> Result<(), hrsync_hr::Unauthorized> {
    let signature = sign(SECRET.as_bytes(), body, timestamp);
    let headers = headers(&[
        (TIMESTAMP_HEADER, timestamp),
        (SIGNATURE_HEADER, &signature),
    ]);
    offline().verify(&Delivery {
        headers: &headers,
        body,
        received_at: received_at.parse().unwrap(),
    })
}

#[test]
fn a_delivery_older_than_bamboohrs_retries_is_refused() {
    // BambooHR retries a 5xx after 5, 10, 20, 40 and 80 minutes: 2 h 35 min in all.
    let body = sample("bamboohr-webhook.json");
    for timestamp in [TIMESTAMP, "1769884920"] {
        // 2026-01-31T18:42:00Z, in either form.
        assert_eq!(
            verify_at(&body, timestamp, "2026-01-31T21:20:00Z"),
            Ok(()),
            "{timestamp}"
        );
        let replay = verify_at(&body, timestamp, "2026-01-31T21:42:01Z").unwrap_err();
        assert!(
            replay.0.contains("more than 3 hours old"),
            "{timestamp}: {replay}"
        );
        let ahead = verify_at(&body, timestamp, "2026-01-31T18:36:59Z").unwrap_err();
        assert!(
            ahead.0.contains("more than 5 minutes ahead"),
            "{timestamp}: {ahead}"
        );
        assert_eq!(
            verify_at(&body, timestamp, "2026-01-31T18:38:00Z"),
            Ok(()),
            "{timestamp}"
        );
    }
}

#[test]
fn the_timestamp_must_be_unix_seconds_or_an_iso_date_time() {
    let body = sample("bamboohr-webhook.json");
    for bad in [
        "",
        "soon",
        "01769884920",
        "+1769884920",
        "1769884920.5",
        "31/01/2026 18:42",
        "026-01-31T18:42:00+0000",
    ] {
        let refused = verify_at(&body, bad, "2026-01-31T18:43:00Z").unwrap_err();
        assert!(
            refused.0.contains("Unix time in whole seconds"),
            "{bad:?}: {refused}"
        );
    }
}

#[test]
fn bytes_cannot_move_between_the_body_and_the_timestamp() {
    // The HMAC input is body ‖ timestamp, with no separator: the same bytes split
    // elsewhere must not pass. A form body may end in digits.
    let body = b"type=employee.deleted&data%5BemployeeId%5D=1230";
    let timestamp = "1769884920";
    let signature = sign(SECRET.as_bytes(), body, timestamp);
    let check = |body: &[u8], timestamp: &str| {
        let headers = headers(&[
            (TIMESTAMP_HEADER, timestamp),
            (SIGNATURE_HEADER, &signature),
        ]);
        offline().verify(&Delivery {
            headers: &headers,
            body,
            received_at: "2026-01-31T18:43:00Z".parse().unwrap(),
        })
    };
    assert_eq!(check(body, timestamp), Ok(()));
    // Employee 123 at "0" + the same time (a leading zero: the same number).
    assert!(check(&body[..body.len() - 1], "01769884920").is_err());
    // Employee 12301 at the time less its first digit (1973).
    let longer = [&body[..], b"1"].concat();
    assert!(check(&longer, &timestamp[1..]).is_err());
}

#[test]
fn a_replayed_delivery_passes_again_and_gives_the_same_dedupe_ids() {
    let connector = offline();
    for name in ["bamboohr-webhook.json", "bamboohr-webhook-fieldbased.json"] {
        let body = sample(name);
        let headers = signed(SECRET, &body);
        let first = delivery(&headers, &body);
        assert_eq!(connector.verify(&first), Ok(()));
        let first_ids: Vec<String> = connector
            .parse(&first)
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.dedupe)
            .collect();

        // The same bytes again, hours later (BambooHR's retry).
        let body_again = body.clone();
        let headers_again = signed(SECRET, &body_again);
        let replay = Delivery {
            headers: &headers_again,
            body: &body_again,
            received_at: "2026-01-31T21:00:00Z".parse().unwrap(),
        };
        assert_eq!(connector.verify(&replay), Ok(()));
        let replay_ids: Vec<String> = connector
            .parse(&replay)
            .unwrap()
            .events
            .into_iter()
            .map(|e| e.dedupe)
            .collect();
        assert!(!first_ids.is_empty());
        assert_eq!(first_ids, replay_ids, "{name}");
    }
}

// ---------------------------------------------------------------- parsing

#[test]
fn the_event_based_sample_asks_for_a_fetch() {
    let body = sample("bamboohr-webhook.json");
    let parsed = parse(&body, "application/json");
    assert!(!parsed.handshake);
    assert!(parsed.refused.is_empty());
    let [event] = parsed.events.as_slice() else {
        panic!("one event expected: {parsed:?}");
    };
    assert_eq!(event.employee_id, "67890");
    assert_eq!(event.event_type, "employee.updated");
    assert_eq!(event.action, Action::Fetch);
    let headers = HeaderMap::new();
    let digest = delivery(&headers, &body).digest();
    assert_eq!(event.dedupe, format!("{digest}#67890"));
    assert_eq!(event.operation, None);
}

fn event_body(kind: &str, employee_id: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": kind,
        "timestamp": "2026-01-31T18:42:00+0000",
        "data": {"companyId": "12345", "employeeId": employee_id, "changedFields": []}
    }))
    .unwrap()
}

#[test]
fn employee_created_and_deleted_events() {
    let created = parse(
        &event_body("employee.created", json!("7")),
        "application/json",
    );
    assert_eq!(created.events[0].action, Action::Fetch);
    assert_eq!(created.events[0].event_type, "employee.created");

    let deleted = parse(
        &event_body("employee.deleted", json!("7")),
        "application/json",
    );
    assert_eq!(deleted.events[0].action, Action::Deleted);
    assert_eq!(deleted.events[0].event_type, "employee.deleted");
    assert_eq!(deleted.events[0].employee_id, "7");

    // A numeric id is taken as text.
    let numeric = parse(
        &event_body("employee.updated", json!(7)),
        "application/json",
    );
    assert_eq!(numeric.events[0].employee_id, "7");
}

#[test]
fn company_events_are_taken_and_ignored() {
    for kind in [
        "company.updated",
        "company.deleted",
        "company-integrations.updated",
    ] {
        let body = serde_json::to_vec(&json!({
            "type": kind, "timestamp": "2026-01-31T18:42:00+0000", "data": {"companyId": "12345"}
        }))
        .unwrap();
        let parsed = parse(&body, "application/json");
        assert_eq!(parsed, Parsed::default(), "{kind}");
    }
}

#[test]
fn the_documented_form_encoding_is_read() {
    // documentation.bamboohr.com/docs/event-based-webhooks, "Form Post Format".
    let body = b"type=employee.deleted&data%5BcompanyId%5D=12345&data%5BemployeeId%5D=67890&data%5BchangedFields%5D%5B0%5D=firstName";
    let parsed = parse(body, "application/x-www-form-urlencoded");
    let [event] = parsed.events.as_slice() else {
        panic!("one event expected: {parsed:?}");
    };
    assert_eq!(event.employee_id, "67890");
    assert_eq!(event.event_type, "employee.deleted");
    assert_eq!(event.action, Action::Deleted);
}

#[test]
fn the_field_based_sample_asks_for_a_fetch() {
    let body = sample("bamboohr-webhook-fieldbased.json");
    let parsed = parse(&body, "application/json");
    let [event] = parsed.events.as_slice() else {
        panic!("one event expected: {parsed:?}");
    };
    assert_eq!(event.employee_id, "12345");
    assert_eq!(event.event_type, "employee_with_fields.updated");
    assert_eq!(event.action, Action::Fetch);
    let headers = HeaderMap::new();
    let digest = delivery(&headers, &body).digest();
    assert_eq!(event.dedupe, format!("{digest}#12345#0"));
}

#[test]
fn field_based_actions_and_an_employee_named_twice() {
    let body = serde_json::to_vec(&json!({"employees": [
        {"id": "1", "action": "Created", "timestamp": "t", "changedFields": [], "fields": {}},
        {"id": "2", "action": "Deleted", "timestamp": "t", "changedFields": [], "fields": {}},
        {"id": "1", "action": "Updated", "timestamp": "t", "changedFields": ["Job Title"],
         "fields": {"Job Title": "Engineer"}},
    ]}))
    .unwrap();
    let parsed = parse(&body, "application/json");
    let kinds: Vec<(&str, &str, &Action)> = parsed
        .events
        .iter()
        .map(|e| (e.employee_id.as_str(), e.event_type.as_str(), &e.action))
        .collect();
    assert_eq!(
        kinds,
        [
            ("1", "employee_with_fields.created", &Action::Fetch),
            ("2", "employee_with_fields.deleted", &Action::Deleted),
            ("1", "employee_with_fields.updated", &Action::Fetch),
        ]
    );
    assert_ne!(parsed.events[0].dedupe, parsed.events[2].dedupe);
}

#[test]
fn malformed_bodies_are_bad_payloads_naming_what_is_wrong() {
    assert!(parse_error(b"{not json").contains("not valid JSON"));
    assert!(parse_error(b"[1,2]").contains("expected an object"));
    assert!(parse_error(b"{}").contains("neither `type`"));
    assert_eq!(
        parse_error(&event_body("employee.updated", Value::Null)),
        "data.employeeId is missing"
    );
    assert_eq!(
        parse_error(&event_body("employee.updated", json!("  "))),
        "data.employeeId is empty"
    );
    assert_eq!(
        parse_error(br#"{"type":"employee.updated"}"#),
        "data is missing"
    );
    // The field-based values are personal data: never quoted.
    let no_id = br#"{"employees":[{"action":"Updated","fields":{"First Name":"Bryony"}}]}"#;
    let message = parse_error(no_id);
    assert_eq!(message, "employees[0].id is missing");
    assert!(!message.contains("Bryony"));
    assert_eq!(
        parse_error(br#"{"employees":[{"id":"3"}]}"#),
        "employees[0].action is missing"
    );
    assert!(parse_error(br#"{"employees":{"id":"3"}}"#).contains("expected an array"));
}

#[test]
fn a_key_given_twice_is_refused_in_json_and_in_a_form() {
    let json =
        br#"{"type": "employee.updated", "type": "employee.deleted", "data": {"employeeId": "7"}}"#;
    assert!(
        parse_error(json).contains("the key type twice"),
        "{}",
        parse_error(json)
    );
    let headers = headers(&[("content-type", "application/x-www-form-urlencoded")]);
    for form in [
        &b"type=employee.updated&data%5BemployeeId%5D=7&type=employee.deleted"[..],
        b"type=employee.deleted&data%5BemployeeId%5D=7&data%5BemployeeId%5D=8",
    ] {
        let refused = offline().parse(&delivery(&headers, form)).unwrap_err();
        assert!(refused.0.contains("twice"), "{refused}");
    }
}

#[test]
fn a_deeply_nested_form_key_is_refused_without_exhausting_the_stack() {
    // 5,000 nested brackets (35 KB) used to recurse once per bracket and abort the process.
    let key = format!("data{}", "%5Ba%5D".repeat(5_000));
    let body = format!("type=employee.updated&{key}=1");
    let headers = headers(&[("content-type", "application/x-www-form-urlencoded")]);
    let refused = offline()
        .parse(&delivery(&headers, body.as_bytes()))
        .unwrap_err();
    assert_eq!(
        refused.0,
        "a form key nests more than 8 levels deep (name[a][b]...); BambooHR's forms nest 3"
    );
    // The documented depth still reads.
    let parsed = parse(
        b"type=employee.updated&data%5BemployeeId%5D=7&data%5BchangedFields%5D%5B0%5D=firstName",
        "application/x-www-form-urlencoded",
    );
    assert_eq!(parsed.events[0].employee_id, "7");
}

// ---------------------------------------------------------------- fetch

fn full_record() -> Value {
    let mut record = bamboohr::employee("42", "Ada", "Lovelace");
    let fields = json!({
        "middleName": "Augusta",
        "preferredName": "Ada L.",
        "workEmail": "ada.lovelace@example.com",
        "homeEmail": "ada@home.example",
        "employmentHistoryStatus": "Contractor",
        "hireDate": "2025-11-03",
        "jobTitle": "Analyst",
        "department": "Engineering",
        "division": "R&D",
        "location": "London",
        "country": "United Kingdom",
        "supervisorEId": "7",
        "supervisorId": "E-0007",
    });
    for (name, value) in fields.as_object().unwrap() {
        record[name] = value.clone();
    }
    record
}

#[tokio::test]
async fn fetch_normalizes_a_full_record_field_by_field() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let connector = connector(emu.base_url());

    let Fetched::Worker(worker) = connector.fetch("42", now()).await.unwrap() else {
        panic!("a worker expected");
    };
    assert_eq!(worker.key, WorkerKey::new("bamboo", "42"));
    assert_eq!(worker.employee_id, "42");
    assert_eq!(worker.given_name, "Ada");
    assert_eq!(worker.family_name, "Lovelace");
    assert_eq!(worker.middle_name.as_deref(), Some("Augusta"));
    assert_eq!(worker.preferred_name.as_deref(), Some("Ada L."));
    assert_eq!(
        worker.work_email.as_deref(),
        Some("ada.lovelace@example.com")
    );
    assert_eq!(worker.personal_email.as_deref(), Some("ada@home.example"));
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.hire_date, Some(date(2025, 11, 3)));
    assert_eq!(worker.termination_date, None, "0000-00-00 is no date");
    assert_eq!(worker.termination_time, None);
    assert_eq!(worker.termination_type, None);
    assert_eq!(worker.worker_type.as_deref(), Some("Contractor"));
    assert_eq!(worker.job_title.as_deref(), Some("Analyst"));
    assert_eq!(worker.department.as_deref(), Some("Engineering"));
    assert_eq!(worker.division.as_deref(), Some("R&D"));
    assert_eq!(worker.location.as_deref(), Some("London"));
    assert_eq!(worker.country.as_deref(), Some("United Kingdom"));
    assert_eq!(worker.time_zone, None);
    assert_eq!(
        worker.manager_id.as_deref(),
        Some("7"),
        "supervisorEId, not supervisorId"
    );
    assert_eq!(
        worker.manager_key(),
        Some(WorkerKey::new("bamboo", "7")),
        "the manager resolves in the same source"
    );
    assert_eq!(worker.cost_center, None);
    assert_eq!(worker.company, None);
    assert!(worker.custom.is_empty());
    assert_eq!(worker.as_of, now());

    // One call, as documented: Basic auth with the key as user and `x`, the fields asked
    // for, future-dated values included. No table read without a termination date.
    let requests = emu.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert!(
        request.path.starts_with("/employees/42?fields="),
        "{}",
        request.path
    );
    assert!(request.path.contains("supervisorEId"), "{}", request.path);
    assert!(request.path.contains("terminationDate"), "{}", request.path);
    assert!(
        request.path.ends_with("&onlyCurrent=false"),
        "{}",
        request.path
    );
    assert_eq!(request.authorization.as_deref(), Some("Basic a2V5Ong=")); // key:x
}

#[tokio::test]
async fn inactive_with_a_termination_date_is_terminated_with_its_type() {
    let emu = Emulator::start(bamboohr::router).await;
    let mut record = full_record();
    record["status"] = json!("Inactive");
    record["terminationDate"] = json!("2026-01-30");
    record["employmentHistoryStatus"] = json!("Terminated");
    emu.put_employee("42", record);
    bamboohr::put_employment_status(
        &emu,
        "42",
        json!([
            {"id": "1", "employeeId": "42", "date": "2025-11-03", "employmentStatus": "Full-Time",
             "terminationTypeId": null, "terminationReasonId": null},
            {"id": "2", "employeeId": "42", "date": "2026-01-30", "employmentStatus": "Terminated",
             "terminationTypeId": "Voluntary", "terminationReasonId": "Resignation"},
        ]),
    );
    let Fetched::Worker(worker) = connector(emu.base_url()).fetch("42", now()).await.unwrap()
    else {
        panic!("a worker expected");
    };
    assert_eq!(worker.status, Status::Terminated);
    assert_eq!(worker.termination_date, Some(date(2026, 1, 30)));
    assert_eq!(worker.termination_type.as_deref(), Some("Voluntary"));
    let paths: Vec<String> = emu.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths[1], "/employees/42/tables/employmentStatus");
}

#[tokio::test]
async fn a_termination_type_the_api_user_cannot_read_is_left_empty() {
    let emu = Emulator::start(bamboohr::router).await;
    let mut record = full_record();
    record["status"] = json!("Inactive");
    record["terminationDate"] = json!("2026-01-30");
    emu.put_employee("42", record);
    bamboohr::put_employment_status(
        &emu,
        "42",
        json!([{"date": "2026-01-30", "employmentStatus": "Terminated", "terminationTypeId": "Voluntary"}]),
    );
    bamboohr::forbid_table(&emu, "employmentStatus");
    let Fetched::Worker(worker) = connector(emu.base_url()).fetch("42", now()).await.unwrap()
    else {
        panic!("a worker expected");
    };
    assert_eq!(worker.status, Status::Terminated);
    assert_eq!(worker.termination_type, None);
    assert_eq!(emu.requests().len(), 2, "the table was asked for");
}

#[tokio::test]
async fn inactive_without_a_termination_date_is_inactive() {
    let emu = Emulator::start(bamboohr::router).await;
    let mut record = bamboohr::employee("43", "Grace", "Hopper");
    record["status"] = json!("Inactive");
    record["hireDate"] = json!("0000-00-00");
    emu.put_employee("43", record);
    let Fetched::Worker(worker) = connector(emu.base_url()).fetch("43", now()).await.unwrap()
    else {
        panic!("a worker expected");
    };
    assert_eq!(worker.status, Status::Inactive);
    assert_eq!(worker.hire_date, None);
    assert_eq!(worker.termination_date, None);
}

#[tokio::test]
async fn an_active_worker_keeps_a_future_termination_date() {
    let emu = Emulator::start(bamboohr::router).await;
    let mut record = bamboohr::employee("44", "Alan", "Turing");
    record["terminationDate"] = json!("2026-06-30");
    emu.put_employee("44", record);
    let Fetched::Worker(worker) = connector(emu.base_url()).fetch("44", now()).await.unwrap()
    else {
        panic!("a worker expected");
    };
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.termination_date, Some(date(2026, 6, 30)));
    assert_eq!(worker.termination_type, None, "no table rows, no type");
}

#[tokio::test]
async fn an_unknown_employee_is_gone() {
    let emu = Emulator::start(bamboohr::router).await;
    let fetched = connector(emu.base_url()).fetch("999", now()).await.unwrap();
    assert_eq!(fetched, Fetched::Gone);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    emu.fail_next(1, 429, Some(1));
    let started = Instant::now();
    let fetched = connector(emu.base_url()).fetch("42", now()).await.unwrap();
    assert!(matches!(fetched, Fetched::Worker(_)));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    assert_eq!(emu.requests().len(), 2);
}

#[tokio::test]
async fn a_503_on_every_attempt_is_a_retryable_error() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    emu.fail_next(10, 503, None);
    let error = connector(emu.base_url())
        .fetch("42", now())
        .await
        .unwrap_err();
    assert!(error.retryable, "{error}");
    assert_eq!(emu.requests().len(), 3, "max_attempts");
}

#[tokio::test]
async fn a_wrong_api_key_is_a_permanent_error() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let connector = connector_with(emu.base_url(), "not-the-key", None);
    let error = connector.fetch("42", now()).await.unwrap_err();
    assert!(!error.retryable, "{error}");
    assert!(error.message.contains("401"), "{error}");
    assert!(
        !error.message.contains("not-the-key"),
        "no secret in errors"
    );
}

#[tokio::test]
async fn an_unusable_record_is_a_permanent_error_naming_the_field() {
    let emu = Emulator::start(bamboohr::router).await;
    let connector = connector(emu.base_url());
    let cases: [(&str, Value, &str); 4] = [
        ("lastName", Value::Null, "family_name (BambooHR lastName)"),
        ("hireDate", json!("31/01/2026"), "hireDate: is not a date"),
        (
            "status",
            json!("Suspended"),
            "status: is neither Active nor Inactive",
        ),
        ("status", Value::Null, "status: is missing"),
    ];
    for (field, value, expected) in cases {
        let mut record = bamboohr::employee("45", "Katherine", "Johnson");
        record[field] = value;
        emu.put_employee("45", record);
        let error = connector.fetch("45", now()).await.unwrap_err();
        assert!(!error.retryable, "{error}");
        assert!(error.message.contains(expected), "{field}: {error}");
        assert!(!error.message.contains("Katherine"), "{error}");
    }
    // Active without a hire date cannot be acted on either.
    let mut record = bamboohr::employee("45", "Katherine", "Johnson");
    record["hireDate"] = json!("0000-00-00");
    emu.put_employee("45", record);
    let error = connector.fetch("45", now()).await.unwrap_err();
    assert!(
        error.message.contains("hire_date (BambooHR hireDate)"),
        "{error}"
    );
}

// ---------------------------------------------------------------- change feed

#[tokio::test]
async fn the_first_poll_lists_nobody_and_starts_now() {
    let emu = Emulator::start(bamboohr::router).await;
    let changes = connector(emu.base_url())
        .changed_since(None, now())
        .await
        .unwrap();
    assert!(changes.employee_ids.is_empty());
    assert_eq!(changes.cursor, "2026-02-01T09:00:00Z");
    assert!(emu.requests().is_empty(), "no call needed");
}

#[tokio::test]
async fn a_poll_lists_the_changed_employees_and_moves_to_latest() {
    let emu = Emulator::start(bamboohr::router).await;
    // The documented response, replayed through the emulator's feed.
    let sample: Value = serde_json::from_slice(&sample("bamboohr-changed-employees.json")).unwrap();
    for (id, entry) in sample["employees"].as_object().unwrap() {
        bamboohr::record_change(
            &emu,
            id,
            entry["action"].as_str().unwrap(),
            entry["lastChanged"].as_str().unwrap(),
        );
    }
    bamboohr::record_change(&emu, "1", "Updated", "2025-12-31T23:59:59+00:00");
    let connector = connector(emu.base_url());

    let changes = connector
        .changed_since(Some("2026-01-01T00:00:00Z"), now())
        .await
        .unwrap();
    let mut ids = changes.employee_ids.clone();
    ids.sort();
    assert_eq!(
        ids,
        ["67001", "67890", "67891"],
        "deletions included; older excluded"
    );
    assert_eq!(changes.cursor, sample["latest"].as_str().unwrap());
    let request = emu.requests().pop().unwrap();
    assert_eq!(
        request.path,
        "/employees/changed?since=2026-01-01T00%3A00%3A00Z"
    );

    // The next poll from that cursor: nothing new, and the cursor stays where BambooHR's
    // `latest` says.
    let next = connector
        .changed_since(Some(&changes.cursor), now())
        .await
        .unwrap();
    assert!(next.employee_ids.is_empty(), "{next:?}");
    assert_eq!(next.cursor, changes.cursor);
}

#[tokio::test]
async fn the_first_cursor_is_in_the_form_bamboohr_documents_so_the_next_poll_is_taken() {
    // BambooHR answers 400 to a `since` it cannot read; the documented form is
    // `2013-10-20T19:20:30+01:00` (whole seconds). A clock reading has nanoseconds.
    let emu = Emulator::start(bamboohr::router).await;
    let connector = connector(emu.base_url());
    let now: Timestamp = "2026-02-01T09:00:00.123456789Z".parse().unwrap();
    let first = connector.changed_since(None, now).await.unwrap();
    assert_eq!(first.cursor, "2026-02-01T09:00:00Z");
    bamboohr::record_change(&emu, "67890", "Updated", "2026-02-01T09:00:01+00:00");
    let next = connector
        .changed_since(Some(&first.cursor), now)
        .await
        .unwrap();
    assert_eq!(next.employee_ids, ["67890"]);
    assert_eq!(next.cursor, "2026-02-01T09:00:01+00:00");
}

#[tokio::test]
async fn the_employee_number_can_be_the_directory_employee_id() {
    let emu = Emulator::start(bamboohr::router).await;
    let mut record = full_record();
    record["employeeNumber"] = json!("1042");
    emu.put_employee("42", record);
    let connector = connector_by(emu.base_url(), "employeeNumber");

    let Fetched::Worker(worker) = connector.fetch("42", now()).await.unwrap() else {
        panic!("a worker expected");
    };
    assert_eq!(worker.employee_id, "1042");
    assert_eq!(
        worker.key,
        WorkerKey::new("bamboo", "42"),
        "the key stays the id"
    );
    assert_eq!(
        worker.manager_id.as_deref(),
        Some("7"),
        "managers by id too"
    );
    let request = emu.requests().pop().unwrap();
    let fields = request
        .path
        .split_once("fields=")
        .and_then(|(_, rest)| rest.split('&').next())
        .unwrap()
        .to_owned();
    assert!(
        fields.split(',').any(|f| f == "employeeNumber"),
        "the configured field is asked for: {fields}"
    );

    // The work email goes back to the record, by its id.
    connector.write_back(&worker, &identifiers()).await.unwrap();
    assert_eq!(emu.written()[0].0, "42");
}

#[tokio::test]
async fn a_custom_field_alias_can_be_the_directory_employee_id() {
    let emu = Emulator::start(bamboohr::router).await;
    let mut record = full_record();
    record["customPayrollId"] = json!("PAY-7781");
    emu.put_employee("42", record);
    let Fetched::Worker(worker) = connector_by(emu.base_url(), "customPayrollId")
        .fetch("42", now())
        .await
        .unwrap()
    else {
        panic!("a worker expected");
    };
    assert_eq!(worker.employee_id, "PAY-7781");
}

#[tokio::test]
async fn a_missing_or_too_long_employee_number_is_a_permanent_error_saying_what_to_fix() {
    let emu = Emulator::start(bamboohr::router).await;
    let connector = connector_by(emu.base_url(), "employeeNumber");
    for (number, expected) in [
        (Value::Null, "has no employeeNumber"),
        (json!(" "), "has no employeeNumber"),
        (json!("EMP-2026-000001042"), "18 characters"),
    ] {
        let mut record = full_record();
        record["employeeNumber"] = number;
        emu.put_employee("42", record);
        let error = connector.fetch("42", now()).await.unwrap_err();
        assert!(!error.retryable, "{error}");
        for part in [
            "source bamboo",
            "employee 42",
            expected,
            "employee_id_field",
        ] {
            assert!(error.message.contains(part), "{part}: {error}");
        }
        assert!(!error.message.contains("Lovelace"), "{error}");
    }
}

#[tokio::test]
async fn a_field_bamboohr_does_not_have_is_named_in_the_error() {
    // BambooHR answers 406 to "references to nonexistent fields".
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let error = connector_by(emu.base_url(), "payrollNumber")
        .fetch("42", now())
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error}");
    for part in ["406", "payrollNumber", "employee_id_field"] {
        assert!(error.message.contains(part), "{part}: {error}");
    }
}

#[tokio::test]
async fn the_emulator_refuses_what_bamboohr_does_not_document() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", emu.base_url()))
            .basic_auth(bamboohr::API_KEY, Some("x"))
            .header("Accept", "application/json")
            .send()
    };
    for (path, status) in [
        ("/employees/42", 400),
        ("/employees/42?fields=firstName&onlyCurrent=0", 400),
        ("/employees/42?fields=firstName&limit=1", 400),
        ("/employees/42?fields=shoeSize", 406),
        ("/employees/E-42?fields=firstName", 404),
        ("/employees/changed", 400),
        ("/employees/changed?since=2026-01-01", 400),
        ("/employees/changed?since=2026-01-01T00:00:00.5Z", 400),
        (
            "/employees/changed?since=2026-01-01T00:00:00Z&type=moved",
            400,
        ),
        ("/employees/42/tables/shoes", 404),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.headers().contains_key(bamboohr::ERROR_HEADER),
            "{path}: the reason is in the header"
        );
    }
    let ok = get("/employees/42?fields=firstName,employeeNumber&onlyCurrent=false")
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.json::<Value>().await.unwrap(),
        json!({"id": "42", "firstName": "Ada", "employeeNumber": null})
    );
}

// ---------------------------------------------------------------- write-back

fn worker(id: &str) -> Worker {
    Worker::new(WorkerKey::new("bamboo", id), "Ada", "Lovelace", now())
}

fn identifiers() -> Identifiers {
    Identifiers {
        upn: "ada.lovelace@corp.example".into(),
        mail: "ada.lovelace@corp.example".into(),
    }
}

#[tokio::test]
async fn write_back_posts_the_work_email_and_the_record_changes() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let connector = connector(emu.base_url());
    assert!(connector.writes_back());

    connector
        .write_back(&worker("42"), &identifiers())
        .await
        .unwrap();

    assert_eq!(
        emu.written(),
        [(
            "42".to_string(),
            json!({"workEmail": "ada.lovelace@corp.example"})
        )]
    );
    let request = emu.requests().pop().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/employees/42");
    assert_eq!(
        request.body,
        Some(json!({"workEmail": "ada.lovelace@corp.example"}))
    );
    let Fetched::Worker(fetched) = connector.fetch("42", now()).await.unwrap() else {
        panic!("a worker expected");
    };
    assert_eq!(
        fetched.work_email.as_deref(),
        Some("ada.lovelace@corp.example")
    );
}

/// The writeback function is never given the webhook secrets: its connector reads only the
/// API key, writes back, and refuses every delivery.
#[tokio::test]
async fn a_connector_that_takes_no_webhooks_never_reads_the_webhook_secret() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let http = reqwest::Client::new();
    let read = std::sync::Mutex::new(Vec::new());
    let resolve = |r: &SecretRef| {
        read.lock().unwrap().push(r.clone());
        match r {
            SecretRef::Env(n) if n == "K" => Ok(bamboohr::API_KEY.to_owned()),
            other => Err(format!("{other:?} is not this function's to read")),
        }
    };
    let connector = BambooHr::new(Setup {
        name: "bamboo",
        config: &config(emu.base_url()),
        resolve: &resolve,
        http: &http,
        webhooks: hrsync_hr::Webhooks::NotTaken,
    })
    .expect("built without the webhook secret");
    assert_eq!(*read.lock().unwrap(), [SecretRef::Env("K".into())]);

    connector
        .write_back(&worker("42"), &identifiers())
        .await
        .unwrap();
    assert_eq!(emu.written().len(), 1);

    let body = sample("bamboohr-webhook.json");
    let headers = signed(SECRET, &body);
    let refused = connector.verify(&delivery(&headers, &body)).unwrap_err();
    assert!(refused.0.contains("takes no webhooks"), "{refused}");
}

#[tokio::test]
async fn a_403_on_write_back_says_the_user_cannot_edit_work_email() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    emu.fail_next(1, 403, None);
    let error = connector(emu.base_url())
        .write_back(&worker("42"), &identifiers())
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error}");
    assert!(error.message.contains("may not edit Work Email"), "{error}");
    assert!(emu.written().is_empty());
}

#[tokio::test]
async fn a_work_email_another_employee_has_is_refused_by_name() {
    // BambooHR answers 409 to a duplicate email.
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let mut other = bamboohr::employee("43", "Ada", "Byron");
    other["workEmail"] = json!("ada.lovelace@corp.example");
    emu.put_employee("43", other);
    let error = connector(emu.base_url())
        .write_back(&worker("42"), &identifiers())
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error}");
    assert!(error.message.contains("409"), "{error}");
    assert!(
        error.message.contains("another BambooHR employee"),
        "{error}"
    );
    assert!(emu.written().is_empty());
}

#[tokio::test]
async fn write_back_to_an_unknown_employee_is_permanent() {
    let emu = Emulator::start(bamboohr::router).await;
    let error = connector(emu.base_url())
        .write_back(&worker("404"), &identifiers())
        .await
        .unwrap_err();
    assert!(!error.retryable, "{error}");
    assert!(error.message.contains("404"), "{error}");
}

#[tokio::test]
async fn write_back_can_be_turned_off() {
    let emu = Emulator::start(bamboohr::router).await;
    emu.put_employee("42", full_record());
    let connector = connector_with(emu.base_url(), bamboohr::API_KEY, Some(false));
    assert!(!connector.writes_back());
    assert!(
        connector
            .write_back(&worker("42"), &identifiers())
            .await
            .is_err()
    );
    assert!(emu.requests().is_empty());
}

// ---------------------------------------------------------------- setup

#[test]
fn setup_needs_the_api_key_the_webhook_secret_and_the_base_url() {
    let http = reqwest::Client::new();
    let resolve = |_: &SecretRef| Ok("value".to_string());
    let full = SourceConfig {
        base_url: Some("https://acme.bamboohr.com/api/v1".into()),
        api_key: Some(SecretRef::Env("K".into())),
        webhook_secret: Some(SecretRef::Env("W".into())),
        ..SourceConfig::of_kind(SourceKind::BambooHr)
    };
    let build = |config: &SourceConfig| {
        BambooHr::new(Setup {
            name: "bamboo",
            config,
            resolve: &resolve,
            http: &http,
            webhooks: hrsync_hr::Webhooks::Taken,
        })
        .map(|_| ())
        .map_err(|e| e.key.unwrap_or_default())
    };
    assert_eq!(build(&full), Ok(()));
    let cases = [
        (
            SourceConfig {
                api_key: None,
                ..full.clone()
            },
            "api_key",
        ),
        (
            SourceConfig {
                webhook_secret: None,
                ..full.clone()
            },
            "webhook_secret",
        ),
        (
            SourceConfig {
                base_url: None,
                ..full.clone()
            },
            "base_url",
        ),
        (
            SourceConfig {
                base_url: Some("acme.bamboohr.com".into()),
                ..full.clone()
            },
            "base_url",
        ),
    ];
    for (config, key) in cases {
        assert_eq!(build(&config), Err(key.to_string()));
    }
}

#[tokio::test]
async fn an_id_a_url_would_resolve_away_is_refused_before_any_request() {
    let emu = Emulator::start(bamboohr::router).await;
    let connector = connector_with(emu.base_url(), bamboohr::API_KEY, Some(true));
    common::unsafe_ids_are_refused_before_any_request(&connector, &emu, now()).await;
}

#[test]
fn an_employee_id_that_is_a_dot_segment_or_has_control_characters_is_refused() {
    for id in [".", "..", "4\u{1}2"] {
        let message = parse_error(&event_body("employee.updated", json!(id)));
        assert!(message.starts_with("data.employeeId "), "{id:?}: {message}");
        assert!(!message.contains('\u{1}'), "{id:?}: {message}");
    }
    let field_based = br#"{"employees":[{"id":"..","action":"Updated"}]}"#;
    assert!(parse_error(field_based).starts_with("employees[0].id is a dot segment"));
}

#[test]
fn an_employee_id_that_could_be_an_internal_key_is_refused() {
    // `<source>:#webhook` is where refused deliveries are audited.
    for id in ["#webhook", "#x", "a:b"] {
        let message = parse_error(&event_body("employee.deleted", json!(id)));
        assert!(message.starts_with("data.employeeId "), "{id:?}: {message}");
    }
}
