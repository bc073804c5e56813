//! The SCIM bulk connector against the BulkRequests Microsoft documents for Entra's
//! API-driven inbound provisioning:
//!
//! - `samples/entra-scim-bulk.json`: verbatim from the cURL tutorial
//!   (learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-curl-tutorial);
//!   both operations carry the same `bulkId`.
//! - `samples/entra-scim-bulk-unique-bulkids.json`: the same with the second `bulkId` made
//!   unique, as the bulkUpload resource asks (learn.microsoft.com/graph/api/resources/synchronization-bulkupload).
//! - Shapes built from them here: the custom attributes of the bulkUpload API's example 2
//!   (`urn:contoso:employee`, learn.microsoft.com/graph/api/synchronization-synchronizationjob-post-bulkupload)
//!   and the CSV2SCIM sample payload (`urn:ietf:params:scim:schemas:extension:csv:1.0:User`,
//!   `path` `/users`: github.com/AzureAD/entra-id-inbound-provisioning, linked from
//!   learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-powershell).

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
const UNIQUE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/samples/entra-scim-bulk-unique-bulkids.json"
));
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The namespace of Microsoft's CSV2SCIM script (learn.microsoft.com, inbound-provisioning-api-powershell).
const CSV: &str = "urn:ietf:params:scim:schemas:extension:csv:1.0:User";
/// A person id as an HR system keeps it: the `externalId` Entra matches on may be one
/// (the bulkUpload resource: "employeeId or personId or studentId"), 36 characters.
const PERSON_ID: &str = "6f1c2b9e-3d4a-4c8e-9b7f-2a5d8e0c1f34";

fn now() -> Timestamp {
    "2026-06-01T09:00:00Z".parse().unwrap()
}

fn scim_with(employee_id_field: Option<&str>) -> Scim {
    let config = SourceConfig {
        webhook_secret: Some(SecretRef::Env("W".into())),
        employee_id_field: employee_id_field.map(str::to_owned),
        ..SourceConfig::of_kind(SourceKind::Scim)
    };
    let http = reqwest::Client::new();
    let resolve = |_: &SecretRef| Ok(TOKEN.to_string());
    Scim::new(Setup {
        name: "hr",
        config: &config,
        resolve: &resolve,
        http: &http,
        webhooks: hrsync_hr::Webhooks::Taken,
    })
    .unwrap()
}

fn scim() -> Scim {
    scim_with(None)
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

fn unique() -> Value {
    serde_json::from_str(UNIQUE).unwrap()
}

fn bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).unwrap()
}

fn parse_with(scim: &Scim, body: &[u8]) -> Parsed {
    let headers = good_headers();
    scim.parse(&delivery(&headers, body)).unwrap()
}

fn parse(body: &[u8]) -> Parsed {
    parse_with(&scim(), body)
}

fn record(parsed: &Parsed, index: usize) -> &Worker {
    match &parsed.events[index].action {
        Action::Record(worker) => worker,
        other => panic!("not a record: {other:?}"),
    }
}

/// A BulkRequest of one operation with `data`.
fn one(data: Value) -> Vec<u8> {
    bytes(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "POST", "bulkId": "b-1", "path": "/Users", "data": data}],
        "failOnErrors": null,
    }))
}

/// Ada's User: the core and enterprise schemas only, plus `extra`.
fn ada(extra: Value) -> Value {
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "42",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "active": true,
    });
    for (key, value) in extra.as_object().unwrap() {
        user[key] = value.clone();
    }
    user
}

/// The one refusal's detail.
fn refusal(parsed: &Parsed) -> &str {
    assert!(parsed.events.is_empty(), "{:?}", parsed.events);
    assert_eq!(parsed.refused.len(), 1, "{:?}", parsed.refused);
    &parsed.refused[0].problem
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
    let original = UNIQUE.as_bytes();
    let mut altered = original.to_vec();
    // "Barbara" -> "Barbarb": still a valid request, a different body.
    let at = UNIQUE.find("\"Barbara\"").unwrap() + 7;
    altered[at] = b'b';
    let headers = good_headers();
    assert_eq!(scim().verify(&delivery(&headers, &altered)), Ok(()));
    let first = parse(original);
    let second = parse(&altered);
    assert_eq!(record(&second, 0).given_name, "Barbarb");
    // A different delivery for dedupe.
    assert_ne!(first.events[0].dedupe, second.events[0].dedupe);
}

