//! Bad input and failures: every error names the thing at fault, a failed dump leaves the
//! process running and no image, a failed restore leaves no process and the image untouched.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

fn no_leftovers(dir: &Path) {
    let parent = dir.parent().unwrap();
    let name = dir.file_name().unwrap().to_str().unwrap();
    let left: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}.tmp-")))
        .collect();
    assert!(left.is_empty(), "staging directories left behind: {left:?}");
}

/// Start the static counter and return (case, pid, child).
fn counter() -> (Case, i32, std::process::Child) {
    let bin = build("counter", &[], "counter-static");
    let c = Case::new();
    let pf = c.path("pidfile");
    let mut child = spawn(&c, &[bin.to_str().unwrap(), pf.to_str().unwrap()], "out");
    let pid = wait_pidfile(&pf, &mut child);
    (c, pid, child)
}

/// The counter must still be running normally: it answers SIGUSR2 with exit 0.
fn still_fine(pid: i32, mut child: std::process::Child) {
    assert!(alive(pid), "process {pid} is gone");
    std::thread::sleep(Duration::from_millis(100));
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(20));
    assert!(
        st.success(),
        "process {pid} did not continue unharmed: {st}"
    );
}

#[test]
fn dump_of_unknown_pid_names_it() {
    let c = Case::new();
    let o = run_stasis(&[
        "dump",
        "--pid",
        "4000000",
        "--dir",
        c.image().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains("no process with pid 4000000"),
        "{}",
        o.stderr
    );
    assert!(!c.image().exists());
    no_leftovers(&c.image());
}

#[test]
fn dump_of_a_zombie_says_there_is_nothing_to_dump() {
    let _g = serial();
    let c = Case::new();
    // A child that exits at once and stays unreaped until we wait for it.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    let t = std::time::Instant::now();
    while alive(pid) {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
    ]);
    child.wait().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains(&format!("pid {pid} is a zombie")),
        "{}",
        o.stderr
    );
    assert!(!c.image().exists());
    no_leftovers(&c.image());
}

#[test]
fn dump_into_nonempty_dir_is_refused_and_process_runs_on() {
    let _g = serial();
    let (c, pid, child) = counter();
    std::fs::create_dir(c.image()).unwrap();
    std::fs::write(c.image().join("precious"), b"x").unwrap();
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
        "--kill",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains("already exists and is not empty"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read(c.image().join("precious")).unwrap(), b"x");
    still_fine(pid, child);
}

