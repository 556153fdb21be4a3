//! Staged restore of an image: open every file in the restorer, fork a skeleton with the saved
//! PID, take it over with ptrace (EXITKILL: if we die, it dies), swap its address space for the
//! saved one by remote syscalls, restore per-process and per-thread state, registers last,
//! then let it run. A failure at any step kills the skeleton; the image is only read.

use crate::freeze::Pinned;
use crate::kinds::files::{self, FilesError};
use crate::kinds::memory::{self, MemoryError, TASK_SIZE};
use crate::kinds::process::{self, ProcessError};
use crate::kinds::{cgroups, signal, sysvshm, thread};
use crate::scratch::{Scratch, SCRATCH_LEN};
use crate::tracee::{
    find_gadget, find_gadget_anywhere, wait_stop, MemTracee, PtraceTracee, Tracee, TraceeError,
};
use stasis_image::{Image, ProcessEntry, VmaEntry, VmaKind};
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
    /// Descriptors of the caller that stand in for files of the image (`--inherit-fd`).
    pub inherit: Vec<files::InheritFd>,
    /// How the image's cgroups (saved with `--manage-cgroups`) are restored, and under which
    /// roots (`--cgroup-root`).
    pub cgroups: (cgroups::Mode, cgroups::Roots),
    /// Restore what the image asks even when its owner could not have had it (see
    /// [`crate::trust`]): for images made by root, or checked.
    pub trust_image: bool,
}

impl RestoreOptions {
    /// Restore `dir` with nothing handed in.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            dir: dir.into(),
            inherit: Vec::new(),
            cgroups: (cgroups::Mode::Soft, cgroups::Roots::default()),
            trust_image: false,
        }
    }
}

