//! wlc: the least overhead / weight, compared as products (oh_a * w_b > oh_b * w_a);
//! the first wins ties.

use super::View;

/// Shared by wlc, sed and lblc/lblcr's fallback: the first candidate, then any later one
/// with a strictly smaller overhead per weight.
pub(crate) fn least_by(v: &View, overhead: impl Fn(usize) -> i64) -> Option<usize> {
    let first = (0..v.len()).find(|&i| !v.unavailable(i))?;
    let (mut least, mut loh) = (first, overhead(first));
    for i in first + 1..v.len() {
        if v.overloaded(i) {
            continue;
        }
        let doh = overhead(i);
        if loh * v.weight(i) > doh * v.weight(least) {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

pub(crate) fn pick(v: &View) -> Option<usize> {
    least_by(v, |i| v.overhead(i))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::pick;

    #[test]
    fn overhead_per_weight() {
        let d = dests(&[1, 3, 2]);
        let l = loads(3);
        let v = view(&d, &l);
        assert_eq!(pick(&v), Some(0), "all idle: first");
        l[0].set_counts(1, 0); // 256/1
        l[1].set_counts(3, 0); // 768/3 = 256: tie, A stays
        l[2].set_counts(2, 10); // 522/2 = 261
        assert_eq!(pick(&v), Some(0));
        l[0].set_counts(1, 1); // 257
        assert_eq!(pick(&v), Some(1));
    }

    #[test]
    fn weight_zero_is_never_chosen() {
        let d = dests(&[0, 1]);
        let l = loads(2);
        l[1].set_counts(100, 0);
        assert_eq!(pick(&view(&d, &l)), Some(1));
    }
}
