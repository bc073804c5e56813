//! End to end per HR vendor, through `hrsync serve`: the vendor's own webhook, signed (or
//! token-protected) the vendor's way, for a new hire -> the full record fetched from the
//! vendor's API emulator -> an account in the sandbox -> the work email written back to the
//! emulator; the same delivery again is recognised; then HR records a termination on the
//! last day -> the account is disabled at 17:00 London (`lifecycle.leave_at`), not before.
//!
//! Each test runs the built binary with `--now 2026-12-01T16:59:30Z`, so the leave instant
//! comes half a minute into the run. The emulators run in the test process on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use base64::Engine as _;
use harness::*;
use hmac::{Hmac, Mac};
use hrsync_hr_emulators::{Emulator, State};
use sha2::{Sha256, Sha512};

const START: &str = "2026-12-01T16:59:30Z";
const LEAVE_INSTANT: &str = "2026-12-01T17:00:00Z";
const LAST_DAY: &str = "2026-12-01";
/// How long the leave may take to come: the rest of the half minute, and slack.
const LEAVE_WITHIN: Duration = Duration::from_secs(90);

/// An HR API emulator on its own runtime, beside the blocking test.
struct Vendor {
    emulator: Emulator,
    _runtime: tokio::runtime::Runtime,
}

impl Vendor {
    fn start(router: fn(State) -> axum::Router) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let emulator = runtime.block_on(Emulator::start(router));
        Self {
            emulator,
            _runtime: runtime,
        }
    }

    fn url(&self) -> &str {
        self.emulator.base_url()
    }

    /// Requests for the worker's record so far (`path` contains `needle`, method `method`).
    fn reads(&self, method: &str, needle: &str) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(needle))
            .count()
    }
}

/// A site whose `[source.hr]` is `table`, with every worker in scope (vendors name worker
/// types their own way), GB where a vendor has no country, and `env` as the secrets.
fn site(table: &str, env: &[(&str, &str)]) -> Site {
    // Not every vendor has the country Graph needs before a licence is assigned.
    let config = config_with_source(table)
        .replace(
            "scope = \"worker_type in ['Employee', 'Contractor']\"",
            "# scope: everyone",
        )
        .replace(
            "usageLocation = \"{{ country }}\"",
            "usageLocation = \"{{ country or 'GB' }}\"",
        );
    let mut site = Site::with_config(&config);
    site.env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    site.now = Some(START.to_owned());
    site
}

fn accepted(reply: &Reply) -> Value {
    assert!(
        reply.status.is_success(),
        "the delivery is taken: {} {}",
        reply.status,
        reply.body
    );
    reply.json()
}

/// Who a test hires: the vendor's record id (what its webhooks name; the worker key is
/// `hr:<record>`) and the employee id the account carries (`employeeId`).
#[derive(Debug, Clone, Copy)]
struct Ada<'a> {
    record: &'a str,
    employee_id: &'a str,
}

impl Ada<'_> {
    /// A vendor whose record id is the employee id.
    const NUMBER_42: Ada<'static> = Ada {
        record: "42",
        employee_id: "42",
    };

    fn key(&self) -> String {
        format!("hr:{}", self.record)
    }
}

/// After a hire delivery: one enabled account for Ada; returns it.
fn hired(site: &Site, serve: &Serve, ada: Ada<'_>) -> Value {
    serve.settle();
    let user = site.user(ada.employee_id);
    assert_eq!(user["accountEnabled"], true, "{user:#}");
    assert_eq!(user["displayName"], "Ada Lovelace", "{user:#}");
    user
}

