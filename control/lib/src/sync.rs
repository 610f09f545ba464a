//! The connection sync daemons (`ipvsadm --start-daemon master|backup`, keepalived's
//! `lvs_sync_daemon`): a master collects the workers' notes and sends them as IPVS sync
//! messages (version 1) to 224.0.0.81:8848 through the data port's host twin; a backup
//! receives them there, keeps those of its sync id (0 takes any) and queues each for the
//! worker that owns the client endpoint (templates for every worker, as each worker keeps
//! its own). Both run on their own threads; full queues drop and count.

use crate::vrrp::Link;
use parking_lot::Mutex;
use rvs_core::conn::ip_of;
use rvs_core::sync::{self, SyncChannel, SyncConn};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "master" => Some(Role::Master),
            "backup" => Some(Role::Backup),
            _ => None,
        }
    }
}

/// The largest message: an Ethernet MTU less the IPv4 and UDP headers (IPVS's default).
const MAX_MESSAGE: usize = 1500 - 20 - 8;
/// The same over IPv6 (a group of that family).
const MAX_MESSAGE_V6: usize = 1500 - 40 - 8;

/// A daemon's settings (`--mcast-interface`, `--syncid`, `--mcast-group`, `--mcast-port`,
/// `--mcast-ttl`, `--sync-maxlen`). A unicast group sends to that one address, where the
/// backup listens on its own address. An IPv6 group (link-scope or wider) is sent to and
/// joined on the twin's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    pub interface: String,
    pub syncid: u8,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub maxlen: Option<u16>,
}

impl DaemonSettings {
    pub fn new(interface: &str, syncid: u8) -> DaemonSettings {
        DaemonSettings {
            interface: interface.to_string(),
            syncid,
            group: None,
            port: None,
            ttl: None,
            maxlen: None,
        }
    }

    fn group(&self) -> IpAddr {
        self.group
            .unwrap_or(IpAddr::V4(Ipv4Addr::from(sync::GROUP_V4)))
    }

    /// The largest message the group's family allows on a 1500-byte MTU.
    fn family_max(&self) -> usize {
        if self.group().is_ipv6() {
            MAX_MESSAGE_V6
        } else {
            MAX_MESSAGE
        }
    }

    fn port(&self) -> u16 {
        self.port.unwrap_or(sync::PORT)
    }

    fn max_message(&self) -> usize {
        self.maxlen
            .map_or(self.family_max(), usize::from)
            .clamp(sync::HEADER_LEN + sync::CONN_V6_LEN, self.family_max())
    }
}
/// How often a master sends what its workers noted.
const SEND_PERIOD: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub struct SyncCounters {
    pub sent_messages: AtomicU64,
    pub sent_conns: AtomicU64,
    pub send_errors: AtomicU64,
    pub received_messages: AtomicU64,
    pub received_conns: AtomicU64,
    /// Messages refused: not version 1, malformed.
    pub bad_messages: AtomicU64,
    /// Messages of another sync id.
    pub other_syncid: AtomicU64,
    /// Received entries left out as the kernel's backup leaves them out: an unknown
    /// mandatory option or persistence engine.
    pub left_out: AtomicU64,
    /// Received entries lost to a full worker queue.
    pub queue_full: AtomicU64,
}

struct Running {
    settings: DaemonSettings,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

pub struct SyncDaemons {
    channels: Vec<Arc<SyncChannel>>,
    links: Vec<Link>,
    master: Mutex<Option<Running>>,
    backup: Mutex<Option<Running>>,
    pub counters: Arc<SyncCounters>,
    /// The format a master sends (`net.ipv4.vs.sync_version`): 1, or 0 for old kernels.
    version: Arc<AtomicU8>,
}

impl std::fmt::Debug for SyncDaemons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncDaemons({} workers)", self.channels.len())
    }
}

impl SyncDaemons {
    pub fn new(channels: Vec<Arc<SyncChannel>>, links: Vec<Link>) -> SyncDaemons {
        SyncDaemons {
            channels,
            links,
            master: Mutex::new(None),
            backup: Mutex::new(None),
            counters: Arc::new(SyncCounters::default()),
            version: Arc::new(AtomicU8::new(1)),
        }
    }

