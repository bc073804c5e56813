//! A loopback stand-in for AWS STS `GetWebIdentityToken` (IAM outbound identity federation)
//! and for the token issuer it makes of an account: the real `aws-sdk-sts` client talks to it
//! (point the SDK's STS endpoint at [`StsStub::url`]), and Entra (the sandbox) reads its keys.
//!
//! - `POST /`: the STS Query protocol (form body `Action=GetWebIdentityToken&Version=2011-06-15`,
//!   `Audience.member.N` (1 to 10), `SigningAlgorithm` (`RS256`; this stub signs nothing else),
//!   `DurationSeconds` (60 to 3600, default 300)). The answer is the XML the SDK parses
//!   (`GetWebIdentityTokenResponse` / `GetWebIdentityTokenResult` / `WebIdentityToken`,
//!   `Expiration`); a refusal is STS's `ErrorResponse` XML.
//! - The token: an RS256 JWT with `iss` = this stub's URL, `sub` = the role ARN it was started
//!   with, `aud` = the requested audience(s), `iat`, `nbf`, `exp`, `jti`, and the AWS claims under
//!   `https://sts.amazonaws.com/` (docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_outbound.html).
//! - `GET /.well-known/openid-configuration` (`issuer`, `jwks_uri`) and
//!   `GET /.well-known/jwks.json` (the public key, `kid`, `RS256`).
//!
//! It does not check the SigV4 signature (it records whether one was sent).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The key the stub signs with and publishes.
const SIGNING_KEY: &str = include_str!("../fixtures/sts_signing_key.pem");
/// A key the stub never publishes ([`StsStub::sign_with_unpublished_key`]).
const OTHER_KEY: &str = include_str!("../fixtures/sts_other_key.pem");
/// The published key's id.
pub const KEY_ID: &str = "hrsync-sts-stub-1";
/// The account the stub pretends to be.
pub const ACCOUNT: &str = "123456789012";

/// One `GetWebIdentityToken` call as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub audiences: Vec<String>,
    pub signing_algorithm: Option<String>,
    pub duration_seconds: Option<i64>,
    /// Whether the request carried a SigV4 `Authorization` header.
    pub signed: bool,
}

#[derive(Debug, Default)]
struct StubState {
    requests: Vec<TokenRequest>,
    refusal: Option<(u16, String, String)>,
    unpublished_key: bool,
    issued: u64,
}

#[derive(Debug)]
struct Shared {
    url: String,
    role_arn: String,
    state: Mutex<StubState>,
}

fn lock(state: &Mutex<StubState>) -> MutexGuard<'_, StubState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running stub; stops when dropped.
#[derive(Debug)]
pub struct StsStub {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StsStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StsStub {
    /// Serves on `127.0.0.1:0`, issuing tokens whose `sub` is `role_arn`.
    pub async fn start(role_arn: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the STS stub");
        let address = listener.local_addr().expect("the STS stub's address");
        let shared = Arc::new(Shared {
            url: format!("http://{address}"),
            role_arn: role_arn.to_owned(),
            state: Mutex::new(StubState::default()),
        });
        let router = Router::new()
            .route("/", post(sts))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { shared, task }
    }

    /// The endpoint (for the SDK) and the issuer (`iss`), `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Every `GetWebIdentityToken` call so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// Answer the next calls with STS's error (`status`, e.g. 403, `code`, e.g.
    /// `AccessDenied`, and `message`) until [`StsStub::refuse`] is given `None`.
    pub fn refuse(&self, refusal: Option<(u16, &str, &str)>) {
        lock(&self.shared.state).refusal =
            refusal.map(|(status, code, message)| (status, code.to_owned(), message.to_owned()));
    }

