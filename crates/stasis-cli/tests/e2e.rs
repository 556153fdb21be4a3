//! End-to-end: real processes dumped with `stasis dump --kill`, restored with `stasis
//! restore`, and checked by what they print and how they exit (DESIGN.md §8). Needs root
//! (or CAP_CHECKPOINT_RESTORE) for clone3 with set_tid: CI runs as root.

mod common;
use common::*;
use std::time::Duration;

/// "tick N" lines must be consecutive from 0 across dump and restore, and end in "done N".
fn assert_continuous(before: &str, after: &str) {
    let all: Vec<&str> = before.lines().chain(after.lines()).collect();
    let ticks: Vec<u64> = all
        .iter()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    for (i, t) in ticks.iter().enumerate() {
        assert_eq!(
            *t, i as u64,
            "tick {i} lost or repeated:\n{before}\n---\n{after}"
        );
    }
    let done = all.last().unwrap();
    assert_eq!(*done, format!("done {}", ticks.len()), "last line");
}

#[test]
fn counter_static_continues() {
    let _g = serial();
    let bin = build("counter", &[], "counter-static");
    let c = Case::new();
    let r = cycle(&c, &[bin.to_str().unwrap()], CycleOpts::default());
    r.assert_ok();
    assert!(
        r.before.contains("tick") && r.after.contains("tick"),
        "both sides must tick"
    );
    assert_continuous(&r.before, &r.after);
}

#[test]
fn counter_dynamic_continues() {
    let _g = serial();
    let bin = build("counter", &["-dynamic"], "counter-dynamic");
    let c = Case::new();
    let r = cycle(&c, &[bin.to_str().unwrap()], CycleOpts::default());
    r.assert_ok();
    assert!(
        r.before.contains("tick") && r.after.contains("tick"),
        "both sides must tick"
    );
    assert_continuous(&r.before, &r.after);
}

#[test]
fn dump_without_kill_leaves_process_running() {
    let _g = serial();
    let bin = build("counter", &[], "counter-static");
    let c = Case::new();
    let pf = c.path("pidfile");
    let mut child = spawn(&c, &[bin.to_str().unwrap(), pf.to_str().unwrap()], "out");
    let pid = wait_pidfile(&pf, &mut child);
    std::thread::sleep(Duration::from_millis(200));
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(j["pid"], pid);
    assert!(j["pages"].as_u64().unwrap() > 0);
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut child, Duration::from_secs(20));
    assert!(st.success());
    let out = std::fs::read_to_string(c.path("out")).unwrap();
    assert_continuous(&out, "");
    // The image is complete: show decodes it.
    let s = run_stasis(&["show", c.image().to_str().unwrap()]);
    assert!(
        s.status.success() && s.stdout.contains(&format!("process {pid}")),
        "{}",
        s.stdout
    );
}

#[test]
fn memory_every_vma_kind() {
    let _g = serial();
    workload("memory", &[]);
}

