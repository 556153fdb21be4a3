//! Real programs nobody here wrote, dumped, killed and restored mid-run: their final result
//! must equal an uninterrupted run's.

mod common;
use common::*;
use std::time::Duration;

fn script(name: &str) -> String {
    workloads_dir().join(name).to_str().unwrap().to_string()
}

#[test]
fn python_computation_matches_uninterrupted_run() {
    let _g = serial();
    let py = script("python_compute.py");
    // Reference: run to completion without stasis.
    let c0 = Case::new();
    let pf0 = c0.path("pidfile");
    // Long enough (about 3-4 s here) that the dump after 1.2 s always lands mid-run, on a
    // quiet machine too.
    const ROUNDS: &str = "6000000";
    let mut ref_run = spawn(&c0, &["python3", &py, pf0.to_str().unwrap(), ROUNDS], "out");
    assert!(wait_timeout(&mut ref_run, Duration::from_secs(120)).success());
    let reference = std::fs::read_to_string(c0.path("out")).unwrap();
    let expected = reference
        .lines()
        .find(|l| l.starts_with("result "))
        .expect("a result line")
        .to_string();

    let c = Case::new();
    let r = cycle(
        &c,
        &["python3", &py, "{pidfile}", ROUNDS],
        CycleOpts {
            settle: Duration::from_millis(1200),
            go: None,
            timeout: Duration::from_secs(120),
            ..Default::default()
        },
    );
    r.assert_ok();
    assert!(
        r.before.contains("step") && !r.before.contains("result"),
        "dumped mid-run:\n{}",
        r.before
    );
    let got = r
        .after
        .lines()
        .find(|l| l.starts_with("result "))
        .unwrap_or("<none>");
    assert_eq!(got, expected, "restored python computed something else");
}

/// Run a bash loop script through dump/kill/restore: lines 1..=300 each once, in order, then
/// "end".
fn bash_loop(name: &str) {
    let sh = script(name);
    let c = Case::new();
    let r = cycle(
        &c,
        &["bash", &sh, "{pidfile}"],
        CycleOpts {
            settle: Duration::from_millis(800),
            go: None,
            timeout: Duration::from_secs(60),
            ..Default::default()
        },
    );
    r.assert_ok();
    assert!(
        !r.before.is_empty() && !r.after.is_empty(),
        "the dump was not mid-run"
    );
    let all: Vec<&str> = r.before.lines().chain(r.after.lines()).collect();
    let lines: Vec<&&str> = all.iter().filter(|l| l.starts_with("line ")).collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(**l, format!("line {}", i + 1), "line lost or repeated");
    }
    assert_eq!(lines.len(), 300);
    assert_eq!(all.last().copied(), Some("end"));
}

#[test]
fn bash_loop_continues_without_losing_a_line() {
    let _g = serial();
    bash_loop("bash_builtin_loop.sh");
}

/// An idle python3 gets a signal after restore: its handlers use SA_ONSTACK without an
/// alternate stack, so a restore that left the restorer's alternate stack behind kills it.
#[test]
fn python_idle_handles_a_signal_after_restore() {
    let _g = serial();
    let py = script("idle.py");
    let c = Case::new();
    let r = cycle(&c, &["python3", &py, "{pidfile}"], CycleOpts::default());
    r.assert_ok();
    let result = std::fs::read_to_string(c.path("pidfile.result")).unwrap_or_default();
    assert_eq!(
        result.trim(),
        "ok",
        "python did not run its handler after restore"
    );
}

