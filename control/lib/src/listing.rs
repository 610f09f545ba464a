//! ipvsadm's output formats, so scripts that parse ipvsadm keep working: `-L -n` (plain,
//! `--stats`, `--rate`, `--thresholds`, `--persistent-conn`, `--exact`, `--sort`), `-S -n`,
//! `-L --timeout` and `-L -c`.

use crate::director::{Director, VirtualService};
use crate::ipvsadm::{
    host_name, service_name as port_name, ForwardMethod, ListFormat, ListOptions, ServiceKey,
};
use rvs_core::conn::{ip_of, Conn, TcpState, Timeouts};
use rvs_core::sched::DestLoad;
use rvs_core::RealServer;
use std::fmt::Write;
use std::net::IpAddr;

/// Counters of a service or real server (IPVS's conns, inpkts, outpkts, inbytes, outbytes);
/// the same shape carries rates (CPS, InPPS, OutPPS, InBPS, OutBPS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    pub fn fields(&self) -> [u64; 5] {
        [
            self.conns,
            self.inpkts,
            self.outpkts,
            self.inbytes,
            self.outbytes,
        ]
    }

    pub fn from_fields(f: [u64; 5]) -> Stats {
        Stats {
            conns: f[0],
            inpkts: f[1],
            outpkts: f[2],
            inbytes: f[3],
            outbytes: f[4],
        }
    }

    pub fn plus(&self, o: &Stats) -> Stats {
        let (a, b) = (self.fields(), o.fields());
        Stats::from_fields(std::array::from_fn(|i| a[i].wrapping_add(b[i])))
    }

    pub fn minus(&self, o: &Stats) -> Stats {
        let (a, b) = (self.fields(), o.fields());
        Stats::from_fields(std::array::from_fn(|i| a[i].saturating_sub(b[i])))
    }
}

/// Counters and rates by service entry id and by real-server id.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub entries: Vec<Stats>,
    pub dests: Vec<Stats>,
    pub entry_rates: Vec<Stats>,
    pub dest_rates: Vec<Stats>,
}

impl Figures {
    pub(crate) fn service(&self, vs: &VirtualService, rates: bool) -> Stats {
        let v = if rates {
            &self.entry_rates
        } else {
            &self.entries
        };
        vs.entries.iter().fold(Stats::default(), |acc, e| {
            acc.plus(&v.get(usize::from(e.id)).copied().unwrap_or_default())
        })
    }

    pub(crate) fn dest(&self, d: &RealServer, rates: bool) -> Stats {
        let v = if rates { &self.dest_rates } else { &self.dests };
        v.get(d.id).copied().unwrap_or_default()
    }
}

fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(_) => format!("[{}]:{port}", ntop(addr)),
    }
}

/// An address as glibc's inet_ntop writes it (ipvsadm prints with it): as Rust does, but
/// an IPv4-compatible IPv6 address (the first 96 bits zero, the seventh word not) keeps
/// its dotted tail, `::10.0.0.2` where Rust writes `::a00:2`.
fn ntop(addr: IpAddr) -> String {
    match addr {
        IpAddr::V6(a) if a.segments()[..6] == [0; 6] && a.segments()[6] != 0 => {
            let o = a.octets();
            format!("::{}", std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }
        a => a.to_string(),
    }
}

/// ipvsadm's `host:port` (`[v6]:port`): numbers with -n, else the /etc/hosts name and the
/// /etc/services name of the port where there are ones.
fn anyname(addr: IpAddr, port: u16, proto: Option<&str>, numeric: bool) -> String {
    if numeric {
        return endpoint(addr, port);
    }
    let host = host_name(addr).unwrap_or_else(|| ntop(addr));
    let port = proto
        .and_then(|p| port_name(port, p))
        .unwrap_or_else(|| port.to_string());
    match addr {
        IpAddr::V4(_) => format!("{host}:{port}"),
        IpAddr::V6(_) => format!("[{host}]:{port}"),
    }
}

/// The protocol whose service names apply (none for a mark service, as the kernel reports
/// no protocol for it).
fn proto_word(key: ServiceKey) -> Option<&'static str> {
    match key {
        ServiceKey::Addr(p, _) => Some(p.word()),
        ServiceKey::Fwmark { .. } => None,
    }
}

/// `TCP  1.2.3.4:80`, `FWM  10`, `FWM  10 IPv6`, or in rule form `-t 1.2.3.4:80`, `-f 10 -6`.
fn service_name(key: ServiceKey, rule: bool, numeric: bool) -> String {
    match key {
        ServiceKey::Addr(p, a) => {
            let name = anyname(a.ip(), a.port(), proto_word(key), numeric);
            match (rule, p) {
                (true, _) => format!("{} {name}", p.option()),
                (false, _) => {
                    let mut s = format!("{:<4} {name}", p.name());
                    if a.is_ipv4() {
                        s.truncate(33);
                    }
                    s
                }
            }
        }
        // ipvsadm prints the mark with %d.
        ServiceKey::Fwmark { mark, ipv6 } => match (rule, ipv6) {
            (true, false) => format!("-f {}", mark as i32),
            (true, true) => format!("-f {} -6", mark as i32),
            (false, false) => format!("FWM  {}", mark as i32),
            (false, true) => format!("FWM  {} IPv6", mark as i32),
        },
    }
}

