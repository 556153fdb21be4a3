//! SysV shared memory (shmget/shmat): the segments a tree attaches, with their ids, keys,
//! owners and modes. Dump reads them from /proc/sysvipc/shm for every "/SYSVkkkkkkkk" mapping
//! (the segment's pages go with the process memory, saved once per segment). Restore
//! recreates each segment with its id before any process exists ([`Segments::recreate`]),
//! attaches it in each process where it was ([`attach`]), and removes again the segments that
//! had been removed while attached once everything is attached ([`Segments::finish`]).
//!
//! A segment of the same id and key left behind by the dumped tree (killed processes do not
//! remove their segments) is replaced by the image's; one that processes still attach, or
//! another segment holding the id or key, makes restore fail with an error naming it. The
//! creator uid/gid become the restorer's (the kernel sets them); read-only attaches come back
//! read-only but may be made writable again with mprotect (the kernel's SHM_RDONLY also
//! forbids that).

use crate::kinds::memory::MemoryError;
use crate::tracee::Tracee;
use stasis_image::{Image, SysvShmEntry, VmaEntry, VmaKind, PAGE_SIZE};
use stasis_sys::{sysvshm, Errno};
use std::path::PathBuf;

type Result<T, E = MemoryError> = std::result::Result<T, E>;

/// Fill in the segment of every SysV shared memory attach (shown as "/SYSVkkkkkkkk" in maps,
/// the inode being the segment id) from /proc/sysvipc/shm, which lists the segments of our
/// own IPC namespace: a process in another one is refused.
pub fn link(pid: i32, vmas: &mut [VmaEntry]) -> Result<()> {
    let is_sysv = |v: &VmaEntry| {
        v.kind == VmaKind::SharedAnon && v.path.as_deref().is_some_and(|p| p.starts_with("/SYSV"))
    };
    let Some(first) = vmas.iter().find(|v| is_sysv(v)) else {
        return Ok(());
    };
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/ipc")).ok();
    if ns(&pid.to_string()) != ns("self") {
        return Err(MemoryError::SysvForeignNamespace {
            pid,
            start: first.start,
        });
    }
    let path = PathBuf::from("/proc/sysvipc/shm");
    let text =
        std::fs::read_to_string(&path).map_err(|source| MemoryError::Open { pid, path, source })?;
    let segs = stasis_procfs::sysvipc::parse_shm(&text).unwrap_or_default();
    for v in vmas.iter_mut().filter(|v| is_sysv(v)) {
        let id = v.shmem.unwrap_or(0) as i32;
        let seg = segs
            .iter()
            .find(|s| s.id == id)
            .ok_or(MemoryError::SysvUnknown {
                pid,
                start: v.start,
                id,
            })?;
        v.sysv = Some(SysvShmEntry {
            id,
            key: seg.key,
            size: seg.size,
            mode: seg.mode & 0o777,
            uid: seg.uid,
            gid: seg.gid,
            cuid: seg.cuid,
            cgid: seg.cgid,
            destroyed: seg.mode & 0o1000 != 0,
        });
    }
    Ok(())
}

/// Attach the SysV segment of `vmas[i]` where it was (shmat in the process), unless the
/// VMA continues the attach of the one before it (an attach split by mprotect). The attach
/// is read-write: restore writes the pages through it, then [`protect_shared`] sets the
/// saved protection.
pub fn attach(t: &mut impl Tracee, vmas: &[VmaEntry], i: usize) -> Result<()> {
    let v = &vmas[i];
    let Some(seg) = &v.sysv else { return Ok(()) };
    if i > 0 {
        let p = &vmas[i - 1];
        if p.sysv.as_ref().map(|s| s.id) == Some(seg.id)
            && p.end == v.start
            && p.pgoff + p.len() == v.pgoff
        {
            return Ok(());
        }
    }
    let pid = t.pid();
    if v.pgoff != 0 {
        return Err(MemoryError::SysvPartial {
            pid,
            start: v.start,
            pgoff: v.pgoff,
        });
    }
    let map_err = |what: &str, source| MemoryError::Map {
        pid,
        start: v.start,
        end: v.end,
        what: format!("SysV shared memory segment {} ({what})", seg.id),
        source,
    };
    // The run of VMAs this attach covers.
    let mut end = v.end;
    let mut exec = v.prot & libc::PROT_EXEC as u32 != 0;
    for w in &vmas[i + 1..] {
        if w.sysv.as_ref().map(|s| s.id) != Some(seg.id) || w.start != end {
            break;
        }
        exec |= w.prot & libc::PROT_EXEC as u32 != 0;
        end = w.end;
    }
    let flags = if exec { libc::SHM_EXEC as u64 } else { 0 };
    t.syscall(
        "shmat",
        libc::SYS_shmat,
        [seg.id as u64, v.start, flags, 0, 0, 0],
    )
    .map_err(|e| map_err("shmat", e))?;
    // shmat maps the whole segment; a tail the process had detached goes again.
    let full = v.start + seg.size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    if end < full {
        t.syscall("munmap", libc::SYS_munmap, [end, full - end, 0, 0, 0, 0])
            .map_err(|e| map_err("munmap of the detached tail", e))?;
    }
    Ok(())
}