/// A restored process, running; it is a child of the calling process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub pid: i32,
    pub processes: usize,
    pub pages: u64,
    pub page_bytes: u64,
    #[serde(rename = "total_secs", serialize_with = "crate::serialize_secs")]
    pub total: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Image(#[from] stasis_image::ImageError),
    #[error(transparent)]
    Untrusted(#[from] crate::trust::UntrustedImage),
    #[error("the image was made on {arch}; this machine is {here}")]
    Arch { arch: String, here: String },
    #[error("pid {pid} in the image has parent {ppid}, which the image does not hold")]
    Orphan { pid: i32, ppid: i32 },
    #[error("pid {pid} is taken by {holder}, so the image cannot be restored with its pid; stop that process, or restore into a fresh PID namespace with --pid-ns")]
    PidTaken { pid: i32, holder: String },
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
    #[error(transparent)]
    Timer(#[from] signal::TimerError),
    #[error(transparent)]
    Cgroups(#[from] cgroups::CgroupsError),
    #[error("pid {pid}: cannot open {path} for the mapping at {addr:#x}")]
    MapFile {
        pid: i32,
        addr: u64,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid}: putting its file descriptors in place failed")]
    Fds {
        pid: i32,
        #[source]
        source: TraceeError,
    },
    #[error("pid {pid}: its working directory was /proc/{dead} of an exited process; that PID is taken now, so the directory cannot be entered again (restore into a fresh PID namespace with --pid-ns)")]
    DeadPidTaken { pid: i32, dead: i32 },
    #[error("pid {pid}: cannot make a helper with pid {dead} to enter /proc/{dead} (its working directory)")]
    DeadPidHelper {
        pid: i32,
        dead: i32,
        #[source]
        source: Errno,
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

impl RestoreError {
    /// `pid` is taken: say by what, and whether that looks like the image's own process,
    /// restored already (`comm`: the image's name for it).
    fn pid_taken(pid: i32, comm: Option<&str>) -> RestoreError {
        let now = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_string())
            .ok();
        let holder = match (now, comm) {
            (Some(n), Some(c)) if n == c => format!(
                "a process named {n:?} as in the image: the dumped process still runs, or this image was restored already"
            ),
            (Some(n), _) => format!("another process ({n:?})"),
            (None, _) => "a process that is exiting (try again in a moment)".into(),
        };
        RestoreError::PidTaken { pid, holder }
    }
}

/// Files the restorer opened for the skeletons, parked at fd numbers >= `base` (above every fd
/// number of every process) that every skeleton inherits: the root from the restorer, the
/// others from their parent skeleton, which forks them before it changes anything. Each
/// process then dup3()s its own fds from these, so descriptions shared across processes stay
/// shared.
struct Prepared<'a> {
    /// Seccomp filters are suspended for our remote syscalls (PTRACE_O_SUSPEND_SECCOMP), so
    /// they go in before credentials; else they go in last.
    seccomp_early: bool,
    /// The files' opening state, kept for their finishing step.
    files: files::OpenCx<'a>,
    base: i32,
    /// Per pid: (source fd, target fd, cloexec).
    place: HashMap<i32, Vec<(i32, i32, bool)>>,
    /// Mapping file fds by (path, writable).
    maps: HashMap<(String, bool), i32>,
    /// Parked fds by file id (mappings of deleted files and memfds use these).
    by_id: HashMap<u32, i32>,
    /// Shared anonymous memory objects by shmem id.
    shmem: HashMap<u64, i32>,
    /// Per pid: working directory and executable.
    cwd: HashMap<i32, i32>,
    /// Per pid: root directory, for processes whose root is not the restorer's.
    root: HashMap<i32, i32>,
    exe: HashMap<i32, i32>,
    /// Stand-ins for exited processes whose /proc/N a process had as working directory.
    dead_pids: DeadPidHelpers,
    _owned: Vec<OwnedFd>,
}

/// Helper processes holding PIDs of processes that had exited at dump time, while a restored
/// process enters their /proc/N (the kernel refuses to enter the directory of a dead process:
/// ESRCH). Ending them afterwards leaves that process in an unhashed /proc directory, as it
/// was. Killed and reaped when ended or dropped.
#[derive(Default)]
struct DeadPidHelpers(Vec<Pid>);

impl DeadPidHelpers {
    /// A helper with PID `dead`, for process `pid`.
    fn make(&mut self, pid: i32, dead: i32) -> Result<()> {
        match clone::clone_with_pid(Pid::from_raw(dead)) {
            Ok(Forked::Child) => clone::child_park(-1),
            Ok(Forked::Parent(c)) => {
                self.0.push(c);
                Ok(())
            }
            Err(Errno::EEXIST) => Err(RestoreError::DeadPidTaken { pid, dead }),
            Err(source) => Err(RestoreError::DeadPidHelper { pid, dead, source }),
        }
    }

    fn end(&mut self) {
        for pid in self.0.drain(..) {
            let _ = ptrace::kill(pid, libc::SIGKILL);
            let _ = ptrace::wait(pid, false);
        }
    }
}

impl Drop for DeadPidHelpers {
    fn drop(&mut self) {
        self.end();
    }
}

fn prepare<'a>(img: &'a Image, inherit: &'a [files::InheritFd]) -> Result<Prepared<'a>> {
    let base = img
        .processes
        .iter()
        .flat_map(|p| p.fds.iter().map(|f| f.fd + 1))
        .max()
        .unwrap_or(0)
        .max(3);
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let mut prep = Prepared {
        seccomp_early: false,
        files: files::OpenCx::new(&img.dir, &img.files.files, inherit),
        base,
        place: HashMap::new(),
        maps: HashMap::new(),
        by_id: HashMap::new(),
        shmem: HashMap::new(),
        cwd: HashMap::new(),
        root: HashMap::new(),
        exe: HashMap::new(),
        dead_pids: DeadPidHelpers::default(),
        _owned: Vec::new(),
    };
    for p in img.processes.iter().filter(|p| p.zombie.is_none()) {
        prep.open_fds(img, p)?;
        prep.open_mapped_files(img, p)?;
        prep.open_dirs(img, p)?;
    }
    prep.make_shmem(img)?;
    Ok(prep)
}

impl<'a> Prepared<'a> {
    /// Park `fd` at a number >= `base`, kept open until the restore ends.
    fn park(&mut self, pid: i32, fd: OwnedFd) -> Result<i32> {
        let high =
            stasis_sys::pidfd::dup_at_least(fd.as_raw_fd(), self.base).map_err(|source| {
                RestoreError::Skeleton {
                    pid,
                    step: "parking an fd for the skeleton",
                    source,
                }
            })?;
        let raw = high.as_raw_fd();
        self._owned.push(high);
        Ok(raw)
    }

    /// The parked fd of file `id` of the image, opened (for fd number `fd`, -1 for none) the
    /// first time it is asked for; `what` names who refers to it, for an image that lacks it.
    fn file(&mut self, img: &'a Image, id: u32, fd: i32, pid: i32, what: String) -> Result<i32> {
        if let Some(&s) = self.by_id.get(&id) {
            return Ok(s);
        }
        let entry = img.files.files.iter().find(|f| f.id == id).ok_or_else(|| {
            stasis_image::ImageError::Decode {
                path: img.dir.join(Image::FILES),
                offset: 0,
                reason: format!("{what} refers to missing file id {id}"),
            }
        })?;
        self.files.fd = fd;
        let f = files::open(&mut self.files, entry)?;
        let s = self.park(pid, f)?;
        self.by_id.insert(id, s);
        Ok(s)
    }

    /// Process `p`'s fds: each file opened once (a description shared across fds and
    /// processes stays one), except those the process makes itself when its fds are placed.
    fn open_fds(&mut self, img: &'a Image, p: &ProcessEntry) -> Result<()> {
        let mut mine = Vec::new();
        for fd in &p.fds {
            let inside = img
                .files
                .files
                .iter()
                .find(|f| f.id == fd.file_id)
                .is_some_and(files::opens_inside);
            if inside {
                continue;
            }
            let what = format!("fd {} of pid {}", fd.fd, p.pid);
            let src = self.file(img, fd.file_id, fd.fd, p.pid, what)?;
            mine.push((src, fd.fd, fd.cloexec));
        }
        self.place.insert(p.pid, mine);
        Ok(())
    }

    /// The files process `p` maps: deleted files and memfds no fd holds (by file id), files
    /// by path (read-write where the mapping may write).
    fn open_mapped_files(&mut self, img: &'a Image, p: &ProcessEntry) -> Result<()> {
        for v in &p.vmas {
            if let Some(id) = v.file_id {
                let what = format!("the mapping at {:#x} of pid {}", v.start, p.pid);
                self.file(img, id, -1, p.pid, what)?;
            }
        }
        for v in &p.vmas {
            if !matches!(v.kind, VmaKind::FilePrivate | VmaKind::FileShared)
                || v.file_id.is_some()
                || v.shmem.is_some()
            {
                continue;
            }
            let path = v.path.clone().unwrap_or_default();
            let writable = memory::opens_writable(v);
            if self.maps.contains_key(&(path.clone(), writable)) {
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
            let s = self.park(p.pid, f.into())?;
            self.maps.insert((path, writable), s);
        }
        Ok(())
    }

    /// Process `p`'s working directory (a removed one made again as a ghost, one in /proc of
    /// an exited process through a stand-in), its root when not ours, and its executable.
    fn open_dirs(&mut self, img: &'a Image, p: &ProcessEntry) -> Result<()> {
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
        let cwd_fd = match (p.cwd_file, p.cwd_dead_pid) {
            (Some(id), _) => {
                let what = format!("the working directory of pid {}", p.pid);
                self.file(img, id, -1, p.pid, what)?
            }
            (None, Some(dead)) => {
                self.dead_pids.make(p.pid, dead)?;
                let dir = open_dir(&format!("/proc/{dead}"), libc::O_DIRECTORY)?;
                self.park(p.pid, dir)?
            }
            (None, None) => {
                let dir = open_dir(&p.cwd, libc::O_DIRECTORY)?;
                self.park(p.pid, dir)?
            }
        };
        self.cwd.insert(p.pid, cwd_fd);
        if p.root != "/" && !p.root.is_empty() {
            let dir = open_dir(&p.root, libc::O_DIRECTORY)?;
            let root = self.park(p.pid, dir)?;
            self.root.insert(p.pid, root);
        }
        let exe = open_dir(&p.exe, 0)?;
        let exe = self.park(p.pid, exe)?;
        self.exe.insert(p.pid, exe);
        Ok(())
    }

    /// One object per shared anonymous region, however many processes map it.
    fn make_shmem(&mut self, img: &Image) -> Result<()> {
        let mut sizes: HashMap<u64, u64> = HashMap::new();
        for v in img.processes.iter().flat_map(|p| &p.vmas) {
            if v.sysv.is_some() {
                continue;
            }
            if let Some(id) = v.shmem {
                let e = sizes.entry(id).or_default();
                *e = (*e).max(v.pgoff + v.len());
            }
        }
        let pid = img.processes[0].pid;
        for (id, size) in sizes {
            let fd = stasis_sys::mem::shared_anon_fd(size as usize).map_err(|source| {
                RestoreError::MapFile {
                    pid,
                    addr: 0,
                    path: format!("shared anonymous memory {id} ({size} bytes)"),
                    source,
                }
            })?;
            let s = self.park(pid, fd)?;
            self.shmem.insert(id, s);
        }
        Ok(())
    }
}

/// Kills and reaps the skeletons unless disarmed.
struct SkeletonGuard {
    pids: Vec<Pid>,
    armed: bool,
}

impl Drop for SkeletonGuard {
    fn drop(&mut self) {
        if self.armed {
            for &p in self.pids.iter().rev() {
                let _ = ptrace::kill(p, libc::SIGKILL);
            }
            // Every thread we trace must be waited for before its process can be reaped
            // (a traced zombie thread holds its group leader back): wait for everything
            // that is ours until nothing is left.
            if !self.pids.is_empty() {
                while nix::sys::wait::waitpid(
                    Pid::from_raw(-1),
                    Some(nix::sys::wait::WaitPidFlag::__WALL),
                )
                .is_ok()
                {}
            }
        }
    }
}

/// Restore the image in `opts.dir`; the processes run when this returns. The root process
/// is a child of the caller.
pub fn restore(opts: &RestoreOptions) -> Result<Restored> {
    let t0 = Instant::now();
    let img = Image::open(&opts.dir)?;
    crate::trust::check(&img, opts.trust_image)?;
    check_tree(&img)?;
    // The tree's cgroups exist before any of its tasks (they join them before they run) and
    // before its files (a process may hold a cgroup directory open).
    let mut cgroups = match (&img.inventory.cgroups, opts.cgroups.0) {
        (Some(saved), mode) if mode != cgroups::Mode::Ignore => {
            Some(cgroups::prepare(saved, mode, opts.cgroups.1.clone())?)
        }
        _ => None,
    };
    let mut prep = prepare(&img, &opts.inherit)?;
    let segments = sysvshm::Segments::recreate(&img)?;
    let mut guard = start_root(&img, &mut prep)?;
    // The rest of the tree is forked process by process, each by its parent once the
    // parent's memory is back (see rebuild).
    let built = rebuild_tree(&img, &mut prep, &mut guard, t0)?;
    let stats = let_go(&img, &mut prep, cgroups.as_mut(), segments, built)?;
    guard.armed = false;
    Ok(Restored {
        pid: img.processes[0].pid,
        processes: img.processes.len(),
        pages: stats.pages,
        page_bytes: stats.bytes,
        total: t0.elapsed(),
    })
}

/// The image is for this machine and its tree is whole (every parent in it).
fn check_tree(img: &Image) -> Result<()> {
    if img.inventory.arch != std::env::consts::ARCH {
        return Err(RestoreError::Arch {
            arch: img.inventory.arch.clone(),
            here: std::env::consts::ARCH.into(),
        });
    }
    for p in &img.processes[1..] {
        if !img.processes.iter().any(|q| q.pid == p.ppid) {
            return Err(RestoreError::Orphan {
                pid: p.pid,
                ppid: p.ppid,
            });
        }
    }
    Ok(())
}

/// Fork the root skeleton with its saved PID and take it over (seized, interrupted); the
/// guard kills it (and every skeleton added) unless disarmed.
fn start_root(img: &Image, prep: &mut Prepared) -> Result<SkeletonGuard> {
    let root = &img.processes[0];
    // The root skeleton, forked from us with the saved PID.
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|source| RestoreError::Skeleton {
        pid: root.pid,
        step: "creating the start pipe",
        source,
    })?;
    let child = match clone::clone_with_pid(Pid::from_raw(root.pid)) {
        Ok(Forked::Child) => clone::child_park(ready_w.as_raw_fd()),
        Ok(Forked::Parent(c)) => c,
        Err(Errno::EEXIST) => return Err(RestoreError::pid_taken(root.pid, Some(&root.comm))),
        Err(source) => {
            return Err(RestoreError::Clone {
                pid: root.pid,
                source,
            })
        }
    };
    let guard = SkeletonGuard {
        pids: vec![child],
        armed: true,
    };
    // Take the skeleton over only once it has reset its signal state.
    drop(ready_w);
    let mut byte = [0u8; 1];
    match nix::unistd::read(ready_r.as_raw_fd(), &mut byte) {
        Ok(1) => {}
        Ok(_) => {
            return Err(RestoreError::Skeleton {
                pid: root.pid,
                step: "waiting for the skeleton to start",
                source: Errno::ECHILD,
            })
        }
        Err(source) => {
            return Err(RestoreError::Skeleton {
                pid: root.pid,
                step: "waiting for the skeleton to start",
                source,
            })
        }
    }
    drop(ready_r);
    // Seccomp filters go in before credentials (see rebuild); from then on they must not judge
    // our remote syscalls. Forked skeletons and cloned threads inherit the option.
    let seccomp = img.processes.iter().any(process::has_seccomp);
    let opts = ptrace::OPT_EXITKILL
        | ptrace::OPT_TRACESYSGOOD
        | ptrace::OPT_TRACECLONE
        | ptrace::OPT_TRACEFORK;
    // Suspending seccomp needs CAP_SYS_ADMIN: without it (rootless) the filters go in last,
    // after every other remote syscall, as they must then.
    let seized = match seccomp {
        true => ptrace::seize(child, opts | ptrace::OPT_SUSPEND_SECCOMP)
            .map(|_| prep.seccomp_early = true)
            .or_else(|_| ptrace::seize(child, opts)),
        false => ptrace::seize(child, opts),
    };
    seized.map_err(|source| RestoreError::Skeleton {
        pid: root.pid,
        step: "PTRACE_SEIZE",
        source,
    })?;
    ptrace::interrupt(child).map_err(|source| RestoreError::Skeleton {
        pid: root.pid,
        step: "PTRACE_INTERRUPT",
        source,
    })?;
    match wait_stop(child)? {
        WaitStatus::Stopped { .. } => {}
        other => {
            return Err(TraceeError::UnexpectedStop {
                pid: root.pid,
                step: "taking over the skeleton",
                status: format!("{other:?}"),
            }
            .into())
        }
    }
    Ok(guard)
}

/// What rebuilding the tree leaves for letting it go.
struct Built {
    stats: memory::PagesStats,
    /// Every thread of the tree, to detach.
    all_threads: Vec<Pid>,
    /// Zombies-to-be, with their exit status.
    zombies: Vec<(PtraceTracee, i32)>,
    /// Fds that wait for processes restored after their holder.
    deferred: Vec<Deferred>,
}

/// Rebuild every process, parents before children, the tracer thread rebuilding while the
/// page threads write the memory of the processes already rebuilt.
fn rebuild_tree(
    img: &Image,
    prep: &mut Prepared,
    guard: &mut SkeletonGuard,
    t0: Instant,
) -> Result<Built> {
    let mut stats = memory::PagesStats::default();
    let mut all_threads = Vec::new();
    let tree: Vec<i32> = img.processes.iter().map(|q| q.pid).collect();
    let mut zombies = Vec::new();
    let mut deferred = Vec::new();
    // Pages are copied by a thread of their own while this one, the tracer, rebuilds the
    // next process (ptrace requests must come from the tracing thread; memory writes need
    // not), so both CPUs work on a tree.
    let (jobs, queue) = std::sync::mpsc::channel::<PageJob>();
    let queue = std::sync::Mutex::new(queue);
    let queue = &queue;
    // As the init of the tree's PID namespace (stasis run, --pid-ns), our own threads take
    // numbers in it, and would take the tree's saved TIDs: the page threads then start only
    // once every process and thread of the tree exists.
    let late_pagers = nix::unistd::getpid().as_raw() == 1;
    std::thread::scope(|sc| -> Result<()> {
        let spawn_pagers = || -> Vec<_> {
            (0..PAGE_THREADS)
            .map(|_| {
                sc.spawn(move || -> Result<memory::PagesStats> {
                    let mut total = memory::PagesStats::default();
                    loop {
                        let job = queue.lock().expect("page queue").recv();
                        let Ok(job) = job else { break };
                        let mut mt = MemTracee::open(job.pid)?;
                        let pages = memory::PageSource {
                            file: &job.file,
                            len: job.len,
                            path: &job.path,
                        };
                        let t_job = Instant::now();
                        let st = memory::restore_pages(&mut mt, job.vmas, &job.pm, &pages)?;
                        tracing::debug!(pid = job.pid, bytes = st.bytes, took = ?t_job.elapsed(), since_start = ?t0.elapsed(), "pages written");
                        total.pages += st.pages;
                        total.bytes += st.bytes;
                    }
                    Ok(total)
                })
            })
            .collect()
        };
        let early = (!late_pagers).then(spawn_pagers);
        let rebuilt = (|| -> Result<()> {
            for (p, pm) in img.processes.iter().zip(&img.pagemaps) {
                let pid = Pid::from_raw(p.pid);
                if let Some(status) = p.zombie {
                    // Its process group first (it may lead one that live members join).
                    let t = zombie_basics(pid, p, &tree)?;
                    zombies.push((t, status));
                    continue;
                }
                let pages_path = img.dir.join(&pm.pages_file);
                let (pages_file, pages_len) = stasis_image::read_pages_header(&pages_path)?;
                let pages = memory::PageSource {
                    file: &pages_file,
                    len: pages_len,
                    path: &pages_path,
                };
                let pin = Pinned::new(pid);
                let t_rebuild = Instant::now();
                let Rebuilt {
                    written: st,
                    later,
                    threads,
                    deferred: not_yet,
                } = rebuild(pid, img, p, pm, &pages, prep, &mut guard.pids)?;
                deferred.extend(not_yet);
                drop(pin);
                tracing::debug!(pid = p.pid, written_here = st.map_or(0, |s| s.bytes), took = ?t_rebuild.elapsed(), since_start = ?t0.elapsed(), "process rebuilt");
                if let Some(st) = st {
                    stats.pages += st.pages;
                    stats.bytes += st.bytes;
                }
                // A big process is split by page ranges, so that all page threads work on it.
                for part in split_runs(&later, PAGE_THREADS, SPLIT_ABOVE) {
                    if part.runs.is_empty() {
                        continue;
                    }
                    let file =
                        pages_file
                            .try_clone()
                            .map_err(|source| stasis_image::ImageError::Io {
                                op: "reopen",
                                path: pages_path.clone(),
                                source,
                            })?;
                    let _ = jobs.send(PageJob {
                        pid: p.pid,
                        vmas: &p.vmas,
                        pm: part,
                        file,
                        len: pages_len,
                        path: pages_path.clone(),
                    });
                }
                all_threads.push(pid);
                all_threads.extend(threads);
            }
            Ok(())
        })();
        // Every process is in its working directory: the stand-ins may go.
        prep.dead_pids.end();
        drop(jobs);
        let pagers = match early {
            Some(p) => p,
            None if rebuilt.is_ok() => spawn_pagers(),
            None => Vec::new(),
        };
        let paged: Vec<_> = pagers
            .into_iter()
            .map(|p| p.join().expect("page threads do not panic"))
            .collect();
        rebuilt?;
        for st in paged {
            let st = st?;
            stats.pages += st.pages;
            stats.bytes += st.bytes;
        }
        Ok(())
    })?;
    Ok(Built {
        stats,
        all_threads,
        zombies,
        deferred,
    })
}

/// The tree stands: tasks join their cgroups, deferred fds are placed, files finish, zombies
/// exit again, SysV segments removed again where they were, stopped processes stop, and
/// every thread is detached.
fn let_go(
    img: &Image,
    prep: &mut Prepared,
    cgroups: Option<&mut cgroups::Placed>,
    segments: sysvshm::Segments,
    built: Built,
) -> Result<memory::PagesStats> {
    // Every task joins its cgroups.
    if let Some(cg) = cgroups {
        for p in img.processes.iter().filter(|p| p.zombie.is_none()) {
            let own: Vec<(i32, &[stasis_image::CgroupMemberEntry])> = p
                .threads
                .iter()
                .filter_map(|t| t.cgroups.as_deref().map(|c| (t.tid, c)))
                .collect();
            cg.attach(p.pid, &p.cgroups, &own)?;
        }
    }
    // Files that name processes restored after their holder.
    for d in built.deferred {
        place_deferred(img, d)?;
    }
    // Every process and file exists now (TCP connections leave repair mode).
    files::finish(&mut prep.files)?;
    // Zombies exit again with their saved status; their parents (still stopped) find them
    // waiting to be reaped.
    for (t, status) in built.zombies {
        finish_zombie(t, status)?;
    }
    segments.finish()?;
    // Processes that were in a job-control stop at dump time stay stopped: a SIGSTOP queued
    // while they are still traced starts a group stop they enter on detach, before running
    // one more instruction.
    for p in img
        .processes
        .iter()
        .filter(|p| p.stopped && p.zombie.is_none())
    {
        // The signal that stopped it, so that its parent's wait reports the same: a terminal
        // stop signal stops only with its default action, else SIGSTOP.
        let sig = match p.stop_sig {
            s @ (libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)
                if p.sigactions
                    .iter()
                    .all(|a| a.sig != s as u32 || a.handler == 0) =>
            {
                s
            }
            _ => libc::SIGSTOP,
        };
        ptrace::kill(Pid::from_raw(p.pid), sig).map_err(|source| RestoreError::Skeleton {
            pid: p.pid,
            step: "kill(SIGSTOP)",
            source,
        })?;
    }
    for &tid in &built.all_threads {
        ptrace::detach(tid, 0).map_err(|source| RestoreError::Skeleton {
            pid: tid.as_raw(),
            step: "PTRACE_DETACH",
            source,
        })?;
    }
    Ok(built.stats)
}

/// Fds of a process whose files name processes restored after it (see
/// [`files::place_inside`]): placed once the whole tree exists.
struct Deferred {
    pid: Pid,
    gadget: u64,
    fds: Vec<stasis_image::FdEntry>,
}

/// Place deferred fds in a process that is otherwise complete (its registers, credentials and
/// seccomp filters are back: the filters are suspended for these last remote syscalls).
fn place_deferred(img: &Image, d: Deferred) -> Result<()> {
    let pidn = d.pid.as_raw();
    let p = img
        .processes
        .iter()
        .find(|p| p.pid == pidn)
        .expect("deferred fds belong to a process of the image");
    if process::has_seccomp(p) {
        ptrace::set_options(
            d.pid,
            ptrace::OPT_EXITKILL
                | ptrace::OPT_TRACESYSGOOD
                | ptrace::OPT_TRACECLONE
                | ptrace::OPT_TRACEFORK
                | ptrace::OPT_SUSPEND_SECCOMP,
        )
        .map_err(|source| RestoreError::Skeleton {
            pid: pidn,
            step: "suspending seccomp for the last fds",
            source,
        })?;
    }
    // Its registers and signal mask are final already: both are kept aside for these remote
    // syscalls (no signal may be taken meanwhile) and put back after them.
    let step = |step| {
        move |source| RestoreError::Skeleton {
            pid: pidn,
            step,
            source,
        }
    };
    let mask = ptrace::get_sigmask(d.pid).map_err(step("GETSIGMASK"))?;
    ptrace::set_sigmask(d.pid, !0u64).map_err(step("blocking signals"))?;
    let mut t = PtraceTracee::new(d.pid)?;
    t.set_gadget(d.gadget);
    // No scratch memory: making these files needs none.
    let s = Scratch { addr: 0 };
    let placed = files::place_inside(&mut t, s, &img.files.files, p, &d.fds, true);
    t.set_regs(&t.base_regs().clone())?;
    ptrace::set_sigmask(d.pid, mask).map_err(step("SETSIGMASK"))?;
    placed?;
    Ok(())
}

/// Threads copying pages into processes while the tracer rebuilds the next ones.
const PAGE_THREADS: usize = 2;

/// Processes with more pages than this are split across the page threads.
const SPLIT_ABOVE: u64 = 32 << 20;

/// Whether process `q` (a child) keeps pages of the parent's mapping `v` copy-on-write.
fn shares_cow(q: &stasis_image::ProcessEntry, v: &VmaEntry) -> bool {
    q.vmas
        .iter()
        .any(|w| w.cow.iter().any(|&(cs, ce)| cs < v.end && v.start < ce))
}

/// The index `pm` with only `runs` (same process, same page file).
fn index_part(
    pm: &stasis_image::PageIndexEntry,
    runs: Vec<stasis_image::PageRun>,
) -> stasis_image::PageIndexEntry {
    stasis_image::PageIndexEntry {
        pid: pm.pid,
        pages_file: pm.pages_file.clone(),
        runs,
    }
}

/// `pm` split in two: the runs inside `ranges` (address ranges), and the others.
fn split_index(
    pm: &stasis_image::PageIndexEntry,
    ranges: &[(u64, u64)],
) -> (stasis_image::PageIndexEntry, stasis_image::PageIndexEntry) {
    let (inside, outside): (Vec<_>, Vec<_>) = pm
        .runs
        .iter()
        .partition(|r| ranges.iter().any(|&(s, e)| s <= r.vaddr && r.vaddr < e));
    (index_part(pm, inside), index_part(pm, outside))
}

/// `pm` cut into at most `parts` indexes of about equal size (one if it is small).
fn split_runs(
    pm: &stasis_image::PageIndexEntry,
    parts: usize,
    above: u64,
) -> Vec<stasis_image::PageIndexEntry> {
    let total = pm.total_pages() * stasis_image::PAGE_SIZE;
    if total <= above || parts < 2 {
        return vec![pm.clone()];
    }
    let share = total.div_ceil(parts as u64);
    let mut out = Vec::new();
    let empty = || index_part(pm, Vec::new());
    let mut cur = empty();
    let mut bytes = 0;
    for r in &pm.runs {
        cur.runs.push(*r);
        bytes += r.pages as u64 * stasis_image::PAGE_SIZE;
        if bytes >= share {
            out.push(std::mem::replace(&mut cur, empty()));
            bytes = 0;
        }
    }
    if !cur.runs.is_empty() {
        out.push(cur);
    }
    out
}

/// The helper with PID `pid` (forked from `t` and running `nr()` once, the first time it is
/// asked for: setsid or setpgid(0, 0), which take no arguments that are not 0).
fn helper<'h>(
    t: &mut PtraceTracee,
    s: Scratch,
    pid: i32,
    (name, nr): (&'static str, i64),
    helpers: &'h mut Vec<PtraceTracee>,
    forked: &mut Vec<Pid>,
) -> Result<&'h mut PtraceTracee> {
    if let Some(i) = helpers.iter().position(|h| h.pid() == pid) {
        return Ok(&mut helpers[i]);
    }
    let h = fork_child(t, s, pid, &[], false)?;
    forked.push(h);
    let mut ht = PtraceTracee::new(h)?;
    ht.set_gadget(t.gadget());
    ht.syscall(name, nr, [0; 6])?;
    helpers.push(ht);
    Ok(helpers.last_mut().expect("just pushed"))
}

/// Helpers exit (their children, if any, come back to `p`, a subreaper), `p` reaps them and
/// forgets the SIGCHLDs they sent (the saved pending signals are queued later).
fn end_helpers(
    t: &mut PtraceTracee,
    s: Scratch,
    p: &stasis_image::ProcessEntry,
    helpers: Vec<PtraceTracee>,
) -> Result<()> {
    if p.child_subreaper {
        t.syscall(
            "prctl(PR_SET_CHILD_SUBREAPER)",
            libc::SYS_prctl,
            [libc::PR_SET_CHILD_SUBREAPER as u64, 1, 0, 0, 0, 0],
        )?;
    }
    for h in helpers {
        let hp = Pid::from_raw(h.pid());
        h.aim_at_exit(0)?;
        let step = |source| RestoreError::Skeleton {
            pid: hp.as_raw(),
            step: "ending a session or group helper",
            source,
        };
        ptrace::cont(hp, 0).map_err(step)?;
        loop {
            match ptrace::wait(hp, false).map_err(step)? {
                Some((_, WaitStatus::Exited(_) | WaitStatus::Signaled(_))) => break,
                _ => ptrace::cont(hp, 0).map_err(step)?,
            }
        }
        t.syscall(
            "wait4 (a helper)",
            libc::SYS_wait4,
            [hp.as_raw() as u64, 0, 0, 0, 0, 0],
        )?;
    }
    // rt_sigtimedwait({SIGCHLD}, NULL, {0, 0}) until nothing is left.
    let set: u64 = 1 << (libc::SIGCHLD - 1);
    t.write_mem(s.addr, &crate::scratch::words_to_bytes(&[set, 0, 0, 0]))?;
    while t.syscall_raw(libc::SYS_rt_sigtimedwait, [s.addr, 0, s.addr + 16, 8, 0, 0])? > 0 {}
    Ok(())
}

/// The pages of one process (or a part of them), for a page thread.
struct PageJob<'a> {
    pid: i32,
    vmas: &'a [VmaEntry],
    pm: stasis_image::PageIndexEntry,
    file: std::fs::File,
    len: u64,
    path: std::path::PathBuf,
}

/// A tracee for a zombie-to-be: a skeleton forked from its restored parent, driven through
/// its vDSO. Sets its session or process group as saved.
fn zombie_basics(pid: Pid, p: &stasis_image::ProcessEntry, tree: &[i32]) -> Result<PtraceTracee> {
    let mut t = PtraceTracee::new(pid)?;
    let g = skeleton_gadget(&t, pid)?;
    t.set_gadget(g);
    let res = if p.sid == p.pid {
        t.syscall("setsid", libc::SYS_setsid, [0; 6])
    } else if p.pgid == p.pid {
        t.syscall("setpgid", libc::SYS_setpgid, [0; 6])
    } else if tree.contains(&p.pgid) {
        t.syscall("setpgid", libc::SYS_setpgid, [0, p.pgid as u64, 0, 0, 0, 0])
    } else {
        Ok(0)
    };
    res.map_err(|source| ProcessError::Set {
        pid: p.pid,
        what: "the zombie's process group".into(),
        source,
    })?;
    Ok(t)
}

/// Let a zombie-to-be die with `status` (a wait status): by its signal, or by exit_group with
/// its code, run after we detach. Its parent is still stopped, so it stays a zombie.
fn finish_zombie(t: PtraceTracee, status: i32) -> Result<()> {
    let pid = Pid::from_raw(t.pid());
    let sig = status & 0x7f;
    if sig != 0 {
        // Queued now, delivered (default action: death) as soon as it runs: the skeleton has
        // default dispositions, and its mask (all blocked, inherited from the parent being
        // restored) is emptied. (A signal passed to PTRACE_DETACH would be ignored: the
        // skeleton is in an event stop, not a signal-delivery stop.)
        let kill = ptrace::set_sigmask(pid, 0).and_then(|_| ptrace::kill(pid, sig));
        let kill = if sig == libc::SIGKILL {
            // SIGKILL takes a traced task out of its stop at once: it dies still traced by
            // us (PTRACE_DETACH would fail with ESRCH). Reaping our ptrace view of it hands
            // the zombie to its real parent, which the kernel notifies then.
            kill.and_then(|_| loop {
                match ptrace::wait(pid, false) {
                    Ok(Some((_, WaitStatus::Signaled(_) | WaitStatus::Exited(_)))) => break Ok(()),
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            })
        } else {
            kill.and_then(|_| ptrace::detach(pid, 0))
        };
        return kill.map_err(|source| RestoreError::Skeleton {
            pid: pid.as_raw(),
            step: "killing a zombie-to-be",
            source,
        });
    }
    t.aim_at_exit(((status >> 8) & 0xff) as u64)?;
    ptrace::set_sigmask(pid, !0u64).map_err(|source| RestoreError::Skeleton {
        pid: pid.as_raw(),
        step: "blocking signals of a zombie-to-be",
        source,
    })?;
    ptrace::detach(pid, 0).map_err(|source| RestoreError::Skeleton {
        pid: pid.as_raw(),
        step: "letting a zombie-to-be exit",
        source,
    })
}

/// The gadget of a skeleton that still runs the restorer's code image (its own vDSO).
fn skeleton_gadget(t: &PtraceTracee, pid: Pid) -> Result<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|source| {
        ProcessError::Read {
            pid: pid.as_raw(),
            file: "maps",
            source,
        }
    })?;
    let vdso = stasis_procfs::maps::parse_maps(&maps)
        .map_err(|source| ProcessError::Parse {
            pid: pid.as_raw(),
            file: "maps",
            source,
        })?
        .into_iter()
        .find(|m| m.path.as_deref() == Some("[vdso]"))
        .ok_or(TraceeError::NoGadget { pid: pid.as_raw() })?;
    Ok(find_gadget(t, vdso.start, vdso.end)?)
}

