//! What a NIC's receive-side scaling computes: the Toeplitz hash of a packet's addresses
//! (and ports) under the port's key, and the redirection table that maps the hash to a
//! queue. Checked against Microsoft's RSS verification suite.
//!
//! A flow's owner is the worker whose queue the NIC puts it on: rvs programs every
//! multi-queue port with [`VERIFICATION_KEY`] and a table of [`STEERING_RETA`] entries
//! spread round robin, the client-facing port hashing the source only (`l3-src-only`,
//! `l4-src-only`) and the server-facing port the destination only, so that both directions
//! of a connection hash the client's address and port and land on the same queue.
//! [`client_owner`] computes the same thing in software, from per-byte tables.

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
        n = put(&mut t, n, &sp.to_be_bytes());
        n = put(&mut t, n, &dp.to_be_bytes());
    }
    Some((t, n))
}

/// Entries of the redirection table rvs steers by (a device's larger table repeats it).
pub const STEERING_RETA: usize = 128;

/// Input bytes [`client_hash`] covers: an IPv6 address and a port.
const CLIENT_INPUT: usize = 18;

/// Writes `bytes` into `t` at `at`; where they end.
fn put(t: &mut [u8], at: usize, bytes: &[u8]) -> usize {
    rvs_wire::set_bytes(t, at, bytes);
    at + bytes.len()
}

/// Bit `n` of `key` (most significant first); 0 past its end.
// Evaluated when compiled (an index out of range would fail the build).
#[allow(clippy::indexing_slicing)]
const fn key_bit(key: &[u8; 40], n: usize) -> u32 {
    if n / 8 >= key.len() {
        0
    } else {
        ((key[n / 8] >> (7 - n % 8)) & 1) as u32
    }
}

/// The 32 key bits from bit `n`.
const fn key_window(key: &[u8; 40], n: usize) -> u32 {
    let mut w = 0u32;
    let mut i = 0;
    while i < 32 {
        w = w << 1 | key_bit(key, n + i);
        i += 1;
    }
    w
}

/// The Toeplitz hash is linear in its input: per input byte position, what each byte value
/// XORs into the hash.
// Evaluated when compiled (an index out of range would fail the build).
#[allow(clippy::indexing_slicing)]
const fn byte_tables(key: &[u8; 40]) -> [[u32; 256]; CLIENT_INPUT] {
    let mut t = [[0u32; 256]; CLIENT_INPUT];
    let mut pos = 0;
    while pos < CLIENT_INPUT {
        let mut b = 1usize;
        while b < 256 {
            let low = b.trailing_zeros() as usize;
            t[pos][b] = t[pos][b & (b - 1)] ^ key_window(key, pos * 8 + 7 - low);
            b += 1;
        }
        pos += 1;
    }
    t
}

static CLIENT_TABLES: [[u32; 256]; CLIENT_INPUT] = byte_tables(&VERIFICATION_KEY);

/// The Toeplitz hash (verification key) a NIC hashing the source only computes for a
/// packet from `addr`:`port`, or hashing the destination only for one towards it.
#[inline]
pub fn client_hash(addr: IpAddr, port: u16) -> u32 {
    // Each input byte's contribution from its position's table (a byte always indexes
    // within 256 entries: no check remains).
    let xor_in = |positions: &[[u32; 256]], bytes: &[u8]| {
        let each = positions.iter().zip(bytes);
        each.fold(0, |h, (t, &b)| {
            h ^ t.get(usize::from(b)).copied().unwrap_or(0)
        })
    };
    let (t, p) = (&CLIENT_TABLES, port.to_be_bytes());
    match addr {
        IpAddr::V4(a) => xor_in(t, &a.octets()) ^ xor_in(t.get(4..).unwrap_or_default(), &p),
        IpAddr::V6(a) => xor_in(t, &a.octets()) ^ xor_in(t.get(16..).unwrap_or_default(), &p),
    }
}

/// The queue of `hash` in rvs's steering table over `queues` queues.
#[inline]
pub fn steering_queue(hash: u32, queues: usize) -> usize {
    let entry = hash as usize % STEERING_RETA;
    // Every packet's owner with several workers: a mask for a power of two of them (the
    // usual 2, 4, 8), a division (tens of cycles) only for the other counts.
    if queues.is_power_of_two() {
        entry & (queues - 1)
    } else {
        entry % queues.max(1)
    }
}

