//! The daemon's DPDK ports behind the control library's [`PortDevice`], and the mapping of
//! configuration names onto DPDK's RSS fields (the log levels' names are EAL's own).

use crate::kernel_port;
use dpdk::{Port, PortStats, PortsQuiet, RssField};
use rvs_control::ports::{
    DescLimits, PortCounters, PortDescription, PortDevice, PortLimits, QueueInfo, QueueSettings,
    Refusal,
};
use std::sync::Arc;
use std::time::Duration;

/// A started DPDK port, shared with the command layer while rvs runs; `kernel` names the
/// Linux interface behind an AF_XDP or AF_PACKET port, whose kernel counters (read-only)
/// are shown from their values at the last `clear port xstats`.
#[derive(Debug)]
pub struct DataPort {
    pub port: Port,
    pub kernel: Option<String>,
    kernel_cleared: std::sync::Mutex<Vec<(String, u64)>>,
    /// The device's arguments as the configuration gave them (`iface=...`).
    devargs: Option<String>,
    /// A TAP port's interface name (`net_tap0,iface=NAME`).
    tap_iface: Option<String>,
    /// The workers' confirmation that they left their queues (`port stop|start`).
    quiet: Arc<PortsQuiet>,
    /// The redirection table when the port was stopped, set again when it starts (a
    /// driver may reset it to its own).
    stopped_reta: std::sync::Mutex<Option<Vec<u16>>>,
}

/// How long `port stop|start` waits for every worker to confirm it left its queues.
const QUIET_WAIT: Duration = Duration::from_secs(2);

impl DataPort {
    /// Port `port` of configuration device `device` (`net_tap0,iface=...`), its queues
    /// polled by the workers `quiet` answers for.
    pub fn new(
        port: Port,
        kernel: Option<String>,
        device: &str,
        quiet: Arc<PortsQuiet>,
    ) -> DataPort {
        DataPort {
            port,
            kernel,
            quiet,
            stopped_reta: Default::default(),
            kernel_cleared: Default::default(),
            devargs: device
                .split_once(',')
                .map(|(_, args)| args.to_string())
                .filter(|a| !a.is_empty()),
            tap_iface: tap_iface(device),
        }
    }
}

/// A TAP device's interface name (`net_tap0,iface=NAME`).
fn tap_iface(device: &str) -> Option<String> {
    device
        .starts_with("net_tap")
        .then(|| device.split(',').find_map(|a| a.strip_prefix("iface=")))
        .flatten()
        .map(str::to_string)
}

/// Whether interface `name` is not in this network namespace (sysfs is this namespace's).
fn elsewhere(name: &str) -> bool {
    !std::path::Path::new("/sys/class/net").join(name).exists()
}

fn port_limits(l: &dpdk::DevLimits) -> PortLimits {
    let desc = |d: dpdk::DescLimits| DescLimits {
        max: d.max,
        min: d.min,
        align: d.align,
        seg_max: d.seg_max,
        mtu_seg_max: d.mtu_seg_max,
    };
    PortLimits {
        max_mac_addrs: l.max_mac_addrs,
        max_hash_mac_addrs: l.max_hash_mac_addrs,
        min_rx_bufsize: l.min_rx_bufsize,
        max_rx_pktlen: l.max_rx_pktlen,
        max_lro_pkt_size: l.max_lro_pkt_size,
        max_vfs: l.max_vfs,
        max_vmdq_pools: l.max_vmdq_pools,
        rx_desc: desc(l.rx_desc),
        tx_desc: desc(l.tx_desc),
        rx_burst_size: l.rx_burst_size,
    }
}

pub fn counters(s: PortStats) -> PortCounters {
    PortCounters {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        q_ipackets: s.q_ipackets,
        q_opackets: s.q_opackets,
    }
}

impl PortDevice for DataPort {
    fn describe(&self) -> PortDescription {
        let info = self.port.info();
        let link = self.port.link().ok();
        let (rx_queues, tx_queues) = self.port.queue_counts();
        let (rx_desc, tx_desc) = self.port.desc_counts();
        PortDescription {
            mac: self.port.mac_addr().ok(),
            driver: info.driver.clone(),
            link: link.as_ref().map(|l| l.text.clone()).unwrap_or_default(),
            link_up: link.as_ref().is_some_and(|l| l.up),
            // The TAP driver finds its interface by name in this namespace only.
            link_unknown: link.is_none() || self.tap_iface.as_deref().is_some_and(elsewhere),
            link_speed_mbps: link.as_ref().map_or(0, |l| l.speed_mbps),
            full_duplex: link.as_ref().is_some_and(|l| l.full_duplex),
            autoneg: link.as_ref().is_some_and(|l| l.autoneg),
            socket: info.socket,
            mtu: self.port.mtu().ok(),
            promiscuous: self.port.promiscuous(),
            allmulticast: self.port.allmulticast(),
            fw_version: self.port.fw_version(),
            devargs: self.devargs.clone(),
            vlan_offload: self.port.vlan_offload(),
            limits: port_limits(&info.limits),
            dev_capa: info.limits.dev_capa,
            capabilities: (0..64)
                .map(|b| 1u64 << b)
                .filter(|b| info.limits.dev_capa & b != 0)
                .map(dpdk::capability_name)
                .collect(),
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            rss_offloads: info.rss_offloads,
            rss_hf: self.port.rss_hash_fields(),
            rx_queues,
            tx_queues,
            rx_desc,
            tx_desc,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            rx_offloads: self.port.offloads().0,
            tx_offloads: self.port.offloads().1,
            rxq: queue_settings(self.port.rx_queue_settings(0)),
            txq: queue_settings(self.port.tx_queue_settings(0)),
        }
    }

