//! Staged restore of an image: open every file in the restorer, fork a skeleton with the saved
//! PID, take it over with ptrace (EXITKILL: if we die, it dies), swap its address space for the
//! saved one by remote syscalls, restore per-process and per-thread state, registers last,
//! then let it run. A failure at any step kills the skeleton; the image is only read.

use crate::freeze::Pinned;
use crate::kinds::files::{self, FilesError};
use crate::kinds::memory::{self, MemoryError, TASK_SIZE};
use crate::kinds::process::{self, ProcessError};
use crate::kinds::{signal, thread};
use crate::scratch::{Scratch, SCRATCH_LEN};
use crate::tracee::{find_gadget, wait_stop, PtraceTracee, Tracee, TraceeError};
use stasis_image::{Image, VmaEntry, VmaKind};
use stasis_sys::clone::{self, Forked};
use stasis_sys::ptrace::{self, WaitStatus};
use stasis_sys::{Errno, Pid};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub dir: PathBuf,
}

/// A restored process, running; it is a child of the calling process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub pid: i32,
    pub pages: u64,
    pub page_bytes: u64,
    pub total: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Image(#[from] stasis_image::ImageError),
    #[error("the image was made on {arch}; this machine is {here}")]
    Arch { arch: String, here: String },
    #[error("the image holds {n} processes; restoring process trees is not supported yet")]
    Tree { n: usize },
    #[error("pid {pid} is taken by another process, so the image cannot be restored with its pid; stop that process, or (soon) restore into a fresh PID namespace")]
    PidTaken { pid: i32 },
    #[error("cannot create a process with pid {pid} (clone3 with set_tid needs root or CAP_CHECKPOINT_RESTORE)")]
    Clone {
        pid: i32,
        #[source]
        source: Errno,
    },
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Tracee(#[from] TraceeError),
    #[error("pid {pid}: cannot open {path} for the mapping at {addr:#x}")]
    MapFile {
        pid: i32,
        addr: u64,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot map the page file {path}")]
    Mmap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("skeleton {pid}: {step}")]
    Skeleton {
        pid: i32,
        step: &'static str,
        #[source]
        source: Errno,
    },
}

type Result<T, E = RestoreError> = std::result::Result<T, E>;

/// Files the restorer opened for the skeleton, parked at fd numbers >= `base` that the
/// skeleton inherits.
struct Prepared {
    base: i32,
    /// (source fd, target fd, cloexec)
    place: Vec<(i32, i32, bool)>,
    /// Mapping file fds by (path, writable).
    maps: HashMap<(String, bool), i32>,
    /// Parked fds by file id (mappings of deleted files and memfds use these).
    by_id: HashMap<u32, i32>,
    cwd: i32,
    exe: i32,
    _owned: Vec<OwnedFd>,
}

fn prepare(img: &Image, p: &stasis_image::ProcessEntry) -> Result<Prepared> {
    // Parked fds sit above every fd number the process uses.
    let base = p.fds.iter().map(|f| f.fd + 1).max().unwrap_or(0).max(3);
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let park = |fd: OwnedFd, owned: &mut Vec<OwnedFd>| -> Result<i32> {
        let high = stasis_sys::pidfd::dup_at_least(fd.as_raw_fd(), base).map_err(|source| {
            RestoreError::Skeleton {
                pid: p.pid,
                step: "parking an fd for the skeleton",
                source,
            }
        })?;
        let raw = high.as_raw_fd();
        owned.push(high);
        Ok(raw)
    };
    let mut owned = Vec::new();
    let mut by_id: HashMap<u32, i32> = HashMap::new();
    let mut cx = files::OpenCx {
        dir: &img.dir,
        pipes: HashMap::new(),
    };
    let mut place = Vec::new();
    for fd in &p.fds {
        let src = match by_id.get(&fd.file_id) {
            Some(&s) => s,
            None => {
                let entry = img
                    .files
                    .files
                    .iter()
                    .find(|f| f.id == fd.file_id)
                    .ok_or_else(|| stasis_image::ImageError::Decode {
                        path: img.dir.join(Image::FILES),
                        offset: 0,
                        reason: format!(
                            "fd {} of pid {} refers to missing file id {}",
                            fd.fd, p.pid, fd.file_id
                        ),
                    })?;
                let f = files::open(&mut cx, entry, fd.fd)?;
                let s = park(f, &mut owned)?;
                by_id.insert(fd.file_id, s);
                s
            }
        };
        place.push((src, fd.fd, fd.cloexec));
    }
    let mut maps = HashMap::new();
    for v in &p.vmas {
        if !matches!(v.kind, VmaKind::FilePrivate | VmaKind::FileShared) || v.file_id.is_some() {
            continue;
        }
        let path = v.path.clone().unwrap_or_default();
        let writable = v.kind == VmaKind::FileShared && v.prot & libc::PROT_WRITE as u32 != 0;
        if maps.contains_key(&(path.clone(), writable)) {
            continue;
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|source| RestoreError::MapFile {
                pid: p.pid,
                addr: v.start,
                path: path.clone(),
                source,
            })?;
        let s = park(f.into(), &mut owned)?;
        maps.insert((path, writable), s);
    }
    let open_dir = |path: &str, flags: libc::c_int| -> Result<OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
            .map(OwnedFd::from)
            .map_err(|source| RestoreError::MapFile {
                pid: p.pid,
                addr: 0,
                path: path.to_string(),
                source,
            })
    };
    let cwd = park(open_dir(&p.cwd, libc::O_DIRECTORY)?, &mut owned)?;
    let exe = park(open_dir(&p.exe, 0)?, &mut owned)?;
    Ok(Prepared {
        base,
        place,
        maps,
        by_id,
        cwd,
        exe,
        _owned: owned,
    })
}

