//! Shared pieces of the end-to-end tests: building workloads, running them under a reaping
//! parent, dumping, restoring and collecting what they print. Tests that fork or ptrace run one
//! at a time (they share the PID space and the CPU pinning).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static LOCK: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn stasis() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stasis"))
}

pub fn workloads_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/workloads")
}

fn build_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("workloads");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compile tests/workloads/NAME.c (flags from its `// build:` line, plus `extra`) once.
pub fn build(name: &str, extra: &[&str], out_name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let src = workloads_dir().join(format!("{name}.c"));
    let out = build_dir().join(out_name);
    let text = std::fs::read_to_string(&src).unwrap();
    let mut flags: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("// build:"))
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    flags.extend(extra.iter().map(|s| s.to_string()));
    let fresh = out.exists()
        && std::fs::metadata(&out).unwrap().modified().unwrap()
            >= std::fs::metadata(&src).unwrap().modified().unwrap();
    if !fresh {
        let st = Command::new("gcc")
            .args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .arg(format!("-I{}", workloads_dir().display()))
            .args(&flags)
            .status()
            .expect("gcc runs");
        assert!(st.success(), "building {name} failed");
    }
    out
}

/// A scratch directory for one test case.
pub struct Case {
    pub dir: tempfile::TempDir,
}

impl Default for Case {
    fn default() -> Self {
        Self::new()
    }
}

