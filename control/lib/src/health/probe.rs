//! One probe of each checker kind, async (tokio), bounded by the checker's connect_timeout
//! (MISC_CHECK: misc_timeout, else delay_loop).

use super::state::Outcome;
use crate::keepalived::{CheckKind, Checker, HttpProtocol, TlsClient, UrlCheck};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::timeout;

fn down(what: impl Into<String>) -> Outcome {
    Outcome::Down(what.into())
}

async fn connect(c: &Checker) -> io::Result<TcpStream> {
    let sock = if c.target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(b) = c.bindto {
        sock.bind(SocketAddr::new(b, 0))?;
    }
    sock.connect(c.target).await
}

async fn udp(c: &Checker) -> io::Result<UdpSocket> {
    let local = match (c.bindto, c.target) {
        (Some(b), _) => SocketAddr::new(b, 0),
        (None, SocketAddr::V4(_)) => "0.0.0.0:0".parse().map_err(io::Error::other)?,
        (None, SocketAddr::V6(_)) => "[::]:0".parse().map_err(io::Error::other)?,
    };
    let s = UdpSocket::bind(local).await?;
    s.connect(c.target).await?;
    Ok(s)
}

/// Runs one probe.
pub async fn probe(c: &Checker) -> Outcome {
    let limit = match &c.kind {
        CheckKind::Misc { timeout: t, .. } => t.unwrap_or(c.delay_loop),
        _ => c.connect_timeout,
    };
    match timeout(limit, run(c)).await {
        Ok(o) => o,
        Err(_) => down(format!("timed out after {limit:?}")),
    }
}

async fn run(c: &Checker) -> Outcome {
    let r = match &c.kind {
        CheckKind::Tcp => connect(c).await.map(|_| Outcome::Up),
        CheckKind::Http {
            ssl,
            urls,
            virtualhost,
            protocol,
            sni,
            client,
        } => {
            let how = HttpHow {
                vhost: virtualhost.as_deref(),
                ssl: *ssl,
                protocol: *protocol,
                sni: *sni,
                client: client.as_ref(),
            };
            http(c, urls, &how).await
        }
        CheckKind::Dns { qtype, name } => dns(c, qtype, name).await,
        CheckKind::Udp {
            payload,
            require_reply,
        } => udp_probe(c, payload, require_reply.as_ref()).await,
        CheckKind::Smtp { helo_name } => smtp(c, helo_name).await,
        CheckKind::Sip { tcp } => sip(c, *tcp).await,
        CheckKind::Misc {
            path,
            dynamic,
            uid,
            gid,
            ..
        } => misc(path, *dynamic, (*uid, *gid)).await,
        CheckKind::Ping => ping(c).await,
        CheckKind::Bfd { name } => Ok(
            if crate::bfd::board().is_up(name, crate::bfd::Reader::Checker) {
                Outcome::Up
            } else {
                down(format!("BFD instance {name} is down"))
            },
        ),
        CheckKind::File {
            path,
            weight,
            reverse,
            base,
            init,
        } => Ok(file_status(
            &read_track_file(path, *init),
            *weight,
            *reverse,
            *base,
        )),
    };
    r.unwrap_or_else(|e| down(e.to_string()))
}

