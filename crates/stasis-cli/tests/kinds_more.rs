//! End-to-end tests of file kinds and file state added after the first set (e2e.rs): leases
//! (active and being broken), inotify watches on deleted files, fanotify groups. Each runs a
//! C workload from tests/workloads through `stasis dump --kill` and `stasis restore` and
//! asserts on the checks it prints. Needs root (fanotify, leases on others' files, clone3
//! with set_tid): CI runs as root.

mod common;
use common::*;

/// A C workload from tests/workloads: dump --kill (with `dump_args`), restore, SIGUSR2,
/// expect exit 0, no FAIL, and every check of `checks` printed as held.
fn workload_checked(name: &str, dump_args: &'static [&'static str], checks: &[&str]) -> Cycle {
    let bin = build(name, &[], name);
    let c = Case::new();
    let r = cycle(
        &c,
        &[bin.to_str().unwrap()],
        CycleOpts {
            dump_args,
            ..CycleOpts::default()
        },
    );
    r.assert_ok();
    assert!(r.after.contains("ok "), "no checks ran:\n{}", r.after);
    for check in checks {
        assert!(
            r.after.contains(&format!("ok {check}\n")),
            "{check}: {}",
            r.after
        );
    }
    r
}

#[test]
fn leases_active_and_breaking() {
    let _g = serial();
    workload_checked(
        "leases",
        &["--file-locks"],
        &[
            "read-lease",
            "write-lease",
            "breaking-to-unlock",
            "breaking-to-read",
            "no-restore-signal",
            "break-signal",
        ],
    );
}

#[test]
fn inotify_watch_on_a_deleted_file() {
    let _g = serial();
    workload_checked(
        "inotify_deleted",
        &[],
        &["no-restore-events", "deleted-file-watch", "directory-watch"],
    );
}

#[test]
fn fanotify_group_and_marks() {
    let _g = serial();
    workload_checked("fanotify", &[], &["fdinfo", "no-restore-events", "mark"]);
}
