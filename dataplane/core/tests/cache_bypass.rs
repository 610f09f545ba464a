//! IPVS's cache_bypass (golden packets): a transparent cache cluster (a firewall mark on
//! TCP port 80 of an outside prefix, balanced to its caches by direct routing) whose caches
//! are all unavailable sends each new connection on to the origin it was addressed to, and
//! keeps doing so for that connection after a cache comes back; off, or for a flow that is
//! no such service's, the client gets "port unreachable" as before.

use rvs_core::engine::{DropReason, EngineConfig, ForwardMethod, MarkRule, Service, Verdict};
use rvs_core::sched::SchedKind;
use rvs_testkit::*;

const ORIGIN: [u8; 4] = [203, 0, 113, 9];
const CACHE: [u8; 4] = [10, 0, 0, 3];
const MARK: u32 = 80;
const CACHE_ID: usize = 25;

/// The fixture snapshot with the cache cluster: its cache's weight `weight`.
fn cache_cluster(weight: u32, cache_bypass: bool) -> rvs_core::engine::Snapshot {
    let origins = (ip([203, 0, 113, 0]), 24);
    cache_cluster_of(ip(CACHE), origins, weight, cache_bypass)
}

/// A cache cluster (firewall mark [`MARK`] on TCP port 80 of `origins`) of one cache at
/// `cache` by direct routing, of weight `weight`, added to the fixture snapshot.
fn cache_cluster_of(
    cache: std::net::IpAddr,
    origins: (std::net::IpAddr, u8),
    weight: u32,
    cache_bypass: bool,
) -> rvs_core::engine::Snapshot {
    let mut index = 0;
    let mut snap = snapshot_with(|services| {
        index = services.len();
        let mut cache = rs(CACHE_ID, cache, 0, ForwardMethod::Dr);
        cache.weight = weight;
        let any = if origins.0.is_ipv4() {
            ip([0, 0, 0, 0])
        } else {
            ip([0u8; 16])
        };
        services.push(Service::new(
            index as u16,
            6,
            any,
            0,
            Some(MARK),
            SchedKind::Rr,
            None,
            vec![cache],
        ));
    });
    snap.set_marks(vec![(
        MarkRule {
            mark: MARK,
            proto: Some(6),
            dst: origins,
            ports: (80, 80),
            src: None,
        },
        index,
    )]);
    snap.ip_forward = true;
    snap.cache_bypass = cache_bypass;
    snap
}

fn cache_lab(weight: u32, cache_bypass: bool) -> Lab {
    lab_of(cache_cluster(weight, cache_bypass))
}

fn lab_of(snap: rvs_core::engine::Snapshot) -> Lab {
    Lab::with(
        snap,
        EngineConfig {
            conn_capacity: 1024,
            ..EngineConfig::default()
        },
    )
}

/// A client's segment to `dst`:80 from `sport` as it reaches the appliance, and as it
/// leaves towards the default gateway (unchanged but for the MACs, as IPVS's bypass).
fn to_origin(dst: [u8; 4], sport: u16, syn: bool) -> (Vec<u8>, Vec<u8>) {
    let seg = |macs: ([u8; 6], [u8; 6]), ttl| {
        tcp4(macs.0, macs.1, CLIENT, dst, ttl, sport, 80, syn, !syn, b"")
    };
    (seg((GW_MAC, PORT0_MAC), 64), seg((PORT0_MAC, GW_MAC), 64))
}

fn is_port_unreachable(v: &Verdict, out: &[u8]) -> bool {
    // IPv4 protocol ICMP, type 3 code 3, to the client.
    *v == Verdict::Forward { port: 0 } && out[23] == 1 && out[34..36] == [3, 3]
}

