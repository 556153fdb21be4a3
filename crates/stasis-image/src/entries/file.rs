//! The file table: every open file description of the image once, and each process's fds as
//! references into it (so fds sharing one description stay shared).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesEntry {
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub id: u32,
    /// Open flags (O_ACCMODE, O_APPEND, O_NONBLOCK, ...), as fdinfo shows them.
    pub flags: u32,
    /// File offset.
    pub pos: u64,
    pub kind: FileKindEntry,
    /// Locks held through this file (flock and OFD locks belong to it; POSIX locks belong to
    /// the process named in the entry).
    #[serde(default)]
    pub locks: Vec<LockEntry>,
    /// What /proc/PID/fd showed for it at dump time (`/var/log/x.log`, `pipe:[123]`): the
    /// name `restore --inherit-fd` matches.
    #[serde(default)]
    pub link: Option<String>,
    /// Who gets its I/O signals (F_SETOWN_EX, F_SETSIG), when someone does.
    #[serde(default)]
    pub owner: Option<OwnerEntry>,
}

/// The owner of an open file description: F_OWNER_TID (0), F_OWNER_PID (1) or F_OWNER_PGRP
/// (2) and its pid, the signal (0: SIGIO), and the uid/euid of whoever set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerEntry {
    pub kind: i32,
    pub pid: i32,
    pub signum: i32,
    pub uid: u32,
    pub euid: u32,
}

/// One file lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// "flock", "posix", "ofd" or "lease".
    pub kind: String,
    pub write: bool,
    /// Owner of a POSIX lock.
    #[serde(default)]
    pub pid: i32,
    pub start: u64,
    /// Last byte, None for "to the end of the file".
    #[serde(default)]
    pub end: Option<u64>,
    /// A lease being broken at dump time (a conflicting open is waiting or was refused): the
    /// type it is being broken to, "read" or "unlock" (`write` is then unknown: the lease
    /// had the strongest type its open mode allows).
    #[serde(default)]
    pub breaking_to: Option<String>,
}

