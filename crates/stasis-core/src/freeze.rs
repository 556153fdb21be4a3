//! Taking a process tree out of circulation and giving it back: PTRACE_SEIZE +
//! PTRACE_INTERRUPT of every thread of every process (parents before children, rescanning
//! until nothing new appears; zombies kept as such), then release (registers, masks and ptrace
//! given back) or kill (leaves first, waiting until each PID is free), and CPU pinning of
//! tracer and tracee while remote syscalls run (a remote syscall costs ~90 µs across CPUs of
//! these VMs, ~15 µs on one). What is saved of the tree is the dump's business, not this
//! module's.

use crate::kinds::process;
use crate::tracee::resume_regs;
use crate::tracee::{PtraceTracee, Tracee, TraceeError};
use nix::sched::CpuSet;
use stasis_image::CredsEntry;
use stasis_sys::ptrace::{self, WaitStatus};
use stasis_sys::{Errno, Pid};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("no process with pid {pid}; check the pid (ps -p {pid})")]
    NoSuchProcess { pid: i32 },
    #[error("not permitted to trace pid {pid}; run stasis as the process's owner or as root")]
    Permission { pid: i32 },
    #[error("pid {pid} is already traced by pid {tracer}; detach the debugger first")]
    AlreadyTraced { pid: i32, tracer: i32 },
    #[error("cannot seize pid {pid}")]
    Seize {
        pid: i32,
        #[source]
        source: Errno,
    },
    #[error("pid {pid} did not stop after PTRACE_INTERRUPT ({status})")]
    NoStop { pid: i32, status: String },
    #[error("pid {pid} exited while being frozen")]
    Gone { pid: i32 },
    #[error("pid {pid} is a zombie (it exited and waits for its parent to reap it): there is nothing left to dump")]
    Zombie { pid: i32 },
    #[error("pid {pid}: the image is durable but killing the process failed")]
    Kill {
        pid: i32,
        #[source]
        source: Errno,
    },
    #[error(transparent)]
    Tracee(#[from] crate::tracee::TraceeError),
}

/// One seized, stopped thread.
#[derive(Debug)]
pub struct Frozen {
    pub pid: Pid,
    /// The thread was in a job-control stop (SIGSTOP, SIGTSTP, ...): its first report was a
    /// group stop, not our interrupt.
    pub job_stopped: bool,
    /// The signal of that stop (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), 0 when not stopped.
    pub stop_sig: i32,
}

/// Whether thread `tid` has a SIGSTOP pending, in its own queue or its process's.
fn sigstop_pending(tid: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    let bit = 1u64 << (libc::SIGSTOP - 1);
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .any(|m| m & bit != 0)
}

