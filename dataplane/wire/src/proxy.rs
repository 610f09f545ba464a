//! The PROXY protocol version 2 header (HAProxy's binary format, which nginx, HAProxy and
//! others read): a 12-byte signature, version and command, family and transport, the
//! address block length, then the client's and the server-side addresses and ports.

use std::net::IpAddr;

/// The signature every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];
/// Header length for TCP over IPv4 and over IPv6.
pub const LEN_V4: usize = 16 + 12;
pub const LEN_V6: usize = 16 + 36;

/// The header's length for an address family.
pub fn header_len(v6: bool) -> usize {
    if v6 {
        LEN_V6
    } else {
        LEN_V4
    }
}

/// Writes a `PROXY` command for a TCP stream from `src` to `dst` at the start of `out`;
/// returns its length, or 0 when `out` is too short or the families differ.
pub fn emit_tcp(out: &mut [u8], (src, sport): (IpAddr, u16), (dst, dport): (IpAddr, u16)) -> usize {
    let (family, addrs): (u8, [u8; 32]) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut a = [0; 32];
            a[..4].copy_from_slice(&s.octets());
            a[4..8].copy_from_slice(&d.octets());
            (0x11, a)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut a = [0; 32];
            a[..16].copy_from_slice(&s.octets());
            a[16..].copy_from_slice(&d.octets());
            (0x21, a)
        }
        _ => return 0,
    };
    let v6 = family == 0x21;
    let len = header_len(v6);
    let Some(h) = out.get_mut(..len) else {
        return 0;
    };
    let addr_len = if v6 { 32 } else { 8 };
    let block = (len - 16) as u16;
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(d) = h.get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    put(&SIGNATURE);
    // Version 2, command PROXY; the family and STREAM transport.
    put(&[0x21, family]);
    put(&block.to_be_bytes());
    put(addrs.get(..addr_len).unwrap_or_default());
    put(&sport.to_be_bytes());
    put(&dport.to_be_bytes());
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of HAProxy's proxy-protocol.txt, section 2.2, byte by byte.
    #[test]
    fn ipv4_and_ipv6_headers_have_the_specified_layout() {
        let mut b = [0u8; 64];
        let n = emit_tcp(
            &mut b,
            ("198.51.100.7".parse().unwrap(), 40000),
            ("192.0.2.1".parse().unwrap(), 80),
        );
        assert_eq!(n, 28);
        assert_eq!(
            &b[..28],
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x07\xc0\x00\x02\x01\x9c\x40\x00\x50"
        );
        let n = emit_tcp(
            &mut b,
            ("2001:db8::7".parse().unwrap(), 1),
            ("2001:db8::1".parse().unwrap(), 443),
        );
        assert_eq!(n, 52);
        assert_eq!(&b[12..16], &[0x21, 0x21, 0x00, 0x24]);
        assert_eq!(&b[48..52], &[0, 1, 0x01, 0xbb]);
        assert_eq!(
            emit_tcp(
                &mut b[..20],
                ("1.1.1.1".parse().unwrap(), 1),
                ("2.2.2.2".parse().unwrap(), 2)
            ),
            0
        );
        assert_eq!(
            emit_tcp(
                &mut b,
                ("1.1.1.1".parse().unwrap(), 1),
                ("::1".parse().unwrap(), 2)
            ),
            0
        );
    }
}
