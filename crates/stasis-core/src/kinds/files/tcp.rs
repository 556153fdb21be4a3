//! TCP sockets. A listening socket is saved by address, port and bind options and listens
//! again after restore. Established connections need TCP_REPAIR (`--tcp-established`, not
//! available yet), so a tree holding one is refused at dump time with an error naming the
//! socket; so is a listener with connections waiting to be accepted.

use super::{DumpFd, FilesError};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};

const LISTEN: u8 = 10;

/// The TCP socket with inode `ino` in the process's network namespace, if any.
pub fn find(pid: i32, ino: u64) -> Option<stasis_procfs::net::TcpSock> {
    ["tcp", "tcp6"].iter().find_map(|f| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok()?;
        stasis_procfs::net::parse_tcp(&text)
            .ok()?
            .into_iter()
            .find(|s| s.inode == ino)
    })
}

pub fn dump(cx: &mut DumpFd, s: stasis_procfs::net::TcpSock) -> Result<FileKindEntry, FilesError> {
    let unsupported = |why| FilesError::Unsupported {
        pid: cx.pid,
        fd: cx.fd,
        kind: format!("{} (TCP)", cx.link),
        why,
    };
    if s.state != LISTEN {
        return Err(unsupported(
            "an established or closing TCP connection needs --tcp-established (TCP_REPAIR), which is not available yet",
        ));
    }
    let reuseaddr = socket::getsockopt(cx.stolen, sockopt::ReuseAddr).unwrap_or(false);
    let v6only =
        s.local.len() == 16 && socket::getsockopt(cx.stolen, sockopt::Ipv6V6Only).unwrap_or(false);
    Ok(FileKindEntry::TcpListen {
        addr: s.local,
        port: s.local_port,
        reuseaddr,
        v6only,
    })
}

pub fn open(entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::TcpListen {
        addr,
        port,
        reuseaddr,
        v6only,
    } = &entry.kind
    else {
        unreachable!("tcp::open on another kind")
    };
    let oerr = |op, source: nix::errno::Errno| FilesError::Open {
        id: entry.id,
        op,
        path: format!("TCP listener on port {port}").into(),
        source: source.into(),
    };
    let v6 = addr.len() == 16;
    let fam = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket::socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| oerr("create", e))?;
    // Bind right after the dumped listener closed; the saved value is put back after.
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)
        .map_err(|e| oerr("set SO_REUSEADDR on", e))?;
    if v6 {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, v6only)
            .map_err(|e| oerr("set IPV6_V6ONLY on", e))?;
        let mut a = [0u8; 16];
        a.copy_from_slice(addr);
        let sa = SockaddrIn6::from(std::net::SocketAddrV6::new(a.into(), *port, 0, 0));
        socket::bind(fd.as_raw_fd(), &sa).map_err(|e| oerr("bind", e))?;
    } else {
        let sa = SockaddrIn::new(addr[0], addr[1], addr[2], addr[3], *port);
        socket::bind(fd.as_raw_fd(), &sa).map_err(|e| oerr("bind", e))?;
    }
    socket::setsockopt(&fd, sockopt::ReuseAddr, reuseaddr)
        .map_err(|e| oerr("set SO_REUSEADDR on", e))?;
    socket::listen(&fd, socket::Backlog::new(511).expect("valid backlog"))
        .map_err(|e| oerr("listen", e))?;
    let fl = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))
        .map_err(|e| oerr("set flags of", e))?;
    Ok(fd)
}
