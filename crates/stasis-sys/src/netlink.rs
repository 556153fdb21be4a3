//! sock_diag over netlink: the kernel's table of AF_UNIX sockets (inode, type, state, name,
//! peer, queue lengths). Written by hand: the request/response structs are small and no
//! maintained crate covers unix_diag. Parsing of the reply lives in stasis-procfs.

use crate::{Errno, SysResult};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UDIAG_SHOW_RQLEN: u32 = 0x10;

/// Dump every AF_UNIX socket of this network namespace; returns the raw netlink replies
/// (concatenated messages, NLMSG_DONE excluded).
pub fn unix_diag_dump() -> SysResult<Vec<u8>> {
    // SAFETY: plain integer arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh fd owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16) + unix_diag_req (24)
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid
    req.push(libc::AF_UNIX as u8); // sdiag_family
    req.push(0); // sdiag_protocol
    req.extend_from_slice(&0u16.to_ne_bytes()); // pad
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // udiag_states: all
    req.extend_from_slice(&0u32.to_ne_bytes()); // udiag_ino
    req.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_ne_bytes());
    req.extend_from_slice(&[0u8; 8]); // cookie
                                      // SAFETY: `req` is a complete request the kernel reads; no address (the kernel).
    let r = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(Errno::last());
        }
        let mut off = 0usize;
        let n = n as usize;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
            if len < 16 || off + len > n {
                return Err(Errno::EBADMSG);
            }
            if ty == libc::NLMSG_DONE as u16 {
                return Ok(out);
            }
            if ty == libc::NLMSG_ERROR as u16 {
                return Err(Errno::EIO);
            }
            out.extend_from_slice(&buf[off..off + len]);
            off += (len + 3) & !3;
        }
    }
}

/// Everything queued to be read on a socket, without consuming it: MSG_PEEK from a peek
/// offset that walks the queue (SO_PEEK_OFF), reset afterwards. Returns the bytes and, for
/// message sockets, each message's length.
pub fn peek_queue(fd: &impl AsRawFd, stream: bool) -> SysResult<(Vec<u8>, Vec<u32>)> {
    let set_off = |v: i32| -> SysResult<()> {
        // SAFETY: setsockopt reads one int from `v`.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEEK_OFF,
                (&v as *const i32).cast(),
                4,
            )
        };
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    };
    set_off(0)?;
    let mut data = Vec::new();
    let mut lens = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let res = loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = Errno::last();
            break if e == Errno::EAGAIN { Ok(()) } else { Err(e) };
        }
        if n == 0 && stream {
            break Ok(());
        }
        data.extend_from_slice(&buf[..n as usize]);
        if !stream {
            lens.push(n as u32);
        }
    };
    let reset = set_off(-1);
    res?;
    reset?;
    Ok((data, lens))
}

/// `bind(fd, sockaddr_un, len)`—Bind a unix socket to a path or abstract name.
pub fn bind_unix(
    fd: std::os::fd::RawFd,
    sa: &libc::sockaddr_un,
    len: libc::socklen_t,
) -> SysResult<()> {
    // SAFETY: `sa` is a valid sockaddr_un of at least `len` bytes, read by the kernel.
    let r = unsafe { libc::bind(fd, (sa as *const libc::sockaddr_un).cast(), len) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
