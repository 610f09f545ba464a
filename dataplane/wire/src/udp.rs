//! UDP headers (RFC 768). A zero checksum over IPv4 means "none" and stays zero.

use super::checksum;
use super::{get_u16, set_u16, WireError};

pub const HEADER_LEN: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// `buf` is the UDP datagram; its length field must fit the buffer.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(get_u16(b, 4));
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if b.len() < len {
            return Err(WireError::Truncated);
        }
        Ok(UdpPacket { buf })
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    pub fn len(&self) -> usize {
        usize::from(get_u16(self.buf.as_ref(), 4))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }

    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..self.len()).unwrap_or(&[])
    }

    /// Verifies the checksum (a zero checksum passes: none was sent).
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        let d = self.buf.as_ref().get(..self.len()).unwrap_or(&[]);
        self.checksum() == 0 || checksum::fold(checksum::accumulate(pseudo, d)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
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

    /// Accounts for a pseudo-header change; a zero ("none") checksum is left alone and a
    /// result of zero is sent as 0xffff.
    pub fn adjust_checksum(&mut self, old: &[u8], new: &[u8]) {
        if self.checksum() == 0 {
            return;
        }
        let c = match checksum::update_bytes(self.checksum(), old, new) {
            0 => 0xffff,
            c => c,
        };
        set_u16(self.buf.as_mut(), 6, c);
    }

    pub fn fill_checksum(&mut self, pseudo: u32) {
        set_u16(self.buf.as_mut(), 6, 0);
        let len = self.len();
        let d = self.buf.as_ref().get(..len).unwrap_or(&[]);
        let c = match checksum::finish(checksum::accumulate(pseudo, d)) {
            0 => 0xffff,
            c => c,
        };
        set_u16(self.buf.as_mut(), 6, c);
    }
}

/// A UDP header's ports (the length comes from the datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    pub const LEN: usize = 8;

    pub fn parse<T: AsRef<[u8]>>(u: &UdpPacket<T>) -> UdpRepr {
        UdpRepr {
            src_port: u.src_port(),
            dst_port: u.dst_port(),
        }
    }

    /// Writes the header at the start of `datagram` (the payload already in place), its
    /// length, and its checksum over the datagram and `pseudo`.
    pub fn emit(&self, datagram: &mut [u8], pseudo: u32) -> Result<(), WireError> {
        let len = u16::try_from(datagram.len()).map_err(|_| WireError::Malformed)?;
        if datagram.len() < Self::LEN {
            return Err(WireError::Truncated);
        }
        set_u16(datagram, 0, self.src_port);
        set_u16(datagram, 2, self.dst_port);
        set_u16(datagram, 4, len);
        UdpPacket { buf: datagram }.fill_checksum(pseudo);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// smoltcp-style: a DNS query datagram (10.0.0.1:5353 -> 10.0.0.2:53), bytes and fields.
    const QUERY: [u8; 12] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x11, 0xef, b'a', b'b', b'c', b'd',
    ];

    #[test]
    fn bytes_and_fields_round_trip() {
        let pseudo = checksum::pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 12);
        let u = UdpPacket::new_checked(&QUERY[..]).unwrap();
        let repr = UdpRepr {
            src_port: 5353,
            dst_port: 53,
        };
        assert_eq!(UdpRepr::parse(&u), repr);
        assert!(u.verify_checksum(pseudo));
        let mut out = QUERY;
        out[..8].fill(0);
        repr.emit(&mut out, pseudo).unwrap();
        assert_eq!(out, QUERY);
    }

    #[test]
    fn checksum_none_stays_none() {
        let mut d = [0u8, 53, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];
        let mut u = UdpPacket::new_checked(&mut d[..]).unwrap();
        u.set_dst_port(5353);
        assert_eq!(u.checksum(), 0);
        let pseudo = checksum::pseudo_v4([1, 1, 1, 1], [2, 2, 2, 2], 17, 12);
        u.fill_checksum(pseudo);
        assert!(u.verify_checksum(pseudo));
        u.set_src_port(1000);
        assert!(u.verify_checksum(pseudo));
        assert_eq!(u.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn refuses_bad_lengths() {
        assert_eq!(
            UdpPacket::new_checked(&[0u8, 1, 0, 2, 0, 7, 0, 0][..]).unwrap_err(),
            WireError::Malformed
        );
        assert_eq!(
            UdpPacket::new_checked(&[0u8, 1, 0, 2, 0, 9, 0, 0][..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
