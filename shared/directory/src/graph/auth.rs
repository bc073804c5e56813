//! App-only tokens from the Microsoft identity platform (OAuth 2.0 client credentials grant).
//!
//! `POST {authority_host}/{tenant}/oauth2/v2.0/token`, form-encoded, with
//! `client_id`, `scope={graph_endpoint}/.default`, `grant_type=client_credentials` and either
//! `client_secret`, or `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! with a `client_assertion` JWT: one signed by the app's certificate key, or (workload identity
//! federation) one another issuer signed for the app's federated identity credential, such as
//! AWS STS `GetWebIdentityToken` (an [`AssertionSource`], asked afresh for every token request).
//!
//! The assertion follows Microsoft's "certificate credentials" page: header `alg: PS256`,
//! `typ: JWT`, `x5t#S256` = base64url SHA-256 of the certificate's DER; claims `aud` = the token
//! endpoint URL, `iss` = `sub` = client id, `jti` (a fresh UUID), `nbf` = `iat` = now, `exp` = now +
//! 10 minutes. (The older revision of that page used `RS256` with a SHA-1 `x5t`; the current one pairs
//! `x5t#S256` with PS256, which is what is sent here.)
//!
//! The token is cached until shortly before it expires (5 minutes, or half its lifetime when that is
//! shorter) and refreshed under a lock, so many concurrent callers cause one token request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::error::GraphError;

/// The `client_assertion_type` for a signed JWT assertion (RFC 7523).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a signed client assertion stays valid.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// Longest time before expiry at which a cached token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A boxed future, as [`AssertionSource::assertion`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a federated credential's assertions come from: a JWT issued by a trusted external
/// identity provider (`iss`, `sub` and `aud` matching a federated identity credential on the
/// app registration), presented as `client_assertion` with no secret. The directory crate
/// knows no provider: the AWS runtime gives it one over STS (`hrsync_aws::sts`).
pub trait AssertionSource: Send + Sync {
    /// The provider in words, for errors and logs (e.g. `AWS STS GetWebIdentityToken`).
    fn describe(&self) -> String;

    /// A fresh assertion. A failure is [`GraphError::Assertion`], naming the provider and
    /// the cause, never holding a token.
    fn assertion(&self) -> BoxFuture<'_, Result<String, GraphError>>;
}

/// How the app proves who it is to the token endpoint.
#[derive(Clone)]
pub enum Credential {
    /// A client secret of the app registration.
    ClientSecret(String),
    /// A certificate registered on the app, and its private key, both PEM. The key may be PKCS#8
    /// (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`), unencrypted RSA of 2048 bits or
    /// more. Both may be in one PEM text; the first `CERTIFICATE` block is the one registered.
    Certificate {
        /// The certificate, PEM.
        certificate_pem: String,
        /// The RSA private key, PEM.
        private_key_pem: String,
    },
    /// Workload identity federation: each token request presents a fresh assertion from the
    /// source (no secret or key held here).
    Federated(Arc<dyn AssertionSource>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ClientSecret(_) => f.write_str("ClientSecret(<redacted>)"),
            Credential::Certificate { .. } => f.write_str("Certificate { <redacted> }"),
            Credential::Federated(source) => write!(f, "Federated({})", source.describe()),
        }
    }
}

impl Credential {
    /// Checks that the credential can be used (PEM blocks present, key is RSA), so a bad
    /// configuration fails at start-up instead of at the first token request.
    pub fn check(&self) -> Result<(), GraphError> {
        match self {
            Credential::ClientSecret(secret) if secret.is_empty() => {
                Err(GraphError::Credential("the client secret is empty".into()))
            }
            Credential::ClientSecret(_) => Ok(()),
            Credential::Certificate {
                certificate_pem,
                private_key_pem,
            } => {
                CertificateSigner::parse(certificate_pem, private_key_pem)?;
                Ok(())
            }
            Credential::Federated(_) => Ok(()),
        }
    }
}

/// The parsed certificate credential.
struct CertificateSigner {
    thumbprint_s256: String,
    key: jsonwebtoken::EncodingKey,
}

impl CertificateSigner {
    fn parse(certificate_pem: &str, private_key_pem: &str) -> Result<Self, GraphError> {
        let der = pem_block(certificate_pem, "CERTIFICATE")?.ok_or_else(|| {
            GraphError::Credential("no CERTIFICATE block in the certificate PEM".into())
        })?;
        let thumbprint_s256 = certificate_thumbprint_s256(&der);
        let key_der = rsa_private_key_der(private_key_pem)?;
        Ok(CertificateSigner {
            thumbprint_s256,
            key: jsonwebtoken::EncodingKey::from_rsa_der(&key_der),
        })
    }

    fn assertion(&self, token_url: &str, client_id: &str) -> Result<String, GraphError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
        header.typ = Some("JWT".into());
        header.x5t_s256 = Some(self.thumbprint_s256.clone());
        let now = jiff::Timestamp::now().as_second();
        let claims = AssertionClaims {
            aud: token_url,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| GraphError::Credential(format!("cannot sign the client assertion: {e}")))
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// `x5t#S256`: base64url (no padding) of the SHA-256 of the certificate's DER encoding.
pub fn certificate_thumbprint_s256(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der))
}

