//! Internet sockets that are neither bound nor connected yet (a TCP or UDP socket made and
//! not used): nothing but their family and type is state, so restore makes a new one. Bound
//! and connected ones are other kinds' (tcp.rs) or refused.

use super::{DumpFd, FilesError, OpenCx};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrLike};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};

/// The kind: see the module doc.
pub struct Unbound;

/// (family, type) of an inet socket that has no local port yet.
fn unbound(cx: &DumpFd) -> Option<(i32, i32)> {
    if !cx.link.starts_with("socket:[") {
        return None;
    }
    let fd = cx.stolen.as_raw_fd();
    let addr: socket::SockaddrStorage = socket::getsockname(fd).ok()?;
    let port = addr
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| addr.as_sockaddr_in6().map(|a| a.port()))?;
    let ty = socket::getsockopt(cx.stolen, sockopt::SockType).ok()?;
    let connected = socket::getpeername::<socket::SockaddrStorage>(fd).is_ok();
    (port == 0 && !connected).then(|| (addr.family().map_or(0, |f| f as i32), ty as i32))
}

impl super::FileKind for Unbound {
    fn tags(&self) -> &'static [&'static str] {
        &["inet-unbound"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        unbound(cx).is_some()
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        let (family, sock_type) = unbound(cx).expect("claimed");
        Ok(FileKindEntry::InetUnbound { family, sock_type })
    }
    fn open(&self, _cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        let FileKindEntry::InetUnbound { family, sock_type } = entry.kind else {
            unreachable!("inet::open on another kind")
        };
        let oerr = |e: nix::errno::Errno| FilesError::Open {
            id: entry.id,
            op: "create",
            path: entry.kind.describe().into(),
            source: e.into(),
        };
        let fam = if family == libc::AF_INET6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let ty = SockType::try_from(sock_type).map_err(oerr)?;
        let fd = socket::socket(fam, ty, SockFlag::SOCK_CLOEXEC, None).map_err(oerr)?;
        let fl = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl)).map_err(oerr)?;
        Ok(fd)
    }
}
