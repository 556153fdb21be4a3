//! The 16-byte header every image file starts with: magic, file kind, format version.

use serde::{Deserialize, Serialize};

/// `STASISIM` in ASCII.
pub const MAGIC: [u8; 8] = *b"STASISIM";
/// Bytes of a header.
pub const HEADER_LEN: usize = 16;
/// Page files start their data at this offset so pages stay page-aligned (mmap-able).
pub const PAGES_DATA_OFFSET: u64 = 4096;

/// What an image file holds. Ids are the format: never renumber, 0 is invalid.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    Inventory = 1,
    Process = 2,
    PageIndex = 3,
    Pages = 4,
    Files = 5,
    Blob = 6,
}

impl FileKind {
    pub fn from_u16(v: u16) -> Option<FileKind> {
        Some(match v {
            1 => FileKind::Inventory,
            2 => FileKind::Process,
            3 => FileKind::PageIndex,
            4 => FileKind::Pages,
            5 => FileKind::Files,
            6 => FileKind::Blob,
            _ => return None,
        })
    }
}

/// Readers accept the same major and a minor no newer than their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FormatVersion {
    pub major: u16,
    pub minor: u16,
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version this build writes and the newest it reads. 1.1 added LZ4-compressed page runs;
/// 1.2 pages a process shares copy-on-write with its parent (`VmaEntry::cow`), which a 1.1
/// reader would silently lose. 1.5 adds AIO rings (`VmaKind::Aio`) and per-thread seccomp
/// state, which a 1.4 reader would refuse or lose.
pub const CURRENT_VERSION: FormatVersion = FormatVersion { major: 1, minor: 5 };

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u16,
    pub version: FormatVersion,
}

impl Header {
    pub fn new(kind: FileKind) -> Header {
        Header {
            kind: kind as u16,
            version: CURRENT_VERSION,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.kind.to_le_bytes());
        b[10..12].copy_from_slice(&self.version.major.to_le_bytes());
        b[12..14].copy_from_slice(&self.version.minor.to_le_bytes());
        b
    }

    /// Decode without judging kind or version; `None` on a bad magic or short input.
    pub fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN || b[..8] != MAGIC {
            return None;
        }
        Some(Header {
            kind: u16::from_le_bytes([b[8], b[9]]),
            version: FormatVersion {
                major: u16::from_le_bytes([b[10], b[11]]),
                minor: u16::from_le_bytes([b[12], b[13]]),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let h = Header::new(FileKind::Process);
        let b = h.encode();
        assert_eq!(&b[..8], b"STASISIM");
        assert_eq!(Header::decode(&b), Some(h));
        assert_eq!(Header::decode(&b[..10]), None);
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Header::decode(&bad), None);
    }
}