    fn link_up(&self) -> Option<bool> {
        if self.tap_iface.as_deref().is_some_and(elsewhere) {
            return None;
        }
        self.port.link().ok().map(|l| l.up)
    }

    fn set_link(&self, up: bool) -> Result<(), String> {
        self.port.set_link(up).map_err(|e| e.reason())
    }

    fn set_promiscuous(&self, on: bool) -> Result<(), String> {
        // The driver's reason alone, as testpmd prints it.
        self.port.set_promiscuous(on).map_err(|e| e.reason())
    }

    fn set_allmulticast(&self, on: bool) -> Result<(), String> {
        self.port.set_allmulticast(on).map_err(|e| e.reason())
    }

    fn rss_reta(&self) -> Result<Vec<u16>, String> {
        self.port.reta().map_err(|e| e.reason())
    }

    fn supported_ptypes(&self, layer: u32) -> Result<Vec<String>, String> {
        let types = self.port.supported_ptypes(layer).map_err(|e| e.reason())?;
        Ok(types.into_iter().map(dpdk::ptype_name).collect())
    }

    fn queue_info(&self, rx: bool, queue: u16) -> Result<QueueInfo, Refusal> {
        let info = if rx {
            self.port.rx_queue_info(queue)
        } else {
            self.port.tx_queue_info(queue)
        };
        let i = info.map_err(|e| (e.reason(), e.errno))?;
        Ok(QueueInfo {
            settings: queue_settings(i.settings),
            mempool: i.mempool,
            drop_en: i.drop_en,
            deferred_start: i.deferred_start,
            scattered: i.scattered,
            state: i.state,
            buf_size: i.buf_size,
            burst_mode: i.burst_mode,
        })
    }

    fn rss_hash(&self) -> Result<(u64, Vec<u8>), String> {
        self.port.rss_hash_conf().map_err(|e| e.reason())
    }

    fn started(&self) -> bool {
        self.port.is_started()
    }

    fn stop(&self) -> Result<(), String> {
        let idle = self.quiet.idle(QUIET_WAIT)?;
        // The table rvs programmed (flows to their owners' queues), where the device has one.
        let reta = (self.port.queue_counts().0 > 1)
            .then(|| self.port.reta().ok())
            .flatten();
        *self.stopped_reta.lock().map_err(|e| e.to_string())? = reta;
        self.port.stop_idle(&idle).map_err(|e| e.reason())
    }

    fn start(&self) -> Result<(), String> {
        let idle = self.quiet.idle(QUIET_WAIT)?;
        self.port.start_idle(&idle).map_err(|e| e.reason())?;
        let saved = self.stopped_reta.lock().map_err(|e| e.to_string())?.take();
        match saved {
            Some(table) if self.port.reta().ok().as_ref() != Some(&table) => {
                self.port.set_reta(&table).map_err(|e| {
                    format!(
                        "its redirection table could not be set again ({}): flows it puts on another worker's queue cross a hand-off ring",
                        e.reason()
                    )
                })
            }
            _ => Ok(()),
        }
    }

    fn counters(&self) -> Result<PortCounters, String> {
        self.port.stats().map(counters).map_err(|e| e.to_string())
    }

    fn extended_counters(&self) -> Result<Vec<(String, u64)>, String> {
        let x = self.port.xstats().map_err(|e| e.to_string())?;
        let mut all: Vec<(String, u64)> = x.into_iter().map(|x| (x.name, x.value)).collect();
        // Frames the kernel dropped before rvs saw them (DPDK counts only its own rings).
        if let Some(iface) = &self.kernel {
            let cleared = self.kernel_cleared.lock().map_err(|e| e.to_string())?;
            all.extend(since_cleared(kernel_port::kernel_counters(iface), &cleared));
        }
        Ok(all)
    }

    fn reset_counters(&self) -> Result<(), String> {
        self.port.reset_stats().map_err(|e| e.to_string())
    }

    fn reset_extended_counters(&self) -> Result<(), String> {
        self.port.reset_xstats().map_err(|e| e.reason())?;
        if let Some(iface) = &self.kernel {
            *self.kernel_cleared.lock().map_err(|e| e.to_string())? =
                kernel_port::kernel_counters(iface);
        }
        Ok(())
    }
}

/// Kernel counters from their values at the last clear (a counter the kernel reset since
/// reads from zero).
fn since_cleared(now: Vec<(String, u64)>, cleared: &[(String, u64)]) -> Vec<(String, u64)> {
    now.into_iter()
        .map(|(name, v)| {
            let then = cleared.iter().find(|(n, _)| *n == name).map_or(0, |c| c.1);
            let v = if v >= then { v - then } else { v };
            (name, v)
        })
        .collect()
}

