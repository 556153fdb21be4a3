//! Per-thread state: registers, XSAVE area, signal mask and private queue, and the kernel
//! registrations a thread owns (rseq, robust futex list, clear_child_tid, sigaltstack).
//! Registers go last on restore: they are what makes the thread continue.

use crate::scratch::{bytes_to_words, words_to_bytes, Scratch};
use crate::tracee::{resume_regs, PtraceTracee, Tracee, TraceeError};
use stasis_image::{AltStackEntry, RegsEntry, RseqEntry, SiginfoEntry, ThreadEntry};
use stasis_sys::ptrace::{self, Regs};
use stasis_sys::Pid;

fn pt(pid: Pid, step: &'static str) -> impl FnOnce(stasis_sys::Errno) -> TraceeError {
    move |source| TraceeError::Ptrace {
        pid: pid.as_raw(),
        step,
        source,
    }
}

/// Everything a thread owns that ptrace reads from outside, taken before we disturb it.
pub struct ThreadOutside {
    pub sigmask: u64,
    pub xstate: Vec<u8>,
    pub pending: Vec<SiginfoEntry>,
    pub rseq: Option<RseqEntry>,
    pub robust: (u64, u64),
}

pub fn dump_outside(tid: Pid) -> Result<ThreadOutside, TraceeError> {
    let sigmask = ptrace::get_sigmask(tid).map_err(pt(tid, "GETSIGMASK"))?;
    let xstate = ptrace::get_xstate(tid).map_err(pt(tid, "GETREGSET NT_X86_XSTATE"))?;
    let pending = ptrace::peek_siginfo(tid, false)
        .map_err(pt(tid, "PEEKSIGINFO"))?
        .into_iter()
        .map(|raw| SiginfoEntry { raw: raw.to_vec() })
        .collect();
    let rc = ptrace::get_rseq_config(tid).map_err(pt(tid, "GET_RSEQ_CONFIGURATION"))?;
    let rseq = (rc.rseq_abi_pointer != 0).then_some(RseqEntry {
        ptr: rc.rseq_abi_pointer,
        len: rc.rseq_abi_size,
        signature: rc.signature,
    });
    let robust = ptrace::get_robust_list(tid).map_err(pt(tid, "get_robust_list"))?;
    Ok(ThreadOutside {
        sigmask,
        xstate,
        pending,
        rseq,
        robust,
    })
}

/// What only the thread itself can report: clear_child_tid and its sigaltstack.
pub fn dump_inside(t: &mut impl Tracee, s: Scratch) -> Result<(u64, AltStackEntry), TraceeError> {
    t.syscall(
        "prctl(PR_GET_TID_ADDRESS)",
        libc::SYS_prctl,
        [libc::PR_GET_TID_ADDRESS as u64, s.addr, 0, 0, 0, 0],
    )?;
    t.syscall(
        "sigaltstack",
        libc::SYS_sigaltstack,
        [0, s.at(64), 0, 0, 0, 0],
    )?;
    let mut raw = [0u8; 96];
    t.read_mem(s.addr, &mut raw)?;
    let w = bytes_to_words(&raw);
    let alt = AltStackEntry {
        sp: w[8],
        flags: w[9] as u32 as i32,
        size: w[10],
    };
    Ok((w[0], alt))
}

pub fn regs_entry(r: &Regs) -> RegsEntry {
    RegsEntry {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax: r.orig_rax,
        rip: r.rip,
        cs: r.cs,
        eflags: r.eflags,
        rsp: r.rsp,
        ss: r.ss,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
    }
}

pub fn regs_from(e: &RegsEntry) -> Regs {
    Regs {
        r15: e.r15,
        r14: e.r14,
        r13: e.r13,
        r12: e.r12,
        rbp: e.rbp,
        rbx: e.rbx,
        r11: e.r11,
        r10: e.r10,
        r9: e.r9,
        r8: e.r8,
        rax: e.rax,
        rcx: e.rcx,
        rdx: e.rdx,
        rsi: e.rsi,
        rdi: e.rdi,
        orig_rax: e.orig_rax,
        rip: e.rip,
        cs: e.cs,
        eflags: e.eflags,
        rsp: e.rsp,
        ss: e.ss,
        fs_base: e.fs_base,
        gs_base: e.gs_base,
        ds: e.ds,
        es: e.es,
        fs: e.fs,
        gs: e.gs,
    }
}

/// Unregister the thread's current rseq area (a restore skeleton inherits glibc's): the
/// kernel would write to it on the next resume, after we have unmapped it.
pub fn unregister_rseq(t: &mut PtraceTracee) -> Result<(), TraceeError> {
    let pid = Pid::from_raw(t.pid());
    let rc = ptrace::get_rseq_config(pid).map_err(pt(pid, "GET_RSEQ_CONFIGURATION"))?;
    if rc.rseq_abi_pointer != 0 {
        t.syscall(
            "rseq(UNREGISTER)",
            libc::SYS_rseq,
            [
                rc.rseq_abi_pointer,
                rc.rseq_abi_size as u64,
                1, // RSEQ_FLAG_UNREGISTER
                rc.signature as u64,
                0,
                0,
            ],
        )?;
    }
    Ok(())
}

