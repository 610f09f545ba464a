//! ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861).

use super::checksum;
use super::{get_array, get_u32, get_u8, set_bytes, set_u16, set_u32, set_u8, WireError};

pub const HEADER_LEN: usize = 8;

pub const DEST_UNREACHABLE: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAMETER_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;

pub const CODE_PORT_UNREACHABLE: u8 = 4;

/// ND option types.
pub const OPT_SOURCE_LL: u8 = 1;
pub const OPT_TARGET_LL: u8 = 2;

/// NA flags.
pub const NA_ROUTER: u32 = 0x8000_0000;
pub const NA_SOLICITED: u32 = 0x4000_0000;
pub const NA_OVERRIDE: u32 = 0x2000_0000;

/// Length of a neighbour solicitation/advertisement before options.
pub const ND_LEN: usize = 24;

#[derive(Debug, Clone, Copy)]
pub struct Icmpv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if matches!(get_u8(b, 0), NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT) && b.len() < ND_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv6Packet { buf })
    }

    pub fn msg_type(&self) -> u8 {
        get_u8(self.buf.as_ref(), 0)
    }

    pub fn code(&self) -> u8 {
        get_u8(self.buf.as_ref(), 1)
    }

    pub fn checksum(&self) -> u16 {
        super::get_u16(self.buf.as_ref(), 2)
    }

    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// MTU of a packet-too-big message.
    pub fn mtu(&self) -> u32 {
        get_u32(self.buf.as_ref(), 4)
    }

    /// Target address of a neighbour solicitation or advertisement.
    pub fn nd_target(&self) -> [u8; 16] {
        get_array(self.buf.as_ref(), 8)
    }

    pub fn na_flags(&self) -> u32 {
        get_u32(self.buf.as_ref(), 4)
    }

    /// The link-layer address carried in an ND option of type `opt` (source or target).
    pub fn nd_lladdr(&self, opt: u8) -> Option<[u8; 6]> {
        let b = self.buf.as_ref();
        let mut at = ND_LEN;
        while at + 2 <= b.len() {
            let len = usize::from(get_u8(b, at + 1)) * 8;
            if len == 0 || at + len > b.len() {
                return None;
            }
            if get_u8(b, at) == opt && len >= 8 {
                return Some(get_array(b, at + 2));
            }
            at += len;
        }
        None
    }

    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::fold(checksum::accumulate(pseudo, self.buf.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_type(&mut self, t: u8) {
        let old = [self.msg_type(), self.code()];
        set_u8(self.buf.as_mut(), 0, t);
        self.adjust_checksum(&old, &[t, old[1]]);
    }

    pub fn adjust_checksum(&mut self, old: &[u8], new: &[u8]) {
        let c = checksum::update_bytes(self.checksum(), old, new);
        set_u16(self.buf.as_mut(), 2, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut().get_mut(HEADER_LEN..).unwrap_or(&mut [])
    }

    pub fn fill_checksum(&mut self, pseudo: u32) {
        set_u16(self.buf.as_mut(), 2, 0);
        let c = checksum::finish(checksum::accumulate(pseudo, self.buf.as_ref()));
        set_u16(self.buf.as_mut(), 2, c);
    }
}

/// Writes a neighbour advertisement for `target` with a target link-layer option into the
/// first 32 bytes of `buf` (checksum left to [`Icmpv6Packet::fill_checksum`]).
pub fn emit_neighbor_advert(buf: &mut [u8], target: [u8; 16], mac: [u8; 6], flags: u32) {
    set_u8(buf, 0, NEIGHBOR_ADVERT);
    set_u8(buf, 1, 0);
    set_u16(buf, 2, 0);
    set_u32(buf, 4, flags);
    set_bytes(buf, 8, &target);
    set_bytes(buf, ND_LEN, &[OPT_TARGET_LL, 1]);
    set_bytes(buf, ND_LEN + 2, &mac);
}

/// Writes a neighbour solicitation for `target` with a source link-layer option into the
/// first 32 bytes of `buf`.
pub fn emit_neighbor_solicit(buf: &mut [u8], target: [u8; 16], mac: [u8; 6]) {
    set_u8(buf, 0, NEIGHBOR_SOLICIT);
    set_u8(buf, 1, 0);
    set_u16(buf, 2, 0);
    set_u32(buf, 4, 0);
    set_bytes(buf, 8, &target);
    set_bytes(buf, ND_LEN, &[OPT_SOURCE_LL, 1]);
    set_bytes(buf, ND_LEN + 2, &mac);
}

/// Writes a whole neighbour-discovery frame: Ethernet, IPv6 (hop limit 255) and the
/// 32-byte message `body` fills, with its checksum. `b` needs [`ND_FRAME_LEN`] bytes.
pub fn emit_nd_frame(
    b: &mut [u8],
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: [u8; 16],
    dst: [u8; 16],
    body: impl FnOnce(&mut [u8]),
) {
    use crate::{ethernet, ipv6, EtherType};
    ethernet::emit_header(b, eth_dst, eth_src, EtherType::IPV6);
    let l3 = ethernet::HEADER_LEN;
    let l4 = l3 + ipv6::HEADER_LEN;
    let Some(ip) = b.get_mut(l3..l4) else { return };
    ipv6::Ipv6Repr {
        src,
        dst,
        next_header: crate::proto::ICMPV6,
        payload_len: 32,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(ip);
    let Some(m) = b.get_mut(l4..l4 + 32) else {
        return;
    };
    body(m);
    let pseudo = checksum::pseudo_v6(src, dst, crate::proto::ICMPV6, 32);
    if let Ok(mut p) = Icmpv6Packet::new_checked(m) {
        p.fill_checksum(pseudo);
    }
}

/// A neighbour-discovery frame's length (Ethernet, IPv6, 32-byte message).
pub const ND_FRAME_LEN: usize = 14 + 40 + 32;

/// The solicited-node multicast address of `addr`: ff02::1:ff00:0/104 plus its last 24 bits.
pub fn solicited_node(addr: [u8; 16]) -> [u8; 16] {
    let mut out = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    out[13..].copy_from_slice(&addr[13..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbor_discovery_round_trip() {
        let target = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        let mut b = [0u8; 32];
        emit_neighbor_solicit(&mut b, target, [2, 0, 0, 0, 0, 1]);
        let src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let pseudo = checksum::pseudo_v6(src, solicited_node(target), 58, 32);
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(pseudo);
        assert!(p.verify_checksum(pseudo));
        assert_eq!(p.nd_target(), target);
        assert_eq!(p.nd_lladdr(OPT_SOURCE_LL), Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.nd_lladdr(OPT_TARGET_LL), None);

        emit_neighbor_advert(
            &mut b,
            target,
            [2, 0, 0, 0, 0, 9],
            NA_SOLICITED | NA_OVERRIDE,
        );
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), NEIGHBOR_ADVERT);
        assert_eq!(p.na_flags(), NA_SOLICITED | NA_OVERRIDE);
        assert_eq!(p.nd_lladdr(OPT_TARGET_LL), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(solicited_node(target)[13..], [0, 0, 0x10]);
    }

    #[test]
    fn zero_length_option_stops_the_walk() {
        let mut b = [0u8; 32];
        b[0] = NEIGHBOR_SOLICIT;
        b[24] = OPT_SOURCE_LL; // length 0: invalid
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.nd_lladdr(OPT_SOURCE_LL), None);
        assert!(Icmpv6Packet::new_checked(&b[..20]).is_err());
    }
}
