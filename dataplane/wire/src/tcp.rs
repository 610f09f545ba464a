//! TCP headers (RFC 9293): ports, flags and checksum rewrites.

use super::checksum;
use super::{get_u16, get_u32, get_u8, set_u16, WireError};

pub const MIN_HEADER_LEN: usize = 20;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// `buf` is the TCP segment (header and payload).
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let doff = usize::from(get_u8(b, 12) >> 4) * 4;
        if doff < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < doff {
            return Err(WireError::Truncated);
        }
        Ok(TcpPacket { buf })
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    pub fn seq(&self) -> u32 {
        get_u32(self.buf.as_ref(), 4)
    }

    pub fn ack_number(&self) -> u32 {
        get_u32(self.buf.as_ref(), 8)
    }

    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.buf.as_ref(), 12) >> 4) * 4
    }

    pub fn flags(&self) -> u8 {
        get_u8(self.buf.as_ref(), 13)
    }

    pub fn syn(&self) -> bool {
        self.flags() & SYN != 0
    }

    pub fn ack(&self) -> bool {
        self.flags() & ACK != 0
    }

    pub fn fin(&self) -> bool {
        self.flags() & FIN != 0
    }

    pub fn rst(&self) -> bool {
        self.flags() & RST != 0
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 16)
    }

    /// Verifies the checksum given the IP pseudo-header accumulator.
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::fold(checksum::accumulate(pseudo, self.buf.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, port: u16) {
        let old = self.src_port();
        set_u16(self.buf.as_mut(), 0, port);
        self.adjust_checksum(&old.to_be_bytes(), &port.to_be_bytes());
    }

    pub fn set_dst_port(&mut self, port: u16) {
        let old = self.dst_port();
        set_u16(self.buf.as_mut(), 2, port);
        self.adjust_checksum(&old.to_be_bytes(), &port.to_be_bytes());
    }

    /// Accounts for a change of a pseudo-header field (an IP address) from `old` to `new`.
    pub fn adjust_checksum(&mut self, old: &[u8], new: &[u8]) {
        let c = checksum::update_bytes(self.checksum(), old, new);
        set_u16(self.buf.as_mut(), 16, c);
    }

    /// Computes the checksum from scratch.
    pub fn fill_checksum(&mut self, pseudo: u32) {
        set_u16(self.buf.as_mut(), 16, 0);
        let c = checksum::finish(checksum::accumulate(pseudo, self.buf.as_ref()));
        set_u16(self.buf.as_mut(), 16, c);
    }
}

/// An option-less TCP header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

impl TcpRepr {
    pub fn parse<T: AsRef<[u8]>>(t: &TcpPacket<T>) -> TcpRepr {
        TcpRepr {
            src_port: t.src_port(),
            dst_port: t.dst_port(),
            seq: t.seq(),
            ack: t.ack_number(),
            flags: t.flags(),
            window: get_u16(t.buf.as_ref(), 14),
        }
    }

    /// Writes the 20-byte header at the start of `segment` (header and payload, the
    /// payload already in place) and its checksum over the segment and `pseudo`.
    pub fn emit(&self, segment: &mut [u8], pseudo: u32) -> Result<(), WireError> {
        if segment.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        set_u16(segment, 0, self.src_port);
        set_u16(segment, 2, self.dst_port);
        super::set_u32(segment, 4, self.seq);
        super::set_u32(segment, 8, self.ack);
        super::set_u8(segment, 12, 5 << 4);
        super::set_u8(segment, 13, self.flags);
        set_u16(segment, 14, self.window);
        set_u16(segment, 18, 0);
        TcpPacket { buf: segment }.fill_checksum(pseudo);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// smoltcp-style: a SYN (10.0.0.1:1234 -> 10.0.0.2:80) as bytes and as fields.
    const SYN_SEGMENT: [u8; 20] = [
        0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0x9b, 0xcc, 0, 0,
    ];
    const SYN_REPR: TcpRepr = TcpRepr {
        src_port: 1234,
        dst_port: 80,
        seq: 1,
        ack: 0,
        flags: SYN,
        window: 64240,
    };

    #[test]
    fn bytes_and_fields_round_trip() {
        let pseudo = checksum::pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 20);
        let t = TcpPacket::new_checked(&SYN_SEGMENT[..]).unwrap();
        assert_eq!(TcpRepr::parse(&t), SYN_REPR);
        assert!(t.verify_checksum(pseudo));
        let mut out = [0u8; 20];
        SYN_REPR.emit(&mut out, pseudo).unwrap();
        assert_eq!(out, SYN_SEGMENT);
        assert_eq!(
            SYN_REPR.emit(&mut [0u8; 19], pseudo),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn ports_flags_and_checksum() {
        let mut seg = [0u8; 24];
        seg[0..4].copy_from_slice(&[0x30, 0x39, 0, 80]);
        seg[12] = 0x50;
        seg[13] = SYN | ACK;
        let pseudo = checksum::pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 24);
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        t.fill_checksum(pseudo);
        assert!(t.verify_checksum(pseudo));
        assert_eq!(
            (t.src_port(), t.dst_port(), t.syn(), t.ack(), t.fin()),
            (12345, 80, true, true, false)
        );
        t.set_dst_port(8080);
        t.adjust_checksum(&[10, 0, 0, 2], &[192, 168, 1, 9]);
        let pseudo2 = checksum::pseudo_v4([10, 0, 0, 1], [192, 168, 1, 9], 6, 24);
        assert!(t.verify_checksum(pseudo2));
    }

    #[test]
    fn refuses_bad_offsets() {
        let mut seg = [0u8; 20];
        seg[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).unwrap_err(),
            WireError::Malformed
        );
        seg[12] = 0x60;
        assert_eq!(
            TcpPacket::new_checked(&seg[..]).unwrap_err(),
            WireError::Truncated
        );
        assert!(TcpPacket::new_checked(&seg[..19]).is_err());
    }
}
