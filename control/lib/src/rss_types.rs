//! DPDK's RSS hash types (rte_ethdev.h's `RTE_ETH_RSS_*` bits) under testpmd's names, in
//! the order of testpmd's table: what `show port info` lists as supported and `show port N
//! rss-hash` as in use.

const fn bit(n: u32) -> u64 {
    1 << n
}

const IPV4: u64 = bit(2);
const FRAG_IPV4: u64 = bit(3);
const IPV4_TCP: u64 = bit(4);
const IPV4_UDP: u64 = bit(5);
const IPV4_SCTP: u64 = bit(6);
const IPV4_OTHER: u64 = bit(7);
const IPV6: u64 = bit(8);
const FRAG_IPV6: u64 = bit(9);
const IPV6_TCP: u64 = bit(10);
const IPV6_UDP: u64 = bit(11);
const IPV6_SCTP: u64 = bit(12);
const IPV6_OTHER: u64 = bit(13);
const L2_PAYLOAD: u64 = bit(14);
const IPV6_EX: u64 = bit(15);
const IPV6_TCP_EX: u64 = bit(16);
const IPV6_UDP_EX: u64 = bit(17);
const PORT: u64 = bit(18);
const VXLAN: u64 = bit(19);
const GENEVE: u64 = bit(20);
const NVGRE: u64 = bit(21);
const GTPU: u64 = bit(23);
const ETH: u64 = bit(24);
const S_VLAN: u64 = bit(25);
const C_VLAN: u64 = bit(26);
const ESP: u64 = bit(27);
const AH: u64 = bit(28);
const L2TPV3: u64 = bit(29);
const PFCP: u64 = bit(30);
const PPPOE: u64 = bit(31);
const ECPRI: u64 = bit(32);
const MPLS: u64 = bit(33);
const IPV4_CHKSUM: u64 = bit(34);
const L4_CHKSUM: u64 = bit(35);
const L3_PRE96: u64 = bit(52);
const L3_PRE64: u64 = bit(53);
const L3_PRE56: u64 = bit(54);
const L3_PRE48: u64 = bit(55);
const L3_PRE40: u64 = bit(56);
const L3_PRE32: u64 = bit(57);
const L2_DST_ONLY: u64 = bit(58);
const L2_SRC_ONLY: u64 = bit(59);
const L4_DST_ONLY: u64 = bit(60);
const L4_SRC_ONLY: u64 = bit(61);
const L3_DST_ONLY: u64 = bit(62);
const L3_SRC_ONLY: u64 = bit(63);

const IP: u64 = IPV4 | FRAG_IPV4 | IPV4_OTHER | IPV6 | FRAG_IPV6 | IPV6_OTHER | IPV6_EX;
const UDP: u64 = IPV4_UDP | IPV6_UDP | IPV6_UDP_EX;
const TCP: u64 = IPV4_TCP | IPV6_TCP | IPV6_TCP_EX;
const SCTP: u64 = IPV4_SCTP | IPV6_SCTP;
const TUNNEL: u64 = VXLAN | GENEVE | NVGRE;
const VLAN: u64 = S_VLAN | C_VLAN;
const ALL: u64 = ETH
    | VLAN
    | IP
    | TCP
    | UDP
    | SCTP
    | L2_PAYLOAD
    | L2TPV3
    | ESP
    | AH
    | PFCP
    | GTPU
    | ECPRI
    | MPLS;

