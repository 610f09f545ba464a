//! The control socket: a Unix stream socket (mode 0600) where `rvsadm` and other tools
//! talk to the running daemon.
//!
//! Protocol, version 1: the client sends one JSON object on one line and reads one JSON
//! object on one line back; then the connection closes.
//!
//! ```text
//! -> {"version":1,"kind":"ipvsadm","args":["-L","-n"],"stdin":""}
//! -> {"version":1,"kind":"console","args":["show port stats all"],"stdin":""}
//! <- {"version":1,"status":0,"stdout":"IP Virtual Server version ...","stderr":""}
//! ```
//!
//! `kind` is `ipvsadm` (args are ipvsadm's arguments; `stdin` feeds `-R`) or `console`
//! (args[0] is one console line). `status` is ipvsadm's exit status: 0 done, 1 refused,
//! 2 bad syntax or request. A request of another version gets status 2 and says which
//! version the daemon speaks.

use crate::appliance::{Appliance, Reply};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const PROTOCOL_VERSION: u32 = 1;

/// Largest request accepted (an `-R` of some thousand rules fits easily).
const MAX_REQUEST: u64 = 16 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub version: u32,
    pub kind: String,
    pub args: Vec<String>,
    #[serde(default)]
    pub stdin: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Response {
    pub version: u32,
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Reply> for Response {
    fn from(r: Reply) -> Response {
        Response {
            version: PROTOCOL_VERSION,
            status: r.status,
            stdout: r.out,
            stderr: r.err,
        }
    }
}

/// The answer to one request line of the control protocol (JSON).
pub fn answer(appliance: &Arc<Appliance>, line: &str) -> Response {
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return Reply::fail(2, format!("bad request: {e}")).into(),
    };
    if req.version != PROTOCOL_VERSION {
        return Reply::fail(
            2,
            format!(
                "protocol version {} not supported (this rvs speaks {PROTOCOL_VERSION})",
                req.version
            ),
        )
        .into();
    }
    match req.kind.as_str() {
        "ipvsadm" => appliance.ipvsadm(&req.args, &req.stdin).into(),
        "console" => appliance
            .console(req.args.first().map(String::as_str).unwrap_or(""))
            .into(),
        k => Reply::fail(2, format!("unknown request kind {k:?}: ipvsadm or console")).into(),
    }
}

fn serve_one(appliance: &Arc<Appliance>, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream.take(MAX_REQUEST));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let resp = answer(appliance, line.trim_end());
    let mut w = write_half;
    if let Ok(mut text) = serde_json::to_string(&resp) {
        text.push('\n');
        let _ = w.write_all(text.as_bytes());
    }
}

/// Binds the socket (directory created 0700 if missing; a stale socket left by a dead
/// daemon is replaced; a live one is an error) and serves until `stop` is set.
pub fn serve(
    path: &Path,
    appliance: Arc<Appliance>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another rvs answers on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("rvs-control".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let a = appliance.clone();
                        let _ = std::thread::Builder::new()
                            .name("rvs-request".into())
                            .spawn(move || serve_one(&a, stream));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
            let _ = std::fs::remove_file(&path);
        })
}

/// Client side: one request, one response.
pub fn request(path: &Path, req: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut text = serde_json::to_string(req).map_err(std::io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad response from rvs: {e}"),
        )
    })
}

/// The socket `rvsadm` uses: `RVS_SOCKET`, else the default.
pub fn client_path() -> PathBuf {
    std::env::var_os("RVS_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_SOCKET))
}
