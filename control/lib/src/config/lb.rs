//! The load-balancing part of the configuration: services and their real servers, the
//! appliance's addresses, routes and static neighbours. Validated here (file/line/field
//! errors), turned into the engine's [`Snapshot`] by [`LbConfig::snapshot`].

use super::{ConfigError, Source};
use crate::director::{
    overlapping_member_range, parse_port_range, snat_rule, Director, FwmarkRule, Limits,
};
use crate::ipvsadm::{Command, Protocol, ServerSpec, ServiceKey, ServiceSpec};
use rvs_core::engine::{
    self, ForwardMethod, FullNat, MemberPorts, PortInfo, Route, Snapshot, SnatRule,
};
use rvs_core::sched::{DestLoad, SchedKind};
use serde::Deserialize;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    #[serde(default = "tcp")]
    protocol: Spanned<String>,
    address: Spanned<String>,
    #[serde(default)]
    port: u16,
    #[serde(default = "wlc")]
    scheduler: Spanned<String>,
    #[serde(default)]
    flags: Vec<String>,
    persistence: Option<Spanned<u32>>,
    netmask: Option<Spanned<u8>>,
    group: Option<u32>,
    /// One-packet scheduling (UDP): each datagram scheduled on its own.
    #[serde(default)]
    one_packet: bool,
    /// The persistence engine (ipvsadm --pe): "sip".
    pe: Option<Spanned<String>>,
    /// Full NAT towards its NAT servers: the client's source replaced by a local address
    /// (`local_addresses`, else the address of the port towards the server).
    #[serde(default)]
    full_nat: bool,
    #[serde(default)]
    local_addresses: Vec<Spanned<String>>,
    /// A PROXY protocol header before the first data (TCP; implies full NAT): `true` or
    /// "v2" for version 2, "v1" for the text version.
    #[serde(default)]
    proxy_protocol: Option<Spanned<ProxyProtocol>>,
    #[serde(default, rename = "server")]
    servers: Vec<RawServer>,
}

/// `proxy_protocol`'s value: a switch (version 2) or the version's name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ProxyProtocol {
    On(bool),
    Version(String),
}

/// A source NAT rule for routed traffic (`iptables -t nat -A POSTROUTING -s SOURCE -d
/// DESTINATION -o OUT -j SNAT --to-source ADDR:PORTS`, or MASQUERADE without `to_source`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSnat {
    /// "tcp", "udp", "sctp"; absent: all three.
    protocol: Option<Spanned<String>>,
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default)]
    destination: Option<Spanned<String>>,
    /// A port name: the rule applies to traffic leaving by it.
    out_port: Option<Spanned<String>>,
    /// An address, or absent / "masquerade": the out port's own address.
    to_source: Option<Spanned<String>>,
    /// "1024-65535" (the default).
    ports: Option<Spanned<String>>,
}

