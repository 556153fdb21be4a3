//! Ghosts: files other than regular files that were unlinked while open (a FIFO, a device
//! node, a directory, a symlink or socket file held with O_PATH) or that a process has as its
//! working directory after they were removed. Dump keeps what makes the object (type, mode,
//! device number, symlink target, owner) and, for a FIFO, the bytes buffered in it. Restore
//! makes the object again at its old path (or beside it when that is taken), opens it with the
//! saved flags, and removes it again once the tree stands, so the process holds an unlinked
//! object of the same kind. Every fd of one ghost (and a working directory in it) gets the
//! same object. A ghost the restore made is removed even when the restore fails.

use super::{reopen_flags, DumpFd, FilesError, OpenCx};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The kind: see the module doc.
pub struct Ghost;

impl super::FileKind for Ghost {
    fn tags(&self) -> &'static [&'static str] {
        &["ghost"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link.starts_with('/')
            && cx.link.ends_with(" (deleted)")
            && cx.file_type() != libc::S_IFREG
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
    fn finish(&self, cx: &mut OpenCx) -> Result<(), FilesError> {
        cx.state::<Made>().remove_all();
        Ok(())
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let err = |what, source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what,
        source,
    };
    let meta = std::fs::File::from(
        cx.stolen
            .try_clone()
            .map_err(|e| err("the descriptor", e))?,
    )
    .metadata()
    .map_err(|e| err("the file's metadata", e))?;
    let ft = cx.file_type();
    let target = if ft == libc::S_IFLNK {
        Some(
            nix::fcntl::readlinkat(Some(cx.stolen.as_raw_fd()), "")
                .map_err(|e| err("the deleted symlink's target", e.into()))?
                .to_string_lossy()
                .into_owned(),
        )
    } else {
        None
    };
    let data = if ft == libc::S_IFIFO && cx.seen_pipes.insert(meta.ino()) {
        let size = nix::fcntl::fcntl(cx.stolen.as_raw_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ)
            .unwrap_or(65536) as u32;
        super::pipe::buffered(cx, size)?
    } else {
        None
    };
    Ok(FileKindEntry::Ghost {
        path: cx.link.trim_end_matches(" (deleted)").to_string(),
        mode: meta.mode(),
        rdev: meta.rdev(),
        target,
        owner: (meta.uid(), meta.gid()),
        ino: meta.ino(),
        data,
    })
}

/// Ghosts made by this restore, by saved inode: where each is (removed at the end).
#[derive(Default)]
struct Made(std::collections::HashMap<u64, PathBuf>);

impl Made {
    fn remove_all(&mut self) {
        for (_, p) in self.0.drain() {
            let _ = std::fs::remove_dir(&p).or_else(|_| std::fs::remove_file(&p));
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        self.remove_all();
    }
}

pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Ghost {
        path,
        mode,
        rdev,
        target,
        owner,
        ino,
        data,
    } = &entry.kind
    else {
        unreachable!("ghost::open on another kind")
    };
    let made = match cx.state::<Made>().0.get(ino) {
        Some(p) => p.clone(),
        None => {
            let p = make(
                entry.id,
                Path::new(path),
                *mode,
                *rdev,
                target.as_deref(),
                *owner,
            )?;
            cx.state::<Made>().0.insert(*ino, p.clone());
            p
        }
    };
    let ft = mode & libc::S_IFMT;
    if ft == libc::S_IFIFO {
        // Opened like any FIFO (held read-write while refilled), at the ghost's path.
        let fifo = FileEntry {
            kind: FileKindEntry::Fifo {
                path: made.to_string_lossy().into_owned(),
                fifo_id: *ino,
                data: data.clone(),
            },
            ..entry.clone()
        };
        return super::fifo::open(cx, &fifo);
    }
    let acc = entry.flags as i32 & libc::O_ACCMODE;
    let mut flags = reopen_flags(entry.flags) & !libc::O_ACCMODE;
    if ft == libc::S_IFLNK || ft == libc::S_IFSOCK {
        // Only an O_PATH descriptor can hold these.
        flags |= libc::O_PATH | libc::O_NOFOLLOW;
    }
    std::fs::OpenOptions::new()
        .read(acc != libc::O_WRONLY)
        .write(acc != libc::O_RDONLY)
        .custom_flags(flags)
        .open(&made)
        .map(OwnedFd::from)
        .map_err(|source| FilesError::Open {
            id: entry.id,
            op: "open the recreated deleted file",
            path: made.clone(),
            source,
        })
}

/// Make the object at `path` if that is free, else beside it; returns where.
fn make(
    id: u32,
    path: &Path,
    mode: u32,
    rdev: u64,
    target: Option<&str>,
    owner: (u32, u32),
) -> Result<PathBuf, FilesError> {
    let at = super::place_for_deleted(path, id);
    let err = |op, source: std::io::Error| FilesError::Open {
        id,
        op,
        path: at.clone(),
        source,
    };
    let perm = nix::sys::stat::Mode::from_bits_truncate(mode & 0o7777);
    match mode & libc::S_IFMT {
        libc::S_IFDIR => {
            nix::unistd::mkdir(&at, perm).map_err(|e| err("make a directory", e.into()))?
        }
        libc::S_IFLNK => std::os::unix::fs::symlink(target.unwrap_or(""), &at)
            .map_err(|e| err("make a symlink", e))?,
        ft => {
            let kind = nix::sys::stat::SFlag::from_bits_truncate(ft);
            nix::sys::stat::mknod(&at, kind, perm, rdev as libc::dev_t)
                .map_err(|e| err("make (mknod)", e.into()))?
        }
    }
    // The object is ours until removed: a failed restore removes it too (see `Made`).
    let _ = nix::unistd::fchownat(
        None,
        &at,
        Some(nix::unistd::Uid::from_raw(owner.0)),
        Some(nix::unistd::Gid::from_raw(owner.1)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    if mode & libc::S_IFMT != libc::S_IFLNK {
        // mkdir and mknod apply the umask.
        let _ = nix::sys::stat::fchmodat(
            None,
            &at,
            perm,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        );
    }
    Ok(at)
}
