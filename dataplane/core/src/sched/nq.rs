//! nq (never queue): the first server with no active connection; otherwise the sed rule.

use super::View;

pub(crate) fn pick(v: &View) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for i in 0..v.len() {
        if v.unavailable(i) {
            continue;
        }
        if v.active(i) == 0 {
            return Some(i);
        }
        let doh = v.active(i) + 1;
        if least.is_none_or(|(l, loh)| loh * v.weight(i) > doh * v.weight(l)) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::pick;

    #[test]
    fn idle_server_first_then_sed() {
        let d = dests(&[5, 1, 1]);
        let l = loads(3);
        let v = view(&d, &l);
        l[0].set_counts(1, 0);
        l[1].set_counts(0, 50); // idle (only inactive)
        assert_eq!(pick(&v), Some(1));
        l[1].set_counts(1, 0);
        l[2].set_counts(1, 0);
        // A: 2/5, B: 2/1, C: 2/1 -> A
        assert_eq!(pick(&v), Some(0));
        l[0].set_counts(9, 0); // A: 10/5 = 2 = B's 2/1: tie, A stays first
        assert_eq!(pick(&v), Some(0));
    }
}
