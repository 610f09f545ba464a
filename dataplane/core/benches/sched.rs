//! ns per pick for every scheduler at 10 and 1000 servers, lblc and lblcr with their
//! caches on the workers' shared board, the Maglev table build time at 1000 servers, and
//! the servers' shared load counters under two workers.
//! `cargo bench -p rvs-core --bench sched`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use rvs_core::conn::v4_mapped;
use rvs_core::model::{ForwardMethod, RealServer};
use rvs_core::sched::{build_table, pick, DestLoad, PendingLoads, Request, SchedKind, SchedState};
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn dests(n: usize) -> Vec<RealServer> {
    (0..n)
        .map(|i| RealServer {
            id: i,
            addr: IpAddr::from([10, 1, (i >> 8) as u8, i as u8]),
            port: 80,
            weight: 1 + (i % 7) as u32,
            last_weight: 1 + (i % 7) as u32,
            method: ForwardMethod::Nat,
            upper: 0,
            lower: 0,
            tunnel: Default::default(),
        })
        .collect()
}

fn picks(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [10usize, 1000] {
        let d = dests(n);
        let loads: Vec<DestLoad> = (0..n).map(|_| DestLoad::default()).collect();
        for (i, l) in loads.iter().enumerate() {
            l.set_counts((i % 13) as u32, (i % 29) as u32);
        }
        for name in SchedKind::NAMES {
            let kind = SchedKind::by_name(name).unwrap();
            let table = build_table(&kind, &d);
            let mut state = SchedState::new(&kind, &table);
            let mut x: u32 = 0x9e37_79b9;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let req = Request {
                        client: v4_mapped(x.to_be_bytes()),
                        client_port: x as u16,
                        dst: v4_mapped([192, 168, (x >> 24) as u8, (x >> 16) as u8]),
                        now: 0,
                        expiration: Default::default(),
                    };
                    black_box(pick(&kind, &table, &mut state, &d, &loads, &req))
                })
            });
        }
    }
    group.finish();
}

/// lblc and lblcr with several workers: the cache on the board they share (what a worker
/// computes per new connection: the keys, then the pick), the same request stream as
/// [`picks`].
fn board_picks(c: &mut Criterion) {
    use rvs_core::conn::InKey;
    use rvs_core::engine::SharedTemplates;
    use rvs_core::sched::{pick_lblc_shared, pick_lblcr_shared, SharedSet, SHARED_MEMBERS};
    let mut group = c.benchmark_group("board_pick");
    for n in [10usize, 1000] {
        let d = dests(n);
        let loads: Vec<DestLoad> = (0..n).map(|_| DestLoad::default()).collect();
        for (i, l) in loads.iter().enumerate() {
            l.set_counts((i % 13) as u32, (i % 29) as u32);
        }
        let board = SharedTemplates::new(1 << 20);
        let key = |proto: u8, dst: [u8; 4], slot: usize| {
            board.key(&InKey {
                proto,
                caddr: v4_mapped(dst),
                cport: slot as u16,
                vaddr: v4_mapped([192, 0, 2, 1]),
                vport: 80,
            })
        };
        let mut x: u32 = 0x9e37_79b9;
        let mut next_dst = move || {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            [192, 168, (x >> 24) as u8, (x >> 16) as u8]
        };
        group.bench_with_input(BenchmarkId::new("lblc", n), &n, |b, _| {
            b.iter(|| {
                let k = key(0x86, next_dst(), 0);
                black_box(pick_lblc_shared(&d, &loads, None, (&board, k), (1, 86_400)))
            })
        });
        group.bench_with_input(BenchmarkId::new("lblcr", n), &n, |b, _| {
            b.iter(|| {
                let dst = next_dst();
                let set = SharedSet {
                    members: std::array::from_fn(|slot| key(0xc6, dst, slot)),
                    stamp: key(0xc6, dst, SHARED_MEMBERS),
                };
                black_box(pick_lblcr_shared(
                    &d,
                    &loads,
                    None,
                    (&board, &set),
                    (1, 86_400),
                ))
            })
        });
    }
    group.finish();
}

fn maglev_build(c: &mut Criterion) {
    let d = dests(1000);
    for size in [4093u32, 65521] {
        let kind = SchedKind::Mh {
            fallback: false,
            port: false,
            size,
        };
        c.bench_function(&format!("mh_build_1000_servers_M{size}"), |b| {
            b.iter(|| black_box(build_table(&kind, &d)))
        });
    }
}

/// One connection's life as a worker counts it on its server: bound, made active, gone.
fn connection_life(load: &DestLoad) {
    load.bind();
    load.set_active(true);
    load.unbind(true);
}

/// Two threads (two workers) each counting connections on a server of its own: neighbours
/// in the load array, then eight apart, then both on one server. The first two differ only
/// when neighbouring servers' counters share a cache line; the third is the sharing no
/// layout avoids (IPVS's counters are as global).
fn dest_load(c: &mut Criterion) {
    let loads: Vec<DestLoad> = (0..16).map(|_| DestLoad::default()).collect();
    let mut group = c.benchmark_group("dest_load_two_workers");
    for (name, servers) in [("neighbours", [0, 1]), ("apart", [0, 8]), ("same", [0, 0])] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                std::thread::scope(|s| {
                    for &server in &servers {
                        let load = &loads[server];
                        s.spawn(move || {
                            for _ in 0..iters {
                                connection_life(black_box(load));
                            }
                        });
                    }
                });
                started.elapsed().max(Duration::from_nanos(1))
            })
        });
    }
    // As workers count: changes held and shared once a pass of 32 packets (a pass opens
    // connections and its evictions or timers close as many).
    group.bench_function("same_held_a_pass", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let loads = &loads;
                    s.spawn(move || {
                        let mut held = PendingLoads::new(loads.len());
                        for n in 0..iters {
                            held.open(loads, black_box(0), true);
                            held.closed(loads, black_box(0), true);
                            if n % 32 == 31 {
                                held.flush(loads);
                            }
                        }
                        held.flush(loads);
                    });
                }
            });
            started.elapsed().max(Duration::from_nanos(1))
        })
    });
    group.finish();
}

criterion_group!(benches, picks, board_picks, maglev_build, dest_load);
criterion_main!(benches);
