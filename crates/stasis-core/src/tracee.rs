//! The boundary between engine logic and a stopped process: registers, memory and remote
//! syscalls. Engine code talks to the [`Tracee`] trait; [`PtraceTracee`] implements it with
//! ptrace, and tests can substitute a recording fake.
//!
//! A remote syscall points the thread's `rip` at a `syscall` instruction (the "gadget", found
//! in the vDSO), loads the number and arguments, and steps it with `PTRACE_SYSCALL` through the
//! entry and exit stops. `orig_rax` is set to -1 so the kernel's syscall-restart logic never
//! touches our registers, and all signals are blocked while we drive the thread so none is
//! dequeued (and lost) behind our back.

use stasis_sys::ptrace::{self, Regs, WaitStatus};
use stasis_sys::{Errno, Pid};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Errors of driving a stopped thread.
#[derive(Debug, thiserror::Error)]
pub enum TraceeError {
    #[error("ptrace {step} on pid {pid}")]
    Ptrace {
        pid: i32,
        step: &'static str,
        #[source]
        source: Errno,
    },
    #[error("pid {pid} exited while stasis was working on it ({status})")]
    Gone { pid: i32, status: String },
    #[error("pid {pid} stopped unexpectedly during {step} ({status})")]
    UnexpectedStop {
        pid: i32,
        step: &'static str,
        status: String,
    },
    #[error("remote {name} in pid {pid} failed")]
    Syscall {
        pid: i32,
        name: &'static str,
        #[source]
        source: Errno,
    },
    #[error("memory of pid {pid} at {addr:#x} (+{len})")]
    Memory {
        pid: i32,
        addr: u64,
        len: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid} has no vDSO with a syscall instruction to drive remote syscalls")]
    NoGadget { pid: i32 },
}

type Result<T, E = TraceeError> = std::result::Result<T, E>;

/// What the engine needs from a stopped thread.
pub trait Tracee {
    fn pid(&self) -> i32;
    /// Run `nr(args)` inside the tracee; returns the raw result (negative errno on failure).
    fn syscall_raw(&mut self, nr: i64, args: [u64; 6]) -> Result<i64>;
    /// Read tracee memory (works regardless of page protection).
    fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<()>;
    /// Write tracee memory (works regardless of page protection).
    fn write_mem(&mut self, addr: u64, data: &[u8]) -> Result<()>;

    /// A remote syscall whose failure is an error naming it.
    fn syscall(&mut self, name: &'static str, nr: i64, args: [u64; 6]) -> Result<u64> {
        let r = self.syscall_raw(nr, args)?;
        if (-4095..0).contains(&r) {
            Err(TraceeError::Syscall {
                pid: self.pid(),
                name,
                source: Errno::from_raw(-r as i32),
            })
        } else {
            Ok(r as u64)
        }
    }
}

/// A thread stopped under ptrace (seized and interrupted) that we drive.
pub struct PtraceTracee {
    pid: Pid,
    /// Registers the thread had when we took it; remote syscalls start from a copy.
    base: Regs,
    gadget: u64,
    mem: MemTracee,
}

impl PtraceTracee {
    /// Take a thread that is already in a ptrace stop. `gadget` is set later with
    /// [`PtraceTracee::set_gadget`] (see [`find_gadget`]).
    pub fn new(pid: Pid) -> Result<PtraceTracee> {
        let base = ptrace::get_regs(pid).map_err(|source| TraceeError::Ptrace {
            pid: pid.as_raw(),
            step: "GETREGS",
            source,
        })?;
        Ok(PtraceTracee {
            pid,
            base,
            gadget: 0,
            mem: MemTracee::open(pid.as_raw())?,
        })
    }

    pub fn base_regs(&self) -> &Regs {
        &self.base
    }

    pub fn set_gadget(&mut self, addr: u64) {
        self.gadget = addr;
    }

    pub fn gadget(&self) -> u64 {
        self.gadget
    }

    /// Step the thread to the next stop and expect a syscall stop.
    fn step(&self, what: &'static str) -> Result<()> {
        ptrace::syscall(self.pid, 0).map_err(|source| TraceeError::Ptrace {
            pid: self.pid.as_raw(),
            step: what,
            source,
        })?;
        loop {
            match wait_stop(self.pid)? {
                WaitStatus::Syscall => return Ok(()),
                // A remote clone3 of a thread reports PTRACE_EVENT_CLONE between its entry
                // and exit stops: step on to the exit.
                WaitStatus::Stopped { event, .. }
                    if event == libc::PTRACE_EVENT_CLONE || event == libc::PTRACE_EVENT_FORK =>
                {
                    ptrace::syscall(self.pid, 0).map_err(|source| TraceeError::Ptrace {
                        pid: self.pid.as_raw(),
                        step: what,
                        source,
                    })?;
                }
                // A trap queued before we took over (PTRACE_INTERRUPT of a thread that was
                // already in a job-control stop reports twice): it comes before the thread
                // runs anything, so the registers we set still stand; step again.
                WaitStatus::Stopped { event, .. } if event == ptrace::EVENT_STOP => {
                    ptrace::syscall(self.pid, 0).map_err(|source| TraceeError::Ptrace {
                        pid: self.pid.as_raw(),
                        step: what,
                        source,
                    })?;
                }
                other => {
                    return Err(TraceeError::UnexpectedStop {
                        pid: self.pid.as_raw(),
                        step: what,
                        status: format!("{other:?}"),
                    })
                }
            }
        }
    }

