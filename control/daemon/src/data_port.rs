//! The daemon's DPDK ports behind the control library's [`PortDevice`], and the mapping of
//! configuration names onto DPDK's RSS fields (the log levels' names are EAL's own).

use dpdk::{Port, PortStats, RssField};
use rvs_control::ports::{PortCounters, PortDescription, PortDevice};

/// A started DPDK port, shared with the command layer while rvs runs.
#[derive(Debug)]
pub struct DataPort(pub Port);

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
        let info = self.0.info();
        PortDescription {
            mac: self.0.mac_addr().ok(),
            driver: info.driver.clone(),
            link: self.0.link().map(|l| l.text).unwrap_or_default(),
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
        }
    }

    fn counters(&self) -> Result<PortCounters, String> {
        self.0.stats().map(counters).map_err(|e| e.to_string())
    }

    fn extended_counters(&self) -> Result<Vec<(String, u64)>, String> {
        let x = self.0.xstats().map_err(|e| e.to_string())?;
        Ok(x.into_iter().map(|x| (x.name, x.value)).collect())
    }

    fn reset_counters(&self) -> Result<(), String> {
        self.0.reset_stats().map_err(|e| e.to_string())
    }
}

/// DPDK's RSS fields for the configuration's names (validated by the config loader).
pub fn rss_fields(names: &[String]) -> Vec<RssField> {
    names.iter().filter_map(|n| RssField::parse(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpdk::log::Level;
    use rvs_control::config::{DEFAULT_RSS_FIELDS, LOG_LEVELS, RSS_FIELDS};

    #[test]
    fn every_configuration_name_is_dpdks() {
        for n in RSS_FIELDS.iter().chain(&DEFAULT_RSS_FIELDS) {
            assert!(RssField::parse(n).is_some(), "{n}");
        }
        assert_eq!(RSS_FIELDS.len(), RssField::ALL.len());
        for n in LOG_LEVELS {
            assert_eq!(Level::parse(n).map(|l| l.name()), Some(n));
        }
    }
}
