//! File descriptors. Dump walks /proc/PID/fd, finds which fds share one open file description
//! (kcmp), and asks the kind that claims each file (see [`KINDS`]) for an entry; an fd no kind
//! claims fails the dump naming the pid, fd and what it is. Restore opens every file in the
//! restorer through the kind named by its entry's tag, parks the fds at high numbers the
//! skeleton inherits, and the skeleton moves them into place with dup3; then each kind gets
//! its after-placed step inside the process and a finishing step once the tree stands.
//!
//! Adding a kind: its module here (a unit struct implementing [`FileKind`]), its entry in
//! stasis-image (variant, tag, describe), one line in [`KINDS`]. Nothing else names it.

pub mod deleted;
pub mod epoll;
pub mod eventfd;
pub mod external;
pub mod fanotify;
pub mod fifo;
pub mod ghost;
pub mod inet;
pub mod inotify;
pub mod lock;
pub mod memfd;
pub mod nsfs;
pub mod path;
pub mod pidfd;
pub mod pipe;
pub mod pty;
pub mod signalfd;
pub mod tcp;
pub mod timerfd;
pub mod unix;

use crate::scratch::Scratch;
use crate::tracee::{PtraceTracee, Tracee, TraceeError};
use stasis_image::{FdEntry, FileEntry, FileKindEntry, LockEntry, OwnerEntry, ProcessEntry};
use stasis_procfs::fdinfo::FdInfo;
use stasis_sys::{Errno, Pid};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Every file kind, in the order they are asked whether they claim an fd (the first that does
/// dumps it): the more specific before the more general (a memfd or a deleted file before a
/// file by path).
pub static KINDS: &[&dyn FileKind] = &[
    &memfd::Memfd,
    &pty::Pty,
    &ghost::Ghost,
    &deleted::Deleted,
    &fifo::Fifo,
    &path::ByPath,
    &pipe::Pipe,
    &eventfd::Eventfd,
    &timerfd::Timerfd,
    &signalfd::Signalfd,
    &epoll::Epoll,
    &inotify::Inotify,
    &fanotify::Fanotify,
    &tcp::Tcp,
    &inet::Unbound,
    &unix::Unix,
    &pidfd::Pidfd,
    &nsfs::Nsfs,
    &external::External,
];

/// One kind of file: how an fd of it is saved and rebuilt. Per-kind restore state lives in the
/// kind's module (see [`OpenCx::state`]).
pub trait FileKind: Sync {
    /// The entry tags ("type" in the image) this kind writes and rebuilds.
    fn tags(&self) -> &'static [&'static str];
    /// Whether the fd described by `cx` is of this kind.
    fn claims(&self, cx: &DumpFd) -> bool;
    /// Save the fd.
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError>;
    /// For fds 0-2 of the dump's root: whether this file leads outside the dumped tree (a pipe
    /// whose other end no process of the tree holds), so that restore connects the restore
    /// command's own fd instead of rebuilding it.
    fn leads_outside(&self, _entry: &FileEntry, _all: &[FileEntry]) -> bool {
        false
    }
    /// Open the file in the restorer, positioned and flagged as saved.
    fn open(&self, cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError>;
    /// Whether the file is made inside each process that holds it, when its fds are placed,
    /// instead of by the restorer beforehand (it names processes of the tree, which do not
    /// exist yet when the restorer opens files).
    fn opens_inside(&self, _entry: &FileEntry) -> bool {
        false
    }
    /// Make the file inside the process (see [`FileKind::opens_inside`]); returns the fd
    /// number it got there, or None when what it names does not exist yet (a process forked
    /// later in the restore): it is made again once the whole tree exists.
    fn open_inside(
        &self,
        t: &mut PtraceTracee,
        _s: Scratch,
        _entry: &FileEntry,
    ) -> Result<Option<i32>, TraceeError> {
        Err(TraceeError::Syscall {
            pid: t.pid(),
            name: "opening a file inside the process (its kind cannot)",
            source: Errno::ENOTSUP,
        })
    }
    /// Inside the first process that holds the file, at its first fd `fd`, once all that
    /// process's fds are in place: what the kernel keys by the process's own fd numbers
    /// (epoll registrations).
    fn placed(
        &self,
        _t: &mut PtraceTracee,
        _s: Scratch,
        _entry: &FileEntry,
        _fd: i32,
    ) -> Result<(), TraceeError> {
        Ok(())
    }
    /// In the restorer, once every process of the tree is rebuilt and before any runs (TCP
    /// connections leave repair mode).
    fn finish(&self, _cx: &mut OpenCx) -> Result<(), FilesError> {
        Ok(())
    }
}

/// The kind that rebuilds entries tagged `tag`.
fn kind_of(entry: &FileKindEntry) -> &'static dyn FileKind {
    let tag = entry.tag();
    *KINDS
        .iter()
        .find(|k| k.tags().contains(&tag))
        .expect("every entry tag has its kind in KINDS")
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("pid {pid} fd {fd}: {kind} cannot be saved: {why}")]
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
    #[error("pid {pid} fd {fd}: the deleted file {path} holds {size} bytes, more than --ghost-limit {limit}; raise the limit to save it")]
    GhostLimit {
        pid: i32,
        fd: i32,
        path: String,
        size: u64,
        limit: u64,
    },
    #[error("pid {pid} fd {fd}: {step} failed")]
    Placed {
        pid: i32,
        fd: i32,
        step: &'static str,
        #[source]
        source: TraceeError,
    },
    #[error(transparent)]
    Image(#[from] stasis_image::ImageError),
}

