//! CPU hints for the DPDK-free core. Kept under `ffi/` because the instruction is reached
//! through an `unsafe` intrinsic; everything above it stays safe.

/// Hints the CPU to bring the cache line holding `p` in ahead of its use (no effect on
/// targets without a prefetch instruction).
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache; it reads nothing and never faults, and the
    // address comes from a live reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (p as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_of_any_reference_is_harmless() {
        let v = [1u64, 2, 3];
        super::prefetch(&v);
        super::prefetch(&v[2]);
        assert_eq!(v.iter().sum::<u64>(), 6);
    }
}
