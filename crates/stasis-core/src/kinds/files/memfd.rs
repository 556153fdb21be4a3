//! memfds: name and contents go into the image; restore creates a memfd of the same name,
//! fills it, and reopens it with the saved access mode.

use super::{read_all_at, seek, DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The kind: see the module doc.
pub struct Memfd;

impl super::FileKind for Memfd {
    fn tags(&self) -> &'static [&'static str] {
        &["memfd"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link.starts_with("/memfd:")
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx.dir, entry)
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    // "/memfd:NAME (deleted)"
    let name = cx
        .link
        .trim_start_matches("/memfd:")
        .trim_end_matches(" (deleted)")
        .to_string();
    let data = read_all_at(cx.stolen).map_err(|source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what: "the memfd's contents",
        source,
    })?;
    let blob = cx.blob_name();
    let content = stasis_image::write_blob(cx.image_dir, &blob, &data)?;
    let seals = nix::fcntl::fcntl(cx.stolen.as_raw_fd(), nix::fcntl::FcntlArg::F_GET_SEALS)
        .unwrap_or(0) as u32;
    Ok(FileKindEntry::Memfd {
        name,
        content,
        seals,
    })
}

pub fn open(image_dir: &Path, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Memfd {
        name,
        content,
        seals,
    } = &entry.kind
    else {
        unreachable!("memfd::open on another kind")
    };
    let data = stasis_image::read_blob(image_dir, content)?;
    let oerr = |op, source| FilesError::Open {
        id: entry.id,
        op,
        path: format!("memfd:{name}").into(),
        source,
    };
    let fd = stasis_sys::pidfd::memfd_create(name).map_err(|e| oerr("create", e.into()))?;
    std::fs::File::from(fd.try_clone().map_err(|e| oerr("dup", e))?)
        .write_all(&data)
        .map_err(|e| oerr("write", e))?;
    if *seals != 0 && *seals != libc::F_SEAL_SEAL as u32 {
        let _ = nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(
                *seals as i32,
            )),
        );
    }
    seek(&fd, entry.pos);
    Ok(fd)
}
