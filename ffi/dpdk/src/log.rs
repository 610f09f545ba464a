//! EAL's log lines go to a Rust sink instead of stdout and syslog.
//!
//! DPDK writes each message with `vfprintf` + `fflush` on the stream set by
//! `rte_openlog_stream`; a `fopencookie` stream cuts it into lines and passes each line with
//! its level (`rte_log_cur_msg_loglevel`) to the sink.

use parking_lot::{Mutex, RwLock};
use std::cell::RefCell;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

/// DPDK log levels (`RTE_LOG_EMERG` = 1 ... `RTE_LOG_DEBUG` = 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Emerg = 1,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Level {
    fn from_raw(raw: u32) -> Level {
        match raw {
            0 | 1 => Level::Emerg,
            2 => Level::Alert,
            3 => Level::Crit,
            4 => Level::Err,
            5 => Level::Warning,
            6 => Level::Notice,
            7 => Level::Info,
            _ => Level::Debug,
        }
    }

    /// The name EAL's `--log-level` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Level::Emerg => "emergency",
            Level::Alert => "alert",
            Level::Crit => "critical",
            Level::Err => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    pub fn parse(name: &str) -> Option<Level> {
        let all = [
            Level::Emerg,
            Level::Alert,
            Level::Crit,
            Level::Err,
            Level::Warning,
            Level::Notice,
            Level::Info,
            Level::Debug,
        ];
        all.into_iter().find(|l| l.name() == name)
    }
}

pub type Sink = Box<dyn Fn(Level, &str) + Send + Sync>;

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static LAST_ERROR: Mutex<Option<String>> = Mutex::new(None);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static PARTIAL: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Routes EAL's log to `sink` (replacing an earlier sink). Call before [`crate::Eal::init`]
/// to catch its messages too.
pub fn set_sink(sink: Sink) {
    *SINK.write() = Some(sink);
    install_stream();
}

/// The first line logged at `Err` or worse since [`clear_last_error`] (usually the root
/// cause; later lines tend to repeat it in general terms), taken so it is reported once.
pub fn take_last_error() -> Option<String> {
    LAST_ERROR.lock().take()
}

/// Forgets earlier error lines, before an operation whose own errors are wanted.
pub fn clear_last_error() {
    LAST_ERROR.lock().take();
}

fn install_stream() {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    // SAFETY: the shim wraps fopencookie with our write callback; the stream lives for the
    // rest of the process, as DPDK keeps the pointer.
    unsafe {
        let stream = dpdk_sys::rvs_log_stream(Some(write_line_bytes));
        if !stream.is_null() {
            dpdk_sys::rte_openlog_stream(stream);
        }
    }
}

extern "C" fn write_line_bytes(buf: *const c_char, size: usize) -> std::os::raw::c_long {
    if buf.is_null() || size == 0 {
        return 0;
    }
    // SAFETY: stdio hands us `size` readable bytes at `buf` for the duration of the call.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), size) };
    // SAFETY: reads the calling thread's level of the message being written.
    let level = Level::from_raw(unsafe { dpdk_sys::rte_log_cur_msg_loglevel() } as u32);
    let text = String::from_utf8_lossy(bytes);
    // Never let a panic cross back into C.
    let _ = std::panic::catch_unwind(|| {
        PARTIAL.with(|partial| {
            let mut partial = partial.borrow_mut();
            partial.push_str(&text);
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                emit(level, line.trim_end());
            }
        })
    });
    size as std::os::raw::c_long
}

fn emit(level: Level, line: &str) {
    if line.is_empty() {
        return;
    }
    if level <= Level::Err {
        LAST_ERROR.lock().get_or_insert_with(|| line.to_owned());
    }
    if let Some(sink) = SINK.read().as_ref() {
        sink(level, line);
    }
}
