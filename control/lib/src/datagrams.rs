//! The receive loop the VRRP and sync daemons' sockets share: reads until told to stop
//! (the socket's read timeout bounds how long that takes), handing each datagram on.

use socket2::Socket;
use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Reads datagrams of at most `max_len` bytes from `sock` into `on_datagram` until `stop`
/// is set; a failing socket is retried every 100 ms.
pub fn receive_until(
    mut sock: Socket,
    max_len: usize,
    stop: &AtomicBool,
    mut on_datagram: impl FnMut(&[u8]),
) {
    let mut buf = vec![0u8; max_len];
    while !stop.load(Ordering::Relaxed) {
        match sock.read(&mut buf) {
            Ok(n) => on_datagram(buf.get(..n).unwrap_or(&[])),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
