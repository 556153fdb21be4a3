//! Parser for `/proc/PID/auxv`.
//!
//! Owns the decoding of the ELF auxiliary vector the kernel handed the process at exec: the
//! vDSO base, page size, entry point, `AT_RANDOM` address and so on, which a restore must
//! preserve (`prctl(PR_SET_MM_AUXV)`). It must not read the process memory those entries point
//! to.
//!
//! The file is binary: pairs of native-endian machine words. Only 64-bit tasks are supported; a
//! 32-bit (compat) task's auxv uses 4-byte words and would be misread.

use crate::ParseError;

const FILE: &str = "auxv";
const WORD: usize = std::mem::size_of::<u64>();
const PAIR: usize = 2 * WORD;

/// End of vector.
pub const AT_NULL: u64 = 0;
/// Program headers of the executable.
pub const AT_PHDR: u64 = 3;
/// System page size.
pub const AT_PAGESZ: u64 = 6;
/// Base address of the interpreter.
pub const AT_BASE: u64 = 7;
/// Entry point of the executable.
pub const AT_ENTRY: u64 = 9;
/// Architecture-dependent CPU capability hints.
pub const AT_HWCAP: u64 = 16;
/// Address of 16 random bytes (stack canary and pointer guard seed).
pub const AT_RANDOM: u64 = 25;
/// More CPU capability hints.
pub const AT_HWCAP2: u64 = 26;
/// Address of the executable's file name string.
pub const AT_EXECFN: u64 = 31;
/// Base address of the vDSO.
pub const AT_SYSINFO_EHDR: u64 = 33;
/// Minimal stack size for signal delivery.
pub const AT_MINSIGSTKSZ: u64 = 51;

/// Decode `(type, value)` pairs up to, and excluding, the AT_NULL terminator.
///
/// Empty input (zombies and kernel threads have no auxv) gives an empty vector. Anything after
/// the terminator is ignored. Input that ends without a terminator is an error, because it means
/// the read was truncated and a restore would install a short vector.
pub fn parse_auxv(bytes: &[u8]) -> Result<Vec<(u64, u64)>, ParseError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(bytes.len() / PAIR);
    let mut chunks = bytes.chunks_exact(PAIR);
    for pair in chunks.by_ref() {
        let (k, v) = pair.split_at(WORD);
        let key = u64::from_ne_bytes(k.try_into().expect("split_at(WORD) gives WORD bytes"));
        let val = u64::from_ne_bytes(v.try_into().expect("PAIR - WORD == WORD bytes"));
        if key == AT_NULL {
            return Ok(out);
        }
        out.push((key, val));
    }
    if !chunks.remainder().is_empty() {
        return Err(ParseError::BadLength {
            file: FILE,
            len: bytes.len(),
            record: PAIR,
        });
    }
    Err(ParseError::MissingField {
        file: FILE,
        field: "AT_NULL",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoded from `/proc/PID/auxv` of a python3 process on x86_64 (368 bytes, 23 pairs
    /// including AT_NULL).
    const PY_AUXV: [(u64, u64); 23] = [
        (0x21, 0x7f457d4bd000),
        (0x33, 0xd30),
        (0x10, 0x178bfbff),
        (0x6, 0x1000),
        (0x11, 0x64),
        (0x3, 0x5580ed4db040),
        (0x4, 0x38),
        (0x5, 0xd),
        (0x7, 0x7f457d4bf000),
        (0x8, 0x0),
        (0x9, 0x5580ed4dc060),
        (0xb, 0x0),
        (0xc, 0x0),
        (0xd, 0x0),
        (0xe, 0x0),
        (0x17, 0x0),
        (0x19, 0x7ffc6e647899),
        (0x1a, 0x2),
        (0x1f, 0x7ffc6e647fcf),
        (0xf, 0x7ffc6e6478a9),
        (0x1b, 0x1c),
        (0x1c, 0x20),
        (0x0, 0x0),
    ];

    /// The same file's raw bytes, hex-encoded (little-endian, as read on x86_64).
    const PY_AUXV_HEX: &str = "210000000000000000d04b7d457f00003300000000000000300d0000000000001000000000000000fffb8b17000000000600000000000000001000000000000011000000000000006400000000000000030000000000000040b04ded805500000400000000000000380000000000000005000000000000000d00000000000000070000000000000000f04b7d457f000008000000000000000000000000000000090000000000000060c04ded805500000b0000000000000000000000000000000c0000000000000000000000000000000d0000000000000000000000000000000e0000000000000000000000000000001700000000000000000000000000000019000000000000009978646efc7f00001a0000000000000002000000000000001f00000000000000cf7f646efc7f00000f00000000000000a978646efc7f00001b000000000000001c000000000000001c00000000000000200000000000000000000000000000000000000000000000";

    fn encode(pairs: &[(u64, u64)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|(k, v)| k.to_ne_bytes().into_iter().chain(v.to_ne_bytes()))
            .collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn python_auxv() {
        let bytes = encode(&PY_AUXV);
        assert_eq!(bytes.len(), 368);
        let v = parse_auxv(&bytes).unwrap();
        assert_eq!(v.len(), 22);
        assert_eq!(v, PY_AUXV[..22]);
        let get = |k| v.iter().find(|(key, _)| *key == k).map(|(_, val)| *val);
        assert_eq!(get(AT_SYSINFO_EHDR), Some(0x7f457d4bd000));
        assert_eq!(get(AT_PAGESZ), Some(4096));
        assert_eq!(get(AT_ENTRY), Some(0x5580ed4dc060));
        assert_eq!(get(AT_RANDOM), Some(0x7ffc6e647899));
        assert_eq!(get(AT_MINSIGSTKSZ), Some(0xd30));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn raw_bytes_match_decoded_pairs() {
        let raw = unhex(PY_AUXV_HEX);
        assert_eq!(raw, encode(&PY_AUXV));
        assert_eq!(parse_auxv(&raw).unwrap().len(), 22);
    }

    #[test]
    fn terminator_and_errors() {
        // Trailing bytes after AT_NULL (even a partial pair) are ignored.
        let mut b = encode(&[(AT_PAGESZ, 4096), (AT_NULL, 0), (AT_ENTRY, 1)]);
        b.extend_from_slice(&[1, 2, 3]);
        assert_eq!(parse_auxv(&b).unwrap(), vec![(AT_PAGESZ, 4096)]);

        assert_eq!(parse_auxv(&[]).unwrap(), vec![]);
        assert_eq!(parse_auxv(&encode(&[(AT_NULL, 0)])).unwrap(), vec![]);

        let unterminated = encode(&[(AT_PAGESZ, 4096)]);
        assert_eq!(
            parse_auxv(&unterminated),
            Err(ParseError::MissingField {
                file: "auxv",
                field: "AT_NULL"
            })
        );
        let mut ragged = encode(&[(AT_PAGESZ, 4096)]);
        ragged.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse_auxv(&ragged),
            Err(ParseError::BadLength {
                file: "auxv",
                len: 24,
                record: 16
            })
        );
    }

    /// Our own auxv must decode and agree with what we know about this process.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn live_self_auxv() {
        let bytes = std::fs::read("/proc/self/auxv").unwrap();
        let v = parse_auxv(&bytes).unwrap();
        assert!(v
            .iter()
            .any(|&(k, val)| k == AT_PAGESZ && val.is_power_of_two()));
        assert!(v.iter().any(|&(k, _)| k == AT_ENTRY));
    }
}