/// Start a python3 `script` (it writes the case's pidfile and prints `fd N`), dump it with
/// --kill, and check the dump failed (status 1) leaving no image and the process running:
/// the process, its pid, the fd it printed and the dump's output.
fn refused_python_dump(c: &Case, script: &str) -> (std::process::Child, i32, i32, Output) {
    let mut child = spawn(c, &["python3", "-c", script], "out");
    let pid = wait_pidfile(&c.path("pidfile"), &mut child);
    std::thread::sleep(Duration::from_millis(100));
    let fd: i32 = std::fs::read_to_string(c.path("out"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
        "--kill",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!c.image().exists(), "a failed dump left an image");
    no_leftovers(&c.image());
    assert!(alive(pid));
    (child, pid, fd, o)
}

#[test]
fn unsupported_fd_fails_cleanly_naming_the_fd() {
    let _g = serial();
    let c = Case::new();
    let pf = c.path("pidfile");
    let script = format!(
        "import socket, os, time, signal, sys\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('127.0.0.1', 0))\n\
         fd = s.fileno()\n\
         signal.signal(signal.SIGUSR2, lambda *a: sys.exit(7))\n\
         open('{pf}.tmp', 'w').write(f'{{os.getpid()}}\\n'); os.rename('{pf}.tmp', '{pf}')\n\
         print('fd', fd, flush=True)\n\
         while True: time.sleep(0.05)\n",
        pf = pf.display()
    );
    let (mut child, pid, fd, o) = refused_python_dump(&c, &script);
    assert!(
        o.stderr.contains(&format!(
            "pid {pid} fd {fd}: a UDP socket bound to 127.0.0.1:"
        )) && o.stderr.contains("(socket:[")
            && o.stderr.contains("cannot be saved"),
        "{}",
        o.stderr
    );
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(st.code(), Some(7), "the process did not run on normally");
}

/// A unix socket with a file descriptor in flight (sent with SCM_RIGHTS, not received yet)
/// is refused naming the fd and the reason; the process runs on and still receives the fd
/// and its byte intact.
#[test]
fn fd_in_flight_over_a_unix_socket_is_refused_and_left_intact() {
    let _g = serial();
    let c = Case::new();
    let pf = c.path("pidfile");
    let script = format!(
        "import socket, os, time, signal, sys\n\
         a, b = socket.socketpair()\n\
         r, w = os.pipe()\n\
         socket.send_fds(a, [b'x'], [w])\n\
         os.close(w)\n\
         def done(*_):\n\
         \x20   msg, fds, _, _ = socket.recv_fds(b, 16, 4)\n\
         \x20   os.write(fds[0], b'through')\n\
         \x20   sys.exit(7 if msg == b'x' and os.read(r, 16) == b'through' else 1)\n\
         signal.signal(signal.SIGUSR2, done)\n\
         open('{pf}.tmp', 'w').write(f'{{os.getpid()}}\\n'); os.rename('{pf}.tmp', '{pf}')\n\
         print('fd', b.fileno(), flush=True)\n\
         while True: time.sleep(0.05)\n",
        pf = pf.display()
    );
    let (mut child, pid, fd, o) = refused_python_dump(&c, &script);
    assert!(
        o.stderr.contains(&format!("pid {pid} fd {fd}: socket:["))
            && o.stderr.contains("SCM_RIGHTS"),
        "{}",
        o.stderr
    );
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(
        st.code(),
        Some(7),
        "the fd in flight did not arrive intact after the failed dump"
    );
}

#[test]
fn restore_refuses_a_taken_pid() {
    let _g = serial();
    let (c, pid, child) = counter();
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let o = run_stasis(&["restore", "--dir", c.image().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains(&format!("pid {pid} is taken"))
            && o.stderr
                .contains("the dumped process still runs, or this image was restored already"),
        "{}",
        o.stderr
    );
    still_fine(pid, child);
}

/// A restore that fails after it has created threads (here: a thread's TID is taken)
/// reports the error and leaves nothing behind; it must not wait forever on the traced
/// threads it killed.
#[test]
fn restore_failing_midway_in_a_threaded_process_ends_cleanly() {
    let _g = serial();
    let bin = build("threads", &[], "threads");
    let c = Case::new();
    let (child, pid) = start_workload(&c, &bin);
    std::thread::sleep(Duration::from_millis(100));
    dump_kill(&c, pid, child);
    let show = run_stasis(&["show", c.image().to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let threads = j["processes"][0]["threads"].as_array().unwrap();
    let tid = threads.last().unwrap()["tid"].as_i64().unwrap() as i32;
    // Another process takes the last thread's TID (the next PID the kernel hands out).
    let mut squatter = None;
    for _ in 0..20 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (tid - 1).to_string()).unwrap();
        let s = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        if s.id() as i32 == tid {
            squatter = Some(s);
            break;
        }
        let mut s = s;
        let _ = s.kill();
        let _ = s.wait();
    }
    let mut squatter = squatter.expect("could not take the thread's TID");
    let before = snapshot(&c.image());
    let mut r = std::process::Command::new(stasis())
        .args(["restore", "--dir", c.image().to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_timeout(&mut r, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut r.stderr.take().unwrap(), &mut err).unwrap();
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pid {tid} is taken")), "{err}");
    assert!(!alive(pid), "a half-restored process {pid} remains");
    assert_eq!(snapshot(&c.image()), before, "restore touched the image");
}

/// Dump --kill a counter and hand back the case and its pid.
fn dumped_counter() -> (Case, i32) {
    let (c, pid, child) = counter();
    std::thread::sleep(Duration::from_millis(100));
    dump_kill(&c, pid, child);
    (c, pid)
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn restore_fails_with(c: &Case, pid: i32, needle: &str) {
    let before = snapshot(&c.image());
    let o = run_stasis(&["restore", "--dir", c.image().to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "restore should fail: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains(needle),
        "expected '{needle}' in: {}",
        o.stderr
    );
    assert!(!alive(pid), "a half-restored process {pid} remains");
    assert_eq!(snapshot(&c.image()), before, "restore touched the image");
}

#[test]
fn corrupt_pages_are_refused_and_image_left_untouched() {
    let _g = serial();
    let (c, pid) = dumped_counter();
    let pages = c.image().join(format!("pages-{pid}"));
    let mut bytes = std::fs::read(&pages).unwrap();
    let orig = bytes.clone();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x55;
    std::fs::write(&pages, &bytes).unwrap();
    restore_fails_with(&c, pid, "is corrupt (checksum mismatch)");
    assert!(
        run_stasis(&["restore", "--dir", c.image().to_str().unwrap()])
            .stderr
            .contains(&format!("pages-{pid}")),
        "the error names the file"
    );
    // Repaired, the same image restores: nothing else was harmed.
    std::fs::write(&pages, &orig).unwrap();
    let mut r = std::process::Command::new(stasis())
        .args(["restore", "--dir", c.image().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, libc::SIGUSR2);
    assert!(wait_timeout(&mut r, Duration::from_secs(20)).success());
}

#[test]
fn truncated_record_is_refused() {
    let _g = serial();
    let (c, pid) = dumped_counter();
    let p = c.image().join(format!("process-{pid}"));
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    restore_fails_with(&c, pid, "is truncated");
}

#[test]
fn truncated_page_file_is_refused() {
    let _g = serial();
    let (c, pid) = dumped_counter();
    let p = c.image().join(format!("pages-{pid}"));
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 4096).unwrap();
    restore_fails_with(&c, pid, "outside the page file");
}

#[test]
fn newer_format_is_refused() {
    let _g = serial();
    let (c, pid) = dumped_counter();
    let p = c.image().join("inventory");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[12] = 99; // minor version
    std::fs::write(&p, &bytes).unwrap();
    restore_fails_with(&c, pid, "format version 1.99");
    bytes[10] = 2; // major version
    std::fs::write(&p, &bytes).unwrap();
    restore_fails_with(&c, pid, "use a newer stasis");
}

#[test]
fn not_an_image_is_refused() {
    let c = Case::new();
    let o = run_stasis(&["restore", "--dir", c.dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr
            .contains("is not a stasis image: it has no inventory"),
        "{}",
        o.stderr
    );
    for cmd in ["show", "restore"] {
        let nope = c.path("nope");
        let o = if cmd == "show" {
            run_stasis(&["show", nope.to_str().unwrap()])
        } else {
            run_stasis(&["restore", "--dir", nope.to_str().unwrap()])
        };
        assert_eq!(o.status.code(), Some(1));
        assert!(
            o.stderr.contains("nope: no such image directory"),
            "{cmd}: {}",
            o.stderr
        );
    }
}

#[test]
fn disk_full_during_dump_leaves_process_and_no_image() {
    let _g = serial();
    let c = Case::new();
    let small = c.path("small");
    std::fs::create_dir(&small).unwrap();
    let st = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=2m",
            "tmpfs",
            small.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "mounting a 2 MiB tmpfs (needs root)");
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(small.clone());
    // memory.c holds about 28 MiB of pages: far more than fits.
    let bin = build("memory", &[], "memory");
    let pf = c.path("pidfile");
    let mut child = spawn(&c, &[bin.to_str().unwrap(), pf.to_str().unwrap()], "out");
    let pid = wait_pidfile(&pf, &mut child);
    let img = small.join("image");
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        img.to_str().unwrap(),
        "--kill",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stderr.contains("No space left on device"), "{}", o.stderr);
    assert!(!img.exists());
    no_leftovers(&img);
    assert_eq!(
        std::fs::read_dir(&small).unwrap().count(),
        0,
        "the failed dump left files"
    );
    // The process runs on and its memory is intact.
    assert!(alive(pid));
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(30));
    let out = std::fs::read_to_string(c.path("out")).unwrap();
    assert!(st.success() && !out.contains("FAIL"), "{out}");
}

#[test]
fn stasis_killed_mid_dump_leaves_process_running_and_no_image() {
    let _g = serial();
    let bin = build("bigmem", &["-O2"], "bigmem");
    let c = Case::new();
    let pf = c.path("pidfile");
    let mut child = spawn(
        &c,
        &[bin.to_str().unwrap(), pf.to_str().unwrap(), "384"],
        "out",
    );
    let pid = wait_pidfile(&pf, &mut child);
    let img = c.image();
    let mut d = std::process::Command::new(stasis())
        .args([
            "dump",
            "--pid",
            &pid.to_string(),
            "--dir",
            img.to_str().unwrap(),
            "--kill",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Well inside the page copy of 384 MiB (which takes hundreds of ms here).
    std::thread::sleep(Duration::from_millis(120));
    d.kill().unwrap();
    let st = d.wait().unwrap();
    assert!(
        !st.success(),
        "the dump finished before it could be killed; the test needs a bigger process"
    );
    assert!(!img.exists(), "a killed dump left an image");
    // The process runs on (the kernel detached it), its memory intact.
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid), "the process died with its dumper");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("TracerPid:\t0"), "still traced:\n{status}");
    let st = poke_until_exit(pid, &mut child);
    assert!(st.success(), "memory did not survive: {st}");
    // The next dump to the same place cleans the debris and succeeds.
    let mut child2 = spawn(
        &c,
        &[bin.to_str().unwrap(), pf.to_str().unwrap(), "8"],
        "out2",
    );
    let _ = std::fs::remove_file(&pf);
    let pid2 = wait_pidfile(&pf, &mut child2);
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid2.to_string(),
        "--dir",
        img.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    no_leftovers(&img);
    assert!(poke_until_exit(pid2, &mut child2).success());
}

/// bigmem waits in pause() and may miss one SIGUSR2: send it until the process exits.
fn poke_until_exit(pid: i32, child: &mut std::process::Child) -> std::process::ExitStatus {
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "pid {pid} did not exit"
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGUSR2,
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn show_into_a_closed_pipe_ends_quietly() {
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/v1.0/counter-static");
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' show '{}' | head -n 1",
            stasis().display(),
            golden.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("image "));
}

/// A SysV segment of the image that running processes still attach cannot be recreated:
/// restore says so, naming the segment, and leaves no process; once it is free, restore works
/// and the tree finds its segments intact.
#[test]
fn sysv_segment_still_attached_is_refused_then_restored() {
    let _g = serial();
    let bin = build("sysv_shm", &[], "sysv_shm");
    let c = Case::new();
    let (child, pid) = start_workload(&c, &bin);
    dump_kill(&c, pid, child);
    // The workload's key is 0x5a000000 | (pid & 0xffffff); the killed tree left it behind.
    let key = 0x5a00_0000 | (pid & 0xff_ffff);
    // Another process attaches it (python's ctypes: shmget, shmat read-only), then waits.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import ctypes,sys\n\
             l=ctypes.CDLL(None); l.shmat.restype=ctypes.c_void_p\n\
             i=l.shmget(int(sys.argv[1]),0,0)\n\
             a=l.shmat(i,None,0o10000)\n\
             print(i if a not in (None, 2**64-1) else -1, flush=True)\n\
             sys.stdin.read()",
            &key.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let id: i32 = line.trim().parse().unwrap();
    assert!(
        id >= 0,
        "the killed tree's segment is gone or cannot be attached"
    );
    restore_fails_with(&c, pid, &format!("segment {id}"));
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let (mut r, _) = restore_in_background(&c);
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut r, Duration::from_secs(20));
    let out = after_output(&c);
    assert!(st.success() && !out.contains("FAIL"), "{st}\n{out}");
}

/// As with CRIU, file locks are saved only with --file-locks (a lock may guard a file shared
/// with processes outside the tree): without it the dump is refused naming the lock, and the
/// process runs on still holding its locks.
#[test]
fn file_locks_without_file_locks_are_refused_and_left_held() {
    let _g = serial();
    let c = Case::new();
    let bin = build("locks", &[], "locks");
    let (mut child, pid) = start_workload(&c, &bin);
    std::thread::sleep(Duration::from_millis(200));
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
        "--kill",
    ]);
    assert!(
        !o.status.success(),
        "a dump of locks without --file-locks succeeded"
    );
    assert!(
        o.stderr.contains(&format!("pid {pid} fd ")) && o.stderr.contains("--file-locks"),
        "{}",
        o.stderr
    );
    assert!(!c.image().exists(), "a failed dump left an image");
    no_leftovers(&c.image());
    assert!(alive(pid));
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(20));
    let out = std::fs::read_to_string(c.path("before.out")).unwrap();
    assert!(
        st.success() && out.contains("ok posix-lock") && !out.contains("FAIL"),
        "{st}: {out}"
    );
}

