//! The SCIM bulk connector against Entra's documented API-driven provisioning payload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use hrsync_core::{Identifiers, Status, Worker, WorkerKey};
use hrsync_hr::scim::{MAX_OPERATIONS, Scim};
use hrsync_hr::{Action, Connector, Delivery, Parsed, Setup, Unauthorized};
use http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};

const TOKEN: &str = "scim-bearer-token-91f2";
const SAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/samples/entra-scim-bulk.json"
));
const EXTENSION: &str = "urn:ietf:params:scim:schemas:extension:hrsync:1.0:User";

fn now() -> Timestamp {
    "2026-06-01T09:00:00Z".parse().unwrap()
}

fn scim() -> Scim {
    let config = SourceConfig {
        webhook_secret: Some(SecretRef::Env("W".into())),
        ..SourceConfig::of_kind(SourceKind::Scim)
    };
    let http = reqwest::Client::new();
    let resolve = |_: &SecretRef| Ok(TOKEN.to_string());
    Scim::new(Setup {
        name: "hr",
        config: &config,
        resolve: &resolve,
        http: &http,
    })
    .unwrap()
}

fn headers(content_type: Option<&str>, authorization: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(value).unwrap(),
        );
    }
    if let Some(value) = authorization {
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn good_headers() -> HeaderMap {
    headers(
        Some("application/scim+json"),
        Some(&format!("Bearer {TOKEN}")),
    )
}

fn delivery<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        headers,
        body,
        received_at: now(),
    }
}

fn sample() -> Value {
    serde_json::from_str(SAMPLE).unwrap()
}

/// The Entra sample with a hire date in a custom extension on every operation.
fn sample_with_hire_dates() -> Vec<u8> {
    let mut body = sample();
    for operation in body["Operations"].as_array_mut().unwrap() {
        operation["data"][EXTENSION] = json!({"HireDate": "2025-02-03"});
    }
    serde_json::to_vec(&body).unwrap()
}

fn parse(body: &[u8]) -> Parsed {
    let headers = good_headers();
    scim().parse(&delivery(&headers, body)).unwrap()
}

fn record(parsed: &Parsed, index: usize) -> &Worker {
    match &parsed.events[index].action {
        Action::Record(worker) => worker,
        other => panic!("not a record: {other:?}"),
    }
}

/// A BulkRequest of one operation with `data`.
fn one(data: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "POST", "bulkId": "b-1", "path": "/Users", "data": data}],
    }))
    .unwrap()
}

// --- verification -------------------------------------------------------------------------

#[test]
fn the_bearer_token_passes_in_any_scheme_case() {
    let scim = scim();
    let upper = good_headers();
    assert_eq!(scim.verify(&delivery(&upper, SAMPLE.as_bytes())), Ok(()));
    let lower = headers(
        Some("application/scim+json"),
        Some(&format!("bearer {TOKEN}")),
    );
    assert_eq!(scim.verify(&delivery(&lower, SAMPLE.as_bytes())), Ok(()));
}

#[test]
fn a_wrong_token_is_refused_without_quoting_the_expected_one() {
    let headers = headers(
        Some("application/scim+json"),
        Some("Bearer scim-bearer-token-91f3"),
    );
    let Err(Unauthorized(reason)) = scim().verify(&delivery(&headers, SAMPLE.as_bytes())) else {
        panic!("a wrong token passed");
    };
    assert!(reason.contains("does not match"), "{reason}");
    assert!(!reason.contains(TOKEN));
}

#[test]
fn the_token_without_the_bearer_scheme_is_refused() {
    let headers = headers(Some("application/scim+json"), Some(TOKEN));
    assert_eq!(
        scim().verify(&delivery(&headers, SAMPLE.as_bytes())),
        Err(Unauthorized(
            "the Authorization header is not a Bearer token".into()
        ))
    );
}

#[test]
fn a_missing_authorization_header_is_refused() {
    let headers = headers(Some("application/scim+json"), None);
    assert_eq!(
        scim().verify(&delivery(&headers, SAMPLE.as_bytes())),
        Err(Unauthorized("missing the Authorization header".into()))
    );
}

