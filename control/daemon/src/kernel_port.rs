//! Ports on a Linux interface the kernel keeps (AF_XDP, AF_PACKET): what rvs checks
//! before DPDK opens them, so that a user gets the reason rather than "Invalid argument",
//! and the XDP program DPDK attaches, found and taken off again.

use rvs_control::config::{KernelDevice, KernelSocket};
use rvs_control::iproute::ip;
use std::path::PathBuf;

/// The name of the program DPDK's AF_XDP driver (through libxdp) attaches.
pub const XSK_PROGRAM: &str = "xsk_def_prog";

fn sysfs(iface: &str) -> PathBuf {
    PathBuf::from("/sys/class/net").join(iface)
}

/// The interface's active receive queues.
pub fn rx_queues(iface: &str) -> Option<usize> {
    let dir = std::fs::read_dir(sysfs(iface).join("queues")).ok()?;
    Some(
        dir.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count(),
    )
}

fn read_number(iface: &str, file: &str) -> Option<u64> {
    std::fs::read_to_string(sysfs(iface).join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An XDP program attached to an interface: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpProgram {
    pub id: u32,
    pub name: String,
}

/// The XDP program `ip -details link show` reports on the interface, if any.
pub fn attached_program(iface: &str) -> Option<XdpProgram> {
    let out = std::process::Command::new("ip")
        .args(["-details", "link", "show", "dev", iface])
        .output()
        .ok()?;
    parse_program(&String::from_utf8_lossy(&out.stdout))
}

/// From `ip -details link show`: "prog/xdp id 26 name xsk_def_prog tag ... jited".
fn parse_program(text: &str) -> Option<XdpProgram> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("prog/xdp"))?;
    let mut words = line.split_whitespace();
    let mut id = None;
    let mut name = String::new();
    while let Some(w) = words.next() {
        match w {
            "id" => id = words.next().and_then(|v| v.parse().ok()),
            "name" => name = words.next().unwrap_or_default().to_string(),
            _ => {}
        }
    }
    Some(XdpProgram { id: id?, name })
}

/// Takes DPDK's program off the interface, if it is the one attached; true if it did.
pub fn release(iface: &str) -> bool {
    if attached_program(iface).is_none_or(|p| p.name != XSK_PROGRAM) {
        return false;
    }
    ip(&["link", "set", "dev", iface, "xdp", "off"]).is_ok()
}

