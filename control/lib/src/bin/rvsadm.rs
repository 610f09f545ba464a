//! `rvsadm`: ipvsadm's command line for a running rvs. It sends its arguments (and, for
//! `-R`, its standard input) over the control socket (`RVS_SOCKET`, default
//! /run/rvs/rvs.sock) and prints what the daemon answers, with ipvsadm's exit status.
//! Installed as `ipvsadm`, it names itself so in its messages, as ipvsadm uses argv[0].
//! rvs's additions: `rvsadm --vrrp` shows the VRRP instances; `rvsadm --marks` lists the
//! firewall-mark rules, `rvsadm --mark add|del MARK PROTO DEST[/LEN][:PORTS] [from SRC]`
//! changes them at run time (what `iptables -t mangle ... -j MARK` does for LVS);
//! `rvsadm --full-nat [on|off SERVICE [laddr A,B] [proxy|proxy-v1]]` shows or sets full NAT;
//! `rvsadm --snat [add|del KEY VALUE...]` shows or changes the source NAT rules;
//! `rvsadm --outgoing [add|del PROTO VIP FIRST-LAST [MEMBER [dr|nat]]]` shows or changes
//! the members' outgoing port ranges; `rvsadm --vip [ADDR unserved host|drop]` lists the
//! VIPs or sets what becomes of a VIP's traffic no service takes;
//! `rvsadm -L -n --json` lists the services, their real servers and counters as JSON;
//! `rvsadm --completion bash` prints a bash completion (ipvsadm's options and rvs's);
//! `rvsadm --capture start PORT|all [rx|tx|both] [FILTER...] FILE` / `--capture stop`
//! captures frames into a pcapng file (written by the daemon: give an absolute path);
//! `rvsadm --console LINE...` runs one console line on the running rvs (`show fwd stats`,
//! `sysctl -w ...`), and `rvsadm --console` alone each line of its standard input in turn
//! (on a terminal: the console's prompt, line editing, history and completion).

use rvs_control::ipvsadm::{parse_command, usage, version, Command};
use rvs_control::socket::{client_path, request, Request, PROTOCOL_VERSION};
use std::io::{Read, Write};

fn main() {
    let mut argv = std::env::args();
    let program = argv.next().unwrap_or_else(|| "ipvsadm".into());
    let args: Vec<String> = argv.collect();
    if args.len() == 2 && args[0] == "--completion" && args[1] == "bash" {
        let name = std::path::Path::new(&program)
            .file_name()
            .map_or("rvsadm".into(), |n| n.to_string_lossy().into_owned());
        print!("{}", rvs_control::ipvsadm::bash_completion(&name));
        return;
    }
    // rvs's own additions, outside ipvsadm's options: console lines.
    let console = match args.first().map(String::as_str) {
        Some("--vrrp") if args.len() == 1 => Some("show vrrp".to_string()),
        Some("--bfd") if args.len() == 1 => Some("show bfd".to_string()),
        Some("--mail") if args.len() == 1 => Some("show mail".to_string()),
        Some("--marks") if args.len() == 1 => Some("show mark".to_string()),
        Some("--routes") if args.len() == 1 => Some("show route".to_string()),
        Some("--mark") if args.len() > 2 => Some(format!("mark {}", args[1..].join(" "))),
        Some("--full-nat") if args.len() == 1 => Some("show fullnat".to_string()),
        Some("--snat") if args.len() == 1 => Some("show snat".to_string()),
        Some("--snat") => Some(format!("snat {}", args[1..].join(" "))),
        Some("--full-nat") => Some(format!("fullnat {}", args[1..].join(" "))),
        Some("--outgoing") if args.len() == 1 => Some("show outgoing".to_string()),
        Some("--outgoing") => Some(format!("outgoing {}", args[1..].join(" "))),
        Some("--vip") if args.len() == 1 => Some("show vip".to_string()),
        Some("--vip") => Some(format!("vip {}", args[1..].join(" "))),
        Some("--capture") if args.len() == 1 => Some("show capture".to_string()),
        Some("--capture") => Some(format!("capture {}", args[1..].join(" "))),
        Some("--console") if args.len() > 1 => Some(args[1..].join(" ")),
        Some("--console") => console_lines(),
        _ => None,
    };
    if let Some(line) = console {
        let req = Request {
            version: PROTOCOL_VERSION,
            kind: "console".into(),
            args: vec![line],
            stdin: String::new(),
        };
        talk(&req);
    }
    // What ipvsadm answers without the kernel is answered here, with its words and status
    // (`--json`, rvs's listing in JSON, is the daemon's to check).
    let plain: Vec<&String> = args.iter().filter(|a| *a != "--json").collect();
    let stdin = match parse_command(&plain, &program) {
        Err(f) => {
            eprintln!("{}", f.message);
            std::process::exit(f.status);
        }
        Ok(Command::Help) => {
            print!("{}", usage(&program));
            return;
        }
        Ok(Command::Version) => {
            print!("{}", version());
            return;
        }
        Ok(Command::Restore) => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                eprintln!("{program}: reading rules from stdin: {e}");
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

/// `rvsadm --console` without a line: each line of standard input (blank ones and `#`
/// comments skipped) is a console line sent in turn, its answer printed, until its end or
/// `quit` (which leaves the session, never the daemon). On a terminal the lines are typed
/// at the console's own editor: its `rvs> ` prompt, history and tab completion. Exits with
/// the last failure's status (0 when none failed).
fn console_lines() -> ! {
    use std::io::IsTerminal;
    let path = client_path();
    let mut status = 0;
    let mut each = |line: &str| {
        let line = line.trim();
        if matches!(line, "quit" | "exit") {
            return false;
        }
        if line.is_empty() || line.starts_with('#') {
            return true;
        }
        let req = Request {
            version: PROTOCOL_VERSION,
            kind: "console".into(),
            args: vec![line.to_string()],
            stdin: String::new(),
        };
        match request(&path, &req) {
            Ok(resp) => {
                let _ = std::io::stdout().write_all(resp.stdout.as_bytes());
                let _ = std::io::stdout().flush();
                let _ = std::io::stderr().write_all(resp.stderr.as_bytes());
                if resp.status != 0 {
                    status = resp.status;
                }
                true
            }
            Err(e) => unreachable_daemon(&path, &e),
        }
    };
    if std::io::stdin().is_terminal() {
        if let Err(e) = rvs_control::console::edit_lines(
            rvs_control::console::history_file().as_deref(),
            &mut each,
        ) {
            eprintln!("rvsadm: console: {e}");
            std::process::exit(2);
        }
    } else {
        for line in std::io::stdin().lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("rvsadm: reading console lines from stdin: {e}");
                    std::process::exit(2);
                }
            };
            if !each(&line) {
                break;
            }
        }
    }
    std::process::exit(status);
}

/// The words rvsadm leaves with when the daemon does not answer.
fn unreachable_daemon(path: &std::path::Path, e: &std::io::Error) -> ! {
    eprintln!(
        "rvsadm: cannot talk to rvs at {}: {e}\nIs the rvs daemon running (and is RVS_SOCKET right)?",
        path.display()
    );
    std::process::exit(1);
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
        Err(e) => unreachable_daemon(&path, &e),
    }
}
