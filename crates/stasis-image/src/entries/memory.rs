//! Address-space layout (VMAs) and the page index over the raw page files.

use serde::{Deserialize, Serialize};

/// What backs a VMA, which decides how restore recreates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmaKind {
    /// Private anonymous memory (heap, stacks, mmap(MAP_ANONYMOUS|MAP_PRIVATE)).
    Anon,
    /// A private mapping of a file: remapped from the file, written pages from the image.
    FilePrivate,
    /// A shared mapping of a file: remapped from the file, which holds the data.
    FileShared,
    /// MAP_SHARED|MAP_ANONYMOUS (shmem): recreated and filled from the image.
    SharedAnon,
    Vdso,
    Vvar,
    VvarVclock,
    Vsyscall,
    /// An AIO completion ring (io_setup): shows as `/[aio] (deleted)`. Restore makes a new
    /// ring with io_setup, brings its head and tail to the saved ones and moves it to the
    /// saved address (the ring's address is the context id the process uses). Since 1.5.
    Aio,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmaEntry {
    pub start: u64,
    pub end: u64,
    /// PROT_* bits.
    pub prot: u32,
    /// MAP_* bits restore passes to mmap (MAP_SHARED/MAP_PRIVATE, MAP_GROWSDOWN, ...).
    pub flags: u32,
    pub kind: VmaKind,
    /// File offset of `start` for file mappings.
    #[serde(default)]
    pub pgoff: u64,
    /// The mapped file's path as /proc showed it (also for anonymous names like `[heap]`).
    #[serde(default)]
    pub path: Option<String>,
    /// The file-table id of the mapped file, for file mappings.
    #[serde(default)]
    pub file_id: Option<u32>,
    /// For shared anonymous memory: the shmem object's id (its inode), the same in every
    /// mapping and process that shares it, so restore maps one object for all of them.
    #[serde(default)]
    pub shmem: Option<u64>,
    /// The smaps VmFlags, for `show` and for madvise-level state restore cares about.
    #[serde(default)]
    pub vm_flags: Vec<String>,
    /// For a SysV shared memory attach (shmat): the segment, recreated with the same id.
    #[serde(default)]
    pub sysv: Option<SysvShmEntry>,
    /// Page ranges (start, end) of this private mapping whose pages are the very page frames
    /// of the same mapping of the parent process (copy-on-write since a fork): not saved
    /// here; restore forks the process from its restored parent and keeps them, so they stay
    /// shared. Since format 1.2.
    #[serde(default)]
    pub cow: Vec<(u64, u64)>,
    /// Guard pages (MADV_GUARD_INSTALL) inside the VMA: reinstalled, never read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<(u64, u64)>,
    /// For an AIO ring ([`VmaKind::Aio`]): what io_setup needs to make it again, and its
    /// bytes. Since 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aio: Option<AioRingEntry>,
}

/// An AIO completion ring as the process saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AioRingEntry {
    /// The nr_events to pass to io_setup so that the kernel makes a ring of this size (the
    /// kernel rounds what the process asked for up to whole pages; see
    /// `stasis::kinds::memory::aio_nr_req`).
    pub nr_req: u32,
    /// The ring: header (id, nr, head, tail, magic, features, header length) and events.
    #[serde(with = "serde_bytes")]
    pub ring: Vec<u8>,
}

/// A SysV shared memory segment (shmget) as its IPC namespace knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysvShmEntry {
    pub id: i32,
    /// The key (0: IPC_PRIVATE, and every segment removed while attached).
    pub key: i32,
    pub size: u64,
    /// Permission bits (0o777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Removed (IPC_RMID) while attached: it lives on until the last detach.
    pub destroyed: bool,
}

impl VmaEntry {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A run of consecutive pages stored contiguously in the process's page file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRun {
    /// Virtual address of the first page.
    pub vaddr: u64,
    /// Number of pages.
    pub pages: u32,
    /// Byte offset of the first page in the page file.
    pub offset: u64,
    /// crc32c of the run's (uncompressed) bytes.
    pub crc32c: u32,
    /// 0: the run is stored raw (pages * 4096 bytes). Otherwise it is stored as an LZ4 block
    /// of this many bytes (format 1.1).
    #[serde(default)]
    pub lz4_len: u32,
}

impl PageRun {
    /// Bytes the run occupies in the page file.
    pub fn stored_len(&self) -> u64 {
        if self.lz4_len != 0 {
            self.lz4_len as u64
        } else {
            self.pages as u64 * crate::PAGE_SIZE
        }
    }
}

/// The page index of one process. Runs are sorted by address and never overlap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageIndexEntry {
    pub pid: i32,
    /// Name of the page file inside the image directory.
    pub pages_file: String,
    pub runs: Vec<PageRun>,
}

impl PageIndexEntry {
    pub fn total_pages(&self) -> u64 {
        self.runs.iter().map(|r| r.pages as u64).sum()
    }

    /// Bytes of the page file the runs use.
    pub fn stored_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.stored_len()).sum()
    }
}
