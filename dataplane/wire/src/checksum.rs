//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` as big-endian 16-bit words to a 32-bit ones'-complement accumulator. The
/// words are summed four bytes at a time into 64 bits and folded once at the end (RFC 1071's
/// deferred carries); the result is at most 0xffff, and zero only for an all-zero sum.
#[inline]
pub fn accumulate(sum: u32, data: &[u8]) -> u32 {
    let (words, rest) = data.as_chunks::<4>();
    let mut acc = words.iter().fold(u64::from(sum), |acc, w| {
        acc + u64::from(u32::from_be_bytes(*w))
    });
    let (pairs, last) = rest.as_chunks::<2>();
    if let [p] = pairs {
        acc += u64::from(u16::from_be_bytes(*p));
    }
    if let [b] = last {
        acc += u64::from(*b) << 8;
    }
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    let mut s = acc as u32;
    s = (s & 0xffff) + (s >> 16);
    (s & 0xffff) + (s >> 16)
}

/// Folds an accumulator to 16 bits. Two end-around carries always do for 32 bits (the
/// first leaves at most 0x1fffe, the second at most 0xffff), so no loop and no branch.
#[inline]
pub fn fold(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// Whether an option-less IPv4 header's checksum is good: its ten words sum to 0xffff.
/// Summed as the words lie in memory, without byte swaps: the ones'-complement sum in the
/// other byte order is the byte swap of this one (RFC 1071), and 0xffff is its own swap.
#[inline]
pub fn ipv4_header_ok(h: &[u8; 20]) -> bool {
    let (words, _) = h.as_chunks::<4>();
    let wide: u64 = words
        .iter()
        .map(|w| u64::from(u32::from_ne_bytes(*w)))
        .sum();
    let s = (wide & 0xffff_ffff) + (wide >> 32);
    let s = ((s & 0xffff_ffff) + (s >> 32)) as u32;
    let s = (s & 0xffff) + (s >> 16);
    (s & 0xffff) + (s >> 16) == 0xffff
}

/// The checksum to store for `data` plus an initial accumulator (a pseudo-header).
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// Checksum of a byte range (checksum field included as zero by the caller).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// IPv4 pseudo-header accumulator (RFC 793/768).
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let sum = accumulate(accumulate(0, &src), &dst);
    accumulate(sum, &[0, proto]) + u32::from(len)
}

/// IPv6 pseudo-header accumulator (RFC 8200 8.1).
#[inline]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, len: u32) -> u32 {
    let sum = accumulate(accumulate(0, &src), &dst);
    let sum = accumulate(sum, &len.to_be_bytes());
    accumulate(sum, &[0, 0, 0, proto])
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with `changes` the sum of ~m + m' over the
/// changed words.
#[inline]
pub fn adjust(check: u16, changes: u32) -> u16 {
    !fold(u32::from(!check) + changes)
}

/// [`adjust`] for one 16-bit word changing from `old` to `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    adjust(check, u32::from(!old) + u32::from(new))
}

/// Incremental update for a field of any even length (an address) changing.
#[inline]
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut sum = u32::from(!check);
    for (o, n) in old.as_chunks::<2>().0.iter().zip(new.as_chunks::<2>().0) {
        sum += u32::from(!u16::from_be_bytes(*o));
        sum += u32::from(u16::from_be_bytes(*n));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// The 16-bit-at-a-time sum with a fold per word, as RFC 1071 writes it.
    fn by_words(mut sum: u32, data: &[u8]) -> u32 {
        for c in data.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    #[test]
    fn wide_sum_equals_the_word_by_word_sum() {
        let mut seed = 0x2545_f491_u32;
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            for start in [0, 1, 0xffff, 0x1fffe, (seed >> 8) & 0x3ffff] {
                assert_eq!(
                    fold(accumulate(start, &data)),
                    fold(by_words(start, &data)),
                    "{len} bytes from {start:#x}"
                );
            }
            assert_eq!(accumulate(0, &vec![0xff; len]) == 0, len == 0);
            assert!(accumulate(0, &data) <= 0xffff);
        }
        assert_eq!(accumulate(0, &[0; 64]), 0);
    }

    proptest::proptest! {
        #[test]
        fn ipv4_header_ok_is_the_big_endian_sum(h in proptest::prelude::any::<[u8; 20]>(), fix in proptest::prelude::any::<bool>()) {
            let mut h = h;
            if fix {
                // A good checksum in its place.
                h[10..12].fill(0);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            proptest::prop_assert_eq!(ipv4_header_ok(&h), fold(accumulate(0, &h)) == 0xffff);
            if fix {
                proptest::prop_assert!(ipv4_header_ok(&h));
            }
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn incremental_equals_recomputed() {
        let mut data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let check = checksum(&data);
        let (old, new) = ([data[12], data[13], data[14], data[15]], [10, 0, 0, 7]);
        data[12..16].copy_from_slice(&new);
        assert_eq!(update_bytes(check, &old, &new), checksum(&data));
        let old16 = u16::from_be_bytes([data[2], data[3]]);
        data[2..4].copy_from_slice(&0xbeefu16.to_be_bytes());
        let c2 = update16(
            checksum(&{
                let mut d = data.clone();
                d[2..4].copy_from_slice(&old16.to_be_bytes());
                d
            }),
            old16,
            0xbeef,
        );
        assert_eq!(c2, checksum(&data));
    }

    /// The end-around carry repeated until 16 bits remain (RFC 1071), against `fold`.
    fn fold_by_loop(mut sum: u32) -> u32 {
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    #[test]
    fn fold_takes_two_carries_at_most() {
        for sum in [
            0,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x1_ffff,
            0xfffe_ffff,
            0xffff_0000,
            u32::MAX,
        ] {
            assert_eq!(u32::from(fold(sum)), fold_by_loop(sum), "{sum:#x}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fold_is_the_repeated_end_around_carry(sum in proptest::prelude::any::<u32>()) {
            proptest::prop_assert_eq!(u32::from(fold(sum)), fold_by_loop(sum));
        }
    }
}