/// Fd-type ids are part of the format: tags never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FileKindEntry {
    /// A file, directory or device reopened by path.
    Path {
        path: String,
        /// st_mode, to notice a path that became something else.
        mode: u32,
        /// File size at dump time (regular files), to notice truncation.
        #[serde(default)]
        size: u64,
    },
    /// A regular file unlinked while open: recreated from its saved contents.
    Deleted {
        path: String,
        mode: u32,
        /// The whole file, or (when `size` is set) the data of `extents`, one after another.
        content: BlobRef,
        /// The file's size: its holes are kept as holes (images before 1.4 leave it out).
        #[serde(default)]
        size: Option<u64>,
        /// The (offset, length) runs of data; everything else is a hole.
        #[serde(default)]
        extents: Vec<(u64, u64)>,
        /// Owner (uid, gid).
        #[serde(default)]
        owner: Option<(u32, u32)>,
        /// Access and modification times: (seconds, nanoseconds) each.
        #[serde(default)]
        times: Option<[(i64, i64); 2]>,
        /// The inode: descriptions of one deleted file (opened twice, or through two links)
        /// share one recreated file. 0: unknown (images before 1.4).
        #[serde(default)]
        ino: u64,
        /// A file unlinked from this path but still linked elsewhere, saved with
        /// `--link-remap`: a hard link the dump made to it (`content` is empty). Restore opens
        /// the same inode through it and removes it.
        #[serde(default)]
        remap: Option<String>,
    },
    /// A file other than a regular one, unlinked while open (FIFO, device node, directory,
    /// symlink or socket file held with O_PATH), or a removed working directory: made again,
    /// opened and removed again. `ino` tells which fds (and working directories) share one.
    Ghost {
        path: String,
        mode: u32,
        /// Device number of a device node.
        #[serde(default)]
        rdev: u64,
        /// A symlink's target.
        #[serde(default)]
        target: Option<String>,
        owner: (u32, u32),
        ino: u64,
        /// A FIFO's buffered bytes (kept once per FIFO).
        #[serde(default)]
        data: Option<BlobRef>,
    },
    /// A memfd: recreated with the same name and contents.
    Memfd {
        name: String,
        content: BlobRef,
        #[serde(default)]
        seals: u32,
        /// Permission bits (fchmod); None in images made before they were saved.
        #[serde(default)]
        mode: Option<u32>,
        /// The memfd's inode at dump time: entries (open file descriptions) with the same
        /// inode are reopened from one memfd, so they keep sharing its contents (0: unknown).
        #[serde(default)]
        ino: u64,
    },
    /// One end of a pipe. Both ends of one pipe share `pipe_id`; the bytes buffered in the pipe
    /// at dump time are kept once, on the first end dumped.
    Pipe {
        pipe_id: u64,
        /// Pipe buffer capacity (F_GETPIPE_SZ).
        size: u32,
        #[serde(default)]
        data: Option<BlobRef>,
    },
    /// A FIFO in the filesystem: reopened by path; the bytes buffered in it are kept once per
    /// FIFO (by inode).
    Fifo {
        path: String,
        fifo_id: u64,
        #[serde(default)]
        data: Option<BlobRef>,
    },
    /// One side of a pseudo-terminal the tree owns: its index (/dev/pts/N), which side, and the
    /// terminal settings (raw termios, window size).
    Pty {
        index: u32,
        master: bool,
        #[serde(with = "serde_bytes")]
        termios: Vec<u8>,
        winsize: [u16; 4],
    },
    /// An eventfd: its counter and mode.
    Eventfd { count: u64, semaphore: bool },
    /// A timerfd: clock, unread expirations, time left and period (ns), settime flags.
    Timerfd {
        clockid: i32,
        ticks: u64,
        value_ns: u64,
        interval_ns: u64,
        settime_flags: u32,
    },
    /// A signalfd and the signals it reads (bit n-1 = signal n).
    Signalfd { mask: u64 },
    /// An epoll instance and its interest list, registered by fd number in the process that
    /// holds it.
    Epoll { items: Vec<EpollItemEntry> },
    /// An inotify instance and its watches (by path, in wd order).
    Inotify { watches: Vec<InotifyWatchEntry> },
    /// A fanotify group: its fanotify_init flags, the open flags of the event files it hands
    /// out, and its marks (inodes, mounts and filesystems, by path).
    Fanotify {
        flags: u32,
        event_flags: u32,
        marks: Vec<FanotifyMarkEntry>,
    },
    /// An AF_UNIX socket: kind, state, bound name, peer (by socket inode) and the data queued
    /// for it to read, which restore sends again from its peer.
    UnixSocket {
        ino: u32,
        sock_type: u8,
        /// 1 connected, 7 unconnected, 10 listening.
        state: u8,
        #[serde(default)]
        name: Option<Vec<u8>>,
        #[serde(default)]
        peer: u32,
        #[serde(default)]
        queue: Option<BlobRef>,
        /// Message lengths in `queue` (datagram and seqpacket sockets).
        #[serde(default)]
        messages: Vec<u32>,
    },
    /// A listening TCP socket: address, port and the options that matter to bind().
    TcpListen {
        /// 4 (IPv4) or 16 (IPv6) bytes, network order.
        addr: Vec<u8>,
        port: u16,
        reuseaddr: bool,
        #[serde(default)]
        v6only: bool,
    },
    /// An established TCP connection, saved with TCP_REPAIR (`--tcp-established`): endpoints,
    /// sequence numbers, queued data, negotiated options and window.
    TcpEstablished {
        local: Vec<u8>,
        local_port: u16,
        remote: Vec<u8>,
        remote_port: u16,
        send_seq: u32,
        recv_seq: u32,
        #[serde(default)]
        send_queue: Option<BlobRef>,
        #[serde(default)]
        recv_queue: Option<BlobRef>,
        mss: u32,
        /// tcpi_options bits (1 timestamps, 2 SACK, 4 window scaling).
        options: u8,
        snd_wscale: u8,
        rcv_wscale: u8,
        timestamp: u32,
        /// struct tcp_repair_window: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup.
        window: [u32; 5],
    },
    /// A pidfd: the process it names (-1: exited and reaped) and its pidfs inode, the same
    /// for every pidfd of one process.
    Pidfd { pid: i32, ino: u64 },
    /// An internet socket neither bound nor connected: its family (AF_INET, AF_INET6) and
    /// type (SOCK_STREAM, SOCK_DGRAM).
    InetUnbound { family: i32, sock_type: i32 },
    /// A namespace file (/proc/PID/ns/TYPE): its type and inode.
    Namespace { ns: String, ino: u64 },
    /// Something outside the dumped tree (a terminal, a pipe or socket of the parent shell):
    /// restore connects it to the restore command's own fd of the same number.
    External {
        /// What it was, e.g. `/dev/pts/3` or `pipe:[123]`.
        what: String,
        /// The root's fd (0, 1 or 2) it was found at: the restore command's fd of that number
        /// stands in for it. Images before 1.4 leave it out (each fd then takes its own number).
        #[serde(default)]
        fd: Option<i32>,
    },
}

