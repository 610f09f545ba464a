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
use rvs_core::capture::{Capture, CaptureFilter, RX, SNAPLEN, TX};
use std::borrow::Cow;
use std::time::Duration;

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
        let filter = match CaptureFilter::parse(filter_words) {
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
        let counts = self.capture.lock().as_ref().map(|c| c.counts());
        match (run.as_ref(), counts) {
            (Some(r), Some((captured, dropped))) => {
                format!(
                    "capture: running into {}: {captured} taken, {dropped} dropped\n",
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
