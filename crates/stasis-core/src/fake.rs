//! A recording [`Tracee`] for unit tests: remote syscalls are logged and answered from a
//! script, memory is a sparse map. Lets engine logic be tested without ptrace.

use crate::tracee::{Tracee, TraceeError};
use std::collections::BTreeMap;

/// One remote syscall the engine made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub nr: i64,
    pub args: [u64; 6],
}

#[derive(Default)]
pub struct FakeTracee {
    pub pid: i32,
    pub calls: Vec<Call>,
    /// Bytes of memory by address.
    pub mem: BTreeMap<u64, u8>,
    /// What syscall `nr` returns (default 0).
    pub answers: BTreeMap<i64, i64>,
    /// Memory snapshots taken at each call: the bytes at (addr, len) of the watched range.
    pub watch: Option<(u64, usize)>,
    pub seen: Vec<Vec<u8>>,
}

impl Tracee for FakeTracee {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn syscall_raw(&mut self, nr: i64, args: [u64; 6]) -> Result<i64, TraceeError> {
        self.calls.push(Call { nr, args });
        if let Some((addr, len)) = self.watch {
            let mut b = vec![0; len];
            self.read_mem(addr, &mut b)?;
            self.seen.push(b);
        }
        Ok(*self.answers.get(&nr).unwrap_or(&0))
    }

    fn read_mem(&self, addr: u64, buf: &mut [u8]) -> Result<(), TraceeError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *self.mem.get(&(addr + i as u64)).unwrap_or(&0);
        }
        Ok(())
    }

    fn write_mem(&mut self, addr: u64, data: &[u8]) -> Result<(), TraceeError> {
        for (i, b) in data.iter().enumerate() {
            self.mem.insert(addr + i as u64, *b);
        }
        Ok(())
    }
}
