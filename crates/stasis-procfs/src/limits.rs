//! Parser for `/proc/PID/limits`.
//!
//! Owns [`Limit`] and the mapping from the kernel's human-readable limit names to `RLIMIT_*`
//! numbers. It must not call `getrlimit`/`prlimit`: reading another process's limits through
//! this file is the whole point, and applying them is the restorer's job.
//!
//! The file is a fixed-width table (`"%-25s %-20s %-20s %-10s"`), but names contain spaces and
//! the units column is blank for some rows, so rows are split by looking for the first token
//! that is a value ("unlimited" or a number) rather than by column offsets.

use crate::num;
use crate::ParseError;

const FILE: &str = "limits";

/// The value the kernel prints as "unlimited".
pub const RLIM_INFINITY: u64 = u64::MAX;

/// One row of `/proc/PID/limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// e.g. "Max open files"
    pub name: String,
    /// RLIMIT_* number from the name: cpu 0, fsize 1, data 2, stack 3, core 4, rss 5, nproc 6,
    /// nofile 7, memlock 8, as 9, locks 10, sigpending 11, msgqueue 12, nice 13, rtprio 14,
    /// rttime 15. None for a name this crate does not know (a future kernel's new limit).
    pub resource: Option<u32>,
    /// [`RLIM_INFINITY`] for "unlimited".
    pub soft: u64,
    /// [`RLIM_INFINITY`] for "unlimited".
    pub hard: u64,
}

/// Kernel row names (fs/proc/base.c `lnames`) in RLIMIT_* order.
const NAMES: [&str; 16] = [
    "Max cpu time",
    "Max file size",
    "Max data size",
    "Max stack size",
    "Max core file size",
    "Max resident set",
    "Max processes",
    "Max open files",
    "Max locked memory",
    "Max address space",
    "Max file locks",
    "Max pending signals",
    "Max msgqueue size",
    "Max nice priority",
    "Max realtime priority",
    "Max realtime timeout",
];

