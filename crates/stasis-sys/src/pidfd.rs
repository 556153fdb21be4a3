//! pidfds: stable handles on processes, and pulling an fd out of another process.

use crate::{Errno, Pid, SysResult};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `pidfd_open(pid, 0)`—A file descriptor referring to the process `pid`.
/// See [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html).
pub fn pidfd_open(pid: Pid) -> SysResult<OwnedFd> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `pidfd_getfd(pidfd, targetfd, 0)`—Duplicate fd `targetfd` of the process behind `pidfd`
/// into this process (the copy has FD_CLOEXEC set).
/// See [pidfd_getfd(2)](https://man7.org/linux/man-pages/man2/pidfd_getfd.2.html).
pub fn pidfd_getfd(pidfd: RawFd, targetfd: RawFd) -> SysResult<OwnedFd> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, targetfd, 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`—Signal the process behind a pidfd.
pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> SysResult<()> {
    // SAFETY: plain integer arguments and a null siginfo pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `kcmp(pid1, pid2, KCMP_FILES, 0, 0)`—Whether two processes share one fd table (CLONE_FILES).
/// See [kcmp(2)](https://man7.org/linux/man-pages/man2/kcmp.2.html).
pub fn kcmp_files(pid1: Pid, pid2: Pid) -> SysResult<bool> {
    const KCMP_FILES: libc::c_int = 2;
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1.as_raw(),
            pid2.as_raw(),
            KCMP_FILES,
            0,
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r == 0)
    }
}

/// `kcmp(pid1, pid2, KCMP_FILE, fd1, fd2)`—Whether two fds refer to the same open file
/// description (0 = same).
/// See [kcmp(2)](https://man7.org/linux/man-pages/man2/kcmp.2.html).
pub fn kcmp_file(pid1: Pid, fd1: RawFd, pid2: Pid, fd2: RawFd) -> SysResult<bool> {
    const KCMP_FILE: libc::c_int = 0;
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1.as_raw(),
            pid2.as_raw(),
            KCMP_FILE,
            fd1 as libc::c_ulong,
            fd2 as libc::c_ulong,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r == 0)
    }
}

/// `kcmp(pid, pid, KCMP_EPOLL_TFD, fd, &{epfd, tfd, toff})`—Whether fd `fd` of `pid` is the
/// file that epoll `epfd` of `pid` has registered under fd number `tfd` (the `toff`-th such
/// registration, in the order fdinfo lists them: a registration outlives the fd it was made
/// with while another fd holds the file, so one number may have several).
/// See [kcmp(2)](https://man7.org/linux/man-pages/man2/kcmp.2.html).
pub fn kcmp_epoll_target(
    pid: Pid,
    fd: RawFd,
    epfd: RawFd,
    tfd: RawFd,
    toff: u32,
) -> SysResult<bool> {
    const KCMP_EPOLL_TFD: libc::c_int = 7;
    #[repr(C)]
    struct Slot {
        efd: u32,
        tfd: u32,
        toff: u32,
    }
    let slot = Slot {
        efd: epfd as u32,
        tfd: tfd as u32,
        toff,
    };
    // SAFETY: `slot` is a live kcmp_epoll_slot the kernel only reads during the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid.as_raw(),
            pid.as_raw(),
            KCMP_EPOLL_TFD,
            fd as libc::c_ulong,
            &slot as *const Slot as libc::c_ulong,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r == 0)
    }
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`—An anonymous memory-backed file.
pub fn memfd_create(name: &str) -> SysResult<OwnedFd> {
    let c = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let r = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`—Duplicate `fd` to the lowest free number >= `min`.
pub fn dup_at_least(fd: RawFd, min: RawFd) -> SysResult<OwnedFd> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}
