//! Classification: a frame parsed once into its [`Flow`], the connection keys it looks up,
//! the prefetch ahead of a burst, and which worker owns a flow.

use super::*;
use crate::rss;

/// Whether a packet is a whole datagram or an IP fragment (with its identification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frag {
    Whole,
    /// Offset 0: it carries the L4 header.
    First(u32),
    /// A later fragment: no L4 header, it follows its first.
    Later(u32),
}

/// A parsed packet's addressing.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flow {
    pub(super) v6: bool,
    /// Where the IP and L4 headers start and the IP datagram ends in the frame (a frame
    /// is at most 64 KiB, as an mbuf segment): [`Flow::l3`], [`Flow::l4`], [`Flow::end`].
    l3_at: u16,
    l4_at: u16,
    end_at: u16,
    pub(super) proto: u8,
    /// The addresses as the connection keys hold them (IPv4 mapped): a key is built by
    /// copying, and IPv4 is read and rewritten without a detour through `IpAddr`.
    pub(super) src: Addr16,
    pub(super) dst: Addr16,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) tcp_flags: u8,
    /// SCTP: the chunk that drives the state machine (None: a packet without chunks).
    pub(super) sctp_chunk: Option<u8>,
    pub(super) ttl: u8,
    pub(super) df: bool,
    pub(super) frag: Frag,
    /// The hash of the connection key this packet looks up, when a burst's first stage
    /// computed it ([`Flow::hash`]; kept as a word and a side, not an enum, so the flow
    /// packs tighter).
    key_hash: u64,
    key_side: KeySide,
    /// What the destination is to the appliance, when the burst's first stage looked.
    pub(super) dst_class: Option<AddrClass>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeySide {
    None,
    In,
    Out,
}

/// Which index a packet looks up first and its key's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyHash {
    None,
    In(u64),
    Out(u64),
}

impl Flow {
    #[inline]
    pub(super) fn l3(&self) -> usize {
        usize::from(self.l3_at)
    }

    #[inline]
    pub(super) fn l4(&self) -> usize {
        usize::from(self.l4_at)
    }

    #[inline]
    pub(super) fn end(&self) -> usize {
        usize::from(self.end_at)
    }

    /// Moves the datagram's end (bytes inserted into it).
    pub(super) fn set_end(&mut self, end: u16) {
        self.end_at = end;
    }

    #[inline]
    pub(super) fn src_ip(&self) -> IpAddr {
        ip_of(&self.src)
    }

    #[inline]
    pub(super) fn dst_ip(&self) -> IpAddr {
        ip_of(&self.dst)
    }

    /// The key hash a burst's first stage computed (None: computed at the lookup).
    #[inline]
    pub(super) fn hash(&self) -> KeyHash {
        match self.key_side {
            KeySide::None => KeyHash::None,
            KeySide::In => KeyHash::In(self.key_hash),
            KeySide::Out => KeyHash::Out(self.key_hash),
        }
    }

    #[inline]
    fn set_hash(&mut self, h: KeyHash) {
        (self.key_side, self.key_hash) = match h {
            KeyHash::None => (KeySide::None, 0),
            KeyHash::In(h) => (KeySide::In, h),
            KeyHash::Out(h) => (KeySide::Out, h),
        };
    }

    /// The hash of the client-side key, if known.
    #[inline]
    pub(super) fn in_hash(&self) -> Option<u64> {
        match self.hash() {
            KeyHash::In(h) => Some(h),
            _ => None,
        }
    }

    #[inline]
    pub(super) fn out_hash(&self) -> Option<u64> {
        match self.hash() {
            KeyHash::Out(h) => Some(h),
            _ => None,
        }
    }