    /// Set the registers so that, once resumed, the thread runs exit_group(`code`) at the
    /// gadget (and nothing of its own).
    pub fn aim_at_exit(&self, code: u64) -> Result<()> {
        let mut regs = self.base;
        regs.rip = self.gadget;
        regs.rax = libc::SYS_exit_group as u64;
        regs.rdi = code;
        regs.orig_rax = u64::MAX;
        self.set_regs(&regs)
    }

    /// Put `regs` into the thread.
    pub fn set_regs(&self, regs: &Regs) -> Result<()> {
        ptrace::set_regs(self.pid, regs).map_err(|source| TraceeError::Ptrace {
            pid: self.pid.as_raw(),
            step: "SETREGS",
            source,
        })
    }
}

/// Wait for the next stop of `pid`, turning exits into [`TraceeError::Gone`].
pub fn wait_stop(pid: Pid) -> Result<WaitStatus> {
    let (_, st) = ptrace::wait(pid, false)
        .map_err(|source| TraceeError::Ptrace {
            pid: pid.as_raw(),
            step: "waitpid",
            source,
        })?
        .expect("blocking wait returns a status");
    match st {
        WaitStatus::Exited(_) | WaitStatus::Signaled(_) => Err(TraceeError::Gone {
            pid: pid.as_raw(),
            status: format!("{st:?}"),
        }),
        other => Ok(other),
    }
}

impl Tracee for PtraceTracee {
    fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    fn syscall_raw(&mut self, nr: i64, args: [u64; 6]) -> Result<i64> {
        if self.gadget == 0 {
            return Err(TraceeError::NoGadget {
                pid: self.pid.as_raw(),
            });
        }
        let mut regs = self.base;
        regs.rip = self.gadget;
        regs.rax = nr as u64;
        regs.orig_rax = u64::MAX;
        regs.rdi = args[0];
        regs.rsi = args[1];
        regs.rdx = args[2];
        regs.r10 = args[3];
        regs.r8 = args[4];
        regs.r9 = args[5];
        self.set_regs(&regs)?;
        self.step("syscall entry")?;
        self.step("syscall exit")?;
        let out = ptrace::get_regs(self.pid).map_err(|source| TraceeError::Ptrace {
            pid: self.pid.as_raw(),
            step: "GETREGS",
            source,
        })?;
        Ok(out.rax as i64)
    }

    fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.mem.read_mem(addr, buf)
    }

    fn write_mem(&mut self, addr: u64, data: &[u8]) -> Result<()> {
        self.mem.write_mem(addr, data)
    }
}

/// A process's memory without its threads: /proc/PID/mem, usable from any thread of ours
/// (ptrace requests are not: only the tracing thread may make them). For copying pages while
/// the tracing thread goes on with other work; remote syscalls are refused.
pub struct MemTracee {
    pid: i32,
    mem: File,
}

impl MemTracee {
    pub fn open(pid: i32) -> Result<MemTracee> {
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(|source| TraceeError::Memory {
                pid,
                addr: 0,
                len: 0,
                source,
            })?;
        Ok(MemTracee { pid, mem })
    }
}

impl Tracee for MemTracee {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn syscall_raw(&mut self, _nr: i64, _args: [u64; 6]) -> Result<i64> {
        Err(TraceeError::NoGadget { pid: self.pid })
    }

    fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.mem
            .read_exact_at(buf, addr)
            .map_err(|source| TraceeError::Memory {
                pid: self.pid,
                addr,
                len: buf.len(),
                source,
            })
    }

    fn write_mem(&mut self, addr: u64, data: &[u8]) -> Result<()> {
        self.mem
            .write_all_at(data, addr)
            .map_err(|source| TraceeError::Memory {
                pid: self.pid,
                addr,
                len: data.len(),
                source,
            })
    }
}

/// Find a `syscall` instruction (0f 05) in the vDSO at `[start, end)` of the tracee.
pub fn find_gadget(t: &impl Tracee, start: u64, end: u64) -> Result<u64> {
    let mut buf = vec![0u8; (end - start) as usize];
    t.read_mem(start, &mut buf)?;
    buf.windows(2)
        .position(|w| w == [0x0f, 0x05])
        .map(|off| start + off as u64)
        .ok_or(TraceeError::NoGadget { pid: t.pid() })
}

