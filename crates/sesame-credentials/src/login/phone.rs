//! Phone numbers: parsed by libphonenumber's rules into E.164.

use phonenumber::{Mode, country::Id};

/// Parses a region code such as `DE` or `cn`.
pub fn parse_region(code: &str) -> Option<Id> {
    code.trim().to_ascii_uppercase().parse().ok()
}

pub(super) fn normalise(raw: &str, region: Option<Id>) -> Result<String, &'static str> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("invalid_phone");
    }
    let number = phonenumber::parse(region, trimmed).map_err(|_| "invalid_phone")?;
    if !phonenumber::is_valid(&number) {
        return Err("invalid_phone");
    }
    Ok(number.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn e164_output_normalises_to_itself(raw in "[+0-9 ()-]{0,24}") {
            if let Ok(once) = normalise(&raw, region("DE")) {
                prop_assert!(once.starts_with('+'));
                prop_assert_eq!(normalise(&once, None), Ok(once.clone()));
            }
        }

        #[test]
        fn never_panics(raw in "\\PC{0,40}") {
            let _ = normalise(&raw, region("US"));
        }
    }

    fn region(code: &str) -> Option<Id> {
        parse_region(code)
    }

    #[test]
    fn international_input_needs_no_region() {
        assert_eq!(normalise("+49 30 901820", None).unwrap(), "+4930901820");
        assert_eq!(
            normalise(" +1 (650) 253-0000 ", None).unwrap(),
            "+16502530000"
        );
    }

    #[test]
    fn national_formats_use_the_default_region() {
        assert_eq!(
            normalise("030 901820", region("DE")).unwrap(),
            "+4930901820"
        );
        assert_eq!(
            normalise("(650) 253-0000", region("us")).unwrap(),
            "+16502530000"
        );
        assert_eq!(
            normalise("138 0013 8000", region("CN")).unwrap(),
            "+8613800138000"
        );
        assert_eq!(
            normalise("07911 123456", region("GB")).unwrap(),
            "+447911123456"
        );
    }

    #[test]
    fn same_number_written_differently_is_one_identifier() {
        let a = normalise("+86 138-0013-8000", None).unwrap();
        let b = normalise("13800138000", region("CN")).unwrap();
        let c = normalise("0086 13800138000", region("CN")).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
    }

    #[test]
    fn national_format_without_region_is_refused() {
        assert_eq!(normalise("030 901820", None), Err("invalid_phone"));
    }

    #[test]
    fn invalid_numbers_are_refused() {
        for bad in ["", "  ", "hello", "+1 555", "+999 123456789", "12"] {
            assert_eq!(
                normalise(bad, region("US")),
                Err("invalid_phone"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn region_codes() {
        assert_eq!(parse_region("de"), Some(Id::DE));
        assert_eq!(parse_region("XX"), None);
    }
}
