//! IPv4 checksum offload on a port that has it: a `net_tap` port configured with the
//! offload fills in the header checksum of an mbuf that asks for it (the frame is captured
//! on the kernel side with tcpdump), and leaves alone one that does not ask.

use dpdk::{Eal, EalArgs, MbufBurst, Mempool, Port, PortConf};
use etherparse::{Ipv4Header, PacketBuilder};
use rvs_testkit::netns::LinkGuard;
use rvs_testkit::pcap::read_pcap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ipv4_frame(ident: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 77, 0, 1], [10, 77, 0, 2], 64)
        .udp(4000, 4001)
        .write(&mut f, b"checksum offload")
        .unwrap();
    f[18..20].copy_from_slice(&ident.to_be_bytes());
    f[24..26].fill(0); // no checksum in the frame
    f
}

#[test]
fn tap_port_fills_in_ipv4_checksums_on_request() {
    let pid = std::process::id();
    let iface = format!("rvsck{}", pid % 100_000);
    let _guard = LinkGuard(iface.clone());
    let eal = Eal::init(&EalArgs::scratch("0", "test-offload", 256).to_vec()).expect("EAL init");
    let pool = Mempool::new(&eal, "offload_pool", 4095, 32, 2048 + 128, 0).unwrap();
    let id = eal
        .attach(&format!("net_tap{},iface={iface}", pid % 1000))
        .expect("net_tap (needs root and /dev/net/tun)")[0];
    let mut port = Port::configure(&eal, id, &PortConf::default(), pool).unwrap();
    assert!(
        port.tx_ipv4_checksum(),
        "net_tap offers IPv4 checksum offload"
    );
    let (rx, mut tx) = port.take_queues().unwrap();
    port.start().unwrap();
    assert!(Command::new("ip")
        .args(["link", "set", "dev", &iface, "up"])
        .status()
        .unwrap()
        .success());
    let pcap = std::env::temp_dir().join(format!("rvs-offload-{pid}.pcap"));
    let mut dump = Command::new("tcpdump")
        .args(["-i", &iface, "-U", "-n", "-c", "2", "-w"])
        .arg(&pcap)
        .arg("udp and host 10.77.0.2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    // tcpdump says "listening on" once its capture is open.
    std::thread::sleep(Duration::from_millis(1500));

    let mut burst: MbufBurst = MbufBurst::new();
    for (ident, offload) in [(1u16, true), (2, false)] {
        let bytes = ipv4_frame(ident);
        let mut m = pool.alloc().unwrap();
        m.append(bytes.len() as u16)
            .unwrap()
            .copy_from_slice(&bytes);
        if offload {
            m.offload_ipv4_checksum(14, 20);
        }
        burst.push(m).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !burst.is_empty() && Instant::now() < deadline {
        tx[0].tx_burst(&mut burst);
    }
    assert!(burst.is_empty(), "the tap took both frames");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dump.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = dump.kill();
    let _ = dump.wait();
    let frames = read_pcap(&pcap);
    let _ = std::fs::remove_file(&pcap);
    assert_eq!(frames.len(), 2, "captured both frames");
    for f in &frames {
        let (h, _) = Ipv4Header::from_slice(&f[14..]).unwrap();
        if h.identification == 1 {
            assert_ne!(h.header_checksum, 0);
            assert_eq!(
                h.header_checksum,
                h.calc_header_checksum(),
                "offloaded checksum"
            );
        } else {
            assert_eq!(h.header_checksum, 0, "no offload asked, none done");
        }
    }
    drop((rx, tx));
    port.close().unwrap();
}
