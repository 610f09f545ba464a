//! FTP's control channel as IPVS's FTP helper (ip_vs_ftp) reads it: a client's PASV or
//! EPSV (it wants a passive data connection), PORT or EPRT (its address and port for an
//! active one), a server's 227 or 229 reply (the port it listens on for a passive one), and
//! the text that replaces a reply's address and port with the virtual service's. The
//! grammar is the kernel's (RFC 959 and RFC 2428): the commands and replies must start the
//! segment's data, PASV and EPSV may be anywhere in it, case is ignored, the address of
//! PORT and 227 is six numbers separated by commas, that of EPRT and 229 is delimited.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a client's segment asks of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// PASV: the server's next 227 reply names where to connect.
    Passive,
    /// EPSV: the server's next 229 reply names the port.
    ExtendedPassive,
    /// PORT or EPRT: the server will connect to this address and port.
    Active(IpAddr, u16),
}

/// A 227 or 229 reply: the address (absent from a 229 that names only the port) and port
/// the server listens on, and the span of the segment's data that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveReply {
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub span: (usize, usize),
}

/// The longest text [`write_passive`] writes ("255,255,255,255,255,255").
pub const REPLACEMENT_MAX: usize = 24;

/// The command a client's segment data carries, for a control connection over IPv6 when
/// `v6` (PASV and PORT are IPv4's only, EPSV and EPRT must name the connection's family).
pub fn client_command(data: &[u8], v6: bool) -> Option<Command> {
    for at in 0..data.len().saturating_sub(5) {
        let rest = data.get(at..).unwrap_or_default();
        if !v6 && starts_with_ignoring_case(rest, b"PASV\r\n") {
            return Some(Command::Passive);
        }
        if starts_with_ignoring_case(rest, b"EPSV") {
            match rest.get(4) {
                Some(b'\r') => return Some(Command::ExtendedPassive),
                Some(b' ') => {
                    let family = if v6 { b'2' } else { b'1' };
                    let ok = rest.get(5) == Some(&family) && rest.get(6) == Some(&b'\r');
                    return ok.then_some(Command::ExtendedPassive);
                }
                _ => {}
            }
        }
    }
    if !v6 {
        if let Some((addr, port, _)) = plain_address(data, b"PORT", b' ') {
            return Some(Command::Active(IpAddr::V4(addr), port));
        }
    }
    let (addr, port, _) = extended_address(data, b"EPRT", b' ', v6, false)?;
    Some(Command::Active(addr?, port))
}

/// The 227 reply (when `extended` is false) or 229 reply a server's segment data starts
/// with, for a control connection over IPv6 when `v6`.
pub fn passive_reply(data: &[u8], extended: bool, v6: bool) -> Option<PassiveReply> {
    if extended {
        let (addr, port, span) = extended_address(data, b"229 ", b'(', v6, true)?;
        return Some(PassiveReply { addr, port, span });
    }
    if v6 {
        return None;
    }
    let (addr, port, span) = plain_address(data, b"227 ", b'(')?;
    Some(PassiveReply {
        addr: Some(IpAddr::V4(addr)),
        port,
        span,
    })
}

/// Writes the text that names `vip` and `port` in a 227 reply (`h1,h2,h3,h4,p1,p2`) or, when
/// `extended`, in a 229 reply (`|||port|`: the client connects to the address it reached);
/// returns its length.
pub fn write_passive(
    out: &mut [u8; REPLACEMENT_MAX],
    extended: bool,
    vip: Ipv4Addr,
    port: u16,
) -> usize {
    let mut w = Writer { out, len: 0 };
    if extended {
        w.bytes(b"|||");
        w.number(port);
        w.bytes(b"|");
    } else {
        for octet in vip.octets() {
            w.number(u16::from(octet));
            w.bytes(b",");
        }
        w.number(port >> 8);
        w.bytes(b",");
        w.number(port & 0xff);
    }
    w.len
}

struct Writer<'a> {
    out: &'a mut [u8; REPLACEMENT_MAX],
    len: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        for &c in b {
            if let Some(slot) = self.out.get_mut(self.len) {
                *slot = c;
                self.len += 1;
            }
        }
    }

    fn number(&mut self, n: u16) {
        // Five digits, the leading zeros skipped (one kept for 0).
        let mut digits = [0u8; 5];
        let mut v = n;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let first = digits.iter().position(|&d| d != b'0').unwrap_or(4);
        self.bytes(digits.get(first..).unwrap_or_default());
    }
}

fn starts_with_ignoring_case(data: &[u8], pattern: &[u8]) -> bool {
    data.get(..pattern.len())
        .is_some_and(|d| d.eq_ignore_ascii_case(pattern))
}

