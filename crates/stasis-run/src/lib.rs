//! `stasis run`: supervise a job so it survives crashes, node loss and preemption. This crate
//! is the supervisor; it drives the engine (the `stasis` library of stasis-core) to take and
//! restore checkpoints and never traces the job itself. The CLI (`stasis run`, `stasis
//! status`, `stasis checkpoint`) is a thin layer over it; docs/run.md is the reference.
//!
//! Three kinds of process:
//! - the **front** (the `stasis run` command itself, in the caller's PID namespace): takes
//!   the images directory's lock, makes the namespaces (a user namespace first when not root,
//!   so an unprivileged user owns the rest), forks the init, relays every signal it gets to
//!   the init and exits with the init's status;
//! - the **init** (PID 1 of a new PID namespace, in a mount namespace with its own /proc and,
//!   where the kernel allows it, a time namespace and a cgroup for the job): starts the job or
//!   restores it from the newest valid checkpoint, reaps, takes checkpoints on schedule, on
//!   request (`stasis checkpoint DIR`) and on a preemption signal, restores the job after a
//!   crash, and keeps `status.json` current (see [`init`]; the job's cgroups are [`cgroup`]'s);
//! - one **dump worker** per checkpoint, forked by the init: if it is killed the job runs on
//!   (a dump never sets PTRACE_O_EXITKILL) and the previous checkpoint stays the newest.
//!
//! Because the job's PIDs live in a namespace stasis owns, an image always holds PIDs that are
//! free again in the next run's namespace: a restore never collides with another process.
//! What the directory holds and how it stays consistent is [`catalog`]'s business.

pub mod catalog;
pub mod cgroup;
pub mod control;
pub mod init;
pub mod interval;

use catalog::{Catalog, CatalogError, JobRecord};
pub use interval::{parse_duration, IntervalPolicy};
use std::path::PathBuf;
use std::time::Duration;

/// `stasis run`'s exit status when it stopped the job for a preemption: the job can be
/// resumed from the images directory ("checkpointed, requeue me"; EX_TEMPFAIL).
pub const EXIT_PREEMPTED: i32 = 75;
/// `stasis run`'s exit status when stasis itself failed (the job could not be started or
/// resumed, or the supervisor broke); the message on stderr says what (EX_SOFTWARE).
pub const EXIT_FAILED: i32 = 70;

