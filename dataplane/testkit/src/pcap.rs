//! Classic pcap files (as tcpdump -w and DPDK's net_pcap write them).

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use std::path::Path;
use std::time::Duration;

/// Writes `frames` a microsecond apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).expect("pcap file");
    let mut w = PcapWriter::new(file).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let at = Duration::from_micros(i as u64);
        w.write_packet(&PcapPacket::new(at, f.len() as u32, f))
            .expect("pcap packet");
    }
}

/// The frames of a pcap file; none while it is missing or still has no header.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let Ok(mut r) = PcapReader::new(f) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some(Ok(p)) = r.next_packet() {
        out.push(p.data.into_owned());
    }
    out
}
