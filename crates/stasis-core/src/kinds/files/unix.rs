//! AF_UNIX sockets: what the kernel's sock_diag says of each (type, state, name, peer) plus the
//! data queued for it to read, peeked without consuming it. Restore recreates a connected
//! pair inside the dumped tree with socketpair() (each end's queue sent again from the other
//! end), and listening or unconnected sockets with bind() to their name. A socket connected
//! to something outside the tree, or a listener with connections waiting to be accepted, is
//! refused at dump time.

use super::{DumpFd, FilesError, OpenCx};
use stasis_image::{FileEntry, FileKindEntry};
use stasis_procfs::unixdiag::UnixSock;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

pub const ESTABLISHED: u8 = 1;
pub const UNCONNECTED: u8 = 7;
pub const LISTEN: u8 = 10;

/// The kind: see the module doc.
pub struct Unix;

impl super::FileKind for Unix {
    fn tags(&self) -> &'static [&'static str] {
        &["unix-socket"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link.starts_with("socket:[")
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx, cx.unix_table)
    }
    fn open(&self, cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
}

pub fn dump(cx: &mut DumpFd, table: &[UnixSock]) -> Result<FileKindEntry, FilesError> {
    let ino: u32 = cx
        .link
        .trim_start_matches("socket:[")
        .trim_end_matches(']')
        .parse()
        .unwrap_or(0);
    let unsupported = |why| FilesError::Unsupported {
        pid: cx.pid,
        fd: cx.fd,
        kind: cx.link.to_string(),
        why,
    };
    let Some(s) = table.iter().find(|s| s.ino == ino) else {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: describe_socket(cx),
            why: "stasis saves unix sockets, TCP sockets and unbound internet sockets only",
        });
    };
    if s.state == LISTEN && s.rqlen > 0 {
        return Err(unsupported(
            "a listening socket with connections waiting to be accepted",
        ));
    }
    if ![ESTABLISHED, UNCONNECTED, LISTEN].contains(&s.state) {
        return Err(unsupported(
            "a unix socket in a transient state (connecting or closing)",
        ));
    }
    let stream = s.sock_type == libc::SOCK_STREAM as u8;
    let (data, messages) = if s.state == LISTEN {
        (Vec::new(), Vec::new())
    } else {
        let q =
            stasis_sys::netlink::peek_queue(cx.stolen, stream).map_err(|e| FilesError::Proc {
                pid: cx.pid,
                fd: cx.fd,
                what: "the socket's queued data",
                source: e.into(),
            })?;
        if q.rights > 0 {
            return Err(unsupported(
                "file descriptors in flight (SCM_RIGHTS) in the unix socket's receive queue; let the receiver read them before the dump",
            ));
        }
        (q.data, q.messages)
    };
    let queue = if data.is_empty() {
        None
    } else {
        let name = format!("blob-{}", *cx.next_blob);
        *cx.next_blob += 1;
        Some(stasis_image::write_blob(cx.image_dir, &name, &data)?)
    };
    Ok(FileKindEntry::UnixSocket {
        ino,
        sock_type: s.sock_type,
        state: s.state,
        // A path name may come with its terminating NUL; an abstract one starts with NUL.
        name: s.name.clone().filter(|n| !n.is_empty()).map(|mut n| {
            if n[0] != 0 {
                while n.last() == Some(&0) {
                    n.pop();
                }
            }
            n
        }),
        peer: s.peer,
        queue,
        messages,
    })
}

/// A socket in user terms, for an error: "a UDP socket bound to 127.0.0.1:5353
/// (socket:[123])", "a netlink socket (socket:[9])".
fn describe_socket(cx: &DumpFd) -> String {
    use nix::sys::socket::{
        getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike, SockaddrStorage,
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(cx.stolen);
    let ty = getsockopt(cx.stolen, sockopt::SockType).ok();
    let addr: Option<SockaddrStorage> = getsockname(fd).ok();
    let family = addr.as_ref().and_then(|a| a.family());
    let what = match (family, ty) {
        (Some(AddressFamily::Inet | AddressFamily::Inet6), Some(SockType::Datagram)) => {
            "a UDP socket"
        }
        (Some(AddressFamily::Inet | AddressFamily::Inet6), Some(SockType::Raw)) => {
            "a raw IP socket"
        }
        (Some(AddressFamily::Inet | AddressFamily::Inet6), _) => "an internet socket",
        (Some(AddressFamily::Netlink), _) => "a netlink socket",
        (Some(AddressFamily::Packet), _) => "a packet socket",
        (Some(f), _) => return format!("a socket of family {f:?} ({})", cx.link),
        (None, _) => "a socket",
    };
    let at = addr
        .as_ref()
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| s.to_string())
                .or_else(|| a.as_sockaddr_in6().map(|s| s.to_string()))
        })
        .map(|a| format!(" bound to {a}"))
        .unwrap_or_default();
    format!("{what}{at} ({})", cx.link)
}

