//! Generates the raw DPDK bindings from the installed headers and builds the C shim.
//! Both see exactly the words `pkg-config --cflags libdpdk` prints (DPDK needs its
//! `-include rte_config.h` and `-march=...`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config_cflags() -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config not found: run scripts/setup");
    if !out.status.success() {
        panic!(
            "pkg-config cannot find libdpdk (run scripts/setup): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let cflags = pkg_config_cflags();
    // Emits the -L/-l flags of the shared DPDK libraries; EAL loads the PMD plugins itself.
    pkg_config::Config::new()
        .probe("libdpdk")
        .expect("libdpdk not found through pkg-config");

    let mut shim = cc::Build::new();
    shim.file("shim/shim.c").opt_level(3).warnings(false);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("rvs_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&cflags)
        .allowlist_function("rvs_.*")
        .allowlist_type("rvs_log_write_fn")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|wait_lcore|mp_wait_lcore|process_type|has_hugepages)")
        .allowlist_function("rte_(lcore_count|get_main_lcore|get_next_lcore|lcore_is_enabled|lcore_to_socket_id|socket_id|socket_count|socket_id_by_idx)")
        .allowlist_function("rte_thread_(register|unregister)")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_openlog_stream|rte_log_cur_msg_loglevel|rte_log_set_global_level|rte_log_get_global_level")
        .allowlist_function("rte_dev_probe|rte_dev_remove")
        .allowlist_function("rte_pktmbuf_pool_create|rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_(avail_count|in_use_count|lookup)")
        .allowlist_function("rte_ring_(create|free)")
        .allowlist_function("rte_eth_(dev_configure|dev_adjust_nb_rx_tx_desc|dev_info_get|dev_start|dev_stop|dev_close|dev_count_avail|dev_socket_id|dev_get_name_by_port|dev_set_mtu|dev_get_mtu|dev_is_valid_port|iterator_init|iterator_next|iterator_cleanup|rx_queue_setup|tx_queue_setup|promiscuous_enable|promiscuous_disable|promiscuous_get|allmulticast_enable|allmulticast_disable|allmulticast_get|link_get_nowait|link_to_str|stats_get|stats_reset|xstats_get|xstats_get_names|xstats_reset|macaddr_get|dev_rss_hash_conf_get|dev_rss_reta_update|dev_rss_reta_query|rx_queue_info_get|tx_queue_info_get|rx_burst_mode_get|tx_burst_mode_get|dev_fw_version_get|dev_get_vlan_offload|dev_capability_name|dev_set_link_up|dev_set_link_down|dev_get_supported_ptypes|dev_set_ptypes)")
        .allowlist_function("rte_get_ptype_name")
        .allowlist_function("rte_malloc_get_socket_stats")
        .allowlist_type("rte_malloc_socket_stats|rvs_dump")
        .allowlist_type("rvs_layout_type|rvs_rss_set|rte_mbuf|rte_eth_conf|rte_eth_dev_info|rte_eth_rxconf|rte_eth_txconf|rte_eth_stats|rte_eth_xstat|rte_eth_xstat_name|rte_eth_link|rte_eth_rss_conf|rte_eth_rss_reta_entry64|rte_ether_addr|rte_dev_iterator|rte_eth_rxq_info|rte_eth_txq_info|rte_eth_burst_mode")
        .allowlist_var("RTE_ETH_.*|RTE_MBUF_DEFAULT_.*|RTE_PKTMBUF_HEADROOM|RTE_MAX_LCORE|RTE_MAX_ETHPORTS|RING_F_.*|SOCKET_ID_ANY|RTE_ETH_XSTATS_NAME_SIZE|RTE_ETH_LINK_MAX_STR_LEN|RTE_LOG_.*|RTE_ETHER_ADDR_LEN|RTE_EPOLL_PER_THREAD|RTE_PTYPE_.*|RTE_MAX_NUMA_NODES")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .rustified_enum("rvs_layout_type|rvs_rss_set|rvs_dump")
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on the DPDK headers");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("cannot write bindings");
}
