use crate::error::{check, Error, Result};
use crate::Eal;
use parking_lot::Mutex;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The lcore id of the calling thread (`u32::MAX` for an unregistered non-EAL thread).
#[inline]
pub fn current_lcore() -> u32 {
    // SAFETY: reads the calling thread's per-lcore variable.
    unsafe { dpdk_sys::rvs_lcore_id() }
}

/// A panic on a worker lcore, caught before it could unwind into C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcorePanic {
    pub lcore: u32,
    pub message: String,
}

impl std::fmt::Display for LcorePanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lcore {} panicked: {}", self.lcore, self.message)
    }
}

impl std::error::Error for LcorePanic {}

type Slot<R> = Arc<Mutex<Option<std::result::Result<R, String>>>>;

/// A closure running on a worker lcore.
#[must_use = "join the lcore to get its result"]
pub struct LcoreHandle<R> {
    lcore: u32,
    slot: Slot<R>,
}

impl<R> LcoreHandle<R> {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// True once the closure has returned or panicked.
    pub fn is_finished(&self) -> bool {
        self.slot.lock().is_some()
    }

    /// Waits for the closure to return (`rte_eal_wait_lcore`).
    pub fn join(self) -> std::result::Result<R, LcorePanic> {
        // SAFETY: the lcore was launched by us; waiting is always allowed from the main lcore.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        let taken = self.slot.lock().take();
        match taken {
            Some(Ok(r)) => Ok(r),
            Some(Err(message)) => Err(LcorePanic {
                lcore: self.lcore,
                message,
            }),
            None => Err(LcorePanic {
                lcore: self.lcore,
                message: "the lcore returned no result".into(),
            }),
        }
    }
}

type Job = Box<dyn FnOnce() -> c_int + Send>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Box<Job> leaked by Eal::launch, handed to exactly one lcore.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    job()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

impl Eal {
    /// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`). A panic in `f` is caught
    /// and returned by [`LcoreHandle::join`].
    pub fn launch<F, R>(&self, lcore: u32, f: F) -> Result<LcoreHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if lcore == self.main_lcore() || !self.lcore_enabled(lcore) {
            return Err(Error::new(
                format!("launch on lcore {lcore}: not an enabled worker lcore"),
                libc::EINVAL,
            ));
        }
        let slot: Slot<R> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            let code = if result.is_ok() { 0 } else { -1 };
            *out.lock() = Some(result.map_err(|p| panic_message(p.as_ref())));
            code
        });
        let arg = Box::into_raw(Box::new(job));
        // SAFETY: trampoline matches lcore_function_t; arg is a leaked Box<Job> that the
        // trampoline takes back exactly once when the launch succeeds.
        let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg.cast(), lcore) };
        if ret < 0 {
            // SAFETY: the launch failed, so no lcore received arg: we still own it.
            drop(unsafe { Box::from_raw(arg) });
            check(ret, || format!("launch on lcore {lcore}"))?;
        }
        Ok(LcoreHandle { lcore, slot })
    }
}

/// Registration of a non-EAL thread as an lcore (`rte_thread_register`), so it gets an
/// lcore id and mempool caches. Unregistered on drop.
pub struct ThreadRegistration {
    lcore: u32,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ThreadRegistration {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }
}

/// Registers the calling (non-EAL) thread.
pub fn register_thread(_eal: &Eal) -> Result<ThreadRegistration> {
    // SAFETY: EAL is initialised; registers the calling thread.
    if unsafe { dpdk_sys::rte_thread_register() } != 0 {
        return Err(Error::from_rte_errno("register thread with EAL"));
    }
    Ok(ThreadRegistration {
        lcore: current_lcore(),
        _not_send: std::marker::PhantomData,
    })
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread was registered by register_thread and the guard is !Send.
        unsafe { dpdk_sys::rte_thread_unregister() }
    }
}
