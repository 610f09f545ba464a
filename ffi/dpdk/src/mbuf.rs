// Bursts are per-packet code: no index that may panic.
#![deny(clippy::indexing_slicing)]

use std::ptr::NonNull;

/// Default burst size, as testpmd's.
pub const BURST: usize = 32;

/// One packet buffer, freed (`rte_pktmbuf_free`) on drop.
///
/// The byte views cover the first segment; rvs's pools hold a whole frame in one segment
/// (see [`Mbuf::is_contiguous`]).
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf is exclusively owned by this handle; freeing it returns it to a
// thread-safe mempool, so it may move between threads.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(crate) fn from_non_null(p: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf(p)
    }

    fn raw(&self) -> *mut dpdk_sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// Start of the packet bytes: `rte_pktmbuf_mtod`, read from the fields here rather than
    /// through the C shim, as the engine takes this view several times per packet.
    #[inline]
    fn mtod(&self) -> *mut u8 {
        // SAFETY: buf_addr and data_off are plain fields of a valid mbuf; data_off is within
        // the buffer by DPDK's invariant, so the offset pointer stays inside it.
        unsafe {
            let m = &*self.raw();
            (m.buf_addr as *mut u8).add(usize::from(m.data_off))
        }
    }

    /// The packet bytes of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes owned by this mbuf; the borrow
        // of self keeps it alive and unmodified.
        unsafe { std::slice::from_raw_parts(self.mtod(), self.len()) }
    }

    /// The packet bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(); the exclusive borrow of self makes the view unique.
        unsafe { std::slice::from_raw_parts_mut(self.mtod(), self.len()) }
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: reads a plain field of a valid mbuf.
        unsafe { usize::from((*self.raw()).data_len) }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_pkt_len(self.raw()) as usize }
    }

    /// True when the packet is in one segment, so [`Mbuf::data`] is all of it.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_nb_segs(self.raw()) == 1 }
    }

    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: reads fields of a valid mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_headroom(self.raw()) as usize }
    }

    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: reads fields of a valid mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_tailroom(self.raw()) as usize }
    }

    /// Port the packet was received on.
    #[inline]
    pub fn in_port(&self) -> u16 {
        // SAFETY: reads a plain field of a valid mbuf.
        unsafe { (*self.raw()).port }
    }

    /// Overwrites the input-port field (a worker stamps frames it hands to another).
    #[inline]
    pub fn set_in_port(&mut self, port: u16) {
        // SAFETY: writes a plain field of an mbuf this handle owns exclusively.
        unsafe { (*self.raw()).port = port }
    }

    /// Asks the port to fill in the IPv4 header checksum on transmit (the port must have
    /// been configured with the offload; see [`crate::Port::tx_ipv4_checksum`]).
    #[inline]
    pub fn offload_ipv4_checksum(&mut self, l2_len: u16, l3_len: u16) {
        // SAFETY: writes plain fields of an mbuf this handle owns exclusively.
        unsafe { dpdk_sys::rvs_pktmbuf_tx_ipv4_cksum(self.raw(), l2_len, l3_len) }
    }

    /// RSS hash from the NIC (valid when the port hashes).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_rss_hash(self.raw()) }
    }

    /// Whether the NIC checked the IPv4 header checksum and found it good.
    #[inline]
    pub fn rx_ip_checksum_good(&self) -> bool {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_rx_ip_cksum_good(self.raw()) != 0 }
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: reads a field of a valid mbuf.
        unsafe { dpdk_sys::rvs_pktmbuf_ol_flags(self.raw()) }
    }

    /// Grows the packet by `n` bytes at the front (for an encapsulation header) and returns
    /// them; None, with nothing changed, when the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        // SAFETY: on success DPDK moved data_off back by n within the buffer and returned
        // the new start; the n bytes there belong to this mbuf.
        unsafe {
            let p = dpdk_sys::rvs_pktmbuf_prepend(self.raw(), n);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p, n as usize))
        }
    }

    /// Grows the packet by `n` bytes at the end and returns them; None when the tailroom of
    /// the last segment is too small.
    #[inline]
    pub fn append(&mut self, n: u16) -> Option<&mut [u8]> {
        // SAFETY: on success the n bytes at the returned address are inside this mbuf's
        // buffer and now part of the packet.
        unsafe {
            let p = dpdk_sys::rvs_pktmbuf_append(self.raw(), n);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p, n as usize))
        }
    }

    /// Removes `n` bytes from the front (decapsulation); false when the first segment is
    /// shorter.
    #[inline]
    pub fn adj(&mut self, n: u16) -> bool {
        // SAFETY: rte_pktmbuf_adj checks the length and only moves data_off.
        unsafe { !dpdk_sys::rvs_pktmbuf_adj(self.raw(), n).is_null() }
    }

    /// Removes `n` bytes from the end; false when the last segment is shorter.
    #[inline]
    pub fn trim(&mut self, n: u16) -> bool {
        // SAFETY: rte_pktmbuf_trim checks the length and only shrinks lengths.
        unsafe { dpdk_sys::rvs_pktmbuf_trim(self.raw(), n) == 0 }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the handle owns the mbuf; it is freed exactly once, here.
        unsafe { dpdk_sys::rvs_pktmbuf_free(self.raw()) }
    }
}

