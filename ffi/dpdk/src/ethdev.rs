use crate::error::{check, Error, Result};
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;
use crate::Eal;
use std::ffi::CStr;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// An ethdev port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Fields the NIC's RSS hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssField {
    Ip,
    Tcp,
    Udp,
    Sctp,
    /// Hash only the source address (modifier).
    L3SrcOnly,
    L3DstOnly,
    /// Hash only the source port (modifier).
    L4SrcOnly,
    L4DstOnly,
}

impl RssField {
    pub const ALL: [RssField; 8] = [
        RssField::Ip,
        RssField::Tcp,
        RssField::Udp,
        RssField::Sctp,
        RssField::L3SrcOnly,
        RssField::L3DstOnly,
        RssField::L4SrcOnly,
        RssField::L4DstOnly,
    ];

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            RssField::Ip => "ip",
            RssField::Tcp => "tcp",
            RssField::Udp => "udp",
            RssField::Sctp => "sctp",
            RssField::L3SrcOnly => "l3-src-only",
            RssField::L3DstOnly => "l3-dst-only",
            RssField::L4SrcOnly => "l4-src-only",
            RssField::L4DstOnly => "l4-dst-only",
        }
    }

    pub fn parse(name: &str) -> Option<RssField> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// `RTE_ETH_RSS_*` bits.
    pub fn bits(self) -> u64 {
        use dpdk_sys::rvs_rss_set as S;
        let set = match self {
            RssField::Ip => S::RVS_RSS_IP,
            RssField::Tcp => S::RVS_RSS_TCP,
            RssField::Udp => S::RVS_RSS_UDP,
            RssField::Sctp => S::RVS_RSS_SCTP,
            RssField::L3SrcOnly => S::RVS_RSS_L3_SRC_ONLY,
            RssField::L3DstOnly => S::RVS_RSS_L3_DST_ONLY,
            RssField::L4SrcOnly => S::RVS_RSS_L4_SRC_ONLY,
            RssField::L4DstOnly => S::RVS_RSS_L4_DST_ONLY,
        };
        // SAFETY: a pure lookup of compile-time constants.
        unsafe { dpdk_sys::rvs_rss_bits(set) }
    }
}

/// Receive-side scaling request; what the device cannot hash is left out (see
/// [`Port::rss_hash_fields`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConf {
    pub fields: Vec<RssField>,
    /// Hash key; its length must be the device's `hash_key_size`. None keeps the PMD's.
    pub key: Option<Vec<u8>>,
}

impl Default for RssConf {
    fn default() -> Self {
        RssConf {
            fields: vec![RssField::Ip, RssField::Tcp, RssField::Udp],
            key: None,
        }
    }
}

/// How to set a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConf {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// None keeps the device's MTU.
    pub mtu: Option<u16>,
    pub promiscuous: bool,
    /// Used when the port has more than one rx queue and the device hashes.
    pub rss: RssConf,
    /// Enable IPv4 header checksum offload on transmit where the device has it.
    pub tx_ipv4_checksum: bool,
}

impl Default for PortConf {
    fn default() -> Self {
        PortConf {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            promiscuous: true,
            rss: RssConf::default(),
            tx_ipv4_checksum: true,
        }
    }
}

/// What a device says it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub hash_key_size: u8,
    pub reta_size: u16,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub rx_offload_capa: u64,
    pub tx_offload_capa: u64,
    pub socket: i32,
    /// The settings a queue set up with the device's defaults gets (rx, tx).
    pub default_rxq: QueueSettings,
    pub default_txq: QueueSettings,
    pub limits: DevLimits,
}

/// The device's limits and capabilities testpmd's `show port info` lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevLimits {
    pub max_mac_addrs: u32,
    pub max_hash_mac_addrs: u32,
    pub min_rx_bufsize: u32,
    pub max_rx_pktlen: u32,
    pub max_lro_pkt_size: u32,
    pub max_vfs: u16,
    pub max_vmdq_pools: u16,
    pub rx_desc: DescLimits,
    pub tx_desc: DescLimits,
    /// `RTE_ETH_DEV_CAPA_*` bits.
    pub dev_capa: u64,
    /// The driver's preferred rx burst (`default_rxportconf.burst_size`; 0: none).
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

impl DescLimits {
    fn of(l: &dpdk_sys::rte_eth_desc_lim) -> DescLimits {
        DescLimits {
            max: l.nb_max,
            min: l.nb_min,
            align: l.nb_align,
            seg_max: l.nb_seg_max,
            mtu_seg_max: l.nb_mtu_seg_max,
        }
    }
}

