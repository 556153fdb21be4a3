//! pidfds (pidfd_open, clone with CLONE_PIDFD): descriptors that name a process. Dump reads
//! the pid from fdinfo ("Pid:", -1 once the process has exited and been reaped) and the pidfs
//! inode, which is the same for every pidfd of one process. A live process must be in the
//! tree: restore has the holding process itself call pidfd_open on the same pid when its fds
//! are placed (the process itself, its parent, its children exist by then; a process restored
//! later, such as a grandchild, once the whole tree exists). A
//! pidfd of a process that is gone becomes a pidfd of a short-lived child of the restorer's,
//! one per gone process, so that pidfds of one process still share their inode and those of
//! different processes do not.

use super::{DumpFd, FilesError, OpenCx};
use crate::scratch::Scratch;
use crate::tracee::{PtraceTracee, Tracee, TraceeError};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// The kind: see the module doc.
pub struct Pidfd;

/// pidfd_open flags the kernel keeps in the description: PIDFD_NONBLOCK (O_NONBLOCK) and
/// PIDFD_THREAD (O_EXCL).
const OPEN_FLAGS: u32 = (libc::O_NONBLOCK | libc::O_EXCL) as u32;

impl super::FileKind for Pidfd {
    fn tags(&self) -> &'static [&'static str] {
        &["pidfd"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link == "anon_inode:[pidfd]"
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        let pid: i32 = cx
            .info
            .get("Pid")
            .and_then(|v| v.trim().parse().ok())
            .ok_or(FilesError::Unsupported {
                pid: cx.pid,
                fd: cx.fd,
                kind: cx.link.to_string(),
                why: "its fdinfo names no pid",
            })?;
        if pid > 0 && !cx.tree.contains(&pid) {
            return Err(FilesError::Unsupported {
                pid: cx.pid,
                fd: cx.fd,
                kind: format!("a pidfd of pid {pid}"),
                why: "that process is outside the dumped tree; dump a tree that holds it",
            });
        }
        let ino =
            std::fs::File::from(cx.stolen.try_clone().map_err(|source| FilesError::Proc {
                pid: cx.pid,
                fd: cx.fd,
                what: "the pidfd",
                source,
            })?)
            .metadata()
            .map(|m| m.ino())
            .unwrap_or(0);
        Ok(FileKindEntry::Pidfd {
            pid: pid.max(-1),
            ino,
        })
    }
    fn opens_inside(&self, entry: &FileEntry) -> bool {
        matches!(entry.kind, FileKindEntry::Pidfd { pid, .. } if pid > 0)
    }
    fn open_inside(
        &self,
        t: &mut PtraceTracee,
        _s: Scratch,
        entry: &FileEntry,
    ) -> Result<Option<i32>, TraceeError> {
        let FileKindEntry::Pidfd { pid, .. } = entry.kind else {
            unreachable!("pidfd::open_inside on another kind")
        };
        match t.syscall(
            "pidfd_open",
            libc::SYS_pidfd_open,
            [pid as u64, (entry.flags & OPEN_FLAGS) as u64, 0, 0, 0, 0],
        ) {
            Ok(fd) => Ok(Some(fd as i32)),
            // A process restored later (a grandchild of the holder): once the tree exists.
            Err(TraceeError::Syscall {
                source: stasis_sys::Errno::ESRCH,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn open(&self, cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        let FileKindEntry::Pidfd { ino, .. } = entry.kind else {
            unreachable!("pidfd::open on another kind")
        };
        let oerr = |op, source: std::io::Error| FilesError::Open {
            id: entry.id,
            op,
            path: "a pidfd of an exited process".into(),
            source,
        };
        let gone = &mut cx.state::<Gone>().0;
        if let Some(fd) = gone.get(&ino) {
            return fd.try_clone().map_err(|e| oerr("dup", e));
        }
        let fd = pidfd_of_a_gone_process().map_err(|e| oerr("make", e.into()))?;
        let fl = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))
            .map_err(|e| oerr("set flags of", e.into()))?;
        let keep = fd.try_clone().map_err(|e| oerr("dup", e))?;
        gone.insert(ino, keep);
        Ok(fd)
    }
}

/// pidfds made for processes that are gone, by their saved pidfs inode.
#[derive(Default)]
struct Gone(std::collections::HashMap<u64, OwnedFd>);

/// A pidfd of a child of ours that has exited and been reaped.
fn pidfd_of_a_gone_process() -> Result<OwnedFd, stasis_sys::Errno> {
    let child = match stasis_sys::clone::fork()? {
        stasis_sys::clone::Forked::Child => stasis_sys::clone::child_exit(0),
        stasis_sys::clone::Forked::Parent(c) => c,
    };
    // A zombie still has its pid: the pidfd is taken before the child is reaped.
    let fd = stasis_sys::pidfd::pidfd_open(child);
    let _ = nix::sys::wait::waitpid(child, None);
    fd
}
