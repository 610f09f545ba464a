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
        }
    }
}
