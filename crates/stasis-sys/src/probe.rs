//! Kernel feature probes that need raw syscalls: userfaultfd features, PR_SET_MM_MAP size.

use crate::{Errno, SysResult};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `UFFD_FEATURE_WP_ASYNC`: write-protect faults resolved by the kernel (dirty tracking).
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
/// `UFFD_FEATURE_WP_UNPOPULATED`.
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}
/// _IOWR(0xAA, 0x3F, struct uffdio_api)
const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;

/// `userfaultfd(O_CLOEXEC)` then `UFFDIO_API {api: 0xAA}`—The userfaultfd feature bits this
/// kernel supports.
/// See [userfaultfd(2)](https://man7.org/linux/man-pages/man2/userfaultfd.2.html).
pub fn userfaultfd_features() -> SysResult<u64> {
    // SAFETY: plain integer argument.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut api = UffdioApi {
        api: 0xAA,
        features: 0,
        ioctls: 0,
    };
    // SAFETY: `api` is a valid uffdio_api the kernel reads and updates.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), UFFDIO_API, &mut api as *mut UffdioApi) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(api.features)
}

/// `prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size)`—The size of `struct prctl_mm_map` this kernel
/// expects; proves PR_SET_MM_MAP exists.
pub fn prctl_mm_map_size() -> SysResult<u32> {
    let mut size: u32 = 0;
    // SAFETY: the kernel writes one u32 into `size`.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP_SIZE,
            &mut size as *mut u32,
            0,
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(size)
    }
}

/// `prlimit(pid, resource, &new, NULL)`—Set a resource limit of another process.
/// See [prlimit(2)](https://man7.org/linux/man-pages/man2/prlimit.2.html).
pub fn prlimit_set(pid: crate::Pid, resource: u32, soft: u64, hard: u64) -> SysResult<()> {
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `new` is a valid rlimit64 the kernel only reads; no old-value pointer.
    let r = unsafe {
        libc::prlimit64(
            pid.as_raw(),
            resource as libc::__rlimit_resource_t,
            &new,
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `prctl(PR_GET_SECUREBITS)`—The calling thread's securebits.
/// See [capabilities(7)](https://man7.org/linux/man-pages/man7/capabilities.7.html).
pub fn securebits() -> SysResult<u32> {
    // SAFETY: PR_GET_SECUREBITS takes no pointer argument.
    let r = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as u32)
    }
}
