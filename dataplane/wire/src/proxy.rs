//! The PROXY protocol headers (HAProxy's proxy-protocol.txt, which nginx, HAProxy, Postfix,
//! Dovecot and others read). Version 2, binary: a 12-byte signature, version and command,
//! family and transport, the address block length, then the client's and the server-side
//! addresses and ports. Version 1, text: `PROXY TCP4 SRC DST SPORT DPORT\r\n` (`TCP6` for
//! IPv6), the addresses in their usual text forms.

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

/// The longest version 1 header the specification allows (bytes, CRLF included).
pub const MAX_V1: usize = 107;

/// Writes a version 1 header for a TCP stream from `src` to `dst` at the start of `out`;
/// returns its length, or 0 when `out` is too short or the families differ.
pub fn emit_tcp_v1(
    out: &mut [u8],
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
) -> usize {
    use std::io::Write;
    let family = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => "TCP4",
        (IpAddr::V6(_), IpAddr::V6(_)) => "TCP6",
        _ => return 0,
    };
    let mut text = [0u8; MAX_V1];
    let mut rest = &mut text[..];
    if write!(rest, "PROXY {family} {src} {dst} {sport} {dport}\r\n").is_err() {
        return 0;
    }
    let len = MAX_V1 - rest.len();
    match (out.get_mut(..len), text.get(..len)) {
        (Some(o), Some(t)) => {
            o.copy_from_slice(t);
            len
        }
        _ => 0,
    }
}

/// The length of [`emit_tcp_v1`]'s header for these ends (0: families differ).
pub fn v1_len(src: (IpAddr, u16), dst: (IpAddr, u16)) -> usize {
    emit_tcp_v1(&mut [0u8; MAX_V1], src, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section 2.1's form, for both families at their longest and shortest.
    #[test]
    fn version_1_headers_are_the_specified_text() {
        let mut b = [0u8; MAX_V1];
        let v4 = (
            ("198.51.100.7".parse().unwrap(), 40000),
            ("192.0.2.1".parse().unwrap(), 80),
        );
        let n = emit_tcp_v1(&mut b, v4.0, v4.1);
        assert_eq!(&b[..n], b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n");
        assert_eq!(v1_len(v4.0, v4.1), n);
        let long: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        let n = emit_tcp_v1(&mut b, (long, 65535), (long, 65535));
        assert_eq!(n, 104, "the longest TCP6 header");
        assert!(b[..n].starts_with(b"PROXY TCP6 ffff:"));
        assert!(b[..n].ends_with(b" 65535 65535\r\n"));
        let n = emit_tcp_v1(
            &mut b,
            ("2001:db8::7".parse().unwrap(), 1),
            ("2001:db8::1".parse().unwrap(), 443),
        );
        assert_eq!(&b[..n], b"PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n");
        // Too short a buffer, or mixed families: nothing.
        assert_eq!(emit_tcp_v1(&mut b[..20], v4.0, v4.1), 0);
        assert_eq!(v1_len(v4.0, ("::1".parse().unwrap(), 2)), 0);
    }

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
