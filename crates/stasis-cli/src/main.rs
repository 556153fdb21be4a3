//! `stasis`: the command line. Parses arguments into library options, runs the engine, prints
//! a summary (or JSON) and the whole error chain on failure. No engine logic lives here.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod human;
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
    #[command(flatten)]
    criu: CriuArgs,
}

/// Options with CRIU's names and meaning, so that scripts and test suites written for CRIU run
/// unchanged. Each is accepted by dump and restore alike, as CRIU does.
#[derive(clap::Args, Clone, Default)]
#[command(next_help_heading = "CRIU-compatible options")]
struct CriuArgs {
    /// Save file locks (flock, POSIX, OFD); without it a process holding one is refused, as
    /// with CRIU (a lock may guard a file that processes outside the tree share).
    #[arg(long)]
    file_locks: bool,
    /// A file unlinked while open but still linked elsewhere is saved as a hard link to it
    /// next to its old path, so restore opens the very same file (without it: copied).
    #[arg(long)]
    link_remap: bool,
    /// Save and restore the tree's cgroup membership (MODE: soft, full, strict, ignore, none).
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "soft")]
    manage_cgroups: Option<String>,
    /// Where the tree's cgroups go on restore ([CONTROLLER:]PATH).
    #[arg(long, value_name = "[CTRL:]PATH")]
    cgroup_root: Vec<String>,
    /// The largest deleted file whose contents a dump saves, counting data, not holes (as
    /// CRIU: 1M by default; `--ghost-limit 0` for no limit).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1M")]
    ghost_limit: u64,
    /// Save deleted files' holes as holes (the default: stasis always keeps holes).
    #[arg(long)]
    ghost_fiemap: bool,
    /// Save deleted files' holes as data.
    #[arg(long)]
    no_ghost_fiemap: bool,
    /// Allow unix sockets connected to something outside the tree.
    #[arg(long)]
    ext_unix_sk: bool,
    /// Restore established TCP connections closed.
    #[arg(long)]
    tcp_close: bool,
    /// Leave out TCP connections not yet accepted.
    #[arg(long)]
    skip_in_flight: bool,
    /// How the network is locked while the tree is down (iptables or nftables).
    #[arg(long, value_name = "TOOL")]
    network_lock: Option<String>,
    /// Join an existing namespace on restore (net:PATH).
    #[arg(long, value_name = "NS:PATH")]
    join_ns: Vec<String>,
    /// Resolve inotify and fanotify watches to paths at dump time: stasis always does (by
    /// their file handles), so this changes nothing.
    #[arg(long)]
    force_irmap: bool,
    /// Where CRIU searches for watched files it cannot resolve by handle: stasis resolves
    /// them by handle, so this is accepted and not needed.
    #[arg(long, value_name = "PATH")]
    irmap_scan_path: Vec<PathBuf>,
}

impl CriuArgs {
    /// `--manage-cgroups[=MODE]`, None when not given.
    fn cgroup_mode(&self) -> Result<Option<stasis::kinds::cgroups::Mode>> {
        self.manage_cgroups
            .as_deref()
            .map(|m| m.parse().map_err(anyhow::Error::from))
            .transpose()
    }

    /// What restore does with the image's cgroups: soft unless told otherwise.
    fn restore_cgroups(
        &self,
    ) -> Result<(stasis::kinds::cgroups::Mode, stasis::kinds::cgroups::Roots)> {
        Ok((
            self.cgroup_mode()?
                .unwrap_or(stasis::kinds::cgroups::Mode::Soft),
            stasis::kinds::cgroups::Roots::parse(&self.cgroup_root),
        ))
    }
}

/// A size with an optional K, M or G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("{s:?} is not a size (a number with an optional K, M or G)"))
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
    /// Hand the restore command's fd N to the restored tree in place of the file it had at
    /// dump time under NAME, as /proc/PID/fd showed it (`fd[3]:pipe:[1234]`,
    /// `fd[4]:/var/log/job.log`); `stasis show` lists the names. Repeatable.
    #[arg(long, value_name = "fd[N]:NAME")]
    inherit_fd: Vec<stasis::InheritFd>,
    /// Restore an image another user owns even where it asks for more than that user had
    /// (other uids or groups, capabilities, files the user cannot open). Without it, root's
    /// restore of such an image is refused naming the pid and field.
    #[arg(long)]
    trust_image: bool,
    /// Accepted for CRIU's scripts: restore rebuilds every connection the image holds.
    #[arg(long)]
    tcp_established: bool,
    #[command(flatten)]
    criu: CriuArgs,
}

