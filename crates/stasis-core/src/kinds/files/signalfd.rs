//! signalfds: the signal mask they read (from fdinfo); restore makes a new one.

use super::{DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::OwnedFd;

/// The kind: see the module doc.
pub struct Signalfd;

impl super::FileKind for Signalfd {
    fn tags(&self) -> &'static [&'static str] {
        &["signalfd"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link == "anon_inode:[signalfd]"
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, _cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(entry)
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let mask = cx
        .info
        .get("sigmask")
        .and_then(|v| stasis_procfs::parse_sigmask_hex(v.trim()).ok())
        .ok_or(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "its fdinfo has no sigmask",
        })?;
    Ok(FileKindEntry::Signalfd { mask })
}

pub fn open(entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Signalfd { mask } = &entry.kind else {
        unreachable!("signalfd::open on another kind")
    };
    let flags = libc::SFD_CLOEXEC | (entry.flags as i32 & libc::O_NONBLOCK);
    stasis_sys::anonfd::signalfd(*mask, flags).map_err(|e| FilesError::Open {
        id: entry.id,
        op: "create",
        path: "signalfd".into(),
        source: e.into(),
    })
}