/// What a kind gets to dump one fd.
pub struct DumpFd<'a> {
    pub pid: i32,
    pub fd: i32,
    /// The /proc/PID/fd/N link target.
    pub link: &'a str,
    /// st_mode of the file (file type and permissions).
    pub mode: u32,
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
    /// The largest deleted file whose contents may be saved (`--ghost-limit`).
    pub ghost_limit: Option<u64>,
    /// Every pid and tid of the dumped tree.
    pub tree: &'a [i32],
    /// Link deleted files that still have other links back (`--link-remap`): the links made.
    pub link_remap: Option<&'a mut Vec<PathBuf>>,
}

impl DumpFd<'_> {
    /// The file type bits of `mode` (S_IFREG, S_IFIFO...).
    pub fn file_type(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    /// The next blob name of the image.
    pub fn blob_name(&mut self) -> String {
        let name = format!("blob-{}", *self.next_blob);
        *self.next_blob += 1;
        name
    }
}

/// A file found in a process, before its kind dumps it.
struct Found<'a> {
    pid: i32,
    /// Its fd, or -1 for a file reached otherwise (a mapping, a working directory).
    fd: i32,
    link: &'a str,
    mode: u32,
    info: &'a FdInfo,
    stolen: &'a OwnedFd,
}

/// A descriptor of the restore command that stands in for a file of the image
/// (`--inherit-fd fd[N]:NAME`, in the spirit of CRIU's option of that name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InheritFd {
    /// The restore command's fd.
    pub fd: RawFd,
    /// The file's name at dump time, as /proc/PID/fd showed it (`pipe:[123]`, a path).
    pub name: String,
}

impl std::str::FromStr for InheritFd {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("--inherit-fd takes fd[N]:NAME (for example fd[3]:pipe:[1234]), not {s:?}");
        let rest = s.strip_prefix("fd[").ok_or_else(bad)?;
        let (n, name) = rest.split_once("]:").ok_or_else(bad)?;
        let fd = n.parse().map_err(|_| bad())?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok(InheritFd {
            fd,
            name: name.to_string(),
        })
    }
}

/// What opening files on restore shares between fds: the image, and each kind's own state
/// (new pipes by id, pty masters, ...), which only that kind reads.
pub struct OpenCx<'a> {
    pub dir: &'a Path,
    /// Every file of the image (a socket's peer entry is looked up here).
    pub all: &'a [FileEntry],
    /// The fd number of the first descriptor the file being opened is for (-1: a mapping's).
    pub fd: i32,
    /// Files the restore command hands in (`--inherit-fd`).
    pub inherit: &'a [InheritFd],
    state: HashMap<TypeId, Box<dyn Any>>,
}

