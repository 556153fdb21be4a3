//! Reading and writing the files of an image directory. Writers create files, readers verify
//! header, version, framing and checksums before handing out a value.

use crate::entries::{BlobRef, FilesEntry, InventoryEntry, PageIndexEntry, ProcessEntry};
use crate::frame::{decode_frame, encode_frame, FrameError, MAX_RECORD};
use crate::header::{FileKind, Header, CURRENT_VERSION, HEADER_LEN, PAGES_DATA_OFFSET};
use crate::ImageError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Image files hold process memory and secrets: readable by their owner only, whatever the
/// umask.
const IMAGE_FILE_MODE: u32 = 0o600;

/// Check a header against the kind wanted and the versions this build reads.
fn check_header(path: &Path, bytes: &[u8], kind: FileKind) -> Result<(), ImageError> {
    if bytes.len() < HEADER_LEN {
        if bytes.len() < 8 || bytes[..8] == crate::MAGIC[..] {
            return Err(ImageError::Truncated {
                path: path.to_path_buf(),
                offset: bytes.len() as u64,
                wanted: (HEADER_LEN - bytes.len()) as u64,
            });
        }
        return Err(ImageError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    let h = Header::decode(bytes).ok_or_else(|| ImageError::BadMagic {
        path: path.to_path_buf(),
    })?;
    if bytes[14..HEADER_LEN] != [0, 0] {
        return Err(ImageError::Malformed {
            path: path.to_path_buf(),
            what: "the header's reserved bytes (14-15) are not zero".into(),
        });
    }
    if h.kind != kind as u16 {
        return Err(ImageError::WrongKind {
            path: path.to_path_buf(),
            expected: kind,
            found: h.kind,
        });
    }
    if h.version.major != CURRENT_VERSION.major || h.version.minor > CURRENT_VERSION.minor {
        return Err(ImageError::NewerVersion {
            path: path.to_path_buf(),
            found: h.version,
            supported: CURRENT_VERSION,
        });
    }
    Ok(())
}

/// Write one record as the file `dir/name` (created, never overwritten). Not fsynced: the
/// store makes the whole image durable at once when it puts it.
pub fn write_record_file<T: Serialize>(
    dir: &Path,
    name: &str,
    kind: FileKind,
    rec: &T,
) -> Result<u64, ImageError> {
    let path = dir.join(name);
    let mut payload = Vec::new();
    ciborium::into_writer(rec, &mut payload).map_err(|e| ImageError::Encode {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if payload.len() as u64 > MAX_RECORD {
        return Err(ImageError::Encode {
            path,
            reason: format!(
                "record of {} bytes exceeds the {MAX_RECORD}-byte limit",
                payload.len()
            ),
        });
    }
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len() + 8);
    buf.extend_from_slice(&Header::new(kind).encode());
    encode_frame(&payload, &mut buf);
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(IMAGE_FILE_MODE)
        .open(&path)
        .map_err(io("create", &path))?;
    f.write_all(&buf).map_err(io("write", &path))?;
    Ok(buf.len() as u64)
}

/// Read and verify the single-record file at `path`.
pub fn read_record_file<T: DeserializeOwned>(path: &Path, kind: FileKind) -> Result<T, ImageError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes).map_err(io("read", path))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io("open", path)(e)),
    };
    decode_record(path, &bytes, kind)
}

