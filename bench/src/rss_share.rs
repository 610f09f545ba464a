//! Whether flows reach their owner as a NIC would deliver them: for the generator's flows,
//! the share of packets a NIC (the bench's own model, [`crate::nic`]) puts on another
//! worker's queue than the flow's owner, each of which then crosses a hand-off ring. Two
//! wirings: two ports (the client-facing port hashing the source, the server-facing port
//! the destination: both directions hash the client's end), and one port for both (a NAT
//! reply then hashes its real server's end).

use crate::gen::flow_addr;
use crate::nic::NicModel;
use rvs_core::engine::owner_of;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};

/// The bench's NAT real servers (10.1.0.1-4:80, flows spread round robin).
const SERVERS: u64 = 4;

#[derive(Debug, Clone, Serialize)]
pub struct RssShare {
    pub workers: u16,
    pub flows: u64,
    /// Percent of packets (client's and server's in equal number) a NIC on two ports puts
    /// on a worker other than their flow's owner.
    pub two_ports_percent: f64,
    /// The same with one port for both directions (NAT replies hash the server's end).
    pub one_port_percent: f64,
}

pub fn shares(flows: u64) -> Vec<RssShare> {
    [2u16, 4, 8, 16]
        .into_iter()
        .map(|workers| {
            let nic = NicModel::new(usize::from(workers));
            let (mut two, mut one) = (0u64, 0u64);
            for f in 0..flows {
                let (client, port) = flow_addr(f);
                let client = IpAddr::V4(Ipv4Addr::from(client));
                let owner = owner_of(client, port, usize::from(workers));
                // The client's packet hashes its source; the reply's destination is the
                // same end on a server-facing port.
                let to_client = nic.queue(client, port);
                two += u64::from(to_client != owner) * 2;
                let server = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1 + (f % SERVERS) as u8));
                one += u64::from(to_client != owner) + u64::from(nic.queue(server, 80) != owner);
            }
            let percent = |n: u64| 100.0 * n as f64 / (2 * flows).max(1) as f64;
            RssShare {
                workers,
                flows,
                two_ports_percent: percent(two),
                one_port_percent: percent(one),
            }
        })
        .collect()
}

pub fn line(shares: &[RssShare]) -> String {
    let parts = |f: fn(&RssShare) -> f64| {
        shares
            .iter()
            .map(|s| format!("{} workers {:.1}%", s.workers, f(s)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "RSS emulation (Toeplitz, verification key, 128-entry table, {} NAT flows): packets a NIC puts on another worker than the flow's owner: two ports (source / destination hashed): {}; one port: {}\n",
        shares.first().map_or(0, |s| s.flows),
        parts(|s| s.two_ports_percent),
        parts(|s| s.one_port_percent),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With two ports the NIC delivers every packet to its flow's owner; with one, the
    /// client's packets still do and NAT replies (hashed by their server) mostly do not.
    #[test]
    fn the_nic_delivers_flows_to_their_owners() {
        for s in shares(20_000) {
            assert_eq!(s.two_ports_percent, 0.0, "{s:?}");
            assert!(s.one_port_percent < 50.0, "{s:?}");
            assert!(s.one_port_percent > 10.0, "{s:?}");
        }
    }
}
