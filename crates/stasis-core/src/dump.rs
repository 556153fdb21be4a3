//! The dump pipeline: freeze, collect every kind, write the image atomically, then release
//! the process (resume it, or kill it with `--kill` once the image is durable). Any failure
//! before the image is durable resumes the process exactly as it was and leaves no image.

use crate::freeze::{freeze_tree, kill_tree, release_all, wait_gone, FreezeError, Pinned, Seized};
use crate::kinds::cgroups;
use crate::kinds::files::{self, FilesError};
use crate::kinds::memory::{self, MemoryError};
use crate::kinds::process::{self, ProcessError};
use crate::kinds::{signal, sysvshm, thread};
use crate::scratch::Scratch;
use crate::tracee::{find_gadget, find_gadget_anywhere, PtraceTracee, Tracee, TraceeError};
use stasis_image::{
    CgroupMemberEntry, CredsEntry, FileKind, FilesEntry, Image, InventoryEntry, PageIndexEntry,
    PagesWriter, SiginfoEntry, ThreadEntry, VmaKind,
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
    /// Save established TCP connections with TCP_REPAIR (otherwise they fail the dump).
    pub tcp_established: bool,
    /// The job's cgroup (v2), under `stasis run`: frozen while the tree is seized, so no
    /// process can fork or leave between the tree walk and the seize, and checked to hold
    /// nothing outside the tree.
    pub cgroup: Option<PathBuf>,
    /// The largest deleted file whose contents the dump saves (`--ghost-limit`, counting
    /// data, not holes); a larger one fails the dump. None: no limit.
    pub ghost_limit: Option<u64>,
    /// Save file locks (`--file-locks`); without it a process holding one fails the dump, as
    /// with CRIU (a lock may guard a file shared with processes outside the tree).
    pub file_locks: bool,
    /// A file unlinked while open but still linked elsewhere is saved as a hard link to it
    /// (`--link-remap`), so restore opens the very same file; otherwise its contents are
    /// copied.
    pub link_remap: bool,
    /// Save the tree's cgroups (`--manage-cgroups`), their paths taken from these roots
    /// (`--cgroup-root [CTRL:]PATH`).
    pub cgroups: Option<crate::kinds::cgroups::Roots>,
    /// Counts the page bytes copied so far, for a caller that shows progress.
    pub progress: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
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
    #[serde(rename = "frozen_secs", serialize_with = "crate::serialize_secs")]
    pub frozen: Duration,
    #[serde(rename = "total_secs", serialize_with = "crate::serialize_secs")]
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
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(transparent)]
    Image(#[from] stasis_image::ImageError),
    #[error(transparent)]
    Cgroups(#[from] cgroups::CgroupsError),
    #[error("pid {pid}: cannot parse /proc/{pid}/smaps")]
    Smaps {
        pid: i32,
        #[source]
        source: stasis_procfs::ParseError,
    },
    #[error("pid {pid}: cannot open a pidfd")]
    Pidfd {
        pid: i32,
        #[source]
        source: stasis_sys::Errno,
    },
    #[error("pid {pid} thread {tid} has a SIGTRAP pending: it cannot be told apart from the traps of the tracer, so it cannot be saved; let the process take it, then dump again")]
    PendingTrap { pid: i32, tid: i32 },
    #[error("pid {pid} made a time namespace for its children ({ns}): stasis cannot save time namespaces other than the one it dumps from")]
    TimensForChildren { pid: i32, ns: String },
    #[error("pid {pid} is in a time namespace of its own ({ns}): stasis cannot save its clock offsets; dump it from inside that namespace (as stasis run does)")]
    TimensOwn { pid: i32, ns: String },
}

type Result<T, E = DumpError> = std::result::Result<T, E>;

/// Dump a process and all its descendants (see the module doc for the guarantees).
pub fn dump(opts: &DumpOptions) -> Result<DumpReport> {
    let t0 = Instant::now();
    let pid = opts.pid;
    // An unknown pid is refused before anything is created.
    if !std::path::Path::new(&format!("/proc/{pid}/stat")).exists() {
        return Err(ProcessError::NoSuchProcess { pid }.into());
    }
    let staging = LocalStore.stage(&opts.dir)?;
    let frozen_cg = match &opts.cgroup {
        Some(cg) => Some(crate::cgroup::Frozen::new(cg)?),
        None => None,
    };
    let mut tree = freeze_tree(Pid::from_raw(pid))?;
    if let Some(cg) = frozen_cg {
        // Every process of the job must be in the tree we hold, or the image misses one.
        let pids: Vec<i32> = tree.iter().map(|p| p.pid.as_raw()).collect();
        if let Err(e) = cg.check_all_in(&pids) {
            release_all(&mut tree);
            return Err(e.into());
        }
        // Thawed at once: the seized tasks stay in their ptrace stops.
        drop(cg);
    }
    let t_frozen = Instant::now();
    tracing::debug!(pid, processes = tree.len(), took = ?t0.elapsed(), "frozen");
    let mut table = files::FileTable::default();
    table.tcp_established = opts.tcp_established;
    table.ghost_limit = opts.ghost_limit;
    table.file_locks = opts.file_locks;
    table.link_remap = opts.link_remap;
    let written = write_image(&mut tree, staging.dir(), opts, &mut table);
    tracing::debug!(pid, took = ?t0.elapsed(), "image written");
    let (stats, flushes) = match written {
        Ok(w) => w,
        Err(e) => {
            give_back(&mut tree, &mut table);
            table.drop_remaps();
            return Err(e);
        }
    };
    // Without --kill, every byte of the image is written (to the page cache), so it
    // describes the tree as it is now: the tree runs on while the bytes reach the disk. If
    // that fails, the tree still runs as before and the staging directory is removed.
    let released = (!opts.kill).then(|| {
        let frozen_for = t_frozen.elapsed();
        give_back(&mut tree, &mut table);
        frozen_for
    });
    for f in flushes {
        let _ = f.join();
    }
    let put = LocalStore.put(staging);
    if released.is_none() && put.is_err() {
        give_back(&mut tree, &mut table);
    }
    if put.is_err() {
        table.drop_remaps();
    }
    let dir = put?;
    tracing::debug!(pid, took = ?t0.elapsed(), "image durable");
    let frozen_for = match released {
        Some(f) => f,
        None => {
            // --kill: the tree stayed frozen until the image was durable; now it dies.
            // Repaired TCP sockets die in repair mode: the peers see nothing.
            let f = t_frozen.elapsed();
            kill_tree(&tree)?;
            drop(table);
            for p in &tree {
                wait_gone(p.pid.as_raw(), Duration::from_secs(10));
            }
            f
        }
    };
    Ok(DumpReport {
        pid,
        dir,
        processes: tree.len(),
        pages: stats.pages,
        page_bytes: stats.bytes,
        stored_bytes: stats.stored,
        frozen: frozen_for,
        total: t0.elapsed(),
        killed: opts.kill,
    })
}

/// Let the tree run on as it was: TCP sockets out of repair mode, registers, masks and
/// ptrace given back.
fn give_back(tree: &mut [Seized], table: &mut files::FileTable) {
    table.leave_repair();
    release_all(tree);
}

/// A zombie's records: its identity and wait status, an empty page index and page file.
fn write_zombie(pid: i32, dir: &std::path::Path) -> Result<()> {
    let info = process::dump(&RealProc, pid)?;
    stasis_image::write_record_file(
        dir,
        &Image::process_file(pid),
        FileKind::Process,
        &info.entry,
    )?;
    let index = PageIndexEntry {
        pid,
        pages_file: Image::pages_file(pid),
        runs: Vec::new(),
    };
    drop(PagesWriter::create(dir, &index.pages_file)?.finish());
    stasis_image::write_record_file(dir, &Image::pagemap_file(pid), FileKind::PageIndex, &index)?;
    Ok(())
}

/// Write every process of the tree and the shared records.
fn write_image(
    tree: &mut [Seized],
    dir: &std::path::Path,
    opts: &DumpOptions,
    table: &mut files::FileTable,
) -> Result<(memory::PagesStats, Vec<Flushing>)> {
    let mut cgroups_used = Vec::new();
    let mut shmem_seen = memory::ShmemSeen::default();
    // Pages children share copy-on-write with their parents are saved once, with the parent.
    let procs: Vec<(i32, i32)> = tree
        .iter()
        .filter(|p| !p.zombie)
        .map(|p| (p.pid.as_raw(), p.ppid))
        .collect();
    let cow = memory::CowPlan::scan(&procs);
    table.tree = tree
        .iter()
        .flat_map(|p| std::iter::once(p.pid).chain(p.threads.iter().map(|t| t.tid)))
        .map(|p| p.as_raw())
        .collect();
    let mut total = memory::PagesStats::default();
    let mut xfeatures = 0;
    // Each process's page file is flushed in the background while the next one is copied;
    // all are joined before the image is put (which fsyncs everything anyway).
    let mut flushes = Vec::new();
    for (i, p) in tree.iter_mut().enumerate() {
        if p.zombie {
            write_zombie(p.pid.as_raw(), dir)?;
            continue;
        }
        let (stats, xf, flushing, used) =
            collect(p, dir, opts, i == 0, table, &mut shmem_seen, &cow)?;
        cgroups_used.extend(used);
        flushes.push(flushing);
        total.pages += stats.pages;
        total.bytes += stats.bytes;
        total.stored += stats.stored;
        xfeatures |= xf;
    }
    table.settle_stdio(dir);
    stasis_image::write_record_file(
        dir,
        Image::FILES,
        FileKind::Files,
        &FilesEntry {
            files: std::mem::take(&mut table.files),
        },
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
        root_pid: tree[0].pid.as_raw(),
        pids: tree.iter().map(|p| p.pid.as_raw()).collect(),
        xfeatures,
        parent: None,
        cgroups: match &opts.cgroups {
            Some(roots) => Some(crate::kinds::cgroups::dump_dirs(&cgroups_used, roots)?),
            None => None,
        },
    };
    stasis_image::write_record_file(dir, Image::INVENTORY, FileKind::Inventory, &inventory)?;
    Ok((total, flushes))
}

/// State the kernel does not let a tracer save: a pending SIGTRAP (indistinguishable from
/// ptrace's own) and a time namespace made for children that no child has entered.
fn refuse_unsavable(
    pid: i32,
    state: &Seized,
    outside: &[thread::ThreadOutside],
    shared: &[SiginfoEntry],
) -> Result<()> {
    let is_trap = |raw: &[u8]| raw.get(..4) == Some(&libc::SIGTRAP.to_ne_bytes()[..]);
    for (th, o) in state.threads.iter().zip(outside) {
        if o.pending.iter().any(|s| is_trap(&s.raw)) {
            return Err(DumpError::PendingTrap {
                pid,
                tid: th.tid.as_raw(),
            });
        }
    }
    if shared.iter().any(|s| is_trap(&s.raw)) {
        return Err(DumpError::PendingTrap { pid, tid: pid });
    }
    let ns = |n: &str| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).ok();
    let ours = std::fs::read_link("/proc/self/ns/time").ok();
    if let (Some(theirs), Some(ours)) = (ns("time"), ours) {
        if theirs != ours {
            return Err(DumpError::TimensOwn {
                pid,
                ns: theirs.to_string_lossy().into_owned(),
            });
        }
    }
    if let (Some(own), Some(kids)) = (ns("time"), ns("time_for_children")) {
        if own != kids {
            return Err(DumpError::TimensForChildren {
                pid,
                ns: kids.to_string_lossy().into_owned(),
            });
        }
    }
    Ok(())
}