    /// The client's flow whose reply an ICMP error quotes (the quoted datagram went VIP ->
    /// client, this flow goes client -> VIP), as IPVS's schedule_icmp schedules it: no TCP
    /// flags or SCTP chunk, so it opens no state; the offsets stay the error's.
    pub(super) fn quoted_reversed(&self, emb: &super::icmp_errors::Embedded) -> Flow {
        Flow {
            proto: emb.proto,
            src: addr16(emb.dst),
            dst: addr16(emb.src),
            sport: emb.dport,
            dport: emb.sport,
            tcp_flags: 0,
            sctp_chunk: None,
            frag: Frag::Whole,
            key_hash: 0,
            key_side: KeySide::None,
            dst_class: None,
            ..*self
        }
    }
}

pub(super) fn is_echo_request(b: &[u8], flow: &Flow) -> bool {
    let Some(l4) = b.get(flow.l4()..flow.end()) else {
        return false;
    };
    match (flow.v6, flow.proto) {
        (false, proto::ICMP) => {
            IcmpPacket::new_checked(l4).is_ok_and(|m| m.msg_type() == icmp::ECHO_REQUEST)
        }
        (true, proto::ICMPV6) => {
            Icmpv6Packet::new_checked(l4).is_ok_and(|m| m.msg_type() == icmpv6::ECHO_REQUEST)
        }
        _ => false,
    }
}

#[inline]
/// `ip_checksum_good`: the NIC verified the IPv4 header checksum (not checked again).
pub(super) fn parse_flow(
    b: &[u8],
    l3: usize,
    v6: bool,
    ip_checksum_good: bool,
) -> Result<Flow, DropReason> {
    let bytes = b.get(l3..).ok_or(DropReason::Malformed)?;
    let (proto_num, src, dst, l4, end, ttl, df, frag) = if v6 {
        let ip = Ipv6Packet::new_checked(bytes).map_err(|_| DropReason::Malformed)?;
        let loc = ip.l4().map_err(|_| DropReason::Unsupported)?;
        let frag = match loc.fragment {
            None => Frag::Whole,
            Some(f) if f.later => Frag::Later(f.id),
            Some(f) => Frag::First(f.id),
        };
        let (src, dst) = (ip.src(), ip.dst());
        // IPv4-mapped addresses are not used on the wire (RFC 4291 2.5.5.2; Linux drops
        // such sources), and here they would stand for IPv4 flows.
        if mapped_v4(&src).is_some() || mapped_v4(&dst).is_some() {
            return Err(DropReason::Martian);
        }
        (
            loc.protocol,
            src,
            dst,
            l3 + loc.offset,
            l3 + ip.total_len(),
            ip.hop_limit(),
            true,
            frag,
        )
    } else {
        let ip = Ipv4Packet::new_checked(bytes).map_err(|_| DropReason::Malformed)?;
        if !ip_checksum_good && !ip.verify_checksum() {
            return Err(DropReason::Malformed);
        }
        let frag = match (ip.is_fragment(), ip.frag_offset()) {
            (false, _) => Frag::Whole,
            (true, 0) => Frag::First(u32::from(ip.ident())),
            (true, _) => Frag::Later(u32::from(ip.ident())),
        };
        (
            ip.protocol(),
            v4_mapped(ip.src()),
            v4_mapped(ip.dst()),
            l3 + ip.header_len(),
            l3 + ip.total_len(),
            ip.ttl(),
            ip.dont_fragment(),
            frag,
        )
    };
    let l4b = b.get(l4..end).ok_or(DropReason::Malformed)?;
    let mut sctp_chunk = None;
    let (sport, dport, tcp_flags) = match (frag, proto_num) {
        (Frag::Whole, _) => l4_fields(l4b, proto_num, &mut sctp_chunk)?,
        (Frag::Later(_), _) => (0, 0, 0),
        // SCTP packets are not split by IP (SCTP fragments its own messages), and a CRC
        // over a datagram spread over fragments cannot be kept right by a NAT.
        (Frag::First(_), proto::SCTP) => return Err(DropReason::Unsupported),
        // A first fragment must hold the whole L4 header (RFC 1858's tiny fragments are
        // malformed); the length fields span the datagram, not this fragment.
        (Frag::First(_), proto::TCP) => {
            let h: [u8; tcp::MIN_HEADER_LEN] =
                rvs_wire::array_at(l4b, 0).ok_or(DropReason::Malformed)?;
            let [s0, s1, d0, d1, ..] = h;
            (
                u16::from_be_bytes([s0, s1]),
                u16::from_be_bytes([d0, d1]),
                h[13],
            )
        }
        (Frag::First(_), proto::UDP) => {
            let h: [u8; 8] = rvs_wire::array_at(l4b, 0).ok_or(DropReason::Malformed)?;
            let [s0, s1, d0, d1, ..] = h;
            (
                u16::from_be_bytes([s0, s1]),
                u16::from_be_bytes([d0, d1]),
                0,
            )
        }
        (Frag::First(_), _) => (0, 0, 0),
    };
    // (Offsets within a frame: past 64 KiB none is one rvs can hold.)
    let at = |offset: usize| u16::try_from(offset).map_err(|_| DropReason::Malformed);
    Ok(Flow {
        v6,
        l3_at: at(l3)?,
        l4_at: at(l4)?,
        end_at: at(end)?,
        proto: proto_num,
        src,
        dst,
        sport,
        dport,
        tcp_flags,
        sctp_chunk,
        ttl,
        df,
        frag,
        key_hash: 0,
        key_side: KeySide::None,
        dst_class: None,
    })
}

