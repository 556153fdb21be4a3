//! The owner of an open file description (who gets SIGIO/SIGURG and lease-break signals):
//! `fcntl` F_GETOWN_EX, F_GETSIG and F_GETOWNER_UIDS, which nix does not wrap.

use crate::{Errno, SysResult};
use std::os::fd::RawFd;

/// F_GETOWNER_UIDS, F_GETOWN_EX, F_GETSIG (Linux; not among libc's constants).
const F_GETOWNER_UIDS: libc::c_int = 17;
const F_GETOWN_EX: libc::c_int = 16;
const F_GETSIG: libc::c_int = 11;

/// struct f_owner_ex.
#[repr(C)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// A description's owner: `kind` is F_OWNER_TID (0), F_OWNER_PID (1) or F_OWNER_PGRP (2);
/// `pid` 0 means none. `uid`/`euid` are the credentials of whoever set it (the kernel checks
/// them when it signals the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub kind: i32,
    pub pid: i32,
    pub signum: i32,
    pub uid: u32,
    pub euid: u32,
}

/// The owner of `fd`'s description (`fcntl` F_GETOWN_EX, F_GETSIG, F_GETOWNER_UIDS).
/// See [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
pub fn owner(fd: RawFd) -> SysResult<Owner> {
    let mut ex = OwnerEx { kind: 0, pid: 0 };
    // SAFETY: `ex` is a writable struct f_owner_ex for the call.
    if unsafe { libc::fcntl(fd, F_GETOWN_EX, &mut ex as *mut OwnerEx) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: plain integer arguments.
    let signum = unsafe { libc::fcntl(fd, F_GETSIG) };
    if signum < 0 {
        return Err(Errno::last());
    }
    let mut uids = [0u32; 2];
    // SAFETY: F_GETOWNER_UIDS writes two uid_t into `uids`.
    if unsafe { libc::fcntl(fd, F_GETOWNER_UIDS, uids.as_mut_ptr()) } < 0 {
        return Err(Errno::last());
    }
    Ok(Owner {
        kind: ex.kind,
        pid: ex.pid,
        signum,
        uid: uids[0],
        euid: uids[1],
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    #[test]
    fn owner_of_a_pipe() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let none = super::owner(r.as_raw_fd()).unwrap();
        assert_eq!((none.pid, none.signum), (0, 0));
    }
}