/// What only the process itself can report, asked by remote syscalls while its threads' signals
/// are blocked: signal handlers, interval and POSIX timers (pending timer signals become timer
/// state), each thread's clear_child_tid and sigaltstack, brk, dumpable, prctl state.
struct Inside {
    sigactions: Vec<stasis_image::SigactionEntry>,
    itimers: Vec<stasis_image::ItimerEntry>,
    posix_timers: Vec<stasis_image::PosixTimerEntry>,
    per_thread: Vec<(u64, stasis_image::AltStackEntry)>,
    brk: u64,
    dumpable: u32,
    prctl: process::PrctlState,
    /// The threads as taken for the remote syscalls (their registers as they were).
    tracees: Vec<PtraceTracee>,
}

/// The remote-syscall phase of a process. Signals are blocked only for it and its registers
/// and masks are given back right after it: if stasis dies outside this window, the threads
/// run on untouched.
fn collect_inside(
    state: &mut Seized,
    vmas: &[stasis_image::VmaEntry],
    outside: &mut [thread::ThreadOutside],
    shared_pending: &mut Vec<SiginfoEntry>,
) -> Result<Inside> {
    let pid = state.pid.as_raw();
    let src = RealProc;
    let mut tracees = Vec::new();
    for th in &mut state.threads {
        let t = PtraceTracee::new(th.tid)?;
        th.base = Some(*t.base_regs());
        tracees.push(t);
    }
    let gadget = match vmas.iter().find(|v| v.kind == VmaKind::Vdso) {
        Some(vdso) => find_gadget(&tracees[0], vdso.start, vdso.end)?,
        // The process unmapped its vDSO: a syscall instruction of its own will do.
        None => {
            let rips: Vec<u64> = tracees.iter().map(|t| t.base_regs().rip).collect();
            find_gadget_anywhere(&tracees[0], &rips, &memory::executable(vmas))?
        }
    };
    state.gadget = gadget;
    for t in &mut tracees {
        t.set_gadget(gadget);
    }
    let (t, others) = tracees.split_first_mut().expect("the leader is seized");
    let posix = stasis_procfs::timers::parse_timers(
        &src.read_string(Some(pid), "timers")
            .map_err(|source| ProcessError::Read {
                pid,
                file: "timers",
                source,
            })?,
    )
    .map_err(|source| ProcessError::Parse {
        pid,
        file: "timers",
        source,
    })?;
    // Keep every signal queued while we drive the threads (see tracee.rs). Blocked only now,
    // right before the first remote syscall, and given back right after the last one
    // (release_cpu below): if stasis dies outside that window, the threads run on untouched.
    for (th, o) in state.threads.iter_mut().zip(outside.iter()) {
        th.sigmask = Some(o.sigmask);
        ptrace::set_sigmask(th.tid, !0u64).map_err(|source| TraceeError::Ptrace {
            pid: th.tid.as_raw(),
            step: "SETSIGMASK",
            source,
        })?;
    }
    let s = Scratch::map(t, 0)?;
    let inside = (|| -> Result<_, TraceeError> {
        let acts = signal::dump_sigactions(t, s)?;
        let timers = signal::dump_itimers(t, s)?;
        let mut posix_timers = signal::dump_posix_timers(t, s, &posix)?;
        if !posix_timers.is_empty() {
            // Pending timer signals become timer state (their overrun counts).
            let threads = std::iter::once(&mut *t).chain(others.iter_mut());
            for (tr, out) in threads.zip(outside.iter_mut()) {
                let tid = tr.pid();
                signal::take_timer_signals(
                    tr,
                    s,
                    pid,
                    tid,
                    &mut out.pending,
                    shared_pending,
                    &mut posix_timers,
                )?;
            }
        }
        let mut per_thread = vec![thread::dump_inside(t, s)?];
        for o in others.iter_mut() {
            per_thread.push(thread::dump_inside(o, s)?);
        }
        let brk = process::dump_brk(t)?;
        let dumpable = process::dump_dumpable(t)?;
        let prctl = process::dump_prctl(t, s)?;
        Ok((acts, timers, posix_timers, per_thread, brk, dumpable, prctl))
    })();
    let unmapped = s.unmap(t);
    let (sigactions, itimers, posix_timers, per_thread, brk, dumpable, prctl) = inside?;
    unmapped?;
    // The process needs nothing from inside any more: give it back its own registers and mask
    // now, so that if stasis dies during the long page copy the kernel's detach lets it run on
    // exactly where it was.
    state.release_cpu(true)?;
    Ok(Inside {
        sigactions,
        itimers,
        posix_timers,
        per_thread,
        brk,
        dumpable,
        prctl,
        tracees,
    })
}

