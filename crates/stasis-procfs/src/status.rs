//! Parser for `/proc/PID/status` (and `/proc/PID/task/TID/status`).
//!
//! Owns [`Status`]: identity (pids in every namespace, credentials, groups), signal masks,
//! capabilities and the no_new_privs/seccomp state that a restore must reproduce. It must not
//! parse the memory figures (`Vm*`, `Rss*`), which smaps describes better, nor judge whether a
//! process is checkpointable.
//!
//! Fields present in every kernel since 3.0 are required; fields added later (Umask 4.7,
//! NStgid/NSpid/NSpgid/NSsid 4.1, CapAmb 4.3, NoNewPrivs 4.10, Seccomp 3.8) default when absent.
//! Defaulting a *required* field would silently restore the wrong credentials or signal state, so
//! their absence is an error instead.

use crate::num;
use crate::ParseError;

const FILE: &str = "status";

/// The parsed contents of `/proc/PID/status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// The comm, with the kernel's escaping of `\n` and `\` undone so that it equals
    /// [`crate::stat::Stat::comm`].
    pub name: String,
    /// Octal file creation mask; None on kernels before 4.7.
    pub umask: Option<u32>,
    /// First letter of `State:` (`R`, `S`, `D`, `T`, `t`, `Z`, `X`, `I`, ...).
    pub state: char,
    pub tgid: i32,
    pub pid: i32,
    pub ppid: i32,
    pub tracer_pid: i32,
    /// Real, effective, saved, filesystem.
    pub uid: [u32; 4],
    /// Real, effective, saved, filesystem.
    pub gid: [u32; 4],
    pub groups: Vec<u32>,
    /// Ids in each pid namespace, outermost (the one `/proc` was mounted in) first.
    pub ns_tgid: Vec<i32>,
    pub ns_pid: Vec<i32>,
    pub ns_pgid: Vec<i32>,
    pub ns_sid: Vec<i32>,
    pub threads: u32,
    /// Signal masks; bit `n - 1` is signal `n`.
    pub sig_pnd: u64,
    pub shd_pnd: u64,
    pub sig_blk: u64,
    pub sig_ign: u64,
    pub sig_cgt: u64,
    /// Capability sets; bit `n` is capability `n`.
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub no_new_privs: bool,
    /// 0 disabled, 1 strict, 2 filter.
    pub seccomp: u32,
}

/// Keys every supported kernel prints. Their bit in `seen` is their index here.
const REQUIRED: [&str; 19] = [
    "Name",
    "State",
    "Tgid",
    "Pid",
    "PPid",
    "TracerPid",
    "Uid",
    "Gid",
    "Groups",
    "Threads",
    "SigPnd",
    "ShdPnd",
    "SigBlk",
    "SigIgn",
    "SigCgt",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
];

/// Parse a signal mask as printed in `status` (`SigBlk:` etc.) and signalfd's fdinfo
/// (`sigmask:`): 16 hex digits, bit `n - 1` set for signal `n`.
///
/// Up to 16 digits are accepted; longer masks (architectures with more than 64 signals) are
/// rejected rather than truncated.
pub fn parse_sigmask_hex(s: &str) -> Result<u64, ParseError> {
    sigmask("sigmask", "mask", s.trim())
}

fn sigmask(file: &'static str, field: &str, s: &str) -> Result<u64, ParseError> {
    if s.is_empty() || s.len() > 16 {
        return Err(num::bad(file, field, s));
    }
    num::hex_u64(file, field, s)
}

/// Undo `seq_escape_str(.., "\n\\")`, which the kernel applies to `Name:` so that a comm with a
/// newline cannot forge extra lines. Only those two escapes exist; any other backslash pair is
/// kept as is.
fn unescape_name(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            _ => out.push('\\'),
        }
    }
    out
}

fn ids<T: std::str::FromStr>(field: &str, value: &str) -> Result<Vec<T>, ParseError> {
    value
        .split_ascii_whitespace()
        .map(|t| num::dec(FILE, field, t))
        .collect()
}

