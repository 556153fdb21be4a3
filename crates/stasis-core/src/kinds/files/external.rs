//! Files outside the dumped tree: stdin, stdout and stderr that the job inherited from its
//! shell (a terminal, pipe or file). They are not saved; restore connects the same fd numbers
//! to the restore command's own stdio.

use super::FilesError;
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsFd, OwnedFd};

pub fn dump(link: &str) -> FileKindEntry {
    FileKindEntry::External {
        what: link.to_string(),
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
