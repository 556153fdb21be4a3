//! Pipes. Dump copies the bytes buffered in a pipe without consuming them: it opens a fresh
//! read end through /proc/PID/fd/N and tee(2)s the buffers into a pipe of ours. Restore makes
//! one new pipe per saved pipe, refills it, and hands out a description of the right end for
//! each saved one (so flags stay per description). A pipe whose other end is
//! outside the dumped processes gets a new, unconnected other end.

use super::{DumpFd, FilesError, OpenCx};
use nix::fcntl::{fcntl, FcntlArg, OFlag, SpliceFFlags};
use stasis_image::{FileEntry, FileKindEntry};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// The kind: see the module doc.
pub struct Pipe;

impl super::FileKind for Pipe {
    fn tags(&self) -> &'static [&'static str] {
        &["pipe"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link.starts_with("pipe:[")
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn leads_outside(&self, entry: &FileEntry, all: &[FileEntry]) -> bool {
        let FileKindEntry::Pipe { pipe_id, .. } = &entry.kind else {
            return false;
        };
        let reads = |f: &FileEntry| f.flags as i32 & libc::O_ACCMODE != libc::O_WRONLY;
        !all.iter().any(|f| {
            matches!(&f.kind, FileKindEntry::Pipe { pipe_id: p, .. } if p == pipe_id)
                && reads(f) != reads(entry)
        })
    }
    fn open(&self, cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(cx, entry)
    }
}

fn pipe_id(link: &str) -> u64 {
    link.trim_start_matches("pipe:[")
        .trim_end_matches(']')
        .parse()
        .unwrap_or(0)
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let id = pipe_id(cx.link);
    let err = |what, source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what,
        source,
    };
    let size = fcntl(cx.stolen.as_raw_fd(), FcntlArg::F_GETPIPE_SZ)
        .map_err(|e| err("the pipe size", e.into()))? as u32;
    if !cx.seen_pipes.insert(id) {
        return Ok(FileKindEntry::Pipe {
            pipe_id: id,
            size,
            data: None,
        });
    }
    let data = buffered(cx, size)?;
    Ok(FileKindEntry::Pipe {
        pipe_id: id,
        size,
        data,
    })
}

/// The bytes buffered in the pipe (or FIFO) behind `cx`'s fd, copied without consuming
/// them, into a blob of the image.
pub fn buffered(cx: &mut DumpFd, size: u32) -> Result<Option<stasis_image::BlobRef>, FilesError> {
    let err = |what, source| FilesError::Proc {
        pid: cx.pid,
        fd: cx.fd,
        what,
        source,
    };
    // A read end of our own on the same pipe: tee needs one, and the process may hold only
    // the write end.
    let reader: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/{}/fd/{}", cx.pid, cx.fd))
        .map_err(|e| err("a read end of the pipe", e))?
        .into();
    let (mut ours_r, ours_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map(|(r, w)| (std::fs::File::from(r), w))
        .map_err(|e| err("a pipe for copying", e.into()))?;
    let _ = fcntl(ours_w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(size as i32));
    let mut data = Vec::new();
    match nix::fcntl::tee(
        &reader,
        &ours_w,
        size as usize,
        SpliceFFlags::SPLICE_F_NONBLOCK,
    ) {
        Ok(n) => {
            data.resize(n, 0);
            ours_r
                .read_exact(&mut data)
                .map_err(|e| err("the pipe's buffered data", e))?;
        }
        Err(nix::errno::Errno::EAGAIN) => {} // empty pipe
        Err(e) => return Err(err("the pipe's buffered data (tee)", e.into())),
    }
    if data.is_empty() {
        return Ok(None);
    }
    let name = cx.blob_name();
    Ok(Some(stasis_image::write_blob(cx.image_dir, &name, &data)?))
}

/// New pipes by saved pipe id: (read end, write end), and whether each end's own description
/// was handed out already.
#[derive(Default)]
struct Pipes(std::collections::HashMap<u64, (OwnedFd, OwnedFd, [bool; 2])>);

pub fn open(cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Pipe {
        pipe_id,
        size,
        data,
    } = &entry.kind
    else {
        unreachable!("pipe::open on another kind")
    };
    let oerr = |op, source: std::io::Error| FilesError::Open {
        id: entry.id,
        op,
        path: format!("pipe:[{pipe_id}]").into(),
        source,
    };
    let dir = cx.dir;
    let pipes = &mut cx.state::<Pipes>().0;
    if !pipes.contains_key(pipe_id) {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| oerr("create", e.into()))?;
        let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(*size as i32));
        pipes.insert(*pipe_id, (r, w, [false; 2]));
    }
    let (r, w, used) = pipes.get_mut(pipe_id).expect("inserted above");
    if let Some(blob) = data {
        let bytes = stasis_image::read_blob(dir, blob)?;
        std::fs::File::from(w.try_clone().map_err(|e| oerr("dup", e))?)
            .write_all(&bytes)
            .map_err(|e| oerr("refill", e))?;
    }
    let writer = entry.flags as i32 & libc::O_ACCMODE == libc::O_WRONLY;
    let (end, first) = if writer {
        (&*w, &mut used[1])
    } else {
        (&*r, &mut used[0])
    };
    // Each saved open file description gets a description of its own on the pipe: the first
    // of each end is the pipe's own (pipe2 gives no O_LARGEFILE, which F_SETFL cannot take
    // away), the others are reopened through /proc, as a process does to hold two ends with
    // different flags. O_NONBLOCK lives in the description; fds that shared one share the one
    // made here.
    let fd: OwnedFd = if !*first {
        *first = true;
        end.try_clone().map_err(|e| oerr("dup", e))?
    } else {
        std::fs::OpenOptions::new()
            .read(!writer)
            .write(writer)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{}", end.as_raw_fd()))
            .map_err(|e| oerr("open a description of", e))?
            .into()
    };
    // O_NONBLOCK lives in the open file description: set what the process had.
    let fl = OFlag::from_bits_truncate(entry.flags as i32 & libc::O_NONBLOCK);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl)).map_err(|e| oerr("set flags of", e.into()))?;
    Ok(fd)
}