#[test]
fn a_replayed_delivery_passes_again_with_the_same_dedupe_ids() {
    let body = UNIQUE.as_bytes();
    let headers = good_headers();
    let scim = scim();
    let first = delivery(&headers, body);
    let mut later = delivery(&headers, body);
    later.received_at = now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    assert_eq!(scim.verify(&first), Ok(()));
    assert_eq!(scim.verify(&later), Ok(()));
    let ids =
        |parsed: Parsed| -> Vec<String> { parsed.events.into_iter().map(|e| e.dedupe).collect() };
    let ids_first = ids(scim.parse(&first).unwrap());
    assert_eq!(ids_first.len(), 2);
    assert_eq!(ids_first, ids(scim.parse(&later).unwrap()));
}

// --- Microsoft's documented requests -------------------------------------------------------

/// The bug this connector was fixed for: the tutorial's request has no hire date (SCIM's core
/// and enterprise schemas have none) and was refused per operation. Entra takes it; so do we.
#[test]
fn the_tutorial_request_is_taken_without_a_hire_date() {
    let parsed = parse(UNIQUE.as_bytes());
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    assert_eq!(parsed.events.len(), 2);
    for index in 0..2 {
        let worker = record(&parsed, index);
        assert_eq!(worker.hire_date, None);
        assert_eq!(worker.termination_date, None);
        assert_eq!(worker.status, Status::Active);
    }
    assert_eq!(
        parsed.events[0].operation.as_deref(),
        Some("00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
    );
    assert_eq!(
        parsed.events[1].operation.as_deref(),
        Some("11bb11bb-cc22-dd33-ee44-55ff55ff55ff")
    );
}

/// RFC 7644 §3.7 makes a unique bulkId the client's duty (it is how the client tells the
/// operations apart in the response); Entra's own tutorial repeats one and Entra takes it.
/// Each operation stands on its own record, so a repeated bulkId is taken; the answer repeats
/// it per operation, and each event is still its own delivery.
#[test]
fn the_tutorial_request_as_published_with_a_repeated_bulk_id_is_taken_whole() {
    let parsed = parse(SAMPLE.as_bytes());
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    let keys: Vec<_> = (0..2).map(|i| record(&parsed, i).key.clone()).collect();
    assert_eq!(
        keys,
        [
            WorkerKey::new("hr", "701984"),
            WorkerKey::new("hr", "701985")
        ]
    );
    for event in &parsed.events {
        assert_eq!(
            event.operation.as_deref(),
            Some("00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
        );
    }
    assert_ne!(parsed.events[0].dedupe, parsed.events[1].dedupe);

    let answer = scim().answer(&parsed).unwrap();
    let operations = answer.body["Operations"].as_array().unwrap();
    assert_eq!(operations.len(), 2);
    assert!(
        operations.iter().all(|o| o["status"] == "202"),
        "{operations:?}"
    );
}

#[test]
fn the_tutorial_request_is_mapped_field_by_field() {
    let parsed = parse(UNIQUE.as_bytes());
    let event = &parsed.events[0];
    assert_eq!(event.employee_id, "701984");

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
    assert_eq!(kathy.key, WorkerKey::new("hr", "701985"));
    assert_eq!(kathy.employee_id, "701985");
    assert_eq!(kathy.job_title.as_deref(), Some("Tour Lead"));
    // Kathy's manager is Barbara, by her externalId (the bulkUpload API: "Specify the
    // externalId of the user's manager in this field").
    assert_eq!(kathy.manager_key(), Some(worker.key.clone()));
}

#[test]
fn an_operation_without_an_external_id_is_refused_in_its_own_status_and_the_others_taken() {
    let mut body = unique();
    let mut third = body["Operations"][1].clone();
    third["bulkId"] = json!("22cc22cc-dd33-ee44-ff55-66aa66aa66aa");
    third["data"].as_object_mut().unwrap().remove("externalId");
    body["Operations"].as_array_mut().unwrap().push(third);
    let scim = scim();
    let parsed = parse_with(&scim, &bytes(&body));
    assert_eq!(parsed.events.len(), 2);
    assert_eq!(parsed.refused.len(), 1);
    let refused = &parsed.refused[0];
    assert_eq!(
        refused.operation.as_deref(),
        Some("22cc22cc-dd33-ee44-ff55-66aa66aa66aa")
    );
    assert_eq!(refused.method.as_deref(), Some("POST"));
    assert!(
        refused
            .problem
            .starts_with("Operations[2]: externalId: missing"),
        "{}",
        refused.problem
    );

    let answer = scim.answer(&parsed).unwrap();
    // Entra's bulkUpload answers 202 Accepted: the work follows asynchronously.
    assert_eq!(answer.status, 202);
    assert_eq!(answer.content_type, "application/scim+json");
    assert_eq!(
        answer.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    let operations = answer.body["Operations"].as_array().unwrap();
    let by_bulk_id = |id: &str| {
        operations
            .iter()
            .find(|o| o["bulkId"] == id)
            .unwrap_or_else(|| panic!("{id} in {operations:?}"))
    };
    let barbara = by_bulk_id("00aa00aa-bb11-cc22-dd33-44ee44ee44ee");
    assert_eq!(barbara["status"], "202");
    assert_eq!(barbara["location"], "/Users/701984");
    assert_eq!(
        by_bulk_id("11bb11bb-cc22-dd33-ee44-55ff55ff55ff")["status"],
        "202"
    );
    let refused = by_bulk_id("22cc22cc-dd33-ee44-ff55-66aa66aa66aa");
    assert_eq!(refused["status"], "400");
    assert_eq!(refused["response"]["scimType"], "invalidValue");
    assert!(
        refused["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("externalId: missing")
    );
}

/// The bulkUpload API's example 2 puts HireDate in `urn:contoso:employee`: a custom schema
/// need not live under `urn:ietf:params:scim:schemas:extension:`. Was: only that prefix was
/// read, so the hire date was lost and a future joiner counted as employed from now.
#[test]
fn a_hire_date_in_a_custom_namespace_of_any_urn_is_read() {
    let mut body = unique();
    for (operation, hired) in [
        (0, "2021-05-01T00:00:00-05:00"),
        (1, "2022-07-15T00:00:00-05:00"),
    ] {
        let data = &mut body["Operations"][operation]["data"];
        data["schemas"]
            .as_array_mut()
            .unwrap()
            .push(json!("urn:contoso:employee"));
        data["urn:contoso:employee"] = json!({"HireDate": hired, "JobCode": "AB-1002"});
    }
    let parsed = parse(&bytes(&body));
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    // The date as written (Entra shows it in the tenant's zone; the day is the sender's).
    assert_eq!(record(&parsed, 0).hire_date, Some(date(2021, 5, 1)));
    assert_eq!(record(&parsed, 1).hire_date, Some(date(2022, 7, 15)));
    assert_eq!(
        record(&parsed, 0).custom.get("JobCode").map(String::as_str),
        Some("AB-1002")
    );
}

/// Microsoft's CSV2SCIM sample payload: `path` `/users`, the CSV's columns in its `csv`
/// namespace, booleans as strings, empty columns as "". Was: `/users` was refused.
#[test]
fn a_csv2scim_record_with_its_termination_columns_is_read() {
    let body = bytes(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{
            "method": "POST",
            "bulkId": "897401c2-2de4-4b87-a97f-c02de3bcfc61",
            "path": "/users",
            "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", CSV],
                "externalId": "701984",
                "name": {"familyName": "Jensen", "givenName": "Barbara"},
                "active": true,
                "username": "bjensen",
                CSV: {
                    "WorkerID": "701984",
                    "WorkerStatus": "Active",
                    "HireDate": "2020-01-01",
                    "FirstDayOfWork": "2020-01-01",
                    "IsTerminated": "False",
                    "TerminationDate": "2026-06-30",
                    "LastDayOfWork": "2026-06-26",
                    "TerminationReason": "Resignation",
                    "ContractEndDate": "",
                    "OnLeave": "False",
                    "Department": "Accounting"
                }
            }
        }],
        "failOnErrors": null
    }));
    let parsed = parse(&body);
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    let worker = record(&parsed, 0);
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.hire_date, Some(date(2020, 1, 1)));
    // The earlier of the two: access ends after the last day worked.
    assert_eq!(worker.termination_date, Some(date(2026, 6, 26)));
    assert_eq!(worker.termination_type.as_deref(), Some("Resignation"));
    assert_eq!(
        worker.custom.get("Department").map(String::as_str),
        Some("Accounting")
    );
    for read in [
        "HireDate",
        "TerminationDate",
        "LastDayOfWork",
        "TerminationReason",
    ] {
        assert!(
            !worker.custom.contains_key(read),
            "{read} is a worker field"
        );
    }
}

