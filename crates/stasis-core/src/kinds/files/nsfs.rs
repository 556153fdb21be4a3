//! Namespace files (an fd of /proc/PID/ns/net and the like, as `setns` users keep): dump
//! keeps the namespace's type and inode. Restore reopens the restorer's own namespace of that
//! type when it is the same one (the common case: the tree runs in the namespaces stasis runs
//! in); a namespace stasis cannot reach again is an error naming it.

use super::{DumpFd, FilesError, OpenCx};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

/// The kind: see the module doc.
pub struct Nsfs;

/// Namespace types as their files are named in /proc/PID/ns.
const TYPES: &[&str] = &[
    "net",
    "mnt",
    "uts",
    "ipc",
    "pid",
    "user",
    "cgroup",
    "time",
    "pid_for_children",
    "time_for_children",
];

/// "net:[4026531833]" -> ("net", 4026531833).
fn parse(link: &str) -> Option<(&str, u64)> {
    let (ns, rest) = link.split_once(":[")?;
    let ino = rest.strip_suffix(']')?.parse().ok()?;
    TYPES.contains(&ns).then_some((ns, ino))
}

impl super::FileKind for Nsfs {
    fn tags(&self) -> &'static [&'static str] {
        &["namespace"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        parse(cx.link).is_some()
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        let (ns, ino) = parse(cx.link).expect("claimed");
        Ok(FileKindEntry::Namespace {
            ns: ns.to_string(),
            ino,
        })
    }
    fn open(&self, _cx: &mut OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        let FileKindEntry::Namespace { ns, ino } = &entry.kind else {
            unreachable!("nsfs::open on another kind")
        };
        let path = format!("/proc/self/ns/{ns}");
        let f = std::fs::File::open(&path).map_err(|source| FilesError::Open {
            id: entry.id,
            op: "open",
            path: path.clone().into(),
            source,
        })?;
        let here = f.metadata().map(|m| m.ino()).unwrap_or(0);
        if here != *ino {
            return Err(FilesError::Changed {
                id: entry.id,
                path: format!("{ns}:[{ino}]").into(),
                what: format!(
                    "the {ns} namespace it names is not the one stasis restores in ({ns}:[{here}]); restore where that namespace is the current one"
                ),
            });
        }
        Ok(f.into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn links() {
        assert_eq!(super::parse("net:[4026531833]"), Some(("net", 4026531833)));
        assert_eq!(
            super::parse("pid_for_children:[4026531836]"),
            Some(("pid_for_children", 4026531836))
        );
        assert_eq!(super::parse("socket:[12]"), None);
        assert_eq!(super::parse("pipe:[12]"), None);
    }
}
