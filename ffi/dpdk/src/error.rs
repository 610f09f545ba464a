use std::ffi::CStr;
use std::fmt;

/// A failed DPDK call: what was being done and the errno DPDK gave (0 when DPDK gave only
/// a generic failure and the context already says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub context: String,
    pub errno: i32,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(context: impl Into<String>, errno: i32) -> Self {
        Error {
            context: context.into(),
            errno: errno.abs(),
        }
    }

    /// The error from `rte_errno` of the calling thread.
    pub(crate) fn from_rte_errno(context: impl Into<String>) -> Self {
        Error::new(context, rte_errno())
    }

    /// DPDK's wording for the errno (`rte_strerror`).
    pub fn reason(&self) -> String {
        strerror(self.errno)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errno == 0 {
            f.write_str(&self.context)
        } else {
            write!(f, "{}: {}", self.context, self.reason())
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads the calling thread's per-lcore rte_errno.
    unsafe { dpdk_sys::rvs_errno() }
}

pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string (static or
    // thread-local) that stays valid until the next call on this thread; copied at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno);
        if p.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Maps a DPDK return code (negative errno on failure) to a Result.
pub(crate) fn check(ret: i32, context: impl FnOnce() -> String) -> Result<i32> {
    if ret < 0 {
        Err(Error::new(context(), -ret))
    } else {
        Ok(ret)
    }
}