/// The persistence mask as ipvsadm prints it: dotted for IPv4, a length for IPv6; None
/// for a full mask.
fn mask_text(vs: &VirtualService) -> Option<String> {
    if let Some(m) = vs.spec.mask_v4 {
        return Some(m.to_string());
    }
    let full = if vs.is_ipv6() { 128 } else { 32 };
    let m = vs.spec.netmask.unwrap_or(full);
    if m >= full {
        return None;
    }
    Some(if vs.is_ipv6() {
        m.to_string()
    } else {
        std::net::Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(m)).unwrap_or(0)).to_string()
    })
}

/// The scheduler flags as ipvsadm prints them (sh's and mh's by name, others as flag-N).
fn sched_flags(vs: &VirtualService) -> String {
    let mut bits = vs.spec.flag_bits;
    let name = vs.spec.scheduler.name();
    for f in vs.spec.scheduler.flags() {
        bits |= if f.ends_with("fallback") { 1 } else { 2 };
    }
    let words: &[(u8, &str)] = match name {
        "sh" => &[(1, "sh-fallback"), (2, "sh-port")],
        "mh" => &[(1, "mh-fallback"), (2, "mh-port")],
        _ => &[(1, "flag-1"), (2, "flag-2"), (4, "flag-3")],
    };
    words
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, w)| *w)
        .collect::<Vec<_>>()
        .join(",")
}

/// ipvsadm's number column: 9 wide, scaled with K/M/G/T beyond 8 digits unless exact.
fn number(n: u64, exact: bool) -> String {
    if exact {
        let w = n.to_string().len();
        return format!("{n:>w$}", w = if w <= 8 { 9 } else { w + 1 });
    }
    match n {
        0..=99_999_999 => format!("{n:>9}"),
        100_000_000..=999_999_999 => format!("{:>8}K", n / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:>8}M", n / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:>8}G", n / 1_000_000_000),
        _ => format!("{:>8}T", n / 1_000_000_000_000),
    }
}

/// glibc's qsort (a top-down merge sort for tables this size) with a C comparator: the
/// order ipvsadm prints, even where its comparator is not a total order.
fn c_sort<T: Copy>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32, tmp: &mut Vec<T>) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    c_sort(&mut v[..n1], cmp, tmp);
    c_sort(&mut v[n1..], cmp, tmp);
    tmp.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            tmp.push(v[i]);
            i += 1;
        } else {
            tmp.push(v[j]);
            j += 1;
        }
    }
    tmp.extend_from_slice(&v[i..n1]);
    v[..tmp.len()].copy_from_slice(tmp);
}