/// Fork the skeleton of child `pid` from its parent, traced as `t`, whose memory is
/// restored already: the child starts as a copy-on-write copy of it, so pages both still
/// share stay shared (remote clone3 with set_tid; its arguments go in the scratch area `s`).
fn fork_child(
    t: &mut PtraceTracee,
    s: Scratch,
    pid: i32,
    skip: &[&VmaEntry],
    files: bool,
) -> Result<Pid> {
    let advise = |t: &mut PtraceTracee, advice: i32| -> Result<()> {
        for v in skip {
            t.syscall(
                "madvise (fork inheritance)",
                libc::SYS_madvise,
                [v.start, v.len(), advice as u64, 0, 0, 0],
            )
            .map_err(|source| MemoryError::Map {
                pid: t.pid(),
                start: v.start,
                end: v.end,
                what: "keeping a mapping out of a child".into(),
                source,
            })?;
        }
        Ok(())
    };
    advise(t, libc::MADV_DONTFORK)?;
    let kid = fork_child_all(t, s, pid, files);
    advise(t, libc::MADV_DOFORK)?;
    kid
}

fn fork_child_all(t: &mut PtraceTracee, s: Scratch, pid: i32, files: bool) -> Result<Pid> {
    let args = [
        if files { libc::CLONE_FILES as u64 } else { 0 },
        0,
        0,
        0,
        libc::SIGCHLD as u64,
        0,
        0,
        0,
        s.addr + 128,
        1,
        0,
    ];
    t.write_mem(s.addr, &crate::scratch::words_to_bytes(&args))?;
    t.write_mem(s.addr + 128, &(pid as u32).to_le_bytes())?;
    let r = t.syscall_raw(
        libc::SYS_clone3,
        [s.addr, (args.len() * 8) as u64, 0, 0, 0, 0],
    )?;
    if r == -(libc::EEXIST as i64) {
        return Err(RestoreError::pid_taken(pid, None));
    }
    if r < 0 {
        return Err(RestoreError::Clone {
            pid,
            source: Errno::from_raw(-r as i32),
        });
    }
    let kid = Pid::from_raw(r as i32);
    wait_stop(kid)?;
    Ok(kid)
}