fn four(field: &str, value: &str) -> Result<[u32; 4], ParseError> {
    let mut out = [0u32; 4];
    let mut it = value.split_ascii_whitespace();
    for slot in &mut out {
        let t = it.next().ok_or_else(|| num::bad(FILE, field, value))?;
        *slot = num::dec(FILE, field, t)?;
    }
    if it.next().is_some() {
        return Err(num::bad(FILE, field, value));
    }
    Ok(out)
}

/// Parse the whole text of `/proc/PID/status`. Unknown keys are ignored.
pub fn parse_status(text: &str) -> Result<Status, ParseError> {
    let mut st = Status::default();
    let mut seen = 0u32;
    // '\n' only, so a comm ending in '\r' survives (the kernel escapes only '\n' in Name).
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((key, raw)) = line.split_once(':') else {
            return Err(ParseError::BadLine {
                file: FILE,
                line: i + 1,
                text: line.to_owned(),
                reason: "no ':' separator",
            });
        };
        let v = raw.trim();
        match key {
            // Name is the one value whose spaces are significant: strip only the tab the kernel
            // puts after the colon.
            "Name" => {
                // Hand-written fixtures may use a space instead of the kernel's tab.
                let name = raw.strip_prefix('\t').unwrap_or_else(|| raw.trim_start());
                st.name = unescape_name(name)
            }
            "Umask" => st.umask = Some(num::oct_u32(FILE, key, v)?),
            "State" => {
                st.state = v.chars().next().ok_or_else(|| ParseError::BadLine {
                    file: FILE,
                    line: i + 1,
                    text: line.to_owned(),
                    reason: "empty State",
                })?
            }
            "Tgid" => st.tgid = num::dec(FILE, key, v)?,
            "Pid" => st.pid = num::dec(FILE, key, v)?,
            "PPid" => st.ppid = num::dec(FILE, key, v)?,
            "TracerPid" => st.tracer_pid = num::dec(FILE, key, v)?,
            "Uid" => st.uid = four(key, v)?,
            "Gid" => st.gid = four(key, v)?,
            "Groups" => st.groups = ids(key, v)?,
            "NStgid" => st.ns_tgid = ids(key, v)?,
            "NSpid" => st.ns_pid = ids(key, v)?,
            "NSpgid" => st.ns_pgid = ids(key, v)?,
            "NSsid" => st.ns_sid = ids(key, v)?,
            "Threads" => st.threads = num::dec(FILE, key, v)?,
            "SigPnd" => st.sig_pnd = sigmask(FILE, key, v)?,
            "ShdPnd" => st.shd_pnd = sigmask(FILE, key, v)?,
            "SigBlk" => st.sig_blk = sigmask(FILE, key, v)?,
            "SigIgn" => st.sig_ign = sigmask(FILE, key, v)?,
            "SigCgt" => st.sig_cgt = sigmask(FILE, key, v)?,
            "CapInh" => st.cap_inh = num::hex_u64(FILE, key, v)?,
            "CapPrm" => st.cap_prm = num::hex_u64(FILE, key, v)?,
            "CapEff" => st.cap_eff = num::hex_u64(FILE, key, v)?,
            "CapBnd" => st.cap_bnd = num::hex_u64(FILE, key, v)?,
            "CapAmb" => st.cap_amb = num::hex_u64(FILE, key, v)?,
            "NoNewPrivs" => {
                st.no_new_privs = match v {
                    "0" => false,
                    "1" => true,
                    _ => return Err(num::bad(FILE, key, v)),
                }
            }
            "Seccomp" => st.seccomp = num::dec(FILE, key, v)?,
            _ => continue,
        }
        if let Some(bit) = REQUIRED.iter().position(|r| *r == key) {
            seen |= 1 << bit;
        }
    }
    for (bit, field) in REQUIRED.iter().enumerate() {
        if seen & (1 << bit) == 0 {
            return Err(ParseError::MissingField { file: FILE, field });
        }
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// python3 with a SIGUSR1 handler, SIGPIPE ignored, SIGUSR2 and SIGRTMIN+3 blocked, two
    /// threads, and comm set (PR_SET_NAME) to "my (weird) comm". Empty `Groups:` line.
    const PY_STATUS: &str = "\
Name:\tmy (weird) comm\n\
Umask:\t0022\n\
State:\tS (sleeping)\n\
Tgid:\t3310\n\
Ngid:\t0\n\
Pid:\t3310\n\
PPid:\t1\n\
TracerPid:\t0\n\
Uid:\t0\t0\t0\t0\n\
Gid:\t0\t0\t0\t0\n\
FDSize:\t256\n\
Groups:\t \n\
NStgid:\t3310\n\
NSpid:\t3310\n\
NSpgid:\t3306\n\
NSsid:\t2771\n\
Kthread:\t0\n\
VmPeak:\t  157620 kB\n\
VmSize:\t   92100 kB\n\
VmLck:\t       0 kB\n\
VmPin:\t       0 kB\n\
VmHWM:\t   14724 kB\n\
VmRSS:\t   14724 kB\n\
RssAnon:\t    7584 kB\n\
RssFile:\t    7140 kB\n\
RssShmem:\t       0 kB\n\
VmData:\t   17656 kB\n\
VmStk:\t     132 kB\n\
VmExe:\t       4 kB\n\
VmLib:\t    4860 kB\n\
VmPTE:\t      84 kB\n\
VmSwap:\t       0 kB\n\
HugetlbPages:\t       0 kB\n\
CoreDumping:\t0\n\
THP_enabled:\t1\n\
untag_mask:\t0xffffffffffffffff\n\
Threads:\t2\n\
SigQ:\t1/96364\n\
SigPnd:\t0000000000000000\n\
ShdPnd:\t0000000000000000\n\
SigBlk:\t0000001000000800\n\
SigIgn:\t0000000001001006\n\
SigCgt:\t0000000100000200\n\
CapInh:\t0000000000000000\n\
CapPrm:\t000001fffeffffff\n\
CapEff:\t000001fffeffffff\n\
CapBnd:\t000001fffeffffff\n\
CapAmb:\t0000000000000000\n\
NoNewPrivs:\t0\n\
Seccomp:\t0\n\
Seccomp_filters:\t0\n\
Speculation_Store_Bypass:\tthread vulnerable\n\
SpeculationIndirectBranch:\tconditional enabled\n\
Cpus_allowed:\t3\n\
Cpus_allowed_list:\t0-1\n\
Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001\n\
Mems_allowed_list:\t0\n\
voluntary_ctxt_switches:\t118\n\
nonvoluntary_ctxt_switches:\t7\n\
";

    /// The second thread of the same process, read via task/TID/status.
    const PY_TASK_STATUS: &str = "\
Name:\tmy (weird) comm\n\
Umask:\t0022\n\
State:\tS (sleeping)\n\
Tgid:\t3310\n\
Ngid:\t0\n\
Pid:\t3352\n\
PPid:\t1\n\
TracerPid:\t0\n\
Uid:\t0\t0\t0\t0\n\
Gid:\t0\t0\t0\t0\n\
FDSize:\t256\n\
Groups:\t \n\
NStgid:\t3310\n\
NSpid:\t3352\n\
NSpgid:\t3306\n\
NSsid:\t2771\n\
Kthread:\t0\n\
VmPeak:\t  157620 kB\n\
VmSize:\t   92100 kB\n\
VmLck:\t       0 kB\n\
VmPin:\t       0 kB\n\
VmHWM:\t   14724 kB\n\
VmRSS:\t   14724 kB\n\
RssAnon:\t    7584 kB\n\
RssFile:\t    7140 kB\n\
RssShmem:\t       0 kB\n\
VmData:\t   17656 kB\n\
VmStk:\t     132 kB\n\
VmExe:\t       4 kB\n\
VmLib:\t    4860 kB\n\
VmPTE:\t      84 kB\n\
VmSwap:\t       0 kB\n\
HugetlbPages:\t       0 kB\n\
CoreDumping:\t0\n\
THP_enabled:\t1\n\
untag_mask:\t0xffffffffffffffff\n\
Threads:\t2\n\
SigQ:\t1/96364\n\
SigPnd:\t0000000000000000\n\
ShdPnd:\t0000000000000000\n\
SigBlk:\t0000001000000800\n\
SigIgn:\t0000000001001006\n\
SigCgt:\t0000000100000200\n\
CapInh:\t0000000000000000\n\
CapPrm:\t000001fffeffffff\n\
CapEff:\t000001fffeffffff\n\
CapBnd:\t000001fffeffffff\n\
CapAmb:\t0000000000000000\n\
NoNewPrivs:\t0\n\
Seccomp:\t0\n\
Seccomp_filters:\t0\n\
Speculation_Store_Bypass:\tthread vulnerable\n\
SpeculationIndirectBranch:\tconditional enabled\n\
Cpus_allowed:\t3\n\
Cpus_allowed_list:\t0-1\n\
Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001\n\
Mems_allowed_list:\t0\n\
voluntary_ctxt_switches:\t1\n\
nonvoluntary_ctxt_switches:\t0\n\
";

    /// python3 after setgroups([4, 24, 1000, 65534]) with SIGUSR1 and SIGTERM blocked.
    const GROUPS_STATUS: &str = "\
Name:\tpython3\n\
Umask:\t0022\n\
State:\tS (sleeping)\n\
Tgid:\t3492\n\
Ngid:\t0\n\
Pid:\t3492\n\
PPid:\t1\n\
TracerPid:\t0\n\
Uid:\t0\t0\t0\t0\n\
Gid:\t0\t0\t0\t0\n\
FDSize:\t256\n\
Groups:\t4 24 1000 65534 \n\
NStgid:\t3492\n\
NSpid:\t3492\n\
NSpgid:\t3488\n\
NSsid:\t2771\n\
Kthread:\t0\n\
VmPeak:\t   18144 kB\n\
VmSize:\t   18144 kB\n\
VmLck:\t       0 kB\n\
VmPin:\t       0 kB\n\
VmHWM:\t   14540 kB\n\
VmRSS:\t   14540 kB\n\
RssAnon:\t    7480 kB\n\
RssFile:\t    7060 kB\n\
RssShmem:\t       0 kB\n\
VmData:\t    9168 kB\n\
VmStk:\t     132 kB\n\
VmExe:\t       4 kB\n\
VmLib:\t    4844 kB\n\
VmPTE:\t      80 kB\n\
VmSwap:\t       0 kB\n\
HugetlbPages:\t       0 kB\n\
CoreDumping:\t0\n\
THP_enabled:\t1\n\
untag_mask:\t0xffffffffffffffff\n\
Threads:\t1\n\
SigQ:\t1/96364\n\
SigPnd:\t0000000000000000\n\
ShdPnd:\t0000000000000000\n\
SigBlk:\t0000000000004200\n\
SigIgn:\t0000000001001006\n\
SigCgt:\t0000000000000000\n\
CapInh:\t0000000000000000\n\
CapPrm:\t000001fffeffffff\n\
CapEff:\t000001fffeffffff\n\
CapBnd:\t000001fffeffffff\n\
CapAmb:\t0000000000000000\n\
NoNewPrivs:\t0\n\
Seccomp:\t0\n\
Seccomp_filters:\t0\n\
Speculation_Store_Bypass:\tthread vulnerable\n\
SpeculationIndirectBranch:\tconditional enabled\n\
Cpus_allowed:\t3\n\
Cpus_allowed_list:\t0-1\n\
Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001\n\
Mems_allowed_list:\t0\n\
voluntary_ctxt_switches:\t14\n\
nonvoluntary_ctxt_switches:\t9\n\
";

    /// python3 with no_new_privs and a seccomp filter, in ptrace stop under strace.
    const SECCOMP_STATUS: &str = "\
Name:\tpython3\n\
Umask:\t0022\n\
State:\tt (tracing stop)\n\
Tgid:\t3624\n\
Ngid:\t0\n\
Pid:\t3624\n\
PPid:\t1\n\
TracerPid:\t3682\n\
Uid:\t0\t0\t0\t0\n\
Gid:\t0\t0\t0\t0\n\
FDSize:\t256\n\
Groups:\t \n\
NStgid:\t3624\n\
NSpid:\t3624\n\
NSpgid:\t3619\n\
NSsid:\t2771\n\
Kthread:\t0\n\
VmPeak:\t   16788 kB\n\
VmSize:\t   16752 kB\n\
VmLck:\t       0 kB\n\
VmPin:\t       0 kB\n\
VmHWM:\t   14048 kB\n\
VmRSS:\t   14048 kB\n\
RssAnon:\t    7068 kB\n\
RssFile:\t    6980 kB\n\
RssShmem:\t       0 kB\n\
VmData:\t    7972 kB\n\
VmStk:\t     132 kB\n\
VmExe:\t       4 kB\n\
VmLib:\t    4760 kB\n\
VmPTE:\t      72 kB\n\
VmSwap:\t       0 kB\n\
HugetlbPages:\t       0 kB\n\
CoreDumping:\t0\n\
THP_enabled:\t1\n\
untag_mask:\t0xffffffffffffffff\n\
Threads:\t1\n\
SigQ:\t1/96364\n\
SigPnd:\t0000000000000000\n\
ShdPnd:\t0000000000000000\n\
SigBlk:\t0000000000000000\n\
SigIgn:\t0000000001001006\n\
SigCgt:\t0000000000000000\n\
CapInh:\t0000000000000000\n\
CapPrm:\t000001fffeffffff\n\
CapEff:\t000001fffeffffff\n\
CapBnd:\t000001fffeffffff\n\
CapAmb:\t0000000000000000\n\
NoNewPrivs:\t1\n\
Seccomp:\t2\n\
Seccomp_filters:\t1\n\
Speculation_Store_Bypass:\tthread vulnerable\n\
SpeculationIndirectBranch:\tconditional enabled\n\
Cpus_allowed:\t3\n\
Cpus_allowed_list:\t0-1\n\
Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001\n\
Mems_allowed_list:\t0\n\
voluntary_ctxt_switches:\t26\n\
nonvoluntary_ctxt_switches:\t6\n\
";

    /// kthreadd: no memory lines at all, every signal ignored.
    const KTHREAD_STATUS: &str = "\
Name:\tkthreadd\n\
Umask:\t0022\n\
State:\tS (sleeping)\n\
Tgid:\t2\n\
Ngid:\t0\n\
Pid:\t2\n\
PPid:\t0\n\
TracerPid:\t0\n\
Uid:\t0\t0\t0\t0\n\
Gid:\t0\t0\t0\t0\n\
FDSize:\t64\n\
Groups:\t \n\
NStgid:\t2\n\
NSpid:\t2\n\
NSpgid:\t0\n\
NSsid:\t0\n\
Kthread:\t1\n\
Threads:\t1\n\
SigQ:\t1/96364\n\
SigPnd:\t0000000000000000\n\
ShdPnd:\t0000000000000000\n\
SigBlk:\t0000000000000000\n\
SigIgn:\tffffffffffffffff\n\
SigCgt:\t0000000000000000\n\
CapInh:\t0000000000000000\n\
CapPrm:\t000001ffffffffff\n\
CapEff:\t000001ffffffffff\n\
CapBnd:\t000001ffffffffff\n\
CapAmb:\t0000000000000000\n\
NoNewPrivs:\t0\n\
Seccomp:\t0\n\
Seccomp_filters:\t0\n\
Speculation_Store_Bypass:\tthread vulnerable\n\
SpeculationIndirectBranch:\tconditional enabled\n\
Cpus_allowed:\t3\n\
Cpus_allowed_list:\t0-1\n\
Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001\n\
Mems_allowed_list:\t0\n\
voluntary_ctxt_switches:\t58\n\
nonvoluntary_ctxt_switches:\t0\n\
";

    /// python3 running as init of a child pid namespace (`unshare --pid --fork`), read from the
    /// parent namespace.
    const NESTED_STATUS: &str = "\
Name:\tpython3\n\
Umask:\t0022\n\
State:\tS (sleeping)\n\
Tgid:\t5649\n\
Ngid:\t0\n\
Pid:\t5649\n\
PPid:\t5647\n\
TracerPid:\t0\n\
Uid:\t0\t0\t0\t0\n\
Gid:\t0\t0\t0\t0\n\
FDSize:\t256\n\
Groups:\t \n\
NStgid:\t5649\t1\n\
NSpid:\t5649\t1\n\
NSpgid:\t5644\t0\n\
NSsid:\t2771\t0\n\
Kthread:\t0\n\
VmPeak:\t   16564 kB\n\
VmSize:\t   16564 kB\n\
VmLck:\t       0 kB\n\
VmPin:\t       0 kB\n\
VmHWM:\t   13540 kB\n\
VmRSS:\t   13540 kB\n\
RssAnon:\t    6868 kB\n\
RssFile:\t    6672 kB\n\
RssShmem:\t       0 kB\n\
VmData:\t    7944 kB\n\
VmStk:\t     132 kB\n\
VmExe:\t       4 kB\n\
VmLib:\t    4672 kB\n\
VmPTE:\t      68 kB\n\
VmSwap:\t       0 kB\n\
HugetlbPages:\t       0 kB\n\
CoreDumping:\t0\n\
THP_enabled:\t1\n\
untag_mask:\t0xffffffffffffffff\n\
Threads:\t1\n\
SigQ:\t0/96364\n\
SigPnd:\t0000000000000000\n\
ShdPnd:\t0000000000000000\n\
SigBlk:\t0000000000000000\n\
SigIgn:\t0000000001001006\n\
SigCgt:\t0000000000000000\n\
CapInh:\t0000000000000000\n\
CapPrm:\t000001fffeffffff\n\
CapEff:\t000001fffeffffff\n\
CapBnd:\t000001fffeffffff\n\
CapAmb:\t0000000000000000\n\
NoNewPrivs:\t0\n\
Seccomp:\t0\n\
Seccomp_filters:\t0\n\
Speculation_Store_Bypass:\tthread vulnerable\n\
SpeculationIndirectBranch:\tconditional enabled\n\
Cpus_allowed:\t3\n\
Cpus_allowed_list:\t0-1\n\
Mems_allowed:\t00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001\n\
Mems_allowed_list:\t0\n\
voluntary_ctxt_switches:\t18\n\
nonvoluntary_ctxt_switches:\t9\n\
";

    #[test]
    fn python_main_thread() {
        let s = parse_status(PY_STATUS).unwrap();
        assert_eq!(s.name, "my (weird) comm");
        assert_eq!(s.umask, Some(0o022));
        assert_eq!(s.state, 'S');
        assert_eq!((s.tgid, s.pid, s.ppid, s.tracer_pid), (3310, 3310, 1, 0));
        assert_eq!(s.uid, [0; 4]);
        assert_eq!(s.gid, [0; 4]);
        assert!(s.groups.is_empty());
        assert_eq!(s.ns_tgid, [3310]);
        assert_eq!(s.ns_pid, [3310]);
        assert_eq!(s.ns_pgid, [3306]);
        assert_eq!(s.ns_sid, [2771]);
        assert_eq!(s.threads, 2);
        assert_eq!(s.sig_pnd, 0);
        assert_eq!(s.shd_pnd, 0);
        // SIGUSR2 (12) and SIGRTMIN+3 (37 under glibc, which reserves 32 and 33).
        assert_eq!(s.sig_blk, (1 << (12 - 1)) | (1 << (37 - 1)));
        // SIGINT and SIGQUIT (ignored for background jobs by the shell), SIGPIPE and SIGXFSZ
        // (ignored by python itself).
        assert_eq!(s.sig_ign, 0x0000_0000_0100_1006);
        for sig in [2, 3, 13, 25] {
            assert_ne!(s.sig_ign & (1 << (sig - 1)), 0, "{sig}");
        }
        // SIGUSR1 (10, our handler) and signal 33 (glibc's internal thread signal).
        assert_eq!(s.sig_cgt, (1 << (10 - 1)) | (1 << (33 - 1)));
        assert_eq!(s.cap_inh, 0);
        assert_eq!(s.cap_prm, 0x1ff_feff_ffff);
        assert_eq!(s.cap_eff, 0x1ff_feff_ffff);
        assert_eq!(s.cap_bnd, 0x1ff_feff_ffff);
        assert_eq!(s.cap_amb, 0);
        assert!(!s.no_new_privs);
        assert_eq!(s.seccomp, 0);
    }

    #[test]
    fn thread_status_differs_in_pid_only() {
        let main = parse_status(PY_STATUS).unwrap();
        let t = parse_status(PY_TASK_STATUS).unwrap();
        assert_eq!(t.tgid, 3310);
        assert_eq!(t.pid, 3352);
        assert_eq!(t.ns_pid, [3352]);
        assert_eq!(
            Status {
                pid: 3310,
                ns_pid: vec![3310],
                ..t
            },
            main
        );
    }

    #[test]
    fn groups_seccomp_tracer_kthread() {
        let g = parse_status(GROUPS_STATUS).unwrap();
        assert_eq!(g.groups, [4, 24, 1000, 65534]);
        assert_eq!(g.name, "python3");
        assert_eq!(g.sig_blk, (1 << (10 - 1)) | (1 << (15 - 1)));

        let s = parse_status(SECCOMP_STATUS).unwrap();
        assert!(s.no_new_privs);
        assert_eq!(s.seccomp, 2);
        assert_eq!(s.state, 't');
        assert_eq!(s.tracer_pid, 3682);

        let k = parse_status(KTHREAD_STATUS).unwrap();
        assert_eq!(k.name, "kthreadd");
        assert_eq!((k.pid, k.ppid), (2, 0));
        assert_eq!(k.sig_ign, u64::MAX);
        assert_eq!(k.cap_eff, 0x1ff_ffff_ffff);
        assert_eq!(k.ns_pgid, [0]);
    }

    #[test]
    fn nested_pid_namespace() {
        let s = parse_status(NESTED_STATUS).unwrap();
        assert_eq!(s.pid, 5649);
        assert_eq!(s.ns_tgid, [5649, 1]);
        assert_eq!(s.ns_pid, [5649, 1]);
        assert_eq!(s.ns_pgid, [5644, 0]);
        assert_eq!(s.ns_sid, [2771, 0]);
    }

    #[test]
    fn escaped_and_spaced_names() {
        // Real Name: lines for comms "tab\there\nnl", "a\b", ")" and "x) S 1 2 (y)".
        let cases = [
            ("Name:\ttab\there\\nnl", "tab\there\nnl"),
            ("Name:\ta\\\\b", "a\\b"),
            ("Name:\t)", ")"),
            ("Name:\tx) S 1 2 (y)", "x) S 1 2 (y)"),
            // Made up: leading/trailing spaces in a comm are data, not padding.
            ("Name:\t  sp ", "  sp "),
            ("Name:\tcr\r", "cr\r"),
            // Made up: a hand-written fixture with a space after the colon.
            ("Name: spaced", "spaced"),
        ];
        for (line, want) in cases {
            let text = PY_STATUS.replacen("Name:\tmy (weird) comm", line, 1);
            assert_eq!(parse_status(&text).unwrap().name, want, "{line:?}");
        }
    }

    #[test]
    fn older_kernels_and_errors() {
        // A kernel without Umask/NS*/CapAmb/NoNewPrivs/Seccomp still parses, with defaults.
        let old: String = PY_STATUS
            .lines()
            .filter(|l| {
                !["Umask", "NS", "CapAmb", "NoNewPrivs", "Seccomp"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let s = parse_status(&old).unwrap();
        assert_eq!(s.umask, None);
        assert!(s.ns_pid.is_empty());
        assert_eq!(s.seccomp, 0);

        let no_blk = PY_STATUS.replacen("SigBlk:\t0000001000000800\n", "", 1);
        assert_eq!(
            parse_status(&no_blk),
            Err(ParseError::MissingField {
                file: "status",
                field: "SigBlk"
            })
        );
        let bad_uid = PY_STATUS.replacen("Uid:\t0\t0\t0\t0", "Uid:\t0\t0\t0", 1);
        assert!(matches!(
            parse_status(&bad_uid),
            Err(ParseError::BadNumber { ref field, .. }) if field == "Uid"
        ));
        let bad_line = PY_STATUS.replacen("Threads:\t2", "Threads 2", 1);
        assert!(matches!(
            parse_status(&bad_line),
            Err(ParseError::BadLine {
                line: 37,
                reason: "no ':' separator",
                ..
            })
        ));
        assert!(matches!(
            parse_status(""),
            Err(ParseError::MissingField { field: "Name", .. })
        ));
    }

    #[test]
    fn sigmask_helper() {
        assert_eq!(parse_sigmask_hex("0000000000004200"), Ok(0x4200));
        assert_eq!(parse_sigmask_hex("ffffffffffffffff\n"), Ok(u64::MAX));
        assert!(parse_sigmask_hex("00000000000000000").is_err());
        assert!(parse_sigmask_hex("").is_err());
        assert!(parse_sigmask_hex("0x10").is_err());
    }
}
