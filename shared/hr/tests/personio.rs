//! The Personio connector against its documented webhook envelope and the API emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use hrsync_core::{Identifiers, Status, WorkerKey};
use hrsync_hr::api::RetryPolicy;
use hrsync_hr::personio::Personio;
use hrsync_hr::{Action, Connector, Delivery, Fetched, Setup, Unauthorized};
use hrsync_hr_emulators::Emulator;
use hrsync_hr_emulators::personio::{
    self, ACCESS_TOKEN, CLIENT_ID, CLIENT_SECRET, employment, person, put_employments,
    put_org_unit, rename_org_unit, set_custom_attribute, set_link_root, set_page_size,
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
        webhooks: hrsync_hr::Webhooks::Taken,
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
    let body = envelope("person.updated", json!({"id": "5005"}));
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
        json!({"id": "2306b77a-35fb-4b1d-8044-3b14f7f2ca65", "person_id": "5005"}),
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
    assert!(first.events[0].dedupe.ends_with("#5005"));
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
        ("person.created", json!({"id": "5005"}), Action::Fetch),
        ("person.updated", json!({"id": 5005}), Action::Fetch),
        ("person.deleted", json!({"id": "5005"}), Action::Deleted),
        (
            "employment.created",
            json!({"id": "2306b77a-35fb-4b1d-8044-3b14f7f2ca65", "person_id": "5005"}),
            Action::Fetch,
        ),
        (
            "employment.updated",
            json!({"id": "2306b77a-35fb-4b1d-8044-3b14f7f2ca65", "person": {"id": "5005"}}),
            Action::Fetch,
        ),
        (
            "employment.deleted",
            json!({"id": "2306b77a-35fb-4b1d-8044-3b14f7f2ca65", "person_id": "5005"}),
            Action::Deleted,
        ),
        (
            "employment.started",
            json!({"id": "2306b77a-35fb-4b1d-8044-3b14f7f2ca65", "person_id": 5005}),
            Action::Fetch,
        ),
        (
            "employment.terminated",
            json!({"id": "2306b77a-35fb-4b1d-8044-3b14f7f2ca65", "person_id": "5005"}),
            Action::Fetch,
        ),
    ];
    for (name, payload, action) in cases {
        let body = envelope(name, payload);
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert_eq!(parsed.events.len(), 1, "{name}");
        let event = &parsed.events[0];
        assert_eq!(event.employee_id, "5005", "{name}");
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
        let body = envelope(name, json!({"id": "x-1", "person_id": "5005"}));
        let parsed = connector.parse(&delivery(&headers, &body)).unwrap();
        assert!(parsed.events.is_empty(), "{name}");
        assert!(parsed.refused.is_empty(), "{name}");
    }
}

#[test]
fn an_employment_event_does_not_take_the_employment_id_for_the_person() {
    let headers = headers(Some(TOKEN));
    let body = envelope(
        "employment.updated",
        json!({"id": "2306b77a-35fb-4b1d-8044-3b14f7f2ca65"}),
    );
    let error = offline().parse(&delivery(&headers, &body)).unwrap_err();
    assert!(error.0.contains("no person id"), "{}", error.0);
}

