//! Ethernet II frames with up to two 802.1Q/802.1ad tags.

use super::{array_mut, get_array, get_u16, set_bytes, WireError};

pub const HEADER_LEN: usize = 14;
pub const VLAN_TAG_LEN: usize = 4;

/// EtherType values rvs handles.
pub struct EtherType;

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T> {
    buf: T,
    /// Offset of the payload (after any VLAN tags).
    payload_at: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Checks the header and any VLAN tags fit.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let mut at = 12;
        let mut tags = 0;
        while matches!(get_u16(b, at), EtherType::VLAN | EtherType::QINQ) {
            tags += 1;
            if tags > 2 {
                return Err(WireError::Unsupported);
            }
            at += VLAN_TAG_LEN;
            if b.len() < at + 2 {
                return Err(WireError::Truncated);
            }
        }
        Ok(EthernetFrame {
            buf,
            payload_at: at + 2,
        })
    }

    pub fn dst(&self) -> [u8; 6] {
        get_array(self.buf.as_ref(), 0)
    }

    pub fn src(&self) -> [u8; 6] {
        get_array(self.buf.as_ref(), 6)
    }

    /// The EtherType of the payload (after VLAN tags).
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buf.as_ref(), self.payload_at - 2)
    }

    /// The outermost VLAN id, if tagged.
    pub fn vlan(&self) -> Option<u16> {
        let b = self.buf.as_ref();
        (self.payload_at > HEADER_LEN).then(|| get_u16(b, 14) & 0x0fff)
    }

    /// Header length including tags.
    pub fn header_len(&self) -> usize {
        self.payload_at
    }

    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(self.payload_at..).unwrap_or(&[])
    }

    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        set_bytes(self.buf.as_mut(), 0, &mac);
    }

    pub fn set_src(&mut self, mac: [u8; 6]) {
        set_bytes(self.buf.as_mut(), 6, &mac);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.payload_at;
        self.buf.as_mut().get_mut(at..).unwrap_or(&mut [])
    }
}

/// An untagged Ethernet header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: u16,
}

impl EthernetRepr {
    pub const LEN: usize = 14;

    /// The fields of a checked frame (the inner ethertype of a tagged one).
    pub fn parse<T: AsRef<[u8]>>(f: &EthernetFrame<T>) -> EthernetRepr {
        EthernetRepr {
            dst: f.dst(),
            src: f.src(),
            ethertype: f.ethertype(),
        }
    }

    /// Writes the header into the first 14 bytes of `buf` (nothing into a shorter one).
    pub fn emit(&self, buf: &mut [u8]) {
        let Some(h) = array_mut::<HEADER_LEN>(buf, 0) else {
            return;
        };
        h[..6].copy_from_slice(&self.dst);
        h[6..12].copy_from_slice(&self.src);
        h[12..].copy_from_slice(&self.ethertype.to_be_bytes());
    }
}

/// Writes an untagged Ethernet header into the first 14 bytes of `buf`.
pub fn emit_header(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    EthernetRepr {
        dst,
        src,
        ethertype,
    }
    .emit(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// smoltcp-style: a frame as bytes, its fields, and both ways between them.
    const FRAME: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0xcc, 0, 0, 0, 0x07, 0x08, 0x00, 0x45, 0, 0, 0x14,
    ];
    const REPR: EthernetRepr = EthernetRepr {
        dst: [2, 0, 0, 0, 0, 1],
        src: [2, 0xcc, 0, 0, 0, 7],
        ethertype: EtherType::IPV4,
    };

    #[test]
    fn bytes_and_fields_round_trip() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f), REPR);
        assert_eq!(f.payload(), &FRAME[14..]);
        let mut out = [0u8; EthernetRepr::LEN];
        REPR.emit(&mut out);
        assert_eq!(out, FRAME[..14]);
    }

    #[test]
    fn plain_and_tagged_frames() {
        let mut f = vec![0u8; 60];
        emit_header(&mut f, [1; 6], [2; 6], EtherType::IPV4);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((e.dst(), e.src(), e.ethertype()), ([1; 6], [2; 6], 0x0800));
        assert_eq!((e.vlan(), e.header_len()), (None, 14));

        f[12..18].copy_from_slice(&[0x81, 0x00, 0x20, 0x0a, 0x86, 0xdd]);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(
            (e.vlan(), e.ethertype(), e.header_len()),
            (Some(10), 0x86dd, 18)
        );
    }

    #[test]
    fn truncated_and_too_many_tags() {
        for len in 0..14 {
            assert_eq!(
                EthernetFrame::new_checked(&[0u8; 14][..len]).unwrap_err(),
                WireError::Truncated
            );
        }
        let mut f = [0u8; 16];
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut f = [0u8; 40];
        for at in [12, 16, 20] {
            f[at..at + 2].copy_from_slice(&[0x81, 0x00]);
        }
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap_err(),
            WireError::Unsupported
        );
    }
}
