//! Persistence with several workers: each worker has its own connection table, and a
//! client's connections reach the workers that own their endpoints (RSS); a persistent
//! service must still give every connection of a client one server, as IPVS's one template
//! does. The workers here are engines sharing a snapshot, the servers' counts and the
//! templates' board, each fed the frames its queue would get.

#![allow(clippy::too_many_arguments)]

use rvs_core::engine::{
    owner_of, Engine, EngineConfig, ForwardMethod, SharedTemplates, Snapshot, Verdict,
};
use rvs_core::sched::DestLoad;
use rvs_testkit::*;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

const VIP: [u8; 4] = [192, 168, 1, 103];

struct Workers {
    snap: Snapshot,
    loads: Vec<DestLoad>,
    engines: Vec<Engine>,
}

impl Workers {
    /// `n` workers on `snap`, sharing their templates' choices or not.
    fn new(n: usize, snap: Snapshot, shared: bool) -> Workers {
        let board = Arc::new(SharedTemplates::new(1024));
        let engines = (0..n)
            .map(|i| {
                let mut e = Engine::new(
                    EngineConfig {
                        conn_capacity: 4096,
                        ..EngineConfig::default()
                    },
                    0,
                );
                e.set_owner(i, n);
                if shared {
                    e.share_templates(board.clone());
                }
                e.adopt(&snap);
                e
            })
            .collect();
        Workers {
            snap,
            loads: (0..32).map(|_| DestLoad::default()).collect(),
            engines,
        }
    }

    /// A SYN from `client`:`sport` to the persistent service (192.168.1.103, all ports, rr,
    /// -p 360), on the worker that owns it: the server it went to.
    fn connect(&mut self, now: u32, client: [u8; 4], sport: u16) -> [u8; 4] {
        let syn = tcp4(
            CLIENT_MAC, PORT0_MAC, client, VIP, 64, sport, 80, true, false, b"",
        );
        let owner = owner_of(IpAddr::from(client), sport, self.engines.len());
        let mut f = rvs_core::engine::VecFrame::new(&syn);
        let v = self.engines[owner].process(&self.snap, &self.loads, now, 0, &mut f);
        assert_eq!(v, Verdict::Forward { port: 1 }, "{client:?}:{sport}");
        let out = rvs_core::engine::Frame::bytes(&f);
        [out[30], out[31], out[32], out[33]]
    }

    fn adopt(&mut self, snap: Snapshot) {
        self.snap = snap;
        for e in &mut self.engines {
            e.adopt(&self.snap);
        }
    }

    fn templates(&self) -> usize {
        self.engines
            .iter()
            .map(|e| e.table.iter().filter(|(_, c)| c.is_template()).count())
            .sum()
    }
}

/// Service 5 with three NAT servers: 10.0.0.3 (id 6), 10.0.0.2 (id 5), 10.0.0.4 (id 22).
fn three_servers(without_first: bool) -> Snapshot {
    let mut snap = snapshot_with(|services| {
        let s = &mut services[5];
        s.servers.push(rs(22, [10, 0, 0, 4], 0, ForwardMethod::Nat));
        if without_first {
            s.servers.remove(0);
        }
    });
    snap.neighbours
        .insert(IpAddr::from([10, 0, 0, 4]), [2, 0xaa, 0, 0, 0, 4]);
    snap
}

fn client(i: u32) -> [u8; 4] {
    Ipv4Addr::from(0xc633_6400 + i).octets() // 198.51.100.0 + i
}

/// Clients opening connections from many ports, interleaved so that each worker's rr
/// cursor moves on its own: every client's connections, on whichever worker, reach one
/// server. Without the shared board the same traffic splits clients (what the test guards).
#[test]
fn a_client_keeps_its_server_on_every_worker() {
    for shared in [true, false] {
        let mut w = Workers::new(4, three_servers(false), shared);
        let mut servers_of = vec![std::collections::BTreeSet::new(); 12];
        for round in 0..8u16 {
            for (c, seen) in servers_of.iter_mut().enumerate() {
                let sport = 20_000 + round * 97 + c as u16 * 7;
                seen.insert(w.connect(1 + u32::from(round), client(c as u32), sport));
            }
        }
        let split = servers_of.iter().filter(|s| s.len() > 1).count();
        if shared {
            assert_eq!(split, 0, "{servers_of:?}");
            // Each client's template counts once on its server, however many workers
            // hold a copy.
            let counted: u32 = [5, 6, 22].iter().map(|&d| w.loads[d].persistent()).sum();
            assert_eq!(counted, 12);
            assert!(w.templates() > 12, "copies on the other workers");
        } else {
            assert!(
                split > 0,
                "per-worker templates split clients: {servers_of:?}"
            );
        }
    }
}

