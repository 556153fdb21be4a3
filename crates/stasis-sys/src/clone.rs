//! `clone3` with `set_tid`: create a child process with a chosen PID.

use crate::{Errno, Pid, SysResult};

/// Which side of a successful [`clone_with_pid`] we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// `clone3({.exit_signal = SIGCHLD, .set_tid = &pid, .set_tid_size = 1})`—Fork this process
/// into a child whose PID (in our PID namespace) is `pid`. `EEXIST` means the PID is taken.
/// See [clone3(2)](https://man7.org/linux/man-pages/man2/clone3.2.html).
///
/// The child shares nothing but a copy of the parent's memory: in a multi-threaded parent it may
/// only call async-signal-safe functions before it is taken over or exits.
pub fn clone_with_pid(pid: Pid) -> SysResult<Forked> {
    let tid: libc::pid_t = pid.as_raw();
    // SAFETY: an all-zero clone_args is valid (no flags, no pointers).
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.exit_signal = libc::SIGCHLD as u64;
    args.set_tid = &tid as *const libc::pid_t as u64;
    args.set_tid_size = 1;
    // SAFETY: without CLONE_VM the child gets a copy of our address space and continues on
    // its own copy of this stack, like fork(2); `args` and `tid` outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match r {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent(Pid::from_raw(child as i32))),
    }
}

/// `fork()`—A plain child (used for the intermediate process of `--detach`).
pub fn fork() -> SysResult<Forked> {
    // SAFETY: the caller keeps to async-signal-safe calls in the child, as documented above.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// Give every signal the kernel's default disposition and unblock all signals (what a
/// freshly exec'd program expects). Only async-signal-safe calls: usable in a forked child.
pub fn reset_signals() {
    // The kernel's own zero disposition (handler SIG_DFL, no flags, no restorer): glibc's
    // signal()/sigaction() would leave SA_RESTORER and flags behind.
    let zero = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads one kernel_sigaction (4 words) from `zero`; no handler
        // code is installed.
        unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, zero.as_ptr(), 0usize, 8usize) };
    }
    // SAFETY: an empty sigset built by sigemptyset, passed to sigprocmask, both
    // async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Put the calling (child) process to sleep until a tracer takes it over: resets every signal
/// disposition to default, unblocks all signals, writes one byte to `ready` (when >= 0) so the
/// parent knows the resets are done, then waits in `pause()` forever. Only async-signal-safe
/// calls.
pub fn child_park(ready: std::os::fd::RawFd) -> ! {
    reset_signals();
    if ready >= 0 {
        // SAFETY: write(2) of one byte from a local, async-signal-safe.
        unsafe { libc::write(ready, b"r".as_ptr().cast(), 1) };
    }
    loop {
        // SAFETY: pause(2) has no arguments.
        unsafe { libc::pause() };
    }
}

/// `_exit(code)`—Leave a forked child without running destructors.
pub fn child_exit(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no shared state.
    unsafe { libc::_exit(code) }
}

static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forward `signals` received by this process to `pid` (the restored job a foreground
/// `stasis restore` waits for).
pub fn forward_signals(pid: Pid, signals: &[i32]) -> SysResult<()> {
    FORWARD_TO.store(pid.as_raw(), std::sync::atomic::Ordering::Relaxed);
    for &sig in signals {
        // SAFETY: an all-zero sigaction with a handler that only calls async-signal-safe
        // functions; SA_RESTART so our waitpid keeps waiting.
        let r = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if r < 0 {
            return Err(Errno::last());
        }
    }
    Ok(())
}

/// Give SIGPIPE its default action back (Rust programs start with it ignored), so that
/// `stasis show DIR | head` ends quietly like other command-line tools instead of failing on
/// a closed pipe.
pub fn default_sigpipe() {
    // SAFETY: setting a disposition to SIG_DFL installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
