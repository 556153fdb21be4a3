//! Process-wide state: identity and tree position (pid, session, process group), mm fields and
//! auxv, exe/cwd/root, umask, personality, comm, rlimits and credentials. Read from /proc on
//! dump; restored by remote syscalls in the skeleton (credentials last, since dropping
//! privileges first would forbid the rest).

use crate::scratch::{words_to_bytes, Scratch};
use crate::tracee::{Tracee, TraceeError};
use stasis_image::{
    CredsEntry, MmEntry, ProcessEntry, RlimitEntry, SeccompFilterEntry, ThreadEntry,
    ThreadSeccompEntry,
};
use stasis_procfs::{stat::Stat, status::Status, ProcSource};
use stasis_sys::Pid;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process with pid {pid}; check the pid (ps -p {pid})")]
    NoSuchProcess { pid: i32 },
    #[error(
        "pid {pid}: cannot set /proc/{pid}/{file} to {value} (lowering it needs CAP_SYS_RESOURCE)"
    )]
    Write {
        pid: i32,
        file: &'static str,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid}: cannot read /proc/{pid}/{file}")]
    Read {
        pid: i32,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("pid {pid}: cannot parse /proc/{pid}/{file}")]
    Parse {
        pid: i32,
        file: &'static str,
        #[source]
        source: stasis_procfs::ParseError,
    },
    #[error("pid {pid}: setting {what} failed")]
    Set {
        pid: i32,
        what: String,
        #[source]
        source: TraceeError,
    },
    #[error("pid {pid}: cannot set rlimit {resource} to {soft}/{hard} (raising a hard limit needs CAP_SYS_RESOURCE)")]
    Rlimit {
        pid: i32,
        resource: u32,
        soft: u64,
        hard: u64,
        #[source]
        source: stasis_sys::Errno,
    },
}

type Result<T, E = ProcessError> = std::result::Result<T, E>;

/// What /proc says about a process, parsed.
pub struct ProcInfo {
    pub status: Status,
    pub stat: Stat,
    pub entry: ProcessEntry,
}

fn read(src: &impl ProcSource, pid: i32, file: &'static str) -> Result<String> {
    src.read_string(Some(pid), file).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NoSuchProcess { pid }
        } else {
            ProcessError::Read { pid, file, source }
        }
    })
}

fn link(src: &impl ProcSource, pid: i32, file: &'static str) -> Result<String> {
    src.read_link(Some(pid), file)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|source| ProcessError::Read { pid, file, source })
}

/// The credentials /proc/PID/status (or a thread's) shows: ids, groups and capabilities
/// (securebits come from the process itself, see [`dump_prctl`]).
pub fn creds_of(st: &stasis_procfs::status::Status) -> CredsEntry {
    CredsEntry {
        uid: st.uid,
        gid: st.gid,
        groups: st.groups.clone(),
        caps: Some(stasis_image::CapsEntry {
            inheritable: st.cap_inh,
            permitted: st.cap_prm,
            effective: st.cap_eff,
            bounding: st.cap_bnd,
            ambient: st.cap_amb,
        }),
        secbits: None,
    }
}