/// The attribute names of Entra's own user (employeeHireDate, employeeLeaveDateTime), as its
/// SCIM API's `Microsoft:Entra:2.0:User` extension spells them.
#[test]
fn entra_s_own_hire_and_leave_attributes_are_read() {
    let parsed = parse(&one(ada(json!({
        "urn:ietf:params:scim:schemas:extension:Microsoft:Entra:2.0:User": {
            "employeeHireDate": "2025-02-03T08:00:00Z",
            "employeeLeaveDateTime": "2026-06-30T23:59:59Z"
        }
    }))));
    let worker = record(&parsed, 0);
    assert_eq!(worker.hire_date, Some(date(2025, 2, 3)));
    assert_eq!(worker.termination_date, Some(date(2026, 6, 30)));
}

/// `active: false` is how Entra's docs send a leaver (bulkUpload example 3; the FAQ's
/// "How do we process terminations"): Entra disables the account when it processes it. Was:
/// status inactive with the record's date kept, so a date still ahead was waited for.
#[test]
fn active_false_is_a_termination_now_whatever_date_the_record_gives() {
    let parsed = parse(&one(ada(json!({
        "active": false,
        "urn:ietf:params:scim:schemas:extension:contoso:1.0:User": {
            "HireDate": "2020-01-06",
            "TerminationDate": "2026-06-30",
            "TerminationType": "Involuntary"
        }
    }))));
    let worker = record(&parsed, 0);
    assert_eq!(worker.status, Status::Terminated);
    assert_eq!(worker.termination_date, None);
    assert_eq!(worker.hire_date, Some(date(2020, 1, 6)));
    assert_eq!(worker.termination_type.as_deref(), Some("Involuntary"));
}