/// What rebuilding one process leaves for later.
struct Rebuilt {
    /// Pages written by the tracer itself.
    written: Option<memory::PagesStats>,
    /// Pages for the page threads.
    later: stasis_image::PageIndexEntry,
    /// Its threads other than the leader.
    threads: Vec<Pid>,
    /// Fds that wait for processes restored after it.
    deferred: Option<Deferred>,
}

/// One process being rebuilt: the image, the process, what prepare made, its skeleton.
struct RebuildCx<'a, 'b> {
    img: &'a Image,
    p: &'a stasis_image::ProcessEntry,
    prep: &'a Prepared<'b>,
    child: Pid,
}

impl RebuildCx<'_, '_> {
    /// The image's children of this process.
    fn children(&self) -> Vec<&stasis_image::ProcessEntry> {
        self.img
            .processes
            .iter()
            .filter(|q| q.ppid == self.p.pid)
            .collect()
    }
}

/// The skeleton as taken over: its special mappings, its whole current layout, and where its
/// vDSO's syscall instruction is.
struct Skeleton {
    here: Vec<VmaEntry>,
    current: Vec<stasis_procfs::maps::MapsEntry>,
    gadget_off: u64,
}

fn rebuild(
    child: Pid,
    img: &Image,
    p: &stasis_image::ProcessEntry,
    pm: &stasis_image::PageIndexEntry,
    pages: &memory::PageSource,
    prep: &Prepared,
    forked: &mut Vec<Pid>,
) -> Result<Rebuilt> {
    let cx = RebuildCx {
        img,
        p,
        prep,
        child,
    };
    let (mut t, skeleton) = take_over(&cx)?;
    let (s, written, later) = swap_memory(&cx, &mut t, skeleton, pm, pages)?;
    restore_identity(&cx, &mut t, s)?;
    fork_children(&cx, &mut t, s, forked)?;
    let deferred = place_fds(&cx, &mut t, s)?;
    let threads = restore_state(&cx, &mut t, s)?;
    // Registers last: the process runs from where it was when it is let go.
    let th = &p.threads[0];
    thread::restore_cpu(child, th, false)?;
    for (tid, th) in threads.iter().zip(&p.threads[1..]) {
        thread::restore_cpu(*tid, th, false)?;
    }
    Ok(Rebuilt {
        written,
        later,
        threads,
        deferred,
    })
}