    /// The SIP templates' calls the workers and the daemons share.
    pub fn sip_calls(&self) -> Arc<rvs_core::sip::SipCalls> {
        self.channels.first().map_or_else(
            || Arc::new(rvs_core::sip::SipCalls::new(0)),
            |c| c.sip_calls.clone(),
        )
    }

    /// The format a master sends: 1 (the default), or 0, which kernels before 2.6.39 read
    /// (IPv4 only; a running master changes at its next message).
    pub fn set_version(&self, v: u8) {
        self.version.store(v.min(1), Relaxed);
    }

    pub fn version(&self) -> u8 {
        self.version.load(Relaxed)
    }

    fn slot(&self, role: Role) -> &Mutex<Option<Running>> {
        match role {
            Role::Master => &self.master,
            Role::Backup => &self.backup,
        }
    }

    /// Starts a daemon on its interface (a data port's name or its twin's); the errors are
    /// ipvsadm's words where it has them.
    pub fn start(&self, role: Role, settings: DaemonSettings) -> Result<(), String> {
        let mut slot = self.slot(role).lock();
        if slot.is_some() {
            return Err("Daemon has already run".into());
        }
        let ifname = &settings.interface;
        let link = self
            .links
            .iter()
            .find(|l| l.is_named(ifname))
            .ok_or_else(|| format!("{ifname}: no data port with a host twin of that name"))?;
        let ttl = settings.ttl.unwrap_or(1);
        let (to, sock) = match settings.group() {
            IpAddr::V4(group) => {
                let addr = link
                    .addr
                    .ok_or_else(|| format!("{ifname}: the port has no IPv4 address"))?;
                let sock = match role {
                    Role::Master => master_socket(&link.twin, addr, ttl),
                    Role::Backup => backup_socket(&link.twin, addr, group, settings.port()),
                };
                (
                    SocketAddr::V4(SocketAddrV4::new(group, settings.port())),
                    sock,
                )
            }
            IpAddr::V6(group) => {
                let index = interface_index(&link.twin)
                    .ok_or_else(|| format!("{}: no such interface", link.twin))?;
                let sock = match role {
                    Role::Master => master_socket_v6(&link.twin, index, ttl),
                    Role::Backup => backup_socket_v6(&link.twin, index, group, settings.port()),
                };
                let to = SocketAddrV6::new(group, settings.port(), 0, index);
                (SocketAddr::V6(to), sock)
            }
        };
        let sock = sock.map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (channels, counters, s) = (self.channels.clone(), self.counters.clone(), stop.clone());
        let thread = match role {
            Role::Master => {
                channels.iter().for_each(|c| c.sending.store(true, Relaxed));
                let format = (
                    settings.syncid,
                    settings.max_message(),
                    self.version.clone(),
                );
                std::thread::Builder::new()
                    .name("rvs-syncd-master".into())
                    .spawn(move || send_loop(sock, to, format, channels, counters, s))
            }
            Role::Backup => {
                let syncid = settings.syncid;
                std::thread::Builder::new()
                    .name("rvs-syncd-backup".into())
                    .spawn(move || receive_loop(sock, syncid, channels, counters, s))
            }
        }
        .map_err(|e| e.to_string())?;
        *slot = Some(Running {
            settings,
            stop,
            thread,
        });
        Ok(())
    }

    pub fn stop(&self, role: Role) -> Result<(), String> {
        let Some(r) = self.slot(role).lock().take() else {
            return Err("No daemon is running".into());
        };
        if role == Role::Master {
            self.channels
                .iter()
                .for_each(|c| c.sending.store(false, Relaxed));
        }
        r.stop.store(true, Relaxed);
        let _ = r.thread.join();
        Ok(())
    }

    pub fn stop_all(&self) {
        let _ = self.stop(Role::Master);
        let _ = self.stop(Role::Backup);
    }

    pub fn running(&self, role: Role) -> bool {
        self.slot(role).lock().is_some()
    }

