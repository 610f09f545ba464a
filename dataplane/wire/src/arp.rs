//! ARP for IPv4 over Ethernet (RFC 826).

use super::{get_array, get_u16, get_u8, set_bytes, set_u16, WireError};

pub const LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Accepts Ethernet/IPv4 ARP only.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < LEN {
            return Err(WireError::Truncated);
        }
        if get_u16(b, 0) != 1 || get_u16(b, 2) != 0x0800 || get_u8(b, 4) != 6 || get_u8(b, 5) != 4 {
            return Err(WireError::Unsupported);
        }
        Ok(ArpPacket { buf })
    }

    pub fn op(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }

    pub fn sender_mac(&self) -> [u8; 6] {
        get_array(self.buf.as_ref(), 8)
    }

    pub fn sender_ip(&self) -> [u8; 4] {
        get_array(self.buf.as_ref(), 14)
    }

    pub fn target_mac(&self) -> [u8; 6] {
        get_array(self.buf.as_ref(), 18)
    }

    pub fn target_ip(&self) -> [u8; 4] {
        get_array(self.buf.as_ref(), 24)
    }
}

/// An Ethernet/IPv4 ARP packet's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: [u8; 4],
    pub target_mac: [u8; 6],
    pub target_ip: [u8; 4],
}

impl ArpRepr {
    pub const LEN: usize = 28;

    pub fn parse<T: AsRef<[u8]>>(a: &ArpPacket<T>) -> ArpRepr {
        ArpRepr {
            op: a.op(),
            sender_mac: a.sender_mac(),
            sender_ip: a.sender_ip(),
            target_mac: a.target_mac(),
            target_ip: a.target_ip(),
        }
    }

    /// Writes the packet into the first 28 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        set_u16(buf, 0, 1);
        set_u16(buf, 2, 0x0800);
        set_bytes(buf, 4, &[6, 4]);
        set_u16(buf, 6, self.op);
        set_bytes(buf, 8, &self.sender_mac);
        set_bytes(buf, 14, &self.sender_ip);
        set_bytes(buf, 18, &self.target_mac);
        set_bytes(buf, 24, &self.target_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// smoltcp-style: a who-has as bytes and as fields, both ways.
    const WHO_HAS: [u8; 28] = [
        0, 1, 0x08, 0, 6, 4, 0, 1, 1, 1, 1, 1, 1, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];
    const REPR: ArpRepr = ArpRepr {
        op: OP_REQUEST,
        sender_mac: [1; 6],
        sender_ip: [10, 0, 0, 1],
        target_mac: [0; 6],
        target_ip: [10, 0, 0, 2],
    };

    #[test]
    fn round_trip_and_refusals() {
        let mut b = [0u8; 28];
        REPR.emit(&mut b);
        assert_eq!(b, WHO_HAS);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&WHO_HAS[..]).unwrap()),
            REPR
        );
        let a = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(a.op(), OP_REQUEST);
        assert_eq!(
            (a.sender_ip(), a.target_ip()),
            ([10, 0, 0, 1], [10, 0, 0, 2])
        );
        assert_eq!(a.sender_mac(), [1; 6]);
        assert_eq!(
            ArpPacket::new_checked(&b[..27]).unwrap_err(),
            WireError::Truncated
        );
        b[5] = 16;
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::Unsupported
        );
    }
}