/// A process's pages: guard pages and copy-on-write sharing marked on its VMAs, the pages to
/// save found, copied into its page file (flushed in the background); returns the statistics,
/// the page index and the flush.
fn collect_memory(
    t: &PtraceTracee,
    vmas: &mut [stasis_image::VmaEntry],
    dir: &std::path::Path,
    opts: &DumpOptions,
    shmem_seen: &mut memory::ShmemSeen,
    cow: &memory::CowPlan,
) -> Result<(memory::PagesStats, PageIndexEntry, Flushing)> {
    let pid = t.pid();
    let t_mem = Instant::now();
    memory::find_guards(pid, vmas)?;
    cow.mark(pid, vmas);
    let gentle = cow
        .with_children
        .get(&pid)
        .map_or(&[][..], |v| v.as_slice());
    let regions = memory::pages_to_save(pid, vmas, shmem_seen, gentle)?;
    tracing::debug!(pid, regions = regions.len(), took = ?t_mem.elapsed(), "scanned for pages to save");
    let mut writer = PagesWriter::create(dir, &Image::pages_file(pid))?;
    let mut index = PageIndexEntry {
        pid,
        pages_file: Image::pages_file(pid),
        runs: Vec::new(),
    };
    let stats = memory::dump_pages(
        t,
        pid,
        &regions,
        &mut writer,
        &mut index,
        opts.compress,
        opts.progress.as_deref(),
    )?;
    tracing::debug!(pid, pages = stats.pages, took = ?t_mem.elapsed(), "pages copied");
    // Flush the page file while the records are written; the store's final fsync of it then
    // finds nothing left to do.
    let pages_file = writer.finish();
    let flushing = std::thread::spawn(move || pages_file.sync_data());
    Ok((stats, index, flushing))
}

