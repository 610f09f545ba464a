//! Editing a TCP segment in place: its sequence fields and options with the checksum kept
//! right incrementally, and its lengths and checksums made anew after its data changed
//! length (PROXY protocol's header, the FTP helper's rewritten replies).

use super::*;

pub(super) mod tcp_option {
    pub(in crate::engine) const MSS: u8 = 2;
    pub(in crate::engine) const SACK: u8 = 5;
}

/// `a` is `b` or after it in sequence space.
pub(super) fn seq_after_or_eq(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) < 1 << 31
}

pub(super) fn tcp_u32(b: &[u8], flow: &Flow, at: usize) -> Option<u32> {
    rvs_wire::array_at(b, flow.l4() + at).map(u32::from_be_bytes)
}

/// The segment's sequence number and where its data starts.
pub(super) fn tcp_seq_and_data(b: &[u8], flow: &Flow) -> Option<(u32, usize)> {
    let seq = tcp_u32(b, flow, 4)?;
    let doff = usize::from(*b.get(flow.l4() + 12)? >> 4) * 4;
    Some((seq, (flow.l4() + doff).min(flow.end())))
}

/// Sets a 32-bit TCP header field (sequence or acknowledgement number), its checksum
/// updated incrementally.
pub(super) fn set_u32_field(b: &mut [u8], flow: &Flow, at: usize, value: u32) {
    let Some(old) = tcp_u32(b, flow, at) else {
        return;
    };
    set_tcp_bytes(b, flow, at, &old.to_be_bytes(), &value.to_be_bytes());
}

/// Replaces bytes of the TCP header at `at` (an even offset), the checksum kept right.
pub(super) fn set_tcp_bytes(b: &mut [u8], flow: &Flow, at: usize, old: &[u8], new: &[u8]) {
    let c = flow.l4() + 16;
    let Some(check) = rvs_wire::array_at(b, c).map(u16::from_be_bytes) else {
        return;
    };
    if let Some(f) = b.get_mut(flow.l4() + at..flow.l4() + at + new.len()) {
        f.copy_from_slice(new);
    }
    let check = checksum::update_bytes(check, old, new);
    if let Some(x) = b.get_mut(c..c + 2) {
        x.copy_from_slice(&check.to_be_bytes());
    }
}

/// Lets `each(kind, value)` change the TCP options in place (checksum kept right).
pub(super) fn adjust_options(b: &mut [u8], flow: &Flow, mut each: impl FnMut(u8, &mut [u8])) {
    let Some(doff) = b.get(flow.l4() + 12).map(|d| usize::from(d >> 4) * 4) else {
        return;
    };
    let mut at = 20;
    while at + 1 < doff {
        let kind = b.get(flow.l4() + at).copied().unwrap_or(0);
        match kind {
            0 => return,
            1 => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let len = usize::from(b.get(flow.l4() + at + 1).copied().unwrap_or(0));
        if len < 2 || at + len > doff {
            return;
        }
        let (from, to) = (flow.l4() + at + 2, flow.l4() + at + len);
        // An option's value is at most 38 bytes (the options end 60 bytes in).
        let mut buf = [0u8; 40];
        let (Some(v), Some(value)) = (b.get(from..to), buf.get_mut(..to - from)) else {
            return;
        };
        value.copy_from_slice(v);
        each(kind, value);
        if value != v {
            // Checksummed as 16-bit words from an even offset of the header.
            let start = (at + 2) & !1;
            let end = (at + len + 1) & !1;
            let span = flow.l4() + start..flow.l4() + end;
            let (mut before, mut after) = ([0u8; 42], [0u8; 42]);
            let (Some(before), Some(after)) =
                (before.get_mut(..end - start), after.get_mut(..end - start))
            else {
                return;
            };
            if let Some(orig) = b.get(span.clone()) {
                before.copy_from_slice(orig);
            }
            if let Some(dst) = b.get_mut(from..to) {
                dst.copy_from_slice(value);
            }
            if let Some(new) = b.get(span) {
                after.copy_from_slice(new);
            }
            let c = flow.l4() + 16;
            if let Some(check) = rvs_wire::array_at(b, c).map(u16::from_be_bytes) {
                let check = checksum::update_bytes(check, before, after);
                if let Some(x) = b.get_mut(c..c + 2) {
                    x.copy_from_slice(&check.to_be_bytes());
                }
            }
        }
        at += len;
    }
}

/// After the data of `flow`'s segment (in `b`, up to `flow.end()`) changed length: the IP
/// length fields, the IPv4 header checksum and the TCP checksum made anew.
pub(super) fn segment_resized(b: &mut [u8], flow: &Flow) {
    let seg_len = flow.end() - flow.l4();
    if flow.v6 {
        let plen = (flow.end() - flow.l3() - ipv6::HEADER_LEN) as u16;
        if let Some(p) = b.get_mut(flow.l3() + 4..flow.l3() + 6) {
            p.copy_from_slice(&plen.to_be_bytes());
        }
    } else {
        let total = (flow.end() - flow.l3()) as u16;
        if let Some(p) = b.get_mut(flow.l3() + 2..flow.l3() + 4) {
            p.copy_from_slice(&total.to_be_bytes());
        }
        if let Some(Ok(mut ip)) = b
            .get_mut(flow.l3()..flow.end())
            .map(Ipv4Packet::new_checked)
        {
            ip.fill_checksum();
        }
    }
    let pseudo = if flow.v6 {
        checksum::pseudo_v6(flow.src, flow.dst, proto::TCP, seg_len as u32)
    } else {
        checksum::pseudo_v4(low4(&flow.src), low4(&flow.dst), proto::TCP, seg_len as u16)
    };
    if let Some(Ok(mut t)) = b.get_mut(flow.l4()..flow.end()).map(TcpPacket::new_checked) {
        t.fill_checksum(pseudo);
    }
}