impl FileKindEntry {
    /// Every tag an entry can carry (see [`FileKindEntry::tag`]).
    pub const TAGS: &'static [&'static str] = &[
        "path",
        "deleted",
        "memfd",
        "pipe",
        "fifo",
        "pty",
        "eventfd",
        "timerfd",
        "signalfd",
        "epoll",
        "inotify",
        "unix-socket",
        "tcp-listen",
        "tcp-established",
        "external",
        "pidfd",
        "ghost",
        "namespace",
        "fanotify",
        "inet-unbound",
    ];

    /// The entry's tag in the image ("type"), which says which kind rebuilds it.
    /// The blobs this description's bytes are kept in.
    pub fn blobs(&self) -> Vec<&BlobRef> {
        use FileKindEntry as K;
        match self {
            K::Deleted { content, .. } | K::Memfd { content, .. } => vec![content],
            K::Ghost { data, .. } | K::Pipe { data, .. } | K::Fifo { data, .. } => {
                data.iter().collect()
            }
            K::UnixSocket { queue, .. } => queue.iter().collect(),
            K::TcpEstablished {
                send_queue,
                recv_queue,
                ..
            } => send_queue.iter().chain(recv_queue.iter()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn tag(&self) -> &'static str {
        match self {
            Self::Path { .. } => "path",
            Self::Deleted { .. } => "deleted",
            Self::Memfd { .. } => "memfd",
            Self::Pipe { .. } => "pipe",
            Self::Fifo { .. } => "fifo",
            Self::Pty { .. } => "pty",
            Self::Eventfd { .. } => "eventfd",
            Self::Timerfd { .. } => "timerfd",
            Self::Signalfd { .. } => "signalfd",
            Self::Epoll { .. } => "epoll",
            Self::Inotify { .. } => "inotify",
            Self::UnixSocket { .. } => "unix-socket",
            Self::TcpListen { .. } => "tcp-listen",
            Self::TcpEstablished { .. } => "tcp-established",
            Self::External { .. } => "external",
            Self::Pidfd { .. } => "pidfd",
            Self::Ghost { .. } => "ghost",
            Self::Namespace { .. } => "namespace",
            Self::InetUnbound { .. } => "inet-unbound",
            Self::Fanotify { .. } => "fanotify",
        }
    }

    /// One line saying what the file is, for `stasis show`.
    pub fn describe(&self) -> String {
        match self {
            Self::Path { path, .. } => path.clone(),
            Self::Deleted { path, content, .. } => {
                format!("{path} (deleted, {} bytes saved)", content.len)
            }
            Self::Memfd { name, content, .. } => {
                format!("memfd:{name} ({} bytes saved)", content.len)
            }
            Self::Pipe { pipe_id, data, .. } => format!(
                "pipe:[{pipe_id}] ({} bytes buffered)",
                data.as_ref().map_or(0, |d| d.len)
            ),
            Self::Fifo { path, data, .. } => format!(
                "{path} (FIFO, {} bytes buffered)",
                data.as_ref().map_or(0, |d| d.len)
            ),
            Self::Pty { index, master, .. } => {
                format!("pty {index} ({})", if *master { "master" } else { "slave" })
            }
            Self::Eventfd { count, semaphore } => format!(
                "eventfd (count {count}{})",
                if *semaphore { ", semaphore" } else { "" }
            ),
            Self::Timerfd {
                clockid,
                value_ns,
                interval_ns,
                ..
            } => {
                format!("timerfd (clock {clockid}, next in {value_ns} ns, every {interval_ns} ns)")
            }
            Self::Signalfd { mask } => format!("signalfd (mask {mask:#x})"),
            Self::Epoll { items } => format!("epoll ({} registrations)", items.len()),
            Self::Inotify { watches } => format!("inotify ({} watches)", watches.len()),
            Self::Fanotify { flags, marks, .. } => {
                format!("fanotify (flags {flags:#x}, {} marks)", marks.len())
            }
            Self::UnixSocket {
                ino,
                state,
                name,
                peer,
                queue,
                ..
            } => format!(
                "unix socket {ino} (state {state}, name {:?}, peer {peer}, {} bytes queued)",
                name.as_deref().map(String::from_utf8_lossy),
                queue.as_ref().map_or(0, |q| q.len)
            ),
            Self::TcpListen { addr, port, .. } => format!("TCP listener {addr:?} port {port}"),
            Self::TcpEstablished {
                local_port,
                remote_port,
                ..
            } => format!("TCP connection port {local_port} -> {remote_port} (repair)"),
            Self::Ghost { path, mode, .. } => {
                let what = match mode & 0o170000 {
                    0o010000 => "FIFO",
                    0o020000 => "character device",
                    0o060000 => "block device",
                    0o040000 => "directory",
                    0o120000 => "symlink",
                    0o140000 => "socket file",
                    _ => "file",
                };
                format!("{path} (deleted {what}, made again on restore)")
            }
            Self::Namespace { ns, ino } => format!("{ns}:[{ino}] (namespace)"),
            Self::InetUnbound { family, sock_type } => format!(
                "{} {} socket, not bound yet",
                if *family == 10 { "IPv6" } else { "IPv4" },
                if *sock_type == 2 { "UDP" } else { "TCP" }
            ),
            Self::Pidfd { pid, .. } if *pid > 0 => format!("pidfd of pid {pid}"),
            Self::Pidfd { .. } => "pidfd of a process that exited".into(),
            Self::External { what, .. } => {
                format!("{what} (external: the restore command's own)")
            }
        }
    }
}

/// One registration of an epoll interest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollItemEntry {
    /// The fd number it was registered with.
    pub tfd: i32,
    pub events: u32,
    pub data: u64,
    /// When fd `tfd` no longer holds the registered file (it was closed, or reused for another
    /// file), another fd of the process that does: restore registers through it, put at
    /// `tfd` for the moment of the registration.
    #[serde(default)]
    pub via: Option<i32>,
}

