//! cgroup v2 for jobs: the cgroup a supervised job runs in (so it can be frozen as a whole,
//! nothing it forks escapes, and the supervisor can tell its processes from anything else),
//! and freezing one around a dump. A frozen cgroup's tasks still enter ptrace stops, so the
//! dump freezes the cgroup, seizes every process, and thaws it again at once: the tasks stay
//! in their ptrace stops, and no fork could slip between the tree walk and the seize.
//! This module writes cgroupfs files only; it does not trace anything.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {path} did not report frozen within {secs} s")]
    FreezeTimeout { path: PathBuf, secs: u64 },
    #[error("pid {pid} ({comm}) is in the job's cgroup {path} but outside the process tree being dumped (its parent exited without waiting for it); stasis cannot checkpoint such a job yet")]
    Outside {
        pid: i32,
        comm: String,
        path: PathBuf,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

const FREEZE_WAIT: Duration = Duration::from_secs(10);

/// The cgroup `path` frozen; thawed again when dropped.
#[derive(Debug)]
pub struct Frozen {
    path: PathBuf,
}

impl Frozen {
    /// Freeze the cgroup at `path` and wait until the kernel says every task is frozen.
    pub fn new(path: &Path) -> Result<Frozen, CgroupError> {
        let f = path.join("cgroup.freeze");
        std::fs::write(&f, "1").map_err(io("write", &f))?;
        let frozen = Frozen {
            path: path.to_path_buf(),
        };
        let events = path.join("cgroup.events");
        let t0 = Instant::now();
        loop {
            let text = std::fs::read_to_string(&events).map_err(io("read", &events))?;
            if text.lines().any(|l| l.trim() == "frozen 1") {
                return Ok(frozen);
            }
            if t0.elapsed() > FREEZE_WAIT {
                return Err(CgroupError::FreezeTimeout {
                    path: path.to_path_buf(),
                    secs: FREEZE_WAIT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Every process in the cgroup (PIDs as this process's namespace sees them).
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        procs(&self.path)
    }

    /// Refuse a cgroup that holds a process outside `tree`.
    pub fn check_all_in(&self, tree: &[i32]) -> Result<(), CgroupError> {
        for pid in self.procs()? {
            if !tree.contains(&pid) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Err(CgroupError::Outside {
                    pid,
                    comm,
                    path: self.path.clone(),
                });
            }
        }
        Ok(())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        thaw(&self.path);
    }
}

/// Thaw the cgroup at `path` (nothing happens if it is not frozen).
pub fn thaw(path: &Path) {
    let f = path.join("cgroup.freeze");
    if let Err(e) = std::fs::write(&f, "0") {
        tracing::warn!("cannot thaw {}: {e}", path.display());
    }
}

pub fn procs(path: &Path) -> Result<Vec<i32>, CgroupError> {
    let f = path.join("cgroup.procs");
    let text = std::fs::read_to_string(&f).map_err(io("read", &f))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Where the unified (v2) hierarchy is mounted, if anywhere.
pub fn unified_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        // Only a v2 hierarchy has cgroup.subtree_control (its root has no cgroup.freeze).
        .find(|p| p.join("cgroup.subtree_control").exists())
}

/// The cgroup v2 of the calling process (its path under the unified root).
pub fn own_path() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = unified_root()?;
    Some(root.join(rel.trim_start_matches('/')))
}

/// The cgroups of a supervised job: `<parent>/stasis-run-ID/{job,supervisor}`. The init lives
/// in `supervisor` and steps into `job` only to fork the job's processes.
#[derive(Debug)]
pub struct JobCgroup {
    dir: PathBuf,
    job: PathBuf,
    supervisor: PathBuf,
    origin: PathBuf,
}

impl JobCgroup {
    /// Create the job's cgroups below ours and move this process into `supervisor`.
    pub fn create() -> Result<JobCgroup, String> {
        let origin = own_path().ok_or("no cgroup v2 hierarchy is mounted")?;
        remove_stale(&origin);
        let id = format!(
            "stasis-run-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let dir = origin.join(id);
        std::fs::create_dir(&dir).map_err(|e| {
            format!(
                "cannot create {} ({e}); a user needs a delegated cgroup (e.g. systemd-run --user --scope -p Delegate=yes)",
                dir.display()
            )
        })?;
        let cg = JobCgroup {
            job: dir.join("job"),
            supervisor: dir.join("supervisor"),
            dir,
            origin,
        };
        for d in [&cg.job, &cg.supervisor] {
            std::fs::create_dir(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        if !cg.job.join("cgroup.freeze").exists() {
            return Err(format!(
                "{} has no cgroup.freeze (kernel older than 5.2?)",
                cg.job.display()
            ));
        }
        move_self(&cg.supervisor)
            .map_err(|e| format!("cannot move into {}: {e}", cg.supervisor.display()))?;
        Ok(cg)
    }

    pub fn job_path(&self) -> &Path {
        &self.job
    }

    /// Step into the job's cgroup (what we fork from now on starts there).
    pub fn enter_job(&self) {
        if let Err(e) = move_self(&self.job) {
            tracing::warn!("cannot move into {}: {e}", self.job.display());
        }
    }

    pub fn leave_job(&self) {
        if let Err(e) = move_self(&self.supervisor) {
            tracing::warn!("cannot move into {}: {e}", self.supervisor.display());
        }
    }

    pub fn thaw(&self) {
        thaw(&self.job);
    }
}

impl Drop for JobCgroup {
    /// Back to where we came from; the cgroups go once they are empty.
    fn drop(&mut self) {
        let _ = move_self(&self.origin);
        for d in [&self.job, &self.supervisor, &self.dir] {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Remove the cgroups of supervisors that were killed (an empty cgroup can be removed; one
/// that still holds a process cannot, so a running job's is safe).
fn remove_stale(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with("stasis-run-") {
            let d = e.path();
            // A supervisor that still runs lives in `supervisor` (its job may be between
            // restarts, its `job` cgroup empty): leave it alone.
            if procs(&d.join("supervisor")).is_ok_and(|p| !p.is_empty()) {
                continue;
            }
            let _ = std::fs::remove_dir(d.join("job"));
            let _ = std::fs::remove_dir(d.join("supervisor"));
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn move_self(cg: &Path) -> std::io::Result<()> {
    std::fs::write(cg.join("cgroup.procs"), "0")
}