/// The bytes of the first `-----BEGIN {label}-----` block, or `None` when there is none.
fn pem_block(pem: &str, label: &str) -> Result<Option<Vec<u8>>, GraphError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Some(start) = pem.find(&begin) else {
        return Ok(None);
    };
    let body = &pem[start + begin.len()..];
    let Some(stop) = body.find(&end) else {
        return Err(GraphError::Credential(format!(
            "unterminated {label} PEM block"
        )));
    };
    let b64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map(Some)
        .map_err(|_| GraphError::Credential(format!("the {label} PEM block is not valid base64")))
}

/// The PKCS#1 `RSAPrivateKey` DER of a PEM private key (PKCS#1 as is, PKCS#8 unwrapped).
fn rsa_private_key_der(pem: &str) -> Result<Vec<u8>, GraphError> {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(GraphError::Credential(
            "encrypted private keys are not supported; decrypt the key first".into(),
        ));
    }
    if let Some(der) = pem_block(pem, "RSA PRIVATE KEY")? {
        return Ok(der);
    }
    if let Some(der) = pem_block(pem, "PRIVATE KEY")? {
        return pkcs8_to_pkcs1(&der);
    }
    Err(GraphError::Credential(
        "no PRIVATE KEY or RSA PRIVATE KEY block in the private key PEM".into(),
    ))
}

/// DER of the `rsaEncryption` OID, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// `PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm AlgorithmIdentifier, privateKey OCTET
/// STRING, ... }` (RFC 5208): returns the OCTET STRING, which for RSA is the PKCS#1 key.
fn pkcs8_to_pkcs1(der: &[u8]) -> Result<Vec<u8>, GraphError> {
    let bad = || GraphError::Credential("the PKCS#8 private key is malformed".into());
    let (tag, info, _) = der_tlv(der).ok_or_else(bad)?;
    if tag != 0x30 {
        return Err(bad());
    }
    let (tag, _version, rest) = der_tlv(info).ok_or_else(bad)?;
    if tag != 0x02 {
        return Err(bad());
    }
    let (tag, algorithm, rest) = der_tlv(rest).ok_or_else(bad)?;
    if tag != 0x30 {
        return Err(bad());
    }
    let (tag, oid, _) = der_tlv(algorithm).ok_or_else(bad)?;
    if tag != 0x06 || oid != RSA_ENCRYPTION_OID {
        return Err(GraphError::Credential(
            "the private key is not an RSA key (rsaEncryption)".into(),
        ));
    }
    let (tag, key, _) = der_tlv(rest).ok_or_else(bad)?;
    if tag != 0x04 {
        return Err(bad());
    }
    Ok(key.to_vec())
}

/// One DER tag-length-value: (tag, contents, rest). Single-byte tags only (enough here).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The `roles` claim of a compact JWT's payload, when it has one.
fn roles_claim(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let roles = claims.get("roles")?.as_array()?;
    Some(
        roles
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    )
}

/// An access token handed to a request, with the generation it belongs to (so a 401 drops only the
/// token that failed, not a newer one).
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub(crate) value: String,
    pub(crate) generation: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken(<redacted>, generation {})", self.generation)
    }
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
}

#[derive(Default)]
struct CacheState {
    current: Option<CachedToken>,
    generation: u64,
}

/// Fetches and caches app-only tokens.
pub(crate) struct TokenSource {
    token_url: String,
    client_id: String,
    scope: String,
    credential: Credential,
    cache: Mutex<CacheState>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenSource {
    pub(crate) fn new(
        authority_host: &str,
        tenant_id: &str,
        graph_endpoint: &str,
        client_id: &str,
        credential: Credential,
    ) -> Self {
        TokenSource {
            token_url: format!(
                "{}/{}/oauth2/v2.0/token",
                authority_host.trim_end_matches('/'),
                tenant_id
            ),
            client_id: client_id.to_owned(),
            scope: format!("{}/.default", graph_endpoint.trim_end_matches('/')),
            credential,
            cache: Mutex::new(CacheState::default()),
        }
    }

    /// `{authority_host}/{tenant}/oauth2/v2.0/token`.
    pub(crate) fn token_url(&self) -> &str {
        &self.token_url
    }

    fn unreachable(&self, error: &reqwest::Error) -> GraphError {
        super::http::transport_error(&format!("the token endpoint {}", self.token_url), error)
    }

    /// A valid token: the cached one, or a new one fetched under the lock.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<AccessToken, GraphError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = &cache.current
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let (value, lifetime) = self.fetch(http).await?;
        cache.generation += 1;
        let token = AccessToken {
            value,
            generation: cache.generation,
        };
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        cache.current = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        tracing::debug!(
            lifetime_secs = lifetime.as_secs(),
            generation = token.generation,
            "acquired a Graph access token"
        );
        Ok(token)
    }

