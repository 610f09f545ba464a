//! Connection sync over an IPv6 group (`--mcast-group ff02::...`): a master on one end of a
//! veth pair, a backup on the other, entries crossing by link-scope multicast. Needs root
//! (it makes the veth pair); skips saying so otherwise, and is required under CI.

use rvs_control::sync::{DaemonSettings, Role, SyncDaemons};
use rvs_control::vrrp::Link;
use rvs_core::sync::{SyncChannel, SyncConn};
use rvs_testkit::netns::LinkGuard;
use rvs_testkit::proc::sh;
use rvs_testkit::wait::wait_for;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

fn link(twin: &str) -> Link {
    Link {
        name: twin.to_string(),
        port: 0,
        twin: twin.to_string(),
        mac: [2, 0, 0, 0, 0, 1],
        addr: None,
        router: false,
    }
}

fn v6_conn(cport: u16) -> SyncConn {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = 7;
    SyncConn {
        proto: 6,
        v6: true,
        cport,
        vport: 80,
        dport: 80,
        caddr: a,
        vaddr: a,
        daddr: a,
        timeout: 900,
        ..SyncConn::default()
    }
}

#[test]
fn entries_cross_an_ipv6_sync_group() {
    if !sh("ip link add rvssy6a type veth peer name rvssy6b") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root: the veth pair must be made"
        );
        eprintln!("skipped: making a veth pair needs root");
        return;
    }
    let _guard = LinkGuard("rvssy6a".into());
    for end in ["rvssy6a", "rvssy6b"] {
        // No duplicate address detection: the link-local address is usable at once.
        assert!(sh(&format!(
            "sysctl -qw net.ipv6.conf.{end}.disable_ipv6=0 net.ipv6.conf.{end}.accept_dad=0 && ip link set {end} up"
        )));
    }
    wait_for("link-local addresses", Duration::from_secs(5), || {
        ["rvssy6a", "rvssy6b"].iter().all(|end| {
            rvs_testkit::proc::sh_out(&format!("ip -6 addr show dev {end} scope link"))
                .contains("fe80::")
        })
    });
    let master_ch = Arc::new(SyncChannel::default());
    let backup_ch = Arc::new(SyncChannel::default());
    let master = SyncDaemons::new(vec![master_ch.clone()], vec![link("rvssy6a")]);
    let backup = SyncDaemons::new(vec![backup_ch.clone()], vec![link("rvssy6b")]);
    let mut settings = DaemonSettings::new("rvssy6b", 9);
    settings.group = Some("ff02::8848".parse().unwrap());
    settings.port = Some(8848);
    backup.start(Role::Backup, settings.clone()).unwrap();
    settings.interface = "rvssy6a".into();
    master.start(Role::Master, settings).unwrap();
    assert!(master
        .listing()
        .contains("group=ff02::8848, port=8848, ttl=1"));
    assert!(
        master.listing().contains("maxlen=1452"),
        "{}",
        master.listing()
    );
    for p in 0..10 {
        master_ch.outbox.push(v6_conn(40000 + p)).unwrap();
    }
    wait_for("ten entries at the backup", Duration::from_secs(5), || {
        backup_ch.inbox.len() == 10
    });
    let got = backup_ch.inbox.pop().unwrap();
    assert_eq!((got.v6, got.caddr, got.vport), (true, v6_conn(0).caddr, 80));
    assert!(backup.counters.received_messages.load(Relaxed) >= 1);
    master.stop_all();
    backup.stop_all();
}
