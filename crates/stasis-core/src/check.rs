//! `stasis check`: probe, on this kernel and with these privileges, every kernel feature stasis
//! uses, and say which stasis features each one enables. Probes act on a throwaway child or on
//! ourselves; nothing outside is touched.

use stasis_sys::clone::{self, Forked};
use stasis_sys::{ptrace, Errno, Pid};

/// One probed kernel feature.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What stasis can do with it.
    pub enables: &'static str,
}

fn probe(name: &'static str, enables: &'static str, r: Result<String, String>) -> Probe {
    match r {
        Ok(detail) => Probe {
            name,
            ok: true,
            detail,
            enables,
        },
        Err(detail) => Probe {
            name,
            ok: false,
            detail,
            enables,
        },
    }
}

/// A child that pauses until killed; killed and reaped on drop.
struct Child(Pid);

impl Child {
    fn spawn() -> Result<Child, String> {
        match clone::fork().map_err(|e| format!("fork: {e}"))? {
            Forked::Child => clone::child_park(-1),
            Forked::Parent(p) => Ok(Child(p)),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = ptrace::kill(self.0, libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.0, None);
    }
}

fn e(what: &str) -> impl Fn(Errno) -> String + '_ {
    move |err| format!("{what}: {err}")
}

fn seize_probe() -> Result<String, String> {
    let c = Child::spawn()?;
    ptrace::seize(c.0, ptrace::OPT_TRACESYSGOOD).map_err(e("PTRACE_SEIZE"))?;
    ptrace::interrupt(c.0).map_err(e("PTRACE_INTERRUPT"))?;
    ptrace::wait(c.0, false).map_err(e("waitpid"))?;
    let regs = ptrace::get_regs(c.0).map_err(e("PTRACE_GETREGS"))?;
    let xs = ptrace::get_xstate(c.0).map_err(e("NT_X86_XSTATE"))?;
    ptrace::get_sigmask(c.0).map_err(e("PTRACE_GETSIGMASK"))?;
    ptrace::peek_siginfo(c.0, false).map_err(e("PTRACE_PEEKSIGINFO"))?;
    let rseq = ptrace::get_rseq_config(c.0).map_err(e("PTRACE_GET_RSEQ_CONFIGURATION"))?;
    let mut buf = [0u8; 8];
    stasis_sys::mem::read_ranges(c.0, &mut buf, &[(regs.rsp, 8)]).map_err(e("process_vm_readv"))?;
    ptrace::detach(c.0, 0).map_err(e("PTRACE_DETACH"))?;
    Ok(format!(
        "seize/interrupt/regsets work; XSAVE area {} bytes; rseq {}",
        xs.len(),
        if rseq.rseq_abi_pointer != 0 {
            "registered"
        } else {
            "not used"
        }
    ))
}

fn pidfd_probe() -> Result<String, String> {
    let me = stasis_sys::pidfd::pidfd_open(nix::unistd::getpid()).map_err(e("pidfd_open"))?;
    use std::os::fd::AsRawFd;
    stasis_sys::pidfd::pidfd_getfd(me.as_raw_fd(), 0).map_err(e("pidfd_getfd"))?;
    Ok("pidfd_open and pidfd_getfd work".into())
}

fn set_tid_probe() -> Result<String, String> {
    let last: i32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1000);
    let max: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let mut want = last + 500;
    for _ in 0..20 {
        if want >= max {
            want = 300;
        }
        match clone::clone_with_pid(Pid::from_raw(want)) {
            Ok(Forked::Child) => clone::child_exit(0),
            Ok(Forked::Parent(p)) => {
                let _ = nix::sys::wait::waitpid(p, None);
                return if p.as_raw() == want {
                    Ok(format!("created pid {want} on request"))
                } else {
                    Err(format!("asked for pid {want}, got {p}"))
                };
            }
            Err(Errno::EEXIST) => want += 7,
            Err(err) => return Err(format!("clone3 with set_tid: {err} (needs root or CAP_CHECKPOINT_RESTORE in the PID namespace's owner)")),
        }
    }
    Err("no free pid found to try".into())
}

fn pagemap_probe() -> Result<String, String> {
    let f =
        std::fs::File::open("/proc/self/pagemap").map_err(|err| format!("open pagemap: {err}"))?;
    let probe = [1u8; 4096];
    let addr = probe.as_ptr() as u64 & !4095;
    let mut out = Vec::new();
    stasis_sys::pagemap::scan(
        &f,
        addr,
        addr + 4096,
        stasis_sys::pagemap::ScanQuery {
            inverted: 0,
            required: 0,
            anyof: stasis_sys::pagemap::PAGE_IS_PRESENT,
            returned: stasis_sys::pagemap::PAGE_IS_PRESENT,
        },
        &mut out,
    )
    .map_err(e("PAGEMAP_SCAN"))?;
    std::hint::black_box(&probe);
    Ok(format!(
        "PAGEMAP_SCAN works ({} region reported)",
        out.len()
    ))
}

fn uffd_probe() -> Result<String, String> {
    let f = stasis_sys::probe::userfaultfd_features().map_err(e("userfaultfd"))?;
    if f & stasis_sys::probe::UFFD_FEATURE_WP_ASYNC != 0 {
        Ok(format!("userfaultfd with WP_ASYNC (features {f:#x})"))
    } else {
        Err(format!(
            "userfaultfd works but lacks WP_ASYNC (features {f:#x})"
        ))
    }
}