#[test]
fn an_altered_body_still_passes_a_bearer_token_which_does_not_cover_it() {
    let mut body = sample_with_hire_dates();
    let original = parse(&body);
    let at = body.len() - 10;
    body[at] ^= 0x01;
    let headers = good_headers();
    assert_eq!(scim().verify(&delivery(&headers, &body)), Ok(()));
    // A different delivery for dedupe.
    let digest = |p: &Parsed| p.events[0].dedupe.split('#').next().unwrap().to_owned();
    let altered = scim().parse(&delivery(&headers, &body));
    if let Ok(altered) = altered
        && !altered.events.is_empty()
    {
        assert_ne!(digest(&original), digest(&altered));
    }
}

#[test]
fn a_replayed_delivery_passes_again_with_the_same_dedupe_ids() {
    let body = sample_with_hire_dates();
    let headers = good_headers();
    let scim = scim();
    let first = delivery(&headers, &body);
    let mut later = delivery(&headers, &body);
    later.received_at = now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    assert_eq!(scim.verify(&first), Ok(()));
    assert_eq!(scim.verify(&later), Ok(()));
    let ids =
        |parsed: Parsed| -> Vec<String> { parsed.events.into_iter().map(|e| e.dedupe).collect() };
    assert_eq!(
        ids(scim.parse(&first).unwrap()),
        ids(scim.parse(&later).unwrap())
    );
}

// --- the BulkRequest ----------------------------------------------------------------------

