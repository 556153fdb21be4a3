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
        i32::from_le_bytes(self.raw[0..4].try_into().unwrap_or([0; 4]))
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
}
