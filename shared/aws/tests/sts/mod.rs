//! Secretless Graph access from AWS, end to end on loopback: the real `aws-sdk-sts` client asks
//! the STS stub (`hrsync_hr_emulators::sts`) for a web identity token, the Graph client presents
//! it as its client assertion, and the sandbox verifies it as Entra does (federated identity
//! credential, then the issuer's keys from its discovery document).

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::Region;
use hrsync_aws::sts::StsAssertions;
use hrsync_directory::graph::{Credential, GraphClient, GraphError, GraphSettings};
use hrsync_hr_emulators::sts::StsStub;
use hrsync_sandbox::{FederatedCredential, RunningSandbox, Sandbox, SandboxConfig};

const ROLE: &str = "arn:aws:iam::123456789012:role/hrsync-entra";
const AUDIENCE: &str = "api://AzureADTokenExchange";

async fn sdk(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            "AKIDEXAMPLE",
            "test-secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// A sandbox whose app trusts the stub's issuer for `subject`.
async fn sandbox(issuer: &str, subject: &str) -> RunningSandbox {
    Sandbox::start(SandboxConfig {
        client_secret: Some("not-this-one".into()),
        federated_credentials: vec![FederatedCredential {
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: vec![AUDIENCE.into()],
        }],
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts")
}

async fn client(stub: &StsStub, sandbox: &RunningSandbox, audience: &str) -> GraphClient {
    let assertions =
        StsAssertions::new(&sdk(stub.url(), "eu-west-1").await, audience).expect("a region");
    let mut settings = GraphSettings::new(
        "tenant",
        "hrsync-app",
        Credential::Federated(Arc::new(assertions)),
    );
    settings.graph_endpoint = sandbox.url.clone();
    settings.authority_host = sandbox.url.clone();
    GraphClient::new(settings, reqwest::Client::new())
}

fn refusal(error: GraphError) -> (u16, String, String) {
    match error {
        GraphError::Auth {
            status,
            code,
            description,
        } => (
            status,
            code,
            description.lines().next().unwrap_or_default().to_owned(),
        ),
        other => panic!("expected a token refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_graph_call_signed_in_with_the_sts_token_succeeds() {
    let stub = StsStub::start(ROLE).await;
    let sandbox = sandbox(stub.url(), ROLE).await;
    let graph = client(&stub, &sandbox, AUDIENCE).await;

    let user = graph
        .find_user_by_employee_id("bamboohr:42")
        .await
        .expect("Graph answers with the federated token");
    assert_eq!(user, None);

    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "one assertion for one Graph token");
    assert_eq!(requests[0].audiences, vec![AUDIENCE.to_owned()]);
    assert_eq!(requests[0].signing_algorithm.as_deref(), Some("RS256"));
    assert_eq!(requests[0].duration_seconds, Some(300));
    assert!(requests[0].signed, "the SDK signs the STS call (SigV4)");
    assert_eq!(sandbox.sandbox.stats().tokens, 1);
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let stub = StsStub::start(ROLE).await;
    let sandbox = sandbox(stub.url(), ROLE).await;
    let graph = client(&stub, &sandbox, "api://SomethingElse").await;

    let error = graph
        .check_token()
        .await
        .expect_err("no credential has that audience");
    assert_eq!(
        refusal(error),
        (
            400,
            "invalid_request".to_owned(),
            format!(
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{ROLE}'. Assertion Audience: 'api://SomethingElse'.",
                stub.url()
            )
        )
    );
    assert_eq!(sandbox.sandbox.stats().tokens, 0);
}

#[tokio::test]
async fn a_token_for_another_role_is_refused() {
    let other = "arn:aws:iam::123456789012:role/someone-else";
    let stub = StsStub::start(other).await;
    let sandbox = sandbox(stub.url(), ROLE).await;
    let graph = client(&stub, &sandbox, AUDIENCE).await;

    let error = graph
        .check_token()
        .await
        .expect_err("the subject is not trusted");
    let (status, code, description) = refusal(error.clone());
    assert_eq!((status, code.as_str()), (400, "invalid_request"));
    assert_eq!(
        description,
        format!(
            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{other}'. Assertion Audience: '{AUDIENCE}'.",
            stub.url()
        )
    );
    assert_eq!(
        error.refusal().as_deref(),
        Some(
            "the token endpoint refused the federated assertion (AADSTS70021: No matching federated identity record found for presented assertion.)"
        )
    );
    assert!(error.is_outage());
}

#[tokio::test]
async fn a_token_signed_with_a_key_the_issuer_does_not_publish_is_refused() {
    let stub = StsStub::start(ROLE).await;
    let sandbox = sandbox(stub.url(), ROLE).await;
    let graph = client(&stub, &sandbox, AUDIENCE).await;
    stub.sign_with_unpublished_key(true);

    let error = graph.check_token().await.expect_err("a forged token");
    assert_eq!(
        refusal(error),
        (
            401,
            "invalid_client".to_owned(),
            "AADSTS700027: Client assertion failed signature validation.".to_owned()
        )
    );
    stub.sign_with_unpublished_key(false);
    graph
        .check_token()
        .await
        .expect("the genuine token is taken");
}

#[tokio::test]
async fn an_sts_refusal_is_an_outage_naming_sts_and_the_cause() {
    let stub = StsStub::start(ROLE).await;
    let sandbox = sandbox(stub.url(), ROLE).await;
    let graph = client(&stub, &sandbox, AUDIENCE).await;
    stub.refuse(Some((
        403,
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/hrsync-entra/f is not authorized to perform: sts:GetWebIdentityToken",
    )));

    let error = graph.check_token().await.expect_err("STS refuses");
    assert_eq!(
        error,
        GraphError::Assertion(
            "AWS STS GetWebIdentityToken (api://AzureADTokenExchange): AccessDenied: User: arn:aws:sts::123456789012:assumed-role/hrsync-entra/f is not authorized to perform: sts:GetWebIdentityToken".into()
        )
    );
    assert!(error.is_outage() && error.is_retryable());
    assert!(
        error
            .to_string()
            .starts_with("cannot get the federated assertion from AWS STS")
    );
    assert_eq!(sandbox.sandbox.stats().tokens, 0, "Entra was never asked");
}

#[tokio::test]
async fn the_global_endpoint_is_refused() {
    let config = sdk("http://127.0.0.1:9", "aws-global").await;
    let error = StsAssertions::new(&config, AUDIENCE).expect_err("no global endpoint");
    assert!(error.0.contains("global endpoint"), "{error}");
}