#[test]
fn the_entra_sample_as_is_refuses_each_operation_for_its_missing_hire_date() {
    let parsed = parse(SAMPLE.as_bytes());
    assert!(parsed.events.is_empty());
    assert_eq!(parsed.refused.len(), 2);
    for (index, refused) in parsed.refused.iter().enumerate() {
        assert_eq!(
            refused.operation.as_deref(),
            Some("00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
        );
        assert_eq!(refused.method.as_deref(), Some("POST"));
        assert!(
            refused.problem.starts_with(&format!("Operations[{index}]")),
            "{}",
            refused.problem
        );
        assert!(refused.problem.contains("hire_date"), "{}", refused.problem);
        assert!(
            refused
                .problem
                .contains("send hireDate in a custom extension such as urn:ietf:params:scim:schemas:extension:hrsync:1.0:User"),
            "{}",
            refused.problem
        );
    }
    assert!(
        parsed.refused[0]
            .problem
            .starts_with("Operations[0] (employee 701984): hire_date: ")
    );
}

#[test]
fn the_entra_sample_with_a_hire_date_is_mapped_field_by_field() {
    let parsed = parse(&sample_with_hire_dates());
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    assert_eq!(parsed.events.len(), 2);
    let event = &parsed.events[0];
    assert_eq!(event.employee_id, "701984");
    assert_eq!(
        event.operation.as_deref(),
        Some("00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
    );
    // The sample repeats its bulkId: the dedupe ids still differ.
    assert_ne!(event.dedupe, parsed.events[1].dedupe);

    let worker = record(&parsed, 0);
    assert_eq!(worker.key, WorkerKey::new("hr", "701984"));
    assert_eq!(worker.employee_id, "701984");
    assert_eq!(worker.given_name, "Barbara");
    assert_eq!(worker.family_name, "Jensen");
    assert_eq!(worker.middle_name.as_deref(), Some("Jane"));
    assert_eq!(worker.preferred_name.as_deref(), Some("Babs"));
    assert_eq!(worker.work_email.as_deref(), Some("bjensen@example.com"));
    assert_eq!(worker.personal_email, None);
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.hire_date, Some(date(2025, 2, 3)));
    assert_eq!(worker.termination_date, None);
    assert_eq!(worker.termination_type, None);
    assert_eq!(worker.worker_type.as_deref(), Some("Employee"));
    assert_eq!(worker.job_title.as_deref(), Some("Tour Guide"));
    assert_eq!(worker.time_zone.as_deref(), Some("America/Los_Angeles"));
    assert_eq!(worker.location.as_deref(), Some("Hollywood"));
    assert_eq!(worker.country.as_deref(), Some("USA"));
    assert_eq!(worker.cost_center.as_deref(), Some("4130"));
    assert_eq!(worker.company.as_deref(), Some("Universal Studios"));
    assert_eq!(worker.division.as_deref(), Some("Theme Park"));
    assert_eq!(worker.department.as_deref(), Some("Tour Operations"));
    assert_eq!(worker.manager_id.as_deref(), Some("89607"));
    assert_eq!(worker.as_of, now());
    assert!(worker.custom.is_empty());

    let kathy = record(&parsed, 1);
    assert_eq!(kathy.employee_id, "701985");
    assert_eq!(kathy.job_title.as_deref(), Some("Tour Lead"));
    // Kathy's manager is Barbara, by her externalId.
    assert_eq!(kathy.manager_key(), Some(worker.key.clone()));
}

#[test]
fn one_bad_operation_does_not_fail_the_others() {
    let mut body = sample();
    body["Operations"][1]["data"][EXTENSION] = json!({"hireDate": "2025-02-03"});
    body["Operations"][1]["bulkId"] = json!("second");
    let parsed = parse(&serde_json::to_vec(&body).unwrap());
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(parsed.events[0].employee_id, "701985");
    assert_eq!(parsed.events[0].operation.as_deref(), Some("second"));
    assert_eq!(parsed.refused.len(), 1);
    assert_eq!(
        parsed.refused[0].operation.as_deref(),
        Some("00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
    );
}

#[test]
fn more_than_fifty_operations_are_refused_whole() {
    let mut body = sample();
    let operation = body["Operations"][0].clone();
    body["Operations"] = Value::Array(vec![operation; MAX_OPERATIONS + 1]);
    let headers = good_headers();
    let bytes = serde_json::to_vec(&body).unwrap();
    let error = scim().parse(&delivery(&headers, &bytes)).unwrap_err();
    assert!(error.0.contains("51 operations"), "{}", error.0);
    assert!(error.0.contains("at most 50"), "{}", error.0);

    body["Operations"] = Value::Array(vec![body["Operations"][0].clone(); MAX_OPERATIONS]);
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(
        scim()
            .parse(&delivery(&headers, &bytes))
            .unwrap()
            .refused
            .len(),
        MAX_OPERATIONS
    );
}

#[test]
fn the_wrong_content_type_is_refused() {
    let scim = scim();
    let json = headers(Some("application/json"), Some(&format!("Bearer {TOKEN}")));
    let error = scim.parse(&delivery(&json, SAMPLE.as_bytes())).unwrap_err();
    assert!(error.0.contains("application/scim+json"), "{}", error.0);
    let none = headers(None, Some(&format!("Bearer {TOKEN}")));
    let error = scim.parse(&delivery(&none, SAMPLE.as_bytes())).unwrap_err();
    assert!(error.0.contains("Content-Type is missing"), "{}", error.0);
    let with_charset = headers(
        Some("application/scim+json; charset=utf-8"),
        Some(&format!("Bearer {TOKEN}")),
    );
    assert!(
        scim.parse(&delivery(&with_charset, SAMPLE.as_bytes()))
            .is_ok()
    );
}

#[test]
fn a_body_that_is_not_a_bulk_request_is_refused() {
    let headers = good_headers();
    let scim = scim();
    let not_json = scim
        .parse(&delivery(&headers, b"{\"schemas\":"))
        .unwrap_err();
    assert!(not_json.0.contains("not valid JSON"));
    let user = serde_json::to_vec(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "externalId": "1",
    }))
    .unwrap();
    let error = scim.parse(&delivery(&headers, &user)).unwrap_err();
    assert_eq!(
        error.0,
        "schemas must contain urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    );
    let no_ops = br#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}"#;
    assert!(scim.parse(&delivery(&headers, no_ops)).is_err());
}

#[test]
fn a_wrong_method_or_path_is_refused_per_operation() {
    let mut body = sample();
    body["Operations"][0]["method"] = json!("PATCH");
    body["Operations"][1]["path"] = json!("/Groups");
    let parsed = parse(&serde_json::to_vec(&body).unwrap());
    assert!(parsed.events.is_empty());
    assert_eq!(parsed.refused[0].method.as_deref(), Some("PATCH"));
    assert!(parsed.refused[0].problem.contains("method: only POST"));
    assert!(parsed.refused[1].problem.contains("path: only /Users"));
}

// --- mapping details ----------------------------------------------------------------------

#[test]
fn extension_attributes_are_read_in_any_case_and_dates_as_rfc3339() {
    let body = one(json!({
        "externalId": "42",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "active": false,
        "userType": "Employee",
        "emails": [
            {"value": "ada@home.example", "type": "home"},
            {"value": "old@corp.example", "type": "work"},
            {"value": "ada@corp.example", "type": "work", "primary": true}
        ],
        "urn:ietf:params:scim:schemas:extension:contoso:1.0:User": {
            "HIREDATE": "2020-01-06T09:00:00+01:00",
            "terminationdate": "2026-06-30",
            "TerminationType": "Resignation",
            "WorkerType": "Contractor",
            "JobCode": "X-17"
        }
    }));
    let parsed = parse(&body);
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    let worker = record(&parsed, 0);
    assert_eq!(worker.status, Status::Inactive);
    assert_eq!(worker.hire_date, Some(date(2020, 1, 6)));
    assert_eq!(worker.termination_date, Some(date(2026, 6, 30)));
    assert_eq!(worker.termination_type.as_deref(), Some("Resignation"));
    assert_eq!(worker.worker_type.as_deref(), Some("Contractor"));
    assert_eq!(worker.work_email.as_deref(), Some("ada@corp.example"));
    assert_eq!(worker.personal_email.as_deref(), Some("ada@home.example"));
    assert_eq!(
        worker.custom.get("JobCode").map(String::as_str),
        Some("X-17")
    );
}

#[test]
fn an_inactive_worker_needs_no_hire_date() {
    let parsed = parse(&one(json!({
        "externalId": "43",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "active": false
    })));
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(record(&parsed, 0).status, Status::Inactive);
}

#[test]
fn the_employee_number_stands_in_for_a_missing_external_id() {
    let parsed = parse(&one(json!({
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "E-9"},
        "urn:ietf:params:scim:schemas:extension:hrsync:1.0:User": {"hireDate": "2025-01-01"}
    })));
    assert_eq!(parsed.events[0].employee_id, "E-9");
}