/// What is wrong with a kernel interface for a port that wants `queues` rx queues, before
/// DPDK opens it; notices (things that work but may surprise) are returned.
pub fn check_before_open(dev: &KernelDevice, queues: u16) -> Result<Vec<String>, String> {
    let iface = dev.iface.as_str();
    if !sysfs(iface).exists() {
        return Err(format!(
            "no Linux interface {iface:?} here (ip link show shows the names)"
        ));
    }
    let mut notices = Vec::new();
    let active = rx_queues(iface).unwrap_or(1);
    if active < usize::from(queues) {
        return Err(format!(
            "{iface} has {active} active rx queue(s), rvs reads {queues}: give it more \
             (ethtool -L {iface} combined {queues}; a veth is created with numrxqueues \
             {queues} numtxqueues {queues}) or run fewer workers"
        ));
    }
    if active > usize::from(queues) {
        notices.push(format!(
            "{iface} has {active} active rx queues and rvs reads {queues}: what the device \
             puts on the others reaches the kernel, not rvs (ethtool -L {iface} combined \
             {queues}, or rx_queues = {active} with as many workers)"
        ));
    }
    if dev.socket == KernelSocket::AfXdp {
        if let Some(p) = attached_program(iface) {
            if p.name != XSK_PROGRAM {
                return Err(format!(
                    "{iface} already runs XDP program {:?} (id {}); AF_XDP would replace it: \
                     take it off first if nothing needs it (ip link set dev {iface} xdp off)",
                    p.name, p.id
                ));
            }
            // Left by an AF_XDP process that was killed: nothing reads its sockets.
            if release(iface) {
                notices.push(format!(
                    "{iface}: took off the XDP program (id {}) an earlier run left attached",
                    p.id
                ));
            }
        }
    }
    // IFF_UP in the interface's flags ("0x1003").
    let up = std::fs::read_to_string(sysfs(iface).join("flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|f| f & 1 == 1);
    if !up {
        ip(&["link", "set", "dev", iface, "up"])
            .map_err(|e| format!("{iface} is down and could not be set up: {e}"))?;
        notices.push(format!("{iface} was down: set it up"));
    }
    Ok(notices)
}

/// An MTU the interface has that the port cannot receive whole: AF_XDP puts each frame in
/// one buffer, at most `max_mtu` (the driver's bound), `room_mtu` as rvs sized them.
pub fn check_mtu(dev: &KernelDevice, max_mtu: u16, room_mtu: u16) -> Result<(), String> {
    let iface = dev.iface.as_str();
    let Some(mtu) = read_number(iface, "mtu") else {
        return Ok(());
    };
    if dev.socket != KernelSocket::AfXdp || mtu <= u64::from(max_mtu.min(room_mtu)) {
        return Ok(());
    }
    if mtu <= u64::from(max_mtu) {
        return Err(format!(
            "{iface} has MTU {mtu} and rvs's buffers take MTU {room_mtu}: set mtu = {mtu} \
             in this [[port]] (rvs sizes its buffers from it)"
        ));
    }
    Err(format!(
        "{iface} has MTU {mtu}, and AF_XDP takes frames of one buffer, MTU {max_mtu} at \
         most: lower it and its senders' (ip link set dev {iface} mtu 1500; on a veth, \
         both ends)"
    ))
}

/// The likely causes of DPDK's bare error when it sets up an AF_XDP queue.
pub fn explain_setup_error(dev: &KernelDevice, error: &str) -> String {
    let iface = &dev.iface;
    if dev.socket != KernelSocket::AfXdp {
        return error.to_string();
    }
    format!(
        "{error} (AF_XDP on {iface}: the kernel refused the socket or its program; a veth \
         refuses XDP when its peer's MTU is above about 3,500 (lower both ends), a device \
         refuses queues it does not have (ethtool -l {iface}), and `dmesg` or \
         `ip -details link show dev {iface}` tell more)"
    )
}

/// Interface counters the kernel keeps beside DPDK's (drops before rvs sees a frame).
pub fn kernel_counters(iface: &str) -> Vec<(String, u64)> {
    [
        "rx_dropped",
        "rx_missed_errors",
        "rx_fifo_errors",
        "tx_dropped",
    ]
    .iter()
    .filter_map(|c| {
        read_number(iface, &format!("statistics/{c}")).map(|v| (format!("kernel_{c}"), v))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attached_program_is_read_from_ip_details() {
        let text = "5: rvsx-out@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdp qdisc noqueue\n    link/ether 92:c3:41:0c:d7:82 brd ff:ff:ff:ff:ff:ff link-netns xc promiscuity 0\n    veth\n    prog/xdp id 26 name xsk_def_prog tag dc1bcff258c01244 jited addrgenmode eui64\n";
        assert_eq!(
            parse_program(text),
            Some(XdpProgram {
                id: 26,
                name: XSK_PROGRAM.into()
            })
        );
        assert_eq!(
            parse_program("2: eth0: <UP> mtu 1500\n    link/ether\n"),
            None
        );
    }

    #[test]
    fn a_missing_interface_is_named() {
        let dev = KernelDevice {
            socket: KernelSocket::AfXdp,
            iface: "rvs-nonesuch0".into(),
        };
        let e = check_before_open(&dev, 1).unwrap_err();
        assert!(e.contains("no Linux interface \"rvs-nonesuch0\""), "{e}");
    }

    #[test]
    fn loopback_has_one_queue() {
        let dev = KernelDevice {
            socket: KernelSocket::AfPacket,
            iface: "lo".into(),
        };
        let e = check_before_open(&dev, 2).unwrap_err();
        assert!(
            e.contains("lo has 1 active rx queue(s), rvs reads 2"),
            "{e}"
        );
        assert!(
            check_mtu(&dev, 1500, 1500).is_ok(),
            "AF_PACKET takes any MTU"
        );
    }
}
