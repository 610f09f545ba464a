//! The `[[port]]` sections: devices, queues, descriptors, RSS, addresses, peers, host
//! twins.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub(super) name: Spanned<String>,
    pub(super) device: Spanned<String>,
    /// Default: 1; on an AF_XDP port, one per worker (it pairs rx and tx queues).
    pub(super) rx_queues: Option<Spanned<u16>>,
    /// Default: 1,024; 4,096 on an AF_XDP port (a veth or NIC overruns smaller rings).
    pub(super) rx_desc: Option<Spanned<u16>>,
    pub(super) tx_desc: Option<Spanned<u16>>,
    pub(super) mtu: Option<Spanned<u16>>,
    #[serde(default = "yes")]
    pub(super) promiscuous: bool,
    pub(super) peer: Option<Spanned<String>>,
    pub(super) rss_hash: Option<Spanned<Vec<String>>>,
    pub(super) rss_key: Option<Spanned<String>>,
    /// Which ends the port's traffic comes from: "clients" (hash the source) or "servers"
    /// (hash the destination), so that both directions of a flow reach its owner.
    pub(super) faces: Option<Spanned<String>>,
    /// The appliance's own addresses on this port (`IP` or `IP/LEN`).
    #[serde(default)]
    pub(super) addresses: Vec<Spanned<String>>,
    /// The kernel interface of this port's TAP twin (the host exception path).
    pub(super) host_tap: Option<Spanned<String>>,
    /// Complete TCP/UDP checksums that senders left partial; default: on for ports that
    /// read a kernel device directly (AF_XDP, AF_PACKET).
    pub(super) complete_checksums: Option<bool>,
}

const DEFAULT_DESC: u16 = 1024;
/// The largest MTU an AF_XDP port takes: its buffer, with DPDK's and XDP's headroom, fits
/// in a 4 KB page as an odd number of cache lines (the pool's spreading): 63 lines, less
/// the mempool header, the mbuf, both headrooms, Ethernet and FCS.
pub const AF_XDP_MAX_MTU: u16 = 63 * 64 - 64 - 128 - 128 - 256 - 18;
/// AF_XDP's rings: with 1,024 entries a veth drops frames under a TCP stream.
const AF_XDP_DESC: u16 = 4096;

pub(super) fn yes() -> bool {
    true
}

/// The RSS hash fields a port may ask for, by their configuration names.
pub const RSS_FIELDS: [&str; 8] = [
    "ip",
    "tcp",
    "udp",
    "sctp",
    "l3-src-only",
    "l3-dst-only",
    "l4-src-only",
    "l4-dst-only",
];

/// What a port hashes when its configuration says nothing: the client-facing port the
/// source end, so that each flow's queue is its owner's (`rvs_core::rss`).
pub const DEFAULT_RSS_FIELDS: [&str; 5] = ["ip", "tcp", "udp", "l3-src-only", "l4-src-only"];

/// What a port facing the real servers hashes by default: the destination end (the client).
pub const SERVER_SIDE_RSS_FIELDS: [&str; 5] = ["ip", "tcp", "udp", "l3-dst-only", "l4-dst-only"];

/// A validated data port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    /// DPDK devargs: a PCI address or a vdev string.
    pub device: String,
    pub rx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    /// Index of the port frames received here leave by (diagnostic forwarding modes).
    pub peer: usize,
    /// Names from [`RSS_FIELDS`]; the daemon maps them to DPDK's hash bits.
    pub rss_hash: Vec<String>,
    pub rss_key: Option<Vec<u8>>,
    pub addresses: Vec<std::net::IpAddr>,
    /// Prefix length of each address (the host twin's subnets); full when not given.
    pub prefix_lens: Vec<u8>,
    /// The host TAP twin's interface name, if the port has one.
    pub host_tap: Option<String>,
    /// The Linux interface an AF_XDP or AF_PACKET port reads, if it is one.
    pub kernel: Option<KernelDevice>,
    /// Complete the TCP/UDP checksums senders left partial (see `rvs_wire::partial`).
    pub complete_checksums: bool,
    /// Where the port is defined, for errors found at run time.
    pub line: usize,
}

/// An AF_XDP port pairs each rx queue with a tx queue, and each worker sends on its own:
/// its rx queues must be as many as the workers.
pub(super) fn check_af_xdp_pairs(
    source: &Source,
    raw: &[RawPort],
    ports: &[PortConfig],
    workers: usize,
) -> Result<(), ConfigError> {
    for (i, (p, r)) in ports.iter().zip(raw).enumerate() {
        if p.is_af_xdp() && usize::from(p.rx_queues) != workers {
            let span = r.rx_queues.as_ref().map_or(r.device.span(), |q| q.span());
            return Err(source.error(
                span,
                format!("port[{i}].rx_queues"),
                format!(
                    "an AF_XDP port pairs each rx queue with a tx queue, and each worker sends on \
                     its own: {workers} worker(s) need {workers} rx queue(s), not {} (change \
                     the workers, or the device's queues: ethtool -L IFACE combined N)",
                    p.rx_queues
                ),
            ));
        }
    }
    Ok(())
}

