//! ipvsadm's command line as libpopt reads it: long options (`--name`, `--name=value`),
//! bundled short options (`-Ln`), values attached (`-srr`, `-t=VIP`) or in the next word
//! (taken whatever it starts with), `-p`'s optional value (only when the next word does not
//! start with `-`), words that are not options kept as leftovers, `--` ending the options.

/// What an option is to ipvsadm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Add,
    Edit,
    Delete,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Value {
    No,
    Required,
    Optional,
}

use Opt::*;
use Value::*;

/// ipvsadm's option table: long name, short letter, value.
const TABLE: &[(&str, Option<char>, Value, Opt)] = &[
    ("add-service", Some('A'), No, Add),
    ("edit-service", Some('E'), No, Edit),
    ("delete-service", Some('D'), No, Delete),
    ("clear", Some('C'), No, Clear),
    ("list", Some('L'), No, List),
    ("list", Some('l'), No, List),
    ("zero", Some('Z'), No, Zero),
    ("add-server", Some('a'), No, AddServer),
    ("edit-server", Some('e'), No, EditServer),
    ("delete-server", Some('d'), No, DeleteServer),
    ("set", None, No, Set),
    ("help", Some('h'), No, Help),
    ("version", Some('v'), No, Version),
    ("restore", Some('R'), No, Restore),
    ("save", Some('S'), No, Save),
    ("start-daemon", None, Required, StartDaemon),
    ("stop-daemon", None, Required, StopDaemon),
    ("tcp-service", Some('t'), Required, Tcp),
    ("udp-service", Some('u'), Required, Udp),
    ("sctp-service", None, Required, Sctp),
    ("fwmark-service", Some('f'), Required, Fwmark),
    ("scheduler", Some('s'), Required, Scheduler),
    ("persistent", Some('p'), Optional, Persistent),
    ("netmask", Some('M'), Required, Netmask),
    ("real-server", Some('r'), Required, RealServer),
    ("masquerading", Some('m'), No, Masquerading),
    ("ipip", Some('i'), No, Ipip),
    ("gatewaying", Some('g'), No, Gatewaying),
    ("weight", Some('w'), Required, Weight),
    ("u-threshold", Some('x'), Required, UThreshold),
    ("l-threshold", Some('y'), Required, LThreshold),
    ("numeric", Some('n'), No, Numeric),
    ("connection", Some('c'), No, Connection),
    ("mcast-interface", None, Required, McastInterface),
    ("syncid", None, Required, SyncId),
    ("timeout", None, No, Timeout),
    ("daemon", None, No, Daemon),
    ("stats", None, No, Stats),
    ("rate", None, No, Rate),
    ("thresholds", None, No, Thresholds),
    ("persistent-conn", None, No, PersistentConn),
    ("nosort", None, No, NoSort),
    ("sort", None, No, Sort),
    ("exact", Some('X'), No, Exact),
    ("ipv6", Some('6'), No, Ipv6),
    ("ops", Some('o'), No, Ops),
    ("pe", None, Required, Pe),
    ("sched-flags", Some('b'), Required, SchedFlags),
    ("mcast-group", None, Required, McastGroup),
    ("mcast-port", None, Required, McastPort),
    ("mcast-ttl", None, Required, McastTtl),
    ("sync-maxlen", None, Required, SyncMaxlen),
    ("tun-info", None, No, TunInfo),
    ("tun-type", None, Required, TunType),
    ("tun-port", None, Required, TunPort),
    ("tun-nocsum", None, No, TunNocsum),
    ("tun-csum", None, No, TunCsum),
    ("tun-remcsum", None, No, TunRemcsum),
];

/// A bash completion for `program` from the option table: every long and short option,
/// the schedulers after `-s`, the tunnel types after `--tun-type`, sync roles after the
/// daemon commands; rvs's own additions (`--json`, `--vrrp`, `--marks`, `--mark`,
/// `--routes`, `--full-nat`, `--snat`, `--outgoing`, `--vip`, `--capture`, `--console`) too.
pub fn bash_completion(program: &str, schedulers: &[&str]) -> String {
    let mut words: Vec<String> = TABLE
        .iter()
        .flat_map(|(long, short, _, _)| {
            std::iter::once(format!("--{long}")).chain(short.map(|c| format!("-{c}")))
        })
        .collect();
    words.extend(
        [
            "--json",
            "--vrrp",
            "--bfd",
            "--marks",
            "--mark",
            "--routes",
            "--full-nat",
            "--snat",
            "--outgoing",
            "--vip",
            "--capture",
            "--console",
        ]
        .map(String::from),
    );
    words.dedup();
    let func = format!(
        "_{}",
        program
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    );
    format!(
        r#"# bash completion for {program} (generated by `{program} --completion bash`)
{func}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    case "$prev" in
        -s|--scheduler) COMPREPLY=($(compgen -W "{scheds}" -- "$cur")); return ;;
        --tun-type) COMPREPLY=($(compgen -W "ipip gue gre" -- "$cur")); return ;;
        --start-daemon|--stop-daemon) COMPREPLY=($(compgen -W "master backup" -- "$cur")); return ;;
        -b|--sched-flags) COMPREPLY=($(compgen -W "sh-fallback sh-port mh-fallback mh-port" -- "$cur")); return ;;
    esac
    COMPREPLY=($(compgen -W "{words}" -- "$cur"))
}}
complete -F {func} {program}
"#,
        scheds = schedulers.join(" "),
        words = words.join(" ")
    )
}