/// Where the address of `pattern`'s line starts: past the first `skip` (and any more of
/// it); a plain address may also start at a digit before any `skip`.
fn address_start(data: &[u8], pattern: &[u8], skip: u8, plain: bool) -> Option<usize> {
    if !starts_with_ignoring_case(data, pattern) {
        return None;
    }
    let mut found = false;
    for (at, &c) in data.iter().enumerate().skip(pattern.len()) {
        if !found {
            if plain && c.is_ascii_digit() {
                return Some(at);
            }
            found = c == skip;
        } else if c != skip {
            return Some(at);
        }
    }
    None
}

/// `h1,h2,h3,h4,p1,p2` after `pattern`: the address, the port and the span of the text.
fn plain_address(data: &[u8], pattern: &[u8], skip: u8) -> Option<(Ipv4Addr, u16, (usize, usize))> {
    let start = address_start(data, pattern, skip, true)?;
    let mut numbers = [0u16; 6];
    let mut i = 0;
    for (at, &c) in data.iter().enumerate().skip(start) {
        match c {
            b'0'..=b'9' => {
                let n = numbers.get_mut(i)?;
                *n = *n * 10 + u16::from(c - b'0');
                if *n > 255 {
                    return None;
                }
            }
            b',' if i < 5 => i += 1,
            _ => {
                if i != 5 {
                    return None;
                }
                let n = numbers.map(|v| v as u8);
                let addr = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
                let port = u16::from_be_bytes([n[4], n[5]]);
                return Some((addr, port, (start, at)));
            }
        }
    }
    // The line goes on in a later segment: not read (as the kernel).
    None
}

