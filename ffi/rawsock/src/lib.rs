//! A link-layer socket bound to one interface, for whole Ethernet frames built by the
//! caller (gratuitous ARP, unsolicited neighbour advertisements and IPv6 VRRP adverts on a
//! host twin, which the data port then carries). [`PacketSocket::bind`] is send only (it
//! binds to protocol 0, so it receives nothing); [`PacketSocket::bind_receiving`] also
//! receives the interface's frames of one EtherType.

mod hostname;
mod ifaddrs;
mod udpmeta;
pub use hostname::canonical_name;
pub use ifaddrs::{interface_addresses, InterfaceAddresses};
pub use udpmeta::{recv_udp_meta, want_udp_meta, UdpMeta};

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    /// Opens a send-only `AF_PACKET` socket on interface `ifname`.
    pub fn bind(ifname: &str) -> io::Result<PacketSocket> {
        Self::open(ifname, 0)
    }

    /// Opens an `AF_PACKET` socket on `ifname` that receives its frames of `ethertype`
    /// (both directions: the host's own outgoing frames too), each [`Self::recv`] waiting
    /// at most `timeout`.
    pub fn bind_receiving(
        ifname: &str,
        ethertype: u16,
        timeout: std::time::Duration,
    ) -> io::Result<PacketSocket> {
        let sock = Self::open(ifname, ethertype.to_be())?;
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        // SAFETY: `tv` is an initialised timeval passed with its size to a descriptor
        // this socket owns.
        let rc = unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    /// `protocol` in network order (0: none, send only).
    fn open(ifname: &str, protocol: u16) -> io::Result<PacketSocket> {
        let name =
            CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor this function owns; OwnedFd closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = PacketSocket {
            fd,
            ifindex: ifindex as i32,
        };
        let mut addr = sock.address();
        addr.sll_protocol = protocol;
        // SAFETY: `addr` is a fully initialised sockaddr_ll and the length is its size.
        let rc = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    fn address(&self) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr
    }

    /// Sends one whole Ethernet frame (destination MAC first).
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        let mut addr = self.address();
        addr.sll_halen = 6;
        if let Some(dst) = frame.get(..6) {
            addr.sll_addr[..6].copy_from_slice(dst);
        }
        // SAFETY: `frame` is valid for reads of its length, `addr` is an initialised
        // sockaddr_ll passed with its size.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl PacketSocket {
    /// Receives one frame into `buf` (its length; a longer frame is cut to `buf`). An
    /// error of kind WouldBlock or TimedOut when nothing came within the timeout.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of its length for the duration of the call.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_interface_is_an_error() {
        assert!(PacketSocket::bind("rvs-no-such-if0").is_err());
        assert!(PacketSocket::bind("bad\0name").is_err());
        let t = std::time::Duration::from_millis(10);
        assert!(PacketSocket::bind_receiving("rvs-no-such-if0", 0x86dd, t).is_err());
    }

    /// A frame sent on loopback comes back to a receiving socket of its EtherType (root
    /// only: without CAP_NET_RAW the test says so and passes nothing).
    #[test]
    fn a_receiving_socket_gets_its_ethertype_and_times_out() {
        let t = std::time::Duration::from_millis(100);
        let rx = match PacketSocket::bind_receiving("lo", 0x88b5, t) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: no CAP_NET_RAW ({e})");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let mut buf = [0u8; 128];
        let quiet = rx.recv(&mut buf).unwrap_err();
        assert!(
            matches!(
                quiet.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{quiet}"
        );
        let tx = PacketSocket::bind("lo").unwrap();
        let mut frame = [0u8; 60];
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        frame[14..18].copy_from_slice(b"rvs!");
        tx.send(&frame).unwrap();
        let n = (0..10)
            .find_map(|_| rx.recv(&mut buf).ok().filter(|_| buf[14..18] == *b"rvs!"))
            .expect("the frame came back");
        assert_eq!(n, 60);
        assert_eq!(&buf[12..14], &[0x88, 0xb5]);
    }
}
