//! inotify instances. Each watch is saved by path: fdinfo gives its wd, mask and a file handle,
//! which dump resolves to a path (open_by_handle_at on the watched file's mount). Restore adds
//! the watches again in wd order; the kernel hands out wds in sequence, and a different one is
//! an error naming it (gaps left by removed watches are not reproduced yet).
//!
//! A watched file that was deleted is still watched as long as someone holds it open (the
//! watch goes when the inode does): when a process of the tree holds it, the watch is saved
//! with the inode, and restore watches the very file the deleted-file (or ghost) kind makes
//! again for that process, through a descriptor of it, before it is removed again. What the
//! restore itself does to watched files (making them, opening, closing and removing them)
//! queues events the job never caused: they are read off every instance once the tree
//! stands. Events queued at dump time are not saved.

use super::{DumpFd, FilesError, OpenCx};
use stasis_image::{FileEntry, FileKindEntry, InotifyWatchEntry};
use std::os::fd::{AsRawFd, OwnedFd};

/// The fields of one "inotify wd:..." fdinfo line.
#[derive(Debug, PartialEq, Eq)]
pub struct WatchInfo {
    pub wd: i32,
    pub sdev: u64,
    pub mask: u32,
    pub handle_type: i32,
    pub handle: Vec<u8>,
}

/// Parse "1 ino:2a9c sdev:fe00001 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1
/// f_handle:9c2a000000000000" (the value after "inotify wd:").
pub fn parse_watch(v: &str) -> Option<WatchInfo> {
    let mut it = v.split_whitespace();
    let wd = it.next()?.parse().ok()?;
    let (mut sdev, mut mask, mut ty, mut handle) = (None, None, None, None);
    for tok in it {
        let (k, val) = tok.split_once(':')?;
        match k {
            "sdev" => sdev = u64::from_str_radix(val, 16).ok(),
            "mask" => mask = u32::from_str_radix(val, 16).ok(),
            "fhandle-type" => ty = i32::from_str_radix(val, 16).ok(),
            "f_handle" => {
                handle = (0..val.len() / 2)
                    .map(|i| u8::from_str_radix(&val[2 * i..2 * i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()
            }
            _ => {}
        }
    }
    Some(WatchInfo {
        wd,
        sdev: sdev?,
        mask: mask?,
        handle_type: ty?,
        handle: handle?,
    })
}

/// The mount point of the filesystem with kernel device number `sdev` (MAJOR << 20 | MINOR).
pub(super) fn mount_of(sdev: u64) -> Option<String> {
    let want = format!("{}:{}", sdev >> 20, sdev & 0xfffff);
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&want.as_str())).then(|| f.get(4).map(|s| s.to_string()))?
    })
}

/// The kind: see the module doc.
pub struct Inotify;

