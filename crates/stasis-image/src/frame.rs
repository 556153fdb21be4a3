//! Record framing: `len:u32le | payload | crc32c(payload):u32le`, with a size limit enforced
//! before anything is allocated.

/// Largest record payload a reader accepts (64 MiB).
pub const MAX_RECORD: u64 = 64 << 20;

/// Frame one payload.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crate::checksum(payload).to_le_bytes());
}

/// Why a frame could not be taken from the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    Truncated { wanted: u64 },
    TooLarge { len: u64 },
    Checksum,
}

/// Take one frame from the front of `buf`: `(payload, bytes consumed)`.
pub fn decode_frame(buf: &[u8]) -> Result<(&[u8], usize), FrameError> {
    if buf.len() < 4 {
        return Err(FrameError::Truncated {
            wanted: 4 - buf.len() as u64,
        });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as u64;
    if len > MAX_RECORD {
        return Err(FrameError::TooLarge { len });
    }
    let total = 4 + len as usize + 4;
    if buf.len() < total {
        return Err(FrameError::Truncated {
            wanted: (total - buf.len()) as u64,
        });
    }
    let payload = &buf[4..4 + len as usize];
    let crc = u32::from_le_bytes(buf[total - 4..total].try_into().expect("4 bytes"));
    if crc != crate::checksum(payload) {
        return Err(FrameError::Checksum);
    }
    Ok((payload, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let mut out = Vec::new();
        encode_frame(b"hello", &mut out);
        assert_eq!(decode_frame(&out).unwrap(), (&b"hello"[..], 13));
        assert_eq!(
            decode_frame(&out[..7]),
            Err(FrameError::Truncated { wanted: 6 })
        );
        let mut bad = out.clone();
        bad[5] ^= 1;
        assert_eq!(decode_frame(&bad), Err(FrameError::Checksum));
        let mut huge = out.clone();
        huge[3] = 0xff;
        assert!(matches!(
            decode_frame(&huge),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