/// The common frame read in one pass: untagged Ethernet, IPv4 without options, not a
/// fragment, a whole TCP or UDP header, and (unless the NIC checked it) a good header
/// checksum. None for anything else, which the general parse takes, so both give the same
/// flow wherever this one gives any (a property test holds them to it).
///
/// Written into `out` in place (Some), not returned: a flow is about 100 bytes, and
/// returning it, wrapping it and storing it cost two copies a packet.
#[inline]
fn plain_ipv4(b: &[u8], ip_checksum_good: bool, out: &mut Parsed) -> Option<()> {
    const L3: usize = ethernet::HEADER_LEN;
    const L4: usize = L3 + ipv4::MIN_HEADER_LEN;
    let h: &[u8; L4] = b.get(..L4)?.try_into().ok()?;
    let word = |at: usize| rvs_wire::array_at(h, at).map_or(0, u16::from_be_bytes);
    // IPv4 ethertype, version 4 with a 20-byte header, no MF flag nor offset.
    let flags_frag = word(L3 + 6);
    if word(12) != EtherType::IPV4 || h[L3] != 0x45 || flags_frag & 0x3fff != 0 {
        return None;
    }
    let end = L3 + usize::from(word(L3 + 2));
    if b.len() < end {
        return None;
    }
    if !ip_checksum_good && !checksum::ipv4_header_ok(h[L3..].try_into().ok()?) {
        return None;
    }
    let proto_num = h[L3 + 9];
    if !matches!(proto_num, proto::TCP | proto::UDP) {
        return None;
    }
    let (sport, dport, tcp_flags) = l4_fields(b.get(L4..end)?, proto_num, &mut None).ok()?;
    let addr = |at: usize| v4_mapped(rvs_wire::array_at(h, at).unwrap_or_default());
    *out = Parsed(Parse::Ip(Flow {
        v6: false,
        l3_at: L3 as u16,
        l4_at: L4 as u16,
        end_at: u16::try_from(end).ok()?,
        proto: proto_num,
        src: addr(L3 + 12),
        dst: addr(L3 + 16),
        sport,
        dport,
        tcp_flags,
        sctp_chunk: None,
        ttl: h[L3 + 8],
        df: flags_frag & 0x4000 != 0,
        frag: Frag::Whole,
        key_hash: 0,
        key_side: KeySide::None,
        dst_class: None,
    }));
    Some(())
}

