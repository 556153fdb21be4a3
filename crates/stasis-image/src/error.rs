//! Errors of reading and writing image files; each names the file and the offset at fault.

use crate::header::{FileKind, FormatVersion};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a stasis image file (bad magic); is this the right directory?")]
    BadMagic { path: PathBuf },
    #[error("{path} holds a {found:?} file where a {expected:?} file was expected")]
    WrongKind {
        path: PathBuf,
        expected: FileKind,
        found: u16,
    },
    #[error("{path} has format version {found}, this stasis reads {supported} at most; use a newer stasis")]
    NewerVersion {
        path: PathBuf,
        found: FormatVersion,
        supported: FormatVersion,
    },
    #[error("{path} is truncated at byte {offset} (expected {wanted} more bytes); the image is incomplete")]
    Truncated {
        path: PathBuf,
        offset: u64,
        wanted: u64,
    },
    #[error("{path}: checksum mismatch in the record at byte {offset}; the image is corrupt")]
    Checksum { path: PathBuf, offset: u64 },
    #[error("{path}: the record at byte {offset} claims {len} bytes, more than the {max} allowed; the image is corrupt")]
    TooLarge {
        path: PathBuf,
        offset: u64,
        len: u64,
        max: u64,
    },
    #[error("{path}: cannot decode the record at byte {offset}: {reason}")]
    Decode {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: trailing bytes after the last record at byte {offset}")]
    Trailing { path: PathBuf, offset: u64 },
    #[error("{path}: missing from the image")]
    Missing { path: PathBuf },
    #[error("{path}: no such image directory (check the path; `stasis dump --dir` makes one)")]
    NoImage { path: PathBuf },
    #[error("{path} is not a stasis image: it has no inventory (an image directory holds inventory, files, process-* and pages-* files)")]
    NotAnImage { path: PathBuf },
    #[error("{path} is the staging directory of a dump to {target} that did not finish ({state}): it is not an image and may be incomplete; remove it (the next dump to {target} removes it if its stasis is gone)")]
    Staging {
        path: PathBuf,
        target: PathBuf,
        state: String,
    },
    #[error("{path}: {what}; the image is corrupt or was forged")]
    Malformed { path: PathBuf, what: String },
    #[error("cannot encode a record for {path}: {reason}")]
    Encode { path: PathBuf, reason: String },
}
