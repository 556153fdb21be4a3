//! One process: identity, tree position, mm fields, credentials, limits, and pointers to
//! everything else it owns (threads, VMAs, fds, signal state).

use crate::entries::{
    FdEntry, ItimerEntry, PosixTimerEntry, SigactionEntry, SiginfoEntry, ThreadEntry, VmaEntry,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// /proc/PID/comm.
    pub comm: String,
    /// /proc/PID/exe target.
    pub exe: String,
    pub cwd: String,
    pub root: String,
    pub umask: u32,
    pub personality: u32,
    pub creds: CredsEntry,
    pub rlimits: Vec<RlimitEntry>,
    pub mm: MmEntry,
    pub vmas: Vec<VmaEntry>,
    pub threads: Vec<ThreadEntry>,
    pub sigactions: Vec<SigactionEntry>,
    pub itimers: Vec<ItimerEntry>,
    /// POSIX timers (timer_create), by id.
    #[serde(default)]
    pub posix_timers: Vec<PosixTimerEntry>,
    /// The process-wide (shared) pending signal queue.
    pub shared_pending: Vec<SiginfoEntry>,
    pub fds: Vec<FdEntry>,
    /// prctl(PR_GET_DUMPABLE): changing credentials resets it, so restore sets it after them.
    #[serde(default = "one")]
    pub dumpable: u32,
    /// prctl(PR_GET_PDEATHSIG): signal on parent death (0 = none).
    #[serde(default)]
    pub pdeath_signal: u32,
    /// prctl(PR_GET_CHILD_SUBREAPER).
    #[serde(default)]
    pub child_subreaper: bool,
    /// prctl(PR_GET_THP_DISABLE): bit 0 THP disabled, bit 1 PR_THP_DISABLE_EXCEPT_ADVISED.
    #[serde(default)]
    pub thp_disable: u32,
    /// prctl(PR_SET_NO_NEW_PRIVS) was set.
    #[serde(default)]
    pub no_new_privs: bool,
    /// Seccomp mode: 0 none, 1 strict, 2 filter.
    #[serde(default)]
    pub seccomp_mode: u32,
    /// The seccomp filters (classic BPF, 8-byte instructions), oldest first.
    #[serde(default)]
    pub seccomp_filters: Vec<SeccompFilterEntry>,
    /// Set for a zombie (exited, not reaped by its parent yet): its wait status. Restore
    /// recreates it only so that it can exit again with that status; nothing else is saved.
    #[serde(default)]
    pub zombie: Option<i32>,
    /// The process was in a job-control stop at dump time and must stay stopped.
    #[serde(default)]
    pub stopped: bool,
    /// The signal that stopped it (SIGTSTP, SIGTTIN, SIGTTOU or SIGSTOP; 0 in older images:
    /// SIGSTOP).
    #[serde(default)]
    pub stop_sig: i32,
    /// Its fd table is its parent's (CLONE_FILES): restored by cloning it so, its fds are the
    /// parent's.
    #[serde(default)]
    pub files_shared: bool,
    /// Its cgroup in each hierarchy, saved with `--manage-cgroups` (its threads' are the same
    /// unless a thread says otherwise).
    #[serde(default)]
    pub cgroups: Vec<super::CgroupMemberEntry>,
    /// /proc/PID/oom_score_adj (None in images before 1.4).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// /proc/PID/loginuid (the audit login uid; u32::MAX: unset).
    #[serde(default)]
    pub loginuid: Option<u32>,
    /// The working directory as a file of the file table, when it is not reachable by path
    /// (a removed directory: a `ghost` entry).
    #[serde(default)]
    pub cwd_file: Option<u32>,
    /// The working directory is /proc/N of a process N that has exited since it went there
    /// (an unhashed /proc entry: getcwd fails with ENOENT, the link reads "/proc/N
    /// (deleted)"). Restore enters /proc/N of a helper process with that PID, then ends the
    /// helper. Since 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd_dead_pid: Option<i32>,
    /// membarrier registrations (MEMBARRIER_CMD_GET_REGISTRATIONS: the REGISTER_* commands
    /// the process made).
    #[serde(default)]
    pub membarrier: u32,
}

fn one() -> u32 {
    1
}

/// The capability sets of a thread, one bit per capability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsEntry {
    pub inheritable: u64,
    pub permitted: u64,
    pub effective: u64,
    pub bounding: u64,
    pub ambient: u64,
}

/// A thread's scheduling: struct sched_attr's policy, flags, nice, priority and the
/// SCHED_DEADLINE parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedEntry {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// One seccomp filter program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompFilterEntry {
    #[serde(with = "serde_bytes")]
    pub bpf: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredsEntry {
    /// real, effective, saved, fs
    pub uid: [u32; 4],
    pub gid: [u32; 4],
    pub groups: Vec<u32>,
    /// Capability sets (None in images before 1.4: the restorer's are kept).
    #[serde(default)]
    pub caps: Option<CapsEntry>,
    /// Securebits (PR_GET_SECUREBITS).
    #[serde(default)]
    pub secbits: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitEntry {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// The `mm_struct` fields `PR_SET_MM_MAP` restores.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmEntry {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    /// The auxiliary vector as (type, value) words, without the AT_NULL terminator.
    pub auxv: Vec<u64>,
}
