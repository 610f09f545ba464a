//! The VRRP runtime: one thread drives every instance's [`Machine`] from received
//! advertisements, timers and tracking. On the data port's host twin (the worker carries
//! its frames to the wire): IPv4 adverts through a raw IP socket; IPv6 adverts (version 3
//! to ff02::12 from the port's link-local address), gratuitous ARPs and unsolicited
//! neighbour advertisements as whole frames through a link-layer socket. Ownership of the
//! addresses is handed to the appliance ([`Host::set_floating`]), which publishes it to
//! the workers.

use super::ah;
use super::conf::{
    installed_routes, installed_rules, Instance, Notify, OldChecksum, Script, TrackProcess,
    TrackScript, VirtualAddress, VrrpConf, VrrpRoute, VrrpRule,
};
use super::fifo::{self, Fifos};
use super::machine::{Action, Machine, Params, State};
use super::pacing::Pacer;
use super::process::ProcessStatus;
use super::reload::{self, Carried, CarriedInstance, InstanceKey};
use super::vet;
use crate::log::{log, Level};
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use rvs_core::engine::Floating;
use rvs_rawsock::PacketSocket;
use rvs_wire::icmpv6;
use rvs_wire::vrrp::{self, VrrpRepr};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod frames;
mod host;
mod scripts;
mod sockets;

use frames::*;
pub use frames::{advert_frame_v4, advert_frame_v6, gratuitous_arp, unsolicited_na};
use host::*;
pub use host::{add_static_addresses, host_rule, twin_route};
pub use scripts::run_waited;
pub(super) use scripts::spawn;
use scripts::*;
use sockets::*;

/// What the runtime needs from the appliance.
pub trait Host: Send + Sync {
    /// Every VRRP-managed address, whether this box holds it now and takes its traffic,
    /// and the routes and rules to apply now (static_routes and static_rules, and the
    /// virtual_routes and virtual_rules of MASTER instances).
    fn set_floating(
        &self,
        addrs: Vec<Floating>,
        routes: Vec<rvs_core::engine::Route>,
        rules: Vec<rvs_core::engine::Rule>,
    );
    /// Whether a data port's link is up (track_interface, the instance's own interface).
    fn link_up(&self, port: usize) -> bool;
    /// An instance changed state (the connection sync daemon follows its instance).
    fn state_changed(&self, instance: &str, state: State);
}

/// A data port VRRP speaks on, through its host twin.
#[derive(Debug, Clone)]
pub struct Link {
    /// The port's name in the configuration.
    pub name: String,
    pub port: usize,
    /// The twin's kernel interface.
    pub twin: String,
    pub mac: [u8; 6],
    /// The port's IPv4 address adverts leave from (unless unicast_src_ip says otherwise).
    pub addr: Option<Ipv4Addr>,
    /// The appliance forwards (`ip_forward`): its neighbour advertisements say router.
    pub router: bool,
}

impl Link {
    /// Whether `name` (an instance's `interface`, a `dev`) means this link.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.twin == name
    }

    /// The twin's interface index: the scope of link-local addresses on it (0 unknown).
    fn twin_index(&self) -> u32 {
        std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", self.twin))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The port's link-local IPv6 address (modified EUI-64 of its MAC, as the kernel gives
    /// the twin, which has the port's MAC): IPv6 adverts leave from it.
    pub fn link_local(&self) -> Ipv6Addr {
        let m = self.mac;
        Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 2,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }
}

/// Counters and state of one instance, for `show vrrp`.
#[derive(Debug, Clone, Default)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub state: String,
    pub priority: u8,
    pub base_priority: u8,
    pub advert_cs: u16,
    pub preempt: bool,
    /// Strict mode; accept mode (without it, traffic to its addresses is refused).
    pub strict: bool,
    pub accept: bool,
    /// use_vmac's MAC, and whether adverts leave from the interface's own
    /// (vmac_xmit_base).
    pub vmac: Option<([u8; 6], bool)>,
    pub group: Option<String>,
    /// The master heard last (while BACKUP) and its priority.
    pub master: Option<(IpAddr, u8)>,
    pub addresses: Vec<String>,
    pub since: Option<Instant>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub priority_zero_sent: u64,
    pub priority_zero_received: u64,
    pub became_master: u64,
    /// Left MASTER (for BACKUP or FAULT).
    pub released_master: u64,
    pub garps_sent: u64,
    /// Dropped adverts: shorter than their address count says, TTL not 255, wrong
    /// version, not an advertisement, authentication (a type VRRP has not, another type
    /// than configured, a wrong password or AH), checksum, interval.
    pub bad_length: u64,
    pub bad_ttl: u64,
    pub bad_version: u64,
    pub bad_type: u64,
    pub auth_invalid_type: u64,
    pub auth_type_mismatch: u64,
    pub auth_failure: u64,
    pub bad_checksum: u64,
    pub bad_interval: u64,
    /// Unicast adverts from no `unicast_peer` (`check_unicast_src`).
    pub bad_source: u64,
    /// Listing other addresses than ours: dropped, as keepalived drops them.
    pub address_mismatch: u64,
    pub faults: Vec<String>,
}

impl InstanceStatus {
    /// `fresh` (a reloaded instance's) with this one's counters.
    fn counters_into(self, fresh: InstanceStatus) -> InstanceStatus {
        InstanceStatus {
            adverts_sent: self.adverts_sent,
            adverts_received: self.adverts_received,
            priority_zero_sent: self.priority_zero_sent,
            priority_zero_received: self.priority_zero_received,
            became_master: self.became_master,
            released_master: self.released_master,
            garps_sent: self.garps_sent,
            bad_length: self.bad_length,
            bad_ttl: self.bad_ttl,
            bad_version: self.bad_version,
            bad_type: self.bad_type,
            auth_invalid_type: self.auth_invalid_type,
            auth_type_mismatch: self.auth_type_mismatch,
            auth_failure: self.auth_failure,
            bad_checksum: self.bad_checksum,
            bad_interval: self.bad_interval,
            bad_source: self.bad_source,
            address_mismatch: self.address_mismatch,
            ..fresh
        }
    }

    /// An advert dropped before the state machine heard it, counted by why.
    fn refused(&mut self, why: vet::Refusal) {
        use vet::Refusal as R;
        let counter = match why {
            R::NotAPeer => &mut self.bad_source,
            R::Length => &mut self.bad_length,
            R::Ttl => &mut self.bad_ttl,
            R::Version => &mut self.bad_version,
            R::Type => &mut self.bad_type,
            R::AuthInvalidType => &mut self.auth_invalid_type,
            R::AuthTypeMismatch => &mut self.auth_type_mismatch,
            R::AuthFailure => &mut self.auth_failure,
            R::Checksum => &mut self.bad_checksum,
            R::Interval => &mut self.bad_interval,
            R::Stranger => return,
        };
        *counter += 1;
    }

    /// An advert left (with `priority`).
    fn advert_sent(&mut self, priority: u8) {
        self.adverts_sent += 1;
        if priority == 0 {
            self.priority_zero_sent += 1;
        }
    }
}

enum Event {
    /// An IPv4 datagram from the raw socket (its IP header first).
    Packet {
        link: usize,
        bytes: Vec<u8>,
    },
    /// An IPv6 frame from the link-layer socket (its Ethernet header first).
    Frame {
        link: usize,
        bytes: Vec<u8>,
    },
    Script {
        index: usize,
        ok: bool,
    },
    /// A tracked BFD session went up or down.
    Bfd,
    /// The instances' status for keepalived's stats file, their counters zeroed after
    /// with `clear` (keepalived's STATS_CLEAR).
    Stats {
        clear: bool,
        reply: Sender<Vec<InstanceStatus>>,
    },
    Stop,
    /// A reload: the instances `keep` lacks are deleted, the others handed over.
    Handover {
        keep: Vec<InstanceKey>,
        reply: Sender<Carried>,
    },
}

struct Inst {
    conf: Instance,
    /// The addresses its adverts list (4 or 16 bytes each, the instance's family), in
    /// order (from `conf`, derived once).
    advertised: Vec<Vec<u8>>,
    link: usize,
    /// Where its adverts come from: an IPv4 address, or IPv6 (link-local unless
    /// unicast_src_ip says otherwise).
    src: IpAddr,
    /// Its IPv4 sending socket (in the controller's `senders`).
    sender: Option<usize>,
    /// Unicast VRRPv3 adverts checksummed as keepalived 1.3.6 and before did
    /// (`old_unicast_checksum`, or switched to on hearing one).
    old_checksum: bool,
    /// An IPv6 instance's socket for its unicast peers (the twin's kernel finds their
    /// MACs) and the twin's index (a link-local peer's scope, read once); None: adverts go
    /// to the group as frames.
    unicast6: Option<(Socket, u32)>,
    /// `auth_type AH`: the socket its adverts leave by (rvs writes the IPv4 header, which
    /// the ICV covers), the IP id of the last, and the AH sequence number: the last sent
    /// or heard, whichever is higher (keepalived keeps one counter for both, so a new
    /// master continues the old one's sequence).
    ah_socket: Option<Socket>,
    ip_id: u16,
    ah_sequence: u32,
    machine: Machine,
    group: Option<usize>,
    status: InstanceStatus,
    /// Gratuitous ARP bursts still to send: when, and how many for each address.
    garp_at: Vec<(Instant, u32)>,
    /// While MASTER with garp_master_refresh: the next refresh.
    garp_refresh_at: Option<Instant>,
    /// garp_extra_if in effect (`all`, and some address on another link): its interval,
    /// and while MASTER the next round.
    extra_garp: Option<Duration>,
    extra_garp_at: Option<Instant>,
    key: InstanceKey,
    /// Carried over a reload: the state it was in and its configuration then.
    resumed: Option<(State, Instance)>,
}

pub struct VrrpRuntime {
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    receivers: Vec<JoinHandle<()>>,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    conf: VrrpConf,
    links: Vec<Link>,
    host: Arc<dyn Host>,
    fifos: Arc<Fifos>,
    /// The twins whose `promote_secondaries` rvs turned on (off again at the end).
    promoted: Vec<String>,
}

impl std::fmt::Debug for VrrpRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VrrpRuntime({} instances)", self.status.lock().len())
    }
}

/// What the workers start with: the static addresses held, every instance's not.
pub fn all_standby(conf: &VrrpConf) -> Vec<Floating> {
    let statics = conf.static_addresses.iter().map(|a| Floating::held(a.addr));
    statics
        .chain(
            conf.instances
                .iter()
                .flat_map(|i| i.all_addresses().map(|a| Floating::standby(a.addr))),
        )
        .collect()
}

/// The link an instance's `interface` names, or an error naming the instance.
pub fn link_for(i: &Instance, links: &[Link]) -> Result<usize, String> {
    links
        .iter()
        .position(|l| l.is_named(&i.interface))
        .ok_or_else(|| {
            let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
            format!(
                "{}: vrrp_instance {}: interface {:?} is no data port with a host twin (host_tap) (ports with one: {})",
                i.at,
                i.name,
                i.interface,
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )
        })
}

