//! Why packets are dropped and what a worker counts.

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    Malformed = 0,
    NoService,
    NoServer,
    TableFull,
    NoRoute,
    NoNeighbour,
    Ttl,
    /// Neither for a VIP nor for the appliance: never relayed.
    NotOurs,
    /// A non-SYN segment (or a reply) of no known connection.
    NoConnection,
    /// Too big for the tunnel without DF (IPVS would fragment; rvs does not yet).
    TooBig,
    Unsupported,
}

impl DropReason {
    pub const COUNT: usize = 11;
    pub const ALL: [DropReason; 11] = [
        DropReason::Malformed,
        DropReason::NoService,
        DropReason::NoServer,
        DropReason::TableFull,
        DropReason::NoRoute,
        DropReason::NoNeighbour,
        DropReason::Ttl,
        DropReason::NotOurs,
        DropReason::NoConnection,
        DropReason::TooBig,
        DropReason::Unsupported,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoService => "no service",
            DropReason::NoServer => "no server",
            DropReason::TableFull => "table full",
            DropReason::NoRoute => "no route",
            DropReason::NoNeighbour => "no neighbour",
            DropReason::Ttl => "TTL",
            DropReason::NotOurs => "not ours",
            DropReason::NoConnection => "no connection",
            DropReason::TooBig => "too big",
            DropReason::Unsupported => "unsupported",
        }
    }
}

/// Per-worker counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub new_conns: u64,
    pub drops: [u64; DropReason::COUNT],
    /// Per service id: packets and bytes in (client side) and out (NAT replies).
    pub svc_in: Vec<(u64, u64)>,
    pub svc_out: Vec<(u64, u64)>,
    /// New connections per service id and per real-server id.
    pub svc_conns: Vec<u64>,
    pub dest_conns: Vec<u64>,
    /// Per real-server id.
    pub dest_in: Vec<(u64, u64)>,
    pub dest_out: Vec<(u64, u64)>,
    /// ARP replies and IPv6 neighbour advertisements sent.
    pub arp_replies: u64,
    pub icmp_replies: u64,
    pub icmp_errors_sent: u64,
    /// Frames for the host kernel (dropped while there is no exception path).
    pub to_host: u64,
    /// ARP requests and neighbour solicitations sent to resolve next hops.
    pub neighbour_requests: u64,
}

impl Counters {
    pub(super) fn bump(v: &mut [(u64, u64)], i: usize, bytes: usize) {
        if let Some(c) = v.get_mut(i) {
            c.0 += 1;
            c.1 += bytes as u64;
        }
    }
}
