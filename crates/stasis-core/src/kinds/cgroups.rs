//! Control groups (`--manage-cgroups`, with CRIU's meaning): dump saves which cgroup of each
//! hierarchy every task is in, and the cgroup directories the tree uses with their ancestors
//! and descendants (owner, mode, properties); restore makes the missing directories again,
//! sets their owner, mode and properties (all of them with `full`, only on the ones it made
//! with `soft`), and moves every task into its cgroup before the tree runs. `--cgroup-root
//! [CTRL:]PATH` moves paths: at dump, PATH becomes the root they are saved from; at restore,
//! the root they go under. A hierarchy mounted nowhere here (a named v1 hierarchy) is mounted
//! for the restore in a directory of ours and unmounted after.
//!
//! This module owns the tasks' membership only; the job cgroup of `stasis run` is crate::cgroup.

use stasis_image::{CgroupDirEntry, CgroupMemberEntry, CgroupPropEntry, CgroupsEntry};
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupsError {
    #[error("pid {pid} tid {tid}: cannot read its cgroups")]
    Read {
        pid: i32,
        tid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup hierarchy {controllers:?}: cannot mount it at {path} to reach its cgroups")]
    Mount {
        controllers: String,
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cgroup {path}: cannot {op}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {path} exists already, and --manage-cgroups=strict wants to make it")]
    Exists { path: PathBuf },
    #[error("--manage-cgroups takes soft, full, strict, ignore or none, not {mode:?}")]
    Mode { mode: String },
}

type Result<T, E = CgroupsError> = std::result::Result<T, E>;

/// How restore treats cgroups (CRIU's `--manage-cgroups=MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make missing directories; set properties on those it made.
    Soft,
    /// Set properties on every directory.
    Full,
    /// Every directory must be made by the restore.
    Strict,
    /// Leave cgroups alone: the tree stays in the restorer's.
    Ignore,
}

impl std::str::FromStr for Mode {
    type Err = CgroupsError;
    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "" | "soft" | "props" => Ok(Mode::Soft),
            "full" => Ok(Mode::Full),
            "strict" => Ok(Mode::Strict),
            "ignore" | "none" => Ok(Mode::Ignore),
            other => Err(CgroupsError::Mode {
                mode: other.to_string(),
            }),
        }
    }
}

/// `--cgroup-root [CTRL:]PATH` options: per hierarchy (or all, for None) the root.
#[derive(Debug, Clone, Default)]
pub struct Roots(pub Vec<(Option<String>, String)>);

impl Roots {
    pub fn parse(args: &[String]) -> Roots {
        Roots(
            args.iter()
                .map(|a| match a.split_once(':') {
                    Some((c, p)) if !p.is_empty() => (Some(c.to_string()), p.to_string()),
                    _ => (None, a.clone()),
                })
                .collect(),
        )
    }

    /// The root for hierarchy `controllers` ("/" when none is given).
    fn of(&self, controllers: &str) -> &str {
        self.0
            .iter()
            .find(|(c, _)| {
                c.as_deref()
                    .is_some_and(|c| same_controllers(c, controllers))
            })
            .or_else(|| self.0.iter().find(|(c, _)| c.is_none()))
            .map_or("/", |(_, p)| p.as_str())
    }
}

/// Whether two controller lists ("cpu,cpuacct") name the same hierarchy.
fn same_controllers(a: &str, b: &str) -> bool {
    fn set(s: &str) -> BTreeSet<&str> {
        s.split(',').filter(|c| !c.is_empty()).collect()
    }
    set(a) == set(b)
}

/// The cgroups of task `tid` of `pid`, paths made relative to `roots`.
pub fn membership(pid: i32, tid: i32, roots: &Roots) -> Result<Vec<CgroupMemberEntry>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/cgroup"))
        .map_err(|source| CgroupsError::Read { pid, tid, source })?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            let controllers = f.next()?.to_string();
            let path = f.next()?.to_string();
            let root = roots.of(&controllers);
            let path = strip_root(&path, root).to_string();
            Some(CgroupMemberEntry { controllers, path })
        })
        .collect())
}

