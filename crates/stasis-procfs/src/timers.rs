//! /proc/PID/timers: the POSIX timers (timer_create) of a process. Parser only; the timers'
//! remaining times are asked of the process itself by the engine.

use crate::ParseError;

/// How a timer notifies (the `notify:` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// SIGEV_SIGNAL to the process.
    Signal,
    /// SIGEV_SIGNAL|SIGEV_THREAD_ID: a signal to one thread (glibc's SIGEV_THREAD timers are
    /// these, directed at its helper thread). The kernel shows them as `signal/tid.N`.
    Thread(i32),
    /// SIGEV_THREAD passed to the kernel as is: to the kernel, a signal to the process
    /// (`thread/pid.N`).
    SigevThread,
    /// SIGEV_NONE.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixTimer {
    pub id: i32,
    pub signo: i32,
    pub sigval: u64,
    pub notify: Notify,
    pub clock: i32,
}

fn bad(line: usize, text: &str, reason: &'static str) -> ParseError {
    ParseError::BadLine {
        file: "timers",
        line,
        text: text.to_string(),
        reason,
    }
}

/// Parse the whole file: blocks of "ID:", "signal:", "notify:", "ClockID:" lines.
pub fn parse_timers(text: &str) -> Result<Vec<PosixTimer>, ParseError> {
    let mut out: Vec<PosixTimer> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(bad(n, line, "expected KEY: VALUE"));
        };
        let v = v.trim();
        if k == "ID" {
            out.push(PosixTimer {
                id: v.parse().map_err(|_| bad(n, line, "bad timer id"))?,
                signo: 0,
                sigval: 0,
                notify: Notify::Signal,
                clock: 0,
            });
            continue;
        }
        let t = out
            .last_mut()
            .ok_or_else(|| bad(n, line, "field before the first ID"))?;
        match k {
            "signal" => {
                let (s, val) = v
                    .split_once('/')
                    .ok_or_else(|| bad(n, line, "expected SIGNO/VALUE"))?;
                t.signo = s.parse().map_err(|_| bad(n, line, "bad signal number"))?;
                t.sigval =
                    u64::from_str_radix(val, 16).map_err(|_| bad(n, line, "bad signal value"))?;
            }
            "notify" => {
                let (how, target) = v
                    .split_once('/')
                    .ok_or_else(|| bad(n, line, "expected HOW/TARGET"))?;
                // The kernel prints `nstr[notify & ~SIGEV_THREAD_ID]/(tid|pid).N`: a thread-
                // directed timer is told by "tid", not by "thread" (that is SIGEV_THREAD).
                let (whom, id) = target
                    .split_once('.')
                    .and_then(|(w, id)| Some((w, id.parse::<i32>().ok()?)))
                    .ok_or_else(|| bad(n, line, "bad notify target"))?;
                t.notify = match (how, whom) {
                    ("signal", "tid") => Notify::Thread(id),
                    ("signal", "pid") => Notify::Signal,
                    ("thread", "pid") => Notify::SigevThread,
                    ("none", "pid") => Notify::None,
                    _ => return Err(bad(n, line, "unknown notify kind")),
                };
            }
            "ClockID" => t.clock = v.parse().map_err(|_| bad(n, line, "bad clock id"))?,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_file() {
        let text = "ID: 1\nsignal: 14/0000000000000000\nnotify: signal/pid.16158\nClockID: 0\n\
                    ID: 0\nsignal: 34/0000000000001234\nnotify: signal/tid.16160\nClockID: 1\n\
                    ID: 2\nsignal: 10/0000000000000000\nnotify: thread/pid.16158\nClockID: 0\n";
        let t = parse_timers(text).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].notify, Notify::SigevThread);
        assert_eq!(
            (t[0].id, t[0].signo, t[0].notify, t[0].clock),
            (1, 14, Notify::Signal, 0)
        );
        assert_eq!(
            (t[1].id, t[1].sigval, t[1].notify),
            (0, 0x1234, Notify::Thread(16160))
        );
        assert!(parse_timers("signal: 1/0\n").is_err());
        assert_eq!(parse_timers("").unwrap(), vec![]);
    }
}
