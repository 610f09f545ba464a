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
//!
//! What the socket allows: every ipvsadm command and console line except `quit` (stop rvs
//! with SIGTERM, e.g. `systemctl stop rvs`); `load FILE` reads regular files of at most
//! 1 MiB. Limits: a request of at most 16 MiB read within 10 s in all, at most 16 clients
//! served at once (others are told the daemon is busy), an answer to every request (one
//! that is not UTF-8 JSON gets status 2). The server is a task per client on an async
//! runtime of its own thread: an idle client holds a seat, not a thread.

use crate::appliance::{Appliance, Reply};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
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
            .console_remote(req.args.first().map(String::as_str).unwrap_or(""))
            .into(),
        k => Reply::fail(2, format!("unknown request kind {k:?}: ipvsadm or console")).into(),
    }
}

/// Clients served at once.
const MAX_CLIENTS: usize = 16;
/// Clients beyond those still told, each within the deadline, that rvs is busy; past this
/// they are simply closed.
const MAX_TURNED_AWAY: usize = 64;
/// The whole request must arrive within this (and the answer leave within it).
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Reads one request line (whatever pace the client sends at) up to the size limit; None
/// when the client gave up before sending anything. The caller bounds it in time.
async fn read_request(stream: &mut tokio::net::UnixStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return (!buf.is_empty()).then_some(buf);
        }
        buf.extend_from_slice(chunk.get(..n)?);
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(end);
            return Some(buf);
        }
        if buf.len() as u64 > MAX_REQUEST {
            return Some(buf);
        }
    }
}

/// One client: its request read within the deadline, answered on a blocking thread (the
/// appliance's calls may wait for locks or a file), the answer written within the deadline.
async fn serve_one(appliance: Arc<Appliance>, mut stream: tokio::net::UnixStream) {
    let Ok(Some(bytes)) = tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut stream)).await
    else {
        return;
    };
    let resp = if bytes.len() as u64 > MAX_REQUEST {
        Reply::fail(2, format!("bad request: longer than {MAX_REQUEST} bytes")).into()
    } else {
        match String::from_utf8(bytes) {
            Ok(line) => {
                let work = tokio::task::spawn_blocking(move || answer(&appliance, line.trim_end()));
                match work.await {
                    Ok(r) => r,
                    Err(_) => Reply::fail(1, "rvs: the request failed inside the daemon").into(),
                }
            }
            Err(_) => Reply::fail(2, "bad request: not UTF-8").into(),
        }
    };
    reply(&mut stream, &resp).await;
}

async fn reply(stream: &mut tokio::net::UnixStream, resp: &Response) {
    use tokio::io::AsyncWriteExt;
    if let Ok(mut text) = serde_json::to_string(resp) {
        text.push('\n');
        let _ = tokio::time::timeout(REQUEST_DEADLINE, stream.write_all(text.as_bytes())).await;
    }
}

/// Accepts until `stop` is set (checked every 100 ms): each client a task holding one of
/// the [`MAX_CLIENTS`] seats; idle clients cost a task, not a thread.
async fn accept_loop(listener: UnixListener, appliance: Arc<Appliance>, stop: Arc<AtomicBool>) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            crate::log::log(
                crate::log::Level::Error,
                "control socket",
                None,
                format_args!("{e}"),
            );
            return;
        }
    };
    let seats = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    let turned_away = Arc::new(tokio::sync::Semaphore::new(MAX_TURNED_AWAY));
    while !stop.load(Ordering::Relaxed) {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        let Ok((mut stream, _)) = accepted else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Ok(seat) = seats.clone().try_acquire_owned() {
            let a = appliance.clone();
            tokio::spawn(async move {
                serve_one(a, stream).await;
                drop(seat);
            });
        } else if let Ok(slot) = turned_away.clone().try_acquire_owned() {
            tokio::spawn(async move {
                let busy: Response = Reply::fail(
                    1,
                    format!("rvs is busy: {MAX_CLIENTS} clients being served; try again"),
                )
                .into();
                reply(&mut stream, &busy).await;
                drop(slot);
            });
        }
    }
}

/// Binds the socket (directory created 0700 if missing; a stale socket left by a dead
/// daemon is replaced; a live one is an error) and serves until `stop` is set, on a thread
/// of its own running a single-threaded async runtime (blocking work on at most
/// [`MAX_CLIENTS`] threads).
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
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        // Only a stale socket is replaced: never a file someone put there.
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another rvs answers on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // Bound and listening under a name of its own, made private, then linked into place
    // (which fails if another daemon got there first) and the first name removed: a client,
    // or a script waiting for the file, never finds it before it is listening.
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(format!(".{}", std::process::id()));
    let fresh = PathBuf::from(fresh);
    let _ = std::fs::remove_file(&fresh);
    let listener = UnixListener::bind(&fresh)?;
    let placed = std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::hard_link(&fresh, path));
    let _ = std::fs::remove_file(&fresh);
    placed?;
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAX_CLIENTS)
        .thread_name("rvs-request")
        .build()?;
    let path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("rvs-control".into())
        .spawn(move || {
            rt.block_on(accept_loop(listener, appliance, stop));
            // Requests still being answered finish in the background; none waits for them.
            rt.shutdown_background();
            let _ = std::fs::remove_file(&path);
        })
}

/// Client side: one request, one response.
pub fn request(path: &Path, req: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut text = serde_json::to_string(req).map_err(std::io::Error::other)?;
    text.push('\n');
    // A busy rvs answers and closes without reading: the answer is still there to read.
    if let Err(e) = stream.write_all(text.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e);
        }
    }
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
