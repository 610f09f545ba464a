//! A real server deleted or quiesced under live connections, as IPVS treats them: a deleted
//! server's connections have their packets dropped, or with `expire_nodest_conn` end at
//! their next packet, which is scheduled anew; a quiesced server keeps its persistent
//! clients unless `expire_quiescent_template`.

#![allow(clippy::too_many_arguments)]

use rvs_core::engine::{DropReason, ForwardMethod, Snapshot, Verdict};
use rvs_testkit::*;

const VIP: [u8; 4] = [192, 168, 1, 103];
const DNS_VIP: [u8; 4] = [192, 168, 1, 102];

/// Service 5 (192.168.1.103, all ports, rr over 10.0.0.3 then 10.0.0.2, NAT) with its
/// persistence or without, its first server deleted or at weight 0; service 2
/// (192.168.1.102:53 UDP) over the same two servers by NAT.
fn snapshot_of(persistent: bool, first: Option<u32>, sysctls: (bool, bool)) -> Snapshot {
    let mut snap = snapshot_with(|services| {
        let s = &mut services[5];
        if !persistent {
            s.persistence = None;
        }
        match first {
            None => {
                s.servers.remove(0);
            }
            Some(w) => s.servers[0].weight = w,
        }
        let dns = &mut services[2];
        dns.servers = vec![
            rs(20, [10, 0, 0, 3], 53, ForwardMethod::Nat),
            rs(21, [10, 0, 0, 2], 53, ForwardMethod::Nat),
        ];
        if first.is_none() {
            dns.servers.remove(0);
        }
    });
    (snap.expire_nodest_conn, snap.expire_quiescent_template) = sysctls;
    // The director's count of deletions, which the workers' sweeps follow.
    snap.servers_removed = u64::from(first.is_none());
    snap
}

fn tcp(sport: u16, syn: bool) -> Vec<u8> {
    let payload: &[u8] = if syn { b"" } else { b"data" };
    tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, VIP, 64, sport, 80, syn, !syn, payload,
    )
}

fn dns(sport: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, DNS_VIP, 64)
        .udp(sport, 53)
        .write(&mut frame, b"query")
        .unwrap();
    frame
}

fn dst(out: &[u8]) -> [u8; 4] {
    [out[30], out[31], out[32], out[33]]
}

/// A frame as a worker's burst takes it: parsed and hashed first (the established path).
fn staged(lab: &mut Lab, frame: &[u8]) -> Verdict {
    let parsed = lab.engine.parse(&lab.snap, frame);
    let mut f = rvs_core::engine::VecFrame::new(frame);
    lab.engine
        .process_parsed(&lab.snap, &lab.loads, 1, 0, &parsed, &mut f)
}

fn adopt(lab: &mut Lab, snap: Snapshot) {
    lab.snap = snap;
    lab.engine.adopt(&lab.snap);
}

#[test]
fn a_deleted_server_s_connection_is_dropped_then_with_expire_nodest_conn_rescheduled() {
    let mut lab = Lab::with(snapshot_of(false, Some(1), (false, false)), lab_config());
    let (v, out) = lab.run(0, &tcp(1000, true));
    assert_eq!(
        (v, dst(&out)),
        (Verdict::Forward { port: 1 }, [10, 0, 0, 3])
    );
    // Established, its next hop cached: the fast lane's packets.
    for _ in 0..3 {
        assert_eq!(
            lab.run(0, &tcp(1000, false)).0,
            Verdict::Forward { port: 1 }
        );
    }
    adopt(&mut lab, snapshot_of(false, None, (false, false)));
    let removed = Verdict::Drop(DropReason::ServerRemoved);
    assert_eq!(lab.run(0, &tcp(1000, false)).0, removed);
    assert_eq!(
        staged(&mut lab, &tcp(1000, false)),
        removed,
        "every packet, the worker's way too"
    );
    assert_eq!(lab.engine.table.len(), 1, "the entry waits for its timeout");
    assert_eq!(
        lab.engine.counters().drops[DropReason::ServerRemoved as usize],
        2
    );
    // Added back (its id again, as IPVS takes a destination back from its trash): the
    // connection goes on where it was.
    adopt(&mut lab, snapshot_of(false, Some(1), (false, false)));
    let (v, out) = lab.run(0, &tcp(1000, false));
    assert_eq!(
        (v, dst(&out)),
        (Verdict::Forward { port: 1 }, [10, 0, 0, 3])
    );
    adopt(&mut lab, snapshot_of(false, None, (false, false)));
    assert_eq!(lab.run(0, &tcp(1000, false)).0, removed);
    // With expire_nodest_conn the next packet ends the entry; a segment without SYN opens
    // nothing (IPVS hands it to the local stack, which resets it).
    adopt(&mut lab, snapshot_of(false, None, (true, false)));
    assert_eq!(
        lab.run(0, &tcp(1000, false)).0,
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(lab.engine.table.len(), 0);
    let (v, out) = lab.run(0, &tcp(1000, true));
    assert_eq!(
        (v, dst(&out)),
        (Verdict::Forward { port: 1 }, [10, 0, 0, 2])
    );
}

#[test]
fn a_datagram_of_a_deleted_server_is_scheduled_anew_with_expire_nodest_conn() {
    for expire in [false, true] {
        let mut lab = Lab::with(snapshot_of(false, Some(1), (expire, false)), lab_config());
        let (v, out) = lab.run(0, &dns(5353));
        assert_eq!(
            (v, dst(&out)),
            (Verdict::Forward { port: 1 }, [10, 0, 0, 3])
        );
        assert_eq!(lab.run(0, &dns(5353)).0, Verdict::Forward { port: 1 });
        adopt(&mut lab, snapshot_of(false, None, (expire, false)));
        let (v, out) = lab.run(0, &dns(5353));
        if expire {
            // The same client port reaches a live server at once, not after 300 s.
            assert_eq!(
                (v, dst(&out)),
                (Verdict::Forward { port: 1 }, [10, 0, 0, 2])
            );
            assert_eq!(lab.engine.table.len(), 1);
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::ServerRemoved));
        }
        // A server that stays: its connections are untouched by the check.
        let (v, out) = lab.run(0, &dns(5400));
        assert_eq!(
            (v, dst(&out)),
            (Verdict::Forward { port: 1 }, [10, 0, 0, 2])
        );
    }
}

