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
    Ok(FileKindEntry::Epoll { items })
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
        t.syscall(
            "epoll_ctl(EPOLL_CTL_ADD)",
            libc::SYS_epoll_ctl,
            [
                epfd as u64,
                libc::EPOLL_CTL_ADD as u64,
                it.tfd as u64,
                s.at(3072),
                0,
                0,
            ],
        )?;
    }
    Ok(())
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