/// A client's server deleted: each worker's template is rebound where its next connection
/// arrives, and they all rebind to the same new server (the first to choose offers it).
#[test]
fn a_deleted_server_is_replaced_by_one_choice_for_all_workers() {
    let mut w = Workers::new(4, three_servers(false), true);
    let first: Vec<[u8; 4]> = (0..16u16)
        .map(|p| w.connect(1, client(1), 30_000 + p))
        .collect();
    assert!(first.iter().all(|&d| d == [10, 0, 0, 3]), "{first:?}");
    // Another client moves some cursors on.
    w.connect(2, client(2), 40_000);
    w.adopt(three_servers(true));
    let after: Vec<[u8; 4]> = (0..16u16)
        .map(|p| w.connect(3, client(1), 31_000 + p))
        .collect();
    assert_ne!(after[0], [10, 0, 0, 3]);
    assert!(after.iter().all(|&d| d == after[0]), "{after:?}");
}

/// A template re-armed because it still controls a connection keeps the other workers'
/// new connections on its server after the persistence timeout, as IPVS's one template.
#[test]
fn a_rearmed_template_still_holds_for_the_other_workers() {
    let mut w = Workers::new(2, three_servers(false), true);
    for e in &mut w.engines {
        e.timeouts.tcp[3] = 1000; // SYN_RECV outlives the 360 s template
    }
    let port_on = |worker: usize, from: u16| {
        (from..)
            .find(|&p| owner_of(IpAddr::from(client(1)), p, 2) == worker)
            .unwrap()
    };
    let held = w.connect(1, client(1), port_on(0, 1000));
    // Worker 1's cursor moves past that server with other clients.
    for c in 10..14 {
        w.connect(2, client(c), port_on(1, 2000));
    }
    for e in &mut w.engines {
        e.expire(362, 256, &w.loads);
    }
    let later = w.connect(500, client(1), port_on(1, 3000));
    assert_eq!(later, held);
}

/// IPVS's one template lives until the persistence timeout after the client's last
/// connection on any worker: the worker whose template counts (PersistConn) keeps it while
/// another worker's newer connection keeps the board's entry, then both go.
#[test]
fn the_counted_template_lives_as_long_as_another_worker_s_copy() {
    let mut w = Workers::new(2, three_servers(false), true);
    let port_on = |worker: usize, from: u16| {
        (from..)
            .find(|&p| owner_of(IpAddr::from(client(1)), p, 2) == worker)
            .unwrap()
    };
    let server = w.connect(1, client(1), port_on(0, 1000));
    assert_eq!(w.connect(200, client(1), port_on(1, 2000)), server);
    let id = w.snap.services[5]
        .servers
        .iter()
        .find(|r| r.addr == IpAddr::from(server))
        .unwrap()
        .id;
    assert_eq!((w.templates(), w.loads[id].persistent()), (2, 1));
    // The workers' timers every ten seconds from 200 on, as they run.
    let mut clock = 200;
    let mut expire_all = |w: &mut Workers, until: u32| {
        while clock < until {
            clock += 10;
            for e in &mut w.engines {
                e.expire(clock, 256, &w.loads);
            }
        }
    };
    // Worker 0's own template is past its 360 s, its connection gone; worker 1's copy
    // (from second 200) lives: the count stays.
    expire_all(&mut w, 400);
    assert_eq!((w.templates(), w.loads[id].persistent()), (2, 1));
    expire_all(&mut w, 600);
    assert_eq!((w.templates(), w.loads[id].persistent()), (0, 0));
}

/// A backup's workers each take the master's template (so that any of them can follow it
/// after a takeover); its server counts it once. A template the master rebinds (its server
/// deleted) is rebound in place: the connections it controls point at its slot.
#[test]
fn synced_templates_count_once_and_rebind_in_place() {
    use rvs_core::conn::addr16;
    use rvs_core::sync::SyncConn;
    let mut w = Workers::new(3, three_servers(false), true);
    let template = |server: [u8; 4]| SyncConn {
        proto: 6,
        v6: false,
        flags: 0x1000, // IP_VS_CONN_F_TEMPLATE (masquerading is 0)
        state: 0,
        cport: 0,
        vport: 0,
        dport: 0,
        fwmark: 0,
        timeout: 360,
        caddr: addr16(IpAddr::from(client(1))),
        vaddr: addr16(IpAddr::from(VIP)),
        daddr: addr16(IpAddr::from(server)),
        local: None,
        out_seq: None,
    };
    for e in &mut w.engines {
        assert!(e.install_synced(&w.snap, &w.loads, 5, &template([10, 0, 0, 3])));
    }
    assert_eq!(w.templates(), 3);
    assert_eq!(w.loads[6].persistent(), 1, "counted once, not per worker");
    // A connection of the client follows the synced template on whichever worker.
    assert_eq!(w.connect(6, client(1), 5000), [10, 0, 0, 3]);
    // The master rebinds the template to 10.0.0.4.
    for e in &mut w.engines {
        assert!(e.install_synced(&w.snap, &w.loads, 7, &template([10, 0, 0, 4])));
    }
    assert_eq!(w.templates(), 3, "rebound in place, not replaced");
    assert_eq!((w.loads[6].persistent(), w.loads[22].persistent()), (0, 1));
    assert_eq!(w.connect(8, client(1), 5001), [10, 0, 0, 4]);
}

