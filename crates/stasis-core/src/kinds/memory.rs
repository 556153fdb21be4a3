//! Memory: the VMA layout and the page contents of a process.
//!
//! Dump classifies every VMA (what backs it decides how restore recreates it) and saves only
//! pages a file cannot give back: present private anonymous pages (not the zero page), the
//! copy-on-write pages of private file mappings, and shmem pages. PAGEMAP_SCAN reports those
//! as ranges. Pages stream through one reused buffer into the page file, so stasis' memory
//! stays bounded however large the process is.
//!
//! Restore maps every VMA at its address with its protection, then writes the saved pages
//! straight from a mapping of the page file into the process (one copy): `process_vm_writev`
//! for writable VMAs, `/proc/PID/mem` (which ignores protection) for the others. Every run's
//! checksum is verified right before its bytes are used.

use crate::tracee::{Tracee, TraceeError};
use stasis_image::{codec, PageIndexEntry, PageRun, PagesWriter, VmaEntry, VmaKind, PAGE_SIZE};
use stasis_procfs::smaps::SmapsEntry;
use stasis_sys::pagemap::{self, PageRegion, ScanQuery};
use stasis_sys::{mem, Errno, Pid};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("pid {pid}: the mapping {start:#x}-{end:#x} of {path} is a deleted file that no fd of the process holds; such mappings are not supported yet")]
    DeletedMapping {
        pid: i32,
        start: u64,
        end: u64,
        path: String,
    },
    #[error("pid {pid}: PAGEMAP_SCAN over {start:#x}-{end:#x} failed (needs Linux 6.7+; see `stasis check`)")]
    Scan {
        pid: i32,
        start: u64,
        end: u64,
        #[source]
        source: Errno,
    },
    #[error("pid {pid}: cannot open {path}")]
    Open {
        pid: i32,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid}: reading memory at {addr:#x} (+{len} bytes) failed")]
    Read {
        pid: i32,
        addr: u64,
        len: usize,
        #[source]
        source: Errno,
    },
    #[error("pid {pid}: writing memory at {addr:#x} (+{len} bytes) failed")]
    Write {
        pid: i32,
        addr: u64,
        len: usize,
        #[source]
        source: Errno,
    },
    #[error(transparent)]
    Image(#[from] stasis_image::ImageError),
    #[error(transparent)]
    Tracee(#[from] TraceeError),
    #[error("pid {pid}: the mapping {start:#x}-{end:#x} shares pages with the parent's, but the restored parent has no such mapping")]
    CowMissing { pid: i32, start: u64, end: u64 },
    #[error("SysV shared memory segment {id}: {what}")]
    Sysv {
        id: i32,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("SysV shared memory segment {id} (key {key:#x}) cannot be recreated: {why}")]
    SysvTaken { id: i32, key: i32, why: String },
    #[error("pid {pid}: the SysV shared memory attach at {start:#x} belongs to another IPC namespace than stasis'; run stasis in the process's IPC namespace (nsenter --ipc --target {pid})")]
    SysvForeignNamespace { pid: i32, start: u64 },
    #[error("pid {pid}: the SysV shared memory segment {id} attached at {start:#x} is not in /proc/sysvipc/shm")]
    SysvUnknown { pid: i32, start: u64, id: i32 },
    #[error("pid {pid}: the SysV shared memory attach at {start:#x} does not start at the segment's beginning (offset {pgoff:#x}); partly detached segments are not supported")]
    SysvPartial { pid: i32, start: u64, pgoff: u64 },
    #[error("pid {pid}: restoring the mapping {start:#x}-{end:#x} ({what})")]
    Map {
        pid: i32,
        start: u64,
        end: u64,
        what: String,
        #[source]
        source: TraceeError,
    },
    #[error("{path}: page run at {vaddr:#x} (offset {offset}) is corrupt (checksum mismatch)")]
    Corrupt {
        path: PathBuf,
        vaddr: u64,
        offset: u64,
    },
    #[error("{path}: page run at {vaddr:#x} lies outside the page file or any mapping")]
    BadRun { path: PathBuf, vaddr: u64 },
    #[error("the image's {name} is {saved} bytes but this kernel's is {here}; restoring across different vDSO layouts is not supported yet")]
    VdsoMismatch { name: String, saved: u64, here: u64 },
    #[error("pid {pid}: the kernel seals [vdso]/[vvar] (CONFIG_MSEAL_SYSTEM_MAPPINGS), so they cannot be moved to their saved addresses")]
    Sealed { pid: i32 },
    #[error(transparent)]
    Aio(#[from] crate::kinds::aio::AioError),
    #[error("pid {pid}: the image has no vDSO and no `syscall` instruction was found in the process's restored executable memory to drive it by")]
    NoGadget { pid: i32 },
    #[error("pid {pid}: its skeleton, forked from a restored parent without a vDSO, has none to drive it by; restoring a process under a parent that unmapped its vDSO is not supported yet")]
    VdsoMissing { pid: i32 },
}

type Result<T, E = MemoryError> = std::result::Result<T, E>;

/// Largest run a single page-index entry (and checksum) covers: 1 MiB.
const RUN_PAGES: u64 = 256;
/// Bytes read from the process per batch.
const BATCH_BYTES: usize = 8 << 20;
/// Batches in flight between reader and writer (memory: BUFFERS x BATCH_BYTES).
const BUFFERS: usize = 3;
/// Bytes written before their writeback is started (at most: small dumps start it every
/// batch).
const WRITEBACK_CHUNK: usize = 8 << 20;

/// Decide how each VMA is saved and recreated. Mappings of deleted files (and memfds) must
/// then be tied to an fd of the same file with [`link_deleted`].
pub fn classify(smaps: &[SmapsEntry]) -> Vec<VmaEntry> {
    let mut out = Vec::with_capacity(smaps.len());
    for s in smaps {
        let m = &s.map;
        let path = m.path.clone();
        let special = match path.as_deref() {
            Some("[vdso]") => Some(VmaKind::Vdso),
            Some("[vvar]") => Some(VmaKind::Vvar),
            Some("[vvar_vclock]") => Some(VmaKind::VvarVclock),
            Some("[vsyscall]") => Some(VmaKind::Vsyscall),
            // The ring of an AIO context: a mapping of an internal file, never a path.
            Some("/[aio]") if m.deleted && m.shared => Some(VmaKind::Aio),
            _ => None,
        };
        let kind = if let Some(k) = special {
            k
        } else if m.inode == 0 {
            // [heap], [stack], [anon:name] and nameless mappings; MAP_SHARED|MAP_ANONYMOUS
            // shows up as "/dev/zero (deleted)" with an inode, handled below.
            if m.shared {
                VmaKind::SharedAnon
            } else {
                VmaKind::Anon
            }
        } else if m.shared {
            let p = path.as_deref().unwrap_or("");
            if p == "/dev/zero" || p.starts_with("/SYSV") {
                VmaKind::SharedAnon
            } else {
                VmaKind::FileShared
            }
        } else {
            VmaKind::FilePrivate
        };
        let mut prot = 0;
        if m.read {
            prot |= libc::PROT_READ as u32;
        }
        if m.write {
            prot |= libc::PROT_WRITE as u32;
        }
        if m.exec {
            prot |= libc::PROT_EXEC as u32;
        }
        let mut flags = if m.shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        } as u32;
        if matches!(kind, VmaKind::Anon | VmaKind::SharedAnon) {
            flags |= libc::MAP_ANONYMOUS as u32;
        }
        if s.vm_flags.has("gd") {
            flags |= libc::MAP_GROWSDOWN as u32;
        }
        // mmap-time flags smaps shows as VmFlags (madvise-time ones: see [`advise`]).
        if s.vm_flags.has("lo") {
            flags |= libc::MAP_LOCKED as u32;
        }
        if s.vm_flags.has("nr") {
            flags |= libc::MAP_NORESERVE as u32;
        }
        if s.vm_flags.has("dp") && kind == VmaKind::Anon {
            // MAP_DROPPABLE is a mapping type of its own, instead of MAP_PRIVATE.
            flags = (flags & !(libc::MAP_PRIVATE as u32)) | MAP_DROPPABLE;
        }
        let private_shmem =
            kind == VmaKind::FilePrivate && m.deleted && path.as_deref() == Some("/dev/zero");
        out.push(VmaEntry {
            start: m.start,
            end: m.end,
            prot,
            flags,
            kind,
            pgoff: m.offset,
            path,
            file_id: None,
            // A private mapping of a shared anonymous object (opened through
            // /proc/PID/map_files) maps that very object too: it sees the object's later
            // writes through the pages it has not copied.
            shmem: ((kind == VmaKind::SharedAnon && m.inode != 0) || private_shmem)
                .then_some(m.inode),
            sysv: None,
            cow: Vec::new(),
            guards: Vec::new(),
            aio: None,
            vm_flags: s
                .vm_flags
                .0
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect(),
        });
    }
    out
}

/// `MAP_DROPPABLE` (Linux 6.11): private anonymous memory the kernel may drop under pressure.
pub const MAP_DROPPABLE: u32 = 0x08;
/// `MADV_GUARD_INSTALL` (Linux 6.13).
pub const MADV_GUARD_INSTALL: i32 = 102;

/// VmFlags mnemonics set with madvise, and the advice that sets each.
const ADVICE: &[(&str, i32)] = &[
    ("sr", libc::MADV_SEQUENTIAL),
    ("rr", libc::MADV_RANDOM),
    ("dc", libc::MADV_DONTFORK),
    ("dd", libc::MADV_DONTDUMP),
    ("mg", libc::MADV_MERGEABLE),
    ("hg", libc::MADV_HUGEPAGE),
    ("nh", libc::MADV_NOHUGEPAGE),
    ("wf", libc::MADV_WIPEONFORK),
];

/// Whether the saved VmFlags of `v` hold `flag`.
pub fn has_flag(v: &VmaEntry, flag: &str) -> bool {
    v.vm_flags.iter().any(|f| f == flag)
}

/// Give a freshly mapped VMA the madvise flags it had (VmFlags), and its guard pages
/// (MADV_GUARD_INSTALL). An advice this kernel does not know (EINVAL) is skipped.
pub fn advise(t: &mut impl Tracee, v: &VmaEntry) -> Result<()> {
    let droppable = has_flag(v, "dp");
    for &(flag, advice) in ADVICE {
        // MAP_DROPPABLE implies VM_WIPEONFORK|VM_DONTDUMP already.
        if !has_flag(v, flag) || (droppable && matches!(flag, "wf" | "dd")) {
            continue;
        }
        match t.syscall(
            "madvise (saved VmFlags)",
            libc::SYS_madvise,
            [v.start, v.len(), advice as u64, 0, 0, 0],
        ) {
            Ok(_) => {}
            Err(TraceeError::Syscall {
                source: Errno::EINVAL,
                ..
            }) => tracing::debug!(start = v.start, flag, "madvise not supported; skipped"),
            Err(source) => {
                return Err(MemoryError::Map {
                    pid: t.pid(),
                    start: v.start,
                    end: v.end,
                    what: format!("madvise for VmFlag {flag}"),
                    source,
                })
            }
        }
    }
    for &(s, e) in &v.guards {
        t.syscall(
            "madvise(MADV_GUARD_INSTALL)",
            libc::SYS_madvise,
            [s, e - s, MADV_GUARD_INSTALL as u64, 0, 0, 0],
        )
        .map_err(|source| MemoryError::Map {
            pid: t.pid(),
            start: s,
            end: e,
            what: "installing guard pages".into(),
            source,
        })?;
    }
    Ok(())
}

/// Tie every mapping of a deleted file to the dumped fd of the same inode (`inodes`: file id
/// and inode), so restore maps the recreated file. A deleted file no fd holds is an error.
pub fn link_deleted(
    pid: i32,
    smaps: &[SmapsEntry],
    vmas: &mut [VmaEntry],
    inodes: &[(u32, u64)],
) -> Result<()> {
    for (s, v) in smaps.iter().zip(vmas.iter_mut()) {
        if !s.map.deleted
            || v.shmem.is_some()
            || !matches!(v.kind, VmaKind::FilePrivate | VmaKind::FileShared)
        {
            continue;
        }
        match inodes.iter().find(|(_, ino)| *ino == s.map.inode) {
            Some((id, _)) => v.file_id = Some(*id),
            None => {
                return Err(MemoryError::DeletedMapping {
                    pid,
                    start: v.start,
                    end: v.end,
                    path: v.path.clone().unwrap_or_default(),
                })
            }
        }
    }
    Ok(())
}

/// Whether the file of a mapping must be opened read-write on restore: a shared mapping that
/// is writable, or may become so (VM_MAYWRITE, "mw": the file was open for writing, so the
/// process may mprotect it writable later).
pub fn opens_writable(v: &VmaEntry) -> bool {
    v.kind == VmaKind::FileShared && (v.prot & libc::PROT_WRITE as u32 != 0 || has_flag(v, "mw"))
}

/// Shared memory restore maps (or attaches) read-write whatever its saved protection: the
/// kernel refuses even forced writes of its pages through a read-only shared mapping, and a
/// SysV segment is always attached read-write. [`protect_shared`] sets the saved protection
/// once the pages are in.
pub fn mapped_writable_first(v: &VmaEntry) -> bool {
    v.kind == VmaKind::SharedAnon && (v.sysv.is_some() || v.prot & libc::PROT_WRITE as u32 == 0)
}

/// Give each VMA [`mapped_writable_first`] its saved protection.
pub fn protect_shared(t: &mut impl Tracee, vmas: &[VmaEntry]) -> Result<()> {
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    for v in vmas {
        if mapped_writable_first(v) && v.prot != rw {
            t.syscall(
                "mprotect",
                libc::SYS_mprotect,
                [v.start, v.len(), v.prot as u64, 0, 0, 0],
            )
            .map_err(|source| MemoryError::Map {
                pid: t.pid(),
                start: v.start,
                end: v.end,
                what: "mprotect of shared memory".into(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Which pages of a VMA the image must hold.
fn query_for(kind: VmaKind) -> Option<ScanQuery> {
    use pagemap::*;
    let present = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    match kind {
        VmaKind::Anon | VmaKind::FilePrivate => Some(ScanQuery {
            // Guard pages (MADV_GUARD_INSTALL) look swapped out but hold nothing: reading
            // them fails with EIO. They are found apart (see [`find_guards`]).
            inverted: PAGE_IS_FILE | PAGE_IS_PFNZERO | guard_bit(),
            required: PAGE_IS_FILE | PAGE_IS_PFNZERO | guard_bit(),
            anyof: present,
            returned: present | PAGE_IS_FILE | PAGE_IS_PFNZERO,
        }),
        VmaKind::SharedAnon => Some(ScanQuery {
            inverted: 0,
            required: 0,
            anyof: present,
            returned: present,
        }),
        _ => None,
    }
}

/// Pages of a tree shared copy-on-write between a process and its parent (the same page
/// frame at the same address of the same private mapping in both, untouched since a fork).
///
/// Found before any page is read, because reading is not innocent: process_vm_readv pins
/// pages, and the kernel gives a process its own copy of a copy-on-write page before
/// pinning it. So shared pages are saved only with the parent, read there through
/// /proc/PID/mem (which does not pin), and restore forks the child from its restored parent
/// so that the two share them again. Page frame numbers come from /proc/PID/pagemap, which
/// shows them to CAP_SYS_ADMIN only; without it nothing is found and every process saves all
/// its pages.
#[derive(Debug, Default)]
pub struct CowPlan {
    /// Per child: the ranges it shares with its parent.
    pub with_parent: std::collections::HashMap<i32, Vec<(u64, u64)>>,
    /// Per parent: the ranges any child shares with it (read without pinning).
    pub with_children: std::collections::HashMap<i32, Vec<(u64, u64)>>,
}

impl CowPlan {
    /// Compare every (pid, ppid) pair of the tree whose parent is in it too.
    pub fn scan(procs: &[(i32, i32)]) -> CowPlan {
        let mut plan = CowPlan::default();
        if procs.len() < 2 {
            return plan;
        }
        // Each process's maps are read once, however many children it has.
        let maps: std::collections::HashMap<i32, Vec<stasis_procfs::maps::MapsEntry>> = procs
            .iter()
            .map(|&(p, _)| {
                let m = std::fs::read_to_string(format!("/proc/{p}/maps"))
                    .ok()
                    .and_then(|t| stasis_procfs::maps::parse_maps(&t).ok())
                    .unwrap_or_default();
                (p, m)
            })
            .collect();
        for &(pid, ppid) in procs {
            let (Some(mine), Some(theirs)) = (maps.get(&pid), maps.get(&ppid)) else {
                continue;
            };
            let ranges = shared_with_parent(pid, ppid, mine, theirs);
            if ranges.is_empty() {
                continue;
            }
            plan.with_children
                .entry(ppid)
                .or_default()
                .extend_from_slice(&ranges);
            plan.with_parent.insert(pid, ranges);
        }
        for v in plan.with_children.values_mut() {
            v.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
            for &(s, e) in v.iter() {
                match merged.last_mut() {
                    Some(m) if s <= m.1 => m.1 = m.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            *v = merged;
        }
        plan
    }

    /// Give each private mapping of child `pid` its shared ranges.
    pub fn mark(&self, pid: i32, vmas: &mut [VmaEntry]) {
        let Some(ranges) = self.with_parent.get(&pid) else {
            return;
        };
        for v in vmas
            .iter_mut()
            .filter(|v| matches!(v.kind, VmaKind::Anon | VmaKind::FilePrivate))
        {
            v.cow = ranges
                .iter()
                .filter(|r| r.0 >= v.start && r.1 <= v.end)
                .copied()
                .collect();
        }
    }
}

/// The page ranges child `pid` shares with `ppid`, over their identical private mappings
/// (`mine` and `theirs`: their /proc/PID/maps).
fn shared_with_parent(
    pid: i32,
    ppid: i32,
    mine: &[stasis_procfs::maps::MapsEntry],
    theirs: &[stasis_procfs::maps::MapsEntry],
) -> Vec<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const PFN: u64 = (1 << 55) - 1;
    let open = |p: i32| std::fs::File::open(format!("/proc/{p}/pagemap")).ok();
    let (Some(mine_f), Some(theirs_f)) = (open(pid), open(ppid)) else {
        return Vec::new();
    };
    let chunk_pages = 8192u64;
    let mut a = vec![0u8; (chunk_pages * 8) as usize];
    let mut b = vec![0u8; (chunk_pages * 8) as usize];
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for m in mine.iter().filter(|m| !m.shared) {
        if matches!(
            m.path.as_deref(),
            Some("[vdso]" | "[vvar]" | "[vvar_vclock]" | "[vsyscall]")
        ) {
            continue;
        }
        let same = theirs.iter().any(|q| {
            q.start == m.start
                && q.end == m.end
                && !q.shared
                && (q.read, q.write, q.exec) == (m.read, m.write, m.exec)
                && q.offset == m.offset
                && q.inode == m.inode
                && q.path == m.path
        });
        if !same {
            continue;
        }
        let mut page = m.start / PAGE_SIZE;
        let last = m.end / PAGE_SIZE;
        while page < last {
            let n = chunk_pages.min(last - page);
            let len = (n * 8) as usize;
            if mine_f.read_exact_at(&mut a[..len], page * 8).is_err()
                || theirs_f.read_exact_at(&mut b[..len], page * 8).is_err()
            {
                break;
            }
            for i in 0..n as usize {
                let x = u64::from_le_bytes(a[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                let y = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
                if x & PRESENT != 0 && y & PRESENT != 0 && x & PFN != 0 && x & PFN == y & PFN {
                    let at = (page + i as u64) * PAGE_SIZE;
                    match ranges.last_mut() {
                        Some(r) if r.1 == at => r.1 = at + PAGE_SIZE,
                        _ => ranges.push((at, at + PAGE_SIZE)),
                    }
                }
            }
            page += n;
        }
    }
    ranges
}

/// In a mapping kept from the restored parent (see [`CowPlan::mark`]), drop every page that is
/// not one the two share (MADV_DONTNEED: anonymous pages read zero again, private file pages
/// the file), so that only the process's own saved pages, written next, and the shared ones
/// remain.
pub fn drop_not_cow(t: &mut impl Tracee, v: &VmaEntry) -> Result<()> {
    let mut at = v.start;
    for &(s, e) in v.cow.iter().chain(std::iter::once(&(v.end, v.end))) {
        if s > at {
            t.syscall(
                "madvise(MADV_DONTNEED)",
                libc::SYS_madvise,
                [at, s - at, libc::MADV_DONTNEED as u64, 0, 0, 0],
            )
            .map_err(|source| MemoryError::Map {
                pid: t.pid(),
                start: at,
                end: s,
                what: "dropping the parent's pages".into(),
                source,
            })?;
        }
        at = at.max(e);
    }
    Ok(())
}

/// `regions` minus the `cow` ranges (both sorted by address).
fn without_cow(regions: &[PageRegion], cow: &[(u64, u64)], out: &mut Vec<PageRegion>) {
    let mut k = 0;
    for r in regions {
        let mut start = r.start;
        while k < cow.len() && cow[k].1 <= start {
            k += 1;
        }
        let mut j = k;
        while start < r.end {
            match cow.get(j) {
                Some(&(cs, ce)) if cs < r.end => {
                    if cs > start {
                        out.push(PageRegion {
                            start,
                            end: cs,
                            categories: r.categories,
                        });
                    }
                    start = start.max(ce);
                    j += 1;
                }
                _ => {
                    out.push(PageRegion {
                        start,
                        end: r.end,
                        categories: r.categories,
                    });
                    break;
                }
            }
        }
    }
}

/// Pages of shared memory objects already in the image, by object id (one flag per page of
/// the object), so that an object several processes of a tree map is saved once.
#[derive(Debug, Default)]
pub struct ShmemSeen(std::collections::HashMap<u64, Vec<bool>>);

/// The page ranges of `vmas` to save, in address order, with whether each may be read with
/// process_vm_readv (readable, and not shared copy-on-write with a child: `gentle`).
///
/// Private memory: the pages the process's page tables hold (PAGEMAP_SCAN). Shared memory
/// (MAP_SHARED|MAP_ANONYMOUS, SysV segments): every page the object holds (mincore of the
/// object, opened through /proc/PID/map_files), also those only another process ever touched
/// (a child that wrote a page and exited), minus what `seen` says is saved already.
pub fn pages_to_save(
    pid: i32,
    vmas: &[VmaEntry],
    seen: &mut ShmemSeen,
    gentle: &[(u64, u64)],
) -> Result<Vec<(PageRegion, bool)>> {
    let out = pages_to_save_all(pid, vmas, seen)?;
    if gentle.is_empty() {
        return Ok(out);
    }
    // Pages children share copy-on-write are read without pinning (see CowPlan).
    let mut split = Vec::with_capacity(out.len());
    for (r, fast) in out {
        let mut at = r.start;
        for &(s, e) in gentle.iter().filter(|g| g.1 > r.start && g.0 < r.end) {
            let (s, e) = (s.max(r.start), e.min(r.end));
            if s > at {
                split.push((page_region(at, s), fast));
            }
            split.push((page_region(s, e), false));
            at = e;
        }
        if at < r.end {
            split.push((page_region(at, r.end), fast));
        }
    }
    Ok(split)
}

fn pages_to_save_all(
    pid: i32,
    vmas: &[VmaEntry],
    seen: &mut ShmemSeen,
) -> Result<Vec<(PageRegion, bool)>> {
    let path = PathBuf::from(format!("/proc/{pid}/pagemap"));
    let f = std::fs::File::open(&path).map_err(|source| MemoryError::Open {
        pid,
        path: path.clone(),
        source,
    })?;
    let mut out = Vec::new();
    let mut regions = Vec::new();
    for v in vmas {
        let Some(q) = query_for(v.kind) else { continue };
        if has_flag(v, "dp") {
            // MAP_DROPPABLE: the kernel may drop these pages at any time; not saved.
            continue;
        }
        let readable = v.prot & libc::PROT_READ as u32 != 0;
        if let Some(id) = v.shmem.filter(|_| v.kind == VmaKind::SharedAnon) {
            if let Some(resident) = object_pages(pid, v) {
                let flags = seen.0.entry(id).or_default();
                let base = (v.pgoff / PAGE_SIZE) as usize;
                if flags.len() < base + resident.len() {
                    flags.resize(base + resident.len(), false);
                }
                let mut run: Option<u64> = None;
                for (i, r) in resident.iter().enumerate() {
                    let take = *r && !flags[base + i];
                    if take {
                        flags[base + i] = true;
                    }
                    let addr = v.start + i as u64 * PAGE_SIZE;
                    match (take, run) {
                        (true, None) => run = Some(addr),
                        (false, Some(a)) => {
                            out.push((page_region(a, addr), readable));
                            run = None;
                        }
                        _ => {}
                    }
                }
                if let Some(a) = run {
                    out.push((page_region(a, v.end), readable));
                }
                continue;
            }
        }
        regions.clear();
        pagemap::scan(&f, v.start, v.end, q, &mut regions).map_err(|source| MemoryError::Scan {
            pid,
            start: v.start,
            end: v.end,
            source,
        })?;
        if v.cow.is_empty() {
            out.extend(regions.iter().map(|r| (*r, readable)));
        } else {
            let mut own = Vec::new();
            without_cow(&regions, &v.cow, &mut own);
            out.extend(own.into_iter().map(|r| (r, readable)));
        }
    }
    Ok(out)
}

/// Record the guard pages (MADV_GUARD_INSTALL, Linux 6.13) of every VMA in `v.guards`: one
/// PAGEMAP_SCAN over the whole address space (guards are rare).
pub fn find_guards(pid: i32, vmas: &mut [VmaEntry]) -> Result<()> {
    use pagemap::*;
    if guard_bit() == 0 {
        return Ok(());
    }
    let path = PathBuf::from(format!("/proc/{pid}/pagemap"));
    let f = std::fs::File::open(&path).map_err(|source| MemoryError::Open {
        pid,
        path: path.clone(),
        source,
    })?;
    let q = ScanQuery {
        inverted: 0,
        required: PAGE_IS_GUARD,
        anyof: 0,
        returned: PAGE_IS_GUARD,
    };
    let mut regions = Vec::new();
    pagemap::scan(&f, 0, TASK_SIZE, q, &mut regions).map_err(|source| MemoryError::Scan {
        pid,
        start: 0,
        end: TASK_SIZE,
        source,
    })?;
    for r in regions {
        for v in vmas
            .iter_mut()
            .filter(|v| v.start < r.end && r.start < v.end)
        {
            v.guards.push((r.start.max(v.start), r.end.min(v.end)));
        }
    }
    Ok(())
}

/// PAGE_IS_GUARD where PAGEMAP_SCAN knows it (Linux 6.14), else 0: older kernels refuse the
/// whole scan (EINVAL) when a mask holds a bit they do not know. Probed once on our own
/// address space.
fn guard_bit() -> u64 {
    use pagemap::*;
    static BIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BIT.get_or_init(|| {
        let Ok(f) = std::fs::File::open("/proc/self/pagemap") else {
            return 0;
        };
        let q = ScanQuery {
            inverted: 0,
            required: PAGE_IS_GUARD,
            anyof: 0,
            returned: PAGE_IS_GUARD,
        };
        let mut out = Vec::new();
        let probe = &out as *const Vec<PageRegion> as u64 & !0xfff;
        match pagemap::scan(&f, probe, probe + 4096, q, &mut out) {
            Ok(_) => PAGE_IS_GUARD,
            Err(_) => 0,
        }
    })
}

fn page_region(start: u64, end: u64) -> PageRegion {
    PageRegion {
        start,
        end,
        categories: pagemap::PAGE_IS_PRESENT,
    }
}

/// The resident pages of the object behind a shared VMA, None when /proc/PID/map_files
/// cannot be opened (then the process's own page tables decide).
fn object_pages(pid: i32, v: &VmaEntry) -> Option<Vec<bool>> {
    let f = std::fs::File::open(format!("/proc/{pid}/map_files/{:x}-{:x}", v.start, v.end)).ok()?;
    match mem::resident_pages(&f, v.pgoff, v.len() as usize) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::debug!(pid, start = v.start, error = %e, "mincore of a shared object failed; using the page tables");
            None
        }
    }
}

/// Statistics of a page dump or restore.
#[derive(Debug, Default, Clone, Copy)]
pub struct PagesStats {
    pub pages: u64,
    /// Bytes of memory the pages hold.
    pub bytes: u64,
    /// Bytes they take in the page file (less when compressed).
    pub stored: u64,
}

/// One batch of pages on its way from the process to the page file.
struct Batch {
    buf: Vec<u8>,
    ranges: Vec<(u64, usize)>,
    used: usize,
}

/// Copy the pages of `regions` from `pid` into `writer`, building the page index. Two stages
/// overlap on two threads: this one reads batches out of the process, a writer thread appends
/// them to the page file, checksums them and starts their writeback. BUFFERS buffers circulate,
/// so memory stays bounded at BUFFERS x BATCH_BYTES whatever the process size.
pub fn dump_pages(
    t: &impl Tracee,
    pid: i32,
    regions: &[(PageRegion, bool)],
    writer: &mut PagesWriter,
    index: &mut PageIndexEntry,
    compress: bool,
    progress: Option<&std::sync::atomic::AtomicU64>,
) -> Result<PagesStats> {
    // Split every region into runs of at most RUN_PAGES.
    let mut runs: Vec<(u64, u64, bool)> = Vec::new();
    for (r, readable) in regions {
        let mut a = r.start;
        while a < r.end {
            let e = (a + RUN_PAGES * PAGE_SIZE).min(r.end);
            runs.push((a, e, *readable));
            a = e;
        }
    }
    // Buffers are fresh memory, slow to fault in: a small process gets small ones (at least
    // one run each), so that it pays for little more than its own pages.
    let total: u64 = runs.iter().map(|r| r.1 - r.0).sum();
    let batch = (total / 8)
        .clamp(RUN_PAGES * PAGE_SIZE, BATCH_BYTES as u64)
        .next_multiple_of(PAGE_SIZE) as usize;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch>(BUFFERS);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..BUFFERS {
        empty_tx.send(vec![0u8; batch]).expect("receiver alive");
    }
    let out = &mut index.runs;
    std::thread::scope(|sc| {
        let writing = sc.spawn(move || -> Result<PagesStats> {
            let mut stats = PagesStats::default();
            let mut packed = Vec::new();
            // Writeback of what was written is started every batch (at most WRITEBACK_CHUNK
            // bytes): the disk works while we copy, and the final fsync has little left to
            // wait for, however small the process.
            let mut wb_from = writer.len();
            for b in full_rx {
                let data = &b.buf[..b.used];
                let mut off = 0usize;
                for &(addr, len) in &b.ranges {
                    let raw = &data[off..off + len];
                    let crc32c = stasis_image::checksum(raw);
                    let lz4 = if compress {
                        codec::compress(raw, &mut packed)
                    } else {
                        None
                    };
                    let stored = match lz4 {
                        Some(n) => &packed[..n],
                        None => raw,
                    };
                    let at = writer.append(stored)?;
                    if writer.len() - wb_from >= WRITEBACK_CHUNK.min(batch) as u64 {
                        let _ = stasis_sys::mem::start_writeback(
                            writer.file(),
                            wb_from,
                            writer.len() - wb_from,
                        );
                        wb_from = writer.len();
                    }
                    out.push(PageRun {
                        vaddr: addr,
                        pages: (len as u64 / PAGE_SIZE) as u32,
                        offset: at,
                        crc32c,
                        lz4_len: lz4.unwrap_or(0) as u32,
                    });
                    stats.stored += stored.len() as u64;
                    off += len;
                }
                stats.pages += b.used as u64 / PAGE_SIZE;
                stats.bytes += b.used as u64;
                if let Some(p) = progress {
                    p.fetch_add(b.used as u64, std::sync::atomic::Ordering::Relaxed);
                }
                // The reader may be gone after an error; then nothing needs the buffer.
                let _ = empty_tx.send(b.buf);
            }
            let _ =
                stasis_sys::mem::start_writeback(writer.file(), wb_from, writer.len() - wb_from);
            Ok(stats)
        });
        let read = (|| -> Result<()> {
            let mut i = 0;
            while i < runs.len() {
                let Ok(mut buf) = empty_rx.recv() else {
                    return Ok(()); // the writer failed; its error is reported below
                };
                let mut ranges = Vec::new();
                let mut used = 0usize;
                let readable = runs[i].2;
                while i < runs.len() && runs[i].2 == readable && ranges.len() < mem::IOV_MAX {
                    let len = (runs[i].1 - runs[i].0) as usize;
                    if used + len > buf.len() {
                        break;
                    }
                    ranges.push((runs[i].0, len));
                    used += len;
                    i += 1;
                }
                read_batch(t, pid, readable, &mut buf[..used], &ranges)?;
                if full_tx.send(Batch { buf, ranges, used }).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        })();
        drop(full_tx);
        let written = writing.join().expect("page writer thread panicked");
        read?;
        written
    })
}

/// Fill `data` from the ranges of the process: one process_vm_readv, or /proc/PID/mem for
/// unreadable mappings and after a short read.
fn read_batch(
    t: &impl Tracee,
    pid: i32,
    readable: bool,
    data: &mut [u8],
    ranges: &[(u64, usize)],
) -> Result<()> {
    if readable {
        let n = mem::read_ranges(Pid::from_raw(pid), data, ranges).map_err(|source| {
            MemoryError::Read {
                pid,
                addr: ranges[0].0,
                len: data.len(),
                source,
            }
        })?;
        if n == data.len() {
            return Ok(());
        }
    }
    let mut off = 0;
    for &(addr, len) in ranges {
        t.read_mem(addr, &mut data[off..off + len])?;
        off += len;
    }
    Ok(())
}

/// The readable and executable ranges of `vmas` a syscall instruction may be taken from
/// (not [vsyscall]: the kernel emulates its few entry points, it runs nothing of it).
pub fn executable(vmas: &[VmaEntry]) -> Vec<(u64, u64)> {
    let rx = (libc::PROT_READ | libc::PROT_EXEC) as u32;
    vmas.iter()
        .filter(|v| v.prot & rx == rx && v.kind != VmaKind::Vsyscall)
        .map(|v| (v.start, v.end))
        .collect()
}

/// Where a special mapping is in the skeleton and where the image wants it.
#[derive(Debug, Clone, Copy)]
pub struct SpecialMove {
    pub kind: VmaKind,
    pub from: u64,
    pub to: u64,
    pub len: u64,
}

/// Plan moving the skeleton's [vvar]/[vvar_vclock]/[vdso] to the image's addresses. An
/// image without any of them (the process unmapped its vDSO) gets them parked together, in
/// their layout, where the image has nothing: restore drives the process through them until
/// its own memory is back, then unmaps them ([`saved_without_vdso`]).
pub fn plan_specials(here: &[VmaEntry], saved: &[VmaEntry]) -> Result<Vec<SpecialMove>> {
    let mut moves = Vec::new();
    if saved_without_vdso(saved) {
        let mine: Vec<&VmaEntry> = here
            .iter()
            .filter(|v| matches!(v.kind, VmaKind::Vvar | VmaKind::VvarVclock | VmaKind::Vdso))
            .collect();
        let (Some(lo), Some(hi)) = (
            mine.iter().map(|v| v.start).min(),
            mine.iter().map(|v| v.end).max(),
        ) else {
            return Ok(moves);
        };
        let at =
            free_range(saved, &[], hi - lo, 0x1_0000_0000).ok_or(MemoryError::VdsoMismatch {
                name: "free space to park the vDSO".into(),
                saved: hi - lo,
                here: 0,
            })?;
        for v in mine {
            moves.push(SpecialMove {
                kind: v.kind,
                from: v.start,
                to: at + (v.start - lo),
                len: v.len(),
            });
        }
        return Ok(moves);
    }
    for kind in [VmaKind::Vvar, VmaKind::VvarVclock, VmaKind::Vdso] {
        let h = here.iter().find(|v| v.kind == kind);
        let s = saved.iter().find(|v| v.kind == kind);
        match (h, s) {
            (Some(h), Some(s)) => {
                if h.len() != s.len() {
                    return Err(MemoryError::VdsoMismatch {
                        name: format!("{kind:?}"),
                        saved: s.len(),
                        here: h.len(),
                    });
                }
                moves.push(SpecialMove {
                    kind,
                    from: h.start,
                    to: s.start,
                    len: h.len(),
                });
            }
            (None, None) => {}
            (h, s) => {
                return Err(MemoryError::VdsoMismatch {
                    name: format!("{kind:?}"),
                    saved: s.map_or(0, |v| v.len()),
                    here: h.map_or(0, |v| v.len()),
                })
            }
        }
    }
    Ok(moves)
}

/// Whether the image's process had no vDSO, [vvar] or [vvar_vclock] (it unmapped them).
pub fn saved_without_vdso(saved: &[VmaEntry]) -> bool {
    !saved
        .iter()
        .any(|v| matches!(v.kind, VmaKind::Vvar | VmaKind::VvarVclock | VmaKind::Vdso))
}

/// A free range of `len` bytes in the image's layout, avoiding `also` (addresses in use now).
pub fn free_range(saved: &[VmaEntry], also: &[(u64, u64)], len: u64, from: u64) -> Option<u64> {
    let mut used: Vec<(u64, u64)> = saved.iter().map(|v| (v.start, v.end)).collect();
    used.extend_from_slice(also);
    used.sort();
    let mut cand = from;
    for (s, e) in used {
        if e <= cand {
            continue;
        }
        if s >= cand + len {
            return Some(cand);
        }
        cand = cand.max(e);
    }
    (cand + len <= TASK_SIZE).then_some(cand)
}

/// Top of the x86_64 4-level user address space.
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// Move the skeleton's special mappings to the image's addresses: each piece goes to a free
/// temporary place first when its target overlaps where any piece is now.
pub fn move_specials(t: &mut impl Tracee, moves: &[SpecialMove], saved: &[VmaEntry]) -> Result<()> {
    let pid = t.pid();
    let now: Vec<(u64, u64)> = moves.iter().map(|m| (m.from, m.from + m.len)).collect();
    let overlaps = moves.iter().any(|m| {
        now.iter()
            .any(|&(s, e)| m.to < e && s < m.to + m.len && (m.to != s))
    });
    let mut cur: Vec<u64> = moves.iter().map(|m| m.from).collect();
    if overlaps {
        let total: u64 = moves.iter().map(|m| m.len).sum();
        let tmp =
            free_range(saved, &now, total, 0x1_0000_0000).ok_or(MemoryError::VdsoMismatch {
                name: "free space for the vDSO move".into(),
                saved: total,
                here: 0,
            })?;
        let mut at = tmp;
        for (i, m) in moves.iter().enumerate() {
            mremap(t, cur[i], m.len, at).map_err(|e| seal_or(pid, m, e))?;
            cur[i] = at;
            at += m.len;
        }
    }
    for (i, m) in moves.iter().enumerate() {
        if cur[i] != m.to {
            mremap(t, cur[i], m.len, m.to).map_err(|e| seal_or(pid, m, e))?;
        }
    }
    Ok(())
}

fn seal_or(pid: i32, m: &SpecialMove, e: TraceeError) -> MemoryError {
    if let TraceeError::Syscall {
        source: Errno::EPERM,
        ..
    } = e
    {
        return MemoryError::Sealed { pid };
    }
    MemoryError::Map {
        pid,
        start: m.to,
        end: m.to + m.len,
        what: format!("moving {:?}", m.kind),
        source: e,
    }
}

fn mremap(t: &mut impl Tracee, from: u64, len: u64, to: u64) -> Result<u64, TraceeError> {
    t.syscall(
        "mremap",
        libc::SYS_mremap,
        [
            from,
            len,
            len,
            (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
            to,
            0,
        ],
    )
}

/// Map one saved VMA at its address. `fd` is the tracee's fd of the mapped file.
pub fn map_vma(t: &mut impl Tracee, v: &VmaEntry, fd: Option<i32>) -> Result<()> {
    let pid = t.pid();
    let mut flags = v.flags as u64 | libc::MAP_FIXED as u64;
    if fd.is_some() {
        // Shared anonymous memory is mapped from the one shmem object restore made for it.
        flags &= !(libc::MAP_ANONYMOUS as u64);
    }
    let (fd, off) = match fd {
        Some(fd) => (fd as u64, v.pgoff),
        None => (u64::MAX, 0),
    };
    t.syscall(
        "mmap",
        libc::SYS_mmap,
        [v.start, v.len(), v.prot as u64, flags, fd, off],
    )
    .map_err(|source| MemoryError::Map {
        pid,
        start: v.start,
        end: v.end,
        what: format!("{:?} {}", v.kind, v.path.as_deref().unwrap_or("")),
        source,
    })?;
    Ok(())
}

/// The page file of a process being restored.
pub struct PageSource<'a> {
    pub file: &'a std::fs::File,
    pub len: u64,
    pub path: &'a std::path::Path,
}

/// Bytes of the page file mapped at once on restore.
const WINDOW: u64 = 64 << 20;

/// Write the saved pages of `index` into the process, verifying each run's checksum first.
/// The page file is mapped a window at a time and pages are copied from the page cache
/// straight into the process: `process_vm_writev` for writable VMAs, `/proc/PID/mem` for the
/// others.
pub fn restore_pages(
    t: &mut impl Tracee,
    vmas: &[VmaEntry],
    index: &PageIndexEntry,
    src: &PageSource,
) -> Result<PagesStats> {
    let pid = t.pid();
    let path = src.path;
    let mut stats = PagesStats::default();
    let mut vi = 0;
    let mut i = 0;
    let runs = &index.runs;
    while i < runs.len() {
        // The window: consecutive runs whose bytes fit in WINDOW.
        let start = runs[i].offset & !(PAGE_SIZE - 1);
        let mut j = i;
        let mut end = start;
        while j < runs.len() {
            let r_end = runs[j].offset + runs[j].stored_len();
            if runs[j].offset < start || (j > i && r_end - start > WINDOW) {
                break;
            }
            end = end.max(r_end);
            j += 1;
        }
        if end > src.len || j == i {
            return Err(MemoryError::BadRun {
                path: path.to_path_buf(),
                vaddr: runs[i].vaddr,
            });
        }
        let map = stasis_sys::mem::map_readonly(src.file, start, (end - start) as usize).map_err(
            |source| MemoryError::Open {
                pid,
                path: path.to_path_buf(),
                source,
            },
        )?;
        let mut local: Vec<&[u8]> = Vec::new();
        let mut unpacked = Vec::new();
        let mut remote: Vec<(u64, usize)> = Vec::new();
        let mut pending = 0usize;
        for run in &runs[i..j] {
            let len = run.pages as usize * PAGE_SIZE as usize;
            let off = (run.offset - start) as usize;
            let stored = &map[off..off + run.stored_len() as usize];
            let corrupt = || MemoryError::Corrupt {
                path: path.to_path_buf(),
                vaddr: run.vaddr,
                offset: run.offset,
            };
            while vi < vmas.len() && vmas[vi].end <= run.vaddr {
                vi += 1;
            }
            let Some(v) = vmas
                .get(vi)
                .filter(|v| v.start <= run.vaddr && run.vaddr + len as u64 <= v.end)
            else {
                return Err(MemoryError::BadRun {
                    path: path.to_path_buf(),
                    vaddr: run.vaddr,
                });
            };
            let writable = v.prot & libc::PROT_WRITE as u32 != 0;
            if run.lz4_len == 0 {
                // Raw: straight from the page cache into the process, batched.
                let data = stored;
                if data.len() != len || stasis_image::checksum(data) != run.crc32c {
                    return Err(corrupt());
                }
                if writable {
                    if remote.len() == mem::IOV_MAX {
                        write_batch(pid, &mut local, &mut remote, &mut pending)?;
                    }
                    local.push(data);
                    remote.push((run.vaddr, len));
                    pending += len;
                } else {
                    t.write_mem(run.vaddr, data)?;
                }
            } else {
                let data = codec::decode(run, stored, &mut unpacked).map_err(|_| corrupt())?;
                if writable {
                    let mut one: Vec<&[u8]> = vec![data];
                    let mut at = vec![(run.vaddr, len)];
                    let mut n = len;
                    write_batch(pid, &mut one, &mut at, &mut n)?;
                } else {
                    t.write_mem(run.vaddr, data)?;
                }
            }
            stats.pages += run.pages as u64;
            stats.bytes += len as u64;
            stats.stored += run.stored_len();
        }
        write_batch(pid, &mut local, &mut remote, &mut pending)?;
        i = j;
    }
    Ok(stats)
}

/// One `process_vm_writev` of everything batched so far.
fn write_batch(
    pid: i32,
    local: &mut Vec<&[u8]>,
    remote: &mut Vec<(u64, usize)>,
    pending: &mut usize,
) -> Result<()> {
    if remote.is_empty() {
        return Ok(());
    }
    let n = mem::write_ranges(Pid::from_raw(pid), local, remote).map_err(|source| {
        MemoryError::Write {
            pid,
            addr: remote[0].0,
            len: *pending,
            source,
        }
    })?;
    if n != *pending {
        return Err(MemoryError::Write {
            pid,
            addr: remote[0].0,
            len: *pending,
            source: Errno::EFAULT,
        });
    }
    local.clear();
    remote.clear();
    *pending = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_without_cow_ranges() {
        let r = |s: u64, e: u64| PageRegion {
            start: s,
            end: e,
            categories: 0,
        };
        let mut out = Vec::new();
        without_cow(
            &[r(0, 10), r(20, 30), r(40, 50)],
            &[(5, 8), (9, 22), (25, 26), (45, 60)],
            &mut out,
        );
        let got: Vec<(u64, u64)> = out.iter().map(|x| (x.start, x.end)).collect();
        assert_eq!(got, vec![(0, 5), (8, 9), (22, 25), (26, 30), (40, 45)]);
        out.clear();
        without_cow(&[r(0, 10)], &[], &mut out);
        assert_eq!((out[0].start, out[0].end), (0, 10));
    }

    fn vma(start: u64, end: u64, kind: VmaKind) -> VmaEntry {
        VmaEntry {
            start,
            end,
            prot: 3,
            flags: 2,
            kind,
            pgoff: 0,
            path: None,
            file_id: None,
            shmem: None,
            sysv: None,
            cow: Vec::new(),
            guards: Vec::new(),
            aio: None,
            vm_flags: vec![],
        }
    }

    #[test]
    fn free_range_finds_gaps() {
        let saved = [
            vma(0x10000, 0x20000, VmaKind::Anon),
            vma(0x30000, 0x40000, VmaKind::Anon),
        ];
        assert_eq!(free_range(&saved, &[], 0x1000, 0x10000), Some(0x20000));
        assert_eq!(
            free_range(&saved, &[(0x20000, 0x30000)], 0x1000, 0x10000),
            Some(0x40000)
        );
        assert_eq!(free_range(&saved, &[], 0x20000, 0x10000), Some(0x40000));
    }

    #[test]
    fn specials_must_match_in_size() {
        let here = [vma(0x1000, 0x3000, VmaKind::Vdso)];
        let saved = [vma(0x5000, 0x8000, VmaKind::Vdso)];
        assert!(matches!(
            plan_specials(&here, &saved),
            Err(MemoryError::VdsoMismatch { .. })
        ));
        let saved = [vma(0x5000, 0x7000, VmaKind::Vdso)];
        let m = plan_specials(&here, &saved).unwrap();
        assert_eq!((m[0].from, m[0].to, m[0].len), (0x1000, 0x5000, 0x2000));
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    /// Real /proc/PID/smaps lines of a dynamically linked program (trimmed to the fields the
    /// parser needs).
    const SMAPS: &str = "\
55f1c0a00000-55f1c0a01000 r--p 00000000 fe:01 1234 /usr/bin/prog
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me sd
55f1c0a01000-55f1c0a02000 rw-p 00001000 fe:01 1234 /usr/bin/prog
Rss:                   4 kB
Anonymous:             4 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac sd
55f1c1000000-55f1c1021000 rw-p 00000000 00:00 0 [heap]
Rss:                   8 kB
Anonymous:             8 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac sd
7f0000000000-7f0000100000 rw-s 00000000 00:01 99 /dev/zero (deleted)
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd wr sh mr mw me ms sd
7f0000100000-7f0000103000 rw-s 00000000 00:01 100 /memfd:wl (deleted)
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd wr sh mr mw me ms sd
7f0000200000-7f0000201000 rw-s 00000000 fe:01 555 /tmp/shared.bin
Rss:                   0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd wr sh mr mw me ms sd
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Rss:                  12 kB
Anonymous:            12 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me gd ac
7ffd001fe000-7ffd00200000 r-xp 00000000 00:00 0 [vdso]
Rss:                   4 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me de sd
";

    #[test]
    fn classify_real_smaps() {
        let smaps = stasis_procfs::smaps::parse_smaps(SMAPS).unwrap();
        let v = classify(&smaps);
        let kinds: Vec<VmaKind> = v.iter().map(|v| v.kind).collect();
        use VmaKind::*;
        assert_eq!(
            kinds,
            [
                FilePrivate,
                FilePrivate,
                Anon,
                SharedAnon,
                FileShared,
                FileShared,
                Anon,
                Vdso
            ]
        );
        assert_eq!(v[1].pgoff, 0x1000);
        assert_eq!(v[1].prot, (libc::PROT_READ | libc::PROT_WRITE) as u32);
        assert!(
            v[6].flags & libc::MAP_GROWSDOWN as u32 != 0,
            "the stack grows down"
        );
        assert!(v[3].flags & libc::MAP_ANONYMOUS as u32 != 0);
        // The memfd mapping must be tied to an fd of the same inode...
        let mut v2 = v.clone();
        link_deleted(1, &smaps, &mut v2, &[(7, 100)]).unwrap();
        assert_eq!(v2[4].file_id, Some(7));
        // ...or the dump fails naming it.
        let e = link_deleted(1, &smaps, &mut v.clone(), &[]).unwrap_err();
        assert!(e.to_string().contains("/memfd:wl"), "{e}");
    }
}
