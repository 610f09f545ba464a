//! The PROXY protocol headers (HAProxy's proxy-protocol.txt, which nginx, HAProxy, Postfix,
//! Dovecot and others read). Version 2, binary: a 12-byte signature, version and command,
//! family and transport, the address block length, then the client's and the server-side
//! addresses and ports. Version 1, text: `PROXY TCP4 SRC DST SPORT DPORT\r\n` (`TCP6` for
//! IPv6), the addresses in their usual text forms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    let mut text = Text {
        out: &mut [0u8; MAX_V1],
        len: 0,
        fits: true,
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            text.bytes(b"PROXY TCP4 ");
            text.ipv4(s);
            text.bytes(b" ");
            text.ipv4(d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            text.bytes(b"PROXY TCP6 ");
            text.ipv6(s);
            text.bytes(b" ");
            text.ipv6(d);
        }
        _ => return 0,
    }
    text.bytes(b" ");
    text.decimal(sport);
    text.bytes(b" ");
    text.decimal(dport);
    text.bytes(b"\r\n");
    let len = text.len;
    match (text.fits, out.get_mut(..len), text.out.get(..len)) {
        (true, Some(o), Some(t)) => {
            o.copy_from_slice(t);
            len
        }
        _ => 0,
    }
}

/// Text written into a fixed buffer by hand: the per-packet path has no formatting
/// machinery (which can fail and panic). Writes what fits and remembers whether all did.
struct Text<'a> {
    out: &'a mut [u8],
    len: usize,
    fits: bool,
}

impl Text<'_> {
    fn bytes(&mut self, s: &[u8]) {
        if crate::set_bytes(self.out, self.len, s) {
            self.len += s.len();
        } else {
            self.fits = false;
        }
    }

    /// `v` in `radix` (10 or 16, lowercase), without leading zeros.
    fn number(&mut self, v: u16, radix: u16) {
        let mut digits = [0u8; 5];
        let mut n = v;
        let mut used = 0;
        for d in digits.iter_mut().rev() {
            let x = (n % radix) as u8;
            *d = if x < 10 { b'0' + x } else { b'a' + x - 10 };
            n /= radix;
            used += 1;
            if n == 0 {
                break;
            }
        }
        self.bytes(digits.get(digits.len() - used..).unwrap_or_default());
    }

    fn decimal(&mut self, v: u16) {
        self.number(v, 10);
    }

    /// Dotted decimal.
    fn ipv4(&mut self, a: Ipv4Addr) {
        for (i, octet) in a.octets().into_iter().enumerate() {
            if i > 0 {
                self.bytes(b".");
            }
            self.decimal(u16::from(octet));
        }
    }

    /// RFC 5952's form: lowercase, no leading zeros, the longest run of two or more zero
    /// groups (the first of equals) as `::`; IPv4-mapped addresses as `::ffff:a.b.c.d`.
    fn ipv6(&mut self, a: Ipv6Addr) {
        if let Some(v4) = a.to_ipv4_mapped() {
            self.bytes(b"::ffff:");
            self.ipv4(v4);
            return;
        }
        let groups = a.segments();
        let (mut run_at, mut run_len) = (0, 0);
        let (mut zeros_at, mut zeros_len) = (0, 0);
        for (i, &g) in groups.iter().enumerate() {
            if g != 0 {
                run_len = 0;
                continue;
            }
            if run_len == 0 {
                run_at = i;
            }
            run_len += 1;
            if run_len > zeros_len {
                (zeros_at, zeros_len) = (run_at, run_len);
            }
        }
        if zeros_len < 2 {
            (zeros_at, zeros_len) = (0, 0);
        }
        let zeros = zeros_at..zeros_at + zeros_len;
        for (i, &g) in groups.iter().enumerate() {
            if zeros.contains(&i) {
                if i == zeros.start {
                    self.bytes(b"::");
                }
                continue;
            }
            if i > 0 && i != zeros.end {
                self.bytes(b":");
            }
            self.number(g, 16);
        }
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

    /// Groups drawn mostly from 0 and 1, so zero runs of every length and position occur.
    fn group() -> impl proptest::strategy::Strategy<Value = u16> {
        use proptest::prelude::*;
        prop_oneof![4 => Just(0u16), 1 => Just(1u16), 2 => any::<u16>()]
    }

    fn address() -> impl proptest::strategy::Strategy<Value = IpAddr> {
        use proptest::prelude::*;
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            proptest::array::uniform8(group()).prop_map(IpAddr::from),
            any::<[u8; 4]>().prop_map(|o| IpAddr::from(Ipv4Addr::from(o).to_ipv6_mapped())),
        ]
    }

    proptest::proptest! {
        /// The hand-written text is what the standard library's formatting writes (RFC 5952
        /// for IPv6), and mixed families write nothing.
        #[test]
        fn version_1_text_matches_standard_formatting(
            src in address(), dst in address(), sport: u16, dport: u16
        ) {
            let mut b = [0u8; MAX_V1];
            let n = emit_tcp_v1(&mut b, (src, sport), (dst, dport));
            let expected = match (src, dst) {
                (IpAddr::V4(_), IpAddr::V4(_)) => format!("PROXY TCP4 {src} {dst} {sport} {dport}\r\n"),
                (IpAddr::V6(_), IpAddr::V6(_)) => format!("PROXY TCP6 {src} {dst} {sport} {dport}\r\n"),
                _ => String::new(),
            };
            proptest::prop_assert_eq!(std::str::from_utf8(&b[..n]).unwrap(), expected.as_str());
            proptest::prop_assert_eq!(v1_len((src, sport), (dst, dport)), n);
            if n > 0 {
                // One byte short: nothing written.
                let mut short = vec![0u8; n - 1];
                proptest::prop_assert_eq!(emit_tcp_v1(&mut short, (src, sport), (dst, dport)), 0);
                proptest::prop_assert!(short.iter().all(|&x| x == 0));
            }
        }
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