/// A deleted file with more data than --ghost-limit (holes do not count) is refused by name,
/// and the process runs on; with a larger limit the same process dumps.
#[test]
fn deleted_file_over_the_ghost_limit_is_refused() {
    let _g = serial();
    let c = Case::new();
    let bin = build("ghost", &[], "ghost");
    let (mut child, pid) = start_workload(&c, &bin);
    let dump = |limit: &str, dir: &Path| {
        run_stasis(&[
            "dump",
            "--pid",
            &pid.to_string(),
            "--dir",
            dir.to_str().unwrap(),
            "--ghost-limit",
            limit,
        ])
    };
    let o = dump("4K", &c.image());
    assert!(!o.status.success(), "8 KiB of data passed a 4K limit");
    assert!(
        o.stderr.contains("wl-ghost-sparse-") && o.stderr.contains("--ghost-limit"),
        "{}",
        o.stderr
    );
    assert!(!c.image().exists());
    no_leftovers(&c.image());
    assert!(alive(pid));
    // 8 KiB of data in a 64 MiB file: the hole does not count against 16K.
    let o = dump("16K", &c.path("second"));
    assert!(o.status.success(), "{}", o.stderr);
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(20));
    let out = std::fs::read_to_string(c.path("before.out")).unwrap();
    assert!(st.success() && !out.contains("FAIL"), "{st}: {out}");
}