/// Sends an HTTP/1.0 request over `s` and reads the whole answer (at most 4 MB).
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> io::Result<Vec<u8>> {
    s.write_all(req).await?;
    let mut resp = Vec::new();
    let r = (&mut s).take(4 << 20).read_to_end(&mut resp).await;
    // TLS servers often close without close_notify: what arrived counts.
    match r {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !resp.is_empty() => {}
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    Ok(resp)
}

/// keepalived's SSL_GET does not verify the server's certificate: it checks the service,
/// not its identity. This verifier accepts any certificate and checks signatures only.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector(client: Option<&TlsClient>) -> io::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())));
    let config = match client {
        Some(c) => {
            builder.with_client_cert_resolver(c.resolver(&provider).map_err(io::Error::other)?)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// How an HTTP checker asks.
struct HttpHow<'a> {
    vhost: Option<&'a str>,
    ssl: bool,
    protocol: HttpProtocol,
    sni: bool,
    client: Option<&'a TlsClient>,
}

/// keepalived's request: its User-Agent, `Connection: close` for 1.0C and 1.1, and the
/// virtual host or the server's address and port as Host.
fn http_request(path: &str, vhost: Option<&str>, target: SocketAddr, p: HttpProtocol) -> String {
    let minor = if p == HttpProtocol::Http11 { 1 } else { 0 };
    let close = if p == HttpProtocol::Http10 {
        ""
    } else {
        "Connection: close\r\n"
    };
    let host = match (vhost, target.ip()) {
        (Some(h), _) => h.to_string(),
        (None, std::net::IpAddr::V6(a)) => format!("[{a}]:{}", target.port()),
        (None, a) => format!("{a}:{}", target.port()),
    };
    format!(
        "GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n"
    )
}

async fn http(c: &Checker, urls: &[UrlCheck], how: &HttpHow<'_>) -> io::Result<Outcome> {
    for u in urls {
        let s = connect(c).await?;
        let vhost = u.virtualhost.as_deref().or(how.vhost);
        let req = http_request(&u.path, vhost, c.target, how.protocol);
        let ssl = how.ssl;
        let resp = if ssl {
            // The virtual host goes out as SNI only with enable_sni, as keepalived does.
            let name = match vhost.filter(|_| how.sni) {
                Some(h) => rustls::pki_types::ServerName::try_from(h.to_string())
                    .map_err(io::Error::other)?,
                None => rustls::pki_types::ServerName::IpAddress(c.target.ip().into()),
            };
            let tls = tls_connector(how.client)?.connect(name, s).await?;
            exchange(tls, req.as_bytes()).await?
        } else {
            exchange(s, req.as_bytes()).await?
        };
        let head_end = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| io::Error::other("no HTTP header"))?;
        let head = String::from_utf8_lossy(&resp[..head_end]);
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other("no HTTP status"))?;
        let ok = if u.status_codes.is_empty() {
            (200..300).contains(&code)
        } else {
            u.status_codes
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&code))
        };
        if !ok {
            return Ok(down(format!("GET {}: status {code}", u.path)));
        }
        if let Some(r) = &u.regex {
            let re = r.compile().map_err(io::Error::other)?;
            if !r.passes(&re, &resp[head_end + 4..]) {
                return Ok(down(format!("GET {}: regex {:?}", u.path, r.pattern)));
            }
        }
        if let Some(want) = &u.digest {
            use md5::Digest;
            let got: String = md5::Md5::digest(&resp[head_end + 4..])
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if &got != want {
                return Ok(down(format!("GET {}: digest {got}", u.path)));
            }
        }
    }
    Ok(Outcome::Up)
}

fn qtype_code(t: &str) -> u16 {
    match t {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        other => other.parse().unwrap_or(6),
    }
}

/// A DNS query for (name, type), class IN, recursion desired.
pub fn dns_query(id: u16, name: &str, qtype: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&qtype_code(qtype).to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

async fn dns(c: &Checker, qtype: &str, name: &str) -> io::Result<Outcome> {
    let s = udp(c).await?;
    let id: u16 = rand::random();
    s.send(&dns_query(id, name, qtype)).await?;
    let mut buf = [0u8; 1500];
    loop {
        let n = s.recv(&mut buf).await?;
        if n < 12 || buf[..2] != id.to_be_bytes() || buf[2] & 0x80 == 0 {
            continue;
        }
        let rcode = buf[3] & 0x0f;
        return Ok(if rcode == 0 {
            Outcome::Up
        } else {
            down(format!("DNS rcode {rcode}"))
        });
    }
}

async fn udp_probe(
    c: &Checker,
    payload: &[u8],
    reply: Option<&crate::keepalived::UdpReply>,
) -> io::Result<Outcome> {
    let s = udp(c).await?;
    s.send(payload).await?;
    let mut buf = [0u8; 1500];
    match reply {
        Some(want) => {
            // As keepalived: a buffer of max_reply_length + 1 octets (a longer reply is
            // cut there, and so too long).
            let mut big = vec![0u8; usize::from(want.max_len) + 1];
            let n = s.recv(&mut big).await?;
            if want.accepts(&big[..n]) {
                Ok(Outcome::Up)
            } else {
                Ok(down("UDP reply data mismatch"))
            }
        }
        None => {
            // Up unless an ICMP unreachable comes back within a moment.
            match timeout(
                c.connect_timeout.min(Duration::from_millis(500)),
                s.recv(&mut buf),
            )
            .await
            {
                Ok(Err(e)) => Err(e),
                _ => Ok(Outcome::Up),
            }
        }
    }
}

/// Reads one (possibly multi-line) SMTP reply; gives its code.
async fn smtp_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> io::Result<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(io::Error::other("SMTP: connection closed"));
        }
        if line.len() >= 4 && line.as_bytes()[3] == b'-' {
            continue;
        }
        return line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other(format!("SMTP: bad reply {:?}", line.trim())));
    }
}