/// Was: any `active` but the JSON `false` was "active", so `"False"` (how Microsoft's CSV
/// tooling writes booleans) kept a leaver's account enabled.
#[test]
fn active_as_text_is_read_and_anything_else_is_refused() {
    for (given, status) in [("False", Status::Terminated), ("true", Status::Active)] {
        let parsed = parse(&one(ada(json!({"active": given}))));
        assert_eq!(record(&parsed, 0).status, status, "active {given:?}");
    }
    let parsed = parse(&one(ada(json!({"active": "Inactive"}))));
    assert_eq!(
        refusal(&parsed),
        "Operations[0]: active: not a boolean: send true or false"
    );
    // Absent: the record says nothing against employment (SCIM: active is optional).
    let mut user = ada(json!({}));
    user.as_object_mut().unwrap().remove("active");
    assert_eq!(record(&parse(&one(user)), 0).status, Status::Active);
}

// --- identity -------------------------------------------------------------------------------

#[test]
fn the_employee_id_may_come_from_the_employee_number_while_the_key_stays_the_external_id() {
    let scim = scim_with(Some("employeeNumber"));
    let parsed = parse_with(
        &scim,
        &one(ada(json!({
            "externalId": PERSON_ID,
            ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "0b7d4e2a-5c1f-4a9e-8d3b-7e6f5a4c3b2d"}}
        }))),
    );
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    let worker = record(&parsed, 0);
    assert_eq!(worker.key, WorkerKey::new("hr", PERSON_ID));
    assert_eq!(parsed.events[0].employee_id, PERSON_ID);
    assert_eq!(worker.employee_id, "701984");
    assert_eq!(
        worker.manager_key(),
        Some(WorkerKey::new("hr", "0b7d4e2a-5c1f-4a9e-8d3b-7e6f5a4c3b2d"))
    );

    let parsed = parse_with(&scim, &one(ada(json!({"externalId": PERSON_ID}))));
    assert_eq!(
        refusal(&parsed),
        format!(
            "Operations[0]: employeeNumber: missing in {ENTERPRISE}: this source takes the directory's employeeId from it (employee_id_field)"
        )
    );
}