/// testpmd's table (DPDK 22.11): groups and single types by name.
const TABLE: [(&str, u64); 52] = [
    ("all", ALL),
    ("eth", ETH),
    ("l2-src-only", L2_SRC_ONLY),
    ("l2-dst-only", L2_DST_ONLY),
    ("vlan", VLAN),
    ("s-vlan", S_VLAN),
    ("c-vlan", C_VLAN),
    ("ipv4", IPV4),
    ("ipv4-frag", FRAG_IPV4),
    ("ipv4-tcp", IPV4_TCP),
    ("ipv4-udp", IPV4_UDP),
    ("ipv4-sctp", IPV4_SCTP),
    ("ipv4-other", IPV4_OTHER),
    ("ipv6", IPV6),
    ("ipv6-frag", FRAG_IPV6),
    ("ipv6-tcp", IPV6_TCP),
    ("ipv6-udp", IPV6_UDP),
    ("ipv6-sctp", IPV6_SCTP),
    ("ipv6-other", IPV6_OTHER),
    ("l2-payload", L2_PAYLOAD),
    ("ipv6-ex", IPV6_EX),
    ("ipv6-tcp-ex", IPV6_TCP_EX),
    ("ipv6-udp-ex", IPV6_UDP_EX),
    ("port", PORT),
    ("vxlan", VXLAN),
    ("geneve", GENEVE),
    ("nvgre", NVGRE),
    ("ip", IP),
    ("udp", UDP),
    ("tcp", TCP),
    ("sctp", SCTP),
    ("tunnel", TUNNEL),
    ("l3-pre32", L3_PRE32),
    ("l3-pre40", L3_PRE40),
    ("l3-pre48", L3_PRE48),
    ("l3-pre56", L3_PRE56),
    ("l3-pre64", L3_PRE64),
    ("l3-pre96", L3_PRE96),
    ("l3-src-only", L3_SRC_ONLY),
    ("l3-dst-only", L3_DST_ONLY),
    ("l4-src-only", L4_SRC_ONLY),
    ("l4-dst-only", L4_DST_ONLY),
    ("esp", ESP),
    ("ah", AH),
    ("l2tpv3", L2TPV3),
    ("pfcp", PFCP),
    ("pppoe", PPPOE),
    ("gtpu", GTPU),
    ("ecpri", ECPRI),
    ("mpls", MPLS),
    ("ipv4-chksum", IPV4_CHKSUM),
    ("l4-chksum", L4_CHKSUM),
];

/// The bits of a type or group by testpmd's name.
pub fn bits(name: &str) -> Option<u64> {
    TABLE.iter().find(|(n, _)| *n == name).map(|&(_, b)| b)
}

/// The names of the types and groups whose bits `hf` holds all of, in the table's order
/// (testpmd's `RSS functions:` line).
pub fn in_use(hf: u64) -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|&&(_, bits)| bits != 0 && hf & bits == bits)
        .map(|&(name, _)| name)
        .collect()
}

/// Each bit of `offloads` by the name of the type that is that bit alone, else as testpmd
/// says it: `user defined N` (testpmd's `Supported RSS offload flow types:` lines).
pub fn supported(offloads: u64) -> Vec<String> {
    (0..64)
        .map(|i| 1u64 << i)
        .filter(|b| offloads & b != 0)
        .map(|b| match TABLE.iter().find(|&&(_, bits)| bits == b) {
            Some((name, _)) => (*name).to_string(),
            None => format!("user defined {}", b.trailing_zeros()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_names_whole_groups_and_their_members() {
        // rvs's usual setting: RTE_ETH_RSS_IP | TCP | UDP (bits 2-13, 15-17 but 14).
        let hf = IP | TCP | UDP;
        assert_eq!(
            in_use(hf).join(" "),
            "ipv4 ipv4-frag ipv4-tcp ipv4-udp ipv4-other ipv6 ipv6-frag ipv6-tcp ipv6-udp \
             ipv6-other ipv6-ex ipv6-tcp-ex ipv6-udp-ex ip udp tcp"
        );
        // Client-side hashing on the client-facing port: source only.
        assert_eq!(
            in_use(IPV4 | IPV4_TCP | L3_SRC_ONLY | L4_SRC_ONLY),
            ["ipv4", "ipv4-tcp", "l3-src-only", "l4-src-only"]
        );
        assert!(in_use(0).is_empty());
        assert_eq!(in_use(u64::MAX)[0], "all");
    }

    #[test]
    fn supported_types_are_single_bits_by_name_or_user_defined() {
        assert_eq!(
            supported(IPV4 | IPV6_UDP_EX | L3_SRC_ONLY | bit(22) | bit(40)),
            [
                "ipv4",
                "ipv6-udp-ex",
                "user defined 22",
                "user defined 40",
                "l3-src-only"
            ]
        );
        assert!(supported(0).is_empty());
    }

    #[test]
    fn rvs_configuration_names_are_testpmd_groups() {
        // The RSS field names of rvs's configuration are testpmd's own.
        for name in crate::config::RSS_FIELDS {
            assert!(bits(name).is_some(), "{name}");
        }
    }
}