async fn smtp(c: &Checker, helo: &str) -> io::Result<Outcome> {
    let s = connect(c).await?;
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let banner = smtp_reply(&mut r).await?;
    if banner != 220 {
        return Ok(down(format!("SMTP banner {banner}")));
    }
    w.write_all(format!("HELO {helo}\r\n").as_bytes()).await?;
    let code = smtp_reply(&mut r).await?;
    let _ = w.write_all(b"QUIT\r\n").await;
    Ok(if code == 250 {
        Outcome::Up
    } else {
        down(format!("SMTP HELO answered {code}"))
    })
}

/// An OPTIONS request to the server itself, with a Route header so a SIP farm member
/// answers for itself (CommuniGate Pro's advice).
pub fn sip_options(target: SocketAddr, local: SocketAddr, tcp: bool) -> String {
    let tag: u32 = rand::random();
    let t = if tcp { "TCP" } else { "UDP" };
    let host = match target {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    format!(
        "OPTIONS sip:{host} SIP/2.0\r\n\
         Via: SIP/2.0/{t} {local};branch=z9hG4bK{tag:08x}\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:{host};lr>\r\n\
         From: <sip:rvs@{}>;tag={tag:08x}\r\n\
         To: <sip:{host}>\r\n\
         Call-ID: {tag:08x}@rvs\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        local.ip()
    )
}

fn sip_status(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    let mut words = text.split_whitespace();
    (words.next()? == "SIP/2.0").then_some(())?;
    words.next()?.parse().ok()
}

async fn sip(c: &Checker, tcp: bool) -> io::Result<Outcome> {
    let mut buf = [0u8; 4096];
    let n = if tcp {
        let mut s = connect(c).await?;
        let local = s.local_addr()?;
        s.write_all(sip_options(c.target, local, true).as_bytes())
            .await?;
        s.read(&mut buf).await?
    } else {
        let s = udp(c).await?;
        let local = s.local_addr()?;
        s.send(sip_options(c.target, local, false).as_bytes())
            .await?;
        s.recv(&mut buf).await?
    };
    Ok(match sip_status(&buf[..n]) {
        Some(code) if (200..300).contains(&code) => Outcome::Up,
        Some(code) => down(format!("SIP OPTIONS answered {code}")),
        None => down("no SIP answer"),
    })
}

async fn misc(path: &str, dynamic: bool, (uid, gid): (u32, u32)) -> io::Result<Outcome> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    // As its user, when that is not who we are (only root may switch).
    if crate::scripts::current_uid() != Some(uid) {
        cmd.uid(uid).gid(gid);
    }
    let status = cmd
        .arg("-c")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await?;
    Ok(match status.code() {
        Some(0) => Outcome::Up,
        Some(code @ 2..=255) if dynamic => Outcome::UpWithWeight(code as u32 - 2),
        Some(code) => down(format!("script exited {code}")),
        None => down("script killed by a signal"),
    })
}

/// A track file's number as keepalived reads it (strtol base 0 over the first 127 bytes; a
/// missing or empty file is 0), after writing `init` when it asks.
pub(crate) fn read_track_file(path: &str, init: Option<(i64, bool)>) -> Option<i64> {
    if let Some((value, overwrite)) = init {
        if overwrite || !std::path::Path::new(path).exists() {
            let _ = std::fs::write(path, format!("{value}\n"));
        }
    }
    let mut buf = [0u8; 127];
    let n = match std::fs::File::open(path) {
        Ok(mut f) => std::io::Read::read(&mut f, &mut buf).unwrap_or(0),
        Err(_) => 0,
    };
    strtol(&String::from_utf8_lossy(&buf[..n]))
}

