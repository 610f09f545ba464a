//! An advert's checks before an instance's state machine hears it, each refusal named as
//! keepalived counts it (the stats file `SIGUSR2` writes). An advert that fails more than
//! one check may be counted under another than keepalived's: keepalived checks the length
//! before the TTL, and authentication and the interval before the type and the checksum.

use super::ah;
use super::conf::{Instance, OldChecksum};
use crate::log::{log, Level};
use rvs_wire::vrrp::{self, VrrpPacket};
use rvs_wire::WireError;
use std::net::IpAddr;

/// Why an advert is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unicast from no `unicast_peer`, with `check_unicast_src`.
    NotAPeer,
    /// Shorter than its address count and authentication data say.
    Length,
    /// TTL (hop limit) not 255 on multicast, or out of a unicast peer's min/max_ttl.
    Ttl,
    Version,
    /// Not an advertisement.
    Type,
    /// An authentication type VRRP has not (keepalived's "Invalid Type").
    AuthInvalidType,
    /// Another authentication type than configured, or AH's header where none is wanted,
    /// none where it is ("Type Mismatch").
    AuthTypeMismatch,
    /// A wrong password, AH's ICV wrong, or its sequence number not past the last
    /// ("Failure").
    AuthFailure,
    Checksum,
    /// Version 2's interval not ours.
    Interval,
    /// Unicast from no `unicast_peer` without `check_unicast_src`: ignored, not counted.
    Stranger,
}

/// What the checks read and move across adverts: the unicast VRRPv3 checksum of keepalived
/// 1.3.6 once heard, and AH's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Continuity {
    pub old_checksum: bool,
    pub ah_sequence: u32,
}

/// An advert as heard: from `from` with TTL (hop limit) `ttl`, the IP addresses `src` and
/// `dst` (4 or 16 bytes: its family), the VRRP message `body`, and in AH the whole IPv4
/// packet (`ah`).
#[derive(Debug, Clone, Copy)]
pub struct Heard<'a> {
    pub from: IpAddr,
    pub ttl: u8,
    pub src: &'a [u8],
    pub dst: &'a [u8],
    pub body: &'a [u8],
    pub ah: Option<&'a [u8]>,
}

/// The advert `h` checked for instance `conf` (its VRID already matched).
pub fn vet<'a>(
    conf: &Instance,
    cont: &mut Continuity,
    h: &Heard<'a>,
) -> Result<VrrpPacket<&'a [u8]>, Refusal> {
    if !conf.source_ok(h.from) {
        return Err(Refusal::NotAPeer);
    }
    // RFC 3768/5798's TTL (hop limit) of 255; keepalived does not ask it of unicast
    // adverts (its IPv6 ones leave with the kernel's default hop limit, 64), only that it
    // lies within the peer's min_ttl and max_ttl.
    if (h.ttl != 255 && conf.unicast_peers.is_empty()) || !conf.peer_ttl_ok(h.from, h.ttl) {
        return Err(Refusal::Ttl);
    }
    let version_ok = h.body.first().map(|b| b >> 4) == Some(conf.version);
    let p = match VrrpPacket::new_checked(h.body, h.src.len()) {
        Ok(p) if version_ok => p,
        _ if !version_ok => return Err(Refusal::Version),
        Err(WireError::Truncated) => return Err(Refusal::Length),
        _ => return Err(Refusal::Type),
    };
    if !checksum_ok(conf, cont, h, &p) {
        return Err(Refusal::Checksum);
    }
    if conf.version == 2 {
        authenticate(conf, cont, h, &p)?;
        if p.interval_cs() != conf.advert_cs {
            return Err(Refusal::Interval);
        }
    }
    if !conf.unicast_peers.is_empty() && !conf.unicast_peers.contains(&h.from) {
        return Err(Refusal::Stranger);
    }
    Ok(p)
}