/// Read the process-wide state of `pid` (threads, memory, fds and signals are filled in by
/// their own kinds).
pub fn dump(src: &impl ProcSource, pid: i32) -> Result<ProcInfo> {
    let parse = |file: &'static str| move |source| ProcessError::Parse { pid, file, source };
    let status =
        stasis_procfs::status::parse_status(&read(src, pid, "status")?).map_err(parse("status"))?;
    let stat = stasis_procfs::stat::parse_stat(&read(src, pid, "stat")?).map_err(parse("stat"))?;
    let zombie = stat.state == 'Z';
    let auxv_raw = if zombie {
        Vec::new()
    } else {
        src.read(Some(pid), "auxv")
            .map_err(|source| ProcessError::Read {
                pid,
                file: "auxv",
                source,
            })?
    };
    let auxv = stasis_procfs::auxv::parse_auxv(&auxv_raw).map_err(parse("auxv"))?;
    let limits =
        stasis_procfs::limits::parse_limits(&read(src, pid, "limits")?).map_err(parse("limits"))?;
    let personality = u32::from_str_radix(read(src, pid, "personality")?.trim(), 16).unwrap_or(0);
    let entry = ProcessEntry {
        pid,
        ppid: stat.ppid,
        pgid: stat.pgrp,
        sid: stat.session,
        comm: stat.comm.clone(),
        // A zombie has no mm, exe, cwd or root any more.
        exe: if zombie {
            String::new()
        } else {
            link(src, pid, "exe")?
        },
        cwd: if zombie {
            String::new()
        } else {
            link(src, pid, "cwd")?
        },
        root: if zombie {
            String::new()
        } else {
            link(src, pid, "root")?
        },
        umask: status.umask.unwrap_or(0o022),
        personality,
        creds: creds_of(&status),
        rlimits: limits
            .iter()
            .filter_map(|l| {
                Some(RlimitEntry {
                    resource: l.resource?,
                    soft: l.soft,
                    hard: l.hard,
                })
            })
            .collect(),
        mm: MmEntry {
            start_code: stat.start_code,
            end_code: stat.end_code,
            start_data: stat.start_data,
            end_data: stat.end_data,
            start_brk: stat.start_brk,
            brk: 0, // filled from the tracee (brk(0)) by the dump pipeline
            start_stack: stat.start_stack,
            arg_start: stat.arg_start,
            arg_end: stat.arg_end,
            env_start: stat.env_start,
            env_end: stat.env_end,
            auxv: auxv.iter().flat_map(|&(k, v)| [k, v]).collect(),
        },
        vmas: Vec::new(),
        threads: Vec::new(),
        sigactions: Vec::new(),
        itimers: Vec::new(),
        posix_timers: Vec::new(),
        shared_pending: Vec::new(),
        fds: Vec::new(),
        dumpable: 1,
        pdeath_signal: 0,
        child_subreaper: false,
        thp_disable: 0,
        no_new_privs: status.no_new_privs,
        seccomp_mode: status.seccomp,
        seccomp_filters: Vec::new(),
        zombie: (stat.state == 'Z').then_some(stat.exit_code),
        // /proc shows a traced process as 't' whatever it was: the dump fills this in from
        // what freezing it found.
        stopped: false,
        stop_sig: 0,
        files_shared: false,
        oom_score_adj: src
            .read_string(Some(pid), "oom_score_adj")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        loginuid: src
            .read_string(Some(pid), "loginuid")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        cwd_file: None,
        cgroups: Vec::new(),
        cwd_dead_pid: None,
        membarrier: 0,
    };
    Ok(ProcInfo {
        status,
        stat,
        entry,
    })
}

/// prctl(PR_GET_DUMPABLE), asked of the process itself.
pub fn dump_dumpable(t: &mut impl Tracee) -> Result<u32, TraceeError> {
    t.syscall(
        "prctl(PR_GET_DUMPABLE)",
        libc::SYS_prctl,
        [libc::PR_GET_DUMPABLE as u64, 0, 0, 0, 0, 0],
    )
    .map(|v| v as u32)
}

/// prctl state only the process can report: (parent-death signal, child subreaper).
/// Per-process state only the process itself can report through prctl and membarrier.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrctlState {
    pub pdeath_signal: u32,
    pub child_subreaper: bool,
    /// PR_GET_THP_DISABLE: bit 0 disabled, bit 1 PR_THP_DISABLE_EXCEPT_ADVISED.
    pub thp_disable: u32,
    pub secbits: u32,
    /// MEMBARRIER_CMD_GET_REGISTRATIONS (0 where the kernel lacks it).
    pub membarrier: u32,
}

/// MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3).
const MEMBARRIER_CMD_GET_REGISTRATIONS: u64 = 1 << 9;

