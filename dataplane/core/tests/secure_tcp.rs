//! IPVS's secure_tcp defence (golden packets): with its tables a NAT connection is
//! established only through its server's answers, so spoofed SYN-and-ACK pairs stay
//! embryonic (and are evicted for new clients) where the usual tables would let them fill
//! the table with established entries no flood defence may take.

use rvs_core::engine::{DropReason, Verdict};
use rvs_testkit::*;

const VIP: [u8; 4] = [192, 168, 1, 100];
const RS: [u8; 4] = [10, 0, 0, 2];

fn lab(secure_tcp: bool, capacity: usize) -> Lab {
    let mut snap = snapshot();
    snap.secure_tcp = secure_tcp;
    Lab::with_capacity(snap, capacity)
}

/// A client's segment to VIP:80 from `client`:`cport` (SYN or ACK).
fn from_client(client: [u8; 4], cport: u16, syn: bool) -> Vec<u8> {
    tcp4(
        GW_MAC, PORT0_MAC, client, VIP, 64, cport, 80, syn, !syn, b"",
    )
}

/// The server's segment back to `client`:`cport` (SYN-ACK or ACK).
fn from_server(client: [u8; 4], cport: u16, syn: bool) -> Vec<u8> {
    tcp4(
        RS2_MAC, PORT1_MAC, RS, client, 64, 8080, cport, syn, true, b"",
    )
}

fn state_of(lab: &Lab, cport: u16) -> &'static str {
    let (_, c) = lab
        .engine
        .table
        .iter()
        .find(|(_, c)| c.cport == cport && !c.is_template())
        .expect("an entry");
    rvs_core::conn::state_name(6, c.state)
}

#[test]
fn a_nat_connection_is_established_by_its_servers_answers() {
    let mut lab = lab(true, 1024);
    let client = [198, 51, 100, 7];
    assert_eq!(
        lab.run(0, &from_client(client, 40000, true)).0,
        Verdict::Forward { port: 1 }
    );
    assert_eq!(state_of(&lab, 40000), "SYN_RECV");
    // The client's ACK before the server answered (what a spoofer sends): no change.
    lab.run(0, &from_client(client, 40000, false));
    assert_eq!(state_of(&lab, 40000), "SYN_RECV");
    lab.run(1, &from_server(client, 40000, true));
    assert_eq!(state_of(&lab, 40000), "SYNACK");
    lab.run(0, &from_client(client, 40000, false));
    assert_eq!(state_of(&lab, 40000), "SYNACK");
    lab.run(1, &from_server(client, 40000, false));
    assert_eq!(state_of(&lab, 40000), "ESTABLISHED");
    // The usual tables: the client's ACK alone establishes it.
    let mut usual = self::lab(false, 1024);
    usual.run(0, &from_client(client, 40000, true));
    usual.run(0, &from_client(client, 40000, false));
    assert_eq!(state_of(&usual, 40000), "ESTABLISHED");
}

/// 64 spoofed sources each send a SYN and an ACK into a 64-entry table: with the usual
/// tables every entry is established and a real client's SYN finds the table full; with
/// secure_tcp they stay embryonic (their share, half the table, full: the oldest evicted
/// as they come), and the real client's SYN takes the oldest one's place.
#[test]
fn spoofed_handshakes_do_not_fill_the_table() {
    for secure in [false, true] {
        let mut lab = lab(secure, 64);
        let capacity = lab.engine.table.capacity();
        // 64 sources; with the usual tables more until the table is full (the table's hash
        // seeds are random: an insert may clash at its probe limit before it is).
        let mut i = 0u16;
        while i < 64 || (!secure && lab.engine.table.len() < capacity && i < 256) {
            let spoofed = [203, 0, (i >> 8) as u8, i as u8];
            lab.run(0, &from_client(spoofed, 1000 + i, true));
            lab.run(0, &from_client(spoofed, 1000 + i, false));
            i += 1;
        }
        let verdict = lab.run(0, &from_client([198, 51, 100, 7], 40000, true)).0;
        if secure {
            assert_eq!(verdict, Verdict::Forward { port: 1 });
            assert_eq!(state_of(&lab, 40000), "SYN_RECV");
            assert_eq!(lab.engine.counters().syn_evictions, 33);
        } else {
            assert_eq!(
                lab.engine.table.len(),
                capacity,
                "the spoofed entries fill the table"
            );
            assert_eq!(verdict, Verdict::Drop(DropReason::TableFull));
        }
    }
}

/// Direct routing sees the client's side only: SYN to SYNACK, its ACK establishes (the
/// kernel's input-only secure table).
#[test]
fn direct_routing_passes_by_synack() {
    let mut lab = lab(true, 1024);
    let dr_vip = [192, 168, 1, 101];
    let seg = |syn| {
        tcp4(
            GW_MAC, PORT0_MAC, CLIENT, dr_vip, 64, 40000, 80, syn, !syn, b"",
        )
    };
    assert_eq!(lab.run(0, &seg(true)).0, Verdict::Forward { port: 1 });
    assert_eq!(state_of(&lab, 40000), "SYNACK");
    lab.run(0, &seg(false));
    assert_eq!(state_of(&lab, 40000), "ESTABLISHED");
}