/// A server's `tunnel`, `tunnel_port` and `tunnel_csum`, checked as ipvsadm checks them.
fn server_tunnel(
    source: &Source,
    r: &RawServer,
    g: &dyn Fn(&str) -> String,
    method: ForwardMethod,
) -> Result<rvs_core::Tunnel, ConfigError> {
    use rvs_core::{Tunnel, TunnelCsum, TunnelKind};
    let given = r.tunnel.is_some() || r.tunnel_port.is_some() || r.tunnel_csum.is_some();
    if given && method != ForwardMethod::Tun {
        return Err(source.error(
            r.method.span(),
            g("tunnel"),
            "tunnel options are for method = \"tun\"",
        ));
    }
    let kind = match r.tunnel.as_ref().map(|t| (t.get_ref().as_str(), t.span())) {
        None | Some(("ipip", _)) => TunnelKind::Ipip,
        Some(("gue", _)) => TunnelKind::Gue,
        Some(("gre", _)) => TunnelKind::Gre,
        Some((t, span)) => {
            return Err(source.error(span, g("tunnel"), format!("{t:?}: ipip, gue or gre")))
        }
    };
    let csum = match r
        .tunnel_csum
        .as_ref()
        .map(|c| (c.get_ref().as_str(), c.span()))
    {
        None | Some(("nocsum", _)) => TunnelCsum::NoCsum,
        Some(("csum", _)) => TunnelCsum::Csum,
        Some(("remcsum", _)) => TunnelCsum::RemCsum,
        Some((c, span)) => {
            return Err(source.error(
                span,
                g("tunnel_csum"),
                format!("{c:?}: nocsum, csum or remcsum"),
            ))
        }
    };
    let port = r.tunnel_port.unwrap_or(0);
    let at = r
        .tunnel
        .as_ref()
        .map(|t| t.span())
        .unwrap_or(r.address.span());
    if (kind == TunnelKind::Gue) != (port != 0) {
        return Err(source.error(
            at,
            g("tunnel_port"),
            "a gue tunnel needs a port; others take none",
        ));
    }
    if (kind == TunnelKind::Ipip && csum != TunnelCsum::NoCsum)
        || (kind == TunnelKind::Gre && csum == TunnelCsum::RemCsum)
    {
        return Err(source.error(at, g("tunnel_csum"), "not for this tunnel type"));
    }
    Ok(Tunnel { kind, port, csum })
}

fn tcp() -> Spanned<String> {
    Spanned::new(0..0, "tcp".into())
}

fn wlc() -> Spanned<String> {
    Spanned::new(0..0, "wlc".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    address: Spanned<String>,
    #[serde(default)]
    port: u16,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default = "nat")]
    method: Spanned<String>,
    /// Overload thresholds (ipvsadm -x / -y); 0 = none.
    #[serde(default)]
    upper: u32,
    #[serde(default)]
    lower: u32,
    /// A tun server's encapsulation (ipvsadm --tun-type): "ipip" (default), "gue", "gre".
    tunnel: Option<Spanned<String>>,
    /// GUE's UDP port (--tun-port).
    tunnel_port: Option<u16>,
    /// "nocsum" (default), "csum", "remcsum" (--tun-nocsum, --tun-csum, --tun-remcsum).
    tunnel_csum: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFwmark {
    mark: Spanned<u32>,
    /// "tcp" (the default), "udp", "sctp" or "any".
    #[serde(default = "tcp")]
    protocol: Spanned<String>,
    /// An address or a prefix ("10.1.0.0/24").
    address: Spanned<String>,
    /// One port (0, the default: all), or `ports = "FIRST-LAST"`.
    #[serde(default)]
    port: u16,
    ports: Option<Spanned<String>>,
    /// Only traffic from this prefix.
    source: Option<Spanned<String>>,
}

/// A VIP's own settings: what becomes of its traffic that no service takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVip {
    address: Spanned<String>,
    /// "host" (the default: the host's stack gets it, as in LVS) or "drop".
    #[serde(default)]
    unserved: Option<Spanned<String>>,
}

/// Connections a cluster member opens from a VIP with source ports in its own range
/// (CommuniGate's outgoing TCP): replies to the VIP on those ports go to the member.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutgoing {
    #[serde(default = "tcp")]
    protocol: Spanned<String>,
    vip: Spanned<String>,
    /// "33000-33999".
    ports: Spanned<String>,
    member: Spanned<String>,
    /// "dr" (the member holds the VIP) or "nat" (its own address; rvs its gateway).
    #[serde(default = "dr")]
    method: Spanned<String>,
}

fn dr() -> Spanned<String> {
    Spanned::new(0..0, "dr".into())
}

/// `ADDRESS/LENGTH` (a bare address is a host), the error at the field.
fn parse_prefix(
    source: &Source,
    s: &Spanned<String>,
    field: &str,
) -> Result<(IpAddr, u8), ConfigError> {
    let (ip, len) =
        crate::director::parse_prefix(s.get_ref()).map_err(|m| source.error(s.span(), field, m))?;
    Ok((source.unmapped(s.span(), field, ip)?, len))
}

