//! /proc/net/tcp and /proc/net/tcp6: the TCP sockets of a network namespace (state, local
//! and remote address, inode). Parser only.

use crate::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSock {
    /// 4 or 16 address bytes, in network order.
    pub local: Vec<u8>,
    pub local_port: u16,
    pub remote: Vec<u8>,
    pub remote_port: u16,
    /// TCP state: 1 established ... 10 listen.
    pub state: u8,
    pub inode: u64,
}

fn addr(s: &str) -> Option<(Vec<u8>, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    // The kernel prints each 32-bit word of the address in host (little-endian) order.
    let mut bytes = Vec::with_capacity(a.len() / 2);
    for w in 0..a.len() / 8 {
        let word = u32::from_str_radix(&a[w * 8..w * 8 + 8], 16).ok()?;
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    Some((bytes, port))
}

/// Parse /proc/net/tcp or /proc/net/tcp6 text (header line skipped).
pub fn parse_tcp(text: &str) -> Result<Vec<TcpSock>, ParseError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let bad = |reason| ParseError::BadLine {
            file: "net/tcp",
            line: n + 1,
            text: line.to_string(),
            reason,
        };
        if f.is_empty() {
            continue;
        }
        if f.len() < 10 {
            return Err(bad("too few fields"));
        }
        let (local, local_port) = addr(f[1]).ok_or_else(|| bad("bad local address"))?;
        let (remote, remote_port) = addr(f[2]).ok_or_else(|| bad("bad remote address"))?;
        out.push(TcpSock {
            local,
            local_port,
            remote,
            remote_port,
            state: u8::from_str_radix(f[3], 16).map_err(|_| bad("bad state"))?,
            inode: f[9].parse().map_err(|_| bad("bad inode"))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_lines() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 245 1 000000009478aa28 100 0 0 10 0\n";
        let v = parse_tcp(text).unwrap();
        assert_eq!(v[0].local, vec![127, 0, 0, 1]);
        assert_eq!((v[0].local_port, v[0].state, v[0].inode), (8080, 10, 245));
        let v6 = "h\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 999 1\n";
        let v = parse_tcp(v6).unwrap();
        assert_eq!(v[0].local[15], 1, "::1");
    }
}
