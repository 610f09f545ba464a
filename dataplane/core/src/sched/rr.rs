//! rr: a cursor walks the list (wrapping) to the next server that is not skipped.

use super::View;

pub(crate) fn pick(v: &View, cursor: &mut Option<usize>) -> Option<usize> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    // Wrapped by a compare, not a division (one per new connection otherwise); a cursor
    // past a list that shrank starts where the division would put it.
    let mut i = cursor.map_or(0, |c| c + 1);
    if i >= n {
        i %= n;
    }
    for _ in 0..n {
        if !v.unavailable(i) {
            *cursor = Some(i);
            return Some(i);
        }
        i += 1;
        if i == n {
            i = 0;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::pick;

    #[test]
    fn walks_and_skips() {
        let d = dests(&[1, 0, 5, 1]);
        let l = loads(4);
        let v = view(&d, &l);
        let mut c = None;
        let picks: Vec<_> = (0..6).map(|_| pick(&v, &mut c)).collect();
        assert_eq!(letters(&picks), "ACDACD", "weight 0 (B) is skipped");
        l[2].set_overloaded(true);
        let picks: Vec<_> = (0..3).map(|_| pick(&v, &mut c)).collect();
        assert_eq!(letters(&picks), "ADA");
        let none = dests(&[0, 0]);
        assert_eq!(pick(&view(&none, &l), &mut None), None);
    }

    #[test]
    fn a_cursor_past_a_shrunk_list_wraps_as_by_division() {
        let d = dests(&[1, 1, 1, 1]);
        let l = loads(4);
        let v = view(&d, &l);
        // The list had 8 servers; the cursor was on the sixth: (5 + 1) % 4 = C.
        let mut c = Some(5);
        let picks: Vec<_> = (0..3).map(|_| pick(&v, &mut c)).collect();
        assert_eq!(letters(&picks), "CDA");
        let mut c = Some(3);
        assert_eq!(
            letters(&[pick(&v, &mut c)]),
            "A",
            "the last wraps to the first"
        );
    }
}