/// Phase 1: block the skeleton's signals, take it as a tracee, find its vDSO's syscall
/// instruction and unregister its rseq area (see DESIGN §4.1).
fn take_over(cx: &RebuildCx) -> Result<(PtraceTracee, Skeleton)> {
    let (p, child) = (cx.p, cx.child);
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
    let current =
        stasis_procfs::maps::parse_maps(&maps_text).map_err(|source| ProcessError::Parse {
            pid: pidn,
            file: "maps",
            source,
        })?;
    let here: Vec<VmaEntry> = current
        .iter()
        .cloned()
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
    let vdso = here.iter().find(|v| v.kind == VmaKind::Vdso);
    // A skeleton forked from a restored parent that has no vDSO has none either: nothing to
    // drive it through once its inherited memory is unmapped.
    let vdso = vdso.ok_or(MemoryError::VdsoMissing { pid: pidn })?;
    let gadget_off = find_gadget(&t, vdso.start, vdso.end)? - vdso.start;
    t.set_gadget(vdso.start + gadget_off);
    thread::unregister_rseq(&mut t)?;
    Ok((
        t,
        Skeleton {
            here,
            current,
            gadget_off,
        },
    ))
}

/// Phase 2: the address space: unmap the skeleton's (keeping what a child shares with its
/// parent), move the special mappings to their saved places, map every saved VMA, write the
/// pages this thread must write itself (the rest goes to the page threads: `later`).
fn swap_memory(
    cx: &RebuildCx,
    t: &mut PtraceTracee,
    sk: Skeleton,
    pm: &stasis_image::PageIndexEntry,
    pages: &memory::PageSource,
) -> Result<(
    Scratch,
    Option<memory::PagesStats>,
    stasis_image::PageIndexEntry,
)> {
    let (img, p, prep) = (cx.img, cx.p, cx.prep);
    let pidn = p.pid;
    let Skeleton {
        here,
        current,
        gadget_off,
    } = sk;
    let no_vdso = memory::saved_without_vdso(&p.vmas);
    // Unmap everything of the skeleton but its special mappings and, in a process forked
    // from its restored parent, the mappings whose pages it still shares with the parent.
    let mut keep: Vec<(u64, u64)> = here
        .iter()
        .filter(|v| matches!(v.kind, VmaKind::Vdso | VmaKind::Vvar | VmaKind::VvarVclock))
        .map(|v| (v.start, v.end))
        .collect();
    for v in p.vmas.iter().filter(|v| !v.cow.is_empty()) {
        // (The restored parent's mappings may have merged where the dumped ones were apart.)
        let mut at = v.start;
        for m in current
            .iter()
            .filter(|m| m.end > v.start && m.start < v.end)
        {
            if m.start <= at {
                at = at.max(m.end);
            }
        }
        if at < v.end {
            return Err(MemoryError::CowMissing {
                pid: pidn,
                start: v.start,
                end: v.end,
            }
            .into());
        }
        keep.push((v.start, v.end));
    }
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
    memory::move_specials(t, &moves, &p.vmas)?;
    if let Some(m) = moves.iter().find(|m| m.kind == VmaKind::Vdso) {
        t.set_gadget(m.to + gadget_off);
    }

    let scratch_at =
        memory::free_range(&p.vmas, &[], SCRATCH_LEN, 0x10_0000).ok_or(MemoryError::BadRun {
            path: img.dir.join(Image::process_file(pidn)),
            vaddr: 0,
        })?;
    let s = Scratch::map(t, scratch_at)?;

    for (i, v) in p.vmas.iter().enumerate() {
        if !v.cow.is_empty() {
            // Kept from the parent: only the pages that are not the parent's go.
            memory::drop_not_cow(t, v)?;
            continue;
        }
        if v.sysv.is_some() {
            sysvshm::attach(t, &p.vmas, i)?;
            continue;
        }
        let fd = match v.kind {
            // AIO rings are made by io_setup, below.
            VmaKind::Vdso
            | VmaKind::Vvar
            | VmaKind::VvarVclock
            | VmaKind::Vsyscall
            | VmaKind::Aio => continue,
            VmaKind::SharedAnon => v.shmem.and_then(|id| prep.shmem.get(&id)).copied(),
            VmaKind::FilePrivate if v.shmem.is_some() => {
                v.shmem.and_then(|id| prep.shmem.get(&id)).copied()
            }
            VmaKind::FilePrivate | VmaKind::FileShared if v.file_id.is_some() => {
                v.file_id.and_then(|id| prep.by_id.get(&id)).copied()
            }
            VmaKind::FilePrivate | VmaKind::FileShared => {
                let writable = memory::opens_writable(v);
                prep.maps
                    .get(&(v.path.clone().unwrap_or_default(), writable))
                    .copied()
            }
            _ => None,
        };
        if memory::mapped_writable_first(v) {
            // Writable until its pages are in (see memory::protect_shared).
            let mut w = v.clone();
            w.prot |= (libc::PROT_READ | libc::PROT_WRITE) as u32;
            memory::map_vma(t, &w, fd)?;
        } else {
            memory::map_vma(t, v, fd)?;
        }
        memory::advise(t, v)?;
    }
    for v in p.vmas.iter().filter(|v| v.kind == VmaKind::Aio) {
        crate::kinds::aio::restore(t, s, v).map_err(MemoryError::from)?;
    }
    // The pages: here, those children forked below must find (the mappings they share
    // copy-on-write) and those of read-only shared mappings, which are made read-only after
    // them (both need this thread); the rest by the page threads while this one goes on
    // (see restore). Seccomp programs are passed through the stack, which the page threads
    // write, and a process without a vDSO is driven through its own code once its pages are
    // in: then everything is written here.
    let all_here = process::has_seccomp(p) || no_vdso;
    let kids = cx.children();
    let needed =
        |v: &VmaEntry| memory::mapped_writable_first(v) || kids.iter().any(|q| shares_cow(q, v));
    let here: Vec<(u64, u64)> = p
        .vmas
        .iter()
        .filter(|v| all_here || needed(v))
        .map(|v| (v.start, v.end))
        .collect();
    let (now, later) = split_index(pm, &here);
    let stats = if now.runs.is_empty() {
        None
    } else {
        Some(memory::restore_pages(t, &p.vmas, &now, pages)?)
    };
    memory::protect_shared(t, &p.vmas)?;
    if no_vdso {
        // Its own memory is back: drive it through a syscall instruction of its own and take
        // the skeleton's vDSO away again (the process had unmapped its own).
        let rips: Vec<u64> = p.threads.iter().map(|th| th.regs.rip).collect();
        let gadget = find_gadget_anywhere(t, &rips, &memory::executable(&p.vmas))
            .map_err(|_| MemoryError::NoGadget { pid: pidn })?;
        t.set_gadget(gadget);
        for m in &moves {
            t.syscall("munmap", libc::SYS_munmap, [m.to, m.len, 0, 0, 0, 0])
                .map_err(|source| MemoryError::Map {
                    pid: pidn,
                    start: m.to,
                    end: m.to + m.len,
                    what: format!("unmapping the skeleton's {:?}", m.kind),
                    source,
                })?;
        }
    }
    Ok((s, stats, later))
}

