//! The supervisor's control socket, `DIR/control`: how `stasis checkpoint DIR` asks a running
//! `stasis run` for a checkpoint now. One request per connection, one line each way: the
//! client writes `checkpoint`, the supervisor answers with one JSON line once the checkpoint
//! is durable (or has failed). Nothing else is accepted.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A request read from a new connection: Some(stream) if it asked for a checkpoint (answer
/// it later with [`answer`]), None if it asked for nothing we know (it got an error line).
pub fn accept(l: &UnixListener) -> Option<UnixStream> {
    let (mut s, _) = l.accept().ok()?;
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let _ = BufReader::new(&s).read_line(&mut line);
    if line.trim() == "checkpoint" {
        Some(s)
    } else {
        let r = Reply::from(Err(format!("unknown request {:?}", line.trim())));
        let _ = writeln!(
            s,
            "{}",
            serde_json::to_string(&r).expect("replies serialize")
        );
        None
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
    writeln!(s, "checkpoint").map_err(io)?;
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
