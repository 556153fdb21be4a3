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

/// What is queued to be read on a socket.
#[derive(Debug, Default)]
pub struct Queued {
    pub data: Vec<u8>,
    /// For message sockets, each message's length.
    pub messages: Vec<u32>,
    /// File descriptors in flight (SCM_RIGHTS) attached to the queued data. Peeking hands
    /// copies of them to us; they are closed again here and only counted.
    pub rights: usize,
}

/// Everything queued to be read on a socket, without consuming it: MSG_PEEK from a peek
/// offset that walks the queue (SO_PEEK_OFF), reset afterwards.
pub fn peek_queue(fd: &impl AsRawFd, stream: bool) -> SysResult<Queued> {
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
    let mut q = Queued::default();
    let mut buf = vec![0u8; 256 * 1024];
    // Room for credentials and up to 253 fds (SCM_MAX_FD), 8-byte aligned.
    let mut control = vec![0u64; 160];
    let res = loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; the fields set below point at live buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len() * 8;
        // SAFETY: `msg` describes writable buffers (`buf`, `control`) that outlive the call;
        // MSG_CMSG_CLOEXEC so fds handed to us never leak into a child of ours.
        let n = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n < 0 {
            let e = Errno::last();
            break if e == Errno::EAGAIN { Ok(()) } else { Err(e) };
        }
        q.rights += close_rights(&msg);
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            // More fds than the buffer holds: the kernel dropped the rest, there were some.
            q.rights += 1;
        }
        if n == 0 && stream {
            break Ok(());
        }
        q.data.extend_from_slice(&buf[..n as usize]);
        if !stream {
            q.messages.push(n as u32);
        }
    };
    let reset = set_off(-1);
    res?;
    reset?;
    Ok(q)
}

/// Close the fds of every SCM_RIGHTS message of `msg`; returns how many there were.
fn close_rights(msg: &libc::msghdr) -> usize {
    let mut count = 0;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, within
    // msg_controllen; each SCM_RIGHTS payload is an array of ints that are ours to close.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const i32;
                let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..n {
                    libc::close(data.add(i).read_unaligned());
                }
                count += n;
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    count
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

/// TCP repair (checkpoint/restore of established connections, needs CAP_NET_ADMIN): socket
/// option numbers from linux/tcp.h.
pub mod tcp_repair {
    pub const TCP_REPAIR: i32 = 19;
    pub const TCP_REPAIR_QUEUE: i32 = 20;
    pub const TCP_QUEUE_SEQ: i32 = 21;
    pub const TCP_REPAIR_OPTIONS: i32 = 22;
    pub const TCP_TIMESTAMP: i32 = 24;
    pub const TCP_REPAIR_WINDOW: i32 = 29;
    pub const RECV_QUEUE: i32 = 1;
    pub const SEND_QUEUE: i32 = 2;
    /// Leave repair mode without sending a window probe.
    pub const REPAIR_OFF_NO_WP: i32 = -1;
}

/// `setsockopt(fd, IPPROTO_TCP, opt, &val, len)` with a raw value.
pub fn tcp_setsockopt(fd: std::os::fd::RawFd, opt: i32, val: &[u8]) -> SysResult<()> {
    // SAFETY: the kernel reads `val.len()` bytes from `val`.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
            val.as_ptr().cast(),
            val.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `getsockopt(fd, IPPROTO_TCP, opt, buf, &len)`; returns the bytes the kernel wrote.
pub fn tcp_getsockopt(fd: std::os::fd::RawFd, opt: i32, size: usize) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let mut len = size as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes; the kernel updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    buf.truncate(len as usize);
    Ok(buf)
}

/// Peek everything readable (in repair mode: the selected queue) without consuming it.
pub fn peek_all(fd: std::os::fd::RawFd, max: usize) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; max.max(1)];
    // SAFETY: `buf` is writable for its length.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = Errno::last();
        return if e == Errno::EAGAIN {
            Ok(Vec::new())
        } else {
            Err(e)
        };
    }
    buf.truncate(n as usize);
    Ok(buf)
}
