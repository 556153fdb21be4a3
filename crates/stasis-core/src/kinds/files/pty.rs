//! Pseudo-terminals the tree owns (a master from /dev/ptmx and its /dev/pts/N slave). Restore
//! makes a new pty (its index may differ), gives it the saved termios and window size, and
//! hands out master and slave fds. Bytes in flight in a pty cannot be read without consuming
//! them, so a pty with unread data is refused at dump time rather than losing them.

use super::{DumpFd, FilesError, OpenCx};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// The kind: see the module doc.
pub struct Pty;

impl super::FileKind for Pty {
    fn tags(&self) -> &'static [&'static str] {
        &["pty"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        is_pty(cx.link)
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
}

pub fn is_pty(link: &str) -> bool {
    link == "/dev/ptmx"
        || link == "/dev/pts/ptmx"
        || link
            .strip_prefix("/dev/pts/")
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let fd = cx.stolen.as_raw_fd();
    let master = cx.link.ends_with("ptmx");
    let err = |what, e: stasis_sys::Errno| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what,
        source: e.into(),
    };
    let index = if master {
        stasis_sys::tty::pty_index(fd).map_err(|e| err("the pty index", e))?
    } else {
        cx.link.trim_start_matches("/dev/pts/").parse().unwrap_or(0)
    };
    // Bytes in flight either way: what the master side has to read, and what the slave side
    // has to read (seen through a fresh open of the slave).
    let mut pending = stasis_sys::tty::pending_bytes(fd).unwrap_or(0);
    let slave: Option<OwnedFd> = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(format!("/dev/pts/{index}"))
        .ok()
        .map(OwnedFd::from);
    if let Some(s) = &slave {
        pending += stasis_sys::tty::pending_bytes(s.as_raw_fd()).unwrap_or(0);
    }
    if pending > 0 {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "a pty with unread data (it cannot be copied without consuming it); retry when it is drained",
        });
    }
    let termios = stasis_sys::tty::get_termios(fd).map_err(|e| err("the terminal settings", e))?;
    let winsize = stasis_sys::tty::get_winsize(fd).map_err(|e| err("the window size", e))?;
    Ok(FileKindEntry::Pty {
        index,
        master,
        termios,
        winsize,
    })
}

/// New pty masters, by the saved pty index.
#[derive(Default)]
struct Masters(std::collections::HashMap<u32, OwnedFd>);

pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Pty {
        index,
        master,
        termios,
        winsize,
    } = &entry.kind
    else {
        unreachable!("pty::open on another kind")
    };
    let oerr = |op, source| FilesError::Open {
        id: entry.id,
        op,
        path: format!("/dev/pts/{index}").into(),
        source,
    };
    let all = cx.all;
    let ptys = &mut cx.state::<Masters>().0;
    if !ptys.contains_key(index) {
        if !all.iter().any(
            |f| matches!(&f.kind, FileKindEntry::Pty { index: i, master: true, .. } if i == index),
        ) {
            return Err(FilesError::Changed {
                id: entry.id,
                path: format!("/dev/pts/{index}").into(),
                what: "its pty master is not in the image (a terminal outside the dumped tree)"
                    .into(),
            });
        }
        let m: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open("/dev/ptmx")
            .map_err(|e| oerr("create a pty for", e))?
            .into();
        stasis_sys::tty::pty_unlock(m.as_raw_fd()).map_err(|e| oerr("unlock", e.into()))?;
        stasis_sys::tty::set_termios(m.as_raw_fd(), termios)
            .map_err(|e| oerr("set termios of", e.into()))?;
        stasis_sys::tty::set_winsize(m.as_raw_fd(), *winsize)
            .map_err(|e| oerr("set the window size of", e.into()))?;
        ptys.insert(*index, m);
    }
    let m = &ptys[index];
    let fd = if *master {
        m.try_clone().map_err(|e| oerr("dup", e))?
    } else {
        let n = stasis_sys::tty::pty_index(m.as_raw_fd()).map_err(|e| oerr("index", e.into()))?;
        let acc = entry.flags as i32 & libc::O_ACCMODE;
        std::fs::OpenOptions::new()
            .read(acc != libc::O_WRONLY)
            .write(acc != libc::O_RDONLY)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(format!("/dev/pts/{n}"))
            .map_err(|e| oerr("open the slave of", e))?
            .into()
    };
    let fl = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))
        .map_err(|e| oerr("set flags of", e.into()))?;
    Ok(fd)
}
