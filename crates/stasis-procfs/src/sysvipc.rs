//! /proc/sysvipc/shm: the SysV shared memory segments of the reader's IPC namespace. Parser
//! only.

use crate::ParseError;

/// One segment, as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmSegment {
    pub key: i32,
    pub id: i32,
    /// Permission bits plus the kernel's SHM_DEST (0o1000, removed while attached) and
    /// SHM_LOCKED (0o2000) marks.
    pub mode: u32,
    pub size: u64,
    pub nattch: u64,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
}

fn bad(line: usize, text: &str, reason: &'static str) -> ParseError {
    ParseError::BadLine {
        file: "sysvipc/shm",
        line,
        text: text.to_string(),
        reason,
    }
}

/// Parse the whole file (a header line, then one line per segment).
pub fn parse_shm(text: &str) -> Result<Vec<ShmSegment>, ParseError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let n = n + 1;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 11 {
            return Err(bad(n, line, "expected at least 11 columns"));
        }
        let num = |i: usize| -> Result<u64, ParseError> {
            f[i].parse().map_err(|_| bad(n, line, "bad number"))
        };
        out.push(ShmSegment {
            key: f[0].parse().map_err(|_| bad(n, line, "bad key"))?,
            id: f[1].parse().map_err(|_| bad(n, line, "bad shmid"))?,
            mode: u32::from_str_radix(f[2], 8).map_err(|_| bad(n, line, "bad perms"))?,
            size: num(3)?,
            nattch: num(6)?,
            uid: num(7)? as u32,
            gid: num(8)? as u32,
            cuid: num(9)? as u32,
            cgid: num(10)? as u32,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segments_including_a_destroyed_one() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    1509949440          3  1640                 12388  4321  4322      2     0     0     0     0 1764000000          0 1764000000                 12288                     0\n\
                    \x20        0          4  1600                 65536  4321  4321      1  1000   100  1000   100 1764000000          0 1764000001                 65536                     0\n";
        let v = parse_shm(text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].key, 1509949440);
        assert_eq!(v[0].id, 3);
        assert_eq!(v[0].mode, 0o1640);
        assert_eq!(v[0].size, 12388);
        assert_eq!(v[0].nattch, 2);
        assert_eq!(
            (v[1].uid, v[1].gid, v[1].cuid, v[1].cgid),
            (1000, 100, 1000, 100)
        );
        assert!(parse_shm("header\n1 2 3\n").is_err());
    }
}