impl<'a> OpenCx<'a> {
    pub fn new(dir: &'a Path, all: &'a [FileEntry], inherit: &'a [InheritFd]) -> Self {
        OpenCx {
            dir,
            all,
            fd: -1,
            inherit,
            state: HashMap::new(),
        }
    }

    /// A kind's own restore state, made on first use.
    pub fn state<T: Default + 'static>(&mut self) -> &mut T {
        self.state
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("state is keyed by its type")
    }
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
    /// The largest deleted file whose contents may be saved (`--ghost-limit`).
    pub ghost_limit: Option<u64>,
    /// Save file locks (`--file-locks`); without it a lock fails the dump.
    pub file_locks: bool,
    /// Every pid and tid of the dumped tree (a pidfd must name one of them).
    pub tree: Vec<i32>,
    /// Link deleted files that still have other links back (`--link-remap`).
    pub link_remap: bool,
    /// The links `--link-remap` made: removed again if the dump fails.
    pub remaps: Vec<PathBuf>,
    /// (file id, fd) of the root's fds 0-2 that were dumped by kind: [`FileTable::settle_stdio`]
    /// decides whether they lead outside the tree.
    stdio: Vec<(u32, i32)>,
}

impl FileTable {
    /// Take every socket this dump put in repair mode out of it again (the process runs on).
    pub fn leave_repair(&mut self) {
        for s in self.repaired.drain(..) {
            let _ = stasis_sys::netlink::tcp_setsockopt(
                s.as_raw_fd(),
                stasis_sys::netlink::tcp_repair::TCP_REPAIR,
                &stasis_sys::netlink::tcp_repair::REPAIR_OFF_NO_WP.to_ne_bytes(),
            );
        }
    }

    /// What a kind gets to dump one file of `pid`, found at its fd `fd` (-1: not through an fd,
    /// so no socket table and no TCP repair apply).
    fn dump_cx<'a>(&'a mut self, of: Found<'a>, image_dir: &'a Path) -> DumpFd<'a> {
        let by_fd = of.fd >= 0;
        DumpFd {
            pid: of.pid,
            fd: of.fd,
            link: of.link,
            mode: of.mode,
            info: of.info,
            stolen: of.stolen,
            image_dir,
            next_blob: &mut self.next_blob,
            seen_pipes: &mut self.seen_pipes,
            unix_table: if by_fd {
                self.unix.as_deref().unwrap_or(&[])
            } else {
                &[]
            },
            tcp_established: by_fd && self.tcp_established,
            repaired: &mut self.repaired,
            ghost_limit: self.ghost_limit,
            tree: &self.tree,
            link_remap: self.link_remap.then_some(&mut self.remaps),
        }
    }

    /// The dump failed: remove the links `--link-remap` made.
    pub fn drop_remaps(&mut self) {
        for p in self.remaps.drain(..) {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Once every process is dumped: the root's stdin, stdout and stderr that lead outside the
    /// tree (a pipe from the shell that started it) become external, and what was saved of
    /// them is dropped (their contents are not the job's).
    pub fn settle_stdio(&mut self, image_dir: &Path) {
        for (id, fd) in std::mem::take(&mut self.stdio) {
            let Some(i) = self.files.iter().position(|f| f.id == id) else {
                continue;
            };
            let e = &self.files[i];
            if !kind_of(&e.kind).leads_outside(e, &self.files) {
                continue;
            }
            if let FileKindEntry::Pipe { data: Some(b), .. } = &e.kind {
                let _ = std::fs::remove_file(image_dir.join(&b.file));
            }
            let what = e.link.clone().unwrap_or_default();
            self.files[i].kind = FileKindEntry::External { what, fd: Some(fd) };
        }
    }
}

/// Read every event queued on `fd` (inotify, fanotify) without blocking, handing each read's
/// bytes to `each`: its description may be blocking, so read only while poll says there is
/// something.
fn drain_events(fd: &OwnedFd, mut each: impl FnMut(&[u8])) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut p, PollTimeout::ZERO) {
            Ok(1)
                if p[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLIN)) => {}
            _ => return,
        }
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => each(&buf[..n]),
            _ => return,
        }
    }
}

