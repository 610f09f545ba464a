//! A master set to the old sync format (`sysctl -w net.ipv4.vs.sync_version=0`, what
//! kernels before 2.6.39 read): a master on one end of a veth pair, a backup on the other,
//! IPv4 entries crossing the group 224.0.0.81 as version-0 messages (no timeout carried),
//! what the format cannot carry left out. Needs root (it makes the veth pair); skips saying
//! so otherwise, and is required under CI.

use rvs_control::sync::{DaemonSettings, Role, SyncDaemons};
use rvs_control::vrrp::Link;
use rvs_core::sync::{ipvs_flags, SyncChannel, SyncConn};
use rvs_testkit::netns::LinkGuard;
use rvs_testkit::proc::sh;
use rvs_testkit::wait::wait_for;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

fn link(twin: &str, addr: [u8; 4]) -> Link {
    Link {
        name: twin.to_string(),
        port: 0,
        twin: twin.to_string(),
        mac: [2, 0, 0, 0, 0, 1],
        addr: Some(Ipv4Addr::from(addr)),
        router: false,
    }
}

fn v4_conn(cport: u16) -> SyncConn {
    let a = |last: u8| {
        let mut x = [0u8; 16];
        x[10] = 0xff;
        x[11] = 0xff;
        x[12..].copy_from_slice(&[192, 0, 2, last]);
        x
    };
    SyncConn {
        proto: 6,
        state: 1,
        cport,
        vport: 80,
        dport: 80,
        caddr: a(7),
        vaddr: a(100),
        daddr: a(11),
        timeout: 900,
        ..SyncConn::default()
    }
}

#[test]
fn version_0_entries_cross_an_ipv4_group() {
    if !sh("ip link add rvssy0a type veth peer name rvssy0b") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: the veth pair must be made"
        );
        eprintln!("skipped: making a veth pair needs root");
        return;
    }
    let _guard = LinkGuard("rvssy0a".into());
    assert!(sh(
        "ip addr add 10.231.0.1/24 dev rvssy0a && ip addr add 10.231.0.2/24 dev rvssy0b \
         && ip link set rvssy0a up && ip link set rvssy0b up"
    ));
    // Both ends are this namespace's: the backup's end takes a datagram from the master's
    // (local) address.
    assert!(sh(
        "sysctl -qw net.ipv4.conf.rvssy0b.accept_local=1 net.ipv4.conf.rvssy0b.rp_filter=0"
    ));
    let master_ch = Arc::new(SyncChannel::default());
    let backup_ch = Arc::new(SyncChannel::default());
    let master = SyncDaemons::new(
        vec![master_ch.clone()],
        vec![link("rvssy0a", [10, 231, 0, 1])],
    );
    let backup = SyncDaemons::new(
        vec![backup_ch.clone()],
        vec![link("rvssy0b", [10, 231, 0, 2])],
    );
    assert_eq!(master.version(), 1, "version 1 unless set");
    master.set_version(0);
    backup
        .start(Role::Backup, DaemonSettings::new("rvssy0b", 9))
        .unwrap();
    master
        .start(Role::Master, DaemonSettings::new("rvssy0a", 9))
        .unwrap();
    for p in 0..10 {
        master_ch.outbox.push(v4_conn(40000 + p)).unwrap();
    }
    let v6 = SyncConn {
        v6: true,
        ..v4_conn(1)
    };
    let one_packet = SyncConn {
        flags: ipvs_flags::ONE_PACKET,
        ..v4_conn(2)
    };
    master_ch.outbox.push(v6).unwrap();
    master_ch.outbox.push(one_packet).unwrap();
    wait_for("ten entries at the backup", Duration::from_secs(5), || {
        backup_ch.inbox.len() == 10
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        backup_ch.inbox.len(),
        10,
        "IPv6 and one-packet entries left out"
    );
    let mut got = Vec::new();
    while let Some(c) = backup_ch.inbox.pop() {
        got.push(c);
    }
    got.sort_by_key(|c| c.cport);
    let want: Vec<SyncConn> = (0..10)
        .map(|p| SyncConn {
            timeout: 0,
            ..v4_conn(40000 + p)
        })
        .collect();
    assert_eq!(got, want, "version 0 carries no timeout");
    assert_eq!(master.counters.sent_conns.load(Relaxed), 10);
    master.stop_all();
    backup.stop_all();
}