/// A protocol word, or the error at the field.
fn parse_protocol(
    source: &Source,
    p: &Spanned<String>,
    field: &str,
) -> Result<Protocol, ConfigError> {
    Protocol::from_word(p.get_ref()).ok_or_else(|| {
        source.error(
            p.span(),
            field,
            format!("{:?}: tcp, udp or sctp", p.get_ref()),
        )
    })
}

/// The `[[snat]]` rules.
pub(crate) fn validate_snat(
    source: &Source,
    raw: &[RawSnat],
    port_names: &[String],
) -> Result<Vec<SnatRule>, ConfigError> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let f = |name: &str| format!("snat[{i}].{name}");
        let proto = match &r.protocol {
            Some(p) => Some(parse_protocol(source, p, &f("protocol"))?.number()),
            None => None,
        };
        let to_source = match &r.to_source {
            Some(t) if t.get_ref() == "masquerade" => None,
            Some(t) => Some(parse_ip(source, t, &f("to_source"))?),
            None => None,
        };
        let source_prefix = match &r.source {
            Some(p) => Some(parse_prefix(source, p, &f("source"))?),
            None => None,
        };
        let destination = match &r.destination {
            Some(p) => Some(parse_prefix(source, p, &f("destination"))?),
            None => None,
        };
        let out_port = match &r.out_port {
            Some(p) => Some(
                port_names
                    .iter()
                    .position(|n| n == p.get_ref())
                    .ok_or_else(|| {
                        source.error(
                            p.span(),
                            f("out_port"),
                            format!("no port named {:?}", p.get_ref()),
                        )
                    })? as u16,
            ),
            None => None,
        };
        let ports = match &r.ports {
            Some(p) => parse_port_range(p.get_ref()).ok_or_else(|| {
                source.error(
                    p.span(),
                    f("ports"),
                    format!("{:?}: a range such as \"1024-65535\"", p.get_ref()),
                )
            })?,
            None => (1024, 65535),
        };
        let rule = snat_rule(
            proto,
            source_prefix,
            destination,
            out_port,
            to_source,
            ports,
        )
        .map_err(|m| {
            let at = r.to_source.as_ref().or(r.destination.as_ref());
            source.error(at.map_or(0..0, |s| s.span()), f("destination"), m)
        })?;
        out.push(rule);
    }
    Ok(out)
}

/// The `[[outgoing]]` ranges; ranges of one VIP and protocol may not overlap.
pub(crate) fn validate_outgoing(
    source: &Source,
    raw: &[RawOutgoing],
) -> Result<Vec<MemberPorts>, ConfigError> {
    let mut out: Vec<MemberPorts> = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        let f = |name: &str| format!("outgoing[{i}].{name}");
        let proto = parse_protocol(source, &o.protocol, &f("protocol"))?.number();
        let vip = parse_ip(source, &o.vip, &f("vip"))?;
        let member = parse_ip(source, &o.member, &f("member"))?;
        if vip.is_ipv4() != member.is_ipv4() {
            return Err(source.error(o.member.span(), f("member"), "not of the VIP's family"));
        }
        let Some((first, last)) = parse_port_range(o.ports.get_ref()) else {
            return Err(source.error(
                o.ports.span(),
                f("ports"),
                format!("{:?}: a range such as \"33000-33999\"", o.ports.get_ref()),
            ));
        };
        let nat = match o.method.get_ref().as_str() {
            "dr" => false,
            "nat" => true,
            m => {
                return Err(source.error(o.method.span(), f("method"), format!("{m:?}: dr or nat")))
            }
        };
        let range = MemberPorts {
            proto,
            vip,
            first,
            last,
            member,
            nat,
        };
        if let Some(j) = overlapping_member_range(&out, &range) {
            return Err(source.error(
                o.ports.span(),
                f("ports"),
                format!("overlaps outgoing[{j}]'s {}-{}", out[j].first, out[j].last),
            ));
        }
        out.push(range);
    }
    Ok(out)
}

