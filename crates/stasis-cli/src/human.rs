//! How the command line shows numbers to a person: dates and open flags by name.

/// Seconds since the epoch as an RFC 3339 date, UTC (`2026-12-06T23:33:19Z`).
pub fn date(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// Open flags as fdinfo shows them (octal) by name: `O_WRONLY|O_APPEND`.
pub fn open_flags(flags: u32) -> String {
    let f = flags as i32;
    let mut out = vec![match f & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }
    .to_string()];
    let named = [
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_PATH, "O_PATH"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_DIRECT, "O_DIRECT"),
        (libc::O_DSYNC, "O_DSYNC"),
        (libc::O_SYNC & !libc::O_DSYNC, "O_SYNC"),
        (libc::O_NOATIME, "O_NOATIME"),
        (libc::O_ASYNC, "O_ASYNC"),
        // libc says 0 on 64-bit targets, where the kernel still shows it (0o100000).
        (0o100000, "O_LARGEFILE"),
        (libc::O_TMPFILE & !libc::O_DIRECTORY, "O_TMPFILE"),
    ];
    let mut rest = f & !libc::O_ACCMODE;
    for (bit, name) in named {
        if rest & bit == bit && bit != 0 {
            out.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#o}"));
    }
    out.join("|")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::date(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn flags() {
        assert_eq!(super::open_flags(0o102001), "O_WRONLY|O_APPEND|O_LARGEFILE");
        assert_eq!(super::open_flags(0o4000), "O_RDONLY|O_NONBLOCK");
        assert_eq!(super::open_flags(0o10000000), "O_RDONLY|O_PATH");
    }
}
