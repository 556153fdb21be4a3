//! The single error type shared by every parser in this crate.
//!
//! Owns `ParseError` only. It must not wrap I/O errors: reading is the job of
//! [`crate::ProcSource`], whose callers get a plain `std::io::Error`, and keeping the two apart
//! lets callers tell "the file vanished" (the process exited) from "the kernel wrote something we
//! do not understand" (a bug or a new kernel format).

/// Why a piece of `/proc` text could not be parsed.
///
/// Every variant names the file kind (`"maps"`, `"status"`, ...) and carries the offending text so
/// that a failure seen on a user's machine can be reproduced from the error message alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line did not have the expected shape. `line` is 1-based.
    #[error("{file}: line {line}: {reason}: {text:?}")]
    BadLine {
        file: &'static str,
        line: usize,
        text: String,
        reason: &'static str,
    },
    /// A field that every supported kernel emits was absent.
    #[error("{file}: missing field {field}")]
    MissingField {
        file: &'static str,
        field: &'static str,
    },
    /// A field was present but its value was not a number in the expected base or range.
    #[error("{file}: field {field}: bad number {text:?}")]
    BadNumber {
        file: &'static str,
        field: String,
        text: String,
    },
    /// Binary input whose length is not a whole number of records.
    #[error("{file}: length {len} is not a multiple of the {record}-byte record size")]
    BadLength {
        file: &'static str,
        len: usize,
        record: usize,
    },
}
