//! Where `/proc` text comes from: the I/O boundary of this crate.
//!
//! Owns the [`ProcSource`] trait and its two implementations, [`RealProc`] (the live `/proc`) and
//! [`FixtureDir`] (a captured copy laid out the same way). It must not parse anything: callers
//! read bytes here and hand them to the pure parsers, so that every parser can be tested with
//! pasted text and every engine path can be tested against a fixture directory.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// A `/proc`-shaped tree that can be read.
pub trait ProcSource {
    /// Read `/proc/<pid>/<rel>` (pid None = `/proc/<rel>`) as bytes.
    fn read(&self, pid: Option<i32>, rel: &str) -> io::Result<Vec<u8>>;

    /// Read a file as text. `/proc` text is ASCII except for user-controlled names (comm, paths),
    /// which may be arbitrary bytes; lossy conversion keeps the structure parseable rather than
    /// failing the whole read over one odd file name.
    fn read_string(&self, pid: Option<i32>, rel: &str) -> io::Result<String> {
        let bytes = self.read(pid, rel)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Target of a symlink such as `exe`, `cwd` or `fd/3`.
    fn read_link(&self, pid: Option<i32>, rel: &str) -> io::Result<PathBuf>;

    /// Names of entries in a directory such as "task" or "fd", sorted numerically when numeric.
    fn list(&self, pid: Option<i32>, rel: &str) -> io::Result<Vec<String>>;
}

/// The live `/proc` of the running kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RealProc;

/// A directory holding the same layout as `/proc` (e.g. `<dir>/1234/maps`, `<dir>/1234/task/..`).
///
/// Symlinks are stored as plain files holding the link target text, because fixtures are meant
/// to be checked into a repository and copied around, where real symlinks into `/proc`-only
/// targets such as `pipe:[4713]` would be mangled or dangle. A single trailing newline in such a
/// file is ignored so fixtures can be written with `echo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureDir(pub PathBuf);

impl RealProc {
    /// The root this source reads from.
    pub const ROOT: &'static str = "/proc";
}

/// Join `root`, the optional pid directory and `rel`, refusing anything that could escape the
/// root. `rel` is written by our own code, but an absolute `rel` would silently replace the root
/// in `Path::join` and read the host's files instead of the fixture's, so it is worth a check.
pub fn proc_path(root: &Path, pid: Option<i32>, rel: &str) -> io::Result<PathBuf> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("proc path {rel:?} must be relative without '..'"),
        ));
    }
    let mut p = root.to_path_buf();
    if let Some(pid) = pid {
        p.push(pid.to_string());
    }
    if !rel.is_empty() {
        p.push(rel_path);
    }
    Ok(p)
}

/// Shared by both sources: directory listing with numeric-aware ordering, so that `task` and
/// `fd` come back as 1, 2, 10 rather than 1, 10, 2.
fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        names.push(name.into_string().map_err(|n: OsString| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("non-UTF-8 entry {n:?} in {}", dir.display()),
            )
        })?);
    }
    sort_names(&mut names);
    Ok(names)
}

/// Numeric names first in numeric order, then everything else in byte order.
pub(crate) fn sort_names(names: &mut [String]) {
    names.sort_by(|a, b| {
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => std::cmp::Ordering::Equal,
        }
        // Ties (non-numeric pairs, or "01" vs "1") fall back to the text so the order is total.
        .then_with(|| a.cmp(b))
    });
}

impl ProcSource for RealProc {
    fn read(&self, pid: Option<i32>, rel: &str) -> io::Result<Vec<u8>> {
        std::fs::read(proc_path(Path::new(Self::ROOT), pid, rel)?)
    }

    fn read_link(&self, pid: Option<i32>, rel: &str) -> io::Result<PathBuf> {
        std::fs::read_link(proc_path(Path::new(Self::ROOT), pid, rel)?)
    }

    fn list(&self, pid: Option<i32>, rel: &str) -> io::Result<Vec<String>> {
        list_dir(&proc_path(Path::new(Self::ROOT), pid, rel)?)
    }
}

impl ProcSource for FixtureDir {
    fn read(&self, pid: Option<i32>, rel: &str) -> io::Result<Vec<u8>> {
        std::fs::read(proc_path(&self.0, pid, rel)?)
    }

    fn read_link(&self, pid: Option<i32>, rel: &str) -> io::Result<PathBuf> {
        let mut bytes = std::fs::read(proc_path(&self.0, pid, rel)?)?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        Ok(PathBuf::from(bytes_to_os(bytes)))
    }

