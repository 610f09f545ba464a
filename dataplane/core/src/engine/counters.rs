//! Why packets are dropped and what a worker counts.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Larger than the out port's MTU (a tunnel's too) and not sent in fragments: an IPv6
    /// tunnel's outer header (rvs fragments IPv4 only), no buffer for the fragments, an
    /// MTU without room for them.
    TooBig,
    Unsupported,
    /// For an address VRRP holds elsewhere: this box is BACKUP or FAULT for it.
    Standby,
    /// A source no host may have (broadcast, multicast, 0/8, loopback, ::, a VIP or the
    /// appliance's own address): a router drops it.
    Martian,
    /// A new connection whose keys are taken (through another VIP, the same client and
    /// server endpoints: the server could not tell the two apart).
    Clash,
    /// A SYN (or SCTP INIT) from a client address already holding `syn_per_source`
    /// embryonic connections of its protocol.
    SynLimit,
    /// A new UDP flow from a client address already holding `udp_per_source` new flows.
    UdpLimit,
    /// A later IP fragment whose first was not seen (or is too old): nothing to follow.
    Fragment,
    /// Not dropped: kept until its next hop answers (the request for its MAC went out this
    /// second already), or a later fragment kept until its first comes. Counted as a drop
    /// only if that never happens.
    Held,
    /// Full NAT or SNAT found no free local port this worker owns (the pool is exhausted).
    NoLocalPort,
    /// To (or, from the host, from) an address held by a VRRP instance without accept
    /// mode (keepalived's `no_accept`, its strict mode's default): refused as keepalived's
    /// firewall refuses it.
    NoAccept,
    /// Of a connection whose real server was deleted (IPVS: no longer available); with
    /// `expire_nodest_conn` the entry goes instead and the packet is scheduled anew.
    ServerRemoved,
    /// IPVS's drop_packet defence took this packet, which would have opened a connection.
    Defence,
}

impl DropReason {
    pub const COUNT: usize = 22;
    pub const ALL: [DropReason; 22] = [
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
        DropReason::Standby,
        DropReason::Martian,
        DropReason::Clash,
        DropReason::SynLimit,
        DropReason::UdpLimit,
        DropReason::Fragment,
        DropReason::Held,
        DropReason::NoLocalPort,
        DropReason::NoAccept,
        DropReason::ServerRemoved,
        DropReason::Defence,
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
            DropReason::Standby => "standby",
            DropReason::Martian => "martian",
            DropReason::Clash => "key clash",
            DropReason::SynLimit => "SYN limit",
            DropReason::UdpLimit => "UDP limit",
            DropReason::Fragment => "fragment without its first",
            DropReason::Held => "held for a neighbour",
            DropReason::NoLocalPort => "no local port",
            DropReason::NoAccept => "no accept mode",
            DropReason::ServerRemoved => "server removed",
            DropReason::Defence => "drop_packet defence",
        }
    }
}

/// A worker's engine counters as read at one moment.
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
    /// Embryonic connections evicted to make room for a new SYN (or SCTP INIT), and for a
    /// new UDP flow.
    pub syn_evictions: u64,
    pub udp_evictions: u64,
    /// Finished connections (TIME_WAIT, CLOSE; UDP flows) ended for a new connection of
    /// the same client port and server through another VIP or port, whose reply-side key
    /// they held.
    pub reply_key_takeovers: u64,
    /// ARP and neighbour discovery messages about a next hop heard on another port than
    /// the one its routes lead out of: not learned.
    pub neighbours_ignored: u64,
    /// Packets routed between the ports (ip_forward), and to or from members' outgoing
    /// port ranges.
    pub routed: u64,
    pub member_packets: u64,
    /// SNAT entries made for routed flows.
    pub snat_conns: u64,
    /// Connections ICMP errors made (IPVS's schedule_icmp).
    pub icmp_scheduled: u64,
    /// Connections sent on to their own destination with no server available (IPVS's
    /// cache_bypass).
    pub bypass_conns: u64,
    /// Entries IPVS's drop_entry defence dropped.
    pub dropped_entries: u64,
    /// The FTP helper: 227/229 replies rewritten (retransmissions too), data connections
    /// it opened (passive and active), control connections kept for their data ones.
    pub ftp_rewrites: u64,
    pub ftp_data_conns: u64,
    pub ftp_controls_kept: u64,
    /// IPv4 datagrams sent in fragments (larger than their out port's MTU, without DF),
    /// and the fragments sent for them (Linux's FragOKs and FragCreates).
    pub fragmented: u64,
    pub fragments_sent: u64,
    /// Later fragments kept until their first came (or was dropped after waiting).
    pub fragments_waited: u64,
}