/// Decode and verify a whole single-record file held in memory; `path` only names it in
/// errors. Never panics, whatever the bytes (fuzzed in fuzz/).
pub fn decode_record<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    kind: FileKind,
) -> Result<T, ImageError> {
    check_header(path, bytes, kind)?;
    let (payload, used) = decode_frame(&bytes[HEADER_LEN..]).map_err(|e| match e {
        FrameError::Truncated { wanted } => ImageError::Truncated {
            path: path.to_path_buf(),
            offset: bytes.len() as u64,
            wanted,
        },
        FrameError::TooLarge { len } => ImageError::TooLarge {
            path: path.to_path_buf(),
            offset: HEADER_LEN as u64,
            len,
            max: MAX_RECORD,
        },
        FrameError::Checksum => ImageError::Checksum {
            path: path.to_path_buf(),
            offset: HEADER_LEN as u64,
        },
    })?;
    if HEADER_LEN + used != bytes.len() {
        return Err(ImageError::Trailing {
            path: path.to_path_buf(),
            offset: (HEADER_LEN + used) as u64,
        });
    }
    ciborium::from_reader(payload).map_err(|e| ImageError::Decode {
        path: path.to_path_buf(),
        offset: HEADER_LEN as u64,
        reason: e.to_string(),
    })
}

/// Streams raw pages into `pages-PID`: a header padded to [`PAGES_DATA_OFFSET`], then pages.
pub struct PagesWriter {
    file: File,
    path: PathBuf,
    offset: u64,
}

impl PagesWriter {
    pub fn create(dir: &Path, name: &str) -> Result<PagesWriter, ImageError> {
        let path = dir.join(name);
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(IMAGE_FILE_MODE)
            .open(&path)
            .map_err(io("create", &path))?;
        let mut head = vec![0u8; PAGES_DATA_OFFSET as usize];
        head[..HEADER_LEN].copy_from_slice(&Header::new(FileKind::Pages).encode());
        file.write_all(&head).map_err(io("write", &path))?;
        Ok(PagesWriter {
            file,
            path,
            offset: PAGES_DATA_OFFSET,
        })
    }

    /// Append bytes; returns the offset they start at.
    pub fn append(&mut self, data: &[u8]) -> Result<u64, ImageError> {
        let at = self.offset;
        self.file.write_all(data).map_err(io("write", &self.path))?;
        self.offset += data.len() as u64;
        Ok(at)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open page file (for hints such as starting writeback early).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes written so far, header included.
    pub fn len(&self) -> u64 {
        self.offset
    }

    pub fn is_empty(&self) -> bool {
        self.offset == PAGES_DATA_OFFSET
    }

    /// Done writing: hands back the file (durability is the store's job when it puts the
    /// whole image; a caller may start it early).
    pub fn finish(self) -> File {
        self.file
    }
}

/// Open a page file and verify its header; returns the file and its length.
pub fn read_pages_header(path: &Path) -> Result<(File, u64), ImageError> {
    let mut f = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ImageError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            io("open", path)(e)
        }
    })?;
    let mut head = vec![0u8; PAGES_DATA_OFFSET as usize];
    let n = read_full(&mut f, &mut head).map_err(io("read", path))?;
    check_header(path, &head[..n.min(HEADER_LEN)], FileKind::Pages)?;
    if n < head.len() {
        return Err(ImageError::Truncated {
            path: path.to_path_buf(),
            offset: n as u64,
            wanted: (head.len() - n) as u64,
        });
    }
    if let Some(at) = head[HEADER_LEN..].iter().position(|&b| b != 0) {
        return Err(ImageError::Malformed {
            path: path.to_path_buf(),
            what: format!(
                "the padding before the first page is not zero (byte {})",
                HEADER_LEN + at
            ),
        });
    }
    let len = f.metadata().map_err(io("stat", path))?.len();
    Ok((f, len))
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Write raw bytes as `dir/name` (header + data) and describe them.
pub fn write_blob(dir: &Path, name: &str, data: &[u8]) -> Result<BlobRef, ImageError> {
    let path = dir.join(name);
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(IMAGE_FILE_MODE)
        .open(&path)
        .map_err(io("create", &path))?;
    f.write_all(&Header::new(FileKind::Blob).encode())
        .map_err(io("write", &path))?;
    f.write_all(data).map_err(io("write", &path))?;
    Ok(BlobRef {
        file: name.to_string(),
        len: data.len() as u64,
        crc32c: crate::checksum(data),
    })
}