impl Case {
    pub fn new() -> Case {
        Case {
            dir: tempfile::Builder::new()
                .prefix("stasis-e2e-")
                .tempdir()
                .unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn image(&self) -> PathBuf {
        self.path("image")
    }
}

/// Start `argv` with only fds 0-2 (closing whatever the test runner inherited), stdout and
/// stderr into files. The test process is its parent, so a killed workload gets reaped.
pub fn spawn(c: &Case, argv: &[&str], out: &str) -> Child {
    let stdout = std::fs::File::create(c.path(out)).unwrap();
    let stderr = std::fs::File::create(c.path(&format!("{out}.err"))).unwrap();
    Command::new("bash")
        .arg("-c")
        .arg(r#"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"; done; exec "$@""#)
        .arg("wl")
        .args(argv)
        .current_dir(c.dir.path())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn workload")
}

/// Wait until `path` holds a pid.
pub fn wait_pidfile(path: &Path, child: &mut Child) -> i32 {
    let t = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(p) = s.trim().parse() {
                return p;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("process exited ({st}) before writing {}", path.display());
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no pidfile {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait for a child with a deadline; kill it on timeout.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let st = child.wait().unwrap();
            panic!("timed out after {limit:?} ({st})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn signal(pid: i32, sig: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::try_from(sig).unwrap(),
    )
    .unwrap_or_else(|e| panic!("kill({pid}, {sig}): {e}"));
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run stasis with `args`, capturing output.
pub fn run_stasis(args: &[&str]) -> Output {
    let o = Command::new(stasis())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run stasis");
    Output {
        status: o.status,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Dump with --kill while the workload's parent (us) reaps it concurrently.
pub fn dump_kill(c: &Case, pid: i32, child: Child) -> Output {
    dump_kill_with(c, pid, child, &[])
}

/// [`dump_kill`] with extra dump arguments.
pub fn dump_kill_with(c: &Case, pid: i32, mut child: Child, extra: &[&str]) -> Output {
    let reaper = std::thread::spawn(move || child.wait());
    let img = c.image();
    let pid_s = pid.to_string();
    let mut args = vec![
        "dump",
        "--pid",
        &pid_s,
        "--dir",
        img.to_str().unwrap(),
        "--kill",
    ];
    args.extend_from_slice(extra);
    let o = run_stasis(&args);
    assert!(o.status.success(), "dump failed: {}{}", o.stdout, o.stderr);
    reaper.join().unwrap().unwrap();
    mark_outputs(c);
    o
}

/// The workload's output files as they are when it is dumped and killed: what it writes to
/// them after its restore (its stdout and stderr are restored as the files they were) is what
/// follows these marks.
pub fn mark_outputs(c: &Case) {
    for name in ["before.out", "before.out.err"] {
        if let Ok(m) = std::fs::metadata(c.path(name)) {
            std::fs::write(c.path(&format!("{name}.mark")), m.len().to_string()).unwrap();
        }
    }
}

/// What the workload wrote to its output file `name` since it was dumped (see
/// [`mark_outputs`]).
pub fn since_dump(c: &Case, name: &str) -> String {
    let all = std::fs::read(c.path(name)).unwrap_or_default();
    let mark: usize = std::fs::read_to_string(c.path(&format!("{name}.mark")))
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
        .min(all.len());
    String::from_utf8_lossy(&all[mark..]).into_owned()
}

/// What the workload wrote up to its dump.
pub fn until_dump(c: &Case, name: &str) -> String {
    let all = std::fs::read(c.path(name)).unwrap_or_default();
    let mark: usize = std::fs::read_to_string(c.path(&format!("{name}.mark")))
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(all.len())
        .min(all.len());
    String::from_utf8_lossy(&all[..mark]).into_owned()
}

/// Everything the restored workload printed: into its own output file (restored as the file
/// it was) and, for a workload whose stdout was outside the tree, the restore command's.
pub fn after_output(c: &Case) -> String {
    since_dump(c, "before.out") + &std::fs::read_to_string(c.path("after.out")).unwrap_or_default()
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Start a C workload binary with the case's pidfile (output into `before.out`) and wait for
/// its pid.
pub fn start_workload(c: &Case, bin: &Path) -> (Child, i32) {
    let pf = c.path("pidfile");
    let mut child = spawn(
        c,
        &[bin.to_str().unwrap(), pf.to_str().unwrap()],
        "before.out",
    );
    let pid = wait_pidfile(&pf, &mut child);
    (child, pid)
}

/// `stasis restore` of the case's image in the foreground of a child of ours (output into
/// `after.out` and `after.err`), once it has restored: the command and the restored pid.
pub fn restore_in_background(c: &Case) -> (Child, i32) {
    let rpid = c.path("restored.pid");
    let mut r = Command::new(stasis())
        .args([
            "restore",
            "--dir",
            c.image().to_str().unwrap(),
            "--pidfile",
            rpid.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(c.path("after.out")).unwrap())
        .stderr(std::fs::File::create(c.path("after.err")).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !rpid.exists() {
        if let Ok(Some(st)) = r.try_wait() {
            panic!(
                "restore exited {st} early: {}",
                std::fs::read_to_string(c.path("after.err")).unwrap_or_default()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "restore did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = std::fs::read_to_string(&rpid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (r, pid)
}

/// What a full dump/kill/restore cycle produced.
pub struct Cycle {
    pub before: String,
    pub after: String,
    pub after_err: String,
    pub status: ExitStatus,
    pub pid: i32,
}

/// Options for [`cycle`].
pub struct CycleOpts {
    /// Let the workload run this long after its pidfile appears, before the dump.
    pub settle: Duration,
    /// Signal sent to the restored process after this delay (None: let it finish alone).
    pub go: Option<(i32, Duration)>,
    pub timeout: Duration,
    /// Extra arguments for `stasis dump`.
    pub dump_args: &'static [&'static str],
}

impl Default for CycleOpts {
    fn default() -> Self {
        CycleOpts {
            dump_args: &[],
            settle: Duration::from_millis(300),
            go: Some((libc::SIGUSR2, Duration::from_millis(300))),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Start `argv` (with the pidfile at `{pidfile}`, else as first argument), dump --kill it,
/// restore it in the foreground, optionally signal it, and collect everything.
pub fn cycle(c: &Case, argv: &[&str], o: CycleOpts) -> Cycle {
    let pidfile = c.path("pidfile");
    let pf = pidfile.to_str().unwrap().to_string();
    // The pidfile goes where "{pidfile}" stands, or right after the program.
    let full: Vec<&str> = if argv.contains(&"{pidfile}") {
        argv.iter()
            .map(|a| if *a == "{pidfile}" { pf.as_str() } else { a })
            .collect()
    } else {
        let mut v = vec![argv[0], pf.as_str()];
        v.extend_from_slice(&argv[1..]);
        v
    };
    let mut child = spawn(c, &full, "before.out");
    let pid = wait_pidfile(&pidfile, &mut child);
    std::thread::sleep(o.settle);
    dump_kill_with(c, pid, child, o.dump_args);
    let (mut r, restored) = restore_in_background(c);
    assert_eq!(restored, pid, "restored with another pid");
    if let Some((sig, delay)) = o.go {
        std::thread::sleep(delay);
        signal(pid, sig);
    }
    let status = wait_timeout(&mut r, o.timeout);
    let restore_printed = std::fs::read_to_string(c.path("after.out")).unwrap();
    assert!(
        restore_printed.is_empty(),
        "the workload's stdout is a file: the restore command's stdout must stay empty, got:\n{restore_printed}"
    );
    Cycle {
        before: until_dump(c, "before.out"),
        after: since_dump(c, "before.out"),
        after_err: since_dump(c, "before.out.err")
            + &std::fs::read_to_string(c.path("after.err")).unwrap(),
        status,
        pid,
    }
}

impl Cycle {
    /// Exit 0 and no FAIL line in the restored output.
    pub fn assert_ok(&self) {
        assert!(
            self.status.success() && !self.after.contains("FAIL"),
            "restored process failed ({}):\n--- before\n{}\n--- after\n{}\n--- stderr\n{}",
            self.status,
            self.before,
            self.after,
            self.after_err
        );
    }
}

/// A C workload from tests/workloads: dump --kill, restore, SIGUSR2, expect exit 0, no FAIL
/// and at least one check.
pub fn workload(name: &str, args: &[&str]) -> Cycle {
    let bin = build(name, &[], name);
    let c = Case::new();
    let mut argv = vec![bin.to_str().unwrap()];
    argv.extend_from_slice(args);
    let r = cycle(&c, &argv, CycleOpts::default());
    r.assert_ok();
    assert!(r.after.contains("ok "), "no checks ran:\n{}", r.after);
    r
}

/// Every `ok CHECK` line is in the restored workload's output.
pub fn assert_checks<S: AsRef<str>>(r: &Cycle, checks: &[S]) {
    for check in checks.iter().map(AsRef::as_ref) {
        assert!(
            r.after.lines().any(|l| l == format!("ok {check}")),
            "{check}:\n--- before\n{}\n--- after\n{}\n--- stderr\n{}",
            r.before,
            r.after,
            r.after_err
        );
    }
}
