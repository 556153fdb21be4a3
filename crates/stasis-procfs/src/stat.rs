//! Parser for `/proc/PID/stat` and `/proc/PID/task/TID/stat`.
//!
//! Owns [`Stat`]: the fields of the single stat line that checkpointing needs (process tree
//! links, thread count, start time for pid-reuse checks, and the `mm` layout addresses that
//! `prctl(PR_SET_MM)` restores). It must not read other files to fill gaps, and must not
//! interpret the numbers (e.g. converting `starttime` ticks to seconds needs `sysconf`, which is
//! I/O-adjacent and belongs to the caller).
//!
//! The comm field is arbitrary user-controlled text printed *unescaped*: it may contain spaces,
//! parentheses, tabs and even newlines. The only reliable framing is that the kernel wraps it in
//! parentheses and no field after it contains ')', so comm runs from the first '(' to the last
//! ')' of the whole text, never line by line.
//!
//! Address fields (start_code .. env_end) read as 0 or 1 when the reader may not ptrace the
//! target; the kernel hides them rather than failing the read.

use crate::num;
use crate::ParseError;

const FILE: &str = "stat";

/// The fields of `/proc/PID/stat` that the rest of stasis uses. Field numbers refer to
/// proc_pid_stat(5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stat {
    /// (1)
    pub pid: i32,
    /// (2) Without the surrounding parentheses, verbatim.
    pub comm: String,
    /// (3)
    pub state: char,
    /// (4)
    pub ppid: i32,
    /// (5)
    pub pgrp: i32,
    /// (6)
    pub session: i32,
    /// (7)
    pub tty_nr: i32,
    /// (8)
    pub tpgid: i32,
    /// (9) PF_* flags.
    pub flags: u32,
    /// (20)
    pub num_threads: i64,
    /// (22) Clock ticks after boot.
    pub starttime: u64,
    /// (23) Bytes.
    pub vsize: u64,
    /// (24) Pages.
    pub rss: i64,
    /// (26)
    pub start_code: u64,
    /// (27)
    pub end_code: u64,
    /// (28)
    pub start_stack: u64,
    /// (38) -1 for non-leader threads.
    pub exit_signal: i32,
    /// (39)
    pub processor: i32,
    /// (45)
    pub start_data: u64,
    /// (46)
    pub end_data: u64,
    /// (47)
    pub start_brk: u64,
    /// (48)
    pub arg_start: u64,
    /// (49)
    pub arg_end: u64,
    /// (50)
    pub env_start: u64,
    /// (51)
    pub env_end: u64,
    /// (52) Encoded as for waitpid(2).
    pub exit_code: i32,
}

/// Names from proc_pid_stat(5), indexed by field number, for error messages.
const NAMES: [&str; 53] = [
    "",
    "pid",
    "comm",
    "state",
    "ppid",
    "pgrp",
    "session",
    "tty_nr",
    "tpgid",
    "flags",
    "minflt",
    "cminflt",
    "majflt",
    "cmajflt",
    "utime",
    "stime",
    "cutime",
    "cstime",
    "priority",
    "nice",
    "num_threads",
    "itrealvalue",
    "starttime",
    "vsize",
    "rss",
    "rsslim",
    "startcode",
    "endcode",
    "startstack",
    "kstkesp",
    "kstkeip",
    "signal",
    "blocked",
    "sigignore",
    "sigcatch",
    "wchan",
    "nswap",
    "cnswap",
    "exit_signal",
    "processor",
    "rt_priority",
    "policy",
    "delayacct_blkio_ticks",
    "guest_time",
    "cguest_time",
    "start_data",
    "end_data",
    "start_brk",
    "arg_start",
    "arg_end",
    "env_start",
    "env_end",
    "exit_code",
];

/// The last field we read. Kernels since 3.5 print all 52; older ones stop at 44, and we refuse
/// those rather than invent the `mm` addresses a restore would feed to the kernel.
const LAST: usize = 52;

