//! The BFD sessions on their sockets, in one thread: one listening socket on port 3784
//! (IPv6 and IPv4), one sending socket per session, bound to its `source_ip` on a port of
//! 49152-65535 (within the host's ip_local_port_range, as keepalived) with its TTL.

use super::packet::Control;
use super::session::Session;
use super::{BfdInstance, BfdStatus, Board, CONTROL_PORT};
use crate::log::{log, Level};
use crossbeam::channel::{self, Receiver, Sender};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

enum Cmd {
    Reload(Vec<BfdInstance>),
    Stop,
}

pub struct BfdRuntime {
    conf: Vec<BfdInstance>,
    tx: Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
    /// Packets discarded: malformed, of no session, or failing the TTL check.
    pub discarded: Arc<AtomicU64>,
}

impl std::fmt::Debug for BfdRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BfdRuntime")
            .field("conf", &self.conf)
            .finish()
    }
}

/// The listening socket: IPv6 with IPv4-mapped addresses, else IPv4 alone.
fn listen(port: u16) -> std::io::Result<(UdpSocket, bool)> {
    let v6 = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
        s.set_only_v6(false)?;
        s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
        Ok(s)
    });
    let (s, ipv6) = match v6 {
        Ok(s) => (UdpSocket::from(s), true),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(e),
        Err(_) => (UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?, false),
    };
    rvs_rawsock::want_udp_meta(s.as_raw_fd(), ipv6)?;
    Ok((s, ipv6))
}

/// The host's ephemeral ports within BFD's 49152-65535 (at least 1024 of them).
fn source_ports() -> (u16, u16) {
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut w = t.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((w.next()??, w.next()??))
        })
        .unwrap_or((49152, 60999));
    let (lo, hi) = (host.0.max(49152), host.1);
    if u32::from(lo) + 1023 > u32::from(hi) {
        (49152, 65535)
    } else {
        (lo, hi)
    }
}

/// A session's sending socket.
fn open_sender(b: &BfdInstance) -> std::io::Result<UdpSocket> {
    let domain = if b.neighbor.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(src) = b.source {
        let (lo, hi) = source_ports();
        let span = u32::from(hi - lo) + 1;
        let start = rand::random::<u32>() % span;
        let mut bound = Err(std::io::Error::from(std::io::ErrorKind::AddrInUse));
        for k in 0..span {
            let port = lo + ((start + k) % span) as u16;
            bound = s.bind(&SocketAddr::new(src, port).into());
            match &bound {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                _ => break,
            }
        }
        bound?;
    }
    if b.neighbor.is_ipv4() {
        s.set_ttl(u32::from(b.ttl))?;
    } else {
        s.set_unicast_hops_v6(u32::from(b.ttl))?;
    }
    Ok(UdpSocket::from(s))
}

/// Gives a session its sending socket; without one it is AdminDown, tried again in 60 s
/// (keepalived's bfd_open_fd_out_thread).
fn open(live: &mut Live, now: Instant) {
    match open_sender(&live.session.conf) {
        Ok(s) => {
            live.sender = Some(s);
            live.retry_open = None;
            live.session.enable(now);
        }
        Err(e) => {
            log(
                Level::Error,
                "bfd",
                None,
                format_args!(
                    "({}) Unable to open output socket ({e}), disabling instance; again in 60 s",
                    live.session.conf.name
                ),
            );
            live.sender = None;
            live.retry_open = Some(now + Duration::from_secs(60));
            live.session.admin_down();
        }
    }
}

/// A session with its socket.
struct Live {
    session: Session,
    sender: Option<UdpSocket>,
    retry_open: Option<Instant>,
}

fn row(s: &Session) -> BfdStatus {
    BfdStatus {
        name: s.conf.name.clone(),
        neighbor: s.conf.neighbor,
        source: s.conf.source,
        local: s.local,
        remote: s.remote,
        local_diag: s.local_diag,
        remote_diag: s.remote_diag,
        local_discr: s.local_discr,
        remote_discr: s.remote_discr,
        tx_interval: s.tx_interval,
        detect_time: s.detect_time,
        ups: s.ups,
        received: s.received,
        sent: s.sent,
        tracked_up: s.tracked_up,
        to_vrrp: s.conf.to_vrrp,
        to_checker: s.conf.to_checker,
    }
}

