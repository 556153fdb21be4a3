//! The cgroups of a supervised job: `<parent>/stasis-run-ID/{job,supervisor}`, made below the
//! init's own cgroup, so the job can be frozen as a whole around a dump, nothing it forks
//! escapes, and the supervisor can tell its processes from anything else. Finding the
//! hierarchy, listing and freezing are [`stasis::cgroup`]'s; this module only creates, enters
//! and removes the job's cgroups.

use stasis::cgroup::{own_path, procs, thaw};
use std::path::{Path, PathBuf};

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
