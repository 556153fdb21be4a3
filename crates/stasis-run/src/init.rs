//! The init of a supervised job (PID 1 of its PID namespace): starts or resumes the job,
//! reaps, schedules checkpoints, handles preemption and crashes, answers checkpoint requests
//! and keeps `status.json` current. It is single-threaded between restores (every fork it
//! makes is of a single-threaded process) and never blocks except in `poll`.
//!
//! It must not trace the job itself: dumps run in forked workers, so a dump that is killed
//! or crashes leaves the job running and the supervisor intact.

use crate::catalog::{self, Catalog, CheckpointRecord, RunStatus};
use crate::control;
use crate::interval::Scheduler;
use crate::{RestartPolicy, RunOptions, EXIT_FAILED, EXIT_PREEMPTED};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use stasis::error_chain;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// What the front hands the init.
pub struct InitCx {
    pub opts: RunOptions,
    pub catalog: Catalog,
    pub first_seq: u64,
    pub rootless: bool,
    /// The images directory's lock, held for the init's life.
    pub lock: catalog::DirLock,
}

/// A dump worker at work.
struct Worker {
    pid: Pid,
    reason: &'static str,
    kill: bool,
    result: std::fs::File,
    started: Instant,
}

/// What a worker reports through its pipe.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct WorkerResult {
    ok: bool,
    name: String,
    error: Option<String>,
    page_bytes: u64,
    dump_secs: f64,
    frozen_secs: f64,
    monotonic_ns: Option<i128>,
    boottime_ns: Option<i128>,
}

struct Supervisor {
    opts: RunOptions,
    catalog: Catalog,
    first_seq: u64,
    status: RunStatus,
    sched: Scheduler,
    job: Option<Pid>,
    worker: Option<Worker>,
    /// Clients waiting for the next checkpoint to finish.
    waiters: Vec<UnixStream>,
    /// Control connections whose request has not arrived yet.
    pending: Vec<control::Pending>,
    next_due: Option<Instant>,
    /// Set once a preemption signal came: when the job must be gone.
    preempt_deadline: Option<Instant>,
    /// A terminating signal was passed to the job: its death is not a crash.
    interrupted: bool,
    cgroup: Option<crate::cgroup::JobCgroup>,
    _lock: catalog::DirLock,
}

/// Run the init; returns the status for the front to exit with.
pub fn main(cx: InitCx) -> i32 {
    match Supervisor::start(cx) {
        Ok(mut s) => s.run(),
        Err(e) => {
            eprintln!("stasis run: error: {e}");
            EXIT_FAILED
        }
    }
}

fn clock_ns(id: nix::time::ClockId) -> Option<i128> {
    nix::time::clock_gettime(id)
        .ok()
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
}

impl Supervisor {
    fn start(cx: InitCx) -> Result<Supervisor, String> {
        let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
        stasis::pidns::mount_own_proc()
            .map_err(|e| format!("cannot mount /proc for the job's PID namespace: {e}"))?;
        let sched = Scheduler::new(cx.opts.interval.clone());
        let mut s = Supervisor {
            status: RunStatus {
                state: "starting".into(),
                rootless: cx.rootless,
                interval_secs: sched.interval().map(|d| d.as_secs_f64()),
                interval_reason: sched.reason(),
                ..Default::default()
            },
            sched,
            opts: cx.opts,
            catalog: cx.catalog,
            first_seq: cx.first_seq,
            job: None,
            worker: None,
            waiters: Vec::new(),
            pending: Vec::new(),
            next_due: None,
            preempt_deadline: None,
            interrupted: false,
            cgroup: None,
            _lock: cx.lock,
        };
        s.catalog.remove_debris();
        if s.opts.cgroup {
            match crate::cgroup::JobCgroup::create() {
                Ok(cg) => {
                    s.status.cgroup = Some(cg.job_path().display().to_string());
                    s.cgroup = Some(cg);
                }
                Err(why) => {
                    tracing::info!("the job runs without a cgroup of its own: {why}");
                    s.status.cgroup = Some(format!("none: {why}"));
                }
            }
        }
        // After --fresh, the job's first checkpoint number is past every existing one, so
        // there is nothing to resume.
        let candidates = s.candidates();
        if s.opts.time_ns {
            s.enter_time_ns(candidates.first().and_then(|c| c.record.as_ref()));
        }
        s.resume_or_start(&candidates)?;
        Ok(s)
    }

