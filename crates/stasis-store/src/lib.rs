//! Where images live. A [`Store`] hands out a staging directory for a new image and makes it
//! visible atomically once it is complete, so an image is either whole or absent. The local
//! directory store is the first backend; object storage comes later behind the same trait.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "image directory {path} already exists and is not empty; choose another --dir or remove it"
    )]
    Exists { path: PathBuf },
    #[error("{path} is a file, not a directory; --dir names the directory the image goes into (it must not exist, or be empty)")]
    NotADirectory { path: PathBuf },
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A new image being written; dropped without [`Store::put`] it is deleted.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Staging {
    /// Where the writer puts the image's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Where the image will be once put.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A place images are put to and got from.
pub trait Store {
    /// Start a new image that will appear at `target`.
    fn stage(&self, target: &Path) -> Result<Staging, StoreError>;
    /// Make a fully written staging image durable and visible at its target.
    fn put(&self, staging: Staging) -> Result<PathBuf, StoreError>;
}

/// Images as directories on a local filesystem: staged as `DIR.tmp-PID-N` beside the target,
/// fsynced, renamed into place, parent directory fsynced.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalStore;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsync every file of a staging directory, several at once: each fsync mostly waits for the
/// device, so overlapping them costs little more than the slowest one.
fn sync_files(dir: &Path) -> Result<(), StoreError> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io("list", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let workers = files.len().clamp(1, 8);
    let chunk = files.len().div_ceil(workers).max(1);
    std::thread::scope(|sc| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                sc.spawn(move || -> Result<(), StoreError> {
                    for f in part {
                        std::fs::File::open(f)
                            .and_then(|h| h.sync_all())
                            .map_err(io("fsync", f))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("fsync worker panicked"))
    })
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync", dir))
}

/// Remove staging directories `NAME.tmp-PID-N` left by a stasis that died mid-dump (its PID
/// no longer exists): they are never images, only debris. Only the caller's own: another
/// user's debris is theirs to remove (`stasis show` names it as such).
fn remove_stale(parent: &Path, name: &str) {
    let prefix = format!("{name}.tmp-");
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = fname.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        let mine = std::fs::symlink_metadata(e.path())
            .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw());
        if mine && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Store for LocalStore {
    fn stage(&self, target: &Path) -> Result<Staging, StoreError> {
        if let Ok(mut rd) = std::fs::read_dir(target) {
            if rd.next().is_some() {
                return Err(StoreError::Exists {
                    path: target.to_path_buf(),
                });
            }
        } else if target.exists() {
            return Err(StoreError::NotADirectory {
                path: target.to_path_buf(),
            });
        }
        let parent = parent_of(target);
        std::fs::create_dir_all(&parent).map_err(io("create", &parent))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        remove_stale(&parent, &name);
        for n in 0..1000u32 {
            let dir = parent.join(format!("{name}.tmp-{}-{n}", std::process::id()));
            // The image holds process memory: its owner only, whatever the umask.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    return Ok(Staging {
                        dir,
                        target: target.to_path_buf(),
                        done: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("create", &dir)(e)),
            }
        }
        Err(StoreError::Exists { path: parent })
    }

    fn put(&self, mut staging: Staging) -> Result<PathBuf, StoreError> {
        sync_files(&staging.dir)?;
        sync_dir(&staging.dir)?;
        // An empty directory at the target (e.g. made by a script) is replaced.
        if staging.target.is_dir() {
            std::fs::remove_dir(&staging.target).map_err(|_| StoreError::Exists {
                path: staging.target.clone(),
            })?;
        }
        std::fs::rename(&staging.dir, &staging.target).map_err(io("rename", &staging.target))?;
        staging.done = true;
        sync_dir(&parent_of(&staging.target))?;
        Ok(staging.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_put_and_abort() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("img");
        let s = LocalStore.stage(&target).unwrap();
        std::fs::write(s.dir().join("a"), b"x").unwrap();
        assert!(!target.exists());
        LocalStore.put(s).unwrap();
        assert_eq!(std::fs::read(target.join("a")).unwrap(), b"x");
        // a non-empty target is refused
        assert!(matches!(
            LocalStore.stage(&target),
            Err(StoreError::Exists { .. })
        ));
        // an abandoned staging directory disappears
        let other = root.path().join("img2");
        let s = LocalStore.stage(&other).unwrap();
        let staged = s.dir().to_path_buf();
        drop(s);
        assert!(!staged.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_staging_of_dead_stasis_is_removed() {
        let root = tempfile::tempdir().unwrap();
        // pid 0x7ffffff0 cannot exist (above pid_max).
        let stale = root.path().join("img.tmp-2147483632-0");
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join("pages-1"), b"partial").unwrap();
        let s = LocalStore.stage(&root.path().join("img")).unwrap();
        assert!(!stale.exists());
        drop(s);
    }
}
