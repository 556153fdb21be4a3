//! Pseudo-terminal requests: the index of a pty master, its termios and window size, unlocking
//! a new master. Wrappers only.

use crate::{Errno, SysResult};
use std::os::fd::RawFd;

fn check(r: libc::c_int) -> SysResult<()> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `ioctl(fd, TIOCGPTN, &n)`—The index N of the pty master (its slave is /dev/pts/N).
pub fn pty_index(fd: RawFd) -> SysResult<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: the kernel writes one unsigned int into `n`.
    check(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n as *mut libc::c_uint) })?;
    Ok(n)
}

/// `ioctl(fd, TIOCSPTLCK, &0)`—Unlock a new pty master's slave.
pub fn pty_unlock(fd: RawFd) -> SysResult<()> {
    let zero: libc::c_int = 0;
    // SAFETY: the kernel reads one int from `zero`.
    check(unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &zero as *const libc::c_int) })
}

/// The raw termios (60 bytes on x86_64) of a terminal.
pub fn get_termios(fd: RawFd) -> SysResult<Vec<u8>> {
    // SAFETY: all-zero termios is valid; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid termios the kernel writes.
    check(unsafe { libc::tcgetattr(fd, &mut t) })?;
    // SAFETY: termios is plain old data; we copy its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&t as *const libc::termios).cast::<u8>(),
            std::mem::size_of::<libc::termios>(),
        )
    };
    Ok(bytes.to_vec())
}

/// Set a terminal's termios from bytes [`get_termios`] returned.
pub fn set_termios(fd: RawFd, raw: &[u8]) -> SysResult<()> {
    if raw.len() != std::mem::size_of::<libc::termios>() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: all-zero termios is valid.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: copying exactly size_of::<termios>() bytes into plain old data.
    unsafe {
        std::ptr::copy_nonoverlapping(
            raw.as_ptr(),
            (&mut t as *mut libc::termios).cast::<u8>(),
            raw.len(),
        )
    };
    // SAFETY: `t` is a valid termios the kernel reads.
    check(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) })
}

/// Window size (rows, cols, xpixel, ypixel).
pub fn get_winsize(fd: RawFd) -> SysResult<[u16; 4]> {
    // SAFETY: all-zero winsize is valid.
    let mut w: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one winsize.
    check(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut w as *mut libc::winsize) })?;
    Ok([w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel])
}

pub fn set_winsize(fd: RawFd, v: [u16; 4]) -> SysResult<()> {
    let w = libc::winsize {
        ws_row: v[0],
        ws_col: v[1],
        ws_xpixel: v[2],
        ws_ypixel: v[3],
    };
    // SAFETY: the kernel reads one winsize.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &w as *const libc::winsize) })
}

/// `ioctl(fd, FIONREAD, &n)`—Bytes waiting to be read on a terminal (or pipe, socket).
pub fn pending_bytes(fd: RawFd) -> SysResult<i32> {
    let mut n: libc::c_int = 0;
    // SAFETY: the kernel writes one int into `n`.
    check(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) })?;
    Ok(n)
}
