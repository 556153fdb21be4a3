//! `stasis run`: a supervised job survives being killed with its supervisor (node loss),
//! preemption, crashes, a killed dump, a full disk and a corrupt checkpoint, and resumes
//! rather than restarts: the final result equals an uninterrupted run's and less work was
//! done than two full runs. Also rootless, `stasis status` and `stasis checkpoint`.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const STEPS: u32 = 40;
const STEP_MS: u32 = 60;

fn job_bin() -> PathBuf {
    build("run_job", &[], "run_job")
}

/// The job's argv: STEPS steps of STEP_MS over `mib` MiB, counting work into `worklog`.
fn job(c: &Case, mib: u32, worklog: &str) -> Vec<String> {
    job_n(c, STEPS, mib, worklog)
}

fn job_n(c: &Case, steps: u32, mib: u32, worklog: &str) -> Vec<String> {
    vec![
        job_bin().display().to_string(),
        steps.to_string(),
        mib.to_string(),
        STEP_MS.to_string(),
        c.path(worklog).display().to_string(),
    ]
}

/// The last line of an uninterrupted run (the final hashes).
fn expected(c: &Case, mib: u32) -> String {
    expected_n(c, STEPS, mib)
}

fn expected_n(c: &Case, steps: u32, mib: u32) -> String {
    let o = Command::new(job_bin())
        .args(&job_n(c, steps, mib, "expected.log")[1..])
        .output()
        .unwrap();
    assert!(o.status.success());
    final_line(&String::from_utf8_lossy(&o.stdout))
        .expect("an uninterrupted run ends with its hash")
}

fn final_line(out: &str) -> Option<String> {
    out.lines()
        .find(|l| l.starts_with("final hash"))
        .map(String::from)
}

/// `stasis run --images IMAGES OPTS -- JOB` as a child of ours, output into OUT and OUT.err.
fn start(c: &Case, images: &Path, opts: &[&str], job: &[String], out: &str) -> Child {
    let s = stasis();
    let mut argv: Vec<&str> = vec![
        s.to_str().unwrap(),
        "run",
        "--images",
        images.to_str().unwrap(),
    ];
    argv.extend_from_slice(opts);
    argv.push("--");
    argv.extend(job.iter().map(|s| s.as_str()));
    spawn(c, &argv, out)
}

