//! `stasis`: the command line. Parses arguments into library options, runs the engine, prints
//! a summary (or JSON) and the whole error chain on failure. No engine logic lives here.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod run;

#[derive(Parser)]
#[command(
    name = "stasis",
    version,
    about = "Transparent checkpoint/restart for Linux processes"
)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Save a running process into an image directory.
    Dump(DumpArgs),
    /// Bring a process back from an image directory.
    Restore(RestoreArgs),
    /// Describe what an image holds.
    Show(ShowArgs),
    /// Probe the kernel features stasis uses.
    Check(CheckArgs),
    /// Run a job under supervision: periodic and on-preemption checkpoints, automatic
    /// restart after crashes, resume from the newest checkpoint on a rerun.
    Run(run::RunArgs),
    /// Show a supervised job's state and checkpoints.
    Status(run::StatusArgs),
    /// Ask the supervisor of a running job for a checkpoint now.
    Checkpoint(run::CheckpointArgs),
}

#[derive(clap::Args)]
struct DumpArgs {
    /// The process to dump.
    #[arg(long)]
    pid: i32,
    /// Where to write the image (must not exist, or be empty).
    #[arg(long)]
    dir: PathBuf,
    /// Kill the process once the image is durable.
    #[arg(long)]
    kill: bool,
    /// Save established TCP connections (TCP_REPAIR, needs CAP_NET_ADMIN); their peers see
    /// nothing of the dump. Without it, a live TCP connection fails the dump.
    #[arg(long)]
    tcp_established: bool,
    /// Store page runs that compress well LZ4-compressed: typically 2-4x smaller images for
    /// heaps, at some CPU cost (raw pages are the fastest to dump and restore).
    #[arg(long)]
    compress: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The image to restore.
    #[arg(long)]
    dir: PathBuf,
    /// Return once the process runs instead of waiting for it.
    #[arg(long)]
    detach: bool,
    /// Write the restored PID to this file.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// Restore into a fresh PID namespace (when the image's PIDs are taken here); stasis
    /// provides its init. The pidfile then holds the root's PID as seen from outside.
    #[arg(long)]
    pid_ns: bool,
    /// Print the summary as JSON (on stderr, since stdout belongs to the restored process).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// The image directory.
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CheckArgs {
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    stasis::default_sigpipe();
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STASIS_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("stasis: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Dump(a) => dump(a),
        Cmd::Restore(a) => restore(a),
        Cmd::Show(a) => show(a),
        Cmd::Check(a) => check(a),
        Cmd::Run(a) => run::run(a),
        Cmd::Status(a) => run::status(a),
        Cmd::Checkpoint(a) => run::checkpoint(a),
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn dump(a: DumpArgs) -> Result<ExitCode> {
    let r = stasis::dump(&stasis::DumpOptions {
        pid: a.pid,
        dir: a.dir.clone(),
        kill: a.kill,
        compress: a.compress,
        tcp_established: a.tcp_established,
        cgroup: None,
    })
    .with_context(|| format!("dump of pid {} failed; the process was left running", a.pid))?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "dumped pid {} ({} process{}): {} pages ({:.1} MiB, {:.1} MiB stored) in {:.1} ms, frozen {:.1} ms{} -> {}",
            r.pid,
            r.processes,
            if r.processes == 1 { "" } else { "es" },
            r.pages,
            mib(r.page_bytes),
            mib(r.stored_bytes),
            ms(r.total),
            ms(r.frozen),
            if r.killed { ", killed" } else { "" },
            r.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(a: RestoreArgs) -> Result<ExitCode> {
    if a.pid_ns {
        return restore_pid_ns(a);
    }
    let r = stasis::restore(&stasis::RestoreOptions { dir: a.dir.clone() }).with_context(|| {
        format!(
            "restore of {} failed; the image is untouched",
            a.dir.display()
        )
    })?;
    if let Some(p) = &a.pidfile {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", r.pid))
            .and_then(|_| std::fs::rename(&tmp, p))
            .with_context(|| format!("cannot write the pidfile {}", p.display()))?;
    }
    if a.json {
        eprintln!("{}", serde_json::to_string(&r)?);
    } else {
        tracing::info!(
            "restored pid {}: {} pages ({:.1} MiB) in {:.1} ms",
            r.pid,
            r.pages,
            mib(r.page_bytes),
            ms(r.total)
        );
    }
    if a.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let pid = nix::unistd::Pid::from_raw(r.pid);
    stasis_sys_forward(pid)?;
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                return Ok(ExitCode::from(code as u8))
            }
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                eprintln!("stasis: restored pid {} was killed by {sig:?}", r.pid);
                return Ok(ExitCode::from(128 + sig as u8));
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the restored process"),
        }
    }
}

fn write_pidfile(p: &std::path::Path, pid: i32) -> Result<()> {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, format!("{pid}\n"))
        .and_then(|_| std::fs::rename(&tmp, p))
        .with_context(|| format!("cannot write the pidfile {}", p.display()))
}

