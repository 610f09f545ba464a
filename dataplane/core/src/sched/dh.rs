//! dh (destination hashing): 2^bits buckets, bucket i = the (i mod n)-th server; key
//! hash_32(destination address). A skipped server yields none.

use super::{fold_addr, hash_32, RealServer, View};
use std::net::IpAddr;

pub(crate) fn build(dests: &[RealServer], bits: u8) -> Vec<Option<u32>> {
    let size = 1usize << bits;
    (0..size)
        .map(|i| (!dests.is_empty()).then(|| (i % dests.len()) as u32))
        .collect()
}

pub(crate) fn pick(v: &View, buckets: &[Option<u32>], bits: u8, dst: IpAddr) -> Option<usize> {
    let k = hash_32(fold_addr(dst), bits) as usize;
    let d = buckets.get(k).copied().flatten()? as usize;
    (!v.unavailable(d)).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::build;

    #[test]
    fn buckets_round_robin_and_destination_key() {
        let b = build(&dests(&[1, 1, 1]), 8);
        assert_eq!(&b[..5], &[Some(0), Some(1), Some(2), Some(0), Some(1)]);
        let kind = SchedKind::by_name("dh").unwrap();
        let d = dests(&[1, 1, 1]);
        let l = loads(3);
        let t = build_table(&kind, &d);
        let mut r = req([1, 2, 3, 4], 5);
        r.dst = crate::conn::v4_mapped([10, 0, 0, 1]); // hash 39 -> 39 % 3 = 0
        assert_eq!(
            pick(&kind, &t, &mut SchedState::default(), &d, &l, &r),
            Some(0)
        );
        r.dst = crate::conn::v4_mapped([10, 0, 0, 2]); // 137 % 3 = 2
        assert_eq!(
            pick(&kind, &t, &mut SchedState::default(), &d, &l, &r),
            Some(2)
        );
        l[2].set_overloaded(true);
        assert_eq!(
            pick(&kind, &t, &mut SchedState::default(), &d, &l, &r),
            None
        );
    }
}