/// Read and verify a blob of the image in `dir`.
pub fn read_blob(dir: &Path, blob: &BlobRef) -> Result<Vec<u8>, ImageError> {
    if !blob.well_named() {
        return Err(ImageError::Malformed {
            path: dir.to_path_buf(),
            what: format!("a blob is named {:?}, not blob-N", blob.file),
        });
    }
    let path = dir.join(&blob.file);
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io("read", &path))?;
    check_header(&path, &bytes, FileKind::Blob)?;
    let data = bytes.split_off(HEADER_LEN);
    if (data.len() as u64) < blob.len {
        return Err(ImageError::Truncated {
            path,
            offset: (HEADER_LEN + data.len()) as u64,
            wanted: blob.len - data.len() as u64,
        });
    }
    if data.len() as u64 != blob.len || crate::checksum(&data) != blob.crc32c {
        return Err(ImageError::Checksum {
            path,
            offset: HEADER_LEN as u64,
        });
    }
    Ok(data)
}

/// The structural rules of a page index (docs/image-format.md): its own pid and page file,
/// runs of 1 to 256 pages at page-aligned addresses, sorted and never overlapping, stored
/// after the page file's header. Checksums are checked when the pages
/// are read.
pub fn check_page_index(path: &Path, pid: i32, pm: &PageIndexEntry) -> Result<(), ImageError> {
    let bad = |what: String| ImageError::Malformed {
        path: path.to_path_buf(),
        what,
    };
    if pm.pid != pid || pm.pages_file != Image::pages_file(pid) {
        return Err(bad(format!(
            "the page index of pid {pid} is for pid {} in {:?}",
            pm.pid, pm.pages_file
        )));
    }
    let page = crate::PAGE_SIZE;
    let mut prev_end = 0u64;
    for (i, r) in pm.runs.iter().enumerate() {
        let end = (r.pages as u64)
            .checked_mul(page)
            .and_then(|n| r.vaddr.checked_add(n));
        let what = if r.pages == 0 || r.pages as u64 > (1 << 20) / page {
            format!("has {} pages (1 to {} allowed)", r.pages, (1 << 20) / page)
        } else if r.vaddr % page != 0 {
            "starts at an address that is not page-aligned".to_string()
        } else if end.is_none() {
            "ends beyond the address space".to_string()
        } else if r.vaddr < prev_end {
            format!("overlaps or precedes the run before it (which ends at {prev_end:#x})")
        } else if r.offset < PAGES_DATA_OFFSET {
            format!(
                "is stored at byte {}, inside the page file's header",
                r.offset
            )
        } else if r.offset.checked_add(r.stored_len()).is_none() {
            "is stored beyond any file size".to_string()
        } else {
            prev_end = end.unwrap_or(u64::MAX);
            continue;
        };
        return Err(bad(format!("page run {i} (at {:#x}) {what}", r.vaddr)));
    }
    Ok(())
}

/// What [`Image::verify`] read and found whole.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verified {
    pub runs: u64,
    pub page_bytes: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
}

/// A whole image's metadata, loaded and verified (pages are verified when they are used).
#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub inventory: InventoryEntry,
    pub processes: Vec<ProcessEntry>,
    pub files: FilesEntry,
    pub pagemaps: Vec<PageIndexEntry>,
}

impl Image {
    pub const INVENTORY: &'static str = "inventory";
    pub const FILES: &'static str = "files";

    pub fn process_file(pid: i32) -> String {
        format!("process-{pid}")
    }
    pub fn pagemap_file(pid: i32) -> String {
        format!("pagemap-{pid}")
    }
    pub fn pages_file(pid: i32) -> String {
        format!("pages-{pid}")
    }