pub fn dump_prctl(t: &mut impl Tracee, s: Scratch) -> Result<PrctlState, TraceeError> {
    let (pdeath_signal, child_subreaper) = dump_pdeath_subreaper(t, s)?;
    let thp_disable = t.syscall(
        "prctl(PR_GET_THP_DISABLE)",
        libc::SYS_prctl,
        [libc::PR_GET_THP_DISABLE as u64, 0, 0, 0, 0, 0],
    )? as u32;
    let secbits = t.syscall(
        "prctl(PR_GET_SECUREBITS)",
        libc::SYS_prctl,
        [libc::PR_GET_SECUREBITS as u64, 0, 0, 0, 0, 0],
    )? as u32;
    let membarrier = t
        .syscall(
            "membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS)",
            libc::SYS_membarrier,
            [MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0, 0, 0, 0],
        )
        .unwrap_or(0) as u32;
    Ok(PrctlState {
        pdeath_signal,
        child_subreaper,
        thp_disable,
        secbits,
        membarrier,
    })
}

fn dump_pdeath_subreaper(t: &mut impl Tracee, s: Scratch) -> Result<(u32, bool), TraceeError> {
    t.syscall(
        "prctl(PR_GET_PDEATHSIG)",
        libc::SYS_prctl,
        [libc::PR_GET_PDEATHSIG as u64, s.at(8192), 0, 0, 0, 0],
    )?;
    t.syscall(
        "prctl(PR_GET_CHILD_SUBREAPER)",
        libc::SYS_prctl,
        [
            libc::PR_GET_CHILD_SUBREAPER as u64,
            s.at(8192 + 8),
            0,
            0,
            0,
            0,
        ],
    )?;
    let mut b = [0u8; 12];
    t.read_mem(s.at(8192), &mut b)?;
    Ok((
        u32::from_le_bytes(b[0..4].try_into().expect("4")),
        u32::from_le_bytes(b[8..12].try_into().expect("4")) != 0,
    ))
}

/// Restore the parent-death signal (except for the root of the tree, whose parent is the
/// restore command: it may exit at once) and the subreaper flag.
pub fn restore_prctl(t: &mut impl Tracee, p: &ProcessEntry, root: bool) -> Result<()> {
    // Each registration is a MEMBARRIER_CMD_REGISTER_* command bit.
    for bit in 0..32 {
        let cmd = 1u64 << bit;
        if p.membarrier as u64 & cmd != 0 {
            set(
                t,
                "a membarrier registration",
                libc::SYS_membarrier,
                [cmd, 0, 0, 0, 0, 0],
            )?;
        }
    }
    if p.child_subreaper {
        set(
            t,
            "the child subreaper flag",
            libc::SYS_prctl,
            [libc::PR_SET_CHILD_SUBREAPER as u64, 1, 0, 0, 0, 0],
        )?;
    }
    if p.thp_disable != 0 {
        // arg3 carries the flags (PR_THP_DISABLE_EXCEPT_ADVISED = 1 << 1, Linux 6.18).
        set(
            t,
            "the THP-disable flag",
            libc::SYS_prctl,
            [
                libc::PR_SET_THP_DISABLE as u64,
                (p.thp_disable & 1) as u64,
                (p.thp_disable & !1) as u64,
                0,
                0,
                0,
            ],
        )?;
    }
    if p.pdeath_signal != 0 && !root {
        set(
            t,
            "the parent-death signal",
            libc::SYS_prctl,
            [
                libc::PR_SET_PDEATHSIG as u64,
                p.pdeath_signal as u64,
                0,
                0,
                0,
                0,
            ],
        )?;
    }
    Ok(())
}

/// The current program break, asked of the process itself (`brk(0)`).
pub fn dump_brk(t: &mut impl Tracee) -> Result<u64, TraceeError> {
    t.syscall("brk", libc::SYS_brk, [0; 6])
}

fn set(t: &mut impl Tracee, what: &str, nr: i64, args: [u64; 6]) -> Result<u64> {
    let pid = t.pid();
    t.syscall("restore step", nr, args)
        .map_err(|source| ProcessError::Set {
            pid,
            what: what.to_string(),
            source,
        })
}