/// Re-establish the per-thread registrations (everything but registers and mask).
pub fn restore_inside(t: &mut impl Tracee, s: Scratch, e: &ThreadEntry) -> Result<(), TraceeError> {
    if !e.comm.is_empty() {
        let mut name = e.comm.as_bytes().to_vec();
        name.truncate(15);
        name.push(0);
        t.write_mem(s.at(512), &name)?;
        t.syscall(
            "prctl(PR_SET_NAME)",
            libc::SYS_prctl,
            [libc::PR_SET_NAME as u64, s.at(512), 0, 0, 0, 0],
        )?;
    }
    // Always set, also when disabled: the skeleton inherited the restorer's alternate stack,
    // which points into memory that is gone now (a handler with SA_ONSTACK would fault).
    // SS_ONSTACK is reported, not settable: only SS_DISABLE/SS_AUTODISARM are flags.
    let flags = (e.altstack.flags & !libc::SS_ONSTACK) as u32 as u64;
    t.write_mem(
        s.addr,
        &words_to_bytes(&[e.altstack.sp, flags, e.altstack.size]),
    )?;
    t.syscall(
        "sigaltstack",
        libc::SYS_sigaltstack,
        [s.addr, 0, 0, 0, 0, 0],
    )?;
    // Also when none was registered: the skeleton's list (the restorer's) is gone.
    let robust_len = if e.robust_list_len == 0 {
        24
    } else {
        e.robust_list_len
    };
    t.syscall(
        "set_robust_list",
        libc::SYS_set_robust_list,
        [e.robust_list, robust_len, 0, 0, 0, 0],
    )?;
    t.syscall(
        "set_tid_address",
        libc::SYS_set_tid_address,
        [e.clear_child_tid, 0, 0, 0, 0, 0],
    )?;
    if let Some(r) = &e.rseq {
        t.syscall(
            "rseq",
            libc::SYS_rseq,
            [r.ptr, r.len as u64, 0, r.signature as u64, 0, 0],
        )?;
    }
    Ok(())
}

/// Put the saved registers, XSAVE area and mask back: the last step before the thread runs.
/// `same_process` says the kernel's restart block is still valid (dump without --kill).
/// The image's form of a thread's scheduling attributes.
pub fn sched_entry(a: stasis_sys::sched::SchedAttr) -> stasis_image::SchedEntry {
    stasis_image::SchedEntry {
        policy: a.policy,
        flags: a.flags,
        nice: a.nice,
        priority: a.priority,
        runtime: a.runtime,
        deadline: a.deadline,
        period: a.period,
    }
}

/// Give thread `tid` its saved scheduling policy, priority and nice value, from the restorer
/// (raising a real-time priority or lowering nice needs CAP_SYS_NICE, which root has).
pub fn restore_sched(tid: Pid, e: &stasis_image::SchedEntry) -> Result<(), TraceeError> {
    let a = stasis_sys::sched::SchedAttr {
        size: 0,
        policy: e.policy,
        flags: e.flags,
        nice: e.nice,
        priority: e.priority,
        runtime: e.runtime,
        deadline: e.deadline,
        period: e.period,
    };
    if stasis_sys::sched::sched_getattr(tid)
        .is_ok_and(|now| stasis_sys::sched::SchedAttr { size: 0, ..now } == a)
    {
        return Ok(());
    }
    stasis_sys::sched::sched_setattr(tid, &a).map_err(pt(tid, "sched_setattr"))?;
    // sched_setattr leaves the nice value of a real-time thread alone.
    if e.policy == libc::SCHED_FIFO as u32 || e.policy == libc::SCHED_RR as u32 {
        stasis_sys::sched::set_nice(tid, e.nice).map_err(pt(tid, "setpriority"))?;
    }
    Ok(())
}

pub fn restore_cpu(tid: Pid, e: &ThreadEntry, same_process: bool) -> Result<(), TraceeError> {
    ptrace::set_xstate(tid, &e.xstate).map_err(pt(tid, "SETREGSET NT_X86_XSTATE"))?;
    let regs = resume_regs(&regs_from(&e.regs), same_process);
    ptrace::set_regs(tid, &regs).map_err(pt(tid, "SETREGS"))?;
    ptrace::set_sigmask(tid, e.sigmask).map_err(pt(tid, "SETSIGMASK"))?;
    Ok(())
}

/// Create thread `tid` of the process by a remote clone3 in `leader`, with `set_tid` so it gets
/// its saved TID. The new thread shares everything a pthread shares and starts in a ptrace
/// stop (the leader is traced with PTRACE_O_TRACECLONE), so its registers are set before it
/// runs a single instruction. Returns once it is stopped.
pub fn create_thread(leader: &mut impl Tracee, s: Scratch, tid: i32) -> Result<Pid, TraceeError> {
    let flags = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM) as u64;
    let set_tid_at = s.at(2048 + 128);
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
    // tls, set_tid, set_tid_size, cgroup.
    let args = [flags, 0, 0, 0, 0, 0, 0, 0, set_tid_at, 1, 0];
    leader.write_mem(s.at(2048), &words_to_bytes(&args))?;
    leader.write_mem(set_tid_at, &(tid as u32).to_le_bytes())?;
    let got = leader.syscall(
        "clone3 (thread)",
        libc::SYS_clone3,
        [s.at(2048), (args.len() * 8) as u64, 0, 0, 0, 0],
    )?;
    let new = Pid::from_raw(got as i32);
    crate::tracee::wait_stop(new)?;
    Ok(new)
}
