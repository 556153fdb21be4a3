//! Workload tests for behaviours CRIU's zdtm suite exposed: each C program in
//! tests/workloads sets up one piece of state zdtm checks (thread-directed POSIX timers,
//! seccomp under another uid, stopped and killed children, a shared fd table, madvise flags
//! and guard pages, shared file mappings that may become writable, memfd descriptions, files
//! under /proc of the tree), is dumped with `stasis dump --kill`, restored, and after SIGUSR2
//! proves the state survived (`ok CHECK` lines, exit 0). Needs root, like e2e.rs.

mod common;
use common::*;

/// glibc's SIGEV_THREAD timer (signal 32 to its helper thread) and a raw SIGEV_THREAD_ID
/// timer aimed at a worker thread keep firing, each to its own thread (zdtm pthread_timers).
/// /proc/PID/timers shows both as `signal/tid.N`: read as process-directed, the first one's
/// signal 32 never reached glibc's helper (no callback ran; with no handler for 32 it kills
/// the process) and the second one's signals went to main.
#[test]
fn thread_directed_posix_timers_fire_to_their_threads() {
    let _g = serial();
    let r = workload("pthread_timers", &[]);
    assert_checks(
        &r,
        &[
            "sigev-thread-period",
            "thread-id-period",
            "sigev-thread-fires",
            "sigev-thread-callback",
            "thread-id-fires",
            "thread-id-right-thread",
        ],
    );
}

/// A seccomp filter installed by root without no_new_privs, then uid/gid 1000 with no
/// capability left: the filter still answers getppid with its errno and the ids are 1000
/// (as in zdtm's seccomp filter tests run as root). Installed after the credentials, as before, the filter was
/// refused (EACCES) and the restore failed.
#[test]
fn seccomp_filter_survives_a_drop_to_another_uid() {
    let _g = serial();
    let r = workload("seccomp_setuid", &[]);
    assert_checks(
        &r,
        &[
            "seccomp-filter",
            "other-syscalls-allowed",
            "no-new-privs-unset",
            "seccomp-status",
            "ids",
            "no-capabilities",
        ],
    );
}

/// A zombie killed by SIGKILL, a child stopped by SIGTSTP whose parent has not waited for the
/// stop, and a stopped child with a second SIGSTOP pending (zdtm's zombie and stopped tests):
/// the dump succeeds, the zombie reports CLD_KILLED/SIGKILL, waitpid
/// (WUNTRACED) reports SIGTSTP, and both stopped children stay stopped until SIGCONT.
#[test]
fn killed_zombies_and_stopped_children_keep_their_signals() {
    let _g = serial();
    let r = workload("stopped_children", &[]);
    assert_checks(
        &r,
        &[
            "killed-zombie",
            "tstp-stopped",
            "stop-signal",
            "tstp-continues",
            "sigstop-stopped",
            "sigstop-still-stopped",
            "sigstop-continues",
            "sigstop-exit",
        ],
    );
}

/// A parent and a child cloned with CLONE_FILES (zdtm fdt_shared) share one fd table again:
/// kcmp says so, an fd the child opens after restore is read by the parent, one the parent
/// opens is found by the child, and a close by the parent is seen by the child. Restored as
/// two tables, each saw only its own new fds.
#[test]
fn clone_files_children_share_the_fd_table() {
    let _g = serial();
    let r = workload("shared_fdtable", &[]);
    assert_checks(
        &r,
        &[
            "kcmp-files",
            "child-fd-seen-by-parent",
            "parent-fd-seen-by-child",
            "close-seen-by-child",
            "child-exit",
        ],
    );
}

/// VmFlags set by madvise and mlock (dc, wf, hg, nh, dd, lo from MAP_LOCKED and from mlock)
/// come back on the same mappings with the same bytes, a forked child gets no DONTFORK mapping
/// and a wiped WIPEONFORK one, and a guard page (MADV_GUARD_INSTALL) still faults while its
/// neighbours keep their bytes. Mapped again with mmap alone, every flag was lost.
#[test]
fn madvise_flags_locks_and_guard_pages_come_back() {
    let _g = serial();
    let r = workload("vma_flags", &[]);
    let mut checks: Vec<String> = [
        "fork-dontfork",
        "fork-wipeonfork",
        "fork-copies",
        "wipeonfork-kept-in-parent",
    ]
    .map(String::from)
    .to_vec();
    for kind in [
        "dontfork",
        "wipeonfork",
        "hugepage",
        "nohugepage",
        "dontdump",
        "map-locked",
        "mlock",
    ] {
        for what in ["vmflag", "vmflags-same", "data"] {
            checks.push(format!("{what}-{kind}"));
        }
    }
    assert_checks(&r, &checks);
    // Guard pages need Linux 6.13 (installing) and 6.14 (finding them at dump): a kernel
    // without them prints a visible skip.
    if r.after.contains("skip guard-faults") {
        eprintln!("guard pages not supported by this kernel: skipped");
    } else {
        assert_checks(&r, &["guard-faults", "guard-neighbours"]);
    }
}

/// A MAP_SHARED mapping of a file opened O_RDWR but mapped PROT_READ (VM_MAYWRITE) can still
/// be made writable after restore, and its writes reach the file. Mapped again from the file
/// opened read-only, the mprotect failed with EACCES.
#[test]
fn read_only_shared_file_mapping_can_become_writable() {
    let _g = serial();
    let r = workload("shared_map_ro", &[]);
    assert_checks(
        &r,
        &[
            "still-read-only",
            "may-write",
            "content",
            "mprotect-rw",
            "writes-reach-file",
        ],
    );
}

/// One memfd behind several open file descriptions (O_APPEND, read-only at its own offset, a
/// child's own reopen) stays one file with its mode (0640): writes through any description
/// are read through the others. Restored as one memfd per description, they were separate
/// files with mode 0777 and no O_APPEND.
#[test]
fn memfd_descriptions_stay_one_file() {
    let _g = serial();
    let r = workload("memfd_descriptions", &[]);
    assert_checks(
        &r,
        &[
            "mode",
            "one-inode",
            "names",
            "access-modes",
            "append-flag",
            "offsets",
            "shared-writes",
            "append-writes-at-end",
            "child-one-inode",
            "child-sees-parent-write",
            "parent-sees-child-write",
            "child-exit",
        ],
    );
}

/// /proc/self/maps, /proc/self/status (at an offset), /proc/CHILD/stat and /proc/CHILD/maps
/// held open come back naming the right processes (zdtm child_opened_proc). Opened by the restorer before the tree
/// existed, they failed (no such process yet).
#[test]
fn proc_files_of_the_tree_name_the_restored_processes() {
    let _g = serial();
    let r = workload("proc_files", &[]);
    assert_checks(
        &r,
        &[
            "self-maps",
            "status-offset",
            "self-status",
            "child-stat",
            "child-maps",
            "child-exit",
            "child-stat-was-the-child",
        ],
    );
}