#[test]
fn memory_with_compressed_pages() {
    let _g = serial();
    let bin = build("memory", &[], "memory");
    let c = Case::new();
    let r = cycle(
        &c,
        &[bin.to_str().unwrap()],
        CycleOpts {
            dump_args: &["--compress"],
            ..Default::default()
        },
    );
    r.assert_ok();
    let s = run_stasis(&["show", c.image().to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(j["format"], "1.5");
    let dir = c.image();
    let pages = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_name().to_string_lossy().starts_with("pages-"))
        .unwrap();
    let stored = pages.metadata().unwrap().len();
    let mem = j["pagemaps"][0]["pages"].as_u64().unwrap() * 4096;
    // memory.c fills most of its memory with patterns LZ4 cannot shrink: only some runs are
    // stored compressed, and those must restore as well as raw ones.
    assert!(stored < mem, "nothing was compressed: {stored} of {mem}");
}

#[test]
fn cpu_registers_and_avx() {
    let _g = serial();
    workload("cpu", &[]);
}

#[test]
fn signals_handlers_pending_altstack_itimers() {
    let _g = serial();
    workload("signals", &[]);
}

#[test]
fn process_attributes() {
    let _g = serial();
    workload("process", &[]);
}

#[test]
fn files_offsets_flags_deleted_memfd() {
    let _g = serial();
    workload("files", &[]);
}

#[test]
fn blocking_nanosleep() {
    let _g = serial();
    workload("blocking", &["sleep"]);
}

#[test]
fn blocking_read_on_pipe() {
    let _g = serial();
    workload("blocking", &["read"]);
}

#[test]
fn blocking_poll() {
    let _g = serial();
    workload("blocking", &["poll"]);
}

#[test]
fn blocking_sigsuspend() {
    let _g = serial();
    workload("blocking", &["sigsuspend"]);
}

#[test]
fn blocking_futex() {
    let _g = serial();
    workload("blocking", &["futex"]);
}

/// Start the static counter, dump --kill it, and return (case, pid).
fn dumped_counter(c: &Case) -> i32 {
    let bin = build("counter", &[], "counter-static");
    let pf = c.path("pidfile");
    let mut child = spawn(
        c,
        &[bin.to_str().unwrap(), pf.to_str().unwrap()],
        "before.out",
    );
    let pid = wait_pidfile(&pf, &mut child);
    std::thread::sleep(Duration::from_millis(150));
    dump_kill(c, pid, child);
    pid
}

#[test]
fn restore_detach_returns_and_process_runs_on_its_own() {
    let _g = serial();
    let c = Case::new();
    let pid = dumped_counter(&c);
    let rpid = c.path("restored.pid");
    let out = std::fs::File::create(c.path("after.out")).unwrap();
    let st = std::process::Command::new(stasis())
        .args([
            "restore",
            "--detach",
            "--dir",
            c.image().to_str().unwrap(),
            "--pidfile",
            rpid.to_str().unwrap(),
        ])
        .stdout(out)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(&rpid).unwrap().trim(),
        pid.to_string()
    );
    // It runs on after the restore command is gone, printing into its own output file.
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, libc::SIGUSR2);
    let t = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "detached process did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = after_output(&c);
    assert!(after.contains("tick") && after.contains("done"), "{after}");
    assert_continuous(&until_dump(&c, "before.out"), &after);
}