/// Session and process group, umask, personality, comm, root and cwd. `cwd_fd` is the
/// skeleton's fd of the saved working directory, `root_fd` of its root when that is not ours.
pub fn restore_basics(
    t: &mut impl Tracee,
    s: Scratch,
    p: &ProcessEntry,
    cwd_fd: i32,
    root_fd: Option<i32>,
    tree: &[i32],
) -> Result<()> {
    if p.sid == p.pid {
        set(t, "the session (setsid)", libc::SYS_setsid, [0; 6])?;
    } else if p.pgid == p.pid {
        set(t, "the process group (setpgid)", libc::SYS_setpgid, [0; 6])?;
    } else if tree.contains(&p.pgid) {
        // A group led by another process of the tree (a shell pipeline's members).
        set(
            t,
            "the process group (setpgid)",
            libc::SYS_setpgid,
            [0, p.pgid as u64, 0, 0, 0, 0],
        )?;
    }
    set(t, "umask", libc::SYS_umask, [p.umask as u64, 0, 0, 0, 0, 0])?;
    set(
        t,
        "personality",
        libc::SYS_personality,
        [p.personality as u64, 0, 0, 0, 0, 0],
    )?;
    let mut name = p.comm.as_bytes().to_vec();
    name.truncate(15);
    name.push(0);
    t.write_mem(s.addr, &name)
        .map_err(|source| ProcessError::Set {
            pid: p.pid,
            what: "comm".into(),
            source,
        })?;
    set(
        t,
        "comm (PR_SET_NAME)",
        libc::SYS_prctl,
        [libc::PR_SET_NAME as u64, s.addr, 0, 0, 0, 0],
    )?;
    if let Some(root_fd) = root_fd {
        // chroot(".") from inside the saved root (the skeleton still has our privileges).
        set(
            t,
            "the root directory (fchdir)",
            libc::SYS_fchdir,
            [root_fd as u64, 0, 0, 0, 0, 0],
        )?;
        t.write_mem(s.addr, b".\0")
            .map_err(|source| ProcessError::Set {
                pid: p.pid,
                what: "the root directory".into(),
                source,
            })?;
        set(
            t,
            "the root directory (chroot)",
            libc::SYS_chroot,
            [s.addr, 0, 0, 0, 0, 0],
        )?;
    }
    set(
        t,
        "the working directory",
        libc::SYS_fchdir,
        [cwd_fd as u64, 0, 0, 0, 0, 0],
    )?;
    Ok(())
}

/// mm fields, auxv and /proc/PID/exe in one PR_SET_MM_MAP. `exe_fd` is the skeleton's fd of
/// the saved executable.
pub fn restore_mm(t: &mut impl Tracee, s: Scratch, mm: &MmEntry, exe_fd: i32) -> Result<()> {
    let auxv_at = s.at(1024);
    let mut auxv = mm.auxv.clone();
    auxv.extend_from_slice(&[0, 0]);
    let mut map = words_to_bytes(&[
        mm.start_code,
        mm.end_code,
        mm.start_data,
        mm.end_data,
        mm.start_brk,
        mm.brk,
        mm.start_stack,
        mm.arg_start,
        mm.arg_end,
        mm.env_start,
        mm.env_end,
        auxv_at,
    ]);
    map.extend_from_slice(&((auxv.len() * 8) as u32).to_le_bytes());
    map.extend_from_slice(&(exe_fd as u32).to_le_bytes());
    let pid = t.pid();
    let werr = |source| ProcessError::Set {
        pid,
        what: "mm fields".into(),
        source,
    };
    t.write_mem(s.addr, &map).map_err(werr)?;
    t.write_mem(auxv_at, &words_to_bytes(&auxv)).map_err(werr)?;
    set(
        t,
        "mm fields, auxv and exe link (PR_SET_MM_MAP)",
        libc::SYS_prctl,
        [
            libc::PR_SET_MM as u64,
            libc::PR_SET_MM_MAP as u64,
            s.addr,
            map.len() as u64,
            0,
            0,
        ],
    )?;
    Ok(())
}