#[test]
fn an_employee_id_longer_than_the_directory_holds_is_refused_naming_the_attribute() {
    let parsed = parse(&one(ada(json!({"externalId": PERSON_ID}))));
    let problem = refusal(&parsed);
    assert!(
        problem.starts_with(
            "Operations[0]: externalId: has 36 characters; the directory's employeeId holds at most 16"
        ),
        "{problem}"
    );
    assert!(problem.contains("employee_id_field"), "{problem}");

    let scim = scim_with(Some("employeeNumber"));
    let parsed = parse_with(
        &scim,
        &one(ada(
            json!({ENTERPRISE: {"employeeNumber": "EMP-000000701984-X"}}),
        )),
    );
    assert!(
        refusal(&parsed).starts_with(
            "Operations[0]: employeeNumber: has 18 characters; the directory's employeeId holds at most 16"
        ),
        "{parsed:?}"
    );
}

/// Entra matches on `externalId` and managers name it: a record without one has no key.
/// Was: the employeeNumber stood in for it.
#[test]
fn the_external_id_is_required_even_beside_an_employee_number() {
    let mut user = ada(json!({ENTERPRISE: {"employeeNumber": "701984"}}));
    user.as_object_mut().unwrap().remove("externalId");
    let parsed = parse(&one(user));
    let problem = refusal(&parsed);
    assert!(
        problem.starts_with(
            "Operations[0]: externalId: missing: send the worker's id in the HR system"
        ),
        "{problem}"
    );
}

#[test]
fn an_employee_id_field_scim_records_do_not_have_is_refused_at_setup() {
    let config = SourceConfig {
        webhook_secret: Some(SecretRef::Env("W".into())),
        employee_id_field: Some("userName".into()),
        ..SourceConfig::of_kind(SourceKind::Scim)
    };
    let http = reqwest::Client::new();
    let resolve = |_: &SecretRef| Ok(TOKEN.to_string());
    let error = Scim::new(Setup {
        name: "hr",
        config: &config,
        resolve: &resolve,
        http: &http,
        webhooks: hrsync_hr::Webhooks::Taken,
    })
    .unwrap_err();
    assert_eq!(error.key.as_deref(), Some("employee_id_field"));
    assert!(error.problem.contains("externalId"), "{}", error.problem);
}

// --- the request as a whole ----------------------------------------------------------------

#[test]
fn more_than_fifty_operations_are_refused_whole() {
    let mut body = unique();
    let operation = body["Operations"][0].clone();
    body["Operations"] = Value::Array(vec![operation; MAX_OPERATIONS + 1]);
    let headers = good_headers();
    let error = scim()
        .parse(&delivery(&headers, &bytes(&body)))
        .unwrap_err();
    assert!(error.0.contains("51 operations"), "{}", error.0);
    assert!(error.0.contains("at most 50"), "{}", error.0);

    body["Operations"] = Value::Array(vec![body["Operations"][0].clone(); MAX_OPERATIONS]);
    let parsed = parse(&bytes(&body));
    assert_eq!(parsed.events.len(), MAX_OPERATIONS);
    assert!(parsed.refused.is_empty());
}

