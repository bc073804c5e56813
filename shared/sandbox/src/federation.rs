//! Workload identity federation at the token endpoint: a client assertion issued by another
//! identity provider is exchanged only when a federated identity credential of the app matches
//! it and its signature checks against the issuer's published keys.
//!
//! Sources:
//! - learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations (and its
//!   include "federated-credential-configuration-considerations"): `issuer` and `subject` are
//!   checked against the token's `iss` and `sub` (exact, case-sensitive; no wildcards); exactly
//!   one audience, which must match the token's `aud`; at most 20 credentials per app; the
//!   issuer/subject pair is unique; only RS256-signed tokens are supported; a token that matches
//!   none is refused with `AADSTS70021: No matching federated identity record found for
//!   presented assertion.`
//! - github.com/Azure/azure-workload-identity, docs/book/src/troubleshooting.md (Microsoft's
//!   workload identity project): the whole refusal as Entra sends it, HTTP 400 `invalid_request`,
//!   `AADSTS70021: No matching federated identity record found for presented assertion.
//!   Assertion Issuer: '...'. Assertion Subject: '...'. Assertion Audience: '...'.`
//! - learn.microsoft.com/entra/workload-id/workload-identity-federation: Entra reads the
//!   issuer's OIDC discovery document (`<issuer>/.well-known/openid-configuration`) for its
//!   `jwks_uri`, and checks the token's signature with those keys.
//! - learn.microsoft.com/entra/identity-platform/reference-error-codes: `AADSTS700027` "Client
//!   assertion failed signature validation." (a signature that does not check, a key the issuer
//!   does not publish, an algorithm other than RS256, an issuer whose keys cannot be read).
//! - An assertion outside its `nbf`..`exp` window: `AADSTS700024: Client assertion is not
//!   within its valid time range.` (RFC 7523 section 3 requires `exp`; the code and sentence are
//!   Entra's as clients report them; the reference page of the stored docs does not list it).
//!
//! Other AADSTS codes seen in the wild for the same mismatches (700211 issuer, 700212
//! audience, 700213 subject) appear in no Microsoft page we hold, so the sandbox sends the
//! documented 70021 for all three.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::SandboxError;
use crate::config::{FederatedCredential, MAX_FEDERATED_CREDENTIALS};

/// The longest an issuer's discovery document or keys may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Clock skew allowed on `nbf` and `exp`.
const LEEWAY_SECS: i64 = 60;

/// A refusal: HTTP status, OAuth `error`, AADSTS number and description.
pub(crate) type Refusal = (StatusCode, &'static str, u32, String);

/// Checks the configured credentials as Graph checks a new one: a non-empty issuer and subject
/// of at most 600 characters without surrounding spaces, exactly one audience, a unique
/// issuer/subject pair, at most 20 in all.
pub(crate) fn check_config(credentials: &[FederatedCredential]) -> Result<(), SandboxError> {
    if credentials.len() > MAX_FEDERATED_CREDENTIALS {
        return Err(SandboxError::Config(format!(
            "{} federated identity credentials: an app holds at most {MAX_FEDERATED_CREDENTIALS}",
            credentials.len()
        )));
    }
    for (index, credential) in credentials.iter().enumerate() {
        for (what, value) in [
            ("issuer", &credential.issuer),
            ("subject", &credential.subject),
        ] {
            if value.is_empty() || value.trim() != value || value.chars().count() > 600 {
                return Err(SandboxError::Config(format!(
                    "federated credential {index}: the {what} must be 1 to 600 characters without surrounding spaces"
                )));
            }
        }
        if credential.audiences.len() != 1 {
            return Err(SandboxError::Config(format!(
                "federated credential {index}: Federated identity credentials must have exactly one audience."
            )));
        }
        if credentials[..index]
            .iter()
            .any(|c| c.issuer == credential.issuer && c.subject == credential.subject)
        {
            return Err(SandboxError::Config(format!(
                "federated credential {index}: Issuer and subject combination already exists for this application."
            )));
        }
    }
    Ok(())
}

/// The payload of a compact JWT (already checked well formed).
pub(crate) fn claims(assertion: &str) -> Value {
    assertion
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

fn text<'a>(claims: &'a Value, name: &str) -> &'a str {
    claims.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// `aud` is a string or an array of strings (RFC 7519 section 4.1.3).
fn audiences(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Exchanges `assertion` if a credential matches it and its signature checks; `Err` is Entra's
/// refusal.
pub(crate) async fn verify(
    credentials: &[FederatedCredential],
    http: &reqwest::Client,
    assertion: &str,
) -> Result<(), Refusal> {
    let claims = claims(assertion);
    let (issuer, subject) = (text(&claims, "iss"), text(&claims, "sub"));
    let audiences = audiences(&claims);
    let matched = credentials.iter().find(|credential| {
        credential.issuer == issuer
            && credential.subject == subject
            && credential
                .audiences
                .iter()
                .any(|audience| audiences.contains(&audience.as_str()))
    });
    let Some(credential) = matched else {
        return Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{}'.",
                audiences.join(",")
            ),
        ));
    };
    let signature_refused = || {
        (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700027,
            "Client assertion failed signature validation.".to_owned(),
        )
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| signature_refused())?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(signature_refused());
    }
    let keys = issuer_keys(http, &credential.issuer).await.map_err(|why| {
        tracing::info!(issuer = %credential.issuer, %why, "federated issuer's keys unreadable");
        signature_refused()
    })?;
    let key = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or_else(signature_refused)?;
    let key = jsonwebtoken::DecodingKey::from_jwk(key).map_err(|_| signature_refused())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // Times are checked below (their own refusal); audience and issuer were matched above.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|_| signature_refused())?;
    let now = jiff::Timestamp::now().as_second();
    let exp = claims.get("exp").and_then(Value::as_i64);
    let nbf = claims.get("nbf").and_then(Value::as_i64);
    let in_time = exp.is_some_and(|exp| now < exp + LEEWAY_SECS)
        && nbf.is_none_or(|nbf| nbf <= now + LEEWAY_SECS);
    if !in_time {
        return Err((
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.".to_owned(),
        ));
    }
    Ok(())
}

