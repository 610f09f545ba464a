//! keepalived's e-mail alerts: `global_defs` names a mail server (`smtp_server`), the
//! recipients (`notification_email`) and which events are mailed (`smtp_alert`,
//! `smtp_alert_vrrp`, `smtp_alert_checker`, an instance's, sync group's, virtual or real
//! server's own `smtp_alert`). Each alert is one plain SMTP conversation (HELO, MAIL, a RCPT
//! per recipient, DATA, QUIT) with keepalived's subject, headers and body, held on a thread
//! of its own: a slow or absent mail server never holds up VRRP or the checkers.

use crate::keepalived::syntax::Statement;
use crate::log::{log, Level};
use crossbeam::channel::{Receiver, Sender, TrySendError};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// keepalived's limits on a subject and a body (its MAX_HEADERS_LENGTH, MAX_BODY_LENGTH,
/// less the terminating NUL).
const MAX_SUBJECT: usize = 255;
const MAX_BODY: usize = 511;
/// Alerts waiting for the mail server; more are dropped (and said).
const QUEUE: usize = 256;

/// Alerts delivered, given up (the server absent or refusing), dropped (queue full):
/// since rvs started, across reloads.
static SENT: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Alerts (delivered, given up, dropped) since rvs started.
pub fn counts() -> (u64, u64, u64) {
    (
        SENT.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    )
}

/// What `global_defs` says about alerts, as keepalived reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConf {
    /// `smtp_server ADDR|NAME [PORT]` (25).
    pub server: Option<SocketAddr>,
    /// `smtp_helo_name` (the host's name).
    pub helo: Option<String>,
    /// `notification_email_from` (USER@HOST).
    pub from: Option<String>,
    /// `notification_email { ... }`.
    pub to: Vec<String>,
    /// `smtp_connect_timeout` (30 s): connecting, and waiting for each reply.
    pub timeout: Duration,
    /// `router_id` (the host's name): the subjects' `[ID]`.
    pub router_id: Option<String>,
    /// `smtp_alert`, `smtp_alert_vrrp`, `smtp_alert_checker` (unset: None).
    pub alert: Option<bool>,
    pub alert_vrrp: Option<bool>,
    pub alert_checker: Option<bool>,
    /// `no_email_faults`: no mail for an instance's or group's FAULT.
    pub no_email_faults: bool,
    /// `no_checker_emails`: a checker's change is mailed only when it changes its server's
    /// state.
    pub no_checker_emails: bool,
}

impl Default for MailConf {
    fn default() -> Self {
        MailConf {
            server: None,
            helo: None,
            from: None,
            to: Vec::new(),
            timeout: Duration::from_secs(30),
            router_id: None,
            alert: None,
            alert_vrrp: None,
            alert_checker: None,
            no_email_faults: false,
            no_checker_emails: false,
        }
    }
}

/// keepalived's optional boolean (none: true), or its message for another word.
pub(crate) fn true_false(s: &Statement, what: &str, warnings: &mut Vec<String>) -> Option<bool> {
    match s.args.first().map(String::as_str) {
        None | Some("true" | "on" | "yes") => Some(true),
        Some("false" | "off" | "no") => Some(false),
        Some(other) => {
            warnings.push(format!(
                "{}: Invalid value '{other}' for {what} specified - ignored",
                s.at()
            ));
            None
        }
    }
}