/// Entra processes each record on its own, asynchronously (FAQ), and its samples send
/// `failOnErrors: null`: operations after a refused one are still taken.
#[test]
fn fail_on_errors_does_not_stop_the_operations_after_a_refused_one() {
    let mut body = unique();
    body["failOnErrors"] = json!(1);
    body["Operations"][0]["data"]
        .as_object_mut()
        .unwrap()
        .remove("externalId");
    let parsed = parse(&bytes(&body));
    assert_eq!(parsed.refused.len(), 1);
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(parsed.events[0].employee_id, "701985");
}

#[test]
fn the_wrong_content_type_is_refused() {
    let scim = scim();
    let json = headers(Some("application/json"), Some(&format!("Bearer {TOKEN}")));
    let error = scim.parse(&delivery(&json, UNIQUE.as_bytes())).unwrap_err();
    assert!(error.0.contains("application/scim+json"), "{}", error.0);
    let none = headers(None, Some(&format!("Bearer {TOKEN}")));
    let error = scim.parse(&delivery(&none, UNIQUE.as_bytes())).unwrap_err();
    assert!(error.0.contains("Content-Type is missing"), "{}", error.0);
    let with_charset = headers(
        Some("application/scim+json; charset=utf-8"),
        Some(&format!("Bearer {TOKEN}")),
    );
    assert_eq!(
        scim.parse(&delivery(&with_charset, UNIQUE.as_bytes()))
            .unwrap()
            .events
            .len(),
        2
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
    let user = bytes(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "externalId": "1",
    }));
    let error = scim.parse(&delivery(&headers, &user)).unwrap_err();
    assert_eq!(
        error.0,
        "schemas must contain urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    );
    let no_ops = br#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}"#;
    assert_eq!(
        scim.parse(&delivery(&headers, no_ops)).unwrap_err().0,
        "Operations is missing or not a list"
    );
}

#[test]
fn a_wrong_method_or_path_is_refused_per_operation() {
    let mut body = unique();
    body["Operations"][0]["method"] = json!("PATCH");
    body["Operations"][1]["path"] = json!("/Groups");
    let parsed = parse(&bytes(&body));
    assert!(parsed.events.is_empty());
    assert_eq!(parsed.refused[0].method.as_deref(), Some("PATCH"));
    assert!(parsed.refused[0].problem.contains("method: only POST"));
    assert!(parsed.refused[1].problem.contains("path: only /Users"));
}

#[test]
fn an_operation_without_a_bulk_id_is_refused() {
    let mut body = unique();
    body["Operations"][1]
        .as_object_mut()
        .unwrap()
        .remove("bulkId");
    let parsed = parse(&bytes(&body));
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(parsed.refused[0].operation, None);
    assert!(
        parsed.refused[0]
            .problem
            .starts_with("Operations[1]: bulkId: missing"),
        "{}",
        parsed.refused[0].problem
    );
}

// --- mapping details ----------------------------------------------------------------------

#[test]
fn extension_attributes_are_read_in_any_case_and_dates_as_rfc3339() {
    let parsed = parse(&one(ada(json!({
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
    }))));
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    let worker = record(&parsed, 0);
    assert_eq!(worker.status, Status::Active);
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

/// The bulkUpload API's example 3 updates a user with `externalId`, `active` and one
/// attribute. hrsync takes each operation as the worker's whole record, so such a partial
/// record is refused, naming what it lacks.
#[test]
fn a_partial_record_is_refused_naming_what_it_lacks() {
    let body = bytes(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{
            "method": "POST",
            "bulkId": "7172023",
            "path": "/Users",
            "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "externalId": "7172023",
                "active": false,
                ENTERPRISE: {"department": "Tour Ops"}
            }
        }],
        "failOnErrors": null
    }));
    let problem = refusal(&parse(&body)).to_owned();
    assert!(
        problem.starts_with("Operations[0]: given_name: is empty: send name.givenName"),
        "{problem}"
    );
    assert!(problem.contains("whole record"), "{problem}");
}

