//! Cross-process memory: `process_vm_readv`/`process_vm_writev` over many ranges at once.

use crate::{Errno, Pid, SysResult};

/// Read the remote ranges `remote` (address, length) of `pid` into `local`, which must be at
/// least as long as their sum. Returns the bytes read (short on a fault inside a range).
/// See [process_vm_readv(2)](https://man7.org/linux/man-pages/man2/process_vm_readv.2.html).
pub fn read_ranges(pid: Pid, local: &mut [u8], remote: &[(u64, usize)]) -> SysResult<usize> {
    let total: usize = remote.iter().map(|r| r.1).sum();
    assert!(local.len() >= total, "local buffer too small");
    let liov = libc::iovec {
        iov_base: local.as_mut_ptr().cast(),
        iov_len: total,
    };
    let riov: Vec<libc::iovec> = remote
        .iter()
        .map(|&(addr, len)| libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    // SAFETY: `liov` covers `local`, writable for `total` bytes; remote iovecs are only
    // interpreted in the target's address space.
    let r = unsafe {
        libc::process_vm_readv(
            pid.as_raw(),
            &liov,
            1,
            riov.as_ptr(),
            riov.len() as libc::c_ulong,
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// Write `local` slices to the remote ranges `remote` of `pid`: the bytes of all `local`
/// slices, in order, fill the remote ranges, in order. Returns the bytes written.
/// See [process_vm_writev(2)](https://man7.org/linux/man-pages/man2/process_vm_writev.2.html).
pub fn write_ranges(pid: Pid, local: &[&[u8]], remote: &[(u64, usize)]) -> SysResult<usize> {
    let liov: Vec<libc::iovec> = local
        .iter()
        .map(|s| libc::iovec {
            iov_base: s.as_ptr() as *mut libc::c_void,
            iov_len: s.len(),
        })
        .collect();
    let riov: Vec<libc::iovec> = remote
        .iter()
        .map(|&(addr, len)| libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    // SAFETY: local iovecs point into live slices that the kernel only reads; remote iovecs
    // are interpreted in the target's address space.
    let r = unsafe {
        libc::process_vm_writev(
            pid.as_raw(),
            liov.as_ptr(),
            liov.len() as libc::c_ulong,
            riov.as_ptr(),
            riov.len() as libc::c_ulong,
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// Maximum number of iovecs a single vectored call accepts.
pub const IOV_MAX: usize = 1024;

/// Map `len` bytes of a file from `offset` (page-aligned) read-only into our address space
/// (restore reads page files this way so pages go from the page cache into the target with a
/// single copy, a window at a time so our own footprint stays bounded).
pub fn map_readonly(
    file: &std::fs::File,
    offset: u64,
    len: usize,
) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: memmap2 requires that the file is not modified while mapped; callers map image
    // files, which are never written after they are made durable.
    unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)
    }
}

/// `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`—Start writeback of a range now,
/// without waiting, so the final fsync of an image has little left to do.
/// See [sync_file_range(2)](https://man7.org/linux/man-pages/man2/sync_file_range.2.html).
pub fn start_writeback(fd: &impl std::os::fd::AsRawFd, offset: u64, len: u64) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::sync_file_range(
            fd.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A new shared anonymous memory object (what `mmap(MAP_SHARED|MAP_ANONYMOUS)` creates, shown
/// as "/dev/zero (deleted)" in maps) of `len` bytes, as an fd other processes can map it from:
/// mapped here, reopened through /proc/self/map_files (needs CAP_SYS_ADMIN or
/// CAP_CHECKPOINT_RESTORE), unmapped again.
pub fn shared_anon_fd(len: usize) -> std::io::Result<std::os::fd::OwnedFd> {
    // SAFETY: a fresh shared anonymous mapping at an address the kernel picks; nothing else
    // refers to it, and it is unmapped below before returning.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let start = addr as usize;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!(
            "/proc/self/map_files/{:x}-{:x}",
            start,
            start + len
        ));
    // SAFETY: unmapping exactly the mapping made above, which no reference points into.
    unsafe { libc::munmap(addr, len) };
    Ok(file?.into())
}

/// Which pages of a shared memory object (`fd`, a shmem file or a SysV segment opened through
/// /proc/PID/map_files) are in memory, from `offset` for `len` bytes (both page-aligned): one
/// bool per page. The object is mapped here read-only for mincore(2) and unmapped again;
/// mincore reports the object's pages, whichever process faulted them in.
pub fn resident_pages(
    fd: &impl std::os::fd::AsRawFd,
    offset: u64,
    len: usize,
) -> std::io::Result<Vec<bool>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: a fresh read-only shared mapping at an address the kernel picks; nothing else
    // refers to it, and it is unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: `addr..addr+len` is the mapping made above; `vec` holds one byte per page.
    let r = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: unmapping exactly the mapping made above.
    unsafe { libc::munmap(addr, len) };
    if r < 0 {
        return Err(err);
    }
    Ok(vec.into_iter().map(|b| b & 1 != 0).collect())
}
