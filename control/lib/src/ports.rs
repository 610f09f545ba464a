//! What the control side may ask of a data port, so commands and renderers need no DPDK:
//! the daemon implements [`PortDevice`] over its DPDK ports.

/// A port's counters, as `rte_eth_stats` has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    pub q_ipackets: Vec<u64>,
    pub q_opackets: Vec<u64>,
}

/// What `show port info` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortDescription {
    pub mac: Option<[u8; 6]>,
    pub driver: String,
    pub link: String,
    pub link_up: bool,
    /// The driver cannot tell the link: its status unreadable, or a TAP whose interface
    /// was moved to another network namespace (the TAP driver's ioctls look it up by name
    /// in rvs's own and report it down).
    pub link_unknown: bool,
    pub link_speed_mbps: u32,
    pub full_duplex: bool,
    pub autoneg: bool,
    pub socket: i32,
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    pub allmulticast: bool,
    pub hash_key_size: u8,
    pub reta_size: u16,
    /// The driver's firmware version (None: it does not tell), the device's arguments
    /// (`iface=...`), the VLAN offloads on (`RTE_ETH_VLAN_*_OFFLOAD` bits; None: the
    /// driver does not say).
    pub fw_version: Option<String>,
    pub devargs: Option<String>,
    pub vlan_offload: Option<u32>,
    pub limits: PortLimits,
    /// The device's capabilities (`RTE_ETH_DEV_CAPA_*` bits) and ethdev's names for them.
    pub dev_capa: u64,
    pub capabilities: Vec<String>,
    /// The RSS hash types the device can use and those it uses now (DPDK's `rss_hf`
    /// bits; [`crate::rss_types`] names them).
    pub rss_offloads: u64,
    pub rss_hf: u64,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub min_mtu: u16,
    pub max_mtu: u16,
    /// The port's rx and tx offloads as configured; its first queues' settings.
    pub rx_offloads: u64,
    pub tx_offloads: u64,
    pub rxq: QueueSettings,
    pub txq: QueueSettings,
}

/// The device's limits testpmd's `show port info` lists (`rte_eth_dev_info`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortLimits {
    pub max_mac_addrs: u32,
    pub max_hash_mac_addrs: u32,
    pub min_rx_bufsize: u32,
    pub max_rx_pktlen: u32,
    pub max_lro_pkt_size: u32,
    pub max_vfs: u16,
    pub max_vmdq_pools: u16,
    pub rx_desc: DescLimits,
    pub tx_desc: DescLimits,
    /// The driver's preferred rx burst (0: it has none).
    pub rx_burst_size: u16,
}

/// A queue's descriptor limits (`rte_eth_desc_lim`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescLimits {
    pub max: u16,
    pub min: u16,
    pub align: u16,
    pub seg_max: u16,
    pub mtu_seg_max: u16,
}

/// A queue's ring settings (testpmd's `show config rxtx`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSettings {
    pub desc: u16,
    pub free_thresh: u16,
    pub pthresh: u8,
    pub hthresh: u8,
    pub wthresh: u8,
    pub offloads: u64,
    /// Tx only.
    pub rs_thresh: u16,
}

/// A queue as its driver describes it (testpmd's `show rxq|txq info`); the rx-only
/// fields stay empty for a tx queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueInfo {
    pub settings: QueueSettings,
    pub mempool: Option<String>,
    pub drop_en: bool,
    pub deferred_start: bool,
    pub scattered: bool,
    /// DPDK's queue state: 0 stopped, 1 started, 2 hairpin.
    pub state: u8,
    pub buf_size: u16,
    /// The driver's burst function in its words (None: the driver does not say).
    pub burst_mode: Option<String>,
}

/// A driver's refusal: its reason (strerror) and errno.
pub type Refusal = (String, i32);

/// What testpmd's `dump` shows in DPDK's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpObject {
    Mempool,
    Ring,
    Memzone,
    Physmem,
    Lcores,
    Devargs,
    LogTypes,
}

/// One NUMA socket's heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketMemory {
    pub socket: u32,
    pub total_bytes: u64,
    pub alloc_bytes: u64,
    pub free_bytes: u64,
    pub alloc_count: u32,
    pub free_count: u32,
}

/// An mbuf pool's fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFill {
    pub name: String,
    /// Its NUMA socket (-1: any).
    pub socket: i32,
    pub size: u32,
    /// Free mbufs, the per-lcore caches' included.
    pub available: u32,
}

/// The EAL's memory as commands see it.
pub trait EalMemory: Send + Sync + std::fmt::Debug {
    /// DPDK's dump of `what`: all mempools or rings, or the one called `name`; None when
    /// none has that name.
    fn dump(&self, what: DumpObject, name: Option<&str>) -> Result<Option<String>, String>;
    /// Each NUMA socket's heap (sockets without one left out).
    fn socket_memory(&self) -> Vec<SocketMemory>;
    /// The packet-buffer pools.
    fn pools(&self) -> Vec<PoolFill>;
}

/// The packet-type layers testpmd's `show port N ptypes` lists, by mask.
pub const PTYPE_LAYERS: [(u32, &str); 7] = [
    (0x0000_000f, "L2"),
    (0x0000_00f0, "L3"),
    (0x0000_0f00, "L4"),
    (0x0000_f000, "Tunnel"),
    (0x000f_0000, "Inner L2"),
    (0x00f0_0000, "Inner L3"),
    (0x0f00_0000, "Inner L4"),
];

/// A data port as commands see it; errors are the device's own words.
pub trait PortDevice: Send + Sync + std::fmt::Debug {
    fn describe(&self) -> PortDescription;
    /// Whether the link is up as the driver tells; None where it cannot tell (see
    /// [`PortDescription::link_unknown`]). One query, for the checks made every second.
    fn link_up(&self) -> Option<bool>;
    fn counters(&self) -> Result<PortCounters, String>;
    /// The driver's extended counters, by name.
    fn extended_counters(&self) -> Result<Vec<(String, u64)>, String>;
    fn reset_counters(&self) -> Result<(), String>;
    /// The extended counters (testpmd's `clear port xstats`).
    fn reset_extended_counters(&self) -> Result<(), String>;
    /// Takes every frame (on) or only its own, broadcast and multicast ones (off).
    fn set_promiscuous(&self, on: bool) -> Result<(), String>;
    /// Takes every multicast frame (on) or only the groups it joined (off).
    fn set_allmulticast(&self, on: bool) -> Result<(), String>;
    /// Brings the link up or down, where the driver can (the driver's reason).
    fn set_link(&self, up: bool) -> Result<(), String>;
    /// The RSS hash fields the device uses now (configuration names; none: it does not
    /// hash) and its key.
    fn rss_hash(&self) -> Result<(u64, Vec<u8>), String>;
    /// The RSS redirection table: entry i's queue.
    fn rss_reta(&self) -> Result<Vec<u16>, String>;
    /// The names of the packet types the driver can classify within one layer's mask
    /// ([`PTYPE_LAYERS`]).
    fn supported_ptypes(&self, layer: u32) -> Result<Vec<String>, String>;
    /// Rx or tx queue `queue` (`rx`: which) as its driver describes it.
    fn queue_info(&self, rx: bool, queue: u16) -> Result<QueueInfo, Refusal>;
    /// Whether the port is started (testpmd's `port start|stop`).
    fn started(&self) -> bool;
    /// Stops the port once the workers confirm they left their queues (forwarding is
    /// off): the device takes no frame and its link goes down. The reason where not.
    fn stop(&self) -> Result<(), String>;
    /// Starts a stopped port again as it was set up, its redirection table included.
    fn start(&self) -> Result<(), String>;
}