/// Seize `pid` (options `opts`) and stop it with PTRACE_INTERRUPT.
pub fn seize_and_stop(pid: Pid, opts: u32) -> Result<Frozen, FreezeError> {
    let raw = pid.as_raw();
    ptrace::seize(pid, opts).map_err(|e| match e {
        Errno::ESRCH => FreezeError::NoSuchProcess { pid: raw },
        Errno::EPERM => {
            let tracer = std::fs::read_to_string(format!("/proc/{raw}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("TracerPid:"))
                        .and_then(|v| v.trim().parse::<i32>().ok())
                })
                .unwrap_or(0);
            if tracer != 0 {
                FreezeError::AlreadyTraced { pid: raw, tracer }
            } else {
                FreezeError::Permission { pid: raw }
            }
        }
        source => FreezeError::Seize { pid: raw, source },
    })?;
    ptrace::interrupt(pid).map_err(|source| FreezeError::Seize { pid: raw, source })?;
    let (job_stopped, sig_of_stop) = loop {
        match ptrace::wait(pid, false) {
            Ok(Some((_, WaitStatus::Stopped { event, sig }))) if event == ptrace::EVENT_STOP => {
                break (sig != libc::SIGTRAP, sig);
            }
            Ok(Some((_, WaitStatus::Stopped { sig, .. }))) => {
                // A signal arrived before our interrupt: let it be delivered (it is not ours
                // to swallow) and wait for the interrupt stop that follows.
                ptrace::cont(pid, sig).map_err(|source| FreezeError::Seize { pid: raw, source })?;
            }
            Ok(Some((_, WaitStatus::Exited(_) | WaitStatus::Signaled(_)))) | Err(Errno::ECHILD) => {
                return Err(FreezeError::Gone { pid: raw })
            }
            Ok(other) => {
                return Err(FreezeError::NoStop {
                    pid: raw,
                    status: format!("{other:?}"),
                })
            }
            Err(source) => return Err(FreezeError::Seize { pid: raw, source }),
        }
    };
    let mut stop_sig = if job_stopped { sig_of_stop } else { 0 };
    // A SIGSTOP still pending (sent again to a stopped process, or racing our interrupt)
    // cannot be blocked: the first remote syscall would run into its signal-delivery stop.
    // Let the thread take it now, every other signal blocked, and drop it (the next resume
    // passes signal 0): the process is saved as stopped by it instead, which it is or is about
    // to be (a SIGCONT would have discarded it anyway).
    if sigstop_pending(raw) {
        let err = |source| FreezeError::Seize { pid: raw, source };
        let mask = ptrace::get_sigmask(pid).map_err(err)?;
        ptrace::set_sigmask(pid, !0u64).map_err(err)?;
        while sigstop_pending(raw) {
            ptrace::cont(pid, 0).map_err(err)?;
            match ptrace::wait(pid, false) {
                Ok(Some((_, WaitStatus::Stopped { .. }))) => {}
                Ok(Some((_, WaitStatus::Exited(_) | WaitStatus::Signaled(_))))
                | Err(Errno::ECHILD) => return Err(FreezeError::Gone { pid: raw }),
                Ok(other) => {
                    return Err(FreezeError::NoStop {
                        pid: raw,
                        status: format!("{other:?}"),
                    })
                }
                Err(source) => return Err(FreezeError::Seize { pid: raw, source }),
            }
        }
        ptrace::set_sigmask(pid, mask).map_err(err)?;
        if stop_sig == 0 {
            stop_sig = libc::SIGSTOP;
        }
    }
    Ok(Frozen {
        pid,
        job_stopped: stop_sig != 0,
        stop_sig,
    })
}

/// Pins this thread and a tracee to the CPU we run on; restores both affinities on drop.
pub struct Pinned {
    tracee: Pid,
    ours: Option<CpuSet>,
    theirs: Option<CpuSet>,
}

impl Pinned {
    /// Best effort: pinning is an optimisation, failure only costs speed.
    pub fn new(tracee: Pid) -> Pinned {
        let me = Pid::from_raw(0);
        let ours = nix::sched::sched_getaffinity(me).ok();
        let theirs = nix::sched::sched_getaffinity(tracee).ok();
        if let Ok(cpu) = nix::sched::sched_getcpu() {
            let mut one = CpuSet::new();
            if one.set(cpu).is_ok() {
                let _ = nix::sched::sched_setaffinity(me, &one);
                let _ = nix::sched::sched_setaffinity(tracee, &one);
            }
        }
        Pinned {
            tracee,
            ours,
            theirs,
        }
    }

    /// Set the tracee's affinity (restored processes get their saved one later).
    pub fn forget_tracee(&mut self) {
        self.theirs = None;
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(t) = &self.theirs {
            let _ = nix::sched::sched_setaffinity(self.tracee, t);
        }
        if let Some(o) = &self.ours {
            let _ = nix::sched::sched_setaffinity(Pid::from_raw(0), o);
        }
    }
}

/// Seize every process of the tree below `root`, parents before children. A process is
/// frozen before its children are listed, so none can escape by forking meanwhile.
pub(crate) fn freeze_tree(root: Pid) -> Result<Vec<Seized>, FreezeError> {
    let mut tree: Vec<Seized> = Vec::new();
    let mut todo = vec![root];
    let mut i = 0;
    while i < todo.len() {
        let pid = todo[i];
        i += 1;
        // One read of /proc/PID/stat gives both what the process is doing and its parent.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| stasis_procfs::stat::parse_stat(&s).ok());
        let state = stat.as_ref().map(|s| s.state);
        let ppid = stat.as_ref().map_or(0, |s| s.ppid);
        if state == Some('Z') && pid == root {
            return Err(FreezeError::Zombie { pid: pid.as_raw() });
        }
        if state == Some('Z') {
            // A zombie cannot be seized: it is kept as its exit status.
            tree.push(Seized::zombie(pid, ppid));
            continue;
        }
        match freeze_all(pid, ppid) {
            Ok(s) => tree.push(s),
            // A child that exited between the /proc read and the seize (a shell's short-lived
            // `sleep`, say): its parent is frozen, so it stays a zombie we keep as such, or,
            // if the parent ignores SIGCHLD, it is gone and no longer part of the tree.
            Err(e) if pid != root => match task_state(pid.as_raw(), pid.as_raw()) {
                Some('Z') => {
                    tree.push(Seized::zombie(pid, ppid));
                    continue;
                }
                None | Some('X') => continue,
                Some(_) => {
                    release_all(&mut tree);
                    return Err(e);
                }
            },
            Err(e) => {
                release_all(&mut tree);
                return Err(e);
            }
        }
        for t in list_tasks(pid.as_raw()) {
            let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/children"))
                .unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                let k = Pid::from_raw(k);
                if !todo.contains(&k) {
                    todo.push(k);
                }
            }
        }
    }
    Ok(tree)
}