    /// If `dir` is a dump's staging directory (`NAME.tmp-PID-N`, see stasis-store): the
    /// image it would have become and the pid of the stasis that writes it.
    pub fn staging_of(dir: &Path) -> Option<(PathBuf, u32)> {
        let name = dir.file_name()?.to_str()?;
        let (target, rest) = name.rsplit_once(".tmp-")?;
        let (pid, n) = rest.split_once('-')?;
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if target.is_empty() || !numeric(pid) || !numeric(n) {
            return None;
        }
        Some((dir.with_file_name(target), pid.parse().ok()?))
    }

    /// Load every record of the image in `dir`, verifying each. A staging directory is
    /// refused by name, even if it looks whole: only a rename makes an image.
    pub fn open(dir: &Path) -> Result<Image, ImageError> {
        let is_dir = dir.is_dir();
        if let Some((target, pid)) = Self::staging_of(dir).filter(|_| is_dir) {
            let state = if Path::new(&format!("/proc/{pid}")).exists() {
                format!("stasis pid {pid} may still be writing it")
            } else {
                format!("its stasis, pid {pid}, is gone")
            };
            return Err(ImageError::Staging {
                path: dir.to_path_buf(),
                target,
                state,
            });
        }
        if !is_dir {
            return Err(ImageError::NoImage {
                path: dir.to_path_buf(),
            });
        }
        if !dir.join(Self::INVENTORY).exists() {
            return Err(ImageError::NotAnImage {
                path: dir.to_path_buf(),
            });
        }
        let inventory: InventoryEntry =
            read_record_file(&dir.join(Self::INVENTORY), FileKind::Inventory)?;
        let files: FilesEntry = read_record_file(&dir.join(Self::FILES), FileKind::Files)?;
        for f in &files.files {
            if let Some(b) = f.kind.blobs().into_iter().find(|b| !b.well_named()) {
                return Err(ImageError::Malformed {
                    path: dir.join(Self::FILES),
                    what: format!("file {} names its blob {:?}, not blob-N", f.id, b.file),
                });
            }
        }
        let mut processes = Vec::new();
        let mut pagemaps = Vec::new();
        for (i, &pid) in inventory.pids.iter().enumerate() {
            let path = dir.join(Self::process_file(pid));
            let p: ProcessEntry = read_record_file(&path, FileKind::Process)?;
            if p.pid != pid || inventory.pids[..i].contains(&pid) {
                return Err(ImageError::Malformed {
                    path,
                    what: format!(
                        "the inventory lists pid {pid} (twice, or this file holds pid {})",
                        p.pid
                    ),
                });
            }
            processes.push(p);
            let path = dir.join(Self::pagemap_file(pid));
            let pm: PageIndexEntry = read_record_file(&path, FileKind::PageIndex)?;
            check_page_index(&path, pid, &pm)?;
            pagemaps.push(pm);
        }
        Ok(Image {
            dir: dir.to_path_buf(),
            inventory,
            processes,
            files,
            pagemaps,
        })
    }

    /// Read every page run and every blob and check each checksum (`stasis show --verify`);
    /// the records were checked when the image was opened.
    pub fn verify(&self) -> Result<Verified, ImageError> {
        let page_bytes = self.verify_pages()?;
        let mut v = Verified {
            runs: self.pagemaps.iter().map(|pm| pm.runs.len() as u64).sum(),
            page_bytes,
            ..Verified::default()
        };
        for f in &self.files.files {
            for b in f.kind.blobs() {
                v.blob_bytes += read_blob(&self.dir, b)?.len() as u64;
                v.blobs += 1;
            }
        }
        Ok(v)
    }

