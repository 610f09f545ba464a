//! Statistics as text, in testpmd's layout so operators read them as they are used to.

use crate::ports::PortCounters;
use rvs_core::WorkerCounters;
use std::fmt::Write;

const BORDER: &str = "########################";

/// testpmd's `show port stats N` block.
pub fn port_stats(port: u16, name: &str, s: &PortCounters) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n  {BORDER} NIC statistics for port {port:<2} {BORDER}"
    );
    let _ = writeln!(out, "  Name: {name}");
    let _ = writeln!(
        out,
        "  RX-packets: {:<10} RX-missed: {:<10} RX-bytes:  {}",
        s.ipackets, s.imissed, s.ibytes
    );
    let _ = writeln!(out, "  RX-errors: {}", s.ierrors);
    let _ = writeln!(out, "  RX-nombuf:  {:<10}", s.rx_nombuf);
    let _ = writeln!(
        out,
        "  TX-packets: {:<10} TX-errors: {:<10} TX-bytes:  {}",
        s.opackets, s.oerrors, s.obytes
    );
    let _ = writeln!(out, "  {}", "#".repeat(76));
    out
}

/// A worker's forwarding counters, framed like testpmd's forward statistics.
pub fn worker_stats(worker: usize, lcore: u32, c: &WorkerCounters, bursts: bool) -> String {
    let mut out = String::new();
    let title = format!(" Forward statistics for worker {worker} (lcore {lcore}) ");
    let _ = writeln!(out, "\n  {:-^76}", title);
    let _ = writeln!(
        out,
        "  RX-packets: {:<14} TX-packets: {:<14} TX-dropped: {:<14}",
        c.rx_packets, c.tx_packets, c.tx_dropped
    );
    let _ = writeln!(
        out,
        "  Malformed: {:<15} Polls: {:<19} Busy: {:.1}%",
        c.malformed,
        c.polls,
        c.busy_share() * 100.0
    );
    if c.checksums_completed > 0 {
        let _ = writeln!(
            out,
            "  Partial checksums completed: {}",
            c.checksums_completed
        );
    }
    if c.handoffs + c.handoff_drops > 0 {
        let _ = writeln!(
            out,
            "  Hand-offs: {:<15} Hand-offs lost: {}",
            c.handoffs, c.handoff_drops
        );
    }
    if bursts {
        for (label, spread) in [("RX", &c.rx_bursts), ("TX", &c.tx_bursts)] {
            if let Some(line) = burst_line(label, spread) {
                out.push_str(&line);
            }
        }
    }
    let _ = writeln!(out, "  {}", "-".repeat(76));
    out
}

/// testpmd's burst line (`set record-burst-stats on`): how many bursts, and the shares of
/// empty ones and of the two most frequent sizes (the smaller size first on a tie), the
/// rest as "other"; shares are cut to whole percents and the last one shown takes what
/// remains to 100%. None when there was no burst.
pub fn burst_line(label: &str, s: &rvs_core::stats::BurstSpread) -> Option<String> {
    let total = s.bursts();
    if total == 0 {
        return None;
    }
    // (size, count): empty bursts always, then the two most frequent sizes.
    let mut top = [(0usize, s.0[0]), (0, 0), (0, 0)];
    for (size, &count) in s.0.iter().enumerate().skip(1) {
        if count > top[1].1 {
            top[2] = top[1];
            top[1] = (size, count);
        } else if count > top[2].1 {
            top[2] = (size, count);
        }
    }
    let mut line = format!("  {label}-bursts : {total} [");
    let (mut counted, mut shown) = (0u64, 0u64);
    for (size, count) in top {
        counted += count;
        if counted == total {
            let _ = writeln!(line, "{}% of {size} pkts]", 100 - shown);
            return Some(line);
        }
        // In floating point, as testpmd (29 of 100 reads 28%).
        let share = (count as f64 / total as f64 * 100.0) as u64;
        let _ = write!(line, "{share}% of {size} pkts + ");
        shown += share;
    }
    let _ = writeln!(line, "{}% of other]", 100 - shown);
    Some(line)
}

