//! eventfds: the counter (from fdinfo) and the semaphore mode; restore makes a new eventfd
//! and puts the counter back with a write.

use super::{DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::io::Write;
use std::os::fd::OwnedFd;

/// The kind: see the module doc.
pub struct Eventfd;

impl super::FileKind for Eventfd {
    fn tags(&self) -> &'static [&'static str] {
        &["eventfd"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link == "anon_inode:[eventfd]"
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, _cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(entry)
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let count = cx
        .info
        .get("eventfd-count")
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "its fdinfo has no eventfd-count",
        })?;
    let semaphore = cx
        .info
        .get("eventfd-semaphore")
        .is_some_and(|v| v.trim() == "1");
    Ok(FileKindEntry::Eventfd { count, semaphore })
}

pub fn open(entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Eventfd { count, semaphore } = &entry.kind else {
        unreachable!("eventfd::open on another kind")
    };
    let err = |op, source: std::io::Error| FilesError::Open {
        id: entry.id,
        op,
        path: "eventfd".into(),
        source,
    };
    let mut flags = libc::EFD_CLOEXEC | (entry.flags as i32 & libc::O_NONBLOCK);
    if *semaphore {
        flags |= libc::EFD_SEMAPHORE;
    }
    let fd = stasis_sys::anonfd::eventfd(0, flags).map_err(|e| err("create", e.into()))?;
    if *count > 0 {
        std::fs::File::from(fd.try_clone().map_err(|e| err("dup", e))?)
            .write_all(&count.to_ne_bytes())
            .map_err(|e| err("set the counter of", e))?;
    }
    Ok(fd)
}
