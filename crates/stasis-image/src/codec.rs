//! How a run of pages is stored: raw, or as an LZ4 block when that saves enough. Part of the
//! format (a reader must decode every codec its version knows).

use crate::entries::PageRun;

/// Compress only if the result is at most this fraction of the raw size (in 1/16ths).
const WORTH: usize = 14;
/// Bytes tried first to decide whether compressing a run is worth it at all.
const PROBE: usize = 16 * 1024;

/// Compress `raw` into `out` if that saves enough; returns the compressed length, or `None`
/// to store the run raw. Incompressible data is detected from a 16 KiB probe, so it costs
/// little CPU.
pub fn compress(raw: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    if raw.len() > PROBE * 2 {
        out.resize(lz4_flex::block::get_maximum_output_size(PROBE), 0);
        let n = lz4_flex::block::compress_into(&raw[..PROBE], out).ok()?;
        if n * 16 > PROBE * WORTH {
            return None;
        }
    }
    out.resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
    let n = lz4_flex::block::compress_into(raw, out).ok()?;
    if n * 16 > raw.len() * WORTH {
        return None;
    }
    out.truncate(n);
    Some(n)
}

/// Why a stored run could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The LZ4 block is malformed or does not expand to the run's size.
    Malformed,
    /// The decoded bytes do not match the run's checksum.
    Checksum,
}

/// Decode a stored run into `out` (resized to the run's raw size) and verify its checksum.
/// Raw runs are only verified: `stored` is returned as is through the result.
pub fn decode<'a>(
    run: &PageRun,
    stored: &'a [u8],
    out: &'a mut Vec<u8>,
) -> Result<&'a [u8], DecodeError> {
    let raw_len = run.pages as usize * crate::PAGE_SIZE as usize;
    let data: &[u8] = if run.lz4_len == 0 {
        stored
    } else {
        out.resize(raw_len, 0);
        match lz4_flex::block::decompress_into(stored, out) {
            Ok(n) if n == raw_len => out,
            _ => return Err(DecodeError::Malformed),
        }
    };
    if data.len() != raw_len {
        return Err(DecodeError::Malformed);
    }
    if crate::checksum(data) != run.crc32c {
        return Err(DecodeError::Checksum);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: &[u8], lz4_len: u32) -> PageRun {
        PageRun {
            vaddr: 0x1000,
            pages: (raw.len() / 4096) as u32,
            offset: 4096,
            crc32c: crate::checksum(raw),
            lz4_len,
        }
    }

    #[test]
    fn compressible_runs_shrink_and_roundtrip() {
        let raw: Vec<u8> = (0..65536u32).map(|i| (i / 64) as u8).collect();
        let mut c = Vec::new();
        let n = compress(&raw, &mut c).expect("compressible");
        assert!(n < raw.len() / 4);
        let r = run(&raw, n as u32);
        let mut out = Vec::new();
        assert_eq!(decode(&r, &c, &mut out).unwrap(), &raw[..]);
        // damage is caught either by LZ4 or by the checksum
        let mut bad = c.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x20;
        assert!(decode(&r, &bad, &mut out).is_err());
    }

    #[test]
    fn random_runs_stay_raw() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let raw: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(compress(&raw, &mut Vec::new()), None);
        let r = run(&raw, 0);
        assert_eq!(decode(&r, &raw, &mut Vec::new()).unwrap(), &raw[..]);
        let mut bad = raw.clone();
        bad[5] ^= 1;
        assert_eq!(
            decode(&r, &bad, &mut Vec::new()),
            Err(DecodeError::Checksum)
        );
    }
}