/// C's strtol with base 0: leading blanks, a sign, 0x hex or 0 octal, digits up to the first
/// other character; None when it overflows 64 bits.
fn strtol(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or(t.strip_prefix("0X")) {
        (16, h)
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 {
        return Some(0);
    }
    let v = i64::from_str_radix(&digits[..end], radix).ok()?;
    Some(if neg { -v } else { v })
}

/// keepalived's reading of a track file's number for a checker.
fn file_status(value: &Option<i64>, weight: i32, reverse: bool, base: u32) -> Outcome {
    let Some(v) = *value else {
        return down("the number in the track file is out of range");
    };
    if !(i64::from(i32::MIN)..=i64::from(i32::MAX) + 1).contains(&v) {
        return down(format!("invalid number {v} in the track file"));
    }
    if weight == 0 {
        return if (v != 0) != reverse {
            down(format!("track file reads {v}"))
        } else {
            Outcome::Up
        };
    }
    let sign = if reverse { -1 } else { 1 };
    let status = (v * i64::from(weight) * sign).clamp(-i64::from(i32::MAX), i64::from(i32::MAX));
    let w = (i64::from(base) + status).clamp(0, i64::from(i32::MAX));
    Outcome::UpWithWeight(w as u32)
}

async fn ping(c: &Checker) -> io::Result<Outcome> {
    use socket2::{Domain, Protocol, Socket, Type};
    let v6 = c.target.is_ipv6();
    let sock = if v6 {
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?
    } else {
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?
    };
    sock.set_nonblocking(true)?;
    let id: u16 = rand::random();
    let mut msg = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    msg.extend_from_slice(b"rvs-health-check");
    if !v6 {
        let sum = !checksum(&msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    // Connected: the kernel only passes ICMP from the target. A datagram socket as far
    // as send/recv go, so tokio's UDP wrapper drives it.
    sock.connect(&socket2::SockAddr::from(SocketAddr::new(c.target.ip(), 0)))?;
    let s = UdpSocket::from_std(std::net::UdpSocket::from(sock))?;
    s.send(&msg).await?;
    let mut buf = [0u8; 1500];
    loop {
        let n = s.recv(&mut buf).await?;
        // IPv4 raw sockets deliver the IP header too.
        let icmp = if v6 {
            &buf[..n]
        } else {
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            buf.get(ihl..n).unwrap_or(&[])
        };
        let reply = if v6 { 129 } else { 0 };
        if icmp.len() >= 8 && icmp[0] == reply && icmp[4..6] == id.to_be_bytes() {
            return Ok(Outcome::Up);
        }
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::BodyRegex;

    #[test]
    fn requests_as_keepalived_sends_them() {
        let t: SocketAddr = "10.0.0.2:8080".parse().unwrap();
        assert_eq!(
            http_request("/", None, t, HttpProtocol::Http10),
            "GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.2:8080\r\n\r\n"
        );
        assert_eq!(
            http_request("/a", Some("www.x"), t, HttpProtocol::Http11),
            "GET /a HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.x\r\n\r\n"
        );
        let v6: SocketAddr = "[2001:db8::2]:80".parse().unwrap();
        assert!(http_request("/", None, v6, HttpProtocol::Http10Close)
            .ends_with("Connection: close\r\nHost: [2001:db8::2]:80\r\n\r\n"));
    }

    #[test]
    fn track_files_as_keepalived_reads_them() {
        assert_eq!(strtol("  42\n"), Some(42));
        assert_eq!(strtol("0x10"), Some(16));
        assert_eq!(strtol("010"), Some(8));
        assert_eq!(strtol("-3abc"), Some(-3));
        assert_eq!(strtol(""), Some(0));
        assert_eq!(strtol("junk"), Some(0));
        // weight 0: any non-zero number fails (reverse: zero fails).
        assert_eq!(file_status(&Some(0), 0, false, 5), Outcome::Up);
        assert!(matches!(
            file_status(&Some(1), 0, false, 5),
            Outcome::Down(_)
        ));
        assert!(matches!(
            file_status(&Some(0), 0, true, 5),
            Outcome::Down(_)
        ));
        // Otherwise the number times the weight moves the server's weight (not below 0).
        assert_eq!(
            file_status(&Some(3), 2, false, 5),
            Outcome::UpWithWeight(11)
        );
        assert_eq!(file_status(&Some(3), 2, true, 5), Outcome::UpWithWeight(0));
        let dir = std::env::temp_dir().join(format!("rvs-track-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("state");
        let p = f.to_str().unwrap();
        assert_eq!(read_track_file(p, None), Some(0));
        assert_eq!(read_track_file(p, Some((7, false))), Some(7));
        std::fs::write(&f, "9").unwrap();
        assert_eq!(read_track_file(p, Some((7, false))), Some(9));
        assert_eq!(read_track_file(p, Some((7, true))), Some(7));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn body_regex_with_offsets_and_no_match() {
        let mut r = BodyRegex {
            pattern: "ok".into(),
            no_match: false,
            min_offset: 0,
            max_offset: None,
        };
        let re = r.compile().unwrap();
        assert!(r.passes(&re, b"status: ok"));
        r.max_offset = Some(3);
        assert!(!r.passes(&re, b"status: ok"));
        r.max_offset = None;
        r.min_offset = 9;
        assert!(!r.passes(&re, b"status: ok"));
        r.min_offset = 0;
        r.no_match = true;
        assert!(!r.passes(&re, b"status: ok"));
        assert!(r.passes(&re, b"status: down"));
    }
}