/// Parse the text of a `stat` file. Fields after the 52nd (future kernels) are ignored.
pub fn parse_stat(text: &str) -> Result<Stat, ParseError> {
    let bad = |reason| ParseError::BadLine {
        file: FILE,
        line: 1,
        text: text.to_owned(),
        reason,
    };
    let open = text.find('(').ok_or_else(|| bad("no '(' before comm"))?;
    let close = text.rfind(')').ok_or_else(|| bad("no ')' after comm"))?;
    if close < open {
        return Err(bad("')' before '('"));
    }
    let pid = num::dec(FILE, NAMES[1], text[..open].trim())?;
    let comm = text[open + 1..close].to_owned();

    // Fields 3.. as borrowed slices; one small allocation instead of per-field strings.
    let mut fields: Vec<&str> = Vec::with_capacity(LAST);
    fields.extend(text[close + 1..].split_ascii_whitespace().take(LAST - 2));
    let field = |n: usize| -> Result<&str, ParseError> {
        fields.get(n - 3).copied().ok_or(ParseError::MissingField {
            file: FILE,
            field: NAMES[n],
        })
    };
    fn dec<T: std::str::FromStr>(n: usize, t: &str) -> Result<T, ParseError> {
        num::dec(FILE, NAMES[n], t)
    }
    // Check the tail first so that a truncated line reports the first missing field, not a
    // confusing error from some earlier one.
    field(LAST)?;

    let state_text = field(3)?;
    let mut chars = state_text.chars();
    let state = match (chars.next(), chars.next()) {
        (Some(c), None) => c,
        _ => return Err(bad("state is not a single character")),
    };

    Ok(Stat {
        pid,
        comm,
        state,
        ppid: dec(4, field(4)?)?,
        pgrp: dec(5, field(5)?)?,
        session: dec(6, field(6)?)?,
        tty_nr: dec(7, field(7)?)?,
        tpgid: dec(8, field(8)?)?,
        flags: dec(9, field(9)?)?,
        num_threads: dec(20, field(20)?)?,
        starttime: dec(22, field(22)?)?,
        vsize: dec(23, field(23)?)?,
        rss: dec(24, field(24)?)?,
        start_code: dec(26, field(26)?)?,
        end_code: dec(27, field(27)?)?,
        start_stack: dec(28, field(28)?)?,
        exit_signal: dec(38, field(38)?)?,
        processor: dec(39, field(39)?)?,
        start_data: dec(45, field(45)?)?,
        end_data: dec(46, field(46)?)?,
        start_brk: dec(47, field(47)?)?,
        arg_start: dec(48, field(48)?)?,
        arg_end: dec(49, field(49)?)?,
        env_start: dec(50, field(50)?)?,
        env_end: dec(51, field(51)?)?,
        exit_code: dec(52, field(52)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// python3 whose comm was set to "my (weird) comm" (two threads).
    const PY_STAT: &str = "3310 (my (weird) comm) S 1 3306 2771 0 -1 4194304 3090 6498 14 0 7 4 4 4 20 0 2 0 21236 94310400 3593 18446744073709551615 93895239434240 93895239434581 140734105272048 0 0 0 2048 16781318 512 0 0 0 17 1 0 0 0 0 0 93895239445936 93895239446552 93895427837952 140734105278704 140734105278752 140734105278752 140734105280463 0\n\
";
    /// Its second thread, from task/3352/stat: exit_signal -1.
    const PY_TASK_STAT: &str = "3352 (my (weird) comm) S 1 3306 2771 0 -1 4194368 3 6498 0 0 0 0 4 4 20 0 2 0 21259 94310400 3593 18446744073709551615 93895239434240 93895239434581 140734105272048 0 0 0 2048 16781318 512 1 0 0 -1 0 0 0 0 0 0 93895239445936 93895239446552 93895427837952 140734105278704 140734105278752 140734105278752 140734105280463 0\n\
";
    /// kthreadd: all memory addresses 0.
    const KTHREAD_STAT: &str = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 14 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
";
    /// python3 in ptrace stop (state 't', exit_code 19 = SIGSTOP).
    const TRACED_STAT: &str = "3624 (python3) t 1 3619 2771 0 -1 4194560 2933 6524 1 1 7 1 3 4 20 0 1 0 23555 17154048 3467 18446744073709551615 94103575924736 94103575925077 140730375795024 0 0 0 0 16781318 0 1 0 0 17 1 0 0 0 0 0 94103575936432 94103575937048 94104443662336 140730375801071 140730375801120 140730375801120 140730375802831 19\n\
";
    /// comm "x) S 1 2 (y)": a fake state and ppid inside comm.
    const FAKE_FIELDS_STAT: &str = "4004 (x) S 1 2 (y)) S 1 3997 2771 0 -1 4194304 2924 6522 0 0 6 2 3 4 20 0 1 0 24468 17154048 3440 18446744073709551615 93946283147264 93946283147605 140727400814304 0 0 0 0 16781318 0 1 0 0 17 1 0 0 0 0 0 93946283158960 93946283159576 93947004919808 140727400823010 140727400823072 140727400823072 140727400824783 0\n\
";
    /// comm "tab\there\nnl": the kernel prints the tab and newline raw.
    const NEWLINE_STAT: &str = "4006 (tab\there\n\
nl) S 1 3997 2771 0 -1 4194304 2920 6487 1 0 6 2 4 3 20 0 1 0 24468 17154048 3449 18446744073709551615 94875429056512 94875429056853 140728474357056 0 0 0 0 16781318 0 1 0 0 17 0 0 0 0 0 0 94875429068208 94875429068824 94875473829888 140728474360035 140728474360096 140728474360096 140728474361807 0\n\
";
    /// comm ")".
    const PAREN_STAT: &str = "4008 ()) S 1 3997 2771 0 -1 4194304 2923 6546 2 1 8 1 5 2 20 0 1 0 24469 17145856 3434 18446744073709551615 94181261959168 94181261959509 140727205756384 0 0 0 0 16781318 0 1 0 0 17 0 0 0 0 0 0 94181261970864 94181261971480 94182163853312 140727205763309 140727205763360 140727205763360 140727205765071 0\n\
";

    #[test]
    fn python_process() {
        let s = parse_stat(PY_STAT).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 3310,
                comm: "my (weird) comm".into(),
                state: 'S',
                ppid: 1,
                pgrp: 3306,
                session: 2771,
                tty_nr: 0,
                tpgid: -1,
                flags: 4194304,
                num_threads: 2,
                starttime: 21236,
                vsize: 94310400,
                rss: 3593,
                start_code: 93895239434240,
                end_code: 93895239434581,
                start_stack: 140734105272048,
                exit_signal: 17,
                processor: 1,
                start_data: 93895239445936,
                end_data: 93895239446552,
                start_brk: 93895427837952,
                arg_start: 140734105278704,
                arg_end: 140734105278752,
                env_start: 140734105278752,
                env_end: 140734105280463,
                exit_code: 0,
            }
        );
    }

    #[test]
    fn thread_kthread_traced() {
        let t = parse_stat(PY_TASK_STAT).unwrap();
        assert_eq!(t.pid, 3352);
        assert_eq!(t.exit_signal, -1);
        assert_eq!(t.flags, 4194368);
        assert_eq!(t.starttime, 21259);

        let k = parse_stat(KTHREAD_STAT).unwrap();
        assert_eq!((k.pid, k.comm.as_str(), k.ppid), (2, "kthreadd", 0));
        assert_eq!((k.vsize, k.rss, k.start_code, k.env_end), (0, 0, 0, 0));
        assert_eq!(k.flags, 2129984);

        let tr = parse_stat(TRACED_STAT).unwrap();
        assert_eq!(tr.state, 't');
        assert_eq!(tr.exit_code, 19);
        assert_eq!(tr.comm, "python3");
    }

    #[test]
    fn hostile_comms() {
        let s = parse_stat(FAKE_FIELDS_STAT).unwrap();
        assert_eq!(s.comm, "x) S 1 2 (y)");
        assert_eq!((s.pid, s.state, s.ppid, s.pgrp), (4004, 'S', 1, 3997));
        assert_eq!(s.env_end, 140727400824783);

        let s = parse_stat(NEWLINE_STAT).unwrap();
        assert_eq!(s.comm, "tab\there\nnl");
        assert_eq!((s.pid, s.ppid, s.rss), (4006, 1, 3449));

        let s = parse_stat(PAREN_STAT).unwrap();
        assert_eq!(s.comm, ")");
        assert_eq!((s.pid, s.starttime), (4008, 24469));
    }

    #[test]
    fn extra_fields_are_ignored() {
        let longer = format!("{} 7 8 9\n", PY_STAT.trim_end());
        assert_eq!(parse_stat(&longer), parse_stat(PY_STAT));
    }

    #[test]
    fn errors() {
        // A 44-field line, as printed by kernels before 3.5.
        let old: String = {
            let close = PY_STAT.rfind(')').unwrap();
            let rest: Vec<_> = PY_STAT[close + 1..].split_whitespace().take(42).collect();
            format!("{} {}\n", &PY_STAT[..=close], rest.join(" "))
        };
        assert_eq!(
            parse_stat(&old),
            Err(ParseError::MissingField {
                file: "stat",
                field: "exit_code"
            })
        );
        assert!(matches!(
            parse_stat("3310 my comm S 1"),
            Err(ParseError::BadLine {
                reason: "no '(' before comm",
                ..
            })
        ));
        assert!(matches!(
            parse_stat(") 3310 (x"),
            Err(ParseError::BadLine {
                reason: "')' before '('",
                ..
            })
        ));
        let bad_ppid = PY_STAT.replacen(") S 1 3306", ") S one 3306", 1);
        assert_eq!(
            parse_stat(&bad_ppid),
            Err(ParseError::BadNumber {
                file: "stat",
                field: "ppid".into(),
                text: "one".into()
            })
        );
        let bad_state = PY_STAT.replacen(") S 1", ") SS 1", 1);
        assert!(matches!(
            parse_stat(&bad_state),
            Err(ParseError::BadLine {
                reason: "state is not a single character",
                ..
            })
        ));
        assert!(parse_stat("").is_err());
    }
}