/// ethdev's name for one `RTE_ETH_DEV_CAPA_*` bit ("unknown" for a bit it does not know).
pub fn capability_name(bit: u64) -> String {
    // SAFETY: returns a static string (or NULL) for any value.
    let p = unsafe { dpdk_sys::rte_eth_dev_capability_name(bit) };
    if p.is_null() {
        return "unknown".into();
    }
    // SAFETY: a static NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A packet type's name as DPDK spells it (`L2_ETHER`, `L3_IPV4_EXT_UNKNOWN`...), several
/// layers' names space-separated.
pub fn ptype_name(ptype: u32) -> String {
    let mut buf = [0 as std::ffi::c_char; 256];
    // SAFETY: buf is writable for its length; the call NUL-terminates what it writes.
    let ret = unsafe { dpdk_sys::rte_get_ptype_name(ptype, buf.as_mut_ptr(), buf.len()) };
    if ret < 0 {
        return format!("{ptype:#x}");
    }
    // SAFETY: NUL-terminated within buf (above).
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// A queue's ring settings, as testpmd's `show config rxtx` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSettings {
    pub desc: u16,
    pub free_thresh: u16,
    pub pthresh: u8,
    pub hthresh: u8,
    pub wthresh: u8,
    pub offloads: u64,
    /// Tx only: the RS bit threshold.
    pub rs_thresh: u16,
}

/// A queue as its driver describes it (`rte_eth_rxq_info` / `rte_eth_txq_info` and the
/// burst mode); the rx-only fields stay empty for a tx queue.
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
    /// The driver's burst function in its words, " (per queue)" added where it says so;
    /// None where the driver has no such call.
    pub burst_mode: Option<String>,
}

/// The text of a C string DPDK wrote into a fixed array: up to its NUL or the array's end
/// (so a missing NUL reads nothing beyond).
pub(crate) fn c_chars(chars: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn burst_mode_text(mode: &dpdk_sys::rte_eth_burst_mode) -> String {
    // RTE_ETH_BURST_FLAG_PER_QUEUE (a function-like macro bindgen does not expand).
    let per_queue = mode.flags & 1 != 0;
    let info = c_chars(&mode.info);
    if per_queue {
        format!("{info} (per queue)")
    } else {
        info
    }
}

impl QueueSettings {
    fn of_rx(c: &dpdk_sys::rte_eth_rxconf, desc: u16) -> QueueSettings {
        QueueSettings {
            desc,
            free_thresh: c.rx_free_thresh,
            pthresh: c.rx_thresh.pthresh,
            hthresh: c.rx_thresh.hthresh,
            wthresh: c.rx_thresh.wthresh,
            offloads: c.offloads,
            rs_thresh: 0,
        }
    }

    fn of_tx(c: &dpdk_sys::rte_eth_txconf, desc: u16) -> QueueSettings {
        QueueSettings {
            desc,
            free_thresh: c.tx_free_thresh,
            pthresh: c.tx_thresh.pthresh,
            hthresh: c.tx_thresh.hthresh,
            wthresh: c.tx_thresh.wthresh,
            offloads: c.offloads,
            rs_thresh: c.tx_rs_thresh,
        }
    }
}

/// Basic counters (`rte_eth_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortStats {
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

/// One extended counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XStat {
    pub name: String,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
    pub autoneg: bool,
    /// DPDK's own wording (`rte_eth_link_to_str`).
    pub text: String,
}

/// Keeps track of the queue handles handed out, so a port is never stopped or closed while
/// a worker may still poll it.
#[derive(Debug)]
struct QueueToken;

/// A configured ethdev port. Stopped and closed on drop when no queue handle is left.
#[derive(Debug)]
pub struct Port {
    id: PortId,
    info: DevInfo,
    /// The queues configured (rx, tx) and their descriptor counts.
    queue_counts: (u16, u16),
    desc_counts: (u16, u16),
    rss_hash_fields: u64,
    tx_ipv4_checksum: bool,
    /// The port's rx and tx offloads as configured.
    offloads: (u64, u64),
    token: Arc<QueueToken>,
    queues: Option<(Vec<RxQueue>, Vec<TxQueue>)>,
    started: AtomicBool,
    closed: bool,
}

/// Proof that no thread calls a burst function on any queue handle of any port while it
/// lives, made only by [`crate::PortsQuiet::idle`]: a port may then be stopped and
/// started again with its queues out ([`Port::stop_idle`], [`Port::start_idle`]).
#[derive(Debug)]
pub struct QueuesIdle(pub(crate) ());

