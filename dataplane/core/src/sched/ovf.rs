//! ovf (weighted overflow): the highest weight among servers whose active connections do
//! not exceed their weight; the first wins ties.

use super::fo::highest_weight;
use super::View;

pub(crate) fn pick(v: &View) -> Option<usize> {
    highest_weight(v, |i| v.active(i) <= v.weight(i))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::pick;

    #[test]
    fn overflows_to_the_next_heaviest() {
        let d = dests(&[2, 3, 3]);
        let l = loads(3);
        let v = view(&d, &l);
        assert_eq!(pick(&v), Some(1));
        l[1].set_counts(3, 0); // 3 <= 3: still a candidate
        assert_eq!(pick(&v), Some(1));
        l[1].set_counts(4, 0);
        assert_eq!(pick(&v), Some(2));
        l[2].set_counts(4, 0);
        assert_eq!(pick(&v), Some(0));
        l[0].set_counts(3, 0);
        assert_eq!(pick(&v), None);
    }
}