/// The segments a restore created; removed again if the restore fails.
pub struct Segments {
    created: Vec<i32>,
    destroyed: Vec<i32>,
}

impl Segments {
    /// Recreate every segment the image's processes attach, with its id, key, size, owner
    /// and mode.
    pub fn recreate(img: &Image) -> Result<Segments> {
        let mut segs: Vec<&SysvShmEntry> = Vec::new();
        for s in img
            .processes
            .iter()
            .flat_map(|p| &p.vmas)
            .filter_map(|v| v.sysv.as_ref())
        {
            if !segs.iter().any(|t| t.id == s.id) {
                segs.push(s);
            }
        }
        let mut out = Segments {
            created: Vec::new(),
            destroyed: Vec::new(),
        };
        for s in segs {
            out.make(s)?;
            if s.destroyed {
                out.destroyed.push(s.id);
            }
        }
        Ok(out)
    }

    fn make(&mut self, s: &SysvShmEntry) -> Result<()> {
        let taken = |why: String| MemoryError::SysvTaken {
            id: s.id,
            key: s.key,
            why,
        };
        match sysvshm::stat(s.id) {
            Ok((key, size, nattch, _)) => {
                if key != s.key || size != s.size {
                    return Err(taken(format!(
                        "the id is taken by another segment (key {key:#x}, {size} bytes); remove it (ipcrm -m {}) or restore in a fresh IPC namespace",
                        s.id
                    )));
                }
                if nattch > 0 {
                    return Err(taken(format!(
                        "the segment of the dumped tree is still attached by {nattch} running process(es); stop them first"
                    )));
                }
                // What the killed tree left behind: the image has its contents.
                sysvshm::remove(s.id).map_err(|e| MemoryError::Sysv {
                    id: s.id,
                    what: "removing the leftover segment".into(),
                    source: e.into(),
                })?;
            }
            Err(Errno::EINVAL | Errno::EIDRM) => {}
            Err(e) => {
                return Err(MemoryError::Sysv {
                    id: s.id,
                    what: "IPC_STAT".into(),
                    source: e.into(),
                })
            }
        }
        let got = sysvshm::create_with_id(s.id, if s.destroyed { 0 } else { s.key }, s.size, s.mode)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::EEXIST) {
                    taken(format!(
                        "another segment has the key; remove it (ipcrm -M {:#x}) first",
                        s.key
                    ))
                } else {
                    MemoryError::Sysv {
                        id: s.id,
                        what: "shmget with the saved id (needs CAP_SYS_ADMIN for /proc/sys/kernel/shm_next_id)".into(),
                        source: e,
                    }
                }
            })?;
        self.created.push(got);
        if got != s.id {
            return Err(taken(format!("the kernel gave id {got} instead")));
        }
        sysvshm::set_owner_mode(s.id, s.uid, s.gid, s.mode).map_err(|e| MemoryError::Sysv {
            id: s.id,
            what: "IPC_SET of owner and mode".into(),
            source: e.into(),
        })?;
        Ok(())
    }

    /// Every process has attached: segments removed while attached are removed again (they
    /// live on until their last detach), and the rest stay.
    pub fn finish(mut self) -> Result<()> {
        for &id in &self.destroyed {
            sysvshm::remove(id).map_err(|e| MemoryError::Sysv {
                id,
                what: "IPC_RMID".into(),
                source: e.into(),
            })?;
        }
        self.created.clear();
        Ok(())
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        for &id in &self.created {
            let _ = sysvshm::remove(id);
        }
    }
}
