//! epoll instances: the interest list comes from fdinfo ("tfd: N events: X data: Y" lines).
//! Restore makes an empty epoll in the restorer; the registrations are made by the process
//! itself (remote epoll_ctl) once its fds are in place, because the kernel keys them by
//! (file, fd number) and the program will later EPOLL_CTL_MOD/DEL by its own fd numbers.

use super::{DumpFd, FilesError};
use crate::scratch::Scratch;
use crate::tracee::{Tracee, TraceeError};
use stasis_image::{EpollItemEntry, FileEntry, FileKindEntry};
use std::os::fd::OwnedFd;

/// The kind: see the module doc.
pub struct Epoll;

impl super::FileKind for Epoll {
    fn tags(&self) -> &'static [&'static str] {
        &["epoll"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link == "anon_inode:[eventpoll]"
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, _cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(entry)
    }
    fn placed(
        &self,
        t: &mut crate::tracee::PtraceTracee,
        s: Scratch,
        entry: &FileEntry,
        fd: i32,
    ) -> Result<(), TraceeError> {
        let FileKindEntry::Epoll { items } = &entry.kind else {
            return Ok(());
        };
        register(t, s, fd, items)
    }
}

/// Parse the value of one "tfd:" fdinfo line: "5 events: 19 data: 1111  pos:0 ino:b sdev:f".
pub fn parse_item(v: &str) -> Option<EpollItemEntry> {
    let mut it = v.split_whitespace();
    let tfd = it.next()?.parse().ok()?;
    let mut events = None;
    let mut data = None;
    while let Some(tok) = it.next() {
        match tok {
            "events:" => events = u32::from_str_radix(it.next()?, 16).ok(),
            "data:" => data = u64::from_str_radix(it.next()?, 16).ok(),
            _ => {}
        }
    }
    Some(EpollItemEntry {
        tfd,
        events: events?,
        data: data?,
        via: None,
    })
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let mut items = Vec::new();
    for (k, v) in &cx.info.extra {
        if k == "tfd" {
            items.push(parse_item(v).ok_or(FilesError::Unsupported {
                pid: cx.pid,
                fd: cx.fd,
                kind: cx.link.to_string(),
                why: "an epoll fdinfo line could not be read",
            })?);
        }
    }
    for i in 0..items.len() {
        let tfd = items[i].tfd;
        let toff = items[..i].iter().filter(|o| o.tfd == tfd).count() as u32;
        items[i].via = registered_through(cx, tfd, toff)?;
    }
    Ok(FileKindEntry::Epoll { items })
}

/// None when fd `tfd` of the process still holds the file registered under that number (the
/// `toff`-th registration under it);
/// otherwise (the fd was closed or reused) another fd of the process that holds it.
fn registered_through(cx: &DumpFd, tfd: i32, toff: u32) -> Result<Option<i32>, FilesError> {
    use stasis_sys::pidfd::kcmp_epoll_target;
    let pid = stasis_sys::Pid::from_raw(cx.pid);
    if kcmp_epoll_target(pid, tfd, cx.fd, tfd, toff).unwrap_or(false) {
        return Ok(None);
    }
    let fds =
        std::fs::read_dir(format!("/proc/{}/fd", cx.pid)).map_err(|source| FilesError::Proc {
            pid: cx.pid,
            fd: cx.fd,
            what: "/proc/PID/fd",
            source,
        })?;
    fds.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&fd| kcmp_epoll_target(pid, fd, cx.fd, tfd, toff).unwrap_or(false))
        .map(Some)
        .ok_or(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: format!("{} (registration of fd {tfd})", cx.link),
            why: "the registered file is held by no fd of this process any more",
        })
}

pub fn open(entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    stasis_sys::anonfd::epoll_create1(libc::EPOLL_CLOEXEC).map_err(|e| FilesError::Open {
        id: entry.id,
        op: "create",
        path: "epoll".into(),
        source: e.into(),
    })
}

/// Register the saved interest list of the epoll at fd `epfd` of the process, by its own fd
/// numbers.
pub fn register(
    t: &mut impl Tracee,
    s: Scratch,
    epfd: i32,
    items: &[EpollItemEntry],
) -> Result<(), TraceeError> {
    for it in items {
        // struct epoll_event is packed on x86_64: u32 events, u64 data.
        let mut ev = Vec::with_capacity(12);
        ev.extend_from_slice(&it.events.to_le_bytes());
        ev.extend_from_slice(&it.data.to_le_bytes());
        t.write_mem(s.at(3072), &ev)?;
        let Some(via) = it.via else {
            ctl_add(t, s, epfd, it.tfd)?;
            continue;
        };
        // The file was registered under a number that now holds another file, or nothing: it
        // goes there for the registration (the kernel keys it by file and number), and
        // whatever was there comes back, with its close-on-exec flag.
        let fdflags = match t.syscall(
            "fcntl(F_GETFD)",
            libc::SYS_fcntl,
            [it.tfd as u64, libc::F_GETFD as u64, 0, 0, 0, 0],
        ) {
            Ok(f) => Some(f),
            Err(TraceeError::Syscall {
                source: stasis_sys::Errno::EBADF,
                ..
            }) => None,
            Err(e) => return Err(e),
        };
        let aside = match fdflags {
            Some(_) => Some(t.syscall(
                "fcntl(F_DUPFD_CLOEXEC)",
                libc::SYS_fcntl,
                [it.tfd as u64, libc::F_DUPFD_CLOEXEC as u64, 0, 0, 0, 0],
            )?),
            None => None,
        };
        t.syscall(
            "dup3",
            libc::SYS_dup3,
            [via as u64, it.tfd as u64, 0, 0, 0, 0],
        )?;
        ctl_add(t, s, epfd, it.tfd)?;
        match (aside, fdflags) {
            (Some(a), Some(f)) => {
                let cloexec = if f & libc::FD_CLOEXEC as u64 != 0 {
                    libc::O_CLOEXEC as u64
                } else {
                    0
                };
                t.syscall("dup3", libc::SYS_dup3, [a, it.tfd as u64, cloexec, 0, 0, 0])?;
                t.syscall("close", libc::SYS_close, [a, 0, 0, 0, 0, 0])?;
            }
            _ => {
                t.syscall("close", libc::SYS_close, [it.tfd as u64, 0, 0, 0, 0, 0])?;
            }
        }
    }
    Ok(())
}

/// `epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, event)` with the event already in the scratch area.
fn ctl_add(t: &mut impl Tracee, s: Scratch, epfd: i32, tfd: i32) -> Result<u64, TraceeError> {
    t.syscall(
        "epoll_ctl(EPOLL_CTL_ADD)",
        libc::SYS_epoll_ctl,
        [
            epfd as u64,
            libc::EPOLL_CTL_ADD as u64,
            tfd as u64,
            s.at(3072),
            0,
            0,
        ],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_line() {
        let it = super::parse_item(
            "       5 events:       19 data:             1111  pos:0 ino:b sdev:f",
        )
        .unwrap();
        assert_eq!((it.tfd, it.events, it.data), (5, 0x19, 0x1111));
        assert!(super::parse_item("x").is_none());
    }
}