/// The ports (and TCP flags, SCTP's state chunk) of a whole datagram's L4 header.
#[inline]
fn l4_fields(
    l4b: &[u8],
    proto_num: u8,
    sctp_chunk: &mut Option<u8>,
) -> Result<(u16, u16, u8), DropReason> {
    Ok(match proto_num {
        proto::TCP => {
            let t = TcpPacket::new_checked(l4b).map_err(|_| DropReason::Malformed)?;
            (t.src_port(), t.dst_port(), t.flags())
        }
        proto::UDP => {
            let u = UdpPacket::new_checked(l4b).map_err(|_| DropReason::Malformed)?;
            (u.src_port(), u.dst_port(), 0)
        }
        proto::SCTP => {
            let s = SctpPacket::new_checked(l4b).map_err(|_| DropReason::Malformed)?;
            *sctp_chunk = s.state_chunk();
            (s.src_port(), s.dst_port(), 0)
        }
        _ => (0, 0, 0),
    })
}

/// A packet that may open a connection where none is: a TCP SYN (without RST), an SCTP
/// INIT. Other protocols' packets are not told apart (any UDP datagram opens one).
#[inline]
pub(super) fn opens_connection(flow: &Flow) -> bool {
    match flow.proto {
        proto::TCP => flow.tcp_flags & (tcp::SYN | tcp::RST) == tcp::SYN,
        proto::SCTP => flow.sctp_chunk == Some(rvs_wire::sctp::chunk::INIT),
        _ => true,
    }
}

/// A packet that ends its association at once: a TCP RST, an SCTP packet whose first
/// chunk is an ABORT.
#[inline]
pub(super) fn aborts(flow: &Flow) -> bool {
    match flow.proto {
        proto::TCP => flow.tcp_flags & tcp::RST != 0,
        proto::SCTP => flow.sctp_chunk == Some(rvs_wire::sctp::chunk::ABORT),
        _ => false,
    }
}

/// Protocols balanced by port: TCP, UDP, SCTP.
#[inline]
pub(super) fn has_ports(proto_num: u8) -> bool {
    matches!(proto_num, proto::TCP | proto::UDP | proto::SCTP)
}

/// A packet's client-side key (client -> VIP).
#[inline]
pub(super) fn in_key(flow: &Flow) -> InKey {
    InKey {
        proto: flow.proto,
        caddr: flow.src,
        cport: flow.sport,
        vaddr: flow.dst,
        vport: flow.dport,
    }
}

/// A packet's reply-side key (real server -> client, NAT).
#[inline]
pub(super) fn out_key(flow: &Flow) -> OutKey {
    OutKey {
        proto: flow.proto,
        daddr: flow.src,
        dport: flow.sport,
        caddr: flow.dst,
        cport: flow.dport,
    }
}

/// `a` with all but its first `prefix` bits cleared (persistence netmasks, route prefixes).
pub fn masked(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let p = u32::from(prefix.min(32));
            let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let p = u32::from(prefix.min(128));
            let m = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// Multicast or limited broadcast: never forwarded, possibly of interest to the host.
pub(super) fn is_group_address(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => v.is_multicast() || v.is_broadcast(),
        IpAddr::V6(v) => v.is_multicast(),
    }
}

/// The worker that owns a frame's flow: a hash of the client endpoint (client address and
/// port), the one part of the tuple that is the same in both directions of NAT, DR and TUN.
/// Frames without one (ARP, ICMP, non-IP) belong to the worker that received them (None).
/// A first IP fragment notes its owner in `frags` for the later ones, which have no ports.
pub fn flow_owner(
    snap: &Snapshot,
    frame: &[u8],
    workers: usize,
    frags: &FragOwners,
) -> Option<usize> {
    if workers <= 1 {
        return None;
    }
    Parsed::of(frame).owner(snap, frame, workers, frags)
}

