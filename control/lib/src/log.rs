//! rvs's log: levelled (syslog's severities), optionally structured (logfmt), rate limited
//! per event (a flapping health check or a flood of refused messages never floods the
//! log), to the terminal (errors and warnings on stderr, the rest on stdout, as rvs always
//! printed them) or to syslog/journald through `/dev/log`. Per-packet code never logs: the
//! data plane counts, the control side reports.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// syslog's severities rvs uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    pub const NAMES: [&'static str; 5] = ["error", "warning", "notice", "info", "debug"];

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        [
            Level::Error,
            Level::Warning,
            Level::Notice,
            Level::Info,
            Level::Debug,
        ]
        .into_iter()
        .find(|l| l.name() == s)
    }
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The terminal (or the service manager's capture of it).
    Terminal,
    /// syslog / journald: a datagram socket, normally `/dev/log`.
    Syslog(PathBuf),
}

/// How a line looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `rvs: COMPONENT: message` (what rvs always printed).
    Text,
    /// `ts=... level=... component=... msg="..."` for log processors.
    Logfmt,
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: Level,
    pub target: Target,
    pub format: Format,
    /// Messages of one kind of event per [`RATE_WINDOW`] (0: no limit).
    pub rate_limit: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: Level::Info,
            target: Target::Terminal,
            format: Format::Text,
            rate_limit: 10,
        }
    }
}

/// The window of the per-event rate limit.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Bucket {
    since: Instant,
    sent: u32,
    suppressed: u64,
}

/// A log with its configuration and rate-limit state (one per process, see [`init`]; tests
/// make their own).
#[derive(Debug)]
pub struct Logger {
    config: LogConfig,
    socket: Option<UnixDatagram>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Logger {
    pub fn new(config: LogConfig) -> std::io::Result<Logger> {
        let socket = match &config.target {
            Target::Syslog(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                Some(s)
            }
            Target::Terminal => None,
        };
        Ok(Logger {
            config,
            socket,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a message of `level` would be written.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.config.level
    }

    /// Logs a message; `event` names its kind for the rate limit (None: not limited).
    pub fn log(&self, level: Level, component: &str, event: Option<&str>, msg: fmt::Arguments) {
        self.log_at(level, component, event, msg, Instant::now());
    }

    fn log_at(
        &self,
        level: Level,
        component: &str,
        event: Option<&str>,
        msg: fmt::Arguments,
        now: Instant,
    ) {
        if !self.enabled(level) {
            return;
        }
        let mut suppressed = 0;
        if let (Some(event), true) = (event, self.config.rate_limit > 0) {
            let mut buckets = self.buckets.lock();
            let b = buckets.entry(event.to_string()).or_insert(Bucket {
                since: now,
                sent: 0,
                suppressed: 0,
            });
            if now.duration_since(b.since) >= RATE_WINDOW {
                suppressed = b.suppressed;
                *b = Bucket {
                    since: now,
                    sent: 0,
                    suppressed: 0,
                };
            }
            if b.sent >= self.config.rate_limit {
                b.suppressed += 1;
                return;
            }
            b.sent += 1;
        }
        let mut text = msg.to_string();
        if suppressed > 0 {
            text.push_str(&format!(" ({suppressed} similar message(s) suppressed)"));
        }
        let line = self.format(level, component, &text);
        match &self.socket {
            Some(s) => {
                // <PRI> with facility daemon (3); journald and syslog daemons take it.
                let datagram = format!(
                    "<{}>rvs[{}]: {line}",
                    3 * 8 + level as u32,
                    std::process::id()
                );
                let _ = s.send(datagram.as_bytes());
            }
            None if level <= Level::Warning => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            None => {
                let _ = writeln!(std::io::stdout(), "{line}");
            }
        }
    }

    fn format(&self, level: Level, component: &str, text: &str) -> String {
        match self.config.format {
            Format::Text => match level {
                Level::Error | Level::Warning => {
                    format!("rvs: {}: {component}: {text}", level.name())
                }
                _ => format!("rvs: {component}: {text}"),
            },
            Format::Logfmt => {
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
                format!(
                    "ts={ts:.3} level={} component={component} msg=\"{quoted}\"",
                    level.name()
                )
            }
        }
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Takes the configuration into use (once, at start); before it, and when it fails, lines
/// go to the terminal as text.
pub fn init(config: LogConfig) -> std::io::Result<()> {
    let logger = Logger::new(config)?;
    let _ = LOGGER.set(logger);
    Ok(())
}

fn logger() -> &'static Logger {
    LOGGER.get_or_init(|| Logger {
        config: LogConfig::default(),
        socket: None,
        buckets: Mutex::new(HashMap::new()),
    })
}

/// Logs through the process's log (see [`Logger::log`]).
pub fn log(level: Level, component: &str, event: Option<&str>, msg: fmt::Arguments) {
    logger().log(level, component, event, msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting(format: Format, rate_limit: u32) -> (Logger, UnixDatagram, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let logger = Logger::new(LogConfig {
            level: Level::Info,
            target: Target::Syslog(path),
            format,
            rate_limit,
        })
        .unwrap();
        (logger, server, dir)
    }

    fn received(server: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = server.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let p = std::env::temp_dir().join(format!("rvs-log-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn syslog_lines_carry_priority_and_levels_filter() {
        let (log, server, _dir) = collecting(Format::Text, 0);
        log.log(
            Level::Warning,
            "health",
            None,
            format_args!("10.0.0.2:80 DOWN"),
        );
        log.log(Level::Notice, "vrrp", None, format_args!("VI_1 is MASTER"));
        log.log(
            Level::Debug,
            "vrrp",
            None,
            format_args!("not shown at info"),
        );
        let got = received(&server);
        assert_eq!(got.len(), 2, "{got:?}");
        let pid = std::process::id();
        assert_eq!(
            got[0],
            format!("<28>rvs[{pid}]: rvs: warning: health: 10.0.0.2:80 DOWN")
        );
        assert_eq!(got[1], format!("<29>rvs[{pid}]: rvs: vrrp: VI_1 is MASTER"));
    }

    /// A flapping event writes `rate_limit` lines a window; the next line after the window
    /// says how many were held back.
    #[test]
    fn a_flood_of_one_event_is_limited() {
        let (log, server, _dir) = collecting(Format::Logfmt, 3);
        let t0 = Instant::now();
        for i in 0..100 {
            log.log_at(
                Level::Warning,
                "health",
                Some("rs-1"),
                format_args!("flap {i}"),
                t0,
            );
        }
        log.log_at(
            Level::Warning,
            "health",
            Some("rs-2"),
            format_args!("other"),
            t0,
        );
        let got = received(&server);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(
            got[0].contains("level=warning component=health msg=\"flap 0\""),
            "{}",
            got[0]
        );
        let later = t0 + RATE_WINDOW;
        log.log_at(
            Level::Warning,
            "health",
            Some("rs-1"),
            format_args!("flap again"),
            later,
        );
        let got = received(&server);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].contains("flap again (97 similar message(s) suppressed)"),
            "{}",
            got[0]
        );
    }

    #[test]
    fn level_names_round_trip() {
        for n in Level::NAMES {
            assert_eq!(Level::parse(n).map(Level::name), Some(n));
        }
        assert_eq!(Level::parse("loud"), None);
    }
}
