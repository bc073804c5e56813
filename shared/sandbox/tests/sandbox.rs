//! The sandbox over HTTP, the way the Graph client and the local runtime use it.

use std::time::Duration;

use hrsync_sandbox::{
    Faults, RunningSandbox, Sandbox, SandboxConfig, SeedGroup, SeedSku, WriteLimit,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TENANT: &str = "contoso-tenant";
const SKU_E3: &str = "05e9a617-0261-4cee-bb44-138d3ef5d965";
const SKU_E5: &str = "06ebc4ee-1bb5-47dd-8120-11324bc54e06";
const STAFF: &str = "8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11";
const LEADS: &str = "0b9e2d51-6a1c-4c1e-8f5e-2d3c4b5a6978";

fn group(id: &str, name: &str) -> SeedGroup {
    SeedGroup {
        id: id.to_owned(),
        display_name: name.to_owned(),
        licenses: Vec::new(),
    }
}

fn sku(id: &str, part: &str, units: u32) -> SeedSku {
    SeedSku {
        id: id.to_owned(),
        part_number: part.to_owned(),
        units,
    }
}

/// A sandbox with the groups the scenarios use (`STAFF`, `LEADS`) and an E3 SKU.
fn seeded() -> SandboxConfig {
    SandboxConfig {
        groups: vec![group(STAFF, "Staff"), group(LEADS, "Leads")],
        skus: vec![sku(SKU_E3, "ENTERPRISEPACK", 100)],
        ..SandboxConfig::default()
    }
}

struct Env {
    sandbox: RunningSandbox,
    http: reqwest::Client,
    token: String,
}

async fn token(http: &reqwest::Client, sandbox: &RunningSandbox) -> String {
    let response = http
        .post(sandbox.token_url(TENANT))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", "anything goes"),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn start(config: SandboxConfig) -> Env {
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let http = reqwest::Client::new();
    let token = token(&http, &sandbox).await;
    Env {
        sandbox,
        http,
        token,
    }
}

async fn start_default() -> Env {
    start(SandboxConfig::default()).await
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    (status, body)
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.sandbox.graph_url(),
            path.trim_start_matches('/')
        )
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// GET with a `$filter` (query-encoded by reqwest).
    async fn filter(&self, path: &str, filter: &str) -> (StatusCode, Value) {
        let url = format!(
            "{}?$filter={}&$select=id,employeeId,userPrincipalName",
            self.url(path),
            encode(filter)
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        read(response).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Creates a user and returns its id.
    async fn create(&self, upn: &str, employee_id: &str) -> String {
        let (status, body) = self.post("users", new_user(upn, employee_id)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }
}

/// Query-component percent-encoding (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn new_user(upn: &str, employee_id: &str) -> Value {
    let alias = upn.split('@').next().unwrap_or_default();
    json!({
        "accountEnabled": true,
        "displayName": alias,
        "mailNickname": alias.replace('\'', ""),
        "userPrincipalName": upn,
        "employeeId": employee_id,
        "passwordProfile": {"password": "Correct-Horse-9", "forceChangePasswordNextSignIn": true},
    })
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

fn ids(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|u| u["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn token_then_create_user_201() {
    let env = start_default().await;
    assert_eq!(env.sandbox.sandbox.tokens_issued(), 1);
    let mut body = new_user("ada.lovelace@acme.example", "1001");
    body["mail"] = json!("Ada.Lovelace@acme.example");
    body["department"] = json!("Engineering");
    body["employeeHireDate"] = json!("2024-03-01T08:00:00Z");
    body["employeeOrgData"] = json!({"division": "R&D", "costCenter": "CC-1"});
    body["onPremisesExtensionAttributes"] = json!({"extensionAttribute1": "hrsync"});
    let (status, user) = env.post("users", body).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().expect("id");
    assert_eq!(id.len(), 36);
    assert!(
        user.get("passwordProfile").is_none(),
        "the password is never returned"
    );
    assert!(
        user["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#users/$entity"))
    );
    // Graph answers a create with the default property set (learn.microsoft.com/graph/api/user-post-users).
    let mut keys: Vec<&str> = user
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with('@'))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "businessPhones",
            "displayName",
            "givenName",
            "id",
            "jobTitle",
            "mail",
            "mobilePhone",
            "officeLocation",
            "preferredLanguage",
            "surname",
            "userPrincipalName"
        ]
    );
    let (_, stored) = env
        .get(&format!(
            "users/{id}?$select=employeeId,department,employeeOrgData,proxyAddresses"
        ))
        .await;
    assert_eq!(stored["employeeId"], "1001");
    assert_eq!(stored["department"], "Engineering");
    assert_eq!(stored["employeeOrgData"]["costCenter"], "CC-1");
    assert_eq!(
        stored["proxyAddresses"],
        json!(["SMTP:Ada.Lovelace@acme.example"])
    );

    let (status, read) = env
        .get(&format!("users/{id}?$select=employeeId,department"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["id"], id);
    assert_eq!(read["employeeId"], "1001");
    assert!(
        read.get("displayName").is_none(),
        "only $select-ed properties (and id) come back"
    );

    let (status, by_upn) = env.get("users/ADA.LOVELACE@acme.example").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_upn["id"], id);
    assert_eq!(
        by_upn["businessPhones"],
        json!([]),
        "Graph's default property set"
    );
    assert!(
        by_upn.get("employeeId").is_none(),
        "employeeId is not in the default set"
    );
}

/// Asks the token endpoint with this form.
async fn token_answer(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    read(http.post(url).form(form).send().await.expect("request")).await
}

