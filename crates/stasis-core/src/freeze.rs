//! Taking a process out of circulation and giving it back: PTRACE_SEIZE + PTRACE_INTERRUPT of
//! every thread, detach (or kill) at the end, and CPU pinning of tracer and tracee while remote
//! syscalls run (a remote syscall costs ~90 µs across CPUs of these VMs, ~15 µs on one).

use nix::sched::CpuSet;
use stasis_sys::ptrace::{self, WaitStatus};
use stasis_sys::{Errno, Pid};

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
}

/// One seized, stopped thread.
#[derive(Debug)]
pub struct Frozen {
    pub pid: Pid,
    /// The thread was in a job-control stop (SIGSTOP, SIGTSTP, ...): its first report was a
    /// group stop, not our interrupt.
    pub job_stopped: bool,
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
    let job_stopped = loop {
        match ptrace::wait(pid, false) {
            Ok(Some((_, WaitStatus::Stopped { event, sig }))) if event == ptrace::EVENT_STOP => {
                break sig != libc::SIGTRAP;
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
    Ok(Frozen { pid, job_stopped })
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
