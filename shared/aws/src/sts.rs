//! Federated assertions for Microsoft Graph from AWS STS `GetWebIdentityToken` (IAM outbound
//! identity federation): a JWT signed by STS for the caller's IAM role (`sub` = the role's
//! ARN, `iss` = the account's issuer URL, `aud` = the requested audience), which Entra exchanges
//! for a Graph token through a federated identity credential on the app registration. No secret
//! is stored anywhere (`docs/entra-setup.md`, "Secretless from AWS").
//!
//! Each token request asks STS afresh (Graph tokens last an hour; the assertion 5 minutes),
//! signed RS256, on the region's STS endpoint: `GetWebIdentityToken` is not served by the global
//! endpoint (sts.amazonaws.com), so a config whose region is `aws-global` (or none) is refused.
//! The SDK's own configuration applies, `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` included.

use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata};
use hrsync_directory::graph::GraphError;
use hrsync_directory::graph::auth::{AssertionSource, BoxFuture};

use crate::settings::SettingsError;

/// How long each assertion stays valid: STS's default, the least the IAM policy allows.
pub const ASSERTION_SECONDS: i32 = 300;

/// The signing algorithm asked for (Entra supports RS256 issuers).
pub const SIGNING_ALGORITHM: &str = "RS256";

/// Assertions from STS `GetWebIdentityToken` for one audience.
#[derive(Debug, Clone)]
pub struct StsAssertions {
    client: aws_sdk_sts::Client,
    audience: String,
}

impl StsAssertions {
    /// STS of `sdk`'s region; `audience` is the federated identity credential's
    /// (`api://AzureADTokenExchange` by default).
    pub fn new(sdk: &aws_config::SdkConfig, audience: &str) -> Result<Self, SettingsError> {
        match sdk.region().map(|r| r.as_ref()) {
            None => Err(SettingsError(
                "directory.federated = \"aws\": no AWS region is configured, and STS GetWebIdentityToken needs a regional endpoint (set AWS_REGION)".into(),
            )),
            Some("aws-global") => Err(SettingsError(
                "directory.federated = \"aws\": STS GetWebIdentityToken is not served by the global endpoint; set AWS_REGION to a region".into(),
            )),
            Some(_) => Ok(Self {
                client: aws_sdk_sts::Client::new(sdk),
                audience: audience.to_owned(),
            }),
        }
    }

    async fn fetch(&self) -> Result<String, GraphError> {
        let refused = |why: String| {
            GraphError::Assertion(format!(
                "AWS STS GetWebIdentityToken ({}): {why}",
                self.audience
            ))
        };
        let output = self
            .client
            .get_web_identity_token()
            .audience(&self.audience)
            .signing_algorithm(SIGNING_ALGORITHM)
            .duration_seconds(ASSERTION_SECONDS)
            .send()
            .await
            .map_err(|error| {
                refused(match error.code() {
                    Some(code) => format!("{code}: {}", error.message().unwrap_or_default()),
                    None => DisplayErrorContext(&error).to_string(),
                })
            })?;
        match output.web_identity_token {
            Some(token) if !token.is_empty() => Ok(token),
            _ => Err(refused("the answer holds no WebIdentityToken".into())),
        }
    }
}

impl AssertionSource for StsAssertions {
    fn describe(&self) -> String {
        format!("AWS STS GetWebIdentityToken (audience {})", self.audience)
    }

    fn assertion(&self) -> BoxFuture<'_, Result<String, GraphError>> {
        Box::pin(self.fetch())
    }
}