#[test]
fn problems_name_the_field_and_never_quote_personal_values() {
    let parsed = parse(&one(ada(json!({"name": {"givenName": "Ada"}}))));
    let problem = refusal(&parsed);
    assert!(problem.contains("family_name"), "{problem}");
    assert!(problem.contains("name.familyName"), "{problem}");
    assert!(!problem.contains("Ada"), "{problem}");

    let parsed = parse(&one(ada(json!({
        "urn:ietf:params:scim:schemas:extension:contoso:1.0:User": {"hireDate": "10 December 1815"}
    }))));
    let problem = refusal(&parsed);
    assert!(problem.contains("hireDate: not a date"), "{problem}");
    assert!(!problem.contains("1815"), "{problem}");

    let parsed = parse(&one(ada(json!({"timezone": "Mars/Olympus"}))));
    assert!(refusal(&parsed).contains("time_zone"));
}

#[test]
fn a_key_given_twice_refuses_the_request() {
    let body = String::from_utf8(one(ada(json!({}))))
        .unwrap()
        .replace(r#""active":true"#, r#""active":true,"active":false"#);
    assert!(body.contains(r#""active":false"#), "{body}");
    let headers = good_headers();
    let refused = scim()
        .parse(&delivery(&headers, body.as_bytes()))
        .unwrap_err();
    assert!(refused.0.contains("the key active twice"), "{refused}");
}

#[test]
fn refusals_never_repeat_a_value_not_even_the_external_id() {
    const MARKER: &str = "SECRET-VALUE-123";
    let cases = [
        json!({"externalId": MARKER, "timezone": "Mars/Olympus"}),
        json!({"externalId": MARKER, "active": "maybe"}),
        json!({"externalId": MARKER, "name": {"givenName": "Ada"}}),
        json!({"externalId": "42", "timezone": MARKER}),
        json!({"externalId": "42", "active": MARKER}),
        json!({"externalId": format!("{MARKER}-longer-than-sixteen")}),
        json!({"externalId": "42", "urn:contoso:employee": {"HireDate": MARKER}}),
    ];
    for extra in cases {
        let parsed = parse(&one(ada(extra.clone())));
        let problem = refusal(&parsed);
        assert!(!problem.contains(MARKER), "{extra}: {problem}");
    }
}

// --- no API -------------------------------------------------------------------------------

#[tokio::test]
async fn there_is_no_fetch_and_no_write_back() {
    let scim = scim();
    assert!(!scim.writes_back());
    let error = scim.fetch("701984", now()).await.unwrap_err();
    assert!(!error.retryable);
    let parsed = parse(UNIQUE.as_bytes());
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

#[test]
fn an_external_id_that_is_a_dot_segment_is_refused() {
    for id in [".", "..", "4\t2"] {
        let parsed = parse(&one(ada(json!({"externalId": id}))));
        let problem = refusal(&parsed);
        assert!(
            problem.starts_with("Operations[0]: externalId: "),
            "{id:?}: {problem}"
        );
    }
}

#[test]
fn an_external_id_or_manager_that_could_be_an_internal_key_is_refused() {
    for user in [
        ada(json!({"externalId": "#webhook"})),
        ada(json!({"externalId": "a:b"})),
        ada(json!({ENTERPRISE: {"manager": {"value": "#webhook"}}})),
    ] {
        let parsed = parse(&one(user.clone()));
        let problem = refusal(&parsed);
        assert!(
            problem.starts_with("Operations[0]: externalId: ")
                || problem.starts_with("Operations[0]: manager.value: "),
            "{user}: {problem}"
        );
    }
}