/// A pending SIGTRAP cannot be told apart from the tracer's own traps: the dump is refused
/// naming it, and the process keeps the signal (it reads it after the refused dump).
#[test]
fn pending_sigtrap_is_refused_and_kept() {
    let _g = serial();
    let c = Case::new();
    let pf = c.path("pidfile");
    let script = format!(
        "import os, signal, time, sys\n\
         signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTRAP])\n\
         os.kill(os.getpid(), signal.SIGTRAP)\n\
         signal.signal(signal.SIGUSR2, lambda *a: None)\n\
         print('fd 0', flush=True)\n\
         open('{pf}.tmp', 'w').write(f'{{os.getpid()}}\\n'); os.rename('{pf}.tmp', '{pf}')\n\
         signal.sigwait([signal.SIGUSR2])\n\
         sys.exit(7 if signal.SIGTRAP in signal.sigpending() else 1)\n",
        pf = pf.display()
    );
    let (mut child, pid, _, o) = refused_python_dump(&c, &script);
    assert!(
        o.stderr.contains(&format!("pid {pid}")) && o.stderr.contains("SIGTRAP pending"),
        "{}",
        o.stderr
    );
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(20));
    assert_eq!(st.code(), Some(7), "the pending SIGTRAP was lost");
}

/// Time namespaces stasis cannot save are refused by name, and the processes run on: a
/// process in a time namespace of its own, alone or below its parent (zdtm timens_nested,
/// timens_for_kids).
#[test]
fn time_namespaces_of_their_own_are_refused() {
    let _g = serial();
    // `unshare --time CMD` unshares, then the exec enters the new namespace; with --fork the
    // child is in it and unshare itself is not.
    for (args, what) in [
        (&["--time", "sleep", "30"][..], "time namespace"),
        (&["--time", "--fork", "sleep", "30"][..], "time namespace"),
    ] {
        let c = Case::new();
        let mut child = std::process::Command::new("unshare")
            .args(args)
            .spawn()
            .expect("unshare (util-linux) runs");
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(300));
        let o = run_stasis(&[
            "dump",
            "--pid",
            &pid.to_string(),
            "--dir",
            c.image().to_str().unwrap(),
            "--kill",
        ]);
        assert!(!o.status.success(), "{args:?}: the dump succeeded");
        assert!(
            o.stderr.contains(what) && o.stderr.contains("time:["),
            "{}",
            o.stderr
        );
        assert!(!c.image().exists());
        no_leftovers(&c.image());
        assert!(alive(pid), "{args:?}: the process did not run on");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Errors that used to mislead: a pid that does not exist is not "left running", and a --dir
/// that is a regular file is not "not empty".
#[test]
fn unknown_pid_and_a_file_as_dir_are_named_for_what_they_are() {
    let _g = serial();
    let c = Case::new();
    let o = run_stasis(&[
        "dump",
        "--pid",
        "999999",
        "--dir",
        c.image().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains("nothing to dump at pid 999999")
            && o.stderr.contains("no process with pid 999999")
            && !o.stderr.contains("left running"),
        "{}",
        o.stderr
    );
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let file = c.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = run_stasis(&[
        "dump",
        "--pid",
        &sleeper.id().to_string(),
        "--dir",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains("is a file, not a directory"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    assert!(alive(sleeper.id() as i32));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// An image holds the process's memory: its directory is 0700 and every file in it 0600,
/// whatever the umask of whoever dumped it (issue: images followed the umask, 0644 in a 0755
/// directory under the usual 022).
#[test]
fn images_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let (c, pid, child) = counter();
    let img = c.image();
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000; exec "$0" dump --pid "$1" --dir "$2""#)
        .arg(stasis())
        .arg(pid.to_string())
        .arg(&img)
        .status()
        .unwrap();
    assert!(st.success());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&img), 0o700, "image directory");
    let mut files = 0;
    for e in std::fs::read_dir(&img).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(
        files >= 4,
        "an image has inventory, files, process and pages files"
    );
    still_fine(pid, child);
}

/// A restore that reports failure leaves nothing running: a pidfile that cannot be written
/// fails the restore before any process runs (it used to exit 1 with the process running);
/// a planted file or symlink at the pidfile's temporary name is never followed.
#[test]
fn unwritable_pidfile_fails_the_restore_and_leaves_nothing_running() {
    let _g = serial();
    let (c, pid, child) = counter();
    dump_kill(&c, pid, child);
    let img = c.image();
    let o = run_stasis(&[
        "restore",
        "--detach",
        "--dir",
        img.to_str().unwrap(),
        "--pidfile",
        c.path("no-such-dir/pidfile").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("cannot write the pidfile"),
        "{}",
        o.stderr
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(pid), "the failed restore left pid {pid} running");
    // The image is untouched and restores; an old `pidfile.tmp` symlink is not followed.
    let victim = c.path("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, c.path("pidfile.tmp")).unwrap();
    let pf = c.path("pidfile");
    let o = run_stasis(&[
        "restore",
        "--detach",
        "--dir",
        img.to_str().unwrap(),
        "--pidfile",
        pf.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string(&pf).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    signal(pid, libc::SIGUSR2);
    let t = std::time::Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid));
}

/// Restore never grants more than the process had: a root process that dropped every
/// capability (permitted, effective, bounding; securebits noroot) comes back from root's
/// restore without any (it used to come back with the full set).
#[test]
fn a_root_process_without_capabilities_gets_none_back() {
    let _g = serial();
    let c = Case::new();
    // setpriv execs sleep: the child is the process dumped.
    let child = std::process::Command::new("setpriv")
        .args([
            "--securebits",
            "+noroot",
            "--bounding-set",
            "-all",
            "--inh-caps",
            "-all",
            "sleep",
            "60",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("setpriv (util-linux) runs");
    let pid = child.id() as i32;
    std::thread::sleep(Duration::from_millis(300));
    let caps = |pid: i32| -> Vec<String> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("Cap") || l.starts_with("Uid:"))
            .map(String::from)
            .collect()
    };
    let before = caps(pid);
    assert!(
        before.iter().any(|l| l == "CapEff:\t0000000000000000"),
        "{before:?}"
    );
    dump_kill(&c, pid, child);
    let o = run_stasis(&["restore", "--detach", "--dir", c.image().to_str().unwrap()]);
    assert!(o.status.success(), "{}", o.stderr);
    let after = caps(pid);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(after, before, "capabilities after restore");
}

/// A staging directory left by a killed dump is never taken for an image, even when it looks
/// whole: show and restore name it for what it is. The next dump to the same directory
/// removes the caller's own stale ones at its start, and leaves another user's alone.
#[test]
fn staging_directory_of_a_killed_dump_is_named_and_removed_by_the_next_dump() {
    let _g = serial();
    let (c, old) = dumped_counter();
    let (c2, pid, child) = counter();
    // pid 0x7ffffff0 cannot exist (above pid_max): its stasis is gone.
    let stale = c2.path("image.tmp-2147483632-0");
    std::fs::rename(c.image(), &stale).unwrap();
    let o = run_stasis(&["show", stale.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        o.stderr.contains("staging directory of a dump")
            && o.stderr.contains("pid 2147483632, is gone")
            && o.stderr.contains("remove it"),
        "{}",
        o.stderr
    );
    let o = run_stasis(&["restore", "--dir", stale.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("staging directory"), "{}", o.stderr);
    assert!(!alive(old), "a restore from a staging directory ran {old}");
    // Another user's debris beside it.
    let theirs = c2.path("image.tmp-2147483631-0");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    dump_kill(&c2, pid, child);
    assert!(
        !stale.exists(),
        "the dump left its own stale staging directory"
    );
    assert!(theirs.exists(), "the dump removed another user's directory");
    let o = run_stasis(&["show", c2.image().to_str().unwrap()]);
    assert!(o.status.success(), "{}", o.stderr);
}

/// Every structural rule of the format is checked, not just checksums (which anyone can
/// recompute): a forged page index with overlapping runs, a header's reserved bytes and a
/// page file's padding. `show --verify` reads the pages, which plain `show` does not.
#[test]
fn forged_structure_is_refused_and_show_verify_checks_every_checksum() {
    use stasis_image::{FileKind, PageIndexEntry};
    let _g = serial();
    let (c, pid) = dumped_counter();
    let img = c.image();
    let dir = img.to_str().unwrap();
    let o = run_stasis(&["show", dir, "--verify"]);
    assert!(o.status.success(), "{}", o.stderr);
    assert!(
        o.stdout.contains("verified: every checksum holds"),
        "{}",
        o.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&run_stasis(&["show", dir, "--json", "--verify"]).stdout).unwrap();
    assert!(v["verified"]["page_bytes"].as_u64().unwrap() > 0, "{v}");

    // Overlapping runs, each with a valid checksum and a valid record CRC.
    let name = format!("pagemap-{pid}");
    let orig_index = std::fs::read(img.join(&name)).unwrap();
    let mut pm: PageIndexEntry =
        stasis_image::read_record_file(&img.join(&name), FileKind::PageIndex).unwrap();
    assert!(pm.runs.len() >= 2, "the counter has several runs");
    pm.runs[1].vaddr = pm.runs[0].vaddr;
    std::fs::remove_file(img.join(&name)).unwrap();
    stasis_image::write_record_file(&img, &name, FileKind::PageIndex, &pm).unwrap();
    restore_fails_with(&c, pid, "page run 1");
    let o = run_stasis(&["show", dir]);
    assert!(
        !o.status.success() && o.stderr.contains("overlaps"),
        "{}",
        o.stderr
    );
    std::fs::write(img.join(&name), &orig_index).unwrap();

    // A header's reserved bytes.
    let inv = img.join("inventory");
    let orig = std::fs::read(&inv).unwrap();
    let mut bytes = orig.clone();
    bytes[15] = 1;
    std::fs::write(&inv, &bytes).unwrap();
    restore_fails_with(&c, pid, "reserved bytes");
    std::fs::write(&inv, &orig).unwrap();

    // The page file's padding.
    let pages = img.join(format!("pages-{pid}"));
    let orig = std::fs::read(&pages).unwrap();
    let mut bytes = orig.clone();
    bytes[100] = 1;
    std::fs::write(&pages, &bytes).unwrap();
    restore_fails_with(
        &c,
        pid,
        "padding before the first page is not zero (byte 100)",
    );

    // A damaged page: show reads records only, show --verify finds it.
    let mut bytes = orig.clone();
    bytes[4096 + 10] ^= 0x55;
    std::fs::write(&pages, &bytes).unwrap();
    assert!(run_stasis(&["show", dir]).status.success());
    let o = run_stasis(&["show", dir, "--verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("failed verification") && o.stderr.contains(&format!("pages-{pid}")),
        "{}",
        o.stderr
    );
    std::fs::write(&pages, &orig).unwrap();
    assert!(run_stasis(&["show", dir, "--verify"]).status.success());
}

/// Root's restore of an image another user owns never grants that user more than they had:
/// an image edited to run as uid 0, or to open a root-only file, is refused naming the pid
/// or file and field (a CRC is no protection: anyone can recompute it). The honest image
/// restores; `--trust-image` restores what the image says.
#[test]
fn root_restore_of_another_users_image_grants_nothing_they_did_not_have() {
    use stasis_image::{FileKind, FileKindEntry, FilesEntry, ProcessEntry};
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let bin = build("counter", &[], "counter-static");
    let c = Case::new();
    std::fs::set_permissions(c.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let pf = c.path("pidfile");
    let bin_s = bin.to_str().unwrap();
    let pf_s = pf.to_str().unwrap();
    let mut child = spawn(
        &c,
        &[
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            bin_s,
            pf_s,
        ],
        "out",
    );
    let pid = wait_pidfile(&pf, &mut child);
    // The user's own output files.
    for f in ["out", "out.err"] {
        std::os::unix::fs::chown(c.path(f), Some(65534), Some(65534)).unwrap();
    }
    dump_kill(&c, pid, child);
    let img = c.image();
    let give_away = || {
        for p in std::iter::once(img.clone())
            .chain(std::fs::read_dir(&img).unwrap().map(|e| e.unwrap().path()))
        {
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        }
    };
    let rewrite = |name: &str, write: &dyn Fn(&Path)| {
        std::fs::remove_file(img.join(name)).unwrap();
        write(&img);
    };
    // The restored process runs as `uid` (its status shows it once restore is done).
    let runs_as = |uid: u32| {
        let want = format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n");
        let t = std::time::Instant::now();
        loop {
            let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if st.contains(&want) && st.contains("State:\tS") {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "pid {pid}: {st}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    give_away();
    let proc_name = format!("process-{pid}");
    let orig_proc = std::fs::read(img.join(&proc_name)).unwrap();
    let orig_files = std::fs::read(img.join("files")).unwrap();

    // Edited to run as root.
    let mut p: ProcessEntry =
        stasis_image::read_record_file(&img.join(&proc_name), FileKind::Process).unwrap();
    assert_eq!(p.creds.uid, [65534; 4]);
    p.creds.uid = [0; 4];
    rewrite(&proc_name, &|d| {
        stasis_image::write_record_file(d, &proc_name, FileKind::Process, &p).unwrap();
    });
    give_away();
    restore_fails_with(&c, pid, &format!("pid {pid} runs as uid 0 (creds.uid)"));
    let o = run_stasis(&["restore", "--dir", img.to_str().unwrap()]);
    assert!(
        o.stderr.contains("belongs to uid 65534") && o.stderr.contains("--trust-image"),
        "{}",
        o.stderr
    );
    std::fs::write(img.join(&proc_name), &orig_proc).unwrap();

    // Edited to open a root-only file for writing.
    let mut files: FilesEntry =
        stasis_image::read_record_file(&img.join("files"), FileKind::Files).unwrap();
    let out = c.path("out").display().to_string();
    let entry = files
        .files
        .iter_mut()
        .find(|f| matches!(&f.kind, FileKindEntry::Path { path, .. } if *path == out))
        .expect("stdout is a file of the image");
    if let FileKindEntry::Path { path, .. } = &mut entry.kind {
        *path = "/etc/shadow".into();
    }
    rewrite("files", &|d| {
        stasis_image::write_record_file(d, "files", FileKind::Files, &files).unwrap();
    });
    give_away();
    restore_fails_with(&c, pid, "needs write access to /etc/shadow");
    std::fs::write(img.join("files"), &orig_files).unwrap();

    // The honest image restores, as the user it was.
    let mut r = std::process::Command::new(stasis())
        .args(["restore", "--dir", img.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    runs_as(65534);
    signal(pid, libc::SIGUSR2);
    assert!(wait_timeout(&mut r, Duration::from_secs(20)).success());

    // --trust-image restores what the image says, uid 0 included.
    p.creds.uid = [0; 4];
    rewrite(&proc_name, &|d| {
        stasis_image::write_record_file(d, &proc_name, FileKind::Process, &p).unwrap();
    });
    give_away();
    let mut r = std::process::Command::new(stasis())
        .args(["restore", "--trust-image", "--dir", img.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    runs_as(0);
    signal(pid, libc::SIGUSR2);
    assert!(wait_timeout(&mut r, Duration::from_secs(20)).success());
}