/// The worker that owns the flows of a client endpoint: the one whose queue a NIC steering
/// as rvs programs it delivers them to.
#[inline]
pub fn client_owner(addr: IpAddr, port: u16, workers: usize) -> usize {
    steering_queue(client_hash(addr, port), workers)
}

/// What a port of `reta_size` entries holds so that each flow lands on a queue its owner
/// polls: entry i names the queue `queue_of_worker[steering_queue(i, workers)]`; an owner
/// that polls no queue of this port gets a queue round robin (those flows are handed off).
/// None where the device's table is not a whole number of steering tables.
pub fn device_reta(
    reta_size: usize,
    queue_of_worker: &[Option<u16>],
    rx_queues: u16,
) -> Option<Vec<u16>> {
    if reta_size == 0 || !reta_size.is_multiple_of(STEERING_RETA) {
        return None;
    }
    let workers = queue_of_worker.len().max(1);
    Some(
        (0..reta_size)
            .map(|i| {
                let owner = steering_queue(i as u32, workers);
                queue_of_worker
                    .get(owner)
                    .copied()
                    .flatten()
                    .unwrap_or((i % usize::from(rx_queues.max(1))) as u16)
            })
            .collect(),
    )
}

/// The key a device of `size` key bytes is programmed with: the verification key, cut or
/// padded with zeros (the hash of one end reads only its first 22 bytes); None where the
/// device's key is shorter than that.
pub fn device_key(size: usize) -> Option<Vec<u8>> {
    if size < CLIENT_INPUT + 4 {
        return None;
    }
    let mut k = VERIFICATION_KEY.to_vec();
    k.resize(size, 0);
    Some(k)
}

/// The hash input a NIC takes when it hashes one end only (`l3-src-only` + `l4-src-only`,
/// or the destination's): the address, then the port.
pub fn one_end(addr: IpAddr, port: u16) -> ([u8; 18], usize) {
    let mut t = [0u8; 18];
    let n = match addr {
        IpAddr::V4(a) => {
            t[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            t[..16].copy_from_slice(&a.octets());
            16
        }
    };
    let n = put(&mut t, n, &port.to_be_bytes());
    (t, n)
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

    #[test]
    fn steering_queue_is_the_entry_modulo_the_queues_for_every_count() {
        for queues in 0..=130usize {
            for hash in (0..4096u32).chain([u32::MAX - 1, u32::MAX]) {
                let entry = hash as usize % STEERING_RETA;
                assert_eq!(
                    steering_queue(hash, queues),
                    entry % queues.max(1),
                    "hash {hash:#x}, {queues} queues"
                );
            }
        }
    }

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

    /// The per-byte tables compute exactly the bit-by-bit hash of one end.
    #[test]
    fn the_client_hash_is_the_toeplitz_hash_of_one_end() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for i in 0..2000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let port = (x >> 48) as u16;
            let addr = if i % 2 == 0 {
                IpAddr::from(((x >> 8) as u32).to_be_bytes())
            } else {
                IpAddr::from((u128::from(x) << 64 | u128::from(x.rotate_left(17))).to_be_bytes())
            };
            let (t, n) = one_end(addr, port);
            assert_eq!(
                client_hash(addr, port),
                toeplitz(&VERIFICATION_KEY, &t[..n]),
                "{addr}:{port}"
            );
            let workers = 1 + (i as usize % 16);
            assert_eq!(
                client_owner(addr, port, workers),
                usize::from(
                    Reta::spread(STEERING_RETA, workers as u16).queue(client_hash(addr, port))
                )
            );
        }
    }

    #[test]
    fn a_larger_device_table_repeats_the_steering_table() {
        let identity = [Some(0), Some(1), Some(2)];
        let t = device_reta(512, &identity, 3).unwrap();
        for h in [0u32, 1, 127, 128, 300, 511, 0xdead_beef] {
            assert_eq!(usize::from(t[h as usize % 512]), steering_queue(h, 3));
        }
        // Worker 1 polls queue 0 of this port and worker 0 queue 1; worker 2 none.
        let t = device_reta(128, &[Some(1), Some(0), None], 2).unwrap();
        assert_eq!((t[0], t[1], t[2], t[3], t[4], t[5]), (1, 0, 0, 1, 0, 1));
        assert_eq!(device_reta(64, &identity, 3), None);
        assert_eq!(device_reta(0, &identity, 3), None);
        let long = device_key(52).unwrap();
        assert_eq!((&long[..40], long.len()), (&VERIFICATION_KEY[..], 52));
        assert_eq!(device_key(40).unwrap(), VERIFICATION_KEY);
        assert_eq!(device_key(0), None);
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