impl super::FileKind for Inotify {
    fn tags(&self) -> &'static [&'static str] {
        &["inotify"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link == "anon_inode:inotify"
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
    /// The events the restore itself caused go (see the module doc); deleted files and
    /// ghosts come before in [`super::KINDS`], so their removal is among them.
    fn finish(&self, cx: &mut OpenCx) -> Result<(), FilesError> {
        for fd in cx.state::<Made>().0.drain(..) {
            super::drain_events(&fd, |_| {});
        }
        Ok(())
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let unsupported = |why| FilesError::Unsupported {
        pid: cx.pid,
        fd: cx.fd,
        kind: cx.link.to_string(),
        why,
    };
    let mut watches = Vec::new();
    for (k, v) in &cx.info.extra {
        if k != "inotify wd" {
            continue;
        }
        let w = parse_watch(v)
            .ok_or_else(|| unsupported("an inotify fdinfo line could not be read"))?;
        let (path, f) = by_handle(cx, w.sdev, w.handle_type, &w.handle)?;
        let mut deleted_ino = None;
        let path = match path.strip_suffix(" (deleted)") {
            Some(p) => {
                let st = nix::sys::stat::fstat(f.as_raw_fd()).map_err(|e| FilesError::Proc {
                    pid: cx.pid,
                    fd: cx.fd,
                    what: "a deleted watched file",
                    source: e.into(),
                })?;
                if !held_in_tree(cx.tree, st.st_dev, st.st_ino) {
                    return Err(unsupported(
                        "a watched file was deleted and no process of the tree holds it open",
                    ));
                }
                deleted_ino = Some(st.st_ino);
                p.to_string()
            }
            None => path,
        };
        watches.push(InotifyWatchEntry {
            wd: w.wd,
            mask: w.mask,
            path,
            deleted_ino,
        });
    }
    watches.sort_by_key(|w| w.wd);
    Ok(FileKindEntry::Inotify { watches })
}

pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Inotify { watches } = &entry.kind else {
        unreachable!("inotify::open on another kind")
    };
    let flags = libc::IN_CLOEXEC | (entry.flags as i32 & libc::O_NONBLOCK);
    let fd = stasis_sys::anonfd::inotify_init1(flags).map_err(|e| FilesError::Open {
        id: entry.id,
        op: "create",
        path: "inotify".into(),
        source: e.into(),
    })?;
    for w in watches {
        let werr = |e: stasis_sys::Errno| FilesError::Open {
            id: entry.id,
            op: "watch",
            path: w.path.clone().into(),
            source: e.into(),
        };
        let got = match w.deleted_ino {
            None => stasis_sys::anonfd::inotify_add_watch(fd.as_raw_fd(), &w.path, w.mask),
            Some(ino) => {
                // The deleted file as its own kind makes it for the process that holds it
                // (one file per inode: that process's open finds this one): watched
                // through a descriptor, whatever its name is for the moment.
                let held = deleted_file(cx, entry, &w.path, ino)?;
                stasis_sys::anonfd::inotify_add_watch(
                    fd.as_raw_fd(),
                    &format!("/proc/self/fd/{}", held.as_raw_fd()),
                    w.mask,
                )
            }
        }
        .map_err(werr)?;
        if got != w.wd {
            return Err(FilesError::Changed {
                id: entry.id,
                path: w.path.clone().into(),
                what: format!(
                    "its inotify watch got wd {got}, the program knows it as wd {}",
                    w.wd
                ),
            });
        }
    }
    let keep = fd.try_clone().map_err(|source| FilesError::Open {
        id: entry.id,
        op: "dup",
        path: "inotify".into(),
        source,
    })?;
    cx.state::<Made>().0.push(keep);
    Ok(fd)
}

/// The inotify instances this restore made (copies of their descriptors).
#[derive(Default)]
struct Made(Vec<OwnedFd>);

/// The file a deleted watched file became on restore: the image's deleted file (or ghost) of
/// inode `ino`, opened through its kind.
fn deleted_file(
    cx: &mut OpenCx,
    entry: &FileEntry,
    path: &str,
    ino: u64,
) -> Result<OwnedFd, FilesError> {
    let all = cx.all;
    let held = all
        .iter()
        .find(|f| {
            matches!(&f.kind,
                FileKindEntry::Deleted { ino: i, .. } | FileKindEntry::Ghost { ino: i, .. }
                    if *i == ino)
        })
        .ok_or_else(|| FilesError::Changed {
            id: entry.id,
            path: path.into(),
            what: format!(
                "its watched file was deleted, and the image holds no deleted file of inode {ino}"
            ),
        })?;
    let at = cx.fd;
    let got = super::kind_of(&held.kind).open(cx, held);
    cx.fd = at;
    got
}

/// Resolve a file handle of fdinfo (`sdev`, type, bytes) to a path and an O_PATH descriptor,
/// by opening it on the mount of its filesystem. A deleted file's path ends in " (deleted)".
pub(super) fn by_handle(
    cx: &DumpFd,
    sdev: u64,
    handle_type: i32,
    handle: &[u8],
) -> Result<(String, OwnedFd), FilesError> {
    let unsupported = |why| FilesError::Unsupported {
        pid: cx.pid,
        fd: cx.fd,
        kind: cx.link.to_string(),
        why,
    };
    let mnt =
        mount_of(sdev).ok_or_else(|| unsupported("the watched file's mount is not visible"))?;
    let mfd: OwnedFd = std::fs::File::open(&mnt)
        .map_err(|source| FilesError::Proc {
            pid: cx.pid,
            fd: cx.fd,
            what: "the mount of a watched file",
            source,
        })?
        .into();
    let f =
        stasis_sys::anonfd::open_by_handle_at(mfd.as_raw_fd(), handle_type, handle, libc::O_PATH)
            .map_err(|_| {
            unsupported("a watched file could not be opened by its handle (it is gone)")
        })?;
    let path = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .map_err(|source| FilesError::Proc {
            pid: cx.pid,
            fd: cx.fd,
            what: "the path of a watched file",
            source,
        })?
        .to_string_lossy()
        .into_owned();
    Ok((path, f))
}

/// Whether a process of `tree` has the file (`dev`, `ino`) open, or as its working directory.
fn held_in_tree(tree: &[i32], dev: u64, ino: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    let is_it = |p: std::path::PathBuf| {
        std::fs::metadata(p).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
    };
    tree.iter().any(|pid| {
        is_it(format!("/proc/{pid}/cwd").into())
            || std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.flatten().any(|e| is_it(e.path())))
                .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_line() {
        let w = super::parse_watch("1 ino:2a9c sdev:fe00001 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:9c2a000000000000").unwrap();
        assert_eq!(
            (w.wd, w.sdev, w.mask, w.handle_type),
            (1, 0xfe00001, 0x300, 1)
        );
        assert_eq!(w.handle, vec![0x9c, 0x2a, 0, 0, 0, 0, 0, 0]);
    }
}
