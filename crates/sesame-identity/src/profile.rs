//! The profile: display name, avatar, bio, locale, status and free metadata.

use serde::{Deserialize, Serialize};
use sesame_core::{Error, FieldError, PrincipalId};
use time::OffsetDateTime;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;
/// Longest bio, in characters.
pub const MAX_BIO: usize = 1000;
/// Longest avatar URL, in bytes.
pub const MAX_AVATAR_URL: usize = 2048;

/// A person as the rest of the platform sees them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// Same id as the principal.
    pub id: PrincipalId,
    /// Name shown to others.
    pub display_name: Option<String>,
    /// Absolute http(s) URL of the avatar.
    pub avatar_url: Option<String>,
    /// Short self-description.
    pub bio: Option<String>,
    /// BCP 47 language tag.
    pub locale: Option<String>,
    /// `active` or `suspended`.
    pub status: String,
    /// Free-form data owned by the deployment.
    pub metadata: serde_json::Value,
    /// When the profile was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the profile last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Profile fields accepted at sign-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    /// Name shown to others.
    pub display_name: Option<String>,
    /// Absolute http(s) URL of the avatar.
    pub avatar_url: Option<String>,
}

/// A partial update of a profile; absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// New display name.
    #[serde(default, with = "double_option")]
    pub display_name: Option<Option<String>>,
    /// New avatar URL.
    #[serde(default, with = "double_option")]
    pub avatar_url: Option<Option<String>>,
    /// New bio.
    #[serde(default, with = "double_option")]
    pub bio: Option<Option<String>>,
    /// New locale.
    #[serde(default, with = "double_option")]
    pub locale: Option<Option<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

impl Profile {
    /// A fresh active profile for a new principal.
    pub fn new(id: PrincipalId, fields: NewProfile, now: OffsetDateTime) -> Result<Self, Error> {
        let patch = ProfilePatch {
            display_name: fields.display_name.map(Some),
            avatar_url: fields.avatar_url.map(Some),
            bio: None,
            locale: None,
        };
        let patch = patch.validated("profile")?;
        Ok(Self {
            id,
            display_name: patch.display_name.flatten(),
            avatar_url: patch.avatar_url.flatten(),
            bio: None,
            locale: None,
            status: "active".to_owned(),
            metadata: serde_json::Value::Object(Default::default()),
            created_at: now,
            updated_at: now,
        })
    }
}

/// Bidirectional controls and zero-width characters: invisible in a name,
/// they make one person's name look like another's.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

impl ProfilePatch {
    /// Trims text fields, turns empty strings into `null` and checks every field;
    /// `prefix` names the object in field paths (e.g. `profile`).
    pub fn validated(self, prefix: &str) -> Result<Self, Error> {
        let mut errors = Vec::new();
        let path = |f: &str| {
            if prefix.is_empty() {
                f.to_owned()
            } else {
                format!("{prefix}.{f}")
            }
        };
        let clean = |v: Option<Option<String>>| {
            v.map(|inner| inner.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
        };
        let out = Self {
            display_name: clean(self.display_name),
            avatar_url: clean(self.avatar_url),
            bio: clean(self.bio),
            locale: clean(self.locale),
        };
        if let Some(Some(name)) = &out.display_name {
            if name.chars().count() > MAX_DISPLAY_NAME {
                errors.push(FieldError::new(path("display_name"), "too_long"));
            } else if name.chars().any(|c| c.is_control() || is_invisible(c)) {
                errors.push(FieldError::new(path("display_name"), "invalid_characters"));
            }
        }
        if let Some(Some(url)) = &out.avatar_url
            && !is_http_url(url)
        {
            errors.push(FieldError::new(path("avatar_url"), "invalid_url"));
        }
        if let Some(Some(bio)) = &out.bio
            && bio.chars().count() > MAX_BIO
        {
            errors.push(FieldError::new(path("bio"), "too_long"));
        }
        if let Some(Some(locale)) = &out.locale
            && !is_language_tag(locale)
        {
            errors.push(FieldError::new(path("locale"), "invalid_locale"));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(Error::validation(errors))
        }
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            url.len() <= MAX_AVATAR_URL
                && !host.is_empty()
                && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// A loose BCP 47 check: alphanumeric subtags of 1–8 characters joined by `-`,
/// the first one alphabetic of 2–8.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    first_ok
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(err: Error) -> Vec<(String, String)> {
        match err {
            Error::Invalid { errors: list, .. } => {
                list.into_iter().map(|e| (e.field, e.code)).collect()
            }
            other => vec![("?".into(), other.to_string())],
        }
    }

    #[test]
    fn display_names_refuse_bidi_controls_and_zero_width_characters() {
        for name in [
            "Ada\u{202E}ecalevol",
            "A\u{200B}da",
            "\u{2066}Ada",
            "Ad\u{FEFF}a",
        ] {
            let patch = ProfilePatch {
                display_name: Some(Some(name.into())),
                ..Default::default()
            };
            assert_eq!(
                codes(patch.validated("").unwrap_err()),
                vec![("display_name".into(), "invalid_characters".into())],
                "{name:?}"
            );
        }
        let fine = ProfilePatch {
            display_name: Some(Some("Zoë Ōkubo-ﺃحمد".into())),
            ..Default::default()
        };
        assert!(fine.validated("").is_ok());
    }

    #[test]
    fn patch_trims_and_clears_empty_values() {
        let patch = ProfilePatch {
            display_name: Some(Some("  Ada  ".into())),
            bio: Some(Some("   ".into())),
            ..Default::default()
        };
        let out = patch.validated("").unwrap();
        assert_eq!(out.display_name, Some(Some("Ada".into())));
        assert_eq!(out.bio, Some(None));
        assert_eq!(out.locale, None);
    }

    #[test]
    fn patch_reports_every_bad_field() {
        let patch = ProfilePatch {
            display_name: Some(Some("x".repeat(101))),
            avatar_url: Some(Some("javascript:alert(1)".into())),
            bio: Some(Some("b".repeat(1001))),
            locale: Some(Some("english please".into())),
        };
        let got = codes(patch.validated("").unwrap_err());
        assert_eq!(
            got,
            vec![
                ("display_name".into(), "too_long".into()),
                ("avatar_url".into(), "invalid_url".into()),
                ("bio".into(), "too_long".into()),
                ("locale".into(), "invalid_locale".into()),
            ]
        );
    }

    #[test]
    fn language_tags() {
        for ok in ["en", "en-GB", "zh-Hans-CN", "de-CH-1996"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["e", "en_GB", "", "en-", "123"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn avatar_urls() {
        assert!(is_http_url("https://cdn.example.com/a.png"));
        assert!(!is_http_url("https:///a.png"));
        assert!(!is_http_url("ftp://example.com/a.png"));
        assert!(!is_http_url("https://exa mple.com"));
    }
}
