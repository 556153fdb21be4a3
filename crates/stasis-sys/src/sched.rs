//! Scheduling attributes of a thread: `sched_getattr`/`sched_setattr`, which glibc does not
//! wrap (nix neither): one call covers the policy, its flags, the nice value, the real-time
//! priority and SCHED_DEADLINE's parameters.

use crate::{Errno, Pid, SysResult};

/// `struct sched_attr` (the first version, 48 bytes: no utilization clamps).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

const SCHED_ATTR_SIZE_VER0: u32 = 48;

/// `sched_getattr(tid, attr, sizeof attr, 0)`—A thread's scheduling attributes; the nice
/// value of a thread under a real-time policy (which the call leaves out) is filled in with
/// `getpriority`.
/// See [sched_getattr(2)](https://man7.org/linux/man-pages/man2/sched_getattr.2.html).
pub fn sched_getattr(tid: Pid) -> SysResult<SchedAttr> {
    let mut a = sched_getattr_raw(tid)?;
    if a.policy == libc::SCHED_FIFO as u32 || a.policy == libc::SCHED_RR as u32 {
        a.nice = get_nice(tid)?;
    }
    Ok(a)
}

/// `getpriority(PRIO_PROCESS, tid)`—A thread's nice value.
pub fn get_nice(tid: Pid) -> SysResult<i32> {
    Errno::clear();
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid.as_raw() as libc::id_t) };
    if r == -1 && Errno::last_raw() != 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

fn sched_getattr_raw(tid: Pid) -> SysResult<SchedAttr> {
    let mut a = SchedAttr {
        size: SCHED_ATTR_SIZE_VER0,
        ..SchedAttr::default()
    };
    // SAFETY: `a` is a writable sched_attr of the size passed; the kernel writes at most that.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            tid.as_raw(),
            &mut a as *mut SchedAttr,
            SCHED_ATTR_SIZE_VER0,
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(a)
    }
}

/// `sched_setattr(tid, attr, 0)`—Set a thread's scheduling attributes (raising a real-time
/// priority or lowering the nice value needs CAP_SYS_NICE).
/// See [sched_setattr(2)](https://man7.org/linux/man-pages/man2/sched_setattr.2.html).
pub fn sched_setattr(tid: Pid, attr: &SchedAttr) -> SysResult<()> {
    let a = SchedAttr {
        size: SCHED_ATTR_SIZE_VER0,
        ..*attr
    };
    // SAFETY: `a` is a live, initialized sched_attr the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            tid.as_raw(),
            &a as *const SchedAttr,
            0,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `setpriority(PRIO_PROCESS, tid, nice)`—A thread's nice value. Unlike `sched_setattr`, it
/// also sets the nice value of a thread under a real-time policy (kept for when it leaves it).
/// See [setpriority(2)](https://man7.org/linux/man-pages/man2/setpriority.2.html).
pub fn set_nice(tid: Pid, nice: i32) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid.as_raw() as libc::id_t, nice) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_attributes_read_back() {
        let me = crate::Pid::this();
        let a = super::sched_getattr(me).unwrap();
        assert_eq!(a.size, 48);
        super::sched_setattr(me, &a).unwrap();
        assert_eq!(super::sched_getattr(me).unwrap(), a);
    }
}
