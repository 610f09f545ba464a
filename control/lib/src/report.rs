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
pub fn worker_stats(worker: usize, lcore: u32, c: &WorkerCounters) -> String {
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
    let _ = writeln!(out, "  {}", "-".repeat(76));
    out
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
        let text = worker_stats(0, 1, &c);
        assert!(text.contains("Forward statistics for worker 0 (lcore 1)"));
        assert!(text.contains("TX-dropped: 1"));
        assert!(text.contains("Busy: 25.0%"));
        assert!(text.contains("Hand-offs: 3 "));
    }
}
