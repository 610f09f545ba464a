//! IPv4 fragmentation (RFC 791 section 3.2), as a router (and IPVS, through the kernel's
//! output path) does for a datagram without DF that is longer than its out link's MTU.
//! Options follow Linux's `ip_options_fragment`: the first fragment carries them all, a
//! later one keeps those with the copy bit and has the others overwritten by NOPs, so
//! every fragment's header has the original's length.

use crate::checksum;
use crate::ethernet::EtherType;
use crate::ipv4::{DONT_FRAGMENT, MIN_HEADER_LEN, MORE_FRAGMENTS};
use crate::{get_u16, get_u8};

/// Link header (Ethernet with up to two VLAN tags) plus the largest IPv4 header: what
/// each fragment repeats.
pub const MAX_HEAD: usize = 14 + 8 + 60;

/// Why a frame was not fragmented (nothing was emitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// Not an IPv4 datagram whole in the frame (or more than two VLAN tags).
    NotIpv4,
    /// DF is set: the sender must be told, not the datagram split.
    DontFragment,
    /// The MTU leaves no room for 8 bytes of payload after the header.
    MtuTooSmall,
    /// An option's length runs past the header.
    BadOptions,
}

/// The frame's IPv4 header offset and its header and total lengths.
fn locate(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let mut at = 12;
    for _ in 0..2 {
        if matches!(get_u16(frame, at), 0x8100 | 0x88a8) {
            at += 4;
        }
    }
    if get_u16(frame, at) != EtherType::IPV4 {
        return None;
    }
    let l3 = at + 2;
    let first = get_u8(frame, l3);
    let ihl = usize::from(first & 0x0f) * 4;
    let total = usize::from(get_u16(frame, l3 + 2));
    let whole = frame.len() >= l3 + total && frame.len() >= l3 + MIN_HEADER_LEN;
    (first >> 4 == 4 && ihl >= MIN_HEADER_LEN && total >= ihl && whole).then_some((l3, ihl, total))
}

/// Overwrites the options without the copy bit with NOPs (what a later fragment carries).
fn options_for_later_fragments(options: &mut [u8]) -> Result<(), FragmentError> {
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let len = usize::from(get_u8(options, i + 1));
                let Some(option) = options.get_mut(i..i + len).filter(|_| len >= 2) else {
                    return Err(FragmentError::BadOptions);
                };
                if kind & 0x80 == 0 {
                    option.fill(1);
                }
                i += len;
            }
        }
    }
    Ok(())
}