impl Counters {
    /// What was counted since `base`, an earlier reading of the same worker's counters
    /// (a counter zeroed since, as a new service's, reads from zero).
    pub fn since(&self, base: &Counters) -> Counters {
        fn each(now: &[u64], then: &[u64]) -> Vec<u64> {
            let at = |i: usize| then.get(i).copied().unwrap_or(0);
            now.iter()
                .enumerate()
                .map(|(i, &v)| v.saturating_sub(at(i)))
                .collect()
        }
        fn pairs(now: &[(u64, u64)], then: &[(u64, u64)]) -> Vec<(u64, u64)> {
            let at = |i: usize| then.get(i).copied().unwrap_or((0, 0));
            now.iter()
                .enumerate()
                .map(|(i, &(p, b))| (p.saturating_sub(at(i).0), b.saturating_sub(at(i).1)))
                .collect()
        }
        let d = |now: u64, then: u64| now.saturating_sub(then);
        Counters {
            new_conns: d(self.new_conns, base.new_conns),
            drops: crate::stats::since(self.drops, &base.drops),
            svc_in: pairs(&self.svc_in, &base.svc_in),
            svc_out: pairs(&self.svc_out, &base.svc_out),
            svc_conns: each(&self.svc_conns, &base.svc_conns),
            dest_conns: each(&self.dest_conns, &base.dest_conns),
            dest_in: pairs(&self.dest_in, &base.dest_in),
            dest_out: pairs(&self.dest_out, &base.dest_out),
            arp_replies: d(self.arp_replies, base.arp_replies),
            icmp_replies: d(self.icmp_replies, base.icmp_replies),
            icmp_errors_sent: d(self.icmp_errors_sent, base.icmp_errors_sent),
            to_host: d(self.to_host, base.to_host),
            neighbour_requests: d(self.neighbour_requests, base.neighbour_requests),
            syn_evictions: d(self.syn_evictions, base.syn_evictions),
            udp_evictions: d(self.udp_evictions, base.udp_evictions),
            reply_key_takeovers: d(self.reply_key_takeovers, base.reply_key_takeovers),
            neighbours_ignored: d(self.neighbours_ignored, base.neighbours_ignored),
            routed: d(self.routed, base.routed),
            member_packets: d(self.member_packets, base.member_packets),
            snat_conns: d(self.snat_conns, base.snat_conns),
            icmp_scheduled: d(self.icmp_scheduled, base.icmp_scheduled),
            bypass_conns: d(self.bypass_conns, base.bypass_conns),
            dropped_entries: d(self.dropped_entries, base.dropped_entries),
            ftp_rewrites: d(self.ftp_rewrites, base.ftp_rewrites),
            ftp_data_conns: d(self.ftp_data_conns, base.ftp_data_conns),
            ftp_controls_kept: d(self.ftp_controls_kept, base.ftp_controls_kept),
            fragmented: d(self.fragmented, base.fragmented),
            fragments_sent: d(self.fragments_sent, base.fragments_sent),
            fragments_waited: d(self.fragments_waited, base.fragments_waited),
        }
    }
}

