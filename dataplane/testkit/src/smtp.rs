//! A mail server for alert tests: it answers every conversation as a willing SMTP server
//! (or refuses recipients) and keeps what each client wrote.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A listening mail server; what each connection wrote, in order of arrival.
pub struct Sink {
    pub addr: SocketAddr,
    /// Finished conversations by the order their connections were accepted (a later
    /// conversation's thread may finish first).
    mails: Arc<Mutex<Vec<(usize, String)>>>,
}

impl Sink {
    /// Listens on `addr` (port 0: any), answering 250 to every recipient.
    pub fn start(addr: &str) -> Sink {
        Sink::answering(addr, 250)
    }

    /// Listens on `addr`, answering `rcpt` to RCPT (550: refused).
    pub fn answering(addr: &str, rcpt: u16) -> Sink {
        let listener = TcpListener::bind(addr).expect("mail sink address");
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        std::thread::spawn(move || {
            for (arrival, conn) in listener.incoming().flatten().enumerate() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let text = serve(conn, rcpt);
                    let mut mails = kept.lock().unwrap();
                    let at = mails.partition_point(|(a, _)| *a < arrival);
                    mails.insert(at, (arrival, text));
                });
            }
        });
        Sink { addr, mails }
    }

    /// Every finished conversation so far.
    pub fn mails(&self) -> Vec<String> {
        let mails = self.mails.lock().unwrap();
        mails.iter().map(|(_, text)| text.clone()).collect()
    }

    /// Waits (at most `within`) for `n` conversations; gives those there are.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<String> {
        let end = Instant::now() + within;
        while self.mails.lock().unwrap().len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.mails()
    }
}

/// A conversation's Subject header ("" without one).
pub fn subject(mail: &str) -> &str {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
}

/// A conversation's body: after the headers, up to the final dot ("" without one).
pub fn body(mail: &str) -> &str {
    mail.split("\r\n\r\n").nth(1).unwrap_or_default().trim_end()
}

/// One conversation: what the client wrote (until QUIT or its end; 10 s at most).
fn serve(mut conn: TcpStream, rcpt: u16) -> String {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut out = conn.try_clone().expect("socket");
    let mut reader = BufReader::new(&mut conn);
    let mut text = String::new();
    let _ = out.write_all(b"220 sink.test ESMTP\r\n");
    let mut data = false;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        text.push_str(&line);
        if data {
            if line == ".\r\n" {
                data = false;
                let _ = out.write_all(b"250 2.0.0 queued\r\n");
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "HELO" | "EHLO" => b"250-sink.test\r\n250 HELP\r\n",
            "MAIL" => b"250 2.1.0 Ok\r\n",
            "RCPT" if rcpt == 250 => b"250 2.1.5 Ok\r\n",
            "RCPT" => b"550 5.1.1 no such user\r\n",
            "DATA" => {
                data = true;
                b"354 End data with <CR><LF>.<CR><LF>\r\n"
            }
            "QUIT" => {
                let _ = out.write_all(b"221 2.0.0 Bye\r\n");
                break;
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        let _ = out.write_all(reply);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converse(conn: &mut TcpStream, subject: &str) {
        let lines = format!(
            "HELO t\r\nMAIL FROM:<a@t>\r\nRCPT TO:<b@t>\r\nDATA\r\nSubject: {subject}\r\n\r\nx\r\n.\r\nQUIT\r\n"
        );
        conn.write_all(lines.as_bytes()).unwrap();
    }

    /// Conversations are kept in the order their connections came, whichever ends first.
    #[test]
    fn mails_keep_the_order_of_their_connections() {
        let sink = Sink::start("127.0.0.1:0");
        let mut first = TcpStream::connect(sink.addr).unwrap();
        let mut second = TcpStream::connect(sink.addr).unwrap();
        converse(&mut second, "second");
        assert_eq!(
            sink.wait_for(1, Duration::from_secs(10))
                .iter()
                .map(|m| subject(m))
                .collect::<Vec<_>>(),
            ["second"]
        );
        converse(&mut first, "first");
        let mails = sink.wait_for(2, Duration::from_secs(10));
        let subjects: Vec<&str> = mails.iter().map(|m| subject(m)).collect();
        assert_eq!(subjects, ["first", "second"]);
    }
}
