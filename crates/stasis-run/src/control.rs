//! The supervisor's control socket, `DIR/control`: how `stasis checkpoint DIR` asks a running
//! `stasis run` for a checkpoint now. One request per connection, one line each way: the
//! client writes `checkpoint`, the supervisor answers with one JSON line once the checkpoint
//! is durable (or has failed). Nothing else is accepted.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The answer to a checkpoint request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// The checkpoint taken (its directory name), when ok.
    #[serde(default)]
    pub checkpoint: Option<crate::catalog::CheckpointRecord>,
    /// What went wrong, when not ok.
    #[serde(default)]
    pub error: Option<String>,
}

impl From<Result<crate::catalog::CheckpointRecord, String>> for Reply {
    fn from(r: Result<crate::catalog::CheckpointRecord, String>) -> Reply {
        match r {
            Ok(rec) => Reply {
                ok: true,
                checkpoint: Some(rec),
                error: None,
            },
            Err(e) => Reply {
                ok: false,
                checkpoint: None,
                error: Some(e),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no stasis run is supervising {dir} (nothing listens on {path}); start the job with stasis run --images {dir}")]
    NotRunning {
        dir: PathBuf,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the supervisor of {dir} failed")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the supervisor of {dir} closed the connection without an answer (did it exit?)")]
    NoAnswer { dir: PathBuf },
    #[error("the supervisor of {dir} answered something that is not a reply: {line:?}")]
    BadReply { dir: PathBuf, line: String },
}

/// Run `f` with a name for `path` that fits a unix socket address (108 bytes): the path
/// itself if it is short enough, else the same file reached through an O_PATH descriptor of
/// its directory (/proc/self/fd/N/NAME), so an images directory may be anywhere.
fn short<T>(path: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().as_bytes().len() < 100 {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    let via = Path::new(&format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&d)
    ))
    .join(name);
    f(&via)
}

/// Listen on `path` (replacing a socket left by a supervisor that died).
pub fn listen(path: &Path) -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let l = short(path, |p| UnixListener::bind(p))?;
    // Only its owner may ask for checkpoints (the directory is 0700 too).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// How long a connection may take to send its request before it is dropped.
pub const REQUEST_WAIT: Duration = Duration::from_secs(2);

/// A connection whose request has not arrived yet. It is read without blocking, from the
/// supervisor's loop: an idle client costs nothing but a descriptor until [`REQUEST_WAIT`]
/// ends, and never delays another client's checkpoint.
pub struct Pending {
    stream: UnixStream,
    buf: Vec<u8>,
    deadline: Instant,
}

/// What a pending connection has come to.
pub enum Progress {
    /// Its request is not complete yet.
    Waiting(Pending),
    /// It asked for a checkpoint: answer it later with [`answer`].
    Checkpoint(UnixStream),
    /// It asked for nothing we know, went away or took too long (it got an error line).
    Gone,
}

/// Accept every connection waiting on `l`. Only the supervisor's own user and root may ask
/// for anything (SO_PEERCRED, as seen from the supervisor's user namespace): anyone else is
/// answered with an error and logged, whatever the socket's mode lets them reach.
pub fn accept_all(l: &UnixListener) -> Vec<Pending> {
    let mut out = Vec::new();
    while let Ok((s, _)) = l.accept() {
        if s.set_nonblocking(true).is_err() {
            continue;
        }
        let me = nix::unistd::geteuid().as_raw();
        let peer = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials);
        match peer {
            Ok(c) if c.uid() == 0 || c.uid() == me => out.push(Pending {
                stream: s,
                buf: Vec::new(),
                deadline: Instant::now() + REQUEST_WAIT,
            }),
            other => {
                let who = match other {
                    Ok(c) => format!("uid {} (pid {})", c.uid(), c.pid()),
                    Err(e) => format!("a peer whose credentials are unknown ({e})"),
                };
                eprintln!(
                    "stasis run: refused a control request from {who}: only uid {me} and root may ask"
                );
                refuse(
                    s,
                    &format!("permission denied: only uid {me} (the job's owner) and root may ask this supervisor for anything"),
                );
            }
        }
    }
    out
}

fn refuse(mut s: UnixStream, why: &str) {
    let r = Reply::from(Err(why.to_string()));
    // A short line fits the socket buffer: this never blocks even on a non-blocking socket.
    let _ = writeln!(
        s,
        "{}",
        serde_json::to_string(&r).expect("replies serialize")
    );
}

impl Pending {
    /// When this connection is dropped if its request is still incomplete.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.stream)
    }

    /// Whether a whole request line (or more than any request) has arrived.
    fn has_line(&self) -> bool {
        self.buf.contains(&b'\n') || self.buf.len() > 4096
    }

    /// Read whatever has arrived (never blocking) and see what it amounts to.
    pub fn advance(mut self) -> Progress {
        use std::io::Read;
        let mut chunk = [0u8; 256];
        let eof = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.has_line() {
                        break false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(_) => return Progress::Gone,
            }
        };
        if !eof && !self.has_line() {
            if Instant::now() < self.deadline {
                return Progress::Waiting(self);
            }
            refuse(
                self.stream,
                &format!("no request within {} s", REQUEST_WAIT.as_secs()),
            );
            return Progress::Gone;
        }
        if eof && self.buf.is_empty() {
            return Progress::Gone;
        }
        let line = String::from_utf8_lossy(&self.buf);
        let line = line.lines().next().unwrap_or("").trim().to_string();
        if line == "checkpoint" && self.stream.set_nonblocking(false).is_ok() {
            Progress::Checkpoint(self.stream)
        } else {
            refuse(self.stream, &format!("unknown request {line:?}"));
            Progress::Gone
        }
    }
}

/// Answer a waiting client (it may have gone: that is not an error).
pub fn answer(mut s: UnixStream, r: &Reply) {
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = writeln!(
        s,
        "{}",
        serde_json::to_string(r).expect("replies serialize")
    );
}

/// Ask the supervisor of `dir` for a checkpoint and wait (up to `timeout`) for it.
pub fn request_checkpoint(dir: &Path, timeout: Duration) -> Result<Reply, ControlError> {
    let path = dir.join("control");
    let mut s =
        short(&path, |p| UnixStream::connect(p)).map_err(|source| ControlError::NotRunning {
            dir: dir.to_path_buf(),
            path: path.clone(),
            source,
        })?;
    let io = |source| ControlError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    if let Err(e) = writeln!(s, "checkpoint") {
        // A supervisor that refuses us answers and closes at once, maybe before we write:
        // its answer is still there to read.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(io(e));
        }
    }
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(io)?;
    if line.trim().is_empty() {
        return Err(ControlError::NoAnswer {
            dir: dir.to_path_buf(),
        });
    }
    serde_json::from_str(line.trim()).map_err(|_| ControlError::BadReply {
        dir: dir.to_path_buf(),
        line,
    })
}
