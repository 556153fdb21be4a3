//! File locks, from the "lock:" lines of fdinfo. flock and OFD locks belong to the open file
//! description: the process that took one (a flock names it as owner) takes it again through
//! its fd once its fds are in place; POSIX record locks belong to a process, so each process
//! takes its own by a remote fcntl, after the restorer's copies of its fds are closed.
//! Leases belong to the description too and are set by the process that set them, through its
//! own fd (the fd number a break signal carries as si_fd; the signal goes to the file's
//! owner, restored before); a lease that was being broken is set and broken again, by a
//! conflicting non-blocking open from the restorer, and the break signal that open sends the
//! process is taken back (the process saw it before the dump). Delegations are refused.

use crate::scratch::Scratch;
use crate::tracee::{Tracee, TraceeError};
use stasis_image::LockEntry;
use std::os::unix::fs::OpenOptionsExt;

/// Parse the value of one fdinfo "lock:" line: "1: POSIX  ADVISORY  WRITE 6179 fe:00:123 10 29".
pub fn parse(v: &str) -> Result<LockEntry, &'static str> {
    let f: Vec<&str> = v.split_whitespace().collect();
    if f.len() < 8 {
        return Err("an fdinfo lock line could not be read");
    }
    let kind = match f[1] {
        "FLOCK" => "flock",
        "POSIX" => "posix",
        "OFDLCK" => "ofd",
        "LEASE" => return parse_lease(&f),
        _ => return Err("delegations and other lock kinds are not supported yet"),
    };
    if f[2] != "ADVISORY" {
        return Err("mandatory locks are not supported");
    }
    Ok(LockEntry {
        kind: kind.into(),
        write: f[3] == "WRITE",
        pid: f[4].parse().unwrap_or(0),
        start: f[6].parse().map_err(|_| "bad lock start")?,
        end: if f[7] == "EOF" {
            None
        } else {
            Some(f[7].parse().map_err(|_| "bad lock end")?)
        },
        breaking_to: None,
    })
}

/// A lease line, split: "1:", "LEASE", "ACTIVE"/"BREAKING", then the type (a breaking lease
/// shows the type it breaks to), the setter's pid, dev:ino, "0", "EOF".
fn parse_lease(f: &[&str]) -> Result<LockEntry, &'static str> {
    let breaking_to = match (f[2], f[3]) {
        ("ACTIVE", "READ" | "WRITE") => None,
        ("BREAKING", "READ") => Some("read".to_string()),
        ("BREAKING", "UNLCK") => Some("unlock".to_string()),
        _ => return Err("a lease in a state stasis does not know"),
    };
    Ok(LockEntry {
        kind: "lease".into(),
        write: breaking_to.is_none() && f[3] == "WRITE",
        pid: f[4].parse().unwrap_or(0),
        start: 0,
        end: None,
        breaking_to,
    })
}

fn flock_struct(l: &LockEntry) -> libc::flock {
    libc::flock {
        l_type: if l.write {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        } as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: l.start as i64,
        l_len: l.end.map_or(0, |e| (e - l.start + 1) as i64),
        l_pid: 0,
    }
}

