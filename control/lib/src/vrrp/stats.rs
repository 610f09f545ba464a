//! keepalived's stats file (its STATS signal, SIGUSR2): each instance's advert counters
//! in keepalived's layout, so that what reads keepalived's reads rvs's.

use super::run::InstanceStatus;
use std::fmt::Write;
use std::path::PathBuf;

/// Where keepalived writes its dump files: `$TMPDIR` when it is an absolute path, else /tmp.
pub fn tmp_dir() -> PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(d) if PathBuf::from(&d).is_absolute() => PathBuf::from(d),
        _ => PathBuf::from("/tmp"),
    }
}

/// The stats file's text for `instances`, as keepalived 2.2.7 (built with VRRP
/// authentication, as Debian's is) writes it. Its "Advertisement Interval" counts version 2
/// adverts of another interval, which keepalived drops without counting.
pub fn keepalived_stats(instances: &[InstanceStatus]) -> String {
    let mut out = String::new();
    for s in instances {
        let _ = write!(
            out,
            "VRRP Instance: {}\n  Advertisements:\n    Received: {}\n    Sent: {}\n  Became master: {}\n  Released master: {}\n  Packet Errors:\n    Length: {}\n    TTL: {}\n    Invalid Type: {}\n    Advertisement Interval: {}\n    Address List: {}\n  Authentication Errors:\n    Invalid Type: {}\n    Type Mismatch: {}\n    Failure: {}\n  Priority Zero:\n    Received: {}\n    Sent: {}\n",
            s.name,
            s.adverts_received,
            s.adverts_sent,
            s.became_master,
            s.released_master,
            s.bad_length,
            s.bad_ttl,
            s.bad_type,
            s.bad_interval,
            s.address_mismatch,
            s.auth_invalid_type,
            s.auth_type_mismatch,
            s.auth_failure,
            s.priority_zero_received,
            s.priority_zero_sent,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived's layout line for line, each counter in its place (all different).
    #[test]
    fn the_stats_file_is_keepalived_s() {
        let s = InstanceStatus {
            name: "VI_1".into(),
            adverts_received: 1,
            adverts_sent: 2,
            became_master: 3,
            released_master: 4,
            bad_length: 5,
            bad_ttl: 6,
            bad_type: 7,
            bad_interval: 8,
            address_mismatch: 9,
            auth_invalid_type: 10,
            auth_type_mismatch: 11,
            auth_failure: 12,
            priority_zero_received: 13,
            priority_zero_sent: 14,
            ..Default::default()
        };
        let two = [
            s.clone(),
            InstanceStatus {
                name: "VI_2".into(),
                ..Default::default()
            },
        ];
        let text = keepalived_stats(&two);
        assert!(text.starts_with(
            "VRRP Instance: VI_1\n  Advertisements:\n    Received: 1\n    Sent: 2\n  Became master: 3\n  Released master: 4\n  Packet Errors:\n    Length: 5\n    TTL: 6\n    Invalid Type: 7\n    Advertisement Interval: 8\n    Address List: 9\n  Authentication Errors:\n    Invalid Type: 10\n    Type Mismatch: 11\n    Failure: 12\n  Priority Zero:\n    Received: 13\n    Sent: 14\nVRRP Instance: VI_2\n  Advertisements:\n    Received: 0\n"
        ), "{text}");
        assert_eq!(text.lines().count(), 2 * 19);
        assert_eq!(keepalived_stats(&[]), "");
    }
}
