//! What an image may ask of a restorer more privileged than the image's owner. Records are
//! protected by checksums anyone can recompute, so an image is only as trustworthy as whoever
//! could write it: the owner of its directory and files. When root restores an image another
//! user owns, the image must not raise that user's privilege: every process runs as that
//! user (uids, and gids among that user's groups), holds no capabilities, and opens and maps
//! only what that user could open, with the access the user had. Anything else is refused
//! naming the pid and field, unless the caller passes `--trust-image`.
//!
//! File access is judged from the permission bits along the path, as the owner (ACLs and
//! capabilities are not consulted: the check errs on the side of refusing).

use stasis_image::{FileKindEntry, Image, VmaKind};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("the image {dir} belongs to uid {owner}, but {what}: restoring it as uid {caller} would give uid {owner} more than it had; restore it as uid {owner}, or pass --trust-image if you know who made it")]
pub struct UntrustedImage {
    pub dir: PathBuf,
    pub owner: u32,
    pub caller: u32,
    /// What the image asks for, naming the pid and field.
    pub what: String,
}

/// The user an image belongs to and the groups that user is in.
struct Owner {
    uid: u32,
    gids: Vec<u32>,
}

impl Owner {
    /// The owner of the image: the directory's owner, or the first file in it that the
    /// caller does not own. None when the caller owns all of it.
    fn of(dir: &Path, caller: u32) -> Option<Owner> {
        let m = std::fs::metadata(dir).ok()?;
        let (mut uid, mut gid) = (m.uid(), m.gid());
        if uid == caller {
            let other = std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .filter_map(|e| std::fs::symlink_metadata(e.path()).ok())
                .find(|m| m.uid() != caller)?;
            (uid, gid) = (other.uid(), other.gid());
        }
        let gids = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .and_then(|u| {
                let name = std::ffi::CString::new(u.name).ok()?;
                nix::unistd::getgrouplist(&name, u.gid).ok()
            })
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|| vec![gid]);
        Some(Owner { uid, gids })
    }

    /// Whether the owner may reach `path` and use it for `want` (r=4, w=2, x=1), along the
    /// path as written and along the path its links lead to.
    fn may(&self, path: &Path, want: u32) -> bool {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        [path, real.as_path()].iter().all(|p| {
            let dirs_ok = p
                .ancestors()
                .skip(1)
                .all(|d| std::fs::metadata(d).map_or(true, |m| self.bits(&m) & 1 != 0));
            dirs_ok && std::fs::metadata(p).map_or(true, |m| self.bits(&m) & want == want)
        })
    }

    /// The permission bits that apply to the owner for a file with metadata `m`.
    fn bits(&self, m: &std::fs::Metadata) -> u32 {
        if self.uid == 0 {
            return 7;
        }
        let mode = m.mode();
        if m.uid() == self.uid {
            (mode >> 6) & 7
        } else if self.gids.contains(&m.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        }
    }
}

/// Refuse what the image in `img.dir` asks beyond its owner's privilege (see the module
/// docs); nothing to check when the caller is not root or owns the image.
pub fn check(img: &Image, trust: bool) -> Result<(), UntrustedImage> {
    let caller = nix::unistd::geteuid().as_raw();
    if trust || caller != 0 {
        return Ok(());
    }
    let Some(owner) = Owner::of(&img.dir, caller) else {
        return Ok(());
    };
    if owner.uid == 0 {
        return Ok(());
    }
    let refuse = |what: String| UntrustedImage {
        dir: img.dir.clone(),
        owner: owner.uid,
        caller,
        what,
    };
    for p in &img.processes {
        let c = &p.creds;
        if let Some(u) = c.uid.iter().find(|&&u| u != owner.uid) {
            return Err(refuse(format!("pid {} runs as uid {u} (creds.uid)", p.pid)));
        }
        if let Some(g) = c
            .gid
            .iter()
            .chain(&c.groups)
            .find(|g| !owner.gids.contains(g))
        {
            return Err(refuse(format!(
                "pid {} holds gid {g}, which is not among uid {}'s groups (creds.gid/groups)",
                p.pid, owner.uid
            )));
        }
        if let Some(caps) = &c.caps {
            let held = caps.effective | caps.permitted | caps.inheritable | caps.ambient;
            if held != 0 {
                return Err(refuse(format!(
                    "pid {} holds capabilities {held:#x} (creds.caps)",
                    p.pid
                )));
            }
        }
        for (field, dir) in [("cwd", &p.cwd), ("root", &p.root)] {
            if dir.starts_with('/') && !owner.may(Path::new(dir), 1) {
                return Err(refuse(format!(
                    "pid {}'s {field} is {dir}, which uid {} cannot enter",
                    p.pid, owner.uid
                )));
            }
        }
        for v in &p.vmas {
            let (Some(path), VmaKind::FilePrivate | VmaKind::FileShared) = (&v.path, &v.kind)
            else {
                continue;
            };
            let shared_write =
                v.kind == VmaKind::FileShared && v.prot & libc::PROT_WRITE as u32 != 0;
            let want = if shared_write { 6 } else { 4 };
            if path.starts_with('/') && !owner.may(Path::new(path), want) {
                return Err(refuse(format!(
                    "pid {} maps {path} at {:#x}{}, which uid {} cannot {}",
                    p.pid,
                    v.start,
                    if shared_write {
                        " shared and writable"
                    } else {
                        ""
                    },
                    owner.uid,
                    if shared_write {
                        "read and write"
                    } else {
                        "read"
                    }
                )));
            }
        }
    }
    for f in &img.files.files {
        let (path, want) = match &f.kind {
            FileKindEntry::Path { path, .. } | FileKindEntry::Fifo { path, .. } => {
                let want = if f.flags & libc::O_PATH as u32 != 0 {
                    0
                } else {
                    match f.flags & libc::O_ACCMODE as u32 {
                        0 => 4,
                        1 => 2,
                        _ => 6,
                    }
                };
                (PathBuf::from(path), want)
            }
            // Made again where it was, for a moment: the owner must be able to create there.
            FileKindEntry::Deleted { path, .. } | FileKindEntry::Ghost { path, .. } => {
                let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
                (parent.to_path_buf(), 3)
            }
            _ => continue,
        };
        if path.is_absolute() && !owner.may(&path, want) {
            return Err(refuse(format!(
                "file {} ({}) needs {} access to {}, which uid {} does not have",
                f.id,
                f.kind.tag(),
                match want {
                    0 => "search",
                    2 => "write",
                    3 => "create",
                    4 => "read",
                    _ => "read-write",
                },
                path.display(),
                owner.uid
            )));
        }
    }
    Ok(())
}
