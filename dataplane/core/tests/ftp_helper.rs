//! IPVS's FTP helper on a NAT service at port 21 (golden packets): the server's 227 reply
//! to PASV rewritten to name the VIP, the server's later sequence numbers shifted by the
//! longer text and the client's acknowledgements shifted back, the passive data connection
//! to VIP:port sent to the control connection's server (once), a retransmitted reply
//! rewritten alike, EPSV's 229, PORT's active data connection from the server's port 20
//! sent on from VIP:20, the expectation seen by another worker through the shared board;
//! and without the helper none of it.

use proptest::prelude::*;
use rvs_core::engine::{SharedTemplates, Verdict};
use rvs_core::sync::{decode, encode};
use rvs_testkit::*;
use std::sync::Arc;

const VIP: [u8; 4] = FTP_VIP;
const RS: [u8; 4] = [10, 0, 0, 2];
const C: ([u8; 6], [u8; 6]) = (GW_MAC, PORT0_MAC);
const S: ([u8; 6], [u8; 6]) = (RS2_MAC, PORT1_MAC);
const TO_SERVER: ([u8; 6], [u8; 6]) = (PORT1_MAC, RS2_MAC);
const TO_CLIENT: ([u8; 6], [u8; 6]) = (PORT0_MAC, GW_MAC);
const CONTROL: ([u8; 4], u16) = (CLIENT, 40000);

/// Client -> VIP:21 and what reaches the server.
fn from_client(lab: &mut Lab, (seq, ack): (u32, u32), data: &[u8]) -> Vec<u8> {
    let input = segment(
        C,
        CONTROL,
        (VIP, 21),
        64,
        (seq, Some(ack)),
        false,
        &[],
        data,
    );
    let (v, out) = lab.run(0, &input);
    assert_eq!(v, Verdict::Forward { port: 1 });
    out
}

/// A control-connection segment as the server sends it.
fn server_segment((seq, ack): (u32, u32), data: &[u8]) -> Vec<u8> {
    segment(S, (RS, 21), CONTROL, 64, (seq, Some(ack)), false, &[], data)
}

/// Server -> client on the control connection and what reaches the client.
fn from_server(lab: &mut Lab, seq_ack: (u32, u32), data: &[u8]) -> Vec<u8> {
    let (v, out) = lab.run(1, &server_segment(seq_ack, data));
    assert_eq!(v, Verdict::Forward { port: 0 });
    out
}

/// A SYN (or SYN-ACK with an acknowledgement) without options or data.
fn syn_segment(
    macs: ([u8; 6], [u8; 6]),
    from: ([u8; 4], u16),
    to: ([u8; 4], u16),
    ttl: u8,
    seq_ack: (u32, Option<u32>),
) -> Vec<u8> {
    segment(macs, from, to, ttl, seq_ack, true, &[], b"")
}

/// A control-connection segment as the client should see it (from VIP:21).
fn seen_by_client((seq, ack): (u32, u32), data: &[u8]) -> Vec<u8> {
    segment(
        TO_CLIENT,
        (VIP, 21),
        CONTROL,
        63,
        (seq, Some(ack)),
        false,
        &[],
        data,
    )
}

/// A control-connection segment as the server should see it.
fn seen_by_server((seq, ack): (u32, u32), data: &[u8]) -> Vec<u8> {
    segment(
        TO_SERVER,
        CONTROL,
        (RS, 21),
        63,
        (seq, Some(ack)),
        false,
        &[],
        data,
    )
}

/// The control connection's handshake (client ISN 1000, server ISN 5000).
fn connect(lab: &mut Lab) {
    let syn = segment(C, CONTROL, (VIP, 21), 64, (1000, None), true, &[], b"");
    assert_eq!(lab.run(0, &syn).0, Verdict::Forward { port: 1 });
    let synack = segment(S, (RS, 21), CONTROL, 64, (5000, Some(1001)), true, &[], b"");
    assert_eq!(lab.run(1, &synack).0, Verdict::Forward { port: 0 });
    from_client(lab, (1001, 5001), b"");
}

const PASV_REPLY: &[u8] = b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n";
const PASV_SEEN: &[u8] = b"227 Entering Passive Mode (192,168,1,110,195,80).\r\n";
/// The rewritten reply is this much longer.
const SHIFT: u32 = 5;