impl Port {
    /// Reads a port's capabilities.
    pub fn info_of(_eal: &Eal, id: PortId) -> Result<DevInfo> {
        let mut raw = dpdk_sys::rte_eth_dev_info::default();
        check(
            // SAFETY: raw is a writable rte_eth_dev_info; EAL is initialised.
            unsafe { dpdk_sys::rte_eth_dev_info_get(id.0, &mut raw) },
            || format!("port {id}: device info"),
        )?;
        let driver = if raw.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string owned by the PMD.
            unsafe { CStr::from_ptr(raw.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: plain query of a valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id.0) };
        Ok(DevInfo {
            driver,
            max_rx_queues: raw.max_rx_queues,
            max_tx_queues: raw.max_tx_queues,
            rss_offloads: raw.flow_type_rss_offloads,
            hash_key_size: raw.hash_key_size,
            reta_size: raw.reta_size,
            min_mtu: raw.min_mtu,
            max_mtu: raw.max_mtu,
            rx_offload_capa: raw.rx_offload_capa,
            tx_offload_capa: raw.tx_offload_capa,
            socket,
            default_rxq: QueueSettings::of_rx(&raw.default_rxconf, 0),
            default_txq: QueueSettings::of_tx(&raw.default_txconf, 0),
            limits: DevLimits {
                max_mac_addrs: raw.max_mac_addrs,
                max_hash_mac_addrs: raw.max_hash_mac_addrs,
                min_rx_bufsize: raw.min_rx_bufsize,
                max_rx_pktlen: raw.max_rx_pktlen,
                max_lro_pkt_size: raw.max_lro_pkt_size,
                max_vfs: raw.max_vfs,
                max_vmdq_pools: raw.max_vmdq_pools,
                rx_desc: DescLimits::of(&raw.rx_desc_lim),
                tx_desc: DescLimits::of(&raw.tx_desc_lim),
                dev_capa: raw.dev_capa,
                rx_burst_size: raw.default_rxportconf.burst_size,
            },
        })
    }

