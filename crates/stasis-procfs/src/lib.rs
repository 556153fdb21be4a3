//! Parsers for the Linux `/proc` text that checkpointing needs, plus a small I/O boundary.
//!
//! This crate owns two things:
//!
//! * pure parsers (`maps`, `smaps`, `status`, `stat`, `fdinfo`, `limits`, `auxv`) that turn the
//!   text (or bytes) of one `/proc` file into typed values, and
//! * [`ProcSource`], the only place that touches the file system, so that engine code can be
//!   exercised against captured fixture directories as easily as against the live `/proc`.
//!
//! It must not grow policy: deciding what a mapping *means* for a checkpoint, ptrace, or any
//! syscall beyond reading files belongs to other crates. Parsers never perform I/O, which keeps
//! them deterministic and testable with pasted text.

pub mod auxv;
pub mod fdinfo;
pub mod limits;
pub mod maps;
pub mod net;
pub mod smaps;
pub mod source;
pub mod stat;
pub mod status;
pub mod sysvipc;
pub mod timers;
pub mod unixdiag;

mod error;
mod num;

pub use error::ParseError;
pub use source::{FixtureDir, ProcSource, RealProc};
pub use status::parse_sigmask_hex;

#[cfg(test)]
mod tests {
    use super::*;

    /// Pin the public signatures other crates are written against; a change here is a break.
    #[test]
    fn api_shape() {
        let _: fn(&str) -> Result<Vec<maps::MapsEntry>, ParseError> = maps::parse_maps;
        let _: fn(&str) -> Result<maps::MapsEntry, ParseError> = maps::parse_maps_line;
        let _: fn(&str) -> Result<Vec<smaps::SmapsEntry>, ParseError> = smaps::parse_smaps;
        let _: fn(&str) -> Result<status::Status, ParseError> = status::parse_status;
        let _: fn(&str) -> Result<stat::Stat, ParseError> = stat::parse_stat;
        let _: fn(&str) -> Result<fdinfo::FdInfo, ParseError> = fdinfo::parse_fdinfo;
        let _: fn(&str) -> Result<Vec<limits::Limit>, ParseError> = limits::parse_limits;
        type AuxvPairs = Vec<(u64, u64)>;
        let _: fn(&[u8]) -> Result<AuxvPairs, ParseError> = auxv::parse_auxv;
        let _: fn(&str) -> Result<u64, ParseError> = parse_sigmask_hex;
        let _: &dyn ProcSource = &RealProc;
        let _: &dyn ProcSource = &FixtureDir(std::path::PathBuf::new());
        assert_eq!(limits::RLIM_INFINITY, u64::MAX);
    }

    /// Every parser against this very process through the real I/O boundary, so a kernel format
    /// change shows up as a test failure on the machine that has it.
    #[cfg(target_os = "linux")]
    #[test]
    fn live_self() {
        let src = RealProc;
        let me = Some(std::process::id() as i32);
        let text = |rel: &str| src.read_string(me, rel).unwrap();

        let maps = maps::parse_maps(&text("maps")).unwrap();
        assert!(maps.iter().any(|m| m.path.as_deref() == Some("[stack]")));
        let smaps = smaps::parse_smaps(&text("smaps")).unwrap();
        // Separate reads can race with allocator activity in other test threads, so compare
        // loosely: both files describe roughly the same set of mappings.
        assert!(!smaps.is_empty() && smaps.len().abs_diff(maps.len()) < 32);
        assert!(smaps.iter().any(|s| s.vm_flags.has("gd")));

        let status = status::parse_status(&text("status")).unwrap();
        assert_eq!(Some(status.pid), me);
        let stat = stat::parse_stat(&text("stat")).unwrap();
        assert_eq!(Some(stat.pid), me);
        assert_eq!(stat.comm, status.name);
        assert_eq!(stat.ppid, status.ppid);

        let limits = limits::parse_limits(&text("limits")).unwrap();
        assert_eq!(limits.len(), 16);
        assert!(limits
            .iter()
            .all(|l| l.resource.is_some() && l.soft <= l.hard));

        for fd in src.list(me, "fdinfo").unwrap() {
            // A descriptor can close between listing and reading (other tests run in parallel).
            if let Ok(t) = src.read_string(me, &format!("fdinfo/{fd}")) {
                fdinfo::parse_fdinfo(&t).unwrap();
            }
        }
        let tid = src.list(me, "task").unwrap()[0].clone();
        stat::parse_stat(&text(&format!("task/{tid}/stat"))).unwrap();
        auxv::parse_auxv(&src.read(me, "auxv").unwrap()).unwrap();
    }
}