/// Splits the IPv4 datagram of Ethernet `frame` into fragments of at most `mtu` bytes of
/// IP each, in order, calling `emit(head, payload)` for each: `head` the frame's link
/// header and the fragment's IPv4 header (checksum computed), `payload` its share of the
/// datagram's payload. A datagram that is itself a fragment keeps its offset and, on its
/// last piece, its MF. Returns how many were emitted, stopping at the first `emit` that
/// fails (the rest of the datagram is then lost, as its fragments would be).
pub fn fragment_ipv4(
    frame: &[u8],
    mtu: usize,
    mut emit: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<usize, FragmentError> {
    let Some((l3, ihl, total)) = locate(frame) else {
        return Err(FragmentError::NotIpv4);
    };
    let flags = get_u16(frame, l3 + 6);
    if flags & DONT_FRAGMENT != 0 {
        return Err(FragmentError::DontFragment);
    }
    let per_fragment = mtu.saturating_sub(ihl) & !7;
    if per_fragment == 0 {
        return Err(FragmentError::MtuTooSmall);
    }
    let (Some(head_in), Some(payload)) = (frame.get(..l3 + ihl), frame.get(l3 + ihl..l3 + total))
    else {
        return Err(FragmentError::NotIpv4);
    };
    let mut head = [0u8; MAX_HEAD];
    let Some(head) = head.get_mut(..head_in.len()) else {
        return Err(FragmentError::NotIpv4);
    };
    head.copy_from_slice(head_in);
    let mut later_options = [0u8; 40];
    let later_options = later_options
        .get_mut(..ihl - MIN_HEADER_LEN)
        .unwrap_or(&mut []);
    later_options.copy_from_slice(head_in.get(l3 + MIN_HEADER_LEN..).unwrap_or(&[]));
    options_for_later_fragments(later_options)?;
    let base = usize::from(flags & 0x1fff) * 8;
    let kept_flags = flags & !(MORE_FRAGMENTS | 0x1fff);
    // One that fits goes whole (an empty payload too).
    let per_fragment = if ihl + payload.len() <= mtu {
        payload.len().max(1)
    } else {
        per_fragment
    };
    let mut sent = 0;
    let whole: [&[u8]; 1] = [&[]];
    let pieces = payload.chunks(per_fragment);
    let pieces = whole
        .into_iter()
        .take(usize::from(payload.is_empty()))
        .chain(pieces);
    for (n, piece) in pieces.enumerate() {
        let at = n * per_fragment;
        let last = at + piece.len() == payload.len();
        let more = if last {
            flags & MORE_FRAGMENTS
        } else {
            MORE_FRAGMENTS
        };
        if n == 1 {
            if let Some(options) = head.get_mut(l3 + MIN_HEADER_LEN..) {
                options.copy_from_slice(later_options);
            }
        }
        let ip = head.get_mut(l3..).unwrap_or(&mut []);
        set(ip, 2, (ihl + piece.len()) as u16);
        set(
            ip,
            6,
            kept_flags | more | (((base + at) / 8) as u16 & 0x1fff),
        );
        set(ip, 10, 0);
        let sum = checksum::checksum(ip);
        set(ip, 10, sum);
        if !emit(head, piece) {
            break;
        }
        sent += 1;
    }
    Ok(sent)
}

fn set(b: &mut [u8], at: usize, v: u16) {
    if let Some(d) = b.get_mut(at..at + 2) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ipv4Packet;
    use proptest::prelude::*;

    /// An Ethernet frame (with `tags` VLAN tags) holding an IPv4 datagram.
    fn frame(tags: usize, options: &[u8], flags: u16, payload: &[u8], padding: usize) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for t in 0..tags {
            f.extend_from_slice(&[0x81, 0x00, 0, 10 + t as u8]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let ihl = 20 + options.len();
        let total = (ihl + payload.len()) as u16;
        let mut ip = vec![0x40 | (ihl / 4) as u8, 0xb8];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&0x1234u16.to_be_bytes());
        ip.extend_from_slice(&flags.to_be_bytes());
        ip.extend_from_slice(&[63, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        ip.extend_from_slice(options);
        let sum = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(payload);
        f.resize(f.len() + padding, 0xee);
        f
    }

    fn pieces(f: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, FragmentError> {
        let mut out = Vec::new();
        fragment_ipv4(f, mtu, |head, payload| {
            out.push([head, payload].concat());
            true
        })?;
        Ok(out)
    }

    #[test]
    fn a_1520_byte_datagram_in_two_for_a_1500_mtu() {
        let payload: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let f = frame(0, &[], 0, &payload, 0);
        let out = pieces(&f, 1500).unwrap();
        assert_eq!(out.len(), 2);
        let (a, b) = (
            Ipv4Packet::new_checked(&out[0][14..]).unwrap(),
            Ipv4Packet::new_checked(&out[1][14..]).unwrap(),
        );
        assert_eq!(
            (a.total_len(), a.more_fragments(), a.frag_offset()),
            (1500, true, 0)
        );
        assert_eq!(
            (b.total_len(), b.more_fragments(), b.frag_offset()),
            (40, false, 1480)
        );
        assert!(a.verify_checksum() && b.verify_checksum());
        assert_eq!(
            (a.ident(), b.ident(), a.ttl(), a.dscp_ecn()),
            (0x1234, 0x1234, 63, 0xb8)
        );
        assert_eq!([a.payload(), b.payload()].concat(), payload);
        assert_eq!(&out[0][..14], &f[..14]);
    }

    #[test]
    fn refusals() {
        let payload = [7u8; 100];
        let df = frame(0, &[], DONT_FRAGMENT, &payload, 0);
        assert_eq!(pieces(&df, 68), Err(FragmentError::DontFragment));
        let plain = frame(0, &[], 0, &payload, 0);
        assert_eq!(pieces(&plain, 27), Err(FragmentError::MtuTooSmall));
        assert_eq!(pieces(&plain[..60], 68), Err(FragmentError::NotIpv4));
        // An option whose length runs past the header.
        let bad = frame(0, &[0x07, 9, 4, 0], 0, &payload, 0);
        assert_eq!(pieces(&bad, 68), Err(FragmentError::BadOptions));
        let mut arp = plain.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(pieces(&arp, 68), Err(FragmentError::NotIpv4));
    }

    #[test]
    fn a_failed_emit_stops_the_rest() {
        let f = frame(0, &[], 0, &[1u8; 1000], 0);
        let mut calls = 0;
        let sent = fragment_ipv4(&f, 300, |_, _| {
            calls += 1;
            calls < 2
        });
        assert_eq!((sent, calls), (Ok(1), 2));
    }

    /// Options: record route (not copied), then a copied security-like option (130),
    /// then NOP and EOL.
    const OPTIONS: [u8; 20] = [
        7, 7, 4, 0, 0, 0, 0, // record route, one slot
        130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, // copied, 11 bytes
        1, 0, // NOP, EOL
    ];

    proptest! {
        #[test]
        fn fragments_reassemble_to_the_datagram(
            payload_len in 0usize..3000, mtu in 68usize..1600, tags in 0usize..3,
            with_options in any::<bool>(), offset in 0u16..64, mf in any::<bool>(),
            padding in 0usize..8, seed in any::<u8>(),
        ) {
            let payload: Vec<u8> = (0..payload_len).map(|i| (i as u8) ^ seed).collect();
            let options: &[u8] = if with_options { &OPTIONS } else { &[] };
            let flags = offset | if mf { MORE_FRAGMENTS } else { 0 };
            let f = frame(tags, options, flags, &payload, padding);
            let l3 = 14 + 4 * tags;
            let ihl = 20 + options.len();
            let out = pieces(&f, mtu).unwrap();
            prop_assert!(!out.is_empty());
            let original = Ipv4Packet::new_checked(&f[l3..]).unwrap();
            let mut joined = Vec::new();
            for (n, piece) in out.iter().enumerate() {
                prop_assert_eq!(&piece[..l3], &f[..l3]);
                let ip = Ipv4Packet::new_checked(&piece[l3..]).unwrap();
                prop_assert_eq!(ip.total_len(), piece.len() - l3);
                prop_assert!(ip.total_len() <= mtu);
                prop_assert!(ip.verify_checksum());
                prop_assert_eq!(ip.header_len(), ihl);
                prop_assert_eq!(
                    (ip.ident(), ip.ttl(), ip.protocol(), ip.src(), ip.dst(), ip.dscp_ecn()),
                    (original.ident(), original.ttl(), original.protocol(), original.src(),
                     original.dst(), original.dscp_ecn())
                );
                prop_assert!(!ip.dont_fragment());
                prop_assert_eq!(ip.frag_offset(), usize::from(offset) * 8 + joined.len());
                let last = n + 1 == out.len();
                prop_assert_eq!(ip.more_fragments(), if last { mf } else { true });
                if !last {
                    prop_assert_eq!(ip.payload().len() % 8, 0);
                }
                if with_options {
                    let want: &[u8] = if n == 0 {
                        &OPTIONS
                    } else {
                        &[1, 1, 1, 1, 1, 1, 1, 130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
                    };
                    prop_assert_eq!(ip.options(), want);
                }
                joined.extend_from_slice(ip.payload());
            }
            prop_assert_eq!(joined, payload);
            let fits = ihl + payload_len <= mtu;
            prop_assert_eq!(out.len() == 1, fits || payload_len <= (mtu - ihl) & !7);
        }
    }
}