    /// Configures the port and its queues (rx buffers from `pool`) without starting it.
    pub fn configure(eal: &Eal, id: PortId, conf: &PortConf, pool: Mempool) -> Result<Port> {
        let info = Port::info_of(eal, id)?;
        let ctx = |what: &str| format!("port {id} ({}): {what}", info.driver);
        if conf.rx_queues == 0 || conf.rx_queues > info.max_rx_queues {
            return Err(Error::new(
                ctx(&format!(
                    "{} rx queues requested, the device has 1..={}",
                    conf.rx_queues, info.max_rx_queues
                )),
                libc::EINVAL,
            ));
        }
        if conf.tx_queues == 0 || conf.tx_queues > info.max_tx_queues {
            return Err(Error::new(
                ctx(&format!(
                    "{} tx queues requested, the device has 1..={}",
                    conf.tx_queues, info.max_tx_queues
                )),
                libc::EINVAL,
            ));
        }
        let mut raw = dpdk_sys::rte_eth_conf::default();
        if let Some(mtu) = conf.mtu {
            if mtu < info.min_mtu || mtu > info.max_mtu {
                return Err(Error::new(
                    ctx(&format!(
                        "MTU {mtu} outside the device's {}..={}",
                        info.min_mtu, info.max_mtu
                    )),
                    libc::EINVAL,
                ));
            }
            raw.rxmode.mtu = u32::from(mtu);
        }
        let requested: u64 = conf
            .rss
            .fields
            .iter()
            .map(|f| f.bits())
            .fold(0, |a, b| a | b);
        let rss_hash_fields = if conf.rx_queues > 1 {
            requested & info.rss_offloads
        } else {
            0
        };
        // SAFETY: returns a constant.
        let ipv4_cksum = unsafe { dpdk_sys::rvs_tx_offload_ipv4_cksum() };
        let tx_ipv4_checksum = conf.tx_ipv4_checksum && info.tx_offload_capa & ipv4_cksum != 0;
        if tx_ipv4_checksum {
            raw.txmode.offloads |= ipv4_cksum;
        }
        let mut key = conf.rss.key.clone();
        if rss_hash_fields != 0 {
            raw.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            raw.rx_adv_conf.rss_conf.rss_hf = rss_hash_fields;
            if let Some(k) = key.as_mut() {
                if info.hash_key_size != 0 && k.len() != usize::from(info.hash_key_size) {
                    return Err(Error::new(
                        ctx(&format!(
                            "RSS key of {} bytes, the device takes {}",
                            k.len(),
                            info.hash_key_size
                        )),
                        libc::EINVAL,
                    ));
                }
                raw.rx_adv_conf.rss_conf.rss_key = k.as_mut_ptr();
                raw.rx_adv_conf.rss_conf.rss_key_len = k.len() as u8;
            }
        }
        // SAFETY: raw is a fully initialised rte_eth_conf; the RSS key (if any) outlives the
        // call, during which the PMD copies it.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_configure(id.0, conf.rx_queues, conf.tx_queues, &raw) };
        check(ret, || ctx("configure"))?;
        let (mut rx_desc, mut tx_desc) = (conf.rx_desc, conf.tx_desc);
        check(
            // SAFETY: both pointers are valid u16s; the port is configured.
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_desc, &mut tx_desc) },
            || ctx("descriptor counts"),
        )?;
        let socket = if info.socket < 0 {
            0
        } else {
            info.socket as u32
        };
        for q in 0..conf.rx_queues {
            check(
                // SAFETY: configured port, q < rx_queues, null rxconf = PMD defaults, pool
                // valid for the process lifetime.
                unsafe {
                    dpdk_sys::rte_eth_rx_queue_setup(
                        id.0,
                        q,
                        rx_desc,
                        socket,
                        std::ptr::null(),
                        pool.as_ptr(),
                    )
                },
                || ctx(&format!("rx queue {q} setup")),
            )?;
        }
        for q in 0..conf.tx_queues {
            check(
                // SAFETY: configured port, q < tx_queues, null txconf = PMD defaults.
                unsafe {
                    dpdk_sys::rte_eth_tx_queue_setup(id.0, q, tx_desc, socket, std::ptr::null())
                },
                || ctx(&format!("tx queue {q} setup")),
            )?;
        }
        let token = Arc::new(QueueToken);
        let rx = (0..conf.rx_queues)
            .map(|queue| RxQueue {
                port: id.0,
                queue,
                _token: token.clone(),
            })
            .collect();
        let tx = (0..conf.tx_queues)
            .map(|queue| TxQueue {
                port: id.0,
                queue,
                _token: token.clone(),
            })
            .collect();
        let port = Port {
            id,
            info,
            queue_counts: (conf.rx_queues, conf.tx_queues),
            desc_counts: (rx_desc, tx_desc),
            rss_hash_fields,
            tx_ipv4_checksum,
            offloads: (raw.rxmode.offloads, raw.txmode.offloads),
            token,
            queues: Some((rx, tx)),
            started: AtomicBool::new(false),
            closed: false,
        };
        if conf.promiscuous {
            port.set_promiscuous(true)?;
        }
        Ok(port)
    }

    pub fn id(&self) -> PortId {
        self.id
    }

    /// The rx and tx queues configured.
    pub fn queue_counts(&self) -> (u16, u16) {
        self.queue_counts
    }

    /// The rx and tx descriptors per queue (after the PMD's adjustment).
    pub fn desc_counts(&self) -> (u16, u16) {
        self.desc_counts
    }

    pub fn info(&self) -> &DevInfo {
        &self.info
    }

    /// The port's rx and tx offloads as configured.
    pub fn offloads(&self) -> (u64, u64) {
        self.offloads
    }

    /// Rx queue `q`'s settings as the driver reports them, or (a driver that does not say)
    /// the device's defaults it was set up with.
    pub fn rx_queue_settings(&self, q: u16) -> QueueSettings {
        let mut raw = dpdk_sys::rte_eth_rxq_info::default();
        // SAFETY: raw is a writable rte_eth_rxq_info; the port is configured.
        let ret = unsafe { dpdk_sys::rte_eth_rx_queue_info_get(self.id.0, q, &mut raw) };
        if ret == 0 {
            QueueSettings::of_rx(&raw.conf, raw.nb_desc)
        } else {
            QueueSettings {
                desc: self.desc_counts.0,
                ..self.info.default_rxq
            }
        }
    }

    /// The device's firmware version, where its driver tells it.
    pub fn fw_version(&self) -> Option<String> {
        let mut buf = [0 as std::os::raw::c_char; 64];
        // SAFETY: buf is writable for its length; the driver writes a NUL-terminated
        // string or returns the size it needs (> 0) or an error (< 0).
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_fw_version_get(self.id.0, buf.as_mut_ptr(), buf.len()) };
        (ret == 0).then(|| c_chars(&buf))
    }

    /// The VLAN offloads on (`RTE_ETH_VLAN_*_OFFLOAD` bits), where the driver says.
    pub fn vlan_offload(&self) -> Option<u32> {
        // SAFETY: plain query of a valid port.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_vlan_offload(self.id.0) };
        u32::try_from(ret).ok()
    }

    /// Rx queue `q` as its driver describes it (testpmd's `show rxq info`).
    pub fn rx_queue_info(&self, q: u16) -> Result<QueueInfo> {
        let mut raw = dpdk_sys::rte_eth_rxq_info::default();
        // SAFETY: raw is a writable rte_eth_rxq_info; the port is configured.
        let ret = unsafe { dpdk_sys::rte_eth_rx_queue_info_get(self.id.0, q, &mut raw) };
        check(ret, || format!("port {}: rx queue {q} info", self.id))?;
        let mempool = (!raw.mp.is_null()).then(|| {
            // SAFETY: the driver's pointer to the queue's pool, which lives as long as the
            // port; its name is NUL-terminated within the array.
            let name = unsafe { &(*raw.mp).name };
            c_chars(name)
        });
        let mut mode = dpdk_sys::rte_eth_burst_mode::default();
        // SAFETY: mode is a writable rte_eth_burst_mode; a driver without the call says so.
        let burst = unsafe { dpdk_sys::rte_eth_rx_burst_mode_get(self.id.0, q, &mut mode) };
        Ok(QueueInfo {
            settings: QueueSettings::of_rx(&raw.conf, raw.nb_desc),
            mempool,
            drop_en: raw.conf.rx_drop_en != 0,
            deferred_start: raw.conf.rx_deferred_start != 0,
            scattered: raw.scattered_rx != 0,
            state: raw.queue_state,
            buf_size: raw.rx_buf_size,
            burst_mode: (burst == 0).then(|| burst_mode_text(&mode)),
        })
    }

    /// Tx queue `q` as its driver describes it (testpmd's `show txq info`).
    pub fn tx_queue_info(&self, q: u16) -> Result<QueueInfo> {
        let mut raw = dpdk_sys::rte_eth_txq_info::default();
        // SAFETY: raw is a writable rte_eth_txq_info; the port is configured.
        let ret = unsafe { dpdk_sys::rte_eth_tx_queue_info_get(self.id.0, q, &mut raw) };
        check(ret, || format!("port {}: tx queue {q} info", self.id))?;
        let mut mode = dpdk_sys::rte_eth_burst_mode::default();
        // SAFETY: as in rx_queue_info.
        let burst = unsafe { dpdk_sys::rte_eth_tx_burst_mode_get(self.id.0, q, &mut mode) };
        Ok(QueueInfo {
            settings: QueueSettings::of_tx(&raw.conf, raw.nb_desc),
            deferred_start: raw.conf.tx_deferred_start != 0,
            state: raw.queue_state,
            burst_mode: (burst == 0).then(|| burst_mode_text(&mode)),
            ..Default::default()
        })
    }

    /// Tx queue `q`'s settings, as [`Port::rx_queue_settings`].
    pub fn tx_queue_settings(&self, q: u16) -> QueueSettings {
        let mut raw = dpdk_sys::rte_eth_txq_info::default();
        // SAFETY: raw is a writable rte_eth_txq_info; the port is configured.
        let ret = unsafe { dpdk_sys::rte_eth_tx_queue_info_get(self.id.0, q, &mut raw) };
        if ret == 0 {
            QueueSettings::of_tx(&raw.conf, raw.nb_desc)
        } else {
            QueueSettings {
                desc: self.desc_counts.1,
                ..self.info.default_txq
            }
        }
    }

    /// The RSS hash fields in force (0 when the port does not hash).
    /// True when the port computes IPv4 header checksums of mbufs that ask for it
    /// ([`crate::Mbuf::offload_ipv4_checksum`]).
    pub fn tx_ipv4_checksum(&self) -> bool {
        self.tx_ipv4_checksum
    }

    pub fn rss_hash_fields(&self) -> u64 {
        self.rss_hash_fields
    }

    /// Programs the redirection table: `queues[i]` is entry i's queue (`queues.len()` must
    /// be the device's `reta_size`).
    pub fn set_reta(&self, queues: &[u16]) -> Result<()> {
        const GROUP: usize = 64;
        let mut groups: Vec<dpdk_sys::rte_eth_rss_reta_entry64> = queues
            .chunks(GROUP)
            .map(|chunk| {
                let mut g = dpdk_sys::rte_eth_rss_reta_entry64 {
                    mask: if chunk.len() == GROUP {
                        u64::MAX
                    } else {
                        (1u64 << chunk.len()) - 1
                    },
                    reta: [0; GROUP],
                };
                g.reta[..chunk.len()].copy_from_slice(chunk);
                g
            })
            .collect();
        let size = u16::try_from(queues.len())
            .map_err(|_| Error::new("redirection table too large", libc::EINVAL))?;
        // SAFETY: `groups` holds ceil(size / 64) initialised entries, which is what the
        // call reads for a table of `size`; the port is configured.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_rss_reta_update(self.id.0, groups.as_mut_ptr(), size) };
        check(ret, || {
            format!("port {} ({}): redirection table", self.id, self.info.driver)
        })
        .map(|_| ())
    }

    /// The redirection table as the device holds it: entry i's queue.
    pub fn reta(&self) -> Result<Vec<u16>> {
        const GROUP: usize = 64;
        let size = usize::from(self.info.reta_size);
        let mut groups: Vec<dpdk_sys::rte_eth_rss_reta_entry64> = (0..size.div_ceil(GROUP))
            .map(|g| dpdk_sys::rte_eth_rss_reta_entry64 {
                mask: match size - g * GROUP {
                    n if n >= GROUP => u64::MAX,
                    n => (1u64 << n) - 1,
                },
                reta: [0; GROUP],
            })
            .collect();
        // SAFETY: `groups` holds ceil(reta_size / 64) entries, which is what the call
        // writes for a table of reta_size; the port is configured.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_rss_reta_query(
                self.id.0,
                groups.as_mut_ptr(),
                self.info.reta_size,
            )
        };
        check(ret, || {
            format!("port {} ({}): redirection table", self.id, self.info.driver)
        })?;
        Ok(groups.iter().flat_map(|g| g.reta).take(size).collect())
    }

    /// The queue handles, once. Each goes to the one thread that polls it.
    pub fn take_queues(&mut self) -> Option<(Vec<RxQueue>, Vec<TxQueue>)> {
        self.queues.take()
    }

    fn queues_outstanding(&self) -> bool {
        let held = self
            .queues
            .as_ref()
            .map(|(rx, tx)| rx.len() + tx.len())
            .unwrap_or(0);
        Arc::strong_count(&self.token) > 1 + held
    }

    pub fn start(&mut self) -> Result<()> {
        self.start_unpolled()
    }

    /// The driver's start, recorded. Every caller has the port configured with all its
    /// queues set up, and none of them polled or sent on meanwhile: [`Port::start`] starts
    /// a port before its queues are polled (at set-up), [`Port::start_idle`] holds a
    /// [`QueuesIdle`].
    fn start_unpolled(&self) -> Result<()> {
        // SAFETY: as the callers guarantee (above).
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id.0) };
        check(ret, || format!("port {}: start", self.id))?;
        self.started.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The driver's stop, recorded. Every caller has the port started, and none of its
    /// queues polled or sent on meanwhile: [`Port::stop`] has no queue handle out,
    /// [`Port::stop_idle`] holds a [`QueuesIdle`].
    fn stop_unpolled(&self) -> Result<()> {
        // SAFETY: as the callers guarantee (above).
        let ret = unsafe { dpdk_sys::rte_eth_dev_stop(self.id.0) };
        check(ret, || format!("port {}: stop", self.id))?;
        self.started.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the port is started (its queues pass frames).
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// Stops a started port whose queues are out but idle (testpmd's `port stop`): the
    /// device drops what arrives and its link goes down; the queues keep their setup.
    pub fn stop_idle(&self, _idle: &QueuesIdle) -> Result<()> {
        if self.closed || !self.is_started() {
            return Ok(());
        }
        self.stop_unpolled()
    }

    /// Starts again a port [`Port::stop_idle`] stopped (testpmd's `port start`). DPDK
    /// restores its MAC addresses, promiscuous and all-multicast modes; a driver may reset
    /// its redirection table, which the caller sets again.
    pub fn start_idle(&self, _idle: &QueuesIdle) -> Result<()> {
        if self.closed || self.is_started() {
            return Ok(());
        }
        self.start_unpolled()
    }

    /// Stops the port; refused while a queue handle is out (a worker may still poll it).
    pub fn stop(&mut self) -> Result<()> {
        if self.queues_outstanding() {
            return Err(Error::new(
                format!("port {}: stop while its queues are in use", self.id),
                libc::EBUSY,
            ));
        }
        if self.is_started() {
            // No other thread holds a queue of this port (checked above).
            self.stop_unpolled()?;
        }
        Ok(())
    }

    /// Stops and closes the port, releasing its queues (and flushing pcap files).
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.stop()?;
        self.queues = None;
        // SAFETY: the port is stopped and no queue handle exists any more.
        let ret = unsafe { dpdk_sys::rte_eth_dev_close(self.id.0) };
        check(ret, || format!("port {}: close", self.id))?;
        self.closed = true;
        Ok(())
    }

    pub fn set_promiscuous(&self, on: bool) -> Result<()> {
        // SAFETY: plain control call on a valid port.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(self.id.0)
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(self.id.0)
            }
        };
        check(ret, || format!("port {}: promiscuous mode", self.id)).map(|_| ())
    }

    pub fn promiscuous(&self) -> bool {
        // SAFETY: plain query of a valid port.
        unsafe { dpdk_sys::rte_eth_promiscuous_get(self.id.0) == 1 }
    }

    pub fn set_allmulticast(&self, on: bool) -> Result<()> {
        // SAFETY: plain control call on a valid port.
        let ret = unsafe {
            if on {
                dpdk_sys::rte_eth_allmulticast_enable(self.id.0)
            } else {
                dpdk_sys::rte_eth_allmulticast_disable(self.id.0)
            }
        };
        check(ret, || format!("port {}: all-multicast mode", self.id)).map(|_| ())
    }

    pub fn allmulticast(&self) -> bool {
        // SAFETY: plain query of a valid port.
        unsafe { dpdk_sys::rte_eth_allmulticast_get(self.id.0) == 1 }
    }

    /// The RSS hash fields and key the device uses now.
    pub fn rss_hash_conf(&self) -> Result<(u64, Vec<u8>)> {
        let mut key = vec![0u8; usize::from(self.info.hash_key_size.max(1))];
        let mut conf = dpdk_sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: key.len() as u8,
            ..Default::default()
        };
        // SAFETY: conf points at a writable key buffer of rss_key_len bytes that outlives
        // the call; the port is configured.
        let ret = unsafe { dpdk_sys::rte_eth_dev_rss_hash_conf_get(self.id.0, &mut conf) };
        check(ret, || format!("port {}: RSS hash configuration", self.id))?;
        key.truncate(usize::from(conf.rss_key_len));
        Ok((conf.rss_hf, key))
    }

    /// The packet types the driver can classify within `layer` (one layer's mask, as
    /// `RTE_PTYPE_L2_MASK`), whether or not it classifies them now.
    pub fn supported_ptypes(&self, layer: u32) -> Result<Vec<u32>> {
        // SAFETY: a null array with length 0 asks only for the count.
        let n = unsafe {
            dpdk_sys::rte_eth_dev_get_supported_ptypes(self.id.0, layer, std::ptr::null_mut(), 0)
        };
        check(n, || format!("port {}: supported packet types", self.id))?;
        let mut types = vec![0u32; n.max(0) as usize];
        // SAFETY: `types` has room for the `n` entries the call may write.
        let got = unsafe {
            dpdk_sys::rte_eth_dev_get_supported_ptypes(self.id.0, layer, types.as_mut_ptr(), n)
        };
        check(got, || format!("port {}: supported packet types", self.id))?;
        types.truncate(got.max(0) as usize);
        Ok(types)
    }

    /// Tells the driver which packet types rvs reads from its mbufs (`mask`: layers'
    /// masks; 0, none: a driver that can then skips classifying each frame, as testpmd
    /// asks at start). Made before the port starts.
    pub fn set_ptypes(&self, mask: u32) -> Result<()> {
        // SAFETY: a null array with length 0: the driver reports nothing back.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_set_ptypes(self.id.0, mask, std::ptr::null_mut(), 0) };
        check(ret, || format!("port {}: set packet types", self.id))?;
        Ok(())
    }

    pub fn mtu(&self) -> Result<u16> {
        let mut mtu = 0u16;
        check(
            // SAFETY: mtu is a valid out-pointer.
            unsafe { dpdk_sys::rte_eth_dev_get_mtu(self.id.0, &mut mtu) },
            || format!("port {}: get MTU", self.id),
        )?;
        Ok(mtu)
    }

    pub fn set_mtu(&self, mtu: u16) -> Result<()> {
        check(
            // SAFETY: plain control call on a valid port.
            unsafe { dpdk_sys::rte_eth_dev_set_mtu(self.id.0, mtu) },
            || format!("port {}: set MTU {mtu}", self.id),
        )
        .map(|_| ())
    }

    pub fn mac_addr(&self) -> Result<[u8; 6]> {
        let mut mac = dpdk_sys::rte_ether_addr::default();
        check(
            // SAFETY: mac is a valid out-pointer.
            unsafe { dpdk_sys::rte_eth_macaddr_get(self.id.0, &mut mac) },
            || format!("port {}: MAC address", self.id),
        )?;
        Ok(mac.addr_bytes)
    }

    pub fn link(&self) -> Result<LinkStatus> {
        link_of(self.id)
    }

    /// Brings the link up or down (testpmd's `set link-up|link-down port N`), where the
    /// driver can.
    pub fn set_link(&self, up: bool) -> Result<()> {
        // SAFETY: plain control call on a valid port.
        let ret = unsafe {
            if up {
                dpdk_sys::rte_eth_dev_set_link_up(self.id.0)
            } else {
                dpdk_sys::rte_eth_dev_set_link_down(self.id.0)
            }
        };
        check(ret, || format!("port {}: set link", self.id)).map(drop)
    }

    pub fn stats(&self) -> Result<PortStats> {
        stats_of(self.id)
    }

    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: plain control call on a valid port.
        let ret = unsafe { dpdk_sys::rte_eth_stats_reset(self.id.0) };
        check(ret, || format!("port {}: reset stats", self.id)).map(drop)
    }

    /// Zeroes the extended counters (ethdev falls back to the basic ones where the driver
    /// has no extended reset of its own).
    pub fn reset_xstats(&self) -> Result<()> {
        // SAFETY: plain control call on a valid port.
        let ret = unsafe { dpdk_sys::rte_eth_xstats_reset(self.id.0) };
        check(ret, || format!("port {}: reset xstats", self.id)).map(drop)
    }

    pub fn xstats(&self) -> Result<Vec<XStat>> {
        xstats_of(self.id)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // With queues still out (a worker not joined) the port is left as it is.
        let _ = self.close_inner();
    }
}

