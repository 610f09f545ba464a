//! ipvsadm's output formats, so scripts that parse ipvsadm keep working: `-L -n` (plain,
//! `--stats`, `--rate`, `--thresholds`, `--persistent-conn`, `--exact`, `--sort`), `-S -n`,
//! `-L --timeout` and `-L -c`.

use crate::director::{proto_name, Director, VirtualService};
use crate::ipvsadm::{ListFormat, ListOptions, ServiceKey};
use rvs_core::conn::{ip_of, Conn, TcpState, Timeouts};
use rvs_core::sched::DestLoad;
use rvs_core::RealServer;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

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
    fn service(&self, vs: &VirtualService, rates: bool) -> Stats {
        let v = if rates {
            &self.entry_rates
        } else {
            &self.entries
        };
        vs.entries.iter().fold(Stats::default(), |acc, e| {
            acc.plus(&v.get(usize::from(e.id)).copied().unwrap_or_default())
        })
    }

    fn dest(&self, d: &RealServer, rates: bool) -> Stats {
        let v = if rates { &self.dest_rates } else { &self.dests };
        v.get(d.id).copied().unwrap_or_default()
    }
}

fn endpoint(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr, port).to_string()
}

/// `TCP  1.2.3.4:80`, `FWM  10`, or in rule form `-t 1.2.3.4:80`, `-f 10`.
fn service_name(key: ServiceKey, rule: bool) -> String {
    match key {
        _ if rule => key.to_string(),
        ServiceKey::Addr(p, a) => format!("{}  {a}", proto_name(p)),
        ServiceKey::Fwmark { mark, .. } => format!("FWM  {mark}"),
    }
}

/// The persistence mask as ipvsadm prints it: dotted for IPv4, a length for IPv6; None
/// for a full mask.
fn mask_text(vs: &VirtualService) -> Option<String> {
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

fn sort_key(vs: &VirtualService) -> (u32, bool, u8, IpAddr, u16) {
    match vs.spec.key {
        ServiceKey::Addr(p, a) => (0, a.is_ipv6(), p as u8, a.ip(), a.port()),
        ServiceKey::Fwmark { mark, ipv6 } => (mark, ipv6, 0, IpAddr::from([0u8; 4]), 0),
    }
}

fn ordered(d: &Director, sort: bool) -> Vec<&VirtualService> {
    let mut v: Vec<&VirtualService> = d.services.iter().collect();
    if sort {
        v.sort_by_key(|s| sort_key(s));
    }
    v
}

/// Real servers sorted by (address, port), as ipvsadm always shows and saves them.
fn dests_of(vs: &VirtualService) -> Vec<&RealServer> {
    let mut v: Vec<&RealServer> = vs.dests.iter().collect();
    v.sort_by_key(|d| (d.addr, d.port));
    v
}

/// `ipvsadm -S -n`: services sorted by (fwmark, family, protocol, address, port), servers
/// by (address, port); `-R` reads it back to the same configuration.
pub fn save(d: &Director) -> String {
    let mut out = String::new();
    for vs in ordered(d, true) {
        let name = service_name(vs.spec.key, true);
        let _ = write!(out, "-A {name} -s {}", vs.spec.scheduler.name());
        if let Some(t) = vs.spec.persistent {
            let _ = write!(out, " -p {t}");
            if let Some(m) = mask_text(vs) {
                let _ = write!(out, " -M {m}");
            }
        }
        if vs.spec.one_packet {
            out.push_str(" -o");
        }
        let flags = vs.spec.scheduler.flags();
        if !flags.is_empty() {
            let _ = write!(out, " -b {}", flags.join(","));
        }
        out.push('\n');
        for dest in dests_of(vs) {
            let _ = writeln!(
                out,
                "-a {name} -r {} {} -w {}",
                endpoint(dest.addr, dest.port),
                dest.method.ipvsadm_flag(),
                dest.weight
            );
        }
    }
    out
}

/// `ipvsadm -L -n` and its variants. `size` is the connection-table size shown in the
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
        None => ordered(d, opts.sort),
    };
    let mut out = String::new();
    if opts.service.is_none() {
        let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={size})");
    }
    let _ = match opts.format {
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
            "Prot LocalAddress:Port\n  -> RemoteAddress:Port            Uthreshold Lthreshold ActiveConn InActConn"
        ),
        ListFormat::PersistentConn => writeln!(
            out,
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  -> RemoteAddress:Port"
        ),
        ListFormat::Default => writeln!(
            out,
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
        ),
    };
    let load = |d: &RealServer| loads.get(d.id);
    for vs in services {
        let mut name = service_name(vs.spec.key, false);
        if !vs.is_ipv6() {
            name.truncate(33);
        }
        match opts.format {
            ListFormat::Stats | ListFormat::Rate => {
                let s = fig.service(vs, opts.format == ListFormat::Rate);
                let _ = write!(out, "{name:<33}");
                for v in s.fields() {
                    out.push_str(&number(v, opts.exact));
                }
            }
            _ => {
                let _ = write!(out, "{name} {}", vs.spec.scheduler.name());
                let flags = vs.spec.scheduler.flags();
                if !flags.is_empty() {
                    let _ = write!(out, " ({})", flags.join(","));
                }
                if let Some(t) = vs.spec.persistent {
                    let _ = write!(out, " persistent {t}");
                    if let Some(m) = mask_text(vs) {
                        let _ = write!(out, " mask {m}");
                    }
                }
                if vs.spec.one_packet {
                    out.push_str(" ops");
                }
            }
        }
        out.push('\n');
        for dest in dests_of(vs) {
            let dname = endpoint(dest.addr, dest.port);
            let (a, i, p) = load(dest)
                .map(|l| (l.active(), l.inactive(), l.persistent()))
                .unwrap_or_default();
            match opts.format {
                ListFormat::Stats | ListFormat::Rate => {
                    let s = fig.dest(dest, opts.format == ListFormat::Rate);
                    let _ = write!(out, "  -> {dname:<28}");
                    for v in s.fields() {
                        out.push_str(&number(v, opts.exact));
                    }
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
                    let _ = writeln!(
                        out,
                        "  -> {dname:<28} {:<9} {p:<11} {a:<10} {i:<10}",
                        dest.weight
                    );
                }
                ListFormat::Default => {
                    let word = if d.is_local(dest.addr) {
                        "Local"
                    } else {
                        dest.method.ipvsadm_word()
                    };
                    let _ = writeln!(
                        out,
                        "  -> {dname:<28} {word:<7} {:<6} {a:<10} {i:<10}",
                        dest.weight
                    );
                }
            }
        }
    }
    Ok(out)
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

