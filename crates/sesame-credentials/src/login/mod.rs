//! Login types and the normalisation rule of each (DESIGN.md §4). The normalised
//! form is what is stored, compared and returned.

mod email;
mod phone;
mod username;

pub use phone::parse_region;

use serde::{Deserialize, Serialize};
use sesame_core::Error;
use std::fmt;

/// A kind of login identifier. Adding one is new code here, never a schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginType {
    /// An e-mail address.
    Email,
    /// A phone number in E.164.
    Phone,
    /// A chosen user name.
    Username,
    /// A WebAuthn credential (identifier: its credential id in base64url);
    /// never typed, so never normalised from input.
    Passkey,
}

impl LoginType {
    /// The name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Username => "username",
            Self::Passkey => "passkey",
        }
    }

    /// Parses a stored or requested login type.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            "username" => Some(Self::Username),
            "passkey" => Some(Self::Passkey),
            _ => None,
        }
    }
}

impl fmt::Display for LoginType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which characters a username may hold after normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameCharset {
    /// `a-z`, `0-9`, `_`, `.` and `-`: no look-alike letters from other scripts.
    #[default]
    Ascii,
    /// Any Unicode letter or digit, plus `_`, `.` and `-`.
    Unicode,
}

/// Settings of the normalisers.
#[derive(Debug, Clone, Default)]
pub struct NormaliseConfig {
    /// Region used for phone numbers written without a `+` country code.
    pub phone_default_region: Option<phonenumber::country::Id>,
    /// Characters allowed in usernames.
    pub username_charset: UsernameCharset,
}

/// A login as a client names it: a type and the raw identifier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// The login type, e.g. `email`.
    #[serde(rename = "type")]
    pub login_type: String,
    /// The identifier as typed.
    pub identifier: String,
}

/// A login whose identifier is in normalised form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Login {
    /// The login type.
    pub login_type: LoginType,
    /// The normalised identifier.
    pub identifier: String,
}

/// Longest raw identifier accepted before normalisation, in bytes.
const MAX_RAW_IDENTIFIER: usize = 512;

impl LoginInput {
    /// Normalises the identifier; errors name the field under `prefix` (e.g. `login`).
    pub fn normalise(&self, cfg: &NormaliseConfig, prefix: &str) -> Result<Login, Error> {
        let login_type = LoginType::parse(&self.login_type)
            .filter(|t| *t != LoginType::Passkey)
            .ok_or_else(|| Error::field(format!("{prefix}.type"), "unsupported_login_type"))?;
        let identifier = normalise(login_type, &self.identifier, cfg)
            .map_err(|code| Error::field(format!("{prefix}.identifier"), code))?;
        Ok(Login {
            login_type,
            identifier,
        })
    }
}

/// Normalises `raw` by the rule of `login_type`; the error is the field code.
pub fn normalise(
    login_type: LoginType,
    raw: &str,
    cfg: &NormaliseConfig,
) -> Result<String, &'static str> {
    if raw.len() > MAX_RAW_IDENTIFIER {
        return Err("too_long");
    }
    match login_type {
        LoginType::Email => email::normalise(raw),
        LoginType::Phone => phone::normalise(raw, cfg.phone_default_region),
        LoginType::Username => username::normalise(raw, cfg.username_charset),
        LoginType::Passkey => Err("not_typed"),
    }
}