    /// The application permissions the token's `roles` claim grants (Entra's app-only tokens
    /// for Graph carry it); `None` when the token is not a JWT with that claim. The token is
    /// decoded, not verified, and never leaves this function.
    pub(crate) async fn roles(
        &self,
        http: &reqwest::Client,
    ) -> Result<Option<Vec<String>>, GraphError> {
        let token = self.token(http).await?;
        Ok(roles_claim(&token.value))
    }

    /// Drops the cached token if it is still the one of `generation` (Graph answered 401 to it).
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut cache = self.cache.lock().await;
        if cache
            .current
            .as_ref()
            .is_some_and(|c| c.token.generation == generation)
        {
            cache.current = None;
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(String, Duration), GraphError> {
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".to_owned()),
        ];
        match &self.credential {
            Credential::ClientSecret(secret) => form.push(("client_secret", secret.clone())),
            Credential::Certificate {
                certificate_pem,
                private_key_pem,
            } => {
                let signer = CertificateSigner::parse(certificate_pem, private_key_pem)?;
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()));
                form.push((
                    "client_assertion",
                    signer.assertion(&self.token_url, &self.client_id)?,
                ));
            }
            Credential::Federated(source) => {
                let assertion = source.assertion().await?;
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()));
                form.push(("client_assertion", assertion));
            }
        }
        let response = http
            .post(&self.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if (200..300).contains(&status) {
            let body: TokenResponse = serde_json::from_slice(&bytes)
                .map_err(|e| GraphError::Decode(format!("token response: {e}")))?;
            let lifetime = body
                .expires_in
                .as_ref()
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(3599);
            return Ok((body.access_token, Duration::from_secs(lifetime)));
        }
        let (code, description) = match serde_json::from_slice::<TokenErrorResponse>(&bytes) {
            Ok(err) => (err.error, err.error_description),
            Err(_) => (
                format!("http_{status}"),
                String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            ),
        };
        tracing::warn!(status, code = %code, "token request refused");
        Err(GraphError::Auth {
            status,
            code,
            description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../tests/fixtures/graph_test_cert.pem");
    const KEY_PKCS8: &str = include_str!("../../tests/fixtures/graph_test_key.pem");
    const KEY_PKCS1: &str = include_str!("../../tests/fixtures/graph_test_key_pkcs1.pem");

    #[test]
    fn pkcs8_unwraps_to_the_same_pkcs1_key() {
        let from8 = rsa_private_key_der(KEY_PKCS8).expect("pkcs8");
        let from1 = rsa_private_key_der(KEY_PKCS1).expect("pkcs1");
        assert_eq!(from8, from1);
    }

    #[test]
    fn thumbprint_matches_openssl() {
        // openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url
        let der = pem_block(CERT, "CERTIFICATE").expect("pem").expect("block");
        assert_eq!(
            certificate_thumbprint_s256(&der),
            "SwIGhGCYyutOR8FpxjTSiut701Qcl2s4qnFoU9YkDps"
        );
    }

    #[test]
    fn bad_credentials_are_reported() {
        let cred = Credential::Certificate {
            certificate_pem: "nope".into(),
            private_key_pem: KEY_PKCS8.into(),
        };
        assert!(matches!(cred.check(), Err(GraphError::Credential(_))));
        let cred = Credential::Certificate {
            certificate_pem: CERT.into(),
            private_key_pem:
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
                    .into(),
        };
        assert!(matches!(cred.check(), Err(GraphError::Credential(_))));
        assert!(Credential::ClientSecret(String::new()).check().is_err());
        let ok = Credential::Certificate {
            certificate_pem: CERT.into(),
            private_key_pem: KEY_PKCS1.into(),
        };
        assert!(ok.check().is_ok());
    }

    #[test]
    fn roles_are_read_from_the_payload() {
        let payload =
            URL_SAFE_NO_PAD.encode(br#"{"roles":["User.Read.All","GroupMember.ReadWrite.All"]}"#);
        assert_eq!(
            roles_claim(&format!("e30.{payload}.c2ln")),
            Some(vec![
                "User.Read.All".to_owned(),
                "GroupMember.ReadWrite.All".to_owned()
            ])
        );
        assert_eq!(roles_claim("opaque-token"), None);
        let none = URL_SAFE_NO_PAD.encode(br#"{"appid":"x"}"#);
        assert_eq!(roles_claim(&format!("e30.{none}.c2ln")), None);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let cred = Credential::ClientSecret("s3cr3t".into());
        assert!(!format!("{cred:?}").contains("s3cr3t"));
    }

    struct Fixed(&'static str);

    impl AssertionSource for Fixed {
        fn describe(&self) -> String {
            "a fixed assertion".into()
        }
        fn assertion(&self) -> BoxFuture<'_, Result<String, GraphError>> {
            Box::pin(async move { Ok(self.0.to_owned()) })
        }
    }

    #[test]
    fn a_federated_credential_shows_its_source_not_its_assertion() {
        let cred = Credential::Federated(Arc::new(Fixed("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")));
        let shown = format!("{cred:?}");
        assert_eq!(shown, "Federated(a fixed assertion)");
        assert!(cred.check().is_ok());
    }
}
