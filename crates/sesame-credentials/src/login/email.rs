//! E-mail: trimmed, lower-cased, domain in its IDNA (ASCII) form.

use email_address::EmailAddress;

/// Longest address, per RFC 5321's path limit.
const MAX_LEN: usize = 254;

pub(super) fn normalise(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    let (local, domain) = trimmed.rsplit_once('@').ok_or("invalid_email")?;
    if local.is_empty() || domain.is_empty() {
        return Err("invalid_email");
    }
    // Quoted local parts and domain literals are valid addresses that mail
    // transports refuse or mangle: a code could never reach them.
    if local.contains(['"', '\\', ' ']) || domain.starts_with('[') {
        return Err("invalid_email");
    }
    let domain = idna::domain_to_ascii(domain).map_err(|_| "invalid_email")?;
    // Every address needs a dot in its domain on the public internet.
    if !domain.contains('.') || domain.ends_with('.') {
        return Err("invalid_email");
    }
    let address = format!("{}@{}", local.to_lowercase(), domain);
    if address.len() > MAX_LEN || !EmailAddress::is_valid(&address) {
        return Err("invalid_email");
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::normalise;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn normalisation_is_idempotent(local in "[A-Za-z0-9._%+-]{1,20}", domain in "[A-Za-zäöü0-9-]{1,20}\\.[a-z]{2,6}", pad in " {0,3}") {
            let raw = format!("{pad}{local}@{domain}{pad}");
            if let Ok(once) = normalise(&raw) {
                prop_assert_eq!(normalise(&once), Ok(once.clone()));
                prop_assert_eq!(once.clone(), once.to_lowercase());
            }
        }

        #[test]
        fn never_panics(raw in "\\PC{0,80}") {
            let _ = normalise(&raw);
        }
    }

    #[test]
    fn undeliverable_forms_are_refused() {
        for raw in [
            "\"ada lovelace\"@example.com",
            "\"ada\"@example.com",
            "ada@[192.0.2.1]",
            "ada@[IPv6:2001:db8::1]",
            "a\\b@example.com",
        ] {
            assert_eq!(normalise(raw), Err("invalid_email"), "{raw}");
        }
    }

    #[test]
    fn lower_cases_and_trims() {
        assert_eq!(
            normalise("  Ada.Lovelace@Example.COM \n").unwrap(),
            "ada.lovelace@example.com"
        );
    }

    #[test]
    fn unicode_domain_becomes_punycode() {
        assert_eq!(
            normalise("info@Bücher.de").unwrap(),
            "info@xn--bcher-kva.de"
        );
        assert_eq!(
            normalise("user@例え.テスト").unwrap(),
            "user@xn--r8jz45g.xn--zckzah"
        );
        // The ASCII form of the same domain normalises to the same address.
        assert_eq!(
            normalise("INFO@xn--BCHER-kva.de").unwrap(),
            "info@xn--bcher-kva.de"
        );
    }

    #[test]
    fn unicode_local_part_is_lower_cased() {
        assert_eq!(normalise("JOSÉ@example.com").unwrap(), "josé@example.com");
    }

    #[test]
    fn plus_addressing_is_kept() {
        assert_eq!(normalise("a+tag@example.com").unwrap(), "a+tag@example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "user@exa mple.com",
            "two@@example.com",
            "user@example.com.",
            "us er@example.com",
        ] {
            assert_eq!(normalise(bad), Err("invalid_email"), "{bad:?}");
        }
    }

    #[test]
    fn rejects_overlong() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(normalise(&long), Err("invalid_email"));
    }
}
