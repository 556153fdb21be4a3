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
