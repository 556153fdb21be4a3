//! Number parsing helpers shared by the parsers.
//!
//! Owns the mapping from "text in some base" to integers and the corresponding
//! [`ParseError::BadNumber`]. It must not know anything about particular `/proc` files beyond the
//! `file`/`field` names it is handed for error reporting.

use crate::ParseError;

/// Build the error for `text` in `field` of `file`. Allocates, but only on the failure path.
pub(crate) fn bad(file: &'static str, field: &str, text: &str) -> ParseError {
    ParseError::BadNumber {
        file,
        field: field.to_owned(),
        text: text.to_owned(),
    }
}

/// `str::parse` and `from_str_radix` accept a leading '+', which the kernel never writes; refusing
/// it keeps "looks like a number" and "is what the kernel printed" the same thing.
fn plain(text: &str) -> bool {
    !text.is_empty() && !text.starts_with('+')
}

/// Parse a decimal integer of any primitive type (signed types accept a leading '-').
pub(crate) fn dec<T: std::str::FromStr>(
    file: &'static str,
    field: &str,
    text: &str,
) -> Result<T, ParseError> {
    if !plain(text) {
        return Err(bad(file, field, text));
    }
    text.parse().map_err(|_| bad(file, field, text))
}

/// Parse an unsigned hexadecimal number without a `0x` prefix, as `/proc` prints them.
pub(crate) fn hex_u64(file: &'static str, field: &str, text: &str) -> Result<u64, ParseError> {
    if !plain(text) {
        return Err(bad(file, field, text));
    }
    u64::from_str_radix(text, 16).map_err(|_| bad(file, field, text))
}

/// Parse an unsigned hexadecimal `u32` (device numbers in maps).
pub(crate) fn hex_u32(file: &'static str, field: &str, text: &str) -> Result<u32, ParseError> {
    if !plain(text) {
        return Err(bad(file, field, text));
    }
    u32::from_str_radix(text, 16).map_err(|_| bad(file, field, text))
}

/// Parse an unsigned octal `u32` (file flags and umask are printed in octal with a leading 0).
pub(crate) fn oct_u32(file: &'static str, field: &str, text: &str) -> Result<u32, ParseError> {
    if !plain(text) {
        return Err(bad(file, field, text));
    }
    u32::from_str_radix(text, 8).map_err(|_| bad(file, field, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(dec::<i32>("f", "x", "-1"), Ok(-1));
        assert_eq!(dec::<u64>("f", "x", "18446744073709551615"), Ok(u64::MAX));
        assert_eq!(hex_u64("f", "x", "7f56c4f24000"), Ok(0x7f56_c4f2_4000));
        assert_eq!(hex_u32("f", "x", "fe"), Ok(0xfe));
        assert_eq!(oct_u32("f", "x", "02100002"), Ok(0o2100002));
    }

    #[test]
    fn rejects_sign_empty_and_junk() {
        for t in ["", "+1", "1 ", "0x10", "x"] {
            assert!(dec::<u64>("f", "x", t).is_err(), "{t:?}");
            assert!(hex_u64("f", "x", t).is_err(), "{t:?}");
        }
        assert!(oct_u32("f", "x", "8").is_err());
        assert_eq!(
            dec::<u32>("status", "Threads", "-3"),
            Err(ParseError::BadNumber {
                file: "status",
                field: "Threads".into(),
                text: "-3".into()
            })
        );
    }
}