pub(crate) fn release_all(tree: &mut [Seized]) {
    for p in tree {
        p.release(true);
    }
}

/// Kill a dumped tree, leaves first. Parents are made to ignore SIGCHLD first so the kernel
/// reaps each child at once (otherwise they would linger as zombies until init reaps them,
/// and a restore right after would find their PIDs taken).
pub(crate) fn kill_tree(tree: &[Seized]) -> Result<(), FreezeError> {
    for p in tree.iter().filter(|p| !p.zombie) {
        let has_children = tree.iter().any(|c| c.ppid == p.pid.as_raw());
        if has_children {
            let zombies: Vec<i32> = tree
                .iter()
                .filter(|c| c.zombie && c.ppid == p.pid.as_raw())
                .map(|c| c.pid.as_raw())
                .collect();
            if let Err(e) = ignore_sigchld(p, &zombies) {
                tracing::warn!(pid = p.pid.as_raw(), error = %e, "cannot make the process ignore SIGCHLD before killing it");
            }
        }
    }
    for p in tree.iter().rev().filter(|p| !p.zombie) {
        ptrace::kill(p.pid, libc::SIGKILL).map_err(|source| FreezeError::Kill {
            pid: p.pid.as_raw(),
            source,
        })?;
        // As their tracer we see the deaths first (threads included); the parent can reap
        // the process only after.
        for th in p.threads.iter().rev() {
            let _ = ptrace::wait(th.tid, false);
        }
    }
    Ok(())
}

