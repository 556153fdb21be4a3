//! Signal state of a process: dispositions (sigaction), the process-wide pending queue, and
//! interval timers. Dispositions and timers can only be read by the process itself, so both
//! directions use remote syscalls through the scratch area.

use crate::scratch::{bytes_to_words, words_to_bytes, Scratch};
use crate::tracee::{Tracee, TraceeError};
use stasis_image::{ItimerEntry, PosixTimerEntry, SigactionEntry, SiginfoEntry};

/// Bytes of a `struct kernel_sigaction` on x86_64: handler, flags, restorer, mask.
const KSIGACTION: u64 = 32;

/// Every disposition that is not the kernel's zero one. All 62 catchable signals are asked:
/// /proc's SigCgt/SigIgn miss SIG_DFL entries with flags (SA_RESTORER from a sigaction()
/// call, SA_NOCLDWAIT on SIGCHLD), which a program can observe.
pub fn dump_sigactions(
    t: &mut impl Tracee,
    s: Scratch,
) -> Result<Vec<SigactionEntry>, TraceeError> {
    for sig in 1..=64u64 {
        if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
            continue;
        }
        t.syscall(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            [sig, 0, s.at(sig * KSIGACTION), 8, 0, 0],
        )?;
    }
    let mut raw = vec![0u8; (65 * KSIGACTION) as usize];
    t.read_mem(s.addr, &mut raw)?;
    let w = bytes_to_words(&raw);
    let mut out = Vec::new();
    for sig in 1..=64usize {
        let (handler, flags, restorer, mask) =
            (w[sig * 4], w[sig * 4 + 1], w[sig * 4 + 2], w[sig * 4 + 3]);
        if handler == 0 && flags == 0 && mask == 0 {
            continue;
        }
        out.push(SigactionEntry {
            sig: sig as u32,
            handler,
            flags,
            restorer,
            mask,
        });
    }
    Ok(out)
}

pub fn restore_sigactions(
    t: &mut impl Tracee,
    s: Scratch,
    acts: &[SigactionEntry],
) -> Result<(), TraceeError> {
    for a in acts {
        t.write_mem(
            s.addr,
            &words_to_bytes(&[a.handler, a.flags, a.restorer, a.mask]),
        )?;
        t.syscall(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            [a.sig as u64, s.addr, 0, 8, 0, 0],
        )?;
    }
    Ok(())
}

fn us(sec: u64, usec: u64) -> u64 {
    sec * 1_000_000 + usec
}

/// ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF, the armed ones only.
pub fn dump_itimers(t: &mut impl Tracee, s: Scratch) -> Result<Vec<ItimerEntry>, TraceeError> {
    let mut out = Vec::new();
    for which in 0..3u64 {
        t.syscall(
            "getitimer",
            libc::SYS_getitimer,
            [which, s.addr, 0, 0, 0, 0],
        )?;
        let mut raw = [0u8; 32];
        t.read_mem(s.addr, &mut raw)?;
        let w = bytes_to_words(&raw);
        let (interval_us, value_us) = (us(w[0], w[1]), us(w[2], w[3]));
        if interval_us != 0 || value_us != 0 {
            out.push(ItimerEntry {
                which: which as u32,
                interval_us,
                value_us,
            });
        }
    }
    Ok(out)
}

