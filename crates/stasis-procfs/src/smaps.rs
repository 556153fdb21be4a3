//! Parser for `/proc/PID/smaps`.
//!
//! Owns [`SmapsEntry`] and [`VmFlags`]: per-mapping residency, anonymity and swap figures plus the
//! kernel's two-letter VMA flags, which checkpointing needs to decide which pages to dump and how
//! to recreate each mapping (e.g. `gd` grows-down stacks, `dd` do-not-dump regions). It reuses the
//! maps header grammar from [`crate::maps`] and must not decide policy from these figures.
//!
//! A process can have tens of thousands of mappings and smaps has ~25 lines per mapping, so the
//! per-line path only slices the borrowed text; it allocates once per mapping (the path and the
//! flag vector), never per key line.

use crate::maps::{self, MapsEntry};
use crate::num;
use crate::ParseError;

const FILE: &str = "smaps";

/// One mapping from smaps: the header line plus the figures we need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmapsEntry {
    pub map: MapsEntry,
    /// `Rss:` in kB.
    pub rss_kb: u64,
    /// `Anonymous:` in kB.
    pub anonymous_kb: u64,
    /// `Swap:` in kB.
    pub swap_kb: u64,
    pub vm_flags: VmFlags,
}

/// The `VmFlags:` line: two-letter mnemonics in the order the kernel printed them.
///
/// Kept as raw letter pairs rather than an enum so that flags added by future kernels survive a
/// round trip instead of being dropped or rejected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmFlags(pub Vec<[u8; 2]>);

impl VmFlags {
    /// Whether the two-letter `flag` (e.g. "gd", "sl", "dd") is set. Anything that is not exactly
    /// two bytes can never be set.
    pub fn has(&self, flag: &str) -> bool {
        match flag.as_bytes() {
            &[a, b] => self.0.contains(&[a, b]),
            _ => false,
        }
    }

    /// Parse the value part of a `VmFlags:` line (e.g. `"rd wr mr mw me ac "`).
    ///
    /// Returns `None` if a mnemonic is not two bytes: the kernel prints them from a fixed
    /// two-character table, so anything else means the text is not what we think it is.
    pub fn parse(value: &str) -> Option<VmFlags> {
        let mut v = Vec::with_capacity(value.len() / 3 + 1);
        for f in value.split_ascii_whitespace() {
            match f.as_bytes() {
                &[a, b] => v.push([a, b]),
                _ => return None,
            }
        }
        Some(VmFlags(v))
    }

    /// Iterate the flags as `&str` (they are ASCII in practice; non-UTF-8 pairs are skipped).
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().filter_map(|p| std::str::from_utf8(p).ok())
    }
}

/// Mapping being assembled: the header plus whichever needed keys have been seen so far.
struct Pending<'a> {
    map: MapsEntry,
    header_line: usize,
    header: &'a str,
    rss_kb: Option<u64>,
    anonymous_kb: Option<u64>,
    swap_kb: Option<u64>,
    vm_flags: Option<VmFlags>,
}

impl Pending<'_> {
    /// Every kernel we support (>= 3.8) prints all four keys for every mapping; a missing one means
    /// truncated or hand-damaged text, and defaulting to 0 would silently lose pages.
    fn finish(self) -> Result<SmapsEntry, ParseError> {
        let bad = |reason| ParseError::BadLine {
            file: FILE,
            line: self.header_line,
            text: self.header.to_owned(),
            reason,
        };
        Ok(SmapsEntry {
            rss_kb: self.rss_kb.ok_or_else(|| bad("mapping has no Rss line"))?,
            anonymous_kb: self
                .anonymous_kb
                .ok_or_else(|| bad("mapping has no Anonymous line"))?,
            swap_kb: self
                .swap_kb
                .ok_or_else(|| bad("mapping has no Swap line"))?,
            vm_flags: self
                .vm_flags
                .ok_or_else(|| bad("mapping has no VmFlags line"))?,
            map: self.map,
        })
    }
}

