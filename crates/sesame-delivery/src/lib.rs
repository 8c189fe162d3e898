//! How messages reach people. Flows hand a [`Message`] to a [`Mailer`] or an
//! [`SmsSender`]; the embedded default writes each message as a file under the
//! data directory so that someone running Sesame locally can read the code.

mod files;
mod smtp;
mod template;

pub use files::{FileMailer, FileSmsSender};
pub use smtp::{SmtpConfig, SmtpMailer, SmtpTls};
pub use template::{CodeKind, Templates};

use async_trait::async_trait;
use std::fmt;

/// One message to one recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// E-mail address or E.164 phone number.
    pub to: String,
    /// Subject line (e-mail only).
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

impl fmt::Debug for Message {
    // Subject and body carry a code: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// Why a message could not be handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError(pub String);

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeliveryError {}

/// Sends e-mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Hands one message over for delivery.
    async fn send(&self, message: &Message) -> Result<(), DeliveryError>;
}

/// Sends text messages.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Hands one message over for delivery.
    async fn send(&self, message: &Message) -> Result<(), DeliveryError>;
}
