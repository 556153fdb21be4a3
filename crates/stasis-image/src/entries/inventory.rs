//! The image's table of contents: who wrote it, for which machine, and which processes it holds.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// Version of the stasis that wrote the image.
    pub stasis_version: String,
    /// `x86_64`, later `aarch64`.
    pub arch: String,
    /// `uname -r` of the machine the dump ran on.
    pub kernel: String,
    /// Seconds since the epoch at the end of the dump.
    pub created_unix: u64,
    /// The process the dump was asked for.
    pub root_pid: i32,
    /// Every process in the image, parents before children.
    pub pids: Vec<i32>,
    /// The XSAVE feature mask (XCR0) of the dumping CPU: restore needs these features too.
    #[serde(default)]
    pub xfeatures: u64,
    /// The image this one is an increment of, if any.
    #[serde(default)]
    pub parent: Option<String>,
    /// The cgroup directories of the tree, saved with `--manage-cgroups`.
    #[serde(default)]
    pub cgroups: Option<super::CgroupsEntry>,
}