/// A counter its worker writes and anyone reads: a relaxed load and store, no locked
/// instruction (the worker is the only writer), so bumping it costs what a plain add does.
#[derive(Debug, Default)]
pub struct Slot(AtomicU64);

impl Slot {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Sets a gauge (its worker only).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The engine's counters, shared with the control side: the worker bumps them in place and
/// readers sum them whenever they like; nothing is copied on the worker.
#[derive(Debug)]
pub struct CounterSlots {
    pub new_conns: Slot,
    pub drops: [Slot; DropReason::COUNT],
    svc_in: Box<[[Slot; 2]]>,
    svc_out: Box<[[Slot; 2]]>,
    svc_conns: Box<[Slot]>,
    dest_conns: Box<[Slot]>,
    dest_in: Box<[[Slot; 2]]>,
    dest_out: Box<[[Slot; 2]]>,
    pub arp_replies: Slot,
    pub icmp_replies: Slot,
    pub icmp_errors_sent: Slot,
    pub to_host: Slot,
    pub neighbour_requests: Slot,
    pub syn_evictions: Slot,
    pub udp_evictions: Slot,
    pub reply_key_takeovers: Slot,
    pub neighbours_ignored: Slot,
    pub routed: Slot,
    pub member_packets: Slot,
    pub snat_conns: Slot,
    pub icmp_scheduled: Slot,
    pub bypass_conns: Slot,
    pub dropped_entries: Slot,
    pub ftp_rewrites: Slot,
    pub ftp_data_conns: Slot,
    pub ftp_controls_kept: Slot,
    pub fragmented: Slot,
    pub fragments_sent: Slot,
    pub fragments_waited: Slot,
    /// Entries in the worker's connection table.
    pub connections: Slot,
}

fn slots<T: Default>(n: usize) -> Box<[T]> {
    (0..n).map(|_| T::default()).collect()
}

#[inline]
fn bump_pair(v: &[[Slot; 2]], i: usize, bytes: usize) {
    if let Some([packets, octets]) = v.get(i) {
        packets.add(1);
        octets.add(bytes as u64);
    }
}

fn read_pairs(v: &[[Slot; 2]]) -> Vec<(u64, u64)> {
    v.iter().map(|[p, b]| (p.get(), b.get())).collect()
}

impl CounterSlots {
    pub fn new(max_services: usize, max_dests: usize) -> CounterSlots {
        CounterSlots {
            new_conns: Slot::default(),
            drops: Default::default(),
            svc_in: slots(max_services),
            svc_out: slots(max_services),
            svc_conns: slots(max_services),
            dest_conns: slots(max_dests),
            dest_in: slots(max_dests),
            dest_out: slots(max_dests),
            arp_replies: Slot::default(),
            icmp_replies: Slot::default(),
            icmp_errors_sent: Slot::default(),
            to_host: Slot::default(),
            neighbour_requests: Slot::default(),
            syn_evictions: Slot::default(),
            udp_evictions: Slot::default(),
            reply_key_takeovers: Slot::default(),
            neighbours_ignored: Slot::default(),
            routed: Slot::default(),
            member_packets: Slot::default(),
            snat_conns: Slot::default(),
            icmp_scheduled: Slot::default(),
            bypass_conns: Slot::default(),
            dropped_entries: Slot::default(),
            ftp_rewrites: Slot::default(),
            ftp_data_conns: Slot::default(),
            ftp_controls_kept: Slot::default(),
            fragmented: Slot::default(),
            fragments_sent: Slot::default(),
            fragments_waited: Slot::default(),
            connections: Slot::default(),
        }
    }

    #[inline]
    pub fn dropped(&self, r: DropReason) {
        if let Some(s) = self.drops.get(r as usize) {
            s.add(1);
        }
    }

    /// A packet of `bytes` from a client (service `svc`, server `dest`).
    #[inline]
    pub fn inbound(&self, svc: usize, dest: usize, bytes: usize) {
        bump_pair(&self.svc_in, svc, bytes);
        bump_pair(&self.dest_in, dest, bytes);
    }

