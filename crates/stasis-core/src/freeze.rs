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
