//! rr: a cursor walks the list (wrapping) to the next server that is not skipped.

use super::View;

pub(crate) fn pick(v: &View, cursor: &mut Option<usize>) -> Option<usize> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let start = cursor.map_or(0, |c| c + 1);
    for step in 0..n {
        let i = (start + step) % n;
        if !v.unavailable(i) {
            *cursor = Some(i);
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use super::pick;

    #[test]
    fn walks_and_skips() {
        let d = dests(&[1, 0, 5, 1]);
        let l = loads(4);
        let v = View {
            dests: &d,
            loads: &l,
            held: None,
        };
        let mut c = None;
        let picks: Vec<_> = (0..6).map(|_| pick(&v, &mut c)).collect();
        assert_eq!(letters(&picks), "ACDACD", "weight 0 (B) is skipped");
        l[2].set_overloaded(true);
        let picks: Vec<_> = (0..3).map(|_| pick(&v, &mut c)).collect();
        assert_eq!(letters(&picks), "ADA");
        let none = dests(&[0, 0]);
        assert_eq!(
            pick(
                &View {
                    dests: &none,
                    loads: &l,
                    held: None,
                },
                &mut None
            ),
            None
        );
    }
}