fn one() -> u32 {
    1
}

fn nat() -> Spanned<String> {
    Spanned::new(0..0, "nat".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    prefix: Spanned<String>,
    via: Option<Spanned<String>>,
    port: Spanned<String>,
    table: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNeighbour {
    address: Spanned<String>,
    mac: Spanned<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub method: ForwardMethod,
    pub upper: u32,
    pub lower: u32,
    pub tunnel: rvs_core::Tunnel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: u16,
    pub sched: SchedKind,
    pub persistence: Option<(u32, u8)>,
    pub group: Option<u32>,
    pub one_packet: bool,
    /// The persistence engine ("sip").
    pub pe: Option<String>,
    /// In configuration order; the engine's list is newest first, as after `ipvsadm -R`.
    pub servers: Vec<ServerConfig>,
}

/// Validated services, routes and neighbours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbConfig {
    pub services: Vec<ServiceConfig>,
    pub fwmarks: Vec<FwmarkRule>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<(IpAddr, [u8; 6])>,
    /// VIPs whose traffic for no service is dropped rather than handed to the host.
    pub unserved_drop: Vec<IpAddr>,
    /// Members' outgoing port ranges (`[[outgoing]]`).
    pub member_ports: Vec<MemberPorts>,
    /// `[dataplane] ip_forward`.
    pub ip_forward: bool,
    /// `[dataplane] sloppy_tcp`, `sloppy_sctp` (or `ecmp`, both).
    pub sloppy_tcp: bool,
    pub sloppy_sctp: bool,
    /// `[dataplane] expire_nodest_conn`, `expire_quiescent_template`.
    pub expire_nodest_conn: bool,
    pub expire_quiescent_template: bool,
    /// `[dataplane] conn_reuse_mode`.
    pub conn_reuse_mode: u8,
    /// `[dataplane] pmtu_disc = false`.
    pub pmtu_disc_off: bool,
    /// `[dataplane] nat_icmp_send`, `backup_only`.
    pub nat_icmp_send: bool,
    /// `[dataplane] schedule_icmp`, `cache_bypass`, `sync_persist_mode`.
    pub schedule_icmp: bool,
    pub cache_bypass: bool,
    /// `[dataplane] run_estimation = false`.
    pub run_estimation_off: bool,
    /// `[dataplane] secure_tcp` (0-3), `amemthresh` (pages).
    pub secure_tcp: u8,
    pub amemthresh: u32,
    /// `[dataplane] drop_entry`, `drop_packet` (0-3), `am_droprate`.
    pub drop_entry: u8,
    pub drop_packet: u8,
    pub am_droprate: u32,
    pub sync_persist_mode: bool,
    /// `[dataplane] sync_refresh_period` (seconds, 0: unset).
    pub sync_refresh_period: u32,
    pub backup_only: bool,
    /// `[dataplane] lblc_expiration`, `lblcr_expiration`.
    pub cache_expiration: rvs_core::sched::CacheExpiration,
    /// `[dataplane] ecmp`: servers in one canonical order.
    pub ecmp: bool,
    /// Services with full NAT, in service order.
    pub full_nat: Vec<(ServiceKey, FullNat)>,
    /// `[[snat]]` rules in order.
    pub snat: Vec<SnatRule>,
}

fn parse_ip(source: &Source, s: &Spanned<String>, field: &str) -> Result<IpAddr, ConfigError> {
    let ip = s.get_ref().parse().map_err(|_| {
        source.error(
            s.span(),
            field,
            format!("{:?} is not an IP address", s.get_ref()),
        )
    })?;
    source.unmapped(s.span(), field, ip)
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split([':', '-'])
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

impl LbConfig {
    pub(crate) fn validate(
        source: &Source,
        services: &[RawService],
        routes: &[RawRoute],
        neighbours: &[RawNeighbour],
        fwmarks: &[RawFwmark],
        vips: &[RawVip],
        port_names: &[String],
    ) -> Result<LbConfig, ConfigError> {
        let mut out = LbConfig::default();
        for (i, v) in vips.iter().enumerate() {
            let addr = parse_ip(source, &v.address, &format!("vip[{i}].address"))?;
            match v
                .unserved
                .as_ref()
                .map(|u| (u.get_ref().as_str(), u.span()))
            {
                None | Some(("host", _)) => {}
                Some(("drop", _)) => out.unserved_drop.push(addr),
                Some((other, span)) => {
                    return Err(source.error(
                        span,
                        format!("vip[{i}].unserved"),
                        format!("{other:?}: \"host\" or \"drop\""),
                    ))
                }
            }
        }
        for (i, m) in fwmarks.iter().enumerate() {
            let f = |name: &str| format!("fwmark[{i}].{name}");
            let proto = match m.protocol.get_ref().as_str() {
                "any" => None,
                p => Some(Protocol::from_word(p).ok_or_else(|| {
                    source.error(
                        m.protocol.span(),
                        f("protocol"),
                        format!("{p:?}: tcp, udp, sctp or any"),
                    )
                })?),
            };
            if *m.mark.get_ref() == 0 {
                return Err(source.error(m.mark.span(), f("mark"), "a mark above 0"));
            }
            let (addr, prefix) = parse_prefix(source, &m.address, &f("address"))?;
            let ports = match &m.ports {
                Some(p) if m.port != 0 => {
                    return Err(source.error(p.span(), f("ports"), "port or ports, not both"))
                }
                Some(p) => parse_port_range(p.get_ref()).ok_or_else(|| {
                    source.error(
                        p.span(),
                        f("ports"),
                        format!("{:?}: a range such as \"1000-2000\"", p.get_ref()),
                    )
                })?,
                None if m.port == 0 => (0, u16::MAX),
                None => (m.port, m.port),
            };
            let from = match &m.source {
                Some(p) => Some(parse_prefix(source, p, &f("source"))?),
                None => None,
            };
            if from.is_some_and(|(a, _)| a.is_ipv4() != addr.is_ipv4()) {
                return Err(source.error(
                    m.address.span(),
                    f("source"),
                    "not of the address's family",
                ));
            }
            out.fwmarks.push(FwmarkRule {
                mark: *m.mark.get_ref(),
                proto,
                addr,
                prefix,
                ports,
                source: from,
            });
        }
        for (i, s) in services.iter().enumerate() {
            let f = |name: &str| format!("service[{i}].{name}");
            let proto = match s.protocol.get_ref().as_str() {
                "tcp" => 6,
                "udp" => 17,
                "sctp" => 132,
                p => {
                    return Err(source.error(
                        s.protocol.span(),
                        f("protocol"),
                        format!("{p:?}: tcp, udp or sctp"),
                    ))
                }
            };
            let addr = parse_ip(source, &s.address, &f("address"))?;
            let mut sched: SchedKind = s
                .scheduler
                .get_ref()
                .parse()
                .map_err(|m| source.error(s.scheduler.span(), f("scheduler"), m))?;
            if !s.flags.is_empty() {
                sched = sched
                    .with_flags(&s.flags.join(","))
                    .map_err(|m| source.error(s.scheduler.span(), f("flags"), m))?;
            }
            // ipvsadm's and the kernel's bounds: 1 s to 31 days.
            let persistence = match &s.persistence {
                Some(p) if !(1..=crate::ipvsadm::MAX_TIMEOUT).contains(p.get_ref()) => {
                    return Err(source.error(
                        p.span(),
                        f("persistence"),
                        format!(
                            "{}: from 1 to {} seconds (31 days)",
                            p.get_ref(),
                            crate::ipvsadm::MAX_TIMEOUT
                        ),
                    ))
                }
                Some(p) => Some(*p.get_ref()),
                None => None,
            };
            let full = if addr.is_ipv4() { 32 } else { 128 };
            let netmask = match &s.netmask {
                Some(m) if *m.get_ref() > full => {
                    return Err(source.error(
                        m.span(),
                        f("netmask"),
                        format!("a prefix length up to {full}"),
                    ))
                }
                Some(m) => *m.get_ref(),
                None => full,
            };
            if out
                .services
                .iter()
                .any(|o| (o.proto, o.addr, o.port) == (proto, addr, s.port))
            {
                return Err(source.error(s.address.span(), f("address"), "service already exists"));
            }
            let mut servers: Vec<ServerConfig> = Vec::new();
            for (j, r) in s.servers.iter().enumerate() {
                let g = |name: &str| format!("service[{i}].server[{j}].{name}");
                let raddr = parse_ip(source, &r.address, &g("address"))?;
                let method = match r.method.get_ref().as_str() {
                    "nat" | "masq" => ForwardMethod::Nat,
                    "dr" | "route" | "gatewaying" => ForwardMethod::Dr,
                    "tun" | "ipip" | "tunnel" => ForwardMethod::Tun,
                    m => {
                        return Err(source.error(
                            r.method.span(),
                            g("method"),
                            format!("{m:?}: nat, dr or tun"),
                        ))
                    }
                };
                // Only a tunnel carries one family in the other, as IPVS allows.
                if raddr.is_ipv4() != addr.is_ipv4() && method != ForwardMethod::Tun {
                    return Err(source.error(
                        r.address.span(),
                        g("address"),
                        "the server's family differs from the service's (only a tun server's may)",
                    ));
                }
                if r.weight > 65535 {
                    return Err(source.error(
                        r.address.span(),
                        g("weight"),
                        "illegal weight specified",
                    ));
                }
                if servers.iter().any(|o| o.addr == raddr && o.port == r.port) {
                    return Err(source.error(
                        r.address.span(),
                        g("address"),
                        "destination already exists",
                    ));
                }
                let tunnel = server_tunnel(source, r, &g, method)?;
                servers.push(ServerConfig {
                    addr: raddr,
                    port: r.port,
                    weight: r.weight,
                    method,
                    upper: r.upper,
                    lower: r.lower,
                    tunnel,
                });
            }
            let (proxy, proxy_v1) = match s.proxy_protocol.as_ref().map(|p| (p.get_ref(), p)) {
                None | Some((ProxyProtocol::On(false), _)) => (false, false),
                Some((ProxyProtocol::On(true), _)) => (true, false),
                Some((ProxyProtocol::Version(v), at)) => match v.as_str() {
                    "v2" => (true, false),
                    "v1" => (true, true),
                    _ => {
                        return Err(source.error(
                            at.span(),
                            f("proxy_protocol"),
                            format!("{v:?}: \"v1\", \"v2\", true or false"),
                        ))
                    }
                },
            };
            if s.full_nat || proxy || !s.local_addresses.is_empty() {
                let mut locals = Vec::new();
                for (j, a) in s.local_addresses.iter().enumerate() {
                    let a = parse_ip(source, a, &f(&format!("local_addresses[{j}]")))?;
                    locals.push(a);
                }
                let key = match s.group {
                    Some(mark) => ServiceKey::Fwmark {
                        mark,
                        ipv6: addr.is_ipv6(),
                    },
                    None => ServiceKey::Addr(
                        Protocol::from_number(proto).unwrap_or(Protocol::Tcp),
                        SocketAddr::new(addr, s.port),
                    ),
                };
                if !out.full_nat.iter().any(|(k, _)| *k == key) {
                    out.full_nat
                        .push((key, FullNat::new(locals, proxy).with_proxy_v1(proxy_v1)));
                }
            }
            out.services.push(ServiceConfig {
                proto,
                addr,
                port: s.port,
                sched,
                persistence: persistence.map(|t| (t, netmask)),
                group: s.group,
                one_packet: s.one_packet,
                pe: match &s.pe {
                    Some(p) if p.get_ref() == "sip" => Some("sip".into()),
                    Some(p) => {
                        return Err(source.error(
                            p.span(),
                            f("pe"),
                            format!("{:?}: the persistence engine is \"sip\"", p.get_ref()),
                        ))
                    }
                    None => None,
                },
                servers,
            });
        }
        for (i, r) in routes.iter().enumerate() {
            let f = |name: &str| format!("route[{i}].{name}");
            let text = r.prefix.get_ref();
            let (net, len) = text.split_once('/').unwrap_or((text, ""));
            let prefix: IpAddr = net.parse().map_err(|_| {
                source.error(
                    r.prefix.span(),
                    f("prefix"),
                    format!("{text:?}: expected ADDRESS/LENGTH"),
                )
            })?;
            let prefix = source.unmapped(r.prefix.span(), f("prefix"), prefix)?;
            let full = if prefix.is_ipv4() { 32 } else { 128 };
            let len: u8 = match len {
                "" => full,
                l => l.parse().ok().filter(|&l| l <= full).ok_or_else(|| {
                    source.error(
                        r.prefix.span(),
                        f("prefix"),
                        format!("prefix length up to {full}"),
                    )
                })?,
            };
            let gateway = match &r.via {
                Some(v) => Some(parse_ip(source, v, &f("via"))?),
                None => None,
            };
            let port = port_names
                .iter()
                .position(|n| n == r.port.get_ref())
                .ok_or_else(|| {
                    source.error(
                        r.port.span(),
                        f("port"),
                        format!("no port named {:?}", r.port.get_ref()),
                    )
                })?;
            let table = match &r.table {
                Some(t) => table_of(source, t, &f("table"))?,
                None => rvs_core::engine::MAIN_TABLE,
            };
            out.routes.push(Route {
                prefix,
                len,
                gateway,
                port: port as u16,
                table,
            });
        }
        for (i, n) in neighbours.iter().enumerate() {
            let addr = parse_ip(source, &n.address, &format!("neighbour[{i}].address"))?;
            let mac = parse_mac(n.mac.get_ref()).ok_or_else(|| {
                source.error(
                    n.mac.span(),
                    format!("neighbour[{i}].mac"),
                    "expected a MAC address such as 02:00:00:00:00:01",
                )
            })?;
            out.neighbours.push((addr, mac));
        }
        Ok(out)
    }

    /// The services as the ipvsadm commands that create them, in order: a service of a
    /// group becomes (part of) firewall-mark service `group`, its VIP:port a mark rule.
    pub fn commands(&self) -> (Vec<Command>, Vec<FwmarkRule>) {
        let mut cmds = Vec::new();
        let mut marks = self.fwmarks.clone();
        let mut declared: Vec<ServiceKey> = Vec::new();
        for s in &self.services {
            let proto = Protocol::from_number(s.proto).unwrap_or(Protocol::Tcp);
            let key = match s.group {
                Some(mark) => {
                    marks.push(FwmarkRule::exact(mark, proto, s.addr, s.port));
                    ServiceKey::Fwmark {
                        mark,
                        ipv6: s.addr.is_ipv6(),
                    }
                }
                None => ServiceKey::Addr(proto, SocketAddr::new(s.addr, s.port)),
            };
            if !declared.contains(&key) {
                declared.push(key);
                cmds.push(Command::AddService(ServiceSpec {
                    key,
                    scheduler: s.sched,
                    persistent: s.persistence.map(|p| p.0),
                    netmask: s.persistence.map(|p| p.1),
                    mask_v4: None,
                    one_packet: s.one_packet,
                    flag_bits: 0,
                    pe: s.pe.clone(),
                    refusal: None,
                }));
            }
            for r in &s.servers {
                // As ipvsadm: a server without a port takes its service's (a firewall-mark
                // service's servers keep the client's).
                let port = match (s.group, r.port) {
                    (None, 0) => s.port,
                    _ => r.port,
                };
                let exists = cmds.iter().any(|c| {
                    matches!(c, Command::AddServer(o)
                        if o.service == key && o.addr == r.addr && o.port == port)
                });
                if exists {
                    continue;
                }
                cmds.push(Command::AddServer(ServerSpec {
                    service: key,
                    addr: r.addr,
                    port,
                    method: match r.method {
                        ForwardMethod::Nat => crate::ipvsadm::ForwardMethod::Nat,
                        ForwardMethod::Dr => crate::ipvsadm::ForwardMethod::Dr,
                        ForwardMethod::Tun => crate::ipvsadm::ForwardMethod::Tun,
                    },
                    weight: r.weight,
                    upper: r.upper,
                    lower: r.lower,
                    tunnel: r.tunnel,
                    refusal: None,
                }));
            }
        }
        (cmds, marks)
    }

    /// A director holding these services, routes and neighbours, for ports `ports`.
    pub fn director(
        &self,
        limits: Limits,
        loads: Arc<Vec<DestLoad>>,
        ports: Vec<PortInfo>,
    ) -> Result<Director, String> {
        let mut d = Director::new(limits, loads);
        let (cmds, marks) = self.commands();
        d.marks = marks;
        d.ports = ports;
        d.routes = self.routes.clone();
        d.neighbours = self.neighbours.clone();
        d.unserved_drop = self.unserved_drop.clone();
        d.member_ports = self.member_ports.clone();
        d.ip_forward = self.ip_forward;
        d.sloppy_tcp = self.sloppy_tcp;
        d.sloppy_sctp = self.sloppy_sctp;
        d.expire_nodest_conn = self.expire_nodest_conn;
        d.expire_quiescent_template = self.expire_quiescent_template;
        d.conn_reuse_mode = self.conn_reuse_mode;
        d.pmtu_disc = !self.pmtu_disc_off;
        d.nat_icmp_send = self.nat_icmp_send;
        d.schedule_icmp = self.schedule_icmp;
        d.cache_bypass = self.cache_bypass;
        d.run_estimation = !self.run_estimation_off;
        d.secure_tcp = self.secure_tcp;
        d.amemthresh = self.amemthresh;
        d.drop_entry = self.drop_entry;
        d.drop_packet = self.drop_packet;
        d.am_droprate = self.am_droprate;
        d.sync_persist_mode = self.sync_persist_mode;
        d.sync_refresh_period = self.sync_refresh_period;
        d.cache_expiration = self.cache_expiration;
        d.backup_only = self.backup_only;
        d.ecmp = self.ecmp;
        d.full_nat = self.full_nat.clone();
        d.snat = self.snat.clone();
        for c in &cmds {
            d.apply(c)?;
        }
        Ok(d)
    }

    /// The engine's snapshot for ports `ports` (sized for exactly these services).
    pub fn snapshot(&self, ports: Vec<PortInfo>) -> Snapshot {
        let limits = Limits {
            entries: self.services.len().max(1),
            dests: self.server_count().max(1),
        };
        let loads = Arc::new((0..limits.dests).map(|_| DestLoad::default()).collect());
        self.director(limits, loads, ports)
            .map(|d| d.snapshot())
            .unwrap_or_default()
    }

    /// Real servers in all services (the size of the shared load array).
    pub fn server_count(&self) -> usize {
        self.services.iter().map(|s| s.servers.len()).sum()
    }
}

/// Keeps the engine's types reachable for the runtime.
pub use engine::EngineConfig;

/// A routing table by number or by a name rt_tables gives (`table = 100`, `"isp1"`).
pub(crate) fn table_of(
    source: &Source,
    value: &Spanned<toml::Value>,
    field: &str,
) -> Result<u32, ConfigError> {
    let found = match value.get_ref() {
        toml::Value::Integer(n) => u32::try_from(*n).ok(),
        toml::Value::String(name) => crate::iproute::table_number(name),
        _ => None,
    };
    found.filter(|&t| t != 0).ok_or_else(|| {
        source.error(
            value.span(),
            field,
            "a routing table: a number from 1, or a name of /etc/iproute2/rt_tables",
        )
    })
}
