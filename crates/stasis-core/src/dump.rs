//! The dump pipeline: freeze, collect every kind, write the image atomically, then release
//! the process (resume it, or kill it with `--kill` once the image is durable). Any failure
//! before the image is durable resumes the process exactly as it was and leaves no image.

use crate::freeze::{self, FreezeError, Pinned};
use crate::kinds::files::{self, FilesError};
use crate::kinds::memory::{self, MemoryError};
use crate::kinds::process::{self, ProcessError};
use crate::kinds::{signal, thread};
use crate::scratch::Scratch;
use crate::tracee::{find_gadget, resume_regs, PtraceTracee, Tracee, TraceeError};
use stasis_image::{
    FileKind, FilesEntry, Image, InventoryEntry, PageIndexEntry, PagesWriter, SiginfoEntry,
    ThreadEntry, VmaKind,
};
use stasis_procfs::{ProcSource, RealProc};
use stasis_store::{LocalStore, Store, StoreError};
use stasis_sys::ptrace;
use stasis_sys::Pid;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to dump and what to do afterwards.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    pub pid: i32,
    pub dir: PathBuf,
    /// Kill the process once the image is durable.
    pub kill: bool,
    /// Store page runs LZ4-compressed where that saves space.
    pub compress: bool,
}

/// What a dump did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DumpReport {
    pub pid: i32,
    pub dir: PathBuf,
    pub processes: usize,
    pub pages: u64,
    pub page_bytes: u64,
    /// Bytes the pages take in the image (less than page_bytes when compressed).
    pub stored_bytes: u64,
    /// How long the process was stopped.
    pub frozen: Duration,
    pub total: Duration,
    pub killed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Freeze(#[from] FreezeError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Tracee(#[from] TraceeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] stasis_image::ImageError),
    #[error("pid {pid}: cannot parse /proc/{pid}/smaps")]
    Smaps {
        pid: i32,
        #[source]
        source: stasis_procfs::ParseError,
    },
    #[error(
        "pid {pid} has child processes ({children}); dumping process trees is not supported yet"
    )]
    Children { pid: i32, children: String },
    #[error("pid {pid}: cannot open a pidfd")]
    Pidfd {
        pid: i32,
        #[source]
        source: stasis_sys::Errno,
    },
    #[error("pid {pid}: the image is durable but killing the process failed")]
    Kill {
        pid: i32,
        #[source]
        source: stasis_sys::Errno,
    },
}

type Result<T, E = DumpError> = std::result::Result<T, E>;

/// Dump one process (see the module doc for the guarantees).
pub fn dump(opts: &DumpOptions) -> Result<DumpReport> {
    let t0 = Instant::now();
    let pid = opts.pid;
    let src = RealProc;
    // Refuse what this version cannot capture before touching the process.
    let pre = process::dump(&src, pid)?;
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    if !children.trim().is_empty() {
        return Err(DumpError::Children {
            pid,
            children: children.trim().to_string(),
        });
    }
    let staging = LocalStore.stage(&opts.dir)?;
    let mut state = freeze_all(Pid::from_raw(pid), pre.entry.stopped)?;
    let t_frozen = Instant::now();
    tracing::debug!(pid, took = ?t0.elapsed(), "frozen");
    let result = collect(&mut state, staging.dir(), opts.compress).and_then(|stats| {
        tracing::debug!(pid, took = ?t0.elapsed(), "image written");
        let dir = LocalStore.put(staging)?;
        tracing::debug!(pid, took = ?t0.elapsed(), "image durable");
        Ok((stats, dir))
    });
    match result {
        Ok((stats, dir)) => {
            let frozen_for = t_frozen.elapsed();
            let killed = if opts.kill {
                ptrace::kill(state.pid, libc::SIGKILL)
                    .map_err(|source| DumpError::Kill { pid, source })?;
                // As their tracer we see the deaths first (threads included); the parent can
                // reap the process only after.
                for th in state.threads.iter().rev() {
                    let _ = ptrace::wait(th.tid, false);
                }
                wait_gone(pid, Duration::from_secs(10));
                true
            } else {
                state.release(true);
                false
            };
            Ok(DumpReport {
                pid,
                dir,
                processes: 1,
                pages: stats.pages,
                page_bytes: stats.bytes,
                stored_bytes: stats.stored,
                frozen: frozen_for,
                total: t0.elapsed(),
                killed,
            })
        }
        Err(e) => {
            state.release(true);
            Err(e)
        }
    }
}