fn link_of(id: PortId) -> Result<LinkStatus> {
    let mut link = dpdk_sys::rte_eth_link::default();
    check(
        // SAFETY: link is a valid out-pointer.
        unsafe { dpdk_sys::rte_eth_link_get_nowait(id.0, &mut link) },
        || format!("port {id}: link status"),
    )?;
    let mut buf = [0 as std::os::raw::c_char; 128];
    // SAFETY: buf is writable for its length; rte_eth_link_to_str writes within it.
    unsafe { dpdk_sys::rte_eth_link_to_str(buf.as_mut_ptr(), buf.len(), &link) };
    let text = c_chars(&buf);
    Ok(LinkStatus {
        up: link.link_status() != 0,
        speed_mbps: link.link_speed,
        full_duplex: link.link_duplex() != 0,
        autoneg: link.link_autoneg() != 0,
        text,
    })
}

fn stats_of(id: PortId) -> Result<PortStats> {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: s is a valid out-pointer.
    let ret = unsafe { dpdk_sys::rte_eth_stats_get(id.0, &mut s) };
    check(ret, || format!("port {id}: stats"))?;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        q_ipackets: s.q_ipackets.to_vec(),
        q_opackets: s.q_opackets.to_vec(),
    })
}

fn xstats_of(id: PortId) -> Result<Vec<XStat>> {
    // SAFETY: a null array with size 0 asks for the count only.
    let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(id.0, std::ptr::null_mut(), 0) };
    let n = check(n, || format!("port {id}: xstats names"))? as usize;
    let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n];
    let mut values = vec![dpdk_sys::rte_eth_xstat::default(); n];
    // SAFETY: both arrays hold n writable elements.
    let got = unsafe { dpdk_sys::rte_eth_xstats_get_names(id.0, names.as_mut_ptr(), n as u32) };
    let got_names = check(got, || format!("port {id}: xstats names"))? as usize;
    // SAFETY: as above.
    let got = unsafe { dpdk_sys::rte_eth_xstats_get(id.0, values.as_mut_ptr(), n as u32) };
    let got_values = check(got, || format!("port {id}: xstats"))? as usize;
    let count = got_names.min(got_values).min(n);
    Ok(values[..count]
        .iter()
        .filter_map(|v| {
            let name = names.get(v.id as usize)?;
            Some(XStat {
                name: c_chars(&name.name),
                value: v.value,
            })
        })
        .collect())
}

