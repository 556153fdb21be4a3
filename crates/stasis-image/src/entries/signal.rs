//! Signal state: dispositions, queued signals, interval timers.

use serde::{Deserialize, Serialize};

/// One non-default signal disposition (`struct kernel_sigaction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigactionEntry {
    pub sig: u32,
    /// Handler address, or 0 = SIG_DFL, 1 = SIG_IGN.
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// A queued signal, as the raw 128-byte `siginfo_t`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiginfoEntry {
    #[serde(with = "serde_bytes")]
    pub raw: Vec<u8>,
}

impl SiginfoEntry {
    pub fn signo(&self) -> i32 {
        self.int_at(0)
    }

    pub fn code(&self) -> i32 {
        self.int_at(8)
    }

    /// For a POSIX timer's signal (si_code SI_TIMER): the timer's id.
    pub fn timer_id(&self) -> i32 {
        self.int_at(16)
    }

    /// For a POSIX timer's signal: its overrun count.
    pub fn overrun(&self) -> i32 {
        self.int_at(20)
    }

    fn int_at(&self, off: usize) -> i32 {
        self.raw
            .get(off..off + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, i32::from_le_bytes)
    }
}

/// An interval timer (setitimer): which = ITIMER_REAL/VIRTUAL/PROF, times in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItimerEntry {
    pub which: u32,
    pub interval_us: u64,
    pub value_us: u64,
}

/// A POSIX timer (timer_create): its id, clock, how it notifies, and its time left/period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixTimerEntry {
    pub id: i32,
    pub clock: i32,
    /// SIGEV_SIGNAL (0), SIGEV_NONE (1) or SIGEV_THREAD_ID (4).
    pub notify: i32,
    /// The thread notified, for SIGEV_THREAD_ID.
    #[serde(default)]
    pub tid: i32,
    pub signo: i32,
    pub sigval: u64,
    pub interval_ns: u64,
    pub value_ns: u64,
    /// Its signal was pending at the dump, with this many overruns (since format 1.3). The
    /// signal is then not among the saved pending signals: restore makes the timer send it
    /// again, so that si_overrun and timer_getoverrun(2) report the count.
    #[serde(default)]
    pub pending_overrun: Option<u32>,
}