/// Wait (bounded) until `pid` no longer exists, so a restore right after cannot collide with
/// a zombie the parent or init has not reaped yet.
fn wait_gone(pid: i32, limit: Duration) {
    let t = Instant::now();
    let path = format!("/proc/{pid}/stat");
    while t.elapsed() < limit {
        match std::fs::read_to_string(&path) {
            Err(_) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    tracing::warn!(
        pid,
        "the killed process has not been reaped yet; a restore may find its PID taken"
    );
}

/// One seized thread and what must be put back before it runs again.
struct SeizedThread {
    tid: Pid,
    base: Option<ptrace::Regs>,
    sigmask: Option<u64>,
}

/// A seized process: every thread stopped under ptrace, the leader first.
struct Seized {
    pid: Pid,
    threads: Vec<SeizedThread>,
}

/// Seize and stop every thread of `pid`, rescanning /proc/PID/task until no new thread
/// appears (a thread may be creating another while we seize). A thread that exits meanwhile
/// is skipped; any other failure releases what was seized.
fn freeze_all(pid: Pid, stopped: bool) -> Result<Seized> {
    let mut seized = Seized {
        pid,
        threads: Vec::new(),
    };
    loop {
        let tids = list_tasks(pid.as_raw());
        let new: Vec<i32> = tids
            .into_iter()
            .filter(|t| !seized.threads.iter().any(|s| s.tid.as_raw() == *t))
            .collect();
        if new.is_empty() {
            break;
        }
        for tid in new {
            match freeze::seize_and_stop(Pid::from_raw(tid), ptrace::OPT_TRACESYSGOOD, stopped) {
                Ok(f) => seized.threads.push(SeizedThread {
                    tid: f.pid,
                    base: None,
                    sigmask: None,
                }),
                Err(FreezeError::NoSuchProcess { .. } | FreezeError::Gone { .. })
                    if tid != pid.as_raw() => {}
                Err(e) => {
                    seized.release(true);
                    return Err(e.into());
                }
            }
        }
    }
    // The leader first: it is the one whose registers drive process-wide remote syscalls.
    seized
        .threads
        .sort_by_key(|t| (t.tid != pid, t.tid.as_raw()));
    Ok(seized)
}

/// Thread ids of `pid`, from /proc/PID/task.
fn list_tasks(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

impl Seized {
    /// Put every thread's saved registers and signal mask back without detaching.
    fn release_cpu(&mut self, same_process: bool) -> Result<(), TraceeError> {
        for th in &mut self.threads {
            let tid = th.tid.as_raw();
            if let Some(base) = th.base.take() {
                ptrace::set_regs(th.tid, &resume_regs(&base, same_process)).map_err(|source| {
                    TraceeError::Ptrace {
                        pid: tid,
                        step: "SETREGS",
                        source,
                    }
                })?;
            }
            if let Some(mask) = th.sigmask.take() {
                ptrace::set_sigmask(th.tid, mask).map_err(|source| TraceeError::Ptrace {
                    pid: tid,
                    step: "SETSIGMASK",
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Put registers and masks back and detach every thread; the process continues where it
    /// was.
    fn release(&mut self, same_process: bool) {
        let _ = self.release_cpu(same_process);
        for th in &self.threads {
            let _ = ptrace::detach(th.tid, 0);
        }
    }
}

fn collect(
    state: &mut Seized,
    dir: &std::path::Path,
    compress: bool,
) -> Result<memory::PagesStats> {
    let pid = state.pid.as_raw();
    let src = RealProc;
    let pin = Pinned::new(state.pid);
    let mut outside = Vec::new();
    for th in &mut state.threads {
        let o = thread::dump_outside(th.tid)?;
        th.sigmask = Some(o.sigmask);
        // Keep every signal queued while we drive the threads (see tracee.rs).
        ptrace::set_sigmask(th.tid, !0u64).map_err(|source| TraceeError::Ptrace {
            pid: th.tid.as_raw(),
            step: "SETSIGMASK",
            source,
        })?;
        outside.push(o);
    }
    let info = process::dump(&src, pid)?;
    let smaps_text = src
        .read_string(Some(pid), "smaps")
        .map_err(|source| ProcessError::Read {
            pid,
            file: "smaps",
            source,
        })?;
    let smaps = stasis_procfs::smaps::parse_smaps(&smaps_text)
        .map_err(|source| DumpError::Smaps { pid, source })?;
    let mut vmas = memory::classify(&smaps);
    let shared_pending = ptrace::peek_siginfo(state.pid, true)
        .map_err(|source| TraceeError::Ptrace {
            pid,
            step: "PEEKSIGINFO shared",
            source,
        })?
        .into_iter()
        .map(|raw| SiginfoEntry { raw: raw.to_vec() })
        .collect();

    let mut tracees = Vec::new();
    for th in &mut state.threads {
        let t = PtraceTracee::new(th.tid)?;
        th.base = Some(*t.base_regs());
        tracees.push(t);
    }
    let vdso = vmas
        .iter()
        .find(|v| v.kind == VmaKind::Vdso)
        .ok_or(TraceeError::NoGadget { pid })?;
    let gadget = find_gadget(&tracees[0], vdso.start, vdso.end)?;
    for t in &mut tracees {
        t.set_gadget(gadget);
    }
    let (t, others) = tracees.split_first_mut().expect("the leader is seized");
    let s = Scratch::map(t, 0)?;
    let inside = (|| -> Result<_, TraceeError> {
        let acts = signal::dump_sigactions(t, s)?;
        let timers = signal::dump_itimers(t, s)?;
        let mut per_thread = vec![thread::dump_inside(t, s)?];
        for o in others.iter_mut() {
            per_thread.push(thread::dump_inside(o, s)?);
        }
        let brk = process::dump_brk(t)?;
        let dumpable = process::dump_dumpable(t)?;
        Ok((acts, timers, per_thread, brk, dumpable))
    })();
    let unmapped = s.unmap(t);
    let (sigactions, itimers, per_thread, brk, dumpable) = inside?;
    unmapped?;
    // The process needs nothing from inside any more: give it back its own registers and mask
    // now, so that if stasis dies during the long page copy the kernel's detach lets it run on
    // exactly where it was.
    state.release_cpu(true)?;
    tracing::debug!(pid, "remote-syscall phase done");
    // Remote syscalls are over: unpin, so the page copy can use both CPUs.
    drop(pin);

    // Files.
    let pidfd = stasis_sys::pidfd::pidfd_open(state.pid)
        .map_err(|source| DumpError::Pidfd { pid, source })?;
    let mut next_blob = 0;
    let fds = files::dump_fds(pid, &pidfd, dir, 1, &mut next_blob)?;
    memory::link_deleted(pid, &smaps, &mut vmas, &fds.inodes)?;

    // Memory.
    let t_mem = Instant::now();
    let regions = memory::pages_to_save(pid, &vmas)?;
    tracing::debug!(pid, regions = regions.len(), took = ?t_mem.elapsed(), "scanned for pages to save");
    let mut writer = PagesWriter::create(dir, &Image::pages_file(pid))?;
    let mut index = PageIndexEntry {
        pid,
        pages_file: Image::pages_file(pid),
        runs: Vec::new(),
    };
    let stats = memory::dump_pages(&*t, pid, &regions, &mut writer, &mut index, compress)?;
    tracing::debug!(pid, pages = stats.pages, took = ?t_mem.elapsed(), "pages copied");
    // Flush the page file while the records are written; the store's final fsync of it then
    // finds nothing left to do.
    let pages_file = writer.finish();
    let flushing = std::thread::spawn(move || pages_file.sync_data());

    let xfeatures = outside[0]
        .xstate
        .get(464..472)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(0);
    let mut entry = info.entry;
    entry.mm.brk = brk;
    entry.dumpable = dumpable;
    entry.vmas = vmas;
    entry.sigactions = sigactions;
    entry.itimers = itimers;
    entry.shared_pending = shared_pending;
    entry.fds = fds.fds;
    entry.threads = outside
        .into_iter()
        .zip(per_thread)
        .zip(std::iter::once(&*t).chain(others.iter()))
        .map(|((o, (clear_child_tid, altstack)), tr)| ThreadEntry {
            tid: tr.pid(),
            regs: thread::regs_entry(tr.base_regs()),
            xstate: o.xstate,
            sigmask: o.sigmask,
            pending: o.pending,
            rseq: o.rseq,
            robust_list: o.robust.0,
            robust_list_len: o.robust.1,
            clear_child_tid,
            altstack,
        })
        .collect();
    stasis_image::write_record_file(dir, &Image::process_file(pid), FileKind::Process, &entry)?;
    stasis_image::write_record_file(dir, &Image::pagemap_file(pid), FileKind::PageIndex, &index)?;
    stasis_image::write_record_file(
        dir,
        Image::FILES,
        FileKind::Files,
        &FilesEntry { files: fds.files },
    )?;
    let inventory = InventoryEntry {
        stasis_version: env!("CARGO_PKG_VERSION").to_string(),
        arch: std::env::consts::ARCH.to_string(),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        root_pid: pid,
        pids: vec![pid],
        xfeatures,
        parent: None,
    };
    stasis_image::write_record_file(dir, Image::INVENTORY, FileKind::Inventory, &inventory)?;
    let _ = flushing.join();
    Ok(stats)
}
