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

/// Writes an Ethernet/IPv4 ARP packet into the first 28 bytes of `buf`.
pub fn emit(
    buf: &mut [u8],
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: [u8; 4],
    target_mac: [u8; 6],
    target_ip: [u8; 4],
) {
    set_u16(buf, 0, 1);
    set_u16(buf, 2, 0x0800);
    set_bytes(buf, 4, &[6, 4]);
    set_u16(buf, 6, op);
    set_bytes(buf, 8, &sender_mac);
    set_bytes(buf, 14, &sender_ip);
    set_bytes(buf, 18, &target_mac);
    set_bytes(buf, 24, &target_ip);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut b = [0u8; 28];
        emit(
            &mut b,
            OP_REQUEST,
            [1; 6],
            [10, 0, 0, 1],
            [0; 6],
            [10, 0, 0, 2],
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