/// The receive side of one (port, queue); one owner polls it.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    _token: Arc<QueueToken>,
}

impl RxQueue {
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the burst's free slots; returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        self.rx_burst_up_to(burst, N)
    }

    /// Receives at most `most` frames into the burst's free slots (testpmd's `set burst`);
    /// returns how many arrived.
    #[inline]
    pub fn rx_burst_up_to<const N: usize>(
        &mut self,
        burst: &mut MbufBurst<N>,
        most: usize,
    ) -> usize {
        let spare = burst.spare().min(most);
        if spare == 0 {
            return 0;
        }
        // SAFETY: this handle is the only poller of the queue (it is not Clone and rx_burst
        // takes &mut self); DPDK writes at most `spare` owned mbuf pointers into the free
        // slots, which then become part of the burst.
        unsafe {
            let n =
                dpdk_sys::rvs_eth_rx_burst(self.port, self.queue, burst.spare_ptr(), spare as u16)
                    as usize;
            burst.set_len(burst.len() + n);
            n
        }
    }
}

/// The transmit side of one (port, queue); one owner sends on it.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _token: Arc<QueueToken>,
}

impl TxQueue {
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Sends from the front of the burst; what the queue did not take stays in the burst
    /// (at its front) for a retry or to be freed.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        if burst.is_empty() {
            return 0;
        }
        // SAFETY: this handle is the only sender on the queue; the first len slots hold
        // owned mbufs, of which DPDK takes the first n it returns.
        let n = unsafe {
            dpdk_sys::rvs_eth_tx_burst(
                self.port,
                self.queue,
                burst.as_mut_ptr(),
                burst.len() as u16,
            )
        } as usize;
        burst.consumed_front(n);
        n
    }
}
