//! IPVS's drop_packet and drop_entry defences on a worker (golden packets): one in N
//! opening packets dropped; handshakes, and entries idle a minute with few client
//! packets, dropped from the table a slice a second, the rest kept.

use rvs_core::engine::{DropReason, Verdict};
use rvs_testkit::*;

const VIP: [u8; 4] = [192, 168, 1, 100];

fn lab(capacity: usize, edit: impl FnOnce(&mut rvs_core::engine::Snapshot)) -> Lab {
    let mut snap = snapshot();
    edit(&mut snap);
    Lab::with_capacity(snap, capacity)
}

/// A client's segment to VIP:80 from `client`:`cport` (SYN or ACK).
fn from_client(client: [u8; 4], cport: u16, syn: bool) -> Vec<u8> {
    tcp4(
        GW_MAC, PORT0_MAC, client, VIP, 64, cport, 80, syn, !syn, b"",
    )
}

fn entry_of(lab: &Lab, cport: u16) -> Option<rvs_core::conn::Conn> {
    lab.engine
        .table
        .iter()
        .find(|(_, c)| c.cport == cport && !c.is_template())
        .map(|(_, c)| *c)
}

#[test]
fn drop_packet_drops_one_opening_packet_in_its_rate() {
    let mut lab = lab(1024, |s| s.drop_rate = 3);
    let verdicts: Vec<Verdict> = (0..9)
        .map(|i| {
            lab.run(0, &from_client([198, 51, 100, 10 + i], 40000, true))
                .0
        })
        .collect();
    let dropped = Verdict::Drop(DropReason::Defence);
    for (i, v) in verdicts.iter().enumerate() {
        let want = if i % 3 == 2 {
            dropped
        } else {
            Verdict::Forward { port: 1 }
        };
        assert_eq!(*v, want, "SYN {i}");
    }
    assert_eq!(lab.engine.counters().drops[DropReason::Defence as usize], 3);
    assert_eq!(lab.engine.table.len(), 6, "no entry for a dropped SYN");
    // Packets of existing connections are never counted or dropped.
    for _ in 0..5 {
        assert_eq!(
            lab.run(0, &from_client([198, 51, 100, 10], 40000, false)).0,
            Verdict::Forward { port: 1 }
        );
    }
    // A new rate starts its count again; 0 is off.
    lab.snap.drop_rate = 1;
    lab.engine.adopt(&lab.snap);
    assert_eq!(
        lab.run(0, &from_client([198, 51, 100, 30], 1, true)).0,
        dropped
    );
    lab.snap.drop_rate = 0;
    lab.engine.adopt(&lab.snap);
    for i in 0..20 {
        assert_eq!(
            lab.run(0, &from_client([198, 51, 100, 40 + i], 1, true)).0,
            Verdict::Forward { port: 1 }
        );
    }
}

/// In a 64-entry table (2 slots looked at a second): a handshake goes whenever it is
/// looked at; an established connection with 2 client packets only once idle a minute;
/// one with 12 never (IPVS counts up to 8); nothing with drop_entry off. The server's
/// counts follow.
#[test]
fn drop_entry_takes_handshakes_and_idle_connections_with_few_packets() {
    for on in [false, true] {
        let mut lab = lab(64, |s| s.drop_entry = on);
        let client = [198, 51, 100, 7];
        // 40001: a SYN only. 40002: SYN and ACK (established, 2 client packets).
        // 40003: 12 client packets.
        lab.run_at(1, 0, &from_client(client, 40001, true));
        lab.run_at(1, 0, &from_client(client, 40002, true));
        lab.run_at(1, 0, &from_client(client, 40002, false));
        lab.run_at(1, 0, &from_client(client, 40003, true));
        for _ in 0..11 {
            lab.run_at(1, 0, &from_client(client, 40003, false));
        }
        let packets = |lab: &Lab, p| entry_of(lab, p).map(|c| c.in_pkts);
        assert_eq!(packets(&lab, 40001), Some(1));
        assert_eq!(packets(&lab, 40002), Some(2));
        assert_eq!(packets(&lab, 40003), Some(rvs_core::engine::IN_PKTS_KEPT));
        let loads = |lab: &mut Lab| -> u32 {
            lab.engine.flush_loads(&lab.loads);
            lab.loads.iter().map(|l| l.active() + l.inactive()).sum()
        };
        assert_eq!(loads(&mut lab), 3);
        let mut dropped = 0;
        for now in 2..61 {
            dropped += lab.engine.drop_entries(&lab.snap, &lab.loads, now, 256);
        }
        assert!(entry_of(&lab, 40002).is_some(), "not idle a minute yet");
        assert!(entry_of(&lab, 40003).is_some());
        for now in 61..3000 {
            dropped += lab.engine.drop_entries(&lab.snap, &lab.loads, now, 256);
        }
        let left: Vec<u16> = [40001, 40002, 40003]
            .into_iter()
            .filter(|&p| entry_of(&lab, p).is_some())
            .collect();
        if on {
            assert_eq!(left, [40003], "the handshake and the idle one went");
            assert_eq!(dropped, 2);
            assert_eq!(loads(&mut lab), 1, "their server counts them no more");
            assert_eq!(lab.engine.counters().dropped_entries, 2);
        } else {
            assert_eq!(left, [40001, 40002, 40003]);
            assert_eq!(dropped, 0);
        }
    }
}

