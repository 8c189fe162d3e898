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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Another identity provider's connection (`google`, `oidc:acme`, …;
    /// identifier: the provider's stable subject); never typed either.
    Federated(&'static str),
}

/// Names of the preset identity providers.
pub const FEDERATED_PRESETS: [&str; 5] = ["google", "apple", "github", "discord", "wechat"];

/// Whether `name` can name a connection to another identity provider: a
/// preset, `oidc:<slug>` or `oauth:<slug>` (slug: 1–40 of `a-z`, `0-9`, `-`
/// and `_`, starting with a letter or digit).
pub fn is_federated_name(name: &str) -> bool {
    if FEDERATED_PRESETS.contains(&name) {
        return true;
    }
    let Some(slug) = name
        .strip_prefix("oidc:")
        .or_else(|| name.strip_prefix("oauth:"))
    else {
        return false;
    };
    (1..=40).contains(&slug.len())
        && slug.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'-' || b == b'_'))
        })
}

/// Connection names live as long as the process: each distinct name is kept
/// once, so that login types stay `Copy`. Names come from stored rows and
/// configured connections, never from request input.
fn intern(name: &str) -> &'static str {
    use std::collections::BTreeSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = names.get(name) {
        return found;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

impl LoginType {
    /// The name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Username => "username",
            Self::Passkey => "passkey",
            Self::Federated(name) => name,
        }
    }

    /// Parses a stored login type (or a configured connection's name).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            "username" => Some(Self::Username),
            "passkey" => Some(Self::Passkey),
            _ if is_federated_name(s) => Some(Self::Federated(intern(s))),
            _ => None,
        }
    }

    /// Whether people type identifiers of this type (and codes reach them).
    pub fn is_typed(self) -> bool {
        matches!(self, Self::Email | Self::Phone | Self::Username)
    }
}

impl Serialize for LoginType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LoginType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).ok_or_else(|| serde::de::Error::custom("unknown login type"))
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
        let login_type = typed(&self.login_type)
            .ok_or_else(|| Error::field(format!("{prefix}.type"), "unsupported_login_type"))?;
        let identifier = normalise(login_type, &self.identifier, cfg)
            .map_err(|code| Error::field(format!("{prefix}.identifier"), code))?;
        Ok(Login {
            login_type,
            identifier,
        })
    }
}

/// A login type people type, from request input (never interns a name).
fn typed(s: &str) -> Option<LoginType> {
    match s {
        "email" => Some(LoginType::Email),
        "phone" => Some(LoginType::Phone),
        "username" => Some(LoginType::Username),
        _ => None,
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
        LoginType::Passkey | LoginType::Federated(_) => Err("not_typed"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn federated_types_are_parsed_from_storage_only() {
        let t = LoginType::parse("oidc:acme").unwrap();
        assert_eq!(t, LoginType::Federated("oidc:acme"));
        assert_eq!(t.as_str(), "oidc:acme");
        // The same name is kept once.
        let again = LoginType::parse("oidc:acme").unwrap();
        assert!(std::ptr::eq(t.as_str(), again.as_str()));
        assert_eq!(
            LoginType::parse("github"),
            Some(LoginType::Federated("github"))
        );
        for bad in ["oidc:", "oidc:Acme", "saml:x", "oauth:-x", "facebook"] {
            assert_eq!(LoginType::parse(bad), None, "{bad}");
        }
        let input = LoginInput {
            login_type: "github".into(),
            identifier: "12345".into(),
        };
        let err = input
            .normalise(&NormaliseConfig::default(), "login")
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("unsupported_login_type"),
            "{err:?}"
        );
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"oidc:acme\"");
        assert_eq!(serde_json::from_str::<LoginType>(&json).unwrap(), t);
    }
}
