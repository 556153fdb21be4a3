//! File descriptors. Dump walks /proc/PID/fd, finds which fds share one open file description
//! (kcmp), and asks the kind module of each file for an entry; an fd of a kind stasis cannot
//! save fails the dump naming the pid, fd and kind. Restore opens every file in the restorer
//! (kind by kind), parks the fds at high numbers the skeleton inherits, and the skeleton moves
//! them into place with dup3.

pub mod deleted;
pub mod epoll;
pub mod eventfd;
pub mod external;
pub mod fifo;
pub mod inotify;
pub mod lock;
pub mod memfd;
pub mod path;
pub mod pipe;
pub mod pty;
pub mod signalfd;
pub mod tcp;
pub mod timerfd;
pub mod unix;

use stasis_image::{FdEntry, FileEntry, FileKindEntry};
use stasis_procfs::fdinfo::FdInfo;
use stasis_sys::{Errno, Pid};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("pid {pid} fd {fd}: {kind} is not supported yet ({why})")]
    Unsupported {
        pid: i32,
        fd: i32,
        kind: String,
        why: &'static str,
    },
    #[error("pid {pid} fd {fd}: cannot read {what}")]
    Proc {
        pid: i32,
        fd: i32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid} fd {fd}: cannot parse its fdinfo")]
    Parse {
        pid: i32,
        fd: i32,
        #[source]
        source: stasis_procfs::ParseError,
    },
    #[error("pid {pid} fd {fd}: cannot take a copy of the descriptor (pidfd_getfd)")]
    Steal {
        pid: i32,
        fd: i32,
        #[source]
        source: Errno,
    },
    #[error("file {id}: cannot {op} {path}; restore needs it as it was at dump time")]
    Open {
        id: u32,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("file {id}: {path} changed since the dump: {what}")]
    Changed {
        id: u32,
        path: PathBuf,
        what: String,
    },
    #[error(transparent)]
    Image(#[from] stasis_image::ImageError),
}

/// What a kind module gets to dump one fd.
pub struct DumpFd<'a> {
    pub pid: i32,
    pub fd: i32,
    /// The /proc/PID/fd/N link target.
    pub link: &'a str,
    pub info: &'a FdInfo,
    /// A copy of the tracee's descriptor (same open file description: use pread, not read).
    pub stolen: &'a OwnedFd,
    /// Where blobs of this image go.
    pub image_dir: &'a Path,
    pub next_blob: &'a mut u32,
    /// Pipes whose data is already saved.
    pub seen_pipes: &'a mut std::collections::HashSet<u64>,
    /// The AF_UNIX socket table (sock_diag), read once per dump when a socket is met.
    pub unix_table: &'a [stasis_procfs::unixdiag::UnixSock],
    /// Save established TCP connections with TCP_REPAIR (`--tcp-established`).
    pub tcp_established: bool,
    /// Sockets put in repair mode by this dump.
    pub repaired: &'a mut Vec<OwnedFd>,
}

/// What opening files on restore shares between fds.
pub struct OpenCx<'a> {
    pub dir: &'a Path,
    /// New pipes by saved pipe id: (read end, write end).
    pub pipes: std::collections::HashMap<u64, (OwnedFd, OwnedFd)>,
    /// New pty masters, by the saved pty index.
    pub ptys: std::collections::HashMap<u32, OwnedFd>,
    /// FIFOs opened read-write by the restorer, by saved inode (keeps their buffers alive).
    pub fifos: std::collections::HashMap<u64, OwnedFd>,
    /// The other ends of unix socket pairs made so far, by the saved socket inode they stand for.
    pub unix_peers: std::collections::HashMap<u32, OwnedFd>,
    /// Every file of the image (a socket's peer entry is looked up here).
    pub all: &'a [FileEntry],
}

