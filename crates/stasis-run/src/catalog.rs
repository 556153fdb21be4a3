//! The checkpoints of one supervised job, in its images directory: numbered images
//! `ckpt-NNNNNN/` (each written atomically by the dump engine), a record per checkpoint
//! `ckpt-NNNNNN.json` (when, how big, how long it took), the `latest` symlink (replaced
//! atomically), `job.json` (the command, so a rerun resumes the same job), `status.json` (what
//! the supervisor is doing) and the `lock` a running supervisor holds. This module owns the
//! directory's layout and its durability rules: a record, the marker and the status are each
//! written to a temporary name, fsynced and renamed; old checkpoints are removed only after a
//! newer one is durable. It does not dump or restore anything.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What went wrong with the images directory (always names the path).
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON for stasis run")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} {why}: whoever controls it could plant the checkpoint this job is resumed from, or make the supervisor write through a link; use an --images directory of your own (uid {uid}) that nobody else can write")]
    NotOurs {
        path: PathBuf,
        why: String,
        uid: u32,
    },
    #[error("{dir} is in use by another stasis run (pid {pid}); stop it first, or use another --images directory")]
    Locked { dir: PathBuf, pid: String },
}

type Result<T, E = CatalogError> = std::result::Result<T, E>;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CatalogError + 'a {
    move |source| CatalogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The job a directory belongs to: a rerun with another command is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub command: Vec<String>,
    pub cwd: PathBuf,
    /// Seconds since the epoch when the job first started.
    pub started_unix: u64,
}

/// `job.json`: the job and the first checkpoint number that belongs to it (checkpoints of
/// an earlier job started with `--fresh` in the same directory have lower numbers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobFile {
    #[serde(flatten)]
    pub record: JobRecord,
    #[serde(default)]
    pub first_seq: u64,
    /// Set when the job ended by itself (how): its checkpoints are then history, and the
    /// next run starts it anew.
    #[serde(default)]
    pub completed: Option<String>,
}

/// One checkpoint, as the supervisor saw it being taken.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckpointRecord {
    pub name: String,
    /// Seconds since the epoch when it became durable.
    pub created_unix: u64,
    /// Bytes the image takes on disk.
    pub bytes: u64,
    /// Memory bytes saved.
    pub page_bytes: u64,
    /// Wall time of the whole dump (freeze to durable), in seconds.
    pub dump_secs: f64,
    /// How long the job was frozen, in seconds.
    pub frozen_secs: f64,
    /// Why it was taken: "periodic", "request", "preemption".
    pub reason: String,
    /// The job's CLOCK_MONOTONIC and CLOCK_BOOTTIME at the dump, in nanoseconds (what the
    /// time namespace of a later restore continues from).
    #[serde(default)]
    pub monotonic_ns: Option<i128>,
    #[serde(default)]
    pub boottime_ns: Option<i128>,
}

/// A checkpoint found in the directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub seq: u64,
    pub dir: PathBuf,
    /// None when the record is missing (the supervisor died between the image and its record).
    pub record: Option<CheckpointRecord>,
}

impl Checkpoint {
    /// Its directory's name (`ckpt-NNNNNN`).
    pub fn name(&self) -> String {
        file_name(&self.dir)
    }
}

/// The last component of `p`, as text.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The images directory of one job.
#[derive(Debug, Clone)]
pub struct Catalog {
    dir: PathBuf,
}

pub const LATEST: &str = "latest";
/// One line per checkpoint ever taken in the directory (pruned ones included).
pub const HISTORY: &str = "history.jsonl";

/// The images directory's lock: held while it lives (and by every process that inherited it).
pub type DirLock = nix::fcntl::Flock<std::fs::File>;
use std::os::unix::fs::OpenOptionsExt;

const PREFIX: &str = "ckpt-";

