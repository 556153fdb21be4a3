//! fanotify groups. fdinfo gives the group's fanotify_init flags and event-file flags, and one
//! line per mark: an inode (by file handle, resolved to a path like an inotify watch), a mount
//! (by mount id, resolved to its mount point) or a filesystem (by device, resolved to a mount
//! of it), each with its mark flags, mask and ignored mask. Restore makes the group with the
//! same flags (fdinfo shows them, so even FAN_CLOEXEC is passed as saved; the restorer's copy
//! gets close-on-exec afterwards) and marks the same objects again by path. Events queued at
//! dump time are not saved; those the restore itself causes on marked objects are read off
//! (and their event files closed) once the tree stands. Permission events are refused: the
//! restore's own opens would wait for an answer nobody gives.

use super::{DumpFd, FilesError, OpenCx};
use stasis_image::{FanotifyMarkEntry, FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};

/// The kind: see the module doc.
pub struct Fanotify;

const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_MOUNT: u32 = 0x10;
const FAN_MARK_IGNORED_MASK: u32 = 0x20;
const FAN_MARK_IGNORED_SURV_MODIFY: u32 = 0x40;
const FAN_MARK_FILESYSTEM: u32 = 0x100;
const FAN_MARK_EVICTABLE: u32 = 0x200;
const FAN_MARK_IGNORE: u32 = 0x400;
/// FAN_OPEN_PERM, FAN_ACCESS_PERM, FAN_OPEN_EXEC_PERM, FAN_PRE_ACCESS.
const PERMISSION_EVENTS: u64 = 0x0001_0000 | 0x0002_0000 | 0x0004_0000 | 0x0010_0000;

impl super::FileKind for Fanotify {
    fn tags(&self) -> &'static [&'static str] {
        &["fanotify"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link == "anon_inode:[fanotify]"
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
    fn finish(&self, cx: &mut OpenCx) -> Result<(), FilesError> {
        for fd in cx.state::<Made>().0.drain(..) {
            super::drain_events(&fd, close_event_files);
        }
        Ok(())
    }
}

/// The value of `key` among the "key:value" tokens of an fdinfo line's value.
fn field<'a>(v: &'a str, key: &str) -> Option<&'a str> {
    v.split_whitespace()
        .find_map(|t| t.split_once(':').filter(|(k, _)| *k == key).map(|(_, x)| x))
}

fn hex(v: &str, key: &str) -> Option<u64> {
    u64::from_str_radix(field(v, key)?, 16).ok()
}

/// The first token of a value ("2a9c" of "2a9c sdev:fe00001 ..."), in hex.
fn first_hex(v: &str) -> Option<u64> {
    u64::from_str_radix(v.split_whitespace().next()?, 16).ok()
}

/// One mark line, parsed: (target, object, mflags, mask, ignored mask), where the object is
/// the inode's (sdev, handle type, handle), the mount id, or the filesystem's sdev.
#[derive(Debug, PartialEq, Eq)]
pub enum MarkInfo {
    Inode {
        sdev: u64,
        handle_type: i32,
        handle: Vec<u8>,
        mflags: u32,
        mask: u64,
        ignored: u64,
    },
    Mount {
        mnt_id: u64,
        mflags: u32,
        mask: u64,
        ignored: u64,
    },
    Filesystem {
        sdev: u64,
        mflags: u32,
        mask: u64,
        ignored: u64,
    },
}

/// Parse the value of a "fanotify ino", "fanotify mnt_id" or "fanotify sdev" line (`key` is
/// the word after "fanotify ").
pub fn parse_mark(key: &str, v: &str) -> Option<MarkInfo> {
    let (mflags, mask, ignored) = (
        hex(v, "mflags")? as u32,
        hex(v, "mask")?,
        hex(v, "ignored_mask")?,
    );
    Some(match key {
        "ino" => {
            let h = field(v, "f_handle")?;
            MarkInfo::Inode {
                sdev: hex(v, "sdev")?,
                handle_type: hex(v, "fhandle-type")? as i32,
                handle: (0..h.len() / 2)
                    .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()?,
                mflags,
                mask,
                ignored,
            }
        }
        "mnt_id" => MarkInfo::Mount {
            mnt_id: first_hex(v)?,
            mflags,
            mask,
            ignored,
        },
        "sdev" => MarkInfo::Filesystem {
            sdev: first_hex(v)?,
            mflags,
            mask,
            ignored,
        },
        _ => return None,
    })
}

