//! Regular files unlinked while open: the contents go into the image; restore recreates the
//! file beside its old path, reopens it with the saved flags, and unlinks it again.

use super::{reopen_flags, seek, DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The kind: see the module doc.
pub struct Deleted;

impl super::FileKind for Deleted {
    fn tags(&self) -> &'static [&'static str] {
        &["deleted"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link.starts_with('/') && cx.link.ends_with(" (deleted)")
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
    fn finish(&self, cx: &mut super::OpenCx) -> Result<(), FilesError> {
        cx.state::<Recreated>().remove_all();
        Ok(())
    }
}

/// Deleted files recreated by this restore, by saved inode, kept linked while other
/// descriptions of them are opened and removed at the end (or when the restore fails).
#[derive(Default)]
struct Recreated(std::collections::HashMap<u64, std::path::PathBuf>);

impl Recreated {
    fn remove_all(&mut self) {
        for (_, p) in self.0.drain() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Recreated {
    fn drop(&mut self) {
        self.remove_all();
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let path = cx.link.trim_end_matches(" (deleted)").to_string();
    let err = |what, source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what,
        source,
    };
    if cx.file_type() != libc::S_IFREG {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "only deleted regular files can be saved",
        });
    }
    // A descriptor of our own to read through: the process's may be write-only or O_PATH, and
    // its offset must not move (SEEK_DATA/SEEK_HOLE move it). An fd of the process is reopened
    // through its /proc link; a mapping's (fd -1) is already ours.
    let own;
    let reader = if cx.fd >= 0 {
        own = OwnedFd::from(
            std::fs::File::open(format!("/proc/{}/fd/{}", cx.pid, cx.fd))
                .map_err(|e| err("the deleted file (reopened to read it)", e))?,
        );
        &own
    } else {
        cx.stolen
    };
    let f = std::fs::File::from(reader.try_clone().map_err(|e| err("the descriptor", e))?);
    let meta = f.metadata().map_err(|e| err("the file's metadata", e))?;
    if meta.nlink() > 0 {
        if let Some(made) = cx.link_remap.as_deref_mut() {
            // Unlinked here but linked elsewhere: a link of ours to the same inode, next to
            // the old path, keeps it the same file for the restore.
            let remap = Path::new(&path)
                .parent()
                .filter(|d| d.is_dir())
                .map(|d| d.join(format!(".stasis-link-remap-{}", meta.ino())));
            if let Some(remap) = remap {
                let _ = std::fs::remove_file(&remap);
                nix::unistd::linkat(
                    None,
                    Path::new(&format!("/proc/self/fd/{}", cx.stolen.as_raw_fd())),
                    None,
                    remap.as_path(),
                    nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
                )
                .map_err(|e| err("a link back to the unlinked file (--link-remap)", e.into()))?;
                made.push(remap.clone());
                let name = cx.blob_name();
                let content = stasis_image::write_blob(cx.image_dir, &name, &[])?;
                return Ok(FileKindEntry::Deleted {
                    path,
                    mode: meta.mode(),
                    content,
                    size: None,
                    extents: Vec::new(),
                    owner: None,
                    times: None,
                    ino: meta.ino(),
                    remap: Some(remap.to_string_lossy().into_owned()),
                });
            }
        }
    }
    let extents = data_extents(&f, meta.len()).map_err(|e| err("the deleted file's holes", e))?;
    let data_bytes: u64 = extents.iter().map(|e| e.1).sum();
    if let Some(limit) = cx.ghost_limit.filter(|l| data_bytes > *l) {
        return Err(FilesError::GhostLimit {
            pid: cx.pid,
            fd: cx.fd,
            path,
            size: data_bytes,
            limit,
        });
    }
    let mut data = Vec::with_capacity(data_bytes as usize);
    for &(off, len) in &extents {
        let start = data.len();
        data.resize(start + len as usize, 0);
        f.read_exact_at(&mut data[start..], off)
            .map_err(|e| err("the deleted file's contents", e))?;
    }
    let name = cx.blob_name();
    let content = stasis_image::write_blob(cx.image_dir, &name, &data)?;
    Ok(FileKindEntry::Deleted {
        path,
        mode: meta.mode(),
        content,
        size: Some(meta.len()),
        extents,
        owner: Some((meta.uid(), meta.gid())),
        times: Some([
            (meta.atime(), meta.atime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
        ]),
        ino: meta.ino(),
        remap: None,
    })
}

/// The (offset, length) runs of data of a file of `size` bytes (SEEK_DATA/SEEK_HOLE; a file
/// system without them reports one run of everything).
fn data_extents(f: &std::fs::File, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut at = 0i64;
    while (at as u64) < size {
        let start = match nix::unistd::lseek(fd, at, nix::unistd::Whence::SeekData) {
            Ok(s) => s,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = nix::unistd::lseek(fd, start, nix::unistd::Whence::SeekHole)
            .map_err(std::io::Error::from)?
            .min(size as i64);
        if end > start {
            out.push((start as u64, (end - start) as u64));
        }
        at = end;
    }
    Ok(out)
}

pub fn open(cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Deleted {
        path,
        mode,
        content,
        size,
        extents,
        owner,
        times,
        ino,
        remap,
    } = &entry.kind
    else {
        unreachable!("deleted::open on another kind")
    };
    let reopen = |at: &Path| {
        std::fs::OpenOptions::new()
            .read(entry.flags as i32 & libc::O_ACCMODE != libc::O_WRONLY)
            .write(entry.flags as i32 & libc::O_ACCMODE != libc::O_RDONLY)
            .custom_flags(reopen_flags(entry.flags) & !libc::O_ACCMODE)
            .open(at)
            .map_err(|source| FilesError::Open {
                id: entry.id,
                op: "reopen",
                path: at.to_path_buf(),
                source,
            })
    };
    if let Some(r) = remap {
        // The same inode, through the link the dump made (removed at the end).
        let at = std::path::PathBuf::from(r);
        let fd = OwnedFd::from(reopen(&at)?);
        cx.state::<Recreated>().0.insert(*ino, at);
        seek(&fd, entry.pos);
        return Ok(fd);
    }
    if let Some(at) = cx.state::<Recreated>().0.get(ino).cloned() {
        // Another description of a file recreated already.
        let fd = OwnedFd::from(reopen(&at)?);
        seek(&fd, entry.pos);
        return Ok(fd);
    }
    let data = stasis_image::read_blob(cx.dir, content)?;
    let tmp = super::place_for_deleted(Path::new(path), entry.id);
    let oerr = |op, source| FilesError::Open {
        id: entry.id,
        op,
        path: tmp.clone(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o7777)
        .open(&tmp)
        .map_err(|e| oerr("create", e))?;
    let res = fill(&f, &data, *size, extents, *mode, *owner, *times)
        .map_err(|e| oerr("write", e))
        .and_then(|_| reopen(&tmp));
    if *ino != 0 && res.is_ok() {
        // Kept until the end: other descriptions of it may come (removed by `finish`).
        cx.state::<Recreated>().0.insert(*ino, tmp.clone());
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
    let fd = OwnedFd::from(res?);
    seek(&fd, entry.pos);
    Ok(fd)
}

/// Write the saved contents (holes as holes), then owner, mode and times, in that order
/// (a chown drops set-uid bits, and every write moves the modification time).
fn fill(
    f: &std::fs::File,
    data: &[u8],
    size: Option<u64>,
    extents: &[(u64, u64)],
    mode: u32,
    owner: Option<(u32, u32)>,
    times: Option<[(i64, i64); 2]>,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    match size {
        None => f.write_all_at(data, 0)?,
        Some(size) => {
            let mut from = 0usize;
            for &(off, len) in extents {
                let chunk = data.get(from..from + len as usize).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the saved contents are shorter than their extents",
                    )
                })?;
                f.write_all_at(chunk, off)?;
                from += len as usize;
            }
            f.set_len(size)?;
        }
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(f, Some(uid), Some(gid))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
    if let Some([(asec, ansec), (msec, mnsec)]) = times {
        let ts = [
            nix::sys::time::TimeSpec::new(asec, ansec),
            nix::sys::time::TimeSpec::new(msec, mnsec),
        ];
        nix::sys::stat::futimens(f.as_raw_fd(), &ts[0], &ts[1]).map_err(std::io::Error::from)?;
    }
    Ok(())
}
