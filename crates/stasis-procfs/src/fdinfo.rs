//! Parser for `/proc/PID/fdinfo/FD`.
//!
//! Owns [`FdInfo`]: the position, open flags, mount id and inode of one descriptor, plus every
//! type-specific line (eventfd counter, epoll targets, signalfd mask, timerfd settings, inotify
//! watches, ...) kept as ordered key/value pairs. It must not interpret those type-specific
//! lines: their formats belong to the code that dumps each file type, and keeping them raw means
//! a new kernel line never breaks parsing of the common fields.

use crate::num;
use crate::ParseError;

const FILE: &str = "fdinfo";

/// The parsed contents of `/proc/PID/fdinfo/FD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FdInfo {
    /// File position (`pos:`).
    pub pos: u64,
    /// `O_*` open flags (`flags:`, printed in octal), including `O_CLOEXEC` for the descriptor.
    pub flags: u32,
    /// Mount id (`mnt_id:`, Linux 3.15+; 0 if absent).
    pub mnt_id: u64,
    /// Inode number (`ino:`, Linux 5.14+; 0 if absent).
    pub ino: u64,
    /// every other "key: value" line, in order, value trimmed.
    ///
    /// The key is everything before the first ':' (trimmed), so `"settime flags: 00"` gives
    /// `("settime flags", "00")` and an epoll line `"tfd:        8 events:       19 ..."` gives
    /// `("tfd", "8 events:       19 ...")`. A line with no ':' at all (io_uring prints some) is
    /// kept as `(line trimmed, "")` rather than failing the whole descriptor.
    pub extra: Vec<(String, String)>,
}

