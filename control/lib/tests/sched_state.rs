//! Scheduler state across live changes, as IPVS keeps it, on the workers' own path: rules
//! through the Director, snapshots adopted by engines, SYNs through `Engine::process`.

use rvs_control::director::{Director, Limits};
use rvs_control::ipvsadm::parse_line;
use rvs_core::conn::{addr16, InKey};
use rvs_core::engine::{Engine, EngineConfig, PortInfo, Route, Snapshot};
use rvs_core::sched::DestLoad;
use rvs_wire::emit::opening_frame;
use rvs_wire::{proto, VecFrame};
use std::net::IpAddr;
use std::sync::Arc;

const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

struct Rig {
    director: Director,
    loads: Arc<Vec<DestLoad>>,
}

impl Rig {
    fn new() -> Rig {
        let loads: Arc<Vec<DestLoad>> = Arc::new((0..64).map(|_| DestLoad::default()).collect());
        let mut director = Director::new(
            Limits {
                entries: 16,
                dests: 64,
            },
            loads.clone(),
        );
        director.ports = vec![PortInfo {
            mac: PORT_MAC,
            addrs: vec![IpAddr::from([10, 0, 0, 254])],
            mtu: 1500,
            ip_checksum_offload: false,
        }];
        director.routes = vec![Route {
            prefix: IpAddr::from([0, 0, 0, 0]),
            len: 0,
            gateway: None,
            port: 0,
            table: rvs_core::engine::MAIN_TABLE,
        }];
        director.neighbours = (1..=9)
            .map(|i| (IpAddr::from([10, 0, 0, i]), [2, 0xaa, 0, 0, 0, i]))
            .collect();
        Rig { director, loads }
    }

    fn rules(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(cmd) = parse_line(line).unwrap() {
                self.director.apply(&cmd).unwrap();
            }
        }
    }

    fn engine() -> Engine {
        Engine::new(
            EngineConfig {
                conn_capacity: 4096,
                max_services: 16,
                max_dests: 64,
                neighbour_capacity: 64,
                ..EngineConfig::default()
            },
            1,
        )
    }

    /// The last octet of the server a SYN from `client:port` to `vip:80` goes to.
    fn connect(
        &self,
        engine: &mut Engine,
        snap: &Snapshot,
        client: [u8; 4],
        port: u16,
        vip: [u8; 4],
    ) -> u8 {
        self.try_connect(engine, snap, client, port, vip)
            .expect("a connection")
    }

    /// As [`Rig::connect`]; None when no server was available.
    fn try_connect(
        &self,
        engine: &mut Engine,
        snap: &Snapshot,
        client: [u8; 4],
        port: u16,
        vip: [u8; 4],
    ) -> Option<u8> {
        let (c, v) = (IpAddr::from(client), IpAddr::from(vip));
        let frame = opening_frame(
            ([2, 0xcc, 0, 0, 0, 1], PORT_MAC),
            c,
            v,
            proto::TCP,
            (port, 80),
        )
        .unwrap();
        engine.process(snap, &self.loads, 1, 0, &mut VecFrame::new(&frame));
        let key = InKey {
            proto: proto::TCP,
            caddr: addr16(c),
            cport: port,
            vaddr: addr16(v),
            vport: 80,
        };
        let conn = engine
            .table
            .lookup_in(&key)
            .and_then(|id| engine.table.get(id))?;
        let server = self
            .director
            .services
            .iter()
            .flat_map(|s| &s.dests)
            .find(|d| d.id == conn.dest as usize)
            .expect("a known server");
        match server.addr {
            IpAddr::V4(a) => Some(a.octets()[3]),
            IpAddr::V6(_) => Some(0),
        }
    }
}

#[test]
fn a_weight_edit_keeps_lblcs_cache() {
    let mut rig = Rig::new();
    rig.rules("-A -t 10.0.1.1:80 -s lblc\n-a -t 10.0.1.1:80 -r 10.0.0.1 -g -w 1\n-a -t 10.0.1.1:80 -r 10.0.0.2 -g -w 1\n");
    let mut engine = Rig::engine();
    let snap = rig.director.snapshot();
    engine.adopt(&snap);
    let first = rig.connect(&mut engine, &snap, [1, 1, 1, 1], 1000, [10, 0, 1, 1]);
    let other = if first == 1 { 2 } else { 1 };
    // The other server becomes far more attractive to wlc; the cached one is not
    // overloaded, so the destination stays where it is.
    rig.rules(&format!("-e -t 10.0.1.1:80 -r 10.0.0.{other} -g -w 100\n"));
    let snap = rig.director.snapshot();
    engine.adopt(&snap);
    assert_eq!(
        rig.connect(&mut engine, &snap, [1, 1, 1, 2], 1001, [10, 0, 1, 1]),
        first
    );
    // Bound anew (-E to another scheduler and back), the cache is gone: wlc decides.
    rig.rules("-E -t 10.0.1.1:80 -s rr\n-E -t 10.0.1.1:80 -s lblc\n");
    let snap = rig.director.snapshot();
    engine.adopt(&snap);
    assert_eq!(
        rig.connect(&mut engine, &snap, [1, 1, 1, 3], 1002, [10, 0, 1, 1]),
        other
    );
}

