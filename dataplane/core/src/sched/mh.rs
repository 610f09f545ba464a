//! mh (Maglev hashing, IPVS flavour). Table size M is prime (251 ... 131071, default 4093).
//! Per server: offset = h1(addr, port) mod M, skip = h2(addr, port) mod (M - 1) + 1. The
//! table fills in rounds, each server claiming `turns` next free slots of its permutation,
//! where turns = (last_weight / gcd) >> shift (shift keeps the largest turn count within
//! the table's bit budget), or 1 for a tiny non-zero weight. A server added with weight 0
//! claims nothing; a quiesced one keeps its slots through its last non-zero weight.
//! Lookup: slot h1(client addr (+ port with mh-port)) mod M; a skipped server yields none
//! unless mh-fallback re-hashes with offsets (i + slot) mod M.
//! h is hsiphash as on 64-bit Linux (SipHash-1-3) with fixed keys over the u32
//! offset + port + address.

use super::{fold_addr, gcd_weight, RealServer, View};
use std::net::IpAddr;

/// Table sizes IPVS allows.
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
pub const DEFAULT_SIZE: u32 = 4093;

const KEY1: u64 = 2_654_435_761;
const KEY2: u64 = 2_654_446_892;

/// The kernel's 64-bit hsiphash of one u32 (SipHash-1-3, key words k0 = k1 = `key`).
pub fn hsiphash_u32(value: u32, key: u64) -> u32 {
    let (k0, k1) = (key, key);
    let mut v0 = 0x736f_6d65_7073_6575u64 ^ k0;
    let mut v1 = 0x646f_7261_6e64_6f6du64 ^ k1;
    let mut v2 = 0x6c79_6765_6e65_7261u64 ^ k0;
    let mut v3 = 0x7465_6462_7974_6573u64 ^ k1;
    let b: u64 = (4u64 << 56) | u64::from(value);
    let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13);
        *v1 ^= *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16);
        *v3 ^= *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21);
        *v3 ^= *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17);
        *v1 ^= *v2;
        *v2 = v2.rotate_left(32);
    };
    v3 ^= b;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= b;
    v2 ^= 0xff;
    for _ in 0..3 {
        round(&mut v0, &mut v1, &mut v2, &mut v3);
    }
    ((v0 ^ v1) ^ (v2 ^ v3)) as u32
}

fn hashkey(addr: IpAddr, port: u16, key: u64, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(fold_addr(addr));
    hsiphash_u32(v, key)
}

/// IPVS's bit budget for a table: CONFIG index / 2, where index = 8 + position of M.
fn table_bits(size: u32) -> u32 {
    let pos = MH_PRIMES.iter().position(|&p| p == size).unwrap_or(4) as u32;
    (pos + 8) / 2
}

/// `h % size` for a new connection's slot: each size IPVS allows is a constant divisor (a
/// multiply and shift, no division); another size divides.
#[inline]
fn slot_of(h: u32, size: u32) -> u32 {
    match size {
        251 => h % 251,
        509 => h % 509,
        1021 => h % 1021,
        2039 => h % 2039,
        4093 => h % 4093,
        8191 => h % 8191,
        16381 => h % 16381,
        32749 => h % 32749,
        65521 => h % 65521,
        131071 => h % 131071,
        _ => h % size,
    }
}

fn fls(x: u32) -> i32 {
    (32 - x.leading_zeros()) as i32
}

