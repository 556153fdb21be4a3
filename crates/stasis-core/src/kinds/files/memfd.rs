//! memfds: name and contents go into the image; restore creates a memfd of the same name,
//! fills it, and reopens it with the saved access mode.

use super::{read_all_at, seek, DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

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
        open(cx, entry)
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
    let meta = std::fs::File::from(cx.stolen.try_clone().map_err(|source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what: "the memfd",
        source,
    })?)
    .metadata()
    .ok();
    use std::os::unix::fs::MetadataExt;
    Ok(FileKindEntry::Memfd {
        name,
        content,
        seals,
        mode: Some(cx.mode & 0o7777),
        ino: meta.map_or(0, |m| m.ino()),
    })
}

/// Memfds made by this restore, by saved inode, and whether their memfd_create description
/// was handed out already.
#[derive(Default)]
struct Made(std::collections::HashMap<u64, (OwnedFd, bool)>);

pub fn open(cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Memfd {
        name,
        content,
        seals,
        mode,
        ino,
    } = &entry.kind
    else {
        unreachable!("memfd::open on another kind")
    };
    let oerr = |op, source| FilesError::Open {
        id: entry.id,
        op,
        path: format!("memfd:{name}").into(),
        source,
    };
    let made = cx.state::<Made>().0.get(ino).filter(|_| *ino != 0);
    let (base, given) = match made {
        Some((fd, given)) => (fd.try_clone().map_err(|e| oerr("dup", e))?, *given),
        None => {
            let data = stasis_image::read_blob(cx.dir, content)?;
            let fd = stasis_sys::pidfd::memfd_create(name).map_err(|e| oerr("create", e.into()))?;
            let f = std::fs::File::from(fd.try_clone().map_err(|e| oerr("dup", e))?);
            (&f).write_all(&data).map_err(|e| oerr("write", e))?;
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(*m))
                    .map_err(|e| oerr("chmod", e))?;
            }
            if *seals != 0 && *seals != libc::F_SEAL_SEAL as u32 {
                let _ = nix::fcntl::fcntl(
                    fd.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(
                        *seals as i32,
                    )),
                );
            }
            if *ino != 0 {
                let keep = fd.try_clone().map_err(|e| oerr("dup", e))?;
                cx.state::<Made>().0.insert(*ino, (keep, false));
            }
            (fd, false)
        }
    };
    let flags = super::reopen_flags(entry.flags);
    if !given && flags & libc::O_ACCMODE == libc::O_RDWR {
        // The memfd_create description itself, once: unlike a reopen through /proc it does
        // not count as a writer (i_writecount), so execveat(fd, "", AT_EMPTY_PATH) of it
        // keeps working (zdtm memfd04/05; CRIU does the same).
        let fl = nix::fcntl::OFlag::from_bits_truncate(flags & !libc::O_ACCMODE & !libc::O_CLOEXEC);
        nix::fcntl::fcntl(base.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl))
            .map_err(|e| oerr("set flags of", e.into()))?;
        if let Some(m) = cx.state::<Made>().0.get_mut(ino) {
            m.1 = true;
        }
        seek(&base, entry.pos);
        return Ok(base);
    }
    // An open file description of its own, with the saved access mode and status flags
    // (O_APPEND, O_NONBLOCK...): reopened through /proc like any file.
    use std::os::unix::fs::OpenOptionsExt;
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(flags & libc::O_ACCMODE != libc::O_WRONLY)
        .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
        .custom_flags(flags & !libc::O_ACCMODE)
        .open(format!("/proc/self/fd/{}", base.as_raw_fd()))
        .map_err(|e| oerr("reopen", e))?
        .into();
    seek(&fd, entry.pos);
    Ok(fd)
}
