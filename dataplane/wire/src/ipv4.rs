//! IPv4 headers (RFC 791), options included.

use super::checksum;
use super::{array_mut, get_array, get_u16, get_u8, set_bytes, set_u16, set_u8, WireError};

pub const MIN_HEADER_LEN: usize = 20;
pub const DONT_FRAGMENT: u16 = 0x4000;
pub const MORE_FRAGMENTS: u16 = 0x2000;

#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks version, IHL and total length against the buffer. Bytes after the total
    /// length (Ethernet padding) are allowed and ignored.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if get_u8(b, 0) >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let ihl = usize::from(get_u8(b, 0) & 0x0f) * 4;
        if ihl < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        let total = usize::from(get_u16(b, 2));
        if total < ihl {
            return Err(WireError::Malformed);
        }
        if b.len() < ihl || b.len() < total {
            return Err(WireError::Truncated);
        }
        Ok(Ipv4Packet { buf })
    }

    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.b(), 0) & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        get_u8(self.b(), 1)
    }

    pub fn total_len(&self) -> usize {
        usize::from(get_u16(self.b(), 2))
    }

    pub fn ident(&self) -> u16 {
        get_u16(self.b(), 4)
    }

    fn flags_frag(&self) -> u16 {
        get_u16(self.b(), 6)
    }

    pub fn dont_fragment(&self) -> bool {
        self.flags_frag() & DONT_FRAGMENT != 0
    }

    pub fn more_fragments(&self) -> bool {
        self.flags_frag() & MORE_FRAGMENTS != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(self.flags_frag() & 0x1fff) * 8
    }

    /// True for any fragment (first or later).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        get_u8(self.b(), 8)
    }

    pub fn protocol(&self) -> u8 {
        get_u8(self.b(), 9)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.b(), 10)
    }

    pub fn src(&self) -> [u8; 4] {
        get_array(self.b(), 12)
    }

    pub fn dst(&self) -> [u8; 4] {
        get_array(self.b(), 16)
    }

    pub fn options(&self) -> &[u8] {
        self.b()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    pub fn header(&self) -> &[u8] {
        self.b().get(..self.header_len()).unwrap_or(&[])
    }

    /// The payload up to the total length.
    pub fn payload(&self) -> &[u8] {
        self.b()
            .get(self.header_len()..self.total_len())
            .unwrap_or(&[])
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::accumulate(0, self.header())) == 0xffff
    }

    /// Pseudo-header accumulator for the L4 checksum.
    pub fn pseudo_header(&self) -> u32 {
        let len = (self.total_len() - self.header_len()) as u16;
        checksum::pseudo_v4(self.src(), self.dst(), self.protocol(), len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    fn update_checksum(&mut self, old: &[u8], new: &[u8]) {
        let c = checksum::update_bytes(self.checksum(), old, new);
        set_u16(self.bm(), 10, c);
    }

    /// Sets the TTL, updating the header checksum.
    pub fn set_ttl(&mut self, ttl: u8) {
        let old = [get_u8(self.b(), 8), self.protocol()];
        set_u8(self.bm(), 8, ttl);
        self.update_checksum(&old, &[ttl, old[1]]);
    }

    /// Sets the source address, updating the header checksum (not the L4 one).
    pub fn set_src(&mut self, addr: [u8; 4]) {
        let old = self.src();
        set_bytes(self.bm(), 12, &addr);
        self.update_checksum(&old, &addr);
    }

    pub fn set_dst(&mut self, addr: [u8; 4]) {
        let old = self.dst();
        set_bytes(self.bm(), 16, &addr);
        self.update_checksum(&old, &addr);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        set_u16(self.bm(), 10, 0);
        let c = checksum::checksum(self.header());
        set_u16(self.bm(), 10, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        self.bm().get_mut(h..t).unwrap_or(&mut [])
    }
}

/// Header fields for building an option-less IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub payload_len: u16,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub dscp_ecn: u8,
}

impl Ipv4Repr {
    /// The fields of a checked packet (options are not kept).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len().saturating_sub(p.header_len()) as u16,
            ttl: p.ttl(),
            ident: p.ident(),
            dont_fragment: p.dont_fragment(),
            dscp_ecn: p.dscp_ecn(),
        }
    }

    /// Writes a 20-byte header with its checksum at the start of `buf` (nothing into a
    /// shorter one).
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(h) = array_mut::<MIN_HEADER_LEN>(buf, 0) else {
            return;
        };
        let total = self.payload_len.saturating_add(MIN_HEADER_LEN as u16);
        let flags = if self.dont_fragment { DONT_FRAGMENT } else { 0 };
        // The header as five big-endian words, its checksum summed from them (no read back).
        let mut words = [
            0x4500_0000 | u32::from(self.dscp_ecn) << 16 | u32::from(total),
            u32::from(self.ident) << 16 | u32::from(flags),
            u32::from(self.ttl) << 24 | u32::from(self.protocol) << 16,
            u32::from_be_bytes(self.src),
            u32::from_be_bytes(self.dst),
        ];
        let wide: u64 = words.iter().map(|&w| u64::from(w)).sum();
        let wide = (wide & 0xffff_ffff) + (wide >> 32);
        let wide = (wide & 0xffff_ffff) + (wide >> 32);
        words[2] |= u32::from(checksum::finish(wide as u32));
        for (at, w) in h.as_chunks_mut::<4>().0.iter_mut().zip(words) {
            *at = w.to_be_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// smoltcp-style: a header (10.0.0.1 -> 10.0.0.2, TCP, 20 bytes of payload, DF) as
    /// bytes and as fields, both ways.
    const HEADER: [u8; 20] = [
        0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0x14, 0x9a, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    const REPR: Ipv4Repr = Ipv4Repr {
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
        protocol: 6,
        payload_len: 20,
        ttl: 64,
        ident: 0x1234,
        dont_fragment: true,
        dscp_ecn: 0,
    };

    #[test]
    fn bytes_and_fields_round_trip() {
        let mut packet = [0u8; 40];
        packet[..20].copy_from_slice(&HEADER);
        let p = Ipv4Packet::new_checked(&packet[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), REPR);
        let mut out = [0u8; 20];
        REPR.emit(&mut out);
        assert_eq!(out, HEADER);
    }

    fn header() -> Vec<u8> {
        let mut b = vec![0u8; 40];
        Ipv4Repr {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            protocol: 6,
            payload_len: 20,
            ttl: 64,
            ident: 7,
            dont_fragment: true,
            dscp_ecn: 0,
        }
        .emit(&mut b);
        b
    }

    #[test]
    fn a_buffer_too_short_for_a_header_is_left_alone() {
        let mut short = [0xa5u8; MIN_HEADER_LEN - 1];
        REPR.emit(&mut short);
        assert_eq!(short, [0xa5; MIN_HEADER_LEN - 1]);
    }

    #[test]
    fn emit_parse_and_rewrite_keep_the_checksum_valid() {
        let mut b = header();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.header_len(), p.total_len(), p.ttl(), p.protocol()),
            (20, 40, 64, 6)
        );
        assert!(p.dont_fragment() && !p.is_fragment());
        p.set_ttl(63);
        p.set_dst([192, 168, 1, 100]);
        p.set_src([172, 16, 0, 1]);
        assert!(p.verify_checksum());
        assert_eq!(p.dst(), [192, 168, 1, 100]);
    }

    #[test]
    fn refuses_bad_headers() {
        let b = header();
        for len in 0..40 {
            assert!(Ipv4Packet::new_checked(&b[..len]).is_err(), "len {len}");
        }
        let mut v6 = b.clone();
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut ihl = b.clone();
        ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut short_total = b.clone();
        short_total[3] = 19;
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut opts = b.clone();
        opts[0] = 0x4f; // 60-byte header in a 40-byte buffer
        assert_eq!(
            Ipv4Packet::new_checked(&opts[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn options_are_reachable() {
        let mut b = [0u8; 28];
        b[0] = 0x46;
        b[3] = 28;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOPs, end of options
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 4);
    }
}