/// How a port reaches a Linux interface the kernel keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSocket {
    AfXdp,
    AfPacket,
}

/// The Linux interface behind an AF_XDP or AF_PACKET port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelDevice {
    pub socket: KernelSocket,
    pub iface: String,
}

impl KernelDevice {
    /// From DPDK devargs (`net_af_xdp0,iface=eth1,...`, `net_af_packet0,iface=eth1`).
    pub fn of_devargs(device: &str) -> Option<KernelDevice> {
        let mut parts = device.split(',');
        let name = parts.next()?.trim();
        let socket = if name.starts_with("net_af_xdp") {
            KernelSocket::AfXdp
        } else if name.starts_with("net_af_packet") {
            KernelSocket::AfPacket
        } else {
            return None;
        };
        let iface = parts.find_map(|kv| kv.trim().strip_prefix("iface="))?;
        Some(KernelDevice {
            socket,
            iface: iface.to_string(),
        })
    }
}

/// The devargs for `device = "af_xdp:IFACE"`: every queue rvs reads, from the first.
fn af_xdp_devargs(index: usize, iface: &str, queues: u16) -> String {
    format!("net_af_xdp{index},iface={iface},start_queue=0,queue_count={queues}")
}

/// A Linux interface name: 1 to 15 letters, digits, '-', '_' or '.'.
fn is_iface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl PortConfig {
    /// An AF_XDP port (a Linux interface read through XDP sockets).
    pub fn is_af_xdp(&self) -> bool {
        self.kernel
            .as_ref()
            .is_some_and(|k| k.socket == KernelSocket::AfXdp)
    }

    /// A PCI address (`0000:03:00.0` or `03:00.0`) rather than a virtual device.
    pub fn is_pci(&self) -> bool {
        let dev = self.device.split(',').next().unwrap_or("");
        is_pci_address(dev)
    }
}

pub(super) fn is_pci_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '.']).collect();
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [d, b, s, f] => hex(d, 4) && hex(b, 2) && hex(s, 2) && f.len() == 1 && hex(f, 1),
        [b, s, f] => hex(b, 2) && hex(s, 2) && f.len() == 1 && hex(f, 1),
        _ => false,
    }
}

