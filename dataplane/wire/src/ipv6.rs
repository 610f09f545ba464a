//! IPv6 headers (RFC 8200) and the walk over extension headers to the L4 header.

use super::checksum;
use super::{get_array, get_u16, get_u8, set_bytes, set_u16, set_u8, WireError};

pub const HEADER_LEN: usize = 40;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const ESP: u8 = 50;
const AUTH: u8 = 51;
const NO_NEXT: u8 = 59;
const DEST_OPTS: u8 = 60;
const MOBILITY: u8 = 135;

/// Where the upper-layer header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Location {
    pub protocol: u8,
    /// Offset from the start of the IPv6 header.
    pub offset: usize,
    /// The fragment header's identification and whether this is a later fragment (no L4
    /// header in it); None for a whole packet.
    pub fragment: Option<Fragment>,
}

/// What an IPv6 fragment header says of its packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    pub id: u32,
    /// A fragment at a non-zero offset.
    pub later: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks the version and that the payload length fits the buffer (trailing padding
    /// is allowed). Jumbograms (payload length 0 with a hop-by-hop jumbo option) are not
    /// accepted.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if get_u8(b, 0) >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        if b.len() < HEADER_LEN + usize::from(get_u16(b, 4)) {
            return Err(WireError::Truncated);
        }
        Ok(Ipv6Packet { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn traffic_class(&self) -> u8 {
        ((get_u16(self.b(), 0) >> 4) & 0xff) as u8
    }

    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes(get_array(self.b(), 0)) & 0x000f_ffff
    }

    pub fn payload_len(&self) -> usize {
        usize::from(get_u16(self.b(), 4))
    }

    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    pub fn next_header(&self) -> u8 {
        get_u8(self.b(), 6)
    }

    pub fn hop_limit(&self) -> u8 {
        get_u8(self.b(), 7)
    }

    pub fn src(&self) -> [u8; 16] {
        get_array(self.b(), 8)
    }

    pub fn dst(&self) -> [u8; 16] {
        get_array(self.b(), 24)
    }

    pub fn payload(&self) -> &[u8] {
        self.b().get(HEADER_LEN..self.total_len()).unwrap_or(&[])
    }

    /// Walks the extension headers. Malformed when one runs past the payload; Unsupported
    /// for ESP or "no next header", which have no L4 header to read.
    pub fn l4(&self) -> Result<L4Location, WireError> {
        let end = self.total_len();
        let b = self.b();
        let mut next = self.next_header();
        let mut at = HEADER_LEN;
        let mut fragment = None;
        for _ in 0..16 {
            match next {
                HOP_BY_HOP | ROUTING | DEST_OPTS | MOBILITY => {
                    if at + 8 > end {
                        return Err(WireError::Malformed);
                    }
                    let len = (usize::from(get_u8(b, at + 1)) + 1) * 8;
                    next = get_u8(b, at);
                    at += len;
                }
                FRAGMENT => {
                    if at + 8 > end {
                        return Err(WireError::Malformed);
                    }
                    next = get_u8(b, at);
                    let offset_flags = get_u16(b, at + 2);
                    let id = u32::from_be_bytes([
                        get_u8(b, at + 4),
                        get_u8(b, at + 5),
                        get_u8(b, at + 6),
                        get_u8(b, at + 7),
                    ]);
                    let later = offset_flags & 0xfff8 != 0;
                    fragment = Some(Fragment { id, later });
                    at += 8;
                    if later {
                        // A later fragment: no L4 header in it.
                        return Ok(L4Location {
                            protocol: next,
                            offset: at,
                            fragment,
                        });
                    }
                }
                AUTH => {
                    if at + 8 > end {
                        return Err(WireError::Malformed);
                    }
                    let len = (usize::from(get_u8(b, at + 1)) + 2) * 4;
                    next = get_u8(b, at);
                    at += len;
                }
                ESP | NO_NEXT => return Err(WireError::Unsupported),
                protocol => {
                    if at > end {
                        return Err(WireError::Malformed);
                    }
                    return Ok(L4Location {
                        protocol,
                        offset: at,
                        fragment,
                    });
                }
            }
            if at > end {
                return Err(WireError::Malformed);
            }
        }
        Err(WireError::Unsupported)
    }

    /// Pseudo-header accumulator for an upper-layer packet of `len` bytes.
    pub fn pseudo_header(&self, protocol: u8, len: usize) -> u32 {
        checksum::pseudo_v6(self.src(), self.dst(), protocol, len as u32)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    pub fn set_hop_limit(&mut self, hops: u8) {
        set_u8(self.buf.as_mut(), 7, hops);
    }

    pub fn set_src(&mut self, addr: [u8; 16]) {
        set_bytes(self.buf.as_mut(), 8, &addr);
    }

    pub fn set_dst(&mut self, addr: [u8; 16]) {
        set_bytes(self.buf.as_mut(), 24, &addr);
    }
}

/// Header fields for building an IPv6 header without extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub next_header: u8,
    pub payload_len: u16,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// The fields of a checked packet's fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            payload_len: p.payload_len() as u16,
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Writes the 40-byte fixed header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let word =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0xf_ffff);
        set_bytes(buf, 0, &word.to_be_bytes());
        set_u16(buf, 4, self.payload_len);
        set_u8(buf, 6, self.next_header);
        set_u8(buf, 7, self.hop_limit);
        set_bytes(buf, 8, &self.src);
        set_bytes(buf, 24, &self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_fields_round_trip() {
        // smoltcp-style: 2001:db8::1 -> 2001:db8::2, UDP, 8 bytes, class 0x2e, label 0x12345.
        let mut bytes = [0u8; 48];
        bytes[..8].copy_from_slice(&[0x62, 0xe1, 0x23, 0x45, 0, 8, 17, 63]);
        bytes[8..12].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        bytes[23] = 1;
        bytes[24..28].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        bytes[39] = 2;
        let repr = Ipv6Repr {
            src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            next_header: 17,
            payload_len: 8,
            hop_limit: 63,
            traffic_class: 0x2e,
            flow_label: 0x12345,
        };
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), repr);
        let mut out = [0u8; 40];
        repr.emit(&mut out);
        assert_eq!(out[..], bytes[..40]);
    }

    fn packet(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        Ipv6Repr {
            src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            next_header: next,
            payload_len: (ext.len() + l4.len()) as u16,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
        .emit(&mut b);
        b.extend_from_slice(ext);
        b.extend_from_slice(l4);
        b
    }

    #[test]
    fn plain_header() {
        let b = packet(6, &[], &[0u8; 20]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.traffic_class(), p.flow_label(), p.hop_limit()),
            (0xb8, 0x12345, 64)
        );
        assert_eq!(
            p.l4(),
            Ok(L4Location {
                protocol: 6,
                offset: 40,
                fragment: None
            })
        );
    }

    #[test]
    fn walks_extension_headers() {
        // hop-by-hop (8 bytes) -> destination options (16 bytes) -> UDP
        let mut ext = vec![DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let b = packet(HOP_BY_HOP, &ext, &[0u8; 8]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.l4(),
            Ok(L4Location {
                protocol: 17,
                offset: 64,
                fragment: None
            })
        );

        // first fragment -> TCP; later fragment -> no L4 header
        let b = packet(FRAGMENT, &[6, 0, 0, 1, 0, 0, 0, 9], &[0u8; 20]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.l4(),
            Ok(L4Location {
                protocol: 6,
                offset: 48,
                fragment: Some(Fragment {
                    id: 9,
                    later: false
                })
            })
        );
        let b = packet(FRAGMENT, &[6, 0, 0, 0x10, 0, 0, 0, 9], &[0u8; 20]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.l4().unwrap().fragment,
            Some(Fragment { id: 9, later: true })
        );
    }

    #[test]
    fn refuses_bad_packets() {
        let b = packet(6, &[], &[0u8; 20]);
        for len in 0..60 {
            assert!(Ipv6Packet::new_checked(&b[..len]).is_err(), "len {len}");
        }
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            WireError::Malformed
        );
        // An extension header claiming more than the payload.
        let b = packet(ROUTING, &[6, 200, 0, 0, 0, 0, 0, 0], &[]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap().l4(),
            Err(WireError::Malformed)
        );
        let b = packet(ESP, &[0u8; 8], &[]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap().l4(),
            Err(WireError::Unsupported)
        );
    }
}