/// Resource limits, set from outside with prlimit.
/// The OOM killer's adjustment, written from outside (raising it needs no privilege; lowering
/// it below the restorer's needs CAP_SYS_RESOURCE: that is an error naming the value).
pub fn restore_oom_score_adj(pid: i32, adj: Option<i32>) -> Result<()> {
    let Some(adj) = adj else { return Ok(()) };
    let path = format!("/proc/{pid}/oom_score_adj");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == adj.to_string()) {
        return Ok(());
    }
    std::fs::write(&path, adj.to_string()).map_err(|source| ProcessError::Write {
        pid,
        file: "oom_score_adj",
        value: adj.to_string(),
        source,
    })
}

/// The audit login uid. Only a task itself may write its /proc/PID/loginuid (and needs
/// CAP_AUDIT_CONTROL to change one already set): the process does it, before its threads are
/// made (they inherit it) and before its credentials are.
pub fn restore_loginuid(t: &mut impl Tracee, s: Scratch, loginuid: Option<u32>) -> Result<()> {
    let Some(want) = loginuid else { return Ok(()) };
    let mine = std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    if mine == Some(want) {
        return Ok(());
    }
    let pid = t.pid();
    let path = b"/proc/self/loginuid\0";
    let value = want.to_string();
    let w = |source| ProcessError::Set {
        pid,
        what: "the loginuid".into(),
        source,
    };
    t.write_mem(s.at(6144), path).map_err(w)?;
    t.write_mem(s.at(6144 + 64), value.as_bytes()).map_err(w)?;
    let fd = set(
        t,
        "the loginuid (open)",
        libc::SYS_openat,
        [
            libc::AT_FDCWD as u64,
            s.at(6144),
            libc::O_WRONLY as u64,
            0,
            0,
            0,
        ],
    )?;
    let wrote = set(
        t,
        "the loginuid (write)",
        libc::SYS_write,
        [fd, s.at(6144 + 64), value.len() as u64, 0, 0, 0],
    );
    set(
        t,
        "the loginuid (close)",
        libc::SYS_close,
        [fd, 0, 0, 0, 0, 0],
    )?;
    wrote.map(drop)
}

pub fn restore_rlimits(pid: i32, limits: &[RlimitEntry]) -> Result<()> {
    for l in limits {
        stasis_sys::probe::prlimit_set(Pid::from_raw(pid), l.resource, l.soft, l.hard).map_err(
            |source| ProcessError::Rlimit {
                pid,
                resource: l.resource,
                soft: l.soft,
                hard: l.hard,
                source,
            },
        )?;
    }
    Ok(())
}

/// The restorer's own capability sets and securebits, which every skeleton inherits.
fn restorer_caps() -> (Option<stasis_image::CapsEntry>, u32) {
    static MINE: std::sync::OnceLock<(Option<stasis_image::CapsEntry>, u32)> =
        std::sync::OnceLock::new();
    *MINE.get_or_init(|| {
        let caps = std::fs::read_to_string("/proc/thread-self/status")
            .ok()
            .and_then(|t| stasis_procfs::status::parse_status(&t).ok())
            .and_then(|st| creds_of(&st).caps);
        let secbits = stasis_sys::probe::securebits().unwrap_or(0);
        (caps, secbits)
    })
}

