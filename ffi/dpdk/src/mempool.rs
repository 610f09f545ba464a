use crate::error::{Error, Result};
use crate::mbuf::{Mbuf, MbufBurst};
use crate::Eal;
use std::ffi::CString;
use std::ptr::NonNull;

/// A packet-buffer pool (`rte_pktmbuf_pool_create`).
///
/// Pools live until the process ends: port queues and in-flight mbufs point into them,
/// so there is no safe moment to free one. The handle is a copyable reference.
#[derive(Debug, Clone, Copy)]
pub struct Mempool(NonNull<dpdk_sys::rte_mempool>);

// SAFETY: the default mempool ops are multi-producer/multi-consumer and the per-lcore
// caches are keyed by lcore id, so the pool may be used from any thread.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations go through DPDK's thread-safe mempool API.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with `data_room` bytes each (headroom included) and a
    /// per-lcore cache of `cache` mbufs, on NUMA `socket` (-1 for any).
    pub fn new(
        _eal: &Eal,
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool> {
        let c = CString::new(name)
            .map_err(|_| Error::new(format!("mempool name {name:?}"), libc::EINVAL))?;
        // SAFETY: c is a valid name for the call; EAL is initialised (the &Eal proves it).
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c.as_ptr(), size, cache, 0, data_room, socket)
        };
        NonNull::new(p)
            .map(Mempool)
            .ok_or_else(|| Error::from_rte_errno(format!("mempool {name:?} of {size} mbufs")))
    }

    /// One mbuf, or None when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for the process lifetime.
        let m = unsafe { dpdk_sys::rvs_pktmbuf_alloc(self.0.as_ptr()) };
        NonNull::new(m).map(Mbuf::from_non_null)
    }

    /// Fills `burst` up with `n` more mbufs at once, or none when the pool has fewer.
    #[inline]
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut MbufBurst<N>, n: usize) -> bool {
        let n = n.min(burst.spare());
        let tail = burst.spare_ptr();
        // SAFETY: tail points at `spare` unused slots of the burst array; on success DPDK
        // wrote n valid mbuf pointers there, which the burst then owns.
        let ret = unsafe { dpdk_sys::rvs_pktmbuf_alloc_bulk(self.0.as_ptr(), tail, n as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: n slots after the current length now hold owned mbufs.
        unsafe { burst.set_len(burst.len() + n) };
        true
    }

    /// Mbufs the pool holds in all.
    pub fn size(&self) -> u32 {
        // SAFETY: valid pool pointer; `size` is set at creation and never written after.
        unsafe { (*self.0.as_ptr()).size }
    }

    /// Mbufs free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool pointer.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.0.as_ptr()) }
    }

    /// Mbufs taken from the pool.
    pub fn in_use(&self) -> u32 {
        // SAFETY: valid pool pointer.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.0.as_ptr()) }
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.0.as_ptr()
    }
}
