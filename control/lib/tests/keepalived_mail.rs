//! keepalived's mail alerts compared with rvs's. Debian's keepalived 2.2.7 runs a VRRP
//! instance in a namespace with global_defs naming a mail server on the host's side of its
//! link (with keepalived's defaults for router_id, smtp_helo_name and
//! notification_email_from) and mails each state it enters; rvs's mailer, on the same
//! file, mails the same states: each conversation must be keepalived's, byte for byte but
//! for the Date header's value. Needs root.

use rvs_control::keepalived::KeepalivedConf;
use rvs_control::mail::Mailer;
use rvs_testkit::netns::Netns;
use rvs_testkit::smtp::{subject, Sink};
use std::time::Duration;

fn conf(server: &std::net::SocketAddr) -> String {
    format!(
        "global_defs {{
    notification_email {{
        ops@example.com
        noc@example.com
    }}
    smtp_server {} {}
    smtp_alert
}}
vrrp_instance VI_MAIL {{
    interface eth0
    virtual_router_id 77
    priority 100
    advert_int 1
    virtual_ipaddress {{
        10.251.77.100/24
    }}
}}
",
        server.ip(),
        server.port()
    )
}

/// A conversation with its Date header's value taken out (it is the clock's).
fn undated(t: &str) -> String {
    t.split("\r\n")
        .map(|l| {
            if l.starts_with("Date: ") {
                "Date: -"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn vrrp_alerts_as_keepalived_mails_them() {
    let mut lab = Netns::new("rvsmail").veth("rvsmail0", "10.251.77.1/24", "10.251.77.2/24");
    let sink = Sink::start("10.251.77.1:0");
    lab.start_keepalived(&conf(&sink.addr));
    // BACKUP at the start, MASTER three adverts later (no peer).
    let theirs = sink.wait_for(2, Duration::from_secs(15));
    assert_eq!(theirs.len(), 2, "{theirs:#?}\n{}", lab.log("keepalived"));
    let said: Vec<&str> = theirs.iter().map(|m| subject(m)).collect();
    let host = rvs_control::mail::local_name().unwrap();
    assert_eq!(
        said,
        [
            format!("[{host}] VRRP Instance VI_MAIL - Entering BACKUP state"),
            format!("[{host}] VRRP Instance VI_MAIL - Entering MASTER state"),
        ],
        "{}",
        lab.log("keepalived")
    );

    // rvs's reading of the same file, mailing the same states, and the stop's (keepalived
    // 2.2.7 opens that conversation and exits before it writes a word; rvs waits for it).
    let ours_sink = Sink::start("127.0.0.1:0");
    let k = KeepalivedConf::parse("keepalived.conf", &conf(&ours_sink.addr)).unwrap();
    assert!(k.warnings.is_empty(), "{:#?}", k.warnings);
    let instance = &k.vrrp_conf.instances[0];
    let mailer = Mailer::start(&k.vrrp_conf.mail);
    for state in ["BACKUP", "MASTER", "STOP"] {
        mailer.vrrp_state(false, instance.smtp_alert, &instance.name, state);
    }
    mailer.flush(Duration::from_secs(10));
    let ours: Vec<String> = ours_sink
        .wait_for(3, Duration::from_secs(10))
        .iter()
        .map(|m| undated(m))
        .collect();
    let theirs: Vec<String> = theirs.iter().map(|m| undated(m)).collect();
    assert_eq!(
        ours[..2],
        theirs[..],
        "rvs's conversations (left), keepalived's (right)"
    );
    // The stop's: keepalived's subject and body (its vrrp_notify.c) in the same frame.
    let stop = theirs[1]
        .replace("Entering MASTER state", "Stopping")
        .replace("is now owning VRRP VIPs", "stopping");
    assert_eq!(ours[2], stop);
}
