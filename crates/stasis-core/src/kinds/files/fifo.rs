//! FIFOs (named pipes). Dump keeps the path and, once per FIFO, the buffered bytes (copied
//! like a pipe's, without consuming them). Restore first opens the FIFO read-write (which
//! never blocks and keeps the FIFO's buffer alive), refills it, then opens each saved end
//! with its own flags.

use super::{pipe, DumpFd, FilesError, OpenCx};
use stasis_image::{FileEntry, FileKindEntry};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// The kind: see the module doc.
pub struct Fifo;

impl super::FileKind for Fifo {
    fn tags(&self) -> &'static [&'static str] {
        &["fifo"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link.starts_with('/') && cx.file_type() == libc::S_IFIFO
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let ino = cx.info.ino;
    let data = if cx.seen_pipes.insert(ino) {
        let size = nix::fcntl::fcntl(cx.stolen.as_raw_fd(), nix::fcntl::FcntlArg::F_GETPIPE_SZ)
            .unwrap_or(65536) as u32;
        pipe::buffered(cx, size)?
    } else {
        None
    };
    Ok(FileKindEntry::Fifo {
        path: cx.link.to_string(),
        fifo_id: ino,
        data,
    })
}

/// FIFOs opened read-write by the restorer, by saved inode (keeps their buffers alive).
#[derive(Default)]
struct Holders(std::collections::HashMap<u64, OwnedFd>);

pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Fifo {
        path,
        fifo_id,
        data,
    } = &entry.kind
    else {
        unreachable!("fifo::open on another kind")
    };
    let oerr = |op, source| FilesError::Open {
        id: entry.id,
        op,
        path: path.into(),
        source,
    };
    let dir = cx.dir;
    let fifos = &mut cx.state::<Holders>().0;
    if !fifos.contains_key(fifo_id) {
        let holder: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| oerr("open", e))?
            .into();
        let meta = std::fs::File::from(holder.try_clone().map_err(|e| oerr("dup", e))?)
            .metadata()
            .map_err(|e| oerr("stat", e))?;
        if meta.mode() & libc::S_IFMT != libc::S_IFIFO {
            return Err(FilesError::Changed {
                id: entry.id,
                path: path.into(),
                what: "it is no longer a FIFO".into(),
            });
        }
        fifos.insert(*fifo_id, holder);
    }
    if let Some(blob) = data {
        let bytes = stasis_image::read_blob(dir, blob)?;
        let h = fifos[fifo_id].try_clone().map_err(|e| oerr("dup", e))?;
        std::fs::File::from(h)
            .write_all(&bytes)
            .map_err(|e| oerr("refill", e))?;
    }
    // With the holder open, neither end blocks; O_NONBLOCK is then set as saved.
    let acc = entry.flags as i32 & libc::O_ACCMODE;
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(acc != libc::O_WRONLY)
        .write(acc != libc::O_RDONLY)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| oerr("reopen", e))?
        .into();
    let fl = nix::fcntl::OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))
        .map_err(|e| oerr("set flags of", e.into()))?;
    Ok(fd)
}