impl MailConf {
    /// Reads `global_defs`' mail keywords (the last of each), with keepalived's messages
    /// for what it ignores.
    pub fn from_global_defs(defs: &[Statement], warnings: &mut Vec<String>) -> MailConf {
        let mut m = MailConf::default();
        for s in defs {
            let first = s.args.first().cloned();
            match s.keyword.as_str() {
                "router_id" => match first {
                    Some(id) => m.router_id = Some(id),
                    None => warnings.push(format!("{}: routerid name missing - ignoring", s.at())),
                },
                "notification_email_from" => match first {
                    Some(from) => m.from = Some(from),
                    None => warnings.push(format!("{}: emailfrom missing - ignoring", s.at())),
                },
                "smtp_helo_name" => m.helo = first.or(m.helo.take()),
                "notification_email" => {
                    let block = s.block.as_deref().unwrap_or_default();
                    let words: Vec<String> = block
                        .iter()
                        .flat_map(|c| std::iter::once(c.keyword.clone()).chain(c.args.clone()))
                        .collect();
                    if words.is_empty() {
                        warnings.push(format!(
                            "{}: Warning - empty notification_email block",
                            s.at()
                        ));
                    }
                    m.to.extend(words);
                }
                "smtp_server" => match server(s) {
                    Ok(addr) => m.server = Some(addr),
                    Err(e) => warnings.push(e),
                },
                "smtp_connect_timeout" => match first.as_deref().map(str::parse::<u32>) {
                    Some(Ok(0)) => {
                        warnings.push(format!(
                            "{}: smtp_conect_timeout must be greater than 0, setting to 1",
                            s.at()
                        ));
                        m.timeout = Duration::from_secs(1);
                    }
                    Some(Ok(n)) => m.timeout = Duration::from_secs(n.into()),
                    _ => warnings.push(format!(
                        "{}: smtp_connect_timeout '{}' must be in [0, {}] - ignoring",
                        s.at(),
                        first.as_deref().unwrap_or_default(),
                        u32::MAX / 1_000_000
                    )),
                },
                "smtp_alert" => m.alert = true_false(s, "global smtp_alert", warnings).or(m.alert),
                "smtp_alert_vrrp" => {
                    m.alert_vrrp =
                        true_false(s, "global smtp_alert_vrrp", warnings).or(m.alert_vrrp)
                }
                "smtp_alert_checker" => {
                    m.alert_checker =
                        true_false(s, "global smtp_alert_checker", warnings).or(m.alert_checker)
                }
                "no_email_faults" => m.no_email_faults = true,
                "no_checker_emails" => {
                    if let Some(v) = true_false(s, "global no_checker_emails", warnings) {
                        m.no_checker_emails = v
                    }
                }
                _ => {}
            }
        }
        m
    }

    /// Whether an instance or sync group with its own `smtp_alert` (or none) mails.
    pub fn vrrp_alerts(&self, own: Option<bool>) -> bool {
        own.or(self.alert_vrrp).or(self.alert).unwrap_or(false)
    }

    /// Whether a virtual server with its own `smtp_alert` (or none) mails its quorum.
    pub fn virtual_server_alerts(&self, own: Option<bool>) -> bool {
        own.or(self.alert_checker).or(self.alert).unwrap_or(false)
    }

    /// Whether a real server with its own `smtp_alert` (or none) mails its checkers'
    /// changes: by default it does (keepalived keeps that for compatibility).
    pub fn real_server_alerts(&self, own: Option<bool>) -> bool {
        own.or(self.alert_checker).or(self.alert).unwrap_or(true)
    }
}

/// `smtp_server ADDR|NAME [PORT]`.
fn server(s: &Statement) -> Result<SocketAddr, String> {
    let host = s.args.first().map(String::as_str).unwrap_or_default();
    let port = s.args.get(1).map(String::as_str).unwrap_or("25");
    let invalid = || format!("{}: Invalid smtp server {host} {port}", s.at());
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(invalid)
}

/// The host's name as keepalived takes it: the kernel's node name made canonical by the
/// resolver (/etc/hosts, DNS); where it resolves nowhere, the node name itself (keepalived
/// says "[unknown]" then and mails with no sender or HELO name of its own).
pub fn local_name() -> Option<String> {
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let node = node.trim();
    if node.is_empty() {
        return None;
    }
    Some(rvs_rawsock::canonical_name(node).unwrap_or_else(|| node.to_string()))
}

/// The name of the user rvs runs as (keepalived's default sender is USER@HOST).
fn user_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
}

/// An alert: a subject (with its `[router_id]` already) and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub subject: String,
    pub body: String,
}