pub(crate) fn build(dests: &[RealServer], size: u32) -> Vec<Option<u32>> {
    let m = size as usize;
    let mut table = vec![None; m];
    if dests.is_empty() || size < 2 {
        return table;
    }
    let gcd = gcd_weight(dests.iter().map(|d| d.last_weight));
    let max = dests.iter().map(|d| d.last_weight).max().unwrap_or(0);
    let shift = (fls(max / gcd) - table_bits(size) as i32).max(0) as u32;
    struct Setup {
        perm: u32,
        skip: u32,
        turns: u32,
    }
    let mut setup: Vec<Setup> = dests
        .iter()
        .map(|d| {
            let offset = hashkey(d.addr, d.port, KEY1, 0) % size;
            let skip = hashkey(d.addr, d.port, KEY2, 0) % (size - 1) + 1;
            let lw = d.last_weight;
            let turns = match (lw / gcd) >> shift {
                0 => u32::from(lw != 0),
                t => t,
            };
            Setup {
                perm: offset,
                skip,
                turns,
            }
        })
        .collect();
    if setup.iter().all(|s| s.turns == 0) {
        return table;
    }
    let mut filled = 0usize;
    while filled < m {
        for (i, s) in setup.iter_mut().enumerate() {
            for _ in 0..s.turns {
                let mut c = s.perm;
                while table.get(c as usize).is_some_and(Option::is_some) {
                    s.perm += s.skip;
                    if s.perm >= size {
                        s.perm -= size;
                    }
                    c = s.perm;
                }
                if let Some(t) = table.get_mut(c as usize) {
                    *t = Some(i as u32);
                }
                filled += 1;
                if filled == m {
                    return table;
                }
            }
        }
    }
    table
}

