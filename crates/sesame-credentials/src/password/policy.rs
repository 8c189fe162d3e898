//! NIST SP 800-63B style policy: length bounds and a list of common passwords, no
//! composition rules.

use sesame_core::{Error, ErrorCode, FieldError};
use std::collections::HashSet;
use std::sync::OnceLock;

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 8;
/// Longest accepted password, in characters.
pub const MAX_LEN: usize = 128;

static COMMON_LIST: &str = include_str!("../../data/common-passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_LIST
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// Checks a new password; `identifiers` are the principal's normalised login
/// identifiers, which the password may not equal or contain. `field` names the
/// password in error reports.
pub fn check_new_password(password: &str, identifiers: &[&str], field: &str) -> Result<(), Error> {
    let len = password.chars().count();
    let weak = |reason: &str| Error::Invalid {
        code: ErrorCode::WeakPassword,
        errors: vec![FieldError::new(field, reason)],
    };
    if len > MAX_LEN {
        return Err(Error::field(field, "too_long"));
    }
    if len < MIN_LEN {
        return Err(weak("too_short"));
    }
    let lower = password.to_lowercase();
    if common().contains(lower.as_str()) {
        return Err(weak("too_common"));
    }
    for id in identifiers {
        let local = id.split_once('@').map_or(*id, |(local, _)| local);
        let local = local.trim_start_matches('+');
        if lower.contains(&id.to_lowercase())
            || (local.chars().count() >= 4 && lower.contains(local))
        {
            return Err(weak("contains_identifier"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<(), Error>) -> Option<(ErrorCode, String)> {
        match result {
            Ok(()) => None,
            Err(Error::Invalid { code, errors }) => Some((code, errors[0].code.clone())),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn list_is_large() {
        assert!(common().len() >= 10_000, "{}", common().len());
    }

    #[test]
    fn length_bounds() {
        assert_eq!(
            reason(check_new_password("seven77", &[], "password"))
                .unwrap()
                .1,
            "too_short"
        );
        assert!(check_new_password("eight8xq", &[], "password").is_ok());
        assert!(check_new_password(&"x7".repeat(64), &[], "password").is_ok());
        assert_eq!(
            reason(check_new_password(&"x".repeat(129), &[], "password")),
            Some((ErrorCode::ValidationFailed, "too_long".into()))
        );
        // Characters, not bytes: eight multi-byte characters are enough.
        assert!(check_new_password("ĉĝĥĵŝŭĉĝ", &[], "password").is_ok());
    }

    #[test]
    fn common_passwords_are_weak_in_any_case() {
        for pw in ["password", "PASSWORD1", "12345678", "iloveyou", "Sunshine"] {
            let r = reason(check_new_password(pw, &[], "password"));
            assert!(
                matches!(r, Some((ErrorCode::WeakPassword, ref why)) if why == "too_common" || why == "too_short"),
                "{pw}"
            );
        }
    }

    #[test]
    fn password_may_not_contain_the_identifier() {
        let ids = ["ada.lovelace@example.com", "+4930901820"];
        for pw in [
            "ada.lovelace@example.com",
            "my-ada.lovelace-pw",
            "x+4930901820x",
        ] {
            assert_eq!(
                reason(check_new_password(pw, &ids, "password")).unwrap().1,
                "contains_identifier",
                "{pw}"
            );
        }
        assert!(check_new_password("correct horse battery", &ids, "password").is_ok());
    }
}
