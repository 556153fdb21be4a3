//! One thread: registers, extended CPU state, signal mask and queue, per-thread kernel
//! registrations (rseq, robust futex list, clear_child_tid, sigaltstack).

use crate::entries::{CredsEntry, SchedEntry, SeccompFilterEntry, SiginfoEntry};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadEntry {
    pub tid: i32,
    /// The thread's name (/proc/PID/task/TID/comm).
    #[serde(default)]
    pub comm: String,
    pub regs: RegsEntry,
    /// The raw XSAVE area (NT_X86_XSTATE).
    #[serde(with = "serde_bytes")]
    pub xstate: Vec<u8>,
    pub sigmask: u64,
    /// The thread's private pending signal queue.
    pub pending: Vec<SiginfoEntry>,
    pub rseq: Option<RseqEntry>,
    pub robust_list: u64,
    pub robust_list_len: u64,
    pub clear_child_tid: u64,
    pub altstack: AltStackEntry,
    /// The thread's own credentials, when they differ from the process's (a raw setresuid
    /// changes one thread only); None: the process's.
    #[serde(default)]
    pub creds: Option<CredsEntry>,
    /// Scheduling policy and priority (per thread to the kernel).
    #[serde(default)]
    pub sched: Option<SchedEntry>,
    /// The thread's cgroups when they differ from its process's (cgroup v1 moves threads one
    /// by one).
    #[serde(default)]
    pub cgroups: Option<Vec<crate::entries::CgroupMemberEntry>>,
    /// The thread's own seccomp state, when it differs from the process's (the leader's):
    /// filters installed without SECCOMP_FILTER_FLAG_TSYNC reach one thread only. None: the
    /// process's. Since 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<ThreadSeccompEntry>,
}

/// One thread's seccomp state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSeccompEntry {
    /// 0 none, 1 strict, 2 filter.
    pub mode: u32,
    /// Its filters, oldest first.
    pub filters: Vec<SeccompFilterEntry>,
}

/// x86_64 `user_regs_struct`, field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegsEntry {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RseqEntry {
    pub ptr: u64,
    pub len: u32,
    pub signature: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AltStackEntry {
    pub sp: u64,
    pub flags: i32,
    pub size: u64,
}