impl VrrpRuntime {
    /// Checks that every instance can run on `links` (interface, family, source address,
    /// `dev`s); errors name the instance. `rvs --check` runs this too.
    pub fn check(conf: &VrrpConf, links: &[Link]) -> Result<Vec<(usize, IpAddr)>, String> {
        for a in &conf.static_addresses {
            if static_twin(links, a).is_none() {
                return Err(match &a.dev {
                    Some(d) => format!(
                        "{}: static_ipaddress {}: dev {d}: no data port with a host twin of that name",
                        a.at, a.addr
                    ),
                    None => format!(
                        "{}: static_ipaddress {}: no data port with a host twin (host_tap) to hold it",
                        a.at, a.addr
                    ),
                });
            }
        }
        let mut out = Vec::new();
        for i in &conf.instances {
            let link = link_for(i, links)?;
            let l = &links[link];
            let src = if i.is_ipv6() {
                if let Some(p) = i.unicast_peers.iter().find(|p| p.is_ipv4()) {
                    return Err(format!("{}: unicast_peer {p}: not IPv6", i.at));
                }
                match i.unicast_src {
                    Some(IpAddr::V6(a)) => IpAddr::V6(a),
                    Some(a) => {
                        return Err(format!(
                            "{}: source address {a} (unicast_src_ip, mcast_src_ip): not IPv6",
                            i.at
                        ))
                    }
                    None => IpAddr::V6(l.link_local()),
                }
            } else {
                match i.unicast_src {
                    Some(IpAddr::V4(a)) => IpAddr::V4(a),
                    Some(a) => {
                        return Err(format!(
                            "{}: source address {a} (unicast_src_ip, mcast_src_ip): not IPv4",
                            i.at
                        ))
                    }
                    None => IpAddr::V4(l.addr.ok_or_else(|| {
                        format!(
                            "{}: vrrp_instance {}: port {} has no IPv4 address to advertise from",
                            i.at, i.name, l.name
                        )
                    })?),
                }
            };
            for a in i.all_addresses() {
                if let Some(d) = &a.dev {
                    if !links.iter().any(|l| l.is_named(d)) {
                        return Err(format!(
                            "{}: vrrp_instance {}: {} dev {d}: no data port with a host twin of that name",
                            i.at, i.name, a.addr
                        ));
                    }
                }
            }
            out.push((link, src));
        }
        Ok(out)
    }

    /// Opens the sockets and starts the instances. Errors name the instance.
    pub fn start(
        conf: VrrpConf,
        links: Vec<Link>,
        host: Arc<dyn Host>,
    ) -> Result<VrrpRuntime, String> {
        let opened = Opened::open(&conf, &links)?;
        let status = Arc::new(Mutex::new(Vec::new()));
        let fifos = Arc::new(Fifos::open(&conf.fifos));
        let carried = Carried::default();
        launch(
            conf,
            links,
            host,
            opened,
            carried,
            (status, fifos, Vec::new()),
        )
    }

    /// Runs `conf` instead, as keepalived reloads (see [`super::reload`]): its sockets are
    /// opened first (an error changes nothing), then the running instances are handed over.
    /// Returns the changes, one line each, and how many instances keep their state.
    pub fn reload(&mut self, conf: VrrpConf) -> Result<(Vec<String>, usize), String> {
        let opened =
            Opened::open(&conf, &self.links).map_err(|e| format!("{e} (VRRP runs as before)"))?;
        let keys: Vec<InstanceKey> = conf
            .instances
            .iter()
            .zip(&opened.plan)
            .map(|(i, (link, src))| InstanceKey::of(i, *link, *src))
            .collect();
        let (tx, rx) = channel::bounded(1);
        let handover = Event::Handover {
            keep: keys.clone(),
            reply: tx,
        };
        let mut carried = match self.events.send(handover) {
            Ok(()) => rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default(),
            Err(_) => Carried::default(),
        };
        carried.reload = true;
        self.end_threads();
        let statics = (
            &conf.static_addresses[..],
            &conf.static_routes[..],
            &conf.static_rules[..],
        );
        let report = reload::report(&carried, &conf.instances, &keys, statics);
        let (links, host, status) = (self.links.clone(), self.host.clone(), self.status.clone());
        // The FIFOs stay open unless their configuration changed (then the old ones close
        // first: one rvs made goes before the same path is made again).
        let fifos = if fifo::same_fifos(&self.conf.fifos, &conf.fifos) {
            self.fifos.clone()
        } else {
            self.fifos = Arc::default();
            Arc::new(Fifos::open(&conf.fifos))
        };
        let promoted = std::mem::take(&mut self.promoted);
        *self = launch(
            conf,
            links,
            host,
            opened,
            carried,
            (status, fifos, promoted),
        )
        .map_err(|e| format!("{e} (VRRP stopped: restart rvs)"))?;
        Ok(report)
    }

    /// The configuration running.
    pub fn conf(&self) -> &VrrpConf {
        &self.conf
    }

    pub fn status(&self) -> Vec<InstanceStatus> {
        self.status.lock().clone()
    }

    /// The instances' status with their counters as they are now; with `clear`, the
    /// counters start again from 0 (keepalived's STATS and STATS_CLEAR signals).
    pub fn stats(&self, clear: bool) -> Vec<InstanceStatus> {
        let (tx, rx) = channel::bounded(1);
        let wait = Duration::from_secs(2);
        match self
            .events
            .send_timeout(Event::Stats { clear, reply: tx }, wait)
        {
            Ok(()) => rx.recv_timeout(wait).unwrap_or_else(|_| self.status()),
            Err(_) => self.status(),
        }
    }

    /// The shared status, for the appliance's `show vrrp`.
    pub fn status_handle(&self) -> Arc<Mutex<Vec<InstanceStatus>>> {
        self.status.clone()
    }

    /// Clean shutdown: masters advertise priority 0, addresses are released, notify_stop
    /// scripts run.
    pub fn shutdown(mut self) {
        let _ = self.events.send(Event::Stop);
        self.end_threads();
        for twin in &self.promoted {
            let path = format!("/proc/sys/net/ipv4/conf/{twin}/promote_secondaries");
            let _ = std::fs::write(path, "0");
        }
    }

    /// Waits for the controller (told to stop or hand over), then stops the receivers.
    fn end_threads(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.stop.store(true, Ordering::Relaxed);
        for r in self.receivers.drain(..) {
            let _ = r.join();
        }
    }
}

/// Sockets for a configuration's instances, opened before they start (a reload opens the
/// new ones while the old still run).
struct Opened {
    /// Each instance's link and source address.
    plan: Vec<(usize, IpAddr)>,
    /// Each instance's AH socket (`auth_type AH`) and IPv6 unicast socket with its scope.
    ah: Vec<Option<Socket>>,
    unicast6: Vec<Option<(Socket, u32)>>,
    /// The IPv4 sending sockets, one per link and source address (bound to it: version
    /// 3's checksum covers it), and each instance's.
    senders: Vec<Socket>,
    sender_of: Vec<Option<usize>>,
    /// Per link: the IPv4 receiving socket, the link-layer one, the IPv6 frames' receiving
    /// one, the AH receiving one.
    receiving: Vec<Option<Socket>>,
    garp: Vec<Option<PacketSocket>>,
    frames: Vec<Option<PacketSocket>>,
    ah_receiving: Vec<Option<Socket>>,
}

impl Opened {
    fn open(conf: &VrrpConf, links: &[Link]) -> Result<Opened, String> {
        let plan = VrrpRuntime::check(conf, links)?;
        let per_link = || links.iter().map(|_| None).collect::<Vec<_>>();
        let mut o = Opened {
            ah: conf.instances.iter().map(|_| None).collect(),
            unicast6: conf.instances.iter().map(|_| None).collect(),
            senders: Vec::new(),
            sender_of: conf.instances.iter().map(|_| None).collect(),
            receiving: per_link(),
            garp: links.iter().map(|_| None).collect(),
            frames: links.iter().map(|_| None).collect(),
            ah_receiving: per_link(),
            plan,
        };
        for (k, inst) in conf.instances.iter().enumerate() {
            let (link, src) = o.plan[k];
            let l = &links[link];
            let failed = |what: &str, e: std::io::Error| {
                format!("vrrp_instance {}: {what} on {}: {e}", inst.name, l.twin)
            };
            if let IpAddr::V4(src) = src {
                let open = |send| open_socket(l, src, send).map_err(|e| failed("a VRRP socket", e));
                let same = o.plan[..k].iter().position(|p| *p == o.plan[k]);
                o.sender_of[k] = Some(match same.and_then(|j| o.sender_of[j]) {
                    Some(s) => s,
                    None => {
                        o.senders.push(open(true)?);
                        o.senders.len() - 1
                    }
                });
                if o.receiving[link].is_none() {
                    o.receiving[link] = Some(open(false)?);
                }
            }
            if let (IpAddr::V4(src), true) = (src, inst.auth_ah) {
                o.ah[k] = Some(open_ah(l, src).map_err(|e| failed("an AH socket", e))?);
                if o.ah_receiving[link].is_none() {
                    let s = open_ah_receiving(l).map_err(|e| failed("an AH socket", e))?;
                    o.ah_receiving[link] = Some(s);
                }
            }
            if let (IpAddr::V6(src), false) = (src, inst.unicast_peers.is_empty()) {
                let (hops, scope) = (inst.unicast_ttl.unwrap_or(255), l.twin_index());
                let sock = open_unicast6(l, src, hops, scope)
                    .map_err(|e| failed(&format!("an IPv6 VRRP socket from {src}"), e))?;
                o.unicast6[k] = Some((sock, scope));
            }
            if src.is_ipv6() && o.frames[link].is_none() {
                let timeout = Duration::from_millis(200);
                let s = PacketSocket::bind_receiving(&l.twin, ETHERTYPE_IPV6, timeout)
                    .map_err(|e| failed("a packet socket", e))?;
                o.frames[link] = Some(s);
            }
            if o.garp[link].is_none() {
                let s = PacketSocket::bind(&l.twin).map_err(|e| failed("a packet socket", e))?;
                o.garp[link] = Some(s);
            }
        }
        for (inst, (link, src)) in conf.instances.iter().zip(&o.plan) {
            if src.is_ipv6() {
                continue;
            }
            for sock in [&o.receiving[*link], &o.ah_receiving[*link]]
                .into_iter()
                .flatten()
            {
                join_group(sock, inst.group(), links[*link].twin_index()).map_err(|e| {
                    format!(
                        "vrrp_instance {}: joining {} on {}: {e}",
                        inst.name,
                        inst.group(),
                        links[*link].twin
                    )
                })?;
            }
        }
        Ok(o)
    }
}