/// A backup counts a connection its master sent as 3 client packets (IPVS's
/// sync_threshold, as its backup sets it), whatever the master had: drop_entry takes it
/// once idle a minute, as the kernel's backup would.
#[test]
fn a_synced_connection_counts_as_the_sync_threshold() {
    let mut master = lab(1024, |_| {});
    let ch = master.sync_master();
    let client = [198, 51, 100, 9];
    master.run_at(1, 0, &from_client(client, 40005, true));
    for _ in 0..12 {
        master.run_at(1, 0, &from_client(client, 40005, false));
    }
    assert_eq!(
        entry_of(&master, 40005).map(|c| c.in_pkts),
        Some(rvs_core::engine::IN_PKTS_KEPT)
    );
    let notes = through_the_wire(&notes_of(&ch));
    assert!(!notes.is_empty());
    let mut backup = lab(64, |s| s.drop_entry = true);
    backup.install_all(notes);
    assert_eq!(entry_of(&backup, 40005).map(|c| c.in_pkts), Some(3));
    for now in 2..3000 {
        backup
            .engine
            .drop_entries(&backup.snap, &backup.loads, now, 256);
    }
    assert!(entry_of(&backup, 40005).is_none(), "dropped once idle");
}

/// A one-packet (`-o`) UDP service's persistence template controls no connection (none is
/// kept) and is never assured: IPVS takes such templates by their client packet rate
/// (`ip_vs_conn_ops_mode`), which is 0 for a master's own, so drop_entry keeps them (an
/// unassured template of another service goes; the unit tests show both rules).
#[test]
fn drop_entry_keeps_a_one_packet_services_templates() {
    use rvs_core::engine::{ForwardMethod, Service};
    use rvs_core::sched::SchedKind;
    let mut snap = snapshot_with(|services| {
        let mut ops = Service::new(
            11,
            17,
            ip([192, 168, 1, 107]),
            53,
            None,
            SchedKind::Rr,
            Some((300, 32)),
            vec![
                rs(27, [10, 0, 0, 3], 0, ForwardMethod::Dr),
                rs(28, [10, 0, 0, 2], 0, ForwardMethod::Dr),
            ],
        );
        ops.one_packet = true;
        services.push(ops);
    });
    snap.drop_entry = true;
    let mut lab = Lab::with_capacity(snap, 64);
    let mut q = Vec::new();
    etherparse::PacketBuilder::ethernet2(GW_MAC, PORT0_MAC)
        .ipv4([198, 51, 100, 11], [192, 168, 1, 107], 64)
        .udp(5353, 53)
        .write(&mut q, b"query")
        .unwrap();
    for _ in 0..3 {
        assert_eq!(lab.run_at(1, 0, &q).0, Verdict::Forward { port: 1 });
    }
    let templates = |lab: &Lab| {
        lab.engine
            .table
            .iter()
            .filter(|(_, c)| c.is_template())
            .count()
    };
    assert_eq!(lab.engine.table.len(), 1, "the template alone");
    assert_eq!(templates(&lab), 1);
    let mut dropped = 0;
    for now in 2..3000 {
        dropped += lab.engine.drop_entries(&lab.snap, &lab.loads, now, 256);
    }
    assert_eq!((dropped, templates(&lab)), (0, 1));
}
