//! `stasis run` under a real Slurm: a private single-node cluster (tests/slurm/up.sh: slurmctld,
//! slurmd and munged on localhost, everything in a temporary directory) runs tests/slurm/job.c
//! through examples/slurm/stasis-job.sbatch. Mid-run the test sends the preemption warning the
//! way Slurm does before a time limit (SIGUSR1 to the batch shell only); `stasis run` takes a
//! final checkpoint and exits 75, the script requeues the job, and the rerun must resume from
//! the checkpoint: the same final hash as an uninterrupted run, every step's line equal to the
//! uninterrupted run's, and fewer than 2 x STEPS steps executed in all (the rerun does not
//! start again at step 1).
//!
//! Needs root, gcc and the Debian packages slurmctld, slurmd, slurm-client and munge. Without
//! them the test fails with a message saying so: it never skips. The cluster is always stopped
//! (tests/slurm/down.sh, from a Drop guard), also when an assertion fails.

mod common;
use common::stasis;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Steps of job.c; one takes about 100 ms.
const STEPS: usize = 80;
/// Steps the first run must have done before the preemption warning.
const STEPS_BEFORE_SIGNAL: usize = 10;
const PACKAGES: &str =
    "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run `argv` under coreutils' `timeout` (SIGKILL after `secs`), capturing its output.
