use etherparse::PacketBuilder;
use hashbrown::HashMap;
use rvs_core::engine::{
    Engine, EngineConfig, ForwardMethod, Frame, PortInfo, RealServer, Route, Service, Snapshot,
    VecFrame, Verdict,
};
use rvs_core::sched::{DestLoad, SchedKind};
use std::net::IpAddr;

pub const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const CLIENT_MAC: [u8; 6] = [2, 0xcc, 0, 0, 0, 1];
pub const GW_MAC: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];
pub const RS2_MAC: [u8; 6] = [2, 0xaa, 0, 0, 0, 2];
pub const RS3_MAC: [u8; 6] = [2, 0xaa, 0, 0, 0, 3];
pub const RS6_MAC: [u8; 6] = [2, 0xaa, 0, 0, 6, 2];
pub const GW6_MAC: [u8; 6] = [2, 0xbb, 0, 0, 6, 1];

pub const CLIENT: [u8; 4] = [198, 51, 100, 7];
pub const CLIENT6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
pub const RS6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const VIP6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
pub const VIP6_TUN: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
pub const VIP6_DR: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2];
pub const DIP6_IN: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

pub fn ip(a: impl Into<IpAddr>) -> IpAddr {
    a.into()
}

pub fn rs(id: usize, addr: impl Into<IpAddr>, port: u16, method: ForwardMethod) -> RealServer {
    RealServer {
        id,
        addr: addr.into(),
        port,
        weight: 1,
        last_weight: 1,
        method,
        upper: 0,
        lower: 0,
        tunnel: Default::default(),
    }
}

pub fn snapshot() -> Snapshot {
    snapshot_with(|_| {})
}

