//! lc: the least overhead (active * 256 + inactive) among servers not skipped; ties go to
//! the first in list order.

use super::View;

pub(crate) fn pick(v: &View) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for i in 0..v.len() {
        if v.unavailable(i) {
            continue;
        }
        let oh = v.overhead(i);
        if least.is_none_or(|(_, l)| oh < l) {
            least = Some((i, oh));
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::pick;

    #[test]
    fn least_overhead_first_wins_ties() {
        let d = dests(&[1, 1, 1]);
        let l = loads(3);
        let v = view(&d, &l);
        assert_eq!(pick(&v), Some(0), "all equal: first");
        l[0].set_counts(1, 0); // 256
        l[1].set_counts(0, 300); // 300
        l[2].set_counts(0, 256); // 256: tie with A, A first
        assert_eq!(pick(&v), Some(0));
        l[0].set_counts(1, 1);
        assert_eq!(pick(&v), Some(2));
        l[2].set_overloaded(true);
        assert_eq!(pick(&v), Some(0));
    }
}
