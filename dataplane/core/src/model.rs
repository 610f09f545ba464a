//! The words the whole product shares: how packets reach a real server, and a real server
//! as the snapshot, the schedulers and the engine see it.

use std::net::IpAddr;

/// How packets reach a real server (IPVS's forwarding methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ForwardMethod {
    /// Masquerading: addresses rewritten both ways (ipvsadm -m, "Masq").
    Nat = 0,
    /// Direct routing: the MACs only (ipvsadm -g, "Route").
    Dr = 1,
    /// IP-in-IP tunnelling (ipvsadm -i, "Tunnel").
    Tun = 2,
}

impl ForwardMethod {
    pub const ALL: [ForwardMethod; 3] = [ForwardMethod::Nat, ForwardMethod::Dr, ForwardMethod::Tun];

    pub fn from_u8(v: u8) -> ForwardMethod {
        match v {
            1 => ForwardMethod::Dr,
            2 => ForwardMethod::Tun,
            _ => ForwardMethod::Nat,
        }
    }

    /// ipvsadm's option.
    pub fn ipvsadm_flag(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "-m",
            ForwardMethod::Dr => "-g",
            ForwardMethod::Tun => "-i",
        }
    }

    /// The word `ipvsadm -L` prints.
    pub fn ipvsadm_word(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "Masq",
            ForwardMethod::Dr => "Route",
            ForwardMethod::Tun => "Tunnel",
        }
    }

    /// The name configuration files use.
    pub fn name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "nat",
            ForwardMethod::Dr => "dr",
            ForwardMethod::Tun => "tun",
        }
    }
}

/// The encapsulation of a tunnelled server (ipvsadm's `--tun-type`): IP-in-IP, GUE (UDP to
/// `port`) or GRE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TunnelKind {
    #[default]
    Ipip = 0,
    Gue = 1,
    Gre = 2,
}

/// ipvsadm's `--tun-nocsum`, `--tun-csum`, `--tun-remcsum` (IPVS's tun_flags values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TunnelCsum {
    #[default]
    NoCsum = 0,
    Csum = 1,
    RemCsum = 2,
}

/// A tunnelled server's encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// GUE's UDP destination port.
    pub port: u16,
    pub csum: TunnelCsum,
}

impl Tunnel {
    /// ipvsadm's name of the type.
    pub fn type_name(self) -> &'static str {
        match self.kind {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gue => "gue",
            TunnelKind::Gre => "gre",
        }
    }

    /// `ipvsadm -L --tun-info`'s column: `ipip`, `gue:PORT:-c`, `gre:+c`.
    pub fn info(self) -> String {
        let flags = match self.csum {
            TunnelCsum::NoCsum => "-c",
            TunnelCsum::Csum => "+c",
            TunnelCsum::RemCsum => "r+c",
        };
        match self.kind {
            TunnelKind::Ipip => "ipip".into(),
            TunnelKind::Gue => format!("gue:{}:{flags}", self.port),
            TunnelKind::Gre => format!("gre:{flags}"),
        }
    }

    /// `ipvsadm -S`'s options after `-w N`.
    pub fn rule(self) -> String {
        let flags = match self.csum {
            TunnelCsum::NoCsum => "--tun-nocsum",
            TunnelCsum::Csum => "--tun-csum",
            TunnelCsum::RemCsum => "--tun-remcsum",
        };
        match self.kind {
            TunnelKind::Ipip => "--tun-type ipip".into(),
            TunnelKind::Gue => format!("--tun-type gue --tun-port {} {flags}", self.port),
            TunnelKind::Gre => format!("--tun-type gre {flags}"),
        }
    }

    /// The bytes between the outer IP header and the inner datagram (UDP + GUE: 12; GRE:
    /// 4, or 8 with its checksum).
    pub fn header_len(self) -> usize {
        match self.kind {
            TunnelKind::Ipip => 0,
            TunnelKind::Gue => 12,
            TunnelKind::Gre if self.csum == TunnelCsum::Csum => 8,
            TunnelKind::Gre => 4,
        }
    }
}

/// A real server of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    /// Stable id: index into the shared load counters ([`crate::sched::DestLoad`]).
    pub id: usize,
    pub addr: IpAddr,
    /// 0 = the client's destination port (DR/TUN, or NAT without port mapping).
    pub port: u16,
    pub weight: u32,
    /// The last non-zero weight (Maglev keeps a quiesced server's slots with it).
    pub last_weight: u32,
    pub method: ForwardMethod,
    /// Overload thresholds (ipvsadm -x, -y); 0 = none.
    pub upper: u32,
    pub lower: u32,
    /// The encapsulation when `method` is Tun.
    pub tunnel: Tunnel,
}

impl RealServer {
    /// A server whose last weight is its weight (a new one).
    pub fn new(id: usize, addr: IpAddr, port: u16, weight: u32, method: ForwardMethod) -> Self {
        RealServer {
            id,
            addr,
            port,
            weight,
            last_weight: weight,
            method,
            upper: 0,
            lower: 0,
            tunnel: Tunnel::default(),
        }
    }
}