/// The client's acknowledgement of the server's SYN-ACK (ISN 9000) on the passive data
/// connection from port 40001 to VIP:50000.
fn data_ack_segment() -> Vec<u8> {
    segment(
        C,
        (CLIENT, 40001),
        (VIP, 50000),
        64,
        (7001, Some(9001)),
        false,
        &[],
        b"",
    )
}

/// A client SYN from `sport` to VIP:`dport`: its verdict and output.
fn data_syn(lab: &mut Lab, sport: u16, dport: u16) -> (Verdict, Vec<u8>) {
    let syn = syn_segment(C, (CLIENT, sport), (VIP, dport), 64, (7000, None));
    lab.run(0, &syn)
}

#[test]
fn a_passive_reply_names_the_vip_and_its_data_connection_reaches_the_server() {
    let mut lab = ftp_lab(true);
    connect(&mut lab);
    let out = from_client(&mut lab, (1001, 5001), b"PASV\r\n");
    let want = seen_by_server((1001, 5001), b"PASV\r\n");
    assert_eq!(out, want);
    // The reply names the VIP (5 bytes longer), lengths and checksums made anew.
    let out = from_server(&mut lab, (5001, 1007), PASV_REPLY);
    let want = seen_by_client((5001, 1007), PASV_SEEN);
    assert_eq!(out, want);
    let after = 5001 + PASV_REPLY.len() as u32;
    // The server's next data comes 5 bytes later in the client's sequence space; the
    // client's acknowledgement of it goes back to the server's numbers.
    let out = from_server(&mut lab, (after, 1007), b"150 Here comes the data\r\n");
    let want = seen_by_client((after + SHIFT, 1007), b"150 Here comes the data\r\n");
    assert_eq!(out, want);
    let out = from_client(&mut lab, (1007, after + SHIFT + 25), b"");
    let want = seen_by_server((1007, after + 25), b"");
    assert_eq!(out, want);
    // An acknowledgement of the rewritten reply's start only (before its end) goes back by
    // the shift before it (none).
    let out = from_client(&mut lab, (1007, 5001), b"");
    assert_eq!(&out[42..46], &5001u32.to_be_bytes());
    // A retransmission of the reply is rewritten alike, at its original place.
    let out = from_server(&mut lab, (5001, 1007), PASV_REPLY);
    let want = seen_by_client((5001, 1007), PASV_SEEN);
    assert_eq!(out, want);
    // The data connection: VIP:50000 has no service, yet goes to the server's port 50000.
    let (v, out) = data_syn(&mut lab, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let want = syn_segment(TO_SERVER, (CLIENT, 40001), (RS, 50000), 63, (7000, None));
    assert_eq!(out, want);
    let synack = syn_segment(S, (RS, 50000), (CLIENT, 40001), 64, (9000, Some(7001)));
    let (v, out) = lab.run(1, &synack);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        &out[26..30],
        &VIP,
        "the data connection's replies come from the VIP"
    );
    // The expectation was taken (a late retransmission of the reply, rewritten alike,
    // expects nothing again): another connection to the port is not the server's.
    let out = from_server(&mut lab, (5001, 1007), PASV_REPLY);
    assert_eq!(out, seen_by_client((5001, 1007), PASV_SEEN));
    let (v, _) = data_syn(&mut lab, 40002, 50000);
    assert_ne!(v, Verdict::Forward { port: 1 });
    // Counted: the reply and its two retransmissions rewritten, one data connection.
    let c = lab.engine.counters();
    assert_eq!(
        (c.ftp_rewrites, c.ftp_data_conns, c.ftp_controls_kept),
        (3, 1, 0)
    );
}

#[test]
fn without_the_helper_the_reply_and_the_data_connection_pass_unhelped() {
    let mut lab = ftp_lab(false);
    connect(&mut lab);
    from_client(&mut lab, (1001, 5001), b"PASV\r\n");
    let out = from_server(&mut lab, (5001, 1007), PASV_REPLY);
    assert!(out.ends_with(PASV_REPLY), "the real server's address leaks");
    let (v, _) = data_syn(&mut lab, 40001, 50000);
    assert_ne!(v, Verdict::Forward { port: 1 });
}

