//! VRRP advertisements: version 2 (RFC 3768, IPv4, optional simple-text authentication,
//! checksum over the message) and version 3 (RFC 5798, IPv4 or IPv6, advertisement interval
//! in centiseconds, checksum with the IP pseudo-header). The view starts at the VRRP header
//! (after the IP header).

use super::checksum;
use super::{get_u16, get_u8, set_bytes, set_u16, WireError};

/// IP protocol number.
pub const PROTO: u8 = 112;
/// The advertisement group addresses.
pub const GROUP_V4: [u8; 4] = [224, 0, 0, 18];
pub const GROUP_V6: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];
pub const HEADER_LEN: usize = 8;
pub const AUTH_LEN: usize = 8;
pub const TYPE_ADVERTISEMENT: u8 = 1;
pub const AUTH_NONE: u8 = 0;
pub const AUTH_PASS: u8 = 1;

#[derive(Debug, Clone, Copy)]
pub struct VrrpPacket<T> {
    buf: T,
    addr_len: usize,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// Checks version (2 or 3), type (advertisement) and that the addresses (`addr_len` 4
    /// or 16 bytes each, by the IP family it came in) and v2's authentication data fit.
    pub fn new_checked(buf: T, addr_len: usize) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = VrrpPacket { buf, addr_len };
        if !matches!(p.version(), 2 | 3) || get_u8(p.buf.as_ref(), 0) & 0x0f != TYPE_ADVERTISEMENT {
            return Err(WireError::Unsupported);
        }
        if p.version() == 2 && addr_len != 4 || !matches!(addr_len, 4 | 16) {
            return Err(WireError::Malformed);
        }
        if p.buf.as_ref().len() < p.len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    pub fn version(&self) -> u8 {
        get_u8(self.buf.as_ref(), 0) >> 4
    }

    pub fn vrid(&self) -> u8 {
        get_u8(self.buf.as_ref(), 1)
    }

    pub fn priority(&self) -> u8 {
        get_u8(self.buf.as_ref(), 2)
    }

    pub fn addr_count(&self) -> usize {
        usize::from(get_u8(self.buf.as_ref(), 3))
    }

    /// Version 2's authentication type (0 in version 3, whose byte is reserved).
    pub fn auth_type(&self) -> u8 {
        if self.version() == 2 {
            get_u8(self.buf.as_ref(), 4)
        } else {
            0
        }
    }

    /// The advertisement interval in centiseconds (version 2 carries whole seconds).
    pub fn interval_cs(&self) -> u16 {
        let b = self.buf.as_ref();
        if self.version() == 2 {
            u16::from(get_u8(b, 5)) * 100
        } else {
            get_u16(b, 4) & 0x0fff
        }
    }

    pub fn checksum_field(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }

    /// The message's length: header, addresses, and version 2's authentication data.
    pub fn len(&self) -> usize {
        let auth = if self.version() == 2 { AUTH_LEN } else { 0 };
        HEADER_LEN + self.addr_count() * self.addr_len + auth
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`th address as 4 or 16 bytes.
    pub fn addr(&self, i: usize) -> &[u8] {
        let at = HEADER_LEN + i * self.addr_len;
        self.buf.as_ref().get(at..at + self.addr_len).unwrap_or(&[])
    }

    /// Version 2's authentication data (zeros in version 3).
    pub fn auth_data(&self) -> [u8; AUTH_LEN] {
        let at = HEADER_LEN + self.addr_count() * self.addr_len;
        match self.buf.as_ref().get(at..at + AUTH_LEN) {
            Some(s) if self.version() == 2 => s.try_into().unwrap_or([0; AUTH_LEN]),
            _ => [0; AUTH_LEN],
        }
    }

    /// Whether the checksum is right: version 2 over the message, version 3 with the IP
    /// pseudo-header of `src` and `dst` (both of `addr_len` bytes).
    pub fn checksum_ok(&self, src: &[u8], dst: &[u8]) -> bool {
        let msg = self.buf.as_ref().get(..self.len()).unwrap_or(&[]);
        checksum::finish(checksum::accumulate(self.pseudo(src, dst, msg.len()), msg)) == 0
    }

    fn pseudo(&self, src: &[u8], dst: &[u8], len: usize) -> u32 {
        pseudo_sum(self.version(), src, dst, len)
    }
}

fn pseudo_sum(version: u8, src: &[u8], dst: &[u8], len: usize) -> u32 {
    if version == 2 {
        return 0;
    }
    match (<[u8; 4]>::try_from(src), <[u8; 4]>::try_from(dst)) {
        (Ok(s), Ok(d)) => checksum::pseudo_v4(s, d, PROTO, len as u16),
        _ => match (<[u8; 16]>::try_from(src), <[u8; 16]>::try_from(dst)) {
            (Ok(s), Ok(d)) => checksum::pseudo_v6(s, d, PROTO, len as u32),
            _ => 0,
        },
    }
}

/// An advertisement's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrrpRepr {
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds; version 2 sends whole seconds (at least 1).
    pub interval_cs: u16,
    /// Version 2's simple-text password (RFC 2338 type 1), zero-padded to 8 bytes.
    pub auth_pass: Option<[u8; AUTH_LEN]>,
}

impl VrrpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &VrrpPacket<T>) -> VrrpRepr {
        VrrpRepr {
            version: p.version(),
            vrid: p.vrid(),
            priority: p.priority(),
            interval_cs: p.interval_cs(),
            auth_pass: (p.auth_type() == AUTH_PASS).then(|| p.auth_data()),
        }
    }

    /// The message's length with `addrs` addresses of `addr_len` bytes.
    pub fn len(&self, addrs: usize, addr_len: usize) -> usize {
        HEADER_LEN + addrs * addr_len + if self.version == 2 { AUTH_LEN } else { 0 }
    }

    /// Writes the message into `buf` (at least [`Self::len`] bytes; returns the length
    /// written, 0 when it does not fit or the addresses are not all of one family):
    /// addresses in order, the checksum with `src` and `dst` for version 3.
    pub fn emit(&self, buf: &mut [u8], addrs: &[&[u8]], src: &[u8], dst: &[u8]) -> usize {
        let addr_len = addrs.first().map_or(src.len(), |a| a.len());
        let len = self.len(addrs.len(), addr_len);
        if buf.len() < len || addrs.len() > 255 || addrs.iter().any(|a| a.len() != addr_len) {
            return 0;
        }
        let Some(msg) = buf.get_mut(..len) else {
            return 0;
        };
        msg.fill(0);
        let (auth_type, interval) = if self.version == 2 {
            let secs = (self.interval_cs / 100).clamp(1, 255) as u8;
            let auth = if self.auth_pass.is_some() {
                AUTH_PASS
            } else {
                AUTH_NONE
            };
            (auth, u16::from_be_bytes([auth, secs]))
        } else {
            (0, self.interval_cs & 0x0fff)
        };
        set_bytes(
            msg,
            0,
            &[
                self.version << 4 | TYPE_ADVERTISEMENT,
                self.vrid,
                self.priority,
                addrs.len() as u8,
            ],
        );
        set_u16(msg, 4, interval);
        for (i, a) in addrs.iter().enumerate() {
            set_bytes(msg, HEADER_LEN + i * addr_len, a);
        }
        if auth_type == AUTH_PASS {
            if let Some(pass) = &self.auth_pass {
                set_bytes(msg, HEADER_LEN + addrs.len() * addr_len, pass);
            }
        }
        let sum = checksum::finish(checksum::accumulate(
            pseudo_sum(self.version, src, dst, len),
            msg,
        ));
        set_u16(msg, 6, sum);
        len
    }
}

/// keepalived's `auth_pass`: the first 8 bytes, zero-padded.
pub fn pass_bytes(pass: &str) -> [u8; AUTH_LEN] {
    let mut out = [0u8; AUTH_LEN];
    for (o, b) in out.iter_mut().zip(pass.bytes()) {
        *o = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 2, VRID 5, priority 100, one address 10.2.1.5, PASS "KPSjXfRG", 1 s.
    const V2: [u8; 20] = [
        0x21, 5, 100, 1, 1, 1, 0x25, 0x89, 10, 2, 1, 5, b'K', b'P', b'S', b'j', b'X', b'f', b'R',
        b'G',
    ];

    #[test]
    fn v2_round_trip_with_password() {
        let repr = VrrpRepr {
            version: 2,
            vrid: 5,
            priority: 100,
            interval_cs: 100,
            auth_pass: Some(pass_bytes("KPSjXfRG")),
        };
        let mut b = [0u8; 32];
        let n = repr.emit(&mut b, &[&[10, 2, 1, 5]], &[10, 2, 1, 2], &GROUP_V4);
        assert_eq!(n, 20);
        // The checksum (0x2589) is over the message alone.
        assert_eq!(&b[..20], &V2[..]);
        let p = VrrpPacket::new_checked(&b[..20], 4).unwrap();
        assert!(
            p.checksum_ok(&[1, 2, 3, 4], &[5, 6, 7, 8]),
            "v2 ignores the IP header"
        );
        assert_eq!(VrrpRepr::parse(&p), repr);
        assert_eq!(p.addr(0), &[10, 2, 1, 5]);
        assert_eq!(p.interval_cs(), 100);
    }

    #[test]
    fn v3_checksum_covers_the_pseudo_header() {
        let repr = VrrpRepr {
            version: 3,
            vrid: 51,
            priority: 150,
            interval_cs: 100,
            auth_pass: None,
        };
        let mut b = [0u8; 32];
        let (src, dst) = ([10, 0, 0, 1], GROUP_V4);
        let n = repr.emit(&mut b, &[&[10, 0, 0, 100], &[10, 0, 0, 101]], &src, &dst);
        assert_eq!(n, 16);
        assert_eq!(&b[..6], &[0x31, 51, 150, 2, 0, 100]);
        let p = VrrpPacket::new_checked(&b[..n], 4).unwrap();
        assert!(p.checksum_ok(&src, &dst));
        assert!(
            !p.checksum_ok(&[10, 0, 0, 2], &dst),
            "another source breaks it"
        );
        assert_eq!(VrrpRepr::parse(&p), repr);
        assert_eq!(p.addr(1), &[10, 0, 0, 101]);
        // IPv6.
        let a6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        let src6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let n = repr.emit(&mut b, &[&a6], &src6, &GROUP_V6);
        assert_eq!(n, 24);
        let p = VrrpPacket::new_checked(&b[..n], 16).unwrap();
        assert!(p.checksum_ok(&src6, &GROUP_V6));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            VrrpPacket::new_checked(&V2[..7], 4).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            VrrpPacket::new_checked(&V2[..19], 4).unwrap_err(),
            WireError::Truncated,
            "the password does not fit"
        );
        let mut b = V2;
        b[0] = 0x22;
        assert_eq!(
            VrrpPacket::new_checked(&b[..], 4).unwrap_err(),
            WireError::Unsupported
        );
        b[0] = 0x11;
        assert_eq!(
            VrrpPacket::new_checked(&b[..], 4).unwrap_err(),
            WireError::Unsupported
        );
        assert_eq!(
            VrrpPacket::new_checked(&V2[..], 16).unwrap_err(),
            WireError::Malformed,
            "version 2 is IPv4 only"
        );
        let mut b = V2;
        b[3] = 200;
        assert_eq!(
            VrrpPacket::new_checked(&b[..], 4).unwrap_err(),
            WireError::Truncated
        );
    }
}