#[test]
fn a_key_given_twice_is_refused() {
    let headers = headers(Some(TOKEN));
    let body = br#"{"event_name": "person.updated", "event_name": "person.deleted", "payload": {"id": "5005"}}"#;
    let refused = offline().parse(&delivery(&headers, body)).unwrap_err();
    assert!(refused.0.contains("the key event_name twice"), "{refused}");
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

/// Personio's example ids: person ids are short digit strings, employment ids UUIDs, org unit
/// ids int64s (see the emulator's sources).
const ADA: &str = "5005";
const CHARLES: &str = "5004";
const CURRENT: &str = "2306b77a-35fb-4b1d-8044-3b14f7f2ca65";
const MATHEMATICS: &str = "1463281";
const ENGINES: &str = "2240611";

/// Person 5005 with three employments, most recent first: a cancelled future contract, the
/// current one (in department Mathematics and team Analytical Engines), and an old one.
async fn emulator_with_ada() -> Emulator {
    let emu = Emulator::start(personio::router).await;
    let mut ada = person(ADA, "Augusta Ada", "King", "ada@old.example");
    ada["preferred_name"] = json!("Ada");
    emu.put_employee(ADA, ada);
    emu.put_employee(
        CHARLES,
        person(CHARLES, "Charles", "Babbage", "cb@old.example"),
    );
    let mut current = employment(CURRENT, ADA, "ACTIVE", "2024-03-01");
    current["position"] = json!({"title": "Analyst"});
    current["supervisor"] = json!({"id": CHARLES});
    current["office"] = json!({"id": "88213"});
    current["legal_entity"] = json!({"id": "31152"});
    current["org_units"] = json!([
        {"id": MATHEMATICS, "type": "department"},
        {"id": ENGINES, "type": "team"},
    ]);
    current["cost_centers"] = json!([{"id": "70012", "name": "R&D", "weight": 100}]);
    current["termination"]["termination_date"] = json!("2026-12-31");
    current["termination"]["type"] = json!("RESIGNATION");
    put_employments(
        &emu,
        ADA,
        vec![
            employment(
                "0825e977-b879-4106-a73e-3d9aedad733d",
                ADA,
                "INACTIVE",
                "2026-09-01",
            ),
            current,
            employment(
                "7c0f3a4e-2b1d-4e5f-9a8b-6c7d8e9f0a1b",
                ADA,
                "INACTIVE",
                "2019-01-01",
            ),
        ],
    );
    put_org_unit(&emu, MATHEMATICS, "department", "Mathematics");
    put_org_unit(&emu, ENGINES, "team", "Analytical Engines");
    emu
}

fn paths(emu: &Emulator) -> Vec<String> {
    emu.requests().into_iter().map(|r| r.path).collect()
}

fn org_unit_reads(emu: &Emulator) -> Vec<String> {
    paths(emu)
        .into_iter()
        .filter(|p| p.starts_with("/v2/org-units"))
        .collect()
}

#[tokio::test]
async fn a_full_record_is_normalized_field_by_field() {
    let emu = emulator_with_ada().await;
    set_page_size(&emu, 1);
    let connector = connector(emu.base_url());
    let Fetched::Worker(worker) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!("person 5005 not found");
    };
    assert_eq!(worker.key, WorkerKey::new("personio", ADA));
    assert_eq!(worker.employee_id, ADA);
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
    assert_eq!(
        worker.custom.get("team").map(String::as_str),
        Some("Analytical Engines")
    );
    // Personio gives the office and the legal entity as ids only.
    assert_eq!(worker.location, None);
    assert_eq!(worker.company, None);
    assert_eq!(worker.cost_center.as_deref(), Some("R&D"));
    assert_eq!(worker.manager_id.as_deref(), Some(CHARLES));
    assert_eq!(
        worker.manager_key(),
        Some(WorkerKey::new("personio", CHARLES))
    );
    assert_eq!(worker.time_zone, None);
    assert_eq!(worker.as_of, now());

    // The token was fetched once with the documented form, then bearer calls; the second
    // page was followed (page size 1), the third was not needed; each org unit was read with
    // its type.
    let requests = emu.requests();
    let token = &requests[0];
    assert_eq!(token.method, "POST");
    assert_eq!(token.path, "/v2/auth/token");
    let form = token.body.as_ref().unwrap().as_str().unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains(&format!("client_id={CLIENT_ID}")), "{form}");
    assert_eq!(
        paths(&emu),
        [
            "/v2/auth/token".to_owned(),
            format!("/v2/persons/{ADA}"),
            format!("/v2/persons/{ADA}/employments?limit=50"),
            format!("/v2/persons/{ADA}/employments?limit=1&cursor=cur_1"),
            format!("/v2/org-units/{MATHEMATICS}?type=department"),
            format!("/v2/org-units/{ENGINES}?type=team"),
        ]
    );
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.authorization == Some(format!("Bearer {ACCESS_TOKEN}")))
    );
}

