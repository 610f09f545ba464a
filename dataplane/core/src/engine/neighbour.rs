//! Neighbours: next hops cached per connection (an epoch invalidates them), MACs learned
//! and shared with the other workers, and requests sent ahead of traffic.

use super::*;

/// Where a packet leaves: the port and the next hop's MAC.
#[derive(Debug, Clone, Copy)]
pub(super) struct NextHop {
    pub(super) port: u16,
    pub(super) mac: [u8; 6],
    /// The next hop's address when its MAC is not known yet and the frame may wait for it
    /// (`mac` is then a placeholder): the caller rewrites the frame, then holds it.
    pub(super) pending: Option<IpAddr>,
}

/// How long (seconds) a request stays recorded when the table of requests is full: its
/// answer is learned meanwhile.
const REQUEST_KEPT_S: u32 = 10;

/// A learned neighbour silent this long (seconds) is asked again.
pub(super) const STALE_AFTER_S: u32 = 60;
/// A stale neighbour asked again and silent this much longer is forgotten (Linux's
/// FAILED after its probes): its packets then wait for a fresh answer.
pub(super) const FAILED_AFTER_S: u32 = 5;
/// A neighbour heard again after this long is news for the other workers (they refresh
/// it too, so that none forgets a live one).
const REFRESH_NEWS_S: u32 = 30;

/// Most neighbour news an engine keeps between two passes of its worker.
pub(super) const NEWS_CAPACITY: usize = 64;

/// Entries of the per-destination next-hop cache (a power of two).
pub(super) const DEST_HOPS: usize = 64;
const _: () = assert!(DEST_HOPS.is_power_of_two());

/// A destination's next hop as an index into the engine's hops (this epoch's).
#[derive(Clone, Copy)]
pub(super) struct DestHop {
    addr: u128,
    index: u16,
}

impl DestHop {
    /// An empty entry: no hop has the index NO_HOP.
    pub(super) const EMPTY: DestHop = DestHop {
        addr: 0,
        index: NO_HOP,
    };

    fn slot(addr: u128) -> usize {
        let folded = (addr as u64) ^ ((addr >> 64) as u64);
        (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - DEST_HOPS.trailing_zeros())) as usize
    }
}

impl Engine {
    /// Forgets every cached next hop (routes, ports or neighbours changed).
    pub(super) fn new_hop_epoch(&mut self) {
        self.hop_epoch = self.hop_epoch.wrapping_add(1).max(1);
        self.hops.clear();
        self.hop_ids.clear();
        self.dest_hops.fill(DestHop::EMPTY);
    }

    /// The hop index this epoch found towards `dst`, if still cached.
    #[inline]
    pub(super) fn dest_hop(&self, dst: u128) -> Option<u16> {
        let e = self.dest_hops.get(DestHop::slot(dst))?;
        (e.addr == dst && e.index != NO_HOP).then_some(e.index)
    }

    /// Remembers a connection's hop index in its entry (for this epoch).
    fn cache_hop(&mut self, id: crate::conn::ConnId, to_server: bool, index: u16) {
        let epoch = self.hop_epoch;
        if let Some(c) = self.table.get_mut(id) {
            if c.hop_epoch != epoch {
                c.hop_epoch = epoch;
                c.hop_to_server = NO_HOP;
                c.hop_to_client = NO_HOP;
            }
            if to_server {
                c.hop_to_server = index;
            } else {
                c.hop_to_client = index;
            }
        }
    }

