//! sh (source hashing): 2^bits buckets filled by walking the list (wrapping), each server
//! taking `weight` consecutive buckets (at least one; weight 0 still holds one). Key:
//! hash_32(client address (+ client port with sh-port)). A skipped server yields none,
//! unless sh-fallback probes buckets (2 * key + i) mod size for i = 0, 1, ...

use super::{fold_addr, hash_32, RealServer, View};
use std::net::IpAddr;

pub(crate) fn build(dests: &[RealServer], bits: u8) -> Vec<Option<u32>> {
    let size = 1usize << bits;
    if dests.is_empty() {
        return vec![None; size];
    }
    // Each server in turn takes as many buckets as its weight (one at weight 0).
    let turns = dests.iter().enumerate().cycle();
    let buckets = turns
        .flat_map(|(d, dest)| std::iter::repeat_n(Some(d as u32), dest.weight.max(1) as usize));
    buckets.take(size).collect()
}

fn key(addr: IpAddr, port: u16, bits: u8) -> usize {
    hash_32(u32::from(port).wrapping_add(fold_addr(addr)), bits) as usize
}

pub(crate) fn pick(
    v: &View,
    buckets: &[Option<u32>],
    bits: u8,
    client: IpAddr,
    port: u16,
    fallback: bool,
) -> Option<usize> {
    let size = buckets.len();
    if size == 0 {
        return None;
    }
    // hash_32 gives `bits` bits and the table has 1 << bits buckets: in range without a
    // division (one only for a table of another size).
    let k = key(client, port, bits);
    let k = if k < size { k } else { k % size };
    let at = |b: usize| buckets.get(b).copied().flatten().map(|i| i as usize);
    let first = at(k)?;
    if !v.unavailable(first) {
        return Some(first);
    }
    if !fallback {
        return None;
    }
    (0..size)
        .filter_map(|i| at((2 * k + i) % size))
        .find(|&d| !v.unavailable(d))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::build;

    #[test]
    fn bucket_fill_follows_weights_and_wraps() {
        let b = build(&dests(&[3, 1, 0]), 4);
        let idx: Vec<u32> = b.iter().map(|x| x.unwrap()).collect();
        // A A A B C | A A A B C | A A A B C | A
        assert_eq!(idx, vec![0, 0, 0, 1, 2, 0, 0, 0, 1, 2, 0, 0, 0, 1, 2, 0]);
        // Weights above the table size: late servers get nothing.
        let b = build(&dests(&[10, 10]), 4);
        assert_eq!(b.iter().filter(|x| **x == Some(1)).count(), 6);
        assert!(build(&[], 8).iter().all(Option::is_none));
    }

    #[test]
    fn same_client_same_server_and_port_flag() {
        let kind = SchedKind::by_name("sh").unwrap();
        let d = dests(&[1; 256]);
        let l = loads(256);
        let t = build_table(&kind, &d);
        let mut s = SchedState::new(&kind, &t);
        // With one bucket per server, bucket k holds server k: hash_32 values pick them.
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &req([10, 0, 0, 1], 1)),
            Some(39)
        );
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &req([10, 0, 0, 1], 2)),
            Some(39)
        );
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &req([10, 0, 0, 2], 1)),
            Some(137)
        );
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &req([192, 168, 1, 100], 1)),
            Some(89)
        );
        let kp = kind.with_flags("sh-port").unwrap();
        assert_eq!(
            pick(&kp, &t, &mut s, &d, &l, &req([10, 0, 0, 1], 12345)),
            Some(134)
        );
    }

    #[test]
    fn fallback_probes_from_twice_the_key() {
        let kind = SchedKind::by_name("sh").unwrap();
        let d = dests(&[1; 256]);
        let l = loads(256);
        let t = build_table(&kind, &d);
        let mut s = SchedState::default();
        l[39].set_overloaded(true);
        let r = req([10, 0, 0, 1], 1);
        assert_eq!(
            pick(&kind, &t, &mut s, &d, &l, &r),
            None,
            "no fallback: none"
        );
        let kf = kind.with_flags("sh-fallback").unwrap();
        assert_eq!(
            pick(&kf, &t, &mut s, &d, &l, &r),
            Some(78),
            "(2 * 39 + 0) mod 256"
        );
        l[78].set_overloaded(true);
        assert_eq!(pick(&kf, &t, &mut s, &d, &l, &r), Some(79));
    }
}