#[tokio::test]
async fn org_units_are_read_once_then_again_when_the_cache_expires() {
    let emu = emulator_with_ada().await;
    let connector = connector(emu.base_url());
    connector.fetch(ADA, now()).await.unwrap();
    connector.fetch(ADA, now()).await.unwrap();
    assert_eq!(
        org_unit_reads(&emu).len(),
        2,
        "one read per unit while cached"
    );

    // A renamed department shows once the cached name expires.
    rename_org_unit(&emu, MATHEMATICS, "Pure Mathematics");
    let connector = connector.with_org_unit_ttl(Duration::from_millis(50));
    let Fetched::Worker(cached) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!()
    };
    assert_eq!(cached.department.as_deref(), Some("Mathematics"));
    tokio::time::sleep(Duration::from_millis(80)).await;
    let Fetched::Worker(renamed) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!()
    };
    assert_eq!(renamed.department.as_deref(), Some("Pure Mathematics"));
    assert_eq!(org_unit_reads(&emu).len(), 4);
}

/// Ada's current employment naming `org_units`, and the error her fetch ends in.
async fn fetch_with_org_units(org_units: Value) -> (Emulator, hrsync_hr::HrError) {
    let emu = emulator_with_ada().await;
    let mut employments: Vec<Value> = emu.state().tables["personio.employments"][ADA]
        .as_array()
        .unwrap()
        .clone();
    employments[1]["org_units"] = org_units;
    put_employments(&emu, ADA, employments);
    let error = connector(emu.base_url())
        .fetch(ADA, now())
        .await
        .unwrap_err();
    (emu, error)
}