pub(crate) fn pick(
    v: &View,
    table: &[Option<u32>],
    size: u32,
    client: IpAddr,
    port: u16,
    fallback: bool,
) -> Option<usize> {
    if size == 0 || table.len() != size as usize {
        return None;
    }
    let at = |slot: u32| {
        table
            .get(slot as usize)
            .copied()
            .flatten()
            .map(|i| i as usize)
    };
    let ihash = slot_of(hashkey(client, port, KEY1, 0), size);
    let first = at(ihash)?;
    if !v.unavailable(first) {
        return Some(first);
    }
    if !fallback {
        return None;
    }
    for offset in 0..size {
        let roffset = (offset + ihash) % size;
        let d = at(slot_of(hashkey(client, port, KEY1, roffset), size))?;
        if !v.unavailable(d) {
            return Some(d);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::*;

    fn servers(n: usize) -> Vec<RealServer> {
        (0..n)
            .map(|i| RealServer {
                id: i,
                addr: IpAddr::from([10, 1, (i >> 8) as u8, i as u8]),
                port: 80,
                weight: 1,
                last_weight: 1,
                method: crate::model::ForwardMethod::Nat,
                upper: 0,
                lower: 0,
                tunnel: Default::default(),
            })
            .collect()
    }

    #[test]
    fn slot_of_is_the_remainder_for_every_size() {
        let mut sizes = MH_PRIMES.to_vec();
        sizes.extend([1, 2, 3, 4097, u32::MAX]);
        let mut h = 0x9e37_79b9u32;
        for &size in &sizes {
            for x in [
                0,
                1,
                size - 1,
                size,
                size.wrapping_add(1),
                u32::MAX,
                u32::MAX - 1,
            ] {
                assert_eq!(slot_of(x, size), x % size, "{x} % {size}");
            }
            for _ in 0..10_000 {
                h ^= h << 13;
                h ^= h >> 17;
                h ^= h << 5;
                assert_eq!(slot_of(h, size), h % size, "{h} % {size}");
            }
        }
    }

    #[test]
    fn siphash13_matches_an_independent_implementation() {
        // siphasher's SipHasher13 over the 4 little-endian bytes, 128-bit key (k0, k1):
        // the kernel's hsiphash on 64-bit is the low 32 bits of SipHash-1-3.
        use std::hash::Hasher;
        for v in [0u32, 1, 0x0a00_0001, 0xdead_beef, u32::MAX] {
            for key in [KEY1, KEY2] {
                let mut h = siphasher::sip::SipHasher13::new_with_keys(key, key);
                h.write(&v.to_le_bytes());
                assert_eq!(hsiphash_u32(v, key), h.finish() as u32, "v {v:#x}");
            }
        }
    }

    #[test]
    fn balance_for_100_servers_at_65521() {
        let d = servers(100);
        let t = build(&d, 65521);
        assert!(t.iter().all(Option::is_some));
        let mut counts = vec![0u32; 100];
        for s in t.iter().flatten() {
            counts[*s as usize] += 1;
        }
        let (max, min) = (*counts.iter().max().unwrap(), *counts.iter().min().unwrap());
        assert!(
            f64::from(max) / f64::from(min) <= 1.1,
            "max {max} min {min}"
        );
    }

    #[test]
    fn removing_one_of_100_moves_few_other_slots() {
        let d = servers(100);
        let before = build(&d, 65521);
        let mut fewer = d.clone();
        let removed = fewer.remove(37);
        let after = build(&fewer, 65521);
        let name = |list: &[RealServer], s: Option<u32>| s.map(|i| list[i as usize].addr);
        let (mut kept_owner, mut moved) = (0u32, 0u32);
        for (b, a) in before.iter().zip(&after) {
            let (was, now) = (name(&d, *b), name(&fewer, *a));
            if was == Some(removed.addr) {
                continue;
            }
            kept_owner += 1;
            if was != now {
                moved += 1;
            }
        }
        let share = f64::from(moved) / f64::from(kept_owner);
        assert!(
            share <= 0.02,
            "{moved} of {kept_owner} slots moved ({:.2}%)",
            share * 100.0
        );
    }

    #[test]
    fn weights_give_proportional_slots_and_zero_weight_none() {
        let mut d = servers(3);
        d[0].last_weight = 3;
        d[1].last_weight = 1;
        d[2].last_weight = 0;
        let t = build(&d, 4093);
        let count = |i: u32| t.iter().filter(|s| **s == Some(i)).count();
        assert_eq!(count(2), 0);
        assert_eq!(count(0) + count(1), 4093);
        let ratio = count(0) as f64 / count(1) as f64;
        assert!((ratio - 3.0).abs() < 0.1, "{ratio}");
    }

    #[test]
    fn lookup_fallback_and_port_flag() {
        let kind = SchedKind::by_name("mh").unwrap();
        let d = servers(10);
        let l = loads(10);
        let t = build_table(&kind, &d);
        let mut s = SchedState::default();
        let r = req([192, 168, 1, 7], 5555);
        let a = pick_with(&kind, &t, &mut s, &d, &l, &r);
        assert!(a.is_some());
        assert_eq!(pick_with(&kind, &t, &mut s, &d, &l, &r), a, "stable");
        l[a.unwrap()].set_overloaded(true);
        assert_eq!(pick_with(&kind, &t, &mut s, &d, &l, &r), None);
        let kf = kind.with_flags("mh-fallback").unwrap();
        let b = pick_with(&kf, &t, &mut s, &d, &l, &r);
        assert!(b.is_some() && b != a);
        // Client ports spread one client over several servers only with mh-port.
        l[a.unwrap()].set_overloaded(false);
        let kp = kind.with_flags("mh-port").unwrap();
        let spread: std::collections::HashSet<_> = (0..200)
            .map(|p| pick_with(&kp, &t, &mut s, &d, &l, &req([192, 168, 1, 7], p)))
            .collect();
        assert!(spread.len() > 5);
        let same: std::collections::HashSet<_> = (0..200)
            .map(|p| pick_with(&kind, &t, &mut s, &d, &l, &req([192, 168, 1, 7], p)))
            .collect();
        assert_eq!(same.len(), 1);
    }

    fn pick_with(
        k: &SchedKind,
        t: &SchedTable,
        s: &mut SchedState,
        d: &[RealServer],
        l: &[DestLoad],
        r: &Request,
    ) -> Option<usize> {
        super::super::pick(k, t, s, d, l, r)
    }
}
