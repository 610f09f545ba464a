//! ns per packet through the forwarding core: an established NAT, DR and TUN flow, and a
//! new NAT connection, with 1 and 1M other flows in the table.
//! `cargo bench -p rvs-dataplane --bench engine`. Each iteration copies the 64-byte input
//! into the frame first (a few ns), as the rewrite changes it.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use etherparse::PacketBuilder;
use hashbrown::HashMap;
use rvs_core::engine::Frame;
use rvs_core::engine::{
    Engine, EngineConfig, ForwardMethod, PortInfo, RealServer, Route, Service, Snapshot, VecFrame,
    Verdict,
};
use rvs_core::sched::{DestLoad, SchedKind};
use rvs_wire::Ipv4Packet;
use std::net::IpAddr;
use std::time::Instant;

const PORT0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PORT1: [u8; 6] = [2, 0, 0, 0, 0, 2];
const CLIENT_MAC: [u8; 6] = [2, 0xcc, 0, 0, 0, 1];

fn snapshot() -> Snapshot {
    let svc = |id: u16, last: u8, method: ForwardMethod| {
        let servers = (0..10u8)
            .map(|i| RealServer {
                id: usize::from(id) * 10 + usize::from(i),
                addr: IpAddr::from([10, 0, 0, 10 + i]),
                port: 0,
                weight: 1,
                last_weight: 1,
                method,
                upper: 0,
                lower: 0,
                tunnel: Default::default(),
            })
            .collect();
        Service::new(
            id,
            6,
            IpAddr::from([192, 168, 1, last]),
            80,
            None,
            SchedKind::Wlc,
            None,
            servers,
        )
    };
    let services = vec![
        svc(0, 100, ForwardMethod::Nat),
        svc(1, 101, ForwardMethod::Dr),
        svc(2, 102, ForwardMethod::Tun),
    ];
    let ports = vec![
        PortInfo {
            mac: PORT0,
            addrs: vec![IpAddr::from([192, 168, 1, 1])],
            mtu: 1500,
            ip_checksum_offload: false,
        },
        PortInfo {
            mac: PORT1,
            addrs: vec![IpAddr::from([10, 0, 0, 1])],
            mtu: 1500,
            ip_checksum_offload: false,
        },
    ];
    let routes = vec![
        Route {
            prefix: IpAddr::from([10, 0, 0, 0]),
            len: 24,
            gateway: None,
            port: 1,
            table: rvs_core::engine::MAIN_TABLE,
        },
        Route {
            prefix: IpAddr::from([0, 0, 0, 0]),
            len: 0,
            gateway: Some(IpAddr::from([192, 168, 1, 254])),
            port: 0,
            table: rvs_core::engine::MAIN_TABLE,
        },
    ];
    let mut neighbours = HashMap::new();
    for i in 0..10u8 {
        neighbours.insert(IpAddr::from([10, 0, 0, 10 + i]), [2, 0xaa, 0, 0, 0, i]);
    }
    neighbours.insert(IpAddr::from([192, 168, 1, 254]), [2, 0xbb, 0, 0, 0, 1]);
    Snapshot::new(services, ports, routes, neighbours)
}

fn frame(client: [u8; 4], sport: u16, vip_last: u8, syn: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0)
        .ipv4(client, [192, 168, 1, vip_last], 64)
        .tcp(sport, 80, 1, 1000);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write(&mut out, &[0u8; 10]).unwrap();
    out
}

/// An engine with `others` established flows besides the measured ones.
fn engine_with(snap: &Snapshot, loads: &[DestLoad], others: u32) -> Engine {
    let mut e = Engine::new(
        EngineConfig {
            conn_capacity: others as usize + (1 << 20),
            ..EngineConfig::default()
        },
        0,
    );
    e.adopt(snap);
    let mut f = VecFrame::new(&[]);
    for i in 0..others {
        let c = (0x0b00_0000u32 + i).to_be_bytes();
        f.reset(&frame(c, 1000 + (i % 50000) as u16, 100, true));
        e.process(snap, loads, 1, 0, &mut f);
    }
    e
}

