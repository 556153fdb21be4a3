//! Files outside the dumped tree: stdin, stdout and stderr that the job inherited from its
//! shell (a terminal, pipe or file). They are not saved; restore connects the same fd numbers
//! to the restore command's own stdio.

use super::FilesError;
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsFd, OwnedFd};

/// The kind: see the module doc. It claims no fd by itself: the file table decides what is
/// outside the tree (see `FileTable::settle_stdio`).
pub struct External;

impl super::FileKind for External {
    fn tags(&self) -> &'static [&'static str] {
        &["external"]
    }
    fn claims(&self, _cx: &super::DumpFd) -> bool {
        false
    }
    fn dump(&self, cx: &mut super::DumpFd) -> Result<FileKindEntry, FilesError> {
        Ok(FileKindEntry::External {
            what: cx.link.to_string(),
            fd: Some(cx.fd),
        })
    }
    fn open(&self, cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        let FileKindEntry::External { fd, .. } = &entry.kind else {
            unreachable!("external::open on another kind")
        };
        // Images before 1.4 did not say which fd: each fd then took its own number.
        open(entry, fd.unwrap_or(cx.fd))
    }
}

pub fn open(entry: &FileEntry, own_fd: i32) -> Result<OwnedFd, FilesError> {
    let dup = match own_fd {
        0 => std::io::stdin().as_fd().try_clone_to_owned(),
        1 => std::io::stdout().as_fd().try_clone_to_owned(),
        _ => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    dup.map_err(|source| FilesError::Open {
        id: entry.id,
        op: "duplicate our own stdio for",
        path: format!("fd {own_fd}").into(),
        source,
    })
}