/// One step of popt's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An option, the word it came from (popt's "bad option" text) and its value.
    Opt {
        opt: Opt,
        word: String,
        value: Option<String>,
    },
    /// popt's error: the word and what is wrong ("unknown option", "missing argument").
    Bad { word: String, reason: &'static str },
}

/// The options in order (reading stops at the first error, as popt's caller does), and the
/// words that are not options.
pub fn read<S: AsRef<str>>(args: &[S]) -> (Vec<Token>, Vec<String>) {
    let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    let (mut tokens, mut leftovers) = (Vec::new(), Vec::new());
    let mut i = 0;
    let bad = |word: &str, reason| Token::Bad {
        word: word.to_string(),
        reason,
    };
    while i < args.len() {
        let word = args[i];
        i += 1;
        if word == "--" {
            leftovers.extend(args[i..].iter().map(|s| s.to_string()));
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(&(_, _, kind, opt)) = TABLE.iter().find(|e| e.0 == name) else {
                tokens.push(bad(word, "unknown option"));
                return (tokens, leftovers);
            };
            let value = match (kind, attached) {
                (No, Some(_)) => {
                    tokens.push(bad(word, "option does not take an argument"));
                    return (tokens, leftovers);
                }
                (No, None) => None,
                (_, Some(v)) => Some(v),
                (Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.to_string())
                    }
                    None => {
                        tokens.push(bad(word, "missing argument"));
                        return (tokens, leftovers);
                    }
                },
                (Optional, None) => match args.get(i).filter(|v| !v.starts_with('-')) {
                    Some(v) => {
                        i += 1;
                        Some(v.to_string())
                    }
                    None => None,
                },
            };
            tokens.push(Token::Opt {
                opt,
                word: word.to_string(),
                value,
            });
            continue;
        }
        let Some(letters) = word.strip_prefix('-').filter(|l| !l.is_empty()) else {
            leftovers.push(word.to_string());
            continue;
        };
        for (at, c) in letters.char_indices() {
            let Some(&(_, _, kind, opt)) = TABLE.iter().find(|e| e.1 == Some(c)) else {
                tokens.push(bad(word, "unknown option"));
                return (tokens, leftovers);
            };
            let rest = &letters[at + c.len_utf8()..];
            if kind == No {
                tokens.push(Token::Opt {
                    opt,
                    word: word.to_string(),
                    value: None,
                });
                continue;
            }
            let value = if !rest.is_empty() {
                Some(rest.strip_prefix('=').unwrap_or(rest).to_string())
            } else {
                match (kind, args.get(i)) {
                    (Optional, Some(v)) if v.starts_with('-') => None,
                    (_, Some(v)) => {
                        i += 1;
                        Some(v.to_string())
                    }
                    (Optional, None) => None,
                    _ => {
                        tokens.push(bad(word, "missing argument"));
                        return (tokens, leftovers);
                    }
                }
            };
            tokens.push(Token::Opt {
                opt,
                word: word.to_string(),
                value,
            });
            break;
        }
    }
    (tokens, leftovers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Vec<(Opt, Option<String>)> {
        read(args)
            .0
            .into_iter()
            .map(|t| match t {
                Token::Opt { opt, value, .. } => (opt, value),
                Token::Bad { word, reason } => panic!("{word}: {reason}"),
            })
            .collect()
    }

    #[test]
    fn popt_spellings() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            opts(&["-At", "1.2.3.4:80", "-srr", "-p600"]),
            vec![
                (Add, None),
                (Tcp, s("1.2.3.4:80")),
                (Scheduler, s("rr")),
                (Persistent, s("600"))
            ]
        );
        assert_eq!(
            opts(&["-a", "-t=V", "-gw2", "--weight=3", "-p", "-n"]),
            vec![
                (AddServer, None),
                (Tcp, s("V")),
                (Gatewaying, None),
                (Weight, s("2")),
                (Weight, s("3")),
                (Persistent, None),
                (Numeric, None)
            ]
        );
        // A required value is the next word, whatever it looks like.
        assert_eq!(opts(&["-t", "-s"]), vec![(Tcp, s("-s"))]);
        let (t, left) = read(&["--set", "1", "2", "--", "-3"]);
        assert_eq!(t.len(), 1);
        assert_eq!(left, ["1", "2", "-3"]);
    }

    #[test]
    fn popt_errors_stop_the_reading() {
        let (t, _) = read(&["-A", "-q", "-t", "x"]);
        assert_eq!(
            t[1],
            Token::Bad {
                word: "-q".into(),
                reason: "unknown option"
            }
        );
        assert_eq!(t.len(), 2);
        let (t, _) = read(&["-A", "-t"]);
        assert_eq!(
            t[1],
            Token::Bad {
                word: "-t".into(),
                reason: "missing argument"
            }
        );
        let (t, _) = read(&["--tcp", "x"]);
        assert!(matches!(&t[0], Token::Bad { word, .. } if word == "--tcp"));
    }
}