fn established(c: &mut Criterion) {
    let snap = snapshot();
    let loads: Vec<DestLoad> = (0..64).map(|_| DestLoad::default()).collect();
    let mut group = c.benchmark_group("established");
    for others in [1u32, 1_000_000] {
        let mut engine = engine_with(&snap, &loads, others);
        for (name, vip) in [("nat", 100u8), ("dr", 101), ("tun", 102)] {
            let syn = frame([198, 51, 100, 7], 40000, vip, true);
            let ack = frame([198, 51, 100, 7], 40000, vip, false);
            let mut f = VecFrame::new(&syn);
            assert!(matches!(
                engine.process(&snap, &loads, 1, 0, &mut f),
                Verdict::Forward { .. }
            ));
            group.bench_with_input(BenchmarkId::new(name, others), &others, |b, _| {
                b.iter(|| {
                    f.reset(&ack);
                    black_box(engine.process(&snap, &loads, 1, 0, &mut f))
                })
            });
        }
    }
    group.finish();
}

fn new_connections(c: &mut Criterion) {
    let snap = snapshot();
    let loads: Vec<DestLoad> = (0..64).map(|_| DestLoad::default()).collect();
    let mut group = c.benchmark_group("new_conn");
    for others in [1u32, 1_000_000] {
        let template = frame([198, 51, 100, 7], 40000, 100, true);
        group.bench_with_input(BenchmarkId::new("nat", others), &others, |b, _| {
            b.iter_custom(|iters| {
                let mut engine = engine_with(&snap, &loads, others);
                let mut f = VecFrame::new(&template);
                let start = Instant::now();
                for i in 0..iters {
                    f.reset(&template);
                    // A new client address per iteration (IPv4 checksum kept valid).
                    if let Ok(mut ip) = Ipv4Packet::new_checked(&mut f.bytes_mut()[14..]) {
                        ip.set_src((0x6400_0000u32 + i as u32).to_be_bytes());
                    }
                    black_box(engine.process(&snap, &loads, 1, 0, &mut f));
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// The PROXY v1 header a full-NAT connection's first segment carries: written by hand (as
/// rvs does) against the standard library's formatting of the same text (as it did).
fn proxy_v1_header(c: &mut Criterion) {
    use rvs_wire::proxy::{emit_tcp_v1, MAX_V1};
    let mut group = c.benchmark_group("proxy_v1");
    type End = (IpAddr, u16);
    let ends: [(&str, End, End); 2] = [
        (
            "ipv4",
            ([198, 51, 100, 7].into(), 40000),
            ([192, 0, 2, 1].into(), 80),
        ),
        (
            "ipv6",
            ("2001:db8::7".parse().unwrap(), 40000),
            ("2001:db8:0:1::1".parse().unwrap(), 443),
        ),
    ];
    for (family, src, dst) in ends {
        group.bench_function(BenchmarkId::new("by_hand", family), |b| {
            let mut out = [0u8; MAX_V1];
            b.iter(|| emit_tcp_v1(&mut out, black_box(src), black_box(dst)))
        });
        group.bench_function(BenchmarkId::new("std_write", family), |b| {
            let mut out = [0u8; MAX_V1];
            b.iter(|| {
                use std::io::Write;
                let (src, dst) = (black_box(src), black_box(dst));
                let name = if src.0.is_ipv4() { "TCP4" } else { "TCP6" };
                let mut rest = &mut out[..];
                let _ = write!(
                    rest,
                    "PROXY {name} {} {} {} {}\r\n",
                    src.0, dst.0, src.1, dst.1
                );
                MAX_V1 - rest.len()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = established, new_connections, proxy_v1_header
}
criterion_main!(benches);
