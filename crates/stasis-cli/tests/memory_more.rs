//! End-to-end: address-space and per-thread state the kernel makes outside mmap, each in a
//! workload of its own (tests/workloads): AIO rings, a process without a vDSO, seccomp filters
//! that differ between threads, and a working directory in /proc of an exited process. Each
//! is dumped with `stasis dump --kill`, restored, and checked by the `ok CHECK` lines it
//! prints. Needs root (clone3 with set_tid), as e2e.rs.

mod common;
use common::*;

#[test]
fn aio_rings_keep_address_and_events() {
    let _g = serial();
    let r = workload("aio_ring", &[]);
    assert_checks(
        &r,
        &[
            "aio-mapped",
            "aio-header",
            "aio-pending-events",
            "aio-nothing-more",
            "aio-ring-a-works",
            "aio-ring-b-works",
        ],
    );
}

#[test]
fn process_without_vdso_stays_without() {
    let _g = serial();
    let r = workload("no_vdso", &[]);
    assert_checks(
        &r,
        &[
            "child-no-vdso-after-restore",
            "child-answers",
            "child-memory",
            "child-no-vdso-after-running",
            "parent-vdso-in-place",
            "parent-vdso-works",
        ],
    );
}

#[test]
fn seccomp_filters_per_thread() {
    let _g = serial();
    let r = workload("seccomp_threads", &[]);
    assert_checks(
        &r,
        &["main-filters", "bare-filters", "t1-filters", "t2-filters"],
    );
}

#[test]
fn cwd_in_proc_of_exited_process() {
    let _g = serial();
    let r = workload("dead_proc_cwd", &[]);
    assert_checks(&r, &["getcwd", "cwd-link", "dead-pid-free", "leave"]);
}