/// A frame as a burst's first stage leaves it: parsed once, its connection key hashed
/// once and the key's index line prefetched; the later stages (the owner, the entry's
/// prefetch, the engine's work) start from it instead of the bytes.
#[derive(Debug, Clone, Copy)]
pub struct Parsed(Parse);

#[derive(Debug, Clone, Copy)]
enum Parse {
    Arp {
        l3: usize,
    },
    Ip(Flow),
    Bad(DropReason),
    /// Neither ARP nor IP: the host's.
    Other,
}

impl Default for Parsed {
    fn default() -> Self {
        Parsed(Parse::Other)
    }
}

impl Parsed {
    /// Parses a frame (no key hashed).
    #[inline]
    pub fn of(frame: &[u8]) -> Parsed {
        Parsed::of_checked(frame, false)
    }

    /// As [`Parsed::of`]; `ip_checksum_good`: the NIC found the IPv4 header checksum good.
    #[inline]
    pub fn of_checked(frame: &[u8], ip_checksum_good: bool) -> Parsed {
        let mut p = Parsed::default();
        p.read(frame, ip_checksum_good);
        p
    }

    /// As [`Parsed::of_checked`], written over `self` in place (a burst's parse stage
    /// fills its slots so: no copy of the flow).
    #[inline]
    pub fn read(&mut self, frame: &[u8], ip_checksum_good: bool) {
        if plain_ipv4(frame, ip_checksum_good, self).is_none() {
            *self = Parsed::of_any(frame, ip_checksum_good);
        }
    }

    /// Any frame: tags, IPv6, fragments, options, ARP, and what is malformed.
    fn of_any(frame: &[u8], ip_checksum_good: bool) -> Parsed {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Parsed(Parse::Bad(DropReason::Malformed));
        };
        let l3 = eth.header_len();
        Parsed(match eth.ethertype() {
            EtherType::ARP => Parse::Arp { l3 },
            EtherType::IPV4 | EtherType::IPV6 => {
                let v6 = eth.ethertype() == EtherType::IPV6;
                match parse_flow(frame, l3, v6, ip_checksum_good) {
                    Ok(flow) => Parse::Ip(flow),
                    Err(r) => Parse::Bad(r),
                }
            }
            _ => Parse::Other,
        })
    }

    /// The worker that owns the frame's flow (see [`flow_owner`]).
    pub fn owner(
        &self,
        snap: &Snapshot,
        frame: &[u8],
        workers: usize,
        frags: &FragOwners,
    ) -> Option<usize> {
        let Parse::Ip(flow) = &self.0 else {
            return None;
        };
        if workers <= 1 {
            return None;
        }
        if let Frag::Later(id) = flow.frag {
            return frags.owner(&FragKey::of(flow, id));
        }
        // A reply to a full-NAT local end that is a VIP belongs with that end (the worker
        // that gave out its port), not with the sender.
        let (client, port) = if has_ports(flow.proto) {
            // The first stage classified the destination already (Engine::parse).
            let dst = flow
                .dst_class
                .unwrap_or_else(|| snap.class_of_mapped(&flow.dst));
            let reply_to_local_end = || dst.is_local_end() && snap.is_next_hop(flow.src_ip());
            if dst.is_vip() && !reply_to_local_end() {
                (flow.src_ip(), flow.sport)
            } else {
                (flow.dst_ip(), flow.dport)
            }
        } else {
            // An ICMP error belongs with the connection it quotes.
            let e = embedded(frame, flow)?;
            let quotes_local_end = snap.is_local_end(e.src) && snap.is_next_hop(e.dst);
            if snap.is_vip(e.src) && !quotes_local_end {
                (e.dst, e.dport)
            } else {
                (e.src, e.sport)
            }
        };
        let owner = owner_of(client, port, workers);
        if let Frag::First(id) = flow.frag {
            frags.note(&FragKey::of(flow, id), owner);
        }
        Some(owner)
    }
}

