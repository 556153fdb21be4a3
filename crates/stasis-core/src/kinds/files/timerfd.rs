//! timerfds: clock, time left, period, flags and unread expirations (from fdinfo); restore
//! arms a new timerfd with the time that was left and puts the expirations back with
//! TFD_IOC_SET_TICKS.

use super::{DumpFd, FilesError};
use stasis_image::{FileEntry, FileKindEntry};
use std::os::fd::{AsRawFd, OwnedFd};

/// "(sec, nsec)" as fdinfo prints a timespec.
fn parse_ts(v: &str) -> Option<u64> {
    let v = v.trim().trim_start_matches('(').trim_end_matches(')');
    let (s, ns) = v.split_once(',')?;
    Some(s.trim().parse::<u64>().ok()? * 1_000_000_000 + ns.trim().parse::<u64>().ok()?)
}

/// The kind: see the module doc.
pub struct Timerfd;

impl super::FileKind for Timerfd {
    fn tags(&self) -> &'static [&'static str] {
        &["timerfd"]
    }
    fn claims(&self, cx: &DumpFd) -> bool {
        cx.link == "anon_inode:[timerfd]"
    }
    fn dump(&self, cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
        dump(cx)
    }
    fn open(&self, _cx: &mut super::OpenCx, entry: &FileEntry) -> Result<OwnedFd, FilesError> {
        open(entry)
    }
}

pub fn dump(cx: &mut DumpFd) -> Result<FileKindEntry, FilesError> {
    let bad = || FilesError::Unsupported {
        pid: cx.pid,
        fd: cx.fd,
        kind: cx.link.to_string(),
        why: "its fdinfo lacks the timerfd fields (clockid, ticks, it_value, it_interval)",
    };
    let get = |k: &str| cx.info.get(k).map(str::trim);
    Ok(FileKindEntry::Timerfd {
        clockid: get("clockid")
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?,
        ticks: get("ticks").and_then(|v| v.parse().ok()).ok_or_else(bad)?,
        value_ns: get("it_value").and_then(parse_ts).ok_or_else(bad)?,
        interval_ns: get("it_interval").and_then(parse_ts).ok_or_else(bad)?,
        settime_flags: get("settime flags")
            .and_then(|v| u32::from_str_radix(v, 8).ok())
            .unwrap_or(0),
    })
}

pub fn open(entry: &FileEntry) -> Result<OwnedFd, FilesError> {
    let FileKindEntry::Timerfd {
        clockid,
        ticks,
        value_ns,
        interval_ns,
        settime_flags,
    } = &entry.kind
    else {
        unreachable!("timerfd::open on another kind")
    };
    let err = |op, source: std::io::Error| FilesError::Open {
        id: entry.id,
        op,
        path: "timerfd".into(),
        source,
    };
    let flags = libc::TFD_CLOEXEC | (entry.flags as i32 & libc::O_NONBLOCK);
    let fd =
        stasis_sys::anonfd::timerfd_create(*clockid, flags).map_err(|e| err("create", e.into()))?;
    // Time left is relative in fdinfo. An absolute timer (TFD_TIMER_ABSTIME, maybe with
    // TFD_TIMER_CANCEL_ON_SET) is re-armed absolute at now + time left, keeping its flags; a
    // timer due right now must not be disarmed by a zero value.
    let armed = *value_ns != 0 || *interval_ns != 0;
    if armed {
        let value = (*value_ns).max(1);
        let (flags, value) = if settime_flags & libc::TFD_TIMER_ABSTIME as u32 != 0 {
            let now = nix::time::clock_gettime(nix::time::ClockId::from_raw(*clockid))
                .map_err(|e| err("read the clock of", e.into()))?;
            let now_ns = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
            (*settime_flags as i32, now_ns + value)
        } else {
            (0, value)
        };
        stasis_sys::anonfd::timerfd_settime(fd.as_raw_fd(), flags, *interval_ns, value)
            .map_err(|e| err("arm", e.into()))?;
    }
    if *ticks > 0 {
        stasis_sys::anonfd::timerfd_set_ticks(fd.as_raw_fd(), *ticks)
            .map_err(|e| err("set the expirations of", e.into()))?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timespec_text() {
        assert_eq!(super::parse_ts("(0, 49763455)"), Some(49_763_455));
        assert_eq!(super::parse_ts("(3, 5)"), Some(3_000_000_005));
        assert_eq!(super::parse_ts("3"), None);
    }
}