fn restore_pid_ns(a: RestoreArgs) -> Result<ExitCode> {
    let r = stasis::pidns::restore_in_new_pid_ns(&stasis::RestoreOptions { dir: a.dir.clone() })
        .with_context(|| {
            format!(
                "restore of {} into a new PID namespace failed; the image is untouched",
                a.dir.display()
            )
        })?;
    if let Some(p) = &a.pidfile {
        write_pidfile(p, r.root)?;
    }
    if a.json {
        eprintln!("{}", serde_json::to_string(&r)?);
    }
    if a.detach {
        return Ok(ExitCode::SUCCESS);
    }
    // The namespace's init exits with the root's status; signals go to it, it forwards them.
    let init = nix::unistd::Pid::from_raw(r.init);
    stasis_sys_forward(init)?;
    loop {
        match nix::sys::wait::waitpid(init, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                return Ok(ExitCode::from(code as u8))
            }
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                return Ok(ExitCode::from(128 + sig as u8))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the restored tree"),
        }
    }
}

fn stasis_sys_forward(pid: nix::unistd::Pid) -> Result<()> {
    stasis::forward_signals(
        pid,
        &[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT],
    )
    .context("cannot forward signals to the restored process")
}

fn show(a: ShowArgs) -> Result<ExitCode> {
    let img = stasis_image::Image::open(&a.dir)
        .with_context(|| format!("cannot read the image {}", a.dir.display()))?;
    if a.json {
        let v = serde_json::json!({
            "format": stasis_image::CURRENT_VERSION.to_string(),
            "inventory": img.inventory,
            "processes": img.processes.iter().map(|p| {
                let mut v = serde_json::to_value(p).unwrap_or_default();
                if let Some(ths) = v.get_mut("threads").and_then(|t| t.as_array_mut()) {
                    for t in ths { if let Some(o) = t.as_object_mut() { o.remove("xstate"); } }
                }
                v
            }).collect::<Vec<_>>(),
            "files": img.files,
            "pagemaps": img.pagemaps.iter().map(|pm| serde_json::json!({
                "pid": pm.pid, "pages_file": pm.pages_file, "runs": pm.runs.len(), "pages": pm.total_pages(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let inv = &img.inventory;
    println!(
        "image {} (format {}, stasis {}, {} {}, made {})",
        a.dir.display(),
        stasis_image::CURRENT_VERSION,
        inv.stasis_version,
        inv.arch,
        inv.kernel,
        inv.created_unix
    );
    for (p, pm) in img.processes.iter().zip(&img.pagemaps) {
        println!(
            "process {} ({}) exe {} cwd {} ppid {} pgid {} sid {} uid {}",
            p.pid, p.comm, p.exe, p.cwd, p.ppid, p.pgid, p.sid, p.creds.uid[0]
        );
        println!(
            "  threads {}, {} sigactions, {} itimers, {} POSIX timers, {} pending",
            p.threads.len(),
            p.sigactions.len(),
            p.itimers.len(),
            p.posix_timers.len(),
            p.shared_pending.len()
                + p.threads.iter().map(|t| t.pending.len()).sum::<usize>()
                + p.posix_timers
                    .iter()
                    .filter(|t| t.pending_overrun.is_some())
                    .count()
        );
        for t in &p.posix_timers {
            if let Some(n) = t.pending_overrun {
                println!(
                    "  POSIX timer {} signal {} pending with {n} overruns",
                    t.id, t.signo
                );
            }
        }
        println!(
            "  memory: {} VMAs, {} pages saved ({:.1} MiB, {:.1} MiB stored) in {} runs",
            p.vmas.len(),
            pm.total_pages(),
            mib(pm.total_pages() * stasis_image::PAGE_SIZE),
            mib(pm.stored_bytes()),
            pm.runs.len()
        );
        for v in &p.vmas {
            let saved: u64 = pm
                .runs
                .iter()
                .filter(|r| r.vaddr >= v.start && r.vaddr < v.end)
                .map(|r| r.pages as u64)
                .sum();
            let cow: u64 = v
                .cow
                .iter()
                .map(|(s, e)| (e - s) / stasis_image::PAGE_SIZE)
                .sum();
            let shared = if cow > 0 {
                format!(" (+{cow} shared with the parent)")
            } else {
                String::new()
            };
            println!(
                "    {:012x}-{:012x} {}{}{} {:<12} {:>8} pages saved{shared}  {}",
                v.start,
                v.end,
                if v.prot & 1 != 0 { 'r' } else { '-' },
                if v.prot & 2 != 0 { 'w' } else { '-' },
                if v.prot & 4 != 0 { 'x' } else { '-' },
                format!("{:?}", v.kind),
                saved,
                v.path.as_deref().unwrap_or("")
            );
        }
        println!("  fds:");
        for fd in &p.fds {
            let f = img.files.files.iter().find(|f| f.id == fd.file_id);
            let what = match f.map(|f| &f.kind) {
                Some(stasis_image::FileKindEntry::Path { path, .. }) => path.clone(),
                Some(stasis_image::FileKindEntry::Deleted { path, content, .. }) => {
                    format!("{path} (deleted, {} bytes saved)", content.len)
                }
                Some(stasis_image::FileKindEntry::Memfd { name, content, .. }) => {
                    format!("memfd:{name} ({} bytes saved)", content.len)
                }
                Some(stasis_image::FileKindEntry::Pipe { pipe_id, data, .. }) => format!(
                    "pipe:[{pipe_id}] ({} bytes buffered)",
                    data.as_ref().map_or(0, |d| d.len)
                ),
                Some(stasis_image::FileKindEntry::Eventfd { count, semaphore }) => {
                    format!(
                        "eventfd (count {count}{})",
                        if *semaphore { ", semaphore" } else { "" }
                    )
                }
                Some(stasis_image::FileKindEntry::Timerfd {
                    clockid,
                    value_ns,
                    interval_ns,
                    ..
                }) => format!(
                    "timerfd (clock {clockid}, next in {value_ns} ns, every {interval_ns} ns)"
                ),
                Some(stasis_image::FileKindEntry::Signalfd { mask }) => {
                    format!("signalfd (mask {mask:#x})")
                }
                Some(stasis_image::FileKindEntry::Epoll { items }) => {
                    format!("epoll ({} registrations)", items.len())
                }
                Some(stasis_image::FileKindEntry::Inotify { watches }) => {
                    format!("inotify ({} watches)", watches.len())
                }
                Some(stasis_image::FileKindEntry::UnixSocket {
                    ino,
                    state,
                    name,
                    peer,
                    queue,
                    ..
                }) => format!(
                    "unix socket {ino} (state {state}, name {:?}, peer {peer}, {} bytes queued)",
                    name.as_deref().map(String::from_utf8_lossy),
                    queue.as_ref().map_or(0, |q| q.len)
                ),
                Some(stasis_image::FileKindEntry::TcpListen { addr, port, .. }) => {
                    format!("TCP listener {addr:?} port {port}")
                }
                Some(stasis_image::FileKindEntry::Fifo { path, data, .. }) => {
                    format!(
                        "{path} (FIFO, {} bytes buffered)",
                        data.as_ref().map_or(0, |d| d.len)
                    )
                }
                Some(stasis_image::FileKindEntry::Pty { index, master, .. }) => {
                    format!("pty {index} ({})", if *master { "master" } else { "slave" })
                }
                Some(stasis_image::FileKindEntry::TcpEstablished {
                    local_port,
                    remote_port,
                    ..
                }) => {
                    format!("TCP connection port {local_port} -> {remote_port} (repair)")
                }
                Some(stasis_image::FileKindEntry::External { what }) => {
                    format!("{what} (external: the restore command's own)")
                }
                None => "?".into(),
            };
            println!(
                "    {:>4} {:<40} flags {:o} pos {}{}",
                fd.fd,
                what,
                f.map_or(0, |f| f.flags),
                f.map_or(0, |f| f.pos),
                if fd.cloexec { " cloexec" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let probes = stasis::check::check();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&probes)?);
    } else {
        for p in &probes {
            println!(
                "{:<5} {:<22} {}\n      enables: {}",
                if p.ok { "ok" } else { "FAIL" },
                p.name,
                p.detail,
                p.enables
            );
        }
    }
    let core_ok = probes.iter().take(5).all(|p| p.ok);
    Ok(if core_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