#[test]
fn an_extended_passive_reply_names_only_the_port() {
    let mut lab = ftp_lab(true);
    connect(&mut lab);
    from_client(&mut lab, (1001, 5001), b"EPSV\r\n");
    let reply = b"229 Entering Extended Passive Mode (|1|10.0.0.2|50001|)\r\n";
    let out = from_server(&mut lab, (5001, 1007), reply);
    assert!(
        out.ends_with(b"229 Entering Extended Passive Mode (|||50001|)\r\n"),
        "{:?}",
        String::from_utf8_lossy(&out[54..])
    );
    let (v, out) = data_syn(&mut lab, 40001, 50001);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS);
}

/// After a client's `PORT 198,51,100,7,200,10`: the server's SYN from its port 20 to the
/// client's 51210 leaves from VIP:20, and the client's answer goes back to the server's
/// port 20.
fn active_data_connection_from_vip_20(lab: &mut Lab) {
    let syn = syn_segment(S, (RS, 20), (CLIENT, 51210), 64, (9000, None));
    let (v, out) = lab.run(1, &syn);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let want = syn_segment(TO_CLIENT, (VIP, 20), (CLIENT, 51210), 63, (9000, None));
    assert_eq!(out, want);
    let synack = syn_segment(C, (CLIENT, 51210), (VIP, 20), 64, (3000, Some(9001)));
    let (v, out) = lab.run(0, &synack);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(
        (&out[30..34], &out[36..38]),
        (&RS[..], &20u16.to_be_bytes()[..])
    );
}

#[test]
fn an_active_data_connection_leaves_from_the_vip_port_20() {
    let mut lab = ftp_lab(true);
    connect(&mut lab);
    from_client(&mut lab, (1001, 5001), b"PORT 198,51,100,7,200,10\r\n");
    active_data_connection_from_vip_20(&mut lab);
    // A server's SYN to a port no PORT named is not sent on from the VIP.
    let other = syn_segment(S, (RS, 20), (CLIENT, 51211), 64, (9000, None));
    assert_ne!(lab.run(1, &other).0, Verdict::Forward { port: 0 });
}

/// A passive reply naming a host no data connection may go to (a martian address, a VIP,
/// the appliance's own address): the data connection goes to the server, as before the
/// helper followed named hosts.
#[test]
fn a_passive_reply_naming_no_host_leaves_the_data_connection_with_the_server() {
    let mut lab = ftp_lab(true);
    connect(&mut lab);
    let (mut c_seq, mut s_seq) = (1001u32, 5001u32);
    for (n, named) in [
        "127,0,0,1",
        "224,0,0,5",
        "192,168,1,110",
        "10,0,0,1",
        "0,0,0,0",
    ]
    .iter()
    .enumerate()
    {
        let port = 50010 + n as u16;
        let reply = format!(
            "227 Entering Passive Mode ({named},{},{}).\r\n",
            port >> 8,
            port & 0xff
        );
        from_client(&mut lab, (c_seq, s_seq), b"PASV\r\n");
        c_seq += 6;
        from_server(&mut lab, (s_seq, c_seq), reply.as_bytes());
        s_seq += reply.len() as u32;
        let (v, out) = data_syn(&mut lab, 41000 + n as u16, port);
        assert_eq!(v, Verdict::Forward { port: 1 }, "{named}");
        assert_eq!(&out[30..34], &RS, "{named}");
    }
    // A master (a kernel, say) naming such a host: its backup keeps the server too.
    use rvs_core::conn::addr16;
    let mut master = ftp_lab(true);
    let ch = master.sync_master();
    connect(&mut master);
    from_client(&mut master, (1001, 5001), b"PASV\r\n");
    from_server(
        &mut master,
        (5001, 1007),
        b"227 Entering Passive Mode (10,0,0,3,195,80).\r\n",
    );
    let mut backup = ftp_lab(true);
    let mut notes = notes_of(&ch);
    for n in &mut notes {
        n.daddr = addr16(ip([127, 0, 0, 1]));
    }
    backup.install_all(notes);
    let (v, out) = data_syn(&mut backup, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS, "the backup's");
}