#[derive(clap::Args)]
struct ShowArgs {
    /// The image directory.
    dir: PathBuf,
    /// Print the whole image as JSON (every record, durations in seconds).
    #[arg(long)]
    json: bool,
    /// Also read every page run and blob and check its checksum (records are always
    /// checked): exits 1 naming the first damaged file and offset.
    #[arg(long)]
    verify: bool,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Print the probes as JSON.
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

/// A progress line on a terminal while pages are copied: bytes so far and the rate.
struct Progress {
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    shown: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(what: String, on_terminal: bool) -> Progress {
        use std::sync::atomic::Ordering;
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shown = on_terminal.then(|| {
            let (bytes, stop) = (bytes.clone(), stop.clone());
            std::thread::spawn(move || {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {msg}: {bytes} copied ({bytes_per_sec}), {elapsed}",
                    )
                    .expect("a valid template"),
                );
                bar.set_message(what);
                while !stop.load(Ordering::Relaxed) {
                    bar.set_position(bytes.load(Ordering::Relaxed));
                    bar.tick();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
        Progress { bytes, stop, shown }
    }

    fn done(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.shown.take() {
            let _ = t.join();
        }
    }
}

fn dump(a: DumpArgs) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let cgroups = match a.criu.cgroup_mode()? {
        Some(m) if m != stasis::kinds::cgroups::Mode::Ignore => {
            Some(stasis::kinds::cgroups::Roots::parse(&a.criu.cgroup_root))
        }
        _ => None,
    };
    let progress = Progress::start(
        format!("dumping pid {}", a.pid),
        !a.json && std::io::stderr().is_terminal(),
    );
    let r = stasis::dump(&stasis::DumpOptions {
        pid: a.pid,
        dir: a.dir.clone(),
        kill: a.kill,
        compress: a.compress,
        tcp_established: a.tcp_established,
        cgroup: None,
        ghost_limit: (a.criu.ghost_limit > 0).then_some(a.criu.ghost_limit),
        file_locks: a.criu.file_locks,
        link_remap: a.criu.link_remap,
        progress: Some(progress.bytes.clone()),
        cgroups,
    });
    progress.done();
    let r = r.map_err(|e| {
        // "Left running" only where there is a process to leave.
        let gone = matches!(
            e,
            stasis::DumpError::Process(stasis::kinds::process::ProcessError::NoSuchProcess { .. })
        );
        let what = if gone {
            format!("nothing to dump at pid {}", a.pid)
        } else {
            format!("dump of pid {} failed; the process was left running", a.pid)
        };
        anyhow::Error::new(e).context(what)
    })?;

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
    // The pidfile's temporary is made before anything is restored: a pidfile that cannot be
    // written fails the restore before a process runs.
    let pidfile = a.pidfile.as_deref().map(Pidfile::prepare).transpose()?;
    let r = stasis::restore(&stasis::RestoreOptions {
        dir: a.dir.clone(),
        inherit: a.inherit_fd.clone(),
        cgroups: a.criu.restore_cgroups()?,
        trust_image: a.trust_image,
    })
    .with_context(|| {
        format!(
            "restore of {} failed; the image is untouched",
            a.dir.display()
        )
    })?;
    if let Some(p) = pidfile {
        if let Err(e) = p.commit(r.pid) {
            // A restore that reports failure leaves nothing running.
            stasis::kill_restored(&a.dir);
            return Err(e);
        }
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

/// A pidfile written atomically: a temporary of ours beside it (O_EXCL|O_NOFOLLOW, so a
/// planted symlink or file is never followed or reused), renamed over it once the pid is in.
struct Pidfile {
    path: PathBuf,
    tmp: PathBuf,
    file: std::fs::File,
}

impl Pidfile {
    fn prepare(path: &std::path::Path) -> Result<Pidfile> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pidfile".into());
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o644)
            .open(&tmp)
            .with_context(|| format!("cannot write the pidfile {}", path.display()))?;
        Ok(Pidfile {
            path: path.to_path_buf(),
            tmp,
            file,
        })
    }

    fn commit(self, pid: i32) -> Result<()> {
        use std::io::Write;
        let mut f = &self.file;
        let done = f
            .write_all(format!("{pid}\n").as_bytes())
            .and_then(|_| std::fs::rename(&self.tmp, &self.path));
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done.with_context(|| format!("cannot write the pidfile {}", self.path.display()))
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Not committed (the restore failed): no temporary left behind.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn restore_pid_ns(a: RestoreArgs) -> Result<ExitCode> {
    let pidfile = a.pidfile.as_deref().map(Pidfile::prepare).transpose()?;
    let r = stasis::pidns::restore_in_new_pid_ns(&stasis::RestoreOptions {
        dir: a.dir.clone(),
        inherit: a.inherit_fd.clone(),
        cgroups: a.criu.restore_cgroups()?,
        trust_image: a.trust_image,
    })
    .with_context(|| {
        format!(
            "restore of {} into a new PID namespace failed; the image is untouched",
            a.dir.display()
        )
    })?;
    if let Some(p) = pidfile {
        if let Err(e) = p.commit(r.root) {
            // The namespace's init takes the whole restored tree with it.
            let init = nix::unistd::Pid::from_raw(r.init);
            let _ = nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(init, None);
            return Err(e);
        }
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
    let verified = if a.verify {
        Some(
            img.verify()
                .with_context(|| format!("the image {} failed verification", a.dir.display()))?,
        )
    } else {
        None
    };
    if a.json {
        let v = serde_json::json!({
            "verified": verified.map(|v| serde_json::json!({
                "runs": v.runs, "page_bytes": v.page_bytes, "blobs": v.blobs, "blob_bytes": v.blob_bytes,
            })),
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
        human::date(inv.created_unix)
    );
    if let Some(v) = verified {
        println!(
            "verified: every checksum holds ({} records, {} page runs of {:.1} MiB, {} blobs of {} bytes)",
            2 + 2 * img.processes.len(),
            v.runs,
            mib(v.page_bytes),
            v.blobs,
            v.blob_bytes
        );
    }
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
            let what = f.map_or_else(|| "?".into(), |f| f.kind.describe());
            println!(
                "    {:>4} {:<40} {} pos {}{}",
                fd.fd,
                what,
                human::open_flags(f.map_or(0, |f| f.flags)),
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