impl Catalog {
    /// Open (creating it if needed) the images directory.
    pub fn create(dir: &Path) -> Result<Catalog> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // The job's checkpoints hold its memory: the directory is its owner's only, whatever
        // the umask (an existing one of ours is made so too).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create", dir))?;
        let dir = dir.canonicalize().map_err(io("resolve", dir))?;
        let ours = std::fs::metadata(&dir).map_err(io("stat", &dir))?;
        if std::os::unix::fs::MetadataExt::uid(&ours) == nix::unistd::geteuid().as_raw() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io("chmod", &dir))?;
        }
        let c = Catalog { dir };
        c.check_ours()?;
        Ok(c)
    }

    /// Refuse a directory, or any entry in it, that another user owns or may write: the
    /// supervisor resumes whatever checkpoint it finds there and writes its records there
    /// (as root, too). With the directory ours and closed to others, nobody else can add,
    /// replace or link anything in it.
    fn check_ours(&self) -> Result<()> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let me = nix::unistd::geteuid().as_raw();
        let judge = |path: &Path, m: &std::fs::Metadata| -> Result<()> {
            let why = if m.uid() != me {
                format!("is owned by uid {}, not by the caller", m.uid())
            } else if !(m.file_type().is_symlink() || m.file_type().is_socket())
                && m.mode() & 0o022 != 0
            {
                format!(
                    "is writable by {} (mode {:o})",
                    if m.mode() & 0o002 != 0 {
                        "anyone"
                    } else {
                        "its group"
                    },
                    m.mode() & 0o7777
                )
            } else {
                return Ok(());
            };
            Err(CatalogError::NotOurs {
                path: path.to_path_buf(),
                why,
                uid: me,
            })
        };
        let m = std::fs::symlink_metadata(&self.dir).map_err(io("stat", &self.dir))?;
        judge(&self.dir, &m)?;
        for e in std::fs::read_dir(&self.dir)
            .map_err(io("list", &self.dir))?
            .flatten()
        {
            let path = e.path();
            let m = std::fs::symlink_metadata(&path).map_err(io("stat", &path))?;
            judge(&path, &m)?;
        }
        Ok(())
    }

    /// An existing images directory (for `stasis status`).
    pub fn open(dir: &Path) -> Result<Catalog> {
        let dir = dir.canonicalize().map_err(io("open", dir))?;
        Ok(Catalog { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn control_path(&self) -> PathBuf {
        self.dir.join("control")
    }

    /// Take the directory's lock for the life of the returned file (inherited by the
    /// supervisor's children, released when the last holder exits, even by SIGKILL).
    pub fn lock(&self) -> Result<DirLock> {
        let path = self.dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io("open", &path))?;
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(f) => {
                let _ = f.set_len(0);
                let _ = (&*f).write_all(format!("{}\n", std::process::id()).as_bytes());
                Ok(f)
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(CatalogError::Locked {
                dir: self.dir.clone(),
                pid: std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            }),
            Err((_, e)) => Err(io("lock", &path)(e.into())),
        }
    }

    /// Whether a supervisor holds the lock now (its pid, as it wrote it).
    pub fn supervisor(&self) -> Option<String> {
        let path = self.dir.join("lock");
        let f = std::fs::File::open(&path).ok()?;
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockSharedNonblock) {
            Ok(_) => None,
            Err(_) => Some(
                std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ),
        }
    }

    pub fn job(&self) -> Result<Option<JobFile>> {
        self.read_json("job.json")
    }

    pub fn set_job(&self, job: &JobFile) -> Result<()> {
        self.write_json("job.json", job)
    }

    /// Every checkpoint image in the directory, newest first. Staging directories of dumps
    /// that never finished are not checkpoints.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)
            .map_err(io("list", &self.dir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(seq) = name
                .strip_prefix(PREFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            // A checkpoint is a directory, never a link to one (file_type does not follow).
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let record = self
                .read_json::<CheckpointRecord>(&format!("{name}.json"))
                .ok()
                .flatten();
            out.push(Checkpoint {
                seq,
                dir: e.path(),
                record,
            });
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.seq));
        Ok(out)
    }

    /// Where the next checkpoint goes (one past the highest number ever used here, staging
    /// leftovers included, so a name is never reused).
    pub fn next_dir(&self) -> Result<(u64, PathBuf)> {
        let mut max = 0;
        for e in std::fs::read_dir(&self.dir)
            .map_err(io("list", &self.dir))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(seq) = name
                .strip_prefix(PREFIX)
                .and_then(|s| s.split(['.', '-']).next())
                .and_then(|s| s.parse::<u64>().ok())
            {
                max = max.max(seq);
            }
        }
        let seq = max + 1;
        Ok((seq, self.dir.join(format!("{PREFIX}{seq:06}"))))
    }

    /// Remove staging directories of dumps that died (call only while holding the lock and
    /// with no dump running: then every staging directory is debris).
    pub fn remove_debris(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if (name.starts_with(PREFIX) && name.contains(".tmp-")) || name.ends_with(".partial") {
                tracing::info!(path = %e.path().display(), "removing what an interrupted dump left");
                let _ = std::fs::remove_dir_all(e.path());
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Record a durable checkpoint, point `latest` at it, then remove what falls outside
    /// the newest `keep` (never the new one, never before the new one is durable).
    pub fn commit(&self, record: &CheckpointRecord, keep: usize) -> Result<()> {
        self.write_json(&format!("{}.json", record.name), record)?;
        // The history outlives pruning: every checkpoint ever taken here, one JSON line each.
        let hist = self.dir.join(HISTORY);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&hist)
            .and_then(|mut f| {
                let mut line = serde_json::to_vec(record).expect("records serialize");
                line.push(b'\n');
                f.write_all(&line)
            })
            .map_err(io("append to", &hist))?;
        let tmp = self.dir.join(format!("{LATEST}.partial"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&record.name, &tmp).map_err(io("create", &tmp))?;
        let latest = self.dir.join(LATEST);
        std::fs::rename(&tmp, &latest).map_err(io("replace", &latest))?;
        self.sync()?;
        self.prune(keep, &record.name)
    }

    /// Keep the newest `keep` checkpoints (and `current`), remove the rest.
    pub fn prune(&self, keep: usize, current: &str) -> Result<()> {
        let keep = keep.max(1);
        for (i, c) in self.checkpoints()?.into_iter().enumerate() {
            let name = c.name();
            if i < keep || name == current {
                continue;
            }
            tracing::info!(checkpoint = %c.dir.display(), "removing an old checkpoint");
            let json = self.dir.join(format!("{name}.json"));
            std::fs::remove_file(&json)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(io("remove", &json))?;
            std::fs::remove_dir_all(&c.dir).map_err(io("remove", &c.dir))?;
        }
        self.sync()
    }

    /// Every checkpoint ever recorded here, oldest first.
    pub fn history(&self) -> Vec<CheckpointRecord> {
        std::fs::read_to_string(self.dir.join(HISTORY))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn status(&self) -> Result<Option<RunStatus>> {
        self.read_json("status.json")
    }

    pub fn set_status(&self, s: &RunStatus) -> Result<()> {
        self.write_json("status.json", s)
    }

    fn sync(&self) -> Result<()> {
        std::fs::File::open(&self.dir)
            .and_then(|f| f.sync_all())
            .map_err(io("fsync", &self.dir))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Option<T>> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| CatalogError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    fn write_json<T: Serialize>(&self, name: &str, v: &T) -> Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.partial"));
        let mut body = serde_json::to_vec_pretty(v).expect("records serialize");
        body.push(b'\n');
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&body)?;
                f.sync_all()
            })
            .map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("replace", &path))?;
        self.sync()
    }
}

