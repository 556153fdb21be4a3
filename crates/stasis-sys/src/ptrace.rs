//! ptrace requests on a seized tracee: attach, stop, resume, register sets, signal state.
//! Wrappers only; the engine decides when to call them.

use crate::{Errno, Pid, SysResult};

/// The general-purpose registers of an x86_64 thread, as `PTRACE_GETREGS` returns them.
#[cfg(target_arch = "x86_64")]
pub type Regs = libc::user_regs_struct;

/// `PTRACE_O_*` options used by stasis.
pub const OPT_TRACESYSGOOD: u32 = libc::PTRACE_O_TRACESYSGOOD as u32;
/// Kill the tracee when the tracer exits (used on restore only).
pub const OPT_EXITKILL: u32 = libc::PTRACE_O_EXITKILL as u32;
/// Report clone events and auto-attach new threads.
pub const OPT_TRACECLONE: u32 = libc::PTRACE_O_TRACECLONE as u32;
/// Suspend the tracee's seccomp filters while traced (needs CAP_SYS_ADMIN).
pub const OPT_SUSPEND_SECCOMP: u32 = 1 << 21;
/// Report fork events and auto-attach new children.
pub const OPT_TRACEFORK: u32 = libc::PTRACE_O_TRACEFORK as u32;
/// `PTRACE_EVENT_STOP`: the event of a stop caused by `PTRACE_INTERRUPT` or a group stop.
pub const EVENT_STOP: i32 = libc::PTRACE_EVENT_STOP;

const NT_X86_XSTATE: libc::c_int = 0x202;

fn check(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// `ptrace(PTRACE_SEIZE, pid, 0, opts)`—Attach without stopping.
/// See [ptrace(2)](https://man7.org/linux/man-pages/man2/ptrace.2.html).
pub fn seize(pid: Pid, opts: u32) -> SysResult<()> {
    // SAFETY: PTRACE_SEIZE takes no pointers; `opts` is passed by value in `data`.
    let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid.as_raw(), 0usize, opts as usize) };
    check(r).map(drop)
}

/// `ptrace(PTRACE_SETOPTIONS, pid, 0, opts)`—Change the options of a stopped tracee.
pub fn set_options(pid: Pid, opts: u32) -> SysResult<()> {
    // SAFETY: PTRACE_SETOPTIONS takes no pointers; `opts` is passed by value in `data`.
    let r = unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid.as_raw(), 0usize, opts as usize) };
    check(r).map(drop)
}

/// `ptrace(PTRACE_INTERRUPT, pid, 0, 0)`—Stop a seized tracee (reported as `PTRACE_EVENT_STOP`).
pub fn interrupt(pid: Pid) -> SysResult<()> {
    // SAFETY: no pointers are passed.
    let r = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid.as_raw(), 0usize, 0usize) };
    check(r).map(drop)
}

/// `ptrace(PTRACE_CONT, pid, 0, sig)`—Resume a stopped tracee, delivering `sig` (0 for none).
pub fn cont(pid: Pid, sig: i32) -> SysResult<()> {
    // SAFETY: no pointers are passed; the signal number travels in `data`.
    let r = unsafe { libc::ptrace(libc::PTRACE_CONT, pid.as_raw(), 0usize, sig as usize) };
    check(r).map(drop)
}

/// `ptrace(PTRACE_SYSCALL, pid, 0, sig)`—Resume until the next syscall entry or exit.
pub fn syscall(pid: Pid, sig: i32) -> SysResult<()> {
    // SAFETY: no pointers are passed.
    let r = unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid.as_raw(), 0usize, sig as usize) };
    check(r).map(drop)
}

/// `ptrace(PTRACE_DETACH, pid, 0, sig)`—Detach and let the thread run on.
pub fn detach(pid: Pid, sig: i32) -> SysResult<()> {
    // SAFETY: no pointers are passed.
    let r = unsafe { libc::ptrace(libc::PTRACE_DETACH, pid.as_raw(), 0usize, sig as usize) };
    check(r).map(drop)
}

