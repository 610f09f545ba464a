//! `rvsadm`: ipvsadm's command line for a running rvs. It sends its arguments (and, for
//! `-R`, its standard input) over the control socket (`RVS_SOCKET`, default
//! /run/rvs/rvs.sock) and prints what the daemon answers, with ipvsadm's exit status.

use rvs_control::ipvsadm::{parse_args, Command};
use rvs_control::socket::{client_path, request, Request, PROTOCOL_VERSION};
use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "rvsadm: ipvsadm for rvs (same commands and options; see ipvsadm(8)).\n\
             rvsadm --vrrp shows the VRRP instances (rvs's console `show vrrp`).\n\
             The daemon's socket comes from RVS_SOCKET (default {}).",
            rvs_control::config::DEFAULT_SOCKET
        );
        return;
    }
    // rvs's own additions, outside ipvsadm's options: the console's `show vrrp`.
    if args.len() == 1 && args[0] == "--vrrp" {
        let req = Request {
            version: PROTOCOL_VERSION,
            kind: "console".into(),
            args: vec!["show vrrp".into()],
            stdin: String::new(),
        };
        talk(&req);
    }
    // Syntax errors are reported without bothering the daemon.
    let stdin = match parse_args(&args) {
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
        Ok(Command::Restore) => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("rvsadm: reading rules from stdin: {e}");
                std::process::exit(2);
            }
            text
        }
        Ok(_) => String::new(),
    };
    let req = Request {
        version: PROTOCOL_VERSION,
        kind: "ipvsadm".into(),
        args,
        stdin,
    };
    talk(&req);
}

/// Sends the request, prints the answer and exits with its status.
fn talk(req: &Request) -> ! {
    let path = client_path();
    match request(&path, req) {
        Ok(resp) => {
            let _ = std::io::stdout().write_all(resp.stdout.as_bytes());
            let _ = std::io::stderr().write_all(resp.stderr.as_bytes());
            std::process::exit(resp.status);
        }
        Err(e) => {
            eprintln!(
                "rvsadm: cannot talk to rvs at {}: {e}\nIs the rvs daemon running (and is RVS_SOCKET right)?",
                path.display()
            );
            std::process::exit(1);
        }
    }
}