#[test]
fn a_worker_that_skipped_snapshots_schedules_like_one_that_saw_them_all() {
    let mut rig = Rig::new();
    let (mut seen_all, mut late) = (Rig::engine(), Rig::engine());
    rig.rules("-A -t 10.0.1.1:80 -s wrr\n");
    seen_all.adopt(&rig.director.snapshot());
    late.adopt(&rig.director.snapshot());
    let mut snap = rig.director.snapshot();
    for (i, w) in [(1, 4), (2, 3), (3, 2)] {
        rig.rules(&format!("-a -t 10.0.1.1:80 -r 10.0.0.{i} -g -w {w}\n"));
        snap = rig.director.snapshot();
        seen_all.adopt(&snap);
    }
    late.adopt(&snap);
    let picks = |engine: &mut Engine, base: u16| -> String {
        (0..9)
            .map(|n| {
                rig.connect(engine, &snap, [1, 1, 1, 1], base + n, [10, 0, 1, 1])
                    .to_string()
            })
            .collect()
    };
    // Filled one server at a time (newest first: .3 .2 .1, weights 2, 3, 4): cw is 1
    // after the adds, so every server gets a turn before the 4:3:2 cycle (IPVS).
    let a = picks(&mut seen_all, 2000);
    assert_eq!(a, "321121321", "{a}");
    assert_eq!(picks(&mut late, 3000), a);
}

#[test]
fn mh_keeps_a_quiesced_servers_slots() {
    let mut rig = Rig::new();
    rig.rules("-A -t 10.0.1.1:80 -s mh\n-a -t 10.0.1.1:80 -r 10.0.0.1 -g -w 1\n-a -t 10.0.1.1:80 -r 10.0.0.2 -g -w 1\n-a -t 10.0.1.1:80 -r 10.0.0.3 -g -w 1\n");
    let snap = rig.director.snapshot();
    let before = snap.services[0].table.clone();
    let mut engine = Rig::engine();
    engine.adopt(&snap);
    let clients: Vec<[u8; 4]> = (0..60u8).map(|n| [1, 1, 2, n]).collect();
    let was: Vec<u8> = clients
        .iter()
        .map(|&c| rig.connect(&mut engine, &snap, c, 4000, [10, 0, 1, 1]))
        .collect();
    assert!(was.contains(&2));
    rig.rules("-e -t 10.0.1.1:80 -r 10.0.0.2 -g -w 0\n");
    let snap = rig.director.snapshot();
    assert_eq!(
        snap.services[0].table, before,
        "the Maglev table did not move"
    );
    let mut engine = Rig::engine();
    engine.adopt(&snap);
    for (c, was) in clients.iter().zip(was) {
        let now = rig.try_connect(&mut engine, &snap, *c, 4001, [10, 0, 1, 1]);
        // Without mh-fallback a client of the quiesced server finds none; every other
        // client keeps its server.
        let want = (was != 2).then_some(was);
        assert_eq!(now, want, "client {c:?}");
    }
}

/// `-E` to the same scheduler does not rebind it (IPVS edits the service in place): wrr
/// goes on from where it was; `-E` to another scheduler and back starts it afresh.
#[test]
fn wrr_keeps_its_place_across_an_edit_to_the_same_scheduler() {
    let setup = "-A -t 10.0.1.1:80 -s wrr\n-a -t 10.0.1.1:80 -r 10.0.0.1 -g -w 4\n-a -t 10.0.1.1:80 -r 10.0.0.2 -g -w 3\n-a -t 10.0.1.1:80 -r 10.0.0.3 -g -w 2\n";
    let run = |edit: &str| -> String {
        let mut rig = Rig::new();
        rig.rules(setup);
        let mut engine = Rig::engine();
        let mut snap = rig.director.snapshot();
        engine.adopt(&snap);
        let mut out = String::new();
        for n in 0..9u16 {
            if n == 4 && !edit.is_empty() {
                rig.rules(edit);
                snap = rig.director.snapshot();
                engine.adopt(&snap);
            }
            let s = rig.connect(&mut engine, &snap, [1, 1, 1, 1], 5000 + n, [10, 0, 1, 1]);
            out.push_str(&s.to_string());
        }
        out
    };
    let straight = run("");
    assert_eq!(
        run("-E -t 10.0.1.1:80 -s wrr\n"),
        straight,
        "same scheduler: in place"
    );
    assert_eq!(
        run("-E -t 10.0.1.1:80 -s wrr -p 60\n-E -t 10.0.1.1:80 -s wrr\n"),
        straight
    );
    let rebound = run("-E -t 10.0.1.1:80 -s rr\n-E -t 10.0.1.1:80 -s wrr\n");
    assert_eq!(&rebound[..4], &straight[..4]);
    assert_ne!(rebound, straight, "bound anew: started afresh");
}

/// lblc as the kernel: a server over its -x threshold keeps the destinations already
/// cached on it (only weight 0 or lblc's own overload test move them); new destinations
/// go elsewhere.
#[test]
fn lblc_cache_hits_ignore_the_threshold_flag() {
    let mut rig = Rig::new();
    rig.rules("-A -t 10.0.1.1:80 -s lblc\n-a -t 10.0.1.1:80 -r 10.0.0.1 -g -w 10 -x 1\n-a -t 10.0.1.1:80 -r 10.0.0.2 -g -w 10 -x 1\n");
    let mut engine = Rig::engine();
    let snap = rig.director.snapshot();
    engine.adopt(&snap);
    // The same VIP for every client: one cache entry, on the first server wlc picks.
    let first = rig.connect(&mut engine, &snap, [1, 1, 3, 1], 6000, [10, 0, 1, 1]);
    // It now holds one connection: at its -x 1 it is flagged overloaded.
    let dest = rig.director.services[0]
        .dests
        .iter()
        .find(|d| d.addr == IpAddr::from([10, 0, 0, first]))
        .unwrap();
    assert!(rig.loads[dest.id].overloaded());
    assert_eq!(
        rig.connect(&mut engine, &snap, [1, 1, 3, 2], 6001, [10, 0, 1, 1]),
        first,
        "the cached destination stays on the flagged server"
    );
}
