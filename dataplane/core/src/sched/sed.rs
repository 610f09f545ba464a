//! sed (shortest expected delay): wlc with overhead = active + 1 (inactive ignored).

use super::wlc::least_by;
use super::View;

pub(crate) fn pick(v: &View) -> Option<usize> {
    least_by(v, |i| v.active(i) + 1)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::pick;

    #[test]
    fn expected_delay() {
        let d = dests(&[1, 2]);
        let l = loads(2);
        let v = view(&d, &l);
        // A: (0+1)/1 = 1, B: (1+1)/2 = 1 -> tie, A first.
        l[1].set_counts(1, 0);
        assert_eq!(pick(&v), Some(0));
        // Inactive connections do not count.
        l[0].set_counts(0, 1000);
        assert_eq!(pick(&v), Some(0));
        l[0].set_counts(1, 0); // A: 2/1 = 2 > B: 1
        assert_eq!(pick(&v), Some(1));
    }
}