#[tokio::test]
async fn an_org_unit_personio_does_not_have_fails_the_fetch_instead_of_emptying_the_department() {
    // An empty department would take away what department rules grant.
    let (_, error) = fetch_with_org_units(json!([{"id": "9999999", "type": "department"}])).await;
    assert!(!error.retryable, "{}", error.message);
    assert!(
        error.message.contains("department 9999999") && error.message.contains("source personio"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_org_unit_id_that_is_not_an_int64_is_a_permanent_error_naming_the_field() {
    let (emu, error) = fetch_with_org_units(json!([{"id": "d-7", "type": "department"}])).await;
    assert!(!error.retryable);
    assert!(
        error.message.contains("org_units[0].id") && error.message.contains("int64"),
        "{}",
        error.message
    );
    assert!(
        org_unit_reads(&emu).is_empty(),
        "nothing Personio would refuse is sent"
    );
}

#[tokio::test]
async fn without_a_current_employment_the_most_recent_one_decides() {
    let emu = Emulator::start(personio::router).await;
    emu.put_employee("7007", person("7007", "Grace", "Hopper", "gh@old.example"));
    let mut ended = employment(
        "5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "7007",
        "INACTIVE",
        "2020-05-01",
    );
    ended["termination"]["termination_date"] = json!("2026-04-30");
    ended["org_units"] = json!([{"id": "1100", "type": "department"}]);
    put_org_unit(&emu, "1100", "department", "Navy");
    put_employments(
        &emu,
        "7007",
        vec![
            ended,
            employment(
                "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                "7007",
                "INACTIVE",
                "2010-01-01",
            ),
        ],
    );
    set_page_size(&emu, 1);
    let Fetched::Worker(worker) = connector(emu.base_url())
        .fetch("7007", now())
        .await
        .unwrap()
    else {
        panic!("person 7007 not found");
    };
    assert_eq!(worker.status, Status::Terminated);
    assert_eq!(worker.hire_date, Some(date(2020, 5, 1)));
    assert_eq!(worker.termination_date, Some(date(2026, 4, 30)));
    assert_eq!(worker.department.as_deref(), Some("Navy"));
    assert_eq!(worker.custom.get("team"), None);
}

#[tokio::test]
async fn onboarding_is_active_and_leave_is_leave() {
    let emu = Emulator::start(personio::router).await;
    emu.put_employee(
        "8008",
        person("8008", "Mary", "Somerville", "ms@old.example"),
    );
    put_employments(
        &emu,
        "8008",
        vec![employment(
            "9b8a7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
            "8008",
            "ONBOARDING",
            "2026-07-01",
        )],
    );
    emu.put_employee("9009", person("9009", "Emmy", "Noether", "en@old.example"));
    put_employments(
        &emu,
        "9009",
        vec![employment(
            "1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a",
            "9009",
            "LEAVE",
            "2021-01-01",
        )],
    );
    let connector = connector(emu.base_url());
    let Fetched::Worker(mary) = connector.fetch("8008", now()).await.unwrap() else {
        panic!()
    };
    assert_eq!(mary.status, Status::Active);
    assert_eq!(mary.hire_date, Some(date(2026, 7, 1)));
    let Fetched::Worker(emmy) = connector.fetch("9009", now()).await.unwrap() else {
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
    emu.put_employee("5050", person("5050", "Alan", "Turing", "at@old.example"));
    let error = connector(emu.base_url())
        .fetch("5050", now())
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
    connector.fetch(ADA, now()).await.unwrap();
    emu.fail_next(1, 429, Some(1));
    let started = Instant::now();
    let fetched = connector.fetch(ADA, now()).await.unwrap();
    assert!(matches!(fetched, Fetched::Worker(_)));
    assert!(started.elapsed() >= Duration::from_millis(900));
    let persons = emu
        .requests()
        .iter()
        .filter(|r| r.path == format!("/v2/persons/{ADA}"))
        .count();
    assert_eq!(persons, 3, "the throttled call was sent again");
}

#[tokio::test]
async fn an_api_that_stays_unavailable_is_a_retryable_error() {
    let emu = emulator_with_ada().await;
    emu.fail_next(10, 503, None);
    let error = connector(emu.base_url())
        .fetch(ADA, now())
        .await
        .unwrap_err();
    assert!(error.retryable, "{}", error.message);
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_permanent_error() {
    let emu = emulator_with_ada().await;
    let connector = build(&config(emu.base_url()), "not-the-secret");
    let error = connector.fetch(ADA, now()).await.unwrap_err();
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
    emu.put_employee("3003", person("3003", "Ida", "Rhodes", "ir@old.example"));
    put_employments(
        &emu,
        "3003",
        vec![
            employment(
                "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
                "3003",
                "INACTIVE",
                "2022-01-01",
            ),
            employment(
                "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f",
                "3003",
                "ACTIVE",
                "2020-01-01",
            ),
        ],
    );
    set_page_size(&emu, 1);
    set_link_root(&emu, "https://elsewhere.example");
    let error = connector(emu.base_url())
        .fetch("3003", now())
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(
        error.message.contains("not under base_url"),
        "{}",
        error.message
    );
}

// --- employee id ------------------------------------------------------------------------

fn with_field(base_url: &str, field: &str) -> Personio {
    let config = SourceConfig {
        employee_id_field: Some(field.into()),
        ..config(base_url)
    };
    build(&config, CLIENT_SECRET)
}

/// Ada with her employee number in a custom attribute (`dynamic_87231`, global id
/// `employee_number`).
async fn emulator_with_an_employee_number(number: Option<&str>) -> Emulator {
    let emu = emulator_with_ada().await;
    let mut ada = emu.state().employees[ADA].clone();
    set_custom_attribute(
        &mut ada,
        "dynamic_87231",
        "employee_number",
        "Employee number",
        "",
    );
    ada["custom_attributes"][0]["value"] = number.map_or(Value::Null, |n| json!(n));
    emu.put_employee(ADA, ada);
    emu
}

#[tokio::test]
async fn the_employee_id_may_come_from_a_custom_attribute_by_id_or_global_id() {
    let emu = emulator_with_an_employee_number(Some("E-1042")).await;
    for field in [
        "custom_attributes.dynamic_87231",
        "custom_attributes.employee_number",
    ] {
        let Fetched::Worker(worker) = with_field(emu.base_url(), field)
            .fetch(ADA, now())
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(worker.employee_id, "E-1042", "{field}");
        assert_eq!(worker.key, WorkerKey::new("personio", ADA), "{field}");
    }
}

#[tokio::test]
async fn a_missing_employee_id_is_a_permanent_error_naming_source_field_and_person() {
    let emu = emulator_with_an_employee_number(None).await;
    let error = with_field(emu.base_url(), "custom_attributes.employee_number")
        .fetch(ADA, now())
        .await
        .unwrap_err();
    assert!(!error.retryable);
    for part in [
        "source personio",
        "person 5005",
        "custom_attributes.employee_number",
        "employee_id_field",
    ] {
        assert!(error.message.contains(part), "{part}: {}", error.message);
    }
}

#[tokio::test]
async fn an_employee_id_over_16_characters_is_a_permanent_error_that_does_not_quote_it() {
    let emu = emulator_with_an_employee_number(Some("EMP-2024-000001042")).await;
    let error = with_field(emu.base_url(), "custom_attributes.employee_number")
        .fetch(ADA, now())
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert!(
        error.message.contains("18 characters")
            && error.message.contains("at most 16")
            && error.message.contains("person 5005"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("EMP-2024"), "{}", error.message);
}

#[test]
fn an_employee_id_field_personio_has_not_is_refused_at_setup() {
    let http = reqwest::Client::new();
    let config = SourceConfig {
        employee_id_field: Some("employee_number".into()),
        ..config("http://127.0.0.1:9")
    };
    let resolve = |_: &SecretRef| Ok("x".to_string());
    let error = Personio::new(Setup {
        name: "personio",
        config: &config,
        resolve: &resolve,
        http: &http,
        webhooks: hrsync_hr::Webhooks::Taken,
    })
    .unwrap_err();
    assert_eq!(error.key.as_deref(), Some("employee_id_field"));
    assert!(
        error
            .to_string()
            .contains("custom_attributes.<id or global_id>"),
        "{error}"
    );
}

// --- write-back ---------------------------------------------------------------------------

#[tokio::test]
async fn the_work_email_is_patched_onto_the_person() {
    let emu = emulator_with_ada().await;
    let connector = connector(emu.base_url());
    assert!(connector.writes_back());
    let Fetched::Worker(worker) = connector.fetch(ADA, now()).await.unwrap() else {
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
    assert_eq!(patch.path, format!("/v2/persons/{ADA}"));
    assert_eq!(patch.body, Some(json!({"email": "ada.king@corp.example"})));
    assert_eq!(
        emu.written(),
        vec![(ADA.to_string(), json!({"email": "ada.king@corp.example"}))]
    );
    let Fetched::Worker(again) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!()
    };
    assert_eq!(again.work_email.as_deref(), Some("ada.king@corp.example"));
}

#[tokio::test]
async fn write_back_goes_to_the_person_id_when_the_employee_id_is_a_custom_attribute() {
    let emu = emulator_with_an_employee_number(Some("E-1042")).await;
    let connector = with_field(emu.base_url(), "custom_attributes.employee_number");
    let Fetched::Worker(worker) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!()
    };
    let identifiers = Identifiers {
        upn: "ada.king@corp.example".into(),
        mail: "ada.king@corp.example".into(),
    };
    connector.write_back(&worker, &identifiers).await.unwrap();
    assert_eq!(
        emu.written(),
        vec![(ADA.to_string(), json!({"email": "ada.king@corp.example"}))]
    );
}

#[tokio::test]
async fn an_email_another_person_holds_is_refused_as_personio_refuses_it() {
    let emu = emulator_with_ada().await;
    let connector = connector(emu.base_url());
    let Fetched::Worker(worker) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!()
    };
    let identifiers = Identifiers {
        upn: "cb@old.example".into(),
        mail: "cb@old.example".into(),
    };
    let error = connector
        .write_back(&worker, &identifiers)
        .await
        .unwrap_err();
    assert!(!error.retryable);
    assert_eq!(error.status, Some(400), "{}", error.message);
    assert!(emu.written().is_empty());
}

#[tokio::test]
async fn write_back_to_a_deleted_person_is_a_permanent_error() {
    let emu = emulator_with_ada().await;
    let connector = connector(emu.base_url());
    let Fetched::Worker(worker) = connector.fetch(ADA, now()).await.unwrap() else {
        panic!()
    };
    emu.remove_employee(ADA);
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

// --- the emulator is as strict as Personio ------------------------------------------------

/// A bearer call straight to the emulator: (status, content type, body).
async fn call(
    emu: &Emulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    let http = reqwest::Client::new();
    let mut request = http
        .request(method, format!("{}{path}", emu.base_url()))
        .bearer_auth(ACCESS_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, media, body)
}

#[tokio::test]
async fn the_emulator_refuses_an_org_unit_request_without_its_type_or_with_another() {
    let emu = emulator_with_ada().await;
    let get = reqwest::Method::GET;
    let (status, media, body) = call(
        &emu,
        get.clone(),
        &format!("/v2/org-units/{MATHEMATICS}"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(media, "application/problem+json");
    let detail = body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("type is required"), "{body}");
    assert!(body["personio_trace_id"].is_string(), "{body}");
    let wrong = format!("/v2/org-units/{MATHEMATICS}?type=team");
    assert_eq!(call(&emu, get.clone(), &wrong, None).await.0, 404);
    let unknown_type = format!("/v2/org-units/{MATHEMATICS}?type=office");
    assert_eq!(call(&emu, get.clone(), &unknown_type, None).await.0, 400);
    assert_eq!(
        call(&emu, get.clone(), "/v2/org-units/d-7?type=department", None)
            .await
            .0,
        400
    );
    let right = format!("/v2/org-units/{MATHEMATICS}?type=department");
    let (status, _, unit) = call(&emu, get, &right, None).await;
    assert_eq!(status, 200);
    assert_eq!(unit["name"], "Mathematics");
}

#[tokio::test]
async fn the_emulator_enforces_page_limits_filters_auth_and_writable_attributes() {
    let emu = emulator_with_ada().await;
    let get = reqwest::Method::GET;
    let employments = format!("/v2/persons/{ADA}/employments");
    for refused in ["?limit=0", "?limit=51", "?cursor=after-1", "?id.invalid=x"] {
        let (status, _, _) =
            call(&emu, get.clone(), &format!("{employments}{refused}"), None).await;
        assert_eq!(status, 400, "{refused}");
    }
    let (status, _, page) = call(&emu, get.clone(), &employments, None).await;
    assert_eq!(status, 200);
    assert_eq!(page["_data"].as_array().unwrap().len(), 3);
    assert_eq!(
        call(&emu, get.clone(), "/v2/persons/404/employments", None)
            .await
            .0,
        404
    );
    assert_eq!(call(&emu, get, "/v2/persons?limit=51", None).await.0, 400);

    let anonymous = reqwest::get(format!("{}/v2/persons/{ADA}", emu.base_url()))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    let patch = reqwest::Method::PATCH;
    let person = format!("/v2/persons/{ADA}");
    assert_eq!(
        call(
            &emu,
            patch.clone(),
            &person,
            Some(json!({"work_email": "a@corp.example"}))
        )
        .await
        .0,
        400,
        "not a documented attribute"
    );
    assert_eq!(
        call(
            &emu,
            patch,
            &person,
            Some(json!({"email": "a@corp.example"}))
        )
        .await
        .0,
        204
    );
}

#[tokio::test]
async fn the_emulator_token_endpoint_takes_only_the_documented_form() {
    let emu = Emulator::start(personio::router).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v2/auth/token", emu.base_url());
    let json_body = http
        .post(&url)
        .json(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_body.status().as_u16(),
        400,
        "the form media type is required"
    );
    let wrong = http
        .post(&url)
        .form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", "x"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
    let right = http
        .post(&url)
        .form(&[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);
    let token: Value = right.json().await.unwrap();
    assert_eq!(token["access_token"], ACCESS_TOKEN);
}

#[tokio::test]
async fn an_id_a_url_would_resolve_away_is_refused_before_any_request() {
    let emu = Emulator::start(personio::router).await;
    let connector = connector(emu.base_url());
    common::unsafe_ids_are_refused_before_any_request(&connector, &emu, now()).await;
}

#[test]
fn a_person_id_that_is_a_dot_segment_is_refused() {
    let headers = headers(Some(TOKEN));
    for id in [".", "..", "1\u{0}2"] {
        let body = serde_json::to_vec(
            &json!({"event_name": "person.updated", "payload": {"person_id": id}}),
        )
        .unwrap();
        let refused = offline().parse(&delivery(&headers, &body)).unwrap_err();
        assert!(refused.0.contains("person id"), "{id:?}: {refused}");
        assert!(
            refused.0.contains("dot segment") || refused.0.contains("control"),
            "{id:?}: {refused}"
        );
    }
}

#[test]
fn a_person_id_that_could_be_an_internal_key_is_refused() {
    let headers = headers(Some(TOKEN));
    for id in ["#webhook", "a:b"] {
        let body = serde_json::to_vec(
            &json!({"event_name": "person.deleted", "payload": {"person_id": id}}),
        )
        .unwrap();
        let refused = offline().parse(&delivery(&headers, &body)).unwrap_err();
        assert!(
            refused.0.starts_with("the payload's person id "),
            "{id:?}: {refused}"
        );
    }
}
