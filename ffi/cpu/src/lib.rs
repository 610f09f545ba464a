//! CPU hints and vector compares for the DPDK-free core. Kept under `ffi/` because the
//! instructions are reached through `unsafe` intrinsics; everything above it stays safe.

/// Hints the CPU to bring the cache line holding `p` in ahead of its use (no effect on
/// targets without a prefetch instruction).
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    prefetch_byte((p as *const T).cast());
}

/// As [`prefetch`] for every cache line holding the first `len` bytes of `*p` (at most
/// its size): an object that straddles lines is brought in whole, not its first line only.
#[inline(always)]
pub fn prefetch_first<T>(p: &T, len: usize) {
    let len = len.min(core::mem::size_of::<T>());
    if len == 0 {
        return;
    }
    let start = (p as *const T).cast::<u8>();
    // One hint per 64-byte step and one at the last byte: every line of the range.
    let mut at = 0;
    while at < len {
        prefetch_byte(start.wrapping_add(at));
        at += 64;
    }
    prefetch_byte(start.wrapping_add(len - 1));
}

#[inline(always)]
fn prefetch_byte(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache; it reads nothing and never faults, whatever
    // the address (the callers' addresses lie inside a live object in any case).
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A vector of `len` values from `make`, whose memory the kernel is asked to back with
/// transparent huge pages before anything is written to it (Linux with THP in `madvise` or
/// `always` mode): a table read at random (connections, their index) then needs a TLB entry
/// per 2 MiB instead of per 4 KiB. An ordinary vector where the kernel declines or for a
/// vector under 2 MiB. Not for the packet path: it allocates and makes a system call.
pub fn huge_page_vec<T>(len: usize, make: impl FnMut(usize) -> T) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    advise_huge_pages(v.spare_capacity_mut());
    v.extend((0..len).map(make));
    v
}

fn advise_huge_pages<T>(region: &mut [core::mem::MaybeUninit<T>]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = region.as_mut_ptr() as usize;
        let end = start + core::mem::size_of_val(region);
        // Whole huge pages inside the allocation only (and so page-aligned).
        let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if to > from {
            // SAFETY: MADV_HUGEPAGE changes neither contents nor which addresses are valid,
            // only how the kernel backs the range, which lies inside this vector's own
            // allocation; a refusal (an error return) leaves ordinary pages.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = region;
}

/// Bit `i` set where `lanes[i] == value`: the eight compared at once with SSE2 (part of
/// every x86-64 CPU), elsewhere one by one. A hash bucket's tag scan: a miss costs a few
/// instructions instead of eight compares and branches.
#[inline(always)]
pub fn lanes_equal(lanes: &[u32; 8], value: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions exist on every CPU
    // this code runs on; they work on registers only, built from the array by value.
    unsafe {
        use core::arch::x86_64::*;
        let l = lanes.map(|x| x as i32);
        let wanted = _mm_set1_epi32(value as i32);
        let low = _mm_cmpeq_epi32(_mm_set_epi32(l[3], l[2], l[1], l[0]), wanted);
        let high = _mm_cmpeq_epi32(_mm_set_epi32(l[7], l[6], l[5], l[4]), wanted);
        let bytes = _mm_packs_epi16(_mm_packs_epi32(low, high), _mm_setzero_si128());
        _mm_movemask_epi8(bytes) as u32
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut mask = 0;
        for (i, &x) in lanes.iter().enumerate() {
            mask |= u32::from(x == value) << i;
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lanes_equal_marks_exactly_the_equal_lanes() {
        // Every pattern of equal lanes, with values that differ in one bit or in the sign.
        for pattern in 0u32..256 {
            for value in [0u32, 1, 0x8000_0000, 0xffff_ffff, 0x1234_5679] {
                let lanes: [u32; 8] = std::array::from_fn(|i| {
                    if pattern >> i & 1 == 1 {
                        value
                    } else {
                        value ^ (1 << (i * 4))
                    }
                });
                assert_eq!(
                    super::lanes_equal(&lanes, value),
                    pattern,
                    "{lanes:x?} {value:x}"
                );
            }
        }
    }

    #[test]
    fn a_huge_page_vector_holds_what_it_was_made_of() {
        for len in [0usize, 1, 1000, 3 << 20] {
            let v = super::huge_page_vec(len, |i| i as u32 ^ 0x5a5a);
            assert_eq!(v.len(), len);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32 ^ 0x5a5a));
        }
    }

    #[test]
    fn prefetch_of_any_reference_is_harmless() {
        let v = [1u64, 2, 3];
        super::prefetch(&v);
        super::prefetch(&v[2]);
        let big = [7u8; 300];
        for len in [0, 1, 63, 64, 65, 200, 300, 10_000] {
            super::prefetch_first(&big, len);
        }
        assert_eq!(big.iter().map(|&b| u32::from(b)).sum::<u32>(), 2100);
        assert_eq!(v.iter().sum::<u64>(), 6);
    }
}