/// Starts the instances on opened sockets, each carried one in the state it had.
fn launch(
    conf: VrrpConf,
    links: Vec<Link>,
    host: Arc<dyn Host>,
    opened: Opened,
    mut carried: Carried,
    (status, fifos, mut promoted): (Arc<Mutex<Vec<InstanceStatus>>>, Arc<Fifos>, Vec<String>),
) -> Result<VrrpRuntime, String> {
    promote_secondaries(&conf, &links, &mut promoted);
    let Opened {
        plan,
        ah,
        unicast6,
        senders,
        sender_of,
        receiving,
        garp,
        frames,
        ah_receiving,
    } = opened;
    let mut insts = Vec::new();
    for (((i, (link, src)), (ah_socket, unicast6)), sender) in conf
        .instances
        .iter()
        .zip(plan)
        .zip(ah.into_iter().zip(unicast6))
        .zip(sender_of)
    {
        let machine = Machine::new(Params {
            priority: i.priority,
            advert_cs: i.advert_cs,
            version: i.version,
            initial_master: i.initial_master,
            preempt: i.preempt,
            preempt_delay: i.preempt_delay,
            own_addr: src,
            lower_prio_no_advert: i.lower_prio_no_advert,
            higher_prio_send_advert: i.higher_prio_send_advert,
            down_timer_adverts: i.down_timer_adverts,
        });
        let group = conf
            .groups
            .iter()
            .position(|g| g.members.iter().any(|m| m == &i.name));
        let fresh = InstanceStatus {
            name: i.name.clone(),
            interface: i.interface.clone(),
            vrid: i.vrid,
            version: i.version,
            state: State::Init.name().into(),
            priority: i.priority,
            base_priority: i.priority,
            advert_cs: i.advert_cs,
            preempt: i.preempt,
            strict: i.strict,
            accept: i.accept,
            vmac: i.vmac.map(|m| (m, i.vmac_xmit_base)),
            group: group.map(|g| conf.groups[g].name.clone()),
            addresses: i
                .all_addresses()
                .map(|a| format!("{}/{}", a.addr, a.len))
                .collect(),
            ..InstanceStatus::default()
        };
        let advertised = i
            .addresses
            .iter()
            .map(|a| match a.addr {
                IpAddr::V4(v) => v.octets().to_vec(),
                IpAddr::V6(v) => v.octets().to_vec(),
            })
            .collect();
        let key = InstanceKey::of(i, link, src);
        let before = carried.take(&key);
        // A carried instance keeps its counters and AH sequence; the rest is the new one's.
        let (status, ah_sequence, ip_id, resumed) = match before {
            Some(c) => {
                let status = InstanceStatus {
                    state: c.status.state.clone(),
                    since: c.status.since,
                    master: c.status.master,
                    ..c.status.counters_into(fresh)
                };
                (status, c.ah_sequence, c.ip_id, Some((c.state, c.conf)))
            }
            None => (fresh, 0, 0, None),
        };
        insts.push(Inst {
            conf: i.clone(),
            advertised,
            link,
            src,
            sender,
            old_checksum: i.old_checksum == OldChecksum::Always,
            unicast6,
            ah_socket,
            ip_id,
            ah_sequence,
            machine,
            group,
            status,
            garp_at: Vec::new(),
            garp_refresh_at: None,
            extra_garp: extra_garp_interval(i, &links, link),
            extra_garp_at: None,
            key,
            resumed,
        });
    }
    let (tx, rx) = channel::bounded(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    let by_link = receiving.into_iter().enumerate();
    for (i, s) in by_link.chain(ah_receiving.into_iter().enumerate()) {
        let Some(s) = s else { continue };
        let (tx, stop) = (tx.clone(), stop.clone());
        receivers.push(
            std::thread::Builder::new()
                .name("rvs-vrrp-rx".into())
                .spawn(move || receive(i, s, tx, stop))
                .map_err(|e| e.to_string())?,
        );
    }
    for (i, s) in frames.into_iter().enumerate() {
        let Some(s) = s else { continue };
        let (tx, stop) = (tx.clone(), stop.clone());
        receivers.push(
            std::thread::Builder::new()
                .name("rvs-vrrp-rx6".into())
                .spawn(move || receive_frames(i, s, tx, stop))
                .map_err(|e| e.to_string())?,
        );
    }
    let script_ok: Vec<bool> = conf
        .scripts
        .iter()
        .map(|s| carried.script_ok(&s.name).unwrap_or(!s.init_fail))
        .collect();
    let trackers = start_trackers(&conf.scripts, &script_ok, &tx, &stop)?;
    receivers.extend(trackers);
    // A tracked BFD session's change reaches the controller at once (until it ends).
    if conf.instances.iter().any(|i| !i.track_bfds.is_empty()) {
        let tx = tx.clone();
        crate::bfd::board().watch(move || {
            !matches!(
                tx.try_send(Event::Bfd),
                Err(channel::TrySendError::Disconnected(_))
            )
        });
    }
    *status.lock() = insts.iter().map(|i| i.status.clone()).collect();
    // The static addresses and routes a reload drops leave the twins; the others are put
    // there (again).
    for a in reload::lacking(
        &carried.static_addresses,
        &conf.static_addresses,
        reload::same_address,
    ) {
        if let Some(l) = static_twin(&links, a) {
            twin_address(&l.twin, a, false);
        }
    }
    for r in reload::lacking(
        &carried.static_routes,
        &conf.static_routes,
        reload::same_route,
    ) {
        twin_route(&links, r, false);
    }
    for r in reload::lacking(&carried.static_rules, &conf.static_rules, reload::same_rule) {
        host_rule(r, false);
    }
    add_static_addresses(&conf, &links);
    for r in &conf.static_routes {
        twin_route(&links, r, true);
    }
    for r in &conf.static_rules {
        host_rule(r, true);
    }
    let pacing = pacers(&conf, &links);
    let mut ctl = Controller {
        insts,
        links: links.clone(),
        senders,
        garp,
        host: host.clone(),
        scripts: conf.scripts.clone(),
        script_ok,
        // init_file is written once, at start.
        file_values: conf
            .track_files
            .iter()
            .map(|f| crate::health::probe::read_track_file(&f.path, f.init))
            .collect(),
        track_files: conf.track_files.clone(),
        bfds: conf.bfd_instances.clone(),
        groups: conf.groups.iter().map(|g| g.notify.clone()).collect(),
        group_names: conf.groups.iter().map(|g| g.name.clone()).collect(),
        group_alerts: conf.groups.iter().map(|g| g.smtp_alert).collect(),
        children: std::mem::take(&mut carried.children),
        status: status.clone(),
        links_up: Vec::new(),
        static_routes: conf.static_routes.clone(),
        static_rules: conf.static_rules.clone(),
        static_addresses: conf.static_addresses.clone(),
        process_status: {
            let procs = if conf.processes.is_empty() {
                Vec::new()
            } else {
                super::process::running()
            };
            let counts = super::process::counts(&conf.processes, &procs);
            conf.processes
                .iter()
                .zip(counts)
                .map(|(t, n)| ProcessStatus::at_start(t, n))
                .collect()
        },
        processes: conf.processes.clone(),
        fifos: fifos.clone(),
        fifo_states_on_reload: conf.fifo_states_on_reload,
        hold_until: (!carried.reload && !conf.startup_delay.is_zero())
            .then(|| Instant::now() + conf.startup_delay),
        log_unknown_vrids: conf.log_unknown_vrids,
        pacers: pacing.0,
        pacer_of: pacing.1,
        twin_addrs: twin_addresses(&links),
        twin_routes: twin_routes(&links, &route_links(&conf, &links)),
        host_rules: host_rule_preferences(!conf.static_rules.is_empty()),
        route_links: route_links(&conf, &links),
        link_delays: link_delays(&conf, &links),
        link_debounce: vec![Debounce::default(); links.len()],
        kernel_links: kernel_links(&conf, &links),
    };
    let thread = std::thread::Builder::new()
        .name("rvs-vrrp".into())
        .spawn(move || ctl.run(rx))
        .map_err(|e| e.to_string())?;
    Ok(VrrpRuntime {
        events: tx,
        stop,
        thread: Some(thread),
        receivers,
        status,
        conf,
        links,
        host,
        fifos,
        promoted,
    })
}

/// The IPv4 addresses an instance's adverts go to: its unicast peers, or its group.
fn ipv4_targets(conf: &Instance) -> Vec<Ipv4Addr> {
    let all: Vec<IpAddr> = if conf.unicast_peers.is_empty() {
        vec![conf.group()]
    } else {
        conf.unicast_peers.clone()
    };
    all.into_iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
        .collect()
}

const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The gratuitous ARP bursts (when, how many each) an instance sends on hearing a lower
/// priority as MASTER: `garp_lower_prio_repeat` now and again after
/// `garp_lower_prio_delay`; none with a repeat of 0.
fn lower_prio_bursts(conf: &Instance, now: Instant) -> Vec<(Instant, u32)> {
    let (count, delay) = (conf.garp_lower_prio_repeat, conf.garp_lower_prio_delay);
    match (count, delay.is_zero()) {
        (0, _) => Vec::new(),
        (_, true) => vec![(now, count)],
        _ => vec![(now, count), (now + delay, count)],
    }
}

struct Controller {
    insts: Vec<Inst>,
    links: Vec<Link>,
    senders: Vec<Socket>,
    garp: Vec<Option<PacketSocket>>,
    host: Arc<dyn Host>,
    scripts: Vec<TrackScript>,
    script_ok: Vec<bool>,
    track_files: Vec<crate::keepalived::TrackFile>,
    bfds: Vec<crate::bfd::BfdInstance>,
    /// Each track file's number as last read (None: out of range).
    file_values: Vec<Option<i64>>,
    groups: Vec<Notify>,
    group_names: Vec<String>,
    /// Each sync group's own `smtp_alert`.
    group_alerts: Vec<Option<bool>>,
    children: Vec<Child>,
    status: Arc<Mutex<Vec<InstanceStatus>>>,
    links_up: Vec<bool>,
    static_routes: Vec<VrrpRoute>,
    static_rules: Vec<VrrpRule>,
    static_addresses: Vec<VirtualAddress>,
    processes: Vec<TrackProcess>,
    process_status: Vec<ProcessStatus>,
    /// notify_fifo and vrrp_notify_fifo.
    fifos: Arc<Fifos>,
    /// fifo_write_vrrp_states_on_reload.
    fifo_states_on_reload: bool,
    /// vrrp_startup_delay's end (at start-up only).
    hold_until: Option<Instant>,
    /// log_unknown_vrids.
    log_unknown_vrids: bool,
    /// Gratuitous ARP and NA pacing (vrrp_garp_interval, garp_group), and each link's pacer.
    pacers: Vec<Pacer>,
    pacer_of: Vec<usize>,
    /// Each link's twin's addresses and prefix lengths at the last look (None: no such
    /// interface).
    twin_addrs: Vec<Option<Vec<(IpAddr, u8)>>>,
    /// The routes (table, prefix, length) through each link's twin at the last look, for
    /// the links that carry a configured route (`route_links`).
    twin_routes: Vec<Vec<TwinRoute>>,
    /// The host's rules of keepalived's protocol at the last look (family, preference),
    /// looked at while there are static rules.
    host_rules: Vec<(bool, u32)>,
    route_links: Vec<bool>,
    /// Each link's interface_up_down_delays (down, up) and its debouncing.
    link_delays: Vec<(Duration, Duration)>,
    link_debounce: Vec<Debounce>,
    /// The kernel interfaces (not data ports) the instances track.
    kernel_links: Vec<KernelLink>,
}

/// A kernel interface (no data port) the instances track (`track_interface`, an address's
/// or a route's `dev`): looked at every 0.5 s, a change counted once it has lasted its
/// interface_up_down_delays.
#[derive(Debug, Clone)]
struct KernelLink {
    name: String,
    delays: (Duration, Duration),
    up: bool,
    debounce: Debounce,
}

/// The interfaces an instance's addresses and virtual routes name with `dev` (not
/// `no_track`): keepalived tracks them too.
fn tracked_devs(i: &Instance) -> impl Iterator<Item = &str> {
    i.all_addresses()
        .filter(|a| !a.no_track)
        .filter_map(|a| a.dev.as_deref())
        .chain(
            i.routes
                .iter()
                .filter(|r| !r.no_track)
                .filter_map(|r| r.dev.as_deref()),
        )
}

fn kernel_links(conf: &VrrpConf, links: &[Link]) -> Vec<KernelLink> {
    let mut names: Vec<&str> = conf
        .instances
        .iter()
        .flat_map(|i| {
            i.track_interfaces
                .iter()
                .map(|t| t.name.as_str())
                .chain(tracked_devs(i))
        })
        .filter(|n| !links.iter().any(|l| l.is_named(n)))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|n| KernelLink {
            name: n.to_string(),
            delays: conf
                .link_delays
                .iter()
                .rev()
                .find(|d| d.interface == n)
                .map_or((Duration::ZERO, Duration::ZERO), |d| (d.down, d.up)),
            up: kernel_link_up(n),
            debounce: Debounce::default(),
        })
        .collect()
}

