//! The EAL's memory as testpmd's `dump` commands show it: DPDK's own dumps of its mempools,
//! rings, memzones, memory segments, lcores, devices' arguments and log types, and each
//! NUMA socket's heap.

use crate::error::{Error, Result};
use crate::Eal;
use std::ffi::CString;

/// What one of DPDK's dump functions writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    Mempool,
    Ring,
    Memzone,
    Physmem,
    Lcores,
    Devargs,
    LogTypes,
}

/// One NUMA socket's heap (`rte_malloc_get_socket_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketHeap {
    pub socket: u32,
    pub total_bytes: u64,
    pub alloc_bytes: u64,
    pub free_bytes: u64,
    pub alloc_count: u32,
    pub free_count: u32,
}

/// Reads the EAL's memory; made from an initialised [`Eal`], so every call has one.
#[derive(Debug, Clone, Copy)]
pub struct MemoryView(());

impl Eal {
    pub fn memory_view(&self) -> MemoryView {
        MemoryView(())
    }
}

impl MemoryView {
    /// DPDK's dump of `what`: every mempool or ring, or (`name`) the one of that name;
    /// None when none has it.
    pub fn dump(&self, what: Dump, name: Option<&str>) -> Result<Option<String>> {
        let which = match what {
            Dump::Mempool => dpdk_sys::rvs_dump::RVS_DUMP_MEMPOOL,
            Dump::Ring => dpdk_sys::rvs_dump::RVS_DUMP_RING,
            Dump::Memzone => dpdk_sys::rvs_dump::RVS_DUMP_MEMZONE,
            Dump::Physmem => dpdk_sys::rvs_dump::RVS_DUMP_PHYSMEM,
            Dump::Lcores => dpdk_sys::rvs_dump::RVS_DUMP_LCORES,
            Dump::Devargs => dpdk_sys::rvs_dump::RVS_DUMP_DEVARGS,
            Dump::LogTypes => dpdk_sys::rvs_dump::RVS_DUMP_LOG_TYPES,
        };
        let name = name
            .map(CString::new)
            .transpose()
            .map_err(|_| Error::new("dump: a name with a NUL byte", libc::EINVAL))?;
        let mut buf: *mut std::ffi::c_char = std::ptr::null_mut();
        // SAFETY: EAL is initialised (a MemoryView comes from an Eal); name is NUL-terminated
        // or null; buf receives a malloc'd buffer (or null), freed below.
        let len = unsafe {
            dpdk_sys::rvs_dump(
                which,
                name.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                &mut buf,
            )
        };
        let text = (len >= 0 && !buf.is_null()).then(|| {
            // SAFETY: the shim wrote `len` bytes into buf.
            let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) };
            String::from_utf8_lossy(bytes).into_owned()
        });
        // SAFETY: buf is null or open_memstream's malloc'd buffer, not used after this.
        unsafe { libc::free(buf.cast()) };
        match len {
            -1 => Ok(None),
            l if l < 0 => Err(Error::new("dump: no memory for its buffer", libc::ENOMEM)),
            _ => Ok(text),
        }
    }

    /// Each NUMA socket's heap, sockets with none left out.
    pub fn socket_heaps(&self) -> Vec<SocketHeap> {
        (0..dpdk_sys::RTE_MAX_NUMA_NODES as i32)
            .filter_map(|socket| {
                let mut s = dpdk_sys::rte_malloc_socket_stats::default();
                // SAFETY: EAL is initialised; s is a valid out-pointer.
                let ret = unsafe { dpdk_sys::rte_malloc_get_socket_stats(socket, &mut s) };
                (ret == 0 && s.heap_totalsz_bytes > 0).then_some(SocketHeap {
                    socket: socket as u32,
                    total_bytes: s.heap_totalsz_bytes as u64,
                    alloc_bytes: s.heap_allocsz_bytes as u64,
                    free_bytes: s.heap_freesz_bytes as u64,
                    alloc_count: s.alloc_count,
                    free_count: s.free_count,
                })
            })
            .collect()
    }
}