fn freezer_probe() -> Result<String, String> {
    let own = crate::cgroup::own_path().ok_or("no cgroup v2 hierarchy is mounted")?;
    // What stasis run does: a cgroup of its own below ours, frozen through cgroup.freeze.
    let probe = own.join(format!("stasis-check-{}", std::process::id()));
    std::fs::create_dir(&probe).map_err(|err| {
        format!(
            "cannot create a cgroup under {} ({err}): stasis run goes without one (a user needs a delegated cgroup)",
            own.display()
        )
    })?;
    let freeze = probe.join("cgroup.freeze").exists();
    let _ = std::fs::remove_dir(&probe);
    if freeze {
        Ok(format!(
            "cgroup2: child cgroups of {} can be frozen",
            own.display()
        ))
    } else {
        Err("cgroup2 has no cgroup.freeze (kernel older than 5.2)".into())
    }
}

/// Run `f` in a forked child (namespace changes must not touch us) and report its result.
fn in_child(f: impl FnOnce() -> Result<String, String>) -> Result<String, String> {
    use std::io::{Read, Write};
    let (mut r, mut w) = std::io::pipe().map_err(|err| err.to_string())?;
    match clone::fork().map_err(|err| format!("fork: {err}"))? {
        Forked::Child => {
            drop(r);
            let msg = match f() {
                Ok(m) => format!("ok {m}"),
                Err(m) => format!("err {m}"),
            };
            let _ = w.write_all(msg.as_bytes());
            clone::child_exit(0)
        }
        Forked::Parent(child) => {
            drop(w);
            let mut msg = String::new();
            let _ = r.read_to_string(&mut msg);
            let _ = nix::sys::wait::waitpid(child, None);
            match msg.split_once(' ') {
                Some(("ok", m)) => Ok(m.to_string()),
                Some((_, m)) => Err(m.to_string()),
                None => Err("the probe process died".into()),
            }
        }
    }
}

fn userns_probe() -> Result<String, String> {
    in_child(|| {
        let uid = nix::unistd::geteuid();
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(|err| format!("unshare(CLONE_NEWUSER): {err} (user.max_user_namespaces, or a distribution's unprivileged_userns_clone)"))?;
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))
            .map_err(|err| format!("writing uid_map: {err}"))?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(|err| format!("unshare(CLONE_NEWPID) inside it: {err}"))?;
        Ok("a user namespace of our own owns a new PID namespace".into())
    })
}

fn timens_probe() -> Result<String, String> {
    in_child(|| {
        if !nix::unistd::geteuid().is_root() {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(|err| format!("unshare(CLONE_NEWUSER): {err}"))?;
        }
        nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
            libc::CLONE_NEWTIME,
        ))
        .map_err(|err| format!("unshare(CLONE_NEWTIME): {err} (CONFIG_TIME_NS)"))?;
        std::fs::write(
            "/proc/self/timens_offsets",
            "monotonic -5 0\nboottime 7 0\n",
        )
        .map_err(|err| format!("writing timens_offsets: {err}"))?;
        Ok("clock offsets can be set for a job's children".into())
    })
}

fn vdso_probe() -> Result<String, String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|err| err.to_string())?;
    let entries = stasis_procfs::smaps::parse_smaps(&smaps).map_err(|err| err.to_string())?;
    let v = entries
        .iter()
        .find(|s| s.map.path.as_deref() == Some("[vdso]"))
        .ok_or("no [vdso]")?;
    if v.vm_flags.has("sl") {
        return Err(
            "[vdso] is sealed (CONFIG_MSEAL_SYSTEM_MAPPINGS): restore cannot move it".into(),
        );
    }
    let names: Vec<String> = entries
        .iter()
        .filter_map(|s| {
            s.map
                .path
                .clone()
                .filter(|p| p.starts_with("[v"))
                .map(|p| format!("{p} {}K", s.map.len() / 1024))
        })
        .collect();
    Ok(names.join(", "))
}

/// Run every probe.
pub fn check() -> Vec<Probe> {
    vec![
        probe(
            "ptrace-seize",
            "dump and restore (freezing, registers, FPU/AVX, signals, rseq)",
            seize_probe(),
        ),
        probe("pidfd-getfd", "dumping file descriptors", pidfd_probe()),
        probe(
            "clone3-set-tid",
            "restore with the original PIDs",
            set_tid_probe(),
        ),
        probe(
            "pr-set-mm-map",
            "restoring brk, /proc/PID/cmdline, environ, auxv and exe",
            stasis_sys::probe::prctl_mm_map_size()
                .map(|n| format!("struct prctl_mm_map is {n} bytes"))
                .map_err(e("prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE)")),
        ),
        probe(
            "pagemap-scan",
            "saving only present pages (dump)",
            pagemap_probe(),
        ),
        probe(
            "vdso-movable",
            "moving [vvar]/[vdso] to their saved addresses (restore)",
            vdso_probe(),
        ),
        probe(
            "userfaultfd-wp-async",
            "incremental dumps (dirty-page tracking)",
            uffd_probe(),
        ),
        probe(
            "cgroup-freezer",
            "atomic freezing of whole jobs (stasis run)",
            freezer_probe(),
        ),
        probe(
            "user-namespaces",
            "stasis run without root (rootless)",
            userns_probe(),
        ),
        probe(
            "time-namespaces",
            "clocks that continue from the checkpoint (stasis run)",
            timens_probe(),
        ),
    ]
}