    /// `ipvsadm -L --daemon`: what ipvsadm prints from the kernel, defaults included
    /// (maxlen is the largest message for a 1500-byte MTU unless set lower).
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for role in [Role::Master, Role::Backup] {
            if let Some(r) = self.slot(role).lock().as_ref() {
                let c = &r.settings;
                out.push_str(&format!(
                    "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})\n",
                    role.name(),
                    c.interface,
                    c.syncid,
                    c.maxlen
                        .map_or(c.family_max(), |m| usize::from(m).min(c.family_max())),
                    c.group(),
                    c.port(),
                    c.ttl.unwrap_or(1)
                ));
            }
        }
        out
    }

    /// The running totals, named for the metrics page (`rvs_sync_<name>_total`).
    pub fn totals(&self) -> Vec<(&'static str, u64)> {
        let c = &self.counters;
        let sum = |f: fn(&SyncChannel) -> u64| self.channels.iter().map(|ch| f(ch)).sum();
        vec![
            ("sent_messages", c.sent_messages.load(Relaxed)),
            ("sent_connections", c.sent_conns.load(Relaxed)),
            ("send_errors", c.send_errors.load(Relaxed)),
            ("received_messages", c.received_messages.load(Relaxed)),
            ("received_connections", c.received_conns.load(Relaxed)),
            ("refused_messages", c.bad_messages.load(Relaxed)),
            ("left_out_connections", c.left_out.load(Relaxed)),
            (
                "installed_connections",
                sum(|ch| ch.installed.load(Relaxed)),
            ),
            ("refused_connections", sum(|ch| ch.refused.load(Relaxed))),
            ("sip_calls_replaced", self.sip_calls().replaced()),
            ("sip_calls_not_kept", self.sip_calls().not_kept()),
        ]
    }

    /// The counters, for `show sync`.
    pub fn show(&self) -> String {
        let c = &self.counters;
        let (mut noted_lost, mut installed, mut refused) = (0, 0, 0);
        for ch in &self.channels {
            noted_lost += ch.out_dropped.load(Relaxed);
            installed += ch.installed.load(Relaxed);
            refused += ch.refused.load(Relaxed);
        }
        let mut out = self.listing();
        if out.is_empty() {
            out.push_str("no sync daemon running\n");
        }
        out.push_str(&format!(
            "sent: {} message(s), {} connection(s), {} error(s); notes lost to full queues {}\n\
             received: {} message(s), {} connection(s); refused messages {}, other sync id {}, \
             entries left out (unknown option or engine) {}; installed {}, refused {}, lost to \
             full queues {}\n",
            c.sent_messages.load(Relaxed),
            c.sent_conns.load(Relaxed),
            c.send_errors.load(Relaxed),
            noted_lost,
            c.received_messages.load(Relaxed),
            c.received_conns.load(Relaxed),
            c.bad_messages.load(Relaxed),
            c.other_syncid.load(Relaxed),
            c.left_out.load(Relaxed),
            installed,
            refused,
            c.queue_full.load(Relaxed),
        ));
        let calls = self.sip_calls();
        out.push_str(&format!(
            "SIP calls: {} held of {} slots, {} replaced by newer calls, {} not kept (slot busy)\n",
            calls.held(),
            calls.capacity(),
            calls.replaced(),
            calls.not_kept(),
        ));
        out
    }
}

fn master_socket(twin: &str, addr: Ipv4Addr, ttl: u8) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind_device(Some(twin.as_bytes()))?;
    s.set_multicast_if_v4(&addr)?;
    s.set_multicast_ttl_v4(u32::from(ttl))?;
    s.set_ttl(u32::from(ttl))?;
    s.set_multicast_loop_v4(false)?;
    s.bind(&SocketAddr::new(IpAddr::V4(addr), 0).into())?;
    Ok(s)
}

/// The backup listens on the port; it joins the group when that is a multicast one.
fn backup_socket(
    twin: &str,
    addr: Ipv4Addr,
    group: Ipv4Addr,
    port: u16,
) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(twin.as_bytes()))?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    if group.is_multicast() {
        s.join_multicast_v4(&group, &addr)?;
    }
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// A kernel interface's index (sysfs), for IPv6 multicast.
fn interface_index(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn master_socket_v6(twin: &str, index: u32, hops: u8) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.bind_device(Some(twin.as_bytes()))?;
    s.set_multicast_if_v6(index)?;
    s.set_multicast_hops_v6(u32::from(hops))?;
    s.set_unicast_hops_v6(u32::from(hops))?;
    s.set_multicast_loop_v6(false)?;
    s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).into())?;
    Ok(s)
}