/// DPDK's RSS fields for the configuration's names (validated by the config loader).
pub fn rss_fields(names: &[String]) -> Vec<RssField> {
    names.iter().filter_map(|n| RssField::parse(n)).collect()
}

fn queue_settings(q: dpdk::QueueSettings) -> QueueSettings {
    QueueSettings {
        desc: q.desc,
        free_thresh: q.free_thresh,
        pthresh: q.pthresh,
        hthresh: q.hthresh,
        wthresh: q.wthresh,
        offloads: q.offloads,
        rs_thresh: q.rs_thresh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpdk::log::Level;
    use rvs_control::config::{DEFAULT_RSS_FIELDS, LOG_LEVELS, RSS_FIELDS};

    #[test]
    fn a_tap_moved_to_another_namespace_has_no_readable_link() {
        assert_eq!(
            tap_iface("net_tap0,iface=rvsl-dr").as_deref(),
            Some("rvsl-dr")
        );
        assert_eq!(
            tap_iface("net_tap1,remote=eth0,iface=t1").as_deref(),
            Some("t1")
        );
        assert_eq!(tap_iface("net_tap0"), None);
        assert_eq!(tap_iface("net_af_xdp0,iface=veth0"), None);
        assert!(!elsewhere("lo"), "lo is in every namespace");
        assert!(elsewhere("rvs-no-such-if"));
    }

    #[test]
    fn kernel_counters_read_from_their_last_clear() {
        let named = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|&(n, c)| (n.to_string(), c)).collect()
        };
        let cleared = named(&[("kernel_rx_dropped", 7), ("kernel_tx_dropped", 2)]);
        let now = named(&[
            ("kernel_rx_dropped", 10),
            ("kernel_tx_dropped", 1),
            ("kernel_rx_fifo_errors", 4),
        ]);
        // A counter below its cleared value was reset by the kernel (the interface came
        // back): it reads whole.
        assert_eq!(
            since_cleared(now, &cleared),
            named(&[
                ("kernel_rx_dropped", 3),
                ("kernel_tx_dropped", 1),
                ("kernel_rx_fifo_errors", 4)
            ])
        );
    }

    #[test]
    fn every_configuration_name_is_dpdks() {
        for n in RSS_FIELDS.iter().chain(&DEFAULT_RSS_FIELDS) {
            assert!(RssField::parse(n).is_some(), "{n}");
        }
        assert_eq!(RSS_FIELDS.len(), RssField::ALL.len());
        // The console names DPDK's bits by testpmd's table: the same bits by the same name.
        for f in RssField::ALL {
            assert_eq!(
                rvs_control::rss_types::bits(f.name()),
                Some(f.bits()),
                "{}",
                f.name()
            );
        }
        for n in LOG_LEVELS {
            assert_eq!(Level::parse(n).map(|l| l.name()), Some(n));
        }
    }
}

/// The EAL's memory for the console's `dump` commands and the pools' metrics.
#[derive(Debug)]
pub struct EalMemoryView {
    memory: dpdk::MemoryView,
    /// The data ports' mbuf pools, by name and NUMA socket.
    pools: Vec<(String, i32, dpdk::Mempool)>,
}

impl EalMemoryView {
    pub fn new(memory: dpdk::MemoryView, pools: Vec<(String, i32, dpdk::Mempool)>) -> Self {
        EalMemoryView { memory, pools }
    }
}

impl rvs_control::ports::EalMemory for EalMemoryView {
    fn dump(
        &self,
        what: rvs_control::ports::DumpObject,
        name: Option<&str>,
    ) -> Result<Option<String>, String> {
        use rvs_control::ports::DumpObject as D;
        let what = match what {
            D::Mempool => dpdk::Dump::Mempool,
            D::Ring => dpdk::Dump::Ring,
            D::Memzone => dpdk::Dump::Memzone,
            D::Physmem => dpdk::Dump::Physmem,
            D::Lcores => dpdk::Dump::Lcores,
            D::Devargs => dpdk::Dump::Devargs,
            D::LogTypes => dpdk::Dump::LogTypes,
        };
        self.memory.dump(what, name).map_err(|e| e.to_string())
    }

    fn socket_memory(&self) -> Vec<rvs_control::ports::SocketMemory> {
        (self.memory.socket_heaps().into_iter())
            .map(|h| rvs_control::ports::SocketMemory {
                socket: h.socket,
                total_bytes: h.total_bytes,
                alloc_bytes: h.alloc_bytes,
                free_bytes: h.free_bytes,
                alloc_count: h.alloc_count,
                free_count: h.free_count,
            })
            .collect()
    }

    fn pools(&self) -> Vec<rvs_control::ports::PoolFill> {
        (self.pools.iter())
            .map(|(name, socket, pool)| rvs_control::ports::PoolFill {
                name: name.clone(),
                socket: *socket,
                size: pool.size(),
                available: pool.available(),
            })
            .collect()
    }
}