#[tokio::test]
async fn token_endpoint_speaks_the_identity_platform_shapes() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let url = sandbox.token_url(TENANT);
    let scope = ("scope", "https://graph.microsoft.com/.default");
    let client = ("client_id", "app");

    let (status, body) = token_answer(
        &http,
        &url,
        &[
            ("grant_type", "password"),
            client,
            scope,
            ("client_secret", "s"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS70003:"))
    );
    assert_eq!(body["error_codes"], json!([70003]));

    let (status, body) = token_answer(&http, &url, &[client, scope]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("'grant_type'"))
    );

    let (status, body) = token_answer(
        &http,
        &url,
        &[("grant_type", "client_credentials"), client, scope],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("AADSTS7000218:"))
    );

    let assertion_type = (
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    );
    let (status, body) = token_answer(
        &http,
        &url,
        &[
            ("grant_type", "client_credentials"),
            client,
            scope,
            assertion_type,
            ("client_assertion", "nope"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Another issuer's token ({"alg":"RS256"}, {"sub":"x"}) is workload identity federation:
    // no federated identity credential is configured, so none matches.
    let foreign = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let (status, body) = token_answer(
        &http,
        &url,
        &[
            ("grant_type", "client_credentials"),
            client,
            scope,
            assertion_type,
            ("client_assertion", foreign),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"].as_str().is_some_and(|d| d.starts_with(
            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: ''. Assertion Subject: 'x'."
        )),
        "{body}"
    );

    // The app's own assertion must carry its client id as the subject too
    // ({"iss":"app","sub":"someone"}).
    let (status, body) = token_answer(
        &http,
        &url,
        &[
            ("grant_type", "client_credentials"),
            client,
            scope,
            assertion_type,
            (
                "client_assertion",
                "eyJhbGciOiJQUzI1NiJ9.eyJpc3MiOiJhcHAiLCJzdWIiOiJzb21lb25lIn0.c2lnbmF0dXJl",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error_codes"], json!([50048]), "{body}");

    // The app's own certificate assertion ({"alg":"PS256"}, {"iss":"app","sub":"app"}) is
    // accepted by its shape.
    let jwt = "eyJhbGciOiJQUzI1NiJ9.eyJpc3MiOiJhcHAiLCJzdWIiOiJhcHAifQ.c2lnbmF0dXJl";
    let (status, body) = token_answer(
        &http,
        &url,
        &[
            ("grant_type", "client_credentials"),
            client,
            scope,
            assertion_type,
            ("client_assertion", jwt),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        sandbox.sandbox.tokens_issued(),
        1,
        "only successful requests issue tokens"
    );
}

#[tokio::test]
async fn requests_without_a_token_it_issued_get_401() {
    let env = start_default().await;
    let (status, body) = read(
        env.http
            .get(env.url("users"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    assert!(body["error"]["innerError"]["date"].is_string());

    let forged = format!("{}x", env.token);
    let (status, body) = read(
        env.http
            .get(env.url("users"))
            .bearer_auth(forged)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "InvalidAuthenticationToken");

    let (status, _) = env.get("users").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn duplicate_upn_mail_and_validation_errors() {
    let env = start_default().await;
    let mut first = new_user("grace@acme.example", "2001");
    first["mail"] = json!("grace.hopper@acme.example");
    assert_eq!(env.post("users", first).await.0, StatusCode::CREATED);

    let (status, body) = env
        .post("users", new_user("GRACE@acme.example", "2002"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "Another object with the same value for property userPrincipalName already exists."
    );
    assert_eq!(body["error"]["details"][0]["code"], "ObjectConflict");

    // A UPN equal to someone's mail (proxy address) is taken too.
    let (status, body) = env
        .post("users", new_user("grace.hopper@acme.example", "2003"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "Request_BadRequest");

    let (status, body) = env
        .post("users", new_user("alan@elsewhere.example", "2004"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("verified domain"), "{body}");

    let mut missing = new_user("alan@acme.example", "2005");
    missing
        .as_object_mut()
        .expect("object")
        .remove("mailNickname");
    let (status, body) = env.post("users", missing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert!(error_message(&body).contains("mailNickname"), "{body}");

    let mut no_password = new_user("alan@acme.example", "2005");
    no_password["passwordProfile"] = json!({"forceChangePasswordNextSignIn": true});
    let (status, body) = env.post("users", no_password).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("passwordProfile.password"),
        "{body}"
    );

    let mut too_long = new_user("alan@acme.example", "12345678901234567");
    too_long["employeeId"] = json!("12345678901234567");
    let (status, body) = env.post("users", too_long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("'employeeId'"), "{body}");

    let mut typo = new_user("alan@acme.example", "2005");
    typo["departmnet"] = json!("Ops");
    let (status, body) = env.post("users", typo).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("'departmnet'"), "{body}");

    assert_eq!(
        env.sandbox.sandbox.users().len(),
        1,
        "no failed create left anything behind"
    );
}

/// Graph's documented limits on user properties (learn.microsoft.com/graph/api/resources/user):
/// a value one character over is refused with Graph's error, on create and on update, and
/// changes nothing; the limit itself is taken.
#[tokio::test]
async fn values_beyond_graphs_documented_limits_are_refused() {
    let env = start_default().await;
    let id = env.create("ada@acme.example", "4001").await;
    let limits = [
        ("city", 128),
        ("companyName", 64),
        ("country", 128),
        ("department", 64),
        ("displayName", 256),
        ("employeeId", 16),
        ("givenName", 64),
        ("jobTitle", 128),
        ("mailNickname", 64),
        ("mobilePhone", 64),
        ("officeLocation", 128),
        ("postalCode", 40),
        ("state", 128),
        ("streetAddress", 1024),
        ("surname", 64),
    ];
    for (property, max) in limits {
        // Characters, not bytes (but a mailNickname is ASCII).
        let unit = if property == "mailNickname" {
            "a"
        } else {
            "é"
        };
        let over = unit.repeat(max + 1);
        let (status, body) = env
            .patch(&format!("users/{id}"), json!({ property: over }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{property}: {body}");
        assert_eq!(error_code(&body), "Request_BadRequest");
        assert_eq!(
            error_message(&body),
            format!("Invalid value specified for property '{property}' of resource 'User'.")
        );
        let mut create = new_user("bob@acme.example", "4002");
        create[property] = json!(over);
        let (status, _) = env.post("users", create).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{property} on create");

        let at_limit = unit.repeat(max);
        let (status, body) = env
            .patch(&format!("users/{id}"), json!({ property: at_limit }))
            .await;
        assert_eq!(
            status,
            StatusCode::NO_CONTENT,
            "{property} at {max}: {body}"
        );
    }
    assert_eq!(
        env.sandbox.sandbox.users().len(),
        1,
        "no refused create left a user"
    );

    // mailNickname: ASCII without @ ( ) \ [ ] " ; : < > , or space
    // (learn.microsoft.com/graph/api/resources/group, mailNickname).
    for bad in [
        "ada lovelace",
        "ada@home",
        "zoë",
        "a(b)",
        "a;b",
        "a\\b",
        "a<b>",
        "a,b",
    ] {
        let (status, body) = env
            .patch(&format!("users/{id}"), json!({"mailNickname": bad}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
    }
    let (status, _) = env
        .patch(
            &format!("users/{id}"),
            json!({"mailNickname": "ada.o'brien"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // displayName "can't be cleared during updates"; usageLocation is "Not nullable".
    let (status, _) = env
        .patch(&format!("users/{id}"), json!({"usageLocation": "GB"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for property in ["displayName", "usageLocation"] {
        let (status, body) = env
            .patch(&format!("users/{id}"), json!({ property: null }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{property}: {body}");
        assert_eq!(
            error_message(&body),
            format!("Invalid value specified for property '{property}' of resource 'User'.")
        );
    }
    let (_, user) = env
        .get(&format!("users/{id}?$select=displayName,usageLocation"))
        .await;
    assert_eq!(user["usageLocation"], "GB");
    assert!(user["displayName"].is_string(), "{user}");
}

#[tokio::test]
async fn patch_updates_clears_and_rechecks_uniqueness() {
    let env = start_default().await;
    let a = env.create("a@acme.example", "3001").await;
    env.create("b@acme.example", "3002").await;

    let (status, _) = env
        .patch(
            &format!("users/{a}"),
            json!({"jobTitle": "Engineer", "usageLocation": "gb"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = env
        .get(&format!("users/{a}?$select=jobTitle,usageLocation"))
        .await;
    assert_eq!(user["jobTitle"], "Engineer");
    assert_eq!(user["usageLocation"], "GB");

    let (status, _) = env
        .patch(&format!("users/{a}"), json!({"jobTitle": null}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = env.get(&format!("users/{a}?$select=jobTitle")).await;
    assert_eq!(user["jobTitle"], Value::Null);

    let (status, body) = env
        .patch(
            &format!("users/{a}"),
            json!({"userPrincipalName": "B@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(&body),
        "Another object with the same value for property userPrincipalName already exists."
    );

    let (status, _) = env
        .patch(&format!("users/{a}"), json!({"mail": "a.new@acme.example"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = env
        .get(&format!("users/{a}?$select=mail,proxyAddresses"))
        .await;
    assert_eq!(user["proxyAddresses"], json!(["SMTP:a.new@acme.example"]));

    let (status, body) = env
        .patch(
            "users/00000000-0000-0000-0000-000000000000",
            json!({"jobTitle": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    assert_eq!(
        error_message(&body),
        "Resource '00000000-0000-0000-0000-000000000000' does not exist or one of its queried reference-property objects are not present."
    );

    let (status, body) = env
        .post(&format!("users/{a}/revokeSignInSessions"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], true);
    let (_, user) = env
        .get(&format!(
            "users/{a}?$select=signInSessionsValidFromDateTime"
        ))
        .await;
    assert!(user["signInSessionsValidFromDateTime"].is_string());
}

#[tokio::test]
async fn manager_references() {
    let env = start_default().await;
    let boss = env.create("boss@acme.example", "4001").await;
    let worker = env.create("worker@acme.example", "4002").await;

    let (status, body) = env.get(&format!("users/{worker}/manager")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");

    let reference = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{boss}")});
    let (status, _) = env
        .put(&format!("users/{worker}/manager/$ref"), reference)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, manager) = env
        .get(&format!(
            "users/{worker}/manager?$select=id,userPrincipalName"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(manager["id"], boss.as_str());
    assert_eq!(env.sandbox.sandbox.manager_of(&worker), Some(boss.clone()));

    let ghost = json!({"@odata.id": "https://graph.microsoft.com/v1.0/users/00000000-0000-0000-0000-000000000001"});
    let (status, body) = env
        .put(&format!("users/{worker}/manager/$ref"), ghost)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");

    assert_eq!(
        env.delete(&format!("users/{worker}/manager/$ref")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.delete(&format!("users/{worker}/manager/$ref")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn licenses_need_a_usage_location_and_a_known_sku() {
    let env = start(SandboxConfig {
        skus: vec![sku(SKU_E3, "ENTERPRISEPACK", 10)],
        ..SandboxConfig::default()
    })
    .await;
    let id = env.create("lic@acme.example", "5001").await;
    let assign =
        json!({"addLicenses": [{"skuId": SKU_E3, "disabledPlans": []}], "removeLicenses": []});

    let (status, body) = env
        .post(&format!("users/{id}/assignLicense"), assign.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "License assignment cannot be done for user with invalid usage location."
    );

    assert_eq!(
        env.patch(&format!("users/{id}"), json!({"usageLocation": "US"}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (status, user) = env.post(&format!("users/{id}/assignLicense"), assign).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["id"], id.as_str());
    let (_, user) = env
        .get(&format!("users/{id}?$select=assignedLicenses"))
        .await;
    assert_eq!(user["assignedLicenses"][0]["skuId"], SKU_E3);

    let (status, details) = env.get(&format!("users/{id}/licenseDetails")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(details["value"][0]["skuPartNumber"], "ENTERPRISEPACK");

    let unknown = json!({"addLicenses": [{"skuId": "c42b9cae-ea4f-4ab7-9717-81576235ccac"}], "removeLicenses": []});
    let (status, body) = env
        .post(&format!("users/{id}/assignLicense"), unknown)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "License c42b9cae-ea4f-4ab7-9717-81576235ccac does not correspond to a valid company License."
    );

    let remove = json!({"addLicenses": [], "removeLicenses": [SKU_E3]});
    assert_eq!(
        env.post(&format!("users/{id}/assignLicense"), remove.clone())
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = env.post(&format!("users/{id}/assignLicense"), remove).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, details) = env.get(&format!("users/{id}/licenseDetails")).await;
    assert_eq!(details["value"], json!([]));
}

#[tokio::test]
async fn group_membership() {
    let group = "8c3f9f5e-1b7a-4d7e-9a55-3f1f4a0c2b11";
    let env = start(SandboxConfig {
        groups: vec![SeedGroup {
            id: group.to_owned(),
            display_name: "Engineering".to_owned(),
            licenses: Vec::new(),
        }],
        ..SandboxConfig::default()
    })
    .await;
    let id = env.create("member@acme.example", "6001").await;
    let other = env.create("other@acme.example", "6002").await;
    let reference =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});

    let (status, _) = env
        .post(&format!("groups/{group}/members/$ref"), reference.clone())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = env
        .post(&format!("groups/{group}/members/$ref"), reference.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    assert_eq!(env.sandbox.sandbox.group_members(group), vec![id.clone()]);

    let (status, groups) = env.get(&format!("users/{id}/memberOf?$select=id")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&groups), vec![group.to_owned()]);

    let (status, body) = env
        .post(
            "groups/00000000-0000-0000-0000-00000000000a/members/$ref",
            reference,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "seeded groups: an unknown group is 404"
    );
    assert_eq!(error_code(&body), "Request_ResourceNotFound");

    let (status, body) = env
        .delete(&format!("groups/{group}/members/{other}/$ref"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    assert_eq!(
        env.delete(&format!("groups/{group}/members/{id}/$ref"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert!(env.sandbox.sandbox.group_members(group).is_empty());
}

/// Nothing creates a group: an unknown group is 404, as in Graph, seeded or not.
#[tokio::test]
async fn unknown_groups_are_404_even_with_no_groups_seeded() {
    let env = start_default().await;
    let id = env.create("auto@acme.example", "6101").await;
    let reference =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    let (status, body) = env
        .post(&format!("groups/{STAFF}/members/$ref"), reference)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    assert!(env.sandbox.sandbox.group_members(STAFF).is_empty());
    let (status, _) = env.get(&format!("groups/{STAFF}/members")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn filter_literals_are_data_not_syntax() {
    let env = start_default().await;
    let obrien = env.create("obrien@acme.example", "o'brien").await;
    env.create("obrian@acme.example", "obrien").await;
    env.create("y@acme.example", "y").await;

    let (status, body) = env.filter("users", "employeeId eq 'o''brien'").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), vec![obrien]);
    assert_eq!(body["value"][0]["employeeId"], "o'brien");
    assert!(body["value"][0].get("displayName").is_none());

    // What a client that quotes its literals (hrsync's odata::eq) sends for a hostile employee
    // id: `x' or employeeId ne 'y` with every quote doubled.
    let injected = "employeeId eq 'x'' or employeeId ne ''y'";
    let (status, body) = env.filter("users", injected).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], json!([]));

    for malformed in [
        "employeeId eq 'x",
        "employeeId eq",
        "employeeId = 'x'",
        "(employeeId eq 'x'",
        "employeeId eq 'x' garbage",
        "",
    ] {
        let (status, body) = env.filter("users", malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed:?} -> {body}");
        assert!(
            body.get("value").is_none(),
            "{malformed:?} must never list users"
        );
        assert!(
            matches!(error_code(&body), "BadRequest" | "Request_UnsupportedQuery"),
            "{malformed:?} -> {body}"
        );
    }

    let (status, body) = env
        .filter("users", "employeeId eq 'x' or employeeId ne 'y'")
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "ne needs an advanced query: {body}"
    );
    assert_eq!(error_code(&body), "Request_UnsupportedQuery");

    let (status, body) = env.filter("users", "favouriteColour eq 'red'").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("favouriteColour"), "{body}");
}

#[tokio::test]
async fn filter_by_mail_upn_and_proxy_addresses_ignores_case() {
    let env = start_default().await;
    let mut body = new_user("mixed.case@acme.example", "7001");
    body["mail"] = json!("Mixed.Case@Acme.example");
    let (_, created) = env.post("users", body).await;
    let id = created["id"].as_str().expect("id").to_owned();
    env.create("someone.else@acme.example", "7002").await;

    for filter in [
        "proxyAddresses/any(p:p eq 'smtp:mixed.case@acme.example')",
        "proxyAddresses/any(p:p eq 'SMTP:MIXED.CASE@ACME.EXAMPLE')",
        "mail eq 'mixed.case@acme.example'",
        "userPrincipalName eq 'MIXED.CASE@acme.example'",
        "startswith(userPrincipalName,'mixed.')",
        "(employeeId eq 'nope' or employeeId eq '7001') and accountEnabled eq true",
        "employeeId in ('7001','9999')",
    ] {
        let (status, body) = env.filter("users", filter).await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        assert_eq!(ids(&body), vec![id.clone()], "{filter}");
    }
}

#[tokio::test]
async fn top_pages_with_next_links() {
    let env = start_default().await;
    for n in 0..5 {
        env.create(&format!("page{n}@acme.example"), &format!("80{n}"))
            .await;
    }
    let (status, page) = env.get("users?$top=2&$select=id").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page).len(), 2);
    let mut seen = ids(&page);
    let mut next = page["@odata.nextLink"].as_str().map(str::to_owned);
    while let Some(link) = next {
        let (status, page) = read(
            env.http
                .get(&link)
                .bearer_auth(&env.token)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(ids(&page));
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(env.get("users?$top=0").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn soft_deleted_users_keep_their_names_and_can_be_found_and_restored() {
    let env = start_default().await;
    let id = env.create("leaver@acme.example", "9001").await;
    assert_eq!(
        env.delete(&format!("users/{id}")).await.0,
        StatusCode::NO_CONTENT
    );

    assert_eq!(
        env.get(&format!("users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, live) = env.filter("users", "employeeId eq '9001'").await;
    assert_eq!(live["value"], json!([]));

    let (status, deleted) = env
        .filter(
            "directory/deletedItems/microsoft.graph.user",
            "employeeId eq '9001'",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(ids(&deleted), vec![id.clone()]);
    let snapshot = env.sandbox.sandbox.users();
    assert!(snapshot[0]["deletedDateTime"].is_string());

    let (status, restored) = env
        .post(&format!("directory/deletedItems/{id}/restore"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(env.get(&format!("users/{id}")).await.0, StatusCode::OK);
    assert_eq!(restored["userPrincipalName"], "leaver@acme.example");
}

/// A soft-deleted user's UPN is free for a new account at once; restoring the old user then
/// conflicts unless it gets a new UPN (support.microsoft.com/kb/2619308;
/// learn.microsoft.com/graph/api/directory-deleteditems-restore: newUserPrincipalName).
#[tokio::test]
async fn a_soft_deleted_upn_is_free_and_restoring_over_it_conflicts() {
    let env = start_default().await;
    let old = env.create("reused@acme.example", "9101").await;
    assert_eq!(
        env.delete(&format!("users/{old}")).await.0,
        StatusCode::NO_CONTENT
    );
    let new = env.create("reused@acme.example", "9102").await;
    assert_ne!(old, new);

    let (status, body) = env
        .post(&format!("directory/deletedItems/{old}/restore"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_message(&body),
        "Another object with the same value for property userPrincipalName already exists."
    );
    assert_eq!(
        env.get(&format!("users/{old}")).await.0,
        StatusCode::NOT_FOUND,
        "a refused restore changes nothing"
    );

    let (status, restored) = env
        .post(
            &format!("directory/deletedItems/{old}/restore"),
            json!({"newUserPrincipalName": "reused.old@acme.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["userPrincipalName"], "reused.old@acme.example");
    let (_, by_upn) = env.get("users/reused@acme.example").await;
    assert_eq!(by_upn["id"], new.as_str());
}

#[tokio::test]
async fn batch_depends_on_failure_is_424_and_inner_requests_are_logged() {
    let env = start_default().await;
    env.sandbox.sandbox.clear_requests();
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/users", "headers": {"Content-Type": "application/json"},
         "body": {"displayName": "no upn"}},
        {"id": "2", "method": "GET", "url": "/users?$select=id", "dependsOn": ["1"]},
        {"id": "3", "method": "POST", "url": "/users", "headers": {"Content-Type": "application/json"},
         "body": new_user("batched@acme.example", "1201")},
    ]});
    let (status, body) = env.post("$batch", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let responses = body["responses"].as_array().expect("responses");
    let status_of = |id: &str| {
        responses
            .iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["status"].as_u64())
            .expect("response")
    };
    assert_eq!(status_of("1"), 400);
    assert_eq!(status_of("2"), 424);
    assert_eq!(status_of("3"), 201);
    assert_eq!(responses[0]["body"]["error"]["code"], "Request_BadRequest");
    assert_eq!(
        responses[2]["body"]["userPrincipalName"],
        "batched@acme.example"
    );

    let log = env.sandbox.sandbox.requests();
    let inner: Vec<_> = log.iter().filter(|r| r.in_batch).collect();
    assert_eq!(inner.len(), 3, "{log:#?}");
    assert_eq!(inner[0].path, "/v1.0/users");
    assert_eq!(inner[0].status, 400);
    assert_eq!(inner[1].status, 424);
    assert_eq!(inner[1].path_and_query(), "/v1.0/users?$select=id");
    let outer = log.last().expect("outer");
    assert!(!outer.in_batch);
    assert_eq!(outer.path, "/v1.0/$batch");
}

/// A write step without a body (or its Content-Type) refuses the whole batch before anything
/// runs, as Graph does (microsoftgraph/msgraph-sdk-dotnet#2628): the leaver's disable beside a
/// bodyless revokeSignInSessions never happens.
#[tokio::test]
async fn a_bodyless_write_step_refuses_the_whole_batch() {
    let env = start_default().await;
    let (_, created) = env
        .post("users", new_user("leaver@acme.example", "1301"))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    env.sandbox.sandbox.clear_requests();
    let disable = json!({"id": "1", "method": "PATCH", "url": format!("/users/{id}"),
        "headers": {"Content-Type": "application/json"}, "body": {"accountEnabled": false}});
    for revoke in [
        json!({"id": "2", "method": "POST", "url": format!("/users/{id}/revokeSignInSessions"), "dependsOn": ["1"]}),
        json!({"id": "2", "method": "POST", "url": format!("/users/{id}/revokeSignInSessions"), "dependsOn": ["1"], "body": {}}),
    ] {
        let (status, body) = env
            .post("$batch", json!({"requests": [disable.clone(), revoke]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body["error"]["message"],
            "Write request id : 2 does not contain Content-Type header or body."
        );
    }
    assert!(
        env.sandbox.sandbox.requests().iter().all(|r| !r.in_batch),
        "nothing inside ran"
    );
    let enabled = env.sandbox.sandbox.users()[0]["accountEnabled"].clone();
    assert_eq!(enabled, json!(true));

    let revoke = json!({"id": "2", "method": "POST", "url": format!("/users/{id}/revokeSignInSessions"),
        "dependsOn": ["1"], "headers": {"Content-Type": "application/json"}, "body": {}});
    let (status, body) = env
        .post("$batch", json!({"requests": [disable, revoke]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["responses"][1]["status"], 200, "{body}");
    assert_eq!(
        env.sandbox.sandbox.users()[0]["accountEnabled"],
        json!(false)
    );
}

#[tokio::test]
async fn batch_of_21_is_rejected() {
    let env = start_default().await;
    let requests: Vec<Value> = (1..=21)
        .map(|n| json!({"id": n.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let (status, body) = env.post("$batch", json!({"requests": requests})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "BadRequest");
    assert!(
        env.sandbox.sandbox.requests().iter().all(|r| !r.in_batch),
        "nothing inside ran"
    );

    let requests: Vec<Value> = (1..=20)
        .map(|n| json!({"id": n.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    assert_eq!(
        env.post("$batch", json!({"requests": requests})).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after_and_changes_nothing() {
    let env = start_default().await;
    env.sandbox.sandbox.set_faults(Faults {
        throttle_rate: 1.0,
        retry_after_secs: 7,
        seed: 1,
        ..Faults::default()
    });
    for _ in 0..3 {
        let response = env
            .http
            .post(env.url("users"))
            .bearer_auth(&env.token)
            .json(&new_user("throttled@acme.example", "1301"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
        let (_, body) = read(response).await;
        assert_eq!(error_code(&body), "TooManyRequests");
    }
    assert!(env.sandbox.sandbox.users().is_empty());
    assert!(
        env.sandbox
            .sandbox
            .requests()
            .iter()
            .filter(|r| r.path == "/v1.0/users")
            .all(|r| r.faulted)
    );

    // The token endpoint is never faulted.
    token(&env.http, &env.sandbox).await;

    let batch = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}]});
    let (status, body) = env.post("$batch", batch).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the batch itself is a request too"
    );
    assert_eq!(error_code(&body), "TooManyRequests");
}

#[tokio::test]
async fn inner_batch_faults_are_independent() {
    let env = start_default().await;
    // With a 50% rate and a fixed seed, some of 20 inner requests are throttled and some not,
    // and the outer batch (drawn first) is retried until it gets through.
    env.sandbox.sandbox.set_faults(Faults {
        throttle_rate: 0.5,
        retry_after_secs: 2,
        seed: 42,
        ..Faults::default()
    });
    let requests: Vec<Value> = (1..=20)
        .map(|n| json!({"id": n.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let mut body = Value::Null;
    for _ in 0..20 {
        let (status, b) = env.post("$batch", json!({"requests": requests})).await;
        if status == StatusCode::OK {
            body = b;
            break;
        }
    }
    let responses = body["responses"].as_array().expect("a batch got through");
    let throttled: Vec<_> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert!(!throttled.is_empty() && throttled.len() < 20, "{body}");
    assert!(throttled.iter().all(|r| r["headers"]["Retry-After"] == "2"));
}

#[tokio::test]
async fn server_errors_are_503_or_504() {
    let env = start_default().await;
    env.sandbox.sandbox.set_faults(Faults {
        error_rate: 1.0,
        seed: 3,
        ..Faults::default()
    });
    for _ in 0..10 {
        let (status, body) = env
            .post("users", new_user("flaky@acme.example", "1401"))
            .await;
        assert!(matches!(status.as_u16(), 503 | 504), "{status}");
        assert!(matches!(
            error_code(&body),
            "ServiceUnavailable" | "GatewayTimeout"
        ));
    }
    assert!(env.sandbox.sandbox.users().is_empty());
}

#[tokio::test]
async fn replication_lag_hides_new_users_from_references_until_it_passes() {
    let env = start(seeded()).await;
    let worker = env.create("report@acme.example", "1501").await;
    env.sandbox.sandbox.set_faults(Faults {
        replication_lag: Duration::from_millis(200),
        ..Faults::default()
    });
    let boss = env.create("newboss@acme.example", "1502").await;

    assert_eq!(
        env.get(&format!("users/{boss}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, found) = env.filter("users", "employeeId eq '1502'").await;
    assert_eq!(found["value"], json!([]));
    let reference = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{boss}")});
    let (status, body) = env
        .put(&format!("users/{worker}/manager/$ref"), reference.clone())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "Request_ResourceNotFound");
    let member =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{boss}")});
    let (status, body) = env
        .post(&format!("groups/{LEADS}/members/$ref"), member)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    // Uniqueness sees the lagging user: a retried create does not make a twin.
    assert_eq!(
        env.post("users", new_user("newboss@acme.example", "1502"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, _) = env
        .put(&format!("users/{worker}/manager/$ref"), reference)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(env.get(&format!("users/{boss}")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("directory.json");
    let config = || SandboxConfig {
        data: Some(data.clone()),
        ..seeded()
    };

    let env = start(config()).await;
    let id = env.create("durable@acme.example", "1601").await;
    let reference =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    assert_eq!(
        env.post(&format!("groups/{STAFF}/members/$ref"), reference)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let old_token = env.token.clone();
    env.sandbox.stop().await.expect("stops");

    let restarted = Sandbox::start(config()).await.expect("restarts");
    assert_eq!(restarted.sandbox.users().len(), 1);
    assert_eq!(restarted.sandbox.group_members(STAFF), vec![id.clone()]);
    let env = Env {
        sandbox: restarted,
        http: reqwest::Client::new(),
        token: old_token,
    };
    let (status, user) = env.get(&format!("users/{id}?$select=employeeId")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a token issued before the restart is still valid: {user}"
    );
    assert_eq!(user["employeeId"], "1601");
    assert!(
        env.sandbox
            .sandbox
            .requests()
            .iter()
            .all(|r| r.path != "/v1.0/users" || r.method != "POST"),
        "the request log is not persisted"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_graph_errors() {
    let env = start_default().await;
    let (status, body) = env.get("me/drive").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "BadRequest");
    let (status, _) = env.put("users", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = env.get("users?$orderby=displayName").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("$orderby"));
}

#[tokio::test]
async fn advanced_queries_need_consistency_level_and_count() {
    let env = start_default().await;
    let a = env.create("adv.a@acme.example", "1701").await;
    env.create("adv.b@acme.example", "1702").await;
    let filter = encode("employeeId ne '1702'");
    let url = env.url(&format!("users?$filter={filter}&$count=true&$select=id"));

    let (status, body) = read(
        env.http
            .get(&url)
            .bearer_auth(&env.token)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "Request_UnsupportedQuery");

    let response = env
        .http
        .get(&url)
        .bearer_auth(&env.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("request");
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), vec![a]);
    assert_eq!(body["@odata.count"], 1);
}

// ---------------------------------------------------------------------------------------------
// Strictness: what Graph refuses, the sandbox refuses

impl Env {
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut request = self.http.get(self.url(path)).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await.expect("request")).await
    }

    /// Creates `n` users `{prefix}{i}@acme.example` (employeeId `{prefix}{i}`) through `$batch`
    /// and returns their ids in order.
    async fn create_many(&self, prefix: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        for chunk in (0..n).collect::<Vec<_>>().chunks(20) {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|i| {
                    json!({"id": i.to_string(), "method": "POST", "url": "/users",
                           "headers": {"Content-Type": "application/json"},
                           "body": new_user(&format!("{prefix}{i}@acme.example"), &format!("{prefix}{i}"))})
                })
                .collect();
            let (status, body) = self.post("$batch", json!({"requests": requests})).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let mut responses = body["responses"].as_array().expect("responses").clone();
            responses.sort_by_key(|r| r["id"].as_str().and_then(|i| i.parse::<usize>().ok()));
            for r in responses {
                assert_eq!(r["status"], 201, "{r}");
                ids.push(r["body"]["id"].as_str().expect("id").to_owned());
            }
        }
        ids
    }
}

async fn token_with_secret(
    http: &reqwest::Client,
    sandbox: &RunningSandbox,
    secret: &str,
) -> (StatusCode, Value) {
    read(
        http.post(sandbox.token_url(TENANT))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "11111111-2222-3333-4444-555555555555"),
                ("scope", "https://graph.microsoft.com/.default"),
                ("client_secret", secret),
            ])
            .send()
            .await
            .expect("token request"),
    )
    .await
}

#[tokio::test]
async fn a_configured_client_secret_refuses_any_other() {
    let sandbox = Sandbox::start(SandboxConfig {
        client_secret: Some("right".to_owned()),
        ..SandboxConfig::default()
    })
    .await
    .expect("starts");
    let http = reqwest::Client::new();
    let (status, body) = token_with_secret(&http, &sandbox, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    assert!(
        body["error_description"].as_str().is_some_and(|d| d.starts_with(
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '11111111-2222-3333-4444-555555555555'."
        )),
        "{body}"
    );
    assert_eq!(sandbox.sandbox.tokens_issued(), 0);
    let (status, _) = token_with_secret(&http, &sandbox, "right").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sandbox.sandbox.tokens_issued(), 1);
}

#[tokio::test]
async fn passwords_must_meet_entras_complexity() {
    let env = start_default().await;
    for weak in [
        "abc",
        "alllowercase",
        "lowercase99",
        "Sh0rt!",
        "Pässword-99",
    ] {
        let mut body = new_user("weak@acme.example", "1801");
        body["passwordProfile"]["password"] = json!(weak);
        let (status, body) = env.post("users", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{weak}: {body}");
        assert_eq!(error_code(&body), "Request_BadRequest");
        assert_eq!(
            error_message(&body),
            "The specified password does not comply with password complexity requirements. Please provide a different password."
        );
    }
    assert!(env.sandbox.sandbox.users().is_empty());
    let id = env.create("strong@acme.example", "1802").await;
    let (status, _) = env
        .patch(
            &format!("users/{id}"),
            json!({"passwordProfile": {"password": "weakweak"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn count_needs_consistency_level() {
    let env = start_default().await;
    env.create("count.a@acme.example", "1901").await;
    env.create("count.b@acme.example", "1902").await;

    // $count=true without the header is silently ignored (learn.microsoft.com/graph/aad-advanced-queries).
    let (status, body) = env.get("users?$count=true&$select=id").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("@odata.count").is_none(), "{body}");
    let (status, body) = env
        .get_with(
            "users?$count=true&$select=id",
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["@odata.count"], 2);

    let (status, body) = env.get("users/$count").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(error_message(&body), "$count is not currently supported.");
    let response = env
        .http
        .get(env.url("users/$count"))
        .bearer_auth(&env.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    assert_eq!(response.text().await.expect("body"), "2");
}

#[tokio::test]
async fn ne_not_and_endswith_need_both_advanced_parameters() {
    let env = start_default().await;
    let a = env.create("adv2.a@acme.example", "2101").await;
    let b = env.create("adv2.b@acme.example", "2102").await;
    for filter in [
        "employeeId ne '2102'",
        "not(employeeId eq '2102')",
        "endsWith(userPrincipalName,'a@acme.example')",
    ] {
        let path = format!("users?$filter={}&$select=id", encode(filter));
        let (status, body) = env.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {body}");
        assert_eq!(error_code(&body), "Request_UnsupportedQuery");
        let (status, _) = env
            .get_with(&path, &[("ConsistencyLevel", "eventual")])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: header alone");
        let (status, _) = env.get(&format!("{path}&$count=true")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: $count alone");
        let (status, body) = env
            .get_with(
                &format!("{path}&$count=true"),
                &[("ConsistencyLevel", "eventual")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{filter}: {body}");
        assert_eq!(ids(&body), vec![a.clone()], "{filter}");
    }
    assert_ne!(a, b);
}

#[tokio::test]
async fn batch_urls_are_relative_and_depends_on_names_a_request_of_the_batch() {
    let env = start_default().await;
    let id = env.create("batch.rules@acme.example", "2201").await;
    env.sandbox.sandbox.clear_requests();
    let absolute = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("https://graph.microsoft.com/v1.0/users/{id}")},
    ]});
    let (status, body) = env.post("$batch", absolute).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let unknown = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{id}"), "dependsOn": ["9"]},
    ]});
    let (status, body) = env.post("$batch", unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let duplicate = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{id}")},
        {"id": "1", "method": "GET", "url": format!("/users/{id}")},
    ]});
    assert_eq!(
        env.post("$batch", duplicate).await.0,
        StatusCode::BAD_REQUEST
    );
    assert!(
        env.sandbox.sandbox.requests().iter().all(|r| !r.in_batch),
        "nothing inside ran"
    );

    // A request may depend on one listed after it: it runs after it.
    let forward = json!({"requests": [
        {"id": "a", "method": "GET", "url": format!("/users/{id}?$select=jobTitle"), "dependsOn": ["b"]},
        {"id": "b", "method": "PATCH", "url": format!("/users/{id}"),
         "headers": {"Content-Type": "application/json"}, "body": {"jobTitle": "Ordered"}},
    ]});
    let (status, body) = env.post("$batch", forward).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let a = body["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .find(|r| r["id"] == "a")
        .expect("a")
        .clone();
    assert_eq!(a["body"]["jobTitle"], "Ordered");
}

#[tokio::test]
async fn domains_and_groups_are_listed() {
    let env = start(SandboxConfig {
        verified_domains: vec!["contoso.example".to_owned(), "fabrikam.example".to_owned()],
        groups: vec![group(STAFF, "Staff"), group(LEADS, "Leads")],
        ..SandboxConfig::default()
    })
    .await;
    let (status, body) = env.get("domains").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter(|d| d["isVerified"] == true)
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(names, ["contoso.example", "fabrikam.example"]);
    assert_eq!(
        env.get("domains/fabrikam.example").await.1["id"],
        "fabrikam.example"
    );

    let (status, page) = env.get("groups?$top=1&$select=id").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page), vec![LEADS.to_owned()]);
    assert!(page["value"][0].get("displayName").is_none());
    let next = page["@odata.nextLink"].as_str().expect("next link");
    let (_, second) = read(
        env.http
            .get(next)
            .bearer_auth(&env.token)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(ids(&second), vec![STAFF.to_owned()]);
    assert!(second.get("@odata.nextLink").is_none());
    let (status, body) = env
        .get(&format!(
            "groups?$filter={}",
            encode("displayName eq 'staff'")
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), vec![STAFF.to_owned()]);
    assert_eq!(
        env.get("groups?$select=nope").await.0,
        StatusCode::BAD_REQUEST
    );
}

// ---------------------------------------------------------------------------------------------
// Licences with units

#[tokio::test]
async fn licences_run_out_and_removals_free_units() {
    let env = start(SandboxConfig {
        skus: vec![sku(SKU_E3, "ENTERPRISEPACK", 2)],
        ..SandboxConfig::default()
    })
    .await;
    let mut users = Vec::new();
    for n in 0..3 {
        let id = env
            .create(&format!("units{n}@acme.example"), &format!("23{n}"))
            .await;
        env.patch(&format!("users/{id}"), json!({"usageLocation": "GB"}))
            .await;
        users.push(id);
    }
    let assign =
        json!({"addLicenses": [{"skuId": SKU_E3, "disabledPlans": []}], "removeLicenses": []});
    for id in &users[..2] {
        let (status, body) = env
            .post(&format!("users/{id}/assignLicense"), assign.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, skus) = env.get("subscribedSkus").await;
    assert_eq!(skus["value"][0]["prepaidUnits"]["enabled"], 2);
    assert_eq!(skus["value"][0]["consumedUnits"], 2);

    let upper = json!({"addLicenses": [{"skuId": SKU_E3.to_uppercase(), "disabledPlans": []}], "removeLicenses": []});
    let (status, body) = env
        .post(&format!("users/{}/assignLicense", users[2]), upper)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "Request_BadRequest");
    assert_eq!(
        error_message(&body),
        format!(
            "Subscription with SKU {} does not have any available licenses.",
            SKU_E3.to_uppercase()
        )
    );
    let (_, details) = env.get(&format!("users/{}/licenseDetails", users[2])).await;
    assert_eq!(details["value"], json!([]), "nothing changed");
    assert_eq!(
        env.get("subscribedSkus").await.1["value"][0]["consumedUnits"],
        2
    );

    // Re-assigning a licence the user holds needs no unit.
    assert_eq!(
        env.post(&format!("users/{}/assignLicense", users[0]), assign.clone())
            .await
            .0,
        StatusCode::OK
    );
    let remove = json!({"addLicenses": [], "removeLicenses": [SKU_E3]});
    assert_eq!(
        env.post(&format!("users/{}/assignLicense", users[0]), remove)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        env.get("subscribedSkus").await.1["value"][0]["consumedUnits"],
        1
    );
    let (status, body) = env
        .post(&format!("users/{}/assignLicense", users[2]), assign)
        .await;
    assert_eq!(status, StatusCode::OK, "the freed unit is used: {body}");

    // A soft-deleted user's licence is not consumed.
    assert_eq!(
        env.delete(&format!("users/{}", users[1])).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.get("subscribedSkus").await.1["value"][0]["consumedUnits"],
        1
    );
}

#[tokio::test]
async fn a_licensing_group_licenses_its_members_while_units_last() {
    let env = start(SandboxConfig {
        skus: vec![sku(SKU_E5, "SPE_E5", 1)],
        groups: vec![SeedGroup {
            id: STAFF.to_owned(),
            display_name: "Licensed staff".to_owned(),
            licenses: vec![SKU_E5.to_owned()],
        }],
        ..SandboxConfig::default()
    })
    .await;
    let first = env.create("gbl1@acme.example", "2401").await;
    let second = env.create("gbl2@acme.example", "2402").await;
    let member = |id: &str| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    for id in [&first, &second] {
        assert_eq!(
            env.post(&format!("groups/{STAFF}/members/$ref"), member(id))
                .await
                .0,
            StatusCode::NO_CONTENT
        );
    }
    let (_, one) = env
        .get(&format!(
            "users/{first}?$select=assignedLicenses,licenseAssignmentStates"
        ))
        .await;
    assert_eq!(one["assignedLicenses"][0]["skuId"], SKU_E5);
    let state = &one["licenseAssignmentStates"][0];
    assert_eq!(state["assignedByGroup"], STAFF);
    assert_eq!(state["state"], "Active");
    assert_eq!(
        env.get(&format!("users/{first}/licenseDetails")).await.1["value"][0]["skuPartNumber"],
        "SPE_E5"
    );

    let (_, two) = env
        .get(&format!(
            "users/{second}?$select=assignedLicenses,licenseAssignmentStates"
        ))
        .await;
    assert_eq!(two["assignedLicenses"], json!([]), "no unit was free");
    let state = &two["licenseAssignmentStates"][0];
    assert_eq!(state["assignedByGroup"], STAFF);
    assert_eq!(state["state"], "Error");
    assert_eq!(state["error"], "CountViolation");
    let (_, skus) = env.get("subscribedSkus").await;
    assert_eq!(
        skus["value"][0]["consumedUnits"], 1,
        "an error is not consumed"
    );

    // Leaving the group releases the licence.
    assert_eq!(
        env.delete(&format!("groups/{STAFF}/members/{first}/$ref"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, one) = env
        .get(&format!(
            "users/{first}?$select=assignedLicenses,licenseAssignmentStates"
        ))
        .await;
    assert_eq!(one["assignedLicenses"], json!([]));
    assert_eq!(one["licenseAssignmentStates"], json!([]));
    assert_eq!(
        env.get("subscribedSkus").await.1["value"][0]["consumedUnits"],
        0
    );
}

// ---------------------------------------------------------------------------------------------
// Write quota and counters

#[tokio::test]
async fn the_write_limit_throttles_writes_beyond_the_window() {
    let env = start(SandboxConfig {
        write_limit: Some(WriteLimit {
            writes: 3,
            window: Duration::from_secs(2),
        }),
        ..SandboxConfig::default()
    })
    .await;
    for n in 0..3 {
        env.create(&format!("quota{n}@acme.example"), &format!("25{n}"))
            .await;
    }
    let (status, _) = env.get("users?$select=id").await;
    assert_eq!(status, StatusCode::OK, "reads are not writes");
    let response = env
        .http
        .post(env.url("users"))
        .bearer_auth(&env.token)
        .json(&new_user("quota3@acme.example", "253"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after: u64 = header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in whole seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header("x-ms-throttle-information").as_deref(),
        Some("WriteLimitExceeded")
    );
    assert!(
        header("x-ms-throttle-scope")
            .is_some_and(|s| s.starts_with("Tenant_Application/ReadWrite/"))
    );
    let (_, body) = read(response).await;
    assert_eq!(error_code(&body), "TooManyRequests");
    assert_eq!(env.sandbox.sandbox.users().len(), 3, "nothing changed");
    assert_eq!(env.sandbox.sandbox.stats().throttled, 1);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    // A batch of 5 writes in a fresh window: 3 pass, the 2 beyond the quota are 429 one by one.
    let requests: Vec<Value> = (0..5)
        .map(|n| {
            json!({"id": n.to_string(), "method": "POST", "url": "/users",
                   "headers": {"Content-Type": "application/json"},
                   "body": new_user(&format!("quotab{n}@acme.example"), &format!("26{n}"))})
        })
        .collect();
    let (status, body) = env.post("$batch", json!({"requests": requests})).await;
    assert_eq!(status, StatusCode::OK, "the batch itself is not a write");
    let statuses: Vec<u64> = body["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r["status"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(statuses, [201, 201, 201, 429, 429], "{body}");
    assert!(body["responses"][3]["headers"]["Retry-After"].is_string());
    assert_eq!(env.sandbox.sandbox.users().len(), 6);
}

#[tokio::test]
async fn stats_count_reads_writes_batches_and_tokens() {
    let env = start_default().await;
    let id = env.create("stats@acme.example", "2701").await;
    env.get(&format!("users/{id}")).await;
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": format!("/users/{id}")},
        {"id": "2", "method": "PATCH", "url": format!("/users/{id}"),
         "headers": {"Content-Type": "application/json"}, "body": {"jobTitle": "Counted"}},
    ]});
    env.post("$batch", batch).await;
    let stats = env.sandbox.sandbox.stats();
    assert_eq!(stats.tokens, 1);
    assert_eq!(stats.reads, 2);
    assert_eq!(stats.writes, 2);
    assert_eq!(stats.batches, 1);
    assert_eq!(stats.requests, 6, "token, create, get, batch and its two");
    let (status, over_http) = read(
        env.http
            .get(format!("{}/sandbox/stats", env.sandbox.url))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(over_http["writes"], 2);
    assert_eq!(over_http["batches"], 1);
}

// ---------------------------------------------------------------------------------------------
// Indexes, paging and storage

#[tokio::test]
async fn indexed_filters_answer_exactly_over_thousands_of_users() {
    let env = start_default().await;
    let ids = env.create_many("idx", 2500).await;
    // Give every tenth user a mail (and so a proxy address).
    for (i, id) in ids.iter().enumerate().step_by(10) {
        let (status, _) = env
            .patch(
                &format!("users/{id}"),
                json!({"mail": format!("mail{i}@acme.example")}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (_, body) = env.filter("users", "employeeId eq 'IDX1234'").await;
    assert_eq!(ids_of(&body), vec![ids[1234].clone()]);
    let (_, body) = env
        .filter(
            "users",
            "proxyAddresses/any(p:p eq 'smtp:MAIL1230@acme.example')",
        )
        .await;
    assert_eq!(ids_of(&body), vec![ids[1230].clone()]);
    let (_, body) = env
        .filter(
            "users",
            "userPrincipalName eq 'idx7@acme.example' or userPrincipalName eq 'IDX2499@acme.example' or userPrincipalName eq 'nobody@acme.example'",
        )
        .await;
    assert_eq!(ids_of(&body), vec![ids[7].clone(), ids[2499].clone()]);
    let (_, body) = env
        .filter("users", "employeeId in ('idx3', 'idx30', 'idx300')")
        .await;
    assert_eq!(
        ids_of(&body),
        vec![ids[3].clone(), ids[30].clone(), ids[300].clone()]
    );
    let (_, body) = env
        .filter(
            "users",
            "mail eq 'mail20@acme.example' and startswith(displayName,'idx2')",
        )
        .await;
    assert_eq!(ids_of(&body), vec![ids[20].clone()]);
    let (_, body) = env.filter("users", "startswith(employeeId,'idx249')").await;
    assert_eq!(
        body["value"].as_array().map(Vec::len),
        Some(11),
        "a scan still works"
    );

    // A soft-deleted user leaves the live indexes and joins the deleted ones.
    env.delete(&format!("users/{}", ids[1234])).await;
    let (_, body) = env.filter("users", "employeeId eq 'idx1234'").await;
    assert!(ids_of(&body).is_empty());
    let (_, body) = env
        .filter(
            "directory/deletedItems/microsoft.graph.user",
            "employeeId eq 'idx1234'",
        )
        .await;
    assert_eq!(ids_of(&body), vec![ids[1234].clone()]);
}

fn ids_of(body: &Value) -> Vec<String> {
    ids(body)
}

#[tokio::test]
async fn paging_walks_every_user_exactly_once() {
    let env = start_default().await;
    let created = env.create_many("page", 2100).await;
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some(env.url("users?$select=id&$top=999"));
    let mut pages = 0;
    while let Some(link) = next {
        let (status, page) = read(
            env.http
                .get(&link)
                .bearer_auth(&env.token)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every user once, in creation order");

    for id in &created[..5] {
        env.delete(&format!("users/{id}")).await;
    }
    let mut deleted = Vec::new();
    let mut next = Some(env.url("directory/deletedItems/microsoft.graph.user?$top=2"));
    while let Some(link) = next {
        let (_, page) = read(
            env.http
                .get(&link)
                .bearer_auth(&env.token)
                .send()
                .await
                .expect("request"),
        )
        .await;
        deleted.extend(ids(&page));
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(deleted, created[..5].to_vec());
}

#[tokio::test]
async fn a_restart_keeps_users_groups_memberships_managers_and_licences() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("sandbox.db");
    let config = || SandboxConfig {
        data: Some(data.clone()),
        skus: vec![sku(SKU_E3, "ENTERPRISEPACK", 5), sku(SKU_E5, "SPE_E5", 5)],
        groups: vec![
            group(STAFF, "Staff"),
            SeedGroup {
                id: LEADS.to_owned(),
                display_name: "Leads".to_owned(),
                licenses: vec![SKU_E5.to_owned()],
            },
        ],
        ..SandboxConfig::default()
    };
    let env = start(config()).await;
    let boss = env.create("keep.boss@acme.example", "2801").await;
    let worker = env.create("keep.worker@acme.example", "2802").await;
    env.put(
        &format!("users/{worker}/manager/$ref"),
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{boss}")}),
    )
    .await;
    for g in [STAFF, LEADS] {
        env.post(
            &format!("groups/{g}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{boss}")}),
        )
        .await;
    }
    env.patch(
        &format!("users/{worker}"),
        json!({"usageLocation": "GB", "mail": "kept@acme.example"}),
    )
    .await;
    let (status, _) = env
        .post(
            &format!("users/{worker}/assignLicense"),
            json!({"addLicenses": [{"skuId": SKU_E3}], "removeLicenses": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    env.sandbox.stop().await.expect("stops");

    let restarted = Sandbox::start(config()).await.expect("restarts");
    let env = Env {
        http: reqwest::Client::new(),
        token: token(&reqwest::Client::new(), &restarted).await,
        sandbox: restarted,
    };
    assert_eq!(env.sandbox.sandbox.users().len(), 2);
    assert_eq!(env.sandbox.sandbox.group_members(STAFF), vec![boss.clone()]);
    assert_eq!(env.sandbox.sandbox.group_members(LEADS), vec![boss.clone()]);
    assert_eq!(env.sandbox.sandbox.manager_of(&worker), Some(boss.clone()));
    let (_, licensed) = env
        .get(&format!("users/{worker}?$select=assignedLicenses"))
        .await;
    assert_eq!(licensed["assignedLicenses"][0]["skuId"], SKU_E3);
    let (_, lead) = env
        .get(&format!("users/{boss}?$select=licenseAssignmentStates"))
        .await;
    assert_eq!(lead["licenseAssignmentStates"][0]["assignedByGroup"], LEADS);
    let (_, skus) = env.get("subscribedSkus").await;
    let consumed: Vec<u64> = skus["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|s| s["consumedUnits"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(consumed, [1, 1]);
    let (_, found) = env
        .filter(
            "users",
            "proxyAddresses/any(p:p eq 'smtp:kept@acme.example')",
        )
        .await;
    assert_eq!(
        ids(&found),
        vec![worker.clone()],
        "indexes are rebuilt on load"
    );
    // Uniqueness survives too.
    let (status, _) = env
        .post("users", new_user("keep.boss@acme.example", "2803"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_legacy_json_data_file_is_migrated_with_its_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("sandbox.json");
    let legacy = json!({
        "format": "hrsync-sandbox/1",
        "tokenKey": "legacy-key",
        "users": [
            {"user": {"id": "3f1b2c4d-0000-4000-8000-000000000001", "userPrincipalName": "old.boss@acme.example",
                      "displayName": "Old Boss", "employeeId": "L1", "accountEnabled": true,
                      "mail": "old.boss@acme.example", "proxyAddresses": ["SMTP:old.boss@acme.example"],
                      "usageLocation": "GB",
                      "assignedLicenses": [{"skuId": SKU_E3, "disabledPlans": []}]}},
            {"user": {"id": "3f1b2c4d-0000-4000-8000-000000000002", "userPrincipalName": "old.worker@acme.example",
                      "displayName": "Old Worker", "employeeId": "L2", "accountEnabled": true},
             "managerId": "3f1b2c4d-0000-4000-8000-000000000001"}
        ],
        "groups": [{"id": STAFF, "displayName": "Staff", "members": ["3f1b2c4d-0000-4000-8000-000000000002"]}],
        "skus": [{"skuId": SKU_E3, "skuPartNumber": "ENTERPRISEPACK"}]
    });
    std::fs::write(&data, serde_json::to_vec_pretty(&legacy).expect("json")).expect("write");

    let env = start(SandboxConfig {
        data: Some(data.clone()),
        ..SandboxConfig::default()
    })
    .await;
    let head = std::fs::read(&data).expect("read");
    assert!(head.starts_with(b"SQLite format 3\0"), "migrated in place");
    assert_eq!(env.sandbox.sandbox.users().len(), 2);
    let (status, body) = env.filter("users", "employeeId eq 'L2'").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), vec!["3f1b2c4d-0000-4000-8000-000000000002"]);
    assert_eq!(
        env.sandbox
            .sandbox
            .manager_of("3f1b2c4d-0000-4000-8000-000000000002")
            .as_deref(),
        Some("3f1b2c4d-0000-4000-8000-000000000001")
    );
    assert_eq!(
        env.sandbox.sandbox.group_members(STAFF),
        vec!["3f1b2c4d-0000-4000-8000-000000000002"]
    );
    let (_, details) = env
        .get("users/3f1b2c4d-0000-4000-8000-000000000001/licenseDetails")
        .await;
    assert_eq!(details["value"][0]["skuPartNumber"], "ENTERPRISEPACK");
    env.sandbox.stop().await.expect("stops");
    // The migrated file opens again as SQLite.
    let again = Sandbox::new(SandboxConfig {
        data: Some(data),
        ..SandboxConfig::default()
    })
    .expect("reopens");
    assert_eq!(again.users().len(), 2);
}

#[tokio::test]
async fn a_data_file_can_be_read_while_the_sandbox_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("sandbox.db");
    let env = start(SandboxConfig {
        data: Some(data.clone()),
        ..seeded()
    })
    .await;
    let boss = env.create("read.boss@acme.example", "2901").await;
    let worker = env.create("read.worker@acme.example", "2902").await;
    env.put(
        &format!("users/{worker}/manager/$ref"),
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{boss}")}),
    )
    .await;
    env.post(
        &format!("groups/{STAFF}/members/$ref"),
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{worker}")}),
    )
    .await;
    let directory = hrsync_sandbox::read_data_file(&data).expect("reads");
    let users = directory["users"].as_array().expect("users");
    assert_eq!(users.len(), 2);
    assert_eq!(users[1]["user"]["employeeId"], "2902");
    assert_eq!(users[1]["managerId"], boss.as_str());
    let staff = directory["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["id"] == STAFF)
        .expect("staff")
        .clone();
    assert_eq!(staff["members"], json!([worker]));
    let (_, over_http) = read(
        env.http
            .get(format!("{}/sandbox/directory", env.sandbox.url))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(over_http, directory, "the endpoint and the file agree");
    // The sandbox keeps working after the read, and the file reads after it stopped.
    env.create("read.after@acme.example", "2903").await;
    env.sandbox.stop().await.expect("stops");
    let after = hrsync_sandbox::read_data_file(&data).expect("reads a stopped sandbox's file");
    assert_eq!(after["users"].as_array().map(Vec::len), Some(3));
}

/// An option a route does not implement is refused, never silently ignored.
#[tokio::test]
async fn query_options_a_route_does_not_implement_are_refused() {
    let env = start(seeded()).await;
    let id = env.create("options@acme.example", "3001").await;
    for path in [
        format!("users/{id}?$top=5"),
        format!(
            "users/{id}/memberOf?$filter={}",
            encode("displayName eq 'x'")
        ),
        "subscribedSkus?$top=1".to_owned(),
        "domains?$filter=id%20eq%20%27x%27".to_owned(),
        format!("users/{id}/licenseDetails?$select=skuId"),
    ] {
        let (status, body) = env.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(error_code(&body), "BadRequest", "{path}");
    }
    let (status, _) = env
        .patch(&format!("users/{id}?$select=id"), json!({"jobTitle": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        env.get(&format!("users/{id}?$select=id")).await.0,
        StatusCode::OK
    );
}

/// An app granted only some application permissions: the token's `roles` claim carries them,
/// and a request that needs one it lacks is 403 `Authorization_RequestDenied`, inside a batch
/// too, with nothing changed.
#[tokio::test]
async fn requests_need_an_application_permission_the_app_holds() {
    let env = start(SandboxConfig {
        app_roles: vec!["User.Read.All".into(), "GroupMember.Read.All".into()],
        ..seeded()
    })
    .await;
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            env.token.split('.').nth(1).expect("payload"),
        )
        .expect("base64"),
    )
    .expect("claims");
    assert_eq!(
        claims["roles"],
        json!(["User.Read.All", "GroupMember.Read.All"])
    );

    let (status, _) = env.get("users?$top=1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env.get(&format!("groups/{STAFF}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.get("subscribedSkus").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    let (status, body) = env
        .post(
            &format!("groups/{STAFF}/members/$ref"),
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let batch = json!({"requests": [{
        "id": "1", "method": "POST", "url": "/users",
        "headers": {"Content-Type": "application/json"},
        "body": {"accountEnabled": true, "displayName": "A", "mailNickname": "a",
                 "userPrincipalName": "a@acme.example",
                 "passwordProfile": {"password": "Xy7!abcdefgh"}}
    }]});
    let (status, body) = env.post("$batch", batch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["responses"][0]["status"], 403, "{body}");
    assert!(
        env.sandbox.sandbox.users().is_empty(),
        "nothing was created"
    );
}