/// The FTP service as a firewall mark's (`ipvsadm -A -f 21`) whose rule covers a prefix and
/// ports 20-21, so the service has no address of its own.
fn fwmark_ftp_lab() -> Lab {
    use rvs_core::engine::{EngineConfig, ForwardMethod, MarkRule, Service};
    use rvs_core::sched::SchedKind;
    let mut index = 0;
    let mut snap = snapshot_with(|services| {
        index = services.len();
        services.push(Service::new(
            index as u16,
            6,
            ip([0, 0, 0, 0]),
            0,
            Some(21),
            SchedKind::Rr,
            None,
            vec![rs(20, RS, 21, ForwardMethod::Nat)],
        ));
    });
    snap.set_marks(vec![(
        MarkRule {
            mark: 21,
            proto: Some(6),
            dst: (ip([192, 168, 1, 110]), 31),
            ports: (20, 21),
            src: None,
        },
        index,
    )]);
    let mut ftp_ports = [0; rvs_core::engine::FTP_PORTS_MAX];
    ftp_ports[0] = 21;
    Lab::with(
        snap,
        EngineConfig {
            conn_capacity: 1024,
            ftp_ports,
            ..EngineConfig::default()
        },
    )
}

/// As the kernel's helper on a firewall-mark service (it binds by the connection's port):
/// the 227 reply names the VIP, and a PORT's active data connection leaves from the
/// control connection's VIP, port 20, though the service has no address of its own.
#[test]
fn a_firewall_mark_service_is_helped_both_ways() {
    let mut lab = fwmark_ftp_lab();
    connect(&mut lab);
    from_client(&mut lab, (1001, 5001), b"PASV\r\n");
    let out = from_server(&mut lab, (5001, 1007), PASV_REPLY);
    assert_eq!(out, seen_by_client((5001, 1007), PASV_SEEN));
    let (v, out) = data_syn(&mut lab, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS);
    let after = 5001 + PASV_REPLY.len() as u32;
    from_client(
        &mut lab,
        (1007, after + SHIFT),
        b"PORT 198,51,100,7,200,10\r\n",
    );
    active_data_connection_from_vip_20(&mut lab);
    assert_eq!(lab.engine.counters().ftp_data_conns, 2);
}

/// A backup of a firewall-mark FTP service without an address takes both expectations
/// from its master and sends their data connections as the master would.
#[test]
fn a_firewall_mark_services_expectations_reach_the_backup() {
    let mut master = fwmark_ftp_lab();
    let ch = master.sync_master();
    connect(&mut master);
    from_client(&mut master, (1001, 5001), b"PASV\r\n");
    from_server(&mut master, (5001, 1007), PASV_REPLY);
    let after = 5001 + PASV_REPLY.len() as u32;
    from_client(
        &mut master,
        (1007, after + SHIFT),
        b"PORT 198,51,100,7,200,10\r\n",
    );
    let notes = notes_of(&ch);
    let mut backup = fwmark_ftp_lab();
    backup.install_all(through_the_wire(&notes));
    let (v, out) = data_syn(&mut backup, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS);
    active_data_connection_from_vip_20(&mut backup);
}

/// Two workers sharing a board; on the first a control connection's PASV answered.
fn passive_on_two_workers() -> (Lab, Lab) {
    let board = Arc::new(SharedTemplates::new(1024));
    let mut control = ftp_lab(true);
    let mut data = ftp_lab(true);
    control.engine.share_templates(board.clone());
    data.engine.share_templates(board);
    connect(&mut control);
    from_client(&mut control, (1001, 5001), b"PASV\r\n");
    from_server(&mut control, (5001, 1007), PASV_REPLY);
    (control, data)
}

#[test]
fn another_worker_takes_the_data_connection_through_the_shared_board() {
    let (mut control, mut data) = passive_on_two_workers();
    let (v, out) = data_syn(&mut data, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS);
    // Taken once, by either worker.
    assert_ne!(
        data_syn(&mut control, 40003, 50000).0,
        Verdict::Forward { port: 1 }
    );
}