#[test]
fn with_no_cache_available_a_new_connection_goes_on_to_its_origin() {
    let mut lab = cache_lab(0, true);
    let (syn, routed) = to_origin(ORIGIN, 40000, true);
    assert_eq!(lab.run(0, &syn), (Verdict::Forward { port: 0 }, routed));
    let c = lab.engine.counters();
    assert_eq!((c.bypass_conns, c.routed, c.new_conns), (1, 1, 0));
    // Its entry, listed as IPVS lists one: no destination (0.0.0.0:0), SYN_RECV.
    let (_, entry) = lab.engine.table.iter().next().expect("an entry");
    assert_eq!((&entry.caddr[12..], entry.cport), (&CLIENT[..], 40000));
    assert_eq!((&entry.vaddr[12..], entry.vport), (&ORIGIN[..], 80));
    let nowhere = rvs_core::conn::addr16(ip([0, 0, 0, 0]));
    assert_eq!((entry.daddr, entry.dport), (nowhere, 0));
    assert_eq!(rvs_core::conn::state_name(6, entry.state), "SYN_RECV");
    // The cache comes back: the connection keeps going to the origin...
    lab.snap = cache_cluster(1, true);
    lab.engine.adopt(&lab.snap);
    let (ack, routed) = to_origin(ORIGIN, 40000, false);
    assert_eq!(lab.run(0, &ack), (Verdict::Forward { port: 0 }, routed));
    let (_, entry) = lab.engine.table.iter().next().unwrap();
    assert_eq!(rvs_core::conn::state_name(6, entry.state), "ESTABLISHED");
    // ...and a new one goes to the cache, by direct routing (MACs only).
    let (syn, _) = to_origin(ORIGIN, 40001, true);
    let (v, out) = lab.run(0, &syn);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!((out[..6] == RS3_MAC, out[30..34] == ORIGIN), (true, true));
    assert_eq!(lab.engine.counters().bypass_conns, 1);
    // The origin's answer is routed traffic (the appliance is the clients' router).
    let answer = tcp4(
        GW_MAC, PORT0_MAC, ORIGIN, CLIENT, 60, 80, 40000, true, true, b"",
    );
    assert_eq!(lab.run(0, &answer).0, Verdict::Forward { port: 0 });
}

#[test]
fn without_cache_bypass_or_outside_a_marked_origin_the_client_is_told_no() {
    // Off (the kernel's default).
    let mut lab = cache_lab(0, false);
    let (syn, _) = to_origin(ORIGIN, 40000, true);
    let (v, out) = lab.run(0, &syn);
    assert!(is_port_unreachable(&v, &out), "{v:?}");
    assert_eq!(lab.engine.counters().bypass_conns, 0);
    assert_eq!(lab.engine.table.len(), 0);
    // On, but a service of an address and port (not a firewall mark's), its server
    // quiesced: the client is told no (its VIP is the appliance's own, never sent on).
    let mut lab = cache_lab(0, true);
    let quiesced = tcp4(
        GW_MAC,
        PORT0_MAC,
        CLIENT,
        [192, 168, 1, 104],
        64,
        40000,
        80,
        true,
        false,
        b"",
    );
    let (v, out) = lab.run(0, &quiesced);
    assert!(is_port_unreachable(&v, &out), "{v:?}");
    assert_eq!(lab.engine.counters().bypass_conns, 0);
    // Only a SYN opens one: a stray segment is dropped, no entry made.
    let (ack, _) = to_origin(ORIGIN, 40002, false);
    assert_eq!(lab.run(0, &ack).0, Verdict::Drop(DropReason::NoConnection));
    assert_eq!(lab.engine.table.len(), 0);
}

/// The mark also covers the appliance's own address: a flow to it is never sent on.
#[test]
fn a_flow_to_the_appliance_itself_is_never_bypassed() {
    let mut snap = cache_cluster(0, true);
    snap.set_marks(vec![(
        MarkRule {
            mark: MARK,
            proto: Some(6),
            dst: (ip([192, 168, 1, 0]), 24),
            ports: (80, 80),
            src: None,
        },
        snap.services.len() - 1,
    )]);
    let mut lab = lab_of(snap);
    let (syn, _) = to_origin([192, 168, 1, 1], 40000, true);
    let (v, out) = lab.run(0, &syn);
    assert!(is_port_unreachable(&v, &out), "{v:?}");
    assert_eq!(lab.engine.counters().bypass_conns, 0);
}

