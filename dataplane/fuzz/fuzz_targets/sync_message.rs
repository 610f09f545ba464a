//! Raw bytes as an IPVS sync message and as a VRRP advertisement: decoding never panics; a
//! decoded message re-encodes to entries that decode the same, and each entry installs
//! into an engine (or is refused) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_core::sync::{decode, encode};
use rvs_wire::vrrp::{VrrpPacket, VrrpRepr};

fuzz_target!(|data: &[u8]| {
    for len in [4, 16] {
        if let Ok(p) = VrrpPacket::new_checked(data, len) {
            let _ = (
                VrrpRepr::parse(&p),
                p.checksum_ok(&[0; 4], &[0; 4]),
                p.addr(0),
            );
        }
    }
    let Ok((syncid, conns)) = decode(data) else {
        return;
    };
    let again: Vec<_> = encode(syncid, &conns, 1472)
        .iter()
        .flat_map(|m| decode(m).expect("re-encoded message").1)
        .collect();
    assert_eq!(again, conns);
    let mut lab = rvs_testkit::lab::Lab::new();
    for c in &conns {
        let _ = lab.engine.install_synced(&lab.snap, &lab.loads, 1, c);
    }
});