impl BfdRuntime {
    /// Opens the listening socket (an error says so: another BFD, BIRD's, may hold the
    /// port) and starts the sessions.
    pub fn start(conf: Vec<BfdInstance>, board: &'static Board) -> Result<BfdRuntime, String> {
        Self::start_on(conf, board, CONTROL_PORT)
    }

    /// As `start`, listening on `port` (tests run several in one namespace).
    pub fn start_on(
        conf: Vec<BfdInstance>,
        board: &'static Board,
        port: u16,
    ) -> Result<BfdRuntime, String> {
        let (listener, _) =
            listen(port).map_err(|e| format!("bfd: cannot listen on UDP port {port}: {e}"))?;
        let (tx, rx) = channel::unbounded();
        let discarded = Arc::new(AtomicU64::new(0));
        let mut runner = Runner {
            lives: Vec::new(),
            listener,
            board,
            discarded: discarded.clone(),
            published: None,
            port,
        };
        runner.take(conf.clone(), Instant::now());
        let thread = std::thread::Builder::new()
            .name("rvs-bfd".into())
            .spawn(move || runner.run(rx))
            .map_err(|e| format!("bfd: {e}"))?;
        Ok(BfdRuntime {
            conf,
            tx,
            thread: Some(thread),
            discarded,
        })
    }

    pub fn conf(&self) -> &[BfdInstance] {
        &self.conf
    }

    /// Runs `conf` instead: sessions of the same name keep their state (changed timers
    /// start a poll sequence), others start Down, removed ones end. The changes, a line
    /// each.
    pub fn reload(&mut self, conf: Vec<BfdInstance>) -> Vec<String> {
        let mut lines = Vec::new();
        for b in &conf {
            match self.conf.iter().find(|o| o.name == b.name) {
                None => lines.push(format!("bfd_instance {}: new", b.name)),
                Some(o) if o != b => {
                    lines.push(format!("bfd_instance {}: changed, keeps its state", b.name))
                }
                Some(_) => {}
            }
        }
        for o in &self.conf {
            if !conf.iter().any(|b| b.name == o.name) {
                lines.push(format!("bfd_instance {}: removed", o.name));
            }
        }
        let _ = self.tx.send(Cmd::Reload(conf.clone()));
        self.conf = conf;
        lines
    }

    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BfdRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Runner {
    lives: Vec<Live>,
    listener: UdpSocket,
    board: &'static Board,
    discarded: Arc<AtomicU64>,
    published: Option<Vec<BfdStatus>>,
    port: u16,
}

impl Runner {
    /// Takes a configuration: sessions of known names carried over.
    fn take(&mut self, conf: Vec<BfdInstance>, now: Instant) {
        let mut old = std::mem::take(&mut self.lives);
        for b in conf {
            let mut live = match old.iter().position(|l| l.session.conf.name == b.name) {
                Some(k) => {
                    let was = old.swap_remove(k);
                    // The same path keeps its socket: RFC 5881 wants one source port for
                    // the session's life.
                    let same_path = (
                        was.session.conf.neighbor,
                        was.session.conf.source,
                        was.session.conf.ttl,
                    ) == (b.neighbor, b.source, b.ttl);
                    Live {
                        sender: was.sender.filter(|_| same_path),
                        retry_open: None,
                        session: was.session.carry(b),
                    }
                }
                None => {
                    let discr = self.fresh_discriminator(&old);
                    Live {
                        session: Session::new(b, discr, now),
                        sender: None,
                        retry_open: None,
                    }
                }
            };
            if live.sender.is_none() {
                open(&mut live, now);
            }
            self.lives.push(live);
        }
        self.publish();
    }

    fn fresh_discriminator(&self, old: &[Live]) -> u32 {
        loop {
            let d = rand::random::<u32>();
            let taken = self
                .lives
                .iter()
                .chain(old)
                .any(|l| l.session.local_discr == d);
            if d != 0 && !taken {
                return d;
            }
        }
    }