/// securebits: SECBIT_NO_SETUID_FIXUP (uid changes leave capabilities alone).
const SECBIT_NO_SETUID_FIXUP: u64 = 1 << 2;
/// _LINUX_CAPABILITY_VERSION_3.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Credentials, when they differ from the restorer's (which the skeleton inherited): groups,
/// ids (fs ids too), then the bounding set, securebits, capability sets and ambient set. The
/// restorer's capabilities are kept through the id changes (SECBIT_NO_SETUID_FIXUP), so each
/// later step still has the privilege it needs.
pub fn restore_creds(t: &mut impl Tracee, s: Scratch, c: &CredsEntry) -> Result<()> {
    let (my_caps, my_secbits) = restorer_caps();
    let caps = c.caps.filter(|k| Some(*k) != my_caps);
    let secbits = c.secbits.filter(|b| *b != my_secbits);
    if caps.is_some() || secbits.is_some() {
        set(
            t,
            "securebits (keeping capabilities through the id changes)",
            libc::SYS_prctl,
            [
                libc::PR_SET_SECUREBITS as u64,
                my_secbits as u64 | SECBIT_NO_SETUID_FIXUP,
                0,
                0,
                0,
                0,
            ],
        )?;
    }
    restore_ids(t, s, c)?;
    if let Some(k) = caps {
        let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(40);
        let had = my_caps.map_or(u64::MAX, |m| m.bounding);
        for cap in 0..=last.min(63) {
            if had & (1 << cap) != 0 && k.bounding & (1 << cap) == 0 {
                set(
                    t,
                    "the capability bounding set",
                    libc::SYS_prctl,
                    [libc::PR_CAPBSET_DROP as u64, cap, 0, 0, 0, 0],
                )?;
            }
        }
    }
    if caps.is_some() || secbits.is_some() {
        set(
            t,
            "securebits",
            libc::SYS_prctl,
            [
                libc::PR_SET_SECUREBITS as u64,
                c.secbits.unwrap_or(my_secbits) as u64,
                0,
                0,
                0,
                0,
            ],
        )?;
    }
    if let Some(k) = caps {
        // struct __user_cap_header_struct {version, pid}, then two __user_cap_data_struct
        // {effective, permitted, inheritable} for the low and high 32 bits.
        let mut b = Vec::with_capacity(8 + 24);
        b.extend_from_slice(&CAPABILITY_VERSION_3.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for half in [0, 32] {
            for set in [k.effective, k.permitted, k.inheritable] {
                b.extend_from_slice(&((set >> half) as u32).to_le_bytes());
            }
        }
        t.write_mem(s.at(4096), &b)
            .map_err(|source| ProcessError::Set {
                pid: t.pid(),
                what: "capabilities".into(),
                source,
            })?;
        set(
            t,
            "capabilities (capset)",
            libc::SYS_capset,
            [s.at(4096), s.at(4096 + 8), 0, 0, 0, 0],
        )?;
        for cap in 0..64u64 {
            if k.ambient & (1 << cap) != 0 {
                set(
                    t,
                    "the ambient capability set",
                    libc::SYS_prctl,
                    [
                        libc::PR_CAP_AMBIENT as u64,
                        libc::PR_CAP_AMBIENT_RAISE as u64,
                        cap,
                        0,
                        0,
                        0,
                    ],
                )?;
            }
        }
    }
    Ok(())
}

/// Groups, gids, uids and the fs ids.
fn restore_ids(t: &mut impl Tracee, s: Scratch, c: &CredsEntry) -> Result<()> {
    let groups: Vec<u32> = nix::unistd::getgroups()
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    if groups != c.groups {
        let bytes: Vec<u8> = c.groups.iter().flat_map(|g| g.to_le_bytes()).collect();
        t.write_mem(s.addr, &bytes)
            .map_err(|source| ProcessError::Set {
                pid: t.pid(),
                what: "groups".into(),
                source,
            })?;
        set(
            t,
            "supplementary groups",
            libc::SYS_setgroups,
            [c.groups.len() as u64, s.addr, 0, 0, 0, 0],
        )?;
    }
    let me = nix::unistd::getresgid().ok();
    if me.map(|g| [g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw()])
        != Some([c.gid[0], c.gid[1], c.gid[2]])
    {
        set(
            t,
            "gids",
            libc::SYS_setresgid,
            [c.gid[0] as u64, c.gid[1] as u64, c.gid[2] as u64, 0, 0, 0],
        )?;
    }
    let me = nix::unistd::getresuid().ok();
    if me.map(|u| [u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw()])
        != Some([c.uid[0], c.uid[1], c.uid[2]])
    {
        set(
            t,
            "uids",
            libc::SYS_setresuid,
            [c.uid[0] as u64, c.uid[1] as u64, c.uid[2] as u64, 0, 0, 0],
        )?;
    }
    // setres[ug]id set the fs ids to the effective ones; a process may have others.
    if c.gid[3] != c.gid[1] {
        set(
            t,
            "the fs gid",
            libc::SYS_setfsgid,
            [c.gid[3] as u64, 0, 0, 0, 0, 0],
        )?;
    }
    if c.uid[3] != c.uid[1] {
        set(
            t,
            "the fs uid",
            libc::SYS_setfsuid,
            [c.uid[3] as u64, 0, 0, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// The dumpable flag, which a credential change resets (only 0 and 1 can be set).
pub fn restore_dumpable(t: &mut impl Tracee, dumpable: u32) -> Result<()> {
    set(
        t,
        "the dumpable flag",
        libc::SYS_prctl,
        [
            libc::PR_SET_DUMPABLE as u64,
            dumpable.min(1) as u64,
            0,
            0,
            0,
            0,
        ],
    )
    .map(drop)
}

/// The seccomp filters of `tid`, oldest first.
pub fn dump_seccomp(pid: i32, tid: Pid) -> Result<Vec<stasis_image::SeccompFilterEntry>> {
    let mut v = Vec::new();
    for i in 0.. {
        match stasis_sys::ptrace::seccomp_filter(tid, i) {
            Ok(Some(bpf)) => v.push(stasis_image::SeccompFilterEntry { bpf }),
            Ok(None) => break,
            Err(source) => {
                return Err(ProcessError::Set {
                    pid,
                    what: "reading its seccomp filters (PTRACE_SECCOMP_GET_FILTER)".into(),
                    source: TraceeError::Ptrace {
                        pid: tid.as_raw(),
                        step: "SECCOMP_GET_FILTER",
                        source,
                    },
                })
            }
        }
    }
    v.reverse();
    Ok(v)
}

/// prctl(PR_SET_NO_NEW_PRIVS) in the traced thread.
pub fn restore_no_new_privs(t: &mut impl Tracee) -> Result<()> {
    set(
        t,
        "no_new_privs",
        libc::SYS_prctl,
        [libc::PR_SET_NO_NEW_PRIVS as u64, 1, 0, 0, 0, 0],
    )
    .map(drop)
}

/// The seccomp state of thread `tid` of `pid` (/proc/PID/task/TID/status and its filters).
pub fn dump_thread_seccomp(pid: i32, tid: Pid) -> Result<ThreadSeccompEntry> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) {
        Ok(t) => t,
        Err(source) => {
            return Err(ProcessError::Read {
                pid,
                file: "task/TID/status",
                source,
            })
        }
    };
    let st = stasis_procfs::status::parse_status(&text).map_err(|source| ProcessError::Parse {
        pid,
        file: "task/TID/status",
        source,
    })?;
    let filters = if st.seccomp == 2 {
        dump_seccomp(pid, tid)?
    } else {
        Vec::new()
    };
    Ok(ThreadSeccompEntry {
        mode: st.seccomp,
        filters,
    })
}

/// Whether any thread of `p` runs under seccomp.
pub fn has_seccomp(p: &ProcessEntry) -> bool {
    p.seccomp_mode != 0
        || !p.seccomp_filters.is_empty()
        || p.threads.iter().any(|th| {
            th.seccomp
                .as_ref()
                .is_some_and(|s| s.mode != 0 || !s.filters.is_empty())
        })
}

/// A thread's seccomp mode and filters: its own, or the process's.
fn chain<'p>(p: &'p ProcessEntry, th: &'p ThreadEntry) -> (u32, &'p [SeccompFilterEntry]) {
    match &th.seccomp {
        Some(s) => (s.mode, &s.filters),
        None => (p.seccomp_mode, &p.seccomp_filters),
    }
}

/// How many filters, oldest first, every thread's chain starts with: the leader installs
/// those for all threads at once (TSYNC), so they stay one shared filter as they were.
fn common_prefix(p: &ProcessEntry) -> usize {
    let lead = chain(p, &p.threads[0]).1;
    p.threads[1..].iter().fold(lead.len(), |n, th| {
        let mine = chain(p, th).1;
        lead.iter()
            .zip(mine)
            .take(n)
            .take_while(|(a, b)| a == b)
            .count()
    })
}

/// Where, below a thread's saved stack pointer, filter programs are written (below the red
/// zone: dead stack), and the lowest address the stack allows.
#[derive(Debug, Clone, Copy)]
pub struct ProgramRoom {
    pub rsp: u64,
    pub stack_low: u64,
}

/// Install `filters` (oldest first) in the traced thread with seccomp(`flags`).
fn install_filters(
    t: &mut impl Tracee,
    pid: i32,
    filters: &[SeccompFilterEntry],
    room: ProgramRoom,
    flags: u64,
) -> Result<()> {
    for f in filters {
        let prog_at = (room.rsp - 256 - f.bpf.len() as u64) & !15;
        let fprog_at = prog_at - 16;
        if fprog_at < room.stack_low {
            return Err(ProcessError::Set {
                pid,
                what: "seccomp (no room below the stack pointer for the filter program)".into(),
                source: TraceeError::NoGadget { pid },
            });
        }
        let mut fprog = Vec::with_capacity(16);
        fprog.extend_from_slice(&((f.bpf.len() / 8) as u16).to_le_bytes());
        fprog.extend_from_slice(&[0u8; 6]);
        fprog.extend_from_slice(&prog_at.to_le_bytes());
        let werr = |source| ProcessError::Set {
            pid,
            what: "seccomp filter program".into(),
            source,
        };
        t.write_mem(prog_at, &f.bpf).map_err(werr)?;
        t.write_mem(fprog_at, &fprog).map_err(werr)?;
        set(
            t,
            "a seccomp filter",
            libc::SYS_seccomp,
            [
                libc::SECCOMP_SET_MODE_FILTER as u64,
                flags,
                fprog_at,
                0,
                0,
                0,
            ],
        )?;
    }
    Ok(())
}

fn strict(t: &mut impl Tracee) -> Result<()> {
    set(
        t,
        "strict seccomp",
        libc::SYS_prctl,
        [libc::PR_SET_SECCOMP as u64, 1, 0, 0, 0, 0],
    )
    .map(drop)
}

/// no_new_privs and seccomp, the very last things a process gets: after them a filter could
/// forbid the remote syscalls restore still needs. In the leader: the filters every thread's
/// chain starts with, oldest first, with SECCOMP_FILTER_FLAG_TSYNC (all threads at once, so
/// they share them as before), then the leader's own rest without it. Each other thread then
/// installs the rest of its own chain itself ([`restore_thread_seccomp`]). Programs are
/// written below the thread's saved stack pointer. Strict mode is a prctl.
pub fn restore_seccomp(t: &mut impl Tracee, p: &ProcessEntry, room: ProgramRoom) -> Result<()> {
    if p.no_new_privs {
        restore_no_new_privs(t)?;
    }
    let (mode, filters) = chain(p, &p.threads[0]);
    let shared = common_prefix(p);
    install_filters(
        t,
        p.pid,
        &filters[..shared],
        room,
        libc::SECCOMP_FILTER_FLAG_TSYNC,
    )?;
    install_filters(t, p.pid, &filters[shared..], room, 0)?;
    if mode == 1 {
        strict(t)?;
    }
    Ok(())
}

/// The rest of thread `th`'s own seccomp chain (after what the leader installed for all),
/// installed by the thread itself. Nothing for a thread that shares the process's chain.
pub fn restore_thread_seccomp(
    t: &mut impl Tracee,
    p: &ProcessEntry,
    th: &ThreadEntry,
    room: ProgramRoom,
) -> Result<()> {
    if th.seccomp.is_none() {
        return Ok(());
    }
    let (mode, filters) = chain(p, th);
    let shared = common_prefix(p).min(filters.len());
    install_filters(t, p.pid, &filters[shared..], room, 0)?;
    if mode == 1 {
        strict(t)?;
    }
    Ok(())
}