/// The state letter of /proc/PID/stat.
fn proc_state(pid: i32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    s[s.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

/// A process in a job-control stop (SIGSTOP) is dumped as it is (a dump that leaves it
/// running leaves it stopped) and comes back stopped: it prints nothing until SIGCONT, then
/// goes on counting without a gap.
#[test]
fn stopped_process_comes_back_stopped() {
    let _g = serial();
    let c = Case::new();
    let bin = build("counter", &[], "counter-static");
    let (child, pid) = start_workload(&c, &bin);
    std::thread::sleep(Duration::from_millis(150));
    signal(pid, libc::SIGSTOP);
    let t = std::time::Instant::now();
    while proc_state(pid) != 'T' {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "SIGSTOP did not stop it"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // A dump that leaves it running leaves it stopped, too.
    let printed = std::fs::read_to_string(c.path("before.out")).unwrap();
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.path("first").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(proc_state(pid), 'T', "the dump woke the stopped process");
    assert_eq!(
        std::fs::read_to_string(c.path("before.out")).unwrap(),
        printed
    );
    dump_kill(&c, pid, child);
    let (mut r, _) = restore_in_background(&c);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(proc_state(pid), 'T', "the restored process is not stopped");
    assert_eq!(
        after_output(&c),
        "",
        "the restored process ran while it should be stopped"
    );
    signal(pid, libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut r, Duration::from_secs(20));
    assert!(st.success(), "restore: {st}");
    let after = after_output(&c);
    assert!(after.contains("tick") && after.contains("done"), "{after}");
    assert_continuous(&until_dump(&c, "before.out"), &after);
}

#[test]
fn foreground_restore_forwards_sigterm_and_reports_the_death() {
    let _g = serial();
    let c = Case::new();
    let pid = dumped_counter(&c);
    let mut r = std::process::Command::new(stasis())
        .args(["restore", "--dir", c.image().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(c.path("restore.err")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    signal(r.id() as i32, libc::SIGTERM);
    let st = wait_timeout(&mut r, Duration::from_secs(20));
    assert_eq!(
        st.code(),
        Some(128 + libc::SIGTERM),
        "restore exits like a shell would"
    );
    let err = std::fs::read_to_string(c.path("restore.err")).unwrap();
    assert!(
        err.contains(&format!("restored pid {pid} was killed by SIGTERM")),
        "{err}"
    );
}

#[test]
fn process_of_another_user_gets_its_credentials_back() {
    let _g = serial();
    let bin = build("process", &[], "process");
    let c = Case::new();
    // The unprivileged user must reach its pidfile and temp dir.
    std::fs::set_permissions(
        c.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let tmp = c.dir.path().to_str().unwrap().to_string();
    let r = cycle(
        &c,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin.to_str().unwrap(),
            "{pidfile}",
            &tmp,
        ],
        CycleOpts::default(),
    );
    r.assert_ok();
    assert!(r.after.contains("ok creds"), "{}", r.after);
    let status = std::fs::read_to_string(format!("/proc/{}/status", std::process::id())).unwrap();
    assert!(status.contains("Uid:\t0"), "the test itself runs as root");
}

#[test]
fn threads_each_with_its_own_state_and_wait() {
    let _g = serial();
    let r = workload("threads", &[]);
    assert!(r.after.contains("ok tids"), "{}", r.after);
}

/// Signals pending on a thread other than the main one (tgkill and sigqueue'd with values)
/// are delivered to that thread after restore, in order, with their data.
#[test]
fn signals_pending_on_another_thread() {
    let _g = serial();
    let r = workload("thread_signals", &[]);
    assert!(r.after.contains("ok worker-pending-signals"), "{}", r.after);
}

/// A thread that dropped to another user with the raw syscall (credentials are per thread)
/// gets its own credentials back, while the main thread stays root.
#[test]
fn thread_with_credentials_of_its_own() {
    let _g = serial();
    let r = workload("thread_creds", &[]);
    assert!(r.after.contains("ok worker-own-credentials"), "{}", r.after);
}

/// SysV shared memory: same ids and key, size, mode, attach counts, read-only attaches,
/// a segment removed while attached, and a page only the segment holds (written by a
/// process that exited).
#[test]
fn sysv_shared_memory_keeps_ids_attaches_and_pages() {
    let _g = serial();
    workload("sysv_shm", &[]);
}

/// `pid` and all its descendants.
fn tree_pids(pid: i32) -> Vec<i32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        i += 1;
        let tasks = std::fs::read_dir(format!("/proc/{p}/task")).unwrap();
        for t in tasks {
            let t = t.unwrap().file_name();
            let kids =
                std::fs::read_to_string(format!("/proc/{p}/task/{}/children", t.to_string_lossy()))
                    .unwrap_or_default();
            out.extend(kids.split_whitespace().map(|k| k.parse::<i32>().unwrap()));
        }
    }
    out
}

/// The proportional set size of a tree, in KiB (pages shared by n processes count 1/n each).
fn tree_pss_kb(pid: i32) -> u64 {
    tree_pids(pid)
        .iter()
        .map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .map(|v| {
                    v.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap()
                })
                .unwrap()
        })
        .sum()
}

/// Pages a parent and its children share copy-on-write after fork are saved once and stay
/// shared, both in the tree a dump leaves running and after restore: the tree's Pss does not
/// grow (64 MiB shared by 4 processes would be 256 MiB if each got its own copy), and the
/// pages each child wrote stay its own.
#[test]
fn copy_on_write_memory_stays_shared_after_restore() {
    let _g = serial();
    let bin = build("cow_tree", &[], "cow_tree");
    let c = Case::new();
    let (child, pid) = start_workload(&c, &bin);
    assert_eq!(tree_pids(pid).len(), 4);
    let before = tree_pss_kb(pid);
    // A dump that leaves the tree running does not unshare its pages either (reading them
    // must not pin them).
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.path("first").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let after_first = tree_pss_kb(pid);
    assert!(
        after_first * 4 < before * 5,
        "a dump grew the running tree's memory from {before} KiB to {after_first} KiB"
    );
    dump_kill(&c, pid, child);
    let page_bytes: u64 = std::fs::read_dir(c.image())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("pages-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(
        page_bytes < 80 << 20,
        "the image holds {} MiB of pages for 64 MiB shared + 3 MiB private",
        page_bytes >> 20
    );
    let (mut r, _) = restore_in_background(&c);
    let after = tree_pss_kb(pid);
    eprintln!("tree Pss: {before} KiB before the dump, {after} KiB after the restore");
    assert!(
        after * 4 < before * 5,
        "restore grew the tree's memory from {before} KiB to {after} KiB"
    );
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut r, Duration::from_secs(60));
    let out = after_output(&c);
    assert!(st.success() && !out.contains("FAIL"), "{st}\n{out}");
    assert!(out.contains("ok child2-region"), "{out}");
}

/// A session and a process group whose leaders have exited come back with their ids (a
/// helper with the leader's PID makes each and exits before anything runs).
#[test]
fn sessions_and_groups_of_exited_leaders() {
    let _g = serial();
    workload("sessions", &[]);
}

/// An established loopback TCP connection with bytes in flight both ways: refused without
/// --tcp-established (naming the socket and the flag, the process running on), saved with
/// TCP_REPAIR with it (a dump that leaves it running leaves the connection working), and
/// after restore it carries the queued and new data both ways.
#[test]
fn tcp_connection_inside_the_process() {
    let _g = serial();
    let bin = build("tcp_pair", &[], "tcp_pair");
    let c = Case::new();
    let (child, pid) = start_workload(&c, &bin);
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.path("refused").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.contains(&format!("pid {pid} fd"))
            && o.stderr.contains("socket:[")
            && o.stderr.contains("--tcp-established"),
        "{}",
        o.stderr
    );
    assert!(!c.path("refused").exists());
    // A dump that leaves it running takes its sockets out of repair mode again.
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.path("first").to_str().unwrap(),
        "--tcp-established",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    dump_kill_with(&c, pid, child, &["--tcp-established"]);
    let (mut r, _) = restore_in_background(&c);
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut r, Duration::from_secs(30));
    let out = after_output(&c);
    assert!(
        st.success() && !out.contains("FAIL") && out.contains("ok ping-pong"),
        "{st}\n{out}\n{}",
        std::fs::read_to_string(c.path("after.err")).unwrap_or_default()
    );
}

