//! Control groups, saved with `--manage-cgroups`: which cgroup of each hierarchy each task is
//! in, and the cgroup directories the tree uses (with their ancestors and descendants), with
//! owner, mode and the properties restore sets again.

use serde::{Deserialize, Serialize};

/// One task's cgroup in one hierarchy, as /proc/PID/task/TID/cgroup names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMemberEntry {
    /// The hierarchy: its controllers as /proc/PID/cgroup lists them ("cpu,cpuacct",
    /// "name=zdtmtst"; "" for cgroup v2).
    pub controllers: String,
    /// The cgroup, from the hierarchy's root (after `--cgroup-root` at dump).
    pub path: String,
}

/// Every cgroup directory of the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupsEntry {
    pub dirs: Vec<CgroupDirEntry>,
}

/// One cgroup directory: where, owner and mode, properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDirEntry {
    pub controllers: String,
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub props: Vec<CgroupPropEntry>,
}

/// One control file: its value (None: only its owner and mode are restored) and its owner
/// and mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPropEntry {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}