/// Take the description's own locks (flock, OFD) through fd `fd`, from inside the process
/// that took them at dump time (the kernel records that process as a flock's owner).
pub fn take_on_description(
    t: &mut impl Tracee,
    s: Scratch,
    fd: i32,
    locks: &[LockEntry],
) -> Result<(), TraceeError> {
    for l in locks {
        match l.kind.as_str() {
            "flock" => {
                let op = if l.write {
                    libc::LOCK_EX
                } else {
                    libc::LOCK_SH
                } | libc::LOCK_NB;
                t.syscall("flock", libc::SYS_flock, [fd as u64, op as u64, 0, 0, 0, 0])?;
            }
            "ofd" => {
                t.write_mem(s.at(5120), &flock_bytes(l))?;
                t.syscall(
                    "fcntl(F_OFD_SETLK)",
                    libc::SYS_fcntl,
                    [fd as u64, libc::F_OFD_SETLK as u64, s.at(5120), 0, 0, 0],
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Set the lease `l` on fd `fd`, from inside the process that set it (its fasync entry
/// carries this fd number). `accmode` is the description's
/// O_ACCMODE; `signum` its F_SETSIG signal (0: SIGIO), which a break sends the owner.
pub fn take_lease(
    t: &mut impl Tracee,
    s: Scratch,
    fd: i32,
    accmode: i32,
    signum: i32,
    l: &LockEntry,
) -> Result<(), TraceeError> {
    let pid = t.pid();
    // A breaking lease is set as it was before the break: one that breaks to a read lease
    // was a write lease; one that breaks to nothing had the strongest type its open mode
    // allows (as CRIU assumes), a read lease on a read-only description.
    let (ty, breaker) = match l.breaking_to.as_deref() {
        None if l.write => (libc::F_WRLCK, None),
        None => (libc::F_RDLCK, None),
        Some("read") => (libc::F_WRLCK, Some(libc::O_RDONLY)),
        Some(_) if accmode == libc::O_RDONLY => (libc::F_RDLCK, Some(libc::O_WRONLY)),
        Some(_) => (libc::F_WRLCK, Some(libc::O_WRONLY)),
    };
    t.syscall(
        "fcntl(F_SETLEASE)",
        libc::SYS_fcntl,
        [fd as u64, libc::F_SETLEASE as u64, ty as u64, 0, 0, 0],
    )?;
    let Some(mode) = breaker else {
        return Ok(());
    };
    // The break signals the file's owner, which may be another process of the tree (its
    // saved owner, set before): this process for the moment, so the signal is ours to take
    // back. The caller sets the saved owner again afterwards.
    let me = t.syscall("getpid", libc::SYS_getpid, [0; 6])?;
    t.syscall(
        "fcntl(F_SETOWN)",
        libc::SYS_fcntl,
        [fd as u64, libc::F_SETOWN as u64, me, 0, 0, 0],
    )?;
    // Any open of the file that conflicts starts the break (opening through /proc/PID/fd
    // reaches the very inode, whatever its name); non-blocking, it fails at once.
    match std::fs::OpenOptions::new()
        .read(mode == libc::O_RDONLY)
        .write(mode == libc::O_WRONLY)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(format!("/proc/{pid}/fd/{fd}"))
    {
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
        Ok(_) => {
            return Err(TraceeError::Syscall {
                pid,
                name: "breaking a lease again (the open did not conflict)",
                source: stasis_sys::Errno::EINVAL,
            })
        }
        Err(e) => {
            return Err(TraceeError::Syscall {
                pid,
                name: "breaking a lease again (open)",
                source: stasis_sys::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
            })
        }
    }
    // The break signalled the owner, this process (its signals are blocked while we drive
    // it): take that signal back, rt_sigtimedwait({sig}, NULL, {0, 0}).
    let sig = if signum == 0 { libc::SIGIO } else { signum };
    let set: u64 = 1 << (sig - 1);
    t.write_mem(s.at(5120), &crate::scratch::words_to_bytes(&[set, 0, 0]))?;
    t.syscall_raw(
        libc::SYS_rt_sigtimedwait,
        [s.at(5120), 0, s.at(5120) + 8, 8, 0, 0],
    )?;
    Ok(())
}

/// struct flock as the kernel reads it: l_type i16, l_whence i16, pad 4, l_start i64, l_len
/// i64, l_pid i32.
fn flock_bytes(l: &LockEntry) -> [u8; 32] {
    let fl = flock_struct(l);
    let mut b = [0u8; 32];
    b[0..2].copy_from_slice(&fl.l_type.to_le_bytes());
    b[2..4].copy_from_slice(&fl.l_whence.to_le_bytes());
    b[8..16].copy_from_slice(&fl.l_start.to_le_bytes());
    b[16..24].copy_from_slice(&fl.l_len.to_le_bytes());
    b
}

/// Take the POSIX locks process `pid` held through its fd `fd`, from inside the process.
pub fn take_posix(
    t: &mut impl Tracee,
    s: Scratch,
    pid: i32,
    fd: i32,
    locks: &[LockEntry],
) -> Result<(), TraceeError> {
    for l in locks.iter().filter(|l| l.kind == "posix" && l.pid == pid) {
        t.write_mem(s.at(5120), &flock_bytes(l))?;
        t.syscall(
            "fcntl(F_SETLK)",
            libc::SYS_fcntl,
            [fd as u64, libc::F_SETLK as u64, s.at(5120), 0, 0, 0],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines() {
        let l = super::parse("1: POSIX  ADVISORY  WRITE 6179 fe:00:10010853 10 29").unwrap();
        assert_eq!(
            (l.kind.as_str(), l.write, l.pid, l.start, l.end),
            ("posix", true, 6179, 10, Some(29))
        );
        let l = super::parse("1: OFDLCK ADVISORY  READ -1 fe:00:10010876 0 EOF").unwrap();
        assert_eq!((l.kind.as_str(), l.write, l.end), ("ofd", false, None));
        let l = super::parse("1: LEASE  ACTIVE    WRITE 3127 fe:00:5319152 0 EOF").unwrap();
        assert_eq!(
            (l.kind.as_str(), l.write, l.pid, l.breaking_to),
            ("lease", true, 3127, None)
        );
        let l = super::parse("1: LEASE  BREAKING  UNLCK 3132 fe:00:5319152 0 EOF").unwrap();
        assert_eq!(l.breaking_to.as_deref(), Some("unlock"));
        let l = super::parse("1: LEASE  BREAKING  READ 3132 fe:00:5319152 0 EOF").unwrap();
        assert_eq!(l.breaking_to.as_deref(), Some("read"));
        assert!(super::parse("1: DELEG  ACTIVE    READ 1 fe:00:1 0 EOF").is_err());
    }
}
