//! IPv4 fragmentation (RFC 791 section 3.2), as a router (and IPVS, through the kernel's
//! output path) does for a datagram without DF that is longer than its out link's MTU.
//! Options follow Linux's `ip_options_fragment`: the first fragment carries them all, a
//! later one keeps those with the copy bit and has the others overwritten by NOPs, so
//! every fragment's header has the original's length.
//!
//! IPv6 fragmentation at the source (RFC 8200 section 4.5), for the datagrams rvs makes
//! itself: a tunnel's outer IPv6 header around an IPv4 datagram without DF.

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
    /// Not an IPv6 datagram whole in the frame (or more than two VLAN tags).
    NotIpv6,
    /// The IPv6 datagram has extension headers (only one without any is fragmented here).
    ExtensionHeaders,
}

/// Where the frame's IP header starts (after up to two VLAN tags), and its EtherType.
fn network_header(frame: &[u8]) -> (usize, u16) {
    let mut at = 12;
    for _ in 0..2 {
        if matches!(get_u16(frame, at), 0x8100 | 0x88a8) {
            at += 4;
        }
    }
    (at + 2, get_u16(frame, at))
}

/// The frame's IPv4 header offset and its header and total lengths.
fn locate(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let (l3, ether_type) = network_header(frame);
    if ether_type != EtherType::IPV4 {
        return None;
    }
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
    crate::copy_exact(
        later_options,
        head_in.get(l3 + MIN_HEADER_LEN..).unwrap_or(&[]),
    );
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
                crate::copy_exact(options, later_options);
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

/// The frame's IPv6 header offset and the datagram's end.
fn locate6(frame: &[u8]) -> Option<(usize, usize)> {
    let (l3, ether_type) = network_header(frame);
    if ether_type != EtherType::IPV6 {
        return None;
    }
    let end = l3 + IPV6_HEADER_LEN + usize::from(get_u16(frame, l3 + 4));
    (get_u8(frame, l3) >> 4 == 6 && frame.len() >= end).then_some((l3, end))
}

/// Splits the IPv6 datagram of Ethernet `frame` into fragments of at most `mtu` bytes of IP
/// each, with fragment headers of identification `ident`, in order, calling `emit(head,
/// payload)` for each: `head` the link header, the IPv6 header (its payload length and
/// next header set) and the fragment header; `payload` its share of the datagram's
/// payload (a multiple of 8 bytes but in the last). One that fits is emitted whole. Only a
/// datagram without extension headers is fragmented (what rvs sends: a tunnel's outer
/// header). Returns how many were emitted, stopping at the first `emit` that fails.
pub fn fragment_ipv6(
    frame: &[u8],
    mtu: usize,
    ident: u32,
    mut emit: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<usize, FragmentError> {
    let Some((l3, end)) = locate6(frame) else {
        return Err(FragmentError::NotIpv6);
    };
    let (Some(head_in), Some(payload)) = (
        frame.get(..l3 + IPV6_HEADER_LEN),
        frame.get(l3 + IPV6_HEADER_LEN..end),
    ) else {
        return Err(FragmentError::NotIpv6);
    };
    if IPV6_HEADER_LEN + payload.len() <= mtu {
        return Ok(usize::from(emit(head_in, payload)));
    }
    let next = get_u8(frame, l3 + 6);
    // Hop-by-hop, routing, fragment and destination options headers.
    if matches!(next, 0 | 43 | 44 | 60) {
        return Err(FragmentError::ExtensionHeaders);
    }
    let per_fragment = mtu.saturating_sub(IPV6_HEADER_LEN + IPV6_FRAGMENT_HEADER_LEN) & !7;
    if per_fragment == 0 {
        return Err(FragmentError::MtuTooSmall);
    }
    let mut head = [0u8; MAX_HEAD];
    let Some(head) = head.get_mut(..l3 + IPV6_HEADER_LEN + IPV6_FRAGMENT_HEADER_LEN) else {
        return Err(FragmentError::NotIpv6);
    };
    let Some((ip_head, fragment_header)) = head.split_at_mut_checked(l3 + IPV6_HEADER_LEN) else {
        return Err(FragmentError::NotIpv6);
    };
    crate::copy_exact(ip_head, head_in);
    if let Some(n) = ip_head.get_mut(l3 + 6) {
        *n = IPV6_FRAGMENT;
    }
    let [id0, id1, id2, id3] = ident.to_be_bytes();
    if let Ok(h) = <&mut [u8; IPV6_FRAGMENT_HEADER_LEN]>::try_from(fragment_header) {
        // Next header, reserved, offset and M (set per fragment), identification.
        *h = [next, 0, 0, 0, id0, id1, id2, id3];
    }
    let mut sent = 0;
    for (n, piece) in payload.chunks(per_fragment).enumerate() {
        let at = n * per_fragment;
        let more = u16::from(at + piece.len() < payload.len());
        set(
            head,
            l3 + 4,
            (IPV6_FRAGMENT_HEADER_LEN + piece.len()) as u16,
        );
        // The offset in 8-byte units, shifted left by 3: the byte offset itself.
        set(head, l3 + IPV6_HEADER_LEN + 2, at as u16 | more);
        if !emit(head, piece) {
            break;
        }
        sent += 1;
    }
    Ok(sent)
}

/// [`fragment_ipv4`] or [`fragment_ipv6`] by the frame's datagram (`ipv6_ident` for an
/// IPv6 one's fragment headers).
pub fn fragment(
    frame: &[u8],
    mtu: usize,
    ipv6_ident: u32,
    emit: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<usize, FragmentError> {
    if locate6(frame).is_some() {
        fragment_ipv6(frame, mtu, ipv6_ident, emit)
    } else {
        fragment_ipv4(frame, mtu, emit)
    }
}

const IPV6_HEADER_LEN: usize = 40;
const IPV6_FRAGMENT_HEADER_LEN: usize = 8;
/// The fragment header's protocol number.
const IPV6_FRAGMENT: u8 = 44;

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

        #[test]
        fn ipv6_fragments_reassemble_to_the_datagram(
            payload_len in 0usize..3000, mtu in 56usize..1600, tags in 0usize..3,
            ident in any::<u32>(), padding in 0usize..8, seed in any::<u8>(),
        ) {
            let payload: Vec<u8> = (0..payload_len).map(|i| (i as u8) ^ seed).collect();
            let f = frame6(tags, 4, &payload, padding);
            let l3 = 14 + 4 * tags;
            let out = pieces6(&f, mtu, ident).unwrap();
            let fits = 40 + payload_len <= mtu;
            if fits {
                prop_assert_eq!(out.len(), 1);
                prop_assert_eq!(&out[0][..], &f[..f.len() - padding]);
                return Ok(());
            }
            let mut joined = Vec::new();
            for (n, piece) in out.iter().enumerate() {
                // Link header, then the IPv6 header as it was but for its length and next
                // header (RFC 8200: the unfragmentable part is repeated).
                prop_assert_eq!(&piece[..l3 + 4], &f[..l3 + 4]);
                prop_assert_eq!(&piece[l3 + 7..l3 + 40], &f[l3 + 7..l3 + 40]);
                let len = usize::from(u16::from_be_bytes([piece[l3 + 4], piece[l3 + 5]]));
                prop_assert_eq!(len, piece.len() - l3 - 40);
                prop_assert!(40 + len <= mtu);
                prop_assert_eq!(piece[l3 + 6], 44, "a fragment header follows");
                let fh = &piece[l3 + 40..l3 + 48];
                prop_assert_eq!((fh[0], fh[1]), (4, 0), "the original next header");
                let field = u16::from_be_bytes([fh[2], fh[3]]);
                prop_assert_eq!(usize::from(field >> 3) * 8, joined.len(), "offset");
                let last = n + 1 == out.len();
                prop_assert_eq!(field & 1 == 1, !last, "M");
                prop_assert_eq!(field & 6, 0, "reserved bits");
                prop_assert_eq!(u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]), ident);
                if !last {
                    prop_assert_eq!((piece.len() - l3 - 48) % 8, 0);
                }
                joined.extend_from_slice(&piece[l3 + 48..]);
            }
            prop_assert!(out.len() >= 2);
            prop_assert_eq!(joined, payload);
        }
    }

    /// An Ethernet frame (with `tags` VLAN tags) holding an IPv6 datagram whose payload
    /// follows the fixed header (`next` its protocol).
    fn frame6(tags: usize, next: u8, payload: &[u8], padding: usize) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for t in 0..tags {
            f.extend_from_slice(&[0x81, 0x00, 0, 10 + t as u8]);
        }
        f.extend_from_slice(&[0x86, 0xdd, 0x6b, 0x81, 0x23, 0x45]);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[next, 61]);
        f.extend((0..32).map(|i| 0x20 + i as u8));
        f.extend_from_slice(payload);
        f.resize(f.len() + padding, 0xee);
        f
    }

    fn pieces6(f: &[u8], mtu: usize, ident: u32) -> Result<Vec<Vec<u8>>, FragmentError> {
        let mut out = Vec::new();
        fragment(f, mtu, ident, |head, payload| {
            out.push([head, payload].concat());
            true
        })?;
        Ok(out)
    }

    /// An IPv4 datagram in IPv6 of 1,540 bytes for a 1,500-byte MTU: 1,448 bytes of it,
    /// then the other 52, each behind a fragment header (RFC 8200's layout, byte by byte).
    #[test]
    fn ipv6_a_1540_byte_datagram_in_two_for_a_1500_mtu() {
        let payload: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
        let f = frame6(0, 4, &payload, 0);
        let out = pieces6(&f, 1500, 0xdead_beef).unwrap();
        assert_eq!(out.len(), 2);
        let mut first = f[..54].to_vec();
        first[18..20].copy_from_slice(&1456u16.to_be_bytes());
        first[20] = 44;
        first.extend_from_slice(&[4, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        first.extend_from_slice(&payload[..1448]);
        let mut second = f[..54].to_vec();
        second[18..20].copy_from_slice(&60u16.to_be_bytes());
        second[20] = 44;
        second.extend_from_slice(&[4, 0, 0x05, 0xa8, 0xde, 0xad, 0xbe, 0xef]);
        second.extend_from_slice(&payload[1448..]);
        assert_eq!(out, [first, second]);
        assert_eq!(out[0].len() - 14, 1496, "within the MTU");
    }

    #[test]
    fn ipv6_refusals_and_the_whole_case() {
        let payload = [7u8; 200];
        let plain = frame6(1, 4, &payload, 0);
        assert_eq!(pieces6(&plain, 55, 1), Err(FragmentError::MtuTooSmall));
        assert_eq!(pieces6(&plain, 56, 1).unwrap().len(), 25, "8 bytes each");
        assert_eq!(
            fragment_ipv6(&plain[..100], 120, 1, |_, _| true),
            Err(FragmentError::NotIpv6)
        );
        for ext in [0, 43, 44, 60] {
            let f = frame6(0, ext, &payload, 0);
            assert_eq!(pieces6(&f, 120, 1), Err(FragmentError::ExtensionHeaders));
            assert_eq!(
                pieces6(&f, 240, 1).unwrap(),
                std::slice::from_ref(&f),
                "it fits: whole"
            );
        }
        let mut calls = 0;
        let sent = fragment_ipv6(&plain, 120, 1, |_, _| {
            calls += 1;
            calls < 2
        });
        assert_eq!((sent, calls), (Ok(1), 2), "a failed emit stops the rest");
        // IPv4 goes to the IPv4 cut.
        let v4 = frame(0, &[], 0, &payload, 0);
        assert_eq!(pieces6(&v4, 100, 1), pieces(&v4, 100));
    }
}