/// A 227 reply naming another host than the server (a server's `pasv_address`, say): as
/// the kernel, the data connection goes to the host it named (through any worker), counted
/// as the control connection's server's; listed and synced with that address (a backup
/// sends the expected and the established data connection there too). A later
/// reply at the same port naming the server itself sends its data connection to the server.
#[test]
fn a_passive_reply_naming_another_host_sends_the_data_connection_there() {
    use rvs_core::conn::addr16;
    const OTHER: [u8; 4] = [10, 0, 0, 3];
    let board = Arc::new(SharedTemplates::new(1024));
    let mut control = ftp_lab(true);
    let mut data = ftp_lab(true);
    control.engine.share_templates(board.clone());
    data.engine.share_templates(board);
    let ch = control.sync_master();
    connect(&mut control);
    from_client(&mut control, (1001, 5001), b"PASV\r\n");
    let reply = b"227 Entering Passive Mode (10,0,0,3,195,80).\r\n";
    let out = from_server(&mut control, (5001, 1007), reply);
    assert_eq!(out, seen_by_client((5001, 1007), PASV_SEEN));
    let listed: Vec<_> = control
        .engine
        .ftp_expected(1)
        .map(|c| (c.daddr, c.dport, c.dest))
        .collect();
    assert_eq!(listed, [(addr16(ip(OTHER)), 50000, 20)]);
    let notes = notes_of(&ch);
    assert!(
        notes
            .iter()
            .any(|n| (n.vport, n.daddr, n.dport) == (50000, addr16(ip(OTHER)), 50000)),
        "{notes:?}"
    );
    // A backup given the expectation sends its data connection to the named host too.
    let mut backup = ftp_lab(true);
    backup.install_all(through_the_wire(&notes));
    let (v, out) = data_syn(&mut backup, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &OTHER, "the backup's data connection");
    // The data connection, on the other worker: to 10.0.0.3, its replies from the VIP.
    data.engine.sync = Some(ch.clone());
    let (v, out) = data_syn(&mut data, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let to_other = (PORT1_MAC, RS3_MAC);
    let want = syn_segment(to_other, (CLIENT, 40001), (OTHER, 50000), 63, (7000, None));
    assert_eq!(out, want);
    let from_other = (RS3_MAC, PORT1_MAC);
    let synack = syn_segment(
        from_other,
        (OTHER, 50000),
        (CLIENT, 40001),
        64,
        (9000, Some(7001)),
    );
    let (v, out) = data.run(1, &synack);
    assert_eq!(v, Verdict::Forward { port: 0 });
    let want = syn_segment(
        TO_CLIENT,
        (VIP, 50000),
        (CLIENT, 40001),
        63,
        (9000, Some(7001)),
    );
    assert_eq!(out, want);
    // Established, it is synced: a backup sends its packets to the named host.
    assert_eq!(
        data.run(0, &data_ack_segment()).0,
        Verdict::Forward { port: 1 }
    );
    let mut backup = ftp_lab(true);
    let notes = notes_of(&ch);
    assert_eq!(notes.len(), 1);
    backup.install_all(notes);
    let (v, out) = backup.run(0, &data_ack_segment());
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &OTHER, "the synced data connection");
    data.engine.expire(1, 1 << 16, &data.loads);
    data.engine.flush_loads(&data.loads);
    let load = &data.loads[20];
    assert_eq!(
        load.active() + load.inactive(),
        1,
        "counted on the control's server"
    );
    // The next reply names the server itself, at the same port.
    let after = 5001 + reply.len() as u32;
    from_client(&mut control, (1007, after + SHIFT), b"PASV\r\n");
    from_server(&mut control, (after, 1013), PASV_REPLY);
    let (v, out) = data_syn(&mut data, 40002, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS);
    // A reply naming the other host whose data connection never came, then one naming the
    // server at the same port: the earlier address is not taken for the later.
    let mut seq = (1013, after + PASV_REPLY.len() as u32);
    for named in [&b"10,0,0,3"[..], &b"10,0,0,2"[..]] {
        let mut reply = b"227 Entering Passive Mode (".to_vec();
        reply.extend_from_slice(named);
        reply.extend_from_slice(b",195,81).\r\n");
        from_client(&mut control, (seq.0, seq.1), b"PASV\r\n");
        from_server(&mut control, (seq.1, seq.0 + 6), &reply);
        seq = (seq.0 + 6, seq.1 + reply.len() as u32);
    }
    let (v, out) = data_syn(&mut data, 40003, 50001);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS);
    assert_eq!(data.engine.counters().ftp_data_conns, 3);
}