/// A connection to a peer outside the tree (here: this test) is restored silently with
/// TCP_REPAIR: the peer's socket sees no reset or close across the dump, kill and restore,
/// and the connection carries data both ways afterwards.
#[test]
fn tcp_connection_to_an_outside_peer() {
    use std::io::{BufRead, Write};
    let _g = serial();
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let c = Case::new();
    let pf = c.path("pidfile");
    let script = format!(
        "import socket, os, time, signal\n\
         s = socket.create_connection(('127.0.0.1', {port}))\n\
         s.sendall(b'hello\\n')\n\
         go = []\n\
         signal.signal(signal.SIGUSR2, lambda *a: go.append(1))\n\
         open('{pf}.tmp', 'w').write(f'{{os.getpid()}}\\n'); os.rename('{pf}.tmp', '{pf}')\n\
         while not go: time.sleep(0.02)\n\
         s.sendall(b'after\\n')\n\
         print('got', s.makefile().readline().strip(), flush=True)\n",
        pf = pf.display()
    );
    let mut child = spawn(&c, &["python3", "-c", &script], "before.out");
    let (conn, _) = peer.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rd = std::io::BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    rd.read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    let pid = wait_pidfile(&pf, &mut child);
    dump_kill_with(&c, pid, child, &["--tcp-established"]);
    // The peer noticed nothing: no FIN, no reset.
    conn.set_nonblocking(true).unwrap();
    let mut probe = [0u8; 1];
    match std::io::Read::read(&mut &conn, &mut probe) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the peer saw the dump: {other:?}"),
    }
    conn.set_nonblocking(false).unwrap();
    let (mut r, _) = restore_in_background(&c);
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, libc::SIGUSR2);
    line.clear();
    rd.read_line(&mut line).unwrap();
    assert_eq!(
        line, "after\n",
        "the restored process's bytes did not reach the peer"
    );
    (&conn).write_all(b"reply\n").unwrap();
    let st = wait_timeout(&mut r, Duration::from_secs(30));
    let out = after_output(&c);
    assert!(
        st.success() && out.contains("got reply"),
        "{st}\n{out}\n{}",
        std::fs::read_to_string(c.path("after.err")).unwrap_or_default()
    );
}

