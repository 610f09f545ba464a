//! The established fast lane: a packet of an established NAT or DR connection that needs
//! nothing but its rewrite (its state stays, its next hop is cached and resolved, it fits
//! the port's MTU, its TTL does not expire) forwarded with the least work. Anything else
//! (full NAT, one-packet scheduling, a local server, TUN, an FTP control connection, a
//! state change, a next hop to
//! find or resolve, a frame over the MTU, TTL 1) declines before any effect and takes the
//! general path ([`Engine::forward_conn_to_server`], [`Engine::forward_to_client`]), so
//! both paths leave the same packet, entry, timer and counters.

use super::*;

impl Engine {
    /// Forwards `flow` on connection `id` towards its server (`to_server`) or, a NAT
    /// reply, towards its client; None, with nothing changed, when the general path must.
    /// `opened`: the connection was made for this packet, which `new_conn` already tracked
    /// (state, timer, sync), so only the forwarding is left.
    #[inline(always)]
    pub(super) fn forward_fast<F: Frame>(
        &mut self,
        snap: &Snapshot,
        now: u32,
        (id, to_server, opened): (crate::conn::ConnId, bool, bool),
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        let c = self.table.get(id)?;
        if c.flags & (flags::ONE_PACKET | flags::LOCAL | flags::FULL_NAT) != 0
            || self.ftp_watches(c)
        {
            return None;
        }
        let (nat, dir) = match (c.method, to_server) {
            (ForwardMethod::Nat, true) => (true, Direction::Input),
            (ForwardMethod::Nat, false) => (true, Direction::Output),
            (ForwardMethod::Dr, true) => (false, client_direction(ForwardMethod::Dr)),
            _ => return None,
        };
        let (state, deadline, in_pkts) = (c.state, c.expires, c.in_pkts);
        // (An opening packet's state came with the entry: the general path does not track
        // it again either.)
        let moves = !opened && state_after(self.tcp_tables, dir, flow, state) != Some(state);
        if moves || (nat && flow.ttl <= 1) {
            return None;
        }
        if c.hop_epoch != self.hop_epoch {
            return None;
        }
        let hop = self.hops.get(usize::from(if to_server {
            c.hop_to_server
        } else {
            c.hop_to_client
        }))?;
        let out = snap.ports.get(usize::from(hop.port))?;
        let bytes = flow.end() - flow.l3();
        if hop.pending.is_some() || bytes > usize::from(out.mtu) {
            return None;
        }
        let (service, dest) = (usize::from(c.service), c.dest as usize);
        let (addr, port) = if to_server {
            (c.daddr, c.dport)
        } else {
            (c.vaddr, c.vport)
        };
        let (out_port, hop_mac, port_mac) = (hop.port, hop.mac, out.mac);
        // What tracking does for a packet that keeps the state, then the forwarding.
        if !opened {
            let timeout = self.timeouts.of(flow.proto, state);
            let expires = now.saturating_add(timeout);
            // Within the second of the last packet the deadline stands and, once its
            // client packets are counted out, the entry's line is left clean (no write
            // back to memory when it is evicted).
            if expires != deadline {
                self.table.set_expires(id, expires);
            }
            if to_server && in_pkts < IN_PKTS_KEPT {
                self.table.count_in_packet(id);
            }
            self.sync_refresh(id, now, timeout);
        }
        if to_server {
            self.counters.inbound(service, dest, bytes);
        } else {
            self.counters.outbound(service, dest, bytes);
        }
        if nat {
            let side = if to_server { Side::Dst } else { Side::Src };
            rewrite(frame.bytes_mut(), flow, side, addr, port);
        }
        set_macs(frame.bytes_mut(), hop_mac, port_mac);
        Some(Verdict::Forward { port: out_port })
    }
}