/// [`snapshot`] with its services edited first (full NAT on one, say).
pub fn snapshot_with(edit: impl FnOnce(&mut Vec<Service>)) -> Snapshot {
    let services = vec![
        Service::new(
            0,
            6,
            ip([192, 168, 1, 100]),
            80,
            None,
            SchedKind::Rr,
            None,
            vec![rs(0, [10, 0, 0, 2], 8080, ForwardMethod::Nat)],
        ),
        Service::new(
            1,
            6,
            ip([192, 168, 1, 101]),
            80,
            None,
            SchedKind::Rr,
            None,
            vec![rs(1, [10, 0, 0, 3], 0, ForwardMethod::Dr)],
        ),
        Service::new(
            2,
            17,
            ip([192, 168, 1, 102]),
            53,
            None,
            SchedKind::Rr,
            None,
            vec![rs(2, [10, 0, 0, 2], 0, ForwardMethod::Tun)],
        ),
        Service::new(
            3,
            6,
            ip(VIP6),
            80,
            None,
            SchedKind::Rr,
            None,
            vec![rs(3, RS6, 8080, ForwardMethod::Nat)],
        ),
        Service::new(
            4,
            6,
            ip(VIP6_TUN),
            80,
            None,
            SchedKind::Rr,
            None,
            vec![rs(4, RS6, 0, ForwardMethod::Tun)],
        ),
        Service::new(
            5,
            6,
            ip([192, 168, 1, 103]),
            0,
            None,
            SchedKind::Rr,
            Some((360, 32)),
            vec![
                rs(6, [10, 0, 0, 3], 0, ForwardMethod::Nat),
                rs(5, [10, 0, 0, 2], 0, ForwardMethod::Nat),
            ],
        ),
    ];
    let mut quiesced = rs(7, [10, 0, 0, 3], 0, ForwardMethod::Dr);
    quiesced.weight = 0;
    let mut services = services;
    services.push(Service::new(
        6,
        6,
        ip([192, 168, 1, 104]),
        80,
        None,
        SchedKind::Wlc,
        None,
        vec![quiesced],
    ));
    services.push(Service::new(
        7,
        6,
        ip([192, 168, 1, 105]),
        80,
        None,
        SchedKind::Rr,
        None,
        vec![rs(8, [10, 0, 0, 9], 0, ForwardMethod::Nat)],
    ));
    services.push(Service::new(
        8,
        6,
        ip(VIP6_DR),
        80,
        None,
        SchedKind::Rr,
        None,
        vec![rs(9, RS6, 0, ForwardMethod::Dr)],
    ));
    // A group (firewall mark 10): two ports of one VIP that persist together.
    for (id, port) in [(9u16, 80u16), (10, 443)] {
        let base = 10 + 2 * usize::from(id - 9);
        services.push(Service::new(
            id,
            6,
            ip([192, 168, 1, 106]),
            port,
            Some(10),
            SchedKind::Rr,
            Some((360, 32)),
            vec![
                rs(base, [10, 0, 0, 3], 0, ForwardMethod::Nat),
                rs(base + 1, [10, 0, 0, 2], 0, ForwardMethod::Nat),
            ],
        ));
    }
    // SIP over UDP, persistent by Call-ID (ipvsadm --pe sip).
    let mut sip = Service::new(
        11,
        17,
        ip([192, 168, 1, 107]),
        5060,
        None,
        SchedKind::Rr,
        Some((360, 32)),
        vec![
            rs(14, [10, 0, 0, 3], 0, ForwardMethod::Nat),
            rs(15, [10, 0, 0, 2], 0, ForwardMethod::Nat),
        ],
    );
    sip.pe_sip = true;
    services.push(sip);
    // SCTP: NAT to another port (the CRC computed anew) and DR.
    services.push(Service::new(
        12,
        132,
        ip([192, 168, 1, 108]),
        5000,
        None,
        SchedKind::Rr,
        None,
        vec![rs(16, [10, 0, 0, 2], 5001, ForwardMethod::Nat)],
    ));
    // DNS over UDP by NAT to another port (fragmented answers).
    services.push(Service::new(
        14,
        17,
        ip([192, 168, 1, 110]),
        53,
        None,
        SchedKind::Rr,
        None,
        vec![rs(18, [10, 0, 0, 2], 5353, ForwardMethod::Nat)],
    ));
    services.push(Service::new(
        13,
        132,
        ip([192, 168, 1, 109]),
        5000,
        None,
        SchedKind::Rr,
        None,
        vec![rs(17, [10, 0, 0, 3], 0, ForwardMethod::Dr)],
    ));
    let ports = vec![
        PortInfo {
            mac: PORT0_MAC,
            addrs: vec![ip([192, 168, 1, 1])],
            mtu: 1500,
            ip_checksum_offload: false,
        },
        PortInfo {
            mac: PORT1_MAC,
            addrs: vec![ip([10, 0, 0, 1]), ip(DIP6_IN)],
            mtu: 1500,
            ip_checksum_offload: false,
        },
    ];
    let routes = vec![
        Route {
            prefix: ip([10, 0, 0, 0]),
            len: 24,
            gateway: None,
            port: 1,
            table: rvs_core::engine::MAIN_TABLE,
        },
        Route {
            prefix: ip([0, 0, 0, 0]),
            len: 0,
            gateway: Some(ip([192, 168, 1, 254])),
            port: 0,
            table: rvs_core::engine::MAIN_TABLE,
        },
        Route {
            prefix: ip(RS6),
            len: 64,
            gateway: None,
            port: 1,
            table: rvs_core::engine::MAIN_TABLE,
        },
        Route {
            prefix: ip([0u8; 16]),
            len: 0,
            gateway: Some(ip([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
            port: 0,
            table: rvs_core::engine::MAIN_TABLE,
        },
    ];
    let mut neighbours = HashMap::new();
    neighbours.insert(ip([10, 0, 0, 2]), RS2_MAC);
    neighbours.insert(ip([10, 0, 0, 3]), RS3_MAC);
    neighbours.insert(ip([192, 168, 1, 254]), GW_MAC);
    neighbours.insert(ip(RS6), RS6_MAC);
    neighbours.insert(
        ip([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        GW6_MAC,
    );
    edit(&mut services);
    let mut snap = Snapshot::new(services, ports, routes, neighbours);
    // Its unserved ports are not the host's (the others' are, as LVS hands them over).
    snap.set_unserved_drop([ip([192, 168, 1, 101])]);
    snap
}

pub struct Lab {
    pub snap: Snapshot,
    pub loads: Vec<DestLoad>,
    pub engine: Engine,
}

impl Default for Lab {
    fn default() -> Lab {
        Lab::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        Lab::with(
            snapshot(),
            EngineConfig {
                conn_capacity: 1024,
                ..EngineConfig::default()
            },
        )
    }

    /// A lab on `snap` with a table of `capacity` connections.
    pub fn with_capacity(snap: Snapshot, capacity: usize) -> Lab {
        Lab::with(
            snap,
            EngineConfig {
                conn_capacity: capacity,
                ..EngineConfig::default()
            },
        )
    }

    /// A lab on `snap` with a fresh engine of `cfg`.
    pub fn with(snap: Snapshot, cfg: EngineConfig) -> Lab {
        let mut engine = Engine::new(cfg, 0);
        engine.adopt(&snap);
        Lab {
            snap,
            loads: (0..32).map(|_| DestLoad::default()).collect(),
            engine,
        }
    }

    /// The lab as its servers' router: full NAT with PROXY v2 on the NAT service
    /// 192.168.1.100:80, SNAT of the servers' LAN out of port 0, routing between the ports,
    /// a member's outgoing ports on 192.168.1.120, a firewall mark by prefix, port range
    /// and source, and a cache cluster whose only cache is quiesced (firewall mark 11 on
    /// 192.168.3.0/24) with cache_bypass on; IPVS's drop_entry on (each wait looks over
    /// part of the table); the table made for full NAT, counting
    /// embryonic entries per source (limits no test reaches).
    pub fn router() -> Lab {
        use rvs_core::engine::{FullNat, MarkRule, MemberPorts, SnatRule};
        let mut cache_cluster = 0;
        let mut snap = snapshot_with(|services| {
            services[0].full_nat = Some(FullNat::new(Vec::new(), true));
            cache_cluster = services.len();
            let mut cache = rs(26, [10, 0, 0, 9], 0, ForwardMethod::Dr);
            cache.weight = 0;
            services.push(Service::new(
                cache_cluster as u16,
                6,
                ip([0, 0, 0, 0]),
                0,
                Some(11),
                SchedKind::Lblc,
                None,
                vec![cache],
            ));
        });
        snap.ip_forward = true;
        snap.cache_bypass = true;
        snap.drop_entry = true;
        snap.set_snat(vec![SnatRule {
            proto: None,
            source: (ip([10, 0, 0, 0]), 24),
            destination: (ip([0, 0, 0, 0]), 0),
            out_port: Some(0),
            to_source: None,
            ports: (1024, 65535),
        }]);
        snap.set_member_ports(vec![MemberPorts {
            proto: 6,
            vip: ip([192, 168, 1, 120]),
            first: 33000,
            last: 33999,
            member: ip([10, 0, 0, 3]),
            nat: true,
        }]);
        let group = snap.services.iter().position(|s| s.group == Some(10));
        if let Some(i) = group {
            snap.set_marks(vec![
                (
                    MarkRule {
                        mark: 10,
                        proto: None,
                        dst: (ip([192, 168, 2, 0]), 24),
                        ports: (0, 1000),
                        src: Some((ip([198, 51, 100, 0]), 24)),
                    },
                    i,
                ),
                (
                    MarkRule {
                        mark: 11,
                        proto: Some(6),
                        dst: (ip([192, 168, 3, 0]), 24),
                        ports: (0, 65535),
                        src: None,
                    },
                    cache_cluster,
                ),
            ]);
        }
        Lab::with(
            snap,
            EngineConfig {
                conn_capacity: 1024,
                full_nat: true,
                syn_per_source: 1000,
                udp_per_source: 1000,
                ..EngineConfig::default()
            },
        )
    }

    /// This lab as a connection-sync master: the channel its notes go to.
    pub fn sync_master(&mut self) -> std::sync::Arc<rvs_core::sync::SyncChannel> {
        let ch = std::sync::Arc::new(rvs_core::sync::SyncChannel::default());
        ch.sending.store(true, std::sync::atomic::Ordering::Relaxed);
        self.engine.sync = Some(ch.clone());
        ch
    }

    /// Installs every sync note on this lab, as a backup (each must be taken).
    pub fn install_all(&mut self, notes: Vec<rvs_core::sync::SyncConn>) {
        for n in notes {
            assert!(
                self.engine.install_synced(&self.snap, &self.loads, 1, &n),
                "{n:?}"
            );
        }
    }

    pub fn run(&mut self, port: u16, input: &[u8]) -> (Verdict, Vec<u8>) {
        self.run_at(1, port, input)
    }

    /// [`Lab::run`] at second `now` of the engine's clock.
    pub fn run_at(&mut self, now: u32, port: u16, input: &[u8]) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(input);
        let v = self
            .engine
            .process(&self.snap, &self.loads, now, port, &mut f);
        (v, f.bytes().to_vec())
    }
}

/// The FTP service the FTP-helper tests use: VIP 192.168.1.110:21 -> 10.0.0.2:21 (NAT,
/// server id 20).
pub const FTP_VIP: [u8; 4] = [192, 168, 1, 110];

/// The fixture with the FTP service added.
pub fn ftp_snapshot() -> Snapshot {
    snapshot_with(|services| {
        let id = services.len() as u16;
        services.push(Service::new(
            id,
            6,
            ip(FTP_VIP),
            21,
            None,
            SchedKind::Rr,
            None,
            vec![rs(20, [10, 0, 0, 2], 21, ForwardMethod::Nat)],
        ));
    })
}

/// A lab on [`ftp_snapshot`], with the FTP helper watching port 21 if `helper`.
pub fn ftp_lab(helper: bool) -> Lab {
    let mut ftp_ports = [0; rvs_core::engine::FTP_PORTS_MAX];
    if helper {
        ftp_ports[0] = 21;
    }
    Lab::with(
        ftp_snapshot(),
        EngineConfig {
            conn_capacity: 1024,
            ftp_ports,
            ..EngineConfig::default()
        },
    )
}

/// A TCP segment over IPv4 between `macs` (source, destination) with its sequence and
/// acknowledgement numbers, SYN, options and data.
#[allow(clippy::too_many_arguments)]
pub fn segment(
    macs: ([u8; 6], [u8; 6]),
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    ttl: u8,
    (seq, ack): (u32, Option<u32>),
    syn: bool,
    options: &[etherparse::TcpOptionElement],
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src, dst, ttl)
        .tcp(sport, dport, seq, 64000);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let b = b.options(options).unwrap();
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

pub fn tcp4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    syn: bool,
    ack: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .tcp(sport, dport, 1000, 64000);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(5000);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// An ICMPv4 message of type `t` between `macs` (source, destination), quoting `quote`.
pub fn icmp4(
    (smac, dmac): ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    t: etherparse::Icmpv4Type,
    quote: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, ttl)
        .icmpv4(t)
        .write(&mut v, quote)
        .unwrap();
    v
}

pub fn tcp6(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 16],
    dst: [u8; 16],
    hops: u8,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(src, dst, hops)
        .tcp(sport, dport, 1000, 64000)
        .syn()
        .write(&mut out, payload)
        .unwrap();
    out
}

/// The sync notes waiting in `ch`, in order.
pub fn notes_of(ch: &rvs_core::sync::SyncChannel) -> Vec<rvs_core::sync::SyncConn> {
    std::iter::from_fn(|| ch.outbox.pop()).collect()
}

/// `notes` as a backup reads them from version 1 messages.
pub fn through_the_wire(notes: &[rvs_core::sync::SyncConn]) -> Vec<rvs_core::sync::SyncConn> {
    rvs_core::sync::encode(3, notes, 1472)
        .iter()
        .flat_map(|m| rvs_core::sync::decode(m).unwrap().1)
        .collect()
}