    /// The port and next-hop MAC towards `dst` for connection `id`, from the connection's
    /// cache while its epoch is current; otherwise by route and neighbour lookup, cached.
    /// Without one, the packet's verdict: dropped for no route, or (next hop unresolved)
    /// turned into an ARP request / neighbour solicitation (see [`Engine::resolve`]).
    /// Towards the server the route is IPVS's, looked up before a source is chosen;
    /// towards the client it is looked up from the VIP with `flow`'s DS field, protocol
    /// and ports (IPVS's snat_reroute), which only policy rules tell apart.
    #[inline]
    pub(super) fn next_hop<F: Frame>(
        &mut self,
        snap: &Snapshot,
        (id, flow): (crate::conn::ConnId, &Flow),
        dst: IpAddr,
        to_server: bool,
        now: u32,
        frame: &mut F,
    ) -> Result<NextHop, Verdict> {
        let cached = self.table.get(id).and_then(|c| {
            let i = if to_server {
                c.hop_to_server
            } else {
                c.hop_to_client
            };
            (c.hop_epoch == self.hop_epoch).then_some(i)
        });
        if let Some(hop) = cached.and_then(|i| self.hops.get(usize::from(i))) {
            return Ok(*hop);
        }
        self.next_hop_uncached(snap, (id, flow), dst, to_server, now, frame)
    }

    /// [`Engine::next_hop`] when the connection has none cached (its first packet that
    /// way, or the neighbours changed since).
    #[inline(never)]
    fn next_hop_uncached<F: Frame>(
        &mut self,
        snap: &Snapshot,
        (id, flow): (crate::conn::ConnId, &Flow),
        dst: IpAddr,
        to_server: bool,
        now: u32,
        frame: &mut F,
    ) -> Result<NextHop, Verdict> {
        let dst_word = crate::conn::addr_word(dst);
        // The hop by destination alone serves every connection unless rules make the
        // source matter (towards clients: the VIP).
        // Towards the client as IPVS reroutes a reply: from the VIP, with its DS field,
        // protocol and ports.
        let reply = if to_server || !snap.has_rules() {
            None
        } else {
            self.table.get(id).map(|c| RouteQuery {
                src: Some(ip_of(&c.vaddr)),
                dst,
                iif: None,
                tos: super::routed::ds_field(flow, frame.bytes()),
                proto: c.proto,
                sport: c.vport,
                dport: c.cport,
                // The reply's mark as it came in from the server.
                mark: snap.route_mark(flow.proto, &flow.src, &flow.dst, flow.dport),
            })
        };
        let by_destination = reply.is_none();
        if let Some(index) = self.dest_hop(dst_word).filter(|_| by_destination) {
            if let Some(&hop) = self.hops.get(usize::from(index)) {
                self.cache_hop(id, to_server, index);
                return Ok(hop);
            }
        }
        let query = reply.unwrap_or(RouteQuery::output(None, dst));
        let Some((port, hop)) = snap.route_for(&query) else {
            return Err(self.drop(DropReason::NoRoute));
        };
        let Some(mac) = self.neighbour(snap, hop) else {
            if self.held_room() {
                return Ok(NextHop {
                    port,
                    mac: [0; 6],
                    pending: Some(hop),
                });
            }
            return Err(self.resolve(snap, now, port, hop, frame));
        };
        let next = NextHop {
            port,
            mac,
            pending: None,
        };
        let index = match self.hop_ids.get(&(port, hop)) {
            Some(&i) => i,
            None if self.hops.len() < self.neighbour_capacity.min(usize::from(NO_HOP)) => {
                let i = self.hops.len() as u16;
                self.hops.push(next);
                self.hop_ids.insert((port, hop), i);
                i
            }
            None => return Ok(next),
        };
        if let Some(e) = self.dest_hops.get_mut(DestHop::slot(dst_word)) {
            if by_destination {
                *e = DestHop {
                    addr: dst_word,
                    index,
                };
            }
        }
        self.cache_hop(id, to_server, index);
        Ok(next)
    }

    pub(super) fn neighbour(&self, snap: &Snapshot, ip: IpAddr) -> Option<[u8; 6]> {
        snap.neighbours
            .get(&ip)
            .copied()
            .or_else(|| self.learned.get(&ip).map(|e| e.0))
    }