    /// Read every page run of every process and check its checksum (what `show --verify`
    /// and restore do before trusting pages).
    pub fn verify_pages(&self) -> Result<u64, ImageError> {
        let mut total = 0;
        for pm in &self.pagemaps {
            let path = self.dir.join(&pm.pages_file);
            let (mut f, len) = read_pages_header(&path)?;
            let mut stored = Vec::new();
            let mut raw = Vec::new();
            for run in &pm.runs {
                let n = run.stored_len();
                if run.offset + n > len {
                    return Err(ImageError::Truncated {
                        path,
                        offset: len,
                        wanted: run.offset + n - len,
                    });
                }
                stored.resize(n as usize, 0);
                use std::io::{Seek, SeekFrom};
                f.seek(SeekFrom::Start(run.offset))
                    .and_then(|_| f.read_exact(&mut stored))
                    .map_err(io("read", &path))?;
                if crate::codec::decode(run, &stored, &mut raw).is_err() {
                    return Err(ImageError::Checksum {
                        path,
                        offset: run.offset,
                    });
                }
                total += run.pages as u64 * crate::PAGE_SIZE;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        let s = |p: &str| Image::staging_of(Path::new(p));
        assert_eq!(s("/x/img.tmp-12-0"), Some((PathBuf::from("/x/img"), 12)));
        assert_eq!(
            s("/x/a.tmp-b.tmp-7-3"),
            Some((PathBuf::from("/x/a.tmp-b"), 7))
        );
        for not in [
            "/x/img",
            "/x/img.tmp-",
            "/x/img.tmp-12",
            "/x/.tmp-1-0",
            "/x/img.tmp-1x-0",
            "/x/img.tmp-1-",
        ] {
            assert_eq!(s(not), None, "{not}");
        }
    }

    #[test]
    fn record_file_roundtrip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let inv = InventoryEntry {
            stasis_version: "0.1.0".into(),
            arch: "x86_64".into(),
            kernel: "6.18".into(),
            created_unix: 1,
            root_pid: 42,
            pids: vec![42],
            xfeatures: 7,
            parent: None,
            cgroups: None,
        };
        write_record_file(dir.path(), "inventory", FileKind::Inventory, &inv).unwrap();
        let path = dir.path().join("inventory");
        let back: InventoryEntry = read_record_file(&path, FileKind::Inventory).unwrap();
        assert_eq!(back, inv);

        // wrong kind
        let e = read_record_file::<InventoryEntry>(&path, FileKind::Process).unwrap_err();
        assert!(matches!(e, ImageError::WrongKind { .. }), "{e}");

        // a newer minor version is refused
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] = 9;
        std::fs::write(&path, &bytes).unwrap();
        let e = read_record_file::<InventoryEntry>(&path, FileKind::Inventory).unwrap_err();
        assert!(e.to_string().contains("format version 1.9"), "{e}");
        bytes[12] = CURRENT_VERSION.minor as u8;

        // a flipped payload bit is a checksum error naming the file
        let mut bad = bytes.clone();
        bad[HEADER_LEN + 6] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let e = read_record_file::<InventoryEntry>(&path, FileKind::Inventory).unwrap_err();
        assert!(matches!(e, ImageError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains("inventory"));

        // truncation
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let e = read_record_file::<InventoryEntry>(&path, FileKind::Inventory).unwrap_err();
        assert!(matches!(e, ImageError::Truncated { .. }), "{e}");

        // not an image at all
        std::fs::write(&path, b"hello world, this is text").unwrap();
        let e = read_record_file::<InventoryEntry>(&path, FileKind::Inventory).unwrap_err();
        assert!(matches!(e, ImageError::BadMagic { .. }), "{e}");
    }

    #[test]
    fn blobs_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let b = write_blob(dir.path(), "blob-1", b"contents").unwrap();
        assert_eq!(read_blob(dir.path(), &b).unwrap(), b"contents");
        let mut bad = b.clone();
        bad.crc32c ^= 1;
        assert!(read_blob(dir.path(), &bad).is_err());

        let mut w = PagesWriter::create(dir.path(), "pages-1").unwrap();
        assert_eq!(w.append(&[7u8; 4096]).unwrap(), PAGES_DATA_OFFSET);
        drop(w.finish());
        let (_, len) = read_pages_header(&dir.path().join("pages-1")).unwrap();
        assert_eq!(len, 8192);
    }
}