/// A master's bypass entries reach its backup (IPVS's BYPASS forwarding flag), whose
/// packets of the connection then go to the origin though its cache is back.
#[test]
fn a_bypassed_connection_survives_a_failover() {
    let mut master = cache_lab(0, true);
    let ch = master.sync_master();
    let (syn, _) = to_origin(ORIGIN, 40000, true);
    master.run(0, &syn);
    let (ack, routed) = to_origin(ORIGIN, 40000, false);
    assert_eq!(master.run(0, &ack), (Verdict::Forward { port: 0 }, routed));
    let notes = through_the_wire(&notes_of(&ch));
    assert_eq!(notes.len(), 1, "sent once established");
    assert_eq!(notes[0].flags & 0x7, rvs_core::sync::ipvs_flags::BYPASS);
    let mut backup = cache_lab(1, true);
    backup.install_all(notes);
    let (ack, routed) = to_origin(ORIGIN, 40000, false);
    assert_eq!(backup.run(0, &ack), (Verdict::Forward { port: 0 }, routed));
    assert_eq!(backup.engine.counters().routed, 1);
    // Another client port of the same client is the cache's.
    let (syn, _) = to_origin(ORIGIN, 40001, true);
    assert_eq!(backup.run(0, &syn).0, Verdict::Forward { port: 1 });
}

/// Over IPv6 alike: the entry's destination is `::`.
#[test]
fn an_ipv6_flow_goes_on_to_its_origin_too() {
    let origin6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let prefix = ip([0x20, 1, 0xd, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let snap = cache_cluster_of(ip(RS6), (prefix, 48), 0, true);
    let mut lab = lab_of(snap);
    let syn = tcp6(GW6_MAC, PORT0_MAC, CLIENT6, origin6, 64, 40000, 80, b"");
    let routed = tcp6(PORT0_MAC, GW6_MAC, CLIENT6, origin6, 64, 40000, 80, b"");
    assert_eq!(lab.run(0, &syn), (Verdict::Forward { port: 0 }, routed));
    let (_, entry) = lab.engine.table.iter().next().expect("an entry");
    assert_eq!((entry.daddr, entry.dport), ([0; 16], 0));
    assert_eq!(lab.engine.counters().bypass_conns, 1);
}

/// An ICMP error about the origin's answer (a router on the client's side says it needs
/// fragmenting) goes to the origin as the connection's packets do: unchanged but for the
/// MACs, by the origin's route, not towards a server.
#[test]
fn an_icmp_error_about_a_bypassed_connection_goes_to_its_origin() {
    use etherparse::{icmpv4::DestUnreachableHeader, Icmpv4Type};
    let mut lab = cache_lab(0, true);
    // The origin behind a router of its own on the inside port.
    lab.snap.routes.insert(
        0,
        rvs_core::engine::Route {
            prefix: ip([203, 0, 113, 0]),
            len: 24,
            gateway: Some(ip([10, 0, 0, 9])),
            port: 1,
            table: rvs_core::engine::MAIN_TABLE,
        },
    );
    const ROUTER_MAC: [u8; 6] = [2, 0xaa, 0, 0, 0, 9];
    lab.snap.neighbours.insert(ip([10, 0, 0, 9]), ROUTER_MAC);
    let (syn, _) = to_origin(ORIGIN, 40000, true);
    assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
    let answer = tcp4(
        PORT0_MAC, GW_MAC, ORIGIN, CLIENT, 60, 80, 40000, true, true, b"",
    );
    let too_big = |macs| {
        icmp4(
            macs,
            [198, 51, 100, 254],
            ORIGIN,
            64,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: 1400,
            }),
            &answer[14..42],
        )
    };
    assert_eq!(
        lab.run(0, &too_big((GW_MAC, PORT0_MAC))),
        (
            Verdict::Forward { port: 1 },
            too_big((PORT1_MAC, ROUTER_MAC))
        )
    );
}