/// A link's state as interface_up_down_delays lets it count (keepalived's
/// update_interface_flags): a change counts once it has lasted its delay (down or up), a
/// return before that cancels it; the first up counts at once.
#[derive(Debug, Clone, Copy, Default)]
struct Debounce {
    /// Since when the link has differed from the state that counts.
    pending: Option<Instant>,
    seen_up: bool,
}

impl Debounce {
    /// The state that counts now, from the one that counted (`counted`) and the link's
    /// (`raw`).
    fn step(
        &mut self,
        counted: bool,
        raw: bool,
        (down, up): (Duration, Duration),
        now: Instant,
    ) -> bool {
        if raw == counted {
            self.pending = None;
            self.seen_up |= raw;
            return counted;
        }
        let delay = if raw { up } else { down };
        if delay.is_zero() || (raw && !self.seen_up) {
            self.pending = None;
            self.seen_up |= raw;
            return raw;
        }
        let since = *self.pending.get_or_insert(now);
        if now.duration_since(since) >= delay {
            self.pending = None;
            self.seen_up |= raw;
            raw
        } else {
            counted
        }
    }
}

/// Each link's interface_up_down_delays (by its port's or twin's name), each kept below
/// `down_timer_adverts - 1` advert intervals of the instances on it, as keepalived's
/// check_debounce_timers keeps them (else a BACKUP would take over before this MASTER
/// faults), said with a warning.
fn link_delays(conf: &VrrpConf, links: &[Link]) -> Vec<(Duration, Duration)> {
    for d in conf.link_delays.iter().filter(|d| {
        !links.iter().any(|l| l.is_named(&d.interface))
            && !std::path::Path::new("/sys/class/net")
                .join(&d.interface)
                .exists()
    }) {
        log(
            Level::Warning,
            "vrrp",
            None,
            format_args!(
                "{}: interface_up_down_delays {}: no data port with a host twin or kernel interface of that name; ignored",
                d.at, d.interface
            ),
        );
    }
    links
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let Some(d) = conf.link_delays.iter().rev().find(|d| l.is_named(&d.interface)) else {
                return (Duration::ZERO, Duration::ZERO);
            };
            let mut delays = (d.down, d.up);
            for i in conf.instances.iter().filter(|i| link_for(i, links) == Ok(k)) {
                if i.down_timer_adverts <= 1 {
                    continue;
                }
                let advert = Duration::from_millis(u64::from(i.advert_cs) * 10);
                let limit = advert * u32::from(i.down_timer_adverts - 1);
                let under = limit.saturating_sub(advert / 256);
                if delays.0 >= limit || delays.1 >= limit {
                    log(
                        Level::Warning,
                        "vrrp",
                        None,
                        format_args!(
                            "{}: interface {} debounce timer(s) not less than {} * advert_int of vrrp_instance {} - reduced to {:.3} s (as keepalived)",
                            d.at,
                            d.interface,
                            i.down_timer_adverts - 1,
                            i.name,
                            under.as_secs_f64()
                        ),
                    );
                    delays = (delays.0.min(under), delays.1.min(under));
                }
            }
            delays
        })
        .collect()
}

/// The link address `a` is on: its `dev`'s, else the instance's (`own`).
fn link_of(links: &[Link], own: usize, a: &VirtualAddress) -> usize {
    a.dev
        .as_deref()
        .and_then(|d| links.iter().position(|l| l.is_named(d)))
        .unwrap_or(own)
}

/// garp_extra_if in effect for an instance on `link`: as keepalived, only with `all`
/// (without it only VMAC interfaces count, and rvs makes none) and only if some address
/// is on another link.
fn extra_garp_interval(i: &Instance, links: &[Link], link: usize) -> Option<Duration> {
    let (every, all) = i.garp_extra_if?;
    let elsewhere = i.all_addresses().any(|a| link_of(links, link, a) != link);
    (all && elsewhere).then_some(every)
}

/// garp_extra_if's addresses: the first on each link other than the instance's (its own
/// too with use_vmac and vmac_xmit_base, whose adverts do not carry the virtual MAC).
fn extra_garp_addresses(conf: &Instance, links: &[Link], own: usize) -> Vec<VirtualAddress> {
    let own_too = conf.vmac.is_some() && conf.vmac_xmit_base;
    let mut done: Vec<usize> = Vec::new();
    let mut firsts = Vec::new();
    for a in conf.all_addresses() {
        let link = link_of(links, own, a);
        if (link == own && !own_too) || done.contains(&link) {
            continue;
        }
        done.push(link);
        firsts.push(a.clone());
    }
    firsts
}

/// The addresses each link's twin holds now (None: no such interface, or unreadable).
fn twin_addresses(links: &[Link]) -> Vec<Option<Vec<(IpAddr, u8)>>> {
    let all = rvs_rawsock::interface_addresses().unwrap_or_default();
    links
        .iter()
        .map(|l| {
            all.iter()
                .find(|(n, _)| *n == l.twin)
                .map(|(_, a)| a.clone())
        })
        .collect()
}

/// A route on a twin as the removed-by-hand watch knows it: table, prefix, length.
type TwinRoute = (u32, IpAddr, u8);

/// Whether a VRRP route goes on its twin ([`twin_route`]): all but the main table's
/// default route.
fn on_twin(r: &VrrpRoute) -> bool {
    r.len > 0 || r.table != rvs_core::engine::MAIN_TABLE
}

