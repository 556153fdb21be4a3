//! Restore into a fresh PID namespace (`stasis restore --pid-ns`): for when the image's PIDs
//! are taken here. The restore command unshares a PID and a mount namespace and forks the
//! namespace's first process (PID 1 inside). That process mounts its own /proc (so every
//! /proc/PID path of the restore engine means the namespace's PIDs), runs the ordinary
//! restore (the saved PIDs are free in the new namespace), and then stays as the namespace's
//! init: it forwards termination signals to the restored root, reaps orphans, and exits with
//! the root's status.

use crate::restore::{restore, RestoreOptions};
use stasis_sys::clone::{self, Forked};
use stasis_sys::Pid;
use std::io::{Read, Write};

/// A tree restored in a new PID namespace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PidNsRestored {
    /// The namespace's init (a child of the caller), in the caller's PID namespace.
    pub init: i32,
    /// The restored root, in the caller's PID namespace (for signals and pidfiles).
    pub root: i32,
    /// The restored root's PID inside the namespace (the saved one).
    pub root_inside: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum PidNsError {
    #[error("cannot create a PID namespace ({step}); it needs root or CAP_SYS_ADMIN")]
    Unshare {
        step: &'static str,
        #[source]
        source: stasis_sys::Errno,
    },
    #[error("restore inside the new PID namespace failed: {message}")]
    Inside { message: String },
}

/// Restore `opts.dir` inside a new PID namespace; returns once the tree runs.
pub fn restore_in_new_pid_ns(opts: &RestoreOptions) -> Result<PidNsRestored, PidNsError> {
    let (mut rd, wr) = std::io::pipe().map_err(|e| PidNsError::Unshare {
        step: "pipe",
        source: stasis_sys::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).map_err(|source| {
        PidNsError::Unshare {
            step: "unshare",
            source,
        }
    })?;
    match clone::fork().map_err(|source| PidNsError::Unshare {
        step: "fork",
        source,
    })? {
        Forked::Child => {
            drop(rd);
            init(opts, wr)
        }
        Forked::Parent(init) => {
            drop(wr);
            let mut msg = String::new();
            let _ = rd.read_to_string(&mut msg);
            let msg = msg.trim();
            let Some(inside) = msg.strip_prefix("ok ").and_then(|p| p.parse::<i32>().ok()) else {
                let _ = nix::sys::wait::waitpid(init, None);
                return Err(PidNsError::Inside {
                    message: msg.strip_prefix("err ").unwrap_or(msg).to_string(),
                });
            };
            let root = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
                .ok()
                .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
                .unwrap_or(0);
            Ok(PidNsRestored {
                init: init.as_raw(),
                root,
                root_inside: inside,
            })
        }
    }
}

/// PID 1 of the new namespace: restore, report, then reap until the root is gone.
fn init(opts: &RestoreOptions, mut report: std::io::PipeWriter) -> ! {
    let mounted = mount_own_proc();
    if let Err(e) = mounted {
        let _ = writeln!(
            report,
            "err cannot mount /proc for the new PID namespace: {e}"
        );
        clone::child_exit(1);
    }
    let root = match restore(opts) {
        Ok(r) => r.pid,
        Err(e) => {
            let msg = crate::error_chain(&e);
            let _ = writeln!(report, "err {msg}");
            clone::child_exit(1);
        }
    };
    let _ = writeln!(report, "ok {root}");
    let _ = report.flush();
    drop(report);
    let _ = clone::forward_signals(
        Pid::from_raw(root),
        &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT],
    );
    let mut code = 0;
    loop {
        match nix::sys::wait::waitpid(None, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(p, c)) if p.as_raw() == root => code = c,
            Ok(nix::sys::wait::WaitStatus::Signaled(p, s, _)) if p.as_raw() == root => {
                code = 128 + s as i32
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => clone::child_exit(code),
        }
    }
}

/// Give the calling process (the first of a new PID namespace) a mount namespace of its own
/// with a /proc of the new PID namespace, so every /proc/PID path means the namespace's PIDs
/// (so the restore and dump engines see the namespace's processes). Mounts are made
/// private first, so nothing propagates back to the caller's namespace. For the init of a PID
/// namespace stasis made: the `--pid-ns` restore's, and `stasis run`'s supervisor.
pub fn mount_own_proc() -> nix::Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
}
