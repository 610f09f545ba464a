//! One datagram with what the kernel says of how it came: its TTL (hop limit) and the
//! address it was sent to (BFD's GTSM check and session lookup need both). The socket
//! must have IP_RECVTTL and IP_PKTINFO (and, for IPv6, IPV6_RECVHOPLIMIT and
//! IPV6_RECVPKTINFO) set.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpMeta {
    pub len: usize,
    pub from: SocketAddr,
    /// The destination address (IPv4-mapped ones as IPv4).
    pub to: Option<IpAddr>,
    /// The received TTL or hop limit.
    pub ttl: Option<u8>,
    /// The datagram was longer than the buffer.
    pub truncated: bool,
}

fn unmapped(a: Ipv6Addr) -> IpAddr {
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    }
}

/// Receives one datagram on `fd`, waiting as the socket does (its timeout or
/// non-blocking mode: WouldBlock when none came).
pub fn recv_udp_meta(fd: RawFd, buf: &mut [u8]) -> io::Result<UdpMeta> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero bytes are a valid msghdr; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` refers to a live local buffer of the length given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = match i32::from(from.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage.
            let sin =
                unsafe { &*(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6) into the storage.
            let sin6 =
                unsafe { &*(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let port = u16::from_be(sin6.sin6_port);
            match unmapped(Ipv6Addr::from(sin6.sin6_addr.s6_addr)) {
                IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                IpAddr::V6(v6) => {
                    SocketAddr::V6(SocketAddrV6::new(v6, port, 0, sin6.sin6_scope_id))
                }
            }
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no source address",
            ))
        }
    };
    let mut meta = UdpMeta {
        len: n as usize,
        from,
        to: None,
        ttl: None,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    };
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control buffer within
    // msg_controllen, and each payload is read unaligned at the type its level and type
    // name.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    meta.ttl = u8::try_from(v).ok();
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    meta.to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr))));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    meta.to = Some(unmapped(Ipv6Addr::from(p.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(meta)
}

fn on(fd: RawFd, level: i32, name: i32) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: an int option passed with its size on a descriptor the caller holds open.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel for what [`recv_udp_meta`] reads: the TTL and destination of IPv4
/// datagrams and, on an IPv6 socket, the hop limit and destination of IPv6 ones.
pub fn want_udp_meta(fd: RawFd, ipv6: bool) -> io::Result<()> {
    on(fd, libc::IPPROTO_IP, libc::IP_RECVTTL)?;
    on(fd, libc::IPPROTO_IP, libc::IP_PKTINFO)?;
    if ipv6 {
        on(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)?;
        on(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_datagram_comes_with_its_ttl_and_destination() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        want_udp_meta(rx.as_raw_fd(), false).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_ttl(77).unwrap();
        tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 3];
        let mut got = None;
        for _ in 0..100 {
            match recv_udp_meta(rx.as_raw_fd(), &mut buf) {
                Ok(m) => {
                    got = Some(m);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        let m = got.expect("the datagram");
        assert_eq!(m.from, tx.local_addr().unwrap());
        assert_eq!(m.to, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.ttl, Some(77));
        assert!(m.truncated);
        assert_eq!(&buf, b"hel");
        rx.set_nonblocking(true).unwrap();
        let again = recv_udp_meta(rx.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::WouldBlock);
    }
}
