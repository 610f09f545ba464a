//! What a NIC's receive-side scaling computes: the Toeplitz hash of a packet's addresses
//! (and ports) under the port's key, and the redirection table that maps the hash to a
//! queue. Ground work for ownership that follows the NIC (the worker that owns a flow is
//! the one whose queue the NIC puts it on), and for a generator that spreads flows the way
//! a NIC would. Checked against Microsoft's RSS verification suite.

use std::net::IpAddr;

/// The key of Microsoft's RSS verification suite, the default of many NICs and DPDK's
/// examples (40 bytes).
pub const VERIFICATION_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key`: for every set bit of the input (most
/// significant first), the 32 key bits starting at that bit's position are XORed in. Key
/// bits past the key's end read as 0 (a key must be 4 bytes longer than the input to
/// cover it, as NICs' 40- and 52-byte keys do for their tuples).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let key_bit = |n: usize| -> u32 {
        key.get(n / 8)
            .map_or(0, |b| u32::from(b >> (7 - (n % 8)) & 1))
    };
    // The 32-bit window of the key at the current input bit.
    let mut window = (0..32).fold(0u32, |w, n| w << 1 | key_bit(n));
    let mut hash = 0u32;
    for (i, byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = window << 1 | key_bit(i * 8 + bit + 32);
        }
    }
    hash
}

/// The hash input a NIC takes for an IP packet: source and destination addresses, then
/// (for TCP/UDP/SCTP hashing) source and destination ports. None for mixed families.
pub fn tuple(src: IpAddr, dst: IpAddr, ports: Option<(u16, u16)>) -> Option<([u8; 36], usize)> {
    let mut t = [0u8; 36];
    let mut n = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            t[..4].copy_from_slice(&s.octets());
            t[4..8].copy_from_slice(&d.octets());
            8
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            t[..16].copy_from_slice(&s.octets());
            t[16..32].copy_from_slice(&d.octets());
            32
        }
        _ => return None,
    };
    if let Some((sp, dp)) = ports {
        t[n..n + 2].copy_from_slice(&sp.to_be_bytes());
        t[n + 2..n + 4].copy_from_slice(&dp.to_be_bytes());
        n += 4;
    }
    Some((t, n))
}

/// A redirection table: entry `hash % len` (the low bits, as NICs index it with a
/// power-of-two table) names the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reta {
    entries: Vec<u16>,
}

impl Reta {
    /// DPDK's default spread: entry i goes to queue i % queues (`size` entries, at least 1).
    pub fn spread(size: usize, queues: u16) -> Reta {
        Reta {
            entries: (0..size.max(1))
                .map(|i| (i % usize::from(queues.max(1))) as u16)
                .collect(),
        }
    }

    #[inline]
    pub fn queue(&self, hash: u32) -> u16 {
        self.entries
            .get(hash as usize % self.entries.len().max(1))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" table (also DPDK's test_thash and
    /// the 82599 datasheet): IPv4 with and without ports.
    #[test]
    fn the_verification_suite_ipv4() {
        let cases = [
            (
                "66.9.149.187",
                2794,
                "161.142.100.80",
                1766,
                0x323e_8fc2,
                0x51cc_c178,
            ),
            (
                "199.92.111.2",
                14230,
                "65.69.140.83",
                4739,
                0xd718_262a,
                0xc626_b0ea,
            ),
            (
                "24.19.198.95",
                12898,
                "12.22.207.184",
                38024,
                0xd2d0_a5de,
                0x5c2b_394a,
            ),
            (
                "38.27.205.30",
                48228,
                "209.142.163.6",
                2217,
                0x8298_9176,
                0xafc7_327f,
            ),
            (
                "153.39.163.191",
                44251,
                "202.188.127.2",
                1303,
                0x5d18_09c5,
                0x10e8_28a2,
            ),
        ];
        for (src, sp, dst, dp, l3, l4) in cases {
            let (t, n) = tuple(ip(src), ip(dst), None).unwrap();
            assert_eq!(toeplitz(&VERIFICATION_KEY, &t[..n]), l3, "{src} -> {dst}");
            let (t, n) = tuple(ip(src), ip(dst), Some((sp, dp))).unwrap();
            assert_eq!(
                toeplitz(&VERIFICATION_KEY, &t[..n]),
                l4,
                "{src}:{sp} -> {dst}:{dp}"
            );
        }
    }

    #[test]
    fn the_verification_suite_ipv6_with_ports() {
        let cases = [
            (
                "3ffe:2501:200:1fff::7",
                2794,
                "3ffe:2501:200:3::1",
                1766,
                0x4020_7d3d,
            ),
            (
                "3ffe:501:8::260:97ff:fe40:efab",
                14230,
                "ff02::1",
                4739,
                0xdde5_1bbf,
            ),
        ];
        for (src, sp, dst, dp, want) in cases {
            let (t, n) = tuple(ip(src), ip(dst), Some((sp, dp))).unwrap();
            assert_eq!(toeplitz(&VERIFICATION_KEY, &t[..n]), want, "{src} -> {dst}");
        }
        assert!(tuple(ip("1.2.3.4"), ip("::1"), None).is_none());
    }

    #[test]
    fn the_default_table_spreads_round_robin() {
        let r = Reta::spread(128, 3);
        assert_eq!(
            (r.queue(0), r.queue(1), r.queue(2), r.queue(3)),
            (0, 1, 2, 0)
        );
        assert_eq!(r.queue(128 + 4), 1, "the hash's low bits index it");
        assert_eq!(Reta::spread(0, 0).queue(12345), 0);
    }
}