impl FdInfo {
    /// The value of the first extra line with this key, e.g. `get("eventfd-count")`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse the whole text of an fdinfo file. `pos` and `flags` are required (every kernel prints
/// them); `mnt_id` and `ino` default to 0 on kernels that predate them.
pub fn parse_fdinfo(text: &str) -> Result<FdInfo, ParseError> {
    let mut info = FdInfo::default();
    let (mut have_pos, mut have_flags) = (false, false);
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            info.extra.push((line.trim().to_owned(), String::new()));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "pos" => {
                info.pos = num::dec(FILE, key, value)?;
                have_pos = true;
            }
            "flags" => {
                info.flags = num::oct_u32(FILE, key, value)?;
                have_flags = true;
            }
            "mnt_id" => info.mnt_id = num::dec(FILE, key, value)?,
            "ino" => info.ino = num::dec(FILE, key, value)?,
            _ => info.extra.push((key.to_owned(), value.to_owned())),
        }
    }
    if !have_pos {
        return Err(ParseError::MissingField {
            file: FILE,
            field: "pos",
        });
    }
    if !have_flags {
        return Err(ParseError::MissingField {
            file: FILE,
            field: "flags",
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const O_WRONLY: u32 = 0o1;
    const O_RDWR: u32 = 0o2;
    const O_APPEND: u32 = 0o2000;
    const O_NONBLOCK: u32 = 0o4000;
    const O_LARGEFILE: u32 = 0o100000;
    const O_CLOEXEC: u32 = 0o2000000;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `cat /proc/self/fdinfo/0 < /dev/null`.
    const CAT_STDIN: &str = "pos:\t0\n\
flags:\t0100000\n\
mnt_id:\t24\n\
ino:\t3\n\
";
    /// python3: a regular file opened "r+b" from a directory with spaces.
    const PY_FILE: &str = "pos:\t0\n\
flags:\t02100002\n\
mnt_id:\t27\n\
ino:\t10010784\n\
";
    /// python3: `select.epoll()` watching a pipe's read end (fd 8).
    const PY_EPOLL: &str = "pos:\t0\n\
flags:\t02000002\n\
mnt_id:\t17\n\
ino:\t1038\n\
tfd:        8 events:       19 data:                8  pos:0 ino:1269 sdev:f\n\
";
    /// python3: the two ends of `os.pipe()`.
    const PY_PIPE_R: &str = "pos:\t0\n\
flags:\t02000000\n\
mnt_id:\t16\n\
ino:\t4713\n\
";
    const PY_PIPE_W: &str = "pos:\t0\n\
flags:\t02000001\n\
mnt_id:\t16\n\
ino:\t4713\n\
";
    /// python3: `os.eventfd(5, EFD_NONBLOCK)`.
    const PY_EVENTFD: &str = "pos:\t0\n\
flags:\t04002\n\
mnt_id:\t17\n\
ino:\t1038\n\
eventfd-count:                5\n\
eventfd-id: 1\n\
eventfd-semaphore: 0\n\
";
    /// signalfd for SIGUSR1|SIGTERM with SFD_NONBLOCK.
    const SIGNALFD: &str = "pos:\t0\n\
flags:\t04002\n\
mnt_id:\t17\n\
ino:\t1038\n\
sigmask:\t0000000000004200\n\
";
    /// timerfd on CLOCK_MONOTONIC, armed with value 100s and interval 5s.
    const TIMERFD: &str = "pos:\t0\n\
flags:\t02\n\
mnt_id:\t17\n\
ino:\t1038\n\
clockid: 1\n\
ticks: 0\n\
settime flags: 00\n\
it_value: (72, 998257274)\n\
it_interval: (5, 0)\n\
";
    /// inotify watching a directory for IN_CREATE|IN_DELETE.
    const INOTIFY: &str = "pos:\t0\n\
flags:\t00\n\
mnt_id:\t17\n\
ino:\t1038\n\
inotify wd:1 ino:98c09c sdev:fe00000 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:9cc09800a03e5f5f\n\
";
    /// A TCP socket.
    const SOCKET: &str = "pos:\t0\n\
flags:\t02000002\n\
mnt_id:\t10\n\
ino:\t5363\n\
";
    /// A file opened for append at position 70.
    const APPEND: &str = "pos:\t70\n\
flags:\t02102001\n\
mnt_id:\t27\n\
ino:\t10010782\n\
";

    #[test]
    fn plain_files_and_pipes() {
        assert_eq!(
            parse_fdinfo(CAT_STDIN).unwrap(),
            FdInfo {
                pos: 0,
                flags: O_LARGEFILE,
                mnt_id: 24,
                ino: 3,
                extra: vec![]
            }
        );
        let f = parse_fdinfo(PY_FILE).unwrap();
        assert_eq!(f.flags, O_CLOEXEC | O_LARGEFILE | O_RDWR);
        assert_eq!((f.mnt_id, f.ino), (27, 10010784));

        let r = parse_fdinfo(PY_PIPE_R).unwrap();
        let w = parse_fdinfo(PY_PIPE_W).unwrap();
        assert_eq!(r.ino, w.ino);
        assert_eq!(r.flags, O_CLOEXEC);
        assert_eq!(w.flags, O_CLOEXEC | O_WRONLY);

        let a = parse_fdinfo(APPEND).unwrap();
        assert_eq!(a.pos, 70);
        assert_eq!(a.flags, O_CLOEXEC | O_LARGEFILE | O_APPEND | O_WRONLY);

        let s = parse_fdinfo(SOCKET).unwrap();
        assert_eq!((s.flags, s.mnt_id, s.ino), (O_CLOEXEC | O_RDWR, 10, 5363));
        assert!(s.extra.is_empty());
    }

    #[test]
    fn anon_inode_extras() {
        let e = parse_fdinfo(PY_EPOLL).unwrap();
        assert_eq!(
            e.extra,
            kv(&[(
                "tfd",
                "8 events:       19 data:                8  pos:0 ino:1269 sdev:f"
            )])
        );

        let ev = parse_fdinfo(PY_EVENTFD).unwrap();
        assert_eq!(ev.flags, O_NONBLOCK | O_RDWR);
        assert_eq!(
            ev.extra,
            kv(&[
                ("eventfd-count", "5"),
                ("eventfd-id", "1"),
                ("eventfd-semaphore", "0")
            ])
        );
        assert_eq!(ev.get("eventfd-count"), Some("5"));
        assert_eq!(ev.get("nope"), None);

        let sfd = parse_fdinfo(SIGNALFD).unwrap();
        let mask = crate::parse_sigmask_hex(sfd.get("sigmask").unwrap()).unwrap();
        assert_eq!(mask, (1 << (10 - 1)) | (1 << (15 - 1)));

        let t = parse_fdinfo(TIMERFD).unwrap();
        assert_eq!(
            t.extra,
            kv(&[
                ("clockid", "1"),
                ("ticks", "0"),
                ("settime flags", "00"),
                ("it_value", "(72, 998257274)"),
                ("it_interval", "(5, 0)"),
            ])
        );

        let i = parse_fdinfo(INOTIFY).unwrap();
        assert_eq!(i.flags, 0);
        assert_eq!(
            i.extra,
            kv(&[(
                "inotify wd",
                "1 ino:98c09c sdev:fe00000 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:9cc09800a03e5f5f"
            )])
        );
    }

    #[test]
    fn lines_without_colon_and_old_kernels() {
        // Shape of io_uring's overflow list (made up values): no ':' on the detail line.
        let text = "pos:\t0\nflags:\t02\nCqOverflowList:\n  user_data=1, res=0, flags=0\n";
        let f = parse_fdinfo(text).unwrap();
        assert_eq!(
            f.extra,
            kv(&[("CqOverflowList", ""), ("user_data=1, res=0, flags=0", "")])
        );
        assert_eq!((f.mnt_id, f.ino), (0, 0));
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_fdinfo("flags:\t02\n"),
            Err(ParseError::MissingField {
                file: "fdinfo",
                field: "pos"
            })
        );
        assert_eq!(
            parse_fdinfo("pos:\t0\n"),
            Err(ParseError::MissingField {
                file: "fdinfo",
                field: "flags"
            })
        );
        assert_eq!(
            parse_fdinfo("pos:\t0\nflags:\t09\n"),
            Err(ParseError::BadNumber {
                file: "fdinfo",
                field: "flags".into(),
                text: "09".into()
            })
        );
    }
}
