//! The stasis image format, and nothing else: file headers, record framing, versioning,
//! checksums, the page index and the on-disk entry types. It never depends on the engine, so
//! `stasis show`, fuzzers and storage code can decode an image anywhere.
//!
//! An image is a directory (see docs/image-format.md):
//! - `inventory`: one [`InventoryEntry`];
//! - `process-PID`: one [`ProcessEntry`] per process;
//! - `files`: the [`FilesEntry`] table every process's fds point into;
//! - `pagemap-PID` + `pages-PID`: the [`PageIndexEntry`] and the raw pages it indexes;
//! - `blob-N`: raw contents of files that cannot be reopened by path (deleted files, memfds).
//!
//! Every file starts with a 16-byte [`Header`]; record files then hold frames
//! `len:u32le | CBOR payload | crc32c:u32le`.

pub mod codec;
pub mod entries;
mod error;
mod frame;
mod header;
pub mod image;

pub use entries::*;
pub use error::ImageError;
pub use frame::{decode_frame, encode_frame, MAX_RECORD};
pub use header::{
    FileKind, FormatVersion, Header, CURRENT_VERSION, HEADER_LEN, MAGIC, PAGES_DATA_OFFSET,
};
pub use image::{
    check_page_index, decode_record, read_blob, read_pages_header, read_record_file, write_blob,
    write_record_file, Image, PagesWriter, Verified,
};

/// The page size every image of this format uses.
pub const PAGE_SIZE: u64 = 4096;

/// crc32c of a byte slice (hardware-accelerated where the CPU has it).
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