/// rt_sigaction(SIGCHLD, {SIG_IGN}) inside a seized process that is about to be killed, and
/// reap its `zombies` (wait4) there too; the struct goes below its stack pointer (the process
/// never runs again).
fn ignore_sigchld(p: &Seized, zombies: &[i32]) -> Result<(), TraceeError> {
    let mut t = PtraceTracee::new(p.pid)?;
    t.set_gadget(p.gadget);
    let at = (t.base_regs().rsp - 4096) & !15;
    t.write_mem(at, &crate::scratch::words_to_bytes(&[1, 0, 0, 0]))?;
    t.syscall(
        "rt_sigaction(SIGCHLD, SIG_IGN)",
        libc::SYS_rt_sigaction,
        [libc::SIGCHLD as u64, at, 0, 8, 0, 0],
    )?;
    for &z in zombies {
        t.syscall(
            "wait4 (zombie)",
            libc::SYS_wait4,
            [z as u64, 0, libc::WNOHANG as u64, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// Wait (bounded) until `pid` no longer exists, so a restore right after cannot collide with
/// a zombie the parent or init has not reaped yet.
pub(crate) fn wait_gone(pid: i32, limit: Duration) {
    let t = Instant::now();
    let path = format!("/proc/{pid}/stat");
    let mut said = false;
    while t.elapsed() < limit {
        match std::fs::read_to_string(&path) {
            Err(_) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
        }
        if !said && t.elapsed() > Duration::from_millis(200) {
            tracing::warn!(
                pid,
                "the image is durable and the process killed; waiting (up to {limit:?}) for its parent or init to reap it, so that a restore finds its pid free"
            );
            said = true;
        }
    }
    tracing::warn!(
        pid,
        "the killed process has not been reaped yet; a restore may find its PID taken"
    );
}

/// One seized thread and what must be put back before it runs again.
pub(crate) struct SeizedThread {
    pub(crate) tid: Pid,
    pub(crate) job_stopped: bool,
    pub(crate) stop_sig: i32,
    /// Its credentials when it was frozen.
    pub(crate) creds: Option<CredsEntry>,
    pub(crate) base: Option<ptrace::Regs>,
    pub(crate) sigmask: Option<u64>,
}

/// A seized process: every thread stopped under ptrace, the leader first.
pub(crate) struct Seized {
    pub(crate) pid: Pid,
    pub(crate) ppid: i32,
    pub(crate) threads: Vec<SeizedThread>,
    /// The `syscall` instruction remote syscalls use (found during collect).
    pub(crate) gadget: u64,
    /// An exited, unreaped process: nothing is seized.
    pub(crate) zombie: bool,
    /// In a job-control stop when seized.
    pub(crate) stopped: bool,
    /// The signal of that stop.
    pub(crate) stop_sig: i32,
}

/// Seize and stop every thread of `pid`, rescanning /proc/PID/task until no new thread
/// appears (a thread may be creating another while we seize). A thread that exits meanwhile
/// is skipped; any other failure releases what was seized.
fn freeze_all(pid: Pid, ppid: i32) -> Result<Seized, FreezeError> {
    let mut seized = Seized {
        pid,
        ppid,
        threads: Vec::new(),
        gadget: 0,
        zombie: false,
        stopped: false,
        stop_sig: 0,
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
            match seize_and_stop(Pid::from_raw(tid), ptrace::OPT_TRACESYSGOOD)
                .and_then(|f| after_stop(pid, f))
            {
                Ok(th) => seized.threads.push(th),
                // A thread that exits while we freeze its siblings is not part of the image.
                Err(_)
                    if tid != pid.as_raw()
                        && matches!(task_state(pid.as_raw(), tid), None | Some('Z' | 'X')) => {}
                Err(e) => {
                    seized.release(true);
                    return Err(e);
                }
            }
        }
    }
    // The leader first: it is the one whose registers drive process-wide remote syscalls.
    seized
        .threads
        .sort_by_key(|t| (t.tid != pid, t.tid.as_raw()));
    seized.stopped = seized.threads.first().is_some_and(|t| t.job_stopped);
    seized.stop_sig = seized.threads.first().map_or(0, |t| t.stop_sig);
    Ok(seized)
}

/// What a thread's /proc status says once it is stopped (read once, here): its credentials,
/// and whether seccomp judges its syscalls, in which case filters (or strict mode) are
/// suspended for as long as we trace it, since they could kill the process for one of our
/// remote syscalls (needs CAP_SYS_ADMIN).
fn after_stop(pid: Pid, f: Frozen) -> Result<SeizedThread, FreezeError> {
    let tid = f.pid.as_raw();
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .ok()
        .and_then(|t| stasis_procfs::status::parse_status(&t).ok());
    if status.as_ref().is_some_and(|st| st.seccomp != 0) {
        ptrace::set_options(
            f.pid,
            ptrace::OPT_TRACESYSGOOD | ptrace::OPT_SUSPEND_SECCOMP,
        )
        .map_err(|source| FreezeError::Seize { pid: tid, source })?;
    }
    Ok(SeizedThread {
        tid: f.pid,
        job_stopped: f.job_stopped,
        stop_sig: f.stop_sig,
        creds: status.as_ref().map(process::creds_of),
        base: None,
        sigmask: None,
    })
}

/// The state letter of thread `tid` of `pid` (/proc/PID/task/TID/stat), None if it is gone.
fn task_state(pid: i32, tid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stasis_procfs::stat::parse_stat(&s).ok().map(|s| s.state)
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
    /// An exited, unreaped process, kept as its exit status.
    fn zombie(pid: Pid, ppid: i32) -> Seized {
        Seized {
            pid,
            ppid,
            threads: Vec::new(),
            gadget: 0,
            zombie: true,
            stopped: false,
            stop_sig: 0,
        }
    }

    /// Put every thread's saved registers and signal mask back without detaching.
    pub(crate) fn release_cpu(&mut self, same_process: bool) -> Result<(), TraceeError> {
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
    pub(crate) fn release(&mut self, same_process: bool) {
        let _ = self.release_cpu(same_process);
        for th in &self.threads {
            let _ = ptrace::detach(th.tid, 0);
        }
    }
}