/// Phase 3: what makes the process itself: mm fields and exe link, session, group, umask,
/// personality, comm, root and cwd.
fn restore_identity(cx: &RebuildCx, t: &mut PtraceTracee, s: Scratch) -> Result<()> {
    let (img, p, prep, child) = (cx.img, cx.p, cx.prep, cx.child);
    // A process forked from its restored parent has the parent's exe link already; the
    // kernel refuses to set one while the old file is mapped (it is: kept mappings).
    let exe_now = std::fs::read_link(format!("/proc/{child}/exe")).ok();
    let exe_fd = if exe_now.as_deref() == Some(std::path::Path::new(&p.exe)) {
        -1
    } else {
        prep.exe[&p.pid]
    };
    process::restore_mm(t, s, &p.mm, exe_fd)?;
    let tree: Vec<i32> = img.processes.iter().map(|q| q.pid).collect();
    let root_fd = prep.root.get(&p.pid).copied();
    process::restore_basics(t, s, p, prep.cwd[&p.pid], root_fd, &tree)?;

    Ok(())
}

/// Phase 4: the children, forked from this process (they start with its memory, session,
/// group and the parked fds), with helpers for sessions and groups whose leader is gone.
fn fork_children(
    cx: &RebuildCx,
    t: &mut PtraceTracee,
    s: Scratch,
    forked: &mut Vec<Pid>,
) -> Result<()> {
    let (img, p, _prep, _child) = (cx.img, cx.p, cx.prep, cx.child);
    let tree: Vec<i32> = img.processes.iter().map(|q| q.pid).collect();
    let kids = cx.children();
    // The children, forked now: they start with this memory (sharing what they shared with
    // it at dump time), this session and process group, and the parked fds.
    let mut helpers: Vec<PtraceTracee> = Vec::new();
    for q in kids {
        // Big private mappings the child does not share are kept out of it (MADV_DONTFORK
        // for the fork): copying their page tables only for the child to unmap them would
        // cost more than the fork itself.
        let skip: Vec<&VmaEntry> = p
            .vmas
            .iter()
            .filter(|v| {
                matches!(v.kind, VmaKind::Anon | VmaKind::FilePrivate)
                    && v.len() >= 1 << 20
                    // Already kept out (MADV_DONTFORK saved): the MADV_DOFORK after the
                    // fork would clear it.
                    && !memory::has_flag(v, "dc")
                    && !shares_cow(q, v)
            })
            .collect();
        // A session or process group whose leader has exited cannot be made after the fact
        // (setsid names the session after the caller): a helper with the leader's PID makes
        // it and is gone again before anything runs. A session helper forks the child
        // (the child then comes back to us, a subreaper, when the helper exits); a group
        // helper only lends its group, which we move the child into.
        let lost_session =
            q.sid != q.pid && q.sid != p.sid && !tree.contains(&q.sid) && p.child_subreaper;
        let lost_group = !lost_session
            && q.pgid != q.pid
            && q.pgid != p.pgid
            && q.sid == p.sid
            && !tree.contains(&q.pgid);
        if lost_session {
            let h = helper(
                t,
                s,
                q.sid,
                ("setsid", libc::SYS_setsid),
                &mut helpers,
                forked,
            )?;
            let kid = fork_child(h, s, q.pid, &skip, false)?;
            forked.push(kid);
        } else {
            let kid = fork_child(t, s, q.pid, &skip, q.files_shared)?;
            forked.push(kid);
            if lost_group {
                helper(
                    t,
                    s,
                    q.pgid,
                    ("setpgid", libc::SYS_setpgid),
                    &mut helpers,
                    forked,
                )?;
                t.syscall(
                    "setpgid (into a group whose leader exited)",
                    libc::SYS_setpgid,
                    [q.pid as u64, q.pgid as u64, 0, 0, 0, 0],
                )?;
            }
        }
    }
    if !helpers.is_empty() {
        end_helpers(t, s, p, helpers)?;
    }

    Ok(())
}