/// The routes of every table through the twins of the links that carry a configured route
/// (`watched`; the others get none): `ip route show table all dev TWIN`, which the kernel
/// filters, so a host with large tables costs little; `-N` gives tables by number (no
/// rt_tables lookup each look).
fn twin_routes(links: &[Link], watched: &[bool]) -> Vec<Vec<TwinRoute>> {
    links
        .iter()
        .zip(watched)
        .map(|(l, watched)| {
            if !watched {
                return Vec::new();
            }
            ["-4", "-6"]
                .iter()
                .filter_map(|family| {
                    let out = Command::new("ip")
                        .args([
                            *family, "-N", "-o", "route", "show", "table", "all", "dev", &l.twin,
                        ])
                        .stderr(std::process::Stdio::null())
                        .output()
                        .ok()?;
                    out.status.success().then(|| {
                        (
                            *family == "-6",
                            String::from_utf8_lossy(&out.stdout).into_owned(),
                        )
                    })
                })
                .flat_map(|(v6, text)| {
                    text.lines()
                        .filter_map(|line| {
                            let mut words = line.split_whitespace();
                            let dest = words.next()?;
                            // Another table than main is named ("table 100"; local's and
                            // the types' lines start with no address and are passed over).
                            let table = words
                                .skip_while(|w| *w != "table")
                                .nth(1)
                                .map_or(Some(rvs_core::engine::MAIN_TABLE), |t| t.parse().ok())?;
                            let (addr, len) = match (dest, v6) {
                                ("default", false) => ("0.0.0.0", "0"),
                                ("default", true) => ("::", "0"),
                                (d, _) => d.split_once('/').unwrap_or((d, "")),
                            };
                            let addr: IpAddr = addr.parse().ok()?;
                            let full = if addr.is_ipv4() { 32 } else { 128 };
                            Some((table, addr, len.parse().unwrap_or(full)))
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect()
}

/// Which links carry a configured route (virtual_routes of an instance, static_routes).
fn route_links(conf: &VrrpConf, links: &[Link]) -> Vec<bool> {
    let routes: Vec<&VrrpRoute> = conf
        .instances
        .iter()
        .flat_map(|i| &i.routes)
        .chain(&conf.static_routes)
        .collect();
    links
        .iter()
        .map(|l| {
            routes
                .iter()
                .any(|r| on_twin(r) && r.port.map(usize::from) == Some(l.port))
        })
        .collect()
}

/// Whether `addr` (with its prefix length) was on `link`'s twin at the last look and is
/// not now (the twin still there): someone removed it.
fn removed_by_hand(
    before: &[Option<Vec<(IpAddr, u8)>>],
    now: &[Option<Vec<(IpAddr, u8)>>],
    link: usize,
    addr: (IpAddr, u8),
) -> bool {
    let on = |v: &[Option<Vec<(IpAddr, u8)>>]| {
        v.get(link)
            .and_then(Option::as_ref)
            .map(|a| a.contains(&addr))
    };
    on(before) == Some(true) && on(now) == Some(false)
}

/// Each link's pacer: one per garp_group its interface is in (shared), else one of its own
/// with global_defs' intervals.
fn pacers(conf: &VrrpConf, links: &[Link]) -> (Vec<Pacer>, Vec<usize>) {
    let mut pacers = Vec::new();
    let mut of_group: Vec<(usize, usize)> = Vec::new();
    let pacer_of = links
        .iter()
        .map(|l| {
            let (group, garp, gna) = conf.pacing_of(|n| l.is_named(n));
            match group.and_then(|g| of_group.iter().find(|(x, _)| *x == g)) {
                Some((_, p)) => *p,
                None => {
                    pacers.push(Pacer::new(garp, gna));
                    if let Some(g) = group {
                        of_group.push((g, pacers.len() - 1));
                    }
                    pacers.len() - 1
                }
            }
        })
        .collect();
    (pacers, pacer_of)
}

impl Controller {
    fn run(&mut self, rx: Receiver<Event>) {
        let now = Instant::now();
        self.links_up = (0..self.links.len())
            .map(|l| self.host.link_up(self.links[l].port))
            .collect();
        let mut resumed = Vec::with_capacity(self.insts.len());
        for i in 0..self.insts.len() {
            let (prio, fault, faults) = self.tracking(i);
            let inst = &mut self.insts[i];
            inst.machine.set_priority(prio);
            inst.status.faults = faults;
            let carried = inst.resumed.take();
            resumed.push(match &carried {
                Some((s @ (State::Master | State::Backup), _)) => Some(*s),
                _ => None,
            });
            if let Some(h) = self.hold_until {
                inst.machine.hold_until(h);
            }
            let actions = match carried {
                // Carried over a reload: on in its state (tracking may still fault it).
                Some((state @ (State::Master | State::Backup), before)) => {
                    inst.machine.resume(now, state, inst.status.master);
                    if state == State::Master {
                        self.resume_master(i, &before, now);
                    }
                    self.insts[i].machine.set_fault(now, fault)
                }
                _ => inst.machine.start(now, fault),
            };
            self.act(i, actions, now);
        }
        if self.fifo_states_on_reload {
            self.write_states(&resumed);
        }
        self.publish_floating();
        self.publish_status();
        let mut last_link_check = now;
        loop {
            let now = Instant::now();
            let next = self
                .insts
                .iter()
                .filter_map(|i| i.machine.deadline())
                .chain(
                    self.insts
                        .iter()
                        .flat_map(|i| i.garp_at.iter().map(|(t, _)| *t)),
                )
                .chain(self.insts.iter().filter_map(|i| i.garp_refresh_at))
                .chain(self.insts.iter().filter_map(|i| i.extra_garp_at))
                .chain(self.pacers.iter().filter_map(Pacer::deadline))
                .chain(std::iter::once(
                    last_link_check + Duration::from_millis(500),
                ))
                .min()
                .unwrap_or(now + Duration::from_millis(500));
            let wait = next.saturating_duration_since(now);
            match rx.recv_timeout(wait) {
                Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Event::Handover { keep, reply }) => {
                    let _ = reply.send(self.hand_over(&keep));
                    return;
                }
                Ok(Event::Packet { link, bytes }) => self.packet(link, &bytes),
                Ok(Event::Frame { link, bytes }) => {
                    if let Some(a) = ipv6_vrrp(&bytes) {
                        self.advert_in(link, a.hop_limit, &a.src, &a.dst, a.body, None);
                    }
                }
                Ok(Event::Script { index, ok }) => {
                    if let Some(s) = self.script_ok.get_mut(index) {
                        *s = ok;
                    }
                    self.retrack(Instant::now());
                }
                Ok(Event::Bfd) => self.retrack(Instant::now()),
                Ok(Event::Stats { clear, reply }) => {
                    self.publish_status();
                    let _ = reply.send(self.insts.iter().map(|i| i.status.clone()).collect());
                    if clear {
                        for inst in &mut self.insts {
                            let status = std::mem::take(&mut inst.status);
                            inst.status = InstanceStatus::default().counters_into(status);
                        }
                        self.publish_status();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= last_link_check + Duration::from_millis(500) {
                last_link_check = now;
                let up: Vec<bool> = (0..self.links.len())
                    .map(|l| {
                        let raw = self.host.link_up(self.links[l].port);
                        let counted = self.links_up.get(l).copied().unwrap_or(raw);
                        self.link_debounce[l].step(counted, raw, self.link_delays[l], now)
                    })
                    .collect();
                let values: Vec<Option<i64>> = self
                    .track_files
                    .iter()
                    .map(|f| crate::health::probe::read_track_file(&f.path, None))
                    .collect();
                let mut processes_moved = false;
                if !self.processes.is_empty() {
                    let counts =
                        super::process::counts(&self.processes, &super::process::running());
                    for ((status, t), n) in self
                        .process_status
                        .iter_mut()
                        .zip(&self.processes)
                        .zip(counts)
                    {
                        processes_moved |= status.update(t, n, now);
                    }
                }
                let sources_before: Vec<bool> = (0..self.insts.len())
                    .map(|i| self.source_missing(i).is_some())
                    .collect();
                let before = std::mem::replace(&mut self.twin_addrs, twin_addresses(&self.links));
                let routes_now = twin_routes(&self.links, &self.route_links);
                let routes_before = std::mem::replace(&mut self.twin_routes, routes_now);
                let sources_moved = (0..self.insts.len())
                    .any(|i| self.source_missing(i).is_some() != sources_before[i]);
                let mut kernel_moved = false;
                for k in &mut self.kernel_links {
                    let raw = kernel_link_up(&k.name);
                    let counted = k.debounce.step(k.up, raw, k.delays, now);
                    kernel_moved |= counted != k.up;
                    k.up = counted;
                }
                if up != self.links_up
                    || kernel_moved
                    || values != self.file_values
                    || processes_moved
                    || sources_moved
                {
                    self.links_up = up;
                    self.file_values = values;
                    self.retrack(now);
                }
                self.removed_by_hand(&before, &routes_before, now);
            }
            for i in 0..self.insts.len() {
                let actions = self.insts[i].machine.tick(now);
                self.act(i, actions, now);
                self.due_garps(i, now);
            }
            self.paced_garps(now);
            self.children
                .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            self.publish_status();
        }
        for i in 0..self.insts.len() {
            let actions = self.insts[i].machine.stop();
            self.act(i, actions, Instant::now());
        }
        // The host's rules outlive the twins (routes leave with them): keepalived takes its
        // static rules out at its end.
        for r in &self.static_rules {
            host_rule(r, false);
        }
        self.publish_status();
        // Notify scripts get a moment to finish; then they are left to init.
        let until = Instant::now() + Duration::from_secs(2);
        while !self.children.is_empty() && Instant::now() < until {
            self.children
                .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Priority and fault of instance `i` from its scripts and interfaces.
    fn tracking(&self, i: usize) -> (u8, bool, Vec<String>) {
        let inst = &self.insts[i];
        let own_up = self.links_up.get(inst.link).copied().unwrap_or(true);
        let link_up = |name: &str| {
            self.links
                .iter()
                .position(|l| l.is_named(name))
                .map(|l| self.links_up.get(l).copied().unwrap_or(true))
                .unwrap_or_else(|| {
                    self.kernel_links
                        .iter()
                        .find(|k| k.name == name)
                        .map_or_else(|| kernel_link_up(name), |k| k.up)
                })
        };
        let process_up: Vec<bool> = self.process_status.iter().map(|p| p.up).collect();
        let bfd_up = |name: &str| crate::bfd::board().is_up(name, crate::bfd::Reader::Vrrp);
        let files = TrackedFiles {
            defs: &self.track_files,
            values: &self.file_values,
            processes: &self.processes,
            process_up: &process_up,
            bfds: &self.bfds,
            bfd_up: &bfd_up,
        };
        let (prio, mut faults) = tracked_priority(
            &inst.conf,
            &self.scripts,
            &self.script_ok,
            &files,
            own_up,
            link_up,
        );
        faults.extend(inst.conf.config_fault.clone());
        faults.extend(self.source_missing(i));
        (prio, !faults.is_empty(), faults)
    }

    /// Why instance `i` cannot advertise: its source address is not on its twin. The
    /// port's own address is watched (keepalived's instance goes down when its interface
    /// loses it), a configured one with `track_src_ip` only.
    fn source_missing(&self, i: usize) -> Option<String> {
        let inst = &self.insts[i];
        let watched =
            inst.conf.track_src || (inst.conf.unicast_src.is_none() && inst.src.is_ipv4());
        let held = self.twin_addrs.get(inst.link)?.as_ref()?;
        (watched && !held.iter().any(|(a, _)| *a == inst.src)).then(|| {
            format!(
                "source address {} not on {}",
                inst.src, self.links[inst.link].twin
            )
        })
    }

    /// keepalived's netlink reflector: a MASTER whose address (not `no_track`) was
    /// removed from its twin leaves (priority 0) with the other MASTERs of its sync group
    /// and takes over again after the skew unless a peer does (either puts it back); a
    /// static address removed is put back.
    fn removed_by_hand(
        &mut self,
        before: &[Option<Vec<(IpAddr, u8)>>],
        routes_before: &[Vec<TwinRoute>],
        now: Instant,
    ) {
        // A route's link: the one of its data port (routes on no twin are not watched).
        let route_link = |r: &VrrpRoute| {
            self.links
                .iter()
                .position(|l| Some(l.port) == r.port.map(usize::from))
        };
        let route_gone = |r: &VrrpRoute| {
            let key = (r.table, r.prefix, r.len);
            !r.no_track
                && on_twin(r)
                && route_link(r).is_some_and(|k| {
                    routes_before[k].contains(&key) && !self.twin_routes[k].contains(&key)
                })
        };
        let mut leaving: Vec<usize> = Vec::new();
        for (i, inst) in self.insts.iter().enumerate() {
            if inst.machine.state != State::Master {
                continue;
            }
            let link_of = |a: &VirtualAddress| link_of(&self.links, inst.link, a);
            let address = inst.conf.all_addresses().find(|a| {
                !a.no_track
                    && removed_by_hand(before, &self.twin_addrs, link_of(a), (a.addr, a.len))
            });
            let gone = match address {
                Some(a) => Some(format!(
                    "{} was removed from {}",
                    a.addr,
                    self.links[link_of(a)].twin
                )),
                None => inst.conf.routes.iter().find(|r| route_gone(r)).map(|r| {
                    let twin = route_link(r).map_or("", |k| self.links[k].twin.as_str());
                    format!(
                        "its route {} was removed from {twin}",
                        reload::route_name(r)
                    )
                }),
            };
            if let Some(what) = gone {
                log(
                    Level::Warning,
                    "vrrp",
                    None,
                    format_args!(
                        "vrrp_instance {}: {what} by hand: it leaves MASTER (priority 0) and takes over again after its skew unless a peer does (as keepalived)",
                        inst.conf.name
                    ),
                );
                let group = inst.group;
                leaving.extend(self.insts.iter().enumerate().filter_map(|(o, m)| {
                    let member = o == i || (group.is_some() && m.group == group);
                    (member && m.machine.state == State::Master).then_some(o)
                }));
            }
        }
        leaving.sort_unstable();
        leaving.dedup();
        let static_gone: Vec<VrrpRoute> = self
            .static_routes
            .iter()
            .filter(|r| route_gone(r))
            .cloned()
            .collect();
        let steps: Vec<(usize, Vec<Action>)> = leaving
            .into_iter()
            .map(|i| (i, self.insts[i].machine.step_down(now)))
            .collect();
        for (i, actions) in steps {
            self.act(i, actions, now);
        }
        for a in &self.static_addresses {
            let Some(link) = static_twin(&self.links, a)
                .and_then(|l| self.links.iter().position(|k| k.twin == l.twin))
            else {
                continue;
            };
            if !a.no_track && removed_by_hand(before, &self.twin_addrs, link, (a.addr, a.len)) {
                log(
                    Level::Warning,
                    "vrrp",
                    None,
                    format_args!(
                        "static_ipaddress {}: removed from {} by hand; restored (as keepalived)",
                        a.addr, self.links[link].twin
                    ),
                );
                twin_address(&self.links[link].twin, a, true);
            }
        }
        for r in &static_gone {
            log(
                Level::Warning,
                "vrrp",
                None,
                format_args!(
                    "static_routes {}: removed from the twin by hand; restored (as keepalived)",
                    reload::route_name(r)
                ),
            );
            twin_route(&self.links, r, true);
        }
        // A static rule taken out of the host's rules is put back, as keepalived's
        // "Restoring deleted static rule".
        let rules_now = host_rule_preferences(!self.static_rules.is_empty());
        let rules_before = std::mem::replace(&mut self.host_rules, rules_now);
        for r in &self.static_rules {
            let key = (r.rule.ipv6, r.rule.priority);
            if rules_before.contains(&key) && !self.host_rules.contains(&key) {
                log(
                    Level::Warning,
                    "vrrp",
                    None,
                    format_args!(
                        "static_rules {r}: removed from the host's rules by hand; restored (as keepalived)"
                    ),
                );
                host_rule(r, true);
            }
        }
    }

    fn retrack(&mut self, now: Instant) {
        let tracked: Vec<(u8, bool, Vec<String>)> =
            (0..self.insts.len()).map(|i| self.tracking(i)).collect();
        // A sync group is in fault while any member is.
        let faults: Vec<bool> = tracked.iter().map(|t| t.1).collect();
        for (i, (prio, own_fault, why)) in tracked.into_iter().enumerate() {
            let group_fault = self.insts[i].group.is_some_and(|g| {
                self.insts
                    .iter()
                    .zip(&faults)
                    .any(|(o, f)| o.group == Some(g) && *f)
            });
            let inst = &mut self.insts[i];
            if prio != inst.machine.priority && inst.conf.notify_priority_changes == Some(true) {
                let event = if inst.machine.state == State::Master {
                    "MASTER_PRIORITY"
                } else {
                    "BACKUP_PRIORITY"
                };
                self.fifos
                    .write(&fifo::line(false, &inst.conf.name, event, prio));
            }
            inst.machine.set_priority(prio);
            inst.status.faults = why;
            let actions = inst.machine.set_fault(now, own_fault || group_fault);
            self.act(i, actions, now);
        }
    }

    fn packet(&mut self, link: usize, bytes: &[u8]) {
        // The IPv4 header first (a raw IPv4 socket hands it over).
        let Some(&vihl) = bytes.first() else { return };
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < 20 || bytes.len() < ihl + vrrp::HEADER_LEN {
            return;
        }
        let ttl = bytes[8];
        let proto = bytes[9];
        let src: [u8; 4] = bytes[12..16].try_into().unwrap_or([0; 4]);
        let dst: [u8; 4] = bytes[16..20].try_into().unwrap_or([0; 4]);
        match proto {
            vrrp::PROTO => self.advert_in(link, ttl, &src, &dst, &bytes[ihl..], None),
            ah::PROTO => {
                let at = ihl + ah::HEADER_LEN;
                if bytes.get(ihl) == Some(&vrrp::PROTO) && bytes.len() > at {
                    self.advert_in(link, ttl, &src, &dst, &bytes[at..], Some(bytes));
                }
            }
            _ => {}
        }
    }

    /// An advert heard on `link` from `src` to `dst` (4 or 16 bytes each: its family)
    /// with TTL or hop limit `ttl`; `ah`: the whole IPv4 packet when it came in AH.
    fn advert_in(
        &mut self,
        link: usize,
        ttl: u8,
        src: &[u8],
        dst: &[u8],
        body: &[u8],
        ah: Option<&[u8]>,
    ) {
        // The instance by the VRID, as keepalived finds it before any other check.
        let Some(&vrid) = body.get(1) else {
            return;
        };
        let from = match (<[u8; 4]>::try_from(src), <[u8; 16]>::try_from(src)) {
            (Ok(v4), _) => IpAddr::from(v4),
            (_, Ok(v6)) => IpAddr::from(v6),
            _ => return,
        };
        let Some(i) = self.insts.iter().position(|x| {
            x.link == link && x.conf.vrid == vrid && x.src.is_ipv6() == from.is_ipv6()
        }) else {
            if self.log_unknown_vrids {
                log(
                    Level::Info,
                    "vrrp",
                    Some(&format!("unknown vrid {vrid}")),
                    format_args!(
                        "Unknown VRID({vrid}) received on interface({}) from {from}. ignoring...",
                        self.links[link].twin
                    ),
                );
            }
            return;
        };
        let inst = &mut self.insts[i];
        if from == inst.src {
            return;
        }
        let heard = vet::Heard {
            from,
            ttl,
            src,
            dst,
            body,
            ah,
        };
        let mut cont = vet::Continuity {
            old_checksum: inst.old_checksum,
            ah_sequence: inst.ah_sequence,
        };
        let checked = vet::vet(&inst.conf, &mut cont, &heard);
        (inst.old_checksum, inst.ah_sequence) = (cont.old_checksum, cont.ah_sequence);
        let st = &mut inst.status;
        let p = match checked {
            Ok(p) => p,
            Err(why) => {
                st.refused(why);
                return;
            }
        };
        st.adverts_received += 1;
        // As keepalived (and RFC 3768's "MAY verify"): an advert listing other addresses
        // than ours is dropped, in any state; with skip_check_adv_addr a BACKUP trusts the
        // master it heard last.
        let skip = inst.conf.skip_check_adv_addr
            && inst.machine.state == State::Backup
            && inst.machine.master_seen.is_some_and(|(m, _)| m == from);
        let ours = &inst.advertised;
        let theirs: Vec<&[u8]> = (0..p.addr_count()).map(|k| p.addr(k)).collect();
        let mismatch =
            theirs.len() != ours.len() || ours.iter().any(|a| !theirs.contains(&a.as_slice()));
        if mismatch && !skip {
            st.address_mismatch += 1;
            return;
        }
        if p.priority() == 0 {
            st.priority_zero_received += 1;
        }
        let repr = VrrpRepr::parse(&p);
        let now = Instant::now();
        let actions = inst
            .machine
            .advert(now, from, repr.priority, repr.interval_cs);
        self.act(i, actions, now);
    }

    /// Carries out a machine's actions; a sync group's other members follow a change to
    /// MASTER or BACKUP.
    fn act(&mut self, i: usize, actions: Vec<Action>, now: Instant) {
        for a in actions {
            match a {
                Action::Advertise(prio) => self.advertise(i, prio),
                Action::HeardLower => self.heard_lower(i, now),
                Action::Enter(state) => {
                    self.entered(i, state, now);
                    if let (Some(g), State::Master | State::Backup) = (self.insts[i].group, state) {
                        for o in 0..self.insts.len() {
                            if o != i && self.insts[o].group == Some(g) {
                                let follow = self.insts[o].machine.follow(now, state);
                                self.act(o, follow, now);
                            }
                        }
                    }
                }
            }
        }
    }

    /// keepalived's answer to a lower priority heard as MASTER: gratuitous ARPs now and
    /// after a delay, for this instance and the other members of its sync group.
    fn heard_lower(&mut self, i: usize, now: Instant) {
        let inst = &self.insts[i];
        let prio = inst.machine.priority;
        self.fifos.write(&fifo::line(
            false,
            &inst.conf.name,
            "MASTER_RX_LOWER_PRI",
            prio,
        ));
        if let Some(s) = &self.insts[i].conf.notify.master_rx_lower_pri {
            if let Some(c) = spawn(s, &[]) {
                self.children.push(c);
            }
        }
        let group = self.insts[i].group;
        for (o, inst) in self.insts.iter_mut().enumerate() {
            if o == i || (group.is_some() && inst.group == group) {
                inst.garp_at.extend(lower_prio_bursts(&inst.conf, now));
            }
        }
    }

    fn advertise(&mut self, i: usize, priority: u8) {
        // Without its source on the twin the kernel sends nothing from it: the priority 0
        // of an instance going to FAULT for that leaves as a whole frame (keepalived
        // writes its own IP header).
        let unbound = self.source_missing(i).is_some();
        let inst = &mut self.insts[i];
        let refs: Vec<&[u8]> = inst.advertised.iter().map(Vec::as_slice).collect();
        let repr = VrrpRepr {
            version: inst.conf.version,
            vrid: inst.conf.vrid,
            priority,
            interval_cs: inst.conf.advert_cs,
            auth_pass: inst.conf.auth_pass.as_deref().map(vrrp::pass_bytes),
        };
        let src = match inst.src {
            IpAddr::V4(v4) if inst.ah_socket.is_some() => {
                self.advertise_ah(i, v4, &repr);
                return;
            }
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) if inst.unicast6.is_some() => {
                let mut buf = [0u8; 1500];
                for peer in &inst.conf.unicast_peers {
                    let (IpAddr::V6(to), Some((sock, scope))) = (peer, &inst.unicast6) else {
                        continue;
                    };
                    let n = repr.emit(&mut buf, &refs, &v6.octets(), &to.octets());
                    let to = SocketAddr::V6(scoped(*to, *scope));
                    if n > 0 && sock.send_to(&buf[..n], &to.into()).is_ok() {
                        inst.status.advert_sent(priority);
                    }
                }
                return;
            }
            IpAddr::V6(v6) => {
                let (Some(sock), Some(l)) = (&self.garp[inst.link], self.links.get(inst.link))
                else {
                    return;
                };
                let mut frame = [0u8; 1514];
                let IpAddr::V6(group) = inst.conf.group() else {
                    return;
                };
                let n = advert_frame_v6(
                    &mut frame,
                    advert_mac(&inst.conf, l),
                    v6,
                    group,
                    &repr,
                    &refs,
                );
                if n > 0 && sock.send(&frame[..n]).is_ok() {
                    inst.status.advert_sent(priority);
                }
                return;
            }
        };
        let from_vmac = inst.conf.vmac.is_some() && !inst.conf.vmac_xmit_base;
        if inst.conf.unicast_peers.is_empty() && (from_vmac || unbound) {
            let (Some(sock), Some(l)) = (&self.garp[inst.link], self.links.get(inst.link)) else {
                return;
            };
            let mut frame = [0u8; 1514];
            let IpAddr::V4(group) = inst.conf.group() else {
                return;
            };
            inst.ip_id = inst.ip_id.wrapping_add(1).max(1);
            let mac = advert_mac(&inst.conf, l);
            let n = advert_frame_v4(&mut frame, mac, src, group, inst.ip_id, &repr, &refs);
            if n > 0 && sock.send(&frame[..n]).is_ok() {
                inst.status.advert_sent(priority);
            }
            return;
        }
        let Some(sock) = inst.sender.and_then(|k| self.senders.get(k)) else {
            return;
        };
        let targets = ipv4_targets(&inst.conf);
        let mut buf = [0u8; 1500];
        // The socket is shared by a link's instances of one source: a unicast advert takes
        // its instance's unicast_ttl.
        if !inst.conf.unicast_peers.is_empty() {
            let _ = sock.set_ttl(u32::from(inst.conf.unicast_ttl.unwrap_or(255)));
        }
        // keepalived 1.3.6's unicast checksum: the pseudo-header names the group.
        let old = inst.old_checksum && !inst.conf.unicast_peers.is_empty();
        for dst in targets {
            let summed = if old {
                inst.conf.old_checksum_group
            } else {
                dst
            };
            let n = repr.emit(&mut buf, &refs, &src.octets(), &summed.octets());
            let to = SocketAddr::new(IpAddr::V4(dst), 0);
            if n > 0 && sock.send_to(&buf[..n], &to.into()).is_ok() {
                inst.status.advert_sent(priority);
            }
        }
    }

    /// An AH advert (version 2, authentication type 2) to the group or each unicast peer:
    /// the next IP id and sequence number (which stops at the last, as keepalived's), the
    /// ICV keyed with `auth_pass`.
    fn advertise_ah(&mut self, i: usize, src: Ipv4Addr, repr: &VrrpRepr) {
        let inst = &mut self.insts[i];
        // From the virtual router's MAC (use_vmac): whole frames on the link's socket.
        let framed = match (inst.conf.vmac, &self.garp[inst.link]) {
            (Some(vmac), Some(s))
                if !inst.conf.vmac_xmit_base && inst.conf.unicast_peers.is_empty() =>
            {
                Some((vmac, s))
            }
            _ => None,
        };
        let (Some(sock), Some(key)) = (&inst.ah_socket, inst.conf.auth_pass.as_deref()) else {
            return;
        };
        let key = vrrp::pass_bytes(key);
        let refs: Vec<&[u8]> = inst.advertised.iter().map(Vec::as_slice).collect();
        let mut msg = [0u8; 1024];
        let plain = VrrpRepr {
            auth_pass: None,
            ..*repr
        };
        let n = plain.emit(&mut msg, &refs, &src.octets(), &vrrp::GROUP_V4);
        if n == 0 {
            return;
        }
        ah::mark_ah(&mut msg[..n]);
        let unicast = !inst.conf.unicast_peers.is_empty();
        let targets = ipv4_targets(&inst.conf);
        let mut packet = [0u8; 1100];
        for dst in targets {
            inst.ip_id = inst.ip_id.wrapping_add(1).max(1);
            if inst.ah_sequence < ah::LAST_SEQUENCE {
                inst.ah_sequence += 1;
            }
            let len = ah::emit(
                &mut packet,
                src.octets(),
                dst.octets(),
                if unicast {
                    inst.conf.unicast_ttl.unwrap_or(255)
                } else {
                    255
                },
                inst.ip_id,
                inst.ah_sequence,
                &key,
                &msg[..n],
                unicast,
            );
            if let (Some((vmac, link_sock)), true) = (framed, len > 0) {
                let g = dst.octets();
                let mut frame = [0u8; 1114];
                rvs_wire::ethernet::emit_header(
                    &mut frame,
                    group_mac_v4(g),
                    vmac,
                    rvs_wire::EtherType::IPV4,
                );
                frame[14..14 + len].copy_from_slice(&packet[..len]);
                if link_sock.send(&frame[..14 + len]).is_ok() {
                    inst.status.advert_sent(repr.priority);
                }
                continue;
            }
            let to = SocketAddr::new(IpAddr::V4(dst), 0);
            if len > 0 && sock.send_to(&packet[..len], &to.into()).is_ok() {
                inst.status.advert_sent(repr.priority);
            }
        }
    }

    fn entered(&mut self, i: usize, state: State, now: Instant) {
        {
            let inst = &mut self.insts[i];
            if inst.status.state == State::Master.name() && state != State::Master {
                inst.status.released_master += 1;
            }
            inst.status.state = state.name().into();
            inst.status.since = Some(now);
            if state == State::Master {
                inst.status.became_master += 1;
                // One burst now, another after garp_master_delay (keepalived's default 5 s).
                let count = inst.conf.garp_master_repeat;
                inst.garp_at = vec![(now, count)];
                if !inst.conf.garp_master_delay.is_zero() {
                    inst.garp_at
                        .push((now + inst.conf.garp_master_delay, count));
                }
                inst.garp_refresh_at =
                    (!inst.conf.garp_refresh.is_zero()).then(|| now + inst.conf.garp_refresh);
                inst.extra_garp_at = inst.extra_garp.map(|every| now + every);
            } else {
                inst.garp_at.clear();
                self.pacers.iter_mut().for_each(|p| p.forget(i));
                inst.garp_refresh_at = None;
                inst.extra_garp_at = None;
            }
        }
        self.host_addresses(i, state == State::Master);
        self.host_routes(i, state == State::Master);
        self.publish_floating();
        self.due_garps(i, now);
        let inst = &self.insts[i];
        self.host.state_changed(&inst.conf.name, state);
        log(
            Level::Notice,
            "vrrp",
            Some(&format!("state {}", inst.conf.name)),
            format_args!(
                "{} ({} vrid {}) is {} (priority {})",
                inst.conf.name,
                inst.conf.interface,
                inst.conf.vrid,
                state.name(),
                inst.machine.priority
            ),
        );
        let prio = inst.machine.priority.to_string();
        let mut scripts: Vec<(Script, Vec<String>)> = Vec::new();
        let add = |scripts: &mut Vec<(Script, Vec<String>)>, n: &Notify, kind: &str, name: &str| {
            let specific = match state {
                State::Master => &n.master,
                State::Backup => &n.backup,
                State::Fault => &n.fault,
                State::Stop => &n.stop,
                State::Init => &None,
            };
            if let Some(s) = specific {
                scripts.push((s.clone(), Vec::new()));
            }
            if let Some(s) = &n.any {
                let args = vec![kind.into(), name.into(), state.name().into(), prio.clone()];
                scripts.push((s.clone(), args));
            }
        };
        add(&mut scripts, &inst.conf.notify, "INSTANCE", &inst.conf.name);
        let prio = inst.machine.priority;
        self.fifos
            .write(&fifo::line(false, &inst.conf.name, state.name(), prio));
        let mailer = crate::mail::current();
        mailer.vrrp_state(false, inst.conf.smtp_alert, &inst.conf.name, state.name());
        if let Some(g) = inst.group {
            // The group's scripts run once, when its first member arrives in the state.
            let first = self
                .insts
                .iter()
                .enumerate()
                .filter(|(k, o)| *k != i && o.group == Some(g))
                .all(|(_, o)| o.status.state != state.name());
            if first {
                add(&mut scripts, &self.groups[g], "GROUP", &self.group_names[g]);
                self.fifos
                    .write(&fifo::line(true, &self.group_names[g], state.name(), 0));
                let name = &self.group_names[g];
                mailer.vrrp_state(true, self.group_alerts[g], name, state.name());
            }
        }
        for (s, args) in scripts {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Some(c) = spawn(&s, &args) {
                self.children.push(c);
            }
        }
    }

    /// fifo_write_vrrp_states_on_reload: each instance a reload kept in its state (still
    /// in it) writes that state to the FIFOs, and each sync group whose members all did.
    fn write_states(&self, resumed: &[Option<State>]) {
        let still = |i: usize| resumed[i].filter(|s| *s == self.insts[i].machine.state);
        for (i, inst) in self.insts.iter().enumerate() {
            if let Some(state) = still(i) {
                let line = fifo::line(false, &inst.conf.name, state.name(), inst.machine.priority);
                self.fifos.write(&line);
            }
        }
        for (g, name) in self.group_names.iter().enumerate() {
            let members: Vec<usize> = (0..self.insts.len())
                .filter(|&i| self.insts[i].group == Some(g))
                .collect();
            let states: Vec<Option<State>> = members.iter().map(|&i| still(i)).collect();
            if let Some(Some(first)) = states.first() {
                if states.iter().all(|s| *s == Some(*first)) {
                    self.fifos.write(&fifo::line(true, name, first.name(), 0));
                }
            }
        }
    }

    /// Every managed address, held or not, and the routes installed now, to the appliance.
    fn publish_floating(&self) {
        let statics = self.static_addresses.iter().map(|a| Floating::held(a.addr));
        let floating = statics
            .chain(self.insts.iter().flat_map(|x| {
                let held = x.machine.state == State::Master;
                let accept = x.conf.accept;
                let link = self.links.get(x.link);
                x.conf.all_addresses().map(move |a| Floating {
                    addr: a.addr,
                    held,
                    accept,
                    // The virtual router's MAC answers on the instance's own interface.
                    vmac: match (x.conf.vmac, link) {
                        (Some(mac), Some(l)) if a.dev.as_deref().is_none_or(|d| l.is_named(d)) => {
                            Some((l.port as u16, mac))
                        }
                        _ => None,
                    },
                })
            }))
            .collect();
        let masters = || {
            self.insts
                .iter()
                .filter(|x| x.machine.state == State::Master)
                .map(|x| &x.conf)
        };
        let routes = installed_routes(&self.static_routes, masters());
        let rules = installed_rules(&self.static_rules, masters());
        self.host.set_floating(floating, routes, rules);
    }

    /// A MASTER carried over a reload: the addresses and routes its configuration dropped
    /// leave the twins, the others are put there (again); gratuitous ARPs go out when it
    /// gained an address, as keepalived sends them then.
    fn resume_master(&mut self, i: usize, before: &Instance, now: Instant) {
        let inst = &self.insts[i];
        let now_addresses: Vec<VirtualAddress> = inst.conf.all_addresses().cloned().collect();
        let then: Vec<VirtualAddress> = before.all_addresses().cloned().collect();
        for a in reload::lacking(&then, &now_addresses, reload::same_address) {
            twin_address(&self.twin_of(inst.link, a).twin, a, false);
        }
        for r in reload::lacking(&before.routes, &inst.conf.routes, reload::same_route) {
            twin_route(&self.links, r, false);
        }
        for r in reload::lacking(&before.rules, &inst.conf.rules, reload::same_rule) {
            host_rule(r, false);
        }
        let gained = reload::lacking(&now_addresses, &then, reload::same_address).count() > 0;
        self.host_addresses(i, true);
        self.host_routes(i, true);
        let inst = &mut self.insts[i];
        if gained {
            inst.garp_at = vec![(now, inst.conf.garp_master_repeat)];
        }
        inst.garp_refresh_at =
            (!inst.conf.garp_refresh.is_zero()).then(|| now + inst.conf.garp_refresh);
    }

    /// A reload: the instances `keep` lacks are deleted (see [`Controller::delete`]); the
    /// others, the scripts' verdicts, the static addresses and routes and the notify
    /// scripts still running are handed over.
    fn hand_over(&mut self, keep: &[InstanceKey]) -> Carried {
        let mut deleted = Vec::new();
        for i in 0..self.insts.len() {
            if !keep.contains(&self.insts[i].key) {
                deleted.push((self.insts[i].conf.name.clone(), self.insts[i].machine.state));
                self.delete(i);
            }
        }
        let instances = self
            .insts
            .drain(..)
            .filter(|x| keep.contains(&x.key))
            .map(|x| CarriedInstance {
                key: x.key,
                state: x.machine.state,
                conf: x.conf,
                status: x.status,
                ah_sequence: x.ah_sequence,
                ip_id: x.ip_id,
            })
            .collect();
        Carried {
            instances,
            deleted,
            scripts: self
                .scripts
                .iter()
                .map(|s| s.name.clone())
                .zip(self.script_ok.iter().copied())
                .collect(),
            static_addresses: std::mem::take(&mut self.static_addresses),
            static_routes: std::mem::take(&mut self.static_routes),
            static_rules: std::mem::take(&mut self.static_rules),
            children: std::mem::take(&mut self.children),
            reload: true,
        }
    }

    /// An instance a reload removes, as keepalived deletes it: a MASTER advertises
    /// priority 0 and gives up its addresses and routes; the instance is notified DELETED
    /// with `notify_deleted`, else FAULT (unless it was in FAULT already).
    fn delete(&mut self, i: usize) {
        let was = self.insts[i].machine.state;
        if was == State::Master {
            self.advertise(i, 0);
            self.host_addresses(i, false);
            self.host_routes(i, false);
        }
        let inst = &self.insts[i];
        let n = &inst.conf.notify;
        let (state, specific) = if n.notify_deleted {
            ("DELETED", &n.deleted)
        } else {
            ("FAULT", &n.fault)
        };
        if n.notify_deleted || was != State::Fault {
            let line = fifo::line(false, &inst.conf.name, state, inst.machine.priority);
            self.fifos.write(&line);
            let mailer = crate::mail::current();
            mailer.vrrp_state(false, inst.conf.smtp_alert, &inst.conf.name, state);
            let prio = inst.machine.priority.to_string();
            let args = ["INSTANCE", inst.conf.name.as_str(), state, prio.as_str()];
            let runs = [
                specific.as_ref().map(|s| (s, &[][..])),
                n.any.as_ref().map(|s| (s, &args[..])),
            ];
            for (s, args) in runs.into_iter().flatten() {
                if let Some(c) = spawn(s, args) {
                    self.children.push(c);
                }
            }
        }
        self.host.state_changed(&inst.conf.name, State::Stop);
        log(
            Level::Notice,
            "vrrp",
            Some(&format!("state {}", inst.conf.name)),
            format_args!(
                "{} ({} vrid {}) deleted by a reload (was {})",
                inst.conf.name,
                inst.conf.interface,
                inst.conf.vrid,
                was.name()
            ),
        );
    }

    /// The link an instance's address goes on: its `dev`'s, else the instance's.
    fn twin_of(&self, link: usize, a: &VirtualAddress) -> &Link {
        &self.links[link_of(&self.links, link, a)]
    }

    /// Puts the instance's addresses on (or takes them off) the host twins, as keepalived
    /// does on its interface: the host's stack then owns a floating gateway's traffic.
    fn host_addresses(&self, i: usize, add: bool) {
        let inst = &self.insts[i];
        for a in inst.conf.all_addresses() {
            twin_address(&self.twin_of(inst.link, a).twin, a, add);
        }
    }

    /// Puts instance `i`'s virtual_routes on the twins and its virtual_rules in the host's
    /// rules (or takes them off).
    fn host_routes(&self, i: usize, add: bool) {
        for r in &self.insts[i].conf.routes {
            twin_route(&self.links, r, add);
        }
        for r in &self.insts[i].conf.rules {
            host_rule(r, add);
        }
    }

    /// The bursts due: on becoming MASTER and garp_master_delay later (garp_master_repeat
    /// each), then every garp_master_refresh (garp_master_refresh_repeat each).
    fn due_garps(&mut self, i: usize, now: Instant) {
        let inst = &mut self.insts[i];
        let due: u32 = inst
            .garp_at
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, count)| (*count).max(1))
            .sum();
        inst.garp_at.retain(|(t, _)| *t > now);
        let refresh = inst.garp_refresh_at.is_some_and(|t| t <= now);
        if refresh {
            inst.garp_refresh_at = Some(now + inst.conf.garp_refresh);
        }
        if inst.machine.state != State::Master {
            return;
        }
        if due > 0 {
            self.send_garps(i, due);
        }
        if refresh {
            self.send_garps(i, self.insts[i].conf.garp_refresh_repeat.max(1));
        }
        let inst = &mut self.insts[i];
        if let (Some(at), Some(every)) = (inst.extra_garp_at, inst.extra_garp) {
            if at <= now {
                inst.extra_garp_at = Some(now + every);
                self.extra_garps(i, now);
            }
        }
    }

    /// garp_extra_if's round: one gratuitous ARP (NA) on each link other than the
    /// instance's (its own too with use_vmac and vmac_xmit_base, whose adverts do not
    /// carry the virtual MAC) for the first of its addresses there, as keepalived's
    /// vrrp_send_vmac_update.
    fn extra_garps(&mut self, i: usize, now: Instant) {
        let inst = &self.insts[i];
        for a in &extra_garp_addresses(&inst.conf, &self.links, inst.link) {
            let pacer = self.pacer_of[self.garp_link(i, a)];
            if self.pacers[pacer].may_send(i, a.addr, now) {
                self.send_garp(i, a);
            }
        }
    }

    /// `count` gratuitous ARPs (unsolicited NAs) for each address instance `i` holds, as
    /// its link's pacing lets them leave (the others wait, once per address).
    fn send_garps(&mut self, i: usize, count: u32) {
        let now = Instant::now();
        let addrs: Vec<VirtualAddress> = self.insts[i].conf.all_addresses().cloned().collect();
        // Round after round, as keepalived repeats them.
        for _ in 0..count {
            for a in &addrs {
                let pacer = self.pacer_of[self.garp_link(i, a)];
                if self.pacers[pacer].may_send(i, a.addr, now) {
                    self.send_garp(i, a);
                }
            }
        }
    }

    /// The pending gratuitous ARPs (NAs) whose time came, for instances still MASTER.
    fn paced_garps(&mut self, now: Instant) {
        for p in 0..self.pacers.len() {
            for (i, addr) in self.pacers[p].due(now) {
                let Some(inst) = self.insts.get(i) else {
                    continue;
                };
                if inst.machine.state != State::Master {
                    continue;
                }
                let a = inst.conf.all_addresses().find(|a| a.addr == addr).cloned();
                if let Some(a) = a {
                    self.send_garp(i, &a);
                }
            }
        }
    }

    /// The link address `a` of instance `i` is announced on: its `dev`'s, else the
    /// instance's.
    fn garp_link(&self, i: usize, a: &VirtualAddress) -> usize {
        link_of(&self.links, self.insts[i].link, a)
    }

    /// One gratuitous ARP (unsolicited NA) for address `a` of instance `i`.
    fn send_garp(&mut self, i: usize, a: &VirtualAddress) {
        let link = self.garp_link(i, a);
        let inst = &mut self.insts[i];
        let (Some(sock), Some(l)) = (self.garp[link].as_ref(), self.links.get(link)) else {
            return;
        };
        // On its own interface, the virtual router's MAC (use_vmac) says it.
        let mac = match inst.conf.vmac {
            Some(vmac) if link == inst.link => vmac,
            _ => l.mac,
        };
        let mut frame = [0u8; icmpv6::ND_FRAME_LEN];
        let frame: &[u8] = match a.addr {
            IpAddr::V4(v4) => {
                frame[..60].copy_from_slice(&gratuitous_arp(mac, v4));
                &frame[..60]
            }
            IpAddr::V6(v6) => {
                unsolicited_na(&mut frame, mac, v6, l.router);
                &frame
            }
        };
        if sock.send(frame).is_ok() {
            inst.status.garps_sent += 1;
        }
    }

    fn publish_status(&mut self) {
        for inst in &mut self.insts {
            inst.status.priority = inst.machine.priority;
            inst.status.master = inst.machine.master_seen;
            inst.status.advert_cs = inst.machine.master_adver_cs;
        }
        *self.status.lock() = self.insts.iter().map(|i| i.status.clone()).collect();
    }
}

/// keepalived's tracking rules: a tracked script or interface with a weight moves the
/// priority (a positive weight while it is fine, a negative one while it fails; `reverse`
/// swaps them), one without a weight puts the instance in FAULT while it fails, as does the
/// instance's own interface going down. The result stays within 1-254 (255, the address
/// owner's, is kept). A track file's number times its weight moves the priority (by 253 at
/// most; below -253 is a fault); with weight 0 any number but 0 is a fault. Returns the
/// priority and the reasons for a fault.
fn tracked_priority(
    conf: &Instance,
    scripts: &[TrackScript],
    script_ok: &[bool],
    files: &TrackedFiles,
    own_link_up: bool,
    link_up: impl Fn(&str) -> bool,
) -> (u8, Vec<String>) {
    let mut prio = i32::from(conf.priority);
    let mut faults = Vec::new();
    if !own_link_up && !conf.dont_track_primary {
        faults.push(format!("interface {} down", conf.interface));
    }
    // As keepalived: the interfaces its addresses and virtual routes name with `dev`
    // (unless `no_track`) are tracked too.
    let mut devs: Vec<&str> = tracked_devs(conf)
        .filter(|d| *d != conf.interface)
        .collect();
    devs.sort_unstable();
    devs.dedup();
    for d in devs {
        if !link_up(d) {
            faults.push(format!("interface {d} down (its addresses or routes)"));
        }
    }
    for t in &conf.track_scripts {
        let Some(k) = scripts.iter().position(|s| s.name == t.name) else {
            continue;
        };
        let s = &scripts[k];
        let ok = script_ok.get(k).copied().unwrap_or(true);
        let weight = t.weight.unwrap_or(s.weight);
        if weight == 0 {
            if !ok {
                faults.push(format!("script {} failing", s.name));
            }
        } else if (weight > 0) == (ok != s.reverse) {
            prio += weight;
        }
    }
    for t in &conf.track_files {
        let Some(k) = files.defs.iter().position(|f| f.name == t.name) else {
            continue;
        };
        let def = &files.defs[k];
        let (weight, reverse) = match t.weight {
            Some(w) => (w, t.reverse),
            None => (def.weight, def.reverse),
        };
        let Some(value) = files.values.get(k).copied().flatten() else {
            faults.push(format!("track file {} holds no usable number", def.name));
            continue;
        };
        if weight == 0 {
            if value != 0 {
                faults.push(format!("track file {} is {value}", def.name));
            }
            continue;
        }
        let signed = if reverse {
            -i64::from(weight)
        } else {
            i64::from(weight)
        };
        let moved = value.saturating_mul(signed);
        if moved < -253 {
            faults.push(format!("track file {} is {value}", def.name));
        } else {
            prio += moved.min(253) as i32;
        }
    }
    for t in &conf.track_processes {
        let Some(k) = files.processes.iter().position(|p| p.name == t.name) else {
            continue;
        };
        let def = &files.processes[k];
        let up = files.process_up.get(k).copied().unwrap_or(true);
        let (weight, reverse) = match t.weight {
            Some(w) => (w, t.reverse),
            None => (def.weight, def.reverse),
        };
        if weight == 0 {
            if up == reverse {
                faults.push(format!(
                    "process {} {}",
                    def.name,
                    if up { "running" } else { "not running" }
                ));
            }
        } else if (weight > 0) == (up != reverse) {
            prio += weight;
        }
    }
    // keepalived's track_bfd: weight 0 faults while down (up, with reverse); a weight
    // (negated by reverse) counts when up if positive, when down if negative.
    for t in &conf.track_bfds {
        let Some(def) = files.bfds.iter().find(|b| b.name == t.name && b.to_vrrp) else {
            continue;
        };
        let (weight, reverse) = match t.weight {
            Some(w) => (w, t.reverse),
            None => (def.weight, def.reverse),
        };
        let up = (files.bfd_up)(&def.name);
        let signed = if reverse { -weight } else { weight };
        match weight {
            0 if up == reverse => faults.push(format!(
                "BFD {} {}",
                def.name,
                if up { "up" } else { "down" }
            )),
            w if (w > 0 && up) || (w < 0 && !up) => prio += signed,
            _ => {}
        }
    }
    for t in &conf.track_interfaces {
        let up = link_up(&t.name);
        match t.weight.unwrap_or(0) {
            0 if !up => faults.push(format!("interface {} down", t.name)),
            w if w > 0 && up => prio += w,
            w if w < 0 && !up => prio += w,
            _ => {}
        }
    }
    let prio = if conf.priority == 255 {
        255
    } else {
        prio.clamp(1, 254) as u8
    };
    (prio, faults)
}

/// The track files an instance may name and their numbers as last read; the tracked
/// processes and whether each is up.
struct TrackedFiles<'a> {
    defs: &'a [crate::keepalived::TrackFile],
    values: &'a [Option<i64>],
    processes: &'a [TrackProcess],
    process_up: &'a [bool],
    /// The BFD sessions VRRP hears of, and whether one is up.
    bfds: &'a [crate::bfd::BfdInstance],
    bfd_up: &'a dyn Fn(&str) -> bool,
}

#[cfg(test)]
mod tests;
