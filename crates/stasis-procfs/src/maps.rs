//! Parser for `/proc/PID/maps` (and the header lines of `/proc/PID/smaps`).
//!
//! Owns [`MapsEntry`] and the line grammar
//! `start-end perms offset major:minor inode [padding path]`. It must not interpret what a
//! mapping is for (heap, vDSO, file-backed, ...) beyond the trivial [`MapsEntry::is_special`]
//! test, and it must not stat or open the mapped paths: that is I/O and belongs elsewhere.

use crate::num;
use crate::ParseError;

const FILE: &str = "maps";

/// The kernel appends this to the path of a mapping whose file has been unlinked. A file that is
/// genuinely *named* "x (deleted)" is indistinguishable in the text; the kernel gives no escape,
/// so callers that care must confirm with `map_files/` or a stat of the path.
const DELETED_SUFFIX: &str = " (deleted)";

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsEntry {
    pub start: u64,
    pub end: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// `s` (MAP_SHARED) rather than `p` (private, copy-on-write) in the fourth perms column.
    pub shared: bool,
    pub offset: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    /// The text after the inode column, trimmed of leading spaces; None when empty. Kept verbatim
    /// except that a trailing " (deleted)" is removed and reported in `deleted`.
    pub path: Option<String>,
    pub deleted: bool,
}

impl MapsEntry {
    /// Size of the mapping in bytes.
    pub fn len(&self) -> u64 {
        // The kernel guarantees end >= start; saturate anyway so a hand-written fixture cannot
        // make this panic in debug builds.
        self.end.saturating_sub(self.start)
    }

    /// True for a zero-length range, which the kernel never reports but fixtures might.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for kernel-named regions such as `[heap]`, `[stack]`, `[vdso]`, `[vvar]`,
    /// `[vvar_vclock]`, `[vsyscall]` or `[anon:name]`, which have no backing file.
    pub fn is_special(&self) -> bool {
        self.path.as_deref().is_some_and(|p| p.starts_with('['))
    }
}

/// Parse the whole text of `/proc/PID/maps`. Empty text (a zombie or kernel thread) gives an
/// empty list.
pub fn parse_maps(text: &str) -> Result<Vec<MapsEntry>, ParseError> {
    let mut out = Vec::new();
    // Split on '\n' only: `lines()` would also eat a '\r' that ends a file name, and paths are
    // supposed to come back verbatim. The kernel escapes '\n' inside paths, so this is safe.
    for (i, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        out.push(parse_line_in(FILE, i + 1, line)?);
    }
    Ok(out)
}

/// Parse a single maps line (without its trailing newline; a trailing `\n` is tolerated).
pub fn parse_maps_line(line: &str) -> Result<MapsEntry, ParseError> {
    parse_line_in(FILE, 1, line.strip_suffix('\n').unwrap_or(line))
}

/// Take the next space-delimited token from `rest`, advancing it past the token and one space.
/// The five leading columns are separated by exactly one space, but we skip runs of spaces to be
/// lenient with hand-edited fixtures.
fn token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    let end = s.find(' ').unwrap_or(s.len());
    let (tok, tail) = s.split_at(end);
    *rest = tail;
    Some(tok)
}