pub fn restore_itimers(
    t: &mut impl Tracee,
    s: Scratch,
    timers: &[ItimerEntry],
) -> Result<(), TraceeError> {
    for it in timers {
        // A timer that was about to fire must not be disarmed by a zero value.
        let value = it.value_us.max(1);
        let w = [
            it.interval_us / 1_000_000,
            it.interval_us % 1_000_000,
            value / 1_000_000,
            value % 1_000_000,
        ];
        t.write_mem(s.addr, &words_to_bytes(&w))?;
        t.syscall(
            "setitimer",
            libc::SYS_setitimer,
            [it.which as u64, s.addr, 0, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// Re-queue saved signals of process `tgid`: per thread with rt_tgsigqueueinfo, process-wide
/// with rt_sigqueueinfo. The tracee sends them to itself, which the kernel allows for any
/// si_code, provided a thread-directed one is sent by that very thread (`t` must be `tid`).
pub fn queue_signals(
    t: &mut impl Tracee,
    s: Scratch,
    tgid: i32,
    tid: Option<i32>,
    sigs: &[SiginfoEntry],
) -> Result<(), TraceeError> {
    let pid = tgid as u64;
    for si in sigs {
        t.write_mem(s.addr, &si.raw)?;
        let signo = si.signo() as u64;
        match tid {
            Some(tid) => t.syscall(
                "rt_tgsigqueueinfo",
                libc::SYS_rt_tgsigqueueinfo,
                [pid, tid as u64, signo, s.addr, 0, 0],
            )?,
            None => t.syscall(
                "rt_sigqueueinfo",
                libc::SYS_rt_sigqueueinfo,
                [pid, signo, s.addr, 0, 0, 0],
            )?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTracee;
    use crate::scratch::words_to_bytes;

    #[test]
    fn sigactions_roundtrip_through_remote_calls() {
        let s = Scratch { addr: 0x10000 };
        // Dump: the process answers rt_sigaction by writing its disposition into the scratch
        // slot of each signal; here SIGUSR1 has a handler and SIGHUP is ignored.
        let mut t = FakeTracee::default();
        t.write_mem(
            s.at(10 * KSIGACTION),
            &words_to_bytes(&[0x401000, 0x0400_0004, 0x402000, 1 << 1]),
        )
        .unwrap();
        t.write_mem(s.at(KSIGACTION), &words_to_bytes(&[1, 0, 0, 0]))
            .unwrap();
        let acts = dump_sigactions(&mut t, s).unwrap();
        assert_eq!(t.calls.len(), 62, "one rt_sigaction per catchable signal");
        assert!(t
            .calls
            .iter()
            .all(|c| c.nr == libc::SYS_rt_sigaction && c.args[1] == 0));
        assert_eq!(acts.len(), 2);
        assert_eq!((acts[0].sig, acts[0].handler), (1, 1));
        assert_eq!(
            (
                acts[1].sig,
                acts[1].handler,
                acts[1].flags,
                acts[1].restorer,
                acts[1].mask
            ),
            (10, 0x401000, 0x0400_0004, 0x402000, 2)
        );

        // Restore: one rt_sigaction per saved disposition, struct in scratch at call time.
        let mut r = FakeTracee {
            watch: Some((s.addr, 32)),
            ..Default::default()
        };
        restore_sigactions(&mut r, s, &acts).unwrap();
        assert_eq!(r.calls.len(), 2);
        assert_eq!(r.calls[1].args[..2], [10, s.addr]);
        assert_eq!(
            r.seen[1],
            words_to_bytes(&[0x401000, 0x0400_0004, 0x402000, 2])
        );
    }

    #[test]
    fn itimers_keep_interval_and_never_disarm() {
        let s = Scratch { addr: 0x20000 };
        let mut r = FakeTracee {
            watch: Some((s.addr, 32)),
            ..Default::default()
        };
        let timers = [ItimerEntry {
            which: 0,
            interval_us: 20_000,
            value_us: 0,
        }];
        restore_itimers(&mut r, s, &timers).unwrap();
        assert_eq!(r.calls[0].nr, libc::SYS_setitimer);
        // interval 0 s 20000 us; a zero value would disarm the timer, so at least 1 us.
        assert_eq!(r.seen[0], words_to_bytes(&[0, 20_000, 0, 1]));
    }
}

/// The POSIX timers of the process: /proc/PID/timers says which exist and how they notify;
/// their time left and period are asked of the process (timer_gettime).
pub fn dump_posix_timers(
    t: &mut impl Tracee,
    s: Scratch,
    timers: &[stasis_procfs::timers::PosixTimer],
) -> Result<Vec<PosixTimerEntry>, TraceeError> {
    use stasis_procfs::timers::Notify;
    let mut out = Vec::new();
    for pt in timers {
        let (interval_ns, value_ns) = timer_time(t, s, pt.id)?;
        let (notify, tid) = match pt.notify {
            Notify::Signal => (libc::SIGEV_SIGNAL, 0),
            Notify::None => (libc::SIGEV_NONE, 0),
            Notify::Thread(tid) => (libc::SIGEV_THREAD_ID, tid),
            Notify::SigevThread => (libc::SIGEV_THREAD, 0),
        };
        out.push(PosixTimerEntry {
            id: pt.id,
            clock: pt.clock,
            notify,
            tid,
            signo: pt.signo,
            sigval: pt.sigval,
            interval_ns,
            value_ns,
            pending_overrun: None,
        });
    }
    out.sort_by_key(|e| e.id);
    Ok(out)
}

/// timer_gettime of timer `id`: its period and time left, in nanoseconds.
fn timer_time(t: &mut impl Tracee, s: Scratch, id: i32) -> Result<(u64, u64), TraceeError> {
    t.syscall(
        "timer_gettime",
        libc::SYS_timer_gettime,
        [id as u64, s.at(4096 + 640), 0, 0, 0, 0],
    )?;
    let mut raw = [0u8; 32];
    t.read_mem(s.at(4096 + 640), &mut raw)?;
    let w = bytes_to_words(&raw);
    Ok((w[0] * 1_000_000_000 + w[1], w[2] * 1_000_000_000 + w[3]))
}

/// Recreate POSIX timers with their ids. The kernel hands out ids in sequence, so gaps are
/// filled with placeholder timers, deleted once every saved timer exists.
pub fn restore_posix_timers(
    t: &mut impl Tracee,
    s: Scratch,
    timers: &[PosixTimerEntry],
) -> Result<(), TimerError> {
    let pid = t.pid();
    let mut fillers = Vec::new();
    for pt in timers {
        // struct sigevent: sigev_value (8), sigev_signo (4), sigev_notify (4), _tid (4), pad.
        let mut ev = [0u8; 64];
        ev[0..8].copy_from_slice(&pt.sigval.to_le_bytes());
        ev[8..12].copy_from_slice(&pt.signo.to_le_bytes());
        ev[12..16].copy_from_slice(&pt.notify.to_le_bytes());
        ev[16..20].copy_from_slice(&pt.tid.to_le_bytes());
        loop {
            t.write_mem(s.at(4096), &ev)?;
            t.syscall(
                "timer_create",
                libc::SYS_timer_create,
                [pt.clock as u64, s.at(4096), s.at(4096 + 64), 0, 0, 0],
            )?;
            let mut idb = [0u8; 4];
            t.read_mem(s.at(4096 + 64), &mut idb)?;
            let got = i32::from_le_bytes(idb);
            if got == pt.id {
                break;
            }
            if got > pt.id {
                return Err(TimerError::Id {
                    pid,
                    wanted: pt.id,
                    got,
                });
            }
            fillers.push(got);
        }
        let value = if pt.value_ns == 0 && pt.interval_ns == 0 {
            0
        } else {
            pt.value_ns.max(1)
        };
        let its = [
            pt.interval_ns / 1_000_000_000,
            pt.interval_ns % 1_000_000_000,
            value / 1_000_000_000,
            value % 1_000_000_000,
        ];
        t.write_mem(s.at(4096 + 128), &words_to_bytes(&its))?;
        t.syscall(
            "timer_settime",
            libc::SYS_timer_settime,
            [pt.id as u64, 0, s.at(4096 + 128), 0, 0, 0],
        )?;
    }
    // A timer whose signal was pending sends it again now, with its overruns.
    for pt in timers {
        if let Some(n) = pt.pending_overrun {
            resend(t, s, pt, n)?;
        }
    }
    for f in fillers {
        t.syscall(
            "timer_delete",
            libc::SYS_timer_delete,
            [f as u64, 0, 0, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// si_code of a signal a POSIX timer sent.
const SI_TIMER: i32 = -2;
const TIMER_ABSTIME: u64 = 1;

/// Make timer `pt` send its signal now as if it had been pending with `overrun` overruns,
/// its next expiry `pt.value_ns` from now: armed (absolute time) to have expired `overrun` + 1
/// periods before that, it fires at once; when the signal is delivered the kernel forwards
/// the timer over the missed periods and reports them as the overrun (si_overrun and
/// timer_getoverrun), and the timer goes on at its old phase. A one-shot timer just fires.
fn resend(
    t: &mut impl Tracee,
    s: Scratch,
    pt: &PosixTimerEntry,
    overrun: u32,
) -> Result<(), TraceeError> {
    let (interval_ns, value_ns) = (pt.interval_ns, pt.value_ns);
    // The timer's clock as the process sees it (its time namespace may shift it).
    t.syscall(
        "clock_gettime",
        libc::SYS_clock_gettime,
        [pt.clock as u64, s.at(4096 + 192), 0, 0, 0, 0],
    )?;
    let mut raw = [0u8; 16];
    t.read_mem(s.at(4096 + 192), &mut raw)?;
    let w = bytes_to_words(&raw);
    let now = (w[0] * 1_000_000_000 + w[1]) as i128;
    let start = if interval_ns == 0 {
        1
    } else {
        now + value_ns as i128 - (overrun as i128 + 1) * interval_ns as i128
    };
    // An absolute time of 0 would disarm the timer.
    let start = start.max(1) as u64;
    let its = [
        interval_ns / 1_000_000_000,
        interval_ns % 1_000_000_000,
        start / 1_000_000_000,
        start % 1_000_000_000,
    ];
    t.write_mem(s.at(4096 + 128), &words_to_bytes(&its))?;
    t.syscall(
        "timer_settime (resend)",
        libc::SYS_timer_settime,
        [pt.id as u64, TIMER_ABSTIME, s.at(4096 + 128), 0, 0, 0],
    )?;
    Ok(())
}

/// Take the pending signals of POSIX timers out of the saved ones and record their overrun
/// counts in `timers`. Only delivery tells the overrun (the kernel computes it then), so the
/// thread `t` (`tid` of process `tgid`) dequeues, with rt_sigtimedwait, every pending signal
/// of each timer's number it can see: its own queue `private` first, then the process's
/// `shared` (the kernel's order). Each is then put back in the same order: a timer's by
/// making the timer send it again with the same overrun, the others by re-queueing them. The
/// process is left with the same pending signals it had.
///
/// `timers` holds the process's timers; this thread handles those directed at it, and the
/// process-directed ones when it is the leader.
pub fn take_timer_signals(
    t: &mut impl Tracee,
    s: Scratch,
    tgid: i32,
    tid: i32,
    private: &mut Vec<SiginfoEntry>,
    shared: &mut Vec<SiginfoEntry>,
    timers: &mut [PosixTimerEntry],
) -> Result<(), TraceeError> {
    let leader = tid == tgid;
    let mut signos: Vec<i32> = Vec::new();
    for pt in timers.iter() {
        let mine = match pt.notify {
            libc::SIGEV_THREAD_ID => pt.tid == tid,
            libc::SIGEV_SIGNAL | libc::SIGEV_THREAD => leader,
            _ => false,
        };
        let queue: &Vec<SiginfoEntry> = if pt.notify == libc::SIGEV_THREAD_ID {
            private
        } else {
            shared
        };
        let pending = queue
            .iter()
            .any(|si| si.code() == SI_TIMER && si.timer_id() == pt.id && si.signo() == pt.signo);
        if mine && pending && !signos.contains(&pt.signo) {
            signos.push(pt.signo);
        }
    }
    for signo in signos {
        let in_private = private.iter().filter(|si| si.signo() == signo).count();
        let in_shared = shared.iter().filter(|si| si.signo() == signo).count();
        let set: u64 = 1 << (signo - 1);
        t.write_mem(s.at(4096 + 256), &set.to_le_bytes())?;
        // A zero timeout: never wait.
        t.write_mem(s.at(4096 + 272), &[0u8; 16])?;
        let mut taken = Vec::new();
        for i in 0..in_private + in_shared {
            let got = t.syscall(
                "rt_sigtimedwait",
                libc::SYS_rt_sigtimedwait,
                [
                    s.at(4096 + 256),
                    s.at(4096 + 512),
                    s.at(4096 + 272),
                    8,
                    0,
                    0,
                ],
            )?;
            if got as i32 != signo {
                break;
            }
            let mut raw = vec![0u8; 128];
            t.read_mem(s.at(4096 + 512), &mut raw)?;
            taken.push((i < in_private, SiginfoEntry { raw }));
        }
        for (was_private, si) in &taken {
            let timer = timers.iter_mut().find(|pt| {
                si.code() == SI_TIMER && pt.id == si.timer_id() && pt.signo == si.signo()
            });
            match timer {
                Some(pt) => {
                    let n = si.overrun().max(0) as u32;
                    pt.pending_overrun = Some(n);
                    // Its time left, after the delivery re-armed it.
                    pt.value_ns = timer_time(t, s, pt.id)?.1;
                    resend(t, s, pt, n)?;
                }
                None => {
                    let target = if *was_private { Some(tid) } else { None };
                    queue_signals(t, s, tgid, target, std::slice::from_ref(si))?;
                }
            }
        }
        // The image holds the timers' signals as timer state, not as queued signals.
        let is_timer_signal = |si: &SiginfoEntry| {
            si.signo() == signo
                && si.code() == SI_TIMER
                && timers
                    .iter()
                    .any(|pt| pt.id == si.timer_id() && pt.pending_overrun.is_some())
        };
        private.retain(|si| !is_timer_signal(si));
        shared.retain(|si| !is_timer_signal(si));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error("pid {pid}: POSIX timer {wanted} cannot get its id back (the kernel gave {got}); restore it into a process with no other timers")]
    Id { pid: i32, wanted: i32, got: i32 },
    #[error(transparent)]
    Tracee(#[from] TraceeError),
}