/// O_CLOEXEC as fdinfo shows it in `flags`.
const FDINFO_CLOEXEC: u32 = libc::O_CLOEXEC as u32;

/// A terminal that is not a pty of the tree's own: /dev/pts/N, /dev/ttyN, /dev/console.
fn is_terminal(link: &str, mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFCHR
        && (link.starts_with("/dev/pts/") || link.starts_with("/dev/tty") || link == "/dev/console")
}

/// Whether fd `fd` of `pid` is the very description of one of our own stdin, stdout and
/// stderr: the job inherited it from whoever runs the dump (under `stasis run`, the
/// supervisor's, which the next run's supervisor replaces), so it is outside the tree.
fn shares_our_stdio(pid: i32, fd: i32) -> bool {
    let me = Pid::this();
    (0..=2)
        .any(|ours| stasis_sys::pidfd::kcmp_file(me, ours, Pid::from_raw(pid), fd).unwrap_or(false))
}

/// Dump every fd of `pid` into `table`. `root` says the process is the dump's root: its
/// stdin, stdout and stderr are saved as what they are (a log file, /dev/null, a FIFO), except
/// a terminal, a socket, a description the dump command itself has as its stdio, and a pipe
/// whose other end is outside the tree (see [`FileTable::settle_stdio`]): those are external,
/// and restore hands the restore command's own. Other processes' fds 0-2 join the root's entry when they share its description.
pub fn dump_fds(
    pid: i32,
    pidfd: &OwnedFd,
    image_dir: &Path,
    root: bool,
    table: &mut FileTable,
) -> Result<Vec<FdEntry>, FilesError> {
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
                let (kind, owner) =
                    dump_one(pid, fd, pidfd, &link, &info, image_dir, root, id, table)?;
                let mut locks = Vec::new();
                for (k, v) in &info.extra {
                    if k == "lock" {
                        if !table.file_locks {
                            return Err(FilesError::Unsupported {
                                pid,
                                fd,
                                kind: format!("{link} (lock {})", v.trim()),
                                why: "file locks are saved only with --file-locks (a lock may guard a file that processes outside the tree share)",
                            });
                        }
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
                    link: Some(link.clone()),
                    owner,
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

/// The entry of one open file description, first seen at `fd` of `pid`.
#[allow(clippy::too_many_arguments)]
fn dump_one(
    pid: i32,
    fd: i32,
    pidfd: &OwnedFd,
    link: &str,
    info: &FdInfo,
    image_dir: &Path,
    root: bool,
    id: u32,
    table: &mut FileTable,
) -> Result<(FileKindEntry, Option<OwnerEntry>), FilesError> {
    let stolen = stasis_sys::pidfd::pidfd_getfd(pidfd.as_raw_fd(), fd)
        .map_err(|source| FilesError::Steal { pid, fd, source })?;
    let owner = stasis_sys::fown::owner(stolen.as_raw_fd())
        .ok()
        .filter(|o| o.pid != 0 || o.signum != 0)
        .map(|o| OwnerEntry {
            kind: o.kind,
            pid: o.pid,
            signum: o.signum,
            uid: o.uid,
            euid: o.euid,
        });
    let mode = nix::sys::stat::fstat(stolen.as_raw_fd())
        .map(|st| st.st_mode)
        .map_err(|e| FilesError::Proc {
            pid,
            fd,
            what: "the file's type (fstat)",
            source: e.into(),
        })?;
    let stdio = root && fd <= 2;
    if stdio
        && (is_terminal(link, mode)
            || mode & libc::S_IFMT == libc::S_IFSOCK
            || shares_our_stdio(pid, fd))
    {
        return Ok((
            FileKindEntry::External {
                what: link.to_string(),
                fd: Some(fd),
            },
            None,
        ));
    }
    if link.starts_with("socket:[") && table.unix.is_none() {
        let raw = stasis_sys::netlink::unix_diag_dump().map_err(|e| FilesError::Proc {
            pid,
            fd,
            what: "the unix socket table (sock_diag)",
            source: e.into(),
        })?;
        table.unix =
            Some(
                stasis_procfs::unixdiag::parse_unix_diag(&raw)
                    .map_err(|source| FilesError::Parse { pid, fd, source })?,
            );
    }
    let mut cx = table.dump_cx(
        Found {
            pid,
            fd,
            link,
            mode,
            info,
            stolen: &stolen,
        },
        image_dir,
    );
    let kind = KINDS
        .iter()
        .find(|k| k.claims(&cx))
        .ok_or_else(|| FilesError::Unsupported {
            pid,
            fd,
            kind: link.to_string(),
            why: "stasis does not know this kind of descriptor",
        })?
        .dump(&mut cx)?;
    if matches!(
        kind,
        FileKindEntry::Memfd { .. } | FileKindEntry::Deleted { .. } | FileKindEntry::Ghost { .. }
    ) {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::File::from(stolen).metadata() {
            table.inodes.push((id, m.ino()));
        }
    }
    if stdio {
        table.stdio.push((id, fd));
    }
    Ok((kind, owner))
}

/// Open the file of `entry` in the restorer, positioned and flagged as saved; `cx.fd` is the
/// first fd number it is opened for. A file the restore command hands in with `--inherit-fd`
/// is that descriptor instead.
pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let name = match &entry.kind {
        FileKindEntry::External { what, .. } => Some(what.as_str()),
        _ => entry.link.as_deref(),
    };
    if let Some(i) = name.and_then(|n| cx.inherit.iter().find(|i| i.name == n)) {
        return stasis_sys::pidfd::dup_at_least(i.fd, 0).map_err(|e| FilesError::Open {
            id: entry.id,
            op: "take the restore command's descriptor (--inherit-fd) for",
            path: format!("fd {} ({})", i.fd, i.name).into(),
            source: e.into(),
        });
    }
    kind_of(&entry.kind).open(cx, entry)
}

/// Whether `entry` is made inside the processes that hold it (see [`FileKind::opens_inside`]):
/// the restorer does not open it.
pub fn opens_inside(entry: &FileEntry) -> bool {
    kind_of(&entry.kind).opens_inside(entry)
}

/// Inside process `p`, after the restorer's files are in place: the fds `fds` of files made
/// inside the process, each file made once and its other fds in this process dup'ed from it.
/// Returns the fds of files that cannot be made yet (see [`FileKind::open_inside`]); with
/// `last` (the whole tree exists) that is an error instead.
pub fn place_inside(
    t: &mut PtraceTracee,
    s: Scratch,
    all: &[FileEntry],
    p: &ProcessEntry,
    fds: &[FdEntry],
    last: bool,
) -> Result<Vec<FdEntry>, FilesError> {
    let mut made: Vec<(u32, i32)> = Vec::new();
    let mut later = Vec::new();
    for fd in fds {
        let Some(f) = all.iter().find(|f| f.id == fd.file_id) else {
            continue;
        };
        if !opens_inside(f) {
            continue;
        }
        let err = |step, source| FilesError::Placed {
            pid: p.pid,
            fd: fd.fd,
            step,
            source,
        };
        let cloexec = if fd.cloexec {
            libc::O_CLOEXEC as u64
        } else {
            0
        };
        if let Some(&(_, first)) = made.iter().find(|m| m.0 == f.id) {
            t.syscall(
                "dup3",
                libc::SYS_dup3,
                [first as u64, fd.fd as u64, cloexec, 0, 0, 0],
            )
            .map_err(|e| err("sharing the file with its first fd", e))?;
            continue;
        }
        if later.iter().any(|l: &FdEntry| l.file_id == f.id) {
            later.push(fd.clone());
            continue;
        }
        let Some(got) = kind_of(&f.kind)
            .open_inside(t, s, f)
            .map_err(|e| err("making the file inside the process", e))?
        else {
            if last {
                return Err(FilesError::Changed {
                    id: f.id,
                    path: f.kind.describe().into(),
                    what: format!(
                        "pid {} fd {}: what it names does not exist after restore",
                        p.pid, fd.fd
                    ),
                });
            }
            later.push(fd.clone());
            continue;
        };
        if got == fd.fd {
            let fdflags = if fd.cloexec {
                libc::FD_CLOEXEC as u64
            } else {
                0
            };
            t.syscall(
                "fcntl(F_SETFD)",
                libc::SYS_fcntl,
                [got as u64, libc::F_SETFD as u64, fdflags, 0, 0, 0],
            )
            .map_err(|e| err("setting close-on-exec", e))?;
        } else {
            t.syscall(
                "dup3",
                libc::SYS_dup3,
                [got as u64, fd.fd as u64, cloexec, 0, 0, 0],
            )
            .and_then(|_| t.syscall("close", libc::SYS_close, [got as u64, 0, 0, 0, 0, 0]))
            .map_err(|e| err("moving the file to its fd", e))?;
        }
        made.push((f.id, fd.fd));
    }
    Ok(later)
}

/// Inside process `p` (traced as `t`), once its fds are in place: each kind's after-placed
/// step, for the files this process holds first in the tree (at the first fd it holds them).
pub fn placed(
    t: &mut PtraceTracee,
    s: Scratch,
    processes: &[ProcessEntry],
    all: &[FileEntry],
    p: &ProcessEntry,
) -> Result<(), FilesError> {
    for (i, fd) in p.fds.iter().enumerate() {
        if p.fds[..i].iter().any(|g| g.file_id == fd.file_id) {
            continue;
        }
        let first = processes
            .iter()
            .find(|q| q.fds.iter().any(|g| g.file_id == fd.file_id))
            .map(|q| q.pid);
        if first != Some(p.pid) {
            continue;
        }
        let Some(f) = all.iter().find(|f| f.id == fd.file_id) else {
            continue;
        };
        kind_of(&f.kind)
            .placed(t, s, f, fd.fd)
            .map_err(|source| FilesError::Placed {
                pid: p.pid,
                fd: fd.fd,
                step: "setting up the file after its fds were placed",
                source,
            })?;
        if let Some(o) = &f.owner {
            set_owner(t, s, fd.fd, o).map_err(|source| FilesError::Placed {
                pid: p.pid,
                fd: fd.fd,
                step: "setting its owner (F_SETOWN_EX, F_SETSIG)",
                source,
            })?;
        }
        if f.flags & libc::O_ASYNC as u32 != 0 {
            // open() ignores O_ASYNC: F_SETFL registers the file for I/O signals, under the
            // fd number it is called with (the signal's si_fd): the process's own.
            let set = t
                .syscall(
                    "fcntl(F_GETFL)",
                    libc::SYS_fcntl,
                    [fd.fd as u64, libc::F_GETFL as u64, 0, 0, 0, 0],
                )
                .and_then(|fl| {
                    t.syscall(
                        "fcntl(F_SETFL, O_ASYNC)",
                        libc::SYS_fcntl,
                        [
                            fd.fd as u64,
                            libc::F_SETFL as u64,
                            fl | libc::O_ASYNC as u64,
                            0,
                            0,
                            0,
                        ],
                    )
                });
            set.map_err(|source| FilesError::Placed {
                pid: p.pid,
                fd: fd.fd,
                step: "setting O_ASYNC",
                source,
            })?;
        }
    }
    Ok(())
}

/// Give the description at `fd` its owner, as the process whose credentials the owner was set
/// with (the kernel checks them when it signals the owner; the process still has ours, so it
/// can take those and come back).
fn set_owner(t: &mut PtraceTracee, s: Scratch, fd: i32, o: &OwnerEntry) -> Result<(), TraceeError> {
    let me = nix::unistd::getresuid()
        .map(|u| [u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw()])
        .unwrap_or([0; 3]);
    let as_setter = o.uid != me[0] || o.euid != me[1];
    if as_setter {
        t.syscall(
            "setresuid (as the owner's setter)",
            libc::SYS_setresuid,
            [o.uid as u64, o.euid as u64, me[2] as u64, 0, 0, 0],
        )?;
    }
    let mut ex = Vec::with_capacity(8);
    ex.extend_from_slice(&o.kind.to_le_bytes());
    ex.extend_from_slice(&o.pid.to_le_bytes());
    t.write_mem(s.at(5120), &ex)?;
    // F_SETOWN_EX = 15, F_SETSIG = 10.
    let set = t
        .syscall(
            "fcntl(F_SETOWN_EX)",
            libc::SYS_fcntl,
            [fd as u64, 15, s.at(5120), 0, 0, 0],
        )
        .and_then(|_| {
            t.syscall(
                "fcntl(F_SETSIG)",
                libc::SYS_fcntl,
                [fd as u64, 10, o.signum as u64, 0, 0, 0],
            )
        });
    if as_setter {
        t.syscall(
            "setresuid (back)",
            libc::SYS_setresuid,
            [me[0] as u64, me[1] as u64, me[2] as u64, 0, 0, 0],
        )?;
    }
    set.map(drop)
}

/// Inside process `p`, once its fds are in place: the flock and OFD locks and the leases of
/// the descriptions it took them on (the lock's owner, a lease's setter; else the first
/// process holding the description).
pub fn take_description_locks(
    t: &mut PtraceTracee,
    s: Scratch,
    processes: &[ProcessEntry],
    all: &[FileEntry],
    p: &ProcessEntry,
) -> Result<(), FilesError> {
    for (i, fd) in p.fds.iter().enumerate() {
        if p.fds[..i].iter().any(|g| g.file_id == fd.file_id) {
            continue;
        }
        let Some(f) = all.iter().find(|f| f.id == fd.file_id) else {
            continue;
        };
        let holders: Vec<i32> = processes
            .iter()
            .filter(|q| q.zombie.is_none() && q.fds.iter().any(|g| g.file_id == f.id))
            .map(|q| q.pid)
            .collect();
        let mine: Vec<LockEntry> = f
            .locks
            .iter()
            .filter(|l| l.kind != "posix")
            .filter(|l| {
                let taker = if holders.contains(&l.pid) {
                    l.pid
                } else {
                    holders.first().copied().unwrap_or(p.pid)
                };
                taker == p.pid
            })
            .cloned()
            .collect();
        lock::take_on_description(t, s, fd.fd, &mine).map_err(|source| FilesError::Placed {
            pid: p.pid,
            fd: fd.fd,
            step: "taking its flock/OFD locks (someone else may hold a conflicting one now)",
            source,
        })?;
        let signum = f.owner.map_or(0, |o| o.signum);
        for l in mine.iter().filter(|l| l.kind == "lease") {
            lock::take_lease(t, s, fd.fd, f.flags as i32 & libc::O_ACCMODE, signum, l).map_err(
                |source| FilesError::Placed {
                    pid: p.pid,
                    fd: fd.fd,
                    step: "setting its lease (the file may be open elsewhere now)",
                    source,
                },
            )?;
            // Breaking a lease again made this process the owner for the moment (and
            // setting one may make the setter the owner): the saved owner again.
            if let Some(o) = &f.owner {
                set_owner(t, s, fd.fd, o).map_err(|source| FilesError::Placed {
                    pid: p.pid,
                    fd: fd.fd,
                    step: "setting its owner again after its lease",
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// Inside process `p`, once the parked copies of its fds are closed: its POSIX record locks
/// (closing any fd of a file drops the process's POSIX locks on it, so they come last).
pub fn take_posix_locks(
    t: &mut PtraceTracee,
    s: Scratch,
    all: &[FileEntry],
    p: &ProcessEntry,
) -> Result<(), FilesError> {
    for fd in &p.fds {
        if let Some(f) = all.iter().find(|f| f.id == fd.file_id) {
            lock::take_posix(t, s, p.pid, fd.fd, &f.locks).map_err(|source| {
                FilesError::Placed {
                    pid: p.pid,
                    fd: fd.fd,
                    step: "taking its POSIX locks",
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// In the restorer, once the whole tree is rebuilt: each kind's finishing step.
pub fn finish(cx: &mut OpenCx) -> Result<(), FilesError> {
    for k in KINDS {
        k.finish(cx)?;
    }
    Ok(())
}

/// Where restore makes a file that was deleted (to open it and delete it again): its own path
/// when that is free and its directory exists, so /proc/PID/fd shows the same name; else a
/// name of ours in its directory, or in the nearest directory above that still exists (the
/// directory may have been removed too).
pub fn place_for_deleted(path: &Path, id: u32) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new("/"));
    if parent.is_dir() && std::fs::symlink_metadata(path).is_err() {
        return path.to_path_buf();
    }
    let dir = parent
        .ancestors()
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"));
    dir.join(format!(".stasis-deleted-{}-{id}", std::process::id()))
}

/// Open flags to reopen a file with the saved ones (never create or truncate again).
pub fn reopen_flags(saved: u32) -> i32 {
    let mut f = saved as i32;
    // An O_TMPFILE file is reopened by the path it is recreated at: a plain open.
    if f & libc::O_TMPFILE == libc::O_TMPFILE {
        f &= !libc::O_TMPFILE;
    }
    f & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOCTTY)
        | libc::O_CLOEXEC
}

/// Set the file offset of a reopened file (non-seekable files keep theirs).
pub fn seek(fd: &OwnedFd, pos: u64) {
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

/// The PID N of a working directory that is /proc/N of an exited process (what
/// /proc/PID/cwd reads then: "/proc/N (deleted)").
pub fn dead_proc_dir(cwd: &str) -> Option<i32> {
    let n = cwd.strip_prefix("/proc/")?.strip_suffix(" (deleted)")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The working directory of `pid` when it was removed: saved as a ghost in `table` (shared
/// with any fd of the same directory); returns its file id.
pub fn dump_removed_cwd(
    pid: i32,
    image_dir: &Path,
    table: &mut FileTable,
) -> Result<u32, FilesError> {
    use std::os::unix::fs::MetadataExt;
    let proc_err = |what, source| FilesError::Proc {
        pid,
        fd: -1,
        what,
        source,
    };
    let at = format!("/proc/{pid}/cwd");
    let dir = std::fs::File::open(&at).map_err(|e| proc_err("the removed working directory", e))?;
    let meta = dir
        .metadata()
        .map_err(|e| proc_err("the working directory's metadata", e))?;
    if let Some((id, _)) = table.inodes.iter().find(|(_, ino)| *ino == meta.ino()) {
        return Ok(*id);
    }
    let link = std::fs::read_link(&at)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| proc_err("the working directory link", e))?;
    let fd = OwnedFd::from(dir);
    let id = 1 + table.files.len() as u32;
    let no_info = FdInfo::default();
    let mut cx = table.dump_cx(
        Found {
            pid,
            fd: -1,
            link: &link,
            mode: meta.mode(),
            info: &no_info,
            stolen: &fd,
        },
        image_dir,
    );
    let kind = ghost::dump(&mut cx)?;
    table.files.push(FileEntry {
        id,
        flags: (libc::O_RDONLY | libc::O_DIRECTORY) as u32,
        pos: 0,
        kind,
        locks: Vec::new(),
        link: Some(link),
        owner: None,
    });
    table.inodes.push((id, meta.ino()));
    Ok(id)
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
    let no_info = FdInfo::default();
    let mut cx = table.dump_cx(
        Found {
            pid,
            fd: -1,
            link: &link,
            mode: meta.mode(),
            info: &no_info,
            stolen: &fd,
        },
        image_dir,
    );
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
        link: Some(link),
        owner: None,
    });
    table.inodes.push((id, meta.ino()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_tag_has_exactly_one_kind() {
        let mut seen = std::collections::HashSet::new();
        for k in KINDS {
            for t in k.tags() {
                assert!(seen.insert(*t), "tag {t} claimed twice");
            }
        }
        for t in stasis_image::FileKindEntry::TAGS {
            assert!(seen.contains(t), "no kind rebuilds {t}");
        }
    }

    #[test]
    fn inherit_fd_arguments() {
        let i: InheritFd = "fd[3]:pipe:[1234]".parse().unwrap();
        assert_eq!((i.fd, i.name.as_str()), (3, "pipe:[1234]"));
        let i: InheritFd = "fd[0]:/var/log/a:b".parse().unwrap();
        assert_eq!((i.fd, i.name.as_str()), (0, "/var/log/a:b"));
        for bad in ["3:pipe", "fd[x]:a", "fd[3]:", "fd[3]pipe"] {
            let e = bad.parse::<InheritFd>().unwrap_err();
            assert!(e.contains("fd[N]:NAME"), "{e}");
        }
    }
}