    /// This job's checkpoints, newest first.
    fn candidates(&self) -> Vec<catalog::Checkpoint> {
        self.catalog
            .checkpoints()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.seq >= self.first_seq)
            .collect()
    }

    /// Make the job's time namespace; when resuming, offset its clocks so that
    /// CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from where the checkpoint left them.
    fn enter_time_ns(&mut self, rec: Option<&CheckpointRecord>) {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
            libc::CLONE_NEWTIME,
        )) {
            tracing::info!("the job runs without a time namespace: unshare(CLONE_NEWTIME): {e}");
            self.status.time_ns = Some(format!("none: unshare(CLONE_NEWTIME) failed: {e}"));
            return;
        }
        let mut text = String::new();
        let mut said = Vec::new();
        if let Some(rec) = rec {
            for (name, saved, id) in [
                (
                    "monotonic",
                    rec.monotonic_ns,
                    nix::time::ClockId::CLOCK_MONOTONIC,
                ),
                (
                    "boottime",
                    rec.boottime_ns,
                    nix::time::ClockId::CLOCK_BOOTTIME,
                ),
            ] {
                let (Some(saved), Some(now)) = (saved, clock_ns(id)) else {
                    continue;
                };
                let off = saved - now;
                let secs = off.div_euclid(1_000_000_000);
                let nsecs = off.rem_euclid(1_000_000_000);
                text.push_str(&format!("{name} {secs} {nsecs}\n"));
                said.push(format!("{name} {:+.3} s", off as f64 / 1e9));
            }
        }
        if !text.is_empty() {
            if let Err(e) = std::fs::write("/proc/self/timens_offsets", &text) {
                tracing::warn!(
                    "cannot set the job's clock offsets ({text:?}): {e}; its clocks will jump"
                );
                self.status.time_ns = Some(format!("yes, without offsets: {e}"));
                return;
            }
        }
        self.status.time_ns = Some(if said.is_empty() {
            "yes".into()
        } else {
            format!("yes, offsets {}", said.join(", "))
        });
    }

    /// Resume from the newest checkpoint that restores, or start the job if there is none.
    fn resume_or_start(&mut self, candidates: &[catalog::Checkpoint]) -> Result<(), String> {
        let mut failures = Vec::new();
        for c in candidates {
            let name = c.name();
            self.set_state("restoring");
            match self
                .in_job_cgroup(|| stasis::restore(&stasis::RestoreOptions::new(c.dir.clone())))
            {
                Ok(r) => {
                    tracing::info!(checkpoint = %name, pid = r.pid, "job resumed");
                    eprintln!("stasis run: resumed from {name}");
                    self.job = Some(Pid::from_raw(r.pid));
                    self.status.resumed_from = Some(name);
                    self.status.job_pid = Some(r.pid);
                    if !failures.is_empty() {
                        self.status.last_error = Some(failures.join("; "));
                    }
                    self.started();
                    return Ok(());
                }
                Err(e) => {
                    let msg = format!("{name}: {}", error_chain(&e));
                    eprintln!("stasis run: warning: skipping checkpoint {msg}");
                    failures.push(msg);
                }
            }
        }
        if !failures.is_empty() {
            let msg = format!(
                "no checkpoint of the job in {} could be restored ({}); fix the cause, or start anew with --fresh",
                self.catalog.dir().display(),
                failures.join("; ")
            );
            self.status.last_error = Some(msg.clone());
            self.set_state("failed");
            return Err(msg);
        }
        self.spawn()?;
        self.started();
        Ok(())
    }

    /// Fork and exec the job's command in a session of its own.
    fn spawn(&mut self) -> Result<(), String> {
        let argv: Vec<CString> = self
            .opts
            .command
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| "the command contains a NUL byte".to_string())?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("cannot start the job: pipe: {e}"))?;
        // The child starts in the job's cgroup; only the parent steps back out.
        if let Some(cg) = &self.cgroup {
            cg.enter_job();
        }
        let forked = stasis_sys::clone::fork();
        if let (Some(cg), Ok(stasis_sys::clone::Forked::Parent(_)) | Err(_)) =
            (&self.cgroup, &forked)
        {
            cg.leave_job();
        }
        let pid = match forked {
            Ok(stasis_sys::clone::Forked::Child) => {
                drop(err_r);
                let _ = nix::unistd::setsid();
                stasis_sys::clone::reset_signals();
                let e = nix::unistd::execvp(&argv[0], &argv).unwrap_err();
                let _ = nix::unistd::write(&err_w, &(e as i32).to_ne_bytes());
                stasis_sys::clone::child_exit(127)
            }
            Ok(stasis_sys::clone::Forked::Parent(p)) => p,
            Err(e) => return Err(format!("cannot start the job: fork: {e}")),
        };
        drop(err_w);
        let mut buf = [0u8; 4];
        if let Ok(4) = nix::unistd::read(err_r.as_raw_fd(), &mut buf) {
            let _ = waitpid(pid, None);
            let errno = nix::errno::Errno::from_raw(i32::from_ne_bytes(buf));
            let msg = format!("cannot run {:?}: {errno}", self.opts.command[0]);
            self.status.last_error = Some(msg.clone());
            self.set_state("failed");
            return Err(msg);
        }
        tracing::info!(pid = pid.as_raw(), "job started");
        self.job = Some(pid);
        self.status.job_pid = Some(pid.as_raw());
        Ok(())
    }

    /// Run `f` (which forks the job's processes) with this process inside the job's cgroup,
    /// so every process it makes starts there; then step back out, so freezing the job never
    /// freezes the supervisor.
    fn in_job_cgroup<T>(&self, f: impl FnOnce() -> T) -> T {
        if let Some(cg) = &self.cgroup {
            cg.enter_job();
        }
        let r = f();
        if let Some(cg) = &self.cgroup {
            cg.leave_job();
        }
        r
    }

    fn started(&mut self) {
        self.next_due = self.sched.interval().map(|d| Instant::now() + d);
        self.set_state("running");
    }

    fn set_state(&mut self, state: &str) {
        self.status.state = state.into();
        self.status.updated_unix = catalog::now_unix();
        self.status.interval_secs = self.sched.interval().map(|d| d.as_secs_f64());
        self.status.interval_reason = self.sched.reason();
        self.status.next_checkpoint_unix = self.next_due.map(|t| {
            catalog::now_unix_f64() + t.saturating_duration_since(Instant::now()).as_secs_f64()
        });
        if let Err(e) = self.catalog.set_status(&self.status) {
            tracing::warn!("cannot update the status file: {}", error_chain(&e));
        }
    }

    fn run(&mut self) -> i32 {
        let mut sfd = match SignalFd::with_flags(
            &crate::signal_mask(&self.opts),
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        ) {
            Ok(s) => s,
            Err(e) => return self.fail(format!("signalfd: {e}")),
        };
        let listener = match control::listen(&self.catalog.control_path()) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(
                    "no control socket at {}: {e}; stasis checkpoint will not reach this job",
                    self.catalog.control_path().display()
                );
                None
            }
        };
        loop {
            if let Some(code) = self.step(&mut sfd, listener.as_ref()) {
                let _ = std::fs::remove_file(self.catalog.control_path());
                return code;
            }
        }
    }

    /// One turn of the loop: wait for a signal, a request or a deadline and act on it.
    /// Returns the exit status once the supervisor is done.
    fn step(&mut self, sfd: &mut SignalFd, listener: Option<&UnixListener>) -> Option<i32> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let now = Instant::now();
        // A periodic checkpoint is not due while one is under way.
        let due = self.next_due.filter(|_| self.worker.is_none());
        let first_pending = self.pending.iter().map(control::Pending::deadline).min();
        let deadline = [due, self.preempt_deadline, first_pending]
            .into_iter()
            .flatten()
            .min();
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                PollTimeout::try_from(d.saturating_duration_since(now) + Duration::from_millis(1))
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(l) = listener {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        for p in &self.pending {
            fds.push(PollFd::new(p.fd(), PollFlags::POLLIN));
        }
        let _ = poll(&mut fds, timeout);
        drop(fds);
        // Signals first: a job exit or a worker's end changes what the rest means.
        while let Ok(Some(info)) = sfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                if let Some(code) = self.reap() {
                    return Some(code);
                }
            } else if let Some(code) = self.on_signal(sig) {
                return Some(code);
            }
        }
        if let Some(l) = listener {
            self.pending.extend(control::accept_all(l));
        }
        for p in std::mem::take(&mut self.pending) {
            match p.advance() {
                control::Progress::Waiting(p) => self.pending.push(p),
                control::Progress::Gone => {}
                control::Progress::Checkpoint(client) => {
                    self.waiters.push(client);
                    if self.worker.is_none() && self.preempt_deadline.is_none() {
                        self.start_worker("request", false);
                    }
                }
            }
        }
        if let Some(d) = self.preempt_deadline {
            if Instant::now() >= d {
                return Some(self.preempt_timeout());
            }
        }
        if self.worker.is_none() && self.job.is_some() {
            if let Some(due) = self.next_due {
                if Instant::now() >= due {
                    self.start_worker("periodic", false);
                }
            }
        }
        None
    }

    fn on_signal(&mut self, sig: i32) -> Option<i32> {
        if self.opts.preempt_signals.contains(&sig) {
            if self.preempt_deadline.is_some() {
                return None;
            }
            eprintln!(
                "stasis run: signal {sig}: taking a final checkpoint, then stopping the job (grace {:.1} s)",
                self.opts.grace.as_secs_f64()
            );
            self.preempt_deadline = Some(Instant::now() + self.opts.grace);
            if self.job.is_none() {
                return Some(self.finish_preempted(false));
            }
            self.set_state("preempted");
            if self.worker.is_none() {
                self.start_worker("preemption", true);
            }
            // A periodic dump under way finishes first; the final one follows (see reap).
            return None;
        }
        // Anything else is the job's: pass it on to its process group. Terminating signals
        // also mean its death is no crash to recover from.
        if matches!(
            sig,
            libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT
        ) {
            self.interrupted = true;
        }
        if let (Some(job), Ok(s)) = (self.job, Signal::try_from(sig)) {
            let _ = nix::sys::signal::killpg(job, s);
        }
        None
    }

    /// Reap every child that has ended; act on the job's and the worker's ends.
    fn reap(&mut self) -> Option<i32> {
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return None,
                Ok(st) => st,
            };
            let pid = st.pid()?;
            if self.worker.as_ref().is_some_and(|w| w.pid == pid) {
                let w = self.worker.take().expect("worker present");
                if let Some(code) = self.worker_done(w, st) {
                    return Some(code);
                }
            } else if Some(pid) == self.job {
                if let Some(code) = self.job_ended(st) {
                    return Some(code);
                }
            }
            // Anything else is an orphan of the job: reaping it is all an init owes it.
        }
    }

    fn job_ended(&mut self, st: WaitStatus) -> Option<i32> {
        self.job = None;
        self.status.job_pid = None;
        if self.preempt_deadline.is_some() {
            // Killed by the final dump (or dying meanwhile): the worker's end decides.
            if self.worker.is_none() {
                return Some(self.finish_preempted(false));
            }
            return None;
        }
        let (code, text, crashed) = match st {
            WaitStatus::Exited(_, c) => (c, format!("exited with status {c}"), false),
            WaitStatus::Signaled(_, s, _) => (
                128 + s as i32,
                format!("killed by signal {} ({s:?})", s as i32),
                true,
            ),
            other => (EXIT_FAILED, format!("{other:?}"), false),
        };
        if self.status.taken == 0 && self.status.failed_in_a_row > 0 {
            eprintln!(
                "stasis run: the job ended ({text}); no checkpoint of it was ever taken in this run ({} attempts failed; last: {}): it ran unprotected",
                self.status.failed_in_a_row,
                self.status.last_error.as_deref().unwrap_or("unknown")
            );
        }
        if crashed && !self.interrupted && self.opts.restart == RestartPolicy::OnCrash {
            if self.status.restarts >= self.opts.max_restarts {
                eprintln!(
                    "stasis run: the job was {text}; not restarting it: --max-restarts {} reached",
                    self.opts.max_restarts
                );
            } else {
                eprintln!(
                    "stasis run: the job was {text}; restoring it from its newest checkpoint"
                );
                self.status.restarts += 1;
                self.clear_namespace();
                match self.resume_or_start(&self.candidates()) {
                    Ok(()) => return None,
                    Err(e) => return Some(self.fail(e)),
                }
            }
        }
        self.clear_namespace();
        if !crashed {
            // The job is done: a rerun must not resume it from a checkpoint of this run.
            self.mark_completed(&text);
        }
        self.status.exit = Some(text);
        self.set_state("exited");
        self.answer_waiters(Err("the job has ended".into()));
        Some(code)
    }

    fn mark_completed(&mut self, how: &str) {
        let done = self.catalog.job().ok().flatten().map(|mut j| {
            j.completed = Some(how.to_string());
            j.first_seq = self.catalog.next_dir().map_or(u64::MAX, |(n, _)| n);
            j
        });
        if let Some(j) = done {
            if let Err(e) = self.catalog.set_job(&j) {
                tracing::warn!("cannot record that the job finished: {}", error_chain(&e));
            }
        }
    }

    /// Kill whatever is left in the namespace but us (the job's orphans, a worker) and reap it.
    fn clear_namespace(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(-1), Signal::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.thaw();
        }
        while waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)).is_ok() {}
        if self.worker.take().is_some() {
            self.answer_waiters(Err("the job died during the checkpoint".into()));
        }
        self.catalog.remove_debris();
    }

    fn start_worker(&mut self, reason: &'static str, kill: bool) {
        let Some(job) = self.job else { return };
        let (seq, dir) = match self.catalog.next_dir() {
            Ok(x) => x,
            Err(e) => {
                self.dump_failed(
                    reason,
                    format!("cannot choose a checkpoint name: {}", error_chain(&e)),
                );
                return;
            }
        };
        let name = catalog::file_name(&dir);
        // Orphans of the job (children of ours other than the job) would be missed by a
        // dump of the job's tree: refuse rather than save an incomplete job.
        if let Some(stray) = self.orphans(job) {
            self.dump_failed(reason, stray);
            return;
        }
        let (r, w) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => {
                self.dump_failed(reason, format!("pipe: {e}"));
                return;
            }
        };
        let opts = stasis::DumpOptions {
            pid: job.as_raw(),
            dir,
            kill,
            compress: self.opts.compress,
            tcp_established: self.opts.tcp_established,
            cgroup: self.cgroup.as_ref().map(|c| c.job_path().to_path_buf()),
            ghost_limit: None,
            // The job's files are its own: its locks go with it.
            file_locks: true,
            link_remap: false,
            cgroups: None,
            progress: None,
        };
        match stasis_sys::clone::fork() {
            Ok(stasis_sys::clone::Forked::Child) => {
                drop(r);
                worker_main(opts, name, OwnedFd::from(w))
            }
            Ok(stasis_sys::clone::Forked::Parent(pid)) => {
                drop(w);
                tracing::info!(worker = pid.as_raw(), seq, reason, "checkpoint started");
                self.worker = Some(Worker {
                    pid,
                    reason,
                    kill,
                    result: std::fs::File::from(OwnedFd::from(r)),
                    started: Instant::now(),
                });
                self.set_state("checkpointing");
            }
            Err(e) => self.dump_failed(reason, format!("fork: {e}")),
        }
    }

    /// Children of ours that are neither the job nor a worker.
    fn orphans(&self, job: Pid) -> Option<String> {
        let children = std::fs::read_to_string("/proc/1/task/1/children").ok()?;
        let stray: Vec<String> = children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .filter(|&p| {
                p != job.as_raw() && self.worker.as_ref().is_none_or(|w| w.pid.as_raw() != p)
            })
            .map(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                format!("pid {p} ({})", comm.trim())
            })
            .collect();
        if stray.is_empty() {
            None
        } else {
            Some(format!(
                "{} left the job's process tree (its parent exited without waiting for it), so a checkpoint would miss it; stasis cannot checkpoint such a job yet",
                stray.join(", ")
            ))
        }
    }

    fn worker_done(&mut self, mut w: Worker, st: WaitStatus) -> Option<i32> {
        let mut text = String::new();
        let _ = w.result.read_to_string(&mut text);
        let result: Option<WorkerResult> = serde_json::from_str(text.trim()).ok();
        if let Some(cg) = &self.cgroup {
            // A worker that died mid-dump may have left the job frozen.
            cg.thaw();
        }
        match result {
            Some(r) if r.ok => {
                let rec = CheckpointRecord {
                    name: r.name.clone(),
                    created_unix: catalog::now_unix(),
                    bytes: catalog::dir_bytes(&self.catalog.dir().join(&r.name)),
                    page_bytes: r.page_bytes,
                    dump_secs: r.dump_secs,
                    frozen_secs: r.frozen_secs,
                    reason: w.reason.into(),
                    monotonic_ns: r.monotonic_ns,
                    boottime_ns: r.boottime_ns,
                };
                if let Err(e) = self.catalog.commit(&rec, self.opts.keep) {
                    self.status.last_error = Some(error_chain(&e));
                    tracing::warn!(
                        "checkpoint {} taken but not recorded: {}",
                        rec.name,
                        error_chain(&e)
                    );
                }
                self.status.taken += 1;
                self.status.failed_in_a_row = 0;
                self.status.unprotected_since_unix = None;
                self.sched.measured(Duration::from_secs_f64(r.frozen_secs));
                tracing::info!(
                    checkpoint = %rec.name,
                    took = ?w.started.elapsed(),
                    frozen = r.frozen_secs,
                    "checkpoint durable"
                );
                self.answer_waiters(Ok(rec));
                if w.kill {
                    return Some(self.finish_preempted(true));
                }
            }
            other => {
                let why = other
                    .and_then(|r| r.error)
                    .unwrap_or_else(|| format!("the dump worker ended without a result ({st:?})"));
                self.catalog.remove_debris();
                self.dump_failed(w.reason, why);
                if w.kill {
                    // The final checkpoint failed: stop the job anyway; an older checkpoint
                    // (if any) is what a rerun resumes from.
                    return Some(self.finish_preempted(false));
                }
            }
        }
        if self.job.is_some() {
            self.next_due = self.sched.interval().map(|d| Instant::now() + d);
            if self.preempt_deadline.is_some() {
                // A preemption came during a periodic dump: now the final one.
                self.start_worker("preemption", true);
                return None;
            }
            self.set_state("running");
            if !self.waiters.is_empty() && self.worker.is_none() {
                self.start_worker("request", false);
            }
        } else if self.preempt_deadline.is_some() {
            return Some(self.finish_preempted(false));
        }
        None
    }

    fn dump_failed(&mut self, reason: &str, why: String) {
        eprintln!("stasis run: warning: {reason} checkpoint failed, the job runs on: {why}");
        self.status.last_error = Some(format!("{reason} checkpoint failed: {why}"));
        self.status.failed_in_a_row += 1;
        let since = *self
            .status
            .unprotected_since_unix
            .get_or_insert_with(catalog::now_unix);
        if self.status.failed_in_a_row > 1 {
            eprintln!(
                "stasis run: WARNING: the job is unprotected: {} checkpoints in a row failed, the first {} s ago; a crash now loses everything since {}",
                self.status.failed_in_a_row,
                catalog::now_unix().saturating_sub(since),
                if self.status.taken > 0 || self.status.resumed_from.is_some() {
                    "the last good checkpoint"
                } else {
                    "the job's start"
                }
            );
        }
        self.next_due = self.sched.interval().map(|d| Instant::now() + d);
        self.set_state(if self.job.is_some() {
            "running"
        } else {
            "exited"
        });
        // Answered once the status says so: a client that got the answer reads it there.
        self.answer_waiters(Err(why));
    }

    fn answer_waiters(&mut self, r: Result<CheckpointRecord, String>) {
        let reply = control::Reply::from(r);
        for w in self.waiters.drain(..) {
            control::answer(w, &reply);
        }
    }

    /// The grace period ran out before the final checkpoint was durable.
    fn preempt_timeout(&mut self) -> i32 {
        eprintln!(
            "stasis run: the final checkpoint did not finish within the grace period ({:.1} s); stopping the job",
            self.opts.grace.as_secs_f64()
        );
        self.status.last_error = Some("final checkpoint cut short by --grace".into());
        self.finish_preempted(false)
    }

    /// Stop everything after a preemption and say what a rerun resumes from.
    fn finish_preempted(&mut self, final_taken: bool) -> i32 {
        self.clear_namespace();
        self.job = None;
        self.status.job_pid = None;
        let newest = self.candidates().first().map(|c| c.name());
        let text = match (&newest, final_taken) {
            (Some(n), true) => {
                format!("preempted: checkpointed to {n}; rerun the same command to resume")
            }
            (Some(n), false) => format!(
                "preempted: the final checkpoint failed; a rerun resumes from the older {n}"
            ),
            (None, _) => "preempted before any checkpoint: a rerun starts the job anew".into(),
        };
        eprintln!("stasis run: {text}");
        self.status.exit = Some(text);
        self.set_state("preempted");
        self.answer_waiters(Err("the job was stopped for a preemption".into()));
        EXIT_PREEMPTED
    }

    fn fail(&mut self, msg: String) -> i32 {
        eprintln!("stasis run: error: {msg}");
        self.clear_namespace();
        self.status.last_error = Some(msg);
        self.set_state("failed");
        EXIT_FAILED
    }
}