/// The worker that owns the flows of a client endpoint (see [`flow_owner`]): the one whose
/// queue a NIC steering as rvs programs it (source-only hashing towards the clients,
/// destination-only towards the servers, [`rss`]) puts them on.
#[inline]
pub fn owner_of(client: IpAddr, port: u16, workers: usize) -> usize {
    rss::client_owner(client, port, workers)
}

impl Engine {
    /// A burst's first stage for one frame: parses it, hashes the connection key it will
    /// look up first (the reply side for a reply to a full-NAT local end or to a client,
    /// the client side for a VIP) and asks for that key's index line.
    #[inline]
    pub fn parse(&self, snap: &Snapshot, frame: &[u8]) -> Parsed {
        self.parse_checked(snap, frame, false)
    }

    /// As [`Engine::parse`] for a frame whose IPv4 header checksum the NIC found good
    /// (`ip_checksum_good`: not verified again).
    #[inline]
    pub fn parse_checked(&self, snap: &Snapshot, frame: &[u8], ip_checksum_good: bool) -> Parsed {
        let mut p = Parsed::of_checked(frame, ip_checksum_good);
        self.hash_key(snap, &mut p);
        p
    }

    /// The second half of [`Engine::parse_checked`] for a frame [`Parsed::of_checked`]
    /// parsed: the destination's class, the key's hash, its index line asked for. A burst
    /// may parse every frame first and then hash every key, so that the frames' first
    /// reads overlap.
    #[inline]
    pub fn hash_key(&self, snap: &Snapshot, p: &mut Parsed) {
        if let Parse::Ip(flow) = &mut p.0 {
            if has_ports(flow.proto) && !matches!(flow.frag, Frag::Later(_)) {
                let dst = snap.class_of_mapped(&flow.dst);
                flow.dst_class = Some(dst);
                let hash = if dst.is_local_end() || !dst.is_vip() {
                    let h = self.table.hash_out(&out_key(flow));
                    self.table.prefetch_out(h);
                    KeyHash::Out(h)
                } else {
                    let h = self.table.hash_in(&in_key(flow));
                    self.table.prefetch_in(h);
                    KeyHash::In(h)
                };
                flow.set_hash(hash);
            }
        }
    }

    /// A burst's second stage: asks for the connection entries the frame's lookup will
    /// compare (its index line asked for by [`Engine::parse`]).
    #[inline]
    pub fn prefetch_entry(&self, p: &Parsed) {
        if let Parse::Ip(flow) = &p.0 {
            match flow.hash() {
                KeyHash::In(h) => self.table.prefetch_entries(false, h),
                KeyHash::Out(h) => self.table.prefetch_entries(true, h),
                KeyHash::None => {}
            }
        }
    }

