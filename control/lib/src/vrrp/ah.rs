//! VRRP version 2's IPsec AH authentication (RFC 2338 type 2) as keepalived sends and checks
//! it: an AH header (RFC 2402: next header 112, 24 bytes, SPI the source address, a sequence
//! number) between the IPv4 header and the advert, and an ICV of HMAC-MD5-96 keyed with the
//! 8-byte `auth_pass`, over the IPv4 header with its mutable fields zeroed (TOS, fragment
//! field, checksum; TTL too for unicast adverts), the AH header with a zero ICV, and the
//! advert.

use hmac::{Hmac, Mac};
use md5::Md5;

/// IP protocol number of AH.
pub const PROTO: u8 = 51;
/// The AH header keepalived sends: 12 bytes of fields and a 96-bit ICV.
pub const HEADER_LEN: usize = 24;
const ICV_AT: usize = 12;
const ICV_LEN: usize = 12;
/// AH's payload length field: the header in 32-bit words, minus 2.
const PAYLOAD_LEN: u8 = (HEADER_LEN / 4 - 2) as u8;
/// keepalived's TOS for adverts (network control).
const TOS: u8 = 0xc0;
/// The last sequence number sent; past it keepalived stops counting.
pub const LAST_SEQUENCE: u32 = 0xFFFF_FFFE;
/// A version 2 advert's authentication type for AH (RFC 2338).
pub const AUTH_TYPE: u8 = 2;

/// Makes a version 2 advert (built without authentication) one for AH: type 2, its
/// authentication data left zero, the checksum redone.
pub fn mark_ah(advert: &mut [u8]) {
    if advert.len() < 8 {
        return;
    }
    advert[4] = AUTH_TYPE;
    advert[6..8].fill(0);
    let sum = rvs_wire::checksum::checksum(advert);
    advert[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// Why an AH advert is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not an IPv4 packet carrying AH of keepalived's length, or not over VRRP.
    Malformed,
    /// The ICV does not match: another password, or a changed packet.
    Icv,
    /// The SPI is not the source address.
    Spi,
}

/// A checked AH advert: its sequence number and where the advert starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub sequence: u32,
    pub advert_at: usize,
}

fn icv(key: &[u8; 8], ip_header: &[u8], rest: &[u8], unicast: bool) -> [u8; 16] {
    let mut zeroed = [0u8; 60];
    let header = &mut zeroed[..ip_header.len().min(60)];
    header.copy_from_slice(&ip_header[..header.len()]);
    header[1] = 0; // TOS
    header[6..8].fill(0); // flags and fragment offset
    header[10..12].fill(0); // checksum
    if unicast {
        header[8] = 0; // TTL
    }
    let mut ah = [0u8; HEADER_LEN];
    ah.copy_from_slice(&rest[..HEADER_LEN]);
    ah[ICV_AT..].fill(0);
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(header);
    mac.update(&ah);
    mac.update(&rest[HEADER_LEN..]);
    mac.finalize().into_bytes().into()
}

/// Writes a whole IPv4 packet into `buf`: keepalived's header (TOS 0xc0, `id`, `ttl`,
/// protocol AH, checksum), the AH header with `sequence` and its ICV, then `advert` (a
/// version 2 advert with authentication type 2). Returns its length, 0 when `buf` is short.
#[allow(clippy::too_many_arguments)]
pub fn emit(
    buf: &mut [u8],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    id: u16,
    sequence: u32,
    key: &[u8; 8],
    advert: &[u8],
    unicast: bool,
) -> usize {
    let len = 20 + HEADER_LEN + advert.len();
    let Some(out) = buf.get_mut(..len) else {
        return 0;
    };
    out.fill(0);
    out[0] = 0x45;
    out[1] = TOS;
    out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    out[4..6].copy_from_slice(&id.to_be_bytes());
    out[8] = ttl;
    out[9] = PROTO;
    out[12..16].copy_from_slice(&src);
    out[16..20].copy_from_slice(&dst);
    let ah = &mut out[20..20 + HEADER_LEN];
    ah[0] = rvs_wire::vrrp::PROTO;
    ah[1] = PAYLOAD_LEN;
    ah[4..8].copy_from_slice(&src);
    ah[8..12].copy_from_slice(&sequence.to_be_bytes());
    out[20 + HEADER_LEN..].copy_from_slice(advert);
    let digest = {
        let (ip, rest) = out.split_at(20);
        icv(key, ip, rest, unicast)
    };
    out[20 + ICV_AT..20 + HEADER_LEN].copy_from_slice(&digest[..ICV_LEN]);
    let sum = rvs_wire::checksum::checksum(&out[..20]);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    len
}