#[test]
fn problems_name_the_field_and_never_quote_personal_values() {
    let parsed = parse(&one(json!({
        "name": {"givenName": "Ada", "familyName": "Lovelace"}
    })));
    assert!(parsed.refused[0].problem.contains("send externalId"));
    let parsed = parse(&one(json!({
        "externalId": "44",
        "name": {"givenName": "Ada"},
        "urn:ietf:params:scim:schemas:extension:hrsync:1.0:User": {"hireDate": "2025-01-01"}
    })));
    assert!(
        parsed.refused[0].problem.contains("family_name"),
        "{}",
        parsed.refused[0].problem
    );
    assert!(parsed.refused[0].problem.contains("name.familyName"));
    let parsed = parse(&one(json!({
        "externalId": "45",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "urn:ietf:params:scim:schemas:extension:hrsync:1.0:User": {"hireDate": "10 December 1815"}
    })));
    let problem = &parsed.refused[0].problem;
    assert!(problem.contains("hireDate: not a date"), "{problem}");
    assert!(!problem.contains("1815"));
    let parsed = parse(&one(json!({
        "externalId": "46",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "timezone": "Mars/Olympus",
        "urn:ietf:params:scim:schemas:extension:hrsync:1.0:User": {"hireDate": "2025-01-01"}
    })));
    assert!(parsed.refused[0].problem.contains("time_zone"));
}

// --- no API -------------------------------------------------------------------------------

#[tokio::test]
async fn there_is_no_fetch_and_no_write_back() {
    let scim = scim();
    assert!(!scim.writes_back());
    let error = scim.fetch("701984", now()).await.unwrap_err();
    assert!(!error.retryable);
    let parsed = parse(&sample_with_hire_dates());
    let identifiers = Identifiers {
        upn: "b@corp.example".into(),
        mail: "b@corp.example".into(),
    };
    let error = scim
        .write_back(record(&parsed, 0), &identifiers)
        .await
        .unwrap_err();
    assert!(!error.retryable);
}