/// Parse a `"   1800 kB"` value.
fn kb(field: &'static str, value: &str) -> Result<u64, ParseError> {
    let v = value.trim();
    let v = v.strip_suffix("kB").map_or(v, str::trim_end);
    num::dec(FILE, field, v)
}

/// Parse the whole text of `/proc/PID/smaps`. Keys other than `Rss`, `Anonymous`, `Swap` and
/// `VmFlags` are ignored without being parsed.
pub fn parse_smaps(text: &str) -> Result<Vec<SmapsEntry>, ParseError> {
    // ~25 lines and ~1 KiB per mapping: a cheap guess that avoids regrowing for big processes.
    let mut out = Vec::with_capacity(text.len() / 1024);
    let mut cur: Option<Pending<'_>> = None;
    // '\n' only, for the same reason as in `parse_maps`: header paths are verbatim.
    for (i, line) in text.split('\n').enumerate() {
        let line_no = i + 1;
        if line.is_empty() {
            continue;
        }
        // Key lines start with a token ending in ':' ("Rss:", "VmFlags:"); the header's first
        // token is the address range, which never does. Device numbers contain ':' but are not in
        // the first token, so this test cannot misfire on a header.
        let first = line.split([' ', '\t']).next().unwrap_or(line);
        let Some(key) = first.strip_suffix(':') else {
            if let Some(p) = cur.take() {
                out.push(p.finish()?);
            }
            cur = Some(Pending {
                map: maps::parse_line_in(FILE, line_no, line)?,
                header_line: line_no,
                header: line,
                rss_kb: None,
                anonymous_kb: None,
                swap_kb: None,
                vm_flags: None,
            });
            continue;
        };
        let Some(p) = cur.as_mut() else {
            return Err(ParseError::BadLine {
                file: FILE,
                line: line_no,
                text: line.to_owned(),
                reason: "key line before any mapping header",
            });
        };
        let value = &line[first.len()..];
        match key {
            "Rss" => p.rss_kb = Some(kb("Rss", value)?),
            "Anonymous" => p.anonymous_kb = Some(kb("Anonymous", value)?),
            "Swap" => p.swap_kb = Some(kb("Swap", value)?),
            "VmFlags" => {
                p.vm_flags = Some(VmFlags::parse(value).ok_or_else(|| ParseError::BadLine {
                    file: FILE,
                    line: line_no,
                    text: line.to_owned(),
                    reason: "VmFlags mnemonic is not two characters",
                })?)
            }
            _ => {}
        }
    }
    if let Some(p) = cur.take() {
        out.push(p.finish()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eleven mappings cut from the smaps of a python3 process (x86_64, Linux 6.18): the
    /// executable's text, `[heap]`, a thread-stack guard page and the thread stack, a private
    /// mapping of an unlinked file, a MAP_SHARED file in a directory with spaces, `[vvar]`,
    /// `[vvar_vclock]`, `[vdso]`, `[stack]` and `[vsyscall]`.
    const PY_SMAPS: &str = "\
5565b0648000-5565b0649000 r-xp 00001000 fe:00 18504                      /root/.pyenv/versions/3.11.7/bin/python3.11\n\
Size:                  4 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   4 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          4 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            4 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd ex mr mw me \n\
5565bb9f5000-5565bbbd0000 rw-p 00000000 00:00 0                          [heap]\n\
Size:               1900 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                1800 kB\n\
Pss:                1800 kB\n\
Pss_Dirty:          1800 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:      1800 kB\n\
Referenced:         1800 kB\n\
Anonymous:          1800 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd wr mr mw me ac \n\
7f56c3769000-7f56c376a000 ---p 00000000 00:00 0 \n\
Size:                  4 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   0 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            0 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: mr mw me nh \n\
7f56c376a000-7f56c3f6a000 rw-p 00000000 00:00 0 \n\
Size:               8192 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   8 kB\n\
Pss:                   8 kB\n\
Pss_Dirty:             8 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         8 kB\n\
Referenced:            8 kB\n\
Anonymous:             8 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd wr mr mw me ac nh \n\
7f56c4dba000-7f56c4dbb000 rw-p 00000000 fe:00 10010785                   /tmp/procs/dir with space/gone.bin (deleted)\n\
Size:                  4 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   0 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            0 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd wr mr mw me ac \n\
7f56c4f19000-7f56c4f1b000 rw-s 00000000 fe:00 10010784                   /tmp/procs/dir with space/data file (v2).bin\n\
Size:                  8 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   0 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            0 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd wr sh mr mw me ms \n\
7f56c4f24000-7f56c4f28000 r--p 00000000 00:00 0                          [vvar]\n\
Size:                 16 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   0 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            0 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd mr pf io de dd \n\
7f56c4f28000-7f56c4f2a000 r--p 00000000 00:00 0                          [vvar_vclock]\n\
Size:                  8 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   0 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            0 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd mr pf io de dd \n\
7f56c4f2a000-7f56c4f2c000 r-xp 00000000 00:00 0                          [vdso]\n\
Size:                  8 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   4 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          4 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            4 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd ex mr mw me de \n\
7fff36585000-7fff365a6000 rw-p 00000000 00:00 0                          [stack]\n\
Size:                132 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                  64 kB\n\
Pss:                  64 kB\n\
Pss_Dirty:            64 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:        64 kB\n\
Referenced:           64 kB\n\
Anonymous:            64 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: rd wr mr mw me gd ac \n\
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n\
Size:                  4 kB\n\
KernelPageSize:        4 kB\n\
MMUPageSize:           4 kB\n\
Rss:                   0 kB\n\
Pss:                   0 kB\n\
Pss_Dirty:             0 kB\n\
Shared_Clean:          0 kB\n\
Shared_Dirty:          0 kB\n\
Private_Clean:         0 kB\n\
Private_Dirty:         0 kB\n\
Referenced:            0 kB\n\
Anonymous:             0 kB\n\
KSM:                   0 kB\n\
LazyFree:              0 kB\n\
AnonHugePages:         0 kB\n\
ShmemPmdMapped:        0 kB\n\
FilePmdMapped:         0 kB\n\
Shared_Hugetlb:        0 kB\n\
Private_Hugetlb:       0 kB\n\
Swap:                  0 kB\n\
SwapPss:               0 kB\n\
Locked:                0 kB\n\
THPeligible:           0\n\
ProtectionKey:         0\n\
VmFlags: ex \n\
";

    #[test]
    fn python_smaps() {
        let s = parse_smaps(PY_SMAPS).unwrap();
        assert_eq!(s.len(), 11);

        let text = &s[0];
        assert_eq!(
            text.map.path.as_deref(),
            Some("/root/.pyenv/versions/3.11.7/bin/python3.11")
        );
        assert_eq!((text.rss_kb, text.anonymous_kb, text.swap_kb), (4, 0, 0));
        assert_eq!(
            text.vm_flags.iter().collect::<Vec<_>>(),
            ["rd", "ex", "mr", "mw", "me"]
        );

        let heap = &s[1];
        assert_eq!(heap.map.path.as_deref(), Some("[heap]"));
        assert_eq!((heap.rss_kb, heap.anonymous_kb), (1800, 1800));
        assert!(heap.vm_flags.has("ac") && !heap.vm_flags.has("gd"));

        let guard = &s[2];
        assert_eq!(guard.map.path, None);
        assert_eq!(guard.rss_kb, 0);
        assert!(guard.vm_flags.has("nh") && !guard.vm_flags.has("rd"));

        let tstack = &s[3];
        assert_eq!(tstack.map.len(), 8192 * 1024);
        assert_eq!((tstack.rss_kb, tstack.anonymous_kb), (8, 8));

        let gone = &s[4];
        assert!(gone.map.deleted);
        assert_eq!(
            gone.map.path.as_deref(),
            Some("/tmp/procs/dir with space/gone.bin")
        );

        let shared = &s[5];
        assert!(shared.map.shared && shared.vm_flags.has("sh") && shared.vm_flags.has("ms"));

        for i in [6, 7] {
            assert!(s[i].vm_flags.has("dd"), "{:?}", s[i].map.path);
            assert!(s[i].vm_flags.has("io") && s[i].vm_flags.has("pf"));
        }
        assert_eq!(s[7].map.path.as_deref(), Some("[vvar_vclock]"));
        assert_eq!(s[8].map.path.as_deref(), Some("[vdso]"));
        assert_eq!(s[8].rss_kb, 4);
        assert_eq!(s[8].anonymous_kb, 0);

        let stack = &s[9];
        assert!(stack.vm_flags.has("gd"));
        assert_eq!((stack.rss_kb, stack.anonymous_kb), (64, 64));

        let vsyscall = &s[10];
        assert_eq!(vsyscall.vm_flags.0, vec![*b"ex"]);
        assert!(!vsyscall.vm_flags.has("e"));
    }

    #[test]
    fn swap_and_unknown_keys() {
        // Make the heap report swap and add a key from some future kernel.
        let text = PY_SMAPS
            .replacen(
                "Swap:                  0 kB",
                "Swap:                 12 kB",
                2,
            )
            .replacen("ProtectionKey:", "SomeNewKey:    banana\nProtectionKey:", 1);
        let s = parse_smaps(&text).unwrap();
        assert_eq!(s[0].swap_kb, 12);
        // A tab after the key (not what the kernel writes, but easy to type in a fixture).
        let tabbed = PY_SMAPS.replacen("Rss:                   4 kB", "Rss:\t4 kB", 1);
        assert_eq!(parse_smaps(&tabbed).unwrap()[0].rss_kb, 4);
        assert_eq!(s[1].swap_kb, 12);
        assert_eq!(s[2].swap_kb, 0);
    }

    #[test]
    fn many_mappings() {
        // Same block with distinct addresses, 1000 times: the size a real process easily reaches.
        let block_end = PY_SMAPS.find("\n5565bb9f5000").unwrap() + 1;
        let body = &PY_SMAPS[PY_SMAPS.find('\n').unwrap()..block_end];
        let mut text = String::new();
        for i in 0..1000u64 {
            let start = 0x1000_0000 + i * 0x1000;
            text.push_str(&format!(
                "{start:x}-{:x} r-xp 00000000 00:00 0",
                start + 0x1000
            ));
            text.push_str(body);
        }
        let s = parse_smaps(&text).unwrap();
        assert_eq!(s.len(), 1000);
        assert_eq!(s[999].map.start, 0x1000_0000 + 999 * 0x1000);
        assert!(s.iter().all(|e| e.rss_kb == 4 && e.map.path.is_none()));
    }

    #[test]
    fn errors() {
        let missing = "1000-2000 rw-p 00000000 00:00 0\nRss: 4 kB\nAnonymous: 4 kB\nVmFlags: rd\n";
        assert_eq!(
            parse_smaps(missing),
            Err(ParseError::BadLine {
                file: "smaps",
                line: 1,
                text: "1000-2000 rw-p 00000000 00:00 0".into(),
                reason: "mapping has no Swap line",
            })
        );
        assert!(matches!(
            parse_smaps("Rss: 4 kB\n"),
            Err(ParseError::BadLine {
                line: 1,
                reason: "key line before any mapping header",
                ..
            })
        ));
        let bad_num = "1000-2000 rw-p 00000000 00:00 0\nRss: four kB\n";
        assert!(matches!(
            parse_smaps(bad_num),
            Err(ParseError::BadNumber { file: "smaps", ref field, ref text }) if field == "Rss" && text == "four"
        ));
        let bad_flag = "1000-2000 rw-p 00000000 00:00 0\nVmFlags: rd wrx\n";
        assert!(matches!(
            parse_smaps(bad_flag),
            Err(ParseError::BadLine { line: 2, .. })
        ));
        let bad_header = "1000-2000 rw-p 00000000 00:00 0\nRss: 4 kB\nAnonymous: 0 kB\nSwap: 0 kB\nVmFlags: rd\nzzz\n";
        assert!(matches!(
            parse_smaps(bad_header),
            Err(ParseError::BadLine {
                file: "smaps",
                line: 6,
                ..
            })
        ));
        assert_eq!(parse_smaps("").unwrap(), vec![]);
    }
}