fn backup_socket_v6(twin: &str, index: u32, group: Ipv6Addr, port: u16) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(twin.as_bytes()))?;
    s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)).into())?;
    if group.is_multicast() {
        s.join_multicast_v6(&group, index)?;
    }
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

fn send_loop(
    sock: Socket,
    to: SocketAddr,
    (syncid, max_message, version): (u8, usize, Arc<AtomicU8>),
    channels: Vec<Arc<SyncChannel>>,
    counters: Arc<SyncCounters>,
    stop: Arc<AtomicBool>,
) {
    let to: socket2::SockAddr = to.into();
    let mut batch: Vec<SyncConn> = Vec::with_capacity(sync::QUEUE_LEN);
    loop {
        let stopping = stop.load(Relaxed);
        batch.clear();
        for ch in &channels {
            while let Some(c) = ch.outbox.pop() {
                batch.push(c);
            }
        }
        let (messages, count_at) = match version.load(Relaxed) {
            0 => (sync::encode_v0(syncid, &batch, max_message), 0),
            _ => {
                let calls = channels.first().map(|c| &*c.sip_calls);
                (sync::encode_with(syncid, &batch, max_message, calls), 4)
            }
        };
        for m in messages {
            match sock.send_to(&m, &to) {
                Ok(_) => {
                    counters.sent_messages.fetch_add(1, Relaxed);
                    counters
                        .sent_conns
                        .fetch_add(u64::from(m[count_at]), Relaxed);
                }
                Err(_) => {
                    counters.send_errors.fetch_add(1, Relaxed);
                }
            }
        }
        if stopping {
            break;
        }
        std::thread::sleep(SEND_PERIOD);
    }
}

/// Where a received entry goes: the owner of its client endpoint; a template to every
/// worker (each keeps its own).
fn deliver(c: SyncConn, channels: &[Arc<SyncChannel>], counters: &SyncCounters) {
    let workers = channels.len();
    let push = |ch: &SyncChannel| {
        if ch.inbox.push(c).is_err() {
            counters.queue_full.fetch_add(1, Relaxed);
        }
    };
    if c.flags & sync::ipvs_flags::TEMPLATE != 0 {
        channels.iter().for_each(|ch| push(ch));
    } else {
        // The worker the data path steers the flow to: the client endpoint's, except an SNAT
        // flow's, whose outbound packets are steered by their destination (its replies by
        // the local end, which the master chose to agree).
        let owner = match c.local {
            Some(l) if l.snat => rvs_core::engine::owner_of(ip_of(&c.daddr), c.dport, workers),
            _ => rvs_core::engine::owner_of(ip_of(&c.caddr), c.cport, workers),
        };
        if let Some(ch) = channels.get(owner) {
            push(ch);
        }
    }
}

/// A received message: counted, filtered by sync id, delivered to the workers.
pub fn accept_message(
    msg: &[u8],
    syncid: u8,
    channels: &[Arc<SyncChannel>],
    counters: &SyncCounters,
) {
    // A SIP template's call is kept for the listing and for sending it on as master (a
    // message of another sync id keeps nothing).
    let ours = syncid == 0 || msg.get(1) == Some(&syncid);
    let calls = channels.first().map(|c| &*c.sip_calls).filter(|_| ours);
    match sync::decode_keeping(msg, calls) {
        Ok((id, conns, left_out)) => {
            if syncid != 0 && id != syncid {
                counters.other_syncid.fetch_add(1, Relaxed);
                return;
            }
            counters.received_messages.fetch_add(1, Relaxed);
            counters.left_out.fetch_add(left_out as u64, Relaxed);
            counters
                .received_conns
                .fetch_add(conns.len() as u64, Relaxed);
            for c in conns {
                deliver(c, channels, counters);
            }
        }
        Err(_) => {
            counters.bad_messages.fetch_add(1, Relaxed);
        }
    }
}

