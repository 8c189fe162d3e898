//! Real e-mail over SMTP (lettre): plain, STARTTLS or implicit TLS, with
//! optional authentication and a pool of connections.

use crate::{DeliveryError, Mailer, Message};
use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS, and refuse a server that cannot (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

/// Settings of the SMTP mailer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port; defaults to 587, 465 or 25 by `tls`.
    pub port: Option<u16>,
    /// Connection security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// User name, when the server needs authentication.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<SecretString>,
    /// PEM file of certificate authorities to trust besides the public ones,
    /// for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Seconds before a connection attempt or command gives up.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    10
}

/// Sends e-mail through an SMTP server.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`, sending as `from` (e.g. `Sesame <no-reply@example.com>`).
    pub fn new(config: &SmtpConfig, from: &str) -> Result<Self, DeliveryError> {
        let bad = |e: &dyn std::fmt::Display| DeliveryError(format!("SMTP settings: {e}"));
        let from: Mailbox = from.parse().map_err(|e| bad(&e))?;
        let builder = match config.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| bad(&e))?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(|e| bad(&e))?
            }
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).port(25)
            }
        };
        let mut builder = builder.timeout(Some(Duration::from_secs(config.timeout_secs)));
        if let Some(ca_file) = &config.ca_file {
            let pem =
                std::fs::read(ca_file).map_err(|e| bad(&format!("{}: {e}", ca_file.display())))?;
            let ca = Certificate::from_pem(&pem).map_err(|e| bad(&e))?;
            let params = TlsParameters::builder(config.host.clone())
                .add_root_certificate(ca)
                .build_rustls()
                .map_err(|e| bad(&e))?;
            builder = match config.tls {
                SmtpTls::Starttls => builder.tls(Tls::Required(params)),
                SmtpTls::Tls => builder.tls(Tls::Wrapper(params)),
                SmtpTls::None => builder,
            };
        }
        if let Some(port) = config.port {
            builder = builder.port(port);
        }
        if let Some(user) = &config.username {
            let password = config
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, m: &Message) -> Result<(), DeliveryError> {
        let to: Mailbox =
            m.to.parse()
                .map_err(|e| DeliveryError(format!("recipient: {e}")))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| DeliveryError(format!("message: {e}")))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| DeliveryError(format!("SMTP: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The connection pool lives on the Tokio runtime.
    #[tokio::test]
    async fn settings_are_checked() {
        let config = SmtpConfig {
            host: "smtp.example.com".into(),
            port: None,
            tls: SmtpTls::Starttls,
            username: Some("user".into()),
            password: Some(SecretString::from("secret")),
            ca_file: None,
            timeout_secs: 5,
        };
        let mailer = SmtpMailer::new(&config, "Sesame <no-reply@example.com>").unwrap();
        assert!(!format!("{mailer:?}").contains("secret"));
        assert!(SmtpMailer::new(&config, "not an address").is_err());
        let missing_ca = SmtpConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..config
        };
        assert!(SmtpMailer::new(&missing_ca, "Sesame <no-reply@example.com>").is_err());
    }
}