/// A dump worker: dump the job, report through `out`, exit.
fn worker_main(opts: stasis::DumpOptions, name: String, out: OwnedFd) -> ! {
    let _ = nix::sys::prctl::set_name(c"stasis-dump");
    let monotonic_ns = clock_ns(nix::time::ClockId::CLOCK_MONOTONIC);
    let boottime_ns = clock_ns(nix::time::ClockId::CLOCK_BOOTTIME);
    let result = match stasis::dump(&opts) {
        Ok(r) => WorkerResult {
            ok: true,
            name,
            error: None,
            page_bytes: r.page_bytes,
            dump_secs: r.total.as_secs_f64(),
            frozen_secs: r.frozen.as_secs_f64(),
            monotonic_ns,
            boottime_ns,
        },
        Err(e) => WorkerResult {
            ok: false,
            name,
            error: Some(error_chain(&e)),
            page_bytes: 0,
            dump_secs: 0.0,
            frozen_secs: 0.0,
            monotonic_ns: None,
            boottime_ns: None,
        },
    };
    let ok = result.ok;
    let mut f = std::fs::File::from(out);
    let _ = writeln!(
        f,
        "{}",
        serde_json::to_string(&result).expect("results serialize")
    );
    drop(f);
    stasis_sys::clone::child_exit(if ok { 0 } else { 1 })
}