/// What the supervisor is doing, for `stasis status` (rewritten at every change).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunStatus {
    /// starting, running, checkpointing, restoring, preempted, exited, failed.
    pub state: String,
    /// The job's root pid inside its PID namespace.
    pub job_pid: Option<i32>,
    /// Seconds since the epoch of the last change.
    pub updated_unix: u64,
    /// How many times the job was restored after a crash in this run.
    pub restarts: u32,
    /// The checkpoint this run resumed from, if any.
    pub resumed_from: Option<String>,
    /// Seconds between periodic checkpoints, and why that value.
    pub interval_secs: Option<f64>,
    pub interval_reason: String,
    /// Seconds since the epoch when the next periodic checkpoint is due.
    pub next_checkpoint_unix: Option<f64>,
    /// The job's exit status once it has ended.
    pub exit: Option<String>,
    /// The last thing that went wrong (a failed dump, a skipped checkpoint).
    pub last_error: Option<String>,
    /// Seconds since the epoch of the first of the checkpoints that have failed in a row
    /// since the last good one: the job is unprotected since then. None once one succeeds.
    #[serde(default)]
    pub unprotected_since_unix: Option<u64>,
    /// Checkpoints failed in a row.
    #[serde(default)]
    pub failed_in_a_row: u32,
    /// Checkpoints taken by this run.
    #[serde(default)]
    pub taken: u32,
    /// Whether the job runs in a cgroup of its own, and which.
    pub cgroup: Option<String>,
    /// Whether the job runs in a time namespace, and the offsets applied.
    pub time_ns: Option<String>,
    /// Whether the supervisor runs in a user namespace (rootless).
    pub rootless: bool,
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn now_unix_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Bytes a directory tree takes (apparent sizes of its files).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> CheckpointRecord {
        CheckpointRecord {
            name: name.into(),
            reason: "periodic".into(),
            ..Default::default()
        }
    }

    #[test]
    fn numbering_commit_latest_and_retention() {
        let t = tempfile::tempdir().unwrap();
        let c = Catalog::create(t.path()).unwrap();
        let mut names = Vec::new();
        for _ in 0..4 {
            let (_, dir) = c.next_dir().unwrap();
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("inventory"), b"x").unwrap();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            c.commit(&record(&name), 2).unwrap();
            names.push(name);
        }
        assert_eq!(names[0], "ckpt-000001");
        assert_eq!(names[3], "ckpt-000004");
        let left: Vec<u64> = c.checkpoints().unwrap().iter().map(|c| c.seq).collect();
        assert_eq!(left, vec![4, 3]);
        assert_eq!(
            std::fs::read_link(t.path().join(LATEST)).unwrap(),
            Path::new("ckpt-000004")
        );
        assert!(!t.path().join("ckpt-000001.json").exists());
        let hist: Vec<String> = c.history().into_iter().map(|r| r.name).collect();
        assert_eq!(hist, names);
        // A staging leftover is never a checkpoint, and its number is never reused.
        std::fs::create_dir(t.path().join("ckpt-000009.tmp-5-0")).unwrap();
        assert_eq!(c.checkpoints().unwrap().len(), 2);
        assert_eq!(c.next_dir().unwrap().0, 10);
        c.remove_debris();
        assert!(!t.path().join("ckpt-000009.tmp-5-0").exists());
    }

    #[test]
    fn lock_is_exclusive_and_visible() {
        let t = tempfile::tempdir().unwrap();
        let c = Catalog::create(t.path()).unwrap();
        assert!(c.supervisor().is_none());
        let held = c.lock().unwrap();
        assert!(matches!(c.lock(), Err(CatalogError::Locked { .. })));
        assert_eq!(
            c.supervisor().as_deref(),
            Some(std::process::id().to_string().as_str())
        );
        drop(held);
        assert!(c.supervisor().is_none());
    }
}
