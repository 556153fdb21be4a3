//! Parser of sock_diag replies for AF_UNIX sockets (the raw netlink messages
//! stasis-sys fetches): one record per socket. No I/O here.

use crate::ParseError;

/// One AF_UNIX socket as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSock {
    pub ino: u32,
    /// SOCK_STREAM (1), SOCK_DGRAM (2), SOCK_SEQPACKET (5).
    pub sock_type: u8,
    /// TCP-style state: 1 established, 7 unconnected (close), 10 listen.
    pub state: u8,
    /// The bound name: a path, or an abstract name starting with a NUL byte.
    pub name: Option<Vec<u8>>,
    /// Inode of the peer socket, 0 if none.
    pub peer: u32,
    /// Listener: pending connections; otherwise bytes (stream) or packets queued to read.
    pub rqlen: u32,
}

fn bad(reason: &'static str) -> ParseError {
    ParseError::BadLine {
        file: "sock_diag",
        line: 0,
        text: String::new(),
        reason,
    }
}

/// Parse concatenated netlink messages (each `nlmsghdr` + `unix_diag_msg` + attributes).
pub fn parse_unix_diag(bytes: &[u8]) -> Result<Vec<UnixSock>, ParseError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 16 <= bytes.len() {
        let len = u32::from_ne_bytes(
            bytes[off..off + 4]
                .try_into()
                .map_err(|_| bad("short header"))?,
        ) as usize;
        if len < 16 + 16 || off + len > bytes.len() {
            return Err(bad("message length out of range"));
        }
        let m = &bytes[off + 16..off + len];
        // unix_diag_msg: family u8, type u8, state u8, pad u8, ino u32, cookie [u32; 2]
        let mut s = UnixSock {
            ino: u32::from_ne_bytes(m[4..8].try_into().map_err(|_| bad("short message"))?),
            sock_type: m[1],
            state: m[2],
            name: None,
            peer: 0,
            rqlen: 0,
        };
        let mut a = 16usize;
        while a + 4 <= m.len() {
            let alen = u16::from_ne_bytes([m[a], m[a + 1]]) as usize;
            let aty = u16::from_ne_bytes([m[a + 2], m[a + 3]]);
            if alen < 4 || a + alen > m.len() {
                return Err(bad("attribute length out of range"));
            }
            let data = &m[a + 4..a + alen];
            match aty {
                0 => s.name = Some(data.to_vec()), // UNIX_DIAG_NAME
                2 if data.len() >= 4 => {
                    s.peer = u32::from_ne_bytes(data[..4].try_into().expect("4"))
                } // UNIX_DIAG_PEER
                4 if data.len() >= 4 => {
                    s.rqlen = u32::from_ne_bytes(data[..4].try_into().expect("4"))
                } // UNIX_DIAG_RQLEN
                _ => {}
            }
            a += (alen + 3) & !3;
        }
        out.push(s);
        off += (len + 3) & !3;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ino: u32, ty: u8, state: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![1u8, ty, state, 0];
        body.extend_from_slice(&ino.to_ne_bytes());
        body.extend_from_slice(&[0; 8]);
        for (t, d) in attrs {
            let l = 4 + d.len();
            body.extend_from_slice(&(l as u16).to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(d);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn pair_and_listener() {
        let mut b = msg(
            100,
            1,
            1,
            &[(2, &101u32.to_ne_bytes()), (4, &[5, 0, 0, 0, 0, 0, 0, 0])],
        );
        b.extend(msg(200, 1, 10, &[(0, b"/tmp/sock")]));
        let v = parse_unix_diag(&b).unwrap();
        assert_eq!(
            (v[0].ino, v[0].peer, v[0].rqlen, v[0].state),
            (100, 101, 5, 1)
        );
        assert_eq!(v[1].name.as_deref(), Some(&b"/tmp/sock"[..]));
        assert!(parse_unix_diag(&b[..b.len() - 3]).is_err());
    }
}
