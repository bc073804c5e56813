//! `[[notify]]` targets of `kind = "smtp"`: a plain-text e-mail through an SMTP server, with
//! STARTTLS (default), implicit TLS, or none (a relay on the host only), and optional
//! credentials (secret references). The local runtime sends these; on AWS, use `ses` or `sns`.

use std::sync::Arc;
use std::time::Duration;

use hrsync_core::config::{NotifyKind, NotifyTarget, SecretRef, SmtpTls};
use hrsync_pipeline::notify::{Message, Notifier, Sending};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// How long the SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One SMTP target.
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials never reach a log.
        f.debug_struct("SmtpNotifier")
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl SmtpNotifier {
    /// From `target` (`key` is `notify[<index>]`, which errors name); the credentials resolved
    /// with `resolve`.
    pub fn from_config(
        key: &str,
        target: &NotifyTarget,
        resolve: &dyn Fn(&SecretRef) -> Result<String, String>,
    ) -> Result<Self, String> {
        let host = target
            .host
            .as_deref()
            .ok_or_else(|| format!("{key}.host: is required for kind = \"smtp\""))?;
        let port = target.smtp_port();
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|e| format!("{key}.tls: cannot set up TLS for {host}: {e}"))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(SMTP_TIMEOUT));
        builder = match target.tls.unwrap_or(SmtpTls::Starttls) {
            SmtpTls::Starttls => builder.tls(Tls::Required(tls(host)?)),
            SmtpTls::Tls => builder.tls(Tls::Wrapper(tls(host)?)),
            SmtpTls::None => builder.tls(Tls::None),
        };
        if let (Some(username), Some(password)) = (&target.username, &target.password) {
            let username = resolve(username).map_err(|e| format!("{key}.username: {e}"))?;
            let password = resolve(password).map_err(|e| format!("{key}.password: {e}"))?;
            builder = builder.credentials(Credentials::new(username, password));
        }
        let mailbox = |field: &str, text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| format!("{key}.{field}: {text:?} is not an e-mail address: {e}"))
        };
        let from = mailbox(
            "from",
            target
                .from
                .as_deref()
                .ok_or_else(|| format!("{key}.from: is required for kind = \"smtp\""))?,
        )?;
        let to = target
            .to
            .iter()
            .enumerate()
            .map(|(i, to)| mailbox(&format!("to[{i}]"), to))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(format!("{key}.to: is required for kind = \"smtp\""));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
        })
    }
}

impl Notifier for SmtpNotifier {
    fn send<'a>(&'a self, message: &'a Message) -> Sending<'a> {
        Box::pin(async move {
            let mut email = lettre::Message::builder()
                .from(self.from.clone())
                .subject(message.subject.clone())
                .header(ContentType::TEXT_PLAIN);
            for to in &self.to {
                email = email.to(to.clone());
            }
            let email = email
                .body(message.text.clone())
                .map_err(|e| format!("smtp: cannot build the message: {e}"))?;
            self.transport
                .send(email)
                .await
                .map(|_| ())
                .map_err(|e| format!("smtp: {e}"))
        })
    }
}

/// The local runtime's builder for the targets the pipeline does not build itself: SMTP;
/// `Ok(None)` (left out, with a warning) for SNS and SES, which only the AWS runtime sends.
pub fn notifier(
    key: &str,
    target: &NotifyTarget,
    resolve: &dyn Fn(&SecretRef) -> Result<String, String>,
) -> Result<Option<Arc<dyn Notifier>>, String> {
    match target.kind {
        NotifyKind::Smtp => Ok(Some(Arc::new(SmtpNotifier::from_config(
            key, target, resolve,
        )?))),
        _ => Ok(None),
    }
}