fn read(c: &Case, name: &str) -> String {
    std::fs::read_to_string(c.path(name)).unwrap_or_default()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Durable checkpoints recorded in the directory.
fn checkpoints(images: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(images)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ckpt-") && n.ends_with(".json"))
                .map(|n| n.trim_end_matches(".json").to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn steps_done(c: &Case, out: &str) -> usize {
    read(c, out)
        .lines()
        .filter(|l| l.starts_with("step "))
        .count()
}

/// Wait until the job has printed `n` steps into `out`.
fn wait_steps(c: &Case, out: &str, n: usize, limit: Duration) {
    wait_until("the job to run", limit, || steps_done(c, out) >= n);
}

/// Whether a dump's staging directory is left in `images`.
fn staging_left(images: &Path) -> bool {
    std::fs::read_dir(images)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".tmp-"))
}

fn first_step(c: &Case, out: &str) -> u32 {
    read(c, out)
        .lines()
        .find_map(|l| l.strip_prefix("step "))
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Children of `pid` (host PIDs).
fn children(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The supervisor's init (the front's child) and the processes under it, by name.
fn init_of(front: &Child) -> i32 {
    let t = Instant::now();
    loop {
        if let Some(&p) = children(front.id()).first() {
            return p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no init under stasis run"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn under_init(front: &Child, name: &str) -> Option<i32> {
    children(init_of(front) as u32)
        .into_iter()
        .find(|&p| comm(p) == name)
}

/// What a node loss does: SIGKILL for the supervisor, its init and so the whole job.
fn kill_everything(front: &mut Child) {
    let init = init_of(front);
    signal(front.id() as i32, libc::SIGKILL);
    signal(init, libc::SIGKILL);
    front.wait().unwrap();
    wait_until(
        "the job's namespace to die",
        Duration::from_secs(10),
        || !alive(init),
    );
}

/// The job's cgroup v2 path, which must be the `job` cgroup stasis made for it (and where
/// stasis reported it).
fn assert_in_job_cgroup(front: &Child, images: &Path) {
    let pid = under_init(front, "run_job").expect("the job runs under the init");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = cg
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string();
    assert!(
        v2.contains("/stasis-run-") && v2.ends_with("/job"),
        "job in cgroup {v2}"
    );
    let st = status_json(images);
    let reported = st["status"]["cgroup"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reported.ends_with(&v2),
        "status says {reported}, the job is in {v2}"
    );
}

fn status_json(images: &Path) -> serde_json::Value {
    let o = run_stasis(&["status", images.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "status failed: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

fn finish(front: &mut Child, limit: Duration) -> i32 {
    wait_timeout(front, limit).code().unwrap_or(-1)
}

#[test]
fn job_resumes_after_supervisor_and_job_are_killed() {
    let _g = serial();
    let c = Case::new();
    let want = expected(&c, 8);
    let images = c.path("images");
    let job = job(&c, 8, "work.log");
    let mut front = start(&c, &images, &["--every", "300ms"], &job, "run1.out");
    wait_until("two checkpoints", Duration::from_secs(30), || {
        checkpoints(&images).len() >= 2
    });
    let st = status_json(&images);
    assert_eq!(st["supervised"], true, "{st}");
    assert_eq!(st["status"]["state"], "running", "{st}");
    assert_in_job_cgroup(&front, &images);
    kill_everything(&mut front);
    let before = steps_done(&c, "run1.out");
    assert!(
        before > 0 && before < STEPS as usize,
        "run 1 did {before} steps"
    );
    assert!(status_json(&images)["supervised"] == false);
    // Node loss: the clock runs on while nothing does.
    std::thread::sleep(Duration::from_millis(1500));

    let mut front = start(&c, &images, &["--every", "300ms"], &job, "run2.out");
    wait_until("the resumed job", Duration::from_secs(30), || {
        steps_done(&c, "run2.out") >= 1
    });
    assert_in_job_cgroup(&front, &images);
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        0,
        "{}",
        read(&c, "run2.out.err")
    );
    let out2 = read(&c, "run2.out");
    assert_eq!(final_line(&out2).as_deref(), Some(want.as_str()), "{out2}");
    assert!(read(&c, "run2.out.err").contains("resumed from ckpt-"));
    let first = first_step(&c, "run2.out");
    assert!(first > 1, "the rerun started over at step {first}");
    // Less work than two full runs: only the steps after the checkpoint were redone.
    let work = read(&c, "work.log").lines().count();
    assert!(work < 2 * STEPS as usize, "{work} steps executed in all");
    assert!(work >= STEPS as usize);
    // The job's CLOCK_MONOTONIC did not jump over the 1.5 s the job was down (its time
    // namespace continues from the checkpoint).
    let gap: f64 = out2
        .lines()
        .find_map(|l| l.strip_prefix("max gap "))
        .and_then(|s| s.trim_end_matches(" ms").parse().ok())
        .unwrap();
    assert!(gap < 1000.0, "the job's monotonic clock jumped {gap} ms");
    let st = status_json(&images);
    assert_eq!(st["status"]["state"], "exited", "{st}");
    assert!(
        st["status"]["time_ns"]
            .as_str()
            .unwrap()
            .contains("offsets"),
        "{st}"
    );
}

/// A multi-threaded job resumes with all its threads: in the rerun's fresh PID namespace the
/// job is pid 2 and its threads 3, 4...; nothing of stasis may take those numbers first (the
/// restorer's own page threads did).
#[test]
fn threaded_job_resumes_with_every_thread() {
    let _g = serial();
    let c = Case::new();
    let want = expected(&c, 4);
    let images = c.path("images");
    let mut job = job(&c, 4, "work.log");
    job.push("4".into());
    let mut front = start(&c, &images, &["--every", "300ms"], &job, "run1.out");
    wait_until("a checkpoint", Duration::from_secs(30), || {
        !checkpoints(&images).is_empty()
    });
    kill_everything(&mut front);
    let mut front = start(&c, &images, &[], &job, "run2.out");
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        0,
        "{}",
        read(&c, "run2.out.err")
    );
    let out2 = read(&c, "run2.out");
    assert!(
        read(&c, "run2.out.err").contains("resumed from ckpt-"),
        "{}",
        read(&c, "run2.out.err")
    );
    assert!(
        first_step(&c, "run2.out") > 1,
        "the rerun started over:\n{out2}"
    );
    assert_eq!(final_line(&out2).as_deref(), Some(want.as_str()), "{out2}");
    assert!(out2.contains("threads 4 ticking"), "{out2}");
}

#[test]
fn preemption_signal_takes_a_final_checkpoint_and_exits_75() {
    let _g = serial();
    let c = Case::new();
    let want = expected(&c, 8);
    let images = c.path("images");
    let job = job(&c, 8, "work.log");
    // No periodic checkpoints: all the progress is in the final one.
    let mut front = start(&c, &images, &[], &job, "run1.out");
    wait_until("some steps", Duration::from_secs(30), || {
        steps_done(&c, "run1.out") >= 10
    });
    let t = Instant::now();
    signal(front.id() as i32, libc::SIGUSR1);
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        75,
        "{}",
        read(&c, "run1.out.err")
    );
    eprintln!(
        "SIGUSR1 to durable final checkpoint and exit: {:?}",
        t.elapsed()
    );
    let done = steps_done(&c, "run1.out");
    assert!(read(&c, "run1.out.err").contains("checkpointed to ckpt-"));
    assert_eq!(checkpoints(&images).len(), 1);
    let st = status_json(&images);
    assert_eq!(st["status"]["state"], "preempted", "{st}");
    assert_eq!(
        st["checkpoints"][0]["record"]["reason"], "preemption",
        "{st}"
    );

    let mut front = start(&c, &images, &[], &job, "run2.out");
    assert_eq!(finish(&mut front, Duration::from_secs(60)), 0);
    assert_eq!(
        final_line(&read(&c, "run2.out")).as_deref(),
        Some(want.as_str())
    );
    // The final checkpoint froze the job for good: not one step was redone.
    assert_eq!(first_step(&c, "run2.out") as usize, done + 1);
    assert_eq!(read(&c, "work.log").lines().count(), STEPS as usize);
}

#[test]
fn crashed_job_is_restored_from_its_newest_checkpoint() {
    let _g = serial();
    let c = Case::new();
    let want = expected(&c, 8);
    let images = c.path("images");
    let job = job(&c, 8, "work.log");
    let mut front = start(
        &c,
        &images,
        &["--every", "300ms", "--max-restarts", "1"],
        &job,
        "run.out",
    );
    wait_until("a checkpoint", Duration::from_secs(30), || {
        !checkpoints(&images).is_empty()
    });
    let victim = under_init(&front, "run_job").expect("the job runs under the init");
    signal(victim, libc::SIGKILL);
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        0,
        "{}",
        read(&c, "run.out.err")
    );
    let err = read(&c, "run.out.err");
    assert!(
        err.contains("killed by signal 9") && err.contains("resumed from"),
        "{err}"
    );
    assert_eq!(
        final_line(&read(&c, "run.out")).as_deref(),
        Some(want.as_str())
    );
    assert!(read(&c, "work.log").lines().count() < 2 * STEPS as usize);
    assert_eq!(status_json(&images)["status"]["restarts"], 1);

    // --restart never: the crash is the job's end, with its status.
    let images2 = c.path("images2");
    let mut front = start(
        &c,
        &images2,
        &["--every", "300ms", "--restart", "never"],
        &job,
        "never.out",
    );
    wait_until("a checkpoint", Duration::from_secs(30), || {
        !checkpoints(&images2).is_empty()
    });
    signal(under_init(&front, "run_job").unwrap(), libc::SIGKILL);
    assert_eq!(finish(&mut front, Duration::from_secs(30)), 128 + 9);
}

#[test]
fn checkpoint_on_request_status_and_retention() {
    let _g = serial();
    let c = Case::new();
    // A long path: the control socket's address must still fit.
    let images = c.path(&format!("images-{}", "x".repeat(120)));
    let want = expected(&c, 8);
    let job = job(&c, 8, "work.log");
    let mut front = start(&c, &images, &["--keep", "2"], &job, "run.out");
    wait_steps(&c, "run.out", 2, Duration::from_secs(30));
    let mut taken = Vec::new();
    for _ in 0..4 {
        let o = run_stasis(&["checkpoint", images.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}{}", o.stdout, o.stderr);
        let r: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
        assert_eq!(r["ok"], true);
        assert_eq!(r["checkpoint"]["reason"], "request");
        assert!(r["checkpoint"]["bytes"].as_u64().unwrap() > 8 << 20);
        taken.push(r["checkpoint"]["name"].as_str().unwrap().to_string());
    }
    // Only the newest two are kept, and `latest` names the newest.
    assert_eq!(checkpoints(&images), taken[2..].to_vec());
    assert_eq!(
        std::fs::read_link(images.join("latest")).unwrap(),
        Path::new(&taken[3])
    );
    let o = run_stasis(&["status", images.to_str().unwrap()]);
    assert!(
        o.stdout.contains("supervisor: running") && o.stdout.contains(&taken[3]),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("no periodic checkpoints"), "{}", o.stdout);
    assert_eq!(finish(&mut front, Duration::from_secs(60)), 0);
    assert_eq!(
        final_line(&read(&c, "run.out")).as_deref(),
        Some(want.as_str())
    );
    // Nobody listens any more.
    let o = run_stasis(&["checkpoint", images.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        o.stderr.contains("no stasis run is supervising"),
        "{}",
        o.stderr
    );
    // The job finished: running the same command again runs it again, from the start, not
    // from one of its checkpoints.
    let mut front = start(&c, &images, &[], &job, "again.out");
    assert_eq!(finish(&mut front, Duration::from_secs(60)), 0);
    let err = read(&c, "again.out.err");
    assert!(
        err.contains("previous run finished") && !err.contains("resumed"),
        "{err}"
    );
    assert_eq!(first_step(&c, "again.out"), 1);
    assert_eq!(
        final_line(&read(&c, "again.out")).as_deref(),
        Some(want.as_str())
    );
}

#[test]
fn exit_status_bad_command_and_another_job() {
    let _g = serial();
    let c = Case::new();
    let images = c.path("images");
    let o = run_stasis(&[
        "run",
        "--images",
        images.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo hi; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(o.stdout, "hi\n");
    // The same directory with another command is refused, naming both.
    let o = run_stasis(&["run", "--images", images.to_str().unwrap(), "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains("holds checkpoints of another job") && o.stderr.contains("--fresh"),
        "{}",
        o.stderr
    );
    let o = run_stasis(&[
        "run",
        "--images",
        images.to_str().unwrap(),
        "--fresh",
        "--",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", o.stderr);
    let o = run_stasis(&[
        "run",
        "--images",
        c.path("other").to_str().unwrap(),
        "--",
        "/nonexistent/job",
    ]);
    assert_eq!(o.status.code(), Some(70));
    assert!(
        o.stderr.contains("/nonexistent/job") && o.stderr.contains("ENOENT"),
        "{}",
        o.stderr
    );
    // A directory a running supervisor holds is refused, naming it.
    let busy = c.path("busy");
    let mut front = start(&c, &busy, &[], &job(&c, 8, "work.log"), "busy.out");
    wait_steps(&c, "busy.out", 1, Duration::from_secs(30));
    let o = run_stasis(&["run", "--images", busy.to_str().unwrap(), "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains("in use by another stasis run")
            && o.stderr.contains(&format!("pid {}", front.id())),
        "{}",
        o.stderr
    );
    assert_eq!(finish(&mut front, Duration::from_secs(60)), 0);
}

#[test]
fn corrupt_newest_checkpoint_falls_back_to_the_previous_one() {
    let _g = serial();
    let c = Case::new();
    let want = expected(&c, 8);
    let images = c.path("images");
    let job = job(&c, 8, "work.log");
    let mut front = start(
        &c,
        &images,
        &["--every", "300ms", "--keep", "3"],
        &job,
        "run1.out",
    );
    wait_until("two checkpoints", Duration::from_secs(30), || {
        checkpoints(&images).len() >= 2
    });
    kill_everything(&mut front);
    let all = checkpoints(&images);
    let newest = images.join(all.last().unwrap());
    let older = &all[all.len() - 2];
    // Flip bytes in the middle of the newest checkpoint's pages.
    let pages = std::fs::read_dir(&newest)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pages-")
        })
        .unwrap();
    let mut bytes = std::fs::read(&pages).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&pages, bytes).unwrap();

    let mut front = start(
        &c,
        &images,
        &["--every", "300ms", "--keep", "3"],
        &job,
        "run2.out",
    );
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        0,
        "{}",
        read(&c, "run2.out.err")
    );
    let err = read(&c, "run2.out.err");
    assert!(
        err.contains("skipping checkpoint") && err.contains("checksum"),
        "{err}"
    );
    assert!(err.contains(&format!("resumed from {older}")), "{err}");
    assert_eq!(
        final_line(&read(&c, "run2.out")).as_deref(),
        Some(want.as_str())
    );
}

#[test]
fn stasis_killed_during_a_periodic_dump_leaves_the_job_running_and_the_last_checkpoint_valid() {
    let _g = serial();
    let c = Case::new();
    // Enough memory that the dump spends most of its time copying pages.
    let mib = 384;
    let want = expected_n(&c, 150, mib);
    let images = c.path("images");
    let job = job_n(&c, 150, mib, "work.log");
    let opts = ["--every", "2s", "--restart", "never", "--keep", "3"];
    let mut front = start(&c, &images, &opts, &job, "run1.out");
    wait_until(
        "the first periodic checkpoint",
        Duration::from_secs(60),
        || !checkpoints(&images).is_empty(),
    );
    let first = checkpoints(&images);
    // The second periodic dump: kill its worker and the `stasis run` command in the middle
    // of it (the supervisor's init survives the latter and keeps the job).
    let mut worker = None;
    wait_until("the next periodic dump", Duration::from_secs(10), || {
        worker = under_init(&front, "stasis-dump");
        worker.is_some()
    });
    let init = init_of(&front);
    std::thread::sleep(Duration::from_millis(150));
    signal(worker.unwrap(), libc::SIGKILL);
    signal(front.id() as i32, libc::SIGKILL);
    front.wait().unwrap();
    // The job runs on, the previous checkpoint is still the newest, nothing half-written.
    let job_pid = children(init as u32)
        .into_iter()
        .find(|&p| comm(p) == "run_job")
        .expect("the job still runs");
    let steps = steps_done(&c, "run1.out");
    wait_until("the job to keep stepping", Duration::from_secs(10), || {
        steps_done(&c, "run1.out") > steps
    });
    assert!(alive(job_pid));
    assert_eq!(checkpoints(&images), first);
    wait_until(
        "the partial checkpoint to be removed",
        Duration::from_secs(5),
        || !staging_left(&images),
    );
    let st = status_json(&images);
    assert!(
        st["status"]["last_error"]
            .as_str()
            .unwrap()
            .contains("without a result"),
        "{st}"
    );
    assert_eq!(
        std::fs::read_link(images.join("latest")).unwrap(),
        Path::new(&first[0])
    );
    // Node loss now: the next start resumes from the last valid checkpoint.
    signal(init, libc::SIGKILL);
    wait_until(
        "the job's namespace to die",
        Duration::from_secs(10),
        || !alive(init),
    );
    let mut front = start(&c, &images, &[], &job, "run2.out");
    assert_eq!(
        finish(&mut front, Duration::from_secs(120)),
        0,
        "{}",
        read(&c, "run2.out.err")
    );
    let resumed = read(&c, "run2.out.err");
    assert!(
        resumed.contains(&format!("resumed from {}", first[0])),
        "{resumed}"
    );
    assert_eq!(
        final_line(&read(&c, "run2.out")).as_deref(),
        Some(want.as_str())
    );
}

/// A small filesystem for the images, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_the_dump_cleanly() {
    let _g = serial();
    let c = Case::new();
    let want = expected(&c, 24);
    let images = c.path("images");
    std::fs::create_dir(&images).unwrap();
    // Room for one checkpoint of the job (24 MiB of state), not two.
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=40m", "tmpfs"])
        .arg(&images)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs needs root");
    let _mnt = Tmpfs(images.clone());
    let job = job(&c, 24, "work.log");
    let mut front = start(
        &c,
        &images,
        &["--keep", "2", "--restart", "never"],
        &job,
        "run1.out",
    );
    wait_steps(&c, "run1.out", 2, Duration::from_secs(30));
    let o = run_stasis(&["checkpoint", images.to_str().unwrap()]);
    assert!(o.status.success(), "{}", o.stderr);
    let first = checkpoints(&images);
    let o = run_stasis(&["checkpoint", images.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(o.stderr.contains("No space left"), "{}", o.stderr);
    // The job runs on; the first checkpoint is intact; no partial image is left.
    let steps = steps_done(&c, "run1.out");
    wait_until("the job to keep stepping", Duration::from_secs(10), || {
        steps_done(&c, "run1.out") > steps + 2
    });
    assert_eq!(checkpoints(&images), first);
    let o = run_stasis(&["show", images.join(&first[0]).to_str().unwrap()]);
    assert!(o.status.success());
    assert!(!staging_left(&images));
    kill_everything(&mut front);
    let mut front = start(&c, &images, &[], &job, "run2.out");
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        0,
        "{}",
        read(&c, "run2.out.err")
    );
    assert!(read(&c, "run2.out.err").contains(&format!("resumed from {}", first[0])));
    assert_eq!(
        final_line(&read(&c, "run2.out")).as_deref(),
        Some(want.as_str())
    );
}

#[test]
fn rootless_user_runs_checkpoints_and_resumes_their_job() {
    let _g = serial();
    let c = Case::new();
    let want = expected(&c, 8);
    // Everything the unprivileged user touches is theirs.
    let bin = c.path("run_job");
    std::fs::copy(job_bin(), &bin).unwrap();
    let images = c.path("images");
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(c.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let mut job = job(&c, 8, "work.log");
    job[0] = bin.display().to_string();
    let as_nobody = |out: &str| -> Child {
        let s = stasis();
        let mut argv: Vec<&str> = vec![
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            s.to_str().unwrap(),
            "run",
            "--images",
            images.to_str().unwrap(),
            "--every",
            "300ms",
            "--",
        ];
        argv.extend(job.iter().map(|s| s.as_str()));
        spawn(&c, &argv, out)
    };
    let mut front = as_nobody("run1.out");
    wait_until("two checkpoints", Duration::from_secs(30), || {
        checkpoints(&images).len() >= 2
    });
    let st = status_json(&images);
    assert_eq!(st["status"]["rootless"], true, "{st}");
    // The job really runs as the user, not as root.
    let pid = under_init(&front, "run_job").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534\t65534")),
        "{status}"
    );
    kill_everything(&mut front);
    let mut front = as_nobody("run2.out");
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        0,
        "{}",
        read(&c, "run2.out.err")
    );
    assert!(read(&c, "run2.out.err").contains("resumed from ckpt-"));
    assert!(first_step(&c, "run2.out") > 1);
    assert_eq!(
        final_line(&read(&c, "run2.out")).as_deref(),
        Some(want.as_str())
    );
}

#[test]
fn automatic_interval_follows_the_measured_checkpoint_cost() {
    let _g = serial();
    let c = Case::new();
    let images = c.path("images");
    let job = job_n(&c, 100, 8, "work.log");
    let mut front = start(
        &c,
        &images,
        &["--interval", "auto", "--mtbf", "4s"],
        &job,
        "run.out",
    );
    wait_steps(&c, "run.out", 1, Duration::from_secs(30));
    // Before any checkpoint: Daly's interval for the assumed 1 s cost and a 4 s MTBF.
    let st = status_json(&images);
    let reason = st["status"]["interval_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("Daly") && reason.contains("assumed"),
        "{st}"
    );
    let first = st["status"]["interval_secs"].as_f64().unwrap();
    let r: f64 = 1.0 / 8.0;
    let daly = 8f64.sqrt() * (1.0 + r.sqrt() / 3.0 + r / 9.0) - 1.0;
    assert!(
        (first - daly).abs() < 1e-6,
        "interval {first}, Daly says {daly}"
    );
    wait_until("two checkpoints", Duration::from_secs(30), || {
        checkpoints(&images).len() >= 2
    });
    // Measured: a checkpoint of this job costs far less than 1 s, so the interval shrinks
    // (to the 1 s floor).
    let st = status_json(&images);
    assert!(
        st["status"]["interval_reason"]
            .as_str()
            .unwrap()
            .contains("smoothed"),
        "{st}"
    );
    let now = st["status"]["interval_secs"].as_f64().unwrap();
    assert!(
        now < first,
        "interval {now} after measuring, {first} before"
    );
    signal(front.id() as i32, libc::SIGUSR1);
    assert_eq!(finish(&mut front, Duration::from_secs(60)), 75);
}

#[test]
fn interrupt_is_passed_to_the_job_and_is_no_crash() {
    let _g = serial();
    let c = Case::new();
    let images = c.path("images");
    let job = job(&c, 8, "work.log");
    let mut front = start(&c, &images, &["--every", "300ms"], &job, "run.out");
    wait_until("a checkpoint", Duration::from_secs(30), || {
        !checkpoints(&images).is_empty()
    });
    signal(front.id() as i32, libc::SIGINT);
    assert_eq!(
        finish(&mut front, Duration::from_secs(30)),
        128 + libc::SIGINT
    );
    let err = read(&c, "run.out.err");
    assert!(!err.contains("restoring"), "{err}");
    assert_eq!(status_json(&images)["status"]["state"], "exited");
}

#[test]
fn final_checkpoint_cut_short_by_the_grace_period() {
    let _g = serial();
    let c = Case::new();
    let images = c.path("images");
    let job = job(&c, 64, "work.log");
    let mut front = start(&c, &images, &["--grace", "1ms"], &job, "run.out");
    wait_steps(&c, "run.out", 2, Duration::from_secs(30));
    let job_pid = under_init(&front, "run_job").unwrap();
    signal(front.id() as i32, libc::SIGTERM);
    assert_eq!(finish(&mut front, Duration::from_secs(30)), 75);
    let err = read(&c, "run.out.err");
    assert!(
        err.contains("did not finish within the grace period"),
        "{err}"
    );
    assert!(err.contains("before any checkpoint"), "{err}");
    // The job is stopped and no partial checkpoint is left.
    assert!(!alive(job_pid));
    assert!(checkpoints(&images).is_empty());
    assert!(!std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("ckpt-")));
}

#[test]
fn process_that_left_the_job_tree_fails_the_checkpoint_by_name() {
    let _g = serial();
    let c = Case::new();
    let images = c.path("images");
    // A subshell starts a `sleep` and exits: the sleep is orphaned to the namespace's init.
    let inner = job(&c, 8, "work.log").join(" ");
    let job = vec![
        "sh".to_string(),
        "-c".to_string(),
        format!("(sleep 60 &); exec {inner}"),
    ];
    let mut front = start(&c, &images, &["--restart", "never"], &job, "run.out");
    wait_steps(&c, "run.out", 2, Duration::from_secs(30));
    let o = run_stasis(&["checkpoint", images.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        o.stderr.contains("(sleep)") && o.stderr.contains("left the job's process tree"),
        "{}",
        o.stderr
    );
    // Failing again, the job is unprotected, and status says so loudly, since when and why.
    assert!(!run_stasis(&["checkpoint", images.to_str().unwrap()])
        .status
        .success());
    let st = status_json(&images);
    assert!(
        st["status"]["unprotected_since_unix"].as_u64().is_some(),
        "{st}"
    );
    assert!(
        st["status"]["failed_in_a_row"].as_u64().unwrap() >= 2,
        "{st}"
    );
    let o = run_stasis(&["status", images.to_str().unwrap()]);
    assert!(
        o.stdout.contains("UNPROTECTED since")
            && o.stdout.contains("none was ever taken")
            && o.stdout.contains("left the job's process tree"),
        "{}",
        o.stdout
    );
    // The job was not disturbed.
    assert_eq!(
        finish(&mut front, Duration::from_secs(60)),
        0,
        "{}",
        read(&c, "run.out.err")
    );
    assert!(final_line(&read(&c, "run.out")).is_some());
    let err = read(&c, "run.out.err");
    assert!(
        err.contains("WARNING: the job is unprotected")
            && err.contains("no checkpoint of it was ever taken in this run"),
        "{err}"
    );
}

#[test]
fn check_reports_what_stasis_run_needs() {
    let _g = serial();
    let probes = |o: &Output| -> serde_json::Value { serde_json::from_str(&o.stdout).unwrap() };
    let ok = |j: &serde_json::Value, name: &str| -> (bool, String) {
        let p = j
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no probe {name} in {j}"));
        (p["ok"] == true, p["detail"].as_str().unwrap().to_string())
    };
    let root = probes(&run_stasis(&["check", "--json"]));
    for name in ["cgroup-freezer", "user-namespaces", "time-namespaces"] {
        let (good, detail) = ok(&root, name);
        assert!(good, "{name} as root: {detail}");
    }
    // An unprivileged user: namespaces yes, a cgroup of its own no (nothing is delegated).
    let s = stasis();
    let o = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&s)
        .args(["check", "--json"])
        .output()
        .unwrap();
    let user: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(ok(&user, "user-namespaces").0);
    assert!(ok(&user, "time-namespaces").0);
    let (good, detail) = ok(&user, "cgroup-freezer");
    assert!(!good && detail.contains("delegated"), "{detail}");
}

/// A job's images directory is private whatever the umask: the directory 0700; its records,
/// history, lock and control socket 0600; its checkpoints 0700 with 0600 files.
#[test]
fn images_directory_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let c = Case::new();
    let images = c.path("images");
    let job = job(&c, 2, "work.log");
    let s = stasis();
    let mut argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        r#"umask 000; exec "$@""#.into(),
        "sh".into(),
        s.display().to_string(),
        "run".into(),
        "--images".into(),
        images.display().to_string(),
        "--every".into(),
        "300ms".into(),
        "--".into(),
    ];
    argv.extend(job);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut front = spawn(&c, &argv, "run.out");
    wait_until("a checkpoint", Duration::from_secs(30), || {
        !checkpoints(&images).is_empty()
    });
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut seen = Vec::new();
    for e in std::fs::read_dir(&images).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") || name == "latest" {
            continue;
        }
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{name}");
        if p.is_dir() {
            for f in std::fs::read_dir(&p).unwrap() {
                let f = f.unwrap().path();
                assert_eq!(mode(&f), 0o600, "{}", f.display());
            }
        }
        seen.push(name);
    }
    assert_eq!(mode(&images), 0o700, "the images directory");
    assert!(seen.iter().any(|n| n == "control"), "{seen:?}");
    assert!(seen.iter().any(|n| n == "lock"), "{seen:?}");
    kill_everything(&mut front);
}

/// The control socket answers only the job's owner and root, whatever its mode lets others
/// reach; and clients that connect and say nothing never delay anyone's checkpoint.
#[test]
fn control_socket_serves_only_its_owner_and_idle_clients_do_not_stall_it() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let c = Case::new();
    let images = c.path("images");
    let job = job(&c, 2, "work.log");
    let mut front = start(&c, &images, &[], &job, "run.out");
    wait_steps(&c, "run.out", 1, Duration::from_secs(30));
    let control = images.join("control");
    wait_until("the control socket", Duration::from_secs(10), || {
        control.exists()
    });
    // Ten clients connect and send nothing.
    let idle: Vec<_> = (0..10)
        .map(|_| std::os::unix::net::UnixStream::connect(&control).unwrap())
        .collect();
    let t = Instant::now();
    let o = run_stasis(&["checkpoint", images.to_str().unwrap(), "--json"]);
    let took = t.elapsed();
    assert!(o.status.success(), "{}{}", o.stdout, o.stderr);
    assert!(
        took < Duration::from_secs(2),
        "a checkpoint behind ten idle connections took {took:?}"
    );
    // The idle ones are let go with a reason once their time is up.
    for s in &idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        let r: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(r["ok"], false, "{line}");
        assert!(
            r["error"].as_str().unwrap().contains("no request"),
            "{line}"
        );
    }
    // Someone loosened the modes: another user reaches the socket but is refused, and no
    // checkpoint is taken for them.
    for (p, m) in [
        (c.dir.path().to_path_buf(), 0o711),
        (images.clone(), 0o711),
        (control.clone(), 0o666),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let before = checkpoints(&images);
    // Several times: the refusal may come before the client has written its request, and
    // the client must still read it.
    for _ in 0..10 {
        let o = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(stasis())
            .args(["checkpoint", images.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "another user got a checkpoint: {err}");
        assert!(
            err.contains("permission denied") && err.contains("uid 0"),
            "{err}"
        );
    }
    assert_eq!(checkpoints(&images), before);
    assert!(
        read(&c, "run.out.err").contains("refused a control request from uid 65534"),
        "{}",
        read(&c, "run.out.err")
    );
    // The owner still is served.
    let o = run_stasis(&["checkpoint", images.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", o.stdout, o.stderr);
    kill_everything(&mut front);
}

/// Root's `stasis run` does not trust an images directory someone else controls: a directory
/// another user owns, an entry in it another user owns (a planted checkpoint), or a file
/// anyone may write is refused with the reason, and nothing is written through a planted link.
#[test]
fn images_directory_another_user_controls_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let c = Case::new();
    let victim = c.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let refused = |images: &Path, needle: &str| {
        let o = run_stasis(&["run", "--images", images.to_str().unwrap(), "--", "true"]);
        assert!(!o.status.success(), "{}", o.stderr);
        assert!(
            o.stderr.contains(needle) && o.stderr.contains("of your own"),
            "expected {needle:?} in: {}",
            o.stderr
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    };
    // A directory another user owns, with its lock planted as a link to root's file.
    let theirs = c.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::symlink(&victim, theirs.join("lock")).unwrap();
    std::os::unix::fs::lchown(theirs.join("lock"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    refused(&theirs, "is owned by uid 65534");
    // Root's own directory, but a checkpoint in it belongs to another user.
    let mine = c.path("mine");
    std::fs::create_dir(&mine).unwrap();
    let planted = mine.join("ckpt-000001");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    refused(&mine, "ckpt-000001 is owned by uid 65534");
    // A record anyone may write.
    std::fs::remove_dir(&planted).unwrap();
    std::fs::write(mine.join("job.json"), "{}").unwrap();
    std::fs::set_permissions(
        mine.join("job.json"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    refused(&mine, "job.json is writable by anyone");
    // Made private again, the directory is used.
    std::fs::remove_file(mine.join("job.json")).unwrap();
    let o = run_stasis(&["run", "--images", mine.to_str().unwrap(), "--", "true"]);
    assert!(o.status.success(), "{}", o.stderr);
}
