//! The VRRP runtime's sockets on the host twins: raw IPv4 VRRP and AH sockets (group
//! joins, unicast peers), IPv6 unicast sockets, and the receiving threads that hand
//! adverts to the controller.

use super::*;

/// A raw VRRP socket on the link's twin: `send` is bound to the source address (version
/// 3's checksum covers it); the receiving one is not, since a bound raw socket gets only
/// packets to its own address, not to the group (which [`join_group`] joins).
pub(super) fn open_socket(link: &Link, src: Ipv4Addr, send: bool) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(vrrp::PROTO))),
    )?;
    s.bind_device(Some(link.twin.as_bytes()))?;
    if send {
        // A configured source the twin lacks (track_src_ip: the instance waits in FAULT
        // until it is there) can still be bound.
        s.set_freebind(true)?;
        // The bound device already sends multicast out of the twin; naming the source's
        // interface fails while it lacks the address.
        let _ = s.set_multicast_if_v4(&src);
        s.set_multicast_ttl_v4(255)?;
        s.set_ttl(255)?;
        s.set_multicast_loop_v4(false)?;
        s.bind(&SocketAddr::new(IpAddr::V4(src), 0).into())?;
    } else {
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    Ok(s)
}

/// Joins an instance's IPv4 group on a receiving socket (once per group and socket), on
/// the twin by its index (its source address may be missing: track_src_ip).
pub(super) fn join_group(s: &Socket, group: IpAddr, twin: u32) -> std::io::Result<()> {
    let IpAddr::V4(g) = group else { return Ok(()) };
    match s.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(twin)) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(()),
        r => r,
    }
}

pub(super) fn receive(link: usize, s: Socket, tx: Sender<Event>, stop: Arc<AtomicBool>) {
    crate::datagrams::receive_until(s, 2048, &stop, |bytes| {
        // A full queue (a flood) drops here, never blocks the controller.
        let _ = tx.try_send(Event::Packet {
            link,
            bytes: bytes.to_vec(),
        });
    });
}

/// A raw AH socket on the link's twin whose packets carry their own IPv4 header (the ICV
/// covers it), multicast from `src`, TTL 255.
pub(super) fn open_ah(link: &Link, src: Ipv4Addr) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(ah::PROTO))),
    )?;
    s.bind_device(Some(link.twin.as_bytes()))?;
    s.set_header_included_v4(true)?;
    s.set_multicast_if_v4(&src)?;
    s.set_multicast_loop_v4(false)?;
    Ok(s)
}

/// A raw AH socket receiving on the link's twin (its instances' groups joined).
pub(super) fn open_ah_receiving(link: &Link) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(ah::PROTO))),
    )?;
    s.bind_device(Some(link.twin.as_bytes()))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// A raw IPv6 VRRP socket on the link's twin for unicast adverts from `src` (a link-local
/// source carries the twin's `scope`), hop limit `hops`; the checksum is written by rvs.
pub(super) fn open_unicast6(
    link: &Link,
    src: Ipv6Addr,
    hops: u8,
    scope: u32,
) -> std::io::Result<Socket> {
    let s = Socket::new(
        Domain::IPV6,
        Type::RAW,
        Some(Protocol::from(i32::from(vrrp::PROTO))),
    )?;
    s.bind_device(Some(link.twin.as_bytes()))?;
    s.set_unicast_hops_v6(u32::from(hops))?;
    // The port's address may still be tentative on the twin (duplicate address detection).
    s.set_freebind_ipv6(true)?;
    s.bind(&SocketAddr::V6(scoped(src, scope)).into())?;
    Ok(s)
}

/// `addr` as a socket address: a link-local one in `scope`.
pub(super) fn scoped(addr: Ipv6Addr, scope: u32) -> std::net::SocketAddrV6 {
    let scope = if addr.is_unicast_link_local() {
        scope
    } else {
        0
    };
    std::net::SocketAddrV6::new(addr, 0, 0, scope)
}

/// Reads IPv6 frames from a twin's link-layer socket until told to stop, handing on those
/// that carry VRRP (the rest of the twin's IPv6 traffic is dropped here).
pub(super) fn receive_frames(
    link: usize,
    s: PacketSocket,
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match s.recv(&mut buf) {
            Ok(n) => {
                let frame = buf.get(..n).unwrap_or(&[]);
                if ipv6_vrrp(frame).is_some() {
                    let _ = tx.try_send(Event::Frame {
                        link,
                        bytes: frame.to_vec(),
                    });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What an IPv6 VRRP frame carries.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Advert6<'a> {
    pub(super) hop_limit: u8,
    pub(super) src: [u8; 16],
    pub(super) dst: [u8; 16],
    /// The VRRP message.
    pub(super) body: &'a [u8],
}

/// An IPv6 VRRP frame's hop limit, addresses and message (untagged Ethernet, no extension
/// headers: what RFC 5798 sends), or None.
pub(super) fn ipv6_vrrp(frame: &[u8]) -> Option<Advert6<'_>> {
    if frame.get(12..14)? != ETHERTYPE_IPV6.to_be_bytes() {
        return None;
    }
    let ip = frame.get(14..54)?;
    if ip[0] >> 4 != 6 || ip[6] != vrrp::PROTO {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let body = frame.get(54..54 + len)?;
    Some(Advert6 {
        hop_limit: ip[7],
        src: ip[8..24].try_into().ok()?,
        dst: ip[24..40].try_into().ok()?,
        body,
    })
}