/// The file table of a whole dump, shared by all its processes so that an open file
/// description shared across fork stays one entry.
#[derive(Default)]
pub struct FileTable {
    pub files: Vec<FileEntry>,
    /// (file id, pid, fd, inode) of the first fd seen of each file.
    owners: Vec<(u32, i32, i32, u64)>,
    seen_pipes: std::collections::HashSet<u64>,
    next_blob: u32,
    /// (file id, inode) of files that mappings may refer to (deleted files, memfds).
    pub inodes: Vec<(u32, u64)>,
    /// The AF_UNIX socket table, read when the first socket is met.
    unix: Option<Vec<stasis_procfs::unixdiag::UnixSock>>,
    /// Save established TCP connections with TCP_REPAIR.
    pub tcp_established: bool,
    /// TCP sockets this dump put in repair mode: they stay there while the dump runs (and
    /// through the kill of `--kill`, so the peer sees nothing); see [`FileTable::leave_repair`].
    pub repaired: Vec<OwnedFd>,
}

impl FileTable {
    /// Take every socket this dump put in repair mode out of it again (the process runs on).
    pub fn leave_repair(&mut self) {
        for s in self.repaired.drain(..) {
            use std::os::fd::AsRawFd;
            let _ = stasis_sys::netlink::tcp_setsockopt(
                s.as_raw_fd(),
                stasis_sys::netlink::tcp_repair::TCP_REPAIR,
                &stasis_sys::netlink::tcp_repair::REPAIR_OFF_NO_WP.to_ne_bytes(),
            );
        }
    }
}

/// O_CLOEXEC as fdinfo shows it in `flags`.
const FDINFO_CLOEXEC: u32 = libc::O_CLOEXEC as u32;

/// Dump every fd of `pid` into `table`. `root` says the process is the dump's root, whose
/// stdin/stdout/stderr are outside the tree (external); other processes' fds 0-2 are dumped by
/// kind, or join the root's external entry when they share its description.
pub fn dump_fds(
    pid: i32,
    pidfd: &OwnedFd,
    image_dir: &Path,
    root: bool,
    table: &mut FileTable,
) -> Result<Vec<FdEntry>, FilesError> {
    use std::os::fd::AsRawFd;
    let dir = format!("/proc/{pid}/fd");
    let mut fds: Vec<i32> = std::fs::read_dir(&dir)
        .map_err(|source| FilesError::Proc {
            pid,
            fd: -1,
            what: "/proc/PID/fd",
            source,
        })?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let mut out = Vec::new();
    for fd in fds {
        let link =
            std::fs::read_link(format!("{dir}/{fd}")).map_err(|source| FilesError::Proc {
                pid,
                fd,
                what: "the fd link",
                source,
            })?;
        let link = link.to_string_lossy().into_owned();
        let text =
            std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).map_err(|source| {
                FilesError::Proc {
                    pid,
                    fd,
                    what: "fdinfo",
                    source,
                }
            })?;
        let info = stasis_procfs::fdinfo::parse_fdinfo(&text)
            .map_err(|source| FilesError::Parse { pid, fd, source })?;
        let cloexec = info.flags & FDINFO_CLOEXEC != 0;
        let p = Pid::from_raw(pid);
        // Shared with an fd seen before (dup, or inherited across fork)? Only fds of the same
        // inode can be, so kcmp is asked only about those.
        let shared = table
            .owners
            .iter()
            .filter(|o| o.3 == info.ino)
            .find(|o| stasis_sys::pidfd::kcmp_file(Pid::from_raw(o.1), o.2, p, fd).unwrap_or(false))
            .map(|o| o.0);
        let file_id = match shared {
            Some(id) => id,
            None => {
                let id = 1 + table.files.len() as u32;
                let kind = if root && fd <= 2 {
                    external::dump(&link)
                } else {
                    let stolen = stasis_sys::pidfd::pidfd_getfd(pidfd.as_raw_fd(), fd)
                        .map_err(|source| FilesError::Steal { pid, fd, source })?;
                    if link.starts_with("socket:[") && table.unix.is_none() {
                        let raw = stasis_sys::netlink::unix_diag_dump().map_err(|e| {
                            FilesError::Proc {
                                pid,
                                fd,
                                what: "the unix socket table (sock_diag)",
                                source: e.into(),
                            }
                        })?;
                        table.unix = Some(
                            stasis_procfs::unixdiag::parse_unix_diag(&raw)
                                .map_err(|source| FilesError::Parse { pid, fd, source })?,
                        );
                    }
                    let mut cx = DumpFd {
                        pid,
                        fd,
                        link: &link,
                        info: &info,
                        stolen: &stolen,
                        image_dir,
                        next_blob: &mut table.next_blob,
                        seen_pipes: &mut table.seen_pipes,
                        unix_table: table.unix.as_deref().unwrap_or(&[]),
                        tcp_established: table.tcp_established,
                        repaired: &mut table.repaired,
                    };
                    let kind = dump_kind(&mut cx)?;
                    if matches!(
                        kind,
                        FileKindEntry::Memfd { .. } | FileKindEntry::Deleted { .. }
                    ) {
                        use std::os::unix::fs::MetadataExt;
                        if let Ok(m) = std::fs::File::from(stolen).metadata() {
                            table.inodes.push((id, m.ino()));
                        }
                    }
                    kind
                };
                let mut locks = Vec::new();
                for (k, v) in &info.extra {
                    if k == "lock" {
                        locks.push(lock::parse(v).map_err(|why| FilesError::Unsupported {
                            pid,
                            fd,
                            kind: format!("{link} (lock {})", v.trim()),
                            why,
                        })?);
                    }
                }
                table.files.push(FileEntry {
                    id,
                    flags: info.flags & !FDINFO_CLOEXEC,
                    pos: info.pos,
                    kind,
                    locks,
                });
                table.owners.push((id, pid, fd, info.ino));
                id
            }
        };
        out.push(FdEntry {
            fd,
            cloexec,
            file_id,
        });
    }
    Ok(out)
}

