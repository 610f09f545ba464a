//! Health checks against real server processes in a network namespace: python's
//! http.server, dnsmasq, socat TCP listeners, an SMTP banner and a SIP OPTIONS responder
//! written for the test, a script, ping. The checkers run from the host side of a veth
//! pair through the keepalived.conf path (`Appliance::load_keepalived`); what they decide
//! shows up in the live configuration (`rvsadm -S` text) and in `show health`.
//! Needs root (namespaces); every wait is bounded.

use rvs_control::appliance::{Appliance, WorkerView};
use rvs_control::director::{Director, Limits};
use rvs_control::keepalived::KeepalivedConf;
use rvs_core::publish::SnapshotCell;
use rvs_core::sched::DestLoad;
use rvs_testkit::netns::Netns;
use rvs_testkit::proc::sh;
use rvs_testkit::wait::wait_for;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOST: &str = "10.213.0.1";
const SRV: &str = "10.213.0.2";

/// The servers' namespace behind one veth (its names and addresses are the process's, so
/// the tests that use it take turns).
struct Lab {
    netns: Netns,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Lab {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl std::ops::DerefMut for Lab {
    fn deref_mut(&mut self) -> &mut Netns {
        &mut self.netns
    }
}

fn lab() -> Lab {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let host_if = format!("rvshc{}", std::process::id() % 100_000);
    Lab {
        netns: Netns::new("rvshc").veth(&host_if, &format!("{HOST}/24"), &format!("{SRV}/24")),
        _turn: turn,
    }
}

const SMTP: &str = r#"python3 -c '
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220-smtp.test ESMTP\r\n220 ready\r\n")
        if self.rfile.readline().upper().startswith(b"HELO"):
            self.wfile.write(b"250 smtp.test\r\n")
        self.rfile.readline()
        self.wfile.write(b"221 bye\r\n")
socketserver.TCPServer.allow_reuse_address = True
socketserver.TCPServer(("0.0.0.0", 2525), H).serve_forever()
'"#;

const HTTPS: &str = r#"python3 -c '
import http.server, ssl
httpd = http.server.HTTPServer(("0.0.0.0", 8443), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
'"#;

const SIP: &str = r#"python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5060))
while True:
    data, peer = s.recvfrom(4096)
    lines = data.decode(errors="replace").split("\r\n")
    if not lines[0].startswith("OPTIONS ") or not any(l.startswith("Route:") for l in lines):
        continue
    keep = [l for l in lines if l.split(":")[0] in ("Via", "From", "To", "Call-ID", "CSeq")]
    s.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(), peer)
'"#;

fn appliance() -> Arc<Appliance> {
    let loads = Arc::new((0..64).map(|_| DestLoad::default()).collect());
    let d = Director::new(
        Limits {
            entries: 32,
            dests: 64,
        },
        loads,
    );
    let cell = Arc::new(SnapshotCell::new(d.snapshot()));
    let workers: Vec<WorkerView> = Vec::new();
    Appliance::new(d, cell, workers, Vec::new(), 1024).shared()
}

fn saved(a: &Appliance) -> String {
    a.ipvsadm(&["-S", "-n"], "").out
}

#[test]
fn checkers_follow_real_servers_with_keepalived_semantics() {
    let mut lab = lab();
    std::fs::write(lab.dir.join("index.html"), "hello from srv\n").unwrap();
    lab.start("http", "python3 -m http.server 8080 --bind 0.0.0.0");
    assert!(sh(&format!(
        "cd {} && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=srv.test 2>/dev/null",
        lab.dir.display()
    )));
    lab.start("https", HTTPS);
    lab.start(
        "dns",
        &format!("dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --port=5353 --listen-address={SRV} --bind-interfaces --txt-record=health.load.balance,server-1"),
    );
    lab.start(
        "tcp9000",
        "socat TCP-LISTEN:9000,fork,reuseaddr SYSTEM:true",
    );
    lab.start("smtp", SMTP);
    lab.start("sip", SIP);
    lab.start("echo", "socat UDP-LISTEN:7777,fork,reuseaddr PIPE");
    lab.wait_port("udp", 7777);
    lab.wait_port("tcp", 8080);
    lab.wait_port("tcp", 8443);
    lab.wait_port("udp", 5353);
    lab.wait_port("tcp", 9000);
    lab.wait_port("tcp", 2525);
    lab.wait_port("udp", 5060);
    let flag = lab.dir.join("misc-ok");
    std::fs::write(&flag, "").unwrap();
    // md5("hello from srv\n")
    let digest = {
        let out = Command::new("md5sum")
            .arg(lab.dir.join("index.html"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let flag_path = flag.display();
    let conf = format!(
        r#"
virtual_server 192.0.2.10 80 {{
    protocol TCP
    lvs_sched rr
    lvs_method NAT
    delay_loop 1
    retry 2
    delay_before_retry 1
    connect_timeout 1
    warmup 0
    real_server {SRV} 8080 {{
        HTTP_GET {{
            http_protocol 1.1
            url {{
                path /index.html
                digest {digest}
                regex "^hello f[a-z]+ SRV"
                regex_options caseless
            }}
            url {{
                path /index.html
                virtualhost www.srv.test
                regex "error"
                regex_no_match
            }}
        }}
    }}
    real_server {SRV} 8443 {{
        virtualhost srv.test
        SSL_GET {{
            enable_sni
            url {{
                path /index.html
                status_code 200
            }}
        }}
    }}
    real_server {SRV} 9000 {{
        weight 2
        inhibit_on_failure
        TCP_CHECK {{ }}
    }}
    real_server {SRV} 2525 {{
        SMTP_CHECK {{ }}
    }}
    real_server {SRV} 25 {{
        MISC_CHECK {{
            misc_path "test -e {flag_path}"
        }}
    }}
}}
virtual_server 192.0.2.10 53 {{
    protocol UDP
    lvs_sched rr
    delay_loop 1
    connect_timeout 1
    retry 0
    warmup 0
    real_server {SRV} 53 {{
        DNS_CHECK {{
            connect_port 5353
            type TXT
            name health.load.balance.
        }}
    }}
    real_server {SRV} 5060 {{
        SIP_CHECK {{ }}
        UDP_CHECK {{
            connect_port 7777
            payload 72767321
            require_reply 72767321
        }}
        PING_CHECK {{ }}
    }}
}}
virtual_server 192.0.2.11 80 {{
    protocol TCP
    delay_loop 1
    connect_timeout 1
    retry 0
    warmup 0
    quorum 3
    sorry_server {SRV} 9999
    real_server {SRV} 9000 {{
        weight 2
        TCP_CHECK {{ }}
    }}
    real_server {SRV} 9001 {{
        TCP_CHECK {{ }}
    }}
}}
virtual_server 192.0.2.12 80 {{
    protocol TCP
    alpha
    delay_loop 1
    connect_timeout 1
    warmup 0
    real_server 10.213.0.99 80 {{
        PING_CHECK {{ }}
    }}
    real_server {SRV} 9000 {{
        TCP_CHECK {{ }}
    }}
}}
"#
    );
    let path = lab.dir.join("keepalived.conf");
    std::fs::write(&path, conf).unwrap();
    let a = appliance();
    // Through the console's `load`, as an operator would.
    let r = a.console(&format!("load {}", path.display()));
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(r.err.is_empty(), "no warnings: {}", r.err);

    // All up: every server listed; quorum 3 not met by 9000 (2) alone -> the sorry server;
    // alpha: only what passed its check.
    let want_up = format!(
        "-A -t 192.0.2.10:80 -s rr
-a -t 192.0.2.10:80 -r {SRV}:25 -m -w 1
-a -t 192.0.2.10:80 -r {SRV}:2525 -m -w 1
-a -t 192.0.2.10:80 -r {SRV}:8080 -m -w 1
-a -t 192.0.2.10:80 -r {SRV}:8443 -m -w 1
-a -t 192.0.2.10:80 -r {SRV}:9000 -m -w 2
-A -t 192.0.2.11:80 -s wlc
-a -t 192.0.2.11:80 -r {SRV}:9999 -m -w 1
-A -t 192.0.2.12:80 -s wlc
-a -t 192.0.2.12:80 -r {SRV}:9000 -m -w 1
-A -u 192.0.2.10:53 -s rr
-a -u 192.0.2.10:53 -r {SRV}:53 -m -w 1
-a -u 192.0.2.10:53 -r {SRV}:5060 -m -w 1
"
    );
    let mut last = String::new();
    wait_for("the first verdicts", Duration::from_secs(20), || {
        last = saved(&a);
        last == want_up
    });
    let health = a.console("show health").out;
    for k in [
        "HTTP_GET",
        "TCP_CHECK",
        "SMTP_CHECK",
        "MISC_CHECK",
        "DNS_CHECK",
        "SIP_CHECK",
        "UDP_CHECK",
        "PING_CHECK",
    ] {
        assert!(health.contains(k), "{health}");
    }
    assert!(
        health.contains("10.213.0.99:80") && health.contains("DOWN"),
        "{health}"
    );

    // HTTP server stops: retry 2 with delay_before_retry 1 -> down after 3 failures,
    // no sooner than 2 s.
    lab.stop("http");
    let took = wait_for("the HTTP server to leave", Duration::from_secs(15), || {
        !saved(&a).contains(":8080 ")
    });
    assert!(
        took >= Duration::from_millis(1900),
        "went down after {took:?}: too early"
    );
    // The TCP listener stops: inhibit_on_failure keeps it at weight 0; the quorum service
    // loses it too but already serves the sorry server.
    lab.stop("tcp9000");
    wait_for("weight 0 for 9000", Duration::from_secs(15), || {
        saved(&a).contains(&format!("-a -t 192.0.2.10:80 -r {SRV}:9000 -m -w 0"))
    });
    // The script fails; the SMTP banner goes; DNS stops (no answer in time); the UDP echo
    // stops (its reply never comes).
    std::fs::remove_file(&flag).unwrap();
    lab.stop("smtp");
    lab.stop("dns");
    lab.stop("echo");
    let gone = |s: &str| {
        [25, 2525, 53, 5060]
            .iter()
            .all(|p| !s.contains(&format!("-r {SRV}:{p} ")))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !gone(&saved(&a)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gone(&saved(&a)),
        "{}\n{}",
        saved(&a),
        a.console("show health").out
    );

    // Everything back, plus a second listener for the quorum service: 2 + 1 = 3 reaches
    // quorum, the sorry server leaves.
    std::fs::write(&flag, "").unwrap();
    lab.start("http", "python3 -m http.server 8080 --bind 0.0.0.0");
    lab.start(
        "tcp9000",
        "socat TCP-LISTEN:9000,fork,reuseaddr SYSTEM:true",
    );
    lab.start(
        "tcp9001",
        "socat TCP-LISTEN:9001,fork,reuseaddr SYSTEM:true",
    );
    lab.start("smtp", SMTP);
    lab.start("echo", "socat UDP-LISTEN:7777,fork,reuseaddr PIPE");
    lab.start(
        "dns",
        &format!("dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --port=5353 --listen-address={SRV} --bind-interfaces --txt-record=health.load.balance,server-1"),
    );
    let want_back = want_up.replace(
        &format!("-a -t 192.0.2.11:80 -r {SRV}:9999 -m -w 1\n"),
        &format!("-a -t 192.0.2.11:80 -r {SRV}:9000 -m -w 2\n-a -t 192.0.2.11:80 -r {SRV}:9001 -m -w 1\n"),
    );
    wait_for(
        "every server back and the quorum met",
        Duration::from_secs(20),
        || {
            last = saved(&a);
            last == want_back
        },
    );
    let health = a.console("show health").out;
    assert!(
        health.contains("change(s) applied by the checkers"),
        "{health}"
    );
    a.stop_health();
}

const MTLS: &str = r#"python3 -c '
import http.server, ssl
httpd = http.server.HTTPServer(("0.0.0.0", 8444), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations("ca.pem")
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
'"#;

/// The top-level SSL block as keepalived uses it: SSL_GET presents its certificate
/// (version 3 or 1) to a server that requires one (without the block that server is
/// down), its key read plain or opened with the block's `password` (PKCS#8 or OpenSSL's
/// traditional encryption); a key of another pair, an encrypted key without its password
/// or with a wrong one, or a missing file refuses the configuration, naming file and line.
#[test]
fn ssl_get_presents_the_ssl_block_s_client_certificate() {
    let mut lab = lab();
    let dir = lab.dir.display().to_string();
    assert!(sh(&format!(
        "cd {dir} && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=srv.test 2>/dev/null \
         && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca.test 2>/dev/null \
         && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=lb.test 2>/dev/null \
         && printf 'basicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' >client.ext \
         && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile client.ext -out client.pem -days 2 2>/dev/null \
         && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client-v1.pem -days 2 2>/dev/null \
         && openssl pkey -in client.key -aes256 -passout pass:secret -out client-enc.key \
         && openssl rsa -in client.key -aes128 -traditional -passout pass:secret -out client-trad.key 2>/dev/null"
    )));
    std::fs::write(lab.dir.join("index.html"), "mtls\n").unwrap();
    lab.start("mtls", MTLS);
    lab.wait_port("tcp", 8444);
    let service = format!(
        "virtual_server 192.0.2.14 443 {{\n protocol TCP\n delay_loop 1\n retry 0\n connect_timeout 1\n warmup 0\n ALPHA\n real_server {SRV} 8444 {{\n  SSL_GET {{\n   url {{\n    path /index.html\n    status_code 200\n   }}\n  }}\n }}\n}}\n"
    );
    let present = format!("-a -t 192.0.2.14:443 -r {SRV}:8444 ");
    let run = |ssl: &str, alpha: bool| {
        let path = lab.dir.join("ssl.conf");
        let text = format!(
            "{ssl}{}",
            service.replace("ALPHA", if alpha { "alpha" } else { "" })
        );
        std::fs::write(&path, text).unwrap();
        let a = appliance();
        let r = a.console(&format!("load {}", path.display()));
        assert_eq!(r.status, 0, "{}", r.err);
        a
    };
    // No certificate: the handshake fails, the server leaves.
    let a = run("", false);
    wait_for(
        "the server down without a certificate",
        Duration::from_secs(15),
        || !saved(&a).contains(&present),
    );
    a.stop_health();
    // With the SSL block: the server (alpha: down at first) comes up.
    let block = format!(
        "SSL {{\n ca {dir}/ca.pem\n certificate {dir}/client.pem\n key {dir}/client.key\n}}\n"
    );
    // Each SSL block below brings the server (alpha: down at first) up.
    let comes_up = |ssl: &str, with: &str| {
        let a = run(ssl, true);
        wait_for(
            &format!("the server up with {with}"),
            Duration::from_secs(15),
            || saved(&a).contains(&present),
        );
        a.stop_health();
    };
    comes_up(&block, "the certificate");
    // An X.509 version 1 certificate (no extensions) is presented as OpenSSL presents it.
    comes_up(
        &block.replace("client.pem", "client-v1.pem"),
        "a version 1 certificate",
    );
    // The key encrypted (PKCS#8, AES-256), opened with the block's password.
    let encrypted = block.replace("client.key\n", "client-enc.key\n password secret\n");
    comes_up(&encrypted, "the encrypted key");
    let refused =
        |ssl: String| KeepalivedConf::parse("s.conf", &format!("{ssl}{service}")).unwrap_err();
    // OpenSSL's traditional encryption (AES-128-CBC) opens too.
    let traditional = encrypted.replace("client-enc.key", "client-trad.key");
    let k = KeepalivedConf::parse("s.conf", &format!("{traditional}{service}")).unwrap();
    // Kept opened: the checks do not decrypt it again.
    let client = k.ssl_client.unwrap();
    assert!(client.password.is_none());
    assert!(
        String::from_utf8_lossy(&client.key).starts_with("-----BEGIN RSA PRIVATE KEY-----\nMII")
    );
    let e = refused(block.replace("client.key", "client-enc.key"));
    assert_eq!(
        e,
        "s.conf:3: SSL certificate and key: an encrypted key needs the SSL block's password"
    );
    for wrong in [&encrypted, &traditional] {
        let e = refused(wrong.replace("password secret", "password guess"));
        assert_eq!(
            e,
            "s.conf:3: SSL certificate and key: the SSL block's password does not open the encrypted key"
        );
    }
    // A key of another pair (the server's) is refused, as OpenSSL refuses it.
    let e = refused(block.replace("client.key", "key.pem"));
    assert_eq!(
        e,
        "s.conf:3: SSL certificate and key: the key is not the certificate's (their public keys differ)"
    );
    let e = refused(block.replace("ca.pem", "gone.pem"));
    assert!(
        e.starts_with("s.conf:2: SSL ca ") && e.contains("gone.pem"),
        "{e}"
    );
}

/// UDP_CHECK's reply test against an echo server, as keepalived's check_udp.c: wildcard
/// nibbles match anything, a reply longer than max_reply_length fails, one that differs
/// fails, and one shorter than the pattern passes if it matches as far as it goes.
#[test]
fn udp_check_replies_as_keepalived_tests_them() {
    let mut lab = lab();
    // One socket answers every checker (socat's forks lose datagrams of other peers).
    lab.start(
        "echo",
        "python3 -c 'import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind((\"0.0.0.0\", 7778))\nwhile True:\n    d, p = s.recvfrom(4096)\n    s.sendto(d, p)\n'",
    );
    lab.wait_port("udp", 7778);
    let check = |body: &str| format!("UDP_CHECK {{\n connect_port 7778\n {body}\n }}");
    let conf = format!(
        "virtual_server 192.0.2.13 53 {{\n protocol UDP\n delay_loop 1\n retry 0\n connect_timeout 1\n warmup 0\n\
         real_server {SRV} 1001 {{ {} }}\n real_server {SRV} 1002 {{ {} }}\n real_server {SRV} 1003 {{ {} }}\n real_server {SRV} 1004 {{ {} }}\n}}\n",
        check("payload 72 76 73 21\n require_reply 72 7X 7x"),
        check("payload 72767321\n require_reply 72 76\n max_reply_length 3"),
        check("payload 72767321\n require_reply 72 77"),
        check("payload 7276\n require_reply 72767321"),
    );
    let path = lab.dir.join("udp.conf");
    std::fs::write(&path, conf).unwrap();
    let a = appliance();
    let r = a.console(&format!("load {}", path.display()));
    assert_eq!(r.status, 0, "{}", r.err);
    let want = format!(
        "-A -u 192.0.2.13:53 -s wlc\n-a -u 192.0.2.13:53 -r {SRV}:1001 -m -w 1\n-a -u 192.0.2.13:53 -r {SRV}:1004 -m -w 1\n"
    );
    let mut last = String::new();
    wait_for("the UDP verdicts", Duration::from_secs(15), || {
        last = saved(&a);
        last == want
    });
    a.stop_health();
}

#[test]
fn malformed_keepalived_conf_is_refused_and_changes_nothing() {
    let a = appliance();
    assert_eq!(a.ipvsadm(&["-A", "-t", "192.0.2.1:80"], "").status, 0);
    let before = saved(&a);
    let dir = std::env::temp_dir().join(format!("rvs-health-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.conf");
    std::fs::write(
        &path,
        "virtual_server 192.0.2.9 80 {\n    lvs_sched rr\n    real_server 10.0.0.300 80 {\n    }\n}\n",
    )
    .unwrap();
    let r = a.console(&format!("load {}", path.display()));
    assert_eq!(r.status, 2);
    assert!(
        r.err.contains("bad.conf:3:") && r.err.contains("nothing applied"),
        "{}",
        r.err
    );
    assert_eq!(saved(&a), before);
    // Valid syntax, but a service that already exists: refused as a whole.
    std::fs::write(
        &path,
        "virtual_server 192.0.2.1 80 {\n    protocol TCP\n    real_server 10.0.0.3 80 {\n    }\n}\n",
    )
    .unwrap();
    let r = a.console(&format!("load {}", path.display()));
    assert_eq!(r.status, 1);
    assert!(r.err.contains("Service already exists"), "{}", r.err);
    assert_eq!(saved(&a), before);
    let _ = KeepalivedConf::parse("x", "");
    let _ = std::fs::remove_dir_all(&dir);
}

/// omega: on shutdown, live servers' notify_down and the quorum_down script run.
#[test]
fn omega_runs_the_down_scripts_at_shutdown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("rvs-omega-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (down, quorum) = (dir.join("down"), dir.join("quorum"));
    let conf = KeepalivedConf::parse(
        "omega.conf",
        &format!(
            "virtual_server 192.0.2.70 80 {{\n protocol TCP\n omega\n delay_loop 1\n warmup 0\n quorum_down \"touch {}\"\n real_server 127.0.0.1 {port} {{\n  notify_down \"touch {}\"\n  TCP_CHECK {{ }}\n }}\n}}\n",
            quorum.display(),
            down.display()
        ),
    )
    .unwrap();
    let a = appliance();
    a.load_keepalived(&conf).unwrap();
    wait_for("a first check", Duration::from_secs(10), || {
        a.console("show health").out.contains("UP")
    });
    assert!(!down.exists());
    a.stop_health();
    wait_for("the omega scripts", Duration::from_secs(10), || {
        down.exists() && quorum.exists()
    });
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first evaluation (alpha servers down, quorum at start, the sorry server in) and the
/// checkers' rows are in place when the load returns: nothing reads the table without them.
#[test]
fn the_table_holds_the_first_evaluation_when_the_load_returns() {
    let conf = KeepalivedConf::parse(
        "start.conf",
        "virtual_server 192.0.2.71 80 {\n protocol TCP\n lb_kind NAT\n delay_loop 60\n quorum 4\n sorry_server 10.9.0.71 80\n sorry_server_inhibit\n real_server 10.71.0.1 80 {\n  weight 3\n  alpha\n  inhibit_on_failure\n  MISC_CHECK { misc_path /bin/false }\n }\n real_server 10.71.0.2 80 {\n  inhibit_on_failure\n }\n real_server 10.71.0.3 80 {\n }\n}\n",
    )
    .unwrap();
    let a = appliance();
    a.load_keepalived(&conf).unwrap();
    assert_eq!(
        saved(&a),
        "-A -t 192.0.2.71:80 -s wlc\n\
         -a -t 192.0.2.71:80 -r 10.9.0.71:80 -m -w 1\n\
         -a -t 192.0.2.71:80 -r 10.71.0.1:80 -m -w 0\n\
         -a -t 192.0.2.71:80 -r 10.71.0.2:80 -m -w 0\n"
    );
    // So is each checker's row, down for the alpha server.
    let health = a.console("show health").out;
    let row = health
        .lines()
        .find(|l| l.contains("10.71.0.1:80"))
        .unwrap_or_else(|| panic!("no row for the checker:\n{health}"));
    assert!(row.contains("MISC") && row.contains("DOWN"), "{row}");
    a.stop_health();
}
