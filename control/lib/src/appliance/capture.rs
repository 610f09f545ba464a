//! `capture start PORT|all [rx|tx|both] [FILTER...] FILE` / `capture stop` / `show capture`:
//! the workers copy the wanted frames into the shared capture's slots
//! ([`rvs_core::capture`]); a writer thread here turns them into a pcapng file (one
//! interface per data port, nanosecond timestamps) that tcpdump and wireshark read.

use super::*;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use rvs_core::bpf::{Insn, Program};
use rvs_core::capture::{Capture, CaptureFilter, RX, SNAPLEN, TX};
use std::borrow::Cow;
use std::time::Duration;

/// Compiles a tcpdump filter with libpcap (for Ethernet frames) into a program the workers
/// run; no words: every frame.
pub fn compile_filter(words: &[&str]) -> Result<CaptureFilter, String> {
    let text = words.join(" ");
    if text.trim().is_empty() {
        return Ok(CaptureFilter::default());
    }
    let dead =
        pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| format!("libpcap: {e}"))?;
    let compiled = dead
        .compile(&text, true)
        .map_err(|e| format!("filter {text:?}: {e}"))?;
    // libpcap shows an instruction as "code jt jf k" (its fields are not public).
    let insns = compiled
        .get_instructions()
        .iter()
        .map(|i| {
            let text = i.to_string();
            let n: Vec<u32> = text.split(' ').filter_map(|w| w.parse().ok()).collect();
            match n.as_slice() {
                &[code, jt, jf, k] => Ok(Insn {
                    code: code as u16,
                    jt: jt as u8,
                    jf: jf as u8,
                    k,
                }),
                _ => Err(format!("libpcap gave an instruction as {text:?}")),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let program = Program::new(insns).map_err(|e| format!("filter {text:?}: {e}"))?;
    Ok(CaptureFilter {
        text,
        program: Some(program),
    })
}

/// A capture being written.
pub(super) struct CaptureRun {
    path: String,
    stop: Arc<AtomicBool>,
    writer: std::thread::JoinHandle<Result<u64, String>>,
}

impl Appliance {
    /// The capture the workers feed (set by whoever launched them).
    pub fn set_capture(&self, capture: Arc<Capture>) {
        *self.capture.lock() = Some(capture);
    }

    pub(super) fn capture_verb(&self, args: &[&str]) -> Reply {
        match args {
            ["start", rest @ ..] => self.capture_start(rest),
            ["stop"] => self.capture_stop(),
            _ => Reply::fail(
                2,
                "usage: capture start PORT|all [rx|tx|both] [FILTER...] FILE | capture stop",
            ),
        }
    }

    fn capture_start(&self, args: &[&str]) -> Reply {
        let Some(capture) = self.capture.lock().clone() else {
            return Reply::fail(
                1,
                "capture: the workers do not capture here (forward = \"lb\" only)",
            );
        };
        if self.capture_run.lock().is_some() {
            return Reply::fail(1, "capture: one is running (capture stop first)");
        }
        let [port, rest @ .., file] = args else {
            return Reply::fail(
                2,
                "usage: capture start PORT|all [rx|tx|both] [FILTER...] FILE",
            );
        };
        let names: Vec<String> = self.ports.lock().iter().map(|p| p.name.clone()).collect();
        let port = match *port {
            "all" => None,
            p => match names.iter().position(|n| n == p).or_else(|| p.parse().ok()) {
                Some(i) if i < names.len().max(1) => Some(i as u16),
                _ => {
                    return Reply::fail(
                        2,
                        format!(
                            "capture: no port {p:?} (one of {}, or all)",
                            names.join(", ")
                        ),
                    )
                }
            },
        };
        let (dirs, filter_words) = match rest.first() {
            Some(&"rx") => (RX, &rest[1..]),
            Some(&"tx") => (TX, &rest[1..]),
            Some(&"both") => (RX | TX, &rest[1..]),
            _ => (RX | TX, rest),
        };
        let filter = match compile_filter(filter_words) {
            Ok(f) => f,
            Err(e) => return Reply::fail(2, format!("capture: {e}")),
        };
        let out = match std::fs::File::create(file) {
            Ok(f) => std::io::BufWriter::new(f),
            Err(e) => return Reply::fail(1, format!("capture: {file}: {e}")),
        };
        let mut pcap = match PcapNgWriter::new(out) {
            Ok(w) => w,
            Err(e) => return Reply::fail(1, format!("capture: {file}: {e}")),
        };
        // One interface per data port (a port without a name keeps its number).
        let count = names.len().max(1);
        for i in 0..count {
            let name = names.get(i).cloned().unwrap_or_else(|| format!("port{i}"));
            let idb = InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: SNAPLEN as u32,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Owned(name)),
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            };
            if let Err(e) = pcap.write_pcapng_block(idb) {
                return Reply::fail(1, format!("capture: {file}: {e}"));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        capture.start(port, dirs, filter);
        let writer = {
            let (capture, stop) = (capture.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rvs-capture".into())
                .spawn(move || write_frames(&capture, &stop, pcap, count))
        };
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                capture.stop();
                return Reply::fail(1, format!("capture: {e}"));
            }
        };
        *self.capture_run.lock() = Some(CaptureRun {
            path: file.to_string(),
            stop,
            writer,
        });
        Reply::ok(format!(
            "capture: {} {} into {file}\n",
            port.and_then(|p| names.get(usize::from(p)).cloned())
                .unwrap_or_else(|| "every port".into()),
            match dirs {
                RX => "received",
                TX => "sent",
                _ => "received and sent",
            }
        ))
    }

    fn capture_stop(&self) -> Reply {
        let Some(run) = self.capture_run.lock().take() else {
            return Reply::fail(1, "capture: none running");
        };
        let (captured, dropped) = self
            .capture
            .lock()
            .as_ref()
            .map(|c| {
                c.stop();
                c.counts()
            })
            .unwrap_or_default();
        run.stop.store(true, Ordering::Relaxed);
        match run.writer.join() {
            Ok(Ok(written)) => Reply::ok(format!(
                "capture: {written} frame(s) written to {}, {dropped} dropped (no room between the workers and the writer); {captured} taken\n",
                run.path
            )),
            Ok(Err(e)) => Reply::fail(1, format!("capture: {}: {e}", run.path)),
            Err(_) => Reply::fail(1, "capture: the writer stopped unexpectedly"),
        }
    }

    pub(super) fn show_capture(&self) -> String {
        let run = self.capture_run.lock();
        let capture = self.capture.lock().clone();
        let counts = capture.as_ref().map(|c| c.counts());
        match (run.as_ref(), counts) {
            (Some(r), Some((captured, dropped))) => {
                let filter = capture.map(|c| c.filter().text.clone()).unwrap_or_default();
                let filter = if filter.is_empty() {
                    String::new()
                } else {
                    format!(" (filter: {filter})")
                };
                format!(
                    "capture: running into {}{filter}: {captured} taken, {dropped} dropped\n",
                    r.path
                )
            }
            _ => "capture: none running\n".into(),
        }
    }
}

/// The writer: frames to pcapng until `stop` and the queue is empty; gives how many.
fn write_frames(
    capture: &Capture,
    stop: &AtomicBool,
    mut pcap: PcapNgWriter<std::io::BufWriter<std::fs::File>>,
    interfaces: usize,
) -> Result<u64, String> {
    let mut written = 0u64;
    loop {
        let mut wrote_any = false;
        while let Some(slot) = capture.take() {
            wrote_any = true;
            let epb = EnhancedPacketBlock {
                interface_id: u32::from(slot.port).min(interfaces as u32 - 1),
                timestamp: Duration::from_nanos(slot.at_ns),
                original_len: slot.orig_len as u32,
                data: Cow::Borrowed(&slot.data[..slot.len]),
                options: Vec::new(),
            };
            let r = pcap.write_pcapng_block(epb);
            capture.give_back(slot);
            r.map_err(|e| e.to_string())?;
            written += 1;
        }
        if stop.load(Ordering::Relaxed) && !wrote_any {
            break;
        }
        if !wrote_any {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let mut out = pcap.into_inner();
    std::io::Write::flush(&mut out).map_err(|e| e.to_string())?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    /// A frame of one of several shapes (VLAN tag or not, IPv4 or IPv6, TCP, UDP or ICMP),
    /// with addresses and ports from small sets so that filters hit and miss.
    fn frame(shape: u8, a: u8, b: u8, sport: u16, dport: u16) -> Vec<u8> {
        let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let v4 = |vlan: bool| {
            let src = [10, 0, 0, a % 4];
            let dst = [192, 168, 1, b % 4];
            if vlan {
                eth()
                    .single_vlan(5u16.try_into().unwrap())
                    .ipv4(src, dst, 64)
            } else {
                eth().ipv4(src, dst, 64)
            }
        };
        let mut out = Vec::new();
        let payload = [1u8, 2, 3];
        match shape % 6 {
            0 => v4(false)
                .tcp(sport, dport, 1, 100)
                .write(&mut out, &payload),
            1 => v4(false).udp(sport, dport).write(&mut out, &payload),
            2 => v4(true).tcp(sport, dport, 1, 100).write(&mut out, &payload),
            3 => v4(false)
                .icmpv4_echo_request(1, 2)
                .write(&mut out, &payload),
            4 => eth()
                .ipv6(
                    [0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a % 4],
                    [0xfd; 16],
                    64,
                )
                .tcp(sport, dport, 1, 100)
                .write(&mut out, &payload),
            _ => eth()
                .ipv6(
                    [0xfd; 16],
                    [0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b % 4],
                    64,
                )
                .udp(sport, dport)
                .write(&mut out, &payload),
        }
        .unwrap();
        out
    }

    const FILTERS: [&str; 8] = [
        "tcp port 80 and host 10.0.0.2",
        "udp or icmp",
        "not tcp",
        "src net 10.0.0.0/30 and (dst port 80 or dst port 443)",
        "ip6 and host 2001::1",
        "vlan 5 and tcp",
        "tcp[tcpflags] & tcp-syn != 0",
        "greater 60 and portrange 1000-2000",
    ];

    proptest! {
        /// rvs's interpreter agrees with libpcap's own on every frame, for tcpdump's
        /// language in full (or, not, parentheses, nets, ranges, VLANs, header bytes).
        #[test]
        fn workers_filter_as_libpcap_does(
            f in 0..FILTERS.len(), shape: u8, a: u8, b: u8,
            sport in prop_oneof![Just(80u16), Just(443), Just(1500), 1u16..],
            dport in prop_oneof![Just(80u16), Just(443), Just(1999), 1u16..],
        ) {
            let text = FILTERS[f];
            let ours = compile_filter(&text.split(' ').collect::<Vec<_>>()).unwrap();
            let theirs = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap().compile(text, true).unwrap();
            let frame = frame(shape, a, b, sport, dport);
            prop_assert_eq!(ours.matches(&frame), theirs.filter(&frame), "{} on shape {}", text, shape);
        }
    }

    #[test]
    fn filters_name_their_mistake() {
        let e = compile_filter(&["port", "http2x"]).unwrap_err();
        assert!(e.starts_with("filter \"port http2x\": "), "{e}");
        assert_eq!(compile_filter(&[]).unwrap(), CaptureFilter::default());
        let f = compile_filter(&["tcp", "and", "not", "port", "22"]).unwrap();
        assert_eq!(f.text, "tcp and not port 22");
        assert!(f.program.is_some_and(|p| p.len() > 4));
    }
}