/// The mount point of mount `mnt_id` as process `pid` sees it (mountinfo escapes blanks and
/// backslashes as octal).
fn mount_point(pid: i32, mnt_id: u64) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let raw = text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first()?.parse::<u64>().ok()? == mnt_id).then(|| f.get(4).map(|s| s.to_string()))?
    })?;
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let unsupported = |why| FilesError::Unsupported {
        pid: cx.pid,
        fd: cx.fd,
        kind: cx.link.to_string(),
        why,
    };
    let glob = cx
        .info
        .get("fanotify flags")
        .ok_or_else(|| unsupported("its fdinfo has no fanotify flags"))?;
    let flags = first_hex(glob).ok_or_else(|| unsupported("bad fanotify flags in its fdinfo"))?;
    let event_flags =
        hex(glob, "event-flags").ok_or_else(|| unsupported("bad fanotify event-flags"))?;
    let mut marks = Vec::new();
    for (k, v) in &cx.info.extra {
        let Some(what) = k.strip_prefix("fanotify ") else {
            continue;
        };
        if what == "flags" {
            continue;
        }
        let m = parse_mark(what, v)
            .ok_or_else(|| unsupported("a fanotify mark of a kind stasis does not know"))?;
        let (target, path, mflags, mask, ignored) = match m {
            MarkInfo::Inode {
                sdev,
                handle_type,
                handle,
                mflags,
                mask,
                ignored,
            } => {
                let (path, _f) = super::inotify::by_handle(cx, sdev, handle_type, &handle)?;
                if path.ends_with(" (deleted)") {
                    return Err(unsupported("a marked file was deleted"));
                }
                ("inode", path, mflags, mask, ignored)
            }
            MarkInfo::Mount {
                mnt_id,
                mflags,
                mask,
                ignored,
            } => {
                let path = mount_point(cx.pid, mnt_id)
                    .ok_or_else(|| unsupported("a marked mount is not in the process's view"))?;
                ("mount", path, mflags, mask, ignored)
            }
            MarkInfo::Filesystem {
                sdev,
                mflags,
                mask,
                ignored,
            } => {
                let path = super::inotify::mount_of(sdev)
                    .ok_or_else(|| unsupported("a marked filesystem is not mounted here"))?;
                ("filesystem", path, mflags, mask, ignored)
            }
        };
        if (mask | ignored) & PERMISSION_EVENTS != 0 {
            return Err(unsupported(
                "permission events cannot be restored (the restore would wait for answers)",
            ));
        }
        marks.push(FanotifyMarkEntry {
            target: target.into(),
            path,
            mflags,
            mask,
            ignored_mask: ignored,
        });
    }
    Ok(FileKindEntry::Fanotify {
        flags: flags as u32,
        event_flags: event_flags as u32,
        marks,
    })
}

pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Fanotify {
        flags,
        event_flags,
        marks,
    } = &entry.kind
    else {
        unreachable!("fanotify::open on another kind")
    };
    let oerr = |op, path: &str, e: stasis_sys::Errno| FilesError::Open {
        id: entry.id,
        op,
        path: path.into(),
        source: e.into(),
    };
    let fd = stasis_sys::anonfd::fanotify_init(*flags, *event_flags)
        .map_err(|e| oerr("create", "fanotify", e))?;
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| oerr("set close-on-exec on", "fanotify", e))?;
    let nonblock = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nonblock))
        .map_err(|e| oerr("set flags of", "fanotify", e))?;
    // fdinfo lists a group's marks newest first: marked oldest first again, they list the same.
    for m in marks.iter().rev() {
        let target = match m.target.as_str() {
            "mount" => FAN_MARK_MOUNT,
            "filesystem" => FAN_MARK_FILESYSTEM,
            _ => 0,
        };
        let base = FAN_MARK_ADD | target | (m.mflags & FAN_MARK_EVICTABLE);
        if m.mask != 0 {
            stasis_sys::anonfd::fanotify_mark(fd.as_raw_fd(), base, m.mask, &m.path)
                .map_err(|e| oerr("mark", &m.path, e))?;
        }
        if m.ignored_mask != 0 {
            // FAN_MARK_IGNORE (fdinfo shows it) or the older FAN_MARK_IGNORED_MASK; whether
            // the ignored mask survives a modification is a flag of that call.
            let ignore = if m.mflags & FAN_MARK_IGNORE != 0 {
                FAN_MARK_IGNORE
            } else {
                FAN_MARK_IGNORED_MASK
            };
            let fl = base | ignore | (m.mflags & FAN_MARK_IGNORED_SURV_MODIFY);
            stasis_sys::anonfd::fanotify_mark(fd.as_raw_fd(), fl, m.ignored_mask, &m.path)
                .map_err(|e| oerr("mark (ignored mask)", &m.path, e))?;
        }
    }
    let keep = fd.try_clone().map_err(|source| FilesError::Open {
        id: entry.id,
        op: "dup",
        path: "fanotify".into(),
        source,
    })?;
    cx.state::<Made>().0.push(keep);
    Ok(fd)
}

/// The fanotify groups this restore made (copies of their descriptors).
#[derive(Default)]
struct Made(Vec<OwnedFd>);

/// Close the event files a batch of fanotify events carries (struct
/// fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16, mask u64,
/// fd i32, pid i32).
fn close_event_files(buf: &[u8]) {
    let mut at = 0;
    while at + 24 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        let efd = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
        if efd >= 0 {
            let _ = nix::unistd::close(efd);
        }
        if len < 24 {
            return;
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_lines() {
        let m = parse_mark(
            "ino",
            "2a9c sdev:fe00001 mflags:0 mask:3b ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:9c2a000000000000",
        )
        .unwrap();
        assert_eq!(
            m,
            MarkInfo::Inode {
                sdev: 0xfe00001,
                handle_type: 1,
                handle: vec![0x9c, 0x2a, 0, 0, 0, 0, 0, 0],
                mflags: 0,
                mask: 0x3b,
                ignored: 0
            }
        );
        let m = parse_mark("mnt_id", "1b mflags:40 mask:40000031 ignored_mask:3").unwrap();
        assert_eq!(
            m,
            MarkInfo::Mount {
                mnt_id: 0x1b,
                mflags: 0x40,
                mask: 0x4000_0031,
                ignored: 3
            }
        );
        assert!(parse_mark("mnt_ns", "4 mflags:0 mask:1 ignored_mask:0").is_none());
        assert_eq!(first_hex("12 event-flags:8000"), Some(0x12));
        assert_eq!(hex("12 event-flags:8000", "event-flags"), Some(0x8000));
    }
}