/// Kills and reaps the skeleton unless disarmed.
struct SkeletonGuard {
    pid: Pid,
    armed: bool,
}

impl Drop for SkeletonGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = ptrace::kill(self.pid, libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }
}

/// Restore the image in `opts.dir`; the process runs when this returns.
pub fn restore(opts: &RestoreOptions) -> Result<Restored> {
    let t0 = Instant::now();
    let img = Image::open(&opts.dir)?;
    if img.inventory.arch != std::env::consts::ARCH {
        return Err(RestoreError::Arch {
            arch: img.inventory.arch.clone(),
            here: std::env::consts::ARCH.into(),
        });
    }
    if img.processes.len() != 1 {
        return Err(RestoreError::Tree {
            n: img.processes.len(),
        });
    }
    let p = &img.processes[0];
    let pm = &img.pagemaps[0];
    let pages_path = img.dir.join(&pm.pages_file);
    let (pages_file, pages_len) = stasis_image::read_pages_header(&pages_path)?;
    let prep = prepare(&img, p)?;

    let pid = Pid::from_raw(p.pid);
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|source| RestoreError::Skeleton {
        pid: p.pid,
        step: "creating the start pipe",
        source,
    })?;
    let child = match clone::clone_with_pid(pid) {
        Ok(Forked::Child) => clone::child_park(ready_w.as_raw_fd()),
        Ok(Forked::Parent(c)) => c,
        Err(Errno::EEXIST) => return Err(RestoreError::PidTaken { pid: p.pid }),
        Err(source) => return Err(RestoreError::Clone { pid: p.pid, source }),
    };
    let mut guard = SkeletonGuard {
        pid: child,
        armed: true,
    };
    // Take the skeleton over only once it has reset its signal state.
    drop(ready_w);
    let mut byte = [0u8; 1];
    match nix::unistd::read(ready_r.as_raw_fd(), &mut byte) {
        Ok(1) => {}
        Ok(_) => {
            return Err(RestoreError::Skeleton {
                pid: p.pid,
                step: "waiting for the skeleton to start",
                source: Errno::ECHILD,
            })
        }
        Err(source) => {
            return Err(RestoreError::Skeleton {
                pid: p.pid,
                step: "waiting for the skeleton to start",
                source,
            })
        }
    }
    drop(ready_r);
    ptrace::seize(
        child,
        ptrace::OPT_EXITKILL | ptrace::OPT_TRACESYSGOOD | ptrace::OPT_TRACECLONE,
    )
    .map_err(|source| RestoreError::Skeleton {
        pid: p.pid,
        step: "PTRACE_SEIZE",
        source,
    })?;
    ptrace::interrupt(child).map_err(|source| RestoreError::Skeleton {
        pid: p.pid,
        step: "PTRACE_INTERRUPT",
        source,
    })?;
    match wait_stop(child)? {
        WaitStatus::Stopped { .. } => {}
        other => {
            return Err(TraceeError::UnexpectedStop {
                pid: p.pid,
                step: "taking over the skeleton",
                status: format!("{other:?}"),
            }
            .into())
        }
    }
    let pin = Pinned::new(child);
    let pages = memory::PageSource {
        file: &pages_file,
        len: pages_len,
        path: &pages_path,
    };
    let mut threads = Vec::new();
    let stats = rebuild(child, &img, p, pm, &pages, &prep, &mut threads)?;
    drop(pin);
    for tid in std::iter::once(child).chain(threads) {
        ptrace::detach(tid, 0).map_err(|source| RestoreError::Skeleton {
            pid: tid.as_raw(),
            step: "PTRACE_DETACH",
            source,
        })?;
    }
    guard.armed = false;
    Ok(Restored {
        pid: p.pid,
        pages: stats.pages,
        page_bytes: stats.bytes,
        total: t0.elapsed(),
    })
}