/// A page file being flushed in the background.
type Flushing = std::thread::JoinHandle<std::io::Result<()>>;

/// Capture one seized process into `dir`; returns its page statistics, XCR0 and the flush of
/// its page file.
fn collect(
    state: &mut Seized,
    dir: &std::path::Path,
    opts: &DumpOptions,
    root: bool,
    table: &mut files::FileTable,
    shmem_seen: &mut memory::ShmemSeen,
    cow: &memory::CowPlan,
) -> Result<(memory::PagesStats, u64, Flushing, Vec<CgroupMemberEntry>)> {
    let pid = state.pid.as_raw();
    let src = RealProc;
    let pin = Pinned::new(state.pid);
    let mut outside = Vec::new();
    for th in &mut state.threads {
        outside.push(thread::dump_outside(th.tid)?);
    }
    let mut info = process::dump(&src, pid)?;
    info.entry.stopped = state.stopped;
    info.entry.stop_sig = state.stop_sig;
    if !root {
        info.entry.files_shared =
            stasis_sys::pidfd::kcmp_files(Pid::from_raw(state.ppid), state.pid).unwrap_or(false);
    }
    // A thread may hold credentials of its own (raw setresuid changes one thread only).
    let own_creds: Vec<Option<CredsEntry>> = state
        .threads
        .iter()
        .map(|th| {
            th.creds
                .clone()
                .filter(|c| th.tid != state.pid && *c != info.entry.creds)
        })
        .collect();
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
    sysvshm::link(pid, &mut vmas)?;
    let mut shared_pending: Vec<SiginfoEntry> = ptrace::peek_siginfo(state.pid, true)
        .map_err(|source| TraceeError::Ptrace {
            pid,
            step: "PEEKSIGINFO shared",
            source,
        })?
        .into_iter()
        .map(|raw| SiginfoEntry { raw: raw.to_vec() })
        .collect();
    refuse_unsavable(pid, state, &outside, &shared_pending)?;

    let Inside {
        sigactions,
        itimers,
        posix_timers,
        per_thread,
        brk,
        dumpable,
        prctl,
        tracees,
    } = collect_inside(state, &vmas, &mut outside, &mut shared_pending)?;
    let (t, others) = tracees.split_first().expect("the leader is seized");
    tracing::debug!(pid, "remote-syscall phase done");
    // Remote syscalls are over: unpin, so the page copy can use both CPUs.
    drop(pin);

    // Files.
    let pidfd = stasis_sys::pidfd::pidfd_open(state.pid)
        .map_err(|source| DumpError::Pidfd { pid, source })?;
    let fds = files::dump_fds(pid, &pidfd, dir, root, table)?;
    if let Some(n) = files::dead_proc_dir(&info.entry.cwd) {
        // Nothing to save of it: it is gone with its process.
        info.entry.cwd_dead_pid = Some(n);
    } else if info.entry.cwd.ends_with(" (deleted)") {
        info.entry.cwd_file = Some(files::dump_removed_cwd(pid, dir, table)?);
    }
    for (sm, v) in smaps.iter().zip(&vmas) {
        if sm.map.deleted
            && v.shmem.is_none()
            && matches!(v.kind, VmaKind::FilePrivate | VmaKind::FileShared)
            && !table.inodes.iter().any(|(_, ino)| *ino == sm.map.inode)
        {
            let writable = memory::opens_writable(v);
            files::dump_mapped_deleted(pid, v.start, v.end, writable, dir, table)?;
        }
    }
    memory::link_deleted(pid, &smaps, &mut vmas, &table.inodes)?;

    // Memory. AIO rings are the kernel's, saved whole with the record (never as pages).
    for v in vmas.iter_mut().filter(|v| v.kind == VmaKind::Aio) {
        crate::kinds::aio::dump(t, v).map_err(MemoryError::from)?;
    }
    let (stats, index, flushing) = collect_memory(t, &mut vmas, dir, opts, shmem_seen, cow)?;

    let xfeatures = outside[0]
        .xstate
        .get(464..472)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(0);
    let mut entry = info.entry;
    entry.mm.brk = brk;
    entry.dumpable = dumpable;
    entry.pdeath_signal = prctl.pdeath_signal;
    entry.child_subreaper = prctl.child_subreaper;
    entry.thp_disable = prctl.thp_disable;
    entry.membarrier = prctl.membarrier;
    entry.creds.secbits = Some(prctl.secbits);
    entry.vmas = vmas;
    entry.sigactions = sigactions;
    entry.itimers = itimers;
    entry.posix_timers = posix_timers;
    if entry.seccomp_mode == 2 {
        entry.seccomp_filters = process::dump_seccomp(pid, state.pid)?;
    }
    // Seccomp is per thread: a filter installed without TSYNC reaches one thread only.
    let mut thread_seccomp = Vec::with_capacity(state.threads.len());
    for th in &state.threads {
        let own = if th.tid == state.pid {
            None
        } else {
            Some(process::dump_thread_seccomp(pid, th.tid)?)
                .filter(|s| s.mode != entry.seccomp_mode || s.filters != entry.seccomp_filters)
        };
        thread_seccomp.push(own);
    }
    entry.shared_pending = shared_pending;
    entry.fds = fds;
    entry.threads = outside
        .into_iter()
        .zip(per_thread)
        .zip(std::iter::once(t).chain(others.iter()))
        .zip(own_creds)
        .zip(thread_seccomp)
        .map(
            |((((o, (clear_child_tid, altstack)), tr), creds), seccomp)| ThreadEntry {
                tid: tr.pid(),
                comm: std::fs::read_to_string(format!("/proc/{pid}/task/{}/comm", tr.pid()))
                    .map(|c| c.trim_end_matches('\n').to_string())
                    .unwrap_or_default(),
                regs: thread::regs_entry(tr.base_regs()),
                xstate: o.xstate,
                sigmask: o.sigmask,
                pending: o.pending,
                rseq: o.rseq,
                robust_list: o.robust.0,
                robust_list_len: o.robust.1,
                clear_child_tid,
                altstack,
                creds,
                sched: stasis_sys::sched::sched_getattr(Pid::from_raw(tr.pid()))
                    .ok()
                    .map(thread::sched_entry),
                cgroups: None,
                seccomp,
            },
        )
        .collect();
    // Cgroups: the process's, and a thread's own where it differs (v1 moves threads singly).
    let mut used = Vec::new();
    if let Some(roots) = &opts.cgroups {
        entry.cgroups = cgroups::membership(pid, pid, roots)?;
        used.extend(entry.cgroups.iter().cloned());
        for th in entry.threads.iter_mut().skip(1) {
            let own = cgroups::membership(pid, th.tid, roots)?;
            if own != entry.cgroups {
                used.extend(own.iter().cloned());
                th.cgroups = Some(own);
            }
        }
    }
    stasis_image::write_record_file(dir, &Image::process_file(pid), FileKind::Process, &entry)?;
    stasis_image::write_record_file(dir, &Image::pagemap_file(pid), FileKind::PageIndex, &index)?;
    Ok((stats, xfeatures, flushing, used))
}
