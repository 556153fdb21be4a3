//! Files reopened by path: regular files, directories, devices such as /dev/null. The image
//! keeps path, flags, offset, mode and (for regular files) size; restore reopens and seeks.

use super::{reopen_flags, seek, DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// The kind: see the module doc.
pub struct ByPath;

impl super::FileKind for ByPath {
    fn tags(&self) -> &'static [&'static str] {
        &["path"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link.starts_with('/')
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, _cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(entry)
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let meta = std::fs::File::from(cx.stolen.try_clone().map_err(|source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what: "the descriptor",
        source,
    })?)
    .metadata()
    .map_err(|source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what: "the file's metadata",
        source,
    })?;
    let mode = meta.mode();
    let ft = mode & libc::S_IFMT;
    if ft != libc::S_IFREG && ft != libc::S_IFDIR && ft != libc::S_IFCHR && ft != libc::S_IFBLK {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "a socket file opened by path",
        });
    }
    if ft == libc::S_IFCHR && (cx.link.starts_with("/dev/pts/") || cx.link.starts_with("/dev/tty"))
    {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "a terminal other than a pty the tree owns (reopening /dev/tty* is not supported yet)",
        });
    }
    Ok(FileKindEntry::Path {
        path: cx.link.to_string(),
        mode,
        size: if ft == libc::S_IFREG { meta.len() } else { 0 },
    })
}

pub fn open(entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Path { path, mode, size } = &entry.kind else {
        unreachable!("path::open on another kind")
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(reopen_flags(entry.flags) & !libc::O_ACCMODE)
        .write(entry.flags as i32 & libc::O_ACCMODE != libc::O_RDONLY)
        .read(entry.flags as i32 & libc::O_ACCMODE != libc::O_WRONLY)
        .open(path)
        .map_err(|source| FilesError::Open {
            id: entry.id,
            op: "open",
            path: path.into(),
            source,
        })?;
    let meta = f.metadata().map_err(|source| FilesError::Open {
        id: entry.id,
        op: "stat",
        path: path.into(),
        source,
    })?;
    if meta.mode() & libc::S_IFMT != mode & libc::S_IFMT {
        return Err(FilesError::Changed {
            id: entry.id,
            path: path.into(),
            what: format!(
                "file type {:o} is now {:o}",
                mode & libc::S_IFMT,
                meta.mode() & libc::S_IFMT
            ),
        });
    }
    if meta.is_file() && meta.len() < *size && entry.pos > meta.len() {
        return Err(FilesError::Changed {
            id: entry.id,
            path: path.into(),
            what: format!(
                "it shrank from {size} to {} bytes, below the saved offset {}",
                meta.len(),
                entry.pos
            ),
        });
    }
    let fd = OwnedFd::from(f);
    seek(&fd, entry.pos);
    Ok(fd)
}
