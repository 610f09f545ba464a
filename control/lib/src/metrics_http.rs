//! The metrics endpoint (`[metrics] listen`): a plain HTTP/1.x server on its own thread
//! that answers `GET /metrics` with [`Appliance::metrics`] in Prometheus's text format, one
//! connection at a time (a scraper's), each bounded in size and time.

use crate::appliance::Appliance;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The most a request's head may take.
const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `addr` and serves until `stop`.
pub fn serve(
    addr: SocketAddr,
    appliance: Arc<Appliance>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("rvs-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = answer(stream, &appliance);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })
}

/// What a request line asks for: the status line and body to send.
pub fn route(request_line: &str) -> (&'static str, Option<&'static str>) {
    let mut words = request_line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", None),
        (Some("GET"), Some("/")) => (
            "200 OK",
            Some("<html><body><a href=\"/metrics\">rvs metrics</a></body></html>\n"),
        ),
        (Some("GET"), Some(_)) => ("404 Not Found", Some("not found: try /metrics\n")),
        _ => ("405 Method Not Allowed", Some("GET /metrics\n")),
    }
}

fn answer(mut stream: TcpStream, appliance: &Appliance) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or("");
    let (status, body) = route(line);
    let (kind, body) = match body {
        Some(b) => ("text/plain; charset=utf-8", b.to_string()),
        None => (
            "text/plain; version=0.0.4; charset=utf-8",
            appliance.metrics(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_serves_the_page() {
        assert_eq!(route("GET /metrics HTTP/1.1"), ("200 OK", None));
        assert_eq!(route("GET /x HTTP/1.1").0, "404 Not Found");
        assert_eq!(route("POST /metrics HTTP/1.1").0, "405 Method Not Allowed");
        assert_eq!(route("").0, "405 Method Not Allowed");
    }
}
