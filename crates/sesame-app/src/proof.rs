//! How a principal proves itself when it signs up or in: a password or a
//! one-time code.

use sesame_core::Error;
use sesame_credentials::LoginType;

/// How a new or returning principal proves itself.
pub(crate) enum Proof {
    /// A password.
    Password(String),
    /// A one-time code sent to the login.
    Code(String),
}

impl Proof {
    /// Exactly one of `password` and `code`.
    pub(crate) fn of(password: Option<String>, code: Option<String>) -> Result<Self, Error> {
        match (password, code) {
            (Some(pw), None) => Ok(Self::Password(pw)),
            (None, Some(code)) => Ok(Self::Code(code)),
            (Some(_), Some(_)) => Err(Error::field("code", "not_allowed_with_password")),
            (None, None) => Err(Error::field("password", "required")),
        }
    }

    /// The RFC 8176 method reference.
    pub(crate) fn amr(&self, login_type: LoginType) -> &'static str {
        match (self, login_type) {
            (Self::Password(_), _) => "pwd",
            (Self::Code(_), LoginType::Phone) => "sms",
            (Self::Code(_), _) => "otp",
        }
    }
}
