//! On-disk entry types (`XxxEntry`). Field names are the format: add fields as `Option` or
//! `#[serde(default)]`, never rename or renumber.

pub mod cgroup;
pub mod file;
pub mod inventory;
pub mod memory;
pub mod process;
pub mod signal;
pub mod thread;

pub use cgroup::{CgroupDirEntry, CgroupMemberEntry, CgroupPropEntry, CgroupsEntry};
pub use file::{
    BlobRef, EpollItemEntry, FanotifyMarkEntry, FdEntry, FileEntry, FileKindEntry, FilesEntry,
    InotifyWatchEntry, LockEntry, OwnerEntry,
};
pub use inventory::InventoryEntry;
pub use memory::{AioRingEntry, PageIndexEntry, PageRun, SysvShmEntry, VmaEntry, VmaKind};
pub use process::{
    CapsEntry, CredsEntry, MmEntry, ProcessEntry, RlimitEntry, SchedEntry, SeccompFilterEntry,
};
pub use signal::{ItimerEntry, PosixTimerEntry, SigactionEntry, SiginfoEntry};
pub use thread::{AltStackEntry, RegsEntry, RseqEntry, ThreadEntry, ThreadSeccompEntry};
