//! The control socket's limits: what it refuses to replace, what a client cannot make it do
//! (stop rvs, read a FIFO), and how it stays available to others (slow, idle, non-UTF-8
//! clients).

use rvs_control::appliance::{Appliance, WorkerView};
use rvs_control::director::{Director, Limits};
use rvs_control::socket::{request, serve, Request, Response, PROTOCOL_VERSION};
use rvs_core::publish::SnapshotCell;
use rvs_core::sched::DestLoad;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn appliance() -> Arc<Appliance> {
    let loads = Arc::new((0..8).map(|_| DestLoad::default()).collect());
    let d = Director::new(
        Limits {
            entries: 8,
            dests: 8,
        },
        loads,
    );
    let cell = Arc::new(SnapshotCell::new(d.snapshot()));
    let workers = vec![WorkerView {
        index: 0,
        lcore: 1,
        stats: Arc::new(rvs_core::WorkerStats::default()),
    }];
    Appliance::new(d, cell, workers, Vec::new(), 1024).shared()
}

fn console(path: &Path, line: &str) -> Response {
    request(
        path,
        &Request {
            version: PROTOCOL_VERSION,
            kind: "console".into(),
            args: vec![line.into()],
            stdin: String::new(),
        },
    )
    .unwrap()
}

#[test]
fn the_socket_keeps_its_limits() {
    let dir = std::env::temp_dir().join(format!("rvs-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rvs.sock");

    // A regular file at the path is not replaced.
    std::fs::write(&path, "precious").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let e = serve(&path, appliance(), stop.clone()).unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();

    let a = appliance();
    let server = serve(&path, a.clone(), stop.clone()).unwrap();
    // In place, listening and private as soon as it is there (it was bound under another
    // name, which is gone); a second daemon on the same path is refused.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["rvs.sock"]);
    let e = serve(&path, appliance(), stop.clone()).unwrap_err();
    assert!(e.to_string().contains("another rvs answers"), "{e}");
    // quit is not taken remotely; load refuses what is not a regular file.
    let r = console(&path, "quit");
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("SIGTERM"), "{}", r.stderr);
    assert!(!a.quit.load(Ordering::Relaxed));
    let fifo = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let r = console(&path, &format!("load {}", fifo.display()));
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    // A file's lines are not echoed back.
    let secret = dir.join("secret");
    std::fs::write(&secret, "root:$6$hash:19000:0:99999:7:::\n").unwrap();
    let r = console(&path, &format!("load {}", secret.display()));
    assert_eq!(r.status, 2);
    assert!(!r.stderr.contains("hash"), "{}", r.stderr);

    // A request that is not UTF-8 gets an answer.
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"\xff\xfe{}\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("not UTF-8"), "{line}");

    // Idle clients take at most 16 seats; the next is told rvs is busy, and once they are
    // cut off (10 s for a whole request, however slowly it trickles) others are served.
    // They hold tasks, not threads.
    let threads = || std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    let threads_before = threads();
    let idle: Vec<UnixStream> = (0..16)
        .map(|_| {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(b"{").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        threads() < threads_before + 4,
        "{} threads for 16 idle clients (from {threads_before})",
        threads()
    );
    let r = console(&path, "help");
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("busy"), "{}", r.stderr);
    let started = Instant::now();
    let mut trickle = UnixStream::connect(&path).unwrap();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "never freed");
        std::thread::sleep(Duration::from_millis(500));
        let _ = trickle.write_all(b" ");
        if console(&path, "help").status == 0 {
            break;
        }
    }
    assert!(started.elapsed() >= Duration::from_secs(8));
    drop(idle);
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