    fn run(mut self, rx: Receiver<Cmd>) {
        let mut buf = [0u8; 512];
        loop {
            match rx.try_recv() {
                Ok(Cmd::Stop) | Err(channel::TryRecvError::Disconnected) => break,
                Ok(Cmd::Reload(conf)) => self.take(conf, Instant::now()),
                Err(channel::TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            let next = self
                .lives
                .iter()
                .filter_map(|l| l.session.deadline().into_iter().chain(l.retry_open).min())
                .min()
                .unwrap_or(now + Duration::from_millis(100));
            let wait = next
                .saturating_duration_since(now)
                .clamp(Duration::from_micros(100), Duration::from_millis(100));
            let _ = self.listener.set_read_timeout(Some(wait));
            if let Ok(meta) = rvs_rawsock::recv_udp_meta(self.listener.as_raw_fd(), &mut buf) {
                self.packet(&buf[..meta.len.min(buf.len())], &meta);
            }
            self.due(Instant::now());
            self.publish();
        }
    }

    fn packet(&mut self, bytes: &[u8], meta: &rvs_rawsock::UdpMeta) {
        let c = match (meta.truncated, Control::parse(bytes)) {
            (false, Ok(c)) => c,
            _ => {
                self.discarded.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let from = meta.from.ip();
        let found = self.lives.iter_mut().find(|l| {
            let b = &l.session.conf;
            if c.your_discr == 0 {
                b.neighbor == from && (b.source.is_none() || b.source == meta.to)
            } else {
                l.session.local_discr == c.your_discr
            }
        });
        match found {
            Some(l) if l.session.conf.ttl_ok(meta.ttl) => l.session.receive(&c, Instant::now()),
            _ => {
                self.discarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn due(&mut self, now: Instant) {
        for k in 0..self.lives.len() {
            if self.lives[k].retry_open.is_some_and(|t| t <= now) {
                open(&mut self.lives[k], now);
            }
            let l = &mut self.lives[k];
            // Bounded: each tick moves a deadline past `now` or clears it.
            for _ in 0..4 {
                if l.session.deadline().is_none_or(|d| d > now) {
                    break;
                }
                if let Some(c) = l.session.tick(now) {
                    if let Some(s) = &l.sender {
                        let to = SocketAddr::new(l.session.conf.neighbor, self.port);
                        if let Err(e) = s.send_to(&c.bytes(), to) {
                            l.session.said.push((
                                Level::Warning,
                                format!("({}) Error sending packet: {e}", l.session.conf.name),
                            ));
                        }
                    }
                }
            }
            for (level, line) in l.session.said.drain(..) {
                log(level, "bfd", None, format_args!("{line}"));
            }
        }
    }

    fn publish(&mut self) {
        let rows: Vec<BfdStatus> = self.lives.iter().map(|l| row(&l.session)).collect();
        if self.published.as_ref() != Some(&rows) {
            self.board.publish(rows.clone());
            self.published = Some(rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BfdState, Reader};
    use super::*;

    fn board() -> &'static Board {
        Box::leak(Box::default())
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Two runners on loopback (each the other's neighbour, listening on its own port)
    /// come Up, and one's end is the other's expiry.
    #[test]
    fn two_runtimes_come_up_and_notice_each_other_s_end() {
        let a_board = board();
        let b_board = board();
        let inst = |name: &str, src: &str, nbr: &str| BfdInstance {
            source: Some(src.parse().unwrap()),
            min_rx: 20_000,
            min_tx: 20_000,
            multiplier: 3,
            ..BfdInstance::new(name, nbr.parse().unwrap())
        };
        // Each listens on its own port and sends to the other's.
        let a = spawn_crossed(a_board, inst("a", "127.0.0.1", "127.0.0.2"), 13785, 23785);
        let b = spawn_crossed(b_board, inst("b", "127.0.0.2", "127.0.0.1"), 23785, 13785);
        wait_for("both Up", || {
            a_board.is_up("a", Reader::Vrrp) && b_board.is_up("b", Reader::Checker)
        });
        assert_eq!(a_board.rows()[0].local, BfdState::Up);
        // The poll sequence that takes it to the fast rate completes after Up.
        wait_for("the fast rate after the poll", || {
            a_board.rows()[0].tx_interval == 20_000
        });
        let t = Instant::now();
        b.stop();
        wait_for("a's expiry", || !a_board.is_up("a", Reader::Vrrp));
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{took:?}: detection is 3 x 20 ms"
        );
        let rows = a_board.rows();
        assert_eq!((rows[0].local, rows[0].local_diag), (BfdState::Down, 1));
        a.stop();
    }

    /// The listening socket takes IPv4 and IPv6 alike and gives each datagram's TTL (hop
    /// limit) and destination: the TTL check needs them.
    #[test]
    fn the_listener_tells_ttl_and_destination_of_both_families() {
        let Ok((listener, ipv6)) = listen(0) else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        listener
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        v4.set_ttl(77).unwrap();
        v4.send_to(b"x", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 8];
        let m = rvs_rawsock::recv_udp_meta(listener.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(
            (m.ttl, m.to),
            (Some(77), Some("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(m.from, v4.local_addr().unwrap(), "IPv4-mapped read as IPv4");
        if !ipv6 {
            return;
        }
        let Ok(v6) = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)) else {
            return;
        };
        if v6
            .bind(&SocketAddr::from((Ipv6Addr::LOCALHOST, 0)).into())
            .is_err()
        {
            return;
        }
        v6.set_unicast_hops_v6(33).unwrap();
        v6.send_to(b"y", &SocketAddr::from((Ipv6Addr::LOCALHOST, port)).into())
            .unwrap();
        let m = rvs_rawsock::recv_udp_meta(listener.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((m.ttl, m.to), (Some(33), Some("::1".parse().unwrap())));
    }

    /// RFC 5881: one source port for a session's life; a reload that keeps its path (new
    /// timers) keeps its socket, a new source gets a new one.
    #[test]
    fn a_reload_keeps_the_session_s_source_port() {
        let Ok((listener, _)) = listen(0) else {
            return;
        };
        let mut runner = Runner {
            lives: Vec::new(),
            listener,
            board: board(),
            discarded: Arc::default(),
            published: None,
            port: CONTROL_PORT,
        };
        let b = BfdInstance {
            source: Some("127.0.0.1".parse().unwrap()),
            ..BfdInstance::new("p", "127.0.0.2".parse().unwrap())
        };
        let port = |r: &Runner| {
            r.lives[0]
                .sender
                .as_ref()
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        runner.take(vec![b.clone()], Instant::now());
        let first = port(&runner);
        assert!(first >= 49152, "{first}");
        let discr = runner.lives[0].session.local_discr;
        runner.take(
            vec![BfdInstance {
                min_rx: 50_000,
                ..b.clone()
            }],
            Instant::now(),
        );
        assert_eq!(
            (port(&runner), runner.lives[0].session.local_discr),
            (first, discr)
        );
        runner.take(
            vec![BfdInstance {
                source: Some("127.0.0.3".parse().unwrap()),
                ..b
            }],
            Instant::now(),
        );
        let moved = runner.lives[0]
            .sender
            .as_ref()
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(moved.ip(), "127.0.0.3".parse::<std::net::IpAddr>().unwrap());
    }

    struct Crossed {
        tx: Sender<Cmd>,
        thread: JoinHandle<()>,
    }

    impl Crossed {
        fn stop(self) {
            let _ = self.tx.send(Cmd::Stop);
            let _ = self.thread.join();
        }
    }

    fn spawn_crossed(
        board: &'static Board,
        b: BfdInstance,
        listen_on: u16,
        send_to: u16,
    ) -> Crossed {
        let (listener, _) = listen(listen_on).unwrap();
        let mut runner = Runner {
            lives: Vec::new(),
            listener,
            board,
            discarded: Arc::default(),
            published: None,
            port: send_to,
        };
        runner.take(vec![b], Instant::now());
        let (tx, rx) = channel::unbounded();
        let thread = std::thread::spawn(move || runner.run(rx));
        Crossed { tx, thread }
    }
}