/// An address as libipvs's comparators read it: 32-bit words in host order.
fn words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v4) => [u32::from(v4), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// libipvs's service comparator: differences of unsigned fields read as int.
fn cmp_services(a: &&VirtualService, b: &&VirtualService) -> i32 {
    let fields = |vs: &VirtualService| match vs.spec.key {
        ServiceKey::Addr(p, sa) => {
            let proto = i32::from(p.number());
            (
                0u32,
                if sa.is_ipv6() { 10 } else { 2 },
                proto,
                Some(sa.ip()),
                sa.port(),
            )
        }
        ServiceKey::Fwmark { mark, ipv6 } => (mark, if ipv6 { 10 } else { 2 }, 0, None, 0),
    };
    let (fa, aa, pa, ia, porta) = fields(a);
    let (fb, ab, pb, ib, portb) = fields(b);
    let r = fa.wrapping_sub(fb) as i32;
    if r != 0 {
        return r;
    }
    let r = aa - ab;
    if r != 0 {
        return r;
    }
    let r = pa - pb;
    if r != 0 {
        return r;
    }
    let zero = IpAddr::from([0u8; 4]);
    let (wa, wb) = (words(ia.unwrap_or(zero)), words(ib.unwrap_or(zero)));
    let r = if aa == 10 {
        (0..4)
            .map(|i| wa[i].wrapping_sub(wb[i]) as i32)
            .find(|&r| r != 0)
            .unwrap_or(0)
    } else {
        wa[0].wrapping_sub(wb[0]) as i32
    };
    if r != 0 {
        return r;
    }
    i32::from(porta) - i32::from(portb)
}

/// libipvs's real-server comparator.
fn cmp_dests(a: &&RealServer, b: &&RealServer) -> i32 {
    let (wa, wb) = (words(a.addr), words(b.addr));
    let r = if a.addr.is_ipv6() {
        (0..4)
            .map(|i| wa[i].wrapping_sub(wb[i]) as i32)
            .find(|&r| r != 0)
            .unwrap_or(0)
    } else {
        wa[0].wrapping_sub(wb[0]) as i32
    };
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// Services in ipvsadm's order, or the table's own (creation) order with --nosort.
fn ordered(d: &Director, nosort: bool) -> Vec<&VirtualService> {
    let mut v: Vec<&VirtualService> = d.services.iter().collect();
    if !nosort {
        c_sort(&mut v, &cmp_services, &mut Vec::new());
    }
    v
}

/// Real servers in ipvsadm's order, or the service's own with --nosort.
fn dests_of(vs: &VirtualService, nosort: bool) -> Vec<&RealServer> {
    let mut v: Vec<&RealServer> = vs.dests.iter().collect();
    if !nosort {
        c_sort(&mut v, &cmp_dests, &mut Vec::new());
    }
    v
}

/// `ipvsadm -S [-n]`: services and servers in ipvsadm's order; `-R` reads it back to the
/// same configuration.
pub fn save(d: &Director, numeric: bool) -> String {
    let mut out = String::new();
    for vs in ordered(d, false) {
        let name = service_name(vs.spec.key, true, numeric);
        let _ = writeln!(out, "-A {name} {}", service_options(vs));
        for dest in dests_of(vs, false) {
            let dname = anyname(dest.addr, dest.port, proto_word(vs.spec.key), numeric);
            let _ = writeln!(out, "-a {name} -r {dname} {}", server_options(dest));
        }
    }
    out
}

/// A service's `-A` options as `-S` writes them (scheduler, persistence, pe, ops, flags).
fn service_options(vs: &VirtualService) -> String {
    let mut options = format!("-s {}", vs.spec.scheduler.name());
    if let Some(t) = vs.spec.persistent {
        let _ = write!(options, " -p {t}");
        if let Some(m) = mask_text(vs) {
            let _ = write!(options, " -M {m}");
        }
    }
    if let Some(pe) = &vs.spec.pe {
        let _ = write!(options, " --pe {pe}");
    }
    if vs.spec.one_packet {
        options.push_str(" -o");
    }
    let flags = sched_flags(vs);
    if !flags.is_empty() {
        let _ = write!(options, " -b {flags}");
    }
    options
}

/// A real server's `-a` options as `-S` writes them (method, weight, tunnel).
fn server_options(dest: &RealServer) -> String {
    let mut o = format!("{} -w {}", dest.method.ipvsadm_flag(), dest.weight as i32);
    if dest.method == ForwardMethod::Tun {
        let _ = write!(o, " {}", dest.tunnel.rule());
    }
    o
}

/// One service as rules: its key (`-t VIP:PORT`, `-f MARK [-6]`), its `-A` line's options,
/// and each real server's address with its `-a` line's options (thresholds included).
struct ServiceRules {
    key: String,
    options: String,
    servers: Vec<(String, String)>,
}

fn service_rules(d: &Director) -> Vec<ServiceRules> {
    ordered(d, false)
        .into_iter()
        .map(|vs| ServiceRules {
            key: service_name(vs.spec.key, true, true),
            options: service_options(vs),
            servers: dests_of(vs, false)
                .into_iter()
                .map(|dest| {
                    let o = format!(
                        "{} -x {} -y {}",
                        server_options(dest),
                        dest.upper,
                        dest.lower
                    );
                    (endpoint(dest.addr, dest.port), o)
                })
                .collect(),
        })
        .collect()
}

/// The ipvsadm lines that turn `current`'s services and real servers into `desired`'s, as
/// keepalived's reload does: what is the same is left alone (its connections, counters
/// and checkers' doing), what differs is edited (`-E`, `-e`), what is new added, what is
/// gone deleted. Servers and services go first, then services and servers come.
pub fn rules_diff(current: &Director, desired: &Director) -> Vec<String> {
    let (cur, want) = (service_rules(current), service_rules(desired));
    let find = |list: &[ServiceRules], key: &str| list.iter().position(|s| s.key == key);
    let mut gone = Vec::new();
    let mut come = Vec::new();
    for s in &cur {
        match find(&want, &s.key) {
            None => gone.push(format!("-D {}", s.key)),
            Some(i) => {
                for (addr, _) in &s.servers {
                    if !want[i].servers.iter().any(|(a, _)| a == addr) {
                        gone.push(format!("-d {} -r {addr}", s.key));
                    }
                }
            }
        }
    }
    for w in &want {
        match find(&cur, &w.key) {
            None => {
                come.push(format!("-A {} {}", w.key, w.options));
                for (addr, o) in &w.servers {
                    come.push(format!("-a {} -r {addr} {o}", w.key));
                }
            }
            Some(i) => {
                let c = &cur[i];
                if c.options != w.options {
                    come.push(format!("-E {} {}", w.key, w.options));
                }
                for (addr, o) in &w.servers {
                    match c.servers.iter().find(|(a, _)| a == addr) {
                        None => come.push(format!("-a {} -r {addr} {o}", w.key)),
                        Some((_, old)) if old != o => {
                            come.push(format!("-e {} -r {addr} {o}", w.key));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    gone.extend(come);
    gone
}

/// `ipvsadm -L [-n]` and its variants. `size` is the connection-table size shown in the
/// version line.
pub fn list(
    d: &Director,
    opts: &ListOptions,
    fig: &Figures,
    loads: &[DestLoad],
    size: usize,
) -> Result<String, String> {
    let services: Vec<&VirtualService> = match opts.service {
        Some(k) => vec![d.find(k).ok_or("No such service")?],
        None => ordered(d, opts.nosort),
    };
    let format = opts.format();
    let mut out = String::new();
    if opts.service.is_none() {
        let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={size})");
    }
    let _ = match format {
        ListFormat::Stats => writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        ListFormat::Rate => writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        ListFormat::Thresholds => writeln!(
            out,
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        ListFormat::PersistentConn => writeln!(
            out,
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        ListFormat::Default if opts.tun_info => writeln!(
            out,
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn"
        ),
        ListFormat::Default => writeln!(
            out,
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
        ),
    };
    let load = |d: &RealServer| loads.get(d.id);
    for vs in services {
        let name = service_name(vs.spec.key, false, opts.numeric);
        match format {
            ListFormat::Stats | ListFormat::Rate => {
                let s = fig.service(vs, format == ListFormat::Rate);
                let _ = write!(out, "{name:<33}");
                for v in s.fields() {
                    out.push_str(&number(v, opts.exact));
                }
            }
            _ => {
                let _ = write!(out, "{name} {}", vs.spec.scheduler.name());
                let flags = sched_flags(vs);
                if !flags.is_empty() {
                    let _ = write!(out, " ({flags})");
                }
                if let Some(t) = vs.spec.persistent {
                    let _ = write!(out, " persistent {t}");
                    if let Some(m) = mask_text(vs) {
                        let _ = write!(out, " mask {m}");
                    }
                    if let Some(pe) = &vs.spec.pe {
                        let _ = write!(out, " pe {pe}");
                    }
                }
                if vs.spec.one_packet {
                    out.push_str(" ops");
                }
            }
        }
        out.push('\n');
        for dest in dests_of(vs, opts.nosort) {
            let mut dname = anyname(dest.addr, dest.port, proto_word(vs.spec.key), opts.numeric);
            if dest.addr.is_ipv4() {
                dname.truncate(28);
            }
            let (a, i, p) = load(dest)
                .map(|l| (l.active(), l.inactive(), l.persistent()))
                .unwrap_or_default();
            let weight = dest.weight as i32;
            match format {
                ListFormat::Stats => {
                    let s = fig.dest(dest, false);
                    let _ = write!(out, "  -> {dname:<28}");
                    for v in s.fields() {
                        out.push_str(&number(v, opts.exact));
                    }
                    out.push('\n');
                }
                ListFormat::Rate => {
                    let s = fig.dest(dest, true).fields();
                    let _ = write!(out, "  -> {dname:<28} {:>8} {:>8} {:>8}", s[0], s[1], s[2]);
                    out.push_str(&number(s[3], opts.exact));
                    out.push_str(&number(s[4], opts.exact));
                    out.push('\n');
                }
                ListFormat::Thresholds => {
                    let _ = writeln!(
                        out,
                        "  -> {dname:<28} {:<10} {:<10} {a:<10} {i:<10}",
                        dest.upper, dest.lower
                    );
                }
                ListFormat::PersistentConn => {
                    let _ = writeln!(out, "  -> {dname:<28} {weight:<9} {p:<11} {a:<10} {i:<10}");
                }
                ListFormat::Default => {
                    let word = if d.is_local(dest.addr) {
                        "Local"
                    } else {
                        dest.method.ipvsadm_word()
                    };
                    if opts.tun_info {
                        let info = if dest.method == ForwardMethod::Tun {
                            dest.tunnel.info()
                        } else {
                            "n/a".into()
                        };
                        let _ = writeln!(
                            out,
                            "  -> {dname:<28} {word:<7} {info:<13} {weight:<6} {a:<10} {i:<10}"
                        );
                    } else {
                        let _ = writeln!(
                            out,
                            "  -> {dname:<28} {word:<7} {weight:<6} {a:<10} {i:<10}"
                        );
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `rvsadm -L -n --json` (an rvs extension): the services `-L` would list, in its order,
/// each with its scheduler, flags, persistence, counters and rates, and its real servers
/// with forwarding method, weight, thresholds, connection counts, counters and rates.
/// Addresses are always numeric.
pub fn list_json(
    d: &Director,
    opts: &ListOptions,
    fig: &Figures,
    loads: &[DestLoad],
    size: usize,
) -> Result<String, String> {
    use serde_json::{json, Value};
    let services: Vec<&VirtualService> = match opts.service {
        Some(k) => vec![d.find(k).ok_or("No such service")?],
        None => ordered(d, opts.nosort),
    };
    let counters = |s: Stats| {
        json!({"conns": s.conns, "inpkts": s.inpkts, "outpkts": s.outpkts,
               "inbytes": s.inbytes, "outbytes": s.outbytes})
    };
    let rates = |s: Stats| {
        json!({"cps": s.conns, "inpps": s.inpkts, "outpps": s.outpkts,
               "inbps": s.inbytes, "outbps": s.outbytes})
    };
    let list: Vec<Value> = services
        .iter()
        .map(|vs| {
            let mut svc = match vs.spec.key {
                ServiceKey::Addr(p, a) => {
                    json!({"protocol": p.name().trim(), "address": endpoint(a.ip(), a.port())})
                }
                ServiceKey::Fwmark { mark, ipv6 } => {
                    json!({"fwmark": mark, "family": if ipv6 { "ipv6" } else { "ipv4" }})
                }
            };
            let flags = sched_flags(vs);
            let servers: Vec<Value> = dests_of(vs, opts.nosort)
                .into_iter()
                .map(|dest| {
                    let (a, i, p) = loads
                        .get(dest.id)
                        .map(|l| (l.active(), l.inactive(), l.persistent()))
                        .unwrap_or_default();
                    json!({
                        "address": endpoint(dest.addr, dest.port),
                        "forward": if d.is_local(dest.addr) { "Local" } else { dest.method.ipvsadm_word() },
                        "weight": dest.weight as i32,
                        "u_threshold": dest.upper,
                        "l_threshold": dest.lower,
                        "active_conns": a,
                        "inactive_conns": i,
                        "persistent_conns": p,
                        "stats": counters(fig.dest(dest, false)),
                        "rates": rates(fig.dest(dest, true)),
                    })
                })
                .collect();
            if let Some(o) = svc.as_object_mut() {
                o.insert("scheduler".into(), vs.spec.scheduler.name().into());
                o.insert(
                    "flags".into(),
                    flags.split(',').filter(|f| !f.is_empty()).collect::<Vec<_>>().into(),
                );
                o.insert("persistent".into(), vs.spec.persistent.into());
                o.insert("netmask".into(), mask_text(vs).into());
                o.insert("pe".into(), vs.spec.pe.clone().into());
                o.insert("one_packet".into(), vs.spec.one_packet.into());
                o.insert("stats".into(), counters(fig.service(vs, false)));
                o.insert("rates".into(), rates(fig.service(vs, true)));
                o.insert("servers".into(), servers.into());
            }
            svc
        })
        .collect();
    let doc = json!({"version": "1.2.1", "size": size, "services": list});
    serde_json::to_string_pretty(&doc)
        .map(|t| t + "\n")
        .map_err(|e| e.to_string())
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp_state(TcpState::Established),
        t.tcp_state(TcpState::FinWait),
        t.udp
    )
}

/// A connection's virtual address: firewall-mark templates carry the mark, as in IPVS.
fn virtual_text(c: &Conn) -> String {
    let a = c.vaddr;
    if a[0] == 0xfd && a[1..12].iter().all(|&b| b == 0) {
        let mark = u32::from_be_bytes([a[12], a[13], a[14], a[15]]);
        return endpoint(IpAddr::from(mark.to_be_bytes()), c.vport);
    }
    endpoint(ip_of(&a), c.vport)
}

/// `ipvsadm -L -c [-n] [--persistent-conn]`: `conns` holds each entry with its seconds
/// left; a SIP template whose call `calls` holds is listed as the kernel lists it: its
/// client (port 0), and with `--persistent-conn` the engine's name and the Call-ID.
pub fn connections(
    conns: &[(Conn, u32)],
    (numeric, persistent_conn): (bool, bool),
    calls: Option<&rvs_core::sip::SipCalls>,
) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        out.push_str("pro expire state       source             virtual            destination\n");
    }
    for (c, left) in conns {
        let (proto, word) = match c.proto {
            6 => ("TCP", Some("tcp")),
            17 => ("UDP", Some("udp")),
            132 => ("SCTP", Some("sctp")),
            _ => ("IP", None),
        };
        // A template's state is IPVS's: ASSURED once a connection it controls was.
        let state = if c.is_template() && c.assured {
            "ASSURED"
        } else if c.is_template() {
            "NONE"
        } else {
            rvs_core::conn::state_name(c.proto, c.state)
        };
        let name = |a: &[u8; 16], port: u16| anyname(ip_of(a), port, word, numeric);
        let vname = if is_mark_template(c) {
            virtual_text(c)
        } else {
            name(&c.vaddr, c.vport)
        };
        let expire = format!("{:02}:{:02}", left / 60, left % 60);
        let call = calls
            .filter(|_| c.is_template() && c.caddr[0] == rvs_core::sip::TEMPLATE_MARK)
            .and_then(|k| k.find(&c.caddr));
        let source = name(call.as_ref().map_or(&c.caddr, |k| &k.client), c.cport);
        match call.filter(|_| persistent_conn) {
            Some(k) => {
                let _ = writeln!(
                    out,
                    "{proto:<3} {expire:<6} {state:<11} {source:<18} {vname:<18} {:<16} {:<18} {}",
                    name(&c.daddr, c.dport),
                    "sip",
                    String::from_utf8_lossy(k.call_id()),
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{proto:<3} {expire:<6} {state:<11} {source:<18} {vname:<18} {}",
                    name(&c.daddr, c.dport),
                );
            }
        }
    }
    out
}

fn is_mark_template(c: &Conn) -> bool {
    c.vaddr[0] == 0xfd && c.vaddr[1..12].iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_read_as_inet_ntop_writes_them() {
        let t = |a: &str| super::ntop(a.parse().unwrap());
        assert_eq!(t("::10.0.0.2"), "::10.0.0.2", "IPv4-compatible: dotted");
        assert_eq!(t("::0.1.0.0"), "::0.1.0.0");
        assert_eq!(t("::ffff:10.0.0.2"), "::ffff:10.0.0.2");
        assert_eq!(t("::2"), "::2", "the seventh word zero: hex");
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("::"), "::");
        assert_eq!(t("2001:db8::a00:2"), "2001:db8::a00:2");
        assert_eq!(t("0:0:0:0:1::a00:2"), "::1:0:a00:2");
        assert_eq!(t("10.0.0.2"), "10.0.0.2");
        assert_eq!(
            super::endpoint("::10.0.0.2".parse().unwrap(), 80),
            "[::10.0.0.2]:80"
        );
    }

    use super::*;
    use crate::director::Limits;
    use crate::ipvsadm::{parse_args, parse_line, Command};
    use std::sync::Arc;

    fn director(rules: &str) -> Director {
        let loads = Arc::new((0..16).map(|_| DestLoad::default()).collect());
        let mut d = Director::new(
            Limits {
                entries: 16,
                dests: 16,
            },
            loads,
        );
        for l in rules.lines() {
            if let Some(c) = parse_line(l).unwrap() {
                d.apply(&c).unwrap();
            }
        }
        d
    }

    const RULES: &str = "-A -t 192.168.1.100:80 -s wrr
-a -t 192.168.1.100:80 -r 10.0.0.1:80 -m -w 3
-a -t 192.168.1.100:80 -r 10.0.0.2:80 -m -w 1
-A -u [2001:db8::1]:53 -s sh -p 600 -M 64 -b sh-fallback
-a -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 2
-A -t 10.1.1.254:0 -s wlc -p 3600 -M 255.255.255.0
-a -t 10.1.1.254:0 -r 10.1.1.2:0 -g -w 2
-A -f 10 -s rr -p 600
-a -f 10 -r 10.1.1.3:0 -i -w 1
";

    #[test]
    fn save_is_sorted_and_restores_to_the_same_text() {
        let d = director(RULES);
        let saved = save(&d, true);
        assert_eq!(
            saved,
            // libipvs compares addresses by unsigned difference read as int: 192.168.1.100
            // comes before 10.1.1.254 (more than 2^31 apart), IPv4 before IPv6.
            "-A -t 192.168.1.100:80 -s wrr
-a -t 192.168.1.100:80 -r 10.0.0.1:80 -m -w 3
-a -t 192.168.1.100:80 -r 10.0.0.2:80 -m -w 1
-A -t 10.1.1.254:0 -s wlc -p 3600 -M 255.255.255.0
-a -t 10.1.1.254:0 -r 10.1.1.2:0 -g -w 2
-A -u [2001:db8::1]:53 -s sh -p 600 -M 64 -b sh-fallback
-a -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 2
-A -f 10 -s rr -p 600
-a -f 10 -r 10.1.1.3:0 -i -w 1 --tun-type ipip
"
        );
        assert_eq!(save(&director(&saved), true), saved);
    }

    #[test]
    fn list_numeric_matches_ipvsadm_layout() {
        let d = director(RULES);
        d.loads()[d.services[0].dests[1].id].bind();
        let opts = match parse_args(&["-L", "-n"]).unwrap() {
            Command::List(o) => o,
            c => panic!("{c:?}"),
        };
        let text = list(&d, &opts, &Figures::default(), d.loads(), 4096).unwrap();
        let want = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.1.100:80 wrr
  -> 10.0.0.1:80                  Masq    3      0          1         
  -> 10.0.0.2:80                  Masq    1      0          0         
TCP  10.1.1.254:0 wlc persistent 3600 mask 255.255.255.0
  -> 10.1.1.2:0                   Route   2      0          0         
UDP  [2001:db8::1]:53 sh (sh-fallback) persistent 600 mask 64
  -> [2001:db8::10]:53            Route   2      0          0         
FWM  10 rr persistent 600
  -> 10.1.1.3:0                   Tunnel  1      0          0         
";
        assert_eq!(text, want);
    }

    /// The JSON listing holds what `-L -n`, `--stats`, `--rate` and `--thresholds` show,
    /// in `-L`'s order.
    #[test]
    fn the_json_listing_is_the_list_as_data() {
        let d = director(RULES);
        d.loads()[d.services[0].dests[1].id].bind();
        let mut fig = Figures {
            entries: vec![Stats::default(); 16],
            dests: vec![Stats::default(); 16],
            entry_rates: vec![Stats::default(); 16],
            dest_rates: vec![Stats::default(); 16],
        };
        let e = usize::from(d.services[0].entries[0].id);
        fig.entries[e].inpkts = 123_456_789;
        // dests[1] is 10.0.0.1, listed first (as -L -n above shows).
        fig.dest_rates[d.services[0].dests[1].id].conns = 7;
        let opts = match parse_args(&["-L", "-n"]).unwrap() {
            Command::List(o) => o,
            c => panic!("{c:?}"),
        };
        let text = list_json(&d, &opts, &fig, d.loads(), 4096).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["size"], 4096);
        let svcs = v["services"].as_array().unwrap();
        assert_eq!(svcs.len(), 4);
        assert_eq!(svcs[0]["protocol"], "TCP");
        assert_eq!(svcs[0]["address"], "192.168.1.100:80");
        assert_eq!(svcs[0]["scheduler"], "wrr");
        assert_eq!(svcs[0]["stats"]["inpkts"], 123_456_789);
        let rs = svcs[0]["servers"].as_array().unwrap();
        assert_eq!(
            (rs[0]["address"].as_str(), rs[0]["forward"].as_str()),
            (Some("10.0.0.1:80"), Some("Masq"))
        );
        assert_eq!(rs[0]["weight"], 3);
        assert_eq!(rs[0]["rates"]["cps"], 7);
        assert_eq!(
            (
                rs[0]["inactive_conns"].as_u64(),
                rs[1]["inactive_conns"].as_u64()
            ),
            (Some(1), Some(0))
        );
        assert_eq!(svcs[1]["persistent"], 3600);
        assert_eq!(svcs[1]["netmask"], "255.255.255.0");
        assert_eq!(svcs[2]["address"], "[2001:db8::1]:53");
        assert_eq!(svcs[2]["flags"], serde_json::json!(["sh-fallback"]));
        assert_eq!(svcs[3]["fwmark"], 10);
        assert_eq!(svcs[3]["servers"][0]["forward"], "Tunnel");
        let one = ListOptions {
            service: Some(d.services[0].spec.key),
            ..opts
        };
        let text = list_json(&d, &one, &fig, d.loads(), 1).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["services"].as_array().map(Vec::len), Some(1));
    }

    /// The reload's difference: applied to the current rules it gives the desired ones, and
    /// nothing for the same rules.
    #[test]
    fn a_rules_diff_turns_one_configuration_into_the_other() {
        let current = director(RULES);
        assert!(rules_diff(&current, &current).is_empty());
        let desired_text = "-A -t 192.168.1.100:80 -s wlc
-a -t 192.168.1.100:80 -r 10.0.0.1:80 -m -w 3
-a -t 192.168.1.100:80 -r 10.0.0.3:80 -m -w 1 -x 100 -y 50
-A -u [2001:db8::1]:53 -s sh -p 600 -M 64 -b sh-fallback
-a -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 5
-A -t 192.168.7.1:443 -s rr
-a -t 192.168.7.1:443 -r 10.0.0.9:443 -m -w 1
-A -f 10 -s rr -p 600
-a -f 10 -r 10.1.1.3:0 -i -w 1
";
        let desired = director(desired_text);
        let lines = rules_diff(&current, &desired);
        assert_eq!(
            lines,
            [
                "-d -t 192.168.1.100:80 -r 10.0.0.2:80",
                "-D -t 10.1.1.254:0",
                "-E -t 192.168.1.100:80 -s wlc",
                "-a -t 192.168.1.100:80 -r 10.0.0.3:80 -m -w 1 -x 100 -y 50",
                // In libipvs's order, as -S lists them.
                "-A -t 192.168.7.1:443 -s rr",
                "-a -t 192.168.7.1:443 -r 10.0.0.9:443 -m -w 1 -x 0 -y 0",
                "-e -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 5 -x 0 -y 0",
            ]
        );
        let mut d = current.clone();
        let ids_before = d.services[0]
            .dests
            .iter()
            .find(|r| r.port == 80 && r.addr == "10.0.0.1".parse::<IpAddr>().unwrap())
            .map(|r| r.id);
        for l in &lines {
            d.apply(&parse_line(l).unwrap().unwrap()).unwrap();
        }
        assert_eq!(save(&d, true), save(&desired, true));
        assert!(rules_diff(&d, &desired).is_empty());
        let ids_after = d
            .find(current.services[0].spec.key)
            .unwrap()
            .dests
            .iter()
            .find(|r| r.port == 80 && r.addr == "10.0.0.1".parse::<IpAddr>().unwrap())
            .map(|r| r.id);
        assert_eq!(
            ids_before, ids_after,
            "a kept server keeps its id (its connections and counters)"
        );
    }

    #[test]
    fn stats_columns_scale_unless_exact() {
        let d = director(RULES);
        let mut fig = Figures {
            entries: vec![Stats::default(); 16],
            dests: vec![Stats::default(); 16],
            ..Figures::default()
        };
        let e = usize::from(d.services[0].entries[0].id);
        fig.entries[e] = Stats {
            conns: 12,
            inpkts: 123_456_789,
            outpkts: 5,
            inbytes: 2_000_000_000,
            outbytes: 0,
        };
        let opts = ListOptions {
            stats: true,
            numeric: true,
            service: Some(d.services[0].spec.key),
            ..ListOptions::default()
        };
        let text = list(&d, &opts, &fig, d.loads(), 1).unwrap();
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "TCP  192.168.1.100:80                   12  123456K        5    2000M        0"
        );
        let exact = ListOptions {
            exact: true,
            ..opts
        };
        let text = list(&d, &exact, &fig, d.loads(), 1).unwrap();
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "TCP  192.168.1.100:80                   12 123456789        5 2000000000        0"
        );
        let missing = ListOptions {
            service: Some(ServiceKey::Fwmark {
                mark: 99,
                ipv6: false,
            }),
            ..opts
        };
        assert_eq!(
            list(&d, &missing, &fig, d.loads(), 1).unwrap_err(),
            "No such service"
        );
    }

    #[test]
    fn timeouts_and_connections() {
        assert_eq!(
            timeouts(&Timeouts::default()),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
        let key = rvs_core::conn::InKey {
            proto: 6,
            caddr: rvs_core::conn::addr16("10.0.0.9".parse().unwrap()),
            cport: 40000,
            vaddr: rvs_core::conn::addr16("192.168.1.100".parse().unwrap()),
            vport: 80,
        };
        let mut c = Conn::new(
            key,
            rvs_core::conn::addr16("10.0.0.1".parse().unwrap()),
            80,
            0,
            0,
            rvs_core::ForwardMethod::Nat,
            0,
        );
        c.state = TcpState::Established as u8;
        let text = connections(&[(c, 899), (c, 9000)], (true, false), None);
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "TCP 14:59  ESTABLISHED 10.0.0.9:40000     192.168.1.100:80   10.0.0.1:80"
        );
        // Past 99 minutes the expiry takes the column's last space, as ipvsadm's %-6s.
        assert_eq!(
            text.lines().nth(3).unwrap(),
            "TCP 150:00 ESTABLISHED 10.0.0.9:40000     192.168.1.100:80   10.0.0.1:80"
        );
        let pe = connections(&[], (true, true), None);
        assert_eq!(
            pe.lines().nth(1).unwrap(),
            "pro expire state       source             virtual            destination        pe name          pe_data"
        );
        // A SIP template: its client and, with --persistent-conn, "sip" and the Call-ID
        // (ipvsadm's columns as it prints them: the destination in 16, the name in 18).
        let client = rvs_core::conn::addr16("198.51.100.7".parse().unwrap());
        let call = rvs_core::sip::SipCall::new(client, b"a84b4c76e66710@pc33").unwrap();
        let calls = rvs_core::sip::SipCalls::new(16);
        assert!(calls.keep(&call.key(), &call));
        let key = rvs_core::conn::InKey {
            proto: 17,
            caddr: call.key(),
            cport: 0,
            vaddr: rvs_core::conn::addr16("192.168.1.107".parse().unwrap()),
            vport: 5060,
        };
        let t = Conn::new(
            key,
            rvs_core::conn::addr16("10.0.0.3".parse().unwrap()),
            5060,
            0,
            0,
            rvs_core::ForwardMethod::Nat,
            rvs_core::conn::table::flags::TEMPLATE,
        );
        let text = connections(&[(t, 299)], (true, true), Some(&calls));
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "UDP 04:59  NONE        198.51.100.7:0     192.168.1.107:5060 10.0.0.3:5060    sip                a84b4c76e66710@pc33"
        );
        let text = connections(&[(t, 299)], (true, false), Some(&calls));
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "UDP 04:59  NONE        198.51.100.7:0     192.168.1.107:5060 10.0.0.3:5060"
        );
        // Its server answered: ASSURED, as the kernel's template state.
        let mut assured = t;
        assured.assured = true;
        let text = connections(&[(assured, 299)], (true, false), Some(&calls));
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "UDP 04:59  ASSURED     198.51.100.7:0     192.168.1.107:5060 10.0.0.3:5060"
        );
    }
}
