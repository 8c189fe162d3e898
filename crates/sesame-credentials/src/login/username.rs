//! Usernames: NFKC, then full case folding, then 3–32 characters of the charset.

use super::UsernameCharset;
use icu_casemap::CaseMapper;
use icu_normalizer::ComposingNormalizerBorrowed;

const MIN_LEN: usize = 3;
const MAX_LEN: usize = 32;

pub(super) fn normalise(raw: &str, charset: UsernameCharset) -> Result<String, &'static str> {
    let nfkc = ComposingNormalizerBorrowed::new_nfkc().normalize(raw.trim());
    let folded = CaseMapper::new().fold_string(&nfkc);
    // Folding can denormalise (e.g. expanding ligatures); normalise once more.
    let name = ComposingNormalizerBorrowed::new_nfkc()
        .normalize(&folded)
        .into_owned();
    let len = name.chars().count();
    if len < MIN_LEN {
        return Err("too_short");
    }
    if len > MAX_LEN {
        return Err("too_long");
    }
    let allowed = |c: char| match charset {
        UsernameCharset::Ascii => c.is_ascii_lowercase() || c.is_ascii_digit(),
        UsernameCharset::Unicode => c.is_alphanumeric(),
    } || matches!(c, '_' | '.' | '-');
    if !name.chars().all(allowed) {
        return Err("invalid_username");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ascii(raw: &str) -> Result<String, &'static str> {
        normalise(raw, UsernameCharset::Ascii)
    }

    #[test]
    fn case_folds_and_trims() {
        assert_eq!(ascii("  Ada_Lovelace ").unwrap(), "ada_lovelace");
    }

    #[test]
    fn full_width_homoglyphs_collapse_to_ascii() {
        assert_eq!(ascii("ＡＤＭＩＮ").unwrap(), "admin");
        assert_eq!(ascii("ａｄｍｉｎ１").unwrap(), "admin1");
    }

    #[test]
    fn ligatures_and_sharp_s_fold() {
        assert_eq!(ascii("ﬁle").unwrap(), "file");
        assert_eq!(ascii("STRAẞE").unwrap(), "strasse");
        assert_eq!(ascii("Straße").unwrap(), "strasse");
    }

    #[test]
    fn cyrillic_look_alikes_are_refused_in_ascii_mode() {
        // "аdmin" with a Cyrillic а (U+0430) must not pass as "admin".
        assert_eq!(ascii("\u{0430}dmin"), Err("invalid_username"));
    }

    #[test]
    fn unicode_mode_accepts_letters_of_any_script() {
        assert_eq!(
            normalise("Ωμέγα", UsernameCharset::Unicode).unwrap(),
            "ωμέγα"
        );
        assert_eq!(
            normalise("用户名", UsernameCharset::Unicode).unwrap(),
            "用户名"
        );
        assert_eq!(
            normalise("a b c", UsernameCharset::Unicode),
            Err("invalid_username")
        );
    }

    #[test]
    fn digits_only_is_a_valid_username() {
        assert_eq!(ascii("13800138000").unwrap(), "13800138000");
    }

    #[test]
    fn length_bounds_count_characters_after_normalisation() {
        assert_eq!(ascii("ab"), Err("too_short"));
        assert_eq!(ascii("abc").unwrap(), "abc");
        assert_eq!(ascii(&"a".repeat(32)).unwrap().len(), 32);
        assert_eq!(ascii(&"a".repeat(33)), Err("too_long"));
        // One ligature expands to two characters; a two-letter input becomes long enough.
        assert_eq!(ascii("ﬃ").unwrap(), "ffi");
    }

    #[test]
    fn refuses_separators_and_symbols() {
        for bad in [
            "ada lovelace",
            "ada@home",
            "ada/../x",
            "ada\u{200b}x",
            "a\u{0000}bc",
        ] {
            assert_eq!(ascii(bad), Err("invalid_username"), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(raw in "\\PC{0,40}") {
            if let Ok(once) = ascii(&raw) {
                prop_assert_eq!(ascii(&once), Ok(once.clone()));
            }
            if let Ok(once) = normalise(&raw, UsernameCharset::Unicode) {
                prop_assert_eq!(normalise(&once, UsernameCharset::Unicode), Ok(once.clone()));
            }
        }
    }
}