fn dump_kind(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let link = cx.link;
    if link.starts_with("/memfd:") {
        return memfd::dump(cx);
    }
    if pty::is_pty(link) {
        return pty::dump(cx);
    }
    if link.starts_with('/') {
        if link.ends_with(" (deleted)") {
            return deleted::dump(cx);
        }
        return path::dump(cx);
    }
    if link.starts_with("pipe:[") {
        return pipe::dump(cx);
    }
    match link {
        "anon_inode:[eventfd]" => return eventfd::dump(cx),
        "anon_inode:[timerfd]" => return timerfd::dump(cx),
        "anon_inode:[signalfd]" => return signalfd::dump(cx),
        "anon_inode:[eventpoll]" => return epoll::dump(cx),
        "anon_inode:inotify" => return inotify::dump(cx),
        _ => {}
    }
    if link.starts_with("socket:[") {
        let ino: u64 = link
            .trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap_or(0);
        if !cx.unix_table.iter().any(|s| s.ino as u64 == ino) {
            if let Some(t) = tcp::find(cx.pid, ino) {
                return tcp::dump(cx, t);
            }
        }
        let table = cx.unix_table;
        return unix::dump(cx, table);
    }
    let kind = link.split(':').next().unwrap_or(link).to_string();
    Err(FilesError::Unsupported {
        pid: cx.pid,
        fd: cx.fd,
        kind: link.to_string(),
        why: match kind.as_str() {
            "anon_inode" => "event and notification fds come with process trees",
            _ => "unknown descriptor type",
        },
    })
}