fn sockaddr(name: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
    let mut sa = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    let n = name.len().min(107);
    for (d, s) in sa.sun_path.iter_mut().zip(&name[..n]) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + n + usize::from(name.first() != Some(&0));
    (sa, len as libc::socklen_t)
}

/// Send `queue` (bytes, split into `messages` for message sockets) from `from`.
fn refill(
    dir: &std::path::Path,
    from: &OwnedFd,
    queue: &Option<stasis_image::BlobRef>,
    messages: &[u32],
) -> Result<(), FilesError> {
    let Some(q) = queue else { return Ok(()) };
    let data = stasis_image::read_blob(dir, q)?;
    let mut f = std::fs::File::from(from.try_clone().map_err(|source| FilesError::Open {
        id: 0,
        op: "dup",
        path: "unix socket".into(),
        source,
    })?);
    let err = |source| FilesError::Open {
        id: 0,
        op: "refill",
        path: "unix socket".into(),
        source,
    };
    if messages.is_empty() {
        f.write_all(&data).map_err(err)?;
    } else {
        let mut off = 0usize;
        for &m in messages {
            let end = off + m as usize;
            f.write(&data[off..end.min(data.len())]).map_err(err)?;
            off = end;
        }
    }
    Ok(())
}

/// The other ends of socket pairs made so far, by the saved socket inode they stand for.
#[derive(Default)]
struct Peers(std::collections::HashMap<u32, OwnedFd>);

pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::UnixSocket {
        ino,
        sock_type,
        state,
        name,
        peer,
        queue,
        messages,
    } = &entry.kind
    else {
        unreachable!("unix::open on another kind")
    };
    let oerr = |op, source: std::io::Error| FilesError::Open {
        id: entry.id,
        op,
        path: format!("unix socket {ino}").into(),
        source,
    };
    let fd = if *state == ESTABLISHED && *peer != 0 {
        if let Some(mine) = cx.state::<Peers>().0.remove(ino) {
            mine
        } else {
            let other = cx
                .all
                .iter()
                .find(|f| matches!(&f.kind, FileKindEntry::UnixSocket { ino: i, .. } if i == peer))
                .ok_or_else(|| FilesError::Changed {
                    id: entry.id,
                    path: format!("unix socket {ino}").into(),
                    what: format!("its peer socket {peer} is not in the image (connected outside the dumped tree)"),
                })?;
            let (a, b) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::try_from(*sock_type as i32)
                    .map_err(|e| oerr("pair", e.into()))?,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| oerr("pair", e.into()))?;
            // What each end had queued to read is sent again by the other end.
            refill(cx.dir, &b, queue, messages)?;
            if let FileKindEntry::UnixSocket {
                queue: q2,
                messages: m2,
                ..
            } = &other.kind
            {
                refill(cx.dir, &a, q2, m2)?;
            }
            cx.state::<Peers>().0.insert(*peer, b);
            a
        }
    } else {
        let raw = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::try_from(*sock_type as i32)
                .map_err(|e| oerr("create", e.into()))?,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| oerr("create", e.into()))?;
        if let Some(n) = name {
            if n.first() != Some(&0) {
                // A path-bound socket leaves its file behind when the process dies.
                let p = std::path::Path::new(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n),
                );
                if std::fs::symlink_metadata(p)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(p);
                }
            }
            let (sa, len) = sockaddr(n);
            stasis_sys::netlink::bind_unix(raw.as_raw_fd(), &sa, len)
                .map_err(|e| oerr("bind", e.into()))?;
        }
        if *state == LISTEN {
            nix::sys::socket::listen(
                &raw,
                nix::sys::socket::Backlog::new(128).expect("valid backlog"),
            )
            .map_err(|e| oerr("listen", e.into()))?;
        }
        raw
    };
    let fl = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))
        .map_err(|e| oerr("set flags of", e.into()))?;
    Ok(fd)
}
