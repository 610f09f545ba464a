//! A client reusing a finished connection's ports (IPVS's conn_reuse_mode): by default a
//! SYN on a TIME_WAIT or CLOSE connection is scheduled anew; with 0 it goes on with the old
//! connection to the same server; bit 2 also takes a FIN_WAIT connection of a director
//! that sees no replies (DR); with expire_nodest_conn a SYN on any connection to a server
//! of weight 0 is scheduled anew.

#![allow(clippy::too_many_arguments)]

use rvs_core::conn::TcpState;
use rvs_core::engine::{ForwardMethod, Snapshot, Verdict};
use rvs_testkit::*;

const NAT_VIP: [u8; 4] = [192, 168, 1, 103];
const DR_VIP: [u8; 4] = [192, 168, 1, 101];

/// Service 5 (NAT, rr over 10.0.0.3 then 10.0.0.2, no persistence) and service 1 (DR, rr
/// over 10.0.0.3 then 10.0.0.2); 10.0.0.3 at `weight` in both.
fn snapshot_of(mode: u8, expire_nodest_conn: bool, weight: u32) -> Snapshot {
    let mut snap = snapshot_with(|services| {
        services[5].persistence = None;
        services[5].servers[0].weight = weight;
        let dr = &mut services[1];
        dr.servers[0].weight = weight;
        dr.servers.push(rs(23, [10, 0, 0, 2], 0, ForwardMethod::Dr));
    });
    snap.conn_reuse_mode = mode;
    snap.expire_nodest_conn = expire_nodest_conn;
    snap
}

fn syn(vip: [u8; 4], sport: u16) -> Vec<u8> {
    tcp4(
        CLIENT_MAC, PORT0_MAC, CLIENT, vip, 64, sport, 80, true, false, b"",
    )
}

/// Where the frame went: the NAT destination address, or the DR next hop's MAC.
fn server(vip: [u8; 4], out: &[u8]) -> [u8; 6] {
    if vip == NAT_VIP {
        [0, 0, out[30], out[31], out[32], out[33]]
    } else {
        out[..6].try_into().unwrap()
    }
}

/// The client's connection from `sport` set to `state`, then a SYN from the same port:
/// the server the SYN reaches, and whether it was scheduled anew.
fn reuse(lab: &mut Lab, vip: [u8; 4], sport: u16, state: TcpState) -> ([u8; 6], bool) {
    let (v, out) = lab.run(0, &syn(vip, sport));
    assert_eq!(v, Verdict::Forward { port: 1 });
    let first = server(vip, &out);
    let (id, _) = lab
        .engine
        .table
        .iter()
        .find(|(_, c)| c.cport == sport && !c.is_template())
        .unwrap();
    lab.engine.table.get_mut(id).unwrap().state = state as u8;
    // rr moved on past the first server: a new schedule picks the other.
    let (v, out) = lab.run(0, &syn(vip, sport));
    assert_eq!(v, Verdict::Forward { port: 1 });
    // With two servers under rr a new schedule is the other server.
    let renewed = server(vip, &out) != first;
    (server(vip, &out), renewed)
}

fn lab(mode: u8, expire: bool, weight: u32) -> Lab {
    Lab::with(
        snapshot_of(mode, expire, weight),
        rvs_core::engine::EngineConfig {
            conn_capacity: 1024,
            ..Default::default()
        },
    )
}

#[test]
fn a_syn_on_a_finished_connection_is_scheduled_anew_unless_mode_0() {
    for state in [TcpState::TimeWait, TcpState::Close] {
        assert!(
            reuse(&mut lab(1, false, 1), NAT_VIP, 1000, state).1,
            "{state:?}"
        );
        assert!(
            !reuse(&mut lab(0, false, 1), NAT_VIP, 1000, state).1,
            "{state:?}, mode 0"
        );
    }
    // A live connection is never rescheduled by a SYN.
    assert!(!reuse(&mut lab(3, false, 1), NAT_VIP, 1000, TcpState::Established).1);
}

#[test]
fn bit_2_takes_a_dr_connection_in_fin_wait() {
    assert!(!reuse(&mut lab(1, false, 1), DR_VIP, 1000, TcpState::FinWait).1);
    assert!(reuse(&mut lab(2, false, 1), DR_VIP, 1000, TcpState::FinWait).1);
    // A NAT connection sees the server's replies: FIN_WAIT is not its last state.
    assert!(!reuse(&mut lab(2, false, 1), NAT_VIP, 1000, TcpState::FinWait).1);
}

#[test]
fn with_expire_nodest_conn_a_syn_leaves_a_quiesced_server() {
    // 10.0.0.3 at weight 0 is not scheduled: the first SYN needs it, so quiesce after.
    let mut l = lab(1, true, 1);
    let (_, out) = l.run(0, &syn(NAT_VIP, 1000));
    assert_eq!(server(NAT_VIP, &out)[2..], [10, 0, 0, 3]);
    l.snap = snapshot_of(1, true, 0);
    l.engine.adopt(&l.snap);
    let (_, out) = l.run(0, &syn(NAT_VIP, 1000));
    assert_eq!(
        server(NAT_VIP, &out)[2..],
        [10, 0, 0, 2],
        "port reuse left it"
    );
    // Without expire_nodest_conn the connection stays with its quiesced server.
    let mut l = lab(1, false, 1);
    let _ = l.run(0, &syn(NAT_VIP, 1000));
    l.snap = snapshot_of(1, false, 0);
    l.engine.adopt(&l.snap);
    let (_, out) = l.run(0, &syn(NAT_VIP, 1000));
    assert_eq!(server(NAT_VIP, &out)[2..], [10, 0, 0, 3]);
}

/// A port's reuse is judged before its server's deletion, as in ip_vs_in: a SYN on a
/// TIME_WAIT connection to a deleted server is scheduled anew, not dropped.
#[test]
fn a_reused_port_of_a_deleted_server_is_scheduled_anew() {
    let mut l = lab(1, false, 1);
    let _ = l.run(0, &syn(NAT_VIP, 1000));
    let (id, _) = l
        .engine
        .table
        .iter()
        .find(|(_, c)| c.cport == 1000)
        .unwrap();
    l.engine.table.get_mut(id).unwrap().state = TcpState::TimeWait as u8;
    l.snap = snapshot_with(|services| {
        services[5].persistence = None;
        services[5].servers.remove(0);
    });
    l.engine.adopt(&l.snap);
    let (v, out) = l.run(0, &syn(NAT_VIP, 1000));
    assert_eq!(
        (v, server(NAT_VIP, &out)[2..].to_vec()),
        (Verdict::Forward { port: 1 }, vec![10, 0, 0, 2])
    );
}