    fn list(&self, pid: Option<i32>, rel: &str) -> io::Result<Vec<String>> {
        list_dir(&proc_path(&self.0, pid, rel)?)
    }
}

/// Link targets can be arbitrary bytes on Unix; keep them exact rather than lossy.
#[cfg(unix)]
fn bytes_to_os(bytes: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(bytes)
}

#[cfg(not(unix))]
fn bytes_to_os(bytes: Vec<u8>) -> OsString {
    OsString::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fixture() -> (tempfile::TempDir, FixtureDir) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("4242/task/4242")).unwrap();
        fs::create_dir_all(root.join("4242/task/4250")).unwrap();
        fs::create_dir_all(root.join("4242/task/999")).unwrap();
        fs::create_dir_all(root.join("4242/fd")).unwrap();
        for fd in ["0", "1", "2", "10", "3"] {
            fs::write(root.join("4242/fd").join(fd), "/dev/null\n").unwrap();
        }
        fs::write(root.join("4242/fd/7"), "pipe:[4713]").unwrap();
        fs::write(root.join("4242/exe"), b"/tmp/dir with space/a\xffb\n").unwrap();
        fs::write(
            root.join("4242/stat"),
            b"4242 (bad\xffname) S 1 ...".as_slice(),
        )
        .unwrap();
        fs::write(root.join("4242/task/4250/comm"), "worker\n").unwrap();
        fs::write(root.join("uptime"), "1.00 2.00\n").unwrap();
        let src = FixtureDir(root.to_path_buf());
        (dir, src)
    }

    #[test]
    fn fixture_reads_lists_and_links() {
        let (_keep, src) = fixture();
        assert_eq!(src.read(None, "uptime").unwrap(), b"1.00 2.00\n");
        assert_eq!(
            src.read_string(Some(4242), "task/4250/comm").unwrap(),
            "worker\n"
        );
        assert_eq!(
            src.list(Some(4242), "task").unwrap(),
            ["999", "4242", "4250"]
        );
        assert_eq!(
            src.list(Some(4242), "fd").unwrap(),
            ["0", "1", "2", "3", "7", "10"]
        );
        assert_eq!(
            src.read_link(Some(4242), "fd/7").unwrap(),
            PathBuf::from("pipe:[4713]")
        );
        assert_eq!(
            src.read_link(Some(4242), "fd/0").unwrap(),
            PathBuf::from("/dev/null")
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let exe = src.read_link(Some(4242), "exe").unwrap();
            assert_eq!(exe.as_os_str().as_bytes(), b"/tmp/dir with space/a\xffb");
        }
        // Invalid UTF-8 in user-controlled text is replaced, not an error.
        let stat = src.read_string(Some(4242), "stat").unwrap();
        assert!(stat.starts_with("4242 (bad\u{fffd}name)"));
        let err = src.read(Some(4242), "nonexistent").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn rel_cannot_escape_root() {
        let (_keep, src) = fixture();
        for rel in ["/etc/passwd", "../4242/stat", "task/../../uptime"] {
            let err = src.read(Some(4242), rel).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{rel}");
        }
        assert_eq!(
            proc_path(Path::new("/proc"), Some(7), "task/7/stat").unwrap(),
            PathBuf::from("/proc/7/task/7/stat")
        );
        assert_eq!(
            proc_path(Path::new("/proc"), None, "").unwrap(),
            PathBuf::from("/proc")
        );
    }

    #[test]
    fn sort_is_numeric_then_text() {
        let mut v: Vec<String> = ["b", "10", "a", "2", "01", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_names(&mut v);
        assert_eq!(v, ["01", "1", "2", "10", "a", "b"]);
    }

    /// The live `/proc` is always there on Linux; read our own entries through the trait.
    #[cfg(target_os = "linux")]
    #[test]
    fn real_proc_self() {
        let me = std::process::id() as i32;
        let src = RealProc;
        let stat = src.read_string(Some(me), "stat").unwrap();
        assert!(stat.starts_with(&format!("{me} (")));
        let tasks = src.list(Some(me), "task").unwrap();
        assert!(tasks.contains(&me.to_string()));
        let fds = src.list(Some(me), "fd").unwrap();
        assert!(fds.iter().any(|f| f == "0" || f == "1" || f == "2"));
        let exe = src.read_link(Some(me), "exe").unwrap();
        assert!(exe.is_absolute());
        assert!(!src.read(None, "uptime").unwrap().is_empty());
    }
}