/// Everything a pty master yields, collected by a thread.
fn pty_reader(master: std::os::fd::OwnedFd) -> std::sync::Arc<std::sync::Mutex<String>> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let o = out.clone();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut f, &mut buf) {
            if n == 0 {
                break;
            }
            o.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    out
}

fn wait_for_text(out: &std::sync::Mutex<String>, what: &str) {
    let t = std::time::Instant::now();
    while !out.lock().unwrap().contains(what) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no {what:?} on the terminal: {}",
            out.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A job started from a terminal (in the session of a shell that owns the terminal) comes
/// back attached to the restore command's terminal: its output shows there, /dev/tty is that
/// terminal, and it reads what is typed there.
#[test]
fn job_started_from_a_terminal_restores_on_the_restore_commands_terminal() {
    let _g = serial();
    let bin = build("tty_job", &[], "tty_job");
    let c = Case::new();
    let pf = c.path("pidfile");
    // The original terminal: a shell leads its session, the job is its child.
    let one = nix::pty::openpty(None, None).unwrap();
    let job_out = pty_reader(one.master);
    let slave = std::fs::File::from(one.slave);
    let mut sh = std::process::Command::new("setsid")
        .args(["-c", "sh", "-c", "\"$0\" \"$1\"; sleep 30"])
        .arg(&bin)
        .arg(&pf)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let pid = wait_pidfile(&pf, &mut sh);
    wait_for_text(&job_out, "tick 3");
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
        "--kill",
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let _ = sh.kill();
    let _ = sh.wait();
    // The restore command's terminal: another pty, whose session it leads.
    let two = nix::pty::openpty(None, None).unwrap();
    let mut typing = std::fs::File::from(two.master.try_clone().unwrap());
    let out = pty_reader(two.master);
    let slave = std::fs::File::from(two.slave);
    let mut r = std::process::Command::new("setsid")
        .args(["-c"])
        .arg(stasis())
        .args(["restore", "--dir", c.image().to_str().unwrap()])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    wait_for_text(&out, "tick");
    signal(pid, libc::SIGUSR2);
    wait_for_text(&out, "ready on ");
    assert!(
        out.lock().unwrap().contains("via /dev/tty"),
        "the controlling terminal is not the restore command's"
    );
    std::io::Write::write_all(&mut typing, b"typed here\n").unwrap();
    wait_for_text(&out, "echo: typed here");
    let st = wait_timeout(&mut r, Duration::from_secs(20));
    let text = out.lock().unwrap().clone();
    assert!(st.success() && !text.contains("FAIL"), "{st}\n{text}");
}

#[test]
fn process_tree_with_shared_pipe_and_memory() {
    let _g = serial();
    let r = workload("tree", &[]);
    assert!(
        r.after.contains("ok shared-page") && r.after.contains("ok wait child2"),
        "{}",
        r.after
    );
}

#[test]
fn zombies_keep_their_exit_status() {
    let _g = serial();
    let r = workload("zombies", &[]);
    assert!(
        r.after.contains("ok zombie-exit-code") && r.after.contains("ok zombie-signal"),
        "{}",
        r.after
    );
}

#[test]
fn posix_timers_keep_ids_and_firing() {
    let _g = serial();
    let r = workload("posix_timers", &[]);
    assert!(r.after.contains("ok timer-a-firing"), "{}", r.after);
}

#[test]
fn unix_sockets_pairs_listener_and_queues() {
    let _g = serial();
    let r = workload("unix_sockets", &[]);
    assert!(
        r.after.contains("ok listener-accepts") && r.after.contains("ok dgram-message-2"),
        "{}",
        r.after
    );
}

#[test]
fn event_fds() {
    let _g = serial();
    let r = workload("eventfds", &[]);
    assert!(
        r.after.contains("ok epoll-wait") && r.after.contains("ok timerfd-firing"),
        "{}",
        r.after
    );
}

#[test]
fn fifo_with_bytes_in_flight() {
    let _g = serial();
    let r = workload("fifo", &[]);
    assert!(r.after.contains("ok fifo-buffered"), "{}", r.after);
}

#[test]
fn file_locks_are_held_again() {
    let _g = serial();
    let bin = build("locks", &[], "locks");
    let c = Case::new();
    let r = cycle(
        &c,
        &[bin.to_str().unwrap()],
        CycleOpts {
            dump_args: &["--file-locks"],
            ..CycleOpts::default()
        },
    );
    r.assert_ok();
    assert!(
        r.after.contains("ok posix-lock")
            && r.after.contains("ok flock")
            && r.after.contains("ok flock-owner"),
        "{}",
        r.after
    );
}

#[test]
fn seccomp_filter_and_strict_mode() {
    let _g = serial();
    let r = workload("seccomp", &[]);
    assert!(
        r.after.contains("ok seccomp-filter") && r.after.contains("ok seccomp-strict-child"),
        "{}",
        r.after
    );
}

/// With the original still running (its PID taken), `restore --pid-ns` brings the image back
/// in a fresh PID namespace where it has its saved PID; both run to the end.
#[test]
fn pid_ns_restore_beside_the_running_original() {
    let _g = serial();
    let bin = build("counter", &[], "counter-static");
    let c = Case::new();
    let (mut child, pid) = start_workload(&c, &bin);
    std::thread::sleep(Duration::from_millis(150));
    let o = run_stasis(&[
        "dump",
        "--pid",
        &pid.to_string(),
        "--dir",
        c.image().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    let rpf = c.path("restored.pid");
    let mut r = std::process::Command::new(stasis())
        .args([
            "restore",
            "--pid-ns",
            "--dir",
            c.image().to_str().unwrap(),
            "--pidfile",
            rpf.to_str().unwrap(),
        ])
        .stdout(std::fs::File::create(c.path("after.out")).unwrap())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !rpf.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no pidfile from restore --pid-ns"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let outer: i32 = std::fs::read_to_string(&rpf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(outer, pid);
    let status = std::fs::read_to_string(format!("/proc/{outer}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().last().unwrap(),
        pid.to_string(),
        "{nspid}"
    );
    std::thread::sleep(Duration::from_millis(200));
    signal(outer, libc::SIGUSR2);
    assert!(wait_timeout(&mut r, Duration::from_secs(20)).success());
    signal(pid, libc::SIGUSR2);
    assert!(wait_timeout(&mut child, Duration::from_secs(20)).success());
    let after = after_output(&c);
    assert!(after.contains("tick") && after.contains("done"), "{after}");
}

#[test]
fn pty_owned_by_the_process() {
    let _g = serial();
    let r = workload("pty", &[]);
    assert!(
        r.after.contains("ok pty-flows") && r.after.contains("ok pty-winsize"),
        "{}",
        r.after
    );
}

/// A job whose stdin, stdout and stderr are files of its own (a FIFO, a log opened O_APPEND,
/// another file) gets them back as those files, whatever the restore command's own stdio is:
/// its output after the restore continues in its log, not in the restore command's stdout.
#[test]
fn stdio_files_are_restored_as_the_files_they_were() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _g = serial();
    let bin = build("stdio", &[], "stdio");
    let c = Case::new();
    let fifo = c.path("in.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Our end of the FIFO, kept open across the dump and the restore.
    let mut writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&fifo)
        .unwrap();
    std::fs::write(c.path("before.out"), "# the log has history\n").unwrap();
    let pf = c.path("pidfile");
    let mut child = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"exec <"$1" >>"$2" 2>"$3"; shift 3; exec "$@""#)
        .arg("wl")
        .args([&fifo, &c.path("before.out"), &c.path("before.out.err")])
        .arg(&bin)
        .arg(&pf)
        .spawn()
        .unwrap();
    let pid = wait_pidfile(&pf, &mut child);
    dump_kill(&c, pid, child);
    let (mut r, restored) = restore_in_background(&c);
    assert_eq!(restored, pid);
    writer.write_all(b"after-restore\n").unwrap();
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut r, Duration::from_secs(20));
    let log = std::fs::read_to_string(c.path("before.out")).unwrap();
    let after = since_dump(&c, "before.out");
    assert!(
        st.success() && after.contains("ok stdin-reads-the-fifo") && !after.contains("FAIL"),
        "{st}\n--- log\n{log}\n--- restore's stderr\n{}",
        std::fs::read_to_string(c.path("after.err")).unwrap_or_default()
    );
    assert!(
        log.starts_with("# the log has history\n# started\n"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(c.path("after.out")).unwrap(),
        "",
        "the job's output went to the restore command's stdout"
    );
    assert!(since_dump(&c, "before.out.err").contains("stderr-after-restore"));
}

/// Deleted files keep holes (a 64 MiB hole stays a hole), data, owner, mode, times, and fds
/// that are write-only or O_PATH (which the dump cannot read through: it reopens the file).
#[test]
fn deleted_files_keep_holes_owner_times_and_odd_fds() {
    let _g = serial();
    let r = workload("ghost", &[]);
    for check in [
        "hole-kept",
        "extents",
        "owner",
        "mtime",
        "write-only-fd-writes",
        "opath-fd",
    ] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// Pipe ends held through several descriptions (reopened through /proc) keep each its own
/// flags, and dups keep sharing theirs (zdtm pipe01, pipe02).
#[test]
fn pipe_descriptions_keep_their_own_flags() {
    let _g = serial();
    let r = workload("pipe_flags", &[]);
    for check in [
        "write-end-nonblock",
        "reopened-write-end-blocking",
        "read-ends-own-flags",
        "dup-shares-its-description",
        "data",
    ] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// epoll registrations made under an fd number that was closed, or reused for another file,
/// come back (zdtm epoll, epoll01: EEXIST before).
#[test]
fn epoll_registrations_that_outlived_their_fd_number() {
    let _g = serial();
    let r = workload("epoll_moved", &[]);
    for check in [
        "all-three-fire",
        "fd10-is-the-eventfd",
        "fd11-still-closed",
        "pipe-data",
    ] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// pidfds: of the process itself, of a child in the tree, of children already gone (zdtm
/// pidfd_self, pidfd_child, pidfd_kill, pidfd_dead, pidfd_diffdead).
#[test]
fn pidfds_name_the_same_processes() {
    let _g = serial();
    let r = workload("pidfds", &[]);
    for check in [
        "self",
        "self-nonblock",
        "child-dup-same",
        "child-killed-and-reaped-by-pidfd",
        "grandchild-killed-by-pidfd",
        "gone-esrch",
        "gone-inodes",
    ] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// Capabilities (all five sets), securebits, an fs gid of its own, the loginuid, per-thread
/// scheduling policy and nice value, THP disable and a membarrier registration (zdtm caps00,
/// caps01, pid00, loginuid, sched_policy00, sched_prio00, thp_disable, membarrier).
#[test]
fn credentials_scheduling_and_process_attributes() {
    let _g = serial();
    let r = workload("attrs", &[]);
    for check in [
        "caps",
        "bounding-set",
        "ambient",
        "securebits",
        "fsgid",
        "loginuid",
        "sched-policy",
        "leader-nice",
        "thread-nice",
        "thread-policy",
        "thp-disable",
        "membarrier",
    ] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// Deleted non-regular files and deleted files in odd shapes (zdtm unlink_fifo*, fifo-ghost,
/// deleted_dev, rmdir_open, cwd01, cwd02, symlink01, fd01, unlink_fstat02, unlink_fstat041).
#[test]
fn ghosts_come_back_as_the_objects_they_were() {
    let _g = serial();
    let r = workload("ghosts", &[]);
    for check in [
        "fifo",
        "device",
        "removed-dir",
        "removed-cwd",
        "symlink",
        "tmpfile",
        "one-file-twice",
    ] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// `--link-remap`: a file unlinked where it was opened but linked elsewhere comes back as the
/// same inode (zdtm unlink_fstat03).
#[test]
fn link_remap_keeps_the_same_file() {
    let _g = serial();
    let bin = build("link_remap", &[], "link_remap");
    let c = Case::new();
    let r = cycle(
        &c,
        &[bin.to_str().unwrap()],
        CycleOpts {
            dump_args: &["--link-remap"],
            ..CycleOpts::default()
        },
    );
    r.assert_ok();
    for check in [
        "same-inode",
        "writes-show-in-the-other-name",
        "no-link-left",
    ] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// A chrooted child, O_PATH fds of a symlink and of a socket file, a namespace fd (zdtm
/// chroot, symlink, proc-self).
#[test]
fn root_directory_opath_files_and_namespace_fds() {
    let _g = serial();
    let r = workload("fs_context", &[]);
    for check in ["chroot", "symlink-opath", "socket-opath", "netns-fd"] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// The owner of a description (F_SETOWN, F_SETSIG, the setter's uids) and O_ASYNC: input
/// still signals the process after restore (zdtm file_fown).
#[test]
fn file_owner_and_async_signals() {
    let _g = serial();
    let r = workload("fown", &[]);
    for check in ["owner", "setter-uids", "o-async", "signal-on-input"] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}

/// `--manage-cgroups`: a process and a thread in cgroups of their own (a named v1 hierarchy)
/// come back into them, the directories made again with their mode, a property and an empty
/// sibling, after the harness removed them (zdtm cgroup00-04, cgroup_threads).
#[test]
fn cgroups_are_made_again_and_joined() {
    let _g = serial();
    let bin = build("cgroups", &[], "cgroups");
    let c = Case::new();
    let (child, pid) = start_workload(&c, &bin);
    std::thread::sleep(Duration::from_millis(200));
    let mnt = std::fs::read_to_string(c.path("before.out"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# mount ").map(String::from))
        .expect("the workload says where it mounted the hierarchy");
    dump_kill_with(&c, pid, child, &["--manage-cgroups"]);
    // What a machine that lost the cgroups (a reboot, another host) has: none of them.
    for d in ["stasis-wl/b/empty", "stasis-wl/b", "stasis-wl"] {
        std::fs::remove_dir(format!("{mnt}/{d}")).unwrap();
    }
    let (mut r, restored) = restore_in_background(&c);
    assert_eq!(restored, pid);
    signal(pid, libc::SIGUSR2);
    let st = wait_timeout(&mut r, Duration::from_secs(20));
    let after = since_dump(&c, "before.out");
    let _ = nix::mount::umount2(mnt.as_str(), nix::mount::MntFlags::MNT_DETACH);
    assert!(
        st.success() && !after.contains("FAIL"),
        "{st}\n{after}\n{}",
        std::fs::read_to_string(c.path("after.err")).unwrap_or_default()
    );
    for check in [
        "process-cgroup",
        "thread-cgroup",
        "dir-mode",
        "property",
        "empty-sibling",
    ] {
        assert!(after.contains(&format!("ok {check}")), "{check}: {after}");
    }
}

/// Internet sockets not bound yet come back as such and can be used (zdtm unbound_sock).
#[test]
fn unbound_internet_sockets() {
    let _g = serial();
    let r = workload("inet_unbound", &[]);
    for check in ["tcp", "udp", "tcp6", "tcp-usable"] {
        assert!(
            r.after.contains(&format!("ok {check}")),
            "{check}: {}",
            r.after
        );
    }
}
