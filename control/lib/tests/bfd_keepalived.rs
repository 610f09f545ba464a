//! rvs's BFD against Debian's keepalived 2.2.7 as the neighbour: keepalived runs its BFD
//! and VRRP processes in a namespace joined to the host by a veth, its VRRP instance
//! tracking the IPv4 session (`track_bfd`, weight 0: FAULT while the session is down); rvs's
//! BFD runtime runs on the host side, an IPv6 session beside. The sessions come up at the
//! fast rates asked for; keepalived's BFD stopped (SIGSTOP) is rvs's expiry after the
//! detection time, and back they come up again; rvs's end is keepalived's expiry (its VRRP
//! instance in FAULT). Needs root.

use rvs_control::bfd::{self, BfdInstance, BfdRuntime, BfdState, Reader};
use rvs_testkit::netns::Netns;
use rvs_testkit::wait::wait_for;
use std::process::Command;
use std::time::{Duration, Instant};

fn conf(dir: &str) -> String {
    format!(
        "global_defs {{
    script_user root
}}
bfd_instance RVS {{
    neighbor_ip 10.78.0.1
    source_ip 10.78.0.2
    min_rx 20
    min_tx 20
    multiplier 3
}}
bfd_instance RVS6 {{
    neighbor_ip fd00:78::1
    source_ip fd00:78::2
    min_rx 30
    min_tx 30
}}
vrrp_instance VI {{
    interface eth0
    virtual_router_id 78
    priority 100
    advert_int 1
    virtual_ipaddress {{
        10.78.0.100/24
    }}
    track_bfd {{
        RVS
    }}
    notify {dir}/notify.sh
}}
"
    )
}

fn state_file(lab: &Netns) -> String {
    std::fs::read_to_string(lab.dir.join("state")).unwrap_or_default()
}

fn row(name: &str) -> bfd::BfdStatus {
    bfd::board()
        .rows()
        .into_iter()
        .find(|r| r.name == name)
        .expect("the session")
}

#[test]
fn a_session_with_keepalived_comes_up_expires_and_recovers() {
    let mut lab = Netns::new("rvsbfd").veth("rvsbfd0", "10.78.0.1/24", "10.78.0.2/24");
    let dir = lab.dir.display().to_string();
    let notify = lab.dir.join("notify.sh");
    std::fs::write(&notify, format!("#!/bin/sh\necho \"$3\" > {dir}/state\n")).unwrap();
    assert!(Command::new("chmod")
        .arg("755")
        .arg(&notify)
        .status()
        .unwrap()
        .success());
    // IPv6 beside: hop limit 64 both ways (keepalived's default), checked on receipt.
    assert!(lab.exec("ip addr add fd00:78::2/64 dev eth0 nodad"));
    assert!(Command::new("ip")
        .args(["addr", "add", "fd00:78::1/64", "dev", "rvsbfd0", "nodad"])
        .status()
        .unwrap()
        .success());

    let rvs = BfdInstance {
        source: Some("10.78.0.1".parse().unwrap()),
        min_rx: 20_000,
        min_tx: 20_000,
        multiplier: 3,
        ..BfdInstance::new("K", "10.78.0.2".parse().unwrap())
    };
    let rvs6 = BfdInstance {
        source: Some("fd00:78::1".parse().unwrap()),
        min_rx: 30_000,
        min_tx: 30_000,
        ..BfdInstance::new("K6", "fd00:78::2".parse().unwrap())
    };
    let runtime = BfdRuntime::start(vec![rvs, rvs6], bfd::board()).expect("port 3784 on the host");
    lab.start_keepalived(&conf(&dir));
    wait_for("the session Up", Duration::from_secs(15), || {
        bfd::board().is_up("K", Reader::Vrrp)
    });
    wait_for("the fast rate", Duration::from_secs(5), || {
        row("K").tx_interval == 20_000
    });
    let r = row("K");
    assert_eq!((r.local, r.remote), (BfdState::Up, BfdState::Up));
    assert_eq!(
        r.detect_time, 60_000,
        "keepalived's multiplier 3 times 20 ms"
    );
    assert_ne!(r.remote_discr, 0);
    wait_for(
        "the IPv6 session Up at its rate",
        Duration::from_secs(10),
        || {
            let r = row("K6");
            r.local == BfdState::Up && r.tx_interval == 30_000
        },
    );
    assert_eq!(
        row("K6").detect_time,
        5 * 30_000,
        "keepalived's default multiplier 5"
    );
    wait_for(
        "keepalived's instance out of FAULT",
        Duration::from_secs(10),
        || state_file(&lab).trim() == "MASTER",
    );

    // keepalived's BFD process stopped: rvs's session expires in its detection time.
    let bfd_pid = std::fs::read_to_string(lab.dir.join("k-bfd.pid")).unwrap();
    let bfd_pid = bfd_pid.trim();
    let stopped = Instant::now();
    assert!(Command::new("kill")
        .args(["-STOP", bfd_pid])
        .status()
        .unwrap()
        .success());
    wait_for("rvs's expiry", Duration::from_secs(2), || {
        !bfd::board().is_up("K", Reader::Vrrp)
    });
    let took = stopped.elapsed();
    let r = row("K");
    assert_eq!(
        (r.local, r.local_diag),
        (BfdState::Down, 1),
        "Control Detection Time Expired"
    );
    assert!(took < Duration::from_millis(500), "expired after {took:?}");
    wait_for("the IPv6 session's expiry", Duration::from_secs(2), || {
        row("K6").local == BfdState::Down
    });
    assert!(Command::new("kill")
        .args(["-CONT", bfd_pid])
        .status()
        .unwrap()
        .success());
    wait_for("the session Up again", Duration::from_secs(15), || {
        bfd::board().is_up("K", Reader::Vrrp)
    });
    assert_eq!(row("K").ups, 2);
    // keepalived's stop was both sessions'.
    wait_for("the IPv6 session Up again", Duration::from_secs(15), || {
        let r = row("K6");
        r.local == BfdState::Up && r.ups == 2
    });

    // rvs's end: keepalived's session expires and its VRRP instance faults.
    runtime.shutdown();
    wait_for(
        "keepalived's instance in FAULT",
        Duration::from_secs(5),
        || state_file(&lab).trim() == "FAULT",
    );
    eprintln!("rvs noticed keepalived's stop in {took:?}");
}