/// After a termination delivery: the leave is timed for 17:00 London on the last day, and
/// the account is disabled then, not before.
fn leaves_at_the_instant(site: &Site, serve: &Serve, ada: Ada<'_>) {
    serve.settle();
    let audit = site.audit(&ada.key());
    let expected = format!(
        "leave: termination_date {LAST_DAY} at 17:00 (lifecycle.leave_at) in Europe/London is {LEAVE_INSTANT}"
    );
    let decision = audit
        .iter()
        .find(|r| r["stage"] == "mapping" && text(&r["cause"]).contains(&expected))
        .unwrap_or_else(|| panic!("a decision with `{expected}`: {audit:#?}"));
    let decided_before = instant(&decision["at"]) < instant(&json!(LEAVE_INSTANT));
    if decided_before {
        let timers = site.json(&["timers", "--worker", ada.record]);
        let timers = timers.as_array().unwrap();
        assert!(
            timers
                .iter()
                .any(|t| t["kind"] == "leave" && t["at"] == LEAVE_INSTANT),
            "a leave timer at {LEAVE_INSTANT}: {timers:#?}"
        );
        assert_eq!(
            site.user(ada.employee_id)["accountEnabled"],
            true,
            "still enabled before the instant"
        );
    }
    let deadline = Instant::now() + LEAVE_WITHIN;
    while site.user(ada.employee_id)["accountEnabled"] != false {
        assert!(
            Instant::now() < deadline,
            "disabled within {LEAVE_WITHIN:?}; serve's log:\n{}",
            serve.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Entra audits a step once the directory confirmed it, so the account can be seen
    // disabled a moment before the record is stored.
    let audit = loop {
        let audit = site.audit(&ada.key());
        let audited = audit
            .iter()
            .any(|r| r["stage"] == "entra" && r["action"] == "disable");
        if audited || Instant::now() >= deadline {
            break audit;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let disable = audit
        .iter()
        .find(|r| r["stage"] == "entra" && r["action"] == "disable")
        .unwrap_or_else(|| panic!("the disable is audited: {audit:#?}"));
    let at = instant(&disable["at"]);
    let leave_instant = instant(&json!(LEAVE_INSTANT));
    assert!(at >= leave_instant, "not before the instant: {at}");
    assert!(
        audit
            .iter()
            .any(|r| r["stage"] == "mapping" && r["action"] == "leave"),
        "{audit:#?}"
    );
    if decided_before {
        assert!(
            at < instant(&json!("2026-12-01T17:00:05Z")),
            "at the instant (the timer fires then): {at}"
        );
    }
}

fn instant(value: &Value) -> jiff::Timestamp {
    text(value).parse().unwrap()
}

fn hmac_sha256_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

// -------------------------------------------------------------------------------------------

const BAMBOO_SECRET: &str = "bamboo-private-key-7c1e";

/// BambooHR's event-based webhook, from the sample on its documentation page
/// (documentation.bamboohr.com/docs/event-based-webhooks: ids as strings, `changedFields` on
/// `employee.updated` only), about `employee_id`, signed as BambooHR signs: hex
/// HMAC-SHA256 of the body then the `X-BambooHR-Timestamp` header.
fn bamboo_event(serve: &Serve, event: &str, employee_id: &str, changed: &[&str]) -> Reply {
    let sample =
        std::fs::read_to_string(repo().join("shared/hr/tests/samples/bamboohr-webhook.json"))
            .unwrap();
    let mut payload: Value = serde_json::from_str(&sample).unwrap();
    payload.as_object_mut().unwrap().remove("_comment");
    payload["type"] = json!(event);
    payload["timestamp"] = json!("2026-12-01T16:59:31+0000");
    payload["data"]["employeeId"] = json!(employee_id);
    if event == "employee.updated" {
        payload["data"]["changedFields"] = json!(changed);
    } else {
        payload["data"]
            .as_object_mut()
            .unwrap()
            .remove("changedFields");
    }
    let body = serde_json::to_vec(&payload).unwrap();
    let timestamp = now_seconds().to_string();
    let signature = hmac_sha256_hex(BAMBOO_SECRET, &[&body, timestamp.as_bytes()]);
    serve.post(
        "hr",
        &[
            ("X-BambooHR-Timestamp", timestamp),
            ("X-BambooHR-Signature", signature),
        ],
        body,
    )
}

#[test]
fn bamboohr_hire_is_provisioned_written_back_and_leaves_at_the_instant() {
    use hrsync_hr_emulators::bamboohr;
    // BambooHR's sample employee id names the record; the company's own employee number is
    // what the account carries (`employee_id_field`).
    let who = Ada {
        record: "67890",
        employee_id: "1042",
    };
    let hr = Vendor::start(bamboohr::router);
    let mut ada = bamboohr::employee(who.record, "Ada", "Lovelace");
    ada["employeeNumber"] = json!(who.employee_id);
    ada["department"] = json!("Engineering");
    ada["country"] = json!("GB");
    hr.emulator.put_employee(who.record, ada.clone());
    let site = site(
        &format!(
            "kind = \"bamboohr\"\nbase_url = \"{}\"\nwebhook_secret = {{ env = \"BAMBOO_SECRET\" }}\napi_key = {{ env = \"BAMBOO_KEY\" }}\nemployee_id_field = \"employeeNumber\"\n",
            hr.url()
        ),
        &[
            ("BAMBOO_SECRET", BAMBOO_SECRET),
            ("BAMBOO_KEY", bamboohr::API_KEY),
        ],
    );
    let serve = site.serve();

    let answer = accepted(&bamboo_event(&serve, "employee.created", who.record, &[]));
    assert_eq!(answer["queued"], 1, "{answer}");
    let user = hired(&site, &serve, who);
    let read = hr
        .emulator
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path.starts_with("/employees/67890?"))
        .expect("the record is read by its id");
    assert!(
        read.path.contains("employeeNumber"),
        "the employee id field is asked for: {}",
        read.path
    );
    assert_eq!(
        hr.emulator.written(),
        vec![(who.record.to_owned(), json!({"workEmail": user["mail"]}))],
        "the work email is written back once, to the record's id"
    );
    let reads = hr.reads("GET", "/employees/67890?");

    // A delivery with a bad signature is refused and audited without its content.
    let refused = serve.post(
        "hr",
        &[
            ("X-BambooHR-Timestamp", "1".to_owned()),
            ("X-BambooHR-Signature", "0".repeat(64)),
        ],
        b"{\"type\":\"employee.created\"}".to_vec(),
    );
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let rejected = site.audit("hr:#webhook");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(rejected[0]["action"], "unauthorized");
    assert!(!rejected[0].to_string().contains("employee.created"));

    ada["status"] = json!("Inactive");
    ada["terminationDate"] = json!(LAST_DAY);
    hr.emulator.put_employee(who.record, ada);
    accepted(&bamboo_event(
        &serve,
        "employee.updated",
        who.record,
        &["status", "terminationDate"],
    ));
    leaves_at_the_instant(&site, &serve, who);
    assert!(hr.reads("GET", "/employees/67890?") > reads);
}

// -------------------------------------------------------------------------------------------

const BOB_SECRET: &str = "bob-webhook-secret-2b9d";

/// Ada in Bob: her backend id (19 digits, what webhooks and the API use) and the Employee ID
/// HR gave her (`work.employeeIdInCompany`), which her account carries.
const BOB_ADA: Ada<'static> = Ada {
    record: "3332883854254932743",
    employee_id: "1042",
};

/// A Bob webhook v2 delivery about Ada, in the envelope of Bob's documented example
/// (apidocs.hibob.com changelog "tableentrycreated-tableentryupdated-payload"), signed.
fn bob_event(serve: &Serve, event: &str, data: Value) -> Reply {
    let body = serde_json::to_vec(&json!({
        "companyId": 636192,
        "type": event,
        "triggeredBy": "3332883804594373380",
        "triggeredAt": "2026-12-01T16:59:31.915906",
        "version": "v2",
        "data": data,
    }))
    .unwrap();
    let mut mac = Hmac::<Sha512>::new_from_slice(BOB_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    serve.post("hr", &[("Bob-Signature", signature)], body)
}

#[test]
fn hibob_hire_is_provisioned_written_back_and_leaves_at_the_instant() {
    use hrsync_hr_emulators::hibob;
    let hr = Vendor::start(hibob::router);
    let mut ada = hibob::employee(BOB_ADA.record, 1042, "Ada", "Lovelace");
    hibob::set(&mut ada, "work.department", json!("209192163"));
    hibob::set_human(&mut ada, "work.department", "Engineering");
    hibob::set(&mut ada, "address.country", json!("GB"));
    hr.emulator.put_employee(BOB_ADA.record, ada.clone());
    let site = site(
        &format!(
            "kind = \"hibob\"\nbase_url = \"{}\"\nwebhook_secret = {{ env = \"BOB_SECRET\" }}\nservice_user_id = {{ env = \"BOB_USER\" }}\ntoken = {{ env = \"BOB_TOKEN\" }}\n",
            hr.url()
        ),
        &[
            ("BOB_SECRET", BOB_SECRET),
            ("BOB_USER", hibob::SERVICE_USER_ID),
            ("BOB_TOKEN", hibob::TOKEN),
        ],
    );
    let serve = site.serve();

    // Bob's ping when the webhook is created.
    let ping = serve.post("hr", &[], b"Ping test".to_vec());
    assert_eq!(ping.status, StatusCode::OK, "{}", ping.body);

    let first = bob_event(
        &serve,
        "table.entry.created",
        json!({"employeeId": BOB_ADA.record, "tableId": "lifecycle", "effectiveDate": "2026-12-01"}),
    );
    assert_eq!(accepted(&first)["queued"], 1);
    let user = hired(&site, &serve, BOB_ADA);
    assert_eq!(
        user["employeeId"], "1042",
        "Bob's Employee ID, not the 19-digit backend id"
    );
    assert_eq!(user["department"], "Engineering", "the list item's name");
    assert_eq!(
        hr.emulator.written(),
        vec![(BOB_ADA.record.to_owned(), json!({"email": user["mail"]}))],
        "written back by the backend id"
    );

    hibob::set(&mut ada, "internal.lifecycleStatus", json!("terminated"));
    hibob::set(&mut ada, "internal.status", json!("Inactive"));
    hibob::set(&mut ada, "internal.terminationDate", json!(LAST_DAY));
    hr.emulator.put_employee(BOB_ADA.record, ada);
    accepted(&bob_event(
        &serve,
        "employee.left",
        json!({"employeeId": BOB_ADA.record}),
    ));
    leaves_at_the_instant(&site, &serve, BOB_ADA);
}

// -------------------------------------------------------------------------------------------

const PERSONIO_TOKEN: &str = "personio-webhook-token-5e2a";

/// Personio's documented webhook envelope (`shared/hr/tests/samples/personio-webhook.json`,
/// from developer.personio.de/reference/webhooks) with this event and payload.
fn personio_event(serve: &Serve, event: &str, payload: Value) -> Reply {
    let sample =
        std::fs::read_to_string(repo().join("shared/hr/tests/samples/personio-webhook.json"))
            .unwrap();
    let mut envelope: Value = serde_json::from_str(&sample).unwrap();
    envelope.as_object_mut().unwrap().remove("_comment");
    envelope["event_name"] = json!(event);
    envelope["occurred_at"] = json!("2026-12-01T16:59:31Z");
    envelope["payload"] = payload;
    let body = serde_json::to_vec(&envelope).unwrap();
    serve.post("hr", &[("Authorization", PERSONIO_TOKEN.to_owned())], body)
}

fn personio_site(hr: &Vendor, client_secret: &str) -> Site {
    use hrsync_hr_emulators::personio;
    site(
        &format!(
            "kind = \"personio\"\nbase_url = \"{}\"\nwebhook_secret = {{ env = \"PERSONIO_TOKEN\" }}\nclient_id = {{ env = \"PERSONIO_ID\" }}\nclient_secret = {{ env = \"PERSONIO_SECRET\" }}\n",
            hr.url()
        ),
        &[
            ("PERSONIO_TOKEN", PERSONIO_TOKEN),
            ("PERSONIO_ID", personio::CLIENT_ID),
            ("PERSONIO_SECRET", client_secret),
        ],
    )
}

#[test]
fn personio_hire_is_provisioned_written_back_and_leaves_at_the_instant() {
    use hrsync_hr_emulators::personio;
    // Personio's example ids: person 5005 and a UUID employment; org units are int64s.
    let ada = Ada {
        record: "5005",
        employee_id: "5005",
    };
    let employment_id = "2306b77a-35fb-4b1d-8044-3b14f7f2ca65";
    let hr = Vendor::start(personio::router);
    let mut person = personio::person("5005", "Ada", "Lovelace", "");
    person["email"] = Value::Null;
    hr.emulator.put_employee("5005", person);
    let mut employment = personio::employment(employment_id, "5005", "ACTIVE", "2024-01-08");
    employment["org_units"] = json!([
        {"id": "1463281", "type": "department"},
        {"id": "2240611", "type": "team"},
    ]);
    personio::put_employments(&hr.emulator, "5005", vec![employment.clone()]);
    personio::put_org_unit(&hr.emulator, "1463281", "department", "Sales");
    personio::put_org_unit(&hr.emulator, "2240611", "team", "Enterprise Accounts");
    let site = personio_site(&hr, personio::CLIENT_SECRET);
    let serve = site.serve();

    let created = personio_event(
        &serve,
        "employment.created",
        json!({"id": employment_id, "person_id": "5005"}),
    );
    assert_eq!(accepted(&created)["queued"], 1);
    let user = hired(&site, &serve, ada);
    // The department came from the org unit, read with its type, and its access rule
    // (examples/hrsync.toml: "Sales") applied.
    assert_eq!(user["department"], "Sales", "{user:#}");
    assert_eq!(
        user["groups"],
        json!(sorted(&[
            "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e01",
            "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e05",
            "3f6a1c2e-8b4d-4e7a-9c15-0a2b3c4d5e06",
        ])),
        "All Staff and the Sales rule's groups: {user:#}"
    );
    assert!(hr.reads("GET", "/v2/org-units/1463281?type=department") >= 1);
    assert!(hr.reads("GET", "/v2/org-units/2240611?type=team") >= 1);
    assert_eq!(
        hr.reads("GET", "/v2/org-units/"),
        hr.reads("GET", "?type="),
        "no org unit is asked for without its type"
    );
    assert_eq!(
        hr.emulator.written(),
        vec![("5005".to_owned(), json!({"email": user["mail"]}))]
    );
    let reads = hr.reads("GET", "/v2/persons/5005");

    // Personio retries for up to three days with the same bytes: taken once.
    let again = personio_event(
        &serve,
        "employment.created",
        json!({"id": employment_id, "person_id": "5005"}),
    );
    assert_eq!(accepted(&again)["duplicates"], 1);
    serve.settle();
    assert_eq!(
        hr.reads("GET", "/v2/persons/5005"),
        reads,
        "not fetched again"
    );

    employment["status"] = json!("INACTIVE");
    employment["termination"]["termination_date"] = json!(LAST_DAY);
    personio::put_employments(&hr.emulator, "5005", vec![employment]);
    accepted(&personio_event(
        &serve,
        "employment.updated",
        json!({"id": employment_id, "person_id": "5005"}),
    ));
    leaves_at_the_instant(&site, &serve, ada);
}

// -------------------------------------------------------------------------------------------

const KEKA_TOKEN: &str = "keka-header-token-91f0";

/// Keka's Event Trigger webhook action, as developers.keka.com/docs/getting-started-with-webhooks
/// documents it: a form-encoded POST of `employeeIndentifier` (sic; the employee's GUID),
/// `eventType` and `subDomain`, with the admin's custom header.
fn keka_event(serve: &Serve, employee: &str, event: &str) -> Reply {
    let body = format!(
        "employeeIndentifier={employee}&eventType={}&subDomain=acme",
        event.replace(' ', "%20")
    );
    serve.request(
        serve
            .client
            .post(format!("{}/webhooks/hr", serve.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Keka-Token", KEKA_TOKEN)
            .body(body),
    )
}

#[test]
fn keka_hire_is_provisioned_and_leaves_at_the_instant() {
    use hrsync_hr_emulators::keka;
    // Keka names the employee by a GUID (36 characters, too long for the directory's
    // employeeId); the account carries the employee number.
    let who = Ada {
        record: "8d04399f-8057-4b0d-ab0f-d9b9a5fb0376",
        employee_id: "EMP001",
    };
    let hr = Vendor::start(keka::router);
    let mut ada = keka::employee(who.record, who.employee_id, "Ada", "Lovelace");
    hr.emulator.put_employee(who.record, ada.clone());
    let site = site(
        &format!(
            "kind = \"keka\"\nbase_url = \"{url}{api}\"\ntoken_url = \"{url}/connect/token\"\nwebhook_secret = {{ env = \"KEKA_TOKEN\" }}\nclient_id = {{ env = \"KEKA_ID\" }}\nclient_secret = {{ env = \"KEKA_SECRET\" }}\napi_key = {{ env = \"KEKA_KEY\" }}\n",
            url = hr.url(),
            api = keka::API
        ),
        &[
            ("KEKA_TOKEN", KEKA_TOKEN),
            ("KEKA_ID", keka::CLIENT_ID),
            ("KEKA_SECRET", keka::CLIENT_SECRET),
            ("KEKA_KEY", keka::API_KEY),
        ],
    );
    let serve = site.serve();

    let added = keka_event(&serve, who.record, "Employee added");
    assert_eq!(accepted(&added)["queued"], 1);
    hired(&site, &serve, who);
    let by_guid = format!("/api/v1/hris/employees/{}", who.record);
    assert!(
        hr.reads("GET", &by_guid) >= 1,
        "the record is read by its GUID"
    );
    assert!(
        hr.emulator.written().is_empty(),
        "Keka's API takes no email back"
    );

    ada["exitDate"] = json!(format!("{LAST_DAY}T00:00:00"));
    hr.emulator.put_employee(who.record, ada);
    accepted(&keka_event(&serve, who.record, "Employee exit approved"));
    leaves_at_the_instant(&site, &serve, who);
}

// -------------------------------------------------------------------------------------------

const SCIM_TOKEN: &str = "scim-bearer-token-3a7c";
/// Microsoft's cURL tutorial BulkRequest with a unique bulkId per operation
/// (learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-curl-tutorial).
const SCIM_SAMPLE: &str = "shared/hr/tests/samples/entra-scim-bulk-unique-bulkids.json";
const SCIM_ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The custom namespace of Microsoft's CSV2SCIM script, where its termination columns go
/// (learn.microsoft.com/entra/identity/app-provisioning/inbound-provisioning-api-powershell).
const SCIM_CSV: &str = "urn:ietf:params:scim:schemas:extension:csv:1.0:User";
/// An HR system's person id as `externalId` (the bulkUpload resource: "employeeId or personId
/// or studentId"); too long for the directory's employeeId, so the source takes that from
/// the enterprise `employeeNumber`.
const SCIM_ADA: Ada<'static> = Ada {
    record: "6f1c2b9e-3d4a-4c8e-9b7f-2a5d8e0c1f34",
    employee_id: "42",
};

fn scim_sample() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join(SCIM_SAMPLE)).unwrap()).unwrap()
}

/// The tutorial's first operation as Ada: `active` as given and `columns` in the CSV2SCIM
/// namespace; in Europe/London (no `timezone`), GB, no manager.
fn scim_request(ada: Ada<'_>, active: bool, columns: Value) -> Vec<u8> {
    let mut request = scim_sample();
    let mut operation = request["Operations"][0].clone();
    let data = &mut operation["data"];
    data["externalId"] = json!(ada.record);
    data["name"] = json!({"givenName": "Ada", "familyName": "Lovelace"});
    data["nickName"] = Value::Null;
    data["timezone"] = Value::Null;
    data["active"] = json!(active);
    // ISO 3166 alpha-2, as SCIM says (RFC 7643 §4.1.2) and Graph's usageLocation needs.
    data["addresses"][0]["country"] = json!("GB");
    data[SCIM_ENTERPRISE]["employeeNumber"] = json!(ada.employee_id);
    data[SCIM_ENTERPRISE]["manager"] = Value::Null;
    data["schemas"]
        .as_array_mut()
        .unwrap()
        .push(json!(SCIM_CSV));
    data[SCIM_CSV] = columns;
    request["Operations"] = json!([operation]);
    serde_json::to_vec(&request).unwrap()
}

fn scim_post(serve: &Serve, body: Vec<u8>) -> Reply {
    serve.request(
        serve
            .client
            .post(format!("{}/webhooks/hr", serve.base))
            .header("Content-Type", "application/scim+json")
            .header("Authorization", format!("Bearer {SCIM_TOKEN}"))
            .body(body),
    )
}

/// The BulkResponse of a reply, which must be Entra's 202 Accepted; its operations by bulkId.
fn scim_accepted(reply: &Reply) -> std::collections::BTreeMap<String, Value> {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let response = reply.json();
    assert_eq!(
        response["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    response["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (text(&o["bulkId"]), o.clone()))
        .collect()
}

/// A scim source; `extra` lines go into its table.
fn scim_site(extra: &str) -> Site {
    site(
        &format!("kind = \"scim\"\nwebhook_secret = {{ env = \"SCIM_TOKEN\" }}\n{extra}"),
        &[("SCIM_TOKEN", SCIM_TOKEN)],
    )
}

/// Microsoft's tutorial request, as published but for unique bulkIds, creates its two users
/// (the bug: both were refused for the hire date SCIM does not have); a third operation
/// without an externalId is refused in its own status while the others are taken.
#[test]
fn scim_entra_tutorial_request_creates_its_users_and_refuses_only_the_operation_without_an_id() {
    let site = scim_site("");
    // The tutorial's addresses say "USA" where SCIM wants ISO 3166 alpha-2: the operator's
    // template gives Graph's usageLocation the code it takes.
    let config = std::fs::read_to_string(site.path("hrsync.toml")).unwrap();
    let config = config.replace(
        "usageLocation = \"{{ country or 'GB' }}\"",
        "usageLocation = \"{{ 'US' if country == 'USA' else (country or 'GB') }}\"",
    );
    std::fs::write(site.path("hrsync.toml"), config).unwrap();
    let serve = site.serve();

    let mut request = scim_sample();
    let mut third = request["Operations"][1].clone();
    third["bulkId"] = json!("22cc22cc-dd33-ee44-ff55-66aa66aa66aa");
    third["data"].as_object_mut().unwrap().remove("externalId");
    third["data"]["name"]["givenName"] = json!("Kim");
    request["Operations"].as_array_mut().unwrap().push(third);
    let operations = scim_accepted(&scim_post(&serve, serde_json::to_vec(&request).unwrap()));

    let barbara = &operations["00aa00aa-bb11-cc22-dd33-44ee44ee44ee"];
    assert_eq!(barbara["status"], "202", "{operations:#?}");
    assert_eq!(barbara["location"], "/Users/701984");
    assert_eq!(
        operations["11bb11bb-cc22-dd33-ee44-55ff55ff55ff"]["status"],
        "202"
    );
    let refused = &operations["22cc22cc-dd33-ee44-ff55-66aa66aa66aa"];
    assert_eq!(refused["status"], "400", "{operations:#?}");
    assert!(
        text(&refused["response"]["detail"]).starts_with("Operations[2]: externalId: missing"),
        "{refused:#}"
    );

    serve.settle();
    let barbara = site.user("701984");
    assert_eq!(barbara["accountEnabled"], true, "{barbara:#}");
    assert_eq!(barbara["displayName"], "Babs Jensen");
    assert_eq!(barbara["department"], "Tour Operations");
    assert_eq!(barbara["usageLocation"], "US");
    let kathy = site.user("701985");
    assert_eq!(kathy["accountEnabled"], true, "{kathy:#}");
    assert_eq!(kathy["displayName"], "Kathy Jensen");
    // Kathy's manager.value is Barbara's externalId.
    let directory = site.directory();
    let kathy_record = directory["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["user"]["employeeId"] == "701985")
        .unwrap();
    assert_eq!(kathy_record["managerId"], barbara["id"], "{kathy_record:#}");
    assert_eq!(
        site.users().len(),
        2,
        "no account for the refused operation"
    );
    // The refusal is audited with the delivery, saying what was missing.
    let rejected = site.audit("hr:#webhook");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert_eq!(rejected[0]["action"], "refused");
    assert!(
        text(&rejected[0]["cause"]).contains("Operations[2]: externalId: missing"),
        "{rejected:#?}"
    );
}

/// Ada's externalId is her HR person id and her employeeId the enterprise employeeNumber
/// (`employee_id_field`); hired with no hire date; her last day arrives as CSV2SCIM's
/// `TerminationDate` column while she is still `active`: the account goes at 17:00 London.
#[test]
fn scim_bulk_hire_is_provisioned_and_leaves_at_the_instant() {
    let site = scim_site("employee_id_field = \"employeeNumber\"\n");
    let serve = site.serve();

    let hire = scim_post(&serve, scim_request(SCIM_ADA, true, json!({})));
    let operations = scim_accepted(&hire);
    assert_eq!(
        operations["00aa00aa-bb11-cc22-dd33-44ee44ee44ee"]["location"],
        format!("/Users/{}", SCIM_ADA.record)
    );
    hired(&site, &serve, SCIM_ADA);

    let leave = scim_post(
        &serve,
        scim_request(
            SCIM_ADA,
            true,
            json!({"TerminationDate": LAST_DAY, "LastDayOfWork": "", "IsTerminated": "False"}),
        ),
    );
    assert_eq!(
        scim_accepted(&leave)["00aa00aa-bb11-cc22-dd33-44ee44ee44ee"]["status"],
        "202"
    );
    leaves_at_the_instant(&site, &serve, SCIM_ADA);
}

/// `active: false` is how Entra's docs send a leaver: the account is disabled at once, not at
/// 17:00 on the last day the record also gives (Entra does not wait for it either).
#[test]
fn scim_active_false_disables_the_account_at_once() {
    let site = scim_site("");
    let serve = site.serve();
    scim_accepted(&scim_post(
        &serve,
        scim_request(Ada::NUMBER_42, true, json!({})),
    ));
    hired(&site, &serve, Ada::NUMBER_42);

    scim_accepted(&scim_post(
        &serve,
        scim_request(Ada::NUMBER_42, false, json!({"TerminationDate": LAST_DAY})),
    ));
    serve.settle();
    let user = site.user(Ada::NUMBER_42.employee_id);
    assert_eq!(user["accountEnabled"], false, "{user:#}");
    let audit = site.audit(&Ada::NUMBER_42.key());
    let decision = audit
        .iter()
        .find(|r| {
            r["stage"] == "mapping"
                && text(&r["cause"]).contains("leave: status terminated without a termination_date")
        })
        .unwrap_or_else(|| panic!("a leave at once: {audit:#?}"));
    assert!(
        instant(&decision["at"]) < instant(&json!(LEAVE_INSTANT)),
        "{decision:#}"
    );
}

#[test]
fn bamboohr_poll_finds_a_hire_whose_webhook_never_came_and_a_deleted_record_leaves_at_once() {
    use hrsync_hr_emulators::bamboohr;
    // An id from BambooHR's changed-employees sample; by default the id is the employee id.
    let who = Ada {
        record: "67891",
        employee_id: "67891",
    };
    let hr = Vendor::start(bamboohr::router);
    let mut ada = bamboohr::employee(who.record, "Ada", "Lovelace");
    ada["country"] = json!("GB");
    hr.emulator.put_employee(who.record, ada);
    let site = site(
        &format!(
            "kind = \"bamboohr\"\nbase_url = \"{}\"\nwebhook_secret = {{ env = \"BAMBOO_SECRET\" }}\napi_key = {{ env = \"BAMBOO_KEY\" }}\npoll_every = \"10s\"\n",
            hr.url()
        ),
        &[
            ("BAMBOO_SECRET", BAMBOO_SECRET),
            ("BAMBOO_KEY", bamboohr::API_KEY),
        ],
    );
    let serve = site.serve();

    // The first poll (at start) only sets the cursor; a change after it is found by the next.
    let deadline = Instant::now() + SETTLE;
    while hr.reads("GET", "/employees/changed") == 0 {
        assert!(Instant::now() < deadline, "the first poll runs at start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let changed_at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    bamboohr::record_change(
        &hr.emulator,
        who.record,
        "Inserted",
        &changed_at.to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while site.users_with(who.employee_id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the next poll finds the hire; serve's log:\n{}",
            serve.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let user = hired(&site, &serve, who);
    let cause = site
        .audit(&who.key())
        .iter()
        .find(|r| r["action"] == "received")
        .map(|r| text(&r["cause"]))
        .unwrap();
    assert!(cause.starts_with("poll hr: changed since "), "{cause}");
    assert_eq!(
        hr.emulator.written(),
        vec![(who.record.to_owned(), json!({"workEmail": user["mail"]}))]
    );

    // HR deletes the record: the fetch finds it gone, and the worker leaves now.
    hr.emulator.remove_employee(who.record);
    accepted(&bamboo_event(&serve, "employee.deleted", who.record, &[]));
    serve.settle();
    assert_eq!(site.user(who.employee_id)["accountEnabled"], false);
    let audit = site.audit(&who.key());
    assert!(
        audit.iter().any(|r| r["stage"] == "intake"
            && text(&r["cause"]) == "webhook hr: employee.deleted: the HR record is gone"),
        "{audit:#?}"
    );
    // Every poll's `since` was one BambooHR takes (it answers 400 to one it cannot read).
    let polls: Vec<_> = hr
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/employees/changed"))
        .collect();
    assert!(polls.len() >= 2, "{polls:#?}");
    assert!(
        polls.iter().all(|r| !r.path.contains('.')),
        "whole seconds: {polls:#?}"
    );
}

/// A refused API credential stops `serve` at its start, with one error saying what to fix. Refused
/// in the middle of the work (a rotated secret), it is an outage, not the worker's failure: the
/// fetch is kept, with none of its tries used up, one warning says why, and the work is done
/// once the credential is accepted again; nothing is dead-lettered.
#[test]
fn a_refused_api_credential_stops_serve_at_start_and_mid_run_keeps_the_fetch() {
    use hrsync_hr_emulators::personio;
    let hr = Vendor::start(personio::router);
    hr.emulator.put_employee(
        "5005",
        personio::person("5005", "Ada", "Lovelace", "ada@old.example"),
    );
    let employment = personio::employment(
        "2306b77a-35fb-4b1d-8044-3b14f7f2ca65",
        "5005",
        "ACTIVE",
        "2024-01-08",
    );
    personio::put_employments(&hr.emulator, "5005", vec![employment]);
    let err = serve_refused_at_start(&personio_site(&hr, "not-the-secret"));
    assert!(
        err.contains("refused the client credentials") && err.contains("client_secret"),
        "the error names what to fix: {err}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");

    let site = personio_site(&hr, personio::CLIENT_SECRET);
    let serve = site.serve();
    // The credential is refused from now on: the API call and the token refresh after it.
    hr.emulator.fail_next(2, 401, None);
    let created = personio_event(&serve, "person.created", json!({"id": "5005"}));
    assert_eq!(accepted(&created)["queued"], 1, "answered before the fetch");
    let deadline = Instant::now() + SETTLE;
    while !serve.log_text().contains("work waits, using up no tries") {
        assert!(
            Instant::now() < deadline,
            "one warning says the HR API refuses the credential: {}",
            serve.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = serve.log_text();
    assert!(
        log.contains("Personio refused the credential (HTTP 401)")
            || log.contains("refused the client credentials"),
        "{log}"
    );
    assert!(!log.contains("5005"), "no worker in the warning: {log}");
    let health = serve.healthz().json();
    assert_eq!(health["queues"]["hr-events"]["dead"], 0, "{health}");
    assert_eq!(
        health["queues"]["hr-events"]["visible"], 1,
        "the fetch is kept: {health}"
    );

    // Accepted again: the kept fetch is done at the next try of the queue (30 s later).
    let deadline = Instant::now() + Duration::from_secs(90);
    while site.users_with("5005").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the kept fetch is done: {}\n{}",
            serve.log_text(),
            site.json(&["dlq", "list"])
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        serve.log_text().contains("the service is back"),
        "{}",
        serve.log_text()
    );
    let letters = site.json(&["dlq", "list"]);
    assert_eq!(letters, json!([]), "nothing dead-lettered");
}

/// `hrsync serve` on `site`, which must refuse to start (exit 2): what it wrote to stderr.
fn serve_refused_at_start(site: &Site) -> String {
    let output = site
        .command(&[
            "serve",
            "--config",
            "hrsync.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{err}");
    err
}

/// `doctor`'s HR API check of `site`, which must fail within seconds: its detail.
fn failed_fast(site: &Site) -> String {
    let started = Instant::now();
    let (code, check) = doctor_hr_check(site);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (code, &check["status"]),
        (Some(1), &json!("FAILED")),
        "{check}"
    );
    text(&check["detail"])
}

/// `hrsync doctor --format json` on the site: its exit status and the check of `[source.hr]`'s
/// API.
fn doctor_hr_check(site: &Site) -> (Option<i32>, Value) {
    let output = site
        .command(&["doctor", "--config", "hrsync.toml", "--format", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "one JSON document ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "hr api hr")
        .unwrap_or_else(|| panic!("a check of the HR API: {report:#}"))
        .clone();
    (output.status.code(), check)
}

/// `hrsync doctor` makes one harmless authenticated read of each vendor's API, and names a
/// refused credential.
#[test]
fn doctor_reads_each_hr_api_and_names_a_refused_credential() {
    use hrsync_hr_emulators::{bamboohr, hibob, keka, personio};
    let bamboo = Vendor::start(bamboohr::router);
    let bamboo_site = |key: &str| {
        site(
            &format!(
                "kind = \"bamboohr\"\nbase_url = \"{}\"\nwebhook_secret = {{ env = \"BAMBOO_SECRET\" }}\napi_key = {{ env = \"BAMBOO_KEY\" }}\n",
                bamboo.url()
            ),
            &[("BAMBOO_SECRET", BAMBOO_SECRET), ("BAMBOO_KEY", key)],
        )
    };
    let (code, check) = doctor_hr_check(&bamboo_site(bamboohr::API_KEY));
    assert_eq!((code, &check["status"]), (Some(0), &json!("ok")), "{check}");
    assert!(
        text(&check["detail"]).contains("/employees/changed"),
        "{check}"
    );
    let (code, check) = doctor_hr_check(&bamboo_site("not-the-key"));
    assert_eq!(
        (code, &check["status"]),
        (Some(1), &json!("FAILED")),
        "{check}"
    );
    assert!(
        text(&check["detail"]).contains("refused the credential"),
        "{check}"
    );
    assert!(!check.to_string().contains("not-the-key"), "{check}");

    let bob = Vendor::start(hibob::router);
    let bob_site = site(
        &format!(
            "kind = \"hibob\"\nbase_url = \"{}\"\nwebhook_secret = {{ env = \"BOB_SECRET\" }}\nservice_user_id = {{ env = \"BOB_USER\" }}\ntoken = {{ env = \"BOB_TOKEN\" }}\n",
            bob.url()
        ),
        &[
            ("BOB_SECRET", BOB_SECRET),
            ("BOB_USER", hibob::SERVICE_USER_ID),
            ("BOB_TOKEN", hibob::TOKEN),
        ],
    );
    let (code, check) = doctor_hr_check(&bob_site);
    assert_eq!((code, &check["status"]), (Some(0), &json!("ok")), "{check}");

    let personio_hr = Vendor::start(personio::router);
    let (code, check) = doctor_hr_check(&personio_site(&personio_hr, personio::CLIENT_SECRET));
    assert_eq!((code, &check["status"]), (Some(0), &json!("ok")), "{check}");
    let (code, check) = doctor_hr_check(&personio_site(&personio_hr, "not-the-secret"));
    assert_eq!(
        (code, &check["status"]),
        (Some(1), &json!("FAILED")),
        "{check}"
    );
    assert!(
        text(&check["detail"]).contains("refused the client credentials"),
        "{check}"
    );

    let keka_hr = Vendor::start(keka::router);
    let keka_site = site(
        &format!(
            "kind = \"keka\"\nbase_url = \"{url}{api}\"\ntoken_url = \"{url}/connect/token\"\nwebhook_secret = {{ env = \"KEKA_TOKEN\" }}\nclient_id = {{ env = \"KEKA_ID\" }}\nclient_secret = {{ env = \"KEKA_SECRET\" }}\napi_key = {{ env = \"KEKA_KEY\" }}\n",
            url = keka_hr.url(),
            api = keka::API
        ),
        &[
            ("KEKA_TOKEN", KEKA_TOKEN),
            ("KEKA_ID", keka::CLIENT_ID),
            ("KEKA_SECRET", keka::CLIENT_SECRET),
            ("KEKA_KEY", keka::API_KEY),
        ],
    );
    let (code, check) = doctor_hr_check(&keka_site);
    assert_eq!((code, &check["status"]), (Some(0), &json!("ok")), "{check}");
}

/// `serve` reads each HR API once at start, as `doctor` does: one nobody listens on stops the
/// start within seconds with one error naming where and why, instead of failing the first
/// deliveries.
#[test]
fn serve_stops_at_start_when_an_hr_api_cannot_be_reached() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let bamboo_site = site(
        &format!(
            "kind = \"bamboohr\"\nbase_url = \"http://127.0.0.1:{port}/api/gateway.php/acme/v1\"\nwebhook_secret = {{ env = \"BAMBOO_SECRET\" }}\napi_key = {{ env = \"BAMBOO_KEY\" }}\n"
        ),
        &[("BAMBOO_SECRET", BAMBOO_SECRET), ("BAMBOO_KEY", "key")],
    );
    let started = Instant::now();
    let err = serve_refused_at_start(&bamboo_site);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("source hr: "), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains("connection refused") && err.contains("fix:"),
        "{err}"
    );
    assert!(!err.contains("listening on"), "it never listened: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
}

/// An HR API nobody listens on: the fetch gives up within seconds, naming where and why.
#[test]
fn doctor_names_an_unreachable_hr_api() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let bamboo_site = site(
        &format!(
            "kind = \"bamboohr\"\nbase_url = \"http://127.0.0.1:{port}/api/gateway.php/acme/v1\"\nwebhook_secret = {{ env = \"BAMBOO_SECRET\" }}\napi_key = {{ env = \"BAMBOO_KEY\" }}\n"
        ),
        &[("BAMBOO_SECRET", BAMBOO_SECRET), ("BAMBOO_KEY", "key")],
    );
    let detail = failed_fast(&bamboo_site);
    assert!(detail.contains(&format!("127.0.0.1:{port}")), "{detail}");
    assert!(detail.contains("connection refused"), "{detail}");

    // An OAuth2 token endpoint nobody listens on, the same way.
    use hrsync_hr_emulators::keka;
    let keka_hr = Vendor::start(keka::router);
    let keka_site = site(
        &format!(
            "kind = \"keka\"\nbase_url = \"{url}{api}\"\ntoken_url = \"http://127.0.0.1:{port}/connect/token\"\nwebhook_secret = {{ env = \"KEKA_TOKEN\" }}\nclient_id = {{ env = \"KEKA_ID\" }}\nclient_secret = {{ env = \"KEKA_SECRET\" }}\napi_key = {{ env = \"KEKA_KEY\" }}\n",
            url = keka_hr.url(),
            api = keka::API
        ),
        &[
            ("KEKA_TOKEN", KEKA_TOKEN),
            ("KEKA_ID", keka::CLIENT_ID),
            ("KEKA_SECRET", keka::CLIENT_SECRET),
            ("KEKA_KEY", keka::API_KEY),
        ],
    );
    let detail = failed_fast(&keka_site);
    assert!(
        detail.contains(&format!("token endpoint at http://127.0.0.1:{port}")),
        "{detail}"
    );
    assert!(detail.contains("connection refused"), "{detail}");
    assert!(!detail.contains(keka::CLIENT_SECRET), "{detail}");
}
