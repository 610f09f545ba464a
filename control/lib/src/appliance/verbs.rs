//! The console's verbs, listed once: the help text, the syntax check of `load` files and
//! tab completion all come from this table (the dispatch is [`Appliance::console`]).

/// One console command.
#[derive(Debug, Clone, Copy)]
pub struct Verb {
    /// How it is written, as `help` shows it.
    pub usage: &'static str,
    pub help: &'static str,
    /// Complete lines tab completion offers.
    pub phrases: &'static [&'static str],
}

pub const VERBS: &[Verb] = &[
    Verb {
        usage: "show port info|summary|stats|xstats all|N",
        help: "port details, one line per port, counters, extended counters",
        phrases: &[
            "show port info all",
            "show port summary all",
            "show port stats all",
            "show port xstats all",
        ],
    },
    Verb {
        usage: "clear port stats|xstats all|N",
        help: "zero port counters (stats: the basic ones, xstats: the extended ones)",
        phrases: &["clear port stats all", "clear port xstats all"],
    },
    Verb {
        usage: "set xstats-hide-zero on|off",
        help: "show port xstats without (on) or with (off) the counters at zero",
        phrases: &["set xstats-hide-zero on", "set xstats-hide-zero off"],
    },
    Verb {
        usage: "show fwd stats",
        help: "forwarding counters per worker and in total, since start or clear fwd stats",
        phrases: &["show fwd stats all"],
    },
    Verb {
        usage: "clear fwd stats",
        help: "show fwd stats counts from now (ports, ipvsadm and Prometheus keep theirs)",
        phrases: &["clear fwd stats all"],
    },
    Verb {
        usage: "set record-core-cycles on|off",
        help: "show fwd stats ends with the workers' cycles per packet (testpmd's)",
        phrases: &["set record-core-cycles on", "set record-core-cycles off"],
    },
    Verb {
        usage: "set record-burst-stats on|off",
        help: "show fwd stats shows each worker's rx and tx burst sizes, counted from on (testpmd's)",
        phrases: &["set record-burst-stats on", "set record-burst-stats off"],
    },
    Verb {
        usage: "show worker",
        help: "workers: lcore, polls, busy share, hand-offs, drops",
        phrases: &["show worker"],
    },
    Verb {
        usage: "show service",
        help: "services and real servers (ipvsadm -L -n)",
        phrases: &["show service"],
    },
    Verb {
        usage: "show conn [ADDR]",
        help: "connection entries, optionally those involving ADDR",
        phrases: &["show conn"],
    },
    Verb {
        usage: "show neighbour",
        help: "static neighbours of the running snapshot",
        phrases: &["show neighbour"],
    },
    Verb {
        usage: "show route",
        help: "routes of the running snapshot (with their tables) and its policy rules",
        phrases: &["show route"],
    },
    Verb {
        usage: "show health",
        help: "every checker: server, probe, state, flips, last error",
        phrases: &["show health"],
    },
    Verb {
        usage: "show vrrp",
        help: "VRRP instances: state, priority, master heard, adverts, dropped adverts",
        phrases: &["show vrrp"],
    },
    Verb {
        usage: "show bfd",
        help: "BFD sessions: state, neighbour's state, discriminators, transmit interval, detection time, diagnostics",
        phrases: &["show bfd"],
    },
    Verb {
        usage: "show mail",
        help: "e-mail alerts: the mail server, sender, recipients, who mails; alerts sent, failed, dropped",
        phrases: &["show mail"],
    },
    Verb {
        usage: "show announce",
        help: "VIPs announced to the routing daemon ([announce]): announced or withdrawn, and why",
        phrases: &["show announce"],
    },
    Verb {
        usage: "show sync",
        help: "connection sync daemons: role, interface, sync id; messages and connections sent, received, installed, dropped",
        phrases: &["show sync"],
    },
    Verb {
        usage: "show mark",
        help: "firewall-mark rules in order, and the service each selects",
        phrases: &["show mark"],
    },
    Verb {
        usage: "mark add|del MARK PROTO DEST[/LEN][:PORTS] [from SRC/LEN]",
        help: "add / remove a firewall-mark rule at run time (iptables -t mangle ... -j MARK)",
        phrases: &["mark add ", "mark del "],
    },
    Verb {
        usage: "show fullnat",
        help: "services with full NAT: local addresses, PROXY protocol v2",
        phrases: &["show fullnat"],
    },
    Verb {
        usage: "fullnat on|off SERVICE [laddr A[,B]] [proxy|proxy-v1]",
        help: "full NAT for a service (tcp|udp|sctp VIP:PORT or fwmark N [v6]); proxy: PROXY v2, proxy-v1: PROXY v1",
        phrases: &["fullnat on ", "fullnat off "],
    },
    Verb {
        usage: "show snat",
        help: "source NAT rules in order",
        phrases: &["show snat"],
    },
    Verb {
        usage: "snat add|del [protocol P] [source PFX] [destination PFX] [out_port NAME] [to_source ADDR|masquerade] [ports A-B]",
        help: "add / remove a source NAT rule at run time",
        phrases: &["snat add ", "snat del "],
    },
    Verb {
        usage: "show outgoing",
        help: "members' outgoing port ranges ([[outgoing]]): VIP, ports, member, method",
        phrases: &["show outgoing"],
    },
    Verb {
        usage: "outgoing add PROTO VIP FIRST-LAST MEMBER [dr|nat] | outgoing del PROTO VIP FIRST-LAST",
        help: "add / remove a member's outgoing port range at run time",
        phrases: &["outgoing add ", "outgoing del "],
    },
    Verb {
        usage: "show vip",
        help: "VIPs: services, member ranges, unserved traffic (host or drop), VRRP, on the host twin",
        phrases: &["show vip"],
    },
    Verb {
        usage: "vip ADDR unserved host|drop",
        help: "what becomes of a VIP's traffic no service takes ([[vip]] unserved)",
        phrases: &["vip "],
    },
    Verb {
        usage: "start | stop",
        help: "resume / pause forwarding (stop prints the statistics since start)",
        phrases: &["start", "stop"],
    },
    Verb {
        usage: "set fwd io|macswap|5tswap|lb",
        help: "the workers' forwarding mode, at run time (lb needs dataplane.forward = \"lb\")",
        phrases: &["set fwd io", "set fwd macswap", "set fwd 5tswap", "set fwd lb"],
    },
    Verb {
        usage: "set link-up|link-down port N",
        help: "bring a port's link up or down, where its driver can (testpmd's); VRRP on it goes to FAULT while down",
        phrases: &["set link-up port 0", "set link-down port 0"],
    },
    Verb {
        usage: "set burst N",
        help: "frames a worker takes from an rx queue at a time, 1 to 32 (0: the driver's preference)",
        phrases: &["set burst 32"],
    },
    Verb {
        usage: "port config all burst N",
        help: "as set burst N, in testpmd's other words (applied at once: no ports to stop first)",
        phrases: &["port config all burst 32"],
    },
    Verb {
        usage: "set nbcore N",
        help: "testpmd's, forwarding stopped: every worker forwards (each owns its queues' flows), so their number is taken and a smaller one refused",
        phrases: &["set nbcore 1"],
    },
    Verb {
        usage: "port stop|start N|all",
        help: "stop a port (forwarding stopped first: its link goes down, VRRP on it to FAULT) or start it again (testpmd's); start waits for every port",
        phrases: &["port stop all", "port start all"],
    },
    Verb {
        usage: "port config all rxq|txq N",
        help: "testpmd's, with every port stopped: the queue counts rvs started with (rx: the workers' rx lists, tx: one per worker) are kept, others are refused",
        phrases: &["port config all rxq 1", "port config all txq 1"],
    },
    Verb {
        usage: "show config fwd",
        help: "the forwarding mode and each worker's rx queues and tx ports",
        phrases: &["show config fwd"],
    },
    Verb {
        usage: "show config cores",
        help: "the workers' lcores",
        phrases: &["show config cores"],
    },
    Verb {
        usage: "show config rxtx",
        help: "each port's queues, ring settings and offloads (testpmd's)",
        phrases: &["show config rxtx"],
    },
    Verb {
        usage: "show rxq|txq info N QUEUE",
        help: "a queue as its driver describes it: thresholds, ring, state, burst function (testpmd's)",
        phrases: &["show rxq info 0 0", "show txq info 0 0"],
    },
    Verb {
        usage: "set promisc|allmulti all|N on|off",
        help: "a port's promiscuous or all-multicast mode (multicast keeps arriving: promiscuous off takes all-multicast on; a use_vmac VRRP instance's port stays promiscuous)",
        phrases: &[
            "set promisc all on",
            "set promisc all off",
            "set allmulti all on",
            "set allmulti all off",
        ],
    },
    Verb {
        usage: "show port N rss reta [SIZE (MASK[,MASK]...)]",
        help: "the RSS redirection table: each hash index's queue (testpmd's)",
        phrases: &["show port 0 rss reta"],
    },
    Verb {
        usage: "dump mempool|ring [NAME] | dump memzone|physmem|lcores|devargs|log_types|socket_mem",
        help: "DPDK's own dump of its mbuf pools, rings, memzones, memory segments, lcores, devices' arguments or log types, or each NUMA socket's heap (testpmd's)",
        phrases: &[
            "dump mempool",
            "dump ring",
            "dump memzone",
            "dump physmem",
            "dump lcores",
            "dump devargs",
            "dump log_types",
            "dump socket_mem",
        ],
    },
    Verb {
        usage: "show port N ptypes",
        help: "the packet types a port's driver can classify, layer by layer (testpmd's; rvs asks it to classify none: it parses each frame itself)",
        phrases: &["show port 0 ptypes"],
    },
    Verb {
        usage: "show port N rss-hash [key]",
        help: "the RSS hash fields a port uses, and its key",
        phrases: &["show port 0 rss-hash", "show port 0 rss-hash key"],
    },
    Verb {
        usage: "sysctl [-w] [NAME[=VALUE]]... | sysctl [-e] [-q] -p FILE | sysctl --system",
        help: "read / set, as sysctl(8) names them: net.ipv4.ip_forward, net.ipv4.vs.sloppy_tcp, net.ipv4.vs.sloppy_sctp, net.ipv4.vs.expire_nodest_conn, net.ipv4.vs.expire_quiescent_template, net.ipv4.vs.conn_reuse_mode, net.ipv4.vs.pmtu_disc, net.ipv4.vs.nat_icmp_send, net.ipv4.vs.schedule_icmp, net.ipv4.vs.cache_bypass, net.ipv4.vs.run_estimation, net.ipv4.vs.sync_persist_mode, net.ipv4.vs.sync_refresh_period, net.ipv4.vs.lblc_expiration, net.ipv4.vs.lblcr_expiration, net.ipv4.vs.backup_only, net.ipv4.vs.secure_tcp, net.ipv4.vs.drop_entry, net.ipv4.vs.drop_packet, net.ipv4.vs.am_droprate, net.ipv4.vs.amemthresh, net.ipv4.vs.sync_version",
        phrases: &[
            "sysctl -w net.ipv4.vs.expire_nodest_conn=",
            "sysctl -w net.ipv4.vs.expire_quiescent_template=",
            "sysctl -w net.ipv4.vs.sloppy_tcp=",
            "sysctl -w net.ipv4.vs.sloppy_sctp=",
            "sysctl -w net.ipv4.ip_forward=",
            "sysctl -w net.ipv4.vs.conn_reuse_mode=",
            "sysctl -w net.ipv4.vs.pmtu_disc=",
            "sysctl -w net.ipv4.vs.nat_icmp_send=",
            "sysctl -w net.ipv4.vs.schedule_icmp=",
            "sysctl -w net.ipv4.vs.cache_bypass=",
            "sysctl -w net.ipv4.vs.run_estimation=",
            "sysctl -w net.ipv4.vs.sync_persist_mode=",
            "sysctl -w net.ipv4.vs.sync_refresh_period=",
            "sysctl -w net.ipv4.vs.lblc_expiration=",
            "sysctl -w net.ipv4.vs.lblcr_expiration=",
            "sysctl -w net.ipv4.vs.backup_only=",
            "sysctl -w net.ipv4.vs.secure_tcp=",
            "sysctl -w net.ipv4.vs.drop_entry=",
            "sysctl -w net.ipv4.vs.drop_packet=",
            "sysctl -w net.ipv4.vs.am_droprate=",
            "sysctl -w net.ipv4.vs.amemthresh=",
            "sysctl -w net.ipv4.vs.sync_version=",
            "sysctl -p ",
            "sysctl --system",
        ],
    },
    Verb {
        usage: "set verbose N",
        help: "0 quiet, 1 log every snapshot publication",
        phrases: &["set verbose 1"],
    },
    Verb {
        usage: "capture start PORT|all [rx|tx|both] [FILTER...] FILE | capture stop",
        help: "write a port's frames to a pcapng file (FILTER: tcp, udp, icmp, host A, port N, and)",
        phrases: &["capture start ", "capture stop"],
    },
    Verb {
        usage: "show capture",
        help: "the capture running: its file, frames taken and dropped",
        phrases: &["show capture"],
    },
    Verb {
        usage: "reload",
        help: "read the TOML and keepalived.conf again and apply the difference (as SIGHUP does)",
        phrases: &["reload"],
    },
    Verb {
        usage: "load FILE",
        help: "run the commands in FILE, one per line; or take a keepalived.conf into use",
        phrases: &["load "],
    },
    Verb {
        usage: "ipvsadm ARGS [< FILE]",
        help: "an ipvsadm command line (rvsadm's); -R takes its rules from FILE",
        phrases: &["ipvsadm -h"],
    },
    Verb {
        usage: "help | quit",
        help: "this text; leave the console (stops rvs)",
        phrases: &["help", "quit"],
    },
];

/// Words that start a console verb (besides an ipvsadm line).
pub fn is_verb(first: &str) -> bool {
    matches!(first, "?" | "exit")
        || VERBS
            .iter()
            .flat_map(|v| v.phrases)
            .any(|p| p.split_whitespace().next() == Some(first))
}

/// The `help` text.
pub fn help() -> String {
    let mut out = String::from("Console commands (testpmd style):\n");
    for v in VERBS {
        out.push_str(&format!("  {:<36}{}\n", v.usage, v.help));
    }
    out.push_str(
        "Any ipvsadm command line works too: ipvsadm -L -n, -A -t VIP:80 -s rr, -a ..., --set ...\n",
    );
    out
}