/// `https`, or `http` to a loopback host (the tests' issuers).
fn allowed(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

/// The issuer's signing keys: its discovery document's `jwks_uri`, then that key set.
async fn issuer_keys(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let document: Value = get_json(http, &discovery).await?;
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("the discovery document has no jwks_uri")?;
    let keys = get_json(http, jwks_uri).await?;
    serde_json::from_value(keys).map_err(|e| format!("the key set is not a JWK set: {e}"))
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if !allowed(&parsed) {
        return Err(format!("{url}: not https (http only on loopback)"));
    }
    let response = http
        .get(parsed)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    response.json().await.map_err(|e| format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(issuer: &str, subject: &str) -> FederatedCredential {
        FederatedCredential {
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: vec!["api://AzureADTokenExchange".into()],
        }
    }

    #[test]
    fn configuration_is_checked_like_graph() {
        let one = credential("https://issuer.example", "arn:aws:iam::1:role/r");
        assert!(check_config(std::slice::from_ref(&one)).is_ok());
        let twice = check_config(&[one.clone(), one.clone()]).expect_err("duplicate pair");
        assert!(twice.to_string().contains("already exists"), "{twice}");
        let mut two_audiences = one.clone();
        two_audiences.audiences.push("api://other".into());
        assert!(check_config(&[two_audiences]).is_err());
        let many: Vec<_> = (0..21)
            .map(|n| credential("https://issuer.example", &format!("s{n}")))
            .collect();
        assert!(check_config(&many).is_err());
        assert!(check_config(&many[..20]).is_ok());
        assert!(check_config(&[credential(" https://issuer.example", "s")]).is_err());
    }

    #[test]
    fn only_https_or_loopback_http() {
        let ok = |url: &str| allowed(&reqwest::Url::parse(url).expect("url"));
        assert!(ok(
            "https://abc.tokens.sts.global.api.aws/.well-known/openid-configuration"
        ));
        assert!(ok("http://127.0.0.1:9000/jwks"));
        assert!(ok("http://localhost:9000/jwks"));
        assert!(ok("http://[::1]:9000/jwks"));
        assert!(!ok("http://issuer.example/jwks"));
        assert!(!ok("ftp://127.0.0.1/jwks"));
    }

    #[tokio::test]
    async fn an_assertion_no_credential_matches_is_refused_with_70021() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"iss":"https://other.example","sub":"s","aud":"api://AzureADTokenExchange","exp":9999999999}"#);
        let assertion = format!("{header}.{payload}.c2ln");
        let (status, error, code, description) = verify(
            &[credential("https://issuer.example", "s")],
            &reqwest::Client::new(),
            &assertion,
        )
        .await
        .expect_err("no credential has that issuer");
        assert_eq!(
            (status, error, code),
            (StatusCode::BAD_REQUEST, "invalid_request", 70021)
        );
        assert_eq!(
            description,
            "No matching federated identity record found for presented assertion. Assertion Issuer: 'https://other.example'. Assertion Subject: 's'. Assertion Audience: 'api://AzureADTokenExchange'."
        );
    }
}