/// `ipvsadm -L -c -n`: `conns` holds each entry with its seconds left.
pub fn connections(conns: &[(Conn, u32)]) -> String {
    let mut out =
        String::from("IPVS connection entries\npro expire state       source             virtual            destination\n");
    for (c, left) in conns {
        let proto = match c.proto {
            6 => "TCP",
            17 => "UDP",
            _ => "IP",
        };
        let state = if c.is_template() {
            "NONE"
        } else if c.proto == 6 {
            c.state.name()
        } else {
            "UDP"
        };
        let _ = writeln!(
            out,
            "{proto:<3} {:02}:{:02}  {state:<11} {:<18} {:<18} {}",
            left / 60,
            left % 60,
            endpoint(ip_of(&c.caddr), c.cport),
            virtual_text(c),
            endpoint(ip_of(&c.daddr), c.dport),
        );
    }
    out
}

#[cfg(test)]
mod tests {
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
        let saved = save(&d);
        assert_eq!(
            saved,
            "-A -t 10.1.1.254:0 -s wlc -p 3600 -M 255.255.255.0
-a -t 10.1.1.254:0 -r 10.1.1.2:0 -g -w 2
-A -t 192.168.1.100:80 -s wrr
-a -t 192.168.1.100:80 -r 10.0.0.1:80 -m -w 3
-a -t 192.168.1.100:80 -r 10.0.0.2:80 -m -w 1
-A -u [2001:db8::1]:53 -s sh -p 600 -M 64 -b sh-fallback
-a -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 2
-A -f 10 -s rr -p 600
-a -f 10 -r 10.1.1.3:0 -i -w 1
"
        );
        assert_eq!(save(&director(&saved)), saved);
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
UDP  [2001:db8::1]:53 sh (sh-fallback) persistent 600 mask 64
  -> [2001:db8::10]:53            Route   2      0          0         
TCP  10.1.1.254:0 wlc persistent 3600 mask 255.255.255.0
  -> 10.1.1.2:0                   Route   2      0          0         
FWM  10 rr persistent 600
  -> 10.1.1.3:0                   Tunnel  1      0          0         
";
        assert_eq!(text, want);
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
            format: ListFormat::Stats,
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
        c.state = TcpState::Established;
        let text = connections(&[(c, 899)]);
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "TCP 14:59  ESTABLISHED 10.0.0.9:40000     192.168.1.100:80   10.0.0.1:80"
        );
    }
}
