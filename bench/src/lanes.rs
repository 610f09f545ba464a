//! The generator's lanes: with more workers than one generator core can feed, the
//! generator runs as several threads (lanes), each owning the queues `q` with
//! `q % lanes == lane` of both ports and sending only flows the NIC model puts on them, as
//! the senders behind a real NIC's queues would. Established traffic gets each lane's flows
//! listed up front; a SYN flood draws fresh clients for a lane in constant time a packet.

use crate::gen::{flow_addr, PORTS_PER_CLIENT, PORT_BASE};
use crate::nic::{NicModel, RETA_SIZE};
use std::net::IpAddr;

/// The lane that owns queue `queue`, and the queue's place among that lane's.
#[inline]
pub fn lane_of_queue(queue: usize, lanes: usize) -> (usize, usize) {
    let lanes = lanes.max(1);
    (queue % lanes, queue / lanes)
}

/// The flows `0..flows` split by the lane whose queue the NIC puts each on.
pub fn split_flows(nic: &NicModel, flows: u32, lanes: usize) -> Vec<Vec<u32>> {
    let mut split = vec![Vec::new(); lanes.max(1)];
    for f in 0..flows {
        let (ip, port) = flow_addr(u64::from(f));
        let queue = nic.queue(IpAddr::from(ip.to_be_bytes()), port);
        split[lane_of_queue(queue, lanes).0].push(f);
    }
    split
}

/// New clients for one lane of a SYN flood, every one distinct: for each client address in
/// turn, the source ports whose hash lands on the lane's redirection-table entries. With
/// the hash split in shares (`NicModel::addr_share ^ port_share`), the ports are bucketed
/// once by the entry of their share; an address's share then says which buckets hold the
/// lane's ports. The lane's entries are taken in turn, so consecutive clients go to
/// different queues of the lane.
#[derive(Debug, Clone)]
pub struct FreshClients {
    /// Source ports (offsets from `PORT_BASE`) by the entry of their share of the hash.
    ports_by_entry: Vec<Vec<u16>>,
    longest: usize,
    /// The redirection-table entries whose queues are the lane's.
    entries: Vec<usize>,
    nic: NicModel,
    host: u32,
    host_entry: usize,
    column: usize,
    next_entry: usize,
}

/// Client addresses the generator uses (see [`crate::gen::flow_addr`]).
const HOSTS: u32 = 1 << 22;

impl FreshClients {
    /// None when the lane owns no queue.
    pub fn new(nic: &NicModel, lane: usize, lanes: usize) -> Option<FreshClients> {
        let entries: Vec<usize> = (0..RETA_SIZE)
            .filter(|&e| lane_of_queue(nic.queue_of_entry(e), lanes).0 == lane)
            .collect();
        if entries.is_empty() {
            return None;
        }
        let mut ports_by_entry = vec![Vec::new(); RETA_SIZE];
        for offset in 0..PORTS_PER_CLIENT as u16 {
            let share = nic.port_share(PORT_BASE + offset);
            ports_by_entry[NicModel::entry(share)].push(offset);
        }
        let longest = ports_by_entry.iter().map(Vec::len).max().unwrap_or(0);
        let mut fresh = FreshClients {
            ports_by_entry,
            longest,
            entries,
            nic: nic.clone(),
            host: 0,
            host_entry: 0,
            column: 0,
            next_entry: 0,
        };
        fresh.host_entry = fresh.entry_of_host(0);
        Some(fresh)
    }

    fn entry_of_host(&self, host: u32) -> usize {
        let (ip, _) = flow_addr(u64::from(host) * u64::from(PORTS_PER_CLIENT));
        NicModel::entry(self.nic.addr_share(ip))
    }

    /// The next client's flow number (as [`crate::gen::flow_of`] numbers them).
    #[inline]
    pub fn next_flow(&mut self) -> u64 {
        loop {
            if self.next_entry == self.entries.len() {
                self.next_entry = 0;
                self.column += 1;
                if self.column >= self.longest {
                    self.column = 0;
                    self.host = (self.host + 1) % HOSTS;
                    self.host_entry = self.entry_of_host(self.host);
                }
            }
            // The port's share must bring the address's to one of the lane's entries.
            let bucket = self.entries[self.next_entry] ^ self.host_entry;
            self.next_entry += 1;
            if let Some(&offset) = self.ports_by_entry[bucket].get(self.column) {
                return u64::from(self.host) * u64::from(PORTS_PER_CLIENT) + u64::from(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn queue_of_flow(nic: &NicModel, f: u64) -> usize {
        let (ip, port) = flow_addr(f);
        nic.queue(IpAddr::from(ip.to_be_bytes()), port)
    }

    #[test]
    fn established_flows_split_by_their_queues_lane() {
        for (queues, lanes) in [(1, 1), (2, 1), (4, 2), (8, 4), (8, 3), (5, 5)] {
            let nic = NicModel::new(queues);
            let split = split_flows(&nic, 20_000, lanes);
            assert_eq!(split.len(), lanes);
            let mut all: Vec<u32> = split.concat();
            all.sort_unstable();
            assert_eq!(all, (0..20_000).collect::<Vec<u32>>(), "each flow once");
            for (lane, flows) in split.iter().enumerate() {
                assert!(
                    !flows.is_empty(),
                    "{queues} queues, {lanes} lanes: lane {lane}"
                );
                for &f in flows {
                    let q = queue_of_flow(&nic, u64::from(f));
                    assert_eq!(lane_of_queue(q, lanes).0, lane);
                }
            }
        }
    }

    #[test]
    fn fresh_clients_are_new_and_on_the_lanes_queues() {
        for (queues, lanes) in [(1, 1), (4, 2), (8, 4), (6, 4)] {
            let nic = NicModel::new(queues);
            let mut seen = HashSet::new();
            for lane in 0..lanes {
                let mut fresh = FreshClients::new(&nic, lane, lanes).unwrap();
                let mut per_queue = vec![0u32; queues];
                // Past one address's ports, so the walk moves on to the next addresses.
                for _ in 0..100_000 {
                    let f = fresh.next_flow();
                    assert!(seen.insert(f), "flow {f} twice");
                    let q = queue_of_flow(&nic, f);
                    assert_eq!(lane_of_queue(q, lanes).0, lane, "flow {f} on queue {q}");
                    per_queue[q] += 1;
                }
                // The lane's queues share its clients about evenly.
                let mine: Vec<u32> = (0..queues)
                    .filter(|&q| lane_of_queue(q, lanes).0 == lane)
                    .map(|q| per_queue[q])
                    .collect();
                let (lo, hi) = (mine.iter().min().unwrap(), mine.iter().max().unwrap());
                assert!(
                    f64::from(*hi) < f64::from(*lo) * 1.2,
                    "{queues} queues, {lanes} lanes, lane {lane}: {mine:?}"
                );
            }
        }
    }

    #[test]
    fn the_lanes_together_take_every_port_of_an_address() {
        let nic = NicModel::new(8);
        let lanes = 3;
        let mut ports = HashSet::new();
        for lane in 0..lanes {
            let mut fresh = FreshClients::new(&nic, lane, lanes).unwrap();
            loop {
                let f = fresh.next_flow();
                if f >= u64::from(PORTS_PER_CLIENT) {
                    break;
                }
                assert!(ports.insert(f));
            }
        }
        assert_eq!(ports.len(), PORTS_PER_CLIENT as usize);
    }

    #[test]
    fn a_lane_without_queues_draws_nothing() {
        assert!(FreshClients::new(&NicModel::new(2), 2, 3).is_none());
    }
}
