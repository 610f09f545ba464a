//! fo (weighted failover): the highest weight among servers not skipped; the first wins
//! ties.

use super::View;

pub(crate) fn pick(v: &View) -> Option<usize> {
    highest_weight(v, |_| true)
}

/// The first server of the highest weight among those not skipped that pass `eligible`
/// (shared with ovf).
pub(crate) fn highest_weight(v: &View, eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in 0..v.len() {
        if v.unavailable(i) || !eligible(i) {
            continue;
        }
        if best.is_none_or(|b| v.weight(i) > v.weight(b)) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::pick;

    #[test]
    fn highest_weight_then_failover() {
        let d = dests(&[5, 10, 10, 1]);
        let l = loads(4);
        let v = view(&d, &l);
        assert_eq!(pick(&v), Some(1), "B and C tie at 10: B first");
        l[1].set_overloaded(true);
        assert_eq!(pick(&v), Some(2));
        l[2].set_overloaded(true);
        assert_eq!(pick(&v), Some(0));
    }
}