/// A `syscall` instruction in a process that has no vDSO (it unmapped it, or the kernel
/// maps none): the two bytes before the `rip` of a thread stopped right after a syscall, when
/// they are 0f 05, else the first 0f 05 in its executable memory (`exec`: readable and
/// executable ranges, read through /proc/PID/mem). Any two such bytes do: the CPU decodes
/// from wherever rip points, whatever instruction they were part of.
pub fn find_gadget_anywhere(t: &impl Tracee, rips: &[u64], exec: &[(u64, u64)]) -> Result<u64> {
    for &rip in rips {
        let mut b = [0u8; 2];
        if rip >= 2 && t.read_mem(rip - 2, &mut b).is_ok() && b == [0x0f, 0x05] {
            return Ok(rip - 2);
        }
    }
    const CHUNK: u64 = 1 << 20;
    let mut buf = Vec::new();
    for &(start, end) in exec {
        let mut at = start;
        while at < end {
            // One byte of overlap, so that a pair across chunks is found too.
            let to = (at + CHUNK + 1).min(end);
            buf.resize((to - at) as usize, 0);
            if t.read_mem(at, &mut buf).is_err() {
                break;
            }
            if let Some(off) = buf.windows(2).position(|w| w == [0x0f, 0x05]) {
                return Ok(at + off as u64);
            }
            at += CHUNK;
        }
    }
    Err(TraceeError::NoGadget { pid: t.pid() })
}

/// Linux's syscall-restart return values, seen in `rax` of a thread stopped inside a syscall.
pub const ERESTARTSYS: i64 = 512;
pub const ERESTARTNOINTR: i64 = 513;
pub const ERESTARTNOHAND: i64 = 514;
pub const ERESTART_RESTARTBLOCK: i64 = 516;

/// Registers a thread must resume with so that a syscall it was stopped in restarts, as the
/// kernel would do on the way back to user space: rewind over the `syscall` instruction and
/// reload the number. We must do it ourselves because after remote syscalls (or in a new
/// process) the kernel no longer applies its restart logic to these registers.
/// `restart_block` says whether an `ERESTART_RESTARTBLOCK` syscall may use `restart_syscall`
/// (only in the same process, whose kernel restart block is intact); otherwise the original
/// syscall is issued again from the start.
pub fn resume_regs(saved: &Regs, restart_block: bool) -> Regs {
    let mut r = *saved;
    if (saved.orig_rax as i64) >= 0 {
        match -(saved.rax as i64) {
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                r.rip -= 2;
                r.rax = saved.orig_rax;
            }
            ERESTART_RESTARTBLOCK => {
                r.rip -= 2;
                r.rax = if restart_block {
                    libc::SYS_restart_syscall as u64
                } else {
                    saved.orig_rax
                };
            }
            _ => {}
        }
    }
    r.orig_rax = u64::MAX;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(rax: i64, orig: i64, rip: u64) -> Regs {
        // SAFETY-free: Regs is plain data; build it field by field from zero.
        let mut r: Regs = ptrace_zero();
        r.rax = rax as u64;
        r.orig_rax = orig as u64;
        r.rip = rip;
        r
    }

    fn ptrace_zero() -> Regs {
        Regs {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            rbp: 0,
            rbx: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rax: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            orig_rax: 0,
            rip: 0,
            cs: 0,
            eflags: 0,
            rsp: 0,
            ss: 0,
            fs_base: 0,
            gs_base: 0,
            ds: 0,
            es: 0,
            fs: 0,
            gs: 0,
        }
    }

    #[test]
    fn restart_rules() {
        // read() interrupted: rewind and reload the number.
        let r = resume_regs(&regs(-ERESTARTSYS, 0, 0x1002), false);
        assert_eq!((r.rip, r.rax, r.orig_rax), (0x1000, 0, u64::MAX));
        // nanosleep in the same process: restart_syscall.
        let r = resume_regs(&regs(-ERESTART_RESTARTBLOCK, 35, 0x2002), true);
        assert_eq!((r.rip, r.rax), (0x2000, libc::SYS_restart_syscall as u64));
        // ... in a restored process: the original syscall again.
        let r = resume_regs(&regs(-ERESTART_RESTARTBLOCK, 35, 0x2002), false);
        assert_eq!((r.rip, r.rax), (0x2000, 35));
        // not in a syscall, or a finished one: untouched.
        let r = resume_regs(&regs(-4, 0, 0x3002), false);
        assert_eq!((r.rip, r.rax as i64), (0x3002, -4));
        let r = resume_regs(&regs(-ERESTARTSYS, -1, 0x3002), false);
        assert_eq!(r.rip, 0x3002);
    }
}