fn run(argv: &[&str], env: &[(&str, &Path)], secs: u64) -> Output {
    let mut c = Command::new("timeout");
    c.args(["-s", "KILL", &secs.to_string()])
        .args(argv)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Fail (never skip) when the machine cannot run a Slurm cluster.
fn require_prerequisites() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "the Slurm test needs root (slurmd runs jobs as their user, stasis restores PIDs)"
    );
    let missing: Vec<&str> = [
        "munged",
        "mungekey",
        "slurmctld",
        "slurmd",
        "sbatch",
        "scontrol",
        "scancel",
        "squeue",
        "sinfo",
        "gcc",
        "timeout",
    ]
    .into_iter()
    .filter(|b| {
        !Command::new("sh")
            .args([
                "-c",
                &format!("PATH=\"$PATH:/usr/sbin:/sbin\"; command -v {b}"),
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
    .collect();
    assert!(
        missing.is_empty(),
        "Slurm is not installed here (missing: {}): {PACKAGES}",
        missing.join(", ")
    );
}

/// One test's cluster and files: `root/slurm` is up.sh's STATE_DIR, the job's files are beside
/// it. Dropping it stops the cluster and deletes `root`.
struct Cx {
    root: PathBuf,
    state: PathBuf,
    conf: PathBuf,
    out: PathBuf,
    worklog: PathBuf,
    job_id: Option<String>,
}

impl Cx {
    fn new() -> Cx {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let root =
            std::env::temp_dir().join(format!("stasis-slurm-{}-{nanos:08x}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        Cx {
            state: root.join("slurm"),
            conf: root.join("slurm/etc/slurm.conf"),
            out: root.join("job.out"),
            worklog: root.join("worklog"),
            job_id: None,
            root,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A Slurm client command against this cluster.
    fn slurm(&self, argv: &[&str]) -> Output {
        run(argv, &[("SLURM_CONF", &self.conf)], 30)
    }

    /// `scontrol show job -o` of our job as KEY=VALUE pairs (empty once Slurm forgot it).
    fn job_field(&self, key: &str) -> Option<String> {
        let id = self.job_id.as_deref()?;
        let o = self.slurm(&["scontrol", "show", "job", "-o", id]);
        let line = text(&o.stdout);
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .map(String::from)
    }

    /// Everything that explains a failure: the job's output and work log, what Slurm says about
    /// the job, the daemons' log tails.
    fn diagnostics(&self) -> String {
        let mut d = String::new();
        let tail = |p: &Path, n: usize| -> String {
            let t = std::fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>\n"));
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        let _ = writeln!(
            d,
            "\n==== job output {}\n{}",
            self.out.display(),
            tail(&self.out, 60)
        );
        let _ = writeln!(
            d,
            "==== work log (last 15 lines)\n{}",
            tail(&self.worklog, 15)
        );
        if let Some(id) = &self.job_id {
            let o = self.slurm(&["scontrol", "show", "job", id]);
            let _ = writeln!(
                d,
                "==== scontrol show job {id}\n{}{}",
                text(&o.stdout),
                text(&o.stderr)
            );
        }
        let o = self.slurm(&["sinfo", "-N", "-l"]);
        let _ = writeln!(d, "==== sinfo\n{}{}", text(&o.stdout), text(&o.stderr));
        for log in ["slurmctld.log", "slurmd.log", "munged.log"] {
            let p = self.state.join("log").join(log);
            let _ = writeln!(d, "==== {} (last 40 lines)\n{}", p.display(), tail(&p, 40));
        }
        d
    }

    fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.diagnostics())
    }

    /// Poll `cond` every 100 ms for at most `limit`; fail with `what` and the diagnostics.
    fn wait_until(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Cx) -> bool) {
        let t = Instant::now();
        while !cond(self) {
            if t.elapsed() > limit {
                self.fail(&format!("timed out after {limit:?} waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn read(&self, p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }
}

impl Drop for Cx {
    fn drop(&mut self) {
        let down = repo().join("tests/slurm/down.sh");
        let o = run(
            &[down.to_str().unwrap(), self.state.to_str().unwrap()],
            &[],
            60,
        );
        if !o.status.success() {
            eprintln!(
                "down.sh failed ({}): {}{}",
                o.status,
                text(&o.stdout),
                text(&o.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The work log's step numbers, in the order they were written, each line checked against the
/// uninterrupted run's line for that step.
fn steps(cx: &Cx, log: &str, reference: &[&str]) -> Vec<usize> {
    log.lines()
        .map(|l| {
            let k: usize = l
                .strip_prefix("step ")
                .and_then(|r| r.split('/').next())
                .and_then(|k| k.parse().ok())
                .filter(|k| (1..=STEPS).contains(k))
                .unwrap_or_else(|| cx.fail(&format!("unexpected work log line {l:?}")));
            if l != reference[k - 1] {
                cx.fail(&format!(
                    "step {k} computed something else than the uninterrupted run:\n  got      {l}\n  expected {}",
                    reference[k - 1]
                ));
            }
            k
        })
        .collect()
}

#[test]
fn preempted_job_is_requeued_and_resumes_from_its_checkpoint() {
    require_prerequisites();
    let mut cx = Cx::new();

    // The cluster.
    let t = Instant::now();
    let up = repo().join("tests/slurm/up.sh");
    let o = run(
        &[up.to_str().unwrap(), cx.state.to_str().unwrap()],
        &[],
        120,
    );
    if !o.status.success() {
        cx.fail(&format!(
            "tests/slurm/up.sh failed ({}):\n{}{}",
            o.status,
            text(&o.stdout),
            text(&o.stderr)
        ));
    }
    assert!(
        text(&o.stdout).contains(&format!("SLURM_CONF={}", cx.conf.display())),
        "up.sh printed no SLURM_CONF: {}",
        text(&o.stdout)
    );
    eprintln!("cluster up in {:?}", t.elapsed());

    // The job, and what it computes when nothing interrupts it.
    let job = cx.path("job");
    let o = run(
        &[
            "gcc",
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-o",
            job.to_str().unwrap(),
            repo().join("tests/slurm/job.c").to_str().unwrap(),
        ],
        &[],
        120,
    );
    assert!(
        o.status.success(),
        "building job.c failed: {}",
        text(&o.stderr)
    );
    let ref_log = cx.path("reference.log");
    let steps_s = STEPS.to_string();
    let o = run(
        &[job.to_str().unwrap(), ref_log.to_str().unwrap(), &steps_s],
        &[],
        60,
    );
    assert!(
        o.status.success(),
        "the uninterrupted run failed: {}",
        text(&o.stderr)
    );
    let expected = text(&o.stdout).trim().to_string();
    assert!(
        expected.starts_with("final hash "),
        "uninterrupted run printed {expected:?}"
    );
    let reference_text = cx.read(&ref_log);
    let reference: Vec<&str> = reference_text.lines().collect();
    assert_eq!(reference.len(), STEPS);

    // Submit it through the example batch script, with this build's stasis.
    let sbatch = repo().join("examples/slurm/stasis-job.sbatch");
    let ckpt = cx.path("ckpt");
    let o = run(
        &[
            "sbatch",
            "--parsable",
            "--chdir",
            cx.root.to_str().unwrap(),
            "--output",
            cx.out.to_str().unwrap(),
            sbatch.to_str().unwrap(),
            job.to_str().unwrap(),
            cx.worklog.to_str().unwrap(),
            &steps_s,
        ],
        &[
            ("SLURM_CONF", &cx.conf),
            ("STASIS", &stasis()),
            ("CKPT_DIR", &ckpt),
        ],
        30,
    );
    if !o.status.success() {
        cx.fail(&format!(
            "sbatch failed: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        ));
    }
    let id = text(&o.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    assert!(
        id.parse::<u32>().is_ok(),
        "sbatch printed no job id: {id:?}"
    );
    cx.job_id = Some(id.clone());
    let t = Instant::now();

    // Let it work a while, then warn it of the preemption: what `--signal=B:USR1@120` does
    // before a time limit, on demand. --batch: to the batch shell only, as Slurm does it.
    cx.wait_until(
        Duration::from_secs(60),
        &format!("{STEPS_BEFORE_SIGNAL} steps of the first run"),
        |cx| {
            let n = cx.read(&cx.worklog).lines().count();
            if n >= STEPS {
                cx.fail("the job finished before it could be preempted");
            }
            n >= STEPS_BEFORE_SIGNAL
        },
    );
    let before = cx.read(&cx.worklog).lines().count();
    let o = cx.slurm(&["scancel", "--batch", "--signal=USR1", &id]);
    if !o.status.success() {
        cx.fail(&format!(
            "scancel --batch --signal=USR1 failed: {}",
            text(&o.stderr)
        ));
    }
    eprintln!(
        "preemption warning after {before} steps, {:?} after submission",
        t.elapsed()
    );

    // The first run checkpoints and requeues the job; Slurm starts it again after the
    // credential lifetime (cred_expire=5 in up.sh); the rerun finishes.
    cx.wait_until(
        Duration::from_secs(60),
        "the first run to requeue the job",
        |cx| {
            cx.read(&cx.out).contains("requeueing job")
                || cx.read(&cx.out).contains("stasis-job: finished")
        },
    );
    cx.wait_until(
        Duration::from_secs(120),
        "the requeued run to finish",
        |cx| {
            let done = cx.read(&cx.out).contains("stasis-job: finished");
            let state = cx.job_field("JobState");
            done && matches!(state.as_deref(), Some("COMPLETED" | "FAILED") | None)
        },
    );
    eprintln!("job done {:?} after submission", t.elapsed());

    let out = cx.read(&cx.out);
    let restarts: Vec<u32> = out
        .lines()
        .filter_map(|l| l.strip_prefix("stasis-job: job "))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    if restarts.iter().max().copied().unwrap_or(0) < 1 {
        cx.fail(&format!(
            "the job never ran with SLURM_RESTART_COUNT >= 1 (runs: {restarts:?})"
        ));
    }
    if !out.contains("stasis-job: checkpointed in") {
        cx.fail("the first run did not end with a checkpoint (stasis run exit status 75)");
    }
    if !out.contains("stasis-job: finished with status 0") {
        cx.fail("the requeued run did not finish with status 0");
    }
    let finals: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("final hash "))
        .collect();
    if finals != [expected.as_str()] {
        cx.fail(&format!(
            "final output {finals:?}, the uninterrupted run printed {expected:?}"
        ));
    }
    let rerun_at = out.find("restart 1 ").unwrap_or(usize::MAX);
    if !matches!(out.find(&expected), Some(f) if f > rerun_at) {
        cx.fail("the final hash came before the requeued run started: the job was not preempted");
    }
    if let Some(n) = cx.job_field("Restarts") {
        if n.parse::<u32>().unwrap_or(0) < 1 {
            cx.fail(&format!("Slurm counts {n} restarts"));
        }
    }

    let log = cx.read(&cx.worklog);
    let done = steps(&cx, &log, &reference);
    let ones = done.iter().filter(|&&k| k == 1).count();
    if ones != 1 {
        cx.fail(&format!(
            "step 1 ran {ones} times: the rerun started over instead of resuming"
        ));
    }
    if done.len() >= 2 * STEPS {
        cx.fail(&format!(
            "{} steps executed for {STEPS}: nothing was saved",
            done.len()
        ));
    }
    if done.last() != Some(&STEPS) {
        cx.fail(&format!("the work log ends with step {:?}", done.last()));
    }
    for k in 1..=STEPS {
        if !done.contains(&k) {
            cx.fail(&format!("step {k} never ran"));
        }
    }
    eprintln!(
        "{} step lines for {STEPS} steps ({} repeated); {before} before the preemption warning",
        done.len(),
        done.len() - STEPS
    );
}