    /// A NAT reply of `bytes` towards a client.
    #[inline]
    pub fn outbound(&self, svc: usize, dest: usize, bytes: usize) {
        bump_pair(&self.svc_out, svc, bytes);
        bump_pair(&self.dest_out, dest, bytes);
    }

    /// A new connection of service `svc` to server `dest`.
    #[inline]
    pub fn connection(&self, svc: usize, dest: usize) {
        self.new_conns.add(1);
        if let Some(n) = self.svc_conns.get(svc) {
            n.add(1);
        }
        if let Some(n) = self.dest_conns.get(dest) {
            n.add(1);
        }
    }

    /// The counters as they are now (control side; allocates).
    pub fn read(&self) -> Counters {
        let mut drops = [0; DropReason::COUNT];
        for (d, s) in drops.iter_mut().zip(&self.drops) {
            *d = s.get();
        }
        Counters {
            new_conns: self.new_conns.get(),
            drops,
            svc_in: read_pairs(&self.svc_in),
            svc_out: read_pairs(&self.svc_out),
            svc_conns: self.svc_conns.iter().map(Slot::get).collect(),
            dest_conns: self.dest_conns.iter().map(Slot::get).collect(),
            dest_in: read_pairs(&self.dest_in),
            dest_out: read_pairs(&self.dest_out),
            arp_replies: self.arp_replies.get(),
            icmp_replies: self.icmp_replies.get(),
            icmp_errors_sent: self.icmp_errors_sent.get(),
            to_host: self.to_host.get(),
            neighbour_requests: self.neighbour_requests.get(),
            syn_evictions: self.syn_evictions.get(),
            udp_evictions: self.udp_evictions.get(),
            reply_key_takeovers: self.reply_key_takeovers.get(),
            neighbours_ignored: self.neighbours_ignored.get(),
            routed: self.routed.get(),
            member_packets: self.member_packets.get(),
            snat_conns: self.snat_conns.get(),
            icmp_scheduled: self.icmp_scheduled.get(),
            bypass_conns: self.bypass_conns.get(),
            dropped_entries: self.dropped_entries.get(),
            ftp_rewrites: self.ftp_rewrites.get(),
            ftp_data_conns: self.ftp_data_conns.get(),
            ftp_controls_kept: self.ftp_controls_kept.get(),
            fragmented: self.fragmented.get(),
            fragments_sent: self.fragments_sent.get(),
            fragments_waited: self.fragments_waited.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_counts_from_a_reading() {
        let slots = CounterSlots::new(2, 2);
        slots.new_conns.add(5);
        slots.dropped(DropReason::Defence);
        slots.inbound(1, 0, 100);
        slots.dropped_entries.add(2);
        let base = slots.read();
        slots.new_conns.add(3);
        slots.dropped(DropReason::Defence);
        slots.dropped(DropReason::NoService);
        slots.inbound(1, 0, 60);
        let c = slots.read().since(&base);
        assert_eq!(c.new_conns, 3);
        assert_eq!(c.drops[DropReason::Defence as usize], 1);
        assert_eq!(c.drops[DropReason::NoService as usize], 1);
        assert_eq!(c.svc_in, vec![(0, 0), (1, 60)]);
        assert_eq!(c.dest_in, vec![(1, 60), (0, 0)]);
        assert_eq!(c.dropped_entries, 0);
        // A reading against itself is all zero; against a later one, too (never wraps).
        let now = slots.read();
        assert_eq!(
            now.since(&now),
            Counters {
                svc_in: vec![(0, 0); 2],
                svc_out: vec![(0, 0); 2],
                svc_conns: vec![0; 2],
                dest_conns: vec![0; 2],
                dest_in: vec![(0, 0); 2],
                dest_out: vec![(0, 0); 2],
                ..Counters::default()
            }
        );
        assert_eq!(base.since(&now).new_conns, 0);
    }
}
