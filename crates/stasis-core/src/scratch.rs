//! A scratch area mapped inside a tracee while we drive it: remote syscalls that take or
//! return structs (sigaction, itimerval, prctl_mm_map, siginfo) use it. Mapped by a remote mmap
//! and unmapped before the tracee runs again; never part of an image.

use crate::tracee::{Tracee, TraceeError};

/// Size of the scratch area.
pub const SCRATCH_LEN: u64 = 16 * 4096;

#[derive(Debug, Clone, Copy)]
pub struct Scratch {
    pub addr: u64,
}

impl Scratch {
    /// Map a scratch area anywhere (`hint` 0) or at a fixed free address.
    pub fn map(t: &mut impl Tracee, hint: u64) -> Result<Scratch, TraceeError> {
        let mut flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        if hint != 0 {
            flags |= libc::MAP_FIXED_NOREPLACE as u64;
        }
        let addr = t.syscall(
            "mmap (scratch)",
            libc::SYS_mmap,
            [
                hint,
                SCRATCH_LEN,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                flags,
                u64::MAX,
                0,
            ],
        )?;
        Ok(Scratch { addr })
    }

    pub fn unmap(self, t: &mut impl Tracee) -> Result<(), TraceeError> {
        t.syscall(
            "munmap (scratch)",
            libc::SYS_munmap,
            [self.addr, SCRATCH_LEN, 0, 0, 0, 0],
        )
        .map(drop)
    }

    pub fn at(&self, off: u64) -> u64 {
        self.addr + off
    }
}

/// View a slice of u64 words as little-endian bytes.
pub fn words_to_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Read little-endian u64 words.
pub fn bytes_to_words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}
