//! ICMP for IPv4 (RFC 792): echo, and errors that embed the offending IP header.

use super::checksum;
use super::{get_u16, get_u8, set_u16, set_u8, WireError};

pub const HEADER_LEN: usize = 8;

pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAMETER_PROBLEM: u8 = 12;

pub const CODE_PORT_UNREACHABLE: u8 = 3;
pub const CODE_FRAG_NEEDED: u8 = 4;

#[derive(Debug, Clone, Copy)]
pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(IcmpPacket { buf })
    }

    pub fn msg_type(&self) -> u8 {
        get_u8(self.buf.as_ref(), 0)
    }

    pub fn code(&self) -> u8 {
        get_u8(self.buf.as_ref(), 1)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }

    /// Echo identifier (echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buf.as_ref(), 4)
    }

    /// Next-hop MTU of a fragmentation-needed error.
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }

    /// True for the error types that carry the offending datagram.
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            DEST_UNREACHABLE | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }

    /// The data after the 8-byte header (for errors: the embedded IP header and more).
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::accumulate(0, self.buf.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    pub fn set_type(&mut self, t: u8) {
        let old = [self.msg_type(), self.code()];
        set_u8(self.buf.as_mut(), 0, t);
        self.adjust_checksum(&old, &[t, old[1]]);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut().get_mut(HEADER_LEN..).unwrap_or(&mut [])
    }

    /// Accounts for a change of covered bytes (the embedded header) from `old` to `new`.
    /// Both must start at an even offset within the message.
    pub fn adjust_checksum(&mut self, old: &[u8], new: &[u8]) {
        let c = checksum::update_bytes(self.checksum(), old, new);
        set_u16(self.buf.as_mut(), 2, c);
    }

    pub fn fill_checksum(&mut self) {
        set_u16(self.buf.as_mut(), 2, 0);
        let c = checksum::checksum(self.buf.as_ref());
        set_u16(self.buf.as_mut(), 2, c);
    }
}

/// Writes an ICMP header (type, code, 4 bytes of rest-of-header) without the checksum;
/// call [`IcmpPacket::fill_checksum`] once the payload is in place.
pub fn emit_header(buf: &mut [u8], msg_type: u8, code: u8, rest: [u8; 4]) {
    set_u8(buf, 0, msg_type);
    set_u8(buf, 1, code);
    set_u16(buf, 2, 0);
    super::set_bytes(buf, 4, &rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_reply_by_type_change_keeps_checksum() {
        let mut m = [
            ECHO_REQUEST,
            0,
            0,
            0,
            0x12,
            0x34,
            0,
            1,
            b'p',
            b'i',
            b'n',
            b'g',
        ];
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_type(ECHO_REPLY);
        assert!(p.verify_checksum());
        assert_eq!(
            (p.msg_type(), p.echo_ident(), p.is_error()),
            (ECHO_REPLY, 0x1234, false)
        );
        assert!(IcmpPacket::new_checked(&m[..7]).is_err());
    }
}
