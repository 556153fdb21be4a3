//! The only crate of stasis with `unsafe`: thin, typed wrappers around the Linux interfaces the
//! engine needs (ptrace, cross-process memory, pidfds, clone3 with `set_tid`, PAGEMAP_SCAN,
//! userfaultfd probes). Every wrapper does one syscall mode and returns `Result<_, Errno>`; no
//! policy lives here. The `nix` crate covers the plain calls; what it lacks (register sets,
//! PEEKSIGINFO, rseq configuration, PAGEMAP_SCAN, clone3) is written here by hand because no
//! maintained crate exposes it.
#![allow(unsafe_code)]

pub mod anonfd;
pub mod clone;
pub mod fown;
pub mod mem;
pub mod netlink;
pub mod pagemap;
pub mod pidfd;
pub mod probe;
pub mod ptrace;
pub mod sched;
pub mod sysvshm;
pub mod tty;

pub use memmap2::Mmap;

pub use nix::errno::Errno;
pub use nix::unistd::Pid;

/// `Result` of a syscall wrapper.
pub type SysResult<T> = Result<T, Errno>;