#[test]
fn a_quiesced_server_keeps_its_persistent_clients_unless_expire_quiescent_template() {
    for expire in [false, true] {
        let mut lab = Lab::with(snapshot_of(true, Some(1), (false, expire)), lab_config());
        let (_, out) = lab.run(0, &tcp(1000, true));
        assert_eq!(dst(&out), [10, 0, 0, 3]);
        adopt(&mut lab, snapshot_of(true, Some(0), (false, expire)));
        let (v, out) = lab.run(0, &tcp(1001, true));
        assert_eq!(v, Verdict::Forward { port: 1 });
        if expire {
            assert_eq!(dst(&out), [10, 0, 0, 2], "the template no longer followed");
            assert_eq!(
                (lab.loads[6].persistent(), lab.loads[5].persistent()),
                (0, 1)
            );
        } else {
            assert_eq!(
                dst(&out),
                [10, 0, 0, 3],
                "weight 0 keeps persistent clients"
            );
            assert_eq!(
                (lab.loads[6].persistent(), lab.loads[5].persistent()),
                (1, 0)
            );
        }
        // The first connection goes on to its server either way.
        assert_eq!(
            lab.run(0, &tcp(1000, false)).0,
            Verdict::Forward { port: 1 }
        );
    }
}

fn lab_config() -> rvs_core::engine::EngineConfig {
    rvs_core::engine::EngineConfig {
        conn_capacity: 1024,
        ..Default::default()
    }
}

/// With expire_nodest_conn a deletion also ends the server's connections in the background
/// (kernels since 5.9), a bounded number of table slots a call: the entries go and the
/// server's counts with them, the other server's stay; without it, nothing is swept.
#[test]
fn a_deleted_server_s_connections_are_swept_with_expire_nodest_conn() {
    for expire in [false, true] {
        let mut lab = Lab::with(snapshot_of(false, Some(1), (expire, false)), lab_config());
        let mut to = std::collections::HashMap::new();
        for port in 2000..2040u16 {
            let (_, out) = lab.run(0, &tcp(port, true));
            *to.entry(dst(&out)).or_insert(0) += 1;
        }
        assert_eq!(to.len(), 2, "{to:?}");
        let on_deleted = to[&[10, 0, 0, 3]];
        assert_eq!(lab.loads[6].inactive() + lab.loads[6].active(), on_deleted);
        adopt(&mut lab, snapshot_of(false, None, (expire, false)));
        let mut calls = 0;
        while lab.engine.sweep_removed(&lab.snap, &lab.loads, 64) {
            calls += 1;
            assert!(calls < 100, "the sweep ends");
        }
        let left = lab.engine.table.len() as u32;
        if expire {
            assert!(calls >= 1024 / 64 - 1, "{calls} calls of 64 slots");
            assert_eq!(left, 40 - on_deleted);
            assert_eq!(lab.loads[6].inactive() + lab.loads[6].active(), 0);
            assert!(lab
                .engine
                .table
                .iter()
                .all(|(_, c)| c.daddr[12..] == [10, 0, 0, 2]));
        } else {
            assert_eq!(left, 40);
        }
    }
}

/// The sweep takes a deleted server's templates too, as the kernel's flush deletes a
/// connection's template once it controls no other: a persistent client's template goes
/// with its connections; another client's, on the live server, stays with its own.
#[test]
fn the_sweep_takes_a_deleted_server_s_templates_with_its_connections() {
    let mut lab = Lab::with(snapshot_of(true, Some(1), (true, false)), lab_config());
    let other: [u8; 4] = [198, 51, 100, 9];
    for (client, ports) in [(CLIENT, 2000..2020u16), (other, 3000..3010)] {
        for port in ports {
            let syn = tcp4(
                CLIENT_MAC, PORT0_MAC, client, VIP, 64, port, 80, true, false, b"",
            );
            assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
        }
    }
    let templates = |lab: &Lab| {
        let mut t: Vec<[u8; 4]> = lab
            .engine
            .table
            .iter()
            .filter(|(_, c)| c.is_template())
            .map(|(_, c)| [c.daddr[12], c.daddr[13], c.daddr[14], c.daddr[15]])
            .collect();
        t.sort();
        t
    };
    assert_eq!(templates(&lab), vec![[10, 0, 0, 2], [10, 0, 0, 3]]);
    assert_eq!(lab.loads[6].persistent(), 1);
    adopt(&mut lab, snapshot_of(true, None, (true, false)));
    let mut calls = 0;
    while lab.engine.sweep_removed(&lab.snap, &lab.loads, 64) {
        calls += 1;
        assert!(calls < 100, "the sweep ends");
    }
    assert_eq!(templates(&lab), vec![[10, 0, 0, 2]]);
    assert_eq!(
        lab.engine.table.len(),
        11,
        "the other client's template and connections"
    );
    assert_eq!(lab.loads[6].persistent(), 0);
    assert_eq!(lab.loads[5].persistent(), 1);
}
