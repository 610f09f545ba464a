//! Typed views over packet bytes, in the smoltcp manner: `new_checked` validates the
//! lengths and fields a view relies on, after which accessors cannot panic (they read
//! through bounds-checked helpers that fall back to 0 and never index out of range).
//! Setters that change a covered field update the checksum incrementally (RFC 1624).
//! [`Frame`] is the buffer the core works on (an mbuf in the workers, [`VecFrame`] in
//! tests and tools). No DPDK here: everything builds and fuzzes on any machine.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod arp;
pub mod checksum;
pub mod emit;
pub mod ethernet;
pub mod fragment;
pub mod frame;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod partial;
pub mod proxy;
pub mod sctp;
pub mod tcp;
pub mod udp;
pub mod vrrp;

pub use arp::{ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr};
pub use frame::{Frame, VecFrame};
pub use icmp::IcmpPacket;
pub use icmpv6::Icmpv6Packet;
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use sctp::SctpPacket;
pub use tcp::TcpPacket;
pub use udp::UdpPacket;
pub use vrrp::{VrrpPacket, VrrpRepr};

/// Why a view refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the header (or than a length field claims).
    Truncated,
    /// A field holds a value the protocol forbids (version, header length...).
    Malformed,
    /// Valid but not handled here (an unknown hardware type, a later fragment...).
    Unsupported,
}

/// IP protocol numbers used by rvs.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const SCTP: u8 = 132;
    pub const GRE: u8 = 47;
    pub const IPV6: u8 = 41;
    pub const ICMPV6: u8 = 58;
}

/// Byte `at` of `b` (0 past its end).
#[inline]
pub fn get_u8(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// The big-endian 16 bits at `at` (0 where they are not all there).
#[inline]
pub fn get_u16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

/// The big-endian 32 bits at `at` (0 where they are not all there).
#[inline]
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

#[inline]
pub(crate) fn get_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// Copies `from` into `to` when their lengths are equal (false, nothing copied, when not),
/// as `copy_from_slice` without its panic.
#[inline]
pub fn copy_exact(to: &mut [u8], from: &[u8]) -> bool {
    if to.len() != from.len() {
        return false;
    }
    to.copy_from_slice(from);
    true
}

/// Moves `b[src]` to start at `dest`, or nothing (false) where either span would leave
/// `b`. The bytes it leaves behind hold what it moved over (no panic path, unlike
/// `copy_within`, whose assertion the compiler keeps after the same checks): the span
/// the two cover is rotated.
#[inline]
pub fn move_within(b: &mut [u8], src: std::ops::Range<usize>, dest: usize) -> bool {
    let (start, end) = (src.start, src.end);
    let Some(count) = end.checked_sub(start) else {
        return false;
    };
    if dest >= start {
        let Some(span) = dest.checked_add(count).and_then(|e| b.get_mut(start..e)) else {
            return false;
        };
        span.rotate_right((dest - start).min(span.len()));
    } else {
        let Some(span) = b.get_mut(dest..end) else {
            return false;
        };
        span.rotate_left((start - dest).min(span.len()));
    }
    true
}

/// `N` bytes of `b` from `at` as a fixed-size array (None when they are not all there).
#[inline]
pub fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// `N` bytes of `b` from `at` as a fixed-size array to write through (None when they are
/// not all there): one bounds check, then constant offsets.
#[inline]
pub fn array_mut<const N: usize>(b: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    b.get_mut(at..at.checked_add(N)?)?.try_into().ok()
}

#[inline]
pub(crate) fn set_u8(b: &mut [u8], at: usize, v: u8) {
    if let Some(x) = b.get_mut(at) {
        *x = v;
    }
}

#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    if let Some(dst) = b.get_mut(at..at + 2) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(dst) = b.get_mut(at..at + 4) {
        dst.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes `v` at `at` where `b` has room for all of it (nothing otherwise); whether it did.
#[inline]
pub fn set_bytes(b: &mut [u8], at: usize, v: &[u8]) -> bool {
    match b.get_mut(at..at + v.len()) {
        Some(dst) => {
            dst.copy_from_slice(v);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `move_within` moves what `copy_within` moves, and refuses (touching nothing)
        /// exactly the spans `copy_within` would panic on.
        #[test]
        fn move_within_moves_as_copy_within(
            len in 0usize..64,
            start in 0usize..70,
            count in 0usize..70,
            dest in 0usize..70,
        ) {
            let original: Vec<u8> = (0..len as u8).collect();
            let end = start + count;
            let fits = end <= len && dest + count <= len;
            let mut moved = original.clone();
            prop_assert_eq!(move_within(&mut moved, start..end, dest), fits);
            if fits {
                let mut copied = original.clone();
                copied.copy_within(start..end, dest);
                prop_assert_eq!(&moved[dest..dest + count], &copied[dest..dest + count]);
                // Outside the two spans nothing changes.
                let (lo, hi) = (start.min(dest), end.max(dest + count));
                prop_assert_eq!(&moved[..lo], &original[..lo]);
                prop_assert_eq!(&moved[hi..], &original[hi..]);
            } else {
                prop_assert_eq!(moved, original);
            }
        }
    }

    #[test]
    fn copy_exact_copies_only_equal_lengths() {
        let mut to = [0u8; 3];
        assert!(!copy_exact(&mut to, &[1, 2]));
        assert_eq!(to, [0, 0, 0]);
        assert!(copy_exact(&mut to, &[1, 2, 3]));
        assert_eq!(to, [1, 2, 3]);
    }
}
