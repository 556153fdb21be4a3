//! TCP sockets. A listening socket is saved by address, port and bind options and listens
//! again after restore. Established connections need TCP_REPAIR (`--tcp-established`, not
//! available yet), so a tree holding one is refused at dump time with an error naming the
//! socket; so is a listener with connections waiting to be accepted.

use super::{DumpFd, FilesError};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};

const LISTEN: u8 = 10;
const ESTABLISHED: u8 = 1;

/// The kind: see the module doc.
pub struct Tcp;

/// Connections rebuilt in repair mode, left only once the whole tree stands.
#[derive(Default)]
struct InRepair(Vec<OwnedFd>);

impl super::FileKind for Tcp {
    fn tags(&self) -> &'static [&'static str] {
        &["tcp-listen", "tcp-established"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        socket_ino(cx.link).is_some_and(|ino| {
            !cx.unix_table.iter().any(|s| s.ino as u64 == ino) && find(cx.pid, ino).is_some()
        })
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        let s = socket_ino(cx.link)
            .and_then(|ino| find(cx.pid, ino))
            .ok_or(FilesError::Unsupported {
                pid: cx.pid,
                fd: cx.fd,
                kind: cx.link.to_string(),
                why: "the TCP socket vanished while it was dumped",
            })?;
        dump(cx, s)
    }
    fn open(&self, cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        if !matches!(entry.kind, FileKindEntry::TcpEstablished { .. }) {
            return open(entry);
        }
        let fd = open_established(cx.dir, entry)?;
        let keep = fd.try_clone().map_err(|source| FilesError::Open {
            id: entry.id,
            op: "dup",
            path: "a TCP connection in repair mode".into(),
            source,
        })?;
        cx.state::<InRepair>().0.push(keep);
        Ok(fd)
    }
    fn finish(&self, cx: &mut super::OpenCx) -> Result<(), FilesError> {
        for fd in cx.state::<InRepair>().0.drain(..) {
            leave_repair(fd.as_raw_fd()).map_err(|e| FilesError::Open {
                id: 0,
                op: "take out of repair mode",
                path: "a TCP connection".into(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

/// The inode of a `socket:[N]` link.
fn socket_ino(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

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
    if s.state == ESTABLISHED && cx.tcp_established {
        return dump_established(cx, s);
    }
    if s.state == ESTABLISHED {
        return Err(unsupported(
            "an established TCP connection: dump with --tcp-established to save it with TCP_REPAIR",
        ));
    }
    if s.state != LISTEN {
        return Err(unsupported("a TCP socket that is connecting or closing"));
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

fn u32_of(b: &[u8]) -> u32 {
    u32::from_ne_bytes(b.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]))
}

/// Put the connection in repair mode (it stays there until the dump ends: see
/// [`super::FileTable::repaired`]) and read its state.
fn dump_established(
    cx: &mut DumpFd,
    s: stasis_procfs::net::TcpSock,
) -> Result<FileKindEntry, FilesError> {
    use stasis_sys::netlink::{peek_all, tcp_getsockopt, tcp_repair as tr, tcp_setsockopt};
    let fd = cx.stolen.as_raw_fd();
    let err = |what, e: nix::errno::Errno| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what,
        source: e.into(),
    };
    tcp_setsockopt(fd, tr::TCP_REPAIR, &1i32.to_ne_bytes())
        .map_err(|e| err("TCP_REPAIR (needs CAP_NET_ADMIN)", e))?;
    cx.repaired
        .push(cx.stolen.try_clone().map_err(|source| FilesError::Proc {
            pid: cx.pid,
            fd: cx.fd,
            what: "the socket",
            source,
        })?);
    let queue = |q: i32| -> Result<(u32, Vec<u8>), FilesError> {
        tcp_setsockopt(fd, tr::TCP_REPAIR_QUEUE, &q.to_ne_bytes())
            .map_err(|e| err("TCP_REPAIR_QUEUE", e))?;
        let seq =
            u32_of(&tcp_getsockopt(fd, tr::TCP_QUEUE_SEQ, 4).map_err(|e| err("TCP_QUEUE_SEQ", e))?);
        let data = peek_all(fd, 16 << 20).map_err(|e| err("a TCP queue", e))?;
        Ok((seq, data))
    };
    let (send_seq, send) = queue(tr::SEND_QUEUE)?;
    let (recv_seq, recv) = queue(tr::RECV_QUEUE)?;
    let info = tcp_getsockopt(fd, libc::TCP_INFO, 256).map_err(|e| err("TCP_INFO", e))?;
    let mss = u32_of(&tcp_getsockopt(fd, libc::TCP_MAXSEG, 4).map_err(|e| err("TCP_MAXSEG", e))?);
    let timestamp = u32_of(&tcp_getsockopt(fd, tr::TCP_TIMESTAMP, 4).unwrap_or_default());
    let w =
        tcp_getsockopt(fd, tr::TCP_REPAIR_WINDOW, 20).map_err(|e| err("TCP_REPAIR_WINDOW", e))?;
    let mut window = [0u32; 5];
    for (i, v) in window.iter_mut().enumerate() {
        *v = u32_of(&w[i * 4..]);
    }
    let mut blob = |data: Vec<u8>| -> Result<Option<stasis_image::BlobRef>, FilesError> {
        if data.is_empty() {
            return Ok(None);
        }
        let name = format!("blob-{}", *cx.next_blob);
        *cx.next_blob += 1;
        Ok(Some(stasis_image::write_blob(cx.image_dir, &name, &data)?))
    };
    Ok(FileKindEntry::TcpEstablished {
        local: s.local,
        local_port: s.local_port,
        remote: s.remote,
        remote_port: s.remote_port,
        send_seq,
        recv_seq,
        send_queue: blob(send)?,
        recv_queue: blob(recv)?,
        mss,
        options: info.get(5).copied().unwrap_or(0),
        snd_wscale: info.get(6).map_or(0, |b| b & 0xf),
        rcv_wscale: info.get(6).map_or(0, |b| b >> 4),
        timestamp,
        window,
    })
}

fn sockaddr(addr: &[u8], port: u16) -> Box<dyn socket::SockaddrLike> {
    if addr.len() == 16 {
        let mut a = [0u8; 16];
        a.copy_from_slice(addr);
        Box::new(SockaddrIn6::from(std::net::SocketAddrV6::new(
            a.into(),
            port,
            0,
            0,
        )))
    } else {
        Box::new(SockaddrIn::new(addr[0], addr[1], addr[2], addr[3], port))
    }
}

/// Rebuild an established connection in repair mode (no packet is sent); the caller takes it
/// out of repair mode with [`leave_repair`] once all connections exist.
pub fn open_established(dir: &std::path::Path, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    use stasis_sys::netlink::{tcp_repair as tr, tcp_setsockopt};
    let FileKindEntry::TcpEstablished {
        local,
        local_port,
        remote,
        remote_port,
        send_seq,
        recv_seq,
        send_queue,
        recv_queue,
        mss,
        options,
        snd_wscale,
        rcv_wscale,
        timestamp,
        window,
    } = &entry.kind
    else {
        unreachable!("tcp::open_established on another kind")
    };
    let oerr = |op, source: nix::errno::Errno| FilesError::Open {
        id: entry.id,
        op,
        path: format!("TCP connection port {local_port} -> {remote_port}").into(),
        source: source.into(),
    };
    let fam = if local.len() == 16 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket::socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| oerr("create", e))?;
    let raw = fd.as_raw_fd();
    tcp_setsockopt(raw, tr::TCP_REPAIR, &1i32.to_ne_bytes())
        .map_err(|e| oerr("enter repair mode (needs CAP_NET_ADMIN) for", e))?;
    // The saved sequence numbers are those after the queued bytes; refilling a queue in
    // repair mode advances them again, so each starts where its queue starts.
    let qlen = |b: &Option<stasis_image::BlobRef>| b.as_ref().map_or(0, |b| b.len as u32);
    for (q, seq) in [
        (tr::SEND_QUEUE, send_seq.wrapping_sub(qlen(send_queue))),
        (tr::RECV_QUEUE, recv_seq.wrapping_sub(qlen(recv_queue))),
    ] {
        tcp_setsockopt(raw, tr::TCP_REPAIR_QUEUE, &q.to_ne_bytes())
            .map_err(|e| oerr("select a queue of", e))?;
        tcp_setsockopt(raw, tr::TCP_QUEUE_SEQ, &seq.to_ne_bytes())
            .map_err(|e| oerr("set a sequence number of", e))?;
    }
    socket::bind(raw, &*sockaddr(local, *local_port)).map_err(|e| oerr("bind", e))?;
    socket::connect(raw, &*sockaddr(remote, *remote_port))
        .map_err(|e| oerr("connect (repair)", e))?;
    let mut opts: Vec<u8> = Vec::new();
    let mut opt = |code: u32, val: u32| {
        opts.extend_from_slice(&code.to_ne_bytes());
        opts.extend_from_slice(&val.to_ne_bytes());
    };
    opt(2, *mss); // TCPOPT_MSS
    if options & 4 != 0 {
        opt(3, *snd_wscale as u32 | (*rcv_wscale as u32) << 16); // TCPOPT_WINDOW
    }
    if options & 2 != 0 {
        opt(4, 0); // TCPOPT_SACK_PERM
    }
    if options & 1 != 0 {
        opt(8, 0); // TCPOPT_TIMESTAMP
    }
    tcp_setsockopt(raw, tr::TCP_REPAIR_OPTIONS, &opts)
        .map_err(|e| oerr("set the options of", e))?;
    if options & 1 != 0 {
        tcp_setsockopt(raw, tr::TCP_TIMESTAMP, &timestamp.to_ne_bytes())
            .map_err(|e| oerr("set the timestamp of", e))?;
    }
    for (q, blob) in [(tr::SEND_QUEUE, send_queue), (tr::RECV_QUEUE, recv_queue)] {
        let Some(b) = blob else { continue };
        let data = stasis_image::read_blob(dir, b)?;
        tcp_setsockopt(raw, tr::TCP_REPAIR_QUEUE, &q.to_ne_bytes())
            .map_err(|e| oerr("select a queue of", e))?;
        let mut off = 0;
        while off < data.len() {
            let n = nix::sys::socket::send(raw, &data[off..], socket::MsgFlags::empty())
                .map_err(|e| oerr("refill a queue of", e))?;
            off += n;
        }
    }
    // The window last: the kernel checks it against the receive sequence, which the
    // refilled receive queue has just advanced.
    let w: Vec<u8> = window.iter().flat_map(|v| v.to_ne_bytes()).collect();
    tcp_setsockopt(raw, tr::TCP_REPAIR_WINDOW, &w).map_err(|e| oerr("set the window of", e))?;
    // Repair mode is left only once every socket of the image exists (see
    // `leave_repair`): a window probe to a peer not rebuilt yet would be answered by a reset.
    let fl = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
    nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_SETFL(fl))
        .map_err(|e| oerr("set flags of", e))?;
    Ok(fd)
}

/// Leave repair mode with a window probe, so both ends resynchronise.
pub fn leave_repair(fd: std::os::fd::RawFd) -> Result<(), nix::errno::Errno> {
    stasis_sys::netlink::tcp_setsockopt(
        fd,
        stasis_sys::netlink::tcp_repair::TCP_REPAIR,
        &0i32.to_ne_bytes(),
    )
}