    /// Sign the next tokens with a key the JWKS does not hold (same `kid`): a forged token.
    pub fn sign_with_unpublished_key(&self, forged: bool) {
        lock(&self.shared.state).unpublished_key = forged;
    }
}

fn error_xml(status: u16, code: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>",
        escape(message)
    );
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [(header::CONTENT_TYPE, "text/xml")],
        body,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn sts(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return error_xml(400, "MalformedInput", "the body is not form-encoded");
    };
    let get = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if get("Action").as_deref() != Some("GetWebIdentityToken") {
        return error_xml(
            400,
            "InvalidAction",
            "only GetWebIdentityToken is served here",
        );
    }
    if get("Version").as_deref() != Some("2011-06-15") {
        return error_xml(400, "InvalidParameterValue", "Version must be 2011-06-15");
    }
    let audiences: Vec<String> = (1..=11)
        .map_while(|n| get(&format!("Audience.member.{n}")))
        .collect();
    let request = TokenRequest {
        audiences: audiences.clone(),
        signing_algorithm: get("SigningAlgorithm"),
        duration_seconds: get("DurationSeconds").and_then(|d| d.parse().ok()),
        signed: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 ")),
    };
    let mut state = lock(&shared.state);
    state.requests.push(request.clone());
    if let Some((status, code, message)) = &state.refusal {
        return error_xml(*status, code, message);
    }
    if audiences.is_empty() || audiences.len() > 10 {
        return error_xml(400, "ValidationError", "Audience must hold 1 to 10 values");
    }
    if request.signing_algorithm.as_deref() != Some("RS256") {
        return error_xml(
            400,
            "ValidationError",
            "this stub signs RS256 only (STS also offers ES384)",
        );
    }
    let duration = request.duration_seconds.unwrap_or(300);
    if !(60..=3600).contains(&duration) {
        return error_xml(400, "ValidationError", "DurationSeconds must be 60 to 3600");
    }
    state.issued += 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let aud = match audiences.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    let claims = json!({
        "iss": shared.url,
        "sub": shared.role_arn,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + duration,
        "jti": format!("stub-{}", state.issued),
        "https://sts.amazonaws.com/": {
            "aws_account": ACCOUNT,
            "source_region": "eu-west-1",
            "principal_id": shared.role_arn,
        },
    });
    let key = if state.unpublished_key {
        OTHER_KEY
    } else {
        SIGNING_KEY
    };
    drop(state);
    let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jwt_header.typ = Some("JWT".into());
    jwt_header.kid = Some(KEY_ID.into());
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1_der(key));
    let token = jsonwebtoken::encode(&jwt_header, &claims, &encoding).expect("sign the token");
    let expiration = jiff::Timestamp::from_second(now + duration)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let body = format!(
        "<GetWebIdentityTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetWebIdentityTokenResult><WebIdentityToken>{token}</WebIdentityToken><Expiration>{expiration}</Expiration></GetWebIdentityTokenResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000001</RequestId></ResponseMetadata></GetWebIdentityTokenResponse>"
    );
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

async fn discovery(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": shared.url,
        "jwks_uri": format!("{}/.well-known/jwks.json", shared.url),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES384"],
    }))
}

async fn jwks() -> axum::Json<Value> {
    let (n, e) = rsa_public(&pkcs1_der(SIGNING_KEY));
    axum::Json(json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": KEY_ID,
            "n": URL_SAFE_NO_PAD.encode(n),
            "e": URL_SAFE_NO_PAD.encode(e),
        }]
    }))
}

/// The DER of a `-----BEGIN RSA PRIVATE KEY-----` (PKCS#1) PEM.
fn pkcs1_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).expect("the fixture key is base64")
}

/// `RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }` (RFC 8017): the
/// modulus and exponent, big-endian without a leading zero.
fn rsa_public(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, sequence, _) = tlv(der);
    let (_, _version, rest) = tlv(sequence);
    let (_, modulus, rest) = tlv(rest);
    let (_, exponent, _) = tlv(rest);
    let strip = |bytes: &[u8]| {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        bytes[start..].to_vec()
    };
    (strip(modulus), strip(exponent))
}

/// One DER tag-length-value: (tag, contents, rest).
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let first = input[1];
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}