/// `<d><family><d><address><d><port><d>` after `pattern` (any printable delimiter `d`); a
/// 229 reply (`reply`) may leave the family and address out (`|||port|`). The family must
/// be the connection's.
fn extended_address(
    data: &[u8],
    pattern: &[u8],
    skip: u8,
    v6: bool,
    reply: bool,
) -> Option<(Option<IpAddr>, u16, (usize, usize))> {
    let start = address_start(data, pattern, skip, false)?;
    let delim = *data.get(start)?;
    if !(33..=126).contains(&delim) {
        return None;
    }
    let mut at = start + 1;
    let addr = if *data.get(at)? == delim {
        if !reply || *data.get(at + 1)? != delim {
            return None;
        }
        at += 2;
        None
    } else {
        let family = if v6 { b'2' } else { b'1' };
        if *data.get(at)? != family || *data.get(at + 1)? != delim {
            return None;
        }
        at += 2;
        let len = data.get(at..)?.iter().position(|&c| c == delim)?;
        let text = std::str::from_utf8(data.get(at..at + len)?).ok()?;
        let addr = if v6 {
            IpAddr::V6(text.parse::<Ipv6Addr>().ok()?)
        } else {
            IpAddr::V4(text.parse::<Ipv4Addr>().ok()?)
        };
        at += len + 1;
        Some(addr)
    };
    let mut port: u32 = 0;
    loop {
        let c = *data.get(at)?;
        if !c.is_ascii_digit() {
            break;
        }
        port = port * 10 + u32::from(c - b'0');
        if port > u32::from(u16::MAX) {
            return None;
        }
        at += 1;
    }
    if port == 0 || *data.get(at)? != delim {
        return None;
    }
    Some((addr, port as u16, (start, at + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(a.into())
    }

    #[test]
    fn client_commands_as_the_kernel_reads_them() {
        assert_eq!(client_command(b"PASV\r\n", false), Some(Command::Passive));
        assert_eq!(client_command(b"pasv\r\n", false), Some(Command::Passive));
        // Anywhere in the data (a pipelined command), not over IPv6.
        assert_eq!(
            client_command(b"TYPE I\r\nPASV\r\n", false),
            Some(Command::Passive)
        );
        assert_eq!(client_command(b"PASV\r\n", true), None);
        assert_eq!(client_command(b"PASV", false), None);
        assert_eq!(
            client_command(b"EPSV\r\n", false),
            Some(Command::ExtendedPassive)
        );
        assert_eq!(
            client_command(b"EPSV 1\r\n", false),
            Some(Command::ExtendedPassive)
        );
        assert_eq!(
            client_command(b"EPSV 2\r\n", true),
            Some(Command::ExtendedPassive)
        );
        assert_eq!(client_command(b"EPSV 2\r\n", false), None);
        assert_eq!(client_command(b"EPSV ALL\r\n", false), None);
        assert_eq!(
            client_command(b"PORT 192,168,100,2,195,80\r\n", false),
            Some(Command::Active(v4([192, 168, 100, 2]), 50000))
        );
        assert_eq!(
            client_command(b"port   10,0,0,1,0,21\r\n", false),
            Some(Command::Active(v4([10, 0, 0, 1]), 21))
        );
        // Not at the start, a number over 255, five numbers, a line not ended.
        assert_eq!(client_command(b"NOOP\r\nPORT 1,2,3,4,5,6\r\n", false), None);
        assert_eq!(client_command(b"PORT 1,2,3,256,5,6\r\n", false), None);
        assert_eq!(client_command(b"PORT 1,2,3,4,5\r\n", false), None);
        assert_eq!(client_command(b"PORT 1,2,3,4,5,6", false), None);
        assert_eq!(
            client_command(b"EPRT |1|192.168.100.2|50000|\r\n", false),
            Some(Command::Active(v4([192, 168, 100, 2]), 50000))
        );
        assert_eq!(
            client_command(b"EPRT !2!2001:db8::7!6446!\r\n", true),
            Some(Command::Active("2001:db8::7".parse().unwrap(), 6446))
        );
        // The other family, no address, port 0, a bad address.
        assert_eq!(
            client_command(b"EPRT |2|2001:db8::7|6446|\r\n", false),
            None
        );
        assert_eq!(client_command(b"EPRT |||6446|\r\n", false), None);
        assert_eq!(client_command(b"EPRT |1|10.0.0.1|0|\r\n", false), None);
        assert_eq!(client_command(b"EPRT |1|10.0.0.300|21|\r\n", false), None);
        assert_eq!(client_command(b"RETR file\r\n", false), None);
    }

    #[test]
    fn passive_replies_and_their_spans() {
        let d = b"227 Entering Passive Mode (10,100,0,2,195,80).\r\n";
        let r = passive_reply(d, false, false).unwrap();
        assert_eq!(r.addr, Some(v4([10, 100, 0, 2])));
        assert_eq!(r.port, 50000);
        assert_eq!(&d[r.span.0..r.span.1], b"10,100,0,2,195,80");
        // The parenthesis is optional.
        let d = b"227 =10,100,0,2,4,1\r\n";
        let r = passive_reply(d, false, false).unwrap();
        assert_eq!(
            (r.port, &d[r.span.0..r.span.1]),
            (1025, &b"10,100,0,2,4,1"[..])
        );
        assert_eq!(passive_reply(b"200 OK\r\n", false, false), None);
        let d = b"229 Entering Extended Passive Mode (|||6446|)\r\n";
        let r = passive_reply(d, true, false).unwrap();
        assert_eq!((r.addr, r.port), (None, 6446));
        assert_eq!(&d[r.span.0..r.span.1], b"|||6446|");
        let d = b"229 Entering Extended Passive Mode (|1|10.100.0.2|6446|)\r\n";
        let r = passive_reply(d, true, false).unwrap();
        assert_eq!((r.addr, r.port), (Some(v4([10, 100, 0, 2])), 6446));
        assert_eq!(&d[r.span.0..r.span.1], b"|1|10.100.0.2|6446|");
        assert_eq!(passive_reply(b"229 (|||0|)\r\n", true, false), None);
        assert_eq!(passive_reply(b"229 (|||70000|)\r\n", true, false), None);
    }

    #[test]
    fn replacements_name_the_vip_and_port() {
        let mut out = [0u8; REPLACEMENT_MAX];
        let n = write_passive(&mut out, false, Ipv4Addr::new(192, 168, 100, 1), 50000);
        assert_eq!(&out[..n], b"192,168,100,1,195,80");
        let n = write_passive(&mut out, false, Ipv4Addr::new(255, 255, 255, 255), 65535);
        assert_eq!(&out[..n], b"255,255,255,255,255,255");
        let n = write_passive(&mut out, true, Ipv4Addr::UNSPECIFIED, 6446);
        assert_eq!(&out[..n], b"|||6446|");
    }

    proptest! {
        /// Any bytes: no panic; what is written back is read back.
        #[test]
        fn any_bytes_are_read_without_panic(data in proptest::collection::vec(any::<u8>(), 0..80), v6 in any::<bool>()) {
            let _ = client_command(&data, v6);
            let _ = passive_reply(&data, false, v6);
            let _ = passive_reply(&data, true, v6);
        }

        #[test]
        fn a_written_address_reads_back(a in any::<[u8; 4]>(), port in any::<u16>()) {
            let mut out = [0u8; REPLACEMENT_MAX];
            let n = write_passive(&mut out, false, a.into(), port);
            let mut line = b"227 Entering Passive Mode (".to_vec();
            line.extend_from_slice(&out[..n]);
            line.extend_from_slice(b")\r\n");
            let r = passive_reply(&line, false, false).unwrap();
            prop_assert_eq!(r.addr, Some(v4(a)));
            prop_assert_eq!(r.port, port);
        }
    }
}