fn rebuild(
    child: Pid,
    img: &Image,
    p: &stasis_image::ProcessEntry,
    pm: &stasis_image::PageIndexEntry,
    pages: &memory::PageSource,
    prep: &Prepared,
    created: &mut Vec<Pid>,
) -> Result<memory::PagesStats> {
    let pidn = p.pid;
    ptrace::set_sigmask(child, !0u64).map_err(|source| RestoreError::Skeleton {
        pid: pidn,
        step: "blocking signals",
        source,
    })?;
    let mut t = PtraceTracee::new(child)?;
    // The skeleton's current layout, for its special mappings.
    let maps_text = std::fs::read_to_string(format!("/proc/{child}/maps")).map_err(|source| {
        ProcessError::Read {
            pid: pidn,
            file: "maps",
            source,
        }
    })?;
    let here: Vec<VmaEntry> = stasis_procfs::maps::parse_maps(&maps_text)
        .map_err(|source| ProcessError::Parse {
            pid: pidn,
            file: "maps",
            source,
        })?
        .into_iter()
        .map(|m| stasis_procfs::smaps::SmapsEntry {
            map: m,
            rss_kb: 0,
            anonymous_kb: 0,
            swap_kb: 0,
            vm_flags: Default::default(),
        })
        .filter(|s| s.map.path.as_deref().is_some_and(|p| p.starts_with('[')))
        .flat_map(|s| memory::classify(std::slice::from_ref(&s)))
        .collect();
    let vdso = here
        .iter()
        .find(|v| v.kind == VmaKind::Vdso)
        .ok_or(TraceeError::NoGadget { pid: pidn })?;
    let gadget_off = find_gadget(&t, vdso.start, vdso.end)? - vdso.start;
    t.set_gadget(vdso.start + gadget_off);
    thread::unregister_rseq(&mut t)?;

    // Unmap everything of the skeleton but its special mappings.
    let mut keep: Vec<(u64, u64)> = here
        .iter()
        .filter(|v| matches!(v.kind, VmaKind::Vdso | VmaKind::Vvar | VmaKind::VvarVclock))
        .map(|v| (v.start, v.end))
        .collect();
    keep.sort();
    let mut cur = 0u64;
    for &(s, e) in keep.iter().chain(std::iter::once(&(TASK_SIZE, TASK_SIZE))) {
        if s > cur {
            t.syscall("munmap", libc::SYS_munmap, [cur, s - cur, 0, 0, 0, 0])
                .map_err(|source| MemoryError::Map {
                    pid: pidn,
                    start: cur,
                    end: s,
                    what: "unmapping the skeleton".into(),
                    source,
                })?;
        }
        cur = cur.max(e);
    }
    let moves = memory::plan_specials(&here, &p.vmas)?;
    memory::move_specials(&mut t, &moves, &p.vmas)?;
    if let Some(m) = moves.iter().find(|m| m.kind == VmaKind::Vdso) {
        t.set_gadget(m.to + gadget_off);
    }

    let scratch_at =
        memory::free_range(&p.vmas, &[], SCRATCH_LEN, 0x10_0000).ok_or(MemoryError::BadRun {
            path: img.dir.join(Image::process_file(pidn)),
            vaddr: 0,
        })?;
    let s = Scratch::map(&mut t, scratch_at)?;

    for v in &p.vmas {
        let fd = match v.kind {
            VmaKind::Vdso | VmaKind::Vvar | VmaKind::VvarVclock | VmaKind::Vsyscall => continue,
            VmaKind::FilePrivate | VmaKind::FileShared if v.file_id.is_some() => {
                v.file_id.and_then(|id| prep.by_id.get(&id)).copied()
            }
            VmaKind::FilePrivate | VmaKind::FileShared => {
                let writable =
                    v.kind == VmaKind::FileShared && v.prot & libc::PROT_WRITE as u32 != 0;
                prep.maps
                    .get(&(v.path.clone().unwrap_or_default(), writable))
                    .copied()
            }
            _ => None,
        };
        memory::map_vma(&mut t, v, fd)?;
    }
    let stats = memory::restore_pages(&mut t, &p.vmas, pm, pages)?;
    process::restore_mm(&mut t, s, &p.mm, prep.exe)?;
    process::restore_basics(&mut t, s, p, prep.cwd)?;

    // Descriptors: drop what the skeleton inherited below `base`, move the parked ones into
    // place, drop the parked copies.
    let fds_err = |source| MemoryError::Map {
        pid: pidn,
        start: 0,
        end: 0,
        what: "file descriptors".into(),
        source,
    };
    t.syscall(
        "close_range",
        libc::SYS_close_range,
        [0, (prep.base - 1) as u64, 0, 0, 0, 0],
    )
    .map_err(fds_err)?;
    for &(src, dst, cloexec) in &prep.place {
        let flags = if cloexec { libc::O_CLOEXEC as u64 } else { 0 };
        t.syscall(
            "dup3",
            libc::SYS_dup3,
            [src as u64, dst as u64, flags, 0, 0, 0],
        )
        .map_err(fds_err)?;
    }
    t.syscall(
        "close_range",
        libc::SYS_close_range,
        [prep.base as u64, u32::MAX as u64, 0, 0, 0, 0],
    )
    .map_err(fds_err)?;

    process::restore_rlimits(pidn, &p.rlimits)?;
    signal::restore_sigactions(&mut t, s, &p.sigactions)?;
    signal::restore_itimers(&mut t, s, &p.itimers)?;
    let th = &p.threads[0];
    thread::restore_inside(&mut t, s, th)?;
    signal::queue_signals(&mut t, s, Some(th.tid), &th.pending)?;
    signal::queue_signals(&mut t, s, None, &p.shared_pending)?;
    process::restore_creds(&mut t, s, &p.creds)?;
    process::restore_dumpable(&mut t, p.dumpable)?;
    // The other threads, cloned from the leader: they inherit its credentials.
    let mut threads = Vec::new();
    for th in &p.threads[1..] {
        let tid = thread::create_thread(&mut t, s, th.tid)?;
        threads.push(tid);
        let mut tt = PtraceTracee::new(tid)?;
        tt.set_gadget(t.gadget());
        thread::restore_inside(&mut tt, s, th)?;
        signal::queue_signals(&mut tt, s, Some(th.tid), &th.pending)?;
    }
    s.unmap(&mut t)?;
    thread::restore_cpu(child, th, false)?;
    for (tid, th) in threads.iter().zip(&p.threads[1..]) {
        thread::restore_cpu(*tid, th, false)?;
    }
    *created = threads;
    Ok(stats)
}