/// A python3 heap compresses well: with --compress the image is much smaller, and the
/// restored interpreter still runs its handler.
#[test]
fn python_idle_compressed_image_is_smaller() {
    let _g = serial();
    let py = script("idle.py");
    let c = Case::new();
    let r = cycle(
        &c,
        &["python3", &py, "{pidfile}"],
        CycleOpts {
            dump_args: &["--compress"],
            ..Default::default()
        },
    );
    r.assert_ok();
    let result = std::fs::read_to_string(c.path("pidfile.result")).unwrap_or_default();
    assert_eq!(result.trim(), "ok");
    let s = run_stasis(&["show", c.image().to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    let mem = j["pagemaps"][0]["pages"].as_u64().unwrap() * 4096;
    let stored: u64 = std::fs::read_dir(c.image())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("pages-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        stored * 2 < mem,
        "compressed image {stored} bytes for {mem} bytes of memory"
    );
}

/// bash running `sleep` between lines: the tree includes bash's children (and whatever bash
/// is waiting for at dump time); not a line is lost or repeated.
#[test]
fn bash_loop_with_child_processes_continues() {
    let _g = serial();
    bash_loop("bash_loop.sh");
}

/// A shell pipeline `producer | filter | consumer`: three processes joined by pipes with data
/// in flight; the consumer's output has every line once, in order.
#[test]
fn shell_pipeline_continues_without_losing_a_line() {
    let _g = serial();
    let c = Case::new();
    let pf = c.path("pidfile");
    let script = format!(
        "echo $$ > {pf}.tmp && mv {pf}.tmp {pf}\n\
         for i in $(seq 1 400); do echo $i; sleep 0.005; done | while read -r l; do echo \"f $l\"; done | cat\n\
         echo end\n",
        pf = pf.display()
    );
    let r = cycle(
        &c,
        &["bash", "-c", &script, "{pidfile}"],
        CycleOpts {
            settle: Duration::from_millis(700),
            go: None,
            timeout: Duration::from_secs(60),
            ..Default::default()
        },
    );
    r.assert_ok();
    let all: Vec<&str> = r.before.lines().chain(r.after.lines()).collect();
    let lines: Vec<&&str> = all.iter().filter(|l| l.starts_with("f ")).collect();
    assert!(
        !r.after.is_empty() && !r.before.is_empty(),
        "the dump was not mid-run"
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(**l, format!("f {}", i + 1), "line lost or repeated");
    }
    assert_eq!(lines.len(), 400);
    assert_eq!(all.last().copied(), Some("end"));
}

/// A python3 multiprocessing pool dumped mid-computation (four processes, threads, pipes, a
/// semaphore in a deleted /dev/shm file) ends with the same result as an uninterrupted run.
#[test]
fn python_multiprocessing_pool_matches_uninterrupted_run() {
    let _g = serial();
    let py = script("python_pool.py");
    let c0 = Case::new();
    let pf0 = c0.path("pidfile");
    // Long enough (about 3-4 s here) that the dump after 1.2 s always lands mid-run, on a
    // quiet machine too.
    const ROUNDS: &str = "6000000";
    let mut ref_run = spawn(&c0, &["python3", &py, pf0.to_str().unwrap(), ROUNDS], "out");
    assert!(wait_timeout(&mut ref_run, Duration::from_secs(120)).success());
    let reference = std::fs::read_to_string(c0.path("out")).unwrap();
    let c = Case::new();
    let r = cycle(
        &c,
        &["python3", &py, "{pidfile}"],
        CycleOpts {
            settle: Duration::from_millis(1000),
            go: None,
            timeout: Duration::from_secs(120),
            ..Default::default()
        },
    );
    r.assert_ok();
    assert!(
        !r.before.contains("result"),
        "dumped after the end:\n{}",
        r.before
    );
    assert_eq!(
        r.after.trim(),
        reference.trim(),
        "the restored pool computed something else"
    );
}

/// A JVM dumped mid-run (a few dozen threads, a unix socket of its own) finishes with the
/// same result as an uninterrupted run.
#[test]
fn jvm_matches_uninterrupted_run() {
    let _g = serial();
    let classes = Case::new();
    let st = std::process::Command::new("javac")
        .arg("-d")
        .arg(classes.dir.path())
        .arg(workloads_dir().join("JavaCount.java"))
        .status()
        .expect("javac runs (a JDK is installed by .ci/run)");
    assert!(st.success());
    let cp = classes.dir.path().to_str().unwrap().to_string();
    let argv = [
        "java",
        "-Xmx64m",
        "-XX:+UseSerialGC",
        "-cp",
        &cp,
        "JavaCount",
        "{pidfile}",
    ];
    let c = Case::new();
    let r = cycle(
        &c,
        &argv,
        CycleOpts {
            settle: Duration::from_millis(1000),
            go: None,
            timeout: Duration::from_secs(120),
            ..Default::default()
        },
    );
    r.assert_ok();
    assert!(
        r.before.contains("step") && !r.before.contains("result"),
        "dumped mid-run:\n{}",
        r.before
    );
    assert_eq!(r.after.lines().last(), Some("result 179999820"));
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let o = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs (installed by .ci/run)");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// redis-server (threads, epoll, a listening TCP socket): keys written before the dump are
/// read back after restore, and it takes new writes.
#[test]
fn redis_keeps_its_keys() {
    let _g = serial();
    let c = Case::new();
    let port = 20000 + (std::process::id() % 20000) as u16;
    let dir = c.dir.path().to_str().unwrap().to_string();
    let port_s = port.to_string();
    let child = spawn(
        &c,
        &[
            "redis-server",
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
        ],
        "redis.out",
    );
    let pid = child.id() as i32;
    let t = std::time::Instant::now();
    while redis_cli(port, &["ping"]) != "PONG" {
        assert!(t.elapsed() < Duration::from_secs(20), "redis did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(redis_cli(port, &["set", "k1", "hello"]), "OK");
    redis_cli(port, &["rpush", "list", "a", "b", "c"]);
    dump_kill(&c, pid, child);
    assert_ne!(
        redis_cli(port, &["ping"]),
        "PONG",
        "the dumped redis is gone"
    );
    let mut r = std::process::Command::new(stasis())
        .args(["restore", "--dir", c.image().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while redis_cli(port, &["ping"]) != "PONG" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "restored redis does not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(redis_cli(port, &["get", "k1"]), "hello");
    assert_eq!(redis_cli(port, &["lrange", "list", "0", "-1"]), "a\nb\nc");
    assert_eq!(redis_cli(port, &["set", "k2", "after"]), "OK");
    assert_eq!(redis_cli(port, &["get", "k2"]), "after");
    redis_cli(port, &["shutdown", "nosave"]);
    assert!(wait_timeout(&mut r, Duration::from_secs(20)).success());
}

/// A Go binary (runtime threads with their own alternate stacks, Go's signal handlers,
/// goroutines on 8 workers) dumped mid-run finishes with the uninterrupted result.
#[test]
fn go_binary_matches_uninterrupted_run() {
    let _g = serial();
    let build_dir = Case::new();
    let bin = build_dir.path("workers");
    let st = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(workloads_dir().join("go/workers.go"))
        .env("GOCACHE", build_dir.path("gocache"))
        .env("GOPATH", build_dir.path("gopath"))
        .status()
        .expect("go builds (golang-go is installed by .ci/run)");
    assert!(st.success());
    let bin = bin.to_str().unwrap().to_string();
    let c0 = Case::new();
    let pf0 = c0.path("pidfile");
    let mut ref_run = spawn(&c0, &[&bin, pf0.to_str().unwrap()], "out");
    assert!(wait_timeout(&mut ref_run, Duration::from_secs(120)).success());
    let reference = std::fs::read_to_string(c0.path("out")).unwrap();
    let c = Case::new();
    let r = cycle(
        &c,
        &[&bin],
        CycleOpts {
            settle: Duration::from_millis(700),
            go: None,
            timeout: Duration::from_secs(120),
            ..Default::default()
        },
    );
    r.assert_ok();
    assert!(r.before.is_empty(), "dumped after the end: {}", r.before);
    assert_eq!(r.after.trim(), reference.trim());
}

/// A shell that forks short-lived children without pause: children come and go between the
/// moment the tree is listed and the moment each process is seized. Every dump (leaving the
/// shell running) must succeed, the shell must go on forking afterwards, and a last dump
/// --kill restores into a shell that still forks and ends cleanly.
#[test]
fn dumps_of_a_tree_with_short_lived_children_all_succeed() {
    let _g = serial();
    let c = Case::new();
    let pf = c.path("pidfile");
    let count = c.path("count");
    let script = format!(
        "echo $$ > {pf}.tmp && mv {pf}.tmp {pf}\n\
         n=0; while [ ! -e {stop} ]; do /bin/true; sleep 0 & wait; n=$((n+1)); echo $n > {count}; done\n\
         echo \"stopped after $n\"\n",
        pf = pf.display(),
        count = count.display(),
        stop = c.path("stop").display()
    );
    let mut child = spawn(&c, &["bash", "-c", &script], "out");
    let pid = wait_pidfile(&pf, &mut child);
    let pid_s = pid.to_string();
    let read_count = || -> u64 {
        std::fs::read_to_string(&count)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    for i in 0..25 {
        let dir = c.path(&format!("img{i}"));
        let o = run_stasis(&["dump", "--pid", &pid_s, "--dir", dir.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "dump {i} of a forking shell failed: {}",
            o.stderr
        );
        let before = read_count();
        let t = std::time::Instant::now();
        while read_count() <= before + 3 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the shell stopped forking after dump {i}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    dump_kill(&c, pid, child);
    let at_dump = read_count();
    let mut r = std::process::Command::new(stasis())
        .args(["restore", "--dir", c.image().to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(c.path("after.out")).unwrap())
        .stderr(std::fs::File::create(c.path("after.err")).unwrap())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while read_count() < at_dump + 50 {
        if let Ok(Some(st)) = r.try_wait() {
            panic!(
                "restore ended ({st}) early: {}",
                std::fs::read_to_string(c.path("after.err")).unwrap_or_default()
            );
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the restored shell does not fork"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(c.path("stop"), "").unwrap();
    assert!(wait_timeout(&mut r, Duration::from_secs(20)).success());
    // Its stdout is the file it was: only the restored shell's last line is in it.
    let out = std::fs::read_to_string(c.path("out")).unwrap();
    assert!(
        out.starts_with("stopped after "),
        "restored output: {out:?}"
    );
}