/// keepalived 1.3.6's unicast VRRPv3 checksum (the group in the pseudo-header): verified
/// so once in use; by default an advert that passes only so switches to it.
fn checksum_ok(conf: &Instance, cont: &mut Continuity, h: &Heard, p: &VrrpPacket<&[u8]>) -> bool {
    let group = conf.old_checksum_group.octets();
    let old_unicast = h.src.len() == 4 && !conf.unicast_peers.is_empty();
    if old_unicast && cont.old_checksum {
        return p.checksum_ok(h.src, &group);
    }
    if p.checksum_ok(h.src, h.dst) {
        return true;
    }
    if old_unicast && conf.old_checksum == OldChecksum::Auto && p.checksum_ok(h.src, &group) {
        cont.old_checksum = true;
        log(
            Level::Notice,
            "vrrp",
            None,
            format_args!(
                "({}) Setting unicast VRRPv3 checksum to old version",
                conf.name
            ),
        );
        return true;
    }
    false
}

/// Version 2's authentication, as keepalived checks it: a type VRRP has, then the one
/// configured (AH's header with AH only), then the password or AH's ICV and sequence.
fn authenticate(
    conf: &Instance,
    cont: &mut Continuity,
    h: &Heard,
    p: &VrrpPacket<&[u8]>,
) -> Result<(), Refusal> {
    let key = conf.auth_pass.as_deref().map(vrrp::pass_bytes);
    let want = match (conf.auth_ah, &key) {
        (true, _) => ah::AUTH_TYPE,
        (false, Some(_)) => vrrp::AUTH_PASS,
        (false, None) => vrrp::AUTH_NONE,
    };
    if p.auth_type() > ah::AUTH_TYPE {
        return Err(Refusal::AuthInvalidType);
    }
    if p.auth_type() != want || h.ah.is_some() != conf.auth_ah {
        return Err(Refusal::AuthTypeMismatch);
    }
    let authentic = match (h.ah, key) {
        // AH: the ICV and SPI, then a sequence number past the last (no replay).
        (Some(packet), Some(key)) => {
            match ah::check(packet, &key, !conf.unicast_peers.is_empty()) {
                Ok(c) if c.sequence > cont.ah_sequence => {
                    cont.ah_sequence = c.sequence;
                    true
                }
                _ => false,
            }
        }
        (Some(_), None) => false,
        (None, key) => key.is_none() || key == Some(p.auth_data()),
    };
    if authentic {
        Ok(())
    } else {
        Err(Refusal::AuthFailure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_wire::vrrp::VrrpRepr;

    const PEER: [u8; 4] = [10, 0, 0, 2];

    fn instance(extra: &str) -> Instance {
        let text = format!(
            "vrrp_instance V {{\n interface lan\n virtual_router_id 7\n advert_int 1\n virtual_ipaddress {{ 10.0.0.100 }}\n{extra}}}\n"
        );
        crate::keepalived::KeepalivedConf::parse("k.conf", &text)
            .unwrap()
            .vrrp_conf
            .instances
            .remove(0)
    }

    /// A version 2 advert for VRID 7 listing 10.0.0.100, interval `secs`, `pass`.
    fn advert(version: u8, secs: u16, pass: Option<&str>) -> Vec<u8> {
        let repr = VrrpRepr {
            version,
            vrid: 7,
            priority: 100,
            interval_cs: secs * 100,
            auth_pass: pass.map(vrrp::pass_bytes),
        };
        let mut buf = vec![0u8; 64];
        let len = repr.emit(&mut buf, &[&[10, 0, 0, 100]], &PEER, &vrrp::GROUP_V4);
        buf.truncate(len);
        buf
    }

    fn heard<'a>(body: &'a [u8], ttl: u8, ah: Option<&'a [u8]>) -> Heard<'a> {
        Heard {
            from: IpAddr::from(PEER),
            ttl,
            src: &PEER,
            dst: &vrrp::GROUP_V4,
            body,
            ah,
        }
    }

    fn check(conf: &Instance, body: &[u8], ttl: u8) -> Result<(), Refusal> {
        vet(conf, &mut Continuity::default(), &heard(body, ttl, None)).map(|_| ())
    }

    /// Each refusal as keepalived names it in its stats file, one fault at a time.
    #[test]
    fn each_refusal_is_keepalived_s_counter() {
        let plain = instance("");
        let good = advert(2, 1, None);
        assert_eq!(check(&plain, &good, 255), Ok(()));
        assert_eq!(check(&plain, &good, 64), Err(Refusal::Ttl));
        assert_eq!(check(&plain, &good[..10], 255), Err(Refusal::Length));
        assert_eq!(
            check(&plain, &advert(3, 1, None), 255),
            Err(Refusal::Version)
        );
        let mut not_advert = good.clone();
        not_advert[0] = 0x22;
        assert_eq!(check(&plain, &not_advert, 255), Err(Refusal::Type));
        let mut summed_wrong = good.clone();
        summed_wrong[6] ^= 0xff;
        assert_eq!(check(&plain, &summed_wrong, 255), Err(Refusal::Checksum));
        assert_eq!(
            check(&plain, &advert(2, 3, None), 255),
            Err(Refusal::Interval)
        );
        // Authentication: a type VRRP has not, another than configured, a wrong password.
        let mut type_9 = good.clone();
        type_9[4] = 9;
        type_9[6..8].fill(0);
        let sum = rvs_wire::checksum::checksum(&type_9);
        type_9[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(check(&plain, &type_9, 255), Err(Refusal::AuthInvalidType));
        let with_pass = advert(2, 1, Some("secret"));
        assert_eq!(
            check(&plain, &with_pass, 255),
            Err(Refusal::AuthTypeMismatch)
        );
        let pass = instance(" authentication {\n auth_type PASS\n auth_pass secret\n }\n");
        assert_eq!(check(&pass, &with_pass, 255), Ok(()));
        assert_eq!(check(&pass, &good, 255), Err(Refusal::AuthTypeMismatch));
        assert_eq!(
            check(&pass, &advert(2, 1, Some("guessed")), 255),
            Err(Refusal::AuthFailure)
        );
        // AH: its header wanted, its ICV checked, its sequence moving on.
        let ah_conf = instance(" authentication {\n auth_type AH\n auth_pass secret\n }\n");
        let mut ah_advert = good.clone();
        ah::mark_ah(&mut ah_advert);
        let key = vrrp::pass_bytes("secret");
        let packet = |sequence: u32, key: &[u8; 8]| {
            let mut buf = vec![0u8; 128];
            let n = ah::emit(
                &mut buf,
                PEER,
                vrrp::GROUP_V4,
                255,
                1,
                sequence,
                key,
                &ah_advert,
                false,
            );
            buf.truncate(n);
            buf
        };
        let mut cont = Continuity::default();
        let first = packet(5, &key);
        assert!(vet(&ah_conf, &mut cont, &heard(&ah_advert, 255, Some(&first))).is_ok());
        assert_eq!(cont.ah_sequence, 5);
        assert_eq!(
            vet(&ah_conf, &mut cont, &heard(&ah_advert, 255, Some(&first))).map(|_| ()),
            Err(Refusal::AuthFailure),
            "a replayed sequence number"
        );
        let forged = packet(6, &vrrp::pass_bytes("guessed"));
        assert_eq!(
            vet(&ah_conf, &mut cont, &heard(&ah_advert, 255, Some(&forged))).map(|_| ()),
            Err(Refusal::AuthFailure)
        );
        assert_eq!(
            check(&ah_conf, &ah_advert, 255),
            Err(Refusal::AuthTypeMismatch)
        );
        assert_eq!(
            vet(
                &plain,
                &mut Continuity::default(),
                &heard(&good, 255, Some(&first))
            )
            .map(|_| ()),
            Err(Refusal::AuthTypeMismatch),
            "AH's header where none is wanted"
        );
        // Unicast: a stranger ignored, or counted with check_unicast_src.
        let unicast = |check_src: &str| {
            instance(&format!(
                " unicast_src_ip 10.0.0.1\n unicast_peer {{\n 10.0.0.3\n }}\n{check_src}"
            ))
        };
        assert_eq!(check(&unicast(""), &good, 255), Err(Refusal::Stranger));
        assert_eq!(
            check(&unicast(" check_unicast_src\n"), &good, 255),
            Err(Refusal::NotAPeer)
        );
    }
}