/// `ptrace(PTRACE_GETREGS, pid, 0, &regs)`—Read the general-purpose registers.
#[cfg(target_arch = "x86_64")]
pub fn get_regs(pid: Pid) -> SysResult<Regs> {
    let mut regs = std::mem::MaybeUninit::<Regs>::zeroed();
    // SAFETY: the kernel writes exactly one user_regs_struct into `regs`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            pid.as_raw(),
            0usize,
            regs.as_mut_ptr(),
        )
    };
    check(r)?;
    // SAFETY: zero-initialised and then filled by the kernel; all-zero is a valid value anyway.
    Ok(unsafe { regs.assume_init() })
}

/// `ptrace(PTRACE_SETREGS, pid, 0, &regs)`—Write the general-purpose registers.
#[cfg(target_arch = "x86_64")]
pub fn set_regs(pid: Pid, regs: &Regs) -> SysResult<()> {
    // SAFETY: the kernel reads one user_regs_struct from `regs`, which outlives the call.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            pid.as_raw(),
            0usize,
            regs as *const Regs,
        )
    };
    check(r).map(drop)
}

/// `ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov)`—Read the whole XSAVE area
/// (x87, SSE, AVX and whatever the CPU enables), trimmed to the size the kernel reports.
#[cfg(target_arch = "x86_64")]
pub fn get_xstate(pid: Pid) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, which is writable for iov_len bytes; the kernel updates
    // iov_len to the bytes it wrote.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            pid.as_raw(),
            NT_X86_XSTATE as usize,
            &mut iov as *mut libc::iovec,
        )
    };
    check(r)?;
    buf.truncate(iov.iov_len);
    Ok(buf)
}

/// `ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, &iov)`—Write the XSAVE area.
#[cfg(target_arch = "x86_64")]
pub fn set_xstate(pid: Pid, xstate: &[u8]) -> SysResult<()> {
    let mut iov = libc::iovec {
        iov_base: xstate.as_ptr() as *mut libc::c_void,
        iov_len: xstate.len(),
    };
    // SAFETY: the kernel only reads iov_len bytes from the buffer `iov` points at.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            pid.as_raw(),
            NT_X86_XSTATE as usize,
            &mut iov as *mut libc::iovec,
        )
    };
    check(r).map(drop)
}

/// `ptrace(PTRACE_GETSIGMASK, pid, 8, &mask)`—The thread's blocked signal mask.
pub fn get_sigmask(pid: Pid) -> SysResult<u64> {
    let mut mask: u64 = 0;
    // SAFETY: the kernel writes 8 bytes (the size we pass) into `mask`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGMASK,
            pid.as_raw(),
            8usize,
            &mut mask as *mut u64,
        )
    };
    check(r)?;
    Ok(mask)
}

/// `ptrace(PTRACE_SETSIGMASK, pid, 8, &mask)`—Set the thread's blocked signal mask.
pub fn set_sigmask(pid: Pid, mask: u64) -> SysResult<()> {
    // SAFETY: the kernel reads 8 bytes from `mask`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETSIGMASK,
            pid.as_raw(),
            8usize,
            &mask as *const u64,
        )
    };
    check(r).map(drop)
}

/// One raw `siginfo_t` (128 bytes), as the kernel lays it out.
pub type RawSiginfo = [u8; 128];

#[repr(C)]
struct PeekSiginfoArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// `ptrace(PTRACE_PEEKSIGINFO, pid, &args, buf)`—Copy pending signals without dequeuing them,
/// from the thread's private queue or (with `shared`) the process-wide queue.
pub fn peek_siginfo(pid: Pid, shared: bool) -> SysResult<Vec<RawSiginfo>> {
    let mut out = Vec::new();
    loop {
        let mut buf = [[0u8; 128]; 32];
        let args = PeekSiginfoArgs {
            off: out.len() as u64,
            flags: if shared {
                libc::PTRACE_PEEKSIGINFO_SHARED
            } else {
                0
            },
            nr: buf.len() as i32,
        };
        // SAFETY: `args` is readable and `buf` writable for `nr` siginfo records.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_PEEKSIGINFO,
                pid.as_raw(),
                &args as *const PeekSiginfoArgs,
                buf.as_mut_ptr(),
            )
        };
        let n = check(r)? as usize;
        out.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return Ok(out);
        }
    }
}