fn strip_root<'p>(path: &'p str, root: &str) -> &'p str {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return path;
    }
    match path.strip_prefix(root) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Where hierarchy `controllers` is mounted here: (mount point, the cgroup it shows as its
/// root).
fn mounted(controllers: &str) -> Option<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (fstype, opts) = (*post.first()?, *post.get(2)?);
        let here = match fstype {
            "cgroup2" => controllers.is_empty(),
            "cgroup" => {
                let ctl: Vec<&str> = opts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro" | "noprefix" | "clone_children" | "xattr")
                            && !o.starts_with("release_agent=")
                            && !o.starts_with("cpuset_v2_mode")
                    })
                    .collect();
                !controllers.is_empty() && same_controllers(&ctl.join(","), controllers)
            }
            _ => false,
        };
        here.then(|| (PathBuf::from(unescape(pre[4])), pre[3].to_string()))
    })
}

/// mountinfo escapes spaces and the like as \ooo.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The hierarchies stasis reaches, mounting those mounted nowhere; unmounted on drop.
#[derive(Default)]
struct Mounts {
    /// controllers -> (mount point, its root cgroup)
    by: Vec<(String, PathBuf, String)>,
    ours: Vec<PathBuf>,
}

impl Mounts {
    fn dir(&mut self, controllers: &str, path: &str) -> Result<PathBuf> {
        if !self.by.iter().any(|(c, ..)| c == controllers) {
            let (at, root) = match mounted(controllers) {
                Some(m) => m,
                None => {
                    let at = std::env::temp_dir().join(format!(
                        "stasis-cgroup-{}-{}",
                        std::process::id(),
                        self.ours.len()
                    ));
                    std::fs::create_dir_all(&at).map_err(|source| CgroupsError::Io {
                        op: "make a mount point for",
                        path: at.clone(),
                        source,
                    })?;
                    let (fstype, opts) = if controllers.is_empty() {
                        ("cgroup2", String::new())
                    } else if controllers.starts_with("name=") {
                        ("cgroup", format!("none,{controllers}"))
                    } else {
                        ("cgroup", controllers.to_string())
                    };
                    nix::mount::mount(
                        Some("none"),
                        &at,
                        Some(fstype),
                        nix::mount::MsFlags::empty(),
                        Some(opts.as_str()),
                    )
                    .map_err(|source| {
                        let _ = std::fs::remove_dir(&at);
                        CgroupsError::Mount {
                            controllers: controllers.to_string(),
                            path: at.clone(),
                            source,
                        }
                    })?;
                    self.ours.push(at.clone());
                    (at, "/".to_string())
                }
            };
            self.by.push((controllers.to_string(), at, root));
        }
        let (_, at, root) = self
            .by
            .iter()
            .find(|(c, ..)| c == controllers)
            .expect("added above");
        let rel = strip_root(path, root).trim_start_matches('/');
        Ok(if rel.is_empty() {
            at.clone()
        } else {
            at.join(rel)
        })
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for at in self.ours.drain(..) {
            let _ = nix::mount::umount2(&at, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&at);
        }
    }
}

/// Control files saved with each directory: value and owner/mode (`true`), or owner/mode only.
/// Values a kernel does not have are skipped.
const PROPS: &[(&str, bool)] = &[
    ("notify_on_release", true),
    ("cgroup.clone_children", true),
    ("tasks", false),
    ("cgroup.procs", false),
    ("cpuset.cpus", true),
    ("cpuset.mems", true),
    ("cpu.shares", true),
    ("cpu.cfs_period_us", true),
    ("cpu.cfs_quota_us", true),
    ("memory.limit_in_bytes", true),
    ("memory.soft_limit_in_bytes", true),
    ("memory.swappiness", true),
    ("memory.use_hierarchy", true),
    ("memory.move_charge_at_immigrate", true),
    ("pids.max", true),
    ("blkio.weight", true),
    ("devices.list", true),
    ("memory.max", true),
    ("memory.high", true),
    ("cpu.max", true),
    ("cpu.weight", true),
];

