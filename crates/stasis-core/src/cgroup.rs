//! cgroup v2 for jobs: finding the unified hierarchy and a process's cgroup, listing a
//! cgroup's processes, and freezing one around a dump (the cgroups `stasis run` makes for its
//! jobs are the stasis-run crate's). A frozen cgroup's tasks still enter ptrace stops, so the
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

/// Every process in the cgroup at `path` (PIDs as this process's namespace sees them).
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