/// What `PTRACE_GET_RSEQ_CONFIGURATION` reports: the thread's registered rseq area.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RseqConfig {
    pub rseq_abi_pointer: u64,
    pub rseq_abi_size: u32,
    pub signature: u32,
    pub flags: u32,
    pub pad: u32,
}

/// `ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, sizeof, &conf)`—The thread's rseq registration
/// (pointer 0 when none).
pub fn get_rseq_config(pid: Pid) -> SysResult<RseqConfig> {
    let mut conf = RseqConfig::default();
    // SAFETY: the kernel writes at most `size_of::<RseqConfig>()` bytes into `conf`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_RSEQ_CONFIGURATION,
            pid.as_raw(),
            std::mem::size_of::<RseqConfig>(),
            &mut conf as *mut RseqConfig,
        )
    };
    check(r)?;
    Ok(conf)
}

/// A decoded `waitpid` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
    /// A ptrace stop: the signal and the ptrace event (status >> 16).
    Stopped {
        sig: i32,
        event: i32,
    },
    /// A syscall-entry or -exit stop (PTRACE_O_TRACESYSGOOD).
    Syscall,
    Continued,
}

/// `waitpid(pid, &status, flags | __WALL)`—Wait for a state change; `None` with `WNOHANG` when
/// nothing changed.
pub fn wait(pid: Pid, nohang: bool) -> SysResult<Option<(Pid, WaitStatus)>> {
    let mut status: libc::c_int = 0;
    let flags = libc::__WALL | if nohang { libc::WNOHANG } else { 0 };
    let r = loop {
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let r = unsafe { libc::waitpid(pid.as_raw(), &mut status, flags) };
        if r == -1 && Errno::last() == Errno::EINTR {
            continue;
        }
        break r;
    };
    if r == -1 {
        return Err(Errno::last());
    }
    if r == 0 {
        return Ok(None);
    }
    let ws = if libc::WIFEXITED(status) {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        WaitStatus::Signaled(libc::WTERMSIG(status))
    } else if libc::WIFSTOPPED(status) {
        let sig = libc::WSTOPSIG(status);
        if sig == libc::SIGTRAP | 0x80 {
            WaitStatus::Syscall
        } else {
            WaitStatus::Stopped {
                sig,
                event: status >> 16,
            }
        }
    } else {
        WaitStatus::Continued
    };
    Ok(Some((Pid::from_raw(r), ws)))
}

/// `get_robust_list(tid, &head, &len)`—The robust futex list a thread registered.
/// See [get_robust_list(2)](https://man7.org/linux/man-pages/man2/get_robust_list.2.html).
pub fn get_robust_list(tid: Pid) -> SysResult<(u64, u64)> {
    let mut head: u64 = 0;
    let mut len: usize = 0;
    // SAFETY: the kernel writes one pointer into `head` and one size_t into `len`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            tid.as_raw(),
            &mut head as *mut u64,
            &mut len as *mut usize,
        )
    };
    check(r)?;
    Ok((head, len as u64))
}

/// `kill(pid, SIGKILL)` without the nix signal type, for cleanup paths.
pub fn kill(pid: Pid, sig: i32) -> SysResult<()> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::kill(pid.as_raw(), sig) };
    check(r as libc::c_long).map(drop)
}

const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// `ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf)`—The classic-BPF program of a thread's
/// seccomp filter number `index` (0 = the most recently installed) as raw 8-byte
/// instructions; `None` past the last filter.
pub fn seccomp_filter(pid: Pid, index: usize) -> SysResult<Option<Vec<u8>>> {
    // SAFETY: a null buffer asks only for the instruction count.
    let n = unsafe {
        libc::ptrace(
            PTRACE_SECCOMP_GET_FILTER,
            pid.as_raw(),
            index,
            std::ptr::null_mut::<u8>(),
        )
    };
    if n < 0 {
        return match Errno::last() {
            Errno::ENOENT => Ok(None),
            e => Err(e),
        };
    }
    let mut buf = vec![0u8; n as usize * 8];
    // SAFETY: `buf` holds room for the `n` sock_filter instructions the kernel writes.
    let r = unsafe {
        libc::ptrace(
            PTRACE_SECCOMP_GET_FILTER,
            pid.as_raw(),
            index,
            buf.as_mut_ptr(),
        )
    };
    check(r)?;
    Ok(Some(buf))
}