/// When a job that died is brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restore the newest valid checkpoint when the job is killed by a signal nobody sent
    /// through stasis (a crash, the OOM killer, a stray SIGKILL).
    OnCrash,
    Never,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub images: PathBuf,
    pub command: Vec<String>,
    /// Start anew even if the directory holds checkpoints of the job.
    pub fresh: bool,
    pub interval: IntervalPolicy,
    /// How long a final checkpoint on preemption may take before the job is stopped anyway.
    pub grace: Duration,
    /// Signals that mean "you are being preempted".
    pub preempt_signals: Vec<i32>,
    pub restart: RestartPolicy,
    pub max_restarts: u32,
    /// How many checkpoints to keep (at least 1).
    pub keep: usize,
    pub compress: bool,
    pub tcp_established: bool,
    /// Run the job in a time namespace (where the kernel allows it).
    pub time_ns: bool,
    /// Run the job in a cgroup of its own (where stasis may create one).
    pub cgroup: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{dir} holds checkpoints of another job ({theirs:?}, started in {cwd}); use another --images directory, or --fresh to start this command there anew")]
    OtherJob {
        dir: PathBuf,
        theirs: Vec<String>,
        cwd: PathBuf,
    },
    #[error("no command given: stasis run --images DIR -- COMMAND [ARGS]")]
    NoCommand,
    #[error("cannot create the job's namespaces ({step})")]
    Namespaces {
        step: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot write {path} for the user namespace")]
    IdMap {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the supervisor ({step})")]
    Start {
        step: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
}

/// Run `opts.command` under supervision; returns the exit status for the caller (the job's
/// own status, [`EXIT_PREEMPTED`] or [`EXIT_FAILED`]).
pub fn run(opts: &RunOptions) -> Result<i32, RunError> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    if opts.command.is_empty() {
        return Err(RunError::NoCommand);
    }
    let catalog = Catalog::create(&opts.images)?;
    let lock = catalog.lock()?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let first_seq = match catalog.job()? {
        Some(job) if !opts.fresh && job.record.command != opts.command => {
            return Err(RunError::OtherJob {
                dir: catalog.dir().to_path_buf(),
                theirs: job.record.command,
                cwd: job.record.cwd,
            })
        }
        Some(job) if !opts.fresh && job.completed.is_none() => job.first_seq,
        previous => {
            if let Some(how) = previous.and_then(|j| j.completed) {
                eprintln!("stasis run: the job's previous run finished ({how}); starting it anew");
            }
            // A fresh start: older checkpoints in the directory are not this job's.
            let first_seq = catalog.next_dir()?.0;
            catalog.set_job(&catalog::JobFile {
                record: JobRecord {
                    command: opts.command.clone(),
                    cwd: cwd.clone(),
                    started_unix: catalog::now_unix(),
                },
                first_seq,
                completed: None,
            })?;
            first_seq
        }
    };
    let rootless = !nix::unistd::geteuid().is_root();
    if rootless {
        enter_user_ns()?;
    }
    // Signals are read from a signalfd by both the front and the init: block them before the
    // fork so none is lost in between.
    let mask = signal_mask(opts);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)).map_err(
        |source| RunError::Start {
            step: "blocking signals",
            source,
        },
    )?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).map_err(|source| {
        RunError::Namespaces {
            step: "unshare(CLONE_NEWPID)",
            source,
        }
    })?;
    let init = match stasis_sys::clone::fork().map_err(|source| RunError::Start {
        step: "fork",
        source,
    })? {
        stasis_sys::clone::Forked::Child => {
            let code = init::main(init::InitCx {
                opts: opts.clone(),
                catalog,
                first_seq,
                rootless,
                lock,
            });
            stasis_sys::clone::child_exit(code)
        }
        stasis_sys::clone::Forked::Parent(p) => p,
    };
    // Not unlocked here (that would unlock the init's copy too): our fd closes when we exit.
    std::mem::forget(lock);
    // The init gets its own process group, so a terminal's ^C reaches it once (through us)
    // rather than twice.
    let _ = nix::unistd::setpgid(init, init);
    front(init, &mask)
}

/// Signals the front relays to the init: the preemption ones and the usual terminators.
fn relayed_signals(opts: &RunOptions) -> Vec<i32> {
    let mut v = vec![
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    for &s in &opts.preempt_signals {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

/// What the front and the init read from their signalfd: the relayed signals and SIGCHLD.
fn signal_mask(opts: &RunOptions) -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    for s in relayed_signals(opts) {
        if let Ok(sig) = Signal::try_from(s) {
            mask.add(sig);
        }
    }
    mask.add(Signal::SIGCHLD);
    mask
}

/// The front's life: relay signals to the init until it exits, then exit as it did.
fn front(init: nix::unistd::Pid, mask: &nix::sys::signal::SigSet) -> Result<i32, RunError> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let sfd = nix::sys::signalfd::SignalFd::new(mask).map_err(|source| RunError::Start {
        step: "signalfd",
        source,
    })?;
    loop {
        match sfd.read_signal() {
            Ok(Some(info)) => {
                let sig = info.ssi_signo as i32;
                if sig != libc::SIGCHLD {
                    tracing::info!(sig, "relaying to the supervisor");
                    if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
                        let _ = nix::sys::signal::kill(init, s);
                    }
                    continue;
                }
            }
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {}
        }
        match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => {}
            Err(_) => return Ok(EXIT_FAILED),
        }
    }
}

/// Become root of a new user namespace that maps only our own uid and gid: enough to own the
/// PID, mount and time namespaces that follow and to restore PIDs in them, without any
/// privilege outside.
fn enter_user_ns() -> Result<(), RunError> {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(|source| {
        RunError::Namespaces {
            step: "unshare(CLONE_NEWUSER); is kernel.unprivileged_userns_clone or user.max_user_namespaces 0?",
            source,
        }
    })?;
    let write = |path: &'static str, text: String| {
        std::fs::write(path, text).map_err(|source| RunError::IdMap { path, source })
    };
    write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    // An unprivileged process may map its gid only after giving up setgroups(2).
    write("/proc/self/setgroups", "deny\n".into())?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    Ok(())
}
