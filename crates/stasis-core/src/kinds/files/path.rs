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
    /// A file under /proc/PID/ (a process's own /proc/self/maps) names a process of the tree,
    /// which does not exist yet when the restorer opens files: opened inside the process.
    fn opens_inside(&self, entry: &FileEntry) -> bool {
        matches!(&entry.kind, FileKindEntry::Path { path, .. } if proc_pid_path(path))
    }
    fn open_inside(
        &self,
        t: &mut crate::tracee::PtraceTracee,
        s: crate::scratch::Scratch,
        entry: &FileEntry,
    ) -> Result<Option<i32>, crate::tracee::TraceeError> {
        use crate::tracee::{Tracee, TraceeError};
        let FileKindEntry::Path { path, .. } = &entry.kind else {
            unreachable!("path::open_inside on another kind")
        };
        let mut z = path.as_bytes().to_vec();
        z.push(0);
        t.write_mem(s.at(0), &z)?;
        let flags = reopen_flags(entry.flags) as u64;
        let fd = match t.syscall(
            "openat",
            libc::SYS_openat,
            [libc::AT_FDCWD as u64, s.at(0), flags, 0, 0, 0],
        ) {
            Ok(fd) => fd,
            Err(TraceeError::Syscall {
                source: stasis_sys::Errno::ENOENT | stasis_sys::Errno::ESRCH,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if entry.pos != 0 {
            // Seekable /proc files (maps, status...) regenerate their text on read.
            let _ = t.syscall(
                "lseek",
                libc::SYS_lseek,
                [fd, entry.pos, libc::SEEK_SET as u64, 0, 0, 0],
            );
        }
        Ok(Some(fd as i32))
    }
}

/// `/proc/NUMBER/...`: a file of one process's /proc directory.
fn proc_pid_path(path: &str) -> bool {
    path.strip_prefix("/proc/")
        .and_then(|r| r.split('/').next())
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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
    let o_path = cx.info.flags & libc::O_PATH as u32 != 0;
    let by_path_only = ft == libc::S_IFLNK || ft == libc::S_IFSOCK;
    if by_path_only && !o_path {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "a socket file or symlink held other than with O_PATH",
        });
    }
    if !by_path_only
        && ft != libc::S_IFREG
        && ft != libc::S_IFDIR
        && ft != libc::S_IFCHR
        && ft != libc::S_IFBLK
    {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "an unknown kind of file",
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
    let mut flags = reopen_flags(entry.flags) & !libc::O_ACCMODE;
    if matches!(mode & libc::S_IFMT, libc::S_IFLNK | libc::S_IFSOCK) {
        // The symlink or socket file itself, as an O_PATH descriptor holds it.
        flags |= libc::O_PATH | libc::O_NOFOLLOW;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
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