/// Open the file of `entry` in the restorer, positioned and flagged as saved.
/// `own_fd` is the fd number the process had it at (for external files).
pub fn open(cx: &mut OpenCx, entry: &FileEntry, own_fd: i32) -> Result<OwnedFd, FilesError> {
    match &entry.kind {
        FileKindEntry::Path { .. } => path::open(entry),
        FileKindEntry::Deleted { .. } => deleted::open(cx.dir, entry),
        FileKindEntry::Memfd { .. } => memfd::open(cx.dir, entry),
        FileKindEntry::Pipe { .. } => pipe::open(cx, entry),
        FileKindEntry::Eventfd { .. } => eventfd::open(entry),
        FileKindEntry::Timerfd { .. } => timerfd::open(entry),
        FileKindEntry::Signalfd { .. } => signalfd::open(entry),
        FileKindEntry::Epoll { .. } => epoll::open(entry),
        FileKindEntry::Inotify { .. } => inotify::open(entry),
        FileKindEntry::UnixSocket { .. } => unix::open(cx, entry),
        FileKindEntry::TcpListen { .. } => tcp::open(entry),
        FileKindEntry::TcpEstablished { .. } => tcp::open_established(cx.dir, entry),
        FileKindEntry::Fifo { .. } => fifo::open(cx, entry),
        FileKindEntry::Pty { .. } => pty::open(cx, entry),
        FileKindEntry::External { .. } => external::open(entry, own_fd),
    }
}

/// Open flags to reopen a file with the saved ones (never create or truncate again).
pub fn reopen_flags(saved: u32) -> i32 {
    (saved as i32)
        & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOCTTY)
        | libc::O_CLOEXEC
}

/// Set the file offset of a reopened file (non-seekable files keep theirs).
pub fn seek(fd: &OwnedFd, pos: u64) {
    use std::os::fd::AsRawFd;
    let _ = nix::unistd::lseek(fd.as_raw_fd(), pos as i64, nix::unistd::Whence::SeekSet);
}

/// Read a whole file through a stolen descriptor without moving its offset.
pub fn read_all_at(fd: &OwnedFd) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(fd.try_clone()?);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read_at(&mut buf, out.len() as u64)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// A deleted file that a process maps but holds no fd of (a POSIX semaphore in /dev/shm, a
/// library replaced while in use): taken through /proc/PID/map_files and saved like a
/// deleted-but-open file, in `table` so every mapping of it (in any process) finds it by
/// inode. `writable` asks for a read-write reopen on restore (shared writable mappings).
pub fn dump_mapped_deleted(
    pid: i32,
    start: u64,
    end: u64,
    writable: bool,
    image_dir: &Path,
    table: &mut FileTable,
) -> Result<(), FilesError> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(format!("/proc/{pid}/map_files/{start:x}-{end:x}")).map_err(
        |source| FilesError::Proc {
            pid,
            fd: -1,
            what: "a mapped deleted file (map_files)",
            source,
        },
    )?;
    let meta = f.metadata().map_err(|source| FilesError::Proc {
        pid,
        fd: -1,
        what: "a mapped deleted file's metadata",
        source,
    })?;
    if table.inodes.iter().any(|(_, ino)| *ino == meta.ino()) {
        return Ok(());
    }
    let link = std::fs::read_link(format!("/proc/{pid}/map_files/{start:x}-{end:x}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fd = OwnedFd::from(f);
    let id = 1 + table.files.len() as u32;
    let mut cx = DumpFd {
        pid,
        fd: -1,
        link: &link,
        info: &FdInfo::default(),
        stolen: &fd,
        image_dir,
        next_blob: &mut table.next_blob,
        seen_pipes: &mut table.seen_pipes,
        unix_table: &[],
        tcp_established: false,
        repaired: &mut table.repaired,
    };
    let kind = if link.starts_with("/memfd:") {
        memfd::dump(&mut cx)?
    } else {
        deleted::dump(&mut cx)?
    };
    table.files.push(FileEntry {
        id,
        flags: if writable {
            libc::O_RDWR as u32
        } else {
            libc::O_RDONLY as u32
        },
        pos: 0,
        kind,
        locks: Vec::new(),
    });
    table.inodes.push((id, meta.ino()));
    Ok(())
}
