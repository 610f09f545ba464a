//! Frame-level forwarding decisions, pure over byte buffers.

use std::fmt;
use std::str::FromStr;

/// Ethernet header length (destination, source, ethertype).
pub const ETHER_HDR_LEN: usize = 14;

/// What a worker does with each frame. `Lb` is the load balancer (the engine); `Io`,
/// `MacSwap` and `FiveTupleSwap` are testpmd's diagnostic modes: frames received on a port
/// go out of its peer port unchanged, with the Ethernet addresses swapped, or with the
/// Ethernet and IP addresses and the TCP/UDP ports swapped (the headers NAT rewrites,
/// touched with no lookup: the yardstick for the engine's own work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    Lb,
    Io,
    MacSwap,
    FiveTupleSwap,
}

impl ForwardMode {
    pub const ALL: [ForwardMode; 4] = [
        ForwardMode::Lb,
        ForwardMode::Io,
        ForwardMode::MacSwap,
        ForwardMode::FiveTupleSwap,
    ];

    /// The mode as it travels in a shared atomic (`set fwd` at run time).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Read by every worker on every pass: a match, not a search.
    #[inline]
    pub fn from_code(c: u8) -> ForwardMode {
        match c {
            0 => ForwardMode::Lb,
            2 => ForwardMode::MacSwap,
            3 => ForwardMode::FiveTupleSwap,
            _ => ForwardMode::Io,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ForwardMode::Lb => "lb",
            ForwardMode::Io => "io",
            ForwardMode::MacSwap => "macswap",
            ForwardMode::FiveTupleSwap => "5tswap",
        }
    }
}

impl fmt::Display for ForwardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ForwardMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ForwardMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ForwardMode::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown forwarding mode {s:?} (one of {})",
                    names.join(", ")
                )
            })
    }
}

/// The verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// Too short to be an Ethernet frame.
    DropMalformed,
}

/// Applies `mode` to one frame in place.
#[inline]
pub fn apply(mode: ForwardMode, frame: &mut [u8]) -> Verdict {
    match mode {
        ForwardMode::Io | ForwardMode::Lb => Verdict::Forward,
        ForwardMode::MacSwap => macswap(frame),
        ForwardMode::FiveTupleSwap => five_tuple_swap(frame),
    }
}

/// testpmd's `5tswap`: the Ethernet addresses swapped, then (through VLAN tags) the IPv4 or
/// IPv6 addresses, then the TCP or UDP ports; what is not there is left alone. Swaps keep
/// every checksum right.
#[inline]
pub fn five_tuple_swap(frame: &mut [u8]) -> Verdict {
    if macswap(frame) == Verdict::DropMalformed {
        return Verdict::DropMalformed;
    }
    let mut at = 12;
    let ethertype = |f: &[u8], at: usize| rvs_wire::array_at(f, at).map(u16::from_be_bytes);
    let mut kind = ethertype(frame, at);
    while matches!(kind, Some(0x8100 | 0x88a8)) {
        at += 4;
        kind = ethertype(frame, at);
    }
    let l3 = at + 2;
    let (proto, l4) = match kind {
        Some(0x0800) => {
            let Some(ihl) = frame.get(l3).map(|b| usize::from(b & 0x0f) * 4) else {
                return Verdict::Forward;
            };
            let Some(addrs) = frame.get_mut(l3 + 12..l3 + 20) else {
                return Verdict::Forward;
            };
            swap_halves(addrs);
            (frame.get(l3 + 9).copied().unwrap_or(0), l3 + ihl.max(20))
        }
        Some(0x86dd) => {
            let Some(addrs) = frame.get_mut(l3 + 8..l3 + 40) else {
                return Verdict::Forward;
            };
            swap_halves(addrs);
            (frame.get(l3 + 6).copied().unwrap_or(0), l3 + 40)
        }
        _ => return Verdict::Forward,
    };
    if matches!(proto, 6 | 17) {
        if let Some(ports) = frame.get_mut(l4..l4 + 4) {
            swap_halves(ports);
        }
    }
    Verdict::Forward
}

/// Swaps the first and second half of `b`.
#[inline]
fn swap_halves(b: &mut [u8]) {
    let (x, y) = b.split_at_mut(b.len() / 2);
    x.swap_with_slice(y);
}

/// Swaps the Ethernet destination and source addresses.
#[inline]
pub fn macswap(frame: &mut [u8]) -> Verdict {
    let Some(header) = frame.get_mut(..12) else {
        return Verdict::DropMalformed;
    };
    let (dst, src) = header.split_at_mut(6);
    dst.swap_with_slice(src);
    Verdict::Forward
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macswap_swaps_addresses_and_keeps_the_rest() {
        let mut frame = [
            1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 0x08, 0x00, 0x45, 0x00,
        ];
        assert_eq!(macswap(&mut frame), Verdict::Forward);
        assert_eq!(
            frame,
            [0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2, 3, 4, 5, 6, 0x08, 0x00, 0x45, 0x00]
        );
    }

    #[test]
    fn short_frames_are_malformed_not_a_panic() {
        for len in 0..12 {
            let mut frame = vec![0u8; len];
            assert_eq!(macswap(&mut frame), Verdict::DropMalformed, "len {len}");
        }
        assert_eq!(apply(ForwardMode::Io, &mut []), Verdict::Forward);
    }

    #[test]
    fn five_tuple_swap_swaps_what_nat_rewrites() {
        use etherparse::PacketBuilder;
        let build = |src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, macs: ([u8; 6], [u8; 6])| {
            let mut v = Vec::new();
            PacketBuilder::ethernet2(macs.0, macs.1)
                .single_vlan(etherparse::VlanId::try_new(100).unwrap())
                .ipv4(src, dst, 64)
                .tcp(sp, dp, 7, 1000)
                .write(&mut v, b"payload")
                .unwrap();
            v
        };
        let (a, b) = ([1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2]);
        let mut f = build([10, 0, 0, 1], [192, 168, 1, 100], 40000, 80, (a, b));
        assert_eq!(five_tuple_swap(&mut f), Verdict::Forward);
        assert_eq!(
            f,
            build([192, 168, 1, 100], [10, 0, 0, 1], 80, 40000, (b, a))
        );
        let mut v6 = Vec::new();
        PacketBuilder::ethernet2(a, b)
            .ipv6([1; 16], [2; 16], 64)
            .udp(53, 5353)
            .write(&mut v6, b"x")
            .unwrap();
        let mut want = Vec::new();
        PacketBuilder::ethernet2(b, a)
            .ipv6([2; 16], [1; 16], 64)
            .udp(5353, 53)
            .write(&mut want, b"x")
            .unwrap();
        assert_eq!(five_tuple_swap(&mut v6), Verdict::Forward);
        assert_eq!(v6, want);
        // Cut anywhere: no panic; too short for Ethernet: malformed.
        let full = build([10, 0, 0, 1], [192, 168, 1, 100], 1, 2, (a, b));
        for len in 0..full.len() {
            let mut cut = full[..len].to_vec();
            let v = five_tuple_swap(&mut cut);
            assert_eq!(v == Verdict::DropMalformed, len < 12, "len {len}");
        }
    }

    #[test]
    fn mode_names_round_trip() {
        for m in ForwardMode::ALL {
            assert_eq!(ForwardMode::from_code(m.code()), m);
            assert_eq!(m.name().parse::<ForwardMode>(), Ok(m));
        }
        assert!("fast"
            .parse::<ForwardMode>()
            .unwrap_err()
            .contains("lb, io, macswap, 5tswap"));
    }
}