fn dir_entry(controllers: &str, path: &str, dir: &Path) -> Result<CgroupDirEntry> {
    let io = |op, source| CgroupsError::Io {
        op,
        path: dir.to_path_buf(),
        source,
    };
    let m = std::fs::metadata(dir).map_err(|e| io("stat", e))?;
    let mut props = Vec::new();
    for &(name, with_value) in PROPS {
        let f = dir.join(name);
        let Ok(pm) = std::fs::metadata(&f) else {
            continue;
        };
        let value = if with_value {
            match std::fs::read_to_string(&f) {
                Ok(v) => Some(v),
                Err(_) => continue,
            }
        } else {
            None
        };
        props.push(CgroupPropEntry {
            name: name.to_string(),
            value,
            mode: pm.mode() & 0o7777,
            uid: pm.uid(),
            gid: pm.gid(),
        });
    }
    Ok(CgroupDirEntry {
        controllers: controllers.to_string(),
        path: path.to_string(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        props,
    })
}

/// The directories of every cgroup in `used` (hierarchy, path as saved), with their
/// ancestors and descendants, read through `roots` (`--cgroup-root` at dump).
pub fn dump_dirs<'a>(
    used: impl IntoIterator<Item = &'a CgroupMemberEntry>,
    roots: &Roots,
) -> Result<CgroupsEntry> {
    let mut mounts = Mounts::default();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut out = CgroupsEntry::default();
    let used: BTreeSet<(String, String)> = used
        .into_iter()
        .map(|m| (m.controllers.clone(), m.path.clone()))
        .collect();
    for (controllers, path) in used {
        if path == "/" {
            // A hierarchy's root: nothing to make, and its descendants are the whole system's.
            continue;
        }
        let root = roots.of(&controllers).trim_end_matches('/').to_string();
        let full = |p: &str| format!("{root}{p}");
        // Ancestors from below the root, then the cgroup and everything under it.
        let mut want: Vec<String> = Vec::new();
        let mut acc = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            acc.push('/');
            acc.push_str(part);
            want.push(acc.clone());
        }
        let top = mounts.dir(&controllers, &full(&path))?;
        let mut stack = vec![(top, path.clone())];
        while let Some((dir, p)) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let child = format!("{}/{name}", p.trim_end_matches('/'));
                        want.push(child.clone());
                        stack.push((e.path(), child));
                    }
                }
            }
        }
        for p in want {
            if !seen.insert((controllers.clone(), p.clone())) {
                continue;
            }
            let dir = mounts.dir(&controllers, &full(&p))?;
            out.dirs.push(dir_entry(&controllers, &p, &dir)?);
        }
    }
    Ok(out)
}

/// What restore made of the image's cgroups: where each (hierarchy, path) is here.
pub struct Placed {
    mounts: Mounts,
    roots: Roots,
}

/// Make the image's cgroup directories (before any task of the tree exists).
pub fn prepare(saved: &CgroupsEntry, mode: Mode, roots: Roots) -> Result<Placed> {
    let mut placed = Placed {
        mounts: Mounts::default(),
        roots,
    };
    for d in &saved.dirs {
        let dir = placed.dir(&d.controllers, &d.path)?;
        let made = if dir.is_dir() {
            if mode == Mode::Strict {
                return Err(CgroupsError::Exists { path: dir });
            }
            false
        } else {
            std::fs::create_dir_all(&dir).map_err(|source| CgroupsError::Io {
                op: "make",
                path: dir.clone(),
                source,
            })?;
            true
        };
        if made || mode == Mode::Full {
            set_dir(&dir, d)?;
        }
    }
    Ok(placed)
}

impl Placed {
    fn dir(&mut self, controllers: &str, path: &str) -> Result<PathBuf> {
        let root = self.roots.of(controllers).trim_end_matches('/').to_string();
        self.mounts.dir(controllers, &format!("{root}{path}"))
    }