/// Phase 5: the fds: drop what the skeleton inherited, put the restorer's files in place,
/// make the files the process makes itself, after-placed steps and locks. Returns the fds
/// that wait for processes restored later.
fn place_fds(cx: &RebuildCx, t: &mut PtraceTracee, s: Scratch) -> Result<Option<Deferred>> {
    let (img, p, prep, child) = (cx.img, cx.p, cx.prep, cx.child);
    let pidn = p.pid;
    // Descriptors: drop what the skeleton inherited below `base`, move the parked ones into
    // place, drop the parked copies. A process cloned with its parent's fd table (CLONE_FILES)
    // has its fds already; the parked copies stay until the last process sharing the table has
    // forked its own children (they start with a copy of it and need theirs).
    let fds_err = |source| RestoreError::Fds { pid: pidn, source };
    fn group_of<'i>(img: &'i Image, mut q: &'i stasis_image::ProcessEntry) -> i32 {
        while q.files_shared {
            match img.processes.iter().find(|r| r.pid == q.ppid) {
                Some(r) => q = r,
                None => break,
            }
        }
        q.pid
    }
    let group = group_of(img, p);
    let last_of_group = img
        .processes
        .iter()
        .rfind(|q| q.zombie.is_none() && group_of(img, q) == group)
        .is_some_and(|q| q.pid == pidn);
    let mut deferred = None;
    if !p.files_shared {
        t.syscall(
            "close_range",
            libc::SYS_close_range,
            [0, (prep.base - 1) as u64, 0, 0, 0, 0],
        )
        .map_err(fds_err)?;
        for &(src, dst, cloexec) in &prep.place[&p.pid] {
            let flags = if cloexec { libc::O_CLOEXEC as u64 } else { 0 };
            t.syscall(
                "dup3",
                libc::SYS_dup3,
                [src as u64, dst as u64, flags, 0, 0, 0],
            )
            .map_err(fds_err)?;
        }
        let not_yet = files::place_inside(t, s, &img.files.files, p, &p.fds, false)?;
        deferred = (!not_yet.is_empty()).then(|| Deferred {
            pid: child,
            gadget: t.gadget(),
            fds: not_yet,
        });
        files::placed(t, s, &img.processes, &img.files.files, p)?;
        files::take_description_locks(t, s, &img.processes, &img.files.files, p)?;
    }
    if last_of_group {
        t.syscall(
            "close_range",
            libc::SYS_close_range,
            [prep.base as u64, u32::MAX as u64, 0, 0, 0, 0],
        )
        .map_err(fds_err)?;
    }
    if !p.files_shared {
        files::take_posix_locks(t, s, &img.files.files, p)?;
    }

    Ok(deferred)
}

