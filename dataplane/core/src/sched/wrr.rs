//! wrr: di = gcd of the positive weights, mw = max weight - (di - 1). Walk from the cursor
//! to the first non-overloaded server with weight >= cw; at the end of the list cw -= di,
//! and when cw <= 0 it restarts at mw.

use super::{gcd_weight, RealServer, View};

/// The constants the control side computes for a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrrConsts {
    pub di: i64,
    pub mw: i64,
    /// Weight levels a pick may pass, and one more: a bound on its walk worked out here,
    /// not by a division per new connection.
    levels: usize,
}

impl WrrConsts {
    pub fn new(dests: &[RealServer]) -> WrrConsts {
        let di = i64::from(gcd_weight(dests.iter().map(|d| d.weight)));
        let max = dests.iter().map(|d| i64::from(d.weight)).max().unwrap_or(0);
        WrrConsts::of(di, (max - (di - 1)).max(0))
    }

    fn of(di: i64, mw: i64) -> WrrConsts {
        WrrConsts {
            di,
            mw,
            levels: (mw / di.max(1) + 2) as usize,
        }
    }

    /// cw after an add, delete or edit: mw when cw > mw or cw = 0; otherwise rounded to
    /// the gcd grid plus one when di > 1.
    pub fn adjusted_cw(&self, cw: i64) -> i64 {
        if cw > self.mw || cw == 0 {
            self.mw
        } else if self.di > 1 {
            (cw / self.di) * self.di + 1
        } else {
            cw
        }
    }
}

pub(crate) fn pick(
    v: &View,
    c: &WrrConsts,
    cursor: &mut Option<usize>,
    cw: &mut i64,
) -> Option<usize> {
    let n = v.len();
    if n == 0 || c.mw == 0 {
        return None;
    }
    // Enough steps to pass every weight level once, and the list once more.
    let mut i = cursor.map_or(0, |x| x + 1);
    for _ in 0..c.levels.saturating_mul(n + 1) {
        if i >= n {
            i = 0;
            *cw -= c.di;
            if *cw <= 0 {
                *cw = c.mw;
            }
        }
        if !v.overloaded(i) && v.weight(i) >= *cw && v.weight(i) > 0 {
            *cursor = Some(i);
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::WrrConsts;

    fn cycle(weights: &[u32], n: usize, start_cw: Option<i64>) -> String {
        let d = dests(weights);
        let l = loads(d.len());
        let kind = SchedKind::Wrr;
        let table = build_table(&kind, &d);
        let mut s = SchedState::new(&kind, &table);
        if let Some(cw) = start_cw {
            s.cw = cw;
        }
        let picks: Vec<_> = (0..n)
            .map(|_| pick(&kind, &table, &mut s, &d, &l, &req([1, 1, 1, 1], 1)))
            .collect();
        letters(&picks)
    }

    #[test]
    fn reference_cycles() {
        assert_eq!(cycle(&[4, 3, 2], 18, None), "AABABCABCAABABCABC");
        assert_eq!(cycle(&[2, 4, 6], 12, None), "CBCABCCBCABC");
        assert_eq!(cycle(&[5, 1, 1], 14, None), "AAAAABCAAAAABC");
    }

    #[test]
    fn filled_one_at_a_time_starts_with_one_round() {
        // ipvsadm -A then -a per server: cw ends at 1, so ABC comes before the cycle.
        let d = dests(&[4, 3, 2]);
        let mut cw = 0i64;
        for k in 1..=3 {
            let consts = WrrConsts::new(&d[..k]);
            cw = consts.adjusted_cw(cw);
        }
        assert_eq!(cw, 1);
        assert_eq!(cycle(&[4, 3, 2], 12, Some(cw)), "ABCAABABCABC");
    }

    #[test]
    fn adjusted_cw_rules() {
        let c = WrrConsts::of(2, 5);
        assert_eq!(c.adjusted_cw(0), 5);
        assert_eq!(c.adjusted_cw(9), 5);
        assert_eq!(c.adjusted_cw(4), 5);
        assert_eq!(c.adjusted_cw(3), 3);
        assert_eq!(WrrConsts::of(1, 4).adjusted_cw(3), 3);
    }

    #[test]
    fn skips_overloaded_and_gives_none_when_all_are() {
        let d = dests(&[2, 1]);
        let l = loads(2);
        let kind = SchedKind::Wrr;
        let table = build_table(&kind, &d);
        let mut s = SchedState::new(&kind, &table);
        l[0].set_overloaded(true);
        let r = req([1, 1, 1, 1], 1);
        assert_eq!(pick(&kind, &table, &mut s, &d, &l, &r), Some(1));
        l[1].set_overloaded(true);
        assert_eq!(pick(&kind, &table, &mut s, &d, &l, &r), None);
        let zero = dests(&[0, 0]);
        let t0 = build_table(&kind, &zero);
        assert_eq!(
            pick(&kind, &t0, &mut SchedState::new(&kind, &t0), &zero, &l, &r),
            None
        );
    }
}
