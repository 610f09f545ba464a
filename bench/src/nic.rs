//! The generator's model of a NIC's receive-side scaling, kept apart from rvs's own
//! steering code: per-byte tables built from the reference Toeplitz hash (bit by bit) of
//! inputs with one byte set, then a redirection table over the workers' queues. Flows are
//! spread by what this NIC computes, never by rvs's function.

use rvs_core::rss::{one_end, toeplitz, Reta, VERIFICATION_KEY};
use std::net::IpAddr;

/// Bytes of the hashed input the model covers: an IPv6 address and a port.
const INPUT: usize = 18;
/// Entries of the redirection table (as rvs programs a port).
pub const RETA_SIZE: usize = 128;

#[derive(Debug, Clone)]
pub struct NicModel {
    /// Per input position and byte value, its share of the hash (the hash is linear).
    tables: Vec<[u32; 256]>,
    reta: Reta,
}

impl NicModel {
    /// A NIC programmed as rvs programs ports: the verification key, 128 entries over
    /// `queues` queues round robin, one end hashed (address, then port).
    pub fn new(queues: usize) -> NicModel {
        let tables = (0..INPUT)
            .map(|pos| {
                let mut t = [0u32; 256];
                for (b, slot) in t.iter_mut().enumerate() {
                    let mut input = [0u8; INPUT];
                    input[pos] = b as u8;
                    *slot = toeplitz(&VERIFICATION_KEY, &input[..=pos]);
                }
                t
            })
            .collect();
        NicModel {
            tables,
            reta: Reta::spread(RETA_SIZE, queues.clamp(1, usize::from(u16::MAX)) as u16),
        }
    }

    /// The queue of a packet whose hashed end (source on a client-facing port,
    /// destination on a server-facing one) is `addr`:`port`.
    #[inline]
    pub fn queue(&self, addr: IpAddr, port: u16) -> usize {
        let (input, n) = one_end(addr, port);
        let hash = input[..n]
            .iter()
            .zip(&self.tables)
            .fold(0u32, |h, (&b, t)| h ^ t[usize::from(b)]);
        usize::from(self.reta.queue(hash))
    }

    /// The hash of an IPv4 end split in its two shares: the hash is linear over XOR in its
    /// input bits, so `hash(addr, port) = addr_share(addr) ^ port_share(port)`.
    #[inline]
    pub fn addr_share(&self, addr: u32) -> u32 {
        addr.to_be_bytes()
            .iter()
            .zip(&self.tables)
            .fold(0, |h, (&b, t)| h ^ t[usize::from(b)])
    }

    #[inline]
    pub fn port_share(&self, port: u16) -> u32 {
        let [hi, lo] = port.to_be_bytes();
        self.tables[4][usize::from(hi)] ^ self.tables[5][usize::from(lo)]
    }

    /// The redirection-table entry a hash picks, and the queue that entry names.
    #[inline]
    pub fn entry(hash: u32) -> usize {
        hash as usize % RETA_SIZE
    }

    pub fn queue_of_entry(&self, entry: usize) -> usize {
        usize::from(self.reta.queue(entry as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_the_reference_hash() {
        let nic = NicModel::new(5);
        let reta = Reta::spread(128, 5);
        for i in 0..500u32 {
            let addr = IpAddr::from((0x0a00_0000 + i * 7919).to_be_bytes());
            let port = (i * 131) as u16;
            let (t, n) = one_end(addr, port);
            let want = usize::from(reta.queue(toeplitz(&VERIFICATION_KEY, &t[..n])));
            assert_eq!(nic.queue(addr, port), want, "{addr}:{port}");
            let ip = 0x0a00_0000 + i * 7919;
            let split = nic.addr_share(ip) ^ nic.port_share(port);
            assert_eq!(nic.queue_of_entry(NicModel::entry(split)), want);
        }
    }
}