/// The load-balancing engine's counters of one worker: new connections, replies it made,
/// drops by reason (only the reasons that occurred).
pub fn engine_stats(c: &rvs_core::engine::Counters) -> String {
    use rvs_core::engine::DropReason;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  New-conns: {:<14} ARP/ND-replies: {:<10} ICMP-replies: {:<12} ICMP-errors: {}",
        c.new_conns, c.arp_replies, c.icmp_replies, c.icmp_errors_sent
    );
    let _ = writeln!(
        out,
        "  ARP/ND-requests: {:<8} SYN-evictions: {:<11} Routed: {:<18} SNAT-conns: {}",
        c.neighbour_requests, c.syn_evictions, c.routed, c.snat_conns
    );
    if c.member_packets > 0 {
        let _ = writeln!(out, "  Member-range packets: {}", c.member_packets);
    }
    if c.icmp_scheduled > 0 {
        let _ = writeln!(out, "  ICMP-errors-scheduled: {}", c.icmp_scheduled);
    }
    if c.bypass_conns > 0 {
        let _ = writeln!(out, "  Cache-bypass-conns: {}", c.bypass_conns);
    }
    if c.dropped_entries > 0 {
        let _ = writeln!(out, "  Drop-entry-conns: {}", c.dropped_entries);
    }
    if c.udp_evictions > 0 {
        let _ = writeln!(out, "  UDP-evictions: {}", c.udp_evictions);
    }
    if c.reply_key_takeovers > 0 {
        let _ = writeln!(out, "  Reply-key-takeovers: {}", c.reply_key_takeovers);
    }
    if c.neighbours_ignored > 0 {
        let _ = writeln!(
            out,
            "  Neighbours-ignored: {} (ARP/ND about a next hop heard on another port than its route's)",
            c.neighbours_ignored
        );
    }
    if c.fragmented + c.fragments_waited > 0 {
        let _ = writeln!(
            out,
            "  Fragmented: {:<13} Fragments-sent: {:<10} Fragments-waited: {}",
            c.fragmented, c.fragments_sent, c.fragments_waited
        );
    }
    if c.ftp_rewrites + c.ftp_data_conns + c.ftp_controls_kept > 0 {
        let _ = writeln!(
            out,
            "  FTP-replies-rewritten: {:<6} FTP-data-conns: {:<10} FTP-controls-kept: {}",
            c.ftp_rewrites, c.ftp_data_conns, c.ftp_controls_kept
        );
    }
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| c.drops[**r as usize] > 0)
        .map(|r| format!("{}: {}", r.name(), c.drops[*r as usize]))
        .collect();
    let _ = writeln!(
        out,
        "  Drops: {}   To-host: {} (to the port's host twin; dropped where it has none)",
        if drops.is_empty() {
            "0".to_string()
        } else {
            drops.join(", ")
        },
        c.to_host
    );
    let _ = writeln!(out, "  {}", "-".repeat(76));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_block_has_testpmd_labels() {
        let s = PortCounters {
            ipackets: 5,
            opackets: 7,
            ibytes: 300,
            obytes: 420,
            ..PortCounters::default()
        };
        let text = port_stats(1, "outside", &s);
        assert!(text.contains(
            "######################## NIC statistics for port 1  ########################"
        ));
        assert!(text.contains("  RX-packets: 5          RX-missed: 0          RX-bytes:  300\n"));
        assert!(text.contains("  TX-packets: 7          TX-errors: 0          TX-bytes:  420\n"));
        assert!(text.contains("RX-nombuf:  0"));
    }

    #[test]
    fn burst_lines_as_testpmd() {
        use rvs_core::stats::BurstSpread;
        let spread = |counts: &[(usize, u64)]| {
            let mut s = BurstSpread::default();
            for &(size, n) in counts {
                s.0[size] = n;
            }
            s
        };
        assert_eq!(burst_line("RX", &BurstSpread::default()), None);
        let line = |counts: &[(usize, u64)]| burst_line("RX", &spread(counts)).unwrap();
        assert_eq!(line(&[(0, 7)]), "  RX-bursts : 7 [100% of 0 pkts]\n");
        assert_eq!(
            line(&[(32, 3)]),
            "  RX-bursts : 3 [0% of 0 pkts + 100% of 32 pkts]\n"
        );
        // The two most frequent sizes, the rest as other; 29 of 100 is 28% in floating point.
        assert_eq!(
            line(&[(0, 29), (1, 30), (2, 20), (3, 21)]),
            "  RX-bursts : 100 [28% of 0 pkts + 30% of 1 pkts + 21% of 3 pkts + 21% of other]\n"
        );
        // A tie keeps the smaller size first.
        assert_eq!(
            line(&[(0, 1), (4, 2), (8, 2)]),
            "  RX-bursts : 5 [20% of 0 pkts + 40% of 4 pkts + 40% of 8 pkts]\n"
        );
        let c = WorkerCounters {
            tx_bursts: spread(&[(32, 2), (1, 1)]),
            ..WorkerCounters::default()
        };
        let text = worker_stats(0, 1, &c, true);
        assert!(
            text.contains("  TX-bursts : 3 [0% of 0 pkts + 66% of 32 pkts + 34% of 1 pkts]\n"),
            "{text}"
        );
        assert!(!text.contains("RX-bursts"), "no rx burst counted: {text}");
        assert!(!worker_stats(0, 1, &c, false).contains("bursts"));
    }

    #[test]
    fn worker_block_shows_busy_share() {
        let c = WorkerCounters {
            polls: 4,
            busy_polls: 1,
            rx_packets: 10,
            tx_packets: 9,
            tx_dropped: 1,
            malformed: 0,
            handoffs: 3,
            handoff_drops: 0,
            ..WorkerCounters::default()
        };
        let text = worker_stats(0, 1, &c, false);
        assert!(text.contains("Forward statistics for worker 0 (lcore 1)"));
        assert!(text.contains("TX-dropped: 1"));
        assert!(text.contains("Busy: 25.0%"));
        assert!(text.contains("Hand-offs: 3 "));
    }
}
