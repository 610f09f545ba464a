use crate::error::{Error, Result};
use crate::mbuf::MbufBurst;
use crate::Eal;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

struct RingInner(NonNull<dpdk_sys::rte_ring>);

// SAFETY: the ring is a lock-free DPDK object; the single producer and single consumer
// are enforced by the two non-Clone halves.
unsafe impl Send for RingInner {}
// SAFETY: as above.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Both halves are gone: drain what is left, then free the ring.
        let mut burst: MbufBurst = MbufBurst::new();
        loop {
            // SAFETY: no other handle to the ring exists any more.
            let n = unsafe {
                dpdk_sys::rvs_ring_dequeue_burst(
                    self.0.as_ptr(),
                    burst.spare_ptr().cast(),
                    burst.spare() as u32,
                )
            } as usize;
            if n == 0 {
                break;
            }
            // SAFETY: n owned mbufs were written into the free slots.
            unsafe { burst.set_len(n) };
            burst.clear();
        }
        // SAFETY: the ring was created by rte_ring_create and is freed once.
        unsafe { dpdk_sys::rte_ring_free(self.0.as_ptr()) }
    }
}

/// Creates a single-producer/single-consumer ring of `count` (a power of two) mbufs.
pub fn mbuf_ring(
    _eal: &Eal,
    name: &str,
    count: u32,
    socket: i32,
) -> Result<(RingProducer, RingConsumer)> {
    let c =
        CString::new(name).map_err(|_| Error::new(format!("ring name {name:?}"), libc::EINVAL))?;
    let flags = dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ;
    // SAFETY: c outlives the call; EAL is initialised.
    let p = unsafe { dpdk_sys::rte_ring_create(c.as_ptr(), count, socket, flags) };
    let inner =
        Arc::new(RingInner(NonNull::new(p).ok_or_else(|| {
            Error::from_rte_errno(format!("ring {name:?} of {count}"))
        })?));
    Ok((
        RingProducer {
            ring: inner.clone(),
        },
        RingConsumer { ring: inner },
    ))
}

/// The one enqueuing side of a ring.
pub struct RingProducer {
    ring: Arc<RingInner>,
}

/// The one dequeuing side of a ring.
pub struct RingConsumer {
    ring: Arc<RingInner>,
}

impl RingProducer {
    /// Moves as many mbufs from the front of the burst as fit; the rest stay.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        // SAFETY: the single producer (this handle, &mut) enqueues owned mbuf pointers; the
        // ring takes ownership of the first n.
        let n = unsafe {
            dpdk_sys::rvs_ring_enqueue_burst(
                self.ring.0.as_ptr(),
                burst.as_mut_ptr().cast(),
                burst.len() as u32,
            )
        } as usize;
        burst.consumed_front(n);
        n
    }
}

impl RingConsumer {
    /// Appends up to the burst's free space; returns how many arrived.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        // SAFETY: the single consumer (this handle, &mut) takes owned mbufs into free slots.
        unsafe {
            let n = dpdk_sys::rvs_ring_dequeue_burst(
                self.ring.0.as_ptr(),
                burst.spare_ptr().cast(),
                burst.spare() as u32,
            ) as usize;
            burst.set_len(burst.len() + n);
            n
        }
    }

    /// Mbufs waiting.
    pub fn len(&self) -> usize {
        // SAFETY: a read of the ring's indices.
        unsafe { dpdk_sys::rvs_ring_count(self.ring.0.as_ptr()) as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
