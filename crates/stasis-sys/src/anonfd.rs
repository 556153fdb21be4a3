//! Creating the anonymous-inode fds restore rebuilds (eventfd, timerfd, signalfd, epoll) with
//! the exact arguments the kernel takes, including the checkpoint/restore-only
//! TFD_IOC_SET_TICKS. Raw wrappers: the nix types hide the flags and values restore needs.

use crate::{Errno, SysResult};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn owned(r: libc::c_int) -> SysResult<OwnedFd> {
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// `eventfd(initval, flags)`—See [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html).
pub fn eventfd(initval: u32, flags: i32) -> SysResult<OwnedFd> {
    // SAFETY: plain integer arguments.
    owned(unsafe { libc::eventfd(initval, flags) })
}

/// `timerfd_create(clockid, flags)`—See [timerfd_create(2)](https://man7.org/linux/man-pages/man2/timerfd_create.2.html).
pub fn timerfd_create(clockid: i32, flags: i32) -> SysResult<OwnedFd> {
    // SAFETY: plain integer arguments.
    owned(unsafe { libc::timerfd_create(clockid, flags) })
}

fn ts(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// `timerfd_settime(fd, flags, {interval, value}, NULL)`, times in nanoseconds.
pub fn timerfd_settime(fd: RawFd, flags: i32, interval_ns: u64, value_ns: u64) -> SysResult<()> {
    let new = libc::itimerspec {
        it_interval: ts(interval_ns),
        it_value: ts(value_ns),
    };
    // SAFETY: `new` is a valid itimerspec the kernel reads; no old-value pointer.
    let r = unsafe { libc::timerfd_settime(fd, flags, &new, std::ptr::null_mut()) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// _IOW('T', 0, __u64)
const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;

/// `ioctl(fd, TFD_IOC_SET_TICKS, &ticks)`—Set a timerfd's count of unread expirations
/// (needs CONFIG_CHECKPOINT_RESTORE).
pub fn timerfd_set_ticks(fd: RawFd, ticks: u64) -> SysResult<()> {
    // SAFETY: the kernel reads one u64 from `ticks`.
    let r = unsafe { libc::ioctl(fd, TFD_IOC_SET_TICKS, &ticks as *const u64) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `signalfd(-1, mask, flags)` for the signals in `mask` (bit n-1 = signal n).
/// See [signalfd(2)](https://man7.org/linux/man-pages/man2/signalfd.2.html).
pub fn signalfd(mask: u64, flags: i32) -> SysResult<OwnedFd> {
    // SAFETY: the raw syscall reads a kernel sigset of 8 bytes from `mask`.
    let r = unsafe { libc::syscall(libc::SYS_signalfd4, -1, &mask as *const u64, 8usize, flags) };
    owned(r as libc::c_int)
}

/// `epoll_create1(flags)`—See [epoll_create1(2)](https://man7.org/linux/man-pages/man2/epoll_create1.2.html).
pub fn epoll_create1(flags: i32) -> SysResult<OwnedFd> {
    // SAFETY: plain integer argument.
    owned(unsafe { libc::epoll_create1(flags) })
}

/// `inotify_init1(flags)`—See [inotify_init1(2)](https://man7.org/linux/man-pages/man2/inotify_init1.2.html).
pub fn inotify_init1(flags: i32) -> SysResult<OwnedFd> {
    // SAFETY: plain integer argument.
    owned(unsafe { libc::inotify_init1(flags) })
}

/// `open_by_handle_at(mount_fd, {handle_type, handle}, flags)`—Open a file by the handle
/// fdinfo reports for an inotify watch (needs CAP_DAC_READ_SEARCH).
/// See [open_by_handle_at(2)](https://man7.org/linux/man-pages/man2/open_by_handle_at.2.html).
pub fn open_by_handle_at(
    mount_fd: RawFd,
    handle_type: i32,
    handle: &[u8],
    flags: i32,
) -> SysResult<OwnedFd> {
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
    let mut buf = Vec::with_capacity(8 + handle.len());
    buf.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
    buf.extend_from_slice(&handle_type.to_ne_bytes());
    buf.extend_from_slice(handle);
    // SAFETY: `buf` holds a complete struct file_handle the kernel only reads.
    let r = unsafe { libc::syscall(libc::SYS_open_by_handle_at, mount_fd, buf.as_ptr(), flags) };
    owned(r as libc::c_int)
}

/// `inotify_add_watch(fd, path, mask)`—Returns the watch descriptor.
pub fn inotify_add_watch(fd: RawFd, path: &str, mask: u32) -> SysResult<i32> {
    let c = std::ffi::CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let r = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// `fanotify_init(flags, event_f_flags)`—Make a fanotify group (needs CAP_SYS_ADMIN).
/// See [fanotify_init(2)](https://man7.org/linux/man-pages/man2/fanotify_init.2.html).
pub fn fanotify_init(flags: u32, event_f_flags: u32) -> SysResult<OwnedFd> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::fanotify_init(flags, event_f_flags) };
    owned(r)
}

/// `fanotify_mark(fd, flags, mask, AT_FDCWD, path)`—Add, change or remove a mark on the
/// file `path`, or on its mount or filesystem (FAN_MARK_MOUNT, FAN_MARK_FILESYSTEM).
/// See [fanotify_mark(2)](https://man7.org/linux/man-pages/man2/fanotify_mark.2.html).
pub fn fanotify_mark(fd: RawFd, flags: u32, mask: u64, path: &str) -> SysResult<()> {
    let c = std::ffi::CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let r = unsafe { libc::fanotify_mark(fd, flags, mask, libc::AT_FDCWD, c.as_ptr()) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `flock(fd, op)`—Take a whole-file lock on an open file description (op: LOCK_SH or
/// LOCK_EX, with LOCK_NB).
/// See [flock(2)](https://man7.org/linux/man-pages/man2/flock.2.html).
pub fn flock(fd: RawFd, op: i32) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::flock(fd, op) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}
