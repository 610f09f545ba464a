//! The kernel's interface addresses (`getifaddrs`): what the host stack holds on each
//! interface, so the control side can notice one removed by hand from a host twin.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An interface's name and its IPv4 and IPv6 addresses with their prefix lengths (the
/// kernel holds 10.0.0.1/24 and 10.0.0.1/32 apart).
pub type InterfaceAddresses = (String, Vec<(IpAddr, u8)>);

/// Every interface (one that has no address is listed with none: it exists).
pub fn interface_addresses() -> io::Result<Vec<InterfaceAddresses>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success the list is freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out: Vec<InterfaceAddresses> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: the kernel's interface name is a NUL-terminated string in the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        // SAFETY: each pointer is the list's own (or null, checked in `ip`).
        let addr = unsafe { ip(ifa.ifa_addr) };
        // SAFETY: as above; the netmask has the address's family.
        let len = unsafe { ip(ifa.ifa_netmask) }.map_or(0, |m| match m {
            IpAddr::V4(m) => u32::from(m).count_ones() as u8,
            IpAddr::V6(m) => u128::from(m).count_ones() as u8,
        });
        let at = match out.iter().position(|(n, _)| *n == name) {
            Some(k) => k,
            None => {
                out.push((name.into_owned(), Vec::new()));
                out.len() - 1
            }
        };
        out[at].1.extend(addr.map(|a| (a, len)));
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IPv4 or IPv6 address a sockaddr holds.
///
/// # Safety
/// `sa` is null or points at a valid sockaddr of the size its family implies.
unsafe fn ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller's promise; each cast matches the family read first.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*sa.cast::<libc::sockaddr_in>();
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*sa.cast::<libc::sockaddr_in6>();
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_holds_its_address() {
        let all = interface_addresses().expect("getifaddrs");
        let lo = all.iter().find(|(n, _)| n == "lo").expect("lo listed");
        assert!(
            lo.1.contains(&(IpAddr::V4(Ipv4Addr::LOCALHOST), 8)),
            "{lo:?}"
        );
        assert!(all.iter().all(|(n, _)| !n.is_empty()));
    }
}