/// Phase 6: the process's and threads' own state, in the order written down in DESIGN §6:
/// limits, signals, threads, seccomp, credentials, dumpable, prctl, timers, scheduling.
/// Returns the threads made.
fn restore_state(cx: &RebuildCx, t: &mut PtraceTracee, s: Scratch) -> Result<Vec<Pid>> {
    let (img, p, prep, child) = (cx.img, cx.p, cx.prep, cx.child);
    let pidn = p.pid;
    process::restore_rlimits(pidn, &p.rlimits)?;
    process::restore_oom_score_adj(pidn, p.oom_score_adj)?;
    process::restore_loginuid(t, s, p.loginuid)?;
    signal::restore_sigactions(t, s, &p.sigactions)?;
    signal::restore_itimers(t, s, &p.itimers)?;
    let th = &p.threads[0];
    thread::restore_inside(t, s, th)?;
    signal::queue_signals(t, s, pidn, Some(th.tid), &th.pending)?;
    signal::queue_signals(t, s, pidn, None, &p.shared_pending)?;
    // The other threads, cloned from the leader while it still has our privileges (clone3
    // with a TID needs them); each then takes its credentials, its own or the process's
    // (credentials are per thread to the kernel).
    let mut threads = Vec::new();
    for th in &p.threads[1..] {
        let tid = thread::create_thread(t, s, th.tid).map_err(|e| match e {
            TraceeError::Syscall {
                source: Errno::EEXIST,
                ..
            } => RestoreError::pid_taken(th.tid, None),
            e => e.into(),
        })?;
        threads.push(tid);
        let mut tt = PtraceTracee::new(tid)?;
        tt.set_gadget(t.gadget());
        thread::restore_inside(&mut tt, s, th)?;
        signal::queue_signals(&mut tt, s, pidn, Some(th.tid), &th.pending)?;
    }
    // Seccomp before credentials: without no_new_privs, installing a filter takes
    // CAP_SYS_ADMIN, which the saved credentials may not have. The filters are suspended for
    // the remote syscalls that follow (PTRACE_O_SUSPEND_SECCOMP, set at seize) until detach.
    let room = |th: &stasis_image::ThreadEntry| process::ProgramRoom {
        rsp: th.regs.rsp,
        stack_low: p
            .vmas
            .iter()
            .find(|v| v.start <= th.regs.rsp && th.regs.rsp < v.end)
            .map_or(u64::MAX, |v| v.start),
    };
    if prep.seccomp_early {
        process::restore_seccomp(t, p, room(th))?;
    }
    for (tid, th) in threads.iter().zip(&p.threads[1..]) {
        let mut tt = PtraceTracee::new(*tid)?;
        tt.set_gadget(t.gadget());
        if prep.seccomp_early {
            process::restore_thread_seccomp(&mut tt, p, th, room(th))?;
        }
        process::restore_creds(&mut tt, s, th.creds.as_ref().unwrap_or(&p.creds))?;
        // no_new_privs is per thread too (seccomp filters reach every thread by TSYNC).
        if p.no_new_privs {
            process::restore_no_new_privs(&mut tt)?;
        }
    }
    process::restore_creds(t, s, &p.creds)?;
    // Changing credentials resets the dumpable flag: it goes after every thread's.
    process::restore_dumpable(t, p.dumpable)?;
    process::restore_prctl(t, p, p.pid == img.processes[0].pid)?;
    // POSIX timers last among the process's own state: a thread-directed one needs its thread.
    signal::restore_posix_timers(t, s, &p.posix_timers)?;
    s.unmap(t)?;
    for (tid, th) in std::iter::once(&child).chain(&threads).zip(&p.threads) {
        if let Some(sched) = &th.sched {
            thread::restore_sched(*tid, sched)?;
        }
    }
    if !prep.seccomp_early {
        process::restore_seccomp(t, p, room(th))?;
        for (tid, th) in threads.iter().zip(&p.threads[1..]) {
            let mut tt = PtraceTracee::new(*tid)?;
            tt.set_gadget(t.gadget());
            process::restore_thread_seccomp(&mut tt, p, th, room(th))?;
        }
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(pages: &[u32]) -> stasis_image::PageIndexEntry {
        let mut off = 0;
        stasis_image::PageIndexEntry {
            pid: 7,
            pages_file: "pages-7".into(),
            runs: pages
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let r = stasis_image::PageRun {
                        vaddr: 0x1000_0000 * (i as u64 + 1),
                        pages: n,
                        offset: off,
                        crc32c: 0,
                        lz4_len: 0,
                    };
                    off += n as u64 * 4096;
                    r
                })
                .collect(),
        }
    }

    #[test]
    fn big_indexes_split_into_parts_covering_every_run_once() {
        let pm = index(&[256; 40]); // 40 MiB
        let parts = split_runs(&pm, 2, 32 << 20);
        assert_eq!(parts.len(), 2);
        let all: Vec<_> = parts.iter().flat_map(|p| p.runs.clone()).collect();
        assert_eq!(all, pm.runs);
        assert!(parts
            .iter()
            .all(|p| p.pid == 7 && p.pages_file == "pages-7"));
        // Small ones stay whole.
        assert_eq!(split_runs(&index(&[256; 4]), 2, 32 << 20).len(), 1);
        assert_eq!(split_runs(&pm, 1, 32 << 20).len(), 1);
    }
}
