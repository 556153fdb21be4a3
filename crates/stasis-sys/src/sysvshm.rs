//! SysV shared memory segments of our IPC namespace: create one with a chosen id (through
//! /proc/sys/kernel/shm_next_id), set its owner and mode, remove it. Hand-written because no
//! maintained crate wraps shmctl's struct shmid_ds.

use crate::{Errno, SysResult};

/// `shmget(key, size, IPC_CREAT|IPC_EXCL|mode)` with the next id forced to `id`
/// (/proc/sys/kernel/shm_next_id, which the kernel resets after one use). Returns the id the
/// kernel gave, which the caller must compare with `id`.
pub fn create_with_id(id: i32, key: i32, size: u64, mode: u32) -> std::io::Result<i32> {
    std::fs::write("/proc/sys/kernel/shm_next_id", id.to_string())?;
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::shmget(
            key,
            size as usize,
            libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32,
        )
    };
    let res = if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    };
    // Never leave a forced id behind for somebody else's shmget.
    let _ = std::fs::write("/proc/sys/kernel/shm_next_id", "-1");
    res
}

/// What shmctl(IPC_STAT) says of a segment: (key, size, attach count, mode).
pub fn stat(id: i32) -> SysResult<(i32, u64, u64, u32)> {
    // SAFETY: shmid_ds is plain data; the kernel fills it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    let r = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok((
        ds.shm_perm.__key,
        ds.shm_segsz as u64,
        ds.shm_nattch,
        ds.shm_perm.mode as u32,
    ))
}

/// shmctl(IPC_SET): owner, group and permission bits.
pub fn set_owner_mode(id: i32, uid: u32, gid: u32, mode: u32) -> SysResult<()> {
    // SAFETY: shmid_ds is plain data.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } < 0 {
        return Err(Errno::last());
    }
    ds.shm_perm.uid = uid;
    ds.shm_perm.gid = gid;
    ds.shm_perm.mode = (mode & 0o777) as _;
    // SAFETY: `ds` is a valid shmid_ds the kernel reads.
    if unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// shmctl(IPC_RMID): the segment goes when its last attach does.
pub fn remove(id: i32) -> SysResult<()> {
    // SAFETY: IPC_RMID takes no buffer.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
