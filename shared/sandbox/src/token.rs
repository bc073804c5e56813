//! The Microsoft identity platform's client-credentials token endpoint, and validation of the
//! bearer tokens it issues.
//!
//! The sandbox accepts the configured client secret (any secret when none is configured: 401
//! `invalid_client` AADSTS7000215 otherwise), a well-formed certificate assertion (`iss` = `sub`
//! = the client id; it checks the shape, not the signature), and an assertion of another issuer
//! only as workload identity federation allows it (`federation.rs`). Its access tokens are JWT-shaped and "signed" with
//! `sha256(key || header.payload)` using a key kept in the data file, so they survive a restart
//! and expire after 3599 seconds like Entra's.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::Shared;
use super::federation;

/// Lifetime of an access token, as Entra reports it.
pub(crate) const EXPIRES_IN: i64 = 3599;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `application/x-www-form-urlencoded` pairs, decoded.
pub(crate) fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Percent-decoding; `plus_is_space` for form and query encoding.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> (StatusCode, Value) {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    (
        status,
        json!({
            "error": error,
            "error_description": format!(
                "AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn missing(parameter: &str) -> (StatusCode, Value) {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

/// A compact JWT: three non-empty base64url parts whose first two are JSON objects.
fn well_formed_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[..2].iter().all(|p| {
            URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .is_some_and(|v| v.is_object())
        })
        && URL_SAFE_NO_PAD
            .decode(parts[2].trim_end_matches('='))
            .is_ok()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token_endpoint(
    shared: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Value) {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = if is_form {
        parse_form(&String::from_utf8_lossy(body))
    } else {
        Vec::new()
    };
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };

    let Some(grant_type) = get("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        );
    }
    let Some(client_id) = get("client_id") else {
        return missing("client_id");
    };
    let Some(scope) = get("scope") else {
        return missing("scope");
    };
    if !scope.split(' ').any(|s| s.ends_with("/.default")) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let secret = get("client_secret");
    let assertion = match (get("client_assertion_type"), get("client_assertion")) {
        (Some(JWT_BEARER), Some(assertion)) => Some(assertion),
        _ => None,
    };
    match (secret, assertion) {
        (None, None) => {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        }
        (None, Some(assertion)) if !well_formed_jwt(assertion) => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            );
        }
        (Some(given), _)
            if shared
                .settings
                .client_secret
                .as_deref()
                .is_some_and(|secret| secret != given) =>
        {
            // learn.microsoft.com/entra/identity-platform/reference-error-codes (AADSTS7000215),
            // the message as Entra sends it (e.g. microsoftgraph/msgraph-cli#383).
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                &format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            );
        }
        _ => {}
    }
    if let (None, Some(assertion)) = (secret, assertion) {
        // RFC 7523 client authentication: the app signs its own assertion (`iss` = `sub` = its
        // client id, learn.microsoft.com/entra/identity-platform/certificate-credentials).
        // Anything else is another issuer's token: workload identity federation.
        let claims = federation::claims(assertion);
        let claim = |name: &str| claims.get(name).and_then(Value::as_str);
        let own = claim("iss") == Some(client_id) && claim("sub") == Some(client_id);
        if claim("iss") == Some(client_id) && !own {
            // learn.microsoft.com/entra/identity-platform/reference-error-codes (AADSTS50048).
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                50048,
                "Subject mismatches Issuer claim in the client assertion.",
            );
        }
        if !own
            && let Err((status, error, code, description)) = federation::verify(
                &shared.settings.federated_credentials,
                &shared.http,
                assertion,
            )
            .await
        {
            return aad_error(status, error, code, &description);
        }
    }

    let token = issue(
        &shared.token_key,
        tenant,
        client_id,
        &shared.settings.app_roles,
    );
    shared.counters.count_token();
    (
        StatusCode::OK,
        json!({
            "token_type": "Bearer",
            "expires_in": EXPIRES_IN,
            "ext_expires_in": EXPIRES_IN,
            "access_token": token,
        }),
    )
}

fn signature(key: &str, signing_input: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(b".");
    hasher.update(signing_input.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

fn issue(key: &str, tenant: &str, client_id: &str, roles: &[String]) -> String {
    let now = jiff::Timestamp::now().as_second();
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256","kid":"hrsync-sandbox"}"#);
    let payload = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now,
        "nbf": now,
        "exp": now + EXPIRES_IN,
        "appid": client_id,
        "tid": tenant,
        "roles": roles,
        "uti": uuid::Uuid::new_v4().to_string(),
        "ver": "1.0",
    });
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let signing_input = format!("{header}.{payload}");
    let sig = signature(key, &signing_input);
    format!("{signing_input}.{sig}")
}

/// Who a valid access token was issued to: the write quota is per app and tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Caller {
    pub(crate) tenant: String,
    pub(crate) app: String,
}

/// Checks `Authorization: Bearer <token>`: the caller and the application permissions its
/// token's `roles` claim grants. The error is Graph's message for a 401
/// `InvalidAuthenticationToken`.
pub(crate) fn validate(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<(Caller, Vec<String>), &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ if value.is_empty() => return Err("Access token is empty."),
        _ => return Err("Access token validation failure."),
    };
    if token.is_empty() {
        return Err("Access token is empty.");
    }
    let Some((signing_input, sig)) = token.rsplit_once('.') else {
        return Err("Access token validation failure.");
    };
    if signature(&shared.token_key, signing_input) != sig {
        return Err("Access token validation failure.");
    }
    let claims = signing_input
        .split_once('.')
        .and_then(|(_, payload)| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or(Value::Null);
    let claim = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > jiff::Timestamp::now().as_second() => {
            let roles = claims
                .get("roles")
                .and_then(Value::as_array)
                .map(|roles| {
                    roles
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Ok((
                Caller {
                    tenant: claim("tid"),
                    app: claim("appid"),
                },
                roles,
            ))
        }
        Some(_) => Err("Lifetime validation failed, the token is expired."),
        None => Err("Access token validation failure."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_and_query_encoding() {
        assert_eq!(percent_decode("a%20b+c%2B", true), "a b c+");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%E2%82%AC", true), "€");
        assert_eq!(percent_decode("%zz", true), "%zz");
    }

    #[test]
    fn jwt_shape() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        assert!(well_formed_jwt(&format!("{header}.{payload}.c2ln")));
        assert!(!well_formed_jwt("not-a-jwt"));
        assert!(!well_formed_jwt(&format!("{header}.{payload}.")));
        assert!(!well_formed_jwt("aGk.aGk.aGk"));
    }
}