/// Checks an IPv4 packet carrying AH (as a raw socket hands it over, header first) with
/// `key`: the ICV, then the SPI. The sequence number is the caller's to compare.
pub fn check(packet: &[u8], key: &[u8; 8], unicast: bool) -> Result<Checked, Refused> {
    let vihl = *packet.first().ok_or(Refused::Malformed)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 || packet.len() < ihl + HEADER_LEN || packet[9] != PROTO {
        return Err(Refused::Malformed);
    }
    let ah = &packet[ihl..ihl + HEADER_LEN];
    if ah[0] != rvs_wire::vrrp::PROTO || ah[1] != PAYLOAD_LEN {
        return Err(Refused::Malformed);
    }
    let digest = icv(key, &packet[..ihl], &packet[ihl..], unicast);
    // Constant time, as a password check should be.
    let differs = digest[..ICV_LEN]
        .iter()
        .zip(&ah[ICV_AT..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differs != 0 {
        return Err(Refused::Icv);
    }
    if ah[4..8] != packet[12..16] {
        return Err(Refused::Spi);
    }
    Ok(Checked {
        sequence: u32::from_be_bytes([ah[8], ah[9], ah[10], ah[11]]),
        advert_at: ihl + HEADER_LEN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived 2.2.7's first advert for `auth_type AH`, `auth_pass rvsah`, vrid 77,
    /// priority 100, from 10.77.0.1 (captured with tcpdump).
    const KEEPALIVED: [u8; 64] = [
        0x45, 0xc0, 0x00, 0x40, 0x00, 0x01, 0x00, 0x00, 0xff, 0x33, 0xd0, 0x69, 0x0a, 0x4d, 0x00,
        0x01, 0xe0, 0x00, 0x00, 0x12, 0x70, 0x04, 0x00, 0x00, 0x0a, 0x4d, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x01, 0xce, 0x61, 0x0c, 0xcb, 0xca, 0x99, 0x99, 0x5e, 0x8b, 0x46, 0xc2, 0xca, 0x21,
        0x4d, 0x64, 0x01, 0x02, 0x01, 0x6d, 0xff, 0x0a, 0x4d, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    fn key(pass: &str) -> [u8; 8] {
        rvs_wire::vrrp::pass_bytes(pass)
    }

    #[test]
    fn keepalived_s_advert_checks_and_is_rebuilt_byte_for_byte() {
        // The advert inside is what rvs builds for the same instance.
        let repr = rvs_wire::vrrp::VrrpRepr {
            version: 2,
            vrid: 77,
            priority: 100,
            interval_cs: 100,
            auth_pass: None,
        };
        let mut advert = [0u8; 20];
        let n = repr.emit(
            &mut advert,
            &[&[10, 77, 0, 100]],
            &[10, 77, 0, 1],
            &[224, 0, 0, 18],
        );
        mark_ah(&mut advert[..n]);
        assert_eq!(&advert[..n], &KEEPALIVED[44..]);
        let checked = check(&KEEPALIVED, &key("rvsah"), false).unwrap();
        assert_eq!(
            checked,
            Checked {
                sequence: 1,
                advert_at: 44
            }
        );
        let mut buf = [0u8; 128];
        let n = emit(
            &mut buf,
            [10, 77, 0, 1],
            [224, 0, 0, 18],
            255,
            1,
            1,
            &key("rvsah"),
            &KEEPALIVED[44..],
            false,
        );
        assert_eq!(&buf[..n], &KEEPALIVED[..]);
    }

    #[test]
    fn a_wrong_password_a_changed_packet_or_spi_is_refused() {
        assert_eq!(check(&KEEPALIVED, &key("other"), false), Err(Refused::Icv));
        // The advert's priority changed: the ICV no longer matches.
        let mut p = KEEPALIVED;
        p[46] = 200;
        assert_eq!(check(&p, &key("rvsah"), false), Err(Refused::Icv));
        // Unicast zeroes the TTL too: the multicast ICV does not check as unicast.
        assert_eq!(check(&KEEPALIVED, &key("rvsah"), true), Err(Refused::Icv));
        // Mutable fields may change on the way: TOS, fragment field, checksum (and TTL for
        // unicast).
        let mut p = KEEPALIVED;
        p[1] = 0;
        p[6] = 0x40;
        p[10] = 0;
        assert!(check(&p, &key("rvsah"), false).is_ok());
        // An SPI other than the source address.
        let mut buf = [0u8; 128];
        let n = emit(
            &mut buf,
            [10, 77, 0, 2],
            [10, 77, 0, 1],
            64,
            9,
            5,
            &key("k"),
            &KEEPALIVED[44..],
            true,
        );
        buf[27] ^= 1;
        let spi_only = {
            // Recompute the ICV over the changed SPI, so only the SPI is wrong.
            let (ip, rest) = buf[..n].split_at(20);
            let d = icv(&key("k"), ip, rest, true);
            let mut b = buf;
            b[20 + ICV_AT..20 + HEADER_LEN].copy_from_slice(&d[..ICV_LEN]);
            b
        };
        assert_eq!(check(&spi_only[..n], &key("k"), true), Err(Refused::Spi));
        let mut ttl = [0u8; 128];
        let n = emit(
            &mut ttl,
            [10, 77, 0, 2],
            [10, 77, 0, 1],
            64,
            9,
            5,
            &key("k"),
            &KEEPALIVED[44..],
            true,
        );
        ttl[8] = 3;
        assert_eq!(check(&ttl[..n], &key("k"), true).map(|c| c.sequence), Ok(5));
        // Cut short, or not AH over VRRP.
        assert_eq!(
            check(&KEEPALIVED[..40], &key("rvsah"), false),
            Err(Refused::Malformed)
        );
        let mut other = KEEPALIVED;
        other[20] = 6;
        assert_eq!(check(&other, &key("rvsah"), false), Err(Refused::Malformed));
    }
}
