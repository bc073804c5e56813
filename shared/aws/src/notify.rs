//! `[[notify]]` targets of the AWS runtime: an SNS topic (`kind = "sns"`: whoever subscribes,
//! e-mail, SQS, a chat through AWS's chat integrations) or an e-mail through SES v2
//! (`kind = "ses"`). Both go through the function's role: no secret.

use std::sync::Arc;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message as SesMessage};
use hrsync_core::config::{NotifyKind, NotifyTarget};
use hrsync_pipeline::notify::{Message, Notifier, Sending};

/// SNS's limit on a subject: ASCII, no line breaks, under 100 characters.
const SNS_SUBJECT_MAX: usize = 99;

/// Publishes each message to an SNS topic.
#[derive(Debug)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: &str) -> Self {
        Self {
            client,
            topic_arn: topic_arn.to_owned(),
        }
    }
}

/// `subject` as SNS takes it: printable ASCII only, cut to its limit.
pub fn sns_subject(subject: &str) -> String {
    let ascii: String = subject
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            _ => '?',
        })
        .take(SNS_SUBJECT_MAX)
        .collect();
    ascii.trim().to_owned()
}

impl Notifier for SnsNotifier {
    fn send<'a>(&'a self, message: &'a Message) -> Sending<'a> {
        Box::pin(async move {
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .subject(sns_subject(&message.subject))
                .message(&message.text)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("sns: {}", aws_sdk_sns::error::DisplayErrorContext(&e)))
        })
    }
}

/// Sends each message as a plain-text e-mail through SES v2.
#[derive(Debug)]
pub struct SesNotifier {
    client: aws_sdk_sesv2::Client,
    from: String,
    to: Vec<String>,
}

impl SesNotifier {
    pub fn new(client: aws_sdk_sesv2::Client, from: &str, to: &[String]) -> Self {
        Self {
            client,
            from: from.to_owned(),
            to: to.to_vec(),
        }
    }
}

impl Notifier for SesNotifier {
    fn send<'a>(&'a self, message: &'a Message) -> Sending<'a> {
        Box::pin(async move {
            let content = |text: &str| {
                Content::builder()
                    .data(text)
                    .charset("UTF-8")
                    .build()
                    .map_err(|e| format!("ses: {e}"))
            };
            let email = SesMessage::builder()
                .subject(content(&message.subject)?)
                .body(Body::builder().text(content(&message.text)?).build())
                .build();
            self.client
                .send_email()
                .from_email_address(&self.from)
                .destination(
                    Destination::builder()
                        .set_to_addresses(Some(self.to.clone()))
                        .build(),
                )
                .content(EmailContent::builder().simple(email).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("ses: {}", aws_sdk_sesv2::error::DisplayErrorContext(&e)))
        })
    }
}

/// The AWS runtime's builder for the targets the pipeline does not build itself: SNS and SES;
/// `Ok(None)` (left out, with a warning) for SMTP, which only the local runtime sends.
pub fn notifier(
    sdk: &aws_config::SdkConfig,
    key: &str,
    target: &NotifyTarget,
) -> Result<Option<Arc<dyn Notifier>>, String> {
    match target.kind {
        NotifyKind::Sns => {
            let arn = target
                .topic_arn
                .as_deref()
                .ok_or_else(|| format!("{key}.topic_arn: is required for kind = \"sns\""))?;
            Ok(Some(Arc::new(SnsNotifier::new(
                aws_sdk_sns::Client::new(sdk),
                arn,
            ))))
        }
        NotifyKind::Ses => {
            let from = target
                .from
                .as_deref()
                .ok_or_else(|| format!("{key}.from: is required for kind = \"ses\""))?;
            Ok(Some(Arc::new(SesNotifier::new(
                aws_sdk_sesv2::Client::new(sdk),
                from,
                &target.to,
            ))))
        }
        _ => Ok(None),
    }
}
