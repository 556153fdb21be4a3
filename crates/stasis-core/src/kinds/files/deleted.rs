//! Regular files unlinked while open: the contents go into the image; restore recreates the
//! file beside its old path, reopens it with the saved flags, and unlinks it again.

use super::{read_all_at, reopen_flags, seek, DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let path = cx.link.trim_end_matches(" (deleted)").to_string();
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
    if !meta.is_file() {
        return Err(FilesError::Unsupported {
            pid: cx.pid,
            fd: cx.fd,
            kind: cx.link.to_string(),
            why: "only deleted regular files can be saved",
        });
    }
    let data = read_all_at(cx.stolen).map_err(|e| err("the deleted file's contents", e))?;
    let name = format!("blob-{}", *cx.next_blob);
    *cx.next_blob += 1;
    let content = stasis_image::write_blob(cx.image_dir, &name, &data)?;
    Ok(FileKindEntry::Deleted {
        path,
        mode: meta.mode(),
        content,
    })
}

pub fn open(image_dir: &Path, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Deleted {
        path,
        mode,
        content,
    } = &entry.kind
    else {
        unreachable!("deleted::open on another kind")
    };
    let data = stasis_image::read_blob(image_dir, content)?;
    let orig = Path::new(path);
    let dir = orig.parent().unwrap_or(Path::new("/"));
    // Recreated under its own name when that is free, so /proc/PID/fd shows the same
    // "PATH (deleted)" as before; otherwise beside it.
    let tmp = if std::fs::symlink_metadata(orig).is_err() {
        orig.to_path_buf()
    } else {
        dir.join(format!(
            ".stasis-deleted-{}-{}",
            std::process::id(),
            entry.id
        ))
    };
    let oerr = |op, source| FilesError::Open {
        id: entry.id,
        op,
        path: tmp.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o7777)
        .open(&tmp)
        .map_err(|e| oerr("create", e))?;
    let res = f
        .write_all(&data)
        .map_err(|e| oerr("write", e))
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .read(entry.flags as i32 & libc::O_ACCMODE != libc::O_WRONLY)
                .write(entry.flags as i32 & libc::O_ACCMODE != libc::O_RDONLY)
                .custom_flags(reopen_flags(entry.flags) & !libc::O_ACCMODE)
                .open(&tmp)
                .map_err(|e| oerr("reopen", e))
        });
    let _ = std::fs::remove_file(&tmp);
    let fd = OwnedFd::from(res?);
    seek(&fd, entry.pos);
    Ok(fd)
}