/// Hex octets, `:` and spaces between them ignored.
pub(crate) fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `workers`: the worker lcores, whom an AF_XDP port gives a queue each by default.
pub(super) fn validate_ports(
    source: &Source,
    raw: &[RawPort],
    workers: u16,
) -> Result<Vec<PortConfig>, ConfigError> {
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for (i, p) in raw.iter().enumerate() {
        let name = p.name.get_ref();
        let field = format!("port[{i}].name");
        if name.is_empty() || name.contains([':', ' ', ',']) {
            return Err(source.error(
                p.name.span(),
                field,
                "a port name is non-empty, without ':', ',' or spaces",
            ));
        }
        if index_of.insert(name, i).is_some() {
            return Err(source.error(
                p.name.span(),
                field,
                format!("port name {name:?} is used twice"),
            ));
        }
        if p.device.get_ref().trim().is_empty() {
            return Err(source.error(p.device.span(), format!("port[{i}].device"), "empty device"));
        }
        if let Some(q) = &p.rx_queues {
            if *q.get_ref() == 0 || *q.get_ref() > 64 {
                return Err(source.error(
                    q.span(),
                    format!("port[{i}].rx_queues"),
                    "1..=64 rx queues",
                ));
            }
        }
    }
    let mut devices: HashMap<&str, usize> = HashMap::new();
    let mut ports = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let dev = p.device.get_ref().as_str();
        let shorthand = dev.strip_prefix("af_xdp:").map(str::trim);
        if shorthand.is_some_and(|iface| !is_iface_name(iface)) {
            return Err(source.error(
                p.device.span(),
                format!("port[{i}].device"),
                "\"af_xdp:IFACE\" names a Linux interface (1 to 15 letters, digits, '-', '_' or '.')",
            ));
        }
        let af_xdp = shorthand.is_some()
            || KernelDevice::of_devargs(dev).is_some_and(|k| k.socket == KernelSocket::AfXdp);
        let rx_queues = match &p.rx_queues {
            Some(q) => *q.get_ref(),
            None if af_xdp => workers.max(1),
            None => 1,
        };
        let desc = |d: &Option<Spanned<u16>>, field: &str| -> Result<u16, ConfigError> {
            let Some(d) = d else {
                return Ok(if af_xdp { AF_XDP_DESC } else { DEFAULT_DESC });
            };
            let n = *d.get_ref();
            if n == 0 || (af_xdp && !n.is_power_of_two()) {
                return Err(source.error(
                    d.span(),
                    format!("port[{i}].{field}"),
                    if af_xdp {
                        "AF_XDP rings are a power of two long (4096 by default)"
                    } else {
                        "at least one descriptor"
                    },
                ));
            }
            Ok(n)
        };
        let (rx_desc, tx_desc) = (desc(&p.rx_desc, "rx_desc")?, desc(&p.tx_desc, "tx_desc")?);
        let device = match shorthand {
            Some(iface) => af_xdp_devargs(i, iface, rx_queues),
            None if af_xdp && !dev.contains("queue_count=") && rx_queues > 1 => {
                format!("{dev},queue_count={rx_queues}")
            }
            None => dev.to_string(),
        };
        let kernel = KernelDevice::of_devargs(&device);
        if let Some(other) = devices.insert(dev, i) {
            return Err(source.error(
                p.device.span(),
                format!("port[{i}].device"),
                format!("device {dev:?} is already port[{other}]"),
            ));
        }
        let peer = match &p.peer {
            Some(peer) => *index_of.get(peer.get_ref().as_str()).ok_or_else(|| {
                source.error(
                    peer.span(),
                    format!("port[{i}].peer"),
                    format!("no port named {:?}", peer.get_ref()),
                )
            })?,
            // testpmd's paired topology: 0<->1, 2<->3; an odd last port loops to itself.
            None if i ^ 1 < raw.len() => i ^ 1,
            None => i,
        };
        let rss_hash = match &p.rss_hash {
            Some(fields) => fields
                .get_ref()
                .iter()
                .map(|f| {
                    if RSS_FIELDS.contains(&f.as_str()) {
                        Ok(f.clone())
                    } else {
                        Err(source.error(
                            fields.span(),
                            format!("port[{i}].rss_hash"),
                            format!(
                                "unknown hash field {f:?} (one of {})",
                                RSS_FIELDS.join(", ")
                            ),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                let fields = match p.faces.as_ref().map(|f| f.get_ref().as_str()) {
                    None | Some("clients") => DEFAULT_RSS_FIELDS,
                    Some("servers") => SERVER_SIDE_RSS_FIELDS,
                    Some(other) => {
                        let f = p.faces.as_ref().map_or(0..0, |f| f.span());
                        return Err(source.error(
                            f,
                            format!("port[{i}].faces"),
                            format!("{other:?}: \"clients\" or \"servers\""),
                        ));
                    }
                };
                fields.iter().map(|f| f.to_string()).collect()
            }
        };
        let rss_key = match &p.rss_key {
            Some(k) => Some(
                parse_hex(k.get_ref())
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        source.error(
                            k.span(),
                            format!("port[{i}].rss_key"),
                            "expected hex bytes, such as \"6d5a6d5a...\"",
                        )
                    })?,
            ),
            None => None,
        };
        let mut addresses = Vec::new();
        let mut prefix_lens = Vec::new();
        for a in &p.addresses {
            let bad = || {
                source.error(
                    a.span(),
                    format!("port[{i}].addresses"),
                    format!("{:?} is not an IP address (IP or IP/LEN)", a.get_ref()),
                )
            };
            let (ip, len) = a.get_ref().split_once('/').unwrap_or((a.get_ref(), ""));
            let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
            let ip = source.unmapped(a.span(), format!("port[{i}].addresses"), ip)?;
            let full = if ip.is_ipv4() { 32 } else { 128 };
            let len = match len {
                "" => full,
                l => l.parse().ok().filter(|&l| l <= full).ok_or_else(bad)?,
            };
            addresses.push(ip);
            prefix_lens.push(len);
        }
        let host_tap = match &p.host_tap {
            Some(t) => {
                let name = t.get_ref();
                if !is_iface_name(name) {
                    return Err(source.error(
                        t.span(),
                        format!("port[{i}].host_tap"),
                        "an interface name of 1 to 15 letters, digits, '-', '_' or '.'",
                    ));
                }
                Some(name.clone())
            }
            None => None,
        };
        if let Some(mtu) = &p.mtu {
            if *mtu.get_ref() < 68 {
                return Err(source.error(
                    mtu.span(),
                    format!("port[{i}].mtu"),
                    "an MTU is at least 68",
                ));
            }
            if af_xdp && *mtu.get_ref() > AF_XDP_MAX_MTU {
                return Err(source.error(
                    mtu.span(),
                    format!("port[{i}].mtu"),
                    format!("AF_XDP takes a frame in one page-sized buffer: MTU {AF_XDP_MAX_MTU} at most"),
                ));
            }
        }
        ports.push(PortConfig {
            name: p.name.get_ref().clone(),
            device,
            rx_queues,
            rx_desc,
            tx_desc,
            mtu: p.mtu.as_ref().map(|m| *m.get_ref()),
            promiscuous: p.promiscuous,
            peer,
            rss_hash,
            rss_key,
            addresses,
            prefix_lens,
            host_tap,
            complete_checksums: p.complete_checksums.unwrap_or(kernel.is_some()),
            kernel,
            line: source.line_of(p.name.span().start),
        });
    }
    Ok(ports)
}