/// The RLIMIT_* number for a row name as printed in `/proc/PID/limits`.
pub fn rlimit_resource(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

fn value(token: &str) -> Option<u64> {
    if token == "unlimited" {
        Some(RLIM_INFINITY)
    } else if token.bytes().all(|b| b.is_ascii_digit()) {
        token.parse().ok()
    } else {
        None
    }
}

/// Parse the whole text of `/proc/PID/limits`, in file order. The header row is skipped.
pub fn parse_limits(text: &str) -> Result<Vec<Limit>, ParseError> {
    let mut out = Vec::with_capacity(NAMES.len());
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (line.starts_with("Limit ") && line.contains("Soft Limit")) {
            continue;
        }
        let bad = |reason| ParseError::BadLine {
            file: FILE,
            line: i + 1,
            text: line.to_owned(),
            reason,
        };
        // Walk tokens keeping their byte offsets, so the name can be sliced out verbatim.
        let mut tokens = line
            .split(' ')
            .scan(0usize, |pos, tok| {
                let start = *pos;
                *pos += tok.len() + 1;
                Some((start, tok))
            })
            .filter(|(_, t)| !t.is_empty());
        let mut soft = None;
        for (start, tok) in tokens.by_ref() {
            if let Some(v) = value(tok) {
                soft = Some((start, v));
                break;
            }
        }
        let (name_end, soft) = soft.ok_or_else(|| bad("no limit value"))?;
        let name = line[..name_end].trim_end();
        if name.is_empty() {
            return Err(bad("no limit name"));
        }
        let (_, hard_text) = tokens.next().ok_or_else(|| bad("no hard limit"))?;
        let hard = value(hard_text).ok_or_else(|| num::bad(FILE, name, hard_text))?;
        out.push(Limit {
            name: name.to_owned(),
            resource: rlimit_resource(name),
            soft,
            hard,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// python3 after setrlimit(NOFILE, (1024, 4096)) and setrlimit(CORE, unlimited).
    const PY_LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max file size             unlimited            unlimited            bytes     \n\
Max data size             unlimited            unlimited            bytes     \n\
Max stack size            8388608              unlimited            bytes     \n\
Max core file size        unlimited            unlimited            bytes     \n\
Max resident set          unlimited            unlimited            bytes     \n\
Max processes             96364                96364                processes \n\
Max open files            1024                 4096                 files     \n\
Max locked memory         8388608              8388608              bytes     \n\
Max address space         unlimited            unlimited            bytes     \n\
Max file locks            unlimited            unlimited            locks     \n\
Max pending signals       96364                96364                signals   \n\
Max msgqueue size         819200               819200               bytes     \n\
Max nice priority         0                    0                    \n\
Max realtime priority     0                    0                    \n\
Max realtime timeout      unlimited            unlimited            us        \n\
";

    /// `cat /proc/self/limits` (core 0, nofile 20000).
    const CAT_LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max file size             unlimited            unlimited            bytes     \n\
Max data size             unlimited            unlimited            bytes     \n\
Max stack size            8388608              unlimited            bytes     \n\
Max core file size        0                    unlimited            bytes     \n\
Max resident set          unlimited            unlimited            bytes     \n\
Max processes             96364                96364                processes \n\
Max open files            20000                20000                files     \n\
Max locked memory         8388608              8388608              bytes     \n\
Max address space         unlimited            unlimited            bytes     \n\
Max file locks            unlimited            unlimited            locks     \n\
Max pending signals       96364                96364                signals   \n\
Max msgqueue size         819200               819200               bytes     \n\
Max nice priority         0                    0                    \n\
Max realtime priority     0                    0                    \n\
Max realtime timeout      unlimited            unlimited            us        \n\
";

    #[test]
    fn python_limits() {
        let l = parse_limits(PY_LIMITS).unwrap();
        assert_eq!(l.len(), 16);
        for (i, lim) in l.iter().enumerate() {
            assert_eq!(lim.resource, Some(i as u32), "{}", lim.name);
            assert_eq!(lim.name, NAMES[i]);
        }
        let get = |r: usize| (l[r].soft, l[r].hard);
        assert_eq!(get(0), (RLIM_INFINITY, RLIM_INFINITY));
        assert_eq!(get(3), (8388608, RLIM_INFINITY));
        assert_eq!(get(4), (RLIM_INFINITY, RLIM_INFINITY));
        assert_eq!(get(6), (96364, 96364));
        assert_eq!(get(7), (1024, 4096));
        assert_eq!(get(8), (8388608, 8388608));
        assert_eq!(get(12), (819200, 819200));
        // No units column on these rows.
        assert_eq!(get(13), (0, 0));
        assert_eq!(get(14), (0, 0));
        assert_eq!(get(15), (RLIM_INFINITY, RLIM_INFINITY));
    }

    #[test]
    fn cat_limits() {
        let l = parse_limits(CAT_LIMITS).unwrap();
        assert_eq!(
            l[4],
            Limit {
                name: "Max core file size".into(),
                resource: Some(4),
                soft: 0,
                hard: RLIM_INFINITY
            }
        );
        assert_eq!((l[7].soft, l[7].hard), (20000, 20000));
    }

    #[test]
    fn unknown_rows_and_errors() {
        let text = format!("{PY_LIMITS}Max shiny things          5                    unlimited            things    \n");
        let l = parse_limits(&text).unwrap();
        assert_eq!(l.len(), 17);
        assert_eq!(l[16].name, "Max shiny things");
        assert_eq!(l[16].resource, None);
        assert_eq!((l[16].soft, l[16].hard), (5, RLIM_INFINITY));

        assert!(matches!(
            parse_limits("Max open files            lots                 lots\n"),
            Err(ParseError::BadLine {
                line: 1,
                reason: "no limit value",
                ..
            })
        ));
        assert!(matches!(
            parse_limits("Max open files            1024\n"),
            Err(ParseError::BadLine {
                reason: "no hard limit",
                ..
            })
        ));
        assert_eq!(
            parse_limits("Max open files            1024                 many      files\n"),
            Err(ParseError::BadNumber {
                file: "limits",
                field: "Max open files".into(),
                text: "many".into()
            })
        );
        assert!(matches!(
            parse_limits("1024 2048\n"),
            Err(ParseError::BadLine {
                reason: "no limit name",
                ..
            })
        ));
        assert_eq!(rlimit_resource("Max open files"), Some(7));
        assert_eq!(rlimit_resource("max open files"), None);
    }
}