/// One inotify watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyWatchEntry {
    pub wd: i32,
    pub mask: u32,
    /// The watched file or directory, resolved from its file handle at dump time.
    pub path: String,
    /// The watched file was deleted (and is held open by a process of the tree): the inode of
    /// the deleted file of the image that restore recreates and watches instead of `path`.
    #[serde(default)]
    pub deleted_ino: Option<u64>,
}

/// One fanotify mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanotifyMarkEntry {
    /// What is marked: "inode", "mount" or "filesystem".
    pub target: String,
    /// The marked file, or a path on the marked mount or filesystem.
    pub path: String,
    /// The mark flags fdinfo shows (FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_EVICTABLE,
    /// FAN_MARK_IGNORE).
    pub mflags: u32,
    pub mask: u64,
    pub ignored_mask: u64,
}

/// Raw bytes kept in a `blob-N` file of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub file: String,
    pub len: u64,
    pub crc32c: u32,
}

impl BlobRef {
    /// Whether `file` is a name the format allows (`blob-N`): never a path out of the image.
    pub fn well_named(&self) -> bool {
        self.file
            .strip_prefix("blob-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// One descriptor of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdEntry {
    pub fd: i32,
    pub cloexec: bool,
    pub file_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tag()` is the serde tag, and every tag is in TAGS.
    #[test]
    fn tags_are_the_serde_tags() {
        let blob = BlobRef {
            file: "blob-0".into(),
            len: 1,
            crc32c: 0,
        };
        let all = [
            FileKindEntry::Path {
                path: "/a".into(),
                mode: 0,
                size: 0,
            },
            FileKindEntry::Deleted {
                path: "/a".into(),
                mode: 0,
                content: blob.clone(),
                size: None,
                extents: vec![],
                owner: None,
                times: None,
                ino: 0,
                remap: None,
            },
            FileKindEntry::Memfd {
                name: "m".into(),
                content: blob,
                seals: 0,
                mode: None,
                ino: 0,
            },
            FileKindEntry::Pipe {
                pipe_id: 1,
                size: 4096,
                data: None,
            },
            FileKindEntry::Fifo {
                path: "/f".into(),
                fifo_id: 1,
                data: None,
            },
            FileKindEntry::Pty {
                index: 0,
                master: true,
                termios: vec![],
                winsize: [0; 4],
            },
            FileKindEntry::Eventfd {
                count: 0,
                semaphore: false,
            },
            FileKindEntry::Timerfd {
                clockid: 0,
                ticks: 0,
                value_ns: 0,
                interval_ns: 0,
                settime_flags: 0,
            },
            FileKindEntry::Signalfd { mask: 0 },
            FileKindEntry::Epoll { items: vec![] },
            FileKindEntry::Inotify { watches: vec![] },
            FileKindEntry::UnixSocket {
                ino: 1,
                sock_type: 1,
                state: 7,
                name: None,
                peer: 0,
                queue: None,
                messages: vec![],
            },
            FileKindEntry::TcpListen {
                addr: vec![0; 4],
                port: 1,
                reuseaddr: false,
                v6only: false,
            },
            FileKindEntry::TcpEstablished {
                local: vec![0; 4],
                local_port: 1,
                remote: vec![0; 4],
                remote_port: 2,
                send_seq: 0,
                recv_seq: 0,
                send_queue: None,
                recv_queue: None,
                mss: 0,
                options: 0,
                snd_wscale: 0,
                rcv_wscale: 0,
                timestamp: 0,
                window: [0; 5],
            },
            FileKindEntry::External {
                what: "/dev/pts/0".into(),
                fd: Some(0),
            },
            FileKindEntry::Pidfd { pid: 1, ino: 2 },
            FileKindEntry::Fanotify {
                flags: 0x12,
                event_flags: 0x8000,
                marks: vec![FanotifyMarkEntry {
                    target: "mount".into(),
                    path: "/tmp".into(),
                    mflags: 0x40,
                    mask: 0x4000_0038,
                    ignored_mask: 3,
                }],
            },
            FileKindEntry::Namespace {
                ns: "net".into(),
                ino: 4,
            },
            FileKindEntry::InetUnbound {
                family: 2,
                sock_type: 1,
            },
            FileKindEntry::Ghost {
                path: "/d".into(),
                mode: 0o040755,
                rdev: 0,
                target: None,
                owner: (0, 0),
                ino: 3,
                data: None,
            },
        ];
        assert_eq!(all.len(), FileKindEntry::TAGS.len());
        for e in &all {
            let v = serde_json::to_value(e).unwrap();
            assert_eq!(v["type"], e.tag(), "{e:?}");
            assert!(FileKindEntry::TAGS.contains(&e.tag()));
            assert!(!e.describe().is_empty());
        }
    }
}