fn receive_loop(
    sock: Socket,
    syncid: u8,
    channels: Vec<Arc<SyncChannel>>,
    counters: Arc<SyncCounters>,
    stop: Arc<AtomicBool>,
) {
    crate::datagrams::receive_until(sock, 65536, &stop, |msg| {
        accept_message(msg, syncid, &channels, &counters)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(cport: u16, template: bool) -> SyncConn {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[10, 0, 0, 10]);
        SyncConn {
            proto: 6,
            cport,
            caddr: a,
            vaddr: a,
            daddr: a,
            flags: if template {
                sync::ipvs_flags::TEMPLATE
            } else {
                0
            },
            ..SyncConn::default()
        }
    }

    #[test]
    fn messages_reach_the_owning_worker_and_templates_every_worker() {
        let channels: Vec<Arc<SyncChannel>> =
            (0..4).map(|_| Arc::new(SyncChannel::default())).collect();
        let counters = SyncCounters::default();
        let conns: Vec<SyncConn> = (0..100).map(|p| conn(40000 + p, false)).collect();
        for m in sync::encode(5, &conns, MAX_MESSAGE) {
            accept_message(&m, 5, &channels, &counters);
        }
        let total: usize = channels.iter().map(|c| c.inbox.len()).sum();
        assert_eq!(total, 100);
        for (w, ch) in channels.iter().enumerate() {
            while let Some(c) = ch.inbox.pop() {
                assert_eq!(rvs_core::engine::owner_of(ip_of(&c.caddr), c.cport, 4), w);
            }
        }
        for m in sync::encode(5, &[conn(0, true)], MAX_MESSAGE) {
            accept_message(&m, 0, &channels, &counters);
        }
        assert!(
            channels.iter().all(|c| c.inbox.len() == 1),
            "syncid 0 takes any"
        );
        for m in sync::encode(6, &[conn(1, false)], MAX_MESSAGE) {
            accept_message(&m, 5, &channels, &counters);
        }
        assert_eq!(counters.other_syncid.load(Relaxed), 1);
        accept_message(&[0, 5, 0, 9, 0, 0, 0, 0], 5, &channels, &counters);
        assert_eq!(
            counters.bad_messages.load(Relaxed),
            1,
            "a size that is not its own"
        );
        // The old format (version 0): one UDP entry, syncid 5.
        let mut v0 = vec![1, 5, 0, 28, 0, 17, 0x13, 0x88, 0, 53, 0, 53];
        v0.extend([192, 0, 2, 9, 192, 0, 2, 100, 10, 0, 0, 2, 0, 0, 0, 0]);
        accept_message(&v0, 5, &channels, &counters);
        assert_eq!(counters.bad_messages.load(Relaxed), 1);
        assert_eq!(counters.received_conns.load(Relaxed), 102);
        // An entry with an option the kernel does not know and must not skip (type 9, no
        // 0x40 flag) is left out and counted; the other one of its message goes on.
        let mut m = sync::encode(5, &[conn(7, false), conn(8, false)], MAX_MESSAGE).remove(0);
        let first = sync::HEADER_LEN;
        m.splice(
            first + sync::CONN_V4_LEN..first + sync::CONN_V4_LEN,
            [9, 2, 0, 0],
        );
        m[first + 3] += 4;
        let size = m.len() as u16;
        m[2..4].copy_from_slice(&size.to_be_bytes());
        accept_message(&m, 5, &channels, &counters);
        assert_eq!(counters.left_out.load(Relaxed), 1);
        assert_eq!(counters.received_conns.load(Relaxed), 103);
        assert_eq!(counters.bad_messages.load(Relaxed), 1);
    }

    #[test]
    fn start_and_stop_speak_ipvsadm() {
        let d = SyncDaemons::new(vec![Arc::new(SyncChannel::default())], Vec::new());
        assert!(d
            .start(Role::Master, DaemonSettings::new("eth9", 1))
            .unwrap_err()
            .contains("eth9"));
        assert_eq!(d.stop(Role::Backup).unwrap_err(), "No daemon is running");
        assert_eq!(d.listing(), "");
    }
}