    /// Learns a neighbour from an ARP or ND message heard on `port`, as a router does:
    /// only one it asked for or a next hop the configuration needs (a real server, a
    /// gateway), so that anyone's spoofed ARPs fill nothing, and only on the segment the
    /// routes lead to it through (as a kernel keeps neighbours per interface). When the
    /// table is full, the oldest entry that is no configured next hop makes room for a
    /// wanted one.
    pub(super) fn learn(&mut self, snap: &Snapshot, now: u32, port: u16, ip: IpAddr, mac: [u8; 6]) {
        if !(self.requested.contains_key(&ip) || snap.is_next_hop(ip)) {
            return;
        }
        if !snap.neighbour_on(port, ip) {
            self.counters.neighbours_ignored.add(1);
            return;
        }
        if let Some(e) = self.learned.get_mut(&ip) {
            let heard = e.1;
            e.1 = now;
            if e.0 == mac {
                if now.saturating_sub(heard) >= REFRESH_NEWS_S && self.news.len() < NEWS_CAPACITY {
                    self.news.push((ip, mac, now));
                }
                return;
            }
        } else if self.learned.len() >= self.neighbour_capacity && !self.evict_one(snap) {
            return;
        }
        if self.learned.insert(ip, (mac, now)).is_some() {
            self.new_hop_epoch();
        }
        if self.news.len() < NEWS_CAPACITY {
            self.news.push((ip, mac, now));
        }
    }