/// A master's control connection after a rewrite, and its passive and active data
/// connections, synced to a backup through encoded messages (version 1 and version 0):
/// the backup shifts the server's sequence numbers and the client's acknowledgements as
/// the master did, and forwards both data connections as the master does.
#[test]
fn ftp_sessions_continue_on_the_backup() {
    use rvs_core::sync::encode_v0;
    for version in [1, 0] {
        let mut master = ftp_lab(true);
        let ch = master.sync_master();
        connect(&mut master);
        from_client(&mut master, (1001, 5001), b"PASV\r\n");
        from_server(&mut master, (5001, 1007), PASV_REPLY);
        let data = syn_segment(C, (CLIENT, 40001), (VIP, 50000), 64, (7000, None));
        assert_eq!(master.run(0, &data).0, Verdict::Forward { port: 1 });
        // Its handshake ends: synced once ESTABLISHED (as IPVS; a SYN alone is not).
        let syn_ack = syn_segment(S, (RS, 50000), (CLIENT, 40001), 64, (9000, Some(7001)));
        assert_eq!(master.run(1, &syn_ack).0, Verdict::Forward { port: 0 });
        let data_ack = data_ack_segment();
        assert_eq!(master.run(0, &data_ack).0, Verdict::Forward { port: 1 });
        from_client(
            &mut master,
            (1007, 5001 + PASV_REPLY.len() as u32 + SHIFT),
            b"PORT 198,51,100,7,200,10\r\n",
        );
        let active = syn_segment(S, (RS, 20), (CLIENT, 51210), 64, (9000, None));
        assert_eq!(master.run(1, &active).0, Verdict::Forward { port: 0 });
        let notes = notes_of(&ch);
        assert!(
            notes.iter().any(|n| n.out_seq.is_some()),
            "the shift was noted"
        );
        let messages = if version == 1 {
            encode(3, &notes, 1472)
        } else {
            encode_v0(3, &notes, 1472)
        };
        let mut backup = ftp_lab(true);
        for m in messages {
            for n in decode(&m).unwrap().1 {
                assert!(
                    backup
                        .engine
                        .install_synced(&backup.snap, &backup.loads, 1, &n),
                    "version {version}: {n:?}"
                );
            }
        }
        let after = 5001 + PASV_REPLY.len() as u32;
        let next = server_segment((after, 1033), b"150 ok\r\n");
        let ack = segment(
            C,
            CONTROL,
            (VIP, 21),
            64,
            (1033, Some(after + SHIFT + 8)),
            false,
            &[],
            b"",
        );
        let active_ack = segment(
            C,
            (CLIENT, 51210),
            (VIP, 20),
            64,
            (3000, Some(9001)),
            false,
            &[],
            b"",
        );
        let frames = [(1, &next), (0, &ack), (0, &data_ack), (0, &active_ack)];
        let on_master: Vec<_> = frames.iter().map(|(p, f)| master.run(*p, f)).collect();
        let on_backup: Vec<_> = frames.iter().map(|(p, f)| backup.run(*p, f)).collect();
        assert_eq!(on_backup, on_master, "version {version}");
        assert_eq!(
            on_backup[0].1,
            seen_by_client((after + SHIFT, 1033), b"150 ok\r\n")
        );
        assert_eq!(on_backup[1].1, seen_by_server((1033, after + 8), b""));
        assert!(on_backup
            .iter()
            .all(|(v, _)| matches!(v, Verdict::Forward { .. })));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any sequence of commands, replies, free bytes and retransmissions on a control
    /// connection: every segment forwarded intact, each side's view of the other's stream
    /// contiguous (`invariants::ftp_session`, which the fuzz target runs too).
    #[test]
    fn any_ftp_session_keeps_both_streams_whole(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
        if let Err(e) = rvs_testkit::invariants::ftp_session(&data) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Expected data connections a master announced but no client or server opened yet reach
/// a backup (the passive one as IPVS's entry without a client port, the active one as a
/// connection in LISTEN): after a failover the client's data SYN and the server's SYN from
/// port 20 go through the backup.
#[test]
fn expected_data_connections_reach_the_backup() {
    use rvs_core::sync::ipvs_flags;
    let mut master = ftp_lab(true);
    let ch = master.sync_master();
    connect(&mut master);
    from_client(&mut master, (1001, 5001), b"PASV\r\n");
    from_server(&mut master, (5001, 1007), PASV_REPLY);
    let acked = 5001 + PASV_REPLY.len() as u32 + SHIFT;
    from_client(&mut master, (1007, acked), b"PORT 198,51,100,7,200,10\r\n");
    let notes = notes_of(&ch);
    let passive: Vec<_> = notes
        .iter()
        .filter(|n| n.flags & ipvs_flags::NO_CPORT != 0)
        .collect();
    assert_eq!(passive.len(), 1, "{notes:?}");
    assert_eq!(
        (passive[0].cport, passive[0].vport, passive[0].dport),
        (0, 50000, 50000)
    );
    assert!(notes
        .iter()
        .any(|n| (n.cport, n.vport, n.dport) == (51210, 20, 20)));
    let mut backup = ftp_lab(true);
    backup.install_all(through_the_wire(&notes));
    // The backup lists the passive one as the master does.
    let listed: Vec<_> = backup.engine.ftp_expected(1).map(|c| c.vport).collect();
    assert_eq!(listed, [50000]);
    let (v, out) = data_syn(&mut backup, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    assert_eq!(&out[30..34], &RS);
    active_data_connection_from_vip_20(&mut backup);
}

/// Expected connections are listed as the kernel's LISTEN entries (`-L -c`) and counted
/// inactive on their server until their data connection takes them, on this worker or
/// another sharing the board, or they expire after two minutes.
#[test]
fn expected_data_connections_are_listed_and_counted_until_taken() {
    use rvs_core::conn::{addr16, state_name};
    let (mut control, mut data) = passive_on_two_workers();
    let acked = 5001 + PASV_REPLY.len() as u32 + SHIFT;
    from_client(&mut control, (1007, acked), b"PORT 198,51,100,7,200,10\r\n");
    let listed: Vec<_> = control.engine.ftp_expected(1).collect();
    let shown: Vec<_> = listed
        .iter()
        .map(|c| {
            (
                state_name(c.proto, c.state),
                (c.caddr, c.cport),
                (c.vaddr, c.vport),
                (c.daddr, c.dport),
                c.expires,
                c.dest,
            )
        })
        .collect();
    let (client, vip, rs) = (addr16(ip(CLIENT)), addr16(ip(VIP)), addr16(ip(RS)));
    let port_client = addr16(ip([198, 51, 100, 7]));
    assert_eq!(
        shown,
        [
            ("LISTEN", (client, 0), (vip, 50000), (rs, 50000), 121, 20),
            ("LISTEN", (port_client, 51210), (vip, 20), (rs, 20), 121, 20),
        ]
    );
    assert!(data.engine.ftp_expected(1).next().is_none(), "listed once");
    let inactive = |lab: &mut Lab, now: u32| {
        lab.engine.expire(now, 1 << 16, &lab.loads);
        lab.engine.flush_loads(&lab.loads);
        lab.loads[20].inactive()
    };
    assert_eq!(inactive(&mut control, 2), 2, "both counted inactive");
    // The passive one taken on the other worker: no longer listed, counted off within a
    // second.
    let (v, _) = data_syn(&mut data, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let ports: Vec<_> = control.engine.ftp_expected(2).map(|c| c.vport).collect();
    assert_eq!(ports, [20]);
    assert_eq!(inactive(&mut control, 3), 1);
    // The active one expires unused.
    assert_eq!(control.engine.ftp_expected(120).count(), 1);
    assert_eq!(control.engine.ftp_expected(121).count(), 0);
    assert_eq!(inactive(&mut control, 121), 0);
}

/// Both workers' connection timers up to `now`.
/// A passive RETR on a new control connection (the 227 reply, the request, the 150
/// reply); the server's sequence number after the 227 reply.
fn passive_retr(lab: &mut Lab) -> u32 {
    connect(lab);
    from_client(lab, (1001, 5001), b"PASV\r\n");
    from_server(lab, (5001, 1007), PASV_REPLY);
    let after = 5001 + PASV_REPLY.len() as u32;
    from_client(lab, (1007, after + SHIFT), b"RETR big\r\n");
    from_server(lab, (after, 1017), b"150 ok\r\n");
    after
}

/// The passive data connection (client 40001 -> VIP:50000) through its handshake.
fn open_data_connection(lab: &mut Lab) {
    let (v, _) = data_syn(lab, 40001, 50000);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let synack = syn_segment(S, (RS, 50000), (CLIENT, 40001), 64, (9000, Some(7001)));
    assert_eq!(lab.run(1, &synack).0, Verdict::Forward { port: 0 });
    assert_eq!(
        lab.run(0, &data_ack_segment()).0,
        Verdict::Forward { port: 1 }
    );
}

/// The server's 100 bytes at `seq` on the passive data connection.
fn data_chunk(seq: u32) -> Vec<u8> {
    segment(
        S,
        (RS, 50000),
        (CLIENT, 40001),
        64,
        (seq, Some(7001)),
        false,
        &[],
        &[7; 100],
    )
}

fn run_timers(labs: [&mut Lab; 2], now: u32) {
    for lab in labs {
        lab.engine.expire(now, 1 << 16, &lab.loads);
    }
}

/// A long transfer over a quiet control connection (IPVS's `n_control`): the control
/// connection outlives its own timeout while its data connection carries data (on the
/// same worker or another one sharing the board), so the server's 226 after the transfer
/// still reaches the client; a minute or two after the data connection's end it goes.
#[test]
fn a_control_connection_lives_while_its_data_connection_does() {
    for shared in [false, true] {
        let mut control = ftp_lab(true);
        let mut other = ftp_lab(true);
        if shared {
            let board = Arc::new(SharedTemplates::new(1024));
            control.engine.share_templates(board.clone());
            other.engine.share_templates(board);
        }
        let ch = control.sync_master();
        let after = passive_retr(&mut control);
        open_data_connection(if shared { &mut other } else { &mut control });
        while ch.outbox.pop().is_some() {}
        // Half an hour of data every five minutes; the control connection says nothing.
        let mut seq = 9001;
        for now in (10..=1800).step_by(10) {
            if now % 300 == 0 {
                let lab = if shared { &mut other } else { &mut control };
                let chunk = data_chunk(seq);
                assert_eq!(lab.run_at(now, 1, &chunk).0, Verdict::Forward { port: 0 });
                seq += 100;
            }
            run_timers([&mut control, &mut other], now);
        }
        // Each time it is kept, a backup is told (the kernel's expire_later syncs too).
        let mut kept = 0;
        while let Some(n) = ch.outbox.pop() {
            kept += usize::from((n.cport, n.vport) == (CONTROL.1, 21));
        }
        assert!(kept >= 10, "{kept} notes of the kept control connection");
        assert_eq!(control.engine.counters().ftp_controls_kept, kept as u64);
        let done = b"226 Transfer complete\r\n";
        let (v, out) = control.run_at(1800, 1, &server_segment((after + 8, 1017), done));
        assert_eq!(v, Verdict::Forward { port: 0 }, "shared board: {shared}");
        assert_eq!(out, seen_by_client((after + SHIFT + 8, 1017), done));
        // The data connection ends with its timer (15 minutes after its last data); the
        // control connection goes within two minutes of it.
        for now in (1810..=2900).step_by(10) {
            run_timers([&mut control, &mut other], now);
        }
        let (v, _) = control.run_at(2900, 1, &server_segment((after + 31, 1017), done));
        assert_ne!(v, Verdict::Forward { port: 0 }, "shared board: {shared}");
    }
}

/// drop_entry leaves a control connection alone while its data connection lives (IPVS
/// skips an entry that controls others, `n_control`): a quiet control connection of four
/// client packets, idle half an hour, outlasts the looks that take idle entries by rate.
#[test]
fn drop_entry_keeps_a_control_connection_while_its_data_connection_lives() {
    let mut lab = ftp_lab(true);
    lab.snap.drop_entry = true;
    lab.engine.adopt(&lab.snap);
    let after = passive_retr(&mut lab);
    open_data_connection(&mut lab);
    let control = |lab: &Lab| {
        lab.engine
            .table
            .iter()
            .any(|(_, c)| (c.cport, c.vport) == (CONTROL.1, 21))
    };
    let mut seq = 9001;
    let mut dropped = 0;
    for now in (10..=1800).step_by(10) {
        let chunk = data_chunk(seq);
        assert_eq!(lab.run_at(now, 1, &chunk).0, Verdict::Forward { port: 0 });
        seq += 100;
        for second in now - 9..=now {
            dropped += lab.engine.drop_entries(&lab.snap, &lab.loads, second, 256);
        }
        lab.engine.expire(now, 1 << 16, &lab.loads);
    }
    assert!(control(&lab), "the control connection was dropped");
    assert_eq!(dropped, 0);
    let done = b"226 Transfer complete\r\n";
    let (v, out) = lab.run_at(1800, 1, &server_segment((after + 8, 1017), done));
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(out, seen_by_client((after + SHIFT + 8, 1017), done));
}