/// Up to N owned mbufs in a fixed array: what rx bursts fill and tx bursts drain.
/// Dropping it frees the mbufs left in it with one `rte_pktmbuf_free_bulk`.
pub struct MbufBurst<const N: usize = BURST> {
    ptrs: [*mut dpdk_sys::rte_mbuf; N],
    len: usize,
}

// SAFETY: the burst owns its mbufs exclusively, like a Vec<Mbuf>.
unsafe impl<const N: usize> Send for MbufBurst<N> {}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufBurst<N> {
    pub const fn new() -> Self {
        MbufBurst {
            ptrs: [std::ptr::null_mut(); N],
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        N - self.len
    }

    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first len slots hold valid, owned, non-null mbuf pointers, and Mbuf is
        // a transparent wrapper of a non-null pointer.
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice(); the exclusive borrow makes the view unique. Swapping
        // elements through it keeps every slot owned exactly once.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Asks the CPU for every mbuf's header line, then for the line its packet starts in,
    /// each pass without waiting on the lines it asks for, so that a burst's cache misses
    /// overlap (a ring-fed worker sees mbufs another core just wrote).
    #[inline]
    pub fn prefetch(&self) {
        for &p in self.ptrs.iter().take(self.len) {
            crate::eal::prefetch_addr(p.cast_const().cast());
        }
        for m in self.as_slice() {
            crate::eal::prefetch_addr(m.mtod().cast_const());
        }
    }

    /// Appends an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        let Some(slot) = self.ptrs.get_mut(self.len) else {
            return Err(m);
        };
        *slot = m.0.as_ptr();
        std::mem::forget(m);
        self.len += 1;
        Ok(())
    }

    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        NonNull::new(*self.ptrs.get(self.len)?).map(Mbuf)
    }

    /// Frees the mbufs from index `keep` on.
    pub fn truncate(&mut self, keep: usize) {
        if keep >= self.len {
            return;
        }
        // SAFETY: slots keep..len hold owned mbufs; they are freed once and forgotten.
        unsafe {
            dpdk_sys::rte_pktmbuf_free_bulk(
                self.ptrs.as_mut_ptr().add(keep),
                (self.len - keep) as u32,
            );
        }
        self.len = keep;
    }

    /// Keeps the mbufs for which `keep` returns true, in order, and frees the others;
    /// returns how many were freed.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) -> usize {
        let mut kept = 0;
        for i in 0..self.len {
            let Some(&p) = self.ptrs.get(i) else {
                break;
            };
            // SAFETY: slot i < len holds an owned mbuf; it is either moved to slot kept
            // (kept <= i, so in range) or freed, so each mbuf stays owned exactly once.
            let mut m = Mbuf(unsafe { NonNull::new_unchecked(p) });
            if keep(&mut m) {
                if let Some(slot) = self.ptrs.get_mut(kept) {
                    *slot = m.0.as_ptr();
                    std::mem::forget(m);
                    kept += 1;
                }
            }
        }
        let freed = self.len - kept;
        self.len = kept;
        freed
    }

    /// Hands every mbuf, in order, to `f` and leaves the burst empty.
    pub fn drain_each(&mut self, mut f: impl FnMut(Mbuf)) {
        let n = std::mem::replace(&mut self.len, 0);
        for &p in self.ptrs.iter().take(n) {
            // SAFETY: slots ..n held owned, non-null mbufs; the length is already 0, so
            // each is handed out exactly once (a panic in f leaks the rest, never frees twice).
            f(Mbuf(unsafe { NonNull::new_unchecked(p) }));
        }
    }

    /// Frees every mbuf in the burst.
    #[inline]
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Forgets the first `n` mbufs, whose ownership went to DPDK (a tx queue or a ring),
    /// and moves the rest to the front.
    pub(crate) fn consumed_front(&mut self, n: usize) {
        let Some(live) = self.ptrs.get_mut(..self.len) else {
            return;
        };
        let n = n.min(live.len());
        live.copy_within(n.., 0);
        self.len -= n;
    }

    pub(crate) fn spare_ptr(&mut self) -> *mut *mut dpdk_sys::rte_mbuf {
        // SAFETY: len <= N, so the result points inside the array or one past its end.
        unsafe { self.ptrs.as_mut_ptr().add(self.len) }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut *mut dpdk_sys::rte_mbuf {
        self.ptrs.as_mut_ptr()
    }

    /// # Safety
    /// Slots `..len` must hold owned, valid mbuf pointers.
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= N);
        self.len = len;
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> std::fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MbufBurst({}/{})", self.len, N)
    }
}