    /// Move process `pid` (all its threads) into its cgroups, then any thread of it with
    /// cgroups of its own.
    pub fn attach(
        &mut self,
        pid: i32,
        cgroups: &[CgroupMemberEntry],
        threads: &[(i32, &[CgroupMemberEntry])],
    ) -> Result<()> {
        // Where it is now (the restorer's cgroups, inherited): only moves that change
        // something are made.
        let now = membership(pid, pid, &Roots::default()).unwrap_or_default();
        for m in cgroups {
            let here = format!(
                "{}{}",
                self.roots.of(&m.controllers).trim_end_matches('/'),
                m.path
            );
            let here = if here.len() > 1 {
                here.trim_end_matches('/').to_string()
            } else {
                here
            };
            if now
                .iter()
                .any(|n| same_controllers(&n.controllers, &m.controllers) && n.path == here)
            {
                continue;
            }
            let dir = self.dir(&m.controllers, &m.path)?;
            // A root of its own (`--cgroup-root`) may not exist yet.
            if !dir.is_dir() {
                std::fs::create_dir_all(&dir).map_err(|source| CgroupsError::Io {
                    op: "make",
                    path: dir.clone(),
                    source,
                })?;
                inherit_cpuset(&dir);
            }
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        for (tid, own) in threads {
            for m in own.iter() {
                let dir = self.dir(&m.controllers, &m.path)?;
                let file = if m.controllers.is_empty() {
                    "cgroup.threads"
                } else {
                    "tasks"
                };
                write(&dir.join(file), &tid.to_string())?;
            }
        }
        Ok(())
    }
}

/// A new cpuset cgroup has no CPUs and no memory nodes, and takes no task until it has:
/// give it its parent's (walking down from the first ancestor that has them).
fn inherit_cpuset(dir: &Path) {
    let mut chain: Vec<&Path> = dir.ancestors().collect();
    chain.reverse();
    for pair in chain.windows(2) {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let (up, down) = (pair[0].join(f), pair[1].join(f));
            let empty = std::fs::read_to_string(&down).is_ok_and(|v| v.trim().is_empty());
            if empty {
                if let Ok(v) = std::fs::read_to_string(&up) {
                    let _ = std::fs::write(&down, v.trim());
                }
            }
        }
    }
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| CgroupsError::Io {
        op: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Owner, mode and properties of a directory restore made (or of every one, with `full`).
fn set_dir(dir: &Path, d: &CgroupDirEntry) -> Result<()> {
    let io = |op, path: &Path, source| CgroupsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    for p in &d.props {
        let f = dir.join(&p.name);
        if let Some(v) = &p.value {
            if p.name == "devices.list" {
                // The list is set as a whole: deny all, then allow each saved line.
                let _ = std::fs::write(dir.join("devices.deny"), "a");
                for line in v.lines().filter(|l| !l.trim().is_empty()) {
                    std::fs::write(dir.join("devices.allow"), line)
                        .map_err(|e| io("write devices.allow of", dir, e))?;
                }
            } else if std::fs::read_to_string(&f).ok().as_deref() != Some(v.as_str()) {
                // A value the kernel refuses (a limit below the usage) is not fatal: the
                // tasks still go in.
                if let Err(e) = std::fs::write(&f, v.trim_end()) {
                    tracing::warn!(path = %f.display(), error = %e, "cannot set a cgroup property");
                }
            }
        }
        let _ = std::os::unix::fs::chown(&f, Some(p.uid), Some(p.gid));
        let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(p.mode));
    }
    std::os::unix::fs::chown(dir, Some(d.uid), Some(d.gid)).map_err(|e| io("chown", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(d.mode))
        .map_err(|e| io("chmod", dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_paths() {
        let r = Roots::parse(&["name=zdtmtst:/prefix".into(), "/newroot".into()]);
        assert_eq!(r.of("name=zdtmtst"), "/prefix");
        assert_eq!(r.of("cpu,cpuacct"), "/newroot");
        assert_eq!(strip_root("/prefix/a/b", "/prefix"), "/a/b");
        assert_eq!(strip_root("/prefix", "/prefix"), "/");
        assert_eq!(strip_root("/prefixed", "/prefix"), "/prefixed");
        assert_eq!(strip_root("/x", "/"), "/x");
        assert!(same_controllers("cpuacct,cpu", "cpu,cpuacct"));
        assert!("full".parse::<Mode>().is_ok() && "bogus".parse::<Mode>().is_err());
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