/// Shared by `parse_maps` and the smaps parser so that errors point at the right file and line.
pub(crate) fn parse_line_in(
    file: &'static str,
    line_no: usize,
    line: &str,
) -> Result<MapsEntry, ParseError> {
    let bad = |reason: &'static str| ParseError::BadLine {
        file,
        line: line_no,
        text: line.to_owned(),
        reason,
    };
    let mut rest = line;
    let range = token(&mut rest).ok_or_else(|| bad("missing address range"))?;
    let perms = token(&mut rest).ok_or_else(|| bad("missing permissions"))?;
    let offset = token(&mut rest).ok_or_else(|| bad("missing offset"))?;
    let dev = token(&mut rest).ok_or_else(|| bad("missing device"))?;
    let inode = token(&mut rest).ok_or_else(|| bad("missing inode"))?;

    let (start, end) = range
        .split_once('-')
        .ok_or_else(|| bad("address range has no '-'"))?;
    let start = num::hex_u64(file, "start", start)?;
    let end = num::hex_u64(file, "end", end)?;
    if end < start {
        return Err(bad("range end is below start"));
    }

    let p = perms.as_bytes();
    if p.len() != 4 {
        return Err(bad("permissions are not 4 characters"));
    }
    let flag = |c: u8, yes: u8| -> Result<bool, ParseError> {
        match c {
            b'-' => Ok(false),
            c if c == yes => Ok(true),
            _ => Err(bad("unexpected permission character")),
        }
    };
    let read = flag(p[0], b'r')?;
    let write = flag(p[1], b'w')?;
    let exec = flag(p[2], b'x')?;
    let shared = match p[3] {
        b's' => true,
        b'p' => false,
        _ => return Err(bad("sharing flag is neither 's' nor 'p'")),
    };

    let offset = num::hex_u64(file, "offset", offset)?;
    let (major, minor) = dev
        .split_once(':')
        .ok_or_else(|| bad("device has no ':'"))?;
    let dev_major = num::hex_u32(file, "dev_major", major)?;
    let dev_minor = num::hex_u32(file, "dev_minor", minor)?;
    let inode = num::dec(file, "inode", inode)?;

    // Everything after the inode is padding followed by the path. Only leading spaces are padding:
    // a path may itself contain or end with spaces, so nothing else is trimmed.
    let raw = rest.trim_start_matches(' ');
    let (path, deleted) = if raw.is_empty() {
        (None, false)
    } else if let Some(p) = raw.strip_suffix(DELETED_SUFFIX) {
        (Some(p.to_owned()), true)
    } else {
        (Some(raw.to_owned()), false)
    };

    Ok(MapsEntry {
        start,
        end,
        read,
        write,
        exec,
        shared,
        offset,
        dev_major,
        dev_minor,
        inode,
        path,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cat /proc/self/maps` on x86_64 Linux 6.18 (has the newer `[vvar_vclock]` region).
    const CAT_MAPS: &str = "\
55dbf2187000-55dbf2189000 r--p 00000000 fe:00 247030                     /usr/bin/cat\n\
55dbf2189000-55dbf218e000 r-xp 00002000 fe:00 247030                     /usr/bin/cat\n\
55dbf218e000-55dbf2191000 r--p 00007000 fe:00 247030                     /usr/bin/cat\n\
55dbf2191000-55dbf2192000 r--p 00009000 fe:00 247030                     /usr/bin/cat\n\
55dbf2192000-55dbf2193000 rw-p 0000a000 fe:00 247030                     /usr/bin/cat\n\
55dbf3e6b000-55dbf3e8c000 rw-p 00000000 00:00 0                          [heap]\n\
7f2c21e4f000-7f2c21e71000 rw-p 00000000 00:00 0 \n\
7f2c21e71000-7f2c21ec8000 r--p 00000000 fe:00 316534                     /usr/lib/locale/C.utf8/LC_CTYPE\n\
7f2c21ec8000-7f2c21ec9000 r--p 00000000 fe:00 316541                     /usr/lib/locale/C.utf8/LC_NUMERIC\n\
7f2c21ec9000-7f2c21eca000 r--p 00000000 fe:00 316544                     /usr/lib/locale/C.utf8/LC_TIME\n\
7f2c21eca000-7f2c21ecb000 r--p 00000000 fe:00 316533                     /usr/lib/locale/C.utf8/LC_COLLATE\n\
7f2c21ecb000-7f2c21ecc000 r--p 00000000 fe:00 316539                     /usr/lib/locale/C.utf8/LC_MONETARY\n\
7f2c21ecc000-7f2c21ecd000 r--p 00000000 fe:00 316538                     /usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES\n\
7f2c21ecd000-7f2c21ece000 r--p 00000000 fe:00 316542                     /usr/lib/locale/C.utf8/LC_PAPER\n\
7f2c21ece000-7f2c21ecf000 r--p 00000000 fe:00 316540                     /usr/lib/locale/C.utf8/LC_NAME\n\
7f2c21ecf000-7f2c21ed0000 r--p 00000000 fe:00 316532                     /usr/lib/locale/C.utf8/LC_ADDRESS\n\
7f2c21ed0000-7f2c21ed1000 r--p 00000000 fe:00 316543                     /usr/lib/locale/C.utf8/LC_TELEPHONE\n\
7f2c21ed1000-7f2c21ed4000 rw-p 00000000 00:00 0 \n\
7f2c21ed4000-7f2c21efa000 r--p 00000000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6\n\
7f2c21efa000-7f2c22050000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6\n\
7f2c22050000-7f2c220a3000 r--p 0017c000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6\n\
7f2c220a3000-7f2c220a7000 r--p 001cf000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6\n\
7f2c220a7000-7f2c220a9000 rw-p 001d3000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6\n\
7f2c220a9000-7f2c220b6000 rw-p 00000000 00:00 0 \n\
7f2c220b6000-7f2c220b7000 r--p 00000000 fe:00 316536                     /usr/lib/locale/C.utf8/LC_MEASUREMENT\n\
7f2c220b7000-7f2c220be000 r--s 00000000 fe:00 325745                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache\n\
7f2c220be000-7f2c220bf000 r--p 00000000 fe:00 316535                     /usr/lib/locale/C.utf8/LC_IDENTIFICATION\n\
7f2c220bf000-7f2c220c1000 rw-p 00000000 00:00 0 \n\
7f2c220c1000-7f2c220c5000 r--p 00000000 00:00 0                          [vvar]\n\
7f2c220c5000-7f2c220c7000 r--p 00000000 00:00 0                          [vvar_vclock]\n\
7f2c220c7000-7f2c220c9000 r-xp 00000000 00:00 0                          [vdso]\n\
7f2c220c9000-7f2c220ca000 r--p 00000000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f2c220ca000-7f2c220f0000 r-xp 00001000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f2c220f0000-7f2c220fa000 r--p 00027000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f2c220fa000-7f2c220fc000 r--p 00031000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f2c220fc000-7f2c220fe000 rw-p 00033000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7ffd10dd3000-7ffd10df4000 rw-p 00000000 00:00 0                          [stack]\n\
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n\
";

    /// Excerpt of a python3 process that mapped a file from a directory with spaces in its name
    /// (MAP_SHARED) and a private mapping of a file it then unlinked. Also has a thread stack
    /// guard (`---p` with no path).
    const PY_MAPS: &str = "\
5565b0647000-5565b0648000 r--p 00000000 fe:00 18504                      /root/.pyenv/versions/3.11.7/bin/python3.11\n\
5565b0648000-5565b0649000 r-xp 00001000 fe:00 18504                      /root/.pyenv/versions/3.11.7/bin/python3.11\n\
5565b0649000-5565b064a000 r--p 00002000 fe:00 18504                      /root/.pyenv/versions/3.11.7/bin/python3.11\n\
5565b064a000-5565b064b000 r--p 00002000 fe:00 18504                      /root/.pyenv/versions/3.11.7/bin/python3.11\n\
5565b064b000-5565b064c000 rw-p 00003000 fe:00 18504                      /root/.pyenv/versions/3.11.7/bin/python3.11\n\
5565bb9f5000-5565bbbd0000 rw-p 00000000 00:00 0                          [heap]\n\
7f56bc000000-7f56bc021000 rw-p 00000000 00:00 0 \n\
7f56bc021000-7f56c0000000 ---p 00000000 00:00 0 \n\
7f56c3769000-7f56c376a000 ---p 00000000 00:00 0 \n\
7f56c376a000-7f56c3f6a000 rw-p 00000000 00:00 0 \n\
7f56c4800000-7f56c48f5000 r--p 00000000 fe:00 18714                      /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0\n\
7f56c48f5000-7f56c4b31000 r-xp 000f5000 fe:00 18714                      /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0\n\
7f56c4b31000-7f56c4c15000 r--p 00331000 fe:00 18714                      /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0\n\
7f56c4c15000-7f56c4c44000 r--p 00414000 fe:00 18714                      /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0\n\
7f56c4c44000-7f56c4d78000 rw-p 00443000 fe:00 18714                      /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0\n\
7f56c4d78000-7f56c4dba000 rw-p 00000000 00:00 0 \n\
7f56c4dba000-7f56c4dbb000 rw-p 00000000 fe:00 10010785                   /tmp/procs/dir with space/gone.bin (deleted)\n\
7f56c4dbb000-7f56c4de0000 rw-p 00000000 00:00 0 \n\
7f56c4de0000-7f56c4e37000 r--p 00000000 fe:00 316534                     /usr/lib/locale/C.utf8/LC_CTYPE\n\
7f56c4e37000-7f56c4e39000 rw-p 00000000 00:00 0 \n\
7f56c4e39000-7f56c4e49000 r--p 00000000 fe:00 326603                     /usr/lib/x86_64-linux-gnu/libm.so.6\n\
7f56c4e49000-7f56c4ebd000 r-xp 00010000 fe:00 326603                     /usr/lib/x86_64-linux-gnu/libm.so.6\n\
7f56c4ebd000-7f56c4f17000 r--p 00084000 fe:00 326603                     /usr/lib/x86_64-linux-gnu/libm.so.6\n\
7f56c4f17000-7f56c4f18000 r--p 000dd000 fe:00 326603                     /usr/lib/x86_64-linux-gnu/libm.so.6\n\
7f56c4f18000-7f56c4f19000 rw-p 000de000 fe:00 326603                     /usr/lib/x86_64-linux-gnu/libm.so.6\n\
7f56c4f19000-7f56c4f1b000 rw-s 00000000 fe:00 10010784                   /tmp/procs/dir with space/data file (v2).bin\n\
7f56c4f1b000-7f56c4f22000 r--s 00000000 fe:00 325745                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache\n\
7f56c4f22000-7f56c4f24000 rw-p 00000000 00:00 0 \n\
7f56c4f24000-7f56c4f28000 r--p 00000000 00:00 0                          [vvar]\n\
7f56c4f28000-7f56c4f2a000 r--p 00000000 00:00 0                          [vvar_vclock]\n\
7f56c4f2a000-7f56c4f2c000 r-xp 00000000 00:00 0                          [vdso]\n\
7f56c4f2c000-7f56c4f2d000 r--p 00000000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f56c4f2d000-7f56c4f53000 r-xp 00001000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f56c4f53000-7f56c4f5d000 r--p 00027000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f56c4f5d000-7f56c4f5f000 r--p 00031000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7f56c4f5f000-7f56c4f61000 rw-p 00033000 fe:00 325843                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n\
7fff36585000-7fff365a6000 rw-p 00000000 00:00 0                          [stack]\n\
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n\
";

    /// MAP_SHARED|MAP_ANONYMOUS (shows as `/dev/zero (deleted)`), SysV shm, and a memfd whose
    /// name has a space.
    const SHM_MAPS: &str = "\
7f023adba000-7f023adbb000 rw-s 00000000 00:01 0                          /SYSV00000000 (deleted)\n\
7f023adc1000-7f023adc2000 rw-s 00000000 00:01 1026                       /dev/zero (deleted)\n\
7f023adc2000-7f023adc3000 rw-s 00000000 00:01 1025                       /memfd:my memfd (deleted)\n\
";

    #[test]
    fn cat_self_maps() {
        let m = parse_maps(CAT_MAPS).unwrap();
        assert_eq!(m.len(), 38);
        assert_eq!(
            m[0],
            MapsEntry {
                start: 0x55db_f218_7000,
                end: 0x55db_f218_9000,
                read: true,
                write: false,
                exec: false,
                shared: false,
                offset: 0,
                dev_major: 0xfe,
                dev_minor: 0,
                inode: 247030,
                path: Some("/usr/bin/cat".into()),
                deleted: false,
            }
        );
        assert_eq!(m[1].offset, 0x2000);
        assert!(m[1].exec && m[1].read && !m[1].write);
        assert_eq!(m[0].len(), 0x2000);

        let heap = &m[5];
        assert_eq!(heap.path.as_deref(), Some("[heap]"));
        assert!(heap.is_special() && heap.read && heap.write);

        // Anonymous line: kernel prints "0 " with a trailing space and no padding.
        let anon = &m[6];
        assert_eq!(anon.path, None);
        assert_eq!(anon.inode, 0);
        assert!(!anon.is_special() && !anon.deleted);

        let gconv = m
            .iter()
            .find(|e| e.path.as_deref().is_some_and(|p| p.ends_with(".cache")))
            .unwrap();
        assert!(gconv.shared && gconv.read && !gconv.write);

        let names: Vec<_> = m
            .iter()
            .filter(|e| e.is_special())
            .map(|e| e.path.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "[heap]",
                "[vvar]",
                "[vvar_vclock]",
                "[vdso]",
                "[stack]",
                "[vsyscall]"
            ]
        );

        let vsyscall = m.last().unwrap();
        assert_eq!(vsyscall.start, 0xffff_ffff_ff60_0000);
        assert_eq!(vsyscall.end, 0xffff_ffff_ff60_1000);
        assert!(!vsyscall.read && !vsyscall.write && vsyscall.exec);
    }

    #[test]
    fn python_paths_with_spaces_and_deleted() {
        let m = parse_maps(PY_MAPS).unwrap();
        assert_eq!(m.len(), 38);

        let guard = &m[8];
        assert!(!guard.read && !guard.write && !guard.exec && !guard.shared);
        assert_eq!(guard.path, None);
        assert_eq!(guard.len(), 0x1000);

        let gone = m.iter().find(|e| e.deleted).unwrap();
        assert_eq!(
            gone.path.as_deref(),
            Some("/tmp/procs/dir with space/gone.bin")
        );
        assert_eq!(gone.inode, 10010785);
        assert!(!gone.shared && gone.write);

        let data = m.iter().find(|e| e.inode == 10010784).unwrap();
        assert_eq!(
            data.path.as_deref(),
            Some("/tmp/procs/dir with space/data file (v2).bin")
        );
        assert!(data.shared && data.write && !data.deleted);
        assert_eq!(m.iter().filter(|e| e.deleted).count(), 1);
    }

    #[test]
    fn shared_anonymous_sysv_and_memfd() {
        let m = parse_maps(SHM_MAPS).unwrap();
        assert_eq!(m.len(), 3);
        assert!(m.iter().all(|e| e.deleted && e.shared && e.dev_minor == 1));
        let paths: Vec<_> = m.iter().map(|e| e.path.as_deref().unwrap()).collect();
        assert_eq!(paths, ["/SYSV00000000", "/dev/zero", "/memfd:my memfd"]);
        assert_eq!(m[2].inode, 1025);
    }

    #[test]
    fn single_line_and_trailing_spaces_in_path_are_kept() {
        let e = parse_maps_line(
            "7f56c4f2a000-7f56c4f2c000 r-xp 00000000 00:00 0                          [vdso]\n",
        )
        .unwrap();
        assert_eq!(e.path.as_deref(), Some("[vdso]"));
        // A (made-up) file name ending in a space: only the padding is stripped.
        let e = parse_maps_line("1000-2000 r--p 00000000 103:0a 12 /x/odd name ").unwrap();
        assert_eq!(e.path.as_deref(), Some("/x/odd name "));
        assert_eq!((e.dev_major, e.dev_minor), (0x103, 0x0a));
        // A carriage return is a legal file-name byte and must survive.
        let m = parse_maps("1000-2000 r--p 00000000 00:00 5 /x/cr\r\n").unwrap();
        assert_eq!(m[0].path.as_deref(), Some("/x/cr\r"));
        // Anonymous line with no trailing space at all.
        let e = parse_maps_line("1000-2000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!(e.path, None);
    }

    #[test]
    fn errors_name_line_and_reason() {
        let text = "1000-2000 rw-p 00000000 00:00 0\n2000-3000 rwzp 00000000 00:00 0\n";
        match parse_maps(text) {
            Err(ParseError::BadLine { line, reason, .. }) => {
                assert_eq!(line, 2);
                assert_eq!(reason, "unexpected permission character");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_maps_line("1000-2000 rw-p 00000000 00:00"),
            Err(ParseError::BadLine {
                reason: "missing inode",
                ..
            })
        ));
        assert!(matches!(
            parse_maps_line("1000-g000 rw-p 00000000 00:00 0"),
            Err(ParseError::BadNumber { file: "maps", ref field, .. }) if field == "end"
        ));
        assert!(parse_maps_line("2000-1000 rw-p 00000000 00:00 0").is_err());
        assert!(parse_maps_line("1000-2000 rw-q 00000000 00:00 0").is_err());
        assert!(parse_maps_line("1000-2000 rw-p 00000000 0000 0").is_err());
        assert_eq!(parse_maps("").unwrap(), vec![]);
    }
}
