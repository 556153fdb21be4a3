//! The stasis engine: freeze a process, capture its state kind by kind into an image, and
//! rebuild it from an image. See DESIGN.md §3-4 for the mechanism. The job supervisor
//! (`stasis run`) is built on this crate and lives in the stasis-run crate.

pub mod cgroup;
pub mod check;
pub mod dump;
#[cfg(test)]
pub mod fake;
pub mod freeze;
pub mod kinds;
pub mod pidns;
pub mod restore;
pub mod scratch;
pub mod tracee;
pub mod trust;

pub use dump::{dump, DumpError, DumpOptions, DumpReport};
pub use kinds::files::InheritFd;
pub use restore::{restore, RestoreError, RestoreOptions, Restored};
pub use stasis_sys::clone::{default_sigpipe, forward_signals};

/// An error and its sources on one line, `outer: cause: root cause` (for messages that cross
/// a process boundary, where the error value itself cannot: a restore run by a namespace's
/// init, a dump run by `stasis run`'s dump worker).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Durations in the JSON that stasis prints are seconds, as numbers, in fields named `*_secs`
/// (the supervisor's records too): one format everywhere.
pub fn serialize_secs<S: serde::Serializer>(
    d: &std::time::Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Kill every process a restore of `dir` just made (the caller could not finish what it
/// promised, such as writing the pidfile): a restore that reports failure leaves nothing
/// running. The processes are the caller's descendants, with the image's pids.
pub fn kill_restored(dir: &std::path::Path) {
    if let Ok(inv) = stasis_image::read_record_file::<stasis_image::InventoryEntry>(
        &dir.join(stasis_image::Image::INVENTORY),
        stasis_image::FileKind::Inventory,
    ) {
        for pid in inv.pids.iter().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let root = nix::unistd::Pid::from_raw(inv.root_pid);
        let _ = nix::sys::wait::waitpid(root, None);
    }
}
