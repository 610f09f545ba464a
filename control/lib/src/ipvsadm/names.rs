//! Addresses and ports as ipvsadm reads and shows them: inet_aton's forms (`10.1`,
//! `0x0a000001`, `010.0.0.1`), host names from /etc/hosts and service names from
//! /etc/services. (No DNS: the appliance's control plane never waits on a resolver.)

use std::net::{IpAddr, Ipv4Addr};

/// inet_aton: one to four parts, each decimal, octal (leading 0) or hex (0x); the last
/// part fills the remaining bytes.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(4);
    for p in &parts {
        let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
            (h, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if p.is_empty() || (digits.is_empty() && radix != 16) {
            return None;
        }
        let v = if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(digits, radix).ok()?
        };
        values.push(v);
    }
    let last = *values.last()?;
    let head = &values[..values.len() - 1];
    if head.iter().any(|&v| v > 255) || last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut addr = last as u32;
    for (i, &v) in head.iter().enumerate() {
        addr |= (v as u32) << (24 - 8 * i);
    }
    Some(Ipv4Addr::from(addr))
}

fn table(path: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// An IPv4 address for a host name in /etc/hosts.
pub fn host_v4(name: &str) -> Option<Ipv4Addr> {
    table("/etc/hosts").into_iter().find_map(|w| {
        let a: Ipv4Addr = w[0].parse().ok()?;
        w[1..].iter().any(|n| n == name).then_some(a)
    })
}

/// The first /etc/hosts name of an address.
pub fn host_name(addr: IpAddr) -> Option<String> {
    table("/etc/hosts").into_iter().find_map(|w| {
        let a: IpAddr = w[0].parse().ok()?;
        (a == addr).then(|| w.get(1).cloned()).flatten()
    })
}

/// A port number for a service name of `proto` ("tcp", "udp", "sctp") in /etc/services.
pub fn service_port(name: &str, proto: &str) -> Option<u16> {
    table("/etc/services").into_iter().find_map(|w| {
        let (port, p) = w.get(1)?.split_once('/')?;
        let names = std::iter::once(&w[0]).chain(&w[2..]);
        (p == proto && names.into_iter().any(|n| n == name))
            .then(|| port.parse().ok())
            .flatten()
    })
}

/// The /etc/services name of a port of `proto`.
pub fn service_name(port: u16, proto: &str) -> Option<String> {
    table("/etc/services").into_iter().find_map(|w| {
        let (p, pr) = w.get(1)?.split_once('/')?;
        (pr == proto && p.parse() == Ok(port)).then(|| w[0].clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_aton_forms() {
        let a = |s: &str| inet_aton(s).map(|a| a.to_string());
        assert_eq!(a("10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(a("010.1").as_deref(), Some("8.0.0.1"));
        assert_eq!(a("0x0a000001").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("167772161").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("10.1.65535").as_deref(), Some("10.1.255.255"));
        assert_eq!(a("256.1.1.1"), None);
        assert_eq!(a("1.2.3.4.5"), None);
        assert_eq!(a("1..2"), None);
        assert_eq!(a("09"), None);
        assert_eq!(a("x"), None);
    }
}