/// What a conversation needs, defaults filled in as keepalived fills them.
#[derive(Debug, Clone)]
struct Settings {
    server: SocketAddr,
    helo: String,
    from: String,
    to: Vec<String>,
    timeout: Duration,
}

/// Sends alerts (a cheap handle; without a server and recipients it sends nothing).
#[derive(Clone, Default)]
pub struct Mailer {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    conf: MailConf,
    router_id: String,
    queue: Sender<Alert>,
    /// Alerts taken and not yet delivered or given up.
    pending: Arc<AtomicUsize>,
}

impl Mailer {
    /// Starts the mail thread for `conf` (no server or no recipient: a mailer that sends
    /// nothing, as keepalived).
    pub fn start(conf: &MailConf) -> Mailer {
        let Some(server) = conf.server.filter(|_| !conf.to.is_empty()) else {
            return Mailer::default();
        };
        let local = local_name();
        let settings = Settings {
            server,
            helo: conf
                .helo
                .clone()
                .or_else(|| local.clone())
                .unwrap_or_else(|| "localhost".into()),
            from: conf.from.clone().unwrap_or_else(|| {
                format!(
                    "{}@{}",
                    user_name().unwrap_or_else(|| "root".into()),
                    local.clone().unwrap_or_else(|| "localhost".into())
                )
            }),
            to: conf.to.clone(),
            timeout: conf.timeout,
        };
        let (tx, rx) = crossbeam::channel::bounded(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let counter = pending.clone();
        let spawned = std::thread::Builder::new()
            .name("rvs-mail".into())
            .spawn(move || deliver_all(&settings, &rx, &counter));
        if let Err(e) = spawned {
            log(
                Level::Error,
                "mail",
                None,
                format_args!("cannot start the mail thread: {e}; no alert will be mailed"),
            );
            return Mailer::default();
        }
        Mailer {
            inner: Some(Arc::new(Inner {
                conf: conf.clone(),
                router_id: conf
                    .router_id
                    .clone()
                    .or(local)
                    .unwrap_or_else(|| "[unknown]".into()),
                queue: tx,
                pending,
            })),
        }
    }

    /// Whether alerts go anywhere.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The settings alerts go by (those of a mailer that sends nothing: the defaults).
    pub fn conf(&self) -> MailConf {
        self.inner
            .as_ref()
            .map(|i| i.conf.clone())
            .unwrap_or_default()
    }

    /// An instance's (or, with `group`, a sync group's) new state, if it mails (`own`:
    /// its `smtp_alert`) and, for FAULT, unless `no_email_faults`.
    pub fn vrrp_state(&self, group: bool, own: Option<bool>, name: &str, state: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        if !inner.conf.vrrp_alerts(own) || (state == "FAULT" && inner.conf.no_email_faults) {
            return;
        }
        self.vrrp_alert(group, name, state);
    }

    /// Queues `[router_id] SUBJECT` with `body`; never waits.
    pub fn send(&self, subject: &str, body: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        let alert = Alert {
            subject: truncated(&format!("[{}] {subject}", inner.router_id), MAX_SUBJECT),
            body: truncated(body, MAX_BODY),
        };
        inner.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = inner.queue.try_send(alert) {
            inner.pending.fetch_sub(1, Ordering::SeqCst);
            let a = match e {
                TrySendError::Full(a) | TrySendError::Disconnected(a) => a,
            };
            DROPPED.fetch_add(1, Ordering::Relaxed);
            log(
                Level::Warning,
                "mail",
                Some("queue full"),
                format_args!("SMTP alert dropped (queue full): {}", a.subject),
            );
        }
    }

    /// An instance's (or, with `group`, a sync group's) state, as keepalived mails it;
    /// `state` is keepalived's name (MASTER, BACKUP, FAULT, STOP, DELETED). Others: none.
    fn vrrp_alert(&self, group: bool, name: &str, state: &str) {
        let what = if group { "VRRP Group" } else { "VRRP Instance" };
        let (subject, body) = match (group, state) {
            (false, "MASTER") => (
                "Entering MASTER state",
                "=> VRRP Instance is now owning VRRP VIPs <=",
            ),
            (false, "BACKUP") => (
                "Entering BACKUP state",
                "=> VRRP Instance is no longer owning VRRP VIPs <=",
            ),
            (false, "FAULT") => (
                "Entering FAULT state",
                "=> VRRP Instance is no longer owning VRRP VIPs <=",
            ),
            (false, "STOP") => ("Stopping", "=> VRRP Instance stopping <="),
            (false, "DELETED") => ("Deleted", "=> VRRP Deleted at reload <="),
            (true, "MASTER") => (
                "Entering MASTER state",
                "=> All VRRP group instances are now in MASTER state <=",
            ),
            (true, "BACKUP") => (
                "Entering BACKUP state",
                "=> All VRRP group instances are now in BACKUP state <=",
            ),
            (true, "FAULT") => (
                "Entering FAULT state",
                "=> All VRRP group instances are now in FAULT state <=",
            ),
            (true, "STOP") => (
                "Stopping",
                "=> All VRRP group instances are now stopping <=",
            ),
            _ => return,
        };
        self.send(&format!("{what} {name} - {subject}"), body);
    }

    /// A real server's change by one of its checkers: `UP`/`DOWN` is the server's state
    /// after it, `body` the checker's words (keepalived's `=> ... <=`). `rs` and `vs` in
    /// keepalived's form (`[ADDR]:tcp:PORT`).
    pub fn real_server(&self, rs: &str, vs: &str, up: bool, body: &str) {
        let state = if up { "UP" } else { "DOWN" };
        self.send(
            &format!("Realserver {rs} of virtual server {vs} - {state}"),
            body,
        );
    }

    /// A virtual server's quorum.
    pub fn virtual_server(&self, vs: &str, up: bool, body: &str) {
        let state = if up { "UP" } else { "DOWN" };
        self.send(&format!("Virtualserver {vs} - {state}"), body);
    }

    /// Waits (at most `within`) until every queued alert is delivered or given up: at a
    /// stop, so its alerts leave before rvs does.
    pub fn flush(&self, within: Duration) {
        let Some(inner) = &self.inner else {
            return;
        };
        let end = Instant::now() + within;
        while inner.pending.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The mailer of the running configuration (set at start and reload).
static CURRENT: std::sync::RwLock<Mailer> = std::sync::RwLock::new(Mailer { inner: None });

/// Makes `m` the mailer alerts go through, giving back the one before.
pub fn set_current(m: Mailer) -> Mailer {
    let mut slot = CURRENT.write().unwrap_or_else(|e| e.into_inner());
    std::mem::replace(&mut *slot, m)
}

/// Alerts go by `conf` from now on: a new mailer if it differs from the current one's
/// (a start, a reload that changed global_defs), else the running one.
pub fn use_conf(conf: &MailConf) {
    let running = current();
    if running.enabled() && running.conf() == *conf {
        return;
    }
    set_current(Mailer::start(conf));
}

/// `show mail`: where alerts go, who mails, and the counts.
pub fn show() -> String {
    let (sent, failed, dropped) = counts();
    let m = current();
    let Some(inner) = &m.inner else {
        return format!(
            "mail: off (no smtp_server with a notification_email); alerts sent {sent}, failed {failed}, dropped {dropped}\n"
        );
    };
    let c = &inner.conf;
    let word = |v: Option<bool>| match v {
        None => "unset",
        Some(true) => "on",
        Some(false) => "off",
    };
    format!(
        "mail: smtp_server [{}]:{}, router_id {}, timeout {} s\n  to: {}\n  smtp_alert {}, smtp_alert_vrrp {}, smtp_alert_checker {}{}{}\n  alerts sent {sent}, failed {failed}, dropped {dropped}, queued {}\n",
        c.server.map(|s| s.ip().to_string()).unwrap_or_default(),
        c.server.map(|s| s.port()).unwrap_or_default(),
        inner.router_id,
        c.timeout.as_secs(),
        c.to.join(", "),
        word(c.alert),
        word(c.alert_vrrp),
        word(c.alert_checker),
        if c.no_email_faults { ", no_email_faults" } else { "" },
        if c.no_checker_emails { ", no_checker_emails" } else { "" },
        inner.pending.load(Ordering::SeqCst),
    )
}

/// The mailer alerts go through now.
pub fn current() -> Mailer {
    CURRENT.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn deliver_all(s: &Settings, rx: &Receiver<Alert>, pending: &AtomicUsize) {
    for alert in rx {
        let result = converse(s, &alert);
        let counter = if result.is_ok() { &SENT } else { &FAILED };
        counter.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) => log(
                Level::Info,
                "mail",
                None,
                format_args!("SMTP alert successfully sent: {}", alert.subject),
            ),
            Err(e) => log(
                Level::Warning,
                "mail",
                Some("smtp"),
                format_args!("{e} (alert not sent: {})", alert.subject),
            ),
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// keepalived's name for the server in its messages: `[ADDR]:PORT`.
fn host(s: &Settings) -> String {
    format!("[{}]:{}", s.server.ip(), s.server.port())
}

/// One alert's conversation. keepalived's order and replies: the greeting 220, HELO 250,
/// MAIL 250, RCPT 250 for each recipient, DATA 354, the message 250, QUIT 221; a reply
/// out of turn ends it with QUIT.
fn converse(s: &Settings, alert: &Alert) -> Result<(), String> {
    let h = host(s);
    let mut conn = TcpStream::connect_timeout(&s.server, s.timeout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::TimedOut {
            format!("Timeout opening connection to remote SMTP server {h}.")
        } else {
            format!("SMTP connection ERROR to {h}: {e}.")
        }
    })?;
    let _ = conn.set_read_timeout(Some(s.timeout));
    let _ = conn.set_write_timeout(Some(s.timeout));
    let mut replies = Replies::default();
    let date = chrono::Local::now().format("%a, %d %b %Y %H:%M:%S %z");
    let message = format!(
        "Date: {date}\r\nFrom: {}\r\nSubject: {}\r\nX-Mailer: Keepalived\r\nTo: {}\r\n\r\n{}\r\n\r\n.\r\n",
        s.from,
        alert.subject,
        s.to.join(", "),
        alert.body
    );
    let mut steps: Vec<(Option<String>, u16, &str)> = vec![
        (None, 220, "(E)SMTP"),
        (Some(format!("HELO {}\r\n", s.helo)), 250, "HELO"),
        (Some(format!("MAIL FROM:<{}>\r\n", s.from)), 250, "MAIL"),
    ];
    for to in &s.to {
        steps.push((Some(format!("RCPT TO:<{to}>\r\n")), 250, "RCPT"));
    }
    steps.push((Some("DATA\r\n".into()), 354, "DATA"));
    steps.push((Some(message), 250, "BODY"));
    for (command, expected, name) in steps {
        if let Some(c) = command {
            conn.write_all(c.as_bytes())
                .map_err(|_| format!("Cannot send data to remote SMTP server {h}."))?;
        }
        let code = match replies.next(&mut conn) {
            Ok(code) => code,
            Err(ReplyError::Closed) => {
                return Err(format!("Remote SMTP server {h} has closed the connection."))
            }
            Err(ReplyError::Timeout) => {
                quit(&mut conn, &mut replies);
                return Err(format!("Timeout reading data to remote SMTP server {h}."));
            }
            Err(ReplyError::Other) => {
                quit(&mut conn, &mut replies);
                return Err(format!("Error reading data from remote SMTP server {h}."));
            }
        };
        if code != expected {
            quit(&mut conn, &mut replies);
            return Err(format!(
                "Error processing {name} cmd on SMTP server {h}. SMTP status code = {code}"
            ));
        }
    }
    quit(&mut conn, &mut replies);
    Ok(())
}

/// QUIT and its reply (221), whatever it is.
fn quit(conn: &mut TcpStream, replies: &mut Replies) {
    if conn.write_all(b"QUIT\r\n").is_ok() {
        let _ = replies.next(conn);
    }
}

enum ReplyError {
    Closed,
    Timeout,
    Other,
}

/// The server's replies, read line by line: a reply's code is that of its last line
/// (`NNN text`; `NNN-text` lines continue it).
#[derive(Default)]
struct Replies {
    buffer: Vec<u8>,
}

impl Replies {
    fn next(&mut self, conn: &mut TcpStream) -> Result<u16, ReplyError> {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..end + 2).collect();
                if line.get(3) == Some(&b'-') {
                    continue;
                }
                let code = line
                    .get(..3)
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .and_then(|d| d.parse::<u16>().ok());
                // A line that is no reply counts as a wrong code (keepalived reads digits).
                return Ok(code.unwrap_or(0));
            }
            // keepalived's buffer is 1 KiB: a longer line is no SMTP reply.
            if self.buffer.len() >= 1024 {
                return Err(ReplyError::Other);
            }
            let mut chunk = [0u8; 512];
            match conn.read(&mut chunk) {
                Ok(0) => return Err(ReplyError::Closed),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ReplyError::Timeout)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(ReplyError::Other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_testkit::smtp::Sink;

    fn defs(text: &str) -> Vec<Statement> {
        crate::keepalived::syntax::parse_text("k.conf", text)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.block.unwrap_or_default())
            .collect()
    }

    fn conf(server: SocketAddr) -> MailConf {
        MailConf {
            server: Some(server),
            helo: Some("lb1.example".into()),
            from: Some("lvs@lb1.example".into()),
            to: vec!["ops@example.com".into(), "noc@example.com".into()],
            timeout: Duration::from_secs(5),
            router_id: Some("LVS_1".into()),
            ..MailConf::default()
        }
    }

    /// The transcript with its Date header's value taken out (it is the clock's).
    fn undated(t: &str) -> String {
        t.lines()
            .map(|l| {
                if l.starts_with("Date: ") {
                    "Date: -"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn an_alert_is_keepalived_s_conversation() {
        let sink = Sink::start("127.0.0.1:0");
        let mailer = Mailer::start(&conf(sink.addr));
        assert!(mailer.enabled());
        mailer.vrrp_alert(false, "VI_1", "MASTER");
        mailer.flush(Duration::from_secs(10));
        let mails = sink.wait_for(1, Duration::from_secs(10));
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(
            undated(&mails[0]),
            "HELO lb1.example\nMAIL FROM:<lvs@lb1.example>\nRCPT TO:<ops@example.com>\n\
             RCPT TO:<noc@example.com>\nDATA\nDate: -\nFrom: lvs@lb1.example\n\
             Subject: [LVS_1] VRRP Instance VI_1 - Entering MASTER state\nX-Mailer: Keepalived\n\
             To: ops@example.com, noc@example.com\n\n=> VRRP Instance is now owning VRRP VIPs <=\n\n.\nQUIT"
        );
        // RFC 822's date, as keepalived's strftime writes it.
        let date = mails[0].lines().find(|l| l.starts_with("Date: ")).unwrap();
        let re = regex::Regex::new(
            r"^Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$",
        )
        .unwrap();
        assert!(re.is_match(date), "{date}");
        assert!(mails[0].contains("\r\n"), "lines end in CRLF");
    }

    #[test]
    fn every_kind_of_alert_has_keepalived_s_subject_and_body() {
        let sink = Sink::start("127.0.0.1:0");
        let mailer = Mailer::start(&conf(sink.addr));
        mailer.vrrp_alert(true, "G1", "FAULT");
        mailer.vrrp_alert(false, "VI_1", "DELETED");
        mailer.vrrp_alert(false, "VI_1", "INIT");
        mailer.real_server(
            "[192.168.1.10]:tcp:80",
            "[10.0.0.1]:tcp:80",
            false,
            "=> TCP CHECK failed on service <=",
        );
        mailer.virtual_server("FWM 7", true, "=> Gained quorum 1+0=1 <= 2 <=");
        mailer.flush(Duration::from_secs(10));
        let mails = sink.wait_for(4, Duration::from_secs(10));
        let said: Vec<(String, String)> = mails
            .iter()
            .map(|m| {
                use rvs_testkit::smtp::{body, subject};
                (subject(m).to_string(), body(m).to_string())
            })
            .collect();
        let expect = [
            ("[LVS_1] VRRP Group G1 - Entering FAULT state", "=> All VRRP group instances are now in FAULT state <="),
            ("[LVS_1] VRRP Instance VI_1 - Deleted", "=> VRRP Deleted at reload <="),
            (
                "[LVS_1] Realserver [192.168.1.10]:tcp:80 of virtual server [10.0.0.1]:tcp:80 - DOWN",
                "=> TCP CHECK failed on service <=",
            ),
            ("[LVS_1] Virtualserver FWM 7 - UP", "=> Gained quorum 1+0=1 <= 2 <="),
        ];
        let expect: Vec<(String, String)> = expect
            .iter()
            .map(|(s, b)| (s.to_string(), b.to_string()))
            .collect();
        assert_eq!(said, expect, "INIT is not mailed");
    }

    #[test]
    fn a_refused_recipient_ends_the_conversation_with_quit() {
        let sink = Sink::answering("127.0.0.1:0", 550);
        let mut c = conf(sink.addr);
        c.to.truncate(1);
        let s = Settings {
            server: sink.addr,
            helo: "h".into(),
            from: "f@h".into(),
            to: c.to.clone(),
            timeout: c.timeout,
        };
        let alert = Alert {
            subject: "s".into(),
            body: "b".into(),
        };
        let e = converse(&s, &alert).unwrap_err();
        assert_eq!(
            e,
            format!(
                "Error processing RCPT cmd on SMTP server [127.0.0.1]:{}. SMTP status code = 550",
                sink.addr.port()
            )
        );
        let mails = sink.wait_for(1, Duration::from_secs(10));
        assert_eq!(
            mails,
            ["HELO h\r\nMAIL FROM:<f@h>\r\nRCPT TO:<ops@example.com>\r\nQUIT\r\n"]
        );
        // No server there: said, nothing waits.
        let gone = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let s = Settings { server: gone, ..s };
        let e = converse(&s, &alert).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "SMTP connection ERROR to [127.0.0.1]:{}",
                gone.port()
            )),
            "{e}"
        );
    }

    /// A server that takes the connection and never answers: each conversation gives up
    /// after the timeout with keepalived's words, and queuing never waits (beyond the
    /// queue, alerts are dropped and counted).
    #[test]
    fn a_silent_server_holds_up_nothing() {
        // Bound and listening, never accepting: the kernel completes the handshakes.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let s = Settings {
            server: addr,
            helo: "h".into(),
            from: "f@h".into(),
            to: vec!["ops@example.com".into()],
            timeout: Duration::from_millis(300),
        };
        let alert = Alert {
            subject: "s".into(),
            body: "b".into(),
        };
        let started = Instant::now();
        let e = converse(&s, &alert).unwrap_err();
        assert_eq!(
            e,
            format!(
                "Timeout reading data to remote SMTP server [127.0.0.1]:{}.",
                addr.port()
            )
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let m = Mailer::start(&MailConf {
            timeout: Duration::from_secs(30),
            ..conf(addr)
        });
        let (_, _, dropped) = counts();
        let started = Instant::now();
        for n in 0..QUEUE + 50 {
            m.vrrp_alert(false, &format!("VI_{n}"), "MASTER");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let (_, _, dropped_now) = counts();
        assert!(dropped_now - dropped >= 49, "{dropped} -> {dropped_now}");
        drop(silent);
    }

    #[test]
    fn deliveries_and_failures_are_counted() {
        let (sent, failed, _) = counts();
        let sink = Sink::start("127.0.0.1:0");
        let m = Mailer::start(&conf(sink.addr));
        m.vrrp_alert(false, "VI_C", "BACKUP");
        m.flush(Duration::from_secs(10));
        let gone = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let m = Mailer::start(&conf(gone));
        m.vrrp_alert(false, "VI_C", "BACKUP");
        m.flush(Duration::from_secs(10));
        let (sent_now, failed_now, _) = counts();
        // Other tests mail beside this one: at least these.
        assert!(
            sent_now > sent && failed_now > failed,
            "{sent}->{sent_now} {failed}->{failed_now}"
        );
    }

    #[test]
    fn no_server_or_no_recipient_mails_nothing() {
        let sink = Sink::start("127.0.0.1:0");
        let mut c = conf(sink.addr);
        c.to.clear();
        assert!(!Mailer::start(&c).enabled());
        let c = MailConf {
            server: None,
            ..conf(sink.addr)
        };
        let m = Mailer::start(&c);
        assert!(!m.enabled());
        m.vrrp_alert(false, "VI_1", "MASTER");
        m.flush(Duration::from_secs(1));
        assert!(sink.mails().is_empty());
    }

    #[test]
    fn global_defs_read_as_keepalived_reads_them() {
        let mut w = Vec::new();
        let m = MailConf::from_global_defs(
            &defs(
                "global_defs {
  notification_email {
    acassen@firewall.loc
    failover@firewall.loc sysadmin@firewall.loc
  }
  notification_email_from Alexandre.Cassen@firewall.loc
  smtp_server 192.168.200.1 2525
  smtp_connect_timeout 0
  smtp_helo_name lvs.firewall.loc
  router_id LVS_DEVEL
  smtp_alert off
  smtp_alert_vrrp
  smtp_alert_checker maybe
  no_email_faults
  no_checker_emails
}
",
            ),
            &mut w,
        );
        assert_eq!(
            m,
            MailConf {
                server: Some("192.168.200.1:2525".parse().unwrap()),
                helo: Some("lvs.firewall.loc".into()),
                from: Some("Alexandre.Cassen@firewall.loc".into()),
                to: vec![
                    "acassen@firewall.loc".into(),
                    "failover@firewall.loc".into(),
                    "sysadmin@firewall.loc".into()
                ],
                timeout: Duration::from_secs(1),
                router_id: Some("LVS_DEVEL".into()),
                alert: Some(false),
                alert_vrrp: Some(true),
                alert_checker: None,
                no_email_faults: true,
                no_checker_emails: true,
            }
        );
        assert_eq!(
            w,
            [
                "k.conf:8: smtp_conect_timeout must be greater than 0, setting to 1",
                "k.conf:13: Invalid value 'maybe' for global smtp_alert_checker specified - ignored",
            ]
        );
        // Who mails: an object's own word, else the kind's, else smtp_alert, else the
        // default (real servers yes, the rest no).
        assert!(m.vrrp_alerts(None) && !m.vrrp_alerts(Some(false)));
        assert!(!m.virtual_server_alerts(None) && m.virtual_server_alerts(Some(true)));
        assert!(!m.real_server_alerts(None));
        assert!(MailConf::default().real_server_alerts(None));
        assert!(!MailConf::default().vrrp_alerts(None));
        let mut w = Vec::new();
        let m = MailConf::from_global_defs(
            &defs("global_defs {\n  smtp_server 10.0.0.1 x\n  smtp_connect_timeout -3\n  router_id\n}\n"),
            &mut w,
        );
        assert_eq!(m.server, None);
        assert_eq!(m.timeout, Duration::from_secs(30));
        assert_eq!(
            w,
            [
                "k.conf:2: Invalid smtp server 10.0.0.1 x",
                "k.conf:3: smtp_connect_timeout '-3' must be in [0, 4294] - ignoring",
                "k.conf:4: routerid name missing - ignoring",
            ]
        );
    }

    #[test]
    fn long_subjects_and_bodies_are_cut_as_keepalived_cuts_them() {
        assert_eq!(truncated("abc", 2), "ab");
        assert_eq!(truncated("aé", 2), "a");
        assert_eq!(truncated(&"x".repeat(600), MAX_BODY).len(), 511);
    }
}
