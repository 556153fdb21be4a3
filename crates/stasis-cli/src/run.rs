//! `stasis run`, `stasis status` and `stasis checkpoint`: the job supervisor's commands.

use anyhow::{bail, Context, Result};
use stasis_run::{catalog::Catalog, IntervalPolicy, RestartPolicy};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: the job's own when it ends by itself (128+N if a signal N \
killed it and it was not restarted); 75 when a preemption signal stopped it and the images \
directory holds a checkpoint to resume from (rerun the same command); 70 when stasis itself \
failed (see its message)."
)]
pub struct RunArgs {
    /// The job's images directory: checkpoints, status and control socket live there. A
    /// rerun with the same directory and command resumes from the newest valid checkpoint.
    #[arg(long)]
    images: PathBuf,
    /// Start the job anew even if the directory holds checkpoints of it.
    #[arg(long)]
    fresh: bool,
    /// Take a checkpoint this often while the job runs (e.g. 30s, 10m, 1h).
    #[arg(long, value_parser = stasis_run::parse_duration, conflicts_with = "interval")]
    every: Option<std::time::Duration>,
    /// `auto`: choose the checkpoint interval from the measured checkpoint cost and --mtbf
    /// (Daly's higher-order formula), updated as costs change.
    #[arg(long, requires = "mtbf")]
    interval: Option<String>,
    /// Mean time between failures of the machine or allocation, for --interval auto.
    #[arg(long, value_parser = stasis_run::parse_duration)]
    mtbf: Option<std::time::Duration>,
    /// How long the final checkpoint on a preemption signal may take.
    #[arg(long, value_parser = stasis_run::parse_duration, default_value = "60s")]
    grace: std::time::Duration,
    /// Signals that mean "preempted: checkpoint and stop" (names or numbers, comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "TERM,USR1")]
    preempt_signals: Vec<String>,
    /// What to do when the job is killed by a signal nobody sent through stasis.
    #[arg(long, value_parser = ["on-crash", "never"], default_value = "on-crash")]
    restart: String,
    /// Give up restarting after this many crashes in one run.
    #[arg(long, default_value_t = 3)]
    max_restarts: u32,
    /// How many checkpoints to keep (older ones are removed once a newer one is durable).
    #[arg(long, default_value_t = 2)]
    keep: usize,
    /// Store pages LZ4-compressed where that saves space.
    #[arg(long)]
    compress: bool,
    /// Save established TCP connections (see stasis dump --tcp-established).
    #[arg(long)]
    tcp_established: bool,
    /// Do not put the job in a time namespace.
    #[arg(long)]
    no_time_ns: bool,
    /// Do not put the job in a cgroup of its own.
    #[arg(long)]
    no_cgroup: bool,
    /// The job: a command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The job's images directory.
    images: PathBuf,
    /// Print the job's state and checkpoints as JSON (durations in seconds, times in
    /// seconds since the epoch).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct CheckpointArgs {
    /// The job's images directory.
    images: PathBuf,
    /// How long to wait for the checkpoint to be durable.
    #[arg(long, value_parser = stasis_run::parse_duration, default_value = "10m")]
    timeout: std::time::Duration,
    /// Print the new checkpoint's record as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.trim().to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .with_context(|| format!("--preempt-signals: {s:?} is not a signal name"))
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let interval = match (a.every, a.interval.as_deref(), a.mtbf) {
        (Some(d), _, _) if d.is_zero() => bail!("--every must be more than 0"),
        (Some(d), _, _) => IntervalPolicy::Every(d),
        (None, Some("auto"), Some(mtbf)) => IntervalPolicy::Auto { mtbf },
        (None, Some(other), _) => {
            bail!("--interval {other:?}: only `auto` is known (or use --every DURATION)")
        }
        (None, None, _) => IntervalPolicy::Never,
    };
    let preempt_signals = a
        .preempt_signals
        .iter()
        .map(|s| parse_signal(s))
        .collect::<Result<Vec<_>>>()?;
    let opts = stasis_run::RunOptions {
        images: a.images.clone(),
        command: a.command,
        fresh: a.fresh,
        interval,
        grace: a.grace,
        preempt_signals,
        restart: if a.restart == "never" {
            RestartPolicy::Never
        } else {
            RestartPolicy::OnCrash
        },
        max_restarts: a.max_restarts,
        keep: a.keep.max(1),
        compress: a.compress,
        tcp_established: a.tcp_established,
        time_ns: !a.no_time_ns,
        cgroup: !a.no_cgroup,
    };
    let code = stasis_run::run(&opts)
        .with_context(|| format!("stasis run with images {} failed", a.images.display()))?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

pub fn status(a: StatusArgs) -> Result<ExitCode> {
    let cat = Catalog::open(&a.images).with_context(|| {
        format!(
            "{} is not a stasis run images directory",
            a.images.display()
        )
    })?;
    let supervisor = cat.supervisor();
    let status = cat.status()?;
    let job = cat.job()?;
    let ckpts = cat.checkpoints()?;
    if a.json {
        let v = serde_json::json!({
            "images": cat.dir(),
            "supervised": supervisor.is_some(),
            "supervisor_pid": supervisor,
            "job": job.as_ref().map(|j| &j.record),
            "status": status,
            "history": cat.history(),
            "checkpoints": ckpts.iter().map(|c| serde_json::json!({
                "dir": c.dir,
                "seq": c.seq,
                "record": c.record,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(j) = &job {
        println!("job: {}", shell_words(&j.record.command));
        println!("  started in {}", j.record.cwd.display());
        if let Some(how) = &j.completed {
            println!("  finished ({how}): a rerun starts it anew");
        }
    }
    match (&supervisor, &status) {
        (Some(pid), Some(s)) => println!("supervisor: running (pid {pid}); job {}", s.state),
        (None, Some(s)) => println!("supervisor: not running; last state {}", s.state),
        (_, None) => println!("supervisor: never ran here"),
    }
    if let Some(s) = &status {
        if let Some(p) = s.job_pid {
            println!("  job pid {p} (in its PID namespace)");
        }
        if let Some(r) = &s.resumed_from {
            println!("  resumed from {r}");
        }
        if s.restarts > 0 {
            println!("  restarts after crashes: {}", s.restarts);
        }
        match s.interval_secs {
            Some(i) => println!("  interval: {i:.1} s: {}", s.interval_reason),
            None => println!("  interval: {}", s.interval_reason),
        }
        if let (Some(next), true) = (s.next_checkpoint_unix, supervisor.is_some()) {
            let now = stasis_run::catalog::now_unix_f64();
            println!("  next checkpoint in {:.1} s", (next - now).max(0.0));
        }
        if let Some(c) = &s.cgroup {
            println!("  cgroup: {c}");
        }
        if let Some(t) = &s.time_ns {
            println!("  time namespace: {t}");
        }
        if s.rootless {
            println!("  rootless (user namespace)");
        }
        if let Some(e) = &s.exit {
            println!("  ended: {e}");
        }
        if let Some(since) = s.unprotected_since_unix {
            println!(
                "  UNPROTECTED since {} ({} checkpoints in a row failed{}): {}",
                crate::human::date(since),
                s.failed_in_a_row,
                if s.taken == 0 && s.resumed_from.is_none() {
                    "; none was ever taken, a crash starts the job over"
                } else {
                    ""
                },
                s.last_error.as_deref().unwrap_or("unknown")
            );
        } else if let Some(e) = &s.last_error {
            println!("  last error: {e}");
        }
    }
    let hist = cat.history();
    if !hist.is_empty() {
        let mut frozen: Vec<f64> = hist.iter().map(|r| r.frozen_secs).collect();
        frozen.sort_by(f64::total_cmp);
        println!(
            "  {} checkpoints taken in all; job frozen {:.3} s median, {:.3} s max per checkpoint",
            hist.len(),
            frozen[frozen.len() / 2],
            frozen[frozen.len() - 1]
        );
    }
    println!("checkpoints ({}):", ckpts.len());
    for c in &ckpts {
        let name = c.name();
        match &c.record {
            Some(r) => println!(
                "  {name}  {}  {:>9.1} MiB  dump {:.3} s  frozen {:.3} s  ({})",
                crate::human::date(r.created_unix),
                r.bytes as f64 / (1024.0 * 1024.0),
                r.dump_secs,
                r.frozen_secs,
                r.reason
            ),
            None => println!("  {name}  (no record: taken by a supervisor that died right after)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn shell_words(v: &[String]) -> String {
    v.iter()
        .map(|w| {
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
                && !w.is_empty()
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn checkpoint(a: CheckpointArgs) -> Result<ExitCode> {
    let r = stasis_run::control::request_checkpoint(&a.images, a.timeout)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    match (r.ok, &r.checkpoint, &r.error) {
        (true, Some(c), _) => {
            if !a.json {
                println!(
                    "checkpoint {} ({:.1} MiB) in {:.3} s, job frozen {:.3} s",
                    a.images.join(&c.name).display(),
                    c.bytes as f64 / (1024.0 * 1024.0),
                    c.dump_secs,
                    c.frozen_secs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        (_, _, e) => bail!(
            "the supervisor of {} could not take a checkpoint: {}",
            a.images.display(),
            e.as_deref().unwrap_or("no reason given")
        ),
    }
}
