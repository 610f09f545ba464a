use crate::error::{Error, Result};
use crate::ethdev::PortId;
use crate::log;
use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The initialised Environment Abstraction Layer. `rte_eal_init` may run once per process;
/// a second [`Eal::init`] returns an error.
#[derive(Debug)]
pub struct Eal {
    main_lcore: u32,
}

impl Eal {
    /// Initialises EAL with `args` (EAL options, without a program name). On failure the
    /// error carries DPDK's reason and, where EAL logged one, its last error line.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(Error::new("EAL initialisation", libc::EALREADY));
        }
        let mut owned = vec![CString::new("rvs").expect("static name")];
        for a in args {
            let a = a.as_ref();
            owned.push(CString::new(a).map_err(|_| {
                Error::new(
                    format!("EAL argument {a:?} contains a NUL byte"),
                    libc::EINVAL,
                )
            })?);
        }
        // rte_eal_init may permute argv; it gets its own array of pointers to our strings.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
        log::clear_last_error();
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call; EAL
        // reorders the pointer array but does not write through the pointers.
        let ret = unsafe { dpdk_sys::rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
        if ret < 0 {
            let mut err = Error::from_rte_errno("EAL initialisation");
            if let Some(line) = log::take_last_error() {
                err.context = format!("EAL initialisation ({line})");
            }
            return Err(err);
        }
        // SAFETY: EAL is initialised.
        let main_lcore = unsafe { dpdk_sys::rte_get_main_lcore() };
        Ok(Eal { main_lcore })
    }

    /// The lcore the initialising thread became.
    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// Enabled lcores other than the main one, in increasing order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut id = u32::MAX;
        loop {
            // SAFETY: EAL is initialised; rte_get_next_lcore accepts any start value.
            id = unsafe { dpdk_sys::rte_get_next_lcore(id, 1, 0) };
            if id >= dpdk_sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(id);
        }
    }

    pub fn lcore_enabled(&self, lcore: u32) -> bool {
        // SAFETY: EAL is initialised; any value is accepted.
        lcore < dpdk_sys::RTE_MAX_LCORE && unsafe { dpdk_sys::rte_lcore_is_enabled(lcore) } != 0
    }

    /// NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: EAL is initialised; out-of-range lcores give SOCKET_ID_ANY-like values.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Whether EAL runs on hugepages.
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: EAL is initialised.
        unsafe { dpdk_sys::rte_eal_has_hugepages() != 0 }
    }

    /// Attaches a device by its devargs (`net_ring0`, `net_tap0,iface=x`, a PCI address...)
    /// and returns the ethdev ports it created. A device already attached (for instance a
    /// PCI device given with `-a`) is looked up.
    pub fn attach(&self, devargs: &str) -> Result<Vec<PortId>> {
        let existing = self.ports_matching(devargs)?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        let c = CString::new(devargs)
            .map_err(|_| Error::new(format!("device {devargs:?}"), libc::EINVAL))?;
        log::clear_last_error();
        // SAFETY: c is a valid NUL-terminated string for the call's duration.
        let ret = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
        if ret < 0 {
            // Drivers often fail with a bare -1 (EPERM); their log line says more.
            return Err(match log::take_last_error() {
                Some(line) if ret == -libc::EPERM => {
                    Error::new(format!("device {devargs:?} rejected: {line}"), 0)
                }
                Some(line) => Error::new(format!("device {devargs:?} rejected ({line})"), -ret),
                None => Error::new(format!("device {devargs:?} rejected"), -ret),
            });
        }
        let ports = self.ports_matching(devargs)?;
        if ports.is_empty() {
            return Err(Error::new(
                format!("device {devargs:?} attached but is not an ethernet port"),
                libc::ENODEV,
            ));
        }
        Ok(ports)
    }

    /// Ethdev ports matching devargs (`RTE_ETH_FOREACH_MATCHING_DEV`).
    pub fn ports_matching(&self, devargs: &str) -> Result<Vec<PortId>> {
        let c = CString::new(devargs)
            .map_err(|_| Error::new(format!("device {devargs:?}"), libc::EINVAL))?;
        let mut iter = dpdk_sys::rte_dev_iterator::default();
        // SAFETY: iter is a zeroed iterator and c outlives the iteration; the iterator is
        // cleaned up by rte_eth_iterator_next when it returns RTE_MAX_ETHPORTS, or below.
        unsafe {
            if dpdk_sys::rte_eth_iterator_init(&mut iter, c.as_ptr()) < 0 {
                // Devargs EAL cannot parse as a filter: nothing matches yet.
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            loop {
                let id = dpdk_sys::rte_eth_iterator_next(&mut iter);
                if u32::from(id) >= dpdk_sys::RTE_MAX_ETHPORTS {
                    break;
                }
                out.push(PortId(id));
            }
            Ok(out)
        }
    }

    /// Name DPDK gives a port (`net_ring0`, `0000:03:00.0`).
    pub fn port_name(&self, port: PortId) -> Option<String> {
        let mut buf = [0 as c_char; 64];
        // SAFETY: buf is RTE_DEV_NAME_MAX_LEN (64) bytes as the API requires.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(port.0, buf.as_mut_ptr()) };
        (ret == 0).then(|| crate::ethdev::c_chars(&buf))
    }
}

/// Time stamp counter now (`rte_rdtsc`; inline on x86-64, as the generator stamps every
/// packet and the workers read it every poll).
#[inline]
pub fn tsc_now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC reads the time stamp counter; no memory is touched.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the TSC; no memory is touched.
    unsafe {
        dpdk_sys::rvs_rdtsc()
    }
}

/// Asks the CPU to bring the cache line holding `p` into all cache levels (`rte_prefetch0`);
/// a hint with no effect on behaviour.
#[inline]
pub fn prefetch<T>(p: &T) {
    prefetch_addr((p as *const T).cast());
}

/// As [`prefetch`], for any address (a prefetch never dereferences in the language's sense
/// and never faults, whatever the address).
#[inline]
pub(crate) fn prefetch_addr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache; it reads nothing and never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// TSC ticks per second as EAL measured them (0 before EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: returns a value EAL computed at init.
    unsafe { dpdk_sys::rvs_tsc_hz() }
}