    /// Processes one frame received on `port`.
    pub fn process<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        port: u16,
        frame: &mut F,
    ) -> Verdict {
        let p = Parsed::of(frame.bytes());
        self.process_parsed(snap, loads, now, port, &p, frame)
    }

    /// Processes a frame [`Engine::parse`] (or [`Parsed::of`]) parsed, received on `port`.
    #[inline]
    pub fn process_parsed<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        port: u16,
        p: &Parsed,
        frame: &mut F,
    ) -> Verdict {
        if let Parse::Ip(flow) = &p.0 {
            if let Some(v) = self.established(snap, loads, now, flow, frame) {
                return v;
            }
        }
        self.process_general(snap, loads, now, port, p, frame)
    }

    /// [`Engine::process_parsed`] for what is not a packet of a known connection: out of
    /// line, so that the established path stays small.
    #[inline(never)]
    fn process_general<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        port: u16,
        p: &Parsed,
        frame: &mut F,
    ) -> Verdict {
        match &p.0 {
            Parse::Arp { l3 } => self.arp(snap, now, port, *l3, frame),
            Parse::Ip(flow) => self.ip(snap, loads, now, port, flow, frame),
            Parse::Bad(r) => self.drop(*r),
            Parse::Other => Verdict::ToHost,
        }
    }

    /// The common case straight to its connection: a whole TCP segment without SYN, FIN or
    /// RST (its state stays), or a UDP datagram, of a connection the table holds, by the key
    /// the first stage hashed; forwarded by the fast lane when it takes the packet, else by
    /// the connection's forwarding function. It skips the classification only new and
    /// special packets need (the source was judged when the connection opened); None: the
    /// general path.
    #[inline]
    fn established<F: Frame>(
        &mut self,
        snap: &Snapshot,
        loads: &[DestLoad],
        now: u32,
        flow: &Flow,
        frame: &mut F,
    ) -> Option<Verdict> {
        if flow.frag != Frag::Whole {
            return None;
        }
        match flow.proto {
            proto::TCP if flow.tcp_flags & (tcp::SYN | tcp::FIN | tcp::RST) == 0 => {}
            proto::UDP => {}
            _ => return None,
        }
        match flow.hash() {
            // To a VIP that is not a local end (the first stage's choice).
            KeyHash::In(h) => {
                let dst = flow.dst_class?;
                if dst.turned_away()
                    || snap.director_paused
                    || snap
                        .member_for_mapped(dst, flow.proto, &flow.dst, flow.dport)
                        .is_some()
                {
                    return None;
                }
                let id = self.table.lookup_in_hashed(&in_key(flow), h)?;
                if let Some(v) = self.forward_fast(snap, now, (id, true, false), flow, frame) {
                    return Some(v);
                }
                // A deleted server's connection: the general path drops or reschedules.
                if self.server_removed(snap, id) {
                    return None;
                }
                Some(self.forward_conn_to_server(snap, loads, now, (id, Tracked::No), flow, frame))
            }
            // A reply: to a client or to a full-NAT/SNAT local end. A server on the
            // appliance itself answers through the host, never through here.
            KeyHash::Out(h) => {
                let id = self.table.lookup_out_hashed(&out_key(flow), h)?;
                if self.table.get(id)?.flags & flags::LOCAL != 0 {
                    return None;
                }
                if let Some(v) = self.forward_fast(snap, now, (id, false, false), flow, frame) {
                    return Some(v);
                }
                Some(self.forward_to_client(snap, loads, now, id, flow, frame))
            }
            KeyHash::None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A burst's parsed frames are read and written by every stage: a frame's fits in
    /// 72 bytes (addresses in the tables' form, offsets as 16 bits, the key hash as a word
    /// and a side), 2.3 KiB for a burst of 32.
    #[test]
    fn a_parsed_frame_fits_its_budget() {
        assert!(
            std::mem::size_of::<Parsed>() <= 72,
            "{}",
            std::mem::size_of::<Parsed>()
        );
    }

    /// An untagged IPv4 TCP or UDP frame with a good header checksum.
    fn plain_frame(udp: bool, payload: usize) -> Vec<u8> {
        let l4_len = if udp { 8 } else { 20 } + payload;
        let total = 20 + l4_len;
        let mut f = vec![0u8; 14 + total];
        f[12..14].copy_from_slice(&EtherType::IPV4.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
        f[20] = 0x40; // DF
        f[22] = 64;
        f[23] = if udp { proto::UDP } else { proto::TCP };
        f[26..30].copy_from_slice(&[192, 0, 2, 7]);
        f[30..34].copy_from_slice(&[198, 51, 100, 1]);
        let c = checksum::finish(checksum::accumulate(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        if udp {
            f[38..40].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            f[46] = 0x50;
            f[47] = tcp::ACK;
        }
        f
    }

    /// The one-pass parse's flow, if it takes the frame.
    fn plain(b: &[u8], ip_checksum_good: bool) -> Option<Flow> {
        let mut p = Parsed::default();
        match (plain_ipv4(b, ip_checksum_good, &mut p), p.0) {
            (Some(()), Parse::Ip(flow)) => Some(flow),
            _ => None,
        }
    }

    #[test]
    fn plain_frames_take_the_one_pass_parse() {
        for (udp, payload) in [(false, 0), (false, 10), (true, 0), (true, 1200)] {
            let f = plain_frame(udp, payload);
            let flow = plain(&f, false).expect("a plain frame");
            assert_eq!(
                (flow.sport, flow.dport, flow.ttl, flow.df),
                (40000, 80, 64, true)
            );
        }
        let mut bad = plain_frame(false, 0);
        bad[24] ^= 1;
        assert!(
            plain(&bad, false).is_none(),
            "a bad checksum goes the general way"
        );
        assert!(plain(&bad, true).is_some(), "unless the NIC checked it");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Wherever the one-pass parse gives a flow, the general parse gives the same one:
        /// plain frames with their header fields set to edge values (tags, versions, header
        /// lengths, fragment bits, protocols, length fields), the header checksum right or
        /// wrong and trusted or not, lengths cut or grown, a byte overwritten.
        #[test]
        fn the_one_pass_parse_agrees_with_the_general_one(
            udp in any::<bool>(),
            payload in 0usize..40,
            ethertype in prop_oneof![8 => Just(0x0800u16), 1 => Just(0x8100), 1 => Just(0x86dd), 1 => Just(0x0806)],
            version_ihl in prop_oneof![8 => Just(0x45u8), 1 => Just(0x46), 1 => Just(0x44), 1 => Just(0x65), 1 => any::<u8>()],
            total_delta in prop_oneof![6 => Just(0i32), 1 => -30i32..30],
            flags_frag in prop_oneof![
                3 => Just(0u16), 3 => Just(0x4000), 1 => Just(0x2000), 1 => Just(0x0001),
                1 => Just(0x8000), 1 => any::<u16>()
            ],
            proto_num in prop_oneof![8 => Just(None), 1 => Just(Some(proto::ICMP)), 1 => Just(Some(proto::SCTP)), 1 => any::<u8>().prop_map(Some)],
            l4_field in prop_oneof![4 => Just(None), 3 => (0u8..16).prop_map(Some), 1 => any::<u8>().prop_map(Some)],
            checksum_wrong in prop::bool::weighted(0.2),
            nic_checked in any::<bool>(),
            edit in prop::option::weighted(0.3, (0usize..64, any::<u8>())),
            cut in prop_oneof![6 => Just(0usize), 1 => 0usize..40],
            grow in prop_oneof![6 => Just(0usize), 1 => 0usize..8],
        ) {
            let mut f = plain_frame(udp, payload);
            f[12..14].copy_from_slice(&ethertype.to_be_bytes());
            f[14] = version_ihl;
            let total = (u16::from_be_bytes([f[16], f[17]]) as i32 + total_delta).max(0) as u16;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            f[20..22].copy_from_slice(&flags_frag.to_be_bytes());
            if let Some(p) = proto_num {
                f[23] = p;
            }
            // UDP's length (low byte) or TCP's data offset (in words).
            if let Some(v) = l4_field {
                if udp {
                    f[39] = v;
                } else {
                    f[46] = v << 4;
                }
            }
            f[24..26].copy_from_slice(&[0, 0]);
            let c = checksum::finish(checksum::accumulate(0, &f[14..34])) ^ u16::from(checksum_wrong);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            if let Some(b) = edit.and_then(|(at, v)| Some((f.get_mut(at)?, v))) {
                *b.0 = b.1;
            }
            f.truncate(f.len().saturating_sub(cut));
            f.extend(std::iter::repeat_n(0xa5, grow));
            if let Some(fast) = plain(&f, nic_checked) {
                let Parsed(Parse::Ip(general)) = Parsed::of_any(&f, nic_checked) else {
                    return Err(TestCaseError::fail(format!("general parse refused {f:x?}")));
                };
                prop_assert_eq!(format!("{fast:?}"), format!("{general:?}"));
            }
        }
    }
}
