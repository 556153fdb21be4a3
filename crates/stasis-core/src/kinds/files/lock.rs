//! File locks, from the "lock:" lines of fdinfo. flock and OFD locks belong to the open file
//! description: the process that took one (a flock names it as owner) takes it again through
//! its fd once its fds are in place; POSIX record locks belong to a process, so each process
//! takes its own by a remote fcntl, after the restorer's copies of its fds are closed.
//! Leases and delegations are refused.

use crate::scratch::Scratch;
use crate::tracee::{Tracee, TraceeError};
use stasis_image::LockEntry;

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
        _ => return Err("leases, delegations and other lock kinds are not supported yet"),
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
        assert!(super::parse("1: LEASE  ACTIVE    READ 1 fe:00:1 0 EOF").is_err());
    }
}