    /// Removes the entry unused the longest that is no configured next hop; false if all
    /// are needed.
    fn evict_one(&mut self, snap: &Snapshot) -> bool {
        let victim = self
            .learned
            .iter()
            .filter(|(ip, _)| !snap.is_next_hop(**ip))
            .min_by_key(|(_, e)| e.1)
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.learned.remove(&ip);
                self.new_hop_epoch();
                true
            }
            None => false,
        }
    }

    /// A neighbour another worker learned or heard again at `heard` (ARP and neighbour
    /// discovery answers reach only the worker whose queue received them): it judged it
    /// already.
    pub fn learn_from_peer(&mut self, ip: IpAddr, mac: [u8; 6], heard: u32) {
        let heard = self.learned.get(&ip).map_or(heard, |e| e.1.max(heard));
        let room = self.learned.len() < self.neighbour_capacity || self.learned.contains_key(&ip);
        if room
            && self
                .learned
                .insert(ip, (mac, heard))
                .is_some_and(|old| old.0 != mac)
        {
            self.new_hop_epoch();
        }
    }

    /// Neighbours this engine learned (or heard again) since the last call, with when, for
    /// the other workers.
    pub fn take_news(&mut self, mut each: impl FnMut(IpAddr, [u8; 6], u32)) {
        for (ip, mac, heard) in self.news.drain(..) {
            each(ip, mac, heard);
        }
    }

    /// Forgets the neighbours that went stale, were asked again and stayed silent
    /// ([`FAILED_AFTER_S`] more): at most once a second, over the learned table.
    pub(super) fn forget_failed_neighbours(&mut self, now: u32) {
        if now == self.neighbours_checked_at {
            return;
        }
        self.neighbours_checked_at = now;
        let requested = &self.requested;
        let before = self.learned.len();
        self.learned.retain(|ip, e| {
            let asked_since_stale = requested
                .get(ip)
                .is_some_and(|&t| t > e.1.saturating_add(STALE_AFTER_S));
            !(asked_since_stale && now.saturating_sub(e.1) > STALE_AFTER_S + FAILED_AFTER_S)
        });
        if self.learned.len() != before {
            self.new_hop_epoch();
        }
    }

    /// The next hops the snapshot's real servers and gateways need whose MAC is unknown and
    /// for which no request went out this second, with their ports (at most `limit`).
    pub fn unresolved_hops(
        &self,
        snap: &Snapshot,
        now: u32,
        limit: usize,
        out: &mut Vec<(u16, IpAddr)>,
    ) {
        out.clear();
        let servers = snap
            .services
            .iter()
            .flat_map(|s| s.servers.iter())
            .map(|r| r.addr)
            .filter(|a| !snap.is_local(*a))
            .filter_map(|a| snap.route(a));
        let gateways = snap
            .routes
            .iter()
            .filter_map(|r| r.gateway.map(|g| (r.port, g)));
        for (port, hop) in servers.chain(gateways) {
            if out.len() >= limit {
                break;
            }
            let due = self.requested.get(&hop).is_none_or(|&t| now > t);
            // Unknown, or learned and silent for a while (Linux's stale state): asked again,
            // the old MAC used meanwhile.
            let stale = self
                .learned
                .get(&hop)
                .is_some_and(|e| now.saturating_sub(e.1) > STALE_AFTER_S);
            let unknown = self.neighbour(snap, hop).is_none();
            if due && (unknown || stale) && !out.contains(&(port, hop)) {
                out.push((port, hop));
            }
        }
    }

    /// The next hop's MAC is unknown: the packet is dropped (counted) and, at most once a
    /// second per address, the frame becomes an ARP request / neighbour solicitation for it.
    pub(super) fn resolve<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        port: u16,
        hop: IpAddr,
        frame: &mut F,
    ) -> Verdict {
        self.counters.dropped(DropReason::NoNeighbour);
        if self.solicit(snap, now, port, hop, frame) {
            Verdict::Forward { port }
        } else {
            Verdict::Drop(DropReason::NoNeighbour)
        }
    }

    /// Makes `frame` an ARP request / neighbour solicitation for `hop` out of `port`, unless
    /// one went out this second (or the table is full); true when it did.
    pub fn solicit<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        port: u16,
        hop: IpAddr,
        frame: &mut F,
    ) -> bool {
        if !self.requested.contains_key(&hop) && self.requested.len() >= self.neighbour_capacity {
            // Requests long unanswered make room (a bounded scan, only when full).
            self.requested
                .retain(|_, t| now.saturating_sub(*t) <= REQUEST_KEPT_S);
        }
        let due = match self.requested.get(&hop) {
            Some(&t) => now > t,
            None => self.requested.len() < self.neighbour_capacity,
        };
        let (Some(port_mac), Some(me)) = (
            snap.ports.get(usize::from(port)).map(|p| p.mac),
            snap.local_addr(port, hop),
        ) else {
            return false;
        };
        if !due {
            return false;
        }
        let total = match hop {
            IpAddr::V4(_) => ethernet::HEADER_LEN + arp::LEN,
            IpAddr::V6(_) => ethernet::HEADER_LEN + ipv6::HEADER_LEN + 32,
        };
        let have = frame.bytes().len();
        if have < total && !frame.append(total - have) {
            return false;
        }
        frame.truncate(total);
        self.requested.insert(hop, now);
        let b = frame.bytes_mut();
        let l3 = ethernet::HEADER_LEN;
        match (hop, me) {
            (IpAddr::V4(h), IpAddr::V4(m)) => {
                ethernet::emit_header(b, [0xff; 6], port_mac, EtherType::ARP);
                let request = ArpRepr {
                    op: arp::OP_REQUEST,
                    sender_mac: port_mac,
                    sender_ip: m.octets(),
                    target_mac: [0; 6],
                    target_ip: h.octets(),
                };
                request.emit(b.get_mut(l3..).unwrap_or_default());
            }
            _ => {
                let (target, src) = (addr16(hop), addr16(me));
                let group = icmpv6::solicited_node(target);
                let mac = [0x33, 0x33, group[12], group[13], group[14], group[15]];
                icmpv6::emit_nd_frame(b, mac, port_mac, src, group, |m| {
                    icmpv6::emit_neighbor_solicit(m, target, port_mac)
                });
            }
        }
        self.counters.neighbour_requests.add(1);
        true
    }
}