/// The three servers' service without persistence under `sched`, each server with room
/// enough (weight 100) that lblc's overload rule never moves a destination by itself.
fn locality_snapshot(sched: rvs_core::sched::SchedKind) -> Snapshot {
    let mut s = three_servers(false);
    s.services[5].persistence = None;
    s.services[5].sched = sched;
    for r in &mut s.services[5].servers {
        r.weight = 100;
    }
    s
}

/// The servers 40 connections of 7 clients reached, over every worker (`at` the clock,
/// source ports from `base`).
fn servers_reached(w: &mut Workers, at: u32, base: u16) -> std::collections::BTreeSet<[u8; 4]> {
    (0..40u16)
        .map(|p| w.connect(at, client(u32::from(p % 7)), base + p * 13))
        .collect()
}

/// Only `busy` (by address) has connections: `active` ones.
fn only_busy(w: &Workers, busy: [u8; 4], active: u32) {
    for r in &w.snap.services[5].servers {
        let n = if r.addr == IpAddr::from(busy) {
            active
        } else {
            0
        };
        w.loads[r.id].set_counts(n, 0);
    }
}

/// lblc's cache (destination address -> server) is the kernel's one table: with the board
/// every worker sends the service's destination to one server; with per-worker caches each
/// worker's first miss is scheduled by wlc on counts the others already moved, so the
/// destination ends up on several servers (what the test guards).
#[test]
fn lblc_keeps_a_destination_on_one_server_across_workers() {
    for shared in [true, false] {
        let snap = locality_snapshot(rvs_core::sched::SchedKind::Lblc);
        let mut w = Workers::new(4, snap, shared);
        let servers = servers_reached(&mut w, 1, 30_000);
        if shared {
            assert_eq!(servers.len(), 1, "{servers:?}");
        } else {
            assert!(servers.len() > 1, "per-worker caches split it: {servers:?}");
        }
    }
}

/// The snapshot's lblc_expiration (IPVS's sysctl) reaches the workers' scheduler: an
/// entry unused for 120 s ends, on the shared board and in a lone worker's own cache,
/// where the default (24 h) keeps it.
#[test]
fn lblc_expiration_from_the_snapshot_ends_an_unused_entry() {
    for (shared, workers) in [(true, 4), (false, 1)] {
        for (expiration, kept) in [(120, false), (86_400, true)] {
            let mut snap = locality_snapshot(rvs_core::sched::SchedKind::Lblc);
            snap.cache_expiration.lblc = expiration;
            let mut w = Workers::new(workers, snap, shared);
            let first = w.connect(1, client(1), 30_000);
            only_busy(&w, first, 60);
            assert_eq!(w.connect(100, client(1), 30_013), first, "used at 100 s");
            let later = w.connect(221, client(1), 30_026);
            assert_eq!(
                later == first,
                kept,
                "{expiration} s, shared {shared}: {first:?} then {later:?}"
            );
        }
    }
}

/// A scheduler bound anew (changed and back, `ipvsadm -E -s rr` then `-s lblc`) starts
/// lblc with an empty table, as the kernel's: the workers' shared entries of the earlier
/// binding no longer send the destination where they did; within one binding they do.
#[test]
fn lblc_forgets_its_shared_entries_when_bound_anew() {
    let snap = locality_snapshot(rvs_core::sched::SchedKind::Lblc);
    let mut w = Workers::new(4, snap.clone(), true);
    let first = w.connect(1, client(1), 30_000);
    // The chosen server busy (not overloaded in lblc's sense): the entry holds.
    only_busy(&w, first, 60);
    assert_eq!(w.connect(2, client(1), 30_013), first);
    // Bound anew: wlc's choice, another server.
    let mut rebound = snap;
    rebound.services[5].sched_epoch += 1;
    w.adopt(rebound);
    let second = w.connect(3, client(1), 30_026);
    assert_ne!(second, first);
    assert_eq!(w.connect(4, client(1), 30_039), second);
}

/// lblcr's sets (destination address -> servers) are the kernel's one table: with the
/// board every worker sends the service's destination to its set's server; with
/// per-worker sets each worker's first miss is scheduled by wlc on counts the others
/// already moved, so the destination ends up on several servers (what the test guards).
/// An overloaded member makes the set grow on one worker and the others use the new one.
#[test]
fn lblcr_keeps_a_destination_s_set_across_workers() {
    for shared in [true, false] {
        let snap = locality_snapshot(rvs_core::sched::SchedKind::Lblcr);
        let mut w = Workers::new(4, snap, shared);
        let servers = servers_reached(&mut w, 1, 30_000);
        if !shared {
            assert!(servers.len() > 1, "per-worker sets split it: {servers:?}");
            continue;
        }
        assert_eq!(servers.len(), 1, "{servers:?}");
        let first = *servers.iter().next().unwrap();
        // The member overloaded (active over its weight while others are idle): the next
        // connection, on whichever worker, adds another server to the set, and every
        // worker then uses it.
        only_busy(&w, first, 150);
        let second = w.connect(2, client(1), 40_000);
        assert_ne!(second, first);
        let after = servers_reached(&mut w, 3, 41_000);
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(after.into_iter().next(), Some(second));
    }
}
