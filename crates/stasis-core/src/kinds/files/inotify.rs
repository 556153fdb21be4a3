//! inotify instances. Each watch is saved by path: fdinfo gives its wd, mask and a file handle,
//! which dump resolves to a path (open_by_handle_at on the watched file's mount). Restore adds
//! the watches again in wd order; the kernel hands out wds in sequence, and a different one is
//! an error naming it (gaps left by removed watches are not reproduced yet).

use super::{DumpFd, FilesError};
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
fn mount_of(sdev: u64) -> Option<String> {
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
    fn open(&self, _cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(entry)
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
        let mnt = mount_of(w.sdev)
            .ok_or_else(|| unsupported("the watched file's mount is not visible"))?;
        let mfd: OwnedFd = std::fs::File::open(&mnt)
            .map_err(|source| FilesError::Proc {
                pid: cx.pid,
                fd: cx.fd,
                what: "the mount of a watched file",
                source,
            })?
            .into();
        let f = stasis_sys::anonfd::open_by_handle_at(
            mfd.as_raw_fd(),
            w.handle_type,
            &w.handle,
            libc::O_PATH,
        )
        .map_err(|_| unsupported("a watched file could not be opened by its handle (deleted?)"))?;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
            .map_err(|source| FilesError::Proc {
                pid: cx.pid,
                fd: cx.fd,
                what: "the path of a watched file",
                source,
            })?
            .to_string_lossy()
            .into_owned();
        if path.ends_with(" (deleted)") {
            return Err(unsupported("a watched file was deleted"));
        }
        watches.push(InotifyWatchEntry {
            wd: w.wd,
            mask: w.mask,
            path,
        });
    }
    watches.sort_by_key(|w| w.wd);
    Ok(FileKindEntry::Inotify { watches })
}

pub fn open(entry: &FileEntry) -> Result<OwnedFd, FilesError> {
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
        let got = stasis_sys::anonfd::inotify_add_watch(fd.as_raw_fd(), &w.path, w.mask).map_err(
            |e| FilesError::Open {
                id: entry.id,
                op: "watch",
                path: w.path.clone().into(),
                source: e.into(),
            },
        )?;
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
    Ok(fd)
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
